/* report_queries.c — one SQL statement per ReportType building the result document
 * (see report_queries.h; the meaning of every field is in docs/reports.md).
 *
 * Every statement takes the same nine text parameters:
 *   $1 from, $2 to (RFC 3339 UTC, NULL without a range), $3 deviceType (NULL = all),
 *   $4 excludeBots ('true' | 'false'), $5 limit, $6 funnelIds / metrics (JSON array),
 *   $7 period, $8 dimensions (JSON object), $9 the ReportType name.
 * Ties of every top-N list are broken by the key in byte order (COLLATE "C"), so the
 * same data always gives the same document. */
#include "consumers/report_queries.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXTOID 25
#define NPARAMS 9

/* RFC 3339 UTC with ms of a timestamptz expression. */
#define TS(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* The UTC date of a timestamptz expression. */
#define DAY(x) "((" x ") AT TIME ZONE 'UTC')::date"
/* The session alias a passes the deviceType filter and the bot exclusion. */
#define SESSION_OK(a)                                                                      \
    "($3 IS NULL OR " a ".\"deviceType\"::text = $3) AND NOT ($4::boolean AND " a          \
    ".\"deviceType\" = 'BOT')"
#define IN_RANGE(col) col " >= $1::timestamptz AND " col " < $2::timestamptz"
#define HEAD "'type', $9, 'from', $1, 'to', $2, 'deviceType', $3, 'excludeBots', $4::boolean"
/* Every UTC day that overlaps [from, to). */
#define DAYS_CTE                                                                           \
    "days AS (SELECT d::date AS day FROM generate_series(" DAY("$1::timestamptz")          \
    "::timestamp, " DAY("$2::timestamptz - interval '1 millisecond'") "::timestamp, "       \
    "interval '1 day') d)"
#define RATE(num, den) "CASE WHEN (" den ") > 0 THEN (" num ")::float8 / (" den ") END"
/* The first $5 rows of the query sub in the given order, as a subquery "t". */
#define TOP_N(sub, order) "(SELECT * FROM (" sub ") g ORDER BY " order " LIMIT $5::int) t"
#define BOUNCE(a) "avg(CASE WHEN coalesce(" a ".\"isBounce\", false) THEN 1.0 ELSE 0.0 END)::float8"

