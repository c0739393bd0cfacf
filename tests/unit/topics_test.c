/*
 * topics_test.c - CUnit tests for runner/topics.c: name and filter
 * validation (including malformed UTF-8), MQTT 3.1.1 matching, levels,
 * and every rule of the topic-design lint.
 *
 * The matching table mirrors the examples of MQTT 3.1.1 section 4.7 and
 * was cross-checked against libmosquitto's mosquitto_topic_matches_sub().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "topics.h"

#define WHYLEN 512

/* Assert that an explanation mentions needle; say which case failed. */
static void expect_in(const char *why, const char *needle, const char *input)
{
    int found = strstr(why, needle) != NULL;
    if (!found)
        fprintf(stderr, "\n  \"%s\": want \"%s\" in \"%s\"\n", input, needle, why);
    CU_ASSERT(found);
}

/* ---------------------------------------------------------- validation */

static void TEST_valid_name_ok(void)
{
    static const char *const ok[] = {
        "a", "/", "//", "a/b", "/finance", "finance/", "a//b",
        "$SYS/broker/uptime", "a b/c d", "a/$b",
        "sens\xC3\xB3r/temp",                 /* U+00F3 */
        "\xE6\x97\xA5\xE6\x9C\xAC/x",         /* two CJK characters */
        "emoji/\xF0\x9F\x98\x80",             /* U+1F600 */
        "acme/v1/planta-1/norte/sensor-07/temp",
    };
    char why[WHYLEN];

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        strcpy(why, "untouched");
        int got = topic_valid_name(ok[i], why, sizeof why);
        if (!got)
            fprintf(stderr, "\n  name \"%s\" refused: %s\n", ok[i], why);
        CU_ASSERT_EQUAL(got, 1);
        /* A valid name is also a valid filter. */
        CU_ASSERT_EQUAL(topic_valid_filter(ok[i], NULL, 0), 1);
    }
}

static void TEST_valid_name_bad(void)
{
    char why[WHYLEN];

    CU_ASSERT_EQUAL(topic_valid_name(NULL, why, sizeof why), 0);
    CU_ASSERT(strlen(why) > 0);

    why[0] = '\0';
    CU_ASSERT_EQUAL(topic_valid_name("", why, sizeof why), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "empty"));

    static const char *const wild[] = {
        "+", "#", "a/+", "a/#", "+/a", "a+b", "a/b#", "sport/tennis/+/x",
    };
    for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
        why[0] = '\0';
        CU_ASSERT_EQUAL(topic_valid_name(wild[i], why, sizeof why), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "wildcard"));
    }

    why[0] = '\0';
    CU_ASSERT_EQUAL(topic_valid_name("a/b/c+", why, sizeof why), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 3 \"c+\""));

    /* why is optional, and a short buffer is cut but still a string. */
    CU_ASSERT_EQUAL(topic_valid_name("a/#", NULL, 0), 0);
    char small[8];
    memset(small, 'x', sizeof small);
    CU_ASSERT_EQUAL(topic_valid_name("a/#", small, sizeof small), 0);
    CU_ASSERT_EQUAL(strlen(small), sizeof small - 1);
}

static void TEST_valid_length_limit(void)
{
    char why[WHYLEN];
    char *t = malloc(65537);

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    memset(t, 'a', 65536);
    t[65535] = '\0';
    CU_ASSERT_EQUAL(topic_valid_name(t, why, sizeof why), 1);
    CU_ASSERT_EQUAL(topic_valid_filter(t, why, sizeof why), 1);

    t[65535] = 'a';
    t[65536] = '\0';
    why[0] = '\0';
    CU_ASSERT_EQUAL(topic_valid_name(t, why, sizeof why), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "65535"));
    CU_ASSERT_EQUAL(topic_valid_filter(t, NULL, 0), 0);

    /* The limit counts bytes, not characters: 32767 two-byte characters
     * and one ASCII byte fit; 32768 two-byte characters do not. */
    for (int i = 0; i < 65534; i += 2) {
        t[i] = (char)0xC3;
        t[i + 1] = (char)0xB3;
    }
    t[65534] = 'a';
    t[65535] = '\0';
    CU_ASSERT_EQUAL(topic_valid_name(t, NULL, 0), 1);
    t[65534] = (char)0xC3;
    t[65535] = (char)0xB3;
    t[65536] = '\0';
    CU_ASSERT_EQUAL(topic_valid_name(t, NULL, 0), 0);
    free(t);
}

