#ifndef KERF_TRANSPOSE_H
#define KERF_TRANSPOSE_H
/* AVX2 float matrix transpose (layout changes around oneDNN's channels-last convolutions).
 * Call only when kerf_qgemm_avx2_available() (kerf_qgemm.h) returns 1. */
#include <stddef.h>

/* dst[j * ldd + i] = src[i * lds + j] (+ add[j * ldd + i] when add is not NULL) for i < rows,
 * j < cols; row strides lds >= cols and ldd >= rows in elements. src must not overlap dst;
 * add may be dst itself. */
void kerf_transpose_add_f32_avx2(const float *src, size_t rows, size_t cols, size_t lds, const float *add, float *dst,
                                 size_t ldd);
#endif
