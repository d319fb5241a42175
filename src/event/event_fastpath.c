/*
 * event_fastpath.c - the fast path of pgcw_event_parse(): one strict pass over the
 * flat payload our table triggers and Python's pgcachewatch send (a JSON object of
 * escape-free ASCII strings, plain integers, true/false/null), building the event
 * with a single allocation and no JSON library.
 * It is protocol logic for our own notification format, not a JSON parser: it must
 * never accept a payload the json-c path (event_parse.c) would reject or read
 * differently, so whenever in doubt it declines and json-c decides. It never
 * writes an error message: json-c's path is the authority for every error.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "event_internal.h"

/* Enough members for any payload we or Python send (ours has 4, Python's emit_event
 * 5, the benchmark's 7); more goes to json-c rather than a quadratic duplicate scan. */
#define MAX_MEMBERS 16
/* operation + table + schema + sent_at, NUL-terminated. PostgreSQL names are at most
 * 63 bytes and timestamps ~35, so only odd payloads decline for lack of room. */
#define SCRATCH_BYTES 256
/* 18 decimal digits always fit an int64_t, so no overflow check is needed; json-c
 * reads anything longer differently (saturating), so it decides those. */
#define MAX_DIGITS 18

typedef enum vtype { V_STRING, V_INT, V_BOOL, V_NULL } vtype;

typedef struct value {
    vtype type;
    const char *s; /* V_STRING: the bytes between the quotes */
    size_t n;
    int64_t i; /* V_INT */
} value;

typedef struct scanner {
    const char *p, *end;
} scanner;

static void skip_ws(scanner *s)
{
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool eat(scanner *s, char c)
{
    if (s->p == s->end || *s->p != c)
        return false;
    s->p++;
    return true;
}

/* A string with the opening quote already eaten. Escapes, control characters and
 * non-ASCII bytes decline: their decoding and validation are json-c's job. */
static bool scan_string(scanner *s, const char **out, size_t *n)
{
    const char *start = s->p;
    for (; s->p < s->end; s->p++) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            *out = start;
            *n = (size_t)(s->p - start);
            s->p++;
            return true;
        }
        if (c == '\\' || c < 0x20 || c >= 0x80)
            return false;
    }
    return false;
}

/* -?(0|[1-9][0-9]*), at most MAX_DIGITS digits, not "-0". A fraction or exponent
 * is left unread and so fails the caller's "then ',' or '}'" check. */
static bool scan_int(scanner *s, int64_t *out)
{
    bool neg = eat(s, '-');
    const char *start = s->p;
    int64_t v = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        if (s->p - start == MAX_DIGITS)
            return false;
        v = v * 10 + (*s->p - '0');
        s->p++;
    }
    size_t n = (size_t)(s->p - start);
    if (n == 0 || (n > 1 && *start == '0') || (neg && v == 0))
        return false;
    *out = neg ? -v : v;
    return true;
}

static bool scan_literal(scanner *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return false;
    s->p += n;
    return true;
}

static bool scan_value(scanner *s, value *v)
{
    if (s->p == s->end)
        return false;
    switch (*s->p) {
    case '"':
        s->p++;
        v->type = V_STRING;
        return scan_string(s, &v->s, &v->n);
    case 't':
        v->type = V_BOOL;
        return scan_literal(s, "true");
    case 'f':
        v->type = V_BOOL;
        return scan_literal(s, "false");
    case 'n':
        v->type = V_NULL;
        return scan_literal(s, "null");
    default:
        v->type = V_INT;
        return scan_int(s, &v->i); /* anything else ('[', '{', ...) fails here */
    }
}

static bool name_is(const char *name, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(name, lit, n) == 0;
}

/* The members the event is made of; everything else is ignored, as in json-c's
 * path, once it is known to be a well-formed scalar. */
typedef struct members {
    value operation, table, schema, sent_at, part;
    bool has_operation, has_table, has_schema, has_sent_at, has_part;
} members;

/* Records a known member; false when its type means json-c would reject the
 * payload (wrong type) or read more than we do ("pk"/"keys" other than null). */
