/* device_prefilter.c — the literal prefilter of the device classifier's regexes: from
 * each pattern, literals one of which every match must contain; an agent's trigrams are
 * hashed once, and a regex whose literals all miss one is skipped. */
#include "transforms/device_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- literal prefilter ------------------------------------------------------------
 * Running all ~1200 regexes over a long agent costs about a millisecond even when none
 * backtracks, so each regex gets a conservative prefilter: a set of literals (ASCII
 * case folded) one of which every match must contain, extracted from the pattern at
 * load time. An agent's trigrams are hashed into a bitmap once; a regex whose
 * literals all miss a trigram cannot match and is skipped. Hash collisions only let a
 * regex run that could have been skipped, never the reverse. Patterns the extractor
 * does not fully understand get no prefilter (the regex always runs). */

#define LIT_MAX 48     /* literals are cut to this prefix (a prefix is still required) */
#define LITSET_MAX 512 /* a bigger alternation gets no prefilter */
#define LIT_MIN 3      /* shorter literals have no trigram: no prefilter */
#define RX_MAX_SETS 8  /* required sets kept for one regex (all must be present) */

typedef struct lit_s {
    uint8_t len;
    char s[LIT_MAX];
} lit_t;

typedef struct litset_s {
    bool valid; /* false: nothing is known to be required */
    size_t n;
    lit_t *v;
} litset_t;

typedef struct rx_parser_s {
    const char *p, *end;
    bool fail; /* syntax the extractor does not handle: no prefilter */
    bool oom;
    int depth;                 /* group nesting of the sequence being parsed */
    litset_t all[RX_MAX_SETS]; /* every candidate of the top-level sequences */
    size_t nall;
    int root_branches; /* branches of the top-level alternation */
} rx_parser_t;

static void litset_clear(litset_t *set) {
    free(set->v);
    set->v = NULL;
    set->n = 0;
    set->valid = false;
}

static unsigned litset_score(const litset_t *set) {
    unsigned m = LIT_MAX + 1;
    for (size_t i = 0; i < set->n; i++)
        if (set->v[i].len < m) m = set->v[i].len;
    return set->n ? m : 0;
}

/* Keeps the better of *best and *cand (longer shortest literal, then fewer literals);
 * consumes cand. */
static void litset_offer(litset_t *best, litset_t *cand) {
    if (!cand->valid || litset_score(cand) < LIT_MIN) {
        litset_clear(cand);
        return;
    }
    unsigned sb = best->valid ? litset_score(best) : 0, sc = litset_score(cand);
    if (!best->valid || sc > sb || (sc == sb && cand->n < best->n)) {
        litset_clear(best);
        *best = *cand;
        cand->v = NULL;
        cand->n = 0;
        cand->valid = false;
        return;
    }
    litset_clear(cand);
}

/* Offers a candidate of a sequence: kept as the sequence's best, and at the top level
 * also remembered as one more set every match needs. Consumes cand. */
static void seq_offer(rx_parser_t *ps, litset_t *best, litset_t *cand) {
    if (ps->depth == 0 && cand->valid && litset_score(cand) >= LIT_MIN && ps->nall < RX_MAX_SETS) {
        litset_t *copy = &ps->all[ps->nall];
        copy->v = malloc(cand->n * sizeof(lit_t));
        if (!copy->v) {
            ps->oom = true;
        } else {
            memcpy(copy->v, cand->v, cand->n * sizeof(lit_t));
            copy->n = cand->n;
            copy->valid = true;
            ps->nall++;
        }
    }
    litset_offer(best, cand);
}

static void run_flush(rx_parser_t *ps, lit_t *run, litset_t *best) {
    if (run->len >= LIT_MIN) {
        litset_t cand = {true, 1, malloc(sizeof(lit_t))};
        if (!cand.v) {
            ps->oom = true;
        } else {
            cand.v[0] = *run;
            seq_offer(ps, best, &cand);
        }
    }
    run->len = 0;
}

static void lit_append(lit_t *lit, const char *s, size_t n) {
    for (size_t i = 0; i < n && lit->len < LIT_MAX; i++)
        lit->s[lit->len++] = ua_ascii_lower(s[i]);
}

