/* funnels.c — `evpipe funnels`: funnel_results of every ACTIVE funnel per DAILY,
 * WEEKLY and MONTHLY period of entry, kept exact from the dirty hours of the stored
 * rows (consumers/stage.h runs the loop; transforms/funnel.h holds the logic).
 *
 * State (migration 0005, docs/funnels.md): funnel_entry_days holds, per funnel,
 * visitor and UTC day of a chain's first step, the furthest chain of that day. A batch
 * of claimed hours recomputes the days whose entries an event of those hours can
 * affect (an event at t affects the entries of [t - window, t]) from the raw rows of
 * [day, day + 1 day + window), then folds the affected DAILY, WEEKLY and MONTHLY
 * periods from funnel_entry_days. A new, changed or re-activated definition is
 * computed over its whole history by tick(), between batches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/commands.h"
#include "common/log.h"
#include "common/util.h"
#include "consumers/stage.h"
#include "transforms/funnel.h"

#define FUNNELS_FETCH_ROWS "20000"
#define DAY_MS 86400000LL

/* Both process() and the whole-history computation of tick() take this lock first,
 * so a definition is never computed twice at once and a batch that skipped a funnel
 * whose state was stale is always followed by a whole-history pass that sees its rows. */
#define FUNNELS_LOCK_SQL "SELECT pg_advisory_xact_lock(hashtext('evpipe'), hashtext('funnels.compute'))"

typedef struct funnels_ctx_s {
    ev_metric_t *m_full, *m_invalid, *m_days, *m_periods;
} funnels_ctx_t;

static void pg_err(PGresult *res, char *errstr, size_t errstr_size) {
    const char *msg = PQresultErrorMessage(res);
    snprintf(errstr, errstr_size, "%s", msg && *msg ? msg : "unknown PostgreSQL error");
    size_t n = strlen(errstr);
    while (n && (errstr[n - 1] == '\n' || errstr[n - 1] == ' ')) errstr[--n] = '\0';
}

