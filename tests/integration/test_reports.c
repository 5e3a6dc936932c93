/* test_reports — `evpipe reports` end to end on a real PostgreSQL: a known data set put
 * in with plain INSERTs (snapshots and funnel results by the real metrics and funnels
 * stages), one report of every type run by the binary, and each result's numbers
 * compared with SQL written here in another shape (correlated subqueries, plain GROUP
 * BYs) or with a computation in C (cohorts); the deviceType filter, bot exclusion both
 * ways, an empty range, invalid parameters and a failing query FAILED with the problem
 * named; two workers on 20 reports complete each exactly once; SIGTERM during a job
 * gives it back; a SIGKILLed worker's report is reclaimed after its lease and completed
 * once; a long-running worker is woken by NOTIFY and serves /readyz and
 * /metrics. */
#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/testlib.h"

/* Session i (0..199) of visitor VN(i), started at T0 + i × 97 minutes. */
#define N_SESSIONS 200
#define SID(i) "('00000000-0000-0000-0000-' || lpad((" i ")::text, 12, '0'))::uuid"
#define START(i) "('2026-03-02T00:00:00Z'::timestamptz + (" i ") * interval '97 minutes')"
/* Visitor number of session i: v00..v59 in the first 120 sessions (their first sessions
 * in the week of 03-02), v60..v89 after (first seen in the week of 03-09). */
#define VN(i) "(CASE WHEN (" i ") < 120 THEN (" i ") % 60 ELSE 60 + (" i ") % 30 END)"
#define NOBOT " \"deviceType\" <> 'BOT' "

static void load_data(PGconn *conn) {
    tl_exec(conn,
            "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", \"endedAt\", "
            "duration, \"pageViewCount\", \"isBounce\", \"entryPage\", \"referrerDomain\", "
            "\"utmSource\", \"utmMedium\", \"utmCampaign\", \"deviceType\", country) "
            "SELECT " SID("i") ", 'v' || lpad(" VN("i") "::text, 2, '0'), " START("i") ", " START("i")
            " + ((i * 37) % 600) * interval '1 second', (i * 37) % 600, i % 4, i % 3 = 0, "
            "CASE WHEN i % 4 = 0 THEN NULL ELSE '/p' || (i % 7) END, "
            "(ARRAY[NULL, 'google.com', 'news.example', 't.co'])[i % 4 + 1], "
            "(ARRAY[NULL, 'google', 'newsletter', 'google', 'ads'])[i % 5 + 1], "
            "(ARRAY[NULL, 'organic', 'email', 'cpc', 'cpc'])[i % 5 + 1], "
            "CASE WHEN i % 5 = 4 THEN 'spring' END, "
            "(ARRAY['DESKTOP', 'MOBILE', 'TABLET', 'BOT', 'UNKNOWN', 'MOBILE'])[" VN("i") " % 6 + 1]"
            "::\"DeviceType\", (ARRAY['DE', 'FR', 'US', NULL])[i % 4 + 1] "
            "FROM generate_series(0, 199) i");
    tl_exec(conn, "INSERT INTO page_views (\"sessionId\", \"eventId\", \"visitorId\", url, path, "
                  "\"viewedAt\") SELECT s.id, 'pv-' || s.id || '-' || k, s.\"visitorId\", "
                  "'https://shop.test/p' || ((row_number() OVER (ORDER BY s.id) + k) % 9), "
                  "'/p' || ((row_number() OVER (ORDER BY s.id) + k) % 9), s.\"startedAt\" + k * "
                  "interval '10 seconds' FROM analytics_sessions s CROSS JOIN generate_series(1, "
                  "3) k WHERE k <= s.\"pageViewCount\"");
    /* Product views, carts, purchases, appointments. */
    tl_exec(conn, "INSERT INTO analytics_events (\"sessionId\", \"eventId\", type, "
                  "\"visitorId\", \"occurredAt\", properties) "
                  "SELECT " SID("i") ", 'view-' || i || '-' || k, 'PRODUCT_VIEW'::\"EventType\", 'v' || "
                  "lpad(" VN("i") "::text, 2, '0'), " START("i") " + k * interval '1 second', "
                  "jsonb_build_object('productId', 'SKU-' || ((i + k) % 5), 'price', 10) FROM "
                  "generate_series(0, 199) i CROSS JOIN generate_series(0, 2) k WHERE k <= i % 3 "
                  "UNION ALL SELECT " SID("i") ", 'cart-' || i, 'ADD_TO_CART', 'v' || "
                  "lpad(" VN("i") "::text, 2, '0'), " START("i") " + interval '5 seconds', "
                  "jsonb_build_object('productId', 'SKU-' || (i % 5), 'quantity', i % 3 + 1) "
                  "FROM generate_series(0, 199) i WHERE i % 4 = 1 "
                  "UNION ALL SELECT " SID("i") ", 'buy-' || i, 'PURCHASE', 'v' || "
                  "lpad(" VN("i") "::text, 2, '0'), " START("i") " + interval '9 seconds', "
                  "jsonb_build_object('orderId', 'O' || i, 'items', jsonb_build_array("
                  "jsonb_build_object('productId', 'SKU-' || (i % 5), 'price', 10.5 + i % 5, "
                  "'quantity', i % 3 + 1), jsonb_build_object('productId', 'SKU-9', 'price', 3, "
                  "'quantity', 1))) FROM generate_series(0, 199) i WHERE i % 8 = 1 "
                  "UNION ALL SELECT " SID("i") ", 'appt-' || i || '-' || t, t::\"EventType\", "
                  "'v' || lpad(" VN("i") "::text, 2, '0'), " START("i") " + interval '20 seconds', "
                  "jsonb_build_object('appointmentType', CASE WHEN (i / 5) % 2 = 0 THEN 'exam' "
                  "ELSE 'fitting' END) FROM generate_series(0, 199) i CROSS JOIN (VALUES "
                  "('APPOINTMENT_START'), ('APPOINTMENT_COMPLETE'), ('APPOINTMENT_CANCEL')) v(t) "
                  "WHERE i % 5 = 2 AND (t = 'APPOINTMENT_START' OR (t = 'APPOINTMENT_COMPLETE' "
                  "AND i % 10 = 2) OR (t = 'APPOINTMENT_CANCEL' AND i % 10 = 7))");
    /* Conversions: purchases (value in EUR or USD), completed appointments, leads. */
    tl_exec(conn, "INSERT INTO conversion_events (\"sessionId\", \"eventId\", \"visitorId\", "
                  "type, value, currency, \"utmSource\", \"utmMedium\", \"utmCampaign\", "
                  "\"occurredAt\") SELECT e.\"sessionId\", e.\"eventId\", e.\"visitorId\", "
                  "e.type, CASE WHEN e.type = 'PURCHASE' THEN (SELECT sum((it->>'price')::numeric "
                  "* (it->>'quantity')::numeric) FROM jsonb_array_elements(e.properties->'items') "
                  "it) END, CASE WHEN e.type = 'PURCHASE' THEN CASE WHEN e.\"eventId\" LIKE '%1' "
                  "THEN 'EUR' ELSE 'USD' END END, s.\"utmSource\", s.\"utmMedium\", "
                  "s.\"utmCampaign\", e.\"occurredAt\" FROM analytics_events e JOIN "
                  "analytics_sessions s ON s.id = e.\"sessionId\" WHERE e.type IN ('PURCHASE', "
                  "'APPOINTMENT_COMPLETE')");
    tl_exec(conn, "INSERT INTO conversion_events (\"sessionId\", \"eventId\", \"visitorId\", "
                  "type, \"utmSource\", \"utmMedium\", \"utmCampaign\", \"occurredAt\") SELECT "
                  "s.id, 'lead-' || s.id, s.\"visitorId\", 'LEAD', s.\"utmSource\", "
                  "s.\"utmMedium\", s.\"utmCampaign\", s.\"startedAt\" + interval '30 seconds' "
                  "FROM analytics_sessions s WHERE s.\"pageViewCount\" = 3");
}