static void rx_alt(rx_parser_t *ps, litset_t *req, lit_t *exact, bool *exact_ok);

/* Parses a quantifier if one follows; sets min and max (-1 = unbounded). */
static void rx_quant(rx_parser_t *ps, long *min, long *max) {
    *min = 1;
    *max = 1;
    const char *p = ps->p;
    if (p >= ps->end) return;
    if (*p == '?' || *p == '*' || *p == '+') {
        *min = *p == '+' ? 1 : 0;
        *max = *p == '?' ? 1 : -1;
        p++;
    } else if (*p == '{') {
        const char *q = p + 1;
        long a = 0, b;
        int digits = 0;
        while (q < ps->end && *q >= '0' && *q <= '9' && digits < 6)
            a = a * 10 + (*q++ - '0'), digits++;
        if (digits == 0) return; /* not a quantifier: a literal '{' */
        b = a;
        if (q < ps->end && *q == ',') {
            q++;
            b = -1;
            if (q < ps->end && *q >= '0' && *q <= '9') {
                b = 0;
                digits = 0;
                while (q < ps->end && *q >= '0' && *q <= '9' && digits < 6)
                    b = b * 10 + (*q++ - '0'), digits++;
            }
        }
        if (q >= ps->end || *q != '}') return;
        p = q + 1;
        *min = a;
        *max = b;
    } else {
        return;
    }
    if (p < ps->end && (*p == '?' || *p == '+')) p++; /* lazy / possessive */
    ps->p = p;
}

enum { ATOM_LIT, ATOM_GROUP, ATOM_ZERO, ATOM_OTHER };

