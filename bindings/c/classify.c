/*
 * classify — runs an ONNX classifier on one .npy input through Kerf's C API.
 *
 *     classify MODEL.onnx INPUT.npy
 *
 * INPUT.npy holds a little-endian float32 C-order array ('<f4') whose shape is
 * the model's input shape, e.g. [1, 64] for the digits MLP made by
 * scripts/train_digits.py (digits_sample.npy). Prints every output's shape,
 * then for each row of the class scores the top class and its probability.
 * A classifier exported by skl2onnx outputs the label (int64) first and the
 * probabilities (float) second: the label output, when there is one, names
 * the class; otherwise the argmax over the scores' last axis does.
 *
 * Build from the repository root (after `swift build -c release`):
 *
 *     cc -std=c99 -Wall -Wextra -I include bindings/c/classify.c \
 *        -L .build/release -lKerf -Wl,-rpath,"$PWD/.build/release" -o classify
 *     ./classify digits/digits_mlp.onnx digits/digits_sample.npy
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kerf.h"

#include "npy.h"

static int fail(const char *message) {
    fprintf(stderr, "classify: %s\n", message);
    return 0;
}

static const char *dtype_name(kerf_dtype dtype) {
    switch (dtype) {
    case KERF_DTYPE_FLOAT: return "float32";
    case KERF_DTYPE_DOUBLE: return "float64";
    case KERF_DTYPE_FLOAT16: return "float16";
    case KERF_DTYPE_INT64: return "int64";
    case KERF_DTYPE_INT32: return "int32";
    case KERF_DTYPE_BOOL: return "bool";
    case KERF_DTYPE_UINT8: return "uint8";
    case KERF_DTYPE_INT8: return "int8";
    default: return "other";
    }
}

/* Prints "name: dtype [d0, d1]" for one output. Returns 1 on success. */
static int print_output(const char *name, const kerf_tensor *tensor) {
    kerf_dtype dtype;
    const int64_t *dims;
    size_t rank;
    if (kerf_tensor_dtype(tensor, &dtype) != KERF_OK) return 0;
    if (kerf_tensor_shape(tensor, &dims, &rank) != KERF_OK) return 0;
    printf("output %s: %s [", name, dtype_name(dtype));
    for (size_t i = 0; i < rank; i++) printf("%s%lld", i ? ", " : "", (long long)dims[i]);
    printf("]\n");
    return 1;
}

/* Prints the top class and probability of every row of `scores` (float32,
 * classes on the last axis); `labels` (int64, one per row) may be NULL. */
static int print_top_classes(const kerf_tensor *scores, const kerf_tensor *labels) {
    const int64_t *dims;
    size_t rank, bytes;
    const void *data;
    if (kerf_tensor_shape(scores, &dims, &rank) != KERF_OK) return 0;
    if (kerf_tensor_data(scores, &data, &bytes) != KERF_OK) return 0;
    size_t classes = rank ? (size_t)dims[rank - 1] : 1;
    size_t rows = classes ? bytes / sizeof(float) / classes : 0;

    const int64_t *label_data = NULL;
    size_t label_count = 0;
    if (labels) {
        const void *raw;
        if (kerf_tensor_data(labels, &raw, &bytes) != KERF_OK) return 0;
        label_data = raw;
        label_count = bytes / sizeof(int64_t);
    }

    const float *p = data;
    for (size_t row = 0; row < rows; row++) {
        const float *row_scores = p + row * classes;
        size_t best = 0;
        for (size_t c = 1; c < classes; c++)
            if (row_scores[c] > row_scores[best]) best = c;
        long long top = row < label_count ? (long long)label_data[row] : (long long)best;
        printf("sample %zu: top class %lld, probability %.4f\n", row, top, row_scores[best]);
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: classify MODEL.onnx INPUT.npy\n");
        return 2;
    }
    int status = 1;
    npy_array input = {0};
    kerf_model *model = NULL;
    kerf_session *session = NULL;
    kerf_tensor *x = NULL;
    kerf_tensor **outputs = NULL;
    size_t n_outputs = 0, n_inputs = 0;

    if (!read_npy(argv[2], &input)) goto cleanup;
    if (kerf_model_load(argv[1], &model) != KERF_OK) goto kerf_failed;
    if (kerf_model_input_count(model, &n_inputs) != KERF_OK) goto kerf_failed;
    if (n_inputs != 1) {
        fail("the model must have exactly one input");
        goto cleanup;
    }
    kerf_value_info input_info = {.struct_size = sizeof input_info};
    if (kerf_model_input(model, 0, &input_info) != KERF_OK) goto kerf_failed;
    if (kerf_model_output_count(model, &n_outputs) != KERF_OK) goto kerf_failed;
    if (kerf_session_create(model, NULL, &session) != KERF_OK) goto kerf_failed;
    if (kerf_tensor_create(KERF_DTYPE_FLOAT, input.dims, input.rank, input.data, input.byte_size,
                           &x) != KERF_OK)
        goto kerf_failed;

    outputs = calloc(n_outputs ? n_outputs : 1, sizeof *outputs);
    if (!outputs) {
        fail("out of memory");
        goto cleanup;
    }
    const char *input_names[1] = {input_info.name};
    const kerf_tensor *inputs[1] = {x};
    if (kerf_session_run(session, input_names, inputs, 1, NULL, outputs, n_outputs) != KERF_OK)
        goto kerf_failed;

    const kerf_tensor *scores = NULL, *labels = NULL;
    for (size_t i = 0; i < n_outputs; i++) {
        kerf_value_info info = {.struct_size = sizeof info};
        kerf_dtype dtype;
        if (kerf_model_output(model, i, &info) != KERF_OK) goto kerf_failed;
        if (kerf_tensor_dtype(outputs[i], &dtype) != KERF_OK) goto kerf_failed;
        if (!print_output(info.name, outputs[i])) goto kerf_failed;
        if (dtype == KERF_DTYPE_FLOAT && !scores) scores = outputs[i];
        if (dtype == KERF_DTYPE_INT64 && !labels) labels = outputs[i];
    }
    if (!scores) {
        fail("the model has no float32 output to take class scores from");
        goto cleanup;
    }
    if (!print_top_classes(scores, labels)) goto kerf_failed;
    status = 0;
    goto cleanup;

kerf_failed:
    fprintf(stderr, "classify: %s\n", kerf_last_error());
cleanup:
    for (size_t i = 0; outputs && i < n_outputs; i++) kerf_tensor_free(outputs[i]);
    free(outputs);
    kerf_tensor_free(x);
    kerf_session_free(session);
    kerf_model_free(model);
    free(input.data);
    return status;
}
