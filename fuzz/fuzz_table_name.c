/*
 * fuzz_table_name.c - libFuzzer target for table-name parsing, quoting and
 * install-script generation. Beyond "no crash, no leak" it checks the promises
 * the SQL we generate relies on: a parsed name quotes back to text that parses to
 * the same name; parts are never empty, never longer than 63 bytes; and any input
 * that install_sql accepts yields a script with every placeholder expanded (when
 * the input holds no brace). A broken promise traps.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pgcachewatch/install.h>
#include <pgcachewatch/common.h>

#include "pgcw_testhook.h"

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
    }

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
    }
    pgcw_free(sql);
    pgcw_install_free(in);
    free(text);
    return 0;
}
