/* test_url.c — URL parsing: hosts, paths, UTM and click ids, campaign keys, and
 * malformed input, table-driven with exact expected values. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "transforms/url.h"

/* One parse case: rc and, when rc == 0, every field (NULL = absent). */
typedef struct {
    const char *url;
    int rc;
    const char *scheme, *host, *path;
    const char *source, *medium, *campaign, *term, *content;
    const char *click_id_name, *click_id;
    const char *key;
} url_case_t;

static const url_case_t cases[] = {
    /* shapes of URL */
    {.url = "https://example.com", .scheme = "https", .host = "example.com", .path = "/"},
    {.url = "HTTPS://WWW.Example.COM:8443/Shop/Item?id=5#top",
     .scheme = "https",
     .host = "www.example.com",
     .path = "/Shop/Item"},
    {.url = "http://user:secret@example.com/private",
     .scheme = "http",
     .host = "example.com",
     .path = "/private"},
    {.url = "http://[2001:DB8::1]:8080/x?utm_source=v6",
     .scheme = "http",
     .host = "[2001:db8::1]",
     .path = "/x",
     .source = "v6",
     .key = "utm_source=v6"},
    {.url = "http://[fe80::1%25eth0]/", .scheme = "http", .host = "[fe80::1]", .path = "/"},
    {.url = "http://192.168.0.1:8080/a?b", .scheme = "http", .host = "192.168.0.1", .path = "/a"},
    {.url = "https://example.com./a", .scheme = "https", .host = "example.com", .path = "/a"},
    {.url = "  https://example.com/x \n", .scheme = "https", .host = "example.com", .path = "/x"},
    {.url = "https://example.com?utm_source=a",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .source = "a",
     .key = "utm_source=a"},
    {.url = "android-app://com.google.android.googlequicksearchbox/https/www.google.com",
     .scheme = "android-app",
     .host = "com.google.android.googlequicksearchbox",
     .path = "/https/www.google.com"},
    {.url = "file:///etc/passwd", .scheme = "file", .host = NULL, .path = "/etc/passwd"},
    /* IDN hosts: punycode (ASCII) form, lowercased */
    {.url = "https://bücher.de/straße",
     .scheme = "https",
     .host = "xn--bcher-kva.de",
     .path = "/straße"},
    {.url = "https://BÜCHER.DE/", .scheme = "https", .host = "xn--bcher-kva.de", .path = "/"},
    {.url = "https://xn--bcher-kva.de/",
     .scheme = "https",
     .host = "xn--bcher-kva.de",
     .path = "/"},
    {.url = "https://XN--BCHER-KVA.de/",
     .scheme = "https",
     .host = "xn--bcher-kva.de",
     .path = "/"},
    {.url = "http://ουτοπία.δπθ.gr/",
     .scheme = "http",
     .host = "xn--kxae4bafwg.xn--pxaix.gr",
     .path = "/"},
    {.url = "https://ПРИМЕР.рф/", .scheme = "https", .host = "xn--e1afmkfd.xn--p1ai", .path = "/"},
    {.url = "https://日本語.jp/", .scheme = "https", .host = "xn--wgv71a119e.jp", .path = "/"},
    {.url = "https://www.münchen-ost.de/",
     .scheme = "https",
     .host = "www.xn--mnchen-ost-9db.de",
     .path = "/"},
    /* paths exactly as sent */
    {.url = "https://example.com/a/../b/./c//d",
     .scheme = "https",
     .host = "example.com",
     .path = "/a/../b/./c//d"},
    {.url = "https://example.com/caf%C3%A9%20menu?x=1",
     .scheme = "https",
     .host = "example.com",
     .path = "/caf%C3%A9%20menu"},
    {.url = "https://example.com/a b?utm_term=x y",
     .scheme = "https",
     .host = "example.com",
     .path = "/a b",
     .term = "x y",
     .key = "utm_term=x%20y"},
    {.url = "https://example.com/p#utm_source=frag",
     .scheme = "https",
     .host = "example.com",
     .path = "/p"},
    {.url = "https://example.com/p?utm_source=q#utm_source=frag",
     .scheme = "https",
     .host = "example.com",
     .path = "/p",
     .source = "q",
     .key = "utm_source=q"},
    {.url = "https://example.com/#/route?utm_source=spa",
     .scheme = "https",
     .host = "example.com",
     .path = "/"},
    /* UTM parameters */
    {.url = "https://example.com/?utm_source=google&utm_medium=cpc&utm_campaign=spring_sale"
            "&utm_term=running+shoes&utm_content=ad%201",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .source = "google",
     .medium = "cpc",
     .campaign = "spring_sale",
     .term = "running shoes",
     .content = "ad 1",
     .key = "utm_campaign=spring_sale&utm_content=ad%201&utm_medium=cpc&utm_source=google"
            "&utm_term=running%20shoes"},
    {.url = "https://example.com/?UTM_SOURCE=News&Utm_Medium=Email",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .source = "News",
     .medium = "Email",
     .key = "utm_medium=Email&utm_source=News"},
    {.url = "https://example.com/?utm_source=first&utm_source=second",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .source = "first",
     .key = "utm_source=first"},
    {.url = "https://example.com/?utm_source=&utm_source=second",
     .scheme = "https",
     .host = "example.com",
     .path = "/"},
    {.url = "https://example.com/?utm_source=&utm_medium=email",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .source = NULL,
     .medium = "email",
     .key = "utm_medium=email"},
    {.url = "https://example.com/?utm_source&utm_campaign=x",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .source = NULL,
     .medium = NULL,
     .campaign = "x",
     .key = "utm_campaign=x"},
    {.url = "https://example.com/?utm_campaign=100%&utm_term=%zz%4",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .source = NULL,
     .medium = NULL,
     .campaign = "100%",
     .term = "%zz%4",
     .key = "utm_campaign=100%25&utm_term=%25zz%254"},
    {.url = "https://example.com/?utm_term=a%2Bb+c",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .term = "a+b c",
     .key = "utm_term=a%2Bb%20c"},
    {.url = "https://example.com/?utm_campaign=a%26b%3Dc",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .campaign = "a&b=c",
     .key = "utm_campaign=a%26b%3Dc"},
    {.url = "https://example.com/?utm_campaign=%E2%82%AC10",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .campaign = "€10",
     .key = "utm_campaign=%E2%82%AC10"},
    {.url = "https://example.com/?utm_campaign=été",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .campaign = "été",
     .key = "utm_campaign=%C3%A9t%C3%A9"},
    {.url = "https://example.com/?utm_campaign=%FF%FE",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .campaign = "%FF%FE",
     .key = "utm_campaign=%25FF%25FE"},
    {.url = "https://example.com/?utm_source=a%00b",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .source = "a%00b",
     .key = "utm_source=a%2500b"},
    {.url = "https://example.com/?utm%5Fsource=enc",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .source = "enc",
     .key = "utm_source=enc"},
    {.url = "https://example.com/?utm_source=a&&&utm_medium=b&=x&",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .source = "a",
     .medium = "b",
     .key = "utm_medium=b&utm_source=a"},
    {.url = "https://example.com/?utm_sourcex=no&xutm_source=no&utm_source=yes=really",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .source = "yes=really",
     .key = "utm_source=yes%3Dreally"},
    /* click ids */
    {.url = "https://example.com/?gclid=abc123",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .click_id_name = "gclid",
     .click_id = "abc123",
     .key = "gclid=abc123"},
    {.url = "https://example.com/?fbclid=F&gclid=G",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .click_id_name = "gclid",
     .click_id = "G",
     .key = "gclid=G"},
    {.url = "https://example.com/?msclkid=M&utm_source=bing",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .source = "bing",
     .click_id_name = "msclkid",
     .click_id = "M",
     .key = "msclkid=M&utm_source=bing"},
    {.url = "https://example.com/?wbraid=W&utm_campaign=c",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .campaign = "c",
     .click_id_name = "wbraid",
     .click_id = "W",
     .key = "utm_campaign=c&wbraid=W"},
    {.url = "https://example.com/?GCLID=X",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .click_id_name = "gclid",
     .click_id = "X",
     .key = "gclid=X"},
    {.url = "https://example.com/?gclid=&fbclid=F",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .click_id_name = "fbclid",
     .click_id = "F",
     .key = "fbclid=F"},
    {.url = "https://example.com/?li_fat_id=L%2F1",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .click_id_name = "li_fat_id",
     .click_id = "L/1",
     .key = "li_fat_id=L%2F1"},
    {.url = "https://example.com/?ttclid=T&twclid=W&dclid=D&gbraid=B",
     .scheme = "https",
     .host = "example.com",
     .path = "/",
     .click_id_name = "dclid",
     .click_id = "D",
     .key = "dclid=D"},
    /* malformed: refused, never a crash */
    {.url = "", .rc = -1},
    {.url = "example.com/path", .rc = -1},
    {.url = "/relative/path?utm_source=x", .rc = -1},
    {.url = "https://", .rc = -1},
    {.url = "http://exa mple.com/", .rc = -1},
    {.url = "http://example.com:99999/", .rc = -1},
    {.url = "javascript:alert(1)", .rc = -1},
    {.url = "mailto:someone@example.com", .rc = -1},
    {.url = "http://example.com/\x01", .rc = -1},
    {.url = "http://\xff\xfe/", .rc = -1},
    {.url = "https://example.com/\xc3", .rc = -1},
    {.url = "https://example.com\\path", .rc = -1},
    {.url = "http://[::1/", .rc = -1},
    {.url = "http://%zz/", .rc = -1},
    {.url = "http://a%25b.com/", .rc = -1},
    {.url = "http://a|b.com/", .rc = -1},
};

