/* device_models.c — the type of a device from the data sets' brands and models
 * (device-detector's device/mobiles.json).
 *
 * device-detector runs its ~2,000 brand regexes over the whole agent; many are
 * alternations of hundreds of model numbers without a literal the prefilter could use,
 * so that costs milliseconds on a long agent. Here they run over a short subject built
 * from what uap-core already parsed: "Android <version>; <model> Build/" (the form the
 * regexes expect, at most ~100 bytes whatever the agent), and only the models of the
 * brand uap-core names when device-detector knows it. */
#include "transforms/device_internal.h"

#include <stdio.h>

#define MODEL_MAX 64 /* a longer uap-core model is cut */

/* device-detector's brand of the name uap-core gives, or NULL ("Generic_Android" and
 * the like name no brand). */
static const ua_brand_t *brand_by_name(const tf_ua_classifier_t *c, const char *name) {
    if (!name[0] || ua_starts_with(name, "Generic")) return NULL;
    if (!c->brands_by_name) { /* no index (out of memory): a scan */
        for (size_t b = 0; b < c->nbrands; b++)
            if (c->brands[b].rule.repl[0] && ua_ci_equal(c->brands[b].rule.repl[0], name))
                return &c->brands[b];
        return NULL;
    }
    size_t lo = 0, hi = c->nbrands;
    while (lo < hi) { /* the first of equal names, as the scan would find */
        size_t mid = lo + (hi - lo) / 2;
        const char *bn = c->brands[c->brands_by_name[mid]].rule.repl[0];
        if (ua_ci_compare(bn ? bn : "", name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == c->nbrands) return NULL;
    const ua_brand_t *br = &c->brands[c->brands_by_name[lo]];
    return br->rule.repl[0] && ua_ci_equal(br->rule.repl[0], name) ? br : NULL;
}

/* The type its first matching model gives (its own, else the brand's); -1 when that
 * model gives none or no model matches. */
static int brand_models_type(tf_ua_classifier_t *c, const ua_brand_t *br, const char *lower,
                             const char *subject, size_t len) {
    long i = ua_index_first_match(c, &c->models_ix, c->models.v, sizeof(rule_t), br->first,
                                  br->first + br->n, lower, subject, len);
    if (i < 0) return -1;
    const rule_t *m = &c->models.v[i];
    return m->tag == UA_TAG_BRAND ? br->rule.tag : m->tag;
}

int ua_model_type(tf_ua_classifier_t *c, const tf_ua_parse_t *p) {
    if (c->nbrands == 0) return -1;
    const char *model = p->device_model;
    size_t mlen = strlen(model);
    /* Chrome's reduced agent says "K" for every device; uap-core's generic devices
     * ("Generic" "Smartphone", "Tablet", "Feature Phone") name no model. */
    if (mlen < 2 || strcmp(p->device_brand, "Generic") == 0) return -1;
    if (mlen > MODEL_MAX) mlen = MODEL_MAX;
    char subject[MODEL_MAX + 96], lower[sizeof(subject)];
    int n = snprintf(subject, sizeof(subject), "Android %s%s%s; %.*s Build/", p->os_major,
                     p->os_minor[0] ? "." : "", p->os_minor, (int)mlen, model);
    if (n < 0) return -1;
    size_t len = (size_t)n < sizeof(subject) ? (size_t)n : sizeof(subject) - 1;
    for (size_t i = 0; i < len; i++)
        lower[i] = ua_ascii_lower(subject[i]);

    const ua_brand_t *br = brand_by_name(c, p->device_brand);
    if (!br) {
        long b = ua_index_first_match(c, &c->brands_ix, c->brands, sizeof(ua_brand_t), 0,
                                      c->nbrands, lower, subject, len);
        if (b < 0) return -1;
        br = &c->brands[b];
    }
    return brand_models_type(c, br, lower, subject, len);
}
