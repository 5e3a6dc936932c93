/* ingest.c — `evpipe ingest`: the consumer-group consumer of raw events. Offsets
 * live in PostgreSQL next to the rows they produced; on assignment the consumer
 * seeks to them, so a crash, rebalance or restart neither loses nor duplicates. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/commands.h"
#include "common/kafka_log.h"
#include "common/kmock.h"
#include "common/log.h"
#include "common/ua_load.h"
#include "common/util.h"
#include "consumers/ingest.h"
#include "tools/migrate.h"

/* Signals counted by the handler, read by the supervisor (the main thread). */
static volatile sig_atomic_t signals_received;

static void on_signal(int sig) {
    (void)sig;
    signals_received++;
}

/* Local day number for splitAtMidnight in the zone set in TZ. */
static int64_t local_day_of(int64_t epoch_ms, void *ud) {
    (void)ud;
    time_t t = (time_t)(epoch_ms >= 0 ? epoch_ms / 1000 : (epoch_ms - 999) / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    /* days from civil (proleptic Gregorian), Howard Hinnant's algorithm */
    int64_t y = (int64_t)tm.tm_year + 1900, m = tm.tm_mon + 1, d = tm.tm_mday;
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void apply_settings(ingest_t *in) {
    in->session_cfg.timeout_ms = in->settings.timeout_seconds * 1000;
    in->session_cfg.max_duration_ms = in->settings.max_duration_seconds * 1000;
    in->session_cfg.conversion_types = in->settings.conversion_types;
    if (in->sessionizer) tf_sessionizer_set_config(in->sessionizer, &in->session_cfg);
}

static void reload_settings(ingest_t *in, bool initial) {
    /* From the base every time: a row deleted or deactivated falls back to the
     * flag/environment/default value. */
    tf_settings_t next = in->settings_base;
    char warning[300], err[300];
    if (sink_pg_settings_load(in->settings_src, in->settings_pinned, &next, warning,
                              sizeof(warning), err, sizeof(err)) != 0) {
        if (initial || !in->settings_unreadable)
            EV_WARN("cannot read tracking_configs (%s); keeping the current settings", err);
        in->settings_unreadable = true;
        return;
    }
    if (in->settings_unreadable && !initial) EV_INFO("tracking_configs readable again");
    in->settings_unreadable = false;
    if (warning[0]) EV_WARN("%s", warning);
    if (memcmp(&next, &in->settings, sizeof(next)) != 0 || initial) {
        /* The sessionizer and the conversion types are the writer's while it works. */
        if (!initial) ingest_batch_sync(in);
        in->settings = next;
        apply_settings(in);
        if (in->pipeline_index <= 1) /* the same for every writer */
            EV_INFO("settings: session.timeoutSeconds=%lld session.maxDurationSeconds=%lld "
                "conversion.types=0x%x bots.excludeFromMetrics=%s",
                (long long)next.timeout_seconds, (long long)next.max_duration_seconds,
                next.conversion_types, next.bots_exclude_from_metrics ? "true" : "false");
    }
}

/* ---- rebalance ---- */

static void on_assign(ingest_t *in, rd_kafka_topic_partition_list_t *parts) {
    ingest_batch_sync(in); /* the sink is the writer's while it works (idle here) */
    int32_t ids[INGEST_MAX_PARTITIONS];
    int64_t offsets[INGEST_MAX_PARTITIONS];
    size_t n = 0;
    for (int i = 0; i < parts->cnt && n < INGEST_MAX_PARTITIONS; i++)
        ids[n++] = parts->elems[i].partition;
    int64_t backoff = INGEST_BACKOFF_MIN_MS;
    for (;;) {
        sink_pg_error_t err;
        if (sink_pg_read_offsets(in->pg, in->group, in->topic, ids, offsets, n, &err) == 0) break;
        if (err.status == SINK_PG_FATAL) {
            bool refused = strcmp(err.sqlstate, "42501") == 0;
            EV_ERROR("cannot read stored offsets: %s%s%s%s; stopping", err.message,
                     refused ? " (" : "", refused ? INGEST_GRANT_HINT : "", refused ? ")" : "");
            in->offsets_fatal = true;
            in->stop = 1;
            rd_kafka_assign(in->consumer, NULL);
            return;
        }
        EV_WARN("cannot read stored offsets (%s); retrying", err.message);
        ingest_sleep(in, backoff);
        backoff = ingest_next_backoff(backoff);
        if (in->stop) {
            rd_kafka_assign(in->consumer, NULL);
            return;
        }
    }
    char desc[512];
    size_t used = 0;
    desc[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        tp->offset = offsets[i] >= 0 ? offsets[i] : RD_KAFKA_OFFSET_BEGINNING;
        ingest_partition_t *ip = &in->parts[ids[i]];
        ip->assigned = true;
        ip->committed = offsets[i] >= 0 ? offsets[i] : 0;
        ip->max_event_ms = INT64_MIN;
        ip->last_message_ms = 0;
        if (used < sizeof(desc) - 32)
            used += (size_t)snprintf(desc + used, sizeof(desc) - used, "%s%d@%lld", i ? " " : "",
                                     (int)ids[i], (long long)ip->committed);
    }
    in->ever_assigned = true;
    in->assignment_current = true;
    EV_INFO("assigned %zu partition(s) of %s, from stored offsets: %s", n, in->topic, desc);
    rd_kafka_assign(in->consumer, parts);
}

static void on_revoke(ingest_t *in) {
    /* Finish the open batch before giving the partitions up, so the next owner
     * starts exactly after what we committed. */
    if (ingest_batch_open_count(in))
        EV_INFO("partitions revoked: committing the open batch of %zu first",
                ingest_batch_open_count(in));
    ingest_batch_sync(in);
    ingest_batch_drain_feed(in, 30000);
    for (int p = 0; p < INGEST_MAX_PARTITIONS; p++) in->parts[p].assigned = false;
    in->assignment_current = false;
    /* Another member may write these visitors now: forget them, reload on return. */
    tf_sessionizer_destroy(in->sessionizer);
    in->sessionizer = tf_sessionizer_new(&in->session_cfg);
    rd_kafka_assign(in->consumer, NULL);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    (void)rk;
    ingest_t *in = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        on_assign(in, parts);
    else
        on_revoke(in);
}

/* ---- until-caught-up ---- */

static int read_start_watermarks(ingest_t *in) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(in->consumer, in->topic, NULL);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0; attempt < 60 && !in->stop; attempt++) {
        err = rd_kafka_metadata(in->consumer, 0, rkt, &md, 5000);
        if (!err && md->topic_cnt == 1 && !md->topics[0].err) break;
        if (md) rd_kafka_metadata_destroy(md);
        md = NULL;
        EV_WARN("no metadata for %s yet (%s); retrying", in->topic,
                err ? rd_kafka_err2str(err) : "topic not available");
        ingest_sleep(in, 1000);
    }
    rd_kafka_topic_destroy(rkt);
    if (!md) return -1;
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        if (p < 0 || p >= INGEST_MAX_PARTITIONS) continue;
        while (rd_kafka_query_watermark_offsets(in->consumer, in->topic, p, &lo, &hi, 5000) !=
               RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (in->stop) break;
            ingest_sleep(in, 500);
        }
        in->parts[p].start_high = hi;
    }
    rd_kafka_metadata_destroy(md);
    return 0;
}

