/* kafka_out.h — the pipeline's Kafka producer: dead letters and enriched events,
 * idempotent, with delivery confirmation before the consumer moves its offsets. Safe to
 * use from several threads. */
#ifndef SINK_KAFKA_OUT_H
#define SINK_KAFKA_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "common/cli.h"

typedef struct sink_kafka_s sink_kafka_t;

/* Creates an idempotent producer (acks=all, lz4, retries without a message timeout)
 * on brokers; props are passed to librdkafka untouched after the defaults (-X).
 * Returns NULL with errstr on a configuration error. */
sink_kafka_t *sink_kafka_new(const char *brokers, const ev_kv_list_t *props, char *errstr,
                             size_t errstr_size);
void sink_kafka_destroy(sink_kafka_t *sk);

/* Enqueues one message (key, value and headers are copied). headers is NULL or an
 * array of name/value string pairs terminated by a NULL name. Blocks while the local
 * queue is full. Returns 0, or -1 with errstr (unknown topic name format etc.). */
int sink_kafka_send(sink_kafka_t *sk, const char *topic, const void *key, size_t key_len,
                    const void *value, size_t value_len, const char *const *headers,
                    char *errstr, size_t errstr_size);

/* Waits until every message enqueued so far has a delivery report, at most
 * timeout_ms. Returns 0 when all were delivered; 1 when some are still in flight
 * (the producer keeps retrying them: call again); -1 when some failed for good
 * (errstr says why, *failed counts them; the count is reset and the caller re-sends
 * what it needs delivered). */
int sink_kafka_wait(sink_kafka_t *sk, int timeout_ms, size_t *failed, char *errstr,
                    size_t errstr_size);

/* Messages delivered since creation. */
uint64_t sink_kafka_delivered(const sink_kafka_t *sk);

#endif
