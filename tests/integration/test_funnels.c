/* test_funnels — `evpipe funnels` end to end on a real PostgreSQL: random events put in
 * with plain INSERTs, the binary run until caught up, and every DAILY result's step
 * counts compared with a brute-force search written here (every choice of events for
 * every step, not the stage's greedy chain); bots left out; a second run changes
 * nothing; a malformed definition is audited once. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"

#define N_VISITORS 40
#define N_EVENTS 9
#define WINDOW_S 20
static const char *const types[] = {"PAGE_VIEW", "ADD_TO_CART", "PURCHASE", "CLICK"};

typedef struct {
    int t; /* seconds since 2026-11-02T23:58:00Z */
    int type;
} ev_t;

static ev_t evs[N_VISITORS][N_EVENTS];

/* Furthest step reachable after `level` steps, the last at last_t, from a first step
 * at t0, using each event at most once. */
static int dfs(const ev_t *e, int n, int level, int last_t, int t0, unsigned used) {
    int best = level;
    if (level == 3) return 3;
    for (int j = 0; j < n; j++) {
        if ((used >> j) & 1u || e[j].type != level || e[j].t < last_t || e[j].t > t0 + WINDOW_S)
            continue;
        int l = dfs(e, n, level + 1, e[j].t, t0, used | (1u << j));
        if (l > best) best = l;
    }
    return best;
}

static void run_stage(const char *url) {
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s funnels --database '%s' --until-caught-up --metrics-port -1 "
             "--debounce-ms 0", tl_evpipe_bin(), url);
    int rc = tl_run(cmd, &out, &err);
    ck_assert_msg(rc == 0, "funnels exited %d: %s", rc, err ? err : "");
    free(out);
    free(err);
}

START_TEST(test_funnels_daily_counts_equal_brute_force) {
    char *url = tl_db_create_migrated("funnels");
    PGconn *conn = tl_connect(url);
    srand(7);
    char sql[512];
    for (int v = 0; v < N_VISITORS; v++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", \"endedAt\", "
                 "\"deviceType\") VALUES ('00000000-0000-0000-0000-%012d', 'v%d', "
                 "'2026-11-02T23:58:00Z', '2026-11-03T00:02:00Z', '%s')",
                 v, v, v < 5 ? "BOT" : "DESKTOP");
        tl_exec(conn, sql);
        for (int i = 0; i < N_EVENTS; i++) {
            evs[v][i].t = (rand() % 48) * 5; /* many equal times, across midnight */
            evs[v][i].type = rand() % 4;
            snprintf(sql, sizeof(sql),
                     "INSERT INTO analytics_events (\"sessionId\", \"eventId\", type, "
                     "\"visitorId\", path, \"occurredAt\") VALUES "
                     "('00000000-0000-0000-0000-%012d', 'e%d_%d', '%s', 'v%d', '/p', "
                     "'2026-11-02T23:58:00Z'::timestamptz + %d * interval '1 second')",
                     v, v, i, types[evs[v][i].type], v, evs[v][i].t);
            tl_exec(conn, sql);
        }
    }
    tl_exec(conn, "INSERT INTO funnels (name, steps, \"conversionWindowSeconds\") VALUES ('f', "
                  "'[{\"type\":\"PAGE_VIEW\"},{\"type\":\"ADD_TO_CART\"},{\"type\":\"PURCHASE\"}]', 20), "
                  "('bad', '[{\"type\":\"PAGE_VIEW\"}]', 20)");
    run_stage(url);
    /* Brute force per day (day 0 = 2026-11-02, its last 120 s; day 1 = 2026-11-03). */
    for (int day = 0; day < 2; day++) {
        long long cnt[4] = {0};
        for (int v = 5; v < N_VISITORS; v++) {
            int best = 0;
            for (int i = 0; i < N_EVENTS; i++) {
                if (evs[v][i].type != 0 || (evs[v][i].t >= 120) != day) continue;
                int l = dfs(evs[v], N_EVENTS, 1, evs[v][i].t, evs[v][i].t, 1u << i);
                if (l > best) best = l;
            }
            for (int k = 1; k <= best; k++) cnt[k]++;
        }
        ck_assert_msg(cnt[1] > 3 && cnt[3] > 0, "day %d: data too thin (%lld, %lld)", day,
                      cnt[1], cnt[3]);
        char want[64], q[512];
        snprintf(want, sizeof(want), "%lld,%lld,%lld", cnt[1], cnt[2], cnt[3]);
        snprintf(q, sizeof(q),
                 "SELECT string_agg(s->>'count', ',' ORDER BY (s->>'step')::int) FROM "
                 "funnel_results r, jsonb_array_elements(r.\"stepResults\") s WHERE period = "
                 "'DAILY' AND \"periodStart\" = '2026-11-0%d'", day + 2);
        char *got = tl_query_text(conn, q);
        ck_assert_msg(got && strcmp(got, want) == 0, "day %d: got %s, want %s", day,
                      got ? got : "(none)", want);
        free(got);
    }
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM audit_logs WHERE action = "
                                       "'funnel.invalid' AND \"entityType\" = 'funnel'"),
                     1);
    char *before = tl_query_text(conn, "SELECT string_agg(id::text || \"computedAt\"::text, ',' ORDER BY id) "
                                       "FROM funnel_results");
    run_stage(url);
    char *after = tl_query_text(conn, "SELECT string_agg(id::text || \"computedAt\"::text, ',' ORDER BY id) "
                                      "FROM funnel_results");
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM audit_logs"), 1);
    free(before);
    free(after);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

