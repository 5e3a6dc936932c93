/* test_exports — `evpipe exports` end to end on a real PostgreSQL with real upload
 * targets: Debian nginx (WebDAV PUT/DELETE) and the scripted fault server. Each format's
 * file is read back by Python's own parsers (tests/integration/read_export.py: csv,
 * json, gzip, zipfile + sheet XML) and compared with rows computed here in SQL from
 * the catalog (information_schema); checksum and size equal the stored bytes; strings
 * that a spreadsheet would run as formulas are neutralised in CSV; invalid parameters
 * (and SQL smuggled into them) FAIL naming the parameter; 500 and 429 are retried and
 * COMPLETED, 403 FAILS at once; two workers complete each export once; SIGTERM gives
 * a job back; a SIGKILLed worker's job is reclaimed after its lease; expiry marks
 * EXPIRED and deletes the file; XLSX rolls over to a new sheet; a report's result is
 * exported once the report is final; a long-running worker is woken by NOTIFY and
 * serves /healthz, /readyz and /metrics. */
#include <check.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/fault_http.h"
#include "tests/integration/nginx_dav.h"
#include "tests/testlib.h"

#define PYTHON_BIN "/usr/bin/python3"
#define READER "tests/integration/read_export.py"

static nginx_dav_t dav;

static void dav_setup(void) { nginx_dav_start(&dav); }
static void dav_teardown(void) { nginx_dav_stop(&dav); }

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* 300 sessions, one event each with awkward text (formula starts, quotes, commas,
 * line breaks, tabs, Unicode, empty and NULL), page views and conversions with
 * values, a few metric snapshots. */
static void load_data(PGconn *conn) {
    tl_exec(conn,
            "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", \"endedAt\", "
            "duration, \"pageViewCount\", \"eventCount\", \"isBounce\", \"deviceType\", country, "
            "\"entryPage\") SELECT ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, "
            "'v' || i, '2026-04-01T00:00:00Z'::timestamptz + i * interval '7 minutes 0.123 "
            "seconds', '2026-04-01T00:00:00Z'::timestamptz + i * interval '7 minutes' + interval "
            "'30 seconds', 30, 1, 1, i % 3 = 0, (ARRAY['DESKTOP', 'MOBILE', 'TABLET', 'BOT'])[i % 4 "
            "+ 1]::\"DeviceType\", CASE WHEN i % 5 = 0 THEN NULL ELSE 'DE' END, "
            "(ARRAY['=HYPERLINK(\"http://evil\")', '+1', '-2', '@SUM(A1)', E'\\tTab', E'\\rCR', "
            "'comma,here', 'quote\"here', E'new\\nline', 'ünïcödé ✓', '', NULL, '/plain'])[i % 13 "
            "+ 1] FROM generate_series(1, 300) i");
    tl_exec(conn, "INSERT INTO analytics_events (\"sessionId\", \"eventId\", type, \"visitorId\", "
                  "url, path, properties, \"occurredAt\") SELECT s.id, 'ev-' || s.\"visitorId\", "
                  "'PAGE_VIEW', s.\"visitorId\", 'https://shop.test/a?x=1,y=2', s.\"entryPage\", "
                  "jsonb_build_object('n', length(s.\"visitorId\"), 's', s.\"entryPage\", "
                  "'nested', jsonb_build_array(1, 2.5, true, NULL)), s.\"startedAt\" FROM "
                  "analytics_sessions s");
    tl_exec(conn, "INSERT INTO page_views (\"sessionId\", \"eventId\", \"visitorId\", url, path, "
                  "\"timeOnPage\", \"scrollDepth\", \"viewedAt\") SELECT s.id, 'pv-' || "
                  "s.\"visitorId\", s.\"visitorId\", 'https://shop.test/a', s.\"entryPage\", "
                  "CASE WHEN s.duration > 0 THEN 12 END, 50, s.\"startedAt\" FROM "
                  "analytics_sessions s");
    tl_exec(conn, "INSERT INTO conversion_events (\"sessionId\", \"eventId\", \"visitorId\", type, "
                  "value, currency, \"occurredAt\") SELECT s.id, 'buy-' || s.\"visitorId\", "
                  "s.\"visitorId\", 'PURCHASE', CASE WHEN i % 7 = 0 THEN -5.25 ELSE i * 1.5 END, "
                  "'EUR', s.\"startedAt\" FROM analytics_sessions s, LATERAL (SELECT "
                  "substr(s.\"visitorId\", 2)::int i) x WHERE x.i % 2 = 0");
    tl_exec(conn, "INSERT INTO metric_snapshots (\"metricKey\", period, \"periodStart\", "
                  "\"periodEnd\", aggregation, value, \"sampleCount\", dimensions) SELECT "
                  "'sessions', 'DAILY', d, d + interval '1 day', 'COUNT', 10 + k, 10 + k, '{}' "
                  "FROM generate_series(0, 4) k, LATERAL (SELECT '2026-04-01T00:00:00Z'::"
                  "timestamptz + k * interval '1 day' d) x");
}

