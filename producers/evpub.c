/* evpub.c — build, validate and publish raw tracking events (see evpub.h). */
#include "producers/evpub.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/util.h"
#include "producers/kprod.h"
#include "transforms/event.h"

#define EVPUB_JSON_CAP (TF_EVENT_MAX_BYTES + 1) /* anything longer is refused anyway */

struct evpub_event_s {
    char *type, *visitor_id, *event_id;
    int64_t timestamp_ms;
    char *user_id, *name, *url, *referrer, *title, *user_agent, *language, *ip, *page_view_id;
    int ch_mobile; /* -1: not sent */
    int has_client_hints;
    char *ch_platform, *ch_model;
    int has_geo;
    char *geo_country, *geo_region, *geo_city;
    int has_screen, screen_width, screen_height;
    int has_time_on_page;
    double time_on_page;
    int has_scroll_depth, scroll_depth;
    char *value_text, *currency;
    char *properties_json; /* given whole */
    char *props;           /* built by add_property: members without the braces */
    size_t props_len;
};

struct evpub_publisher_s {
    kprod_t *kp;
    evpub_stats_t stats;
    uint64_t failed_reported; /* failures already returned by evpub_flush */
};

/* ---- strings and random ids ------------------------------------------------------- */

static int set_str(char **field, const char *value) {
    if (!value) {
        free(*field);
        *field = NULL;
        return 0;
    }
    size_t n = strlen(value);
    if (n > EVPUB_MAX_STRING) return -1;
    char *copy = malloc(n + 1);
    if (!copy) return -1;
    memcpy(copy, value, n + 1);
    free(*field);
    *field = copy;
    return 0;
}

/* 16 random bytes from the kernel; a clock/pid mix only if that is unavailable. */
static void random_bytes(uint8_t out[16]) {
    size_t got = 0;
    while (got < 16) {
        ssize_t n = getrandom(out + got, 16 - got, 0);
        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            break;
        }
    }
    if (got == 16) return;
    static uint64_t counter;
    uint64_t x =
        (uint64_t)ev_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (++counter * 0x9e3779b97f4a7c15ULL);
    for (int i = 0; i < 16; i++) {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 29;
        out[i] = (uint8_t)x;
    }
}

const char *evpub_event_id(evpub_event_t *ev) {
    if (!ev->event_id) {
        uint8_t b[16];
        random_bytes(b);
        b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
        b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        char text[37];
        ev_uuid_format(b, text);
        if (set_str(&ev->event_id, text) != 0) return NULL;
    }
    return ev->event_id;
}

/* ---- events ------------------------------------------------------------------------ */

evpub_event_t *evpub_event_new(const char *type, const char *visitor_id, int64_t timestamp_ms) {
    if (!type || !visitor_id) return NULL;
    evpub_event_t *ev = calloc(1, sizeof(*ev));
    if (!ev) return NULL;
    ev->ch_mobile = -1;
    ev->timestamp_ms = timestamp_ms;
    if (set_str(&ev->type, type) != 0 || set_str(&ev->visitor_id, visitor_id) != 0) {
        evpub_event_destroy(ev);
        return NULL;
    }
    return ev;
}

void evpub_event_destroy(evpub_event_t *ev) {
    if (!ev) return;
    char *strings[] = {ev->type,        ev->visitor_id, ev->event_id,    ev->user_id,
                       ev->name,        ev->url,        ev->referrer,    ev->title,
                       ev->user_agent,  ev->language,   ev->ip,          ev->page_view_id,
                       ev->ch_platform, ev->ch_model,   ev->geo_country, ev->geo_region,
                       ev->geo_city,    ev->value_text, ev->currency,    ev->properties_json,
                       ev->props};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) free(strings[i]);
    free(ev);
}

