#ifndef KERF_MATH_H
#define KERF_MATH_H
/* AVX2 elementwise math kernels. Swift checks the CPU (kerf_qgemm_avx2_available) first and
 * falls back to its scalar forms (KerfKernels/FastMath.swift), which these mirror operation by
 * operation. */
#include <stddef.h>

/* y[i] = x[i] / 2 * erfc(-x[i] / sqrt 2) (exact GELU) for i < n, with FastMath.swift's erfc
 * (Numerical Recipes' Chebyshev fit) and exp (Cephes polynomial). x and y may alias. */
void kerf_gelu_avx2(const float *x, float *y, size_t n);
#endif
