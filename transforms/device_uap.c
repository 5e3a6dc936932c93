/* device_uap.c — uap-core's regexes.yaml on PCRE2 (JIT, bounded): loading, matching
 * and the raw parse (browser, OS, device family) of one agent. */
#include "transforms/device_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static const char *const section_names[SECTION_COUNT] = {"user_agent_parsers", "os_parsers",
                                                         "device_parsers"};
static const char *const repl_keys[SECTION_COUNT][RULE_MAX_REPL] = {
    {"family_replacement", "v1_replacement", "v2_replacement", "v3_replacement", NULL},
    {"os_replacement", "os_v1_replacement", "os_v2_replacement", "os_v3_replacement",
     "os_v4_replacement"},
    {"device_replacement", "brand_replacement", "model_replacement", NULL, NULL},
};

/* ---- small string helpers -------------------------------------------------------- */

/* Copies src (n bytes) into dst[size] as valid UTF-8 without control characters:
 * invalid bytes become '?', controls become ' '; cut on a character boundary. */
void ua_copy_clean(char *dst, size_t size, const char *src, size_t n) {
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

/* Case-insensitive ASCII equality. */
bool ua_ci_equal(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (ua_ascii_lower(*a) != ua_ascii_lower(*b)) return false;
    return *a == *b;
}

/* Case-insensitive ASCII substring test of a short needle in a short haystack. */
bool ua_ci_contains(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t k = 0;
        while (k < n && p[k] && ua_ascii_lower(p[k]) == needle[k])
            k++;
        if (k == n) return true;
    }
    return false;
}

/* ---- loading --------------------------------------------------------------------- */

void ua_rule_clear(rule_t *rule) {
    pcre2_code_free(rule->re);
    for (int k = 0; k < RULE_MAX_REPL; k++)
        free(rule->repl[k]);
    free(rule->set_off);
    free(rule->lit_off);
    free(rule->tri);
    memset(rule, 0, sizeof(*rule));
}

void ua_rule_list_free(rule_list_t *list) {
    for (size_t i = 0; i < list->n; i++)
        ua_rule_clear(&list->v[i]);
    free(list->v);
    list->v = NULL;
    list->n = list->cap = 0;
}

int ua_rule_list_push(rule_list_t *list, const rule_t *rule) {
    if (list->n == list->cap) {
        size_t ncap = list->cap ? list->cap * 2 : 256;
        rule_t *nv = realloc(list->v, ncap * sizeof(*nv));
        if (!nv) return -1;
        list->v = nv;
        list->cap = ncap;
    }
    list->v[list->n++] = *rule;
    return 0;
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
    rule.jit_wanted = true;
    if (ua_rule_prefilter(&rule, pattern, pattern_len) != 0) goto oom;
    if (ua_rule_list_push(list, &rule) != 0) goto oom;
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory loading %s", sname);
fail:
    ua_rule_clear(&rule);
    return -1;
}

int ua_uap_load(tf_ua_classifier_t *c, const char *yaml_text, size_t len, char *errstr,
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

/* ---- matching -------------------------------------------------------------------- */

/* Runs one rule on the subject. Returns the number of ovector pairs set (> 0) on a
 * match, 0 when it does not match or stopped at a limit. */
int ua_rule_match(tf_ua_classifier_t *c, rule_t *rule, const char *subject, size_t len) {
    if (!ua_rule_may_match(c, rule)) return 0;
    /* JIT is an optimisation: without it the interpreter runs, under the same limits. */
    if (rule->jit_wanted && ++rule->runs >= UA_JIT_AFTER) {
        if (pcre2_jit_compile(rule->re, PCRE2_JIT_COMPLETE) == 0) c->jit_compiled++;
        rule->jit_wanted = false;
    }
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
        while (b < n && ua_is_space(tmp[b]))
            b++;
        while (n > b && ua_is_space(tmp[n - 1]))
            n--;
        ua_copy_clean(dst, size, tmp + b, n - b);
        return;
    }
    const char *gs;
    size_t gl;
    if (default_group > 0 && group_span(c, npairs, default_group, subject, &gs, &gl)) {
        ua_copy_clean(dst, size, gs, gl);
        return;
    }
    dst[0] = '\0';
}

void ua_parse_subject(tf_ua_classifier_t *c, const char *subject, size_t len, tf_ua_parse_t *out) {
    memset(out, 0, sizeof(*out));
    ua_trigrams_compute(c, c->lower, len);
    /* Browser: the first rule that yields a family wins. */
    const rule_list_t *list = &c->rules[SECTION_UA];
    for (size_t i = 0; i < list->n; i++) {
        rule_t *r = &list->v[i];
        int np = ua_rule_match(c, r, subject, len);
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
        rule_t *r = &list->v[i];
        int np = ua_rule_match(c, r, subject, len);
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
        rule_t *r = &list->v[i];
        int np = ua_rule_match(c, r, subject, len);
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
size_t ua_set_subject(tf_ua_classifier_t *c, const char *ua) {
    size_t n = 0;
    if (ua)
        while (n < TF_UA_MAX_BYTES && ua[n])
            n++;
    if (n) memcpy(c->subject, ua, n);
    c->subject[n] = '\0';
    for (size_t i = 0; i < n; i++)
        c->lower[i] = ua_ascii_lower(c->subject[i]);
    c->lower[n] = '\0';
    return n;
}

int tf_ua_parse(tf_ua_classifier_t *c, const char *ua, tf_ua_parse_t *out) {
    ua_query_begin(c);
    size_t n = ua_set_subject(c, ua);
    ua_parse_subject(c, c->subject, n, out);
    ua_query_end(c);
    return 0;
}
