/* event.c — parses and validates one raw tracking event (SPEC §3) with yajl callbacks. */
#include "transforms/event.h"

#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

/* Limits of SPEC §3. String lengths count Unicode code points, not bytes. */
enum {
    LIM_ID = 128,          /* eventId, visitorId (1..), userId, pageViewId */
    LIM_NAME = 256,        /* name */
    LIM_URL = 4096,        /* url, referrer */
    LIM_TITLE = 1024,      /* title */
    LIM_USER_AGENT = 2048, /* userAgent */
    LIM_HINT = 128,        /* clientHints.platform, clientHints.model */
    LIM_LANGUAGE = 35,     /* language (RFC 5646 §4.4.1 buffer size) */
    LIM_GEO = 128,         /* geo.region, geo.city */
    LIM_IP = 64,           /* ip */
    LIM_SCREEN_MAX = 20000,
    LIM_SCROLL_MAX = 100,
    LIM_PROPS_DEPTH = 8,
};
/* What PostgreSQL's numeric (and so jsonb) can hold: numeric_in refuses an exponent of
 * INT_MAX / 2 or more either way, a display scale above 16383 and more than 131072
 * digits before the decimal point ("value overflows numeric format"). */
#define PG_NUMERIC_MAX_EXPONENT 1073741822LL
#define PG_NUMERIC_MAX_DSCALE 16383LL
#define PG_NUMERIC_MAX_INT_DIGITS 131072LL
#define EPOCH_MS_MAX INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */
#define TIME_ON_PAGE_MAX 2147483647.0         /* page_views."timeOnPage" is an INT */
/* conversion_events.value is NUMERIC(14,2): what rounds to 10^12 does not fit. */
#define VALUE_LIMIT 999999999999.995

static const char *const type_names[TF_EVENT_TYPE_COUNT] = {
    "PAGE_VIEW",
    "PAGE_LEAVE",
    "PRODUCT_VIEW",
    "PRODUCT_LIST_VIEW",
    "SEARCH",
    "ADD_TO_CART",
    "REMOVE_FROM_CART",
    "CHECKOUT_START",
    "PURCHASE",
    "APPOINTMENT_START",
    "APPOINTMENT_COMPLETE",
    "APPOINTMENT_CANCEL",
    "FORM_START",
    "FORM_SUBMIT",
    "LEAD",
    "SIGN_UP",
    "LOGIN",
    "CLICK",
    "SCROLL",
    "OUTBOUND_CLICK",
    "FILE_DOWNLOAD",
    "VIDEO_PLAY",
    "CUSTOM",
};

static const char *const reason_codes[TF_REASON_COUNT] = {
    "ok",           "too_large",          "invalid_utf8",
    "invalid_json", "not_object",         "missing_field",
    "wrong_type",   "unknown_event_type", "bad_timestamp",
    "too_long",     "out_of_range",       "bad_url",
    "bad_currency", "currency_required",  "too_deep",
    "bad_country",  "bad_language",       "duplicate_field",
};

const char *tf_event_type_name(tf_event_type_t type) {
    if ((int)type < 0 || type >= TF_EVENT_TYPE_COUNT) return NULL;
    return type_names[type];
}

int tf_event_type_parse(const char *name, size_t len, tf_event_type_t *out) {
    if (!name) return -1;
    for (int i = 0; i < TF_EVENT_TYPE_COUNT; i++) {
        if (type_names[i][0] == (len ? name[0] : '\0') && strlen(type_names[i]) == len &&
            memcmp(type_names[i], name, len) == 0) {
            *out = (tf_event_type_t)i;
            return 0;
        }
    }
    return -1;
}

const char *tf_event_reason_code(tf_event_reason_t reason) {
    if ((int)reason < 0 || reason >= TF_REASON_COUNT) return NULL;
    return reason_codes[reason];
}

void tf_event_init(tf_event_t *event) {
    memset(event, 0, sizeof(*event));
    event->scroll_depth = -1;
}

void tf_event_reset(tf_event_t *event) {
    if (!event) return;
    free(event->buf_);
    tf_event_init(event);
}

/* ---- fields ------------------------------------------------------------------------ */

typedef enum {
    F_EVENT_ID,
    F_TYPE,
    F_TIMESTAMP,
    F_VISITOR_ID,
    F_USER_ID,
    F_NAME,
    F_URL,
    F_REFERRER,
    F_TITLE,
    F_USER_AGENT,
    F_CLIENT_HINTS,
    F_SCREEN,
    F_LANGUAGE,
    F_GEO,
    F_IP,
    F_PAGE_VIEW_ID,
    F_TIME_ON_PAGE,
    F_SCROLL_DEPTH,
    F_VALUE,
    F_CURRENCY,
    F_PROPERTIES,
    F_TOP_COUNT, /* sub-fields of the three fixed objects follow */
    F_CH_MOBILE = F_TOP_COUNT,
    F_CH_PLATFORM,
    F_CH_MODEL,
    F_SCREEN_WIDTH,
    F_SCREEN_HEIGHT,
    F_GEO_COUNTRY,
    F_GEO_REGION,
    F_GEO_CITY,
    F_UNKNOWN
} field_t;

typedef struct field_def_s {
    const char *key; /* the JSON key */
    size_t key_len;
    const char *dotted; /* the name used in errors */
    field_t field;
    field_t parent; /* F_UNKNOWN for top-level fields */
} field_def_t;

