#include <oneapi/dnnl/dnnl.h>
// OpenMP thread control for oneDNN's GEMM (libdnnl is built with the GNU OpenMP runtime).
extern void omp_set_num_threads(int);
extern int omp_get_max_threads(void);
