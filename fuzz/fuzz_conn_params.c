/*
 * fuzz_conn_params.c - libFuzzer target for resolving connection settings, with
 * the promise that matters most: a password never reaches a message. The input is
 * split at its first NUL into text before and after a password (key=value form, or
 * the user-info part of a URI, chosen by the input's last byte); whatever libpq
 * makes of the result, the error the settings carry never holds the password, and
 * a message scrubbed with it never does either. Never crashes, never leaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgcw_testhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "Sx7kQ2pZ"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 4096)
        return 0;
    bool uri = data[size - 1] & 1;
    size--;
    const uint8_t *nul = memchr(data, '\0', size);
    size_t before = nul ? (size_t)(nul - data) : size;
    size_t after_at = nul ? before + 1 : size;
    char *s = malloc(size + 64);
    if (!s)
        return 0;
    size_t n = 0;
    if (uri) {
        memcpy(s, "postgresql://u:", 15);
        n = 15;
    }
    memcpy(s + n, data, before);
    n += before;
    const char *mid = uri ? SECRET "@" : " password=" SECRET " ";
    memcpy(s + n, mid, strlen(mid));
    n += strlen(mid);
    for (size_t i = after_at; i < size; i++)
        if (data[i])
            s[n++] = (char)data[i];
    s[n] = '\0';

    pgcw_conn_opts o = {.conninfo = s};
    pgcw__conn_params p;
    if (pgcw__conn_params_init(&p, &o) == PGCW_OK) {
        if (p.error && strstr(p.error, SECRET))
            __builtin_trap();
        char msg[256];
        strcpy(msg, "pre " SECRET " post " SECRET);
        pgcw__scrub_password(msg, sizeof msg, SECRET);
        if (strstr(msg, SECRET))
            __builtin_trap();
        pgcw__conn_params_free(&p);
    }
    free(s);
    return 0;
}
