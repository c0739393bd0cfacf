/*
 * report_test.c - the verdict contract: JSON shape and escaping, CSV
 * quoting, and no colour when NO_COLOR is set.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "verdict.h"

static char *capture(void (*fn)(FILE *, const verdict_t *), const verdict_t *v)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(f, v);
    fclose(f);
    return buf;
}

static void sample(verdict_t *v)
{
    memset(v, 0, sizeof *v);
    v->lab = strdup("01-hello");
    v->student = strdup("ana \"la\" ñ");
    v->duration_s = 1.25;
    verdict_add(v, "connects", "Connects", 1, 0, 2, 2, "saw CONNECT\nfrom x");
    verdict_add(v, "subscribes", "Sub, scribes", 0, 1, 0, 1, "tab\there \x01");
    verdict_total(v);
}

static void TEST_json_shape(void)
{
    verdict_t v;
    sample(&v);
    char *s = capture(report_json, &v);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "{\"lab\":\"01-hello\",\"student\":\"ana \\\"la\\\" ñ\",\"score\":2,\"max_score\":3,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"duration_s\":1.250"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"passed\":true,\"skipped\":false,\"points\":2,\"max_points\":2,\"message\":\"saw CONNECT\\nfrom x\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"message\":\"tab\\there \\u0001\""));
    CU_ASSERT_PTR_NULL(strstr(s, "\"error\""));
    CU_ASSERT_EQUAL(s[strlen(s) - 1], '\n');
    CU_ASSERT(strchr(s, '\n') == s + strlen(s) - 1);   /* exactly one line */
    free(s);
    verdict_clear(&v);
}

static void TEST_csv_quoting(void)
{
    verdict_t v;
    sample(&v);
    char *h = capture(report_csv_header, &v);
    char *r = capture(report_csv_row, &v);
    CU_ASSERT_STRING_EQUAL(h, "student,lab,score,max_score,duration_s,connects,subscribes,error\n");
    /* A skipped check reads "skipped", not 0. */
    CU_ASSERT_STRING_EQUAL(r, "\"ana \"\"la\"\" ñ\",01-hello,2,3,1.25,2,skipped,\n");
    free(h); free(r);
    verdict_clear(&v);
}

static void TEST_no_color(void)
{
    setenv("NO_COLOR", "1", 1);
    CU_ASSERT_EQUAL(report_color(stdout), 0);
    unsetenv("NO_COLOR");
    verdict_t v;
    sample(&v);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    report_text(f, &v, "es", 0);
    fclose(f);
    CU_ASSERT_PTR_NULL(strchr(buf, '\033'));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "Nota: 2 / 3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "      from x"));   /* feedback indented */
    free(buf);
    verdict_clear(&v);
}


/* Whatever a student's program printed, the JUnit XML stays well formed:
 * escapes, no control characters, no invalid UTF-8. */
static void TEST_junit_escapes(void)
{
    verdict_t v = { 0 };
    v.lab = strdup("01-hello");
    v.student = strdup("ana");
    verdict_add(&v, "connects", "Connects <ok>", 1, 0, 1, 1, "");
    verdict_add(&v, "prints", "Prints & \"quotes\"", 0, 0, 0, 2, "got \x01\x1b[31m \xff\xfe </failure> ]]> ñ");
    verdict_add(&v, "later", "Later", 0, 1, 0, 1, "skipped: prints failed");
    verdict_total(&v);
    verdict_t w = { 0 };
    w.lab = strdup("02-topics");
    w.student = strdup("ana");
    w.max_score = 16;
    w.missing = strdup("found Topics.txt");
    const verdict_t *vs[] = { &v, &w };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    report_junit(f, vs, 2);
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "tests=\"4\" failures=\"2\" errors=\"0\" skipped=\"1\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "name=\"prints: Prints &amp; &quot;quotes&quot;\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "&lt;/failure&gt; ]]&gt; ñ"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "<skipped message=\"skipped: prints failed\"/>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "<failure type=\"missing\" message=\"found Topics.txt\"/>"));
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        CU_ASSERT(c >= 0x20 || c == '\n' || c == '\t');
        CU_ASSERT(c != 0xff && c != 0xfe);
    }
    free(buf);
    /* The JSON string escapes invalid UTF-8 too. */
    buf = NULL;
    f = open_memstream(&buf, &len);
    report_json_string(f, "a\xff" "b\xc3\xb1");
    fclose(f);
    CU_ASSERT_STRING_EQUAL(buf, "\"a\\ufffdbñ\"");
    free(buf);
    verdict_clear(&v);
    verdict_clear(&w);
}

