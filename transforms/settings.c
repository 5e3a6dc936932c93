/* settings.c — validation of the runtime settings' JSON values (see settings.h). */
#include "transforms/settings.h"

#include <stdio.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "transforms/event.h"

const char *const tf_settings_keys[] = {"session.timeoutSeconds", "session.maxDurationSeconds",
                                        "conversion.types", "bots.excludeFromMetrics", NULL};

void tf_settings_default(tf_settings_t *s) {
    s->timeout_seconds = 1800;
    s->max_duration_seconds = 86400;
    s->conversion_types = (1u << TF_EVENT_PURCHASE) | (1u << TF_EVENT_APPOINTMENT_COMPLETE) |
                          (1u << TF_EVENT_LEAD) | (1u << TF_EVENT_SIGN_UP) |
                          (1u << TF_EVENT_FORM_SUBMIT);
    s->bots_exclude_from_metrics = true;
}

/* What a JSON value is, for messages ("got a string"). */
static const char *json_kind(yajl_val v) {
    if (YAJL_IS_STRING(v)) return "a string";
    if (YAJL_IS_NUMBER(v)) return "a number";
    if (YAJL_IS_OBJECT(v)) return "an object";
    if (YAJL_IS_ARRAY(v)) return "an array";
    if (YAJL_IS_TRUE(v)) return "true";
    if (YAJL_IS_FALSE(v)) return "false";
    return "null";
}

/* A JSON integer within lo..hi. A number written with a fraction or an exponent is
 * refused even when whole (1800.0): the value is a count of seconds. An integer too
 * large for int64 (yajl keeps it as a double only) is reported as out of range. */
static int integer_in(yajl_val v, const char *key, long long lo, long long hi, int64_t *out,
                      char *errstr, size_t errstr_size) {
    if (YAJL_IS_INTEGER(v)) {
        long long n = YAJL_GET_INTEGER(v);
        if (n < lo || n > hi) {
            snprintf(errstr, errstr_size, "%s: %lld is outside %lld..%lld", key, n, lo, hi);
            return -1;
        }
        *out = n;
        return 0;
    }
    if (YAJL_IS_NUMBER(v) && v->u.number.r && !strpbrk(v->u.number.r, ".eE")) {
        snprintf(errstr, errstr_size, "%s: %.40s is outside %lld..%lld", key, v->u.number.r, lo,
                 hi);
        return -1;
    }
    if (YAJL_IS_NUMBER(v) && v->u.number.r)
        snprintf(errstr, errstr_size, "%s: expected a whole number of seconds, got %.40s", key,
                 v->u.number.r);
    else
        snprintf(errstr, errstr_size, "%s: expected a whole number of seconds, got %s", key,
                 json_kind(v));
    return -1;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

int tf_settings_parse_types(const char *list, uint32_t *mask, char *errstr, size_t errstr_size) {
    uint32_t m = 0;
    const char *p = list;
    while (is_blank(*p)) p++;
    if (*p == '\0') {
        snprintf(errstr, errstr_size, "the list of event types is empty");
        return -1;
    }
    p = list;
    for (int item = 1;; item++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len && is_blank(*p)) p++, len--;
        while (len && is_blank(p[len - 1])) len--;
        if (len == 0) {
            snprintf(errstr, errstr_size, "item %d of the list of event types is empty", item);
            return -1;
        }
        tf_event_type_t t;
        if (tf_event_type_parse(p, len, &t) != 0) {
            snprintf(errstr, errstr_size, "unknown event type '%.*s'", len > 64 ? 64 : (int)len,
                     p);
            return -1;
        }
        m |= 1u << t;
        if (!comma) break;
        p = comma + 1;
    }
    *mask = m;
    return 0;
}

/* conversion.types: a non-empty array of EventType names (duplicates allowed). */
static int types_array(yajl_val v, const char *key, uint32_t *out, char *errstr,
                       size_t errstr_size) {
    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0) {
        snprintf(errstr, errstr_size, "%s: expected a non-empty array of EventType names, got %s",
                 key, YAJL_IS_ARRAY(v) ? "an empty array" : json_kind(v));
        return -1;
    }
    uint32_t m = 0;
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val item = v->u.array.values[i];
        tf_event_type_t t;
        if (!YAJL_IS_STRING(item)) {
            snprintf(errstr, errstr_size, "%s[%zu]: expected an EventType name, got %s", key, i,
                     json_kind(item));
            return -1;
        }
        if (tf_event_type_parse(item->u.string, strlen(item->u.string), &t) != 0) {
            snprintf(errstr, errstr_size, "%s[%zu]: '%.64s' is not an EventType name", key, i,
                     item->u.string);
            return -1;
        }
        m |= 1u << t;
    }
    *out = m;
    return 0;
}

int tf_settings_apply(tf_settings_t *s, const char *key, const char *json_value, char *errstr,
                      size_t errstr_size) {
    int which = -1;
    for (int i = 0; tf_settings_keys[i]; i++)
        if (strcmp(key, tf_settings_keys[i]) == 0) which = i;
    if (which < 0) return 1;
    char perr[256] = "";
    yajl_val v = yajl_tree_parse(json_value ? json_value : "", perr, sizeof(perr));
    if (!v) {
        /* yajl's message continues on further lines with the input quoted: keep the
         * first line, so the message stays one log line without the value's bytes. */
        perr[strcspn(perr, "\r\n")] = '\0';
        snprintf(errstr, errstr_size, "%s: value is not JSON (%s)", key,
                 perr[0] ? perr : "parse error");
        return -1;
    }
    tf_settings_t next = *s;
    int rc = 0;
    switch (which) {
    case 0:
        rc = integer_in(v, key, 1, 604800, &next.timeout_seconds, errstr, errstr_size);
        break;
    case 1:
        rc = integer_in(v, key, 60, 2592000, &next.max_duration_seconds, errstr, errstr_size);
        break;
    case 2:
        rc = types_array(v, key, &next.conversion_types, errstr, errstr_size);
        break;
    default:
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
            snprintf(errstr, errstr_size, "%s: expected true or false, got %s", key, json_kind(v));
            rc = -1;
        } else {
            next.bots_exclude_from_metrics = YAJL_IS_TRUE(v);
        }
        break;
    }
    yajl_tree_free(v);
    if (rc == 0) *s = next;
    return rc;
}
