/*
 * kerf.h — the C interface to Kerf, an embeddable ONNX inference and
 * model-compression library.
 *
 * A five-minute tour
 * ------------------
 *
 *     #include "kerf.h"
 *
 *     kerf_model *model = NULL;
 *     if (kerf_model_load("model.onnx", &model) != KERF_OK) {
 *         fprintf(stderr, "kerf: %s\n", kerf_last_error());
 *         return 1;
 *     }
 *     kerf_session *session = NULL;
 *     kerf_session_create(model, NULL, &session);      // NULL = default options
 *
 *     int64_t dims[2] = {1, 64};
 *     float pixels[64] = {0};
 *     kerf_tensor *x = NULL;
 *     kerf_tensor_create(KERF_DTYPE_FLOAT, dims, 2, pixels, sizeof pixels, &x);
 *
 *     const char *in_names[1] = {"input"};
 *     kerf_tensor *outputs[1] = {NULL};
 *     kerf_session_run(session, in_names, (const kerf_tensor *const *)&x, 1,
 *                      NULL, outputs, 1);                // NULL = all outputs, in order
 *
 *     const void *data; size_t bytes;
 *     kerf_tensor_data(outputs[0], &data, &bytes);
 *     ...
 *     kerf_tensor_free(outputs[0]);
 *     kerf_tensor_free(x);
 *     kerf_session_free(session);
 *     kerf_model_free(model);
 *
 * Rules that hold for every function
 * ----------------------------------
 * - Every fallible function returns a kerf_status. KERF_OK (0) means success;
 *   any other value means failure, and kerf_last_error() describes it.
 * - Out-parameters come last. On failure, pointer out-parameters are set to
 *   NULL (when the out-pointer itself is not NULL).
 * - No argument can abort the host process: NULL pointers, wrong sizes, bad
 *   files and unsupported models are reported as statuses.
 * - Ownership is stated per function. Objects Kerf creates are released with
 *   the matching kerf_*_free; memory Kerf returns as a raw buffer is released
 *   with kerf_free. Every kerf_*_free accepts NULL.
 * - Threads: a kerf_model is immutable after load and may be shared by any
 *   number of threads. A kerf_session may be run (kerf_session_run*) from
 *   any number of threads at once (since ABI 1.8; before, one at a time):
 *   each run has values of its own, and each operator serves one run at a
 *   time, so concurrent runs overlap on different steps of the plan.
 *   kerf_session_free must not race with a run of the same session.
 *   kerf_last_error() is per thread.
 *
 * Structs that start with struct_size
 * -----------------------------------
 * The option structs and kerf_value_info only ever grow at their end, and
 * struct_size says which of their versions the caller has: it is sizeof the
 * struct in the kerf.h the caller was compiled with. Kerf accepts any
 * struct_size from the struct's first release (e.g. the ABI 1.0
 * kerf_session_options, up to optimization_level) up to its own sizeof, reads
 * or writes only the first struct_size bytes, and gives every field past them
 * the value the struct's kerf_*_options_init gives. A struct_size below the
 * first release or above what the loaded library knows fails with
 * KERF_INVALID_ARGUMENT, the sizes named in kerf_last_error().
 * kerf_X_options_init(options) is a macro that passes sizeof *options to
 * kerf_X_options_init_sized, so each program fills exactly the struct it
 * was compiled with (since ABI 1.8; programs built earlier call the function
 * of that name, which fills the struct as of ABI 1.7).
 * Fields are appended at or after the previous release's sizeof, never into
 * its tail padding.
 */
#ifndef KERF_H
#define KERF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version: the major changes only on incompatible changes. Bindings
 * refuse a library whose major differs from the one they were written for. */
#define KERF_ABI_VERSION_MAJOR 1
#define KERF_ABI_VERSION_MINOR 12
#define KERF_ABI_VERSION ((KERF_ABI_VERSION_MAJOR << 16) | KERF_ABI_VERSION_MINOR)

/* ------------------------------------------------------------------------ */
/* Status codes (append-only)                                               */
/* ------------------------------------------------------------------------ */

typedef int32_t kerf_status;
enum {
    KERF_OK = 0,
    KERF_INVALID_ARGUMENT = 1, /* a NULL, out-of-range or inconsistent argument */
    KERF_IO = 2,               /* a file could not be read or written */
    KERF_INVALID_MODEL = 3,    /* the bytes are not a valid ONNX model */
    KERF_UNSUPPORTED = 4,      /* a valid model uses something Kerf cannot run */
    KERF_SHAPE_MISMATCH = 5,   /* a tensor's dtype, rank or dims do not fit */
    KERF_OUT_OF_MEMORY = 6,
    KERF_CANCELLED = 7,        /* a progress callback asked to stop */
    KERF_INTERNAL = 8          /* a bug in Kerf: please report it */
};

/* ------------------------------------------------------------------------ */
/* Element types: the values of ONNX TensorProto.DataType                   */
/* ------------------------------------------------------------------------ */

typedef int32_t kerf_dtype;
enum {
    KERF_DTYPE_UNDEFINED = 0,
    KERF_DTYPE_FLOAT = 1,    /* float32 */
    KERF_DTYPE_UINT8 = 2,
    KERF_DTYPE_INT8 = 3,
    KERF_DTYPE_UINT16 = 4,
    KERF_DTYPE_INT16 = 5,
    KERF_DTYPE_INT32 = 6,
    KERF_DTYPE_INT64 = 7,
    KERF_DTYPE_STRING = 8,   /* not usable in kerf_tensor */
    KERF_DTYPE_BOOL = 9,     /* one byte per element, 0 or 1 */
    KERF_DTYPE_FLOAT16 = 10,
    KERF_DTYPE_DOUBLE = 11,
    KERF_DTYPE_UINT32 = 12,
    KERF_DTYPE_UINT64 = 13,
    KERF_DTYPE_BFLOAT16 = 16,
    KERF_DTYPE_FLOAT8E4M3FN = 17,  /* the small types below: one byte per element */
    KERF_DTYPE_FLOAT8E4M3FNUZ = 18,
    KERF_DTYPE_FLOAT8E5M2 = 19,
    KERF_DTYPE_FLOAT8E5M2FNUZ = 20,
    KERF_DTYPE_UINT4 = 21,         /* sub-byte types are unpacked: one element per byte, */
    KERF_DTYPE_INT4 = 22,          /* signed ones sign-extended (ONNX files pack them)   */
    KERF_DTYPE_FLOAT4E2M1 = 23,
    KERF_DTYPE_FLOAT8E8M0 = 24,
    KERF_DTYPE_UINT2 = 25,
    KERF_DTYPE_INT2 = 26
};

/* ------------------------------------------------------------------------ */
/* Library                                                                  */
/* ------------------------------------------------------------------------ */

