/* device.c — the DeviceType decision from the uap-core parse, the device models of the
 * loaded data sets, client hints and screen size; the classifier's life cycle and its
 * LRU cache of parses (see device.h). */
#include "transforms/device_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ----------------------------------------------------------------------- */

static const char *const type_names[TF_DEVICE_TYPE_COUNT] = {"DESKTOP", "TABLET", "MOBILE", "BOT",
                                                             "UNKNOWN"};

const char *tf_device_type_name(tf_device_type_t t) {
    if ((int)t < 0 || (int)t >= TF_DEVICE_TYPE_COUNT) return NULL;
    return type_names[t];
}

int tf_device_type_parse(const char *name, tf_device_type_t *out) {
    if (!name) return -1;
    for (int i = 0; i < TF_DEVICE_TYPE_COUNT; i++) {
        if (strcmp(name, type_names[i]) == 0) {
            *out = (tf_device_type_t)i;
            return 0;
        }
    }
    return -1;
}

tf_ua_classifier_t *tf_ua_classifier_new(const char *regexes_yaml, size_t len, size_t cache_entries,
                                         char *errstr, size_t errstr_size) {
    if (!regexes_yaml) {
        snprintf(errstr, errstr_size, "no regexes YAML given");
        return NULL;
    }
    if (cache_entries > UA_CACHE_MAX_ENTRIES) {
        snprintf(errstr, errstr_size, "cache of %zu entries is larger than the maximum %u",
                 cache_entries, UA_CACHE_MAX_ENTRIES);
        return NULL;
    }
    tf_ua_classifier_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    c->mctx = pcre2_match_context_create(NULL);
    c->jit_stack = pcre2_jit_stack_create(UA_JIT_STACK_START, UA_JIT_STACK_MAX, NULL);
    c->md = pcre2_match_data_create(UA_MAX_GROUPS, NULL);
    if (!c->mctx || !c->jit_stack || !c->md) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    pcre2_set_match_limit(c->mctx, UA_MATCH_LIMIT);
    pcre2_set_depth_limit(c->mctx, UA_DEPTH_LIMIT);
    pcre2_set_heap_limit(c->mctx, UA_HEAP_LIMIT_KIB);
    pcre2_jit_stack_assign(c->mctx, NULL, c->jit_stack);
    if (ua_uap_load(c, regexes_yaml, len, errstr, errstr_size) != 0) goto fail;

    c->cache_cap = cache_entries;
    if (cache_entries > 0) {
        size_t nb = 16;
        while (nb < cache_entries * 2)
            nb *= 2;
        c->buckets = calloc(nb, sizeof(*c->buckets));
        if (!c->buckets) {
            snprintf(errstr, errstr_size, "out of memory for a cache of %zu entries",
                     cache_entries);
            goto fail;
        }
        c->nbuckets = nb;
    }
    /* Per-instance hash seed from the allocation address (randomised by ASLR), so
     * collisions cannot be precomputed against a fixed function. */
    c->seed = (uint64_t)(uintptr_t)c * 0x9E3779B97F4A7C15ull;
    return c;
fail:
    tf_ua_classifier_destroy(c);
    return NULL;
}

int tf_ua_classifier_share(tf_ua_classifier_t *c) {
    if (c->shared) return 0;
    if (pthread_mutex_init(&c->lock, NULL) != 0) return -1;
    c->shared = true;
    return 0;
}

void tf_ua_classifier_destroy(tf_ua_classifier_t *c) {
    if (!c) return;
    if (c->shared) pthread_mutex_destroy(&c->lock);
    for (int s = 0; s < SECTION_COUNT; s++)
        ua_rule_list_free(&c->rules[s]);
    ua_data_free(c);
    cache_entry_t *e = c->lru_head;
    while (e) {
        cache_entry_t *next = e->next;
        free(e->key);
        free(e);
        e = next;
    }
    free(c->buckets);
    pcre2_match_data_free(c->md);
    pcre2_jit_stack_free(c->jit_stack);
    pcre2_match_context_free(c->mctx);
    free(c);
}

/* Tablets by uap-core device family, by the agent's own words, or by model names that
 * say so ("Galaxy Tab", "MediaPad", "IdeaTab", "Xperia Tablet"). */
