/*
 * benchmerge.c - the JSON a merge needs, and `mqlab bench merge` (see
 * benchmerge.h).
 */
#include "benchmerge.h"

#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T(en_, es_) (es ? (es_) : (en_))

/* ---- writing ---------------------------------------------------------- */

static void bucket_json(uint64_t lo, uint64_t n, void *ud)
{
    json_buf_t *b = ud;
    json_buf_printf(b, "%s[%llu,%llu]", b->len && b->data[b->len - 1] == '[' ? "" : ",", (unsigned long long)lo,
                    (unsigned long long)n);
}

void bench_hist_json(json_buf_t *b, const hist_t *h)
{
    /* The sum is an integer of microseconds while below 2^53; %.17g
     * reads back the same double either way. */
    json_buf_printf(b, "{\"unit\":\"us\",\"count\":%llu,\"min\":%llu,\"max\":%llu,\"sum\":%.17g,\"buckets\":[",
                    (unsigned long long)hist_count(h), (unsigned long long)hist_min(h),
                    (unsigned long long)hist_max(h), hist_sum(h));
    hist_export(h, bucket_json, b);
    json_buf_puts(b, "]}");
}

void bench_merge_fields(json_buf_t *b, const bench_result *r)
{
    json_buf_printf(b, ",\"start_unix\":%.6f,\"end_unix\":%.6f,\"load_s\":%.6f,\"windows\":[[%.6f,%.6f]],\"latency_hist\":",
                    r->start_unix, r->end_unix, r->load_s, r->start_unix, r->end_unix);
    bench_hist_json(b, r->latency);
    if (r->latency_corrected) {
        json_buf_puts(b, ",\"latency_corrected_hist\":");
        bench_hist_json(b, r->latency_corrected);
    }
}

/* ---- reading ---------------------------------------------------------- */

static int is_count(const json_t *v)
{
    return v && v->type == JSON_NUMBER && v->num >= 0 && v->num <= 9007199254740992.0 && v->num == floor(v->num);
}

int bench_hist_from_json(const json_t *v, hist_t *h, char *err, size_t errlen)
{
    const json_t *bk = json_get(v, "buckets");
    const char *unit = json_get_str(v, "unit");
    if (!v || v->type != JSON_OBJECT || !unit || strcmp(unit, "us") || !bk || bk->type != JSON_ARRAY ||
        !is_count(json_get(v, "count")) || !is_count(json_get(v, "min")) || !is_count(json_get(v, "max")) ||
        !json_get(v, "sum") || json_get(v, "sum")->type != JSON_NUMBER) {
        snprintf(err, errlen, "latency_hist");
        return -1;
    }
    hist_reset(h);
    for (const json_t *e = bk->child; e; e = e->next) {
        if (e->type != JSON_ARRAY || e->count != 2 || !is_count(json_at(e, 0)) || !is_count(json_at(e, 1)) ||
            hist_import_bucket(h, (uint64_t)json_at(e, 0)->num, (uint64_t)json_at(e, 1)->num) != 0) {
            snprintf(err, errlen, "latency_hist.buckets");
            return -1;
        }
    }
    uint64_t count = (uint64_t)json_get_num(v, "count", 0);
    if (hist_count(h) != count) {
        snprintf(err, errlen, "latency_hist.count");
        return -1;
    }
    if (count && hist_import_stats(h, (uint64_t)json_get_num(v, "min", 0), (uint64_t)json_get_num(v, "max", 0),
                                   json_get_num(v, "sum", 0)) != 0) {
        snprintf(err, errlen, "latency_hist.min/max/sum");
        return -1;
    }
    return 0;
}

void bench_merge_init(bench_merge_t *m)
{
    memset(m, 0, sizeof *m);
    m->lat = hist_new();
    m->lat_corr = hist_new();
}

void bench_merge_free(bench_merge_t *m)
{
    hist_free(m->lat);
    hist_free(m->lat_corr);
    free(m->win);
    memset(m, 0, sizeof *m);
}