static char *add_export(PGconn *conn, const char *tag, const char *format, const char *params,
                        const char *dest) {
    const char *values[] = {tag, format, params, dest};
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO exports (\"requestedBy\", format, parameters, "
                                 "\"destinationUrl\") VALUES ($1, $2::\"ExportFormat\", $3::jsonb, "
                                 "$4) RETURNING id::text",
                                 4, NULL, values, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(conn));
    char *id = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return id;
}

static void run_cmd(const char *what, const char *cmd) {
    char *out = NULL, *err = NULL;
    int rc = tl_run(cmd, &out, &err);
    ck_assert_msg(rc == 0, "%s exited %d: %s", what, rc, err ? err : "");
    free(out);
    free(err);
}

static void run_exports(const char *url, const char *extra) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "%s exports --database '%s' --until-caught-up --metrics-port -1 --upload-url "
             "'http://127.0.0.1:%d/files/' %s",
             tl_evpipe_bin(), url, dav.port, extra ? extra : "");
    run_cmd("exports", cmd);
}

static char *export_field(PGconn *conn, const char *tag, const char *expr) {
    char sql[1024];
    snprintf(sql, sizeof(sql), "SELECT (%s)::text FROM exports WHERE \"requestedBy\" = '%s'",
             expr, tag);
    return tl_query_text(conn, sql);
}

static void assert_status(PGconn *conn, const char *tag, const char *status, const char *error) {
    char *st = export_field(conn, tag, "status");
    char *err = export_field(conn, tag, "error");
    ck_assert_msg(st && strcmp(st, status) == 0, "%s: status %s, want %s (error: %s)", tag,
                  st ? st : "(none)", status, err ? err : "-");
    if (error)
        ck_assert_msg(err && strstr(err, error), "%s: error '%s' lacks '%s'", tag,
                      err ? err : "(null)", error);
    else
        ck_assert_msg(err == NULL, "%s: unexpected error %s", tag, err);
    free(st);
    free(err);
}

/* Rows expected in an export of table, as a JSON array of rows (header first), built
 * from information_schema: timestamps as RFC 3339 UTC with ms, everything else as
 * PostgreSQL's text, and in CSV a text cell that starts with = + - @ TAB CR prefixed
 * with an apostrophe. cols = "a,b" (NULL = every column). */
static char *expected_rows(PGconn *conn, const char *table, const char *cols, const char *where,
                           const char *order, const char *format) {
    const char *values[] = {table};
    PGresult *res = PQexecParams(conn,
                                 "SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = $1 ORDER BY ordinal_position",
                                 1, NULL, values, NULL, NULL, 0);
    ck_assert(PQresultStatus(res) == PGRES_TUPLES_OK);
    char names[4096] = "", exprs[16384] = "";
    char list[1024];
    snprintf(list, sizeof(list), ",%s,", cols ? cols : "");
    /* Walk in the order asked for (or table order). */
    char order_buf[1024];
    snprintf(order_buf, sizeof(order_buf), "%s", cols ? cols : "");
    int n = PQntuples(res);
    const char *seq[200];
    int nseq = 0;
    if (cols) {
        for (char *tok = strtok(order_buf, ","); tok; tok = strtok(NULL, ",")) seq[nseq++] = tok;
    } else {
        for (int i = 0; i < n; i++) seq[nseq++] = PQgetvalue(res, i, 0);
    }
    for (int k = 0; k < nseq; k++) {
        const char *type = NULL;
        for (int i = 0; i < n; i++)
            if (strcmp(PQgetvalue(res, i, 0), seq[k]) == 0) type = PQgetvalue(res, i, 1);
        ck_assert_msg(type, "no column %s in %s", seq[k], table);
        char e[600], q[100];
        snprintf(q, sizeof(q), "\"%s\"", seq[k]);
        if (strcmp(type, "timestamp with time zone") == 0)
            snprintf(e, sizeof(e),
                     "replace(to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS'), ' ', "
                     "'T') || 'Z'",
                     q);
        else if (strcmp(format, "CSV") == 0 &&
                 (strstr(type, "char") || strcmp(type, "text") == 0 || strcmp(type, "jsonb") == 0))
            snprintf(e, sizeof(e),
                     "CASE WHEN left(%s::text, 1) IN ('=', '+', '-', '@', E'\\t', E'\\r') THEN "
                     "'''' || %s::text ELSE %s::text END",
                     q, q, q);
        else
            snprintf(e, sizeof(e), "%s::text", q);
        size_t ln = strlen(names), le = strlen(exprs);
        snprintf(names + ln, sizeof(names) - ln, "%s'%s'", k ? ", " : "", seq[k]);
        snprintf(exprs + le, sizeof(exprs) - le, "%s%s", k ? ", " : "", e);
    }
    PQclear(res);
    char *sql = malloc(32768);
    snprintf(sql, 32768,
             "SELECT (jsonb_build_array(jsonb_build_array(%s)) || coalesce((SELECT jsonb_agg("
             "jsonb_build_array(%s) ORDER BY %s) FROM \"%s\" WHERE %s), '[]'::jsonb))::text",
             names, exprs, order, table, where ? where : "true");
    char *json = tl_query_text(conn, sql);
    ck_assert_msg(json != NULL, "expected rows: %s", PQerrorMessage(conn));
    free(sql);
    return json;
}