static void run_cmd(const char *what, const char *cmd) {
    char *out = NULL, *err = NULL;
    int rc = tl_run(cmd, &out, &err);
    ck_assert_msg(rc == 0, "%s exited %d: %s", what, rc, err ? err : "");
    free(out);
    free(err);
}

static void run_reports(const char *url) {
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s reports --database '%s' --until-caught-up --metrics-port -1",
             tl_evpipe_bin(), url);
    run_cmd("reports", cmd);
}

static void run_stage(const char *stage, const char *url) {
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s %s --database '%s' --until-caught-up --metrics-port -1 "
             "--debounce-ms 0", tl_evpipe_bin(), stage, url);
    run_cmd(stage, cmd);
}

static void add_report(PGconn *conn, const char *name, const char *type, const char *params) {
    const char *values[] = {name, type, params};
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO reports (name, type, parameters) VALUES ($1, "
                                 "$2::\"ReportType\", $3::jsonb)",
                                 3, NULL, values, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(conn));
    PQclear(res);
}

/* Asserts that two queries return the same rows, as text, in the same order. */
static void same_rows(PGconn *conn, const char *what, const char *actual, const char *expected) {
    PGresult *a = PQexec(conn, actual), *e = PQexec(conn, expected);
    ck_assert_msg(PQresultStatus(a) == PGRES_TUPLES_OK, "%s: actual: %s", what,
                  PQresultErrorMessage(a));
    ck_assert_msg(PQresultStatus(e) == PGRES_TUPLES_OK, "%s: expected: %s", what,
                  PQresultErrorMessage(e));
    ck_assert_msg(PQntuples(a) == PQntuples(e), "%s: %d rows, expected %d", what, PQntuples(a),
                  PQntuples(e));
    ck_assert_msg(PQnfields(a) == PQnfields(e), "%s: %d columns, expected %d", what,
                  PQnfields(a), PQnfields(e));
    ck_assert_msg(PQntuples(e) > 0, "%s: the expectation is empty (test data?)", what);
    for (int r = 0; r < PQntuples(a); r++)
        for (int c = 0; c < PQnfields(a); c++) {
            const char *va = PQgetisnull(a, r, c) ? "NULL" : PQgetvalue(a, r, c);
            const char *ve = PQgetisnull(e, r, c) ? "NULL" : PQgetvalue(e, r, c);
            ck_assert_msg(strcmp(va, ve) == 0, "%s: row %d column %d: '%s', expected '%s'",
                          what, r, c, va, ve);
        }
    PQclear(a);
    PQclear(e);
}

static void assert_status(PGconn *conn, const char *name, const char *status,
                          const char *error_part) {
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT status::text || ' ' || coalesce(error, '') FROM reports "
             "WHERE name = '%s'", name);
    char *got = tl_query_text(conn, sql);
    ck_assert_msg(got && strncmp(got, status, strlen(status)) == 0, "%s: %s, expected %s", name,
                  got ? got : "(none)", status);
    if (error_part)
        ck_assert_msg(strstr(got, error_part) != NULL, "%s: error '%s' lacks '%s'", name, got,
                      error_part);
    free(got);
}

#define R(name) "(SELECT result FROM reports WHERE name = '" name "')"
#define ELEMS(name, field) \
    "jsonb_array_elements(" R(name) "->'" field "') WITH ORDINALITY AS x(j, o)"
#define RND(x) "round((" x ")::numeric, 9)"
#define RANGE1 " BETWEEN '2026-03-03T00:00:00Z' AND '2026-03-09T23:59:59.999Z' "

