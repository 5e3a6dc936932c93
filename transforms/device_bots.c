/* device_bots.c — is an agent a robot: uap-core's "Spider", the robots and HTTP
 * libraries of the loaded data sets, and hand-kept token rules for what they miss. */
#include "transforms/device_internal.h"

#include <stdlib.h>
#include <string.h>

/* Crawlers, link-preview fetchers, monitors, HTTP libraries and browser automation that
 * uap-core does not already call "Spider". Lowercase substrings of the agent. */
static const char *const bot_tokens[] = {
    "crawl",
    "spider",
    "slurp",
    "scrapy",
    "scraper",
    "archiver",
    "ia_archiver",
    "heritrix",
    "httrack",
    "nutch",
    "facebookexternalhit",
    "facebookcatalog",
    "facebot",
    "twitterbot",
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "telegrambot",
    "linkedinbot",
    "pinterestbot",
    "embedly",
    "skypeuripreview",
    "bingpreview",
    "google web preview",
    "google-inspectiontool",
    "mediapartners-google",
    "adsbot-google",
    "feedfetcher",
    "apis-google",
    "google-read-aloud",
    "googleother",
    "google-extended",
    "storebot-google",
    "google favicon",
    "headlesschrome",
    "lighthouse",
    "phantomjs",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
    "cypress/",
    "pingdom",
    "uptimerobot",
    "statuscake",
    "site24x7",
    "newrelicpinger",
    "datadog",
    "checkly",
    "catchpoint",
    "gomezagent",
    "ruxitsynthetic",
    "monitis",
    "freshping",
    "hetrixtools",
    "betteruptime",
    "uptime-kuma",
    "uptime kuma",
    "updown.io",
    "nagios",
    "check_http",
    "zabbix",
    "prometheus",
    "blackbox",
    "gtmetrix",
    "pagespeed",
    " ptst/",
    "curl/",
    "libcurl",
    "wget",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "httpx/",
    "urllib3",
    "go-http-client",
    "okhttp",
    "apache-httpclient",
    "java-http-client",
    "commons-httpclient",
    "libwww-perl",
    "lwp::",
    "mechanize",
    "guzzlehttp",
    "faraday",
    "rest-client",
    "httparty",
    "http.rb/",
    "node-fetch",
    "undici",
    "axios/",
    "got (",
    "superagent",
    "postmanruntime",
    "insomnia",
    "httpie",
    "powershell",
    "winhttp",
    "aria2",
    "reqwest",
    "hackney",
    "dart:io",
    "httpunit",
    "validator",
    "w3c_",
    "checklink",
    "linkcheck",
    "link checker",
    "feedparser",
    "feedburner",
    "masscan",
    "zgrab",
    "nmap",
    "nikto",
    "sqlmap",
    "netcraft",
    "censys",
    "shodan",
    "semrush",
    "ahrefs",
    "mj12bot",
    "dotbot",
    "petalbot",
    "bytespider",
    "gptbot",
    "chatgpt-user",
    "claudebot",
    "claude-web",
    "anthropic-ai",
    "perplexitybot",
    "ccbot",
    "amazonbot",
    "applebot",
    "duckduckbot",
    "baiduspider",
    "sogou",
    "seznambot",
    "qwantify",
    "exabot",
    "ia-archiver",
    "fetcher",
    "ichiro",
    "yeti/",
    "daumoa",
    "teoma",
    "panscient",
    "wordpress",
    "seo",
    "analyzer",
    "auditor",
    "scanner",
    "browserproxy",
    "linkfinder",
    "indexer",
    "robot",
    "ips-agent",
    "dareboost",
    "siteimprove",
};

/* Browsers, platforms and devices that a "(compatible; ...)" agent of a real browser
 * names; a "compatible" agent naming none of them is a robot. */
static const char *const compatible_browser_tokens[] = {
    "msie",        "trident",  "konqueror", "windows",    "macintosh", "mac os",       "linux",
    "android",     "iphone",   "ipad",      "blackberry", "symbian",   "series",       "nokia",
    "playstation", "nintendo", "opera",     "webtv",      "palm",      "sonyericsson", "samsung",
    "lg-",         "motorola", "mot-",      "mobile",     "j2me",      "midp",         "brew",
    "bada",        "tizen",    "kaios",     "amiga",      "beos",      "os/2",         "sunos",
};

/* A "bot" word: "bot" ending a word ("Googlebot/2", "some-bot;"), not inside a word such
 * as the phone brand "Cubot" or "Abbott". */
static bool has_bot_word(const char *lower) {
    for (const char *p = strstr(lower, "bot"); p; p = strstr(p + 1, "bot")) {
        char after = p[3];
        bool word_end = !(after >= 'a' && after <= 'z');
        if (!word_end) continue;
        if (p - lower >= 2 && p[-2] == 'c' && p[-1] == 'u') continue; /* cubot */
        return true;
    }
    return false;
}

/* A domain name ("example.com", "www.example") in the agent. */
static bool has_domain(const char *lower) {
    static const char *const tlds[] = {".com", ".net", ".org", ".io",   ".ru",  ".de", ".fr",
                                       ".jp",  ".cn",  ".uk",  ".info", ".biz", ".co", ".ai"};
    if (ua_has(lower, "www.")) return true;
    for (size_t i = 0; i < sizeof(tlds) / sizeof(tlds[0]); i++) {
        size_t tl = strlen(tlds[i]);
        for (const char *p = strstr(lower, tlds[i]); p; p = strstr(p + 1, tlds[i]))
            if (p > lower && ua_is_alnum(p[-1]) && !ua_is_alnum(p[tl])) return true;
    }
    return false;
}

