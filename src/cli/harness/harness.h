/*
 * harness.h - what the files of `pgcachewatch harness` share: the run's settings,
 * the memory shared by the parent and its forked client processes, and the entry
 * points of each concern.
 *
 *   cmd_harness.c      options, help, the throwaway server, forking, waiting
 *   harness_shm.c      the shared memory: commit checkpoints, per-client slots,
 *                      per-process results
 *   harness_check.c    the consistency checker: checkpoints, the sink that records
 *                      notifications, the invalidation delay
 *   harness_client.c   one process's clients: a pgcw_cache each, the workload
 *   harness_chaos.c    killing backends from an admin connection
 *   harness_report.c   the progress line, the text and JSON reports
 *   harness_hist.c     the latency histogram
 *
 * Uses the public API only. Clocks are CLOCK_MONOTONIC nanoseconds, comparable
 * between the processes of one machine.
 */
#ifndef PGCW_HARNESS_H
#define PGCW_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pgcachewatch/pgcachewatch.h>

#include "../cli.h"
#include "harness_hist.h"

/* --- settings ------------------------------------------------------------------- */

typedef struct hx_cfg {
    int writers, readers, processes;
    int keys;
    size_t value_size;
    int64_t ttl_ms;          /* of every write */
    double read_ratio;       /* of a writer's operations, the reads */
    double gos_ratio;        /* of the reads, get_or_set */
    double delete_ratio;     /* of the writes, deletes */
    double zipf;             /* 0: uniform keys */
    int64_t duration_ms;     /* 0 with ops */
    long long ops;           /* per client; 0: run for duration_ms */
    int64_t bound_ms;        /* the invalidation bound, from a write's return */
    int64_t notify_bound_ms; /* ... from the notification in the reading client */
    int64_t l1_ttl_ms;       /* with disable_notify */
    bool disable_notify;
    pgcw_cache_notify_mode notify_mode;
    size_t pool_size;
    int client_nice; /* niceness of the client threads (0: unchanged) */
    bool chaos;
    int64_t chaos_interval_ms;
    bool json;
    bool progress; /* a live line on stdout: a terminal and no --json */
    unsigned long long seed;
    const char *prefix;
    const char *channel;
    long long inject_stale; /* test builds: reader 0's stale read after this many
                             * reads (0: none) */
    char app_tag[32];       /* application_name prefix of this run's sessions */
} hx_cfg;

/* The staleness bound of the commit check (ns): the invalidation bound, plus the
 * L1 TTL when notifications are off. */
int64_t hx_commit_bound_ns(const hx_cfg *cfg);

/* Operation kinds, each with its own latency histogram. */
enum { HX_GET_HIT, HX_GET_MISS, HX_SET, HX_DELETE, HX_GOS, HX_N_OPS };
extern const char *const hx_op_names[HX_N_OPS];

/* --- checkpoints (harness_check.c) ---------------------------------------------- */

/*
 * "By time t, version v of the key had been committed (or notified)", kept in a
 * ring of HX_CKPTS checkpoints each spanning at most `spacing` ns from its creation:
 * a newer version within a checkpoint's span raises it (and its time), otherwise a
 * new checkpoint begins. hx_ckpt_query(T) gives the largest version of a checkpoint
 * whose time is <= T: every version recorded at or before T - spacing counts, and
 * none recorded after T does.
 *
 * Readers take no lock: a sequence counter (a seqlock) guards each structure, the
 * fields are atomics. One writer at a time (the caller serializes writers): a lock
 * readers had to take would let a spinning reader starve the watcher's sink.
 */
#define HX_CKPTS 8
typedef struct hx_ckpts {
    _Atomic uint32_t head; /* index of the newest checkpoint */
    _Atomic uint32_t used;
    struct {
        _Atomic int64_t version, created, t;
    } c[HX_CKPTS];
} hx_ckpts;

/* The writer's side, inside hx_seq_write_begin/_end. */
void hx_ckpt_record(hx_ckpts *k, int64_t version, int64_t now, int64_t spacing);
/* The largest version recorded by time t, and when it was (0, 0 when none);
 * inside a hx_seq_read loop. */
int64_t hx_ckpt_query(const hx_ckpts *k, int64_t t, int64_t *when);

/* hx_ckpt_query() under the seqlock seq guards k with. */
int64_t hx_ckpt_read(const _Atomic uint32_t *seq, const hx_ckpts *k, int64_t t,
                     int64_t *when);

/* The seqlock: writers make the counter odd while they write. */
void hx_seq_write_begin(_Atomic uint32_t *seq);
void hx_seq_write_end(_Atomic uint32_t *seq);
uint32_t hx_seq_read_begin(const _Atomic uint32_t *seq);
/* True when what was read since begin must be read again. */
bool hx_seq_read_retry(const _Atomic uint32_t *seq, uint32_t begin);

/* --- shared memory (harness_shm.c) ---------------------------------------------- */

/* One committed write, for the invalidation delay and the value cross-check. */
typedef struct hx_commit {
    int64_t version;
    int64_t t_start; /* the write call's start */
    int64_t t_ret;   /* its return */
    int32_t client;
    uint32_t seq;
} hx_commit;

#define HX_COMMIT_RING 32

/* Per key: when each version was committed. Writers (in any process) serialize on
 * mu; readers only follow seq. */
typedef struct hx_key {
    pthread_mutex_t mu; /* process-shared */
    _Atomic uint32_t seq;
    hx_ckpts committed; /* checkpoints of the writes' returns */
    _Atomic uint32_t next;
    struct {
        _Atomic int64_t version, t_start, t_ret;
        _Atomic int32_t client;
        _Atomic uint32_t seq;
    } ring[HX_COMMIT_RING];
} hx_key;

