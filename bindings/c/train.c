/*
 * train — trains an ONNX classifier from scratch through Kerf's C API.
 *
 *     train MODEL.onnx X.npy Y.npy OUT.onnx
 *
 * X.npy holds the inputs (float32 [N, features]) and Y.npy the class probabilities (float32
 * [N, classes], one-hot for plain labels); both '<f4' in C order, as scripts/train_digits.py
 * writes them (digits_train_x.npy, digits_train_y.npy). The model's parameters are
 * re-initialized (Xavier), trained for 30 epochs with SGD (lr 0.1, momentum 0.9) on the
 * cross-entropy of its "probabilities" output, and the result is written to OUT.onnx.
 *
 * Build from the repository root (after `swift build -c release`):
 *
 *     cc -std=c99 -Wall -Wextra -I include bindings/c/train.c \
 *        -L .build/release -lKerf -Wl,-rpath,"$PWD/.build/release" -o train
 */
#include <stdio.h>
#include <stdlib.h>

#include "kerf.h"
#include "npy.h"

/* Prints the loss at the end of each epoch; returns 0 to go on. */
static int32_t report_epoch(void *user_data, int64_t step, int64_t total_steps, int64_t epoch, double loss,
                            double learning_rate) {
    int64_t steps_per_epoch = *(const int64_t *)user_data;
    (void)learning_rate;
    if (step % steps_per_epoch == 0) printf("epoch %2lld  step %4lld/%lld  loss %.4f\n", (long long)epoch + 1,
                                            (long long)step, (long long)total_steps, loss);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: train MODEL.onnx X.npy Y.npy OUT.onnx\n");
        return 2;
    }
    npy_array x = {0}, y = {0};
    if (!read_npy(argv[2], &x) || !read_npy(argv[3], &y)) return 1;

    int status = 1;
    kerf_model *model = NULL;
    kerf_tensor *tensors[2] = {NULL, NULL};
    char *report = NULL;
    if (kerf_model_load(argv[1], &model) != KERF_OK) goto failed;
    if (kerf_tensor_create(KERF_DTYPE_FLOAT, x.dims, x.rank, x.data, x.byte_size, &tensors[0]) != KERF_OK) goto failed;
    if (kerf_tensor_create(KERF_DTYPE_FLOAT, y.dims, y.rank, y.data, y.byte_size, &tensors[1]) != KERF_OK) goto failed;

    kerf_value_info input = {.struct_size = sizeof input};
    if (kerf_model_input(model, 0, &input) != KERF_OK) goto failed;

    kerf_loss_term loss = {.kind = KERF_LOSS_CROSS_ENTROPY, .output = "probabilities", .target = "y",
                           .weight = 1, .from_probabilities = 1};
    const char *names[2] = {input.name, "y"};
    int64_t steps_per_epoch = (x.dims[0] + 31) / 32;

    kerf_train_options options;
    kerf_train_options_init(&options);
    options.loss = &loss;
    options.n_loss = 1;
    options.optimizer = KERF_OPTIMIZER_SGD;
    options.lr = 0.1;
    options.momentum = 0.9;
    options.initialization = KERF_INIT_XAVIER_UNIFORM;
    options.data_names = names;
    options.data = (const kerf_tensor *const *)tensors;
    options.n_data = 2;
    options.epochs = 30;
    options.batch_size = 32;
    options.progress = report_epoch;
    options.progress_user_data = &steps_per_epoch;
    if (kerf_train(model, &options, &report) != KERF_OK) goto failed;
    if (kerf_model_save(model, argv[4]) != KERF_OK) goto failed;
    printf("wrote %s\n", argv[4]);
    status = 0;
    goto done;

failed:
    fprintf(stderr, "train: %s\n", kerf_last_error());
done:
    kerf_free(report);
    kerf_tensor_free(tensors[0]);
    kerf_tensor_free(tensors[1]);
    kerf_model_free(model);
    free(x.data);
    free(y.data);
    return status;
}
