/* ingest_batch.c — the ingest batch pipeline: parse and enrich, dead-letter bad
 * messages, sessionize, write everything with the offsets in one PostgreSQL
 * transaction (bisecting a batch a row of which the database rejects), publish the
 * enriched feed, then move the Kafka offsets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "consumers/ingest.h"

volatile sig_atomic_t ingest_stop_requested;


void ingest_sleep(int64_t ms) {
    while (ms > 0 && !ingest_stop_requested) {
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

void ingest_batch_add(ingest_t *in, rd_kafka_message_t *rkm) {
    if (in->n_msgs == 0) in->batch_started_ms = ev_now_ms();
    ingest_msg_t *m = &in->msgs[in->n_msgs++];
    memset(m, 0, sizeof(*m));
    m->rkm = rkm;
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(rkm, &tstype);
    m->received_at_ms = ts >= 0 ? ts : ev_now_ms();
    tf_event_init(&m->event);
    tf_enriched_init(&m->enriched);
    ingest_partition_t *p = partition_of(in, rkm->partition);
    if (p) p->batch_next = rkm->offset + 1;
    in->n_consumed++;
    ev_metric_add(in->m_consumed, 1);
}

static void msg_release(ingest_msg_t *m) {
    tf_event_reset(&m->event);
    tf_enriched_reset(&m->enriched);
    if (m->rkm) rd_kafka_message_destroy(m->rkm);
    m->rkm = NULL;
}

void ingest_batch_drop(ingest_t *in) {
    for (size_t i = 0; i < in->n_msgs; i++) msg_release(&in->msgs[i]);
    in->n_msgs = 0;
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

static void kafka_state(ingest_t *in, bool down, const char *why) {
    if (down && !in->kafka_down) {
        in->kafka_down = true;
        in->kafka_down_since_ms = ev_now_ms();
        EV_WARN("Kafka delivery stalled: %s; waiting", why);
    } else if (!down && in->kafka_down) {
        in->kafka_down = false;
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
        if (ingest_stop_requested) return 1;
    }
}

/* ---- parse, dead letters ---- */

static void parse_all(ingest_t *in) {
    for (size_t i = 0; i < in->n_msgs; i++) {
        ingest_msg_t *m = &in->msgs[i];
        if (m->parsed) continue;
        m->parsed = true;
        const char *data = m->rkm->payload ? (const char *)m->rkm->payload : "";
        int rc = tf_event_parse(&m->event, data, m->rkm->payload ? m->rkm->len : 0, &m->error);
        while (rc == -2) { /* out of memory is not the message's fault */
            EV_ERROR("out of memory parsing a message; retrying");
            ingest_sleep(1000);
            rc = tf_event_parse(&m->event, data, m->rkm->len, &m->error);
        }
        m->valid = rc == 0;
        /* Out of memory is not the message's fault either: retry, never dead-letter. */
        while (m->valid &&
               tf_enrich_cached(&m->event, in->classifier, in->enrich_cache, &m->enriched) != 0) {
            EV_ERROR("out of memory enriching a message; retrying");
            ingest_sleep(1000);
        }
        if (m->valid && m->event.timestamp_ms > in->watermark_ms)
            in->watermark_ms = m->event.timestamp_ms;
    }
}

/* Enqueues one dead letter: original key and bytes, headers with the reason. */
static int send_dead_letter(ingest_t *in, ingest_msg_t *m, const char *code, const char *msg) {
    char part[16], off[24];
    snprintf(part, sizeof(part), "%d", (int)m->rkm->partition);
    snprintf(off, sizeof(off), "%lld", (long long)m->rkm->offset);
    const char *headers[] = {"evpipe.reason",          code,
                             "evpipe.error",           msg,
                             "evpipe.source.topic",    rd_kafka_topic_name(m->rkm->rkt),
                             "evpipe.source.partition", part,
                             "evpipe.source.offset",   off,
                             NULL};
    char err[256];
    if (sink_kafka_send(in->producer, in->dlq_topic, m->rkm->key, m->rkm->key_len,
                        m->rkm->payload, m->rkm->len, headers, err, sizeof(err)) != 0) {
        EV_ERROR("dead letter for %s [%d] @%lld: %s", rd_kafka_topic_name(m->rkm->rkt),
                 (int)m->rkm->partition, (long long)m->rkm->offset, err);
        return -1;
    }
    return 0;
}

/* Sends the dead letters of msgs (those with dead set and not yet confirmed) and waits
 * for their delivery. Returns 0, or 1 when stop was requested. */
