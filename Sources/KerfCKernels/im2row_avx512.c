/* Channels-last byte images to convolution rows in 64-byte moves; contract in include/kerf_im2row.h. */
#include "kerf_im2row.h"
#include <immintrin.h>

#define AVX512BW_INLINE __attribute__((target("avx512f,avx512bw"), always_inline)) static inline

AVX512BW_INLINE void copy_bytes(uint8_t *dst, const uint8_t *src, size_t n) {
    size_t i = 0;
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512(dst + i, _mm512_loadu_si512(src + i));
    if (i < n) {
        __mmask64 k = ((__mmask64)1 << (n - i)) - 1;
        _mm512_mask_storeu_epi8(dst + i, k, _mm512_maskz_loadu_epi8(k, src + i));
    }
}

AVX512BW_INLINE void fill_bytes(uint8_t *dst, __m512i value, size_t n) {
    size_t i = 0;
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512(dst + i, value);
    if (i < n) _mm512_mask_storeu_epi8(dst + i, ((__mmask64)1 << (n - i)) - 1, value);
}

__attribute__((target("avx512f,avx512bw"))) void kerf_im2row_bytes_2d(const uint8_t *x, const struct kerf_window2d *g,
                                                                      size_t pixel_stride, size_t channels, uint8_t padding,
                                                                      size_t first, size_t count, uint8_t *rows) {
    const __m512i pad = _mm512_set1_epi8((char)padding);
    const size_t width = (size_t)(g->kh * g->kw) * channels, run = (size_t)g->kw * channels;
    /* With dense channels and dilation 1 the kw taps of one kernel row are one contiguous run. */
    const int runs = pixel_stride == channels && g->dw == 1;
    for (size_t o = first; o < first + count; o++) {
        const ptrdiff_t oy = (ptrdiff_t)(o / (size_t)g->ow), ox = (ptrdiff_t)(o % (size_t)g->ow);
        uint8_t *dst = rows + (o - first) * width;
        const ptrdiff_t ix0 = ox * g->sw - g->pw;
        for (ptrdiff_t ky = 0; ky < g->kh; ky++, dst += run) {
            const ptrdiff_t iy = oy * g->sh - g->ph + ky * g->dh;
            if (iy < 0 || iy >= g->h) {
                fill_bytes(dst, pad, run);
                continue;
            }
            const uint8_t *line = x + (size_t)iy * (size_t)g->w * pixel_stride;
            if (runs && ix0 >= 0 && ix0 + g->kw <= g->w) {
                copy_bytes(dst, line + (size_t)ix0 * channels, run);
                continue;
            }
            for (ptrdiff_t kx = 0; kx < g->kw; kx++) {
                const ptrdiff_t ix = ix0 + kx * g->dw;
                if (ix < 0 || ix >= g->w) fill_bytes(dst + (size_t)kx * channels, pad, channels);
                else copy_bytes(dst + (size_t)kx * channels, line + (size_t)ix * pixel_stride, channels);
            }
        }
    }
}
