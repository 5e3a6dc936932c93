/* test_dlq.c — `evpipe dlq replay` end to end against PostgreSQL, ingest and a mock
 * Kafka cluster hosted in this test: a stream with invalid lines is ingested, the dry
 * run's counts per reason equal the validator's verdict on the file, dead letters of an
 * older release (valid events) are replayed by reason and time window and stored
 * exactly once, still-invalid ones replayed as they are come back to the dead-letter
 * topic, and bad usage exits 2. */
#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/kmock.h"
#include "tests/integration/ingest_oracle.h"
#include "tests/testlib.h"
#include "transforms/event.h"

#define RAW_PARTS 6
#define DLQ_PARTS 2
#define N_OLD 30                          /* valid events dead-lettered by an "older release" */
#define T0_MS 1767225600000LL             /* 2026-01-01T00:00:00Z */
#define HOUR_MS 3600000LL

typedef struct fixture_s {
    ev_kmock_t *km;
    char brokers[512];
    char *raw, *dlq, *enriched, *group, *db;
    char path[64];
    oracle_t oracle;
} fixture_t;

static void fixture_setup(fixture_t *fx) {
    char errstr[256];
    memset(fx, 0, sizeof(*fx));
    fx->km = ev_kmock_new(3, errstr, sizeof(errstr));
    ck_assert_msg(fx->km != NULL, "%s", errstr);
    snprintf(fx->brokers, sizeof(fx->brokers), "%s", ev_kmock_bootstraps(fx->km));
    fx->raw = tl_unique_name("raw");
    fx->dlq = tl_unique_name("dlq");
    fx->enriched = tl_unique_name("enriched");
    fx->group = tl_unique_name("g");
    ck_assert_int_eq(ev_kmock_topic_create(fx->km, fx->raw, RAW_PARTS, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(ev_kmock_topic_create(fx->km, fx->dlq, DLQ_PARTS, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(ev_kmock_topic_create(fx->km, fx->enriched, 6, errstr, sizeof(errstr)), 0);
    snprintf(fx->path, sizeof(fx->path), "/tmp/evpipe_dlq_XXXXXX");
    int fd = mkstemp(fx->path);
    ck_assert(fd >= 0);
    close(fd);
    char cmd[1024], *err = NULL;
    snprintf(cmd, sizeof(cmd),
             "%s loadgen --output %s --seed 5 --visitors 60 --days 2 --dup-ratio 0.02 "
             "--bad-ratio 0.08",
             tl_evpipe_bin(), fx->path);
    ck_assert_msg(tl_run(cmd, NULL, &err) == 0, "loadgen: %s", err);
    free(err);
    oracle_compute(fx->path, 1800 * 1000LL, 86400 * 1000LL, &fx->oracle);
    ck_assert_msg(fx->oracle.n_invalid >= 20, "too few invalid lines: %zu", fx->oracle.n_invalid);
    ck_assert_int_eq(oracle_produce_file(fx->brokers, fx->raw, fx->path), fx->oracle.n_lines);
    fx->db = tl_db_create_migrated("dlq");
}

static void fixture_teardown(fixture_t *fx) {
    unlink(fx->path);
    oracle_free(&fx->oracle);
    tl_db_drop(fx->db);
    free(fx->db);
    free(fx->raw);
    free(fx->dlq);
    free(fx->enriched);
    free(fx->group);
    ev_kmock_destroy(fx->km);
}

static void run_ingest(const fixture_t *fx) {
    char cmd[2048], *err = NULL;
    snprintf(cmd, sizeof(cmd),
             "%s ingest --brokers %s --database '%s' --topic %s --group %s --dlq-topic %s "
             "--enriched-topic %s --metrics-port -1 --batch-ms 100 --until-caught-up",
             tl_evpipe_bin(), fx->brokers, fx->db, fx->raw, fx->group, fx->dlq, fx->enriched);
    int rc = tl_run(cmd, NULL, &err);
    ck_assert_msg(rc == 0, "ingest exit %d: %s", rc, err);
    free(err);
}

/* Runs `evpipe dlq replay ARGS` on the fixture's topics; returns the exit status. */
static int run_replay(const fixture_t *fx, const char *args, char **out, char **err) {
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s dlq replay --brokers %s --dlq-topic %s --topic %s %s",
             tl_evpipe_bin(), fx->brokers, fx->dlq, fx->raw, args);
    return tl_run(cmd, out, err);
}

static void watermarks(const fixture_t *fx, const char *topic, int n, int64_t *hi_out) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", fx->brokers, errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert(rk != NULL);
    for (int p = 0; p < n; p++) {
        int64_t lo = 0;
        ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi_out[p], 10000),
                         0);
    }
    rd_kafka_destroy(rk);
}

