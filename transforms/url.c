/* url.c — URL parsing on libcurl's URL API, UTM / click id extraction, IDN hosts. */
#include "transforms/url.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The query parameters read, in the order of the slots below. */
enum {
    P_UTM_SOURCE = 0,
    P_UTM_MEDIUM,
    P_UTM_CAMPAIGN,
    P_UTM_TERM,
    P_UTM_CONTENT,
    P_FIRST_CLICK_ID, /* click ids follow, by priority */
    P_COUNT = P_FIRST_CLICK_ID + 9
};

static const char *const param_names[P_COUNT] = {
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid",  "dclid",
    "gbraid",     "wbraid",     "fbclid",       "msclkid",  "ttclid",      "twclid", "li_fat_id",
};

#define PARAM_NAME_MAX 64 /* a raw parameter name longer than this matches nothing */
#define HOST_MAX 255

void tf_url_init(tf_url_t *u) { memset(u, 0, sizeof(*u)); }

void tf_url_reset(tf_url_t *u) {
    free(u->scheme);
    free(u->host);
    free(u->path);
    free(u->utm_source);
    free(u->utm_medium);
    free(u->utm_campaign);
    free(u->utm_term);
    free(u->utm_content);
    free(u->click_id_name);
    free(u->click_id);
    free(u->campaign_key);
    tf_url_init(u);
}

/* ---- UTF-8 --------------------------------------------------------------------- */

/* Decodes one code point of s[0..n) (strict: no overlong forms, no surrogates, at
 * most U+10FFFF). Returns its length in bytes and sets *cp, or 0 when invalid. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1Fu;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0Fu;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07u;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static bool utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;
    while (i < n) {
        size_t k = utf8_next(p + i, n - i, &cp);
        if (k == 0) return false;
        i += k;
    }
    return true;
}

/* ---- IDN hosts --------------------------------------------------------------- */

/* Simple lowercase mapping of the scripts most seen in host names. */
static uint32_t lower_cp(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0x80) return c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 0x20; /* Latin-1 */
    if (c >= 0x100 && c <= 0x137 && c != 0x130 && (c % 2) == 0) return c + 1;
    if (c >= 0x139 && c <= 0x148 && (c % 2) == 1) return c + 1;
    if (c >= 0x14A && c <= 0x177 && (c % 2) == 0) return c + 1;
    if (c == 0x178) return 0xFF;
    if (c >= 0x179 && c <= 0x17E && (c % 2) == 1) return c + 1;
    if (c == 0x386) return 0x3AC; /* Greek */
    if (c >= 0x388 && c <= 0x38A) return c + 0x25;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 0x3F;
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 0x20;
    if (c >= 0x400 && c <= 0x40F) return c + 0x50; /* Cyrillic */
    if (c >= 0x410 && c <= 0x42F) return c + 0x20;
    return c;
}

#define PC_BASE 36u
#define PC_TMIN 1u
#define PC_TMAX 26u
#define PC_SKEW 38u
#define PC_DAMP 700u

static uint32_t pc_adapt(uint32_t delta, uint32_t numpoints, bool first) {
    delta = first ? delta / PC_DAMP : delta / 2;
    delta += delta / numpoints;
    uint32_t k = 0;
    while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2) {
        delta /= PC_BASE - PC_TMIN;
        k += PC_BASE;
    }
    return k + (((PC_BASE - PC_TMIN + 1) * delta) / (delta + PC_SKEW));
}

static char pc_digit(uint32_t d) { return (char)(d < 26 ? 'a' + d : '0' + (d - 26)); }

/* Appends one character to out[*len] within cap (keeping room for the NUL). */
static bool put_char(char *out, size_t cap, size_t *len, char c) {
    if (*len + 1 >= cap) return false;
    out[(*len)++] = c;
    return true;
}

