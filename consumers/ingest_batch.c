/* ingest_batch.c — the ingest batch pipeline: parse and enrich, dead-letter bad
 * messages (main thread); sessionize, write everything with the offsets in one
 * PostgreSQL transaction, bisecting a batch a row of which the database rejects (writer
 * thread); publish the enriched feed, then move the Kafka offsets (main thread). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "consumers/ingest.h"

void ingest_sleep(ingest_t *in, int64_t ms) {
    while (ms > 0 && !in->stop) {
        int64_t step = ms > 100 ? 100 : ms;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

static ingest_partition_t *partition_of(ingest_t *in, int32_t partition) {
    if (partition < 0 || partition >= INGEST_MAX_PARTITIONS) return NULL;
    return &in->parts[partition];
}

/* The batch's copies of its messages' keys and bytes, in blocks allocated as needed and
 * reused by the next batches (a batch of 4000 typical events needs ~1.7 MB). */
#define INGEST_BLOCK_BYTES (256 * 1024)
typedef struct ingest_block_s {
    struct ingest_block_s *next;
    size_t used, cap;
    char data[];
} ingest_block_t;

/* Copies key and payload next to each other; returns the copy, or NULL when out of memory. */
static const char *batch_copy(ingest_batch_t *b, const void *key, size_t key_len,
                              const void *payload, size_t len) {
    size_t n = key_len + len;
    ingest_block_t *k = b->fill ? b->fill : b->blocks;
    while (k && k->cap - k->used < n) k = k->next; /* skipped space is lost till reset */
    if (!k) {
        size_t cap = n > INGEST_BLOCK_BYTES ? n : INGEST_BLOCK_BYTES;
        k = malloc(sizeof(*k) + cap);
        if (!k) return NULL;
        k->used = 0;
        k->cap = cap;
        k->next = b->blocks;
        b->blocks = k;
    }
    b->fill = k;
    char *at = k->data + k->used;
    if (key_len) memcpy(at, key, key_len);
    if (len) memcpy(at + key_len, payload, len);
    k->used += n;
    return at;
}

static void batch_blocks_reset(ingest_batch_t *b) {
    for (ingest_block_t *k = b->blocks; k; k = k->next) k->used = 0;
    b->fill = NULL;
}

static void batch_blocks_free(ingest_batch_t *b) {
    while (b->blocks) {
        ingest_block_t *k = b->blocks;
        b->blocks = k->next;
        free(k);
    }
    b->fill = NULL;
}

/* The message's bytes (a key when key is true): its copy, or the kept librdkafka message. */
static const char *msg_bytes(const ingest_msg_t *m, bool key) {
    if (m->rkm) {
        if (key) return (const char *)m->rkm->key;
        return m->rkm->payload ? (const char *)m->rkm->payload : "";
    }
    if (key) return m->has_key ? m->raw : NULL;
    return m->raw + m->key_len;
}

void ingest_batch_add(ingest_t *in, rd_kafka_message_t *rkm) {
    ingest_batch_t *b = in->open;
    if (b->n_msgs == 0) {
        b->started_ms = ev_now_ms();
        b->opened_ns = ev_mono_ns();
    }
    ingest_msg_t *m = &b->msgs[b->n_msgs++];
    memset(m, 0, sizeof(*m));
    m->partition = rkm->partition;
    m->offset = rkm->offset;
    m->has_key = rkm->key != NULL;
    m->key_len = rkm->key ? rkm->key_len : 0;
    m->len = rkm->payload ? rkm->len : 0;
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(rkm, &tstype);
    m->received_at_ms = ts >= 0 ? ts : ev_now_ms();
    m->raw = batch_copy(b, rkm->key, m->key_len, rkm->payload, m->len);
    if (m->raw)
        rd_kafka_message_destroy(rkm);
    else
        m->rkm = rkm; /* out of memory: hold the message itself */
    tf_event_init(&m->event);
    tf_enriched_init(&m->enriched);
    ingest_partition_t *p = partition_of(in, m->partition);
    if (p) {
        p->batch_next = m->offset + 1;
        p->last_message_ms = b->started_ms;
    }
    in->n_consumed++;
    ev_metric_add(in->m_consumed, 1);
}

static void msg_release(ingest_msg_t *m) {
    tf_event_reset(&m->event);
    tf_enriched_reset(&m->enriched);
    if (m->rkm) rd_kafka_message_destroy(m->rkm);
    m->rkm = NULL;
    free(m->error);
    m->error = NULL;
    free(m->db_error);
    m->db_error = NULL;
}