static void ms_to_day(int64_t ms, char out[16]) {
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static int64_t day_floor(int64_t ms) { return ms >= 0 ? ms / DAY_MS * DAY_MS : -((-ms + DAY_MS - 1) / DAY_MS) * DAY_MS; }

/* A growable byte buffer (the COPY rows of funnel_entry_days). */
typedef struct buf_s {
    char *data;
    size_t len, cap;
} buf_t;

static int buf_add(buf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

/* COPY text escaping of one field. */
static int buf_add_field(buf_t *b, const char *s) {
    for (const char *p = s; *p; p++) {
        const char *esc = NULL;
        if (*p == '\\') esc = "\\\\";
        else if (*p == '\t') esc = "\\t";
        else if (*p == '\n') esc = "\\n";
        else if (*p == '\r') esc = "\\r";
        if (esc ? buf_add(b, esc, 2) : buf_add(b, p, 1)) return -1;
    }
    return 0;
}

/* One day's chain of the visitor being read. */
typedef struct day_chain_s {
    int64_t day_ms;
    tf_funnel_chain_t chain;
} day_chain_t;

/* What a recomputation of days [from_ms, to_ms) accumulates while reading rows. */
typedef struct scan_s {
    const tf_funnel_t *funnel;
    const char *funnel_id;
    int64_t from_ms, to_ms;
    tf_funnel_point_t *points;
    size_t n_points, cap_points;
    day_chain_t *days;
    size_t n_days, cap_days;
    char *visitor; /* the visitor being read, owned; NULL before the first row */
    buf_t rows;
    long long n_rows;
} scan_t;

/* Folds the current unit's points into the visitor's day chains. */
static int scan_flush_unit(scan_t *sc) {
    const tf_funnel_point_t *p = sc->points;
    size_t n = sc->n_points;
    for (size_t i = 0; i < n; i++) {
        if (!(p[i].steps & 1u) || p[i].at_ms < sc->from_ms || p[i].at_ms >= sc->to_ms) continue;
        int64_t day = day_floor(p[i].at_ms);
        tf_funnel_chain_t chain;
        if (tf_funnel_best_chain(sc->funnel, p, n, day, day + DAY_MS, &chain) != 0) return -1;
        size_t k = 0;
        while (k < sc->n_days && sc->days[k].day_ms != day) k++;
        if (k == sc->n_days) {
            if (sc->n_days == sc->cap_days) {
                size_t cap = sc->cap_days ? sc->cap_days * 2 : 16;
                day_chain_t *d = realloc(sc->days, cap * sizeof(*d));
                if (!d) return -1;
                sc->days = d;
                sc->cap_days = cap;
            }
            sc->days[sc->n_days++] = (day_chain_t){day, chain};
        } else if (chain.level > sc->days[k].chain.level ||
                   (chain.level == sc->days[k].chain.level &&
                    chain.at_ms[0] < sc->days[k].chain.at_ms[0])) {
            sc->days[k].chain = chain;
        }
        /* Skip the rest of this day's points: best_chain considered them all. */
        while (i + 1 < n && day_floor(p[i + 1].at_ms) == day) i++;
    }
    sc->n_points = 0;
    return 0;
}

/* Writes the visitor's day chains as COPY rows and forgets them. */
static int scan_flush_visitor(scan_t *sc) {
    for (size_t k = 0; k < sc->n_days; k++) {
        const tf_funnel_chain_t *c = &sc->days[k].chain;
        char day[16], first[32], num[48];
        ms_to_day(sc->days[k].day_ms, day);
        ev_format_rfc3339_ms(c->at_ms[0], first);
        int len = snprintf(num, sizeof(num), "\t%d\t{", c->level);
        if (buf_add(&sc->rows, sc->funnel_id, strlen(sc->funnel_id)) || buf_add(&sc->rows, "\t", 1) ||
            buf_add(&sc->rows, day, strlen(day)) || buf_add(&sc->rows, "\t", 1) ||
            buf_add_field(&sc->rows, sc->visitor) || buf_add(&sc->rows, "\t", 1) ||
            buf_add(&sc->rows, first, strlen(first)) || buf_add(&sc->rows, num, (size_t)len))
            return -1;
        for (int s = 1; s < c->level; s++) {
            len = snprintf(num, sizeof(num), "%s%lld.%03lld", s > 1 ? "," : "",
                           (long long)((c->at_ms[s] - c->at_ms[s - 1]) / 1000),
                           (long long)((c->at_ms[s] - c->at_ms[s - 1]) % 1000));
            if (buf_add(&sc->rows, num, (size_t)len)) return -1;
        }
        if (buf_add(&sc->rows, "}\n", 2)) return -1;
        sc->n_rows++;
    }
    sc->n_days = 0;
    return 0;
}

/* Sends the buffered rows with one COPY. Returns 0 or -1 with errstr. */
static int scan_copy_rows(PGconn *conn, scan_t *sc, char *errstr, size_t errstr_size) {
    if (!sc->rows.len) return 0;
    PGresult *res = PQexec(conn, "COPY funnel_entry_days (\"funnelId\", day, \"visitorId\", "
                                 "\"firstAt\", level, \"stepSeconds\") FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        pg_err(res, errstr, errstr_size);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    int ok = PQputCopyData(conn, sc->rows.data, (int)sc->rows.len) == 1;
    if (PQputCopyEnd(conn, ok ? NULL : "send failed") != 1) ok = 0;
    int rc = 0;
    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            pg_err(res, errstr, errstr_size);
            rc = -1;
        }
        PQclear(res);
    }
    if (!ok && rc == 0) {
        snprintf(errstr, errstr_size, "COPY funnel_entry_days: %s", PQerrorMessage(conn));
        rc = -1;
    }
    sc->rows.len = 0;
    return rc;
}

/* Adds one fetched row (visitorId, sessionId, at_ms, type, name, path, properties). */
static int scan_row(scan_t *sc, PGresult *res, int r, char *prev_session, size_t prev_size) {
    const char *visitor = PQgetvalue(res, r, 0), *session = PQgetvalue(res, r, 1);
    bool new_visitor = !sc->visitor || strcmp(visitor, sc->visitor) != 0;
    bool new_unit = new_visitor ||
                    (tf_funnel_session_scope(sc->funnel) && strcmp(session, prev_session) != 0);
    if (new_unit && scan_flush_unit(sc) != 0) return -1;
    if (new_visitor) {
        if (scan_flush_visitor(sc) != 0) return -1;
        free(sc->visitor);
        if (!(sc->visitor = strdup(visitor))) return -1;
    }
    snprintf(prev_session, prev_size, "%s", session);
    const char *type_s = PQgetvalue(res, r, 3);
    tf_funnel_event_t ev = {0};
    if (tf_event_type_parse(type_s, strlen(type_s), &ev.type) != 0) return 0;
    ev.name = PQgetisnull(res, r, 4) ? NULL : PQgetvalue(res, r, 4);
    ev.path = PQgetisnull(res, r, 5) ? NULL : PQgetvalue(res, r, 5);
    ev.properties_json = PQgetisnull(res, r, 6) ? NULL : PQgetvalue(res, r, 6);
    uint32_t steps = tf_funnel_match(sc->funnel, &ev);
    if (!steps) return 0;
    if (sc->n_points == sc->cap_points) {
        size_t cap = sc->cap_points ? sc->cap_points * 2 : 256;
        tf_funnel_point_t *p = realloc(sc->points, cap * sizeof(*p));
        if (!p) return -1;
        sc->points = p;
        sc->cap_points = cap;
    }
    sc->points[sc->n_points++] = (tf_funnel_point_t){strtoll(PQgetvalue(res, r, 2), NULL, 10), steps};
    return 0;
}

/* Recomputes funnel_entry_days of the funnel for the UTC days [from_ms, to_ms) from the
 * stored events of [from, to + window): of every visitor, or with affected_only of the
 * visitors in the temp table funnel_affected (their rows only; the others' entries
 * cannot have changed). Inside the caller's transaction. Returns the number of rows
 * written, or -1 with errstr. */
static long long compute_days(PGconn *conn, const tf_funnel_t *funnel, const char *funnel_id,
                              int64_t from_ms, int64_t to_ms, bool exclude_bots,
                              bool affected_only, char *errstr, size_t errstr_size) {
    char from[32], to[32], window[32], types[512] = "{";
    ev_format_rfc3339_ms(from_ms, from);
    ev_format_rfc3339_ms(to_ms, to);
    snprintf(window, sizeof(window), "%lld", (long long)tf_funnel_window_ms(funnel));
    uint32_t mask = tf_funnel_type_mask(funnel);
    for (int t = 0; t < TF_EVENT_TYPE_COUNT; t++) {
        if (!(mask & (1u << t))) continue;
        size_t len = strlen(types);
        snprintf(types + len, sizeof(types) - len, "%s%s", len > 1 ? "," : "",
                 tf_event_type_name((tf_event_type_t)t));
    }
    size_t tl = strlen(types);
    snprintf(types + tl, sizeof(types) - tl, "}");
    const char *del_params[] = {funnel_id, from, to};
    const char *only = affected_only ? " AND \"visitorId\" IN (SELECT v FROM funnel_affected)" : "";
    char del_sql[400];
    snprintf(del_sql, sizeof(del_sql),
             "DELETE FROM funnel_entry_days WHERE \"funnelId\" = $1 AND day >= "
             "($2::timestamptz AT TIME ZONE 'UTC')::date AND day < "
             "($3::timestamptz AT TIME ZONE 'UTC')::date%s",
             only);
    if (stage_exec(conn, del_sql, 3, del_params, errstr, errstr_size) < 0) return -1;
    const char *params[] = {from, to, window, types, exclude_bots ? "true" : "false"};
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "DECLARE funnel_events NO SCROLL CURSOR FOR "
             "SELECT e.\"visitorId\", e.\"sessionId\"::text, "
             "(extract(epoch FROM e.\"occurredAt\") * 1000)::bigint, e.type::text, e.name, "
             "e.path, e.properties::text FROM analytics_events e "
             "JOIN analytics_sessions s ON s.id = e.\"sessionId\" "
             "WHERE e.type = ANY($4::\"EventType\"[]) AND e.\"occurredAt\" >= $1::timestamptz "
             "AND e.\"occurredAt\" < $2::timestamptz + $3::bigint * interval '1 millisecond' "
             "AND (NOT $5::boolean OR s.\"deviceType\" <> 'BOT')%s "
             "ORDER BY e.\"visitorId\", %s e.\"occurredAt\"",
             affected_only ? " AND e.\"visitorId\" IN (SELECT v FROM funnel_affected)" : "",
             tf_funnel_session_scope(funnel) ? "e.\"sessionId\"," : "");
    if (stage_exec(conn, sql, 5, params, errstr, errstr_size) < 0) return -1;
    scan_t sc = {.funnel = funnel, .funnel_id = funnel_id, .from_ms = from_ms, .to_ms = to_ms};
    char prev_session[64] = "";
    long long rc = -1;
    for (;;) {
        PGresult *res = PQexec(conn, "FETCH " FUNNELS_FETCH_ROWS " FROM funnel_events");
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            pg_err(res, errstr, errstr_size);
            PQclear(res);
            goto out;
        }
        int n = PQntuples(res);
        for (int r = 0; r < n; r++) {
            if (scan_row(&sc, res, r, prev_session, sizeof(prev_session)) != 0) {
                PQclear(res);
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
            }
        }
        PQclear(res);
        if (n == 0) break;
        if (sc.rows.len > (4u << 20) && scan_copy_rows(conn, &sc, errstr, errstr_size) != 0)
            goto out;
    }
    if (scan_flush_unit(&sc) != 0 || scan_flush_visitor(&sc) != 0) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    if (stage_exec(conn, "CLOSE funnel_events", 0, NULL, errstr, errstr_size) < 0) goto out;
    if (scan_copy_rows(conn, &sc, errstr, errstr_size) != 0) goto out;
    rc = sc.n_rows;
