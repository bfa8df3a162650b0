/*
 * C API tests: every call checked for its status, bad arguments of every kind, and a real
 * model run. Usage: test_capi MODEL.onnx WORKDIR [EXTERNAL.onnx]   (MODEL: the digits MLP, input
 * "X" [N,64]; EXTERNAL: the same model with its weights in digits.onnx.data beside it, copied
 * into WORKDIR before the test rewrites the copy).
 * Prints one line per failed check and "N passed, M failed" at the end; exit 1 on failure.
 * Run under valgrind by `make test-c` (leaks and invalid reads fail the run).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kerf.h"

static int passed = 0, failed = 0;

#define CHECK(cond, what)                                                             \
    do {                                                                              \
        if (cond) { passed++; }                                                       \
        else { failed++; printf("FAIL %s:%d %s (last error: %s)\n", __FILE__, __LINE__, what, kerf_last_error()); } \
    } while (0)

#define EXPECT_STATUS(call, expected) CHECK((call) == (expected), #call " == " #expected)

static int contains(const char *haystack, const char *needle) { return strstr(haystack, needle) != NULL; }

static void write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    if (size) fwrite(data, 1, size, f);
    fclose(f);
}

static int released = 0;
static void on_release(void *data, void *user) { (void)data; released += *(int *)user; }

static void test_library(void) {
    CHECK(kerf_abi_version() >> 16 == KERF_ABI_VERSION_MAJOR, "ABI major matches header");
    CHECK(strlen(kerf_version()) > 0, "version string");
    const char *isa = kerf_instruction_set();
    const char *cap = getenv("KERF_MAX_ISA");
    CHECK(isa && (!strcmp(isa, "avx512_vnni") || !strcmp(isa, "avx512") || !strcmp(isa, "avx_vnni") ||
                  !strcmp(isa, "avx2") || !strcmp(isa, "scalar")), "instruction set is one of the levels");
    /* Capped at avx2 or scalar, every x86-64 CPU Kerf runs on reaches the cap. */
    if (cap && (!strcmp(cap, "avx2") || !strcmp(cap, "scalar"))) CHECK(!strcmp(isa, cap), "KERF_MAX_ISA caps the level");
    kerf_free(NULL);
}

static void test_bad_files(const char *dir) {
    char path[4096];
    kerf_model *m = (kerf_model *)0x1;
    EXPECT_STATUS(kerf_model_load(NULL, &m), KERF_INVALID_ARGUMENT);
    CHECK(m == NULL, "out set to NULL on failure");
    EXPECT_STATUS(kerf_model_load("/nonexistent/model.onnx", &m), KERF_IO);
    CHECK(contains(kerf_last_error(), "/nonexistent/model.onnx"), "IO error names the file");
    EXPECT_STATUS(kerf_model_load(dir, &m), KERF_IO);

    snprintf(path, sizeof path, "%s/empty.onnx", dir);
    write_file(path, "", 0);
    EXPECT_STATUS(kerf_model_load(path, &m), KERF_INVALID_MODEL);

    unsigned char noise[4096];
    unsigned int seed = 12345;
    for (size_t i = 0; i < sizeof noise; i++) { seed = seed * 1103515245u + 12345u; noise[i] = (unsigned char)(seed >> 16); }
    snprintf(path, sizeof path, "%s/noise.onnx", dir);
    write_file(path, noise, sizeof noise);
    EXPECT_STATUS(kerf_model_load(path, &m), KERF_INVALID_MODEL);
    EXPECT_STATUS(kerf_model_load_bytes(noise, sizeof noise, &m), KERF_INVALID_MODEL);
    EXPECT_STATUS(kerf_model_load_bytes(NULL, 10, &m), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_model_load("x", NULL), KERF_INVALID_ARGUMENT);
}

static void test_truncated(const char *model_path) {
    FILE *f = fopen(model_path, "rb");
    if (!f) { perror(model_path); exit(2); }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc((size_t)size);
    if (fread(bytes, 1, (size_t)size, f) != (size_t)size) { perror("read"); exit(2); }
    fclose(f);
    kerf_model *m = NULL;
    EXPECT_STATUS(kerf_model_load_bytes(bytes, (size_t)size / 2, &m), KERF_INVALID_MODEL);
    CHECK(m == NULL, "no model from truncated bytes");
    EXPECT_STATUS(kerf_model_load_bytes(bytes, (size_t)size, &m), KERF_OK);
    kerf_model_free(m);
    free(bytes);
}

static void test_tensors(void) {
    kerf_tensor *t = NULL;
    int64_t dims[2] = {2, 3};
    float values[6] = {1, 2, 3, 4, 5, 6};
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, dims, 2, values, sizeof values, &t), KERF_OK);
    kerf_dtype dtype = 0;
    EXPECT_STATUS(kerf_tensor_dtype(t, &dtype), KERF_OK);
    CHECK(dtype == KERF_DTYPE_FLOAT, "dtype round trip");
    const int64_t *shape = NULL;
    size_t rank = 0;
    EXPECT_STATUS(kerf_tensor_shape(t, &shape, &rank), KERF_OK);
    CHECK(rank == 2 && shape[0] == 2 && shape[1] == 3, "shape round trip");
    const void *data = NULL;
    size_t bytes = 0;
    EXPECT_STATUS(kerf_tensor_data(t, &data, &bytes), KERF_OK);
    CHECK(bytes == sizeof values && memcmp(data, values, bytes) == 0, "data copied in");
    const void *info_data = NULL;
    size_t info_bytes = 0, info_rank = 0;
    const int64_t *info_dims = NULL;
    EXPECT_STATUS(kerf_tensor_info(t, &dtype, &info_dims, &info_rank, &info_data, &info_bytes), KERF_OK);
    CHECK(info_data == data && info_bytes == bytes && info_rank == 2 && info_dims[1] == 3, "tensor_info agrees");
    EXPECT_STATUS(kerf_tensor_info(t, &dtype, &info_dims, NULL, &info_data, &info_bytes), KERF_INVALID_ARGUMENT);
    kerf_tensor_free(t);

    /* Dangling handle: a freed tensor is reported, not dereferenced. */
    EXPECT_STATUS(kerf_tensor_dtype(t, &dtype), KERF_INVALID_ARGUMENT);
    kerf_tensor_free(t); /* double free is ignored */
    EXPECT_STATUS(kerf_tensor_dtype((const kerf_tensor *)values, &dtype), KERF_INVALID_ARGUMENT);

    /* Wrong sizes, negative dims, overflow, bad dtypes. */
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, dims, 2, values, 5, &t), KERF_INVALID_ARGUMENT);
    CHECK(t == NULL, "no tensor on failure");
    int64_t negative[2] = {2, -3};
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, negative, 2, NULL, 0, &t), KERF_INVALID_ARGUMENT);
    int64_t huge[3] = {INT64_C(1) << 40, INT64_C(1) << 40, 16};
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, huge, 3, NULL, 0, &t), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "overflow"), "overflow message");
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_STRING, dims, 2, NULL, 0, &t), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_tensor_create(999, dims, 2, NULL, 0, &t), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, NULL, 2, NULL, 24, &t), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, dims, 2, NULL, 24, NULL), KERF_INVALID_ARGUMENT);

    /* Zero-filled and scalar tensors. */
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_INT64, NULL, 0, NULL, 8, &t), KERF_OK);
    EXPECT_STATUS(kerf_tensor_data(t, &data, &bytes), KERF_OK);
    CHECK(bytes == 8 && *(const int64_t *)data == 0, "zero scalar");
    kerf_tensor_free(t);

    /* Borrowed memory: release runs exactly once, at free. */
    int weight = 1;
    released = 0;
    EXPECT_STATUS(kerf_tensor_wrap(KERF_DTYPE_FLOAT, dims, 2, values, sizeof values, on_release, &weight, &t), KERF_OK);
    EXPECT_STATUS(kerf_tensor_data(t, &data, &bytes), KERF_OK);
    CHECK(data == values, "wrap does not copy");
    CHECK(released == 0, "not released while alive");
    kerf_tensor_free(t);
    CHECK(released == 1, "released once on free");
    EXPECT_STATUS(kerf_tensor_wrap(KERF_DTYPE_FLOAT, dims, 2, values, 7, on_release, &weight, &t), KERF_INVALID_ARGUMENT);
    CHECK(released == 1, "release not called on failure");
}

