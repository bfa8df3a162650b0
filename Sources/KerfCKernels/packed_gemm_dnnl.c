/* GEMM against a packed constant matrix through oneDNN's matmul primitive, or through Kerf's
 * own AVX2 kernel (sgemm_avx2.c) where AVX-512 is not in use; contract in
 * include/kerf_packed_gemm.h. */
#include "kerf_packed_gemm.h"
#include "kerf_isa.h"
#include "kerf_packed_buffer.h"
#include "kerf_sgemm_avx2.h"
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORKERS 64

/* One primitive per row count seen. */
typedef struct {
    int64_t m;
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t scratch_md;
    size_t scratch_size;
} shape_entry;

/* A worker's memory objects for the last row count it ran, so that a run with the same row
 * count only re-points them (creating oneDNN memory objects costs allocations). */
typedef struct {
    int64_t m;                     /* 0: none made */
    dnnl_memory_t src, dst, scratch;
} worker_memory;

struct kerf_packed_gemm {
    int64_t k, n;
    int panels;                    /* 1: `packed` holds W in kerf_sgemm_avx2's 16-column panels */
    dnnl_memory_desc_t packed_md;
    void *packed;                  /* W in oneDNN's layout, or in panels */
    int owns_packed;               /* 0 for a view: `packed` lies in another product's buffer */
    float *bias;                   /* n floats or NULL */
    pthread_mutex_t lock;          /* guards shapes */
    shape_entry *shapes;
    int shape_count, shape_capacity;
    dnnl_memory_t packed_memory, bias_memory; /* over `packed` and `bias`; made once */
    dnnl_stream_t streams[MAX_WORKERS];
    worker_memory memory[MAX_WORKERS];
    void *scratch[MAX_WORKERS];
    size_t scratch_size[MAX_WORKERS];
};

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static void make_engine(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

/* The memory descriptors of a product with m rows: A [m, k], C [m, n] and bias [1, n], all
 * dense (oneDNN's blocked kernels take no row strides). */
static int describe_operands(int64_t m, int64_t k, int64_t n, dnnl_memory_desc_t *src,
                             dnnl_memory_desc_t *dst, dnnl_memory_desc_t *bias) {
    dnnl_dims_t src_dims = {m, k}, dst_dims = {m, n}, bias_dims = {1, n};
    return dnnl_memory_desc_init_by_tag(src, 2, src_dims, dnnl_f32, dnnl_ab) == dnnl_success
        && dnnl_memory_desc_init_by_tag(dst, 2, dst_dims, dnnl_f32, dnnl_ab) == dnnl_success
        && dnnl_memory_desc_init_by_tag(bias, 2, bias_dims, dnnl_f32, dnnl_ab) == dnnl_success;
}

/* A matmul primitive descriptor for [m, k] x [k, n] (+ bias) with the given weights md
 * (format `any` to let oneDNN choose); NULL when oneDNN would only use its reference
 * implementation. */
static dnnl_primitive_desc_t describe(int64_t m, int64_t k, int64_t n, int bias, const dnnl_memory_desc_t *weights) {
    dnnl_memory_desc_t src, dst, bias_md;
    if (!describe_operands(m, k, n, &src, &dst, &bias_md)) return NULL;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &src, weights, bias ? &bias_md : NULL, &dst) != dnnl_success) return NULL;
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t status = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (status != dnnl_success) return NULL;
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl || strstr(impl, "ref")) {
        dnnl_primitive_desc_destroy(pd);
        return NULL;
    }
    return pd;
}

/* Sets subnormal floats (exponent bits zero) to zero of the same sign. A subnormal weight
 * (|w| < 1.2e-38) changes no product by a representable amount that matters, but every
 * multiply by one takes a microcode assist: trained weights often hold a few hundred
 * (scikit-learn's digits MLP: 127 of 4096), which made its 32-row product 40x slower. */
