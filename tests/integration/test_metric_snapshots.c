/* test_metric_snapshots.c — `evpipe metrics` against a real PostgreSQL: after ingest
 * (mock Kafka) and after merges, deletions, moves, reclassifications, a settings
 * change, kill -9 and two instances, every snapshot equals an independent SQL
 * aggregate over the stored rows, and the rows are exactly the periods with samples. */
#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/kmock.h"
#include "common/util.h"
#include "tests/integration/ingest_oracle.h"
#include "tests/testlib.h"

/* The expected snapshots, as SQL over the stored rows (metrics_expected.sql, next to
 * this file; also make bench's full-recomputation baseline). */
static char *expected_sql(void) {
    char *text = NULL, errstr[256];
    size_t len = 0;
    int rc = ev_read_file("tests/integration/metrics_expected.sql", 1 << 20, &text, &len, errstr,
                          sizeof(errstr));
    ck_assert_msg(rc == 0, "%s", errstr);
    return text;
}

/* Rows that differ between the expectation and metric_snapshots (0 = equal). */
static long long snapshot_mismatches(PGconn *conn, bool exclude_bots, bool print) {
    char *expected = expected_sql(), *sql = malloc(strlen(expected) + 4096);
    ck_assert(sql != NULL);
    const char *tail =
        "SELECT coalesce(x.key, m.\"metricKey\"), coalesce(x.period, m.period::text), "
        "coalesce(x.ps, m.\"periodStart\"), x.value, m.value, x.n, m.\"sampleCount\" "
        "FROM expected x FULL JOIN metric_snapshots m ON m.\"metricKey\" = x.key "
        "AND m.period::text = x.period AND m.\"periodStart\" = x.ps "
        "WHERE m.id IS NULL OR x.key IS NULL OR m.\"periodEnd\" <> x.pe OR m.aggregation::text <> x.agg "
        "OR m.\"sampleCount\" <> x.n OR m.dimensions <> x.dims "
        "OR abs(m.value - x.value) > 1e-9 * greatest(1, abs(x.value)) ORDER BY 1, 2, 3";
    const char *bots = exclude_bots ? "true" : "false";
    const char *at = strstr(expected, ":BOTS");
    ck_assert(at != NULL);
    size_t head = (size_t)(at - expected);
    snprintf(sql, strlen(expected) + 4096, "%.*s%s%s%s", (int)head, expected, bots,
             expected + head + 5, tail);
    free(expected);
    PGresult *res = PQexec(conn, sql);
    free(sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    long long n = PQntuples(res);
    for (int i = 0; print && i < n && i < 15; i++)
        fprintf(stderr, "mismatch: %s %s %s expected %s (%s) got %s (%s)\n",
                PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                PQgetvalue(res, i, 3), PQgetvalue(res, i, 5), PQgetvalue(res, i, 4),
                PQgetvalue(res, i, 6));
    PQclear(res);
    return n;
}

static void check_snapshots(const char *db, bool exclude_bots) {
    PGconn *conn = tl_connect(db);
    long long n = snapshot_mismatches(conn, exclude_bots, true);
    ck_assert_msg(n == 0, "%lld snapshot rows differ from the SQL over the stored rows", n);
    PQfinish(conn);
}

/* The generated stream yields every kind of row: all periods, devices, currencies. */
static void check_snapshot_kinds(const char *db) {
    PGconn *conn = tl_connect(db);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(DISTINCT period) FROM metric_snapshots"), 5);
    ck_assert_int_gt(tl_query_ll(conn, "SELECT count(*) FROM metric_snapshots WHERE "
                                       "\"metricKey\" LIKE 'revenue{currency=%,deviceType=%}'"),
                     0);
    ck_assert_int_gt(tl_query_ll(conn, "SELECT count(*) FROM metric_snapshots WHERE "
                                       "\"metricKey\" = 'visitors' AND period = 'YEARLY'"),
                     1);
    PQfinish(conn);
}

static int run_metrics(const char *db, const char *extra) {
    char cmd[2048], *err = NULL;
    snprintf(cmd, sizeof(cmd),
             "%s metrics --database '%s' --until-caught-up --metrics-port -1 --debounce-ms 0 %s",
             tl_evpipe_bin(), db, extra ? extra : "");
    int rc = tl_run(cmd, NULL, &err);
    if (rc != 0) fprintf(stderr, "metrics exited %d: %s\n", rc, err ? err : "");
    free(err);
    return rc;
}

static pid_t spawn(const char *cmdline) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmdline, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid, int seconds) {
    for (int i = 0; i < seconds * 20; i++) {
        int st = 0;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("process did not finish within %d s", seconds);
    return -1;
}

/* A database holding an ingested stream of 5 days across a year boundary (with
 * disorder, duplicates and malformed messages): ingest through the mock cluster. */
static char *ingested_db(const char *prefix, const char *loadgen_args) {
    char errstr[256], path[64] = "/tmp/evpipe_metrics_XXXXXX", cmd[2048], *err = NULL;
    ev_kmock_t *km = ev_kmock_new(3, errstr, sizeof(errstr));
    ck_assert_msg(km != NULL, "%s", errstr);
    ck_assert_int_eq(ev_kmock_topic_create(km, "raw", 6, errstr, sizeof(errstr)), 0);
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    snprintf(cmd, sizeof(cmd), "%s loadgen --output %s %s", tl_evpipe_bin(), path,
             loadgen_args);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);
    size_t lines = oracle_produce_file(ev_kmock_bootstraps(km), "raw", path);
    ck_assert_int_gt(lines, 1000);
    char *db = tl_db_create_migrated(prefix);
    snprintf(cmd, sizeof(cmd),
             "%s ingest --brokers %s --database '%s' --topic raw --group g --enriched-topic '' "
             "--metrics-port -1 --batch-ms 100 --batch-size 500 --until-caught-up",
             tl_evpipe_bin(), ev_kmock_bootstraps(km), db);
    int rc = tl_run(cmd, NULL, &err);
    ck_assert_msg(rc == 0, "ingest failed (%d): %s", rc, err ? err : "");
    free(err);
    unlink(path);
    ev_kmock_destroy(km);
    PGconn *conn = tl_connect(db);
    ck_assert_int_gt(tl_query_ll(conn, "SELECT count(*) FROM analytics_events"), 1000);
    /* The stream covers bots and at least two years (the 2026/2027 boundary). */
    ck_assert_int_gt(tl_query_ll(conn, "SELECT count(*) FROM analytics_sessions "
                                       "WHERE \"deviceType\" = 'BOT'"),
                     0);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(DISTINCT date_trunc('year', "
                                       "\"occurredAt\", 'UTC')) FROM analytics_events"),
                     2);
    PQfinish(conn);
    return db;
}

