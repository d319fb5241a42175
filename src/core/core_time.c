/*
 * core_time.c - clocks, saturating deadline arithmetic and monotonic condition
 * variables (core_time.h). Must never overflow: every sum and product here
 * saturates.
 */
#define _POSIX_C_SOURCE 200809L
#include "core_time.h"

#include <errno.h>
#include <time.h>

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t pgcw__mono_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

int64_t pgcw__real_us(void)
{
    return clock_us(CLOCK_REALTIME);
}

void pgcw__sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000),
                          .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int64_t pgcw__ms_to_us(int64_t ms)
{
    int64_t us;
    if (__builtin_mul_overflow(ms, 1000, &us))
        return ms < 0 ? INT64_MIN : INT64_MAX;
    return us;
}

int64_t pgcw__ms_or(int64_t ms, int64_t dflt_ms)
{
    return pgcw__ms_to_us(ms != 0 ? ms : dflt_ms);
}

int64_t pgcw__deadline_from(int64_t from_us, int64_t us)
{
    if (us < 0 || us == PGCW__NEVER)
        return PGCW__NEVER;
    int64_t d;
    if (__builtin_add_overflow(from_us, us, &d))
        return PGCW__NEVER;
    return d;
}

int64_t pgcw__deadline_in_us(int64_t us)
{
    return pgcw__deadline_from(pgcw__mono_us(), us);
}

int64_t pgcw__deadline_in_ms(int64_t ms)
{
    return ms < 0 ? PGCW__NEVER : pgcw__deadline_in_us(pgcw__ms_to_us(ms));
}

int64_t pgcw__deadline_left_ms(int64_t deadline_us)
{
    if (deadline_us == PGCW__NEVER)
        return -1;
    int64_t left = deadline_us - pgcw__mono_us();
    return left <= 0 ? 0 : left / 1000 + (left % 1000 != 0);
}

int pgcw__cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

bool pgcw__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_us)
{
    if (deadline_us == PGCW__NEVER) {
        pthread_cond_wait(cv, mu);
        return true;
    }
    if (deadline_us <= pgcw__mono_us())
        return false;
    struct timespec ts = {.tv_sec = (time_t)(deadline_us / 1000000),
                          .tv_nsec = (long)(deadline_us % 1000000) * 1000};
    return pthread_cond_timedwait(cv, mu, &ts) != ETIMEDOUT;
}
