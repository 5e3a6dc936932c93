/* report_params.c — parsing and validation of a report's parameters (see
 * report_params.h). */
#include "transforms/report_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "common/util.h"
#include "transforms/event.h"

static const char *const type_names[TF_REPORT_TYPE_COUNT] = {
    "TRAFFIC", "CONVERSIONS", "APPOINTMENTS", "PRODUCTS", "FUNNELS", "COHORTS", "CUSTOM"};

static const char *const device_types[] = {"DESKTOP", "TABLET", "MOBILE", "BOT", "UNKNOWN",
                                           NULL};
static const char *const metric_periods[] = {"HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY",
                                             NULL};
static const char *const funnel_periods[] = {"DAILY", "WEEKLY", "MONTHLY", NULL};

/* Accepted keys, per type. */
#define K_RANGE 0x01u
#define K_DEVICE 0x02u
#define K_LIMIT 0x04u
#define K_FUNNELS 0x08u
#define K_PERIOD 0x10u
#define K_METRICS 0x20u
#define K_DIMENSIONS 0x40u

static const unsigned type_keys[TF_REPORT_TYPE_COUNT] = {
    [TF_REPORT_TRAFFIC] = K_RANGE | K_DEVICE | K_LIMIT,
    [TF_REPORT_CONVERSIONS] = K_RANGE | K_DEVICE | K_LIMIT,
    [TF_REPORT_APPOINTMENTS] = K_RANGE | K_DEVICE,
    [TF_REPORT_PRODUCTS] = K_RANGE | K_DEVICE | K_LIMIT,
    [TF_REPORT_FUNNELS] = K_RANGE | K_FUNNELS | K_PERIOD,
    [TF_REPORT_COHORTS] = K_RANGE | K_DEVICE,
    [TF_REPORT_CUSTOM] = K_RANGE | K_DEVICE | K_PERIOD | K_METRICS | K_DIMENSIONS,
};

static const struct {
    const char *name;
    unsigned bit;
} key_bits[] = {
    {"from", K_RANGE},         {"to", K_RANGE},         {"deviceType", K_DEVICE},
    {"limit", K_LIMIT},        {"funnelIds", K_FUNNELS}, {"period", K_PERIOD},
    {"metrics", K_METRICS},    {"dimensions", K_DIMENSIONS},
};

const char *tf_report_type_name(tf_report_type_t type) {
    return (unsigned)type < TF_REPORT_TYPE_COUNT ? type_names[type] : NULL;
}

int tf_report_type_parse(const char *name, tf_report_type_t *out) {
    for (int i = 0; name && i < TF_REPORT_TYPE_COUNT; i++)
        if (strcmp(name, type_names[i]) == 0) {
            *out = (tf_report_type_t)i;
            return 0;
        }
    return -1;
}

void tf_report_params_clear(tf_report_params_t *p) {
    if (!p) return;
    free(p->keys_json);
    free(p->dimensions_json);
    memset(p, 0, sizeof(*p));
}

static const char *find_name(const char *const *names, const char *s) {
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) return names[i];
    return NULL;
}

/* A growable JSON text with a cap (TF_REPORT_MAX_KEYS × escaped keys fits easily). */
typedef struct {
    char buf[TF_REPORT_MAX_KEYS * (TF_REPORT_MAX_KEY_BYTES * 6 + 4) + 8];
    size_t len;
} jbuf_t;

static void jb_put(jbuf_t *b, const char *s, size_t n) {
    if (b->len + n >= sizeof(b->buf)) return; /* cannot happen within the limits */
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void jb_str(jbuf_t *b, const char *s) {
    jb_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            jb_put(b, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *c);
            jb_put(b, esc, 6);
        } else {
            jb_put(b, (const char *)c, 1);
        }
    }
    jb_put(b, "\"", 1);
}

static bool token_ok(const char *s, bool metric_key) {
    size_t n = strlen(s);
    if (n == 0 || n > TF_REPORT_MAX_KEY_BYTES) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-' ||
                  (metric_key && (c == '{' || c == '}' || c == '=' || c == ','));
        if (!ok) return false;
    }
    return true;
}