out:
    free(sc.points);
    free(sc.days);
    free(sc.visitor);
    free(sc.rows.data);
    return rc;
}

/* Parses "1,2,3" (the counts of one period row) into stats, medians cleared. */
static void parse_counts(const char *counts, size_t n_steps, tf_funnel_step_stat_t *stats) {
    memset(stats, 0, n_steps * sizeof(*stats));
    const char *c = counts;
    for (size_t i = 0; i < n_steps && c && *c; i++) {
        char *end;
        stats[i].count = strtoll(c, &end, 10);
        c = *end == ',' ? end + 1 : NULL;
    }
}

/* The DAILY, WEEKLY and MONTHLY periods that hold one of the days of $2 (a date[]). */
#define PERIODS_CTE                                                                           \
    "WITH days AS (SELECT DISTINCT unnest($2::date[])::timestamptz AS d), "                       \
    "periods AS (SELECT 'DAILY'::\"MetricPeriod\" AS period, d AS ps, d + interval '1 day' AS pe " \
    "FROM days UNION SELECT 'WEEKLY', date_trunc('week', d), date_trunc('week', d) + "            \
    "interval '1 week' FROM days UNION SELECT 'MONTHLY', date_trunc('month', d), "                \
    "date_trunc('month', d) + interval '1 month' FROM days) "

/* SQL of a step-seconds bucket; the same expression wherever one is computed (0013). */
#define SECONDS_BUCKET "floor(ln(1 + greatest(s.v, 0)) * 46)::smallint"

/* The medians of one period, per step (index step - 1; step 1 has none). */
typedef struct period_medians_s {
    char period[16], ps[24];
    double median[TF_FUNNEL_MAX_STEPS];
    bool has[TF_FUNNEL_MAX_STEPS];
} period_medians_t;

/* One value to find: the one at 0-based position off of a bucket's values in order. */
typedef struct median_target_s {
    size_t pm;
    int step, bucket;
    long long off;
    double value;
} median_target_t;

/* One step of one period: its visitors' seconds at positions (n-1)/2 and n/2. */
typedef struct median_group_s {
    size_t pm, target[2];
    int step;
} median_group_t;

/* Room for element n of an array of *cap elements of size bytes: the array itself, a
 * bigger copy (*cap doubled), or NULL when out of memory (p still valid). */
static void *grow(void *p, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return p;
    size_t c = *cap ? *cap * 2 : 16;
    void *q = realloc(p, c * size);
    if (q) *cap = c;
    return q;
}

/* Appends "s" to a PostgreSQL array literal being built in b (no quoting: the values
 * are period names, timestamps and numbers). */
static int lit_add(buf_t *b, const char *s) {
    return buf_add(b, b->len ? "," : "{", 1) || buf_add(b, s, strlen(s));
}

/* Finds, for every period of $2 and every step past the first, the exact median of its
 * visitors' seconds from the previous step, as percentile_cont(0.5) does (the mean of the
 * two middle values for an even count): the bucket counts give the buckets that hold the
 * middle positions, then only those buckets' values are read. A step nobody reached has
 * no median. Returns 0 or -1 with errstr. */
static int read_medians(PGconn *conn, const char *const params[2], period_medians_t **out,
                        size_t *n_out, char *errstr, size_t errstr_size) {
    static const char buckets_sql[] =
        PERIODS_CTE "SELECT p.period::text, to_char(p.ps AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), k.step, k.bucket, k.visitors FROM periods p JOIN "
        "funnel_period_step_buckets k ON k.\"funnelId\" = $1 AND k.period = p.period AND "
        "k.\"periodStart\" = p.ps WHERE k.visitors > 0 ORDER BY 1, 2, 3, 4";
    period_medians_t *pm = NULL;
    median_target_t *tg = NULL;
    median_group_t *gr = NULL;
    size_t n_pm = 0, cap_pm = 0, n_tg = 0, cap_tg = 0, n_gr = 0, cap_gr = 0;
    buf_t lp = {0}, ls = {0}, lst = {0}, lb = {0};
    PGresult *res = PQexecParams(conn, buckets_sql, 2, NULL, params, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_err(res, errstr, errstr_size);
        goto out;
    }
    int rows = PQntuples(res);
    for (int g0 = 0; g0 < rows;) {
        const char *period = PQgetvalue(res, g0, 0), *ps = PQgetvalue(res, g0, 1);
        int step = atoi(PQgetvalue(res, g0, 2));
        int g1 = g0;
        long long n = 0;
        while (g1 < rows && strcmp(PQgetvalue(res, g1, 0), period) == 0 &&
               strcmp(PQgetvalue(res, g1, 1), ps) == 0 && atoi(PQgetvalue(res, g1, 2)) == step)
            n += strtoll(PQgetvalue(res, g1++, 4), NULL, 10);
        if (!n_pm || strcmp(pm[n_pm - 1].period, period) != 0 || strcmp(pm[n_pm - 1].ps, ps) != 0) {
            void *q = grow(pm, &cap_pm, n_pm, sizeof(*pm));
            if (!q) goto oom;
            pm = q;
            memset(&pm[n_pm], 0, sizeof(*pm));
            snprintf(pm[n_pm].period, sizeof(pm[n_pm].period), "%s", period);
            snprintf(pm[n_pm].ps, sizeof(pm[n_pm].ps), "%s", ps);
            n_pm++;
        }
        if (step < 2 || step > TF_FUNNEL_MAX_STEPS) {
            g0 = g1;
            continue;
        }
        void *q = grow(gr, &cap_gr, n_gr, sizeof(*gr));
        if (!q) goto oom;
        gr = q;
        median_group_t *g = &gr[n_gr++];
        *g = (median_group_t){.pm = n_pm - 1, .step = step};
        long long pos[2] = {(n - 1) / 2, n / 2}, before = 0;
        for (int r = g0, k = 0; r < g1 && k < 2; r++) {
            long long v = strtoll(PQgetvalue(res, r, 4), NULL, 10);
            while (k < 2 && pos[k] < before + v) {
                if (k == 1 && pos[1] == pos[0]) {
                    g->target[1] = g->target[0];
                } else {
                    if (!(q = grow(tg, &cap_tg, n_tg, sizeof(*tg)))) goto oom;
                    tg = q;
                    tg[n_tg] = (median_target_t){n_pm - 1, step, atoi(PQgetvalue(res, r, 3)),
                                                 pos[k] - before, 0};
                    g->target[k] = n_tg++;
                    if (lit_add(&lp, period) || lit_add(&ls, ps) ||
                        lit_add(&lst, PQgetvalue(res, r, 2)) || lit_add(&lb, PQgetvalue(res, r, 3)))
                        goto oom;
                }
                k++;
            }
            before += v;
        }
        g0 = g1;
    }
    PQclear(res);
    res = NULL;
    if (n_tg) {
        if (buf_add(&lp, "}", 1) || buf_add(&ls, "}", 1) || buf_add(&lst, "}", 1) ||
            buf_add(&lb, "}", 1))
            goto oom;
        lp.data[lp.len] = ls.data[ls.len] = lst.data[lst.len] = lb.data[lb.len] = '\0';
        const char *vp[] = {params[0], lp.data, ls.data, lst.data, lb.data};
        res = PQexecParams(
            conn,
            "SELECT t.i, v.seconds, v.visitors FROM unnest($2::\"MetricPeriod\"[], "
            "$3::timestamptz[], $4::smallint[], $5::smallint[]) WITH ORDINALITY "
            "t(period, ps, step, bucket, i) CROSS JOIN LATERAL (SELECT v0.seconds, v0.visitors "
            "FROM funnel_period_step_seconds v0 WHERE v0.\"funnelId\" = $1 AND v0.period = "
            "t.period AND v0.\"periodStart\" = t.ps AND v0.step = t.step AND v0.bucket = "
            "t.bucket AND v0.visitors > 0 ORDER BY v0.seconds OFFSET 0) v ORDER BY t.i, v.seconds",
            5, NULL, vp, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            pg_err(res, errstr, errstr_size);
            goto out;
        }
        size_t cur = SIZE_MAX;
        long long before = 0;
        bool *found = calloc(n_tg, sizeof(*found));
        if (!found) goto oom;
        for (int r = 0; r < PQntuples(res); r++) {
            size_t i = (size_t)strtoll(PQgetvalue(res, r, 0), NULL, 10) - 1;
            if (i >= n_tg) continue;
            if (i != cur) cur = i, before = 0;
            long long v = strtoll(PQgetvalue(res, r, 2), NULL, 10);
            if (!found[i] && tg[i].off < before + v) {
                tg[i].value = strtod(PQgetvalue(res, r, 1), NULL);
                found[i] = true;
            }
            before += v;
        }
        bool all = true;
        for (size_t i = 0; i < n_tg; i++) all = all && found[i];
        free(found);
        if (!all) {
            snprintf(errstr, errstr_size, "funnel_period_step_seconds disagrees with its buckets");
            goto out;
        }
    }
    for (size_t i = 0; i < n_gr; i++) {
        double lo = tg[gr[i].target[0]].value, hi = tg[gr[i].target[1]].value;
        period_medians_t *m = &pm[gr[i].pm];
        m->median[gr[i].step - 1] = gr[i].target[0] == gr[i].target[1] ? lo : lo + (hi - lo) * 0.5;
        m->has[gr[i].step - 1] = true;
    }
    *out = pm;
    *n_out = n_pm;
    pm = NULL;
    rc = 0;
    goto out;
oom:
    snprintf(errstr, errstr_size, "out of memory");
out:
    PQclear(res);
    free(pm);
    free(tg);
    free(gr);
    free(lp.data);
    free(ls.data);
    free(lst.data);
    free(lb.data);
    return rc;
}

