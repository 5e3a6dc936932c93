/* sessionize.h — order-independent sessionization by event time (SPEC §4).
 *
 * A visitor's sessions are a pure function of the set of its events: sort them by
 * (time, eventId) and cut where the gap to the previous event is > timeout, where
 * the event is > maxDuration after the current session's first event, and (when
 * enabled) where the campaign changes or a local midnight is crossed. The module
 * keeps the events of recently active visitors in memory, recomputes a visitor's
 * sessions whenever it receives events for it (late ones included), and reports the
 * difference with what was last written, so the caller can apply it to PostgreSQL.
 *
 * Session ids are deterministic: a UUID derived from (visitorId, eventId of the
 * session's first event), so the same events give the same ids in any order, after
 * any restart. When a late event becomes a session's new first event, the session
 * gets a new id: the old one is reported deleted and its events re-pointed.
 *
 * Cut rules, checked in this order: INACTIVITY (gap to the previous event > timeout),
 * MAX_DURATION (> maxDuration after the current session's first event), MIDNIGHT (day_of
 * differs from the previous event's), CAMPAIGN (the event has a campaign_key other than
 * the session's campaign, which is the first non-NULL key seen in the session; an event
 * without campaign_key never splits). The first event starts FIRST, or INACTIVITY when
 * the visitor has earlier history. An eventId the visitor already has (new or stored) is
 * a duplicate: ignored and counted.
 *
 * Pure: no I/O, no clock. Memory is bounded by evicting idle visitors and trimming the
 * old sessions of visitors that never go idle; their state is reloaded by the caller
 * from storage when needed (see the load API). Not thread-safe: one thread at a time.
 *
 * Batch protocol (one call sequence per consumer batch):
 *   tf_sessionizer_add() for every valid event of the batch;
 *   tf_sessionizer_load_requests(): visitors whose stored state must be loaded;
 *   for each: tf_sessionizer_load_session()/tf_sessionizer_load_event(), then
 *   tf_sessionizer_loaded();
 *   tf_sessionizer_flush(): the changes to write;
 *   after the write committed: tf_sessionizer_commit(); if it failed:
 *   tf_sessionizer_abort() (touched visitors are forgotten and reloaded next time).
 */
#ifndef TF_SESSIONIZE_H
#define TF_SESSIONIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transforms/event.h"

typedef enum {
    TF_START_FIRST = 0,   /* the visitor's first session known */
    TF_START_INACTIVITY,  /* gap to the previous event > timeout */
    TF_START_MAX_DURATION,/* > maxDuration after the previous session's first event */
    TF_START_CAMPAIGN,    /* campaign changed (splitOnCampaign) */
    TF_START_MIDNIGHT,    /* local day changed (splitAtMidnight) */
} tf_start_reason_t;

/* "FIRST", "INACTIVITY", ... (the values stored in analytics_sessions."startReason"). */
const char *tf_start_reason_name(tf_start_reason_t reason);
/* Returns 0 and sets *out for a known name, -1 otherwise. */
int tf_start_reason_parse(const char *name, tf_start_reason_t *out);

/* Maps an event time to a local day number (for splitAtMidnight): two events are in
 * the same local day iff the function returns the same value. The caller supplies
 * it (time zone rules are data the caller loads); NULL means UTC days. */
typedef int64_t (*tf_day_of_fn)(int64_t epoch_ms, void *ud);

typedef struct tf_session_config_s {
    int64_t timeout_ms;          /* default 1800000 */
    int64_t max_duration_ms;     /* default 86400000 */
    bool split_on_campaign;      /* default false */
    bool split_at_midnight;      /* default false */
    tf_day_of_fn day_of;         /* NULL = UTC */
    void *day_of_ud;
    int64_t allowed_lateness_ms; /* eviction keeps visitors idle < timeout + this */
    uint32_t conversion_types;   /* bit (1u << tf_event_type_t) per conversion type */
    uint64_t hash_seed;          /* keys the internal hash tables against crafted ids: pass a
                                    random value; read by tf_sessionizer_new only (default 0) */
    size_t max_events;           /* cap on the events held; tf_sessionizer_add fails (-1)
                                    beyond it; 0 = the default, 20,000,000 */
} tf_session_config_t;

/* device_type of a session none of whose events carries a context (TF_DEVICE_UNKNOWN of
 * transforms/device.h). */
#define TF_SESS_DEVICE_UNKNOWN 4

/* Fills the defaults of SPEC §4 (conversion types PURCHASE, APPOINTMENT_COMPLETE,
 * LEAD, SIGN_UP, FORM_SUBMIT; lateness 1 h). */
void tf_session_config_default(tf_session_config_t *cfg);

/* Session-level fields taken from the session's first event: the attribution
 * fields (referrer, referrer_domain, utm_*) exactly as the first event with a context
 * has them (NULL stays NULL), the others from the first event by time that has them.
 * Strings may be NULL. device_type holds a
 * tf_device_type_t value (transforms/device.h); 0 = UNKNOWN is not assumed here. */