static void batch_release(ingest_batch_t *b) {
    for (size_t i = 0; i < b->n_msgs; i++) msg_release(&b->msgs[i]);
    b->n_msgs = 0;
    batch_blocks_reset(b);
    b->n_good = 0;
    b->n_offsets = 0;
}

/* Drops the open batch uncommitted: its messages are consumed again after a restart or
 * by the partitions' next owner. */
static void drop_open(ingest_t *in) {
    if (in->open->n_msgs)
        EV_WARN("open batch of %zu message(s) abandoned; it will be consumed again",
                in->open->n_msgs);
    batch_release(in->open);
    for (int i = 0; i < INGEST_MAX_PARTITIONS; i++) in->parts[i].batch_next = -1;
}

/* ---- state-change logging for outages ---- */

static void pg_state(ingest_t *in, bool down, const char *why) {
    if (down && !in->pg_down) {
        in->pg_down = true;
        in->pg_down_since_ms = ev_now_ms();
        EV_WARN("PostgreSQL unavailable: %s; retrying with backoff", why);
    } else if (!down && in->pg_down) {
        in->pg_down = false;
        EV_INFO("PostgreSQL available again after %.1f s",
                (double)(ev_now_ms() - in->pg_down_since_ms) / 1000.0);
    }
}

/* Both threads wait for deliveries: the exchange makes one of them log each change. */
static void kafka_state(ingest_t *in, bool down, const char *why) {
    if (down) {
        if (!atomic_exchange(&in->kafka_down, true)) {
            in->kafka_down_since_ms = ev_now_ms();
            EV_WARN("Kafka delivery stalled: %s; waiting", why);
        }
    } else if (atomic_exchange(&in->kafka_down, false)) {
        EV_INFO("Kafka deliveries flowing again after %.1f s",
                (double)(ev_now_ms() - in->kafka_down_since_ms) / 1000.0);
    }
}

int64_t ingest_next_backoff(int64_t ms) {
    ms *= 2;
    return ms > INGEST_BACKOFF_MAX_MS ? INGEST_BACKOFF_MAX_MS : ms;
}

/* Waits until everything produced so far is delivered. Returns 0, 1 when stop was
 * requested first, or re-sends nothing itself: -1 when some message failed for good
 * (the caller re-sends). */
static int wait_deliveries(ingest_t *in) {
    for (;;) {
        size_t failed = 0;
        char err[512];
        int rc = sink_kafka_wait(in->producer, 2000, &failed, err, sizeof(err));
        if (rc == 0) {
            kafka_state(in, false, NULL);
            return 0;
        }
        kafka_state(in, true, err);
        if (rc < 0) return -1;
        ev_metric_add(in->m_retries_kafka, 1);
        in->n_retries++;
        if (in->stop) return 1;
    }
}

/* ---- parse, dead letters ---- */

static void parse_all(ingest_t *in, ingest_batch_t *b) {
    for (size_t i = 0; i < b->n_msgs; i++) {
        ingest_msg_t *m = &b->msgs[i];
        if (m->parsed) continue;
        m->parsed = true;
        const char *data = msg_bytes(m, false);
        tf_event_error_t err;
        int rc = tf_event_parse(&m->event, data, m->len, &err);
        while (rc == -2) { /* out of memory is not the message's fault */
            EV_ERROR("out of memory parsing a message; retrying");
            ingest_sleep(in, 1000);
            rc = tf_event_parse(&m->event, data, m->len, &err);
        }
        if (rc != 0) {
            m->reason = err.reason;
            m->error = strdup(err.message); /* NULL (out of memory): the reason code is sent */
        }
        m->valid = rc == 0;
        /* Out of memory is not the message's fault either: retry, never dead-letter. */
        while (m->valid &&
               tf_enrich_cached(&m->event, in->classifier, in->enrich_cache, &m->enriched) != 0) {
            EV_ERROR("out of memory enriching a message; retrying");
            ingest_sleep(in, 1000);
        }
        ingest_partition_t *ip = partition_of(in, m->partition);
        if (ip && m->valid && m->event.timestamp_ms > ip->max_event_ms)
            ip->max_event_ms = m->event.timestamp_ms;
    }
}

/* Event time up to which every active partition has been read (as Kafka Streams and Flink
 * combine per-partition watermarks): partitions are consumed at uneven speeds, and the
 * largest time seen anywhere would evict visitors of a lagging partition that are still
 * active there, only to load them back a few batches later. */