/* RFC 3492 encoding of cps[0..n) (already lowercased), appended to out. */
static bool punycode_encode(const uint32_t *cps, size_t n, char *out, size_t cap, size_t *len) {
    uint32_t basic = 0;
    for (size_t i = 0; i < n; i++)
        if (cps[i] < 0x80) {
            if (!put_char(out, cap, len, (char)cps[i])) return false;
            basic++;
        }
    if (basic > 0 && !put_char(out, cap, len, '-')) return false;
    uint32_t next = 0x80, delta = 0, bias = 72, handled = basic;
    while (handled < n) {
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < n; i++)
            if (cps[i] >= next && cps[i] < m) m = cps[i];
        /* n <= HOST_MAX and m <= 0x10FFFF: no overflow in 32 bits */
        delta += (m - next) * (handled + 1);
        next = m;
        for (size_t i = 0; i < n; i++) {
            if (cps[i] < next) delta++;
            if (cps[i] != next) continue;
            uint32_t q = delta;
            for (uint32_t k = PC_BASE;; k += PC_BASE) {
                uint32_t t = k <= bias ? PC_TMIN : k >= bias + PC_TMAX ? PC_TMAX : k - bias;
                if (q < t) break;
                if (!put_char(out, cap, len, pc_digit(t + (q - t) % (PC_BASE - t)))) return false;
                q = (q - t) / (PC_BASE - t);
            }
            if (!put_char(out, cap, len, pc_digit(q))) return false;
            bias = pc_adapt(delta, handled + 1, handled == basic);
            delta = 0;
            handled++;
        }
        delta++;
        next++;
    }
    return true;
}

int tf_url_host_ascii(const char *host, size_t host_len, char *out, size_t out_size) {
    if (host_len > HOST_MAX || out_size == 0) return -1;
    const unsigned char *p = (const unsigned char *)host;
    size_t len = 0, i = 0;
    uint32_t cps[HOST_MAX];
    while (i <= host_len) {
        /* one label: host[i .. end) */
        size_t end = i;
        while (end < host_len && host[end] != '.') end++;
        size_t ncp = 0;
        bool ascii = true;
        for (size_t j = i; j < end;) {
            uint32_t cp;
            size_t k = utf8_next(p + j, end - j, &cp);
            if (k == 0) return -1;
            if (cp >= 0x80) ascii = false;
            cps[ncp++] = lower_cp(cp);
            j += k;
        }
        if (ascii) {
            for (size_t j = 0; j < ncp; j++)
                if (!put_char(out, out_size, &len, (char)cps[j])) return -1;
        } else {
            static const char prefix[] = "xn--";
            for (size_t j = 0; j < sizeof(prefix) - 1; j++)
                if (!put_char(out, out_size, &len, prefix[j])) return -1;
            if (!punycode_encode(cps, ncp, out, out_size, &len)) return -1;
        }
        if (end < host_len && !put_char(out, out_size, &len, '.')) return -1;
        i = end + 1;
    }
    out[len] = '\0';
    return 0;
}

/* ---- query parameters ------------------------------------------------------------ */

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into out (room for n + 1 bytes): '+' is a space, %XY a byte, a
 * malformed escape stays as is. Falls back to the raw text when the decoded bytes
 * hold a NUL or are not valid UTF-8. Returns the length written (NUL-terminated). */
static size_t form_decode(const char *s, size_t n, char *out) {
    size_t len = 0;
    bool has_nul = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            out[len++] = ' ';
        } else if (c == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
                   hexval((unsigned char)s[i + 2]) >= 0) {
            unsigned char b = (unsigned char)(hexval((unsigned char)s[i + 1]) * 16 +
                                              hexval((unsigned char)s[i + 2]));
            if (b == 0) has_nul = true;
            out[len++] = (char)b;
            i += 2;
        } else {
            out[len++] = (char)c;
        }
    }
    if (has_nul || !utf8_valid(out, len)) {
        memcpy(out, s, n);
        len = n;
    }
    out[len] = '\0';
    return len;
}

static bool name_equals_ci(const char *a, const char *lower) {
    for (; *a && *lower; a++, lower++) {
        char c = *a;
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != *lower) return false;
    }
    return *a == '\0' && *lower == '\0';
}

/* Reads the parameters of interest from the raw query into values[] (first
 * occurrence wins; "" for an empty value). Returns 0, or -1 when out of memory. */
