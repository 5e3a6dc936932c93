/* test_evpub.c — the publishing library: it builds events the validator accepts (the
 * same rules as ingest), refuses invalid ones with the reason and sends nothing for
 * them, publishes keyed by visitorId, and the mock cluster gives back exactly what was
 * published, in order per visitor. */
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "producers/evpub.h"
#include "tests/testlib.h"
#include "transforms/event.h"

#define T0 1767607200000LL /* 2026-01-05T10:00:00Z */

static const char *brokers(void) {
    const char *b = tl_brokers();
    ck_assert_msg(b != NULL,
                  "EVPIPE_TEST_BROKERS is not set: run through make check (tests/run.sh) "
                  "or point it at a Kafka cluster");
    return b;
}

/* Renders ev, parses it back with the validator (must pass) into *out. */
static void round_trip(evpub_event_t *ev, tf_event_t *out) {
    char *json = NULL, err[512];
    size_t len = 0;
    ck_assert_msg(evpub_event_to_json(ev, &json, &len, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(strlen(json), len);
    tf_event_error_t e;
    ck_assert_msg(tf_event_parse(out, json, len, &e) == 0, "%s: %s in %s",
                  tf_event_reason_code(e.reason), e.message, json);
    ck_assert_int_eq(evpub_event_validate(ev, err, sizeof(err)), 0);
    free(json);
}

static int is_uuid_v4(const char *s) {
    if (strlen(s) != 36) return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return 0;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

START_TEST(test_evpub_builds_valid_events) {
    tf_event_t p;
    tf_event_init(&p);
    evpub_event_t *ev = evpub_event_new("PAGE_VIEW", "visitor-1", T0 + 123);
    ck_assert_ptr_nonnull(ev);
    ck_assert_int_eq(
        evpub_event_set_url(ev, "https://shop.example.com/products/aviator-classic?utm_source=x"),
        0);
    ck_assert_int_eq(evpub_event_set_referrer(ev, "https://www.google.de/"), 0);
    ck_assert_int_eq(
        evpub_event_set_title(ev, "Quotes \" and \\ and\nnew line, tab\t, bell\a, Zürich €"), 0);
    ck_assert_int_eq(
        evpub_event_set_user_agent(ev, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"),
        0);
    ck_assert_int_eq(evpub_event_set_client_hints(ev, 1, "iOS", NULL), 0);
    evpub_event_set_screen(ev, 390, 844);
    ck_assert_int_eq(evpub_event_set_language(ev, "de-CH"), 0);
    ck_assert_int_eq(evpub_event_set_geo(ev, "CH", "Zurich", "Zürich"), 0);
    ck_assert_int_eq(evpub_event_set_user_id(ev, "usr_1"), 0);
    round_trip(ev, &p);
    const char *id = evpub_event_id(ev);
    ck_assert_msg(is_uuid_v4(id), "%s", id);
    ck_assert_str_eq(p.event_id, id);
    ck_assert_int_eq(p.type, TF_EVENT_PAGE_VIEW);
    ck_assert_int_eq(p.timestamp_ms, T0 + 123);
    ck_assert_str_eq(p.visitor_id, "visitor-1");
    ck_assert_str_eq(p.user_id, "usr_1");
    ck_assert_str_eq(p.title, "Quotes \" and \\ and\nnew line, tab\t, bell\a, Zürich €");
    ck_assert_str_eq(p.referrer, "https://www.google.de/");
    ck_assert(p.has_client_hints && p.ch_has_mobile && p.ch_mobile);
    ck_assert_str_eq(p.ch_platform, "iOS");
    ck_assert_ptr_null(p.ch_model);
    ck_assert_int_eq(p.screen_width, 390);
    ck_assert_int_eq(p.screen_height, 844);
    ck_assert_str_eq(p.geo_city, "Zürich");
    ck_assert_str_eq(p.language, "de-CH");
    /* The id stays once generated; another event gets another. */
    ck_assert_str_eq(evpub_event_id(ev), p.event_id);
    evpub_event_t *other = evpub_event_new("CLICK", "visitor-1", T0);
    ck_assert_str_ne(evpub_event_id(other), id);
    evpub_event_destroy(other);

    /* A leave naming the page view, with numbers. */
    evpub_event_t *leave = evpub_event_new("PAGE_LEAVE", "visitor-1", T0 + 60000);
    ck_assert_int_eq(evpub_event_set_page_view_id(leave, id), 0);
    evpub_event_set_time_on_page(leave, 59.8765);
    evpub_event_set_scroll_depth(leave, 75);
    ck_assert_int_eq(evpub_event_set_event_id(leave, "leave-1"), 0);
    round_trip(leave, &p);
    ck_assert_str_eq(p.event_id, "leave-1");
    ck_assert_str_eq(p.page_view_id, id);
    ck_assert(p.has_time_on_page && fabs(p.time_on_page - 59.877) < 1e-9);
    ck_assert_int_eq(p.scroll_depth, 75);

    /* A purchase: value and currency, properties added one by one. */
    evpub_event_t *buy = evpub_event_new("PURCHASE", "visitor-1", T0 + 90000);
    ck_assert_int_eq(evpub_event_set_value(buy, 149.9, "EUR"), 0);
    ck_assert_int_eq(evpub_event_add_property_string(buy, "orderId", "LO-1"), 0);
    ck_assert_int_eq(evpub_event_add_property_number(buy, "items", 2), 0);
    ck_assert_int_eq(evpub_event_add_property_bool(buy, "gift", 1), 0);
    ck_assert_int_eq(evpub_event_add_property_string(buy, "note", NULL), 0);
    round_trip(buy, &p);
    ck_assert(p.has_value);
    ck_assert_str_eq(p.value_text, "149.9");
    ck_assert_str_eq(p.currency, "EUR");
    ck_assert_str_eq(p.properties_json,
                     "{\"orderId\":\"LO-1\",\"items\":2,\"gift\":true,\"note\":null}");
    /* Given whole, properties replace the added ones; adding afterwards is refused. */
    ck_assert_int_eq(evpub_event_set_properties_json(buy, "{\"a\":{\"b\":[1,2]}}"), 0);
    ck_assert_int_eq(evpub_event_add_property_bool(buy, "late", 0), -1);
    ck_assert_int_eq(evpub_event_set_value_text(buy, "0.10", "USD"), 0);
    round_trip(buy, &p);
    ck_assert_str_eq(p.properties_json, "{\"a\":{\"b\":[1,2]}}");
    ck_assert_str_eq(p.value_text, "0.10");
    /* Clearing a field removes it. */
    ck_assert_int_eq(evpub_event_set_user_id(ev, NULL), 0);
    round_trip(ev, &p);
    ck_assert_ptr_null(p.user_id);
    tf_event_reset(&p);
    evpub_event_destroy(ev);
    evpub_event_destroy(leave);
    evpub_event_destroy(buy);
    evpub_event_destroy(NULL);
    ck_assert_ptr_null(evpub_event_new(NULL, "v", 0));
}
END_TEST

/* Each invalid event is refused with the validator's reason code. */
START_TEST(test_evpub_refuses_invalid_events) {
    static const struct {
        const char *type, *visitor, *field, *value, *reason;
    } cases[] = {
        {"PAGE_VIEW", "v", NULL, NULL, "missing_field: url"},
        {"PAGE_VIEW", "v", "url", "/relative/path", "bad_url"},
        {"PAGEVIEW", "v", NULL, NULL, "unknown_event_type"},
        {"CLICK", "", NULL, NULL, "too_long"},
        {"CLICK", "v", "title", "bad \xff byte", "invalid_utf8"},
        {"CLICK", "v", "language", "en_US", "bad_language"},
        {"CLICK", "v", "country", "Germany", "bad_country"},
        {"CLICK", "v", "value", "12.5", "currency_required"},
        {"CLICK", "v", "currency", "euro", "bad_currency"},
        {"CLICK", "v", "properties", "[1,2]", "wrong_type"},
        {"CLICK", "v", "properties",
         "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":1}}}}}}}}}", "too_deep"},
        {"CLICK", "v", "scroll", "150", "out_of_range"},
        {"CLICK", "v", "timestamp", "-5", "bad_timestamp"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        evpub_event_t *ev = evpub_event_new(cases[i].type, cases[i].visitor, T0);
        const char *f = cases[i].field, *v = cases[i].value;
        if (f && !strcmp(f, "url")) evpub_event_set_url(ev, v);
        if (f && !strcmp(f, "title")) evpub_event_set_title(ev, v);
        if (f && !strcmp(f, "language")) evpub_event_set_language(ev, v);
        if (f && !strcmp(f, "country")) evpub_event_set_geo(ev, v, NULL, NULL);
        if (f && !strcmp(f, "value")) evpub_event_set_value_text(ev, v, NULL);
        if (f && !strcmp(f, "currency")) evpub_event_set_value_text(ev, "1.00", v);
        if (f && !strcmp(f, "properties")) evpub_event_set_properties_json(ev, v);
        if (f && !strcmp(f, "scroll")) evpub_event_set_scroll_depth(ev, 150);
        if (f && !strcmp(f, "timestamp")) {
            evpub_event_destroy(ev);
            ev = evpub_event_new(cases[i].type, cases[i].visitor, -5);
        }
        ck_assert_int_eq(evpub_event_validate(ev, err, sizeof(err)), -1);
        ck_assert_msg(strncmp(err, cases[i].reason, strlen(cases[i].reason)) == 0, "case %zu: %s",
                      i, err);
        evpub_event_destroy(ev);
    }
    /* Larger than a message may be. */
    evpub_event_t *big = evpub_event_new("CLICK", "v", T0);
    char *text = malloc(60000);
    memset(text, 'x', 59999);
    text[59999] = '\0';
    ck_assert_int_eq(evpub_event_set_title(big, text), 0);
    ck_assert_int_eq(evpub_event_set_user_agent(big, text), 0);
    ck_assert_int_eq(evpub_event_validate(big, err, sizeof(err)), -1);
    ck_assert_msg(strncmp(err, "too_large", 9) == 0, "%s", err);
    free(text);
    /* A setter refuses more than EVPUB_MAX_STRING and keeps the old value. */
    text = malloc(EVPUB_MAX_STRING + 2);
    memset(text, 'y', EVPUB_MAX_STRING + 1);
    text[EVPUB_MAX_STRING + 1] = '\0';
    ck_assert_int_eq(evpub_event_set_name(big, "kept"), 0);
    ck_assert_int_eq(evpub_event_set_name(big, text), -1);
    free(text);
    evpub_event_destroy(big);
}
END_TEST