/* An array of 1..TF_REPORT_MAX_KEYS strings as canonical JSON text (malloc'd). */
static int parse_keys(const char *name, yajl_val v, bool metric_keys, char **out, char *errstr,
                      size_t errstr_size) {
    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0 || v->u.array.len > TF_REPORT_MAX_KEYS) {
        snprintf(errstr, errstr_size, "parameters.%s: must be an array of 1 to %d strings", name,
                 TF_REPORT_MAX_KEYS);
        return -1;
    }
    jbuf_t *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    jb_put(b, "[", 1);
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val e = v->u.array.values[i];
        const char *s = YAJL_IS_STRING(e) ? e->u.string : NULL;
        bool ok = s && (metric_keys ? token_ok(s, true)
                                    : (*s && strlen(s) <= TF_REPORT_MAX_KEY_BYTES));
        if (!ok) {
            snprintf(errstr, errstr_size,
                     metric_keys ? "parameters.%s[%zu]: not a metric key (letters, digits, "
                                   "_ . - and {k=v,…}, at most 256 bytes)"
                                 : "parameters.%s[%zu]: must be a non-empty string of at most "
                                   "256 bytes",
                     name, i);
            free(b);
            return -1;
        }
        if (i) jb_put(b, ",", 1);
        jb_str(b, s);
    }
    jb_put(b, "]", 1);
    *out = strdup(b->buf);
    free(b);
    if (!*out) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
}

static int parse_time(const char *name, yajl_val v, int64_t *ms, char text[32], char *errstr,
                      size_t errstr_size) {
    if (!YAJL_IS_STRING(v) ||
        tf_event_parse_rfc3339(v->u.string, strlen(v->u.string), ms) != 0) {
        snprintf(errstr, errstr_size,
                 "parameters.%s: must be an RFC 3339 time with a zone, e.g. "
                 "2026-01-01T00:00:00Z",
                 name);
        return -1;
    }
    ev_format_rfc3339_ms(*ms, text);
    return 0;
}

static int parse_choice(const char *name, yajl_val v, const char *const *names,
                        const char **out, char *errstr, size_t errstr_size) {
    const char *hit = YAJL_IS_STRING(v) ? find_name(names, v->u.string) : NULL;
    if (!hit) {
        char list[128] = "";
        size_t len = 0;
        for (int i = 0; names[i] && len < sizeof(list); i++)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? " | " : "",
                                    names[i]);
        snprintf(errstr, errstr_size, "parameters.%s: must be one of %s", name, list);
        return -1;
    }
    *out = hit;
    return 0;
}

/* dimensions (+ deviceType) as canonical JSON object text. */
static int parse_dimensions(yajl_val v, const char *device_type, char **out, char *errstr,
                            size_t errstr_size) {
    if (v && (!YAJL_IS_OBJECT(v) || v->u.object.len > TF_REPORT_MAX_DIMENSIONS)) {
        snprintf(errstr, errstr_size,
                 "parameters.dimensions: must be an object of at most %d string values",
                 TF_REPORT_MAX_DIMENSIONS);
        return -1;
    }
    jbuf_t *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    jb_put(b, "{", 1);
    bool any = false, has_device = false;
    for (size_t i = 0; v && i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        yajl_val e = v->u.object.values[i];
        if (!token_ok(k, false) || !YAJL_IS_STRING(e) || !token_ok(e->u.string, false)) {
            snprintf(errstr, errstr_size,
                     "parameters.dimensions: '%.64s' must name a string value of letters, "
                     "digits, _ . -",
                     k);
            free(b);
            return -1;
        }
        if (strcmp(k, "deviceType") == 0) {
            if (!find_name(device_types, e->u.string) ||
                (device_type && strcmp(device_type, e->u.string) != 0)) {
                snprintf(errstr, errstr_size,
                         "parameters.dimensions.deviceType: must be a DeviceType equal to "
                         "parameters.deviceType when both are given");
                free(b);
                return -1;
            }
            has_device = true;
        }
        if (any) jb_put(b, ",", 1);
        jb_str(b, k);
        jb_put(b, ":", 1);
        jb_str(b, e->u.string);
        any = true;
    }
    if (device_type && !has_device) {
        if (any) jb_put(b, ",", 1);
        jb_put(b, "\"deviceType\":", 13);
        jb_str(b, device_type);
    }
    jb_put(b, "}", 1);
    *out = strdup(b->buf);
    free(b);
    if (!*out) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
}

