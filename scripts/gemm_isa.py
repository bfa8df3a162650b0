#!/usr/bin/env python3
"""Kerf's float GEMM capped at AVX2 (KERF_MAX_ISA=avx2) against the measured AVX2 FMA roofline and ONNX Runtime at AVX2: the GEMM
table of BENCHMARKS.md's AVX2 section on its own, printed as Markdown.

    KERF_LIBRARY=.build/release/libKerf.so python3 scripts/gemm_isa.py
"""
import sys; sys.argv = ['x']; sys.path[:0] = ['scripts', 'bindings/python', 'bindings/python/tests']
import bench
print("\n".join(bench.gemm_rows(30, bench.avx2_shim())))