static int64_t eviction_watermark(ingest_t *in) {
    int64_t now = ev_now_ms(), low = INT64_MAX, high = INT64_MIN;
    for (int p = 0; p < INGEST_MAX_PARTITIONS; p++) {
        const ingest_partition_t *ip = &in->parts[p];
        if (!ip->assigned || ip->max_event_ms == INT64_MIN) continue;
        if (ip->max_event_ms > high) high = ip->max_event_ms;
        if (now - ip->last_message_ms <= INGEST_IDLE_PARTITION_MS && ip->max_event_ms < low)
            low = ip->max_event_ms;
    }
    int64_t wm = low != INT64_MAX ? low : high;
    if (wm > in->watermark_ms) in->watermark_ms = wm;
    return in->watermark_ms;
}

/* Enqueues one dead letter: original key and bytes, headers with the reason. */
static int send_dead_letter(ingest_t *in, ingest_msg_t *m, const char *code, const char *msg) {
    char part[16], off[24];
    snprintf(part, sizeof(part), "%d", (int)m->partition);
    snprintf(off, sizeof(off), "%lld", (long long)m->offset);
    const char *headers[] = {"evpipe.reason",          code,
                             "evpipe.error",           msg,
                             "evpipe.source.topic",    in->topic,
                             "evpipe.source.partition", part,
                             "evpipe.source.offset",   off,
                             NULL};
    char err[256];
    if (sink_kafka_send(in->producer, in->dlq_topic, msg_bytes(m, true), m->key_len,
                        msg_bytes(m, false), m->len, headers, err, sizeof(err)) != 0) {
        EV_ERROR("dead letter for %s [%d] @%lld: %s", in->topic, (int)m->partition,
                 (long long)m->offset, err);
        return -1;
    }
    return 0;
}

#define ID_CONFLICT_CODE "event_id_conflict"
#define ID_CONFLICT_TEXT "eventId: already stored, or earlier in the batch, for another visitor"

/* The evpipe.reason of a dead message. */
static const char *dead_letter_code(const ingest_msg_t *m) {
    if (m->id_conflict) return ID_CONFLICT_CODE;
    if (m->db_error) return "db_rejected";
    return m->reason == TF_REASON_OK ? "internal" : tf_event_reason_code(m->reason);
}

/* Sends the dead letters of msgs (those with dead set and not yet confirmed) and waits
 * for their delivery. Returns 0, or 1 when stop was requested. */
static int deliver_dead_letters(ingest_t *in, ingest_msg_t **list, size_t n) {
    if (n == 0) return 0;
    for (;;) {
        for (size_t i = 0; i < n; i++) {
            ingest_msg_t *m = list[i];
            const char *code = dead_letter_code(m), *text;
            if (m->id_conflict)
                text = ID_CONFLICT_TEXT;
            else if (m->db_error)
                text = m->db_error;
            else
                text = m->error ? m->error : code;
            while (send_dead_letter(in, m, code, text) != 0) {
                if (in->stop) return 1;
                ingest_sleep(in, 1000);
            }
        }
        int rc = wait_deliveries(in);
        if (rc == 0) break;
        if (rc == 1) return 1;
        /* some failed for good: send the whole set again (at-least-once) */
    }
    for (size_t i = 0; i < n; i++) {
        ingest_msg_t *m = list[i];
        char labels[96];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", dead_letter_code(m));
        ev_metric_add(ev_metrics_counter(in->metrics, "dlq_messages_total",
                                         "Messages sent to the dead-letter topic, by reason",
                                         labels),
                      1);
        in->n_dead++;
    }
    return 0;
}

/* ---- sessionize + write ---- */

static void sess_event_of(const ingest_msg_t *m, uint64_t cookie, tf_sess_event_t *se) {
    const tf_event_t *ev = &m->event;
    memset(se, 0, sizeof(*se));
    se->visitor_id = ev->visitor_id;
    se->event_id = ev->event_id;
    se->ts_ms = ev->timestamp_ms;
    se->type = ev->type;
    se->user_id = ev->user_id;
    se->path = m->enriched.path;
    se->campaign_key = m->enriched.campaign_key;
    se->page_view_id = ev->page_view_id;
    se->has_time_on_page = ev->has_time_on_page;
    se->time_on_page = ev->time_on_page;
    se->scroll_depth = ev->scroll_depth;
    se->context = &m->enriched.context;
    se->cookie = cookie;
}

static size_t repointed(const tf_sess_changes_t *changes) {
    size_t n = 0;
    for (size_t i = 0; i < changes->n_assigns; i++) n += !changes->assigns[i].is_new;
    return n;
}

