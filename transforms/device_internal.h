/* device_internal.h — what the files of the device classifier share (device.c,
 * device_uap.c, device_prefilter.c, device_bots.c, device_models.c, device_data.c): the
 * classifier's state, compiled rules and small string helpers. Not a public interface. */
#ifndef TF_DEVICE_INTERNAL_H
#define TF_DEVICE_INTERNAL_H

#include "transforms/device.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

/* ---- limits ---------------------------------------------------------------------- */

/* Per regex evaluation. The uap-core regexes need a few hundred steps on real agents;
 * these bounds only stop pathological backtracking (tests/unit/test_device.c measures
 * the worst agents it can build against them). */
#define UA_MATCH_LIMIT 20000u
#define UA_DEPTH_LIMIT 2000u    /* interpreter only (JIT ignores it) */
#define UA_HEAP_LIMIT_KIB 1024u /* interpreter only */
#define UA_JIT_STACK_START (32u * 1024u)
#define UA_JIT_STACK_MAX (512u * 1024u)
#define UA_JIT_AFTER 8u
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
    int tag; /* data-set rules: the DeviceType of a brand or model, or UA_TAG_* */
    /* JIT code is ~10 KB a regex, and behind the prefilters most regexes never run: one
     * is JIT-compiled when it has run UA_JIT_AFTER times (ua_rule_match), if wanted. */
    bool jit_wanted;
    uint32_t runs;
} rule_t;

#define UA_TAG_NONE (-1)  /* no type: a brand without one, a catch-all model */
#define UA_TAG_BRAND (-2) /* a model without a type of its own: its brand's */

typedef struct rule_list_s {
    rule_t *v;
    size_t n, cap;
} rule_list_t;

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

/* An inverted index of a list of rules by trigram, to find the rules that may match an
 * agent without testing every prefilter: the rules whose first required set has a
 * literal starting with trigram h are ids[off[h] .. off[h + 1]); the rules without a
 * prefilter are always[0 .. nalways). stamp[i]: the query that last looked at rule i.
 * off NULL: no index (every rule is tried). */
typedef struct ua_index_s {
    uint32_t *off, *ids, *always, *stamp;
    uint32_t *cand; /* room for every rule: the candidates of one query */
    size_t n, nalways;
} ua_index_t;

/* A device brand of the data sets: its regex (repl[0] = the brand's name, tag = the
 * brand's DeviceType or -1) and its models, models.v[first .. first + n). */
typedef struct ua_brand_s {
    rule_t rule;
    size_t first, n;
} ua_brand_t;

struct tf_ua_classifier_s {
    rule_list_t rules[SECTION_COUNT];
    /* Data sets (tf_ua_classifier_add_data): robots, HTTP libraries, other non-browser
     * clients (repl[0] = name), device brands and their models (tag = DeviceType). */
    rule_list_t bots, libraries, clients, models;
    ua_index_t bots_ix, libraries_ix, clients_ix, brands_ix, models_ix;
    ua_brand_t *brands;
    size_t nbrands, brands_cap;
    uint32_t *brands_by_name;        /* brand indexes sorted by name (ASCII case folded) */
    uint32_t query;                  /* index queries so far (stamps) */
    uint32_t bucket_stamp[TRI_BITS]; /* the query that last walked each trigram's rules */

    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    pcre2_match_data *md;
    uint64_t limit_hits;
    size_t jit_compiled; /* rules JIT-compiled so far (see rule_t.jit_wanted) */

    size_t cache_cap, cache_n, nbuckets;
    cache_entry_t **buckets;
    cache_entry_t *lru_head, *lru_tail;
    uint64_t hits, misses, seed;
    ua_base_t empty_base; /* the answer for no agent (have_empty_base: computed) */
    bool have_empty_base;

    bool shared; /* tf_ua_classifier_share: every query holds lock */
    pthread_mutex_t lock;

    char subject[TF_UA_MAX_BYTES + 1]; /* the agent as considered, NUL-terminated */
    char lower[TF_UA_MAX_BYTES + 1];   /* ASCII-lowercased copy, for token tests */
    uint64_t trigrams[TRI_BITS / 64];  /* trigrams present in lower (hashed) */
};

/* Every query of a shared classifier (tf_ua_classifier_share) holds its lock; the
 * statistics readers take a const classifier. */
static inline void ua_query_begin(const tf_ua_classifier_t *c) {
    if (c->shared) pthread_mutex_lock((pthread_mutex_t *)&c->lock);
}

static inline void ua_query_end(const tf_ua_classifier_t *c) {
    if (c->shared) pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
}

/* ---- small string helpers -------------------------------------------------------- */

