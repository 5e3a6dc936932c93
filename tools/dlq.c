/* dlq.c — `evpipe dlq replay`: re-sends dead letters (consumers/ingest_batch.c writes
 * them: original key and bytes, headers evpipe.reason, evpipe.error,
 * evpipe.source.topic/partition/offset) to the raw topic under their original keys, so
 * data fixed upstream or by a new release is not lost. Reads the dead-letter topic from
 * its start to the end it had at start, selects by reason and by dead-letter time,
 * sends through the idempotent producer, waits for every delivery, prints a summary. */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "common/cli.h"
#include "common/commands.h"
#include "common/kafka_log.h"
#include "common/kmock.h"
#include "common/log.h"
#include "common/util.h"
#include "producers/evscan.h"
#include "sinks/kafka_out.h"
#include "transforms/event.h"

#define DLQ_MAX_PARTITIONS 1024
#define DLQ_MAX_REASONS 64
#define DLQ_REASON_MAX 48
#define DLQ_NO_REASON "(none)"
#define DLQ_OTHER_REASON "(other)"

static volatile sig_atomic_t dlq_stop;
static void dlq_on_signal(int sig) {
    (void)sig;
    dlq_stop = 1;
}

/* Counts of one reason code. */
typedef struct dlq_count_s {
    char reason[DLQ_REASON_MAX];
    long long in_dlq, selected;
} dlq_count_t;

typedef struct dlq_replay_s {
    const char *brokers, *dlq_topic, *topic;
    char **reasons; /* selected reason codes (owned array of owned strings), NULL = all */
    size_t n_reasons;
    int64_t from_ms, to_ms; /* dead-letter time window [from, to) */
    bool dry_run;
    long long idle_timeout_ms;
    dlq_count_t counts[DLQ_MAX_REASONS];
    size_t n_counts;
    long long read, selected, send_errors;
} dlq_replay_t;

/* The reason codes ingest writes: the validator's, and the three of its own. */
static bool dlq_reason_known(const char *code) {
    if (strcmp(code, "db_rejected") == 0 || strcmp(code, "event_id_conflict") == 0 ||
        strcmp(code, "internal") == 0)
        return true;
    for (int r = 1; r < TF_REASON_COUNT; r++)
        if (strcmp(code, tf_event_reason_code((tf_event_reason_t)r)) == 0) return true;
    return false;
}

/* Splits a comma list of reason codes into dr->reasons. Returns 0, or -1 with errstr
 * naming the first unknown code. */
static int dlq_parse_reasons(dlq_replay_t *dr, const char *list, char *errstr,
                             size_t errstr_size) {
    size_t n = 1;
    for (const char *p = list; *p; p++) n += *p == ',';
    dr->reasons = calloc(n, sizeof(char *));
    if (!dr->reasons) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            char *code = strndup(p, len);
            if (!code) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
            }
            dr->reasons[dr->n_reasons++] = code;
            if (!dlq_reason_known(code)) {
                snprintf(errstr, errstr_size,
                         "--reason: unknown reason code '%s' (see evpipe dlq replay --help)", code);
                return -1;
            }
        }
        if (!end) break;
        p = end + 1;
    }
    if (dr->n_reasons == 0) {
        snprintf(errstr, errstr_size, "--reason: no reason code given");
        return -1;
    }
    return 0;
}

static bool dlq_reason_selected(const dlq_replay_t *dr, const char *reason) {
    if (!dr->reasons) return true;
    for (size_t i = 0; i < dr->n_reasons; i++)
        if (strcmp(dr->reasons[i], reason) == 0) return true;
    return false;
}

/* The counter of reason, created on first use; the last slot collects overflow. */
static dlq_count_t *dlq_count_of(dlq_replay_t *dr, const char *reason) {
    for (size_t i = 0; i < dr->n_counts; i++)
        if (strcmp(dr->counts[i].reason, reason) == 0) return &dr->counts[i];
    if (dr->n_counts == DLQ_MAX_REASONS - 1) reason = DLQ_OTHER_REASON;
    if (dr->n_counts == DLQ_MAX_REASONS) return &dr->counts[DLQ_MAX_REASONS - 1];
    dlq_count_t *c = &dr->counts[dr->n_counts++];
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    return c;
}

