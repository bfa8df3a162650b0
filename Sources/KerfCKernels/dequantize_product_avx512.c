/* int8 GEMM sums to floats in sixteen lanes; contract in include/kerf_requantize.h. */
#include "kerf_requantize.h"
#include <immintrin.h>

#pragma STDC FP_CONTRACT OFF /* a * b + c rounds twice, as in Swift */

#define AVX512_INLINE __attribute__((target("avx512f"), always_inline)) static inline

/* Sixteen columns (fewer under `mask`) of one row; with_offsets / with_bias are constants at
 * every call, so each combination compiles to its own branch-free loop. */
AVX512_INLINE void dequantize16(const int32_t *acc, const int32_t *offsets, const float *scales, const float *bias,
                                float *y, __mmask16 mask, int with_offsets, int with_bias) {
    __m512i s = _mm512_maskz_loadu_epi32(mask, acc);
    if (with_offsets) s = _mm512_add_epi32(s, _mm512_maskz_loadu_epi32(mask, offsets));
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_maskz_loadu_ps(mask, scales));
    if (with_bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bias));
    _mm512_mask_storeu_ps(y, mask, v);
}

AVX512_INLINE void dequantize_rows(const int32_t *acc, size_t m, size_t n, size_t ld_acc, const int32_t *offsets,
                                   const float *scales, const float *bias, float *y, size_t y_stride,
                                   int with_offsets, int with_bias) {
    const __mmask16 tail = (__mmask16)((1u << (n % 16)) - 1);
    for (size_t i = 0; i < m; i++) {
        const int32_t *row = acc + i * ld_acc;
        float *dst = y + i * y_stride;
        size_t j = 0;
        for (; j + 16 <= n; j += 16)
            dequantize16(row + j, offsets + j, scales + j, bias + j, dst + j, 0xFFFF, with_offsets, with_bias);
        if (tail) dequantize16(row + j, offsets + j, scales + j, bias + j, dst + j, tail, with_offsets, with_bias);
    }
}

__attribute__((target("avx512f")))
void kerf_dequantize_rows_avx512(const int32_t *acc, size_t m, size_t n, size_t ld_acc, const int32_t *offsets,
                                 const float *scales, const float *bias, float *y, size_t y_stride) {
    if (offsets && bias) dequantize_rows(acc, m, n, ld_acc, offsets, scales, bias, y, y_stride, 1, 1);
    else if (offsets) dequantize_rows(acc, m, n, ld_acc, offsets, scales, bias, y, y_stride, 1, 0);
    else if (bias) dequantize_rows(acc, m, n, ld_acc, offsets, scales, bias, y, y_stride, 0, 1);
    else dequantize_rows(acc, m, n, ld_acc, offsets, scales, bias, y, y_stride, 0, 0);
}
