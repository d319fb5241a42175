/*
 * fuzz_event_fastpath.c - differential libFuzzer target for the payload parser's
 * fast path: whenever pgcw__event_parse_fast() accepts an input, json-c's path
 * (pgcw__event_parse_json) must accept it too and build an identical event, field
 * by field; input the public entry point would refuse before parsing (empty, NUL
 * bytes, over the size limit) must be declined; and the table-change decoder behind
 * pgcw_event_parse() (pgcw__event_decode(), which also gives the reason) must return
 * what json-c's path returns. Any disagreement traps.
 *   build-fuzz/fuzz/fuzz_event_fastpath -dict=fuzz/fuzz_event_fastpath.dict \
 *       -max_total_time=180 NEW_CORPUS_DIR fuzz/corpus/fuzz_event_fastpath
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pgcachewatch/event.h>
#include "pgcw_testhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RECV_US INT64_C(1714566896123456)

static void same_string(const char *a, const char *b)
{
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        __builtin_trap();
}

static void same_event(const pgcw_event *a, const pgcw_event *b, size_t payload_len)
{
    if (a->kind != b->kind || a->operation != b->operation ||
        a->sent_at_us != b->sent_at_us || a->received_at_us != b->received_at_us ||
        a->latency_us != b->latency_us || a->epoch != b->epoch ||
        a->backend_pid != b->backend_pid || a->n_pk_columns != b->n_pk_columns ||
        a->n_keys != b->n_keys || a->part != b->part || a->gap_reason != b->gap_reason ||
        a->gap_lost != b->gap_lost || a->source != b->source ||
        a->key_len != b->key_len || a->version != b->version || a->lsn != b->lsn)
        __builtin_trap();
    if ((a->key == NULL) != (b->key == NULL) || (a->key && strcmp(a->key, b->key) != 0))
        __builtin_trap();
    same_string(a->channel, b->channel);
    same_string(a->schema, b->schema);
    same_string(a->table, b->table);
    if (!a->payload || !b->payload || memcmp(a->payload, b->payload, payload_len + 1))
        __builtin_trap();
    if ((a->pk_columns == NULL) != (b->pk_columns == NULL) ||
        (a->keys == NULL) != (b->keys == NULL))
        __builtin_trap();
    for (size_t i = 0; i < a->n_pk_columns; i++)
        same_string(a->pk_columns[i], b->pk_columns[i]);
    for (size_t i = 0; i < a->n_keys; i++)
        same_string(a->keys[i], b->keys[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy, so ASan sees any read past payload_len. */
    char *payload = malloc(size ? size : 1);
    if (!payload)
        return 0;
    memcpy(payload, data, size);

    pgcw_event *fast = NULL, *slow = NULL, *pub = NULL;
    bool accepted = pgcw__event_parse_fast("fuzz", payload, size, RECV_US, &fast);
    if (accepted != (fast != NULL))
        __builtin_trap();
    if (size == 0 || size > PGCW__EVENT_MAX_PAYLOAD || memchr(payload, '\0', size)) {
        if (accepted)
            __builtin_trap();
        free(payload);
        return 0;
    }

    char err[128];
    pgcw_status st =
        pgcw__event_parse_json("fuzz", payload, size, RECV_US, &slow, err, sizeof err);
    if ((st == PGCW_OK) != (slow != NULL))
        __builtin_trap();
    if (accepted) {
        if (st != PGCW_OK)
            __builtin_trap();
        same_event(fast, slow, size);
    }

    char pub_err[128];
    pgcw_status pub_st = pgcw__event_decode(PGCW_FORMAT_TABLE_CHANGE, "fuzz", payload,
                                            size, RECV_US, &pub, pub_err, sizeof pub_err);
    if (pub_st != st || (st == PGCW_OK && !pub) ||
        (st == PGCW_EPARSE && strcmp(err, pub_err) != 0))
        __builtin_trap();
    if (pub)
        same_event(pub, slow, size);

    pgcw_event_free(fast);
    pgcw_event_free(slow);
    pgcw_event_free(pub);
    free(payload);
    return 0;
}
