/* Transposed requantization in eight lanes; contract in include/kerf_requantize.h. */
#include "kerf_requantize.h"
#include <immintrin.h>
#include <math.h>
#include <string.h>

#pragma STDC FP_CONTRACT OFF /* a * b + c rounds twice, as in Swift */

#define AVX2 __attribute__((target("avx2")))

/* The scalar form of one element (and of Int8Epilogue.swift's requantizeProduct). */
static inline int32_t requantize_one(int32_t sum, float scale, float low, float high, int32_t zero) {
    float v = (float)sum * scale;
    v = v > low ? v : low;
    v = v < high ? v : high;
    return (int32_t)nearbyintf(v) + zero; /* the default rounding mode: half to even */
}

/* Transposes eight rows of eight int32 in place: r[k] becomes column k. */
AVX2 static inline void transpose8(__m256i r[8]) {
    __m256 a0 = _mm256_castsi256_ps(r[0]), a1 = _mm256_castsi256_ps(r[1]), a2 = _mm256_castsi256_ps(r[2]),
           a3 = _mm256_castsi256_ps(r[3]), a4 = _mm256_castsi256_ps(r[4]), a5 = _mm256_castsi256_ps(r[5]),
           a6 = _mm256_castsi256_ps(r[6]), a7 = _mm256_castsi256_ps(r[7]);
    __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
    __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
    __m256 t4 = _mm256_unpacklo_ps(a4, a5), t5 = _mm256_unpackhi_ps(a4, a5);
    __m256 t6 = _mm256_unpacklo_ps(a6, a7), t7 = _mm256_unpackhi_ps(a6, a7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_castps_si256(_mm256_permute2f128_ps(u0, u4, 0x20));
    r[1] = _mm256_castps_si256(_mm256_permute2f128_ps(u1, u5, 0x20));
    r[2] = _mm256_castps_si256(_mm256_permute2f128_ps(u2, u6, 0x20));
    r[3] = _mm256_castps_si256(_mm256_permute2f128_ps(u3, u7, 0x20));
    r[4] = _mm256_castps_si256(_mm256_permute2f128_ps(u0, u4, 0x31));
    r[5] = _mm256_castps_si256(_mm256_permute2f128_ps(u1, u5, 0x31));
    r[6] = _mm256_castps_si256(_mm256_permute2f128_ps(u2, u6, 0x31));
    r[7] = _mm256_castps_si256(_mm256_permute2f128_ps(u3, u7, 0x31));
}

/* Eight sums (bias added) times scale, clamped to [low, high], rounded half to even, plus zero,
 * as eight bytes in the low half (int8 when out_signed, else uint8). */
AVX2 static inline __m128i requantize_lanes(__m256i s, __m256 scale, __m256 vlow, __m256 vhigh, __m256i vzero, int out_signed) {
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(s), scale);
    v = _mm256_min_ps(_mm256_max_ps(v, vlow), vhigh);
    __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), vzero); /* within [lo, hi] */
    __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    return out_signed ? _mm_packs_epi16(words, words) : _mm_packus_epi16(words, words);
}

AVX2 void kerf_requantize_transposed_avx2(const int32_t *acc, size_t m, size_t n, size_t ld_acc,
                                          const int32_t *bias, int bias_per_column,
                                          const float *scales, int scales_per_column,
                                          int32_t zero, int32_t lo, int32_t hi,
                                          void *y, size_t y_stride, int out_signed) {
    uint8_t *out = y;
    const float low = (float)(lo - zero), high = (float)(hi - zero);
    const __m256 vlow = _mm256_set1_ps(low), vhigh = _mm256_set1_ps(high);
    const __m256i vzero = _mm256_set1_epi32(zero);
    size_t j0 = 0;
    for (; j0 + 8 <= n; j0 += 8) {
        size_t i0 = 0;
        for (; i0 + 8 <= m; i0 += 8) {
            __m256i r[8];
            for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_si256((const __m256i *)(acc + (i0 + k) * ld_acc + j0));
            transpose8(r); /* r[k]: column j0 + k, rows i0 ..< i0 + 8 */
            for (int k = 0; k < 8; k++) {
                size_t j = j0 + k;
                __m256i s = r[k];
                if (bias) s = _mm256_add_epi32(s, _mm256_set1_epi32(bias[bias_per_column ? j : 0]));
                __m128i bytes = requantize_lanes(s, _mm256_set1_ps(scales[scales_per_column ? j : 0]), vlow, vhigh, vzero, out_signed);
                _mm_storel_epi64((__m128i *)(out + j * y_stride + i0), bytes);
            }
        }
        for (; i0 < m; i0++)
            for (size_t j = j0; j < j0 + 8; j++) {
                int32_t sum = (int32_t)((uint32_t)acc[i0 * ld_acc + j] + (uint32_t)(bias ? bias[bias_per_column ? j : 0] : 0)); /* wraps, as Swift's &+ */
                int32_t q = requantize_one(sum, scales[scales_per_column ? j : 0], low, high, zero);
                out[j * y_stride + i0] = (uint8_t)q;
            }
    }
    for (size_t j = j0; j < n; j++)
        for (size_t i = 0; i < m; i++) {
            int32_t sum = (int32_t)((uint32_t)acc[i * ld_acc + j] + (uint32_t)(bias ? bias[bias_per_column ? j : 0] : 0));
            int32_t q = requantize_one(sum, scales[scales_per_column ? j : 0], low, high, zero);
            out[j * y_stride + i] = (uint8_t)q;
        }
}

