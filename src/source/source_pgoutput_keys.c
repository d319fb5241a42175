/*
 * source_pgoutput_keys.c - one pgoutput TupleData read column by column, its
 * replica identity values written as a JSON array (source_pgoutput_keys.h).
 * pgoutput sends every value as text in the type's output format: a value of an
 * integer type or numeric is written bare when its text is a JSON number, every
 * other value as a JSON string escaped the way the trigger path's keys are
 * (json-c's plain form: \" \\ \b \f \n \r \t, other control bytes as \u00xx).
 *
 * Must never read past *left bytes, and never produce a key that is not strict
 * UTF-8 JSON: a value that is not UTF-8 makes the key unknown, not an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_util.h"
#include "source_pgoutput_keys.h"

bool pgcw__pgo_numeric_type(uint32_t oid)
{
    switch (oid) {
    case 20:   /* int8 */
    case 21:   /* int2 */
    case 23:   /* int4 */
    case 26:   /* oid */
    case 1700: /* numeric */
        return true;
    default:
        return false;
    }
}

/* RFC 8259's number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. numeric's
 * NaN and Infinity are not, so they are written as strings. */
static bool json_number(const char *s, size_t n)
{
    size_t i = 0;
#define DIGIT(k) ((k) < n && s[k] >= '0' && s[k] <= '9')
    if (i < n && s[i] == '-')
        i++;
    if (!DIGIT(i))
        return false;
    if (s[i] == '0')
        i++;
    else
        while (DIGIT(i))
            i++;
    if (i < n && s[i] == '.') {
        i++;
        if (!DIGIT(i))
            return false;
        while (DIGIT(i))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (!DIGIT(i))
            return false;
        while (DIGIT(i))
            i++;
    }
#undef DIGIT
    return i == n;
}

static void append_json_string(pgcw__buf *b, const char *s, size_t n)
{
    pgcw__buf_append(b, "\"");
    size_t run = 0; /* bytes copied as they are, flushed before each escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char hex[8];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                snprintf(hex, sizeof hex, "\\u%04x", c);
                esc = hex;
            }
        }
        if (!esc) {
            run++;
            continue;
        }
        pgcw__buf_appendn(b, s + i - run, run);
        run = 0;
        pgcw__buf_append(b, esc);
    }
    pgcw__buf_appendn(b, s + n - run, run);
    pgcw__buf_append(b, "\"");
}

static uint64_t get_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

pgcw_status pgcw__pgo_read_key(pgcw__pgo_keyset *ks, const pgcw__pgo_cols *cols,
                               const unsigned char **pp, size_t *leftp, char *why,
                               size_t whylen)
{
    const unsigned char *p = *pp;
    size_t left = *leftp;
    if (left < 2) {
        pgcw__errf(why, whylen, "message truncated: tuple column count does not fit");
        return PGCW_EPARSE;
    }
    size_t n = (size_t)get_be(p, 2);
    p += 2, left -= 2;
    if (n != cols->n_cols) {
        pgcw__errf(why, whylen, "tuple of %zu columns for a relation of %zu", n,
                   cols->n_cols);
        return PGCW_EPARSE;
    }
    pgcw__buf key = {0};
    bool unknown = false;
    size_t in_key = 0;
    pgcw__buf_append(&key, "[");
    for (size_t i = 0; i < n; i++) {
        if (left < 1) {
            pgcw__buf_free(&key);
            pgcw__errf(why, whylen, "message truncated: column %zu does not fit", i + 1);
            return PGCW_EPARSE;
        }
        unsigned char kind = *p++;
        left--;
        const char *val = NULL;
        size_t len = 0;
        if (kind == 't') {
            if (left < 4 || get_be(p, 4) > left - 4) {
                pgcw__buf_free(&key);
                pgcw__errf(why, whylen,
                           "message truncated: column %zu's value does not fit", i + 1);
                return PGCW_EPARSE;
            }
            len = (size_t)get_be(p, 4);
            val = (const char *)p + 4;
            p += 4 + len, left -= 4 + len;
        } else if (kind != 'n' && kind != 'u') {
            pgcw__buf_free(&key);
            pgcw__errf(why, whylen, "column %zu: unexpected kind 0x%02x", i + 1, kind);
            return PGCW_EPARSE;
        }
        if (!cols->is_key[i])
            continue;
        if (in_key++)
            pgcw__buf_append(&key, ",");
        if (kind == 'u' || (val && !pgcw__utf8_valid(val, len)))
            unknown = true;
        else if (kind == 'n')
            pgcw__buf_append(&key, "null");
        else if (pgcw__pgo_numeric_type(cols->types[i]) && json_number(val, len))
            pgcw__buf_appendn(&key, val, len);
        else
            append_json_string(&key, val, len);
    }
    pgcw__buf_append(&key, "]");
    *pp = p;
    *leftp = left;
    if (key.failed) {
        pgcw__buf_free(&key);
        pgcw__errf(why, whylen, "out of memory");
        return PGCW_ENOMEM;
    }
    if (cols->n_key == 0 || ks->unknown) {
        pgcw__buf_free(&key);
        return PGCW_OK;
    }
    if (unknown) {
        pgcw__buf_free(&key);
        pgcw__pgo_keyset_free(ks);
        ks->unknown = true;
        return PGCW_OK;
    }
    for (size_t i = 0; i < ks->n_keys; i++)
        if (strcmp(ks->keys[i], key.data) == 0) {
            pgcw__buf_free(&key);
            return PGCW_OK;
        }
    if (ks->n_keys == sizeof ks->keys / sizeof ks->keys[0]) {
        pgcw__buf_free(&key);
        pgcw__errf(why, whylen, "more than two tuples in one change");
        return PGCW_EPARSE;
    }
    ks->keys[ks->n_keys++] = pgcw__buf_take(&key);
    return PGCW_OK;
}

void pgcw__pgo_keyset_free(pgcw__pgo_keyset *ks)
{
    for (size_t i = 0; i < ks->n_keys; i++)
        free(ks->keys[i]);
    ks->n_keys = 0;
    ks->keys[0] = ks->keys[1] = NULL;
}