static const field_def_t field_defs[] = {
    {"eventId", 7, "eventId", F_EVENT_ID, F_UNKNOWN},
    {"type", 4, "type", F_TYPE, F_UNKNOWN},
    {"timestamp", 9, "timestamp", F_TIMESTAMP, F_UNKNOWN},
    {"visitorId", 9, "visitorId", F_VISITOR_ID, F_UNKNOWN},
    {"userId", 6, "userId", F_USER_ID, F_UNKNOWN},
    {"name", 4, "name", F_NAME, F_UNKNOWN},
    {"url", 3, "url", F_URL, F_UNKNOWN},
    {"referrer", 8, "referrer", F_REFERRER, F_UNKNOWN},
    {"title", 5, "title", F_TITLE, F_UNKNOWN},
    {"userAgent", 9, "userAgent", F_USER_AGENT, F_UNKNOWN},
    {"clientHints", 11, "clientHints", F_CLIENT_HINTS, F_UNKNOWN},
    {"screen", 6, "screen", F_SCREEN, F_UNKNOWN},
    {"language", 8, "language", F_LANGUAGE, F_UNKNOWN},
    {"geo", 3, "geo", F_GEO, F_UNKNOWN},
    {"ip", 2, "ip", F_IP, F_UNKNOWN},
    {"pageViewId", 10, "pageViewId", F_PAGE_VIEW_ID, F_UNKNOWN},
    {"timeOnPage", 10, "timeOnPage", F_TIME_ON_PAGE, F_UNKNOWN},
    {"scrollDepth", 11, "scrollDepth", F_SCROLL_DEPTH, F_UNKNOWN},
    {"value", 5, "value", F_VALUE, F_UNKNOWN},
    {"currency", 8, "currency", F_CURRENCY, F_UNKNOWN},
    {"properties", 10, "properties", F_PROPERTIES, F_UNKNOWN},
    {"mobile", 6, "clientHints.mobile", F_CH_MOBILE, F_CLIENT_HINTS},
    {"platform", 8, "clientHints.platform", F_CH_PLATFORM, F_CLIENT_HINTS},
    {"model", 5, "clientHints.model", F_CH_MODEL, F_CLIENT_HINTS},
    {"width", 5, "screen.width", F_SCREEN_WIDTH, F_SCREEN},
    {"height", 6, "screen.height", F_SCREEN_HEIGHT, F_SCREEN},
    {"country", 7, "geo.country", F_GEO_COUNTRY, F_GEO},
    {"region", 6, "geo.region", F_GEO_REGION, F_GEO},
    {"city", 4, "geo.city", F_GEO_CITY, F_GEO},
};
#define FIELD_DEF_COUNT (sizeof(field_defs) / sizeof(field_defs[0]))
_Static_assert(FIELD_DEF_COUNT == F_UNKNOWN, "one field_defs entry per field_t, in order");

/* field_defs is ordered by field_t, so the dotted name of a known field is direct. */
static const char *field_name(field_t field) {
    return field < F_UNKNOWN ? field_defs[field].dotted : "";
}

static field_t field_lookup(field_t parent, const unsigned char *key, size_t len) {
    for (size_t i = 0; i < FIELD_DEF_COUNT; i++) {
        const field_def_t *def = &field_defs[i];
        if (def->key_len == len && def->parent == parent && memcmp(def->key, key, len) == 0)
            return def->field;
    }
    return F_UNKNOWN;
}

/* ---- parse state ------------------------------------------------------------------- */

typedef enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_MAP, J_ARRAY } jkind_t;
static const char *const jkind_names[] = {"null",     "a boolean", "a number",
                                          "a string", "an object", "an array"};

/* An unknown top-level key, kept to detect duplicates among unknown keys too. */
typedef struct ukey_s {
    uint32_t hash;
    uint32_t off; /* into parse_t.arena */
    uint32_t len;
} ukey_t;

typedef struct parse_s {
    tf_event_t *ev;
    tf_event_error_t *err;
    bool failed; /* err holds the first error; the parse goes on only to classify syntax */
    bool oom;
    size_t depth;      /* open containers; 1 inside the top-level object */
    size_t skip_depth; /* > 0: inside an ignored container opened at this depth */
    field_t field;     /* the field whose value comes next */
    field_t parent;    /* F_CLIENT_HINTS, F_SCREEN or F_GEO while inside one, else F_UNKNOWN */
    uint32_t seen;     /* one bit per top-level field_t */
    uint32_t sub_seen; /* one bit per sub-field of the open fixed object */
    bool has_type, has_timestamp;
    size_t used; /* bytes of ev->buf_ in use */
    /* properties: forwarded to a generator while props_base > 0 */
    yajl_gen gen;
    size_t props_base; /* depth of the properties object itself */
    size_t props_start;
    bool props_overflow;
    /* unknown top-level keys: open-addressing table over copies in arena */
    ukey_t *ukeys;
    size_t ukey_cap, ukey_count;
    size_t message_len;
    char *arena;
    size_t arena_used, arena_cap;
} parse_t;

/* Copies at most max bytes of s into out (size out_size), replacing control characters
 * with '?' and cutting only at a UTF-8 sequence boundary ("..." marks a cut). */
static void echo_copy(char *out, size_t out_size, const char *s, size_t n, size_t max) {
    size_t cut = n;
    if (cut > max) cut = max;
    if (cut > out_size - 1) cut = out_size - 1;
    if (cut < n)
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    out[cut] = '\0';
    if (cut < n && cut + 4 <= out_size - 1) memcpy(out + cut, "...", 4);
}

static int failv(parse_t *p, tf_event_reason_t reason, const char *field, const char *fmt,
                 va_list ap) {
    if (p->failed) return 1;
    p->failed = true;
    tf_event_error_t *err = p->err;
    err->reason = reason;
    snprintf(err->field, sizeof(err->field), "%s", field);
    int used = field[0] ? snprintf(err->message, sizeof(err->message), "%s: ", field) : 0;
    if (used < 0 || (size_t)used >= sizeof(err->message)) used = 0;
    vsnprintf(err->message + used, sizeof(err->message) - (size_t)used, fmt, ap);
    return 1; /* keep parsing: a later syntax error takes precedence */
}

/* Records the first error (later ones are ignored). Always returns 1 for yajl. */
static int fail(parse_t *p, tf_event_reason_t reason, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(parse_t *p, tf_event_reason_t reason, const char *field, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = failv(p, reason, field, fmt, ap);
    va_end(ap);
    return rc;
}

static int out_of_memory(parse_t *p) {
    p->oom = true;
    return 0; /* cancels the parse */
}

static int wrong_type(parse_t *p, field_t field, const char *expected, jkind_t got) {
    return fail(p, TF_REASON_WRONG_TYPE, field_name(field), "expected %s, got %s", expected,
                jkind_names[got]);
}

/* ---- text helpers ------------------------------------------------------------------ */

/* Code points in valid UTF-8: every byte that is not a continuation byte. */
static size_t utf8_chars(const char *s, size_t n) {
    size_t chars = 0;
    for (size_t i = 0; i < n; i++)
        chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    return chars;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }
static char to_lower(char c) { return is_upper(c) ? (char)(c - 'A' + 'a') : c; }

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The code unit of a \uXXXX escape whose 'u' is at s[i], or -1 when malformed. */
static long hex4_at(const unsigned char *s, size_t n, size_t i) {
    if (i + 4 >= n) return -1;
    long v = 0;
    for (size_t k = 1; k <= 4; k++) {
        int h = hex_value(s[i + k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Offset of the first byte that breaks strict UTF-8 (Unicode Table 3-7: no overlongs,
 * no surrogates, nothing above U+10FFFF), or SIZE_MAX when s is valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    const uint64_t highs = UINT64_C(0x8080808080808080);
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) { /* ASCII runs 8 bytes at a time */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & highs) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return i;
        }
        if (i + need >= n || s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += need + 1;
    }
    return SIZE_MAX;
}

/* Inside JSON strings, the first escape that cannot become storable UTF-8 text: \u0000
 * (PostgreSQL text and jsonb cannot hold U+0000) or an unpaired surrogate. Returns its
 * offset and sets *what, or SIZE_MAX. Only called when the message has a backslash. */
static size_t bad_escape_at(const unsigned char *s, size_t n, const char **what) {
    bool in_string = false;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '"') {
            in_string = !in_string;
            i++;
            continue;
        }
        if (!in_string || c != '\\') {
            i++;
            continue;
        }
        if (i + 1 >= n || s[i + 1] != 'u') {
            i += 2; /* a one-character escape (or an invalid one, which yajl reports) */
            continue;
        }
        long cu = hex4_at(s, n, i + 1);
        if (cu < 0) {
            i += 2;
        } else if (cu == 0) {
            *what = "\\u0000 (U+0000 cannot be stored)";
            return i;
        } else if (cu >= 0xD800 && cu <= 0xDBFF) {
            long low = i + 7 < n && s[i + 6] == '\\' && s[i + 7] == 'u' ? hex4_at(s, n, i + 7) : -1;
            if (low < 0xDC00 || low > 0xDFFF) {
                *what = "unpaired high surrogate escape";
                return i;
            }
            i += 12;
        } else if (cu >= 0xDC00 && cu <= 0xDFFF) {
            *what = "unpaired low surrogate escape";
            return i;
        } else {
            i += 6;
        }
    }
    return SIZE_MAX;
}

