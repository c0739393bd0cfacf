/*
 * report.c - verdicts for people (terminal) and for programs (JSON, CSV).
 */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int report_color(FILE *f)
{
    const char *nc = getenv("NO_COLOR");
    const char *term = getenv("TERM");
    if (nc && *nc) return 0;
    if (term && strcmp(term, "dumb") == 0) return 0;
    return isatty(fileno(f));
}

#define C(code) (color ? "\033[" code "m" : "")

static int is_es(const char *lang) { return lang && strcmp(lang, "es") == 0; }

/* Print s with every line after the first indented by pad. */
static void indented(FILE *f, const char *s, const char *pad)
{
    fputs(pad, f);
    for (; *s; s++) {
        fputc(*s, f);
        if (*s == '\n' && s[1]) fputs(pad, f);
    }
    fputc('\n', f);
}

static void points(FILE *f, double p)
{
    if (p == floor(p)) fprintf(f, "%.0f", p);
    else fprintf(f, "%.1f", p);
}

void report_text(FILE *f, const verdict_t *v, const char *lang, int color)
{
    int es = is_es(lang);
    fprintf(f, "%s%s%s%s%s\n", C("1"), v->lab, v->title && *v->title ? " · " : "",
            v->title ? v->title : "", C("0"));
    if (v->missing) {
        fprintf(f, "  %s–%s %s\n", C("33"), C("0"), v->missing);
        fprintf(f, "%s%s %s%s\n", C("1"), es ? "Nota:" : "Score:", es ? "sin entrega" : "missing", C("0"));
        return;
    }
    if (v->error && v->nchecks == 0)
        fprintf(f, "  %s%s%s %s\n", C("31"), es ? "no se pudo evaluar:" : "could not grade:", C("0"), v->error);
    for (int i = 0; i < v->nchecks; i++) {
        const check_result_t *c = &v->checks[i];
        const char *mark = c->passed ? "✔" : c->skipped ? "–" : "✘";
        const char *col = c->passed ? C("32") : c->skipped ? C("33") : C("31");
        fprintf(f, "  %s%s%s %s ", col, mark, C("0"), c->title);
        fprintf(f, "%s(", C("2"));
        points(f, c->points);
        fputc('/', f);
        points(f, c->max_points);
        fprintf(f, ")%s\n", C("0"));
        if (c->message && *c->message) {
            if (!c->passed) fputs(C("0"), f);
            indented(f, c->message, "      ");
        }
    }
    if (v->incomplete) {
        fprintf(f, "  %s%s%s %s\n", C("31"), es ? "no se pudo evaluar:" : "could not grade:", C("0"), v->error);
        fprintf(f, "%s%s —%s  %s(%.1f s)%s\n", C("1"), es ? "Nota:" : "Score:", C("0"), C("2"), v->duration_s, C("0"));
        return;
    }
    int full = v->max_score > 0 && v->score >= v->max_score;
    fprintf(f, "%s%s ", full ? C("1;32") : C("1"), es ? "Nota:" : "Score:");
    points(f, v->score);
    fputs(" / ", f);
    points(f, v->max_score);
    fprintf(f, "%s  %s(%.1f s)%s\n", C("0"), C("2"), v->duration_s, C("0"));
}

/* The length of the valid UTF-8 sequence at p (1 for ASCII), 0 when the
 * bytes there are not valid UTF-8. Student programs write what they like;
 * JSON and XML must stay valid. */
static int utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80) return 1;
    int n = p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 && p[0] < 0xE0 ? 2 : 0;
    if (n == 0) return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    if (n == 3 && p[0] == 0xE0 && p[1] < 0xA0) return 0;          /* overlong */
    if (n == 3 && p[0] == 0xED && p[1] >= 0xA0) return 0;         /* surrogates */
    if (n == 4 && p[0] == 0xF0 && p[1] < 0x90) return 0;
    if (n == 4 && p[0] == 0xF4 && p[1] >= 0x90) return 0;
    return n;
}