static bool take_member(members *m, const char *name, size_t n, const value *v)
{
    bool is_str = v->type == V_STRING, is_null = v->type == V_NULL;
    if (name_is(name, n, "operation")) {
        m->operation = *v;
        m->has_operation = true;
        return is_str;
    }
    if (name_is(name, n, "table")) {
        m->table = *v;
        m->has_table = true;
        return is_str;
    }
    if (name_is(name, n, "sent_at")) {
        m->sent_at = *v;
        m->has_sent_at = true;
        return is_str;
    }
    if (name_is(name, n, "schema")) {
        m->schema = *v;
        m->has_schema = !is_null;
        return is_str || is_null;
    }
    if (name_is(name, n, "part")) {
        m->part = *v;
        m->has_part = !is_null;
        return v->type == V_INT || is_null;
    }
    if (name_is(name, n, "pk") || name_is(name, n, "keys"))
        return is_null;
    return true;
}

/* The whole document: '{' members '}' with nothing but whitespace around it. */
static bool scan_object(const char *payload, size_t len, members *m)
{
    scanner s = {payload, payload + len};
    const char *names[MAX_MEMBERS];
    size_t name_lens[MAX_MEMBERS];
    size_t count = 0;
    skip_ws(&s);
    if (!eat(&s, '{'))
        return false;
    do {
        const char *name;
        size_t n;
        value v;
        skip_ws(&s);
        if (count == MAX_MEMBERS || !eat(&s, '"') || !scan_string(&s, &name, &n))
            return false;
        /* json-c keeps the last of duplicate members; declining is simpler than
         * proving we read the same one. */
        for (size_t i = 0; i < count; i++)
            if (name_lens[i] == n && memcmp(names[i], name, n) == 0)
                return false;
        names[count] = name;
        name_lens[count++] = n;
        skip_ws(&s);
        if (!eat(&s, ':'))
            return false;
        skip_ws(&s);
        if (!scan_value(&s, &v) || !take_member(m, name, n, &v))
            return false;
        skip_ws(&s);
    } while (eat(&s, ','));
    if (!eat(&s, '}'))
        return false;
    skip_ws(&s);
    return s.p == s.end;
}

/* Copies a string member into the scratch area, NUL-terminated. */
static const char *stash(char *scratch, size_t *used, const value *v)
{
    if (v->n >= SCRATCH_BYTES - *used)
        return NULL;
    char *dst = scratch + *used;
    memcpy(dst, v->s, v->n);
    dst[v->n] = '\0';
    *used += v->n + 1;
    return dst;
}

bool pgcw__event_parse_fast(const char *channel, const char *payload, size_t payload_len,
                            int64_t received_at_us, pgcw_event **out)
{
    *out = NULL;
    members m = {0};
    if (!payload || !scan_object(payload, payload_len, &m) || !m.has_operation ||
        !m.has_table || !m.has_sent_at || m.table.n == 0 ||
        (m.has_schema && m.schema.n == 0) ||
        (m.has_part && (m.part.i < 0 || m.part.i > INT_MAX)))
        return false;

    char scratch[SCRATCH_BYTES];
    size_t used = 0;
    pgcw_event t = {.kind = PGCW_EVENT_CHANGE,
                    .channel = channel,
                    .payload = payload,
                    .received_at_us = received_at_us,
                    .part = m.has_part ? (int)m.part.i : 0};
    const char *op = stash(scratch, &used, &m.operation);
    const char *sent_at = stash(scratch, &used, &m.sent_at);
    t.table = stash(scratch, &used, &m.table);
    if (m.has_schema)
        t.schema = stash(scratch, &used, &m.schema);
    if (!op || !sent_at || !t.table || (m.has_schema && !t.schema) ||
        pgcw_op_parse(op, &t.operation) != PGCW_OK ||
        pgcw_time_parse(sent_at, &t.sent_at_us) != PGCW_OK)
        return false;
    t.latency_us = pgcw__latency_us(received_at_us, t.sent_at_us);
    /* Out of memory declines too: json-c's path then meets it and reports it. */
    return pgcw__event_build(&t, payload_len, out) == PGCW_OK;
}
