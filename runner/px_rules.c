/*
 * px_rules.c - the fault rules, judged one packet at a time.
 */
#include "px_rules.h"
#include "packet.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const action_names[] = {
    NULL, "drop", "duplicate", "delay", "cut_before", "cut_after", "blackhole", "cut_bytes", "reorder"
};

const char *px_action_name(int a)
{
    return a >= PX_DROP && a <= PX_REORDER ? action_names[a] : NULL;
}

int px_rules_add(px_rules *rs, const px_rule *r, char *err)
{
    const char *bad = NULL;
    if (!r) bad = "no rule";
    else if (r->action < PX_DROP || r->action > PX_REORDER) bad = "unknown action";
    else if (r->type < 0 || r->type > 15) bad = "the packet type must be 0 (any) or 1..15";
    else if (r->dir != PX_UP && r->dir != PX_DOWN && r->dir != PX_ANY) bad = "the direction must be up, down or any";
    else if (r->delay_ms < 0) bad = "delay_ms must not be negative";
    else if (r->refuse_ms < 0) bad = "refuse_ms must not be negative";
    else if (!memchr(r->client_id, '\0', sizeof r->client_id)) bad = "client_id is not NUL-terminated";
    if (bad) {
        kit_seterr(err, KIT_EINVAL, "proxy rule: %s", bad);
        return -1;
    }
    if (rs->n == rs->cap) {
        int ncap = rs->cap ? rs->cap * 2 : 8;
        rs->v = kit_xrealloc(rs->v, (size_t)ncap * sizeof *rs->v);
        rs->cap = ncap;
    }
    int idx = rs->n++;
    px_rule_state *ru = &rs->v[idx];
    memset(ru, 0, sizeof *ru);
    ru->r = *r;
    ru->active = 1;
    return idx;
}

void px_rules_clear(px_rules *rs)
{
    /* Kept, inactive, so that an index handed out earlier still answers
     * px_rules_fired(). */
    for (int i = 0; i < rs->n; i++) rs->v[i].active = 0;
}

unsigned px_rules_fired(const px_rules *rs, int idx)
{
    return idx >= 0 && idx < rs->n ? rs->v[idx].fired : 0;
}

void px_rules_free(px_rules *rs)
{
    free(rs->v);
    rs->v = NULL;
    rs->n = rs->cap = 0;
}

static int matches(const px_rule_state *ru, const px_connstate *cs, int dir, int type)
{
    if (!ru->active) return 0;
    if (ru->r.type != 0 && ru->r.type != type) return 0;
    if (ru->r.dir != PX_ANY && ru->r.dir != dir) return 0;
    if (ru->r.client_id[0] && (!cs->client_id || strcmp(ru->r.client_id, cs->client_id) != 0)) return 0;
    return 1;
}

int px_rules_match(const px_rules *rs, int idx, const px_connstate *cs, int dir, int type)
{
    return idx >= 0 && idx < rs->n && matches(&rs->v[idx], cs, dir, type);
}

/* What the packet rules say: the first rule firing of each action (-1
 * when none), and for delays the longest one. */
typedef struct {
    int slot[PX_NACTIONS];
    uint64_t match_no[PX_NACTIONS];
    int delay_ms;
} decision;

static void decide(px_rules *rs, const px_connstate *cs, int dir, int type, decision *dn)
{
    for (int a = 0; a < PX_NACTIONS; a++) dn->slot[a] = -1;
    dn->delay_ms = 0;
    for (int i = 0; i < rs->n; i++) {
        px_rule_state *ru = &rs->v[i];
        if (ru->r.action == PX_CUT_BYTES || !matches(ru, cs, dir, type)) continue;
        ru->matched++;
        uint64_t nth = ru->r.nth ? ru->r.nth : 1, times = ru->r.times ? ru->r.times : 1;
        if (ru->matched < nth || ru->matched - nth >= times) continue;
        int a = ru->r.action;
        if (a == PX_DELAY) {
            if (dn->slot[a] < 0 || ru->r.delay_ms > dn->delay_ms) {
                dn->slot[a] = i;
                dn->match_no[a] = ru->matched;
                dn->delay_ms = ru->r.delay_ms;
            }
        } else if (dn->slot[a] < 0) {
            dn->slot[a] = i;
            dn->match_no[a] = ru->matched;
        }
    }
}

