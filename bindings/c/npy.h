/*
 * npy.h — reads a float32 .npy file (version 1, 2 or 3, '<f4', C order), for the C examples.
 * Header-only: every function is static.
 */
#ifndef KERF_EXAMPLES_NPY_H
#define KERF_EXAMPLES_NPY_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RANK 8

/* A float32 array read from a .npy file. */
typedef struct {
    int64_t dims[MAX_RANK];
    size_t rank;
    float *data;
    size_t byte_size;
} npy_array;

static int npy_fail(const char *message) {
    fprintf(stderr, "npy: %s\n", message);
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
    if (!file) return npy_fail("cannot open the .npy file");

    unsigned char preamble[10];
    if (fread(preamble, 1, 8, file) != 8 || memcmp(preamble, "\x93NUMPY", 6) != 0) {
        npy_fail("not a .npy file (bad magic)");
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
        npy_fail("unsupported .npy version (expected 1, 2 or 3)");
        goto done;
    }
    if (header_len > (1u << 20)) {
        npy_fail(".npy header is implausibly large");
        goto done;
    }
    header = malloc(header_len + 1);
    if (!header) {
        npy_fail("out of memory");
        goto done;
    }
    if (fread(header, 1, header_len, file) != header_len) goto truncated;
    header[header_len] = '\0';

    const char *descr = dict_value(header, "'descr'");
    const char *fortran = dict_value(header, "'fortran_order'");
    const char *shape = dict_value(header, "'shape'");
    if (!descr || !fortran || !shape) {
        npy_fail(".npy header lacks descr, fortran_order or shape");
        goto done;
    }
    if (strncmp(descr, "'<f4'", 5) != 0) {
        npy_fail(".npy data must be little-endian float32 ('<f4')");
        goto done;
    }
    if (strncmp(fortran, "False", 5) != 0) {
        npy_fail(".npy data must be in C order (fortran_order False)");
        goto done;
    }
    if (!parse_shape(shape, array)) {
        npy_fail("cannot parse the .npy shape (or rank > 8)");
        goto done;
    }

    size_t count = 1;
    for (size_t i = 0; i < array->rank; i++) {
        size_t dim = (size_t)array->dims[i];
        if (dim != 0 && count > SIZE_MAX / sizeof(float) / dim) {
            npy_fail(".npy shape is too large");
            goto done;
        }
        count *= dim;
    }
    array->byte_size = count * sizeof(float);
    array->data = malloc(array->byte_size ? array->byte_size : 1);
    if (!array->data) {
        npy_fail("out of memory");
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
    npy_fail("the .npy file is truncated");
done:
    free(header);
    fclose(file);
    if (!ok) {
        free(array->data);
        array->data = NULL;
    }
    return ok;
}

#endif
