/* device.c — uap-core regexes on PCRE2 (JIT, bounded), an LRU cache of parses, and the
 * DeviceType decision from the parse, client hints and screen size (see device.h). */
#include "transforms/device.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- limits ---------------------------------------------------------------------- */

/* Per regex evaluation. The uap-core regexes need a few hundred steps on real agents;
 * these bounds only stop pathological backtracking (tests/unit/test_device.c measures
 * the worst agents it can build against them). */
#define UA_MATCH_LIMIT 20000u
#define UA_DEPTH_LIMIT 2000u    /* interpreter only (JIT ignores it) */
#define UA_HEAP_LIMIT_KIB 1024u /* interpreter only */
#define UA_JIT_STACK_START (32u * 1024u)
#define UA_JIT_STACK_MAX (512u * 1024u)
#define UA_MAX_GROUPS 32u /* ovector pairs; $1..$9 are all a replacement can use */
#define UA_CACHE_MAX_ENTRIES (1u << 24)
#define TRI_BITS 16384u /* trigram presence bitmap of one agent */

/* ---- rules ----------------------------------------------------------------------- */

enum { SECTION_UA = 0, SECTION_OS, SECTION_DEVICE, SECTION_COUNT };
#define RULE_MAX_REPL 5

typedef struct rule_s {
    pcre2_code *re;
    char *repl[RULE_MAX_REPL]; /* NULL when absent (an empty replacement is absent) */
    /* Prefilter: for every set k, any match contains one of the literals
     * set_off[k] .. set_off[k + 1] (ASCII case folded); literal i is given by its trigram
     * hashes tri[lit_off[i] .. lit_off[i + 1]). nsets 0: no prefilter. */
    uint32_t nsets;
    uint32_t *set_off, *lit_off;
    uint16_t *tri;
} rule_t;

typedef struct rule_list_s {
    rule_t *v;
    size_t n, cap;
} rule_list_t;

static const char *const section_names[SECTION_COUNT] = {"user_agent_parsers", "os_parsers",
                                                         "device_parsers"};
static const char *const repl_keys[SECTION_COUNT][RULE_MAX_REPL] = {
    {"family_replacement", "v1_replacement", "v2_replacement", "v3_replacement", NULL},
    {"os_replacement", "os_v1_replacement", "os_v2_replacement", "os_v3_replacement",
     "os_v4_replacement"},
    {"device_replacement", "brand_replacement", "model_replacement", NULL, NULL},
};

/* ---- cache ----------------------------------------------------------------------- */

/* What the agent alone says; hints and screen refine it on every call. */
enum {
    UA_FLAG_MAC = 1u << 1,     /* desktop "Macintosh" agent (iPadOS desktop mode looks so) */
    UA_FLAG_X11 = 1u << 2,     /* desktop Linux/X11 agent (Android desktop mode looks so) */
    UA_FLAG_ANDROID = 1u << 3, /* Android agent */
};

typedef struct ua_base_s {
    tf_ua_info_t info; /* type = what the agent alone says */
    unsigned flags;
} ua_base_t;

typedef struct cache_entry_s {
    struct cache_entry_s *prev, *next; /* LRU list, most recent first */
    struct cache_entry_s *hnext;       /* hash chain */
    uint64_t hash;
    char *key;
    size_t key_len;
    ua_base_t value;
} cache_entry_t;

struct tf_ua_classifier_s {
    rule_list_t rules[SECTION_COUNT];
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    pcre2_match_data *md;
    uint64_t limit_hits;

    size_t cache_cap, cache_n, nbuckets;
    cache_entry_t **buckets;
    cache_entry_t *lru_head, *lru_tail;
    uint64_t hits, misses, seed;

    char subject[TF_UA_MAX_BYTES + 1]; /* the agent as considered, NUL-terminated */
    char lower[TF_UA_MAX_BYTES + 1];   /* ASCII-lowercased copy, for token tests */
    uint64_t trigrams[TRI_BITS / 64];  /* trigrams present in lower (hashed) */
};

/* ---- small string helpers -------------------------------------------------------- */

/* Copies src (n bytes) into dst[size] as valid UTF-8 without control characters:
 * invalid bytes become '?', controls become ' '; cut on a character boundary. */
static void copy_clean(char *dst, size_t size, const char *src, size_t n) {
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0;
    if (size == 0) return;
    while (i < n) {
        unsigned char c = s[i];
        size_t len = 0;
        if (c < 0x80) {
            len = 1;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
        }
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) ok = false;
        if (ok && len == 3) {
            if (c == 0xE0 && s[i + 1] < 0xA0) ok = false;  /* overlong */
            if (c == 0xED && s[i + 1] >= 0xA0) ok = false; /* surrogates */
        }
        if (ok && len == 4) {
            if (c == 0xF0 && s[i + 1] < 0x90) ok = false;  /* overlong */
            if (c == 0xF4 && s[i + 1] >= 0x90) ok = false; /* > U+10FFFF */
        }
        if (!ok) len = 1;
        if (o + len >= size) break;
        if (!ok) {
            dst[o++] = '?';
        } else if (len == 1 && (c < 0x20 || c == 0x7F)) {
            dst[o++] = ' ';
        } else {
            memcpy(dst + o, s + i, len);
            o += len;
        }
        i += len;
    }
    dst[o] = '\0';
}

static bool is_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static char ascii_lower(char ch) { return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch; }

static bool has(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

static bool starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Case-insensitive ASCII equality. */
static bool ci_equal(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (ascii_lower(*a) != ascii_lower(*b)) return false;
    return *a == *b;
}

/* Case-insensitive ASCII substring test of a short needle in a short haystack. */
static bool ci_contains(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t k = 0;
        while (k < n && p[k] && ascii_lower(p[k]) == needle[k])
            k++;
        if (k == n) return true;
    }
    return false;
}

/* ---- names ----------------------------------------------------------------------- */

static const char *const type_names[TF_DEVICE_TYPE_COUNT] = {"DESKTOP", "TABLET", "MOBILE", "BOT",
                                                             "UNKNOWN"};

