/* pg_sink_write.c — sink_pg_write: one batch's rows and offsets in one transaction
 * (see pg_sink.h). */
#include "sinks/pg_sink.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include "common/cli.h"
#include "common/log.h"
#include "sinks/pg_plan.h"
#include "transforms/device.h"
#include "transforms/url.h"

#include "sinks/pg_sink_internal.h"

static const char k_copy_sessions[] = "COPY evpipe_stage_sessions FROM STDIN";
static const char k_copy_conversions[] = "COPY evpipe_stage_conversions FROM STDIN";
static const char k_copy_repoints[] = "COPY evpipe_stage_repoints FROM STDIN";
static const char k_copy_page_views[] = "COPY evpipe_stage_page_views FROM STDIN";
/* New rows go straight into their tables (no staging, no INSERT ... SELECT): the batch's
 * eventIds already stored are found first (ST_EXISTING) and left out. */
static const char k_copy_events[] =
    "COPY analytics_events (id, \"eventId\", \"sessionId\", type, name, \"visitorId\","
    " \"userId\", url, path, properties, \"occurredAt\", \"receivedAt\", referrer,"
    " \"pageViewId\", \"timeOnPage\", \"scrollDepth\") FROM STDIN";
static const char k_copy_new_page_views[] =
    "COPY page_views (id, \"eventId\", \"sessionId\", \"visitorId\", url, path, title, referrer,"
    " \"timeOnPage\", \"scrollDepth\", \"viewedAt\") FROM STDIN";

/* Statements joining staging tables with each other or with the big tables are planned
 * for each batch (PQexecParams, not prepared): a cached plan made for the first batch's
 * sizes (e.g. a hash join scanning analytics_events while it was small) would stay
 * with the connection as the tables grow. */
static const char k_repoint_events[] =
    "UPDATE analytics_events e SET \"sessionId\" = r.\"sessionId\""
    " FROM evpipe_stage_repoints r"
    " WHERE e.\"eventId\" = r.\"eventId\" AND e.\"sessionId\" IS DISTINCT FROM r.\"sessionId\"";
static const char k_repoint_page_views[] =
    "UPDATE page_views v SET \"sessionId\" = r.\"sessionId\", \"updatedAt\" = now()"
    " FROM evpipe_stage_repoints r"
    " WHERE v.\"eventId\" = r.\"eventId\" AND v.\"sessionId\" IS DISTINCT FROM r.\"sessionId\"";
static const char k_repoint_conversions[] =
    "UPDATE conversion_events c SET \"sessionId\" = r.\"sessionId\""
    " FROM evpipe_stage_repoints r"
    " WHERE c.\"eventId\" = r.\"eventId\" AND c.\"sessionId\" IS DISTINCT FROM r.\"sessionId\"";
/* Conversions carry their session's attribution: keep it equal after a session changed
 * (a merge, or a late event that became the first to carry a UTM parameter). */
static const char k_refresh_attribution[] =
    "UPDATE conversion_events c SET \"utmSource\" = s.\"utmSource\","
    " \"utmMedium\" = s.\"utmMedium\", \"utmCampaign\" = s.\"utmCampaign\""
    " FROM evpipe_stage_sessions s WHERE c.\"sessionId\" = s.id"
    " AND (c.\"utmSource\", c.\"utmMedium\", c.\"utmCampaign\")"
    "  IS DISTINCT FROM (s.\"utmSource\", s.\"utmMedium\", s.\"utmCampaign\")";
static const char k_update_page_views[] =
    "UPDATE page_views v SET \"sessionId\" = p.\"sessionId\", \"timeOnPage\" = p.\"timeOnPage\","
    " \"scrollDepth\" = p.\"scrollDepth\", \"updatedAt\" = now()"
    " FROM evpipe_stage_page_views p WHERE v.\"eventId\" = p.\"eventId\""
    " AND (p.\"visitorId\" IS NULL OR v.\"visitorId\" = p.\"visitorId\")";
static const char k_insert_conversions[] =
    "INSERT INTO conversion_events (\"sessionId\", \"eventId\", \"visitorId\", \"userId\", type,"
    " value, currency, \"utmSource\", \"utmMedium\", \"utmCampaign\", metadata, \"occurredAt\")"
    " SELECT e.\"sessionId\", e.\"eventId\", e.\"visitorId\", e.\"userId\", e.type, e.value,"
    " e.currency, s.\"utmSource\", s.\"utmMedium\", s.\"utmCampaign\", e.properties,"
    " " TS("e.occurred")
    " FROM evpipe_stage_conversions e JOIN analytics_sessions s ON s.id = e.\"sessionId\""
    " ON CONFLICT (\"eventId\") DO NOTHING";

