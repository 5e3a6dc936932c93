/* metric_snapshots.c — `evpipe metrics`: keeps metric_snapshots exact for every
 * period of every SPEC §5 metric, plain and per deviceType (revenue also per
 * currency), recomputing only the periods that hold a claimed dirty hour.
 *
 * Per batch (one transaction, see stage.h), for the claimed hours H:
 *   1. HOURLY metric_rollups of H from the stored rows (sessions by startedAt;
 *      events, page views, conversions by their time; BOT sessions and their rows
 *      left out while bots.excludeFromMetrics).
 *   2. The DAILY, WEEKLY, MONTHLY and YEARLY rollups holding H, each from the finer
 *      level's rows (at most 24, 7, 31 or 12 per metric): exact sums, counts, min, max.
 *   3. Visitors: H's new visitor sets are compared with the stored ones, and only the
 *      differences are applied to the sets of the five periods holding each hour and
 *      to their sizes (metric_visitor_counts), so a year's distinct count stays exact
 *      without rereading the year.
 *   4. metric_snapshots of every affected period replaced from 1–3: rows upserted on
 *      the unique key only when their numbers change (a replay changes nothing), rows
 *      whose samples vanished deleted.
 * All of it is set-based SQL in PostgreSQL: the data never leaves the server. */
#include <stdio.h>
#include <string.h>

#include "common/commands.h"
#include "consumers/stage.h"

/* The affected periods of the claimed hours, with their exclusive ends. */
static const char sql_affected[] =
    "CREATE TEMPORARY TABLE metric_affected ON COMMIT DROP AS "
    "SELECT DISTINCT p.period, p.ps, p.ps + p.len AS pe FROM claimed_hours c "
    "CROSS JOIN LATERAL (VALUES "
    "('HOURLY'::\"MetricPeriod\", c.\"hourStart\", interval '1 hour'), "
    "('DAILY', date_trunc('day', c.\"hourStart\"), interval '1 day'), "
    "('WEEKLY', date_trunc('week', c.\"hourStart\"), interval '7 days'), "
    "('MONTHLY', date_trunc('month', c.\"hourStart\"), interval '1 month'), "
    "('YEARLY', date_trunc('year', c.\"hourStart\"), interval '1 year')) p(period, ps, len)";

static const char sql_delete_hourly[] =
    "DELETE FROM metric_rollups r USING claimed_hours c "
    "WHERE r.period = 'HOURLY' AND r.\"periodStart\" = c.\"hourStart\"";

/* The columns every rollup INSERT fills, and how a grouped row becomes a metric key
 * and its dimensions (dt is NULL for the row without dimension). */
#define ROLLUP_COLUMNS                                                                     \
    "INSERT INTO metric_rollups (period, \"periodStart\", \"metricKey\", aggregation, "   \
    "dimensions, total, samples, \"minValue\", \"maxValue\") "
#define KEY_WITH_DEVICE(key) \
    key " || CASE WHEN a.dt IS NULL THEN '' ELSE '{deviceType=' || a.dt || '}' END"
#define DIMS_WITH_DEVICE \
    "CASE WHEN a.dt IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('deviceType', a.dt) END"
#define DEVICE_OR_NULL "CASE WHEN grouping(s.\"deviceType\") = 0 THEN s.\"deviceType\"::text END"
#define NOT_BOT "NOT ($1::boolean AND s.\"deviceType\" = 'BOT')"
/* Rows of a claimed hour. The second pair of bounds ($2, $3: the first claimed hour and
 * the end of the last) is implied by the first, but gives the planner the real size of
 * the range: without it a join on a range per claimed hour is estimated at a fixed
 * share of the table, and the plan turns to scanning every stored session. */
#define IN_HOUR(col)                                                                     \
    col " >= c.\"hourStart\" AND " col " < c.\"hourStart\" + interval '1 hour' AND " col \
        " >= $2::timestamptz AND " col " < $3::timestamptz"

