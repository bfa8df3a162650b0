/* Contract in include/kerf_gemm.h. */
#include "kerf_gemm.h"

__attribute__((target("avx2,fma"))) void kerf_small_product_f32_avx2(size_t m, size_t k, size_t n, const float *restrict a,
                                                                     const float *restrict w, const float *restrict bias,
                                                                     float *restrict c) {
    for (size_t r = 0; r < m; r++) {
        float *restrict row = c + r * n;
        const float *x = a + r * k;
        for (size_t j = 0; j < n; j++) row[j] = 0.0f;
        for (size_t i = 0; i < k; i++) {
            const float v = x[i];
            const float *restrict wi = w + i * n;
            for (size_t j = 0; j < n; j++) row[j] += v * wi[j];
        }
        if (bias)
            for (size_t j = 0; j < n; j++) row[j] += bias[j];
    }
}
