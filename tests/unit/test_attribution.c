/* test_attribution.c — session attribution: UTM precedence, click ids, search engine
 * and social network tables, internal referrers, www stripping. Exact values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "transforms/attribution.h"

/* page: the event URL (NULL = the event has none); referrer: as sent. */
typedef struct {
    const char *page, *referrer;
    const char *domain, *source, *medium, *campaign, *term, *content;
} attr_case_t;

#define EX "https://www.example.com/landing"

static const attr_case_t cases[] = {
    /* 1. utm_* of the page win */
    {.page = EX "?utm_source=newsletter&utm_medium=email&utm_campaign=may&utm_term=t"
                "&utm_content=c",
     .referrer = "https://www.google.com/",
     .domain = "google.com",
     .source = "newsletter",
     .medium = "email",
     .campaign = "may",
     .term = "t",
     .content = "c"},
    {.page = EX "?utm_source=partner",
     .referrer = "https://www.bing.com/search?q=x",
     .domain = "bing.com",
     .source = "partner"},
    {.page = EX "?utm_source=partner&gclid=abc", .source = "partner"},
    {.page = EX "?utm_source=Mail&utm_medium=Email",
     .referrer = "https://example.com/",
     .domain = "example.com",
     .source = "Mail",
     .medium = "Email"},
    /* utm_* without utm_source: copied, source (and medium if absent) inferred */
    {.page = EX "?utm_campaign=spring",
     .referrer = "https://www.google.de/",
     .domain = "google.de",
     .source = "google.de",
     .medium = "organic",
     .campaign = "spring"},
    {.page = EX "?utm_medium=display&gclid=1", .source = "google", .medium = "display"},
    {.page = EX "?utm_campaign=spring",
     .referrer = "https://www.example.com/other",
     .domain = "example.com",
     .campaign = "spring"},
    {.page = EX "?utm_term=shoes", .term = "shoes"},
    /* 2. click ids, over an external referrer */
    {.page = EX "?gclid=abc",
     .referrer = "https://l.facebook.com/l.php",
     .domain = "l.facebook.com",
     .source = "google",
     .medium = "cpc"},
    {.page = EX "?dclid=1", .source = "google", .medium = "cpc"},
    {.page = EX "?gbraid=1", .source = "google", .medium = "cpc"},
    {.page = EX "?wbraid=1", .source = "google", .medium = "cpc"},
    {.page = EX "?msclkid=1",
     .referrer = "https://www.bing.com/",
     .domain = "bing.com",
     .source = "bing",
     .medium = "cpc"},
    {.page = EX "?fbclid=1",
     .referrer = "https://l.facebook.com/",
     .domain = "l.facebook.com",
     .source = "facebook",
     .medium = "social"},
    {.page = EX "?ttclid=1", .source = "tiktok", .medium = "cpc"},
    {.page = EX "?twclid=1", .source = "twitter", .medium = "cpc"},
    {.page = EX "?li_fat_id=1", .source = "linkedin", .medium = "cpc"},
    {.page = EX "?fbclid=F&gclid=G", .source = "google", .medium = "cpc"},
    {.page = EX "?gclid=",
     .referrer = "https://duckduckgo.com/",
     .domain = "duckduckgo.com",
     .source = "duckduckgo.com",
     .medium = "organic"},
    /* 3. external referrers */
    {.page = EX,
     .referrer = "https://news.example.org/a?b=c#d",
     .domain = "news.example.org",
     .source = "news.example.org",
     .medium = "referral"},
    {.page = EX,
     .referrer = "HTTPS://WWW.GOOGLE.COM/",
     .domain = "google.com",
     .source = "google.com",
     .medium = "organic"},
    {.page = EX,
     .referrer = "https://www.google.com./url?q=x",
     .domain = "google.com",
     .source = "google.com",
     .medium = "organic"},
    {.page = EX,
     .referrer = "https://www.bücher.de/",
     .domain = "xn--bcher-kva.de",
     .source = "xn--bcher-kva.de",
     .medium = "referral"},
    {.page = EX,
     .referrer = "https://user:pw@www.reddit.com:443/r/x",
     .domain = "reddit.com",
     .source = "reddit.com",
     .medium = "social"},
    {.page = EX,
     .referrer = "android-app://com.google.android.googlequicksearchbox/https/www.google.com",
     .domain = "com.google.android.googlequicksearchbox",
     .source = "com.google.android.googlequicksearchbox",
     .medium = "organic"},
    {.page = EX,
     .referrer = "android-app://com.google.android.gm/",
     .domain = "com.google.android.gm",
     .source = "com.google.android.gm",
     .medium = "referral"},
    {.page = "https://shop.example.com/",
     .referrer = "https://blog.example.com/post",
     .domain = "blog.example.com",
     .source = "blog.example.com",
     .medium = "referral"},
    {.page = NULL,
     .referrer = "https://www.google.co.uk/",
     .domain = "google.co.uk",
     .source = "google.co.uk",
     .medium = "organic"},
    {.page = "file:///index.html",
     .referrer = "https://t.co/abc",
     .domain = "t.co",
     .source = "t.co",
     .medium = "social"},
    /* 4. internal or no referrer: direct */
    {.page = EX, .referrer = "https://example.com/a", .domain = "example.com"},
    {.page = "https://example.com/",
     .referrer = "http://www.example.com:8080/a",
     .domain = "example.com"},
    {.page = "https://Example.COM./", .referrer = "https://example.com/", .domain = "example.com"},
    {.page = "https://bücher.de/",
     .referrer = "https://www.xn--bcher-kva.de/",
     .domain = "xn--bcher-kva.de"},
    {.page = EX, .referrer = NULL},
    {.page = EX, .referrer = ""},
    {.page = EX, .referrer = "not a url"},
    {.page = EX, .referrer = "https://"},
    {.page = EX, .referrer = "file:///home/me/page.html"},
    {.page = EX, .referrer = "https://bad host/"},
    {.page = NULL, .referrer = NULL},
};

