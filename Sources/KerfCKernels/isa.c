/* CPU feature detection and the KERF_MAX_ISA cap; contracts in include/kerf_isa.h. */
#include "kerf_isa.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <oneapi/dnnl/dnnl.h>

static const char *const names[] = {"scalar", "avx2", "avx_vnni", "avx512", "avx512_vnni"};
static int cpu_features = -1;
static int level_in_use = KERF_ISA_SCALAR;
int kerf_isa_features = 0;

static int detect_features(void) {
    __builtin_cpu_init();
    int f = 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f |= KERF_HAS_AVX2;
    if ((f & KERF_HAS_AVX2) && __builtin_cpu_supports("avxvnni")) f |= KERF_HAS_AVX_VNNI;
    if ((f & KERF_HAS_AVX2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
        f |= KERF_HAS_AVX512;
        if (__builtin_cpu_supports("avx512vbmi")) f |= KERF_HAS_AVX512_VBMI;
        if (__builtin_cpu_supports("avx512vnni")) f |= KERF_HAS_AVX512_VNNI;
    }
    return f;
}

/* The features each level adds. */
static int features_up_to(int level) {
    static const int added[] = {0, KERF_HAS_AVX2, KERF_HAS_AVX_VNNI, KERF_HAS_AVX512 | KERF_HAS_AVX512_VBMI,
                                KERF_HAS_AVX512_VNNI};
    int f = 0;
    for (int l = 0; l <= level && l <= KERF_ISA_AVX512_VNNI; l++) f |= added[l];
    return f;
}

int kerf_isa_cpu_level(void) {
    if (cpu_features < 0) cpu_features = detect_features();
    if (cpu_features & KERF_HAS_AVX512_VNNI) return KERF_ISA_AVX512_VNNI;
    if (cpu_features & KERF_HAS_AVX512) return KERF_ISA_AVX512;
    if (cpu_features & KERF_HAS_AVX_VNNI) return KERF_ISA_AVX_VNNI;
    if (cpu_features & KERF_HAS_AVX2) return KERF_ISA_AVX2;
    return KERF_ISA_SCALAR;
}

int kerf_isa_level(void) { return level_in_use; }

void kerf_isa_set_cap(int level) {
    int cpu = kerf_isa_cpu_level();
    level_in_use = level < 0 || level > cpu ? cpu : level;
    kerf_isa_features = cpu_features & features_up_to(level_in_use);
}

const char *kerf_isa_name(int level) {
    return level >= 0 && level <= KERF_ISA_AVX512_VNNI ? names[level] : NULL;
}

/* Reads KERF_MAX_ISA once, before any kernel runs, and caps oneDNN the same way (it must be
 * told before it creates its first kernel). An unknown name is reported and ignored. */
__attribute__((constructor)) static void kerf_isa_init(void) {
    const char *cap = getenv("KERF_MAX_ISA");
    int level = -1;
    if (cap && *cap) {
        for (int l = 0; l <= KERF_ISA_AVX512_VNNI; l++)
            if (strcmp(cap, names[l]) == 0) level = l;
        if (level < 0)
            fprintf(stderr, "kerf: KERF_MAX_ISA=%s is not one of scalar, avx2, avx_vnni, avx512, avx512_vnni; ignored\n", cap);
    }
    kerf_isa_set_cap(level);
    if (level >= 0) {
        static const dnnl_cpu_isa_t onednn[] = {dnnl_cpu_isa_sse41, dnnl_cpu_isa_avx2, dnnl_cpu_isa_avx2_vnni,
                                                dnnl_cpu_isa_avx512_core, dnnl_cpu_isa_avx512_core_vnni};
        dnnl_set_max_cpu_isa(onednn[level_in_use]);
    }
}