static bool is_tablet_device(const char *lower, const tf_ua_parse_t *p) {
    const char *fam = p->device_family, *model = p->device_model;
    if (strcmp(fam, "iPad") == 0 || strcmp(fam, "Generic Tablet") == 0) return true;
    if (ua_starts_with(fam, "Kindle")) return true;
    if (ua_has(lower, "ipad") || ua_has(lower, "kindle")) return true;
    if (ua_has(lower, "playbook") || ua_has(lower, "rim tablet")) return true;
    /* Silk is the Kindle Fire browser; the Fire Phone runs it too, and says "Mobile". */
    if (ua_has(lower, "silk/") && !(ua_has(lower, "android") && ua_has(lower, "mobile")))
        return true;
    if (ua_ci_contains(model, "tablet") || ua_ci_contains(model, "mediapad") ||
        ua_ci_contains(model, "ideatab") || ua_ci_contains(model, "galaxy tab") ||
        ua_ci_contains(model, "xoom") || ua_ci_equal(model, "Nexus 7") ||
        ua_ci_equal(model, "Nexus 9") || ua_ci_equal(model, "Nexus 10"))
        return true;
    if (ua_has(lower, "; tablet") || ua_has(lower, "(tablet") || ua_has(lower, " tablet;"))
        return !ua_has(lower, "windows nt");
    return false;
}

static const char *const mobile_tokens[] = {
    "mobile",       "iphone",
    "ipod",         "windows phone",
    "windows ce",   "iemobile",
    "wpdesktop",    "blackberry",
    "bb10",         "symbian",
    "series60",     "series 60",
    "s60;",         "j2me",
    "midp",         "cldc",
    "opera mini",   "opera mobi",
    "webos",        "palmos",
    "palm os",      "kaios",
    "sailfish",     "maemo",
    "meego",        "bada",
    "brew",         "up.browser",
    "up.link",      "netfront",
    "obigo",        "teleca",
    "nokia",        "sonyericsson",
    "docomo",       "kddi",
    "softbank",     "vodafone",
    "wap",          "fennec",
    "minimo",       "smartphone",
    "phone",        "dalvik/",
    "psp",          "playstation vita",
    "nintendo 3ds", "nintendo dsi",
    "mot-",         "samsung-",
    "sec-sgh",      "sgh-",
    "lg-",          "htc",
    "android",      "tizen",
    "mtk",          "spreadtrum",
    "mocor",
};

static const char *const tv_tokens[] = {
    "smart-tv",   "smarttv",      "smart tv",        "googletv",      "google tv",
    "android tv", "hbbtv",        "netcast",         "bravia",        "tizen tv",
    "web0s",      "webos.tv",     "crkey",           "roku",          "appletv",
    "apple tv",   "; aft",        "playstation 3",   "playstation 4", "playstation 5",
    "xbox",       "nintendo wii", "nintendo switch", "viera",         "aquos",
    "philipstv",  "nettv",
};

/* Model names of Android tablets: "MID7010", "TAB410", "EVO Tab", "IdeaTab A1000",
 * "MediaPad 10", "Transformer Pad", "Tablet" (not "PadFone", "Table", "Tabs"). */
static bool has_tablet_word(const char *lower) {
    if (ua_has(lower, "tablet")) return true;
    for (const char *p = strstr(lower, "mid"); p; p = strstr(p + 1, "mid")) {
        if (p > lower && ua_is_alnum(p[-1])) continue;
        const char *q = p + 3;
        if (*q == ' ' || *q == '_' || *q == '-') q++;
        int digits = 0;
        while (q[digits] >= '0' && q[digits] <= '9')
            digits++;
        if (digits >= 3) return true;
    }
    static const char *const words[] = {"tab", "pad"};
    for (size_t w = 0; w < 2; w++) {
        for (const char *p = strstr(lower, words[w]); p; p = strstr(p + 1, words[w])) {
            char after = p[3];
            if (after >= 'a' && after <= 'z') continue;        /* table, tabs, padfone */
            if (w == 1 && p > lower && p[-1] == 'i') continue; /* ipad: handled apart */
            return true;
        }
    }
    return false;
}