/* The pipeline has committed everything its partitions held when it started. */
static bool pipeline_caught_up(ingest_t *in) {
    /* Between a revocation and the next assignment what the pipeline will hold is not
     * known yet: in a rebalance every pipeline of the process can hold nothing at once,
     * or one has its new partitions (all done) while another still waits for its own. */
    if (!in->assignment_current || !ingest_batch_idle(in)) return false;
    bool holds = false;
    for (int p = 0; p < INGEST_MAX_PARTITIONS; p++) {
        const ingest_partition_t *ip = &in->parts[p];
        if (ip->assigned && ip->committed < ip->start_high) return false;
        holds |= ip->assigned;
    }
    /* A lone pipeline given nothing waits for partitions; one of several may hold
     * nothing for good (more pipelines than partitions). */
    return holds || in->n_pipelines > 1;
}

/* Every pipeline has (each under an assignment in force, so each was given one; one
 * without partitions trivially). As with separate processes, a partition moved to
 * another member of the group is that member's to finish. */
static bool caught_up(ingest_t *pipelines, int n) {
    for (int i = 0; i < n; i++)
        if (!pipelines[i].caught_up) return false;
    return true;
}

/* ---- readiness and stats ---- */

/* The process's writers, for the supervisor and the /readyz thread. */
typedef struct ingest_pipelines_s {
    ingest_t *w;
    int n;
} ingest_pipelines_t;

static int ready_cb(void *ud, char *reason, size_t reason_size) {
    const ingest_pipelines_t *ws = ud;
    bool assigned = false;
    for (int i = 0; i < ws->n; i++) {
        if (ws->w[i].pg_down) {
            snprintf(reason, reason_size, "PostgreSQL unavailable");
            return 0;
        }
        assigned |= ws->w[i].ever_assigned;
    }
    if (!assigned) {
        snprintf(reason, reason_size, "waiting for a partition assignment");
        return 0;
    }
    return 1;
}

static void update_lag(ingest_t *in) {
    for (int p = 0; p < INGEST_MAX_PARTITIONS; p++) {
        ingest_partition_t *ip = &in->parts[p];
        if (!ip->assigned) continue;
        int64_t lo = 0, hi = 0;
        if (rd_kafka_get_watermark_offsets(in->consumer, in->topic, p, &lo, &hi) ||
            hi < 0)
            continue;
        char labels[64];
        snprintf(labels, sizeof(labels), "partition=\"%d\"", p);
        ev_metric_set(ev_metrics_gauge(in->metrics, "consumer_lag_messages",
                                       "Messages behind the partition's end", labels),
                      (double)(hi > ip->committed ? hi - ip->committed : 0));
    }
}

/* librdkafka 2.0.2 stops fetching a partition while the prefetch queue is over
 * queued.max.messages.kbytes and looks again only when its broker thread wakes: on a
 * request or response on that connection, else after a second. With a prefetch queue
 * small enough for the memory goals, that second would be idle time each time the queue
 * runs dry. Asking the partitions' leaders for their end offsets (ListOffsets, answered
 * at once) wakes their fetchers. Done only when the queue ran dry after at least half of
 * its bound was read since the last wake (it may have been full), so a trickle of live
 * traffic never causes it. */