/* One attempt at writing the given messages (all valid) in one transaction, with
 * the batch's offsets when with_offsets. Returns the sink status; on SINK_PG_CONFLICT
 * the refused messages have id_conflict set. */
static sink_pg_status_t write_once(ingest_t *in, const ingest_batch_t *b, ingest_msg_t **list,
                                   size_t n, bool with_offsets, sink_pg_error_t *err) {
    memset(err, 0, sizeof(*err));
    sink_pg_event_row_t *rows = n ? calloc(n, sizeof(*rows)) : NULL;
    bool *conflicts = n ? calloc(n, sizeof(*conflicts)) : NULL;
    if (n && (!rows || !conflicts)) {
        err->status = SINK_PG_TRANSIENT;
        snprintf(err->message, sizeof(err->message), "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        tf_sess_event_t se;
        sess_event_of(list[i], i, &se);
        rows[i].event = &list[i]->event;
        rows[i].path = list[i]->enriched.path;
        rows[i].received_at_ms = list[i]->received_at_ms;
        if (tf_sessionizer_add(in->sessionizer, &se) != 0) {
            tf_sessionizer_abort(in->sessionizer);
            err->status = SINK_PG_TRANSIENT;
            snprintf(err->message, sizeof(err->message), "out of memory in the sessionizer");
            goto done;
        }
    }
    size_t n_req = 0;
    int64_t t0 = ev_mono_ns();
    const tf_sess_load_request_t *reqs = tf_sessionizer_load_requests(in->sessionizer, &n_req);
    if (!reqs) {
        tf_sessionizer_abort(in->sessionizer);
        err->status = SINK_PG_TRANSIENT; /* out of memory: retry the batch later */
        snprintf(err->message, sizeof(err->message), "out of memory in the sessionizer");
        goto done;
    }
    if (n_req && sink_pg_load(in->pg, in->sessionizer, reqs, n_req, err) != 0) {
        tf_sessionizer_abort(in->sessionizer);
        goto done;
    }
    int64_t t_load = ev_mono_ns();
    tf_sess_changes_t changes;
    if (tf_sessionizer_flush(in->sessionizer, &changes) != 0) {
        /* Out of memory (the batch is dropped inside): retry it later. */
        tf_sessionizer_abort(in->sessionizer);
        err->status = SINK_PG_TRANSIENT;
        snprintf(err->message, sizeof(err->message), "out of memory in the sessionizer");
        goto done;
    }
    sink_pg_batch_t batch = {
        .events = rows,
        .n_events = n,
        .changes = &changes,
        .conversion_types = in->session_cfg.conversion_types,
        .group = in->group,
        .topic = in->topic,
        .partitions = b->partitions,
        .next_offsets = b->next_offsets,
        .n_offsets = with_offsets ? b->n_offsets : 0,
        .conflicts = conflicts,
    };
    int64_t t_flush = ev_mono_ns();
    if (sink_pg_write(in->pg, &batch, err) != 0) {
        /* The sessionizer holds the refused events too: it forgets the touched visitors,
         * which the next attempt loads again. */
        tf_sessionizer_abort(in->sessionizer);
        if (err->status == SINK_PG_CONFLICT)
            for (size_t i = 0; i < n; i++) list[i]->id_conflict = conflicts[i];
        goto done;
    }
    EV_DEBUG("  %zu events: load %zu visitors %.1f ms, sessionize %.1f ms, write %.1f ms "
             "(%zu sessions, %zu re-pointed)",
             n, n_req, (double)(t_load - t0) / 1e6, (double)(t_flush - t_load) / 1e6,
             (double)(ev_mono_ns() - t_flush) / 1e6, changes.n_upserts, repointed(&changes));
    /* Committed: remember each new event's session for the enriched feed. */
    for (size_t i = 0; i < n; i++) list[i]->duplicate = true;
    for (size_t a = 0; a < changes.n_assigns; a++) {
        const tf_sess_assign_t *as = &changes.assigns[a];
        if (!as->is_new || as->cookie >= n) continue;
        memcpy(list[as->cookie]->session_id, as->session_id, 37);
        list[as->cookie]->duplicate = false;
    }
    tf_sessionizer_commit(in->sessionizer);
done:
    free(rows);
    free(conflicts);
    return err->status;
}

/* Dead-letters the messages of list the sink refused for an eventId of another visitor
 * (id_conflict) and moves them behind the others, keeping both groups in order (the
 * pointers stay in list). Returns 0 with *kept the number of the others, 1 when stop was
 * requested, -1 when none was flagged (a sink bug: retrying would loop). */
static int drop_conflicts(ingest_t *in, ingest_msg_t **list, size_t n, size_t *kept) {
    ingest_msg_t **refused = malloc((n ? n : 1) * sizeof(*refused));
    while (!refused) { /* out of memory: wait, never drop */
        if (in->stop) return 1;
        EV_ERROR("out of memory dead-lettering eventId conflicts; retrying");
        ingest_sleep(in, 1000);
        refused = malloc((n ? n : 1) * sizeof(*refused));
    }
    size_t k = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        if (list[i]->id_conflict)
            refused[r++] = list[i];
        else
            list[k++] = list[i];
    }
    memcpy(list + k, refused, r * sizeof(*refused));
    int rc = -1;
    if (r == 0) {
        EV_ERROR("PostgreSQL sink reported an eventId conflict without naming an event; "
                 "stopping");
        goto done;
    }
    for (size_t i = 0; i < r; i++) {
        ingest_msg_t *m = list[k + i];
        m->dead = true;
        EV_WARN("event %s from %s [%d] @%lld: eventId already stored, or earlier in the "
                "batch, for another visitor; dead-lettering it",
                m->event.event_id, in->topic, (int)m->partition, (long long)m->offset);
    }
    rc = deliver_dead_letters(in, list + k, r);
    *kept = k;
done:
    free(refused);
    return rc;
}

