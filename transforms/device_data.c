/* device_data.c — the data sets beyond uap-core (Matomo device-detector's robots, HTTP
 * libraries, non-browser clients and device models, as JSON): loading them into
 * prefiltered PCRE2 rules, and matching a list of them. */
#include "transforms/device_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* device-detector applies every regex as '/(?:^|[^A-Z0-9_-]|[^A-Z0-9-]_|sprd-|MZ-)(?:R)/i':
 * the pattern starts a word. */
static const char rx_head[] = "(?<=^|[^A-Z0-9_-]|[^A-Z0-9-]_|sprd-|MZ-)(?:";
#define DATA_REGEX_MAX 16384 /* longer patterns are rejected */
#define DATA_JSON_MAX (64u << 20)

static const char *const kind_names[] = {"bots", "libraries", "clients", "devices"};

/* device-detector's device type names -> DeviceType; -1 for an unknown name. Large
 * screens without touch (televisions, consoles, car and smart displays) count as
 * DESKTOP as in device.h; handheld players, cameras and watches as MOBILE. */
static int device_type_of(const char *name) {
    static const struct {
        const char *name;
        tf_device_type_t type;
    } map[] = {
        {"smartphone", TF_DEVICE_MOBILE},
        {"phablet", TF_DEVICE_MOBILE},
        {"feature phone", TF_DEVICE_MOBILE},
        {"wearable", TF_DEVICE_MOBILE},
        {"portable media player", TF_DEVICE_MOBILE},
        {"camera", TF_DEVICE_MOBILE},
        {"tablet", TF_DEVICE_TABLET},
        {"desktop", TF_DEVICE_DESKTOP},
        {"tv", TF_DEVICE_DESKTOP},
        {"console", TF_DEVICE_DESKTOP},
        {"car browser", TF_DEVICE_DESKTOP},
        {"smart display", TF_DEVICE_DESKTOP},
        {"smart speaker", TF_DEVICE_DESKTOP},
        {"peripheral", TF_DEVICE_DESKTOP},
    };
    if (!name) return -1;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].name, name) == 0) return (int)map[i].type;
    return -1;
}

static yajl_val obj_get(yajl_val obj, const char *key) {
    if (!YAJL_IS_OBJECT(obj)) return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0) return obj->u.object.values[i];
    return NULL;
}

/* Length of a leading greedy run of the pattern (".*", ".+", "[...]*", "[...]+"), or 0. */
static size_t leading_run(const char *regex) {
    size_t n = 0;
    if (regex[0] == '.') {
        n = 1;
    } else if (regex[0] == '[') {
        const char *end = strchr(regex + 1, ']');
        if (!end || memchr(regex + 1, '\\', (size_t)(end - regex - 1))) return 0;
        n = (size_t)(end - regex) + 1;
    } else {
        return 0;
    }
    if (regex[n] != '*' && regex[n] != '+') return 0;
    if (regex[n + 1] == '?' || regex[n + 1] == '+') return 0; /* lazy or possessive */
    return n + 1;
}

/* Compiles one entry's regex (wrapped as device-detector applies it) into *rule, with
 * name (may be NULL) as repl[0] and tag. Returns 0, or -1 with errstr filled. */
static int compile_entry(const char *what, size_t index, const char *regex, const char *name,
                         int tag, bool jit, rule_t *rule, char *errstr, size_t errstr_size) {
    memset(rule, 0, sizeof(*rule));
    rule->tag = tag;
    if (!regex) {
        snprintf(errstr, errstr_size, "%s[%zu]: no regex", what, index);
        return -1;
    }
    size_t rlen = strlen(regex);
    if (rlen > DATA_REGEX_MAX) {
        snprintf(errstr, errstr_size, "%s[%zu]: regex of %zu bytes is longer than %u", what, index,
                 rlen, DATA_REGEX_MAX);
        return -1;
    }
    /* A pattern that starts with a greedy run (".*X", "[a-z0-9_-]*X") matches where X
     * does, word start or not: it is compiled as X alone, without the word-start head,
     * which would otherwise retry the run from every word start (quadratic on a long
     * agent). Only whether it matches is used. */
    const char *head = rx_head;
    size_t skip = leading_run(regex);
    if (skip) {
        regex += skip;
        rlen -= skip;
        head = "(?:";
    }
    size_t hlen = strlen(head);
    char *pattern = malloc(hlen + rlen + 2);
    if (!pattern) goto oom;
    size_t plen = (size_t)snprintf(pattern, hlen + rlen + 2, "%s%s)", head, regex);
    int errcode = 0;
    PCRE2_SIZE erroff = 0;
    rule->re =
        pcre2_compile((PCRE2_SPTR)pattern, plen,
                      PCRE2_CASELESS | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP | PCRE2_NEVER_BACKSLASH_C,
                      &errcode, &erroff, NULL);
    if (!rule->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        size_t off = (size_t)erroff >= hlen ? (size_t)erroff - hlen + skip : skip;
        snprintf(errstr, errstr_size, "%s[%zu]: regex does not compile at offset %zu: %s", what,
                 index, off, (const char *)msg);
        free(pattern);
        return -1;
    }
    rule->jit_wanted = jit;
    int rc = ua_rule_prefilter(rule, pattern, plen);
    free(pattern);
    if (rc != 0) goto oom;
    if (name && name[0]) {
        rule->repl[0] = strdup(name);
        if (!rule->repl[0]) goto oom;
    }
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory loading %s", what);
    ua_rule_clear(rule);
    return -1;
}