static const char *stream =
    "--seed 21 --visitors 200 --days 5 --start 2026-12-29T00:00:00Z --disorder 900 "
    "--dup-ratio 0.03 --bad-ratio 0.02";

static char *dump_snapshots(const char *db) {
    PGconn *conn = tl_connect(db);
    char *s = tl_query_text(conn, "SELECT string_agg(concat_ws('|', id, \"metricKey\", period, "
                                  "\"periodStart\", value, \"sampleCount\", \"computedAt\"), "
                                  "E'\\n' ORDER BY id) FROM metric_snapshots");
    PQfinish(conn);
    return s;
}

START_TEST(test_metric_snapshots_equal_sql_after_ingest_and_replay_changes_nothing) {
    char *db = ingested_db("metrics_ingest", stream);
    ck_assert_int_eq(run_metrics(db, NULL), 0);
    check_snapshots(db, true);
    check_snapshot_kinds(db);
    PGconn *conn = tl_connect(db);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM dirty_hours WHERE stage = 'metrics'"),
                     0);
    /* Re-marking every hour (a replay, a recompute) changes no row, not even computedAt. */
    char *before = dump_snapshots(db);
    ck_assert_int_eq(run_metrics(db, "--recompute 2026-12-01..2027-02-01"), 0);
    char *after = dump_snapshots(db);
    ck_assert_msg(strcmp(before, after) == 0, "a recomputation changed metric_snapshots");
    /* Rebuilding from nothing (state and snapshots lost) gives the same numbers. */
    tl_exec(conn, "TRUNCATE metric_snapshots, metric_rollups, metric_visitors, "
                  "metric_visitor_counts");
    ck_assert_int_eq(run_metrics(db, "--recompute 2026-12-01..2027-02-01"), 0);
    check_snapshots(db, true);
    PQfinish(conn);
    free(before);
    free(after);
    tl_db_drop(db);
    free(db);
}
END_TEST

