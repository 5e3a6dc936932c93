/* test_ingest.c — `evpipe ingest` end to end against PostgreSQL and a mock Kafka
 * cluster hosted in this test: exact equality with an independent oracle, dead
 * letters, crash safety under kill -9, a rebalance between two consumers, and
 * PostgreSQL / broker outages. */
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/kmock.h"
#include "common/util.h"
#include "tests/integration/ingest_oracle.h"
#include "transforms/event.h"
#include "tests/testlib.h"
#include "tools/migrate.h"

#define TIMEOUT_MS (1800 * 1000LL)
#define MAX_DURATION_MS (86400 * 1000LL)

typedef struct fixture_s {
    ev_kmock_t *km;
    char brokers[512];
    char *topic;
    char path[64];
    oracle_t oracle;
    size_t produced;
} fixture_t;

/* A cluster with a raw topic of 6 partitions, a stream from loadgen, produced. */
static void fixture_setup(fixture_t *fx, const char *loadgen_args) {
    char errstr[256];
    memset(fx, 0, sizeof(*fx));
    fx->km = ev_kmock_new(3, errstr, sizeof(errstr));
    ck_assert_msg(fx->km != NULL, "%s", errstr);
    snprintf(fx->brokers, sizeof(fx->brokers), "%s", ev_kmock_bootstraps(fx->km));
    fx->topic = tl_unique_name("raw");
    ck_assert_int_eq(ev_kmock_topic_create(fx->km, fx->topic, 6, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(ev_kmock_topic_create(fx->km, "dlq", 2, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(ev_kmock_topic_create(fx->km, "enriched", 6, errstr, sizeof(errstr)), 0);
    snprintf(fx->path, sizeof(fx->path), "/tmp/evpipe_ingest_XXXXXX");
    int fd = mkstemp(fx->path);
    ck_assert(fd >= 0);
    close(fd);
    char cmd[1024], *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s loadgen --output %s %s", tl_evpipe_bin(), fx->path,
             loadgen_args);
    int rc = tl_run(cmd, NULL, &err);
    ck_assert_msg(rc == 0, "loadgen failed (%d): %s", rc, err);
    free(err);
    oracle_compute(fx->path, TIMEOUT_MS, MAX_DURATION_MS, &fx->oracle);
    ck_assert_msg(fx->oracle.n_valid_unique > 500 && fx->oracle.n_invalid > 0 &&
                      fx->oracle.n_duplicates > 0 && fx->oracle.n_sessions > 50,
                  "the stream is too small to prove anything: %zu valid, %zu invalid, %zu dup",
                  fx->oracle.n_valid_unique, fx->oracle.n_invalid, fx->oracle.n_duplicates);
    fx->produced = oracle_produce_file(fx->brokers, fx->topic, fx->path);
    ck_assert_int_eq(fx->produced, fx->oracle.n_lines);
}

static void fixture_teardown(fixture_t *fx) {
    unlink(fx->path);
    oracle_free(&fx->oracle);
    ev_kmock_destroy(fx->km);
    free(fx->topic);
}

static char *migrated_db(const char *prefix) { return tl_db_create_migrated(prefix); }

/* Starts `evpipe ingest` on the fixture's topic; returns its pid. */
static pid_t start_ingest(const fixture_t *fx, const char *db, const char *group,
                          const char *extra) {
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "exec %s ingest --brokers %s --database '%s' --topic %s --group %s "
             "--dlq-topic dlq --enriched-topic enriched --metrics-port -1 --batch-ms 100 %s "
             ">>/tmp/evpipe_test_ingest.log 2>&1",
             tl_evpipe_bin(), fx->brokers, db, fx->topic, group, extra ? extra : "");
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits for pid at most seconds; returns its exit code, or fails the test. */
static int wait_exit(pid_t pid, int seconds) {
    for (int i = 0; i < seconds * 10; i++) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(100000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("ingest did not finish within %d s (log: /tmp/evpipe_test_ingest.log)", seconds);
    return -1;
}

static long long topic_count(const fixture_t *fx, const char *topic) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", fx->brokers, errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert(rk != NULL);
    long long total = 0;
    int partitions = strcmp(topic, "dlq") == 0 ? 2 : 6;
    for (int p = 0; p < partitions; p++) {
        int64_t lo = 0, hi = 0;
        ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000), 0);
        total += hi;
    }
    rd_kafka_destroy(rk);
    return total;
}

/* Header value of a Kafka message as a string (static buffer), "" when absent. */
static const char *header_of(rd_kafka_message_t *m, const char *name) {
    static char buf[512];
    rd_kafka_headers_t *hdrs = NULL;
    const void *v = NULL;
    size_t n = 0;
    buf[0] = '\0';
    if (rd_kafka_message_headers(m, &hdrs) == 0 &&
        rd_kafka_header_get_last(hdrs, name, &v, &n) == 0 && v) {
        if (n >= sizeof(buf)) n = sizeof(buf) - 1;
        memcpy(buf, v, n);
        buf[n] = '\0';
    }
    return buf;
}

/* Every dead letter is one invalid line of the stream, byte for byte, under the key it
 * was produced with ("invalid-<line>"), with the parser's reason code and its source
 * (topic, partition, offset) named; every invalid line is there exactly once. */
static void check_dead_letters(const fixture_t *fx) {
    size_t n_lines = 0, cap = 1024;
    char **lines = malloc(cap * sizeof(*lines));
    size_t *lens = malloc(cap * sizeof(*lens));
    FILE *f = fopen(fx->path, "rb");
    ck_assert(f && lines && lens);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') len--;
        if (n_lines == cap) {
            lines = realloc(lines, (cap *= 2) * sizeof(*lines));
            lens = realloc(lens, cap * sizeof(*lens));
        }
        lines[n_lines] = malloc((size_t)len + 1);
        memcpy(lines[n_lines], line, (size_t)len);
        lens[n_lines++] = (size_t)len;
    }
    free(line);
    fclose(f);
    unsigned char *seen = calloc(n_lines, 1);

    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", fx->brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "dlq-reader", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(2);
    int64_t want = 0;
    for (int p = 0; p < 2; p++) {
        int64_t lo = 0, hi = 0;
        ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, "dlq", p, &lo, &hi, 10000), 0);
        want += hi - lo;
        rd_kafka_topic_partition_list_add(parts, "dlq", p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    ck_assert_int_eq(rd_kafka_assign(rk, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);
    int64_t got = 0;
    for (int idle = 0; got < want && idle < 300;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            idle++;
            continue;
        }
        ck_assert_msg(!m->err, "%s", rd_kafka_message_errstr(m));
        got++;
        char key[64];
        ck_assert(m->key && m->key_len < sizeof(key));
        memcpy(key, m->key, m->key_len);
        key[m->key_len] = '\0';
        size_t at = 0;
        ck_assert_msg(sscanf(key, "invalid-%zu", &at) == 1 && at < n_lines, "key %s", key);
        ck_assert_msg(!seen[at], "line %zu dead-lettered twice", at);
        seen[at] = 1;
        ck_assert_msg(m->len == lens[at] && memcmp(m->payload, lines[at], m->len) == 0,
                      "dead letter of line %zu is not its bytes", at);
        tf_event_t ev;
        tf_event_error_t err;
        tf_event_init(&ev);
        ck_assert_int_ne(tf_event_parse(&ev, lines[at], lens[at], &err), 0);
        tf_event_reset(&ev);
        ck_assert_str_eq(header_of(m, "evpipe.reason"), tf_event_reason_code(err.reason));
        ck_assert_str_eq(header_of(m, "evpipe.error"), err.message);
        ck_assert_str_eq(header_of(m, "evpipe.source.topic"), fx->topic);
        int part = atoi(header_of(m, "evpipe.source.partition"));
        ck_assert(part >= 0 && part < 6);
        ck_assert(header_of(m, "evpipe.source.offset")[0] != '\0');
        rd_kafka_message_destroy(m);
    }
    ck_assert_int_eq(got, want);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    size_t invalid_seen = 0;
    for (size_t i = 0; i < n_lines; i++) {
        invalid_seen += seen[i];
        free(lines[i]);
    }
    ck_assert_int_eq(invalid_seen, fx->oracle.n_invalid);
    free(seen);
    free(lines);
    free(lens);
}

