#ifndef KERF_EXP_AVX512_H
#define KERF_EXP_AVX512_H
/* Sixteen-lane exp shared by the AVX-512 math kernels (private to this target). */
#include <immintrin.h>

#define SET16(v) _mm512_set1_ps(v)
#define T512 __attribute__((target("avx512f"), always_inline)) static inline

/* fastExp of FastMath.swift, sixteen lanes, multiply-adds fused. */
T512 __m512 exp16(__m512 x) {
    const __m512 lo = SET16(-87.33f), hi = SET16(88.3f);
    __m512 c = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 shifted = _mm512_fmadd_ps(c, SET16(1.44269504f), SET16(12582912.0f));
    __m512 n = _mm512_sub_ps(shifted, SET16(12582912.0f));
    __m512 r = _mm512_fmadd_ps(n, SET16(2.12194440e-4f), _mm512_fnmadd_ps(n, SET16(0.693359375f), c));
    __m512 p = SET16(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, SET16(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, SET16(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, SET16(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, SET16(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, SET16(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), SET16(1.0f));
    __m512i bits = _mm512_slli_epi32(
        _mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(0x4B400000)), _mm512_set1_epi32(127)), 23);
    __m512 result = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
    result = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), result, _mm512_setzero_ps());
    result = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), result, SET16(__builtin_inff()));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), result, x);
}

#endif
