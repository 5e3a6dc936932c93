/* kprod.c — idempotent, keyed Kafka producer for replay, loadgen and evpub. */
#include "producers/kprod.h"

#include "common/kafka_log.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define KPROD_POLL_EVERY 1024 /* serve delivery reports every this many sends */

struct kprod_s {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    char *topic;
    kprod_stats_t stats;
    unsigned since_poll;
    int fatal;
    volatile sig_atomic_t *interrupt;
    char first_error[512];
};

/* Keeps the first error: "<what> <where>: <why>". */
static void note_error(kprod_t *kp, const char *what, const char *where, const char *why) {
    if (kp->first_error[0]) return;
    snprintf(kp->first_error, sizeof(kp->first_error), "%.64s%.200s: %.200s", what, where, why);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    kprod_t *kp = opaque;
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        kp->stats.delivered++;
        return;
    }
    kp->stats.failed++;
    note_error(kp, "delivery failed to ", rd_kafka_topic_name(msg->rkt),
               rd_kafka_err2str(msg->err));
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    kprod_t *kp = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        kp->fatal = 1;
        note_error(kp, "fatal producer error", "", why);
        EV_ERROR("kafka: fatal producer error: %s", why);
        return;
    }
    /* Transport errors are also in librdkafka's log (ev_kafka_log_cb): only the summary here. */
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        EV_WARN("kafka: %s", reason);
    else
        EV_DEBUG("kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                    size_t errstr_size) {
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "Kafka property %s=%s: %s", key, value, why);
        return -1;
    }
    return 0;
}

kprod_t *kprod_new(const char *brokers, const char *topic, const ev_kv_list_t *props, char *errstr,
                   size_t errstr_size) {
    if (!brokers || !*brokers) {
        snprintf(errstr, errstr_size, "no Kafka brokers given (--brokers or KAFKA_BROKERS)");
        return NULL;
    }
    if (!topic || !*topic) {
        snprintf(errstr, errstr_size, "no topic given");
        return NULL;
    }
    kprod_t *kp = calloc(1, sizeof(*kp));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!kp || !conf || !(kp->topic = strdup(topic))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    static const char *const defaults[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.type", "lz4"},
        {"linger.ms", "20"},
        {"batch.size", "1000000"},
        {"batch.num.messages", "10000"},
        {"queue.buffering.max.messages", "500000"},
        {"queue.buffering.max.kbytes", "262144"},
        {"partitioner", "murmur2_random"},
    };
    if (conf_set(conf, "bootstrap.servers", brokers, errstr, errstr_size) != 0) goto fail;
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (conf_set(conf, defaults[i][0], defaults[i][1], errstr, errstr_size) != 0) goto fail;
    for (int i = 0; props && i < props->n; i++)
        if (conf_set(conf, props->key[i], props->val[i], errstr, errstr_size) != 0) goto fail;
    rd_kafka_conf_set_opaque(conf, kp);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, ev_kafka_log_cb);
    char why[512];
    kp->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!kp->rk) {
        snprintf(errstr, errstr_size, "cannot create the Kafka producer: %s", why);
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    kp->rkt = rd_kafka_topic_new(kp->rk, topic, NULL);
    if (!kp->rkt) {
        snprintf(errstr, errstr_size, "topic %s: %s", topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    return kp;
fail:
    if (conf) rd_kafka_conf_destroy(conf);
    kprod_destroy(kp);
    return NULL;
}

void kprod_destroy(kprod_t *kp) {
    if (!kp) return;
    if (kp->rk) {
        if (rd_kafka_outq_len(kp->rk) > 0) {
            rd_kafka_purge(kp->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_poll(kp->rk, 0); /* purged messages report as failed */
        }
        if (kp->rkt) rd_kafka_topic_destroy(kp->rkt);
        rd_kafka_destroy(kp->rk);
    }
    free(kp->topic);
    free(kp);
}

int kprod_send(kprod_t *kp, const void *key, size_t key_len, const void *value, size_t value_len,
               char *errstr, size_t errstr_size) {
    for (;;) {
        if (kp->fatal) {
            kp->stats.failed++;
            snprintf(errstr, errstr_size, "%s", kp->first_error);
            return -1;
        }
        if (rd_kafka_produce(kp->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)value,
                             value_len, key, key ? key_len : 0, NULL) == 0)
            break;
        rd_kafka_resp_err_t err = rd_kafka_last_error();
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !(kp->interrupt && *kp->interrupt)) {
            rd_kafka_poll(kp->rk, 5);
            continue;
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            kp->stats.failed++;
            snprintf(errstr, errstr_size, "interrupted while the local queue was full");
            return -1;
        }
        kp->stats.failed++;
        snprintf(errstr, errstr_size, "cannot produce to %s (%zu bytes): %s", kp->topic,
                 key_len + value_len, rd_kafka_err2str(err));
        return -1;
    }
    kp->stats.enqueued++;
    kp->stats.bytes += key_len + value_len;
    if (++kp->since_poll >= KPROD_POLL_EVERY) {
        kp->since_poll = 0;
        rd_kafka_poll(kp->rk, 0);
    }
    return 0;
}

void kprod_set_interrupt(kprod_t *kp, volatile sig_atomic_t *flag) { kp->interrupt = flag; }

void kprod_poll(kprod_t *kp) { rd_kafka_poll(kp->rk, 0); }

int kprod_flush(kprod_t *kp, int timeout_ms) {
    rd_kafka_resp_err_t err = rd_kafka_flush(kp->rk, timeout_ms < 0 ? -1 : timeout_ms);
    rd_kafka_poll(kp->rk, 0);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR && rd_kafka_outq_len(kp->rk) == 0 ? 0 : -1;
}

int kprod_in_flight(kprod_t *kp) { return rd_kafka_outq_len(kp->rk); }

void kprod_stats(const kprod_t *kp, kprod_stats_t *stats) { *stats = kp->stats; }

const char *kprod_first_error(const kprod_t *kp) { return kp->first_error; }

const char *kprod_topic(const kprod_t *kp) { return kp->topic; }
