/* cleanup_test.c - (being written) */
#include <CUnit/Basic.h>

int init_cleanup_tests(void)
{
    CU_pSuite s = CU_add_suite("cleanup", NULL, NULL);
    return s ? 0 : 1;
}