/* The library version, e.g. "0.1.0". Static storage; never free it. */
const char *kerf_version(void);

/* KERF_ABI_VERSION of the library actually loaded. */
uint32_t kerf_abi_version(void);

/* The instruction-set level Kerf's kernels run at: "avx512_vnni", "avx512", "avx_vnni", "avx2"
 * or "scalar". It is the CPU's, capped by the environment variable KERF_MAX_ISA (one of those
 * names, read once when the library loads; it caps oneDNN's kernels too), so that one machine
 * can run every kernel variant up to its own. Static storage; never free it. (ABI 1.6) */
const char *kerf_instruction_set(void);

/* A description of the calling thread's most recent failure. Valid until the
 * same thread's next failing call; never NULL ("" if nothing failed). */
const char *kerf_last_error(void);

/* Releases a buffer Kerf returned (e.g. from kerf_model_save_bytes). NULL is fine. */
void kerf_free(void *buffer);

/* The allocation limit, in bytes: the most tensor memory Kerf holds in this
 * process (weights, activations, outputs not yet freed, and buffers kept for
 * reuse, which are dropped first when the limit is near; not memory that
 * kerf_tensor_wrap borrows). Every tensor allocation (loading, session
 * creation, runs, kerf_tensor_create) is checked against it before it is
 * made; one that would pass it, or that the system refuses, fails with
 * KERF_OUT_OF_MEMORY and a message naming the tensor or operator, and the
 * process goes on. 0 restores the default, 80% of physical memory. Lowering
 * it frees nothing already allocated. Thread-safe. (ABI 1.7) */
void kerf_set_memory_limit(uint64_t bytes);

/* The allocation limit in force, in bytes (see kerf_set_memory_limit). (ABI 1.7) */
uint64_t kerf_memory_limit(void);

/* ------------------------------------------------------------------------ */
/* Tensors: dense, row-major, one dtype                                     */
/* ------------------------------------------------------------------------ */

typedef struct kerf_tensor kerf_tensor;

/* Creates a tensor of `rank` dims and copies `byte_size` bytes from `data`
 * into it. byte_size must equal product(dims) * element size. `data` may be
 * NULL to get a zero-filled tensor (byte_size must still be correct).
 * rank 0 is a scalar (dims may be NULL). Every dim must be >= 0.
 * KERF_OUT_OF_MEMORY when byte_size would pass the allocation limit
 * (kerf_set_memory_limit) or the system refuses the memory. */
kerf_status kerf_tensor_create(kerf_dtype dtype, const int64_t *dims, size_t rank,
                               const void *data, size_t byte_size, kerf_tensor **out);

/* Creates a tensor that borrows `data` without copying. Kerf calls
 * release(data, user) exactly once when the tensor is freed (release may be
 * NULL when the caller keeps `data` alive longer than the tensor). `data`
 * must stay valid and unmodified while the tensor lives. On failure release
 * is not called. */
kerf_status kerf_tensor_wrap(kerf_dtype dtype, const int64_t *dims, size_t rank,
                             void *data, size_t byte_size,
                             void (*release)(void *data, void *user), void *user,
                             kerf_tensor **out);

void kerf_tensor_free(kerf_tensor *tensor);

/* Frees tensors[0..count) (NULL entries are fine); the array itself stays the caller's.
 * Since ABI 1.4. */
void kerf_tensors_free(kerf_tensor *const *tensors, size_t count);

kerf_status kerf_tensor_dtype(const kerf_tensor *tensor, kerf_dtype *out);

/* Borrowed dims: *dims stays valid while the tensor lives (NULL when rank 0). */
kerf_status kerf_tensor_shape(const kerf_tensor *tensor, const int64_t **dims, size_t *rank);

/* Borrowed element data: valid while the tensor lives. */
kerf_status kerf_tensor_data(const kerf_tensor *tensor, const void **data, size_t *byte_size);

/* Everything above in one call (since ABI 1.1): dtype, borrowed dims and rank, borrowed data
 * and its byte size. Every out-pointer must be non-NULL. */
kerf_status kerf_tensor_info(const kerf_tensor *tensor, kerf_dtype *dtype, const int64_t **dims, size_t *rank,
                             const void **data, size_t *byte_size);

/* ------------------------------------------------------------------------ */
/* Models                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct kerf_model kerf_model;

/* Loads an ONNX model file. External tensor data is read from files
 * relative to the model's directory. */
kerf_status kerf_model_load(const char *path, kerf_model **out);

/* Loads an ONNX model from memory (copied; `data` may be freed after). */
kerf_status kerf_model_load_bytes(const void *data, size_t size, kerf_model **out);

/* Writes the model to `path` atomically: a temporary file in the same
 * directory is written, fsynced and renamed over `path`. On failure `path`
 * is left as it was. */
kerf_status kerf_model_save(const kerf_model *model, const char *path);

/* Serializes the model. *data is released with kerf_free. */
kerf_status kerf_model_save_bytes(const kerf_model *model, void **data, size_t *size);

void kerf_model_free(kerf_model *model);

/* Describes one graph input or output as the file declares it. Strings and
 * arrays are borrowed from the model and stay valid while it, or a session
 * made from it, lives. dims[i] is -1 for a symbolic or unknown dimension;
 * dim_names[i] is then its symbolic name (the file's dim_param, e.g.
 * "batch"), or NULL when the file gives neither a value nor a name. A value of
 * unknown rank has rank_known == 0, rank == 0 and dims == dim_names == NULL;
 * so has a scalar (rank_known == 1). dtype is KERF_DTYPE_UNDEFINED for values
 * that are not tensors (sequences, maps). */
typedef struct kerf_value_info {
    size_t struct_size;   /* set by the caller to sizeof(kerf_value_info) */
    const char *name;
    kerf_dtype dtype;
    int32_t rank_known;   /* 1 if rank and dims are meaningful */
    size_t rank;
    const int64_t *dims;
    const char *const *dim_names; /* rank entries, see above; since ABI 1.10 */
} kerf_value_info;

kerf_status kerf_model_input_count(const kerf_model *model, size_t *out);
kerf_status kerf_model_output_count(const kerf_model *model, size_t *out);

/* `info->struct_size` must be set before the call. Inputs exclude initializers. */
kerf_status kerf_model_input(const kerf_model *model, size_t index, kerf_value_info *info);
kerf_status kerf_model_output(const kerf_model *model, size_t index, kerf_value_info *info);

/* The model's descriptive fields, as the file holds them (since ABI 1.10).
 * Strings are borrowed from the model ("" when the file has none) and stay
 * valid while it lives. property_keys[i] / property_values[i] are the file's
 * metadata_props, in file order. */