static void TEST_valid_utf8_good(void)
{
    /* Boundaries of each encoding length and around the surrogates. */
    static const char *const ok[] = {
        "\xC2\xA0",             /* U+00A0, first after the C1 controls */
        "\xDF\xBF",             /* U+07FF, last two-byte */
        "\xE0\xA0\x80",         /* U+0800, first three-byte */
        "\xED\x9F\xBF",         /* U+D7FF, just below the surrogates */
        "\xEE\x80\x80",         /* U+E000, just above them */
        "\xEF\xBF\xBD",         /* U+FFFD */
        "\xF0\x90\x80\x80",     /* U+10000, first four-byte */
        "\xF4\x8F\xBF\xBD",     /* U+10FFFD */
        "~",                    /* U+007E, last before DEL */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char why[WHYLEN] = "";
        int got = topic_valid_name(ok[i], why, sizeof why);
        if (!got)
            fprintf(stderr, "\n  case %zu refused: %s\n", i, why);
        CU_ASSERT_EQUAL(got, 1);
    }
}

static void TEST_valid_utf8_bad(void)
{
    static const struct {
        const char *topic;
        const char *reason;     /* expected in why */
    } bad[] = {
        { "a/\xC0\xAF", "overlong" },           /* '/' in two bytes */
        { "\xC1\xBF", "overlong" },
        { "\xE0\x80\xAF", "overlong" },
        { "\xE0\x9F\xBF", "overlong" },         /* U+07FF in three bytes */
        { "\xF0\x80\x80\xAF", "overlong" },
        { "\xF0\x8F\xBF\xBF", "overlong" },     /* U+FFFF in four bytes */
        { "\xED\xA0\x80", "surrogate" },        /* U+D800 */
        { "x\xED\xBF\xBF", "surrogate" },       /* U+DFFF */
        { "\xF4\x90\x80\x80", "U+10FFFF" },     /* U+110000 */
        { "\xF5\x80\x80\x80", "U+10FFFF" },
        { "\xF8\x88\x80\x80\x80", "UTF-8" },    /* old five-byte form */
        { "\xFF", "UTF-8" },
        { "a\x80", "continuation" },
        { "\xBF/a", "continuation" },
        { "\xC3", "truncated" },
        { "a\xE2\x82", "truncated" },
        { "\xE2\x28\xA1", "truncated" },        /* second byte not 10xxxxxx */
        { "\xF0\x9F\x98", "truncated" },
        { "a\x01" "b", "control" },
        { "a\tb", "control" },
        { "\x7F", "control" },
        { "\xC2\x80", "control" },              /* U+0080, a C1 control */
        { "\xC2\x9F", "control" },
        { "\xEF\xBF\xBF", "non-character" },    /* U+FFFF */
        { "\xEF\xBF\xBE", "non-character" },    /* U+FFFE */
        { "\xEF\xB7\x90", "non-character" },    /* U+FDD0 */
        { "\xF4\x8F\xBF\xBF", "non-character" },/* U+10FFFF */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[WHYLEN] = "";
        CU_ASSERT_EQUAL(topic_valid_name(bad[i].topic, why, sizeof why), 0);
        CU_ASSERT_EQUAL(topic_valid_filter(bad[i].topic, NULL, 0), 0);
        expect_in(why, bad[i].reason, "(invalid UTF-8 case)");
        expect_in(why, "UTF-8", "(invalid UTF-8 case)");
    }

    /* The explanation points at the offending byte (1-based). */
    char why[WHYLEN] = "";
    CU_ASSERT_EQUAL(topic_valid_name("abc\x80", why, sizeof why), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "byte 4"));
    /* A broken filter is refused even where wildcards are allowed. */
    CU_ASSERT_EQUAL(topic_valid_filter("a/\xC0\xAF/#", NULL, 0), 0);
}

static void TEST_valid_filter_ok(void)
{
    static const char *const ok[] = {
        "#", "+", "+/+", "/+", "+/", "/#", "+/#", "a/#", "a/+/c", "a//+",
        "sport/tennis/+", "sport/tennis/player1/#", "$SYS/#", "$SYS/+/x",
        "+/+/+/+", "acme/v1/+/+/temp", "sens\xC3\xB3r/+",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char why[WHYLEN] = "";
        int got = topic_valid_filter(ok[i], why, sizeof why);
        if (!got)
            fprintf(stderr, "\n  filter \"%s\" refused: %s\n", ok[i], why);
        CU_ASSERT_EQUAL(got, 1);
    }
}