static const char sql_hourly_sessions[] =
    ROLLUP_COLUMNS
    "SELECT 'HOURLY', a.h, " KEY_WITH_DEVICE("m.key") ", m.agg::\"MetricAggregation\", "
    DIMS_WITH_DEVICE ", m.total, m.samples, m.minv, m.maxv FROM ("
    "SELECT c.\"hourStart\" h, " DEVICE_OR_NULL " dt, count(*) n, "
    "sum(s.\"isBounce\"::int) bounces, sum(s.\"pageViewCount\") pages, sum(s.duration) dsum, "
    "min(s.duration) dmin, max(s.duration) dmax "
    "FROM claimed_hours c JOIN analytics_sessions s ON " IN_HOUR("s.\"startedAt\"")
    " WHERE " NOT_BOT " GROUP BY GROUPING SETS ((c.\"hourStart\"), (c.\"hourStart\", "
    "s.\"deviceType\"))) a CROSS JOIN LATERAL (VALUES "
    "('sessions', 'COUNT', a.n::numeric, a.n, NULL::numeric, NULL::numeric), "
    "('bounce_rate', 'AVG', a.bounces, a.n, NULL, NULL), "
    "('pages_per_session', 'AVG', a.pages, a.n, NULL, NULL), "
    "('session_duration.avg', 'AVG', a.dsum, a.n, NULL, NULL), "
    "('session_duration.min', 'MIN', 0, a.n, a.dmin, a.dmin), "
    "('session_duration.max', 'MAX', 0, a.n, a.dmax, a.dmax)) m(key, agg, total, samples, "
    "minv, maxv)";

static const char sql_hourly_events[] =
    ROLLUP_COLUMNS
    "SELECT 'HOURLY', a.h, " KEY_WITH_DEVICE("m.key") ", 'COUNT', " DIMS_WITH_DEVICE
    ", m.n, m.n, NULL, NULL FROM ("
    "SELECT c.\"hourStart\" h, " DEVICE_OR_NULL " dt, count(*) n, "
    "count(*) FILTER (WHERE e.type = 'PRODUCT_VIEW') product_views, "
    "count(*) FILTER (WHERE e.type = 'APPOINTMENT_START') started, "
    "count(*) FILTER (WHERE e.type = 'APPOINTMENT_COMPLETE') completed "
    "FROM claimed_hours c JOIN analytics_events e ON " IN_HOUR("e.\"occurredAt\"")
    " JOIN analytics_sessions s ON s.id = e.\"sessionId\" WHERE " NOT_BOT
    " GROUP BY GROUPING SETS ((c.\"hourStart\"), (c.\"hourStart\", s.\"deviceType\"))) a "
    "CROSS JOIN LATERAL (VALUES ('events', a.n), ('product_views', a.product_views), "
    "('appointments_started', a.started), ('appointments_completed', a.completed)) m(key, n) "
    "WHERE m.n > 0";

static const char sql_hourly_pageviews[] =
    ROLLUP_COLUMNS
    "SELECT 'HOURLY', a.h, " KEY_WITH_DEVICE("'pageviews'") ", 'COUNT', " DIMS_WITH_DEVICE
    ", a.n, a.n, NULL, NULL FROM ("
    "SELECT c.\"hourStart\" h, " DEVICE_OR_NULL " dt, count(*) n "
    "FROM claimed_hours c JOIN page_views p ON " IN_HOUR("p.\"viewedAt\"")
    " JOIN analytics_sessions s ON s.id = p.\"sessionId\" WHERE " NOT_BOT
    " GROUP BY GROUPING SETS ((c.\"hourStart\"), (c.\"hourStart\", s.\"deviceType\"))) a";

static const char sql_hourly_conversions[] =
    ROLLUP_COLUMNS
    "SELECT 'HOURLY', a.h, " KEY_WITH_DEVICE("'conversions'") ", 'COUNT', " DIMS_WITH_DEVICE
    ", a.n, a.n, NULL, NULL FROM ("
    "SELECT c.\"hourStart\" h, " DEVICE_OR_NULL " dt, count(*) n "
    "FROM claimed_hours c JOIN conversion_events v ON " IN_HOUR("v.\"occurredAt\"")
    " JOIN analytics_sessions s ON s.id = v.\"sessionId\" WHERE " NOT_BOT
    " GROUP BY GROUPING SETS ((c.\"hourStart\"), (c.\"hourStart\", s.\"deviceType\"))) a";

/* revenue{currency=EUR} and revenue{currency=EUR,deviceType=MOBILE}: dimensions in
 * alphabetical order inside one pair of braces. */
