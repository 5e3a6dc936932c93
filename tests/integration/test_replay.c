/* test_replay.c — `evpipe replay` against the mock cluster: every line round-trips
 * exactly once and in order per key, gzip equals plain, invalid lines are reported by
 * file:line (and sent with --send-invalid), the time window is exact, --rate paces,
 * failed deliveries exit 1; and `evpipe loadgen` to Kafka. */
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common/util.h"
#include "producers/evscan.h"
#include "tests/testlib.h"

/* ---- helpers ------------------------------------------------------------------------ */

/* Every test writes to topics of its own (unique names), created by the cluster on first
 * produce: librdkafka's mock cluster auto-creates topics (4 partitions) but announces a
 * controller id that is not one of its brokers, so the Admin API's CreateTopics cannot
 * be used against it. */

typedef struct rec_s {
    int32_t partition;
    int64_t offset;
    char *key; /* NULL: no key */
    size_t key_len;
    char *value;
    size_t value_len;
} rec_t;

typedef struct recs_s {
    rec_t *v;
    size_t n, cap;
} recs_t;

static void recs_free(recs_t *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].key);
        free(r->v[i].value);
    }
    free(r->v);
    memset(r, 0, sizeof(*r));
}

static const char *brokers(void) {
    const char *b = tl_brokers();
    ck_assert_msg(b != NULL,
                  "EVPIPE_TEST_BROKERS is not set: run through make check (tests/run.sh) "
                  "or point it at a Kafka cluster");
    return b;
}

static int cmp_rec(const void *a, const void *b) {
    const rec_t *x = a, *y = b;
    if (x->partition != y->partition) return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Reads every message of topic from the beginning, sorted by partition and offset, until each
 * partition is at its end and at least `expect` messages came (60 s at most). */
static void consume_all(const char *topic, size_t expect, recs_t *out) {
    char errstr[512];
    memset(out, 0, sizeof(*out));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char *group = tl_unique_name("replay_check");
    ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), errstr, sizeof(errstr)) ==
              RD_KAFKA_CONF_OK);
    ck_assert(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ==
              RD_KAFKA_CONF_OK);
    ck_assert(rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr)) ==
              RD_KAFKA_CONF_OK);
    ck_assert(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ==
              RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    ck_assert_int_eq(rd_kafka_metadata(rk, 0, rkt, &md, 10000), 0);
    ck_assert_int_eq(md->topic_cnt, 1);
    ck_assert_msg(md->topics[0].err == 0, "topic %s: %s", topic,
                  rd_kafka_err2str(md->topics[0].err));
    int parts = md->topics[0].partition_cnt;
    ck_assert_int_gt(parts, 0);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(list, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(rd_kafka_assign(rk, list), 0);
    rd_kafka_topic_partition_list_destroy(list);
    int *at_eof = calloc((size_t)parts, sizeof(int));
    int eofs = 0;
    int64_t deadline = ev_now_ms() + 60000;
    while ((eofs < parts || out->n < expect) && ev_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (!at_eof[m->partition]) eofs++;
            at_eof[m->partition] = 1;
        } else {
            ck_assert_msg(m->err == 0, "consume: %s", rd_kafka_message_errstr(m));
            if (at_eof[m->partition]) eofs--;
            at_eof[m->partition] = 0;
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 1024;
                out->v = realloc(out->v, out->cap * sizeof(rec_t));
            }
            rec_t *r = &out->v[out->n++];
            r->partition = m->partition;
            r->offset = m->offset;
            r->key = m->key ? malloc(m->key_len + 1) : NULL;
            if (r->key) memcpy(r->key, m->key, m->key_len);
            r->key_len = m->key ? m->key_len : 0;
            r->value = malloc(m->len + 1);
            memcpy(r->value, m->payload, m->len);
            r->value[m->len] = '\0';
            r->value_len = m->len;
        }
        rd_kafka_message_destroy(m);
    }
    ck_assert_msg(eofs == parts, "topic %s not read to its end within 60 s (%zu messages)", topic,
                  out->n);
    if (out->n) qsort(out->v, out->n, sizeof(rec_t), cmp_rec);
    free(at_eof);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    free(group);
}