static const char sql_traffic[] =
    "WITH s AS (SELECT s.* FROM analytics_sessions s WHERE " IN_RANGE("s.\"startedAt\"")
    " AND " SESSION_OK("s") "), "
    "pv AS (SELECT p.* FROM page_views p JOIN analytics_sessions s ON s.id = p.\"sessionId\" "
    "WHERE " IN_RANGE("p.\"viewedAt\"") " AND " SESSION_OK("s") "), " DAYS_CTE ", "
    "sd AS (SELECT " DAY("s.\"startedAt\"") " AS day, count(*) AS sessions, "
    "count(DISTINCT s.\"visitorId\") AS visitors, " BOUNCE("s") " AS bounce, "
    "avg(s.\"duration\")::float8 AS dur FROM s GROUP BY 1), "
    "pd AS (SELECT " DAY("pv.\"viewedAt\"") " AS day, count(*) AS n FROM pv GROUP BY 1) "
    "SELECT jsonb_build_object(" HEAD ", "
    "'totals', (SELECT jsonb_build_object('sessions', count(*), 'visitors', "
    "count(DISTINCT s.\"visitorId\"), 'pageViews', (SELECT count(*) FROM pv), 'bounceRate', "
    BOUNCE("s") ", 'avgDurationSeconds', avg(s.\"duration\")::float8, 'pagesPerSession', "
    "avg(s.\"pageViewCount\")::float8) FROM s), "
    "'byDay', (SELECT jsonb_agg(jsonb_build_object('date', to_char(days.day, 'YYYY-MM-DD'), "
    "'sessions', coalesce(sd.sessions, 0), 'visitors', coalesce(sd.visitors, 0), 'pageViews', "
    "coalesce(pd.n, 0), 'bounceRate', sd.bounce, 'avgDurationSeconds', sd.dur) ORDER BY "
    "days.day) FROM days LEFT JOIN sd ON sd.day = days.day LEFT JOIN pd ON pd.day = days.day), "
    "'topPages', (SELECT coalesce(jsonb_agg(jsonb_build_object('path', k, 'pageViews', n, "
    "'visitors', v) ORDER BY n DESC, k COLLATE \"C\" NULLS LAST), '[]') FROM " TOP_N(
        "SELECT pv.\"path\" AS k, count(*) AS n, count(DISTINCT pv.\"visitorId\") AS v FROM pv "
        "GROUP BY 1", "n DESC, k COLLATE \"C\" NULLS LAST") "), "
    "'entryPages', (SELECT coalesce(jsonb_agg(jsonb_build_object('path', k, 'sessions', n, "
    "'bounceRate', b) ORDER BY n DESC, k COLLATE \"C\"), '[]') FROM " TOP_N(
        "SELECT s.\"entryPage\" AS k, count(*) AS n, " BOUNCE("s") " AS b FROM s WHERE "
        "s.\"entryPage\" IS NOT NULL GROUP BY 1", "n DESC, k COLLATE \"C\"") "), "
    "'sources', (SELECT coalesce(jsonb_agg(jsonb_build_object('source', src, 'medium', med, "
    "'sessions', n, 'visitors', v) ORDER BY n DESC, src COLLATE \"C\", med COLLATE \"C\"), "
    "'[]') FROM " TOP_N(
        "SELECT coalesce(s.\"utmSource\", '(direct)') AS src, coalesce(s.\"utmMedium\", "
        "'(none)') AS med, count(*) AS n, count(DISTINCT s.\"visitorId\") AS v FROM s GROUP BY "
        "1, 2", "n DESC, src COLLATE \"C\", med COLLATE \"C\"") "), "
    "'referrers', (SELECT coalesce(jsonb_agg(jsonb_build_object('domain', k, 'sessions', n, "
    "'visitors', v) ORDER BY n DESC, k COLLATE \"C\"), '[]') FROM " TOP_N(
        "SELECT s.\"referrerDomain\" AS k, count(*) AS n, count(DISTINCT s.\"visitorId\") AS v "
        "FROM s WHERE s.\"referrerDomain\" IS NOT NULL GROUP BY 1", "n DESC, k COLLATE \"C\"") "), "
    "'devices', (SELECT coalesce(jsonb_agg(jsonb_build_object('deviceType', k, 'sessions', n, "
    "'visitors', v) ORDER BY n DESC, k COLLATE \"C\"), '[]') FROM " TOP_N(
        "SELECT s.\"deviceType\"::text AS k, count(*) AS n, count(DISTINCT s.\"visitorId\") AS v "
        "FROM s GROUP BY 1", "n DESC, k COLLATE \"C\"") "), "
    "'countries', (SELECT coalesce(jsonb_agg(jsonb_build_object('country', k, 'sessions', n, "
    "'visitors', v) ORDER BY n DESC, k COLLATE \"C\" NULLS LAST), '[]') FROM " TOP_N(
        "SELECT s.\"country\"::text AS k, count(*) AS n, count(DISTINCT s.\"visitorId\") AS v "
        "FROM s GROUP BY 1", "n DESC, k COLLATE \"C\" NULLS LAST") "))::text";

/* {currency: sum of value} of the conversions of c matching cond (a SQL condition). */
#define VALUE_BY_CURRENCY(cond)                                                            \
    "(SELECT coalesce(jsonb_object_agg(cur, v ORDER BY cur), '{}') FROM (SELECT "         \
    "c2.\"currency\"::text AS cur, sum(c2.\"value\") AS v FROM c c2 WHERE c2.\"value\" IS " \
    "NOT NULL AND c2.\"currency\" IS NOT NULL AND " cond " GROUP BY 1) z)"