static long long topic_total(const fixture_t *fx, const char *topic, int n) {
    int64_t hi[RAW_PARTS] = {0};
    watermarks(fx, topic, n, hi);
    long long total = 0;
    for (int p = 0; p < n; p++) total += hi[p];
    return total;
}

/* One message read back: key and value as NUL-terminated copies, one header. */
typedef struct msg_s {
    char *key, *value, *header;
} msg_t;

/* Reads topic from from[p] to its current end on each of n partitions; returns the
 * messages (count in *n_out), header_name's value kept per message. */
static msg_t *read_range(const fixture_t *fx, const char *topic, int n, const int64_t *from,
                         const char *header_name, size_t *n_out) {
    char errstr[256];
    int64_t hi[RAW_PARTS] = {0};
    watermarks(fx, topic, n, hi);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", fx->brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "dlq-test-reader", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
    int64_t want = 0;
    for (int p = 0; p < n; p++) {
        want += hi[p] - from[p];
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = from[p];
    }
    ck_assert_int_eq(rd_kafka_assign(rk, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);
    msg_t *msgs = calloc((size_t)want + 1, sizeof(*msgs));
    size_t got = 0;
    for (int idle = 0; (int64_t)got < want && idle < 300;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            idle++;
            continue;
        }
        ck_assert_msg(!m->err, "%s", rd_kafka_message_errstr(m));
        msg_t *out = &msgs[got++];
        out->key = m->key ? strndup(m->key, m->key_len) : NULL;
        out->value = strndup(m->payload, m->len);
        rd_kafka_headers_t *hdrs = NULL;
        const void *v = NULL;
        size_t vlen = 0;
        if (header_name && rd_kafka_message_headers(m, &hdrs) == 0 &&
            rd_kafka_header_get_last(hdrs, header_name, &v, &vlen) == 0 && v)
            out->header = strndup(v, vlen);
        rd_kafka_message_destroy(m);
    }
    ck_assert_int_eq((int64_t)got, want);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    *n_out = got;
    return msgs;
}

static void msgs_free(msg_t *msgs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(msgs[i].key);
        free(msgs[i].value);
        free(msgs[i].header);
    }
    free(msgs);
}

/* Count of reason in a table of (reason, count). */
typedef struct reason_count_s {
    char reason[48];
    long long n;
} reason_count_t;

static void bump(reason_count_t *rc, size_t *n, const char *reason) {
    for (size_t i = 0; i < *n; i++)
        if (strcmp(rc[i].reason, reason) == 0) {
            rc[i].n++;
            return;
        }
    ck_assert(*n < 64);
    snprintf(rc[*n].reason, sizeof(rc[*n].reason), "%s", reason);
    rc[(*n)++].n = 1;
}