/* Rewrites the DAILY, WEEKLY and MONTHLY results of the funnel for the periods that
 * hold one of the days (a PostgreSQL date[] literal): the per-visitor bests of
 * funnel_entry_periods are folded again from funnel_entry_days (of the visitors in
 * funnel_affected only, with affected_only), then each period is read from them: an upsert
 * that leaves an unchanged row alone (same id and computedAt), a delete for a period
 * without entrants. Returns the number of periods written, or -1 with errstr. */
static long long write_periods(PGconn *conn, const tf_funnel_t *funnel, const char *funnel_id,
                               const char *days, bool affected_only, char *errstr,
                               size_t errstr_size) {
    const char *params[] = {funnel_id, days};
    /* A change of funnel_entry_periods reaches the tables that summarise it as one net
     * delta (the rows folded again, plus one each, and the rows removed, kept in the
     * temp table funnel_gone, minus one each; a visitor whose best entry is unchanged
     * cancels out): the levels to funnel_period_levels, the seconds of each step past
     * the first to funnel_period_step_seconds and its buckets (SECONDS_BUCKET; 0013). */
#define UPSERT(table, conflict)                                                              \
    " HAVING sum(sign) <> 0 ON CONFLICT (\"funnelId\", " conflict ") DO UPDATE SET visitors = " \
    table ".visitors + EXCLUDED.visitors"
#define INSERT_ONLY(table, conflict) ""
    /* The summaries of the rows of src: counted with n (an aggregate), written by upsert. */
#define SUMMARIES(src, n, sign_col, upsert)                                                  \
    "lv AS (INSERT INTO funnel_period_levels SELECT $1::uuid, period, \"periodStart\", level, " \
    n " FROM " src " GROUP BY 2, 3, 4" upsert("funnel_period_levels",                        \
                                             "period, \"periodStart\", level") " RETURNING 1), " \
    "sv AS (SELECT c.period, c.\"periodStart\", (s.k + 1)::smallint AS step, " SECONDS_BUCKET  \
    " AS bucket, s.v AS seconds" sign_col " FROM " src " c CROSS JOIN LATERAL "               \
    "unnest(c.\"stepSeconds\") WITH ORDINALITY s(v, k)), "                                    \
    "sb AS (INSERT INTO funnel_period_step_buckets SELECT $1::uuid, period, \"periodStart\", " \
    "step, bucket, " n " FROM sv GROUP BY 2, 3, 4, 5" upsert(                                 \
        "funnel_period_step_buckets", "period, \"periodStart\", step, bucket") " RETURNING 1) " \
    "INSERT INTO funnel_period_step_seconds SELECT $1::uuid, period, \"periodStart\", step, "  \
    "bucket, seconds, " n " FROM sv GROUP BY 2, 3, 4, 5, 6" upsert(                           \
        "funnel_period_step_seconds", "period, \"periodStart\", step, bucket, seconds")
#define GONE(using_where)                                                                    \
    ", gone AS (DELETE FROM funnel_entry_periods b " using_where                             \
    " RETURNING b.period, b.\"periodStart\", b.level, b.\"stepSeconds\") "                   \
    "INSERT INTO funnel_gone SELECT * FROM gone"
#define ADDED(from)                                                                          \
    "added AS (INSERT INTO funnel_entry_periods SELECT DISTINCT ON (p.period, p.ps, "         \
    "e.\"visitorId\") $1::uuid, p.period, p.ps, e.\"visitorId\", e.\"firstAt\", e.level, "    \
    "e.\"stepSeconds\" FROM " from " ORDER BY p.period, p.ps, e.\"visitorId\", e.level DESC, " \
    "e.\"firstAt\" RETURNING period, \"periodStart\", level, \"stepSeconds\"), "
#define CHANGES                                                                              \
    "chg AS (SELECT period, \"periodStart\", level, \"stepSeconds\", 1 AS sign FROM added "   \
    "UNION ALL SELECT period, \"periodStart\", level, \"stepSeconds\", -1 FROM funnel_gone), " \
    SUMMARIES("chg", "sum(sign)", ", c.sign", UPSERT)
    const char *del_sql, *ins_sql;
    if (affected_only) {
        /* Driven by the batch's visitors, so that the cost is theirs: their rows of the
         * periods through the primary key (collected as ctids: a join would let the
         * planner scan every period's rows), then their entry days through
         * ("funnelId", "visitorId", day), one lookup per visitor over the span of the
         * periods. OFFSET 0 keeps each lookup from being flattened into a scan. */
        del_sql = PERIODS_CTE GONE(
            "WHERE ctid = ANY (ARRAY(SELECT x.ctid FROM periods p CROSS JOIN funnel_affected a "
            "CROSS JOIN LATERAL (SELECT b0.ctid FROM funnel_entry_periods b0 WHERE "
            "b0.\"funnelId\" = $1 AND b0.period = p.period AND b0.\"periodStart\" = p.ps AND "
            "b0.\"visitorId\" = a.v OFFSET 0) x))");
        ins_sql = PERIODS_CTE
            ", span AS (SELECT min(ps)::date AS lo, max(pe)::date AS hi FROM periods), " ADDED(
                "span CROSS JOIN funnel_affected a CROSS JOIN LATERAL (SELECT * FROM "
                "funnel_entry_days e0 WHERE e0.\"funnelId\" = $1 AND e0.\"visitorId\" = a.v AND "
                "e0.day >= span.lo AND e0.day < span.hi OFFSET 0) e JOIN periods p ON "
                "e.day >= p.ps::date AND e.day < p.pe::date") CHANGES;
    } else {
        /* A whole-history pass starts from no state (compute_whole deleted the funnel's
         * rows): nothing to remove, and its summaries are plain counts. */
        del_sql = NULL;
        ins_sql = PERIODS_CTE ", " ADDED(
            "periods p JOIN funnel_entry_days e ON e.\"funnelId\" = $1 AND "
            "e.day >= p.ps::date AND e.day < p.pe::date")
            SUMMARIES("added", "count(*)", "", INSERT_ONLY);
    }
    /* Only a removed row lowers a count: the rows that can have reached zero are those
     * of funnel_gone's keys, looked up one by one (ctids, as above). */
#define ZEROS(table, alias, keys_from, match)                                                \
    "DELETE FROM " table " WHERE ctid = ANY (ARRAY(SELECT y.ctid FROM (SELECT DISTINCT "     \
    keys_from ") x CROSS JOIN LATERAL (SELECT " alias ".ctid FROM " table " " alias         \
    " WHERE " alias ".\"funnelId\" = $1 AND " match " AND " alias ".visitors = 0 OFFSET 0) y))"
    static const char zeros_sql[] =
        "WITH gs AS (SELECT g.period, g.\"periodStart\", (s.k + 1)::smallint AS step, "
        SECONDS_BUCKET " AS bucket, s.v AS seconds FROM funnel_gone g, "
        "unnest(g.\"stepSeconds\") WITH ORDINALITY s(v, k)), "
        "l AS (" ZEROS("funnel_period_levels", "l0",
                       "period, \"periodStart\", level FROM funnel_gone",
                       "l0.period = x.period AND l0.\"periodStart\" = x.\"periodStart\" AND "
                       "l0.level = x.level") "), "
        "k AS (" ZEROS("funnel_period_step_buckets", "k0",
                       "period, \"periodStart\", step, bucket FROM gs",
                       "k0.period = x.period AND k0.\"periodStart\" = x.\"periodStart\" AND "
                       "k0.step = x.step AND k0.bucket = x.bucket") ") "
        ZEROS("funnel_period_step_seconds", "v0",
              "period, \"periodStart\", step, bucket, seconds FROM gs",
              "v0.period = x.period AND v0.\"periodStart\" = x.\"periodStart\" AND v0.step = "
              "x.step AND v0.bucket = x.bucket AND v0.seconds = x.seconds");
    const char *id_param[] = {funnel_id};
#undef ZEROS
#undef CHANGES
#undef SUMMARIES
#undef INSERT_ONLY
#undef ADDED
#undef GONE
#undef UPSERT
    if (del_sql &&
        (stage_exec(conn, "CREATE TEMPORARY TABLE IF NOT EXISTS funnel_gone (period "
                          "\"MetricPeriod\", \"periodStart\" timestamptz, level smallint, "
                          "\"stepSeconds\" double precision[]) ON COMMIT DELETE ROWS",
                    0, NULL, errstr, errstr_size) < 0 ||
         stage_exec(conn, "TRUNCATE funnel_gone", 0, NULL, errstr, errstr_size) < 0 ||
         stage_exec(conn, del_sql, 2, params, errstr, errstr_size) < 0))
        return -1;
    if (stage_exec(conn, ins_sql, 2, params, errstr, errstr_size) < 0 ||
        (del_sql && stage_exec(conn, zeros_sql, 1, id_param, errstr, errstr_size) < 0))
        return -1;
    /* Per period: the count of each step from its levels' rows, as "c1,c2,…" for
     * parse_counts(); NULL counts for a period without entrants. */
    size_t n_steps = tf_funnel_step_count(funnel);
    char counts[TF_FUNNEL_MAX_STEPS * 80] = "";
    for (size_t k = 1; k <= n_steps; k++) {
        size_t lc = strlen(counts);
        snprintf(counts + lc, sizeof(counts) - lc,
                 ", coalesce(sum(l.visitors) FILTER (WHERE l.level >= %zu), 0)::text", k);
    }
    char agg_sql[4096];
    snprintf(agg_sql, sizeof(agg_sql),
             PERIODS_CTE
             "SELECT p.period::text, to_char(p.ps AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
             "to_char(p.pe AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), c.counts "
             "FROM periods p LEFT JOIN LATERAL (SELECT concat_ws(','%s) AS counts FROM "
             "funnel_period_levels l WHERE l.\"funnelId\" = $1 AND l.period = p.period AND "
             "l.\"periodStart\" = p.ps HAVING sum(l.visitors) > 0) c ON true ORDER BY 1, 2",
             counts);
    period_medians_t *med = NULL;
    size_t n_med = 0;
    if (read_medians(conn, params, &med, &n_med, errstr, errstr_size) != 0) return -1;
    PGresult *res = PQexecParams(conn, agg_sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_err(res, errstr, errstr_size);
        PQclear(res);
        free(med);
        return -1;
    }
    tf_funnel_step_stat_t stats[TF_FUNNEL_MAX_STEPS];
    long long written = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *period = PQgetvalue(res, r, 0), *ps = PQgetvalue(res, r, 1),
                   *pe = PQgetvalue(res, r, 2);
        if (PQgetisnull(res, r, 3)) {
            const char *dp[] = {funnel_id, period, ps};
            if (stage_exec(conn, "DELETE FROM funnel_results WHERE \"funnelId\" = $1 AND "
                                 "period = $2::\"MetricPeriod\" AND \"periodStart\" = $3",
                           3, dp, errstr, errstr_size) < 0)
                goto fail;
            continue;
        }
        parse_counts(PQgetvalue(res, r, 3), n_steps, stats);
        const period_medians_t *pm = NULL;
        for (size_t k = 0; k < n_med && !pm; k++)
            if (strcmp(med[k].period, period) == 0 && strcmp(med[k].ps, ps) == 0) pm = &med[k];
        for (size_t k = 1; pm && k < n_steps; k++) {
            stats[k].median_seconds = pm->median[k];
            stats[k].has_median = pm->has[k];
        }
        char *json = NULL, entrants[24], conversions[24], rate[40];
        if (tf_funnel_step_results_json(funnel, stats, &json, errstr, errstr_size) != 0)
            goto fail;
        snprintf(entrants, sizeof(entrants), "%lld", stats[0].count);
        snprintf(conversions, sizeof(conversions), "%lld", stats[n_steps - 1].count);
        snprintf(rate, sizeof(rate), "%.17g",
                 tf_funnel_rate(stats[n_steps - 1].count, stats[0].count));
        const char *up[] = {funnel_id, period, ps, pe, entrants, conversions, rate, json};
        long long n = stage_exec(
            conn,
            "INSERT INTO funnel_results (\"funnelId\", period, \"periodStart\", \"periodEnd\", "
            "entrants, conversions, \"conversionRate\", \"stepResults\") VALUES ($1, "
            "$2::\"MetricPeriod\", $3, $4, $5, $6, $7, $8::jsonb) "
            "ON CONFLICT (\"funnelId\", period, \"periodStart\", \"periodEnd\") DO UPDATE SET "
            "entrants = EXCLUDED.entrants, conversions = EXCLUDED.conversions, "
            "\"conversionRate\" = EXCLUDED.\"conversionRate\", "
            "\"stepResults\" = EXCLUDED.\"stepResults\", \"computedAt\" = now() "
            "WHERE (funnel_results.entrants, funnel_results.conversions, "
            "funnel_results.\"conversionRate\", funnel_results.\"stepResults\") IS DISTINCT FROM "
            "(EXCLUDED.entrants, EXCLUDED.conversions, EXCLUDED.\"conversionRate\", "
            "EXCLUDED.\"stepResults\")",
            8, up, errstr, errstr_size);
        free(json);
        if (n < 0) goto fail;
        written++;
    }
    PQclear(res);
    free(med);
    return written;