/* The message's evpipe.reason header into buf ("(none)" when absent). */
static void dlq_reason_of(rd_kafka_message_t *m, char *buf, size_t size) {
    rd_kafka_headers_t *hdrs = NULL;
    const void *v = NULL;
    size_t n = 0;
    if (rd_kafka_message_headers(m, &hdrs) == 0 &&
        rd_kafka_header_get_last(hdrs, "evpipe.reason", &v, &n) == 0 && v && n > 0) {
        if (n >= size) n = size - 1;
        memcpy(buf, v, n);
        buf[n] = '\0';
        return;
    }
    snprintf(buf, size, "%s", DLQ_NO_REASON);
}

/* Counts one dead letter and, when selected and not a dry run, enqueues it on sk. */
static void dlq_handle(dlq_replay_t *dr, sink_kafka_t *sk, rd_kafka_message_t *m) {
    char reason[DLQ_REASON_MAX];
    dlq_reason_of(m, reason, sizeof(reason));
    dlq_count_t *c = dlq_count_of(dr, reason);
    c->in_dlq++;
    dr->read++;
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    bool in_window = dr->from_ms == INT64_MIN && dr->to_ms == INT64_MAX
                         ? true
                         : ts >= 0 && ts >= dr->from_ms && ts < dr->to_ms;
    if (!in_window || !dlq_reason_selected(dr, reason)) return;
    c->selected++;
    dr->selected++;
    if (dr->dry_run) return;
    char source[64 + DLQ_REASON_MAX];
    snprintf(source, sizeof(source), "%d/%lld", (int)m->partition, (long long)m->offset);
    const char *headers[] = {"evpipe.replay.dlq-position", source, "evpipe.replay.reason", reason,
                             NULL};
    char err[256];
    /* sink_kafka_send blocks while the queue is full; it fails only for good (the topic
     * name): counted, reported once, and the exit status says so. */
    if (sink_kafka_send(sk, dr->topic, m->key, m->key ? m->key_len : 0, m->payload, m->len,
                        headers, err, sizeof(err)) != 0) {
        if (dr->send_errors++ == 0) EV_ERROR("%s", err);
    }
}

static rd_kafka_t *dlq_consumer_new(const dlq_replay_t *dr, const ev_kv_list_t *props,
                                    char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    static const char *const defaults[][2] = {
        {"group.id", "evpipe-dlq-replay"}, /* required by librdkafka; never committed */
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},
        {"log_level", "4"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], errstr, errstr_size))
            goto fail;
    if (rd_kafka_conf_set(conf, "bootstrap.servers", dr->brokers, errstr, errstr_size)) goto fail;
    for (int i = 0; props && i < props->n; i++)
        if (rd_kafka_conf_set(conf, props->key[i], props->val[i], errstr, errstr_size))
            goto fail;
    rd_kafka_conf_set_log_cb(conf, ev_kafka_log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!rk) goto fail;
    rd_kafka_poll_set_consumer(rk);
    return rk;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* Reads the dead-letter topic from the start of each partition to the end it had when
 * this began, handing each message to dlq_handle. Returns 0, or -1 with errstr (topic
 * unknown, cluster unreachable, no progress for idle_timeout_ms, interrupted). */