/* buf = what `call` writes to f_. */
#define CAPTURE(buf, call) do { \
        size_t len_ = 0; \
        (buf) = NULL; \
        FILE *f_ = open_memstream(&(buf), &len_); \
        call; \
        fclose(f_); \
    } while (0)

/* The per-student CSV and the Gradescope results of one student. */
static void TEST_class_exports(void)
{
    verdict_t a = { 0 }, b = { 0 }, c = { 0 };
    a.lab = strdup("01-hello"); a.student = strdup("ana");
    verdict_add(&a, "x", "X", 1, 0, 3, 3, "ok");
    verdict_add(&a, "y", "Y", 0, 0, 0, 2, "no");
    verdict_total(&a);
    b.lab = strdup("02-topics"); b.student = strdup("ana");
    b.max_score = 16; b.missing = strdup("empty");
    c.lab = strdup("01-hello"); c.student = strdup("bob, jr");
    verdict_add(&c, "x", "X", 1, 0, 3, 3, "ok");
    verdict_add(&c, "y", "Y", 1, 0, 2, 2, "ok");
    verdict_total(&c);
    const verdict_t *vs[] = { &a, &b, &c };
    const char *labs[] = { "01-hello", "02-topics" };
    char *buf;
    CAPTURE(buf, report_csv_students(f_, vs, 3, labs, 2));
    CU_ASSERT_STRING_EQUAL(buf, "student,01-hello,02-topics,total,max_total,missing\n"
                                "ana,3,missing,3,21,1\n"
                                "\"bob, jr\",5,missing,5,21,1\n");
    free(buf);
    CAPTURE(buf, report_gradescope(f_, vs, 2));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "{\"score\":3,\"execution_time\":0,\"output\":\"01-hello: 3/5\\n02-topics: missing - empty\",\"tests\":["));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "{\"name\":\"01-hello y: Y\",\"score\":0,\"max_score\":2,\"output\":\"no\",\"visibility\":\"visible\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "{\"name\":\"02-topics\",\"score\":0,\"max_score\":16,\"output\":\"empty\",\"visibility\":\"visible\"}"));
    free(buf);
    /* The summary puts the worst check first. */
    CAPTURE(buf, report_summary_json(f_, vs, 3));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"checks\":[{\"lab\":\"01-hello\",\"id\":\"y\",\"title\":\"Y\",\"passed\":1,\"ran\":2}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"missing\":[{\"student\":\"ana\",\"lab\":\"02-topics\",\"found\":\"empty\"}]"));
    free(buf);
    verdict_clear(&a);
    verdict_clear(&b);
    verdict_clear(&c);
}

int init_report_tests(void)
{
    CU_pSuite s = CU_add_suite("report", NULL, NULL);
    if (!s) return 1;
    if (!CU_add_test(s, "JSON verdict shape and escapes", TEST_json_shape) ||
        !CU_add_test(s, "CSV quoting", TEST_csv_quoting) ||
        !CU_add_test(s, "text without colour", TEST_no_color) ||
        !CU_add_test(s, "JUnit XML stays well formed", TEST_junit_escapes) ||
        !CU_add_test(s, "per-student CSV, Gradescope, summary", TEST_class_exports))
        return 1;
    return 0;
}