typedef struct lines_s {
    char **v;
    size_t *len;
    size_t n;
    char *data;
} lines_t;

static void lines_read(const char *path, lines_t *l) {
    char err[256];
    size_t size;
    memset(l, 0, sizeof(*l));
    ck_assert_msg(ev_read_file(path, 1 << 30, &l->data, &size, err, sizeof(err)) == 0, "%s", err);
    size_t cap = 1024;
    l->v = malloc(cap * sizeof(char *));
    l->len = malloc(cap * sizeof(size_t));
    char *p = l->data, *end = l->data + size;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        if (l->n == cap) {
            cap *= 2;
            l->v = realloc(l->v, cap * sizeof(char *));
            l->len = realloc(l->len, cap * sizeof(size_t));
        }
        *nl = '\0';
        l->v[l->n] = p;
        l->len[l->n++] = (size_t)(nl - p);
        p = nl + 1;
    }
}

static void lines_free(lines_t *l) {
    free(l->v);
    free(l->len);
    free(l->data);
}

static char *tmp_path(const char *suffix) {
    char *name = tl_unique_name("/tmp/evpipe_replay");
    size_t n = strlen(name) + strlen(suffix) + 1;
    char *p = malloc(n);
    snprintf(p, n, "%s%s", name, suffix);
    free(name);
    return p;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq((int)fwrite(text, 1, strlen(text), f), (int)strlen(text));
    ck_assert_int_eq(fclose(f), 0);
}

static int run(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char **err, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return tl_run(cmd, NULL, err);
}

/* The visitorId of a line (NULL when it has none). */
static char *line_key(const char *line, size_t len, size_t *key_len) {
    evscan_t *sc = evscan_new();
    evscan_result_t r;
    char *key = NULL;
    if (evscan_line(sc, line, len, &r) == 0) {
        key = strndup(r.visitor_id, r.visitor_id_len);
        *key_len = r.visitor_id_len;
    }
    evscan_destroy(sc);
    return key;
}

/* Checks that recs are exactly the lines (every line once) and that each key's lines
 * came in file order, from one partition. Lines without a key may come in any order. */
static void check_exactly_once_in_order(const lines_t *lines, const recs_t *recs) {
    ck_assert_uint_eq(recs->n, lines->n);
    char **keys = calloc(lines->n, sizeof(char *));
    size_t *key_lens = calloc(lines->n, sizeof(size_t));
    int *used = calloc(lines->n, sizeof(int));
    for (size_t i = 0; i < lines->n; i++)
        keys[i] = line_key(lines->v[i], lines->len[i], &key_lens[i]);
    for (size_t r = 0; r < recs->n; r++) {
        const rec_t *m = &recs->v[r];
        /* The earliest unused line with this key and value; every earlier line of the
         * same key must already have come (in order per key). */
        size_t found = lines->n;
        for (size_t i = 0; i < lines->n; i++) {
            if (used[i]) continue;
            int same_key = m->key ? keys[i] && key_lens[i] == m->key_len &&
                                        memcmp(keys[i], m->key, m->key_len) == 0
                                  : keys[i] == NULL;
            if (!same_key) continue;
            if (lines->len[i] == m->value_len && memcmp(lines->v[i], m->value, m->value_len) == 0) {
                found = i;
                break;
            }
            ck_assert_msg(m->key == NULL,
                          "key %.*s: message out of order (expected line %zu first)",
                          (int)m->key_len, m->key, i + 1);
        }
        ck_assert_msg(found < lines->n, "message not in the file (or delivered twice): %.200s",
                      m->value);
        used[found] = 1;
    }
    /* One partition per key. */
    for (size_t a = 0; a < recs->n; a++)
        for (size_t b = a + 1; b < recs->n; b++)
            if (recs->v[a].key && recs->v[b].key && recs->v[a].key_len == recs->v[b].key_len &&
                memcmp(recs->v[a].key, recs->v[b].key, recs->v[a].key_len) == 0)
                ck_assert_int_eq(recs->v[a].partition, recs->v[b].partition);
    for (size_t i = 0; i < lines->n; i++) free(keys[i]);
    free(keys);
    free(key_lens);
    free(used);
}

