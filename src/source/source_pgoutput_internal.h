/*
 * source_pgoutput_internal.h - what the pgoutput decoder's files share: the
 * decoder's state, the relation cache (source_pgoutput_rel.c) and the bounded
 * message reader. Only source_pgoutput*.c include it.
 */
#ifndef PGCW_SOURCE_PGOUTPUT_INTERNAL_H
#define PGCW_SOURCE_PGOUTPUT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "source_pgoutput.h"

typedef struct relation {
    uint32_t relid;
    char *schema, *table;
    size_t n_cols;
    uint32_t *types;
    bool *is_key;
    size_t n_key;
    char **key_names; /* n_key names of the key columns, in column order */
} relation;

struct pgcw__pgoutput {
    char *channel;
    relation *rels; /* unordered; looked up by relid */
    size_t n_rels, cap_rels;
    bool in_txn;
    uint64_t commit_lsn;
    int64_t commit_time_us;
    uint32_t xid;       /* the transaction's, from its Begin */
    pgcw_event **queue; /* [head, n_queue) are queued */
    size_t head, n_queue, cap_queue;
};

/* A message being read: every get checks the bytes left first and, once one
 * fails, so do all later ones (one check of `bad` at the end suffices). */
typedef struct reader {
    const unsigned char *p;
    size_t left;
    bool bad;
    const char *what; /* the first thing that did not fit */
} reader;

static inline bool pgcw__pgo_need(reader *r, size_t n, const char *what)
{
    if (r->bad)
        return false;
    if (r->left < n) {
        r->bad = true;
        r->what = what;
        return false;
    }
    return true;
}

static inline uint64_t pgcw__pgo_get(reader *r, size_t n, const char *what)
{
    if (!pgcw__pgo_need(r, n, what))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | r->p[i];
    r->p += n;
    r->left -= n;
    return v;
}

#define GET8(r, w) ((uint8_t)pgcw__pgo_get((r), 1, (w)))
#define GET16(r, w) ((uint16_t)pgcw__pgo_get((r), 2, (w)))
#define GET32(r, w) ((uint32_t)pgcw__pgo_get((r), 4, (w)))
#define GET64(r, w) (pgcw__pgo_get((r), 8, (w)))

/* A NUL-terminated string inside the message; NULL (and bad) if it has no NUL. */
static inline const char *pgcw__pgo_str(reader *r, const char *what)
{
    if (r->bad)
        return NULL;
    const unsigned char *nul = memchr(r->p, '\0', r->left);
    if (!nul) {
        r->bad = true;
        r->what = what;
        return NULL;
    }
    const char *s = (const char *)r->p;
    size_t n = (size_t)(nul - r->p) + 1;
    r->p += n;
    r->left -= n;
    return s;
}

/* why = "message truncated: <the first field that did not fit> does not fit". */
void pgcw__pgo_truncated(const reader *r, char *why, size_t whylen);

/* The relation cache (source_pgoutput_rel.c). */
relation *pgcw__pgo_find_relation(pgcw__pgoutput *d, uint32_t relid);
void pgcw__pgo_relation_clear(relation *rel);
/* 'R' after its type byte: caches (or replaces) the relation it describes. */
pgcw_status pgcw__pgo_parse_relation(pgcw__pgoutput *d, reader *r, char *why,
                                     size_t whylen);

#endif
