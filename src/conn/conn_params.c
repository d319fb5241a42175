/*
 * conn_params.c - connection settings resolved once (conn_internal.h): the
 * connection string or $PGDSN, then the caller's keyword/value pairs, then the
 * library's defaults (application name, keepalives, tcp_user_timeout) where the
 * caller set none, and the connect timeout.
 *
 * Must never put any part of a connection string libpq could not parse into a
 * message (a password may be anywhere in it), and never read PGDSN or
 * PGCONNECT_TIMEOUT anywhere else.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "core_util.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_STALL_TIMEOUT_MS 20000
#define DEFAULT_RECONNECT_MIN_MS 100
#define DEFAULT_RECONNECT_MAX_MS 5000

static bool push(pgcw__conn_params *p, size_t *cap, const char *key, const char *value)
{
    if (p->n + 2 > *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        char **k = realloc(p->keys, ncap * sizeof *k);
        if (!k)
            return false;
        p->keys = k;
        char **v = realloc(p->values, ncap * sizeof *v);
        if (!v)
            return false;
        p->values = v;
        *cap = ncap;
    }
    char *kc = pgcw__strdup(key), *vc = pgcw__strdup(value);
    if (!kc || !vc) {
        free(kc);
        free(vc);
        return false;
    }
    p->keys[p->n] = kc;
    p->values[p->n] = vc;
    p->n++;
    p->keys[p->n] = NULL;
    p->values[p->n] = NULL;
    return true;
}

const char *pgcw__conn_params_get(const pgcw__conn_params *p, const char *keyword)
{
    for (size_t i = p->n; i-- > 0;)
        if (strcmp(p->keys[i], keyword) == 0)
            return p->values[i];
    return NULL;
}

/* libpq's rule for dbname: a string with '=' or a URI prefix is a connection
 * string, anything else a database name. */
static bool looks_like_conninfo(const char *s)
{
    return strchr(s, '=') || strncmp(s, "postgresql://", 13) == 0 ||
           strncmp(s, "postgres://", 11) == 0;
}

/* libpq's parse errors quote the text they choke on ("missing "=" after
 * "Leak7""), which may be part of a password and may itself hold quotes, so no
 * rule about quotes can find where the quoted text ends. Instead the message is
 * matched against libpq's own templates (fe-connect.c): the fixed text before the
 * quoted part is kept, the rest becomes "...". A message that matches none (a
 * translated one, a newer libpq's) is not shown at all. */
static void redact_parse_error(const char *libpq_msg, char *out, size_t len)
{
    static const char *const whole[] = {
        "unterminated quoted string in connection info string",
        "out of memory",
    };
    static const char *const before_text[] = {
        "missing \"=\" after \"",
        "invalid connection option \"",
        "invalid URI propagated to internal parser routine: \"",
        /* One message, split for width (parenthesized: clang's
         * -Wstring-concatenation would take it for a missing comma). */
        ("end of string reached when looking for matching \"]\" in IPv6 host address "
         "in URI: \""),
        "IPv6 host address may not be empty in URI: \"",
        "unexpected character \"",
        "extra key/value separator \"=\" in URI query parameter: \"",
        "missing key/value separator \"=\" in URI query parameter: \"",
        "invalid URI query parameter: \"",
        "invalid percent-encoded token: \"",
        "forbidden value %00 in percent-encoded value: \"",
    };
    const char *m = libpq_msg ? libpq_msg : "out of memory";
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++)
        if (strncmp(m, whole[i], strlen(whole[i])) == 0 &&
            (m[strlen(whole[i])] == '\0' || m[strlen(whole[i])] == '\n')) {
            pgcw__errf(out, len, "invalid connection string: %s", whole[i]);
            return;
        }
    for (size_t i = 0; i < sizeof before_text / sizeof before_text[0]; i++) {
        size_t n = strlen(before_text[i]);
        if (strncmp(m, before_text[i], n) == 0) {
            pgcw__errf(out, len, "invalid connection string: %.*s\"...\"", (int)(n - 1),
                       before_text[i]);
            return;
        }
    }
    pgcw__errf(out, len, "%s",
               "invalid connection string (libpq's reason is not shown: it quotes the "
               "string, which may hold a password)");
}

