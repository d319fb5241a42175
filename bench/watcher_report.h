/*
 * watcher_report.h - bench_watcher's summary (medians over rounds, paired
 * watcher/bare ratios, the verdict) and its two outputs, a table and JSON.
 * Bench-only. Must never print a verdict without the bare reference it is
 * relative to.
 */
#ifndef PGCW_BENCH_WATCHER_REPORT_H
#define PGCW_BENCH_WATCHER_REPORT_H

#include <json-c/json.h>

#include "watcher_common.h"

/* --- summary and output ----------------------------------------------------------- */

typedef struct summary {
    bool present;
    /* medians over rounds */
    double p50, p99, max, lib_p50, lib_p99, rx_rate, tx_rate, lat_cpu, flood_cpu;
    int64_t worst_max;
    uint64_t lost, gaps;
    /* vs bare, 0 when not applicable. The verdict uses the median of per-round
     * ratios: bare and watcher ran seconds apart in the same round, so drift in the
     * machine's load cancels out; the ratio of the medians is kept for reference. */
    double p50_ratio, tput_ratio;
    double p50_ratio_of_medians, tput_ratio_of_medians;
    bool pass;
} summary;

static double median(double *v, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static void summarize(const cfg *cf, sample (*samples)[N_MODES][MAX_ROUNDS],
                      summary (*sum)[N_MODES])
{
    double *v = malloc((size_t)cf->rounds * sizeof *v);
    if (v == NULL)
        return;
    for (int p = 0; p < N_PINS; p++) {
        for (int m = 0; m < N_MODES; m++) {
            summary *o = &sum[p][m];
            memset(o, 0, sizeof *o);
            if (!cf->pins[p] || !cf->modes[m])
                continue;
            o->present = true;
            const sample *sm = samples[p][m];
#define MEDIAN_OF(field, expr)                                                           \
    do {                                                                                 \
        for (int i = 0; i < cf->rounds; i++)                                             \
            v[i] = (double)(expr);                                                       \
        o->field = median(v, (size_t)cf->rounds);                                        \
    } while (0)
            MEDIAN_OF(p50, sm[i].p50);
            MEDIAN_OF(p99, sm[i].p99);
            MEDIAN_OF(lib_p50, sm[i].lib_p50);
            MEDIAN_OF(lib_p99, sm[i].lib_p99);
            MEDIAN_OF(max, sm[i].max);
            MEDIAN_OF(rx_rate, sm[i].rx_rate);
            MEDIAN_OF(tx_rate, sm[i].tx_rate);
            MEDIAN_OF(lat_cpu, sm[i].lat_cpu_per_event);
            MEDIAN_OF(flood_cpu, sm[i].flood_cpu_per_event);
#undef MEDIAN_OF
            for (int i = 0; i < cf->rounds; i++) {
                if (sm[i].max > o->worst_max)
                    o->worst_max = sm[i].max;
                o->lost += sm[i].lost;
                o->gaps += sm[i].gaps;
            }
        }
        const summary *b = &sum[p][MODE_BARE];
        for (int m = MODE_WLOOP; m <= MODE_WTHREAD; m++) {
            summary *o = &sum[p][m];
            if (!o->present || !b->present)
                continue;
            const sample *sb = samples[p][MODE_BARE], *sw = samples[p][m];
            for (int i = 0; i < cf->rounds; i++)
                v[i] = sb[i].p50 > 0 ? (double)sw[i].p50 / (double)sb[i].p50 : 0.0;
            o->p50_ratio = median(v, (size_t)cf->rounds);
            for (int i = 0; i < cf->rounds; i++)
                v[i] = sb[i].rx_rate > 0 ? sw[i].rx_rate / sb[i].rx_rate : 0.0;
            o->tput_ratio = median(v, (size_t)cf->rounds);
            o->p50_ratio_of_medians = b->p50 > 0 ? o->p50 / b->p50 : 0.0;
            o->tput_ratio_of_medians = b->rx_rate > 0 ? o->rx_rate / b->rx_rate : 0.0;
            o->pass = o->p50_ratio > 0 && o->p50_ratio <= P50_TARGET &&
                      o->tput_ratio >= TPUT_TARGET && o->lost == 0;
        }
    }
    free(v);
}

static void print_table(const cfg *cf, summary (*sum)[N_MODES])
{
    printf("pgcachewatch watcher bench: %d rounds; latency: %zu events (+%zu warmup) one "
           "per %" PRId64 " us; flood: %zu events, %d per transaction\n",
           cf->rounds, cf->events, cf->warmup, cf->interval_us, cf->flood, cf->batch);
    printf("figures are medians over rounds; latency = commit-to-delivery in the "
           "application, us\n");
    for (int p = 0; p < N_PINS; p++) {
        if (!cf->pins[p])
            continue;
        if (p == PIN_ON)
            printf("\npinned: receiver (and the watcher's thread) on CPU %d, sender's "
                   "client thread on CPU %d; PostgreSQL unpinned\n",
                   g_cpu_rx, g_cpu_tx);
        else
            printf("\nunpinned\n");
        printf("%-15s %7s %7s %7s %7s %9s %9s %7s %7s %6s %6s  %s\n", "mode", "p50",
               "p99", "max", "in lib", "ev/s", "sender/s", "cpu/ev", "lat cpu", "p50 x",
               "ev/s x", "verdict");
        for (int m = 0; m < N_MODES; m++) {
            const summary *o = &sum[p][m];
            if (!o->present)
                continue;
            if (m == MODE_SENDER) {
                printf("%-15s %7s %7s %7s %7s %9s %9.0f %7s %7s %6s %6s  %s\n",
                       mode_names[m], "-", "-", "-", "-", "-", o->tx_rate, "-", "-", "-",
                       "-", "-");
                continue;
            }
            char r1[16] = "-", r2[16] = "-", verdict[64] = "(reference)";
            if (m != MODE_BARE) {
                if (sum[p][MODE_BARE].present) {
                    snprintf(r1, sizeof r1, "%.2f", o->p50_ratio);
                    snprintf(r2, sizeof r2, "%.2f", o->tput_ratio);
                    snprintf(verdict, sizeof verdict, "%s", o->pass ? "PASS" : "FAIL");
                } else {
                    snprintf(verdict, sizeof verdict, "(no bare run)");
                }
            }
            char lib[16] = "-";
            if (m != MODE_BARE)
                snprintf(lib, sizeof lib, "%.0f", o->lib_p50);
            printf("%-15s %7.0f %7.0f %7.0f %7s %9.0f %9.0f %7.2f %7.2f %6s %6s  %s",
                   mode_names[m], o->p50, o->p99, o->max, lib, o->rx_rate, o->tx_rate,
                   o->flood_cpu, o->lat_cpu, r1, r2, verdict);
            if (o->lost)
                printf(" (%" PRIu64 " events lost to %" PRIu64 " queue overflows)",
                       o->lost, o->gaps);
            printf("\n");
        }
    }
    printf("\ntargets: watcher p50 <= %.1fx bare, watcher ev/s >= %.1fx bare.\n"
           "p50 x, ev/s x: median over rounds of watcher/bare within the round.\n"
           "in lib: p50 of the part of the latency spent inside the watcher, from its "
           "reading the notification to the application having the event.\n"
           "cpu/ev: CPU us of the receiving side (the process minus the sender thread) "
           "per event in the flood; lat cpu: the same in the latency phase.\n",
           P50_TARGET, TPUT_TARGET);
}

static void print_json(const cfg *cf, sample (*samples)[N_MODES][MAX_ROUNDS],
                       summary (*sum)[N_MODES])
{
    json_object *root = json_object_new_object();
    json_object *conf = json_object_new_object();
    json_object_object_add(conf, "rounds", json_object_new_int(cf->rounds));
    json_object_object_add(conf, "events", json_object_new_int64((int64_t)cf->events));
    json_object_object_add(conf, "warmup", json_object_new_int64((int64_t)cf->warmup));
    json_object_object_add(conf, "interval_us", json_object_new_int64(cf->interval_us));
    json_object_object_add(conf, "flood", json_object_new_int64((int64_t)cf->flood));
    json_object_object_add(conf, "batch", json_object_new_int(cf->batch));
    json_object_object_add(conf, "cpu_receiver", json_object_new_int(g_cpu_rx));
    json_object_object_add(conf, "cpu_sender", json_object_new_int(g_cpu_tx));
    json_object_object_add(conf, "p50_target", json_object_new_double(P50_TARGET));
    json_object_object_add(conf, "throughput_target",
                           json_object_new_double(TPUT_TARGET));
    json_object_object_add(root, "config", conf);
    json_object *results = json_object_new_array();
    for (int p = 0; p < N_PINS; p++) {
        for (int m = 0; m < N_MODES; m++) {
            const summary *o = &sum[p][m];
            if (!o->present)
                continue;
            json_object *e = json_object_new_object();
            json_object_object_add(e, "mode", json_object_new_string(mode_names[m]));
            json_object_object_add(e, "pin", json_object_new_string(pin_names[p]));
            json_object_object_add(e, "p50_us", json_object_new_double(o->p50));
            json_object_object_add(e, "p99_us", json_object_new_double(o->p99));
            json_object_object_add(e, "max_us", json_object_new_double(o->max));
            if (m == MODE_WLOOP || m == MODE_WTHREAD) {
                json_object_object_add(e, "in_library_p50_us",
                                       json_object_new_double(o->lib_p50));
                json_object_object_add(e, "in_library_p99_us",
                                       json_object_new_double(o->lib_p99));
            }
            json_object_object_add(e, "worst_max_us",
                                   json_object_new_int64(o->worst_max));
            json_object_object_add(e, "events_per_s", json_object_new_double(o->rx_rate));
            json_object_object_add(e, "sender_events_per_s",
                                   json_object_new_double(o->tx_rate));
            json_object_object_add(e, "cpu_us_per_event_flood",
                                   json_object_new_double(o->flood_cpu));
            json_object_object_add(e, "cpu_us_per_event_latency",
                                   json_object_new_double(o->lat_cpu));
            json_object_object_add(e, "lost", json_object_new_int64((int64_t)o->lost));
            json_object_object_add(e, "overflows",
                                   json_object_new_int64((int64_t)o->gaps));
            if ((m == MODE_WLOOP || m == MODE_WTHREAD) && sum[p][MODE_BARE].present) {
                json_object_object_add(e, "p50_ratio",
                                       json_object_new_double(o->p50_ratio));
                json_object_object_add(e, "p50_ratio_of_medians",
                                       json_object_new_double(o->p50_ratio_of_medians));
                json_object_object_add(e, "throughput_ratio_of_medians",
                                       json_object_new_double(o->tput_ratio_of_medians));
                json_object_object_add(e, "throughput_ratio",
                                       json_object_new_double(o->tput_ratio));
                json_object_object_add(e, "pass", json_object_new_boolean(o->pass));
            }
            json_object *rounds = json_object_new_array();
            for (int i = 0; i < cf->rounds; i++) {
                const sample *s = &samples[p][m][i];
                json_object *x = json_object_new_object();
                json_object_object_add(x, "latency_samples",
                                       json_object_new_int64((int64_t)s->n_lat));
                json_object_object_add(x, "p50_us", json_object_new_int64(s->p50));
                json_object_object_add(x, "p99_us", json_object_new_int64(s->p99));
                json_object_object_add(x, "max_us", json_object_new_int64(s->max));
                json_object_object_add(x, "events_per_s",
                                       json_object_new_double(s->rx_rate));
                json_object_object_add(x, "sender_events_per_s",
                                       json_object_new_double(s->tx_rate));
                json_object_array_add(rounds, x);
            }
            json_object_object_add(e, "rounds", rounds);
            json_object_array_add(results, e);
        }
    }
    json_object_object_add(root, "results", results);
    printf("%s\n", json_object_to_json_string_ext(
                       root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
}

#endif
