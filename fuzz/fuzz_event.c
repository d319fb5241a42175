/*
 * fuzz_event.c - libFuzzer target for the payload parser, the event formats and the
 * timestamp parser. Beyond "no crash, no leak" it checks the promises callers rely
 * on: a parsed event's JSON form is valid one-line JSON carrying the same table,
 * every key is a JSON array, a clone is equal, and a parsed timestamp formats back
 * to text that parses to the same instant. Strict UTF-8 (judged by
 * fuzz/utf8_strict.h, not by the library's own check, and not by json-c's, which
 * lets overlong forms and surrogates through): the channel, schema, table, every
 * primary-key column and key, the event's JSON and text forms. A broken promise
 * traps.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <pgcachewatch/event.h>
#include <pgcachewatch/common.h>
#include "pgcw_testhook.h"
#include "utf8_strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_object *strict_parse(const char *text)
{
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    size_t len = strlen(text);
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    if (json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) != len) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static void utf8(const char *s)
{
    if (s && !fuzz_utf8_valid(s, strlen(s)))
        __builtin_trap();
}

static bool same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void check_event(const pgcw_event *e)
{
    /* A table change names its table; a schema change (DDL) may name none, but
     * always has its command tag, object type and identity (event.h). */
    bool schema = e->kind == PGCW_EVENT_SCHEMA;
    if ((!schema && (!e->table || !e->table[0])) || !e->channel || !e->payload)
        __builtin_trap();
    if (schema && (!e->command_tag || !e->object_type || !e->object_identity))
        __builtin_trap();
    utf8(e->channel);
    utf8(e->schema);
    utf8(e->table);
    if (schema) {
        utf8(e->command_tag);
        utf8(e->object_type);
        utf8(e->object_identity);
    }
    for (size_t i = 0; i < e->n_pk_columns; i++)
        utf8(e->pk_columns[i]);
    for (size_t i = 0; i < e->n_keys; i++)
        utf8(e->keys[i]);
    for (size_t i = 0; i < e->n_keys; i++) {
        json_object *k = strict_parse(e->keys[i]);
        if (!json_object_is_type(k, json_type_array) ||
            (e->n_pk_columns && json_object_array_length(k) != e->n_pk_columns))
            __builtin_trap();
        json_object_put(k);
    }
    char *json = pgcw_event_to_json(e);
    if (json) {
        utf8(json);
        json_object *o = strict_parse(json);
        json_object *table = NULL;
        if (!o || strchr(json, '\n') || !json_object_object_get_ex(o, "table", &table) ||
            !same(table ? json_object_get_string(table) : NULL, e->table))
            __builtin_trap();
        json_object_put(o);
    }
    pgcw_free(json);
    char *text = pgcw_event_to_text(e);
    if (text && strchr(text, '\n'))
        __builtin_trap();
    utf8(text);
    pgcw_free(text);

    const pgcw_event *c = NULL;
    if (pgcw_event_clone(e, &c) == PGCW_OK) {
        if (!same(c->table, e->table) || strcmp(c->payload, e->payload) != 0 ||
            c->n_keys != e->n_keys || c->sent_at_us != e->sent_at_us)
            __builtin_trap();
        for (size_t i = 0; i < e->n_keys; i++)
            if (strcmp(c->keys[i], e->keys[i]) != 0)
                __builtin_trap();
        pgcw_event_free(c);
    }
}

static void check_time(const uint8_t *data, size_t size)
{
    char text[64];
    if (size >= sizeof text)
        size = sizeof text - 1;
    memcpy(text, data, size);
    text[size] = '\0';
    int64_t us, back;
    if (pgcw_time_parse(text, &us) != PGCW_OK)
        return;
    char buf[32];
    pgcw_time_format(us, buf, sizeof buf);
    if (pgcw_time_parse(buf, &back) != PGCW_OK || back != us)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[128];
    pgcw_event *e = NULL;
    /* An exact-size heap copy, so ASan sees any read past payload_len. */
    char *payload = malloc(size ? size : 1);
    if (!payload)
        return 0;
    memcpy(payload, data, size);
    /* pgcw_event_parse(PGCW_FORMAT_TABLE_CHANGE, ...) with the reason it refuses. */
    pgcw_status st = pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, "fuzz", payload, size,
                                        1, &e, err, sizeof err);
    if (st == PGCW_OK) {
        check_event(e);
        pgcw_event_free(e);
    } else if (e || (st == PGCW_EPARSE && (!err[0] || strchr(err, '\n')))) {
        __builtin_trap();
    }
    free(payload);
    check_time(data, size);
    return 0;
}
