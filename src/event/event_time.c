/*
 * timestamp.c - ISO 8601 / PostgreSQL timestamptz text <-> microseconds since the
 * Unix epoch. Pure arithmetic on the proleptic Gregorian calendar: it must never
 * consult the TZ environment, the C library's time zone state or the clock, so the
 * result is the same on every host and in every thread.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pgcachewatch/event.h"

#define US_PER_SEC INT64_C(1000000)
#define US_PER_DAY (INT64_C(86400) * US_PER_SEC)

/* Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil): exact
 * for any year an int64 can hold in microseconds, no table, no TZ. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The inverse: civil date of a day number. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Reads exactly n ASCII digits. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool lit(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A year of 4 to 6 digits: PostgreSQL prints timestamps up to 294276 AD. */
static bool year_digits(const char **p, int64_t *out)
{
    int64_t v = 0;
    int n = 0;
    while (is_digit((*p)[n]) && n < 7)
        v = v * 10 + ((*p)[n++] - '0');
    if (n < 4 || n > 6)
        return false;
    *p += n;
    *out = v;
    return true;
}

/* [Z|z|(+|-)HH[[:]MM[[:]SS]]] in seconds east of UTC; nothing means UTC. PostgreSQL
 * prints seconds only for historical local-mean-time offsets, but it does print
 * them, so they are accepted. The separator style may not change half way. */
static bool parse_zone(const char **p, int *offset_s)
{
    *offset_s = 0;
    if (**p == 'Z' || **p == 'z') {
        (*p)++;
        return true;
    }
    if (**p != '+' && **p != '-')
        return true;
    int sign = **p == '+' ? 1 : -1;
    (*p)++;
    int hh, mm = 0, ss = 0;
    if (!digits(p, 2, &hh))
        return false;
    bool colon = **p == ':';
    if (colon || is_digit(**p)) {
        if ((colon && !lit(p, ':')) || !digits(p, 2, &mm))
            return false;
        if (colon ? **p == ':' : is_digit(**p)) {
            if ((colon && !lit(p, ':')) || !digits(p, 2, &ss))
                return false;
        }
    }
    if (hh > 15 || mm > 59 || ss > 59)
        return false;
    *offset_s = sign * (hh * 3600 + mm * 60 + ss);
    return true;
}

pgcw_status pgcw_time_parse(const char *text, int64_t *out_us)
{
    if (!text || !out_us)
        return PGCW_EPARSE;
    const char *p = text;
    int64_t y;
    int mo, d, h, mi, s;
    if (!year_digits(&p, &y) || !lit(&p, '-') || !digits(&p, 2, &mo) || !lit(&p, '-') ||
        !digits(&p, 2, &d))
        return PGCW_EPARSE;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return PGCW_EPARSE;
    p++;
    if (!digits(&p, 2, &h) || !lit(&p, ':') || !digits(&p, 2, &mi) || !lit(&p, ':') ||
        !digits(&p, 2, &s))
        return PGCW_EPARSE;
    int64_t frac_us = 0;
    if (lit(&p, '.') || lit(&p, ',')) {
        int n = 0;
        int64_t scale = 100000;
        while (is_digit(*p)) {
            if (++n > 9)
                return PGCW_EPARSE;
            /* Digits past the microsecond are truncated, never rounded up into
             * the next second. */
            frac_us += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
        if (n == 0)
            return PGCW_EPARSE;
    }
    int offset_s;
    if (!parse_zone(&p, &offset_s))
        return PGCW_EPARSE;
    /* PostgreSQL's era suffix; 1 BC is astronomical year 0. Four digits keep every
     * result printable by pgcw_time_format in 32 bytes. */
    bool bc = p[0] == ' ' && p[1] == 'B' && p[2] == 'C';
    if (bc)
        p += 3;
    if (*p != '\0' || y < 1 || (bc && y > 9999))
        return PGCW_EPARSE;
    if (bc)
        y = 1 - y;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return PGCW_EPARSE;
    /* 24:00:00 is the end of the day (ISO 8601, PostgreSQL); :60 a leap second,
     * which like PostgreSQL we fold into the next minute. */
    bool end_of_day = h == 24 && mi == 0 && s == 0 && frac_us == 0;
    if ((h > 23 && !end_of_day) || mi > 59 || s > 60)
        return PGCW_EPARSE;
    /* Seconds cannot overflow (|y| < 10^6); microseconds can, near year 294247. */
    int64_t secs =
        days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + mi * 60 + s - offset_s;
    int64_t us;
    if (__builtin_mul_overflow(secs, US_PER_SEC, &us) ||
        __builtin_add_overflow(us, frac_us, &us))
        return PGCW_EPARSE;
    *out_us = us;
    return PGCW_OK;
}

char *pgcw_time_format(int64_t us, char *buf, size_t buflen)
{
    if (!buf || buflen == 0)
        return buf;
    /* Floor division, so instants before 1970 still get a fraction in [0, 1s). */
    int64_t days = us / US_PER_DAY;
    int64_t rem = us % US_PER_DAY;
    if (rem < 0) {
        rem += US_PER_DAY;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    int64_t secs = rem / US_PER_SEC;
    /* Years before 1 AD the way PostgreSQL writes and reads them: "0044-...Z BC".
     * Only instants beyond 99999 BC, which nothing parses to, need more than 32
     * bytes; they are truncated. */
    bool bc = y <= 0;
    snprintf(buf, buflen, "%04lld-%02d-%02dT%02d:%02d:%02d.%06dZ%s",
             (long long)(bc ? 1 - y : y), m, d, (int)(secs / 3600), (int)(secs / 60 % 60),
             (int)(secs % 60), (int)(rem % US_PER_SEC), bc ? " BC" : "");
    return buf;
}