static void expect_str(int idx, const char *what, const char *got, const char *want) {
    if (!want)
        ck_assert_msg(got == NULL, "case %d: %s = \"%s\", expected NULL", idx, what,
                      got ? got : "");
    else
        ck_assert_msg(got && strcmp(got, want) == 0, "case %d: %s = %s, expected \"%s\"", idx, what,
                      got ? got : "NULL", want);
}

START_TEST(test_attribution_compute_table) {
    const attr_case_t *c = &cases[_i];
    tf_url_t page;
    tf_attribution_t a;
    char errstr[128];
    tf_url_init(&page);
    tf_attribution_init(&a);
    if (c->page)
        ck_assert_msg(tf_url_parse(c->page, &page, errstr, sizeof(errstr)) == 0, "case %d: %s", _i,
                      errstr);
    ck_assert_int_eq(
        tf_attribution_compute(c->page ? &page : NULL, c->referrer, &a, errstr, sizeof(errstr)), 0);
    expect_str(_i, "referrer_domain", a.referrer_domain, c->domain);
    expect_str(_i, "source", a.source, c->source);
    expect_str(_i, "medium", a.medium, c->medium);
    expect_str(_i, "campaign", a.campaign, c->campaign);
    expect_str(_i, "term", a.term, c->term);
    expect_str(_i, "content", a.content, c->content);

    /* the same with an empty (parsed-nothing) page instead of NULL gives the same */
    if (!c->page) {
        tf_attribution_t b;
        tf_attribution_init(&b);
        ck_assert_int_eq(tf_attribution_compute(&page, c->referrer, &b, errstr, sizeof(errstr)), 0);
        expect_str(_i, "source (empty page)", b.source, c->source);
        expect_str(_i, "medium (empty page)", b.medium, c->medium);
        tf_attribution_reset(&b);
    }
    tf_attribution_reset(&a);
    tf_url_reset(&page);
    ck_assert_ptr_null(a.source);
}
END_TEST