static void flush_subnormals(float *values, size_t count) {
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, &values[i], sizeof bits);
        if ((bits & 0x7f800000u) == 0) {
            bits &= 0x80000000u;
            memcpy(&values[i], &bits, sizeof bits);
        }
    }
}

/* Reorders w into oneDNN's layout `md`, at a fresh buffer, subnormals flushed to zero. */
static void *pack(const float *w, int64_t ldw, int trans_w, int64_t k, int64_t n, const dnnl_memory_desc_t *md) {
    dnnl_memory_desc_t plain;
    dnnl_dims_t dims = {k, n}, strides = {trans_w ? 1 : ldw, trans_w ? ldw : 1};
    if (dnnl_memory_desc_init_by_strides(&plain, 2, dims, dnnl_f32, strides) != dnnl_success) return NULL;
    size_t size = dnnl_memory_desc_get_size(md);
    void *buffer = kerf_packed_buffer_alloc(size);
    if (!buffer) return NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_stream_t stream = NULL;
    int ok = dnnl_reorder_primitive_desc_create(&rpd, &plain, engine, md, engine, NULL) == dnnl_success
        && dnnl_primitive_create(&reorder, rpd) == dnnl_success
        && dnnl_memory_create(&from, &plain, engine, (void *)w) == dnnl_success
        && dnnl_memory_create(&to, md, engine, buffer) == dnnl_success
        && dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        ok = dnnl_primitive_execute(reorder, stream, 2, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success;
    }
    if (stream) dnnl_stream_destroy(stream);
    if (to) dnnl_memory_destroy(to);
    if (from) dnnl_memory_destroy(from);
    if (reorder) dnnl_primitive_destroy(reorder);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (!ok) { free(buffer); return NULL; }
    flush_subnormals(buffer, size / sizeof(float));
    return buffer;
}

static kerf_packed_gemm *make_memory(kerf_packed_gemm *g);

/* Without AVX-512, oneDNN's matmul runs products of few rows at about half of what the CPU
 * can do (its AVX2 kernels are tuned for large ones): Kerf's own AVX2 kernel takes them all. */
static int uses_panels(void) { return kerf_isa_has(KERF_HAS_AVX2) && !kerf_isa_has(KERF_HAS_AVX512); }

kerf_packed_gemm *kerf_packed_gemm_create(int64_t k, int64_t n, const float *w, int64_t ldw, int trans_w,
                                          const float *bias) {
    pthread_once(&engine_once, make_engine);
    if (!engine || k <= 0 || n <= 0) return NULL;
    kerf_packed_gemm *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->k = k;
    g->n = n;
    pthread_mutex_init(&g->lock, NULL);
    if (bias) {
        g->bias = malloc((size_t)n * sizeof(float));
        if (!g->bias) { kerf_packed_gemm_destroy(g); return NULL; }
        memcpy(g->bias, bias, (size_t)n * sizeof(float));
    }
    if (uses_panels()) {
        size_t count = kerf_sgemm_avx2_packed_count((size_t)k, (size_t)n);
        g->packed = count <= SIZE_MAX / sizeof(float) ? kerf_packed_buffer_alloc(count * sizeof(float)) : NULL;
        if (!g->packed) { kerf_packed_gemm_destroy(g); return NULL; }
        g->owns_packed = 1;
        g->panels = 1;
        kerf_sgemm_avx2_pack((size_t)k, (size_t)n, w, (size_t)ldw, trans_w, g->packed);
        return g;
    }
    dnnl_memory_desc_t any;
    dnnl_dims_t dims = {k, n};
    if (dnnl_memory_desc_init_by_tag(&any, 2, dims, dnnl_f32, dnnl_format_tag_any) != dnnl_success) { kerf_packed_gemm_destroy(g); return NULL; }
    /* The layout chosen for 32 rows; other row counts get primitives taking the same layout
     * (or the product fails over to the caller's plain GEMM). */
    dnnl_primitive_desc_t pd = describe(32, k, n, bias != NULL, &any);
    if (!pd) { kerf_packed_gemm_destroy(g); return NULL; }
    g->packed_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_destroy(pd);
    g->packed = pack(w, ldw, trans_w, k, n, &g->packed_md);
    if (!g->packed) { kerf_packed_gemm_destroy(g); return NULL; }
    g->owns_packed = 1;
    return make_memory(g);
}