/* Writes list with retries of transient failures. On a data error, bisects down to
 * the rejected messages, which are marked dead with the database's error; messages whose
 * eventId is another visitor's are dead-lettered and the rest written again. Offsets
 * are written with the final transaction when with_offsets. Returns 0, 1 when
 * abandoned (stop requested), -1 fatal. */
static int write_with_retry(ingest_t *in, const ingest_batch_t *b, ingest_msg_t **list, size_t n,
                            bool with_offsets) {
    int64_t backoff = INGEST_BACKOFF_MIN_MS;
    for (;;) {
        sink_pg_error_t err;
        sink_pg_status_t st = write_once(in, b, list, n, with_offsets, &err);
        if (st == SINK_PG_OK) {
            pg_state(in, false, NULL);
            return 0;
        }
        if (st == SINK_PG_FATAL) {
            bool refused = strcmp(err.sqlstate, "42501") == 0;
            EV_ERROR("PostgreSQL: %s (SQLSTATE %s%s%s); stopping", err.message, err.sqlstate,
                     refused ? "; " : "", refused ? INGEST_GRANT_HINT : "");
            return -1;
        }
        if (st == SINK_PG_CONFLICT) {
            pg_state(in, false, NULL);
            size_t kept = 0;
            int rc = drop_conflicts(in, list, n, &kept);
            if (rc) return rc;
            return write_with_retry(in, b, list, kept, with_offsets);
        }
        if (st == SINK_PG_TRANSIENT) {
            pg_state(in, true, err.message);
            ev_metric_add(in->m_retries_pg, 1);
            in->n_retries++;
            if (in->stop) return 1;
            ingest_sleep(in, backoff);
            backoff = ingest_next_backoff(backoff);
            continue;
        }
        /* SINK_PG_DATA: some row is rejected. */
        pg_state(in, false, NULL);
        if (n == 1) {
            char reason[600];
            snprintf(reason, sizeof(reason), "%s (SQLSTATE %s)", err.message, err.sqlstate);
            free(list[0]->db_error);
            list[0]->db_error = strdup(reason);
            if (!list[0]->db_error) { /* out of memory: try the row again */
                ingest_sleep(in, backoff);
                backoff = ingest_next_backoff(backoff);
                continue;
            }
            list[0]->dead = true;
            EV_WARN("PostgreSQL rejected event %s from %s [%d] @%lld: %s; dead-lettering it",
                    list[0]->event.event_id, in->topic, (int)list[0]->partition,
                    (long long)list[0]->offset,
                    list[0]->db_error);
            int rc = deliver_dead_letters(in, list, 1);
            if (rc) return rc;
            return with_offsets ? write_with_retry(in, b, NULL, 0, true) : 0;
        }
        if (n == 0) {
            EV_ERROR("PostgreSQL rejected the offsets write: %s; stopping", err.message);
            return -1;
        }
        EV_INFO("PostgreSQL rejected a batch of %zu (%s); bisecting", n, err.message);
        size_t half = n / 2;
        int rc = write_with_retry(in, b, list, half, false);
        if (rc) return rc;
        rc = write_with_retry(in, b, list + half, n - half, false);
        if (rc) return rc;
        return with_offsets ? write_with_retry(in, b, NULL, 0, true) : 0;
    }
}

