/*
 * event_parse.c - one notification payload (JSON text) into an event: the Python
 * pgcachewatch payload and our superset with schema, pk, keys and part, and the
 * schema-change payload of our DDL event triggers ("operation":"ddl"). Flat
 * payloads are first offered to the fast path (event_fastpath.c); json-c reads
 * whatever it declines and writes every error message.
 * Must never crash, leak or read past payload_len on any input, and must never
 * hand out keys that differ from what the trigger sent: when keys cannot be
 * represented exactly the event degrades to "the table changed", which is always
 * safe for a cache.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core_util.h"
#include "event_decoder.h"
#include "event_internal.h"

#define KEY_TEXT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

typedef struct parse_ctx {
    char *err;
    size_t errlen;
    bool oom; /* the failure was an allocation, not the payload */
} parse_ctx;

static void oom(parse_ctx *c)
{
    c->oom = true;
    pgcw__errf(c->err, c->errlen, "out of memory");
}

/* Up to n bytes of untrusted text for an error message, which must stay one line:
 * control characters become '?'. */
static const char *quote_for_error(const char *s, char *buf, size_t n)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

/* Compares the decimal integer literal [s, s+n) (digits only) with a limit. */
static bool digits_exceed(const char *s, size_t n, const char *limit)
{
    size_t ln = strlen(limit);
    if (n != ln)
        return n > ln;
    return memcmp(s, limit, n) > 0;
}

/*
 * json-c saturates integer literals outside [INT64_MIN, UINT64_MAX] without an
 * error, so a numeric(30) key would silently turn into another key. Finds such a
 * literal anywhere outside a string. Runs only on text json-c already accepted.
 */
static bool has_wide_integer(const char *s, size_t len)
{
    char quote = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (quote) {
            if (c == '\\')
                i++;
            else if (c == quote)
                quote = 0;
            continue;
        }
        if (c == '"' || c == '\'') {
            quote = c;
            continue;
        }
        if (c != '-' && (c < '0' || c > '9'))
            continue;
        bool neg = c == '-';
        size_t start = i + (neg ? 1 : 0), end = start;
        while (end < len && s[end] >= '0' && s[end] <= '9')
            end++;
        bool is_int = end == len || (s[end] != '.' && s[end] != 'e' && s[end] != 'E');
        if (is_int && digits_exceed(s + start, end - start,
                                    neg ? "9223372036854775808" : "18446744073709551615"))
            return true;
        /* Skip the rest of the number (fraction, exponent). */
        while (end < len &&
               ((s[end] >= '0' && s[end] <= '9') || s[end] == '.' || s[end] == 'e' ||
                s[end] == 'E' || s[end] == '+' || s[end] == '-'))
            end++;
        i = end - 1;
    }
    return false;
}

/* The string value of member `name`, or NULL with *present telling absent/null from
 * a wrong type (reported). Strings with an embedded NUL are rejected: they could
 * not be told apart from their prefix once in C. */
static bool get_string(parse_ctx *c, json_object *obj, const char *name, bool required,
                       bool allow_empty, const char **out)
{
    *out = NULL;
    json_object *v;
    if (!json_object_object_get_ex(obj, name, &v) || v == NULL) {
        if (required)
            pgcw__errf(c->err, c->errlen, "member \"%s\" is missing", name);
        return !required;
    }
    if (!json_object_is_type(v, json_type_string)) {
        pgcw__errf(c->err, c->errlen, "member \"%s\" must be a string", name);
        return false;
    }
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (strlen(s) != n) {
        pgcw__errf(c->err, c->errlen, "member \"%s\" contains a NUL character", name);
        return false;
    }
    if (n == 0 && !allow_empty) {
        pgcw__errf(c->err, c->errlen, "member \"%s\" is empty", name);
        return false;
    }
    if (!pgcw__utf8_valid(s, n)) { /* a \ud800 escape decodes to a lone surrogate */
        pgcw__errf(c->err, c->errlen, "member \"%s\" is not valid UTF-8", name);
        return false;
    }
    *out = s;
    return true;
}

/* An optional array member: NULL when absent or null. */
static bool get_array(parse_ctx *c, json_object *obj, const char *name, json_object **out)
{
    *out = NULL;
    json_object *v;
    if (!json_object_object_get_ex(obj, name, &v) || v == NULL)
        return true;
    if (!json_object_is_type(v, json_type_array)) {
        pgcw__errf(c->err, c->errlen, "member \"%s\" must be an array", name);
        return false;
    }
    *out = v;
    return true;
}