/* Operating systems of desktop and laptop computers, as uap-core names them. */
static bool is_desktop_os(const char *os) {
    static const char *const prefixes[] = {
        "Windows",  "Mac OS",     "Linux",     "Ubuntu",      "Kubuntu",  "Xubuntu",
        "Lubuntu",  "Debian",     "Fedora",    "Red Hat",     "SUSE",     "openSUSE",
        "Mint",     "Linux Mint", "Gentoo",    "Slackware",   "Mandriva", "Mandrake",
        "CentOS",   "Arch Linux", "Chrome OS", "Chromium OS", "FreeBSD",  "OpenBSD",
        "NetBSD",   "DragonFly",  "Solaris",   "SunOS",       "BeOS",     "Haiku",
        "OS/2",     "AmigaOS",    "MorphOS",   "IRIX",        "HP-UX",    "AIX",
        "GNU",      "PCLinuxOS",  "Puppy",     "Mageia",      "Manjaro",  "Elementary",
        "Raspbian", "ZorinOS",    "Knoppix",   "Kali",
    };
    if (ua_starts_with(os, "Windows Phone") || ua_starts_with(os, "Windows Mobile") ||
        ua_starts_with(os, "Windows CE") || ua_starts_with(os, "Windows RT"))
        return false;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (ua_starts_with(os, prefixes[i])) return true;
    return false;
}

/* What the agent alone says, from the parse and the agent's tokens. */
static tf_device_type_t type_from_agent(tf_ua_classifier_t *c, const char *lower, size_t n,
                                        const tf_ua_parse_t *p, unsigned *flags) {
    if (n == 0) return TF_DEVICE_UNKNOWN;
    /* Android; also its agents that lost the word but keep "Linux; ... Build/". */
    if (ua_has(lower, "android") || (ua_has(lower, "linux") && ua_has(lower, " build/")))
        *flags |= UA_FLAG_ANDROID;
    if (ua_is_bot_agent(c, lower, n, p)) return TF_DEVICE_BOT;
    const char *fam = p->device_family, *os = p->os_family;
    if (*flags & UA_FLAG_ANDROID) {
        /* A model name that says "Tab", "Pad" or "Tablet" is a tablet. */
        if (has_tablet_word(lower)) return TF_DEVICE_TABLET;
        /* Then the device model decides, not the "Mobile" token: tablets that send it,
         * and Android on laptops and Chromebooks (device-detector's models). */
        int t = ua_model_type(c, p);
        if (t >= 0) return (tf_device_type_t)t;
    }

    if (is_tablet_device(lower, p)) return TF_DEVICE_TABLET;
    /* Windows RT (ARM) devices are tablets; other Windows NT "Tablet PC"/"Touch"
     * agents are convertible PCs. */
    if (ua_has(lower, "windows nt") && ua_has(lower, "; arm;")) return TF_DEVICE_TABLET;
    if (UA_ANY_OF(lower, tv_tokens)) return TF_DEVICE_DESKTOP;
    if (*flags & UA_FLAG_ANDROID) {
        /* Android 3 (Honeycomb) ran on tablets only. */
        if (ua_has(lower, "android 3.") || ua_has(lower, "android/3.")) return TF_DEVICE_TABLET;
        /* Browsers: "Mobile" is the phone marker and its absence means a tablet (the
         * convention of Chrome, Firefox and the stock browser). Apps' own agents and
         * feature-phone profiles do not follow it: they are phones unless they say
         * otherwise. */
        bool browser =
            (ua_starts_with(lower, "mozilla/") || ua_starts_with(lower, "opera/")) &&
            (ua_has(lower, "applewebkit") || ua_has(lower, "gecko/") || ua_has(lower, "presto/") ||
             ua_has(lower, "chrome/") || ua_has(lower, "safari/"));
        if (has_tablet_word(lower)) return TF_DEVICE_TABLET;
        if (!browser || ua_has(lower, "mobile") || ua_has(lower, "opera mini") ||
            ua_has(lower, "midp") || ua_has(lower, "cldc") || ua_has(lower, "phone"))
            return TF_DEVICE_MOBILE;
        return TF_DEVICE_TABLET;
    }
    /* Apple's CFNetwork apps name the kernel and, on a Mac, its CPU ("Darwin/20.3.0
     * (x86_64)"; iPhones and iPads never run x86_64): apps on macOS. */
    if (ua_has(lower, "cfnetwork/") && ua_has(lower, "darwin/") &&
        (ua_has(lower, "x86_64") || ua_has(lower, "macintosh") || ua_has(lower, "macbook") ||
         ua_has(lower, "imac"))) {
        *flags |= UA_FLAG_MAC;
        return TF_DEVICE_DESKTOP;
    }
    /* Microsoft Office's desktop programs ("compatible; ms-office; MSOffice 16") name no
     * platform; Office on phones and tablets sends its system's agent. */
    if (ua_has(lower, "ms-office") || ua_has(lower, "msoffice")) return TF_DEVICE_DESKTOP;
    if (strcmp(os, "iOS") == 0 || strcmp(fam, "iPhone") == 0 || strcmp(fam, "iPod") == 0 ||
        strcmp(fam, "iPod Touch") == 0)
        return TF_DEVICE_MOBILE;
    if (strcmp(fam, "Generic Smartphone") == 0 || strcmp(fam, "Generic Feature Phone") == 0)
        return TF_DEVICE_MOBILE;
    if (UA_ANY_OF(lower, mobile_tokens)) return TF_DEVICE_MOBILE;
    if (ua_has(lower, "macintosh") || strcmp(os, "Mac OS X") == 0 || strcmp(fam, "Mac") == 0) {
        *flags |= UA_FLAG_MAC;
        return TF_DEVICE_DESKTOP;
    }
    if (is_desktop_os(os) || ua_has(lower, "windows nt") || ua_has(lower, "x11") ||
        ua_has(lower, "cros ")) {
        if (ua_has(lower, "x11") || ua_has(lower, "linux")) *flags |= UA_FLAG_X11;
        return TF_DEVICE_DESKTOP;
    }
    /* uap-core names a device (brand/model) for handsets it recognises; desktops are
     * "Other" or "Mac". */
    if (strcmp(fam, "Other") != 0) return TF_DEVICE_MOBILE;
    return TF_DEVICE_UNKNOWN;
}

