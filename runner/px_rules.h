/*
 * px_rules.h - the fault proxy's rules, as a pure function: from one
 * packet and its connection's state to a verdict (its fate, how many
 * copies go out, a delay, a cut). No sockets, no clock, no locks: the
 * proxy calls it from its loop, unit tests call it on their own.
 *
 * The only state is the rules' own counters (how many packets each rule
 * has matched and acted on), which a verdict updates.
 */
#ifndef MQLAB_PX_RULES_H
#define MQLAB_PX_RULES_H

#include "proxy.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    px_rule r;
    int active;                 /* 0 after px_rules_clear */
    uint64_t matched;           /* matching packets since added */
    unsigned fired;             /* packets acted on (a cut counts once) */
    uint64_t bytes;             /* PX_CUT_BYTES: forwarded since added */
    int spent;                  /* PX_CUT_BYTES: has cut */
} px_rule_state;

typedef struct {
    px_rule_state *v;
    int n, cap;
} px_rules;

/* What the rules see of a connection. */
typedef struct {
    const char *client_id;      /* from its CONNECT; NULL before one */
    int blackhole;              /* it is a black hole already */
} px_connstate;

/* What becomes of one packet. */
typedef struct {
    int fate;                   /* px_fate */
    int copies;                 /* 0, 1 or 2 go out ... */
    uint64_t allow;             /* ... but only this many of their bytes
                                   (copies * size unless a byte budget
                                   cuts the packet in the middle) */
    int delay_ms;               /* hold them this long */
    int reorder;                /* rule holding it aside (PX_REORDER), -1 */
    int blackhole;              /* the connection becomes a black hole */
    int cut;                    /* rule whose cut ends the link after
                                   what goes out, -1 */
    uint64_t cut_no;            /* the cut rule's match number (0: bytes) */
    int refuse_ms;              /* refuse new connections after the cut */
} px_verdict;

/* Validate and add a copy of r. Its index, or -1 with err set. */
int px_rules_add(px_rules *rs, const px_rule *r, char *err);
/* Every rule stops acting; indexes stay valid for px_rules_fired. */
void px_rules_clear(px_rules *rs);
unsigned px_rules_fired(const px_rules *rs, int idx);
void px_rules_free(px_rules *rs);

/* The verdict on a packet of `type` and `size` bytes read in dir. */
void px_rules_judge(px_rules *rs, const px_connstate *cs, int dir, int type, size_t size, px_verdict *v);
/* 1 when rule idx (active) matches such a packet: a packet held aside
 * by it is overtaken by those. */
int px_rules_match(const px_rules *rs, int idx, const px_connstate *cs, int dir, int type);
/* "cut by rule 2 (cut_after PUBLISH #3)" */
void px_rules_cut_text(const px_rules *rs, int idx, uint64_t match_no, int dir, char *buf, size_t len);
/* "drop", "duplicate", ...; NULL when unknown. */
const char *px_action_name(int action);

#endif