static const char sql_conversions[] =
    "WITH c AS (SELECT c.* FROM conversion_events c JOIN analytics_sessions s ON s.id = "
    "c.\"sessionId\" WHERE " IN_RANGE("c.\"occurredAt\"") " AND " SESSION_OK("s") ") "
    "SELECT jsonb_build_object(" HEAD ", "
    "'totals', (SELECT jsonb_build_object('conversions', count(*), 'withValue', "
    "count(c.\"value\"), 'converters', count(DISTINCT c.\"visitorId\"), 'value', "
    VALUE_BY_CURRENCY("true") ") FROM c), "
    "'valueByCurrency', (SELECT coalesce(jsonb_agg(jsonb_build_object('currency', cur, "
    "'conversions', n, 'value', v) ORDER BY cur), '[]') FROM (SELECT c.\"currency\"::text AS "
    "cur, count(*) AS n, sum(c.\"value\") AS v FROM c WHERE c.\"value\" IS NOT NULL AND "
    "c.\"currency\" IS NOT NULL GROUP BY 1) t), "
    "'byType', (SELECT coalesce(jsonb_agg(jsonb_build_object('type', t.k, 'conversions', t.n, "
    "'value', " VALUE_BY_CURRENCY("c2.\"type\"::text = t.k") ") ORDER BY t.n DESC, t.k COLLATE "
    "\"C\"), '[]') FROM (SELECT c.\"type\"::text AS k, count(*) AS n FROM c GROUP BY 1) t), "
    "'bySource', (SELECT coalesce(jsonb_agg(jsonb_build_object('source', t.src, 'medium', "
    "t.med, 'campaign', t.camp, 'conversions', t.n, 'value', "
    VALUE_BY_CURRENCY("coalesce(c2.\"utmSource\", '(direct)') = t.src AND "
                      "coalesce(c2.\"utmMedium\", '(none)') = t.med AND "
                      "c2.\"utmCampaign\" IS NOT DISTINCT FROM t.camp")
    ") ORDER BY t.n DESC, t.src COLLATE \"C\", t.med COLLATE \"C\", t.camp COLLATE \"C\" NULLS "
    "FIRST), '[]') FROM " TOP_N(
        "SELECT coalesce(c.\"utmSource\", '(direct)') AS src, coalesce(c.\"utmMedium\", "
        "'(none)') AS med, c.\"utmCampaign\" AS camp, count(*) AS n FROM c GROUP BY 1, 2, 3",
        "n DESC, src COLLATE \"C\", med COLLATE \"C\", camp COLLATE \"C\" NULLS FIRST") "))::text";

#define APPT_COUNTS                                                                        \
    "count(*) FILTER (WHERE e.\"type\" = 'APPOINTMENT_START') AS started, count(*) FILTER " \
    "(WHERE e.\"type\" = 'APPOINTMENT_COMPLETE') AS completed, count(*) FILTER (WHERE "    \
    "e.\"type\" = 'APPOINTMENT_CANCEL') AS cancelled"
#define APPT_OBJECT(a)                                                                     \
    "'started', coalesce(" a ".started, 0), 'completed', coalesce(" a ".completed, 0), "  \
    "'cancelled', coalesce(" a ".cancelled, 0), 'completionRate', " RATE(a ".completed",   \
                                                                         a ".started")    \
    ", 'cancellationRate', " RATE(a ".cancelled", a ".started")

static const char sql_appointments[] =
    "WITH e AS (SELECT e.\"type\", e.\"occurredAt\", e.\"properties\" FROM analytics_events e "
    "JOIN analytics_sessions s ON s.id = e.\"sessionId\" WHERE e.\"type\" IN "
    "('APPOINTMENT_START', 'APPOINTMENT_COMPLETE', 'APPOINTMENT_CANCEL') AND "
    IN_RANGE("e.\"occurredAt\"") " AND " SESSION_OK("s") "), " DAYS_CTE ", "
    "tot AS (SELECT " APPT_COUNTS " FROM e), "
    "ed AS (SELECT " DAY("e.\"occurredAt\"") " AS day, " APPT_COUNTS " FROM e GROUP BY 1), "
    "et AS (SELECT e.\"properties\"->>'appointmentType' AS k, " APPT_COUNTS " FROM e GROUP BY "
    "1) "
    "SELECT jsonb_build_object(" HEAD ", "
    "'totals', (SELECT jsonb_build_object(" APPT_OBJECT("tot") ") FROM tot), "
    "'byDay', (SELECT jsonb_agg(jsonb_build_object('date', to_char(days.day, 'YYYY-MM-DD'), "
    APPT_OBJECT("ed") ") ORDER BY days.day) FROM days LEFT JOIN ed ON ed.day = days.day), "
    "'byAppointmentType', (SELECT coalesce(jsonb_agg(jsonb_build_object('appointmentType', "
    "et.k, " APPT_OBJECT("et") ") ORDER BY et.started DESC, et.k COLLATE \"C\" NULLS LAST), "
    "'[]') FROM et))::text";

