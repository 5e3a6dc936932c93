/* test_status.c — `evpipe status`: exact positions, ends and lag per group and partition,
 * last batch times, dead-letter count, jobs by status and dirty hours per stage, from a
 * database and a mock cluster filled by the test; the same without Kafka (PostgreSQL's
 * part, Kafka named unreachable); bad usage and an unmigrated database. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "common/kmock.h"
#include "tests/testlib.h"

static void produce_n(const char *brokers, const char *topic, int32_t partition, int n) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert(rk != NULL);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                           RD_KAFKA_V_PARTITION(partition),
                                           RD_KAFKA_V_VALUE((void *)"x", 1),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_END),
                         0);
    ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);
}

static yajl_val get(yajl_val root, const char *a, const char *b, const char *c) {
    const char *path[] = {a, b, c, NULL};
    return yajl_tree_get(root, path, yajl_t_any);
}

static long long num(yajl_val v) {
    ck_assert_msg(v && YAJL_IS_INTEGER(v), "not an integer");
    return YAJL_GET_INTEGER(v);
}

static const char *str(yajl_val v) {
    ck_assert_msg(v && YAJL_IS_STRING(v), "not a string");
    return YAJL_GET_STRING(v);
}

static yajl_val position(yajl_val root, size_t i) {
    yajl_val arr = get(root, "positions", NULL, NULL);
    ck_assert(arr && YAJL_IS_ARRAY(arr) && arr->u.array.len == 3);
    return arr->u.array.values[i];
}

static yajl_val run_json(const char *db, const char *brokers, const char *topic_dlq) {
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s status --json --database '%s' --brokers %s --dlq-topic %s "
             "--kafka-timeout 2",
             tl_evpipe_bin(), db, brokers, topic_dlq);
    int rc = tl_run(cmd, &out, &err);
    ck_assert_msg(rc == 0, "status exit %d: %s", rc, err);
    char e[256];
    yajl_val root = yajl_tree_parse(out, e, sizeof(e));
    ck_assert_msg(root != NULL, "not JSON: %s (%s)", e, out);
    free(out);
    free(err);
    return root;
}

START_TEST(test_status_exact_with_and_without_kafka) {
    char errstr[256];
    ev_kmock_t *km = ev_kmock_new(1, errstr, sizeof(errstr));
    ck_assert_msg(km != NULL, "%s", errstr);
    const char *brokers = ev_kmock_bootstraps(km);
    char *raw = tl_unique_name("raw"), *dlq = tl_unique_name("dlq");
    ck_assert_int_eq(ev_kmock_topic_create(km, raw, 3, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(ev_kmock_topic_create(km, dlq, 2, errstr, sizeof(errstr)), 0);
    produce_n(brokers, raw, 0, 10);
    produce_n(brokers, raw, 1, 5);
    produce_n(brokers, raw, 2, 4);
    produce_n(brokers, dlq, 0, 4);
    produce_n(brokers, dlq, 1, 3);

    char *db = tl_db_create_migrated("status");
    PGconn *conn = tl_connect(db);
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "INSERT INTO consumer_offsets VALUES "
             "('g', '%s', 0, 3, '2026-01-02T03:04:05.678Z'), "
             "('g', '%s', 1, 5, '2026-01-02T03:04:06Z'), "
             "('h', '%s', 2, 0, '2026-01-01T00:00:00Z')",
             raw, raw, raw);
    tl_exec(conn, sql);
    tl_exec(conn, "INSERT INTO exports (format, status) VALUES ('CSV', 'PENDING'), "
                  "('CSV', 'PENDING'), ('JSON', 'FAILED')");
    tl_exec(conn, "INSERT INTO reports (name, type, status) VALUES "
                  "('r', (enum_range(NULL::\"ReportType\"))[1], 'COMPLETED')");
    tl_exec(conn, "DELETE FROM dirty_hours");
    tl_exec(conn, "INSERT INTO dirty_hours (stage, entity, \"hourStart\") VALUES "
                  "('metrics', 'page_views', '2026-01-01T01:00Z'), "
                  "('metrics', 'analytics_events', '2026-01-01T00:00Z'), "
                  "('metrics', 'page_views', '2026-01-01T00:00Z')");
    PQfinish(conn);

    /* With Kafka: every number exact. */
    yajl_val root = run_json(db, brokers, dlq);
    const long long want[3][4] = {{0, 3, 10, 7}, {1, 5, 5, 0}, {2, 0, 4, 4}};
    for (size_t i = 0; i < 3; i++) {
        yajl_val p = position(root, i);
        ck_assert_str_eq(str(get(p, "group", NULL, NULL)), i < 2 ? "g" : "h");
        ck_assert_str_eq(str(get(p, "topic", NULL, NULL)), raw);
        ck_assert_int_eq(num(get(p, "partition", NULL, NULL)), want[i][0]);
        ck_assert_int_eq(num(get(p, "stored", NULL, NULL)), want[i][1]);
        ck_assert_int_eq(num(get(p, "end", NULL, NULL)), want[i][2]);
        ck_assert_int_eq(num(get(p, "lag", NULL, NULL)), want[i][3]);
    }
    ck_assert_str_eq(str(get(position(root, 0), "updatedAt", NULL, NULL)),
                     "2026-01-02T03:04:05.678Z");
    ck_assert_int_eq(num(get(root, "totalLag", NULL, NULL)), 11);
    ck_assert_str_eq(str(get(root, "lastBatch", "g", NULL)), "2026-01-02T03:04:06.000Z");
    ck_assert_str_eq(str(get(root, "lastBatch", "h", NULL)), "2026-01-01T00:00:00.000Z");
    ck_assert_int_eq(num(get(root, "dlq", "messages", NULL)), 7);
    ck_assert_int_eq(num(get(root, "exports", "PENDING", NULL)), 2);
    ck_assert_int_eq(num(get(root, "exports", "FAILED", NULL)), 1);
    ck_assert_int_eq(num(get(root, "exports", "COMPLETED", NULL)), 0);
    ck_assert_int_eq(num(get(root, "reports", "COMPLETED", NULL)), 1);
    ck_assert_int_eq(num(get(root, "reports", "PENDING", NULL)), 0);
    ck_assert_int_eq(num(get(root, "dirtyHours", "metrics", "marks")), 3);
    ck_assert_int_eq(num(get(root, "dirtyHours", "metrics", "hours")), 2);
    ck_assert_str_eq(str(get(root, "dirtyHours", "metrics", "oldestHour")), "2026-01-01T00:00:00Z");
    ck_assert_int_eq(num(get(root, "dirtyHours", "funnels", "marks")), 0);
    ck_assert(YAJL_IS_NULL(get(root, "dirtyHours", "funnels", "oldestHour")));
    ck_assert(YAJL_IS_TRUE(get(root, "kafka", "reachable", NULL)));
    yajl_tree_free(root);

    /* The table says the same. */
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s status --database '%s' --brokers %s --dlq-topic %s",
             tl_evpipe_bin(), db, brokers, dlq);
    ck_assert_int_eq(tl_run(cmd, &out, &err), 0);
    ck_assert_msg(strstr(out, "total lag 11\n") && strstr(out, " 7\n") &&
                      strstr(out, "exports: PENDING 2 PROCESSING 0 COMPLETED 0 FAILED 1") &&
                      strstr(out, "dirty hours waiting for metrics: 3 marks, 2 distinct hours, "
                                  "oldest 2026-01-01T00:00:00Z") &&
                      strstr(out, "last batch of g: 2026-01-02T03:04:06.000Z"),
                  "%s", out);
    char dlq_line[256];
    snprintf(dlq_line, sizeof(dlq_line), "dead letters in %s: 7\n", dlq);
    ck_assert_msg(strstr(out, dlq_line) != NULL, "%s", out);
    free(out);
    free(err);

    /* Without Kafka: PostgreSQL's part, Kafka named unreachable. */
    root = run_json(db, "127.0.0.1:1", dlq);
    ck_assert(YAJL_IS_FALSE(get(root, "kafka", "reachable", NULL)));
    ck_assert(YAJL_IS_STRING(get(root, "kafka", "error", NULL)));
    ck_assert_int_eq(num(get(position(root, 0), "stored", NULL, NULL)), 3);
    ck_assert(YAJL_IS_NULL(get(position(root, 0), "end", NULL, NULL)));
    ck_assert(YAJL_IS_NULL(get(position(root, 0), "lag", NULL, NULL)));
    ck_assert(YAJL_IS_NULL(get(root, "totalLag", NULL, NULL)));
    ck_assert(YAJL_IS_NULL(get(root, "dlq", "messages", NULL)));
    ck_assert_int_eq(num(get(root, "exports", "PENDING", NULL)), 2);
    ck_assert_int_eq(num(get(root, "dirtyHours", "metrics", "marks")), 3);
    yajl_tree_free(root);
    snprintf(cmd, sizeof(cmd), "%s status --database '%s' --brokers 127.0.0.1:1 --kafka-timeout 1",
             tl_evpipe_bin(), db);
    ck_assert_int_eq(tl_run(cmd, &out, &err), 0);
    ck_assert_msg(strstr(out, "kafka unreachable: ") != NULL, "%s", out);
    free(out);
    free(err);

    tl_db_drop(db);
    free(db);
    free(raw);
    free(dlq);
    ev_kmock_destroy(km);
}
END_TEST

START_TEST(test_status_usage_and_unmigrated) {
    char cmd[1024], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "env -u DATABASE_URL %s status", tl_evpipe_bin());
    ck_assert_int_eq(tl_run(cmd, &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "no database"));
    free(out);
    free(err);
    char *db = tl_db_create("status_empty");
    snprintf(cmd, sizeof(cmd), "%s status --database '%s' --brokers 127.0.0.1:1 --kafka-timeout 1",
             tl_evpipe_bin(), db);
    ck_assert_int_eq(tl_run(cmd, &out, &err), 1);
    ck_assert_msg(strstr(err, "run evpipe migrate up") != NULL, "%s", err);
    free(out);
    free(err);
    tl_db_drop(db);
    free(db);
}
END_TEST

int main(void) {
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("status");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_status_usage_and_unmigrated);
    tcase_add_test(tc, test_status_exact_with_and_without_kafka);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}