static bool set_error(pgcw__conn_params *p, const char *msg)
{
    free(p->error);
    p->error = pgcw__strdup(msg);
    return p->error != NULL;
}

/* The connection string's settings, in order. false only on out of memory. */
static bool add_conninfo(pgcw__conn_params *p, size_t *cap, const char *conninfo)
{
    if (!looks_like_conninfo(conninfo))
        return push(p, cap, "dbname", conninfo);
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts) {
        char msg[512];
        redact_parse_error(err, msg, sizeof msg);
        PQfreemem(err);
        return set_error(p, msg);
    }
    bool ok = true;
    for (PQconninfoOption *o = opts; ok && o->keyword; o++)
        if (o->val && *o->val)
            ok = push(p, cap, o->keyword, o->val);
    PQconninfoFree(opts);
    return ok;
}

/* Whether libpq knows the keyword (an unknown one makes every attempt fail). */
static bool known_keyword(const PQconninfoOption *defs, const char *key)
{
    for (const PQconninfoOption *o = defs; o && o->keyword; o++)
        if (strcmp(o->keyword, key) == 0)
            return true;
    return false;
}

static bool add_pairs(pgcw__conn_params *p, size_t *cap, const char *const *keys,
                      const char *const *values)
{
    if (!keys)
        return true;
    PQconninfoOption *defs = PQconndefaults();
    if (!defs)
        return false;
    bool ok = true;
    for (size_t i = 0; ok && keys[i]; i++) {
        const char *v = values ? values[i] : NULL;
        if (!v || !*v)
            continue;
        if (!known_keyword(defs, keys[i])) {
            char msg[160];
            pgcw__errf(msg, sizeof msg, "invalid connection option \"%.64s\"", keys[i]);
            ok = set_error(p, msg);
            break;
        }
        ok = push(p, cap, keys[i], v);
    }
    PQconninfoFree(defs);
    return ok;
}

/* keepalives and tcp_user_timeout from the stall timeout, where the caller set
 * none of them. */
static bool add_stall_defaults(pgcw__conn_params *p, size_t *cap, int64_t stall_ms)
{
    int64_t s = stall_ms / 1000;
    int64_t idle = s / 2 > 0 ? s / 2 : 1, interval = s / 8 > 0 ? s / 8 : 1;
    char idle_s[24], interval_s[24], user_ms[24];
    pgcw__errf(idle_s, sizeof idle_s, "%lld", (long long)(idle > 86400 ? 86400 : idle));
    pgcw__errf(interval_s, sizeof interval_s, "%lld",
               (long long)(interval > 86400 ? 86400 : interval));
    /* tcp_user_timeout is an int of milliseconds in the kernel. */
    pgcw__errf(user_ms, sizeof user_ms, "%lld",
               (long long)(stall_ms > 2147483647 ? 2147483647 : stall_ms));
    const char *const derived[][2] = {{"keepalives", "1"},
                                      {"keepalives_idle", idle_s},
                                      {"keepalives_interval", interval_s},
                                      {"keepalives_count", "4"},
                                      {"tcp_user_timeout", user_ms}};
    for (size_t i = 0; i < sizeof derived / sizeof derived[0]; i++)
        if (!pgcw__conn_params_get(p, derived[i][0]) &&
            !push(p, cap, derived[i][0], derived[i][1]))
            return false;
    return true;
}

