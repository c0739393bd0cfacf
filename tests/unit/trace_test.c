/*
 * trace_test.c - the fault specs of `mqlab trace` ([up:|down:]TYPE:N).
 * The live output is tested end to end by tests/integration/run.py.
 */
#include <CUnit/CUnit.h>

#include "packet.h"
#include "proxy.h"
#include "trace.h"

static void TEST_spec_valid(void)
{
    int dir = -1, type = -1;
    unsigned nth = 0;
    CU_ASSERT_EQUAL(trace_parse_spec("puback:2", &dir, &type, &nth), 0);
    CU_ASSERT_EQUAL(dir, PX_ANY);
    CU_ASSERT_EQUAL(type, PKT_PUBACK);
    CU_ASSERT_EQUAL(nth, 2);
    CU_ASSERT_EQUAL(trace_parse_spec("down:PUBCOMP:1", &dir, &type, &nth), 0);
    CU_ASSERT_EQUAL(dir, PX_DOWN);
    CU_ASSERT_EQUAL(type, PKT_PUBCOMP);
    CU_ASSERT_EQUAL(nth, 1);
    CU_ASSERT_EQUAL(trace_parse_spec("up:publish:12", &dir, &type, &nth), 0);
    CU_ASSERT_EQUAL(dir, PX_UP);
    CU_ASSERT_EQUAL(type, PKT_PUBLISH);
    CU_ASSERT_EQUAL(nth, 12);
    CU_ASSERT_EQUAL(trace_parse_spec("any:3", &dir, &type, &nth), 0);
    CU_ASSERT_EQUAL(type, 0);
}

static void TEST_spec_invalid(void)
{
    static const char *bad[] = {
        "", "puback", "puback:", "puback:0", "puback:-1", "puback:2x", "frob:1", "sideways:puback:1",
        "up:", "up:puback", ":3", "puback:99999999999", "down:puback:1:2",
        "a-very-long-spec-that-does-not-fit-in-the-buffer-at-all-and-goes-on:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int dir, type;
        unsigned nth;
        CU_ASSERT_EQUAL_FATAL(trace_parse_spec(bad[i], &dir, &type, &nth), -1);
    }
    int dir, type;
    unsigned nth;
    CU_ASSERT_EQUAL(trace_parse_spec(NULL, &dir, &type, &nth), -1);
}

int init_trace_tests(void)
{
    CU_pSuite s = CU_add_suite("trace", NULL, NULL);
    if (!s) return 1;
    if (!CU_add_test(s, "fault specs that parse", TEST_spec_valid) ||
        !CU_add_test(s, "fault specs that are refused", TEST_spec_invalid))
        return 1;
    return 0;
}
