/*
 * topics.c - MQTT topic names and filters: validation, matching (MQTT 3.1.1
 * section 4.7) and the lint for the course's topic-design rules.
 *
 * Everything here is pure: no allocation, no I/O, no global state, so the
 * Lua binding and the CUnit tests call it directly. Topics are walked in
 * place, one level at a time, instead of being split into copies.
 */
#include "topics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TOPIC_MAX_BYTES 65535u

/* How much of a level the explanations quote: enough to recognise it, not
 * so much that a 64 KiB topic floods a report. */
#define QUOTE_MAX_BYTES 48
#define QUOTE_BUFLEN 256

/* ---------------------------------------------------------------- UTF-8 */

/*
 * Decode one UTF-8 sequence of s[0..len). On success returns its length
 * (1-4) and stores the code point; on failure returns 0 and a reason.
 * Overlongs, surrogates and code points past U+10FFFF are refused because
 * the MQTT spec forbids them, so a broker would drop the connection.
 */
static size_t utf8_decode(const unsigned char *s, size_t len,
                          unsigned long *cp, const char **reason)
{
    unsigned char b = s[0];
    size_t n;
    unsigned long c;

    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b == 0xC0 || b == 0xC1) {
        *reason = "overlong encoding";
        return 0;
    }
    if (b < 0xC0) {
        *reason = "unexpected continuation byte";
        return 0;
    }
    if (b < 0xE0) {
        n = 2;
        c = b & 0x1F;
    } else if (b < 0xF0) {
        n = 3;
        c = b & 0x0F;
    } else if (b < 0xF5) {
        n = 4;
        c = b & 0x07;
    } else if (b < 0xF8) {
        *reason = "code point beyond U+10FFFF";
        return 0;
    } else {
        *reason = "byte that never appears in UTF-8";
        return 0;
    }
    for (size_t k = 1; k < n; k++) {
        if (k >= len || (s[k] & 0xC0) != 0x80) {
            *reason = "truncated sequence";
            return 0;
        }
        c = (c << 6) | (s[k] & 0x3F);
    }
    if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000)) {
        *reason = "overlong encoding";
        return 0;
    }
    if (c > 0x10FFFF) {
        *reason = "code point beyond U+10FFFF";
        return 0;
    }
    if (c >= 0xD800 && c <= 0xDFFF) {
        *reason = "UTF-16 surrogate";
        return 0;
    }
    *cp = c;
    return n;
}

/*
 * Check a whole string as MQTT text. Besides well-formed UTF-8 this also
 * refuses what the spec says a sender SHOULD NOT use (control characters,
 * non-characters), because Mosquitto 2.0 refuses them too: a topic we call
 * valid must be one the broker accepts. Returns 0 if valid, otherwise the
 * 1-based byte position of the problem.
 */
static size_t utf8_check(const char *str, size_t len, char *reason, size_t rlen)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    while (i < len) {
        unsigned long cp = 0;
        const char *r = NULL;
        size_t n = utf8_decode(s + i, len - i, &cp, &r);
        if (n == 0) {
            snprintf(reason, rlen, "%s", r);
            return i + 1;
        }
        if (cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F)) {
            snprintf(reason, rlen, "control character U+%04lX", cp);
            return i + 1;
        }
        if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
            snprintf(reason, rlen, "non-character U+%04lX", cp);
            return i + 1;
        }
        i += n;
    }
    return 0;
}

/* ------------------------------------------------------------- helpers */

static void set_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (!why || whylen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/*
 * Put s[0..n) in double quotes for an explanation. Valid UTF-8 is kept as
 * is (a student should see "sensór", not escapes); anything that would
 * garble a terminal or a JSON report becomes \xNN, and long levels are cut.
 */
static void quote(char *dst, size_t dstlen, const char *src, size_t n)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t o = 0, i = 0;

#define PUT(ch) do { if (o + 1 < dstlen) dst[o++] = (char)(ch); } while (0)
    if (dstlen == 0)
        return;
    PUT('"');
    while (i < n) {
        if (i >= QUOTE_MAX_BYTES) {
            PUT('.'); PUT('.'); PUT('.');
            break;
        }
        unsigned long cp = 0;
        const char *r = NULL;
        size_t len = utf8_decode(s + i, n - i, &cp, &r);
        if (len > 1 && cp > 0x9F) {
            for (size_t k = 0; k < len; k++)
                PUT(s[i + k]);
            i += len;
        } else if (s[i] >= 0x20 && s[i] < 0x7F) {
            if (s[i] == '"' || s[i] == '\\')
                PUT('\\');
            PUT(s[i]);
            i++;
        } else {
            char hex[5];
            snprintf(hex, sizeof hex, "\\x%02X", s[i]);
            for (int k = 0; k < 4; k++)
                PUT(hex[k]);
            i++;
        }
    }
    PUT('"');
    dst[o] = '\0';
#undef PUT
}