/* ---- tests ------------------------------------------------------------------------- */

START_TEST(test_replay_round_trip_exactly_once_in_order) {
    char *file = tmp_path(".ndjson"), *topic = tl_unique_name("replay_rt"), *err = NULL;
    ck_assert_int_eq(
        run(NULL, "%s loadgen --seed 3 --visitors 300 --days 2 --output %s", tl_evpipe_bin(), file),
        0);
    lines_t lines;
    lines_read(file, &lines);
    ck_assert_uint_gt(lines.n, 2000);
    ck_assert_int_eq(
        run(&err, "%s replay --brokers %s --topic %s %s", tl_evpipe_bin(), brokers(), topic, file),
        0);
    char expect[160];
    snprintf(expect, sizeof(expect),
             "read %zu lines; sent %zu; failed 0; skipped-invalid 0; skipped-filtered 0; blank 0",
             lines.n, lines.n);
    ck_assert_msg(strstr(err, expect) != NULL, "%s", err);
    free(err);
    recs_t recs;
    consume_all(topic, lines.n, &recs);
    check_exactly_once_in_order(&lines, &recs);
    for (size_t i = 0; i < recs.n; i++) ck_assert_ptr_nonnull(recs.v[i].key);
    recs_free(&recs);
    lines_free(&lines);
    unlink(file);
    free(file);
    free(topic);
}
END_TEST

START_TEST(test_replay_gzip_and_plain_identical) {
    char *file = tmp_path(".ndjson"), *gz = tmp_path(".ndjson.gz");
    char *t_plain = tl_unique_name("replay_plain"), *t_gz = tl_unique_name("replay_gz");
    ck_assert_int_eq(run(NULL,
                         "%s loadgen --seed 4 --visitors 120 --days 2 --disorder 600 --output %s",
                         tl_evpipe_bin(), file),
                     0);
    lines_t lines;
    lines_read(file, &lines);
    gzFile g = gzopen(gz, "wb6");
    ck_assert_ptr_nonnull(g);
    for (size_t i = 0; i < lines.n; i++) {
        ck_assert_int_eq(gzwrite(g, lines.v[i], (unsigned)lines.len[i]), (int)lines.len[i]);
        ck_assert_int_eq(gzputc(g, '\n'), '\n');
    }
    ck_assert_int_eq(gzclose(g), Z_OK);
    ck_assert_int_eq(run(NULL, "%s replay --brokers %s --topic %s %s", tl_evpipe_bin(), brokers(),
                         t_plain, file),
                     0);
    ck_assert_int_eq(
        run(NULL, "%s replay --brokers %s --topic %s %s", tl_evpipe_bin(), brokers(), t_gz, gz), 0);
    recs_t a, b;
    consume_all(t_plain, lines.n, &a);
    consume_all(t_gz, lines.n, &b);
    check_exactly_once_in_order(&lines, &b);
    /* Partition by partition, the same messages in the same order. */
    ck_assert_uint_eq(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        ck_assert_int_eq(a.v[i].partition, b.v[i].partition);
        ck_assert_uint_eq(a.v[i].key_len, b.v[i].key_len);
        ck_assert(memcmp(a.v[i].key, b.v[i].key, a.v[i].key_len) == 0);
        ck_assert_str_eq(a.v[i].value, b.v[i].value);
    }
    recs_free(&a);
    recs_free(&b);
    lines_free(&lines);
    unlink(file);
    unlink(gz);
    free(file);
    free(gz);
    free(t_plain);
    free(t_gz);
}
END_TEST