/* What replaces byte c in a JSON string or in XML text, NULL for the byte
 * itself. */
static const char *json_escape(unsigned char c)
{
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: return NULL;
    }
}

static const char *xml_escape(unsigned char c)
{
    switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return "&apos;";
    case '\n': return "&#10;";
    case '\r': return "&#13;";
    case '\t': return "\t";
    default: return NULL;
    }
}

/* s escaped for JSON or XML, valid whatever the bytes: other controls
 * become \u00XX in JSON and U+FFFD in XML (XML 1.0 has no way to write
 * them), invalid UTF-8 becomes U+FFFD, and so do U+FFFE and U+FFFF in XML. */
static void escaped(FILE *f, const char *s, int xml)
{
    const char *bad = xml ? "\xEF\xBF\xBD" : "\\ufffd";
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        const char *rep = xml ? xml_escape(*p) : json_escape(*p);
        if (rep) { fputs(rep, f); continue; }
        if (*p < 0x20) {
            if (xml) fputs(bad, f);
            else fprintf(f, "\\u%04x", *p);
            continue;
        }
        int n = utf8_len(p);
        if (n == 0) { fputs(bad, f); continue; }
        if (xml && n == 3 && p[0] == 0xEF && p[1] == 0xBF && (p[2] == 0xBE || p[2] == 0xBF)) {
            fputs(bad, f);
            p += 2;
            continue;
        }
        fwrite(p, 1, (size_t)n, f);
        p += n - 1;
    }
}

void report_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    escaped(f, s, 0);
    fputc('"', f);
}

static void json_number(FILE *f, double d)
{
    if (!isfinite(d)) { fputs("0", f); return; }
    if (d == floor(d) && fabs(d) < 1e15) fprintf(f, "%.0f", d);
    else fprintf(f, "%.3f", d);
}

void report_json(FILE *f, const verdict_t *v)
{
    fputs("{\"lab\":", f);
    report_json_string(f, v->lab);
    fputs(",\"student\":", f);
    report_json_string(f, v->student);
    fputs(",\"score\":", f);
    json_number(f, v->score);
    fputs(",\"max_score\":", f);
    json_number(f, v->max_score);
    fputs(",\"duration_s\":", f);
    json_number(f, v->duration_s);
    if (v->error) {
        fputs(",\"error\":", f);
        report_json_string(f, v->error);
    }
    if (v->incomplete) fputs(",\"incomplete\":true", f);
    if (v->missing) {
        fputs(",\"missing\":", f);
        report_json_string(f, v->missing);
    }
    fputs(",\"checks\":[", f);
    for (int i = 0; i < v->nchecks; i++) {
        const check_result_t *c = &v->checks[i];
        fputs(i ? ",{\"id\":" : "{\"id\":", f);
        report_json_string(f, c->id);
        fputs(",\"title\":", f);
        report_json_string(f, c->title);
        fprintf(f, ",\"passed\":%s,\"skipped\":%s,\"points\":", c->passed ? "true" : "false",
                c->skipped ? "true" : "false");
        json_number(f, c->points);
        fputs(",\"max_points\":", f);
        json_number(f, c->max_points);
        fputs(",\"message\":", f);
        report_json_string(f, c->message);
        fputc('}', f);
    }
    fputs("]}\n", f);
}

