/* enrich.c — URL, attribution and device for one event; the enriched JSON. */
#include "transforms/enrich.h"

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

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

int tf_enrich(const tf_event_t *ev, tf_ua_classifier_t *clf, tf_enriched_t *en) {
    char errstr[128];
    tf_enriched_reset(en);
    if (ev->url) {
        int rc = tf_url_parse(ev->url, &en->url, errstr, sizeof(errstr));
        if (rc == -2) return -1; /* out of memory: not the event's fault */
        if (rc != 0) tf_url_reset(&en->url); /* unparseable here: no derived fields */
    }
    /* Fails only when memory ran out (an unparseable referrer counts as none). */
    if (tf_attribution_compute(&en->url, ev->referrer, &en->attribution, errstr,
                               sizeof(errstr)) != 0) {
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

static void put_str(yajl_gen g, const char *key, const char *value) {
    yajl_gen_string(g, (const unsigned char *)key, strlen(key));
    if (value)
        yajl_gen_string(g, (const unsigned char *)value, strlen(value));
    else
        yajl_gen_null(g);
}

char *tf_enriched_json(const tf_event_t *ev, const tf_enriched_t *en, const char *session_id,
                       size_t *len) {
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g) return NULL;
    char when[32];
    ev_format_rfc3339_ms(ev->timestamp_ms, when);
    yajl_gen_map_open(g);
    put_str(g, "eventId", ev->event_id);
    put_str(g, "type", tf_event_type_name(ev->type));
    put_str(g, "occurredAt", when);
    put_str(g, "visitorId", ev->visitor_id);
    put_str(g, "userId", ev->user_id);
    put_str(g, "sessionId", session_id);
    put_str(g, "name", ev->name);
    put_str(g, "url", ev->url);
    put_str(g, "path", en->path);
    put_str(g, "deviceType", tf_device_type_name(en->ua.type));
    put_str(g, "referrerDomain", en->attribution.referrer_domain);
    put_str(g, "utmSource", en->attribution.source);
    put_str(g, "utmMedium", en->attribution.medium);
    put_str(g, "utmCampaign", en->attribution.campaign);
    put_str(g, "utmTerm", en->attribution.term);
    put_str(g, "utmContent", en->attribution.content);
    if (ev->has_value) {
        yajl_gen_string(g, (const unsigned char *)"value", 5);
        yajl_gen_number(g, ev->value_text, strlen(ev->value_text));
        put_str(g, "currency", ev->currency);
    }
    if (ev->properties_json) {
        /* Already validated compact JSON: embed verbatim. */
        yajl_gen_string(g, (const unsigned char *)"properties", 10);
        yajl_gen_number(g, ev->properties_json, strlen(ev->properties_json));
    }
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t n;
    char *out = NULL;
    if (yajl_gen_get_buf(g, &buf, &n) == yajl_gen_status_ok && (out = malloc(n + 1))) {
        memcpy(out, buf, n);
        out[n] = '\0';
        *len = n;
    }
    yajl_gen_free(g);
    return out;
}