static void expect_str(const char *what, const char *url, const char *got, const char *want) {
    if (!want)
        ck_assert_msg(got == NULL, "%s: %s = \"%s\", expected NULL", url, what, got ? got : "");
    else
        ck_assert_msg(got && strcmp(got, want) == 0, "%s: %s = %s%s%s, expected \"%s\"", url, what,
                      got ? "\"" : "", got ? got : "NULL", got ? "\"" : "", want);
}

START_TEST(test_url_parse_table) {
    const url_case_t *c = &cases[_i];
    tf_url_t u;
    char errstr[256] = "";
    tf_url_init(&u);
    int rc = tf_url_parse(c->url, &u, errstr, sizeof(errstr));
    ck_assert_msg(rc == c->rc, "%s: rc %d (%s), expected %d", c->url, rc, errstr, c->rc);
    if (rc != 0) {
        ck_assert_msg(errstr[0] != '\0', "%s: no error message", c->url);
        ck_assert_ptr_null(u.scheme);
        ck_assert_ptr_null(u.path);
        return;
    }
    expect_str("scheme", c->url, u.scheme, c->scheme);
    expect_str("host", c->url, u.host, c->host);
    expect_str("path", c->url, u.path, c->path);
    expect_str("utm_source", c->url, u.utm_source, c->source);
    expect_str("utm_medium", c->url, u.utm_medium, c->medium);
    expect_str("utm_campaign", c->url, u.utm_campaign, c->campaign);
    expect_str("utm_term", c->url, u.utm_term, c->term);
    expect_str("utm_content", c->url, u.utm_content, c->content);
    expect_str("click_id_name", c->url, u.click_id_name, c->click_id_name);
    expect_str("click_id", c->url, u.click_id, c->click_id);
    expect_str("campaign_key", c->url, u.campaign_key, c->key);
    tf_url_reset(&u);
    ck_assert_ptr_null(u.host);
}
END_TEST