/* Referrer domain -> medium, for every rule of the tables and near misses. */
static const struct {
    const char *domain;
    tf_medium_t medium;
} classify_cases[] = {
    /* search engines */
    {"google.com", TF_MEDIUM_ORGANIC},
    {"www.google.com", TF_MEDIUM_ORGANIC},
    {"google.de", TF_MEDIUM_ORGANIC},
    {"google.co.uk", TF_MEDIUM_ORGANIC},
    {"google.com.au", TF_MEDIUM_ORGANIC},
    {"google.co.jp", TF_MEDIUM_ORGANIC},
    {"google.com.", TF_MEDIUM_ORGANIC},
    {"m.google.com", TF_MEDIUM_ORGANIC},
    {"images.google.fr", TF_MEDIUM_ORGANIC},
    {"encrypted.google.com", TF_MEDIUM_ORGANIC},
    {"bing.com", TF_MEDIUM_ORGANIC},
    {"cn.bing.com", TF_MEDIUM_ORGANIC},
    {"duckduckgo.com", TF_MEDIUM_ORGANIC},
    {"html.duckduckgo.com", TF_MEDIUM_ORGANIC},
    {"yahoo.com", TF_MEDIUM_ORGANIC},
    {"search.yahoo.com", TF_MEDIUM_ORGANIC},
    {"uk.search.yahoo.com", TF_MEDIUM_ORGANIC},
    {"r.search.yahoo.com", TF_MEDIUM_ORGANIC},
    {"search.yahoo.co.jp", TF_MEDIUM_ORGANIC},
    {"yahoo.co.jp", TF_MEDIUM_ORGANIC},
    {"yandex.ru", TF_MEDIUM_ORGANIC},
    {"yandex.com.tr", TF_MEDIUM_ORGANIC},
    {"ya.ru", TF_MEDIUM_ORGANIC},
    {"baidu.com", TF_MEDIUM_ORGANIC},
    {"m.baidu.com", TF_MEDIUM_ORGANIC},
    {"ecosia.org", TF_MEDIUM_ORGANIC},
    {"ask.com", TF_MEDIUM_ORGANIC},
    {"search.ask.com", TF_MEDIUM_ORGANIC},
    {"naver.com", TF_MEDIUM_ORGANIC},
    {"search.naver.com", TF_MEDIUM_ORGANIC},
    {"m.search.naver.com", TF_MEDIUM_ORGANIC},
    {"seznam.cz", TF_MEDIUM_ORGANIC},
    {"search.seznam.cz", TF_MEDIUM_ORGANIC},
    {"qwant.com", TF_MEDIUM_ORGANIC},
    {"lite.qwant.com", TF_MEDIUM_ORGANIC},
    {"startpage.com", TF_MEDIUM_ORGANIC},
    {"eu.startpage.com", TF_MEDIUM_ORGANIC},
    {"search.brave.com", TF_MEDIUM_ORGANIC},
    {"sogou.com", TF_MEDIUM_ORGANIC},
    {"so.com", TF_MEDIUM_ORGANIC},
    {"search.daum.net", TF_MEDIUM_ORGANIC},
    {"search.aol.com", TF_MEDIUM_ORGANIC},
    {"kagi.com", TF_MEDIUM_ORGANIC},
    {"com.google.android.googlequicksearchbox", TF_MEDIUM_ORGANIC},
    /* social networks */
    {"facebook.com", TF_MEDIUM_SOCIAL},
    {"l.facebook.com", TF_MEDIUM_SOCIAL},
    {"m.facebook.com", TF_MEDIUM_SOCIAL},
    {"lm.facebook.com", TF_MEDIUM_SOCIAL},
    {"www.facebook.com", TF_MEDIUM_SOCIAL},
    {"fb.me", TF_MEDIUM_SOCIAL},
    {"instagram.com", TF_MEDIUM_SOCIAL},
    {"l.instagram.com", TF_MEDIUM_SOCIAL},
    {"t.co", TF_MEDIUM_SOCIAL},
    {"twitter.com", TF_MEDIUM_SOCIAL},
    {"mobile.twitter.com", TF_MEDIUM_SOCIAL},
    {"x.com", TF_MEDIUM_SOCIAL},
    {"linkedin.com", TF_MEDIUM_SOCIAL},
    {"de.linkedin.com", TF_MEDIUM_SOCIAL},
    {"lnkd.in", TF_MEDIUM_SOCIAL},
    {"pinterest.com", TF_MEDIUM_SOCIAL},
    {"pinterest.co.uk", TF_MEDIUM_SOCIAL},
    {"de.pinterest.com", TF_MEDIUM_SOCIAL},
    {"pin.it", TF_MEDIUM_SOCIAL},
    {"reddit.com", TF_MEDIUM_SOCIAL},
    {"old.reddit.com", TF_MEDIUM_SOCIAL},
    {"out.reddit.com", TF_MEDIUM_SOCIAL},
    {"youtube.com", TF_MEDIUM_SOCIAL},
    {"m.youtube.com", TF_MEDIUM_SOCIAL},
    {"youtu.be", TF_MEDIUM_SOCIAL},
    {"tiktok.com", TF_MEDIUM_SOCIAL},
    {"vm.tiktok.com", TF_MEDIUM_SOCIAL},
    {"threads.net", TF_MEDIUM_SOCIAL},
    {"threads.com", TF_MEDIUM_SOCIAL},
    {"mastodon.social", TF_MEDIUM_SOCIAL},
    {"vk.com", TF_MEDIUM_SOCIAL},
    {"m.vk.com", TF_MEDIUM_SOCIAL},
    {"tumblr.com", TF_MEDIUM_SOCIAL},
    {"staff.tumblr.com", TF_MEDIUM_SOCIAL},
    {"quora.com", TF_MEDIUM_SOCIAL},
    {"weibo.com", TF_MEDIUM_SOCIAL},
    {"xing.com", TF_MEDIUM_SOCIAL},
    {"discord.com", TF_MEDIUM_SOCIAL},
    {"snapchat.com", TF_MEDIUM_SOCIAL},
    {"web.whatsapp.com", TF_MEDIUM_SOCIAL},
    {"t.me", TF_MEDIUM_SOCIAL},
    {"telegram.org", TF_MEDIUM_SOCIAL},
    {"bsky.app", TF_MEDIUM_SOCIAL},
    {"ok.ru", TF_MEDIUM_SOCIAL},
    {"news.ycombinator.com", TF_MEDIUM_SOCIAL},
    {"com.facebook.katana", TF_MEDIUM_SOCIAL},
    {"com.instagram.android", TF_MEDIUM_SOCIAL},
    {"com.linkedin.android", TF_MEDIUM_SOCIAL},
    {"com.twitter.android", TF_MEDIUM_SOCIAL},
    {"com.reddit.frontpage", TF_MEDIUM_SOCIAL},
    {"com.zhiliaoapp.musically", TF_MEDIUM_SOCIAL},
    /* near misses and other Google / Yahoo properties: referral */
    {"mail.google.com", TF_MEDIUM_REFERRAL},
    {"docs.google.com", TF_MEDIUM_REFERRAL},
    {"news.google.com", TF_MEDIUM_REFERRAL},
    {"google.evil.com", TF_MEDIUM_REFERRAL},
    {"google.com.evil.io", TF_MEDIUM_REFERRAL},
    {"notgoogle.com", TF_MEDIUM_REFERRAL},
    {"google", TF_MEDIUM_REFERRAL},
    {"google.123", TF_MEDIUM_REFERRAL},
    {"mail.yahoo.com", TF_MEDIUM_REFERRAL},
    {"bing.com.evil.net", TF_MEDIUM_REFERRAL},
    {"brave.com", TF_MEDIUM_REFERRAL},
    {"search.example.com", TF_MEDIUM_REFERRAL},
    {"facebook.com.evil.io", TF_MEDIUM_REFERRAL},
    {"evilfacebook.com", TF_MEDIUM_REFERRAL},
    {"t.co.uk", TF_MEDIUM_REFERRAL},
    {"news.ycombinator.com.evil", TF_MEDIUM_REFERRAL},
    {"sub.t.co", TF_MEDIUM_REFERRAL},
    {"www.com", TF_MEDIUM_REFERRAL},
    {"example.com", TF_MEDIUM_REFERRAL},
    {"[::1]", TF_MEDIUM_REFERRAL},
    {"", TF_MEDIUM_NONE},
    {NULL, TF_MEDIUM_NONE},
};

