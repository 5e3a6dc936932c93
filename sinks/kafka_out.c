/* kafka_out.c — idempotent producer with delivery tracking (see kafka_out.h). */
#include "sinks/kafka_out.h"

#include "common/kafka_log.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink_kafka_s {
    rd_kafka_t *rk;
    pthread_mutex_t mu; /* the counters: several threads send, wait and serve reports */
    uint64_t enqueued, reported, delivered, failed;
    char last_error[256];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    sink_kafka_t *sk = opaque;
    pthread_mutex_lock(&sk->mu);
    sk->reported++;
    if (m->err) {
        sk->failed++;
        snprintf(sk->last_error, sizeof(sk->last_error), "%s [%d]: %s",
                 rd_kafka_topic_name(m->rkt), (int)m->partition, rd_kafka_err2str(m->err));
    } else {
        sk->delivered++;
    }
    pthread_mutex_unlock(&sk->mu);
}

sink_kafka_t *sink_kafka_new(const char *brokers, const ev_kv_list_t *props, char *errstr,
                             size_t errstr_size) {
    sink_kafka_t *sk = calloc(1, sizeof(*sk));
    if (!sk) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&sk->mu, NULL) != 0) {
        snprintf(errstr, errstr_size, "cannot create a mutex");
        free(sk);
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    static const char *const defaults[][2] = {
        {"enable.idempotence", "true"}, {"acks", "all"},          {"compression.type", "lz4"},
        {"linger.ms", "5"},             {"message.timeout.ms", "0"}, /* retry until delivered */
        {"batch.size", "1000000"},      {"log_level", "4"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], errstr, errstr_size) !=
            RD_KAFKA_CONF_OK)
            goto fail;
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) !=
        RD_KAFKA_CONF_OK)
        goto fail;
    for (int i = 0; props && i < props->n; i++)
        if (rd_kafka_conf_set(conf, props->key[i], props->val[i], errstr, errstr_size) !=
            RD_KAFKA_CONF_OK)
            goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, ev_kafka_log_cb);
    rd_kafka_conf_set_opaque(conf, sk);
    sk->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!sk->rk) goto fail;
    return sk;
fail:
    rd_kafka_conf_destroy(conf);
    pthread_mutex_destroy(&sk->mu);
    free(sk);
    return NULL;
}

void sink_kafka_destroy(sink_kafka_t *sk) {
    if (!sk) return;
    rd_kafka_flush(sk->rk, 10000);
    rd_kafka_destroy(sk->rk);
    pthread_mutex_destroy(&sk->mu);
    free(sk);
}

int sink_kafka_send(sink_kafka_t *sk, const char *topic, const void *key, size_t key_len,
                    const void *value, size_t value_len, const char *const *headers,
                    char *errstr, size_t errstr_size) {
    rd_kafka_headers_t *hdrs = NULL;
    if (headers && headers[0]) {
        hdrs = rd_kafka_headers_new(8);
        for (size_t i = 0; headers[i]; i += 2)
            rd_kafka_header_add(hdrs, headers[i], -1, headers[i + 1], -1);
    }
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            sk->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (!err) {
            pthread_mutex_lock(&sk->mu);
            sk->enqueued++;
            pthread_mutex_unlock(&sk->mu);
            return 0; /* librdkafka now owns hdrs */
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(sk->rk, 10);
            continue;
        }
        rd_kafka_headers_destroy(hdrs);
        snprintf(errstr, errstr_size, "produce to %s: %s", topic, rd_kafka_err2str(err));
        return -1;
    }
}

int sink_kafka_wait(sink_kafka_t *sk, int timeout_ms, size_t *failed, char *errstr,
                    size_t errstr_size) {
    rd_kafka_flush(sk->rk, timeout_ms); /* serves delivery reports: not under the lock */
    rd_kafka_poll(sk->rk, 0);
    pthread_mutex_lock(&sk->mu);
    *failed = (size_t)sk->failed;
    int rc = 0;
    if (sk->failed) {
        snprintf(errstr, errstr_size, "%llu message(s) not delivered, last: %s",
                 (unsigned long long)sk->failed, sk->last_error);
        rc = -1;
    } else if (sk->reported < sk->enqueued) {
        snprintf(errstr, errstr_size, "%llu message(s) still waiting for delivery after %d ms",
                 (unsigned long long)(sk->enqueued - sk->reported), timeout_ms);
        rc = 1;
    }
    sk->failed = 0;
    pthread_mutex_unlock(&sk->mu);
    return rc;
}

uint64_t sink_kafka_delivered(const sink_kafka_t *sk) {
    sink_kafka_t *mut = (sink_kafka_t *)sk; /* the lock, not the value, changes */
    pthread_mutex_lock(&mut->mu);
    uint64_t n = sk->delivered;
    pthread_mutex_unlock(&mut->mu);
    return n;
}
