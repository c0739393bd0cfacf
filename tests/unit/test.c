/*
 * test.c - runs every CUnit suite of mqlab's C modules. Exits with the
 * number of failures, as mosquitto's test/unit does.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "mqtt.h"
#include "programs.h"
#include "sandbox.h"

int init_topics_tests(void);
int init_store_tests(void);
int init_class_tests(void);
int init_programs_tests(void);
int init_broker_tests(void);
int init_mqtt_tests(void);
int init_lab_tests(void);
int init_report_tests(void);
int init_packet_tests(void);
int init_proxy_tests(void);
int init_trace_tests(void);
int init_tls_tests(void);
int init_hist_tests(void);
int init_bench_tests(void);
int init_benchmerge_tests(void);
int init_sandbox_tests(void);
int init_cleanup_tests(void);
int init_px_rules_tests(void);
int init_net_tests(void);
int init_ws_tests(void);
int init_json_tests(void);
int init_browser_tests(void);
int init_http_tests(void);
int init_proxy_ws_tests(void);
int sbx_init_main(int argc, char **argv);
int init_start_cost_suite(int n);

int main(int argc, char **argv)
{
    /* This binary is the sandbox's launcher while unit tests run. */
    if (argc > 1 && strcmp(argv[1], "__box-init") == 0) return sbx_init_main(argc, argv);
    cleanup_init();
    mq_init();
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    /* make bench: the sandbox's start cost alone. */
    if (argc > 2 && strcmp(argv[1], "--start-cost") == 0) {
        char why[256];
        int rc = 0;
        if (!sbx_available(why, sizeof why)) printf("no sandbox here: %s\n", why);
        else if (init_start_cost_suite(atoi(argv[2])) == 0) {
            CU_basic_set_mode(CU_BRM_SILENT);
            CU_basic_run_tests();
            rc = CU_get_number_of_failures() ? 1 : 0;
        }
        CU_cleanup_registry();
        mq_cleanup();
        return rc;
    }
    if (init_topics_tests() || init_store_tests() || init_class_tests() || init_programs_tests() || init_broker_tests() ||
        init_mqtt_tests() || init_lab_tests() || init_report_tests() || init_packet_tests() ||
        init_proxy_tests() || init_trace_tests() || init_tls_tests() ||
        init_hist_tests() || init_bench_tests() || init_benchmerge_tests() || init_sandbox_tests() || init_cleanup_tests() ||
        init_px_rules_tests() || init_net_tests() || init_ws_tests() || init_http_tests() ||
        init_proxy_ws_tests() || init_json_tests() || init_browser_tests()) {
        fprintf(stderr, "could not register the test suites\n");
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_NORMAL);
    /* unit-tests --only SUITE TEST [N]: that one test, N times (a flake
     * hunt: run it beside CPU-burning loops). */
    if (argc > 3 && strcmp(argv[1], "--only") == 0) {
        CU_pSuite suite = CU_get_suite(argv[2]);
        CU_pTest test = suite ? CU_get_test(suite, argv[3]) : NULL;
        if (!test) {
            fprintf(stderr, "no test \"%s\" in suite \"%s\"\n", argv[3], argv[2]);
            CU_cleanup_registry();
            return 2;
        }
        int times = argc > 4 ? atoi(argv[4]) : 1, bad = 0;
        CU_basic_set_mode(CU_BRM_SILENT);
        for (int k = 0; k < times; k++) {
            CU_basic_run_test(suite, test);
            if (CU_get_number_of_tests_failed()) {
                /* Silent mode says nothing: name the assertions that failed. */
                for (CU_pFailureRecord f = CU_get_failure_list(); f; f = f->pNext)
                    printf("%s:%u: %s\n", f->strFileName, f->uiLineNumber, f->strCondition);
                bad++;
            }
        }
        CU_cleanup_registry();
        mq_cleanup();
        printf("%s: %s\n%d passed, %d failed\n", argv[2], argv[3], times - bad, bad);
        return bad ? 1 : 0;
    }
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned failed = CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    mq_cleanup();
    printf("\n%u passed, %u failed\n", run - failed, failed);
    return failures > 255 ? 255 : (int)failures;
}