static void TEST_valid_filter_bad(void)
{
    static const struct {
        const char *filter;
        const char *reason;
    } bad[] = {
        { "a#", "'#' must fill a whole level" },
        { "sport/tennis#", "'#' must fill a whole level" },
        { "##", "'#' must fill a whole level" },
        { "#/a", "'#' must be the last level" },
        { "a/#/b", "'#' must be the last level" },
        { "#/", "'#' must be the last level" },
        { "a+", "'+' must fill a whole level" },
        { "+a", "'+' must fill a whole level" },
        { "sport/+player1", "'+' must fill a whole level" },
        { "++", "'+' must fill a whole level" },
        { "a/+#", "must fill a whole level" },
        { "", "empty" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[WHYLEN] = "";
        CU_ASSERT_EQUAL(topic_valid_filter(bad[i].filter, why, sizeof why), 0);
        expect_in(why, bad[i].reason, bad[i].filter);
    }
    CU_ASSERT_EQUAL(topic_valid_filter(NULL, NULL, 0), 0);

    char why[WHYLEN] = "";
    CU_ASSERT_EQUAL(topic_valid_filter("a/b/c#/d", why, sizeof why), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 3 \"c#\""));
}

/* ------------------------------------------------------------ matching */

static const struct {
    const char *filter;
    const char *topic;
    int expected;
} match_cases[] = {
    /* Section 4.7.1.2 */
    { "sport/tennis/player1/#", "sport/tennis/player1", 1 },
    { "sport/tennis/player1/#", "sport/tennis/player1/ranking", 1 },
    { "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", 1 },
    { "sport/tennis/player1/#", "sport/tennis/player2", 0 },
    { "sport/#", "sport", 1 },
    { "sport/#", "sport/", 1 },
    { "sport/#", "sports", 0 },
    { "sport/#", "sporty/x", 0 },
    { "#", "sport/tennis", 1 },
    { "#", "a", 1 },
    { "#", "/", 1 },
    { "#", "/finance", 1 },
    /* Section 4.7.1.3 */
    { "sport/tennis/+", "sport/tennis/player1", 1 },
    { "sport/tennis/+", "sport/tennis/player2", 1 },
    { "sport/tennis/+", "sport/tennis/player1/ranking", 0 },
    { "sport/tennis/+", "sport/tennis", 0 },
    { "sport/tennis/+", "sport/tennis/", 1 },
    { "sport/+", "sport", 0 },
    { "sport/+", "sport/", 1 },
    { "+", "a", 1 },
    { "+", "a/b", 0 },
    { "+", "/finance", 0 },
    { "+/+", "/finance", 1 },
    { "/+", "/finance", 1 },
    { "+/+", "a/b/c", 0 },
    { "+/b", "a/b/c", 0 },
    { "+/+/+", "a/b", 0 },
    { "a/+/b", "a//b", 1 },
    { "+/+", "/", 1 },
    { "+", "/", 0 },
    /* Section 4.7.2: '$' topics and wildcards at the start */
    { "#", "$SYS", 0 },
    { "#", "$SYS/broker/uptime", 0 },
    { "+/monitor/Clients", "$SYS/monitor/Clients", 0 },
    { "+/+", "$SYS/x", 0 },
    { "+/#", "$SYS/x", 0 },
    { "$SYS/monitor/+", "$SYS/monitor/Clients", 1 },
    { "$SYS/#", "$SYS/broker/x", 1 },
    { "$SYS/#", "$SYS", 1 },
    { "$SYS/#", "$SYSTEM/x", 0 },
    { "a/+", "a/$b", 1 },
    { "a/#", "a/$b/c", 1 },
    /* Exact levels: case, empty levels, prefixes */
    { "a/b", "a/b", 1 },
    { "a/b", "a/B", 0 },
    { "a/b", "a/b/", 0 },
    { "a/b/", "a/b", 0 },
    { "a/b", "a//b", 0 },
    { "a//b", "a//b", 1 },
    { "/a", "a", 0 },
    { "a", "/a", 0 },
    { "ab", "a", 0 },
    { "a", "ab", 0 },
    { "a/b/c", "a/b", 0 },
    /* '#' includes the parent, but only the direct one */
    { "a/#", "a", 1 },
    { "a/#", "ab", 0 },
    { "a/#", "a/b/c/d", 1 },
    { "a/b/#", "a", 0 },
    { "a/+/#", "a", 0 },
    { "a/+/#", "a/b", 1 },
    { "a/+/#", "a/b/c", 1 },
    { "/#", "/", 1 },
    { "/#", "/a/b", 1 },
    { "/#", "a", 0 },
    { "+/#", "a", 1 },
    { "+/#", "/a", 1 },
    /* The course's shapes and non-ASCII levels */
    { "acme/v1/+/+/temp", "acme/v1/planta-1/norte/temp", 1 },
    { "acme/v1/+/+/temp", "acme/v1/planta-1/norte/sensor-07/temp", 0 },
    { "acme/v1/planta-1/#", "acme/v1/planta-1/norte/sensor-07/temp", 1 },
    { "sens\xC3\xB3r/+", "sens\xC3\xB3r/x", 1 },
    { "sensor/+", "sens\xC3\xB3r/x", 0 },
};