void px_rules_judge(px_rules *rs, const px_connstate *cs, int dir, int type, size_t size, px_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->reorder = v->cut = -1;
    if (cs->blackhole) {
        /* A partition swallows everything; no rule sees it. */
        v->fate = PX_BLACKHOLED;
        return;
    }
    decision dn;
    decide(rs, cs, dir, type, &dn);
    int fate = PX_SENT, copies = 1;
    if (dn.slot[PX_CUT_BEFORE] >= 0) {
        fate = PX_CUT_BEFORE_F;
        copies = 0;
        v->cut = dn.slot[PX_CUT_BEFORE];
        v->cut_no = dn.match_no[PX_CUT_BEFORE];
    } else if (dn.slot[PX_BLACKHOLE] >= 0) {
        fate = PX_BLACKHOLED;
        copies = 0;
        rs->v[dn.slot[PX_BLACKHOLE]].fired++;
        v->blackhole = 1;
    } else if (dn.slot[PX_DROP] >= 0) {
        fate = PX_DROPPED;
        copies = 0;
        rs->v[dn.slot[PX_DROP]].fired++;
        /* Dropped and then cut: nothing of it went out, so the trace
         * says cut before it. */
        if (dn.slot[PX_CUT_AFTER] >= 0) {
            fate = PX_CUT_BEFORE_F;
            v->cut = dn.slot[PX_CUT_AFTER];
            v->cut_no = dn.match_no[PX_CUT_AFTER];
        }
    } else {
        if (dn.slot[PX_DUPLICATE] >= 0) {
            fate = PX_DUPLICATED;
            copies = 2;
            rs->v[dn.slot[PX_DUPLICATE]].fired++;
        }
        if (dn.slot[PX_CUT_AFTER] >= 0) {
            /* The cut releases everything held at once, so a delay
             * would change nothing: cut_after wins over it. */
            fate = PX_CUT_AFTER_F;
            v->cut = dn.slot[PX_CUT_AFTER];
            v->cut_no = dn.match_no[PX_CUT_AFTER];
        } else if (dn.slot[PX_REORDER] >= 0) {
            /* Held aside, it is overtaken by what follows; a delay on
             * top would only stretch the hold. */
            v->reorder = dn.slot[PX_REORDER];
            rs->v[v->reorder].fired++;
            fate = PX_REORDERED;
        } else if (dn.slot[PX_DELAY] >= 0) {
            v->delay_ms = dn.delay_ms;
            rs->v[dn.slot[PX_DELAY]].fired++;
            if (fate == PX_SENT) fate = PX_DELAYED;
        }
    }

    /* Byte budgets: the packet that reaches one is cut where it is
     * reached. */
    uint64_t total = (uint64_t)copies * size, allow = total;
    int refuse = 0;
    if (fate != PX_CUT_BEFORE_F && fate != PX_BLACKHOLED) {
        int bytes_rule = -1;
        for (int i = 0; i < rs->n; i++) {
            px_rule_state *ru = &rs->v[i];
            if (ru->r.action != PX_CUT_BYTES || ru->spent || !matches(ru, cs, dir, type)) continue;
            uint64_t left = ru->r.bytes > ru->bytes ? ru->r.bytes - ru->bytes : 0;
            if (total < left) continue;
            ru->spent = 1;
            ru->fired++;
            if (ru->r.refuse_ms > refuse) refuse = ru->r.refuse_ms;
            if (bytes_rule < 0 || left < allow) {
                bytes_rule = i;
                allow = left;
            }
        }
        if (bytes_rule >= 0) {
            if (v->cut < 0 || allow < total) {
                v->cut = bytes_rule;
                v->cut_no = 0;
            }
            fate = allow == 0 ? PX_CUT_BEFORE_F : allow < total ? PX_CUT_MID : PX_CUT_AFTER_F;
            v->delay_ms = 0;
        } else {
            for (int i = 0; i < rs->n; i++) {
                px_rule_state *ru = &rs->v[i];
                if (ru->r.action == PX_CUT_BYTES && !ru->spent && matches(ru, cs, dir, type))
                    ru->bytes += total;
            }
        }
    }
    if (v->cut >= 0 && rs->v[v->cut].r.action != PX_CUT_BYTES) {
        rs->v[v->cut].fired++;
        if (rs->v[v->cut].r.refuse_ms > refuse) refuse = rs->v[v->cut].r.refuse_ms;
    }
    v->fate = fate;
    v->copies = copies;
    v->allow = allow;
    v->refuse_ms = refuse;
}

void px_rules_cut_text(const px_rules *rs, int idx, uint64_t match_no, int dir, char *buf, size_t len)
{
    const px_rule *r = &rs->v[idx].r;
    if (r->action == PX_CUT_BYTES)
        snprintf(buf, len, "cut by rule %d (cut_bytes %llu B %s)", idx + 1,
                 (unsigned long long)r->bytes, px_dir_name(dir));
    else
        snprintf(buf, len, "cut by rule %d (%s %s #%llu)", idx + 1, action_names[r->action],
                 r->type ? pkt_type_name(r->type) : "any packet", (unsigned long long)match_no);
}
