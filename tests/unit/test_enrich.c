/* test_enrich.c — from a parsed event to its URL path, campaign key, attribution,
 * device and session context, with the real uap-core classifier; and the enriched
 * JSON of analytics.events.enriched read back field by field. Exact values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "common/util.h"
#include "tests/testlib.h"
#include "transforms/device.h"
#include "transforms/enrich.h"
#include "transforms/event.h"

static char *regexes_yaml;
static size_t regexes_len;
static char regexes_error[512];
static tf_ua_classifier_t *classifier;

/* Once per suite (Check runs each test in a child of the process that ran this). */
static void load_classifier(void) {
    const char *path = getenv("EVPIPE_UA_REGEXES");
    if (!path || !*path) path = TF_UA_REGEXES_DEFAULT_PATH;
    if (ev_read_file(path, 16u << 20, &regexes_yaml, &regexes_len, regexes_error,
                     sizeof(regexes_error)) != 0)
        return;
    classifier =
        tf_ua_classifier_new(regexes_yaml, regexes_len, 64, regexes_error, sizeof(regexes_error));
}

static void free_classifier(void) {
    tf_ua_classifier_destroy(classifier);
    classifier = NULL;
    free(regexes_yaml);
    regexes_yaml = NULL;
}

static tf_ua_classifier_t *clf(void) {
    ck_assert_msg(classifier != NULL, "no uap-core classifier (install uap-core): %s",
                  regexes_error);
    return classifier;
}

/* Parses a JSON literal into *ev or fails the test. */
static void parse_event(tf_event_t *ev, const char *json) {
    tf_event_error_t err;
    tf_event_init(ev);
    int rc = tf_event_parse(ev, json, strlen(json), &err);
    ck_assert_msg(rc == 0, "event did not parse (%s): %s\n  %s", tf_event_reason_code(err.reason),
                  err.message, json);
}

/* Parses and enriches, or fails the test. */
static void enrich_json(const char *json, tf_event_t *ev, tf_enriched_t *en) {
    parse_event(ev, json);
    tf_enriched_init(en);
    ck_assert_int_eq(tf_enrich(ev, clf(), en), 0);
}

/* want NULL: got must be NULL. */
static void assert_str_or_null(const char *what, const char *got, const char *want) {
    if (!want)
        ck_assert_msg(got == NULL, "%s: expected NULL, got '%s'", what, got);
    else
        ck_assert_msg(got != NULL && strcmp(got, want) == 0, "%s: expected '%s', got '%s'", what,
                      want, got ? got : "(NULL)");
}

#define HEAD(type)                                                                                 \
    "{\"eventId\":\"e1\",\"type\":\"" type                                                         \
    "\",\"visitorId\":\"v1\",\"timestamp\":\"2024-11-25T13:20:00Z\""

/* ---- URL and attribution -------------------------------------------------------------- */

/* utm_* of the page URL win over an external search referrer; the path has no query
 * or fragment; the campaign key is canonical (sorted, re-encoded). */
START_TEST(test_enrich_utm_from_url) {
    tf_event_t ev;
    tf_enriched_t en;
    enrich_json(HEAD("PAGE_VIEW") ",\"url\":\"https://www.example.com/shop/shoes?utm_source="
                                  "newsletter&utm_medium=email&utm_campaign=spring%20sale&utm_"
                                  "term=boots&utm_content=hero&page=2#top\",\"referrer\":\"https://"
                                  "www.google.com/search?q=boots\"}",
                &ev, &en);
    ck_assert_str_eq(en.path, "/shop/shoes");
    ck_assert_str_eq(en.campaign_key, "utm_campaign=spring%20sale&utm_content=hero&utm_medium=email"
                                      "&utm_source=newsletter&utm_term=boots");
    ck_assert_str_eq(en.url.host, "www.example.com");
    ck_assert_str_eq(en.attribution.source, "newsletter");
    ck_assert_str_eq(en.attribution.medium, "email");
    ck_assert_str_eq(en.attribution.campaign, "spring sale");
    ck_assert_str_eq(en.attribution.term, "boots");
    ck_assert_str_eq(en.attribution.content, "hero");
    ck_assert_str_eq(en.attribution.referrer_domain, "google.com");
    /* The session context points at the same values. */
    const tf_sess_context_t *c = &en.context;
    ck_assert_ptr_eq(c->referrer, ev.referrer);
    ck_assert_str_eq(c->referrer, "https://www.google.com/search?q=boots");
    ck_assert_ptr_eq(c->referrer_domain, en.attribution.referrer_domain);
    ck_assert_ptr_eq(c->utm_source, en.attribution.source);
    ck_assert_ptr_eq(c->utm_medium, en.attribution.medium);
    ck_assert_ptr_eq(c->utm_campaign, en.attribution.campaign);
    ck_assert_ptr_eq(c->utm_term, en.attribution.term);
    ck_assert_ptr_eq(c->utm_content, en.attribution.content);
    tf_enriched_reset(&en);
    tf_event_reset(&ev);
}
END_TEST

typedef struct {
    const char *url, *referrer; /* NULL: field not sent */
    const char *path, *campaign_key, *domain, *source, *medium;
} attribution_case_t;