/* Publishes the enriched events of the committed batch. Delivery is not awaited here
 * (the producer retries in the background, and the feed is at-least-once anyway):
 * waiting per batch would stall ingest for a broker round trip. Deliveries are
 * drained on revoke and shutdown (ingest_batch_drain_feed). Returns 0, or 1 when
 * stop was requested while the local queue was full. */
static int publish_enriched(ingest_t *in, ingest_msg_t **list, size_t n) {
    if (!in->enriched_topic || !*in->enriched_topic) return 0;
    for (size_t i = 0; i < n; i++) {
        ingest_msg_t *m = list[i];
        if (m->dead || m->duplicate || !m->session_id[0]) continue;
        size_t len = 0;
        char *json = tf_enriched_json(&m->event, &m->enriched, m->session_id, &len);
        char err[256];
        while (!json || sink_kafka_send(in->producer, in->enriched_topic, m->event.visitor_id,
                                        strlen(m->event.visitor_id), json, len, NULL, err,
                                        sizeof(err)) != 0) {
            if (in->stop) {
                free(json);
                return 1;
            }
            ingest_sleep(in, 500);
            if (!json) json = tf_enriched_json(&m->event, &m->enriched, m->session_id, &len);
        }
        free(json);
    }
    /* Serve delivery reports without blocking; report what failed for good. */
    size_t failed = 0;
    char err[512];
    if (sink_kafka_wait(in->producer, 0, &failed, err, sizeof(err)) < 0)
        EV_ERROR("enriched feed: %s", err);
    return 0;
}

int ingest_batch_drain_feed(ingest_t *in, int timeout_ms) {
    int64_t deadline = ev_now_ms() + timeout_ms;
    for (;;) {
        size_t failed = 0;
        char err[512];
        int rc = sink_kafka_wait(in->producer, 1000, &failed, err, sizeof(err));
        if (rc < 0) EV_ERROR("enriched feed: %s", err);
        if (rc <= 0) return rc;
        if (ev_now_ms() >= deadline) {
            EV_WARN("enriched feed: %s; giving up waiting", err);
            return 1;
        }
    }
}

/* Adds the sink's new row counts to the rows_written_total{table} counters. */
static void export_pg_stats(ingest_t *in) {
    sink_pg_stats_t now;
    sink_pg_stats(in->pg, &now);
    sink_pg_stats_t *was = &in->pg_stats_exported;
    static const char help[] = "Rows written to PostgreSQL, by table and operation";
    struct {
        const char *labels;
        uint64_t delta;
    } rows[] = {
        {"table=\"analytics_sessions\",op=\"upsert\"", now.sessions_upserted - was->sessions_upserted},
        {"table=\"analytics_sessions\",op=\"delete\"", now.sessions_deleted - was->sessions_deleted},
        {"table=\"analytics_events\",op=\"insert\"", now.events_inserted - was->events_inserted},
        {"table=\"analytics_events\",op=\"repoint\"", now.events_repointed - was->events_repointed},
        {"table=\"page_views\",op=\"upsert\"", now.page_views_written - was->page_views_written},
        {"table=\"conversion_events\",op=\"insert\"", now.conversions_inserted - was->conversions_inserted},
        {"table=\"consumer_offsets\",op=\"upsert\"", now.offsets_written - was->offsets_written},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        ev_metric_add(ev_metrics_counter(in->metrics, "rows_written_total", help, rows[i].labels),
                      (double)rows[i].delta);
    *was = now;
}

static void commit_kafka_offsets(ingest_t *in, const ingest_batch_t *b) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < b->n_offsets; i++) {
        ingest_partition_t *ip = &in->parts[b->partitions[i]];
        ip->committed = b->next_offsets[i];
        if (ip->assigned)
            rd_kafka_topic_partition_list_add(list, in->topic, b->partitions[i])->offset =
                b->next_offsets[i];
    }
    /* For lag tools only: PostgreSQL holds the offsets that count. */
    if (list->cnt > 0) rd_kafka_commit(in->consumer, list, 1);
    rd_kafka_topic_partition_list_destroy(list);
}

/* ---- the writer thread ---- */

/* Sessionizes and writes one batch with its offsets, then evicts idle visitors (writer
 * thread). Returns 0, 1 when abandoned, -1 fatal. */
