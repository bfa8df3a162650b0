/* AVX2 float transpose; contract in include/kerf_transpose.h. */
#include "kerf_transpose.h"
#include <immintrin.h>

/* Transposes the 8 x 8 block at src (row stride ls) into dst (row stride ld), adding the block
 * at add (row stride ld) when add is not NULL. */
__attribute__((target("avx2"), always_inline)) static inline void block8(const float *src, size_t ls, float *dst, size_t ld,
                                                                         const float *add) {
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ls), r2 = _mm256_loadu_ps(src + 2 * ls),
           r3 = _mm256_loadu_ps(src + 3 * ls), r4 = _mm256_loadu_ps(src + 4 * ls), r5 = _mm256_loadu_ps(src + 5 * ls),
           r6 = _mm256_loadu_ps(src + 6 * ls), r7 = _mm256_loadu_ps(src + 7 * ls);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE), s2 = _mm256_shuffle_ps(t1, t3, 0x44),
           s3 = _mm256_shuffle_ps(t1, t3, 0xEE), s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    __m256 o[8] = {_mm256_permute2f128_ps(s0, s4, 0x20), _mm256_permute2f128_ps(s1, s5, 0x20),
                   _mm256_permute2f128_ps(s2, s6, 0x20), _mm256_permute2f128_ps(s3, s7, 0x20),
                   _mm256_permute2f128_ps(s0, s4, 0x31), _mm256_permute2f128_ps(s1, s5, 0x31),
                   _mm256_permute2f128_ps(s2, s6, 0x31), _mm256_permute2f128_ps(s3, s7, 0x31)};
    for (int k = 0; k < 8; k++) {
        __m256 v = add ? _mm256_add_ps(o[k], _mm256_loadu_ps(add + k * ld)) : o[k];
        _mm256_storeu_ps(dst + k * ld, v);
    }
}

/* Column strips outer, rows inner: dst is written row-sequentially and every src cache line
 * read is used whole before the strip moves on. Strips are 8 columns when dst rows lie a
 * multiple of 4 KiB apart (16 such rows would share one L1 set), 16 otherwise. */
__attribute__((target("avx2"))) void kerf_transpose_add_f32_avx2(const float *src, size_t rows, size_t cols, size_t lds,
                                                                 const float *add, float *dst, size_t ldd) {
    size_t full = rows / 8 * 8;
    size_t strip = ldd % 1024 == 0 ? 8 : 16;
    size_t j = 0;
    for (; j + strip <= cols; j += strip)
        for (size_t i = 0; i < full; i += 8)
            for (size_t b = j; b < j + strip; b += 8)
                block8(src + i * lds + b, lds, dst + b * ldd + i, ldd, add ? add + b * ldd + i : NULL);
    for (; j + 8 <= cols; j += 8)
        for (size_t i = 0; i < full; i += 8) block8(src + i * lds + j, lds, dst + j * ldd + i, ldd, add ? add + j * ldd + i : NULL);
    for (; j < cols; j++)
        for (size_t i = 0; i < full; i++) dst[j * ldd + i] = add ? src[i * lds + j] + add[j * ldd + i] : src[i * lds + j];
    for (size_t i = full; i < rows; i++)
        for (size_t c = 0; c < cols; c++) dst[c * ldd + i] = add ? src[i * lds + c] + add[c * ldd + i] : src[i * lds + c];
}
