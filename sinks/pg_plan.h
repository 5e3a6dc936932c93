/* pg_plan.h — how the PostgreSQL sink splits a batch by destination before sending
 * anything: the distinct new events (the batch's earliest message of each eventId), the
 * new page views, and which events another visitor's eventId refuses. Internal to
 * sinks/pg_sink_write.c; pure (no I/O). */
#ifndef SINK_PG_PLAN_H
#define SINK_PG_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sinks/pg_sink.h"

/* eventId -> index, open addressing; sized once for the batch (at most half full). */
typedef struct sink_pg_strmap_s {
    const char **keys;
    size_t *vals;
    size_t mask;
} sink_pg_strmap_t;

/* The index stored for key, or SIZE_MAX when absent. */
size_t sink_pg_strmap_get(const sink_pg_strmap_t *m, const char *key);

/* The batch split by destination, computed before anything is sent. */
typedef struct sink_pg_plan_s {
    size_t *events;             /* assign index of each distinct new eventId (its
                                   earliest message in the batch) */
    bool *event_stored;         /* per events[]: the eventId is already in analytics_events */
    size_t n_events, n_moved, n_conversions;
    sink_pg_strmap_t event_map; /* eventId -> position in events[] */
    size_t *pvs;                /* page_views index of each new page view whose event is new */
    size_t *pv_event;           /* per pvs[]: position of its event in events[] */
    bool *pv_stored;            /* per pvs[]: a page_views row with its eventId exists */
    size_t n_pvs, n_pv_changes;
    sink_pg_strmap_t pv_map;    /* eventId -> position in pvs[] */
} sink_pg_plan_t;

/* Fills *pl from a validated batch (sink_pg_write's checks). Returns 0, or -1 with *err
 * filled: CONFLICT when events of different visitors share an eventId (each but the
 * earliest flagged in b->conflicts), FATAL when out of memory or one visitor's new page
 * view is listed twice (no single row can satisfy that). *pl is to be freed either way. */
int sink_pg_plan_init(const sink_pg_batch_t *b, sink_pg_plan_t *pl, sink_pg_error_t *err)
    __attribute__((warn_unused_result));

/* Frees what *pl holds and zeroes it. */
void sink_pg_plan_free(sink_pg_plan_t *pl);

/* Whether type's bit is in types (sink_pg_batch_t.conversion_types). */
bool sink_pg_is_conversion(uint32_t types, tf_event_type_t type);

/* The event of a new assign of b. */
const tf_event_t *sink_pg_assign_event(const sink_pg_batch_t *b, const tf_sess_assign_t *a);

/* The event in position k of pl->events. */
const tf_event_t *sink_pg_plan_event(const sink_pg_batch_t *b, const sink_pg_plan_t *pl,
                                     size_t k);

/* Flags b->events[cookie] as refused for an eventId of another visitor (b->conflicts). */
void sink_pg_flag_conflict(const sink_pg_batch_t *b, uint64_t cookie);

#endif