START_TEST(test_attribution_classify_tables) {
    const char *d = classify_cases[_i].domain;
    tf_medium_t got = tf_attribution_classify(d);
    ck_assert_msg(got == classify_cases[_i].medium, "%s: %s, expected %s", d ? d : "NULL",
                  tf_medium_name(got) ? tf_medium_name(got) : "none",
                  tf_medium_name(classify_cases[_i].medium)
                      ? tf_medium_name(classify_cases[_i].medium)
                      : "none");
}
END_TEST

START_TEST(test_attribution_medium_names) {
    ck_assert_str_eq(tf_medium_name(TF_MEDIUM_ORGANIC), "organic");
    ck_assert_str_eq(tf_medium_name(TF_MEDIUM_SOCIAL), "social");
    ck_assert_str_eq(tf_medium_name(TF_MEDIUM_REFERRAL), "referral");
    ck_assert_ptr_null(tf_medium_name(TF_MEDIUM_NONE));
    ck_assert_ptr_null(tf_medium_name((tf_medium_t)42));
}
END_TEST

/* A reused struct: the previous result is released and fully replaced. */
START_TEST(test_attribution_reuse_replaces_previous) {
    tf_url_t page;
    tf_attribution_t a;
    char errstr[128];
    tf_url_init(&page);
    tf_attribution_init(&a);
    ck_assert_int_eq(tf_url_parse(EX "?utm_source=s&utm_campaign=c", &page, errstr, sizeof(errstr)),
                     0);
    ck_assert_int_eq(tf_attribution_compute(&page, "https://bing.com/", &a, errstr, sizeof(errstr)),
                     0);
    ck_assert_str_eq(a.source, "s");
    ck_assert_str_eq(a.campaign, "c");
    ck_assert_int_eq(tf_url_parse(EX, &page, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(tf_attribution_compute(&page, NULL, &a, errstr, sizeof(errstr)), 0);
    ck_assert_ptr_null(a.source);
    ck_assert_ptr_null(a.campaign);
    ck_assert_ptr_null(a.referrer_domain);
    tf_attribution_reset(&a);
    tf_attribution_reset(&a);
    tf_url_reset(&page);
}
END_TEST

static Suite *attribution_suite(void) {
    Suite *s = suite_create("attribution");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_attribution_compute_table, 0,
                        (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_loop_test(tc, test_attribution_classify_tables, 0,
                        (int)(sizeof(classify_cases) / sizeof(classify_cases[0])));
    tcase_add_test(tc, test_attribution_medium_names);
    tcase_add_test(tc, test_attribution_reuse_replaces_previous);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(attribution_suite()) == 0 ? 0 : 1; }