static void wake_fetchers(ingest_t *in) {
    EV_DEBUG("prefetch queue ran dry after %zu bytes: waking the fetchers", in->read_since_wake);
    in->read_since_wake = 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (int p = 0; p < INGEST_MAX_PARTITIONS; p++)
        if (in->parts[p].assigned)
            rd_kafka_topic_partition_list_add(l, in->topic, p)->offset = -1; /* latest */
    if (l->cnt) rd_kafka_offsets_for_times(in->consumer, l, 1000);
    rd_kafka_topic_partition_list_destroy(l);
    ev_metric_add(in->m_fetch_wakes, 1);
}

/* The stats line and the gauges, summed over the writers. */
static void log_stats(const ingest_pipelines_t *ws, uint64_t *last_consumed, int64_t *last_ms) {
    uint64_t consumed = 0, stored = 0, dead = 0, dups = 0, batches = 0, retries = 0;
    size_t visitors = 0;
    for (int i = 0; i < ws->n; i++) {
        const ingest_t *in = &ws->w[i];
        consumed += in->n_consumed;
        stored += in->n_stored;
        dead += in->n_dead;
        dups += in->n_duplicates;
        batches += in->n_batches;
        retries += in->n_retries;
        visitors += in->visitors_held;
    }
    int64_t now = ev_now_ms();
    double secs = (double)(now - *last_ms) / 1000.0;
    EV_INFO("consumed %llu (%.0f/s), stored %llu, dead-lettered %llu, duplicates %llu, "
            "batches %llu, retries %llu, visitors held %zu",
            (unsigned long long)consumed,
            secs > 0 ? (double)(consumed - *last_consumed) / secs : 0.0,
            (unsigned long long)stored, (unsigned long long)dead, (unsigned long long)dups,
            (unsigned long long)batches, (unsigned long long)retries, visitors);
    *last_consumed = consumed;
    *last_ms = now;
}

static void set_gauges(const ingest_pipelines_t *ws) {
    size_t visitors = 0, events = 0, bytes = 0;
    for (int i = 0; i < ws->n; i++) {
        visitors += ws->w[i].visitors_held;
        events += ws->w[i].events_held;
        bytes += ws->w[i].session_bytes;
    }
    ev_metric_set(ws->w[0].m_visitors, (double)visitors);
    ev_metric_set(ws->w[0].m_events_held, (double)events);
    ev_metric_set(ws->w[0].m_session_bytes, (double)bytes);
}

/* ---- the command ---- */

/* Kafka-side commits are advisory (lag tools): PostgreSQL holds the offsets that
 * count, so a commit refused during a rebalance is worth a debug line, not a warning. */
static void on_kafka_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    (void)rk;
    (void)opaque;
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        EV_DEBUG("advisory Kafka offset commit of %d partition(s) not done: %s",
                 offsets ? offsets->cnt : 0, rd_kafka_err2str(err));
}

