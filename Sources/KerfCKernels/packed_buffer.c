/* Contract in include/kerf_packed_buffer.h. */
#include "kerf_packed_buffer.h"
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

void *kerf_packed_buffer_alloc(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    if (bytes == 0 || bytes > SIZE_MAX - huge) return NULL;
    if (bytes < 2 * huge) return aligned_alloc(64, (bytes + 63) / 64 * 64);
    size_t rounded = (bytes + huge - 1) / huge * huge;
    void *buffer = aligned_alloc(huge, rounded);
    if (buffer) (void)madvise(buffer, rounded, MADV_HUGEPAGE); /* a hint: refusal changes nothing */
    return buffer;
}
