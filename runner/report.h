/*
 * report.h - prints verdicts: for a terminal (colour only on a TTY and
 * when NO_COLOR is unset), as the JSON verdict contract, and as CSV.
 */
#ifndef MQLAB_REPORT_H
#define MQLAB_REPORT_H

#include <stdio.h>
#include "verdict.h"

/* 1 when f is a TTY and NO_COLOR is not set (and TERM is not "dumb"). */
int report_color(FILE *f);

/* Human report: one line per check (✔ / ✘ / skipped), points, feedback
 * indented below failures, then the total. lang: "es" or "en". */
void report_text(FILE *f, const verdict_t *v, const char *lang, int color);

/* Exactly one JSON object and a newline:
 * {"lab","student","score","max_score","duration_s",
 *  "checks":[{"id","title","passed","skipped","points","max_points","message"}]}
 * plus "error" when grading could not run. */
void report_json(FILE *f, const verdict_t *v);

/* JSON string literal with escapes (\" \\ \n \uXXXX for controls). */
void report_json_string(FILE *f, const char *s);

/* CSV gradebook: header names the check ids of v; one row per verdict.
 * Fields are quoted when they need to be (RFC 4180). */
void report_csv_header(FILE *f, const verdict_t *v);
void report_csv_row(FILE *f, const verdict_t *v);

#endif