typedef struct kerf_model_metadata {
    size_t struct_size;              /* set by the caller to sizeof(kerf_model_metadata) */
    const char *producer_name;
    const char *producer_version;
    const char *domain;
    const char *doc_string;          /* the model's */
    const char *graph_name;
    const char *graph_doc_string;
    int64_t model_version;
    size_t n_properties;
    const char *const *property_keys;
    const char *const *property_values;
} kerf_model_metadata;

/* `metadata->struct_size` must be set before the call. */
kerf_status kerf_model_get_metadata(const kerf_model *model, kerf_model_metadata *metadata);

/* ------------------------------------------------------------------------ */
/* Sessions: a model prepared for running                                   */
/* ------------------------------------------------------------------------ */

typedef struct kerf_session kerf_session;

typedef struct kerf_session_options {
    size_t struct_size;          /* sizeof(kerf_session_options) */
    int32_t threads;             /* intra-op threads; 0 = one per core */
    int32_t optimization_level;  /* 0 = none, 1 = all (default) */
    int32_t sparse_kernels;      /* 1 = use sparse kernels where measured faster (default), 0 = always dense; since ABI 1.2 */
    uint64_t memory_limit;       /* bytes of tensor memory this session may hold (what it allocates while
                                    created or run and that is still alive: activations, prepared
                                    weights, outputs not yet freed); passing it is KERF_OUT_OF_MEMORY.
                                    0 (default) = only the process-wide kerf_set_memory_limit; since ABI 1.7 */
    const char *const *kept_values; /* n_kept_values names of values graph optimizations must keep, so
                                    that a run can return them by name (output_names) though they are
                                    no graph outputs; any value the plan computes can be returned, this
                                    matters only for those a fusion would remove. Copied by
                                    kerf_session_create. Default NULL; since ABI 1.8 */
    size_t n_kept_values;        /* default 0; since ABI 1.8 */
} kerf_session_options;

/* Fills the first struct_size bytes of `options` with the defaults, struct_size
 * among them (since ABI 1.8). KERF_INVALID_ARGUMENT when `options` is NULL or
 * struct_size is not one this library accepts; then only struct_size is written.
 * Call it as kerf_session_options_init(options), which passes sizeof *options. */
kerf_status kerf_session_options_init_sized(kerf_session_options *options, size_t struct_size);
void kerf_session_options_init(kerf_session_options *options); /* the ABI 1.7 struct */
#define kerf_session_options_init(options) \
    ((void)kerf_session_options_init_sized((options), sizeof *(options)))

/* Prepares `model` for running. `options` may be NULL for defaults. The
 * session does not need the model afterwards: the model may be freed before
 * the session (its value infos stay valid while the session lives). Constant
 * float MatMul/Gemm weights are packed at the first run that uses them, and
 * the session then keeps only the packed copy: freeing the model (before or
 * after) frees the original weights. */
kerf_status kerf_session_create(const kerf_model *model, const kerf_session_options *options,
                                kerf_session **out);

void kerf_session_free(kerf_session *session);

/* Runs the model.
 * - input_names[i] names the graph input fed by inputs[i], for i < n_inputs.
 *   Every graph input without an initializer must be fed.
 * - output_names lists the n_outputs values to compute; NULL means all graph
 *   outputs in order (n_outputs must then equal their count). Any value of the
 *   model may be named, graph output or not (since ABI 1.8); one that graph
 *   optimizations fused away is KERF_INVALID_ARGUMENT unless listed in the
 *   session's kept_values.
 * - outputs is a caller-owned array of n_outputs slots; each receives a new
 *   tensor that the caller frees with kerf_tensor_free. On failure every
 *   slot is NULL.
 * Inputs are only read; they may be freed after the call. */
kerf_status kerf_session_run(kerf_session *session,
                             const char *const *input_names, const kerf_tensor *const *inputs,
                             size_t n_inputs,
                             const char *const *output_names, kerf_tensor **outputs,
                             size_t n_outputs);

/* A tensor described in place by its caller, without a handle (since ABI 1.4). Same rules
 * as kerf_tensor_create: byte_size = product(dims) * element size, row-major. */
typedef struct kerf_tensor_view {
    kerf_dtype dtype;
    size_t rank;
    const int64_t *dims;  /* rank dims; may be NULL when rank is 0 */
    const void *data;     /* byte_size bytes; may be NULL when byte_size is 0 */
    size_t byte_size;
} kerf_tensor_view;

/* kerf_session_run with inputs described in place (since ABI 1.4). inputs[i] is only read,
 * during the call, so feeding needs no kerf_tensor_create/wrap and no free per input.
 * When output_views is not NULL, on success output_views[i] describes outputs[i] (dims and
 * data borrowed from that tensor: valid while it lives), so reading an output needs no
 * kerf_tensor_info. Everything else as kerf_session_run. Bindings run with this one call. */
kerf_status kerf_session_run_views(kerf_session *session,
                                   const char *const *input_names, const kerf_tensor_view *inputs,
                                   size_t n_inputs,
                                   const char *const *output_names, kerf_tensor **outputs,
                                   kerf_tensor_view *output_views, size_t n_outputs);

/* kerf_session_run_views that copies outputs into the caller's buffers when it knows their
 * shape (since ABI 1.5). On entry output_views (not NULL when n_outputs > 0) holds what the
 * caller expects of each output: when output i has exactly output_views[i].dtype, .rank and
 * .dims, and .byte_size equals its size, it is copied to output_views[i].data (a writable
 * buffer of the caller's, despite the const), output_views[i] is left as it was and outputs[i]
 * stays NULL. Any other output comes back as in kerf_session_run_views: a new handle in
 * outputs[i], described in output_views[i]. Bindings that keep the last run's output shapes
 * run with this one call and no kerf_tensors_free. */
kerf_status kerf_session_run_into(kerf_session *session,
                                  const char *const *input_names, const kerf_tensor_view *inputs,
                                  size_t n_inputs,
                                  const char *const *output_names, kerf_tensor **outputs,
                                  kerf_tensor_view *output_views, size_t n_outputs);

/* The operators a run of `session` executes, in order, one per line ("OpType", or
 * "domain.OpType" outside the default domain; operators Kerf fused at session creation, such
 * as "kerf.QuantizedConv", under their own names). *out is freed with kerf_free. Since ABI 1.3. */
kerf_status kerf_session_plan(const kerf_session *session, char **out);

/* ------------------------------------------------------------------------ */
/* Progress of long work                                                    */
/* ------------------------------------------------------------------------ */

/* Called as long work advances: `done` of `total` steps are finished and
 * `message` (valid during the call only) names the current step. Return 0
 * to continue, anything else to cancel: the call then fails with
 * KERF_CANCELLED and changes nothing. Called on the caller's thread. */
typedef int32_t (*kerf_progress_fn)(void *user_data, int64_t done, int64_t total, const char *message);

/* ------------------------------------------------------------------------ */
/* Pruning                                                                  */
/* ------------------------------------------------------------------------ */