static void TEST_matches_table(void)
{
    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
        const char *f = match_cases[i].filter, *t = match_cases[i].topic;
        /* Keep the table honest: every row uses valid inputs. */
        CU_ASSERT_EQUAL(topic_valid_filter(f, NULL, 0), 1);
        CU_ASSERT_EQUAL(topic_valid_name(t, NULL, 0), 1);
        int got = topic_matches(f, t);
        if (got != match_cases[i].expected)
            fprintf(stderr, "\n  matches(\"%s\", \"%s\") = %d, want %d\n",
                    f, t, got, match_cases[i].expected);
        CU_ASSERT_EQUAL(got, match_cases[i].expected);
    }
}

static void TEST_matches_degenerate(void)
{
    CU_ASSERT_EQUAL(topic_matches(NULL, "a"), 0);
    CU_ASSERT_EQUAL(topic_matches("a", NULL), 0);
    CU_ASSERT_EQUAL(topic_matches("", ""), 0);
    CU_ASSERT_EQUAL(topic_matches("#", ""), 0);
    /* A name is a filter that matches only itself. */
    CU_ASSERT_EQUAL(topic_matches("acme/v1/x", "acme/v1/x"), 1);
    CU_ASSERT_EQUAL(topic_matches("acme/v1/x", "acme/v1/y"), 0);
}

/* -------------------------------------------------------------- levels */

static void TEST_levels(void)
{
    CU_ASSERT_EQUAL(topic_levels("a/b/c"), 3);
    CU_ASSERT_EQUAL(topic_levels("a//c"), 3);
    CU_ASSERT_EQUAL(topic_levels("/a"), 2);
    CU_ASSERT_EQUAL(topic_levels("a/"), 2);
    CU_ASSERT_EQUAL(topic_levels("/"), 2);
    CU_ASSERT_EQUAL(topic_levels("//"), 3);
    CU_ASSERT_EQUAL(topic_levels("a"), 1);
    CU_ASSERT_EQUAL(topic_levels("acme/v1/planta-1/norte/sensor-07/temp"), 6);
    CU_ASSERT_EQUAL(topic_levels(""), 0);
    CU_ASSERT_EQUAL(topic_levels(NULL), 0);
}