/* A list of {"regex", "name"} entries appended to *list. */
static int load_list(yajl_val root, const char *what, rule_list_t *list, char *errstr,
                     size_t errstr_size) {
    if (!YAJL_IS_ARRAY(root)) {
        snprintf(errstr, errstr_size, "%s: the top level is not a list", what);
        return -1;
    }
    for (size_t i = 0; i < root->u.array.len; i++) {
        yajl_val e = root->u.array.values[i];
        if (!YAJL_IS_OBJECT(e)) {
            snprintf(errstr, errstr_size, "%s[%zu]: not an object", what, i);
            return -1;
        }
        rule_t rule;
        if (compile_entry(what, i, YAJL_GET_STRING(obj_get(e, "regex")),
                          YAJL_GET_STRING(obj_get(e, "name")), -1, true, &rule, errstr,
                          errstr_size) != 0)
            return -1;
        if (ua_rule_list_push(list, &rule) != 0) {
            ua_rule_clear(&rule);
            snprintf(errstr, errstr_size, "out of memory loading %s", what);
            return -1;
        }
    }
    return 0;
}

/* {brand: {"regex", "device", "models": [{"regex", "device"}]}} appended to *brands and
 * *models (brand model indexes relative to models). */
static int load_devices(yajl_val root, ua_brand_t **brands, size_t *nbrands, size_t *cap,
                        rule_list_t *models, char *errstr, size_t errstr_size) {
    if (!YAJL_IS_OBJECT(root)) {
        snprintf(errstr, errstr_size, "devices: the top level is not an object");
        return -1;
    }
    for (size_t b = 0; b < root->u.object.len; b++) {
        yajl_val e = root->u.object.values[b];
        const char *bname = root->u.object.keys[b];
        if (!YAJL_IS_OBJECT(e)) {
            snprintf(errstr, errstr_size, "devices[%zu] (%s): not an object", b, bname);
            return -1;
        }
        if (*nbrands == *cap) {
            size_t ncap = *cap ? *cap * 2 : 256;
            ua_brand_t *nv = realloc(*brands, ncap * sizeof(*nv));
            if (!nv) goto oom;
            *brands = nv;
            *cap = ncap;
        }
        ua_brand_t *br = &(*brands)[*nbrands];
        memset(br, 0, sizeof(*br));
        if (compile_entry("devices", b, YAJL_GET_STRING(obj_get(e, "regex")), bname,
                          device_type_of(YAJL_GET_STRING(obj_get(e, "device"))), true, &br->rule,
                          errstr, errstr_size) != 0)
            return -1;
        br->first = models->n;
        (*nbrands)++;
        yajl_val ms = obj_get(e, "models");
        if (!ms) continue;
        if (!YAJL_IS_ARRAY(ms)) {
            snprintf(errstr, errstr_size, "devices[%zu] (%s): models is not a list", b, bname);
            return -1;
        }
        for (size_t i = 0; i < ms->u.array.len; i++) {
            yajl_val m = ms->u.array.values[i];
            rule_t rule;
            char what[96];
            snprintf(what, sizeof(what), "devices %s models", bname);
            if (!YAJL_IS_OBJECT(m)) {
                snprintf(errstr, errstr_size, "%s[%zu]: not an object", what, i);
                return -1;
            }
            /* A model without a type has its brand's, unless it is a catch-all that
             * names whatever it captured ("model": "$1"): that knows no device. */
            int tag = device_type_of(YAJL_GET_STRING(obj_get(m, "device")));
            const char *mname = YAJL_GET_STRING(obj_get(m, "model"));
            if (tag < 0) tag = mname && strchr(mname, '$') ? UA_TAG_NONE : UA_TAG_BRAND;
            /* Model regexes run only after their brand matched: the interpreter keeps
             * start-up short. */
            if (compile_entry(what, i, YAJL_GET_STRING(obj_get(m, "regex")), NULL, tag, false,
                              &rule, errstr, errstr_size) != 0)
                return -1;
            if (ua_rule_list_push(models, &rule) != 0) {
                ua_rule_clear(&rule);
                goto oom;
            }
            br->n++;
        }
    }
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory loading devices");
    return -1;
}

