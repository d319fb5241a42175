/* main.c - placeholder until the CLI lands. */
#include <stdio.h>

#include <pgcachewatch/pgcachewatch.h>

int main(void)
{
    printf("pgcachewatch %s\n", pgcw_version());
    return 0;
}
