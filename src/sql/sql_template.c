/*
 * sql_template.c - `{{placeholder}}` expansion for the embedded SQL templates.
 * Pastes already-quoted values only; must never quote, escape or guess.
 */
#include "sql_template.h"

#include <stdbool.h>
#include <string.h>

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

pgcw_status pgcw__sql_expand(pgcw__buf *out, const char *tmpl, const pgcw__sql_var *vars,
                             size_t n_vars)
{
    if (!out || !tmpl || (n_vars && !vars))
        return PGCW_EINVAL;
    const char *p = tmpl;
    for (;;) {
        const char *open = strstr(p, "{{");
        if (!open) {
            pgcw__buf_append(out, p);
            break;
        }
        pgcw__buf_appendn(out, p, (size_t)(open - p));
        const char *name = open + 2;
        size_t len = 0;
        while (is_name_char(name[len]))
            len++;
        if (len == 0 || name[len] != '}' || name[len + 1] != '}')
            return PGCW_EINVAL;
        const pgcw__sql_var *var = NULL;
        for (size_t i = 0; i < n_vars; i++)
            if (vars[i].name && strlen(vars[i].name) == len &&
                memcmp(vars[i].name, name, len) == 0) {
                var = &vars[i];
                break;
            }
        if (!var || !var->value)
            return PGCW_EINVAL;
        pgcw__buf_append(out, var->value);
        p = name + len + 2;
    }
    return out->failed ? PGCW_ENOMEM : PGCW_OK;
}