/* Moves every rule of src to the end of dst; src is left empty. */
static int list_append(rule_list_t *dst, rule_list_t *src) {
    if (dst->n + src->n > dst->cap) {
        size_t ncap = dst->cap ? dst->cap : 256;
        while (ncap < dst->n + src->n)
            ncap *= 2;
        rule_t *nv = realloc(dst->v, ncap * sizeof(*nv));
        if (!nv) return -1;
        dst->v = nv;
        dst->cap = ncap;
    }
    if (src->n) memcpy(dst->v + dst->n, src->v, src->n * sizeof(rule_t));
    dst->n += src->n;
    free(src->v);
    src->v = NULL;
    src->n = src->cap = 0;
    return 0;
}

static void ua_data_index(tf_ua_classifier_t *c);
static void index_free(ua_index_t *ix);

static void brands_free(ua_brand_t *brands, size_t n) {
    for (size_t i = 0; i < n; i++)
        ua_rule_clear(&brands[i].rule);
    free(brands);
}

int tf_ua_classifier_add_data(tf_ua_classifier_t *c, tf_ua_data_kind_t kind, const char *json,
                              size_t len, char *errstr, size_t errstr_size) {
    if (errstr_size) errstr[0] = '\0';
    if (!c || !json || (int)kind < 0 || (int)kind > TF_UA_DATA_DEVICES) {
        snprintf(errstr, errstr_size, "no classifier, no data or an unknown kind of data");
        return -1;
    }
    const char *what = kind_names[kind];
    if (len > DATA_JSON_MAX) {
        snprintf(errstr, errstr_size, "%s: %zu bytes of JSON is more than %u", what, len,
                 DATA_JSON_MAX);
        return -1;
    }
    if (memchr(json, '\0', len)) {
        snprintf(errstr, errstr_size, "%s: the JSON text holds a NUL byte", what);
        return -1;
    }
    char *text = malloc(len + 1);
    if (!text) {
        snprintf(errstr, errstr_size, "out of memory loading %s", what);
        return -1;
    }
    memcpy(text, json, len);
    text[len] = '\0';
    char perr[256] = "";
    yajl_val root = yajl_tree_parse(text, perr, sizeof(perr));
    free(text);
    if (!root) {
        size_t n = strlen(perr);
        while (n > 0 && (perr[n - 1] == '\n' || perr[n - 1] == ' '))
            perr[--n] = '\0';
        for (char *p = perr; *p; p++)
            if (*p == '\n') *p = ' ';
        snprintf(errstr, errstr_size, "%s: malformed JSON: %s", what,
                 perr[0] ? perr : "parse error");
        return -1;
    }
    rule_list_t list = {NULL, 0, 0}, models = {NULL, 0, 0};
    ua_brand_t *brands = NULL;
    size_t nbrands = 0, bcap = 0;
    int rc;
    if (kind == TF_UA_DATA_DEVICES)
        rc = load_devices(root, &brands, &nbrands, &bcap, &models, errstr, errstr_size);
    else
        rc = load_list(root, what, &list, errstr, errstr_size);
    yajl_tree_free(root);
    if (rc == 0 && kind == TF_UA_DATA_DEVICES) {
        size_t base = c->models.n;
        if (c->nbrands + nbrands > c->brands_cap) {
            size_t ncap = c->brands_cap ? c->brands_cap : 256;
            while (ncap < c->nbrands + nbrands)
                ncap *= 2;
            ua_brand_t *nv = realloc(c->brands, ncap * sizeof(*nv));
            if (!nv) {
                rc = -1;
            } else {
                c->brands = nv;
                c->brands_cap = ncap;
            }
        }
        if (rc == 0 && list_append(&c->models, &models) != 0) rc = -1;
        if (rc == 0) {
            for (size_t i = 0; i < nbrands; i++) {
                brands[i].first += base;
                c->brands[c->nbrands++] = brands[i];
            }
            free(brands);
            brands = NULL;
            nbrands = 0;
        }
    } else if (rc == 0) {
        rule_list_t *dst = kind == TF_UA_DATA_BOTS        ? &c->bots
                           : kind == TF_UA_DATA_LIBRARIES ? &c->libraries
                                                          : &c->clients;
        if (list_append(dst, &list) != 0) rc = -1;
    }
    if (rc != 0 && !errstr[0]) snprintf(errstr, errstr_size, "out of memory loading %s", what);
    ua_rule_list_free(&list);
    ua_rule_list_free(&models);
    brands_free(brands, nbrands);
    if (rc == 0) {
        ua_data_index(c);
        ua_cache_clear(c);
    }
    return rc;
}