static void sha256_file(const char *path, char hex[65], long long *size) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "no file %s", path);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    unsigned char buf[65536], out[32];
    size_t got;
    *size = 0;
    while ((got = fread(buf, 1, sizeof(buf), f)) > 0) {
        EVP_DigestUpdate(md, buf, got);
        *size += (long long)got;
    }
    EVP_DigestFinal_ex(md, out, NULL);
    EVP_MD_CTX_free(md);
    fclose(f);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", out[i]);
}

/* Where nginx stored the file of export id. */
static void dav_path(const char *id, const char *ext, bool gz, char *path, size_t size) {
    snprintf(path, size, "%s/root/files/exports/%s.%s%s", dav.dir, id, ext, gz ? ".gz" : "");
}

/* The stored file of a COMPLETED export: where fileUrl says on nginx; its checksum and
 * size as recorded; read back and equal to expected. Returns the sheet count. */
static int check_stored(PGconn *conn, const char *tag, const char *expected_json, bool gz,
                        long long want_rows) {
    assert_status(conn, tag, "COMPLETED", NULL);
    char *id = export_field(conn, tag, "id"), *format = export_field(conn, tag, "format");
    char *file_url = export_field(conn, tag, "\"fileUrl\"");
    char want_url[256], path[700];
    const char *ext = strcmp(format, "CSV") == 0 ? "csv" : strcmp(format, "JSON") == 0 ? "json" : "xlsx";
    snprintf(want_url, sizeof(want_url), "http://127.0.0.1:%d/files/exports/%s.%s%s", dav.port,
             id, ext, gz ? ".gz" : "");
    ck_assert_str_eq(file_url, want_url);
    dav_path(id, ext, gz, path, sizeof(path));
    char hex[65];
    long long size = 0;
    sha256_file(path, hex, &size);
    char *checksum = export_field(conn, tag, "checksum");
    char *file_size = export_field(conn, tag, "\"fileSize\"");
    char *rows = export_field(conn, tag, "\"rowCount\"");
    ck_assert_str_eq(checksum, hex);
    ck_assert_int_eq(atoll(file_size), size);
    ck_assert_int_eq(atoll(rows), want_rows);
    /* Expiry: the default retention of 7 days after completion. */
    char *ret = export_field(conn, tag, "\"expiresAt\" - \"completedAt\" = interval '168 hours'");
    ck_assert_str_eq(ret, "true");
    char exp_path[128];
    snprintf(exp_path, sizeof(exp_path), "/tmp/evexp-%s.json", id);
    FILE *f = fopen(exp_path, "w");
    ck_assert(f != NULL);
    fputs(expected_json, f);
    fclose(f);
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s %s %s '%s' %s %s", PYTHON_BIN, READER, format, path, exp_path,
             gz ? "gzip" : "");
    int rc = tl_run(cmd, &out, &err);
    ck_assert_msg(rc == 0, "%s: read back differs: %s %s", tag, out ? out : "", err ? err : "");
    char want_out[64];
    snprintf(want_out, sizeof(want_out), "{\"rows\": %lld, \"sheets\": ", want_rows);
    ck_assert_msg(out && strncmp(out, want_out, strlen(want_out)) == 0, "%s: reader said %s", tag,
                  out);
    int sheets = atoi(out + strlen(want_out));
    unlink(exp_path);
    free(out);
    free(err);
    free(id);
    free(format);
    free(file_url);
    free(checksum);
    free(file_size);
    free(rows);
    free(ret);
    return sheets;
}