const char *tf_device_type_name(tf_device_type_t t) {
    if ((int)t < 0 || (int)t >= TF_DEVICE_TYPE_COUNT) return NULL;
    return type_names[t];
}

int tf_device_type_parse(const char *name, tf_device_type_t *out) {
    if (!name) return -1;
    for (int i = 0; i < TF_DEVICE_TYPE_COUNT; i++) {
        if (strcmp(name, type_names[i]) == 0) {
            *out = (tf_device_type_t)i;
            return 0;
        }
    }
    return -1;
}

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
        lit->s[lit->len++] = ascii_lower(s[i]);
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

static uint16_t tri_hash(unsigned char a, unsigned char b, unsigned char c) {
    uint32_t x = ((uint32_t)a << 16) | ((uint32_t)b << 8) | c;
    return (uint16_t)((x * 2654435761u) >> (32 - 14)); /* 14 bits: TRI_BITS */
}

/* Extracts the prefilter of a pattern into the rule; leaves it empty when none is
 * known. Returns -1 only when memory ran out. */
static int rule_prefilter(rule_t *rule, const char *pattern, size_t len) {
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
                        rule->tri[ti++] = tri_hash(t[j], t[j + 1], t[j + 2]);
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

static void trigrams_compute(tf_ua_classifier_t *c, size_t n) {
    memset(c->trigrams, 0, sizeof(c->trigrams));
    const unsigned char *s = (const unsigned char *)c->lower;
    for (size_t i = 0; i + 2 < n; i++) {
        uint16_t h = tri_hash(s[i], s[i + 1], s[i + 2]);
        c->trigrams[h >> 6] |= (uint64_t)1 << (h & 63);
    }
}

/* False when the rule certainly cannot match the current agent. */
static bool rule_may_match(const tf_ua_classifier_t *c, const rule_t *rule) {
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

/* ---- loading --------------------------------------------------------------------- */

static void rule_list_free(rule_list_t *list) {
    for (size_t i = 0; i < list->n; i++) {
        pcre2_code_free(list->v[i].re);
        for (int k = 0; k < RULE_MAX_REPL; k++)
            free(list->v[i].repl[k]);
        free(list->v[i].set_off);
        free(list->v[i].lit_off);
        free(list->v[i].tri);
    }
    free(list->v);
    list->v = NULL;
    list->n = list->cap = 0;
}

static const char *scalar_text(yaml_node_t *node, size_t *len) {
    if (!node || node->type != YAML_SCALAR_NODE) return NULL;
    *len = node->data.scalar.length;
    return (const char *)node->data.scalar.value;
}

static bool scalar_is(yaml_node_t *node, const char *text) {
    size_t len;
    const char *s = scalar_text(node, &len);
    return s && len == strlen(text) && memcmp(s, text, len) == 0;
}

/* Compiles one entry of a section (a mapping with regex, regex_flag, replacements). */
static int load_rule(yaml_document_t *doc, yaml_node_t *entry, int section, size_t index,
                     rule_list_t *list, char *errstr, size_t errstr_size) {
    const char *sname = section_names[section];
    if (!entry || entry->type != YAML_MAPPING_NODE) {
        snprintf(errstr, errstr_size, "%s[%zu]: not a mapping", sname, index);
        return -1;
    }
    rule_t rule;
    memset(&rule, 0, sizeof(rule));
    const char *pattern = NULL;
    size_t pattern_len = 0;
    uint32_t options = PCRE2_NEVER_UTF | PCRE2_NEVER_UCP | PCRE2_NEVER_BACKSLASH_C;
    for (yaml_node_pair_t *p = entry->data.mapping.pairs.start; p < entry->data.mapping.pairs.top;
         p++) {
        yaml_node_t *key = yaml_document_get_node(doc, p->key);
        yaml_node_t *val = yaml_document_get_node(doc, p->value);
        size_t vlen = 0;
        const char *vtext = scalar_text(val, &vlen);
        if (scalar_is(key, "regex")) {
            pattern = vtext;
            pattern_len = vlen;
        } else if (scalar_is(key, "regex_flag")) {
            if (vtext && vlen == 1 && vtext[0] == 'i') options |= PCRE2_CASELESS;
        } else {
            for (int k = 0; k < RULE_MAX_REPL; k++) {
                if (repl_keys[section][k] && scalar_is(key, repl_keys[section][k]) && vtext &&
                    vlen > 0) {
                    free(rule.repl[k]);
                    rule.repl[k] = strndup(vtext, vlen);
                    if (!rule.repl[k]) goto oom;
                }
            }
        }
    }
    if (!pattern) {
        snprintf(errstr, errstr_size, "%s[%zu]: no regex", sname, index);
        goto fail;
    }
    int errcode = 0;
    PCRE2_SIZE erroff = 0;
    rule.re = pcre2_compile((PCRE2_SPTR)pattern, pattern_len, options, &errcode, &erroff, NULL);
    if (!rule.re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        snprintf(errstr, errstr_size, "%s[%zu]: regex does not compile at offset %zu: %s", sname,
                 index, (size_t)erroff, (const char *)msg);
        goto fail;
    }
    /* JIT is an optimisation: without it the interpreter runs, under the same limits. */
    (void)pcre2_jit_compile(rule.re, PCRE2_JIT_COMPLETE);
    if (rule_prefilter(&rule, pattern, pattern_len) != 0) goto oom;
    if (list->n == list->cap) {
        size_t ncap = list->cap ? list->cap * 2 : 256;
        rule_t *nv = realloc(list->v, ncap * sizeof(*nv));
        if (!nv) goto oom;
        list->v = nv;
        list->cap = ncap;
    }
    list->v[list->n++] = rule;
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory loading %s", sname);
fail:
    pcre2_code_free(rule.re);
    for (int k = 0; k < RULE_MAX_REPL; k++)
        free(rule.repl[k]);
    free(rule.set_off);
    free(rule.lit_off);
    free(rule.tri);
    return -1;
}

static int load_rules(tf_ua_classifier_t *c, const char *yaml_text, size_t len, char *errstr,
                      size_t errstr_size) {
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(errstr, errstr_size, "out of memory initialising the YAML parser");
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml_text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(errstr, errstr_size, "regexes YAML: %s at line %zu column %zu",
                 parser.problem ? parser.problem : "syntax error",
                 (size_t)parser.problem_mark.line + 1, (size_t)parser.problem_mark.column + 1);
        yaml_parser_delete(&parser);
        return -1;
    }
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        snprintf(errstr, errstr_size, "regexes YAML: the top level is not a mapping");
        rc = -1;
        goto done;
    }
    for (int s = 0; s < SECTION_COUNT && rc == 0; s++) {
        yaml_node_t *seq = NULL;
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
             p++) {
            if (scalar_is(yaml_document_get_node(&doc, p->key), section_names[s]))
                seq = yaml_document_get_node(&doc, p->value);
        }
        if (!seq || seq->type != YAML_SEQUENCE_NODE) {
            snprintf(errstr, errstr_size, "regexes YAML: no %s list", section_names[s]);
            rc = -1;
            break;
        }
        size_t index = 0;
        for (yaml_node_item_t *it = seq->data.sequence.items.start;
             it < seq->data.sequence.items.top && rc == 0; it++, index++)
            rc = load_rule(&doc, yaml_document_get_node(&doc, *it), s, index, &c->rules[s], errstr,
                           errstr_size);
        if (rc == 0 && c->rules[s].n == 0) {
            snprintf(errstr, errstr_size, "regexes YAML: %s is empty", section_names[s]);
            rc = -1;
        }
    }
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