static void test_model(const char *model_path, const char *dir) {
    kerf_model *model = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);
    size_t n_in = 0, n_out = 0;
    EXPECT_STATUS(kerf_model_input_count(model, &n_in), KERF_OK);
    EXPECT_STATUS(kerf_model_output_count(model, &n_out), KERF_OK);
    CHECK(n_in == 1 && n_out == 2, "digits MLP has 1 input and 2 outputs");
    kerf_value_info info;
    memset(&info, 0, sizeof info);
    EXPECT_STATUS(kerf_model_input(model, 0, &info), KERF_INVALID_ARGUMENT); /* struct_size unset */
    info.struct_size = sizeof info;
    EXPECT_STATUS(kerf_model_input(model, 0, &info), KERF_OK);
    CHECK(info.name && info.dtype == KERF_DTYPE_FLOAT && info.rank_known && info.rank == 2 && info.dims[1] == 64,
          "input described as float [?, 64]");
    CHECK(info.dims[0] == -1, "symbolic batch dim is -1");
    CHECK(info.dim_names && info.dim_names[0] == NULL && info.dim_names[1] == NULL,
          "dims without a name (the batch dim has neither value nor name) have NULL dim_names");
    /* A caller built against ABI 1.9 (no dim_names): only its bytes are written. */
    union { kerf_value_info info; unsigned char bytes[sizeof(kerf_value_info)]; } old;
    memset(&old, 0xAB, sizeof old);
    old.info.struct_size = offsetof(kerf_value_info, dim_names);
    EXPECT_STATUS(kerf_model_input(model, 0, &old.info), KERF_OK);
    CHECK(old.info.rank == 2 && old.bytes[offsetof(kerf_value_info, dim_names)] == 0xAB, "ABI 1.9 value info filled, tail untouched");

    kerf_model_metadata metadata;
    memset(&metadata, 0, sizeof metadata);
    EXPECT_STATUS(kerf_model_get_metadata(model, &metadata), KERF_INVALID_ARGUMENT); /* struct_size unset */
    metadata.struct_size = sizeof metadata;
    EXPECT_STATUS(kerf_model_get_metadata(model, &metadata), KERF_OK);
    CHECK(strcmp(metadata.producer_name, "skl2onnx") == 0 && strcmp(metadata.graph_name, "ONNX(MLPClassifier)") == 0
          && strcmp(metadata.doc_string, "") == 0 && metadata.model_version == 0 && metadata.n_properties == 0,
          "metadata as the file holds it");
    EXPECT_STATUS(kerf_model_get_metadata(model, NULL), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_model_get_metadata(NULL, &metadata), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_model_input(model, 5, &info), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_model_output(model, 0, NULL), KERF_INVALID_ARGUMENT);
    const char *input_name = info.name;

    kerf_session_options options;
    kerf_session_options_init(&options);
    CHECK(options.struct_size == sizeof options && options.threads == 0 && options.sparse_kernels == 1, "options defaults");
    options.threads = 1;
    kerf_session *session = NULL;
    EXPECT_STATUS(kerf_session_create(NULL, &options, &session), KERF_INVALID_ARGUMENT);
    options.threads = -4;
    EXPECT_STATUS(kerf_session_create(model, &options, &session), KERF_INVALID_ARGUMENT);
    options.threads = 1;
    options.sparse_kernels = 2;
    EXPECT_STATUS(kerf_session_create(model, &options, &session), KERF_INVALID_ARGUMENT);
    /* A caller built against ABI 1.1 passes the shorter struct: the field past it is not read. */
    options.struct_size = offsetof(kerf_session_options, sparse_kernels);
    kerf_session *old_caller = NULL;
    EXPECT_STATUS(kerf_session_create(model, &options, &old_caller), KERF_OK);
    kerf_session_free(old_caller);
    options.struct_size = sizeof options;
    options.sparse_kernels = 0;
    EXPECT_STATUS(kerf_session_create(model, &options, &session), KERF_OK);

    /* The plan names the operators a run executes, one per line. */
    char *plan = NULL;
    EXPECT_STATUS(kerf_session_plan(session, &plan), KERF_OK);
    CHECK(plan != NULL && strlen(plan) > 0, "plan lists operators");
    kerf_free(plan);
    EXPECT_STATUS(kerf_session_plan(NULL, &plan), KERF_INVALID_ARGUMENT);
    CHECK(plan == NULL, "no plan on failure");

    /* The session keeps the model alive; save it first, then free our handle. */
    char saved[4096];
    snprintf(saved, sizeof saved, "%s/saved.onnx", dir);
    EXPECT_STATUS(kerf_model_save(model, saved), KERF_OK);
    char bad_dir[4096];
    snprintf(bad_dir, sizeof bad_dir, "%s/no/such/dir/m.onnx", dir);
    EXPECT_STATUS(kerf_model_save(model, bad_dir), KERF_IO);
    void *bytes = NULL;
    size_t size = 0;
    EXPECT_STATUS(kerf_model_save_bytes(model, &bytes, &size), KERF_OK);
    kerf_model *copy = NULL;
    EXPECT_STATUS(kerf_model_load_bytes(bytes, size, &copy), KERF_OK);
    kerf_free(bytes);
    kerf_model_free(copy);

    int64_t dims[2] = {3, 64};
    float pixels[3 * 64];
    for (int i = 0; i < 3 * 64; i++) pixels[i] = (float)((i * 7) % 17) / 16.0f;
    kerf_tensor *x = NULL;
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, dims, 2, pixels, sizeof pixels, &x), KERF_OK);
    const char *names[1] = {input_name};
    const kerf_tensor *inputs[1] = {x};
    kerf_tensor *outputs[2] = {NULL, NULL};
    EXPECT_STATUS(kerf_session_run(session, names, inputs, 1, NULL, outputs, 2), KERF_OK);
    const int64_t *shape = NULL;
    size_t rank = 0;
    EXPECT_STATUS(kerf_tensor_shape(outputs[1], &shape, &rank), KERF_OK);
    CHECK(rank == 2 && shape[0] == 3 && shape[1] == 10, "probabilities are [3, 10]");
    const void *data = NULL;
    size_t nbytes = 0;
    EXPECT_STATUS(kerf_tensor_data(outputs[1], &data, &nbytes), KERF_OK);
    float row = 0;
    for (int j = 0; j < 10; j++) row += ((const float *)data)[j];
    CHECK(row > 0.999f && row < 1.001f, "probabilities sum to 1");
    kerf_tensor_free(outputs[0]);
    kerf_tensor_free(outputs[1]);

    /* Wrong name, wrong dtype, wrong rank, wrong dims, missing feed, bad counts. */
    const char *wrong[1] = {"nope"};
    EXPECT_STATUS(kerf_session_run(session, wrong, inputs, 1, NULL, outputs, 2), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "nope"), "wrong input name is named");
    CHECK(outputs[0] == NULL && outputs[1] == NULL, "outputs NULL on failure");
    kerf_tensor *ints = NULL;
    int64_t int_dims[2] = {3, 64};
    kerf_tensor_create(KERF_DTYPE_INT32, int_dims, 2, NULL, 3 * 64 * 4, &ints);
    const kerf_tensor *int_inputs[1] = {ints};
    EXPECT_STATUS(kerf_session_run(session, names, int_inputs, 1, NULL, outputs, 2), KERF_SHAPE_MISMATCH);
    kerf_tensor_free(ints);
    kerf_tensor *flat = NULL;
    int64_t flat_dims[1] = {64};
    kerf_tensor_create(KERF_DTYPE_FLOAT, flat_dims, 1, NULL, 64 * 4, &flat);
    const kerf_tensor *flat_inputs[1] = {flat};
    EXPECT_STATUS(kerf_session_run(session, names, flat_inputs, 1, NULL, outputs, 2), KERF_SHAPE_MISMATCH);
    kerf_tensor_free(flat);
    kerf_tensor *narrow = NULL;
    int64_t narrow_dims[2] = {3, 63};
    kerf_tensor_create(KERF_DTYPE_FLOAT, narrow_dims, 2, NULL, 3 * 63 * 4, &narrow);
    const kerf_tensor *narrow_inputs[1] = {narrow};
    EXPECT_STATUS(kerf_session_run(session, names, narrow_inputs, 1, NULL, outputs, 2), KERF_SHAPE_MISMATCH);
    kerf_tensor_free(narrow);
    EXPECT_STATUS(kerf_session_run(session, NULL, NULL, 0, NULL, outputs, 2), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_session_run(session, names, inputs, 1, NULL, outputs, 1), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_session_run(session, names, inputs, 1, NULL, NULL, 2), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_session_run(NULL, names, inputs, 1, NULL, outputs, 2), KERF_INVALID_ARGUMENT);

    /* Named outputs, in the caller's order. */
    kerf_value_info out_info = {sizeof out_info, NULL, 0, 0, 0, NULL, NULL};
    EXPECT_STATUS(kerf_model_output(model, 1, &out_info), KERF_OK);
    const char *out_names[1] = {out_info.name};
    kerf_tensor *one[1] = {NULL};
    EXPECT_STATUS(kerf_session_run(session, names, inputs, 1, out_names, one, 1), KERF_OK);
    kerf_dtype dtype = 0;
    kerf_tensor_dtype(one[0], &dtype);
    CHECK(dtype == KERF_DTYPE_FLOAT, "named output selected");
    kerf_tensor_free(one[0]);

    /* Inputs as views: same outputs as kerf_session_run, described in output_views. */
    kerf_tensor_view view = {KERF_DTYPE_FLOAT, 2, dims, pixels, sizeof pixels};
    kerf_tensor *by_view[2] = {NULL, NULL};
    kerf_tensor_view out_views[2];
    memset(out_views, 0, sizeof out_views);
    EXPECT_STATUS(kerf_session_run(session, names, inputs, 1, NULL, outputs, 2), KERF_OK);
    EXPECT_STATUS(kerf_session_run_views(session, names, &view, 1, NULL, by_view, out_views, 2), KERF_OK);
    for (int k = 0; k < 2; k++) {
        kerf_dtype want_dtype = 0, got_dtype = 0;
        const int64_t *want_dims = NULL;
        size_t want_rank = 0, want_bytes = 0;
        const void *want_data = NULL;
        EXPECT_STATUS(kerf_tensor_info(outputs[k], &want_dtype, &want_dims, &want_rank, &want_data, &want_bytes), KERF_OK);
        const int64_t *got_dims = NULL;
        size_t got_rank = 0, got_bytes = 0;
        const void *got_data = NULL;
        EXPECT_STATUS(kerf_tensor_info(by_view[k], &got_dtype, &got_dims, &got_rank, &got_data, &got_bytes), KERF_OK);
        CHECK(out_views[k].dtype == got_dtype && out_views[k].rank == got_rank && out_views[k].dims == got_dims
                  && out_views[k].data == got_data && out_views[k].byte_size == got_bytes,
              "output view describes its tensor");
        CHECK(got_dtype == want_dtype && got_rank == want_rank && got_bytes == want_bytes
                  && memcmp(got_dims, want_dims, want_rank * sizeof *got_dims) == 0
                  && memcmp(got_data, want_data, want_bytes) == 0,
              "run_views gives run's outputs");
    }
    kerf_tensors_free(outputs, 2);
    kerf_tensors_free(by_view, 2);
    /* The input memory is only read during the call: changing it after leaves outputs alone. */
    EXPECT_STATUS(kerf_session_run_views(session, names, &view, 1, out_names, one, NULL, 1), KERF_OK);
    float before = 0;
    const void *one_data = NULL;
    size_t one_bytes = 0;
    kerf_tensor_data(one[0], &one_data, &one_bytes);
    before = ((const float *)one_data)[0];
    pixels[0] += 5.0f;
    CHECK(((const float *)one_data)[0] == before, "outputs do not alias the viewed input");
    pixels[0] -= 5.0f;
    kerf_tensor_free(one[0]);
    /* Bad views fail with every output slot NULL. */
    kerf_tensor_view short_view = view;
    short_view.byte_size -= 4;
    by_view[0] = by_view[1] = (kerf_tensor *)&view; /* garbage the call must overwrite */
    EXPECT_STATUS(kerf_session_run_views(session, names, &short_view, 1, NULL, by_view, out_views, 2), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "byte_size"), "short view is reported");
    CHECK(by_view[0] == NULL && by_view[1] == NULL, "view outputs NULL on failure");
    kerf_tensor_view null_data = view;
    null_data.data = NULL;
    EXPECT_STATUS(kerf_session_run_views(session, names, &null_data, 1, NULL, by_view, NULL, 2), KERF_INVALID_ARGUMENT);
    kerf_tensor_view int_view = view;
    int_view.dtype = KERF_DTYPE_INT32;
    EXPECT_STATUS(kerf_session_run_views(session, names, &int_view, 1, NULL, by_view, NULL, 2), KERF_SHAPE_MISMATCH);
    EXPECT_STATUS(kerf_session_run_views(session, names, NULL, 1, NULL, by_view, NULL, 2), KERF_INVALID_ARGUMENT);
    kerf_tensor *none[2] = {NULL, NULL};
    kerf_tensors_free(none, 2);
    kerf_tensors_free(NULL, 3);

    /* run_into: an output described exactly is copied into the caller's buffer (its slot stays
     * NULL); any other comes back as a tensor, described in its view. */
    {
        kerf_tensor *ref[2] = {NULL, NULL};
        EXPECT_STATUS(kerf_session_run(session, names, inputs, 1, NULL, ref, 2), KERF_OK);
        kerf_tensor_view expect[2];
        const void *ref_data[2] = {NULL, NULL};
        unsigned char *buffers[2] = {NULL, NULL};
        int64_t wrong[8] = {0};
        for (int k = 0; k < 2; k++) {
            kerf_dtype dt = 0;
            const int64_t *d = NULL;
            size_t rank = 0, bytes = 0;
            EXPECT_STATUS(kerf_tensor_info(ref[k], &dt, &d, &rank, &ref_data[k], &bytes), KERF_OK);
            buffers[k] = malloc(bytes);
            memset(buffers[k], 0xAB, bytes);
            kerf_tensor_view e = {dt, rank, d, buffers[k], bytes};
            expect[k] = e;
            if (k == 1 && rank >= 1 && rank <= 8) {
                memcpy(wrong, d, rank * sizeof *d);
                wrong[0] += 1; /* a shape the output does not have */
                expect[1].dims = wrong;
            }
        }
        kerf_tensor *got[2] = {(kerf_tensor *)&view, (kerf_tensor *)&view}; /* garbage the call overwrites */
        EXPECT_STATUS(kerf_session_run_into(session, names, &view, 1, NULL, got, expect, 2), KERF_OK);
        CHECK(got[0] == NULL && expect[0].data == buffers[0] && memcmp(buffers[0], ref_data[0], expect[0].byte_size) == 0,
              "run_into copies a matching output into the caller's buffer");
        CHECK(got[1] != NULL && expect[1].data != buffers[1] && buffers[1][0] == 0xAB
                  && memcmp(expect[1].data, ref_data[1], expect[1].byte_size) == 0,
              "run_into returns an output of another shape as a tensor");
        kerf_tensors_free(got, 2);
        kerf_tensors_free(ref, 2);
        free(buffers[0]);
        free(buffers[1]);
        EXPECT_STATUS(kerf_session_run_into(session, names, &view, 1, NULL, got, NULL, 2), KERF_INVALID_ARGUMENT);
        CHECK(got[0] == NULL && got[1] == NULL, "run_into outputs NULL on failure");
    }

    kerf_model_free(model); /* session still holds it */
    EXPECT_STATUS(kerf_session_run(session, names, inputs, 1, NULL, outputs, 2), KERF_OK);
    kerf_tensor_free(outputs[0]);
    kerf_tensor_free(outputs[1]);
    kerf_tensor_free(x);
    kerf_session_free(session);
    EXPECT_STATUS(kerf_session_run(session, names, inputs, 1, NULL, outputs, 2), KERF_INVALID_ARGUMENT);

    kerf_model *reloaded = NULL;
    EXPECT_STATUS(kerf_model_load(saved, &reloaded), KERF_OK);
    kerf_model_free(reloaded);
    kerf_model_free(NULL);
    kerf_session_free(NULL);
    kerf_tensor_free(NULL);
}

