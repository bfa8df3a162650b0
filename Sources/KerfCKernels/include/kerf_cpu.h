#ifndef KERF_CPU_H
#define KERF_CPU_H
/* A spin-wait hint (x86 `pause`): lets the other hyperthread run and saves power while a
 * thread polls for work. */
static inline void kerf_cpu_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
#endif