static void csv_field(FILE *f, const char *s)
{
    if (!s) s = "";
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void report_csv_header(FILE *f, const verdict_t *v)
{
    fputs("student,lab,score,max_score,duration_s", f);
    for (int i = 0; i < v->nchecks; i++) {
        fputc(',', f);
        csv_field(f, v->checks[i].id);
    }
    fputs(",error\n", f);
}

void report_csv_row(FILE *f, const verdict_t *v)
{
    report_csv_row_n(f, v, v->nchecks);
}

void report_csv_row_n(FILE *f, const verdict_t *v, int ncols)
{
    csv_field(f, v->student);
    fputc(',', f);
    csv_field(f, v->lab);
    fputc(',', f);
    /* An unfinished grading, or nothing handed in, has no score: the
     * cell stays empty. */
    if (!v->incomplete && !v->missing) json_number(f, v->score);
    fputc(',', f);
    json_number(f, v->max_score);
    fprintf(f, ",%.2f", v->duration_s);
    for (int i = 0; i < ncols; i++) {
        fputc(',', f);
        /* A skipped check did not run: "skipped", not a 0. */
        if (i >= v->nchecks) continue;
        if (v->checks[i].skipped) fputs("skipped", f);
        else json_number(f, v->checks[i].points);
    }
    fputc(',', f);
    if (v->missing) {
        char *m = malloc(strlen(v->missing) + 16);
        if (m) {
            sprintf(m, "missing: %s", v->missing);
            csv_field(f, m);
            free(m);
        }
    } else {
        csv_field(f, v->error);
    }
    fputc('\n', f);
}

/* ------------------------------------------------------------ a class */

static void xml_text(FILE *f, const char *s)
{
    escaped(f, s, 1);
}

/* A <testsuite>'s counts for one verdict: tests, failures, errors,
 * skipped. A missing submission is one failed test; a grading that did
 * not finish adds one test in error. */
static void junit_counts(const verdict_t *v, int c[4])
{
    c[0] = c[1] = c[2] = c[3] = 0;
    if (v->missing) c[0] = c[1] = 1;
    if (verdict_unfinished(v)) { c[0]++; c[2]++; }
    for (int k = 0; k < v->nchecks; k++) {
        c[0]++;
        if (v->checks[k].skipped) c[3]++;
        else if (!v->checks[k].passed) c[1]++;
    }
}

void report_junit(FILE *f, const verdict_t *const *vs, int n)
{
    int all[4] = { 0, 0, 0, 0 }, cnt[4];
    double time = 0;
    for (int i = 0; i < n; i++) {
        junit_counts(vs[i], cnt);
        for (int k = 0; k < 4; k++) all[k] += cnt[k];
        time += vs[i]->duration_s;
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<testsuites name=\"mqlab\" tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"%d\" time=\"%.3f\">\n",
            all[0], all[1], all[2], all[3], time);
    for (int i = 0; i < n; i++) {
        const verdict_t *v = vs[i];
        junit_counts(v, cnt);
        fputs("  <testsuite name=\"", f);
        xml_text(f, v->student);
        fputs(" / ", f);
        xml_text(f, v->lab);
        fprintf(f, "\" tests=\"%d\" failures=\"%d\" errors=\"%d\" skipped=\"%d\" time=\"%.3f\">\n",
                cnt[0], cnt[1], cnt[2], cnt[3], v->duration_s);
        fputs("    <properties>\n      <property name=\"student\" value=\"", f);
        xml_text(f, v->student);
        fputs("\"/>\n      <property name=\"lab\" value=\"", f);
        xml_text(f, v->lab);
        fputs("\"/>\n      <property name=\"score\" value=\"", f);
        if (!v->incomplete && !v->missing) json_number(f, v->score);
        fputs("\"/>\n      <property name=\"max_score\" value=\"", f);
        json_number(f, v->max_score);
        fputs("\"/>\n    </properties>\n", f);
        if (v->missing) {
            fputs("    <testcase classname=\"", f);
            xml_text(f, v->lab);
            fputs("\" name=\"submission\" time=\"0\">\n      <failure type=\"missing\" message=\"", f);
            xml_text(f, v->missing);
            fputs("\"/>\n    </testcase>\n", f);
        }
        for (int k = 0; k < v->nchecks; k++) {
            const check_result_t *c = &v->checks[k];
            fputs("    <testcase classname=\"", f);
            xml_text(f, v->lab);
            fputs("\" name=\"", f);
            xml_text(f, c->id);
            fputs(": ", f);
            xml_text(f, c->title);
            fputs("\" time=\"0\"", f);
            if (c->passed) { fputs("/>\n", f); continue; }
            fputs(">\n", f);
            fputs(c->skipped ? "      <skipped message=\"" : "      <failure type=\"check\" message=\"", f);
            xml_text(f, c->message);
            fputs("\"/>\n    </testcase>\n", f);
        }
        if (verdict_unfinished(v)) {
            fputs("    <testcase classname=\"", f);
            xml_text(f, v->lab);
            fputs("\" name=\"grading\" time=\"0\">\n      <error type=\"", f);
            fputs(v->incomplete ? "incomplete" : "error", f);
            fputs("\" message=\"", f);
            xml_text(f, v->error);
            fputs("\"/>\n    </testcase>\n", f);
        }
        fputs("  </testsuite>\n", f);
    }
    fputs("</testsuites>\n", f);
}

/* One line of a verdict for a summary: "12/16", "missing", "incomplete". */
static void score_text(char *out, size_t len, const verdict_t *v)
{
    if (v->missing) snprintf(out, len, "missing");
    else if (v->incomplete) snprintf(out, len, "incomplete");
    else snprintf(out, len, "%g/%g", v->score, v->max_score);
}

/* One entry of Gradescope's tests[]: named after the lab, and the check c
 * when there is one. */
static void gs_test(FILE *f, int *first, const char *lab, const check_result_t *c, double score,
                    double max, const char *output, const char *prefix)
{
    fputs(*first ? "{\"name\":\"" : ",{\"name\":\"", f);
    *first = 0;
    escaped(f, lab, 0);
    if (c) {
        fputc(' ', f);
        escaped(f, c->id, 0);
        fputs(": ", f);
        escaped(f, c->title, 0);
    }
    fputs("\",\"score\":", f);
    json_number(f, score);
    fputs(",\"max_score\":", f);
    json_number(f, max);
    fputs(",\"output\":\"", f);
    if (prefix) escaped(f, prefix, 0);
    escaped(f, output, 0);
    fputs("\",\"visibility\":\"visible\"}", f);
}

void report_gradescope(FILE *f, const verdict_t *const *vs, int n)
{
    double score = 0, time = 0;
    for (int i = 0; i < n; i++) {
        if (!vs[i]->missing && !vs[i]->incomplete) score += vs[i]->score;
        time += vs[i]->duration_s;
    }
    fputs("{\"score\":", f);
    json_number(f, score);
    fprintf(f, ",\"execution_time\":%d,\"output\":", (int)ceil(time));
    /* The output: one line per lab. */
    char *out = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&out, &len);
    for (int i = 0; i < n && o; i++) {
        char sc[64];
        score_text(sc, sizeof sc, vs[i]);
        const char *why = vs[i]->missing ? vs[i]->missing : verdict_unfinished(vs[i]) ? vs[i]->error : NULL;
        fprintf(o, "%s%s: %s%s%s", i ? "\n" : "", vs[i]->lab, sc, why ? " - " : "", why ? why : "");
    }
    if (o) fclose(o);
    report_json_string(f, out ? out : "");
    free(out);
    fputs(",\"tests\":[", f);
    int first = 1;
    for (int i = 0; i < n; i++) {
        const verdict_t *v = vs[i];
        /* A lab without checks (missing, or it could not run) is one test
         * worth the lab; one that did not finish gets a test that says so. */
        if (v->missing || v->nchecks == 0)
            gs_test(f, &first, v->lab, NULL, 0, v->max_score, v->missing ? v->missing : v->error, NULL);
        for (int k = 0; k < v->nchecks && !v->missing; k++) {
            const check_result_t *c = &v->checks[k];
            /* Gradescope has no "skipped": the output says it. */
            gs_test(f, &first, v->lab, c, v->incomplete ? 0 : c->points, c->max_points, c->message,
                    c->skipped ? "(skipped) " : NULL);
        }
        if (v->incomplete && v->nchecks > 0) gs_test(f, &first, v->lab, NULL, 0, 0, v->error, NULL);
    }
    fputs("]}\n", f);
}