static const attribution_case_t attribution_cases[] = {
    /* external search engines -> organic */
    {"https://shop.example.com/", "https://www.google.com/search?q=x", "/", NULL, "google.com",
     "google.com", "organic"},
    {"https://shop.example.com/p/1", "https://www.google.co.uk/", "/p/1", NULL, "google.co.uk",
     "google.co.uk", "organic"},
    {"https://shop.example.com/a/b/", "https://www.bing.com/search?q=x", "/a/b/", NULL, "bing.com",
     "bing.com", "organic"},
    {"https://shop.example.com/", "https://duckduckgo.com/", "/", NULL, "duckduckgo.com",
     "duckduckgo.com", "organic"},
    /* external social networks -> social */
    {"https://shop.example.com/", "https://l.facebook.com/l.php?u=x", "/", NULL, "l.facebook.com",
     "l.facebook.com", "social"},
    {"https://shop.example.com/", "https://t.co/abc", "/", NULL, "t.co", "t.co", "social"},
    {"https://shop.example.com/", "https://www.reddit.com/r/x", "/", NULL, "reddit.com",
     "reddit.com", "social"},
    /* any other external site -> referral */
    {"https://shop.example.com/", "https://blog.partner.org/post/1", "/", NULL, "blog.partner.org",
     "blog.partner.org", "referral"},
    {"https://www.example.com/", "https://blog.example.com/", "/", NULL, "blog.example.com",
     "blog.example.com", "referral"},
    {"https://www.example.com/", "https://mail.google.com/mail/u/0", "/", NULL, "mail.google.com",
     "mail.google.com", "referral"},
    /* internal referrers (www. ignored) -> direct */
    {"https://www.example.com/a", "https://example.com/b", "/a", NULL, "example.com", NULL, NULL},
    {"https://www.example.com/a", "https://www.example.com/cart?x=1", "/a", NULL, "example.com",
     NULL, NULL},
    {"https://EXAMPLE.com/a", "https://www.example.com/", "/a", NULL, "example.com", NULL, NULL},
    /* no referrer, or "" (document.referrer without one) -> direct */
    {"https://www.example.com/x?y=1", NULL, "/x", NULL, NULL, NULL, NULL},
    {"https://www.example.com/x", "", "/x", NULL, NULL, NULL, NULL},
    /* ad click ids */
    {"https://www.example.com/l?gclid=abc", "https://www.google.com/", "/l", "gclid=abc",
     "google.com", "google", "cpc"},
    {"https://www.example.com/l?fbclid=F1", "https://l.facebook.com/", "/l", "fbclid=F1",
     "l.facebook.com", "facebook", "social"},
    /* utm_source present: nothing inferred from the referrer */
    {"https://www.example.com/l?utm_source=partner", "https://www.bing.com/", "/l",
     "utm_source=partner", "bing.com", "partner", NULL},
    /* utm without utm_source: medium kept, source from the referrer */
    {"https://www.example.com/l?utm_medium=display&UTM_Campaign=Q1", "https://www.bing.com/", "/l",
     "utm_campaign=Q1&utm_medium=display", "bing.com", "bing.com", "display"},
    /* path kept as sent */
    {"https://www.example.com/caf%C3%A9/../x;v=1", NULL, "/caf%C3%A9/../x;v=1", NULL, NULL, NULL,
     NULL},
};

START_TEST(test_enrich_attribution_table) {
    const attribution_case_t *c = &attribution_cases[_i];
    char json[2048];
    int n = snprintf(json, sizeof(json), "%s,\"url\":\"%s\"", HEAD("PAGE_VIEW"), c->url);
    if (c->referrer)
        n += snprintf(json + n, sizeof(json) - (size_t)n, ",\"referrer\":\"%s\"", c->referrer);
    snprintf(json + n, sizeof(json) - (size_t)n, "}");
    tf_event_t ev;
    tf_enriched_t en;
    enrich_json(json, &ev, &en);
    assert_str_or_null("path", en.path, c->path);
    assert_str_or_null("campaign_key", en.campaign_key, c->campaign_key);
    assert_str_or_null("referrer_domain", en.attribution.referrer_domain, c->domain);
    assert_str_or_null("source", en.attribution.source, c->source);
    assert_str_or_null("medium", en.attribution.medium, c->medium);
    assert_str_or_null("context.referrer_domain", en.context.referrer_domain, c->domain);
    assert_str_or_null("context.utm_source", en.context.utm_source, c->source);
    assert_str_or_null("context.utm_medium", en.context.utm_medium, c->medium);
    /* The context's referrer is the event's, as sent ("" is none). */
    assert_str_or_null("context.referrer", en.context.referrer,
                       c->referrer && *c->referrer ? c->referrer : NULL);
    tf_enriched_reset(&en);
    tf_event_reset(&ev);
}
END_TEST

/* ---- device --------------------------------------------------------------------------- */

#define UA_IPHONE                                                                                  \
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "       \
    "like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
#define UA_WINDOWS_CHROME                                                                          \
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "            \
    "Chrome/120.0.6099.109 Safari/537.36"
#define UA_GOOGLEBOT "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
#define UA_IPAD                                                                                    \
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "      \
    "Version/16.6 Mobile/15E148 Safari/604.1"
#define UA_MAC_SAFARI                                                                              \
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "    \
    "Version/17.1 Safari/605.1.15"
#define UA_PIXEL                                                                                   \
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "             \
    "Chrome/120.0.6099.144 Mobile Safari/537.36"
#define UA_UBUNTU_FIREFOX                                                                          \
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"

typedef struct {
    const char *ua;    /* NULL: no userAgent */
    const char *extra; /* more JSON members (",\"screen\":{...}"), or "" */
    tf_device_type_t type;
    const char *browser, *browser_version, *os, *os_version; /* NULL: unknown */
} device_case_t;

