/* AVX2 and VNNI int8 GEMM inner loops; contracts in include/kerf_qgemm.h. */
#include "kerf_qgemm.h"
#include "kerf_isa.h"
#include <immintrin.h>
#include <string.h>

int kerf_qgemm_avx2_available(void) { return kerf_isa_has(KERF_HAS_AVX2); }

int kerf_qgemm_vnni_available(void) {
    if (kerf_isa_has(KERF_HAS_AVX512_VNNI)) return 1;
    if (kerf_isa_has(KERF_HAS_AVX_VNNI)) return 2;
    return 0;
}

/* Stores a 16-column block row, only the first `cols` columns. */
__attribute__((target("avx2"))) static inline void store_row(int32_t *c, __m256i lo, __m256i hi, size_t cols) {
    if (cols == 16) {
        _mm256_storeu_si256((__m256i *)c, lo);
        _mm256_storeu_si256((__m256i *)(c + 8), hi);
        return;
    }
    int32_t tmp[16];
    _mm256_storeu_si256((__m256i *)tmp, lo);
    _mm256_storeu_si256((__m256i *)(tmp + 8), hi);
    memcpy(c, tmp, cols * sizeof(int32_t));
}

/* One block of ROWS (1..4) rows by 16 columns; `ACC(acc, av, bv)` adds the products of a group
 * of A (4 bytes or 2 int16, broadcast as one int32) with one B vector of that group to acc. */
#define KERF_BLOCK(NAME, TARGET, AT, BT, GROUP_BYTES, ACC)                                              \
    __attribute__((target(TARGET), always_inline)) static inline void NAME(                             \
        const AT *a, size_t lda, int rows, size_t groups, const BT *b, int32_t *c, size_t ldc,           \
        size_t cols) {                                                                                   \
        const __m256i ones = _mm256_set1_epi16(1);                                                       \
        (void)ones;                                                                                      \
        __m256i acc[4][2];                                                                               \
        for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();                      \
        for (size_t q = 0; q < groups; q++) {                                                            \
            const __m256i b0 = _mm256_loadu_si256((const __m256i *)((const char *)b + q * 64));          \
            const __m256i b1 = _mm256_loadu_si256((const __m256i *)((const char *)b + q * 64 + 32));     \
            for (int r = 0; r < rows; r++) {                                                             \
                int32_t word;                                                                            \
                memcpy(&word, (const char *)(a + r * lda) + q * GROUP_BYTES, 4);                         \
                const __m256i av = _mm256_set1_epi32(word);                                              \
                acc[r][0] = ACC(acc[r][0], av, b0);                                                      \
                acc[r][1] = ACC(acc[r][1], av, b1);                                                      \
            }                                                                                            \
        }                                                                                                \
        for (int r = 0; r < rows; r++) store_row(c + r * ldc, acc[r][0], acc[r][1], cols);               \
    }

#define U8S8_ACC(acc, av, bv) _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(av, bv), ones))
#define S16_ACC(acc, av, bv) _mm256_add_epi32(acc, _mm256_madd_epi16(av, bv))
/* vpdpbusd: the four u8 x s8 products of each int32 lane summed exactly into acc. */
#define AVXVNNI_ACC(acc, av, bv) _mm256_dpbusd_avx_epi32(acc, av, bv)

KERF_BLOCK(block_u8s8, "avx2", uint8_t, int8_t, 4, U8S8_ACC)
KERF_BLOCK(block_s16, "avx2", int16_t, int16_t, 4, S16_ACC)
KERF_BLOCK(block_u8s8_avxvnni, "avx2,avxvnni", uint8_t, int8_t, 4, AVXVNNI_ACC)

