#ifndef KERF_SGEMM_AVX2_H
#define KERF_SGEMM_AVX2_H
/* Single-precision GEMM against a constant W packed once, in AVX2 + FMA: Kerf's own product
 * for CPUs without AVX-512, where oneDNN's matmul is slow for few rows. Call only when
 * kerf_isa_has(KERF_HAS_AVX2) (kerf_isa.h).
 *
 * Packed W: panels of 16 columns; panel p holds W[k, 16p + j] at p * K * 16 + k * 16 + j for
 * k < K, j < 16 (columns past N are zero). Subnormal weights are packed as zero. */
#include <stddef.h>

/* Floats in W's packed form. */
size_t kerf_sgemm_avx2_packed_count(size_t k, size_t n);

/* Packs W[K, N] (element (k, j) at w[k * ldw + j], or w[j * ldw + k] when `transposed`) into
 * `packed` (kerf_sgemm_avx2_packed_count(k, n) floats, 32-byte aligned). */
void kerf_sgemm_avx2_pack(size_t k, size_t n, const float *w, size_t ldw, int transposed, float *packed);

/* C[i, j] = sum_k A[i, k] * W[k, j] (+ bias[j]) for i < m and columns j in panels [p0, p1)
 * (j < n). A row-major with row stride lda, C with row stride ldc; bias NULL or n floats
 * (indexed by the absolute column). Each element sums its products in k order from zero,
 * then adds the bias. Subnormal inputs read as zero and subnormal results are flushed to zero
 * (the caller's floating-point mode is restored on return). */
void kerf_sgemm_avx2(size_t m, size_t k, size_t n, const float *a, size_t lda, const float *packed,
                     const float *bias, float *c, size_t ldc, size_t p0, size_t p1);
#endif
