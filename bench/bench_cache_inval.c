/*
 * bench_cache_inval.c - invalidation delay: from a writer's commit in one process
 * to the eviction of the key from another process's L1, beside a bare libpq
 * LISTEN connection in that other process receiving the same notification.
 *
 * Two processes (a fork, before either has a thread or a connection):
 *   A, the writer: a pgcw_cache (disable_l1) that sets one key, --writes times,
 *      each when B says it is ready, after a random pause of --gap-us to 2x that
 *      (so B is idle, as a reader between requests is); it notes CLOCK_MONOTONIC
 *      before the set and after it returned (the commit acknowledged).
 *   B, the reader: a pgcw_cache with its L1, driven by a watcher of B's own (its
 *      own thread, as the cache's own watcher would be), holding the key; a sink
 *      added after the cache's own notes the time the cache's eviction has run;
 *      a bare LISTEN connection on a thread of its own notes when libpq hands it
 *      the same notification. Once both saw it, B's get must return the new value
 *      (never the old: a stale read fails the run), B refills its L1 and tells A.
 * CLOCK_MONOTONIC is one clock for every process of a machine, so A's and B's
 * times subtract. The commit lies between A's two times: "from the set's start" is
 * an upper bound of commit-to-eviction, "from the set's return" can be negative
 * (the notification can overtake the writer's own reply). Percentiles are
 * nearest-rank over the sorted samples. Pinned: both processes' threads on the
 * last CPU, the server on the first (run_cache.sh).
 */
#define _GNU_SOURCE

#include "cache_inval.h"

int main(int argc, char **argv)
{
    g_bench_prog = "bench_cache_inval";
    bench_cfg c = {.rounds = 1};
    long writes = 2000, warmup = 100, gap_us = 300;
    const char *mode = "trigger";
    const bench_opt opts[] = {
        {"notify-mode", "MODE",
         "how A's writes notify: trigger (default), after-commit, background, "
         "logical (both processes read the WAL; no bare LISTEN to compare)",
         .str = &mode},
        {"writes", "N", "measured writes (default 2000)", .l = &writes, .min = 1,
         .max = 1e6},
        {"warmup", "N", "leading writes not measured (default 100)", .l = &warmup,
         .min = 0, .max = 1e6},
        {"gap-us", "N", "pause before each write, N to 2N us (default 300)", .l = &gap_us,
         .min = 0, .max = 1e6},
    };
    bench_parse(argc, argv, &c, opts, 4);
    pgcw_cache_notify_mode nm = PGCW_CACHE_NOTIFY_TRIGGER;
    if (strcmp(mode, "after-commit") == 0)
        nm = PGCW_CACHE_NOTIFY_AFTER_COMMIT;
    else if (strcmp(mode, "background") == 0)
        nm = PGCW_CACHE_NOTIFY_BACKGROUND;
    else if (strcmp(mode, "logical") == 0)
        nm = PGCW_CACHE_NOTIFY_LOGICAL;
    else if (strcmp(mode, "trigger") != 0)
        bench_die("--notify-mode: trigger, after-commit, background or logical, not %s",
                  mode);
    if (c.quick) {
        writes = 50;
        warmup = 5;
    }
    bench_cpus_init();
    bench_pin_self(c.pin ? bench_client_cpu() : -1); /* both processes inherit it */

    pcts p[INV_N];
    inval_measure(&c, writes, warmup, gap_us, nm, p);

    bench_banner(&c, "invalidation delay: writer process A -> reader process B's L1");
    printf("%ld writes of one key (+%ld warmup), each %ld-%ld us after B is ready; us\n",
           writes, warmup, gap_us, 2 * gap_us);
    printf("%-52s %9s %9s %9s\n", "from -> to", "p50", "p99", "max");
    bool logical = nm == PGCW_CACHE_NOTIFY_LOGICAL;
    for (int i = 0; i < INV_N; i++) {
        if ((logical && strstr(k_inval_rows[i], "LISTEN")) ||
            (!logical && strstr(k_inval_rows[i], "(logical)")))
            printf("%-52s %9s %9s %9s\n", k_inval_rows[i], "n/a", "n/a", "n/a");
        else
            printf("%-52s %9.1f %9.1f %9.1f\n", k_inval_rows[i], p[i].p50, p[i].p99,
                   p[i].max);
    }
    /* The commit lies between the set's start and its return, nearer the return
     * (it is the server's last step before the reply): the verdict takes the
     * return, the start gives the upper bound. */
    if (logical)
        printf("reads right after the eviction that still saw the old row (the change "
               "arrived before it was visible; the new one was served once its second "
               "eviction came): %d of %ld. ",
               inval_stale_reads(), writes + warmup);
    if (!logical)
        printf("library/raw from the set's start: p50 %.2fx, p99 %.2fx. ",
               ratio(p[INV_START_EVICT].p50, p[INV_START_RAW].p50),
               ratio(p[INV_START_EVICT].p99, p[INV_START_RAW].p99));
    printf("target: p99 commit -> "
           "evicted < 2 ms: %.2f ms from the set's return, %s (upper bound, from its "
           "start: %.2f ms).\n\n",
           p[INV_RET_EVICT].p99 / 1e3, p[INV_RET_EVICT].p99 < 2000 ? "met" : "MISSED",
           p[INV_START_EVICT].p99 / 1e3);
    return 0;
}