/* Makes g's memory objects over `packed` and `bias`; destroys g and returns NULL on failure. */
static kerf_packed_gemm *make_memory(kerf_packed_gemm *g) {
    dnnl_memory_desc_t src, dst, bias_md;
    if (!describe_operands(1, g->k, g->n, &src, &dst, &bias_md)
        || dnnl_memory_create(&g->packed_memory, &g->packed_md, engine, g->packed) != dnnl_success
        || (g->bias && dnnl_memory_create(&g->bias_memory, &bias_md, engine, g->bias) != dnnl_success)) {
        kerf_packed_gemm_destroy(g);
        return NULL;
    }
    return g;
}

/* The columns [c0, c0 + n) of a packed W are a packed W of their own, at an offset into the
 * same buffer, when c0 falls on a column block of the layout (and the view ends on one, or at
 * W's last column): in oneDNN's blocked layouts, element (i, j) lies at
 * sum_d (index_d / block_d) * strides[d] plus an offset inside its block, so shifting j by a
 * whole number of blocks shifts the address by a constant. */
int64_t kerf_packed_gemm_column_block(const kerf_packed_gemm *g) {
    if (g->panels) return 16;
    const dnnl_memory_desc_t *md = &g->packed_md;
    if (md->format_kind != dnnl_blocked || md->ndims != 2 || md->offset0 != 0 || md->extra.flags != 0) return 0;
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    int64_t block = 1;
    for (int i = 0; i < b->inner_nblks; i++) if (b->inner_idxs[i] == 1) block *= b->inner_blks[i];
    return block;
}

/* A view of panels [c0 / 16, ...): the panels are independent, so a view only points into them. */
static kerf_packed_gemm *panel_view(kerf_packed_gemm *parent, int64_t c0, int64_t n) {
    if (c0 % 16 != 0 || (c0 + n < parent->n && n % 16 != 0)) return NULL;
    kerf_packed_gemm *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->k = parent->k;
    g->n = n;
    g->panels = 1;
    pthread_mutex_init(&g->lock, NULL);
    g->packed = (float *)parent->packed + (c0 / 16) * parent->k * 16;
    if (parent->bias) {
        g->bias = malloc((size_t)n * sizeof(float));
        if (!g->bias) { kerf_packed_gemm_destroy(g); return NULL; }
        memcpy(g->bias, parent->bias + c0, (size_t)n * sizeof(float));
    }
    return g;
}

kerf_packed_gemm *kerf_packed_gemm_view(kerf_packed_gemm *parent, int64_t c0, int64_t n) {
    if (!parent || c0 < 0 || n <= 0 || c0 + n > parent->n) return NULL;
    if (parent->panels) return panel_view(parent, c0, n);
    dnnl_memory_desc_t md = parent->packed_md;
    int64_t block = kerf_packed_gemm_column_block(parent);
    if (block == 0) return NULL;
    const dnnl_blocking_desc_t *b = &md.format_desc.blocking;
    if (c0 % block != 0 || (c0 + n < parent->n && n % block != 0)) return NULL;
    md.dims[1] = n;
    md.padded_dims[1] = (n + block - 1) / block * block;
    /* The layout must take the view as it is: same strides, oneDNN's optimized kernel. */
    dnnl_primitive_desc_t pd = describe(32, parent->k, n, parent->bias != NULL, &md);
    if (!pd) return NULL;
    int same = dnnl_memory_desc_equal(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &md);
    dnnl_primitive_desc_destroy(pd);
    if (!same) return NULL;
    kerf_packed_gemm *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->k = parent->k;
    g->n = n;
    pthread_mutex_init(&g->lock, NULL);
    g->packed_md = md;
    g->packed = (float *)parent->packed + (c0 / block) * b->strides[1];
    if (parent->bias) {
        g->bias = malloc((size_t)n * sizeof(float));
        if (!g->bias) { kerf_packed_gemm_destroy(g); return NULL; }
        memcpy(g->bias, parent->bias + c0, (size_t)n * sizeof(float));
    }
    return make_memory(g);
}