static int read_query(const char *query, char *values[P_COUNT], bool seen[P_COUNT]) {
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', seg);
        size_t name_len = eq ? (size_t)(eq - p) : seg;
        if (name_len > 0 && name_len <= PARAM_NAME_MAX) {
            char name[PARAM_NAME_MAX + 1];
            form_decode(p, name_len, name);
            for (int k = 0; k < P_COUNT; k++) {
                if (seen[k] || !name_equals_ci(name, param_names[k])) continue;
                seen[k] = true;
                size_t vlen = eq ? seg - name_len - 1 : 0;
                char *v = malloc(vlen + 1);
                if (!v) return -1;
                form_decode(eq ? eq + 1 : p + seg, vlen, v);
                values[k] = v;
                break;
            }
        }
        if (!amp) break;
        p = amp + 1;
    }
    return 0;
}

static bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Builds the canonical campaign key of the n (name, value) pairs; NULL when n == 0
 * or out of memory (*oom set). */
static char *campaign_key(const char *names[], const char *vals[], size_t n, bool *oom) {
    *oom = false;
    if (n == 0) return NULL;
    for (size_t i = 1; i < n; i++) /* insertion sort by name */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *tn = names[j], *tv = vals[j];
            names[j] = names[j - 1];
            vals[j] = vals[j - 1];
            names[j - 1] = tn;
            vals[j - 1] = tv;
        }
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) cap += strlen(names[i]) + 2 + 3 * strlen(vals[i]);
    char *key = malloc(cap);
    if (!key) {
        *oom = true;
        return NULL;
    }
    static const char hex[] = "0123456789ABCDEF";
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) key[len++] = '&';
        size_t nl = strlen(names[i]);
        memcpy(key + len, names[i], nl);
        len += nl;
        key[len++] = '=';
        for (const unsigned char *v = (const unsigned char *)vals[i]; *v; v++) {
            if (unreserved(*v)) {
                key[len++] = (char)*v;
            } else {
                key[len++] = '%';
                key[len++] = hex[*v >> 4];
                key[len++] = hex[*v & 15];
            }
        }
    }
    key[len] = '\0';
    return key;
}

/* ---- parse ------------------------------------------------------------------ */

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void lower_ascii(char *s) {
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

/* A host as libcurl decoded it holds no forbidden domain code point (WHATWG URL:
 * controls, space, and # % / : < > ? @ [ \ ] ^ |), an IPv6 literal aside. */
static bool host_chars_ok(const char *host, size_t n) {
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') return true;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= 0x20 || c == 0x7f || strchr("#%/:<>?@[\\]^|", c)) return false;
    }
    return true;
}

/* Copies a string returned by libcurl into malloc'd memory and frees the original. */
static char *take_curl_string(char *s) {
    if (!s) return NULL;
    char *copy = strdup(s);
    curl_free(s);
    return copy;
}