static int progress_calls = 0;
static int32_t count_then_cancel(void *user, int64_t done, int64_t total, const char *message) {
    (void)done; (void)total; (void)message;
    progress_calls++;
    return progress_calls >= *(int *)user; /* non-zero cancels */
}

static int64_t last_done = -1, last_total = -1;
static int32_t record_progress(void *user, int64_t done, int64_t total, const char *message) {
    (void)user;
    if (done < last_done || !message) last_total = -2; /* never backwards; always a message */
    else { last_done = done; last_total = total; }
    progress_calls++;
    return 0;
}

/* kerf_prune_options as the kerf.h of ABI 1.2 to 1.7 declares it, before progress. */
struct prune_options_1_7 {
    size_t struct_size;
    int32_t method, scope;
    double sparsity, max_tensor_sparsity;
    int32_t n, m, channel_criterion, store_sparse;
    int64_t min_elements;
    const char *const *exclude;
    size_t n_exclude;
    const char *const *per_tensor_names;
    const double *per_tensor_sparsity;
    size_t n_per_tensor;
};

/* The struct_size rule (kerf.h, "Structs that start with struct_size"), on every options struct:
 * sizes of old releases are read with the rest defaulted, sizes out of range are refused. */
static void test_struct_sizes(const char *model_path) {
    kerf_model *model = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);
    const size_t old_prune = offsetof(kerf_prune_options, progress); /* ABI 1.2 to 1.7 */

    /* A program built before ABI 1.8 calls the unsized kerf_prune_options_init on its shorter
     * struct: it fills exactly that (valgrind and ASan see any byte past the allocation). */
    CHECK(sizeof(struct prune_options_1_7) == old_prune, "the ABI 1.7 struct ends where progress starts");
    struct prune_options_1_7 *old = malloc(sizeof *old);
    (kerf_prune_options_init)((kerf_prune_options *)(void *)old);
    CHECK(old->struct_size == old_prune && old->sparsity == 0.5 && old->n == 2, "unsized init fills the ABI 1.7 struct");
    old->sparsity = 0.25;
    char *report = NULL;
    EXPECT_STATUS(kerf_prune(model, (const kerf_prune_options *)(void *)old, &report), KERF_OK);
    CHECK(report && contains(report, "\"target_sparsity\":0.25"), "an ABI 1.7 struct is read");
    kerf_free(report);
    free(old);

    /* The progress fields past an old struct_size are not read. */
    kerf_prune_options options;
    kerf_prune_options_init(&options);
    CHECK(options.struct_size == sizeof options && options.progress == NULL, "sized init fills the whole struct");
    int cancel_at = 1;
    options.progress = count_then_cancel;
    options.progress_user_data = &cancel_at;
    options.struct_size = old_prune;
    progress_calls = 0;
    EXPECT_STATUS(kerf_prune(model, &options, NULL), KERF_OK);
    CHECK(progress_calls == 0, "no progress field read past struct_size");

    /* Out of range: below the first release, above this library's sizeof. */
    options.struct_size = old_prune - sizeof(double);
    EXPECT_STATUS(kerf_prune(model, &options, NULL), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "struct_size") && contains(kerf_last_error(), "kerf_prune_options"), "size error named");
    options.struct_size = sizeof options + 8;
    EXPECT_STATUS(kerf_prune(model, &options, NULL), KERF_INVALID_ARGUMENT);

    /* The sized init writes only struct_size bytes, and refuses sizes it does not know. */
    unsigned char bytes[sizeof(kerf_prune_options) + 8];
    memset(bytes, 0xAB, sizeof bytes);
    EXPECT_STATUS(kerf_prune_options_init_sized((kerf_prune_options *)(void *)bytes, old_prune), KERF_OK);
    CHECK(bytes[old_prune] == 0xAB && bytes[sizeof bytes - 1] == 0xAB, "nothing written past struct_size");
    EXPECT_STATUS(kerf_prune_options_init_sized(&options, sizeof options + 8), KERF_INVALID_ARGUMENT);
    CHECK(options.struct_size == sizeof options + 8, "a refused size is still stored, so the call using it fails too");
    EXPECT_STATUS(kerf_prune_options_init_sized(NULL, sizeof options), KERF_INVALID_ARGUMENT);

    /* The other options structs, at their first release and one byte past their sizeof. */
    kerf_session_options session_options;
    EXPECT_STATUS(kerf_session_options_init_sized(&session_options, offsetof(kerf_session_options, sparse_kernels)), KERF_OK);
    kerf_session *session = NULL;
    EXPECT_STATUS(kerf_session_create(model, &session_options, &session), KERF_OK);
    kerf_session_free(session);
    session_options.struct_size = sizeof session_options + 1;
    EXPECT_STATUS(kerf_session_create(model, &session_options, &session), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_session_options_init_sized(&session_options, 8), KERF_INVALID_ARGUMENT);
    kerf_quantize_options quantize_options;
    EXPECT_STATUS(kerf_quantize_options_init_sized(&quantize_options, offsetof(kerf_quantize_options, validation)), KERF_OK);
    quantize_options.struct_size = sizeof quantize_options + 1;
    EXPECT_STATUS(kerf_quantize(model, &quantize_options, NULL), KERF_INVALID_ARGUMENT);
    kerf_sensitivity_options sensitivity_options;
    kerf_sensitivity_options_init(&sensitivity_options);
    CHECK(sensitivity_options.struct_size == sizeof sensitivity_options && sensitivity_options.batch_size == 32,
          "sensitivity defaults");
    sensitivity_options.struct_size = sizeof sensitivity_options + 1;
    char *table = NULL;
    EXPECT_STATUS(kerf_sensitivity(model, NULL, NULL, 0, NULL, &sensitivity_options, &table), KERF_INVALID_ARGUMENT);

    /* kerf_value_info: an output struct, written up to struct_size. */
    kerf_value_info info;
    info.struct_size = sizeof info + 8;
    EXPECT_STATUS(kerf_model_input(model, 0, &info), KERF_INVALID_ARGUMENT);
    kerf_model_free(model);
}