tf_ua_classifier_t *tf_ua_classifier_new(const char *regexes_yaml, size_t len, size_t cache_entries,
                                         char *errstr, size_t errstr_size) {
    if (!regexes_yaml) {
        snprintf(errstr, errstr_size, "no regexes YAML given");
        return NULL;
    }
    if (cache_entries > UA_CACHE_MAX_ENTRIES) {
        snprintf(errstr, errstr_size, "cache of %zu entries is larger than the maximum %u",
                 cache_entries, UA_CACHE_MAX_ENTRIES);
        return NULL;
    }
    tf_ua_classifier_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->mctx = pcre2_match_context_create(NULL);
    c->jit_stack = pcre2_jit_stack_create(UA_JIT_STACK_START, UA_JIT_STACK_MAX, NULL);
    c->md = pcre2_match_data_create(UA_MAX_GROUPS, NULL);
    if (!c->mctx || !c->jit_stack || !c->md) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    pcre2_set_match_limit(c->mctx, UA_MATCH_LIMIT);
    pcre2_set_depth_limit(c->mctx, UA_DEPTH_LIMIT);
    pcre2_set_heap_limit(c->mctx, UA_HEAP_LIMIT_KIB);
    pcre2_jit_stack_assign(c->mctx, NULL, c->jit_stack);
    if (load_rules(c, regexes_yaml, len, errstr, errstr_size) != 0) goto fail;

    c->cache_cap = cache_entries;
    if (cache_entries > 0) {
        size_t nb = 16;
        while (nb < cache_entries * 2)
            nb *= 2;
        c->buckets = calloc(nb, sizeof(*c->buckets));
        if (!c->buckets) {
            snprintf(errstr, errstr_size, "out of memory for a cache of %zu entries",
                     cache_entries);
            goto fail;
        }
        c->nbuckets = nb;
    }
    /* Per-instance hash seed from the allocation address (randomised by ASLR), so
     * collisions cannot be precomputed against a fixed function. */
    c->seed = (uint64_t)(uintptr_t)c * 0x9E3779B97F4A7C15ull;
    return c;
fail:
    tf_ua_classifier_destroy(c);
    return NULL;
}

void tf_ua_classifier_destroy(tf_ua_classifier_t *c) {
    if (!c) return;
    for (int s = 0; s < SECTION_COUNT; s++)
        rule_list_free(&c->rules[s]);
    cache_entry_t *e = c->lru_head;
    while (e) {
        cache_entry_t *next = e->next;
        free(e->key);
        free(e);
        e = next;
    }
    free(c->buckets);
    pcre2_match_data_free(c->md);
    pcre2_jit_stack_free(c->jit_stack);
    pcre2_match_context_free(c->mctx);
    free(c);
}

/* ---- matching -------------------------------------------------------------------- */

/* Runs one rule on the subject. Returns the number of ovector pairs set (> 0) on a
 * match, 0 when it does not match or stopped at a limit. */
static int rule_match(tf_ua_classifier_t *c, const rule_t *rule, const char *subject, size_t len) {
    if (!rule_may_match(c, rule)) return 0;
    int rc = pcre2_match(rule->re, (PCRE2_SPTR)subject, len, 0, 0, c->md, c->mctx);
    if (rc > 0) return rc;
    if (rc == 0) return (int)UA_MAX_GROUPS; /* matched; more groups than the ovector */
    if (rc != PCRE2_ERROR_NOMATCH) c->limit_hits++;
    return 0;
}

/* Group g (1-based) of the last match as pointer+length; false when unset or absent. */
static bool group_span(tf_ua_classifier_t *c, int npairs, int g, const char *subject,
                       const char **start, size_t *len) {
    if (g <= 0 || g >= npairs) return false;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
    if (ov[2 * g] == PCRE2_UNSET || ov[2 * g + 1] < ov[2 * g]) return false;
    *start = subject + ov[2 * g];
    *len = ov[2 * g + 1] - ov[2 * g];
    return true;
}

/* Fills dst[size] with the value of one field: the replacement with $1..$9 expanded
 * (unset groups expand to nothing) and surrounding whitespace trimmed, or else the
 * default group. Leaves "" when the value is undefined or empty. */
