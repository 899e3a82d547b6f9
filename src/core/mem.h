/* mem.h: the one out-of-memory policy of prefixlb.
 *
 * Every allocation goes through these wrappers. When the C library cannot
 * give memory they call the out-of-memory handler, which does not return:
 * the process reports it and aborts (Redis's zmalloc does the same). Why not
 * propagate ENOMEM everywhere: every buffer and index in prefixlb has a
 * configured ceiling (buf.h's max, the prefix index's cap, the server's
 * limits), so memory use is bounded by configuration, and a failed allocation
 * means the machine is out of memory for reasons we cannot repair; a router
 * that limped on with half-built state would leak leases or corrupt counters,
 * which is worse than a restart by its supervisor. Allocation sizes that come
 * from input are checked against their limits BEFORE allocating (413, 431,
 * "too many messages"), so a client cannot trigger this path. One exception,
 * by design: the simulated engine's KV cache arrays (sized by the operator's
 * --kv-capacity-tokens, up to ~800 MB) are allocated with a check, so a cache
 * too large for the machine is an error message at start-up, not an abort.
 *
 * The core does no I/O: the default handler only aborts; the commands install
 * one that prints "prefixlb: out of memory (N bytes)" first
 * (plb_set_oom_handler). Assertions that guard state which would otherwise be
 * corrupted stay on in release builds (PLB_ASSERT, like Redis's serverAssert). */
#ifndef PREFIXLB_MEM_H
#define PREFIXLB_MEM_H

#include <stddef.h>

void *plb_malloc(size_t n);
void *plb_calloc(size_t n, size_t size);
void *plb_realloc(void *p, size_t n);
char *plb_strdup(const char *s);
char *plb_strndup(const char *s, size_t n);
/* The handler gets the size that failed; it must not return. */
void plb_set_oom_handler(void (*handler)(size_t size));
/* Calls the assertion handler with file, line and expression; never returns. */
_Noreturn void plb_assert_fail(const char *expr, const char *file, int line);
void plb_set_assert_handler(void (*handler)(const char *expr, const char *file, int line));

#define PLB_ASSERT(e) ((e) ? (void)0 : plb_assert_fail(#e, __FILE__, __LINE__))

#endif
