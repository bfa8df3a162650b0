/* int8 requantization, QLinearAdd and byte tables in sixteen (or sixty-four) lanes; contracts in
 * include/kerf_requantize.h. */
#include "kerf_requantize.h"
#include "kerf_isa.h"
#include <immintrin.h>

#pragma STDC FP_CONTRACT OFF /* a * b + c rounds twice, as in Swift */

#define AVX512 __attribute__((target("avx512f")))

/* Sixteen int32 results (already within [lo, hi] after the clamp) stored as bytes: the low byte of
 * each is the int8 or uint8 bit pattern. */
__attribute__((target("avx512f"), always_inline)) static inline void store_bytes(void *y, __m512i q, __mmask16 k) {
    _mm512_mask_cvtepi32_storeu_epi8(y, k, q);
}

AVX512 void kerf_requantize_rows_avx512(const int32_t *acc, size_t m, size_t n, size_t ld_acc, const int32_t *bias,
                                        const float *scales, int32_t zero, int32_t lo, int32_t hi, void *y, size_t y_stride) {
    uint8_t *out = y;
    const __m512 vlow = _mm512_set1_ps((float)(lo - zero)), vhigh = _mm512_set1_ps((float)(hi - zero));
    const __m512i vzero = _mm512_set1_epi32(zero);
    for (size_t i = 0; i < m; i++) {
        const int32_t *row = acc + i * ld_acc;
        for (size_t j = 0; j < n; j += 16) {
            __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
            __m512i s = _mm512_maskz_loadu_epi32(k, row + j);
            if (bias) s = _mm512_add_epi32(s, _mm512_maskz_loadu_epi32(k, bias + j));
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_maskz_loadu_ps(k, scales + j));
            v = _mm512_min_ps(_mm512_max_ps(v, vlow), vhigh);
            store_bytes(out + i * y_stride + j, _mm512_add_epi32(_mm512_cvtps_epi32(v), vzero), k);
        }
    }
}

/* Sixteen bytes at p widened to int32, signed or not. */
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) static inline __m512i widen(const void *p, __mmask16 k, int is_signed) {
    __m128i b = _mm_maskz_loadu_epi8(k, p);
    return is_signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void kerf_quantized_add_avx512(
        const void *a, float a_ratio, int32_t a_zero, const void *b, float b_ratio, int32_t b_zero, size_t count,
        int32_t y_zero, int32_t lo, int32_t hi, void *y, int is_signed) {
    const uint8_t *pa = a, *pb = b;
    uint8_t *out = y;
    const __m512 ar = _mm512_set1_ps(a_ratio), br = _mm512_set1_ps(b_ratio);
    const __m512i az = _mm512_set1_epi32(a_zero), bz = _mm512_set1_epi32(b_zero), yz = _mm512_set1_epi32(y_zero);
    const __m512 vlow = _mm512_set1_ps((float)(lo - y_zero)), vhigh = _mm512_set1_ps((float)(hi - y_zero));
    for (size_t i = 0; i < count; i += 16) {
        __mmask16 k = count - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - i)) - 1);
        __m512 va = _mm512_mul_ps(ar, _mm512_cvtepi32_ps(_mm512_sub_epi32(widen(pa + i, k, is_signed), az)));
        __m512 vb = _mm512_mul_ps(br, _mm512_cvtepi32_ps(_mm512_sub_epi32(widen(pb + i, k, is_signed), bz)));
        __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(va, vb), vlow), vhigh);
        store_bytes(out + i, _mm512_add_epi32(_mm512_cvtps_epi32(v), yz), k);
    }
}

int kerf_avx512vbmi_available(void) {
    return kerf_isa_has(KERF_HAS_AVX512_VBMI);
}

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void kerf_byte_table_avx512vbmi(const uint8_t *x, size_t count,
                                                                                       const uint8_t *table, uint8_t *y) {
    const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
    const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
    for (size_t i = 0; i < count; i += 64) {
        __mmask64 k = count - i >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (count - i)) - 1);
        __m512i idx = _mm512_maskz_loadu_epi8(k, x + i);
        /* The low seven bits pick one of 128 entries of each half; the top bit picks the half. */
        __m512i low = _mm512_permutex2var_epi8(t0, idx, t1), high = _mm512_permutex2var_epi8(t2, idx, t3);
        _mm512_mask_storeu_epi8(y + i, k, _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), low, high));
    }
}
