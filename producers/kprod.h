/* kprod.h — the Kafka side of the producers (replay, loadgen, the evpub library): one
 * idempotent producer bound to one topic, keyed messages, delivery accounting, and
 * defaults tuned for throughput that -X properties override. */
#ifndef EV_KPROD_H
#define EV_KPROD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cli.h"

typedef struct kprod_s kprod_t;

typedef struct kprod_stats_s {
    uint64_t enqueued;  /* accepted by kprod_send */
    uint64_t delivered; /* acknowledged by the cluster (acks=all) */
    uint64_t failed;    /* refused by kprod_send, or whose delivery failed for good */
    uint64_t bytes;     /* key + value bytes accepted */
} kprod_stats_t;

/* Creates a producer for topic on brokers with the defaults: enable.idempotence=true,
 * acks=all, compression.type=lz4, linger.ms=20, batch.size=1000000,
 * partitioner=murmur2_random (the Java client's choice, so a key lands on the same
 * partition whoever produces it), a local queue capped at 500000 messages / 256 MiB.
 * props (may be NULL) are applied after the defaults, untouched (-X key=value).
 * Returns NULL with errstr filled on a configuration error (unknown property, bad
 * value, empty brokers or topic). */
kprod_t *kprod_new(const char *brokers, const char *topic, const ev_kv_list_t *props, char *errstr,
                   size_t errstr_size);

/* Purges what is still queued (counted as failed), then frees the producer. Call
 * kprod_flush first to wait for outstanding deliveries. NULL is a no-op. */
void kprod_destroy(kprod_t *kp);

/* Enqueues one message (key and value are copied; key NULL = no key, the partitioner
 * then spreads such messages). Blocks, serving delivery reports, while the local
 * queue is full. Returns 0, or -1 with errstr when the message is refused for good
 * (larger than message.max.bytes, unknown topic, fatal producer error): it is then
 * counted as failed. */
int kprod_send(kprod_t *kp, const void *key, size_t key_len, const void *value, size_t value_len,
               char *errstr, size_t errstr_size) __attribute__((warn_unused_result));

/* While *flag is non-zero (e.g. set by a signal handler), kprod_send does not wait for
 * room in a full queue: it refuses the message ("interrupted"). NULL: always wait. */
void kprod_set_interrupt(kprod_t *kp, volatile sig_atomic_t *flag);

/* Serves pending delivery reports without blocking. */
void kprod_poll(kprod_t *kp);

/* Waits until every enqueued message has its delivery report, at most timeout_ms
 * (< 0: as long as it takes). Returns 0 when none is left in flight, -1 on timeout. */
int kprod_flush(kprod_t *kp, int timeout_ms);

/* Messages enqueued and not yet reported. */
int kprod_in_flight(kprod_t *kp);

/* Counters so far. */
void kprod_stats(const kprod_t *kp, kprod_stats_t *stats);

/* The first delivery or fatal error seen, "" when none (owned by kp). */
const char *kprod_first_error(const kprod_t *kp);

/* The topic name (owned by kp). */
const char *kprod_topic(const kprod_t *kp);

#endif
