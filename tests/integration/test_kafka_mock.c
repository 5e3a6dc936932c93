/* test_kafka_mock.c — `evpipe kafka-mock` speaks real Kafka: produce, then consume
 * everything back through a consumer group, exactly once and in order per key. */
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/testlib.h"

#define N_MESSAGES 5000
#define N_KEYS 37

static rd_kafka_t *make_client(rd_kafka_type_t type, const char *group) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", tl_brokers(), errstr,
                                sizeof(errstr)) == RD_KAFKA_CONF_OK);
    if (type == RD_KAFKA_PRODUCER) {
        ck_assert(rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ==
                  RD_KAFKA_CONF_OK);
    } else {
        ck_assert(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ==
                  RD_KAFKA_CONF_OK);
        ck_assert(rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr,
                                    sizeof(errstr)) == RD_KAFKA_CONF_OK);
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    return rk;
}

START_TEST(test_kafka_mock_group_round_trip) {
    ck_assert_msg(tl_brokers() != NULL, "EVPIPE_TEST_BROKERS is not set (run make check)");
    char *topic = tl_unique_name("roundtrip");
    char *group = tl_unique_name("group");

    rd_kafka_t *producer = make_client(RD_KAFKA_PRODUCER, NULL);
    for (int i = 0; i < N_MESSAGES; i++) {
        char key[16], value[64];
        snprintf(key, sizeof(key), "k%d", i % N_KEYS);
        snprintf(value, sizeof(value), "%d:%d", i % N_KEYS, i / N_KEYS);
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic),
                                        RD_KAFKA_V_KEY(key, strlen(key)),
                                        RD_KAFKA_V_VALUE(value, strlen(value)),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(producer, 10);
        ck_assert_int_eq(err, 0);
    }
    ck_assert_int_eq(rd_kafka_flush(producer, 30000), 0);
    rd_kafka_destroy(producer);

    rd_kafka_t *consumer = make_client(RD_KAFKA_CONSUMER, group);
    rd_kafka_poll_set_consumer(consumer);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    ck_assert_int_eq(rd_kafka_subscribe(consumer, subs), 0);
    rd_kafka_topic_partition_list_destroy(subs);

    int next_seq[N_KEYS];
    memset(next_seq, 0, sizeof(next_seq));
    int received = 0;
    int64_t deadline = ev_now_ms() + 60000;
    while (received < N_MESSAGES && ev_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 200);
        if (!m) continue;
        if (m->err) {
            ck_assert_msg(m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF, "consume error: %s",
                          rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        char value[64];
        snprintf(value, sizeof(value), "%.*s", (int)m->len, (const char *)m->payload);
        int k = -1, seq = -1;
        ck_assert_int_eq(sscanf(value, "%d:%d", &k, &seq), 2);
        ck_assert(k >= 0 && k < N_KEYS);
        /* Exactly once and in order per key: each key's sequence comes 0, 1, 2, ... */
        ck_assert_int_eq(seq, next_seq[k]);
        next_seq[k]++;
        received++;
        rd_kafka_message_destroy(m);
    }
    ck_assert_int_eq(received, N_MESSAGES);
    /* Nothing more arrives. */
    rd_kafka_message_t *extra = rd_kafka_consumer_poll(consumer, 1000);
    if (extra) {
        ck_assert_msg(extra->err != 0, "unexpected extra message");
        rd_kafka_message_destroy(extra);
    }
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    free(topic);
    free(group);
}
END_TEST

START_TEST(test_kafka_mock_process_lifecycle) {
    /* A second cluster, own topics, bootstrap file, clean exit on SIGTERM. */
    char path[] = "/tmp/evpipe_test_bsXXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    unlink(path);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        execl(tl_evpipe_bin(), "evpipe", "kafka-mock", "--brokers", "2", "--topic", "t1=4",
              "--bootstrap-file", path, (char *)NULL);
        _exit(127);
    }
    char *bs = NULL;
    for (int i = 0; i < 100 && !bs; i++) {
        FILE *f = fopen(path, "r");
        if (f) {
            char line[512] = "";
            if (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = '\0';
                bs = strdup(line);
            }
            fclose(f);
        }
        if (!bs) usleep(100000);
    }
    ck_assert_msg(bs != NULL, "bootstrap file never written");
    ck_assert_int_eq((int)(strchr(bs, ',') != NULL), 1); /* two brokers */
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof(cmd), "kcat -b %s -L -t t1", bs);
    ck_assert_int_eq(tl_run(cmd, &out, NULL), 0);
    ck_assert_msg(strstr(out, "topic \"t1\" with 4 partitions") != NULL, "%s", out);
    free(out);
    kill(pid, SIGTERM);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    unlink(path);
    free(bs);
}
END_TEST

START_TEST(test_kafka_mock_rejects_bad_options) {
    char cmd[512], *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s kafka-mock --brokers 0", tl_evpipe_bin());
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "outside 1..32"));
    free(err);
    snprintf(cmd, sizeof(cmd), "%s kafka-mock --topic x=abc", tl_evpipe_bin());
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 1);
    ck_assert_ptr_nonnull(strstr(err, "partitions must be a number"));
    free(err);
}
END_TEST

int main(void) {
    Suite *s = suite_create("kafka_mock");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_kafka_mock_group_round_trip);
    tcase_add_test(tc, test_kafka_mock_process_lifecycle);
    tcase_add_test(tc, test_kafka_mock_rejects_bad_options);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}
