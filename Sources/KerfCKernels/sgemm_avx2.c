/* AVX2 + FMA GEMM against packed W; contract in include/kerf_sgemm_avx2.h.
 *
 * Blocking (GotoBLAS order): rows in blocks of MC, columns in blocks of NC panels, k in blocks
 * of KC. When 8 or more panels use it, the block's A (MC x KC, 96 KB) is copied into groups of
 * up to 6 rows interleaved by k, so that the micro-kernel reads it in sequence (rows read in
 * place lie a row stride apart, and with strides of a multiple of 4 KB all fall into one L1
 * set). Then for each 16-column panel the 6 x 16 micro-kernel runs over every row group of the
 * block: the panel's KC x 16 slice (16 KB) stays in L1 while the block's rows pass over it, and
 * A in L2. Partial sums of C are kept in C between k blocks; the column blocks keep that part
 * of C (MC x 512 floats, 192 KB) in L2 meanwhile, also where L2 is 512 KB (AMD Zen 3). */
#include "kerf_sgemm_avx2.h"
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define NR 16
#define MR 6
#define KC 256
#define MC 96
#define NC 32 /* panels per column block: C block MC x 512 floats (192 KB) stays in L2 */

size_t kerf_sgemm_avx2_packed_count(size_t k, size_t n) { return (n + NR - 1) / NR * NR * k; }

static float flushed(float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    if ((bits & 0x7f800000u) == 0) bits &= 0x80000000u;
    memcpy(&v, &bits, sizeof bits);
    return v;
}

void kerf_sgemm_avx2_pack(size_t k, size_t n, const float *w, size_t ldw, int transposed, float *packed) {
    size_t panels = (n + NR - 1) / NR;
    for (size_t p = 0; p < panels; p++) {
        float *out = packed + p * k * NR;
        for (size_t i = 0; i < k; i++) {
            for (size_t j = 0; j < NR; j++) {
                size_t col = p * NR + j;
                out[i * NR + j] = col < n ? flushed(transposed ? w[col * ldw + i] : w[i * ldw + col]) : 0.0f;
            }
        }
    }
}

#define AVX2 __attribute__((target("avx2,fma"), always_inline)) static inline

/* The first `cols` (<= 16) floats at p as two vectors, the rest zero. */
AVX2 void load16(const float *p, size_t cols, __m256 *lo, __m256 *hi) {
    if (cols == NR) {
        *lo = _mm256_loadu_ps(p);
        *hi = _mm256_loadu_ps(p + 8);
        return;
    }
    float tmp[NR] = {0};
    memcpy(tmp, p, cols * sizeof(float));
    *lo = _mm256_loadu_ps(tmp);
    *hi = _mm256_loadu_ps(tmp + 8);
}

/* Writes the first `cols` (<= 16) lanes of (lo, hi) to p. */
AVX2 void store16(float *p, size_t cols, __m256 lo, __m256 hi) {
    if (cols == NR) {
        _mm256_storeu_ps(p, lo);
        _mm256_storeu_ps(p + 8, hi);
        return;
    }
    float tmp[NR];
    _mm256_storeu_ps(tmp, lo);
    _mm256_storeu_ps(tmp + 8, hi);
    memcpy(p, tmp, cols * sizeof(float));
}

/* rows x 16 block of C (rows <= MR) += A[rows, kc] . B panel slice [kc, 16]. A[r, p] lies at
 * a[p * MR + r] when `packed` (one group of pack_a), else at a[r * lda + p]. `first` starts
 * from zero instead of C; `bias` (NULL or 16 floats) is added at the end. `cols` (<= 16)
 * columns are read and stored. `next` (NULL or the next slice, kc x 16) is prefetched a line
 * per k: the hardware prefetcher does not cross from one slice to the next (they lie K * 64
 * bytes apart), which left products of few rows and large K waiting on memory. */