static const device_case_t device_cases[] = {
    {UA_IPHONE, "", TF_DEVICE_MOBILE, "Mobile Safari", "17.1.2", "iOS", "17.1.2"},
    {UA_WINDOWS_CHROME, "", TF_DEVICE_DESKTOP, "Chrome", "120.0.6099", "Windows", "10"},
    {UA_GOOGLEBOT, "", TF_DEVICE_BOT, "Googlebot", "2.1", NULL, NULL},
    {UA_IPAD, "", TF_DEVICE_TABLET, "Mobile Safari", "16.6", "iOS", "16.6"},
    {UA_MAC_SAFARI, "", TF_DEVICE_DESKTOP, "Safari", "17.1", "Mac OS X", "10.15.7"},
    {UA_PIXEL, "", TF_DEVICE_MOBILE, "Chrome Mobile", "120.0.6099", "Android", "14"},
    {UA_UBUNTU_FIREFOX, "", TF_DEVICE_DESKTOP, "Firefox", "121.0", "Ubuntu", NULL},
    /* hints and screen reach the classifier: an iPad in desktop mode, a phone screen */
    {UA_MAC_SAFARI, ",\"screen\":{\"width\":820,\"height\":1180}", TF_DEVICE_TABLET, "Safari",
     "17.1", "Mac OS X", "10.15.7"},
    {UA_UBUNTU_FIREFOX, ",\"screen\":{\"width\":390,\"height\":844}", TF_DEVICE_MOBILE, "Firefox",
     "121.0", "Ubuntu", NULL},
    {UA_MAC_SAFARI, ",\"clientHints\":{\"platform\":\"iPadOS\"}", TF_DEVICE_TABLET, "Safari",
     "17.1", "Mac OS X", "10.15.7"},
    {UA_GOOGLEBOT, ",\"clientHints\":{\"mobile\":true}", TF_DEVICE_BOT, "Googlebot", "2.1", NULL,
     NULL},
    /* without an agent: hints, then the screen decide; nothing known -> UNKNOWN */
    {NULL, ",\"clientHints\":{\"mobile\":true}", TF_DEVICE_MOBILE, NULL, NULL, NULL, NULL},
    {NULL, "", TF_DEVICE_UNKNOWN, NULL, NULL, NULL, NULL},
};

START_TEST(test_enrich_device_from_user_agent) {
    const device_case_t *c = &device_cases[_i];
    char json[2048];
    int n = snprintf(json, sizeof(json), "%s,\"url\":\"https://www.example.com/\"%s",
                     HEAD("PAGE_VIEW"), c->extra);
    if (c->ua) n += snprintf(json + n, sizeof(json) - (size_t)n, ",\"userAgent\":\"%s\"", c->ua);
    snprintf(json + n, sizeof(json) - (size_t)n, "}");
    tf_event_t ev;
    tf_enriched_t en;
    enrich_json(json, &ev, &en);
    ck_assert_msg(en.ua.type == c->type, "case %d: type %s, expected %s", _i,
                  tf_device_type_name(en.ua.type), tf_device_type_name(c->type));
    ck_assert_int_eq(en.context.device_type, (int)c->type);
    ck_assert_str_eq(en.ua.browser, c->browser ? c->browser : "");
    ck_assert_str_eq(en.ua.browser_version, c->browser_version ? c->browser_version : "");
    ck_assert_str_eq(en.ua.os, c->os ? c->os : "");
    ck_assert_str_eq(en.ua.os_version, c->os_version ? c->os_version : "");
    /* The context has NULL for what is unknown, never "". */
    assert_str_or_null("context.browser", en.context.browser, c->browser);
    assert_str_or_null("context.browser_version", en.context.browser_version, c->browser_version);
    assert_str_or_null("context.os", en.context.os, c->os);
    assert_str_or_null("context.os_version", en.context.os_version, c->os_version);
    assert_str_or_null("context.user_agent", en.context.user_agent, c->ua);
    ck_assert_ptr_eq(en.context.user_agent, ev.user_agent);
    tf_enriched_reset(&en);
    tf_event_reset(&ev);
}
END_TEST

/* geo, language and screen are copied from the event into the session context. */
START_TEST(test_enrich_context_geo_language_screen) {
    tf_event_t ev;
    tf_enriched_t en;
    enrich_json(
        HEAD("PAGE_VIEW") ",\"url\":\"https://www.example.com/de/\",\"userAgent\":\"" UA_IPHONE
                          "\",\"geo\":{\"country\":\"DE\",\"region\":\"BE\",\"city\":"
                          "\"Berlin\"},\"language\":\"de-DE\",\"screen\":{\"width\":390,"
                          "\"height\":844}}",
        &ev, &en);
    const tf_sess_context_t *c = &en.context;
    ck_assert_str_eq(c->country, "DE");
    ck_assert_str_eq(c->region, "BE");
    ck_assert_str_eq(c->city, "Berlin");
    ck_assert_str_eq(c->language, "de-DE");
    ck_assert_int_eq(c->screen_width, 390);
    ck_assert_int_eq(c->screen_height, 844);
    ck_assert_ptr_eq(c->country, ev.geo_country);
    ck_assert_ptr_eq(c->city, ev.geo_city);
    ck_assert_int_eq(c->device_type, TF_DEVICE_MOBILE);
    ck_assert_str_eq(en.path, "/de/");
    ck_assert_ptr_null(en.campaign_key);
    tf_enriched_reset(&en);
    tf_event_reset(&ev);

    /* Partial geo, no screen: the rest stays NULL / 0. */
    enrich_json(HEAD("CLICK") ",\"geo\":{\"country\":\"FR\"}}", &ev, &en);
    ck_assert_str_eq(en.context.country, "FR");
    ck_assert_ptr_null(en.context.region);
    ck_assert_ptr_null(en.context.city);
    ck_assert_ptr_null(en.context.language);
    ck_assert_int_eq(en.context.screen_width, 0);
    ck_assert_int_eq(en.context.screen_height, 0);
    tf_enriched_reset(&en);
    tf_event_reset(&ev);
}
END_TEST

