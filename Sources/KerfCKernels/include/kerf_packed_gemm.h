#ifndef KERF_PACKED_GEMM_H
#define KERF_PACKED_GEMM_H
/* Single-precision GEMM against a constant right-hand matrix packed once, through oneDNN's
 * matmul primitive (weights in the layout its fastest implementation for the running CPU
 * wants, e.g. 16x64 blocks on AVX-512). Threading, the choice of tiles and the fallback to
 * plain sgemm are Swift's: see KerfKernels/PackedGemm.swift. */
#include <stddef.h>
#include <stdint.h>

typedef struct kerf_packed_gemm kerf_packed_gemm;

/* Packs W[K, N] (element (k, j) at w[k * ldw + j], or at w[j * ldw + k] when trans_w).
 * `bias` (N floats, or NULL) is copied and added to every row of C. Returns NULL when oneDNN
 * has no optimized product for the running CPU. w is not kept. */
kerf_packed_gemm *kerf_packed_gemm_create(int64_t k, int64_t n, const float *w, int64_t ldw, int trans_w,
                                          const float *bias);

/* The product over columns [c0, c0 + n) of `parent`'s W, reading parent's packed buffer (no
 * copy): parent must outlive the view. NULL when the layout does not split there (c0 and,
 * unless the view ends at W's last column, n must be multiples of the layout's column block,
 * e.g. 64 on AVX-512) or oneDNN has no optimized product for the view. */
kerf_packed_gemm *kerf_packed_gemm_view(kerf_packed_gemm *parent, int64_t c0, int64_t n);

/* The layout's column block (1 for a plain row-major W); 0 when the layout is not blocked. */
int64_t kerf_packed_gemm_column_block(const kerf_packed_gemm *g);

/* C[i, j] = sum_k A[i, k] * W[k, j] (+ bias[j]) for rows 0..<m, A dense [m, K], C dense
 * [m, N]. `worker` in 0..<64 selects the stream and scratch space: concurrent
 * calls must pass different workers. Threads inside: oneDNN's (OpenMP) setting of the calling
 * thread. Returns 0 on success, nonzero when oneDNN failed (C undefined then). */
int kerf_packed_gemm_run(kerf_packed_gemm *g, int64_t m, const float *a, float *c, int worker);

/* 1 when kerf_packed_gemm_run_strided can write C with any row stride (W in the AVX2 kernel's
 * panels), else 0. */
int kerf_packed_gemm_writes_strided(const kerf_packed_gemm *g);

/* kerf_packed_gemm_run with C's rows ldc (>= N) floats apart: C[i, j] at c[i * ldc + j], the
 * other columns of those rows untouched. Only where kerf_packed_gemm_writes_strided (returns
 * nonzero, C untouched, elsewhere). Threads inside: none. */
int kerf_packed_gemm_run_strided(kerf_packed_gemm *g, int64_t m, const float *a, float *c, int64_t ldc);

/* Writes W back from the packed copy, element (k, j) at w[k * ldw + j] (w[j * ldw + k] when
 * trans_w), as kerf_packed_gemm_create read it except that subnormals read as zero. Only
 * reads the packed copy (on a stream of its own). Returns 0 on success. */
int kerf_packed_gemm_unpack(kerf_packed_gemm *g, float *w, int64_t ldw, int trans_w);

void kerf_packed_gemm_destroy(kerf_packed_gemm *g);
#endif