static int dlq_read(dlq_replay_t *dr, rd_kafka_t *rk, sink_kafka_t *sk, char *errstr,
                    size_t errstr_size) {
    int rc = -1;
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t *end = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, dr->dlq_topic, NULL);
    if (!rkt) {
        snprintf(errstr, errstr_size, "topic %s: %s", dr->dlq_topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (err) {
        snprintf(errstr, errstr_size, "metadata of %s from %s: %s", dr->dlq_topic, dr->brokers,
                 rd_kafka_err2str(err));
        goto out;
    }
    if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0) {
        snprintf(errstr, errstr_size, "topic %s: %s", dr->dlq_topic,
                 md->topic_cnt == 1 && md->topics[0].err ? rd_kafka_err2str(md->topics[0].err)
                                                         : "no partitions");
        goto out;
    }
    int n_parts = md->topics[0].partition_cnt;
    if (n_parts > DLQ_MAX_PARTITIONS) n_parts = DLQ_MAX_PARTITIONS;
    end = calloc((size_t)n_parts, sizeof(*end));
    parts = rd_kafka_topic_partition_list_new(n_parts);
    if (!end || !parts) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    int pending = 0;
    for (int i = 0; i < n_parts; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        if (p < 0 || p >= n_parts) continue;
        int64_t lo = 0, hi = 0;
        err = rd_kafka_query_watermark_offsets(rk, dr->dlq_topic, p, &lo, &hi, 10000);
        if (err) {
            snprintf(errstr, errstr_size, "end of %s [%d]: %s", dr->dlq_topic, (int)p,
                     rd_kafka_err2str(err));
            goto out;
        }
        end[p] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(parts, dr->dlq_topic, p)->offset = lo;
            pending++;
        }
    }
    if (pending == 0) {
        rc = 0;
        goto out;
    }
    err = rd_kafka_assign(rk, parts);
    if (err) {
        snprintf(errstr, errstr_size, "assign %s: %s", dr->dlq_topic, rd_kafka_err2str(err));
        goto out;
    }
    int64_t last_progress = ev_now_ms();
    while (pending > 0) {
        if (dlq_stop) {
            snprintf(errstr, errstr_size, "interrupted");
            goto unassign;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            if (ev_now_ms() - last_progress > dr->idle_timeout_ms) {
                snprintf(errstr, errstr_size,
                         "no progress reading %s for %lld ms (%d partition(s) not at their end)",
                         dr->dlq_topic, dr->idle_timeout_ms, pending);
                goto unassign;
            }
            continue;
        }
        last_progress = ev_now_ms();
        int32_t p = m->partition;
        bool ours = m->rkt && strcmp(rd_kafka_topic_name(m->rkt), dr->dlq_topic) == 0 && p >= 0 &&
                    p < n_parts;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            EV_WARN("reading %s: %s", dr->dlq_topic, rd_kafka_message_errstr(m));
        } else if (ours && end[p] >= 0) {
            /* At EOF m->offset is the partition's end; for a message, the next one is. */
            int64_t next = m->err ? m->offset : m->offset + 1;
            if (!m->err && m->offset < end[p]) dlq_handle(dr, sk, m);
            if (next >= end[p]) {
                end[p] = -1; /* done */
                pending--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rc = 0;
unassign:
    rd_kafka_assign(rk, NULL);
out:
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (parts) rd_kafka_topic_partition_list_destroy(parts);
    free(end);
    return rc;
}

/* Waits for the delivery of everything enqueued on sk. Returns 0, or -1 (failed for
 * good, or interrupted) with errstr. */
static int dlq_wait_deliveries(sink_kafka_t *sk, char *errstr, size_t errstr_size) {
    for (;;) {
        size_t failed = 0;
        int rc = sink_kafka_wait(sk, 1000, &failed, errstr, errstr_size);
        if (rc == 0) return 0;
        if (rc < 0) return -1;
        if (dlq_stop) {
            snprintf(errstr, errstr_size, "interrupted while waiting for deliveries");
            return -1;
        }
    }
}

static void dlq_print_summary(const dlq_replay_t *dr, uint64_t sent) {
    printf("dead letters in %s: %lld; %s %lld to %s\n", dr->dlq_topic, dr->read,
           dr->dry_run ? "would send" : "selected", dr->selected, dr->topic);
    printf("%-22s %10s %10s\n", "reason", "in_dlq", "selected");
    for (size_t i = 0; i < dr->n_counts; i++)
        printf("%-22s %10lld %10lld\n", dr->counts[i].reason, dr->counts[i].in_dlq,
               dr->counts[i].selected);
    printf("%-22s %10lld %10lld\n", "total", dr->read, dr->selected);
    if (!dr->dry_run) printf("sent %llu\n", (unsigned long long)sent);
}

static int dlq_parse_time(const char *name, const char *text, int64_t *ms) {
    if (!text) return 0;
    if (evscan_parse_time(text, strlen(text), ms) != 0 || !strchr(text, 'T')) {
        fprintf(stderr, "evpipe dlq replay: --%s: '%s' is not an RFC 3339 time with a zone\n",
                name, text);
        return -1;
    }
    return 1;
}

static const char dlq_replay_summary[] =
    "Re-sends dead-lettered messages to the raw topic with their original key and bytes,\n"
    "so events fixed upstream, or rejected by an older release, are not lost. Reads the\n"
    "dead-letter topic from its start to the end it had at start (what arrives meanwhile\n"
    "waits for the next run), keeps the messages whose evpipe.reason header is one of\n"
    "--reason and whose dead-letter time is in [--from, --to), sends them through the\n"
    "idempotent producer (acks=all) and exits once every one is delivered, with a summary\n"
    "per reason on stdout. --dry-run only counts. Replayed messages carry the headers\n"
    "evpipe.replay.dlq-position (PARTITION/OFFSET) and evpipe.replay.reason. Replaying\n"
    "twice is harmless for what ingest stores (events are deduplicated by eventId); a\n"
    "message that is still invalid is dead-lettered again.\n"
    "Reason codes: the validator's (invalid_json, missing_field, bad_timestamp, ...),\n"
    "db_rejected, event_id_conflict, internal; messages without the header count as\n"
    "(none).";

static const char dlq_replay_epilog[] =
    "Exit status: 0 every selected message was delivered (or counted, --dry-run);\n"
    "1 the topic could not be read to its end, a delivery failed, or interrupted;\n"
    "2 usage error.\n"
    "\n"
    "Examples:\n"
    "  evpipe dlq replay --dry-run\n"
    "  evpipe dlq replay --reason db_rejected,internal --from 2026-11-20T00:00:00Z";

static int dlq_replay(int argc, char **argv) {
    dlq_replay_t dr = {.from_ms = INT64_MIN, .to_ms = INT64_MAX};
    const char *reasons = NULL, *from_text = NULL, *to_text = NULL, *log_level = NULL;
    ev_kv_list_t props = {0};
    const ev_opt_t opts[] = {
        {"brokers", 'b', EV_OPT_STR, NULL, "KAFKA_BROKERS", "LIST", "Kafka bootstrap servers",
         &dr.brokers, 0, 0},
        {"dlq-topic", 0, EV_OPT_STR, EV_TOPIC_DLQ, NULL, "NAME", "dead-letter topic to read",
         &dr.dlq_topic, 0, 0},
        {"topic", 't', EV_OPT_STR, EV_TOPIC_RAW, NULL, "NAME", "topic to send to (raw events)",
         &dr.topic, 0, 0},
        {"reason", 0, EV_OPT_STR, NULL, NULL, "LIST",
         "only these reason codes (comma-separated; default all)", &reasons, 0, 0},
        {"from", 0, EV_OPT_STR, NULL, NULL, "TIME",
         "only dead letters written at or after TIME (RFC 3339)", &from_text, 0, 0},
        {"to", 0, EV_OPT_STR, NULL, NULL, "TIME", "only dead letters written before TIME",
         &to_text, 0, 0},
        {"dry-run", 'n', EV_OPT_BOOL, "false", NULL, NULL, "count per reason, send nothing",
         &dr.dry_run, 0, 0},
        {"idle-timeout", 0, EV_OPT_INT, "30", NULL, "SECONDS",
         "give up when the topic yields nothing for this long before its end",
         &dr.idle_timeout_ms, 1, 86400},
        {"prop", 'X', EV_OPT_KV, NULL, NULL, "KEY=VALUE",
         "librdkafka property for the consumer and the producer (repeatable)", &props, 0, 0},
        {"log-level", 0, EV_OPT_STR, "info", "EVPIPE_LOG_LEVEL", "LEVEL",
         "debug, info, warn or error", &log_level, 0, 0},
        EV_OPT_END};
    const ev_cli_t cli = {"evpipe dlq replay", "[OPTIONS]", dlq_replay_summary,
                          dlq_replay_epilog, opts};
    char errstr[1024];
    int exit_code = 2;
    rd_kafka_t *rk = NULL;
    sink_kafka_t *sk = NULL;
    int rc = ev_cli_parse(&cli, argc, argv, NULL, errstr, sizeof(errstr));
    if (rc == 1) {
        exit_code = 0;
        goto out;
    }
    if (rc < 0) goto usage;
    int level = ev_log_level_parse(log_level);
    if (level < 0) {
        snprintf(errstr, sizeof(errstr), "--log-level must be debug|info|warn|error");
        goto usage;
    }
    if (!dr.brokers || !*dr.brokers) {
        snprintf(errstr, sizeof(errstr), "--brokers (or KAFKA_BROKERS) is required");
        goto usage;
    }
    if (!*dr.dlq_topic || !*dr.topic || strcmp(dr.dlq_topic, dr.topic) == 0) {
        snprintf(errstr, sizeof(errstr), "--dlq-topic and --topic must be two topic names");
        goto usage;
    }
    if (reasons && dlq_parse_reasons(&dr, reasons, errstr, sizeof(errstr)) != 0) goto usage;
    int has_from = dlq_parse_time("from", from_text, &dr.from_ms);
    int has_to = dlq_parse_time("to", to_text, &dr.to_ms);
    if (has_from < 0 || has_to < 0) goto out;
    if (has_from && has_to && dr.to_ms <= dr.from_ms) {
        snprintf(errstr, sizeof(errstr), "--to must be after --from");
        goto usage;
    }
    dr.idle_timeout_ms *= 1000;
    ev_log_init("dlq-replay", level, 0);

    exit_code = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = dlq_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rk = dlq_consumer_new(&dr, &props, errstr, sizeof(errstr));
    if (!rk) {
        EV_ERROR("consumer: %s", errstr);
        goto out;
    }
    if (!dr.dry_run) {
        sk = sink_kafka_new(dr.brokers, &props, errstr, sizeof(errstr));
        if (!sk) {
            EV_ERROR("producer: %s", errstr);
            goto out;
        }
    }
    rc = dlq_read(&dr, rk, sk, errstr, sizeof(errstr));
    if (rc != 0) EV_ERROR("%s", errstr);
    /* What was enqueued is delivered even when reading stopped early. */
    int wrc = sk ? dlq_wait_deliveries(sk, errstr, sizeof(errstr)) : 0;
    if (wrc != 0) EV_ERROR("%s", errstr);
    dlq_print_summary(&dr, sk ? sink_kafka_delivered(sk) : 0);
    if (rc == 0 && wrc == 0 && dr.send_errors == 0) exit_code = 0;
    goto out;
usage:
    fprintf(stderr, "evpipe dlq replay: %s\n", errstr);
out:
    sink_kafka_destroy(sk);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    for (size_t i = 0; i < dr.n_reasons; i++) free(dr.reasons[i]);
    free(dr.reasons);
    ev_kv_list_clear(&props);
    return exit_code;
}

int cmd_dlq(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "replay") == 0) return dlq_replay(argc - 1, argv + 1);
    FILE *out = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
                    ? stdout
                    : stderr;
    fprintf(out, "Usage: evpipe dlq replay [OPTIONS]\n\n"
                 "  replay   re-send dead letters to the raw topic (see evpipe dlq replay --help)\n");
    return out == stdout ? 0 : 2;
}