static int write_batch(ingest_t *in, ingest_batch_t *b) {
    int rc = write_with_retry(in, b, b->good, b->n_good, true);
    if (rc) return rc;
    /* Counted here, with the rows written, so that the metrics agree at any instant. */
    uint64_t dups = 0, stored = 0;
    for (size_t i = 0; i < b->n_good; i++) {
        if (b->good[i]->dead) continue;
        if (b->good[i]->duplicate)
            dups++;
        else
            stored++;
    }
    in->n_duplicates += dups;
    in->n_stored += stored;
    ev_metric_add(in->m_dup, (double)dups);
    ev_metric_add(in->m_stored, (double)stored);
    export_pg_stats(in);
    tf_sessionizer_evict(in->sessionizer, b->watermark_ms);
    in->visitors_held = tf_sessionizer_visitor_count(in->sessionizer);
    in->events_held = tf_sessionizer_event_count(in->sessionizer);
    in->session_bytes = tf_sessionizer_memory_bytes(in->sessionizer);
    return 0;
}

static void *writer_main(void *arg) {
    ingest_t *in = arg;
    pthread_mutex_lock(&in->w_mu);
    for (;;) {
        while (!in->w_job && !in->writer_quit) pthread_cond_wait(&in->w_cond, &in->w_mu);
        ingest_batch_t *b = in->w_job;
        if (!b) break;
        pthread_mutex_unlock(&in->w_mu);
        b->rc = write_batch(in, b);
        b->written_ns = ev_mono_ns();
        pthread_mutex_lock(&in->w_mu);
        in->w_job = NULL;
        in->w_done = b;
        pthread_cond_broadcast(&in->w_cond);
    }
    pthread_mutex_unlock(&in->w_mu);
    return NULL;
}

int ingest_pipeline_start(ingest_t *in, char *errstr, size_t errstr_size) {
    for (int k = 0; k < 2; k++) {
        ingest_batch_t *b = &in->batches[k];
        b->msgs = calloc((size_t)in->batch_size, sizeof(*b->msgs));
        b->good = calloc((size_t)in->batch_size, sizeof(*b->good));
        if (!b->msgs || !b->good) {
            snprintf(errstr, errstr_size, "out of memory for batches of %lld", in->batch_size);
            return -1;
        }
    }
    in->open = &in->batches[0];
    if (pthread_mutex_init(&in->w_mu, NULL) != 0 || pthread_cond_init(&in->w_cond, NULL) != 0) {
        snprintf(errstr, errstr_size, "cannot create the writer's lock");
        return -1;
    }
    /* Signals are the main thread's: the writer starts with them blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = pthread_create(&in->writer, NULL, writer_main, in);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        snprintf(errstr, errstr_size, "cannot start the writer thread: %s", strerror(err));
        pthread_cond_destroy(&in->w_cond);
        pthread_mutex_destroy(&in->w_mu);
        return -1;
    }
    in->writer_started = true;
    return 0;
}

void ingest_pipeline_stop(ingest_t *in) {
    if (in->writer_started) {
        pthread_mutex_lock(&in->w_mu);
        in->writer_quit = true;
        pthread_cond_broadcast(&in->w_cond);
        pthread_mutex_unlock(&in->w_mu);
        pthread_join(in->writer, NULL);
        pthread_cond_destroy(&in->w_cond);
        pthread_mutex_destroy(&in->w_mu);
        in->writer_started = false;
    }
    for (int k = 0; k < 2; k++) { /* messages first: they belong to the consumer */
        batch_release(&in->batches[k]);
        free(in->batches[k].msgs);
        free(in->batches[k].good);
        batch_blocks_free(&in->batches[k]);
        in->batches[k].msgs = NULL;
        in->batches[k].good = NULL;
    }
}

/* ---- the main thread's side ---- */

/* Finishes a batch the writer is done with: when committed, publishes its enriched
 * events, counts it and moves its Kafka offsets; then frees its messages. */
