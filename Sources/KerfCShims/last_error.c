#include <stdlib.h>
#include <string.h>
#include "kerf_shims.h"

static _Thread_local char *last_error = NULL;

void kerf_shim_set_error(const char *message) {
    free(last_error);
    last_error = message ? strdup(message) : NULL;
}

void kerf_shim_clear_error(void) { kerf_shim_set_error(NULL); }

/* Exported as part of the public API (declared in include/kerf.h). */
const char *kerf_last_error(void) { return last_error ? last_error : ""; }
