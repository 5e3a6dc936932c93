/* test_downstream_changes — the dirty-hour marks of migration 0003: every insert,
 * update and delete of the stored rows (COPY included) marks exactly the UTC hours it
 * touches, for each downstream stage, in the same transaction as the change. */
#include <check.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"

#define S1 "'00000000-0000-0000-0000-0000000000a1'"
#define S2 "'00000000-0000-0000-0000-0000000000a2'"

/* The marks of one stage and entity as "HH:MI,HH:MI" (distinct hours, in order; the
 * day is part of the text when it is not 2026-11-02). */
#define MARKS_SQL                                                                          \
    "SELECT coalesce(string_agg(h, ',' ORDER BY h), '') FROM (SELECT DISTINCT "            \
    "CASE WHEN \"hourStart\" AT TIME ZONE 'UTC' >= '2026-11-02' AND \"hourStart\" AT TIME " \
    "ZONE 'UTC' < '2026-11-03' THEN to_char(\"hourStart\" AT TIME ZONE 'UTC', 'HH24:MI') "  \
    "ELSE to_char(\"hourStart\" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') END AS h FROM "   \
    "dirty_hours WHERE stage = '%s' AND entity = '%s') x"

static void assert_marks(PGconn *conn, const char *stage, const char *entity, const char *want) {
    char sql[1024];
    snprintf(sql, sizeof(sql), MARKS_SQL, stage, entity);
    char *got = tl_query_text(conn, sql);
    ck_assert_msg(got && strcmp(got, want) == 0, "%s/%s marks: got '%s', want '%s'", stage,
                  entity, got ? got : "(null)", want);
    free(got);
}

/* The same marks for both stages. */
static void assert_both(PGconn *conn, const char *entity, const char *want) {
    assert_marks(conn, "metrics", entity, want);
    assert_marks(conn, "funnels", entity, want);
}

static char *migrated_db(PGconn **conn) {
    char *url = tl_db_create_migrated("dirty");
    *conn = tl_connect(url);
    tl_exec(*conn, "SET TIME ZONE 'Asia/Kolkata'"); /* hours are UTC whatever the session's zone */
    return url;
}

static void clear_marks(PGconn *conn) { tl_exec(conn, "DELETE FROM dirty_hours"); }

START_TEST(test_downstream_changes_inserts_mark_their_hours) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    /* A session from 10:50 to 12:05 UTC: its hours 10, 11 and 12. */
    tl_exec(conn, "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", \"endedAt\") "
                  "VALUES (" S1 ", 'v1', '2026-11-02T10:50:00Z', '2026-11-02T12:05:00Z')");
    tl_exec(conn, "INSERT INTO analytics_events (\"sessionId\", \"eventId\", type, \"visitorId\", "
                  "\"occurredAt\") VALUES (" S1 ", 'e1', 'PAGE_VIEW', 'v1', "
                  "'2026-11-02T10:50:00Z'), (" S1 ", 'e2', 'PURCHASE', 'v1', "
                  "'2026-11-02T12:05:00Z'), (" S1 ", 'e3', 'CLICK', 'v1', '2026-11-02T12:59:59.999Z')");
    tl_exec(conn, "INSERT INTO page_views (\"sessionId\", \"eventId\", \"visitorId\", url, "
                  "\"viewedAt\") VALUES (" S1 ", 'e1', 'v1', 'https://a/', '2026-11-02T10:50:00Z')");
    tl_exec(conn, "INSERT INTO conversion_events (\"sessionId\", \"eventId\", \"visitorId\", type, "
                  "\"occurredAt\") VALUES (" S1 ", 'e2', 'v1', 'PURCHASE', '2026-11-02T12:05:00Z')");
    assert_both(conn, "analytics_sessions", "10:00,11:00,12:00");
    assert_both(conn, "analytics_events", "10:00,12:00");
    assert_both(conn, "page_views", "10:00");
    assert_both(conn, "conversion_events", "12:00");
    /* One mark per stage, entity and hour of a statement, whatever its row count. */
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM dirty_hours WHERE entity = "
                                       "'analytics_events'"),
                     4);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(DISTINCT stage) FROM dirty_hours"), 2);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_downstream_changes_copy_marks_its_hours) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    tl_exec(conn, "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", \"endedAt\") "
                  "VALUES (" S1 ", 'v1', '2026-11-02T00:00:00Z', '2026-11-02T00:00:00Z')");
    clear_marks(conn);
    PGresult *res = PQexec(conn, "COPY analytics_events (\"sessionId\", \"eventId\", type, "
                                 "\"visitorId\", \"occurredAt\") FROM STDIN");
    ck_assert_int_eq(PQresultStatus(res), PGRES_COPY_IN);
    PQclear(res);
    /* 1,000 rows over 3 hours across midnight of a year boundary. */
    static const char *const hours[] = {"2026-12-31T22:%02d:00Z", "2026-12-31T23:%02d:00Z",
                                        "2027-01-01T00:%02d:00Z"};
    for (int i = 0; i < 1000; i++) {
        char ts[40], line[200];
        snprintf(ts, sizeof(ts), hours[i % 3], i % 60);
        int n = snprintf(line, sizeof(line), "00000000-0000-0000-0000-0000000000a1\tc%d\tCLICK\tv1\t%s\n",
                         i, ts);
        ck_assert_int_eq(PQputCopyData(conn, line, n), 1);
    }
    ck_assert_int_eq(PQputCopyEnd(conn, NULL), 1);
    res = PQgetResult(conn);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(conn));
    PQclear(res);
    while ((res = PQgetResult(conn))) PQclear(res);
    assert_both(conn, "analytics_events", "2026-12-31 22:00,2026-12-31 23:00,2027-01-01 00:00");
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM dirty_hours"), 6);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* A late event merges two sessions: the second one's rows are re-pointed and it is
 * deleted. Its start hour, where no new event falls, must be marked. */
