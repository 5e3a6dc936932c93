/* pg_plan.c — which rows of a sink batch go where (see pg_plan.h). */
#include "sinks/pg_plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void plan_error(sink_pg_error_t *err, sink_pg_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void plan_error(sink_pg_error_t *err, sink_pg_status_t status, const char *fmt, ...) {
    err->status = status;
    err->sqlstate[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

/* ---- eventId -> index ----------------------------------------------------------------- */

static int strmap_init(sink_pg_strmap_t *m, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    m->keys = calloc(cap, sizeof(*m->keys));
    m->vals = calloc(cap, sizeof(*m->vals));
    m->mask = cap - 1;
    return m->keys && m->vals ? 0 : -1;
}

static void strmap_free(sink_pg_strmap_t *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

static size_t str_hash(const char *str) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return (size_t)(h ^ (h >> 32));
}

size_t sink_pg_strmap_get(const sink_pg_strmap_t *m, const char *key) {
    for (size_t i = str_hash(key) & m->mask; m->keys[i]; i = (i + 1) & m->mask)
        if (strcmp(m->keys[i], key) == 0) return m->vals[i];
    return SIZE_MAX;
}

/* Stores key -> val unless key is present; returns the index already stored, or
 * SIZE_MAX when val was stored. key is borrowed. The map never fills: it holds at most
 * the n of strmap_init. */
static size_t strmap_add(sink_pg_strmap_t *m, const char *key, size_t val) {
    size_t i = str_hash(key) & m->mask;
    for (; m->keys[i]; i = (i + 1) & m->mask)
        if (strcmp(m->keys[i], key) == 0) return m->vals[i];
    m->keys[i] = key;
    m->vals[i] = val;
    return SIZE_MAX;
}

/* ---- the plan --------------------------------------------------------------------------- */

void sink_pg_plan_free(sink_pg_plan_t *pl) {
    free(pl->events);
    free(pl->event_stored);
    free(pl->pvs);
    free(pl->pv_event);
    free(pl->pv_stored);
    strmap_free(&pl->event_map);
    strmap_free(&pl->pv_map);
    memset(pl, 0, sizeof(*pl));
}

bool sink_pg_is_conversion(uint32_t types, tf_event_type_t type) {
    return (unsigned)type < 32 && (types >> (unsigned)type) & 1u;
}

const tf_event_t *sink_pg_assign_event(const sink_pg_batch_t *b, const tf_sess_assign_t *a) {
    return b->events[a->cookie].event;
}

const tf_event_t *sink_pg_plan_event(const sink_pg_batch_t *b, const sink_pg_plan_t *pl,
                                     size_t k) {
    return sink_pg_assign_event(b, &b->changes->assigns[pl->events[k]]);
}

void sink_pg_flag_conflict(const sink_pg_batch_t *b, uint64_t cookie) {
    if (b->conflicts) b->conflicts[cookie] = true;
}

/* Flags the new events whose eventId an earlier event (lower cookie) of another
 * visitor has; pl->events[] already holds the earliest event of each eventId. Returns
 * how many were flagged. */
static size_t flag_batch_conflicts(const sink_pg_batch_t *b, const sink_pg_plan_t *pl) {
    const tf_sess_changes_t *c = b->changes;
    size_t n = 0;
    for (size_t i = 0; i < c->n_assigns; i++) {
        const tf_sess_assign_t *a = &c->assigns[i];
        if (!a->is_new) continue;
        const tf_event_t *ev = sink_pg_assign_event(b, a);
        size_t k = sink_pg_strmap_get(&pl->event_map, ev->event_id);
        const tf_event_t *first = sink_pg_plan_event(b, pl, k);
        if (strcmp(first->visitor_id, ev->visitor_id) == 0) continue;
        sink_pg_flag_conflict(b, a->cookie);
        n++;
    }
    return n;
}

int sink_pg_plan_init(const sink_pg_batch_t *b, sink_pg_plan_t *pl, sink_pg_error_t *err) {
    memset(pl, 0, sizeof(*pl));
    const tf_sess_changes_t *c = b->changes;
    if (!c) return 0;
    size_t na = c->n_assigns, np = c->n_page_views;
    pl->events = malloc((na ? na : 1) * sizeof(*pl->events));
    pl->event_stored = calloc(na ? na : 1, sizeof(*pl->event_stored));
    pl->pvs = malloc((np ? np : 1) * sizeof(*pl->pvs));
    pl->pv_event = malloc((np ? np : 1) * sizeof(*pl->pv_event));
    pl->pv_stored = calloc(np ? np : 1, sizeof(*pl->pv_stored));
    if (!pl->events || !pl->event_stored || !pl->pvs || !pl->pv_event || !pl->pv_stored ||
        strmap_init(&pl->event_map, na) != 0 || strmap_init(&pl->pv_map, np) != 0) {
        plan_error(err, SINK_PG_FATAL, "batch: out of memory");
        return -1;
    }
    bool shared = false; /* an eventId is new twice */
    for (size_t i = 0; i < na; i++) {
        const tf_sess_assign_t *a = &c->assigns[i];
        if (!a->is_new) {
            pl->n_moved++;
            continue;
        }
        const tf_event_t *ev = sink_pg_assign_event(b, a);
        size_t k = strmap_add(&pl->event_map, ev->event_id, pl->n_events);
        if (k == SIZE_MAX) {
            pl->events[pl->n_events++] = i;
            continue;
        }
        /* The eventId again: the batch's earliest message keeps it. */
        shared = true;
        if (a->cookie < c->assigns[pl->events[k]].cookie) pl->events[k] = i;
    }
    if (shared) {
        size_t n = flag_batch_conflicts(b, pl);
        if (n) {
            plan_error(err, SINK_PG_CONFLICT,
                       "batch: %zu event(s) with the eventId of an earlier event of another"
                       " visitor",
                       n);
            return -1;
        }
    }
    for (size_t i = 0; i < pl->n_events; i++)
        if (sink_pg_is_conversion(b->conversion_types, sink_pg_plan_event(b, pl, i)->type))
            pl->n_conversions++;
    for (size_t i = 0; i < np; i++) {
        const tf_page_view_update_t *pv = &c->page_views[i];
        if (!pv->is_new) {
            pl->n_pv_changes++;
            continue;
        }
        size_t e = sink_pg_strmap_get(&pl->event_map, pv->event_id);
        if (e == SIZE_MAX) continue; /* not an event of this batch: nothing to insert */
        if (strmap_add(&pl->pv_map, pv->event_id, pl->n_pvs) != SIZE_MAX) {
            plan_error(err, SINK_PG_FATAL, "batch: new page view %s listed twice",
                       pv->event_id);
            return -1;
        }
        pl->pvs[pl->n_pvs] = i;
        pl->pv_event[pl->n_pvs] = e;
        pl->n_pvs++;
    }
    return 0;
}