static bool get_pk(parse_ctx *c, json_object *root, pgcw_event *t)
{
    json_object *arr;
    if (!get_array(c, root, "pk", &arr))
        return false;
    size_t n = arr ? json_object_array_length(arr) : 0;
    if (n == 0)
        return true;
    const char **cols = calloc(n, sizeof *cols);
    if (!cols) {
        oom(c);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(v, json_type_string) ||
            json_object_get_string_len(v) == 0 ||
            strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v) ||
            !pgcw__utf8_valid(json_object_get_string(v),
                              (size_t)json_object_get_string_len(v))) {
            pgcw__errf(c->err, c->errlen, "pk[%zu] must be a non-empty UTF-8 string", i);
            free(cols);
            return false;
        }
        cols[i] = json_object_get_string(v);
    }
    t->pk_columns = cols;
    t->n_pk_columns = n;
    return true;
}

/* Each element of "keys" as compact JSON text; a bare value v is stored as [v] so
 * every key reads as an array, as the header promises. */
static bool get_keys(parse_ctx *c, json_object *root, const char *payload, size_t len,
                     pgcw_event *t)
{
    json_object *arr;
    if (!get_array(c, root, "keys", &arr))
        return false;
    size_t n = arr ? json_object_array_length(arr) : 0;
    if (n == 0)
        return true;
    if (has_wide_integer(payload, len)) {
        /* Keys we cannot reproduce exactly are worse than none. */
        free((void *)t->pk_columns);
        t->pk_columns = NULL;
        t->n_pk_columns = 0;
        return true;
    }
    const char **keys = calloc(n, sizeof *keys);
    if (!keys) {
        oom(c);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(v, json_type_array)) {
            json_object *wrap = json_object_new_array();
            bool added = wrap && json_object_array_add(wrap, json_object_get(v)) == 0;
            if (wrap && !added)
                json_object_put(v); /* the reference the failed add did not take */
            if (!added || json_object_array_put_idx(arr, i, wrap) != 0) {
                json_object_put(wrap);
                free(keys);
                oom(c);
                return false;
            }
            v = wrap;
        }
        if (t->n_pk_columns && json_object_array_length(v) != t->n_pk_columns) {
            pgcw__errf(c->err, c->errlen, "keys[%zu] has %zu values for %zu pk columns",
                       i, json_object_array_length(v), t->n_pk_columns);
            free(keys);
            return false;
        }
        keys[i] = json_object_to_json_string_ext(v, KEY_TEXT_FLAGS);
        if (!keys[i]) {
            free(keys);
            oom(c);
            return false;
        }
        if (!pgcw__utf8_valid(keys[i], strlen(keys[i]))) {
            pgcw__errf(c->err, c->errlen, "keys[%zu] is not valid UTF-8", i);
            free(keys);
            return false;
        }
    }
    t->keys = keys;
    t->n_keys = n;
    return true;
}

static bool get_part(parse_ctx *c, json_object *root, int *out)
{
    *out = 0;
    json_object *v;
    if (!json_object_object_get_ex(root, "part", &v) || v == NULL)
        return true;
    int64_t part = json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_int) || part < 0 || part > INT_MAX) {
        pgcw__errf(c->err, c->errlen, "member \"part\" must be an integer >= 0");
        return false;
    }
    *out = (int)part;
    return true;
}

/* The members of a schema-change payload ("operation":"ddl"), after operation. */
static bool get_ddl(parse_ctx *c, json_object *root, pgcw_event *t)
{
    t->kind = PGCW_EVENT_SCHEMA;
    t->operation = PGCW_OP_NONE;
    return get_string(c, root, "command_tag", true, false, &t->command_tag) &&
           get_string(c, root, "object_type", true, false, &t->object_type) &&
           get_string(c, root, "object_identity", true, true, &t->object_identity) &&
           get_string(c, root, "schema", false, false, &t->schema) &&
           get_string(c, root, "table", false, false, &t->table);
}