/* Quote one character (the first one at s) in single quotes. */
static void quote_char(char *dst, size_t dstlen, const char *src, size_t n)
{
    char tmp[QUOTE_BUFLEN];
    const unsigned char *s = (const unsigned char *)src;
    unsigned long cp = 0;
    const char *r = NULL;
    size_t len = utf8_decode(s, n, &cp, &r);

    if (len == 0)
        len = 1;
    quote(tmp, sizeof tmp, src, len);
    /* Reuse the double-quote escaping, then swap the quote marks. */
    size_t tl = strlen(tmp);
    if (tl >= 2) {
        tmp[0] = '\'';
        tmp[tl - 1] = '\'';
    }
    snprintf(dst, dstlen, "%s", tmp);
}

/* Length of the level starting at s (up to the next '/' or the end). */
static size_t level_len(const char *s)
{
    size_t n = 0;
    while (s[n] && s[n] != '/')
        n++;
    return n;
}

/* ---------------------------------------------------------- validation */

/* Common part of names and filters. is_filter selects the wildcard rules. */
static int valid_topic(const char *topic, int is_filter, char *why, size_t whylen)
{
    char reason[96];
    char q[QUOTE_BUFLEN];
    const char *what = is_filter ? "filter" : "topic";

    if (!topic) {
        set_why(why, whylen, "no %s given", what);
        return 0;
    }
    if (topic[0] == '\0') {
        set_why(why, whylen, "the %s is empty", what);
        return 0;
    }
    /* strnlen bounds the scan of a huge string to just past the limit. */
    size_t len = strnlen(topic, TOPIC_MAX_BYTES + 1);
    if (len > TOPIC_MAX_BYTES) {
        set_why(why, whylen, "the %s is longer than %u bytes", what, TOPIC_MAX_BYTES);
        return 0;
    }
    size_t bad = utf8_check(topic, len, reason, sizeof reason);
    if (bad) {
        set_why(why, whylen, "the %s is not valid UTF-8 at byte %zu (%s)",
                what, bad, reason);
        return 0;
    }

    const char *lv = topic;
    for (int index = 1;; index++) {
        size_t n = level_len(lv);
        int last = lv[n] == '\0';
        for (size_t i = 0; i < n; i++) {
            char c = lv[i];
            if (c != '+' && c != '#')
                continue;
            quote(q, sizeof q, lv, n);
            if (!is_filter) {
                set_why(why, whylen, "level %d %s has the wildcard '%c': "
                        "wildcards are only allowed in subscriptions", index, q, c);
                return 0;
            }
            if (n != 1) {
                set_why(why, whylen, "level %d %s: '%c' must fill a whole level",
                        index, q, c);
                return 0;
            }
            if (c == '#' && !last) {
                set_why(why, whylen, "level %d %s: '#' must be the last level",
                        index, q);
                return 0;
            }
        }
        if (last)
            break;
        lv += n + 1;
    }
    return 1;
}

int topic_valid_name(const char *topic, char *why, size_t whylen)
{
    return valid_topic(topic, 0, why, whylen);
}

int topic_valid_filter(const char *filter, char *why, size_t whylen)
{
    return valid_topic(filter, 1, why, whylen);
}

/* ------------------------------------------------------------ matching */

