#ifndef KERF_MATH_H
#define KERF_MATH_H
/* AVX2 elementwise math kernels. Swift checks the CPU (kerf_qgemm_avx2_available) first and
 * falls back to its scalar forms (KerfKernels/FastMath.swift), which these mirror operation by
 * operation. */
#include <stddef.h>

/* y[i] = erf(x[i]) for i < n: FastMath.swift's fastErf (a rational fit in x^2 on x clamped
 * to [-4, 4]; error below 5e-7, absolute, and relative for |x| >= 1e-37), operation by operation. NaN stays
 * NaN. x and y may alias. */
void kerf_erf_avx2(const float *x, float *y, size_t n);

/* y[i] = x[i] / 2 * (1 + erf(x[i] / sqrt 2)) (exact GELU, as ONNX Runtime forms it) for i < n,
 * with kerf_erf_avx2's erf. x and y may alias. */
void kerf_gelu_avx2(const float *x, float *y, size_t n);

/* dx[i] = dy[i] * (Φ(x[i]) + x[i] φ(x[i])), the derivative of exact GELU (Φ by kerf_erf_avx2's
 * erf, φ by FastMath.swift's exp) for i < n. dx may alias dy or x. */
void kerf_gelu_grad_avx2(const float *dy, const float *x, float *dx, size_t n);

/* y[i] = x[i] / (1 + exp(-x[i])) (SiLU) for i < n, FastMath.swift's exp and silu operation by
 * operation. x and y may alias. */
void kerf_silu_avx2(const float *x, float *y, size_t n);

/* 1 when the running CPU has AVX-512F (the *_avx512 kernels must not be called otherwise). */
int kerf_avx512_available(void);

/* kerf_erf_avx2's and kerf_gelu_avx2's contracts in sixteen lanes, multiply-adds fused and the
 * division by a refined reciprocal (results within a few ulp of the eight-lane kernels'). */
void kerf_erf_avx512(const float *x, float *y, size_t n);
void kerf_gelu_avx512(const float *x, float *y, size_t n);
void kerf_gelu_grad_avx512(const float *dy, const float *x, float *dx, size_t n);
/* kerf_silu_avx2's contract in sixteen lanes, x times a refined reciprocal of 1 + exp(-x). */
void kerf_silu_avx512(const float *x, float *y, size_t n);

/* Softmax of each of `rows` contiguous rows of n floats (x[r * n + j] -> y[r * n + j]): the
 * max subtracted, FastMath.swift's exp, the sum in eight lanes, then a multiply by 1 / sum.
 * x and y may alias. */
void kerf_softmax_rows_avx2(const float *x, float *y, size_t rows, size_t n);

/* kerf_softmax_rows_avx2's contract in sixteen lanes with fused multiply-adds in the exp
 * (results within a few ulp of the eight-lane kernel's). Needs AVX-512F. */
void kerf_softmax_rows_avx512(const float *x, float *y, size_t rows, size_t n);
/* y[j] = x[j] / c (x[j] * c when multiply) + mask[mask_per_element ? j : 0] for j < n, two
 * roundings, as the Div (Mul) and Add operators round. x and y may alias. Needs AVX-512F. */
void kerf_scale_add_row_avx512(const float *x, size_t n, float c, int multiply, const float *mask, int mask_per_element,
                               float *y);
#endif