/* Per client: progress counters and the chaos bookkeeping. */
typedef struct hx_client_slot {
    _Atomic uint64_t ops, errors, violations;
    _Atomic int ready; /* 1 set up, -1 failed */
    /* Set by the chaos thread once it terminated this client's backend (time last,
     * with release); cleared by the client when it has recovered. */
    _Atomic int watch_kill_pid;
    _Atomic int64_t watch_kill_t;
    _Atomic int64_t pool_kill_t;
} hx_client_slot;

typedef struct hx_violation {
    int client;
    int key;
    char kind[16];      /* "backwards", "committed", "notified", "value" */
    int64_t got, want;  /* versions */
    int64_t t_read;     /* ns since the run began: the read's start */
    int64_t t_want;     /* ... when `want` was committed / notified */
    int64_t t_got_done; /* ... the read's return */
} hx_violation;

#define HX_SAMPLES 8

/* One recovery from a chaos kill. */
typedef struct hx_recovery {
    int client;
    bool watcher;      /* else the pool */
    int64_t killed_at; /* ns since the run began */
    int64_t took;      /* ns */
} hx_recovery;

#define HX_RECOVERIES 256

/* What one client process found, written by it once its clients are done. */
typedef struct hx_result {
    hx_hist lat[HX_N_OPS];
    hx_hist delay;     /* writer's call start -> notification in another client */
    hx_hist rec_watch; /* kill -> that client's watcher healthy on a new backend */
    hx_hist rec_pool;  /* kill -> that client's next successful call */
    uint64_t errors[HX_N_OPS];
    uint64_t gets_checked, gos_values, loads;
    uint64_t violations;
    uint64_t delay_unmatched, unrecovered;
    pgcw_cache_stats cache; /* summed over the process's clients */
    int n_samples;
    hx_violation samples[HX_SAMPLES];
    int n_recoveries; /* the first HX_RECOVERIES, each */
    hx_recovery recoveries[HX_RECOVERIES];
    char first_error[512];
    int done;        /* 1 once written */
    char fatal[512]; /* set-up failure */
} hx_result;

typedef struct hx_shm {
    _Atomic int phase;    /* HX_PHASE_* */
    _Atomic int64_t t0;   /* the run's start (monotonic ns), before phase RUN */
    _Atomic int finished; /* clients done with their operation count */
    _Atomic uint64_t kills_watch, kills_pool;
    int keys, clients, processes;
    hx_key *key;          /* [keys] */
    hx_client_slot *slot; /* [clients] */
    hx_result *result;    /* [processes] */
    size_t size;
} hx_shm;

enum { HX_PHASE_SETUP, HX_PHASE_RUN, HX_PHASE_STOP };

/* Maps the shared memory (before fork); NULL after printing why. */
hx_shm *hx_shm_new(const hx_cfg *cfg);
void hx_shm_free(hx_shm *s);

/* A committed write of key: checkpoints and ring, under the key's lock. */
void hx_shm_commit(hx_shm *s, int key, const hx_commit *c, int64_t spacing);
/* The largest version committed by time t (when: its time). */
int64_t hx_shm_committed_by(hx_shm *s, int key, int64_t t, int64_t *when);
/* Looks a version of key up in the ring: true with *out filled when found. */
bool hx_shm_find(hx_shm *s, int key, int64_t version, hx_commit *out);

int64_t hx_now_ns(void);
void hx_sleep_ms(long ms);
/* xorshift64*: the next number of the generator in *state (never 0). */
uint64_t hx_rand(uint64_t *state);
/* Client ids: writers 0..writers-1, then readers; processes take them round
 * robin. */
bool hx_is_writer(const hx_cfg *cfg, int client);
int hx_process_of(const hx_cfg *cfg, int client);

/* --- client processes (harness_client.c) ---------------------------------------- */

/* The body of forked process `proc`: sets up its clients, waits for the run,
 * runs them, writes its result. Returns the exit status for _exit(). */
int hx_process_main(const hx_cfg *cfg, const cli_conn_opts *conn, hx_shm *shm, int proc);

/* --- chaos (harness_chaos.c) ---------------------------------------------------- */

typedef struct hx_chaos hx_chaos;
/* Starts the thread that kills backends while the run lasts; NULL after printing
 * why. */
hx_chaos *hx_chaos_start(const hx_cfg *cfg, const cli_conn_opts *conn, hx_shm *shm);
/* Stops killing (the run is about to end); joins the thread. */
void hx_chaos_stop(hx_chaos *ch, uint64_t *kill_errors);

/* --- reports (harness_report.c) ------------------------------------------------- */

/* The merged outcome of a run. */
typedef struct hx_summary {
    hx_result all;  /* every process's result merged */
    int64_t run_ns; /* from the start to the stop */
    uint64_t ops;   /* all calls */
    uint64_t kills_watch, kills_pool, kill_errors;
    const char *server; /* "throwaway" or "given" */
} hx_summary;

void hx_summary_merge(hx_summary *sum, const hx_shm *shm);
/* Prints the report (text, or one JSON object) on stdout. */
void hx_report_print(const hx_cfg *cfg, const hx_summary *sum);
/* The progress line, redrawn in place (terminal only). */
void hx_report_progress(const hx_cfg *cfg, const hx_shm *shm, int64_t elapsed_ns,
                        bool final);

#endif
