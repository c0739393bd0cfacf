/* sandbox_test.c - (being written) */
#include <CUnit/Basic.h>

int init_sandbox_tests(void)
{
    CU_pSuite s = CU_add_suite("sandbox", NULL, NULL);
    return s ? 0 : 1;
}
