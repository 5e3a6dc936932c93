/* test_reclassify.c — `evpipe reclassify` on a migrated database: exactly the sessions
 * whose classification changes are updated, their hours (and only theirs) are marked
 * for the downstream stages, --from/--to and --dry-run hold, a second run changes
 * nothing, bad input is a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"

#define UA_BOT "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
#define UA_TABLET                                                                               \
    "Mozilla/5.0 (Linux; Android 7.0; B1-790) AppleWebKit/537.36 (KHTML, like Gecko) "          \
    "Chrome/89.0.4389.105 Mobile Safari/537.36"
#define UA_DESKTOP                                                                              \
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "         \
    "Chrome/120.0.0.0 Safari/537.36"

/* Sessions as an older classifier stored them: the bot as DESKTOP, the tablet as MOBILE;
 * the desktop and the agent-less session are right. */
static void seed(PGconn *conn) {
    tl_exec(conn, "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", \"endedAt\","
                  " \"deviceType\", browser, \"browserVersion\", os, \"osVersion\", \"userAgent\")"
                  " VALUES"
                  " ('00000000-0000-0000-0000-000000000001', 'v1', '2026-11-02 10:05Z',"
                  "  '2026-11-02 11:10Z', 'DESKTOP', 'Googlebot', '2.1', NULL, NULL, '" UA_BOT "'),"
                  " ('00000000-0000-0000-0000-000000000002', 'v2', '2026-11-03 08:00Z',"
                  "  '2026-11-03 08:20Z', 'MOBILE', 'Chrome Mobile', '89.0.4389', 'Android', '7.0',"
                  "  '" UA_TABLET "'),"
                  " ('00000000-0000-0000-0000-000000000003', 'v3', '2026-11-02 12:00Z',"
                  "  '2026-11-02 12:30Z', 'DESKTOP', 'Chrome', '120.0.0', 'Windows', '10',"
                  "  '" UA_DESKTOP "'),"
                  " ('00000000-0000-0000-0000-000000000004', 'v4', '2026-11-02 13:00Z',"
                  "  '2026-11-02 13:01Z', 'UNKNOWN', NULL, NULL, NULL, NULL, NULL)");
    tl_exec(conn, "DELETE FROM dirty_hours");
}

static char *run(const char *db, const char *args, int *rc, char **err) {
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s reclassify --database '%s' --batch-size 2 %s",
             tl_evpipe_bin(), db, args);
    char *out = NULL;
    *rc = tl_run(cmd, &out, err);
    return out;
}

START_TEST(test_reclassify_updates_changed_sessions_and_marks_their_hours) {
    char *db = tl_db_create_migrated("reclassify");
    PGconn *conn = tl_connect(db);
    seed(conn);
    char *err = NULL;
    int rc;
    /* a dry run counts and changes nothing */
    char *out = run(db, "--dry-run", &rc, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_str_eq(out, "dry run: 4 sessions read, 2 changed, 2 in deviceType DESKTOP->BOT 1 "
                          "MOBILE->TABLET 1\n");
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM dirty_hours"), 0);
    free(out);
    free(err);

    out = run(db, "", &rc, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_str_eq(out,
                     "4 sessions read, 2 changed, 2 in deviceType DESKTOP->BOT 1 MOBILE->TABLET 1\n");
    ck_assert_msg(strstr(err, "4 sessions read, 2 changed") != NULL, "progress: %s", err);
    free(out);
    free(err);
    char *types = tl_query_text(conn, "SELECT string_agg(\"deviceType\"::text, ',' ORDER BY id)"
                                      " FROM analytics_sessions");
    ck_assert_str_eq(types, "BOT,TABLET,DESKTOP,UNKNOWN");
    free(types);
    char *browser = tl_query_text(conn, "SELECT browser || ' ' || \"browserVersion\" || ' ' || os"
                                        " FROM analytics_sessions WHERE \"visitorId\" = 'v2'");
    ck_assert_str_eq(browser, "Chrome Mobile 89.0.4389 Android");
    free(browser);
    /* the hours of the two changed sessions, for each stage, and no other */
    char *hours = tl_query_text(
        conn, "SELECT string_agg(DISTINCT to_char(\"hourStart\" AT TIME ZONE 'UTC',"
              " 'MM-DD HH24'), ',') FROM dirty_hours WHERE stage = 'metrics'"
              " AND entity = 'analytics_sessions'");
    ck_assert_str_eq(hours, "11-02 10,11-02 11,11-03 08");
    free(hours);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(DISTINCT \"hourStart\") FROM dirty_hours"
                                       " WHERE stage = 'funnels'"),
                     3);

    /* a second run finds nothing to change and marks nothing */
    tl_exec(conn, "DELETE FROM dirty_hours");
    out = run(db, "", &rc, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_str_eq(out, "4 sessions read, 0 changed, 0 in deviceType\n");
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM dirty_hours"), 0);
    free(out);
    free(err);
    PQfinish(conn);
    tl_db_drop(db);
    free(db);
}
END_TEST

START_TEST(test_reclassify_from_to_bounds) {
    char *db = tl_db_create_migrated("reclassify");
    PGconn *conn = tl_connect(db);
    seed(conn);
    char *err = NULL;
    int rc;
    /* only sessions started on 2026-11-03: the tablet */
    char *out = run(db, "--from 2026-11-03 --to 2026-11-04", &rc, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    ck_assert_str_eq(out, "1 sessions read, 1 changed, 1 in deviceType MOBILE->TABLET 1\n");
    free(out);
    free(err);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM analytics_sessions"
                                       " WHERE \"deviceType\" = 'DESKTOP'"),
                     2); /* the bot is still DESKTOP */
    /* bad bounds and options are usage errors */
    out = run(db, "--from yesterday-ish", &rc, &err);
    ck_assert_int_eq(rc, 2);
    ck_assert_msg(strstr(err, "--from/--to") != NULL, "%s", err);
    ck_assert_str_eq(out, "");
    free(out);
    free(err);
    out = run(db, "--ua-data /nonexistent/ua-data", &rc, &err);
    ck_assert_int_eq(rc, 2);
    ck_assert_msg(strstr(err, "/nonexistent/ua-data/bots.json") != NULL, "%s", err);
    free(out);
    free(err);
    PQfinish(conn);
    tl_db_drop(db);
    free(db);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s reclassify --database 'postgresql://nobody@/x?host=/nonexistent'",
             tl_evpipe_bin());
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 1);
}
END_TEST

