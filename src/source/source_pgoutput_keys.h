/*
 * source_pgoutput_keys.h - reading a pgoutput TupleData and turning its replica
 * identity columns into the JSON key text of event.h ("[42]", "[7,\"eu\"]"); the
 * decoder's helper (source_pgoutput_keys.c), apart so that the JSON rules sit in
 * one small file.
 */
#ifndef PGCW_SOURCE_PGOUTPUT_KEYS_H
#define PGCW_SOURCE_PGOUTPUT_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgcachewatch/common.h"

/* A relation's columns as the tuple reader needs them (borrowed). */
typedef struct pgcw__pgo_cols {
    size_t n_cols;
    const uint32_t *types; /* type OIDs */
    const bool *is_key;    /* in the replica identity */
    size_t n_key;
} pgcw__pgo_cols;

/* The keys of one change: at most two (an update's old and new key), distinct. When
 * a key value cannot be known (an unchanged TOASTed value, which pgoutput does not
 * send, or text that is not UTF-8) the change has none: n_keys stays 0 and
 * `unknown` is set, meaning "something in the table changed". Zeroed is empty. */
typedef struct pgcw__pgo_keyset {
    char *keys[2];
    size_t n_keys;
    bool unknown;
} pgcw__pgo_keyset;

/*
 * Reads one TupleData from *p (*left bytes), advancing both past it, and adds its
 * key to ks (unless it is there already, or the relation has no key columns).
 * Returns PGCW_OK, PGCW_EPARSE (truncated; a column count other than n_cols; a
 * column kind other than null, unchanged or text) or PGCW_ENOMEM, with why set.
 */
pgcw_status pgcw__pgo_read_key(pgcw__pgo_keyset *ks, const pgcw__pgo_cols *cols,
                               const unsigned char **p, size_t *left, char *why,
                               size_t whylen);

/* Frees the keys; ks is then empty. */
void pgcw__pgo_keyset_free(pgcw__pgo_keyset *ks);

/* Whether a value of this type OID is written as a JSON number (when its text is
 * one): the integer types, oid and numeric. */
bool pgcw__pgo_numeric_type(uint32_t oid);

#endif
