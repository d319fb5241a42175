/*
 * cmd_harness.c - `pgcachewatch harness`: many cache clients (threads in several
 * forked processes, each client a pgcw_cache of its own), writers and readers on
 * a small keyspace, every read checked for staleness as it returns, latencies in
 * histograms, optionally with backends killed under the load (--chaos).
 *
 * This file: options and help, the throwaway server when no connection setting
 * is given (tests/pg/pgserver.sh, the helper the demo uses), the schema, forking
 * the client processes before any thread exists, the run's clock, waiting, the
 * exit status. The rest is in harness/ (harness.h lists it).
 *
 * Must never leave a server it started running, nor a child process behind: both
 * are stopped by pid on every path.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/wait.h>

#include "cli.h"
#include "harness/harness.h"

#define EXIT_VIOLATIONS 3
#define READY_WAIT_NS (120 * 1000000000LL)
#define CHILD_WAIT_NS (60 * 1000000000LL)

#ifndef PGCW_CLI_PGSERVER
#define PGCW_CLI_PGSERVER "pgserver.sh"
#endif

enum {
    OPT_WRITERS = CLI_OPT_FIRST_COMMAND,
    OPT_READERS,
    OPT_PROCESSES,
    OPT_KEYS,
    OPT_VALUE_SIZE,
    OPT_TTL,
    OPT_READ_RATIO,
    OPT_GOS_RATIO,
    OPT_DELETE_RATIO,
    OPT_ZIPF,
    OPT_DURATION,
    OPT_OPS,
    OPT_BOUND,
    OPT_NOTIFY_BOUND,
    OPT_DISABLE_NOTIFY,
    OPT_L1_TTL,
    OPT_NOTIFY_MODE,
    OPT_POOL_SIZE,
    OPT_CLIENT_NICE,
    OPT_CHAOS,
    OPT_CHAOS_INTERVAL,
    OPT_JSON,
    OPT_SEED,
    OPT_PREFIX,
    OPT_CHANNEL,
    OPT_INJECT_STALE
};

static const char harness_help[] =
    "Usage: " CLI_PROG " harness [OPTIONS]\n"
    "\n"
    "A load and consistency harness for the cache. Starts many cache clients, each a\n"
    "full client with its own pool, watcher and L1: threads in several forked\n"
    "processes, writers (set, delete, and reads of their own) and readers (get,\n"
    "get_or_set). Every value carries its writer's id and sequence number; every\n"
    "get is checked as it returns against the row versions committed and notified\n"
    "(docs/harness.md says exactly what is checked). Prints throughput, latency\n"
    "percentiles per operation from merged histograms, the hit rate, loader\n"
    "executions, the invalidation delay and, with --chaos, each recovery.\n"
    "Empties and uses the cache table of its own prefix (init_db first). Without\n"
    "any connection setting (none of the connection options below, none of PGDSN,\n"
    "PGHOST, PGPORT, PGDATABASE, PGSERVICE set) it starts a throwaway PostgreSQL\n"
    "in a temporary directory and stops it at the end.\n"
    "\n";

/* Two strings: C99 promises string literals of 4095 bytes only. */
static const char harness_options_help[] =
    "Options:\n"
    "      --writers N             writer clients (default 16)\n"
    "      --readers N             reader clients (default 32)\n"
    "      --processes N           processes the clients are spread over, round\n"
    "                              robin (default 4; at most the number of clients)\n"
    "      --keys N                keyspace size, keys k0..k<N-1> (default 64)\n"
    "      --value-size BYTES      bytes per value, 32 to 1048576 (default 128)\n"
    "      --ttl SECONDS           TTL of every write (default 30)\n"
    "      --read-ratio R          share of a writer's operations that are reads,\n"
    "                              0 to 1 (default 0.2); readers only read\n"
    "      --get-or-set-ratio R    share of reads that are get_or_set (default 0.1)\n"
    "      --delete-ratio R        share of writes that are deletes (default 0.05)\n"
    "      --zipf S                Zipf-distributed keys with exponent S > 0 (k0 the\n"
    "                              hottest); 0: uniform (default 0)\n"
    "      --duration SECONDS      how long the load runs (default 10)\n"
    "      --ops N                 instead: every client stops after N operations\n"
    "      --inval-bound MS        the invalidation bound: a get that returns a\n"
    "                              version older than one whose set had returned\n"
    "                              more than MS before the get began is a violation,\n"
    "                              certain to be flagged once it is 1.25 x MS late\n"
    "                              (default 5000: delivery on a loaded machine)\n"
    "      --notify-bound MS       the same, counted from the moment the reading\n"
    "                              client's watcher delivered the newer version\n"
    "                              (default 0: any get that begins after it)\n"
    "      --disable-notify        no LISTEN connections: L1 copies live under\n"
    "                              --l1-ttl alone, and the commit bound is\n"
    "                              --inval-bound + --l1-ttl\n"
    "      --l1-ttl MS             the L1 TTL with --disable-notify (default 250)\n"
    "      --notify-mode MODE      trigger (default), after-commit, background or\n"
    "                              logical: how writes notify (cache.h, \"Write\n"
    "                              path\"); logical makes the table LOGGED (default\n"
    "                              prefix harness_logical_), gives every client a\n"
    "                              replication connection and a temporary slot (the\n"
    "                              server needs wal_level=logical and that many\n"
    "                              slots and WAL senders) and has no --notify-bound\n"
    "                              check (its events carry no version)\n"
    "      --pool-size N           connections per client's pool (default 1)\n"
    "      --client-nice N         niceness of the threads that issue the calls,\n"
    "                              0 to 19 (default 10): the watchers' threads and\n"
    "                              the server keep theirs, so spinning clients do\n"
    "                              not delay the notifications they measure\n"
    "      --chaos                 terminate the clients' watcher and pool backends\n"
    "                              at random moments while the load runs (not in\n"
    "                              the last second), and report each recovery\n"
    "      --chaos-interval MS     mean time between kills (default 300)\n"
    "      --json                  print the report as one JSON object\n"
    "      --seed N                random seed (default: from the clock; printed)\n"
    "      --schema-prefix PREFIX  the cache's prefix (default harness_)\n"
    "      --channel-name NAME     its notification channel (default\n"
    "                              harness_events)\n"
    "  -h, --help                  show this help and exit\n"
    "\n"
    "A live progress line is drawn when stdout is a terminal (never with --json).\n"
    "\n";