static void field_value(tf_ua_classifier_t *c, int npairs, const char *subject, const char *repl,
                        int default_group, char *dst, size_t size) {
    char tmp[512];
    size_t n = 0;
    if (repl) {
        for (const char *r = repl; *r && n < sizeof(tmp); r++) {
            if (r[0] == '$' && r[1] >= '1' && r[1] <= '9') {
                const char *gs;
                size_t gl;
                if (group_span(c, npairs, r[1] - '0', subject, &gs, &gl)) {
                    if (gl > sizeof(tmp) - n) gl = sizeof(tmp) - n;
                    memcpy(tmp + n, gs, gl);
                    n += gl;
                }
                r++;
            } else {
                tmp[n++] = *r;
            }
        }
        size_t b = 0;
        while (b < n && is_space(tmp[b]))
            b++;
        while (n > b && is_space(tmp[n - 1]))
            n--;
        copy_clean(dst, size, tmp + b, n - b);
        return;
    }
    const char *gs;
    size_t gl;
    if (default_group > 0 && group_span(c, npairs, default_group, subject, &gs, &gl)) {
        copy_clean(dst, size, gs, gl);
        return;
    }
    dst[0] = '\0';
}

static void parse_subject(tf_ua_classifier_t *c, const char *subject, size_t len,
                          tf_ua_parse_t *out) {
    memset(out, 0, sizeof(*out));
    trigrams_compute(c, len);
    /* Browser: the first rule that yields a family wins. */
    const rule_list_t *list = &c->rules[SECTION_UA];
    for (size_t i = 0; i < list->n; i++) {
        const rule_t *r = &list->v[i];
        int np = rule_match(c, r, subject, len);
        if (np == 0) continue;
        field_value(c, np, subject, r->repl[0], 1, out->ua_family, sizeof(out->ua_family));
        if (!out->ua_family[0]) continue;
        field_value(c, np, subject, r->repl[1], 2, out->ua_major, sizeof(out->ua_major));
        field_value(c, np, subject, r->repl[2], 3, out->ua_minor, sizeof(out->ua_minor));
        field_value(c, np, subject, r->repl[3], 4, out->ua_patch, sizeof(out->ua_patch));
        break;
    }
    if (!out->ua_family[0]) snprintf(out->ua_family, sizeof(out->ua_family), "Other");

    list = &c->rules[SECTION_OS];
    for (size_t i = 0; i < list->n; i++) {
        const rule_t *r = &list->v[i];
        int np = rule_match(c, r, subject, len);
        if (np == 0) continue;
        field_value(c, np, subject, r->repl[0], 1, out->os_family, sizeof(out->os_family));
        if (!out->os_family[0]) continue;
        field_value(c, np, subject, r->repl[1], 2, out->os_major, sizeof(out->os_major));
        field_value(c, np, subject, r->repl[2], 3, out->os_minor, sizeof(out->os_minor));
        field_value(c, np, subject, r->repl[3], 4, out->os_patch, sizeof(out->os_patch));
        field_value(c, np, subject, r->repl[4], 5, out->os_patch_minor,
                    sizeof(out->os_patch_minor));
        break;
    }
    if (!out->os_family[0]) snprintf(out->os_family, sizeof(out->os_family), "Other");

    list = &c->rules[SECTION_DEVICE];
    for (size_t i = 0; i < list->n; i++) {
        const rule_t *r = &list->v[i];
        int np = rule_match(c, r, subject, len);
        if (np == 0) continue;
        field_value(c, np, subject, r->repl[0], 1, out->device_family, sizeof(out->device_family));
        if (!out->device_family[0]) continue;
        field_value(c, np, subject, r->repl[1], 0, out->device_brand, sizeof(out->device_brand));
        field_value(c, np, subject, r->repl[2], 1, out->device_model, sizeof(out->device_model));
        break;
    }
    if (!out->device_family[0]) snprintf(out->device_family, sizeof(out->device_family), "Other");
}

/* Copies the agent (first TF_UA_MAX_BYTES bytes) into c->subject and c->lower. */
static size_t set_subject(tf_ua_classifier_t *c, const char *ua) {
    size_t n = 0;
    if (ua)
        while (n < TF_UA_MAX_BYTES && ua[n])
            n++;
    if (n) memcpy(c->subject, ua, n);
    c->subject[n] = '\0';
    for (size_t i = 0; i < n; i++)
        c->lower[i] = ascii_lower(c->subject[i]);
    c->lower[n] = '\0';
    return n;
}

int tf_ua_parse(tf_ua_classifier_t *c, const char *ua, tf_ua_parse_t *out) {
    size_t n = set_subject(c, ua);
    parse_subject(c, c->subject, n, out);
    return 0;
}

/* ---- the agent's own verdict ----------------------------------------------------- */

static bool any_of(const char *lower, const char *const *tokens, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (has(lower, tokens[i])) return true;
    return false;
}

#define ANY_OF(lower, arr) any_of((lower), (arr), sizeof(arr) / sizeof((arr)[0]))

/* Crawlers, link-preview fetchers, monitors, HTTP libraries and browser automation that
 * uap-core does not already call "Spider". Lowercase substrings of the agent. */