/* libpq's connect_timeout: whole seconds, <= 0 meaning forever. */
static int64_t connect_timeout_us(const pgcw__conn_params *p, int64_t opt_ms)
{
    if (opt_ms != 0)
        return opt_ms < 0 ? PGCW__NEVER : pgcw__ms_to_us(opt_ms);
    const char *v = pgcw__conn_params_get(p, "connect_timeout");
    if (!v)
        v = getenv("PGCONNECT_TIMEOUT");
    if (!v || !*v)
        return pgcw__ms_to_us(DEFAULT_CONNECT_TIMEOUT_MS);
    char *end = NULL;
    errno = 0;
    long long secs = strtoll(v, &end, 10);
    if (errno || end == v)
        return pgcw__ms_to_us(DEFAULT_CONNECT_TIMEOUT_MS);
    return secs <= 0 ? PGCW__NEVER : pgcw__ms_to_us(pgcw__ms_to_us(secs));
}

pgcw_status pgcw__conn_params_init(pgcw__conn_params *p, const pgcw_conn_opts *opts)
{
    static const pgcw_conn_opts defaults = {0};
    const pgcw_conn_opts *o = opts ? opts : &defaults;
    *p = (pgcw__conn_params){0};
    size_t cap = 0;
    const char *conninfo = o->conninfo;
    if (!conninfo) {
        const char *env = getenv("PGDSN");
        conninfo = env && *env ? env : NULL;
    }
    bool ok = push(p, &cap, "fallback_application_name",
                   o->application_name ? o->application_name : "pgcachewatch");
    if (ok && conninfo && *conninfo)
        ok = add_conninfo(p, &cap, conninfo);
    if (ok && !p->error)
        ok = add_pairs(p, &cap, o->keys, o->values);
    if (ok && !p->error && o->stall_timeout_ms >= 0)
        ok = add_stall_defaults(p, &cap,
                                o->stall_timeout_ms ? o->stall_timeout_ms
                                                    : DEFAULT_STALL_TIMEOUT_MS);
    const char *pw = ok ? pgcw__conn_params_get(p, "password") : NULL;
    if (ok && pw && *pw)
        ok = (p->password = pgcw__strdup(pw)) != NULL;
    if (!ok) {
        pgcw__conn_params_free(p);
        return PGCW_ENOMEM;
    }
    p->connect_timeout_us = connect_timeout_us(p, o->connect_timeout_ms);
    p->reconnect_min_us = pgcw__ms_or(o->reconnect_min_ms, DEFAULT_RECONNECT_MIN_MS);
    p->reconnect_max_us = pgcw__ms_or(o->reconnect_max_ms, DEFAULT_RECONNECT_MAX_MS);
    if (p->reconnect_min_us <= 0)
        p->reconnect_min_us = pgcw__ms_to_us(DEFAULT_RECONNECT_MIN_MS);
    if (p->reconnect_max_us < p->reconnect_min_us)
        p->reconnect_max_us = p->reconnect_min_us;
    return PGCW_OK;
}

void pgcw__conn_params_free(pgcw__conn_params *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->keys[i]);
        free(p->values[i]);
    }
    free(p->keys);
    free(p->values);
    free(p->password);
    free(p->error);
    *p = (pgcw__conn_params){0};
}

void pgcw__scrub_password(char *msg, size_t msglen, const char *password)
{
    if (!msg || !password || !*password)
        return;
    static const char mask[] = "********";
    size_t plen = strlen(password);
    pgcw__buf b = {0};
    const char *p = msg;
    for (const char *hit; (hit = strstr(p, password)) != NULL; p = hit + plen) {
        pgcw__buf_appendn(&b, p, (size_t)(hit - p));
        pgcw__buf_append(&b, mask);
    }
    if (p == msg) {
        pgcw__buf_free(&b);
        return;
    }
    pgcw__buf_append(&b, p);
    if (b.failed) {
        /* Cannot rebuild: losing the message beats leaking the password. */
        pgcw__errf(msg, msglen, "%s", "(message withheld: it held the password)");
    } else {
        pgcw__errf(msg, msglen, "%s", b.data);
    }
    pgcw__buf_free(&b);
}
