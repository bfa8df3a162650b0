/* Quantization to bytes in sixteen lanes; contract in include/kerf_requantize.h. */
#include "kerf_requantize.h"
#include "kerf_isa.h"
#include <immintrin.h>
#include <math.h>

#define AVX512 __attribute__((target("avx512f")))

/* x / scale correctly rounded without a divide (Markstein), given reciprocal = 1 / scale rounded
 * and scale normal with a normal reciprocal: q = x r is within an ulp, the residual x - q scale
 * is exact in a fused multiply-add, and q + r residual rounds to the quotient. A non-finite q
 * (x infinite or NaN) is already the quotient. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 quotient16(__m512 x, __m512 scale, __m512 reciprocal) {
    __m512 q = _mm512_mul_ps(x, reciprocal);
    __m512 refined = _mm512_fmadd_ps(_mm512_fnmadd_ps(q, scale, x), reciprocal, q);
    __mmask16 finite = _mm512_cmp_ps_mask(_mm512_sub_ps(q, q), _mm512_setzero_ps(), _CMP_EQ_OQ);
    return _mm512_mask_blend_ps(finite, q, refined);
}

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
        __m512 q = quotient16(_mm512_loadu_ps(x + i), vscale, vreciprocal);
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

int kerf_avx512bw_available(void) { return kerf_isa_has(KERF_HAS_AVX512); }

__attribute__((target("avx512f,avx512bw,avx512vl"))) void kerf_channel_affine_bytes_avx512(const void *x, size_t pixels, size_t channels, int in_signed, int32_t x_zero,
                                             float x_scale, const float *k, const float *shift, int relu, float y_scale,
                                             int32_t y_zero, int32_t lo, int32_t hi, void *y) {
    const uint8_t *in = x;
    uint8_t *out = y;
    const __m512i vxzero = _mm512_set1_epi32(x_zero), vyzero = _mm512_set1_epi32(y_zero);
    const __m512 vxscale = _mm512_set1_ps(x_scale), vyscale = _mm512_set1_ps(y_scale), vreciprocal = _mm512_set1_ps(1.0f / y_scale);
    const __m512 vlow = _mm512_set1_ps((float)lo - (float)y_zero), vhigh = _mm512_set1_ps((float)hi - (float)y_zero);
    for (size_t p = 0; p < pixels; p++) {
        const uint8_t *src = in + p * channels;
        uint8_t *dst = out + p * channels;
        for (size_t c = 0; c < channels; c += 16) {
            __mmask16 lanes = channels - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (channels - c)) - 1);
            __m128i bytes = _mm_maskz_loadu_epi8(lanes, src + c);
            __m512i n = in_signed ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
            /* DequantizeLinear, BatchNormalization (x k + shift, unfused), Relu, QuantizeLinear. */
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(n, vxzero)), vxscale);
            v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_maskz_loadu_ps(lanes, k + c)), _mm512_maskz_loadu_ps(lanes, shift + c));
            if (relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
            v = quotient16(v, vyscale, vreciprocal);
            v = _mm512_min_ps(_mm512_max_ps(v, vlow), vhigh); /* max(NaN, low) is low */
            __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), vyzero);
            _mm_mask_storeu_epi8(dst + c, lanes, _mm512_cvtepi32_epi8(q));
        }
    }
}

AVX512 void kerf_value_range_avx512(const float *x, size_t count, float *low, float *high) {
    /* minps(v, m) is v < m ? v : m: a NaN v leaves m (as Quantize.swift's comparisons do). */
    __m512 lo[4], hi[4];
    for (int a = 0; a < 4; a++) lo[a] = hi[a] = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= count; i += 64)
        for (int a = 0; a < 4; a++) {
            __m512 v = _mm512_loadu_ps(x + i + 16 * a);
            lo[a] = _mm512_min_ps(v, lo[a]);
            hi[a] = _mm512_max_ps(v, hi[a]);
        }
    for (; i + 16 <= count; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        lo[0] = _mm512_min_ps(v, lo[0]);
        hi[0] = _mm512_max_ps(v, hi[0]);
    }
    if (i < count) {
        __mmask16 k = (__mmask16)((1u << (count - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i); /* zeros past the end: within the range already */
        lo[0] = _mm512_min_ps(v, lo[0]);
        hi[0] = _mm512_max_ps(v, hi[0]);
    }
    __m512 l = _mm512_min_ps(_mm512_min_ps(lo[0], lo[1]), _mm512_min_ps(lo[2], lo[3]));
    __m512 h = _mm512_max_ps(_mm512_max_ps(hi[0], hi[1]), _mm512_max_ps(hi[2], hi[3]));
    *low = _mm512_reduce_min_ps(l);
    *high = _mm512_reduce_max_ps(h);
}