enum {
    KERF_PRUNE_MAGNITUDE = 0, /* zero the smallest-magnitude weights */
    KERF_PRUNE_N_OF_M = 1,    /* keep n of every m weights along the reduction dimension */
    KERF_PRUNE_CHANNEL = 2    /* remove whole filters / units and rewrite their consumers */
};
enum { KERF_PRUNE_SCOPE_LAYER = 0, KERF_PRUNE_SCOPE_GLOBAL = 1 };
enum { KERF_CHANNEL_L1 = 0, KERF_CHANNEL_L2 = 1, KERF_CHANNEL_BN_GAMMA = 2 };

typedef struct kerf_prune_options {
    size_t struct_size;          /* sizeof(kerf_prune_options) */
    int32_t method;              /* KERF_PRUNE_*; default MAGNITUDE */
    int32_t scope;               /* KERF_PRUNE_SCOPE_*; default LAYER (each tensor to the target) */
    double sparsity;             /* fraction of weights (magnitude) or channels (channel) removed, [0, 1); 0.5 */
    double max_tensor_sparsity;  /* cap per tensor in global scope; 0.99 */
    int32_t n, m;                /* for KERF_PRUNE_N_OF_M: keep n of every m; 2 and 4 */
    int32_t channel_criterion;   /* KERF_CHANNEL_*: how channels are ranked; L1 */
    int32_t store_sparse;        /* 1 = save weights that are smaller so as sparse_initializer; 0 */
    int64_t min_elements;        /* weights with fewer elements are left alone; 0 */
    const char *const *exclude;  /* weight names, node names or op types to leave alone */
    size_t n_exclude;
    const char *const *per_tensor_names; /* explicit sparsity per weight (overrides sparsity/scope) */
    const double *per_tensor_sparsity;
    size_t n_per_tensor;
    /* Since ABI 1.8: */
    kerf_progress_fn progress;   /* may be NULL; steps are weights (magnitude, N:M) or channel groups (channel) */
    void *progress_user_data;
    /* Since ABI 1.12: */
    int32_t channel_multiple;    /* channel: every group of more than this many channels keeps a multiple of it
                                    (rounded to the nearest, at least one multiple), so that blocked kernels
                                    (ONNX Runtime's NCHWc: 8 or 16) stay fast; 0 or 1 = no rounding; 1 */
} kerf_prune_options;

/* Defaults, as kerf_session_options_init_sized (since ABI 1.8). */
kerf_status kerf_prune_options_init_sized(kerf_prune_options *options, size_t struct_size);
void kerf_prune_options_init(kerf_prune_options *options); /* the ABI 1.7 struct */
#define kerf_prune_options_init(options) \
    ((void)kerf_prune_options_init_sized((options), sizeof *(options)))

/* Prunes the Conv, Gemm and MatMul weights of `model` in place; save it with
 * kerf_model_save. `options` may be NULL for defaults (50% magnitude, layer
 * scope). The model must not be used by other threads during the call;
 * sessions created before keep the weights they were created with. On
 * failure, a cancelling progress callback included (KERF_CANCELLED), the
 * model is unchanged.
 * `report` (may be NULL) receives a JSON object, freed with kerf_free:
 * {"method", "scope", "target_sparsity", "overall_sparsity",
 *  "tensors": [{"name", "node", "op_type", "shape_before", "shape",
 *               "zeros_before", "zeros", "sparsity", "stored_sparse"}],
 *  "skipped": [{"name", "reason"}], "parameters_before", "parameters_after",
 *  "nonzero_parameters_before", "nonzero_parameters_after",
 *  "bytes_before", "bytes_after"}. */
kerf_status kerf_prune(kerf_model *model, const kerf_prune_options *options, char **report);

typedef struct kerf_sensitivity_options {
    size_t struct_size;          /* sizeof(kerf_sensitivity_options) */
    const double *levels;        /* sparsity levels, each in [0, 1); NULL = 0.5, 0.7, 0.9 */
    size_t n_levels;
    const char *const *exclude;  /* weight names, node names or op types to leave out */
    size_t n_exclude;
    int64_t min_elements;        /* smaller weights are left out; 0 */
    int64_t batch_size;          /* samples per run when the model's batch is not fixed; 32 */
    int32_t threads;             /* intra-op threads of the runs; 0 = one per core */
    kerf_progress_fn progress;   /* may be NULL */
    void *progress_user_data;
} kerf_sensitivity_options;

/* Defaults, as kerf_session_options_init_sized (since ABI 1.8). */
kerf_status kerf_sensitivity_options_init_sized(kerf_sensitivity_options *options, size_t struct_size);
void kerf_sensitivity_options_init(kerf_sensitivity_options *options); /* the ABI 1.7 struct */
#define kerf_sensitivity_options_init(options) \
    ((void)kerf_sensitivity_options_init_sized((options), sizeof *(options)))

/* Prunes each prunable weight alone, by magnitude, to each level and runs
 * the model on the data: data[i] feeds graph input input_names[i], with
 * samples along the first dimension. `labels` (int64 or int32, one class per
 * sample; may be NULL) adds accuracy of the first output. `model` is not
 * changed. `table` receives a JSON object, freed with kerf_free:
 * {"levels", "samples", "baseline_accuracy",
 *  "rows": [{"tensor", "node", "op_type", "elements", "level",
 *            "relative_error", "max_abs_error", "cosine", "accuracy"}]}
 * where relative_error = ||y - y0|| / ||y0|| over all float outputs. */
kerf_status kerf_sensitivity(const kerf_model *model, const char *const *input_names,
                             const kerf_tensor *const *data, size_t n_data, const kerf_tensor *labels,
                             const kerf_sensitivity_options *options, char **table);

/* ------------------------------------------------------------------------ */
/* Int8 quantization (since ABI 1.3)                                        */
/* ------------------------------------------------------------------------ */

enum {
    KERF_QUANTIZE_DYNAMIC = 0, /* int8 weights; activations quantized at run time (MatMul/Gemm) */
    KERF_QUANTIZE_STATIC = 1   /* QDQ: calibrated activation ranges (Conv, MatMul, Gemm) */
};
enum { KERF_CALIBRATE_MINMAX = 0, KERF_CALIBRATE_PERCENTILE = 1, KERF_CALIBRATE_ENTROPY = 2 };
enum { KERF_ACTIVATION_UINT8 = 0, KERF_ACTIVATION_INT8 = 1 };

/* Supplies calibration batch `index` (0, 1, 2, ...): stores in inputs[k] a
 * new tensor (kerf_tensor_create) for graph input names[k], k < count, and
 * returns 1; returns 0 when there are no more batches, or a negative value to
 * fail the call. Kerf owns (and frees) every tensor stored, whatever the
 * return value. Kerf may read the data several times (one pass per analysis):
 * the same index must give the same batch. */