START_TEST(test_metric_snapshots_follow_merges_deletions_moves_and_settings) {
    char *db = ingested_db("metrics_changes", stream);
    ck_assert_int_eq(run_metrics(db, NULL), 0);
    check_snapshots(db, true);
    PGconn *conn = tl_connect(db);
    /* A merge across the year boundary: the first session of 2027 swallows the last
     * one of 2026 of another visitor's... of the same visitor when there is one, else
     * of any visitor: its rows re-pointed, the absorbed session deleted. */
    tl_exec(conn,
            "CREATE TEMP TABLE pair AS SELECT a.id keep, b.id gone FROM analytics_sessions a, "
            "analytics_sessions b WHERE a.\"startedAt\" >= '2027-01-01' AND b.\"startedAt\" < "
            "'2027-01-01' AND a.\"deviceType\" <> 'BOT' AND b.\"deviceType\" <> 'BOT' "
            "ORDER BY a.\"startedAt\", b.\"startedAt\" DESC LIMIT 1");
    tl_exec(conn, "BEGIN");
    tl_exec(conn, "UPDATE analytics_events SET \"sessionId\" = (SELECT keep FROM pair) "
                  "WHERE \"sessionId\" = (SELECT gone FROM pair)");
    tl_exec(conn, "UPDATE page_views SET \"sessionId\" = (SELECT keep FROM pair) "
                  "WHERE \"sessionId\" = (SELECT gone FROM pair)");
    tl_exec(conn, "UPDATE conversion_events SET \"sessionId\" = (SELECT keep FROM pair) "
                  "WHERE \"sessionId\" = (SELECT gone FROM pair)");
    tl_exec(conn, "UPDATE analytics_sessions k SET \"startedAt\" = g.\"startedAt\", "
                  "\"eventCount\" = k.\"eventCount\" + g.\"eventCount\" FROM analytics_sessions g "
                  "WHERE k.id = (SELECT keep FROM pair) AND g.id = (SELECT gone FROM pair)");
    tl_exec(conn, "DELETE FROM analytics_sessions WHERE id = (SELECT gone FROM pair)");
    tl_exec(conn, "COMMIT");
    /* A whole session deleted with its rows (its periods may hold nothing else). */
    tl_exec(conn, "CREATE TEMP TABLE victim AS SELECT id FROM analytics_sessions "
                  "WHERE \"deviceType\" <> 'BOT' ORDER BY \"startedAt\" LIMIT 1");
    tl_exec(conn, "DELETE FROM analytics_events WHERE \"sessionId\" IN (SELECT id FROM victim)");
    tl_exec(conn, "DELETE FROM page_views WHERE \"sessionId\" IN (SELECT id FROM victim)");
    tl_exec(conn, "DELETE FROM conversion_events WHERE \"sessionId\" IN (SELECT id FROM victim)");
    tl_exec(conn, "DELETE FROM analytics_sessions WHERE id IN (SELECT id FROM victim)");
    /* A session moved a day later with its rows; one reclassified as BOT. */
    tl_exec(conn, "CREATE TEMP TABLE moved AS SELECT id FROM analytics_sessions "
                  "WHERE \"deviceType\" = 'MOBILE' ORDER BY \"startedAt\" DESC LIMIT 1");
    tl_exec(conn, "UPDATE analytics_events SET \"occurredAt\" = \"occurredAt\" + interval '1 day' "
                  "WHERE \"sessionId\" IN (SELECT id FROM moved)");
    tl_exec(conn, "UPDATE page_views SET \"viewedAt\" = \"viewedAt\" + interval '1 day' "
                  "WHERE \"sessionId\" IN (SELECT id FROM moved)");
    tl_exec(conn, "UPDATE conversion_events SET \"occurredAt\" = \"occurredAt\" + interval '1 day' "
                  "WHERE \"sessionId\" IN (SELECT id FROM moved)");
    tl_exec(conn, "UPDATE analytics_sessions SET \"startedAt\" = \"startedAt\" + interval '1 day', "
                  "\"endedAt\" = \"endedAt\" + interval '1 day' WHERE id IN (SELECT id FROM moved)");
    tl_exec(conn, "UPDATE analytics_sessions SET \"deviceType\" = 'BOT' WHERE id = (SELECT "
                  "\"sessionId\" FROM conversion_events WHERE value IS NOT NULL ORDER BY "
                  "\"occurredAt\" LIMIT 1)");
    ck_assert_int_gt(snapshot_mismatches(conn, true, false), 0);
    ck_assert_int_eq(run_metrics(db, NULL), 0);
    check_snapshots(db, true);

    /* bots.excludeFromMetrics switched off: everything is recomputed with the bots. */
    tl_exec(conn, "INSERT INTO tracking_configs (id, key, value, \"isActive\", \"updatedAt\") "
                  "VALUES (gen_random_uuid(), 'bots.excludeFromMetrics', 'false', true, now())");
    ck_assert_int_eq(run_metrics(db, NULL), 0);
    check_snapshots(db, false);
    ck_assert_int_gt(tl_query_ll(conn, "SELECT count(*) FROM metric_snapshots WHERE "
                                       "dimensions->>'deviceType' = 'BOT'"),
                     0);
    tl_exec(conn, "UPDATE tracking_configs SET value = 'true' WHERE key = 'bots.excludeFromMetrics'");
    ck_assert_int_eq(run_metrics(db, NULL), 0);
    check_snapshots(db, true);
    PQfinish(conn);
    tl_db_drop(db);
    free(db);
}
END_TEST

