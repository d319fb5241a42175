/*
 * source_pgoutput.c - the pgoutput (protocol version 1) decoder: reading the
 * messages with every length checked, the transaction state, and turning each
 * change into events (source_pgoutput.h). The relation cache is in
 * source_pgoutput_rel.c; key values become the JSON text event.h promises in
 * source_pgoutput_keys.c.
 *
 * Must never read past the message it was given, trust a count before checking
 * the bytes behind it, or hand out an event that has no table.
 */
#include <stdlib.h>
#include <string.h>

#include "core_util.h"
#include "event_internal.h"
#include "source_pgoutput_internal.h"
#include "source_pgoutput_keys.h"

static int64_t pg_time_to_unix(uint64_t pg_us)
{
    int64_t t = (int64_t)pg_us, out;
    if (__builtin_add_overflow(t, PGCW__PG_EPOCH_US, &out))
        return t < 0 ? INT64_MIN : INT64_MAX;
    return out;
}

/* --- events --------------------------------------------------------------- */

static pgcw_status enqueue(pgcw__pgoutput *d, pgcw_event *e)
{
    if (d->head && d->head == d->n_queue)
        d->head = d->n_queue = 0;
    if (d->n_queue == d->cap_queue) {
        size_t cap = d->cap_queue ? 2 * d->cap_queue : 16;
        pgcw_event **grown = realloc(d->queue, cap * sizeof *grown);
        if (!grown)
            return PGCW_ENOMEM;
        d->queue = grown;
        d->cap_queue = cap;
    }
    d->queue[d->n_queue++] = e;
    return PGCW_OK;
}

/* One change event of rel with keys[0..n_keys) (JSON texts; none: "something in
 * the table changed"). */
static pgcw_status emit(pgcw__pgoutput *d, const relation *rel, pgcw_op op,
                        const char *const *keys, size_t n_keys, int64_t received_at_us)
{
    pgcw_event t = {
        .kind = PGCW_EVENT_CHANGE,
        .operation = op,
        .channel = d->channel,
        .schema = rel->schema,
        .table = rel->table,
        .sent_at_us = d->commit_time_us,
        .received_at_us = received_at_us,
        .latency_us = pgcw__latency_us(received_at_us, d->commit_time_us),
        .source = PGCW_SOURCE_LOGICAL,
        .lsn = d->commit_lsn,
        .xid = d->xid,
    };
    if (op != PGCW_OP_TRUNCATE && rel->n_key) {
        t.n_pk_columns = rel->n_key;
        t.pk_columns = (const char *const *)rel->key_names;
        t.n_keys = n_keys;
        t.keys = keys;
    }
    pgcw_event *e = NULL;
    pgcw_status st = pgcw__event_build(&t, 0, &e);
    if (st == PGCW_OK && (st = enqueue(d, e)) != PGCW_OK)
        pgcw_event_free(e);
    return st;
}

static const relation *change_relation(pgcw__pgoutput *d, reader *r, char type, char *why,
                                       size_t whylen)
{
    uint32_t relid = GET32(r, "relation id");
    if (r->bad) {
        pgcw__pgo_truncated(r, why, whylen);
        return NULL;
    }
    if (!d->in_txn) {
        pgcw__errf(why, whylen, "'%c' message outside a transaction", type);
        return NULL;
    }
    const relation *rel = pgcw__pgo_find_relation(d, relid);
    if (!rel)
        pgcw__errf(why, whylen, "'%c' message for relation %u, never described", type,
                   relid);
    return rel;
}

/* emit()'s status with the reason it does not give. */
static pgcw_status emit_error(pgcw_status st, char *why, size_t whylen)
{
    if (st == PGCW_ENOMEM)
        pgcw__errf(why, whylen, "out of memory");
    return st;
}

/* 'I', 'U', 'D': the relation, then the tuples the operation carries. An update's
 * keys are the old key (when the key changed or the identity is FULL: 'K' or 'O')
 * and the new one, once each. */
