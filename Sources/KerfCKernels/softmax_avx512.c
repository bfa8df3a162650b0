/* AVX-512 softmax rows: softmax_avx2.c's steps in sixteen lanes (the exp's multiply-adds
 * fused); contract in include/kerf_math.h. */
#include "kerf_math.h"
#include "exp_avx512.h"
#include <immintrin.h>

__attribute__((target("avx512f"))) static void softmax_row16(const float *x, float *y, size_t n) {
    __m512 lanes = SET16(-__builtin_inff());
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        lanes = _mm512_mask_max_ps(lanes, k, lanes, _mm512_maskz_loadu_ps(k, x + j));
    }
    __m512 vm = SET16(_mm512_reduce_max_ps(lanes)), sums = _mm512_setzero_ps();
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vm));
        _mm512_mask_storeu_ps(y + j, k, e);
        sums = _mm512_mask_add_ps(sums, k, sums, e);
    }
    __m512 scale = SET16(1.0f / _mm512_reduce_add_ps(sums));
    for (size_t j = 0; j < n; j += 16) {
        __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        _mm512_mask_storeu_ps(y + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + j), scale));
    }
}

__attribute__((target("avx512f"))) void kerf_softmax_rows_avx512(const float *x, float *y, size_t rows, size_t n) {
    for (size_t r = 0; r < rows; r++) softmax_row16(x + r * n, y + r * n, n);
}
