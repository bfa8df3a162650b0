#!/usr/bin/env python3
"""Kerf's float GEMM capped at AVX2 (KERF_MAX_ISA=avx2) against the measured AVX2 FMA roofline, best of 3
children each: the GEMM rows of BENCHMARKS.md's AVX2 section on their own.

    KERF_LIBRARY=.build/release/libKerf.so python3 scripts/gemm_isa.py
"""
import sys; sys.argv = ['x']; sys.path[:0] = ['scripts', 'bindings/python', 'bindings/python/tests']
import bench
roof = bench.avx2_roofline_gflops()
print(f"roofline {roof:.1f}")
for s in bench.GEMM_SHAPES:
    g = [bench.measure('kerf', {"gemm": True, "shape": s}, 1, [1], 30, 'avx2')['gflops'] for _ in range(3)]
    print(s, f"{max(g):.1f} best of 3 ({max(g) / roof:.0%}), runs {[round(x, 1) for x in g]}")
