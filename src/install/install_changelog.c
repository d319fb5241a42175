/*
 * install_changelog.c - the change log of a channel (install.h, source
 * PGCW_WATCH_POLL; docs/source_poll.md): its tables and functions in the install
 * script, the search_path that lets the functions find it, and what uninstall
 * looks for. Names come from sql_changelog.h, shared with the poll source. Never
 * connects; pastes only quoted names.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "core_util.h"
#include "install_internal.h"
#include "sql_template.h"

/* The quoted change-log names; freed by quoted_free(). */
typedef struct quoted {
    char *table, *pruned_table, *write_function, *read_function, *prune_function;
} quoted;

static void quoted_free(quoted *q)
{
    free(q->table);
    free(q->pruned_table);
    free(q->write_function);
    free(q->read_function);
    free(q->prune_function);
}

static bool quote_all(const pgcw__changelog_names *l, quoted *q)
{
    q->table = pgcw_quote_ident(l->table);
    q->pruned_table = pgcw_quote_ident(l->pruned_table);
    q->write_function = pgcw_quote_ident(l->write_function);
    q->read_function = pgcw_quote_ident(l->read_function);
    q->prune_function = pgcw_quote_ident(l->prune_function);
    return q->table && q->pruned_table && q->write_function && q->read_function &&
           q->prune_function;
}

pgcw_status pgcw__install_changelog(pgcw__buf *out, const pgcw__install_names *n,
                                    const char *tag)
{
    quoted q = {0};
    pgcw_status st = PGCW_ENOMEM;
    if (quote_all(&n->log, &q)) {
        const pgcw__sql_var vars[] = {
            {"log_table", q.table},
            {"pruned_table", q.pruned_table},
            {"write_function", q.write_function},
            {"read_function", q.read_function},
            {"prune_function", q.prune_function},
            {"tag", tag},
        };
        size_t nv = sizeof vars / sizeof vars[0];
        st = pgcw__sql_expand(out, pgcw__sql_changelog_tables, vars, nv);
        if (st == PGCW_OK)
            st = pgcw__sql_expand(out, pgcw__sql_changelog_functions, vars, nv);
    }
    quoted_free(&q);
    return st;
}

/* Appends sig as a quoted literal element of an SQL array: ", '"fn"(args)'". */
static void append_signature(pgcw__buf *b, const char *name, const char *args)
{
    char *ident = pgcw_quote_ident(name);
    pgcw__buf sig = {0};
    pgcw__buf_appendf(&sig, "%s(%s)", ident ? ident : "", args);
    char *lit = sig.failed || !ident ? NULL : pgcw_quote_literal(sig.data);
    if (!lit)
        b->failed = true;
    else
        pgcw__buf_appendf(b, "%s%s", b->len ? ", " : "", lit);
    free(lit);
    free(ident);
    pgcw__buf_free(&sig);
}

pgcw_status pgcw__install_changelog_path(pgcw__buf *out, const pgcw__install_names *n,
                                         const char *tag)
{
    pgcw__buf sigs = {0};
    for (size_t i = 0; i < PGCW__N_CHANGELOG_FUNCTIONS; i++)
        append_signature(&sigs, pgcw__install_changelog_function(n, i),
                         pgcw__changelog_args[i]);
    append_signature(&sigs, n->function, "");
    if (n->with_keys)
        append_signature(&sigs, n->keys_function, "");
    pgcw_status st = PGCW_ENOMEM;
    if (!sigs.failed) {
        const pgcw__sql_var vars[] = {{"signatures", sigs.data}, {"tag", tag}};
        st = pgcw__sql_expand(out, pgcw__sql_changelog_search_path, vars, 2);
    }
    pgcw__buf_free(&sigs);
    return st;
}

const char *const pgcw__changelog_args[PGCW__N_CHANGELOG_FUNCTIONS] = {
    "text, text", "pg_catalog.xid8, bigint, integer, pg_catalog.pg_snapshot", "bigint"};

const char *pgcw__install_changelog_function(const pgcw__install_names *n, size_t i)
{
    const char *names[PGCW__N_CHANGELOG_FUNCTIONS] = {
        n->log.write_function, n->log.read_function, n->log.prune_function};
    return names[i];
}
