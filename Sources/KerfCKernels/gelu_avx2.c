/* AVX2 GELU; contract in include/kerf_math.h. */
#include "kerf_math.h"
#include "exp_avx2.h"
#include <immintrin.h>

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
