/* attribution.c — session source/medium from UTM, click ids and referrer tables. */
#include "transforms/attribution.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A referrer rule. pattern is a domain; a trailing ".*" stands for a top-level
 * suffix (see tld_like). ANY_SUB: subdomains of the pattern match too. */
#define ANY_SUB 1u
typedef struct {
    const char *pattern;
    unsigned flags;
    tf_medium_t medium;
} referrer_rule_t;

#define ORG TF_MEDIUM_ORGANIC
#define SOC TF_MEDIUM_SOCIAL

static const referrer_rule_t rules[] = {
    /* search engines */
    {"google.*", 0, ORG},
    {"m.google.*", 0, ORG},
    {"images.google.*", 0, ORG},
    {"encrypted.google.*", 0, ORG},
    {"bing.com", 0, ORG},
    {"cn.bing.com", 0, ORG},
    {"m.bing.com", 0, ORG},
    {"duckduckgo.com", 0, ORG},
    {"html.duckduckgo.com", 0, ORG},
    {"lite.duckduckgo.com", 0, ORG},
    {"yahoo.*", 0, ORG},
    {"search.yahoo.*", ANY_SUB, ORG},
    {"yandex.*", 0, ORG},
    {"ya.ru", 0, ORG},
    {"baidu.com", 0, ORG},
    {"m.baidu.com", 0, ORG},
    {"ecosia.org", 0, ORG},
    {"ask.com", 0, ORG},
    {"search.ask.com", 0, ORG},
    {"naver.com", 0, ORG},
    {"search.naver.com", 0, ORG},
    {"m.search.naver.com", 0, ORG},
    {"m.naver.com", 0, ORG},
    {"seznam.cz", 0, ORG},
    {"search.seznam.cz", 0, ORG},
    {"qwant.com", 0, ORG},
    {"lite.qwant.com", 0, ORG},
    {"startpage.com", 0, ORG},
    {"eu.startpage.com", 0, ORG},
    {"us.startpage.com", 0, ORG},
    {"search.brave.com", 0, ORG},
    {"sogou.com", 0, ORG},
    {"so.com", 0, ORG},
    {"daum.net", 0, ORG},
    {"search.daum.net", 0, ORG},
    {"search.aol.com", 0, ORG},
    {"kagi.com", 0, ORG},
    {"com.google.android.googlequicksearchbox", 0, ORG},
    /* social networks */
    {"facebook.com", ANY_SUB, SOC},
    {"instagram.com", ANY_SUB, SOC},
    {"linkedin.com", ANY_SUB, SOC},
    {"pinterest.*", ANY_SUB, SOC},
    {"reddit.com", ANY_SUB, SOC},
    {"youtube.com", ANY_SUB, SOC},
    {"tiktok.com", ANY_SUB, SOC},
    {"tumblr.com", ANY_SUB, SOC},
    {"vk.com", ANY_SUB, SOC},
    {"twitter.com", ANY_SUB, SOC},
    {"x.com", ANY_SUB, SOC},
    {"threads.net", ANY_SUB, SOC},
    {"threads.com", ANY_SUB, SOC},
    {"quora.com", ANY_SUB, SOC},
    {"weibo.com", ANY_SUB, SOC},
    {"xing.com", ANY_SUB, SOC},
    {"discord.com", ANY_SUB, SOC},
    {"snapchat.com", ANY_SUB, SOC},
    {"whatsapp.com", ANY_SUB, SOC},
    {"telegram.org", ANY_SUB, SOC},
    {"bsky.app", ANY_SUB, SOC},
    {"ok.ru", ANY_SUB, SOC},
    {"t.co", 0, SOC},
    {"fb.me", 0, SOC},
    {"lnkd.in", 0, SOC},
    {"pin.it", 0, SOC},
    {"youtu.be", 0, SOC},
    {"t.me", 0, SOC},
    {"mastodon.social", 0, SOC},
    {"news.ycombinator.com", 0, SOC},
    {"com.facebook.katana", 0, SOC},
    {"com.facebook.lite", 0, SOC},
    {"com.instagram.android", 0, SOC},
    {"com.linkedin.android", 0, SOC},
    {"com.twitter.android", 0, SOC},
    {"com.reddit.frontpage", 0, SOC},
    {"com.pinterest", 0, SOC},
    {"com.zhiliaoapp.musically", 0, SOC},
};

/* Ad click ids (tf_url_t.click_id_name) and the source / medium they imply. */
static const struct {
    const char *name, *source, *medium;
} click_ids[] = {
    {"gclid", "google", "cpc"},  {"dclid", "google", "cpc"},       {"gbraid", "google", "cpc"},
    {"wbraid", "google", "cpc"}, {"fbclid", "facebook", "social"}, {"msclkid", "bing", "cpc"},
    {"ttclid", "tiktok", "cpc"}, {"twclid", "twitter", "cpc"},     {"li_fat_id", "linkedin", "cpc"},
};

const char *tf_medium_name(tf_medium_t medium) {
    switch (medium) {
    case TF_MEDIUM_ORGANIC: return "organic";
    case TF_MEDIUM_SOCIAL: return "social";
    case TF_MEDIUM_REFERRAL: return "referral";
    default: return NULL;
    }
}

