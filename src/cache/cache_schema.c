/*
 * cache_schema.c - the cache's settings, the names of its schema objects, the SQL
 * every pool connection prepares, and init_db: the versioned migrations.
 *
 * Names come from the prefix exactly as postgres-cache makes them
 * (<prefix>cache_entries, ...). It pastes them unquoted, so PostgreSQL folds them
 * to lower case; we fold the prefix the same way and then quote every name, so the
 * two libraries always mean the same objects. Never paste a prefix or a channel
 * into SQL unquoted: the prefix is checked here, and quoted anyway.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"
#include "core_time.h"
#include "core_util.h"
#include "pgcachewatch/install.h"
#include "sql_template.h"
#include "watcher_kind.h"

/* The longest suffix is "cache_broadcast_change_trigger" (30 bytes): with it every
 * name fits PostgreSQL's 63-byte identifiers, which it would otherwise truncate
 * (two prefixes could then name the same objects). (Was 63 - 28, from a shorter
 * suffix: a 34- or 35-byte prefix made a 64- or 65-byte trigger name; found by
 * fuzz/fuzz_cache_names.c.) */
#define MAX_PREFIX (63 - 30)

pgcw_status pgcw__cache_cfg_init(pgcw__cache_cfg *cfg, const pgcw_cache_opts *o,
                                 char *why, size_t whylen)
{
    static const pgcw_cache_opts zero;
    if (!o)
        o = &zero;
    memset(cfg, 0, sizeof *cfg);
    const char *ch = o->notify_channel ? o->notify_channel : "cache_events";
    size_t chlen = strlen(ch);
    if (chlen == 0 || chlen > 63) {
        pgcw__errf(why, whylen, "notify_channel must be 1 to 63 bytes (got %zu)", chlen);
        return PGCW_EINVAL;
    }
    memcpy(cfg->channel, ch, chlen + 1);
    const char *px = o->schema_prefix ? o->schema_prefix : "";
    size_t pxlen = strlen(px);
    if (pxlen > MAX_PREFIX) {
        pgcw__errf(why, whylen, "schema_prefix is %zu bytes; at most %d fit every name",
                   pxlen, MAX_PREFIX);
        return PGCW_EINVAL;
    }
    for (size_t i = 0; i < pxlen; i++) {
        char k = px[i];
        bool ok = (k >= 'a' && k <= 'z') || (k >= 'A' && k <= 'Z') ||
                  (k >= '0' && k <= '9') || k == '_';
        if (!ok) {
            pgcw__errf(why, whylen,
                       "schema_prefix may hold only letters, digits and '_' "
                       "(byte %zu is 0x%02x)",
                       i, (unsigned char)k);
            return PGCW_EINVAL;
        }
        cfg->prefix[i] = (k >= 'A' && k <= 'Z') ? (char)(k - 'A' + 'a') : k;
    }
    cfg->prefix[pxlen] = '\0';
    cfg->l1 = !o->disable_l1;
    cfg->notify = cfg->l1 && !o->disable_notify;
    if (o->notify_mode != PGCW_CACHE_NOTIFY_TRIGGER &&
        o->notify_mode != PGCW_CACHE_NOTIFY_AFTER_COMMIT &&
        o->notify_mode != PGCW_CACHE_NOTIFY_BACKGROUND &&
        o->notify_mode != PGCW_CACHE_NOTIFY_LOGICAL) {
        pgcw__errf(why, whylen, "unknown notify_mode %d", (int)o->notify_mode);
        return PGCW_EINVAL;
    }
    cfg->notify_mode = o->notify_mode;
    /* A watcher of the other kind would never evict: the LISTEN kind hears no
     * write of a LOGICAL writer, the logical kind carries no key notification. */
    pgcw_watch_source want = o->notify_mode == PGCW_CACHE_NOTIFY_LOGICAL
                                 ? PGCW_WATCH_LOGICAL
                                 : PGCW_WATCH_LISTEN;
    if (o->watcher && pgcw__watcher_source_kind(o->watcher) != want) {
        pgcw__errf(why, whylen, "notify_mode %s needs a watcher whose source is %s",
                   want == PGCW_WATCH_LOGICAL ? "LOGICAL"
                                              : "TRIGGER, AFTER_COMMIT or "
                                                "BACKGROUND",
                   want == PGCW_WATCH_LOGICAL ? "PGCW_WATCH_LOGICAL (on the publication "
                                                "<prefix>cache_entries_pub)"
                                              : "PGCW_WATCH_LISTEN");
        return PGCW_EINVAL;
    }
    cfg->pool_size = o->pool_size ? o->pool_size : 4;
    cfg->l1_max_entries = o->l1_max_entries ? o->l1_max_entries : 4096;
    cfg->l1_max_bytes = o->l1_max_bytes ? o->l1_max_bytes : (size_t)64 << 20;
    cfg->l1_ttl_us = o->l1_ttl_ms > 0 ? pgcw__ms_to_us(o->l1_ttl_ms) : 0;
    cfg->default_ttl_ms = o->default_ttl_ms ? o->default_ttl_ms : 300000;
    cfg->queue_size = o->notification_queue_size ? o->notification_queue_size : 2048;
    cfg->lock_timeout_ms = o->lock_timeout_ms > 0 ? o->lock_timeout_ms : 5000;
    cfg->cleanup_batch = o->cleanup_batch_size > 0 ? o->cleanup_batch_size : 500;
    if (o->durability != PGCW_CACHE_UNLOGGED && o->durability != PGCW_CACHE_LOGGED) {
        pgcw__errf(why, whylen, "unknown durability %d", (int)o->durability);
        return PGCW_EINVAL;
    }
    cfg->durability = o->durability;
    cfg->statement_timeout_ms = o->statement_timeout_ms ? o->statement_timeout_ms : 10000;
    cfg->log = o->log;
    cfg->log_ctx = o->log_ctx;
    return PGCW_OK;
}