fail:
    PQclear(res);
    free(med);
    return -1;
}

/* Days as "{d1,d2,...}" from runs of epoch-ms days. */
static char *days_literal(const int64_t *days, size_t n) {
    size_t cap = 3 + n * 11;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t len = 0;
    s[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        char d[16];
        ms_to_day(days[i], d);
        len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? "," : "", d);
    }
    snprintf(s + len, cap - len, "}");
    return s;
}

/* Recomputes the given days (sorted epoch-ms UTC midnights) of one funnel, run by run,
 * then their periods. Returns 0 or -1 with errstr. */
static int recompute_days(PGconn *conn, const tf_funnel_t *funnel, const char *funnel_id,
                          const int64_t *days, size_t n, bool exclude_bots, bool affected_only,
                          funnels_ctx_t *ctx, char *errstr, size_t errstr_size) {
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && days[j] == days[j - 1] + DAY_MS) j++;
        if (compute_days(conn, funnel, funnel_id, days[i], days[j - 1] + DAY_MS, exclude_bots,
                         affected_only, errstr, errstr_size) < 0)
            return -1;
        i = j;
    }
    char *lit = days_literal(days, n);
    if (!lit) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    long long w = write_periods(conn, funnel, funnel_id, lit, affected_only, errstr, errstr_size);
    free(lit);
    if (w < 0) return -1;
    if (ctx) {
        ev_metric_add(ctx->m_days, (double)n);
        ev_metric_add(ctx->m_periods, (double)w);
    }
    return 0;
}

