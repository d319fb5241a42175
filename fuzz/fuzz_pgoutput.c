/*
 * fuzz_pgoutput.c - libFuzzer target for the pgoutput decoder. The input is a
 * stream of messages, each a 2-byte big-endian length and that many bytes (a last
 * short one takes what is left), fed to one decoder in exact-size heap copies so
 * ASan sees any read past a message. After an error the decoder is reset, as the
 * logical source does on a new session.
 *
 * Beyond "no crash, no leak": a status is OK, EPARSE with a one-line reason, or
 * ENOMEM; a change message outside a transaction queues nothing; every event is a
 * change with a non-empty UTF-8 table and schema, the LSN and time of the Begin
 * that opened its transaction, at most two keys (none for a truncate), each key
 * strict UTF-8 (fuzz/utf8_strict.h, not the library's check) that json-c parses
 * as an array with one value per pk column; and every event formats as one line
 * of strict UTF-8 JSON that json-c parses. A broken promise traps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <pgcachewatch/event.h>
#include "pgcw_testhook.h"
#include "utf8_strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool text_ok(const char *s)
{
    return s && s[0] && fuzz_utf8_valid(s, strlen(s));
}

static void check_event(const pgcw_event *e, uint64_t lsn, int64_t time_us)
{
    if (e->kind != PGCW_EVENT_CHANGE || !text_ok(e->table) || !text_ok(e->schema) ||
        e->lsn != lsn || e->sent_at_us != time_us || e->n_keys > 2 ||
        strcmp(e->channel, "fuzz") != 0)
        __builtin_trap();
    if (e->operation == PGCW_OP_TRUNCATE
            ? e->n_keys != 0 || e->n_pk_columns != 0
            : e->operation < PGCW_OP_INSERT || e->operation > PGCW_OP_DELETE)
        __builtin_trap();
    if (e->n_keys && !e->n_pk_columns)
        __builtin_trap();
    for (size_t i = 0; i < e->n_pk_columns; i++)
        if (!fuzz_utf8_valid(e->pk_columns[i], strlen(e->pk_columns[i])))
            __builtin_trap();
    for (size_t i = 0; i < e->n_keys; i++) {
        const char *k = e->keys[i];
        size_t len = strlen(k);
        if (!fuzz_utf8_valid(k, len) || len < 2 || k[0] != '[' || k[len - 1] != ']')
            __builtin_trap();
        json_tokener *tok = json_tokener_new();
        if (!tok)
            continue;
        json_object *o = json_tokener_parse_ex(tok, k, (int)len);
        bool whole = json_tokener_get_error(tok) == json_tokener_success &&
                     json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        if (!o || !whole || !json_object_is_type(o, json_type_array) ||
            json_object_array_length(o) != e->n_pk_columns)
            __builtin_trap();
        json_object_put(o);
        if (i == 1 && strcmp(e->keys[0], k) == 0) /* the two keys are distinct */
            __builtin_trap();
    }
    char *json = pgcw_event_to_json(e);
    if (json) {
        if (strchr(json, '\n') || !fuzz_utf8_valid(json, strlen(json)))
            __builtin_trap();
        json_object *o = json_tokener_parse(json);
        if (!o)
            __builtin_trap();
        json_object_put(o);
        pgcw_free(json);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pgcw__pgoutput *d = NULL;
    if (pgcw__pgoutput_new("fuzz", &d) != PGCW_OK)
        return 0;
    uint64_t lsn = 0;
    int64_t time_us = 0;
    size_t at = 0;
    while (at < size) {
        size_t len = size - at < 2 ? 0 : (size_t)data[at] << 8 | data[at + 1];
        at += size - at < 2 ? size - at : 2;
        if (len > size - at)
            len = size - at;
        unsigned char *m = malloc(len ? len : 1);
        if (!m)
            break;
        memcpy(m, data + at, len);
        at += len;
        bool was_in = pgcw__pgoutput_in_transaction(d);
        size_t before = pgcw__pgoutput_pending(d);
        pgcw__pgoutput_info info;
        char why[256] = "x";
        pgcw_status st = pgcw__pgoutput_feed(d, m, len, 1, &info, why, sizeof why);
        if (st == PGCW_OK) {
            if (why[0])
                __builtin_trap();
            if (info.kind == PGCW__PGO_BEGIN) {
                lsn = info.commit_lsn;
                time_us = info.commit_time_us;
            }
            if (info.kind == PGCW__PGO_COMMIT && info.commit_lsn != lsn)
                __builtin_trap();
            if (!was_in && pgcw__pgoutput_pending(d) != before)
                __builtin_trap();
        } else if (st == PGCW_EPARSE) {
            if (!why[0] || strchr(why, '\n'))
                __builtin_trap();
        } else if (st != PGCW_ENOMEM) {
            __builtin_trap();
        }
        pgcw_event *ev[16];
        size_t n;
        while ((n = pgcw__pgoutput_take(d, ev, 16)) > 0)
            for (size_t i = 0; i < n; i++) {
                check_event(ev[i], lsn, time_us);
                pgcw_event_free(ev[i]);
            }
        if (st != PGCW_OK)
            pgcw__pgoutput_reset(d);
        free(m);
    }
    pgcw__pgoutput_free(d);
    return 0;
}