/* ---- storage ----------------------------------------------------------------------- */

/* Copies n bytes plus a NUL into the event's buffer. The buffer is sized from the
 * input so this cannot run out for a valid message; the check keeps it bounded anyway. */
static const char *store(parse_t *p, const char *s, size_t n) {
    tf_event_t *ev = p->ev;
    if (n + 1 > ev->buf_cap_ - p->used) {
        fail(p, TF_REASON_TOO_LARGE, "", "message expands beyond its own size");
        return NULL;
    }
    char *dst = ev->buf_ + p->used;
    memcpy(dst, s, n);
    dst[n] = '\0';
    p->used += n + 1;
    return dst;
}

/* ---- numbers ----------------------------------------------------------------------- */

/* Parses a JSON integer (yajl validated the number grammar). Returns 0 when the text is
 * an integer (no fraction, no exponent); *out saturates and *overflow is set beyond
 * int64. Returns -1 for a fraction or an exponent. */
static int number_int(const char *s, size_t n, int64_t *out, bool *overflow) {
    size_t i = 0;
    bool neg = false;
    *overflow = false;
    if (i < n && s[i] == '-') {
        neg = true;
        i++;
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        if (!is_digit(s[i])) return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_C(9223372036854775808) - d) / 10) {
            *overflow = true;
            v = UINT64_C(9223372036854775808);
        } else {
            v = v * 10 + d;
        }
    }
    if (neg)
        *out = v >= UINT64_C(9223372036854775808) ? INT64_MIN : -(int64_t)v;
    else if (v > (uint64_t)INT64_MAX) {
        *overflow = true;
        *out = INT64_MAX;
    } else
        *out = (int64_t)v;
    return 0;
}

static double pow10_of(long long e) {
    static const double exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    if (e >= 0 && e <= 22) return exact[e];
    return pow(10.0, (double)e);
}

/* Shape of a JSON number's decimal text (yajl validated its grammar). */
typedef struct number_shape_s {
    bool negative;
    bool zero;            /* every digit is 0 */
    uint64_t mant;        /* the first 19 significant digits */
    long long exp10;      /* value ~= mant * 10^exp10 */
    long long exponent;   /* the written exponent, clamped to +-10^12 */
    long long scale;      /* digits after the point once the exponent is applied (>= 0) */
    long long int_digits; /* digits before the point once the exponent is applied (non-zero) */
} number_shape_t;

static void number_scan(const char *s, size_t n, number_shape_t *sh) {
    size_t i = 0;
    int digits = 0;
    long long frac_digits = 0, lead = 0; /* lead: int_digits before the exponent */
    memset(sh, 0, sizeof(*sh));
    if (i < n && s[i] == '-') {
        sh->negative = true;
        i++;
    }
    for (; i < n && is_digit(s[i]); i++) {
        if (sh->mant == 0 && s[i] == '0') continue; /* leading zero */
        lead++;
        if (digits < 19) {
            sh->mant = sh->mant * 10 + (uint64_t)(s[i] - '0');
            digits++;
        } else {
            sh->exp10++;
        }
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && is_digit(s[i]); i++) {
            frac_digits++;
            if (sh->mant == 0 && s[i] == '0') {
                sh->exp10--;
                lead--;
                continue;
            }
            if (digits < 19) {
                sh->mant = sh->mant * 10 + (uint64_t)(s[i] - '0');
                digits++;
                sh->exp10--;
            }
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        bool eneg = false;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        long long e = 0;
        for (; i < n && is_digit(s[i]); i++)
            if (e < 1000000000000LL) e = e * 10 + (s[i] - '0');
        sh->exponent = eneg ? -e : e;
    }
    sh->zero = sh->mant == 0;
    sh->exp10 += sh->exponent;
    sh->scale = frac_digits - sh->exponent > 0 ? frac_digits - sh->exponent : 0;
    sh->int_digits = lead + sh->exponent;
}

/* The number as a double (exact for up to 15 significant digits and small exponents,
 * within a few ulp otherwise; locale-independent). */
static double number_value(const number_shape_t *sh) {
    if (sh->zero) return sh->negative ? -0.0 : 0.0;
    double v = (double)sh->mant;
    long long e = sh->exp10;
    if (e > 400) e = 400;
    if (e < -400) e = -400;
    if (e > 0)
        v *= pow10_of(e);
    else if (e < 0 && e >= -308)
        v /= pow10_of(-e);
    else if (e < 0)
        v = v / pow10_of(-e - 100) / 1e100;
    return sh->negative ? -v : v;
}

/* PostgreSQL's numeric (and so jsonb) accepts it. */
static bool number_pg_ok(const number_shape_t *sh) {
    return sh->exponent <= PG_NUMERIC_MAX_EXPONENT && sh->exponent >= -PG_NUMERIC_MAX_EXPONENT &&
           sh->scale <= PG_NUMERIC_MAX_DSCALE &&
           (sh->zero || sh->int_digits <= PG_NUMERIC_MAX_INT_DIGITS);
}

/* ---- timestamps -------------------------------------------------------------------- */