static void test_prune(const char *model_path, const char *dir) {
    kerf_model *model = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);

    kerf_prune_options options;
    kerf_prune_options_init(&options);
    CHECK(options.struct_size == sizeof options && options.sparsity == 0.5 && options.n == 2 && options.m == 4,
          "prune options defaults");
    char *report = (char *)"untouched";
    EXPECT_STATUS(kerf_prune(NULL, &options, &report), KERF_INVALID_ARGUMENT);
    CHECK(report == NULL, "report NULL on failure");
    options.struct_size = 8;
    EXPECT_STATUS(kerf_prune(model, &options, NULL), KERF_INVALID_ARGUMENT);
    kerf_prune_options_init(&options);
    options.method = 9;
    EXPECT_STATUS(kerf_prune(model, &options, NULL), KERF_INVALID_ARGUMENT);
    kerf_prune_options_init(&options);
    const char *bad_names[1] = {NULL};
    options.exclude = bad_names;
    options.n_exclude = 1;
    EXPECT_STATUS(kerf_prune(model, &options, NULL), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "exclude[0]"), "NULL exclude entry named");

    /* Progress (ABI 1.8): 0, then one step per weight (the MLP has two); a cancel changes nothing. */
    kerf_prune_options_init(&options);
    void *before = NULL, *after = NULL;
    size_t before_size = 0, after_size = 0;
    EXPECT_STATUS(kerf_model_save_bytes(model, &before, &before_size), KERF_OK);
    int cancel_at = 2;
    progress_calls = 0;
    options.progress = count_then_cancel;
    options.progress_user_data = &cancel_at;
    EXPECT_STATUS(kerf_prune(model, &options, &report), KERF_CANCELLED);
    CHECK(report == NULL && progress_calls == 2, "prune cancelled at the second report");
    EXPECT_STATUS(kerf_model_save_bytes(model, &after, &after_size), KERF_OK);
    CHECK(before_size == after_size && memcmp(before, after, before_size) == 0, "a cancelled prune leaves the model as it was");
    kerf_free(before);
    kerf_free(after);

    kerf_prune_options_init(&options);
    options.method = KERF_PRUNE_N_OF_M;
    options.progress = record_progress;
    progress_calls = 0;
    last_done = last_total = -1;
    EXPECT_STATUS(kerf_prune(model, &options, &report), KERF_OK);
    CHECK(progress_calls == 3 && last_done == 2 && last_total == 2, "N:M progress: 0 of 2, then each weight");
    CHECK(report && contains(report, "\"method\":\"2:4\"") && contains(report, "\"target_sparsity\":0.5"), "N:M report");
    kerf_free(report);

    /* Channel pruning counts groups of tied channels (the MLP's hidden and output units: two,
     * the outputs left whole). */
    kerf_model *channels = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &channels), KERF_OK);
    kerf_prune_options_init(&options);
    options.method = KERF_PRUNE_CHANNEL;
    options.progress = record_progress;
    progress_calls = 0;
    last_done = last_total = -1;
    EXPECT_STATUS(kerf_prune(channels, &options, &report), KERF_OK);
    CHECK(progress_calls == 3 && last_done == 2 && last_total == 2, "channel progress: 0 of 2, then each group");
    kerf_model_free(channels);
    kerf_free(report);

    kerf_prune_options_init(&options);
    options.sparsity = 0.75;
    options.scope = KERF_PRUNE_SCOPE_GLOBAL;
    EXPECT_STATUS(kerf_prune(model, &options, &report), KERF_OK);
    CHECK(report && contains(report, "\"overall_sparsity\":0.75") && contains(report, "\"coefficient\""), "global report");
    kerf_free(report);
    char pruned[4096];
    snprintf(pruned, sizeof pruned, "%s/pruned.onnx", dir);
    EXPECT_STATUS(kerf_model_save(model, pruned), KERF_OK);

    /* Sensitivity on 8 samples, with labels. */
    enum { SAMPLES = 8 };
    static float pixels[SAMPLES * 64];
    int64_t labels[SAMPLES];
    for (int i = 0; i < SAMPLES * 64; i++) pixels[i] = (float)((i * 37) % 17) / 16.0f;
    for (int i = 0; i < SAMPLES; i++) labels[i] = i % 10;
    int64_t dims[2] = {SAMPLES, 64}, label_dims[1] = {SAMPLES};
    kerf_tensor *x = NULL, *y = NULL;
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, dims, 2, pixels, sizeof pixels, &x), KERF_OK);
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_INT64, label_dims, 1, labels, sizeof labels, &y), KERF_OK);
    const char *names[1] = {"X"};
    const kerf_tensor *data[1] = {x};
    kerf_sensitivity_options sopts;
    kerf_sensitivity_options_init(&sopts);
    double levels[2] = {0.5, 0.9};
    sopts.levels = levels;
    sopts.n_levels = 2;
    cancel_at = 1000;
    progress_calls = 0;
    sopts.progress = count_then_cancel;
    sopts.progress_user_data = &cancel_at;
    char *table = NULL;
    EXPECT_STATUS(kerf_sensitivity(model, names, data, 1, y, &sopts, &table), KERF_OK);
    CHECK(table && contains(table, "\"samples\":8") && contains(table, "\"baseline_accuracy\"") && contains(table, "\"relative_error\""),
          "sensitivity table");
    CHECK(progress_calls == 5, "progress: baseline + 2 weights x 2 levels");
    kerf_free(table);
    progress_calls = 0;
    cancel_at = 2;
    EXPECT_STATUS(kerf_sensitivity(model, names, data, 1, y, &sopts, &table), KERF_CANCELLED);
    CHECK(table == NULL && progress_calls == 2, "cancelled at the second report");
    EXPECT_STATUS(kerf_sensitivity(model, names, NULL, 1, NULL, NULL, &table), KERF_INVALID_ARGUMENT);
    levels[1] = 1.5;
    sopts.progress = NULL;
    EXPECT_STATUS(kerf_sensitivity(model, names, data, 1, NULL, &sopts, &table), KERF_INVALID_ARGUMENT);
    kerf_tensor_free(x);
    kerf_tensor_free(y);
    kerf_model_free(model);
}