typedef int32_t (*kerf_calibration_fn)(void *user_data, int64_t index, const char *const *names,
                                       size_t count, kerf_tensor **inputs);

typedef struct kerf_quantize_options {
    size_t struct_size;          /* sizeof(kerf_quantize_options) */
    int32_t mode;                /* KERF_QUANTIZE_*; DYNAMIC */
    int32_t method;              /* KERF_CALIBRATE_* (static mode); MINMAX */
    double percentile;           /* for KERF_CALIBRATE_PERCENTILE, in (0, 100]; 99.99 */
    int32_t activation_type;     /* KERF_ACTIVATION_* (static mode); UINT8 (U8S8, fastest on x86) */
    int32_t per_channel;         /* 1 = one weight scale per output channel (default), 0 = per tensor */
    int32_t quantize_embeddings; /* constant Gather tables (embeddings) as int8, one scale per table: 1 = always,
                                    0 = never, -1 = where a table is read by Gathers only and its int8
                                    form's SQNR is at least 30 dB (the report's "float" says why others
                                    stay float); -1 (since ABI 1.11; 0 before) */
    int32_t threads;             /* intra-op threads of calibration runs; 0 = one per core */
    const char *const *op_types; /* op types to quantize; NULL = Conv, MatMul, Gemm */
    size_t n_op_types;
    const char *const *exclude;  /* weight names, node names or op types to keep in float */
    size_t n_exclude;
    double auto_tolerance;       /* >= 0: keep the worst-SQNR nodes in float until the relative
                                    L2 error of the outputs is at most this; < 0 = off (-1) */
    double smooth_quant_alpha;   /* in [0, 1]: SmoothQuant migration strength; < 0 = off (-1) */
    kerf_calibration_fn calibration; /* calibration data; required by static mode and auto_tolerance */
    void *calibration_user_data;
    int64_t calibration_batches; /* number of batches when known (progress totals, report); 0 = unknown */
    kerf_progress_fn progress;   /* may be NULL; steps are batches of each pass over the data */
    void *progress_user_data;
    /* Since ABI 1.4: data to measure the report's agreement on instead of the calibration
     * data (same contract as `calibration`; NULL = use the calibration data). */
    kerf_calibration_fn validation;
    void *validation_user_data;
    int64_t validation_batches;  /* number of validation batches when known; 0 = unknown */
} kerf_quantize_options;

/* Defaults, as kerf_session_options_init_sized (since ABI 1.8). */
kerf_status kerf_quantize_options_init_sized(kerf_quantize_options *options, size_t struct_size);
void kerf_quantize_options_init(kerf_quantize_options *options); /* the ABI 1.7 struct */
#define kerf_quantize_options_init(options) \
    ((void)kerf_quantize_options_init_sized((options), sizeof *(options)))

/* Quantizes `model` in place to int8 (dynamic: DynamicQuantizeLinear ->
 * MatMulInteger -> Mul; static: QuantizeLinear/DequantizeLinear pairs, int8
 * weights per channel, int32 bias; the default opset is raised to 11 / 13
 * when lower). Conv is quantized in static mode only. Save the result with
 * kerf_model_save. On failure the model is unchanged.
 * `report` (may be NULL) receives a JSON object, freed with kerf_free:
 * {"mode", "method", "activation_type", "per_channel", "opset_before", "opset_after",
 *  "nodes": [{"name", "op_type", "weight", "weight_scale_min", "weight_scale_max",
 *             "weight_scales", "input_scale", "input_zero_point", "output_scale",
 *             "output_zero_point", "sqnr_db"}],
 *  "float": [{"name", "reason"}],
 *  "activations": [{"name", "min", "max", "low", "high", "scale", "zero_point"}],
 *  "embeddings", "smoothed", "calibration_batches", "bytes_before", "bytes_after", "size_ratio",
 *  "agreement": {"data", "samples", "top1_agreement", "cosine", "max_abs_error", "relative_error",
 *                "sqnr_db"}}
 * where agreement compares the quantized and float models on the validation
 * data when given, else on the calibration data (absent without either); its "data" says
 * which ("validation" or "calibration"). */
kerf_status kerf_quantize(kerf_model *model, const kerf_quantize_options *options, char **report);

/* ------------------------------------------------------------------------ */
/* Students from a teacher (since ABI 1.11)                                 */
/* ------------------------------------------------------------------------ */
enum {
    KERF_DROP_NONE = 0,        /* keep every layer */
    KERF_DROP_EVERY_OTHER = 1, /* remove layers 1, 3, 5, ... (DistilBERT's student: every other layer kept) */
    KERF_DROP_INDICES = 2      /* remove the layers drop_indices names */
};

typedef struct kerf_student_options {
    size_t struct_size;          /* sizeof(kerf_student_options) */
    int32_t drop;                /* KERF_DROP_*; EVERY_OTHER */
    const int64_t *drop_indices; /* KERF_DROP_INDICES: the layers' indices as the exporter numbered them */
    size_t n_drop_indices;
    double narrow;               /* in (0, 1): also remove this fraction of every channel group (feed-forward
                                    channels, attention heads, Conv channels) by channel pruning; 0 = off */
} kerf_student_options;

/* Defaults, as kerf_session_options_init_sized. */
kerf_status kerf_student_options_init_sized(kerf_student_options *options, size_t struct_size);
#define kerf_student_options_init(options) \
    ((void)kerf_student_options_init_sized((options), sizeof *(options)))

/* Makes `model` (a copy of the teacher: load the file twice) a smaller student in place,
 * initialized from the teacher's own weights, for kerf_distill to train. Repeated layers are
 * found by the exporter's names (layers.N, layer.N, h.N, blocks.N, in node or weight names);
 * each must be one block on the residual stream. A removed layer's readers read its input
 * instead. On failure the model is unchanged (KERF_UNSUPPORTED names what blocks a layer).
 * `report` (may be NULL): {"layers": [{"index", "nodes", "parameters", "dropped"}],
 * "narrowed": kerf_prune's report or absent, "parameters_before", "parameters_after",
 * "bytes_before", "bytes_after"}. */
kerf_status kerf_student(kerf_model *model, const kerf_student_options *options, char **report);

/* ------------------------------------------------------------------------ */
/* Training (since ABI 1.9)                                                 */
/* ------------------------------------------------------------------------ */
/*
 * Kerf trains a model's float initializers on the ONNX graph itself: the
 * loss is appended to the graph as nodes, the backward pass is built as a
 * graph (one gradient rule per op family) and both run in Kerf's runtime.
 * The optimizers and schedules follow torch.optim's update rules and
 * defaults exactly. A kerf_trainer steps one batch at a time; kerf_train runs
 * whole epochs (batching, shuffling, validation, early stopping, checkpoints).
 */

