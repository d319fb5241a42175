/*
 * failalloc.c - the --wrap'd allocators of the allocation-failure tests
 * (failalloc.h). Linked only into programs built with the wrap options: the
 * __real_ symbols exist nowhere else.
 */
#include "failalloc.h"

#include <errno.h>
#include <execinfo.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);

static _Thread_local unsigned long fail_at, counted;
static _Thread_local bool fail_sticky, fired;

void failalloc_arm(unsigned long nth, bool sticky)
{
    fail_at = nth;
    fail_sticky = sticky;
    counted = 0;
    fired = false;
}

unsigned long failalloc_count(void)
{
    return counted;
}

bool failalloc_fired(void)
{
    return fired;
}

/* Whether this allocation is the one (or one of those) that must fail. */
static bool must_fail(void)
{
    counted++;
    if (fail_at == 0 || counted < fail_at || (counted > fail_at && !fail_sticky))
        return false;
    fired = true;
    errno = ENOMEM;
    if (getenv("FAILALLOC_TRACE")) { /* where the failed allocation was made */
        void *frames[32];
        int n = backtrace(frames, 32);
        backtrace_symbols_fd(frames, n, STDERR_FILENO);
        (void)!write(STDERR_FILENO, "--\n", 3);
    }
    return true;
}

void *__wrap_malloc(size_t n)
{
    return must_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return must_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return must_fail() ? NULL : __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    return must_fail() ? NULL : __real_aligned_alloc(align, n);
}