/* Reads a one-column result of epoch-ms days into a malloc'd array. */
static int query_days(PGconn *conn, const char *sql, int nparams, const char *const *params,
                      int64_t **days, size_t *n, char *errstr, size_t errstr_size) {
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_err(res, errstr, errstr_size);
        PQclear(res);
        return -1;
    }
    int rows = PQntuples(res);
    int64_t *d = malloc(((size_t)rows + 1) * sizeof(*d));
    if (!d) {
        PQclear(res);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (int r = 0; r < rows; r++) d[r] = strtoll(PQgetvalue(res, r, 0), NULL, 10);
    PQclear(res);
    *days = d;
    *n = (size_t)rows;
    return 0;
}

static int funnels_process(const stage_batch_t *batch, void *ud, char *errstr,
                           size_t errstr_size) {
    funnels_ctx_t *ctx = ud;
    PGconn *conn = batch->conn;
    if (stage_exec(conn, FUNNELS_LOCK_SQL, 0, NULL, errstr, errstr_size) < 0) return -1;
    /* The visitors whose entries can have changed: those with an event in a claimed
     * hour (events are never deleted; a moved or reclassified session marks the hours
     * of its events). Only their entries are recomputed, so a batch costs what its
     * visitors' events cost, not what the days it touches hold. */
    if (stage_exec(conn, "CREATE TEMPORARY TABLE IF NOT EXISTS funnel_affected (v text PRIMARY KEY) "
                         "ON COMMIT DELETE ROWS", 0, NULL, errstr, errstr_size) < 0 ||
        stage_exec(conn, "TRUNCATE funnel_affected", 0, NULL, errstr, errstr_size) < 0 ||
        stage_exec(conn, "INSERT INTO funnel_affected SELECT DISTINCT e.\"visitorId\" FROM "
                         "claimed_hours c JOIN analytics_events e ON e.\"occurredAt\" >= "
                         "c.\"hourStart\" AND e.\"occurredAt\" < c.\"hourStart\" + interval "
                         "'1 hour'", 0, NULL, errstr, errstr_size) < 0 ||
        stage_exec(conn, "ANALYZE funnel_affected", 0, NULL, errstr, errstr_size) < 0)
        return -1;
    /* Only funnels whose stored results are current: the others get their whole
     * history computed by tick(). */
    PGresult *res = PQexec(
        conn, "SELECT f.id, f.steps::text, f.\"conversionWindowSeconds\", f.scope FROM funnels f "
              "JOIN funnel_stage_state s ON s.\"funnelId\" = f.id WHERE f.status = 'ACTIVE' AND "
              "s.status = 'ACTIVE' AND s.valid AND s.\"definitionUpdatedAt\" = f.\"updatedAt\" "
              "ORDER BY f.id");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_err(res, errstr, errstr_size);
        PQclear(res);
        return -1;
    }
    int rc = 0;
    for (int r = 0; r < PQntuples(res) && rc == 0; r++) {
        const char *id = PQgetvalue(res, r, 0);
        tf_funnel_t *funnel = NULL;
        char perr[256];
        if (tf_funnel_parse(PQgetvalue(res, r, 1), strtoll(PQgetvalue(res, r, 2), NULL, 10),
                            PQgetvalue(res, r, 3), &funnel, perr, sizeof(perr)) != 0)
            continue; /* cannot happen: valid means it parsed; tick() re-checks */
        char window[32];
        snprintf(window, sizeof(window), "%lld", (long long)tf_funnel_window_ms(funnel));
        const char *params[] = {window};
        int64_t *days = NULL;
        size_t n = 0;
        rc = query_days(conn,
                        "SELECT DISTINCT (extract(epoch FROM d) * 1000)::bigint FROM claimed_hours c, "
                        "generate_series(date_trunc('day', c.\"hourStart\" - $1::bigint * "
                        "interval '1 millisecond'), date_trunc('day', c.\"hourStart\" + interval "
                        "'1 hour' - interval '1 millisecond'), interval '1 day') d ORDER BY 1",
                        1, params, &days, &n, errstr, errstr_size);
        if (rc == 0)
            rc = recompute_days(conn, funnel, id, days, n, batch->exclude_bots, true, ctx,
                                errstr, errstr_size);
        free(days);
        tf_funnel_destroy(funnel);
    }
    PQclear(res);
    return rc;
}

