/*
 * fuzz_cli.c - libFuzzer target for the command line of `pgcachewatch`: each
 * command's option parsing (src/cli/, linked in without main()), the number syntax
 * of --count/--timeout/--ttl and the connection options (conn_opts.c). Nothing is
 * run and nothing connects: only the parsers, then what the commands do before
 * any I/O (install's dry-run SQL, the cache handle that checks the prefix and
 * channel, the connection settings handed to the library).
 *
 * The first input byte picks the command; the rest, split at NUL bytes, is its
 * arguments. What must hold, else it traps (an exit() would end the fuzzer too):
 *   - a parser returns -1 (go on), 0 (help printed) or 2 (usage error), and 1
 *     only when out of memory;
 *   - every string it keeps points into the arguments;
 *   - install's SQL is produced or refused with a one-line reason, never anything
 *     else; the cache handle is made exactly when the prefix is letters, digits
 *     and '_' (at most 33) and the channel 1 to 63 bytes; --count, --timeout and
 *     --ttl values are in range;
 *   - --source is listen, logical or poll; --slot/--publication come only with
 *     logical (which takes no --ddl, --with-keys or --format, and one channel at
 *     most), and a logical install's slot is a name PostgreSQL takes; install's
 *     dry run with poll is the listen one plus the change log (one more
 *     pg_current_xact_id()); listen's --poll-interval comes only with --source
 *     poll, above 0 and at most 1e9 seconds, and poll has one channel at most;
 *   - the connection settings hold each keyword once, NULL-terminated;
 *   - cli_parse_count and cli_parse_seconds accept exactly this file's grammar
 *     (digits, a fraction for seconds; a count of 1 to LLONG_MAX, at most 1e9
 *     seconds) and give its value.
 * The parsers print their usage errors: CI runs this target with -close_fd_mask=3.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <getopt.h>

#include <pgcachewatch/pgcachewatch.h>

#include "cli.h"
#include "cmd_cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 24

/* The arguments: one buffer of NUL-separated strings, and argv pointing into it. */
typedef struct args {
    char *buf;
    size_t len;
    char *argv[MAX_ARGS + 2];
    int argc;
} args;

static void expect(bool ok)
{
    if (!ok)
        __builtin_trap();
}

static bool borrowed(const args *a, const char *s)
{
    return !s || (s >= a->buf && s < a->buf + a->len);
}

static void check_rc(int rc)
{
    expect(rc == -1 || rc == CLI_EXIT_OK || rc == CLI_EXIT_USAGE ||
           rc == CLI_EXIT_RUNTIME);
}

static void check_conn(const args *a, const cli_conn_opts *c)
{
    expect(borrowed(a, c->dsn) && borrowed(a, c->host) && borrowed(a, c->port) &&
           borrowed(a, c->user) && borrowed(a, c->database) && borrowed(a, c->password));
    cli_conn_settings s;
    cli_conn_settings_init(&s, c);
    /* What a command adds after the options (listen's and the demo's timeouts). */
    cli_conn_settings_set(&s, "connect_timeout", "3");
    cli_conn_settings_set(&s, "host", "/nonexistent");
    size_t n = 0;
    while (s.keys[n]) {
        expect(n < 7 && s.values[n] && s.values[n][0]);
        for (size_t k = 0; k < n; k++)
            expect(strcmp(s.keys[k], s.keys[n]) != 0);
        n++;
    }
    expect(s.values[n] == NULL);
    expect(s.opts.conninfo == NULL || s.opts.conninfo == c->dsn);
    pgcw_conn *conn = NULL;
    if (pgcw_conn_new(&s.opts, &conn) == PGCW_OK)
        pgcw_conn_free(conn);
}

