/*
 * http_server.c - the Python pgcachewatch FastAPI example, in C with
 * libmicrohttpd: GET /data serves a memoized query result (a JSON aggregate of
 * one table) with the header X-Cache: hit|miss. A watcher (its own thread) feeds
 * a Greedy strategy that clears the memo whenever that table changes. GET /stats
 * shows the memo's and the watcher's counters.
 *
 *   pgcachewatch install --commit --pg-dsn "$DSN" items
 *   http_server --pg-dsn "$DSN" --table items --port 0
 *   curl -i http://127.0.0.1:PORT/data
 *
 * Uses the public API only. Listens on 127.0.0.1 only, never on other addresses.
 * Stops cleanly on SIGINT/SIGTERM.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <microhttpd.h>
#include <pgcachewatch/pgcachewatch.h>

#define HEALTHY_WAIT_MS 15000

typedef struct app {
    pgcw_conn *db; /* the loader's; only MHD's single polling thread uses it */
    char *query;   /* the aggregate over the quoted table */
    pgcw_qualified_name table;
    pgcw_watcher *watcher;
    pgcw_strategy *strategy;
    pgcw_memo *memo;
} app;

/* The stats callback runs on the thread that called pgcw_memo_get(): the handler's
 * own, so a thread-local tells that handler whether its get was a hit. */
static _Thread_local pgcw_memo_stat last_stat;

static void on_stat(void *ctx, pgcw_memo_stat stat)
{
    (void)ctx;
    last_stat = stat;
}

static void on_log(void *ctx, pgcw_log_level level, const char *message)
{
    (void)ctx;
    if (level >= PGCW_LOG_WARNING)
        fprintf(stderr, "http_server: watcher %s: %s\n", pgcw_log_level_name(level),
                message);
}

/* Only changes to our table invalidate. A Python-installed trigger sends no
 * schema: then the table name alone decides. */
static bool is_our_table(void *ctx, const pgcw_event *ev)
{
    const app *a = ctx;
    if (strcmp(ev->table, a->table.name) != 0)
        return false;
    return !a->table.schema[0] || !ev->schema || strcmp(ev->schema, a->table.schema) == 0;
}