/* No url and no user agent: nothing derived from them, device UNKNOWN. */
START_TEST(test_enrich_without_url_or_user_agent) {
    tf_event_t ev;
    tf_enriched_t en;
    enrich_json(HEAD("CLICK") "}", &ev, &en);
    ck_assert_ptr_null(en.path);
    ck_assert_ptr_null(en.campaign_key);
    ck_assert_ptr_null(en.url.host);
    ck_assert_ptr_null(en.url.path);
    ck_assert_ptr_null(en.attribution.referrer_domain);
    ck_assert_ptr_null(en.attribution.source);
    ck_assert_ptr_null(en.attribution.medium);
    ck_assert_ptr_null(en.attribution.campaign);
    ck_assert_ptr_null(en.attribution.term);
    ck_assert_ptr_null(en.attribution.content);
    ck_assert_int_eq(en.ua.type, TF_DEVICE_UNKNOWN);
    ck_assert_str_eq(en.ua.browser, "");
    const tf_sess_context_t *c = &en.context;
    ck_assert_int_eq(c->device_type, TF_DEVICE_UNKNOWN);
    ck_assert_ptr_null(c->referrer);
    ck_assert_ptr_null(c->referrer_domain);
    ck_assert_ptr_null(c->utm_source);
    ck_assert_ptr_null(c->utm_medium);
    ck_assert_ptr_null(c->utm_campaign);
    ck_assert_ptr_null(c->utm_term);
    ck_assert_ptr_null(c->utm_content);
    ck_assert_ptr_null(c->browser);
    ck_assert_ptr_null(c->browser_version);
    ck_assert_ptr_null(c->os);
    ck_assert_ptr_null(c->os_version);
    ck_assert_ptr_null(c->user_agent);
    ck_assert_ptr_null(c->country);
    ck_assert_ptr_null(c->language);
    ck_assert_int_eq(c->screen_width, 0);
    tf_enriched_reset(&en);
    tf_event_reset(&ev);

    /* A referrer without a page URL: every referrer with a host is external. */
    enrich_json(HEAD("CLICK") ",\"referrer\":\"https://www.google.de/\"}", &ev, &en);
    ck_assert_ptr_null(en.path);
    ck_assert_str_eq(en.attribution.referrer_domain, "google.de");
    ck_assert_str_eq(en.attribution.source, "google.de");
    ck_assert_str_eq(en.attribution.medium, "organic");
    ck_assert_str_eq(en.context.referrer, "https://www.google.de/");
    tf_enriched_reset(&en);
    tf_event_reset(&ev);
}
END_TEST

/* An enriched struct reused for another event holds only the new event's values. */
START_TEST(test_enrich_reuse_replaces_previous) {
    tf_event_t a, b;
    tf_enriched_t en;
    enrich_json(HEAD("PAGE_VIEW") ",\"url\":\"https://www.example.com/a?utm_source=s&utm_term=t\","
                                  "\"referrer\":\"https://bing.com/\",\"userAgent\":\"" UA_IPHONE
                                  "\",\"geo\":{\"country\":\"DE\"}}",
                &a, &en);
    ck_assert_str_eq(en.attribution.source, "s");
    ck_assert_int_eq(en.ua.type, TF_DEVICE_MOBILE);
    parse_event(&b, HEAD("CLICK") "}");
    ck_assert_int_eq(tf_enrich(&b, clf(), &en), 0);
    ck_assert_ptr_null(en.path);
    ck_assert_ptr_null(en.campaign_key);
    ck_assert_ptr_null(en.attribution.source);
    ck_assert_ptr_null(en.attribution.term);
    ck_assert_ptr_null(en.attribution.referrer_domain);
    ck_assert_ptr_null(en.context.utm_source);
    ck_assert_ptr_null(en.context.country);
    ck_assert_ptr_null(en.context.browser);
    ck_assert_int_eq(en.ua.type, TF_DEVICE_UNKNOWN);
    ck_assert_int_eq(en.context.device_type, TF_DEVICE_UNKNOWN);
    tf_enriched_reset(&en);
    tf_enriched_reset(&en); /* twice: safe */
    tf_event_reset(&a);
    tf_event_reset(&b);
}
END_TEST

/* ---- the enriched JSON ---------------------------------------------------------------- */

/* The enriched event parsed back; fails the test when it is not one JSON object. */
static yajl_val enriched_tree(const tf_event_t *ev, const tf_enriched_t *en, const char *sid) {
    size_t len = 0;
    char *json = tf_enriched_json(ev, en, sid, &len);
    ck_assert_ptr_nonnull(json);
    ck_assert_uint_eq(len, strlen(json));
    char err[256] = "";
    yajl_val root = yajl_tree_parse(json, err, sizeof(err));
    ck_assert_msg(root != NULL, "enriched JSON does not parse (%s): %s", err, json);
    ck_assert_msg(YAJL_IS_OBJECT(root), "enriched JSON is not an object: %s", json);
    free(json);
    return root;
}

/* The member named key (NULL when absent; a JSON null is a non-NULL node). */
static yajl_val member(yajl_val obj, const char *key) {
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0) return obj->u.object.values[i];
    return NULL;
}

/* key must be present: a string equal to want, or null when want is NULL. */
static void assert_member_str(yajl_val obj, const char *key, const char *want) {
    yajl_val v = member(obj, key);
    ck_assert_msg(v != NULL, "member %s is missing", key);
    if (!want) {
        ck_assert_msg(YAJL_IS_NULL(v), "member %s: expected null", key);
        return;
    }
    ck_assert_msg(YAJL_IS_STRING(v), "member %s: expected a string", key);
    const char *got = v->u.string;
    ck_assert_msg(strcmp(got, want) == 0, "member %s: expected '%s', got '%s'", key, want, got);
}

/* The object's keys are exactly these, in this order. */
static void assert_keys(yajl_val obj, const char *const *keys, size_t n) {
    ck_assert_msg(obj->u.object.len == n, "%zu members, expected %zu", obj->u.object.len, n);
    for (size_t i = 0; i < n; i++) ck_assert_str_eq(obj->u.object.keys[i], keys[i]);
}

static const char *const BASE_KEYS[] = {"eventId",   "type",        "occurredAt",     "visitorId",
                                        "userId",    "sessionId",   "name",           "url",
                                        "path",      "deviceType",  "referrerDomain", "utmSource",
                                        "utmMedium", "utmCampaign", "utmTerm",        "utmContent"};
#define N_BASE (sizeof(BASE_KEYS) / sizeof(BASE_KEYS[0]))

#define SID "0b6b2c2e-7a59-5b8e-9a51-3f6c1d2e4f70"

