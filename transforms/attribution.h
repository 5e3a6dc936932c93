/* attribution.h — where a session came from: the utm* columns and referrer domain of
 * SPEC §4, from the page URL's UTM parameters and click id, else its referrer.
 * Pure: no I/O.
 *
 * Rules, in order:
 * 1. Each utm_* parameter present (non-empty) in the page URL is copied to its
 *    column. When utm_source is present nothing is inferred: the other columns are
 *    exactly the URL's (NULL when absent).
 * 2. Otherwise source, and medium unless utm_medium was given, come from the ad
 *    click id of the page URL:
 *      gclid, dclid, gbraid, wbraid -> "google" / "cpc"   (Google Ads, DV360, iOS)
 *      msclkid                      -> "bing" / "cpc"     (Microsoft Advertising)
 *      ttclid                       -> "tiktok" / "cpc"   (TikTok Ads)
 *      twclid                       -> "twitter" / "cpc"  (X / Twitter Ads)
 *      li_fat_id                    -> "linkedin" / "cpc" (LinkedIn Ads)
 *      fbclid                       -> "facebook" / "social"
 *    gclid, gbraid and wbraid give what GA4's Google Ads auto-tagging reports;
 *    dclid (Display & Video 360 / Campaign Manager clicks) is counted as Google paid
 *    traffic too. GA4 has no default for the other ids; they are ad-click ids of
 *    their networks, hence "cpc". fbclid is the exception: Facebook and Instagram
 *    add it to every outbound link, organic posts included, so it proves the
 *    origin but not a paid click; GA4 reports such visits as Organic Social,
 *    hence "social".
 * 3. Otherwise an external referrer gives source = the referrer domain and medium =
 *    "organic" (search engine), "social" (social network) or "referral". A referrer
 *    is external when its domain differs from the page's (both compared without a
 *    leading "www.", so www.example.com -> example.com is internal; other
 *    subdomains are different sites). Without a page host every referrer with a
 *    host is external.
 * 4. Otherwise (no referrer, an internal one, or one without a host or that cannot
 *    be parsed): source and medium stay NULL ("direct").
 * campaign, term and content are only ever the URL's utm_* values.
 *
 * Classification of a referrer domain (host, lowercased, punycode, no "www."):
 * - organic: google.<tld> (google.com, google.de, google.co.uk, google.com.au, …) and
 *   its m., images., encrypted. subdomains; bing.com (cn., m.); duckduckgo.com (html.,
 *   lite.); yahoo.<tld> and search.yahoo.<tld> with any subdomain (uk.search.yahoo.com,
 *   r.search.yahoo.com); yandex.<tld>, ya.ru; baidu.com (m.); ecosia.org; ask.com
 *   (search.); naver.com (search., m.search., m.); seznam.cz (search.); qwant.com
 *   (lite.); startpage.com (eu., us.); search.brave.com; sogou.com; so.com;
 *   daum.net (search.); search.aol.com; kagi.com; the Google search Android app
 *   (android-app://com.google.android.googlequicksearchbox).
 * - social: facebook.com, instagram.com, linkedin.com, pinterest.com, reddit.com,
 *   youtube.com, tiktok.com, tumblr.com, vk.com, twitter.com, x.com, threads.net,
 *   threads.com, quora.com, weibo.com, xing.com, discord.com, snapchat.com,
 *   whatsapp.com, telegram.org, bsky.app, ok.ru (each with any subdomain, e.g.
 *   l.facebook.com, m.facebook.com, lm.facebook.com, old.reddit.com); pinterest.<tld>;
 *   exact: t.co, fb.me, lnkd.in, pin.it, youtu.be, t.me, mastodon.social,
 *   news.ycombinator.com; the Facebook, Instagram, LinkedIn, Twitter, Reddit,
 *   Pinterest and TikTok Android apps.
 * - referral: any other host (mail.google.com, docs.google.com, news.google.com …).
 * "<tld>" is one label ("de") or a two-letter country code after one of co, com,
 * net, org, ac, gov, edu, gob, ne, or, go ("co.uk", "com.br").
 */
#ifndef TF_ATTRIBUTION_H
#define TF_ATTRIBUTION_H

#include <stddef.h>

#include "transforms/url.h"

typedef enum {
    TF_MEDIUM_NONE = 0, /* no host to classify */
    TF_MEDIUM_ORGANIC,  /* a search engine */
    TF_MEDIUM_SOCIAL,   /* a social network */
    TF_MEDIUM_REFERRAL, /* any other site */
} tf_medium_t;

/* "organic", "social", "referral"; NULL for TF_MEDIUM_NONE or an unknown value. */
const char *tf_medium_name(tf_medium_t medium);

/* Classifies a referrer domain (see the tables above). The domain is matched as
 * given, after dropping one leading "www." and one trailing dot; it should be
 * lowercased (tf_url_t.host is). Returns TF_MEDIUM_NONE for NULL or "". */
tf_medium_t tf_attribution_classify(const char *domain);

/* The attribution of a session's first event. Strings are NUL-terminated UTF-8
 * owned by the struct (released by tf_attribution_reset), NULL when absent. */
typedef struct tf_attribution_s {
    char *referrer_domain; /* of the referrer, NULL if none/unparseable/no host */
    char *source, *medium, *campaign, *term, *content; /* the session's utm* columns */
} tf_attribution_t;

/* Makes *a empty (all NULL); no allocation. */
void tf_attribution_init(tf_attribution_t *a);

/* Frees what *a holds and makes it empty. Safe on an empty or zeroed struct. */
void tf_attribution_reset(tf_attribution_t *a);

/* Computes the attribution for a page (parsed URL; NULL or an empty tf_url_t when
 * the event has none) and its referrer URL (NULL or "" when none; an unparseable
 * referrer counts as none). *out must be initialised (tf_attribution_init, or
 * zeroed) or hold an earlier result. Returns 0 and fills *out (previous content
 * released), or -1 with errstr filled and *out left empty when memory ran out. */
int tf_attribution_compute(const tf_url_t *page, const char *referrer_url, tf_attribution_t *out,
                           char *errstr, size_t errstr_size) __attribute__((warn_unused_result));

#endif
