/* AVX-512 softmax rows: softmax_avx2.c's steps in sixteen lanes (the exp's multiply-adds
 * fused); contract in include/kerf_math.h. */
#include "kerf_math.h"
#include "exp_avx512.h"
#include <immintrin.h>

#define ROW_GROUP 4

/* Softmax of R rows of n (row stride n), R <= ROW_GROUP a constant at each call: every row gets
 * exactly the operations it gets alone (the lanes' running max and sum in column order, then
 * one reduction), the R rows interleaved so that their dependency chains overlap. */
__attribute__((target("avx512f"), always_inline)) static inline void softmax_rows_interleaved(const float *x, float *y, size_t n,
                                                                                              const int R) {
    __m512 lanes[ROW_GROUP], vm[ROW_GROUP], sums[ROW_GROUP], scale[ROW_GROUP];
    for (int r = 0; r < R; r++) lanes[r] = SET16(-__builtin_inff());
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        for (int r = 0; r < R; r++) lanes[r] = _mm512_mask_max_ps(lanes[r], k, lanes[r], _mm512_maskz_loadu_ps(k, x + r * n + j));
    }
    for (int r = 0; r < R; r++) {
        vm[r] = SET16(_mm512_reduce_max_ps(lanes[r]));
        sums[r] = _mm512_setzero_ps();
    }
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        for (int r = 0; r < R; r++) {
            __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + r * n + j), vm[r]));
            _mm512_mask_storeu_ps(y + r * n + j, k, e);
            sums[r] = _mm512_mask_add_ps(sums[r], k, sums[r], e);
        }
    }
    for (int r = 0; r < R; r++) scale[r] = SET16(1.0f / _mm512_reduce_add_ps(sums[r]));
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        for (int r = 0; r < R; r++)
            _mm512_mask_storeu_ps(y + r * n + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + r * n + j), scale[r]));
    }
}

__attribute__((target("avx512f"))) void kerf_softmax_rows_avx512(const float *x, float *y, size_t rows, size_t n) {
    size_t r = 0;
    for (; r + ROW_GROUP <= rows; r += ROW_GROUP) softmax_rows_interleaved(x + r * n, y + r * n, n, ROW_GROUP);
    for (; r < rows; r++) softmax_rows_interleaved(x + r * n, y + r * n, n, 1);
}

#pragma STDC FP_CONTRACT OFF
__attribute__((target("avx512f"))) void kerf_scale_add_row_avx512(const float *x, size_t n, float c, int multiply,
                                                                  const float *mask, int mask_per_element, float *y) {
    const __m512 vc = SET16(c), one = SET16(mask[0]);
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(k, x + j);
        v = multiply ? _mm512_mul_ps(v, vc) : _mm512_div_ps(v, vc);
        v = _mm512_add_ps(v, mask_per_element ? _mm512_maskz_loadu_ps(k, mask + j) : one);
        _mm512_mask_storeu_ps(y + j, k, v);
    }
}