static void check_traffic(PGconn *conn, const char *name, const char *dev_filter,
                          const char *limit) {
    char a[4096], e[4096], what[64];
    /* totals */
    snprintf(what, sizeof(what), "%s totals", name);
    snprintf(a, sizeof(a),
             "SELECT t->>'sessions', t->>'visitors', t->>'pageViews', " RND("t->>'bounceRate'")
             ", " RND("t->>'avgDurationSeconds'") ", " RND("t->>'pagesPerSession'")
             " FROM (SELECT " R("%s") "->'totals' AS t) x",
             name);
    snprintf(e, sizeof(e),
             "SELECT (SELECT count(*) FROM analytics_sessions WHERE \"startedAt\"" RANGE1
             "AND %s), (SELECT count(*) FROM (SELECT DISTINCT \"visitorId\" FROM "
             "analytics_sessions WHERE \"startedAt\"" RANGE1 "AND %s) v), (SELECT count(*) FROM "
             "page_views p WHERE p.\"viewedAt\"" RANGE1 "AND p.\"sessionId\" IN (SELECT id FROM "
             "analytics_sessions WHERE %s)), (SELECT " RND("sum(CASE WHEN \"isBounce\" THEN 1 "
                                                            "ELSE 0 END)::numeric / count(*)")
             " FROM analytics_sessions WHERE \"startedAt\"" RANGE1 "AND %s), (SELECT "
             RND("sum(duration)::numeric / count(*)") " FROM analytics_sessions WHERE "
             "\"startedAt\"" RANGE1 "AND %s), (SELECT " RND("sum(\"pageViewCount\")::numeric / "
                                                            "count(*)")
             " FROM analytics_sessions WHERE \"startedAt\"" RANGE1 "AND %s)",
             dev_filter, dev_filter, dev_filter, dev_filter, dev_filter, dev_filter);
    same_rows(conn, what, a, e);
    /* by day: 7 days, each counted with its own subquery */
    snprintf(what, sizeof(what), "%s byDay", name);
    snprintf(a, sizeof(a),
             "SELECT j->>'date', j->>'sessions', j->>'visitors', j->>'pageViews' FROM "
             ELEMS("%s", "byDay") " ORDER BY o",
             name);
    snprintf(e, sizeof(e),
             "SELECT to_char(d, 'YYYY-MM-DD'), (SELECT count(*) FROM analytics_sessions WHERE "
             "\"startedAt\" >= d AND \"startedAt\" < d + interval '1 day' AND %s), (SELECT "
             "count(DISTINCT \"visitorId\") FROM analytics_sessions WHERE \"startedAt\" >= d AND "
             "\"startedAt\" < d + interval '1 day' AND %s), (SELECT count(*) FROM page_views p "
             "JOIN analytics_sessions s ON s.id = p.\"sessionId\" WHERE p.\"viewedAt\" >= d AND "
             "p.\"viewedAt\" < d + interval '1 day' AND s.id IN (SELECT id FROM analytics_sessions WHERE %s)) FROM (VALUES "
             "('2026-03-03T00:00:00Z'::timestamptz), ('2026-03-04Z'), ('2026-03-05Z'), "
             "('2026-03-06Z'), ('2026-03-07Z'), ('2026-03-08Z'), ('2026-03-09Z')) v(d) ORDER BY d",
             dev_filter, dev_filter, dev_filter);
    same_rows(conn, what, a, e);
    /* top pages */
    snprintf(what, sizeof(what), "%s topPages", name);
    snprintf(a, sizeof(a),
             "SELECT j->>'path', j->>'pageViews', j->>'visitors' FROM " ELEMS("%s", "topPages")
             " ORDER BY o",
             name);
    snprintf(e, sizeof(e),
             "SELECT p.path, count(*), count(DISTINCT p.\"visitorId\") FROM page_views p JOIN "
             "analytics_sessions s ON s.id = p.\"sessionId\" WHERE p.\"viewedAt\"" RANGE1
             "AND s.id IN (SELECT id FROM analytics_sessions WHERE %s) GROUP BY p.path ORDER BY count(*) DESC, p.path COLLATE \"C\" LIMIT %s",
             dev_filter, limit);
    same_rows(conn, what, a, e);
    /* entry pages, sources, referrers, devices, countries */
    const struct {
        const char *field, *cols, *key, *where;
    } lists[] = {
        {"entryPages", "j->>'path', j->>'sessions'", "\"entryPage\"", "\"entryPage\" IS NOT NULL"},
        {"referrers", "j->>'domain', j->>'sessions'", "\"referrerDomain\"",
         "\"referrerDomain\" IS NOT NULL"},
        {"devices", "j->>'deviceType', j->>'sessions'", "\"deviceType\"::text", "true"},
        {"countries", "j->>'country', j->>'sessions'", "country::text", "true"},
        {"sources", "(j->>'source') || '/' || (j->>'medium'), j->>'sessions'",
         "coalesce(\"utmSource\", '(direct)') || '/' || coalesce(\"utmMedium\", '(none)')",
         "true"},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        snprintf(what, sizeof(what), "%s %s", name, lists[i].field);
        snprintf(a, sizeof(a), "SELECT %s FROM " ELEMS("%s", "%s") " ORDER BY o", lists[i].cols,
                 name, lists[i].field);
        snprintf(e, sizeof(e),
                 "SELECT * FROM (SELECT %s AS k, count(*) AS n FROM analytics_sessions WHERE "
                 "\"startedAt\"" RANGE1 "AND %s AND %s GROUP BY 1) g ORDER BY n DESC, k COLLATE "
                 "\"C\" NULLS LAST LIMIT %s",
                 lists[i].key, dev_filter, lists[i].where, limit);
        same_rows(conn, what, a, e);
    }
}

#define WHOLE " BETWEEN '2026-03-01T00:00:00Z' AND '2026-03-19T23:59:59.999Z' "

/* The report checked next: its result as "cur", its sessions as "ok_sessions". */
#define CUR "(SELECT result FROM cur)"
#define ELEMS_CUR(field) "jsonb_array_elements(" CUR "->'" field "') WITH ORDINALITY AS x(j, o)"

static void use_report(PGconn *conn, const char *name, const char *dev_filter) {
    char sql[512];
    tl_exec(conn, "SET client_min_messages = warning; DROP TABLE IF EXISTS cur; DROP VIEW IF "
                  "EXISTS ok_sessions");
    snprintf(sql, sizeof(sql), "CREATE TEMP TABLE cur AS SELECT result FROM reports WHERE name "
             "= '%s'", name);
    tl_exec(conn, sql);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM cur WHERE result IS NOT NULL"), 1);
    snprintf(sql, sizeof(sql), "CREATE TEMP VIEW ok_sessions AS SELECT id FROM "
             "analytics_sessions WHERE %s", dev_filter);
    tl_exec(conn, sql);
}

