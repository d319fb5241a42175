/* pgserver.c - see pgserver.h. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgserver.h"
#include "pgtest.h"

/* pgserver.sh VERB on s's state file; start names this process as the watchdog's. */
static int run_script(const pgtest_server *s, const char *verb)
{
    const char *src = getenv("PGCW_SOURCE_DIR");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "bash '%s/tests/pg/pgserver.sh' %s '%s' %d >/dev/null",
             src ? src : ".", verb, s->state,
             strcmp(verb, "start") == 0 ? (int)getpid() : 0);
    return system(cmd) == 0 ? 0 : -1;
}

void pgtest_server_start(pgtest_server *s, const char *tag)
{
    memset(s, 0, sizeof *s);
    snprintf(s->state, sizeof s->state, "/tmp/pgcw-%s-%d.state", tag, (int)getpid());
    if (run_script(s, "start") != 0)
        fail_msg("pgserver.sh start failed");
    char *text = pgtest_slurp_path(s->state);
    char *p = strstr(text, "dsn=");
    if (p)
        s->dsn = strndup(p + 4, strcspn(p + 4, "\n"));
    free(text);
    if (!s->dsn)
        fail_msg("%s names no server", s->state);
}

int pgtest_server_stop(pgtest_server *s)
{
    int rc = 0;
    if (s->state[0])
        rc = run_script(s, "stop");
    s->state[0] = '\0';
    free(s->dsn);
    s->dsn = NULL;
    return rc;
}
