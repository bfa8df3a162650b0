#ifndef KERF_POOL_H
#define KERF_POOL_H
/* AVX2 pooling kernels. Call only when kerf_qgemm_avx2_available() (kerf_qgemm.h) returns 1. */
#include <stddef.h>

/* Max pooling of one plane x[h, w] (row stride w) with a 2x2 window and stride 2, no padding,
 * into y[oh, ow], where 2 * oh <= h and 2 * ow <= w. Taps are taken in row-major order, the first
 * one kept unless a later one is greater: a NaN first tap stays, later NaNs are skipped. */
void kerf_maxpool2x2_f32_avx2(const float *x, size_t w, float *y, size_t oh, size_t ow);
#endif