START_TEST(test_enrich_json_every_field) {
    tf_event_t ev;
    tf_enriched_t en;
    enrich_json(
        "{\"eventId\":\"ord-42 \\\"q\\\" \\u00e9\",\"type\":\"PURCHASE\",\"timestamp\":\"2024-03-"
        "05T11:20:30.123456+01:00\",\"visitorId\":\"vis-9\",\"userId\":\"user-7\",\"name\":"
        "\"checkout done\",\"url\":\"https://www.example.com/checkout/done?utm_source=news&utm_"
        "medium=email&utm_campaign=spring&utm_term=boots&utm_content=hero\",\"referrer\":"
        "\"https://www.google.com/\",\"userAgent\":\"" UA_IPHONE
        "\",\"value\":19.990,\"currency\":\"EUR\",\"properties\":{\"sku\":\"A-1\",\"qty\":2,"
        "\"price\":19.99,\"tags\":[\"x\",\"y\"],\"nested\":{\"k\":null,\"ok\":true}},"
        "\"geo\":{\"country\":\"DE\"}}",
        &ev, &en);
    yajl_val root = enriched_tree(&ev, &en, SID);
    const char *keys[N_BASE + 3];
    memcpy(keys, BASE_KEYS, sizeof(BASE_KEYS));
    keys[N_BASE] = "value";
    keys[N_BASE + 1] = "currency";
    keys[N_BASE + 2] = "properties";
    assert_keys(root, keys, N_BASE + 3);

    assert_member_str(root, "eventId", "ord-42 \"q\" \xc3\xa9");
    assert_member_str(root, "type", "PURCHASE");
    assert_member_str(root, "occurredAt", "2024-03-05T10:20:30.123Z");
    assert_member_str(root, "visitorId", "vis-9");
    assert_member_str(root, "userId", "user-7");
    assert_member_str(root, "sessionId", SID);
    assert_member_str(root, "name", "checkout done");
    assert_member_str(root, "url",
                      "https://www.example.com/checkout/done?utm_source=news&utm_medium=email&utm_"
                      "campaign=spring&utm_term=boots&utm_content=hero");
    assert_member_str(root, "path", "/checkout/done");
    assert_member_str(root, "deviceType", "MOBILE");
    assert_member_str(root, "referrerDomain", "google.com");
    assert_member_str(root, "utmSource", "news");
    assert_member_str(root, "utmMedium", "email");
    assert_member_str(root, "utmCampaign", "spring");
    assert_member_str(root, "utmTerm", "boots");
    assert_member_str(root, "utmContent", "hero");
    assert_member_str(root, "currency", "EUR");

    /* value: the number exactly as sent (trailing zero kept, for NUMERIC). */
    yajl_val value = member(root, "value");
    ck_assert(YAJL_IS_NUMBER(value));
    ck_assert_str_eq(value->u.number.r, "19.990");

    /* properties: an embedded object, not a string. */
    yajl_val props = member(root, "properties");
    ck_assert(YAJL_IS_OBJECT(props));
    static const char *const prop_keys[] = {"sku", "qty", "price", "tags", "nested"};
    assert_keys(props, prop_keys, 5);
    assert_member_str(props, "sku", "A-1");
    ck_assert(YAJL_IS_INTEGER(member(props, "qty")));
    ck_assert_int_eq(YAJL_GET_INTEGER(member(props, "qty")), 2);
    ck_assert_str_eq(member(props, "price")->u.number.r, "19.99");
    yajl_val tags = member(props, "tags");
    ck_assert(YAJL_IS_ARRAY(tags));
    ck_assert_uint_eq(tags->u.array.len, 2);
    ck_assert(YAJL_IS_STRING(tags->u.array.values[0]));
    ck_assert_str_eq(tags->u.array.values[0]->u.string, "x");
    ck_assert(YAJL_IS_STRING(tags->u.array.values[1]));
    ck_assert_str_eq(tags->u.array.values[1]->u.string, "y");
    yajl_val nested = member(props, "nested");
    ck_assert(YAJL_IS_OBJECT(nested));
    static const char *const nested_keys[] = {"k", "ok"};
    assert_keys(nested, nested_keys, 2);
    ck_assert(YAJL_IS_NULL(member(nested, "k")));
    ck_assert(YAJL_IS_TRUE(member(nested, "ok")));

    yajl_tree_free(root);
    tf_enriched_reset(&en);
    tf_event_reset(&ev);
}
END_TEST

/* An event with only the required fields: optional members null, no value/currency/
 * properties members at all, device UNKNOWN. */
START_TEST(test_enrich_json_minimal_event) {
    tf_event_t ev;
    tf_enriched_t en;
    enrich_json("{\"eventId\":\"e-min\",\"type\":\"CLICK\",\"timestamp\":0,\"visitorId\":\"v\"}",
                &ev, &en);
    yajl_val root = enriched_tree(&ev, &en, SID);
    assert_keys(root, BASE_KEYS, N_BASE);
    assert_member_str(root, "eventId", "e-min");
    assert_member_str(root, "type", "CLICK");
    assert_member_str(root, "occurredAt", "1970-01-01T00:00:00.000Z");
    assert_member_str(root, "visitorId", "v");
    assert_member_str(root, "sessionId", SID);
    assert_member_str(root, "deviceType", "UNKNOWN");
    static const char *const nulls[] = {"userId",         "name",      "url",       "path",
                                        "referrerDomain", "utmSource", "utmMedium", "utmCampaign",
                                        "utmTerm",        "utmContent"};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        assert_member_str(root, nulls[i], NULL);
    yajl_tree_free(root);
    tf_enriched_reset(&en);
    tf_event_reset(&ev);
}
END_TEST