/* The caller's batch must be consistent before anything is sent. */
static int validate_batch(const sink_pg_batch_t *b, sink_pg_error_t *err) {
    if (b->n_offsets && (!b->group || !b->topic || !b->partitions || !b->next_offsets)) {
        pgs_set_error(err, SINK_PG_FATAL, NULL, "batch: offsets without group, topic or arrays");
        return -1;
    }
    const tf_sess_changes_t *c = b->changes;
    if (!c) return 0;
    for (size_t i = 0; i < c->n_assigns; i++) {
        const tf_sess_assign_t *a = &c->assigns[i];
        if (!a->is_new) {
            if (!a->event_id) {
                pgs_set_error(err, SINK_PG_FATAL, NULL, "batch: assign %zu without eventId", i);
                return -1;
            }
            continue;
        }
        if (!b->events || a->cookie >= b->n_events || !b->events[a->cookie].event) {
            pgs_set_error(err, SINK_PG_FATAL, NULL,
                          "batch: assign %zu refers to event %llu of %zu", i,
                          (unsigned long long)a->cookie, b->n_events);
            return -1;
        }
        const tf_event_t *ev = b->events[a->cookie].event;
        if (!tf_event_type_name(ev->type)) {
            pgs_set_error(err, SINK_PG_FATAL, NULL, "batch: event %llu has type %d",
                          (unsigned long long)a->cookie, (int)ev->type);
            return -1;
        }
    }
    for (size_t i = 0; i < c->n_upserts; i++)
        if (!tf_start_reason_name(c->upserts[i].start_reason)) {
            pgs_set_error(err, SINK_PG_FATAL, NULL, "batch: session %s has start reason %d",
                          c->upserts[i].id, (int)c->upserts[i].start_reason);
            return -1;
        }
    for (size_t i = 0; i < c->n_page_views; i++)
        if (!c->page_views[i].event_id) {
            pgs_set_error(err, SINK_PG_FATAL, NULL, "batch: page view %zu without eventId", i);
            return -1;
        }
    return 0;
}

static void stage_session(sink_pg_t *s, const tf_session_t *ss) {
    const tf_sess_context_t *c = &ss->context;
    pgs_col_text(s, ss->id);
    pgs_col_text(s, ss->visitor_id);
    pgs_col_text(s, ss->user_id);
    pgs_col_i64(s, ss->started_at_ms);
    pgs_col_i64(s, ss->ended_at_ms);
    pgs_col_i64(s, ss->duration_s);
    pgs_col_i64(s, ss->page_view_count);
    pgs_col_i64(s, ss->event_count);
    pgs_col_bool(s, ss->is_bounce);
    pgs_col_text(s, ss->entry_page);
    pgs_col_text(s, ss->exit_page);
    pgs_col_text(s, c->referrer);
    pgs_col_text(s, c->referrer_domain);
    pgs_col_text(s, c->utm_source);
    pgs_col_text(s, c->utm_medium);
    pgs_col_text(s, c->utm_campaign);
    pgs_col_text(s, c->utm_term);
    pgs_col_text(s, c->utm_content);
    const char *dt = tf_device_type_name((tf_device_type_t)c->device_type);
    pgs_col_text(s, dt ? dt : tf_device_type_name(TF_DEVICE_UNKNOWN));
    pgs_col_text(s, c->browser);
    pgs_col_text(s, c->browser_version);
    pgs_col_text(s, c->os);
    pgs_col_text(s, c->os_version);
    pgs_col_text(s, c->user_agent);
    pgs_col_text(s, c->country);
    pgs_col_text(s, c->region);
    pgs_col_text(s, c->city);
    pgs_col_text(s, c->language);
    if (c->screen_width > 0) pgs_col_i64(s, c->screen_width); else pgs_col_null(s);
    if (c->screen_height > 0) pgs_col_i64(s, c->screen_height); else pgs_col_null(s);
    pgs_col_text(s, tf_start_reason_name(ss->start_reason));
    pgs_copy_row_end(s);
}

/* ---- the write ----------------------------------------------------------------------- */