static void check_conversions(PGconn *conn, const char *name, const char *dev_filter) {
    use_report(conn, name, dev_filter);
    same_rows(conn, "conversions totals",
              "SELECT " CUR "->'totals'->>'conversions', " CUR "->'totals'->'value'",
              "SELECT count(*), (SELECT jsonb_object_agg(currency, v) FROM (SELECT currency, "
              "sum(value) v FROM conversion_events c JOIN analytics_sessions s ON s.id = "
              "c.\"sessionId\" WHERE s.id IN (SELECT id FROM ok_sessions) AND value IS NOT NULL GROUP BY 1) t) FROM "
              "conversion_events c WHERE c.\"sessionId\" IN (SELECT id FROM ok_sessions)");
    same_rows(conn, "conversions byType",
              "SELECT j->>'type', j->>'conversions', j->'value' FROM " ELEMS_CUR("byType")
              " ORDER BY o",
              "SELECT type::text, count(*), coalesce(jsonb_object_agg(currency, v) FILTER (WHERE "
              "currency IS NOT NULL), '{}') FROM (SELECT type, currency, count(*) n, sum(value) v "
              "FROM conversion_events WHERE \"sessionId\" IN (SELECT id FROM ok_sessions) GROUP BY 1, 2) t, LATERAL generate_series(1, n::int) GROUP BY 1 "
              "ORDER BY count(*) DESC, type::text COLLATE \"C\"");
    same_rows(conn, "conversions valueByCurrency",
              "SELECT j->>'currency', j->>'conversions', j->>'value' FROM "
              ELEMS_CUR("valueByCurrency") " ORDER BY o",
              "SELECT currency, count(*), sum(value) FROM conversion_events WHERE value IS NOT "
              "NULL AND \"sessionId\" IN (SELECT id FROM ok_sessions) GROUP "
              "BY 1 ORDER BY 1");
    same_rows(conn, "conversions bySource",
              "SELECT j->>'source', j->>'medium', coalesce(j->>'campaign', '-'), "
              "j->>'conversions' FROM " ELEMS_CUR("bySource") " ORDER BY o",
              "SELECT coalesce(\"utmSource\", '(direct)'), coalesce(\"utmMedium\", '(none)'), "
              "coalesce(\"utmCampaign\", '-'), count(*) FROM conversion_events WHERE "
              "\"sessionId\" IN (SELECT id FROM ok_sessions) GROUP BY 1, "
              "2, 3, \"utmCampaign\" ORDER BY count(*) DESC, coalesce(\"utmSource\", '(direct)') "
              "COLLATE \"C\", coalesce(\"utmMedium\", '(none)') COLLATE \"C\", "
              "\"utmCampaign\" COLLATE \"C\" NULLS FIRST LIMIT 10");
}

static void check_appointments(PGconn *conn, const char *name, const char *dev_filter) {
    use_report(conn, name, dev_filter);
    same_rows(conn, "appointments totals",
              "SELECT t->>'started', t->>'completed', t->>'cancelled', "
              RND("t->>'completionRate'") " FROM (SELECT " CUR "->'totals' t) x",
              "SELECT st, co, ca, " RND("co::numeric / st") " FROM (SELECT "
              "sum((type = 'APPOINTMENT_START')::int) st, sum((type = "
              "'APPOINTMENT_COMPLETE')::int) co, sum((type = 'APPOINTMENT_CANCEL')::int) ca FROM "
              "analytics_events e WHERE \"occurredAt\"" WHOLE "AND \"sessionId\" IN (SELECT id "
              "FROM ok_sessions)) t");
    /* by day: one subquery per type and day of the 19 */
    same_rows(conn, "appointments byDay",
              "SELECT j->>'date', j->>'started', j->>'completed', j->>'cancelled' FROM "
              ELEMS_CUR("byDay") " ORDER BY o",
              "SELECT to_char(d, 'YYYY-MM-DD'), (SELECT count(*) FROM analytics_events e WHERE "
              "type = 'APPOINTMENT_START' AND (\"occurredAt\" AT TIME ZONE 'UTC')::date = d AND "
              "\"sessionId\" IN (SELECT id FROM ok_sessions)), (SELECT "
              "count(*) FROM analytics_events e WHERE type = 'APPOINTMENT_COMPLETE' AND "
              "(\"occurredAt\" AT TIME ZONE 'UTC')::date = d AND \"sessionId\" IN (SELECT id FROM "
              "ok_sessions)), (SELECT count(*) FROM analytics_events e "
              "WHERE type = 'APPOINTMENT_CANCEL' AND (\"occurredAt\" AT TIME ZONE 'UTC')::date = "
              "d AND \"sessionId\" IN (SELECT id FROM ok_sessions)) FROM "
              "generate_series('2026-03-01'::date, '2026-03-19'::date, '1 day') d ORDER BY d");
}

static void check_products(PGconn *conn, const char *name, const char *dev_filter) {
    use_report(conn, name, dev_filter);
    /* Expected per product from per-kind GROUP BYs, joined in a FULL JOIN. */
    same_rows(conn, "products",
              "SELECT j->>'productId', j->>'views', j->>'addToCart', j->>'addToCartQuantity', "
              "j->>'purchases', j->>'purchasedQuantity', j->'revenue' FROM "
              ELEMS_CUR("products") " ORDER BY o",
              "WITH ok AS (SELECT * FROM analytics_events WHERE \"sessionId\" IN (SELECT id FROM "
              "ok_sessions)), "
              "v AS (SELECT properties->>'productId' p, count(*) n FROM ok WHERE type = "
              "'PRODUCT_VIEW' GROUP BY 1), "
              "c AS (SELECT properties->>'productId' p, count(*) n, sum((properties->>'quantity')"
              "::int) q FROM ok WHERE type = 'ADD_TO_CART' GROUP BY 1), "
              "b AS (SELECT it->>'productId' p, count(DISTINCT ok.\"eventId\") n, "
              "sum((it->>'quantity')::int) q FROM ok, jsonb_array_elements(properties->'items') "
              "it WHERE type = 'PURCHASE' GROUP BY 1), "
              "r AS (SELECT p, jsonb_object_agg(cur, v) rev FROM (SELECT it->>'productId' p, "
              "cv.currency::text cur, sum((it->>'price')::numeric * (it->>'quantity')::numeric) v "
              "FROM ok JOIN conversion_events cv ON cv.\"eventId\" = ok.\"eventId\", "
              "jsonb_array_elements(ok.properties->'items') it WHERE ok.type = 'PURCHASE' GROUP BY "
              "1, 2) t GROUP BY 1), "
              "allp AS (SELECT p FROM v UNION SELECT p FROM c UNION SELECT p FROM b) "
              "SELECT allp.p, coalesce(v.n, 0), coalesce(c.n, 0), coalesce(c.q, 0), "
              "coalesce(b.n, 0), coalesce(b.q, 0), coalesce(r.rev, '{}') FROM allp LEFT JOIN v "
              "USING (p) LEFT JOIN c USING (p) LEFT JOIN b USING (p) LEFT JOIN r USING (p) ORDER "
              "BY coalesce(b.n, 0) DESC, coalesce(v.n, 0) DESC, allp.p COLLATE \"C\" LIMIT 4");
}