/* occurredAt: RFC 3339 in UTC with exactly three fraction digits, whatever was sent. */
static const char *const time_cases[][2] = {
    {"1732540800123", "2024-11-25T13:20:00.123Z"},
    {"\"2024-11-25T13:20:00Z\"", "2024-11-25T13:20:00.000Z"},
    {"\"2024-11-25t13:20:00.5z\"", "2024-11-25T13:20:00.500Z"},
    {"\"2024-01-01T00:30:00.999999-01:00\"", "2024-01-01T01:30:00.999Z"},
    {"\"2024-03-01T00:30:00+05:30\"", "2024-02-29T19:00:00.000Z"},
    {"\"2016-12-31T23:59:60Z\"", "2017-01-01T00:00:00.000Z"},
    {"\"9999-12-31T23:59:59.9999Z\"", "9999-12-31T23:59:59.999Z"},
    {"253402300799999", "9999-12-31T23:59:59.999Z"},
    {"1", "1970-01-01T00:00:00.001Z"},
};

START_TEST(test_enrich_json_occurred_at) {
    char json[512];
    snprintf(json, sizeof(json),
             "{\"eventId\":\"e\",\"type\":\"SCROLL\",\"timestamp\":%s,\"visitorId\":\"v\"}",
             time_cases[_i][0]);
    tf_event_t ev;
    tf_enriched_t en;
    enrich_json(json, &ev, &en);
    yajl_val root = enriched_tree(&ev, &en, SID);
    assert_member_str(root, "occurredAt", time_cases[_i][1]);
    yajl_tree_free(root);
    tf_enriched_reset(&en);
    tf_event_reset(&ev);
}
END_TEST

/* value: the exact text as sent, whatever its form. */
static const char *const value_cases[] = {"0",   "0.5",     "19.99",           "100",
                                          "1e2", "1.50E+1", "999999999999.99", "0.000"};

START_TEST(test_enrich_json_value_text_kept) {
    char json[512];
    snprintf(json, sizeof(json),
             "{\"eventId\":\"e\",\"type\":\"PURCHASE\",\"timestamp\":1,\"visitorId\":\"v\","
             "\"value\":%s,\"currency\":\"USD\"}",
             value_cases[_i]);
    tf_event_t ev;
    tf_enriched_t en;
    enrich_json(json, &ev, &en);
    yajl_val root = enriched_tree(&ev, &en, SID);
    yajl_val value = member(root, "value");
    ck_assert_ptr_nonnull(value);
    ck_assert(YAJL_IS_NUMBER(value));
    ck_assert_str_eq(value->u.number.r, value_cases[_i]);
    assert_member_str(root, "currency", "USD");
    ck_assert_ptr_null(member(root, "properties"));
    yajl_tree_free(root);
    tf_enriched_reset(&en);
    tf_event_reset(&ev);
}
END_TEST

/* Strings that need escaping survive the round trip byte for byte. */
START_TEST(test_enrich_json_escaping_round_trip) {
    tf_event_t ev;
    tf_enriched_t en;
    enrich_json("{\"eventId\":\"a\\\\b\\\"c\\n\\t\\u0001\",\"type\":\"CUSTOM\",\"timestamp\":1,"
                "\"visitorId\":\"</script>\\u2028\",\"name\":\"\\ud83d\\ude00 caf\\u00e9\","
                "\"properties\":{\"q\":\"\\\"\\\\\",\"e\":{}, \"a\":[]}}",
                &ev, &en);
    yajl_val root = enriched_tree(&ev, &en, SID);
    assert_member_str(root, "eventId", "a\\b\"c\n\t\x01");
    assert_member_str(root, "visitorId", "</script>\xe2\x80\xa8");
    assert_member_str(root, "name", "\xf0\x9f\x98\x80 caf\xc3\xa9");
    yajl_val props = member(root, "properties");
    ck_assert(YAJL_IS_OBJECT(props));
    assert_member_str(props, "q", "\"\\");
    ck_assert(YAJL_IS_OBJECT(member(props, "e")));
    ck_assert_uint_eq(member(props, "e")->u.object.len, 0);
    ck_assert(YAJL_IS_ARRAY(member(props, "a")));
    ck_assert_uint_eq(member(props, "a")->u.array.len, 0);
    yajl_tree_free(root);
    tf_enriched_reset(&en);
    tf_event_reset(&ev);
}
END_TEST


/* The feed's object as yajl's compact generator writes it: the reference the hand-written
 * writer must equal byte for byte. */
static void ref_str(yajl_gen g, const char *key, const char *value) {
    yajl_gen_string(g, (const unsigned char *)key, strlen(key));
    if (value)
        yajl_gen_string(g, (const unsigned char *)value, strlen(value));
    else
        yajl_gen_null(g);
}

static char *reference_json(const tf_event_t *ev, const tf_enriched_t *en, const char *sid) {
    yajl_gen g = yajl_gen_alloc(NULL);
    char when[32];
    ev_format_rfc3339_ms(ev->timestamp_ms, when);
    yajl_gen_map_open(g);
    ref_str(g, "eventId", ev->event_id);
    ref_str(g, "type", tf_event_type_name(ev->type));
    ref_str(g, "occurredAt", when);
    ref_str(g, "visitorId", ev->visitor_id);
    ref_str(g, "userId", ev->user_id);
    ref_str(g, "sessionId", sid);
    ref_str(g, "name", ev->name);
    ref_str(g, "url", ev->url);
    ref_str(g, "path", en->path);
    ref_str(g, "deviceType", tf_device_type_name(en->ua.type));
    ref_str(g, "referrerDomain", en->attribution.referrer_domain);
    ref_str(g, "utmSource", en->attribution.source);
    ref_str(g, "utmMedium", en->attribution.medium);
    ref_str(g, "utmCampaign", en->attribution.campaign);
    ref_str(g, "utmTerm", en->attribution.term);
    ref_str(g, "utmContent", en->attribution.content);
    if (ev->has_value) {
        yajl_gen_string(g, (const unsigned char *)"value", 5);
        yajl_gen_number(g, ev->value_text, strlen(ev->value_text));
        ref_str(g, "currency", ev->currency);
    }
    if (ev->properties_json) {
        yajl_gen_string(g, (const unsigned char *)"properties", 10);
        yajl_gen_number(g, ev->properties_json, strlen(ev->properties_json));
    }
    yajl_gen_map_close(g);
    const unsigned char *buf;
    size_t n;
    ck_assert_int_eq(yajl_gen_get_buf(g, &buf, &n), yajl_gen_status_ok);
    char *out = strndup((const char *)buf, n);
    yajl_gen_free(g);
    return out;
}