static void write_lines(const char *path, const char *const *lines) {
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    for (; *lines; lines++) fprintf(f, "%s\n", *lines);
    fclose(f);
}

#define EV(id, visitor, ts) \
    "{\"eventId\":\"" id "\",\"type\":\"PAGE_VIEW\",\"timestamp\":\"" ts \
    "\",\"visitorId\":\"" visitor "\",\"url\":\"https://shop.example.com/\"}"

/* Late events through ingest merge sessions across an hour boundary and across the
 * day/month/year boundary: the snapshots converge to the new truth, and the periods of
 * the deleted sessions (2027's only session start) lose their rows. */
START_TEST(test_metric_snapshots_follow_late_merges_through_ingest) {
    char errstr[256], path[64] = "/tmp/evpipe_late_XXXXXX", cmd[2048], *err = NULL;
    ev_kmock_t *km = ev_kmock_new(3, errstr, sizeof(errstr));
    ck_assert_msg(km != NULL, "%s", errstr);
    ck_assert_int_eq(ev_kmock_topic_create(km, "raw", 3, errstr, sizeof(errstr)), 0);
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    char *db = tl_db_create_migrated("metrics_late");
    snprintf(cmd, sizeof(cmd),
             "%s ingest --brokers %s --database '%s' --topic raw --group g --enriched-topic '' "
             "--metrics-port -1 --batch-ms 100 --until-caught-up",
             tl_evpipe_bin(), ev_kmock_bootstraps(km), db);
    const char *first[] = {EV("a1", "year", "2026-12-31T23:20:00.000Z"),
                           EV("a2", "year", "2027-01-01T00:20:00.000Z"),
                           EV("b1", "hour", "2026-06-10T10:50:00.000Z"),
                           EV("b2", "hour", "2026-06-10T11:40:00.000Z"),
                           EV("c1", "other", "2026-06-10T11:45:00.000Z"), NULL};
    write_lines(path, first);
    ck_assert_int_eq(oracle_produce_file(ev_kmock_bootstraps(km), "raw", path), 5);
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 0);
    free(err);
    ck_assert_int_eq(run_metrics(db, NULL), 0);
    check_snapshots(db, true);
    PGconn *conn = tl_connect(db);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM analytics_sessions"), 5);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT value FROM metric_snapshots WHERE \"metricKey\" = "
                                       "'sessions' AND period = 'YEARLY' AND \"periodStart\" = "
                                       "'2027-01-01+00'"),
                     1);
    const char *late[] = {EV("a3", "year", "2026-12-31T23:50:00.000Z"),
                          EV("b3", "hour", "2026-06-10T11:15:00.000Z"), NULL};
    write_lines(path, late);
    ck_assert_int_eq(oracle_produce_file(ev_kmock_bootstraps(km), "raw", path), 2);
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 0);
    free(err);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM analytics_sessions"), 3);
    ck_assert_int_eq(run_metrics(db, NULL), 0);
    check_snapshots(db, true);
    /* 2027 holds an event but no session start any more; June's 11:00 hour no start. */
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM metric_snapshots WHERE \"metricKey\" "
                                       "= 'sessions' AND \"periodStart\" >= '2027-01-01+00'"),
                     0);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM metric_snapshots WHERE \"metricKey\" "
                                       "= 'visitors' AND period = 'YEARLY' AND \"periodStart\" = "
                                       "'2027-01-01+00'"),
                     1);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT value FROM metric_snapshots WHERE \"metricKey\" = "
                                       "'sessions' AND period = 'HOURLY' AND \"periodStart\" = "
                                       "'2026-06-10 11:00+00'"),
                     1); /* "other" only: "hour" is one session from 10:50 now */
    PQfinish(conn);
    unlink(path);
    ev_kmock_destroy(km);
    tl_db_drop(db);
    free(db);
}
END_TEST

