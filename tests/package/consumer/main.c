/* A consumer of the installed library: includes the public headers and calls into
 * each module through the sized entry points its macros use (install SQL, a
 * connection handle, a watcher with a sink and a queue, a decoded key event
 * dispatched to both). Needs no server: nothing here connects. */
#include <stdio.h>
#include <string.h>

#include <pgcachewatch/pgcachewatch.h>

static int sink_calls;

static void on_event(void *ctx, const pgcw_event *e)
{
    (void)ctx;
    if (e->kind == PGCW_EVENT_KEY && e->key_len == 3 &&
        memcmp(e->key,
               "a\x1f"
               "b",
               3) == 0)
        sink_calls++;
}

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "consumer: failed: %s\n", #cond);                            \
            return 1;                                                                    \
        }                                                                                \
    } while (0)

int main(void)
{
    const char *tables[] = {"sales.orders"};
    char *sql = NULL;
    pgcw_install *in = NULL;
    CHECK(pgcw_install_new(NULL, &in) == PGCW_OK);
    CHECK(pgcw_install_sql(in, tables, 1, &sql) == PGCW_OK);
    pgcw_install_free(in);
    CHECK(strstr(sql, "\"sales\".\"orders\"") != NULL);
    pgcw_free(sql);

    pgcw_conn_opts co = {.conninfo = "host=/nonexistent port=1"};
    pgcw_conn *conn = NULL;
    CHECK(pgcw_conn_new(&co, &conn) == PGCW_OK);
    pgcw_conn_free(conn);

    pgcw_watcher *w = NULL;
    CHECK(pgcw_watcher_new(NULL, &co, &w) == PGCW_OK);
    pgcw_sub *sub = NULL;
    CHECK(pgcw_sub_new(w, NULL, &sub) == PGCW_OK);
    pgcw_sink_opts so = {.fn = on_event};
    pgcw_sink *sink = NULL;
    CHECK(pgcw_sink_new(w, &so, &sink) == PGCW_OK);
    const pgcw_event *e = NULL;
    CHECK(pgcw_event_parse(PGCW_FORMAT_AUTO, "cache_events",
                           "u7\x1f"
                           "a\x1f\x1f"
                           "b",
                           7, 0, &e) == PGCW_OK);
    CHECK(pgcw_watcher_dispatch(w, e) == PGCW_OK);
    pgcw_event_free(e);
    CHECK(sink_calls == 1);
    CHECK(pgcw_sub_try_get(sub, &e) == PGCW_OK && e->version == 7);
    pgcw_event_free(e);
    pgcw_watcher_stats st;
    pgcw_watcher_stats_get(w, &st);
    CHECK(st.sink_calls == 1);
    pgcw_sink_free(sink);
    pgcw_sub_free(sub);
    pgcw_watcher_free(w);

    printf("pgcachewatch %s: ok\n", pgcw_version());
    return 0;
}
