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
    CU_ASSERT_STRING_EQUAL(r, "\"ana \"\"la\"\" ñ\",01-hello,2,3,1.25,2,0,\n");
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

int init_report_tests(void)
{
    CU_pSuite s = CU_add_suite("report", NULL, NULL);
    if (!s) return 1;
    if (!CU_add_test(s, "JSON verdict shape and escapes", TEST_json_shape) ||
        !CU_add_test(s, "CSV quoting", TEST_csv_quoting) ||
        !CU_add_test(s, "text without colour", TEST_no_color))
        return 1;
    return 0;
}
