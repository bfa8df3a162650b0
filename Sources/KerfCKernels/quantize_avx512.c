/* Quantization to bytes in sixteen lanes; contract in include/kerf_requantize.h. */
#include "kerf_requantize.h"
#include <immintrin.h>
#include <math.h>

#define AVX512 __attribute__((target("avx512f")))

AVX512 void kerf_quantize_bytes_avx512(const float *x, size_t count, float scale, int32_t zero, int32_t lo, int32_t hi,
                                       void *y) {
    uint8_t *out = y;
    const float low = (float)lo - (float)zero, high = (float)hi - (float)zero;
    const float reciprocal = 1.0f / scale;
    const __m512 vscale = _mm512_set1_ps(scale), vreciprocal = _mm512_set1_ps(reciprocal);
    const __m512 vlow = _mm512_set1_ps(low), vhigh = _mm512_set1_ps(high);
    const __m512i vzero = _mm512_set1_epi32(zero);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        /* x / scale correctly rounded without a divide (Markstein): q = x r is within an ulp,
         * the residual x - q scale is exact in a fused multiply-add, and q + r residual rounds
         * to the quotient. A non-finite q (x infinite or NaN) is already the quotient. */
        __m512 q = _mm512_mul_ps(v, vreciprocal);
        __m512 residual = _mm512_fnmadd_ps(q, vscale, v);
        __m512 refined = _mm512_fmadd_ps(residual, vreciprocal, q);
        __mmask16 finite = _mm512_cmp_ps_mask(_mm512_sub_ps(q, q), _mm512_setzero_ps(), _CMP_EQ_OQ);
        q = _mm512_mask_blend_ps(finite, q, refined);
        q = _mm512_min_ps(_mm512_max_ps(q, vlow), vhigh); /* max(NaN, low) is low */
        __m512i n = _mm512_add_epi32(_mm512_cvtps_epi32(q), vzero);
        _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi32_epi8(n));
    }
    for (; i < count; i++) {
        float v = x[i] / scale;
        v = v > low ? v : low;
        v = v < high ? v : high;
        out[i] = (uint8_t)((int32_t)nearbyintf(v) + zero);
    }
}

AVX512 void kerf_dequantize_bytes_avx512(const void *x, size_t count, float scale, int32_t zero, int in_signed, float *y) {
    const uint8_t *in = x;
    const __m512 vscale = _mm512_set1_ps(scale);
    const __m512i vzero = _mm512_set1_epi32(zero);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(in + i));
        __m512i n = in_signed ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(n, vzero)), vscale));
    }
    for (; i < count; i++) {
        int32_t n = in_signed ? (int32_t)(int8_t)in[i] : (int32_t)in[i];
        y[i] = (float)(n - zero) * scale;
    }
}
