/* kmock.h — librdkafka's mock Kafka cluster (rdkafka_mock.h) hosted in this
 * process: real Kafka protocol on loopback TCP, for tests, demos and laptops. */
#ifndef EV_KMOCK_H
#define EV_KMOCK_H

#include <stddef.h>

typedef struct ev_kmock_s ev_kmock_t;

/* The topics of SPEC §3/§4 with their default partition counts. */
#define EV_TOPIC_RAW "analytics.events.raw"
#define EV_TOPIC_DLQ "analytics.events.dlq"
#define EV_TOPIC_ENRICHED "analytics.events.enriched"

/* Starts a cluster of n_brokers brokers. Returns NULL and fills errstr on failure. */
ev_kmock_t *ev_kmock_new(int n_brokers, char *errstr, size_t errstr_size);
void ev_kmock_destroy(ev_kmock_t *km);

/* "127.0.0.1:port,..." owned by km. */
const char *ev_kmock_bootstraps(const ev_kmock_t *km);

/* Creates a topic; returns 0 or -1 with errstr. */
int ev_kmock_topic_create(ev_kmock_t *km, const char *topic, int partitions, char *errstr,
                          size_t errstr_size);

/* Parses "name:partitions" (partitions optional, default_partitions then) and creates it. */
int ev_kmock_topic_create_spec(ev_kmock_t *km, const char *spec, int default_partitions,
                               char *errstr, size_t errstr_size);

/* Executes one control command, for fault injection from tests:
 *   "broker-down ID" | "broker-up ID" | "broker-rtt ID MS" | "topic NAME[:PARTITIONS]"
 * Returns 0 or -1 with errstr. */
int ev_kmock_control(ev_kmock_t *km, const char *line, char *errstr, size_t errstr_size);

#endif