/* Cohorts computed in C from the raw sessions: first session per visitor, ISO week
 * (Monday) of it, activity per later week while the week starts before `to`. */
static void check_cohorts(PGconn *conn, const char *name, long long from_s, long long to_s,
                          const char *dev_filter) {
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT \"visitorId\", extract(epoch FROM \"startedAt\")::bigint "
             "FROM analytics_sessions WHERE %s ORDER BY 1, 2", dev_filter);
    PGresult *res = PQexec(conn, sql);
    ck_assert(PQresultStatus(res) == PGRES_TUPLES_OK);
    enum { MAXC = 8, MAXW = 8 };
    long long cstart[MAXC];
    int nc = 0;
    long long size[MAXC] = {0}, active[MAXC][MAXW] = {{0}};
    int rows = PQntuples(res);
    for (int r = 0; r < rows;) {
        const char *v = PQgetvalue(res, r, 0);
        int end = r;
        while (end < rows && strcmp(PQgetvalue(res, end, 0), v) == 0) end++;
        long long first = strtoll(PQgetvalue(res, r, 1), NULL, 10);
        if (first >= from_s && first < to_s) {
            /* 1970-01-01 was a Thursday: Monday-based weeks start 4 days before. */
            long long monday = ((first + 3 * 86400) / (7 * 86400)) * 7 * 86400 - 3 * 86400;
            int c = 0;
            while (c < nc && cstart[c] != monday) c++;
            if (c == nc) cstart[nc++] = monday;
            ck_assert(nc <= MAXC);
            size[c]++;
            bool seen[MAXW] = {false};
            for (int k = r; k < end; k++) {
                long long t = strtoll(PQgetvalue(res, k, 1), NULL, 10);
                if (t >= to_s) continue;
                int w = (int)((t - monday) / (7 * 86400));
                if (w < MAXW && !seen[w]) {
                    seen[w] = true;
                    active[c][w]++;
                }
            }
        }
        r = end;
    }
    PQclear(res);
    /* sort cohorts by start */
    for (int i = 0; i < nc; i++)
        for (int j = i + 1; j < nc; j++)
            if (cstart[j] < cstart[i]) {
                long long t = cstart[i];
                cstart[i] = cstart[j];
                cstart[j] = t;
                t = size[i];
                size[i] = size[j];
                size[j] = t;
                for (int w = 0; w < MAXW; w++) {
                    t = active[i][w];
                    active[i][w] = active[j][w];
                    active[j][w] = t;
                }
            }
    char q[512];
    snprintf(q, sizeof(q), "SELECT jsonb_array_length(" R("%s") "->'cohorts')", name);
    ck_assert_int_eq(tl_query_ll(conn, q), nc);
    ck_assert_msg(nc >= 2, "cohort test data gives %d cohorts", nc);
    for (int c = 0; c < nc; c++) {
        char expect[256];
        size_t len = (size_t)snprintf(expect, sizeof(expect), "%lld [", size[c]);
        int weeks = 0;
        while (cstart[c] + (long long)weeks * 7 * 86400 < to_s) weeks++;
        for (int w = 0; w < weeks; w++)
            len += (size_t)snprintf(expect + len, sizeof(expect) - len, "%s%lld", w ? ", " : "",
                                    active[c][w]);
        snprintf(expect + len, sizeof(expect) - len, "]");
        snprintf(q, sizeof(q),
                 "SELECT (j->>'visitors') || ' ' || (j->'active')::text FROM " ELEMS("%s", "cohorts")
                 " WHERE o = %d AND (j->>'weekStart')::timestamptz = to_timestamp(%lld)",
                 name, c + 1, cstart[c]);
        char *got = tl_query_text(conn, q);
        ck_assert_msg(got && strcmp(got, expect) == 0, "%s cohort %d: '%s', expected '%s'", name,
                      c, got ? got : "(none/wrong week)", expect);
        free(got);
        ck_assert_int_eq(active[c][0], size[c]);
    }
}

