#ifndef KERF_GEMM_H
#define KERF_GEMM_H
/* Float products too small for a oneDNN call. AVX2 + FMA: call only when
 * kerf_qgemm_avx2_available() (kerf_qgemm.h) returns 1. */
#include <stddef.h>

/* c[m, n] = a[m, k] . w[k, n] (+ bias[n] when bias is not NULL), dense row-major, no overlap
 * between c and the inputs. Each row sums the products of k in order from zero, with fused
 * multiply-adds vectorized over n, then adds the bias (the order of a GEMM then an Add).
 * Subnormal inputs read as zero and subnormal results are flushed to zero (the caller's
 * floating-point state is restored on return). */
void kerf_small_product_f32_avx2(size_t m, size_t k, size_t n, const float *a, const float *w, const float *bias, float *c);
#endif