/* The "in_dlq selected" columns of reason in a replay summary; -1 when absent. */
static void summary_row(const char *out, const char *reason, long long *in_dlq,
                        long long *selected) {
    *in_dlq = *selected = -1;
    for (const char *line = out; line && *line;) {
        char name[64];
        long long a, b;
        if (sscanf(line, "%63s %lld %lld", name, &a, &b) == 3 && strcmp(name, reason) == 0) {
            *in_dlq = a;
            *selected = b;
            return;
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
}

static long long summary_sent(const char *out) {
    const char *s = strstr(out, "\nsent ");
    ck_assert_msg(s != NULL, "no 'sent' line in: %s", out);
    return strtoll(s + 6, NULL, 10);
}

/* The expected dead letters per reason: the validator's verdict on every line. */
static size_t expected_reasons(const fixture_t *fx, reason_count_t *rc) {
    size_t n = 0;
    FILE *f = fopen(fx->path, "rb");
    ck_assert(f != NULL);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') len--;
        tf_event_t ev;
        tf_event_error_t err;
        tf_event_init(&ev);
        if (tf_event_parse(&ev, line, (size_t)len, &err) != 0)
            bump(rc, &n, tf_event_reason_code(err.reason));
        tf_event_reset(&ev);
    }
    free(line);
    fclose(f);
    return n;
}

/* Writes the N_OLD dead letters of an older release: valid events of new visitors,
 * reason "internal", dead-lettered at T0 + i hours. */
static void produce_old_dead_letters(const fixture_t *fx, char keys[][40], char values[][512]) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", fx->brokers, errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert(rk != NULL);
    for (int i = 0; i < N_OLD; i++) {
        snprintf(keys[i], 40, "00000000-0000-4000-8000-%012d", 900000 + i);
        snprintf(values[i], 512,
                 "{\"eventId\":\"11111111-0000-4000-8000-%012d\",\"type\":\"PAGE_VIEW\","
                 "\"timestamp\":\"2026-01-05T12:%02d:00.000Z\",\"visitorId\":\"%.36s\","
                 "\"url\":\"https://shop.example.com/recovered/%d\"}",
                 i, i, keys[i], i);
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, "evpipe.reason", -1, "internal", -1);
        rd_kafka_header_add(h, "evpipe.error", -1, "rejected by an older release", -1);
        ck_assert_int_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(fx->dlq),
                                           RD_KAFKA_V_KEY(keys[i], strlen(keys[i])),
                                           RD_KAFKA_V_VALUE(values[i], strlen(values[i])),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_TIMESTAMP(T0_MS + i * HOUR_MS),
                                           RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
                         0);
    }
    ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);
}

static long long db_count(const fixture_t *fx, const char *sql) {
    PGconn *conn = tl_connect(fx->db);
    long long n = tl_query_ll(conn, sql);
    PQfinish(conn);
    return n;
}