static void join_version(char *dst, size_t size, const char *a, const char *b, const char *c,
                         const char *d) {
    const char *parts[4] = {a, b, c, d};
    char tmp[160];
    size_t n = 0;
    tmp[0] = '\0';
    for (int i = 0; i < 4 && parts[i] && parts[i][0]; i++) {
        int w = snprintf(tmp + n, sizeof(tmp) - n, "%s%s", i ? "." : "", parts[i]);
        if (w < 0 || (size_t)w >= sizeof(tmp) - n) break;
        n += (size_t)w;
    }
    ua_copy_clean(dst, size, tmp, n);
}

static void compute_base(tf_ua_classifier_t *c, size_t n, ua_base_t *base) {
    memset(base, 0, sizeof(*base));
    size_t b = 0;
    while (b < n && ua_is_space(c->subject[b]))
        b++;
    if (b == n) {
        base->info.type = TF_DEVICE_UNKNOWN;
        return;
    }
    tf_ua_parse_t p;
    ua_parse_subject(c, c->subject, n, &p);
    tf_ua_info_t *info = &base->info;
    if (strcmp(p.ua_family, "Other") != 0) {
        ua_copy_clean(info->browser, sizeof(info->browser), p.ua_family, strlen(p.ua_family));
        join_version(info->browser_version, sizeof(info->browser_version), p.ua_major, p.ua_minor,
                     p.ua_patch, NULL);
    }
    if (strcmp(p.os_family, "Other") != 0) {
        ua_copy_clean(info->os, sizeof(info->os), p.os_family, strlen(p.os_family));
        join_version(info->os_version, sizeof(info->os_version), p.os_major, p.os_minor, p.os_patch,
                     p.os_patch_minor);
    }
    if (strcmp(p.device_family, "Other") != 0)
        ua_copy_clean(info->device_family, sizeof(info->device_family), p.device_family,
                      strlen(p.device_family));
    info->type = type_from_agent(c, c->lower, n, &p, &base->flags);
}

/* ---- hints ----------------------------------------------------------------------- */

/* CSS-pixel screens of iPads (portrait; either orientation matches). */
static bool is_ipad_screen(int32_t w, int32_t h) {
    static const int32_t sizes[][2] = {
        {768, 1024}, {810, 1080},  {820, 1180},  {834, 1112}, {834, 1194},
        {834, 1210}, {1024, 1366}, {1032, 1376}, {744, 1133},
    };
    int32_t a = w < h ? w : h, b = w < h ? h : w;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        if (sizes[i][0] == a && sizes[i][1] == b) return true;
    return false;
}

