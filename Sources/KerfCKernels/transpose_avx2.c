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

/* kerf_transpose_add_f32_avx2 for 3 or 4 rows into contiguous dst rows (ldd == rows: an RGB
 * image made channels-last): four columns at a time through one 4x4 transpose, each column
 * stored as 4 floats. A store's lane past `rows` lands on the next column's first entry,
 * which that column's own store writes afterwards (with add == dst, that lane holds -0 plus
 * the entry itself, which is the entry); the last columns go one by one. */
__attribute__((target("avx2"))) static void few_rows(const float *src, size_t rows, size_t cols, size_t lds, const float *add,
                                                     float *dst) {
    size_t c = 0;
    for (; c + 5 <= cols; c += 4) {
        __m128 r[4];
        for (size_t i = 0; i < 4; i++) r[i] = i < rows ? _mm_loadu_ps(src + i * lds + c) : _mm_set1_ps(-0.0f);
        _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
        for (size_t k = 0; k < 4; k++) {
            float *d = dst + (c + k) * rows;
            _mm_storeu_ps(d, add ? _mm_add_ps(r[k], _mm_loadu_ps(add + (c + k) * rows)) : r[k]);
        }
    }
    for (; c < cols; c++)
        for (size_t i = 0; i < rows; i++) dst[c * rows + i] = add ? src[i * lds + c] + add[c * rows + i] : src[i * lds + c];
}

/* Column strips outer, rows inner: dst is written row-sequentially and every src cache line
 * read is used whole before the strip moves on. Strips are 8 columns when dst rows lie a
 * multiple of 4 KiB apart (16 such rows would share one L1 set), 16 otherwise. */
__attribute__((target("avx2"))) void kerf_transpose_add_f32_avx2(const float *src, size_t rows, size_t cols, size_t lds,
                                                                 const float *add, float *dst, size_t ldd) {
    size_t full = rows / 8 * 8;
    if (rows >= 3 && rows <= 4 && ldd == rows) {
        few_rows(src, rows, cols, lds, add, dst);
        return;
    }
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

/* One 16x16 tile of kerf_transpose_u8: four rounds of interleaving (bytes, pairs, quads,
 * eights), after which register c holds column c. */
static void transpose_u8_16x16(const uint8_t *src, size_t lds, uint8_t *dst, size_t ldd) {
    __m128i a[16], t[16];
    for (int i = 0; i < 16; i++) a[i] = _mm_loadu_si128((const __m128i *)(src + i * lds));
    for (int k = 0; k < 8; k++) { /* rows 2k, 2k+1: columns 0-7, then 8-15 */
        t[2 * k] = _mm_unpacklo_epi8(a[2 * k], a[2 * k + 1]);
        t[2 * k + 1] = _mm_unpackhi_epi8(a[2 * k], a[2 * k + 1]);
    }
    for (int g = 0; g < 4; g++) { /* rows 4g..4g+3: column quads 0..3 */
        a[4 * g] = _mm_unpacklo_epi16(t[4 * g], t[4 * g + 2]);
        a[4 * g + 1] = _mm_unpackhi_epi16(t[4 * g], t[4 * g + 2]);
        a[4 * g + 2] = _mm_unpacklo_epi16(t[4 * g + 1], t[4 * g + 3]);
        a[4 * g + 3] = _mm_unpackhi_epi16(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int h = 0; h < 2; h++) /* rows 8h..8h+7: column pairs 0..7 */
        for (int q = 0; q < 4; q++) {
            t[8 * h + 2 * q] = _mm_unpacklo_epi32(a[8 * h + q], a[8 * h + 4 + q]);
            t[8 * h + 2 * q + 1] = _mm_unpackhi_epi32(a[8 * h + q], a[8 * h + 4 + q]);
        }
    for (int p = 0; p < 8; p++) { /* all 16 rows: columns 2p, 2p+1 */
        _mm_storeu_si128((__m128i *)(dst + (2 * p) * ldd), _mm_unpacklo_epi64(t[p], t[8 + p]));
        _mm_storeu_si128((__m128i *)(dst + (2 * p + 1) * ldd), _mm_unpackhi_epi64(t[p], t[8 + p]));
    }
}

void kerf_transpose_u8(const uint8_t *src, size_t rows, size_t cols, size_t lds, uint8_t *dst, size_t ldd) {
    size_t i0 = 0;
    for (; i0 + 16 <= rows; i0 += 16) {
        size_t j0 = 0;
        for (; j0 + 16 <= cols; j0 += 16) transpose_u8_16x16(src + i0 * lds + j0, lds, dst + j0 * ldd + i0, ldd);
        for (size_t j = j0; j < cols; j++)
            for (size_t i = i0; i < i0 + 16; i++) dst[j * ldd + i] = src[i * lds + j];
    }
    for (size_t j0 = 0; j0 < cols; j0 += 16) { /* the last rows % 16, 16 columns at a time */
        size_t j1 = j0 + 16 < cols ? j0 + 16 : cols;
        for (size_t i = i0; i < rows; i++)
            for (size_t j = j0; j < j1; j++) dst[j * ldd + i] = src[i * lds + j];
    }
}

/* libgomp, the OpenMP runtime oneDNN runs on (linked through CDNNL). */
extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);
extern int omp_get_max_threads(void);

typedef struct {
    const float *src;
    size_t rows, cols, lds;
    const float *add;
    float *dst;
    size_t ldd;
} transpose_job;

/* One team member's share: a band of rows, or of columns when there are more of those. */
static void transpose_share(void *data) {
    const transpose_job *j = data;
    size_t n = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
    int by_rows = j->rows >= j->cols;
    size_t length = by_rows ? j->rows : j->cols;
    size_t step = ((length + n - 1) / n + 7) / 8 * 8, first = t * step;
    if (first >= length) return;
    size_t count = first + step < length ? step : length - first;
    if (by_rows)
        kerf_transpose_add_f32_avx2(j->src + first * j->lds, count, j->cols, j->lds, j->add ? j->add + first : NULL,
                                    j->dst + first, j->ldd);
    else
        kerf_transpose_add_f32_avx2(j->src + first, j->rows, count, j->lds, j->add ? j->add + first * j->ldd : NULL,
                                    j->dst + first * j->ldd, j->ldd);
}

void kerf_transpose_add_f32_team(const float *src, size_t rows, size_t cols, size_t lds, const float *add, float *dst,
                                 size_t ldd) {
    int threads = omp_get_max_threads();
    if (threads <= 1 || rows * cols < ((size_t)1 << 15)) {
        kerf_transpose_add_f32_avx2(src, rows, cols, lds, add, dst, ldd);
        return;
    }
    transpose_job job = {src, rows, cols, lds, add, dst, ldd};
    GOMP_parallel(transpose_share, &job, (unsigned)threads, 0);
}
