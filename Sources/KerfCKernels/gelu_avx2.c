/* AVX2 GELU; contract in include/kerf_math.h. */
#include "kerf_math.h"
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

/* fastErfc of FastMath.swift, eight lanes. */
__attribute__((target("avx2"), always_inline)) static inline __m256 erfc8(__m256 x) {
    __m256 z = _mm256_andnot_ps(SET(-0.0f), x);
    __m256 t = _mm256_div_ps(SET(1.0f), _mm256_add_ps(SET(1.0f), _mm256_mul_ps(SET(0.5f), z)));
    __m256 p = SET(0.17087277f);
    p = _mm256_sub_ps(_mm256_mul_ps(p, t), SET(0.82215223f));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), SET(1.48851587f));
    p = _mm256_sub_ps(_mm256_mul_ps(p, t), SET(1.13520398f));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), SET(0.27886807f));
    p = _mm256_sub_ps(_mm256_mul_ps(p, t), SET(0.18628806f));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), SET(0.09678418f));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), SET(0.37409196f));
    p = _mm256_add_ps(_mm256_mul_ps(p, t), SET(1.00002368f));
    p = _mm256_sub_ps(_mm256_mul_ps(p, t), SET(1.26551223f));
    __m256 negz = _mm256_xor_ps(z, SET(-0.0f));
    __m256 r = _mm256_mul_ps(t, exp8(_mm256_add_ps(_mm256_mul_ps(negz, z), p)));
    /* x >= 0 ? r : 2 - r (NaN x takes 2 - r, as the scalar comparison does) */
    return _mm256_blendv_ps(_mm256_sub_ps(SET(2.0f), r), r, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
}

__attribute__((target("avx2"))) void kerf_gelu_avx2(const float *x, float *y, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 e = erfc8(_mm256_mul_ps(_mm256_xor_ps(v, SET(-0.0f)), SET(0.70710678118654752f)));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(SET(0.5f), v), e));
    }
    if (i < n) {
        float xs[8] = {0}, ys[8];
        for (size_t k = 0; i + k < n; k++) xs[k] = x[i + k];
        kerf_gelu_avx2(xs, ys, 8);
        for (size_t k = 0; i + k < n; k++) y[i + k] = ys[k];
    }
}
