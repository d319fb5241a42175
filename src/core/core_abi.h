/*
 * core_abi.h - reading options and writing statistics across header versions
 * (docs/abi.md).
 *
 * Every public options and statistics struct is passed with the size the caller
 * was compiled with (the public headers' macros add sizeof). Fields are only ever
 * appended, and a zero field means its default, so a caller built against an
 * older, smaller struct gets the defaults for everything it could not know, and a
 * caller built against a newer, larger one is refused only if it set something
 * this library cannot honour. This file must never read or write past the size
 * the caller passed.
 */
#ifndef PGCW_CORE_ABI_H
#define PGCW_CORE_ABI_H

#include <stddef.h>

#include "pgcachewatch/status.h"

/* Copies the caller's options (src_size bytes; src NULL means all defaults) into
 * dst, which is own_size bytes: the part the caller's struct does not cover is
 * zeroed. Returns PGCW_OK, or PGCW_EINVAL when src_size > own_size and a byte
 * beyond own_size is not zero (a field newer than this library was set), or when
 * src is not NULL and src_size is 0. */
pgcw_status pgcw__opts_copy(void *dst, size_t own_size, const void *src, size_t src_size);

/* Writes statistics to the caller: min(dst_size, own_size) bytes of src, and zeros
 * for any part of the caller's struct beyond own_size. dst NULL is a no-op. */
void pgcw__stats_copy(void *dst, size_t dst_size, const void *src, size_t own_size);

#endif