int tf_url_parse(const char *url, tf_url_t *out, char *errstr, size_t errstr_size) {
    tf_url_t u;
    tf_url_init(&u);
    tf_url_reset(out);
    char *trimmed = NULL, *query = NULL, *raw = NULL;
    char *values[P_COUNT] = {0};
    bool seen[P_COUNT] = {0};
    CURLU *h = NULL;
    int rc = -1;

    if (!url) {
        snprintf(errstr, errstr_size, "no URL");
        goto done;
    }
    size_t n = strlen(url);
    if (n > TF_URL_MAX_LEN) {
        snprintf(errstr, errstr_size, "URL longer than %d bytes", TF_URL_MAX_LEN);
        goto done;
    }
    if (!utf8_valid(url, n)) {
        snprintf(errstr, errstr_size, "URL is not valid UTF-8");
        goto done;
    }
    size_t b = 0, e = n;
    while (b < e && is_space(url[b])) b++;
    while (e > b && is_space(url[e - 1])) e--;
    trimmed = strndup(url + b, e - b);
    h = curl_url();
    if (!trimmed || !h) goto oom;
    CURLUcode cu = curl_url_set(h, CURLUPART_URL, trimmed,
                                CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS | CURLU_ALLOW_SPACE);
    if (cu == CURLUE_OUT_OF_MEMORY) goto oom;
    if (cu != CURLUE_OK) {
        snprintf(errstr, errstr_size, "invalid URL: %s", curl_url_strerror(cu));
        goto done;
    }

    raw = NULL;
    cu = curl_url_get(h, CURLUPART_SCHEME, &raw, 0);
    if (cu == CURLUE_OUT_OF_MEMORY) goto oom;
    if (cu != CURLUE_OK) {
        snprintf(errstr, errstr_size, "invalid URL: %s", curl_url_strerror(cu));
        goto done;
    }
    if (!(u.scheme = take_curl_string(raw))) goto oom;
    lower_ascii(u.scheme);

    raw = NULL;
    cu = curl_url_get(h, CURLUPART_HOST, &raw, 0);
    if (cu == CURLUE_OUT_OF_MEMORY) goto oom;
    if (cu == CURLUE_OK && raw) {
        size_t hl = strlen(raw);
        if (hl > 0 && raw[hl - 1] == '.') hl--;
        char host[HOST_MAX * 4 + 1];
        if (hl == 0 || !host_chars_ok(raw, hl) ||
            tf_url_host_ascii(raw, hl, host, sizeof(host)) != 0) {
            curl_free(raw);
            snprintf(errstr, errstr_size, "invalid URL: bad host name");
            goto done;
        }
        curl_free(raw);
        if (!(u.host = strdup(host))) goto oom;
    } else if (cu != CURLUE_NO_HOST) {
        snprintf(errstr, errstr_size, "invalid URL: %s", curl_url_strerror(cu));
        goto done;
    }

    raw = NULL;
    cu = curl_url_get(h, CURLUPART_PATH, &raw, 0);
    if (cu == CURLUE_OUT_OF_MEMORY) goto oom;
    if (cu == CURLUE_OK && raw && raw[0]) {
        if (!(u.path = take_curl_string(raw))) goto oom;
    } else {
        if (cu == CURLUE_OK) curl_free(raw);
        if (!(u.path = strdup("/"))) goto oom;
    }

    raw = NULL;
    cu = curl_url_get(h, CURLUPART_QUERY, &raw, 0);
    if (cu == CURLUE_OUT_OF_MEMORY) goto oom;
    if (cu == CURLUE_OK && raw) {
        query = take_curl_string(raw);
        if (!query) goto oom;
        if (read_query(query, values, seen) != 0) goto oom;
    }

    /* utm_*: NULL when absent or empty; the slots hand their strings over */
    char **utm_fields[5] = {&u.utm_source, &u.utm_medium, &u.utm_campaign, &u.utm_term,
                            &u.utm_content};
    const char *key_names[6], *key_vals[6];
    size_t nkey = 0;
    for (int k = 0; k < 5; k++) {
        if (values[k] && values[k][0]) {
            *utm_fields[k] = values[k];
            values[k] = NULL;
            key_names[nkey] = param_names[k];
            key_vals[nkey++] = *utm_fields[k];
        }
    }
    for (int k = P_FIRST_CLICK_ID; k < P_COUNT; k++) {
        if (!values[k] || !values[k][0]) continue;
        if (!(u.click_id_name = strdup(param_names[k]))) goto oom;
        u.click_id = values[k];
        values[k] = NULL;
        key_names[nkey] = u.click_id_name;
        key_vals[nkey++] = u.click_id;
        break;
    }
    bool key_oom;
    u.campaign_key = campaign_key(key_names, key_vals, nkey, &key_oom);
    if (key_oom) goto oom;

    *out = u;
    tf_url_init(&u);
    rc = 0;
    goto done;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    rc = -2;
done:
    tf_url_reset(&u);
    for (int k = 0; k < P_COUNT; k++) free(values[k]);
    free(query);
    free(trimmed);
    curl_url_cleanup(h);
    return rc;
}

const char *tf_url_referrer_domain(const tf_url_t *u) {
    if (!u || !u->host) return NULL;
    if (strncmp(u->host, "www.", 4) == 0 && strchr(u->host + 4, '.') != NULL) return u->host + 4;
    return u->host;
}