typedef struct kerf_trainer kerf_trainer;

enum {
    KERF_LOSS_CROSS_ENTROPY = 0, /* output: scores with classes on axis 1 (logits, or probabilities with
                                    from_probabilities); target: int class indices (the output's shape
                                    without axis 1) or float class probabilities (the output's shape) */
    KERF_LOSS_MSE = 1,           /* mean squared error over all elements */
    KERF_LOSS_L1 = 2,            /* mean absolute error */
    KERF_LOSS_HUBER = 3,         /* torch.nn.HuberLoss with `delta` */
    KERF_LOSS_BCE_WITH_LOGITS = 4 /* torch.nn.BCEWithLogitsLoss; target: probabilities in [0, 1] */
};
enum { KERF_REDUCTION_MEAN = 0, KERF_REDUCTION_SUM = 1 };

/* One term of the loss: the loss is the weighted sum of its terms. */
typedef struct kerf_loss_term {
    int32_t kind;                /* KERF_LOSS_* */
    const char *output;          /* the model output the term reads */
    const char *target;          /* the feed holding labels or targets (not a model input) */
    double weight;               /* weight in the sum (set it: 0 removes the term's effect) */
    int32_t from_probabilities;  /* cross-entropy: the output is probabilities, not logits */
    double label_smoothing;      /* cross-entropy: in [0, 1] */
    double delta;                /* Huber: > 0 */
} kerf_loss_term;

enum {
    KERF_OPTIMIZER_SGD = 0,      /* torch.optim.SGD: lr, momentum, dampening, nesterov, weight_decay */
    KERF_OPTIMIZER_ADAM = 1,     /* torch.optim.Adam: lr, beta1, beta2, eps, weight_decay, amsgrad */
    KERF_OPTIMIZER_ADAMW = 2     /* torch.optim.AdamW: Adam with decoupled weight decay */
};
enum {
    KERF_SCHEDULE_CONSTANT = 0,
    KERF_SCHEDULE_STEP = 1,          /* StepLR(step_size, gamma) */
    KERF_SCHEDULE_MULTI_STEP = 2,    /* MultiStepLR(milestones, gamma) */
    KERF_SCHEDULE_EXPONENTIAL = 3,   /* ExponentialLR(gamma) */
    KERF_SCHEDULE_COSINE = 4,        /* CosineAnnealingLR(t_max, eta_min), torch's recursive form */
    KERF_SCHEDULE_WARMUP_LINEAR = 5, /* linear warmup over warmup_steps, linear decay to
                                        final_fraction * lr at total_steps (transformers' schedule) */
    KERF_SCHEDULE_WARMUP_COSINE = 6, /* the same with half-cosine decay */
    KERF_SCHEDULE_ONE_CYCLE = 7      /* OneCycleLR(max_lr, total_steps, pct_start, div_factor,
                                        final_div_factor; cosine annealing; momentum/beta1 cycled
                                        between 0.85 and 0.95) */
};

/* Called after each optimizer step of kerf_train: `step` of `total_steps`
 * (0 when unknown), the epoch (from 0), the batch's loss and the learning
 * rate it was trained with. Return 0 to continue, anything else to cancel
 * (kerf_train then fails with KERF_CANCELLED and leaves the model unchanged). */
/* Training from scratch (kerf_train_options.initialization): fresh values for the trained
 * parameters by their role in the graph, as torch.nn.init: weights (MatMul/Gemm B, Conv W) by
 * the scheme with their fan-in/fan-out, biases 0, normalization scales 1, embedding tables
 * N(0, 1); anything else keeps its value. */
enum {
    KERF_INIT_NONE = 0,            /* keep the model's values */
    KERF_INIT_KAIMING_UNIFORM = 1, /* U(-b, b), b = sqrt(6 / fan_in) */
    KERF_INIT_KAIMING_NORMAL = 2,  /* N(0, 2 / fan_in) */
    KERF_INIT_XAVIER_UNIFORM = 3,  /* U(-b, b), b = sqrt(6 / (fan_in + fan_out)) */
    KERF_INIT_XAVIER_NORMAL = 4    /* N(0, 2 / (fan_in + fan_out)) */
};

typedef int32_t (*kerf_train_progress_fn)(void *user_data, int64_t step, int64_t total_steps, int64_t epoch,
                                          double loss, double learning_rate);

/* Supplies batch `index` of `epoch` (both from 0) for kerf_train: stores in
 * feeds[k] a new tensor (kerf_tensor_create) for names[k], k < count (the
 * model's inputs, then the loss's targets), and returns 1; returns 0 when the
 * epoch has no more batches, or a negative value to fail. Kerf owns every
 * tensor stored. The same (epoch, index) must give the same batch. */
typedef int32_t (*kerf_batch_fn)(void *user_data, int64_t epoch, int64_t index, const char *const *names,
                                 size_t count, kerf_tensor **feeds);