/* Calibration data for the digits MLP: 3 batches of 4 deterministic samples; batch 1 fails
 * when *user says so (the tensors stored are still Kerf's to free). */
static int calibration_calls = 0;
static int32_t digits_batches(void *user, int64_t index, const char *const *names, size_t count, kerf_tensor **inputs) {
    calibration_calls++;
    if (count != 1 || strcmp(names[0], "X") != 0) return -2;
    if (index >= 3) return 0;
    static float pixels[4 * 64];
    for (int i = 0; i < 4 * 64; i++) pixels[i] = (float)(((int)index * 7 + i * 13) % 17) / 16.0f;
    int64_t dims[2] = {4, 64};
    if (kerf_tensor_create(KERF_DTYPE_FLOAT, dims, 2, pixels, sizeof pixels, &inputs[0]) != KERF_OK) return -1;
    return (*(int *)user && index == 1) ? -1 : 1;
}

static void test_quantize(const char *model_path, const char *dir) {
    kerf_model *model = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);
    kerf_quantize_options options;
    kerf_quantize_options_init(&options);
    CHECK(options.struct_size == sizeof options && options.mode == KERF_QUANTIZE_DYNAMIC && options.per_channel == 1
          && options.percentile == 99.99 && options.auto_tolerance < 0 && options.calibration == NULL,
          "quantize options defaults");
    char *report = (char *)"untouched";
    options.mode = KERF_QUANTIZE_STATIC;
    EXPECT_STATUS(kerf_quantize(model, &options, &report), KERF_INVALID_ARGUMENT);
    CHECK(report == NULL && contains(kerf_last_error(), "calibration"), "static mode without data is refused");
    options.struct_size = 16;
    EXPECT_STATUS(kerf_quantize(model, &options, NULL), KERF_INVALID_ARGUMENT);

    /* A failing calibration source leaves the model unchanged. */
    int fail = 1;
    kerf_quantize_options_init(&options);
    options.mode = KERF_QUANTIZE_STATIC;
    options.calibration = digits_batches;
    options.calibration_user_data = &fail;
    EXPECT_STATUS(kerf_quantize(model, &options, &report), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "calibration callback failed at batch 1"), "callback failure reported");
    /* Cancelling from the progress callback. */
    fail = 0;
    int cancel_at = 2;
    progress_calls = 0;
    options.progress = count_then_cancel;
    options.progress_user_data = &cancel_at;
    EXPECT_STATUS(kerf_quantize(model, &options, &report), KERF_CANCELLED);
    CHECK(progress_calls == 2, "cancelled at the second batch");

    /* Static QDQ with percentile calibration, then saved and run. */
    cancel_at = 1000;
    progress_calls = 0;
    calibration_calls = 0;
    options.method = KERF_CALIBRATE_PERCENTILE;
    options.calibration_batches = 3;
    EXPECT_STATUS(kerf_quantize(model, &options, &report), KERF_OK);
    CHECK(report && contains(report, "\"mode\":\"static\"") && contains(report, "\"method\":\"percentile\"")
          && contains(report, "\"sqnr_db\"") && contains(report, "\"calibration_batches\":3")
          && contains(report, "\"data\":\"calibration\""), "static report");
    CHECK(progress_calls == 6 && calibration_calls == 8, "two passes of 3 batches (each ended by a 0 return)");
    kerf_free(report);
    char quantized[4096];
    snprintf(quantized, sizeof quantized, "%s/quantized.onnx", dir);
    EXPECT_STATUS(kerf_model_save(model, quantized), KERF_OK);
    kerf_session *session = NULL;
    EXPECT_STATUS(kerf_session_create(model, NULL, &session), KERF_OK);
    kerf_session_free(session);
    kerf_model_free(model);

    /* Dynamic quantization needs no data. */
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);
    EXPECT_STATUS(kerf_quantize(model, NULL, &report), KERF_OK);
    CHECK(report && contains(report, "\"mode\":\"dynamic\"") && contains(report, "\"agreement\":null"), "dynamic report");
    kerf_free(report);
    kerf_model_free(model);

    /* Agreement on validation data (ABI 1.4); an ABI 1.3 caller's shorter struct has none. */
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);
    kerf_quantize_options_init(&options);
    options.validation = digits_batches;
    options.validation_user_data = &fail;
    EXPECT_STATUS(kerf_quantize(model, &options, &report), KERF_OK);
    CHECK(report && contains(report, "\"data\":\"validation\"") && contains(report, "\"samples\":12"), "validation agreement");
    kerf_free(report);
    kerf_model_free(model);
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);
    options.struct_size = offsetof(kerf_quantize_options, validation);
    EXPECT_STATUS(kerf_quantize(model, &options, &report), KERF_OK);
    CHECK(report && contains(report, "\"agreement\":null"), "fields past an ABI 1.3 struct are not read");
    kerf_free(report);
    kerf_model_free(model);
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc(*size ? *size : 1);
    if (*size && fread(data, 1, *size, f) != *size) { perror(path); exit(2); }
    fclose(f);
    return data;
}

static int same_file(const char *path, const char *data, size_t size) {
    size_t now_size;
    char *now = read_file(path, &now_size);
    int same = now_size == size && memcmp(now, data, size) == 0;
    free(now);
    return same;
}

/* Compressing a model whose weights live in MODEL.onnx.data, into the same folder or in place,
 * never writes the data file the source reads. `fixture` (a model reading `data_name` beside
 * it) is copied into `dir` first, so that every run starts from the same files. */
static void test_external_data(const char *fixture, const char *data_name, const char *dir) {
    char fixture_data[4200], model_path[4200], data_path[4200], dst[4200], dst_data[4300];
    const char *slash = strrchr(fixture, '/');
    snprintf(fixture_data, sizeof fixture_data, "%.*s/%s", slash ? (int)(slash - fixture) : 1, slash ? fixture : ".", data_name);
    snprintf(model_path, sizeof model_path, "%s/%s", dir, slash ? slash + 1 : fixture);
    snprintf(data_path, sizeof data_path, "%s/%s", dir, data_name);
    snprintf(dst, sizeof dst, "%s/digits_quantized.onnx", dir);
    snprintf(dst_data, sizeof dst_data, "%s.data", dst);
    size_t model_size, data_size;
    char *model_bytes = read_file(fixture, &model_size), *data_bytes = read_file(fixture_data, &data_size);
    write_file(model_path, model_bytes, model_size);
    write_file(data_path, data_bytes, data_size);

    kerf_model *model = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);
    kerf_quantize_options options;
    kerf_quantize_options_init(&options);
    char *report = NULL;
    EXPECT_STATUS(kerf_quantize(model, &options, &report), KERF_OK);
    kerf_free(report);
    EXPECT_STATUS(kerf_model_save(model, dst), KERF_OK);
    kerf_model_free(model);
    CHECK(same_file(model_path, model_bytes, model_size) && same_file(data_path, data_bytes, data_size),
          "quantizing beside the source leaves its files byte-identical");
    model = NULL;
    EXPECT_STATUS(kerf_model_load(dst, &model), KERF_OK);
    kerf_model_free(model);
    FILE *f = fopen(dst_data, "rb");
    CHECK(f != NULL, "the quantized model's data file is named after it");
    if (f) fclose(f);

    model = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);
    kerf_prune_options prune;
    kerf_prune_options_init(&prune);
    EXPECT_STATUS(kerf_prune(model, &prune, NULL), KERF_OK);
    EXPECT_STATUS(kerf_model_save(model, model_path), KERF_OK);
    kerf_model_free(model);
    CHECK(same_file(data_path, data_bytes, data_size), "an in-place rewrite leaves the data file the original reads");
    model = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);
    kerf_model_free(model);
    free(model_bytes);
    free(data_bytes);
}