static inline bool ua_is_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static inline char ua_ascii_lower(char ch) {
    return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

static inline bool ua_is_alnum(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static inline bool ua_has(const char *hay, const char *needle) {
    return strstr(hay, needle) != NULL;
}

static inline bool ua_starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* True when lower contains one of the n tokens. */
static inline bool ua_any_of(const char *lower, const char *const *tokens, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strstr(lower, tokens[i])) return true;
    return false;
}

#define UA_ANY_OF(lower, arr) ua_any_of((lower), (arr), sizeof(arr) / sizeof((arr)[0]))

/* Case-insensitive ASCII equality. */
bool ua_ci_equal(const char *a, const char *b);

/* Case-insensitive ASCII substring test of a lowercase needle. */
bool ua_ci_contains(const char *hay, const char *needle);

/* Copies src (n bytes) into dst[size] as valid UTF-8 without control characters:
 * invalid bytes become '?', controls become ' '; cut on a character boundary. */
void ua_copy_clean(char *dst, size_t size, const char *src, size_t n);

/* ---- literal prefilter (device_prefilter.c) -------------------------------------- */

/* The 14-bit hash of a trigram (ASCII case folded), as the prefilter stores it. */
static inline uint16_t ua_tri_hash(unsigned char a, unsigned char b, unsigned char c) {
    uint32_t x = ((uint32_t)a << 16) | ((uint32_t)b << 8) | c;
    return (uint16_t)((x * 2654435761u) >> (32 - 14)); /* 14 bits: TRI_BITS */
}

/* Extracts the prefilter of a pattern into the rule (left empty when none is known).
 * Returns -1 only when memory ran out. */
int ua_rule_prefilter(rule_t *rule, const char *pattern, size_t len);

/* Hashes the trigrams of lower[0 .. n) (ASCII-lowercased text) into c->trigrams. */
void ua_trigrams_compute(tf_ua_classifier_t *c, const char *lower, size_t n);

/* False when the rule certainly cannot match the agent whose trigrams are computed. */
bool ua_rule_may_match(const tf_ua_classifier_t *c, const rule_t *rule);

/* ---- rules and uap-core (device_uap.c) ------------------------------------------- */

/* Frees what a rule owns (regex, replacements, prefilter) and zeroes it. */
void ua_rule_clear(rule_t *rule);

/* Frees every rule of the list and the list's array. */
void ua_rule_list_free(rule_list_t *list);

/* Appends *rule (moved in) to the list. Returns -1 when memory ran out (the rule then
 * stays the caller's). */
int ua_rule_list_push(rule_list_t *list, const rule_t *rule);

/* Compiles the three sections of a uap-core regexes.yaml into c->rules. Returns 0, or -1
 * with errstr filled. */
int ua_uap_load(tf_ua_classifier_t *c, const char *yaml_text, size_t len, char *errstr,
                size_t errstr_size);

/* Runs one rule on the subject. Returns the number of ovector pairs set (> 0) on a
 * match, 0 when it does not match or stopped at a limit. */
int ua_rule_match(tf_ua_classifier_t *c, rule_t *rule, const char *subject, size_t len);

/* The uap-core parse of subject[0 .. len) (trigrams of c->lower are computed here). */
void ua_parse_subject(tf_ua_classifier_t *c, const char *subject, size_t len, tf_ua_parse_t *out);

/* Copies the agent (first TF_UA_MAX_BYTES bytes) into c->subject and c->lower; returns
 * its length. */
size_t ua_set_subject(tf_ua_classifier_t *c, const char *ua);

/* ---- data sets (device_data.c) ------------------------------------------------- */

/* Empties the cache of parses (device.c). */
void ua_cache_clear(tf_ua_classifier_t *c);

/* Frees the data sets' rules and brands. */
void ua_data_free(tf_ua_classifier_t *c);

/* Case-insensitive ASCII comparison, as strcmp. */
int ua_ci_compare(const char *a, const char *b);

/* The lowest i in [lo, hi) whose rule (at base + i * stride; indexed by ix) matches
 * subject[0 .. len), lowercased in lower; -1 when none does. Clobbers c->trigrams. */
long ua_index_first_match(tf_ua_classifier_t *c, ua_index_t *ix, void *base, size_t stride,
                          size_t lo, size_t hi, const char *lower, const char *subject, size_t len);

/* True when a rule of list (indexed by ix) matches c->subject[0 .. len) (lowercased in
 * c->lower, whose trigrams are computed). */
bool ua_list_any_match(tf_ua_classifier_t *c, const rule_list_t *list, ua_index_t *ix, size_t len);

/* ---- device models (device_models.c) -------------------------------------------- */

/* The DeviceType that the data sets' device models give the device uap-core parsed
 * (p: its brand, model and Android version), or -1 when they give none. Clobbers the
 * trigrams of the agent. */
int ua_model_type(tf_ua_classifier_t *c, const tf_ua_parse_t *p);

/* ---- robots (device_bots.c) ------------------------------------------------------ */

/* True when the agent (lowercased in lower; parsed as p) is a robot by the rules of
 * device_bots.c. */
bool ua_is_bot_agent(tf_ua_classifier_t *c, const char *lower, size_t len, const tf_ua_parse_t *p);

#endif