/* Marks the planned events and page views already stored (one indexed query). Returns
 * 0, or -1 with *err filled: CONFLICT when some are stored for another visitor (those
 * flagged in b->conflicts). */
static int find_stored(sink_pg_t *s, const sink_pg_batch_t *b, sink_pg_plan_t *pl,
                       sink_pg_error_t *err) {
    const tf_sess_changes_t *c = b->changes;
    textbuf_t eids, pids, cids;
    pgs_tb_init(&eids, PARAM_MAX_BYTES);
    pgs_tb_init(&pids, PARAM_MAX_BYTES);
    pgs_tb_init(&cids, PARAM_MAX_BYTES);
    for (size_t i = 0; i < pl->n_events; i++) {
        const tf_event_t *ev = sink_pg_plan_event(b, pl, i);
        pgs_tb_next(&eids);
        pgs_tb_quoted(&eids, ev->event_id);
        if (!sink_pg_is_conversion(b->conversion_types, ev->type)) continue;
        pgs_tb_next(&cids);
        pgs_tb_quoted(&cids, ev->event_id);
    }
    for (size_t i = 0; i < pl->n_pvs; i++) {
        pgs_tb_next(&pids);
        pgs_tb_quoted(&pids, c->page_views[pl->pvs[i]].event_id);
    }
    pgs_tb_close(&eids);
    pgs_tb_close(&pids);
    pgs_tb_close(&cids);
    PGresult *res = NULL;
    int rc = -1;
    if (pgs_tb_check(&eids, "finding stored events", err) != 0 ||
        pgs_tb_check(&pids, "finding stored events", err) != 0 ||
                     pgs_tb_check(&cids, "finding stored events", err) != 0)
                     goto done;
    const char *params[3] = {eids.data, pids.data, cids.data};
    if (pgs_query_prepared(s, ST_EXISTING, params, &res, err) != 0) goto done;
    const char *conflict_id = NULL; /* the first one stored for another visitor */
    for (int r = 0; r < PQntuples(res); r++) {
        char kind = PQgetvalue(res, r, 0)[0];
        const char *id = PQgetvalue(res, r, 1);
        size_t k = sink_pg_strmap_get(kind == '1' ? &pl->pv_map : &pl->event_map, id);
        if (k == SIZE_MAX) continue;
        size_t e = kind == '1' ? pl->pv_event[k] : k;
        const tf_sess_assign_t *a = &c->assigns[pl->events[e]];
        if (strcmp(PQgetvalue(res, r, 2), sink_pg_assign_event(b, a)->visitor_id) != 0) {
            sink_pg_flag_conflict(b, a->cookie);
            if (!conflict_id) conflict_id = id;
        } else if (kind == '1') {
            pl->pv_stored[k] = true;
        } else if (kind == '0') {
            pl->event_stored[k] = true;
        }
    }
    if (conflict_id) {
        pgs_set_error(err, SINK_PG_CONFLICT, NULL,
                      "finding stored events: eventId %s is stored for another visitor",
                      conflict_id);
        goto done;
    }
    rc = 0;
done:
    PQclear(res);
    pgs_tb_free(&eids);
    pgs_tb_free(&pids);
    pgs_tb_free(&cids);
    return rc;
}

static void copy_event(sink_pg_t *s, const sink_pg_event_row_t *row, const char *session_id) {
    const tf_event_t *ev = row->event;
    pgs_col_new_uuid(s);
    pgs_col_text(s, ev->event_id);
    pgs_col_text(s, session_id);
    pgs_col_text(s, tf_event_type_name(ev->type));
    pgs_col_text(s, ev->name);
    pgs_col_text(s, ev->visitor_id);
    pgs_col_text(s, ev->user_id);
    pgs_col_text(s, ev->url);
    pgs_col_text(s, row->path);
    pgs_col_text(s, ev->properties_json);
    pgs_col_ts(s, ev->timestamp_ms);
    /* 'now' is the transaction's start, as the column's default now() would be. */
    if (row->received_at_ms >= 0) pgs_col_ts(s, row->received_at_ms); else pgs_col_text(s, "now");
    pgs_col_text(s, ev->referrer);
    pgs_col_text(s, ev->page_view_id);
    if (ev->has_time_on_page) pgs_col_double(s, ev->time_on_page); else pgs_col_null(s);
    if (ev->scroll_depth >= 0) pgs_col_i64(s, ev->scroll_depth); else pgs_col_null(s);
    pgs_copy_row_end(s);
}