/* A JSON number of a jsonb field, or NULL. */
#define JNUM(j, f) "CASE WHEN jsonb_typeof(" j "->'" f "') = 'number' THEN (" j "->>'" f "')::numeric END"

static const char sql_products[] =
    "WITH e AS (SELECT e.\"eventId\", e.\"type\", e.\"properties\" FROM analytics_events e "
    "JOIN analytics_sessions s ON s.id = e.\"sessionId\" WHERE e.\"type\" IN ('PRODUCT_VIEW', "
    "'ADD_TO_CART', 'PURCHASE') AND " IN_RANGE("e.\"occurredAt\"") " AND " SESSION_OK("s")
    " AND jsonb_typeof(e.\"properties\") = 'object'), "
    "lines AS ("
    "SELECT e.\"eventId\" AS eid, e.\"type\"::text AS kind, e.\"properties\"->>'productId' AS "
    "pid, coalesce(" JNUM("e.\"properties\"", "quantity") ", 1) AS qty, NULL::numeric AS "
    "revenue, NULL::text AS cur FROM e WHERE e.\"type\" IN ('PRODUCT_VIEW', 'ADD_TO_CART') AND "
    "jsonb_typeof(e.\"properties\"->'productId') = 'string' "
    "UNION ALL "
    "SELECT e.\"eventId\", 'PURCHASE', it->>'productId', coalesce(" JNUM("it", "quantity")
    ", 1), (" JNUM("it", "price") ") * coalesce(" JNUM("it", "quantity") ", 1), "
    "coalesce(CASE WHEN jsonb_typeof(it->'currency') = 'string' THEN it->>'currency' END, "
    "CASE WHEN jsonb_typeof(e.\"properties\"->'currency') = 'string' THEN "
    "e.\"properties\"->>'currency' END, (SELECT cv.\"currency\"::text FROM conversion_events "
    "cv WHERE cv.\"eventId\" = e.\"eventId\" LIMIT 1), 'XXX') "
    "FROM e CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN "
    "jsonb_typeof(e.\"properties\"->'items') = 'array' THEN e.\"properties\"->'items' ELSE "
    "'[]'::jsonb END) it WHERE e.\"type\" = 'PURCHASE' AND jsonb_typeof(it->'productId') = "
    "'string'), "
    "per AS (SELECT pid, count(*) FILTER (WHERE kind = 'PRODUCT_VIEW') AS views, count(*) "
    "FILTER (WHERE kind = 'ADD_TO_CART') AS carts, coalesce(sum(qty) FILTER (WHERE kind = "
    "'ADD_TO_CART'), 0) AS cart_qty, count(DISTINCT eid) FILTER (WHERE kind = 'PURCHASE') AS "
    "purchases, coalesce(sum(qty) FILTER (WHERE kind = 'PURCHASE'), 0) AS units FROM lines "
    "GROUP BY pid), "
    "rev AS (SELECT pid, cur, sum(revenue) AS v FROM lines WHERE kind = 'PURCHASE' AND revenue "
    "IS NOT NULL GROUP BY 1, 2) "
    "SELECT jsonb_build_object(" HEAD ", "
    "'totals', jsonb_build_object("
    "'products', (SELECT count(*) FROM per), "
    "'productViews', (SELECT count(*) FROM e WHERE e.\"type\" = 'PRODUCT_VIEW'), "
    "'addToCart', (SELECT count(*) FROM e WHERE e.\"type\" = 'ADD_TO_CART'), "
    "'purchases', (SELECT count(*) FROM e WHERE e.\"type\" = 'PURCHASE'), "
    "'revenue', (SELECT coalesce(jsonb_object_agg(cur, v ORDER BY cur), '{}') FROM (SELECT "
    "cur, sum(v) AS v FROM rev GROUP BY 1) t)), "
    "'products', (SELECT coalesce(jsonb_agg(jsonb_build_object('productId', per.pid, 'views', "
    "per.views, 'addToCart', per.carts, 'addToCartQuantity', per.cart_qty, 'purchases', "
    "per.purchases, 'purchasedQuantity', per.units, 'revenue', (SELECT "
    "coalesce(jsonb_object_agg(rev.cur, rev.v ORDER BY rev.cur), '{}') FROM rev WHERE rev.pid "
    "= per.pid)) ORDER BY per.purchases DESC, per.views DESC, per.pid COLLATE \"C\"), '[]') "
    "FROM (SELECT * FROM per ORDER BY purchases DESC, views DESC, pid COLLATE \"C\" LIMIT "
    "$5::int) per))::text";