static const char *stream_args =
    "--seed 7 --visitors 150 --days 3 --disorder 900 --dup-ratio 0.03 --bad-ratio 0.03";

/* Every UTC hour that holds a stored row is marked dirty for every downstream stage
 * (migration 0003): the stages cannot miss what ingest committed, crash or not. */
static void check_dirty_marks_cover(const char *db) {
    static const char needed[] =
        "SELECT h, e FROM ("
        " SELECT date_trunc('hour', \"occurredAt\", 'UTC') h, 'analytics_events' e FROM analytics_events"
        " UNION SELECT date_trunc('hour', \"viewedAt\", 'UTC'), 'page_views' FROM page_views"
        " UNION SELECT date_trunc('hour', \"occurredAt\", 'UTC'), 'conversion_events' FROM conversion_events"
        " UNION SELECT g, 'analytics_sessions' FROM analytics_sessions s, generate_series("
        "   date_trunc('hour', s.\"startedAt\", 'UTC'), s.\"endedAt\", interval '1 hour') g) x";
    char sql[2048];
    PGconn *conn = tl_connect(db);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM (%s) n", needed);
    long long n_needed = tl_query_ll(conn, sql);
    ck_assert_int_gt(n_needed, 4 * 24); /* three days of every entity */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM (%s) n CROSS JOIN downstream_stages st WHERE NOT EXISTS ("
             "SELECT 1 FROM dirty_hours d WHERE d.stage = st.name AND d.entity = n.e AND "
             "d.\"hourStart\" = n.h)",
             needed);
    ck_assert_int_eq(tl_query_ll(conn, sql), 0);
    PQfinish(conn);
}