START_TEST(test_url_rejects_null_and_oversize) {
    tf_url_t u;
    char errstr[128];
    tf_url_init(&u);
    ck_assert_int_eq(tf_url_parse(NULL, &u, errstr, sizeof(errstr)), -1);
    ck_assert_str_eq(errstr, "no URL");

    size_t n = TF_URL_MAX_LEN + 1;
    char *big = malloc(n + 1);
    memcpy(big, "https://example.com/", 20);
    memset(big + 20, 'a', n - 20);
    big[n] = '\0';
    ck_assert_int_eq(tf_url_parse(big, &u, errstr, sizeof(errstr)), -1);
    ck_assert_str_eq(errstr, "URL longer than 16384 bytes");
    big[n - 1] = '\0'; /* exactly the limit: accepted */
    ck_assert_int_eq(tf_url_parse(big, &u, errstr, sizeof(errstr)), 0);
    ck_assert_uint_eq(strlen(u.path), TF_URL_MAX_LEN - 19);
    tf_url_reset(&u);
    free(big);

    /* a host name over 255 bytes */
    char host_url[400];
    int len = snprintf(host_url, sizeof(host_url), "https://");
    for (int i = 0; i < 52; i++)
        len += snprintf(host_url + len, sizeof(host_url) - (size_t)len, "abcd.");
    snprintf(host_url + len, sizeof(host_url) - (size_t)len, "com/");
    ck_assert_int_eq(tf_url_parse(host_url, &u, errstr, sizeof(errstr)), -1);
    ck_assert_str_eq(errstr, "invalid URL: bad host name");
}
END_TEST

