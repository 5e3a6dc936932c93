/* ua_corpus.c — real user agents from uap-core's test files, labelled by device. */
#include "producers/ua_corpus.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define UAC_MAX_FILES 256

typedef struct uac_list_s {
    uac_agent_t *items;
    size_t n, cap;
} uac_list_t;

struct uac_corpus_s {
    uac_list_t by_device[UAC_DEVICE_COUNT];
    size_t total;
    /* Open-addressing set of the agents' hashes (duplicates are skipped). */
    uint64_t *seen;
    size_t seen_cap, seen_n;
};

static const char *const device_names[UAC_DEVICE_COUNT] = {"DESKTOP", "TABLET", "MOBILE", "BOT",
                                                           "UNKNOWN"};
static const char *const os_names[UAC_OS_COUNT] = {"",        "Windows",   "macOS", "iOS",
                                                   "Android", "Chrome OS", "Linux"};

const char *uac_device_name(uac_device_t device) {
    return (unsigned)device < UAC_DEVICE_COUNT ? device_names[device] : NULL;
}

int uac_device_parse(const char *name, size_t len, uac_device_t *out) {
    for (int i = 0; i < UAC_DEVICE_COUNT; i++)
        if (strlen(device_names[i]) == len && memcmp(device_names[i], name, len) == 0) {
            *out = (uac_device_t)i;
            return 0;
        }
    return -1;
}

const char *uac_os_name(uac_os_t os) { return (unsigned)os < UAC_OS_COUNT ? os_names[os] : ""; }

/* Lowercase copy of at most cap-1 bytes (agents are capped at UAC_MAX_UA_BYTES). */
static void lower_copy(char *dst, size_t cap, const char *src, size_t len) {
    if (len >= cap) len = cap - 1;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    dst[len] = '\0';
}

static int has_any(const char *hay, const char *const *needles) {
    for (; *needles; needles++)
        if (strstr(hay, *needles)) return 1;
    return 0;
}

static int has_bot_token(const char *l) {
    static const char *const bots[] = {
        "crawl",          "spider",      "slurp",      "archiver",
        "curl/",          "wget/",       "python-",    "java/",
        "go-http-client", "libwww",      "httpclient", "http_client",
        "scrapy",         "headless",    "phantomjs",  "facebookexternalhit",
        "mediapartners",  "feedfetcher", "+http",      "(+",
        "validator",      "fetcher",     "monitoring", NULL};
    if (has_any(l, bots)) return 1;
    for (const char *p = strstr(l, "bot"); p; p = strstr(p + 1, "bot"))
        if (!(p - l >= 2 && p[-2] == 'c' && p[-1] == 'u')) return 1; /* not the CUBOT brand */
    return 0;
}

