/* pg_sink.h — the ingest stage's PostgreSQL writer: sessions, events, page views,
 * conversions and consumer offsets in one transaction per batch, and the loader that
 * rebuilds the sessionizer's state from the stored rows (SPEC §4).
 *
 * Error classes (sink_pg_error_t.status), so the consumer can choose what to do:
 *   SINK_PG_TRANSIENT  the server is unreachable or the connection broke (also mid-
 *                      transaction), serialization failure, deadlock, admin shutdown,
 *                      too many connections... (SQLSTATE classes 08, 40, 53, 55, 57,
 *                      58): nothing was written; retry the same call later. The next
 *                      call reconnects.
 *                      Also TRANSIENT: a unique violation (23505) on
 *                      analytics_events_eventId_key or page_views_eventId_key while the
 *                      batch's new rows are copied in, i.e. another writer committed the
 *                      same eventId between this write's check for stored eventIds and its
 *                      COPY; the retry finds that row stored and leaves the event out.
 *   SINK_PG_DATA       a row of the batch is rejected by the database (classes 22 and
 *                      23 other than the handled duplicates, 54 such as an index row too
 *                      large): nothing was written; the caller bisects the batch to find
 *                      the offending message and dead-letters it.
 *   SINK_PG_CONFLICT   a new event's eventId belongs to another visitor: it is stored
 *                      for another visitor, or an earlier event of the batch (lower
 *                      index in events[]) has it (see sink_pg_write): nothing was
 *                      written; the flagged events cannot be stored (the eventId is
 *                      taken), the caller writes the batch again without them.
 *   SINK_PG_FATAL      schema missing, permission denied, or a caller bug (an assign
 *                      whose cookie is not an index of the events array...): stop.
 *
 * Every write is one transaction, offsets included: it commits whole or not at all.
 * A sink_pg_t is a single connection and is not thread-safe. Each connection keeps
 * temporary staging tables and prepared statements, so it needs a session of its own
 * (a direct connection, or a pooler in session mode, not transaction mode). */
#ifndef SINK_PG_SINK_H
#define SINK_PG_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transforms/event.h"
#include "transforms/sessionize.h"

typedef struct sink_pg_s sink_pg_t;

typedef enum {
    SINK_PG_OK = 0,
    SINK_PG_TRANSIENT,
    SINK_PG_DATA,
    SINK_PG_CONFLICT,
    SINK_PG_FATAL,
} sink_pg_status_t;

typedef struct sink_pg_error_s {
    sink_pg_status_t status;
    char sqlstate[6]; /* "23505", or "" when the error did not come from the server */
    char message[512];
} sink_pg_error_t;

/* "ok", "transient", "data", "conflict", "fatal". */
const char *sink_pg_status_name(sink_pg_status_t status);

/* Creates a sink for conninfo (any libpq conninfo string or postgresql:// URL). Does
 * not connect: the first call that needs the server connects, and a broken connection
 * is re-established by the next call. Client defaults (overridable in conninfo):
 * connect_timeout=10, TCP keepalives, application_name=evpipe; client_encoding is
 * always UTF8. Returns NULL with errstr filled when conninfo cannot be parsed or
 * memory runs out. */
sink_pg_t *sink_pg_new(const char *conninfo, char *errstr, size_t errstr_size);

/* Closes the connection and frees the sink. NULL is a no-op. */
void sink_pg_destroy(sink_pg_t *s);

/* Connects if needed (creating the connection's staging tables and prepared
 * statements) and checks the connection with a round trip. Returns 0, or -1 with *err
 * filled: TRANSIENT when the server cannot be reached, FATAL when the schema is missing
 * (migrations not applied: SQLSTATE 42704/42P01). A connection the server closed while
 * it was idle (restart, idle timeout) is re-established within any call, silently. */
int sink_pg_ping(sink_pg_t *s, sink_pg_error_t *err) __attribute__((warn_unused_result));

/* Reads the stored next offsets of (group, topic, partitions[i]) into offsets[i],
 * -1 for a partition without a stored offset. Returns 0, or -1 with *err filled
 * (offsets then untouched). */
int sink_pg_read_offsets(sink_pg_t *s, const char *group, const char *topic,
                         const int32_t *partitions, int64_t *offsets, size_t n,
                         sink_pg_error_t *err) __attribute__((warn_unused_result));

/* Loads the stored state the sessionizer asks for (tf_sessionizer_load_requests), for
 * all n requests at once with a fixed number of queries (three, whatever n): for each
 * visitor its sessions with "endedAt" >= a bound, computed in one recursive statement as
 * tf_sess_load_request_t specifies: since_ms, lowered to the "endedAt" of the visitor's
 * stored sessions holding any of page_view_ids (ids stored for another visitor, or not
 * stored, are ignored), then, until it stops moving, to the latest "endedAt" strictly
 * before the "startedAt" of every selected session whose "startReason" is not FIRST or
 * INACTIVITY (or to that "startedAt" when none, so sessions starting and ending in the
 * same millisecond bring their real predecessor along); the events of those sessions (a PAGE_VIEW with its page_views timeOnPage/scrollDepth);
 * and whether the visitor has older sessions. Calls tf_sessionizer_load_session for
 * every loaded session, then tf_sessionizer_load_event for every event (context NULL:
 * the stored session's context applies; campaign_key recomputed from the stored URL),
 * then tf_sessionizer_loaded for every request. Reads in one REPEATABLE READ
 * transaction. Returns 0, or -1 with *err filled; on failure some visitors may be
 * half-loaded: the caller aborts the sessionizer batch (tf_sessionizer_abort) and
 * retries. Running out of memory in the sessionizer is reported as SINK_PG_FATAL. */
