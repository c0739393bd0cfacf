/*
 * class_test.c - the shards of a class: parsing I/N, and the stable
 * FNV-1a split of student ids.
 */
#include <CUnit/CUnit.h>
#include <stdio.h>

#include "class.h"
#include "util.h"

static void TEST_parse_shard(void)
{
    int i = -1, n = -1;
    CU_ASSERT(class_parse_shard("0/3", &i, &n) == KIT_OK);
    CU_ASSERT(i == 0 && n == 3);
    CU_ASSERT(class_parse_shard("2/3", &i, &n) == KIT_OK);
    CU_ASSERT(i == 2 && n == 3);
    CU_ASSERT(class_parse_shard("0/1", &i, &n) == KIT_OK);
    CU_ASSERT(class_parse_shard("9999/10000", &i, &n) == KIT_OK);
    static const char *const bad[] = { "3/3", "1/0", "x/2", "-1/2", "1/-2", "", "/", "1/", "/2", "1/2/3",
                                       "1 /2", "+1/2", "0/10001", "1/2x", "0x1/2", "99999999999999999999/2" };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        int r = class_parse_shard(bad[k], &i, &n);
        if (r != KIT_EINVAL) fprintf(stderr, "class_parse_shard accepted '%s'\n", bad[k]);
        CU_ASSERT(r == KIT_EINVAL);
    }
    CU_ASSERT(class_parse_shard(NULL, &i, &n) == KIT_EINVAL);
}

static void TEST_shard_of(void)
{
    /* FNV-1a 64 reference values: "" is the offset basis
     * 0xcbf29ce484222325, "a" is 0xaf63dc4c8601ec8c. */
    CU_ASSERT_EQUAL(class_shard_of("", 1000), (int)(0xcbf29ce484222325ULL % 1000));
    CU_ASSERT_EQUAL(class_shard_of("a", 1000), (int)(0xaf63dc4c8601ec8cULL % 1000));
    /* The test class of the integration tests, over 3 shards. */
    CU_ASSERT_EQUAL(class_shard_of("ben", 3), 0);
    CU_ASSERT_EQUAL(class_shard_of("reference", 3), 1);
    CU_ASSERT_EQUAL(class_shard_of("fe", 3), 2);
    CU_ASSERT_EQUAL(class_shard_of("anyone", 1), 0);
    /* Over many ids every shard gets some, none most. */
    int count[4] = { 0 };
    for (int k = 0; k < 400; k++) {
        char id[32];
        snprintf(id, sizeof id, "student%03d", k);
        int s = class_shard_of(id, 4);
        CU_ASSERT_FATAL(s >= 0 && s < 4);
        count[s]++;
    }
    for (int s = 0; s < 4; s++) CU_ASSERT(count[s] > 60 && count[s] < 140);
}

int init_class_tests(void)
{
    CU_pSuite suite = CU_add_suite("class", NULL, NULL);
    if (!suite) return 1;
    if (!CU_add_test(suite, "--shard I/N parsing", TEST_parse_shard)
        || !CU_add_test(suite, "a student's shard: FNV-1a of the id", TEST_shard_of))
        return 1;
    return 0;
}