typedef struct kerf_train_options {
    size_t struct_size;          /* sizeof(kerf_train_options) */
    /* The loss (required). */
    const kerf_loss_term *loss;
    size_t n_loss;
    int32_t reduction;           /* KERF_REDUCTION_*; MEAN */
    /* The optimizer; defaults are torch's: SGD lr 0.01 (Kerf's; torch has none), momentum 0,
     * Adam/AdamW lr 1e-3, betas (0.9, 0.999), eps 1e-8, AdamW weight decay 0.01. */
    int32_t optimizer;           /* KERF_OPTIMIZER_*; SGD */
    double lr;                   /* < 0: the optimizer's default; -1 */
    double momentum;             /* SGD; 0 */
    double dampening;            /* SGD; 0 */
    int32_t nesterov;            /* SGD; 0 */
    double weight_decay;         /* < 0: the optimizer's default; -1 */
    double beta1, beta2, eps;    /* Adam/AdamW; 0.9, 0.999, 1e-8 */
    int32_t amsgrad;             /* Adam/AdamW; 0 */
    const char *const *no_decay; /* parameters (names, node names or op types) with no weight decay */
    size_t n_no_decay;
    double max_grad_norm;        /* > 0: clip the gradients' global L2 norm to it; 0 = off */
    int32_t accumulation_steps;  /* update every this many steps with their mean gradient; 1 */
    /* The learning-rate schedule, advanced once per optimizer step. */
    int32_t schedule;            /* KERF_SCHEDULE_*; CONSTANT */
    int64_t step_size;           /* STEP; 1 */
    double gamma;                /* STEP, MULTI_STEP, EXPONENTIAL; 0.1 */
    const int64_t *milestones;   /* MULTI_STEP */
    size_t n_milestones;
    int64_t t_max;               /* COSINE */
    double eta_min;              /* COSINE; 0 */
    int64_t warmup_steps;        /* WARMUP_*; 0 */
    int64_t total_steps;         /* WARMUP_*, ONE_CYCLE */
    double final_fraction;       /* WARMUP_*: final lr as a fraction of lr; 0 */
    double max_lr;               /* ONE_CYCLE: <= 0 = lr; 0 */
    double pct_start;            /* ONE_CYCLE; 0.3 */
    double div_factor;           /* ONE_CYCLE; 25 */
    double final_div_factor;     /* ONE_CYCLE; 1e4 */
    /* What trains: by default every float initializer of more than one element on a
     * differentiable path to the loss. Entries are initializer names, node names or op types. */
    const char *const *trainable;
    size_t n_trainable;
    const char *const *frozen;
    size_t n_frozen;
    int32_t threads;             /* threads per run and update; 0 = one per core */
    int32_t optimization_level;  /* 1: fuse torch's decomposed LayerNorm/GELU, optimize the runs; 0: as written */
    int32_t initialization;      /* KERF_INIT_*: start from fresh values instead of the model's; NONE */
    uint64_t initialization_seed; /* 0 */
    int32_t training_mode;       /* 1: BatchNormalization normalizes with batch statistics (updating the
                                    running ones) and Dropout drops, as PyTorch's model.train();
                                    0: the graph runs as exported (model.eval()); 1. Evaluation
                                    always runs as exported. */
    /* kerf_train only: data as whole arrays, samples on axis 0 (model inputs and loss targets
     * by name), or from a callback. */
    const char *const *data_names;
    const kerf_tensor *const *data;
    size_t n_data;
    kerf_batch_fn batches;       /* instead of data */
    void *batches_user_data;
    const char *const *validation_names; /* validation arrays (evaluated after each epoch) */
    const kerf_tensor *const *validation;
    size_t n_validation;
    int64_t epochs;              /* 1 */
    int64_t max_steps;           /* > 0: stop after this many optimizer steps; 0 */
    int64_t batch_size;          /* 32 */
    int32_t shuffle;             /* shuffle the arrays each epoch; 1 */
    uint64_t seed;               /* of the shuffling and of Dropout's masks (kerf_trainer_create too); 0 */
    int64_t patience;            /* > 0: stop after this many epochs without a better validation loss; 0 */
    int32_t restore_best;        /* with validation: end with the best epoch's parameters; 1 */
    const char *checkpoint_path; /* write a checkpoint here at the end of each epoch (and every
                                    checkpoint_every steps when > 0); NULL = none */
    int64_t checkpoint_every;
    const char *resume_from;     /* continue a run from this checkpoint; NULL = start afresh */
    kerf_train_progress_fn progress; /* may be NULL */
    void *progress_user_data;
    int32_t keep_sparsity;       /* 1: every trained weight of rank >= 2 that has exact zeros and other values
                                    keeps its zeros (gradient masked before each update, zeros restored after
                                    it): a pruned model stays exactly as sparse. All-zero weights and rank-1
                                    parameters train freely. 1; since ABI 1.10 */
    /* Gradual magnitude pruning while training (Zhu & Gupta; since ABI 1.10): after optimizer
     * update t = start, start + every, ..., end, every weight (MatMul/Gemm B, Conv W) is pruned
     * by magnitude to s_f + (s_i - s_f) * (1 - (t - start) / (end - start))^3 of its elements,
     * its zeros kept in between. */
    double gradual_sparsity;     /* s_f in (0, 1); 0 = off */
    double gradual_initial_sparsity; /* s_i in [0, s_f]; 0 */
    int64_t gradual_start_step;  /* 0 */
    int64_t gradual_end_step;    /* 0 = three quarters of the run (kerf_train/kerf_distill with arrays) */
    int64_t gradual_every;       /* updates between pruning steps; 0 = a tenth of (end - start) */
    /* Quantization-aware training (kerf_train and kerf_distill; since ABI 1.11).
     * With `qat` non-NULL the model trains with fake quantization (quantize, then dequantize, in
     * float; gradients by the straight-through estimator) wherever kerf_quantize with *qat would
     * quantize: Conv/MatMul/Gemm weights (symmetric int8, per channel as qat->per_channel says)
     * and, in static mode, the activations that get QuantizeLinear/DequantizeLinear pairs (ranges
     * first calibrated on qat->calibration, or on the data arrays' model inputs when it is NULL,
     * then moved towards each batch's min and max); in dynamic mode, MatMul/Gemm inputs with
     * their own ranges. BatchNormalization is folded into its Conv first. The model is then
     * written back as the int8 file kerf_quantize writes with *qat (static: QDQ with the trained
     * ranges), and the report gains "quantization": kerf_quantize's report, whose agreement
     * compares the int8 model with the trained float one on qat->validation (else
     * qat->calibration, else absent). qat->auto_tolerance and smooth_quant_alpha must be off. */
    const kerf_quantize_options *qat; /* NULL = no quantization-aware training */
    double qat_range_momentum;   /* m in [0, 1]: range = m * range + (1 - m) * batch's; 1 freezes; 0.99 */
    int32_t gradual_criterion;   /* KERF_GRADUAL_*: which elements gradual pruning removes; MAGNITUDE (since ABI 1.11) */
} kerf_train_options;

enum {
    KERF_GRADUAL_MAGNITUDE = 0,  /* the smallest |w| */
    KERF_GRADUAL_MOVEMENT = 1    /* movement pruning (Sanh et al. 2020): the smallest score -sum over updates of
                                    gradient * weight, i.e. the weights training moves towards zero */
};

/* Defaults, as kerf_session_options_init_sized. */
kerf_status kerf_train_options_init_sized(kerf_train_options *options, size_t struct_size);
#define kerf_train_options_init(options) \
    ((void)kerf_train_options_init_sized((options), sizeof *(options)))

/* A trainer of `model` (which it copies what it needs of: the model is not
 * changed and may be freed). The training graph is built at the first
 * step/backward/evaluate, when the targets' dtypes are known from the feeds.
 * The kerf_train-only fields of `options` are ignored. Free with
 * kerf_trainer_free. A trainer is used by one thread at a time. */
kerf_status kerf_trainer_create(const kerf_model *model, const kerf_train_options *options, kerf_trainer **out);
void kerf_trainer_free(kerf_trainer *trainer);

/* One training step on a batch: forward, loss, backward and (every
 * accumulation_steps calls) an optimizer update; then the schedule advances.
 * `names`/`feeds`: the model's inputs and the loss's targets. *loss (may be
 * NULL) receives the batch's loss before the update. A non-finite loss fails
 * with KERF_INVALID_ARGUMENT and changes nothing. */
kerf_status kerf_trainer_step(kerf_trainer *trainer, const char *const *names, const kerf_tensor *const *feeds,
                              size_t n_feeds, double *loss);