void ua_data_free(tf_ua_classifier_t *c) {
    free(c->brands_by_name);
    c->brands_by_name = NULL;
    index_free(&c->brands_ix);
    index_free(&c->models_ix);
    index_free(&c->bots_ix);
    index_free(&c->libraries_ix);
    index_free(&c->clients_ix);
    ua_rule_list_free(&c->bots);
    ua_rule_list_free(&c->libraries);
    ua_rule_list_free(&c->clients);
    ua_rule_list_free(&c->models);
    brands_free(c->brands, c->nbrands);
    c->brands = NULL;
    c->nbrands = c->brands_cap = 0;
}

static void index_free(ua_index_t *ix) {
    free(ix->off);
    free(ix->ids);
    free(ix->always);
    free(ix->stamp);
    free(ix->cand);
    memset(ix, 0, sizeof(*ix));
}

/* Not const: matching a rule counts its runs and may JIT-compile it. */
static rule_t *rule_at(void *base, size_t stride, size_t i) {
    return (rule_t *)(void *)((char *)base + i * stride);
}

/* (Re)builds the index of the n rules at base + i * stride; on out of memory leaves no
 * index (every rule is then tried, the answers do not change). */
static void index_build(ua_index_t *ix, void *base, size_t n, size_t stride) {
    index_free(ix);
    if (n == 0) return;
    ix->off = calloc(TRI_BITS + 1, sizeof(uint32_t));
    ix->stamp = calloc(n, sizeof(uint32_t));
    ix->always = malloc(n * sizeof(uint32_t));
    ix->cand = malloc(n * sizeof(uint32_t));
    size_t nids = 0;
    for (size_t r = 0; r < n; r++) {
        const rule_t *rule = rule_at(base, stride, r);
        if (rule->nsets) nids += rule->set_off[1] - rule->set_off[0];
    }
    ix->ids = malloc((nids ? nids : 1) * sizeof(uint32_t));
    uint32_t *fill = calloc(TRI_BITS, sizeof(uint32_t));
    if (!ix->off || !ix->stamp || !ix->always || !ix->cand || !ix->ids || !fill) {
        free(fill);
        index_free(ix);
        return;
    }
    /* counts, then prefix sums, then fill */
    for (size_t r = 0; r < n; r++) {
        const rule_t *rule = rule_at(base, stride, r);
        if (!rule->nsets) {
            ix->always[ix->nalways++] = (uint32_t)r;
            continue;
        }
        for (uint32_t i = rule->set_off[0]; i < rule->set_off[1]; i++)
            ix->off[rule->tri[rule->lit_off[i]] + 1]++;
    }
    for (size_t h = 0; h < TRI_BITS; h++)
        ix->off[h + 1] += ix->off[h];
    for (size_t r = 0; r < n; r++) {
        const rule_t *rule = rule_at(base, stride, r);
        for (uint32_t i = rule->nsets ? rule->set_off[0] : 0; rule->nsets && i < rule->set_off[1];
             i++) {
            uint16_t h = rule->tri[rule->lit_off[i]];
            ix->ids[ix->off[h] + fill[h]++] = (uint32_t)r;
        }
    }
    free(fill);
    ix->n = n;
}

int ua_ci_compare(const char *a, const char *b) {
    for (;; a++, b++) {
        unsigned char x = (unsigned char)ua_ascii_lower(*a), y = (unsigned char)ua_ascii_lower(*b);
        if (x != y || !x) return x < y ? -1 : x > y;
    }
}

typedef struct named_s {
    const char *name;
    uint32_t index;
} named_t;

static int cmp_named(const void *a, const void *b) {
    const named_t *x = a, *y = b;
    int r = ua_ci_compare(x->name, y->name);
    return r ? r : (x->index < y->index ? -1 : x->index > y->index);
}

