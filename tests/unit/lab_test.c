/*
 * lab_test.c - the lab engine: malformed lab files are errors that name
 * the file and line; a valid lab grades into the expected verdict with
 * passing, failing, skipped, timed-out and broken checks.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "lab.h"
#include "util.h"

#define FIX "tests/unit/fixtures/labs/"

static host_t *h;

static int setup(void)
{
    char err[KIT_ERRLEN];
    h = host_new(err);
    return h ? 0 : 1;
}

static int teardown(void)
{
    host_free(h);
    return 0;
}

/* Load path and expect failure whose message contains every needle. */
static void expect_bad(const char *path, const char *n1, const char *n2)
{
    char err[4096] = "";
    lab_t *lab = NULL;
    int rc = lab_load_file(h, path, &lab, err, sizeof err);
    CU_ASSERT_EQUAL(rc, KIT_EINVAL);
    CU_ASSERT_PTR_NULL(lab);
    if (n1) CU_ASSERT_PTR_NOT_NULL(strstr(err, n1));
    if (n2) CU_ASSERT_PTR_NOT_NULL(strstr(err, n2));
    if ((n1 && !strstr(err, n1)) || (n2 && !strstr(err, n2))) fprintf(stderr, "\n%s: got: %s\n", path, err);
    lab_free(lab);
}

static void TEST_syntax_error_names_line(void) { expect_bad(FIX "syntax.lua", FIX "syntax.lua:4:", "expected"); }
static void TEST_missing_title(void) { expect_bad(FIX "no-title.lua", FIX "no-title.lua:1:", "title"); }
static void TEST_duplicate_check(void) { expect_bad(FIX "dup-check.lua", "two checks are called 'a'", FIX "dup-check.lua:"); }
static void TEST_after_unknown(void) { expect_bad(FIX "bad-after.lua", "'zzz'", FIX "bad-after.lua:"); }
static void TEST_check_without_run(void) { expect_bad(FIX "check-no-run.lua", FIX "check-no-run.lua:6:", "'run'"); }
static void TEST_no_return(void) { expect_bad(FIX "no-return.lua", "return lab", FIX "no-return.lua"); }
static void TEST_step_without_on(void) { expect_bad(FIX "step-no-on.lua", FIX "step-no-on.lua:5:", "'on'"); }
static void TEST_missing_id_names_lab_line(void) { expect_bad(FIX "no-id-plan-first.lua", FIX "no-id-plan-first.lua:8:", "'id'"); }
static void TEST_runtime_error(void) { expect_bad(FIX "runtime-error.lua", FIX "runtime-error.lua:2:", "index a nil value"); }

static void TEST_sandbox_has_no_os_execute(void)
{
    remove("/tmp/mqlab-should-not-exist");
    expect_bad(FIX "forbidden.lua", FIX "forbidden.lua:1:", "execute");
    CU_ASSERT_FALSE(kit_file_exists("/tmp/mqlab-should-not-exist"));
}

static void TEST_missing_file(void)
{
    char err[KIT_ERRLEN];
    lab_t *lab = NULL;
    CU_ASSERT_EQUAL(lab_load_file(h, FIX "nope.lua", &lab, err, sizeof err), KIT_ENOENT);
}

static const check_result_t *find(const verdict_t *v, const char *id)
{
    for (int i = 0; i < v->nchecks; i++)
        if (strcmp(v->checks[i].id, id) == 0) return &v->checks[i];
    return NULL;
}