AVX2 void kerf_requantize_rows_avx2(const int32_t *acc, size_t m, size_t n, size_t ld_acc,
                                   const int32_t *bias, int bias_per_column,
                                   const float *scales, int scales_per_column,
                                   int32_t zero, int32_t lo, int32_t hi,
                                   void *y, size_t y_stride, int out_signed) {
    uint8_t *out = y;
    const float low = (float)(lo - zero), high = (float)(hi - zero);
    const __m256 vlow = _mm256_set1_ps(low), vhigh = _mm256_set1_ps(high);
    const __m256i vzero = _mm256_set1_epi32(zero);
    for (size_t i = 0; i < m; i++) {
        const int32_t *row = acc + i * ld_acc;
        uint8_t *dst = out + i * y_stride;
        size_t j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256i s = _mm256_loadu_si256((const __m256i *)(row + j));
            if (bias) s = _mm256_add_epi32(s, bias_per_column ? _mm256_loadu_si256((const __m256i *)(bias + j)) : _mm256_set1_epi32(bias[0]));
            __m256 scale = scales_per_column ? _mm256_loadu_ps(scales + j) : _mm256_set1_ps(scales[0]);
            _mm_storel_epi64((__m128i *)(dst + j), requantize_lanes(s, scale, vlow, vhigh, vzero, out_signed));
        }
        for (; j < n; j++) {
            int32_t sum = (int32_t)((uint32_t)row[j] + (uint32_t)(bias ? bias[bias_per_column ? j : 0] : 0)); /* wraps, as Swift's &+ */
            dst[j] = (uint8_t)requantize_one(sum, scales[scales_per_column ? j : 0], low, high, zero);
        }
    }
}

AVX2 void kerf_dequantize_rows_avx2(const int32_t *acc, size_t m, size_t n, size_t ld_acc, const int32_t *offsets,
                                   const float *scales, int scales_per_column, const float *bias, int bias_per_column,
                                   float *y, size_t y_stride) {
    for (size_t i = 0; i < m; i++) {
        const int32_t *row = acc + i * ld_acc;
        float *dst = y + i * y_stride;
        size_t j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256i s = _mm256_loadu_si256((const __m256i *)(row + j));
            if (offsets) s = _mm256_add_epi32(s, _mm256_loadu_si256((const __m256i *)(offsets + j)));
            __m256 scale = scales_per_column ? _mm256_loadu_ps(scales + j) : _mm256_set1_ps(scales[0]);
            __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(s), scale);
            if (bias) v = _mm256_add_ps(v, bias_per_column ? _mm256_loadu_ps(bias + j) : _mm256_set1_ps(bias[0]));
            _mm256_storeu_ps(dst + j, v);
        }
        for (; j < n; j++) {
            int32_t sum = (int32_t)((uint32_t)row[j] + (uint32_t)(offsets ? offsets[j] : 0)); /* wraps, as Swift's &+ */
            float v = (float)sum * scales[scales_per_column ? j : 0];
            if (bias) v = v + bias[bias_per_column ? j : 0];
            dst[j] = v;
        }
    }
}

AVX2 void kerf_quantize_bytes_avx2(const float *x, size_t count, float scale, int32_t zero, int32_t lo, int32_t hi,
                                   void *y, int out_signed) {
    uint8_t *out = y;
    const float low = (float)lo - (float)zero, high = (float)hi - (float)zero;
    const __m256 vscale = _mm256_set1_ps(scale), vlow = _mm256_set1_ps(low), vhigh = _mm256_set1_ps(high);
    const __m256i vzero = _mm256_set1_epi32(zero);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), vscale);
        v = _mm256_min_ps(_mm256_max_ps(v, vlow), vhigh); /* max(NaN, low) is low */
        __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), vzero);
        __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        __m128i bytes = out_signed ? _mm_packs_epi16(words, words) : _mm_packus_epi16(words, words);
        _mm_storel_epi64((__m128i *)(out + i), bytes);
    }
    for (; i < count; i++) {
        float v = x[i] / scale;
        v = v > low ? v : low;
        v = v < high ? v : high;
        out[i] = (uint8_t)((int32_t)nearbyintf(v) + zero);
    }
}