int bench_merge_add(bench_merge_t *m, const json_t *v, int es, char *err, size_t errlen)
{
    static const char *const counts[] = { "clients", "qos", "sent", "acked", "received", "lost", "duplicates", "errors" };
    const char *mode = json_get_str(v, "mode");
    if (!v || v->type != JSON_OBJECT || !mode) {
        snprintf(err, errlen, "%s", T("not the JSON of mqlab bench --format json (no \"mode\")",
                                      "no es el JSON de mqlab bench --format json (no tiene \"mode\")"));
        return -1;
    }
    if (strcmp(mode, "conn") == 0) {
        snprintf(err, errlen, "%s", T("a conn run: merge joins steady, burst and ramp runs",
                                      "una medida conn: merge une medidas steady, burst y ramp"));
        return -1;
    }
    if (strcmp(mode, "steady") && strcmp(mode, "burst") && strcmp(mode, "ramp")) {
        snprintf(err, errlen, T("not the JSON of mqlab bench (mode \"%.20s\")", "no es el JSON de mqlab bench (modo \"%.20s\")"),
                 mode);
        return -1;
    }
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++)
        if (!is_count(json_get(v, counts[i]))) {
            snprintf(err, errlen, T("not the JSON of mqlab bench (\"%s\" is missing or not a count)",
                                    "no es el JSON de mqlab bench (\"%s\" falta o no es un número)"), counts[i]);
            return -1;
        }
    const json_t *lh = json_get(v, "latency_hist"), *w = json_get(v, "windows");
    if (!lh || !w || w->type != JSON_ARRAY || w->count == 0) {
        snprintf(err, errlen, "%s", T("no \"latency_hist\" or \"windows\": written by an older mqlab bench; run it again with this one",
                                      "sin \"latency_hist\" o \"windows\": lo escribió un mqlab bench anterior; repite la medida con este"));
        return -1;
    }
    for (const json_t *e = w->child; e; e = e->next) {
        const json_t *a = json_at(e, 0), *b = json_at(e, 1);
        if (e->type != JSON_ARRAY || e->count != 2 || !a || !b || a->type != JSON_NUMBER || b->type != JSON_NUMBER ||
            !(b->num >= a->num)) {
            snprintf(err, errlen, "%s", T("not the JSON of mqlab bench (a window is not [start, end])",
                                          "no es el JSON de mqlab bench (una ventana no es [inicio, fin])"));
            return -1;
        }
    }
    int qos = (int)json_get_num(v, "qos", 0);
    if (m->runs && strcmp(m->mode, mode) != 0) {
        snprintf(err, errlen, T("mode %.20s, but the files before are %s", "modo %.20s, pero los ficheros anteriores son %s"),
                 mode, m->mode);
        return -1;
    }
    if (m->runs && qos != m->qos) {
        snprintf(err, errlen, T("QoS %d, but the files before are QoS %d", "QoS %d, pero los ficheros anteriores son QoS %d"),
                 qos, m->qos);
        return -1;
    }
    hist_t *h = hist_new(), *hc = NULL;
    char what[64];
    if (bench_hist_from_json(lh, h, what, sizeof what) != 0) {
        hist_free(h);
        snprintf(err, errlen, T("not the JSON of mqlab bench (%s does not fit the histogram)",
                                "no es el JSON de mqlab bench (%s no encaja en el histograma)"), what);
        return -1;
    }
    /* The corrected latency merges too, when every run has it: a merge of
     * runs with and without it would mix two measures. */
    const json_t *lc = json_get(v, "latency_corrected_hist");
    if (lc) {
        hc = hist_new();
        if (bench_hist_from_json(lc, hc, what, sizeof what) != 0) {
            hist_free(h);
            hist_free(hc);
            snprintf(err, errlen, T("not the JSON of mqlab bench (%s does not fit the corrected histogram)",
                                    "no es el JSON de mqlab bench (%s no encaja en el histograma corregido)"), what);
            return -1;
        }
    }
    if (m->runs && !!hc != m->have_corr) {
        hist_free(h);
        hist_free(hc);
        snprintf(err, errlen, "%s", T("some runs carry the corrected latency and others do not: run them all with the same mqlab",
                                      "unas medidas traen la latencia corregida y otras no: repítelas todas con el mismo mqlab"));
        return -1;
    }
    m->win = kit_xrealloc(m->win, (size_t)(m->nwin + (int)w->count) * sizeof *m->win);
    for (const json_t *e = w->child; e; e = e->next) {
        m->win[m->nwin][0] = json_at(e, 0)->num;
        m->win[m->nwin][1] = json_at(e, 1)->num;
        m->nwin++;
    }
    hist_merge(m->lat, h);
    hist_free(h);
    if (hc) hist_merge(m->lat_corr, hc);
    m->have_corr = hc != NULL;
    hist_free(hc);
    snprintf(m->mode, sizeof m->mode, "%s", mode);
    m->qos = qos;
    const json_t *runs = json_get(v, "runs");
    m->runs += is_count(runs) && runs->num >= 1 ? (int)runs->num : 1;
    m->clients += (int)json_get_num(v, "clients", 0);
    m->errors += (int)json_get_num(v, "errors", 0);
    m->sent += (uint64_t)json_get_num(v, "sent", 0);
    m->acked += (uint64_t)json_get_num(v, "acked", 0);
    m->received += (uint64_t)json_get_num(v, "received", 0);
    m->lost += (uint64_t)json_get_num(v, "lost", 0);
    m->duplicates += (uint64_t)json_get_num(v, "duplicates", 0);
    const json_t *intr = json_get(v, "interrupted");
    if (intr && intr->type == JSON_TRUE) m->interrupted = 1;
    return 0;
}

