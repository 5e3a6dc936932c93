/* demo_jobs.c — see demo_jobs.h. */
#include "tools/demo_jobs.h"

#include <stdio.h>
#include <string.h>

/* The traffic's range, whole UTC days: [day of the first event, day of the last + 1). */
#define RANGE_CTE                                                                        \
    "WITH r AS (SELECT to_char(date_trunc('day', min(\"startedAt\") AT TIME ZONE 'UTC'), " \
    "'YYYY-MM-DD\"T00:00:00Z\"') AS f, to_char(date_trunc('day', max(\"endedAt\") AT "   \
    "TIME ZONE 'UTC') + interval '1 day', 'YYYY-MM-DD\"T00:00:00Z\"') AS t FROM "          \
    "analytics_sessions) "

static int exec_ok(PGconn *conn, const char *sql, const char *what, char *errstr,
                   size_t errstr_size) {
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) snprintf(errstr, errstr_size, "%s: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

int demo_queue_jobs(PGconn *conn, char *errstr, size_t errstr_size) {
    if (exec_ok(conn,
                RANGE_CTE
                "INSERT INTO reports (name, type, parameters, \"requestedBy\") "
                "SELECT 'demo ' || lower(v.type), v.type::\"ReportType\", "
                "CASE v.type WHEN 'FUNNELS' THEN '{}'::jsonb "
                "WHEN 'CUSTOM' THEN jsonb_build_object('from', r.f, 'to', r.t, 'metrics', "
                "jsonb_build_array('sessions', 'visitors', 'revenue{currency=EUR}'), 'period', 'DAILY') "
                "ELSE jsonb_build_object('from', r.f, 'to', r.t) END, 'evpipe demo' "
                "FROM r, (VALUES ('TRAFFIC'), ('CONVERSIONS'), ('APPOINTMENTS'), ('PRODUCTS'), "
                "('FUNNELS'), ('COHORTS'), ('CUSTOM')) v(type) "
                "WHERE r.f IS NOT NULL AND NOT EXISTS (SELECT 1 FROM reports x WHERE x.name = "
                "'demo ' || lower(v.type))",
                "queueing reports", errstr, errstr_size) != 0)
        return -1;
    return exec_ok(conn,
                   RANGE_CTE
                   "INSERT INTO exports (format, parameters, \"reportId\", \"requestedBy\") "
                   "SELECT v.format::\"ExportFormat\", jsonb_build_object('dataset', v.dataset) || "
                   "CASE WHEN v.dataset = 'report' THEN '{}'::jsonb ELSE "
                   "jsonb_build_object('from', r.f, 'to', r.t) END || v.extra::jsonb, "
                   "CASE WHEN v.dataset = 'report' THEN (SELECT id FROM reports WHERE name = "
                   "'demo traffic') END, 'evpipe demo' "
                   "FROM r, (VALUES ('CSV', 'events', '{\"compression\": \"gzip\"}'), "
                   "('XLSX', 'sessions', '{}'), ('JSON', 'metric_snapshots', '{}'), "
                   "('JSON', 'report', '{}')) v(format, dataset, extra) "
                   "WHERE r.f IS NOT NULL AND NOT EXISTS (SELECT 1 FROM exports x WHERE "
                   "x.\"requestedBy\" = 'evpipe demo')",
                   "queueing exports", errstr, errstr_size);
}

static void print_rows(PGconn *conn, const char *title, const char *sql, const char *const *heads,
                       const int *widths) {
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        printf("\n%s: query failed: %s", title, PQresultErrorMessage(res));
        PQclear(res);
        return;
    }
    printf("\n%s\n  ", title);
    int cols = PQnfields(res);
    for (int c = 0; c < cols; c++) printf("%-*s ", widths[c], heads[c]);
    printf("\n");
    for (int r = 0; r < PQntuples(res); r++) {
        printf("  ");
        for (int c = 0; c < cols; c++)
            printf("%-*s ", widths[c], PQgetisnull(res, r, c) ? "-" : PQgetvalue(res, r, c));
        printf("\n");
    }
    PQclear(res);
}

void demo_print_jobs(PGconn *conn) {
    static const char *const rh[] = {"report", "status", "result bytes", "error"};
    static const int rw[] = {20, 10, 12, 40};
    print_rows(conn, "Reports (one of each type)",
               "SELECT name, status::text, length(result::text)::text, left(error, 60) "
               "FROM reports WHERE \"requestedBy\" = 'evpipe demo' ORDER BY name",
               rh, rw);
    static const char *const eh[] = {"export", "status", "rows", "bytes", "sha256", "file"};
    static const int ew[] = {22, 10, 8, 9, 16, 30};
    print_rows(conn, "Exports (one of each format)",
               "SELECT format::text || ' ' || (parameters->>'dataset') || coalesce(' ' || "
               "(parameters->>'compression'), ''), status::text, \"rowCount\"::text, "
               "\"fileSize\"::text, left(checksum, 16), coalesce(\"fileUrl\", error) "
               "FROM exports WHERE \"requestedBy\" = 'evpipe demo' ORDER BY \"createdAt\", id",
               eh, ew);
}
