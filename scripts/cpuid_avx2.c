/* LD_PRELOAD shim: the process sees this CPU without AVX-512, AVX-VNNI and AMX, as an AVX2 + FMA
 * processor such as AMD's Zen 3 would show itself. Linux's CPUID faulting (ARCH_SET_CPUID, CPU
 * flag cpuid_fault) makes each CPUID instruction raise SIGSEGV; the handler runs the real
 * instruction and answers with those feature bits cleared. Libraries that choose their kernels
 * from CPUID after the process starts (ONNX Runtime's MLAS, oneDNN, numpy) then run their AVX2
 * kernels: `make bench` measures ONNX Runtime this way next to Kerf capped at AVX2. The
 * instruction set is what changes, not the microarchitecture (caches, ports, clocks).
 *
 *     cc -O2 -shared -fPIC scripts/cpuid_avx2.c -o cpuid_avx2.so && LD_PRELOAD=./cpuid_avx2.so ... */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static long set_cpuid(unsigned long on) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, on); }

static void answer(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)info;
    ucontext_t *uc = context;
    greg_t *r = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)r[REG_RIP];
    if (ip[0] != 0x0f || ip[1] != 0xa2) { signal(SIGSEGV, SIG_DFL); return; } /* a real fault: it recurs, fatal */
    unsigned leaf = (unsigned)r[REG_RAX], sub = (unsigned)r[REG_RCX], a, b, c, d;
    set_cpuid(1);
    __cpuid_count(leaf, sub, a, b, c, d);
    set_cpuid(0);
    if (leaf == 7 && sub == 0) { /* AVX-512 (F DQ IFMA PF ER CD BW VL, VBMI VBMI2 VNNI BITALG VPOPCNTDQ, 4VNNIW 4FMAPS VP2INTERSECT FP16), AMX */
        b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
        c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) { /* AVX-VNNI, AVX512_BF16 */
        a &= ~((1u << 4) | (1u << 5));
    }
    r[REG_RAX] = a; r[REG_RBX] = b; r[REG_RCX] = c; r[REG_RDX] = d;
    r[REG_RIP] += 2;
}

__attribute__((constructor)) static void start(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = answer;
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &action, NULL);
    set_cpuid(0);
}
