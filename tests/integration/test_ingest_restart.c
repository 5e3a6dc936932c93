/* test_ingest_restart.c — an ingest killed with SIGKILL in the middle of a batch, or
 * during its group join, and restarted, is back at work (its offsets in PostgreSQL move
 * again) within seconds, not after librdkafka's default 45 s session timeout; and what
 * it stores in the end is exactly the oracle's. Against a mock Kafka cluster hosted in
 * this test and the real PostgreSQL. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/kmock.h"
#include "common/util.h"
#include "tests/integration/ingest_oracle.h"
#include "tests/testlib.h"

/* librdkafka's mock cluster has no static membership (it matches members by member id
 * only, so a restarted member with the same group.instance.id is a new member): a dead
 * member is dropped after session.timeout.ms, which ingest sets to 6 s. Measured here:
 * ~6 s after a kill mid-batch; ~16 s after a kill during the join (the mock's join and
 * sync phases each wait about one session timeout for the dead members). With
 * librdkafka's default 45 s session timeout and dynamic membership: 45 s and 134 s. */
#define BACK_AT_WORK_MS 25000

static char brokers[512];

static pid_t start_ingest(const char *db, const char *topic, const char *extra) {
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "exec %s ingest --brokers %s --database '%s' --topic %s --group restart "
             "--group-instance-id restart-1 --dlq-topic dlq --enriched-topic enriched "
             "--metrics-port -1 --batch-ms 100 %s >>/tmp/evpipe_test_ingest_restart.log 2>&1",
             tl_evpipe_bin(), brokers, db, topic, extra);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static long long stored_position(PGconn *conn) {
    return tl_query_ll(conn, "SELECT coalesce(sum(\"nextOffset\"), 0) FROM consumer_offsets");
}

/* Waits until the stored position passes `after`; returns the ms it took (-1: not
 * within limit_ms). */
static long long wait_progress(PGconn *conn, long long after, long long limit_ms) {
    int64_t t0 = ev_now_ms();
    while (ev_now_ms() - t0 < limit_ms) {
        if (stored_position(conn) > after) return ev_now_ms() - t0;
        usleep(20000);
    }
    return -1;
}

static void kill9(pid_t pid) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

START_TEST(test_ingest_restart_after_kill_is_back_within_seconds) {
    char errstr[256];
    ev_kmock_t *km = ev_kmock_new(3, errstr, sizeof(errstr));
    ck_assert_msg(km != NULL, "%s", errstr);
    snprintf(brokers, sizeof(brokers), "%s", ev_kmock_bootstraps(km));
    char *topic = tl_unique_name("raw");
    ck_assert_int_eq(ev_kmock_topic_create(km, topic, 6, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(ev_kmock_topic_create(km, "dlq", 2, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(ev_kmock_topic_create(km, "enriched", 6, errstr, sizeof(errstr)), 0);
    char path[] = "/tmp/evpipe_restart_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    char cmd[1024], *err = NULL;
    snprintf(cmd, sizeof(cmd),
             "%s loadgen --output %s --seed 13 --visitors 300 --days 4 --disorder 1200 "
             "--dup-ratio 0.02 --bad-ratio 0.02",
             tl_evpipe_bin(), path);
    ck_assert_msg(tl_run(cmd, NULL, &err) == 0, "loadgen: %s", err);
    free(err);
    oracle_t oracle;
    oracle_compute(path, 1800 * 1000LL, 86400 * 1000LL, &oracle);
    ck_assert_int_eq(oracle_produce_file(brokers, topic, path), oracle.n_lines);
    char *db = tl_db_create_migrated("restart");
    PGconn *conn = tl_connect(db);
    /* Small batches, so that the stream lasts across the kills. */
    const char *slow = "--batch-size 10";

    /* 1. Killed in the middle of its work (right after a commit: the next batch is open). */
    pid_t pid = start_ingest(db, topic, slow);
    ck_assert_int_ge(wait_progress(conn, 0, 60000), 0);
    usleep(300000);
    kill9(pid);
    long long at_kill = stored_position(conn);
    ck_assert_int_lt(at_kill, (long long)oracle.n_lines);
    pid = start_ingest(db, topic, slow);
    long long took = wait_progress(conn, at_kill, BACK_AT_WORK_MS);
    fprintf(stderr, "restart after kill -9 mid-batch: progress after %lld ms\n", took);
    ck_assert_msg(took >= 0, "no progress within %d ms of a restart after kill -9 mid-batch",
                  BACK_AT_WORK_MS);

    /* 2. Killed during its group join: the restarted one must not wait minutes. */
    usleep(300000);
    kill9(pid);
    pid = start_ingest(db, topic, slow);
    usleep(400000); /* joining: the mock's group needs longer than this to settle */
    kill9(pid);
    at_kill = stored_position(conn);
    ck_assert_int_lt(at_kill, (long long)oracle.n_lines);
    pid = start_ingest(db, topic, slow);
    took = wait_progress(conn, at_kill, BACK_AT_WORK_MS);
    fprintf(stderr, "restart after kill -9 during the join: progress after %lld ms\n", took);
    ck_assert_msg(took >= 0, "no progress within %d ms of a restart after kill -9 during the join",
                  BACK_AT_WORK_MS);
    kill9(pid);

    /* To the end: exactly once whatever the kills interrupted. */
    pid = start_ingest(db, topic, "--until-caught-up");
    int st = 0;
    pid_t done = 0;
    for (int i = 0; i < 1200 && (done = waitpid(pid, &st, WNOHANG)) == 0; i++) usleep(100000);
    if (done != pid) kill9(pid);
    ck_assert_msg(done == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "final ingest run failed or hung (%d)", st);
    ck_assert_int_eq(stored_position(conn), (long long)oracle.n_lines);
    oracle_check_database(&oracle, db);
    PQfinish(conn);
    tl_db_drop(db);
    free(db);
    oracle_free(&oracle);
    unlink(path);
    free(topic);
    ev_kmock_destroy(km);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ingest_restart");
    TCase *tc = tcase_create("restart");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_ingest_restart_after_kill_is_back_within_seconds);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}