int kerf_packed_gemm_unpack(kerf_packed_gemm *g, float *w, int64_t ldw, int trans_w) {
    if (!g || !w) return 1;
    if (g->panels) {
        const float *panels = g->packed;
        for (int64_t i = 0; i < g->k; i++)
            for (int64_t j = 0; j < g->n; j++)
                w[trans_w ? j * ldw + i : i * ldw + j] = panels[(j / 16) * g->k * 16 + i * 16 + j % 16];
        return 0;
    }
    dnnl_memory_desc_t plain;
    dnnl_dims_t dims = {g->k, g->n}, strides = {trans_w ? 1 : ldw, trans_w ? ldw : 1};
    if (dnnl_memory_desc_init_by_strides(&plain, 2, dims, dnnl_f32, strides) != dnnl_success) return 1;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t to = NULL;
    dnnl_stream_t stream = NULL;
    int ok = dnnl_reorder_primitive_desc_create(&rpd, &g->packed_md, engine, &plain, engine, NULL) == dnnl_success
        && dnnl_primitive_create(&reorder, rpd) == dnnl_success
        && dnnl_memory_create(&to, &plain, engine, w) == dnnl_success
        && dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, g->packed_memory}, {DNNL_ARG_TO, to}};
        ok = dnnl_primitive_execute(reorder, stream, 2, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success;
    }
    if (stream) dnnl_stream_destroy(stream);
    if (to) dnnl_memory_destroy(to);
    if (reorder) dnnl_primitive_destroy(reorder);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    return ok ? 0 : 1;
}

/* Copies the cached primitive for a shape to `out`, made on first use; 0 when oneDNN cannot
 * make it. (Entries never change once made; the array may move, hence the copy.) */
static int shape_for(kerf_packed_gemm *g, int64_t m, shape_entry *out) {
    shape_entry *found = NULL;
    pthread_mutex_lock(&g->lock);
    for (int i = 0; i < g->shape_count; i++) {
        shape_entry *e = &g->shapes[i];
        if (e->m == m) { found = e; break; }
    }
    if (!found) {
        dnnl_primitive_desc_t pd = describe(m, g->k, g->n, g->bias != NULL, &g->packed_md);
        dnnl_primitive_t primitive = NULL;
        if (pd && dnnl_memory_desc_equal(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &g->packed_md)
            && dnnl_primitive_create(&primitive, pd) == dnnl_success) {
            if (g->shape_count == g->shape_capacity) {
                int capacity = g->shape_capacity ? 2 * g->shape_capacity : 8;
                shape_entry *grown = realloc(g->shapes, (size_t)capacity * sizeof *grown);
                if (grown) { g->shapes = grown; g->shape_capacity = capacity; }
            }
            if (g->shape_count < g->shape_capacity) {
                found = &g->shapes[g->shape_count++];
                found->m = m;
                found->primitive = primitive;
                found->scratch_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
                found->scratch_size = dnnl_memory_desc_get_size(&found->scratch_md);
                primitive = NULL;
            }
        }
        if (primitive) dnnl_primitive_destroy(primitive);
        if (pd) dnnl_primitive_desc_destroy(pd);
    }
    if (found) *out = *found;
    pthread_mutex_unlock(&g->lock);
    return found != NULL;
}

static void release_worker_memory(worker_memory *w) {
    if (w->src) dnnl_memory_destroy(w->src);
    if (w->dst) dnnl_memory_destroy(w->dst);
    if (w->scratch) dnnl_memory_destroy(w->scratch);
    *w = (worker_memory){0};
}

/* Makes a worker's memory objects for a product of e->m rows (their data handles are set
 * per run). 0 on failure, with none kept. */