static void copy_page_view(sink_pg_t *s, const tf_page_view_update_t *pv,
                           const sink_pg_event_row_t *row) {
    const tf_event_t *ev = row->event;
    pgs_col_new_uuid(s);
    pgs_col_text(s, pv->event_id);
    pgs_col_text(s, pv->session_id);
    pgs_col_text(s, ev->visitor_id);
    pgs_col_text(s, ev->url);
    pgs_col_text(s, row->path);
    pgs_col_text(s, ev->title);
    pgs_col_text(s, ev->referrer);
    if (pv->has_time_on_page) pgs_col_i64(s, pv->time_on_page_s); else pgs_col_null(s);
    if (pv->scroll_depth >= 0) pgs_col_i64(s, pv->scroll_depth); else pgs_col_null(s);
    pgs_col_ts(s, ev->timestamp_ms);
    pgs_copy_row_end(s);
}

static void stage_page_view_update(sink_pg_t *s, const tf_page_view_update_t *pv,
                                   const char *visitor_id) {
    pgs_col_text(s, pv->event_id);
    pgs_col_text(s, pv->session_id);
    if (pv->has_time_on_page) pgs_col_i64(s, pv->time_on_page_s); else pgs_col_null(s);
    if (pv->scroll_depth >= 0) pgs_col_i64(s, pv->scroll_depth); else pgs_col_null(s);
    pgs_col_text(s, visitor_id);
    pgs_copy_row_end(s);
}

static void stage_conversion(sink_pg_t *s, const sink_pg_event_row_t *row,
                             const char *session_id) {
    const tf_event_t *ev = row->event;
    pgs_col_text(s, ev->event_id);
    pgs_col_text(s, session_id);
    pgs_col_text(s, ev->visitor_id);
    pgs_col_text(s, ev->user_id);
    pgs_col_text(s, tf_event_type_name(ev->type));
    if (ev->has_value && ev->value_text)
        pgs_col_text(s, ev->value_text);
    else if (ev->has_value)
        pgs_col_double(s, ev->value);
    else
        pgs_col_null(s);
    pgs_col_text(s, ev->currency[0] ? ev->currency : NULL);
    pgs_col_text(s, ev->properties_json);
    pgs_col_i64(s, ev->timestamp_ms);
    pgs_copy_row_end(s);
}

/* COPY of new rows straight into a table, a concurrent duplicate reported TRANSIENT. */
static int copy_new_end(sink_pg_t *s, const char *what, uint64_t *rows, sink_pg_error_t *err) {
    s->race_transient = true;
    int rc = pgs_copy_end(s, what, rows, err);
    s->race_transient = false;
    return rc;
}

/* Everything of the write between BEGIN and COMMIT. Statements without input are not
 * sent. probed: find_stored ran; without it, a conversion found stored (its event was
 * not, or the COPY would have failed) fails the write as a unique violation, so that it
 * is redone with the probe, which tells whose it is. */