static pgcw_status load(void *ctx, const void *key, size_t key_len,
                        pgcw_memo_result *result)
{
    app *a = ctx;
    (void)key;
    (void)key_len;
    PGconn *pg = pgcw_conn_pg(a->db);
    if (!pg || PQstatus(pg) != CONNECTION_OK) { /* lost: connect again, bounded */
        if (pgcw_conn_connect(a->db) != PGCW_OK) {
            pgcw_memo_result_error(result, pgcw_conn_errmsg(a->db));
            return PGCW_ECONNECT;
        }
        pg = pgcw_conn_pg(a->db);
    }
    PGresult *r = PQexec(pg, a->query);
    pgcw_status st = PGCW_ELOADER;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        const char *v = PQgetvalue(r, 0, 0);
        st = pgcw_memo_result_set(result, v, strlen(v));
    } else {
        pgcw_memo_result_error(result, PQresultErrorMessage(r));
    }
    PQclear(r);
    return st;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *body,
                             size_t len, const char *cache)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type",
                            code == 200 ? "application/json" : "text/plain");
    if (cache)
        MHD_add_response_header(resp, "X-Cache", cache);
    enum MHD_Result ret = MHD_queue_response(c, code, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* GET /stats: the memo's and the watcher's counters, so an operator (or a test)
 * can see that an event arrived without guessing from timing. */
static enum MHD_Result stats(app *a, struct MHD_Connection *c)
{
    pgcw_memo_stats ms;
    pgcw_watcher_stats ws;
    pgcw_memo_stats_get(a->memo, &ms);
    pgcw_watcher_stats_get(a->watcher, &ws);
    char body[512];
    int n = snprintf(body, sizeof body,
                     "{\"memo\": {\"hits\": %llu, \"misses\": %llu, \"bypasses\": %llu, "
                     "\"loads\": %llu, \"clears\": %llu}, "
                     "\"watcher\": {\"healthy\": %s, \"epoch\": %llu, \"events\": %llu, "
                     "\"gaps\": %llu}}\n",
                     (unsigned long long)ms.hits, (unsigned long long)ms.misses,
                     (unsigned long long)ms.bypasses, (unsigned long long)ms.loads,
                     (unsigned long long)ms.clears,
                     pgcw_watcher_healthy(a->watcher) ? "true" : "false",
                     (unsigned long long)pgcw_watcher_epoch(a->watcher),
                     (unsigned long long)ws.events, (unsigned long long)ws.gaps);
    return reply(c, 200, body, n < (int)sizeof body ? (size_t)n : sizeof body - 1, NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version,
                              const char *upload_data, size_t *upload_data_size,
                              void **con_cls)
{
    app *a = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, "GET") != 0)
        return reply(c, 405, "method not allowed\n", 19, NULL);
    if (strcmp(url, "/stats") == 0)
        return stats(a, c);
    if (strcmp(url, "/data") != 0)
        return reply(c, 404, "not found: try GET /data or GET /stats\n", 39, NULL);
    void *value = NULL;
    size_t len = 0;
    pgcw_status st = pgcw_memo_get(a->memo, "data", 4, &value, &len);
    enum MHD_Result ret;
    if (st == PGCW_OK) {
        ret = reply(c, 200, value, len, last_stat == PGCW_MEMO_HIT ? "hit" : "miss");
    } else {
        const char *err = pgcw_memo_errmsg(a->memo);
        char msg[1024];
        int n = snprintf(msg, sizeof msg, "query failed: %s\n",
                         err[0] ? err : pgcw_strerror(st));
        ret =
            reply(c, 503, msg, n < (int)sizeof msg ? (size_t)n : sizeof msg - 1, "miss");
    }
    pgcw_free(value);
    return ret;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: http_server [--port PORT] [--pg-dsn DSN] [--table TABLE]\n"
        "                   [--channel-name NAME]\n"
        "\n"
        "Serves GET /data: a memoized JSON aggregate of TABLE with X-Cache: hit|miss,\n"
        "invalidated by pgcachewatch triggers (install them first with\n"
        "`pgcachewatch install --commit TABLE`), and GET /stats: the memo's and\n"
        "the watcher's counters.\n"
        "\n"
        "  --port PORT          TCP port on 127.0.0.1 (default 8000; 0: pick a free\n"
        "                       one). Prints \"listening on http://127.0.0.1:PORT\".\n"
        "  --pg-dsn DSN         libpq connection string (default: $PGDSN, then PG*)\n"
        "  --table TABLE        the table to serve (default items)\n"
        "  --channel-name NAME  NOTIFY channel (default " PGCW_DEFAULT_CHANNEL ")\n"
        "  -h, --help           show this help\n");
}

/* A listening socket on 127.0.0.1:port; *port receives the real port. */
static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)*port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Why a --table name is refused: the parser says only that it is, the install
 * script generator (given just that table) says why. */
static void report_bad_table(const char *table)
{
    pgcw_install *in = NULL;
    char *sql = NULL;
    const char *why = "not a valid table name";
    if (pgcw_install_new(NULL, &in) == PGCW_OK &&
        pgcw_install_sql(in, &table, 1, &sql) != PGCW_OK && pgcw_install_errmsg(in)[0])
        why = pgcw_install_errmsg(in);
    fprintf(stderr, "http_server: bad --table: %s\n", why);
    pgcw_free(sql);
    pgcw_install_free(in);
}

/* Builds the loader's query over the table given on the command line, with every
 * identifier quoted: never pasted. */
static char *build_query(const pgcw_qualified_name *t)
{
    char *qs = t->schema[0] ? pgcw_quote_ident(t->schema) : NULL;
    char *qn = pgcw_quote_ident(t->name);
    char *label = pgcw_quote_literal(t->name);
    char *q = NULL;
    if (qn && label && (qs || !t->schema[0])) {
        size_t n = strlen(qn) + strlen(label) + (qs ? strlen(qs) : 0) + 256;
        q = malloc(n);
        if (q)
            snprintf(q, n,
                     "SELECT json_build_object('table', %s::text, 'count', count(*),"
                     " 'rows', coalesce(json_agg(t), '[]'::json))::text"
                     " FROM %s%s%s t",
                     label, qs ? qs : "", qs ? "." : "", qn);
    }
    pgcw_free(qs);
    pgcw_free(qn);
    pgcw_free(label);
    return q;
}

