/*
 * px_rules_test.c - the fault rules as a pure function: packets in,
 * verdicts out, no sockets and no clock.
 */
#include <CUnit/CUnit.h>

#include "packet.h"
#include "px_rules.h"
#include "util.h"

#include <string.h>

static px_rule rule(int action, int type, int dir, unsigned nth, unsigned times)
{
    px_rule r;
    memset(&r, 0, sizeof r);
    r.action = action;
    r.type = type;
    r.dir = dir;
    r.nth = nth;
    r.times = times;
    return r;
}

static px_verdict judge(px_rules *rs, const char *id, int dir, int type, size_t size)
{
    px_connstate cs = { id, 0 };
    px_verdict v;
    px_rules_judge(rs, &cs, dir, type, size, &v);
    return v;
}

static void TEST_no_rules(void)
{
    px_rules rs = { 0 };
    px_verdict v = judge(&rs, NULL, PX_UP, PKT_CONNECT, 30);
    CU_ASSERT_EQUAL(v.fate, PX_SENT);
    CU_ASSERT_EQUAL(v.copies, 1);
    CU_ASSERT_EQUAL(v.allow, 30);
    CU_ASSERT_EQUAL(v.cut, -1);
    CU_ASSERT_EQUAL(v.reorder, -1);
    CU_ASSERT_EQUAL(v.delay_ms, 0);
    px_rules_free(&rs);
}

static void TEST_drop_nth(void)
{
    px_rules rs = { 0 };
    px_rule r = rule(PX_DROP, PKT_PUBACK, PX_UP, 2, 0);
    int i = px_rules_add(&rs, &r, NULL);
    CU_ASSERT_EQUAL(i, 0);
    CU_ASSERT_EQUAL(judge(&rs, "a", PX_UP, PKT_PUBACK, 4).fate, PX_SENT);
    /* Another type, or the other direction, is not counted. */
    CU_ASSERT_EQUAL(judge(&rs, "a", PX_UP, PKT_PUBLISH, 20).fate, PX_SENT);
    CU_ASSERT_EQUAL(judge(&rs, "a", PX_DOWN, PKT_PUBACK, 4).fate, PX_SENT);
    px_verdict v = judge(&rs, "a", PX_UP, PKT_PUBACK, 4);
    CU_ASSERT_EQUAL(v.fate, PX_DROPPED);
    CU_ASSERT_EQUAL(v.copies, 0);
    CU_ASSERT_EQUAL(v.allow, 0);
    CU_ASSERT_EQUAL(judge(&rs, "a", PX_UP, PKT_PUBACK, 4).fate, PX_SENT);
    CU_ASSERT_EQUAL(px_rules_fired(&rs, 0), 1);
    px_rules_free(&rs);
}

static void TEST_times_and_any(void)
{
    px_rules rs = { 0 };
    px_rule r = rule(PX_DUPLICATE, PKT_PUBLISH, PX_ANY, 2, 2);
    px_rules_add(&rs, &r, NULL);
    int fates[5];
    for (int i = 0; i < 5; i++) fates[i] = judge(&rs, NULL, i % 2 ? PX_DOWN : PX_UP, PKT_PUBLISH, 10).fate;
    CU_ASSERT_EQUAL(fates[0], PX_SENT);
    CU_ASSERT_EQUAL(fates[1], PX_DUPLICATED);
    CU_ASSERT_EQUAL(fates[2], PX_DUPLICATED);
    CU_ASSERT_EQUAL(fates[3], PX_SENT);
    CU_ASSERT_EQUAL(fates[4], PX_SENT);
    CU_ASSERT_EQUAL(px_rules_fired(&rs, 0), 2);
    px_rules_free(&rs);
}