START_TEST(test_ingest_matches_oracle_and_dead_letters) {
    fixture_t fx;
    fixture_setup(&fx, stream_args);
    char *db = migrated_db("ingest_oracle");
    pid_t pid = start_ingest(&fx, db, "g1", "--until-caught-up --batch-size 500");
    ck_assert_int_eq(wait_exit(pid, 120), 0);
    oracle_check_database(&fx.oracle, db);
    check_dirty_marks_cover(db);
    ck_assert_int_eq(topic_count(&fx, "dlq"), (long long)fx.oracle.n_invalid);
    check_dead_letters(&fx);
    ck_assert_int_eq(topic_count(&fx, "enriched"), (long long)fx.oracle.n_valid_unique);

    /* Offsets stored next to the rows: the end of every partition. */
    PGconn *conn = tl_connect(db);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT sum(\"nextOffset\") FROM consumer_offsets"),
                     (long long)fx.produced);
    PQfinish(conn);

    /* A second run finds nothing to do and changes nothing. */
    char *before = oracle_dump_tables(db);
    pid = start_ingest(&fx, db, "g1", "--until-caught-up");
    ck_assert_int_eq(wait_exit(pid, 60), 0);
    char *after = oracle_dump_tables(db);
    ck_assert_msg(strcmp(before, after) == 0, "a restart changed the tables");
    /* Replaying the whole topic under a new group re-reads everything from PostgreSQL's
     * offsets of that group (none): every event is a duplicate, nothing changes. */
    pid = start_ingest(&fx, db, "g2", "--until-caught-up");
    ck_assert_int_eq(wait_exit(pid, 120), 0);
    char *again = oracle_dump_tables(db);
    ck_assert_msg(strcmp(before, again) == 0, "re-ingesting the same stream changed the tables");
    free(before);
    free(after);
    free(again);
    tl_db_drop(db);
    free(db);
    fixture_teardown(&fx);
}
END_TEST