START_TEST(test_url_failure_empties_previous_result) {
    tf_url_t u;
    char errstr[128];
    tf_url_init(&u);
    ck_assert_int_eq(tf_url_parse("https://a.example/?utm_source=x", &u, errstr, sizeof(errstr)),
                     0);
    ck_assert_str_eq(u.utm_source, "x");
    ck_assert_int_eq(tf_url_parse("https://b.example/", &u, errstr, sizeof(errstr)), 0);
    ck_assert_str_eq(u.host, "b.example");
    ck_assert_ptr_null(u.utm_source);
    ck_assert_int_eq(tf_url_parse("not a url", &u, errstr, sizeof(errstr)), -1);
    ck_assert_ptr_null(u.host);
    ck_assert_ptr_null(u.path);
    tf_url_reset(&u); /* reset of an empty struct is a no-op */
    tf_url_reset(&u);
}
END_TEST

static const struct {
    const char *url, *domain;
} domain_cases[] = {
    {"https://www.example.com/", "example.com"},
    {"https://WWW.Example.org/", "example.org"},
    {"https://example.com/", "example.com"},
    {"https://www2.example.com/", "www2.example.com"},
    {"https://www.com/", "www.com"},
    {"https://www.co.uk/", "co.uk"},
    {"https://shop.www.example.com/", "shop.www.example.com"},
    {"http://[::1]:8080/", "[::1]"},
    {"https://www.google.com./search", "google.com"},
    {"file:///tmp/x", NULL},
};

START_TEST(test_url_referrer_domain_strips_www) {
    tf_url_t u;
    char errstr[128];
    tf_url_init(&u);
    ck_assert_int_eq(tf_url_parse(domain_cases[_i].url, &u, errstr, sizeof(errstr)), 0);
    expect_str("referrer domain", domain_cases[_i].url, tf_url_referrer_domain(&u),
               domain_cases[_i].domain);
    tf_url_reset(&u);
    ck_assert_ptr_null(tf_url_referrer_domain(NULL));
    ck_assert_ptr_null(tf_url_referrer_domain(&u));
}
END_TEST

START_TEST(test_url_host_ascii_punycode) {
    char out[64];
    const char *h = "Bücher.DE";
    ck_assert_int_eq(tf_url_host_ascii(h, strlen(h), out, sizeof(out)), 0);
    ck_assert_str_eq(out, "xn--bcher-kva.de");
    h = "faß.ñ";
    ck_assert_int_eq(tf_url_host_ascii(h, strlen(h), out, sizeof(out)), 0);
    ck_assert_str_eq(out, "xn--fa-hia.xn--ida");
    h = "straße";
    ck_assert_int_eq(tf_url_host_ascii(h, strlen(h), out, sizeof(out)), 0);
    ck_assert_str_eq(out, "xn--strae-oqa");
    /* only the given length is read */
    ck_assert_int_eq(tf_url_host_ascii("Example.COM/x", 11, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "example.com");
    /* output too small: refused, never truncated */
    ck_assert_int_eq(tf_url_host_ascii("bücher.de", strlen("bücher.de"), out, 16), -1);
    ck_assert_int_eq(tf_url_host_ascii("bücher.de", strlen("bücher.de"), out, 17), 0);
    ck_assert_str_eq(out, "xn--bcher-kva.de");
    /* invalid UTF-8: overlong '/', a lone continuation byte, a surrogate */
    ck_assert_int_eq(tf_url_host_ascii("\xc0\xaf.com", 6, out, sizeof(out)), -1);
    ck_assert_int_eq(tf_url_host_ascii("a\x80.com", 6, out, sizeof(out)), -1);
    ck_assert_int_eq(tf_url_host_ascii("\xed\xa0\x80.com", 7, out, sizeof(out)), -1);
}
END_TEST

/* xorshift: deterministic pseudo-random bytes for the robustness test. */
static uint32_t rng_state = 2463534242u;
static uint32_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static int utf8_ok(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        if (n == 0) return 0;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80) return 0;
        p += n;
    }
    return 1;
}