static void one_line(const char *msg)
{
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        expect(*p >= 0x20 && *p != 0x7F);
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* How often needle occurs in the script of the same options with source listen. */
static size_t listen_count(const pgcw_install_opts *opts, const char *const *tables,
                           size_t n_tables, const char *needle)
{
    pgcw_install_opts o = *opts;
    o.source = PGCW_WATCH_LISTEN;
    pgcw_install *in = NULL;
    char *sql = NULL;
    size_t n = 0;
    if (pgcw_install_new(&o, &in) == PGCW_OK &&
        pgcw_install_sql(in, tables, n_tables, &sql) == PGCW_OK)
        n = count_of(sql, needle);
    else
        __builtin_trap(); /* the poll script was made: the listen one must be */
    pgcw_free(sql);
    pgcw_install_free(in);
    return n;
}

static void fuzz_install(args *a, bool install)
{
    cli_install_args p;
    int rc = cli_install_parse(a->argc, a->argv, install, &p);
    check_rc(rc);
    if (rc == -1) {
        expect(p.help || !install || p.n_tables > 0 || p.opts.ddl); /* --ddl: none */
        expect(p.help || install || p.n_tables == 0);
        for (size_t i = 0; i < p.n_tables; i++)
            expect(p.tables[i] && borrowed(a, p.tables[i]));
        expect(borrowed(a, p.opts.channel) && borrowed(a, p.opts.function_name) &&
               borrowed(a, p.opts.trigger_prefix) && borrowed(a, p.opts.slot_name) &&
               borrowed(a, p.opts.publication));
        /* --source is listen, logical or poll; --slot and --publication only with
         * logical, which takes no --ddl and no --with-keys. */
        bool logical = p.opts.source == PGCW_WATCH_LOGICAL;
        expect(p.opts.source == PGCW_WATCH_LISTEN || logical ||
               p.opts.source == PGCW_WATCH_POLL);
        expect(p.help || logical || (!p.opts.slot_name && !p.opts.publication));
        expect(p.help || !logical || (!p.opts.ddl && !p.opts.with_keys));
        check_conn(a, &p.conn);
    }
    pgcw_install *in = NULL;
    if (rc == -1 && !p.help && pgcw_install_new(&p.opts, &in) == PGCW_OK) {
        /* What the dry run does, install or uninstall: no connection. */
        char *sql = NULL;
        pgcw_status st = pgcw_install_sql(in, install ? p.tables : NULL,
                                          install ? p.n_tables : 0, &sql);
        expect(st == PGCW_OK || st == PGCW_EINVAL || st == PGCW_ENOMEM);
        expect((st == PGCW_OK) == (sql != NULL));
        if (st == PGCW_OK)
            expect(strncmp(sql, "BEGIN;\n", 7) == 0);
        /* A logical install makes a slot whose name PostgreSQL accepts: 1 to 63
         * of a-z, 0-9 and _ once ASCII capitals are folded. */
        if (st == PGCW_OK && p.opts.source == PGCW_WATCH_LOGICAL) {
            expect(strstr(sql, "pg_create_logical_replication_slot(") != NULL);
            const char *slot = p.opts.slot_name;
            size_t n = slot ? strlen(slot) : 1;
            expect(n >= 1 && n <= 63);
            for (size_t i = 0; slot && i < n; i++)
                expect((slot[i] >= 'a' && slot[i] <= 'z') ||
                       (slot[i] >= 'A' && slot[i] <= 'Z') ||
                       (slot[i] >= '0' && slot[i] <= '9') || slot[i] == '_');
        }
        /* With poll, the script is the listen one plus the change log, whose
         * xid column is the one pg_current_xact_id() the channel's text (which
         * appears in both) cannot account for. */
        if (st == PGCW_OK && install && p.opts.source == PGCW_WATCH_POLL)
            expect(count_of(sql, "pg_current_xact_id()") >
                   listen_count(&p.opts, p.tables, p.n_tables, "pg_current_xact_id()"));
        if (st == PGCW_EINVAL) {
            expect(pgcw_install_errmsg(in)[0] != '\0');
            one_line(pgcw_install_errmsg(in));
        }
        pgcw_free(sql);
        pgcw_install_free(in);
    }
    free(p.tables);
}

static void fuzz_listen(args *a)
{
    cli_listen_args l;
    int rc = cli_listen_parse(a->argc, a->argv, &l);
    check_rc(rc);
    if (rc == -1) {
        expect(l.count >= 0 && l.timeout_ms >= -1 && l.timeout_ms <= 1000000000000LL);
        expect(l.format == PGCW_FORMAT_AUTO || l.format == PGCW_FORMAT_TABLE_CHANGE ||
               l.format == PGCW_FORMAT_CACHE_KEY);
        expect(l.n_channels <= (size_t)a->argc && l.channels[l.n_channels] == NULL);
        expect(l.source == PGCW_WATCH_LISTEN || l.source == PGCW_WATCH_LOGICAL ||
               l.source == PGCW_WATCH_POLL);
        /* --help skips the checks between options (as for --slot below). */
        expect(l.poll_interval_ms == 0 ||
               ((l.help || l.source == PGCW_WATCH_POLL) && l.poll_interval_ms >= 1 &&
                l.poll_interval_ms <= 1000000000000LL));
        expect(l.help || l.source != PGCW_WATCH_POLL || l.n_channels <= 1);
        for (size_t i = 0; i < l.n_channels; i++)
            expect(borrowed(a, l.channels[i]));
        expect(borrowed(a, l.slot_name) && borrowed(a, l.publication));
        bool logical = l.source == PGCW_WATCH_LOGICAL;
        expect(l.help || logical || (!l.slot_name && !l.publication));
        expect(l.help || !logical || (!l.format_given && l.n_channels <= 1));
        check_conn(a, &l.conn);
    }
    free(l.channels);
}

static void fuzz_demo(args *a)
{
    cli_conn_opts conn;
    bool help;
    int rc = cli_demo_parse(a->argc, a->argv, &conn, &help);
    check_rc(rc);
    if (rc == -1)
        check_conn(a, &conn);
}

static bool prefix_ok(const char *p)
{
    size_t n = strlen(p);
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
              (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
            return false;
    return n <= 33; /* 63 minus "cache_broadcast_change_trigger" */
}

static void fuzz_cache(args *a)
{
    cli_cache_args c;
    int rc = cli_cache_parse(a->argc, a->argv, &c);
    check_rc(rc);
    if (rc != -1)
        return;
    expect(c.run != NULL && c.n_args >= 0 && c.n_args < a->argc);
    for (int i = 0; i < c.n_args; i++)
        expect(borrowed(a, c.args[i]));
    expect(c.ttl_ms == PGCW_CACHE_TTL_DEFAULT || c.ttl_ms == PGCW_CACHE_TTL_NONE ||
           (c.ttl_ms >= 1 && c.ttl_ms <= 1000000000000LL));
    expect(borrowed(a, c.opts.schema_prefix) && borrowed(a, c.opts.notify_channel) &&
           strcmp(c.prefix, c.opts.schema_prefix ? c.opts.schema_prefix : "") == 0);
    check_conn(a, &c.conn);
    /* Making the handle is the library's check of the prefix and channel; it
     * connects only on the first call, which never comes. */
    const char *ch = c.opts.notify_channel ? c.opts.notify_channel : "cache_events";
    bool valid = prefix_ok(c.prefix) && strlen(ch) >= 1 && strlen(ch) <= 63;
    pgcw_cache *h = NULL;
    rc = cli_cache_open(&c, &h);
    expect(rc == -1               ? valid && h
           : rc == CLI_EXIT_USAGE ? !valid
                                  : rc == CLI_EXIT_RUNTIME);
    if (rc == CLI_EXIT_USAGE)
        one_line(c.why);
    pgcw_cache_free(h);
}

/* This file's grammar: digits, then (seconds only) '.' and digits. */
static bool grammar(const char *t, bool fraction, const char **dot)
{
    const char *p = t;
    *dot = NULL;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (fraction && *p == '.') {
        *dot = p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

static void fuzz_numbers(const char *t)
{
    const char *dot;
    long long n = 0;
    bool fits = true;
    if (grammar(t, false, &dot))
        for (const char *p = t; *p; p++) {
            int d = *p - '0';
            if (n > (LLONG_MAX - d) / 10)
                fits = false;
            else
                n = n * 10 + d;
        }
    long long got = -1;
    bool ok = cli_parse_count(t, &got);
    expect(ok == (grammar(t, false, &dot) && fits && n > 0));
    expect(!ok || got == n);

    ok = cli_parse_seconds(t, &got);
    if (!grammar(t, true, &dot)) {
        expect(!ok);
        return;
    }
    /* The whole seconds (leading zeros skipped) decide the range, but for the
     * fractions just above 1e9 itself. */
    const char *p = t;
    while (*p == '0' && p[1] >= '0' && p[1] <= '9')
        p++;
    size_t digits = (size_t)((dot ? dot : t + strlen(t)) - p);
    long long whole = digits <= 10 ? atoll(p) : LLONG_MAX;
    if (whole < 1000000000LL) {
        expect(ok);
        long long ms = whole * 1000;
        int scale = 100;
        for (const char *f = dot ? dot + 1 : ""; *f && scale; f++, scale /= 10)
            ms += (*f - '0') * scale;
        expect(got == ms || got == ms + 1); /* rounded at the fourth digit */
    } else if (whole > 1000000000LL) {
        expect(!ok);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096)
        return 0;
    static const char *const names[] = {"pgcachewatch install", "pgcachewatch uninstall",
                                        "pgcachewatch listen", "pgcachewatch cache",
                                        "pgcachewatch demo"};
    unsigned which = data[0] % 6;
    args a = {.len = size};
    /* An exact-size heap copy, NUL-terminated, so ASan sees any read past it. */
    a.buf = malloc(size);
    if (!a.buf)
        return 0;
    memcpy(a.buf, data + 1, size - 1);
    a.buf[size - 1] = '\0';
    if (which == 5) {
        fuzz_numbers(a.buf);
        free(a.buf);
        return 0;
    }
    char prog[32];
    strcpy(prog, names[which]);
    a.argv[a.argc++] = prog;
    for (size_t at = 0; at < size - 1 && a.argc <= MAX_ARGS; at += strlen(a.buf + at) + 1)
        a.argv[a.argc++] = a.buf + at;
    a.argv[a.argc] = NULL;
    optind = 0; /* glibc: a fresh getopt, as main() gives each command */
    switch (which) {
    case 0:
    case 1:
        fuzz_install(&a, which == 0);
        break;
    case 2:
        fuzz_listen(&a);
        break;
    case 3:
        fuzz_cache(&a);
        break;
    default:
        fuzz_demo(&a);
    }
    free(a.buf);
    return 0;
}