uac_device_t uac_label(const char *ua, size_t len, const char *family) {
    char l[UAC_MAX_UA_BYTES + 1];
    char f[128] = "";
    lower_copy(l, sizeof(l), ua, len);
    if (family) lower_copy(f, sizeof(f), family, strlen(family));
    int device_known = family && *family && strcmp(f, "other") != 0 && strcmp(f, "mac") != 0 &&
                       strcmp(f, "generic_desktop") != 0;

    if (strcmp(f, "spider") == 0 || has_bot_token(l)) return UAC_BOT;

    static const char *const tv_family[] = {"tv",    "playstation", "xbox",       "nintendo", "wii",
                                            "watch", "roku",        "chromecast", "ouya",     NULL};
    static const char *const tv_ua[] = {
        "smart-tv", "smarttv",     "hbbtv",         "netcast",  "web0s", "googletv", "appletv",
        "crkey",    "playstation", "xbox",          "nintendo", "roku",  "watchos",  "bravia",
        "viera",    "aquos",       "inettvbrowser", "dlnadoc",  NULL};
    if ((device_known && has_any(f, tv_family)) || has_any(l, tv_ua)) return UAC_UNKNOWN;

    static const char *const tablet_family[] = {"ipad",    "kindle",  "tablet",   "xoom",     "tab",
                                                "nexus 7", "nexus 9", "nexus 10", "playbook", NULL};
    static const char *const tablet_ua[] = {"ipad", "tablet", "kindle", "silk/", "playbook", NULL};
    int family_pad = device_known && strstr(f, "pad") && !strstr(f, "padfone");
    if ((device_known && has_any(f, tablet_family)) || family_pad || has_any(l, tablet_ua))
        return UAC_TABLET;
    int android = strstr(l, "android") != NULL;
    int mobile_token = strstr(l, "mobile") != NULL || strstr(l, "phone") != NULL ||
                       strstr(l, "opera mini") != NULL;
    if (android && !mobile_token && !strstr(l, "dalvik") &&
        (strstr(l, "applewebkit") || strstr(l, "gecko/") || strstr(l, "firefox")))
        return UAC_TABLET;

    static const char *const mobile_ua[] = {
        "mobile",       "iphone",     "ipod",       "android", "windows phone",
        "windows ce",   "blackberry", "bb10",       "symbian", "series60",
        "series40",     "opera mini", "opera mobi", "kaios",   "iemobile",
        "midp",         "j2me",       "up.browser", "nokia",   "samsung-",
        "sonyericsson", "palm",       "webos",      "maemo",   "fennec",
        "minimo",       "netfront",   "obigo",      "ucweb",   "ucbrowser",
        "profile/",     "wap",        NULL};
    if (device_known || has_any(l, mobile_ua)) return UAC_MOBILE;

    static const char *const desktop_ua[] = {
        "windows nt", "windows 98",   "windows 95", "windows xp",  "win98",
        "win95",      "macintosh",    "mac os x",   "mac_powerpc", "x11",
        "cros ",      "linux x86_64", "linux i686", "freebsd",     "openbsd",
        "netbsd",     "sunos",        "ubuntu",     "fedora",      NULL};
    if (has_any(l, desktop_ua) && (strncmp(l, "mozilla/", 8) == 0 || strncmp(l, "opera", 5) == 0))
        return UAC_DESKTOP;
    return UAC_UNKNOWN;
}

static uac_os_t detect_os(const char *l) {
    if (strstr(l, "iphone") || strstr(l, "ipad") || strstr(l, "ipod") || strstr(l, "like mac os x"))
        return UAC_OS_IOS;
    if (strstr(l, "android")) return UAC_OS_ANDROID;
    if (strstr(l, "cros ")) return UAC_OS_CHROMEOS;
    if (strstr(l, "windows phone") || strstr(l, "windows ce")) return UAC_OS_OTHER;
    if (strstr(l, "windows")) return UAC_OS_WINDOWS;
    if (strstr(l, "macintosh") || strstr(l, "mac os x")) return UAC_OS_MACOS;
    if (strstr(l, "linux") || strstr(l, "x11")) return UAC_OS_LINUX;
    return UAC_OS_OTHER;
}

static int chromium_major(const char *l) {
    if (strstr(l, "crios") || strstr(l, "edge/")) return 0; /* iOS Chrome, EdgeHTML */
    const char *p = strstr(l, "chrome/");
    if (!p) return 0;
    p += 7;
    int v = 0;
    for (int i = 0; i < 4 && *p >= '0' && *p <= '9'; i++, p++) v = v * 10 + (*p - '0');
    return v;
}

/* The Android model: the segment before " Build/", else the one after "Android x;". */
static void android_model(const char *ua, const char *l, char *out, size_t out_size) {
    out[0] = '\0';
    const char *and = strstr(l, "android");
    if (!and) return;
    const char *start = NULL, *end = NULL;
    const char *build = strstr(and, " build/");
    if (build) {
        end = build;
        start = end;
        while (start > and&&start[-1] != ';') start--;
    } else {
        const char *semi = strchr(and, ';');
        if (!semi) return;
        start = semi + 1;
        end = start;
        while (*end && *end != ')' && *end != ';') end++;
    }
    while (start < end && *start == ' ') start++;
    while (end > start && end[-1] == ' ') end--;
    size_t n = (size_t)(end - start);
    if (n == 0 || n >= out_size || n > 64) return;
    const char *orig = ua + (start - l);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)orig[i] < 0x20 || orig[i] == '"' || orig[i] == '\\') return;
    if (n == 1 && (orig[0] == 'K' || orig[0] == 'U')) return; /* reduced agents */
    if (n == 5 && orig[2] == '-') return;                     /* a locale such as en-us */
    memcpy(out, orig, n);
    out[n] = '\0';
}

