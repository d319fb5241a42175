/*
 * conn_backoff.c - reconnect delays: exponential, capped, with equal jitter.
 * Must never return a delay above the cap or below half the first delay.
 */
#include "conn_internal.h"

static uint64_t next_rand(pgcw__backoff *b)
{
    uint64_t x = b->rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return b->rng = x;
}

void pgcw__backoff_init(pgcw__backoff *b, int64_t min_us, int64_t max_us, uint64_t seed)
{
    b->min_us = min_us > 0 ? min_us : 1;
    b->max_us = max_us >= b->min_us ? max_us : b->min_us;
    b->base_us = b->min_us;
    b->rng = seed ? seed : 0x9e3779b97f4a7c15u;
}

int64_t pgcw__backoff_next(pgcw__backoff *b)
{
    int64_t base = b->base_us;
    int64_t delay = base / 2 + (int64_t)(next_rand(b) % (uint64_t)(base / 2 + 1));
    b->base_us = base > b->max_us / 2 ? b->max_us : base * 2;
    return delay;
}

void pgcw__backoff_reset(pgcw__backoff *b)
{
    b->base_us = b->min_us;
}
