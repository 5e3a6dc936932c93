/* ingest.h — internals shared by the ingest consumer's files: the consumer state,
 * the open batch, and the batch pipeline (parse, sessionize, dead-letter, write,
 * publish). The command itself is cmd_ingest (common/commands.h). */
#ifndef CONSUMERS_INGEST_H
#define CONSUMERS_INGEST_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/cli.h"
#include "common/metrics.h"
#include "sinks/kafka_out.h"
#include "sinks/pg_settings.h"
#include "sinks/pg_sink.h"
#include "transforms/device.h"
#include "transforms/enrich.h"
#include "transforms/event.h"
#include "transforms/sessionize.h"
#include "transforms/settings.h"

#define INGEST_MAX_PARTITIONS 1024

/* One consumed message and what became of it. */
typedef struct ingest_msg_s {
    rd_kafka_message_t *rkm; /* owned until the batch is done */
    int64_t received_at_ms;
    bool parsed, valid, duplicate, dead;
    tf_event_t event;
    tf_event_error_t error;
    tf_enriched_t enriched;
    char session_id[37];
    char db_error[600];      /* set when PostgreSQL rejected the row (bisection) */
} ingest_msg_t;

typedef struct ingest_partition_s {
    bool assigned;
    int64_t committed; /* next offset stored in PostgreSQL (-1 unknown) */
    int64_t start_high; /* high watermark when the consumer started (until-caught-up) */
    int64_t batch_next; /* next offset after this batch's last message of it (-1 none) */
} ingest_partition_t;

typedef struct ingest_s {
    /* settings */
    const char *brokers, *database, *topic, *group, *dlq_topic, *enriched_topic;
    long long batch_size, batch_ms;
    bool until_caught_up;
    tf_settings_t settings;      /* in effect now */
    tf_settings_t settings_base; /* defaults + flags/environment: what tracking_configs overlays */
    unsigned settings_pinned;
    bool settings_unreadable;    /* for logging state changes of the reload */
    tf_session_config_t session_cfg;

    /* components */
    rd_kafka_t *consumer;
    sink_kafka_t *producer;
    sink_pg_t *pg;
    sink_pg_settings_t *settings_src;
    tf_ua_classifier_t *classifier;
    tf_enrich_cache_t *enrich_cache;
    tf_sessionizer_t *sessionizer;
    ev_metrics_t *metrics;

    /* the open batch */
    ingest_msg_t *msgs;
    size_t n_msgs;
    int64_t batch_started_ms;

    ingest_partition_t parts[INGEST_MAX_PARTITIONS];
    _Atomic bool ever_assigned; /* also read by the /readyz thread */
    int64_t watermark_ms;  /* largest event time seen (drives eviction) */

    /* state-change logging */
    _Atomic bool pg_down; /* also read by the /readyz thread */
    bool kafka_down;
    int64_t pg_down_since_ms, kafka_down_since_ms;

    /* counters (also exported as metrics) */
    uint64_t n_consumed, n_stored, n_dead, n_duplicates, n_batches, n_retries;

    /* metrics handles */
    ev_metric_t *m_consumed, *m_stored, *m_dup, *m_batches, *m_retries_pg, *m_retries_kafka,
        *m_visitors, *m_events_held;
    ev_histogram_t *m_batch_seconds;
    sink_pg_stats_t pg_stats_exported; /* what the rows_written counters already hold */
} ingest_t;

extern volatile sig_atomic_t ingest_stop_requested;

/* Appends a polled message to the open batch (takes ownership of rkm). */
void ingest_batch_add(ingest_t *in, rd_kafka_message_t *rkm);

/* Processes the open batch to the end: dead letters confirmed, rows and offsets
 * committed in PostgreSQL, enriched events delivered, Kafka offsets committed.
 * Retries transient failures with capped backoff until done or, when stop is
 * requested (or abandon_on_stop), abandons the batch without committing anything.
 * Returns 0 when committed (or empty), 1 when abandoned, -1 on a fatal error (the
 * process must stop: e.g. the schema is missing). */
int ingest_batch_flush(ingest_t *in);

/* Waits (at most timeout_ms) for the enriched feed's deliveries in flight. Returns 0
 * when all were delivered, 1 on timeout, -1 when some failed for good (logged). */
int ingest_batch_drain_feed(ingest_t *in, int timeout_ms);

/* Drops the open batch without committing (rebalance while PostgreSQL is down). */
void ingest_batch_drop(ingest_t *in);

/* Retries back off exponentially from 0.1 s to 10 s. */
#define INGEST_BACKOFF_MIN_MS 100
#define INGEST_BACKOFF_MAX_MS 10000

/* The delay after ms: doubled, capped at INGEST_BACKOFF_MAX_MS. */
int64_t ingest_next_backoff(int64_t ms);

/* Sleeps up to ms, returning early when stop is requested. */
void ingest_sleep(int64_t ms);

#endif