static const char sql_funnels_check[] =
    "SELECT k FROM jsonb_array_elements_text($6::jsonb) WITH ORDINALITY AS t(k, ord) WHERE "
    "NOT EXISTS (SELECT 1 FROM funnels f WHERE f.id::text = t.k OR f.\"name\" = t.k) ORDER BY "
    "ord LIMIT 1";

static const char sql_funnels[] =
    "WITH sel AS (SELECT f.* FROM funnels f WHERE CASE WHEN $6 IS NULL THEN f.\"status\" <> "
    "'ARCHIVED' ELSE f.id::text IN (SELECT jsonb_array_elements_text($6::jsonb)) OR f.\"name\" "
    "IN (SELECT jsonb_array_elements_text($6::jsonb)) END), "
    "latest AS (SELECT DISTINCT ON (r.\"funnelId\") r.* FROM funnel_results r JOIN sel ON "
    "sel.id = r.\"funnelId\" WHERE r.\"period\"::text = $7 AND ($1 IS NULL OR ("
    IN_RANGE("r.\"periodStart\"") ")) ORDER BY r.\"funnelId\", r.\"periodStart\" DESC) "
    "SELECT jsonb_build_object(" HEAD ", 'period', $7, "
    "'funnels', (SELECT coalesce(jsonb_agg(jsonb_build_object('funnelId', sel.id, 'name', "
    "sel.\"name\", 'status', sel.\"status\", 'scope', sel.\"scope\", "
    "'conversionWindowSeconds', sel.\"conversionWindowSeconds\", 'result', CASE WHEN l.id IS "
    "NULL THEN NULL ELSE jsonb_build_object('periodStart', " TS("l.\"periodStart\"")
    ", 'periodEnd', " TS("l.\"periodEnd\"") ", 'entrants', l.\"entrants\", 'conversions', "
    "l.\"conversions\", 'conversionRate', l.\"conversionRate\", 'stepResults', "
    "l.\"stepResults\", 'computedAt', " TS("l.\"computedAt\"") ") END) ORDER BY sel.\"name\" "
    "COLLATE \"C\", sel.id), '[]') FROM sel LEFT JOIN latest l ON l.\"funnelId\" = sel.id))"
    "::text";

static const char sql_cohorts[] =
    "WITH s AS (SELECT s.\"visitorId\", s.\"startedAt\" FROM analytics_sessions s WHERE "
    "s.\"startedAt\" < $2::timestamptz AND " SESSION_OK("s") "), "
    "c AS (SELECT s.\"visitorId\", date_trunc('week', min(s.\"startedAt\") AT TIME ZONE 'UTC') "
    "AS cw FROM s GROUP BY 1 HAVING min(s.\"startedAt\") >= $1::timestamptz), "
    "act AS (SELECT c.cw, (" DAY("s.\"startedAt\"") " - c.cw::date) / 7 AS wk, count(DISTINCT "
    "c.\"visitorId\") AS n FROM c JOIN s ON s.\"visitorId\" = c.\"visitorId\" GROUP BY 1, 2), "
    "sizes AS (SELECT cw, count(*) AS n FROM c GROUP BY 1), "
    "cells AS (SELECT sizes.cw, sizes.n AS size, k, coalesce(act.n, 0) AS n FROM sizes CROSS "
    "JOIN LATERAL generate_series(0, (extract(epoch FROM ($2::timestamptz AT TIME ZONE 'UTC') "
    "- sizes.cw) / 604800)::int + 1) k LEFT JOIN act ON act.cw = sizes.cw AND act.wk = k "
    "WHERE sizes.cw + k * interval '7 days' < ($2::timestamptz AT TIME ZONE 'UTC')) "
    "SELECT jsonb_build_object(" HEAD ", "
    "'firstTimeVisitors', (SELECT count(*) FROM c), "
    "'cohorts', (SELECT coalesce(jsonb_agg(jsonb_build_object('weekStart', "
    "to_char(r.cw, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'isoWeek', to_char(r.cw, "
    "'IYYY-\"W\"IW'), 'visitors', r.size, 'active', r.active, 'retention', r.rates) ORDER BY "
    "r.cw), '[]') FROM (SELECT cw, size, jsonb_agg(n ORDER BY k) AS active, "
    "jsonb_agg(n::float8 / size ORDER BY k) AS rates FROM cells GROUP BY 1, 2) r))::text";

