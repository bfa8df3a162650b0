/*
 * Prints the layout of every public struct of kerf.h and the value of every constant, for
 * bindings/python/tests/test_abi_layout.py to compare with the ctypes declarations:
 *
 *     struct NAME SIZEOF FIELD_COUNT
 *     field NAME FIELD OFFSET SIZE        (one per field, in declaration order)
 *     const NAME VALUE
 *
 * Exits 1 when a struct's listed fields do not tile it (each field right after the one
 * before, up to its alignment; the last one reaching sizeof), so that a field added to kerf.h
 * but not here fails the test instead of going unnoticed.
 */
#include <stdalign.h>
#include <stdio.h>
#include "kerf.h"

static int failures = 0;
static size_t listed_end = 0, listed_count = 0;
static char lines[64][160];

#define FIELD(T, f)                                                                          \
    do {                                                                                     \
        size_t offset = offsetof(T, f), size = sizeof(((T *)0)->f);                          \
        size_t align = __alignof__(((T *)0)->f);                                             \
        if (offset != (listed_end + align - 1) / align * align) {                            \
            fprintf(stderr, "abi_layout: %s.%s is at %zu, not right after the field listed before it\n", #T, #f, offset); \
            failures++;                                                                      \
        }                                                                                    \
        snprintf(lines[listed_count++], sizeof lines[0], "field %s %s %zu %zu", #T, #f, offset, size); \
        listed_end = offset + size;                                                          \
    } while (0)

/* Prints the struct line, then its fields; checks that they reach sizeof(T) (with tail padding). */
#define END_STRUCT(T)                                                                        \
    do {                                                                                     \
        size_t padded = (listed_end + alignof(T) - 1) / alignof(T) * alignof(T);             \
        if (padded != sizeof(T)) {                                                           \
            fprintf(stderr, "abi_layout: the fields listed for %s end at %zu, but sizeof is %zu\n", #T, listed_end, sizeof(T)); \
            failures++;                                                                      \
        }                                                                                    \
        printf("struct %s %zu %zu\n", #T, sizeof(T), listed_count);                          \
        for (size_t i = 0; i < listed_count; i++) printf("%s\n", lines[i]);                  \
        listed_end = listed_count = 0;                                                       \
    } while (0)

#define CONST(name) printf("const %s %lld\n", #name, (long long)(name))

int main(void) {
    FIELD(kerf_value_info, struct_size);
    FIELD(kerf_value_info, name);
    FIELD(kerf_value_info, dtype);
    FIELD(kerf_value_info, rank_known);
    FIELD(kerf_value_info, rank);
    FIELD(kerf_value_info, dims);
    FIELD(kerf_value_info, dim_names);
    END_STRUCT(kerf_value_info);

    FIELD(kerf_model_metadata, struct_size);
    FIELD(kerf_model_metadata, producer_name);
    FIELD(kerf_model_metadata, producer_version);
    FIELD(kerf_model_metadata, domain);
    FIELD(kerf_model_metadata, doc_string);
    FIELD(kerf_model_metadata, graph_name);
    FIELD(kerf_model_metadata, graph_doc_string);
    FIELD(kerf_model_metadata, model_version);
    FIELD(kerf_model_metadata, n_properties);
    FIELD(kerf_model_metadata, property_keys);
    FIELD(kerf_model_metadata, property_values);
    END_STRUCT(kerf_model_metadata);

    FIELD(kerf_session_options, struct_size);
    FIELD(kerf_session_options, threads);
    FIELD(kerf_session_options, optimization_level);
    FIELD(kerf_session_options, sparse_kernels);
    FIELD(kerf_session_options, memory_limit);
    FIELD(kerf_session_options, kept_values);
    FIELD(kerf_session_options, n_kept_values);
    END_STRUCT(kerf_session_options);

    FIELD(kerf_tensor_view, dtype);
    FIELD(kerf_tensor_view, rank);
    FIELD(kerf_tensor_view, dims);
    FIELD(kerf_tensor_view, data);
    FIELD(kerf_tensor_view, byte_size);
    END_STRUCT(kerf_tensor_view);

    FIELD(kerf_prune_options, struct_size);
    FIELD(kerf_prune_options, method);
    FIELD(kerf_prune_options, scope);
    FIELD(kerf_prune_options, sparsity);
    FIELD(kerf_prune_options, max_tensor_sparsity);
    FIELD(kerf_prune_options, n);
    FIELD(kerf_prune_options, m);
    FIELD(kerf_prune_options, channel_criterion);
    FIELD(kerf_prune_options, store_sparse);
    FIELD(kerf_prune_options, min_elements);
    FIELD(kerf_prune_options, exclude);
    FIELD(kerf_prune_options, n_exclude);
    FIELD(kerf_prune_options, per_tensor_names);
    FIELD(kerf_prune_options, per_tensor_sparsity);
    FIELD(kerf_prune_options, n_per_tensor);
    FIELD(kerf_prune_options, progress);
    FIELD(kerf_prune_options, progress_user_data);
    FIELD(kerf_prune_options, channel_multiple);
    END_STRUCT(kerf_prune_options);

    FIELD(kerf_sensitivity_options, struct_size);
    FIELD(kerf_sensitivity_options, levels);
    FIELD(kerf_sensitivity_options, n_levels);
    FIELD(kerf_sensitivity_options, exclude);
    FIELD(kerf_sensitivity_options, n_exclude);
    FIELD(kerf_sensitivity_options, min_elements);
    FIELD(kerf_sensitivity_options, batch_size);
    FIELD(kerf_sensitivity_options, threads);
    FIELD(kerf_sensitivity_options, progress);
    FIELD(kerf_sensitivity_options, progress_user_data);
    END_STRUCT(kerf_sensitivity_options);

    FIELD(kerf_quantize_options, struct_size);
    FIELD(kerf_quantize_options, mode);
    FIELD(kerf_quantize_options, method);
    FIELD(kerf_quantize_options, percentile);
    FIELD(kerf_quantize_options, activation_type);
    FIELD(kerf_quantize_options, per_channel);
    FIELD(kerf_quantize_options, quantize_embeddings);
    FIELD(kerf_quantize_options, threads);
    FIELD(kerf_quantize_options, op_types);
    FIELD(kerf_quantize_options, n_op_types);
    FIELD(kerf_quantize_options, exclude);
    FIELD(kerf_quantize_options, n_exclude);
    FIELD(kerf_quantize_options, auto_tolerance);
    FIELD(kerf_quantize_options, smooth_quant_alpha);
    FIELD(kerf_quantize_options, calibration);
    FIELD(kerf_quantize_options, calibration_user_data);
    FIELD(kerf_quantize_options, calibration_batches);
    FIELD(kerf_quantize_options, progress);
    FIELD(kerf_quantize_options, progress_user_data);
    FIELD(kerf_quantize_options, validation);
    FIELD(kerf_quantize_options, validation_user_data);
    FIELD(kerf_quantize_options, validation_batches);
    END_STRUCT(kerf_quantize_options);

    FIELD(kerf_loss_term, kind);
    FIELD(kerf_loss_term, output);
    FIELD(kerf_loss_term, target);
    FIELD(kerf_loss_term, weight);
    FIELD(kerf_loss_term, from_probabilities);
    FIELD(kerf_loss_term, label_smoothing);
    FIELD(kerf_loss_term, delta);
    END_STRUCT(kerf_loss_term);

    FIELD(kerf_train_options, struct_size);
    FIELD(kerf_train_options, loss);
    FIELD(kerf_train_options, n_loss);
    FIELD(kerf_train_options, reduction);
    FIELD(kerf_train_options, optimizer);
    FIELD(kerf_train_options, lr);
    FIELD(kerf_train_options, momentum);
    FIELD(kerf_train_options, dampening);
    FIELD(kerf_train_options, nesterov);
    FIELD(kerf_train_options, weight_decay);
    FIELD(kerf_train_options, beta1);
    FIELD(kerf_train_options, beta2);
    FIELD(kerf_train_options, eps);
    FIELD(kerf_train_options, amsgrad);
    FIELD(kerf_train_options, no_decay);
    FIELD(kerf_train_options, n_no_decay);
    FIELD(kerf_train_options, max_grad_norm);
    FIELD(kerf_train_options, accumulation_steps);
    FIELD(kerf_train_options, schedule);
    FIELD(kerf_train_options, step_size);
    FIELD(kerf_train_options, gamma);
    FIELD(kerf_train_options, milestones);
    FIELD(kerf_train_options, n_milestones);
    FIELD(kerf_train_options, t_max);
    FIELD(kerf_train_options, eta_min);
    FIELD(kerf_train_options, warmup_steps);
    FIELD(kerf_train_options, total_steps);
    FIELD(kerf_train_options, final_fraction);
    FIELD(kerf_train_options, max_lr);
    FIELD(kerf_train_options, pct_start);
    FIELD(kerf_train_options, div_factor);
    FIELD(kerf_train_options, final_div_factor);
    FIELD(kerf_train_options, trainable);
    FIELD(kerf_train_options, n_trainable);
    FIELD(kerf_train_options, frozen);
    FIELD(kerf_train_options, n_frozen);
    FIELD(kerf_train_options, threads);
    FIELD(kerf_train_options, optimization_level);
    FIELD(kerf_train_options, initialization);
    FIELD(kerf_train_options, initialization_seed);
    FIELD(kerf_train_options, training_mode);
    FIELD(kerf_train_options, data_names);
    FIELD(kerf_train_options, data);
    FIELD(kerf_train_options, n_data);
    FIELD(kerf_train_options, batches);
    FIELD(kerf_train_options, batches_user_data);
    FIELD(kerf_train_options, validation_names);
    FIELD(kerf_train_options, validation);
    FIELD(kerf_train_options, n_validation);
    FIELD(kerf_train_options, epochs);
    FIELD(kerf_train_options, max_steps);
    FIELD(kerf_train_options, batch_size);
    FIELD(kerf_train_options, shuffle);
    FIELD(kerf_train_options, seed);
    FIELD(kerf_train_options, patience);
    FIELD(kerf_train_options, restore_best);
    FIELD(kerf_train_options, checkpoint_path);
    FIELD(kerf_train_options, checkpoint_every);
    FIELD(kerf_train_options, resume_from);
    FIELD(kerf_train_options, progress);
    FIELD(kerf_train_options, progress_user_data);
    FIELD(kerf_train_options, keep_sparsity);
    FIELD(kerf_train_options, gradual_sparsity);
    FIELD(kerf_train_options, gradual_initial_sparsity);
    FIELD(kerf_train_options, gradual_start_step);
    FIELD(kerf_train_options, gradual_end_step);
    FIELD(kerf_train_options, gradual_every);
    FIELD(kerf_train_options, qat);
    FIELD(kerf_train_options, qat_range_momentum);
    FIELD(kerf_train_options, gradual_criterion);
    END_STRUCT(kerf_train_options);

    FIELD(kerf_distill_options, struct_size);
    FIELD(kerf_distill_options, output_loss);
    FIELD(kerf_distill_options, temperature);
    FIELD(kerf_distill_options, alpha);
    FIELD(kerf_distill_options, labels);
    FIELD(kerf_distill_options, student_values);
    FIELD(kerf_distill_options, teacher_values);
    FIELD(kerf_distill_options, n_values);
    FIELD(kerf_distill_options, teacher_threads);
    FIELD(kerf_distill_options, match_students);
    FIELD(kerf_distill_options, match_teachers);
    FIELD(kerf_distill_options, match_kinds);
    FIELD(kerf_distill_options, match_weights);
    FIELD(kerf_distill_options, n_matches);
    END_STRUCT(kerf_distill_options);

    FIELD(kerf_student_options, struct_size);
    FIELD(kerf_student_options, drop);
    FIELD(kerf_student_options, drop_indices);
    FIELD(kerf_student_options, n_drop_indices);
    FIELD(kerf_student_options, narrow);
    END_STRUCT(kerf_student_options);

    CONST(KERF_ABI_VERSION_MAJOR);
    CONST(KERF_ABI_VERSION_MINOR);
    CONST(KERF_ABI_VERSION);

    CONST(KERF_OK);
    CONST(KERF_INVALID_ARGUMENT);
    CONST(KERF_IO);
    CONST(KERF_INVALID_MODEL);
    CONST(KERF_UNSUPPORTED);
    CONST(KERF_SHAPE_MISMATCH);
    CONST(KERF_OUT_OF_MEMORY);
    CONST(KERF_CANCELLED);
    CONST(KERF_INTERNAL);

    CONST(KERF_DTYPE_UNDEFINED);
    CONST(KERF_DTYPE_FLOAT);
    CONST(KERF_DTYPE_UINT8);
    CONST(KERF_DTYPE_INT8);
    CONST(KERF_DTYPE_UINT16);
    CONST(KERF_DTYPE_INT16);
    CONST(KERF_DTYPE_INT32);
    CONST(KERF_DTYPE_INT64);
    CONST(KERF_DTYPE_STRING);
    CONST(KERF_DTYPE_BOOL);
    CONST(KERF_DTYPE_FLOAT16);
    CONST(KERF_DTYPE_DOUBLE);
    CONST(KERF_DTYPE_UINT32);
    CONST(KERF_DTYPE_UINT64);
    CONST(KERF_DTYPE_BFLOAT16);
    CONST(KERF_DTYPE_FLOAT8E4M3FN);
    CONST(KERF_DTYPE_FLOAT8E4M3FNUZ);
    CONST(KERF_DTYPE_FLOAT8E5M2);
    CONST(KERF_DTYPE_FLOAT8E5M2FNUZ);
    CONST(KERF_DTYPE_UINT4);
    CONST(KERF_DTYPE_INT4);
    CONST(KERF_DTYPE_FLOAT4E2M1);
    CONST(KERF_DTYPE_FLOAT8E8M0);
    CONST(KERF_DTYPE_UINT2);
    CONST(KERF_DTYPE_INT2);

    CONST(KERF_PRUNE_MAGNITUDE);
    CONST(KERF_PRUNE_N_OF_M);
    CONST(KERF_PRUNE_CHANNEL);
    CONST(KERF_PRUNE_SCOPE_LAYER);
    CONST(KERF_PRUNE_SCOPE_GLOBAL);
    CONST(KERF_CHANNEL_L1);
    CONST(KERF_CHANNEL_L2);
    CONST(KERF_CHANNEL_BN_GAMMA);

    CONST(KERF_QUANTIZE_DYNAMIC);
    CONST(KERF_QUANTIZE_STATIC);
    CONST(KERF_CALIBRATE_MINMAX);
    CONST(KERF_CALIBRATE_PERCENTILE);
    CONST(KERF_CALIBRATE_ENTROPY);
    CONST(KERF_ACTIVATION_UINT8);
    CONST(KERF_ACTIVATION_INT8);

    CONST(KERF_LOSS_CROSS_ENTROPY);
    CONST(KERF_LOSS_MSE);
    CONST(KERF_LOSS_L1);
    CONST(KERF_LOSS_HUBER);
    CONST(KERF_LOSS_BCE_WITH_LOGITS);
    CONST(KERF_DISTILL_KL);
    CONST(KERF_DISTILL_MSE);
    CONST(KERF_DISTILL_COSINE);
    CONST(KERF_MATCH_MSE);
    CONST(KERF_DROP_NONE);
    CONST(KERF_GRADUAL_MAGNITUDE);
    CONST(KERF_GRADUAL_MOVEMENT);
    CONST(KERF_DROP_EVERY_OTHER);
    CONST(KERF_DROP_INDICES);
    CONST(KERF_MATCH_COSINE);
    CONST(KERF_MATCH_ATTENTION);
    CONST(KERF_REDUCTION_MEAN);
    CONST(KERF_REDUCTION_SUM);
    CONST(KERF_OPTIMIZER_SGD);
    CONST(KERF_OPTIMIZER_ADAM);
    CONST(KERF_OPTIMIZER_ADAMW);
    CONST(KERF_SCHEDULE_CONSTANT);
    CONST(KERF_SCHEDULE_STEP);
    CONST(KERF_SCHEDULE_MULTI_STEP);
    CONST(KERF_SCHEDULE_EXPONENTIAL);
    CONST(KERF_SCHEDULE_COSINE);
    CONST(KERF_SCHEDULE_WARMUP_LINEAR);
    CONST(KERF_SCHEDULE_WARMUP_COSINE);
    CONST(KERF_SCHEDULE_ONE_CYCLE);
    CONST(KERF_INIT_NONE);
    CONST(KERF_INIT_KAIMING_UNIFORM);
    CONST(KERF_INIT_KAIMING_NORMAL);
    CONST(KERF_INIT_XAVIER_UNIFORM);
    CONST(KERF_INIT_XAVIER_NORMAL);
    return failures ? 1 : 0;
}
