/* AVX2 erf and GELU; contracts in include/kerf_math.h. */
#include "kerf_math.h"
#include "exp_avx2.h"
#include <immintrin.h>

/* fastErf of FastMath.swift, eight lanes, the same operations in the same order. */
__attribute__((target("avx2"), always_inline)) static inline __m256 erf8(__m256 x) {
    /* min/max return their second operand when one is NaN: a NaN x passes through. */
    __m256 c = _mm256_min_ps(SET(4.0f), _mm256_max_ps(SET(-4.0f), x));
    __m256 z = _mm256_mul_ps(c, c);
    __m256 p = SET(-2.72614225801306e-10f);
    p = _mm256_add_ps(_mm256_mul_ps(p, z), SET(2.77068142495902e-08f));
    p = _mm256_add_ps(_mm256_mul_ps(p, z), SET(-2.10102402082508e-06f));
    p = _mm256_add_ps(_mm256_mul_ps(p, z), SET(-5.69250639462346e-05f));
    p = _mm256_add_ps(_mm256_mul_ps(p, z), SET(-7.34990630326855e-04f));
    p = _mm256_add_ps(_mm256_mul_ps(p, z), SET(-2.95459980854025e-03f));
    p = _mm256_add_ps(_mm256_mul_ps(p, z), SET(-1.60960333262415e-02f));
    __m256 q = SET(-1.45660718464996e-05f);
    q = _mm256_add_ps(_mm256_mul_ps(q, z), SET(-2.13374055278905e-04f));
    q = _mm256_add_ps(_mm256_mul_ps(q, z), SET(-1.68282697438203e-03f));
    q = _mm256_add_ps(_mm256_mul_ps(q, z), SET(-7.37332916720468e-03f));
    q = _mm256_add_ps(_mm256_mul_ps(q, z), SET(-1.42647390514189e-02f));
    return _mm256_div_ps(_mm256_mul_ps(p, c), q);
}

/* Runs `body` over n floats in blocks of eight, the tail through a zero-padded block. */
#define EACH8(x, y, n, body)                                                      \
    do {                                                                          \
        size_t i_ = 0;                                                            \
        for (; i_ + 8 <= (n); i_ += 8) {                                          \
            __m256 v = _mm256_loadu_ps((x) + i_);                                 \
            _mm256_storeu_ps((y) + i_, body);                                     \
        }                                                                         \
        if (i_ < (n)) {                                                           \
            float xs_[8] = {0}, ys_[8];                                           \
            for (size_t k_ = 0; i_ + k_ < (n); k_++) xs_[k_] = (x)[i_ + k_];      \
            __m256 v = _mm256_loadu_ps(xs_);                                      \
            _mm256_storeu_ps(ys_, body);                                          \
            for (size_t k_ = 0; i_ + k_ < (n); k_++) (y)[i_ + k_] = ys_[k_];      \
        }                                                                         \
    } while (0)

__attribute__((target("avx2"))) void kerf_erf_avx2(const float *x, float *y, size_t n) {
    EACH8(x, y, n, erf8(v));
}

__attribute__((target("avx2"))) void kerf_gelu_avx2(const float *x, float *y, size_t n) {
    EACH8(x, y, n, _mm256_mul_ps(_mm256_mul_ps(SET(0.5f), v),
                                 _mm256_add_ps(SET(1.0f), erf8(_mm256_mul_ps(v, SET(0.70710678118654752f))))));
}

__attribute__((target("avx2"))) void kerf_silu_avx2(const float *x, float *y, size_t n) {
    EACH8(x, y, n, _mm256_div_ps(v, _mm256_add_ps(SET(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), v)))));
}

/* GELU's slope at x: Φ(x) + x·φ(x), as FastMath's scalar form in ActivationGrad.swift. */
__attribute__((target("avx2"), always_inline)) static inline __m256 gelu_slope8(__m256 v) {
    __m256 cdf = _mm256_mul_ps(SET(0.5f), _mm256_add_ps(SET(1.0f), erf8(_mm256_mul_ps(v, SET(0.70710678118654752f)))));
    __m256 pdf = _mm256_mul_ps(exp8(_mm256_mul_ps(_mm256_mul_ps(SET(-0.5f), v), v)), SET(0.3989422804014327f));
    return _mm256_add_ps(cdf, _mm256_mul_ps(v, pdf));
}

__attribute__((target("avx2"))) void kerf_gelu_grad_avx2(const float *dy, const float *x, float *dx, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(gelu_slope8(_mm256_loadu_ps(x + i)), _mm256_loadu_ps(dy + i)));
    if (i < n) {
        float xs[8] = {0}, gs[8] = {0}, out[8];
        for (size_t k = 0; i + k < n; k++) { xs[k] = x[i + k]; gs[k] = dy[i + k]; }
        _mm256_storeu_ps(out, _mm256_mul_ps(gelu_slope8(_mm256_loadu_ps(xs)), _mm256_loadu_ps(gs)));
        for (size_t k = 0; i + k < n; k++) dx[i + k] = out[k];
    }
}