/* Records a malformed definition: one log line and one audit_logs row per updatedAt. */
static int record_invalid(PGconn *conn, const char *id, const char *name, const char *updated,
                          const char *error, bool already_audited, funnels_ctx_t *ctx,
                          char *errstr, size_t errstr_size) {
    const char *params[] = {id, updated, error};
    if (stage_exec(conn, "BEGIN", 0, NULL, errstr, errstr_size) < 0) return -1;
    if (!already_audited &&
        stage_exec(conn,
                   "INSERT INTO audit_logs (action, \"entityType\", \"entityId\", \"actorType\", "
                   "\"actorId\", changes) VALUES ('funnel.invalid', 'funnel', $1, 'system', "
                   "'evpipe-funnels', jsonb_build_object('error', $3::text, 'updatedAt', "
                   "$2::timestamptz))",
                   3, params, errstr, errstr_size) < 0)
        goto fail;
    if (stage_exec(conn,
                   "INSERT INTO funnel_stage_state (\"funnelId\", \"definitionUpdatedAt\", status, "
                   "valid, error) VALUES ($1, $2, 'ACTIVE', false, $3) ON CONFLICT (\"funnelId\") "
                   "DO UPDATE SET \"definitionUpdatedAt\" = EXCLUDED.\"definitionUpdatedAt\", "
                   "status = 'ACTIVE', valid = false, error = EXCLUDED.error, \"computedAt\" = now()",
                   3, params, errstr, errstr_size) < 0)
        goto fail;
    if (stage_exec(conn, "COMMIT", 0, NULL, errstr, errstr_size) < 0) goto fail;
    if (!already_audited) {
        EV_WARN("funnel %s ('%s'): malformed definition, skipped until it is changed: %s", id,
                name, error);
        if (ctx) ev_metric_add(ctx->m_invalid, 1);
    }
    return 0;
fail:;
    char ignored[64];
    stage_exec(conn, "ROLLBACK", 0, NULL, ignored, sizeof(ignored));
    return -1;
}

/* Computes a funnel over its whole history in one transaction. */
static int compute_whole(PGconn *conn, const tf_funnel_t *funnel, const char *id,
                         const char *updated, bool exclude_bots, funnels_ctx_t *ctx,
                         char *errstr, size_t errstr_size) {
    int64_t *days = NULL;
    size_t n = 0;
    const char *params[] = {id, updated};
    if (stage_exec(conn, "BEGIN", 0, NULL, errstr, errstr_size) < 0) return -1;
    /* The pass reads every row of its cursor: plan for all of them, not for the first
     * tenth (the cursor default, which walks the events in visitor order through the
     * index, one random heap read each, instead of reading them by type and sorting). */
    if (stage_exec(conn, "SET LOCAL TimeZone = 'UTC'", 0, NULL, errstr, errstr_size) < 0 ||
        stage_exec(conn, "SET LOCAL cursor_tuple_fraction = 1.0", 0, NULL, errstr,
                   errstr_size) < 0 ||
        stage_exec(conn, FUNNELS_LOCK_SQL, 0, NULL, errstr, errstr_size) < 0)
        goto fail;
    /* Another instance may have done it while this one waited for the lock. */
    long long done = stage_exec(conn,
                                "SELECT 1 FROM funnel_stage_state WHERE \"funnelId\" = $1 AND valid "
                                "AND status = 'ACTIVE' AND \"definitionUpdatedAt\" = $2",
                                2, params, errstr, errstr_size);
    if (done < 0) goto fail;
    if (done == 0) {
        /* Marks only serve funnels whose stored results are current; when no other
         * funnel's are (the first run, or every funnel changed), the marks this
         * statement sees describe rows the reads below see too (read committed: later
         * statements, later snapshots), so absorbing them again after this pass would
         * only redo it. Marks a batch holds are skipped, not waited for (that batch
         * waits for this transaction's lock: waiting here would deadlock). */
        if (stage_exec(conn,
                       "DELETE FROM dirty_hours WHERE id IN (SELECT id FROM dirty_hours WHERE "
                       "stage = 'funnels' FOR UPDATE SKIP LOCKED) AND NOT EXISTS (SELECT 1 FROM "
                       "funnel_stage_state s JOIN funnels f ON f.id = s.\"funnelId\" WHERE "
                       "s.\"funnelId\" <> $1 AND s.valid AND s.status = 'ACTIVE' AND f.status = "
                       "'ACTIVE' AND s.\"definitionUpdatedAt\" = f.\"updatedAt\")",
                       1, params, errstr, errstr_size) < 0)
            goto fail;
        const char *tp[] = {tf_event_type_name(tf_funnel_step_type(funnel, 0))};
        if (query_days(conn,
                       "SELECT (extract(epoch FROM d) * 1000)::bigint FROM (SELECT "
                       "date_trunc('day', min(\"occurredAt\")) lo, max(\"occurredAt\") hi FROM "
                       "analytics_events WHERE type = $1::\"EventType\") b, generate_series(b.lo, "
                       "b.hi, interval '1 day') d WHERE b.lo IS NOT NULL ORDER BY 1",
                       1, tp, &days, &n, errstr, errstr_size) != 0)
            goto fail;
        if (stage_exec(conn, "DELETE FROM funnel_entry_days WHERE \"funnelId\" = $1", 1, params,
                       errstr, errstr_size) < 0 ||
            stage_exec(conn, "DELETE FROM funnel_entry_periods WHERE \"funnelId\" = $1", 1,
                       params, errstr, errstr_size) < 0 ||
            stage_exec(conn, "DELETE FROM funnel_period_levels WHERE \"funnelId\" = $1", 1,
                       params, errstr, errstr_size) < 0 ||
            stage_exec(conn, "DELETE FROM funnel_period_step_buckets WHERE \"funnelId\" = $1", 1,
                       params, errstr, errstr_size) < 0 ||
            stage_exec(conn, "DELETE FROM funnel_period_step_seconds WHERE \"funnelId\" = $1", 1,
                       params, errstr, errstr_size) < 0)
            goto fail;
        if (n && recompute_days(conn, funnel, id, days, n, exclude_bots, false, ctx, errstr,
                                errstr_size) != 0)
            goto fail;
        if (stage_exec(conn,
                       "DELETE FROM funnel_results r WHERE r.\"funnelId\" = $1 AND NOT EXISTS ("
                       "SELECT 1 FROM funnel_entry_days e WHERE e.\"funnelId\" = $1 AND e.day >= "
                       "r.\"periodStart\"::date AND e.day < r.\"periodEnd\"::date)",
                       1, params, errstr, errstr_size) < 0)
            goto fail;
        if (stage_exec(conn,
                       "INSERT INTO funnel_stage_state (\"funnelId\", \"definitionUpdatedAt\", "
                       "status, valid) VALUES ($1, $2, 'ACTIVE', true) ON CONFLICT (\"funnelId\") "
                       "DO UPDATE SET \"definitionUpdatedAt\" = EXCLUDED.\"definitionUpdatedAt\", "
                       "status = 'ACTIVE', valid = true, error = NULL, \"computedAt\" = now()",
                       2, params, errstr, errstr_size) < 0)
            goto fail;
    }
    if (stage_exec(conn, "COMMIT", 0, NULL, errstr, errstr_size) < 0) goto fail;
    if (done == 0) {
        /* The state tables were just rewritten in bulk: fresh statistics let the next
         * batches look rows up by visitor instead of scanning (autovacuum would take up
         * to a minute; the summary tables are read by primary key only). Without
         * ownership (a stage role) the server skips it with a warning; a failure costs
         * nothing but speed. */
        char ignored[256];
        if (stage_exec(conn,
                       "ANALYZE funnel_entry_days, funnel_entry_periods",
                       0, NULL,
                       ignored, sizeof(ignored)) < 0)
            EV_DEBUG("ANALYZE of the funnel state: %s", ignored);
        EV_INFO("funnel %s computed over its whole history (%zu days)", id, n);
        if (ctx) ev_metric_add(ctx->m_full, 1);
    }
    free(days);
    return 0;
fail:;
    char ignored[64];
    stage_exec(conn, "ROLLBACK", 0, NULL, ignored, sizeof(ignored));
    free(days);
    return -1;
}

