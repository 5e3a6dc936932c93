/* event.h — the raw tracking event of SPEC §3: parsing and validation of one Kafka
 * message (bytes) into a typed event, or a precise, named error. Pure: no I/O. */
#ifndef TF_EVENT_H
#define TF_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TF_EVENT_MAX_BYTES 65536 /* a message larger than this is rejected */

/* Values in the order of the PostgreSQL enum "EventType". */
typedef enum {
    TF_EVENT_PAGE_VIEW = 0,
    TF_EVENT_PAGE_LEAVE,
    TF_EVENT_PRODUCT_VIEW,
    TF_EVENT_PRODUCT_LIST_VIEW,
    TF_EVENT_SEARCH,
    TF_EVENT_ADD_TO_CART,
    TF_EVENT_REMOVE_FROM_CART,
    TF_EVENT_CHECKOUT_START,
    TF_EVENT_PURCHASE,
    TF_EVENT_APPOINTMENT_START,
    TF_EVENT_APPOINTMENT_COMPLETE,
    TF_EVENT_APPOINTMENT_CANCEL,
    TF_EVENT_FORM_START,
    TF_EVENT_FORM_SUBMIT,
    TF_EVENT_LEAD,
    TF_EVENT_SIGN_UP,
    TF_EVENT_LOGIN,
    TF_EVENT_CLICK,
    TF_EVENT_SCROLL,
    TF_EVENT_OUTBOUND_CLICK,
    TF_EVENT_FILE_DOWNLOAD,
    TF_EVENT_VIDEO_PLAY,
    TF_EVENT_CUSTOM,
    TF_EVENT_TYPE_COUNT
} tf_event_type_t;

/* "PAGE_VIEW" etc.; NULL for an out-of-range value. */
const char *tf_event_type_name(tf_event_type_t type);
/* Exact, case-sensitive match of len bytes; 0 and *out set on success, -1 if unknown. */
int tf_event_type_parse(const char *name, size_t len, tf_event_type_t *out);

/* Parses n bytes of an RFC 3339 date-time with a zone, as the timestamp field (any
 * number of fraction digits, truncated to ms; ss = 60 is the next minute's first
 * second). Returns 0 and sets *out_ms (ms since the epoch, >= 0), or -1. */
int tf_event_parse_rfc3339(const char *s, size_t n, int64_t *out_ms)
    __attribute__((warn_unused_result));

/* Why a message was rejected. The code strings (tf_event_reason_code) are stable:
 * they go into the DLQ header "evpipe.reason" and the metrics labels. */
typedef enum {
    TF_REASON_OK = 0,
    TF_REASON_TOO_LARGE,          /* "too_large": more than TF_EVENT_MAX_BYTES */
    TF_REASON_INVALID_UTF8,       /* "invalid_utf8" */
    TF_REASON_INVALID_JSON,       /* "invalid_json": not parseable JSON */
    TF_REASON_NOT_OBJECT,         /* "not_object": top level is not an object */
    TF_REASON_MISSING_FIELD,      /* "missing_field": a required field is absent or null */
    TF_REASON_WRONG_TYPE,         /* "wrong_type": e.g. a number where a string is required */
    TF_REASON_UNKNOWN_EVENT_TYPE, /* "unknown_event_type" */
    TF_REASON_BAD_TIMESTAMP,      /* "bad_timestamp": not RFC 3339 with zone, nor epoch ms >= 0 */
    TF_REASON_TOO_LONG,           /* "too_long": a string over its length limit (or empty when 1.. is required) */
    TF_REASON_OUT_OF_RANGE,       /* "out_of_range": a number outside its range */
    TF_REASON_BAD_URL,            /* "bad_url": url/referrer not an absolute http(s) URL */
    TF_REASON_BAD_CURRENCY,       /* "bad_currency": not 3 uppercase ASCII letters */
    TF_REASON_CURRENCY_REQUIRED,  /* "currency_required": value without currency */
    TF_REASON_TOO_DEEP,           /* "too_deep": properties nested deeper than 8 */
    TF_REASON_BAD_COUNTRY,        /* "bad_country": geo.country not 2 uppercase letters */
    TF_REASON_BAD_LANGUAGE,       /* "bad_language": not a BCP 47 tag (<= 35 chars) */
    TF_REASON_DUPLICATE_FIELD,    /* "duplicate_field": the same top-level key twice */
    TF_REASON_COUNT
} tf_event_reason_t;

/* "too_large" etc. (the comments above); NULL for an out-of-range value. */
const char *tf_event_reason_code(tf_event_reason_t reason);

typedef struct tf_event_error_s {
    tf_event_reason_t reason;
    char field[48];    /* the offending field, dotted ("screen.width"), or "" */
    char message[256]; /* human sentence naming the field, e.g. "eventId is required" */
} tf_event_error_t;

/* A parsed, valid event. Strings are NUL-terminated UTF-8 owned by the event (one
 * buffer, released by tf_event_reset), NULL when absent. Plain value type. */