static void TEST_duplicate_allows_both(void)
{
    px_rules rs = { 0 };
    px_rule r = rule(PX_DUPLICATE, 0, PX_UP, 1, 1);
    px_rules_add(&rs, &r, NULL);
    px_verdict v = judge(&rs, NULL, PX_UP, PKT_PUBLISH, 25);
    CU_ASSERT_EQUAL(v.copies, 2);
    CU_ASSERT_EQUAL(v.allow, 50);
    px_rules_free(&rs);
}

static void TEST_longest_delay(void)
{
    px_rules rs = { 0 };
    px_rule a = rule(PX_DELAY, PKT_PUBLISH, PX_UP, 1, 1), b = a;
    a.delay_ms = 100;
    b.delay_ms = 300;
    px_rules_add(&rs, &a, NULL);
    px_rules_add(&rs, &b, NULL);
    px_verdict v = judge(&rs, NULL, PX_UP, PKT_PUBLISH, 10);
    CU_ASSERT_EQUAL(v.fate, PX_DELAYED);
    CU_ASSERT_EQUAL(v.delay_ms, 300);
    CU_ASSERT_EQUAL(px_rules_fired(&rs, 0), 0);
    CU_ASSERT_EQUAL(px_rules_fired(&rs, 1), 1);
    px_rules_free(&rs);
}

static void TEST_cuts(void)
{
    px_rules rs = { 0 };
    px_rule before = rule(PX_CUT_BEFORE, PKT_PUBLISH, PX_UP, 2, 1);
    before.refuse_ms = 700;
    px_rules_add(&rs, &before, NULL);
    CU_ASSERT_EQUAL(judge(&rs, NULL, PX_UP, PKT_PUBLISH, 10).fate, PX_SENT);
    px_verdict v = judge(&rs, NULL, PX_UP, PKT_PUBLISH, 10);
    CU_ASSERT_EQUAL(v.fate, PX_CUT_BEFORE_F);
    CU_ASSERT_EQUAL(v.copies, 0);
    CU_ASSERT_EQUAL(v.cut, 0);
    CU_ASSERT_EQUAL(v.cut_no, 2);
    CU_ASSERT_EQUAL(v.refuse_ms, 700);
    char text[128];
    px_rules_cut_text(&rs, v.cut, v.cut_no, PX_UP, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "cut by rule 1 (cut_before PUBLISH #2)");
    px_rules_free(&rs);

    /* Dropped, then cut: the trace says cut before it. */
    px_rules rs2 = { 0 };
    px_rule drop = rule(PX_DROP, PKT_PUBACK, PX_DOWN, 1, 1), after = rule(PX_CUT_AFTER, PKT_PUBACK, PX_DOWN, 1, 1);
    px_rules_add(&rs2, &drop, NULL);
    px_rules_add(&rs2, &after, NULL);
    v = judge(&rs2, NULL, PX_DOWN, PKT_PUBACK, 4);
    CU_ASSERT_EQUAL(v.fate, PX_CUT_BEFORE_F);
    CU_ASSERT_EQUAL(v.copies, 0);
    CU_ASSERT_EQUAL(v.cut, 1);
    px_rules_free(&rs2);

    /* cut_after wins over a delay: the cut releases what is held. */
    px_rules rs3 = { 0 };
    px_rule delay = rule(PX_DELAY, 0, PX_UP, 1, 1), cut = rule(PX_CUT_AFTER, 0, PX_UP, 1, 1);
    delay.delay_ms = 500;
    px_rules_add(&rs3, &delay, NULL);
    px_rules_add(&rs3, &cut, NULL);
    v = judge(&rs3, NULL, PX_UP, PKT_PINGREQ, 2);
    CU_ASSERT_EQUAL(v.fate, PX_CUT_AFTER_F);
    CU_ASSERT_EQUAL(v.copies, 1);
    CU_ASSERT_EQUAL(v.delay_ms, 0);
    CU_ASSERT_EQUAL(v.cut, 1);
    px_rules_free(&rs3);
}

