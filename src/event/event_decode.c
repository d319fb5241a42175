/*
 * event_decode.c - choosing a channel's decoder (event_decoder.h) and the checks
 * every payload passes first: pgcw_event_parse() and the watcher's
 * pgcw__event_decode(). Must never hand a payload to a decoder before those checks.
 */
#include <string.h>

#include "core_util.h"
#include "event_decoder.h"
#include "event_internal.h"

static const pgcw__decoder *const decoders[] = {
    &pgcw__decoder_table_change,
    &pgcw__decoder_cache_key,
};

#define N_DECODERS (sizeof decoders / sizeof decoders[0])

const char *pgcw_payload_format_name(pgcw_payload_format format)
{
    if (format == PGCW_FORMAT_AUTO)
        return "auto";
    for (size_t i = 0; i < N_DECODERS; i++)
        if (decoders[i]->format == format)
            return decoders[i]->name;
    return "unknown";
}

pgcw_status pgcw_payload_format_parse(const char *text, pgcw_payload_format *out)
{
    if (!text)
        return PGCW_EPARSE;
    pgcw_payload_format f = PGCW_FORMAT_AUTO;
    if (strcmp(text, "auto") != 0) {
        size_t i = 0;
        while (i < N_DECODERS && strcmp(text, decoders[i]->name) != 0)
            i++;
        if (i == N_DECODERS)
            return PGCW_EPARSE;
        f = decoders[i]->format;
    }
    if (out)
        *out = f;
    return PGCW_OK;
}

bool pgcw__payload_format_valid(pgcw_payload_format format)
{
    return strcmp(pgcw_payload_format_name(format), "unknown") != 0;
}

/* AUTO: JSON objects start with '{' (after JSON whitespace), key notifications
 * with 'u' or 'd'; anything else is offered to the JSON decoder, which explains
 * what is wrong with it. */
static const pgcw__decoder *choose(pgcw_payload_format format, const char *payload,
                                   size_t len)
{
    if (format == PGCW_FORMAT_AUTO) {
        size_t i = 0;
        while (i < len && strchr(" \t\r\n", payload[i]))
            i++;
        if (i == 0 && len > 0 && (payload[0] == 'u' || payload[0] == 'd'))
            return &pgcw__decoder_cache_key;
        return &pgcw__decoder_table_change;
    }
    for (size_t i = 0; i < N_DECODERS; i++)
        if (decoders[i]->format == format)
            return decoders[i];
    return NULL;
}

pgcw_status pgcw__event_decode(pgcw_payload_format format, const char *channel,
                               const char *payload, size_t payload_len,
                               int64_t received_at_us, pgcw_event **out, char *why,
                               size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    if (!out) {
        pgcw__errf(why, whylen, "no output pointer");
        return PGCW_EINVAL;
    }
    *out = NULL;
    const pgcw__decoder *d = choose(format, payload, payload ? payload_len : 0);
    if (!d) {
        pgcw__errf(why, whylen, "unknown payload format %d", (int)format);
        return PGCW_EINVAL;
    }
    if (!payload || payload_len == 0) {
        pgcw__errf(why, whylen, "empty payload");
        return PGCW_EPARSE;
    }
    if (payload_len > PGCW__EVENT_MAX_PAYLOAD) {
        pgcw__errf(why, whylen, "payload of %zu bytes exceeds the %zu-byte limit",
                   payload_len, PGCW__EVENT_MAX_PAYLOAD);
        return PGCW_EPARSE;
    }
    if (memchr(payload, '\0', payload_len)) {
        pgcw__errf(why, whylen, "payload contains a NUL byte");
        return PGCW_EPARSE;
    }
    if (received_at_us == 0)
        received_at_us = pgcw__real_us();
    pgcw_status st =
        d->decode(channel, payload, payload_len, received_at_us, out, why, whylen);
    if (st == PGCW_ENOMEM)
        pgcw__errf(why, whylen, "out of memory");
    return st;
}

pgcw_status pgcw_event_parse(pgcw_payload_format format, const char *channel,
                             const char *payload, size_t payload_len,
                             int64_t received_at_us, const pgcw_event **out)
{
    pgcw_event *e = NULL;
    pgcw_status st = pgcw__event_decode(format, channel, payload, payload_len,
                                        received_at_us, out ? &e : NULL, NULL, 0);
    if (out)
        *out = e;
    return st;
}