/* One sequence (a branch of an alternation) up to '|', ')' or the end. */
static void rx_seq(rx_parser_t *ps, litset_t *req, lit_t *exact, bool *exact_ok) {
    lit_t run = {0, {0}};
    litset_t best = {false, 0, NULL};
    exact->len = 0;
    *exact_ok = true;
    while (ps->p < ps->end && !ps->fail && !ps->oom && *ps->p != '|' && *ps->p != ')') {
        int kind = ATOM_OTHER;
        char ch = 0;
        litset_t sub = {false, 0, NULL};
        lit_t sub_exact = {0, {0}};
        bool sub_exact_ok = false;
        char c = *ps->p++;
        if (c == '\\') {
            if (ps->p >= ps->end) {
                ps->fail = true;
                break;
            }
            char e = *ps->p++;
            bool alnum = (e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9');
            if (!alnum) {
                kind = ATOM_LIT;
                ch = e;
            } else if (strchr("bBAZzG", e)) {
                kind = ATOM_ZERO;
            } else if (strchr("dDwWsShHvVR", e)) {
                kind = ATOM_OTHER;
            } else if (e >= '1' && e <= '9') {
                while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
                    ps->p++;
                kind = ATOM_OTHER; /* back reference */
            } else if (e == 't' || e == 'n' || e == 'r' || e == 'f') {
                kind = ATOM_LIT;
                ch = e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : '\f';
            } else {
                ps->fail = true;
                break;
            }
        } else if (c == '[') {
            const char *p = ps->p;
            if (p < ps->end && *p == '^') p++;
            if (p < ps->end && *p == ']') p++;
            while (p < ps->end && *p != ']') {
                if (*p == '\\')
                    p++;
                else if (*p == '[' && p + 1 < ps->end && p[1] == ':') {
                    const char *q = p + 2;
                    while (q + 1 < ps->end && !(q[0] == ':' && q[1] == ']'))
                        q++;
                    p = q + 1;
                }
                p++;
            }
            if (p >= ps->end) {
                ps->fail = true;
                break;
            }
            ps->p = p + 1;
            kind = ATOM_OTHER;
        } else if (c == '(') {
            bool lookaround = false, flags_only = false;
            if (ps->p < ps->end && *ps->p == '?') {
                const char *p = ps->p + 1;
                if (p < ps->end && *p == ':') {
                    p++;
                } else if (p < ps->end && (*p == '=' || *p == '!')) {
                    lookaround = true;
                    p++;
                } else if (p + 1 < ps->end && *p == '<' && (p[1] == '=' || p[1] == '!')) {
                    lookaround = true;
                    p += 2;
                } else if (p < ps->end && *p == '>') {
                    p++;
                } else if (p < ps->end && (*p == '<' || *p == 'P' || *p == '\'')) {
                    if (*p == 'P') p++;
                    if (p >= ps->end || (*p != '<' && *p != '\'')) {
                        ps->fail = true;
                        break;
                    }
                    char close = *p == '<' ? '>' : '\'';
                    while (p < ps->end && *p != close)
                        p++;
                    if (p >= ps->end) {
                        ps->fail = true;
                        break;
                    }
                    p++;
                } else {
                    /* (?flags) or (?flags:...) */
                    while (p < ps->end && (*p == '-' || (*p >= 'a' && *p <= 'z')))
                        p++;
                    if (p < ps->end && *p == ')') {
                        flags_only = true;
                        p++;
                    } else if (p < ps->end && *p == ':') {
                        p++;
                    } else {
                        ps->fail = true;
                        break;
                    }
                }
                ps->p = p;
            }
            if (flags_only) {
                kind = ATOM_ZERO;
            } else {
                ps->depth++;
                rx_alt(ps, &sub, &sub_exact, &sub_exact_ok);
                ps->depth--;
                if (ps->fail || ps->oom || ps->p >= ps->end || *ps->p != ')') {
                    litset_clear(&sub);
                    ps->fail = true;
                    break;
                }
                ps->p++;
                if (lookaround) {
                    litset_clear(&sub);
                    kind = ATOM_ZERO;
                } else {
                    kind = ATOM_GROUP;
                }
            }
        } else if (c == '^' || c == '$') {
            kind = ATOM_ZERO;
        } else if (c == '.') {
            kind = ATOM_OTHER;
        } else {
            kind = ATOM_LIT;
            ch = c;
        }
        long min, max;
        rx_quant(ps, &min, &max);
        bool once = min == 1 && max == 1;
        if (kind == ATOM_ZERO) {
            continue;
        } else if (kind == ATOM_LIT) {
            if (once) {
                lit_append(&run, &ch, 1);
                lit_append(exact, &ch, 1);
            } else {
                if (min >= 1) lit_append(&run, &ch, 1);
                run_flush(ps, &run, &best);
                *exact_ok = false;
            }
        } else if (kind == ATOM_GROUP) {
            if (once && sub_exact_ok) {
                lit_append(&run, sub_exact.s, sub_exact.len);
                lit_append(exact, sub_exact.s, sub_exact.len);
                if (sub_exact.len == LIT_MAX) run_flush(ps, &run, &best); /* may be cut */
            } else {
                if (min >= 1 && sub_exact_ok) lit_append(&run, sub_exact.s, sub_exact.len);
                run_flush(ps, &run, &best);
                *exact_ok = false;
            }
            if (min >= 1)
                seq_offer(ps, &best, &sub);
            else
                litset_clear(&sub);
        } else {
            run_flush(ps, &run, &best);
            *exact_ok = false;
        }
        if (exact->len == LIT_MAX) *exact_ok = false; /* cut: no longer the exact text */
    }
    run_flush(ps, &run, &best);
    *req = best;
}

static void rx_alt(rx_parser_t *ps, litset_t *req, lit_t *exact, bool *exact_ok) {
    litset_t acc = {true, 0, NULL};
    int branches = 0;
    *exact_ok = false;
    for (;;) {
        litset_t b = {false, 0, NULL};
        lit_t bex = {0, {0}};
        bool bex_ok = false;
        rx_seq(ps, &b, &bex, &bex_ok);
        branches++;
        if (ps->depth == 0) ps->root_branches++;
        if (branches == 1) {
            *exact = bex;
            *exact_ok = bex_ok;
        } else {
            *exact_ok = false;
        }
        if (!b.valid || !acc.valid || acc.n + b.n > LITSET_MAX) {
            litset_clear(&acc);
        } else if (b.n) {
            lit_t *nv = realloc(acc.v, (acc.n + b.n) * sizeof(lit_t));
            if (!nv) {
                ps->oom = true;
                litset_clear(&acc);
            } else {
                memcpy(nv + acc.n, b.v, b.n * sizeof(lit_t));
                acc.v = nv;
                acc.n += b.n;
            }
        }
        litset_clear(&b);
        if (ps->fail || ps->oom || ps->p >= ps->end || *ps->p != '|') break;
        ps->p++;
    }
    if (acc.valid && acc.n == 0) acc.valid = false;
    *req = acc;
}

/* Extracts the prefilter of a pattern into the rule; leaves it empty when none is
 * known. Returns -1 only when memory ran out. */
int ua_rule_prefilter(rule_t *rule, const char *pattern, size_t len) {
    rx_parser_t ps;
    memset(&ps, 0, sizeof(ps));
    ps.p = pattern;
    ps.end = pattern + len;
    litset_t req = {false, 0, NULL};
    lit_t exact;
    bool exact_ok;
    rx_alt(&ps, &req, &exact, &exact_ok);
    int rc = 0;
    litset_t *sets = NULL;
    size_t nsets = 0;
    if (ps.oom) {
        rc = -1;
    } else if (!ps.fail && ps.p == ps.end && req.valid && litset_score(&req) >= LIT_MIN) {
        /* One top-level branch: every candidate of it is required. Several: only their
         * union is. */
        if (ps.root_branches == 1 && ps.nall > 0) {
            sets = ps.all;
            nsets = ps.nall;
        } else {
            sets = &req;
            nsets = 1;
        }
    }
    if (nsets > 0) {
        size_t nlits = 0, ntri = 0;
        for (size_t k = 0; k < nsets; k++) {
            nlits += sets[k].n;
            for (size_t i = 0; i < sets[k].n; i++)
                ntri += (size_t)sets[k].v[i].len - 2;
        }
        rule->set_off = malloc((nsets + 1) * sizeof(uint32_t));
        rule->lit_off = malloc((nlits + 1) * sizeof(uint32_t));
        rule->tri = malloc(ntri * sizeof(uint16_t));
        if (!rule->set_off || !rule->lit_off || !rule->tri) {
            rc = -1;
        } else {
            size_t li = 0, ti = 0;
            for (size_t k = 0; k < nsets; k++) {
                rule->set_off[k] = (uint32_t)li;
                for (size_t i = 0; i < sets[k].n; i++, li++) {
                    rule->lit_off[li] = (uint32_t)ti;
                    const unsigned char *t = (const unsigned char *)sets[k].v[i].s;
                    for (size_t j = 0; j + 2 < sets[k].v[i].len; j++)
                        rule->tri[ti++] = ua_tri_hash(t[j], t[j + 1], t[j + 2]);
                }
            }
            rule->set_off[nsets] = (uint32_t)li;
            rule->lit_off[li] = (uint32_t)ti;
            rule->nsets = (uint32_t)nsets;
        }
    }
    litset_clear(&req);
    for (size_t k = 0; k < ps.nall; k++)
        litset_clear(&ps.all[k]);
    return rc;
}

void ua_trigrams_compute(tf_ua_classifier_t *c, const char *lower, size_t n) {
    memset(c->trigrams, 0, sizeof(c->trigrams));
    const unsigned char *s = (const unsigned char *)lower;
    for (size_t i = 0; i + 2 < n; i++) {
        uint16_t h = ua_tri_hash(s[i], s[i + 1], s[i + 2]);
        c->trigrams[h >> 6] |= (uint64_t)1 << (h & 63);
    }
}

/* False when the rule certainly cannot match the current agent. */
bool ua_rule_may_match(const tf_ua_classifier_t *c, const rule_t *rule) {
    for (uint32_t k = 0; k < rule->nsets; k++) {
        bool any = false;
        for (uint32_t i = rule->set_off[k]; i < rule->set_off[k + 1] && !any; i++) {
            uint32_t j = rule->lit_off[i], e = rule->lit_off[i + 1];
            while (j < e && (c->trigrams[rule->tri[j] >> 6] >> (rule->tri[j] & 63) & 1))
                j++;
            any = j == e;
        }
        if (!any) return false;
    }
    return true;
}