static void TEST_level(void)
{
    char out[32];
    const char *t = "acme/v1/planta-1//temp/";

    CU_ASSERT_EQUAL(topic_level(t, 0, out, sizeof out), 4);
    CU_ASSERT_STRING_EQUAL(out, "acme");
    CU_ASSERT_EQUAL(topic_level(t, 1, out, sizeof out), 2);
    CU_ASSERT_STRING_EQUAL(out, "v1");
    CU_ASSERT_EQUAL(topic_level(t, 2, out, sizeof out), 8);
    CU_ASSERT_STRING_EQUAL(out, "planta-1");
    strcpy(out, "junk");
    CU_ASSERT_EQUAL(topic_level(t, 3, out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_EQUAL(topic_level(t, 4, out, sizeof out), 4);
    CU_ASSERT_STRING_EQUAL(out, "temp");
    strcpy(out, "junk");
    CU_ASSERT_EQUAL(topic_level(t, 5, out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "");

    /* Past the end, negative, or no topic: -1 and an empty string. */
    strcpy(out, "junk");
    CU_ASSERT_EQUAL(topic_level(t, 6, out, sizeof out), -1);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_EQUAL(topic_level(t, -1, out, sizeof out), -1);
    CU_ASSERT_EQUAL(topic_level("", 0, out, sizeof out), -1);
    CU_ASSERT_EQUAL(topic_level(NULL, 0, out, sizeof out), -1);

    CU_ASSERT_EQUAL(topic_level("/a", 0, out, sizeof out), 0);
    CU_ASSERT_EQUAL(topic_level("/a", 1, out, sizeof out), 1);
    CU_ASSERT_STRING_EQUAL(out, "a");

    /* out == NULL asks for the length only. */
    CU_ASSERT_EQUAL(topic_level(t, 2, NULL, 0), 8);
    CU_ASSERT_EQUAL(topic_level(t, 6, NULL, 0), -1);

    /* Too small is refused, not cut: "planta-1" needs 9 bytes. */
    char small[9];
    CU_ASSERT_EQUAL(topic_level(t, 2, small, 8), -1);
    CU_ASSERT_STRING_EQUAL(small, "");
    CU_ASSERT_EQUAL(topic_level(t, 2, small, sizeof small), 8);
    CU_ASSERT_STRING_EQUAL(small, "planta-1");
}

/* ---------------------------------------------------------------- lint */

static unsigned lint(const char *t, int min, int max, char *why)
{
    return topic_lint(t, min, max, why, WHYLEN);
}

static void TEST_lint_clean(void)
{
    static const char *const clean[] = {
        "acme/v1/planta-1/norte/sensor-07/temp",
        "acme/v1/planta-1/norte/sensor-07/estado",
        "acme/v2/planta_2/cmd/dispensador-3",
        "acme/v10",
        "a/v0/0/-/_",
    };
    for (size_t i = 0; i < sizeof clean / sizeof clean[0]; i++) {
        char why[WHYLEN];
        strcpy(why, "junk");
        unsigned got = lint(clean[i], 0, 0, why);
        if (got)
            fprintf(stderr, "\n  \"%s\": 0x%x %s\n", clean[i], got, why);
        CU_ASSERT_EQUAL(got, 0);
        CU_ASSERT_STRING_EQUAL(why, "");
    }
    char why[WHYLEN];
    CU_ASSERT_EQUAL(lint("acme/v1/planta-1/norte/sensor-07/temp", 4, 6, why), 0);
    CU_ASSERT_EQUAL(lint("acme/v1/planta-1/norte/sensor-07/temp", 6, 6, why), 0);
    CU_ASSERT_EQUAL(topic_lint("acme/v1/x", 0, 0, NULL, 0), 0);
}

static void TEST_lint_uppercase(void)
{
    char why[WHYLEN];

    CU_ASSERT_EQUAL(lint("acme/v1/Planta-1/norte", 0, 0, why), LINT_UPPERCASE);
    CU_ASSERT_STRING_EQUAL(why, "level 3 \"Planta-1\" has upper case letters");
    CU_ASSERT_EQUAL(lint("ACME/v1/x", 0, 0, why), LINT_UPPERCASE);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 1 \"ACME\""));
    CU_ASSERT_EQUAL(lint("acme/v1/x/temP", 0, 0, why), LINT_UPPERCASE);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 4"));
}

static void TEST_lint_non_ascii(void)
{
    char why[WHYLEN];

    CU_ASSERT_EQUAL(lint("acme/v1/planta-1/sens\xC3\xB3r", 0, 0, why), LINT_NON_ASCII);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 4 \"sens\xC3\xB3r\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "'\xC3\xB3'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "non-ASCII"));
    /* Upper-case accented letters are non-ASCII, not "upper case". */
    CU_ASSERT_EQUAL(lint("acme/v1/\xC3\x91u", 0, 0, why), LINT_NON_ASCII);
    /* Broken UTF-8 is non-ASCII too, and is escaped in the explanation so
     * the report stays valid text. */
    CU_ASSERT_EQUAL(lint("acme/v1/caf\xE9", 0, 0, why), LINT_NON_ASCII);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "\"caf\\xE9\""));
    CU_ASSERT_PTR_NULL(strchr(why, '\xE9'));
    /* So are C1 controls (U+0085 here): valid UTF-8, but invisible. */
    CU_ASSERT_EQUAL(lint("acme/v1/a\xC2\x85", 0, 0, why), LINT_NON_ASCII);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "\"a\\xC2\\x85\""));
}