static const char *const bot_tokens[] = {
    "crawl",
    "spider",
    "slurp",
    "scrapy",
    "scraper",
    "archiver",
    "ia_archiver",
    "heritrix",
    "httrack",
    "nutch",
    "facebookexternalhit",
    "facebookcatalog",
    "facebot",
    "twitterbot",
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "telegrambot",
    "linkedinbot",
    "pinterestbot",
    "embedly",
    "skypeuripreview",
    "bingpreview",
    "google web preview",
    "google-inspectiontool",
    "mediapartners-google",
    "adsbot-google",
    "feedfetcher",
    "apis-google",
    "google-read-aloud",
    "googleother",
    "google-extended",
    "storebot-google",
    "google favicon",
    "headlesschrome",
    "lighthouse",
    "phantomjs",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
    "cypress/",
    "pingdom",
    "uptimerobot",
    "statuscake",
    "site24x7",
    "newrelicpinger",
    "datadog",
    "checkly",
    "catchpoint",
    "gomezagent",
    "ruxitsynthetic",
    "monitis",
    "freshping",
    "hetrixtools",
    "betteruptime",
    "uptime-kuma",
    "uptime kuma",
    "updown.io",
    "nagios",
    "check_http",
    "zabbix",
    "prometheus",
    "blackbox",
    "gtmetrix",
    "pagespeed",
    " ptst/",
    "curl/",
    "libcurl",
    "wget",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "httpx/",
    "urllib3",
    "go-http-client",
    "okhttp",
    "apache-httpclient",
    "java-http-client",
    "commons-httpclient",
    "libwww-perl",
    "lwp::",
    "mechanize",
    "guzzlehttp",
    "faraday",
    "rest-client",
    "httparty",
    "http.rb/",
    "node-fetch",
    "undici",
    "axios/",
    "got (",
    "superagent",
    "postmanruntime",
    "insomnia",
    "httpie",
    "powershell",
    "winhttp",
    "aria2",
    "reqwest",
    "hackney",
    "dart:io",
    "httpunit",
    "validator",
    "w3c_",
    "checklink",
    "linkcheck",
    "link checker",
    "feedparser",
    "feedburner",
    "masscan",
    "zgrab",
    "nmap",
    "nikto",
    "sqlmap",
    "netcraft",
    "censys",
    "shodan",
    "semrush",
    "ahrefs",
    "mj12bot",
    "dotbot",
    "petalbot",
    "bytespider",
    "gptbot",
    "chatgpt-user",
    "claudebot",
    "claude-web",
    "anthropic-ai",
    "perplexitybot",
    "ccbot",
    "amazonbot",
    "applebot",
    "duckduckbot",
    "baiduspider",
    "sogou",
    "seznambot",
    "qwantify",
    "exabot",
    "ia-archiver",
    "fetcher",
    "ichiro",
    "yeti/",
    "daumoa",
    "teoma",
    "panscient",
    "wordpress",
    "seo",
    "analyzer",
    "auditor",
    "scanner",
    "browserproxy",
    "linkfinder",
    "indexer",
    "robot",
    "ips-agent",
    "dareboost",
    "siteimprove",
};

/* Browsers, platforms and devices that a "(compatible; ...)" agent of a real browser
 * names; a "compatible" agent naming none of them is a robot. */
static const char *const compatible_browser_tokens[] = {
    "msie",        "trident",  "konqueror", "windows",    "macintosh", "mac os",       "linux",
    "android",     "iphone",   "ipad",      "blackberry", "symbian",   "series",       "nokia",
    "playstation", "nintendo", "opera",     "webtv",      "palm",      "sonyericsson", "samsung",
    "lg-",         "motorola", "mot-",      "mobile",     "j2me",      "midp",         "brew",
    "bada",        "tizen",    "kaios",     "amiga",      "beos",      "os/2",         "sunos",
};

/* A "bot" word: "bot" ending a word ("Googlebot/2", "some-bot;"), not inside a word such
 * as the phone brand "Cubot" or "Abbott". */
static bool has_bot_word(const char *lower) {
    for (const char *p = strstr(lower, "bot"); p; p = strstr(p + 1, "bot")) {
        char after = p[3];
        bool word_end = !(after >= 'a' && after <= 'z');
        if (!word_end) continue;
        if (p - lower >= 2 && p[-2] == 'c' && p[-1] == 'u') continue; /* cubot */
        return true;
    }
    return false;
}

