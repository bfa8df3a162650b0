/* AVX-512 GELU: gelu_avx2.c's steps in sixteen lanes, multiply-adds fused; contract in
 * include/kerf_math.h. */
#include "kerf_math.h"
#include "exp_avx512.h"
#include <immintrin.h>

int kerf_avx512_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

/* Sign flip and absolute value through integer ops (the float forms need AVX512DQ). */
T512 __m512 negate16(__m512 x) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
}

/* fastErfc of FastMath.swift, sixteen lanes, multiply-adds fused. */
T512 __m512 erfc16(__m512 x) {
    __m512 z = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7FFFFFFF)));
    __m512 t = _mm512_div_ps(SET16(1.0f), _mm512_fmadd_ps(SET16(0.5f), z, SET16(1.0f)));
    __m512 p = SET16(0.17087277f);
    p = _mm512_fmsub_ps(p, t, SET16(0.82215223f));
    p = _mm512_fmadd_ps(p, t, SET16(1.48851587f));
    p = _mm512_fmsub_ps(p, t, SET16(1.13520398f));
    p = _mm512_fmadd_ps(p, t, SET16(0.27886807f));
    p = _mm512_fmsub_ps(p, t, SET16(0.18628806f));
    p = _mm512_fmadd_ps(p, t, SET16(0.09678418f));
    p = _mm512_fmadd_ps(p, t, SET16(0.37409196f));
    p = _mm512_fmadd_ps(p, t, SET16(1.00002368f));
    p = _mm512_fmsub_ps(p, t, SET16(1.26551223f));
    __m512 r = _mm512_mul_ps(t, exp16(_mm512_fnmadd_ps(z, z, p)));
    /* x >= 0 ? r : 2 - r (NaN x takes 2 - r, as the scalar comparison does) */
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ), _mm512_sub_ps(SET16(2.0f), r), r);
}

__attribute__((target("avx512f"))) void kerf_gelu_avx512(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 lanes = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(lanes, x + i);
        __m512 e = erfc16(_mm512_mul_ps(negate16(v), SET16(0.70710678118654752f)));
        _mm512_mask_storeu_ps(y + i, lanes, _mm512_mul_ps(_mm512_mul_ps(SET16(0.5f), v), e));
    }
}
