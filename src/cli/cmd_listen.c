/*
 * cmd_listen.c - `pgcachewatch listen`: prints each event as one line as it
 * arrives, gap events included, until a count, a timeout or a signal.
 *
 * The watcher is driven by pgcw_watcher_run() on the main thread; the signal
 * handler only sets a flag and calls the async-signal-safe
 * pgcw_watcher_interrupt(). Never swallows a gap: it is printed like any event.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pgcachewatch/pgcachewatch.h>

#include "cli.h"

enum {
    OPT_CHANNEL = CLI_OPT_FIRST_COMMAND,
    OPT_JSON,
    OPT_COUNT,
    OPT_TIMEOUT,
    OPT_FORMAT,
    OPT_SOURCE,
    OPT_SLOT,
    OPT_PUBLICATION,
    OPT_POLL_INTERVAL
};

/* How long one pgcw_watcher_run() slice lasts: the most an event waits in the
 * queue before it is printed. */
#define SLICE_MS 20
/* How long to wait for the first connection when no --timeout bounds it. */
#define CONNECT_WAIT_MS 15000

static const char listen_help[] =
    "Usage: " CLI_PROG " listen [OPTIONS]\n"
    "\n"
    "LISTENs on the channel(s) and prints one line per event as it arrives: a\n"
    "readable line, or with --json one JSON object (kind, channel, operation,\n"
    "schema, table, sent_at, received_at, latency_ms, keys; for a postgres-cache\n"
    "key notification: key, version). Gap events (the connection was lost:\n"
    "notifications may be missing) are printed too. Payloads that cannot be\n"
    "decoded are reported on stderr and skipped.\n"
    "Warnings go to stderr. Stops after --count events, after --timeout seconds,\n"
    "or on SIGINT/SIGTERM.\n"
    "\n"
    "With --source logical it reads the replication slot that `install --source\n"
    "logical` made instead of LISTENing: no trigger, every committed change of the\n"
    "publication's tables with its keys, nothing lost across a reconnect (a resumed\n"
    "stream may repeat events). Its status lines on stderr (when ready, every 10\n"
    "seconds, at exit) give the confirmed LSN and the slot lag: the WAL the slot\n"
    "makes the server keep.\n"
    "\n"
    "With --source poll it reads the channel's change log (install --source poll)\n"
    "every --poll-interval over a plain connection instead of LISTENing: for\n"
    "connections where LISTEN does not work, such as PgBouncer in transaction\n"
    "pooling mode. One channel only; events start from now.\n"
    "\n"
    "Options:\n"
    "      --channel-name NAME     channel to LISTEN on (may repeat;\n"
    "                              default " PGCW_DEFAULT_CHANNEL ")\n"
    "      --format FORMAT         how payloads are decoded, on every channel: auto\n"
    "                              (default: JSON table changes, or postgres-cache\n"
    "                              key notifications 'u'/'d'...), table-change or\n"
    "                              cache-key\n"
    "      --source SOURCE         listen (default), logical or poll (see above)\n"
    "      --slot NAME             with --source logical: the replication slot\n"
    "                              (default pgcachewatch_<channel>)\n"
    "      --publication NAME      with --source logical: the publication\n"
    "                              (default pgcachewatch_<channel>_pub)\n"
    "      --poll-interval SECONDS between two reads of the change log with --source\n"
    "                              poll (fractions allowed; default 0.25)\n"
    "      --json                  print events as JSON lines\n"
    "      --count N               exit 0 after N events (gap events count too)\n"
    "      --timeout SECONDS       stop after SECONDS (fractions allowed); exit 1 if\n"
    "                              --count was given and not reached\n"
    "  -h, --help                  show this help and exit\n"
    "\n";

static const char listen_exit_help[] =
    "\n"
    "Exit status: 0 on --count reached, --timeout without --count, or a signal;\n"
    "1 when the connection fails (at once when the server refuses the role, the\n"
    "password or the database) or --count is not reached in time; 2 usage error.\n";

static pgcw_watcher *volatile signal_watcher;
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
    pgcw_watcher *w = signal_watcher;
    if (w)
        pgcw_watcher_interrupt(w);
}