/* Every message of topic from the beginning: keys and values, per partition in order. */
typedef struct got_s {
    char key[64];
    int32_t partition;
    char *value;
    size_t len;
} got_t;

static size_t consume_all(const char *topic, size_t expect, got_t *out, size_t cap) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char *group = tl_unique_name("evpub_check");
    ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", brokers(), errstr, sizeof(errstr)) ==
              RD_KAFKA_CONF_OK);
    ck_assert(rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr)) ==
              RD_KAFKA_CONF_OK);
    ck_assert(rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr)) ==
              RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    ck_assert_int_eq(rd_kafka_subscribe(rk, subs), 0);
    rd_kafka_topic_partition_list_destroy(subs);
    size_t n = 0;
    int64_t deadline = ev_now_ms() + 60000, quiet_until = 0;
    /* Until `expect` came, then 1.5 s more to catch anything extra. */
    while (ev_now_ms() < deadline && (n < expect || ev_now_ms() < quiet_until)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err) {
            ck_assert_uint_lt(n, cap);
            ck_assert(m->key && m->key_len < sizeof(out[n].key));
            memcpy(out[n].key, m->key, m->key_len);
            out[n].key[m->key_len] = '\0';
            out[n].partition = m->partition;
            out[n].value = strndup(m->payload, m->len);
            out[n].len = m->len;
            if (++n == expect) quiet_until = ev_now_ms() + 1500;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    free(group);
    return n;
}

