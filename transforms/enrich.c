/* enrich.c — URL, attribution and device for one event; the enriched JSON. */
#include "transforms/enrich.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

void tf_enriched_init(tf_enriched_t *en) {
    memset(en, 0, sizeof(*en));
    tf_url_init(&en->url);
    tf_attribution_init(&en->attribution);
}

void tf_enriched_reset(tf_enriched_t *en) {
    tf_url_reset(&en->url);
    tf_attribution_reset(&en->attribution);
    tf_enriched_init(en);
}

static const char *nonempty(const char *s) { return s && *s ? s : NULL; }

/* ---- the (page URL, referrer) cache ---- */

typedef struct enrich_slot_s {
    uint64_t hash;
    char *url, *referrer; /* the key; referrer NULL when the event had none */
    bool used;
    tf_url_t parsed;
    tf_attribution_t attribution;
} enrich_slot_t;

struct tf_enrich_cache_s {
    enrich_slot_t *slots;
    size_t mask;
    uint64_t hits, misses;
};

tf_enrich_cache_t *tf_enrich_cache_new(size_t capacity) {
    size_t n = 16;
    while (n < capacity && n < ((size_t)1 << 24)) n <<= 1;
    tf_enrich_cache_t *ec = calloc(1, sizeof(*ec));
    if (!ec) return NULL;
    ec->slots = calloc(n, sizeof(*ec->slots));
    if (!ec->slots) {
        free(ec);
        return NULL;
    }
    ec->mask = n - 1;
    return ec;
}

static void slot_clear(enrich_slot_t *sl) {
    free(sl->url);
    free(sl->referrer);
    tf_url_reset(&sl->parsed);
    tf_attribution_reset(&sl->attribution);
    memset(sl, 0, sizeof(*sl));
}

void tf_enrich_cache_destroy(tf_enrich_cache_t *ec) {
    if (!ec) return;
    for (size_t i = 0; i <= ec->mask; i++) slot_clear(&ec->slots[i]);
    free(ec->slots);
    free(ec);
}

void tf_enrich_cache_stats(const tf_enrich_cache_t *ec, uint64_t *hits, uint64_t *misses) {
    *hits = ec ? ec->hits : 0;
    *misses = ec ? ec->misses : 0;
}