START_TEST(test_dlq_replay_end_to_end) {
    fixture_t fx;
    fixture_setup(&fx);
    run_ingest(&fx);
    long long n_invalid = (long long)fx.oracle.n_invalid, n_valid = (long long)fx.oracle.n_valid_unique;
    ck_assert_int_eq(topic_total(&fx, fx.dlq, DLQ_PARTS), n_invalid);
    ck_assert_int_eq(db_count(&fx, "SELECT count(*) FROM analytics_events"), n_valid);

    /* Dry run: exact counts per reason, nothing sent. */
    reason_count_t want[64];
    size_t n_want = expected_reasons(&fx, want);
    ck_assert_int_ge(n_want, 2);
    long long raw_before = topic_total(&fx, fx.raw, RAW_PARTS);
    char *out = NULL, *err = NULL;
    ck_assert_msg(run_replay(&fx, "--dry-run", &out, &err) == 0, "%s", err);
    size_t reasons_listed = 0;
    for (size_t i = 0; i < n_want; i++) {
        long long in_dlq, selected;
        summary_row(out, want[i].reason, &in_dlq, &selected);
        ck_assert_msg(in_dlq == want[i].n && selected == want[i].n, "%s: %lld/%lld, want %lld\n%s",
                      want[i].reason, in_dlq, selected, want[i].n, out);
        reasons_listed++;
    }
    long long total_in, total_sel;
    summary_row(out, "total", &total_in, &total_sel);
    ck_assert_int_eq(total_in, n_invalid);
    ck_assert_int_eq(total_sel, n_invalid);
    ck_assert_ptr_null(strstr(out, "\nsent "));
    ck_assert_int_eq(topic_total(&fx, fx.raw, RAW_PARTS), raw_before);
    free(out);
    free(err);

    /* An older release dead-lettered 30 valid events: replay those of hours [10, 20). */
    static char keys[N_OLD][40], values[N_OLD][512];
    produce_old_dead_letters(&fx, keys, values);
    int64_t raw_hi[RAW_PARTS];
    watermarks(&fx, fx.raw, RAW_PARTS, raw_hi);
    ck_assert_msg(run_replay(&fx,
                             "--reason internal --from 2026-01-01T10:00:00Z "
                             "--to 2026-01-01T20:00:00Z",
                             &out, &err) == 0,
                  "%s", err);
    long long in_dlq, selected;
    summary_row(out, "internal", &in_dlq, &selected);
    ck_assert_int_eq(in_dlq, N_OLD);
    ck_assert_int_eq(selected, 10);
    summary_row(out, "total", &total_in, &total_sel);
    ck_assert_int_eq(total_in, n_invalid + N_OLD);
    ck_assert_int_eq(total_sel, 10);
    ck_assert_int_eq(summary_sent(out), 10);
    free(out);
    free(err);
    /* Exactly those ten, byte for byte, under their original keys. */
    size_t n_new = 0;
    msg_t *sent = read_range(&fx, fx.raw, RAW_PARTS, raw_hi, "evpipe.replay.reason", &n_new);
    ck_assert_int_eq(n_new, 10);
    unsigned char seen[N_OLD] = {0};
    for (size_t i = 0; i < n_new; i++) {
        int at = -1;
        for (int j = 0; j < N_OLD; j++)
            if (sent[i].key && strcmp(sent[i].key, keys[j]) == 0) at = j;
        ck_assert_msg(at >= 10 && at < 20 && !seen[at], "unexpected replayed key %s", sent[i].key);
        seen[at] = 1;
        ck_assert_str_eq(sent[i].value, values[at]);
        ck_assert_str_eq(sent[i].header ? sent[i].header : "", "internal");
    }
    msgs_free(sent, n_new);
    run_ingest(&fx);
    ck_assert_int_eq(db_count(&fx, "SELECT count(*) FROM analytics_events"), n_valid + 10);
    ck_assert_int_eq(db_count(&fx, "SELECT count(*) FROM analytics_events WHERE \"eventId\" "
                                   "::text LIKE '11111111-%'"),
                     10);
    ck_assert_int_eq(topic_total(&fx, fx.dlq, DLQ_PARTS), n_invalid + N_OLD);

    /* Still-invalid messages replayed as they are: dead-lettered again, nothing stored. */
    const reason_count_t *top = &want[0];
    for (size_t i = 1; i < n_want; i++)
        if (want[i].n > top->n) top = &want[i];
    char args[128];
    snprintf(args, sizeof(args), "--reason %s", top->reason);
    ck_assert_msg(run_replay(&fx, args, &out, &err) == 0, "%s", err);
    ck_assert_int_eq(summary_sent(out), top->n);
    free(out);
    free(err);
    run_ingest(&fx);
    ck_assert_int_eq(topic_total(&fx, fx.dlq, DLQ_PARTS), n_invalid + N_OLD + top->n);
    ck_assert_int_eq(db_count(&fx, "SELECT count(*) FROM analytics_events"), n_valid + 10);

    /* All 30 again: the ten stored ones are duplicates, the other twenty are new. */
    ck_assert_msg(run_replay(&fx, "--reason internal", &out, &err) == 0, "%s", err);
    ck_assert_int_eq(summary_sent(out), N_OLD);
    free(out);
    free(err);
    run_ingest(&fx);
    ck_assert_int_eq(db_count(&fx, "SELECT count(*) FROM analytics_events"), n_valid + N_OLD);
    ck_assert_int_eq(db_count(&fx, "SELECT count(*) FROM page_views WHERE url LIKE "
                                   "'%/recovered/%'"),
                     N_OLD);
    ck_assert_int_eq(topic_total(&fx, fx.dlq, DLQ_PARTS), n_invalid + N_OLD + top->n);
    (void)reasons_listed;
    fixture_teardown(&fx);
}
END_TEST

/* ---- eventIds shared by two visitors ------------------------------------------------ */