static void TEST_lint_space(void)
{
    char why[WHYLEN];

    CU_ASSERT_EQUAL(lint("acme/v1/planta 1", 0, 0, why), LINT_SPACE);
    CU_ASSERT_STRING_EQUAL(why, "level 3 \"planta 1\" has a space");
    CU_ASSERT_EQUAL(lint(" acme/v1/x", 0, 0, why), LINT_SPACE);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 1"));
    CU_ASSERT_EQUAL(lint("acme/v1/x\ty", 0, 0, why), LINT_SPACE);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "white space"));
    CU_ASSERT_PTR_NULL(strchr(why, '\t'));
}

static void TEST_lint_odd_char(void)
{
    static const char *const odd[] = {
        "acme/v1/planta.1", "acme/v1/a:b", "acme/v1/a,b", "acme/v1/a$b",
        "acme/v1/x\x01", "acme/v1/x\\y", "acme/v1/x@y", "acme/v1/x~",
        "acme/v1/a\"b",
    };
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        char why[WHYLEN] = "";
        CU_ASSERT_EQUAL(lint(odd[i], 0, 0, why), LINT_ODD_CHAR);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 3"));
    }
    char why[WHYLEN];
    CU_ASSERT_EQUAL(lint("acme/v1/planta.1", 0, 0, why), LINT_ODD_CHAR);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 3 \"planta.1\" has the character '.'"));
    CU_ASSERT_EQUAL(lint("acme/v1/x\x01", 0, 0, why), LINT_ODD_CHAR);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "\\x01"));
}

static void TEST_lint_wildcard(void)
{
    char why[WHYLEN];

    CU_ASSERT_EQUAL(lint("acme/v1/+/temp", 0, 0, why), LINT_WILDCARD);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 3 \"+\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "wildcard"));
    CU_ASSERT_EQUAL(lint("acme/v1/#", 0, 0, why), LINT_WILDCARD);
    CU_ASSERT_EQUAL(lint("acme/v1/a+b", 0, 0, why), LINT_WILDCARD);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "'+'"));
    CU_ASSERT_EQUAL(lint("acme/v1/c#", 0, 0, why), LINT_WILDCARD);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "'#'"));
}

static void TEST_lint_empty_level(void)
{
    char why[WHYLEN];

    CU_ASSERT_EQUAL(lint("acme/v1//temp", 0, 0, why), LINT_EMPTY_LEVEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 3 is empty"));
    CU_ASSERT_EQUAL(lint("acme/v1/x/", 0, 0, why), LINT_EMPTY_LEVEL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 4 is empty"));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "ends with '/'"));
    /* A leading '/' also pushes the version to level 3. */
    CU_ASSERT_EQUAL(lint("/acme/v1/x", 0, 0, why), LINT_EMPTY_LEVEL | LINT_NO_VERSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 1 is empty"));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "starts with '/'"));
    CU_ASSERT_EQUAL(lint("", 0, 0, why), LINT_EMPTY_LEVEL | LINT_NO_VERSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "empty"));
    CU_ASSERT_EQUAL(lint("", 1, 0, why), LINT_EMPTY_LEVEL | LINT_NO_VERSION | LINT_FEW_LEVELS);
    CU_ASSERT_EQUAL(lint(NULL, 0, 0, why), LINT_EMPTY_LEVEL | LINT_NO_VERSION);
}

static void TEST_lint_level_count(void)
{
    char why[WHYLEN];
    const char *three = "acme/v1/x";
    const char *seven = "acme/v1/a/b/c/d/e";

    CU_ASSERT_EQUAL(lint(three, 4, 6, why), LINT_FEW_LEVELS);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "3 levels"));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "at least 4"));
    CU_ASSERT_EQUAL(lint(three, 3, 6, why), 0);
    CU_ASSERT_EQUAL(lint(seven, 4, 6, why), LINT_MANY_LEVELS);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "7 levels"));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "at most 6"));
    CU_ASSERT_EQUAL(lint(seven, 4, 7, why), 0);
    /* Bounds apply only when positive. */
    CU_ASSERT_EQUAL(lint(three, 0, 0, why), 0);
    CU_ASSERT_EQUAL(lint(seven, -1, -1, why), 0);
    CU_ASSERT_EQUAL(lint(seven, 0, 2, why), LINT_MANY_LEVELS);
    CU_ASSERT_EQUAL(lint(three, 9, 0, why), LINT_FEW_LEVELS);
    /* Empty levels count as levels. */
    CU_ASSERT_EQUAL(lint("acme/v1/", 3, 3, why), LINT_EMPTY_LEVEL);
}