static int write_rows(sink_pg_t *s, const sink_pg_batch_t *b, const sink_pg_plan_t *pl,
                      bool probed, counts_t *k, sink_pg_error_t *err) {
    const tf_sess_changes_t *c = b->changes;
    if (c && c->n_upserts) {
        if (pgs_copy_begin(s, k_copy_sessions, err) != 0) return -1;
        for (size_t i = 0; i < c->n_upserts; i++) stage_session(s, &c->upserts[i]);
        if (pgs_copy_end(s, "staging sessions", NULL, err) != 0) return -1;
        if (pgs_exec_prepared(s, ST_UPSERT_SESSIONS, NULL, &k->sessions, err) != 0) return -1;
    }
    size_t n_insert = 0, n_pv_insert = 0, n_pv_update = pl->n_pv_changes;
    for (size_t i = 0; i < pl->n_events; i++) n_insert += !pl->event_stored[i];
    for (size_t i = 0; i < pl->n_pvs; i++) {
        if (pl->pv_stored[i])
            n_pv_update++;
        else
            n_pv_insert++;
    }
    if (n_insert) {
        if (pgs_copy_begin(s, k_copy_events, err) != 0) return -1;
        for (size_t i = 0; i < pl->n_events; i++) {
            if (pl->event_stored[i]) continue;
            const tf_sess_assign_t *a = &c->assigns[pl->events[i]];
            copy_event(s, &b->events[a->cookie], a->session_id);
        }
        if (copy_new_end(s, "inserting events", &k->events, err) != 0) return -1;
    }
    if (pl->n_moved) {
        if (pgs_copy_begin(s, k_copy_repoints, err) != 0) return -1;
        for (size_t i = 0; i < c->n_assigns; i++) {
            const tf_sess_assign_t *a = &c->assigns[i];
            if (a->is_new) continue;
            pgs_col_text(s, a->event_id);
            pgs_col_text(s, a->session_id);
            pgs_copy_row_end(s);
        }
        if (pgs_copy_end(s, "staging re-pointed events", NULL, err) != 0) return -1;
        if (pgs_exec_planned(s, k_repoint_events, "re-pointing events", &k->repointed, err) != 0 ||
            pgs_exec_planned(s, k_repoint_page_views, "re-pointing page views", NULL, err) != 0 ||
            pgs_exec_planned(s, k_repoint_conversions, "re-pointing conversions", NULL,
                             err) != 0)
            return -1;
    }
    if (c && c->n_upserts &&
        pgs_exec_planned(s, k_refresh_attribution, "refreshing conversion attribution", NULL,
                         err) != 0)
                         return -1;
    if (n_pv_insert) {
        if (pgs_copy_begin(s, k_copy_new_page_views, err) != 0) return -1;
        for (size_t i = 0; i < pl->n_pvs; i++) {
            if (pl->pv_stored[i]) continue;
            const tf_sess_assign_t *a = &c->assigns[pl->events[pl->pv_event[i]]];
            copy_page_view(s, &c->page_views[pl->pvs[i]], &b->events[a->cookie]);
        }
        if (copy_new_end(s, "inserting page views", &k->page_views, err) != 0) return -1;
    }
    if (n_pv_update) {
        /* Changed stored page views, and new ones a replay finds stored (their derived
         * fields refreshed when the stored row is the same visitor's). */
        if (pgs_copy_begin(s, k_copy_page_views, err) != 0) return -1;
        for (size_t i = 0; i < pl->n_pvs; i++) {
            if (!pl->pv_stored[i]) continue;
            const tf_sess_assign_t *a = &c->assigns[pl->events[pl->pv_event[i]]];
            stage_page_view_update(s, &c->page_views[pl->pvs[i]],
                                   b->events[a->cookie].event->visitor_id);
        }
        for (size_t i = 0; i < c->n_page_views; i++)
            if (!c->page_views[i].is_new) stage_page_view_update(s, &c->page_views[i], NULL);
        if (pgs_copy_end(s, "staging page views", NULL, err) != 0) return -1;
        if (pgs_exec_planned(s, k_update_page_views, "updating page views", &k->page_views,
                             err) != 0)
            return -1;
    }
    if (pl->n_conversions) {
        if (pgs_copy_begin(s, k_copy_conversions, err) != 0) return -1;
        uint64_t staged = 0, inserted = 0;
        for (size_t i = 0; i < pl->n_events; i++) {
            const tf_sess_assign_t *a = &c->assigns[pl->events[i]];
            const sink_pg_event_row_t *row = &b->events[a->cookie];
            if (!sink_pg_is_conversion(b->conversion_types, row->event->type)) continue;
            stage_conversion(s, row, a->session_id);
            staged++;
        }
        if (pgs_copy_end(s, "staging conversions", NULL, err) != 0) return -1;
        if (pgs_exec_planned(s, k_insert_conversions, "inserting conversions", &inserted, err) != 0)
            return -1;
        if (!probed && inserted < staged) {
            pgs_set_error(err, SINK_PG_TRANSIENT, "23505",
                          "inserting conversions: %llu of %llu already stored",
                          (unsigned long long)(staged - inserted), (unsigned long long)staged);
            return -1;
        }
        k->conversions += inserted;
    }
    if (c && c->n_deletes) {
        textbuf_t ids;
        pgs_tb_init(&ids, PARAM_MAX_BYTES);
        for (size_t i = 0; i < c->n_deletes; i++) {
            pgs_tb_next(&ids);
            pgs_tb_quoted(&ids, c->deletes[i]);
        }
        pgs_tb_close(&ids);
        int rc = pgs_tb_check(&ids, "deleting sessions", err);
        const char *params[1] = {ids.data};
        if (rc == 0) rc = pgs_exec_prepared(s, ST_DELETE_SESSIONS, params, &k->deleted, err);
        pgs_tb_free(&ids);
        if (rc != 0) return -1;
    }
    if (b->n_offsets) {
        textbuf_t parts, offs;
        pgs_tb_init(&parts, PARAM_MAX_BYTES);
        pgs_tb_init(&offs, PARAM_MAX_BYTES);
        for (size_t i = 0; i < b->n_offsets; i++) {
            pgs_tb_next(&parts);
            pgs_tb_i64(&parts, b->partitions[i]);
            pgs_tb_next(&offs);
            pgs_tb_i64(&offs, b->next_offsets[i]);
        }
        pgs_tb_close(&parts);
        pgs_tb_close(&offs);
        int rc = pgs_tb_check(&parts, "storing offsets", err);
        if (rc == 0) rc = pgs_tb_check(&offs, "storing offsets", err);
        const char *params[4] = {b->group, b->topic, parts.data, offs.data};
        if (rc == 0) rc = pgs_exec_prepared(s, ST_UPSERT_OFFSETS, params, &k->offsets, err);
        pgs_tb_free(&parts);
        pgs_tb_free(&offs);
        if (rc != 0) return -1;
    }
    return 0;
}

