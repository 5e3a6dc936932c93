/* ingest.h — internals shared by the ingest consumer's files: the consumer state,
 * the batches, and the batch pipeline (parse, sessionize, dead-letter, write,
 * publish). The command itself is cmd_ingest (common/commands.h).
 *
 * Two threads share a pipeline's work. Its consumer thread ("the main thread" here and in
 * ingest_batch.c) polls Kafka, parses and enriches the open
 * batch and dead-letters its invalid messages, while the writer thread sessionizes and
 * writes the previous batch to PostgreSQL; the main thread then publishes that batch's
 * enriched events and moves its Kafka offsets. Batches are written strictly in order,
 * one at a time; the sessionizer and the PostgreSQL sink belong to the writer while a
 * batch is in its hands, and to the main thread only when the writer is idle
 * (ingest_batch_sync).
 *
 * A process runs --writers such pipelines (an ingest_t each), all members of the one
 * consumer group: each owns the partitions the group assigns it, with its own
 * sessionizer, PostgreSQL connection and transactions, exactly as separate processes
 * would (a visitor lives in one partition, so sessions never cross pipelines), and the
 * database works on several batches at once. The main thread only supervises them:
 * signals, until-caught-up, the stats line and the gauges. */
#ifndef CONSUMERS_INGEST_H
#define CONSUMERS_INGEST_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
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

/* One consumed message and what became of it. Its key and bytes are copied into the
 * batch's blocks and the librdkafka message is released at once: a held message pins the
 * whole fetch buffer it came in, and two batches spread over many partitions pinned
 * tens of MB that way. */
typedef struct ingest_msg_s {
    rd_kafka_message_t *rkm; /* kept only when the copy could not be made (out of memory) */
    const char *raw;         /* its key, then its bytes, in the batch's blocks */
    size_t key_len, len;
    bool has_key;
    int32_t partition;
    int64_t offset;
    int64_t received_at_ms;
    bool parsed, valid, duplicate, dead;
    tf_event_t event;
    tf_event_reason_t reason; /* why it is invalid (TF_REASON_OK when valid) */
    char *error;              /* the parser's message when invalid (malloc'd) */
    tf_enriched_t enriched;
    char session_id[37];
    char *db_error;          /* PostgreSQL's reason when it rejected the row (bisection) */
    bool id_conflict;        /* its eventId is another visitor's (SINK_PG_CONFLICT) */
} ingest_msg_t;

/* A batch: filled by the main thread, written by the writer, finished by the main thread. */
typedef struct ingest_batch_s {
    ingest_msg_t *msgs; /* batch_size slots */
    size_t n_msgs;
    struct ingest_block_s *blocks; /* the messages' keys and bytes: blocks that never move, */
    struct ingest_block_s *fill;   /* kept for the next batches; fill is the one in use */
    int64_t started_ms;     /* when its first message arrived */
    ingest_msg_t **good;    /* its valid messages, in order (batch_size slots) */
    size_t n_good;
    /* set when it is closed: the next offset of each partition it holds, the eviction
     * watermark after it */
    int32_t partitions[INGEST_MAX_PARTITIONS];
    int64_t next_offsets[INGEST_MAX_PARTITIONS];
    size_t n_offsets;
    int64_t watermark_ms;
    int64_t opened_ns, closed_ns, parsed_ns, handed_ns, written_ns; /* for timings */
    int rc; /* the writer's result: 0 committed, 1 abandoned (stop requested), -1 fatal */
} ingest_batch_t;

typedef struct ingest_partition_s {
    bool assigned;
    int64_t committed; /* next offset stored in PostgreSQL (-1 unknown) */
    int64_t start_high; /* high watermark when the consumer started (until-caught-up) */
    int64_t batch_next; /* next offset after this batch's last message of it (-1 none) */
    int64_t max_event_ms;    /* largest event time read from it since assigned (INT64_MIN none) */
    int64_t last_message_ms; /* when its last message was read (wall clock) */
} ingest_partition_t;

/* A partition that delivered nothing for this long no longer holds the eviction
 * watermark back (it is idle or at its end). */
#define INGEST_IDLE_PARTITION_MS 30000

