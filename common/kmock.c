/* kmock.c — librdkafka's mock cluster hosted in process (see kmock.h). */
#include "common/kmock.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"

struct ev_kmock_s {
    rd_kafka_t *rk; /* owner of the mock cluster's threads */
    rd_kafka_mock_cluster_t *mcluster;
};

ev_kmock_t *ev_kmock_new(int n_brokers, char *errstr, size_t errstr_size) {
    if (n_brokers < 1 || n_brokers > 32) {
        snprintf(errstr, errstr_size, "broker count %d is outside 1..32", n_brokers);
        return NULL;
    }
    ev_kmock_t *km = calloc(1, sizeof(*km));
    if (!km) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* A quiet client that exists only to own the cluster. */
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, errstr_size) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        free(km);
        return NULL;
    }
    km->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!km->rk) {
        rd_kafka_conf_destroy(conf);
        free(km);
        return NULL;
    }
    km->mcluster = rd_kafka_mock_cluster_new(km->rk, n_brokers);
    if (!km->mcluster) {
        snprintf(errstr, errstr_size, "could not create the mock cluster");
        rd_kafka_destroy(km->rk);
        free(km);
        return NULL;
    }
    return km;
}

void ev_kmock_destroy(ev_kmock_t *km) {
    if (!km) return;
    rd_kafka_mock_cluster_destroy(km->mcluster);
    rd_kafka_destroy(km->rk);
    free(km);
}

const char *ev_kmock_bootstraps(const ev_kmock_t *km) {
    return rd_kafka_mock_cluster_bootstraps(km->mcluster);
}

int ev_kmock_topic_create(ev_kmock_t *km, const char *topic, int partitions, char *errstr,
                          size_t errstr_size) {
    if (partitions < 1 || partitions > 1000) {
        snprintf(errstr, errstr_size, "topic %s: partition count %d is outside 1..1000", topic,
                 partitions);
        return -1;
    }
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(km->mcluster, topic, partitions, 1);
    if (err) {
        snprintf(errstr, errstr_size, "topic %s: %s", topic, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int ev_kmock_topic_create_spec(ev_kmock_t *km, const char *spec, int default_partitions,
                               char *errstr, size_t errstr_size) {
    char name[256];
    const char *colon = strrchr(spec, ':');
    long long parts = default_partitions;
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (len == 0 || len >= sizeof(name)) {
        snprintf(errstr, errstr_size, "bad topic '%s' (expected NAME[:PARTITIONS])", spec);
        return -1;
    }
    memcpy(name, spec, len);
    name[len] = '\0';
    if (colon && ev_parse_ll(colon + 1, &parts) != 0) {
        snprintf(errstr, errstr_size, "bad partition count in '%s'", spec);
        return -1;
    }
    return ev_kmock_topic_create(km, name, (int)parts, errstr, errstr_size);
}

int ev_kmock_control(ev_kmock_t *km, const char *line, char *errstr, size_t errstr_size) {
    char verb[32] = "", arg1[256] = "", arg2[32] = "";
    int n = sscanf(line, "%31s %255s %31s", verb, arg1, arg2);
    long long id = 0, ms = 0;
    if (n >= 1 && strcmp(verb, "topic") == 0 && n >= 2)
        return ev_kmock_topic_create_spec(km, arg1, 1, errstr, errstr_size);
    if (n < 2 || ev_parse_ll(arg1, &id) != 0) {
        snprintf(errstr, errstr_size, "unknown control command '%s'", line);
        return -1;
    }
    rd_kafka_resp_err_t err;
    if (strcmp(verb, "broker-down") == 0) {
        err = rd_kafka_mock_broker_set_down(km->mcluster, (int32_t)id);
    } else if (strcmp(verb, "broker-up") == 0) {
        err = rd_kafka_mock_broker_set_up(km->mcluster, (int32_t)id);
    } else if (strcmp(verb, "broker-rtt") == 0 && n == 3 && ev_parse_ll(arg2, &ms) == 0) {
        err = rd_kafka_mock_broker_set_rtt(km->mcluster, (int32_t)id, (int)ms);
    } else {
        snprintf(errstr, errstr_size, "unknown control command '%s'", line);
        return -1;
    }
    if (err) {
        snprintf(errstr, errstr_size, "%s: %s", line, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}