static bool is_alnum(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* A domain name ("example.com", "www.example") in the agent. */
static bool has_domain(const char *lower) {
    static const char *const tlds[] = {".com", ".net", ".org", ".io",   ".ru",  ".de", ".fr",
                                       ".jp",  ".cn",  ".uk",  ".info", ".biz", ".co", ".ai"};
    if (has(lower, "www.")) return true;
    for (size_t i = 0; i < sizeof(tlds) / sizeof(tlds[0]); i++) {
        size_t tl = strlen(tlds[i]);
        for (const char *p = strstr(lower, tlds[i]); p; p = strstr(p + 1, tlds[i]))
            if (p > lower && is_alnum(p[-1]) && !is_alnum(p[tl])) return true;
    }
    return false;
}

/* "Name/1.0 ..." at the start: a program's product token. */
static bool starts_with_product_token(const char *lower) {
    const char *p = lower;
    if (!(*p >= 'a' && *p <= 'z')) return false;
    size_t n = 0;
    while (*p && *p != '/' && n < 48) {
        if (!(is_alnum(*p) || *p == '.' || *p == '_' || *p == '-' || *p == '+' || *p == ' '))
            return false;
        p++;
        n++;
    }
    return *p == '/' && (p[1] == 'v' || (p[1] >= '0' && p[1] <= '9'));
}

static bool is_bot_agent(const char *lower, const tf_ua_parse_t *p) {
    if (strcmp(p->device_family, "Spider") == 0) return true;
    if (has_bot_word(lower)) return true;
    for (size_t i = 0; i < sizeof(bot_tokens) / sizeof(bot_tokens[0]); i++)
        if (has(lower, bot_tokens[i])) return true;
    /* Words that are robots only in some positions. */
    if (starts_with(lower, "ruby") || starts_with(lower, "php/") || has(lower, " php/") ||
        starts_with(lower, "java/") || starts_with(lower, "python/"))
        return true;
    if (has(lower, "preview/") || has(lower, "preview)") || has(lower, "preview;")) return true;
    if (has(lower, "yandex") && !has(lower, "yabrowser") && !has(lower, "yowser") &&
        !has(lower, "yandexsearch/"))
        return true; /* Yandex's crawlers; Yandex Browser says YaBrowser */
    /* Robots name a contact page or address; browsers never do. */
    if (has(lower, "http://") || has(lower, "https://") || has(lower, "+http") ||
        has(lower, "mailto:"))
        return true;
    /* Agents that name no platform and no device at all. */
    bool no_platform = strcmp(p->os_family, "Other") == 0 && strcmp(p->device_family, "Other") == 0;
    if (no_platform) {
        bool browser_like = starts_with(lower, "mozilla/") || starts_with(lower, "opera/");
        if ((has(lower, "(compatible;") || has(lower, "(compatible ")) &&
            !ANY_OF(lower, compatible_browser_tokens))
            return true;
        if (!browser_like && starts_with_product_token(lower) &&
            !ANY_OF(lower, compatible_browser_tokens))
            return true;
        if (has_domain(lower)) return true;
    }
    return false;
}

/* Tablets by uap-core device family, by the agent's own words, or by model names that
 * say so ("Galaxy Tab", "MediaPad", "IdeaTab", "Xperia Tablet"). */
static bool is_tablet_device(const char *lower, const tf_ua_parse_t *p) {
    const char *fam = p->device_family, *model = p->device_model;
    if (strcmp(fam, "iPad") == 0 || strcmp(fam, "Generic Tablet") == 0) return true;
    if (starts_with(fam, "Kindle")) return true;
    if (has(lower, "ipad") || has(lower, "kindle")) return true;
    if (has(lower, "playbook") || has(lower, "rim tablet")) return true;
    /* Silk is the Kindle Fire browser; the Fire Phone runs it too, and says "Mobile". */
    if (has(lower, "silk/") && !(has(lower, "android") && has(lower, "mobile"))) return true;
    if (ci_contains(model, "tablet") || ci_contains(model, "mediapad") ||
        ci_contains(model, "ideatab") || ci_contains(model, "galaxy tab") ||
        ci_contains(model, "xoom") || ci_equal(model, "Nexus 7") || ci_equal(model, "Nexus 9") ||
        ci_equal(model, "Nexus 10"))
        return true;
    if (has(lower, "; tablet") || has(lower, "(tablet") || has(lower, " tablet;"))
        return !has(lower, "windows nt");
    return false;
}

static const char *const mobile_tokens[] = {
    "mobile",       "iphone",
    "ipod",         "windows phone",
    "windows ce",   "iemobile",
    "wpdesktop",    "blackberry",
    "bb10",         "symbian",
    "series60",     "series 60",
    "s60;",         "j2me",
    "midp",         "cldc",
    "opera mini",   "opera mobi",
    "webos",        "palmos",
    "palm os",      "kaios",
    "sailfish",     "maemo",
    "meego",        "bada",
    "brew",         "up.browser",
    "up.link",      "netfront",
    "obigo",        "teleca",
    "nokia",        "sonyericsson",
    "docomo",       "kddi",
    "softbank",     "vodafone",
    "wap",          "fennec",
    "minimo",       "smartphone",
    "phone",        "dalvik/",
    "psp",          "playstation vita",
    "nintendo 3ds", "nintendo dsi",
    "mot-",         "samsung-",
    "sec-sgh",      "sgh-",
    "lg-",          "htc",
    "android",      "tizen",
    "mtk",          "spreadtrum",
    "mocor",
};

static const char *const tv_tokens[] = {
    "smart-tv",   "smarttv",      "smart tv",        "googletv",      "google tv",
    "android tv", "hbbtv",        "netcast",         "bravia",        "tizen tv",
    "web0s",      "webos.tv",     "crkey",           "roku",          "appletv",
    "apple tv",   "; aft",        "playstation 3",   "playstation 4", "playstation 5",
    "xbox",       "nintendo wii", "nintendo switch", "viera",         "aquos",
    "philipstv",  "nettv",
};

/* Model names of Android tablets: "MID7010", "TAB410", "EVO Tab", "IdeaTab A1000",
 * "MediaPad 10", "Transformer Pad", "Tablet" (not "PadFone", "Table", "Tabs"). */
static bool has_tablet_word(const char *lower) {
    if (has(lower, "tablet")) return true;
    for (const char *p = strstr(lower, "mid"); p; p = strstr(p + 1, "mid")) {
        if (p > lower && is_alnum(p[-1])) continue;
        const char *q = p + 3;
        if (*q == ' ' || *q == '_' || *q == '-') q++;
        int digits = 0;
        while (q[digits] >= '0' && q[digits] <= '9')
            digits++;
        if (digits >= 3) return true;
    }
    static const char *const words[] = {"tab", "pad"};
    for (size_t w = 0; w < 2; w++) {
        for (const char *p = strstr(lower, words[w]); p; p = strstr(p + 1, words[w])) {
            char after = p[3];
            if (after >= 'a' && after <= 'z') continue;        /* table, tabs, padfone */
            if (w == 1 && p > lower && p[-1] == 'i') continue; /* ipad: handled apart */
            return true;
        }
    }
    return false;
}

/* Operating systems of desktop and laptop computers, as uap-core names them. */
static bool is_desktop_os(const char *os) {
    static const char *const prefixes[] = {
        "Windows",  "Mac OS",     "Linux",     "Ubuntu",      "Kubuntu",  "Xubuntu",
        "Lubuntu",  "Debian",     "Fedora",    "Red Hat",     "SUSE",     "openSUSE",
        "Mint",     "Linux Mint", "Gentoo",    "Slackware",   "Mandriva", "Mandrake",
        "CentOS",   "Arch Linux", "Chrome OS", "Chromium OS", "FreeBSD",  "OpenBSD",
        "NetBSD",   "DragonFly",  "Solaris",   "SunOS",       "BeOS",     "Haiku",
        "OS/2",     "AmigaOS",    "MorphOS",   "IRIX",        "HP-UX",    "AIX",
        "GNU",      "PCLinuxOS",  "Puppy",     "Mageia",      "Manjaro",  "Elementary",
        "Raspbian", "ZorinOS",    "Knoppix",   "Kali",
    };
    if (starts_with(os, "Windows Phone") || starts_with(os, "Windows Mobile") ||
        starts_with(os, "Windows CE") || starts_with(os, "Windows RT"))
        return false;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (starts_with(os, prefixes[i])) return true;
    return false;
}

/* What the agent alone says, from the parse and the agent's tokens. */
static tf_device_type_t type_from_agent(const char *lower, size_t n, const tf_ua_parse_t *p,
                                        unsigned *flags) {
    if (n == 0) return TF_DEVICE_UNKNOWN;
    /* Android; also its agents that lost the word but keep "Linux; ... Build/". */
    if (has(lower, "android") || (has(lower, "linux") && has(lower, " build/")))
        *flags |= UA_FLAG_ANDROID;
    if (is_bot_agent(lower, p)) return TF_DEVICE_BOT;
    const char *fam = p->device_family, *os = p->os_family;

    if (is_tablet_device(lower, p)) return TF_DEVICE_TABLET;
    /* Windows RT (ARM) devices are tablets; other Windows NT "Tablet PC"/"Touch"
     * agents are convertible PCs. */
    if (has(lower, "windows nt") && has(lower, "; arm;")) return TF_DEVICE_TABLET;
    if (ANY_OF(lower, tv_tokens)) return TF_DEVICE_DESKTOP;
    if (*flags & UA_FLAG_ANDROID) {
        /* Android 3 (Honeycomb) ran on tablets only. */
        if (has(lower, "android 3.") || has(lower, "android/3.")) return TF_DEVICE_TABLET;
        /* Browsers: "Mobile" is the phone marker and its absence means a tablet (the
         * convention of Chrome, Firefox and the stock browser). Apps' own agents and
         * feature-phone profiles do not follow it: they are phones unless they say
         * otherwise. */
        bool browser = (starts_with(lower, "mozilla/") || starts_with(lower, "opera/")) &&
                       (has(lower, "applewebkit") || has(lower, "gecko/") ||
                        has(lower, "presto/") || has(lower, "chrome/") || has(lower, "safari/"));
        if (has_tablet_word(lower)) return TF_DEVICE_TABLET;
        if (!browser || has(lower, "mobile") || has(lower, "opera mini") || has(lower, "midp") ||
            has(lower, "cldc") || has(lower, "phone"))
            return TF_DEVICE_MOBILE;
        return TF_DEVICE_TABLET;
    }
    if (strcmp(os, "iOS") == 0 || strcmp(fam, "iPhone") == 0 || strcmp(fam, "iPod") == 0 ||
        strcmp(fam, "iPod Touch") == 0)
        return TF_DEVICE_MOBILE;
    if (strcmp(fam, "Generic Smartphone") == 0 || strcmp(fam, "Generic Feature Phone") == 0)
        return TF_DEVICE_MOBILE;
    if (ANY_OF(lower, mobile_tokens)) return TF_DEVICE_MOBILE;
    if (has(lower, "macintosh") || strcmp(os, "Mac OS X") == 0 || strcmp(fam, "Mac") == 0) {
        *flags |= UA_FLAG_MAC;
        return TF_DEVICE_DESKTOP;
    }
    if (is_desktop_os(os) || has(lower, "windows nt") || has(lower, "x11") || has(lower, "cros ")) {
        if (has(lower, "x11") || has(lower, "linux")) *flags |= UA_FLAG_X11;
        return TF_DEVICE_DESKTOP;
    }
    /* uap-core names a device (brand/model) for handsets it recognises; desktops are
     * "Other" or "Mac". */
    if (strcmp(fam, "Other") != 0) return TF_DEVICE_MOBILE;
    return TF_DEVICE_UNKNOWN;
}

static void join_version(char *dst, size_t size, const char *a, const char *b, const char *c,
                         const char *d) {
    const char *parts[4] = {a, b, c, d};
    char tmp[160];
    size_t n = 0;
    tmp[0] = '\0';
    for (int i = 0; i < 4 && parts[i] && parts[i][0]; i++) {
        int w = snprintf(tmp + n, sizeof(tmp) - n, "%s%s", i ? "." : "", parts[i]);
        if (w < 0 || (size_t)w >= sizeof(tmp) - n) break;
        n += (size_t)w;
    }
    copy_clean(dst, size, tmp, n);
}

static void compute_base(tf_ua_classifier_t *c, size_t n, ua_base_t *base) {
    memset(base, 0, sizeof(*base));
    size_t b = 0;
    while (b < n && is_space(c->subject[b]))
        b++;
    if (b == n) {
        base->info.type = TF_DEVICE_UNKNOWN;
        return;
    }
    tf_ua_parse_t p;
    parse_subject(c, c->subject, n, &p);
    tf_ua_info_t *info = &base->info;
    if (strcmp(p.ua_family, "Other") != 0) {
        copy_clean(info->browser, sizeof(info->browser), p.ua_family, strlen(p.ua_family));
        join_version(info->browser_version, sizeof(info->browser_version), p.ua_major, p.ua_minor,
                     p.ua_patch, NULL);
    }
    if (strcmp(p.os_family, "Other") != 0) {
        copy_clean(info->os, sizeof(info->os), p.os_family, strlen(p.os_family));
        join_version(info->os_version, sizeof(info->os_version), p.os_major, p.os_minor, p.os_patch,
                     p.os_patch_minor);
    }
    if (strcmp(p.device_family, "Other") != 0)
        copy_clean(info->device_family, sizeof(info->device_family), p.device_family,
                   strlen(p.device_family));
    info->type = type_from_agent(c->lower, n, &p, &base->flags);
}

/* ---- hints ----------------------------------------------------------------------- */

/* CSS-pixel screens of iPads (portrait; either orientation matches). */
static bool is_ipad_screen(int32_t w, int32_t h) {
    static const int32_t sizes[][2] = {
        {768, 1024}, {810, 1080},  {820, 1180},  {834, 1112}, {834, 1194},
        {834, 1210}, {1024, 1366}, {1032, 1376}, {744, 1133},
    };
    int32_t a = w < h ? w : h, b = w < h ? h : w;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        if (sizes[i][0] == a && sizes[i][1] == b) return true;
    return false;
}

/* A handheld phone's screen: short side under 600 CSS px, long side under 1100. */
static bool is_phone_screen(int32_t w, int32_t h) {
    int32_t a = w < h ? w : h, b = w < h ? h : w;
    return a > 0 && a < 600 && b < 1100;
}

static bool platform_is(const char *platform, const char *name) {
    if (!platform) return false;
    /* Sec-CH-UA-Platform values arrive quoted ("\"Android\"") when copied raw. */
    const char *s = platform;
    size_t len = strlen(s);
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "%.*s", (int)(len - 2), s + 1);
        return ci_equal(tmp, name);
    }
    return ci_equal(s, name);
}

