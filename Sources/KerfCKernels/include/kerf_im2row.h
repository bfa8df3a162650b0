#ifndef KERF_IM2ROW_H
#define KERF_IM2ROW_H
/* Convolution rows of a channels-last 8-bit image (Int8Conv.swift's im2rowChannelsLast for 2-D
 * windows). Needs AVX-512F and BW (kerf_avx512bw_available in kerf_requantize.h). */
#include <stddef.h>
#include <stdint.h>

/* A 2-D window: input h x w, kernel kh x kw, strides, dilations, leading pads, output width. */
struct kerf_window2d {
    ptrdiff_t h, w, kh, kw, sh, sw, dh, dw, ph, pw, ow;
};

/* For output pixels o in first ..< first + count: row o - first of `rows` (kh * kw * channels
 * bytes) holds, tap by tap (ky, kx) and channel by channel, the input pixel the tap reads
 * (pixel (iy, ix) at x + (iy * w + ix) * pixel_stride) or `padding` outside the image. */
void kerf_im2row_bytes_2d(const uint8_t *x, const struct kerf_window2d *g, size_t pixel_stride, size_t channels,
                          uint8_t padding, size_t first, size_t count, uint8_t *rows);
#endif
