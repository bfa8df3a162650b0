/* AVX2 2x2 stride-2 max pooling; contract in include/kerf_pool.h. */
#include "kerf_pool.h"
#include <immintrin.h>

/* The maximum in tap order: m = t0, then m = t > m ? t : m for t1, t2, t3. _mm256_max_ps(a, b)
 * is a > b ? a : b per lane, so a NaN first tap stays and later NaNs are skipped. */
__attribute__((target("avx2"))) void kerf_maxpool2x2_f32_avx2(const float *x, size_t w, float *y, size_t oh, size_t ow) {
    for (size_t oy = 0; oy < oh; oy++) {
        const float *r0 = x + 2 * oy * w, *r1 = r0 + w;
        float *out = y + oy * ow;
        size_t ox = 0;
        for (; ox + 8 <= ow; ox += 8) {
            __m256 a0 = _mm256_loadu_ps(r0 + 2 * ox), b0 = _mm256_loadu_ps(r0 + 2 * ox + 8);
            __m256 a1 = _mm256_loadu_ps(r1 + 2 * ox), b1 = _mm256_loadu_ps(r1 + 2 * ox + 8);
            /* even / odd columns of each row, lanes in order 0 1 4 5 2 3 6 7 until permuted */
            __m256 e0 = _mm256_shuffle_ps(a0, b0, 0x88), o0 = _mm256_shuffle_ps(a0, b0, 0xDD);
            __m256 e1 = _mm256_shuffle_ps(a1, b1, 0x88), o1 = _mm256_shuffle_ps(a1, b1, 0xDD);
            __m256 m = _mm256_max_ps(o0, e0);
            m = _mm256_max_ps(e1, m);
            m = _mm256_max_ps(o1, m);
            _mm256_storeu_ps(out + ox, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m), 0xD8)));
        }
        for (; ox < ow; ox++) {
            float m = r0[2 * ox];
            const float taps[3] = {r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]};
            for (int t = 0; t < 3; t++) m = taps[t] > m ? taps[t] : m;
            out[ox] = m;
        }
    }
}