static void TEST_grade_engine_lab(void)
{
    char err[4096];
    lab_t *lab = NULL;
    CU_ASSERT_EQUAL_FATAL(lab_load_file(h, FIX "engine.lua", &lab, err, sizeof err), KIT_OK);
    verdict_t v;
    int rc = lab_grade(lab, ".", "ana", "es", &v, err, sizeof err);
    CU_ASSERT_EQUAL_FATAL(rc, KIT_OK);
    CU_ASSERT_EQUAL(v.nchecks, 6);
    CU_ASSERT_DOUBLE_EQUAL(v.max_score, 9, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(v.score, 3, 1e-9);   /* passes (2) + after-ok (1) */

    const check_result_t *c = find(&v, "passes");
    CU_ASSERT(c && c->passed && !c->skipped && c->points == 2);
    c = find(&v, "fails");
    CU_ASSERT(c && !c->passed && c->points == 0 && strstr(c->message, "mal: 42"));
    c = find(&v, "skipped");
    CU_ASSERT(c && c->skipped && !c->passed && strstr(c->message, "fails"));
    c = find(&v, "spins");
    CU_ASSERT(c && !c->passed && !c->skipped && strstr(c->message, "0.3 s"));
    c = find(&v, "lab-bug");
    CU_ASSERT(c && !c->passed && strstr(c->message, "engine.lua:"));
    CU_ASSERT_PTR_NOT_NULL(v.error);        /* a lab bug is reported as such */
    c = find(&v, "after-ok");
    CU_ASSERT(c && c->passed);
    CU_ASSERT_STRING_EQUAL(v.lab, "95-engine");
    CU_ASSERT_STRING_EQUAL(v.student, "ana");
    verdict_clear(&v);
    lab_free(lab);
}

static void TEST_setup_error_fails_every_check(void)
{
    char err[4096];
    lab_t *lab = NULL;
    CU_ASSERT_EQUAL_FATAL(lab_load_file(h, FIX "setup-error.lua", &lab, err, sizeof err), KIT_OK);
    verdict_t v;
    CU_ASSERT_EQUAL_FATAL(lab_grade(lab, ".", "ana", "es", &v, err, sizeof err), KIT_OK);
    CU_ASSERT_EQUAL(v.nchecks, 2);
    CU_ASSERT_DOUBLE_EQUAL(v.max_score, 5, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(v.score, 0, 1e-9);
    CU_ASSERT(v.error && strstr(v.error, "setup-error.lua:7:"));
    if (v.nchecks == 2) {
        CU_ASSERT_STRING_EQUAL(v.checks[1].title, "dos");
        CU_ASSERT(!v.checks[1].passed && strstr(v.checks[1].message, "setup-error.lua:7:"));
    }
    verdict_clear(&v);
    lab_free(lab);
}

static void TEST_params_are_per_student_and_stable(void)
{
    char err[4096];
    lab_t *lab = NULL;
    CU_ASSERT_EQUAL_FATAL(lab_load_file(h, FIX "engine.lua", &lab, err, sizeof err), KIT_OK);
    char *a1 = lab_instructions(lab, "ana", "en", err, sizeof err);
    char *a2 = lab_instructions(lab, "ana", "es", err, sizeof err);
    CU_ASSERT_STRING_EQUAL(a1, "Hello ana");
    CU_ASSERT_STRING_EQUAL(a2, "Hola ana");
    char *hint = lab_hint(lab, 0, "bea", "es", err, sizeof err);
    CU_ASSERT_STRING_EQUAL(hint, "pista bea");
    free(a1); free(a2); free(hint);

    /* The seeded number differs between students and repeats for one. */
    verdict_t v1, v2, v3;
    lab_grade(lab, ".", "ana", "en", &v1, err, sizeof err);
    lab_grade(lab, ".", "ana", "en", &v2, err, sizeof err);
    lab_grade(lab, ".", "bea", "en", &v3, err, sizeof err);
    CU_ASSERT_STRING_EQUAL(v1.checks[0].message, v2.checks[0].message);
    CU_ASSERT_STRING_NOT_EQUAL(v1.checks[0].message, v3.checks[0].message);
    verdict_clear(&v1); verdict_clear(&v2); verdict_clear(&v3);
    lab_free(lab);
}

/* Lab code that fights its budget or its sandbox loses each check it
 * spoils, with a message naming its line, and the grading goes on. */
static void TEST_misbehaving_lab(void)
{
    char err[4096];
    lab_t *lab = NULL;
    unlink("/tmp/mqlab-misbehave-pwned");
    CU_ASSERT_EQUAL_FATAL(lab_load_file(h, FIX "misbehave.lua", &lab, err, sizeof err), KIT_OK);
    verdict_t v;
    int64_t t0 = kit_now_ms();
    CU_ASSERT_EQUAL_FATAL(lab_grade(lab, ".", "ana", "en", &v, err, sizeof err), KIT_OK);
    /* Three 0.3 s budgets: far from the default 10 s each. */
    CU_ASSERT(kit_now_ms() - t0 < 8000);
    CU_ASSERT_EQUAL(v.nchecks, 10);
    static const char *const timeouts[] = { "swallows-timeout", "handler-loops", "coroutine-loops" };
    for (int i = 0; i < 3; i++) {
        const check_result_t *c = find(&v, timeouts[i]);
        CU_ASSERT(c && !c->passed && strstr(c->message, "did not finish within 0.3 s"));
    }
    const check_result_t *c = find(&v, "rmdir-root");
    CU_ASSERT(c && !c->passed && strstr(c->message, "misbehave.lua:") && strstr(c->message, "may not remove /"));
    c = find(&v, "reads-passwd");
    CU_ASSERT(c && !c->passed && strstr(c->message, "misbehave.lua:") && !strstr(c->message, "root:"));
    c = find(&v, "writes-tmp");
    CU_ASSERT(c && !c->passed && strstr(c->message, "may not write"));
    CU_ASSERT(!kit_file_exists("/tmp/mqlab-misbehave-pwned"));
    c = find(&v, "runs-shell");
    CU_ASSERT(c && !c->passed && strstr(c->message, "misbehave.lua:") && strstr(c->message, "may not run a program from"));
    c = find(&v, "runs-unboxed");
    CU_ASSERT(c && !c->passed && strstr(c->message, "outside the sandbox"));
    c = find(&v, "patches-kit");
    CU_ASSERT(c && c->passed);
    c = find(&v, "still-here");
    CU_ASSERT(c && c->passed && strstr(c->message, "ok 1"));
    CU_ASSERT_PTR_NOT_NULL(v.error);
    verdict_clear(&v);
    lab_free(lab);
}

static void TEST_resolve_names(void)
{
    char id[128], err[KIT_ERRLEN];
    CU_ASSERT_EQUAL(lab_resolve("1", id, sizeof id, err), KIT_OK);
    CU_ASSERT_STRING_EQUAL(id, "01-hello");
    CU_ASSERT_EQUAL(lab_resolve("01", id, sizeof id, err), KIT_OK);
    CU_ASSERT_STRING_EQUAL(id, "01-hello");
    CU_ASSERT_EQUAL(lab_resolve("01-hello", id, sizeof id, err), KIT_OK);
    CU_ASSERT_EQUAL(lab_resolve("99", id, sizeof id, err), KIT_ENOENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "01-hello"));
}

static void TEST_embedded_labs_load(void)
{
    char **ids;
    int n;
    lab_ids(&ids, &n);
    CU_ASSERT(n >= 2);
    for (int i = 0; i < n; i++) {
        char err[4096];
        lab_t *lab = NULL;
        int rc = lab_load(h, ids[i], &lab, err, sizeof err);
        CU_ASSERT_EQUAL(rc, KIT_OK);
        if (rc != KIT_OK) fprintf(stderr, "\n%s: %s\n", ids[i], err);
        if (lab) {
            char *text = lab_instructions(lab, "ana", "es", err, sizeof err);
            CU_ASSERT_PTR_NOT_NULL(text);
            free(text);
            CU_ASSERT(lab_nhints(lab) > 0);
        }
        lab_free(lab);
    }
    lab_free_ids(ids, n);
}

int init_lab_tests(void)
{
    CU_pSuite s = CU_add_suite("lab", setup, teardown);
    if (!s) return 1;
    if (!CU_add_test(s, "syntax error names file:line", TEST_syntax_error_names_line) ||
        !CU_add_test(s, "missing title", TEST_missing_title) ||
        !CU_add_test(s, "duplicate check id", TEST_duplicate_check) ||
        !CU_add_test(s, "after names an unknown check", TEST_after_unknown) ||
        !CU_add_test(s, "check without run", TEST_check_without_run) ||
        !CU_add_test(s, "guide step without on or act", TEST_step_without_on) ||
        !CU_add_test(s, "a missing lab id names the lab's line", TEST_missing_id_names_lab_line) ||
        !CU_add_test(s, "file does not return a lab", TEST_no_return) ||
        !CU_add_test(s, "runtime error names file:line", TEST_runtime_error) ||
        !CU_add_test(s, "sandbox has no os.execute", TEST_sandbox_has_no_os_execute) ||
        !CU_add_test(s, "missing lab file", TEST_missing_file) ||
        !CU_add_test(s, "grade: pass, fail, skip, timeout, lab bug", TEST_grade_engine_lab) ||
        !CU_add_test(s, "a setup bug fails every check, keeping points", TEST_setup_error_fails_every_check) ||
        !CU_add_test(s, "params per student, texts per language", TEST_params_are_per_student_and_stable) ||
        !CU_add_test(s, "a lab that fights its budget or sandbox", TEST_misbehaving_lab) ||
        !CU_add_test(s, "NN resolves as 1, 01, 01-hello", TEST_resolve_names) ||
        !CU_add_test(s, "every embedded lab loads", TEST_embedded_labs_load))
        return 1;
    return 0;
}