typedef struct tf_sess_context_s {
    const char *referrer, *referrer_domain;
    const char *utm_source, *utm_medium, *utm_campaign, *utm_term, *utm_content;
    int device_type;
    const char *browser, *browser_version, *os, *os_version, *user_agent;
    const char *country, *region, *city, *language;
    int32_t screen_width, screen_height; /* 0 = unknown */
} tf_sess_context_t;

/* What the sessionizer needs of one event. All pointers are borrowed for the call;
 * the sessionizer copies what it keeps. */
typedef struct tf_sess_event_s {
    const char *visitor_id;
    const char *event_id;
    int64_t ts_ms;
    tf_event_type_t type;
    const char *user_id;      /* NULL if absent */
    const char *path;         /* URL path for PAGE_VIEW (entry/exit page), else may be NULL */
    const char *campaign_key; /* utm_* and click ids of the event's URL, canonical; NULL if none */
    const char *page_view_id; /* PAGE_LEAVE/SCROLL: eventId of their page view (any session) */
    bool has_time_on_page;
    double time_on_page;      /* PAGE_LEAVE seconds (>= 0), floored to whole seconds */
    int32_t scroll_depth;     /* -1 when absent; clamped to 100 */
    const tf_sess_context_t *context; /* may be NULL (no session-level information) */
    uint64_t cookie;          /* caller's handle, returned in tf_sess_assign_t for new events */
} tf_sess_event_t;

typedef struct tf_session_s {
    char id[37];
    const char *visitor_id;
    const char *user_id;      /* latest non-null userId of the session, or NULL */
    int64_t started_at_ms, ended_at_ms;
    int32_t duration_s;       /* (ended - started) / 1000, rounded down */
    int32_t page_view_count, event_count;
    bool has_conversion;
    bool is_bounce;           /* not engaged: duration < 10 s, no conversion, < 2 page views */
    const char *entry_page, *exit_page; /* paths of first / last PAGE_VIEW, or NULL */
    tf_start_reason_t start_reason;
    tf_sess_context_t context;
} tf_session_t;

/* An event's session: for a new event (is_new, cookie = the caller's cookie) or a
 * stored event whose session changed (is_new false: re-point the stored row). */
typedef struct tf_sess_assign_s {
    const char *event_id;
    char session_id[37];
    bool is_new;
    tf_event_type_t type;
    uint64_t cookie;
} tf_sess_assign_t;

/* A page view whose derived fields are new or changed. */
typedef struct tf_page_view_update_s {
    const char *event_id; /* the PAGE_VIEW's eventId */
    char session_id[37];
    bool has_time_on_page;
    int32_t time_on_page_s; /* the largest PAGE_LEAVE value, else time to the session's next
                               event (both floored to seconds) */
    int32_t scroll_depth;   /* largest depth its PAGE_LEAVE/SCROLL events report, -1 when none */
    bool is_new;
} tf_page_view_update_t;

/* The result of tf_sessionizer_flush(). Owned by the sessionizer; valid until the
 * next commit/abort. */
typedef struct tf_sess_changes_s {
    const tf_session_t *upserts;   /* new or changed sessions (full rows) */
    size_t n_upserts;
    const char (*deletes)[37];     /* ids of sessions that no longer exist */
    size_t n_deletes;
    const tf_sess_assign_t *assigns;
    size_t n_assigns;
    const tf_page_view_update_t *page_views;
    size_t n_page_views;
    size_t n_duplicates;           /* events ignored because their eventId was known */
} tf_sess_changes_t;

/* A visitor whose stored state must be loaded before flush: its stored sessions with
 * endedAt >= a bound, and their events. The bound starts at since_ms, and the loader lowers
 * it
 *  - to the smallest endedAt of this visitor's stored sessions holding any of page_view_ids
 *    (eventIds that new PAGE_LEAVE/SCROLL events refer to and that are not held, e.g. a tab
 *    left open longer than the timeout; ids not stored are ignored), then
 *  - recursively, for every session with endedAt >= bound whose startReason is not FIRST or
 *    INACTIVITY, to the latest endedAt of the visitor's sessions ending strictly before its
 *    startedAt, or to its startedAt when none does (so its predecessor is loaded; this
 *    stays right when several sessions start and end in the same millisecond, which a
 *    "previous session by startedAt" does not).
 * The loaded sessions are thus always the visitor's most recent ones, and a chain cut by
 * MAX_DURATION, CAMPAIGN or MIDNIGHT is loaded from its start.
 * page_view_ids: strings and array owned by the sessionizer, valid until flush/abort. */
typedef struct tf_sess_load_request_s {
    const char *visitor_id;
    int64_t since_ms;
    const char *const *page_view_ids;
    size_t n_page_view_ids;
} tf_sess_load_request_t;

typedef struct tf_sessionizer_s tf_sessionizer_t;