static bool platform_is_desktop(const char *platform) {
    return platform_is(platform, "Windows") || platform_is(platform, "macOS") ||
           platform_is(platform, "Linux") || platform_is(platform, "Chrome OS") ||
           platform_is(platform, "Chromium OS") || platform_is(platform, "Fuchsia");
}

static tf_device_type_t apply_hints(tf_device_type_t t, unsigned flags,
                                    const tf_device_hints_t *h) {
    if (t == TF_DEVICE_BOT || !h) return t;
    const char *platform = h->platform && h->platform[0] ? h->platform : NULL;
    const char *model = h->model && h->model[0] ? h->model : NULL;
    bool screen = h->screen_width > 0 && h->screen_height > 0;
    bool android = (flags & UA_FLAG_ANDROID) || platform_is(platform, "Android");

    if (platform_is(platform, "iPadOS") || (model && ci_contains(model, "ipad")))
        return TF_DEVICE_TABLET;
    if (h->has_mobile && h->mobile) return TF_DEVICE_MOBILE;
    if (h->has_mobile && !h->mobile) {
        if (android) return TF_DEVICE_TABLET;
        if (t == TF_DEVICE_UNKNOWN && platform_is_desktop(platform)) {
            if (screen && is_ipad_screen(h->screen_width, h->screen_height) &&
                platform_is(platform, "macOS"))
                return TF_DEVICE_TABLET;
            return TF_DEVICE_DESKTOP;
        }
    }
    if (t == TF_DEVICE_DESKTOP && screen) {
        /* iPadOS Safari and Android "desktop site" modes send a desktop agent; the
         * screen they report gives the device away. */
        if ((flags & UA_FLAG_MAC) && is_ipad_screen(h->screen_width, h->screen_height))
            return TF_DEVICE_TABLET;
        if ((flags & (UA_FLAG_MAC | UA_FLAG_X11)) &&
            is_phone_screen(h->screen_width, h->screen_height))
            return TF_DEVICE_MOBILE;
        return t;
    }
    if (t != TF_DEVICE_UNKNOWN) return t;
    /* The agent said nothing usable: decide from the hints alone. */
    if (platform_is(platform, "iOS")) return TF_DEVICE_MOBILE;
    if (platform_is(platform, "Android"))
        return (h->has_mobile && !h->mobile) ? TF_DEVICE_TABLET : TF_DEVICE_MOBILE;
    if (platform_is_desktop(platform)) return TF_DEVICE_DESKTOP;
    if (screen) {
        if (is_ipad_screen(h->screen_width, h->screen_height)) return TF_DEVICE_TABLET;
        if (is_phone_screen(h->screen_width, h->screen_height)) return TF_DEVICE_MOBILE;
        int32_t a = h->screen_width < h->screen_height ? h->screen_width : h->screen_height;
        int32_t b = h->screen_width < h->screen_height ? h->screen_height : h->screen_width;
        if (a >= 720 && b >= 1280 && b * 10 >= a * 15) return TF_DEVICE_DESKTOP;
    }
    return TF_DEVICE_UNKNOWN;
}

