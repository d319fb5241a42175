/*
 * event_format.c - an event as one line of JSON (for `listen --json`, logs) or one
 * line of text for people. Never writes a newline or an unescaped control character
 * into its output, and never reads an event beyond its public fields.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "pgcachewatch/event.h"
#include "core_util.h"

/* "-1.234": milliseconds with exactly the microseconds we have, no binary noise. */
static void format_ms(int64_t us, char *buf, size_t len)
{
    uint64_t mag = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
    snprintf(buf, len, "%s%" PRIu64 ".%03" PRIu64, us < 0 ? "-" : "", mag / 1000,
             mag % 1000);
}

static json_object *str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

/* A key is already compact JSON text built by the parser: embed it verbatim rather
 * than re-parse it (json-c would normalize numbers). */
static json_object *raw_json(const char *text)
{
    json_object *o = json_object_new_string("");
    char *copy = pgcw__strdup(text);
    if (!o || !copy) {
        json_object_put(o);
        free(copy);
        return NULL;
    }
    json_object_set_serializer(o, json_object_userdata_to_json_string, copy,
                               json_object_free_userdata);
    return o;
}

/* Lower-case hex of n bytes, as a JSON string. */
static json_object *hex_string(const char *p, size_t n)
{
    if (n > (SIZE_MAX - 1) / 2 || n * 2 > (size_t)INT32_MAX)
        return NULL;
    char *hex = malloc(n * 2 + 1);
    if (!hex)
        return NULL;
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)p[i]);
    json_object *o = json_object_new_string_len(hex, (int)(n * 2));
    free(hex);
    return o;
}

/* Adds name:value; a NULL value is a JSON null unless allocation failed, which
 * `want` tells apart. */
static bool add(json_object *obj, const char *name, json_object *value, bool want)
{
    if (want && !value)
        return false;
    if (json_object_object_add(obj, name, value) != 0) {
        json_object_put(value);
        return false;
    }
    return true;
}

char *pgcw_event_to_json(const pgcw_event *e)
{
    if (!e)
        return NULL;
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    bool gap = e->kind == PGCW_EVENT_GAP;
    bool key = e->kind == PGCW_EVENT_KEY;
    char sent[40], recv[40], ms[32];
    pgcw_time_format(e->sent_at_us, sent, sizeof sent);
    pgcw_time_format(e->received_at_us, recv, sizeof recv);
    format_ms(e->latency_us, ms, sizeof ms);
    bool ok =
        add(o, "kind", json_object_new_string(pgcw_event_kind_name(e->kind)), true) &&
        add(o, "channel", json_object_new_string(e->channel ? e->channel : ""), true) &&
        add(o, "operation", json_object_new_string(pgcw_op_name(e->operation)), true);
    if (ok && key) {
        /* A key is bytes; JSON wants UTF-8, so a key that is not says so in hex. */
        bool text = pgcw__utf8_valid(e->key, e->key_len);
        ok = text ? add(o, "key", json_object_new_string_len(e->key, (int)e->key_len),
                        true)
                  : add(o, "key_hex", hex_string(e->key, e->key_len), true);
        ok = ok && add(o, "version", json_object_new_int64(e->version), true) &&
             add(o, "received_at", json_object_new_string(recv), true);
    } else if (ok) {
        ok = add(o, "schema", str_or_null(e->schema), e->schema != NULL) &&
             add(o, "table", str_or_null(e->table), e->table != NULL) &&
             add(o, "sent_at", json_object_new_string(sent), true) &&
             add(o, "received_at", json_object_new_string(recv), true) &&
             add(o, "latency_ms",
                 json_object_new_double_s((double)e->latency_us / 1000.0, ms), true);
    }
    if (ok)
        ok = add(o, "source", json_object_new_string(pgcw_event_source_name(e->source)),
                 true);
    if (ok && e->kind == PGCW_EVENT_SCHEMA)
        ok = add(o, "command_tag", str_or_null(e->command_tag), e->command_tag != NULL) &&
             add(o, "object_type", str_or_null(e->object_type), e->object_type != NULL) &&
             add(o, "object_identity", str_or_null(e->object_identity),
                 e->object_identity != NULL);
    if (ok && e->n_pk_columns) {
        json_object *pk = json_object_new_array_ext((int)e->n_pk_columns);
        ok = add(o, "pk", pk, true);
        for (size_t i = 0; ok && i < e->n_pk_columns; i++) {
            json_object *col = json_object_new_string(e->pk_columns[i]);
            ok = col && json_object_array_add(pk, col) == 0;
            if (!ok)
                json_object_put(col);
        }
    }
    if (ok && e->n_keys) {
        json_object *keys = json_object_new_array_ext((int)e->n_keys);
        ok = add(o, "keys", keys, true);
        for (size_t i = 0; ok && i < e->n_keys; i++) {
            json_object *k = raw_json(e->keys[i]);
            ok = k && json_object_array_add(keys, k) == 0;
            if (!ok)
                json_object_put(k);
        }
    }
    if (ok && e->part)
        ok = add(o, "part", json_object_new_int(e->part), true);
    if (ok && gap)
        ok = add(o, "gap_reason",
                 json_object_new_string(pgcw_gap_reason_name(e->gap_reason)), true) &&
             add(o, "gap_lost", json_object_new_uint64(e->gap_lost), true);
    if (ok && e->backend_pid)
        ok = add(o, "backend_pid", json_object_new_int(e->backend_pid), true);
    if (ok && e->lsn) {
        char lsn[24]; /* PostgreSQL's form of a WAL position */
        snprintf(lsn, sizeof lsn, "%X/%X", (unsigned)(e->lsn >> 32), (unsigned)e->lsn);
        ok = add(o, "lsn", json_object_new_string(lsn), true);
    }
    if (ok)
        ok = add(o, "epoch", json_object_new_uint64(e->epoch), true);
    char *out = NULL;
    if (ok) {
        const char *s = json_object_to_json_string_ext(
            o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        out = s ? pgcw__strdup(s) : NULL;
    }
    json_object_put(o);
    return out;
}

/* Names may hold any character PostgreSQL allows in a quoted identifier; keep the
 * line one line by escaping controls and backslashes. */
static void append_clean_n(pgcw__buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            pgcw__buf_appendf(b, "\\x%02x", c);
        else if (c == '\\')
            pgcw__buf_append(b, "\\\\");
        else
            pgcw__buf_appendn(b, (const char *)&c, 1);
    }
}