START_TEST(test_evpub_publishes_and_reads_back) {
    char *topic = tl_unique_name("evpub"); /* created on first produce (auto-creation) */
    char err[512];
    const char *props[] = {"linger.ms", "5", "client.id", "evpub-test", NULL};
    evpub_publisher_t *pub = evpub_publisher_new(brokers(), topic, props, err, sizeof(err));
    ck_assert_msg(pub != NULL, "%s", err);
    enum { VISITORS = 5, PER_VISITOR = 12 };
    char sent[VISITORS * PER_VISITOR][64]; /* eventIds in publication order */
    int n_sent = 0;
    for (int i = 0; i < PER_VISITOR; i++) {
        for (int v = 0; v < VISITORS; v++) {
            char visitor[32];
            snprintf(visitor, sizeof(visitor), "visitor-%d", v);
            evpub_event_t *ev =
                evpub_event_new(i % 3 == 0 ? "PAGE_VIEW" : "CLICK", visitor, T0 + i * 1000);
            ck_assert_int_eq(evpub_event_set_url(ev, "https://shop.example.com/"), 0);
            ck_assert_int_eq(evpub_event_add_property_number(ev, "seq", i), 0);
            ck_assert_int_eq(evpub_publish(pub, ev, err, sizeof(err)), 0);
            snprintf(sent[n_sent++], 64, "%s", evpub_event_id(ev));
            evpub_event_destroy(ev);
            if (i == 5 && v == 0) {
                /* An invalid event in the middle: refused, nothing sent. */
                evpub_event_t *bad = evpub_event_new("PAGE_VIEW", visitor, T0);
                ck_assert_int_eq(evpub_publish(pub, bad, err, sizeof(err)), -1);
                ck_assert_msg(strstr(err, "missing_field") == err, "%s", err);
                evpub_event_destroy(bad);
            }
        }
    }
    ck_assert_int_eq(evpub_flush(pub, 30000, err, sizeof(err)), 0);
    evpub_stats_t st;
    evpub_publisher_stats(pub, &st);
    ck_assert_uint_eq(st.published, VISITORS * PER_VISITOR);
    ck_assert_uint_eq(st.delivered, VISITORS * PER_VISITOR);
    ck_assert_uint_eq(st.failed, 0);
    ck_assert_uint_eq(st.invalid, 1);
    evpub_publisher_destroy(pub);

    static got_t got[VISITORS * PER_VISITOR + 8];
    size_t n = consume_all(topic, VISITORS * PER_VISITOR, got, sizeof(got) / sizeof(got[0]));
    ck_assert_uint_eq(n, VISITORS * PER_VISITOR);
    int next_seq[VISITORS] = {0}, partition_of[VISITORS];
    tf_event_t p;
    tf_event_init(&p);
    for (size_t i = 0; i < n; i++) {
        tf_event_error_t e;
        ck_assert_int_eq(tf_event_parse(&p, got[i].value, got[i].len, &e), 0);
        ck_assert_str_eq(got[i].key, p.visitor_id); /* keyed by visitorId */
        int v = -1;
        ck_assert_int_eq(sscanf(got[i].key, "visitor-%d", &v), 1);
        ck_assert(v >= 0 && v < VISITORS);
        /* In publication order per visitor, from one partition. */
        int seq = next_seq[v]++;
        ck_assert_str_eq(p.event_id, sent[seq * VISITORS + v]);
        char expect[32];
        snprintf(expect, sizeof(expect), "{\"seq\":%d}", seq);
        ck_assert_str_eq(p.properties_json, expect);
        if (seq == 0) partition_of[v] = got[i].partition;
        ck_assert_int_eq(got[i].partition, partition_of[v]);
        free(got[i].value);
    }
    for (int v = 0; v < VISITORS; v++) ck_assert_int_eq(next_seq[v], PER_VISITOR);
    tf_event_reset(&p);
    free(topic);
}
END_TEST

