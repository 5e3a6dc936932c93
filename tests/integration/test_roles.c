/* test_roles.c — migration 0010_roles against a real PostgreSQL: the real binaries
 * (ingest through an in-process mock Kafka cluster, metrics, funnels, reports, status,
 * migrate verify) and the exports' job lifecycle, logged in as LOGIN users that are
 * members of the group roles in a database whose PUBLIC rights on the database and the
 * schema are revoked, give exact row counts; what a role must not do is refused with
 * permission denied (42501); a stage run as the wrong role exits naming the role to
 * join; the down migration revokes everything and drops only the roles it created that
 * no other database uses; two databases migrating at once both succeed. */
#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/kmock.h"
#include "consumers/jobs.h"
#include "tests/integration/ingest_oracle.h"
#include "tests/testlib.h"

static const char *const k_roles[] = {"evpipe_ingest", "evpipe_stages", "evpipe_exporter",
                                      "evpipe_readonly"};
#define N_ROLES 4
#define ROLES_IN "('evpipe_ingest', 'evpipe_stages', 'evpipe_exporter', 'evpipe_readonly')"
/* Rolls back the roles migration (0010) and the ones after it (0011 .. 0013). */
#define DOWN_THROUGH_ROLES "down 4"

/* ---------------------------------------------------------------- helpers */

