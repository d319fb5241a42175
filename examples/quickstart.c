/*
 * quickstart.c - the README's example: memoize a query result and let PostgreSQL
 * tell us when it is stale.
 *
 *   pgcachewatch install orders --commit      # once: triggers on the table
 *   ./quickstart 'host=/tmp dbname=shop'     # then change `orders` from psql
 *
 * Prints the (memoized) order count once a second; after any change to `orders`
 * the next read reloads it.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <pgcachewatch/pgcachewatch.h>

/* The loader: runs on a miss, on the calling thread, with no lock held. */
static pgcw_status count_orders(void *ctx, const void *key, size_t key_len,
                                pgcw_memo_result *result)
{
    (void)key;
    (void)key_len;
    PGresult *r = PQexec(ctx, "SELECT count(*) FROM orders");
    pgcw_status st = PGCW_ELOADER;
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        st = pgcw_memo_result_set(result, PQgetvalue(r, 0, 0),
                                  strlen(PQgetvalue(r, 0, 0)));
    else
        pgcw_memo_result_error(result, PQresultErrorMessage(r));
    PQclear(r);
    return st;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* one line at a time, even into a pipe */
    const char *dsn = argc > 1 ? argv[1] : NULL; /* NULL: $PGDSN / PG* variables */
    /* How to connect, the same for both connections: the loader's and the watcher's. */
    pgcw_conn_opts co = {.conninfo = dsn};
    pgcw_conn *conn = NULL;
    pgcw_status st = pgcw_conn_new(&co, &conn);
    if (st == PGCW_OK)
        st = pgcw_conn_connect(conn);
    if (st != PGCW_OK) {
        fprintf(stderr, "quickstart: %s: %s\n", pgcw_strerror(st),
                pgcw_conn_errmsg(conn));
        return 1;
    }
    PGconn *db = pgcw_conn_pg(conn); /* borrowed from conn */

    /* One watcher per process: a LISTEN connection with a thread of its own. */
    pgcw_watcher *w = NULL;
    /* Greedy: any event on the channel clears the memo (a predicate could filter). */
    pgcw_strategy *greedy = NULL;
    pgcw_memo *memo = NULL;
    st = pgcw_watcher_new(NULL, &co, &w);
    if (st == PGCW_OK)
        st = pgcw_strategy_new(w, NULL, &greedy);
    if (st == PGCW_OK) {
        pgcw_memo_opts mo = {.strategy = greedy, .load = count_orders, .load_ctx = db};
        st = pgcw_memo_new(&mo, &memo);
    }
    if (st == PGCW_OK)
        st = pgcw_watcher_start(w);
    if (st == PGCW_OK)
        st = pgcw_watcher_wait_healthy(w, 10000);
    if (st != PGCW_OK) {
        fprintf(stderr, "quickstart: %s: %s\n", pgcw_strerror(st),
                pgcw_watcher_errmsg(w));
        return 1;
    }

    for (int i = 0; i < 60; i++) {
        void *value = NULL;
        size_t len = 0;
        st = pgcw_memo_get(memo, "count", 5, &value, &len);
        if (st == PGCW_OK) {
            printf("orders: %s\n", (char *)value);
        } else {
            const char *err = pgcw_memo_errmsg(memo); /* "" if the loader gave none */
            fprintf(stderr, "quickstart: %s\n", err[0] ? err : pgcw_strerror(st));
        }
        pgcw_free(value);
        sleep(1);
    }

    pgcw_memo_free(memo);
    pgcw_strategy_free(greedy); /* frees its subscriber: before the watcher */
    pgcw_watcher_free(w);
    pgcw_conn_free(conn);
    return 0;
}