void report_csv_students(FILE *f, const verdict_t *const *vs, int n, const char *const *labs, int nlabs)
{
    fputs("student", f);
    for (int i = 0; i < nlabs; i++) {
        fputc(',', f);
        csv_field(f, labs[i]);
    }
    fputs(",total,max_total,missing\n", f);
    /* Maxima per lab, from whichever verdict knows them. */
    double maxtot = 0;
    for (int l = 0; l < nlabs; l++)
        for (int i = 0; i < n; i++)
            if (strcmp(vs[i]->lab, labs[l]) == 0 && vs[i]->max_score > 0) { maxtot += vs[i]->max_score; break; }
    for (int i = 0; i < n;) {
        int k = i;
        while (k < n && strcmp(vs[k]->student, vs[i]->student) == 0) k++;
        csv_field(f, vs[i]->student);
        double total = 0;
        int missing = 0;
        for (int l = 0; l < nlabs; l++) {
            fputc(',', f);
            const verdict_t *v = NULL;
            for (int j = i; j < k && !v; j++)
                if (strcmp(vs[j]->lab, labs[l]) == 0) v = vs[j];
            if (!v || v->missing) { fputs("missing", f); missing++; continue; }
            if (v->incomplete) { fputs("incomplete", f); continue; }
            json_number(f, v->score);
            total += v->score;
        }
        fputc(',', f);
        json_number(f, total);
        fputc(',', f);
        json_number(f, maxtot);
        fprintf(f, ",%d\n", missing);
        i = k;
    }
}