static bool label_in(const char *s, size_t n, const char *const *set) {
    for (; *set; set++)
        if (strlen(*set) == n && memcmp(*set, s, n) == 0) return true;
    return false;
}

/* A top-level suffix: one label of [a-z0-9-] holding a letter ("de", "com",
 * "xn--p1ai"), or a second-level category before a two-letter country code
 * ("co.uk", "com.au"). */
static bool tld_like(const char *s, size_t n) {
    static const char *const second_level[] = {"co",  "com", "net", "org", "ac", "gov",
                                               "edu", "gob", "ne",  "or",  "go", NULL};
    const char *dot = memchr(s, '.', n);
    if (!dot) {
        bool letter = false;
        if (n == 0 || n > 63) return false;
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            if (c >= 'a' && c <= 'z')
                letter = true;
            else if (!((c >= '0' && c <= '9') || c == '-'))
                return false;
        }
        return letter;
    }
    size_t first = (size_t)(dot - s), rest = n - first - 1;
    if (!label_in(s, first, second_level) || rest != 2) return false;
    return dot[1] >= 'a' && dot[1] <= 'z' && dot[2] >= 'a' && dot[2] <= 'z';
}

static bool match_exact(const char *s, size_t n, const char *pattern) {
    size_t pl = strlen(pattern);
    if (pl >= 2 && pattern[pl - 1] == '*') {
        size_t fixed = pl - 1; /* "google." */
        return n > fixed && memcmp(s, pattern, fixed) == 0 && tld_like(s + fixed, n - fixed);
    }
    return n == pl && memcmp(s, pattern, n) == 0;
}

static bool rule_matches(const char *s, size_t n, const referrer_rule_t *rule) {
    if (match_exact(s, n, rule->pattern)) return true;
    if (!(rule->flags & ANY_SUB)) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '.' && match_exact(s + i + 1, n - i - 1, rule->pattern)) return true;
    return false;
}

tf_medium_t tf_attribution_classify(const char *domain) {
    if (!domain || !*domain) return TF_MEDIUM_NONE;
    size_t n = strlen(domain);
    if (domain[n - 1] == '.') n--;
    if (n > 4 && memcmp(domain, "www.", 4) == 0 && memchr(domain + 4, '.', n - 4)) {
        domain += 4;
        n -= 4;
    }
    if (n == 0) return TF_MEDIUM_NONE;
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if (rule_matches(domain, n, &rules[i])) return rules[i].medium;
    return TF_MEDIUM_REFERRAL;
}

void tf_attribution_init(tf_attribution_t *a) { memset(a, 0, sizeof(*a)); }

void tf_attribution_reset(tf_attribution_t *a) {
    free(a->referrer_domain);
    free(a->source);
    free(a->medium);
    free(a->campaign);
    free(a->term);
    free(a->content);
    tf_attribution_init(a);
}

/* *dst = copy of src (NULL stays NULL). Returns false when out of memory. */
static bool copy_opt(char **dst, const char *src) {
    if (!src) return true;
    *dst = strdup(src);
    return *dst != NULL;
}

int tf_attribution_compute(const tf_url_t *page, const char *referrer_url, tf_attribution_t *out,
                           char *errstr, size_t errstr_size) {
    tf_attribution_t a;
    tf_attribution_init(&a);
    tf_attribution_reset(out);

    if (referrer_url && *referrer_url) {
        tf_url_t ref;
        char ignored[128];
        tf_url_init(&ref);
        int rc = tf_url_parse(referrer_url, &ref, ignored, sizeof(ignored));
        if (rc == -2) goto oom;
        if (rc == 0) {
            bool ok = copy_opt(&a.referrer_domain, tf_url_referrer_domain(&ref));
            tf_url_reset(&ref);
            if (!ok) goto oom;
        }
    }

    if (page) {
        if (!copy_opt(&a.source, page->utm_source) || !copy_opt(&a.medium, page->utm_medium) ||
            !copy_opt(&a.campaign, page->utm_campaign) || !copy_opt(&a.term, page->utm_term) ||
            !copy_opt(&a.content, page->utm_content))
            goto oom;
    }

    if (!a.source) {
        const char *source = NULL, *medium = NULL;
        if (page && page->click_id_name) {
            for (size_t i = 0; i < sizeof(click_ids) / sizeof(click_ids[0]); i++)
                if (strcmp(click_ids[i].name, page->click_id_name) == 0) {
                    source = click_ids[i].source;
                    medium = click_ids[i].medium;
                    break;
                }
        }
        if (!source && a.referrer_domain) {
            const char *page_domain = tf_url_referrer_domain(page);
            if (!page_domain || strcmp(page_domain, a.referrer_domain) != 0) {
                source = a.referrer_domain;
                medium = tf_medium_name(tf_attribution_classify(a.referrer_domain));
            }
        }
        if (source) {
            if (!copy_opt(&a.source, source)) goto oom;
            if (!a.medium && !copy_opt(&a.medium, medium)) goto oom;
        }
    }

    *out = a;
    return 0;
oom:
    tf_attribution_reset(&a);
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}