static const char harness_exit_help[] =
    "\n"
    "Exit status: 0 no violation, 1 runtime error (set-up failed, a client process\n"
    "died), 2 usage error, 3 violations found (each printed on stderr: client, key,\n"
    "versions, times).\n";

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static bool parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_ratio(const char *s, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= 0.0 && v <= 1.0))
        return false;
    *out = v;
    return true;
}

/* --- the throwaway server --------------------------------------------------------- */

typedef struct server {
    char state[512];
    char dsn[1100];
    bool started;
} server;

static int run_script(const char *verb, const char *state, bool quiet)
{
    const char *script = getenv("PGCW_PGSERVER");
    if (!script || !*script)
        script = PGCW_CLI_PGSERVER;
    char ppid[16];
    snprintf(ppid, sizeof ppid, "%d", (int)getpid());
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (quiet) {
            FILE *f = freopen("/dev/null", "w", stdout);
            (void)f;
        }
        if (strcmp(verb, "start") == 0)
            execlp("bash", "bash", script, verb, state, ppid, (char *)NULL);
        else
            execlp("bash", "bash", script, verb, state, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static bool server_start(server *s, const char *cmd)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(s->state, sizeof s->state, "%s/pgcw-harness.XXXXXX",
             tmp && *tmp && strlen(tmp) < 400 ? tmp : "/tmp");
    int fd = mkstemp(s->state);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot create a state file: %s\n", cmd, strerror(errno));
        return false;
    }
    close(fd);
    int rc = run_script("start", s->state, true);
    if (rc != 0) {
        fprintf(stderr, "%s: the throwaway PostgreSQL did not start (%s exited %d)\n",
                cmd, PGCW_CLI_PGSERVER, rc);
        unlink(s->state);
        return false;
    }
    s->started = true;
    FILE *f = fopen(s->state, "r");
    char line[1100];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "dsn=", 4) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(s->dsn, sizeof s->dsn, "%s", line + 4);
        }
    if (f)
        fclose(f);
    if (!s->dsn[0]) {
        fprintf(stderr, "%s: the throwaway PostgreSQL left no DSN in %s\n", cmd,
                s->state);
        return false;
    }
    return true;
}

