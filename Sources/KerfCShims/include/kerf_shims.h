#ifndef KERF_SHIMS_H
#define KERF_SHIMS_H
/* Thread-local storage for kerf_last_error(), kept in C where _Thread_local is plain. */
void kerf_shim_set_error(const char *message);
void kerf_shim_clear_error(void);
#endif
