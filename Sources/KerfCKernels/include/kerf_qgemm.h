#ifndef KERF_QGEMM_H
#define KERF_QGEMM_H
/* AVX2 inner loops of Kerf's int8 GEMM. Everything around them (packing, zero points,
 * epilogues, threading, the reference) is Swift: see KerfKernels/Int8Gemm.swift.
 *
 * Packed B (made once per weight by Swift) is split into panels of 16 columns:
 *   u8s8: per panel, kq = ceil(K/4) groups of 64 bytes; byte (column j, k 4q+t) at q*64 + j*4 + t.
 *   s16:  per panel, kp = ceil(K/2) groups of 32 int16; (column j, k 2q+t) at q*32 + j*2 + t.
 * Padding columns and k positions hold 0. */
#include <stddef.h>
#include <stdint.h>

/* 1 when the running CPU has AVX2 (the kernels below must not be called otherwise). */
int kerf_qgemm_avx2_available(void);

/* C[i, 16p + j] = sum_k A[i, k] * B[k, 16p + j] for rows 0..<m and panels p in [p0, p1),
 * columns >= n not written. A is u8 with row stride lda bytes, each row holding 4*kq readable
 * bytes (zero beyond K). Products of a k pair (4q, 4q+1) and (4q+2, 4q+3) are added with int16
 * saturation (vpmaddubsw), as ONNX Runtime's MLAS U8S8 kernel does on CPUs without VNNI. */
void kerf_qgemm_u8s8_avx2(const uint8_t *a, size_t lda, size_t m, size_t kq, const int8_t *packed,
                          size_t n, size_t p0, size_t p1, int32_t *c, size_t ldc);

/* 1 (AVX512-VNNI with AVX512BW/VL: 512-bit kernel) or 2 (AVX-VNNI: 256-bit kernel) when the
 * running CPU has vpdpbusd, else 0 (kerf_qgemm_u8s8_vnni must not be called then). */
int kerf_qgemm_vnni_available(void);

/* kerf_qgemm_u8s8_avx2's contract, but exact: the four products of each k group are summed in
 * int32 (vpdpbusd), as ONNX Runtime's MLAS U8S8 kernel does on CPUs with VNNI. */
void kerf_qgemm_u8s8_vnni(const uint8_t *a, size_t lda, size_t m, size_t kq, const int8_t *packed,
                          size_t n, size_t p0, size_t p1, int32_t *c, size_t ldc);

/* The same for int16 A (row stride lda elements, 2*kp readable elements per row) and the
 * int16 panels: exact (vpmaddwd), used for int8 activations. */
void kerf_qgemm_s16_avx2(const int16_t *a, size_t lda, size_t m, size_t kp, const int16_t *packed,
                         size_t n, size_t p0, size_t p1, int32_t *c, size_t ldc);
#endif