START_TEST(test_ingest_kill9_and_rebalance_equal_uninterrupted_run) {
    fixture_t fx;
    fixture_setup(&fx, "--seed 11 --visitors 300 --days 4 --disorder 1200 --dup-ratio 0.02 "
                       "--bad-ratio 0.02");
    /* Reference: one uninterrupted run. */
    char *ref_db = migrated_db("ingest_ref");
    pid_t pid = start_ingest(&fx, ref_db, "ref", "--until-caught-up --batch-size 300");
    ck_assert_int_eq(wait_exit(pid, 180), 0);
    oracle_check_database(&fx.oracle, ref_db);
    char *reference = oracle_dump_tables(ref_db);

    /* kill -9 at random moments, restarting each time, then to the end. */
    char *crash_db = migrated_db("ingest_crash");
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    for (int round = 0; round < 4; round++) {
        pid = start_ingest(&fx, crash_db, "crash", "--batch-size 97");
        usleep((useconds_t)(3500000 + rand() % 2500000)); /* past the group join */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    pid = start_ingest(&fx, crash_db, "crash", "--until-caught-up --batch-size 97");
    ck_assert_int_eq(wait_exit(pid, 180), 0);
    char *crashed = oracle_dump_tables(crash_db);
    check_dirty_marks_cover(crash_db);
    ck_assert_msg(strcmp(reference, crashed) == 0,
                  "tables after kill -9 rounds differ from the uninterrupted run (seed %u)", seed);

    /* Two consumers in one group, the second joining midway (rebalance). */
    char *group_db = migrated_db("ingest_group");
    /* Two instances on one host: each its own group.instance.id (the default, host name
     * and group, would be the same for both). */
    pid_t a = start_ingest(&fx, group_db, "pair",
                           "--until-caught-up --batch-size 50 --group-instance-id pair-a");
    usleep(4500000);
    pid_t b = start_ingest(&fx, group_db, "pair",
                           "--until-caught-up --batch-size 50 --group-instance-id pair-b");
    ck_assert_int_eq(wait_exit(a, 240), 0);
    ck_assert_int_eq(wait_exit(b, 240), 0);
    /* Whatever either left (a member may leave before the other is done). */
    pid = start_ingest(&fx, group_db, "pair", "--until-caught-up --group-instance-id pair-a");
    ck_assert_int_eq(wait_exit(pid, 120), 0);
    char *paired = oracle_dump_tables(group_db);
    ck_assert_msg(strcmp(reference, paired) == 0,
                  "tables after a rebalance differ from the uninterrupted run");
    free(reference);
    free(crashed);
    free(paired);
    tl_db_drop(ref_db);
    tl_db_drop(crash_db);
    tl_db_drop(group_db);
    free(ref_db);
    free(crash_db);
    free(group_db);
    fixture_teardown(&fx);
}
END_TEST

/* --writers: pipelines of one process share the partitions and keep every guarantee:
 * the oracle's tables, dead letters and feed exactly once, offsets at the end; kill -9
 * of a two-pipeline process twice, then to the end, equals the uninterrupted run. */
START_TEST(test_ingest_writers_share_partitions_exactly_once) {
    fixture_t fx;
    fixture_setup(&fx, stream_args);
    char *db = migrated_db("ingest_writers");
    pid_t pid = start_ingest(&fx, db, "w3", "--until-caught-up --batch-size 200 --writers 3");
    ck_assert_int_eq(wait_exit(pid, 120), 0);
    oracle_check_database(&fx.oracle, db);
    check_dirty_marks_cover(db);
    ck_assert_int_eq(topic_count(&fx, "dlq"), (long long)fx.oracle.n_invalid);
    ck_assert_int_eq(topic_count(&fx, "enriched"), (long long)fx.oracle.n_valid_unique);
    PGconn *conn = tl_connect(db);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT sum(\"nextOffset\") FROM consumer_offsets"),
                     (long long)fx.produced);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM consumer_offsets"), 6);
    PQfinish(conn);
    char *reference = oracle_dump_tables(db);

    char *crash_db = migrated_db("ingest_writers_crash");
    for (int round = 0; round < 2; round++) {
        pid = start_ingest(&fx, crash_db, "w2", "--batch-size 61 --writers 2");
        usleep((useconds_t)(3800000 + round * 700000)); /* past the group join */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    pid = start_ingest(&fx, crash_db, "w2", "--until-caught-up --batch-size 61 --writers 2");
    ck_assert_int_eq(wait_exit(pid, 120), 0); /* static members: back within seconds */
    char *crashed = oracle_dump_tables(crash_db);
    ck_assert_msg(strcmp(reference, crashed) == 0,
                  "two pipelines killed and restarted differ from the uninterrupted run");
    free(reference);
    free(crashed);
    tl_db_drop(db);
    tl_db_drop(crash_db);
    free(db);
    free(crash_db);
    fixture_teardown(&fx);
}
END_TEST

START_TEST(test_ingest_survives_postgres_and_broker_outages) {
    fixture_t fx;
    fixture_setup(&fx, stream_args);
    /* A private server we can stop without disturbing other tests. */
    char dir[] = "/tmp/evpipe_outage_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    chmod(dir, 0755); /* the server runs as the postgres user */
    char cmd[1024], *url = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "sh tests/pg_harness.sh start %s/pg", dir);
    ck_assert_msg(tl_run(cmd, &url, &err) == 0, "cannot start PostgreSQL: %s", err);
    free(err);
    url[strcspn(url, "\n")] = '\0';
    snprintf(cmd, sizeof(cmd), "%s migrate up --database '%s'", tl_evpipe_bin(), url);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);

    pid_t pid = start_ingest(&fx, url, "outage", "--until-caught-up --batch-size 100");
    usleep(4000000);
    snprintf(cmd, sizeof(cmd), "sh tests/pg_harness.sh stop %s/pg", dir);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);
    char errstr[256];
    ck_assert_int_eq(ev_kmock_control(fx.km, "broker-down 2", errstr, sizeof(errstr)), 0);
    sleep(10);
    ck_assert_int_eq(ev_kmock_control(fx.km, "broker-up 2", errstr, sizeof(errstr)), 0);
    snprintf(cmd, sizeof(cmd), "sh tests/pg_harness.sh resume %s/pg >/dev/null", dir);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);
    ck_assert_int_eq(wait_exit(pid, 240), 0);
    oracle_check_database(&fx.oracle, url);
    ck_assert_int_eq(topic_count(&fx, "dlq") >= (long long)fx.oracle.n_invalid, 1);

    snprintf(cmd, sizeof(cmd), "sh tests/pg_harness.sh stop %s/pg; rm -rf %s", dir, dir);
    tl_run(cmd, NULL, NULL);
    free(url);
    fixture_teardown(&fx);
}
END_TEST


