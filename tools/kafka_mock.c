/* kafka_mock.c — `evpipe kafka-mock`: librdkafka's mock cluster as a process. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/commands.h"
#include "common/kmock.h"
#include "common/log.h"

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

int cmd_kafka_mock(int argc, char **argv) {
    long long brokers = 3, partitions = 6;
    const char *bootstrap_file = NULL;
    bool control_stdin = false;
    ev_kv_list_t topics = {0};
    const ev_opt_t opts[] = {
        {"brokers", 'n', EV_OPT_INT, "3", NULL, "N", "number of mock brokers", &brokers, 1, 32},
        {"partitions", 'p', EV_OPT_INT, "6", NULL, "N",
         "partitions of each default topic (the mock keeps ~5 MiB per partition)", &partitions,
         1, 1000},
        {"topic", 't', EV_OPT_KV, NULL, NULL, "NAME=PARTITIONS",
         "create this topic instead of the defaults (repeatable)", &topics, 0, 0},
        {"bootstrap-file", 'f', EV_OPT_STR, NULL, NULL, "PATH",
         "also write the bootstrap servers to PATH (atomically, once ready)", &bootstrap_file, 0,
         0},
        {"control-stdin", 0, EV_OPT_BOOL, NULL, NULL, NULL,
         "read fault-injection commands from stdin: broker-down ID, broker-up ID, "
         "broker-rtt ID MS, topic NAME:PARTITIONS",
         &control_stdin, 0, 0},
        EV_OPT_END};
    const ev_cli_t cli = {
        "evpipe kafka-mock", "[OPTIONS]",
        "Hosts librdkafka's mock Kafka cluster: real Kafka protocol on 127.0.0.1, consumer\n"
        "groups, idempotent producer. Prints the bootstrap servers on stdout and runs until\n"
        "SIGTERM or SIGINT. Default topics: " EV_TOPIC_RAW ", " EV_TOPIC_DLQ ", " EV_TOPIC_ENRICHED
        ".\nData beyond about 5 MiB per partition is silently dropped by the mock: use enough\n"
        "partitions and compression (lz4/zstd) for large runs.",
        "Example:\n  evpipe kafka-mock --brokers 3 --bootstrap-file /tmp/brokers &\n"
        "  kcat -b $(cat /tmp/brokers) -L",
        opts};
    char errstr[512];
    int first = 0;
    int rc = ev_cli_parse(&cli, argc, argv, &first, errstr, sizeof(errstr));
    if (rc == 1) return 0;
    if (rc < 0) {
        fprintf(stderr, "evpipe kafka-mock: %s\n", errstr);
        return 2;
    }
    ev_log_init("kafka-mock", EV_LOG_INFO, 0);

    ev_kmock_t *km = ev_kmock_new((int)brokers, errstr, sizeof(errstr));
    if (!km) {
        fprintf(stderr, "evpipe kafka-mock: %s\n", errstr);
        ev_kv_list_clear(&topics);
        return 1;
    }
    rc = 0;
    if (topics.n == 0) {
        const char *defaults[] = {EV_TOPIC_RAW, EV_TOPIC_DLQ, EV_TOPIC_ENRICHED};
        for (int i = 0; i < 3 && rc == 0; i++)
            rc = ev_kmock_topic_create(km, defaults[i], (int)partitions, errstr, sizeof(errstr));
    }
    for (int i = 0; i < topics.n && rc == 0; i++) {
        long long p;
        if (ev_parse_ll(topics.val[i], &p) != 0) {
            snprintf(errstr, sizeof(errstr), "--topic %s=%s: partitions must be a number",
                     topics.key[i], topics.val[i]);
            rc = -1;
        } else {
            rc = ev_kmock_topic_create(km, topics.key[i], (int)p, errstr, sizeof(errstr));
        }
    }
    if (rc == 0 && bootstrap_file) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", bootstrap_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%s\n", ev_kmock_bootstraps(km)) < 0 || fclose(f) != 0 ||
            rename(tmp, bootstrap_file) != 0) {
            snprintf(errstr, sizeof(errstr), "cannot write %s", bootstrap_file);
            rc = -1;
        }
    }
    if (rc != 0) {
        fprintf(stderr, "evpipe kafka-mock: %s\n", errstr);
        ev_kmock_destroy(km);
        ev_kv_list_clear(&topics);
        return 1;
    }
    printf("%s\n", ev_kmock_bootstraps(km));
    fflush(stdout);
    EV_INFO("mock cluster of %lld brokers ready at %s", brokers, ev_kmock_bootstraps(km));

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    char line[512];
    while (!stop_requested) {
        if (control_stdin) {
            if (!fgets(line, sizeof(line), stdin)) {
                if (feof(stdin)) control_stdin = false; /* EOF: keep running, stop reading */
                continue;
            }
            line[strcspn(line, "\r\n")] = '\0';
            if (!*line) continue;
            if (ev_kmock_control(km, line, errstr, sizeof(errstr)) != 0)
                EV_WARN("control: %s", errstr);
            else
                EV_INFO("control: %s", line);
        } else {
            usleep(100 * 1000);
        }
    }
    EV_INFO("stopping");
    ev_kmock_destroy(km);
    ev_kv_list_clear(&topics);
    return 0;
}