static int finish(ingest_t *in, ingest_batch_t *b) {
    int rc = b->rc;
    if (rc != 0) {
        if (!in->failed_rc) in->failed_rc = rc;
        EV_WARN("batch of %zu message(s) not committed; it will be consumed again", b->n_msgs);
        batch_release(b);
        return rc;
    }
    int64_t t_feed = ev_mono_ns();
    if (publish_enriched(in, b->good, b->n_good) == 1)
        /* Stored and committed, but the enriched feed could not be confirmed before
         * shutdown: say so, nothing in PostgreSQL is lost. */
        EV_WARN("shutdown before the enriched events of the last batch were confirmed");
    int64_t t_end = ev_mono_ns();
    EV_DEBUG("batch of %zu: polled in %.1f ms, parse+enrich %.1f ms, dead letters and wait "
             "for the writer %.1f ms, PostgreSQL %.1f ms, enriched feed %.1f ms",
             b->n_msgs, (double)(b->closed_ns - b->opened_ns) / 1e6,
             (double)(b->parsed_ns - b->closed_ns) / 1e6,
             (double)(b->handed_ns - b->parsed_ns) / 1e6,
             (double)(b->written_ns - b->handed_ns) / 1e6, (double)(t_end - t_feed) / 1e6);
    commit_kafka_offsets(in, b);
    in->n_batches++;
    ev_metric_add(in->m_batches, 1);
    ev_histogram_observe(in->m_batch_seconds, (double)(t_end - b->closed_ns) / 1e9);
    batch_release(b);
    return 0;
}

/* Takes the batch the writer finished, if any (waiting for it when wait). */
static ingest_batch_t *take_done(ingest_t *in, bool wait) {
    pthread_mutex_lock(&in->w_mu);
    while (wait && in->w_job) pthread_cond_wait(&in->w_cond, &in->w_mu);
    ingest_batch_t *b = in->w_done;
    in->w_done = NULL;
    pthread_mutex_unlock(&in->w_mu);
    return b;
}

int ingest_batch_flush(ingest_t *in) {
    ingest_batch_t *b = in->open;
    if (in->failed_rc) {
        drop_open(in);
        return in->failed_rc;
    }
    if (b->n_msgs == 0) return 0;
    b->closed_ns = ev_mono_ns();
    parse_all(in, b);
    b->parsed_ns = ev_mono_ns();
    ingest_msg_t **bad = malloc(b->n_msgs * sizeof(*bad));
    if (!bad) {
        EV_ERROR("out of memory for a batch of %zu", b->n_msgs);
        in->failed_rc = 1;
        drop_open(in);
        return 1;
    }
    size_t n_bad = 0;
    b->n_good = 0;
    for (size_t i = 0; i < b->n_msgs; i++) {
        ingest_msg_t *m = &b->msgs[i];
        if (m->valid)
            b->good[b->n_good++] = m;
        else
            m->dead = true, bad[n_bad++] = m;
    }
    /* Dead letters first: their delivery is confirmed before any offset moves. */
    int rc = deliver_dead_letters(in, bad, n_bad);
    free(bad);
    if (rc) {
        in->failed_rc = rc;
        drop_open(in);
        return rc;
    }
    b->n_offsets = 0;
    for (int p = 0; p < INGEST_MAX_PARTITIONS; p++) {
        if (in->parts[p].batch_next < 0) continue;
        b->partitions[b->n_offsets] = p;
        b->next_offsets[b->n_offsets++] = in->parts[p].batch_next;
        in->parts[p].batch_next = -1;
    }
    b->watermark_ms = eviction_watermark(in);

    /* Batches are written in order: the previous one must be committed before this one
     * goes (its offsets cover the previous one's messages). */
    ingest_batch_t *prev = take_done(in, true);
    if (prev && prev->rc != 0) {
        rc = finish(in, prev);
        drop_open(in);
        return rc;
    }
    b->handed_ns = ev_mono_ns();
    pthread_mutex_lock(&in->w_mu);
    in->w_job = b;
    pthread_cond_broadcast(&in->w_cond);
    pthread_mutex_unlock(&in->w_mu);
    /* The previous batch's feed and Kafka offsets while the writer works on this one. */
    in->open = b == &in->batches[0] ? &in->batches[1] : &in->batches[0];
    return prev ? finish(in, prev) : 0;
}

int ingest_batch_sync(ingest_t *in) {
    int rc = ingest_batch_flush(in);
    ingest_batch_t *last = take_done(in, true);
    int rc2 = last ? finish(in, last) : 0;
    return rc ? rc : rc2;
}

int ingest_batch_poll(ingest_t *in) {
    ingest_batch_t *b = take_done(in, false);
    return b ? finish(in, b) : 0;
}

bool ingest_batch_idle(ingest_t *in) {
    if (in->open->n_msgs) return false;
    pthread_mutex_lock(&in->w_mu);
    bool idle = !in->w_job && !in->w_done;
    pthread_mutex_unlock(&in->w_mu);
    return idle;
}

size_t ingest_batch_open_count(const ingest_t *in) { return in->open->n_msgs; }
