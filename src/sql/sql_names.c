/*
 * sql_names.c - parsing table names with PostgreSQL's identifier rules, quoting
 * identifiers and literals for the SQL we generate, and deriving the names of the
 * objects we install (install.h's naming rules).
 *
 * Everything we paste into SQL goes through pgcw_quote_ident/pgcw_quote_literal;
 * this file must never return a name it could not round-trip exactly, and must
 * never truncate (PostgreSQL would silently truncate a long name, so we refuse).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_util.h"
#include "pgcachewatch/install.h"
#include "sql_names.h"

/* scanner_isspace() in PostgreSQL: what SplitIdentifierString() skips. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* ident_start / ident_cont of the scanner: bytes >= 0x80 count as letters, which
 * is how multibyte UTF-8 names are accepted unquoted. */
static bool is_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_ident_cont(unsigned char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Parses one identifier at *pp into out (NUL-terminated, at most
 * PGCW_MAX_IDENTIFIER bytes) and advances *pp past it. */
static pgcw_status parse_part(const char **pp, char *out, const char *what, char *errbuf,
                              size_t errlen)
{
    const char *p = *pp;
    size_t n = 0;
    if (*p == '"') {
        p++;
        for (;;) {
            if (*p == '\0') {
                pgcw__errf(errbuf, errlen, "unterminated quoted %s", what);
                return PGCW_EINVAL;
            }
            if (*p == '"') {
                if (p[1] != '"')
                    break;
                p++; /* "" stands for one quote */
            }
            if (n == PGCW_MAX_IDENTIFIER) {
                pgcw__errf(errbuf, errlen, "%s is longer than %d bytes", what,
                           PGCW_MAX_IDENTIFIER);
                return PGCW_EINVAL;
            }
            out[n++] = *p++;
        }
        p++; /* closing quote */
        if (n == 0) {
            pgcw__errf(errbuf, errlen, "zero-length quoted %s", what);
            return PGCW_EINVAL;
        }
    } else {
        if (!is_ident_start((unsigned char)*p)) {
            if (*p == '\0')
                pgcw__errf(errbuf, errlen, "missing %s", what);
            else
                pgcw__errf(errbuf, errlen, "invalid character '%c' at the start of %s",
                           *p, what);
            return PGCW_EINVAL;
        }
        while (is_ident_cont((unsigned char)*p)) {
            if (n == PGCW_MAX_IDENTIFIER) {
                pgcw__errf(errbuf, errlen, "%s is longer than %d bytes", what,
                           PGCW_MAX_IDENTIFIER);
                return PGCW_EINVAL;
            }
            char c = *p++;
            /* Only ASCII is folded, as PostgreSQL does in multibyte encodings. */
            out[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
    }
    out[n] = '\0';
    *pp = p;
    return PGCW_OK;
}

static const char *skip_space(const char *p)
{
    while (is_space(*p))
        p++;
    return p;
}

pgcw_status pgcw_parse_qualified_name(const char *text, pgcw_qualified_name *out)
{
    return pgcw__parse_qualified_name(text, out, NULL, 0);
}

pgcw_status pgcw__parse_qualified_name(const char *text, pgcw_qualified_name *out,
                                       char *errbuf, size_t errlen)
{
    if (!text || !out) {
        pgcw__errf(errbuf, errlen, "no table name given");
        return PGCW_EINVAL;
    }
    pgcw_qualified_name tmp;
    const char *p = skip_space(text);
    char first[PGCW_MAX_IDENTIFIER + 1];
    pgcw_status st = parse_part(&p, first, "name", errbuf, errlen);
    if (st != PGCW_OK)
        return st;
    p = skip_space(p);
    if (*p == '.') {
        p = skip_space(p + 1);
        st = parse_part(&p, tmp.name, "name after the schema", errbuf, errlen);
        if (st != PGCW_OK)
            return st;
        memcpy(tmp.schema, first, sizeof first);
        p = skip_space(p);
    } else {
        tmp.schema[0] = '\0';
        memcpy(tmp.name, first, sizeof first);
    }
    if (*p == '.') {
        pgcw__errf(errbuf, errlen,
                   "too many dotted names in \"%s\" (at most schema.table)", text);
        return PGCW_EINVAL;
    }
    if (*p != '\0') {
        pgcw__errf(errbuf, errlen, "invalid table name \"%s\": unexpected '%c'", text,
                   *p);
        return PGCW_EINVAL;
    }
    *out = tmp;
    return PGCW_OK;
}

/* Wraps text in q, doubling every q inside. */
static char *quote_with(const char *text, char q)
{
    if (!text)
        return NULL;
    size_t n = 2;
    for (const char *p = text; *p; p++)
        n += (*p == q) ? 2 : 1;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    char *o = out;
    *o++ = q;
    for (const char *p = text; *p; p++) {
        if (*p == q)
            *o++ = q;
        *o++ = *p;
    }
    *o++ = q;
    *o = '\0';
    return out;
}

char *pgcw_quote_ident(const char *ident)
{
    return quote_with(ident, '"');
}

char *pgcw_quote_literal(const char *text)
{
    return quote_with(text, '\'');
}

void pgcw__derive_name(char out[PGCW_MAX_IDENTIFIER + 1], const char *a, const char *b,
                       const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    if (la + lb + lc <= PGCW_MAX_IDENTIFIER) {
        memcpy(out, a, la);
        memcpy(out + la, b, lb);
        memcpy(out + la + lb, c, lc);
        out[la + lb + lc] = '\0';
        return;
    }
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (const char *p = b; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    char head[2 * (PGCW_MAX_IDENTIFIER + 1)];
    snprintf(head, sizeof head, "%s%s", a, b);
    size_t keep = PGCW_MAX_IDENTIFIER - lc - 9; /* "_" + 8 hex digits */
    while (keep > 0 && ((unsigned char)head[keep] & 0xC0) == 0x80)
        keep--; /* never split a multi-byte character */
    snprintf(out, PGCW_MAX_IDENTIFIER + 1, "%.*s_%08x%s", (int)keep, head, (unsigned)h,
             c);
}

void pgcw__fold_ascii(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}