static int run_metrics(const char *db) {
    char cmd[2048], *err = NULL;
    snprintf(cmd, sizeof(cmd),
             "%s metrics --database '%s' --until-caught-up --metrics-port -1 --debounce-ms 0",
             tl_evpipe_bin(), db);
    int rc = tl_run(cmd, NULL, &err);
    if (rc != 0) fprintf(stderr, "metrics exited %d: %s\n", rc, err ? err : "");
    free(err);
    return rc;
}

static long long daily(PGconn *conn, const char *key, const char *day) {
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(sum(value), 0)::bigint FROM metric_snapshots WHERE \"metricKey\" = "
             "'%s' AND period = 'DAILY' AND \"periodStart\" = '%s 00:00+00'",
             key, day);
    return tl_query_ll(conn, sql);
}

/* The metrics stage follows: the bot leaves the session counts, the tablet moves. */
START_TEST(test_reclassify_metrics_follow) {
    char *db = tl_db_create_migrated("reclassify");
    PGconn *conn = tl_connect(db);
    seed(conn);
    tl_exec(conn, "INSERT INTO dirty_hours (stage, entity, \"hourStart\")"
                  " SELECT 'metrics', 'analytics_sessions', h FROM generate_series("
                  "'2026-11-02 00:00Z'::timestamptz, '2026-11-03 23:00Z', '1 hour') h");
    ck_assert_int_eq(run_metrics(db), 0);
    ck_assert_int_eq(daily(conn, "sessions", "2026-11-02"), 3);
    ck_assert_int_eq(daily(conn, "sessions{deviceType=MOBILE}", "2026-11-03"), 1);
    ck_assert_int_eq(daily(conn, "sessions{deviceType=TABLET}", "2026-11-03"), 0);
    char *err = NULL;
    int rc;
    char *out = run(db, "", &rc, &err);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
    free(out);
    free(err);
    ck_assert_int_eq(run_metrics(db), 0);
    ck_assert_int_eq(daily(conn, "sessions", "2026-11-02"), 2);
    ck_assert_int_eq(daily(conn, "sessions{deviceType=DESKTOP}", "2026-11-02"), 1);
    ck_assert_int_eq(daily(conn, "sessions{deviceType=MOBILE}", "2026-11-03"), 0);
    ck_assert_int_eq(daily(conn, "sessions{deviceType=TABLET}", "2026-11-03"), 1);
    ck_assert_int_eq(daily(conn, "sessions", "2026-11-03"), 1);
    PQfinish(conn);
    tl_db_drop(db);
    free(db);
}
END_TEST

static Suite *reclassify_suite(void) {
    Suite *s = suite_create("reclassify");
    TCase *tc = tcase_create("reclassify");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_reclassify_updates_changed_sessions_and_marks_their_hours);
    tcase_add_test(tc, test_reclassify_from_to_bounds);
    tcase_add_test(tc, test_reclassify_metrics_follow);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(reclassify_suite()) ? 1 : 0; }
