/*
 * topics.h - MQTT topic names and filters: validation, matching, and the
 * syntactic part of the course's topic-design rules (the lint).
 *
 * Pure functions, no I/O, no Lua: the CUnit tests call them directly.
 */
#ifndef MQLAB_TOPICS_H
#define MQLAB_TOPICS_H

#include <stddef.h>

/* A topic name someone may PUBLISH to: not empty, valid UTF-8, at most
 * 65535 bytes, no NUL, no '+' or '#'. Returns 1 if valid; otherwise 0 and
 * a reason in why (may be NULL). */
int topic_valid_name(const char *topic, char *why, size_t whylen);

/* A filter someone may SUBSCRIBE to: same as a name, but '+' may stand
 * alone in a level and '#' alone in the last level. */
int topic_valid_filter(const char *filter, char *why, size_t whylen);

/* MQTT 3.1.1 matching (section 4.7): '+' one level, '#' this level and
 * everything below (including the parent: "a/#" matches "a"), and a
 * filter starting with a wildcard does not match topics starting with
 * '$'. Assumes both are valid; returns 1 on match. */
int topic_matches(const char *filter, const char *topic);

/* Number of levels ("a/b/c" has 3, "a//c" has 3, "/a" has 2). */
int topic_levels(const char *topic);

/* Copy level `index` (0-based) into out; returns its length or -1. */
int topic_level(const char *topic, int index, char *out, size_t outlen);

/* The lint: course rules a single topic can break by itself. */
enum {
    LINT_UPPERCASE    = 1 << 0,  /* "Planta-1": lower case only */
    LINT_NON_ASCII    = 1 << 1,  /* "sensór": no accents or other non-ASCII */
    LINT_SPACE        = 1 << 2,  /* "planta 1": no spaces */
    LINT_ODD_CHAR     = 1 << 3,  /* anything but a-z 0-9 '-' '_' in a level */
    LINT_WILDCARD     = 1 << 4,  /* '+' or '#' inside a name */
    LINT_EMPTY_LEVEL  = 1 << 5,  /* "a//b", a leading or trailing '/' */
    LINT_FEW_LEVELS   = 1 << 6,  /* fewer than min_levels */
    LINT_MANY_LEVELS  = 1 << 7,  /* more than max_levels */
    LINT_NO_VERSION   = 1 << 8,  /* second level is not v<digits> ("acme/v1/...") */
    LINT_DOLLAR       = 1 << 9   /* starts with '$' (reserved for the broker) */
};

/* Returns the OR of the LINT_* rules the topic breaks (0: clean). When
 * why is given, it receives a short English explanation of the first
 * broken rule, naming the offending level. */
unsigned topic_lint(const char *topic, int min_levels, int max_levels,
                    char *why, size_t whylen);

/* Stable short name of one LINT_* bit ("uppercase", "non-ascii", ...). */
const char *topic_lint_name(unsigned rule);

#endif
