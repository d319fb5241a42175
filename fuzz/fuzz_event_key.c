/*
 * fuzz_event_key.c - libFuzzer target for the postgres-cache key notification
 * decoder. Beyond "no crash, no leak" it checks what invalidation relies on: a
 * decoded key holds no NUL and is NUL-terminated at key_len; writing the key back
 * in either form (0x1F with doubling, '|' with hex) decodes to the same operation,
 * version and bytes; AUTO agrees with CACHE_KEY on every payload that starts with
 * 'u' or 'd'; and the key event formats as JSON that is strict UTF-8 (judged by
 * fuzz/utf8_strict.h: json-c lets overlong forms and surrogates through) and that
 * json-c parses back, carrying the key: as "key" when the key is UTF-8 text, else
 * as "key_hex" (a key is bytes, so both are valid). A broken promise traps.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <pgcachewatch/event.h>
#include "pgcw_testhook.h"
#include "utf8_strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* op, version, then the key in the plain (hex false) or hex form. */
static char *encode(const pgcw_event *e, bool hex, size_t *len)
{
    size_t cap = 32 + 2 * e->key_len + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    int n = snprintf(out, cap, "%c%lld%c", e->operation == PGCW_OP_DELETE ? 'd' : 'u',
                     (long long)e->version, hex ? '|' : 0x1F);
    size_t at = (size_t)n;
    for (size_t i = 0; i < e->key_len; i++) {
        unsigned char c = (unsigned char)e->key[i];
        if (hex) {
            snprintf(out + at, 3, "%02x", c);
            at += 2;
        } else {
            out[at++] = (char)c;
            if (c == 0x1F)
                out[at++] = (char)c;
        }
    }
    *len = at;
    return out;
}

static void round_trip(const pgcw_event *e, bool hex)
{
    size_t len = 0;
    char *p = encode(e, hex, &len);
    if (!p)
        return;
    pgcw_event *back = NULL;
    pgcw_status st =
        pgcw__event_decode(PGCW_FORMAT_CACHE_KEY, "fuzz", p, len, 1, &back, NULL, 0);
    if (st != PGCW_OK && st != PGCW_ENOMEM)
        __builtin_trap();
    if (back &&
        (back->operation != e->operation || back->version != e->version ||
         back->key_len != e->key_len || memcmp(back->key, e->key, e->key_len) != 0))
        __builtin_trap();
    pgcw_event_free(back);
    free(p);
}

/* The key in "key" (UTF-8 text) or "key_hex" (anything else), byte for byte. */
static void check_json(const pgcw_event *e)
{
    char *json = pgcw_event_to_json(e);
    if (!json)
        return;
    if (strchr(json, '\n') || !fuzz_utf8_valid(json, strlen(json)))
        __builtin_trap();
    json_object *o = json_tokener_parse(json), *k;
    if (!o)
        __builtin_trap();
    bool text = fuzz_utf8_valid(e->key, e->key_len);
    if (!json_object_object_get_ex(o, text ? "key" : "key_hex", &k))
        __builtin_trap();
    const char *got = json_object_get_string(k);
    size_t got_len = (size_t)json_object_get_string_len(k);
    if (text) {
        if (got_len != e->key_len || memcmp(got, e->key, e->key_len) != 0)
            __builtin_trap();
    } else {
        if (got_len != 2 * e->key_len)
            __builtin_trap();
        for (size_t i = 0; i < e->key_len; i++) {
            char hex[3];
            snprintf(hex, sizeof hex, "%02x", (unsigned char)e->key[i]);
            if (memcmp(got + 2 * i, hex, 2) != 0)
                __builtin_trap();
        }
    }
    json_object_put(o);
    pgcw_free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy, so ASan sees any read past payload_len. */
    char *payload = malloc(size ? size : 1);
    if (!payload)
        return 0;
    memcpy(payload, data, size);
    pgcw_event *e = NULL;
    char why[160] = "";
    pgcw_status st = pgcw__event_decode(PGCW_FORMAT_CACHE_KEY, "fuzz", payload, size, 1,
                                        &e, why, sizeof why);
    if (st == PGCW_OK) {
        if (!e || e->kind != PGCW_EVENT_KEY || memchr(e->key, '\0', e->key_len) ||
            e->key[e->key_len] != '\0' ||
            (e->operation != PGCW_OP_UPDATE && e->operation != PGCW_OP_DELETE))
            __builtin_trap();
        round_trip(e, false);
        round_trip(e, true);
        check_json(e);
        char *line = pgcw_event_to_text(e);
        if (line && (strchr(line, '\n') || !fuzz_utf8_valid(line, strlen(line))))
            __builtin_trap();
        pgcw_free(line);
    } else if (e || (st == PGCW_EPARSE && (!why[0] || strchr(why, '\n')))) {
        __builtin_trap();
    }
    if (size > 0 && (payload[0] == 'u' || payload[0] == 'd')) {
        pgcw_event *a = NULL;
        pgcw_status ast =
            pgcw__event_decode(PGCW_FORMAT_AUTO, "fuzz", payload, size, 1, &a, NULL, 0);
        if (ast != st && ast != PGCW_ENOMEM && st != PGCW_ENOMEM)
            __builtin_trap();
        pgcw_event_free(a);
    }
    pgcw_event_free(e);
    free(payload);
    return 0;
}