/* The value of one exposition line "name{labels} value", or -1 when absent. */
static double metric_value(const char *text, const char *series) {
    if (!text) return -1;
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && p[n] == ' ') return strtod(p + n + 1, NULL);
    return -1;
}

/* Sum of every series of a family, e.g. all dlq_messages_total{reason=...}. */
static double metric_family_sum(const char *text, const char *family) {
    double sum = 0;
    size_t n = strlen(family);
    for (const char *p = text; p && (p = strstr(p, family)) != NULL; p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == '{' || p[n] == ' ')) {
            const char *sp = strchr(p, ' ');
            if (sp) sum += strtod(sp + 1, NULL);
        }
    return sum;
}

START_TEST(test_ingest_metrics_readiness_and_sigterm) {
    fixture_t fx;
    fixture_setup(&fx, stream_args);
    char *db = migrated_db("ingest_metrics");
    int port = tl_free_port();
    char extra[64];
    snprintf(extra, sizeof(extra), "--metrics-port %d --batch-size 400", port);
    /* No --until-caught-up: a long-running consumer, stopped by SIGTERM. */
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "exec %s ingest --brokers %s --database '%s' --topic %s --group m "
             "--dlq-topic dlq --enriched-topic enriched --batch-ms 100 %s "
             ">>/tmp/evpipe_test_ingest.log 2>&1",
             tl_evpipe_bin(), fx.brokers, db, fx.topic, extra);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    char *body = NULL;
    long status = 0;
    for (int i = 0; i < 100 && status != 200; i++) {
        free(body);
        status = tl_http_get(port, "/healthz", &body);
        if (status != 200) usleep(100000);
    }
    ck_assert_int_eq(status, 200);
    free(body);
    /* Ready once partitions are assigned; then everything flows through. */
    double consumed = -1, stored = -1;
    for (int i = 0; i < 600; i++) {
        status = tl_http_get(port, "/metrics", &body);
        consumed = metric_value(body, "evpipe_ingest_messages_consumed_total");
        stored = metric_family_sum(body, "evpipe_ingest_rows_written_total{op=\"insert\",table=\"analytics_events\"}");
        if (consumed == (double)fx.produced && stored == (double)fx.oracle.n_valid_unique) break;
        if (i < 599) {
            free(body);
            body = NULL;
            usleep(100000);
        }
    }
    ck_assert_msg(body != NULL, "no /metrics answer");
    ck_assert_msg(consumed == (double)fx.produced, "consumed %g of %zu in:\n%s", consumed,
                  fx.produced, body);
    ck_assert_msg(stored == (double)fx.oracle.n_valid_unique, "events inserted %g, expected %zu",
                  stored, fx.oracle.n_valid_unique);
    ck_assert_int_eq((long)metric_family_sum(body, "evpipe_ingest_dlq_messages_total"),
                     (long)fx.oracle.n_invalid);
    ck_assert_int_eq((long)metric_value(body, "evpipe_ingest_events_duplicate_total"),
                     (long)fx.oracle.n_duplicates);
    ck_assert_ptr_nonnull(strstr(body, "evpipe_ingest_batch_seconds_bucket{le=\"+Inf\"}"));
    free(body);
    char *ready = NULL;
    ck_assert_int_eq(tl_http_get(port, "/readyz", &ready), 200);
    free(ready);
    /* SIGTERM: clean exit 0, promptly, nothing lost. */
    int64_t t0 = ev_now_ms();
    kill(pid, SIGTERM);
    ck_assert_int_eq(wait_exit(pid, 30), 0);
    ck_assert_msg(ev_now_ms() - t0 < 15000, "shutdown took %lld ms", (long long)(ev_now_ms() - t0));
    oracle_check_database(&fx.oracle, db);
    tl_db_drop(db);
    free(db);
    fixture_teardown(&fx);
}
END_TEST