static char *name(const pgcw__cache_cfg *cfg, const char *suffix)
{
    char raw[128];
    pgcw__errf(raw, sizeof raw, "%s%s", cfg->prefix, suffix);
    return pgcw_quote_ident(raw);
}

pgcw_status pgcw__cache_names_init(pgcw__cache_names *n, const pgcw__cache_cfg *cfg)
{
    memset(n, 0, sizeof *n);
    n->entries_table = name(cfg, "cache_entries");
    n->expires_index = name(cfg, "cache_entries_expires_idx");
    n->set_updated_function = name(cfg, "cache_set_updated_at");
    n->set_updated_trigger = name(cfg, "cache_set_updated_at_trigger");
    n->broadcast_function = name(cfg, "cache_broadcast_change");
    n->broadcast_trigger = name(cfg, "cache_broadcast_change_trigger");
    n->cleanup_function = name(cfg, "cache_cleanup_expired");
    n->schema_table = name(cfg, "cache_schema");
    n->notify_channel_literal = pgcw_quote_literal(cfg->channel);
    if (!n->entries_table || !n->expires_index || !n->set_updated_function ||
        !n->set_updated_trigger || !n->broadcast_function || !n->broadcast_trigger ||
        !n->cleanup_function || !n->schema_table || !n->notify_channel_literal) {
        pgcw__cache_names_free(n);
        return PGCW_ENOMEM;
    }
    return PGCW_OK;
}

void pgcw__cache_names_free(pgcw__cache_names *n)
{
    pgcw_free(n->entries_table);
    pgcw_free(n->expires_index);
    pgcw_free(n->set_updated_function);
    pgcw_free(n->set_updated_trigger);
    pgcw_free(n->broadcast_function);
    pgcw_free(n->broadcast_trigger);
    pgcw_free(n->cleanup_function);
    pgcw_free(n->schema_table);
    pgcw_free(n->notify_channel_literal);
    memset(n, 0, sizeof *n);
}

/* Remaining lifetime in ms, computed by the server (never below 1 for a live row,
 * so 0 never means "expired" to the L1); -1 when the row never expires. */
/* Remaining lifetime in ms: -1 for none (NULL, or 'infinity' as plain SQL may
 * write), 0 when expired (a tombstone's '-infinity' included). The subtraction is
 * reached only for finite times: PostgreSQL 15 refuses to subtract an infinite
 * timestamp, and PEEK reads tombstones. */
#define REMAIN                                                                           \
    "CASE WHEN expires_at IS NULL OR expires_at = 'infinity' THEN -1::bigint"            \
    " WHEN expires_at <= now() THEN 0::bigint ELSE greatest(1, ceil(extract(epoch"       \
    " FROM expires_at - now()) * 1000))::bigint END"
#define LIVE "(expires_at IS NULL OR expires_at > now())"
#define EXPIRY "CASE WHEN $3 > 0 THEN now() + $3 * interval '1 millisecond' END"

