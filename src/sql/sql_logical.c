/*
 * sql_logical.c - the slot and publication names of logical decoding
 * (sql_logical.h). Never produces a name PostgreSQL would truncate or refuse.
 */
#include <stdio.h>
#include <string.h>

#include "core_util.h"
#include "sql_logical.h"
#include "sql_names.h"

static void fold(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

static bool slot_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

pgcw_status pgcw__logical_names_resolve(const char *channel, const char *slot_name,
                                        const char *publication, pgcw__logical_names *out,
                                        char *errbuf, size_t errlen)
{
    char ch[PGCW_MAX_IDENTIFIER + 1];
    channel = channel ? channel : PGCW_DEFAULT_CHANNEL;
    if (channel[0] == '\0' || strlen(channel) > PGCW_MAX_IDENTIFIER) {
        pgcw__errf(errbuf, errlen, "the channel name is empty or longer than %d bytes",
                   PGCW_MAX_IDENTIFIER);
        return PGCW_EINVAL;
    }
    snprintf(ch, sizeof ch, "%s", channel);
    fold(ch);
    if (slot_name) {
        size_t n = strlen(slot_name);
        snprintf(out->slot, sizeof out->slot, "%s", slot_name);
        fold(out->slot);
        bool ok = n >= 1 && n <= PGCW_MAX_IDENTIFIER;
        for (size_t i = 0; ok && i < n; i++)
            ok = slot_char(out->slot[i]);
        if (!ok) {
            pgcw__errf(errbuf, errlen,
                       "slot name \"%.80s\" is not 1 to %d of a-z, 0-9 and _ "
                       "(PostgreSQL's rule for replication slots)",
                       slot_name, PGCW_MAX_IDENTIFIER);
            return PGCW_EINVAL;
        }
    } else {
        char safe[PGCW_MAX_IDENTIFIER + 1];
        snprintf(safe, sizeof safe, "%s", ch);
        for (char *p = safe; *p; p++)
            if (!slot_char(*p))
                *p = '_';
        pgcw__derive_name(out->slot, "pgcachewatch_", safe, "");
    }
    if (publication) {
        size_t n = strlen(publication);
        if (n == 0 || n > PGCW_MAX_IDENTIFIER || !pgcw__utf8_valid(publication, n)) {
            pgcw__errf(errbuf, errlen,
                       "publication name \"%.80s\" is not 1 to %d bytes of UTF-8",
                       publication, PGCW_MAX_IDENTIFIER);
            return PGCW_EINVAL;
        }
        snprintf(out->publication, sizeof out->publication, "%s", publication);
        fold(out->publication);
    } else {
        pgcw__derive_name(out->publication, "pgcachewatch_", ch, "_pub");
    }
    return PGCW_OK;
}
