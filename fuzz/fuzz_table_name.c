/*
 * fuzz_table_name.c - libFuzzer target for table-name parsing, quoting and
 * install-script generation. Beyond "no crash, no leak" it checks the promises
 * the SQL we generate relies on: a parsed name quotes back to text that parses to
 * the same name; parts are never empty, never longer than 63 bytes; any text up to
 * 63 bytes quotes (pgcw_quote_ident) to an identifier that parses back to exactly
 * that text, and quotes as a literal (pgcw_quote_literal) to '...' with every
 * quote doubled and nothing else changed; a refused name comes with a reason; and
 * any input that install_sql accepts yields a script with every placeholder
 * expanded (when the input holds no brace), while a refusal's message is one line
 * of strict UTF-8 without control bytes. A broken promise traps.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pgcachewatch/install.h>
#include <pgcachewatch/common.h>

#include "pgcw_testhook.h"
#include "utf8_strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const pgcw_qualified_name *q)
{
    char *name = pgcw_quote_ident(q->name);
    char *schema = q->schema[0] ? pgcw_quote_ident(q->schema) : NULL;
    if (!name)
        abort();
    size_t n = strlen(name) + (schema ? strlen(schema) + 1 : 0) + 1;
    char *text = malloc(n);
    if (!text)
        abort();
    if (schema) {
        strcpy(text, schema);
        strcat(text, ".");
        strcat(text, name);
    } else {
        strcpy(text, name);
    }
    pgcw_qualified_name again;
    if (pgcw_parse_qualified_name(text, &again) != PGCW_OK)
        __builtin_trap();
    if (strcmp(again.name, q->name) != 0 || strcmp(again.schema, q->schema) != 0)
        __builtin_trap();
    free(text);
    free(name);
    free(schema);
}

/* Any text, quoted either way, must come back unchanged. */
static void quote_any(const char *text)
{
    size_t n = strlen(text);
    if (n > 0 && n <= PGCW_MAX_IDENTIFIER) {
        char *q = pgcw_quote_ident(text);
        pgcw_qualified_name back;
        if (!q || pgcw_parse_qualified_name(q, &back) != PGCW_OK || back.schema[0] ||
            strcmp(back.name, text) != 0)
            __builtin_trap();
        pgcw_free(q);
    }
    char *lit = pgcw_quote_literal(text);
    if (!lit)
        abort();
    size_t len = strlen(lit), o = 0;
    if (len < 2 || lit[0] != '\'' || lit[len - 1] != '\'')
        __builtin_trap();
    for (size_t i = 1; i + 1 < len; i++, o++) {
        if (lit[i] == '\'' && (i + 2 >= len || lit[++i] != '\''))
            __builtin_trap(); /* a lone quote would end the literal early */
        if (text[o] != lit[i])
            __builtin_trap();
    }
    if (o != n)
        __builtin_trap();
    pgcw_free(lit);
}

/* What a user sees of a refusal: one line of strict UTF-8, no control bytes. */
static void safe_message(const char *msg)
{
    if (!msg[0] || !fuzz_utf8_valid(msg, strlen(msg)))
        __builtin_trap();
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7F)
            __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    pgcw_qualified_name q;
    char err[128];
    if (pgcw__parse_qualified_name(text, &q, err, sizeof err) == PGCW_OK) {
        if (q.name[0] == '\0' || strlen(q.name) > PGCW_MAX_IDENTIFIER ||
            strlen(q.schema) > PGCW_MAX_IDENTIFIER)
            __builtin_trap();
        roundtrip(&q);
    } else if (!err[0]) {
        __builtin_trap();
    }
    quote_any(text);

    /* The same bytes as table, channel and prefix of an install script. */
    pgcw_install_opts o = {
        .channel = text, .trigger_prefix = text, .with_keys = size & 1};
    const char *tables[] = {text};
    char *sql = NULL;
    pgcw_install *in = NULL;
    if (pgcw_install_new(&o, &in) != PGCW_OK) {
        free(text);
        return 0;
    }
    pgcw_status st = pgcw_install_sql(in, tables, 1, &sql);
    if (st == PGCW_OK) {
        /* Braces in the output can only come from the input itself. */
        if (!sql || strncmp(sql, "BEGIN;\n", 7) != 0 ||
            (!strchr(text, '{') && strstr(sql, "{{")))
            __builtin_trap();
    } else if (st != PGCW_EINVAL || sql) {
        __builtin_trap();
    } else {
        safe_message(pgcw_install_errmsg(in));
    }
    pgcw_free(sql);
    pgcw_install_free(in);
    free(text);
    return 0;
}
