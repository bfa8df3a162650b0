#ifndef KERF_REQUANTIZE_H
#define KERF_REQUANTIZE_H
/* AVX2 requantization of int8 GEMM sums written transposed (a Conv computed as
 * [pixels, channels] into NCHW). Swift checks the CPU first (cpuHasAVX2) and otherwise runs
 * requantizeProduct in KerfKernels/Int8Epilogue.swift, whose arithmetic this mirrors. */
#include <stddef.h>
#include <stdint.h>

/* For i < m, j < n:
 *   v = (float)(acc[i * ld_acc + j] + bias[j]) * scales[j], clamped to [lo - zero, hi - zero],
 *   rounded half to even, plus zero, stored as one byte at y[j * y_stride + i]
 *   (int8 when out_signed, else uint8).
 * bias may be NULL (no bias); bias and scales hold n entries when their *_per_column flag is
 * set, else one for every column. lo <= hi must lie within the output type's range. */
void kerf_requantize_transposed_avx2(const int32_t *acc, size_t m, size_t n, size_t ld_acc,
                                     const int32_t *bias, int bias_per_column,
                                     const float *scales, int scales_per_column,
                                     int32_t zero, int32_t lo, int32_t hi,
                                     void *y, size_t y_stride, int out_signed);

/* kerf_requantize_transposed_avx2 written row-major: the byte of (i, j) goes to
 * y[i * y_stride + j] (a Conv computed as [pixels, channels] into NHWC). */
void kerf_requantize_rows_avx2(const int32_t *acc, size_t m, size_t n, size_t ld_acc,
                               const int32_t *bias, int bias_per_column,
                               const float *scales, int scales_per_column,
                               int32_t zero, int32_t lo, int32_t hi,
                               void *y, size_t y_stride, int out_signed);

/* For i < m, j < n: y[i * y_stride + j] = (float)(acc[i * ld_acc + j] + offsets[j]) * scales[j]
 * + bias[j], a multiply then an add (two roundings, as Int8Epilogue.swift's dequantizeProduct).
 * offsets (int32, wrapping add) and bias may be NULL; offsets holds n entries; scales and bias
 * hold n entries when their *_per_column flag is set, else one for every column. */
void kerf_dequantize_rows_avx2(const int32_t *acc, size_t m, size_t n, size_t ld_acc, const int32_t *offsets,
                               const float *scales, int scales_per_column, const float *bias, int bias_per_column,
                               float *y, size_t y_stride);

/* kerf_dequantize_rows_avx2 in sixteen lanes, scales (and bias) with n entries. Needs AVX-512F. */
void kerf_dequantize_rows_avx512(const int32_t *acc, size_t m, size_t n, size_t ld_acc, const int32_t *offsets,
                                 const float *scales, const float *bias, float *y, size_t y_stride);

/* y[i] = clamp(round(x[i] / scale) + zero, lo, hi) for i < count, as bytes (int8 when
 * out_signed, else uint8): the float divide, clamp to [lo - zero, hi - zero] (NaN gives lo),
 * round half to even, add the zero point — Quantize.swift's `quantize`, eight lanes. */
void kerf_quantize_bytes_avx2(const float *x, size_t count, float scale, int32_t zero, int32_t lo, int32_t hi,
                              void *y, int out_signed);

/* kerf_quantize_bytes_avx2's results in sixteen lanes, the quotient x / scale computed without a
 * divide but rounded as the divide rounds. Needs AVX-512F, and scale and 1 / scale normal. The bytes
 * are the same for int8 and uint8 (the clamp already fits them). */
void kerf_quantize_bytes_avx512(const float *x, size_t count, float scale, int32_t zero, int32_t lo, int32_t hi,
                                void *y);

/* *low = min(0, x[i]...), *high = max(0, x[i]...) over i < count, NaN ignored: Quantize.swift's
 * valueRange in sixteen lanes. Needs AVX-512F. */
void kerf_value_range_avx512(const float *x, size_t count, float *low, float *high);

/* y[i] = (float)(x[i] - zero) * scale for i < count, x bytes (int8 when in_signed, else
 * uint8): Quantize.swift's `dequantize`, sixteen lanes, the same operations. Needs AVX-512F. */
void kerf_dequantize_bytes_avx512(const void *x, size_t count, float scale, int32_t zero, int in_signed, float *y);

/* Channels-last bytes x[pixels, channels] (int8 when in_signed, else uint8) -> bytes y:
 * v = (float)(x - x_zero) * x_scale, then v * k[c] + shift[c] (two roundings), max(v, 0) when
 * relu, then y = clamp(round(v / y_scale), lo - y_zero, hi - y_zero) + y_zero: DequantizeLinear,
 * inference BatchNormalization, Relu and QuantizeLinear as Kerf's operators compute them.
 * The quotient is rounded as the divide rounds, without one: y_scale and 1 / y_scale must be
 * normal. Needs AVX-512F, BW and VL (kerf_avx512bw_available). */
int kerf_avx512bw_available(void);
void kerf_channel_affine_bytes_avx512(const void *x, size_t pixels, size_t channels, int in_signed, int32_t x_zero,
                                      float x_scale, const float *k, const float *shift, int relu, float y_scale,
                                      int32_t y_zero, int32_t lo, int32_t hi, void *y);
/* kerf_requantize_rows_avx2 in sixteen lanes, bias (or NULL) and scales with n entries; the bytes
 * are the same for int8 and uint8 outputs. Needs AVX-512F. */
void kerf_requantize_rows_avx512(const int32_t *acc, size_t m, size_t n, size_t ld_acc, const int32_t *bias,
                                 const float *scales, int32_t zero, int32_t lo, int32_t hi, void *y, size_t y_stride);

/* Int8Elementwise.swift's quantizedAdd on bytes (int8 when is_signed, else uint8): y = clamp(
 * round(a_ratio (a - a_zero) + b_ratio (b - b_zero)), lo - y_zero, hi - y_zero) + y_zero, two
 * multiplies and an add. Needs AVX-512F, BW and VL (kerf_avx512bw_available). */
void kerf_quantized_add_avx512(const void *a, float a_ratio, int32_t a_zero, const void *b, float b_ratio, int32_t b_zero,
                               size_t count, int32_t y_zero, int32_t lo, int32_t hi, void *y, int is_signed);

/* y[i] = table[x[i]] for i < count (256 entries). Needs AVX-512 VBMI (kerf_avx512vbmi_available). */
int kerf_avx512vbmi_available(void);
void kerf_byte_table_avx512vbmi(const uint8_t *x, size_t count, const uint8_t *table, uint8_t *y);
#endif