static void server_stop(server *s)
{
    if (s->started)
        (void)run_script("stop", s->state, true);
    s->started = false;
}

static bool conn_given(const cli_conn_opts *c)
{
    if (c->dsn || c->host || c->port || c->user || c->database || c->password)
        return true;
    static const char *const env[] = {"PGDSN", "PGHOST", "PGPORT", "PGDATABASE",
                                      "PGSERVICE"};
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++)
        if (getenv(env[i]) && *getenv(env[i]))
            return true;
    return false;
}

/* --- the schema ------------------------------------------------------------------- */

static bool prepare_schema(const char *cmd, const hx_cfg *cfg, const cli_conn_opts *conn)
{
    cli_conn_settings s;
    cli_conn_settings_init(&s, conn);
    pgcw_cache_opts co = {0};
    co.schema_prefix = cfg->prefix;
    co.notify_channel = cfg->channel;
    if (cfg->notify_mode == PGCW_CACHE_NOTIFY_LOGICAL) { /* and its publication */
        co.notify_mode = PGCW_CACHE_NOTIFY_LOGICAL;
        co.durability = PGCW_CACHE_LOGGED;
    }
    char *err = NULL;
    pgcw_status st = pgcw_cache_init_db(&co, &s.opts, NULL, &err);
    if (st != PGCW_OK) {
        fprintf(stderr, "%s: init_db: %s\n", cmd, err ? err : pgcw_strerror(st));
        pgcw_free(err);
        return false;
    }
    pgcw_conn *admin = cli_connect(cmd, conn);
    if (!admin)
        return false;
    /* The prefix was accepted by init_db: letters, digits and '_', folded as the
     * library folds it. */
    char sql[160];
    int n = snprintf(sql, sizeof sql, "TRUNCATE ");
    for (const char *p = cfg->prefix; *p && n < 100; p++)
        sql[n++] = (char)tolower((unsigned char)*p);
    snprintf(sql + n, sizeof sql - (size_t)n, "cache_entries");
    PGresult *r = PQexec(pgcw_conn_pg(admin), sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "%s: emptying the cache table: %s", cmd, PQresultErrorMessage(r));
    PQclear(r);
    pgcw_conn_free(admin);
    return ok;
}

/* --- the run ---------------------------------------------------------------------- */

typedef struct run {
    pid_t *pids;
    int n;
} run;

/* True when a child ended (reaped; its pid zeroed), which before the run is over
 * means it failed: says how on stderr (a child that exits 1 has put its reason in
 * the shared result, printed at the end). */
static bool child_ended(run *r, const char *cmd)
{
    bool ended = false;
    for (int i = 0; i < r->n; i++) {
        int status;
        if (r->pids[i] > 0 && waitpid(r->pids[i], &status, WNOHANG) == r->pids[i]) {
            if (WIFSIGNALED(status))
                fprintf(stderr, "%s: client process %d was killed by signal %d\n", cmd,
                        (int)r->pids[i], WTERMSIG(status));
            else if (WEXITSTATUS(status) == 0)
                fprintf(stderr, "%s: client process %d ended before the run did\n", cmd,
                        (int)r->pids[i]);
            r->pids[i] = 0;
            ended = true;
        }
    }
    return ended;
}

/* Waits for every child, killing those still there after the deadline. True when
 * each exited 0. */