START_TEST(test_reports_every_type_equals_independent_sql) {
    char *url = tl_db_create_migrated("reports");
    PGconn *conn = tl_connect(url);
    load_data(conn);
    tl_exec(conn, "INSERT INTO funnels (name, steps, \"conversionWindowSeconds\") VALUES "
                  "('shop', '[{\"type\":\"PRODUCT_VIEW\"},{\"type\":\"ADD_TO_CART\"},"
                  "{\"type\":\"PURCHASE\"}]', 600), ('appointments', "
                  "'[{\"type\":\"APPOINTMENT_START\"},{\"type\":\"APPOINTMENT_COMPLETE\"}]', 600)");
    run_stage("metrics", url);
    run_stage("funnels", url);
    const char *r1 = "\"from\": \"2026-03-03T00:00:00Z\", \"to\": \"2026-03-10T00:00:00Z\"";
    const char *whole = "\"from\": \"2026-03-01T00:00:00Z\", \"to\": \"2026-03-20T00:00:00Z\"";
    char p[512];
    snprintf(p, sizeof(p), "{%s}", r1);
    add_report(conn, "traffic", "TRAFFIC", p);
    snprintf(p, sizeof(p), "{%s, \"deviceType\": \"MOBILE\", \"limit\": 3}", r1);
    add_report(conn, "traffic_mobile", "TRAFFIC", p);
    snprintf(p, sizeof(p), "{%s}", whole);
    add_report(conn, "conv", "CONVERSIONS", p);
    add_report(conn, "appt", "APPOINTMENTS", p);
    snprintf(p, sizeof(p), "{%s, \"deviceType\": \"MOBILE\"}", whole);
    add_report(conn, "conv_mobile", "CONVERSIONS", p);
    snprintf(p, sizeof(p), "{%s, \"deviceType\": \"MOBILE\", \"limit\": 4}", whole);
    add_report(conn, "prod_mobile", "PRODUCTS", p);
    snprintf(p, sizeof(p), "{%s, \"deviceType\": \"DESKTOP\"}", whole);
    add_report(conn, "appt_desktop", "APPOINTMENTS", p);
    snprintf(p, sizeof(p), "{%s}", whole);
    snprintf(p, sizeof(p), "{%s, \"limit\": 4}", whole);
    add_report(conn, "prod", "PRODUCTS", p);
    add_report(conn, "cohorts", "COHORTS",
               "{\"from\": \"2026-03-02T00:00:00Z\", \"to\": \"2026-03-16T00:00:00Z\"}");
    add_report(conn, "cohorts_desktop", "COHORTS",
               "{\"from\": \"2026-03-03T00:00:00+01:00\", \"to\": \"2026-03-14T12:00:00Z\", "
               "\"deviceType\": \"DESKTOP\"}");
    add_report(conn, "funnels_all", "FUNNELS", "{}");
    add_report(conn, "funnels_shop", "FUNNELS",
               "{\"funnelIds\": [\"shop\"], \"period\": \"WEEKLY\", \"from\": "
               "\"2026-03-01T00:00:00Z\", \"to\": \"2026-03-09T00:00:00Z\"}");
    snprintf(p, sizeof(p), "{%s, \"metrics\": [\"sessions\", \"revenue{currency=USD}\", "
             "\"visitors\"], \"period\": \"DAILY\", \"deviceType\": \"MOBILE\"}", r1);
    add_report(conn, "custom", "CUSTOM", p);
    add_report(conn, "empty", "TRAFFIC",
               "{\"from\": \"2027-01-01T00:00:00Z\", \"to\": \"2027-01-02T00:00:00Z\"}");
    /* invalid */
    add_report(conn, "bad_order", "TRAFFIC",
               "{\"from\": \"2026-03-05T00:00:00Z\", \"to\": \"2026-03-05T00:00:00Z\"}");
    snprintf(p, sizeof(p), "{%s, \"colour\": \"red\"}", r1);
    add_report(conn, "bad_param", "APPOINTMENTS", p);
    snprintf(p, sizeof(p), "{%s, \"deviceType\": \"PHONE\"}", r1);
    add_report(conn, "bad_device", "TRAFFIC", p);
    snprintf(p, sizeof(p), "{%s, \"metrics\": [\"sessions\", \"nope\"]}", r1);
    add_report(conn, "bad_metric", "CUSTOM", p);
    add_report(conn, "bad_funnel", "FUNNELS", "{\"funnelIds\": [\"shop\", \"ghost\"]}");
    add_report(conn, "bad_time", "COHORTS", "{\"from\": \"yesterday\", \"to\": \"2026-03-05T00:00:00Z\"}");
    run_reports(url);

    const char *done[] = {"traffic", "traffic_mobile", "conv", "prod", "appt", "cohorts",
                          "conv_mobile", "prod_mobile", "appt_desktop",
                          "cohorts_desktop", "funnels_all", "funnels_shop", "custom", "empty"};
    for (size_t i = 0; i < sizeof(done) / sizeof(done[0]); i++) {
        assert_status(conn, done[i], "COMPLETED", NULL);
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM reports WHERE name = '%s' AND "
                 "\"completedAt\" IS NOT NULL AND jsonb_typeof(result) = 'object'", done[i]);
        ck_assert_int_eq(tl_query_ll(conn, sql), 1);
    }
    assert_status(conn, "bad_order", "FAILED", "parameters.to: must be after parameters.from");
    assert_status(conn, "bad_param", "FAILED", "parameters.colour: unknown parameter");
    assert_status(conn, "bad_device", "FAILED", "parameters.deviceType");
    assert_status(conn, "bad_metric", "FAILED", "parameters.metrics: no metric snapshot has the key 'nope'");
    assert_status(conn, "bad_funnel", "FAILED", "'ghost'");
    assert_status(conn, "bad_time", "FAILED", "parameters.from");
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM reports WHERE status = 'FAILED' "
                                       "AND result IS NULL"), 6);

    check_traffic(conn, "traffic", NOBOT, "10");
    check_traffic(conn, "traffic_mobile", " \"deviceType\" = 'MOBILE' ", "3");
    check_conversions(conn, "conv", NOBOT);
    check_conversions(conn, "conv_mobile", " \"deviceType\" = 'MOBILE' ");
    check_appointments(conn, "appt", NOBOT);
    check_appointments(conn, "appt_desktop", " \"deviceType\" = 'DESKTOP' ");
    check_products(conn, "prod", NOBOT);
    check_products(conn, "prod_mobile", " \"deviceType\" = 'MOBILE' ");
    check_cohorts(conn, "cohorts", 1772409600LL, 1773619200LL, NOBOT);
    check_cohorts(conn, "cohorts_desktop", 1772492400LL, 1773489600LL,
                  " \"deviceType\" = 'DESKTOP' ");
    /* The empty range: zeros, empty lists, one day. */
    same_rows(conn, "empty",
              "SELECT " R("empty") "->'totals'->>'sessions', " R("empty") "->'totals'->>'bounceRate', "
              "jsonb_array_length(" R("empty") "->'byDay'), " R("empty") "->'topPages'::text",
              "SELECT '0', NULL, 1, '[]'");
    /* Funnels: the latest DAILY row of each, the shop funnel's last week before 03-09. */
    same_rows(conn, "funnels_all",
              "SELECT j->>'name', j->'result'->>'periodStart', j->'result'->>'entrants', "
              "j->'result'->>'conversions', j->'result'->'stepResults' FROM "
              ELEMS("funnels_all", "funnels") " ORDER BY o",
              "SELECT f.name, to_char(r.\"periodStart\" AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), r.entrants::text, r.conversions::text, "
              "r.\"stepResults\" FROM funnels f JOIN funnel_results r ON r.\"funnelId\" = f.id "
              "WHERE r.period = 'DAILY' AND r.\"periodStart\" = (SELECT max(\"periodStart\") FROM "
              "funnel_results r2 WHERE r2.\"funnelId\" = f.id AND r2.period = 'DAILY') ORDER BY "
              "f.name COLLATE \"C\"");
    same_rows(conn, "funnels_shop",
              "SELECT j->>'name', j->'result'->>'periodStart', j->'result'->>'entrants' FROM "
              ELEMS("funnels_shop", "funnels") " ORDER BY o",
              "SELECT 'shop', '2026-03-02T00:00:00.000Z', (SELECT entrants::text FROM "
              "funnel_results r JOIN funnels f ON f.id = r.\"funnelId\" WHERE f.name = 'shop' AND "
              "period = 'WEEKLY' AND \"periodStart\" = '2026-03-02T00:00:00Z')");
    /* Custom: the MOBILE series of each key; points equal the snapshots; sessions equal a
     * count of the raw rows per day. */
    same_rows(conn, "custom keys",
              "SELECT j->>'metric', j->>'metricKey', jsonb_array_length(j->'points') FROM "
              ELEMS("custom", "series") " ORDER BY o",
              "SELECT k, mk, (SELECT count(*) FROM metric_snapshots m WHERE m.\"metricKey\" = mk "
              "AND period = 'DAILY' AND \"periodStart\"" RANGE1 ") FROM (VALUES (1, 'sessions', "
              "'sessions{deviceType=MOBILE}'), (2, 'revenue{currency=USD}', "
              "'revenue{currency=USD,deviceType=MOBILE}'), (3, 'visitors', "
              "'visitors{deviceType=MOBILE}')) v(o, k, mk) ORDER BY o");
    same_rows(conn, "custom sessions points",
              "SELECT left(p->>'periodStart', 10), p->>'value' FROM " ELEMS("custom", "series")
              ", jsonb_array_elements(j->'points') p WHERE x.o = 1 ORDER BY 1",
              "SELECT to_char(\"startedAt\" AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*)::text FROM "
              "analytics_sessions WHERE \"deviceType\" = 'MOBILE' AND \"startedAt\"" RANGE1
              "GROUP BY 1 ORDER BY 1");

    /* Bots counted once bots.excludeFromMetrics is false. */
    tl_exec(conn, "INSERT INTO tracking_configs (id, key, value, \"isActive\", \"updatedAt\") "
                  "VALUES (gen_random_uuid(), 'bots.excludeFromMetrics', 'false', true, now())");
    snprintf(p, sizeof(p), "{%s}", r1);
    add_report(conn, "traffic_bots", "TRAFFIC", p);
    snprintf(p, sizeof(p), "{%s}", whole);
    add_report(conn, "conv_bots", "CONVERSIONS", p);
    add_report(conn, "appt_bots", "APPOINTMENTS", p);
    snprintf(p, sizeof(p), "{%s, \"limit\": 4}", whole);
    add_report(conn, "prod_bots", "PRODUCTS", p);
    add_report(conn, "cohorts_bots", "COHORTS",
               "{\"from\": \"2026-03-02T00:00:00Z\", \"to\": \"2026-03-16T00:00:00Z\"}");
    run_reports(url);
    assert_status(conn, "traffic_bots", "COMPLETED", NULL);
    check_traffic(conn, "traffic_bots", " true ", "10");
    check_conversions(conn, "conv_bots", " true ");
    check_appointments(conn, "appt_bots", " true ");
    check_products(conn, "prod_bots", " true ");
    check_cohorts(conn, "cohorts_bots", 1772409600LL, 1773619200LL, " true ");
    ck_assert_int_gt(tl_query_ll(conn, "SELECT (" R("cohorts_bots") "->>'firstTimeVisitors')::int "
                                       "- (" R("cohorts") "->>'firstTimeVisitors')::int"),
                     0);
    ck_assert_int_gt(tl_query_ll(conn, "SELECT (" R("traffic_bots") "->'totals'->>'sessions')::int "
                                       "- (" R("traffic") "->'totals'->>'sessions')::int"),
                     0);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_reports_two_workers_complete_each_once) {
    char *url = tl_db_create_migrated("reports_two");
    PGconn *conn = tl_connect(url);
    load_data(conn);
    tl_exec(conn, "INSERT INTO reports (name, type, parameters) SELECT 'r' || i, (ARRAY["
                  "'TRAFFIC', 'CONVERSIONS', 'APPOINTMENTS', 'PRODUCTS', 'COHORTS']::\"ReportType\"[])"
                  "[i % 5 + 1], jsonb_build_object('from', '2026-03-01T00:00:00Z', 'to', "
                  "'2026-03-20T00:00:00Z') FROM generate_series(1, 20) i");
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "%s reports --database '%s' --until-caught-up --metrics-port -1 --worker-id w1 & "
             "a=$!; %s reports --database '%s' --until-caught-up --metrics-port -1 --worker-id "
             "w2 & b=$!; wait $a && wait $b",
             tl_evpipe_bin(), url, tl_evpipe_bin(), url);
    run_cmd("two workers", cmd);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM reports WHERE status = "
                                       "'COMPLETED' AND attempts = 1 AND result IS NOT NULL"),
                     20);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM (SELECT \"entityId\" FROM "
                                       "audit_logs WHERE \"entityType\" = 'report' AND action = "
                                       "'completed' GROUP BY 1 HAVING count(*) = 1) t"),
                     20);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM audit_logs WHERE \"entityType\" = "
                                       "'report' AND action = 'claim'"),
                     20);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM audit_logs WHERE \"entityType\" = "
                                       "'report' AND action NOT IN ('claim', 'completed')"),
                     0);
    /* The same kind of report gives the same document, whoever computed it. */
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(DISTINCT result::text) FROM reports"), 5);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