char *pgcw__cache_setup_sql(const pgcw__cache_cfg *cfg, const pgcw__cache_names *n)
{
    const char *t = n->entries_table;
    pgcw__buf b = {0};
    /* Timeouts: a call never waits on the server longer than these. */
    pgcw__buf_appendf(
        &b, "SET statement_timeout = %lld; SET lock_timeout = %lld;\n",
        (long long)(cfg->statement_timeout_ms > 0 ? cfg->statement_timeout_ms : 0),
        (long long)cfg->lock_timeout_ms);
    pgcw__buf_append(&b, "SET client_encoding = 'UTF8';\n");
    if (cfg->notify_mode != PGCW_CACHE_NOTIFY_TRIGGER) /* the trigger (migration 3) leaves
                                                          these writes to us */
        pgcw__buf_append(&b, "SET pgcachewatch.cache_notify = 'client';\n");
    if (cfg->notify && cfg->notify_mode == PGCW_CACHE_NOTIFY_LOGICAL) {
        pgcw__cache_logical_setup_sql(cfg, n, &b);
    } else if (cfg->notify) {
        /* A client listening on another channel than the trigger's would never be
         * told of a write: refuse to run rather than serve stale copies. */
        char raw_table[128], raw_trigger[128];
        pgcw__errf(raw_table, sizeof raw_table, "%s", t);
        pgcw__errf(raw_trigger, sizeof raw_trigger, "%scache_broadcast_change_trigger",
                   cfg->prefix);
        char *lt = pgcw_quote_literal(raw_table), *lg = pgcw_quote_literal(raw_trigger);
        if (lt && lg)
            pgcw__buf_appendf(
                &b,
                "DO $pgcw$ DECLARE ch text; BEGIN SELECT convert_from(rtrim(tgargs, "
                "'\\x00'::bytea),"
                " 'UTF8') INTO ch FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND "
                "tgname"
                " = %s; IF ch IS DISTINCT FROM %s THEN RAISE EXCEPTION USING ERRCODE ="
                " 'invalid_parameter_value', MESSAGE = format('the cache table''s trigger"
                " notifies on channel %%L, not on this client''s notify_channel %%L', ch,"
                " %s), HINT = 'use the channel the schema was made with'; END IF; END"
                " $pgcw$;\n",
                lt, lg, n->notify_channel_literal, n->notify_channel_literal);
        else
            b.failed = true;
        pgcw_free(lt);
        pgcw_free(lg);
    }
    pgcw__buf_appendf(&b,
                      "PREPARE " PGCW__ST_GET " (text) AS SELECT value, version, " REMAIN
                      " FROM %s WHERE cache_key = $1 AND " LIVE ";\n",
                      t);
    pgcw__buf_appendf(&b,
                      "PREPARE " PGCW__ST_PEEK " (text) AS SELECT value, version, " REMAIN
                      ", " LIVE " FROM %s WHERE cache_key = $1;\n",
                      t);
    pgcw__buf_appendf(&b,
                      "PREPARE " PGCW__ST_SET
                      " (text, bytea, bigint) AS INSERT INTO %s AS e"
                      " (cache_key, value, expires_at) VALUES ($1, $2, " EXPIRY ")"
                      " ON CONFLICT (cache_key) DO UPDATE SET value = EXCLUDED.value,"
                      " expires_at = EXCLUDED.expires_at, version = e.version + 1,"
                      " updated_at = now() RETURNING version;\n",
                      t);
    /* A delete is a tombstone: versions keep growing (see cache.h). */
    pgcw__buf_appendf(
        &b,
        "PREPARE " PGCW__ST_DEL " (text) AS INSERT INTO %s AS e"
        " (cache_key, value, expires_at) VALUES ($1, ''::bytea, '-infinity')"
        " ON CONFLICT (cache_key) DO UPDATE SET value = ''::bytea,"
        " expires_at = '-infinity', version = e.version + 1,"
        " updated_at = now() RETURNING version;\n",
        t);
    /* The lease: write only if nothing wrote the key since the re-check. */
    pgcw__buf_appendf(&b,
                      "PREPARE " PGCW__ST_FILL_NEW
                      " (text, bytea, bigint) AS INSERT INTO %s"
                      " (cache_key, value, expires_at) VALUES ($1, $2, " EXPIRY ")"
                      " ON CONFLICT (cache_key) DO NOTHING RETURNING version;\n",
                      t);
    pgcw__buf_appendf(&b,
                      "PREPARE " PGCW__ST_FILL_OLD
                      " (text, bytea, bigint, bigint) AS UPDATE %s"
                      " SET value = $2, expires_at = " EXPIRY ", version = version + 1,"
                      " updated_at = now() WHERE cache_key = $1 AND version = $4"
                      " RETURNING version;\n",
                      t);
    pgcw__buf_append(
        &b, "PREPARE " PGCW__ST_TRYLOCK " (bigint) AS SELECT pg_try_advisory_lock($1);\n"
            "PREPARE " PGCW__ST_LOCK " (bigint) AS SELECT pg_advisory_lock($1);\n"
            "PREPARE " PGCW__ST_UNLOCK " (bigint) AS SELECT pg_advisory_unlock($1);\n");
    pgcw__buf_appendf(&b, "PREPARE " PGCW__ST_CLEANUP " (integer) AS SELECT %s($1);\n",
                      n->cleanup_function);
    return pgcw__buf_take(&b);
}
