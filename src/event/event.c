/*
 * event.c - the event object: its single-allocation layout, the shared reference
 * count, gap events, clones, and the names of operations and gap reasons.
 * Must never mutate an event after pgcw__event_build() returns it: other threads
 * may be reading it through their own references.
 */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "event_internal.h"
#include "core_util.h"

/* The reference count lives in front of the public struct, in the same block, so a
 * pgcw_event * is all anyone passes around. Pointer arrays and strings follow. */
typedef struct event_box {
    atomic_size_t refs;
    pgcw_event ev;
} event_box;

static event_box *box_of(const pgcw_event *e)
{
    return (event_box *)(void *)((char *)(uintptr_t)e - offsetof(event_box, ev));
}

const char *pgcw_op_name(pgcw_op op)
{
    switch (op) {
    case PGCW_OP_INSERT:
        return "insert";
    case PGCW_OP_UPDATE:
        return "update";
    case PGCW_OP_DELETE:
        return "delete";
    case PGCW_OP_TRUNCATE:
        return "truncate";
    case PGCW_OP_NONE:
        break;
    }
    return "none";
}

bool pgcw__ascii_ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        if (x != *b)
            return false;
    }
    return *a == *b;
}

pgcw_status pgcw_op_parse(const char *text, pgcw_op *out)
{
    static const pgcw_op ops[] = {PGCW_OP_INSERT, PGCW_OP_UPDATE, PGCW_OP_DELETE,
                                  PGCW_OP_TRUNCATE};
    if (!text)
        return PGCW_EPARSE;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (pgcw__ascii_ieq(text, pgcw_op_name(ops[i]))) {
            if (out)
                *out = ops[i];
            return PGCW_OK;
        }
    return PGCW_EPARSE;
}

const char *pgcw_event_kind_name(pgcw_event_kind kind)
{
    switch (kind) {
    case PGCW_EVENT_CHANGE:
        return "change";
    case PGCW_EVENT_GAP:
        return "gap";
    case PGCW_EVENT_KEY:
        return "key";
    case PGCW_EVENT_SCHEMA:
        return "schema";
    }
    return "unknown";
}

const char *pgcw_event_source_name(pgcw_event_source source)
{
    switch (source) {
    case PGCW_SOURCE_LOCAL:
        return "local";
    case PGCW_SOURCE_LISTEN:
        return "listen";
    case PGCW_SOURCE_LOGICAL:
        return "logical";
    case PGCW_SOURCE_POLL:
        return "poll";
    }
    return "unknown";
}

const char *pgcw_gap_reason_name(pgcw_gap_reason reason)
{
    switch (reason) {
    case PGCW_GAP_DISCONNECTED:
        return "disconnected";
    case PGCW_GAP_OVERFLOW:
        return "overflow";
    case PGCW_GAP_PRUNED:
        return "pruned";
    case PGCW_GAP_NONE:
        break;
    }
    return "none";
}

/* size += n, refusing to wrap. */
static bool grow(size_t *size, size_t n)
{
    if (n > SIZE_MAX - *size)
        return false;
    *size += n;
    return true;
}

static bool grow_str(size_t *size, const char *s)
{
    return !s || grow(size, strlen(s) + 1);
}

/* Copies s to *cursor and advances it; NULL stays NULL. */
static const char *place(char **cursor, const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *dst = *cursor;
    memcpy(dst, s, n);
    dst[n] = '\0';
    *cursor += n + 1;
    return dst;
}

static const char *place_str(char **cursor, const char *s)
{
    return s ? place(cursor, s, strlen(s)) : NULL;
}

