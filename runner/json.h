/*
 * json.h - a small JSON reader and writer, for the DevTools protocol that
 * drives headless Chromium (browser.c) and for values a page hands back.
 *
 * What it reads is untrusted (a student's page chooses what
 * Runtime.evaluate returns): json_parse never crashes nor reads past len
 * on malformed text, bounds the nesting (JSON_MAX_DEPTH) so a deep
 * [[[[... cannot exhaust the stack, and reports the first error with its
 * byte offset. Strings are unescaped, \uXXXX included (a surrogate pair
 * becomes one UTF-8 character, a lone surrogate U+FFFD); they may hold
 * NUL bytes (\u0000), so each keeps its length.
 */
#ifndef MQLAB_JSON_H
#define MQLAB_JSON_H

#include <stddef.h>

#define JSON_MAX_DEPTH 200

typedef enum {
    JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
} json_type_t;

typedef struct json json_t;
struct json {
    json_type_t type;
    char *key;            /* as a member of an object: its name (unescaped, NUL-terminated) */
    size_t key_len;
    double num;           /* JSON_NUMBER */
    char *str;            /* JSON_STRING: unescaped, NUL-terminated */
    size_t len;           /* ... and its length in bytes */
    json_t *child;        /* JSON_ARRAY, JSON_OBJECT: the first element or member */
    size_t count;         /* ... and how many */
    json_t *next;         /* the next element or member of the parent */
};

/* Parse text (len bytes, not necessarily NUL-terminated): one value,
 * with only white space around it. NULL on malformed text or out of
 * memory, with err (KIT_ERRLEN bytes, may be NULL) saying what and at
 * which byte. Free with json_free. */
json_t *json_parse(const char *text, size_t len, char *err);
void json_free(json_t *v);

/* The member key of an object (the first, if repeated), or NULL when v
 * is not an object or has no such member. */
const json_t *json_get(const json_t *v, const char *key);
/* Element i of an array, or NULL. */
const json_t *json_at(const json_t *v, size_t i);
/* Shorthands: the member's string (NULL when absent or not a string),
 * number (def when absent or not a number). */
const char *json_get_str(const json_t *v, const char *key);
double json_get_num(const json_t *v, const char *key, double def);

/* A growing text buffer for building JSON. On out of memory it sets
 * oom and stops growing; check oom before using data. */
typedef struct {
    char *data;
    size_t len, cap;
    int oom;
} json_buf_t;

void json_buf_add(json_buf_t *b, const char *s, size_t n);
void json_buf_puts(json_buf_t *b, const char *s);
void json_buf_printf(json_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s (n bytes) as a JSON string literal, quotes included: ", \ and
 * control characters escaped; bytes >= 0x80 are copied as they are. */
void json_buf_string(json_buf_t *b, const char *s, size_t n);
/* v written back as compact JSON text. */
void json_buf_value(json_buf_t *b, const json_t *v);
void json_buf_free(json_buf_t *b);

#endif