/* ---- cache ----------------------------------------------------------------------- */

static uint64_t hash_key(uint64_t seed, const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    /* splitmix64 finaliser */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static void lru_unlink(tf_ua_classifier_t *c, cache_entry_t *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        c->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(tf_ua_classifier_t *c, cache_entry_t *e) {
    e->prev = NULL;
    e->next = c->lru_head;
    if (c->lru_head) c->lru_head->prev = e;
    c->lru_head = e;
    if (!c->lru_tail) c->lru_tail = e;
}

static cache_entry_t *cache_find(tf_ua_classifier_t *c, uint64_t h, const char *key, size_t n) {
    for (cache_entry_t *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->key_len == n && memcmp(e->key, key, n) == 0) return e;
    return NULL;
}

static void bucket_remove(tf_ua_classifier_t *c, cache_entry_t *e) {
    cache_entry_t **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    e->hnext = NULL;
}

/* Stores a copy of base under the key; evicts the least recently used entry at
 * capacity. Returns -1 when memory ran out (the cache stays consistent). */
static int cache_insert(tf_ua_classifier_t *c, uint64_t h, const char *key, size_t n,
                        const ua_base_t *base) {
    char *kcopy = malloc(n + 1);
    if (!kcopy) return -1;
    memcpy(kcopy, key, n);
    kcopy[n] = '\0';
    cache_entry_t *e;
    if (c->cache_n >= c->cache_cap) {
        e = c->lru_tail;
        lru_unlink(c, e);
        bucket_remove(c, e);
        free(e->key);
        c->cache_n--;
    } else {
        e = calloc(1, sizeof(*e));
        if (!e) {
            free(kcopy);
            return -1;
        }
    }
    e->hash = h;
    e->key = kcopy;
    e->key_len = n;
    e->value = *base;
    size_t b = h & (c->nbuckets - 1);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    lru_push_front(c, e);
    c->cache_n++;
    return 0;
}

/* ---- classification -------------------------------------------------------------- */

int tf_ua_classify(tf_ua_classifier_t *c, const char *ua, const tf_device_hints_t *hints,
                   tf_ua_info_t *out) {
    size_t n = set_subject(c, ua);
    ua_base_t base;
    int rc = 0;
    if (c->cache_cap > 0 && n > 0) {
        uint64_t h = hash_key(c->seed, c->subject, n);
        cache_entry_t *e = cache_find(c, h, c->subject, n);
        if (e) {
            c->hits++;
            if (e != c->lru_head) {
                lru_unlink(c, e);
                lru_push_front(c, e);
            }
            base = e->value;
        } else {
            c->misses++;
            compute_base(c, n, &base);
            if (cache_insert(c, h, c->subject, n, &base) != 0) rc = -1;
        }
    } else {
        c->misses++;
        compute_base(c, n, &base);
    }
    *out = base.info;
    out->type = apply_hints(base.info.type, base.flags, hints);
    return rc;
}

void tf_ua_classifier_stats(const tf_ua_classifier_t *c, uint64_t *hits, uint64_t *misses) {
    if (hits) *hits = c ? c->hits : 0;
    if (misses) *misses = c ? c->misses : 0;
}

uint64_t tf_ua_classifier_limit_hits(const tf_ua_classifier_t *c) { return c ? c->limit_hits : 0; }

size_t tf_ua_classifier_cache_size(const tf_ua_classifier_t *c) { return c ? c->cache_n : 0; }