int evpub_event_set_event_id(evpub_event_t *ev, const char *v) { return set_str(&ev->event_id, v); }
int evpub_event_set_user_id(evpub_event_t *ev, const char *v) { return set_str(&ev->user_id, v); }
int evpub_event_set_name(evpub_event_t *ev, const char *v) { return set_str(&ev->name, v); }
int evpub_event_set_url(evpub_event_t *ev, const char *v) { return set_str(&ev->url, v); }
int evpub_event_set_referrer(evpub_event_t *ev, const char *v) { return set_str(&ev->referrer, v); }
int evpub_event_set_title(evpub_event_t *ev, const char *v) { return set_str(&ev->title, v); }
int evpub_event_set_user_agent(evpub_event_t *ev, const char *v) {
    return set_str(&ev->user_agent, v);
}
int evpub_event_set_language(evpub_event_t *ev, const char *v) { return set_str(&ev->language, v); }
int evpub_event_set_ip(evpub_event_t *ev, const char *v) { return set_str(&ev->ip, v); }
int evpub_event_set_page_view_id(evpub_event_t *ev, const char *v) {
    return set_str(&ev->page_view_id, v);
}

/* Sets two or three string fields at once, all or none. */
static int set_strs(char **f1, const char *v1, char **f2, const char *v2, char **f3,
                    const char *v3) {
    char *a = NULL, *b = NULL, *c = NULL;
    if (set_str(&a, v1) != 0 || set_str(&b, v2) != 0 || (f3 && set_str(&c, v3) != 0)) {
        free(a);
        free(b);
        free(c);
        return -1;
    }
    free(*f1);
    free(*f2);
    *f1 = a;
    *f2 = b;
    if (f3) {
        free(*f3);
        *f3 = c;
    }
    return 0;
}

int evpub_event_set_client_hints(evpub_event_t *ev, int mobile, const char *platform,
                                 const char *model) {
    if (set_strs(&ev->ch_platform, platform, &ev->ch_model, model, NULL, NULL) != 0) return -1;
    ev->ch_mobile = mobile < 0 ? -1 : mobile != 0;
    ev->has_client_hints = mobile >= 0 || platform || model;
    return 0;
}

int evpub_event_set_geo(evpub_event_t *ev, const char *country, const char *region,
                        const char *city) {
    if (set_strs(&ev->geo_country, country, &ev->geo_region, region, &ev->geo_city, city) != 0)
        return -1;
    ev->has_geo = country || region || city;
    return 0;
}

void evpub_event_set_screen(evpub_event_t *ev, int width, int height) {
    ev->has_screen = 1;
    ev->screen_width = width;
    ev->screen_height = height;
}

void evpub_event_set_time_on_page(evpub_event_t *ev, double seconds) {
    ev->has_time_on_page = 1;
    ev->time_on_page = seconds;
}

void evpub_event_set_scroll_depth(evpub_event_t *ev, int percent) {
    ev->has_scroll_depth = 1;
    ev->scroll_depth = percent;
}

int evpub_event_set_value_text(evpub_event_t *ev, const char *value, const char *currency) {
    return set_strs(&ev->value_text, value, &ev->currency, currency, NULL, NULL);
}

int evpub_event_set_value(evpub_event_t *ev, double value, const char *currency) {
    char text[64];
    if (!isfinite(value)) {
        /* Not representable in JSON: sent as text the validator refuses. */
        snprintf(text, sizeof(text), "\"%s\"", isnan(value) ? "NaN" : "Infinity");
    } else {
        snprintf(text, sizeof(text), "%.15g", value);
    }
    return evpub_event_set_value_text(ev, text, currency);
}

int evpub_event_set_properties_json(evpub_event_t *ev, const char *json_object) {
    if (set_str(&ev->properties_json, json_object) != 0) return -1;
    free(ev->props);
    ev->props = NULL;
    ev->props_len = 0;
    return 0;
}

/* ---- JSON ---------------------------------------------------------------------------- */

typedef struct jbuf_s {
    char *p;
    size_t len, cap;
    int failed; /* out of memory or over the cap */
    int over;   /* over the cap */
} jbuf_t;