pgcw_status pgcw__event_build(const pgcw_event *tmpl, size_t payload_len,
                              pgcw_event **out)
{
    *out = NULL;
    const char *channel = tmpl->channel ? tmpl->channel : "";
    size_t n_ptrs = tmpl->n_pk_columns + tmpl->n_keys;
    size_t size = sizeof(event_box);
    _Static_assert(sizeof(event_box) % alignof(const char *) == 0,
                   "pointer arrays follow the box unpadded");
    if (n_ptrs < tmpl->n_keys || n_ptrs > (SIZE_MAX - size) / sizeof(char *))
        return PGCW_ENOMEM;
    size += n_ptrs * sizeof(char *);
    bool ok = grow_str(&size, channel) && grow_str(&size, tmpl->schema) &&
              grow_str(&size, tmpl->table) && grow_str(&size, tmpl->command_tag) &&
              grow_str(&size, tmpl->object_type) &&
              grow_str(&size, tmpl->object_identity) &&
              (!tmpl->payload || (grow(&size, payload_len) && grow(&size, 1))) &&
              (!tmpl->key || (grow(&size, tmpl->key_len) && grow(&size, 1)));
    for (size_t i = 0; ok && i < tmpl->n_pk_columns; i++)
        ok = grow_str(&size, tmpl->pk_columns[i]);
    for (size_t i = 0; ok && i < tmpl->n_keys; i++)
        ok = grow_str(&size, tmpl->keys[i]);
    if (!ok)
        return PGCW_ENOMEM;

    event_box *box = malloc(size);
    if (!box)
        return PGCW_ENOMEM;
    atomic_init(&box->refs, 1);
    pgcw_event *e = &box->ev;
    *e = *tmpl;
    const char **ptrs = (const char **)(void *)(box + 1);
    char *cursor = (char *)(ptrs + n_ptrs);
    e->channel = place_str(&cursor, channel);
    e->schema = place_str(&cursor, tmpl->schema);
    e->table = place_str(&cursor, tmpl->table);
    e->command_tag = place_str(&cursor, tmpl->command_tag);
    e->object_type = place_str(&cursor, tmpl->object_type);
    e->object_identity = place_str(&cursor, tmpl->object_identity);
    e->payload = place(&cursor, tmpl->payload, payload_len);
    e->key = place(&cursor, tmpl->key, tmpl->key_len);
    if (!e->key)
        e->key_len = 0;
    e->pk_columns = tmpl->n_pk_columns ? ptrs : NULL;
    for (size_t i = 0; i < tmpl->n_pk_columns; i++)
        ptrs[i] = place_str(&cursor, tmpl->pk_columns[i]);
    ptrs += tmpl->n_pk_columns;
    e->keys = tmpl->n_keys ? ptrs : NULL;
    for (size_t i = 0; i < tmpl->n_keys; i++)
        ptrs[i] = place_str(&cursor, tmpl->keys[i]);
    *out = e;
    return PGCW_OK;
}

const pgcw_event *pgcw__event_ref(const pgcw_event *e)
{
    if (e)
        atomic_fetch_add_explicit(&box_of(e)->refs, 1, memory_order_relaxed);
    return e;
}

size_t pgcw__event_refcount(const pgcw_event *e)
{
    return e ? atomic_load_explicit(&box_of(e)->refs, memory_order_acquire) : 0;
}

void pgcw_event_free(const pgcw_event *event)
{
    if (!event)
        return;
    event_box *box = box_of(event);
    /* Release our reads/writes to whoever frees; the freeing thread acquires them. */
    if (atomic_fetch_sub_explicit(&box->refs, 1, memory_order_acq_rel) == 1)
        free(box);
}

pgcw_status pgcw_event_new_gap(const char *channel, pgcw_gap_reason reason, uint64_t lost,
                               uint64_t epoch, const pgcw_event **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    int64_t now = pgcw__real_us();
    pgcw_event t = {.kind = PGCW_EVENT_GAP,
                    .operation = PGCW_OP_NONE,
                    .channel = channel,
                    .sent_at_us = now,
                    .received_at_us = now,
                    .epoch = epoch,
                    .gap_reason = reason,
                    .gap_lost = lost};
    pgcw_event *e = NULL;
    pgcw_status st = pgcw__event_build(&t, 0, &e);
    *out = e;
    return st;
}

pgcw_status pgcw_event_new_key(const char *channel, pgcw_op op, const void *key,
                               size_t key_len, int64_t version, const pgcw_event **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    if ((op != PGCW_OP_UPDATE && op != PGCW_OP_DELETE) || (!key && key_len) ||
        (key_len && memchr(key, '\0', key_len)))
        return PGCW_EINVAL;
    int64_t now = pgcw__real_us();
    pgcw_event t = {.kind = PGCW_EVENT_KEY,
                    .operation = op,
                    .channel = channel,
                    .sent_at_us = now,
                    .received_at_us = now,
                    .key = key ? key : "",
                    .key_len = key_len,
                    .version = version};
    pgcw_event *e = NULL;
    pgcw_status st = pgcw__event_build(&t, 0, &e);
    *out = e;
    return st;
}

pgcw_status pgcw_event_clone(const pgcw_event *event, const pgcw_event **out)
{
    if (!out)
        return PGCW_EINVAL;
    *out = NULL;
    if (!event)
        return PGCW_EINVAL;
    pgcw_event *e = NULL;
    pgcw_status st =
        pgcw__event_build(event, event->payload ? strlen(event->payload) : 0, &e);
    *out = e;
    return st;
}