static void on_log(void *ctx, pgcw_log_level level, const char *message)
{
    (void)ctx;
    if (level >= PGCW_LOG_WARNING)
        fprintf(stderr, "%s listen: %s: %s\n", CLI_PROG, pgcw_log_level_name(level),
                message);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How often `listen --source logical` says where its slot stands. */
#define STATUS_MS 10000

/* One status line on stderr: the confirmed position and the slot's lag. */
static void print_slot_status(const pgcw_watcher *w, const char *when)
{
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    fprintf(stderr, "%s listen: %s: confirmed LSN %X/%X, slot lag %llu bytes\n", CLI_PROG,
            when, (unsigned)(st.confirmed_lsn >> 32), (unsigned)st.confirmed_lsn,
            (unsigned long long)st.slot_lag_bytes);
}

/* Prints every queued event; returns how many. Stops at `limit` (0: none). */
static long long drain(pgcw_sub *sub, bool json, long long limit, bool *out_of_memory)
{
    long long n = 0;
    const pgcw_event *ev = NULL;
    while ((limit == 0 || n < limit) && pgcw_sub_try_get(sub, &ev) == PGCW_OK) {
        char *line = json ? pgcw_event_to_json(ev) : pgcw_event_to_text(ev);
        pgcw_event_free(ev);
        if (!line) {
            *out_of_memory = true;
            return n;
        }
        fputs(line, stdout);
        putchar('\n');
        fflush(stdout);
        pgcw_free(line);
        n++;
    }
    return n;
}

int cli_listen_parse(int argc, char **argv, cli_listen_args *a)
{
    static const struct option longopts[] = {
        {"channel-name", required_argument, NULL, OPT_CHANNEL},
        {"json", no_argument, NULL, OPT_JSON},
        {"count", required_argument, NULL, OPT_COUNT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"source", required_argument, NULL, OPT_SOURCE},
        {"slot", required_argument, NULL, OPT_SLOT},
        {"publication", required_argument, NULL, OPT_PUBLICATION},
        {"poll-interval", required_argument, NULL, OPT_POLL_INTERVAL},
        {"help", no_argument, NULL, 'h'},
        CLI_CONN_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    const char *cmd = argv[0];
    memset(a, 0, sizeof *a);
    a->format = PGCW_FORMAT_AUTO;
    a->timeout_ms = -1;
    a->channels = calloc((size_t)argc + 1, sizeof *a->channels);
    if (!a->channels)
        return cli_runtime_error(cmd, "out of memory");
    int c, rc = -1;
    while (rc < 0 && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (cli_conn_opt(&a->conn, c, optarg))
            continue;
        switch (c) {
        case 'h':
            a->help = true;
            break;
        case OPT_CHANNEL:
            a->channels[a->n_channels++] = optarg;
            break;
        case OPT_JSON:
            a->json = true;
            break;
        case OPT_COUNT:
            if (!cli_parse_count(optarg, &a->count))
                rc = cli_usage_error(cmd, "--count wants a positive integer, not '%s'",
                                     optarg);
            break;
        case OPT_TIMEOUT:
            if (!cli_parse_seconds(optarg, &a->timeout_ms))
                rc = cli_usage_error(cmd, "--timeout wants seconds, not '%s'", optarg);
            break;
        case OPT_FORMAT:
            if (pgcw_payload_format_parse(optarg, &a->format) != PGCW_OK)
                rc = cli_usage_error(
                    cmd, "--format wants auto, table-change or cache-key, not '%s'",
                    optarg);
            a->format_given = true;
            break;
        case OPT_SOURCE:
            if (!cli_parse_source(optarg, &a->source))
                rc = cli_usage_error(
                    cmd, "--source wants listen, logical or poll, not '%s'", optarg);
            break;
        case OPT_SLOT:
            a->slot_name = optarg;
            break;
        case OPT_PUBLICATION:
            a->publication = optarg;
            break;
        case OPT_POLL_INTERVAL:
            if (!cli_parse_seconds(optarg, &a->poll_interval_ms) ||
                a->poll_interval_ms <= 0)
                rc = cli_usage_error(
                    cmd, "--poll-interval wants seconds above 0, not '%s'", optarg);
            break;
        default:
            rc = cli_bad_option(cmd);
        }
    }
    if (rc < 0 && !a->help && a->poll_interval_ms && a->source != PGCW_WATCH_POLL)
        rc = cli_usage_error(cmd, "--poll-interval needs --source poll");
    if (rc < 0 && !a->help && a->source == PGCW_WATCH_POLL && a->n_channels > 1)
        rc = cli_usage_error(cmd, "--source poll reads one channel's change log");
    if (rc < 0 && !a->help && optind < argc)
        rc = cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    bool logical = a->source == PGCW_WATCH_LOGICAL;
    if (rc < 0 && !a->help && !logical && (a->slot_name || a->publication))
        rc = cli_usage_error(cmd, "--slot and --publication go with --source logical");
    if (rc < 0 && !a->help && logical && (a->format_given || a->n_channels > 1))
        rc = cli_usage_error(cmd, "--source logical takes no --format and one "
                                  "--channel-name at most");
    return rc;
}

int cli_cmd_listen(int argc, char **argv)
{
    const char *cmd = argv[0];
    cli_listen_args a;
    int rc = cli_listen_parse(argc, argv, &a);
    if (rc < 0 && a.help) {
        fputs(listen_help, stdout);
        fputs(cli_conn_help, stdout);
        fputs(listen_exit_help, stdout);
        rc = CLI_EXIT_OK;
    }
    if (rc >= 0) {
        free(a.channels);
        return rc;
    }
    const char **channels = a.channels;
    size_t n_channels = a.n_channels;
    bool json = a.json;
    pgcw_payload_format format = a.format;
    long long count = a.count, timeout_ms = a.timeout_ms;
    cli_conn_opts conn = a.conn;

    long long start = now_ms();
    cli_conn_settings settings;
    cli_conn_settings_init(&settings, &conn);
    size_t n_formats = n_channels ? n_channels : 1;
    pgcw_payload_format *formats = calloc(n_formats, sizeof *formats);
    if (!formats) {
        free(channels);
        return cli_runtime_error(cmd, "out of memory");
    }
    for (size_t i = 0; i < n_formats; i++)
        formats[i] = format;
    pgcw_watcher_opts wopts = {0};
    wopts.channels = channels;
    wopts.n_channels = n_channels;
    wopts.formats = formats;
    wopts.log = on_log;
    wopts.source = a.source;
    wopts.slot_name = a.slot_name;
    wopts.publication = a.publication;
    wopts.poll_interval_ms = a.poll_interval_ms;
    pgcw_watcher *w = NULL;
    pgcw_sub *sub = NULL;
    pgcw_status st = pgcw_watcher_new(&wopts, &settings.opts, &w);
    free(formats);
    if (st == PGCW_EINVAL) {
        free(channels);
        return cli_usage_error(cmd, a.source == PGCW_WATCH_LOGICAL
                                        ? "invalid channel, slot or publication name"
                                        : "invalid channel name (1 to 63 bytes)");
    }
    if (st == PGCW_OK)
        st = pgcw_sub_new(w, NULL, &sub);
    if (st != PGCW_OK) {
        rc = cli_runtime_error(cmd, "%s", pgcw_strerror(st));
        goto out;
    }

    /* The first connection must succeed: an unreachable server is an error, not
     * something to retry forever. Later losses are gaps, printed as events. */
    long long wait = timeout_ms >= 0 ? timeout_ms : CONNECT_WAIT_MS;
    if (pgcw_watcher_wait_healthy(w, wait) != PGCW_OK) {
        const char *msg = pgcw_watcher_errmsg(w);
        rc = cli_runtime_error(cmd, "could not listen: %s",
                               msg && *msg ? msg : "timed out connecting");
        goto out;
    }
    bool logical = a.source == PGCW_WATCH_LOGICAL;
    if (logical) {
        print_slot_status(w, "reading the replication slot");
    } else {
        fprintf(stderr, "%s listen: %s on", CLI_PROG,
                a.source == PGCW_WATCH_POLL ? "polling the change log" : "listening");
        if (n_channels == 0)
            fprintf(stderr, " %s", PGCW_DEFAULT_CHANNEL);
        for (size_t i = 0; i < n_channels; i++)
            fprintf(stderr, "%s %s", i ? "," : "", channels[i]);
        fputc('\n', stderr);
    }
    long long next_status = now_ms() + STATUS_MS;

    signal_watcher = w;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    long long seen = 0;
    bool oom = false;
    for (;;) {
        seen += drain(sub, json, count ? count - seen : 0, &oom);
        if (oom) {
            rc = cli_runtime_error(cmd, "out of memory");
            break;
        }
        if (count && seen >= count) {
            rc = CLI_EXIT_OK;
            break;
        }
        if (stop_requested) {
            rc = CLI_EXIT_OK;
            break;
        }
        long long slice = SLICE_MS;
        if (timeout_ms >= 0) {
            long long left = start + timeout_ms - now_ms();
            if (left <= 0) {
                rc = count ? cli_runtime_error(cmd, "timed out after %lld of %lld events",
                                               seen, count)
                           : CLI_EXIT_OK;
                break;
            }
            if (left < slice)
                slice = left;
        }
        pgcw_watcher_run(w, slice);
        if (logical && now_ms() >= next_status) {
            print_slot_status(w, "status");
            next_status = now_ms() + STATUS_MS;
        }
    }
    if (logical)
        print_slot_status(w, "at exit");

    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal_watcher = NULL;
out:
    pgcw_sub_free(sub);
    pgcw_watcher_free(w);
    free(channels);
    return rc;
}