START_TEST(test_exports_every_format_reads_back_equal_to_sql) {
    if (!dav.pid) return;
    char *url = tl_db_create_migrated("exports_formats");
    PGconn *conn = tl_connect(url);
    load_data(conn);
    const char *range = "\"from\": \"2026-04-01T03:00:00Z\", \"to\": \"2026-04-01T20:00:00Z\"";
    char params[1024];
    free(add_export(conn, "csv_all", "CSV", "{\"dataset\": \"events\"}", NULL));
    snprintf(params, sizeof(params), "{\"dataset\": \"sessions\", %s, \"filters\": "
             "{\"deviceType\": \"MOBILE\", \"country\": null}}", range);
    free(add_export(conn, "csv_sessions", "CSV", params, NULL));
    snprintf(params, sizeof(params), "{\"dataset\": \"events\", \"columns\": [\"occurredAt\", "
             "\"eventId\", \"path\", \"properties\", \"type\"], %s, \"compression\": \"gzip\"}",
             range);
    free(add_export(conn, "json_events_gz", "JSON", params, NULL));
    free(add_export(conn, "json_conv", "JSON", "{\"dataset\": \"conversions\"}", NULL));
    free(add_export(conn, "csv_conv_gz", "CSV",
                    "{\"dataset\": \"conversions\", \"columns\": [\"eventId\", \"value\"], "
                    "\"compression\": \"gzip\"}", NULL));
    free(add_export(conn, "xlsx_sessions", "XLSX", "{\"dataset\": \"sessions\"}", NULL));
    free(add_export(conn, "xlsx_pv", "XLSX",
                    "{\"dataset\": \"page_views\", \"columns\": [\"viewedAt\", \"path\", "
                    "\"timeOnPage\", \"scrollDepth\"]}", NULL));
    free(add_export(conn, "json_metrics", "JSON",
                    "{\"dataset\": \"metric_snapshots\", \"filters\": {\"metricKey\": "
                    "\"sessions\", \"period\": \"DAILY\"}, \"from\": \"2026-04-02T00:00:00Z\"}", NULL));
    free(add_export(conn, "csv_empty", "CSV",
                    "{\"dataset\": \"funnel_results\", \"columns\": [\"funnelId\", \"periodStart\"]}",
                    NULL));
    run_exports(url, NULL);

    const char *sess_where = "\"startedAt\" >= '2026-04-01T03:00:00Z' AND \"startedAt\" < "
                             "'2026-04-01T20:00:00Z' AND \"deviceType\" = 'MOBILE' AND country IS NULL";
    const char *ev_where = "\"occurredAt\" >= '2026-04-01T03:00:00Z' AND \"occurredAt\" < "
                           "'2026-04-01T20:00:00Z'";
    char *e;
    e = expected_rows(conn, "analytics_events", NULL, NULL, "\"occurredAt\", id", "CSV");
    check_stored(conn, "csv_all", e, false, 300);
    free(e);
    long long n_sess = tl_query_ll(conn, "SELECT count(*) FROM analytics_sessions WHERE "
                                         "\"startedAt\" >= '2026-04-01T03:00:00Z' AND \"startedAt\" "
                                         "< '2026-04-01T20:00:00Z' AND \"deviceType\" = 'MOBILE' "
                                         "AND country IS NULL");
    ck_assert_int_gt(n_sess, 0);
    e = expected_rows(conn, "analytics_sessions", NULL, sess_where, "\"startedAt\", id", "CSV");
    check_stored(conn, "csv_sessions", e, false, n_sess);
    free(e);
    long long n_ev = tl_query_ll(conn, "SELECT count(*) FROM analytics_events WHERE "
                                       "\"occurredAt\" >= '2026-04-01T03:00:00Z' AND \"occurredAt\" "
                                       "< '2026-04-01T20:00:00Z'");
    e = expected_rows(conn, "analytics_events", "occurredAt,eventId,path,properties,type",
                      ev_where, "\"occurredAt\", id", "JSON");
    check_stored(conn, "json_events_gz", e, true, n_ev);
    free(e);
    e = expected_rows(conn, "conversion_events", NULL, NULL, "\"occurredAt\", id", "JSON");
    check_stored(conn, "json_conv", e, false, 150);
    free(e);
    e = expected_rows(conn, "conversion_events", "eventId,value", NULL, "\"occurredAt\", id", "CSV");
    check_stored(conn, "csv_conv_gz", e, true, 150);
    free(e);
    e = expected_rows(conn, "analytics_sessions", NULL, NULL, "\"startedAt\", id", "XLSX");
    ck_assert_int_eq(check_stored(conn, "xlsx_sessions", e, false, 300), 1);
    free(e);
    e = expected_rows(conn, "page_views", "viewedAt,path,timeOnPage,scrollDepth", NULL,
                      "\"viewedAt\", id", "XLSX");
    check_stored(conn, "xlsx_pv", e, false, 300);
    free(e);
    e = expected_rows(conn, "metric_snapshots", NULL,
                      "\"metricKey\" = 'sessions' AND period = 'DAILY' AND \"periodStart\" >= "
                      "'2026-04-02T00:00:00Z'", "\"periodStart\", id", "JSON");
    check_stored(conn, "json_metrics", e, false, 4);
    free(e);
    e = expected_rows(conn, "funnel_results", "funnelId,periodStart", NULL, "\"periodStart\", id",
                      "CSV");
    check_stored(conn, "csv_empty", e, false, 0);
    free(e);

    /* Formula injection: the raw file holds the neutralised cells, never a bare "=". */
    char *id = export_field(conn, "csv_all", "id"), path[700];
    dav_path(id, "csv", false, path, sizeof(path));
    char cmd[900], *out = NULL;
    snprintf(cmd, sizeof(cmd), "grep -c ',\"'\\''=HYPERLINK' '%s'", path);
    ck_assert_int_eq(tl_run(cmd, &out, NULL), 0);
    ck_assert_int_eq(atoi(out), tl_query_ll(conn, "SELECT count(*) FROM analytics_events WHERE "
                                                  "path LIKE '=HYPERLINK%'"));
    free(out);
    out = NULL;
    snprintf(cmd, sizeof(cmd), "grep -c ',\"=HYPERLINK' '%s'", path);
    tl_run(cmd, &out, NULL);
    ck_assert_int_eq(atoi(out), 0);
    free(out);
    free(id);
    /* Every status change is audited: claim then completed, by the exports stage. */
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM audit_logs WHERE \"entityType\" = "
                                       "'export' AND \"actorId\" = 'exports' AND action = "
                                       "'completed' AND changes->'status'->>'new' = 'COMPLETED'"),
                     9);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM audit_logs WHERE \"entityType\" = "
                                       "'export' AND action NOT IN ('claim', 'completed')"),
                     0);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_exports_invalid_parameters_fail_naming_them) {
    if (!dav.pid) return;
    char *url = tl_db_create_migrated("exports_invalid");
    PGconn *conn = tl_connect(url);
    load_data(conn);
    free(add_export(conn, "bad_dataset", "CSV", "{\"dataset\": \"users\"}", NULL));
    free(add_export(conn, "no_dataset", "CSV", "{}", NULL));
    free(add_export(conn, "bad_column", "JSON",
                    "{\"dataset\": \"events\", \"columns\": [\"eventId\", \"password\"]}", NULL));
    free(add_export(conn, "smuggled_column", "CSV",
                    "{\"dataset\": \"events\", \"columns\": [\"id\\\" FROM exports; DROP TABLE "
                    "exports; --\"]}", NULL));
    free(add_export(conn, "bad_filter_column", "CSV",
                    "{\"dataset\": \"sessions\", \"filters\": {\"nope\": 1}}", NULL));
    free(add_export(conn, "bad_filter_value", "CSV",
                    "{\"dataset\": \"sessions\", \"filters\": {\"deviceType\": \"PHONE\"}}", NULL));
    free(add_export(conn, "bad_time", "CSV", "{\"dataset\": \"events\", \"from\": \"yesterday\"}",
                    NULL));
    free(add_export(conn, "from_after_to", "CSV",
                    "{\"dataset\": \"events\", \"from\": \"2026-04-02T00:00:00Z\", \"to\": "
                    "\"2026-04-01T00:00:00Z\"}", NULL));
    free(add_export(conn, "unknown_key", "CSV", "{\"dataset\": \"events\", \"limit\": 10}", NULL));
    free(add_export(conn, "xlsx_gzip", "XLSX",
                    "{\"dataset\": \"events\", \"compression\": \"gzip\"}", NULL));
    free(add_export(conn, "report_without_id", "JSON", "{\"dataset\": \"report\"}", NULL));
    /* A value is a value: bound, never SQL. It matches nothing and breaks nothing. */
    free(add_export(conn, "smuggled_value", "CSV",
                    "{\"dataset\": \"events\", \"filters\": {\"path\": \"x'; DROP TABLE exports; "
                    "--\"}}", NULL));
    run_exports(url, NULL);
    assert_status(conn, "bad_dataset", "FAILED", "parameters.dataset: unknown dataset 'users'");
    assert_status(conn, "no_dataset", "FAILED", "parameters.dataset: required");
    assert_status(conn, "bad_column", "FAILED",
                  "parameters.columns: unknown column 'password' of events (id, sessionId,");
    assert_status(conn, "smuggled_column", "FAILED", "parameters.columns");
    assert_status(conn, "bad_filter_column", "FAILED",
                  "parameters.filters: unknown column 'nope' of sessions");
    assert_status(conn, "bad_filter_value", "FAILED",
                  "parameters.filters.deviceType: invalid input value for enum \"DeviceType\"");
    assert_status(conn, "bad_time", "FAILED", "parameters.from: must be an RFC 3339");
    assert_status(conn, "from_after_to", "FAILED", "parameters.to: must be after parameters.from");
    assert_status(conn, "unknown_key", "FAILED", "parameters.limit: unknown parameter");
    assert_status(conn, "xlsx_gzip", "FAILED", "parameters.compression: gzip is for CSV and JSON");
    assert_status(conn, "report_without_id", "FAILED", "needs the export's reportId");
    assert_status(conn, "smuggled_value", "COMPLETED", NULL);
    char *rows = export_field(conn, "smuggled_value", "\"rowCount\"");
    ck_assert_str_eq(rows, "0");
    free(rows);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM exports"), 12);
    /* Failed jobs are audited with their error and leave no file behind. */
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM audit_logs WHERE action = 'failed' "
                                       "AND changes->>'error' LIKE 'parameters%'"),
                     11);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM exports WHERE status = 'FAILED' AND "
                                       "(\"fileUrl\" IS NOT NULL OR attempts <> 1)"),
                     0);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_exports_transient_upload_errors_retried_permanent_fail) {
    char *url = tl_db_create_migrated("exports_faults");
    PGconn *conn = tl_connect(url);
    load_data(conn);
    const fh_step_t flaky[] = {{FH_STATUS, 500, NULL},
                               {FH_STATUS, 429, "Retry-After: 1\r\n"},
                               {FH_DROP, 0, NULL},
                               {FH_STATUS, 201, NULL}};
    fh_server_t *fs = fh_start(flaky, 4);
    char dest[256];
    snprintf(dest, sizeof(dest), "http://127.0.0.1:%d/up/flaky.csv", fh_port(fs));
    free(add_export(conn, "flaky", "CSV", "{\"dataset\": \"sessions\"}", dest));
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "--max-attempts 5");
    run_exports(url, cmd);
    assert_status(conn, "flaky", "COMPLETED", NULL);
    ck_assert_int_eq(fh_count(fs), 4);
    const fh_request_t *last = fh_request(fs, 3);
    ck_assert_str_eq(last->method, "PUT");
    char *size = export_field(conn, "flaky", "\"fileSize\""), *sum = export_field(conn, "flaky", "checksum");
    ck_assert_int_eq((long long)last->body_len, atoll(size));
    unsigned char md[32];
    char hex[65];
    EVP_Digest(last->body, last->body_len, md, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    ck_assert_str_eq(hex, sum);
    /* The 429's Retry-After of 1 s was honoured. */
    ck_assert_int_ge(fh_request(fs, 2)->at_ns - fh_request(fs, 1)->at_ns, 900000000LL);
    free(size);
    free(sum);
    fh_stop(fs);

    const fh_step_t forbidden[] = {{FH_STATUS, 403, NULL}};
    fs = fh_start(forbidden, 1);
    snprintf(dest, sizeof(dest), "http://127.0.0.1:%d/up/no.csv", fh_port(fs));
    free(add_export(conn, "forbidden", "CSV", "{\"dataset\": \"sessions\"}", dest));
    const fh_step_t down[] = {{FH_STATUS, 503, NULL}};
    fh_server_t *fs2 = fh_start(down, 1);
    snprintf(dest, sizeof(dest), "http://127.0.0.1:%d/up/down.csv", fh_port(fs2));
    free(add_export(conn, "always_503", "JSON", "{\"dataset\": \"sessions\"}", dest));
    run_exports(url, "--max-attempts 3");
    assert_status(conn, "forbidden", "FAILED", "upload after 1 attempt: ");
    assert_status(conn, "forbidden", "FAILED", "403");
    assert_status(conn, "always_503", "FAILED", "upload after 3 attempts: ");
    assert_status(conn, "always_503", "FAILED", "503");
    ck_assert_int_eq(fh_count(fs), 1);
    ck_assert_int_eq(fh_count(fs2), 3);
    fh_stop(fs);
    fh_stop(fs2);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_exports_two_workers_complete_each_once) {
    if (!dav.pid) return;
    char *url = tl_db_create_migrated("exports_two");
    PGconn *conn = tl_connect(url);
    load_data(conn);
    tl_exec(conn, "INSERT INTO exports (\"requestedBy\", format, parameters) SELECT 'x' || i, "
                  "(ARRAY['CSV', 'JSON', 'XLSX']::\"ExportFormat\"[])[i % 3 + 1], "
                  "jsonb_build_object('dataset', (ARRAY['events', 'sessions', 'page_views', "
                  "'conversions'])[i % 4 + 1]) FROM generate_series(1, 24) i");
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "%s exports --database '%s' --until-caught-up --metrics-port -1 --worker-id w1 "
             "--upload-url http://127.0.0.1:%d/files/ & a=$!; %s exports --database '%s' "
             "--until-caught-up --metrics-port -1 --worker-id w2 --upload-url "
             "http://127.0.0.1:%d/files/ & b=$!; wait $a && wait $b",
             tl_evpipe_bin(), url, dav.port, tl_evpipe_bin(), url, dav.port);
    run_cmd("two workers", cmd);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM exports WHERE status = 'COMPLETED' "
                                       "AND attempts = 1 AND \"rowCount\" IN (150, 300)"),
                     24);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM (SELECT \"entityId\" FROM audit_logs "
                                       "WHERE action = 'completed' GROUP BY 1 HAVING count(*) = 1) t"),
                     24);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM audit_logs WHERE action = 'claim'"),
                     24);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM audit_logs WHERE action = 'claim' "
                                       "AND changes->>'worker' NOT IN ('w1', 'w2')"),
                     0);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