/* Random strings of every escaping class (quotes, backslashes, each control character,
 * '/', multi-byte UTF-8) in every string field: the same bytes as yajl's generator. */
START_TEST(test_enrich_json_equals_yajl_generator) {
    static const char *const pieces[] = {
        "a", "Z", "/", "\"", "\\", /* the first five: printable */ "\b", "\f", "\n", "\r", "\t", "\x01", "\x1f", "\x7f",
        " ", "\xc3\xa9", "\xe2\x80\xa8", "\xf0\x9f\x98\x80", "?utm_source=", "&", "%22",
        "https://shop.example.com/p", "<", "'",
    };
    const size_t n_pieces = sizeof(pieces) / sizeof(pieces[0]);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    int accepted = 0, seen[9] = {0};
    for (int round = 0; round < 400; round++) {
        char fields[6][160];
        for (int f = 0; f < 6; f++) {
            size_t used = 0;
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int k = (int)(x % 12) + (f == 0); /* the eventId is never empty */
            /* ids must be printable (SPEC §3): quotes and backslashes only */
            static const char *const prefix[6] = {"e", "v", "", "", "https://ref.example/", ""};
            used = (size_t)snprintf(fields[f], sizeof(fields[f]), "%s", prefix[f]);
            for (int i = 0; i < k; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                const char *p = f < 2 ? pieces[x % 5] : pieces[x % n_pieces];
                if (used + strlen(p) + 1 > sizeof(fields[f])) break;
                memcpy(fields[f] + used, p, strlen(p) + 1);
                used += strlen(p);
            }
        }
        char url[200];
        snprintf(url, sizeof(url), "https://shop.example.com/x?utm_source=%s&utm_campaign=c%d",
                 round % 3 ? "news" : "a%22b%5C", round);
        /* The raw event, written by yajl so that every piece arrives escaped. */
        yajl_gen g = yajl_gen_alloc(NULL);
        yajl_gen_map_open(g);
        const char *keys[] = {"eventId", "visitorId", "userId", "name", "referrer", "title"};
        yajl_gen_string(g, (const unsigned char *)"type", 4);
        yajl_gen_string(g, (const unsigned char *)(round % 2 ? "PURCHASE" : "CUSTOM"),
                        round % 2 ? 8 : 6);
        yajl_gen_string(g, (const unsigned char *)"timestamp", 9);
        yajl_gen_integer(g, 1700000000000LL + round * 7919LL);
        yajl_gen_string(g, (const unsigned char *)"url", 3);
        yajl_gen_string(g, (const unsigned char *)url, strlen(url));
        if (round % 2) {
            yajl_gen_string(g, (const unsigned char *)"value", 5);
            yajl_gen_double(g, round * 1.25);
            yajl_gen_string(g, (const unsigned char *)"currency", 8);
            yajl_gen_string(g, (const unsigned char *)"EUR", 3);
        }
        if (round % 5 == 0) {
            yajl_gen_string(g, (const unsigned char *)"properties", 10);
            yajl_gen_map_open(g);
            yajl_gen_string(g, (const unsigned char *)"k", 1);
            yajl_gen_string(g, (const unsigned char *)fields[3], strlen(fields[3]));
            yajl_gen_map_close(g);
        }
        for (int f = 0; f < 6; f++) {
            if (f > 0 && round % 7 == f) continue; /* absent: null in the feed */
            yajl_gen_string(g, (const unsigned char *)keys[f], strlen(keys[f]));
            yajl_gen_string(g, (const unsigned char *)fields[f], strlen(fields[f]));
        }
        yajl_gen_map_close(g);
        const unsigned char *raw;
        size_t raw_len;
        yajl_gen_get_buf(g, &raw, &raw_len);
        char *text = strndup((const char *)raw, raw_len);
        yajl_gen_free(g);
        tf_event_t ev;
        tf_event_init(&ev);
        tf_event_error_t perr;
        if (tf_event_parse(&ev, text, strlen(text), &perr) != 0) {
            /* A piece combination the event contract refuses (e.g. a visitorId that is
             * not printable): nothing to serialise. */
            tf_event_reset(&ev);
            free(text);
            continue;
        }
        accepted++;
        tf_enriched_t en;
        tf_enriched_init(&en);
        ck_assert_int_eq(tf_enrich(&ev, clf(), &en), 0);
        size_t len = 0;
        char *got = tf_enriched_json(&ev, &en, fields[4], &len);
        char *want = reference_json(&ev, &en, fields[4]);
        ck_assert_ptr_nonnull(got);
        ck_assert_uint_eq(len, strlen(got));
        ck_assert_msg(strcmp(got, want) == 0, "round %d:\n got %s\nwant %s", round, got, want);
        static const char *const escapes[] = {"\\u0001", "\\u001F", "\\b", "\\f", "\\n",
                                              "\\r", "\\t", "\\\"", "\\\\"};
        for (size_t e = 0; e < sizeof(escapes) / sizeof(escapes[0]); e++)
            seen[e] += strstr(got, escapes[e]) != NULL;
        free(got);
        free(want);
        free(text);
        tf_enriched_reset(&en);
        tf_event_reset(&ev);
    }
    /* enough rounds reached the comparison, with every kind of escape in them */
    ck_assert_int_gt(accepted, 100);
    for (int e = 0; e < 9; e++) ck_assert_msg(seen[e] > 5, "escape %d seen %d times", e, seen[e]);
}
END_TEST

/* ---- the (URL, referrer) cache ---------------------------------------------------------- */