int tf_report_params_parse(const char *type_name, const char *json, tf_report_params_t *out,
                           char *errstr, size_t errstr_size) {
    tf_report_params_t p;
    memset(&p, 0, sizeof(p));
    memset(out, 0, sizeof(*out));
    if (tf_report_type_parse(type_name, &p.type) != 0) {
        snprintf(errstr, errstr_size, "type: unknown ReportType '%.40s'",
                 type_name ? type_name : "(null)");
        return -1;
    }
    char perr[256] = "";
    yajl_val root = yajl_tree_parse(json && *json ? json : "{}", perr, sizeof(perr));
    if (!root || !YAJL_IS_OBJECT(root)) {
        snprintf(errstr, errstr_size, "parameters: must be a JSON object");
        yajl_tree_free(root);
        return -1;
    }
    unsigned allowed = type_keys[p.type];
    yajl_val v_from = NULL, v_to = NULL, v_device = NULL, v_limit = NULL, v_funnels = NULL,
             v_period = NULL, v_metrics = NULL, v_dims = NULL;
    for (size_t i = 0; i < root->u.object.len; i++) {
        const char *k = root->u.object.keys[i];
        unsigned bit = 0;
        for (size_t j = 0; j < sizeof(key_bits) / sizeof(key_bits[0]); j++)
            if (strcmp(k, key_bits[j].name) == 0) bit = key_bits[j].bit;
        if (!(bit & allowed)) {
            snprintf(errstr, errstr_size, "parameters.%.64s: unknown parameter for a %s report",
                     k, type_names[p.type]);
            goto fail;
        }
        yajl_val v = root->u.object.values[i];
        yajl_val *slot = strcmp(k, "from") == 0         ? &v_from
                         : strcmp(k, "to") == 0         ? &v_to
                         : strcmp(k, "deviceType") == 0 ? &v_device
                         : strcmp(k, "limit") == 0      ? &v_limit
                         : strcmp(k, "funnelIds") == 0  ? &v_funnels
                         : strcmp(k, "period") == 0     ? &v_period
                         : strcmp(k, "metrics") == 0    ? &v_metrics
                                                        : &v_dims;
        if (*slot) {
            snprintf(errstr, errstr_size, "parameters.%.64s: given twice", k);
            goto fail;
        }
        *slot = v;
    }
    bool range_optional = p.type == TF_REPORT_FUNNELS;
    if (!v_from || !v_to) {
        if (!range_optional || v_from || v_to) {
            snprintf(errstr, errstr_size, "parameters.%s: required%s", v_from ? "to" : "from",
                     range_optional ? " when the other bound is given" : "");
            goto fail;
        }
    } else {
        if (parse_time("from", v_from, &p.from_ms, p.from, errstr, errstr_size) != 0 ||
            parse_time("to", v_to, &p.to_ms, p.to, errstr, errstr_size) != 0)
            goto fail;
        if (p.from_ms >= p.to_ms) {
            snprintf(errstr, errstr_size,
                     "parameters.to: must be after parameters.from (the range is [from, to))");
            goto fail;
        }
        p.has_range = true;
    }
    if (v_device &&
        parse_choice("deviceType", v_device, device_types, &p.device_type, errstr,
                     errstr_size) != 0)
        goto fail;
    p.limit = TF_REPORT_LIMIT_DEFAULT;
    if (v_limit) {
        if (!YAJL_IS_INTEGER(v_limit) || YAJL_GET_INTEGER(v_limit) < 1 ||
            YAJL_GET_INTEGER(v_limit) > TF_REPORT_LIMIT_MAX) {
            snprintf(errstr, errstr_size, "parameters.limit: must be an integer from 1 to %d",
                     TF_REPORT_LIMIT_MAX);
            goto fail;
        }
        p.limit = YAJL_GET_INTEGER(v_limit);
    }
    if (allowed & K_PERIOD) {
        p.period = "DAILY";
        if (v_period &&
            parse_choice("period", v_period,
                         p.type == TF_REPORT_FUNNELS ? funnel_periods : metric_periods,
                         &p.period, errstr, errstr_size) != 0)
            goto fail;
    }
    if (v_funnels && parse_keys("funnelIds", v_funnels, false, &p.keys_json, errstr,
                                errstr_size) != 0)
        goto fail;
    if (p.type == TF_REPORT_CUSTOM) {
        if (!v_metrics) {
            snprintf(errstr, errstr_size, "parameters.metrics: required (an array of metric "
                                          "keys)");
            goto fail;
        }
        if (parse_keys("metrics", v_metrics, true, &p.keys_json, errstr, errstr_size) != 0 ||
            parse_dimensions(v_dims, p.device_type, &p.dimensions_json, errstr, errstr_size) !=
                0)
            goto fail;
    }
    yajl_tree_free(root);
    *out = p;
    return 0;
fail:
    yajl_tree_free(root);
    tf_report_params_clear(&p);
    return -1;
}
