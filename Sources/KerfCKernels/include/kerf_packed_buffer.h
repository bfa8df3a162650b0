#ifndef KERF_PACKED_BUFFER_H
#define KERF_PACKED_BUFFER_H
/* Buffers for weights packed once and streamed on every run (free them with free()). */
#include <stddef.h>

/* `bytes` (> 0) 64-byte aligned; from 4 MiB on aligned to 2 MiB and marked for transparent
 * huge pages, so that a product streaming tens of MB of weights does not miss the TLB on every
 * 4 KB page (where the system grants huge pages only on request, as by default). NULL when
 * the allocation fails. */
void *kerf_packed_buffer_alloc(size_t bytes);
#endif