static const char sql_hourly_revenue[] =
    ROLLUP_COLUMNS
    "SELECT 'HOURLY', a.h, 'revenue{currency=' || a.cur || CASE WHEN a.dt IS NULL THEN '}' "
    "ELSE ',deviceType=' || a.dt || '}' END, 'SUM', jsonb_build_object('currency', a.cur) || "
    DIMS_WITH_DEVICE ", a.total, a.n, NULL, NULL FROM ("
    "SELECT c.\"hourStart\" h, v.currency::text cur, " DEVICE_OR_NULL " dt, count(*) n, "
    "sum(v.value) total "
    "FROM claimed_hours c JOIN conversion_events v ON " IN_HOUR("v.\"occurredAt\"")
    " JOIN analytics_sessions s ON s.id = v.\"sessionId\" WHERE " NOT_BOT
    " AND v.currency IS NOT NULL AND v.value IS NOT NULL GROUP BY GROUPING SETS "
    "((c.\"hourStart\", v.currency), (c.\"hourStart\", v.currency, s.\"deviceType\"))) a";

/* A coarse level from the finer one; the delete takes the level, the insert the
 * level, the finer level and the level again (periods and ends: metric_affected). */
static const char sql_level_delete_fmt[] =
    "DELETE FROM metric_rollups r USING metric_affected a "
    "WHERE a.period = '%s' AND r.period = a.period AND r.\"periodStart\" = a.ps";
static const char sql_level_insert_fmt[] =
    ROLLUP_COLUMNS
    "SELECT '%s', a.ps, r.\"metricKey\", r.aggregation, r.dimensions, sum(r.total), "
    "sum(r.samples), min(r.\"minValue\"), max(r.\"maxValue\") "
    "FROM metric_affected a JOIN metric_rollups r ON r.period = '%s' "
    "AND r.\"periodStart\" >= a.ps AND r.\"periodStart\" < a.pe WHERE a.period = '%s' "
    "GROUP BY a.ps, r.\"metricKey\", r.aggregation, r.dimensions";

static const struct {
    const char *level, *finer;
} levels[] = {{"DAILY", "HOURLY"}, {"WEEKLY", "DAILY"}, {"MONTHLY", "DAILY"}, {"YEARLY", "MONTHLY"}};

/* Visitors: the claimed hours' sets recomputed, differenced with the stored HOURLY
 * sets, and the differences applied to every period holding the hour. */
static const char sql_visitors_new[] =
    "CREATE TEMPORARY TABLE metric_hour_visitors ON COMMIT DROP AS "
    "SELECT c.\"hourStart\" h, CASE WHEN grouping(s.\"deviceType\") = 0 THEN "
    "s.\"deviceType\"::text ELSE '' END dt, e.\"visitorId\" v, count(*) n "
    "FROM claimed_hours c JOIN analytics_events e ON " IN_HOUR("e.\"occurredAt\"")
    " JOIN analytics_sessions s ON s.id = e.\"sessionId\" WHERE " NOT_BOT
    " GROUP BY GROUPING SETS ((c.\"hourStart\", e.\"visitorId\"), "
    "(c.\"hourStart\", s.\"deviceType\", e.\"visitorId\"))";

static const char sql_visitors_delta[] =
    "CREATE TEMPORARY TABLE metric_visitor_delta ON COMMIT DROP AS "
    "SELECT p.period, p.ps, d.dt, d.v, sum(d.n)::bigint n, 0::bigint old FROM ("
    "SELECT coalesce(n.h, o.\"periodStart\") h, coalesce(n.dt, o.\"deviceType\") dt, "
    "coalesce(n.v, o.\"visitorId\") v, coalesce(n.n, 0) - coalesce(o.events, 0) n "
    "FROM metric_hour_visitors n FULL JOIN (SELECT o.* FROM metric_visitors o "
    "JOIN claimed_hours c ON o.period = 'HOURLY' AND o.\"periodStart\" = c.\"hourStart\" "
    "WHERE o.\"periodStart\" >= $2::timestamptz AND o.\"periodStart\" < $3::timestamptz) o "
    "ON o.\"periodStart\" = n.h AND o.\"deviceType\" = n.dt AND o.\"visitorId\" = n.v) d "
    "CROSS JOIN LATERAL (VALUES ('HOURLY'::\"MetricPeriod\", d.h), "
    "('DAILY', date_trunc('day', d.h)), ('WEEKLY', date_trunc('week', d.h)), "
    "('MONTHLY', date_trunc('month', d.h)), ('YEARLY', date_trunc('year', d.h))) p(period, ps) "
    "WHERE d.n <> 0 GROUP BY p.period, p.ps, d.dt, d.v HAVING sum(d.n) <> 0";

