/* GEMM against a packed constant matrix through oneDNN's matmul primitive; contract in
 * include/kerf_packed_gemm.h. */
#include "kerf_packed_gemm.h"
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
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

struct kerf_packed_gemm {
    int64_t k, n;
    dnnl_memory_desc_t packed_md;
    void *packed;                  /* W in oneDNN's layout */
    float *bias;                   /* n floats or NULL */
    pthread_mutex_t lock;          /* guards shapes */
    shape_entry *shapes;
    int shape_count, shape_capacity;
    dnnl_stream_t streams[MAX_WORKERS];
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

/* Reorders w into oneDNN's layout `md`, at a fresh buffer. */
static void *pack(const float *w, int64_t ldw, int trans_w, int64_t k, int64_t n, const dnnl_memory_desc_t *md) {
    dnnl_memory_desc_t plain;
    dnnl_dims_t dims = {k, n}, strides = {trans_w ? 1 : ldw, trans_w ? ldw : 1};
    if (dnnl_memory_desc_init_by_strides(&plain, 2, dims, dnnl_f32, strides) != dnnl_success) return NULL;
    size_t size = dnnl_memory_desc_get_size(md);
    void *buffer = aligned_alloc(64, (size + 63) / 64 * 64);
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
    return buffer;
}

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
    return g;
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

int kerf_packed_gemm_run(kerf_packed_gemm *g, int64_t m, const float *a, float *c, int worker) {
    if (m <= 0) return 0;
    if (worker < 0 || worker >= MAX_WORKERS) return 1;
    shape_entry e;
    if (!shape_for(g, m, &e)) return 1;
    if (!g->streams[worker] && dnnl_stream_create(&g->streams[worker], engine, dnnl_stream_default_flags) != dnnl_success) {
        g->streams[worker] = NULL;
        return 1;
    }
    if (e.scratch_size > g->scratch_size[worker]) {
        free(g->scratch[worker]);
        g->scratch[worker] = aligned_alloc(64, (e.scratch_size + 63) / 64 * 64);
        g->scratch_size[worker] = g->scratch[worker] ? e.scratch_size : 0;
        if (!g->scratch[worker]) return 1;
    }
    dnnl_memory_desc_t src, dst, bias_md;
    if (!describe_operands(m, g->k, g->n, &src, &dst, &bias_md)) return 1;
    dnnl_memory_t mem[5] = {NULL, NULL, NULL, NULL, NULL};
    dnnl_exec_arg_t args[5];
    int count = 0;
    int ok = dnnl_memory_create(&mem[0], &src, engine, (void *)a) == dnnl_success
        && dnnl_memory_create(&mem[1], &g->packed_md, engine, g->packed) == dnnl_success
        && dnnl_memory_create(&mem[2], &dst, engine, c) == dnnl_success;
    if (ok) {
        args[count++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mem[0]};
        args[count++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mem[1]};
        args[count++] = (dnnl_exec_arg_t){DNNL_ARG_DST, mem[2]};
    }
    if (ok && g->bias) {
        ok = dnnl_memory_create(&mem[3], &bias_md, engine, g->bias) == dnnl_success;
        if (ok) args[count++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mem[3]};
    }
    if (ok && e.scratch_size > 0) {
        ok = dnnl_memory_create(&mem[4], &e.scratch_md, engine, g->scratch[worker]) == dnnl_success;
        if (ok) args[count++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mem[4]};
    }
    ok = ok && dnnl_primitive_execute(e.primitive, g->streams[worker], count, args) == dnnl_success;
    for (int i = 0; i < 5; i++) if (mem[i]) dnnl_memory_destroy(mem[i]);
    return ok ? 0 : 1;
}

void kerf_packed_gemm_destroy(kerf_packed_gemm *g) {
    if (!g) return;
    for (int i = 0; i < g->shape_count; i++) dnnl_primitive_destroy(g->shapes[i].primitive);
    free(g->shapes);
    for (int w = 0; w < MAX_WORKERS; w++) {
        if (g->streams[w]) dnnl_stream_destroy(g->streams[w]);
        free(g->scratch[w]);
    }
    free(g->packed);
    free(g->bias);
    pthread_mutex_destroy(&g->lock);
    free(g);
}