static const char *const cache_urls[] = {
    "https://shop.example.com/",
    "https://shop.example.com/products/a?utm_source=news&utm_medium=email&utm_campaign=w1",
    "https://shop.example.com/products/b?gclid=abc",
    "https://shop.example.com/cart#top",
    "https://shop.example.com/p?utm_source=x&utm_term=t&utm_content=c",
    "https://xn--mnchen-3ya.example/stra%C3%9Fe",
};
static const char *const cache_referrers[] = {
    NULL, "", "https://www.google.de/search?q=x", "https://shop.example.com/",
    "https://l.facebook.com/", "https://blog.example.org/post", "not a url",
};

static void assert_same_enrichment(const tf_enriched_t *a, const tf_enriched_t *b) {
    const char *const fa[] = {a->url.scheme, a->url.host, a->url.path, a->url.utm_source,
                              a->url.utm_medium, a->url.utm_campaign, a->url.utm_term,
                              a->url.utm_content, a->url.click_id_name, a->url.click_id,
                              a->url.campaign_key, a->attribution.referrer_domain,
                              a->attribution.source, a->attribution.medium,
                              a->attribution.campaign, a->attribution.term,
                              a->attribution.content, a->path, a->campaign_key,
                              a->context.utm_source, a->context.referrer_domain};
    const char *const fb[] = {b->url.scheme, b->url.host, b->url.path, b->url.utm_source,
                              b->url.utm_medium, b->url.utm_campaign, b->url.utm_term,
                              b->url.utm_content, b->url.click_id_name, b->url.click_id,
                              b->url.campaign_key, b->attribution.referrer_domain,
                              b->attribution.source, b->attribution.medium,
                              b->attribution.campaign, b->attribution.term,
                              b->attribution.content, b->path, b->campaign_key,
                              b->context.utm_source, b->context.referrer_domain};
    for (size_t i = 0; i < sizeof(fa) / sizeof(fa[0]); i++) {
        char what[32];
        snprintf(what, sizeof(what), "field %zu", i);
        assert_str_or_null(what, fa[i], fb[i]);
    }
    ck_assert_int_eq(a->ua.type, b->ua.type);
}

/* Through a tiny cache (forced collisions and evictions) and a large one, every
 * (url, referrer) pair enriches exactly as without a cache, hits included. */
START_TEST(test_enrich_cache_equals_uncached) {
    size_t capacities[] = {1, 1024};
    for (size_t c = 0; c < 2; c++) {
        tf_enrich_cache_t *cache = tf_enrich_cache_new(capacities[c]);
        ck_assert_ptr_nonnull(cache);
        for (int round = 0; round < 3; round++)
            for (size_t u = 0; u < sizeof(cache_urls) / sizeof(cache_urls[0]); u++)
                for (size_t r = 0; r < sizeof(cache_referrers) / sizeof(cache_referrers[0]); r++) {
                    char json[1024];
                    if (cache_referrers[r])
                        snprintf(json, sizeof(json), HEAD("PAGE_VIEW") ",\"url\":\"%s\",\"referrer\":\"%s\"}",
                                 cache_urls[u], cache_referrers[r]);
                    else
                        snprintf(json, sizeof(json), HEAD("PAGE_VIEW") ",\"url\":\"%s\"}", cache_urls[u]);
                    tf_event_t ev;
                    tf_event_error_t err;
                    tf_event_init(&ev);
                    if (tf_event_parse(&ev, json, strlen(json), &err) != 0) {
                        /* "not a url" is refused by the validator: nothing to compare */
                        ck_assert_str_eq(cache_referrers[r], "not a url");
                        continue;
                    }
                    tf_enriched_t plain, cached;
                    tf_enriched_init(&plain);
                    tf_enriched_init(&cached);
                    ck_assert_int_eq(tf_enrich(&ev, clf(), &plain), 0);
                    ck_assert_int_eq(tf_enrich_cached(&ev, clf(), cache, &cached), 0);
                    assert_same_enrichment(&plain, &cached);
                    tf_enriched_reset(&plain);
                    tf_enriched_reset(&cached);
                    tf_event_reset(&ev);
                }
        uint64_t hits = 0, misses = 0;
        tf_enrich_cache_stats(cache, &hits, &misses);
        ck_assert_uint_eq(hits + misses, 3 * 6 * 6);
        /* 30 distinct pairs: "" parses as no referrer, the same as an absent one */
        if (capacities[c] > 100)
            ck_assert_uint_eq(misses, 6 * 5); /* every pair computed once, then hits */
        else
            ck_assert_uint_gt(misses, 6 * 5); /* one slot: pairs evict each other */
        tf_enrich_cache_destroy(cache);
    }
    tf_enrich_cache_destroy(NULL);
}
END_TEST

static Suite *enrich_suite(void) {
    Suite *s = suite_create("enrich");
    TCase *tc = tcase_create("core");
    tcase_add_unchecked_fixture(tc, load_classifier, free_classifier);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_enrich_utm_from_url);
    tcase_add_loop_test(tc, test_enrich_attribution_table, 0,
                        (int)(sizeof(attribution_cases) / sizeof(attribution_cases[0])));
    tcase_add_loop_test(tc, test_enrich_device_from_user_agent, 0,
                        (int)(sizeof(device_cases) / sizeof(device_cases[0])));
    tcase_add_test(tc, test_enrich_context_geo_language_screen);
    tcase_add_test(tc, test_enrich_without_url_or_user_agent);
    tcase_add_test(tc, test_enrich_reuse_replaces_previous);
    tcase_add_test(tc, test_enrich_json_every_field);
    tcase_add_test(tc, test_enrich_json_minimal_event);
    tcase_add_loop_test(tc, test_enrich_json_occurred_at, 0,
                        (int)(sizeof(time_cases) / sizeof(time_cases[0])));
    tcase_add_loop_test(tc, test_enrich_json_value_text_kept, 0,
                        (int)(sizeof(value_cases) / sizeof(value_cases[0])));
    tcase_add_test(tc, test_enrich_json_escaping_round_trip);
    tcase_add_test(tc, test_enrich_json_equals_yajl_generator);
    tcase_add_test(tc, test_enrich_cache_equals_uncached);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(enrich_suite()) == 0 ? 0 : 1; }