static char *fmt_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_alloc(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ck_assert(n >= 0);
    char *out = malloc((size_t)n + 1);
    ck_assert(out != NULL);
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

static void exec_fmt(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void exec_fmt(PGconn *conn, const char *fmt, ...) {
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    tl_exec(conn, sql);
}

static void assert_query(PGconn *conn, const char *sql, const char *want) {
    char *got = tl_query_text(conn, sql);
    ck_assert_msg(got && strcmp(got, want) == 0, "query: %s\n got: %s\nwant: %s", sql,
                  got ? got : "(null)", want);
    free(got);
}

/* The database's name: the path of its URL, up to any '?'. */
static char *db_name(const char *url) {
    const char *q = strchr(url, '?');
    size_t len = q ? (size_t)(q - url) : strlen(url);
    const char *slash = url;
    for (const char *p = url; p < url + len; p++)
        if (*p == '/') slash = p;
    return fmt_alloc("%.*s", (int)(len - (size_t)(slash + 1 - url)), slash + 1);
}

/* The same URL, logged in as user (query parameters override the URL's user). */
static char *url_as(const char *url, const char *user) {
    return fmt_alloc("%s%cuser=%s&password=pw-%s", url, strchr(url, '?') ? '&' : '?', user, user);
}

/* Runs `evpipe migrate ARGS`; returns the exit status and, when log is not NULL, its
 * log (stderr, malloc'd). */
static int run_migrate_log(const char *url, const char *args, char **log) {
    char *cmd = fmt_alloc("'%s' migrate %s --database '%s'", tl_evpipe_bin(), args, url);
    char *err = NULL;
    int rc = tl_run(cmd, NULL, &err);
    if (rc != 0) fprintf(stderr, "migrate %s exited %d: %s\n", args, rc, err ? err : "");
    if (log)
        *log = err ? err : strdup("");
    else
        free(err);
    free(cmd);
    return rc;
}

static int run_migrate(const char *url, const char *args) {
    return run_migrate_log(url, args, NULL);
}

static int count_substr(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

/* Runs the binary with ARGS, connected as user; asserts exit 0; returns stdout. */
static char *run_as(const char *url, const char *user, const char *args) {
    char *as = url_as(url, user);
    char *cmd = fmt_alloc("'%s' %s --database '%s'", tl_evpipe_bin(), args, as);
    char *out = NULL, *err = NULL;
    int rc = tl_run(cmd, &out, &err);
    ck_assert_msg(rc == 0, "as %s: evpipe %s exited %d:\n%s", user, args, rc, err ? err : "");
    free(err);
    free(cmd);
    free(as);
    return out;
}

/* A LOGIN user with a unique name, member of role; returned malloc'd. */
static char *login_user(PGconn *admin, const char *role) {
    char *name = tl_unique_name(role + strlen("evpipe_"));
    for (char *p = name; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    exec_fmt(admin, "CREATE ROLE \"%s\" LOGIN PASSWORD 'pw-%s' IN ROLE %s", name, name, role);
    return name;
}

static void drop_user(PGconn *admin, char *user) {
    exec_fmt(admin, "DROP ROLE \"%s\"", user);
    free(user);
}

/* Rows of pg_shdepend that refer to the group roles from databases other than the
 * given ones (0 in a cluster that only this suite uses). */
static long long uses_elsewhere(PGconn *admin, const char *db1, const char *db2) {
    char *sql = fmt_alloc(
        "SELECT count(*) FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid "
        "WHERE d.refclassid = 'pg_authid'::regclass AND r.rolname IN " ROLES_IN " "
        "AND NOT (d.dbid IN (SELECT oid FROM pg_database WHERE datname IN ('%s', '%s')) "
        "OR (d.dbid = 0 AND d.classid = 'pg_database'::regclass AND d.objid IN "
        "(SELECT oid FROM pg_database WHERE datname IN ('%s', '%s'))))",
        db1, db2, db1, db2);
    long long n = tl_query_ll(admin, sql);
    free(sql);
    return n;
}

static long long roles_present(PGconn *admin) {
    return tl_query_ll(admin, "SELECT count(*) FROM pg_roles WHERE rolname IN " ROLES_IN);
}

/* The stream: 9 messages (one a duplicate) of three visitors, all in the hour
 * 2026-11-02 10:00 UTC, one desktop browser. va: two sessions (a 39-minute gap), 3 page
 * views, a product view and a purchase of 50 EUR; vb: a page view with UTM and a
 * sign-up; vc: one page view, sent twice. */
#define UA "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) " \
           "Chrome/120.0.0.0 Safari/537.36"
#define EV(id, type, vid, ts, extra)                                                       \
    "{\"eventId\": \"" id "\", \"type\": \"" type "\", \"visitorId\": \"" vid "\", "       \
    "\"timestamp\": \"2026-11-02T10:" ts "Z\", \"userAgent\": \"" UA "\"" extra "}\n"
static const char k_stream[] =
    EV("a1", "PAGE_VIEW", "va", "00:00", ", \"url\": \"https://shop.test/home\"")
    EV("a2", "PAGE_VIEW", "va", "00:30", ", \"url\": \"https://shop.test/product/1\"")
    EV("a3", "PRODUCT_VIEW", "va", "00:40", ", \"properties\": {\"productId\": \"P1\"}")
    EV("a4", "PURCHASE", "va", "01:00", ", \"value\": 50, \"currency\": \"EUR\"")
    EV("a5", "PAGE_VIEW", "va", "40:00", ", \"url\": \"https://shop.test/home\"")
    EV("b1", "PAGE_VIEW", "vb", "05:00",
       ", \"url\": \"https://shop.test/landing?utm_source=news&utm_medium=email\"")
    EV("b2", "SIGN_UP", "vb", "05:20", "")
    EV("c1", "PAGE_VIEW", "vc", "10:00", ", \"url\": \"https://shop.test/home\"")
    EV("c1", "PAGE_VIEW", "vc", "10:00", ", \"url\": \"https://shop.test/home\"");

/* Publishes the stream to a new 2-partition topic "raw" of km; returns the file's path
 * (malloc'd; caller unlinks). */
static char *publish_stream(ev_kmock_t *km) {
    char errstr[256], path[] = "/tmp/evpipe_roles_XXXXXX";
    ck_assert_int_eq(ev_kmock_topic_create(km, "raw", 2, errstr, sizeof(errstr)), 0);
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    ck_assert(write(fd, k_stream, sizeof(k_stream) - 1) == (ssize_t)(sizeof(k_stream) - 1));
    close(fd);
    ck_assert_int_eq(oracle_produce_file(ev_kmock_bootstraps(km), "raw", path), 9);
    return strdup(path);
}

/* ---------------------------------------------------------------- the stages as members */

START_TEST(test_roles_stages_run_as_members_of_their_roles) {
    char errstr[256];
    ev_kmock_t *km = ev_kmock_new(1, errstr, sizeof(errstr));
    ck_assert_msg(km != NULL, "%s", errstr);
    char *path = publish_stream(km);
    oracle_t oracle;
    oracle_compute(path, 1800 * 1000LL, 86400 * 1000LL, &oracle);
    ck_assert_int_eq((long long)oracle.n_valid_unique, 8);

    char *url = tl_db_create_migrated("roles_run");
    char *name = db_name(url);
    PGconn *admin = tl_connect(url);
    /* Nothing through PUBLIC: the roles' own grants must suffice. */
    exec_fmt(admin, "REVOKE ALL ON DATABASE \"%s\" FROM PUBLIC", name);
    tl_exec(admin, "REVOKE ALL ON SCHEMA public FROM PUBLIC");
    char *ingest = login_user(admin, "evpipe_ingest");
    char *stages = login_user(admin, "evpipe_stages");
    char *exporter = login_user(admin, "evpipe_exporter");
    char *readonly = login_user(admin, "evpipe_readonly");

    /* A funnel, a malformed one (audited by the funnels stage), a TRAFFIC report. */
    tl_exec(admin, "INSERT INTO funnels (name, steps, \"conversionWindowSeconds\", scope) VALUES "
                   "('buy', '[{\"type\": \"PAGE_VIEW\"}, {\"type\": \"PURCHASE\"}]', 3600, "
                   "'visitor'), ('broken', '[{\"type\": \"PAGE_VIEW\"}]', 3600, 'visitor')");
    tl_exec(admin, "INSERT INTO reports (name, type, parameters) VALUES ('nov', 'TRAFFIC', "
                   "'{\"from\": \"2026-11-02T00:00:00Z\", \"to\": \"2026-11-03T00:00:00Z\"}')");

    /* evpipe ingest as a member of evpipe_ingest. */
    char *args = fmt_alloc("ingest --brokers %s --topic raw --group g --enriched-topic '' "
                           "--metrics-port -1 --batch-ms 100 --until-caught-up",
                           ev_kmock_bootstraps(km));
    free(run_as(url, ingest, args));
    free(args);
    oracle_check_database(&oracle, url);
    assert_query(admin,
                 "SELECT (SELECT count(*) FROM analytics_sessions) || ' ' || (SELECT count(*) "
                 "FROM analytics_events) || ' ' || (SELECT count(*) FROM page_views) || ' ' || "
                 "(SELECT count(*) FROM conversion_events) || ' ' || (SELECT sum(\"nextOffset\") "
                 "FROM consumer_offsets WHERE \"consumerGroup\" = 'g')",
                 "4 8 5 2 9");
    assert_query(admin,
                 "SELECT string_agg(DISTINCT \"deviceType\"::text, ',') || ' ' || "
                 "string_agg(\"startReason\"::text, ',' ORDER BY \"startedAt\") FROM "
                 "analytics_sessions",
                 "DESKTOP FIRST,FIRST,FIRST,INACTIVITY");
    /* The dirty-hour triggers ran as the ingest user: one hour marked per stage. */
    assert_query(admin,
                 "SELECT string_agg(DISTINCT stage || '@' || to_char(\"hourStart\" AT TIME ZONE "
                 "'UTC', 'YYYY-MM-DD HH24'), ',') FROM dirty_hours",
                 "funnels@2026-11-02 10,metrics@2026-11-02 10");

    /* evpipe metrics as a member of evpipe_stages: 12 keys, plain and DESKTOP, 5 periods. */
    free(run_as(url, stages, "metrics --until-caught-up --metrics-port -1 --debounce-ms 0"));
    assert_query(admin, "SELECT count(*) FROM metric_snapshots", "120");
    assert_query(admin,
                 "SELECT string_agg(\"metricKey\" || '=' || value, ',' ORDER BY \"metricKey\") "
                 "FROM metric_snapshots WHERE period = 'DAILY' AND \"metricKey\" IN ('sessions', "
                 "'events', 'pageviews', 'conversions', 'visitors', 'product_views', "
                 "'revenue{currency=EUR}')",
                 "conversions=2,events=8,pageviews=5,product_views=1,revenue{currency=EUR}=50,"
                 "sessions=4,visitors=3");
    assert_query(admin, "SELECT count(*) FROM dirty_hours WHERE stage = 'metrics'", "0");
    /* --recompute inserts marks as the stage user, and changes no number. */
    free(run_as(url, stages, "metrics --recompute 2026-11-02..2026-11-03 --until-caught-up "
                             "--metrics-port -1 --debounce-ms 0"));
    assert_query(admin, "SELECT count(*) || ' ' || sum(value) FROM metric_snapshots WHERE "
                        "\"metricKey\" = 'sessions'",
                 "5 20");

    /* evpipe funnels as a member of evpipe_stages. */
    free(run_as(url, stages, "funnels --until-caught-up --metrics-port -1 --debounce-ms 0"));
    assert_query(admin,
                 "SELECT string_agg(r.period || ':' || r.entrants || '/' || r.conversions, ',' "
                 "ORDER BY r.period) FROM funnel_results r JOIN funnels f ON f.id = r.\"funnelId\" "
                 "WHERE f.name = 'buy'",
                 "DAILY:3/1,WEEKLY:3/1,MONTHLY:3/1");
    assert_query(admin,
                 "SELECT count(*) FROM audit_logs a JOIN funnels f ON a.\"entityId\" = f.id::text "
                 "WHERE f.name = 'broken'",
                 "1");
    assert_query(admin, "SELECT count(*) FROM dirty_hours", "0");

    /* evpipe reports as a member of evpipe_exporter: claimed, computed, audited. */
    free(run_as(url, exporter, "reports --until-caught-up --metrics-port -1"));
    assert_query(admin,
                 "SELECT status || ' ' || (result->'totals'->>'sessions') || ' ' || "
                 "(result->'totals'->>'pageViews') FROM reports WHERE name = 'nov'",
                 "COMPLETED 4 5");
    assert_query(admin,
                 "SELECT string_agg(a.action, ',' ORDER BY a.\"createdAt\", a.action) FROM "
                 "audit_logs a JOIN reports r ON a.\"entityId\" = r.id::text",
                 "claim,completed");

    /* evpipe exports as a member of evpipe_exporter: every format, and the report. */
    exec_fmt(admin, "INSERT INTO exports (format, parameters, \"reportId\") VALUES "
             "('CSV', '{\"dataset\": \"events\"}', NULL), ('XLSX', '{\"dataset\": "
             "\"sessions\", \"filters\": {\"deviceType\": \"DESKTOP\"}}', NULL), ('JSON', "
             "'{\"dataset\": \"report\"}', (SELECT id FROM reports WHERE name = 'nov'))");
    char files[] = "/tmp/evroles-files.XXXXXX";
    ck_assert(mkdtemp(files) != NULL);
    char *exp_args = fmt_alloc("exports --until-caught-up --metrics-port -1 --upload-url "
                               "'file://%s/'", files);
    free(run_as(url, exporter, exp_args));
    free(exp_args);
    assert_query(admin,
                 "SELECT string_agg(format || ' ' || status || ' ' || (\"rowCount\" = CASE format "
                 "WHEN 'CSV' THEN (SELECT count(*) FROM analytics_events) WHEN 'XLSX' THEN (SELECT "
                 "count(*) FROM analytics_sessions WHERE \"deviceType\" = 'DESKTOP') ELSE 1 END), "
                 "',' ORDER BY format) FROM exports",
                 "CSV COMPLETED true,JSON COMPLETED true,XLSX COMPLETED true");
    assert_query(admin, "SELECT count(*) FROM analytics_events", "8");
    char *rm = fmt_alloc("rm -rf '%s'", files);
    ck_assert_int_eq(system(rm), 0);
    free(rm);

    /* evpipe status and evpipe migrate verify as a member of evpipe_readonly. */
    char *out = run_as(url, readonly, "status --json --brokers 127.0.0.1:1 --kafka-timeout 1");
    ck_assert_msg(out && strstr(out, "\"g\""), "%s", out ? out : "");
    free(out);
    free(run_as(url, readonly, "migrate verify"));

    PQfinish(admin);
    admin = tl_connect(tl_database_url());
    drop_user(admin, ingest);
    drop_user(admin, stages);
    drop_user(admin, exporter);
    drop_user(admin, readonly);
    PQfinish(admin);
    tl_db_drop(url);
    oracle_free(&oracle);
    unlink(path);
    free(path);
    free(name);
    free(url);
    ev_kmock_destroy(km);
}
END_TEST

/* ---------------------------------------------------------------- what each must not do */

typedef struct {
    int role; /* index into k_roles */
    const char *sql;
    const char *sqlstate; /* "" = must succeed */
} case_t;

#define NEW_EVENT                                                                          \
    "INSERT INTO analytics_events (\"sessionId\", \"eventId\", type, \"visitorId\", "   \
    "\"occurredAt\") VALUES ('00000000-0000-0000-0000-000000000001', 'x', 'CLICK', 'v', now())"
#define NEW_AUDIT                                                                          \
    "INSERT INTO audit_logs (action, \"entityType\", \"entityId\", \"actorType\") VALUES " \
    "('note', 'export', 'e', 'test')"

static const case_t k_cases[] = {
    /* evpipe_readonly reads everything and writes nothing. */
    {3, "SELECT count(*) FROM audit_logs", ""},
    {3, "SELECT count(*) FROM schema_migrations", ""},
    {3, "SELECT count(*) FROM dirty_hours", ""},
    {3, NEW_EVENT, "42501"},
    {3, "UPDATE tracking_configs SET description = 'x'", "42501"},
    {3, "DELETE FROM consumer_offsets", "42501"},
    {3, NEW_AUDIT, "42501"},
    /* evpipe_ingest: the traffic and its offsets, nothing else. */
    {0, "UPDATE analytics_sessions SET \"userId\" = 'u' WHERE false", ""},
    {0, "UPDATE audit_logs SET action = 'x'", "42501"},
    {0, "DELETE FROM audit_logs", "42501"},
    {0, NEW_AUDIT, "42501"},
    {0, "SELECT count(*) FROM exports", "42501"},
    {0, "INSERT INTO metric_snapshots (\"metricKey\", period, \"periodStart\", \"periodEnd\", "
        "aggregation, value) VALUES ('k', 'DAILY', now(), now(), 'SUM', 1)",
     "42501"},
    {0, "UPDATE tracking_configs SET description = 'x'", "42501"},
    {0, "DELETE FROM dirty_hours", "42501"},
    {0, "TRUNCATE analytics_events", "42501"},
    {0, "CREATE TABLE ingest_scratch (x int)", "42501"},
    /* evpipe_stages: results and marks, not the traffic nor the jobs. */
    {1, "DELETE FROM dirty_hours WHERE false", ""},
    {1, NEW_EVENT, "42501"},
    {1, "DELETE FROM analytics_sessions", "42501"},
    {1, "UPDATE reports SET status = 'FAILED'", "42501"},
    {1, "UPDATE audit_logs SET action = 'x'", "42501"},
    {1, "UPDATE funnels SET status = 'PAUSED'", "42501"},
    /* evpipe_exporter: jobs and their audit rows, read-only elsewhere. */
    {2, "UPDATE exports SET status = 'PENDING' WHERE false", ""},
    {2, NEW_AUDIT, ""},
    {2, NEW_EVENT, "42501"},
    {2, "UPDATE analytics_events SET name = 'x'", "42501"},
    {2, "DELETE FROM analytics_events", "42501"},
    {2, "UPDATE audit_logs SET action = 'x'", "42501"},
    {2, "DELETE FROM audit_logs", "42501"},
    {2, "INSERT INTO reports (name, type) VALUES ('r', 'TRAFFIC')", "42501"},
    {2, "DELETE FROM exports", "42501"},
    {2, "UPDATE metric_snapshots SET value = 0", "42501"},
    /* audit_logs is insert-only for every role. */
    {0, "TRUNCATE audit_logs", "42501"},
    {1, "TRUNCATE audit_logs", "42501"},
    {2, "TRUNCATE audit_logs", "42501"},
    {3, "TRUNCATE audit_logs", "42501"},
};

START_TEST(test_roles_refuse_what_a_stage_must_not_do) {
    char *url = tl_db_create_migrated("roles_refuse");
    PGconn *admin = tl_connect(url);
    /* PostgreSQL before 15 lets PUBLIC create in schema public; no role may. */
    tl_exec(admin, "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    char *users[N_ROLES];
    PGconn *conns[N_ROLES];
    for (int i = 0; i < N_ROLES; i++) {
        users[i] = login_user(admin, k_roles[i]);
        char *as = url_as(url, users[i]);
        conns[i] = tl_connect(as);
        free(as);
    }
    for (size_t i = 0; i < sizeof(k_cases) / sizeof(k_cases[0]); i++) {
        const case_t *c = &k_cases[i];
        PGresult *res = PQexec(conns[c->role], c->sql);
        ExecStatusType st = PQresultStatus(res);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (!*c->sqlstate)
            ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s: %s",
                          k_roles[c->role], c->sql, PQresultErrorMessage(res));
        else
            ck_assert_msg(st == PGRES_FATAL_ERROR && state && strcmp(state, c->sqlstate) == 0 &&
                              strstr(PQresultErrorMessage(res), "permission denied"),
                          "%s: %s: want %s, got %s %s", k_roles[c->role], c->sql, c->sqlstate,
                          state ? state : "(success)", PQresultErrorMessage(res));
        PQclear(res);
    }
    /* The one audit row the exporter wrote is all there is. */
    assert_query(admin, "SELECT count(*) || ' ' || min(action) FROM audit_logs", "1 note");
    for (int i = 0; i < N_ROLES; i++) PQfinish(conns[i]);
    PQfinish(admin);
    admin = tl_connect(tl_database_url());
    for (int i = 0; i < N_ROLES; i++) drop_user(admin, users[i]);
    PQfinish(admin);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* ---------------------------------------------------------------- the export lifecycle */

/* The exports stage's statements (consumers/jobs.h) as a member of evpipe_exporter:
 * LISTEN, snapshot, claim, renew, finish with the file's columns, release, reclaim,
 * fail after the last attempt, expire; each change audited. */
START_TEST(test_roles_exporter_runs_the_export_job_lifecycle) {
    char *url = tl_db_create_migrated("roles_exports");
    PGconn *admin = tl_connect(url);
    tl_exec(admin, "INSERT INTO exports (id, format) VALUES "
                   "('00000000-0000-0000-0000-000000000001', 'CSV'), "
                   "('00000000-0000-0000-0000-000000000002', 'JSON')");
    char *exporter = login_user(admin, "evpipe_exporter");
    char *as = url_as(url, exporter), err[512];
    jobs_t *jobs = jobs_new(as, JOBS_EXPORTS, "exports", "w1", 30, 2, err, sizeof(err));
    ck_assert_msg(jobs != NULL, "%s", err);
    long long n = -1;
    ck_assert_msg(jobs_listen(jobs, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(jobs_snapshot(jobs, &n, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(n, 2);
    jobs_job_t *a = NULL, *b = NULL;
    ck_assert_msg(jobs_claim(jobs, &a, err, sizeof(err)) == 0 && a, "%s", err);
    ck_assert_msg(jobs_claim(jobs, &b, err, sizeof(err)) == 0 && b, "%s", err);
    ck_assert_msg(jobs_renew(jobs, a, err, sizeof(err)) == 0, "%s", err);
    const char *file[] = {"file:///tmp/e1.csv", "3"};
    ck_assert_msg(jobs_finish(jobs, a, "COMPLETED", NULL,
                              ", \"fileUrl\" = $5, \"rowCount\" = $6::bigint, "
                              "\"completedAt\" = now(), \"expiresAt\" = now() - interval "
                              "'1 second'",
                              2, file, err, sizeof(err)) == 0,
                  "%s", err);
    /* Given back (PENDING again fires the NOTIFY trigger as the exporter), claimed again
     * under a lease that then runs out after the last attempt: FAILED. */
    ck_assert_msg(jobs_release(jobs, b, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(jobs_wait(jobs, 5000), 1);
    jobs_job_free(b);
    b = NULL;
    ck_assert_msg(jobs_claim(jobs, &b, err, sizeof(err)) == 0 && b, "%s", err);
    tl_exec(admin, "UPDATE exports SET attempts = 2, \"leaseExpiresAt\" = now() - interval "
                   "'1 second' WHERE id = '00000000-0000-0000-0000-000000000002'");
    ck_assert_msg(jobs_fail_exhausted(jobs, &n, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(n, 1);
    ck_assert_msg(jobs_expire(jobs, &n, NULL, NULL, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(n, 1);
    assert_query(admin,
                 "SELECT string_agg(id || ':' || status || ':' || coalesce(\"rowCount\"::text, "
                 "'-'), ',' ORDER BY id) FROM exports",
                 "00000000-0000-0000-0000-000000000001:EXPIRED:3,"
                 "00000000-0000-0000-0000-000000000002:FAILED:-");
    assert_query(admin,
                 "SELECT string_agg(right(\"entityId\", 1) || action, ',' ORDER BY "
                 "\"entityId\", action) FROM audit_logs",
                 "1claim,1completed,1expired,2claim,2claim,2failed,2release");
    jobs_job_free(a);
    jobs_job_free(b);
    jobs_destroy(jobs);
    free(as);
    PQfinish(admin);
    admin = tl_connect(tl_database_url());
    drop_user(admin, exporter);
    PQfinish(admin);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* ---------------------------------------------------------------- the wrong role */

/* Runs ARGS as user; asserts the exit status and that stderr names the refusal and the
 * role to join. */
static void assert_refused(const char *url, const char *user, const char *args, int want_rc,
                           const char *role) {
    char *as = url_as(url, user);
    char *cmd = fmt_alloc("'%s' %s --database '%s'", tl_evpipe_bin(), args, as);
    char *err = NULL;
    int rc = tl_run(cmd, NULL, &err);
    ck_assert_msg(rc == want_rc && err && strstr(err, "permission denied") &&
                      strstr(err, role) && strstr(err, "Database roles"),
                  "as %s: evpipe %s: want exit %d naming %s, got %d:\n%s", user, args, want_rc,
                  role, rc, err ? err : "");
    free(err);
    free(cmd);
    free(as);
}

START_TEST(test_roles_stage_as_wrong_role_exits_naming_its_role) {
    char errstr[256];
    ev_kmock_t *km = ev_kmock_new(1, errstr, sizeof(errstr));
    ck_assert_msg(km != NULL, "%s", errstr);
    char *url = tl_db_create_migrated("roles_wrong");
    char *name = db_name(url);
    PGconn *admin = tl_connect(url);
    exec_fmt(admin, "REVOKE ALL ON DATABASE \"%s\" FROM PUBLIC", name);
    char *readonly = login_user(admin, "evpipe_readonly");
    char *exporter = login_user(admin, "evpipe_exporter");
    char *stages = login_user(admin, "evpipe_stages");
    /* Refused while starting: exit 2, as for an unmigrated schema. */
    char *args = fmt_alloc("ingest --brokers %s --topic none --group g --enriched-topic '' "
                           "--metrics-port -1 --until-caught-up",
                           ev_kmock_bootstraps(km));
    assert_refused(url, readonly, args, 2, "evpipe_ingest");
    free(args);
    assert_refused(url, exporter, "metrics --until-caught-up --metrics-port -1", 2,
                   "evpipe_stages");
    assert_refused(url, readonly, "funnels --until-caught-up --metrics-port -1", 2,
                   "evpipe_stages");
    assert_refused(url, stages, "reports --until-caught-up --metrics-port -1", 2,
                   "evpipe_exporter");
    assert_refused(url, stages,
                   "exports --until-caught-up --metrics-port -1 --upload-url file:///tmp/", 2,
                   "evpipe_exporter");
    /* exports sweeps expired jobs while starting: refused there as readonly too. */
    assert_refused(url, readonly,
                   "exports --until-caught-up --metrics-port -1 --upload-url file:///tmp/", 2,
                   "evpipe_exporter");
    /* Refused once working: ingest as stages (may read the traffic, not its offsets)
     * once the partitions are assigned; reports as readonly (may read the jobs, not
     * fail them). Exit 1. */
    char *path = publish_stream(km);
    args = fmt_alloc("ingest --brokers %s --topic raw --group g --enriched-topic '' "
                     "--metrics-port -1 --until-caught-up",
                     ev_kmock_bootstraps(km));
    assert_refused(url, stages, args, 1, "evpipe_ingest");
    free(args);
    assert_query(admin, "SELECT count(*) FROM analytics_events", "0");
    unlink(path);
    free(path);
    assert_refused(url, readonly, "reports --until-caught-up --metrics-port -1", 1,
                   "evpipe_exporter");
    PQfinish(admin);
    admin = tl_connect(tl_database_url());
    drop_user(admin, readonly);
    drop_user(admin, exporter);
    drop_user(admin, stages);
    PQfinish(admin);
    tl_db_drop(url);
    free(name);
    free(url);
    ev_kmock_destroy(km);
}
END_TEST

/* ---------------------------------------------------------------- down */

START_TEST(test_roles_down_drops_only_unused_roles_it_created) {
    PGconn *admin = tl_connect(tl_database_url());
    char *url1 = tl_db_create("roles_down1"), *url2 = tl_db_create("roles_down2");
    char *db1 = db_name(url1), *db2 = db_name(url2);
    long long elsewhere = uses_elsewhere(admin, db1, db2);
    /* Roles left by databases dropped since (other suites) refer to nothing: drop them,
     * so that both databases create them at once, and both migrations succeed. */
    if (elsewhere == 0) {
        for (int i = 0; i < N_ROLES; i++) exec_fmt(admin, "DROP ROLE IF EXISTS %s", k_roles[i]);
    }
    char *cmd = fmt_alloc("'%s' migrate up --database '%s' 2>/dev/null & a=$!; "
                          "'%s' migrate up --database '%s' 2>/dev/null & b=$!; "
                          "wait $a; ra=$?; wait $b; echo $ra $?",
                          tl_evpipe_bin(), url1, tl_evpipe_bin(), url2);
    char *out = NULL;
    ck_assert_int_eq(tl_run(cmd, &out, NULL), 0);
    ck_assert_str_eq(out, "0 0\n");
    free(out);
    free(cmd);
    ck_assert_int_eq(roles_present(admin), N_ROLES);
    assert_query(admin,
                 "SELECT string_agg(rolname || ':' || rolcanlogin, ',' ORDER BY rolname) FROM "
                 "pg_roles WHERE rolname IN " ROLES_IN,
                 "evpipe_exporter:false,evpipe_ingest:false,evpipe_readonly:false,"
                 "evpipe_stages:false");
    char *user = login_user(admin, "evpipe_ingest");

    /* Down in db1: its grants are gone, the roles stay for db2 (said in the log), which
     * still works. */
    char *log = NULL;
    ck_assert_int_eq(run_migrate_log(url1, DOWN_THROUGH_ROLES, &log), 0);
    ck_assert_msg(count_substr(log, "kept: another database (or another grant) still uses "
                                    "it") == N_ROLES,
                  "%s", log);
    ck_assert_msg(strstr(log, "INFO  migrate: server: role evpipe_ingest kept"), "%s", log);
    free(log);
    ck_assert_int_eq(roles_present(admin), N_ROLES);
    PGconn *c1 = tl_connect(url1), *c2 = tl_connect(url2);
    const char *grants =
        "SELECT (SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a JOIN pg_roles r ON "
        "r.oid = a.grantee WHERE r.rolname IN " ROLES_IN ") + (SELECT count(*) FROM "
        "pg_default_acl) + (SELECT count(*) FROM pg_namespace n, aclexplode(n.nspacl) a JOIN "
        "pg_roles r ON r.oid = a.grantee WHERE r.rolname IN " ROLES_IN ") + (SELECT count(*) "
        "FROM pg_database d, aclexplode(d.datacl) a JOIN pg_roles r ON r.oid = a.grantee "
        "WHERE d.datname = current_database() AND r.rolname IN " ROLES_IN ")";
    assert_query(c1, grants, "0");
    /* db2: 6 database, 4 schema, 1 default and 116 table and sequence privileges. */
    assert_query(c2, grants, "127");
    char *as = url_as(url2, user);
    PGconn *ing = tl_connect(as);
    tl_exec(ing, "INSERT INTO consumer_offsets VALUES ('g', 't', 0, 1)");
    PQfinish(ing);
    free(as);

    /* Down in db2: nothing uses the roles any more, so they are dropped; the login user
     * stays, without the membership. */
    ck_assert_int_eq(run_migrate(url2, DOWN_THROUGH_ROLES), 0);
    assert_query(c2, grants, "0");
    ck_assert_int_eq(roles_present(admin), elsewhere ? N_ROLES : 0);
    char *sql = fmt_alloc("SELECT count(*) FROM pg_auth_members m JOIN pg_roles u ON u.oid = "
                          "m.member WHERE u.rolname = '%s'", user);
    ck_assert_int_eq(tl_query_ll(admin, sql), elsewhere ? 1 : 0);
    free(sql);

    /* A role that existed before the up migration is left in place by the down. */
    if (elsewhere == 0) {
        tl_exec(admin, "CREATE ROLE evpipe_readonly NOLOGIN");
        ck_assert_int_eq(run_migrate(url1, "up"), 0);
        ck_assert_int_eq(roles_present(admin), N_ROLES);
        ck_assert_int_eq(run_migrate_log(url1, DOWN_THROUGH_ROLES, &log), 0);
        ck_assert_msg(strstr(log, "role evpipe_readonly kept: it was not created by migration "
                                  "0010_roles"),
                      "%s", log);
        ck_assert_int_eq(count_substr(log, " kept: "), 1);
        free(log);
        assert_query(admin, "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname IN "
                            ROLES_IN, "evpipe_readonly");
        assert_query(c1, grants, "0");
        tl_exec(admin, "DROP ROLE evpipe_readonly");
    }
    /* Up again after down: the roles and their grants come back. */
    ck_assert_int_eq(run_migrate(url1, "up"), 0);
    ck_assert_int_eq(roles_present(admin), N_ROLES);
    assert_query(c1, grants, "127");
    ck_assert_int_eq(run_migrate(url1, DOWN_THROUGH_ROLES), 0);

    PQfinish(c1);
    PQfinish(c2);
    drop_user(admin, user);
    PQfinish(admin);
    tl_db_drop(url1);
    tl_db_drop(url2);
    free(db1);
    free(db2);
    free(url1);
    free(url2);
}
END_TEST

static Suite *roles_suite(void) {
    Suite *s = suite_create("roles");
    TCase *tc = tcase_create("roles");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_roles_refuse_what_a_stage_must_not_do);
    tcase_add_test(tc, test_roles_stages_run_as_members_of_their_roles);
    tcase_add_test(tc, test_roles_exporter_runs_the_export_job_lifecycle);
    tcase_add_test(tc, test_roles_stage_as_wrong_role_exits_naming_its_role);
    tcase_add_test(tc, test_roles_down_drops_only_unused_roles_it_created);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(roles_suite()) ? 1 : 0; }