static void add_event(PGconn *conn, int v, const char *id, const char *type, const char *at) {
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", \"endedAt\") "
             "VALUES ('00000000-0000-0000-0000-%012d', 'w%d', '%s', '%s') ON CONFLICT DO NOTHING",
             v, v, at, at);
    tl_exec(conn, sql);
    snprintf(sql, sizeof(sql),
             "INSERT INTO analytics_events (\"sessionId\", \"eventId\", type, \"visitorId\", "
             "\"occurredAt\") VALUES ('00000000-0000-0000-0000-%012d', '%s', '%s', 'w%d', '%s')",
             v, id, type, v, at);
    tl_exec(conn, sql);
}

static void assert_counts(PGconn *conn, const char *period, const char *start, const char *want) {
    char q[512];
    snprintf(q, sizeof(q),
             "SELECT string_agg(s->>'count', ',' ORDER BY (s->>'step')::int) FROM funnel_results "
             "r, jsonb_array_elements(r.\"stepResults\") s WHERE period = '%s' AND "
             "\"periodStart\" = '%s'", period, start);
    char *got = tl_query_text(conn, q);
    ck_assert_msg(got && strcmp(got, want) == 0, "%s %s: got %s, want %s", period, start,
                  got ? got : "(none)", want);
    free(got);
}

START_TEST(test_funnels_late_events_and_changed_definition) {
    char *url = tl_db_create_migrated("funnels_late");
    PGconn *conn = tl_connect(url);
    tl_exec(conn, "INSERT INTO funnels (name, steps, \"conversionWindowSeconds\") VALUES ('f', "
                  "'[{\"type\":\"PAGE_VIEW\"},{\"type\":\"PURCHASE\"}]', 20)");
    add_event(conn, 1, "a1", "PAGE_VIEW", "2026-11-10T10:00:00Z");
    add_event(conn, 2, "b1", "PAGE_VIEW", "2026-11-20T10:00:00Z");
    run_stage(url);
    assert_counts(conn, "DAILY", "2026-11-10", "1,0");
    assert_counts(conn, "MONTHLY", "2026-11-01", "2,0");
    char *other = tl_query_text(conn, "SELECT id::text || \"computedAt\"::text FROM funnel_results "
                                      "WHERE period = 'DAILY' AND \"periodStart\" = '2026-11-20'");
    add_event(conn, 1, "a2", "PURCHASE", "2026-11-10T10:00:20Z"); /* = window */
    run_stage(url);
    assert_counts(conn, "DAILY", "2026-11-10", "1,1");
    assert_counts(conn, "WEEKLY", "2026-11-09", "1,1");
    assert_counts(conn, "MONTHLY", "2026-11-01", "2,1");
    char *again = tl_query_text(conn, "SELECT id::text || \"computedAt\"::text FROM funnel_results "
                                      "WHERE period = 'DAILY' AND \"periodStart\" = '2026-11-20'");
    ck_assert_str_eq(other, again); /* a period the late event cannot affect is left alone */
    add_event(conn, 3, "c1", "PAGE_VIEW", "2026-11-10T10:00:00Z");
    add_event(conn, 3, "c2", "PURCHASE", "2026-11-10T10:00:20.001Z"); /* window + 1 ms */
    run_stage(url);
    assert_counts(conn, "DAILY", "2026-11-10", "2,1");
    tl_exec(conn, "UPDATE funnels SET \"conversionWindowSeconds\" = 30, \"updatedAt\" = now()");
    run_stage(url);
    assert_counts(conn, "DAILY", "2026-11-10", "2,2");
    assert_counts(conn, "MONTHLY", "2026-11-01", "3,2");
    free(other);
    free(again);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

static Suite *funnels_suite(void) {
    Suite *s = suite_create("funnels");
    TCase *tc = tcase_create("stage");
    tcase_set_timeout(tc, 120);
    if (tl_database_url()) {
        tcase_add_test(tc, test_funnels_daily_counts_equal_brute_force);
        tcase_add_test(tc, test_funnels_late_events_and_changed_definition);
    }
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(funnels_suite()) == 0 ? 0 : 1; }
