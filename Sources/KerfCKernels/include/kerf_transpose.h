#ifndef KERF_TRANSPOSE_H
#define KERF_TRANSPOSE_H
/* AVX2 float matrix transpose (layout changes around oneDNN's channels-last convolutions).
 * Call only when kerf_qgemm_avx2_available() (kerf_qgemm.h) returns 1. */
#include <stddef.h>
#include <stdint.h>

/* dst[j * ldd + i] = src[i * lds + j] (+ add[j * ldd + i] when add is not NULL) for i < rows,
 * j < cols; row strides lds >= cols and ldd >= rows in elements. src must not overlap dst;
 * add may be dst itself. */
void kerf_transpose_add_f32_avx2(const float *src, size_t rows, size_t cols, size_t lds, const float *add, float *dst,
                                 size_t ldd);

/* kerf_transpose_add_f32_avx2 split over the calling thread's OpenMP team
 * (omp_get_max_threads(), the team oneDNN's primitives use), for layout changes next to a
 * oneDNN convolution. Call it only from a thread that is not itself a worker of another pool. */
void kerf_transpose_add_f32_team(const float *src, size_t rows, size_t cols, size_t lds, const float *add, float *dst,
                                 size_t ldd);

/* dst[j * ldd + i] = src[i * lds + j] for i < rows, j < cols: bytes (int8 or uint8 tensors
 * made channels-last), 16x16 tiles with SSE2 (every x86-64 CPU has it). src must not overlap
 * dst. */
void kerf_transpose_u8(const uint8_t *src, size_t rows, size_t cols, size_t lds, uint8_t *dst, size_t ldd);
#endif