static const char sql_custom_check[] =
    "SELECT k FROM jsonb_array_elements_text($6::jsonb) WITH ORDINALITY AS t(k, ord) WHERE "
    "NOT EXISTS (SELECT 1 FROM metric_snapshots m WHERE m.\"metricKey\" = t.k) ORDER BY ord "
    "LIMIT 1";

static const char sql_custom[] =
    "WITH req AS (SELECT t.k, t.ord, split_part(t.k, '{', 1) AS base, coalesce((SELECT "
    "m.\"dimensions\" FROM metric_snapshots m WHERE m.\"metricKey\" = t.k LIMIT 1), '{}') || "
    "$8::jsonb AS dims FROM jsonb_array_elements_text($6::jsonb) WITH ORDINALITY AS t(k, ord)), "
    "keyed AS (SELECT req.*, req.base || coalesce((SELECT '{' || string_agg(d.key || '=' || "
    "d.value, ',' ORDER BY d.key COLLATE \"C\") || '}' FROM jsonb_each_text(req.dims) d), '') "
    "AS key FROM req) "
    "SELECT jsonb_build_object(" HEAD ", 'period', $7, 'dimensions', $8::jsonb, "
    "'series', (SELECT jsonb_agg(jsonb_build_object('metric', k.k, 'metricKey', k.key, "
    "'dimensions', k.dims, 'aggregation', (SELECT m.\"aggregation\" FROM metric_snapshots m "
    "WHERE m.\"metricKey\" = k.key LIMIT 1), 'points', (SELECT coalesce(jsonb_agg("
    "jsonb_build_object('periodStart', " TS("m.\"periodStart\"") ", 'periodEnd', "
    TS("m.\"periodEnd\"") ", 'value', m.\"value\", 'sampleCount', m.\"sampleCount\") ORDER BY "
    "m.\"periodStart\"), '[]') FROM metric_snapshots m WHERE m.\"metricKey\" = k.key AND "
    "m.\"period\"::text = $7 AND " IN_RANGE("m.\"periodStart\"") ")) ORDER BY k.ord) FROM "
    "keyed k))::text";

static const char *const type_sql[TF_REPORT_TYPE_COUNT] = {
    [TF_REPORT_TRAFFIC] = sql_traffic,         [TF_REPORT_CONVERSIONS] = sql_conversions,
    [TF_REPORT_APPOINTMENTS] = sql_appointments, [TF_REPORT_PRODUCTS] = sql_products,
    [TF_REPORT_FUNNELS] = sql_funnels,         [TF_REPORT_COHORTS] = sql_cohorts,
    [TF_REPORT_CUSTOM] = sql_custom,
};

static void copy_error(const char *msg, char *errstr, size_t errstr_size) {
    snprintf(errstr, errstr_size, "%s", msg && *msg ? msg : "unknown PostgreSQL error");
    size_t n = strlen(errstr);
    while (n && (errstr[n - 1] == '\n' || errstr[n - 1] == ' ')) errstr[--n] = '\0';
}

static bool broken(PGconn *conn) { return PQstatus(conn) != CONNECTION_OK; }

/* Runs sql asynchronously, calling tick while it waits. On OK sets *res (caller
 * clears). */