/* The allocation limit (ABI 1.7): what Kerf cannot allocate is KERF_OUT_OF_MEMORY, never an abort.
 * The sizes are far beyond memory (a regression fails fast: the system refuses them) or tiny. */
static void test_memory_limit(const char *model_path) {
    uint64_t default_limit = kerf_memory_limit();
    CHECK(default_limit > 0, "a default limit");
    kerf_tensor *t = NULL;
    int64_t tera[1] = {INT64_C(1) << 40}; /* 2^40 floats: 4 TB */
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, tera, 1, NULL, (size_t)1 << 42, &t), KERF_OUT_OF_MEMORY);
    CHECK(t == NULL, "no tensor on failure");
    CHECK(contains(kerf_last_error(), "allocation limit"), "the limit is named");
    int64_t big[2] = {INT64_C(1) << 17, INT64_C(1) << 16}; /* 2^33 floats: 32 GB */
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, big, 2, NULL, (size_t)1 << 35, &t), KERF_OUT_OF_MEMORY);

    /* A lower process-wide limit refuses a 4 MB tensor and takes a 64 KB one; 0 restores the default. */
    kerf_set_memory_limit(1 << 20);
    CHECK(kerf_memory_limit() == 1 << 20, "limit set");
    int64_t mega[1] = {1 << 20};
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, mega, 1, NULL, 4 << 20, &t), KERF_OUT_OF_MEMORY);
    CHECK(contains(kerf_last_error(), "4 MB") && contains(kerf_last_error(), "1 MB"), "sizes in the message");
    int64_t small[1] = {1 << 14};
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, small, 1, NULL, 64 << 10, &t), KERF_OK);
    kerf_tensor_free(t);
    kerf_set_memory_limit(0);
    CHECK(kerf_memory_limit() == default_limit, "default restored");

    /* A session's limit: 64 bytes cannot hold the digits MLP's outputs. */
    kerf_model *model = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);
    kerf_session_options options;
    kerf_session_options_init(&options);
    CHECK(options.memory_limit == 0, "no session limit by default");
    options.threads = 1;
    options.memory_limit = 64;
    kerf_session *session = NULL;
    kerf_status created = kerf_session_create(model, &options, &session);
    int64_t dims[2] = {3, 64};
    float pixels[3 * 64] = {0};
    kerf_tensor *x = NULL;
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, dims, 2, pixels, sizeof pixels, &x), KERF_OK);
    const char *names[1] = {"X"};
    const kerf_tensor *inputs[1] = {x};
    kerf_tensor *outputs[2] = {NULL, NULL};
    kerf_status ran = created == KERF_OK ? kerf_session_run(session, names, inputs, 1, NULL, outputs, 2) : created;
    CHECK(ran == KERF_OUT_OF_MEMORY, "a 64-byte session cannot run the MLP");
    CHECK(outputs[0] == NULL && outputs[1] == NULL, "outputs NULL on failure");
    kerf_session_free(session);
    /* A caller built against ABI 1.6 passes the struct without memory_limit: it is not read. */
    options.struct_size = offsetof(kerf_session_options, memory_limit);
    EXPECT_STATUS(kerf_session_create(model, &options, &session), KERF_OK);
    EXPECT_STATUS(kerf_session_run(session, names, inputs, 1, NULL, outputs, 2), KERF_OK);
    kerf_tensors_free(outputs, 2);
    kerf_session_free(session);
    kerf_tensor_free(x);
    kerf_model_free(model);
}

static int32_t cancel_at_third_step(void *user_data, int64_t step, int64_t total, int64_t epoch, double loss, double lr) {
    (void)user_data; (void)total; (void)epoch; (void)loss; (void)lr;
    return step >= 3;
}

/* Supplies two batches per epoch from the arrays in `user_data` (X then y, 8 samples). */
static int32_t two_batches(void *user_data, int64_t epoch, int64_t index, const char *const *names, size_t count,
                           kerf_tensor **feeds) {
    kerf_tensor *const *arrays = (kerf_tensor *const *)user_data;
    (void)epoch;
    if (index >= 2 || count != 2 || strcmp(names[0], "X") != 0 || strcmp(names[1], "y") != 0) return index >= 2 ? 0 : -1;
    const void *x, *y;
    size_t xb, yb;
    kerf_tensor_data(arrays[0], &x, &xb);
    kerf_tensor_data(arrays[1], &y, &yb);
    int64_t xd[2] = {4, 64}, yd[1] = {4};
    kerf_tensor_create(KERF_DTYPE_FLOAT, xd, 2, (const char *)x + index * xb / 2, xb / 2, &feeds[0]);
    kerf_tensor_create(KERF_DTYPE_INT64, yd, 1, (const char *)y + index * yb / 2, yb / 2, &feeds[1]);
    return 1;
}

/* Training the digits MLP: a trainer step by step (gradients, parameters, checkpoint and
 * restore, the trained model), kerf_train on arrays and on a batch callback, cancellation, and
 * the errors of bad arguments. */
static void test_train(const char *model_path, const char *dir) {
    kerf_model *model = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);
    kerf_trainer *trainer = (kerf_trainer *)1;
    EXPECT_STATUS(kerf_trainer_create(model, NULL, &trainer), KERF_INVALID_ARGUMENT);
    CHECK(trainer == NULL && contains(kerf_last_error(), "loss"), "a trainer needs a loss");
    kerf_train_options options;
    kerf_train_options_init(&options);
    CHECK(options.struct_size == sizeof options && options.batch_size == 32 && options.lr < 0, "train options defaults");
    kerf_loss_term loss = {.kind = KERF_LOSS_CROSS_ENTROPY, .output = "probabilities", .target = "y", .weight = 1,
                           .from_probabilities = 1};
    options.loss = &loss;
    options.n_loss = 1;
    options.optimizer = KERF_OPTIMIZER_ADAM;
    options.lr = 0.01;
    options.threads = 1;
    kerf_loss_term unknown = loss;
    unknown.output = "scores";
    options.loss = &unknown;
    EXPECT_STATUS(kerf_trainer_create(model, &options, &trainer), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "'scores'"), "an unknown loss output is named");
    options.loss = &loss;
    EXPECT_STATUS(kerf_trainer_create(model, &options, &trainer), KERF_OK);
    size_t count = 9;
    EXPECT_STATUS(kerf_trainer_parameter_count(trainer, &count), KERF_OK);
    CHECK(count == 0, "no parameters before the first step");

    float x[8 * 64];
    int64_t y[8];
    for (int i = 0; i < 8 * 64; i++) x[i] = (float)((i * 37) % 17) / 16.0f;
    for (int i = 0; i < 8; i++) y[i] = i % 10;
    int64_t xd[2] = {8, 64}, yd[1] = {8};
    kerf_tensor *feeds[2] = {NULL, NULL};
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, xd, 2, x, sizeof x, &feeds[0]), KERF_OK);
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_INT64, yd, 1, y, sizeof y, &feeds[1]), KERF_OK);
    const char *names[2] = {"X", "y"};
    double first = 0, later = 0;
    EXPECT_STATUS(kerf_trainer_step(trainer, names, (const kerf_tensor *const *)feeds, 1, &first), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "'y' was not fed"), "a missing label feed is named");
    EXPECT_STATUS(kerf_trainer_step(trainer, names, (const kerf_tensor *const *)feeds, 2, &first), KERF_OK);
    EXPECT_STATUS(kerf_trainer_parameter_count(trainer, &count), KERF_OK);
    CHECK(count == 4, "the digits MLP trains four initializers");
    const char *name = NULL;
    EXPECT_STATUS(kerf_trainer_parameter_name(trainer, 0, &name), KERF_OK);
    CHECK(name && strcmp(name, "coefficient") == 0, "parameter 0 is the first weight");
    EXPECT_STATUS(kerf_trainer_parameter_name(trainer, 4, &name), KERF_INVALID_ARGUMENT);
    kerf_tensor *gradient = NULL;
    EXPECT_STATUS(kerf_trainer_gradient(trainer, "coefficient", &gradient), KERF_OK);
    const int64_t *dims = NULL;
    size_t rank = 0;
    EXPECT_STATUS(kerf_tensor_shape(gradient, &dims, &rank), KERF_OK);
    CHECK(rank == 2 && dims[0] == 64 && dims[1] == 64, "the gradient has the weight's shape");
    kerf_tensor_free(gradient);
    EXPECT_STATUS(kerf_trainer_gradient(trainer, "classes", &gradient), KERF_INVALID_ARGUMENT);
    CHECK(gradient == NULL, "no gradient for an integer initializer");
    for (int i = 0; i < 20; i++) EXPECT_STATUS(kerf_trainer_step(trainer, names, (const kerf_tensor *const *)feeds, 2, &later), KERF_OK);
    CHECK(later < first / 4, "twenty steps fit the batch");
    int64_t steps = 0;
    double rate = 0;
    EXPECT_STATUS(kerf_trainer_progress(trainer, &steps, &rate), KERF_OK);
    CHECK(steps == 21 && rate == 0.01, "steps and learning rate");

    char checkpoint[4200];
    snprintf(checkpoint, sizeof checkpoint, "%s/train_checkpoint.npz", dir);
    EXPECT_STATUS(kerf_trainer_checkpoint(trainer, checkpoint), KERF_OK);
    kerf_trainer *resumed = NULL;
    EXPECT_STATUS(kerf_trainer_create(model, &options, &resumed), KERF_OK);
    EXPECT_STATUS(kerf_trainer_checkpoint(resumed, checkpoint), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_trainer_restore(resumed, checkpoint), KERF_OK);
    double a = 0, b = 1;
    EXPECT_STATUS(kerf_trainer_step(trainer, names, (const kerf_tensor *const *)feeds, 2, &a), KERF_OK);
    EXPECT_STATUS(kerf_trainer_step(resumed, names, (const kerf_tensor *const *)feeds, 2, &b), KERF_OK);
    CHECK(a == b, "a restored trainer continues exactly");
    EXPECT_STATUS(kerf_trainer_restore(resumed, model_path), KERF_INVALID_ARGUMENT);

    float nan_x[8 * 64];
    for (int i = 0; i < 8 * 64; i++) nan_x[i] = 0.0f / 0.0f;
    kerf_tensor *nan_feeds[2] = {NULL, feeds[1]};
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, xd, 2, nan_x, sizeof nan_x, &nan_feeds[0]), KERF_OK);
    EXPECT_STATUS(kerf_trainer_step(trainer, names, (const kerf_tensor *const *)nan_feeds, 2, &a), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "nan") || contains(kerf_last_error(), "NaN"), "a NaN loss is reported");
    kerf_tensor_free(nan_feeds[0]);

    kerf_model *trained = NULL;
    EXPECT_STATUS(kerf_trainer_model(trainer, &trained), KERF_OK);
    char saved[4200];
    snprintf(saved, sizeof saved, "%s/trained.onnx", dir);
    EXPECT_STATUS(kerf_model_save(trained, saved), KERF_OK);
    kerf_model_free(trained);
    kerf_trainer_free(resumed);
    kerf_trainer_free(trainer);
    kerf_trainer_free(NULL);

    /* kerf_train: arrays, then a batch callback; a cancelled run leaves the model unchanged. */
    kerf_model *target = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &target), KERF_OK);
    char *report = NULL;
    EXPECT_STATUS(kerf_train(target, &options, &report), KERF_INVALID_ARGUMENT);
    CHECK(report == NULL && contains(kerf_last_error(), "no training data"), "kerf_train needs data");
    options.data_names = names;
    options.data = (const kerf_tensor *const *)feeds;
    options.n_data = 2;
    options.epochs = 3;
    options.batch_size = 4;
    options.progress = cancel_at_third_step;
    EXPECT_STATUS(kerf_train(target, &options, &report), KERF_CANCELLED);
    options.progress = NULL;
    EXPECT_STATUS(kerf_train(target, &options, &report), KERF_OK);
    CHECK(report && contains(report, "\"steps\":6") && contains(report, "\"epochs\":[{"), "kerf_train's report");
    kerf_free(report);
    report = NULL;
    options.data = NULL;
    options.n_data = 0;
    options.data_names = NULL;
    options.batches = two_batches;
    options.batches_user_data = feeds;
    EXPECT_STATUS(kerf_train(target, &options, &report), KERF_OK);
    CHECK(report && contains(report, "\"steps\":6"), "kerf_train on a batch callback");
    kerf_free(report);
    kerf_model_free(target);
    kerf_tensor_free(feeds[0]);
    kerf_tensor_free(feeds[1]);
    kerf_model_free(model);
}

