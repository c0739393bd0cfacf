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
/* The same with exactly ncols check cells (a missing submission has none). */
void report_csv_row_n(FILE *f, const verdict_t *v, int ncols);

/*
 * A class: verdicts ordered by student, then lab.
 */
/* JUnit XML: one <testsuite> per student and lab, one <testcase> per
 * check; a failed check is a <failure> whose message is the feedback, a
 * skipped one <skipped>; a missing submission is a failed "submission"
 * case; a grading that did not finish is an <error>. */
void report_junit(FILE *f, const verdict_t *const *vs, int n);
/* Gradescope's results.json for one student's verdicts: score,
 * execution_time, output, tests[] (name, score, max_score, output,
 * visibility). */
void report_gradescope(FILE *f, const verdict_t *const *vs, int n);
/* One row per student: a column per lab (its score, "missing" or
 * "incomplete"), the total, the maximum, the count of missing labs. */
void report_csv_students(FILE *f, const verdict_t *const *vs, int n, const char *const *labs, int nlabs);
/* One lab's verdicts, a row each, a column per check ("skipped" for a
 * check that did not run), as report_csv_header/row. */
void report_csv_checks(FILE *f, const verdict_t *const *vs, int n);
/* The class summary: per lab the score distribution, the pass rate of
 * every check worst first, the missing submissions, the gradings that
 * did not finish. */
void report_summary_text(FILE *f, const verdict_t *const *vs, int n, const char *lang);
void report_summary_json(FILE *f, const verdict_t *const *vs, int n);

#endif