START_TEST(test_reports_sigterm_releases_the_job) {
    char *url = tl_db_create_migrated("reports_term");
    PGconn *conn = tl_connect(url), *locker = tl_connect(url);
    load_data(conn);
    /* Hold the sessions table so the report's statement waits. */
    tl_exec(locker, "BEGIN");
    tl_exec(locker, "LOCK TABLE analytics_sessions IN ACCESS EXCLUSIVE MODE");
    add_report(conn, "slow", "TRAFFIC",
               "{\"from\": \"2026-03-01T00:00:00Z\", \"to\": \"2026-03-20T00:00:00Z\"}");
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl(tl_evpipe_bin(), tl_evpipe_bin(), "reports", "--database", url, "--metrics-port",
              "-1", "--worker-id", "wterm", "--poll-ms", "100", (char *)NULL);
        _exit(127);
    }
    long long processing = 0;
    for (int i = 0; i < 200 && !processing; i++) {
        sleep_ms(50);
        processing = tl_query_ll(conn, "SELECT count(*) FROM reports WHERE status = "
                                       "'PROCESSING' AND \"leasedBy\" = 'wterm'");
    }
    ck_assert_int_eq(processing, 1);
    sleep_ms(300);
    kill(pid, SIGTERM);
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    tl_exec(locker, "ROLLBACK");
    char *row = tl_query_text(conn, "SELECT status::text || ' ' || attempts || ' ' || "
                                    "coalesce(\"leasedBy\", '-') || ' ' || (result IS NULL) FROM "
                                    "reports WHERE name = 'slow'");
    ck_assert_str_eq(row, "PENDING 0 - true");
    free(row);
    row = tl_query_text(conn, "SELECT string_agg(action, ',' ORDER BY \"createdAt\") FROM audit_logs WHERE "
                              "\"entityType\" = 'report'");
    ck_assert_str_eq(row, "claim,release");
    free(row);
    /* Given back, it is completed by the next worker. */
    run_reports(url);
    assert_status(conn, "slow", "COMPLETED", NULL);
    PQfinish(locker);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_reports_query_error_fails_with_the_message) {
    char *url = tl_db_create_migrated("reports_sqlerr");
    PGconn *conn = tl_connect(url);
    tl_exec(conn, "ALTER TABLE funnel_results RENAME TO funnel_results_away");
    add_report(conn, "no_table", "FUNNELS", "{}");
    add_report(conn, "fine", "APPOINTMENTS",
               "{\"from\": \"2026-03-01T00:00:00Z\", \"to\": \"2026-03-02T00:00:00Z\"}");
    run_reports(url);
    assert_status(conn, "no_table", "FAILED", "relation \"funnel_results\" does not exist");
    assert_status(conn, "fine", "COMPLETED", NULL);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM audit_logs WHERE action = 'failed' "
                                       "AND changes->>'error' LIKE '%funnel_results%' AND "
                                       "changes->'status'->>'new' = 'FAILED'"),
                     1);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_reports_sigkill_reclaimed_after_the_lease) {
    char *url = tl_db_create_migrated("reports_kill");
    PGconn *conn = tl_connect(url), *locker = tl_connect(url);
    load_data(conn);
    tl_exec(locker, "BEGIN");
    tl_exec(locker, "LOCK TABLE analytics_sessions IN ACCESS EXCLUSIVE MODE");
    add_report(conn, "killed", "CONVERSIONS",
               "{\"from\": \"2026-03-01T00:00:00Z\", \"to\": \"2026-03-20T00:00:00Z\"}");
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl(tl_evpipe_bin(), tl_evpipe_bin(), "reports", "--database", url, "--metrics-port",
              "-1", "--worker-id", "wdead", "--lease-seconds", "2", (char *)NULL);
        _exit(127);
    }
    long long processing = 0;
    for (int i = 0; i < 200 && !processing; i++) {
        sleep_ms(50);
        processing = tl_query_ll(conn, "SELECT count(*) FROM reports WHERE status = "
                                       "'PROCESSING' AND \"leasedBy\" = 'wdead'");
    }
    ck_assert_int_eq(processing, 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    tl_exec(locker, "ROLLBACK");
    sleep_ms(2500); /* the lease runs out */
    run_reports(url);
    char *row = tl_query_text(conn, "SELECT status::text || ' ' || attempts FROM reports");
    ck_assert_str_eq(row, "COMPLETED 2");
    free(row);
    row = tl_query_text(conn, "SELECT string_agg(action, ',' ORDER BY \"createdAt\") FROM "
                              "audit_logs WHERE \"entityType\" = 'report'");
    ck_assert_str_eq(row, "claim,reclaim,completed");
    free(row);
    PQfinish(locker);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_reports_long_running_woken_by_notify) {
    char *url = tl_db_create_migrated("reports_live");
    PGconn *conn = tl_connect(url);
    int port = tl_free_port();
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", port);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        /* The poll fallback is a minute away: only the notification can wake it. */
        execl(tl_evpipe_bin(), tl_evpipe_bin(), "reports", "--database", url, "--metrics-port",
              port_s, "--poll-ms", "60000", "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    long status = 0;
    char *body = NULL;
    for (int i = 0; i < 200 && status != 200; i++) {
        sleep_ms(50);
        free(body);
        status = tl_http_get(port, "/readyz", &body);
    }
    ck_assert_int_eq(status, 200);
    free(body);
    ck_assert_int_eq(tl_http_get(port, "/healthz", &body), 200);
    free(body);
    sleep_ms(200); /* LISTEN is in place before /readyz answers; margin for the first wait */
    add_report(conn, "live", "TRAFFIC",
               "{\"from\": \"2026-03-01T00:00:00Z\", \"to\": \"2026-03-02T00:00:00Z\"}");
    add_report(conn, "live_bad", "TRAFFIC", "{\"from\": \"2026-03-01T00:00:00Z\"}");
    long long done = 0;
    for (int i = 0; i < 200 && done < 2; i++) {
        sleep_ms(50);
        done = tl_query_ll(conn, "SELECT count(*) FROM reports WHERE status IN ('COMPLETED', "
                                 "'FAILED')");
    }
    ck_assert_int_eq(done, 2);
    assert_status(conn, "live", "COMPLETED", NULL);
    assert_status(conn, "live_bad", "FAILED", "parameters.to: required");
    ck_assert_int_eq(tl_http_get(port, "/metrics", &body), 200);
    ck_assert_msg(strstr(body, "evpipe_reports_jobs_total{status=\"COMPLETED\"} 1\n") &&
                      strstr(body, "evpipe_reports_jobs_total{status=\"FAILED\"} 1\n"),
                  "%s", body);
    free(body);
    kill(pid, SIGTERM);
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

static Suite *reports_suite(void) {
    Suite *s = suite_create("reports");
    TCase *tc = tcase_create("stage");
    tcase_set_timeout(tc, 240);
    if (tl_database_url()) {
        tcase_add_test(tc, test_reports_every_type_equals_independent_sql);
        tcase_add_test(tc, test_reports_two_workers_complete_each_once);
        tcase_add_test(tc, test_reports_sigterm_releases_the_job);
        tcase_add_test(tc, test_reports_sigkill_reclaimed_after_the_lease);
        tcase_add_test(tc, test_reports_long_running_woken_by_notify);
        tcase_add_test(tc, test_reports_query_error_fails_with_the_message);
    }
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(reports_suite()) == 0 ? 0 : 1; }