int topic_matches(const char *filter, const char *topic)
{
    if (!filter || !topic || !filter[0] || !topic[0])
        return 0;
    /* Section 4.7.2: "$SYS/..." and friends are invisible to filters that
     * start with a wildcard, so "#" does not drown a client in broker
     * statistics. An explicit "$SYS/#" still matches. */
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return 0;

    const char *f = filter, *t = topic;
    for (;;) {
        /* Both f and t are at the start of a level here. */
        if (f[0] == '#')
            return 1;
        size_t fn = level_len(f), tn = level_len(t);
        if (!(fn == 1 && f[0] == '+') && (fn != tn || memcmp(f, t, fn) != 0))
            return 0;
        f += fn;
        t += tn;
        if (*f == '\0')
            return *t == '\0';
        if (*t == '\0')
            /* The topic ran out: only a final "/#" still matches, because
             * '#' includes the parent level ("a/#" matches "a"). */
            return strcmp(f, "/#") == 0;
        f++;
        t++;
    }
}

/* -------------------------------------------------------------- levels */

int topic_levels(const char *topic)
{
    int n = 1;

    if (!topic || !topic[0])
        return 0;
    for (const char *p = topic; *p; p++)
        if (*p == '/')
            n++;
    return n;
}

/*
 * out may be NULL to ask only for the length. When out is given but too
 * small for the level and its NUL, nothing is truncated silently: out gets
 * "" and the result is -1, as for a missing level.
 */
int topic_level(const char *topic, int index, char *out, size_t outlen)
{
    if (out && outlen > 0)
        out[0] = '\0';
    if (!topic || !topic[0] || index < 0)
        return -1;

    const char *lv = topic;
    for (int i = 0; i < index; i++) {
        lv += level_len(lv);
        if (*lv == '\0')
            return -1;
        lv++;
    }
    size_t n = level_len(lv);
    if (out) {
        if (n + 1 > outlen)
            return -1;
        memcpy(out, lv, n);
        out[n] = '\0';
    }
    return (int)n;
}

/* ---------------------------------------------------------------- lint */

#define LINT_NRULES 10

static const char *const lint_names[LINT_NRULES] = {
    "uppercase", "non-ascii", "space", "odd-char", "wildcard",
    "empty-level", "few-levels", "many-levels", "no-version", "dollar"
};

const char *topic_lint_name(unsigned rule)
{
    for (int i = 0; i < LINT_NRULES; i++)
        if (rule == (1u << i))
            return lint_names[i];
    return "unknown";
}

/* Where a rule was first broken, to explain it. */
struct lint_hit {
    int level;              /* 1-based */
    const char *start;      /* the level */
    size_t len;
    size_t at;              /* offending byte within the level */
};

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Classify one byte of a level as the rule it breaks (0: allowed). */
static unsigned lint_byte(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')
        return 0;
    if (c >= 'A' && c <= 'Z')
        return LINT_UPPERCASE;
    if (c >= 0x80)
        return LINT_NON_ASCII;
    if (is_space(c))
        return LINT_SPACE;
    if (c == '+' || c == '#')
        return LINT_WILDCARD;
    return LINT_ODD_CHAR;
}

