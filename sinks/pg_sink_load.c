/* pg_sink_load.c — sink_pg_load: the stored sessions and events a batch's visitors
 * need, read back into the sessionizer (see pg_sink.h). */
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

/* A result's text value, NULL for SQL NULL. */
static const char *val(const PGresult *res, int row, int col) {
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static int64_t val_i64(const PGresult *res, int row, int col, int64_t null_value) {
    long long v = 0;
    const char *t = val(res, row, col);
    if (!t || ev_parse_ll(t, &v) != 0) return null_value;
    return v;
}

static bool val_bool(const PGresult *res, int row, int col) {
    const char *t = val(res, row, col);
    return t && t[0] == 't';
}

/* Fills a session from a row of ST_LOAD_SESSIONS (strings point into res). */
static void session_of_row(const PGresult *res, int r, tf_session_t *ss) {
    memset(ss, 0, sizeof(*ss));
    snprintf(ss->id, sizeof(ss->id), "%s", PQgetvalue(res, r, 0));
    ss->visitor_id = val(res, r, 1);
    ss->user_id = val(res, r, 2);
    ss->started_at_ms = val_i64(res, r, 3, 0);
    ss->ended_at_ms = val_i64(res, r, 4, ss->started_at_ms);
    ss->duration_s = (int32_t)val_i64(res, r, 5, 0);
    ss->page_view_count = (int32_t)val_i64(res, r, 6, 0);
    ss->event_count = (int32_t)val_i64(res, r, 7, 0);
    ss->is_bounce = val_bool(res, r, 8);
    ss->entry_page = val(res, r, 9);
    ss->exit_page = val(res, r, 10);
    tf_sess_context_t *c = &ss->context;
    c->referrer = val(res, r, 11);
    c->referrer_domain = val(res, r, 12);
    c->utm_source = val(res, r, 13);
    c->utm_medium = val(res, r, 14);
    c->utm_campaign = val(res, r, 15);
    c->utm_term = val(res, r, 16);
    c->utm_content = val(res, r, 17);
    tf_device_type_t dt = TF_DEVICE_UNKNOWN;
    const char *dtn = val(res, r, 18);
    if (!dtn || tf_device_type_parse(dtn, &dt) != 0) dt = TF_DEVICE_UNKNOWN;
    c->device_type = (int)dt;
    c->browser = val(res, r, 19);
    c->browser_version = val(res, r, 20);
    c->os = val(res, r, 21);
    c->os_version = val(res, r, 22);
    c->user_agent = val(res, r, 23);
    c->country = val(res, r, 24);
    c->region = val(res, r, 25);
    c->city = val(res, r, 26);
    c->language = val(res, r, 27);
    c->screen_width = (int32_t)val_i64(res, r, 28, 0);
    c->screen_height = (int32_t)val_i64(res, r, 29, 0);
    tf_start_reason_t reason = TF_START_FIRST;
    const char *rn = val(res, r, 30);
    if (!rn || tf_start_reason_parse(rn, &reason) != 0) reason = TF_START_INACTIVITY;
    ss->start_reason = reason;
    ss->has_conversion = val_bool(res, r, 31);
}

/* The array parameters of the requests listed in idx, or of the first m when idx is NULL:
 * visitors and their bounds, and, when pv_vids is not NULL, the flattened (visitor, page
 * view eventId) pairs. Returns 0, or -1 with err set. */
static int load_params(const tf_sess_load_request_t *reqs, const size_t *idx, size_t m,
                       textbuf_t *vids, textbuf_t *since, textbuf_t *pv_vids,
                       textbuf_t *pv_ids, sink_pg_error_t *err) {
    for (size_t j = 0; j < m; j++) {
        const tf_sess_load_request_t *rq = &reqs[idx ? idx[j] : j];
        int64_t t = rq->since_ms;
        if (t < TS_MIN_MS) t = TS_MIN_MS;
        if (t > TS_MAX_MS) t = TS_MAX_MS;
        pgs_tb_next(vids);
        pgs_tb_quoted(vids, rq->visitor_id);
        pgs_tb_next(since);
        pgs_tb_i64(since, t);
        for (size_t k = 0; pv_vids && k < rq->n_page_view_ids; k++) {
            const char *pvid = rq->page_view_ids[k];
            if (!pvid) continue;
            pgs_tb_next(pv_vids);
            pgs_tb_quoted(pv_vids, rq->visitor_id);
            pgs_tb_next(pv_ids);
            pgs_tb_quoted(pv_ids, pvid);
        }
    }
    pgs_tb_close(vids);
    pgs_tb_close(since);
    if (pgs_tb_check(vids, "load", err) != 0 || pgs_tb_check(since, "load", err) != 0) return -1;
    if (!pv_vids) return 0;
    pgs_tb_close(pv_vids);
    pgs_tb_close(pv_ids);
    if (pgs_tb_check(pv_vids, "load", err) != 0 || pgs_tb_check(pv_ids, "load", err) != 0)
        return -1;
    return 0;
}

/* Hands the stored sessions and events of a load to the sessionizer. */
static int load_rows(tf_sessionizer_t *sz, const PGresult *rs, const PGresult *re,
                     tf_url_t *url, sink_pg_error_t *err) {
    for (int r = 0; r < PQntuples(rs); r++) {
        tf_session_t ss;
        session_of_row(rs, r, &ss);
        if (tf_sessionizer_load_session(sz, &ss) != 0) {
            pgs_set_error(err, SINK_PG_FATAL, NULL, "load: out of memory in the sessionizer");
            return -1;
        }
    }
    for (int r = 0; r < PQntuples(re); r++) {
        tf_sess_event_t ev;
        memset(&ev, 0, sizeof(ev));
        const char *session_id = PQgetvalue(re, r, 0);
        ev.event_id = val(re, r, 1);
        ev.visitor_id = val(re, r, 2);
        ev.ts_ms = val_i64(re, r, 3, 0);
        tf_event_type_t type = TF_EVENT_CUSTOM;
        const char *tn = val(re, r, 4);
        if (!tn || tf_event_type_parse(tn, strlen(tn), &type) != 0) type = TF_EVENT_CUSTOM;
        ev.type = type;
        ev.user_id = val(re, r, 5);
        ev.path = val(re, r, 6);
        const char *u = val(re, r, 7);
        ev.campaign_key = NULL;
        if (u) {
            char uerr[128];
            int urc = tf_url_parse(u, url, uerr, sizeof(uerr));
            if (urc == -2) {
                pgs_set_error(err, SINK_PG_FATAL, NULL, "load: out of memory parsing a URL");
                return -1;
            }
            if (urc == 0) ev.campaign_key = url->campaign_key;
        }
        ev.page_view_id = val(re, r, 8);
        const char *top = val(re, r, 9);
        ev.has_time_on_page = top != NULL;
        ev.time_on_page = top ? strtod(top, NULL) : 0.0;
        ev.scroll_depth = (int32_t)val_i64(re, r, 10, -1);
        ev.context = NULL;
        const char *pv_top = val(re, r, 11);
        int32_t pv_top_s = (int32_t)val_i64(re, r, 11, 0);
        int32_t pv_scroll = (int32_t)val_i64(re, r, 12, -1);
        if (tf_sessionizer_load_event(sz, &ev, session_id, pv_top != NULL, pv_top_s,
                                      pv_scroll) != 0) {
            pgs_set_error(err, SINK_PG_FATAL, NULL, "load: out of memory in the sessionizer");
            return -1;
        }
    }
    return 0;
}

int sink_pg_load(sink_pg_t *s, tf_sessionizer_t *sz, const tf_sess_load_request_t *reqs,
                 size_t n, sink_pg_error_t *err) {
    pgs_clear_error(err);
    if (n == 0) return 0;
    if (!sz || !reqs) {
        pgs_set_error(err, SINK_PG_FATAL, NULL, "load: sessionizer and requests required");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!reqs[i].visitor_id) {
            pgs_set_error(err, SINK_PG_FATAL, NULL, "load: request %zu has no visitor", i);
            pgs_count_error(s, err);
            return -1;
        }
        if (reqs[i].n_page_view_ids && !reqs[i].page_view_ids) {
            pgs_set_error(err, SINK_PG_FATAL, NULL, "load: request %zu has no page view array", i);
            pgs_count_error(s, err);
            return -1;
        }
    }
    textbuf_t vids, since, ids, wvids, wsince, wpv_vids, wpv_ids;
    textbuf_t *bufs[] = {&vids, &since, &ids, &wvids, &wsince, &wpv_vids, &wpv_ids};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        pgs_tb_init(bufs[i], PARAM_MAX_BYTES);
    PGresult *rl = NULL, *rs = NULL, *re = NULL, *rh = NULL;
    size_t *walk = malloc(n * sizeof(*walk)), n_walk = 0;
    tf_url_t url;
    tf_url_init(&url);
    int rc = -1;
    bool in_txn = false;
    if (!walk) {
        pgs_set_error(err, SINK_PG_FATAL, NULL, "load: out of memory");
        goto done;
    }
    /* the probe needs visitors and bounds only; the walk below, its subset's page views */
    if (load_params(reqs, NULL, n, &vids, &since, NULL, NULL, err) != 0) goto done;
    if (pgs_ensure_connection(s, err) != 0) goto done;

    /* One snapshot for every read. The reads are planned at each execution: a generic
     * plan made while the tables were small (a sequential scan) would otherwise stay with
     * the connection as they grow, and every load would get slower. (Not for the writes:
     * planning "= ANY" over a batch's thousands of eventIds costs more than it saves.) */
    in_txn = true;
    if (pgs_exec_simple(s,
                        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;"
                        " SET LOCAL plan_cache_mode = force_custom_plan",
                        "load: BEGIN", err) != 0)
        goto done;
    const char *p_latest[2] = {vids.data, since.data};
    if (pgs_query_prepared(s, ST_LOAD_LATEST, p_latest, &rl, err) != 0) goto done;
    if ((size_t)PQntuples(rl) != n) {
        pgs_set_error(err, SINK_PG_FATAL, NULL, "load: %d latest rows for %zu requests",
                      PQntuples(rl), n);
        goto done;
    }
    /* Row r is request r (ORDER BY ord). A request walks the stored sessions when one of
     * them ends at or after its bound, or when it refers to page views (their sessions
     * may be older). */
    for (size_t i = 0; i < n; i++) {
        if (val_i64(rl, (int)i, 0, 0) != (int64_t)i + 1) {
            pgs_set_error(err, SINK_PG_FATAL, NULL, "load: latest rows out of order");
            goto done;
        }
        if (reqs[i].n_page_view_ids || val_bool(rl, (int)i, 2)) walk[n_walk++] = i;
    }
    if (n_walk) {
        if (load_params(reqs, walk, n_walk, &wvids, &wsince, &wpv_vids, &wpv_ids, err) != 0)
            goto done;
        const char *p_sessions[4] = {wvids.data, wsince.data, wpv_vids.data, wpv_ids.data};
        if (pgs_query_prepared(s, ST_LOAD_SESSIONS, p_sessions, &rs, err) != 0) goto done;
        for (int r = 0; r < PQntuples(rs); r++) {
            pgs_tb_next(&ids);
            pgs_tb_str(&ids, PQgetvalue(rs, r, 0));
        }
        pgs_tb_close(&ids);
        if (pgs_tb_check(&ids, "load", err) != 0) goto done;
        const char *p_events[1] = {ids.data};
        if (pgs_query_prepared(s, ST_LOAD_EVENTS, p_events, &re, err) != 0) goto done;
        const char *p_earlier[2] = {wvids.data, ids.data};
        if (pgs_query_prepared(s, ST_LOAD_EARLIER, p_earlier, &rh, err) != 0) goto done;
        if ((size_t)PQntuples(rh) != n_walk) {
            pgs_set_error(err, SINK_PG_FATAL, NULL, "load: %d history rows for %zu requests",
                          PQntuples(rh), n_walk);
            goto done;
        }
    }
    if (pgs_exec_simple(s, "COMMIT", "load: COMMIT", err) != 0) goto done;
    in_txn = false;

    if (rs && load_rows(sz, rs, re, &url, err) != 0) goto done;
    /* Settled by the probe: nothing to load; earlier history iff any session is stored. */
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w < n_walk && walk[w] == i) {
            w++;
            continue;
        }
        if (tf_sessionizer_loaded(sz, reqs[i].visitor_id, val_bool(rl, (int)i, 1)) != 0) {
            pgs_set_error(err, SINK_PG_FATAL, NULL, "load: out of memory in the sessionizer");
            goto done;
        }
    }
    for (int r = 0; rh && r < PQntuples(rh); r++) {
        long long ord = val_i64(rh, r, 0, 0);
        if (ord < 1 || (size_t)ord > n_walk) continue;
        if (tf_sessionizer_loaded(sz, reqs[walk[ord - 1]].visitor_id, val_bool(rh, r, 1)) !=
            0) {
            pgs_set_error(err, SINK_PG_FATAL, NULL, "load: out of memory in the sessionizer");
            goto done;
        }
    }
    s->stats.loads++;
    s->stats.loaded_sessions += rs ? (uint64_t)PQntuples(rs) : 0;
    s->stats.loaded_events += re ? (uint64_t)PQntuples(re) : 0;
    rc = 0;
done:
    PQclear(rl);
    PQclear(rs);
    PQclear(re);
    PQclear(rh);
    free(walk);
    tf_url_reset(&url);
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) pgs_tb_free(bufs[i]);
    if (rc != 0) {
        if (in_txn) pgs_abandon_transaction(s);
        pgs_count_error(s, err);
    }
    return rc;
}