START_TEST(test_ingest_usage_errors) {
    char cmd[512], *err = NULL;
    snprintf(cmd, sizeof(cmd), "env -u KAFKA_BROKERS %s ingest --database x", tl_evpipe_bin());
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "no Kafka brokers"));
    free(err);
    snprintf(cmd, sizeof(cmd), "env -u DATABASE_URL %s ingest --brokers 127.0.0.1:1",
             tl_evpipe_bin());
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "no database"));
    free(err);
    snprintf(cmd, sizeof(cmd), "%s ingest --brokers b --database d --conversion-types NOPE",
             tl_evpipe_bin());
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "unknown event type 'NOPE'"));
    free(err);
    /* An unmigrated database: a clear error naming the fix, exit 2 ... */
    char *db = tl_db_create("ingest_noschema");
    snprintf(cmd, sizeof(cmd), "%s ingest --brokers 127.0.0.1:1 --database '%s' --metrics-port -1",
             tl_evpipe_bin(), db);
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 2);
    ck_assert_msg(strstr(err, "evpipe migrate up") != NULL, "%s", err);
    free(err);
    /* ... and --migrate applies the schema before anything else needs it. */
    snprintf(cmd, sizeof(cmd),
             "timeout -s INT 5 %s ingest --brokers 127.0.0.1:1 --database '%s' --migrate "
             "--metrics-port -1",
             tl_evpipe_bin(), db);
    tl_run(cmd, NULL, NULL);
    PGconn *conn = tl_connect(db);
    long long ups = 0; /* the embedded files are NNNN_name.up.sql and .down.sql */
    for (int i = 0; i < ev_embedded_migration_count; i++)
        ups += strstr(ev_embedded_migrations[i].name, ".up.sql") != NULL;
    ck_assert_int_gt(ups, 1);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM schema_migrations"), ups);
    PQfinish(conn);
    tl_db_drop(db);
    free(db);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ingest");
    /* One case each, so CK_RUN_CASE=<name> runs one of them. */
    const struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"usage", test_ingest_usage_errors},
        {"oracle", test_ingest_matches_oracle_and_dead_letters},
        {"metrics", test_ingest_metrics_readiness_and_sigterm},
        {"crash", test_ingest_kill9_and_rebalance_equal_uninterrupted_run},
        {"writers", test_ingest_writers_share_partitions_exactly_once},
        {"outage", test_ingest_survives_postgres_and_broker_outages},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 600);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return tl_run_suite(s) ? 1 : 0;
}