static bool is_leap(long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(long y, int m) {
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(long y, int m, int d) {
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153L * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int64_t)era * 146097 + doe - 719468;
}

static bool digits_at(const char *s, size_t n, size_t at, size_t count, long *out) {
    if (at + count > n) return false;
    long v = 0;
    for (size_t i = at; i < at + count; i++) {
        if (!is_digit(s[i])) return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* RFC 3339 date-time: YYYY-MM-DD('T'|'t')hh:mm:ss[.fraction]('Z'|'z'|+hh:mm|-hh:mm).
 * The fraction may have any number of digits and is truncated to milliseconds; a leap
 * second (ss = 60) is the next minute's first second, as in PostgreSQL. Returns 0 and
 * the epoch ms, or -1. */
static int rfc3339_parse(const char *s, size_t n, int64_t *out_ms) {
    long year, month, day, hour, minute, second, off_h = 0, off_m = 0;
    if (!digits_at(s, n, 0, 4, &year) || n < 20 || s[4] != '-' || !digits_at(s, n, 5, 2, &month) ||
        s[7] != '-' || !digits_at(s, n, 8, 2, &day) || (s[10] != 'T' && s[10] != 't') ||
        !digits_at(s, n, 11, 2, &hour) || s[13] != ':' || !digits_at(s, n, 14, 2, &minute) ||
        s[16] != ':' || !digits_at(s, n, 17, 2, &second))
        return -1;
    size_t i = 19;
    long ms = 0;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        for (; i < n && is_digit(s[i]); i++)
            if (i - start < 3) ms = ms * 10 + (s[i] - '0');
        if (i == start) return -1;
        for (size_t k = i - start; k < 3; k++)
            ms *= 10;
    }
    if (i >= n) return -1;
    int sign = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '+' ? 1 : -1;
        if (!digits_at(s, n, i + 1, 2, &off_h) || i + 3 >= n || s[i + 3] != ':' ||
            !digits_at(s, n, i + 4, 2, &off_m))
            return -1;
        i += 6;
    } else {
        return -1;
    }
    if (i != n) return -1;
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, (int)month) || hour > 23 ||
        minute > 59 || second > 60 || off_h > 23 || off_m > 59)
        return -1;
    int64_t secs = days_from_civil(year, (int)month, (int)day) * 86400 + hour * 3600 + minute * 60 +
                   second - sign * (off_h * 3600 + off_m * 60);
    int64_t total = secs * 1000 + ms;
    if (total < 0 || total > EPOCH_MS_MAX) return -1;
    *out_ms = total;
    return 0;
}

int tf_event_parse_rfc3339(const char *s, size_t n, int64_t *out_ms) {
    return rfc3339_parse(s, n, out_ms);
}

/* ---- shapes: language, URL --------------------------------------------------------- */

/* RFC 5646 irregular grandfathered tags (the regular ones fit the generic grammar). */
static const char *const bcp47_irregular[] = {
    "en-GB-oed", "i-ami", "i-bnn",     "i-default", "i-enochian", "i-hak",
    "i-klingon", "i-lux", "i-mingo",   "i-navajo",  "i-pwn",      "i-tao",
    "i-tay",     "i-tsu", "sgn-BE-FR", "sgn-BE-NL", "sgn-CH-DE",
};

static bool ieq(const char *a, size_t n, const char *b) {
    if (strlen(b) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (to_lower(a[i]) != to_lower(b[i])) return false;
    return true;
}

static bool all_alpha(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_alpha(s[i])) return false;
    return true;
}

static bool all_digit(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i])) return false;
    return true;
}

/* Well-formed per the RFC 5646 ABNF (case-insensitive), at most 35 characters. */
static bool bcp47_ok(const char *s, size_t n) {
    if (n == 0 || n > LIM_LANGUAGE) return false;
    for (size_t i = 0; i < sizeof(bcp47_irregular) / sizeof(bcp47_irregular[0]); i++)
        if (ieq(s, n, bcp47_irregular[i])) return true;
    const char *tag[LIM_LANGUAGE / 2 + 1];
    size_t len[LIM_LANGUAGE / 2 + 1];
    size_t count = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '-') {
            if (!is_alnum(s[i])) return false;
            continue;
        }
        size_t l = i - start;
        if (l < 1 || l > 8) return false;
        tag[count] = s + start;
        len[count++] = l;
        start = i + 1;
    }
    size_t k = 0;
    if (!(len[0] == 1 && to_lower(tag[0][0]) == 'x')) {
        /* language */
        if (!all_alpha(tag[0], len[0]) || len[0] < 2) return false;
        bool short_lang = len[0] <= 3;
        k = 1;
        for (int ext = 0; short_lang && ext < 3 && k < count && len[k] == 3 && all_alpha(tag[k], 3);
             ext++)
            k++;
        if (k < count && len[k] == 4 && all_alpha(tag[k], 4)) k++; /* script */
        if (k < count &&
            ((len[k] == 2 && all_alpha(tag[k], 2)) || (len[k] == 3 && all_digit(tag[k], 3))))
            k++; /* region */
        while (k < count && (len[k] >= 5 || (len[k] == 4 && is_digit(tag[k][0]))))
            k++;
        while (k < count && len[k] == 1 && to_lower(tag[k][0]) != 'x') { /* extension */
            size_t first = ++k;
            while (k < count && len[k] >= 2)
                k++;
            if (k == first) return false;
        }
        if (k == count) return true;
        if (!(len[k] == 1 && to_lower(tag[k][0]) == 'x')) return false;
    }
    /* private use: x-1*8alphanum... */
    k++;
    if (k == count) return false;
    return true; /* every subtag is already 1..8 alphanumerics */
}

typedef enum { URL_HTTP, URL_ANY } url_kind_t;

/* Checks an absolute URL (NUL-terminated, n bytes): scheme "://" host..., the scheme
 * http or https for URL_HTTP, anything RFC 3986 allows for URL_ANY; the rest as
 * libcurl's URL parser accepts it. Returns 0, or 1 after recording an error, or -1 when
 * memory ran out. */