#define EV(id, ts)                                                                                 \
    "{\"eventId\":\"" id "\",\"type\":\"PAGE_VIEW\",\"timestamp\":" ts ",\"visitorId\":\"v-" id    \
    "\",\"url\":\"https://shop.example.com/\"}"

#define MIXED "tests/data/replay/mixed.ndjson" /* described in tests/data/replay/README.md */

START_TEST(test_replay_invalid_lines_reported_and_sent_on_demand) {
    char *t1 = tl_unique_name("replay_inv"), *t2 = tl_unique_name("replay_inv_sent");
    char *err = NULL;
    ck_assert_int_eq(
        run(&err, "%s replay --brokers %s --topic %s %s", tl_evpipe_bin(), brokers(), t1, MIXED),
        0);
    static const char *const expected[] = {
        MIXED ":3: invalid JSON", MIXED ":6: not a JSON object (top level is an array) (skipped)",
        MIXED ":7: no visitorId (skipped)", MIXED ":8: visitorId is null (skipped)",
        MIXED ":11: invalid JSON"};
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
        ck_assert_msg(strstr(err, expected[i]) != NULL, "no '%s' in:\n%s", expected[i], err);
    int reported = 0;
    for (char *p = err; (p = strstr(p, MIXED ":")) != NULL; p++) reported++;
    ck_assert_int_eq(reported, 5);
    ck_assert_msg(
        strstr(err,
               "read 11 lines; sent 5; failed 0; skipped-invalid 5; skipped-filtered 0; blank 1") !=
            NULL,
        "%s", err);
    free(err);
    recs_t recs;
    consume_all(t1, 5, &recs);
    ck_assert_uint_eq(recs.n, 5);
    /* Each sent line with its key, byte for byte (CR of the CRLF line stripped). */
    static const struct {
        const char *key, *id;
    } want[] = {{"visitor-a", "\"m-1\""},
                {"visitor-a", "\"m-2\""},
                {"visitor-b", "\"m-4\""},
                {"visitor-b", "\"m-9\""},
                {"visitor-\xc3\xa9", "\"m-10\""}};
    lines_t lines;
    lines_read(MIXED, &lines);
    for (size_t w = 0; w < 5; w++) {
        int found = 0;
        for (size_t i = 0; i < recs.n; i++) {
            if (!strstr(recs.v[i].value, want[w].id) ||
                strstr(recs.v[i].value, want[w].id) - recs.v[i].value != 11)
                continue;
            found++;
            ck_assert_uint_eq(recs.v[i].key_len, strlen(want[w].key));
            ck_assert(memcmp(recs.v[i].key, want[w].key, recs.v[i].key_len) == 0);
            ck_assert_ptr_null(strchr(recs.v[i].value, '\r'));
            int in_file = 0;
            for (size_t l = 0; l < lines.n; l++) {
                size_t len = lines.len[l];
                if (len && lines.v[l][len - 1] == '\r') len--;
                in_file +=
                    len == recs.v[i].value_len && memcmp(lines.v[l], recs.v[i].value, len) == 0;
            }
            ck_assert_int_eq(in_file, 1);
        }
        ck_assert_msg(found == 1, "%s sent %d times", want[w].id, found);
    }
    lines_free(&lines);
    recs_free(&recs);

    /* --send-invalid: the 5 invalid lines go too, unkeyed, byte for byte. */
    ck_assert_int_eq(run(&err, "%s replay --brokers %s --topic %s --send-invalid %s",
                         tl_evpipe_bin(), brokers(), t2, MIXED),
                     0);
    ck_assert_msg(strstr(err, "read 11 lines; sent 10 (5 of them invalid, --send-invalid); failed "
                              "0; skipped-invalid 0") != NULL,
                  "%s", err);
    ck_assert_msg(strstr(err, MIXED ":6: not a JSON object (top level is an array) (sent as is") !=
                      NULL,
                  "%s", err);
    free(err);
    consume_all(t2, 10, &recs);
    ck_assert_uint_eq(recs.n, 10);
    int unkeyed = 0, array_seen = 0, cut_seen = 0;
    for (size_t i = 0; i < recs.n; i++) {
        if (!recs.v[i].key) unkeyed++;
        array_seen +=
            strcmp(recs.v[i].value,
                   "[{\"eventId\":\"m-6\",\"type\":\"CLICK\",\"visitorId\":\"visitor-b\"}]") == 0;
        cut_seen +=
            strncmp(recs.v[i].value, "{\"eventId\":\"m-11\"", 17) == 0 && recs.v[i].key == NULL;
    }
    ck_assert_int_eq(unkeyed, 5);
    ck_assert_int_eq(array_seen, 1);
    ck_assert_int_eq(cut_seen, 1);
    recs_free(&recs);
    free(t1);
    free(t2);
}
END_TEST