/* Forward, loss and backward without an update: the gradients for kerf_trainer_gradient. */
kerf_status kerf_trainer_backward(kerf_trainer *trainer, const char *const *names, const kerf_tensor *const *feeds,
                                  size_t n_feeds, double *loss);
/* The loss with the current parameters (forward only). */
kerf_status kerf_trainer_evaluate(kerf_trainer *trainer, const char *const *names, const kerf_tensor *const *feeds,
                                  size_t n_feeds, double *loss);

/* The trained parameters (known after the first step/backward/evaluate; 0 before). The name
 * is valid while the trainer lives. */
kerf_status kerf_trainer_parameter_count(const kerf_trainer *trainer, size_t *out);
kerf_status kerf_trainer_parameter_name(const kerf_trainer *trainer, size_t index, const char **out);
/* A copy of a parameter's current value / of its gradient from the last step or backward
 * (KERF_INVALID_ARGUMENT when it has none); free with kerf_tensor_free. */
kerf_status kerf_trainer_parameter(const kerf_trainer *trainer, const char *name, kerf_tensor **out);
kerf_status kerf_trainer_gradient(const kerf_trainer *trainer, const char *name, kerf_tensor **out);
/* Optimizer updates so far, and the learning rate of the next one (either may be NULL). */
kerf_status kerf_trainer_progress(const kerf_trainer *trainer, int64_t *steps, double *learning_rate);
/* The model with the trained values (a new model, an inference graph like the original's);
 * save it with kerf_model_save, free it with kerf_model_free. */
kerf_status kerf_trainer_model(const kerf_trainer *trainer, kerf_model **out);
/* Writes everything needed to continue (parameters, optimizer and schedule state, step) to an
 * .npz file, atomically. Fails before the first step. */
kerf_status kerf_trainer_checkpoint(const kerf_trainer *trainer, const char *path);
/* Continues from a checkpoint of a trainer of the same model, loss and options. */
kerf_status kerf_trainer_restore(kerf_trainer *trainer, const char *path);

/* Trains `model` in place (its initializers take the trained values; on
 * failure, cancellation included, it is unchanged): `options->epochs` epochs
 * over the data, one step per batch. `report` (may be NULL) receives a JSON
 * object, freed with kerf_free:
 * {"epochs": [{"epoch", "loss", "validation_loss", "validation_accuracy", "steps", "seconds"}],
 *  "best_epoch", "steps", "seconds_per_step", "stopped_early", "parameters": [names],
 *  "sparsity": [{"name", "elements", "sparsity"}] of the trained weights of rank >= 2 (since ABI 1.10)}
 * (validation_* and best_epoch are absent without validation data; accuracy is
 * reported for a first loss term that is cross-entropy). */
kerf_status kerf_train(kerf_model *model, const kerf_train_options *options, char **report);

/* ------------------------------------------------------------------------ */
/* Distillation (since ABI 1.10)                                            */
/* ------------------------------------------------------------------------ */
/*
 * A student model is trained to imitate a teacher (Hinton et al.): each batch
 * runs through the teacher (a session of its own), and the student's loss
 * compares its values with the teacher's. The student may be a pruned,
 * narrowed or quantized copy of the teacher or any model that takes the
 * teacher's inputs; no labels are needed.
 */
enum {
    KERF_DISTILL_KL = 0,     /* temperature^2 * KL(softmax(teacher / T) || softmax(student / T)) over axis 1,
                                per sample (torch's kl_div(reduction="batchmean") for [batch, classes]).
                                A value that comes out of a Softmax over axis 1 (through Identity nodes)
                                is compared on the Softmax's input, the logits, in both models. */
    KERF_DISTILL_MSE = 1,    /* mean squared error (regression outputs, embeddings) */
    KERF_DISTILL_COSINE = 2  /* 1 - cosine similarity along the last axis, per row (embeddings) */
};

enum {
    KERF_MATCH_MSE = 0,      /* mean squared error of hidden states (through a projection when widths differ) */
    KERF_MATCH_COSINE = 1,   /* 1 - cosine along the last axis (likewise) */
    KERF_MATCH_ATTENTION = 2 /* KL(teacher || student) of two Softmax outputs over their last axis (attention
                                distributions [batch, heads, queries, keys]), compared on the Softmax inputs,
                                averaged over every other position (MiniLM) */
};

typedef struct kerf_distill_options {
    size_t struct_size;                  /* sizeof(kerf_distill_options) */
    int32_t output_loss;                 /* KERF_DISTILL_*; KL */
    double temperature;                  /* KL: T > 0; 2 (Hugging Face's default) */
    double alpha;                        /* with labels: alpha * distillation + (1 - alpha) * cross-entropy
                                            against the labels; 0.5 */
    const char *labels;                  /* the data array of integer class labels for the first compared
                                            student value (KL only); NULL = the teacher alone supervises */
    const char *const *student_values;   /* the values compared, pairwise: any named values of the two */
    const char *const *teacher_values;   /*   graphs; n_values 0 = the float graph outputs both have */
    size_t n_values;                     /*   by name */
    int32_t teacher_threads;             /* threads of the teacher's runs; 0 = one per core */
    /* Intermediate matching (since ABI 1.11): student value match_students[i] is trained
     * towards teacher value match_teachers[i] by KERF_MATCH_* match_kinds[i] (NULL = all MSE)
     * with weight match_weights[i] (NULL = all 1), added to the loss. A hidden state whose
     * last dimension differs from the teacher's is compared through a learned linear
     * projection, left out of the written student. */
    const char *const *match_students;
    const char *const *match_teachers;
    const int32_t *match_kinds;
    const double *match_weights;
    size_t n_matches;
} kerf_distill_options;

/* Defaults, as kerf_session_options_init_sized. */
kerf_status kerf_distill_options_init_sized(kerf_distill_options *options, size_t struct_size);
#define kerf_distill_options_init(options) \
    ((void)kerf_distill_options_init_sized((options), sizeof *(options)))

/* Trains `student` in place to imitate `teacher` (unchanged), as kerf_train
 * does with `options` (optimizer, schedule, data or batches, validation,
 * epochs, checkpoints, progress, keep_sparsity) and the loss that `distill`
 * (NULL = defaults) describes; options->loss must be empty. The data hold the
 * student's inputs (which include the teacher's) and the labels array, if any.
 * Validation loss is the distillation loss; validation accuracy is against the
 * labels, or without labels the top-1 agreement with the teacher (KL).
 * `report` as kerf_train's, plus "sparsity": [{"name", "elements",
 * "sparsity"}] of the trained weights of rank >= 2 (kerf_train's has it too). */
kerf_status kerf_distill(kerf_model *student, const kerf_model *teacher, const kerf_train_options *options,
                         const kerf_distill_options *distill, char **report);

#ifdef __cplusplus
}
#endif

#endif /* KERF_H */