void report_csv_checks(FILE *f, const verdict_t *const *vs, int n)
{
    const verdict_t *head = NULL;
    for (int i = 0; i < n && !head; i++)
        if (vs[i]->nchecks > 0 && !vs[i]->missing) head = vs[i];
    verdict_t none = { 0 };
    report_csv_header(f, head ? head : &none);
    for (int i = 0; i < n; i++)
        report_csv_row_n(f, vs[i], head ? head->nchecks : 0);
}

/* ------------------------------------------------------------ summary */

typedef struct {
    const char *lab, *id, *title;
    int seq, passed, ran;
} check_stat_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_stat(const void *a, const void *b)
{
    const check_stat_t *x = a, *y = b;
    double rx = x->ran ? (double)x->passed / x->ran : 1, ry = y->ran ? (double)y->passed / y->ran : 1;
    if (rx != ry) return rx < ry ? -1 : 1;
    int r = strcmp(x->lab, y->lab);
    return r ? r : x->seq - y->seq;
}

/* Every check of every lab, with how many ran it and passed it, worst first. */
static check_stat_t *check_stats(const verdict_t *const *vs, int n, int *count)
{
    check_stat_t *st = NULL;
    int m = 0;
    for (int i = 0; i < n; i++) {
        const verdict_t *v = vs[i];
        if (v->missing) continue;
        for (int k = 0; k < v->nchecks; k++) {
            const check_result_t *c = &v->checks[k];
            int j = 0;
            while (j < m && !(strcmp(st[j].lab, v->lab) == 0 && strcmp(st[j].id, c->id) == 0)) j++;
            if (j == m) {
                check_stat_t *grown = realloc(st, sizeof *st * (size_t)(m + 1));
                if (!grown) break;
                st = grown;
                st[m++] = (check_stat_t){ v->lab, c->id, c->title, k, 0, 0 };
            }
            st[j].ran++;
            if (c->passed) st[j].passed++;
        }
    }
    if (m > 1) qsort(st, (size_t)m, sizeof *st, cmp_stat);
    *count = m;
    return st;
}

/* The labs of the class, in order of first appearance (vs is by student,
 * then lab, so that is sorted for the first student). */
static int labs_of(const verdict_t *const *vs, int n, const char **labs)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < m && strcmp(labs[j], vs[i]->lab) != 0) j++;
        if (j == m) labs[m++] = vs[i]->lab;
    }
    for (int i = 1; i < m; i++)
        for (int j = i; j > 0 && strcmp(labs[j - 1], labs[j]) > 0; j--) {
            const char *t = labs[j];
            labs[j] = labs[j - 1];
            labs[j - 1] = t;
        }
    return m;
}