static int make_worker_memory(kerf_packed_gemm *g, const shape_entry *e, void *scratch, worker_memory *w) {
    release_worker_memory(w);
    dnnl_memory_desc_t src, dst, bias_md;
    int ok = describe_operands(e->m, g->k, g->n, &src, &dst, &bias_md)
        && dnnl_memory_create(&w->src, &src, engine, DNNL_MEMORY_NONE) == dnnl_success
        && dnnl_memory_create(&w->dst, &dst, engine, DNNL_MEMORY_NONE) == dnnl_success
        && (e->scratch_size == 0 || dnnl_memory_create(&w->scratch, &e->scratch_md, engine, scratch) == dnnl_success);
    if (!ok) { release_worker_memory(w); return 0; }
    w->m = e->m;
    return 1;
}

int kerf_packed_gemm_writes_strided(const kerf_packed_gemm *g) { return g->panels; }

int kerf_packed_gemm_run_strided(kerf_packed_gemm *g, int64_t m, const float *a, float *c, int64_t ldc) {
    if (!g->panels || ldc < g->n) return 1;
    if (m <= 0) return 0;
    kerf_sgemm_avx2((size_t)m, (size_t)g->k, (size_t)g->n, a, (size_t)g->k, g->packed, g->bias, c, (size_t)ldc, 0,
                    ((size_t)g->n + 15) / 16);
    return 0;
}

int kerf_packed_gemm_run(kerf_packed_gemm *g, int64_t m, const float *a, float *c, int worker) {
    if (m <= 0) return 0;
    if (worker < 0 || worker >= MAX_WORKERS) return 1;
    if (g->panels) return kerf_packed_gemm_run_strided(g, m, a, c, g->n);
    shape_entry e;
    if (!shape_for(g, m, &e)) return 1;
    if (!g->streams[worker] && dnnl_stream_create(&g->streams[worker], engine, dnnl_stream_default_flags) != dnnl_success) {
        g->streams[worker] = NULL;
        return 1;
    }
    worker_memory *w = &g->memory[worker];
    if (e.scratch_size > g->scratch_size[worker]) {
        release_worker_memory(w); /* its scratch memory points at the old buffer */
        free(g->scratch[worker]);
        g->scratch[worker] = aligned_alloc(64, (e.scratch_size + 63) / 64 * 64);
        g->scratch_size[worker] = g->scratch[worker] ? e.scratch_size : 0;
        if (!g->scratch[worker]) return 1;
    }
    if (w->m != m && !make_worker_memory(g, &e, g->scratch[worker], w)) return 1;
    if (dnnl_memory_set_data_handle(w->src, (void *)a) != dnnl_success
        || dnnl_memory_set_data_handle(w->dst, c) != dnnl_success) return 1;
    dnnl_exec_arg_t args[5];
    int count = 0;
    args[count++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, w->src};
    args[count++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, g->packed_memory};
    args[count++] = (dnnl_exec_arg_t){DNNL_ARG_DST, w->dst};
    if (g->bias_memory) args[count++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, g->bias_memory};
    if (w->scratch) args[count++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, w->scratch};
    return dnnl_primitive_execute(e.primitive, g->streams[worker], count, args) == dnnl_success ? 0 : 1;
}

void kerf_packed_gemm_destroy(kerf_packed_gemm *g) {
    if (!g) return;
    for (int i = 0; i < g->shape_count; i++) dnnl_primitive_destroy(g->shapes[i].primitive);
    free(g->shapes);
    for (int w = 0; w < MAX_WORKERS; w++) {
        release_worker_memory(&g->memory[w]);
        if (g->streams[w]) dnnl_stream_destroy(g->streams[w]);
        free(g->scratch[w]);
    }
    if (g->packed_memory) dnnl_memory_destroy(g->packed_memory);
    if (g->bias_memory) dnnl_memory_destroy(g->bias_memory);
    if (g->owns_packed) free(g->packed);
    free(g->bias);
    pthread_mutex_destroy(&g->lock);
    free(g);
}