/* A handheld phone's screen: short side under 600 CSS px, long side under 1100. */
static bool is_phone_screen(int32_t w, int32_t h) {
    int32_t a = w < h ? w : h, b = w < h ? h : w;
    return a > 0 && a < 600 && b < 1100;
}

static bool platform_is(const char *platform, const char *name) {
    if (!platform) return false;
    /* Sec-CH-UA-Platform values arrive quoted ("\"Android\"") when copied raw. */
    const char *s = platform;
    size_t len = strlen(s);
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "%.*s", (int)(len - 2), s + 1);
        return ua_ci_equal(tmp, name);
    }
    return ua_ci_equal(s, name);
}

static bool platform_is_desktop(const char *platform) {
    return platform_is(platform, "Windows") || platform_is(platform, "macOS") ||
           platform_is(platform, "Linux") || platform_is(platform, "Chrome OS") ||
           platform_is(platform, "Chromium OS") || platform_is(platform, "Fuchsia");
}

static tf_device_type_t apply_hints(tf_device_type_t t, unsigned flags,
                                    const tf_device_hints_t *h) {
    if (t == TF_DEVICE_BOT || !h) return t;
    const char *platform = h->platform && h->platform[0] ? h->platform : NULL;
    const char *model = h->model && h->model[0] ? h->model : NULL;
    bool screen = h->screen_width > 0 && h->screen_height > 0;
    bool android = (flags & UA_FLAG_ANDROID) || platform_is(platform, "Android");

    if (platform_is(platform, "iPadOS") || (model && ua_ci_contains(model, "ipad")))
        return TF_DEVICE_TABLET;
    if (h->has_mobile && h->mobile) return TF_DEVICE_MOBILE;
    if (h->has_mobile && !h->mobile) {
        if (android) return TF_DEVICE_TABLET;
        if (t == TF_DEVICE_UNKNOWN && platform_is_desktop(platform)) {
            if (screen && is_ipad_screen(h->screen_width, h->screen_height) &&
                platform_is(platform, "macOS"))
                return TF_DEVICE_TABLET;
            return TF_DEVICE_DESKTOP;
        }
    }
    if (t == TF_DEVICE_DESKTOP && screen) {
        /* iPadOS Safari and Android "desktop site" modes send a desktop agent; the
         * screen they report gives the device away. */
        if ((flags & UA_FLAG_MAC) && is_ipad_screen(h->screen_width, h->screen_height))
            return TF_DEVICE_TABLET;
        if ((flags & (UA_FLAG_MAC | UA_FLAG_X11)) &&
            is_phone_screen(h->screen_width, h->screen_height))
            return TF_DEVICE_MOBILE;
        return t;
    }
    if (t != TF_DEVICE_UNKNOWN) return t;
    /* The agent said nothing usable: decide from the hints alone. */
    if (platform_is(platform, "iOS")) return TF_DEVICE_MOBILE;
    if (platform_is(platform, "Android"))
        return (h->has_mobile && !h->mobile) ? TF_DEVICE_TABLET : TF_DEVICE_MOBILE;
    if (platform_is_desktop(platform)) return TF_DEVICE_DESKTOP;
    if (screen) {
        if (is_ipad_screen(h->screen_width, h->screen_height)) return TF_DEVICE_TABLET;
        if (is_phone_screen(h->screen_width, h->screen_height)) return TF_DEVICE_MOBILE;
        int32_t a = h->screen_width < h->screen_height ? h->screen_width : h->screen_height;
        int32_t b = h->screen_width < h->screen_height ? h->screen_height : h->screen_width;
        if (a >= 720 && b >= 1280 && b * 10 >= a * 15) return TF_DEVICE_DESKTOP;
    }
    return TF_DEVICE_UNKNOWN;
}

/* ---- cache ----------------------------------------------------------------------- */

