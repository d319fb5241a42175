/*
 * cache_logical.c - PGCW_CACHE_NOTIFY_LOGICAL: the L1 is evicted from the
 * table's changes as logical decoding reads them from the WAL, and this library's
 * writes skip the trigger's NOTIFY (their sessions carry
 * pgcachewatch.cache_notify = 'client'), so no commit of theirs takes
 * PostgreSQL's cluster-wide notify lock.
 *
 * Here: the publication init_db creates (<prefix>cache_entries_pub, for a LOGGED
 * table only: PostgreSQL decodes no UNLOGGED table), the check every pool
 * connection runs that it is still in place, the watcher options (a temporary
 * slot of the cache's own: dropped by the server when the connection ends, so a
 * process that dies leaves no slot retaining WAL; a reconnect makes a new slot,
 * and the events in between are a gap, which flushes the L1), and the sink's
 * handling of the change events.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cache_internal.h"
#include "core_time.h"
#include "core_util.h"
#include "pgcachewatch/install.h"

#define PUB_SUFFIX "cache_entries_pub"

void pgcw__cache_publication_name(const pgcw__cache_cfg *cfg, char *buf, size_t len)
{
    pgcw__errf(buf, len, "%s" PUB_SUFFIX, cfg->prefix);
}

/* The body of a DO block that raises unless the table is LOGGED, then runs more. */
static void append_logged_check(pgcw__buf *b, const char *table_lit, const char *hint)
{
    pgcw__buf_appendf(
        b,
        "IF (SELECT relpersistence FROM pg_class WHERE oid = to_regclass(%s))"
        " IS DISTINCT FROM 'p' THEN RAISE EXCEPTION USING ERRCODE ="
        " 'object_not_in_prerequisite_state', MESSAGE = format('notify_mode LOGICAL"
        " needs a LOGGED cache table, and %%s is not (PostgreSQL decodes no UNLOGGED"
        " table)', %s), HINT = %s; END IF;",
        table_lit, table_lit, hint);
}

/* Literals of the table's quoted name and of the publication's name (owned);
 * false on OOM. */
static bool literals(const pgcw__cache_cfg *cfg, const pgcw__cache_names *n, char **table,
                     char **pub)
{
    char name[96];
    pgcw__cache_publication_name(cfg, name, sizeof name);
    *table = pgcw_quote_literal(n->entries_table);
    *pub = pgcw_quote_literal(name);
    if (*table && *pub)
        return true;
    pgcw_free(*table);
    pgcw_free(*pub);
    return false;
}

/* "format('... %s ...', <table literal>)": the hint of the LOGGED check. */
static void logged_hint(char *buf, size_t len, const char *table_lit)
{
    pgcw__errf(
        buf, len,
        "format('create it with durability LOGGED, or ALTER TABLE %%s SET LOGGED', "
        "%s)",
        table_lit);
}

char *pgcw__cache_logical_init_sql(const pgcw__cache_cfg *cfg, const pgcw__cache_names *n)
{
    char *table, *pub, hint[256];
    if (!literals(cfg, n, &table, &pub))
        return NULL;
    logged_hint(hint, sizeof hint, table);
    pgcw__buf b = {0};
    pgcw__buf_append(&b, "DO $pgcw$ BEGIN ");
    append_logged_check(&b, table, hint);
    pgcw__buf_appendf(
        &b,
        " IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = %s)"
        " THEN EXECUTE format('CREATE PUBLICATION %%I FOR TABLE %%s', %s, %s);"
        " END IF; END $pgcw$",
        pub, pub, table);
    pgcw_free(table);
    pgcw_free(pub);
    return pgcw__buf_take(&b);
}