/* kill -9 at random moments of a long catch-up, then two instances finishing it
 * together: the tables equal the SQL, and no mark is left. */
START_TEST(test_metric_snapshots_kill9_and_two_instances) {
    char *db = ingested_db("metrics_kill", stream);
    PGconn *conn = tl_connect(db);
    /* Small batches make many transactions to interrupt. */
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "exec %s metrics --database '%s' --metrics-port -1 --debounce-ms 0 --batch-marks 3 "
             ">>/tmp/evpipe_test_metrics.log 2>&1",
             tl_evpipe_bin(), db);
    srand((unsigned)time(NULL));
    for (int round = 0; round < 4; round++) {
        pid_t pid = spawn(cmd);
        usleep(100000 + (useconds_t)(rand() % 300) * 1000);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    ck_assert_int_gt(tl_query_ll(conn, "SELECT count(*) FROM dirty_hours WHERE stage = 'metrics'"),
                     0);
    pid_t a = spawn(cmd), b = spawn(cmd);
    for (int i = 0; i < 1200; i++) {
        if (tl_query_ll(conn, "SELECT count(*) FROM dirty_hours WHERE stage = 'metrics'") == 0)
            break;
        usleep(100000);
    }
    kill(a, SIGTERM);
    kill(b, SIGTERM);
    ck_assert_int_eq(wait_exit(a, 30), 0);
    ck_assert_int_eq(wait_exit(b, 30), 0);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM dirty_hours WHERE stage = 'metrics'"),
                     0);
    check_snapshots(db, true);
    PQfinish(conn);
    tl_db_drop(db);
    free(db);
}
END_TEST

/* A visitor's session of n events starting at `start` (SQL timestamp literal). */
static void insert_session(PGconn *conn, const char *id, const char *visitor, const char *start,
                           int n, const char *device) {
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", \"endedAt\", "
             "duration, \"eventCount\", \"deviceType\", \"updatedAt\") VALUES ('%s', '%s', "
             "'%s', '%s'::timestamptz + interval '1 minute' * %d, 60 * %d, %d, '%s', now())",
             id, visitor, start, start, n - 1, n - 1, n, device);
    tl_exec(conn, sql);
    snprintf(sql, sizeof(sql),
             "INSERT INTO analytics_events (id, \"sessionId\", \"eventId\", type, \"visitorId\", "
             "\"occurredAt\") SELECT gen_random_uuid(), '%s', '%s-' || i, 'PRODUCT_VIEW', '%s', "
             "'%s'::timestamptz + interval '1 minute' * i FROM generate_series(0, %d) i",
             id, id, visitor, start, n - 1);
    tl_exec(conn, sql);
}

/* Long-running: ready once connected, waits out a PostgreSQL outage (not ready
 * meanwhile), absorbs what arrives after it, and stops cleanly on SIGTERM. */