int sink_pg_load(sink_pg_t *s, tf_sessionizer_t *sz, const tf_sess_load_request_t *reqs,
                 size_t n, sink_pg_error_t *err) __attribute__((warn_unused_result));

/* One new event of the batch, as parsed. */
typedef struct sink_pg_event_row_s {
    const tf_event_t *event; /* borrowed */
    const char *path;        /* URL path (as sent, no query/fragment), or NULL */
    int64_t received_at_ms;  /* Kafka message timestamp */
} sink_pg_event_row_t;

/* A batch to write. Everything is borrowed for the call. */
typedef struct sink_pg_batch_s {
    /* The new events, indexed by the sessionizer cookie: an assign with is_new refers
     * to events[assign.cookie]. May be NULL when n_events is 0. */
    const sink_pg_event_row_t *events;
    size_t n_events;
    /* The sessionizer's flush result, or NULL for a batch without valid events (only
     * offsets are then stored). */
    const tf_sess_changes_t *changes;
    uint32_t conversion_types; /* bit (1u << tf_event_type_t) per conversion type */
    const char *group, *topic; /* consumer group and source topic of the offsets */
    const int32_t *partitions; /* the batch's partitions and their next offsets */
    const int64_t *next_offsets;
    size_t n_offsets;
    /* NULL, or n_events flags the write sets (true) for every event refused as
     * SINK_PG_CONFLICT, and leaves alone otherwise. */
    bool *conflicts;
} sink_pg_batch_t;

/* Writes the whole batch in ONE transaction, or nothing:
 *   1. sessions upserted (every column; "updatedAt" = now() on update);
 *   2. new events inserted (ON CONFLICT ("eventId") DO NOTHING: a replayed batch adds
 *      nothing);
 *   3. re-pointed stored events moved to their new session in analytics_events,
 *      page_views and conversion_events, and the attribution copied into the
 *      conversions of every upserted session refreshed;
 *   4. page views: new ones inserted (url, path, title, referrer, viewedAt, visitorId
 *      from their event) or their derived fields updated, changed stored ones updated;
 *   5. conversions: new events whose type bit is in conversion_types, with value
 *      (NUMERIC from value_text), currency, metadata = properties and the session's
 *      utmSource/utmMedium/utmCampaign (ON CONFLICT DO NOTHING);
 *   6. deleted sessions removed (after the re-pointing);
 *   7. consumer_offsets upserted for every (partition, next offset);
 * then COMMIT. Rows travel as COPY data and bound parameters only. Returns 0, or -1
 * with *err filled and the transaction rolled back.
 * How: inside the transaction one indexed query finds which of the batch's new eventIds
 * (and new page views and conversions) are already stored, and for which visitor; the
 * others are COPied straight into analytics_events and page_views (row ids made by the
 * sink, random version 4 UUIDs as the columns' default). A stored new page view is
 * updated (sessionId, timeOnPage, scrollDepth) when it is the same visitor's.
 * eventIds are unique across visitors (the first stored wins): a new event whose eventId
 * is stored in analytics_events, page_views or conversion_events for another visitor,
 * or that an event of another visitor with a lower index in events[] has, fails the
 * write as SINK_PG_CONFLICT (before connecting for the batch's own ones), with
 * b->conflicts[i] set for each such event i; the caller's sessionizer state holds them,
 * so it must abort, and write the batch again without them. The same visitor's eventId
 * listed twice is written once (the first); the same visitor's new page view listed
 * twice is a caller bug (FATAL, before connecting). Statements without input (no
 * re-pointed events, no page view changes, no conversions, no deletes, no offsets) are
 * not sent. */
int sink_pg_write(sink_pg_t *s, const sink_pg_batch_t *b, sink_pg_error_t *err)
    __attribute__((warn_unused_result));

/* Counters since creation. Row counts are rows the database reported changed by
 * committed transactions only. */
typedef struct sink_pg_stats_s {
    uint64_t transactions;        /* committed write transactions */
    uint64_t failed_writes;       /* sink_pg_write calls that rolled back */
    uint64_t transient_errors;    /* calls failed as TRANSIENT (each one means a retry) */
    uint64_t data_errors;         /* calls failed as DATA */
    uint64_t conflict_errors;     /* calls failed as CONFLICT */
    uint64_t fatal_errors;        /* calls failed as FATAL */
    uint64_t connects;            /* successful connections (1 + reconnections) */
    uint64_t sessions_upserted;
    uint64_t sessions_deleted;
    uint64_t events_inserted;
    uint64_t events_repointed;    /* analytics_events rows moved to another session */
    uint64_t page_views_written;  /* inserted or updated */
    uint64_t conversions_inserted;
    uint64_t offsets_written;
    uint64_t loads;               /* successful sink_pg_load calls */
    uint64_t loaded_sessions;
    uint64_t loaded_events;
    uint64_t existence_rechecks;  /* writes redone with the stored-eventId probe (see
                                     sink_pg_write) */
} sink_pg_stats_t;

void sink_pg_stats(const sink_pg_t *s, sink_pg_stats_t *out);

#endif
