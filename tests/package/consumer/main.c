/* A consumer of the installed library: includes the public header, calls into it. */
#include <stdio.h>
#include <string.h>

#include <pgcachewatch/pgcachewatch.h>

int main(void)
{
    const char *tables[] = {"sales.orders"};
    char *sql = NULL;
    if (pgcw_install_sql(NULL, tables, 1, &sql, NULL, 0) != PGCW_OK)
        return 1;
    int ok = strstr(sql, "\"sales\".\"orders\"") != NULL;
    pgcw_free(sql);
    printf("pgcachewatch %s: %s\n", pgcw_version(), ok ? "ok" : "unexpected SQL");
    return ok ? 0 : 1;
}