/* Mutated and random inputs: every call returns 0 or -1 and, on 0, the result holds
 * its invariants (lowercase ASCII host, a path, valid UTF-8, key iff parameters). */
START_TEST(test_url_mutations_keep_invariants) {
    static const char *const seeds[] = {
        "https://www.Example.com:8080/a/b?utm_source=x&utm_medium=y&gclid=z#frag",
        "http://[::1]/?utm_campaign=%E2%82%AC&fbclid=1",
        "https://bücher.de/p?utm_term=a+b%2",
        "android-app://com.google.android.gm/",
    };
    static const char alphabet[] = "%+&=?#/:@[].-_ aZ09\xc3\xa9\xff\x01\\";
    char buf[256];
    tf_url_t u;
    char errstr[128];
    tf_url_init(&u);
    int ok = 0, refused = 0;
    for (int iter = 0; iter < 20000; iter++) {
        const char *seed = seeds[rng() % 4];
        size_t n = strlen(seed);
        memcpy(buf, seed, n + 1);
        int edits = 1 + (int)(rng() % 4);
        for (int e = 0; e < edits; e++) {
            size_t pos = rng() % (n + 1);
            char c = alphabet[rng() % (sizeof(alphabet) - 1)];
            switch (rng() % 3) {
            case 0:
                if (pos < n) buf[pos] = c;
                break;
            case 1:
                if (n + 1 < sizeof(buf) - 1) {
                    memmove(buf + pos + 1, buf + pos, n - pos + 1);
                    buf[pos] = c;
                    n++;
                }
                break;
            default:
                if (pos < n) {
                    memmove(buf + pos, buf + pos + 1, n - pos);
                    n--;
                }
                break;
            }
        }
        int rc = tf_url_parse(buf, &u, errstr, sizeof(errstr));
        ck_assert_msg(rc == 0 || rc == -1, "rc %d for %s", rc, buf);
        if (rc != 0) {
            refused++;
            continue;
        }
        ok++;
        ck_assert_ptr_nonnull(u.scheme);
        ck_assert_ptr_nonnull(u.path);
        ck_assert_msg(utf8_ok(u.path), "path not UTF-8 for %s", buf);
        if (u.host)
            for (const char *p = u.host; *p; p++)
                ck_assert_msg(!(*p >= 'A' && *p <= 'Z') && (unsigned char)*p < 0x80,
                              "host %s not lowercase ASCII for %s", u.host, buf);
        const char *fields[] = {u.utm_source, u.utm_medium,  u.utm_campaign,
                                u.utm_term,   u.utm_content, u.click_id};
        int any = 0;
        for (int f = 0; f < 6; f++)
            if (fields[f]) {
                any = 1;
                ck_assert_msg(fields[f][0] != '\0' && utf8_ok(fields[f]), "bad value in %s", buf);
            }
        ck_assert_msg((u.campaign_key != NULL) == any, "campaign key mismatch for %s", buf);
        ck_assert_msg((u.click_id == NULL) == (u.click_id_name == NULL), "click id pair for %s",
                      buf);
    }
    tf_url_reset(&u);
    /* both outcomes were exercised */
    ck_assert_int_gt(ok, 1000);
    ck_assert_int_gt(refused, 100);
}
END_TEST

static Suite *url_suite(void) {
    Suite *s = suite_create("url");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_url_parse_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_url_rejects_null_and_oversize);
    tcase_add_test(tc, test_url_failure_empties_previous_result);
    tcase_add_loop_test(tc, test_url_referrer_domain_strips_www, 0,
                        (int)(sizeof(domain_cases) / sizeof(domain_cases[0])));
    tcase_add_test(tc, test_url_host_ascii_punycode);
    tcase_add_test(tc, test_url_mutations_keep_invariants);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(url_suite()) == 0 ? 0 : 1; }
