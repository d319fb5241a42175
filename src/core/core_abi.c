/*
 * core_abi.c - options in, statistics out, whatever size of struct the caller's
 * header had (core_abi.h). Must never touch a byte beyond the size it was given.
 */
#include "core_abi.h"

#include <string.h>

pgcw_status pgcw__opts_copy(void *dst, size_t own_size, const void *src, size_t src_size)
{
    memset(dst, 0, own_size);
    if (!src)
        return PGCW_OK;
    if (src_size == 0)
        return PGCW_EINVAL;
    if (src_size > own_size) {
        const unsigned char *tail = (const unsigned char *)src + own_size;
        for (size_t i = 0; i < src_size - own_size; i++)
            if (tail[i] != 0)
                return PGCW_EINVAL;
    }
    memcpy(dst, src, src_size < own_size ? src_size : own_size);
    return PGCW_OK;
}

void pgcw__stats_copy(void *dst, size_t dst_size, const void *src, size_t own_size)
{
    if (!dst)
        return;
    size_t n = dst_size < own_size ? dst_size : own_size;
    memcpy(dst, src, n);
    if (dst_size > n)
        memset((unsigned char *)dst + n, 0, dst_size - n);
}
