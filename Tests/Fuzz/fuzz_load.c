/*
 * libFuzzer harness: the bytes are an ONNX model. Each input is loaded with
 * kerf_model_load_bytes, given a one-thread session and run once on inputs built from the
 * declared input types; everything is freed. Kerf must refuse bad bytes with a status, never
 * abort, hang, leak or touch memory it does not own (ASan, when built with it, checks the last).
 *
 * Inputs: each declared input gets its declared dtype and dims, a symbolic or unknown dim
 * becomes 1 and an input of unknown rank a scalar. A model whose inputs would hold more than
 * MAX_ELEMENTS elements in all, or that has a string input, is loaded and prepared but not run
 * (a run's cost would be the fuzzer's time, not a finding).
 *
 * With KERF_FUZZ_REQUIRE_RUN set in the environment, an input that does not load, prepare and
 * run successfully aborts: `make test-fuzz` replays the seeds so, proving each one reaches the
 * kernels (a seed Kerf refuses would leave the fuzzer mutating a parse error).
 *
 * Build: see `make fuzz` / `make test-fuzz` (clang -fsanitize=fuzzer against libKerf.so).
 */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "kerf.h"

#define MAX_ELEMENTS ((int64_t)1 << 20)
#define MAX_OUTPUTS 256

/* Bytes per element of a dtype Kerf tensors hold (sub-byte types are unpacked: 1), 0 for none. */
static size_t element_size(kerf_dtype dtype) {
    switch (dtype) {
    case KERF_DTYPE_FLOAT: case KERF_DTYPE_INT32: case KERF_DTYPE_UINT32: return 4;
    case KERF_DTYPE_INT64: case KERF_DTYPE_UINT64: case KERF_DTYPE_DOUBLE: return 8;
    case KERF_DTYPE_UINT16: case KERF_DTYPE_INT16: case KERF_DTYPE_FLOAT16: case KERF_DTYPE_BFLOAT16: return 2;
    case KERF_DTYPE_UINT8: case KERF_DTYPE_INT8: case KERF_DTYPE_BOOL:
    case KERF_DTYPE_FLOAT8E4M3FN: case KERF_DTYPE_FLOAT8E4M3FNUZ: case KERF_DTYPE_FLOAT8E5M2:
    case KERF_DTYPE_FLOAT8E5M2FNUZ: case KERF_DTYPE_UINT4: case KERF_DTYPE_INT4:
    case KERF_DTYPE_FLOAT4E2M1: case KERF_DTYPE_FLOAT8E8M0: case KERF_DTYPE_UINT2: case KERF_DTYPE_INT2:
        return 1;
    default: return 0;
    }
}

/* Fills n elements with small, varied values: floats in [-1, 1], integers 0..2, bools 0/1;
 * other types stay zero. */
static void fill(kerf_dtype dtype, void *data, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        switch (dtype) {
        case KERF_DTYPE_FLOAT: ((float *)data)[i] = (float)((i % 9) - 4) * 0.25f; break;
        case KERF_DTYPE_DOUBLE: ((double *)data)[i] = (double)((i % 9) - 4) * 0.25; break;
        case KERF_DTYPE_INT32: ((int32_t *)data)[i] = (int32_t)(i % 3); break;
        case KERF_DTYPE_INT64: ((int64_t *)data)[i] = i % 3; break;
        case KERF_DTYPE_UINT8: case KERF_DTYPE_INT8: ((uint8_t *)data)[i] = (uint8_t)(i % 3); break;
        case KERF_DTYPE_BOOL: ((uint8_t *)data)[i] = (uint8_t)(i & 1); break;
        default: return;
        }
    }
}

/* The element count of a declared input with symbolic dims set to 1, written to dims;
 * -1 when it exceeds `budget`. */
static int64_t concrete_dims(const kerf_value_info *info, int64_t *dims, int64_t budget) {
    int64_t count = 1;
    for (size_t d = 0; d < info->rank; d++) {
        int64_t dim = info->dims[d] < 0 ? 1 : info->dims[d];
        dims[d] = dim;
        if (dim != 0 && count > budget / dim) return -1;
        count *= dim;
    }
    return count;
}

/* Builds the inputs and runs once. Returns the run's status, or -1 when the model was not run
 * (inputs too large or of a type the harness cannot build). */
static kerf_status run_once(const kerf_model *model, kerf_session *session) {
    size_t n_inputs = 0, n_outputs = 0;
    if (kerf_model_input_count(model, &n_inputs) != KERF_OK) return -1;
    if (kerf_model_output_count(model, &n_outputs) != KERF_OK || n_outputs > MAX_OUTPUTS) return -1;
    const char **names = calloc(n_inputs + 1, sizeof *names);
    kerf_tensor **inputs = calloc(n_inputs + 1, sizeof *inputs);
    kerf_tensor **outputs = calloc(n_outputs + 1, sizeof *outputs);
    int64_t budget = MAX_ELEMENTS;
    int runnable = names && inputs && outputs;
    for (size_t i = 0; runnable && i < n_inputs; i++) {
        kerf_value_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        if (kerf_model_input(model, i, &info) != KERF_OK) { runnable = 0; break; }
        size_t rank = info.rank_known ? info.rank : 0;
        if (rank > 64) { runnable = 0; break; }
        int64_t dims[64];
        int64_t count = rank ? concrete_dims(&info, dims, budget) : 1;
        size_t size = element_size(info.dtype);
        if (count < 0 || size == 0) { runnable = 0; break; }
        budget -= count;
        void *data = calloc((size_t)count + 1, size);
        if (!data) { runnable = 0; break; }
        fill(info.dtype, data, count);
        names[i] = info.name;
        kerf_status status = kerf_tensor_create(info.dtype, dims, rank, data, (size_t)count * size, &inputs[i]);
        free(data);
        if (status != KERF_OK) { runnable = 0; break; }
    }
    kerf_status status = -1;
    if (runnable) {
        status = kerf_session_run(session, names, (const kerf_tensor *const *)inputs, n_inputs,
                                  NULL, outputs, n_outputs);
        if (status == KERF_OK) kerf_tensors_free(outputs, n_outputs);
    }
    if (inputs) kerf_tensors_free(inputs, n_inputs);
    free(outputs);
    free(inputs);
    free(names);
    return status;
}

/* Under KERF_FUZZ_REQUIRE_RUN, a failed stage aborts with its status and Kerf's message. */
static void require(int ok, const char *stage, kerf_status status) {
    if (ok || !getenv("KERF_FUZZ_REQUIRE_RUN")) return;
    fprintf(stderr, "KERF_FUZZ_REQUIRE_RUN: %s failed with status %d: %s\n", stage, (int)status, kerf_last_error());
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kerf_model *model = NULL;
    kerf_status status = kerf_model_load_bytes(data, size, &model);
    require(status == KERF_OK, "kerf_model_load_bytes", status);
    if (status != KERF_OK) return 0;
    kerf_session_options options;
    kerf_session_options_init(&options);
    options.threads = 1;
    kerf_session *session = NULL;
    status = kerf_session_create(model, &options, &session);
    require(status == KERF_OK, "kerf_session_create", status);
    if (status == KERF_OK) {
        status = run_once(model, session);
        require(status == KERF_OK, "kerf_session_run", status);
        kerf_session_free(session);
    }
    kerf_model_free(model);
    return 0;
}