typedef struct {
    int students, graded, missing, incomplete, full;
    double max, min, median, mean, top;
    double *scores;     /* graded scores, sorted */
} lab_stat_t;

static void lab_stat(const verdict_t *const *vs, int n, const char *lab, lab_stat_t *ls)
{
    memset(ls, 0, sizeof *ls);
    ls->scores = malloc(sizeof *ls->scores * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        const verdict_t *v = vs[i];
        if (strcmp(v->lab, lab) != 0) continue;
        ls->students++;
        if (v->max_score > ls->max) ls->max = v->max_score;
        if (v->missing) { ls->missing++; continue; }
        if (v->incomplete) { ls->incomplete++; continue; }
        if (ls->scores) ls->scores[ls->graded] = v->score;
        ls->graded++;
        ls->mean += v->score;
        if (verdict_full_marks(v)) ls->full++;
    }
    if (ls->graded > 0 && ls->scores) {
        qsort(ls->scores, (size_t)ls->graded, sizeof *ls->scores, cmp_double);
        ls->min = ls->scores[0];
        ls->top = ls->scores[ls->graded - 1];
        ls->median = ls->graded % 2 ? ls->scores[ls->graded / 2]
                                    : (ls->scores[ls->graded / 2 - 1] + ls->scores[ls->graded / 2]) / 2;
        ls->mean /= ls->graded;
    }
}

void report_summary_text(FILE *f, const verdict_t *const *vs, int n, const char *lang)
{
    int es = is_es(lang);
    const char **labs = malloc(sizeof *labs * (size_t)(n ? n : 1));
    if (!labs) return;
    int nl = labs_of(vs, n, labs);
    fprintf(f, "\n%s\n", es ? "Resumen de la clase" : "Class summary");
    for (int l = 0; l < nl; l++) {
        lab_stat_t ls;
        lab_stat(vs, n, labs[l], &ls);
        fprintf(f, es ? "  %s: %d estudiantes, %d evaluados, %d sin entrega, %d sin terminar"
                      : "  %s: %d students, %d graded, %d missing, %d did not finish",
                labs[l], ls.students, ls.graded, ls.missing, ls.incomplete);
        if (ls.graded > 0) {
            fprintf(f, es ? "; nota mín %g · mediana %g · media %.1f · máx %g de %g; %d con la nota completa\n"
                          : "; score min %g · median %g · mean %.1f · max %g of %g; %d at full marks\n",
                    ls.min, ls.median, ls.mean, ls.top, ls.max, ls.full);
            /* The distribution: how many at each score, low to high. */
            fputs(es ? "      reparto:" : "      distribution:", f);
            for (int i = 0; i < ls.graded && ls.scores;) {
                int k = i;
                while (k < ls.graded && ls.scores[k] == ls.scores[i]) k++;
                fprintf(f, " %g×%d", ls.scores[i], k - i);
                i = k;
            }
            fputc('\n', f);
        } else {
            fputc('\n', f);
        }
        free(ls.scores);
    }
    int m = 0;
    check_stat_t *st = check_stats(vs, n, &m);
    int shown = 0;
    for (int i = 0; i < m; i++) {
        if (st[i].passed == st[i].ran) continue;
        if (!shown++) fprintf(f, "%s\n", es ? "  comprobaciones que más falló la clase (peores primero):"
                                            : "  checks the class failed most (worst first):");
        if (shown > 20) { fprintf(f, es ? "    … y más\n" : "    … and more\n"); break; }
        fprintf(f, es ? "    %s %s: %d/%d pasaron\n" : "    %s %s: %d/%d passed\n", st[i].lab, st[i].id, st[i].passed, st[i].ran);
    }
    free(st);
    int nm = 0, ni = 0;
    for (int i = 0; i < n; i++) {
        if (!vs[i]->missing) continue;
        if (!nm++) fprintf(f, "%s\n", es ? "  sin entrega:" : "  missing submissions:");
        if (nm > 30) continue;
        fprintf(f, "    %s %s: %s\n", vs[i]->student, vs[i]->lab, vs[i]->missing);
    }
    if (nm > 30) fprintf(f, es ? "    … y %d más\n" : "    … and %d more\n", nm - 30);
    for (int i = 0; i < n; i++) {
        if (!vs[i]->incomplete) continue;
        if (!ni++) fprintf(f, "%s\n", es ? "  evaluaciones que no terminaron:" : "  gradings that did not finish:");
        fprintf(f, "    %s %s: %s\n", vs[i]->student, vs[i]->lab, vs[i]->error ? vs[i]->error : "");
    }
    free(labs);
}

