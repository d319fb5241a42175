/*
 * fuzz_text.c - libFuzzer target for the text that leaves the library: the
 * one-line escaper every log message and error detail goes through
 * (pgcw__escape_line), libpq-message flattening (pgcw__one_line) and the UTF-8
 * decoder they rest on. The first input byte picks the output buffer's size, the
 * rest is the text (any bytes, NUL included). What must hold, else it traps:
 *   - the escaped text fits the buffer (NUL included; an exact-size heap buffer, so
 *     ASan sees any write past it), its length is what was returned, and it is
 *     valid UTF-8 with no byte below 0x20, no 0x7F and no C1, line-separator or
 *     bidirectional control;
 *   - it is a deterministic function of the input, escaping it again changes
 *     nothing, and a truncated result is the whole escape of a prefix of the input
 *     (never half an escape or half a character);
 *   - one_line leaves no newline and no trailing blank, never grows, keeps valid
 *     UTF-8 valid and is idempotent; escape_line after it keeps every promise above;
 *   - pgcw__utf8_valid and pgcw__utf8_next agree with fuzz/utf8_strict.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgcw_testhook.h"
#include "utf8_strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Longer inputs add nothing new and the prefix search below is quadratic. */
#define MAX_TEXT 512
/* No byte grows into more than four ("\xHH"). */
#define FULL_CAP(n) (4 * (n) + 1)

/* What a terminal or viewer acts on instead of showing: fuzz_text's own list. */
static bool is_control(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 ||
           cp == 0x2029 || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
}

static void check_line(const char *s, size_t len)
{
    if (strlen(s) != len || !fuzz_utf8_valid(s, len))
        __builtin_trap();
    uint32_t cp;
    for (size_t i = 0, n; i < len; i += n) {
        n = fuzz_utf8_char((const unsigned char *)s + i, len - i, &cp);
        if (n == 0 || is_control(cp))
            __builtin_trap();
    }
}

/* Escapes src into an exact-size heap buffer of cap bytes; checks it; returns it. */
static char *escape(const char *src, size_t n, size_t cap, size_t *len)
{
    char *dst = malloc(cap);
    if (!dst)
        abort();
    *len = pgcw__escape_line(dst, cap, src, n);
    if (*len >= cap)
        __builtin_trap();
    check_line(dst, *len);
    return dst;
}

static void check_escape(const char *src, size_t n, size_t cap)
{
    size_t len, again_len, full_len, twice_len;
    char *out = escape(src, n, cap, &len);
    char *again = escape(src, n, cap, &again_len);
    if (again_len != len || memcmp(out, again, len + 1) != 0)
        __builtin_trap();
    free(again);

    char *full = escape(src, n, FULL_CAP(n), &full_len);
    char *twice = escape(full, full_len, FULL_CAP(full_len), &twice_len);
    if (twice_len != full_len || memcmp(twice, full, full_len) != 0)
        __builtin_trap();
    free(twice);
    if (len < full_len) {
        /* Cut at a piece boundary: some prefix of the input escapes to exactly it. */
        if (memcmp(out, full, len) != 0)
            __builtin_trap();
        bool found = false;
        for (size_t k = 0; k <= n && !found; k++) {
            size_t plen;
            char *p = escape(src, k, FULL_CAP(k), &plen);
            found = plen == len && memcmp(p, out, len) == 0;
            free(p);
            /* A cut character adds at most 12 bytes ("\xHH" for each of 3), so
             * past that no later prefix can match. */
            if (plen > len + 12)
                break;
        }
        if (!found)
            __builtin_trap();
    } else if (len != full_len || memcmp(out, full, len) != 0) {
        __builtin_trap();
    }
    free(full);
    free(out);
}

static void check_one_line(const char *src, size_t n)
{
    size_t len = strnlen(src, n);
    char *s = malloc(len + 1);
    if (!s)
        abort();
    memcpy(s, src, len);
    s[len] = '\0';
    bool was_utf8 = fuzz_utf8_valid(s, len);
    char *r = pgcw__one_line(s);
    size_t rlen = strlen(r);
    if (r != s || rlen > len || strchr(r, '\n') ||
        (rlen > 0 && (r[rlen - 1] == ' ' || r[rlen - 1] == '\n')) ||
        (was_utf8 && !fuzz_utf8_valid(r, rlen)))
        __builtin_trap();
    char *copy = malloc(rlen + 1);
    if (!copy)
        abort();
    memcpy(copy, r, rlen + 1);
    if (strcmp(pgcw__one_line(copy), r) != 0)
        __builtin_trap();
    free(copy);
    check_escape(r, rlen, FULL_CAP(rlen) > 64 ? 64 : FULL_CAP(rlen));
    free(s);
}

static void check_utf8(const char *s, size_t n)
{
    if (pgcw__utf8_valid(s, n) != fuzz_utf8_valid(s, n))
        __builtin_trap();
    uint32_t a = 0, b = 0;
    size_t la = pgcw__utf8_next((const unsigned char *)s, n, &a);
    size_t lb = fuzz_utf8_char((const unsigned char *)s, n, &b);
    if (la != lb || (la && a != b))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > MAX_TEXT + 1)
        return 0;
    size_t cap = (size_t)data[0] + 1; /* 1 to 256 bytes */
    size_t n = size - 1;
    /* An exact-size heap copy, so ASan sees any read past n. */
    char *src = malloc(n ? n : 1);
    if (!src)
        return 0;
    memcpy(src, data + 1, n);
    check_utf8(src, n);
    check_escape(src, n, cap);
    check_one_line(src, n);
    free(src);
    return 0;
}