void pgcw__cache_logical_setup_sql(const pgcw__cache_cfg *cfg, const pgcw__cache_names *n,
                                   pgcw__buf *b)
{
    char *table, *pub, hint[256];
    if (!literals(cfg, n, &table, &pub)) {
        b->failed = true;
        return;
    }
    logged_hint(hint, sizeof hint, table);
    pgcw__buf_append(b, "DO $pgcw$ BEGIN ");
    append_logged_check(b, table, hint);
    pgcw__buf_appendf(
        b,
        " IF NOT EXISTS (SELECT 1 FROM pg_publication_rel r JOIN pg_publication p ON"
        " p.oid = r.prpubid WHERE p.pubname = %s AND r.prrelid = to_regclass(%s)) THEN"
        " RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state', MESSAGE ="
        " format('notify_mode LOGICAL: publication %%s does not publish the cache table"
        " %%s', %s, %s), HINT = 'run init_db with notify_mode LOGICAL'; END IF; END"
        " $pgcw$;\n",
        pub, table, pub, table);
    /* The confirmer's question (cache_logical_vis.c): as text, which a binary
     * result also is. */
    pgcw__buf_append(b, "PREPARE " PGCW__ST_SNAPSHOT
                        " AS SELECT pg_catalog.pg_current_snapshot()::text;\n");
    pgcw_free(table);
    pgcw_free(pub);
}

/* Slot names are unique in the cluster: process, handle and time. */
void pgcw__cache_slot_name(char *buf, size_t len)
{
    static atomic_uint seq;
    unsigned k = atomic_fetch_add(&seq, 1);
    pgcw__errf(buf, len, "pgcw_cache_%ld_%u_%llx", (long)getpid(), k,
               (unsigned long long)(pgcw__real_us() & 0xffffffffffull));
}

/* The key of one pgoutput key array, ["<key>"]; false if it is not one. */
static bool key_of(const char *json, const char **key, size_t *len, json_object **owner)
{
    json_object *a = json_tokener_parse(json);
    if (!a)
        return false;
    json_object *k =
        json_object_is_type(a, json_type_array) && json_object_array_length(a) == 1
            ? json_object_array_get_idx(a, 0)
            : NULL;
    if (!k || !json_object_is_type(k, json_type_string)) {
        json_object_put(a);
        return false;
    }
    *key = json_object_get_string(k);
    *len = (size_t)json_object_get_string_len(k);
    *owner = a;
    return true;
}

bool pgcw__cache_logical_event(pgcw_cache *c, const pgcw_event *ev)
{
    if (ev->source != PGCW_SOURCE_LOGICAL || ev->kind != PGCW_EVENT_CHANGE || !ev->table)
        return false;
    size_t np = strlen(c->cfg.prefix);
    if (strncmp(ev->table, c->cfg.prefix, np) != 0 ||
        strcmp(ev->table + np, "cache_entries") != 0)
        return true; /* another table of the publication: nothing of ours */
    /* Every change evicts its key whatever the version (the stream carries none):
     * an own write's copy is evicted too and read again, never served stale. A
     * change without a key (a TRUNCATE) flushes. The change may not be visible
     * yet: the key is evicted (or the L1 flushed) again once it is
     * (cache_logical_vis.c). */
    bool flush = ev->n_keys == 0;
    for (size_t i = 0; !flush && i < ev->n_keys; i++) {
        const char *key;
        size_t len;
        json_object *owner;
        if (!key_of(ev->keys[i], &key, &len, &owner)) {
            flush = true;
            break;
        }
        /* Evicted before it is noted, so the second eviction (on another thread,
         * asked about at once) cannot take the copy first and leave this one
         * uncounted; counted after, so once the key counts as received or
         * applied it already waits for visibility. */
        bool removed = pgcw_l1_delete(c->l1, key, len) == PGCW_OK;
        if (pgcw__cache_l1_key_ok(c, len))
            pgcw__vis_note(c->vis, ev->xid, key, len, false);
        PGCW__CACHE_COUNT(c, inv_received);
        if (removed)
            PGCW__CACHE_COUNT(c, inv_applied);
        json_object_put(owner);
    }
    if (flush) {
        pgcw__vis_note(c->vis, ev->xid, NULL, 0, true);
        pgcw_l1_clear(c->l1);
        PGCW__CACHE_COUNT(c, flushes);
    }
    return true;
}
