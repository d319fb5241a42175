/*
 * core_text.c - text that leaves the library: UTF-8 decoding, and making any text
 * (a notification's payload, a table name, libpq's multi-line messages) safe to
 * put in one log line. Anyone who can NOTIFY on a watched channel chooses the bytes
 * of a payload, and a payload reaches the log when it is malformed: it must never
 * be able to start a line of its own or drive the reader's terminal.
 */
#include <stdio.h>
#include <string.h>

#include "core_util.h"

size_t pgcw__utf8_next(const unsigned char *p, size_t n, uint32_t *cp_out)
{
    if (n == 0)
        return 0;
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp_out = c;
        return 1;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, cp = c & 0x1Fu, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0Fu, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, cp = c & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[k] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    *cp_out = cp;
    return len;
}

bool pgcw__utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80) { /* the common case, without the call */
            i++;
            continue;
        }
        size_t len = pgcw__utf8_next(p + i, n - i, &cp);
        if (!len)
            return false;
        i += len;
    }
    return true;
}

/* Code points a terminal or a text viewer acts on rather than shows: C1 controls
 * (U+0080-U+009F: CSI is U+009B), the line and paragraph separators, and the
 * bidirectional overrides and isolates that reorder what is displayed. */
static bool invisible_control(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
           cp == 0xFEFF;
}

size_t pgcw__escape_line(char *dst, size_t cap, const char *src, size_t n)
{
    if (!dst || cap == 0)
        return 0;
    const unsigned char *p = (const unsigned char *)src;
    size_t o = 0;
    char esc[16];
    for (size_t i = 0; i < n;) {
        const char *piece = (const char *)p + i;
        size_t piece_len = 1, used = 1;
        uint32_t cp;
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7F) {
            /* printable ASCII, backslash included: as is */
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\', esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            piece = esc, piece_len = 2;
        } else if (c < 0x80) { /* other C0 controls and DEL */
            snprintf(esc, sizeof esc, "\\x%02x", c);
            piece = esc, piece_len = 4;
        } else if ((used = pgcw__utf8_next(p + i, n - i, &cp)) == 0) {
            snprintf(esc, sizeof esc, "\\x%02x", c); /* not UTF-8: the byte */
            piece = esc, piece_len = 4, used = 1;
        } else if (invisible_control(cp)) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            piece = esc, piece_len = strlen(esc);
        } else {
            piece_len = used; /* a printable character: its bytes */
        }
        if (o + piece_len >= cap) /* never half an escape or half a character */
            break;
        memcpy(dst + o, piece, piece_len);
        o += piece_len;
        i += used;
    }
    dst[o] = '\0';
    return o;
}

bool pgcw__ratelimit_take(pgcw__ratelimit *r, int64_t now_us, uint64_t *suppressed)
{
    if (now_us - r->window_start_us >= r->window_us || r->window_start_us == 0) {
        r->window_start_us = now_us;
        r->used = 0;
    }
    if (r->used >= r->burst) {
        r->suppressed++;
        return false;
    }
    r->used++;
    *suppressed = r->suppressed;
    r->suppressed = 0;
    return true;
}