/* The missing submissions (missing), or those that did not finish, as
 * {"student","lab","found"|"error"} objects. */
static void json_who(FILE *f, const verdict_t *const *vs, int n, int missing)
{
    for (int i = 0, first = 1; i < n; i++) {
        const char *why = missing ? vs[i]->missing : vs[i]->incomplete ? vs[i]->error : NULL;
        if (!why) continue;
        fputs(first ? "{\"student\":" : ",{\"student\":", f);
        first = 0;
        report_json_string(f, vs[i]->student);
        fputs(",\"lab\":", f);
        report_json_string(f, vs[i]->lab);
        fputs(missing ? ",\"found\":" : ",\"error\":", f);
        report_json_string(f, why);
        fputc('}', f);
    }
}

void report_summary_json(FILE *f, const verdict_t *const *vs, int n)
{
    const char **labs = malloc(sizeof *labs * (size_t)(n ? n : 1));
    if (!labs) return;
    int nl = labs_of(vs, n, labs);
    fputs("{\"labs\":[", f);
    for (int l = 0; l < nl; l++) {
        lab_stat_t ls;
        lab_stat(vs, n, labs[l], &ls);
        fputs(l ? ",{\"lab\":" : "{\"lab\":", f);
        report_json_string(f, labs[l]);
        fprintf(f, ",\"students\":%d,\"graded\":%d,\"missing\":%d,\"incomplete\":%d,\"full_marks\":%d,\"max_score\":",
                ls.students, ls.graded, ls.missing, ls.incomplete, ls.full);
        json_number(f, ls.max);
        if (ls.graded > 0) {
            fputs(",\"min\":", f);
            json_number(f, ls.min);
            fputs(",\"median\":", f);
            json_number(f, ls.median);
            fputs(",\"mean\":", f);
            json_number(f, ls.mean);
            fputs(",\"max\":", f);
            json_number(f, ls.top);
        }
        fputs(",\"distribution\":[", f);
        for (int i = 0, first = 1; i < ls.graded && ls.scores; first = 0) {
            int k = i;
            while (k < ls.graded && ls.scores[k] == ls.scores[i]) k++;
            fputs(first ? "{\"score\":" : ",{\"score\":", f);
            json_number(f, ls.scores[i]);
            fprintf(f, ",\"count\":%d}", k - i);
            i = k;
        }
        fputs("]}", f);
        free(ls.scores);
    }
    fputs("],\"checks\":[", f);
    int m = 0;
    check_stat_t *st = check_stats(vs, n, &m);
    for (int i = 0; i < m; i++) {
        fputs(i ? ",{\"lab\":" : "{\"lab\":", f);
        report_json_string(f, st[i].lab);
        fputs(",\"id\":", f);
        report_json_string(f, st[i].id);
        fputs(",\"title\":", f);
        report_json_string(f, st[i].title);
        fprintf(f, ",\"passed\":%d,\"ran\":%d}", st[i].passed, st[i].ran);
    }
    free(st);
    fputs("],\"missing\":[", f);
    json_who(f, vs, n, 1);
    fputs("],\"incomplete\":[", f);
    json_who(f, vs, n, 0);
    fputs("]}", f);
    free(labs);
}