AVX2 void micro(int rows, int packed, size_t kc, const float *a, size_t lda, const float *b, float *c, size_t ldc, size_t cols,
                int first, const float *bias, const float *next) {
    __m256 acc[MR][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float *ahead = next ? next : b; /* prefetching the current slice is harmless */
#pragma clang loop unroll_count(4)
    for (size_t p = 0; p < kc; p++) {
        _mm_prefetch((const char *)(ahead + p * NR), _MM_HINT_T0);
        __m256 b0 = _mm256_load_ps(b + p * NR), b1 = _mm256_load_ps(b + p * NR + 8);
        for (int r = 0; r < MR; r++) {
            if (r < rows) {
                __m256 x = _mm256_broadcast_ss(packed ? a + p * MR + r : a + r * lda + p);
                acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
            }
        }
    }
    __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
    if (bias) load16(bias, cols, &bias0, &bias1);
    for (int r = 0; r < rows && r < MR; r++) {
        float *row = c + r * ldc;
        __m256 s0 = acc[r][0], s1 = acc[r][1];
        if (!first) {
            __m256 c0, c1;
            load16(row, cols, &c0, &c1);
            s0 = _mm256_add_ps(c0, s0);
            s1 = _mm256_add_ps(c1, s1);
        }
        if (bias) {
            s0 = _mm256_add_ps(s0, bias0);
            s1 = _mm256_add_ps(s1, bias1);
        }
        store16(row, cols, s0, s1);
    }
}

/* Rows of group g when mc rows are split into ceil(mc / MR) groups of nearly equal size (the
 * first groups one larger): a 2-row tail group would run its FMAs at half rate. */
static inline int rows_of(size_t mc, size_t g) {
    size_t groups = (mc + MR - 1) / MR;
    return (int)(mc / groups + (g < mc % groups ? 1 : 0));
}

/* The 8 x 8 block whose rows are r[0..7] transposed in place: r[p] holds the former column p. */
AVX2 void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* Copies A[mc, kc] (row stride lda) into groups of MR rows: group g holds A[g * MR + r, p] at
 * g * MR * kc + p * MR + r for r < rows_of(mc, g). Full groups go 8 k at a time through an
 * 8 x 8 transpose (two zero rows), each k's 6 values stored as 8 floats that the next k's
 * store overwrites: `out` needs 2 floats of slack after its last group. */
AVX2 void pack_a(size_t mc, size_t kc, const float *a, size_t lda, float *out) {
    for (size_t i = 0, g = 0; i < mc; i += (size_t)rows_of(mc, g), g++) {
        size_t rows = (size_t)rows_of(mc, g), p = 0;
        float *dst = out + g * MR * kc;
        if (rows == MR) {
            for (; p + 8 <= kc; p += 8) {
                __m256 r[8];
                for (int j = 0; j < MR; j++) r[j] = _mm256_loadu_ps(a + (i + j) * lda + p);
                r[6] = r[7] = _mm256_setzero_ps();
                transpose8(r);
                for (int q = 0; q < 8; q++) _mm256_storeu_ps(dst + (p + q) * MR, r[q]);
            }
        }
        for (size_t r = 0; r < rows; r++) {
            const float *src = a + (i + r) * lda;
            for (size_t q = p; q < kc; q++) dst[q * MR + r] = src[q];
        }
    }
}

/* The micro-kernel with the row count and the A layout compile-time constants. */
__attribute__((target("avx2,fma"))) static void micro_rows(
    int rows, int packed, size_t kc, const float *a, size_t lda, const float *b, float *c, size_t ldc, size_t cols,
    int first, const float *bias, const float *next) {
#define MICRO(n) packed ? micro(n, 1, kc, a, lda, b, c, ldc, cols, first, bias, next) \
                        : micro(n, 0, kc, a, lda, b, c, ldc, cols, first, bias, next)
    switch (rows) {
    case 6: MICRO(6); break;
    case 5: MICRO(5); break;
    case 4: MICRO(4); break;
    case 3: MICRO(3); break;
    case 2: MICRO(2); break;
    default: MICRO(1); break;
    }
#undef MICRO
}

__attribute__((target("avx2,fma"))) void kerf_sgemm_avx2(size_t m, size_t k, size_t n, const float *a, size_t lda,
                                                          const float *packed, const float *bias, float *c, size_t ldc,
                                                          size_t p0, size_t p1) {
    if (k == 0) {  /* no products: C is the bias (or zero) */
        for (size_t i = 0; i < m; i++)
            for (size_t j = p0 * NR; j < p1 * NR && j < n; j++) c[i * ldc + j] = bias ? bias[j] : 0.0f;
        return;
    }
    /* Subnormal inputs read as zero and subnormal results are flushed (DAZ | FTZ): each would
     * cost a microcode assist per multiply-add on some CPUs. The caller's mode is restored. */
    const unsigned int mxcsr = _mm_getcsr();
    _mm_setcsr(mxcsr | 0x8040u);
    /* A is packed when each block of it serves enough panels to repay the copy (with few
     * panels the copy costs more than it saves). */
    int packs = p1 - p0 >= 8;
    /* A's block, packed: per thread, as calls for different column ranges run at once. */
    static _Thread_local float apack[MC * KC + 8] __attribute__((aligned(64))); /* + pack_a's slack */
    for (size_t i0 = 0; i0 < m; i0 += MC) {
        size_t mc = m - i0 < MC ? m - i0 : MC;
        for (size_t n0 = p0; n0 < p1; n0 += NC) {
            size_t n1 = p1 - n0 < NC ? p1 : n0 + NC;
            for (size_t k0 = 0; k0 < k; k0 += KC) {
                size_t kc = k - k0 < KC ? k - k0 : KC;
                int first = k0 == 0, last = k0 + kc == k;
                const float *ablock = a + i0 * lda + k0;
                if (packs) pack_a(mc, kc, ablock, lda, apack);
                for (size_t p = n0; p < n1; p++) {
                    size_t col = p * NR, cols = n - col < NR ? n - col : NR;
                    const float *b = packed + p * k * NR + k0 * NR;
                    for (size_t i = 0, g = 0; i < mc; i += (size_t)rows_of(mc, g), g++) {
                        int rows = rows_of(mc, g);
                        micro_rows(rows, packs, kc, packs ? apack + g * MR * kc : ablock + i * lda, lda, b,
                                   c + (i0 + i) * ldc + col, ldc, cols, first, last && bias ? bias + col : NULL,
                                   i == 0 && p + 1 < n1 ? b + k * NR : NULL);
                    }
                }
            }
        }
    }
    _mm_setcsr(mxcsr);
}
