/*
 * install_script.c - generating the install script (install.h): names derived
 * from the options, quoted, then pasted with the tables into the templates of sql/.
 * No unquoted input ever reaches SQL, and nothing is produced before every name
 * has been checked. Never connects.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_util.h"
#include "install_internal.h"
#include "sql_names.h"
#include "sql_template.h"

static const char *const key_suffixes[PGCW__N_KEYS_TRIGGERS] = {"_ins", "_upd", "_del"};

pgcw_status pgcw__install_resolve(const pgcw_install_opts *opts, pgcw__install_names *n,
                                  char *errbuf, size_t errlen)
{
    pgcw_install_opts o = opts ? *opts : (pgcw_install_opts){0};
    n->channel = o.channel ? o.channel : PGCW_DEFAULT_CHANNEL;
    n->function_name = o.function_name ? o.function_name : PGCW_DEFAULT_FUNCTION_NAME;
    n->trigger_prefix = o.trigger_prefix ? o.trigger_prefix : PGCW_DEFAULT_TRIGGER_PREFIX;
    n->with_keys = o.with_keys;
    n->ddl = o.ddl;
    n->poll = o.source == PGCW_WATCH_POLL;
    if (o.source != PGCW_WATCH_LISTEN && !n->poll) {
        pgcw__errf(errbuf, errlen, "source %d is not supported by this build",
                   (int)o.source);
        return PGCW_EINVAL;
    }
    if (n->channel[0] == '\0') {
        pgcw__errf(errbuf, errlen, "the channel name is empty");
        return PGCW_EINVAL;
    }
    if (strlen(n->channel) > PGCW_MAX_IDENTIFIER) {
        pgcw__errf(errbuf, errlen, "channel name \"%s\" is longer than %d bytes",
                   n->channel, PGCW_MAX_IDENTIFIER);
        return PGCW_EINVAL;
    }
    if (n->function_name[0] == '\0') {
        pgcw__errf(errbuf, errlen, "the function name is empty");
        return PGCW_EINVAL;
    }
    if (strlen(n->function_name) > PGCW_MAX_IDENTIFIER ||
        strlen(n->trigger_prefix) > PGCW_MAX_IDENTIFIER) {
        pgcw__errf(errbuf, errlen,
                   "function name or trigger prefix is longer than %d bytes",
                   PGCW_MAX_IDENTIFIER);
        return PGCW_EINVAL;
    }
    char base[2 * PGCW_MAX_IDENTIFIER + 2];
    snprintf(base, sizeof base, "%s_", n->function_name);
    pgcw__derive_name(n->unfolded_function, base, n->channel, "");
    pgcw__derive_name(n->unfolded_keys_function, base, n->channel, "_keys");

    /* The Python tool pastes its names unquoted, so PostgreSQL folds them; folding
     * ours the same way makes them the same objects. */
    char channel[PGCW_MAX_IDENTIFIER + 1], prefix[PGCW_MAX_IDENTIFIER + 1];
    snprintf(channel, sizeof channel, "%s", n->channel);
    snprintf(prefix, sizeof prefix, "%s", n->trigger_prefix);
    pgcw__fold_ascii(base);
    pgcw__fold_ascii(channel);
    pgcw__fold_ascii(prefix);
    pgcw__derive_name(n->function, base, channel, "");
    pgcw__derive_name(n->keys_function, base, channel, "_keys");
    pgcw__derive_name(n->trigger, prefix, channel, "");
    for (int i = 0; i < PGCW__N_KEYS_TRIGGERS; i++)
        pgcw__derive_name(n->keys_triggers[i], prefix, channel, key_suffixes[i]);
    pgcw__derive_name(n->ddl_function, base, channel, "_ddl");
    pgcw__derive_name(n->ddl_trigger_end, prefix, channel, "_ddl_end");
    pgcw__derive_name(n->ddl_trigger_drop, prefix, channel, "_ddl_drop");
    pgcw__changelog_names_derive(n->function_name, n->channel, &n->log);
    return PGCW_OK;
}

void pgcw__install_body_tag(const char *quoted_channel, char tag[32])
{
    snprintf(tag, 32, "$pgcw$");
    for (unsigned i = 1; strstr(quoted_channel, tag); i++)
        snprintf(tag, 32, "$pgcw_%u$", i);
}

/* The owned, quoted names of one channel that every template may use; freed by
 * quoted_free(). */
