/*
 * fuzz_cache_names.c - libFuzzer target for the cache's settings check and the
 * names it derives (src/cache/cache_schema.c). The input is split at its first NUL
 * into a schema prefix and a notify channel (no NUL: the default channel). What
 * must hold, else it traps:
 *   - the settings are accepted exactly when the prefix is at most 33 letters,
 *     digits and '_' and the channel 1 to 63 bytes (this file's own rule), and a
 *     refusal says why in one line;
 *   - once accepted, the prefix is the input folded to lower case, every object
 *     name is a quoted identifier that parses back to <prefix><suffix> and fits
 *     PostgreSQL's 63 bytes, the channel's literal unquotes to the channel, and
 *     the SQL every pool connection prepares has no placeholder left.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgcw_testhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n > 33) /* 63 minus the longest suffix, "cache_broadcast_change_trigger" */
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
              (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
            return false;
    return true;
}

/* A quoted identifier must parse back to exactly prefix + suffix. */
static void check_name(const char *quoted, const char *prefix, const char *suffix)
{
    pgcw_qualified_name q;
    char want[128];
    snprintf(want, sizeof want, "%s%s", prefix, suffix);
    if (!quoted || quoted[0] != '"' || pgcw_parse_qualified_name(quoted, &q) != PGCW_OK ||
        q.schema[0] || strcmp(q.name, want) != 0 || strlen(q.name) > 63)
        __builtin_trap();
}

/* 'text' with every ' doubled, and nothing else. */
static void check_literal(const char *lit, const char *text)
{
    size_t n = strlen(lit);
    if (n < 2 || lit[0] != '\'' || lit[n - 1] != '\'')
        __builtin_trap();
    const char *t = text;
    for (size_t i = 1; i < n - 1; i++, t++) {
        if (lit[i] == '\'' && lit[++i] != '\'')
            __builtin_trap();
        if (i >= n - 1 || lit[i] != *t)
            __builtin_trap();
    }
    if (*t)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *prefix = text;
    const char *channel = strlen(text) < size ? text + strlen(text) + 1 : NULL;

    pgcw_cache_opts o = {.schema_prefix = prefix, .notify_channel = channel};
    pgcw__cache_cfg cfg;
    char why[256] = "";
    pgcw_status st = pgcw__cache_cfg_init(&cfg, &o, why, sizeof why);
    const char *ch = channel ? channel : "cache_events";
    bool ok = prefix_ok(prefix) && strlen(ch) >= 1 && strlen(ch) <= 63;
    if ((st == PGCW_OK) != ok || (st != PGCW_OK && (!why[0] || strchr(why, '\n'))))
        __builtin_trap();
    if (st != PGCW_OK) {
        free(text);
        return 0;
    }
    char lower[64];
    size_t n = strlen(prefix);
    for (size_t i = 0; i <= n; i++)
        lower[i] =
            (prefix[i] >= 'A' && prefix[i] <= 'Z') ? prefix[i] - 'A' + 'a' : prefix[i];
    if (strcmp(cfg.prefix, lower) != 0 || strcmp(cfg.channel, ch) != 0)
        __builtin_trap();

    pgcw__cache_names names;
    if (pgcw__cache_names_init(&names, &cfg) == PGCW_OK) {
        check_name(names.entries_table, lower, "cache_entries");
        check_name(names.expires_index, lower, "cache_entries_expires_idx");
        check_name(names.set_updated_function, lower, "cache_set_updated_at");
        check_name(names.set_updated_trigger, lower, "cache_set_updated_at_trigger");
        check_name(names.broadcast_function, lower, "cache_broadcast_change");
        check_name(names.broadcast_trigger, lower, "cache_broadcast_change_trigger");
        check_name(names.cleanup_function, lower, "cache_cleanup_expired");
        check_name(names.schema_table, lower, "cache_schema");
        check_literal(names.notify_channel_literal, ch);
        char *setup = pgcw__cache_setup_sql(&cfg, &names);
        /* Braces in the SQL can only come from the channel itself. */
        if (setup && !strchr(ch, '{') && strstr(setup, "{{"))
            __builtin_trap();
        free(setup);
        pgcw__cache_names_free(&names);
    }
    free(text);
    return 0;
}