static void TEST_cut_bytes(void)
{
    px_rules rs = { 0 };
    px_rule r = rule(PX_CUT_BYTES, 0, PX_UP, 0, 0);
    r.bytes = 100;
    px_rules_add(&rs, &r, NULL);
    CU_ASSERT_EQUAL(judge(&rs, NULL, PX_UP, PKT_PUBLISH, 40).fate, PX_SENT);
    CU_ASSERT_EQUAL(judge(&rs, NULL, PX_DOWN, PKT_PUBACK, 40).fate, PX_SENT);   /* other direction */
    CU_ASSERT_EQUAL(judge(&rs, NULL, PX_UP, PKT_PUBLISH, 40).fate, PX_SENT);
    px_verdict v = judge(&rs, NULL, PX_UP, PKT_PUBLISH, 40);
    CU_ASSERT_EQUAL(v.fate, PX_CUT_MID);
    CU_ASSERT_EQUAL(v.allow, 20);
    CU_ASSERT_EQUAL(v.cut, 0);
    CU_ASSERT_EQUAL(v.cut_no, 0);
    /* Spent: it cuts once. */
    CU_ASSERT_EQUAL(judge(&rs, NULL, PX_UP, PKT_PUBLISH, 40).fate, PX_SENT);
    CU_ASSERT_EQUAL(px_rules_fired(&rs, 0), 1);
    char text[128];
    px_rules_cut_text(&rs, 0, 0, PX_UP, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "cut by rule 1 (cut_bytes 100 B up)");
    px_rules_free(&rs);

    /* A budget reached exactly at a packet's end: cut after it. */
    px_rules rs2 = { 0 };
    r.bytes = 80;
    px_rules_add(&rs2, &r, NULL);
    judge(&rs2, NULL, PX_UP, PKT_PUBLISH, 40);
    v = judge(&rs2, NULL, PX_UP, PKT_PUBLISH, 40);
    CU_ASSERT_EQUAL(v.fate, PX_CUT_AFTER_F);
    CU_ASSERT_EQUAL(v.allow, 40);
    px_rules_free(&rs2);
}

static void TEST_blackhole_and_reorder(void)
{
    px_rules rs = { 0 };
    px_rule bh = rule(PX_BLACKHOLE, PKT_PINGREQ, PX_UP, 1, 1);
    px_rules_add(&rs, &bh, NULL);
    px_verdict v = judge(&rs, NULL, PX_UP, PKT_PINGREQ, 2);
    CU_ASSERT_EQUAL(v.fate, PX_BLACKHOLED);
    CU_ASSERT_TRUE(v.blackhole);
    CU_ASSERT_EQUAL(v.copies, 0);
    /* Inside a black hole no rule counts or fires. */
    px_rule drop = rule(PX_DROP, 0, PX_ANY, 1, 1);
    px_rules_add(&rs, &drop, NULL);
    px_connstate cs = { NULL, 1 };
    px_rules_judge(&rs, &cs, PX_DOWN, PKT_PUBLISH, 10, &v);
    CU_ASSERT_EQUAL(v.fate, PX_BLACKHOLED);
    CU_ASSERT_EQUAL(rs.v[1].matched, 0);
    px_rules_free(&rs);

    px_rules rs2 = { 0 };
    px_rule ro = rule(PX_REORDER, PKT_PUBLISH, PX_UP, 1, 1);
    ro.behind = 2;
    px_rules_add(&rs2, &ro, NULL);
    v = judge(&rs2, NULL, PX_UP, PKT_PUBLISH, 10);
    CU_ASSERT_EQUAL(v.fate, PX_REORDERED);
    CU_ASSERT_EQUAL(v.reorder, 0);
    CU_ASSERT_EQUAL(v.copies, 1);
    /* The packets that overtake it match the same rule. */
    px_connstate none = { NULL, 0 };
    CU_ASSERT_TRUE(px_rules_match(&rs2, 0, &none, PX_UP, PKT_PUBLISH));
    CU_ASSERT_FALSE(px_rules_match(&rs2, 0, &none, PX_DOWN, PKT_PUBLISH));
    CU_ASSERT_FALSE(px_rules_match(&rs2, 5, &none, PX_UP, PKT_PUBLISH));
    px_rules_free(&rs2);
}