/* Produces the lines to partition 0 of topic, keyed by visitor, in order. */
static void produce_in_order(const fixture_t *fx, const char *const (*lines)[2], size_t n) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", fx->brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert(rk != NULL);
    for (size_t i = 0; i < n; i++) {
        char key[64], value[1024]; /* the producer's arguments are not const */
        ck_assert_uint_lt(strlen(lines[i][1]), sizeof(value));
        snprintf(key, sizeof(key), "%s", lines[i][0]);
        snprintf(value, sizeof(value), "%s", lines[i][1]);
        ck_assert_int_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(fx->raw), RD_KAFKA_V_PARTITION(0),
                                           RD_KAFKA_V_KEY(key, strlen(key)),
                                           RD_KAFKA_V_VALUE(value, strlen(value)),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_END),
                         0);
    }
    ck_assert_int_eq(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);
}

static char *db_text(const fixture_t *fx, const char *sql) {
    PGconn *conn = tl_connect(fx->db);
    char *text = tl_query_text(conn, sql);
    PQfinish(conn);
    return text;
}

#define assert_db_text(fx, sql, expected)                                                 \
    do {                                                                                  \
        char *got_ = db_text((fx), (sql));                                                \
        ck_assert_msg(got_ && strcmp(got_, (expected)) == 0, "%s\n got: %s\n want: %s",   \
                      (sql), got_ ? got_ : "(null)", (expected));                         \
        free(got_);                                                                       \
    } while (0)

/* Every row count, "sessions/events/page views/conversions". */
static const char k_q_counts[] =
    "SELECT (SELECT count(*) FROM analytics_sessions) || '/' ||"
    " (SELECT count(*) FROM analytics_events) || '/' || (SELECT count(*) FROM page_views)"
    " || '/' || (SELECT count(*) FROM conversion_events)";
static const char k_q_offsets[] =
    "SELECT string_agg(partition || ':' || \"nextOffset\", ',' ORDER BY partition)"
    " FROM consumer_offsets";
static const char k_q_rows[] =
    "SELECT string_agg(x, ' ' ORDER BY x) FROM ("
    " SELECT 'e:' || \"eventId\" || ':' || \"visitorId\" AS x FROM analytics_events"
    " UNION ALL SELECT 'p:' || \"eventId\" || ':' || \"visitorId\" || ':' ||"
    "  COALESCE(\"timeOnPage\"::text, '-') FROM page_views"
    " UNION ALL SELECT 'c:' || \"eventId\" || ':' || \"visitorId\" || ':' || value"
    "  FROM conversion_events"
    " UNION ALL SELECT 's:' || \"visitorId\" || ':' || \"eventCount\" || ':' || \"pageViewCount\""
    "  FROM analytics_sessions) u";

/* The dead letters from offset from_total on (DLQ partitions read from the start): each
 * "source offset|reason|error" for the expected values, in the order of values. */
static void assert_conflict_letters(const fixture_t *fx, const char *const *values,
                                    const long long *source_offsets, size_t n) {
    int64_t from[DLQ_PARTS] = {0};
    size_t n_got = 0, n_err = 0, n_off = 0;
    msg_t *reason = read_range(fx, fx->dlq, DLQ_PARTS, from, "evpipe.reason", &n_got);
    msg_t *error = read_range(fx, fx->dlq, DLQ_PARTS, from, "evpipe.error", &n_err);
    msg_t *offset = read_range(fx, fx->dlq, DLQ_PARTS, from, "evpipe.source.offset", &n_off);
    ck_assert_uint_eq(n_got, n);
    ck_assert_uint_eq(n_err, n);
    ck_assert_uint_eq(n_off, n);
    for (size_t i = 0; i < n; i++) {
        size_t at = n;
        for (size_t j = 0; j < n; j++)
            if (strcmp(reason[j].value, values[i]) == 0) at = j;
        ck_assert_msg(at < n, "no dead letter for %s", values[i]);
        ck_assert_str_eq(reason[at].header ? reason[at].header : "", "event_id_conflict");
        /* The three reads see the same partitions in the same order. */
        ck_assert_str_eq(error[at].value, values[i]);
        ck_assert_str_eq(error[at].header ? error[at].header : "",
                         "eventId: already stored, or earlier in the batch, for another visitor");
        ck_assert_str_eq(offset[at].value, values[i]);
        ck_assert_int_eq(strtoll(offset[at].header ? offset[at].header : "-1", NULL, 10),
                         source_offsets[i]);
    }
    msgs_free(reason, n_got);
    msgs_free(error, n_err);
    msgs_free(offset, n_off);
}

