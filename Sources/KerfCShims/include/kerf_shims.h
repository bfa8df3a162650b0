#ifndef KERF_SHIMS_H
#define KERF_SHIMS_H
/* The public header, so that Swift uses its structs, enums and KERF_ABI_VERSION as they are
 * declared there (include/kerf.h is the one source of the C ABI). */
#include "../../../include/kerf.h"

/* Thread-local storage for kerf_last_error(), kept in C where _Thread_local is plain. */
void kerf_shim_set_error(const char *message);
void kerf_shim_clear_error(void);

/* KERF_ABI_VERSION (a macro expression Swift does not import). */
static inline uint32_t kerf_shim_abi_version(void) { return KERF_ABI_VERSION; }
#endif
