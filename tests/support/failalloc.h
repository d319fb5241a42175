/*
 * failalloc.h - allocation failure on demand, for the allocation-failure tests
 * (tests/alloc/). Those programs are linked with -Wl,--wrap for malloc, calloc,
 * realloc and aligned_alloc, so every allocation the library makes (it is linked
 * statically) goes through failalloc.c; allocations inside libpq and json-c (shared
 * libraries) do not. Nothing else may call these functions: outside those programs
 * the wrappers do not exist and the link fails.
 *
 * FAILALLOC_TRACE=1 in the environment prints a backtrace of each failed
 * allocation to stderr (link with -rdynamic for names).
 *
 * Arming is per thread: only the calling thread's allocations count and fail, so a
 * test can fail the Nth allocation of one call while other threads run normally.
 */
#ifndef PGCW_TEST_FAILALLOC_H
#define PGCW_TEST_FAILALLOC_H

#include <stdbool.h>

/* From now on, on this thread: the nth allocation fails (1: the next one), and so
 * does every later one when `sticky`. nth == 0 disarms. Resets the count. */
void failalloc_arm(unsigned long nth, bool sticky);

/* Allocations counted on this thread since the last failalloc_arm(). */
unsigned long failalloc_count(void);

/* Whether an armed failure happened on this thread since the last arm. */
bool failalloc_fired(void);

#endif