static const char sql_visitors_old[] =
    "UPDATE metric_visitor_delta d SET old = v.events FROM metric_visitors v "
    "WHERE v.period = d.period AND v.\"periodStart\" = d.ps AND v.\"deviceType\" = d.dt "
    "AND v.\"visitorId\" = d.v";

static const char sql_visitor_counts[] =
    "INSERT INTO metric_visitor_counts (period, \"periodStart\", \"deviceType\", visitors, "
    "events) SELECT period, ps, dt, sum((old + n > 0)::int - (old > 0)::int), sum(n) "
    "FROM metric_visitor_delta GROUP BY period, ps, dt "
    "ON CONFLICT (period, \"periodStart\", \"deviceType\") DO UPDATE SET "
    "visitors = metric_visitor_counts.visitors + excluded.visitors, "
    "events = metric_visitor_counts.events + excluded.events";

static const char sql_visitor_counts_empty[] =
    "DELETE FROM metric_visitor_counts c USING metric_affected a WHERE c.period = a.period "
    "AND c.\"periodStart\" = a.ps AND c.events = 0";

static const char sql_visitors_gone[] =
    "DELETE FROM metric_visitors v USING metric_visitor_delta d WHERE d.old + d.n = 0 "
    "AND v.period = d.period AND v.\"periodStart\" = d.ps AND v.\"deviceType\" = d.dt "
    "AND v.\"visitorId\" = d.v";

static const char sql_visitors_upsert[] =
    "INSERT INTO metric_visitors (period, \"periodStart\", \"deviceType\", \"visitorId\", events) "
    "SELECT period, ps, dt, v, old + n FROM metric_visitor_delta WHERE old + n > 0 "
    "ON CONFLICT (period, \"periodStart\", \"deviceType\", \"visitorId\") DO UPDATE SET "
    "events = excluded.events";

/* The snapshots of the affected periods, as they must be now. */
static const char sql_snapshots_new[] =
    "CREATE TEMPORARY TABLE metric_new ON COMMIT DROP AS "
    "SELECT r.\"metricKey\" key, a.period, a.ps, a.pe, r.aggregation agg, "
    "(CASE r.aggregation WHEN 'AVG' THEN r.total / r.samples WHEN 'MIN' THEN r.\"minValue\" "
    "WHEN 'MAX' THEN r.\"maxValue\" ELSE r.total END)::float8 value, r.samples, r.dimensions "
    "FROM metric_affected a JOIN metric_rollups r ON r.period = a.period "
    "AND r.\"periodStart\" = a.ps WHERE r.samples > 0 "
    "UNION ALL SELECT CASE WHEN c.\"deviceType\" = '' THEN 'visitors' ELSE "
    "'visitors{deviceType=' || c.\"deviceType\" || '}' END, a.period, a.ps, a.pe, 'UNIQUE', "
    "c.visitors::float8, c.events, CASE WHEN c.\"deviceType\" = '' THEN '{}'::jsonb ELSE "
    "jsonb_build_object('deviceType', c.\"deviceType\") END "
    "FROM metric_affected a JOIN metric_visitor_counts c ON c.period = a.period "
    "AND c.\"periodStart\" = a.ps WHERE c.visitors > 0";

static const char sql_snapshots_gone[] =
    "DELETE FROM metric_snapshots s USING metric_affected a WHERE s.period = a.period "
    "AND s.\"periodStart\" = a.ps AND NOT EXISTS (SELECT 1 FROM metric_new n "
    "WHERE n.key = s.\"metricKey\" AND n.period = s.period AND n.ps = s.\"periodStart\" "
    "AND n.pe = s.\"periodEnd\")";

static const char sql_snapshots_upsert[] =
    "INSERT INTO metric_snapshots (\"metricKey\", period, \"periodStart\", \"periodEnd\", "
    "aggregation, value, \"sampleCount\", dimensions) "
    "SELECT key, period, ps, pe, agg, value, samples, dimensions FROM metric_new "
    "ON CONFLICT (\"metricKey\", period, \"periodStart\", \"periodEnd\") DO UPDATE SET "
    "aggregation = excluded.aggregation, value = excluded.value, "
    "\"sampleCount\" = excluded.\"sampleCount\", dimensions = excluded.dimensions, "
    "\"computedAt\" = now() WHERE (metric_snapshots.aggregation, metric_snapshots.value, "
    "metric_snapshots.\"sampleCount\", metric_snapshots.dimensions) IS DISTINCT FROM "
    "(excluded.aggregation, excluded.value, excluded.\"sampleCount\", excluded.dimensions)";

