/*
 * event_decode_key.c - the postgres-cache key notification: 'u' (written) or 'd'
 * (deleted), the entry's version in decimal, then either 0x1F and the key with
 * every 0x1F doubled, or '|' and the key's bytes in hex (either case).
 *
 *   u42\x1Fprofile:7          key "profile:7", version 42, written
 *   d7\x1Fa\x1F\x1Fb          key "a\x1Fb", version 7, deleted
 *   u42|70726f66696c653a37    key "profile:7", version 42, written
 *
 * The key is taken as the bytes the server sent (not checked for UTF-8: in a
 * SQL_ASCII database a key may hold any byte but NUL, and refusing it would lose
 * an invalidation). Must never accept a payload that could stand for two different
 * keys: a lone 0x1F, an odd or non-hex digit, a NUL from hex, trailing junk after
 * the version, or a version outside int64 is refused.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "core_util.h"
#include "event_decoder.h"
#include "event_internal.h"

#define SEP 0x1F

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses [-]digits at p[0..n) into *out, stopping at the first non-digit; returns
 * the number of bytes read, 0 when there is no number or it is outside int64. */
static size_t parse_version(const char *p, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = n > 0 && p[0] == '-';
    if (neg)
        i++;
    size_t first = i;
    uint64_t mag = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
        uint64_t d = (uint64_t)(p[i] - '0');
        if (mag > (UINT64_MAX - d) / 10)
            return 0;
        mag = mag * 10 + d;
    }
    if (i == first)
        return 0;
    if (neg ? mag > (uint64_t)INT64_MAX + 1 : mag > (uint64_t)INT64_MAX)
        return 0;
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return i;
}

/* The key after 0x1F: every 0x1F doubled. Writes the decoded key to dst (room for
 * n bytes) and returns its length, or (size_t)-1 on a lone 0x1F. */
static size_t unescape(const char *p, size_t n, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == SEP) {
            if (i + 1 == n || p[i + 1] != SEP)
                return (size_t)-1;
            i++;
        }
        dst[o++] = p[i];
    }
    return o;
}

/* The key after '|' in hex. Returns its length, or (size_t)-1 with why set. */
static size_t unhex(const char *p, size_t n, char *dst, char *why, size_t whylen)
{
    if (n % 2 != 0) {
        pgcw__errf(why, whylen, "hex key has an odd number of digits (%zu)", n);
        return (size_t)-1;
    }
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_value(p[i]), lo = hex_value(p[i + 1]);
        if (hi < 0 || lo < 0) {
            pgcw__errf(why, whylen, "hex key has a non-hex digit at offset %zu",
                       hi < 0 ? i : i + 1);
            return (size_t)-1;
        }
        if (hi == 0 && lo == 0) {
            pgcw__errf(why, whylen, "hex key holds a NUL byte at offset %zu", i / 2);
            return (size_t)-1;
        }
        dst[i / 2] = (char)(hi << 4 | lo);
    }
    return n / 2;
}

static pgcw_status decode_cache_key(const char *channel, const char *payload,
                                    size_t payload_len, int64_t received_at_us,
                                    pgcw_event **out, char *why, size_t whylen)
{
    pgcw_op op;
    if (payload[0] == 'u') {
        op = PGCW_OP_UPDATE;
    } else if (payload[0] == 'd') {
        op = PGCW_OP_DELETE;
    } else {
        pgcw__errf(why, whylen,
                   "not a cache key notification (it must start with "
                   "'u' or 'd')");
        return PGCW_EPARSE;
    }
    int64_t version = 0;
    size_t vlen = parse_version(payload + 1, payload_len - 1, &version);
    if (vlen == 0) {
        pgcw__errf(why, whylen,
                   "cache key notification without a valid version "
                   "(decimal, within int64) after '%c'",
                   payload[0]);
        return PGCW_EPARSE;
    }
    size_t at = 1 + vlen;
    if (at == payload_len || (payload[at] != SEP && payload[at] != '|')) {
        pgcw__errf(why, whylen,
                   "cache key notification: expected 0x1F or '|' after "
                   "the version");
        return PGCW_EPARSE;
    }
    bool hex = payload[at] == '|';
    const char *body = payload + at + 1;
    size_t body_len = payload_len - at - 1;
    char *key = malloc(body_len + 1);
    if (!key)
        return PGCW_ENOMEM;
    size_t key_len =
        hex ? unhex(body, body_len, key, why, whylen) : unescape(body, body_len, key);
    if (key_len == (size_t)-1) {
        if (!hex)
            pgcw__errf(why, whylen, "cache key holds a 0x1F that is not doubled");
        free(key);
        return PGCW_EPARSE;
    }
    pgcw_event t = {.kind = PGCW_EVENT_KEY,
                    .operation = op,
                    .channel = channel,
                    .sent_at_us = received_at_us,
                    .received_at_us = received_at_us,
                    .payload = payload,
                    .key = key,
                    .key_len = key_len,
                    .version = version};
    pgcw_status st = pgcw__event_build(&t, payload_len, out);
    free(key);
    return st;
}

const pgcw__decoder pgcw__decoder_cache_key = {
    .format = PGCW_FORMAT_CACHE_KEY,
    .name = "cache-key",
    .decode = decode_cache_key,
};