static pgcw_status parse_row_change(pgcw__pgoutput *d, reader *r, char type,
                                    int64_t received_at_us, char *why, size_t whylen)
{
    const relation *rel = change_relation(d, r, type, why, whylen);
    if (!rel)
        return PGCW_EPARSE;
    pgcw__pgo_keyset ks = {0};
    pgcw__pgo_cols cols = {rel->n_cols, rel->types, rel->is_key, rel->n_key};
    pgcw_status st = PGCW_OK;
    uint8_t tag = GET8(r, "tuple tag");
    if (type == 'U' && (tag == 'K' || tag == 'O')) {
        st = pgcw__pgo_read_key(&ks, &cols, &r->p, &r->left, why, whylen);
        tag = st == PGCW_OK ? GET8(r, "tuple tag") : 0;
    }
    bool want_new = type != 'D';
    if (st == PGCW_OK && !r->bad) {
        bool ok_tag = want_new ? tag == 'N' : (tag == 'K' || tag == 'O');
        if (!ok_tag) {
            pgcw__errf(why, whylen, "'%c' message: unexpected tuple tag 0x%02x", type,
                       tag);
            st = PGCW_EPARSE;
        } else {
            st = pgcw__pgo_read_key(&ks, &cols, &r->p, &r->left, why, whylen);
        }
    }
    if (st == PGCW_OK && r->bad) {
        pgcw__pgo_truncated(r, why, whylen);
        st = PGCW_EPARSE;
    }
    if (st == PGCW_OK && r->left) {
        pgcw__errf(why, whylen, "'%c' message: %zu bytes after its tuple", type, r->left);
        st = PGCW_EPARSE;
    }
    if (st == PGCW_OK) {
        pgcw_op op = type == 'I'   ? PGCW_OP_INSERT
                     : type == 'U' ? PGCW_OP_UPDATE
                                   : PGCW_OP_DELETE;
        st = emit(d, rel, op, (const char *const *)ks.keys, ks.n_keys, received_at_us);
    }
    pgcw__pgo_keyset_free(&ks);
    return emit_error(st, why, whylen);
}

/* 'T': nrels, options, then nrels relation ids: one event per relation. */
static pgcw_status parse_truncate(pgcw__pgoutput *d, reader *r, int64_t received_at_us,
                                  char *why, size_t whylen)
{
    uint32_t n = GET32(r, "relation count");
    (void)GET8(r, "truncate options");
    if (!r->bad && (r->left / 4 < n || r->left != (size_t)n * 4)) {
        pgcw__errf(why, whylen, "truncate of %u relations in %zu bytes", n, r->left);
        return PGCW_EPARSE;
    }
    if (r->bad) {
        pgcw__pgo_truncated(r, why, whylen);
        return PGCW_EPARSE;
    }
    if (!d->in_txn) {
        pgcw__errf(why, whylen, "'T' message outside a transaction");
        return PGCW_EPARSE;
    }
    /* Every relation must be known before any event is queued. */
    reader ids = *r;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t relid = GET32(&ids, "relation id");
        if (!pgcw__pgo_find_relation(d, relid)) {
            pgcw__errf(why, whylen, "'T' message for relation %u, never described",
                       relid);
            return PGCW_EPARSE;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        const relation *rel = pgcw__pgo_find_relation(d, GET32(r, "relation id"));
        pgcw_status st = emit(d, rel, PGCW_OP_TRUNCATE, NULL, 0, received_at_us);
        if (st != PGCW_OK)
            return emit_error(st, why, whylen);
    }
    return PGCW_OK;
}

static pgcw_status parse_begin(pgcw__pgoutput *d, reader *r, pgcw__pgoutput_info *info,
                               char *why, size_t whylen)
{
    uint64_t lsn = GET64(r, "final LSN");
    uint64_t ts = GET64(r, "commit time");
    uint32_t xid = GET32(r, "xid");
    if (r->bad) {
        pgcw__pgo_truncated(r, why, whylen);
        return PGCW_EPARSE;
    }
    if (d->in_txn) {
        pgcw__errf(why, whylen, "Begin inside a transaction");
        return PGCW_EPARSE;
    }
    d->in_txn = true;
    d->commit_lsn = lsn;
    d->commit_time_us = pg_time_to_unix(ts);
    d->xid = xid;
    info->commit_lsn = lsn;
    info->commit_time_us = d->commit_time_us;
    return PGCW_OK;
}

static pgcw_status parse_commit(pgcw__pgoutput *d, reader *r, pgcw__pgoutput_info *info,
                                char *why, size_t whylen)
{
    (void)GET8(r, "commit flags");
    uint64_t lsn = GET64(r, "commit LSN");
    uint64_t end = GET64(r, "end LSN");
    uint64_t ts = GET64(r, "commit time");
    if (r->bad) {
        pgcw__pgo_truncated(r, why, whylen);
        return PGCW_EPARSE;
    }
    if (!d->in_txn) {
        pgcw__errf(why, whylen, "Commit outside a transaction");
        return PGCW_EPARSE;
    }
    if (lsn != d->commit_lsn) {
        pgcw__errf(why, whylen, "Commit at LSN %llX, its Begin said %llX",
                   (unsigned long long)lsn, (unsigned long long)d->commit_lsn);
        return PGCW_EPARSE;
    }
    d->in_txn = false;
    info->commit_lsn = lsn;
    info->end_lsn = end;
    info->commit_time_us = pg_time_to_unix(ts);
    return PGCW_OK;
}

