/* loadgen_model.h — deterministic synthetic web-analytics traffic for an eyewear
 * shop with online sales and appointment booking: seed + options + user-agent
 * corpus -> a sequence of Kafka messages (key = visitorId, value = event JSON),
 * with optional disorder, exact duplicates and malformed messages of many kinds.
 * Pure: no I/O, no clock, no globals but constant tables; the same inputs give
 * byte-identical output on every run. */
#ifndef EV_LOADGEN_MODEL_H
#define EV_LOADGEN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "producers/ua_corpus.h"

#define LG_MAX_VISITORS 20000000LL
#define LG_MAX_DAYS 3660
#define LG_MAX_DISORDER_MS (7LL * 86400 * 1000)
#define LG_DEFAULT_START_MS 1767571200000LL /* 2026-01-05T00:00:00Z, a Monday */
#define LG_DEFAULT_SITE "https://shop.example.com"
#define LG_SESSION_GAP_MS (30LL * 60 * 1000) /* sessions are separated by more than this */
#define LG_REORDER_MAX_BYTES                                                                       \
    (1024LL * 1024 * 1024) /* disorder buffer; beyond it the window shrinks */

/* What a message is. Malformed kinds each break exactly one rule of SPEC §3. */
typedef enum {
    LG_KIND_VALID = 0,
    LG_KIND_DUPLICATE,            /* byte-identical copy of the previous valid event */
    LG_KIND_BAD_INVALID_JSON,     /* unquoted key, trailing comma, two objects */
    LG_KIND_BAD_TRUNCATED,        /* an event cut short */
    LG_KIND_BAD_NOT_OBJECT,       /* array, string, number, boolean */
    LG_KIND_BAD_WRONG_TYPE,       /* e.g. eventId as a number, screen.width as a string */
    LG_KIND_BAD_MISSING_EVENT_ID, /* absent or null */
    LG_KIND_BAD_MISSING_TYPE,
    LG_KIND_BAD_MISSING_TIMESTAMP,
    LG_KIND_BAD_MISSING_VISITOR_ID, /* the message has no key */
    LG_KIND_BAD_UNKNOWN_TYPE,       /* "PAGEVIEW", "page_view", ... */
    LG_KIND_BAD_TIMESTAMP,          /* no zone, impossible date, negative epoch, ... */
    LG_KIND_BAD_TOO_LONG, /* eventId/visitorId/title/name/userAgent over the limit, empty eventId */
    LG_KIND_BAD_URL,      /* PAGE_VIEW url not an absolute http(s) URL */
    LG_KIND_BAD_VALUE_NO_CURRENCY, /* value without currency */
    LG_KIND_BAD_CURRENCY,          /* currency not 3 uppercase letters */
    LG_KIND_BAD_OUT_OF_RANGE,      /* scrollDepth 150, screen width 0, negative value ... */
    LG_KIND_BAD_DEEP_PROPERTIES,   /* properties nested 12 deep */
    LG_KIND_BAD_INVALID_UTF8,      /* bad bytes inside a string */
    LG_KIND_BAD_OVERSIZE,          /* more than 64 KiB */
    LG_KIND_BAD_COUNTRY,           /* geo.country not ISO 3166-1 alpha-2 */
    LG_KIND_BAD_LANGUAGE,          /* language not a BCP 47 tag */
    LG_KIND_BAD_DUPLICATE_FIELD,   /* the same top-level key twice */
    LG_KIND_COUNT
} lg_kind_t;

#define LG_KIND_FIRST_BAD LG_KIND_BAD_INVALID_JSON

/* "valid", "duplicate", "invalid_json", "truncated", ...; NULL when out of range. */
const char *lg_kind_name(lg_kind_t kind);

/* Event type names in the order of the PostgreSQL enum "EventType" (index =
 * tf_event_type_t). */
#define LG_EVENT_TYPE_COUNT 23
const char *lg_event_type_name(int type);

typedef struct lg_options_s {
    uint64_t seed;
    int64_t start_ms;    /* first possible event time */
    int days;            /* visitors arrive and return within [start, start + days) */
    int hours;           /* when > 0, the window is this many hours instead (a burst:
                            every visitor active at about the same time) */
    long long visitors;  /* distinct visitors arriving in the window */
    int64_t disorder_ms; /* 0: event-time order; else each message is late by up to this */
    double dup_ratio;    /* share of duplicates among valid-event messages, [0, 0.9] */
    double bad_ratio;    /* share of malformed messages among all messages, [0, 0.9] */
    const char *site;    /* "https://host" without trailing slash; copied */
} lg_options_t;

/* Fills the defaults: seed 1, LG_DEFAULT_START_MS, 7 days, 1000 visitors, no noise. */
void lg_options_init(lg_options_t *opts);

/* One message. Pointers are owned by the model, valid until the next
 * lg_model_next call. */
typedef struct lg_message_s {
    lg_kind_t kind;
    const char *key; /* the visitorId, NULL when the message carries none */
    size_t key_len;
    const char *value;
    size_t value_len;
    int64_t event_time_ms; /* of the event (a malformed one: of the event it was made from) */
    uint64_t visitor;      /* 0-based number of the visitor */
    uint32_t session;      /* the visitor's 0-based session number */
    int event_type;        /* index into lg_event_type_name; -1 for malformed messages */
    uac_device_t device;
} lg_message_t;

typedef struct lg_stats_s {
    uint64_t messages;
    uint64_t by_kind[LG_KIND_COUNT];
    uint64_t by_event_type[LG_EVENT_TYPE_COUNT]; /* valid events, duplicates excluded */
    uint64_t visitors;                           /* visitors who have arrived */
    uint64_t visitors_by_device[UAC_DEVICE_COUNT];
    uint64_t sessions;
    uint64_t reorder_overflows; /* messages released early because the disorder buffer was full */
} lg_stats_t;

typedef struct lg_model_s lg_model_t;

/* Validates the options and creates the model. The corpus is borrowed (must
 * outlive the model) and needs at least one DESKTOP, MOBILE and TABLET agent
 * (BOT and UNKNOWN agents are optional: those visitors are then not generated).
 * Returns NULL with errstr filled on bad options or when out of memory. */
lg_model_t *lg_model_new(const lg_options_t *opts, const uac_corpus_t *corpus, char *errstr,
                         size_t errstr_size);
/* Frees the model; NULL is a no-op. */
void lg_model_destroy(lg_model_t *model);

/* Produces the next message. Returns 1 and fills *msg, 0 when the traffic is
 * over, -1 when memory ran out (the model can then only be destroyed). */
int lg_model_next(lg_model_t *model, lg_message_t *msg);

/* Counters of what lg_model_next has returned so far. */
void lg_model_stats(const lg_model_t *model, lg_stats_t *stats);

#endif
