#ifndef KERF_MATH_H
#define KERF_MATH_H
/* AVX2 elementwise math kernels. Swift checks the CPU (kerf_qgemm_avx2_available) first and
 * falls back to its scalar forms (KerfKernels/FastMath.swift), which these mirror operation by
 * operation. */
#include <stddef.h>

/* y[i] = x[i] / 2 * erfc(-x[i] / sqrt 2) (exact GELU) for i < n, with FastMath.swift's erfc
 * (Numerical Recipes' Chebyshev fit) and exp (Cephes polynomial). x and y may alias. */
void kerf_gelu_avx2(const float *x, float *y, size_t n);

/* 1 when the running CPU has AVX-512F (kerf_gelu_avx512 must not be called otherwise). */
int kerf_avx512_available(void);

/* kerf_gelu_avx2's contract in sixteen lanes with fused multiply-adds (results within a few
 * ulp of the eight-lane kernel's; same error bound against the exact GELU). */
void kerf_gelu_avx512(const float *x, float *y, size_t n);

/* Softmax of each of `rows` contiguous rows of n floats (x[r * n + j] -> y[r * n + j]): the
 * max subtracted, FastMath.swift's exp, the sum in eight lanes, then a multiply by 1 / sum.
 * x and y may alias. */
void kerf_softmax_rows_avx2(const float *x, float *y, size_t rows, size_t n);

/* kerf_softmax_rows_avx2's contract in sixteen lanes with fused multiply-adds in the exp
 * (results within a few ulp of the eight-lane kernel's). Needs AVX-512F. */
void kerf_softmax_rows_avx512(const float *x, float *y, size_t rows, size_t n);
#endif