static int valid_agent(const char *s, size_t len) {
    if (len == 0 || len > UAC_MAX_UA_BYTES) return 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c < 0x20 || c == 0x7f) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
        if (n == 0 || i + n > len) return 0;
        for (size_t k = 1; k < n; k++)
            if ((p[i + k] & 0xc0) != 0x80) return 0;
        if (n == 3 && ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] >= 0xa0))) return 0;
        if (n == 4 && ((c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] >= 0x90))) return 0;
        i += n;
    }
    return 1;
}

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

/* Inserts h into the set; returns 1 when new, 0 when present, -1 out of memory.
 * Two different agents with the same 64-bit hash count as one: harmless here. */
static int seen_insert(uac_corpus_t *c, uint64_t h) {
    if ((c->seen_n + 1) * 2 > c->seen_cap) {
        size_t ncap = c->seen_cap ? c->seen_cap * 2 : 4096;
        uint64_t *ns = calloc(ncap, sizeof(uint64_t));
        if (!ns) return -1;
        for (size_t i = 0; i < c->seen_cap; i++) {
            if (!c->seen[i]) continue;
            size_t j = c->seen[i] & (ncap - 1);
            while (ns[j]) j = (j + 1) & (ncap - 1);
            ns[j] = c->seen[i];
        }
        free(c->seen);
        c->seen = ns;
        c->seen_cap = ncap;
    }
    size_t j = h & (c->seen_cap - 1);
    while (c->seen[j]) {
        if (c->seen[j] == h) return 0;
        j = (j + 1) & (c->seen_cap - 1);
    }
    c->seen[j] = h;
    c->seen_n++;
    return 1;
}

uac_corpus_t *uac_corpus_new(void) { return calloc(1, sizeof(uac_corpus_t)); }

void uac_corpus_destroy(uac_corpus_t *c) {
    if (!c) return;
    for (int d = 0; d < UAC_DEVICE_COUNT; d++) {
        for (size_t i = 0; i < c->by_device[d].n; i++) free((char *)c->by_device[d].items[i].ua);
        free(c->by_device[d].items);
    }
    free(c->seen);
    free(c);
}

int uac_corpus_add(uac_corpus_t *c, const char *ua, size_t len, const char *family, int forced,
                   char *errstr, size_t errstr_size) {
    if (!valid_agent(ua, len)) return 0;
    if (c->total >= UAC_MAX_AGENTS) {
        snprintf(errstr, errstr_size, "more than %d user agents", UAC_MAX_AGENTS);
        return -1;
    }
    int fresh = seen_insert(c, hash_bytes(ua, len));
    if (fresh <= 0) {
        if (fresh < 0) snprintf(errstr, errstr_size, "out of memory");
        return fresh;
    }
    uac_device_t device = forced >= 0 && forced < UAC_DEVICE_COUNT ? (uac_device_t)forced
                                                                   : uac_label(ua, len, family);
    char l[UAC_MAX_UA_BYTES + 1], model[72];
    lower_copy(l, sizeof(l), ua, len);
    android_model(ua, l, model, sizeof(model));

    size_t esc = 0;
    for (size_t i = 0; i < len; i++) esc += (ua[i] == '"' || ua[i] == '\\');
    size_t model_len = strlen(model);
    /* One block: ua NUL, escaped ua NUL, model NUL. */
    char *block = malloc(len + 1 + len + esc + 1 + model_len + 1);
    if (!block) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    memcpy(block, ua, len);
    block[len] = '\0';
    char *json = block + len + 1;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (ua[i] == '"' || ua[i] == '\\') json[o++] = '\\';
        json[o++] = ua[i];
    }
    json[o] = '\0';
    char *mdl = json + o + 1;
    memcpy(mdl, model, model_len + 1);

    uac_list_t *list = &c->by_device[device];
    if (list->n == list->cap) {
        size_t ncap = list->cap ? list->cap * 2 : 256;
        uac_agent_t *ni = realloc(list->items, ncap * sizeof(*ni));
        if (!ni) {
            free(block);
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
        list->items = ni;
        list->cap = ncap;
    }
    uac_agent_t *a = &list->items[list->n++];
    a->ua = block;
    a->ua_len = len;
    a->ua_json = json;
    a->ua_json_len = o;
    a->device = device;
    a->os = detect_os(l);
    a->chromium_major = chromium_major(l);
    a->model = a->os == UAC_OS_ANDROID ? mdl : mdl + model_len; /* "" unless Android */
    c->total++;
    return 1;
}