static uint64_t hash_key(uint64_t seed, const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    /* splitmix64 finaliser */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static void lru_unlink(tf_ua_classifier_t *c, cache_entry_t *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        c->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_front(tf_ua_classifier_t *c, cache_entry_t *e) {
    e->prev = NULL;
    e->next = c->lru_head;
    if (c->lru_head) c->lru_head->prev = e;
    c->lru_head = e;
    if (!c->lru_tail) c->lru_tail = e;
}

static cache_entry_t *cache_find(tf_ua_classifier_t *c, uint64_t h, const char *key, size_t n) {
    for (cache_entry_t *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->key_len == n && memcmp(e->key, key, n) == 0) return e;
    return NULL;
}

static void bucket_remove(tf_ua_classifier_t *c, cache_entry_t *e) {
    cache_entry_t **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    e->hnext = NULL;
}

void ua_cache_clear(tf_ua_classifier_t *c) {
    cache_entry_t *e = c->lru_head;
    while (e) {
        cache_entry_t *next = e->next;
        free(e->key);
        free(e);
        e = next;
    }
    c->lru_head = c->lru_tail = NULL;
    c->cache_n = 0;
    if (c->buckets) memset(c->buckets, 0, c->nbuckets * sizeof(*c->buckets));
}

/* Stores a copy of base under the key; evicts the least recently used entry at
 * capacity. Returns -1 when memory ran out (the cache stays consistent). */
static int cache_insert(tf_ua_classifier_t *c, uint64_t h, const char *key, size_t n,
                        const ua_base_t *base) {
    char *kcopy = malloc(n + 1);
    if (!kcopy) return -1;
    memcpy(kcopy, key, n);
    kcopy[n] = '\0';
    cache_entry_t *e;
    if (c->cache_n >= c->cache_cap) {
        e = c->lru_tail;
        lru_unlink(c, e);
        bucket_remove(c, e);
        free(e->key);
        c->cache_n--;
    } else {
        e = calloc(1, sizeof(*e));
        if (!e) {
            free(kcopy);
            return -1;
        }
    }
    e->hash = h;
    e->key = kcopy;
    e->key_len = n;
    e->value = *base;
    size_t b = h & (c->nbuckets - 1);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    lru_push_front(c, e);
    c->cache_n++;
    return 0;
}

/* ---- classification -------------------------------------------------------------- */

int tf_ua_classify(tf_ua_classifier_t *c, const char *ua, const tf_device_hints_t *hints,
                   tf_ua_info_t *out) {
    ua_query_begin(c);
    size_t n = ua_set_subject(c, ua);
    ua_base_t base;
    int rc = 0;
    if (c->cache_cap > 0 && n > 0) {
        uint64_t h = hash_key(c->seed, c->subject, n);
        cache_entry_t *e = cache_find(c, h, c->subject, n);
        if (e) {
            c->hits++;
            if (e != c->lru_head) {
                lru_unlink(c, e);
                lru_push_front(c, e);
            }
            base = e->value;
        } else {
            c->misses++;
            compute_base(c, n, &base);
            if (cache_insert(c, h, c->subject, n, &base) != 0) rc = -1;
        }
    } else if (c->cache_cap > 0) {
        /* No agent (most events of a session carry none): one answer, kept apart. */
        if (c->have_empty_base) {
            c->hits++;
        } else {
            c->misses++;
            compute_base(c, 0, &c->empty_base);
            c->have_empty_base = true;
        }
        base = c->empty_base;
    } else {
        c->misses++;
        compute_base(c, n, &base);
    }
    ua_query_end(c);
    *out = base.info;
    out->type = apply_hints(base.info.type, base.flags, hints);
    return rc;
}

void tf_ua_classifier_stats(const tf_ua_classifier_t *c, uint64_t *hits, uint64_t *misses) {
    if (c) ua_query_begin(c);
    if (hits) *hits = c ? c->hits : 0;
    if (misses) *misses = c ? c->misses : 0;
    if (c) ua_query_end(c);
}

size_t tf_ua_classifier_jit_compiled(const tf_ua_classifier_t *c) {
    if (!c) return 0;
    ua_query_begin(c);
    size_t n = c->jit_compiled;
    ua_query_end(c);
    return n;
}

uint64_t tf_ua_classifier_limit_hits(const tf_ua_classifier_t *c) {
    if (!c) return 0;
    ua_query_begin(c);
    uint64_t n = c->limit_hits;
    ua_query_end(c);
    return n;
}

size_t tf_ua_classifier_cache_size(const tf_ua_classifier_t *c) {
    if (!c) return 0;
    ua_query_begin(c);
    size_t n = c->cache_n;
    ua_query_end(c);
    return n;
}
