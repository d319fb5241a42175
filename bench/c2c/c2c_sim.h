/*
 * c2c_sim.h - the coherence simulator's controls (c2c_sim.c) and the L1's line
 * names (c2c_l1.c), for bench_l1 built by bench/c2c/run.sh. Never installed.
 */
#ifndef PGCW_C2C_SIM_H
#define PGCW_C2C_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <pgcachewatch/l1.h>

/* Names the cache line at addr into buf: "class#detail" (totals are by class). */
typedef void (*c2c_classify_fn)(uintptr_t addr, char *buf, size_t n);

void c2c_cpu(int cpu); /* the CPU this thread's next accesses run on (0..3) */
void c2c_begin(void);  /* start counting afresh */
void c2c_end(void);
/* Prints totals per class, the top lines and the top instruction addresses. */
void c2c_report(FILE *f, uint64_t ops, c2c_classify_fn classify);

/* c2c_l1.c: names lines of cache c (set before the report) by what they hold. */
void c2c_l1_watch(pgcw_l1 *c);
void c2c_l1_name(uintptr_t addr, char *buf, size_t n);

#endif