START_TEST(test_downstream_changes_merge_marks_the_deleted_session) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    tl_exec(conn, "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", \"endedAt\") "
                  "VALUES (" S1 ", 'v1', '2026-11-02T09:10:00Z', '2026-11-02T09:20:00Z'), "
                  "(" S2 ", 'v1', '2026-11-02T11:30:00Z', '2026-11-02T11:40:00Z')");
    tl_exec(conn, "INSERT INTO analytics_events (\"sessionId\", \"eventId\", type, \"visitorId\", "
                  "\"occurredAt\") VALUES (" S1 ", 'e1', 'PAGE_VIEW', 'v1', "
                  "'2026-11-02T09:10:00Z'), (" S2 ", 'e2', 'PAGE_VIEW', 'v1', '2026-11-02T11:30:00Z')");
    clear_marks(conn);
    /* What ingest does in one transaction for a late event at 10:20. */
    tl_exec(conn, "BEGIN");
    tl_exec(conn, "INSERT INTO analytics_events (\"sessionId\", \"eventId\", type, \"visitorId\", "
                  "\"occurredAt\") VALUES (" S1 ", 'late', 'CLICK', 'v1', '2026-11-02T10:20:00Z')");
    tl_exec(conn, "UPDATE analytics_events SET \"sessionId\" = " S1 " WHERE \"sessionId\" = " S2);
    tl_exec(conn, "UPDATE analytics_sessions SET \"endedAt\" = '2026-11-02T11:40:00Z' WHERE id = " S1);
    tl_exec(conn, "DELETE FROM analytics_sessions WHERE id = " S2);
    /* Not visible to others before the commit, and gone with a rollback. */
    PGconn *other = tl_connect(url);
    ck_assert_int_eq(tl_query_ll(other, "SELECT count(*) FROM dirty_hours"), 0);
    tl_exec(conn, "COMMIT");
    ck_assert_int_gt(tl_query_ll(other, "SELECT count(*) FROM dirty_hours"), 0);
    PQfinish(other);
    /* Sessions: S1's old span (09), its new span (09-11), S2's deleted span (11). */
    assert_both(conn, "analytics_sessions", "09:00,10:00,11:00");
    /* Events: the late event's hour and the re-pointed event's hour. */
    assert_both(conn, "analytics_events", "10:00,11:00");
    assert_marks(conn, "metrics", "page_views", "");

    /* A session moved to another day marks both days' hours. */
    clear_marks(conn);
    tl_exec(conn, "UPDATE analytics_sessions SET \"startedAt\" = '2026-11-05T23:30:00Z', "
                  "\"endedAt\" = '2026-11-06T00:10:00Z' WHERE id = " S1);
    assert_both(conn, "analytics_sessions",
                "09:00,10:00,11:00,2026-11-05 23:00,2026-11-06 00:00");

    /* A reclassified session (deviceType only) marks every hour it spans. */
    clear_marks(conn);
    tl_exec(conn, "UPDATE analytics_sessions SET \"deviceType\" = 'BOT' WHERE id = " S1);
    assert_both(conn, "analytics_sessions", "2026-11-05 23:00,2026-11-06 00:00");

    /* A rolled-back change leaves no mark. */
    clear_marks(conn);
    tl_exec(conn, "BEGIN");
    tl_exec(conn, "DELETE FROM analytics_events");
    tl_exec(conn, "ROLLBACK");
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM dirty_hours"), 0);
    tl_exec(conn, "DELETE FROM analytics_events WHERE \"eventId\" = 'late'");
    assert_both(conn, "analytics_events", "10:00");
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* A stage registered later gets its own marks from then on. */
START_TEST(test_downstream_changes_new_stage_gets_marks) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    tl_exec(conn, "INSERT INTO downstream_stages (name) VALUES ('search_index')");
    tl_exec(conn, "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", \"endedAt\") "
                  "VALUES (" S1 ", 'v1', '2026-11-02T07:00:00Z', '2026-11-02T07:00:00Z')");
    assert_marks(conn, "search_index", "analytics_sessions", "07:00");
    assert_both(conn, "analytics_sessions", "07:00");
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM dirty_hours"), 3);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

int main(void) {
    if (!tl_database_url()) {
        fprintf(stderr, "test_downstream_changes: EVPIPE_TEST_DATABASE_URL is not set: this suite"
                        " needs PostgreSQL (run it through make check or tests/run.sh)\n");
        return 1;
    }
    Suite *s = suite_create("downstream_changes");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_downstream_changes_inserts_mark_their_hours);
    tcase_add_test(tc, test_downstream_changes_copy_marks_its_hours);
    tcase_add_test(tc, test_downstream_changes_merge_marks_the_deleted_session);
    tcase_add_test(tc, test_downstream_changes_new_stage_gets_marks);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}