static rd_kafka_t *make_consumer(ingest_t *in, const ev_kv_list_t *props, char *errstr,
                                 size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    static const char *const defaults[][2] = {
        {"enable.auto.commit", "false"},      {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},    {"enable.partition.eof", "false"},
        {"max.poll.interval.ms", "3600000"}, /* a PostgreSQL outage must not evict us */
        {"log_level", "4"},
        /* Prefetch bounded by size (one queue for all partitions, plus one fetch
         * response in flight per broker): memory belongs to the sessions. A queue that
         * small runs dry between two fetches; wake_fetchers keeps that from costing a
         * second each time. */
        {"fetch.max.bytes", "1048576"},
        /* A member that died (kill -9, a lost machine) holds its partitions until the
         * coordinator gives up on it: 6 s (the brokers' smallest allowed) instead of
         * librdkafka's 45 s. The heartbeat thread runs apart from batch work, so only a
         * process frozen that long is evicted. */
        {"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "1500"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], errstr, errstr_size))
            goto fail;
    /* 2 MiB of prefetch for the process, shared out among its pipelines (each fetch
     * response of 1 MiB, decompressed, is queued whole on top of it). More bought no
     * speed in `make bench` and cost 5 MB resident with 100,000 visitors held. */
    char queued[32];
    int n = in->n_pipelines;
    snprintf(queued, sizeof(queued), "%d", 2048 / n > 512 ? 2048 / n : 512);
    if (rd_kafka_conf_set(conf, "queued.max.messages.kbytes", queued, errstr, errstr_size))
        goto fail;
    if (rd_kafka_conf_set(conf, "bootstrap.servers", in->brokers, errstr, errstr_size) ||
        rd_kafka_conf_set(conf, "group.id", in->group, errstr, errstr_size))
        goto fail;
    /* Static membership: a restarted member with the same id takes its partitions back
     * at once, without a rebalance (KIP-345). */
    if (in->group_instance_id[0] &&
        rd_kafka_conf_set(conf, "group.instance.id", in->group_instance_id, errstr, errstr_size))
        goto fail;
    for (int i = 0; i < props->n; i++)
        if (rd_kafka_conf_set(conf, props->key[i], props->val[i], errstr, errstr_size))
            goto fail;
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(conf, on_kafka_commit);
    rd_kafka_conf_set_log_cb(conf, ev_kafka_log_cb);
    rd_kafka_conf_set_opaque(conf, in);
    char kb[32];
    size_t kb_size = sizeof(kb);
    if (rd_kafka_conf_get(conf, "queued.max.messages.kbytes", kb, &kb_size) == RD_KAFKA_CONF_OK)
        in->prefetch_bytes = (size_t)strtoull(kb, NULL, 10) * 1024;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!rk) goto fail;
    rd_kafka_poll_set_consumer(rk);
    return rk;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* ---- one pipeline ---- */

/* Everything one pipeline does, in its own thread: its components, waiting for
 * PostgreSQL, the consumer loop, a clean shutdown. Returns the exit code. */
static int pipeline_run(ingest_t *in) {
    char errstr[512];
    int exit_code = 1;
    in->enrich_cache = tf_enrich_cache_new(16384);
    in->sessionizer = tf_sessionizer_new(&in->session_cfg);
    in->settings_src = sink_pg_settings_new(in->database);
    if (!in->enrich_cache || !in->sessionizer || !in->settings_src) {
        EV_ERROR("out of memory");
        return 1;
    }
    in->pg = sink_pg_new(in->database, errstr, sizeof(errstr));
    if (!in->pg) {
        EV_ERROR("database: %s", errstr);
        return 2;
    }
    if (ingest_pipeline_start(in, errstr, sizeof(errstr)) != 0) {
        EV_ERROR("%s", errstr);
        return 1;
    }
    /* Wait for PostgreSQL (it may start after us in a compose stack). */
    for (int64_t backoff = INGEST_BACKOFF_MIN_MS;;) {
        sink_pg_error_t err;
        memset(&err, 0, sizeof(err));
        if (sink_pg_ping(in->pg, &err) == 0) break;
        if (err.status == SINK_PG_FATAL) {
            /* 42501: the user lacks a grant (migration 0010_roles), not the schema. */
            EV_ERROR("database: %s%s", err.message,
                     strcmp(err.sqlstate, "42501") == 0
                         ? " (" INGEST_GRANT_HINT ")"
                         : " (is the schema migrated? run `evpipe migrate up` or pass "
                           "--migrate)");
            return 2;
        }
        if (!in->pg_down) EV_WARN("waiting for PostgreSQL: %s", err.message);
        in->pg_down = true;
        if (in->stop) return 0;
        ingest_sleep(in, backoff);
        backoff = ingest_next_backoff(backoff);
    }
    in->pg_down = false;
    reload_settings(in, true);

    in->producer = sink_kafka_new(in->brokers, in->props, errstr, sizeof(errstr));
    in->consumer = in->producer ? make_consumer(in, in->props, errstr, sizeof(errstr)) : NULL;
    if (!in->producer || !in->consumer) {
        EV_ERROR("Kafka configuration: %s", errstr);
        return 2;
    }
    if (in->until_caught_up && read_start_watermarks(in) != 0) {
        EV_ERROR("cannot read the partitions of %s", in->topic);
        return 1;
    }
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, in->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(in->consumer, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (kerr) {
        EV_ERROR("subscribe to %s: %s", in->topic, rd_kafka_err2str(kerr));
        return 1;
    }
    if (in->pipeline_index <= 1)
        EV_INFO("consuming %s as group %s with %d writer(s); batches of %lld or %lld ms",
                in->topic, in->group, in->n_pipelines, in->batch_size, in->batch_ms);

    int64_t next_config = ev_now_ms() + in->config_poll * 1000, next_notify_check = 0;
    int64_t next_lag = ev_now_ms() + in->stats_every * 1000;
    int64_t last_message_ms = 0, last_wake_ms = 0;
    exit_code = 0;
    while (!in->stop && !in->quit) {
        bool flowing = ev_now_ms() - last_message_ms < 1000;
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(in->consumer, flowing ? 5 : 100);
        if (!rkm && flowing && in->read_since_wake >= in->prefetch_bytes / 2 &&
            ev_now_ms() - last_wake_ms >= 20) {
            wake_fetchers(in);
            last_wake_ms = ev_now_ms();
        }
        if (rkm) {
            if (rkm->err == RD_KAFKA_RESP_ERR__FATAL) {
                char why[256];
                rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(in->consumer, why, sizeof(why));
                if (ferr == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID)
                    EV_ERROR("another member of group %s uses group.instance.id %s: give each "
                             "instance its own --group-instance-id (%s)",
                             in->group, in->group_instance_id, why);
                else
                    EV_ERROR("consumer: fatal: %s", why);
                rd_kafka_message_destroy(rkm);
                exit_code = 1;
                break;
            }
            if (rkm->err) {
                if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    EV_WARN("consumer: %s", rd_kafka_message_errstr(rkm));
                rd_kafka_message_destroy(rkm);
            } else {
                in->read_since_wake += rkm->len + rkm->key_len;
                last_message_ms = ev_now_ms();
                ingest_batch_add(in, rkm);
            }
        }
        int64_t now = ev_now_ms();
        size_t open = ingest_batch_open_count(in);
        int brc = 0;
        if (open >= (size_t)in->batch_size || (open && now - in->open->started_ms >= in->batch_ms))
            brc = ingest_batch_flush(in);
        else
            brc = ingest_batch_poll(in);
        if (brc < 0) {
            exit_code = 1;
            break;
        }
        if (in->until_caught_up) in->caught_up = pipeline_caught_up(in);
        if (now >= next_notify_check) {
            /* tracking_configs changes arrive by NOTIFY; the poll below is the fallback. */
            if (sink_pg_settings_changed(in->settings_src)) next_config = now;
            next_notify_check = now + 250;
        }
        if (now >= next_config) {
            reload_settings(in, false);
            next_config = now + in->config_poll * 1000;
        }
        if (now >= next_lag) {
            update_lag(in);
            next_lag = now + in->stats_every * 1000;
        }
    }
    if (in->offsets_fatal) exit_code = 1;
    /* Shutdown: finish (or abandon) the open batch, leave the group, then destroy. */
    if (exit_code == 0) {
        in->stop = 0; /* give the last batch its chance (a second signal abandons it) */
        if (ingest_batch_sync(in) < 0) exit_code = 1;
    }
    ingest_batch_drain_feed(in, 30000);
    rd_kafka_consumer_close(in->consumer);
    return exit_code;
}

static void pipeline_free(ingest_t *in) {
    ingest_pipeline_stop(in); /* messages first: they belong to the consumer */
    if (in->consumer) rd_kafka_destroy(in->consumer);
    sink_kafka_destroy(in->producer);
    sink_pg_destroy(in->pg);
    sink_pg_settings_destroy(in->settings_src);
    tf_sessionizer_destroy(in->sessionizer);
    tf_enrich_cache_destroy(in->enrich_cache);
}

static void *pipeline_main(void *arg) {
    ingest_t *in = arg;
    in->exit_code = pipeline_run(in);
    in->finished = true;
    return NULL;
}

/* ---- the supervisor (main thread) ---- */

/* --migrate: waits for PostgreSQL, then applies the pending migrations. Returns 0, or
 * the exit code. */
static int migrate_when_up(const char *database) {
    bool warned = false;
    for (int64_t backoff = INGEST_BACKOFF_MIN_MS; !signals_received;) {
        PGconn *conn = PQconnectdb(database);
        if (PQstatus(conn) == CONNECTION_OK) {
            char errstr[512];
            int mrc = ev_migrate_up(conn, 0, errstr, sizeof(errstr));
            PQfinish(conn);
            if (mrc != 0) {
                EV_ERROR("migrations: %s", errstr);
                return 1;
            }
            return 0;
        }
        char why[512];
        snprintf(why, sizeof(why), "%s", PQerrorMessage(conn));
        why[strcspn(why, "\n")] = '\0';
        PQfinish(conn);
        if (!warned) EV_WARN("waiting for PostgreSQL: %s", why);
        warned = true;
        for (int64_t slept = 0; slept < backoff && !signals_received; slept += 50) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
        backoff = ingest_next_backoff(backoff);
    }
    return 0;
}

static void stop_all(ingest_pipelines_t *ps) {
    for (int i = 0; i < ps->n; i++) ps->w[i].stop = 1;
}

/* Starts the pipelines and watches them until all are done: a signal stops every one of
 * them, a failure of one stops the others, until-caught-up ends them all once the
 * partitions hold nothing older than the process. Returns the exit code. */
static int run_writers(ingest_pipelines_t *ps, bool until_caught_up) {
    /* Signals are the main thread's: the pipelines (and librdkafka's threads, created in
     * theirs) start with them blocked. */
    sigset_t all, old;
    sigfillset(&all);
    int started = 0, exit_code = 0;
    for (; started < ps->n; started++) {
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int err = pthread_create(&ps->w[started].thread, NULL, pipeline_main, &ps->w[started]);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (err != 0) {
            EV_ERROR("cannot start a pipeline thread: %s", strerror(err));
            exit_code = 1;
            stop_all(ps);
            break;
        }
    }
    const ingest_t *first = &ps->w[0];
    int64_t next_stats = ev_now_ms() + first->stats_every * 1000, last_stats_ms = ev_now_ms();
    uint64_t last_consumed = 0;
    sig_atomic_t signals_seen = 0;
    bool quitting = false;
    for (;;) {
        int running = 0;
        for (int i = 0; i < started; i++) {
            ingest_t *in = &ps->w[i];
            if (!in->finished) {
                running++;
            } else if (in->exit_code && !exit_code) {
                exit_code = in->exit_code; /* the first failure stops the others */
                stop_all(ps);
            }
        }
        if (!running) break;
        if (signals_received != signals_seen) {
            signals_seen = signals_received;
            stop_all(ps);
        }
        if (until_caught_up && !quitting && caught_up(ps->w, ps->n)) {
            EV_INFO("caught up with everything present at start");
            quitting = true;
            for (int i = 0; i < ps->n; i++) ps->w[i].quit = true;
        }
        set_gauges(ps);
        if (ev_now_ms() >= next_stats) {
            log_stats(ps, &last_consumed, &last_stats_ms);
            next_stats = ev_now_ms() + first->stats_every * 1000;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < started; i++) pthread_join(ps->w[i].thread, NULL);
    for (int i = 0; i < started; i++) pipeline_free(&ps->w[i]);
    set_gauges(ps);
    log_stats(ps, &last_consumed, &last_stats_ms);
    EV_INFO("stopped");
    return exit_code;
}

static const char ingest_summary[] =
    "Consumes raw tracking events (SPEC section 3) from Kafka, validates them,\n"
    "sessionizes them by event time, classifies devices, and writes sessions, events,\n"
    "page views and conversions to PostgreSQL. Each batch is one transaction that also\n"
    "stores the consumer's next offsets, so a crash, restart or rebalance neither loses\n"
    "nor duplicates rows. Invalid messages go to the dead-letter topic with their reason;\n"
    "stored events are published, enriched, to the enriched topic.\n"
    "Session settings come from flags, then environment, then the tracking_configs table\n"
    "(applied at once when its NOTIFY arrives, re-read every --config-poll seconds),\n"
    "then the built-in defaults.";

static const char ingest_epilog[] =
    "Examples:\n"
    "  evpipe ingest --brokers kafka:9092 --database postgresql://evpipe@db/analytics\n"
    "  evpipe ingest --until-caught-up -X security.protocol=SASL_SSL -X sasl.mechanism=PLAIN\n"
    "Exit codes: 0 done (stopped or caught up), 1 fatal error, 2 bad usage or configuration.";

int cmd_ingest(int argc, char **argv) {
    /* One malloc arena for every thread: the held sessions are many small blocks that
     * grow and shrink batch after batch, and per-thread arenas (the writer, librdkafka's
     * threads) each kept their own free space: ~35 MB more resident with 100,000 held
     * visitors, for no measurable speed. */
    mallopt(M_ARENA_MAX, 1);
    /* Blocks from 128 KiB up (fetch responses, batch blocks, tables) are mapped and
     * unmapped on their own. glibc would otherwise raise that threshold after the first
     * such free and put later ones in the heap, between long-lived sessions, where the
     * holes they leave stay resident. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    ingest_t *in = calloc(1, sizeof(*in));
    if (!in) return 1;
    ingest_pipelines_t ws = {NULL, 0};
    char *writer_ids = NULL;
    long long writers = 1;
    const char *log_level = "info", *log_format = "text", *regexes_path = NULL, *ua_data = NULL;
    const char *conversion_types = NULL, *time_zone = NULL;
    long long timeout_s = -1, max_duration_s = -1, metrics_port = 9101, ua_cache = 10000,
              config_poll = 10, stats_every = 10, lateness_s = 3600;
    bool split_campaign = false, split_midnight = false, migrate = false;
    ev_kv_list_t props = {0};
    const ev_opt_t opts[] = {
        {"brokers", 'b', EV_OPT_STR, NULL, "KAFKA_BROKERS", "LIST", "Kafka bootstrap servers",
         &in->brokers, 0, 0},
        {"database", 'd', EV_OPT_STR, NULL, "DATABASE_URL", "URL",
         "PostgreSQL conninfo or URL", &in->database, 0, 0},
        {"topic", 't', EV_OPT_STR, EV_TOPIC_RAW, NULL, "NAME", "topic of raw events", &in->topic,
         0, 0},
        {"group", 'g', EV_OPT_STR, "evpipe-ingest", NULL, "ID", "consumer group id", &in->group,
         0, 0},
        {"group-instance-id", 0, EV_OPT_STR, NULL, "EVPIPE_GROUP_INSTANCE_ID", "ID",
         "static group membership: this instance's stable id, unique in the group; unset: "
         "<host name>-<group>; \"\": dynamic membership",
         &in->group_instance_id, 0, 0},
        {"dlq-topic", 0, EV_OPT_STR, EV_TOPIC_DLQ, NULL, "NAME", "dead-letter topic",
         &in->dlq_topic, 0, 0},
        {"enriched-topic", 0, EV_OPT_STR, EV_TOPIC_ENRICHED, NULL, "NAME",
         "topic of enriched events (\"\" = do not publish)", &in->enriched_topic, 0, 0},
        {"prop", 'X', EV_OPT_KV, NULL, NULL, "KEY=VALUE",
         "librdkafka property for every client (repeatable)", &props, 0, 0},
        {"writers", 0, EV_OPT_INT, "1", "EVPIPE_INGEST_WRITERS", "N",
         "pipelines in this process, each a member of the group with its own partitions, "
         "sessions and PostgreSQL connection (docs/operations.md, \"Throughput\")",
         &writers, 1, 64},
        {"batch-size", 0, EV_OPT_INT, "4000", NULL, "N", "messages per batch (transaction)",
         &in->batch_size, 1, 100000},
        {"batch-ms", 0, EV_OPT_INT, "500", NULL, "MS", "longest wait before a partial batch",
         &in->batch_ms, 1, 600000},
        {"until-caught-up", 0, EV_OPT_BOOL, "false", NULL, NULL,
         "exit 0 once everything that was in the partitions at start is processed",
         &in->until_caught_up, 0, 0},
        {"session-timeout", 0, EV_OPT_INT, NULL, "EVPIPE_SESSION_TIMEOUT", "SECONDS",
         "inactivity that ends a session (tracking_configs session.timeoutSeconds, 1800)",
         &timeout_s, 1, 604800},
        {"session-max-duration", 0, EV_OPT_INT, NULL, "EVPIPE_SESSION_MAX_DURATION", "SECONDS",
         "longest session (session.maxDurationSeconds, 86400)", &max_duration_s, 60, 2592000},
        {"conversion-types", 0, EV_OPT_STR, NULL, "EVPIPE_CONVERSION_TYPES", "LIST",
         "event types that are conversions (conversion.types; PURCHASE,APPOINTMENT_COMPLETE,"
         "LEAD,SIGN_UP,FORM_SUBMIT)",
         &conversion_types, 0, 0},
        {"split-on-campaign", 0, EV_OPT_BOOL, "false", "EVPIPE_SPLIT_ON_CAMPAIGN", NULL,
         "start a new session when the campaign changes", &split_campaign, 0, 0},
        {"split-at-midnight", 0, EV_OPT_BOOL, "false", "EVPIPE_SPLIT_AT_MIDNIGHT", NULL,
         "start a new session at midnight in --time-zone", &split_midnight, 0, 0},
        {"time-zone", 0, EV_OPT_STR, "UTC", "EVPIPE_TIME_ZONE", "TZ",
         "IANA zone for --split-at-midnight", &time_zone, 0, 0},
        {"allowed-lateness", 0, EV_OPT_INT, "3600", NULL, "SECONDS",
         "keep idle visitors in memory this long past the session timeout", &lateness_s, 0,
         604800},
        {"ua-regexes", 0, EV_OPT_STR, TF_UA_REGEXES_DEFAULT_PATH, "EVPIPE_UA_REGEXES", "PATH",
         "uap-core regexes.yaml", &regexes_path, 0, 0},
        {"ua-data", 0, EV_OPT_STR, TF_UA_DATA_DEFAULT_PATH, "EVPIPE_UA_DATA", "DIR",
         "device and robot data sets (docs/devices.md; installed by tools/deps_data.sh)",
         &ua_data, 0, 0},
        {"ua-cache", 0, EV_OPT_INT, "10000", NULL, "N", "user agents kept classified",
         &ua_cache, 16, 10000000},
        {"config-poll", 0, EV_OPT_INT, "10", NULL, "SECONDS",
         "how often tracking_configs is re-read (changes it announces apply at once)",
         &config_poll, 1, 86400},
        {"metrics-port", 0, EV_OPT_INT, "9101", "EVPIPE_METRICS_PORT", "PORT",
         "serve /metrics, /healthz, /readyz here (0 = any free port, -1 = off)", &metrics_port,
         -1, 65535},
        {"stats-interval", 0, EV_OPT_INT, "10", NULL, "SECONDS", "period of the stats log line",
         &stats_every, 1, 86400},
        {"migrate", 0, EV_OPT_BOOL, "false", NULL, NULL,
         "apply pending schema migrations before starting", &migrate, 0, 0},
        {"log-level", 0, EV_OPT_STR, "info", "EVPIPE_LOG_LEVEL", "LEVEL",
         "debug, info, warn or error", &log_level, 0, 0},
        {"log-format", 0, EV_OPT_STR, "text", "EVPIPE_LOG_FORMAT", "FORMAT", "text or json",
         &log_format, 0, 0},
        EV_OPT_END};
    const ev_cli_t cli = {"evpipe ingest", "[OPTIONS]", ingest_summary, ingest_epilog, opts};
    char errstr[512];
    int rc = ev_cli_parse(&cli, argc, argv, NULL, errstr, sizeof(errstr));
    int exit_code = 2;
    if (rc == 1) {
        exit_code = 0;
        goto out;
    }
    if (rc < 0) goto usage;
    int level = ev_log_level_parse(log_level);
    if (level < 0 || (strcmp(log_format, "text") && strcmp(log_format, "json"))) {
        snprintf(errstr, sizeof(errstr), "--log-level must be debug|info|warn|error and "
                                         "--log-format text|json");
        goto usage;
    }
    if (!in->brokers) {
        snprintf(errstr, sizeof(errstr), "no Kafka brokers: give --brokers or KAFKA_BROKERS "
                                         "(evpipe demo runs everything embedded)");
        goto usage;
    }
    if (!in->database) {
        snprintf(errstr, sizeof(errstr), "no database: give --database or DATABASE_URL");
        goto usage;
    }
    ev_log_init("ingest", level, strcmp(log_format, "json") == 0);
    char instance_id[320];
    if (!in->group_instance_id) {
        /* Stable across restarts on one host (a container's name in compose), distinct per
         * group; two instances of one group on one host must each be given their own. */
        char host[256];
        if (gethostname(host, sizeof(host)) != 0) snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        snprintf(instance_id, sizeof(instance_id), "%s-%s", host, in->group);
        in->group_instance_id = instance_id;
    }

    /* Settings: flags/environment pin a key; tracking_configs fills the rest. */
    tf_settings_default(&in->settings);
    if (timeout_s >= 0) in->settings.timeout_seconds = timeout_s, in->settings_pinned |= 1u << 0;
    if (max_duration_s >= 0)
        in->settings.max_duration_seconds = max_duration_s, in->settings_pinned |= 1u << 1;
    if (conversion_types) {
        if (tf_settings_parse_types(conversion_types, &in->settings.conversion_types, errstr,
                                    sizeof(errstr)) != 0)
            goto usage;
        in->settings_pinned |= 1u << 2;
    }
    in->settings_base = in->settings;
    tf_session_config_default(&in->session_cfg);
    /* Keyed hashing: crafted visitor ids must not degrade the sessionizer's tables. */
    if (getrandom(&in->session_cfg.hash_seed, sizeof(in->session_cfg.hash_seed), 0) !=
        (ssize_t)sizeof(in->session_cfg.hash_seed))
        in->session_cfg.hash_seed = (uint64_t)ev_mono_ns() ^ (uint64_t)getpid() << 32;
    in->session_cfg.split_on_campaign = split_campaign;
    in->session_cfg.split_at_midnight = split_midnight;
    in->session_cfg.allowed_lateness_ms = lateness_s * 1000;
    if (split_midnight && time_zone && strcmp(time_zone, "UTC") != 0) {
        setenv("TZ", time_zone, 1);
        tzset();
        in->session_cfg.day_of = local_day_of;
    }
    apply_settings(in);

    exit_code = 1;
    /* One classifier for all pipelines (shared: ~25 MB that copies would repeat). */
    in->classifier =
        ev_ua_classifier_load(regexes_path, ua_data, (size_t)ua_cache, errstr, sizeof(errstr));
    if (!in->classifier) {
        EV_ERROR("%s", errstr);
        goto out;
    }
    if (writers > 1 && tf_ua_classifier_share(in->classifier) != 0) {
        EV_ERROR("cannot share the device classifier among %lld pipelines", writers);
        goto out;
    }
    if (writers > 1 && in->group_instance_id[0]) {
        /* Each writer is a member of its own: <id>-1, <id>-2, ... */
        writer_ids = calloc((size_t)writers, 340);
        if (!writer_ids) goto out;
    }
    in->metrics = ev_metrics_new("evpipe_ingest");
    if (!in->metrics) {
        EV_ERROR("out of memory");
        goto out;
    }
    in->m_consumed = ev_metrics_counter(in->metrics, "messages_consumed_total",
                                        "Messages polled from the raw topic", NULL);
    in->m_stored = ev_metrics_counter(in->metrics, "events_committed_total",
                                      "Events stored in PostgreSQL (duplicates excluded)", NULL);
    in->m_dup = ev_metrics_counter(in->metrics, "events_duplicate_total",
                                   "Events ignored because their eventId was stored", NULL);
    in->m_batches = ev_metrics_counter(in->metrics, "batches_committed_total",
                                       "Batches committed to PostgreSQL", NULL);
    in->m_retries_pg = ev_metrics_counter(in->metrics, "retries_total",
                                          "Retries after transient failures",
                                          "component=\"postgresql\"");
    in->m_retries_kafka = ev_metrics_counter(in->metrics, "retries_total",
                                             "Retries after transient failures",
                                             "component=\"kafka\"");
    in->m_fetch_wakes = ev_metrics_counter(in->metrics, "fetch_wakeups_total",
                                           "Times the prefetch queue ran dry and the "
                                           "fetchers were woken", NULL);
    in->m_visitors = ev_metrics_gauge(in->metrics, "active_visitors",
                                      "Visitors whose sessions are held in memory", NULL);
    in->m_events_held = ev_metrics_gauge(in->metrics, "events_held",
                                         "Events held in memory for sessionization", NULL);
    in->m_session_bytes = ev_metrics_gauge(in->metrics, "sessionizer_bytes",
                                           "Bytes the sessionizer holds (its own accounting)",
                                           NULL);
    static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    in->m_batch_seconds = ev_metrics_histogram(in->metrics, "batch_seconds",
                                               "Time to process and commit one batch", bounds,
                                               sizeof(bounds) / sizeof(bounds[0]));
    ev_metric_set(ev_metrics_gauge(in->metrics, "writers", "Writers (--writers) of this process",
                                   NULL),
                  (double)writers);
    for (int p = 0; p < INGEST_MAX_PARTITIONS; p++) {
        in->parts[p].committed = -1;
        in->parts[p].batch_next = -1;
        in->parts[p].max_event_ms = INT64_MIN;
    }
    in->n_pipelines = (int)writers;
    in->config_poll = config_poll;
    in->stats_every = stats_every;
    in->props = &props;
    ws.n = (int)writers;
    ws.w = calloc((size_t)writers, sizeof(*ws.w));
    if (!ws.w) goto out;
    for (int k = 0; k < ws.n; k++) {
        memcpy(&ws.w[k], in, sizeof(*in));
        ws.w[k].pipeline_index = ws.n > 1 ? k + 1 : 0;
        if (writer_ids) {
            snprintf(writer_ids + 340 * k, 340, "%s-%d", in->group_instance_id, k + 1);
            ws.w[k].group_instance_id = writer_ids + 340 * k;
        }
    }
    if (metrics_port >= 0 && ev_metrics_serve(in->metrics, (int)metrics_port, ready_cb, &ws,
                                              errstr, sizeof(errstr)) != 0) {
        EV_ERROR("metrics endpoint on port %lld: %s", metrics_port, errstr);
        exit_code = 2;
        goto out;
    }
    if (metrics_port >= 0) EV_INFO("metrics on :%d/metrics", ev_metrics_port(in->metrics));
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (migrate) {
        int mrc = migrate_when_up(in->database);
        if (mrc) {
            exit_code = mrc;
            goto out;
        }
    }
    exit_code = run_writers(&ws, in->until_caught_up);
    goto out;
usage:
    fprintf(stderr, "evpipe ingest: %s\n", errstr);
    exit_code = 2;
out:
    free(ws.w);
    free(writer_ids);
    tf_ua_classifier_destroy(in->classifier);
    ev_metrics_destroy(in->metrics);
    ev_kv_list_clear(&props);
    free(in);
    return exit_code;
}