/* Rows in blocks of 4 (the last block's row count made a constant so the loop unrolls). */
#define KERF_DRIVER(NAME, TARGET, BLOCK, AT, BT, PANEL_BYTES)                                           \
    __attribute__((target(TARGET))) void NAME(const AT *a, size_t lda, size_t m, size_t groups,         \
                                              const BT *packed, size_t n, size_t p0, size_t p1,         \
                                              int32_t *c, size_t ldc) {                                 \
        for (size_t p = p0; p < p1; p++) {                                                               \
            const BT *b = (const BT *)((const char *)packed + p * groups * PANEL_BYTES);                 \
            size_t cols = n - p * 16 < 16 ? n - p * 16 : 16;                                             \
            size_t i = 0;                                                                                \
            for (; i + 4 <= m; i += 4) BLOCK(a + i * lda, lda, 4, groups, b, c + i * ldc + p * 16, ldc, cols); \
            switch (m - i) {                                                                             \
            case 3: BLOCK(a + i * lda, lda, 3, groups, b, c + i * ldc + p * 16, ldc, cols); break;       \
            case 2: BLOCK(a + i * lda, lda, 2, groups, b, c + i * ldc + p * 16, ldc, cols); break;       \
            case 1: BLOCK(a + i * lda, lda, 1, groups, b, c + i * ldc + p * 16, ldc, cols); break;       \
            default: break;                                                                              \
            }                                                                                            \
        }                                                                                                \
    }

KERF_DRIVER(kerf_qgemm_u8s8_avx2, "avx2", block_u8s8, uint8_t, int8_t, 64)
KERF_DRIVER(kerf_qgemm_s16_avx2, "avx2", block_s16, int16_t, int16_t, 64)
KERF_DRIVER(qgemm_u8s8_avxvnni, "avx2,avxvnni", block_u8s8_avxvnni, uint8_t, int8_t, 64)

/* AVX-512 VNNI: 512-bit vectors hold one whole 16-column group, so a block covers four panels
 * (64 columns) by up to 6 rows: 24 accumulators, 4 loads of B and 6 broadcasts of A per group
 * (11% faster than two panels on a 32 x 4096 x 4096 product); the last panels go two or one at
 * a time: 12 accumulators, 2 loads of B and 6 broadcasts. */
#define VNNI512 "avx512f,avx512bw,avx512vl,avx512vnni"

__attribute__((target(VNNI512))) static inline void store_row512(int32_t *c, __m512i v, size_t cols) {
    if (cols == 16)
        _mm512_storeu_si512((void *)c, v);
    else
        _mm512_mask_storeu_epi32(c, (__mmask16)((1u << cols) - 1), v);
}

/* ROWS (1..6) rows by one panel (TWO = 0) or two panels (TWO = 1). */
__attribute__((target(VNNI512), always_inline)) static inline void block_vnni512(
    const uint8_t *a, size_t lda, int rows, int two, size_t groups, const int8_t *b0, const int8_t *b1,
    int32_t *c, size_t ldc, size_t cols0, size_t cols1) {
    __m512i acc[6][2];
    for (int r = 0; r < 6; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    for (size_t q = 0; q < groups; q++) {
        const __m512i v0 = _mm512_loadu_si512((const void *)(b0 + q * 64));
        const __m512i v1 = two ? _mm512_loadu_si512((const void *)(b1 + q * 64)) : v0;
        for (int r = 0; r < rows; r++) {
            int32_t word;
            memcpy(&word, a + r * lda + q * 4, 4);
            const __m512i av = _mm512_set1_epi32(word);
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, v0);
            if (two) acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, v1);
        }
    }
    for (int r = 0; r < rows; r++) {
        store_row512(c + r * ldc, acc[r][0], cols0);
        if (two) store_row512(c + r * ldc + 16, acc[r][1], cols1);
    }
}

/* Rows in blocks of 6 (the tail's row count a constant, so the loops unroll). */
__attribute__((target(VNNI512), always_inline)) static inline void rows_vnni512(
    const uint8_t *a, size_t lda, size_t m, int two, size_t groups, const int8_t *b0, const int8_t *b1,
    int32_t *c, size_t ldc, size_t cols0, size_t cols1) {
    size_t i = 0;
    for (; i + 6 <= m; i += 6) block_vnni512(a + i * lda, lda, 6, two, groups, b0, b1, c + i * ldc, ldc, cols0, cols1);
    const uint8_t *ai = a + i * lda;
    int32_t *ci = c + i * ldc;
    switch (m - i) {
    case 5: block_vnni512(ai, lda, 5, two, groups, b0, b1, ci, ldc, cols0, cols1); break;
    case 4: block_vnni512(ai, lda, 4, two, groups, b0, b1, ci, ldc, cols0, cols1); break;
    case 3: block_vnni512(ai, lda, 3, two, groups, b0, b1, ci, ldc, cols0, cols1); break;
    case 2: block_vnni512(ai, lda, 2, two, groups, b0, b1, ci, ldc, cols0, cols1); break;
    case 1: block_vnni512(ai, lda, 1, two, groups, b0, b1, ci, ldc, cols0, cols1); break;
    default: break;
    }
}

