/*
 * json_test.c - the JSON reader that parses what Chromium (and, through
 * Runtime.evaluate, a student's page) sends: values, escapes, and
 * malformed or hostile text that must fail cleanly, never crash.
 */
#include <CUnit/Basic.h>

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"

static json_t *parse(const char *s)
{
    char err[KIT_ERRLEN];
    return json_parse(s, strlen(s), err);
}

static void TEST_values(void)
{
    json_t *v = parse(" {\"a\": 1, \"b\": [true, false, null, -2.5e1], \"c\": {\"d\": \"x\"}, \"e\": 0} ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->type, JSON_OBJECT);
    CU_ASSERT_EQUAL(v->count, 4);
    CU_ASSERT_DOUBLE_EQUAL(json_get_num(v, "a", -1), 1, 1e-9);
    const json_t *b = json_get(v, "b");
    CU_ASSERT_EQUAL(b->count, 4);
    CU_ASSERT_EQUAL(json_at(b, 0)->type, JSON_TRUE);
    CU_ASSERT_EQUAL(json_at(b, 1)->type, JSON_FALSE);
    CU_ASSERT_EQUAL(json_at(b, 2)->type, JSON_NULL);
    CU_ASSERT_DOUBLE_EQUAL(json_at(b, 3)->num, -25, 1e-9);
    CU_ASSERT_PTR_NULL(json_at(b, 4));
    CU_ASSERT_STRING_EQUAL(json_get_str(json_get(v, "c"), "d"), "x");
    CU_ASSERT_PTR_NULL(json_get(v, "missing"));
    CU_ASSERT_PTR_NULL(json_get_str(v, "a"));          /* not a string */
    CU_ASSERT_DOUBLE_EQUAL(json_get_num(v, "c", 7), 7, 1e-9);
    json_free(v);
    /* Scalars at the top. */
    v = parse("\"s\"");
    CU_ASSERT_STRING_EQUAL(v->str, "s");
    json_free(v);
    v = parse("[]");
    CU_ASSERT_EQUAL(v->count, 0);
    json_free(v);
    v = parse("{}");
    CU_ASSERT_EQUAL(v->type, JSON_OBJECT);
    json_free(v);
}

static void TEST_escapes(void)
{
    json_t *v = parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_STRING_EQUAL(v->str, "a\"b\\c/d\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    json_free(v);
    /* A NUL inside: the length says it. */
    v = parse("\"x\\u0000y\"");
    CU_ASSERT_EQUAL(v->len, 3);
    CU_ASSERT(memcmp(v->str, "x\0y", 3) == 0);
    json_free(v);
    /* Lone surrogates become U+FFFD, the next character kept. */
    v = parse("\"\\ud800z\\udc00\"");
    CU_ASSERT_STRING_EQUAL(v->str, "\xef\xbf\xbdz\xef\xbf\xbd");
    json_free(v);
    v = parse("\"\\ud800\\u0041\"");
    CU_ASSERT_STRING_EQUAL(v->str, "\xef\xbf\xbd" "A");
    json_free(v);
    /* Escaped keys. */
    v = parse("{\"k\\u0065y\": 1}");
    CU_ASSERT_PTR_NOT_NULL(json_get(v, "key"));
    json_free(v);
}

static void TEST_malformed(void)
{
    static const char *const bad[] = {
        "", " ", "{", "}", "[", "[1,", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{a:1}",
        "{\"a\" 1}", "\"abc", "\"\\", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\u", "\"a\nb\"",
        "tru", "nul", "falsey", "01", "-", "1.", ".5", "1e", "1e+", "+1", "1 2", "[1] x", "NaN",
        "Infinity", "'s'", "[\"a\" \"b\"]", "{\"a\":1 \"b\":2}", "\"\\ud83d\\u\"", "\x01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[KIT_ERRLEN] = "";
        json_t *v = json_parse(bad[i], strlen(bad[i]), err);
        if (v) printf("\n  parsed but should not: [%s]\n", bad[i]);
        CU_ASSERT_PTR_NULL(v);
        CU_ASSERT(strstr(err, "malformed JSON at byte") != NULL);
        json_free(v);
    }
    /* NULL text, and text cut short by len (no NUL terminator needed). */
    CU_ASSERT_PTR_NULL(json_parse(NULL, 5, NULL));
    json_t *v = json_parse("[1,2]xyz", 5, NULL);
    CU_ASSERT_PTR_NOT_NULL(v);
    json_free(v);
    CU_ASSERT_PTR_NULL(json_parse("[1,2]", 4, NULL));
    CU_ASSERT_PTR_NULL(json_parse("\"ab\\", 4, NULL));
}

static void TEST_depth_and_size(void)
{
    /* Deep nesting is refused, not a stack overflow. */
    size_t n = 100000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    char err[KIT_ERRLEN] = "";
    CU_ASSERT_PTR_NULL(json_parse(deep, 2 * n, err));
    CU_ASSERT(strstr(err, "nested too deep") != NULL);
    /* Just under the limit parses. */
    size_t ok = JSON_MAX_DEPTH;
    memset(deep, '[', ok);
    memset(deep + ok, ']', ok);
    json_t *v = json_parse(deep, 2 * ok, err);
    CU_ASSERT_PTR_NOT_NULL(v);
    json_free(v);
    free(deep);
    /* A wide array (freed without deep recursion). */
    size_t w = 200000;
    char *wide = malloc(2 * w + 2);
    wide[0] = '[';
    for (size_t i = 0; i < w; i++) { wide[1 + 2 * i] = '0'; wide[2 + 2 * i] = ','; }
    wide[2 * w] = ']';
    v = json_parse(wide, 2 * w + 1, err);
    CU_ASSERT_PTR_NOT_NULL(v);
    if (v) CU_ASSERT_EQUAL(v->count, w);
    json_free(v);
    free(wide);
}

static void TEST_write(void)
{
    json_buf_t b = { 0 };
    json_buf_string(&b, "a\"b\\c\n\x01" "\xc3\xa9", 9);
    CU_ASSERT_STRING_EQUAL(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"");
    json_buf_free(&b);
    /* Round trip: parse, write, parse again, same text. */
    const char *src = "{\"a\":[1,2.5,-3,true,false,null,\"x\\u0000y\"],\"b\":{\"c\":{}},\"big\":1e300}";
    json_t *v = parse(src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    json_buf_value(&b, v);
    json_t *w = json_parse(b.data, b.len, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    json_buf_t b2 = { 0 };
    json_buf_value(&b2, w);
    CU_ASSERT_STRING_EQUAL(b.data, b2.data);
    CU_ASSERT(strstr(b.data, "[1,2.5,-3,true,false,null,\"x\\u0000y\"]") != NULL);
    json_buf_free(&b);
    json_buf_free(&b2);
    json_free(v);
    json_free(w);
}

int init_json_tests(void)
{
    CU_pSuite s = CU_add_suite("json", NULL, NULL);
    if (!s) return -1;
    if (!CU_add_test(s, "values and lookups", TEST_values)
        || !CU_add_test(s, "string escapes, \\u and surrogates", TEST_escapes)
        || !CU_add_test(s, "malformed text fails cleanly", TEST_malformed)
        || !CU_add_test(s, "deep nesting refused, wide arrays fine", TEST_depth_and_size)
        || !CU_add_test(s, "writing and round trip", TEST_write))
        return -1;
    return 0;
}
