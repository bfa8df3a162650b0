/* AVX2 softmax rows; contract in include/kerf_math.h. */
#include "kerf_math.h"
#include "exp_avx2.h"
#include <immintrin.h>

__attribute__((target("avx2"))) static float horizontal_max(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

__attribute__((target("avx2"))) static float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2"))) static void softmax_row(const float *x, float *y, size_t n) {
    size_t full = n - n % 8, j;
    __m256 lanes = SET(-__builtin_inff());
    for (j = 0; j < full; j += 8) lanes = _mm256_max_ps(lanes, _mm256_loadu_ps(x + j));
    float m = horizontal_max(lanes);
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    __m256 vm = SET(m), sums = _mm256_setzero_ps();
    for (j = 0; j < full; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
        _mm256_storeu_ps(y + j, e);
        sums = _mm256_add_ps(sums, e);
    }
    float sum = horizontal_sum(sums);
    if (j < n) {
        float in[8], out[8];
        for (size_t t = 0; t < 8; t++) in[t] = j + t < n ? x[j + t] - m : 0;
        _mm256_storeu_ps(out, exp8(_mm256_loadu_ps(in)));
        for (size_t t = 0; j + t < n; t++) { y[j + t] = out[t]; sum += out[t]; }
    }
    __m256 scale = SET(1.0f / sum);
    for (j = 0; j < full; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), scale));
    for (; j < n; j++) y[j] *= 1.0f / sum;
}

__attribute__((target("avx2"))) void kerf_softmax_rows_avx2(const float *x, float *y, size_t rows, size_t n) {
    for (size_t r = 0; r < rows; r++) softmax_row(x + r * n, y + r * n, n);
}