static int url_check(parse_t *p, field_t field, const char *s, size_t n, url_kind_t kind) {
    size_t i = 0;
    if (n == 0 || !is_alpha(s[0])) goto no_scheme;
    while (i < n && (is_alnum(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    if (i + 3 > n || s[i] != ':' || s[i + 1] != '/' || s[i + 2] != '/') goto no_scheme;
    if (kind == URL_HTTP && !ieq(s, i, "http") && !ieq(s, i, "https")) {
        fail(p, TF_REASON_BAD_URL, field_name(field), "expected an http or https URL");
        return 1;
    }
    if (i + 3 == n || s[i + 3] == '/' || s[i + 3] == '?' || s[i + 3] == '#') {
        fail(p, TF_REASON_BAD_URL, field_name(field), "URL has no host");
        return 1;
    }
    CURLU *url = curl_url();
    if (!url) return -1;
    CURLUcode rc =
        curl_url_set(url, CURLUPART_URL, s, kind == URL_ANY ? CURLU_NON_SUPPORT_SCHEME : 0);
    char *host = NULL;
    if (rc == CURLUE_OK) rc = curl_url_get(url, CURLUPART_HOST, &host, 0);
    bool has_host = rc == CURLUE_OK && host && host[0];
    curl_free(host);
    curl_url_cleanup(url);
    if (rc == CURLUE_OUT_OF_MEMORY) return -1;
    if (rc != CURLUE_OK || !has_host) {
        fail(p, TF_REASON_BAD_URL, field_name(field), "not a valid absolute URL (%s)",
             rc != CURLUE_OK ? curl_url_strerror(rc) : "no host");
        return 1;
    }
    return 0;
no_scheme:
    fail(p, TF_REASON_BAD_URL, field_name(field), "expected an absolute URL (scheme://host/...)");
    return 1;
}

/* ---- field values ------------------------------------------------------------------ */

/* A string field of min..max code points; null leaves it absent. */
static int take_string(parse_t *p, jkind_t kind, const char *s, size_t n, size_t min, size_t max,
                       const char **dst) {
    if (kind == J_NULL) return 1;
    if (kind != J_STRING) return wrong_type(p, p->field, "a string", kind);
    size_t chars = utf8_chars(s, n);
    if (chars < min) return fail(p, TF_REASON_TOO_LONG, field_name(p->field), "must not be empty");
    if (chars > max)
        return fail(p, TF_REASON_TOO_LONG, field_name(p->field),
                    "must be at most %zu characters, got %zu", max, chars);
    if (dst) *dst = store(p, s, n);
    return 1;
}

static int take_url(parse_t *p, jkind_t kind, const char *s, size_t n, url_kind_t url_kind,
                    const char **dst) {
    if (kind == J_NULL) return 1;
    if (kind != J_STRING) return wrong_type(p, p->field, "a string", kind);
    if (url_kind == URL_ANY && n == 0) return 1; /* document.referrer is "" when there is none */
    size_t chars = utf8_chars(s, n);
    if (chars > LIM_URL)
        return fail(p, TF_REASON_TOO_LONG, field_name(p->field),
                    "must be at most %d characters, got %zu", LIM_URL, chars);
    const char *copy = store(p, s, n);
    if (!copy) return 1;
    if (url_check(p, p->field, copy, n, url_kind) < 0) return out_of_memory(p);
    *dst = copy;
    return 1;
}

static int take_timestamp(parse_t *p, jkind_t kind, const char *s, size_t n) {
    static const char expected[] = "expected RFC 3339 with a time zone or epoch milliseconds";
    tf_event_t *ev = p->ev;
    if (kind == J_NULL) return 1;
    char shown[48];
    if (kind == J_STRING) {
        if (rfc3339_parse(s, n, &ev->timestamp_ms) != 0) {
            echo_copy(shown, sizeof(shown), s, n, 40);
            return fail(p, TF_REASON_BAD_TIMESTAMP, "timestamp",
                        "%s, from 1970 to 9999; got \"%s\"", expected, shown);
        }
        p->has_timestamp = true;
        return 1;
    }
    if (kind != J_NUMBER)
        return wrong_type(p, F_TIMESTAMP, "an RFC 3339 string or epoch milliseconds", kind);
    int64_t v;
    bool overflow;
    echo_copy(shown, sizeof(shown), s, n, 32);
    if (number_int(s, n, &v, &overflow) != 0)
        return fail(p, TF_REASON_BAD_TIMESTAMP, "timestamp",
                    "%s; epoch milliseconds must be an integer, got %s", expected, shown);
    if (overflow || v < 0 || v > EPOCH_MS_MAX)
        return fail(p, TF_REASON_BAD_TIMESTAMP, "timestamp",
                    "epoch milliseconds must be between 0 and %lld (year 9999), got %s",
                    (long long)EPOCH_MS_MAX, shown);
    ev->timestamp_ms = v;
    p->has_timestamp = true;
    return 1;
}

/* An integer field in lo..hi; null leaves it absent (*dst untouched). */
static int take_int(parse_t *p, jkind_t kind, const char *s, size_t n, int32_t lo, int32_t hi,
                    int32_t *dst) {
    if (kind == J_NULL) return 1;
    if (kind != J_NUMBER) return wrong_type(p, p->field, "an integer", kind);
    int64_t v;
    bool overflow;
    char shown[40];
    echo_copy(shown, sizeof(shown), s, n, 32);
    if (number_int(s, n, &v, &overflow) != 0)
        return fail(p, TF_REASON_WRONG_TYPE, field_name(p->field), "expected an integer, got %s",
                    shown);
    if (overflow || v < lo || v > hi)
        return fail(p, TF_REASON_OUT_OF_RANGE, field_name(p->field),
                    "must be an integer from %d to %d, got %s", (int)lo, (int)hi, shown);
    *dst = (int32_t)v;
    return 1;
}

static int take_time_on_page(parse_t *p, jkind_t kind, const char *s, size_t n) {
    if (kind == J_NULL) return 1;
    if (kind != J_NUMBER) return wrong_type(p, F_TIME_ON_PAGE, "a number", kind);
    number_shape_t sh;
    number_scan(s, n, &sh);
    double v = number_value(&sh);
    if (v < 0 || !(v <= TIME_ON_PAGE_MAX)) {
        char shown[40];
        echo_copy(shown, sizeof(shown), s, n, 32);
        return fail(p, TF_REASON_OUT_OF_RANGE, "timeOnPage",
                    "must be a number of seconds from 0 to 2147483647, got %s", shown);
    }
    p->ev->has_time_on_page = true;
    p->ev->time_on_page = v;
    return 1;
}

static int take_value(parse_t *p, jkind_t kind, const char *s, size_t n) {
    tf_event_t *ev = p->ev;
    if (kind == J_NULL) return 1;
    if (kind != J_NUMBER) return wrong_type(p, F_VALUE, "a number", kind);
    number_shape_t sh;
    number_scan(s, n, &sh);
    double v = number_value(&sh);
    if (v < 0 || !(v < VALUE_LIMIT) || !number_pg_ok(&sh)) {
        char shown[40];
        echo_copy(shown, sizeof(shown), s, n, 32);
        return fail(p, TF_REASON_OUT_OF_RANGE, "value",
                    "must be a number from 0 to 999999999999.99, got %s", shown);
    }
    const char *text = store(p, s, n);
    if (!text) return 1;
    ev->has_value = true;
    ev->value = v == 0 ? 0.0 : v; /* no -0 */
    ev->value_text = text;
    return 1;
}

static int take_upper_code(parse_t *p, jkind_t kind, const char *s, size_t n, size_t want,
                           tf_event_reason_t reason, const char *what, char *dst) {
    if (kind == J_NULL) return 1;
    if (kind != J_STRING) return wrong_type(p, p->field, "a string", kind);
    bool ok = n == want;
    for (size_t i = 0; ok && i < n; i++)
        ok = is_upper(s[i]);
    if (!ok) {
        char shown[24];
        echo_copy(shown, sizeof(shown), s, n, 16);
        return fail(p, reason, field_name(p->field), "expected %s, got \"%s\"", what, shown);
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 1;
}

/* A scalar value of a top-level field. */
static int top_value(parse_t *p, jkind_t kind, const char *s, size_t n, bool b) {
    tf_event_t *ev = p->ev;
    (void)b;
    switch (p->field) {
    case F_EVENT_ID: return take_string(p, kind, s, n, 1, LIM_ID, &ev->event_id);
    case F_VISITOR_ID: return take_string(p, kind, s, n, 1, LIM_ID, &ev->visitor_id);
    case F_USER_ID: return take_string(p, kind, s, n, 0, LIM_ID, &ev->user_id);
    case F_NAME: return take_string(p, kind, s, n, 0, LIM_NAME, &ev->name);
    case F_TITLE: return take_string(p, kind, s, n, 0, LIM_TITLE, &ev->title);
    case F_USER_AGENT: return take_string(p, kind, s, n, 0, LIM_USER_AGENT, &ev->user_agent);
    case F_PAGE_VIEW_ID: return take_string(p, kind, s, n, 0, LIM_ID, &ev->page_view_id);
    case F_IP: return take_string(p, kind, s, n, 0, LIM_IP, NULL);
    case F_URL: return take_url(p, kind, s, n, URL_HTTP, &ev->url);
    case F_REFERRER: return take_url(p, kind, s, n, URL_ANY, &ev->referrer);
    case F_TIMESTAMP: return take_timestamp(p, kind, s, n);
    case F_TIME_ON_PAGE: return take_time_on_page(p, kind, s, n);
    case F_VALUE: return take_value(p, kind, s, n);
    case F_SCROLL_DEPTH: return take_int(p, kind, s, n, 0, LIM_SCROLL_MAX, &ev->scroll_depth);
    case F_CURRENCY:
        return take_upper_code(p, kind, s, n, 3, TF_REASON_BAD_CURRENCY,
                               "an ISO 4217 code of 3 uppercase letters", ev->currency);
    case F_TYPE:
        if (kind == J_NULL) return 1;
        if (kind != J_STRING) return wrong_type(p, F_TYPE, "a string", kind);
        if (tf_event_type_parse(s, n, &ev->type) != 0) {
            char shown[40];
            echo_copy(shown, sizeof(shown), s, n, 32);
            return fail(p, TF_REASON_UNKNOWN_EVENT_TYPE, "type", "unknown event type \"%s\"",
                        shown);
        }
        p->has_type = true;
        return 1;
    case F_LANGUAGE:
        if (kind == J_NULL) return 1;
        if (kind != J_STRING) return wrong_type(p, F_LANGUAGE, "a string", kind);
        if (!bcp47_ok(s, n)) {
            char shown[48];
            echo_copy(shown, sizeof(shown), s, n, 40);
            return fail(p, TF_REASON_BAD_LANGUAGE, "language",
                        "expected a BCP 47 language tag of at most 35 characters, got \"%s\"",
                        shown);
        }
        ev->language = store(p, s, n);
        return 1;
    case F_CLIENT_HINTS:
    case F_SCREEN:
    case F_GEO:
    case F_PROPERTIES:
        if (kind == J_NULL) return 1;
        return wrong_type(p, p->field, "an object", kind);
    default: return 1; /* unknown fields are ignored */
    }
}

/* A scalar value inside clientHints, screen or geo. */
static int sub_value(parse_t *p, jkind_t kind, const char *s, size_t n, bool b) {
    tf_event_t *ev = p->ev;
    switch (p->field) {
    case F_CH_MOBILE:
        if (kind == J_NULL) return 1;
        if (kind != J_BOOL) return wrong_type(p, F_CH_MOBILE, "a boolean", kind);
        ev->ch_has_mobile = true;
        ev->ch_mobile = b;
        return 1;
    case F_CH_PLATFORM: return take_string(p, kind, s, n, 0, LIM_HINT, &ev->ch_platform);
    case F_CH_MODEL: return take_string(p, kind, s, n, 0, LIM_HINT, &ev->ch_model);
    case F_SCREEN_WIDTH: return take_int(p, kind, s, n, 1, LIM_SCREEN_MAX, &ev->screen_width);
    case F_SCREEN_HEIGHT: return take_int(p, kind, s, n, 1, LIM_SCREEN_MAX, &ev->screen_height);
    case F_GEO_COUNTRY: {
        char code[4];
        int rc = take_upper_code(p, kind, s, n, 2, TF_REASON_BAD_COUNTRY,
                                 "an ISO 3166-1 alpha-2 code of 2 uppercase letters", code);
        if (kind == J_STRING && !p->failed) ev->geo_country = store(p, code, 2);
        return rc;
    }
    case F_GEO_REGION: return take_string(p, kind, s, n, 0, LIM_GEO, &ev->geo_region);
    case F_GEO_CITY: return take_string(p, kind, s, n, 0, LIM_GEO, &ev->geo_city);
    default: return 1;
    }
}

/* ---- properties -------------------------------------------------------------------- */

static void props_print(void *ctx, const char *str, size_t len) {
    parse_t *p = ctx;
    tf_event_t *ev = p->ev;
    if (p->props_overflow || len + 1 > ev->buf_cap_ - p->used) {
        p->props_overflow = true;
        return;
    }
    memcpy(ev->buf_ + p->used, str, len);
    p->used += len;
}

static int gen_status(parse_t *p, yajl_gen_status st) {
    if (st == yajl_gen_status_ok && !p->props_overflow) return 1;
    return fail(p, TF_REASON_TOO_LARGE, "properties",
                "cannot be re-serialised within the message size");
}

static void props_end(parse_t *p) {
    yajl_gen_free(p->gen);
    p->gen = NULL;
    p->props_base = 0;
    if (p->failed) return;
    p->ev->buf_[p->used] = '\0'; /* props_print kept room for it */
    p->ev->properties_json = p->ev->buf_ + p->props_start;
    p->used++;
}

static int props_value(parse_t *p, jkind_t kind, const char *s, size_t n, bool b) {
    switch (kind) {
    case J_NULL: return gen_status(p, yajl_gen_null(p->gen));
    case J_BOOL: return gen_status(p, yajl_gen_bool(p->gen, b));
    case J_STRING: return gen_status(p, yajl_gen_string(p->gen, (const unsigned char *)s, n));
    case J_NUMBER: {
        number_shape_t sh;
        number_scan(s, n, &sh);
        if (!number_pg_ok(&sh)) {
            char shown[40];
            echo_copy(shown, sizeof(shown), s, n, 32);
            return fail(p, TF_REASON_OUT_OF_RANGE, "properties",
                        "number %s is beyond what PostgreSQL numeric can store", shown);
        }
        return gen_status(p, yajl_gen_number(p->gen, s, n));
    }
    default: return 1;
    }
}

/* ---- unknown keys ------------------------------------------------------------------ */

static uint32_t fnv1a(const unsigned char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

/* Remembers an unknown top-level key. Returns 1 if it is new, 0 if seen before, -1 when
 * memory ran out. The arena holds every key once; keys in total are shorter than the
 * message, so its size is the message length. */
static int ukey_add(parse_t *p, const unsigned char *key, size_t n) {
    if (p->ukey_count + 1 > p->ukey_cap / 2) {
        size_t cap = p->ukey_cap ? p->ukey_cap * 2 : 16;
        ukey_t *table = calloc(cap, sizeof(*table));
        if (!table) return -1;
        for (size_t i = 0; i < p->ukey_cap; i++) {
            if (!p->ukeys[i].hash) continue;
            size_t j = p->ukeys[i].hash & (cap - 1);
            while (table[j].hash)
                j = (j + 1) & (cap - 1);
            table[j] = p->ukeys[i];
        }
        free(p->ukeys);
        p->ukeys = table;
        p->ukey_cap = cap;
    }
    if (!p->arena) {
        p->arena_cap = p->message_len + 1;
        p->arena = malloc(p->arena_cap);
        if (!p->arena) return -1;
    }
    uint32_t h = fnv1a(key, n) | 1u; /* 0 marks an empty slot */
    size_t j = h & (p->ukey_cap - 1);
    for (; p->ukeys[j].hash; j = (j + 1) & (p->ukey_cap - 1)) {
        const ukey_t *k = &p->ukeys[j];
        if (k->hash == h && k->len == n && memcmp(p->arena + k->off, key, n) == 0) return 0;
    }
    if (n > p->arena_cap - p->arena_used) return -1; /* cannot happen: keys fit the message */
    memcpy(p->arena + p->arena_used, key, n);
    p->ukeys[j] = (ukey_t){h, (uint32_t)p->arena_used, (uint32_t)n};
    p->arena_used += n;
    p->ukey_count++;
    return 1;
}

/* ---- yajl callbacks ---------------------------------------------------------------- */

static int on_scalar(void *ctx, jkind_t kind, const char *s, size_t n, bool b) {
    parse_t *p = ctx;
    if (p->failed || p->skip_depth) return 1;
    if (p->props_base) return props_value(p, kind, s, n, b);
    if (p->depth == 0)
        return fail(p, TF_REASON_NOT_OBJECT, "", "the message must be a JSON object, got %s",
                    jkind_names[kind]);
    if (p->depth == 1) return top_value(p, kind, s, n, b);
    return sub_value(p, kind, s, n, b);
}

static int cb_null(void *ctx) { return on_scalar(ctx, J_NULL, NULL, 0, false); }
static int cb_boolean(void *ctx, int v) { return on_scalar(ctx, J_BOOL, NULL, 0, v != 0); }
static int cb_number(void *ctx, const char *s, size_t n) {
    return on_scalar(ctx, J_NUMBER, s, n, false);
}
static int cb_string(void *ctx, const unsigned char *s, size_t n) {
    return on_scalar(ctx, J_STRING, (const char *)s, n, false);
}

/* What a field's value must be, for wrong_type messages. */
static const char *expected_of(field_t field) {
    switch (field) {
    case F_CH_MOBILE: return "a boolean";
    case F_SCREEN_WIDTH:
    case F_SCREEN_HEIGHT:
    case F_SCROLL_DEPTH: return "an integer";
    case F_TIME_ON_PAGE:
    case F_VALUE: return "a number";
    case F_CLIENT_HINTS:
    case F_SCREEN:
    case F_GEO:
    case F_PROPERTIES: return "an object";
    case F_TIMESTAMP: return "an RFC 3339 string or epoch milliseconds";
    default: return "a string";
    }
}

static int on_open(void *ctx, bool is_map) {
    parse_t *p = ctx;
    if (p->failed) return 1;
    if (p->skip_depth) {
        p->depth++;
        return 1;
    }
    if (p->props_base) {
        p->depth++;
        if (p->depth - p->props_base + 1 > LIM_PROPS_DEPTH)
            return fail(p, TF_REASON_TOO_DEEP, "properties", "nested deeper than %d levels",
                        LIM_PROPS_DEPTH);
        return gen_status(p, is_map ? yajl_gen_map_open(p->gen) : yajl_gen_array_open(p->gen));
    }
    jkind_t kind = is_map ? J_MAP : J_ARRAY;
    if (p->depth == 0) {
        if (!is_map)
            return fail(p, TF_REASON_NOT_OBJECT, "", "the message must be a JSON object, got %s",
                        jkind_names[kind]);
        p->depth = 1;
        return 1;
    }
    if (p->field == F_UNKNOWN) {
        p->depth++;
        p->skip_depth = p->depth;
        return 1;
    }
    bool container_field = p->field == F_PROPERTIES || p->field == F_CLIENT_HINTS ||
                           p->field == F_SCREEN || p->field == F_GEO;
    if (p->depth >= 2 || !is_map || !container_field)
        return wrong_type(p, p->field, expected_of(p->field), kind);
    p->depth = 2;
    if (p->field == F_PROPERTIES) {
        p->gen = yajl_gen_alloc(NULL);
        if (!p->gen) return out_of_memory(p);
        yajl_gen_config(p->gen, yajl_gen_print_callback, props_print, p);
        p->props_base = 2;
        p->props_start = p->used;
        return gen_status(p, yajl_gen_map_open(p->gen));
    }
    if (p->field == F_CLIENT_HINTS) p->ev->has_client_hints = true;
    p->parent = p->field;
    p->sub_seen = 0;
    return 1;
}

static int cb_start_map(void *ctx) { return on_open(ctx, true); }
static int cb_start_array(void *ctx) { return on_open(ctx, false); }

static int on_close(void *ctx, bool is_map) {
    parse_t *p = ctx;
    if (p->failed) return 1;
    if (p->skip_depth) {
        if (p->depth-- == p->skip_depth) p->skip_depth = 0;
        return 1;
    }
    if (p->props_base) {
        int rc = gen_status(p, is_map ? yajl_gen_map_close(p->gen) : yajl_gen_array_close(p->gen));
        if (p->depth-- == p->props_base) props_end(p);
        return rc;
    }
    if (p->depth == 2) p->parent = F_UNKNOWN;
    p->depth--;
    p->field = F_UNKNOWN;
    return 1;
}

static int cb_end_map(void *ctx) { return on_close(ctx, true); }
static int cb_end_array(void *ctx) { return on_close(ctx, false); }

static int cb_map_key(void *ctx, const unsigned char *key, size_t n) {
    parse_t *p = ctx;
    if (p->failed || p->skip_depth) return 1;
    if (p->props_base) return gen_status(p, yajl_gen_string(p->gen, key, n));
    if (p->depth == 1) {
        p->field = field_lookup(F_UNKNOWN, key, n);
        if (p->field != F_UNKNOWN) {
            if (p->seen & (1u << p->field))
                return fail(p, TF_REASON_DUPLICATE_FIELD, field_name(p->field),
                            "appears more than once");
            p->seen |= 1u << p->field;
            return 1;
        }
        int added = ukey_add(p, key, n);
        if (added < 0) return out_of_memory(p);
        if (added == 0) {
            char shown[sizeof(p->err->field)];
            echo_copy(shown, sizeof(shown), (const char *)key, n, sizeof(shown) - 5);
            return fail(p, TF_REASON_DUPLICATE_FIELD, shown, "appears more than once");
        }
        p->ev->unknown_fields++;
        return 1;
    }
    p->field = field_lookup(p->parent, key, n);
    if (p->field != F_UNKNOWN) {
        uint32_t bit = 1u << (p->field - F_TOP_COUNT);
        if (p->sub_seen & bit)
            return fail(p, TF_REASON_DUPLICATE_FIELD, field_name(p->field),
                        "appears more than once");
        p->sub_seen |= bit;
    }
    return 1;
}

static const yajl_callbacks callbacks = {
    cb_null,      cb_boolean, NULL,       NULL,           cb_number,    cb_string,
    cb_start_map, cb_map_key, cb_end_map, cb_start_array, cb_end_array,
};

/* ---- entry point ------------------------------------------------------------------- */

static void set_error(tf_event_error_t *err, tf_event_reason_t reason, const char *field,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_error(tf_event_error_t *err, tf_event_reason_t reason, const char *field,
                      const char *fmt, ...) {
    parse_t p;
    memset(&p, 0, sizeof(p));
    p.err = err;
    va_list ap;
    va_start(ap, fmt);
    failv(&p, reason, field, fmt, ap);
    va_end(ap);
}

/* Reports a yajl syntax error with its byte offset and yajl's own words. */
static void syntax_error(tf_event_error_t *err, yajl_handle h, const char *data, size_t len,
                         size_t offset) {
    unsigned char *text = yajl_get_error(h, 0, (const unsigned char *)data, len);
    char what[160] = "malformed JSON";
    if (text) {
        size_t n = strlen((const char *)text);
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '.'))
            n--;
        echo_copy(what, sizeof(what), (const char *)text, n, sizeof(what) - 1);
        yajl_free_error(h, text);
    }
    set_error(err, TF_REASON_INVALID_JSON, "", "invalid JSON at byte %zu: %s", offset, what);
}

int tf_event_parse(tf_event_t *event, const char *data, size_t len, tf_event_error_t *err) {
    tf_event_error_t local_err;
    if (!err) err = &local_err;
    memset(err, 0, sizeof(*err));
    tf_event_reset(event);
    if (len > TF_EVENT_MAX_BYTES) {
        set_error(err, TF_REASON_TOO_LARGE, "", "message is %zu bytes, more than %d", len,
                  TF_EVENT_MAX_BYTES);
        return -1;
    }
    if (!data) {
        data = "";
        len = 0;
    }
    size_t bad_utf8 = utf8_invalid_at((const unsigned char *)data, len);
    if (bad_utf8 != SIZE_MAX) {
        set_error(err, TF_REASON_INVALID_UTF8, "", "invalid UTF-8 at byte %zu", bad_utf8);
        return -1;
    }
    const char *escape_what = NULL;
    size_t bad_escape = memchr(data, '\\', len)
                            ? bad_escape_at((const unsigned char *)data, len, &escape_what)
                            : SIZE_MAX;

    int rc = -1;
    parse_t parse;
    memset(&parse, 0, sizeof(parse));
    parse_t *p = &parse;
    p->ev = event;
    p->err = err;
    p->field = F_UNKNOWN;
    p->parent = F_UNKNOWN;
    p->message_len = len;
    yajl_handle h = NULL;
    const tf_event_t *ev = event;

    /* Every stored string is shorter than its JSON text (quotes, escapes), so the input
     * length bounds the storage; pointers handed out stay valid. */
    event->buf_cap_ = len + 16;
    event->buf_ = malloc(event->buf_cap_);
    if (!event->buf_) goto oom;
    if (bad_escape != SIZE_MAX) {
        /* Syntax errors still take precedence: parse on without storing anything. */
        set_error(err, TF_REASON_INVALID_UTF8, "", "%s at byte %zu", escape_what, bad_escape);
        p->failed = true;
    }
    h = yajl_alloc(&callbacks, NULL, p);
    if (!h) goto oom;
    yajl_status st = yajl_parse(h, (const unsigned char *)data, len);
    size_t offset = yajl_get_bytes_consumed(h);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
        offset = len;
    }
    if (p->oom) goto oom;
    if (st != yajl_status_ok) {
        syntax_error(err, h, data, len, offset);
        goto done;
    }
    if (p->failed) goto done;
    if (!ev->event_id)
        fail(p, TF_REASON_MISSING_FIELD, "eventId", "required field is missing (or null)");
    else if (!p->has_type)
        fail(p, TF_REASON_MISSING_FIELD, "type", "required field is missing (or null)");
    else if (!p->has_timestamp)
        fail(p, TF_REASON_MISSING_FIELD, "timestamp", "required field is missing (or null)");
    else if (!ev->visitor_id)
        fail(p, TF_REASON_MISSING_FIELD, "visitorId", "required field is missing (or null)");
    else if (ev->type == TF_EVENT_PAGE_VIEW && !ev->url)
        fail(p, TF_REASON_MISSING_FIELD, "url", "required for PAGE_VIEW events");
    else if (ev->has_value && !ev->currency[0])
        fail(p, TF_REASON_CURRENCY_REQUIRED, "currency", "required when value is present");
    if (!p->failed) rc = 0;
    goto done;
oom:
    memset(err, 0, sizeof(*err));
    err->reason = TF_REASON_OK;
    snprintf(err->message, sizeof(err->message), "out of memory while parsing the event");
    rc = -2;
done:
    if (h) yajl_free(h);
    if (p->gen) yajl_gen_free(p->gen);
    free(p->ukeys);
    free(p->arena);
    if (rc != 0) {
        tf_event_reset(event);
    } else {
        memset(err, 0, sizeof(*err));
    }
    return rc;
}