static int deliver_dead_letters(ingest_t *in, ingest_msg_t **list, size_t n) {
    if (n == 0) return 0;
    for (;;) {
        for (size_t i = 0; i < n; i++) {
            ingest_msg_t *m = list[i];
            const char *code, *text;
            if (m->db_error[0]) {
                code = "db_rejected";
                text = m->db_error;
            } else {
                code = m->error.reason == TF_REASON_OK ? "internal"
                                                       : tf_event_reason_code(m->error.reason);
                text = m->error.message;
            }
            while (send_dead_letter(in, m, code, text) != 0) {
                if (ingest_stop_requested) return 1;
                ingest_sleep(1000);
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
        snprintf(labels, sizeof(labels), "reason=\"%s\"",
                 m->db_error[0] ? "db_rejected" : tf_event_reason_code(m->error.reason));
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
 * the batch's offsets when with_offsets. Returns the sink status. */
static sink_pg_status_t write_once(ingest_t *in, ingest_msg_t **list, size_t n, bool with_offsets,
                                   sink_pg_error_t *err) {
    memset(err, 0, sizeof(*err));
    sink_pg_event_row_t *rows = n ? calloc(n, sizeof(*rows)) : NULL;
    int32_t partitions[INGEST_MAX_PARTITIONS];
    int64_t offsets[INGEST_MAX_PARTITIONS];
    size_t n_offsets = 0;
    if (n && !rows) {
        err->status = SINK_PG_TRANSIENT;
        snprintf(err->message, sizeof(err->message), "out of memory");
        return err->status;
    }
    for (size_t i = 0; i < n; i++) {
        tf_sess_event_t se;
        sess_event_of(list[i], i, &se);
        rows[i].event = &list[i]->event;
        rows[i].path = list[i]->enriched.path;
        rows[i].received_at_ms = list[i]->received_at_ms;
        if (tf_sessionizer_add(in->sessionizer, &se) != 0) {
            tf_sessionizer_abort(in->sessionizer);
            free(rows);
            err->status = SINK_PG_TRANSIENT;
            snprintf(err->message, sizeof(err->message), "out of memory in the sessionizer");
            return err->status;
        }
    }
    size_t n_req = 0;
    int64_t t0 = ev_mono_ns();
    const tf_sess_load_request_t *reqs = tf_sessionizer_load_requests(in->sessionizer, &n_req);
    if (!reqs) {
        tf_sessionizer_abort(in->sessionizer);
        free(rows);
        err->status = SINK_PG_TRANSIENT; /* out of memory: retry the batch later */
        snprintf(err->message, sizeof(err->message), "out of memory in the sessionizer");
        return err->status;
    }
    if (n_req && sink_pg_load(in->pg, in->sessionizer, reqs, n_req, err) != 0) {
        tf_sessionizer_abort(in->sessionizer);
        free(rows);
        return err->status;
    }
    int64_t t_load = ev_mono_ns();
    tf_sess_changes_t changes;
    if (tf_sessionizer_flush(in->sessionizer, &changes) != 0) {
        /* Out of memory (the batch is dropped inside): retry it later. */
        tf_sessionizer_abort(in->sessionizer);
        free(rows);
        err->status = SINK_PG_TRANSIENT;
        snprintf(err->message, sizeof(err->message), "out of memory in the sessionizer");
        return err->status;
    }
    if (with_offsets)
        for (int p = 0; p < INGEST_MAX_PARTITIONS; p++)
            if (in->parts[p].batch_next >= 0) {
                partitions[n_offsets] = p;
                offsets[n_offsets++] = in->parts[p].batch_next;
            }
    sink_pg_batch_t batch = {
        .events = rows,
        .n_events = n,
        .changes = &changes,
        .conversion_types = in->session_cfg.conversion_types,
        .group = in->group,
        .topic = in->topic,
        .partitions = partitions,
        .next_offsets = offsets,
        .n_offsets = n_offsets,
    };
    int64_t t_flush = ev_mono_ns();
    if (sink_pg_write(in->pg, &batch, err) != 0) {
        tf_sessionizer_abort(in->sessionizer);
        free(rows);
        return err->status;
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
    for (size_t i = 0; i < n; i++) {
        if (list[i]->duplicate) {
            in->n_duplicates++;
            ev_metric_add(in->m_dup, 1);
        } else {
            in->n_stored++;
            ev_metric_add(in->m_stored, 1);
        }
    }
    tf_sessionizer_commit(in->sessionizer);
    free(rows);
    return SINK_PG_OK;
}

/* Writes list with retries of transient failures. On a data error, bisects down to
 * the rejected messages, which are marked dead with the database's error. Offsets
 * are written with the final transaction when with_offsets. Returns 0, 1 when
 * abandoned (stop requested), -1 fatal. */
static int write_with_retry(ingest_t *in, ingest_msg_t **list, size_t n, bool with_offsets) {
    int64_t backoff = INGEST_BACKOFF_MIN_MS;
    for (;;) {
        sink_pg_error_t err;
        sink_pg_status_t st = write_once(in, list, n, with_offsets, &err);
        if (st == SINK_PG_OK) {
            pg_state(in, false, NULL);
            return 0;
        }
        if (st == SINK_PG_FATAL) {
            EV_ERROR("PostgreSQL: %s (SQLSTATE %s); stopping", err.message, err.sqlstate);
            return -1;
        }
        if (st == SINK_PG_TRANSIENT) {
            pg_state(in, true, err.message);
            ev_metric_add(in->m_retries_pg, 1);
            in->n_retries++;
            if (ingest_stop_requested) return 1;
            ingest_sleep(backoff);
            backoff = ingest_next_backoff(backoff);
            continue;
        }
        /* SINK_PG_DATA: some row is rejected. */
        pg_state(in, false, NULL);
        if (n == 1) {
            snprintf(list[0]->db_error, sizeof(list[0]->db_error), "%s (SQLSTATE %s)",
                     err.message, err.sqlstate);
            list[0]->dead = true;
            EV_WARN("PostgreSQL rejected event %s from %s [%d] @%lld: %s; dead-lettering it",
                    list[0]->event.event_id, rd_kafka_topic_name(list[0]->rkm->rkt),
                    (int)list[0]->rkm->partition, (long long)list[0]->rkm->offset,
                    list[0]->db_error);
            int rc = deliver_dead_letters(in, list, 1);
            if (rc) return rc;
            return with_offsets ? write_with_retry(in, NULL, 0, true) : 0;
        }
        if (n == 0) {
            EV_ERROR("PostgreSQL rejected the offsets write: %s; stopping", err.message);
            return -1;
        }
        EV_INFO("PostgreSQL rejected a batch of %zu (%s); bisecting", n, err.message);
        size_t half = n / 2;
        int rc = write_with_retry(in, list, half, false);
        if (rc) return rc;
        rc = write_with_retry(in, list + half, n - half, false);
        if (rc) return rc;
        return with_offsets ? write_with_retry(in, NULL, 0, true) : 0;
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
            if (ingest_stop_requested) {
                free(json);
                return 1;
            }
            ingest_sleep(500);
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

static void commit_kafka_offsets(ingest_t *in) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
    for (int p = 0; p < INGEST_MAX_PARTITIONS; p++) {
        ingest_partition_t *ip = &in->parts[p];
        if (ip->batch_next < 0) continue;
        ip->committed = ip->batch_next;
        if (ip->assigned)
            rd_kafka_topic_partition_list_add(list, in->topic, p)->offset = ip->batch_next;
    }
    /* For lag tools only: PostgreSQL holds the offsets that count. */
    if (list->cnt > 0) rd_kafka_commit(in->consumer, list, 1);
    rd_kafka_topic_partition_list_destroy(list);
}

int ingest_batch_flush(ingest_t *in) {
    if (in->n_msgs == 0) return 0;
    int64_t t0 = ev_mono_ns();
    parse_all(in);
    int64_t t_parsed = ev_mono_ns();
    size_t n = in->n_msgs;
    ingest_msg_t **bad = malloc(n * sizeof(*bad));
    ingest_msg_t **good = malloc(n * sizeof(*good));
    int rc = 0;
    if (!bad || !good) {
        EV_ERROR("out of memory for a batch of %zu", n);
        rc = 1;
        goto done;
    }
    size_t n_bad = 0, n_good = 0;
    for (size_t i = 0; i < n; i++) {
        ingest_msg_t *m = &in->msgs[i];
        if (m->valid)
            good[n_good++] = m;
        else
            m->dead = true, bad[n_bad++] = m;
    }
    /* Dead letters first: their delivery is confirmed before any offset moves. */
    rc = deliver_dead_letters(in, bad, n_bad);
    if (rc) goto done;
    int64_t t_dlq = ev_mono_ns();
    rc = write_with_retry(in, good, n_good, true);
    if (rc) goto done;
    int64_t t_written = ev_mono_ns();
    rc = publish_enriched(in, good, n_good);
    EV_DEBUG("batch of %zu: parse+enrich %.1f ms, dead letters %.1f ms, PostgreSQL %.1f ms, "
             "enriched feed %.1f ms",
             n, (double)(t_parsed - t0) / 1e6, (double)(t_dlq - t_parsed) / 1e6,
             (double)(t_written - t_dlq) / 1e6, (double)(ev_mono_ns() - t_written) / 1e6);
    if (rc == 1) {
        /* Stored and committed, but the enriched feed could not be confirmed before
         * shutdown: say so, nothing in PostgreSQL is lost. */
        EV_WARN("shutdown before the enriched events of the last batch were confirmed");
        rc = 0;
    }
    commit_kafka_offsets(in);
    export_pg_stats(in);
    in->n_batches++;
    ev_metric_add(in->m_batches, 1);
    ev_histogram_observe(in->m_batch_seconds, (double)(ev_mono_ns() - t0) / 1e9);
    tf_sessionizer_evict(in->sessionizer, in->watermark_ms);
    ev_metric_set(in->m_visitors, (double)tf_sessionizer_visitor_count(in->sessionizer));
    ev_metric_set(in->m_events_held, (double)tf_sessionizer_event_count(in->sessionizer));
done:
    free(bad);
    free(good);
    if (rc == 1) EV_WARN("open batch of %zu message(s) abandoned; it will be consumed again", n);
    ingest_batch_drop(in);
    return rc;
}