static pid_t start_worker(const char *url, const char *worker, const char *lease) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl(tl_evpipe_bin(), tl_evpipe_bin(), "exports", "--database", url, "--metrics-port",
              "-1", "--worker-id", worker, "--poll-ms", "100", "--lease-seconds", lease,
              "--stall-timeout-ms", "60000", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void wait_processing(PGconn *conn, const char *worker, int want_requests, fh_server_t *fs) {
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM exports WHERE status = 'PROCESSING' AND "
             "\"leasedBy\" = '%s'", worker);
    long long n = 0;
    for (int i = 0; i < 200 && (!n || fh_count(fs) < want_requests); i++) {
        sleep_ms(50);
        n = tl_query_ll(conn, sql);
    }
    ck_assert_int_eq(n, 1);
    ck_assert_int_ge(fh_count(fs), want_requests);
}

START_TEST(test_exports_sigterm_releases_and_sigkill_is_reclaimed) {
    char *url = tl_db_create_migrated("exports_kill");
    PGconn *conn = tl_connect(url);
    load_data(conn);
    /* The target stalls the first two uploads (the worker waits inside them). */
    const fh_step_t steps[] = {{FH_STALL, 0, NULL}, {FH_STALL, 0, NULL}, {FH_STATUS, 201, NULL}};
    fh_server_t *fs = fh_start(steps, 3);
    char dest[256];
    snprintf(dest, sizeof(dest), "http://127.0.0.1:%d/up/k.json", fh_port(fs));
    free(add_export(conn, "k", "JSON", "{\"dataset\": \"events\"}", dest));

    pid_t pid = start_worker(url, "wterm", "120");
    wait_processing(conn, "wterm", 1, fs);
    kill(pid, SIGTERM);
    int st = 0;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    char *row = export_field(conn, "k", "status::text || ' ' || attempts || ' ' || "
                                        "coalesce(\"leasedBy\", '-')");
    ck_assert_str_eq(row, "PENDING 0 -");
    free(row);

    pid = start_worker(url, "wkill", "2");
    wait_processing(conn, "wkill", 2, fs);
    kill(pid, SIGKILL);
    ck_assert(waitpid(pid, &st, 0) == pid);
    /* Its lease runs out; the next worker takes the job again and completes it once. */
    sleep_ms(2200);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s exports --database '%s' --until-caught-up --metrics-port -1 "
             "--worker-id wnext", tl_evpipe_bin(), url);
    run_cmd("exports after the kill", cmd);
    assert_status(conn, "k", "COMPLETED", NULL);
    row = export_field(conn, "k", "attempts || ' ' || \"rowCount\"");
    ck_assert_str_eq(row, "2 300");
    free(row);
    row = tl_query_text(conn, "SELECT string_agg(action, ',' ORDER BY \"createdAt\", id) FROM "
                              "audit_logs WHERE \"entityType\" = 'export'");
    ck_assert_str_eq(row, "claim,release,claim,reclaim,completed");
    free(row);
    ck_assert_int_eq(fh_count(fs), 3);
    fh_stop(fs);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_exports_expiry_marks_expired_and_deletes_the_file) {
    if (!dav.pid) return;
    char *url = tl_db_create_migrated("exports_expiry");
    PGconn *conn = tl_connect(url);
    load_data(conn);
    free(add_export(conn, "old", "CSV", "{\"dataset\": \"sessions\"}", NULL));
    free(add_export(conn, "young", "CSV", "{\"dataset\": \"page_views\"}", NULL));
    run_exports(url, "--retention-hours 1");
    assert_status(conn, "old", "COMPLETED", NULL);
    char *ok = export_field(conn, "old", "\"expiresAt\" - \"completedAt\" = interval '1 hour'");
    ck_assert_str_eq(ok, "true");
    free(ok);
    char *id = export_field(conn, "old", "id"), path[700];
    dav_path(id, "csv", false, path, sizeof(path));
    struct stat sb;
    ck_assert(stat(path, &sb) == 0);
    tl_exec(conn, "UPDATE exports SET \"expiresAt\" = now() - interval '1 second' WHERE "
                  "\"requestedBy\" = 'old'");
    run_exports(url, NULL);
    assert_status(conn, "old", "EXPIRED", NULL);
    assert_status(conn, "young", "COMPLETED", NULL);
    ck_assert_msg(stat(path, &sb) != 0, "expired file %s still there", path);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM audit_logs WHERE action = 'expired' "
                                       "AND changes->'status'->>'new' = 'EXPIRED'"),
                     1);
    free(id);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* The deflate option bits (1-2 of the general purpose flags) of every deflated part of
 * the stored XLSX of export `tag`, as Python's zipfile reads them: "[6]" for level 1. */