/* Runs one statement of the batch with its three parameters, typed so that a statement
 * may use any of them: $1 bots.excludeFromMetrics, $2 the first claimed hour, $3 the
 * end of the last one. Returns 0, or -1 with errstr. */
static int run(PGconn *conn, const char *sql, const char *const params[3], char *errstr,
               size_t errstr_size) {
    static const Oid types[3] = {16 /* boolean */, 1184 /* timestamptz */, 1184};
    PGresult *res = PQexecParams(conn, sql, 3, types, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
    if (rc != 0) snprintf(errstr, errstr_size, "%s", PQresultErrorMessage(res));
    PQclear(res);
    return rc;
}

static int metrics_process(const stage_batch_t *batch, void *ud, char *errstr,
                           size_t errstr_size) {
    (void)ud;
    char lo[64], hi[64];
    PGresult *res = PQexec(batch->conn, "SELECT min(\"hourStart\"), max(\"hourStart\") + "
                                        "interval '1 hour' FROM claimed_hours");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        snprintf(errstr, errstr_size, "claimed hours: %s", PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    snprintf(lo, sizeof(lo), "%s", PQgetvalue(res, 0, 0));
    snprintf(hi, sizeof(hi), "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    const char *bots[3] = {batch->exclude_bots ? "true" : "false", lo, hi};
    const char *const hourly[] = {sql_affected,         sql_delete_hourly,
                                  sql_hourly_sessions,  sql_hourly_events,
                                  sql_hourly_pageviews, sql_hourly_conversions,
                                  sql_hourly_revenue};
    for (size_t i = 0; i < sizeof(hourly) / sizeof(hourly[0]); i++)
        if (run(batch->conn, hourly[i], bots, errstr, errstr_size) != 0) return -1;
    if (run(batch->conn, "ANALYZE metric_affected", bots, errstr, errstr_size) != 0) return -1;
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        char sql[2048];
        snprintf(sql, sizeof(sql), sql_level_delete_fmt, levels[i].level);
        if (run(batch->conn, sql, bots, errstr, errstr_size) != 0) return -1;
        snprintf(sql, sizeof(sql), sql_level_insert_fmt, levels[i].level, levels[i].finer,
                 levels[i].level);
        if (run(batch->conn, sql, bots, errstr, errstr_size) != 0) return -1;
    }
    /* The temporary tables are analyzed so that the statements joining them with the
     * big tables look rows up by key instead of scanning. */
    const char *const rest[] = {sql_visitors_new,
                                "ANALYZE metric_hour_visitors",
                                sql_visitors_delta,
                                "ANALYZE metric_visitor_delta",
                                sql_visitors_old,
                                sql_visitor_counts,
                                sql_visitor_counts_empty,
                                sql_visitors_gone,
                                sql_visitors_upsert,
                                sql_snapshots_new,
                                "ANALYZE metric_new",
                                sql_snapshots_gone,
                                sql_snapshots_upsert};
    for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
        if (run(batch->conn, rest[i], bots, errstr, errstr_size) != 0) return -1;
    return 0;
}

static const char metrics_summary[] =
    "Keeps metric_snapshots exact (SPEC section 5): every built-in metric for HOURLY,\n"
    "DAILY, WEEKLY (ISO), MONTHLY and YEARLY UTC periods, plain and per deviceType (revenue\n"
    "per currency too). It absorbs the hours that ingest and any other writer marked in\n"
    "dirty_hours, in the transaction that writes the new numbers, so a crash never leaves\n"
    "a half-written period and never skips one. Only periods holding changed hours are\n"
    "recomputed, coarse ones from exact finer state.";

static const char metrics_epilog[] =
    "Examples:\n"
    "  evpipe metrics --database postgresql://evpipe@db/analytics\n"
    "  evpipe metrics --recompute 2026-01-01..2027-01-01 --until-caught-up\n"
    "Exit codes: 0 done (stopped or caught up), 1 fatal error, 2 bad usage or configuration.";

int cmd_metrics(int argc, char **argv) {
    const stage_def_t def = {.name = "metrics",
                             .command = "evpipe metrics",
                             .summary = metrics_summary,
                             .epilog = metrics_epilog,
                             .default_metrics_port = 9102,
                             .process = metrics_process};
    return stage_main(&def, argc, argv);
}