int main(int argc, char **argv)
{
    enum { OPT_PORT = 0x100, OPT_DSN, OPT_TABLE, OPT_CHANNEL };
    static const struct option longopts[] = {
        {"port", required_argument, NULL, OPT_PORT},
        {"pg-dsn", required_argument, NULL, OPT_DSN},
        {"table", required_argument, NULL, OPT_TABLE},
        {"channel-name", required_argument, NULL, OPT_CHANNEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dsn = NULL; /* the library falls back to $PGDSN, then PG* */
    const char *table = "items";
    const char *channel = PGCW_DEFAULT_CHANNEL;
    int port = 8000;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_PORT: {
            char *end;
            long p = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || p < 0 || p > 65535) {
                fprintf(stderr, "http_server: bad --port '%s'\n", optarg);
                return 2;
            }
            port = (int)p;
            break;
        }
        case OPT_DSN:
            dsn = optarg;
            break;
        case OPT_TABLE:
            table = optarg;
            break;
        case OPT_CHANNEL:
            channel = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    app a;
    memset(&a, 0, sizeof a);
    if (pgcw_parse_qualified_name(table, &a.table) != PGCW_OK) {
        report_bad_table(table);
        return 2;
    }
    a.query = build_query(&a.table);
    if (!a.query) {
        fprintf(stderr, "http_server: out of memory\n");
        return 1;
    }

    /* Block the stop signals before any thread starts, so every thread inherits
     * the mask and main() alone receives them, in sigwait(). */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    int rc = 1;
    struct MHD_Daemon *daemon = NULL;
    int lfd = -1;
    /* One set of connection settings for the loader's connection and the watcher's. */
    pgcw_conn_opts copts = {0};
    copts.conninfo = dsn;
    if (pgcw_conn_new(&copts, &a.db) != PGCW_OK) {
        fprintf(stderr, "http_server: out of memory\n");
        goto out;
    }
    if (pgcw_conn_connect(a.db) != PGCW_OK) {
        fprintf(stderr, "http_server: %s\n", pgcw_conn_errmsg(a.db));
        goto out;
    }
    pgcw_watcher_opts wopts = {0};
    wopts.channels = &channel;
    wopts.n_channels = 1;
    wopts.log = on_log;
    pgcw_strategy_opts sopts = {0};
    sopts.kind = PGCW_STRATEGY_GREEDY;
    sopts.predicate = is_our_table;
    sopts.predicate_ctx = &a;
    pgcw_memo_opts mopts = {0};
    mopts.load = load;
    mopts.load_ctx = &a;
    mopts.stats = on_stat;
    pgcw_status st = pgcw_watcher_new(&wopts, &copts, &a.watcher);
    if (st == PGCW_OK)
        st = pgcw_strategy_new(a.watcher, &sopts, &a.strategy);
    mopts.strategy = a.strategy;
    if (st == PGCW_OK)
        st = pgcw_memo_new(&mopts, &a.memo);
    if (st == PGCW_OK)
        st = pgcw_watcher_start(a.watcher);
    if (st != PGCW_OK) {
        fprintf(stderr, "http_server: watcher: %s\n", pgcw_strerror(st));
        goto out;
    }
    /* Until the watcher is healthy the memo bypasses (every GET a miss). */
    if (pgcw_watcher_wait_healthy(a.watcher, HEALTHY_WAIT_MS) != PGCW_OK) {
        fprintf(stderr, "http_server: watcher not healthy: %s\n",
                pgcw_watcher_errmsg(a.watcher));
        goto out;
    }
    lfd = listen_loopback(&port);
    if (lfd < 0) {
        fprintf(stderr, "http_server: cannot listen on 127.0.0.1:%d: %s\n", port,
                strerror(errno));
        goto out;
    }
    /* One internal polling thread: requests run one at a time, so the loader's
     * single connection is never shared between threads. */
    daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handle, &a,
                              MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_END);
    if (!daemon) {
        fprintf(stderr, "http_server: MHD_start_daemon failed\n");
        close(lfd);
        goto out;
    }
    printf("listening on http://127.0.0.1:%d\n", port);
    fflush(stdout);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    fprintf(stderr, "http_server: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;

out:
    if (daemon)
        MHD_stop_daemon(daemon); /* also closes lfd */
    if (a.memo) {
        pgcw_memo_stats ms;
        pgcw_memo_stats_get(a.memo, &ms);
        fprintf(stderr, "http_server: %llu hits, %llu misses, %llu clears\n",
                (unsigned long long)ms.hits, (unsigned long long)ms.misses,
                (unsigned long long)ms.clears);
    }
    pgcw_memo_free(a.memo);
    pgcw_strategy_free(a.strategy);
    pgcw_watcher_free(a.watcher);
    pgcw_conn_free(a.db);
    free(a.query);
    return rc;
}