/* Between batches: new, changed and re-activated definitions; status changes of the
 * others are recorded so that a later re-activation is noticed. */
static int funnels_tick(PGconn *conn, bool exclude_bots, void *ud, char *errstr,
                        size_t errstr_size) {
    funnels_ctx_t *ctx = ud;
    PGresult *res = PQexec(
        conn,
        "SELECT f.id, f.name, f.steps::text, f.\"conversionWindowSeconds\", f.scope, "
        "f.status::text, f.\"updatedAt\"::text, (s.error IS NOT NULL AND NOT s.valid AND "
        "s.\"definitionUpdatedAt\" = f.\"updatedAt\") FROM funnels f LEFT JOIN "
        "funnel_stage_state s ON s.\"funnelId\" = f.id WHERE s.\"funnelId\" IS NULL OR "
        "s.status <> f.status OR (f.status = 'ACTIVE' AND s.\"definitionUpdatedAt\" <> "
        "f.\"updatedAt\") ORDER BY f.\"createdAt\", f.id");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_err(res, errstr, errstr_size);
        PQclear(res);
        return -1;
    }
    int rc = 0;
    for (int r = 0; r < PQntuples(res) && rc == 0; r++) {
        const char *id = PQgetvalue(res, r, 0), *status = PQgetvalue(res, r, 5),
                   *updated = PQgetvalue(res, r, 6);
        if (strcmp(status, "ACTIVE") != 0) {
            const char *params[] = {id, updated, status};
            rc = stage_exec(conn,
                            "INSERT INTO funnel_stage_state (\"funnelId\", \"definitionUpdatedAt\", "
                            "status, valid) VALUES ($1, $2, $3::\"FunnelStatus\", false) ON CONFLICT "
                            "(\"funnelId\") DO UPDATE SET status = EXCLUDED.status",
                            3, params, errstr, errstr_size) < 0 ? -1 : 0;
            continue;
        }
        tf_funnel_t *funnel = NULL;
        char perr[512];
        if (tf_funnel_parse(PQgetvalue(res, r, 2), strtoll(PQgetvalue(res, r, 3), NULL, 10),
                            PQgetvalue(res, r, 4), &funnel, perr, sizeof(perr)) != 0) {
            rc = record_invalid(conn, id, PQgetvalue(res, r, 1), updated, perr,
                                strcmp(PQgetvalue(res, r, 7), "t") == 0, ctx, errstr,
                                errstr_size);
            continue;
        }
        rc = compute_whole(conn, funnel, id, updated, exclude_bots, ctx, errstr, errstr_size);
        tf_funnel_destroy(funnel);
    }
    PQclear(res);
    return rc;
}

static void funnels_init_metrics(ev_metrics_t *metrics, void *ud) {
    funnels_ctx_t *ctx = ud;
    ctx->m_full = ev_metrics_counter(metrics, "funnels_full_computations_total",
                                     "Funnels computed over their whole history", NULL);
    ctx->m_invalid = ev_metrics_counter(metrics, "funnels_invalid_total",
                                        "Malformed funnel definitions found (audited)", NULL);
    ctx->m_days = ev_metrics_counter(metrics, "funnel_days_recomputed_total",
                                     "Entry days recomputed from stored events", NULL);
    ctx->m_periods = ev_metrics_counter(metrics, "funnel_periods_written_total",
                                        "funnel_results periods rewritten", NULL);
}

static const char funnels_summary[] =
    "Keeps funnel_results exact for every ACTIVE funnel, per DAILY, WEEKLY (ISO) and "
    "MONTHLY period of entry in UTC, from the changes the writers mark in dirty_hours. A "
    "new, changed or re-activated funnel is computed over its whole history; a malformed "
    "one is logged, audited and skipped. See docs/funnels.md.";
static const char funnels_epilog[] =
    "Examples:\n"
    "  evpipe funnels --database postgres://localhost/analytics\n"
    "  evpipe funnels --until-caught-up --metrics-port -1\n"
    "  evpipe funnels --recompute 2026-01-01..2026-02-01 --until-caught-up\n";

int cmd_funnels(int argc, char **argv) {
    static funnels_ctx_t ctx;
    const stage_def_t def = {.name = "funnels",
                             .command = "evpipe funnels",
                             .summary = funnels_summary,
                             .epilog = funnels_epilog,
                             .default_metrics_port = 9103,
                             .process = funnels_process,
                             .tick = funnels_tick,
                             .init_metrics = funnels_init_metrics,
                             .ud = &ctx};
    return stage_main(&def, argc, argv);
}