static char *xlsx_deflate_flags(PGconn *conn, const char *tag) {
    static char flags[64];
    char *id = export_field(conn, tag, "id"), path[700], cmd[1024], *out = NULL;
    dav_path(id, "xlsx", false, path, sizeof(path));
    snprintf(cmd, sizeof(cmd),
             "%s -c 'import sys, zipfile; print(sorted({i.flag_bits & 6 for i in "
             "zipfile.ZipFile(sys.argv[1]).infolist() if i.compress_type == "
             "zipfile.ZIP_DEFLATED}))' '%s'",
             PYTHON_BIN, path);
    ck_assert_int_eq(tl_run(cmd, &out, NULL), 0);
    snprintf(flags, sizeof(flags), "%.*s", (int)strcspn(out ? out : "", "\n"), out ? out : "");
    free(out);
    free(id);
    return flags;
}

START_TEST(test_exports_xlsx_starts_a_new_sheet_when_one_is_full) {
    if (!dav.pid) return;
    char *url = tl_db_create_migrated("exports_sheets");
    PGconn *conn = tl_connect(url);
    load_data(conn);
    free(add_export(conn, "sheets", "XLSX", "{\"dataset\": \"events\", \"columns\": [\"eventId\", "
                    "\"occurredAt\", \"properties\"]}", NULL));
    run_exports(url, "--xlsx-sheet-rows 101");
    char *e = expected_rows(conn, "analytics_events", "eventId,occurredAt,properties", NULL,
                            "\"occurredAt\", id", "XLSX");
    /* 300 rows, 100 per sheet (+ the header): 3 sheets. */
    ck_assert_int_eq(check_stored(conn, "sheets", e, false, 300), 3);
    /* Deflated at zlib level 1 by default (general purpose flag bits 1-2 = 3, "super
     * fast"), at the level --xlsx-deflate-level names otherwise (9: bits = 1, "maximum");
     * the same rows either way. */
    ck_assert_str_eq(xlsx_deflate_flags(conn, "sheets"), "[6]");
    free(add_export(conn, "sheets9", "XLSX", "{\"dataset\": \"events\", \"columns\": [\"eventId\", "
                    "\"occurredAt\", \"properties\"]}", NULL));
    run_exports(url, "--xlsx-sheet-rows 101 --xlsx-deflate-level 9");
    ck_assert_int_eq(check_stored(conn, "sheets9", e, false, 300), 3);
    ck_assert_str_eq(xlsx_deflate_flags(conn, "sheets9"), "[2]");
    free(e);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_exports_report_result_once_the_report_is_final) {
    if (!dav.pid) return;
    char *url = tl_db_create_migrated("exports_report");
    PGconn *conn = tl_connect(url);
    load_data(conn);
    tl_exec(conn, "INSERT INTO reports (id, name, type, status, parameters, result) VALUES "
                  "('00000000-0000-0000-0000-00000000000a', 'done', 'TRAFFIC', 'COMPLETED', '{}', "
                  "'{\"totals\": {\"sessions\": 3, \"bounceRate\": 0.25}, \"byDay\": [{\"day\": "
                  "\"2026-04-01\", \"sessions\": 3}], \"top\": [\"=cmd\", null, true]}'), "
                  "('00000000-0000-0000-0000-00000000000b', 'later', 'TRAFFIC', 'PENDING', '{}', NULL)");
    tl_exec(conn, "INSERT INTO exports (\"requestedBy\", format, parameters, \"reportId\") VALUES "
                  "('rep_json', 'JSON', '{\"dataset\": \"report\"}', "
                  "'00000000-0000-0000-0000-00000000000a'), ('rep_csv', 'CSV', '{\"dataset\": "
                  "\"report\"}', '00000000-0000-0000-0000-00000000000a'), ('rep_wait', 'JSON', "
                  "'{\"dataset\": \"report\"}', '00000000-0000-0000-0000-00000000000b')");
    run_exports(url, NULL);
    char *doc = tl_query_text(conn, "SELECT result::text FROM reports WHERE name = 'done'");
    check_stored(conn, "rep_json", doc, false, 1);
    free(doc);
    check_stored(conn, "rep_csv",
                 /* jsonb keeps keys shortest first: top, byDay, totals. */
                 "[[\"path\", \"value\"], [\"top[0]\", \"'=cmd\"], [\"top[1]\", null], "
                 "[\"top[2]\", \"true\"], [\"byDay[0].day\", \"2026-04-01\"], "
                 "[\"byDay[0].sessions\", \"3\"], [\"totals.sessions\", \"3\"], "
                 "[\"totals.bounceRate\", \"0.25\"]]",
                 false, 7);
    /* The export of a report still PENDING waits; it runs once the report is done. */
    assert_status(conn, "rep_wait", "PENDING", NULL);
    tl_exec(conn, "UPDATE reports SET status = 'COMPLETED', result = '{\"x\": 1}' WHERE name = "
                  "'later'");
    run_exports(url, NULL);
    check_stored(conn, "rep_wait", "{\"x\": 1}", false, 1);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_exports_long_running_woken_by_notify) {
    if (!dav.pid) return;
    char *url = tl_db_create_migrated("exports_live");
    PGconn *conn = tl_connect(url);
    load_data(conn);
    int port = tl_free_port();
    char port_s[16], upload[128];
    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(upload, sizeof(upload), "http://127.0.0.1:%d/files/", dav.port);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        /* The poll fallback is a minute away: only the notification can wake it. */
        execl(tl_evpipe_bin(), tl_evpipe_bin(), "exports", "--database", url, "--metrics-port",
              port_s, "--poll-ms", "60000", "--log-level", "warn", "--upload-url", upload,
              (char *)NULL);
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
    free(add_export(conn, "live", "CSV", "{\"dataset\": \"page_views\"}", NULL));
    free(add_export(conn, "live_bad", "CSV", "{\"dataset\": \"page_views\", \"to\": 5}", NULL));
    long long done = 0;
    for (int i = 0; i < 200 && done < 2; i++) {
        sleep_ms(50);
        done = tl_query_ll(conn, "SELECT count(*) FROM exports WHERE status IN ('COMPLETED', "
                                 "'FAILED')");
    }
    ck_assert_int_eq(done, 2);
    assert_status(conn, "live", "COMPLETED", NULL);
    assert_status(conn, "live_bad", "FAILED", "parameters.to: must be an RFC 3339");
    ck_assert_int_eq(tl_http_get(port, "/metrics", &body), 200);
    ck_assert_msg(strstr(body, "evpipe_exports_jobs_total{status=\"COMPLETED\"} 1\n") &&
                      strstr(body, "evpipe_exports_jobs_total{status=\"FAILED\"} 1\n") &&
                      strstr(body, "evpipe_exports_rows_total 300\n"),
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

static Suite *exports_suite(void) {
    Suite *s = suite_create("exports");
    TCase *tc = tcase_create("stage");
    tcase_set_timeout(tc, 240);
    tcase_add_unchecked_fixture(tc, dav_setup, dav_teardown);
    if (tl_database_url()) {
        tcase_add_test(tc, test_exports_every_format_reads_back_equal_to_sql);
        tcase_add_test(tc, test_exports_invalid_parameters_fail_naming_them);
        tcase_add_test(tc, test_exports_transient_upload_errors_retried_permanent_fail);
        tcase_add_test(tc, test_exports_two_workers_complete_each_once);
        tcase_add_test(tc, test_exports_sigterm_releases_and_sigkill_is_reclaimed);
        tcase_add_test(tc, test_exports_expiry_marks_expired_and_deletes_the_file);
        tcase_add_test(tc, test_exports_xlsx_starts_a_new_sheet_when_one_is_full);
        tcase_add_test(tc, test_exports_report_result_once_the_report_is_final);
        tcase_add_test(tc, test_exports_long_running_woken_by_notify);
    }
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(exports_suite()) == 0 ? 0 : 1; }