typedef struct tf_event_s {
    const char *event_id;
    tf_event_type_t type;
    int64_t timestamp_ms; /* event time, ms since epoch (RFC 3339 fractions truncated to ms) */
    const char *visitor_id;
    const char *user_id;
    const char *name;
    const char *url;
    const char *referrer;
    const char *title;
    const char *user_agent;
    bool has_client_hints;
    bool ch_has_mobile, ch_mobile;
    const char *ch_platform;
    const char *ch_model;
    int32_t screen_width, screen_height; /* 0 when absent */
    const char *language;
    const char *geo_country, *geo_region, *geo_city;
    const char *page_view_id;
    bool has_time_on_page;
    double time_on_page; /* seconds >= 0 */
    int32_t scroll_depth; /* 0..100, -1 when absent */
    bool has_value;
    double value;           /* >= 0 */
    const char *value_text; /* the number exactly as sent, for NUMERIC columns */
    char currency[4];       /* "" when absent */
    const char *properties_json; /* the properties object re-serialised as compact JSON, or NULL */
    uint32_t unknown_fields;     /* top-level fields not in SPEC §3 (ignored, counted) */

    char *buf_;      /* private: storage of the strings */
    size_t buf_cap_; /* private */
} tf_event_t;

/* Initialises an empty event (no allocation). */
void tf_event_init(tf_event_t *event);

/* Releases what the event holds and makes it empty again. Safe on an empty event. */
void tf_event_reset(tf_event_t *event);

/* The rules tf_event_parse enforces (SPEC §3). Lengths count Unicode code points
 * (characters), not bytes.
 * - At most TF_EVENT_MAX_BYTES bytes (too_large). Strict UTF-8: no overlong forms, no
 *   surrogates, nothing above U+10FFFF; and no \u0000 or unpaired surrogate escape
 *   anywhere, since PostgreSQL text and jsonb cannot store them (invalid_utf8). Exactly
 *   one JSON value (invalid_json), an object (not_object). No key twice at the top level,
 *   nor inside clientHints, screen or geo (duplicate_field); "properties" keeps
 *   duplicates as sent (jsonb keeps the last).
 * - Required: eventId 1-128, type (exact EventType name), timestamp, visitorId 1-128.
 *   timestamp is RFC 3339 "YYYY-MM-DD(T|t)hh:mm:ss[.digits](Z|z|+hh:mm|-hh:mm)" (any
 *   number of fraction digits, truncated to ms; ss = 60 is the next minute's first second,
 *   as in PostgreSQL), or an integer of epoch milliseconds (no fraction, no exponent);
 *   either way from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z.
 * - Optional; JSON null is the same as absent: userId <= 128, name <= 256, title <= 1024,
 *   userAgent <= 2048, pageViewId <= 128, ip <= 64 (checked, not kept); url an absolute
 *   http(s) URL <= 4096 (required for PAGE_VIEW); referrer any scheme://host URL <= 4096,
 *   "" meaning none (as document.referrer); clientHints {mobile bool, platform <= 128,
 *   model <= 128}; screen {width, height: integers 1-20000, each optional}; language a
 *   well-formed BCP 47 tag <= 35; geo {country: 2 uppercase ASCII letters, region <= 128,
 *   city <= 128}; timeOnPage a number 0..2147483647 (page_views."timeOnPage" is INT);
 *   scrollDepth an integer 0..100; value a number 0..999999999999.99 (must fit
 *   NUMERIC(14,2)), its text kept in value_text; currency 3 uppercase ASCII letters,
 *   required when value is present; properties an object nested at most 8 levels (the
 *   object itself is level 1; arrays count), numbers within PostgreSQL numeric's range.
 *   URLs are checked with libcurl's URL parser and kept as sent.
 * - Unknown top-level fields are ignored and counted; unknown members of clientHints,
 *   screen and geo are ignored.
 * - The error reported: invalid_json wins wherever it is; otherwise the first broken rule
 *   in document order; the required-field and cross-field checks (url for PAGE_VIEW,
 *   currency with value) come last. Messages start with the field: "timestamp: ...".
 * A struct copy of an event shares its buffer: reset only one of the copies. */

/* Parses and validates one message of len bytes (not NUL-terminated; any bytes).
 * Returns 0 and fills *event (previous content released) on success. On failure
 * returns -1, fills *err (always), and leaves *event empty. Never reads past len.
 * Returns -2 only when memory ran out (err->reason = TF_REASON_OK, message says so):
 * that is not the message's fault and must not dead-letter it.
 * err may be NULL; on success it is cleared (TF_REASON_OK, empty field and message).
 * data may be NULL when len is 0. Thread-safe: no shared state. */
int tf_event_parse(tf_event_t *event, const char *data, size_t len, tf_event_error_t *err)
    __attribute__((warn_unused_result));

#endif