/* 'Y' (type) and 'O' (origin): checked for shape, otherwise ignored. */
static pgcw_status parse_skipped(reader *r, char type, char *why, size_t whylen)
{
    if (type == 'Y') {
        (void)GET32(r, "type id");
        (void)pgcw__pgo_str(r, "type namespace");
        (void)pgcw__pgo_str(r, "type name");
    } else {
        (void)GET64(r, "origin LSN");
        (void)pgcw__pgo_str(r, "origin name");
    }
    if (r->bad) {
        pgcw__pgo_truncated(r, why, whylen);
        return PGCW_EPARSE;
    }
    return PGCW_OK;
}

pgcw_status pgcw__pgoutput_feed(pgcw__pgoutput *d, const void *msg, size_t len,
                                int64_t received_at_us, pgcw__pgoutput_info *info,
                                char *why, size_t whylen)
{
    pgcw__pgoutput_info dummy;
    info = info ? info : &dummy;
    memset(info, 0, sizeof *info);
    pgcw__errf(why, whylen, "%s", "");
    reader r = {.p = msg, .left = msg ? len : 0};
    char type = (char)GET8(&r, "message type");
    if (r.bad) {
        pgcw__errf(why, whylen, "empty message");
        return PGCW_EPARSE;
    }
    switch (type) {
    case 'B':
        info->kind = PGCW__PGO_BEGIN;
        return parse_begin(d, &r, info, why, whylen);
    case 'C':
        info->kind = PGCW__PGO_COMMIT;
        return parse_commit(d, &r, info, why, whylen);
    case 'R':
        info->kind = PGCW__PGO_RELATION;
        return pgcw__pgo_parse_relation(d, &r, why, whylen);
    case 'I':
    case 'U':
    case 'D':
        info->kind = PGCW__PGO_CHANGE;
        return parse_row_change(d, &r, type, received_at_us, why, whylen);
    case 'T':
        info->kind = PGCW__PGO_CHANGE;
        return parse_truncate(d, &r, received_at_us, why, whylen);
    case 'Y':
    case 'O':
        info->kind = PGCW__PGO_SKIPPED;
        return parse_skipped(&r, type, why, whylen);
    case 'M': /* a logical decoding message (only with the messages option) */
        info->kind = PGCW__PGO_SKIPPED;
        return PGCW_OK;
    default:
        pgcw__errf(why, whylen, "unknown message type 0x%02x",
                   (unsigned)(unsigned char)type);
        return PGCW_EPARSE;
    }
}

size_t pgcw__pgoutput_take(pgcw__pgoutput *d, pgcw_event **out, size_t max)
{
    size_t n = 0;
    while (n < max && d->head < d->n_queue)
        out[n++] = d->queue[d->head++];
    if (d->head == d->n_queue)
        d->head = d->n_queue = 0;
    return n;
}

size_t pgcw__pgoutput_pending(const pgcw__pgoutput *d)
{
    return d->n_queue - d->head;
}

bool pgcw__pgoutput_in_transaction(const pgcw__pgoutput *d)
{
    return d->in_txn;
}

static void drop_queue(pgcw__pgoutput *d)
{
    for (size_t i = d->head; i < d->n_queue; i++)
        pgcw_event_free(d->queue[i]);
    d->head = d->n_queue = 0;
}

void pgcw__pgoutput_reset(pgcw__pgoutput *d)
{
    for (size_t i = 0; i < d->n_rels; i++)
        pgcw__pgo_relation_clear(&d->rels[i]);
    d->n_rels = 0;
    drop_queue(d);
    d->in_txn = false;
    d->commit_lsn = 0;
    d->commit_time_us = 0;
    d->xid = 0;
}

pgcw_status pgcw__pgoutput_new(const char *channel, pgcw__pgoutput **out)
{
    *out = NULL;
    pgcw__pgoutput *d = calloc(1, sizeof *d);
    if (!d || !(d->channel = pgcw__strdup(channel ? channel : ""))) {
        free(d);
        return PGCW_ENOMEM;
    }
    *out = d;
    return PGCW_OK;
}

void pgcw__pgoutput_free(pgcw__pgoutput *d)
{
    if (!d)
        return;
    pgcw__pgoutput_reset(d);
    free(d->rels);
    free(d->queue);
    free(d->channel);
    free(d);
}