static void TEST_lint_no_version(void)
{
    static const char *const bad[] = {
        "acme/planta-1/x", "acme/v/x", "acme/v1a/x", "acme/1/x",
        "acme/va/x", "acme/v-1/x", "acme/v1_2/x", "acme",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[WHYLEN] = "";
        unsigned got = lint(bad[i], 0, 0, why);
        if (got != LINT_NO_VERSION)
            fprintf(stderr, "\n  \"%s\": 0x%x %s\n", bad[i], got, why);
        CU_ASSERT_EQUAL(got, LINT_NO_VERSION);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 2"));
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "version"));
    }
    char why[WHYLEN];
    CU_ASSERT_EQUAL(lint("acme/planta-1/x", 0, 0, why), LINT_NO_VERSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "\"planta-1\""));
    CU_ASSERT_EQUAL(lint("acme/V1/x", 0, 0, why), LINT_NO_VERSION | LINT_UPPERCASE);
    CU_ASSERT_EQUAL(lint("acme/v123/x", 0, 0, why), 0);
    /* Only the second level counts. */
    CU_ASSERT_EQUAL(lint("v1/acme/x", 0, 0, why), LINT_NO_VERSION);
}

static void TEST_lint_dollar(void)
{
    char why[WHYLEN];

    CU_ASSERT_EQUAL(lint("$acme/v1/x", 0, 0, why), LINT_DOLLAR);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 1 \"$acme\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "'$'"));
    CU_ASSERT_EQUAL(lint("$SYS/broker/uptime", 0, 0, why),
                    LINT_DOLLAR | LINT_UPPERCASE | LINT_NO_VERSION);
    /* '$' further in is just an odd character. */
    CU_ASSERT_EQUAL(lint("acme/v1/$x", 0, 0, why), LINT_ODD_CHAR);
    CU_ASSERT_EQUAL(lint("a$/v1/x", 0, 0, why), LINT_ODD_CHAR);
    /* A second '$' in the first level is odd on its own. */
    CU_ASSERT_EQUAL(lint("$$/v1/x", 0, 0, why), LINT_DOLLAR | LINT_ODD_CHAR);
}

static void TEST_lint_combinations(void)
{
    char why[WHYLEN];

    CU_ASSERT_EQUAL(lint("Acme/v1/Planta 1/sens\xC3\xB3r/+", 4, 4, why),
                    LINT_UPPERCASE | LINT_SPACE | LINT_NON_ASCII |
                    LINT_WILDCARD | LINT_MANY_LEVELS);
    /* The explanation is about the lowest rule bit, at its first level. */
    CU_ASSERT_STRING_EQUAL(why, "level 1 \"Acme\" has upper case letters");

    CU_ASSERT_EQUAL(lint("acme/v1/planta 1/Norte", 0, 0, why),
                    LINT_SPACE | LINT_UPPERCASE);
    CU_ASSERT_STRING_EQUAL(why, "level 4 \"Norte\" has upper case letters");

    CU_ASSERT_EQUAL(lint("acme/v1/Planta 1", 0, 0, why), LINT_UPPERCASE | LINT_SPACE);
    CU_ASSERT_EQUAL(lint("$x/y//a.b/#", 6, 0, why),
                    LINT_DOLLAR | LINT_NO_VERSION | LINT_EMPTY_LEVEL |
                    LINT_ODD_CHAR | LINT_WILDCARD | LINT_FEW_LEVELS);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "level 4 \"a.b\""));

    /* Every rule at once. */
    unsigned all = lint("$X/s\xC3\xB3 ./+//", 0, 3, why);
    CU_ASSERT_EQUAL(all, 0x3FFu & ~(unsigned)LINT_FEW_LEVELS);
    CU_ASSERT_EQUAL(lint("$X/s\xC3\xB3 ./+//", 99, 0, why) & 0x3FFu,
                    0x3FFu & ~(unsigned)LINT_MANY_LEVELS);
}