/* An e-mail address ("crawler@example.com", "bot at example dot com" is left to the
 * token rules): robots give a contact; browsers never do. */
static bool has_email(const char *lower) {
    for (const char *p = strchr(lower, '@'); p; p = strchr(p + 1, '@')) {
        if (p == lower || !(ua_is_alnum(p[-1]) || p[-1] == '.' || p[-1] == '_' || p[-1] == '-'))
            continue;
        const char *q = p + 1;
        size_t label = 0;
        bool dot = false;
        while (ua_is_alnum(*q) || *q == '-' || *q == '.') {
            if (*q == '.') dot = label > 0;
            label = *q == '.' ? 0 : label + 1;
            q++;
        }
        if (dot && label >= 2) return true;
    }
    return false;
}

/* A run of at least three ASCII letters. */
static bool has_word(const char *lower) {
    size_t run = 0;
    for (const char *p = lower; *p; p++) {
        run = (*p >= 'a' && *p <= 'z') ? run + 1 : 0;
        if (run >= 3) return true;
    }
    return false;
}

/* "Name/1.0 ..." at the start: a program's product token. */
static bool starts_with_product_token(const char *lower) {
    const char *p = lower;
    if (!(*p >= 'a' && *p <= 'z')) return false;
    size_t n = 0;
    while (*p && *p != '/' && n < 48) {
        if (!(ua_is_alnum(*p) || *p == '.' || *p == '_' || *p == '-' || *p == '+' || *p == ' '))
            return false;
        p++;
        n++;
    }
    return *p == '/' && (p[1] == 'v' || (p[1] >= '0' && p[1] <= '9'));
}

bool ua_is_bot_agent(tf_ua_classifier_t *c, const char *lower, size_t len, const tf_ua_parse_t *p) {
    if (strcmp(p->device_family, "Spider") == 0) return true;
    /* Injection probes sent as the agent by scanners: Log4Shell lookups
     * (CVE-2021-44228, "${jndi:ldap://..."), template and script injection. */
    if (ua_has(lower, "${") || ua_has(lower, "#{") || ua_has(lower, "<script") ||
        ua_has(lower, "<?php") || ua_has(lower, "() { :;"))
        return true;
    /* device-detector's robots; its HTTP libraries unless a browser engine speaks. */
    if (ua_list_any_match(c, &c->bots, &c->bots_ix, len)) return true;
    bool engine_like = (ua_starts_with(lower, "mozilla/") || ua_starts_with(lower, "opera/")) &&
                       (ua_has(lower, "applewebkit") || ua_has(lower, "gecko") ||
                        ua_has(lower, "presto") || ua_has(lower, "trident"));
    if (!engine_like && ua_list_any_match(c, &c->libraries, &c->libraries_ix, len)) return true;
    /* Programs people use (feed readers, mail, media players, apps): never robots. */
    if (ua_list_any_match(c, &c->clients, &c->clients_ix, len)) return false;
    if (has_bot_word(lower)) return true;
    for (size_t i = 0; i < sizeof(bot_tokens) / sizeof(bot_tokens[0]); i++)
        if (ua_has(lower, bot_tokens[i])) return true;
    /* Words that are robots only in some positions. */
    if (ua_starts_with(lower, "ruby") || ua_starts_with(lower, "php/") || ua_has(lower, " php/") ||
        ua_starts_with(lower, "java/") || ua_starts_with(lower, "python/"))
        return true;
    if (ua_has(lower, "preview/") || ua_has(lower, "preview)") || ua_has(lower, "preview;"))
        return true;
    if (ua_has(lower, "yandex") && !ua_has(lower, "yabrowser") && !ua_has(lower, "yowser") &&
        !ua_has(lower, "yandexsearch/"))
        return true; /* Yandex's crawlers; Yandex Browser says YaBrowser */
    /* Robots name a contact page or address; browsers never do. */
    if (ua_has(lower, "http://") || ua_has(lower, "https://") || ua_has(lower, "+http") ||
        ua_has(lower, "mailto:"))
        return true;
    /* Agents that name no platform and no device at all. */
    bool no_platform = strcmp(p->os_family, "Other") == 0 && strcmp(p->device_family, "Other") == 0;
    if (no_platform) {
        bool browser_like = ua_starts_with(lower, "mozilla/") || ua_starts_with(lower, "opera/");
        if ((ua_has(lower, "(compatible;") || ua_has(lower, "(compatible ")) &&
            !UA_ANY_OF(lower, compatible_browser_tokens))
            return true;
        if (!browser_like && starts_with_product_token(lower) &&
            !UA_ANY_OF(lower, compatible_browser_tokens))
            return true;
        if (has_domain(lower)) return true;
        /* A bare program name ("coccoc", "Amazon CloudFront", "url"): browsers always
         * say "Mozilla/"; what names neither a browser nor a platform is a tool. Junk
         * without a word ("-", "12345", "Mozilla/5.0") stays without a signal. */
        if (!browser_like && strcmp(p->ua_family, "Other") == 0 && has_word(lower) &&
            !UA_ANY_OF(lower, compatible_browser_tokens))
            return true;
        if (has_email(lower) && !UA_ANY_OF(lower, compatible_browser_tokens)) return true;
    }
    return false;
}