int sink_pg_write(sink_pg_t *s, const sink_pg_batch_t *b, sink_pg_error_t *err) {
    pgs_clear_error(err);
    counts_t k;
    memset(&k, 0, sizeof(k));
    sink_pg_plan_t pl;
    memset(&pl, 0, sizeof(pl));
    if (!b) {
        pgs_set_error(err, SINK_PG_FATAL, NULL, "write: no batch");
        goto fail;
    }
    if (validate_batch(b, err) != 0) goto fail;
    if (sink_pg_plan_init(b, &pl, err) != 0) goto fail;
    /* The sessionizer already knows the stored events of the visitors it writes, so an
     * eventId of the batch is rarely stored: after a write whose probe found none, the
     * next one copies without probing, and a unique violation on an eventId (a replay
     * the sessionizer could not see, another writer) rolls back and redoes the write
     * with the probe. */
    bool probe = s->probe_stored, begin_retried = false;
    for (;;) {
        if (pgs_ensure_connection(s, err) != 0) goto fail;
        if (pgs_exec_simple(s, "BEGIN", "BEGIN", err) != 0) {
            /* The server closed the idle connection an instant before its goodbye
             * could be seen: nothing was sent yet, so connect again and begin, once. */
            if (!begin_retried && s->conn && PQstatus(s->conn) != CONNECTION_OK) {
                begin_retried = true;
                EV_WARN("PostgreSQL: the idle connection was closed by the server; reconnecting");
                s->ready = false;
                pgs_clear_error(err);
                continue;
            }
            goto fail;
        }
        /* In the transaction: a row committed meanwhile by another writer makes the
         * COPY fail (TRANSIENT), and the retry finds it here. */
        if (probe && (pl.n_events || pl.n_pvs) && find_stored(s, b, &pl, err) != 0)
            goto fail;
        if (write_rows(s, b, &pl, probe, &k, err) == 0) break;
        if (probe || err->status != SINK_PG_TRANSIENT || strcmp(err->sqlstate, "23505") != 0)
            goto fail;
        pgs_abandon_transaction(s);
        memset(&k, 0, sizeof(k));
        pgs_clear_error(err);
        s->stats.existence_rechecks++;
        probe = true;
    }
    if (pgs_exec_simple(s, "COMMIT", "COMMIT", err) != 0) goto fail;
    bool found = false;
    for (size_t i = 0; i < pl.n_events && !found; i++) found = pl.event_stored[i];
    for (size_t i = 0; i < pl.n_pvs && !found; i++) found = pl.pv_stored[i];
    s->probe_stored = found;
    sink_pg_plan_free(&pl);
    s->stats.transactions++;
    s->stats.sessions_upserted += k.sessions;
    s->stats.sessions_deleted += k.deleted;
    s->stats.events_inserted += k.events;
    s->stats.events_repointed += k.repointed;
    s->stats.page_views_written += k.page_views;
    s->stats.conversions_inserted += k.conversions;
    s->stats.offsets_written += k.offsets;
    return 0;
fail:
    sink_pg_plan_free(&pl);
    pgs_abandon_transaction(s);
    s->probe_stored = true; /* the retry may be of rows a lost COMMIT did store */
    s->stats.failed_writes++;
    pgs_count_error(s, err);
    return -1;
}