static bool children_wait(run *r, const char *cmd)
{
    bool ok = true;
    int64_t deadline = hx_now_ns() + CHILD_WAIT_NS;
    for (int i = 0; i < r->n; i++) {
        if (r->pids[i] <= 0)
            continue;
        int status = 0;
        for (;;) {
            pid_t w = waitpid(r->pids[i], &status, WNOHANG);
            if (w == r->pids[i])
                break;
            if (hx_now_ns() > deadline) {
                fprintf(stderr, "%s: client process %d did not end; killed\n", cmd,
                        (int)r->pids[i]);
                kill(r->pids[i], SIGKILL);
                waitpid(r->pids[i], &status, 0);
                ok = false;
                break;
            }
            hx_sleep_ms(5);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            ok = false;
        r->pids[i] = 0;
    }
    return ok;
}

/* Forks the processes, runs the load, reports. Returns the exit status. */
static int run_harness(const char *cmd, hx_cfg *cfg, const cli_conn_opts *conn,
                       const char *server_kind)
{
    hx_shm *shm = hx_shm_new(cfg);
    if (!shm)
        return CLI_EXIT_RUNTIME;
    run r = {calloc((size_t)cfg->processes, sizeof(pid_t)), 0};
    if (!r.pids) {
        hx_shm_free(shm);
        return cli_runtime_error(cmd, "out of memory");
    }
    fflush(stdout);
    fflush(stderr);
    /* Before any thread exists in this process: the children start their own. */
    for (int p = 0; p < cfg->processes; p++) {
        pid_t pid = fork();
        if (pid == 0) {
            signal(SIGINT, SIG_IGN); /* the parent decides when to stop */
            int rc = hx_process_main(cfg, conn, shm, p);
            exit(rc); /* exit, not _exit: leak checkers run in the children too */
        }
        if (pid < 0) {
            fprintf(stderr, "%s: fork: %s\n", cmd, strerror(errno));
            break;
        }
        r.pids[r.n++] = pid;
    }
    int rc = CLI_EXIT_OK;
    bool failed = r.n < cfg->processes;
    /* Every client connected and healthy, or one failed. */
    int64_t deadline = hx_now_ns() + READY_WAIT_NS;
    while (!failed) {
        int ready = 0;
        for (int i = 0; i < shm->clients; i++) {
            int x = atomic_load(&shm->slot[i].ready);
            ready += x == 1;
            failed |= x < 0;
        }
        if (ready == shm->clients)
            break;
        bool ended = !failed && child_ended(&r, cmd);
        bool late = !failed && !ended && !interrupted && hx_now_ns() > deadline;
        if (late)
            fprintf(stderr, "%s: %d of %d clients were ready after %lld s\n", cmd, ready,
                    shm->clients, READY_WAIT_NS / 1000000000LL);
        if (failed || ended || interrupted || late) {
            failed = true;
            break;
        }
        hx_sleep_ms(5);
    }
    hx_summary sum;
    memset(&sum, 0, sizeof sum);
    sum.server = server_kind;
    hx_chaos *chaos = NULL;
    int64_t t0 = hx_now_ns();
    if (!failed) {
        atomic_store(&shm->t0, t0);
        atomic_store(&shm->phase, HX_PHASE_RUN);
        if (cfg->chaos && !(chaos = hx_chaos_start(cfg, conn, shm)))
            failed = true;
    }
    int64_t end = t0 + cfg->duration_ms * 1000000;
    int64_t margin = cfg->duration_ms / 3 < 1000 ? cfg->duration_ms / 3 : 1000;
    int64_t chaos_end = end - margin * 1000000;
    int64_t next_progress = t0;
    while (!failed && !interrupted) {
        int64_t now = hx_now_ns();
        if (cfg->ops > 0 ? atomic_load(&shm->finished) >= shm->clients : now >= end)
            break;
        if (chaos && cfg->ops == 0 && now >= chaos_end) {
            hx_chaos_stop(chaos, &sum.kill_errors);
            chaos = NULL;
        }
        if (child_ended(&r, cmd)) {
            failed = true;
            break;
        }
        if (now >= next_progress) {
            hx_report_progress(cfg, shm, now - t0, false);
            next_progress = now + 250000000;
        }
        hx_sleep_ms(10);
    }
    sum.run_ns = hx_now_ns() - t0;
    atomic_store(&shm->phase, HX_PHASE_STOP);
    if (chaos)
        hx_chaos_stop(chaos, &sum.kill_errors);
    if (!failed)
        hx_report_progress(cfg, shm, sum.run_ns, true);
    bool children_ok = children_wait(&r, cmd);
    for (int p = 0; p < cfg->processes; p++)
        if (shm->result[p].fatal[0]) {
            fprintf(stderr, "%s: %s\n", cmd, shm->result[p].fatal);
            failed = true;
        }
    if (failed || !children_ok) {
        if (!failed)
            fprintf(stderr, "%s: a client process failed\n", cmd);
        rc = CLI_EXIT_RUNTIME;
    } else {
        sum.kills_watch = atomic_load(&shm->kills_watch);
        sum.kills_pool = atomic_load(&shm->kills_pool);
        hx_summary_merge(&sum, shm);
        hx_report_print(cfg, &sum);
        if (interrupted) {
            fprintf(stderr, "%s: interrupted\n", cmd);
            rc = CLI_EXIT_RUNTIME;
        }
        if (sum.all.violations > 0) {
            fprintf(stderr, "%s: %llu violations\n", cmd,
                    (unsigned long long)sum.all.violations);
            rc = EXIT_VIOLATIONS;
        }
    }
    free(r.pids);
    hx_shm_free(shm);
    return rc;
}

int cli_cmd_harness(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"writers", required_argument, NULL, OPT_WRITERS},
        {"readers", required_argument, NULL, OPT_READERS},
        {"processes", required_argument, NULL, OPT_PROCESSES},
        {"keys", required_argument, NULL, OPT_KEYS},
        {"value-size", required_argument, NULL, OPT_VALUE_SIZE},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"read-ratio", required_argument, NULL, OPT_READ_RATIO},
        {"get-or-set-ratio", required_argument, NULL, OPT_GOS_RATIO},
        {"delete-ratio", required_argument, NULL, OPT_DELETE_RATIO},
        {"zipf", required_argument, NULL, OPT_ZIPF},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"ops", required_argument, NULL, OPT_OPS},
        {"inval-bound", required_argument, NULL, OPT_BOUND},
        {"notify-bound", required_argument, NULL, OPT_NOTIFY_BOUND},
        {"disable-notify", no_argument, NULL, OPT_DISABLE_NOTIFY},
        {"l1-ttl", required_argument, NULL, OPT_L1_TTL},
        {"notify-mode", required_argument, NULL, OPT_NOTIFY_MODE},
        {"pool-size", required_argument, NULL, OPT_POOL_SIZE},
        {"client-nice", required_argument, NULL, OPT_CLIENT_NICE},
        {"chaos", no_argument, NULL, OPT_CHAOS},
        {"chaos-interval", required_argument, NULL, OPT_CHAOS_INTERVAL},
        {"json", no_argument, NULL, OPT_JSON},
        {"seed", required_argument, NULL, OPT_SEED},
        {"schema-prefix", required_argument, NULL, OPT_PREFIX},
        {"channel-name", required_argument, NULL, OPT_CHANNEL},
        /* Test builds only, not in --help: docs/harness.md. */
        {"inject-stale", required_argument, NULL, OPT_INJECT_STALE},
        CLI_CONN_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const char *cmd = argv[0];
    cli_conn_opts conn = {0};
    hx_cfg cfg = {.writers = 16,
                  .readers = 32,
                  .processes = 4,
                  .keys = 64,
                  .value_size = 128,
                  .ttl_ms = 30000,
                  .read_ratio = 0.2,
                  .gos_ratio = 0.1,
                  .delete_ratio = 0.05,
                  .duration_ms = 10000,
                  .bound_ms = 5000,
                  .l1_ttl_ms = 250,
                  .pool_size = 1,
                  .client_nice = 10,
                  .chaos_interval_ms = 300,
                  .prefix = "harness_",
                  .channel = "harness_events"};
    bool help = false, seeded = false, ops_given = false, duration_given = false,
         prefix_given = false;
    long long n;
    double d;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (cli_conn_opt(&conn, c, optarg))
            continue;
        const char *a = optarg;
        switch (c) {
        case 'h':
            help = true;
            break;
        case OPT_WRITERS:
        case OPT_READERS:
            if (!parse_int(a, 0, 1000, &n))
                return cli_usage_error(cmd, "--%s takes a number from 0 to 1000",
                                       c == OPT_WRITERS ? "writers" : "readers");
            *(c == OPT_WRITERS ? &cfg.writers : &cfg.readers) = (int)n;
            break;
        case OPT_PROCESSES:
            if (!parse_int(a, 1, 256, &n))
                return cli_usage_error(cmd, "--processes takes a number from 1 to 256");
            cfg.processes = (int)n;
            break;
        case OPT_KEYS:
            if (!parse_int(a, 1, 1000000, &n))
                return cli_usage_error(cmd, "--keys takes a number from 1 to 1000000");
            cfg.keys = (int)n;
            break;
        case OPT_VALUE_SIZE:
            if (!parse_int(a, 32, 1048576, &n))
                return cli_usage_error(cmd, "--value-size takes 32 to 1048576 bytes");
            cfg.value_size = (size_t)n;
            break;
        case OPT_TTL: {
            long long ms;
            if (!cli_parse_seconds(a, &ms) || ms == 0)
                return cli_usage_error(cmd, "--ttl takes a positive number of seconds");
            cfg.ttl_ms = ms;
            break;
        }
        case OPT_READ_RATIO:
        case OPT_GOS_RATIO:
        case OPT_DELETE_RATIO:
            if (!parse_ratio(a, &d))
                return cli_usage_error(cmd, "--%s takes a number from 0 to 1",
                                       c == OPT_READ_RATIO  ? "read-ratio"
                                       : c == OPT_GOS_RATIO ? "get-or-set-ratio"
                                                            : "delete-ratio");
            *(c == OPT_READ_RATIO  ? &cfg.read_ratio
              : c == OPT_GOS_RATIO ? &cfg.gos_ratio
                                   : &cfg.delete_ratio) = d;
            break;
        case OPT_ZIPF: {
            char *end = NULL;
            d = strtod(a, &end);
            if (!*a || *end || !(d >= 0.0 && d <= 10.0))
                return cli_usage_error(cmd, "--zipf takes an exponent from 0 to 10");
            cfg.zipf = d;
            break;
        }
        case OPT_DURATION: {
            long long ms;
            if (!cli_parse_seconds(a, &ms) || ms == 0)
                return cli_usage_error(cmd, "--duration takes a positive number of "
                                            "seconds");
            cfg.duration_ms = ms;
            duration_given = true;
            break;
        }
        case OPT_OPS:
            if (!cli_parse_count(a, &n))
                return cli_usage_error(cmd, "--ops takes a positive number");
            cfg.ops = n;
            ops_given = true;
            break;
        case OPT_BOUND:
        case OPT_NOTIFY_BOUND:
        case OPT_L1_TTL:
        case OPT_CHAOS_INTERVAL: {
            bool bound = c == OPT_BOUND || c == OPT_NOTIFY_BOUND;
            if (!parse_int(a, bound ? 0 : 1, 3600000, &n))
                return cli_usage_error(cmd, "%s takes milliseconds (%s to 3600000)",
                                       argv[optind - 1], bound ? "0" : "1");
            int64_t *field = c == OPT_BOUND          ? &cfg.bound_ms
                             : c == OPT_NOTIFY_BOUND ? &cfg.notify_bound_ms
                             : c == OPT_L1_TTL       ? &cfg.l1_ttl_ms
                                                     : &cfg.chaos_interval_ms;
            *field = n;
            break;
        }
        case OPT_DISABLE_NOTIFY:
            cfg.disable_notify = true;
            break;
        case OPT_NOTIFY_MODE:
            if (strcmp(a, "trigger") == 0)
                cfg.notify_mode = PGCW_CACHE_NOTIFY_TRIGGER;
            else if (strcmp(a, "after-commit") == 0)
                cfg.notify_mode = PGCW_CACHE_NOTIFY_AFTER_COMMIT;
            else if (strcmp(a, "background") == 0)
                cfg.notify_mode = PGCW_CACHE_NOTIFY_BACKGROUND;
            else if (strcmp(a, "logical") == 0)
                cfg.notify_mode = PGCW_CACHE_NOTIFY_LOGICAL;
            else
                return cli_usage_error(cmd, "--notify-mode is trigger, after-commit, "
                                            "background or logical");
            break;
        case OPT_POOL_SIZE:
            if (!parse_int(a, 1, 64, &n))
                return cli_usage_error(cmd, "--pool-size takes a number from 1 to 64");
            cfg.pool_size = (size_t)n;
            break;
        case OPT_CLIENT_NICE:
            if (!parse_int(a, 0, 19, &n))
                return cli_usage_error(cmd, "--client-nice takes a number from 0 to 19");
            cfg.client_nice = (int)n;
            break;
        case OPT_CHAOS:
            cfg.chaos = true;
            break;
        case OPT_JSON:
            cfg.json = true;
            break;
        case OPT_SEED:
            if (!parse_int(a, 0, INT64_MAX, &n))
                return cli_usage_error(cmd, "--seed takes a non-negative number");
            cfg.seed = (unsigned long long)n;
            seeded = true;
            break;
        case OPT_PREFIX:
            cfg.prefix = a;
            prefix_given = true;
            break;
        case OPT_CHANNEL:
            cfg.channel = a;
            break;
        case OPT_INJECT_STALE:
#ifdef PGCW_HARNESS_INJECT
            if (!cli_parse_count(a, &n))
                return cli_usage_error(cmd, "--inject-stale takes a positive number");
            cfg.inject_stale = n;
            break;
#else
            return cli_usage_error(cmd, "--inject-stale exists in test builds only");
#endif
        default:
            return cli_bad_option(cmd);
        }
    }
    if (help) {
        fputs(harness_help, stdout);
        fputs(harness_options_help, stdout);
        fputs(cli_conn_help, stdout);
        fputs(harness_exit_help, stdout);
        return CLI_EXIT_OK;
    }
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    /* The default table is UNLOGGED; logical decoding needs a LOGGED one. */
    if (cfg.notify_mode == PGCW_CACHE_NOTIFY_LOGICAL && !prefix_given)
        cfg.prefix = "harness_logical_";
    if (ops_given && duration_given)
        return cli_usage_error(cmd, "--duration and --ops exclude each other");
    if (ops_given)
        cfg.duration_ms = 0;
    if (cfg.writers + cfg.readers == 0)
        return cli_usage_error(cmd, "no clients: give --writers or --readers");
    if (cfg.processes > cfg.writers + cfg.readers)
        cfg.processes = cfg.writers + cfg.readers;
    if (!seeded)
        cfg.seed = (unsigned long long)hx_now_ns() ^ ((unsigned long long)getpid() << 32);
    snprintf(cfg.app_tag, sizeof cfg.app_tag, "pgcwh%d", (int)getpid());
    cfg.progress = !cfg.json && isatty(STDOUT_FILENO);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    server srv;
    memset(&srv, 0, sizeof srv);
    bool throwaway = !conn_given(&conn);
    if (throwaway) {
        if (!server_start(&srv, cmd)) {
            server_stop(&srv);
            unlink(srv.state);
            return CLI_EXIT_RUNTIME;
        }
        conn.dsn = srv.dsn;
        if (!cfg.json)
            fprintf(stderr, "%s: throwaway PostgreSQL at: %s\n", cmd, srv.dsn);
    }
    int rc = CLI_EXIT_RUNTIME;
    if (prepare_schema(cmd, &cfg, &conn))
        rc = run_harness(cmd, &cfg, &conn, throwaway ? "throwaway" : "given");
    server_stop(&srv);
    return rc;
}