typedef struct quoted {
    char *channel, *function, *keys_function, *trigger;
    char *keys_triggers[PGCW__N_KEYS_TRIGGERS];
    char *ddl_function, *ddl_trigger_end, *ddl_trigger_drop;
} quoted;

static void quoted_free(quoted *q)
{
    free(q->channel);
    free(q->function);
    free(q->keys_function);
    free(q->trigger);
    free(q->ddl_function);
    free(q->ddl_trigger_end);
    free(q->ddl_trigger_drop);
    for (int i = 0; i < PGCW__N_KEYS_TRIGGERS; i++)
        free(q->keys_triggers[i]);
    *q = (quoted){0};
}

/* Quotes n's names into q; false on OOM (q holds what was done: free it). */
static bool quote_names(const pgcw__install_names *n, quoted *q)
{
    q->channel = pgcw_quote_literal(n->channel);
    q->function = pgcw_quote_ident(n->function);
    q->keys_function = pgcw_quote_ident(n->keys_function);
    q->trigger = pgcw_quote_ident(n->trigger);
    q->ddl_function = pgcw_quote_ident(n->ddl_function);
    q->ddl_trigger_end = pgcw_quote_ident(n->ddl_trigger_end);
    q->ddl_trigger_drop = pgcw_quote_ident(n->ddl_trigger_drop);
    bool ok = q->channel && q->function && q->keys_function && q->trigger &&
              q->ddl_function && q->ddl_trigger_end && q->ddl_trigger_drop;
    for (int i = 0; i < PGCW__N_KEYS_TRIGGERS; i++)
        ok = (q->keys_triggers[i] = pgcw_quote_ident(n->keys_triggers[i])) && ok;
    return ok;
}

char *pgcw__install_quote_table(const pgcw_qualified_name *t)
{
    char *name = pgcw_quote_ident(t->name);
    if (!name || t->schema[0] == '\0')
        return name;
    char *schema = pgcw_quote_ident(t->schema);
    char *out = NULL;
    if (schema) {
        pgcw__buf b = {0};
        pgcw__buf_appendf(&b, "%s.%s", schema, name);
        out = pgcw__buf_take(&b);
    }
    free(schema);
    free(name);
    return out;
}