size_t uac_corpus_count(const uac_corpus_t *c, uac_device_t device) {
    return (unsigned)device < UAC_DEVICE_COUNT ? c->by_device[device].n : 0;
}

const uac_agent_t *uac_corpus_agent(const uac_corpus_t *c, uac_device_t device, size_t i) {
    if ((unsigned)device >= UAC_DEVICE_COUNT || i >= c->by_device[device].n) return NULL;
    return &c->by_device[device].items[i];
}

/* ---- loading ---- */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* One test case being read: the fields we use, copied (YAML scalars are freed). */
typedef struct yaml_case_s {
    char *ua;
    size_t ua_len;
    char family[128];
    int has_device_fields; /* brand/model present: family is a device family */
} yaml_case_t;

static long load_yaml(uac_corpus_t *c, const char *path, char *errstr, size_t errstr_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errstr_size, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    yaml_parser_set_input_file(&parser, f);

    /* Container stack: 'M' mapping, 'S' sequence; for mappings whether the next
     * scalar is a key. We want: M(top) -> "test_cases" -> S -> M(case) -> scalars. */
    char kind[64];
    int expect_key[64];
    int depth = 0, cases_seq_depth = -1, top_key_is_cases = 0;
    char case_key[32] = "";
    yaml_case_t cs = {0};
    long added = 0;
    int done = 0, rc = 0;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            snprintf(errstr, errstr_size, "%s:%zu: YAML error: %s", path,
                     parser.problem_mark.line + 1, parser.problem ? parser.problem : "?");
            rc = -1;
            break;
        }
        int in_case =
            cases_seq_depth >= 0 && depth == cases_seq_depth + 1 && kind[depth - 1] == 'M';
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = 1; break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (depth >= 64) {
                snprintf(errstr, errstr_size, "%s: YAML nested too deeply", path);
                rc = -1;
                done = 1;
                break;
            }
            if (depth == 1 && kind[0] == 'M' && top_key_is_cases &&
                ev.type == YAML_SEQUENCE_START_EVENT)
                cases_seq_depth = depth + 1;
            if (depth > 0 && kind[depth - 1] == 'M') expect_key[depth - 1] = 1;
            kind[depth] = ev.type == YAML_MAPPING_START_EVENT ? 'M' : 'S';
            expect_key[depth] = 1;
            depth++;
            if (cases_seq_depth >= 0 && depth == cases_seq_depth + 1 && kind[depth - 1] == 'M') {
                free(cs.ua);
                memset(&cs, 0, sizeof(cs));
            }
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            if (in_case && cs.ua) {
                int r = uac_corpus_add(c, cs.ua, cs.ua_len, cs.has_device_fields ? cs.family : NULL,
                                       -1, errstr, errstr_size);
                if (r < 0) {
                    rc = -1;
                    done = 1;
                }
                added += r > 0;
            }
            if (depth > 0) depth--;
            if (depth == cases_seq_depth - 1) cases_seq_depth = -1;
            break;
        case YAML_SCALAR_EVENT: {
            const char *val = (const char *)ev.data.scalar.value;
            size_t vlen = ev.data.scalar.length;
            if (depth > 0 && kind[depth - 1] == 'M') {
                if (expect_key[depth - 1]) {
                    if (depth == 1) top_key_is_cases = strcmp(val, "test_cases") == 0;
                    if (in_case) snprintf(case_key, sizeof(case_key), "%s", val);
                    expect_key[depth - 1] = 0;
                } else {
                    if (in_case) {
                        if (strcmp(case_key, "user_agent_string") == 0 && !cs.ua) {
                            cs.ua = malloc(vlen + 1);
                            if (cs.ua) {
                                memcpy(cs.ua, val, vlen);
                                cs.ua[vlen] = '\0';
                                cs.ua_len = vlen;
                            }
                        } else if (strcmp(case_key, "family") == 0) {
                            snprintf(cs.family, sizeof(cs.family), "%s", val);
                        } else if (strcmp(case_key, "brand") == 0 ||
                                   strcmp(case_key, "model") == 0) {
                            cs.has_device_fields = 1;
                        }
                    }
                    expect_key[depth - 1] = 1;
                }
            }
            break;
        }
        default: break;
        }
        yaml_event_delete(&ev);
    }
    free(cs.ua);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc < 0 ? -1 : added;
}

