/*
 * core_time.h - clocks, deadlines and condition variables: the library's only
 * copies of each.
 *
 * Time is int64 microseconds. A deadline is an absolute CLOCK_MONOTONIC time, or
 * PGCW__NEVER. Every conversion from a caller's milliseconds saturates, so no
 * option value, however large, can overflow (a huge timeout means "never"); this
 * file must never compute `ms * 1000` or `now + x` any other way.
 */
#ifndef PGCW_CORE_TIME_H
#define PGCW_CORE_TIME_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* The deadline that never passes. */
#define PGCW__NEVER INT64_MAX

/* Microseconds on CLOCK_MONOTONIC / CLOCK_REALTIME. */
int64_t pgcw__mono_us(void);
int64_t pgcw__real_us(void);

/* Sleeps for us microseconds (restarts on EINTR). */
void pgcw__sleep_us(int64_t us);

/* ms * 1000, saturating at INT64_MAX (and at INT64_MIN for very negative ms). */
int64_t pgcw__ms_to_us(int64_t ms);

/* An option in milliseconds as microseconds: dflt_ms when ms == 0, ms otherwise
 * (saturating: a huge value stays huge, never wraps). Negative ms are the caller's
 * to interpret before calling. */
int64_t pgcw__ms_or(int64_t ms, int64_t dflt_ms);

/* from_us + us, saturating: PGCW__NEVER when us < 0, us == PGCW__NEVER or the sum
 * would overflow (a deadline counted from a past instant: the last answer, a ping
 * sent). */
int64_t pgcw__deadline_from(int64_t from_us, int64_t us);

/* pgcw__deadline_from(now, us). */
int64_t pgcw__deadline_in_us(int64_t us);

/* pgcw__deadline_in_us(ms * 1000): ms < 0 means never. */
int64_t pgcw__deadline_in_ms(int64_t ms);

/* Whole milliseconds left until the deadline, rounded up: 0 once it has passed,
 * -1 for PGCW__NEVER (poll(2)'s "no timeout"). */
int64_t pgcw__deadline_left_ms(int64_t deadline_us);

/* The earlier of two deadlines. */
static inline int64_t pgcw__deadline_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* A condition variable on CLOCK_MONOTONIC, as every timed wait here needs (the
 * realtime clock may jump). Returns 0 or an errno value. */
int pgcw__cond_init(pthread_cond_t *cv);

/* Waits on cv (mu held) until signalled or the deadline passes (PGCW__NEVER:
 * untimed). Returns false when the deadline has passed, true otherwise (a wakeup,
 * possibly spurious: re-check the condition). */
bool pgcw__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_us);

#endif
