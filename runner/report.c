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

void report_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
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
    csv_field(f, v->student);
    fputc(',', f);
    csv_field(f, v->lab);
    fputc(',', f);
    /* An unfinished grading has no score: the cell stays empty. */
    if (!v->incomplete) json_number(f, v->score);
    fputc(',', f);
    json_number(f, v->max_score);
    fprintf(f, ",%.2f", v->duration_s);
    for (int i = 0; i < v->nchecks; i++) {
        fputc(',', f);
        json_number(f, v->checks[i].points);
    }
    fputc(',', f);
    csv_field(f, v->error);
    fputc('\n', f);
}