/* FNV-1a over url, a separator, and the referrer (NULL and "" differ). */
static uint64_t key_hash(const char *url, const char *referrer) {
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = url ? url : ""; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ (referrer ? 0xff : 0xfe)) * 1099511628211ULL;
    for (const char *p = referrer ? referrer : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static bool str_same(const char *a, const char *b) {
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* strdup that keeps NULL; sets *oom on failure. */
static char *dup_or_null(const char *s, bool *oom) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *oom = true;
    return d;
}

static int copy_url(const tf_url_t *from, tf_url_t *to) {
    bool oom = false;
    to->scheme = dup_or_null(from->scheme, &oom);
    to->host = dup_or_null(from->host, &oom);
    to->path = dup_or_null(from->path, &oom);
    to->utm_source = dup_or_null(from->utm_source, &oom);
    to->utm_medium = dup_or_null(from->utm_medium, &oom);
    to->utm_campaign = dup_or_null(from->utm_campaign, &oom);
    to->utm_term = dup_or_null(from->utm_term, &oom);
    to->utm_content = dup_or_null(from->utm_content, &oom);
    to->click_id_name = dup_or_null(from->click_id_name, &oom);
    to->click_id = dup_or_null(from->click_id, &oom);
    to->campaign_key = dup_or_null(from->campaign_key, &oom);
    return oom ? -1 : 0;
}

static int copy_attribution(const tf_attribution_t *from, tf_attribution_t *to) {
    bool oom = false;
    to->referrer_domain = dup_or_null(from->referrer_domain, &oom);
    to->source = dup_or_null(from->source, &oom);
    to->medium = dup_or_null(from->medium, &oom);
    to->campaign = dup_or_null(from->campaign, &oom);
    to->term = dup_or_null(from->term, &oom);
    to->content = dup_or_null(from->content, &oom);
    return oom ? -1 : 0;
}

/* URL and attribution of ev into en, computed (0), or -1 when out of memory. */
static int compute_url_attribution(const tf_event_t *ev, tf_enriched_t *en) {
    char errstr[128];
    if (ev->url) {
        int rc = tf_url_parse(ev->url, &en->url, errstr, sizeof(errstr));
        if (rc == -2) return -1; /* out of memory: not the event's fault */
        if (rc != 0) tf_url_reset(&en->url); /* unparseable here: no derived fields */
    }
    /* Fails only when memory ran out (an unparseable referrer counts as none). */
    return tf_attribution_compute(&en->url, ev->referrer, &en->attribution, errstr,
                                  sizeof(errstr)) != 0
               ? -1
               : 0;
}

/* The same through the cache: a hit copies the stored parse (no URL parsing). */
static int cached_url_attribution(const tf_event_t *ev, tf_enrich_cache_t *ec,
                                  tf_enriched_t *en) {
    uint64_t h = key_hash(ev->url, ev->referrer);
    enrich_slot_t *sl = &ec->slots[h & ec->mask];
    if (sl->used && sl->hash == h && str_same(sl->url, ev->url) &&
        str_same(sl->referrer, ev->referrer)) {
        ec->hits++;
        if (copy_url(&sl->parsed, &en->url) != 0 ||
            copy_attribution(&sl->attribution, &en->attribution) != 0)
            return -1;
        return 0;
    }
    ec->misses++;
    if (compute_url_attribution(ev, en) != 0) return -1;
    /* Store a copy; a failure to store is harmless (the next event recomputes). */
    slot_clear(sl);
    bool oom = false;
    sl->url = dup_or_null(ev->url, &oom);
    sl->referrer = dup_or_null(ev->referrer, &oom);
    if (oom || copy_url(&en->url, &sl->parsed) != 0 ||
        copy_attribution(&en->attribution, &sl->attribution) != 0) {
        slot_clear(sl);
        return 0;
    }
    sl->hash = h;
    sl->used = true;
    return 0;
}

int tf_enrich(const tf_event_t *ev, tf_ua_classifier_t *clf, tf_enriched_t *en) {
    return tf_enrich_cached(ev, clf, NULL, en);
}

int tf_enrich_cached(const tf_event_t *ev, tf_ua_classifier_t *clf, tf_enrich_cache_t *cache,
                     tf_enriched_t *en) {
    tf_enriched_reset(en);
    int rc = cache ? cached_url_attribution(ev, cache, en) : compute_url_attribution(ev, en);
    if (rc != 0) {
        tf_enriched_reset(en);
        return -1;
    }

    tf_device_hints_t hints = {
        .has_mobile = ev->ch_has_mobile,
        .mobile = ev->ch_mobile,
        .platform = ev->ch_platform,
        .model = ev->ch_model,
        .screen_width = ev->screen_width,
        .screen_height = ev->screen_height,
    };
    if (tf_ua_classify(clf, ev->user_agent, &hints, &en->ua) != 0) return -1;

    tf_sess_context_t *c = &en->context;
    c->referrer = ev->referrer;
    c->referrer_domain = en->attribution.referrer_domain;
    c->utm_source = en->attribution.source;
    c->utm_medium = en->attribution.medium;
    c->utm_campaign = en->attribution.campaign;
    c->utm_term = en->attribution.term;
    c->utm_content = en->attribution.content;
    c->device_type = (int)en->ua.type;
    c->browser = nonempty(en->ua.browser);
    c->browser_version = nonempty(en->ua.browser_version);
    c->os = nonempty(en->ua.os);
    c->os_version = nonempty(en->ua.os_version);
    c->user_agent = ev->user_agent;
    c->country = ev->geo_country;
    c->region = ev->geo_region;
    c->city = ev->geo_city;
    c->language = ev->language;
    c->screen_width = ev->screen_width;
    c->screen_height = ev->screen_height;
    en->path = en->url.path;
    en->campaign_key = en->url.campaign_key;
    return 0;
}

/* The feed's JSON object, written directly: yajl's generator spent ~500 instructions on
 * each of the ~25 strings of an event, a sixth of ingest's CPU. Same bytes as yajl's
 * compact output (tests/unit/test_enrich.c compares them): '"' '\\' and the control
 * characters escaped (\b \f \n \r \t, else \u00XX), every other byte as it is. */
typedef struct json_out_s {
    char *p;
    size_t len, cap;
    bool failed;
} json_out_t;

static bool json_reserve(json_out_t *o, size_t more) {
    if (o->failed) return false;
    if (o->len + more <= o->cap) return true;
    size_t cap = o->cap ? o->cap : 1024;
    while (cap < o->len + more) cap *= 2;
    char *p = realloc(o->p, cap);
    if (!p) {
        o->failed = true;
        return false;
    }
    o->p = p;
    o->cap = cap;
    return true;
}

static void json_raw(json_out_t *o, const char *s, size_t n) {
    if (!json_reserve(o, n)) return;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void json_string(json_out_t *o, const char *s) {
    size_t n = strlen(s);
    if (!json_reserve(o, 6 * n + 2)) return;
    char *w = o->p + o->len;
    *w++ = '"';
    const unsigned char *r = (const unsigned char *)s, *end = r + n;
    while (r < end) {
        const unsigned char *run = r;
        while (r < end && *r >= 0x20 && *r != '"' && *r != '\\') r++;
        memcpy(w, run, (size_t)(r - run));
        w += r - run;
        if (r == end) break;
        unsigned char c = *r++;
        *w++ = '\\';
        switch (c) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '\b': *w++ = 'b'; break;
        case '\f': *w++ = 'f'; break;
        case '\n': *w++ = 'n'; break;
        case '\r': *w++ = 'r'; break;
        case '\t': *w++ = 't'; break;
        default:
            memcpy(w, "u00", 3);
            w[3] = "0123456789ABCDEF"[c >> 4];
            w[4] = "0123456789ABCDEF"[c & 15];
            w += 5;
        }
    }
    *w++ = '"';
    o->len = (size_t)(w - o->p);
}

/* ,"key": (keys are constants that need no escaping) */
static void json_key(json_out_t *o, const char *key) {
    json_raw(o, o->len > 1 ? ",\"" : "\"", o->len > 1 ? 2 : 1);
    json_raw(o, key, strlen(key));
    json_raw(o, "\":", 2);
}

static void put_str(json_out_t *o, const char *key, const char *value) {
    json_key(o, key);
    if (value)
        json_string(o, value);
    else
        json_raw(o, "null", 4);
}

char *tf_enriched_json(const tf_event_t *ev, const tf_enriched_t *en, const char *session_id,
                       size_t *len) {
    json_out_t o = {0};
    char when[32];
    ev_format_rfc3339_ms(ev->timestamp_ms, when);
    json_raw(&o, "{", 1);
    put_str(&o, "eventId", ev->event_id);
    put_str(&o, "type", tf_event_type_name(ev->type));
    put_str(&o, "occurredAt", when);
    put_str(&o, "visitorId", ev->visitor_id);
    put_str(&o, "userId", ev->user_id);
    put_str(&o, "sessionId", session_id);
    put_str(&o, "name", ev->name);
    put_str(&o, "url", ev->url);
    put_str(&o, "path", en->path);
    put_str(&o, "deviceType", tf_device_type_name(en->ua.type));
    put_str(&o, "referrerDomain", en->attribution.referrer_domain);
    put_str(&o, "utmSource", en->attribution.source);
    put_str(&o, "utmMedium", en->attribution.medium);
    put_str(&o, "utmCampaign", en->attribution.campaign);
    put_str(&o, "utmTerm", en->attribution.term);
    put_str(&o, "utmContent", en->attribution.content);
    if (ev->has_value) {
        json_key(&o, "value");
        json_raw(&o, ev->value_text, strlen(ev->value_text));
        put_str(&o, "currency", ev->currency);
    }
    if (ev->properties_json) {
        /* Already validated compact JSON: embed verbatim. */
        json_key(&o, "properties");
        json_raw(&o, ev->properties_json, strlen(ev->properties_json));
    }
    json_raw(&o, "}", 2); /* with the NUL */
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    *len = o.len - 1;
    return o.p;
}