START_TEST(test_replay_reports_first_twenty_then_counts) {
    char *file = tmp_path(".ndjson"), *topic = tl_unique_name("replay_many"), *err = NULL;
    FILE *f = fopen(file, "w");
    for (int i = 1; i <= 30; i++) {
        if (i % 6 == 0)
            fprintf(f, EV("ok%d", "\"2026-01-05T10:00:00Z\"") "\n", i, i);
        else
            fprintf(f, "garbage %d\n", i);
    }
    fclose(f);
    ck_assert_int_eq(
        run(&err, "%s replay --brokers %s --topic %s %s", tl_evpipe_bin(), brokers(), topic, file),
        0);
    int reported = 0;
    for (char *p = err; (p = strstr(p, file)) != NULL; p++) reported += p[strlen(file)] == ':';
    ck_assert_int_eq(reported, 20);
    ck_assert_msg(strstr(err, "5 more invalid lines not shown") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "read 30 lines; sent 5; failed 0; skipped-invalid 25;") != NULL, "%s",
                  err);
    free(err);
    unlink(file);
    free(file);
    free(topic);
}
END_TEST

/* --from/--to keep exactly the events of [from, to), whatever the timestamp format. */
START_TEST(test_replay_time_window_exact) {
    char *file = tmp_path(".ndjson"), *topic = tl_unique_name("replay_window"), *err = NULL;
    const int64_t base = 1767607200000LL; /* 2026-01-05T10:00:00Z */
    FILE *f = fopen(file, "w");
    for (int i = 0; i < 100; i++) {
        int64_t t = base + (int64_t)i * 60000;
        char ts[64];
        if (i % 3 == 0) {
            snprintf(ts, sizeof(ts), "%lld", (long long)t);
        } else if (i % 3 == 1) {
            char z[32];
            ev_format_rfc3339_ms(t, z);
            snprintf(ts, sizeof(ts), "\"%s\"", z);
        } else { /* the same instant at +01:00 */
            char z[32];
            ev_format_rfc3339_ms(t + 3600000, z);
            z[23] = '\0';
            snprintf(ts, sizeof(ts), "\"%s+01:00\"", z);
        }
        fprintf(f,
                "{\"eventId\":\"e%d\",\"type\":\"CLICK\",\"timestamp\":%s,\"visitorId\":\"v%d\"}\n",
                i, ts, i % 7);
    }
    fprintf(f, "{\"eventId\":\"no-time\",\"type\":\"CLICK\",\"visitorId\":\"v1\"}\n");
    fclose(f);
    ck_assert_int_eq(run(&err,
                         "%s replay --brokers %s --topic %s --from 2026-01-05T10:20:00Z --to "
                         "2026-01-05T11:50:00+01:00 %s",
                         tl_evpipe_bin(), brokers(), topic, file),
                     0);
    ck_assert_msg(
        strstr(err, "read 101 lines; sent 30; failed 0; skipped-invalid 0; skipped-filtered 71 "
                    "(1 without a readable timestamp)") != NULL,
        "%s", err);
    free(err);
    recs_t recs;
    consume_all(topic, 30, &recs);
    ck_assert_uint_eq(recs.n, 30);
    int seen[100] = {0};
    for (size_t i = 0; i < recs.n; i++) {
        int id = -1;
        ck_assert_int_eq(sscanf(recs.v[i].value, "{\"eventId\":\"e%d\"", &id), 1);
        ck_assert_msg(id >= 20 && id < 50, "event %d is outside the window", id);
        seen[id]++;
    }
    for (int i = 20; i < 50; i++) ck_assert_int_eq(seen[i], 1);
    recs_free(&recs);
    unlink(file);
    free(file);
    free(topic);
}
END_TEST