static void jput(jbuf_t *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        if (b->len + n + 1 > EVPUB_JSON_CAP + 1) {
            b->failed = b->over = 1;
            return;
        }
        size_t ncap = b->cap ? b->cap : 1024;
        while (ncap < b->len + n + 1) ncap *= 2;
        if (ncap > EVPUB_JSON_CAP + 1) ncap = EVPUB_JSON_CAP + 1;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void jputs(jbuf_t *b, const char *s) { jput(b, s, strlen(s)); }

/* A JSON string literal: quotes, backslashes and control characters escaped; other
 * bytes as they are (invalid UTF-8 is left for the validator to name). */
static void jstring(jbuf_t *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    jput(b, "\"", 1);
    size_t start = 0, i = 0;
    for (; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        jput(b, s + start, i - start);
        char e[6] = {'\\', (char)c, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"':
        case '\\': break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        default:
            e[1] = 'u';
            e[2] = '0';
            e[3] = '0';
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            n = 6;
        }
        jput(b, e, n);
        start = i + 1;
    }
    jput(b, s + start, i - start);
    jput(b, "\"", 1);
}

static void jfield_str(jbuf_t *b, const char *key, const char *value) {
    if (!value) return;
    jput(b, ",", 1);
    jstring(b, key);
    jput(b, ":", 1);
    jstring(b, value);
}

static void jfield_raw(jbuf_t *b, const char *key, const char *raw) {
    jput(b, ",", 1);
    jstring(b, key);
    jput(b, ":", 1);
    jputs(b, raw);
}

static void jfield_int(jbuf_t *b, const char *key, long long v) {
    char n[32];
    snprintf(n, sizeof(n), "%lld", v);
    jfield_raw(b, key, n);
}

/* Renders the event into b (b->p NUL-terminated). */
static void render(evpub_event_t *ev, jbuf_t *b) {
    const char *id = evpub_event_id(ev);
    if (!id) {
        b->failed = 1;
        return;
    }
    jputs(b, "{\"eventId\":");
    jstring(b, id);
    jfield_str(b, "type", ev->type);
    char ts[32];
    if (ev->timestamp_ms >= 0) {
        ev_format_rfc3339_ms(ev->timestamp_ms, ts);
        jfield_str(b, "timestamp", ts);
    } else {
        jfield_int(b, "timestamp", ev->timestamp_ms); /* refused by the validator */
    }
    jfield_str(b, "visitorId", ev->visitor_id);
    jfield_str(b, "userId", ev->user_id);
    jfield_str(b, "name", ev->name);
    jfield_str(b, "url", ev->url);
    jfield_str(b, "referrer", ev->referrer);
    jfield_str(b, "title", ev->title);
    jfield_str(b, "userAgent", ev->user_agent);
    if (ev->has_client_hints) {
        jputs(b, ",\"clientHints\":{");
        int first = 1;
        if (ev->ch_mobile >= 0) {
            jputs(b, ev->ch_mobile ? "\"mobile\":true" : "\"mobile\":false");
            first = 0;
        }
        if (ev->ch_platform) {
            jputs(b, first ? "\"platform\":" : ",\"platform\":");
            jstring(b, ev->ch_platform);
            first = 0;
        }
        if (ev->ch_model) {
            jputs(b, first ? "\"model\":" : ",\"model\":");
            jstring(b, ev->ch_model);
        }
        jputs(b, "}");
    }
    if (ev->has_screen) {
        char s[96];
        snprintf(s, sizeof(s), ",\"screen\":{\"width\":%d,\"height\":%d}", ev->screen_width,
                 ev->screen_height);
        jputs(b, s);
    }
    jfield_str(b, "language", ev->language);
    if (ev->has_geo) {
        jputs(b, ",\"geo\":{");
        int first = 1;
        const char *keys[3] = {"country", "region", "city"};
        const char *vals[3] = {ev->geo_country, ev->geo_region, ev->geo_city};
        for (int i = 0; i < 3; i++) {
            if (!vals[i]) continue;
            if (!first) jputs(b, ",");
            jstring(b, keys[i]);
            jputs(b, ":");
            jstring(b, vals[i]);
            first = 0;
        }
        jputs(b, "}");
    }
    jfield_str(b, "ip", ev->ip);
    jfield_str(b, "pageViewId", ev->page_view_id);
    if (ev->has_time_on_page) {
        char n[64];
        if (isfinite(ev->time_on_page))
            snprintf(n, sizeof(n), "%.3f", ev->time_on_page);
        else
            snprintf(n, sizeof(n), "\"%s\"", isnan(ev->time_on_page) ? "NaN" : "Infinity");
        jfield_raw(b, "timeOnPage", n);
    }
    if (ev->has_scroll_depth) jfield_int(b, "scrollDepth", ev->scroll_depth);
    if (ev->value_text) jfield_raw(b, "value", ev->value_text);
    jfield_str(b, "currency", ev->currency);
    if (ev->properties_json) {
        jfield_raw(b, "properties", ev->properties_json);
    } else if (ev->props) {
        jputs(b, ",\"properties\":{");
        jput(b, ev->props, ev->props_len);
        jputs(b, "}");
    }
    jputs(b, "}");
}

/* Appends "key":value_json to the built properties. */
static int add_property(evpub_event_t *ev, const char *key, const char *value_json,
                        const char *value_str) {
    if (ev->properties_json || !key) return -1;
    jbuf_t b = {0};
    if (ev->props) jput(&b, ev->props, ev->props_len);
    if (ev->props_len) jput(&b, ",", 1);
    jstring(&b, key);
    jput(&b, ":", 1);
    if (value_str)
        jstring(&b, value_str);
    else
        jputs(&b, value_json);
    if (b.failed) {
        free(b.p);
        return -1;
    }
    free(ev->props);
    ev->props = b.p;
    ev->props_len = b.len;
    return 0;
}

int evpub_event_add_property_string(evpub_event_t *ev, const char *key, const char *value) {
    return value ? add_property(ev, key, NULL, value) : add_property(ev, key, "null", NULL);
}

int evpub_event_add_property_number(evpub_event_t *ev, const char *key, double value) {
    char n[64];
    if (isfinite(value))
        snprintf(n, sizeof(n), "%.17g", value);
    else
        snprintf(n, sizeof(n), "null"); /* JSON has no NaN or infinity */
    return add_property(ev, key, n, NULL);
}

int evpub_event_add_property_bool(evpub_event_t *ev, const char *key, int value) {
    return add_property(ev, key, value ? "true" : "false", NULL);
}

int evpub_event_to_json(evpub_event_t *ev, char **json, size_t *len, char *errstr,
                        size_t errstr_size) {
    jbuf_t b = {0};
    render(ev, &b);
    if (b.failed) {
        free(b.p);
        if (b.over)
            snprintf(errstr, errstr_size, "too_large: the event is larger than %d bytes",
                     TF_EVENT_MAX_BYTES);
        else
            snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    *json = b.p;
    *len = b.len;
    return 0;
}

/* Validates the rendered bytes. Returns 0, -1 invalid (errstr), -2 out of memory. */
static int check(const char *json, size_t len, char *errstr, size_t errstr_size) {
    tf_event_t parsed;
    tf_event_init(&parsed);
    tf_event_error_t err;
    int rc = tf_event_parse(&parsed, json, len, &err);
    tf_event_reset(&parsed);
    if (rc == 0) return 0;
    if (rc == -2) {
        snprintf(errstr, errstr_size, "out of memory");
        return -2;
    }
    snprintf(errstr, errstr_size, "%s: %s", tf_event_reason_code(err.reason), err.message);
    return -1;
}

int evpub_event_validate(evpub_event_t *ev, char *errstr, size_t errstr_size) {
    char *json = NULL;
    size_t len = 0;
    if (evpub_event_to_json(ev, &json, &len, errstr, errstr_size) != 0)
        return strncmp(errstr, "too_large", 9) == 0 ? -1 : -2;
    int rc = check(json, len, errstr, errstr_size);
    free(json);
    return rc;
}

/* ---- publishing --------------------------------------------------------------------- */

evpub_publisher_t *evpub_publisher_new(const char *brokers, const char *topic,
                                       const char *const *props, char *errstr, size_t errstr_size) {
    ev_kv_list_t kv = {0};
    for (int i = 0; props && props[i]; i += 2) {
        if (!props[i + 1]) {
            snprintf(errstr, errstr_size, "property %s has no value", props[i]);
            ev_kv_list_clear(&kv);
            return NULL;
        }
        if (kv.n >= EV_KV_MAX) {
            snprintf(errstr, errstr_size, "more than %d properties", EV_KV_MAX);
            ev_kv_list_clear(&kv);
            return NULL;
        }
        kv.key[kv.n] = strdup(props[i]);
        kv.val[kv.n] = strdup(props[i + 1]);
        kv.n++;
        if (!kv.key[kv.n - 1] || !kv.val[kv.n - 1]) {
            snprintf(errstr, errstr_size, "out of memory");
            ev_kv_list_clear(&kv);
            return NULL;
        }
    }
    evpub_publisher_t *pub = calloc(1, sizeof(*pub));
    if (!pub) {
        snprintf(errstr, errstr_size, "out of memory");
        ev_kv_list_clear(&kv);
        return NULL;
    }
    pub->kp = kprod_new(brokers, topic ? topic : EVPUB_DEFAULT_TOPIC, &kv, errstr, errstr_size);
    ev_kv_list_clear(&kv);
    if (!pub->kp) {
        free(pub);
        return NULL;
    }
    return pub;
}

void evpub_publisher_destroy(evpub_publisher_t *pub) {
    if (!pub) return;
    (void)kprod_flush(pub->kp, 10000);
    kprod_destroy(pub->kp);
    free(pub);
}

int evpub_publish(evpub_publisher_t *pub, evpub_event_t *ev, char *errstr, size_t errstr_size) {
    char *json = NULL;
    size_t len = 0;
    if (evpub_event_to_json(ev, &json, &len, errstr, errstr_size) != 0) {
        if (strncmp(errstr, "too_large", 9) != 0) return -3;
        pub->stats.invalid++;
        return -1;
    }
    int rc = check(json, len, errstr, errstr_size);
    if (rc != 0) {
        free(json);
        if (rc == -2) return -3;
        pub->stats.invalid++;
        return -1;
    }
    rc =
        kprod_send(pub->kp, ev->visitor_id, strlen(ev->visitor_id), json, len, errstr, errstr_size);
    free(json);
    if (rc != 0) return -2;
    pub->stats.published++;
    return 0;
}

int evpub_flush(evpub_publisher_t *pub, int timeout_ms, char *errstr, size_t errstr_size) {
    int rc = kprod_flush(pub->kp, timeout_ms);
    kprod_stats_t ks;
    kprod_stats(pub->kp, &ks);
    if (rc != 0) {
        snprintf(errstr, errstr_size, "%d events still in flight after %d ms",
                 kprod_in_flight(pub->kp), timeout_ms);
        return -1;
    }
    if (ks.failed > pub->failed_reported) {
        snprintf(errstr, errstr_size, "%llu events were not delivered: %s",
                 (unsigned long long)(ks.failed - pub->failed_reported),
                 kprod_first_error(pub->kp));
        pub->failed_reported = ks.failed;
        return -1;
    }
    return 0;
}

void evpub_publisher_stats(const evpub_publisher_t *pub, evpub_stats_t *stats) {
    kprod_stats_t ks;
    kprod_stats(pub->kp, &ks);
    *stats = pub->stats;
    stats->delivered = ks.delivered;
    stats->failed = ks.failed;
}
