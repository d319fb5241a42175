/*
 * utf8_strict.h - the fuzz targets' own RFC 3629 check, written apart from the
 * library's (pgcw__utf8_valid) so a target never judges the library's output with
 * the code under test: shortest form only, no surrogates, nothing above U+10FFFF.
 */
#ifndef FUZZ_UTF8_STRICT_H
#define FUZZ_UTF8_STRICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The length (1-4) of the well-formed character at p[0..n) with *cp set, else 0. */
static inline size_t fuzz_utf8_char(const unsigned char *p, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    /* Table 3-7 of the Unicode standard: the second byte's range depends on the
     * first, which rules out overlong forms and surrogates without decoding. */
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        len = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        len = 3, lo = p[0] == 0xE0 ? 0xA0 : 0x80, hi = p[0] == 0xED ? 0x9F : 0xBF;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        len = 4, lo = p[0] == 0xF0 ? 0x90 : 0x80, hi = p[0] == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    uint32_t v = p[0] & (0x7Fu >> len);
    for (size_t k = 1; k < len; k++) {
        if (k > 1 && (p[k] < 0x80 || p[k] > 0xBF))
            return 0;
        v = v << 6 | (p[k] & 0x3Fu);
    }
    *cp = v;
    return len;
}

static inline bool fuzz_utf8_valid(const char *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0, len; i < n; i += len)
        if ((len = fuzz_utf8_char((const unsigned char *)s + i, n - i, &cp)) == 0)
            return false;
    return true;
}

#endif