START_TEST(test_evpub_publisher_errors) {
    char err[512];
    ck_assert_ptr_null(evpub_publisher_new(NULL, NULL, NULL, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "brokers"));
    const char *bad_prop[] = {"no.such.property", "1", NULL};
    ck_assert_ptr_null(evpub_publisher_new(brokers(), NULL, bad_prop, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "no.such.property"));
    const char *odd[] = {"linger.ms", NULL};
    ck_assert_ptr_null(evpub_publisher_new(brokers(), NULL, odd, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "has no value"));
    /* Nobody listens on port 1: the delivery fails and flush says so, once. */
    const char *fast[] = {"message.timeout.ms", "1000", NULL};
    evpub_publisher_t *pub = evpub_publisher_new("127.0.0.1:1", "nowhere", fast, err, sizeof(err));
    ck_assert_msg(pub != NULL, "%s", err);
    evpub_event_t *ev = evpub_event_new("CLICK", "v", T0);
    ck_assert_int_eq(evpub_publish(pub, ev, err, sizeof(err)), 0);
    evpub_event_destroy(ev);
    ck_assert_int_eq(evpub_flush(pub, 20000, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "1 events were not delivered") != NULL, "%s", err);
    ck_assert_int_eq(evpub_flush(pub, 1000, err, sizeof(err)), 0);
    evpub_stats_t st;
    evpub_publisher_stats(pub, &st);
    ck_assert_uint_eq(st.published, 1);
    ck_assert_uint_eq(st.delivered, 0);
    ck_assert_uint_eq(st.failed, 1);
    evpub_publisher_destroy(pub);
    evpub_publisher_destroy(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("evpub");
    TCase *pure = tcase_create("events");
    tcase_add_test(pure, test_evpub_builds_valid_events);
    tcase_add_test(pure, test_evpub_refuses_invalid_events);
    suite_add_tcase(s, pure);
    TCase *kafka = tcase_create("mock cluster");
    tcase_set_timeout(kafka, 120);
    tcase_add_test(kafka, test_evpub_publishes_and_reads_back);
    tcase_add_test(kafka, test_evpub_publisher_errors);
    suite_add_tcase(s, kafka);
    return tl_run_suite(s) ? 1 : 0;
}