static int count_progress(void *user_data, int64_t step, int64_t total, int64_t epoch, double loss, double learning_rate) {
    (void)step; (void)total; (void)epoch; (void)learning_rate;
    *(int *)user_data += loss >= 0;
    return 0;
}

/* kerf_distill: a 90%-pruned copy of the digits MLP distilled from the original keeps exactly
 * its zeros and moves towards the teacher; bad arguments are refused with the student unchanged. */
/* 64 samples of the digits MLP's 64 inputs, x[i] = (i * 37) % 17: the distillation tests' data. */
static kerf_tensor *patterned_inputs(void) {
    float x[64 * 64];
    for (int i = 0; i < 64 * 64; i++) x[i] = (float)((i * 37) % 17);
    int64_t xd[2] = {64, 64};
    kerf_tensor *inputs = NULL;
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, xd, 2, x, sizeof x, &inputs), KERF_OK);
    return inputs;
}

/* Loads `model_path` twice: the teacher, and a student pruned to `sparsity` (magnitude). */
static void load_pruned_pair(const char *model_path, double sparsity, kerf_model **teacher, kerf_model **student) {
    EXPECT_STATUS(kerf_model_load(model_path, teacher), KERF_OK);
    EXPECT_STATUS(kerf_model_load(model_path, student), KERF_OK);
    kerf_prune_options prune;
    kerf_prune_options_init(&prune);
    prune.sparsity = sparsity;
    char *report = NULL;
    EXPECT_STATUS(kerf_prune(*student, &prune, &report), KERF_OK);
    kerf_free(report);
}

static void test_distill(const char *model_path) {
    kerf_model *teacher = NULL, *student = NULL;
    load_pruned_pair(model_path, 0.9, &teacher, &student);
    char *report = NULL;

    kerf_distill_options distill;
    kerf_distill_options_init(&distill);
    CHECK(distill.struct_size == sizeof distill && distill.output_loss == KERF_DISTILL_KL && distill.temperature == 2
          && distill.alpha == 0.5 && distill.labels == NULL && distill.n_values == 0, "distill options defaults");
    kerf_train_options options;
    kerf_train_options_init(&options);
    CHECK(options.keep_sparsity == 1, "keep_sparsity is on by default");
    kerf_tensor *inputs = patterned_inputs();
    const char *names[1] = {"X"};
    const kerf_tensor *data[1] = {inputs};
    options.data_names = names;
    options.data = data;
    options.n_data = 1;
    options.validation_names = names;
    options.validation = data;
    options.n_validation = 1;
    options.optimizer = KERF_OPTIMIZER_ADAM;
    options.lr = 0.01;
    options.epochs = 10;
    options.batch_size = 16;
    options.threads = 1;
    options.restore_best = 0;
    int progress_calls = 0;
    options.progress = count_progress;
    options.progress_user_data = &progress_calls;

    kerf_loss_term loss = {.kind = KERF_LOSS_MSE, .output = "probabilities", .target = "t", .weight = 1};
    options.loss = &loss;
    options.n_loss = 1;
    EXPECT_STATUS(kerf_distill(student, teacher, &options, &distill, &report), KERF_INVALID_ARGUMENT);
    CHECK(report == NULL && contains(kerf_last_error(), "loss must be empty"), "kerf_distill builds its own loss");
    options.loss = NULL;
    options.n_loss = 0;
    EXPECT_STATUS(kerf_distill(NULL, teacher, &options, &distill, &report), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_distill(student, NULL, &options, &distill, &report), KERF_INVALID_ARGUMENT);
    EXPECT_STATUS(kerf_distill(student, teacher, NULL, &distill, &report), KERF_INVALID_ARGUMENT);
    distill.output_loss = 7;
    EXPECT_STATUS(kerf_distill(student, teacher, &options, &distill, &report), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "KERF_DISTILL_"), "a bad output loss is named");
    distill.output_loss = KERF_DISTILL_KL;
    distill.struct_size = sizeof distill + 8;
    EXPECT_STATUS(kerf_distill(student, teacher, &options, &distill, &report), KERF_INVALID_ARGUMENT);
    distill.struct_size = sizeof distill;
    const char *student_values[1] = {"probabilities"}, *teacher_values[1] = {"nope"};
    distill.student_values = student_values;
    distill.teacher_values = teacher_values;
    distill.n_values = 1;
    EXPECT_STATUS(kerf_distill(student, teacher, &options, &distill, &report), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "'nope'"), "an unknown teacher value is named");
    teacher_values[0] = "probabilities";

    options.gradual_sparsity = 1.5;
    EXPECT_STATUS(kerf_distill(student, teacher, &options, &distill, &report), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "final sparsity"), "a gradual sparsity of 1.5 is refused");
    options.gradual_sparsity = 0;
    EXPECT_STATUS(kerf_distill(student, teacher, &options, &distill, &report), KERF_OK);
    CHECK(report && contains(report, "\"steps\":40") && contains(report, "\"sparsity\":[{\"elements\":4096,\"name\":\"coefficient\",\"sparsity\":0.8999"),
          "kerf_distill's report: steps and the pruned sparsity kept");
    CHECK(contains(report, "\"validation_accuracy\""), "validation agreement with the teacher");
    CHECK(progress_calls == 40, "progress after every step");
    kerf_free(report);
    kerf_tensor_free(inputs);
    kerf_model_free(student);
    kerf_model_free(teacher);
}