START_TEST(test_replay_stdin_at_rate) {
    char *file = tmp_path(".ndjson"), *topic = tl_unique_name("replay_rate"), *err = NULL;
    ck_assert_int_eq(run(NULL,
                         "%s loadgen --seed 6 --visitors 40 --days 1 --events 300 --output %s",
                         tl_evpipe_bin(), file),
                     0);
    int64_t t0 = ev_mono_ns();
    ck_assert_int_eq(run(&err, "cat %s | %s replay --brokers %s --topic %s --rate 150 -", file,
                         tl_evpipe_bin(), brokers(), topic),
                     0);
    double s = (double)(ev_mono_ns() - t0) / 1e9;
    /* 300 events at 150/s, after a burst of 1/20 s worth: about 2 s. */
    ck_assert_msg(s >= 1.8 && s < 8.0, "took %.2f s", s);
    ck_assert_msg(strstr(err, "read 300 lines; sent 300; failed 0") != NULL, "%s", err);
    free(err);
    lines_t lines;
    lines_read(file, &lines);
    recs_t recs;
    consume_all(topic, 300, &recs);
    check_exactly_once_in_order(&lines, &recs);
    recs_free(&recs);
    lines_free(&lines);
    unlink(file);
    free(file);
    free(topic);
}
END_TEST

START_TEST(test_replay_failed_delivery_exits_1) {
    char *file = tmp_path(".ndjson"), *err = NULL;
    write_file(file,
               EV("a", "\"2026-01-05T10:00:00Z\"") "\n" EV("b", "\"2026-01-05T10:00:01Z\"") "\n");
    /* Nothing listens on port 1: both messages time out. */
    ck_assert_int_eq(
        run(&err, "%s replay --brokers 127.0.0.1:1 -X message.timeout.ms=1500 --log-level error %s",
            tl_evpipe_bin(), file),
        1);
    ck_assert_msg(strstr(err, "2 events were not delivered") != NULL, "%s", err);
    free(err);
    unlink(file);
    free(file);
}
END_TEST

START_TEST(test_replay_usage_errors) {
    char *file = tmp_path(".ndjson"), *err = NULL;
    write_file(file, EV("a", "\"2026-01-05T10:00:00Z\"") "\n");
    static const struct {
        const char *args, *message;
    } cases[] = {
        {"", "no input FILE"},
        {"/nonexistent/events.ndjson", "cannot read /nonexistent/events.ndjson"},
        {"--from 2026-01-05 FILE", "--from: '2026-01-05' is not an RFC 3339 time"},
        {"--from 2026-01-06T00:00:00Z --to 2026-01-05T00:00:00Z FILE", "--to must be after --from"},
        {"-X no.such.property=1 FILE", "Kafka property no.such.property=1"},
        {"--rate x FILE", "--rate: 'x' is not a number"},
        {"- - ", "stdin) given more than once"},
        {"/tmp FILE", "/tmp is a directory"},
    };
    char args[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *at = strstr(cases[i].args, "FILE");
        if (at)
            snprintf(args, sizeof(args), "%.*s%s", (int)(at - cases[i].args), cases[i].args, file);
        else
            snprintf(args, sizeof(args), "%s", cases[i].args);
        ck_assert_int_eq(run(&err, "%s replay --brokers %s %s", tl_evpipe_bin(), brokers(), args),
                         2);
        ck_assert_msg(strstr(err, cases[i].message) != NULL, "%s: %s", args, err);
        free(err);
    }
    ck_assert_int_eq(run(&err, "env -u KAFKA_BROKERS %s replay %s", tl_evpipe_bin(), file), 2);
    ck_assert_ptr_nonnull(strstr(err, "--brokers (or KAFKA_BROKERS) is required"));
    free(err);
    /* The environment gives the brokers when the flag does not. */
    char *topic = tl_unique_name("replay_env");
    ck_assert_int_eq(run(&err, "KAFKA_BROKERS=%s %s replay --topic %s %s", brokers(),
                         tl_evpipe_bin(), topic, file),
                     0);
    free(err);
    recs_t recs;
    consume_all(topic, 1, &recs);
    ck_assert_uint_eq(recs.n, 1);
    recs_free(&recs);
    unlink(file);
    free(file);
    free(topic);
}
END_TEST

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* `evpipe loadgen --brokers`: the same messages as the file; unkeyed exactly those
 * made without a visitorId. */
