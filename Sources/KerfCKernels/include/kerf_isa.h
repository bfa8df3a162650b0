#ifndef KERF_ISA_H
#define KERF_ISA_H
/* The instruction-set levels of Kerf's kernel variants, in order; each level includes the ones
 * below it. The level in use is the CPU's, capped by the environment variable KERF_MAX_ISA
 * (one of the names below, read once when the library loads; it caps oneDNN's kernels too).
 * A kernel family checks its feature with kerf_isa_has before running a vector variant and
 * otherwise runs the next lower one, down to the reference loops (level "scalar"). */

enum {
    KERF_ISA_SCALAR = 0,      /* reference loops only (Swift code itself is built for x86-64-v3) */
    KERF_ISA_AVX2 = 1,        /* AVX2 + FMA */
    KERF_ISA_AVX_VNNI = 2,    /* + AVX-VNNI (256-bit vpdpbusd) */
    KERF_ISA_AVX512 = 3,      /* + AVX-512 F, BW, VL (and VBMI where present) */
    KERF_ISA_AVX512_VNNI = 4, /* + AVX512-VNNI */
};

/* CPU features the kernels test, as bits of kerf_isa_features. */
enum {
    KERF_HAS_AVX2 = 1 << 0,        /* AVX2 and FMA */
    KERF_HAS_AVX_VNNI = 1 << 1,
    KERF_HAS_AVX512 = 1 << 2,      /* AVX-512 F, BW and VL */
    KERF_HAS_AVX512_VBMI = 1 << 3,
    KERF_HAS_AVX512_VNNI = 1 << 4,
};

/* The features usable at the level in use (the CPU's, less what the cap removes). */
extern int kerf_isa_features;

/* True when `feature` (a KERF_HAS_ bit) may be used. */
static inline int kerf_isa_has(int feature) { return (kerf_isa_features & feature) != 0; }

/* The highest level the CPU supports. */
int kerf_isa_cpu_level(void);

/* The level in use: min(CPU level, cap). */
int kerf_isa_level(void);

/* Caps Kerf's own kernels at `level` (clamped to the CPU's) for the rest of the process, or
 * lifts the cap with -1. oneDNN keeps the cap it got at load. Call only while no kernel runs:
 * tests use it to run every variant in one process. */
void kerf_isa_set_cap(int level);

/* "scalar", "avx2", "avx_vnni", "avx512", "avx512_vnni"; NULL for other levels. */
const char *kerf_isa_name(int level);
#endif