static int32_t one_batch(void *user_data, int64_t epoch, int64_t index, const char *const *names, size_t count,
                         kerf_tensor **feeds) {
    (void)epoch;
    (void)names;
    if (index >= 1 || count != 1) return 0;
    float x[8 * 64];
    for (int i = 0; i < 8 * 64; i++) x[i] = (float)((i * 37) % 17);
    int64_t xd[2] = {8, 64};
    (void)user_data;
    return kerf_tensor_create(KERF_DTYPE_FLOAT, xd, 2, x, sizeof x, &feeds[0]) == KERF_OK ? 1 : -1;
}

/* kerf_student refuses a model without numbered layers (unchanged) and bad options; intermediate
 * matches: a projection-free MSE match of the hidden layer trains and its refusals. */
static void test_student_and_matches(const char *model_path) {
    kerf_model *model = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &model), KERF_OK);
    kerf_student_options options;
    kerf_student_options_init(&options);
    CHECK(options.struct_size == sizeof options && options.drop == KERF_DROP_EVERY_OTHER && options.narrow == 0,
          "student options defaults");
    char *report = NULL;
    EXPECT_STATUS(kerf_student(model, &options, &report), KERF_UNSUPPORTED);
    CHECK(report == NULL && contains(kerf_last_error(), "no repeated layers"), "the digits MLP numbers no layers");
    options.drop = 9;
    EXPECT_STATUS(kerf_student(model, &options, &report), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "KERF_DROP_"), "a bad drop value is named");
    options.drop = KERF_DROP_INDICES;
    options.n_drop_indices = 2;
    EXPECT_STATUS(kerf_student(model, &options, &report), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "drop_indices is NULL"), "NULL indices with a count are refused");
    options.drop = KERF_DROP_NONE;
    options.n_drop_indices = 0;
    options.narrow = 0.5;
    EXPECT_STATUS(kerf_student(model, &options, &report), KERF_OK);
    CHECK(report && contains(report, "\"narrowed\":{") && contains(report, "\"layers\":[]"), "narrowing alone prunes channels");
    kerf_free(report);
    report = NULL;
    EXPECT_STATUS(kerf_student(NULL, &options, &report), KERF_INVALID_ARGUMENT);

    kerf_model *teacher = NULL;
    EXPECT_STATUS(kerf_model_load(model_path, &teacher), KERF_OK);
    kerf_train_options train;
    kerf_train_options_init(&train);
    float x[32 * 64];
    for (int i = 0; i < 32 * 64; i++) x[i] = (float)((i * 13) % 11);
    int64_t xd[2] = {32, 64};
    kerf_tensor *inputs = NULL;
    EXPECT_STATUS(kerf_tensor_create(KERF_DTYPE_FLOAT, xd, 2, x, sizeof x, &inputs), KERF_OK);
    const char *names[1] = {"X"};
    const kerf_tensor *data[1] = {inputs};
    train.data_names = names;
    train.data = data;
    train.n_data = 1;
    train.batch_size = 16;
    train.threads = 1;
    kerf_distill_options distill;
    kerf_distill_options_init(&distill);
    CHECK(distill.n_matches == 0 && distill.match_kinds == NULL, "no matches by default");
    const char *match_students[1] = {"nope"}, *match_teachers[1] = {"nope"};
    int32_t kinds[1] = {KERF_MATCH_ATTENTION};
    double weights[1] = {0.5};
    distill.match_students = match_students;
    distill.match_teachers = match_teachers;
    distill.match_kinds = kinds;
    distill.match_weights = weights;
    distill.n_matches = 1;
    EXPECT_STATUS(kerf_distill(model, teacher, &train, &distill, &report), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "'nope'"), "an unknown matched value is named");
    kinds[0] = 7;
    EXPECT_STATUS(kerf_distill(model, teacher, &train, &distill, &report), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "KERF_MATCH_"), "a bad match kind is named");
    kerf_tensor_free(inputs);
    kerf_model_free(teacher);
    kerf_model_free(model);
}

/* Quantization-aware distillation of a 50%-pruned student: written back as the static int8 file
 * kerf_quantize writes (smaller, still runs, zeros kept), and the refusals. */
static void test_qat(const char *model_path, const char *tmpdir) {
    kerf_model *teacher = NULL, *student = NULL;
    load_pruned_pair(model_path, 0.5, &teacher, &student);
    char *report = NULL;

    kerf_train_options options;
    kerf_train_options_init(&options);
    CHECK(options.qat == NULL && options.qat_range_momentum == 0.99, "qat defaults: off, momentum 0.99");
    kerf_tensor *inputs = patterned_inputs();
    const char *names[1] = {"X"};
    const kerf_tensor *data[1] = {inputs};
    options.data_names = names;
    options.data = data;
    options.n_data = 1;
    options.optimizer = KERF_OPTIMIZER_ADAM;
    options.lr = 1e-3;
    options.epochs = 2;
    options.batch_size = 16;
    options.threads = 1;
    kerf_quantize_options qat;
    kerf_quantize_options_init(&qat);
    qat.mode = KERF_QUANTIZE_STATIC;
    options.qat = &qat;

    options.qat_range_momentum = 1.5;
    EXPECT_STATUS(kerf_distill(student, teacher, &options, NULL, &report), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "qat_range_momentum"), "a momentum of 1.5 is refused");
    options.qat_range_momentum = 0.99;
    qat.auto_tolerance = 0.01;
    EXPECT_STATUS(kerf_distill(student, teacher, &options, NULL, &report), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "auto tolerance"), "QAT has no auto tolerance");
    qat.auto_tolerance = -1;
    options.data = NULL;
    options.data_names = NULL;
    options.n_data = 0;
    options.batches = one_batch;
    EXPECT_STATUS(kerf_distill(student, teacher, &options, NULL, &report), KERF_INVALID_ARGUMENT);
    CHECK(contains(kerf_last_error(), "calibration"), "static QAT on a batch callback needs calibration data");
    options.batches = NULL;
    options.data = data;
    options.data_names = names;
    options.n_data = 1;
    kerf_loss_term loss = {.kind = KERF_LOSS_MSE, .output = "probabilities", .target = "t", .weight = 1};
    options.loss = &loss;
    options.n_loss = 1;
    kerf_trainer *trainer = NULL;
    EXPECT_STATUS(kerf_trainer_create(student, &options, &trainer), KERF_INVALID_ARGUMENT);
    CHECK(trainer == NULL && contains(kerf_last_error(), "kerf_train and kerf_distill"), "a kerf_trainer takes no qat");
    options.loss = NULL;
    options.n_loss = 0;

    EXPECT_STATUS(kerf_distill(student, teacher, &options, NULL, &report), KERF_OK);
    CHECK(report && contains(report, "\"steps\":8") && contains(report, "\"quantization\":{")
          && contains(report, "\"mode\":\"static\"") && contains(report, "\"sparsity\":0.5"),
          "kerf_distill with qat: steps, the quantize report, sparsity kept");
    kerf_free(report);
    char path[512];
    snprintf(path, sizeof path, "%s/qat_student.onnx", tmpdir);
    EXPECT_STATUS(kerf_model_save(student, path), KERF_OK);
    kerf_model *reloaded = NULL;
    EXPECT_STATUS(kerf_model_load(path, &reloaded), KERF_OK);
    kerf_session *session = NULL;
    EXPECT_STATUS(kerf_session_create(reloaded, NULL, &session), KERF_OK);
    kerf_tensor *out = NULL;
    const char *out_names[1] = {"probabilities"};
    EXPECT_STATUS(kerf_session_run(session, names, (const kerf_tensor *const *)&inputs, 1, out_names, &out, 1), KERF_OK);
    const int64_t *dims = NULL;
    size_t rank = 0;
    EXPECT_STATUS(kerf_tensor_shape(out, &dims, &rank), KERF_OK);
    CHECK(rank == 2 && dims[0] == 64 && dims[1] == 10, "the int8 student runs");
    kerf_tensor_free(out);
    kerf_session_free(session);
    kerf_model_free(reloaded);
    kerf_tensor_free(inputs);
    kerf_model_free(student);
    kerf_model_free(teacher);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: test_capi MODEL.onnx WORKDIR [EXTERNAL.onnx]\n");
        return 2;
    }
    test_library();
    test_bad_files(argv[2]);
    test_truncated(argv[1]);
    test_tensors();
    test_model(argv[1], argv[2]);
    test_memory_limit(argv[1]);
    test_struct_sizes(argv[1]);
    test_prune(argv[1], argv[2]);
    test_quantize(argv[1], argv[2]);
    test_train(argv[1], argv[2]);
    test_distill(argv[1]);
    test_qat(argv[1], argv[2]);
    test_student_and_matches(argv[1]);
    if (argc == 4) test_external_data(argv[3], "digits.onnx.data", argv[2]);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
