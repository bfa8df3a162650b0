#ifndef KERF_EXP_AVX2_H
#define KERF_EXP_AVX2_H
/* Eight-lane exp shared by the AVX2 math kernels (private to this target). */
#include <immintrin.h>

#define SET(v) _mm256_set1_ps(v)

/* fastExp of FastMath.swift, eight lanes. */
__attribute__((target("avx2"), always_inline)) static inline __m256 exp8(__m256 x) {
    const __m256 lo = SET(-87.33f), hi = SET(88.3f);
    __m256 c = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 shifted = _mm256_add_ps(_mm256_mul_ps(c, SET(1.44269504f)), SET(12582912.0f));
    __m256 n = _mm256_sub_ps(shifted, SET(12582912.0f));
    __m256 r = _mm256_add_ps(_mm256_sub_ps(c, _mm256_mul_ps(n, SET(0.693359375f))), _mm256_mul_ps(n, SET(2.12194440e-4f)));
    __m256 p = SET(1.9875691500e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), SET(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), SET(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), SET(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), SET(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), SET(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r), SET(1.0f));
    __m256i bits = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(0x4B400000)), _mm256_set1_epi32(127)), 23);
    __m256 result = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    result = _mm256_blendv_ps(result, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    result = _mm256_blendv_ps(result, SET(__builtin_inff()), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    return _mm256_blendv_ps(result, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

#endif