static void TEST_client_id_and_clear(void)
{
    px_rules rs = { 0 };
    px_rule r = rule(PX_DROP, PKT_PUBLISH, PX_UP, 1, 5);
    strcpy(r.client_id, "sensor-1");
    px_rules_add(&rs, &r, NULL);
    CU_ASSERT_EQUAL(judge(&rs, NULL, PX_UP, PKT_PUBLISH, 10).fate, PX_SENT);        /* before CONNECT */
    CU_ASSERT_EQUAL(judge(&rs, "sensor-2", PX_UP, PKT_PUBLISH, 10).fate, PX_SENT);
    CU_ASSERT_EQUAL(judge(&rs, "sensor-1", PX_UP, PKT_PUBLISH, 10).fate, PX_DROPPED);
    px_rules_clear(&rs);
    CU_ASSERT_EQUAL(judge(&rs, "sensor-1", PX_UP, PKT_PUBLISH, 10).fate, PX_SENT);
    CU_ASSERT_EQUAL(px_rules_fired(&rs, 0), 1);      /* still answers after clear */
    CU_ASSERT_EQUAL(px_rules_fired(&rs, 7), 0);
    px_rules_free(&rs);
}

static void TEST_bad_rules(void)
{
    px_rules rs = { 0 };
    char err[KIT_ERRLEN];
    px_rule r = rule(99, 0, PX_UP, 1, 1);
    CU_ASSERT_EQUAL(px_rules_add(&rs, &r, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown action"));
    r = rule(PX_DROP, 16, PX_UP, 1, 1);
    CU_ASSERT_EQUAL(px_rules_add(&rs, &r, err), -1);
    r = rule(PX_DROP, 0, 7, 1, 1);
    CU_ASSERT_EQUAL(px_rules_add(&rs, &r, err), -1);
    r = rule(PX_DELAY, 0, PX_UP, 1, 1);
    r.delay_ms = -1;
    CU_ASSERT_EQUAL(px_rules_add(&rs, &r, err), -1);
    r = rule(PX_DROP, 0, PX_UP, 1, 1);
    memset(r.client_id, 'x', sizeof r.client_id);
    CU_ASSERT_EQUAL(px_rules_add(&rs, &r, err), -1);
    CU_ASSERT_EQUAL(rs.n, 0);
    CU_ASSERT_STRING_EQUAL(px_action_name(PX_CUT_BYTES), "cut_bytes");
    CU_ASSERT_PTR_NULL(px_action_name(0));
    px_rules_free(&rs);
}

int init_px_rules_tests(void)
{
    CU_pSuite s = CU_add_suite("px_rules", NULL, NULL);
    if (!s) return 1;
    if (!CU_add_test(s, "no rules: sent as it is", TEST_no_rules) ||
        !CU_add_test(s, "drop the nth", TEST_drop_nth) ||
        !CU_add_test(s, "nth, times, either direction", TEST_times_and_any) ||
        !CU_add_test(s, "duplicate allows both copies", TEST_duplicate_allows_both) ||
        !CU_add_test(s, "the longest delay", TEST_longest_delay) ||
        !CU_add_test(s, "cut before, drop then cut, cut after over delay", TEST_cuts) ||
        !CU_add_test(s, "byte budgets", TEST_cut_bytes) ||
        !CU_add_test(s, "black hole and reorder", TEST_blackhole_and_reorder) ||
        !CU_add_test(s, "client id filter and clear", TEST_client_id_and_clear) ||
        !CU_add_test(s, "bad rules are refused", TEST_bad_rules))
        return 1;
    return 0;
}