/* Returns NULL when out of memory. cfg is copied. */
tf_sessionizer_t *tf_sessionizer_new(const tf_session_config_t *cfg);
void tf_sessionizer_destroy(tf_sessionizer_t *sz);

/* Replaces the configuration (reload); affects sessions recomputed from now on. */
void tf_sessionizer_set_config(tf_sessionizer_t *sz, const tf_session_config_t *cfg);

/* Adds a new event to the open batch. Returns 0 (also for a duplicate, counted in
 * n_duplicates), or -1 when out of memory, over cfg.max_events, for a NULL visitor_id or
 * event_id or an unknown type, or between flush and commit/abort. After -1, abort the batch. */
int tf_sessionizer_add(tf_sessionizer_t *sz, const tf_sess_event_t *ev)
    __attribute__((warn_unused_result));

/* The visitors of the open batch that need loading (array owned by sz, valid until
 * flush/abort); *n set to their number. A visitor held in memory is requested again when
 * a new event is earlier than what its last load covered, or when a new PAGE_LEAVE/SCROLL
 * refers to a page view it does not hold; what it held is then replaced by what is loaded.
 * Returns NULL (*n = 0) when out of memory: abort the batch. */
const tf_sess_load_request_t *tf_sessionizer_load_requests(tf_sessionizer_t *sz, size_t *n);

/* Stored state of a requested visitor: a stored session row, and a stored event with
 * the session it is stored in, in any order. For an event, ev->context may be NULL: the
 * stored session's context is then used. Page view fields are the stored ones. A stored
 * event with the eventId of a new event of the batch makes the new one a duplicate.
 * Loading a row twice is harmless. Return 0, or -1 when out of memory, when the visitor
 * was not requested (or is already marked loaded) or a session id is not a UUID. */
int tf_sessionizer_load_session(tf_sessionizer_t *sz, const tf_session_t *stored)
    __attribute__((warn_unused_result));
int tf_sessionizer_load_event(tf_sessionizer_t *sz, const tf_sess_event_t *ev,
                              const char *stored_session_id, bool pv_has_time_on_page,
                              int32_t pv_time_on_page_s, int32_t pv_scroll_depth)
    __attribute__((warn_unused_result));
/* Marks a requested visitor loaded; has_earlier_history: storage holds events of this
 * visitor before the loaded ones (so its first loaded session is not its FIRST). Returns
 * 0, or -1 when out of memory or the visitor was not requested. */
int tf_sessionizer_loaded(tf_sessionizer_t *sz, const char *visitor_id,
                          bool has_earlier_history) __attribute__((warn_unused_result));

/* Recomputes the touched visitors and fills *out. Returns 0, or -1: when a visitor that
 * needs loading was not loaded (a caller bug; nothing changed, load it or abort), on a
 * second flush, or when out of memory (the batch is then dropped as by
 * tf_sessionizer_abort). */
int tf_sessionizer_flush(tf_sessionizer_t *sz, tf_sess_changes_t *out)
    __attribute__((warn_unused_result));

/* The flushed changes were written: they become the new "last written" state. Without a
 * successful flush before it, acts as tf_sessionizer_abort (nothing was written). */
void tf_sessionizer_commit(tf_sessionizer_t *sz);
/* The write failed: drops the open batch and forgets the touched visitors. */
void tf_sessionizer_abort(tf_sessionizer_t *sz);

/* Forgets visitors whose last event is older than watermark_ms - (timeout +
 * allowed lateness), and, of the other visitors, the written sessions that ended before
 * that time (keeping each visitor's latest session; an event at or before the first kept
 * session then makes the visitor load again). Returns how many visitors were evicted.
 * Only between batches; one pass over the visitor table. */
size_t tf_sessionizer_evict(tf_sessionizer_t *sz, int64_t watermark_ms);

/* Visitors and events currently held, for metrics. */
size_t tf_sessionizer_visitor_count(const tf_sessionizer_t *sz);
size_t tf_sessionizer_event_count(const tf_sessionizer_t *sz);
/* Bytes currently allocated by the sessionizer (its own accounting, without the
 * allocator's per-block overhead), for metrics and capacity planning. */
size_t tf_sessionizer_memory_bytes(const tf_sessionizer_t *sz);
/* Testing hook (failure injection): after n more allocations, every allocation made by sz
 * fails until the hook is reset with n = -1 (the default). Lets tests make each allocation
 * fail in turn and check that every call fails cleanly. */
void tf_sessionizer_fail_allocs_after(tf_sessionizer_t *sz, long n);

/* Deterministic session id from the visitor and the eventId of its first event (both
 * non-NULL): the first 16 bytes of SHA-256(visitor_id, a NUL byte, first_event_id) with the
 * RFC 9562 version 8 and variant bits, as lowercase 8-4-4-4-12 text in out. */
void tf_session_id(const char *visitor_id, const char *first_event_id, char out[37]);

#endif
