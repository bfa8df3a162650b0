/* AVX2 int8 GEMM inner loops; contracts in include/kerf_qgemm.h. */
#include "kerf_qgemm.h"
#include <immintrin.h>
#include <string.h>

int kerf_qgemm_avx2_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
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

/* One block of ROWS (1..4) rows by 16 columns; `step` multiplies a group of A (4 bytes or 2
 * int16, broadcast as one int32) with the two B vectors of that group. */
#define KERF_BLOCK(NAME, AT, BT, GROUP_BYTES, STEP)                                                     \
    __attribute__((target("avx2"), always_inline)) static inline void NAME(                             \
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
                acc[r][0] = _mm256_add_epi32(acc[r][0], STEP(av, b0));                                   \
                acc[r][1] = _mm256_add_epi32(acc[r][1], STEP(av, b1));                                   \
            }                                                                                            \
        }                                                                                                \
        for (int r = 0; r < rows; r++) store_row(c + r * ldc, acc[r][0], acc[r][1], cols);               \
    }

#define U8S8_STEP(av, bv) _mm256_madd_epi16(_mm256_maddubs_epi16(av, bv), ones)
#define S16_STEP(av, bv) _mm256_madd_epi16(av, bv)

KERF_BLOCK(block_u8s8, uint8_t, int8_t, 4, U8S8_STEP)
KERF_BLOCK(block_s16, int16_t, int16_t, 4, S16_STEP)

/* Rows in blocks of 4 (the last block's row count made a constant so the loop unrolls). */
#define KERF_DRIVER(NAME, BLOCK, AT, BT, PANEL_BYTES)                                                   \
    __attribute__((target("avx2"))) void NAME(const AT *a, size_t lda, size_t m, size_t groups,         \
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

KERF_DRIVER(kerf_qgemm_u8s8_avx2, block_u8s8, uint8_t, int8_t, 64)
KERF_DRIVER(kerf_qgemm_s16_avx2, block_s16, int16_t, int16_t, 64)