static int cmp_win(const void *a, const void *b)
{
    const double *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

double bench_merge_window(const bench_merge_t *m)
{
    if (!m->nwin) return 0;
    double (*w)[2] = kit_xmalloc((size_t)m->nwin * sizeof *w);
    memcpy(w, m->win, (size_t)m->nwin * sizeof *w);
    qsort(w, (size_t)m->nwin, sizeof *w, cmp_win);
    double total = 0, s = w[0][0], e = w[0][1];
    for (int i = 1; i < m->nwin; i++) {
        if (w[i][0] > e) {
            total += e - s;
            s = w[i][0];
            e = w[i][1];
        } else if (w[i][1] > e) {
            e = w[i][1];
        }
    }
    total += e - s;
    free(w);
    return total;
}

static double ms(const hist_t *h, double p)
{
    return (double)(p >= 100 ? hist_max(h) : hist_percentile(h, p)) / 1000.0;
}

static void span(const bench_merge_t *m, double *start, double *end)
{
    *start = *end = 0;
    for (int i = 0; i < m->nwin; i++) {
        if (i == 0 || m->win[i][0] < *start) *start = m->win[i][0];
        if (i == 0 || m->win[i][1] > *end) *end = m->win[i][1];
    }
}

void bench_merge_json(json_buf_t *b, const bench_merge_t *m)
{
    double w = bench_merge_window(m), start, end;
    span(m, &start, &end);
    const hist_t *h = m->lat;
    json_buf_printf(b, "{\"mode\":\"%s\",\"clients\":%d,\"qos\":%d,\"sent\":%llu,\"acked\":%llu,\"received\":%llu,"
                    "\"lost\":%llu,\"duplicates\":%llu,\"rate_sent\":%.1f,\"rate_received\":%.1f,"
                    "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},\"errors\":%d,"
                    "\"runs\":%d,\"interrupted\":%s,\"start_unix\":%.6f,\"end_unix\":%.6f,\"load_s\":%.6f,\"windows\":[",
                    m->mode, m->clients, m->qos, (unsigned long long)m->sent, (unsigned long long)m->acked,
                    (unsigned long long)m->received, (unsigned long long)m->lost, (unsigned long long)m->duplicates,
                    w > 0 ? (double)m->sent / w : 0, w > 0 ? (double)m->received / w : 0, ms(h, 50), ms(h, 90), ms(h, 99),
                    ms(h, 99.9), ms(h, 100), m->errors, m->runs, m->interrupted ? "true" : "false", start, end, w);
    for (int i = 0; i < m->nwin; i++) json_buf_printf(b, "%s[%.6f,%.6f]", i ? "," : "", m->win[i][0], m->win[i][1]);
    json_buf_puts(b, "],\"latency_hist\":");
    bench_hist_json(b, h);
    if (m->have_corr) {
        const hist_t *c = m->lat_corr;
        json_buf_printf(b, ",\"latency_corrected_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}"
                        ",\"latency_corrected_hist\":", ms(c, 50), ms(c, 90), ms(c, 99), ms(c, 99.9), ms(c, 100));
        bench_hist_json(b, c);
    }
    json_buf_puts(b, "}");
}

/* ---- the command ------------------------------------------------------ */

static void help(int es)
{
    printf("%s: mqlab bench merge FILE.json FILE.json... [--format text|json]\n\n", T("Usage", "Uso"));
    printf("%s\n\n", T("Joins the results of several `mqlab bench ... --format json` runs made at the same time\n"
                       "against one broker (from several machines, or the pods of a Job: give each its own\n"
                       "--id-prefix) into one: counts add up, and the latency percentiles are those of all the\n"
                       "runs' samples together (each file carries its whole histogram, not only percentiles).",
                       "Une los resultados de varias medidas `mqlab bench ... --format json` hechas a la vez\n"
                       "contra un broker (desde varias máquinas, o los pods de un Job: cada uno con su\n"
                       "--id-prefix) en uno: los contadores se suman, y los percentiles de latencia son los de\n"
                       "todas las muestras juntas (cada fichero lleva su histograma entero, no solo percentiles)."));
    printf("%s\n\n", T("Rates: the total messages over the union of the runs' time windows (wall clock, so the\n"
                       "machines' clocks must agree, e.g. by NTP). Generators do not start at the same instant:\n"
                       "a sum of their rates would count as simultaneous what was not, while over the union a\n"
                       "second in which any of them was loading counts once. For runs that fully overlap both\n"
                       "are the same.",
                       "Tasas: el total de mensajes entre la unión de las ventanas de tiempo de las medidas\n"
                       "(hora del reloj, así que los relojes de las máquinas deben coincidir, p. ej. con NTP).\n"
                       "Los generadores no arrancan en el mismo instante: sumar sus tasas contaría como\n"
                       "simultáneo lo que no lo fue; sobre la unión, cada segundo con alguno cargando cuenta\n"
                       "una vez. Si las medidas se solapan del todo, ambas cosas coinciden."));
    printf("%s\n", T("The files must be of the same mode (steady, burst or ramp) and QoS, else merge refuses\n"
                     "them (exit 2). The JSON output has the same fields as one run's, so it can be merged again.",
                     "Los ficheros deben ser del mismo modo (steady, burst o ramp) y QoS; si no, merge los\n"
                     "rechaza (salida 2). La salida JSON tiene los campos de una medida, así que se puede volver a unir."));
    printf("\n%s\n", T("Example: mqlab bench merge gen-0.json gen-1.json gen-2.json --format json",
                       "Ejemplo: mqlab bench merge gen-0.json gen-1.json gen-2.json --format json"));
}

static int usage(int es, const char *fmt, const char *arg)
{
    return kit_usage_error("bench merge", es, fmt, arg);
}

int bench_merge_main(int argc, char **argv, int es)
{
    int json = 0, nfiles = 0;
    const char **files = kit_xmalloc(((size_t)argc + 1) * sizeof *files);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char name[40];
        if (strcmp(a, "-h") == 0) { help(es); free(files); return 0; }
        int split = kit_long_opt(a, name, sizeof name, &val);
        if (split == -1) { files[nfiles++] = a; continue; }
        if (split == -2) { free(files); return usage(es, T("unknown option %s", "opción desconocida %s"), a); }
        if (strcmp(name, "help") == 0) { help(es); free(files); return 0; }
        if (!val && i + 1 >= argc) { free(files); return usage(es, T("option %s needs a value", "la opción %s necesita un valor"), a); }
        if (!val) val = argv[++i];
        if (strcmp(name, "format") == 0) {
            if (strcmp(val, "json") == 0) json = 1;
            else if (strcmp(val, "text") == 0) json = 0;
            else { free(files); return usage(es, T("--format is text or json, not '%s'", "--format es text o json, no '%s'"), val); }
        } else if (strcmp(name, "lang") == 0) {
            es = strncmp(val, "es", 2) == 0;
        } else {
            free(files);
            return usage(es, T("unknown option %s", "opción desconocida %s"), a);
        }
    }
    if (nfiles < 1) {
        free(files);
        return usage(es, "%s", T("which files? the JSON of mqlab bench ... --format json runs",
                                 "¿qué ficheros? el JSON de medidas mqlab bench ... --format json"));
    }
    bench_merge_t m;
    bench_merge_init(&m);
    int rc = 0;
    for (int i = 0; i < nfiles && rc == 0; i++) {
        char err[KIT_ERRLEN] = "";
        size_t len = 0;
        char *text = kit_read_file(files[i], &len, err);
        if (!text) {
            fprintf(stderr, "mqlab bench merge: %s: %s\n", files[i], err);
            rc = 2;
            break;
        }
        json_t *v = json_parse(text, len, err);
        free(text);
        if (!v) {
            fprintf(stderr, "mqlab bench merge: %s: %s (%s)\n", files[i],
                    T("not the JSON of mqlab bench --format json", "no es el JSON de mqlab bench --format json"), err);
            rc = 2;
            break;
        }
        if (bench_merge_add(&m, v, es, err, sizeof err) != 0) {
            fprintf(stderr, "mqlab bench merge: %s: %s\n", files[i], err);
            rc = 2;
        }
        json_free(v);
    }
    free(files);
    if (rc) {
        bench_merge_free(&m);
        return rc;
    }
    if (json) {
        json_buf_t b = { 0 };
        bench_merge_json(&b, &m);
        if (b.oom) {
            fprintf(stderr, "mqlab bench merge: out of memory\n");
            rc = 1;
        } else {
            printf("%.*s\n", (int)b.len, b.data);
        }
        json_buf_free(&b);
    } else {
        double w = bench_merge_window(&m), start, end;
        span(&m, &start, &end);
        const hist_t *h = m.lat;
        printf("\nmqlab bench merge: %d %s (%s, QoS %d)%s\n", m.runs, T("runs", "medidas"), m.mode, m.qos,
               m.interrupted ? T("  (one was interrupted)", "  (alguna se interrumpió)") : "");
        printf("  %-22s %d\n", T("publishers", "publicadores"), m.clients);
        printf("  %-22s %llu  (%.0f msg/s)\n", T("sent", "enviados"), (unsigned long long)m.sent, w > 0 ? (double)m.sent / w : 0);
        printf("  %-22s %llu\n", m.qos ? T("acked", "confirmados") : T("written", "escritos"), (unsigned long long)m.acked);
        printf("  %-22s %llu  (%.0f msg/s)\n", T("received", "recibidos"), (unsigned long long)m.received,
               w > 0 ? (double)m.received / w : 0);
        printf("  %-22s %llu\n", T("lost", "perdidos"), (unsigned long long)m.lost);
        printf("  %-22s %llu\n", T("duplicates", "duplicados"), (unsigned long long)m.duplicates);
        printf("  %-22s p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms\n", T("latency", "latencia"), ms(h, 50),
               ms(h, 90), ms(h, 99), ms(h, 99.9), ms(h, 100));
        if (m.have_corr && strcmp(m.mode, "steady") == 0) {
            const hist_t *c = m.lat_corr;
            printf("  %-22s p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms\n",
                   T("latency, from due", "latencia, desde hora"), ms(c, 50), ms(c, 90), ms(c, 99), ms(c, 99.9), ms(c, 100));
        }
        printf("  %-22s %.2f s  (%s %.2f s)\n", T("time with load", "tiempo con carga"), w,
               T("first start to last end", "del primer inicio al último fin"), end - start);
        printf("  %-22s %d\n", T("errors", "errores"), m.errors);
    }
    bench_merge_free(&m);
    return rc;
}
