/*
 * verdict.c - the result record of one grading.
 */
#include "verdict.h"
#include "util.h"

#include <stdlib.h>

check_result_t *verdict_add(verdict_t *v, const char *id, const char *title,
                            int passed, int skipped, double points,
                            double max_points, const char *message)
{
    v->checks = kit_xrealloc(v->checks, sizeof *v->checks * (size_t)(v->nchecks + 1));
    check_result_t *c = &v->checks[v->nchecks++];
    c->id = kit_strdup(id ? id : "");
    c->title = kit_strdup(title ? title : "");
    c->passed = passed;
    c->skipped = skipped;
    c->points = points;
    c->max_points = max_points;
    c->message = kit_strdup(message ? message : "");
    return c;
}

void verdict_total(verdict_t *v)
{
    v->score = v->max_score = 0;
    for (int i = 0; i < v->nchecks; i++) {
        v->score += v->checks[i].points;
        v->max_score += v->checks[i].max_points;
    }
    if (v->incomplete) v->score = 0;
}

int verdict_full_marks(const verdict_t *v)
{
    return !v->missing && !v->incomplete && !v->error && v->max_score > 0 && v->score >= v->max_score;
}

int verdict_unfinished(const verdict_t *v)
{
    return v->incomplete || (v->error && v->nchecks == 0);
}

void verdict_clear(verdict_t *v)
{
    for (int i = 0; i < v->nchecks; i++) {
        free(v->checks[i].id);
        free(v->checks[i].title);
        free(v->checks[i].message);
    }
    free(v->checks);
    free(v->lab);
    free(v->title);
    free(v->student);
    free(v->submission);
    free(v->error);
    free(v->missing);
    free(v->hash);
    *v = (verdict_t){ 0 };
}