static json_object *parse_json(parse_ctx *c, const char *payload, size_t len)
{
    /* json-c's own check lets overlong forms (C0 AF) and encoded surrogates
     * (ED A0 80) through: an event must never carry text that is not UTF-8. */
    if (!pgcw__utf8_valid(payload, len)) {
        pgcw__errf(c->err, c->errlen, "not valid UTF-8");
        return NULL;
    }
    json_tokener *tok = json_tokener_new_ex(PGCW__EVENT_MAX_DEPTH);
    if (!tok) {
        oom(c);
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *root = json_tokener_parse_ex(tok, payload, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr == json_tokener_continue) {
        pgcw__errf(c->err, c->errlen, "not JSON: truncated");
        return NULL;
    }
    if (jerr != json_tokener_success || !root) {
        pgcw__errf(c->err, c->errlen, "not JSON: %s at byte %zu",
                   json_tokener_error_desc(jerr), end);
        json_object_put(root);
        return NULL;
    }
    for (size_t i = end; i < len; i++)
        if (!strchr(" \t\r\n", payload[i])) {
            pgcw__errf(c->err, c->errlen, "not JSON: trailing characters at byte %zu", i);
            json_object_put(root);
            return NULL;
        }
    if (!json_object_is_type(root, json_type_object)) {
        pgcw__errf(c->err, c->errlen, "not a JSON object");
        json_object_put(root);
        return NULL;
    }
    return root;
}

pgcw_status pgcw__event_parse_json(const char *channel, const char *payload,
                                   size_t payload_len, int64_t received_at_us,
                                   pgcw_event **out, char *errbuf, size_t errlen)
{
    parse_ctx c = {errbuf, errlen, false};
    if (errbuf && errlen)
        errbuf[0] = '\0';
    *out = NULL;
    json_object *root = parse_json(&c, payload, payload_len);
    if (!root)
        return c.oom ? PGCW_ENOMEM : PGCW_EPARSE;

    pgcw_status st = PGCW_EPARSE;
    pgcw_event t = {.kind = PGCW_EVENT_CHANGE,
                    .channel = channel,
                    .payload = payload,
                    .received_at_us = received_at_us};
    const char *op, *sent_at;
    char shown[41];
    if (!get_string(&c, root, "operation", true, false, &op))
        goto done;
    /* The fast path declines "ddl" (pgcw_op_parse does not know it), so schema
     * events are always read here. */
    bool ddl = pgcw__ascii_ieq(op, "ddl");
    if (!ddl && pgcw_op_parse(op, &t.operation) != PGCW_OK) {
        pgcw__errf(errbuf, errlen, "unknown operation \"%s\"",
                   quote_for_error(op, shown, sizeof shown));
        goto done;
    }
    if (ddl ? !get_ddl(&c, root, &t)
            : (!get_string(&c, root, "table", true, false, &t.table) ||
               !get_string(&c, root, "schema", false, false, &t.schema)))
        goto done;
    if (!get_string(&c, root, "sent_at", true, false, &sent_at))
        goto done;
    if (pgcw_time_parse(sent_at, &t.sent_at_us) != PGCW_OK) {
        pgcw__errf(errbuf, errlen, "member \"sent_at\" is not a timestamp: \"%s\"",
                   quote_for_error(sent_at, shown, sizeof shown));
        goto done;
    }
    t.latency_us = pgcw__latency_us(received_at_us, t.sent_at_us);
    if (!get_part(&c, root, &t.part))
        goto done;
    if (!get_pk(&c, root, &t) || !get_keys(&c, root, payload, payload_len, &t)) {
        if (c.oom)
            st = PGCW_ENOMEM;
        goto done;
    }
    st = pgcw__event_build(&t, payload_len, out);
    if (st == PGCW_ENOMEM)
        pgcw__errf(errbuf, errlen, "out of memory");
done:
    free((void *)t.pk_columns);
    free((void *)t.keys);
    json_object_put(root);
    return st;
}

/* The table-change decoder: the fast path for flat payloads, json-c for the rest
 * (and for every error message). */
static pgcw_status decode_table_change(const char *channel, const char *payload,
                                       size_t payload_len, int64_t received_at_us,
                                       pgcw_event **out, char *why, size_t whylen)
{
    /* json-c costs ~2.5 us per notification, three times a bare libpq loop's whole
     * cost per event (docs/bench.md); our own flat payloads need none of it. */
    if (pgcw__event_parse_fast(channel, payload, payload_len, received_at_us, out))
        return PGCW_OK;
    return pgcw__event_parse_json(channel, payload, payload_len, received_at_us, out, why,
                                  whylen);
}

const pgcw__decoder pgcw__decoder_table_change = {
    .format = PGCW_FORMAT_TABLE_CHANGE,
    .name = "table-change",
    .decode = decode_table_change,
};
