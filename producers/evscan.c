/* evscan.c — light scan of one NDJSON event line: JSON object?, visitorId, time. */
#include "producers/evscan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

enum { KEY_OTHER = 0, KEY_VISITOR, KEY_TIMESTAMP };

struct evscan_s {
    int depth;      /* nesting of maps and arrays; the top-level object is depth 1 */
    int seen_value; /* a top-level value has started */
    int top_is_map;
    int key;          /* which top-level key the next depth-1 value belongs to */
    int have_visitor; /* a visitorId key was seen (first one wins) */
    int visitor_ok;
    int have_ts;
    int64_t ts_ms;
    const char *top_kind; /* "array", "string", ... when the top level is not a map */
    char visitor_problem[96];
    size_t key_len;
    char key_buf[EVSCAN_MAX_KEY];
};

evscan_t *evscan_new(void) { return calloc(1, sizeof(evscan_t)); }

void evscan_destroy(evscan_t *scanner) { free(scanner); }

int64_t evscan_days_from_civil(int64_t y, unsigned m, unsigned d) {
    /* Howard Hinnant's days_from_civil. */
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, size_t n, int *out) {
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int year, int month) {
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) return 29;
    return dim[month - 1];
}

int evscan_parse_time(const char *s, size_t len, int64_t *ms) {
    if (!s || len == 0) return -1;
    if (s[0] >= '0' && s[0] <= '9' && memchr(s, '-', len) == NULL) {
        /* Epoch milliseconds: whole digits only, at most 15 (year ~33658). */
        if (len > 15) return -1;
        int64_t v = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9') return -1;
            v = v * 10 + (s[i] - '0');
        }
        *ms = v;
        return 0;
    }
    int year, mon, day, hour, min, sec;
    if (len < 20 || digits(s, 4, &year) || s[4] != '-' || digits(s + 5, 2, &mon) || s[7] != '-' ||
        digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &hour) ||
        s[13] != ':' || digits(s + 14, 2, &min) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    /* Second 60 is a leap second, as the validator accepts it. */
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 || min > 59 ||
        sec > 60)
        return -1;
    size_t i = 19;
    int frac_ms = 0;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (i - start < 3) frac_ms = frac_ms * 10 + (s[i] - '0');
            i++;
        }
        if (i == start) return -1;
        for (size_t k = i - start; k < 3; k++) frac_ms *= 10;
    }
    if (i >= len) return -1;
    int offset_min = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        int oh, om;
        if (len - i != 6 || digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
            digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != len) return -1;
    int64_t days = evscan_days_from_civil(year, (unsigned)mon, (unsigned)day);
    int64_t secs = days * 86400 + hour * 3600 + min * 60 + sec - (int64_t)offset_min * 60;
    *ms = secs * 1000 + frac_ms;
    return 0;
}

/* A value is starting at the current depth: handles the top level and the
 * depth-1 values whose key we care about. Returns 0 to stop the parse early. */
static int on_value(evscan_t *sc, const char *kind) {
    if (sc->depth == 0) {
        if (sc->seen_value) return 1;
        sc->seen_value = 1;
        if (strcmp(kind, "object") != 0) {
            sc->top_kind = kind;
            return 0; /* not an object: nothing more to learn */
        }
        sc->top_is_map = 1;
        return 1;
    }
    if (sc->depth == 1) {
        if (sc->key == KEY_VISITOR && !sc->have_visitor) {
            sc->have_visitor = 1;
            if (strcmp(kind, "null") == 0)
                snprintf(sc->visitor_problem, sizeof(sc->visitor_problem), "visitorId is null");
            else if (strcmp(kind, "string") != 0)
                snprintf(sc->visitor_problem, sizeof(sc->visitor_problem),
                         "visitorId is %s %s, not a string",
                         kind[0] == 'a' || kind[0] == 'o' ? "an" : "a", kind);
        }
        sc->key = KEY_OTHER;
    }
    return 1;
}

static int cb_null(void *ctx) { return on_value(ctx, "null"); }
static int cb_boolean(void *ctx, int b) {
    (void)b;
    return on_value(ctx, "boolean");
}

static int cb_number(void *ctx, const char *s, size_t len) {
    evscan_t *sc = ctx;
    int key = sc->key;
    if (!on_value(sc, "number")) return 0;
    if (sc->depth == 1 && key == KEY_TIMESTAMP && !sc->have_ts) {
        int64_t ms;
        if (evscan_parse_time(s, len, &ms) == 0 && memchr(s, '-', len) == NULL) {
            sc->have_ts = 1;
            sc->ts_ms = ms;
        }
    }
    return 1;
}