START_TEST(test_metric_snapshots_outage_readiness_and_sigterm) {
    char dir[] = "/tmp/evpipe_metrics_outage_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    chmod(dir, 0755); /* the server runs as the postgres user */
    char cmd[2048], *url = NULL, *err = NULL, *body = NULL;
    snprintf(cmd, sizeof(cmd), "sh tests/pg_harness.sh start %s/pg", dir);
    ck_assert_msg(tl_run(cmd, &url, &err) == 0, "cannot start PostgreSQL: %s", err);
    free(err);
    url[strcspn(url, "\n")] = '\0';
    snprintf(cmd, sizeof(cmd), "%s migrate up --database '%s'", tl_evpipe_bin(), url);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);
    PGconn *conn = tl_connect(url);
    insert_session(conn, "00000000-0000-0000-0000-0000000000a1", "v1", "2026-03-01 10:50:00+00", 20,
                   "DESKTOP");
    PQfinish(conn);

    int port = tl_free_port();
    snprintf(cmd, sizeof(cmd),
             "exec %s metrics --database '%s' --metrics-port %d --debounce-ms 0 --poll-ms 50 "
             ">>/tmp/evpipe_test_metrics.log 2>&1",
             tl_evpipe_bin(), url, port);
    pid_t pid = spawn(cmd);
    long status = 0;
    for (int i = 0; i < 100 && status != 200; i++, usleep(100000)) {
        free(body);
        status = tl_http_get(port, "/readyz", &body);
    }
    ck_assert_int_eq(status, 200);
    snprintf(cmd, sizeof(cmd), "sh tests/pg_harness.sh stop %s/pg", dir);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);
    for (int i = 0; i < 100 && status == 200; i++, usleep(100000)) {
        free(body);
        status = tl_http_get(port, "/readyz", &body);
    }
    ck_assert_int_eq(status, 503);
    ck_assert_msg(body && strstr(body, "PostgreSQL"), "%s", body);
    ck_assert_int_eq(tl_http_get(port, "/healthz", &body), 200);
    snprintf(cmd, sizeof(cmd), "sh tests/pg_harness.sh resume %s/pg >/dev/null", dir);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);

    conn = tl_connect(url);
    insert_session(conn, "00000000-0000-0000-0000-0000000000a2", "v2", "2026-03-01 11:10:00+00", 5,
                   "MOBILE");
    for (int i = 0; i < 300; i++, usleep(100000))
        if (tl_query_ll(conn, "SELECT count(*) FROM dirty_hours") == 0) break;
    ck_assert_int_eq(snapshot_mismatches(conn, true, true), 0);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT value FROM metric_snapshots WHERE \"metricKey\" = "
                                       "'visitors' AND period = 'DAILY'"),
                     2);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT value FROM metric_snapshots WHERE \"metricKey\" = "
                                       "'events' AND period = 'HOURLY' AND \"periodStart\" = "
                                       "'2026-03-01 11:00+00'"),
                     15);
    free(body);
    ck_assert_int_eq(tl_http_get(port, "/metrics", &body), 200);
    ck_assert_msg(strstr(body, "evpipe_metrics_batches_committed_total"), "%s", body);
    ck_assert_msg(strstr(body, "evpipe_metrics_retries_total{component=\"postgresql\"}"), "%s",
                  body);
    free(body);
    kill(pid, SIGTERM);
    ck_assert_int_eq(wait_exit(pid, 20), 0);
    PQfinish(conn);
    snprintf(cmd, sizeof(cmd), "sh tests/pg_harness.sh stop %s/pg; rm -rf %s", dir, dir);
    tl_run(cmd, NULL, NULL);
    free(url);
}
END_TEST

START_TEST(test_metric_snapshots_usage_errors) {
    char cmd[512], *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s metrics --metrics-port -1", tl_evpipe_bin());
    unsetenv("DATABASE_URL");
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 2);
    ck_assert_msg(err && strstr(err, "--database"), "%s", err);
    free(err);
    snprintf(cmd, sizeof(cmd), "%s metrics --database x --recompute 2026-01-01", tl_evpipe_bin());
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 2);
    ck_assert_msg(err && strstr(err, "FROM..TO"), "%s", err);
    free(err);
    char *db = tl_db_create("metrics_unmigrated");
    snprintf(cmd, sizeof(cmd), "%s metrics --database '%s' --metrics-port -1 --until-caught-up",
             tl_evpipe_bin(), db);
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 2);
    ck_assert_msg(err && strstr(err, "migrate"), "%s", err);
    free(err);
    tl_db_drop(db);
    free(db);
}
END_TEST

int main(void) {
    Suite *s = suite_create("metric_snapshots");
    TCase *tc = tcase_create("metric_snapshots");
    tcase_set_timeout(tc, 600);
    if (tl_have_services()) {
        tcase_add_test(tc, test_metric_snapshots_equal_sql_after_ingest_and_replay_changes_nothing);
        tcase_add_test(tc, test_metric_snapshots_follow_merges_deletions_moves_and_settings);
        tcase_add_test(tc, test_metric_snapshots_follow_late_merges_through_ingest);
        tcase_add_test(tc, test_metric_snapshots_kill9_and_two_instances);
        tcase_add_test(tc, test_metric_snapshots_outage_readiness_and_sigterm);
        tcase_add_test(tc, test_metric_snapshots_usage_errors);
    }
    suite_add_tcase(s, tc);
    return tl_run_suite(s) == 0 ? 0 : 1;
}
