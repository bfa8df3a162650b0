/* Contract in include/kerf_gemm.h. */
#include "kerf_gemm.h"
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma"), always_inline)) static inline

/* Lanes j < cols of eight (cols <= 8) as a maskload mask. */
AVX2 __m256i lane_mask(size_t cols) {
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)cols), index);
}

/* ROWS rows by up to 16 columns starting at column j0 (FULL: all 16): each sum from zero over
 * k in order with fused multiply-adds, then the bias added. */
AVX2 void block(size_t rows, int full, size_t k, size_t n, size_t j0, size_t cols, const float *a, const float *w,
                const float *bias, float *c) {
    const __m256i m0 = lane_mask(cols < 8 ? cols : 8), m1 = lane_mask(cols > 8 ? cols - 8 : 0);
    __m256 acc[4][2];
    for (size_t r = 0; r < rows; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (size_t i = 0; i < k; i++) {
        const float *wi = w + i * n + j0;
        const __m256 w0 = full ? _mm256_loadu_ps(wi) : _mm256_maskload_ps(wi, m0);
        const __m256 w1 = full ? _mm256_loadu_ps(wi + 8) : _mm256_maskload_ps(wi + 8, m1);
        for (size_t r = 0; r < rows; r++) {
            const __m256 v = _mm256_broadcast_ss(a + r * k + i);
            acc[r][0] = _mm256_fmadd_ps(v, w0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(v, w1, acc[r][1]);
        }
    }
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    if (bias) {
        b0 = full ? _mm256_loadu_ps(bias + j0) : _mm256_maskload_ps(bias + j0, m0);
        b1 = full ? _mm256_loadu_ps(bias + j0 + 8) : _mm256_maskload_ps(bias + j0 + 8, m1);
    }
    for (size_t r = 0; r < rows; r++) {
        float *out = c + r * n + j0;
        __m256 y0 = bias ? _mm256_add_ps(acc[r][0], b0) : acc[r][0], y1 = bias ? _mm256_add_ps(acc[r][1], b1) : acc[r][1];
        if (full) {
            _mm256_storeu_ps(out, y0);
            _mm256_storeu_ps(out + 8, y1);
        } else {
            _mm256_maskstore_ps(out, m0, y0);
            _mm256_maskstore_ps(out + 8, m1, y1);
        }
    }
}

/* All rows for the columns j0 ..< j0 + cols, four at a time. */
AVX2 void columns(int full, size_t m, size_t k, size_t n, size_t j0, size_t cols, const float *a, const float *w,
                  const float *bias, float *c) {
    size_t r = 0;
    for (; r + 4 <= m; r += 4) block(4, full, k, n, j0, cols, a + r * k, w, bias, c + r * n);
    switch (m - r) {
    case 3: block(3, full, k, n, j0, cols, a + r * k, w, bias, c + r * n); break;
    case 2: block(2, full, k, n, j0, cols, a + r * k, w, bias, c + r * n); break;
    case 1: block(1, full, k, n, j0, cols, a + r * k, w, bias, c + r * n); break;
    default: break;
    }
}

__attribute__((target("avx2,fma"))) void kerf_small_product_f32_avx2(size_t m, size_t k, size_t n, const float *a,
                                                                     const float *w, const float *bias, float *c) {
    /* Subnormals flushed (FTZ and DAZ) for the call: a multiply-add that makes or reads one
     * costs a microcode assist of about a hundred cycles (3x slower on scikit-learn's weights). */
    const unsigned int mxcsr = _mm_getcsr();
    _mm_setcsr(mxcsr | 0x8040u);
    size_t j0 = 0;
    for (; j0 + 16 <= n; j0 += 16) columns(1, m, k, n, j0, 16, a, w, bias, c);
    if (j0 < n) columns(0, m, k, n, j0, n - j0, a, w, bias, c);
    _mm_setcsr(mxcsr);
}