static int cb_string(void *ctx, const unsigned char *s, size_t len) {
    evscan_t *sc = ctx;
    int key = sc->key;
    int first_visitor = sc->depth == 1 && key == KEY_VISITOR && !sc->have_visitor;
    if (!on_value(sc, "string")) return 0;
    if (first_visitor) {
        if (len == 0) {
            snprintf(sc->visitor_problem, sizeof(sc->visitor_problem), "visitorId is empty");
        } else if (len > EVSCAN_MAX_KEY) {
            snprintf(sc->visitor_problem, sizeof(sc->visitor_problem),
                     "visitorId is longer than %d bytes", EVSCAN_MAX_KEY);
        } else {
            memcpy(sc->key_buf, s, len);
            sc->key_len = len;
            sc->visitor_ok = 1;
        }
    } else if (sc->depth == 1 && key == KEY_TIMESTAMP && !sc->have_ts) {
        int64_t ms;
        /* A string of digits is not an RFC 3339 time: only real numbers are epoch ms. */
        if (len >= 20 && evscan_parse_time((const char *)s, len, &ms) == 0) {
            sc->have_ts = 1;
            sc->ts_ms = ms;
        }
    }
    return 1;
}

static int cb_start_map(void *ctx) {
    evscan_t *sc = ctx;
    if (!on_value(sc, "object")) return 0;
    sc->depth++;
    return 1;
}

static int cb_map_key(void *ctx, const unsigned char *s, size_t len) {
    evscan_t *sc = ctx;
    if (sc->depth != 1) return 1;
    if (len == 9 && memcmp(s, "visitorId", 9) == 0)
        sc->key = KEY_VISITOR;
    else if (len == 9 && memcmp(s, "timestamp", 9) == 0)
        sc->key = KEY_TIMESTAMP;
    else
        sc->key = KEY_OTHER;
    return 1;
}

static int cb_end(void *ctx) {
    evscan_t *sc = ctx;
    sc->depth--;
    return 1;
}

static int cb_start_array(void *ctx) {
    evscan_t *sc = ctx;
    if (!on_value(sc, "array")) return 0;
    sc->depth++;
    return 1;
}

static const yajl_callbacks scan_callbacks = {
    cb_null,      cb_boolean, NULL,   NULL,           cb_number, cb_string,
    cb_start_map, cb_map_key, cb_end, cb_start_array, cb_end,
};

int evscan_line(evscan_t *sc, const char *line, size_t len, evscan_result_t *out) {
    memset(out, 0, sizeof(*out));
    sc->depth = sc->seen_value = sc->top_is_map = sc->key = 0;
    sc->have_visitor = sc->visitor_ok = sc->have_ts = 0;
    sc->ts_ms = 0;
    sc->top_kind = NULL;
    sc->visitor_problem[0] = '\0';
    sc->key_len = 0;

    yajl_handle h = yajl_alloc(&scan_callbacks, NULL, sc);
    if (!h) {
        snprintf(out->problem, sizeof(out->problem), "out of memory");
        return -1;
    }
    /* UTF-8 is the validator's business (it dead-letters invalid_utf8 with a reason). */
    yajl_config(h, yajl_dont_validate_strings, 1);
    yajl_status st = yajl_parse(h, (const unsigned char *)line, len);
    if (st == yajl_status_ok) st = yajl_complete_parse(h);
    if (sc->top_kind) {
        snprintf(out->problem, sizeof(out->problem), "not a JSON object (top level is %s %s)",
                 sc->top_kind[0] == 'a' || sc->top_kind[0] == 'o' ? "an" : "a", sc->top_kind);
        yajl_free(h);
        return -1;
    }
    if (st != yajl_status_ok || !sc->top_is_map) {
        unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *)line, len);
        const char *text = msg ? (const char *)msg : "parse error";
        size_t tl = strlen(text);
        while (tl > 0 && (text[tl - 1] == '\n' || text[tl - 1] == ' ')) tl--;
        snprintf(out->problem, sizeof(out->problem), "invalid JSON (%.*s)", (int)tl, text);
        if (msg) yajl_free_error(h, msg);
        yajl_free(h);
        return -1;
    }
    yajl_free(h);
    out->is_object = true;
    out->has_timestamp = sc->have_ts != 0;
    out->timestamp_ms = sc->ts_ms;
    if (sc->visitor_ok && !sc->visitor_problem[0]) {
        out->visitor_id = sc->key_buf;
        out->visitor_id_len = sc->key_len;
        return 0;
    }
    snprintf(out->problem, sizeof(out->problem), "%s",
             sc->visitor_problem[0] ? sc->visitor_problem : "no visitorId");
    return 1;
}
