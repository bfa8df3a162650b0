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

#define MAX_RANK 8

/* A float32 array read from a .npy file. */
typedef struct {
    int64_t dims[MAX_RANK];
    size_t rank;
    float *data;
    size_t byte_size;
} npy_array;

static int fail(const char *message) {
    fprintf(stderr, "classify: %s\n", message);
    return 0;
}

/* Points past `key` (e.g. "'descr'") and the ':' after it in the header dict. */
static const char *dict_value(const char *header, const char *key) {
    const char *at = strstr(header, key);
    if (!at) return NULL;
    at += strlen(key);
    while (*at == ' ') at++;
    if (*at != ':') return NULL;
    at++;
    while (*at == ' ') at++;
    return at;
}

/* Parses "(2, 3)", "(64,)" or "()" into dims. */
static int parse_shape(const char *text, npy_array *array) {
    if (*text++ != '(') return 0;
    array->rank = 0;
    for (;;) {
        while (*text == ' ' || *text == ',') text++;
        if (*text == ')') return 1;
        if (*text < '0' || *text > '9' || array->rank == MAX_RANK) return 0;
        char *end;
        long long dim = strtoll(text, &end, 10);
        if (dim < 0) return 0;
        array->dims[array->rank++] = (int64_t)dim;
        text = end;
    }
}

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* Reads a version 1, 2 or 3 .npy file of '<f4' in C order. Returns 1 on success. */
static int read_npy(const char *path, npy_array *array) {
    int ok = 0;
    char *header = NULL;
    FILE *file = fopen(path, "rb");
    if (!file) return fail("cannot open the .npy file");

    unsigned char preamble[10];
    if (fread(preamble, 1, 8, file) != 8 || memcmp(preamble, "\x93NUMPY", 6) != 0) {
        fail("not a .npy file (bad magic)");
        goto done;
    }
    size_t header_len;
    if (preamble[6] == 1) {
        if (fread(preamble + 8, 1, 2, file) != 2) goto truncated;
        header_len = (size_t)preamble[8] | (size_t)preamble[9] << 8;
    } else if (preamble[6] == 2 || preamble[6] == 3) {
        unsigned char len[4];
        if (fread(len, 1, 4, file) != 4) goto truncated;
        header_len = (size_t)len[0] | (size_t)len[1] << 8 | (size_t)len[2] << 16 | (size_t)len[3] << 24;
    } else {
        fail("unsupported .npy version (expected 1, 2 or 3)");
        goto done;
    }
    if (header_len > (1u << 20)) {
        fail(".npy header is implausibly large");
        goto done;
    }
    header = malloc(header_len + 1);
    if (!header) {
        fail("out of memory");
        goto done;
    }
    if (fread(header, 1, header_len, file) != header_len) goto truncated;
    header[header_len] = '\0';

    const char *descr = dict_value(header, "'descr'");
    const char *fortran = dict_value(header, "'fortran_order'");
    const char *shape = dict_value(header, "'shape'");
    if (!descr || !fortran || !shape) {
        fail(".npy header lacks descr, fortran_order or shape");
        goto done;
    }
    if (strncmp(descr, "'<f4'", 5) != 0) {
        fail(".npy data must be little-endian float32 ('<f4')");
        goto done;
    }
    if (strncmp(fortran, "False", 5) != 0) {
        fail(".npy data must be in C order (fortran_order False)");
        goto done;
    }
    if (!parse_shape(shape, array)) {
        fail("cannot parse the .npy shape (or rank > 8)");
        goto done;
    }

    size_t count = 1;
    for (size_t i = 0; i < array->rank; i++) {
        size_t dim = (size_t)array->dims[i];
        if (dim != 0 && count > SIZE_MAX / sizeof(float) / dim) {
            fail(".npy shape is too large");
            goto done;
        }
        count *= dim;
    }
    array->byte_size = count * sizeof(float);
    array->data = malloc(array->byte_size ? array->byte_size : 1);
    if (!array->data) {
        fail("out of memory");
        goto done;
    }
    if (fread(array->data, 1, array->byte_size, file) != array->byte_size) goto truncated;
    if (!host_is_little_endian()) {
        unsigned char *bytes = (unsigned char *)array->data;
        for (size_t i = 0; i < array->byte_size; i += 4) {
            unsigned char t0 = bytes[i], t1 = bytes[i + 1];
            bytes[i] = bytes[i + 3];
            bytes[i + 1] = bytes[i + 2];
            bytes[i + 2] = t1;
            bytes[i + 3] = t0;
        }
    }
    ok = 1;
    goto done;

truncated:
    fail("the .npy file is truncated");
done:
    free(header);
    fclose(file);
    if (!ok) {
        free(array->data);
        array->data = NULL;
    }
    return ok;
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