static void TEST_lint_why_buffer(void)
{
    char small[10];

    /* why is optional; a short one is cut but stays a string. */
    CU_ASSERT_EQUAL(topic_lint("acme/v1/Planta-1", 0, 0, NULL, 0), LINT_UPPERCASE);
    memset(small, 'x', sizeof small);
    CU_ASSERT_EQUAL(topic_lint("acme/v1/Planta-1", 0, 0, small, sizeof small),
                    LINT_UPPERCASE);
    CU_ASSERT_EQUAL(strlen(small), sizeof small - 1);
    CU_ASSERT_EQUAL(strncmp(small, "level 3 \"", 9), 0);

    /* A huge level is cut in the explanation, not copied whole. */
    char *t = malloc(2000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    strcpy(t, "acme/v1/");
    memset(t + 8, 'A', 1000);
    t[1008] = '\0';
    char why[WHYLEN];
    CU_ASSERT_EQUAL(lint(t, 0, 0, why), LINT_UPPERCASE);
    CU_ASSERT(strlen(why) < 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "...\""));
    free(t);
}

static void TEST_lint_names(void)
{
    static const struct {
        unsigned rule;
        const char *name;
    } names[] = {
        { LINT_UPPERCASE, "uppercase" },
        { LINT_NON_ASCII, "non-ascii" },
        { LINT_SPACE, "space" },
        { LINT_ODD_CHAR, "odd-char" },
        { LINT_WILDCARD, "wildcard" },
        { LINT_EMPTY_LEVEL, "empty-level" },
        { LINT_FEW_LEVELS, "few-levels" },
        { LINT_MANY_LEVELS, "many-levels" },
        { LINT_NO_VERSION, "no-version" },
        { LINT_DOLLAR, "dollar" },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CU_ASSERT_STRING_EQUAL(topic_lint_name(names[i].rule), names[i].name);
    /* Not exactly one known bit. */
    CU_ASSERT_STRING_EQUAL(topic_lint_name(0), "unknown");
    CU_ASSERT_STRING_EQUAL(topic_lint_name(LINT_UPPERCASE | LINT_SPACE), "unknown");
    CU_ASSERT_STRING_EQUAL(topic_lint_name(1u << 10), "unknown");
}

/* ------------------------------------------------------------ register */

int init_topics_tests(void)
{
    CU_pSuite suite = CU_add_suite("topics", NULL, NULL);
    if (!suite) {
        printf("Error adding CUnit topics test suite.\n");
        return 1;
    }

    if (0
        || !CU_add_test(suite, "Valid names", TEST_valid_name_ok)
        || !CU_add_test(suite, "Invalid names", TEST_valid_name_bad)
        || !CU_add_test(suite, "Length limit", TEST_valid_length_limit)
        || !CU_add_test(suite, "Valid UTF-8", TEST_valid_utf8_good)
        || !CU_add_test(suite, "Invalid UTF-8", TEST_valid_utf8_bad)
        || !CU_add_test(suite, "Valid filters", TEST_valid_filter_ok)
        || !CU_add_test(suite, "Invalid filters", TEST_valid_filter_bad)
        || !CU_add_test(suite, "Matching table", TEST_matches_table)
        || !CU_add_test(suite, "Matching degenerate input", TEST_matches_degenerate)
        || !CU_add_test(suite, "Levels", TEST_levels)
        || !CU_add_test(suite, "Level", TEST_level)
        || !CU_add_test(suite, "Lint clean", TEST_lint_clean)
        || !CU_add_test(suite, "Lint uppercase", TEST_lint_uppercase)
        || !CU_add_test(suite, "Lint non-ascii", TEST_lint_non_ascii)
        || !CU_add_test(suite, "Lint space", TEST_lint_space)
        || !CU_add_test(suite, "Lint odd char", TEST_lint_odd_char)
        || !CU_add_test(suite, "Lint wildcard", TEST_lint_wildcard)
        || !CU_add_test(suite, "Lint empty level", TEST_lint_empty_level)
        || !CU_add_test(suite, "Lint level count", TEST_lint_level_count)
        || !CU_add_test(suite, "Lint no version", TEST_lint_no_version)
        || !CU_add_test(suite, "Lint dollar", TEST_lint_dollar)
        || !CU_add_test(suite, "Lint combinations", TEST_lint_combinations)
        || !CU_add_test(suite, "Lint why buffer", TEST_lint_why_buffer)
        || !CU_add_test(suite, "Lint names", TEST_lint_names)
        ) {
        printf("Error adding topics CUnit tests.\n");
        return 1;
    }
    return 0;
}