typedef struct ingest_s {
    /* the pipeline's number: 1..n in its group.instance.id when n > 1, else 0 */
    int pipeline_index;
    int n_pipelines; /* of the process (--writers) */
    pthread_t thread;
    /* set by the supervisor: stop (abandon retries, as SIGTERM did), quit (leave the
     * loop once the current work is done: caught up) */
    _Atomic int stop;
    _Atomic bool quit;
    _Atomic bool finished; /* the pipeline's thread is done; exit_code is its result */
    /* until-caught-up: nothing open or in flight, and every partition it holds committed
     * up to its start watermark (set by the pipeline's loop, read by the supervisor) */
    _Atomic bool caught_up;
    int exit_code;
    /* for the pipeline's own loop (ingest.c) */
    long long config_poll, stats_every;
    const ev_kv_list_t *props;

    /* settings */
    const char *brokers, *database, *topic, *group, *dlq_topic, *enriched_topic;
    /* group.instance.id (static membership), "" for none; see ingest_instance_id. */
    const char *group_instance_id;
    long long batch_size, batch_ms;
    bool until_caught_up;
    tf_settings_t settings;      /* in effect now */
    tf_settings_t settings_base; /* defaults + flags/environment: what tracking_configs overlays */
    unsigned settings_pinned;
    bool settings_unreadable;    /* for logging state changes of the reload */
    bool offsets_fatal;          /* the stored offsets could not be read for good: exit 1 */
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

    /* the batches: the open one (main thread) and the other (writer, or free) */
    ingest_batch_t batches[2];
    ingest_batch_t *open;
    int failed_rc; /* a batch was abandoned (1) or failed (-1): nothing after it is written */

    /* the writer thread and its hand-over slots */
    pthread_t writer;
    bool writer_started, writer_quit;
    pthread_mutex_t w_mu;
    pthread_cond_t w_cond;
    ingest_batch_t *w_job;  /* handed over, being written */
    ingest_batch_t *w_done; /* written (or failed), not yet finished by the main thread */

    ingest_partition_t parts[INGEST_MAX_PARTITIONS];
    size_t prefetch_bytes;  /* queued.max.messages.kbytes in effect, in bytes */
    size_t read_since_wake; /* message bytes read since the fetchers were last woken */
    _Atomic bool ever_assigned; /* also read by the /readyz thread */
    bool assignment_current; /* the group's latest assignment (maybe empty) is in force:
                                false from a revocation until the next assignment */
    int64_t watermark_ms;  /* eviction watermark: the smallest of the active partitions'
                              largest event times, never decreasing */

    /* state-change logging */
    _Atomic bool pg_down; /* also read by the /readyz thread */
    _Atomic bool kafka_down; /* both threads wait for deliveries */
    int64_t pg_down_since_ms;
    _Atomic int64_t kafka_down_since_ms;

    /* counters (also exported as metrics), read by the supervisor */
    _Atomic uint64_t n_consumed, n_batches;
    _Atomic uint64_t n_stored, n_duplicates, n_dead, n_retries;
    _Atomic size_t visitors_held, events_held, session_bytes; /* set after each batch */

    /* metrics handles */
    ev_metric_t *m_consumed, *m_stored, *m_dup, *m_batches, *m_retries_pg, *m_retries_kafka,
        *m_visitors, *m_events_held, *m_session_bytes, *m_fetch_wakes;
    ev_histogram_t *m_batch_seconds;
    sink_pg_stats_t pg_stats_exported; /* what the rows_written counters already hold */
} ingest_t;

/* Allocates the two batches (batch_size messages each) and starts the writer thread.
 * Returns 0, or -1 with errstr. */
int ingest_pipeline_start(ingest_t *in, char *errstr, size_t errstr_size);
/* Stops the writer thread (after the batch in its hands) and drops what was not
 * committed. Safe when never started. */
void ingest_pipeline_stop(ingest_t *in);

/* Appends a polled message to the open batch (takes ownership of rkm). */
void ingest_batch_add(ingest_t *in, rd_kafka_message_t *rkm);

/* Closes the open batch: parses and enriches it, dead-letters its invalid messages
 * (delivery confirmed), waits for the writer to finish the previous batch, hands this
 * one over, then finishes the previous one (enriched feed, Kafka offsets). Returns 0,
 * 1 when a batch was abandoned (stop requested), -1 on a fatal error (the process
 * must stop: e.g. the schema is missing). After a non-zero return nothing more is
 * written: later batches are dropped uncommitted. */
int ingest_batch_flush(ingest_t *in);

/* Flushes the open batch and waits until the writer has finished everything: on 0,
 * every consumed message is committed (rebalance, shutdown, settings changes). The
 * sessionizer and the sink are then the caller's until the next flush. */
int ingest_batch_sync(ingest_t *in);

/* Finishes a batch the writer is done with, without waiting. Returns as flush. */
int ingest_batch_poll(ingest_t *in);

/* True when nothing is open, in the writer's hands or waiting to be finished. */
bool ingest_batch_idle(ingest_t *in);

/* Messages in the open batch. */
size_t ingest_batch_open_count(const ingest_t *in);

/* Waits (at most timeout_ms) for the enriched feed's deliveries in flight. Returns 0
 * when all were delivered, 1 on timeout, -1 when some failed for good (logged). */
int ingest_batch_drain_feed(ingest_t *in, int timeout_ms);

/* Retries back off exponentially from 0.1 s to 10 s. */
#define INGEST_BACKOFF_MIN_MS 100
#define INGEST_BACKOFF_MAX_MS 10000
/* Said with an error of SQLSTATE 42501 (a missing grant; retrying cannot help). */
#define INGEST_GRANT_HINT \
    "make this user a member of evpipe_ingest: docs/operations.md, \"Database roles\""

/* The delay after ms: doubled, capped at INGEST_BACKOFF_MAX_MS. */
int64_t ingest_next_backoff(int64_t ms);

/* Sleeps up to ms, returning early when the pipeline is told to stop. */
void ingest_sleep(ingest_t *in, int64_t ms);

#endif
