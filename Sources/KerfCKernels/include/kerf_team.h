#ifndef KERF_TEAM_H
#define KERF_TEAM_H
/* Work split over the calling thread's OpenMP team: the threads oneDNN's primitives run on. */
#include <stddef.h>

/* Calls fn(context, task) once for every task in [0, tasks), on up to omp_get_max_threads()
 * threads of the calling thread's OpenMP team (task t on thread t mod threads); on the calling
 * thread alone when one thread is allowed or there is one task. Returns when all have run.
 * fn must be safe to call concurrently for different tasks. */
void kerf_team_run(size_t tasks, void (*fn)(void *context, size_t task), void *context);

/* Whether `parallelRanges` on the calling thread splits its work over the thread's OpenMP team
 * (1) or Kerf's worker pool (0, the default): a per-thread setting, returned by the setter as
 * it was before. */
int kerf_set_team_kernels(int on);
int kerf_team_kernels(void);
#endif
