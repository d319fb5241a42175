/*
 * source_pgoutput_rel.c - the pgoutput decoder's relation cache: each Relation
 * message (relid, names, columns, which are in the replica identity) read with
 * every length checked and kept until the relation is described again or the
 * decoder is reset. Must never keep more than PGCW__PGOUTPUT_MAX_RELATIONS.
 */
#include <stdlib.h>
#include <string.h>

#include "core_util.h"
#include "source_pgoutput_internal.h"

void pgcw__pgo_truncated(const reader *r, char *why, size_t whylen)
{
    pgcw__errf(why, whylen, "message truncated: %s does not fit",
               r->what ? r->what : "a field");
}

void pgcw__pgo_relation_clear(relation *rel)
{
    free(rel->schema);
    free(rel->table);
    free(rel->types);
    free(rel->is_key);
    for (size_t i = 0; rel->key_names && i < rel->n_key; i++)
        free(rel->key_names[i]);
    free(rel->key_names);
    memset(rel, 0, sizeof *rel);
}

relation *pgcw__pgo_find_relation(pgcw__pgoutput *d, uint32_t relid)
{
    for (size_t i = 0; i < d->n_rels; i++)
        if (d->rels[i].relid == relid)
            return &d->rels[i];
    return NULL;
}

/* 'R': relid, namespace, name, replica identity, ncols, then per column flags,
 * name, type OID, typmod. Replaces an earlier description of the same relid. */
pgcw_status pgcw__pgo_parse_relation(pgcw__pgoutput *d, reader *r, char *why,
                                     size_t whylen)
{
    uint32_t relid = GET32(r, "relation id");
    const char *nspname = pgcw__pgo_str(r, "namespace");
    const char *relname = pgcw__pgo_str(r, "relation name");
    (void)GET8(r, "replica identity");
    uint16_t ncols = GET16(r, "column count");
    if (r->bad) {
        pgcw__pgo_truncated(r, why, whylen);
        return PGCW_EPARSE;
    }
    if (ncols > PGCW__PGOUTPUT_MAX_COLUMNS) {
        pgcw__errf(why, whylen, "relation %u has %u columns (at most %d)", relid, ncols,
                   PGCW__PGOUTPUT_MAX_COLUMNS);
        return PGCW_EPARSE;
    }
    /* pgoutput sends "" for pg_catalog. */
    if (nspname[0] == '\0')
        nspname = "pg_catalog";
    if (relname[0] == '\0' || !pgcw__utf8_valid(nspname, strlen(nspname)) ||
        !pgcw__utf8_valid(relname, strlen(relname))) {
        pgcw__errf(why, whylen, "relation %u: its name is empty or not UTF-8", relid);
        return PGCW_EPARSE;
    }
    relation rel = {.relid = relid, .n_cols = ncols};
    rel.schema = pgcw__strdup(nspname);
    rel.table = pgcw__strdup(relname);
    rel.types = calloc(ncols ? ncols : 1, sizeof *rel.types);
    rel.is_key = calloc(ncols ? ncols : 1, sizeof *rel.is_key);
    rel.key_names = calloc(ncols ? ncols : 1, sizeof *rel.key_names);
    pgcw_status st = PGCW_OK;
    if (!rel.schema || !rel.table || !rel.types || !rel.is_key || !rel.key_names)
        st = PGCW_ENOMEM;
    for (size_t i = 0; st == PGCW_OK && i < ncols; i++) {
        uint8_t flags = GET8(r, "column flags");
        const char *name = pgcw__pgo_str(r, "column name");
        rel.types[i] = GET32(r, "column type");
        (void)GET32(r, "column type modifier");
        if (r->bad) {
            pgcw__pgo_truncated(r, why, whylen);
            st = PGCW_EPARSE;
        } else if (!pgcw__utf8_valid(name, strlen(name))) {
            pgcw__errf(why, whylen, "relation %u: column %zu's name is not UTF-8", relid,
                       i + 1);
            st = PGCW_EPARSE;
        } else if (flags & 1) {
            rel.is_key[i] = true;
            if (!(rel.key_names[rel.n_key++] = pgcw__strdup(name)))
                st = PGCW_ENOMEM;
        }
    }
    if (st == PGCW_OK && r->left) {
        pgcw__errf(why, whylen, "relation %u: %zu bytes after its last column", relid,
                   r->left);
        st = PGCW_EPARSE;
    }
    relation *slot = st == PGCW_OK ? pgcw__pgo_find_relation(d, relid) : NULL;
    if (st == PGCW_OK && !slot) {
        if (d->n_rels == PGCW__PGOUTPUT_MAX_RELATIONS) {
            pgcw__errf(why, whylen, "more than %d relations described",
                       PGCW__PGOUTPUT_MAX_RELATIONS);
            st = PGCW_EPARSE;
        } else if (d->n_rels == d->cap_rels) {
            size_t cap = d->cap_rels ? 2 * d->cap_rels : 16;
            relation *grown = realloc(d->rels, cap * sizeof *grown);
            if (grown) {
                d->rels = grown;
                d->cap_rels = cap;
            } else {
                st = PGCW_ENOMEM;
            }
        }
        if (st == PGCW_OK)
            slot = &d->rels[d->n_rels++];
    } else if (slot) {
        pgcw__pgo_relation_clear(slot);
    }
    if (st != PGCW_OK) {
        pgcw__pgo_relation_clear(&rel);
        if (st == PGCW_ENOMEM)
            pgcw__errf(why, whylen, "out of memory");
        return st;
    }
    *slot = rel;
    return PGCW_OK;
}