static void append_clean(pgcw__buf *b, const char *s)
{
    append_clean_n(b, s, strlen(s));
}

char *pgcw_event_to_text(const pgcw_event *e)
{
    if (!e)
        return NULL;
    pgcw__buf b = {0};
    if (e->kind == PGCW_EVENT_GAP) {
        pgcw__buf_appendf(&b, "gap (%s) lost=%" PRIu64 " epoch=%" PRIu64,
                          pgcw_gap_reason_name(e->gap_reason), e->gap_lost, e->epoch);
        return pgcw__buf_take(&b);
    }
    if (e->kind == PGCW_EVENT_KEY) {
        pgcw__buf_appendf(&b, "%s key ", pgcw_op_name(e->operation));
        if (pgcw__utf8_valid(e->key, e->key_len)) {
            pgcw__buf_append(&b, "\"");
            append_clean_n(&b, e->key, e->key_len);
            pgcw__buf_append(&b, "\"");
        } else {
            pgcw__buf_append(&b, "hex:");
            for (size_t i = 0; i < e->key_len; i++)
                pgcw__buf_appendf(&b, "%02x", (unsigned char)e->key[i]);
        }
        pgcw__buf_appendf(&b, " version=%" PRId64, e->version);
        return pgcw__buf_take(&b);
    }
    char sent[40], ms[32];
    pgcw_time_format(e->sent_at_us, sent, sizeof sent);
    format_ms(e->latency_us, ms, sizeof ms);
    if (e->kind == PGCW_EVENT_SCHEMA) {
        /* "schema ALTER TABLE table public.items on public.items sent_at=..." */
        pgcw__buf_append(&b, "schema ");
        append_clean(&b, e->command_tag ? e->command_tag : "");
        pgcw__buf_append(&b, " ");
        append_clean(&b, e->object_type ? e->object_type : "");
        pgcw__buf_append(&b, " ");
        append_clean(&b, e->object_identity ? e->object_identity : "");
        if (e->table)
            pgcw__buf_append(&b, " on ");
    } else {
        pgcw__buf_append(&b, pgcw_op_name(e->operation));
        pgcw__buf_append(&b, " ");
    }
    if (e->schema && (e->table || e->kind != PGCW_EVENT_SCHEMA)) {
        append_clean(&b, e->schema);
        pgcw__buf_append(&b, ".");
    }
    append_clean(&b, e->table ? e->table : "");
    pgcw__buf_appendf(&b, " sent_at=%s latency=%sms", sent, ms);
    if (e->n_keys) {
        pgcw__buf_append(&b, " keys=");
        for (size_t i = 0; i < e->n_keys; i++) {
            if (i)
                pgcw__buf_append(&b, ",");
            pgcw__buf_append(&b, e->keys[i]); /* JSON text: controls already escaped */
        }
    }
    if (e->part)
        pgcw__buf_appendf(&b, " part=%d", e->part);
    return pgcw__buf_take(&b);
}
