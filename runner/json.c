/*
 * json.c - see json.h. A recursive-descent reader over (text, len) that
 * never looks past len, with the depth bounded, and a buffer writer.
 */
#include "json.h"
#include "util.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t len, pos;
    int depth;
    char *err;
    int failed;
} parser_t;

static json_t *fail(parser_t *p, const char *what)
{
    if (!p->failed) {
        p->failed = 1;
        kit_seterr(p->err, KIT_EINVAL, "malformed JSON at byte %zu: %s", p->pos, what);
    }
    return NULL;
}

static void skip_ws(parser_t *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int literal(parser_t *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return 0;
    p->pos += n;
    return 1;
}

static int hex4(parser_t *p, unsigned *out)
{
    if (p->len - p->pos < 4) return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + (size_t)i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    p->pos += 4;
    *out = v;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string literal at p->pos (on its opening quote). The unescaped text
 * is never longer than the literal, so one allocation of that size is
 * enough. */
static int parse_string(parser_t *p, char **out, size_t *outlen)
{
    p->pos++;   /* the quote */
    size_t start = p->pos, end = start;
    /* Find the closing quote first, to size the buffer. */
    while (end < p->len && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) { fail(p, "unterminated string"); return -1; }
    char *o = malloc(end - start + 1);
    if (!o) { fail(p, "out of memory"); return -1; }
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) { free(o); fail(p, "control character in a string"); return -1; }
        if (c != '\\') { o[n++] = (char)c; p->pos++; continue; }
        p->pos++;
        char e = p->s[p->pos++];
        switch (e) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (p->pos > end || !hex4(p, &cp) || p->pos > end) {
                free(o); fail(p, "bad \\u escape"); return -1;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* A high surrogate: with a low one after it, one code
                 * point; alone, U+FFFD. */
                size_t save = p->pos;
                if (end - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
                    p->pos += 2;
                    if (hex4(p, &lo) && lo >= 0xDC00 && lo <= 0xDFFF)
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    else { p->pos = save; cp = 0xFFFD; }
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            /* \uXXXX is 6 bytes of input and at most 3 of output; a pair
             * is 12 and 4: the buffer is big enough. */
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            free(o); fail(p, "bad escape in a string"); return -1;
        }
    }
    if (p->pos != end) { free(o); fail(p, "bad escape at the end of a string"); return -1; }
    p->pos = end + 1;
    o[n] = '\0';
    *out = o;
    *outlen = n;
    return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int parse_number(parser_t *p, double *out)
{
    size_t start = p->pos, i = p->pos;
    if (i < p->len && p->s[i] == '-') i++;
    if (i >= p->len || !is_digit(p->s[i])) { fail(p, "bad number"); return -1; }
    if (p->s[i] == '0') i++;
    else while (i < p->len && is_digit(p->s[i])) i++;
    if (i < p->len && p->s[i] == '.') {
        i++;
        if (i >= p->len || !is_digit(p->s[i])) { p->pos = i; fail(p, "bad number"); return -1; }
        while (i < p->len && is_digit(p->s[i])) i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-')) i++;
        if (i >= p->len || !is_digit(p->s[i])) { p->pos = i; fail(p, "bad number"); return -1; }
        while (i < p->len && is_digit(p->s[i])) i++;
    }
    /* strtod wants a NUL-terminated copy; the grammar above has already
     * decided what the number is. */
    char small[64], *copy = small;
    size_t n = i - start;
    if (n >= sizeof small && !(copy = malloc(n + 1))) { fail(p, "out of memory"); return -1; }
    memcpy(copy, p->s + start, n);
    copy[n] = '\0';
    *out = strtod(copy, NULL);
    if (copy != small) free(copy);
    p->pos = i;
    return 0;
}

static json_t *parse_value(parser_t *p);

static json_t *new_value(parser_t *p, json_type_t t)
{
    json_t *v = calloc(1, sizeof *v);
    if (!v) return fail(p, "out of memory");
    v->type = t;
    return v;
}

/* An array or an object, at its opening bracket. */
static json_t *parse_container(parser_t *p, int object)
{
    if (++p->depth > JSON_MAX_DEPTH) return fail(p, "nested too deep");
    json_t *v = new_value(p, object ? JSON_OBJECT : JSON_ARRAY);
    if (!v) return NULL;
    char close = object ? '}' : ']';
    json_t **tail = &v->child;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        size_t key_len = 0;
        skip_ws(p);
        if (object) {
            if (p->pos >= p->len || p->s[p->pos] != '"') { fail(p, "expected a member name"); goto bad; }
            if (parse_string(p, &key, &key_len) != 0) goto bad;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') { free(key); fail(p, "expected ':'"); goto bad; }
            p->pos++;
        }
        json_t *item = parse_value(p);
        if (!item) { free(key); goto bad; }
        item->key = key;
        item->key_len = key_len;
        *tail = item;
        tail = &item->next;
        v->count++;
        skip_ws(p);
        if (p->pos >= p->len) { fail(p, object ? "unterminated object" : "unterminated array"); goto bad; }
        char c = p->s[p->pos++];
        if (c == close) break;
        if (c != ',') { p->pos--; fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'"); goto bad; }
    }
    p->depth--;
    return v;
bad:
    json_free(v);
    return NULL;
}

static json_t *parse_value(parser_t *p)
{
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, "expected a value");
    char c = p->s[p->pos];
    json_t *v;
    switch (c) {
    case '{': return parse_container(p, 1);
    case '[': return parse_container(p, 0);
    case '"':
        if (!(v = new_value(p, JSON_STRING))) return NULL;
        if (parse_string(p, &v->str, &v->len) != 0) { free(v); return NULL; }
        return v;
    case 't':
        if (!literal(p, "true")) return fail(p, "bad literal");
        return new_value(p, JSON_TRUE);
    case 'f':
        if (!literal(p, "false")) return fail(p, "bad literal");
        return new_value(p, JSON_FALSE);
    case 'n':
        if (!literal(p, "null")) return fail(p, "bad literal");
        return new_value(p, JSON_NULL);
    default:
        if (c == '-' || is_digit(c)) {
            double d;
            if (parse_number(p, &d) != 0) return NULL;
            if (!(v = new_value(p, JSON_NUMBER))) return NULL;
            v->num = d;
            return v;
        }
        return fail(p, "unexpected character");
    }
}

json_t *json_parse(const char *text, size_t len, char *err)
{
    parser_t p = { .s = text, .len = text ? len : 0, .err = err };
    json_t *v = parse_value(&p);
    if (!v) return NULL;
    skip_ws(&p);
    if (p.pos != p.len) {
        json_free(v);
        return fail(&p, "text after the value");
    }
    return v;
}

void json_free(json_t *v)
{
    /* Siblings iteratively, children recursively: the depth is bounded
     * by the parser, the width is not. */
    while (v) {
        json_t *next = v->next;
        json_free(v->child);
        free(v->key);
        free(v->str);
        free(v);
        v = next;
    }
}

const json_t *json_get(const json_t *v, const char *key)
{
    if (!v || v->type != JSON_OBJECT || !key) return NULL;
    size_t n = strlen(key);
    for (const json_t *m = v->child; m; m = m->next)
        if (m->key_len == n && memcmp(m->key, key, n) == 0) return m;
    return NULL;
}

const json_t *json_at(const json_t *v, size_t i)
{
    if (!v || v->type != JSON_ARRAY) return NULL;
    const json_t *e = v->child;
    while (e && i--) e = e->next;
    return e;
}

const char *json_get_str(const json_t *v, const char *key)
{
    const json_t *m = json_get(v, key);
    return m && m->type == JSON_STRING ? m->str : NULL;
}

double json_get_num(const json_t *v, const char *key, double def)
{
    const json_t *m = json_get(v, key);
    return m && m->type == JSON_NUMBER ? m->num : def;
}

/* ---- writing ---------------------------------------------------------- */

static int grow(json_buf_t *b, size_t more)
{
    if (b->oom) return -1;
    if (b->len + more + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) {
        if (cap > SIZE_MAX / 2) { b->oom = 1; return -1; }
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d) { b->oom = 1; return -1; }
    b->data = d;
    b->cap = cap;
    return 0;
}

void json_buf_add(json_buf_t *b, const char *s, size_t n)
{
    if (grow(b, n) != 0) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void json_buf_puts(json_buf_t *b, const char *s)
{
    json_buf_add(b, s, strlen(s));
}

void json_buf_printf(json_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || grow(b, (size_t)n) != 0) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void json_buf_string(json_buf_t *b, const char *s, size_t n)
{
    json_buf_add(b, "\"", 1);
    size_t run = 0;   /* bytes copied as they are, flushed in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') { run++; continue; }
        json_buf_add(b, s + i - run, run);
        run = 0;
        switch (c) {
        case '"': json_buf_add(b, "\\\"", 2); break;
        case '\\': json_buf_add(b, "\\\\", 2); break;
        case '\n': json_buf_add(b, "\\n", 2); break;
        case '\r': json_buf_add(b, "\\r", 2); break;
        case '\t': json_buf_add(b, "\\t", 2); break;
        default: json_buf_printf(b, "\\u%04x", c);
        }
    }
    json_buf_add(b, s + n - run, run);
    json_buf_add(b, "\"", 1);
}

void json_buf_value(json_buf_t *b, const json_t *v)
{
    if (!v) { json_buf_puts(b, "null"); return; }
    switch (v->type) {
    case JSON_NULL: json_buf_puts(b, "null"); break;
    case JSON_TRUE: json_buf_puts(b, "true"); break;
    case JSON_FALSE: json_buf_puts(b, "false"); break;
    case JSON_NUMBER:
        if (!isfinite(v->num)) json_buf_puts(b, "null");   /* 1e999 parses as inf */
        else if (v->num == floor(v->num) && fabs(v->num) < 9007199254740992.0)
            json_buf_printf(b, "%.0f", v->num);
        else json_buf_printf(b, "%.17g", v->num);
        break;
    case JSON_STRING: json_buf_string(b, v->str, v->len); break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        json_buf_add(b, v->type == JSON_ARRAY ? "[" : "{", 1);
        for (const json_t *e = v->child; e; e = e->next) {
            if (e != v->child) json_buf_add(b, ",", 1);
            if (v->type == JSON_OBJECT) {
                json_buf_string(b, e->key ? e->key : "", e->key_len);
                json_buf_add(b, ":", 1);
            }
            json_buf_value(b, e);
        }
        json_buf_add(b, v->type == JSON_ARRAY ? "]" : "}", 1);
        break;
    }
}

void json_buf_free(json_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
