/* AVX-512 erf and GELU: erf_avx2.c's steps in sixteen lanes, multiply-adds fused and the
 * division as a reciprocal estimate refined by one Newton step; contracts in
 * include/kerf_math.h. */
#include "kerf_math.h"
#include "kerf_isa.h"
#include "exp_avx512.h"
#include <immintrin.h>

int kerf_avx512_available(void) { return kerf_isa_has(KERF_HAS_AVX512); }

/* fastErf of FastMath.swift, sixteen lanes. */
T512 __m512 erf16(__m512 x) {
    /* min/max return their second operand when one is NaN: a NaN x passes through. */
    __m512 c = _mm512_min_ps(SET16(4.0f), _mm512_max_ps(SET16(-4.0f), x));
    __m512 z = _mm512_mul_ps(c, c);
    __m512 p = SET16(-2.72614225801306e-10f);
    p = _mm512_fmadd_ps(p, z, SET16(2.77068142495902e-08f));
    p = _mm512_fmadd_ps(p, z, SET16(-2.10102402082508e-06f));
    p = _mm512_fmadd_ps(p, z, SET16(-5.69250639462346e-05f));
    p = _mm512_fmadd_ps(p, z, SET16(-7.34990630326855e-04f));
    p = _mm512_fmadd_ps(p, z, SET16(-2.95459980854025e-03f));
    p = _mm512_fmadd_ps(p, z, SET16(-1.60960333262415e-02f));
    __m512 q = SET16(-1.45660718464996e-05f);
    q = _mm512_fmadd_ps(q, z, SET16(-2.13374055278905e-04f));
    q = _mm512_fmadd_ps(q, z, SET16(-1.68282697438203e-03f));
    q = _mm512_fmadd_ps(q, z, SET16(-7.37332916720468e-03f));
    q = _mm512_fmadd_ps(q, z, SET16(-1.42647390514189e-02f));
    /* q is in [-2.4, -0.0142] for |x| <= 4, far from zero: 1/q to 2^-14, then r (2 - q r) to ~2^-28. */
    __m512 r = _mm512_rcp14_ps(q);
    r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, SET16(2.0f)));
    return _mm512_mul_ps(_mm512_mul_ps(p, c), r);
}

/* Runs `body` over n floats in blocks of sixteen, the tail under a lane mask. */
#define EACH16(x, y, n, body)                                                                         \
    for (size_t i_ = 0; i_ < (n); i_ += 16) {                                                         \
        __mmask16 lanes_ = (n) - i_ >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << ((n) - i_)) - 1); \
        __m512 v = _mm512_maskz_loadu_ps(lanes_, (x) + i_);                                           \
        _mm512_mask_storeu_ps((y) + i_, lanes_, body);                                                \
    }

__attribute__((target("avx512f"))) void kerf_erf_avx512(const float *x, float *y, size_t n) {
    EACH16(x, y, n, erf16(v))
}

__attribute__((target("avx512f"))) void kerf_gelu_avx512(const float *x, float *y, size_t n) {
    EACH16(x, y, n, _mm512_mul_ps(_mm512_mul_ps(SET16(0.5f), v),
                                  _mm512_add_ps(SET16(1.0f), erf16(_mm512_mul_ps(v, SET16(0.70710678118654752f))))))
}

/* x / (1 + exp(-x)) as x times a refined reciprocal: exp's argument capped at 88 keeps the
 * denominator finite (its reciprocal then rounds to 0), and a NaN x stays NaN. */
T512 __m512 silu16(__m512 x) {
    __m512 d = _mm512_add_ps(SET16(1.0f), exp16(_mm512_min_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), SET16(88.0f))));
    __m512 r = _mm512_rcp14_ps(d);
    r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, SET16(2.0f)));
    return _mm512_mul_ps(x, r);
}

__attribute__((target("avx512f"))) void kerf_silu_avx512(const float *x, float *y, size_t n) {
    EACH16(x, y, n, silu16(v))
}

__attribute__((target("avx512f"))) void kerf_gelu_grad_avx512(const float *dy, const float *x, float *dx, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 lanes = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(lanes, x + i), g = _mm512_maskz_loadu_ps(lanes, dy + i);
        __m512 cdf = _mm512_mul_ps(SET16(0.5f), _mm512_add_ps(SET16(1.0f), erf16(_mm512_mul_ps(v, SET16(0.70710678118654752f)))));
        __m512 pdf = _mm512_mul_ps(exp16(_mm512_mul_ps(_mm512_mul_ps(SET16(-0.5f), v), v)), SET16(0.3989422804014327f));
        _mm512_mask_storeu_ps(dx + i, lanes, _mm512_mul_ps(_mm512_fmadd_ps(v, pdf, cdf), g));
    }
}