static void ua_data_index(tf_ua_classifier_t *c) {
    free(c->brands_by_name);
    c->brands_by_name = NULL;
    named_t *tmp = c->nbrands ? malloc(c->nbrands * sizeof(*tmp)) : NULL;
    c->brands_by_name = tmp ? malloc(c->nbrands * sizeof(uint32_t)) : NULL;
    if (c->brands_by_name) {
        for (size_t b = 0; b < c->nbrands; b++) {
            const char *name = c->brands[b].rule.repl[0];
            tmp[b] = (named_t){name ? name : "", (uint32_t)b};
        }
        qsort(tmp, c->nbrands, sizeof(*tmp), cmp_named);
        for (size_t b = 0; b < c->nbrands; b++)
            c->brands_by_name[b] = tmp[b].index;
    }
    free(tmp);
    index_build(&c->bots_ix, c->bots.v, c->bots.n, sizeof(rule_t));
    index_build(&c->libraries_ix, c->libraries.v, c->libraries.n, sizeof(rule_t));
    index_build(&c->clients_ix, c->clients.v, c->clients.n, sizeof(rule_t));
    index_build(&c->brands_ix, c->brands, c->nbrands, sizeof(ua_brand_t));
    index_build(&c->models_ix, c->models.v, c->models.n, sizeof(rule_t));
}

/* A new query number for the stamps; on wrap-around every stamp is forgotten. */
static uint32_t next_query(tf_ua_classifier_t *c) {
    if (++c->query == 0) {
        memset(c->bucket_stamp, 0, sizeof(c->bucket_stamp));
        ua_index_t *all[] = {&c->bots_ix, &c->libraries_ix, &c->clients_ix, &c->brands_ix,
                             &c->models_ix};
        for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++)
            if (all[k]->stamp) memset(all[k]->stamp, 0, all[k]->n * sizeof(uint32_t));
        c->query = 1;
    }
    return c->query;
}

bool ua_list_any_match(tf_ua_classifier_t *c, const rule_list_t *list, ua_index_t *ix, size_t len) {
    if (!ix->off) {
        for (size_t i = 0; i < list->n; i++)
            if (ua_rule_match(c, &list->v[i], c->subject, len) > 0) return true;
        return false;
    }
    uint32_t q = next_query(c);
    const unsigned char *s = (const unsigned char *)c->lower;
    for (size_t i = 0; i + 2 < len; i++) {
        uint16_t h = ua_tri_hash(s[i], s[i + 1], s[i + 2]);
        if (c->bucket_stamp[h] == q) continue;
        c->bucket_stamp[h] = q;
        for (uint32_t k = ix->off[h]; k < ix->off[h + 1]; k++) {
            uint32_t r = ix->ids[k];
            if (ix->stamp[r] == q) continue;
            ix->stamp[r] = q;
            if (ua_rule_match(c, &list->v[r], c->subject, len) > 0) return true;
        }
    }
    for (size_t k = 0; k < ix->nalways; k++)
        if (ua_rule_match(c, &list->v[ix->always[k]], c->subject, len) > 0) return true;
    return false;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

long ua_index_first_match(tf_ua_classifier_t *c, ua_index_t *ix, void *base, size_t stride,
                          size_t lo, size_t hi, const char *lower, const char *subject,
                          size_t len) {
    ua_trigrams_compute(c, lower, len);
    if (!ix->off) {
        for (size_t i = lo; i < hi; i++)
            if (ua_rule_match(c, rule_at(base, stride, i), subject, len) > 0) return (long)i;
        return -1;
    }
    uint32_t q = next_query(c);
    size_t ncand = 0;
    const unsigned char *s = (const unsigned char *)lower;
    for (size_t i = 0; i + 2 < len; i++) {
        uint16_t h = ua_tri_hash(s[i], s[i + 1], s[i + 2]);
        if (c->bucket_stamp[h] == q) continue;
        c->bucket_stamp[h] = q;
        for (uint32_t k = ix->off[h]; k < ix->off[h + 1]; k++) {
            uint32_t r = ix->ids[k];
            if (r < lo || r >= hi || ix->stamp[r] == q) continue;
            ix->stamp[r] = q;
            ix->cand[ncand++] = r;
        }
    }
    for (size_t k = 0; k < ix->nalways; k++)
        if (ix->always[k] >= lo && ix->always[k] < hi) ix->cand[ncand++] = ix->always[k];
    qsort(ix->cand, ncand, sizeof(uint32_t), cmp_u32);
    for (size_t k = 0; k < ncand; k++)
        if (ua_rule_match(c, rule_at(base, stride, ix->cand[k]), subject, len) > 0)
            return (long)ix->cand[k];
    return -1;
}