#define PV(id, vis, t, path) \
    "{\"eventId\":\"" id "\",\"type\":\"PAGE_VIEW\",\"timestamp\":\"2026-03-01T10:" t "Z\"," \
    "\"visitorId\":\"" vis "\",\"url\":\"https://shop.example.com/" path "\"}"
#define BUY(id, vis, t, value) \
    "{\"eventId\":\"" id "\",\"type\":\"PURCHASE\",\"timestamp\":\"2026-03-01T10:" t "Z\"," \
    "\"visitorId\":\"" vis "\",\"value\":" value ",\"currency\":\"EUR\"}"
#define EVT(id, type, vis, t) \
    "{\"eventId\":\"" id "\",\"type\":\"" type "\",\"timestamp\":\"2026-03-01T10:" t "Z\"," \
    "\"visitorId\":\"" vis "\"}"

START_TEST(test_dlq_event_id_of_another_visitor_is_dead_lettered) {
    fixture_t fx;
    char errstr[256];
    memset(&fx, 0, sizeof(fx));
    fx.km = ev_kmock_new(3, errstr, sizeof(errstr));
    ck_assert_msg(fx.km != NULL, "%s", errstr);
    snprintf(fx.brokers, sizeof(fx.brokers), "%s", ev_kmock_bootstraps(fx.km));
    fx.raw = tl_unique_name("raw");
    fx.dlq = tl_unique_name("dlq");
    fx.enriched = tl_unique_name("enriched");
    fx.group = tl_unique_name("g");
    ck_assert_int_eq(ev_kmock_topic_create(fx.km, fx.raw, RAW_PARTS, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(ev_kmock_topic_create(fx.km, fx.dlq, DLQ_PARTS, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(ev_kmock_topic_create(fx.km, fx.enriched, 6, errstr, sizeof(errstr)), 0);
    fx.db = tl_db_create_migrated("dlqconflict");

    /* One batch: v-b reuses v-a's page view and purchase, v-a reuses v-b's click, and
     * v-a's page view comes again (a duplicate: ignored, not dead-lettered). The first
     * message of each eventId wins. */
    static const char *const batch1[][2] = {
        {"v-a", PV("same-1", "v-a", "00:00", "a")},
        {"v-b", PV("same-1", "v-b", "00:01", "b")},
        {"v-a", BUY("buy-1", "v-a", "01:00", "10")},
        {"v-b", BUY("buy-1", "v-b", "01:05", "20")},
        {"v-b", EVT("ev-1", "CLICK", "v-b", "02:00")},
        {"v-a", EVT("ev-1", "CLICK", "v-a", "02:30")},
        {"v-a", "{\"eventId\":\"a-2\",\"type\":\"PAGE_LEAVE\",\"timestamp\":"
                "\"2026-03-01T10:00:30Z\",\"visitorId\":\"v-a\",\"pageViewId\":\"same-1\","
                "\"timeOnPage\":30}"},
        {"v-b", PV("b-2", "v-b", "03:00", "b2")},
        {"v-a", PV("same-1", "v-a", "00:00", "a")},
    };
    produce_in_order(&fx, batch1, 9);
    run_ingest(&fx);
    assert_db_text(&fx, k_q_counts, "2/5/2/1");
    assert_db_text(&fx, k_q_rows,
                   "c:buy-1:v-a:10.00 e:a-2:v-a e:b-2:v-b e:buy-1:v-a e:ev-1:v-b e:same-1:v-a "
                   "p:b-2:v-b:- p:same-1:v-a:30 s:v-a:3:1 s:v-b:2:1");
    assert_db_text(&fx, k_q_offsets, "0:9");
    const char *const dead1[3] = {batch1[1][1], batch1[3][1], batch1[5][1]};
    const long long offs1[3] = {1, 3, 5};
    assert_conflict_letters(&fx, dead1, offs1, 3);

    /* Later batches (a new run, its first write probes): v-c reuses stored eventIds of
     * v-b and v-a; v-b's click comes again (a duplicate). */
    static const char *const batch2[][2] = {
        {"v-c", PV("b-2", "v-c", "10:00", "c")},
        {"v-c", BUY("buy-1", "v-c", "10:05", "30")},
        {"v-c", EVT("c-1", "CUSTOM", "v-c", "10:10")},
        {"v-b", EVT("ev-1", "CLICK", "v-b", "02:00")},
    };
    produce_in_order(&fx, batch2, 4);
    run_ingest(&fx);
    assert_db_text(&fx, k_q_counts, "3/6/2/1");
    assert_db_text(&fx, k_q_rows,
                   "c:buy-1:v-a:10.00 e:a-2:v-a e:b-2:v-b e:buy-1:v-a e:c-1:v-c e:ev-1:v-b "
                   "e:same-1:v-a p:b-2:v-b:- p:same-1:v-a:30 s:v-a:3:1 s:v-b:2:1 s:v-c:1:0");
    assert_db_text(&fx, k_q_offsets, "0:13");
    const char *const dead2[5] = {batch1[1][1], batch1[3][1], batch1[5][1], batch2[0][1],
                                  batch2[1][1]};
    const long long offs2[5] = {1, 3, 5, 9, 10};
    assert_conflict_letters(&fx, dead2, offs2, 5);
    /* The replay tool knows the reason. */
    char *out = NULL, *err = NULL;
    ck_assert_msg(run_replay(&fx, "--dry-run --reason event_id_conflict", &out, &err) == 0, "%s",
                  err);
    long long in_dlq, selected;
    summary_row(out, "event_id_conflict", &in_dlq, &selected);
    ck_assert_msg(in_dlq == 5 && selected == 5, "%s", out);
    free(out);
    free(err);
    fixture_teardown(&fx);
}
END_TEST

START_TEST(test_dlq_replay_usage_errors) {
    const char *bin = tl_evpipe_bin();
    static const struct {
        const char *args;
        int status;
        const char *message;
    } cases[] = {
        {"--brokers 127.0.0.1:1 --reason nope", 2, "unknown reason code 'nope'"},
        {"--brokers 127.0.0.1:1 --reason ,", 2, "no reason code"},
        {"--brokers 127.0.0.1:1 --from 2026-01-02T00:00:00Z --to 2026-01-01T00:00:00Z", 2,
         "--to must be after --from"},
        {"--brokers 127.0.0.1:1 --from yesterday", 2, "not an RFC 3339 time"},
        {"--brokers 127.0.0.1:1 --topic a --dlq-topic a", 2, "two topic names"},
        {"", 2, "--brokers (or KAFKA_BROKERS) is required"},
        {"--brokers 127.0.0.1:1 extra", 2, "unexpected argument"},
        {"--brokers 127.0.0.1:1 --idle-timeout 1", 1, "metadata of"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char cmd[512], *out = NULL, *err = NULL;
        snprintf(cmd, sizeof(cmd), "env -u KAFKA_BROKERS %s dlq replay %s", bin, cases[i].args);
        int rc = tl_run(cmd, &out, &err);
        ck_assert_msg(rc == cases[i].status, "%s: exit %d, want %d (%s)", cases[i].args, rc,
                      cases[i].status, err);
        ck_assert_msg(strstr(err, cases[i].message) != NULL, "%s: stderr %s", cases[i].args, err);
        free(out);
        free(err);
    }
    char cmd[512], *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s dlq frobnicate", bin);
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "Usage: evpipe dlq replay"));
    free(err);
}
END_TEST

int main(void) {
    Suite *s = suite_create("dlq");
    TCase *tc = tcase_create("usage");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_dlq_replay_usage_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("replay");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_dlq_replay_end_to_end);
    suite_add_tcase(s, tc);
    tc = tcase_create("conflicts");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_dlq_event_id_of_another_visitor_is_dead_lettered);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}