static report_query_rc_t run_async(PGconn *conn, const char *sql, const char *const *values,
                                   report_query_tick_fn tick, void *ud, PGresult **res_out,
                                   char *errstr, size_t errstr_size) {
    static const Oid types[NPARAMS] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
                                       TEXTOID, TEXTOID, TEXTOID, TEXTOID};
    if (!PQsendQueryParams(conn, sql, NPARAMS, types, values, NULL, NULL, 0)) {
        copy_error(PQerrorMessage(conn), errstr, errstr_size);
        return broken(conn) ? REPORT_QUERY_RETRY : REPORT_QUERY_FAILED;
    }
    bool cancelled = false;
    while (PQisBusy(conn)) {
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        if (pfd.fd < 0) break;
        poll(&pfd, 1, 200);
        if (!PQconsumeInput(conn)) break;
        if (!cancelled && tick && tick(ud) != 0) {
            cancelled = true;
            PGcancel *cancel = PQgetCancel(conn);
            char ignored[256];
            if (cancel) PQcancel(cancel, ignored, sizeof(ignored));
            PQfreeCancel(cancel);
        }
    }
    report_query_rc_t rc = REPORT_QUERY_OK;
    PGresult *res, *last = NULL;
    while ((res = PQgetResult(conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_TUPLES_OK && rc == REPORT_QUERY_OK) {
            copy_error(PQresultErrorMessage(res), errstr, errstr_size);
            rc = REPORT_QUERY_FAILED;
        }
        PQclear(last);
        last = res;
    }
    if (rc == REPORT_QUERY_OK && !last) {
        copy_error(PQerrorMessage(conn), errstr, errstr_size);
        rc = REPORT_QUERY_FAILED;
    }
    if (cancelled) {
        snprintf(errstr, errstr_size, "cancelled");
        rc = REPORT_QUERY_CANCELLED;
    } else if (rc != REPORT_QUERY_OK && broken(conn)) {
        rc = REPORT_QUERY_RETRY;
    }
    if (rc != REPORT_QUERY_OK) {
        PQclear(last);
        return rc;
    }
    *res_out = last;
    return REPORT_QUERY_OK;
}

report_query_rc_t report_query_run(PGconn *conn, const tf_report_params_t *p, bool exclude_bots,
                                   report_query_tick_fn tick, void *ud, char **json,
                                   char *errstr, size_t errstr_size) {
    if ((unsigned)p->type >= TF_REPORT_TYPE_COUNT) {
        snprintf(errstr, errstr_size, "type: unknown ReportType");
        return REPORT_QUERY_FAILED;
    }
    char limit[24];
    snprintf(limit, sizeof(limit), "%lld", p->limit);
    const char *values[NPARAMS] = {
        p->has_range ? p->from : NULL,
        p->has_range ? p->to : NULL,
        p->device_type,
        exclude_bots ? "true" : "false",
        limit,
        p->keys_json,
        p->period,
        p->dimensions_json ? p->dimensions_json : "{}",
        tf_report_type_name(p->type),
    };
    PGresult *res = NULL;
    report_query_rc_t rc;
    /* Named keys must exist: a typo is an error, not an empty result. */
    const char *check = p->type == TF_REPORT_FUNNELS && p->keys_json ? sql_funnels_check
                        : p->type == TF_REPORT_CUSTOM                ? sql_custom_check
                                                                     : NULL;
    if (check) {
        rc = run_async(conn, check, values, tick, ud, &res, errstr, errstr_size);
        if (rc != REPORT_QUERY_OK) return rc;
        if (PQntuples(res) > 0) {
            snprintf(errstr, errstr_size, "%s '%.200s'",
                     p->type == TF_REPORT_FUNNELS ? "parameters.funnelIds: no funnel has the id "
                                                    "or name"
                                                  : "parameters.metrics: no metric snapshot has "
                                                    "the key",
                     PQgetvalue(res, 0, 0));
            PQclear(res);
            return REPORT_QUERY_FAILED;
        }
        PQclear(res);
        res = NULL;
    }
    rc = run_async(conn, type_sql[p->type], values, tick, ud, &res, errstr, errstr_size);
    if (rc != REPORT_QUERY_OK) return rc;
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        snprintf(errstr, errstr_size, "the report query returned no document");
        PQclear(res);
        return REPORT_QUERY_FAILED;
    }
    char *out = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!out) {
        snprintf(errstr, errstr_size, "out of memory");
        return REPORT_QUERY_RETRY;
    }
    *json = out;
    return REPORT_QUERY_OK;
}