/* Appends the triggers of one table. */
static pgcw_status append_table(pgcw__buf *out, const pgcw__install_names *n,
                                const quoted *fq, const char *table_text, char *errbuf,
                                size_t errlen)
{
    pgcw_qualified_name t;
    pgcw_status st = pgcw__parse_qualified_name(table_text, &t, errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    char *table = pgcw__install_quote_table(&t);
    if (!table)
        st = PGCW_ENOMEM;

    if (st == PGCW_OK && n->with_keys) {
        const pgcw__sql_var vars[] = {
            {"table", table},
            {"trigger", fq->trigger},
            {"trigger_ins", fq->keys_triggers[0]},
            {"trigger_upd", fq->keys_triggers[1]},
            {"trigger_del", fq->keys_triggers[2]},
            {"function", fq->function},
            {"keys_function", fq->keys_function},
        };
        st = pgcw__sql_expand(out, pgcw__sql_keys_triggers, vars,
                              sizeof vars / sizeof vars[0]);
    } else if (st == PGCW_OK) {
        /* Switching from with_keys: drop that variant's triggers. */
        for (int i = 0; i < PGCW__N_KEYS_TRIGGERS && st == PGCW_OK; i++) {
            const pgcw__sql_var vars[] = {{"table", table},
                                          {"trigger", fq->keys_triggers[i]}};
            st = pgcw__sql_expand(out, pgcw__sql_drop_trigger_if_exists, vars, 2);
        }
        const pgcw__sql_var vars[] = {
            {"table", table}, {"trigger", fq->trigger}, {"function", fq->function}};
        if (st == PGCW_OK)
            st = pgcw__sql_expand(out, pgcw__sql_table_triggers, vars, 3);
    }
    free(table);
    if (st == PGCW_EINVAL)
        pgcw__errf(errbuf, errlen, "internal error: bad SQL template");
    return st;
}

/* The superuser check, the DDL function and its two event triggers. */
static pgcw_status append_ddl(pgcw__buf *out, const quoted *fq, const char *tag)
{
    char max[16];
    snprintf(max, sizeof max, "%d", PGCW_MAX_PAYLOAD);
    const pgcw__sql_var vars[] = {
        {"function", fq->ddl_function},
        {"channel", fq->channel},
        {"tag", tag},
        {"max_payload", max},
        {"trigger_end", fq->ddl_trigger_end},
        {"trigger_drop", fq->ddl_trigger_drop},
    };
    size_t nv = sizeof vars / sizeof vars[0];
    pgcw_status st = pgcw__sql_expand(out, pgcw__sql_ddl_superuser_check, vars, nv);
    if (st == PGCW_OK)
        st = pgcw__sql_expand(out, pgcw__sql_ddl_function, vars, nv);
    if (st == PGCW_OK)
        st = pgcw__sql_expand(out, pgcw__sql_ddl_event_triggers, vars, nv);
    return st;
}

pgcw_status pgcw__install_script(const pgcw_install_opts *opts, const char *const *tables,
                                 size_t n_tables, char **sql_out, char *errbuf,
                                 size_t errlen)
{
    if (sql_out)
        *sql_out = NULL;
    if (!sql_out || (n_tables && !tables)) {
        pgcw__errf(errbuf, errlen, "invalid arguments");
        return PGCW_EINVAL;
    }
    pgcw__install_names n;
    pgcw_status st = pgcw__install_resolve(opts, &n, errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    if (n.ddl && n.poll) {
        pgcw__errf(errbuf, errlen,
                   "DDL events are notified only: install --ddl without --source poll");
        return PGCW_EINVAL;
    }
    if (n.ddl && n_tables) {
        pgcw__errf(errbuf, errlen,
                   "DDL event triggers are database-wide: install tables without --ddl");
        return PGCW_EINVAL;
    }

    quoted fq = {0};
    if (!quote_names(&n, &fq)) {
        quoted_free(&fq);
        pgcw__errf(errbuf, errlen, "out of memory");
        return PGCW_ENOMEM;
    }
    char tag[32];
    pgcw__install_body_tag(fq.channel, tag);

    pgcw__buf out = {0};
    pgcw__buf_append(&out,
                     "BEGIN;\n"
                     "-- DROP TRIGGER IF EXISTS reports missing triggers as NOTICEs.\n"
                     "SET LOCAL client_min_messages = warning;\n");
    /* With a change log the notify functions call its writer, which notifies too. */
    char *notify = n.poll ? pgcw_quote_ident(n.log.write_function) : NULL;
    if (n.poll && !notify)
        st = PGCW_ENOMEM;
    const pgcw__sql_var fvars[] = {{"function", fq.function},
                                   {"channel", fq.channel},
                                   {"tag", tag},
                                   {"notify", notify ? notify : "pg_notify"}};
    if (st == PGCW_OK && n.poll)
        st = pgcw__install_changelog(&out, &n, tag);
    if (st == PGCW_OK && n.ddl)
        st = append_ddl(&out, &fq, tag);
    else if (st == PGCW_OK)
        st = pgcw__sql_expand(&out, pgcw__sql_notify_function, fvars, 4);
    if (st == PGCW_OK && n.with_keys && !n.ddl) {
        const pgcw__sql_var kvars[] = {{"function", fq.keys_function},
                                       {"channel", fq.channel},
                                       {"tag", tag},
                                       {"notify", fvars[3].value}};
        st = pgcw__sql_expand(&out, pgcw__sql_notify_keys_function, kvars, 4);
    }
    if (st == PGCW_EINVAL)
        pgcw__errf(errbuf, errlen, "internal error: bad SQL template");
    for (size_t i = 0; i < n_tables && st == PGCW_OK; i++)
        st = append_table(&out, &n, &fq, tables[i], errbuf, errlen);
    if (st == PGCW_OK && n.poll)
        st = pgcw__install_changelog_path(&out, &n, tag);
    quoted_free(&fq);
    free(notify);
    if (st == PGCW_OK)
        pgcw__buf_append(&out, "COMMIT;\n");
    if (st == PGCW_OK && out.failed)
        st = PGCW_ENOMEM;
    if (st != PGCW_OK) {
        if (st == PGCW_ENOMEM)
            pgcw__errf(errbuf, errlen, "out of memory");
        pgcw__buf_free(&out);
        return st;
    }
    *sql_out = pgcw__buf_take(&out);
    return PGCW_OK;
}