static int is_version(const char *s, size_t n)
{
    if (n < 2 || s[0] != 'v')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static void lint_note(unsigned *rules, struct lint_hit *hits, unsigned rule,
                      int level, const char *start, size_t len, size_t at)
{
    if (*rules & rule)
        return;
    *rules |= rule;
    for (int i = 0; i < LINT_NRULES; i++) {
        if (rule == (1u << i)) {
            hits[i].level = level;
            hits[i].start = start;
            hits[i].len = len;
            hits[i].at = at;
        }
    }
}

static void lint_explain(unsigned rule, const struct lint_hit *h, int levels,
                         int min_levels, int max_levels, char *why, size_t whylen)
{
    char q[QUOTE_BUFLEN], c[QUOTE_BUFLEN];

    q[0] = c[0] = '\0';
    if (h->start)
        quote(q, sizeof q, h->start, h->len);
    if (h->start && h->at < h->len)
        quote_char(c, sizeof c, h->start + h->at, h->len - h->at);
    switch (rule) {
    case LINT_UPPERCASE:
        set_why(why, whylen, "level %d %s has upper case letters", h->level, q);
        break;
    case LINT_NON_ASCII:
        set_why(why, whylen, "level %d %s has the non-ASCII character %s "
                "(no accents or other symbols)", h->level, q, c);
        break;
    case LINT_SPACE:
        if (h->start[h->at] == ' ')
            set_why(why, whylen, "level %d %s has a space", h->level, q);
        else
            set_why(why, whylen, "level %d %s has white space (%s)", h->level, q, c);
        break;
    case LINT_ODD_CHAR:
        set_why(why, whylen, "level %d %s has the character %s; only a-z, 0-9, "
                "'-' and '_' are allowed", h->level, q, c);
        break;
    case LINT_WILDCARD:
        set_why(why, whylen, "level %d %s has the wildcard %s; wildcards are for "
                "subscriptions, never in topic names", h->level, q, c);
        break;
    case LINT_EMPTY_LEVEL:
        if (levels == 0)
            set_why(why, whylen, "the topic is empty");
        else if (h->level == 1)
            set_why(why, whylen, "level 1 is empty (the topic starts with '/')");
        else if (h->level == levels)
            set_why(why, whylen, "level %d is empty (the topic ends with '/')", h->level);
        else
            set_why(why, whylen, "level %d is empty (\"//\" in the topic)", h->level);
        break;
    case LINT_FEW_LEVELS:
        set_why(why, whylen, "the topic has %d level%s, at least %d expected",
                levels, levels == 1 ? "" : "s", min_levels);
        break;
    case LINT_MANY_LEVELS:
        set_why(why, whylen, "the topic has %d levels, at most %d expected",
                levels, max_levels);
        break;
    case LINT_NO_VERSION:
        if (h->start)
            set_why(why, whylen, "level 2 %s is not a version such as \"v1\" "
                    "(e.g. acme/v1/...)", q);
        else
            set_why(why, whylen, "there is no level 2 with a version such as "
                    "\"v1\" (e.g. acme/v1/...)");
        break;
    case LINT_DOLLAR:
        set_why(why, whylen, "level 1 %s starts with '$', which is reserved "
                "for the broker", q);
        break;
    default:
        set_why(why, whylen, "unknown rule");
        break;
    }
}

unsigned topic_lint(const char *topic, int min_levels, int max_levels,
                    char *why, size_t whylen)
{
    struct lint_hit hits[LINT_NRULES];
    unsigned rules = 0;
    int levels = topic_levels(topic);

    memset(hits, 0, sizeof hits);
    if (why && whylen > 0)
        why[0] = '\0';

    if (levels == 0) {
        lint_note(&rules, hits, LINT_EMPTY_LEVEL, 0, NULL, 0, 0);
        lint_note(&rules, hits, LINT_NO_VERSION, 2, NULL, 0, 0);
    } else {
        const char *lv = topic;
        for (int index = 1; index <= levels; index++) {
            size_t n = level_len(lv);
            if (n == 0)
                lint_note(&rules, hits, LINT_EMPTY_LEVEL, index, lv, 0, 0);
            /* A leading '$' is its own rule, not an odd character too. */
            size_t first = (index == 1 && lv[0] == '$') ? 1 : 0;
            if (first)
                lint_note(&rules, hits, LINT_DOLLAR, 1, lv, n, 0);
            for (size_t i = first; i < n; i++) {
                unsigned r = lint_byte((unsigned char)lv[i]);
                if (r)
                    lint_note(&rules, hits, r, index, lv, n, i);
            }
            if (index == 2 && !is_version(lv, n))
                lint_note(&rules, hits, LINT_NO_VERSION, 2, lv, n, 0);
            lv += n + 1;
        }
        if (levels < 2)
            lint_note(&rules, hits, LINT_NO_VERSION, 2, NULL, 0, 0);
    }
    if (min_levels > 0 && levels < min_levels)
        lint_note(&rules, hits, LINT_FEW_LEVELS, 0, NULL, 0, 0);
    if (max_levels > 0 && levels > max_levels)
        lint_note(&rules, hits, LINT_MANY_LEVELS, 0, NULL, 0, 0);

    /* "First" broken rule means the lowest LINT_* bit, so the explanation
     * is stable whatever order the levels were scanned in. */
    for (int i = 0; i < LINT_NRULES && rules; i++) {
        if (rules & (1u << i)) {
            lint_explain(1u << i, &hits[i], levels, min_levels, max_levels,
                         why, whylen);
            break;
        }
    }
    return rules;
}