START_TEST(test_loadgen_to_kafka_matches_file) {
    char *file = tmp_path(".ndjson"), *stats = tmp_path(".json"),
         *topic = tl_unique_name("loadgen_kafka");
    char *err = NULL;
    const char *opts = "--seed 12 --visitors 100 --days 2 --dup-ratio 0.05 --bad-ratio 0.1";
    ck_assert_int_eq(run(NULL, "%s loadgen %s --output %s", tl_evpipe_bin(), opts, file), 0);
    ck_assert_int_eq(
        run(&err, "%s loadgen %s --brokers %s --topic %s -X compression.type=zstd --stats %s",
            tl_evpipe_bin(), opts, brokers(), topic, stats),
        0);
    lines_t lines;
    lines_read(file, &lines);
    char expect[96];
    snprintf(expect, sizeof(expect), "delivered %zu, failed 0", lines.n);
    ck_assert_msg(strstr(err, expect) != NULL, "%s", err);
    free(err);
    char *json = NULL, errstr[256];
    size_t json_len;
    ck_assert(ev_read_file(stats, 1 << 20, &json, &json_len, errstr, sizeof(errstr)) == 0);
    const char *at = strstr(json, "\"missing_visitor_id\":");
    ck_assert_ptr_nonnull(at);
    long long missing = strtoll(at + strlen("\"missing_visitor_id\":"), NULL, 10);
    ck_assert_int_gt(missing, 0);
    recs_t recs;
    consume_all(topic, lines.n, &recs);
    ck_assert_uint_eq(recs.n, lines.n);
    long long unkeyed = 0;
    char **got = malloc(recs.n * sizeof(char *)), **want = malloc(lines.n * sizeof(char *));
    for (size_t i = 0; i < recs.n; i++) {
        unkeyed += recs.v[i].key == NULL;
        got[i] = recs.v[i].value;
        want[i] = lines.v[i];
    }
    ck_assert_int_eq(unkeyed, missing);
    qsort(got, recs.n, sizeof(char *), cmp_str_ptr);
    qsort(want, lines.n, sizeof(char *), cmp_str_ptr);
    for (size_t i = 0; i < recs.n; i++) ck_assert_str_eq(got[i], want[i]);
    free(got);
    free(want);
    free(json);
    recs_free(&recs);
    lines_free(&lines);
    unlink(file);
    unlink(stats);
    free(file);
    free(stats);
    free(topic);
}
END_TEST

int main(void) {
    Suite *s = suite_create("replay");
    TCase *tc = tcase_create("mock cluster");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_replay_round_trip_exactly_once_in_order);
    tcase_add_test(tc, test_replay_gzip_and_plain_identical);
    tcase_add_test(tc, test_replay_invalid_lines_reported_and_sent_on_demand);
    tcase_add_test(tc, test_replay_reports_first_twenty_then_counts);
    tcase_add_test(tc, test_replay_time_window_exact);
    tcase_add_test(tc, test_replay_stdin_at_rate);
    tcase_add_test(tc, test_replay_failed_delivery_exits_1);
    tcase_add_test(tc, test_replay_usage_errors);
    tcase_add_test(tc, test_loadgen_to_kafka_matches_file);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}
