/*
 * conn_error.c - PostgreSQL's errors as one line with the SQLSTATE, the one copy
 * of that format, and which errors retrying cannot fix.
 *
 * Must never produce more than one line, and never drop the SQLSTATE when the
 * server sent one.
 */
#include <string.h>

#include "conn_internal.h"
#include "core_util.h"

void pgcw__result_message(const PGresult *res, const PGconn *conn, char *buf, size_t len)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!primary) {
        char msg[1024];
        const char *libpq = res ? PQresultErrorMessage(res) : "";
        if ((!libpq || !*libpq) && conn)
            libpq = PQerrorMessage(conn);
        pgcw__errf(msg, sizeof msg, "%s", libpq && *libpq ? libpq : "unknown error");
        pgcw__errf(buf, len, "%s", pgcw__one_line(msg));
        return;
    }
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    pgcw__errf(buf, len, "%s%s%s%s%s%s%s%s", primary, detail ? " DETAIL: " : "",
               detail ? detail : "", hint ? " HINT: " : "", hint ? hint : "",
               state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "");
    if (buf && len)
        pgcw__one_line(buf);
}

bool pgcw__sqlstate_permanent(const char *sqlstate)
{
    if (!sqlstate || strlen(sqlstate) != 5)
        return false;
    /* 42501 at connect time: a role without REPLICATION opening a replication
     * connection, or without CONNECT on the database. */
    return strncmp(sqlstate, "28", 2) == 0 || strcmp(sqlstate, "3D000") == 0 ||
           strcmp(sqlstate, "42501") == 0;
}

static bool is_state_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
}

/* In verbose mode libpq writes "SEVERITY:  XXXXX:  message": returns the
 * position of the code in line (after ":  "), or NULL. */
static const char *find_code(const char *line, const char *end)
{
    for (const char *p = line; p + 9 <= end; p++) {
        if (p[0] != ':' || p[1] != ' ' || p[2] != ' ')
            continue;
        const char *c = p + 3;
        bool code = true;
        for (int i = 0; i < 5 && code; i++)
            code = is_state_char(c[i]);
        if (code && c[5] == ':')
            return c;
    }
    return NULL;
}

void pgcw__connect_message(const char *libpq_msg, char *buf, size_t len, char sqlstate[6])
{
    sqlstate[0] = '\0';
    pgcw__buf b = {0};
    const char *m = libpq_msg ? libpq_msg : "";
    while (*m) {
        const char *nl = strchr(m, '\n');
        const char *end = nl ? nl : m + strlen(m);
        const char *line = m;
        m = nl ? nl + 1 : end;
        while (line < end && *line == ' ')
            line++;
        if (line == end || strncmp(line, "LOCATION:", 9) == 0)
            continue;
        const char *code = find_code(line, end);
        if (b.len)
            pgcw__buf_append(&b, " ");
        if (code) {
            if (!sqlstate[0]) {
                memcpy(sqlstate, code, 5);
                sqlstate[5] = '\0';
            }
            /* Drop "XXXXX:" and the blanks after it. */
            const char *rest = code + 6;
            while (rest < end && *rest == ' ')
                rest++;
            pgcw__buf_appendn(&b, line, (size_t)(code - line));
            pgcw__buf_appendn(&b, rest, (size_t)(end - rest));
        } else {
            pgcw__buf_appendn(&b, line, (size_t)(end - line));
        }
    }
    if (sqlstate[0])
        pgcw__buf_appendf(&b, " (SQLSTATE %s)", sqlstate);
    if (b.failed || !b.data)
        pgcw__errf(buf, len, "%s", b.failed ? "out of memory" : "unknown error");
    else
        pgcw__errf(buf, len, "%s", pgcw__trim_end(b.data));
    pgcw__buf_free(&b);
}