/* ROWS (1..6) rows by four panels (64 columns, all whole): 24 accumulators, 4 loads of B and
 * ROWS broadcasts of A per group: fewer loads per vpdpbusd than two panels. */
__attribute__((target(VNNI512), always_inline)) static inline void block4_vnni512(
    const uint8_t *a, size_t lda, int rows, size_t groups, const int8_t *b, size_t panel_stride, int32_t *c, size_t ldc) {
    __m512i acc[6][4];
    for (int r = 0; r < 6; r++)
        for (int j = 0; j < 4; j++) acc[r][j] = _mm512_setzero_si512();
    for (size_t q = 0; q < groups; q++) {
        __m512i v[4];
        for (int j = 0; j < 4; j++) v[j] = _mm512_loadu_si512((const void *)(b + j * panel_stride + q * 64));
        for (int r = 0; r < rows; r++) {
            int32_t word;
            memcpy(&word, a + r * lda + q * 4, 4);
            const __m512i av = _mm512_set1_epi32(word);
            for (int j = 0; j < 4; j++) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, v[j]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < 4; j++) _mm512_storeu_si512((void *)(c + r * ldc + 16 * j), acc[r][j]);
}

__attribute__((target(VNNI512), always_inline)) static inline void rows4_vnni512(
    const uint8_t *a, size_t lda, size_t m, size_t groups, const int8_t *b, size_t panel_stride, int32_t *c, size_t ldc) {
    size_t i = 0;
    for (; i + 6 <= m; i += 6) block4_vnni512(a + i * lda, lda, 6, groups, b, panel_stride, c + i * ldc, ldc);
    const uint8_t *ai = a + i * lda;
    int32_t *ci = c + i * ldc;
    switch (m - i) {
    case 5: block4_vnni512(ai, lda, 5, groups, b, panel_stride, ci, ldc); break;
    case 4: block4_vnni512(ai, lda, 4, groups, b, panel_stride, ci, ldc); break;
    case 3: block4_vnni512(ai, lda, 3, groups, b, panel_stride, ci, ldc); break;
    case 2: block4_vnni512(ai, lda, 2, groups, b, panel_stride, ci, ldc); break;
    case 1: block4_vnni512(ai, lda, 1, groups, b, panel_stride, ci, ldc); break;
    default: break;
    }
}

__attribute__((target(VNNI512))) static void qgemm_u8s8_vnni512(const uint8_t *a, size_t lda, size_t m, size_t groups,
                                                                 const int8_t *packed, size_t n, size_t p0, size_t p1,
                                                                 int32_t *c, size_t ldc) {
    size_t p = p0;
    /* Four whole panels at a time while they last. */
    for (; p + 4 <= p1 && (p + 4) * 16 <= n; p += 4)
        rows4_vnni512(a, lda, m, groups, packed + p * groups * 64, groups * 64, c + p * 16, ldc);
    for (; p + 2 <= p1; p += 2) {
        const int8_t *b0 = packed + p * groups * 64;
        size_t cols1 = n - (p + 1) * 16 < 16 ? n - (p + 1) * 16 : 16;
        rows_vnni512(a, lda, m, 1, groups, b0, b0 + groups * 64, c + p * 16, ldc, 16, cols1);
    }
    if (p < p1) {
        size_t cols = n - p * 16 < 16 ? n - p * 16 : 16;
        rows_vnni512(a, lda, m, 0, groups, packed + p * groups * 64, NULL, c + p * 16, ldc, cols, 0);
    }
}

void kerf_qgemm_u8s8_vnni(const uint8_t *a, size_t lda, size_t m, size_t kq, const int8_t *packed,
                          size_t n, size_t p0, size_t p1, int32_t *c, size_t ldc) {
    static int kind = -1;
    if (kind < 0) kind = kerf_qgemm_vnni_available();
    if (kind == 1)
        qgemm_u8s8_vnni512(a, lda, m, kq, packed, n, p0, p1, c, ldc);
    else
        qgemm_u8s8_avxvnni(a, lda, m, kq, packed, n, p0, p1, c, ldc);
}
