/* Contract in include/kerf_team.h. */
#include "kerf_team.h"

/* libgomp, the OpenMP runtime oneDNN runs on (linked through CDNNL). */
extern void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
extern int omp_get_thread_num(void);
extern int omp_get_num_threads(void);
extern int omp_get_max_threads(void);

typedef struct {
    size_t tasks;
    void (*fn)(void *, size_t);
    void *context;
} team_job;

static void team_share(void *data) {
    const team_job *j = data;
    size_t n = (size_t)omp_get_num_threads();
    for (size_t t = (size_t)omp_get_thread_num(); t < j->tasks; t += n) j->fn(j->context, t);
}

void kerf_team_run(size_t tasks, void (*fn)(void *, size_t), void *context) {
    size_t threads = (size_t)omp_get_max_threads();
    if (threads > tasks) threads = tasks;
    if (threads <= 1) {
        for (size_t t = 0; t < tasks; t++) fn(context, t);
        return;
    }
    team_job job = {tasks, fn, context};
    GOMP_parallel(team_share, &job, (unsigned)threads, 0);
}

static _Thread_local int team_kernels;

int kerf_set_team_kernels(int on) {
    int previous = team_kernels;
    team_kernels = on;
    return previous;
}

int kerf_team_kernels(void) { return team_kernels; }