static long load_text(uac_corpus_t *c, const char *path, char *errstr, size_t errstr_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errstr_size, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char line[UAC_MAX_UA_BYTES + 64];
    long added = 0, lineno = 0;
    long rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            /* Longer than any usable agent: skip the rest of the line. */
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n') {
            }
            continue;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0 || line[0] == '#') continue;
        int forced = -1;
        const char *ua = line;
        char *tab = strchr(line, '\t');
        if (tab) {
            uac_device_t d;
            if (uac_device_parse(line, (size_t)(tab - line), &d) != 0) {
                snprintf(errstr, errstr_size, "%s:%ld: '%.*s' is not a device type (%s)", path,
                         lineno, (int)(tab - line), line, "DESKTOP|TABLET|MOBILE|BOT|UNKNOWN");
                rc = -1;
                break;
            }
            forced = (int)d;
            ua = tab + 1;
        }
        int r = uac_corpus_add(c, ua, strlen(ua), NULL, forced, errstr, errstr_size);
        if (r < 0) {
            rc = -1;
            break;
        }
        added += r;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(errstr, errstr_size, "cannot read %s: %s", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc < 0 ? -1 : added;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends dir's *.yaml / *.yml files to names (sorted later). Missing dir: fine. */
static int list_yaml(const char *dir, char **names, int *n) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (!ends_with(de->d_name, ".yaml") && !ends_with(de->d_name, ".yml")) continue;
        if (*n >= UAC_MAX_FILES) break;
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        char *p = malloc(len);
        if (!p) {
            rc = -1;
            break;
        }
        snprintf(p, len, "%s/%s", dir, de->d_name);
        names[(*n)++] = p;
    }
    closedir(d);
    return rc;
}

long uac_corpus_load(uac_corpus_t *c, const char *path, char *errstr, size_t errstr_size) {
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(errstr, errstr_size, "user agent corpus %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (ends_with(path, ".yaml") || ends_with(path, ".yml"))
            return load_yaml(c, path, errstr, errstr_size);
        return load_text(c, path, errstr, errstr_size);
    }
    char *names[UAC_MAX_FILES];
    int n = 0;
    char sub[4096];
    int rc = list_yaml(path, names, &n);
    snprintf(sub, sizeof(sub), "%s/tests", path);
    if (rc == 0) rc = list_yaml(sub, names, &n);
    snprintf(sub, sizeof(sub), "%s/test_resources", path);
    if (rc == 0) rc = list_yaml(sub, names, &n);
    long total = 0;
    if (rc != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        total = -1;
    }
    qsort(names, (size_t)n, sizeof(char *), cmp_str);
    for (int i = 0; i < n && total >= 0; i++) {
        long added = load_yaml(c, names[i], errstr, errstr_size);
        total = added < 0 ? -1 : total + added;
    }
    for (int i = 0; i < n; i++) free(names[i]);
    if (total == 0) {
        snprintf(errstr, errstr_size,
                 "no user agents found under %s (expected uap-core's tests/ and test_resources/)",
                 path);
        return -1;
    }
    return total;
}
