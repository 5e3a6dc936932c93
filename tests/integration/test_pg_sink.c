/* test_pg_sink.c — the ingest PostgreSQL sink against a real server: exact rows,
 * offsets, idempotence, merges, state reload, error classes, reconnection, and the
 * write rate compared with psql's \copy of the same rows. */
#include <check.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "sinks/pg_sink.h"
#include "tests/testlib.h"
#include "tools/migrate.h"
#include "transforms/device.h"
#include "transforms/sessionize.h"
#include "transforms/url.h"

#define T0 1732540800000LL /* 2024-11-25T13:20:00Z */
#define MIN_MS 60000LL
#define PURCHASE_BIT (1u << TF_EVENT_PURCHASE)
#define LEAD_BIT (1u << TF_EVENT_LEAD)

/* ---- helpers ------------------------------------------------------------------------ */

/* A fresh database with the migrations applied; *conn is a connection to it. */
static char *migrated_db(PGconn **conn) {
    char *url = tl_db_create("pgsink");
    PGconn *c = tl_connect(url);
    char errstr[2048];
    ck_assert_msg(ev_migrate_up(c, EV_MIGRATE_ALL, errstr, sizeof(errstr)) == 0,
                  "migrations failed: %s", errstr);
    *conn = c;
    return url;
}

static sink_pg_t *new_sink(const char *url) {
    char errstr[256];
    sink_pg_t *s = sink_pg_new(url, errstr, sizeof(errstr));
    ck_assert_msg(s != NULL, "sink_pg_new: %s", errstr);
    return s;
}

/* Every row of a query: columns joined by '|', rows by '\n', SQL NULL as "NULL"
 * (malloc'd). */
static char *rows(PGconn *conn, const char *sql) {
    PGresult *res = PQexec(conn, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "query failed: %s\n  %s", sql,
                  PQerrorMessage(conn));
    size_t cap = 1024, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    for (int r = 0; r < PQntuples(res); r++) {
        for (int c = 0; c < PQnfields(res); c++) {
            const char *v = PQgetisnull(res, r, c) ? "NULL" : PQgetvalue(res, r, c);
            size_t need = len + strlen(v) + 3;
            if (need > cap) {
                while (cap < need) cap *= 2;
                out = realloc(out, cap);
            }
            if (c) out[len++] = '|';
            memcpy(out + len, v, strlen(v));
            len += strlen(v);
            out[len] = '\0';
        }
        if (r + 1 < PQntuples(res)) {
            out[len++] = '\n';
            out[len] = '\0';
        }
    }
    PQclear(res);
    return out;
}

#define assert_rows(conn, sql, expected)                                                   \
    do {                                                                                   \
        char *got_ = rows((conn), (sql));                                                  \
        ck_assert_msg(strcmp(got_, (expected)) == 0, "%s\n--- got:\n%s\n--- expected:\n%s", \
                      (sql), got_, (expected));                                            \
        free(got_);                                                                        \
    } while (0)

static long long count_of(PGconn *conn, const char *table) {
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    return tl_query_ll(conn, sql);
}

/* The row counts of the sink's five tables as "sessions/events/page_views/conversions/offsets". */
static void assert_counts(PGconn *conn, long long s, long long e, long long pv, long long cv,
                          long long off) {
    long long got[5] = {count_of(conn, "analytics_sessions"), count_of(conn, "analytics_events"),
                        count_of(conn, "page_views"), count_of(conn, "conversion_events"),
                        count_of(conn, "consumer_offsets")};
    ck_assert_msg(got[0] == s && got[1] == e && got[2] == pv && got[3] == cv && got[4] == off,
                  "rows %lld/%lld/%lld/%lld/%lld, expected %lld/%lld/%lld/%lld/%lld", got[0],
                  got[1], got[2], got[3], got[4], s, e, pv, cv, off);
}

static void event_base(tf_event_t *ev, const char *id, tf_event_type_t type, int64_t ts,
                       const char *visitor) {
    memset(ev, 0, sizeof(*ev));
    ev->event_id = id;
    ev->type = type;
    ev->timestamp_ms = ts;
    ev->visitor_id = visitor;
    ev->scroll_depth = -1;
}

static void session_base(tf_session_t *s, const char *id, const char *visitor, int64_t start,
                         int64_t end, int32_t pv, int32_t events, tf_start_reason_t reason) {
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->visitor_id = visitor;
    s->started_at_ms = start;
    s->ended_at_ms = end;
    s->duration_s = (int32_t)((end - start) / 1000);
    s->page_view_count = pv;
    s->event_count = events;
    s->start_reason = reason;
    s->context.device_type = TF_DEVICE_UNKNOWN;
}

static void assign_set(tf_sess_assign_t *a, const char *event_id, const char *session_id,
                       bool is_new, tf_event_type_t type, uint64_t cookie) {
    memset(a, 0, sizeof(*a));
    a->event_id = event_id;
    snprintf(a->session_id, sizeof(a->session_id), "%s", session_id);
    a->is_new = is_new;
    a->type = type;
    a->cookie = cookie;
}

static void pv_set(tf_page_view_update_t *p, const char *event_id, const char *session_id,
                   bool has_top, int32_t top, int32_t scroll, bool is_new) {
    memset(p, 0, sizeof(*p));
    p->event_id = event_id;
    snprintf(p->session_id, sizeof(p->session_id), "%s", session_id);
    p->has_time_on_page = has_top;
    p->time_on_page_s = top;
    p->scroll_depth = scroll;
    p->is_new = is_new;
}

static void write_ok(sink_pg_t *s, const sink_pg_batch_t *b) {
    sink_pg_error_t err;
    int rc = sink_pg_write(s, b, &err);
    ck_assert_msg(rc == 0, "write failed (%s, %s): %s", sink_pg_status_name(err.status),
                  err.sqlstate, err.message);
    ck_assert_int_eq(err.status, SINK_PG_OK);
}

/* ---- fixture: two visitors, seven events of five types ------------------------------ */

#define S1 "11111111-1111-4111-8111-111111111111"
#define S2 "22222222-2222-4222-8222-222222222222"
#define URL1 "https://shop.example.com/products/shoes?utm_source=google&utm_medium=cpc&utm_campaign=winter"
#define REF1 "https://www.google.com/"
#define UA1 "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) Mobile/15E148 Safari/604.1"

typedef struct fixture_s {
    tf_event_t ev[7];
    sink_pg_event_row_t rows[7];
    tf_session_t sessions[2];
    tf_sess_assign_t assigns[7];
    tf_page_view_update_t pvs[2];
    tf_sess_changes_t changes;
    int32_t partitions[2];
    int64_t offsets[2];
    sink_pg_batch_t batch;
} fixture_t;

static void fixture_init(fixture_t *f) {
    memset(f, 0, sizeof(*f));
    /* Events, stored in the rows array in reverse so that cookies must be followed. */
    tf_event_t *e = f->ev;
    event_base(&e[0], "ev-1", TF_EVENT_PAGE_VIEW, T0, "v-alpha");
    e[0].url = URL1;
    e[0].title = "Shoes\tand \"boots\" \\ sale\r\nnow";
    e[0].referrer = REF1;
    event_base(&e[1], "ev-2", TF_EVENT_SCROLL, T0 + 5000, "v-alpha");
    e[1].page_view_id = "ev-1";
    e[1].scroll_depth = 60;
    event_base(&e[2], "ev-3", TF_EVENT_PAGE_LEAVE, T0 + 42700, "v-alpha");
    e[2].page_view_id = "ev-1";
    e[2].has_time_on_page = true;
    e[2].time_on_page = 42.7;
    e[2].scroll_depth = 80;
    event_base(&e[3], "ev-4", TF_EVENT_PURCHASE, T0 + 50000, "v-alpha");
    e[3].user_id = "user-9";
    e[3].has_value = true;
    e[3].value = 12.34;
    e[3].value_text = "12.34";
    memcpy(e[3].currency, "EUR", 4);
    e[3].properties_json = "{\"sku\":\"A-1\",\"qty\":2}";
    event_base(&e[4], "ev-5", TF_EVENT_CUSTOM, T0 + 60000, "v-alpha");
    e[4].name = "line1\nline2\\N \\. caf\xc3\xa9";
    e[4].properties_json = "{\"note\":\"tab\\there \\\\ back\"}";
    event_base(&e[5], "ev-6", TF_EVENT_PAGE_VIEW, T0 + 1000, "v-beta");
    e[5].url = "https://shop.example.com/";
    event_base(&e[6], "ev-7", TF_EVENT_PRODUCT_VIEW, T0 + 3000, "v-beta");
    e[6].properties_json = "{\"productId\":\"p-1\"}";
    static const char *const paths[7] = {"/products/shoes", NULL, NULL, NULL, NULL, "/", NULL};
    for (int i = 0; i < 7; i++) {
        f->rows[6 - i].event = &e[i];
        f->rows[6 - i].path = paths[i];
        f->rows[6 - i].received_at_ms = e[i].timestamp_ms + 100 + i;
    }
    /* Sessions. */
    tf_session_t *s1 = &f->sessions[0];
    session_base(s1, S1, "v-alpha", T0, T0 + 60000, 1, 5, TF_START_FIRST);
    s1->user_id = "user-9";
    s1->has_conversion = true;
    s1->is_bounce = false;
    s1->entry_page = s1->exit_page = "/products/shoes";
    tf_sess_context_t *c = &s1->context;
    c->referrer = REF1;
    c->referrer_domain = "google.com";
    c->utm_source = "google";
    c->utm_medium = "cpc";
    c->utm_campaign = "winter";
    c->device_type = TF_DEVICE_MOBILE;
    c->browser = "Mobile Safari";
    c->browser_version = "17.1";
    c->os = "iOS";
    c->os_version = "17.1.2";
    c->user_agent = UA1;
    c->country = "DE";
    c->region = "BE";
    c->city = "Berlin";
    c->language = "de-DE";
    c->screen_width = 390;
    c->screen_height = 844;
    tf_session_t *s2 = &f->sessions[1];
    session_base(s2, S2, "v-beta", T0 + 1000, T0 + 3000, 1, 2, TF_START_INACTIVITY);
    s2->is_bounce = true;
    s2->entry_page = s2->exit_page = "/";
    /* Assigns: cookie = index in rows (reversed). */
    static const char *const sess_of[7] = {S1, S1, S1, S1, S1, S2, S2};
    for (int i = 0; i < 7; i++)
        assign_set(&f->assigns[i], e[i].event_id, sess_of[i], true, e[i].type, (uint64_t)(6 - i));
    pv_set(&f->pvs[0], "ev-1", S1, true, 42, 80, true);
    pv_set(&f->pvs[1], "ev-6", S2, true, 2, -1, true);
    f->changes.upserts = f->sessions;
    f->changes.n_upserts = 2;
    f->changes.assigns = f->assigns;
    f->changes.n_assigns = 7;
    f->changes.page_views = f->pvs;
    f->changes.n_page_views = 2;
    f->partitions[0] = 0;
    f->partitions[1] = 3;
    f->offsets[0] = 17;
    f->offsets[1] = 42;
    f->batch.events = f->rows;
    f->batch.n_events = 7;
    f->batch.changes = &f->changes;
    f->batch.conversion_types = PURCHASE_BIT | LEAD_BIT;
    f->batch.group = "evpipe-ingest";
    f->batch.topic = "analytics.events.raw";
    f->batch.partitions = f->partitions;
    f->batch.next_offsets = f->offsets;
    f->batch.n_offsets = 2;
}

#define MS(col) "(extract(epoch FROM " col ") * 1000)::bigint"

static const char k_q_sessions[] =
    "SELECT id, \"visitorId\", \"userId\", " MS("\"startedAt\"") ", " MS("\"endedAt\"") ","
    " duration, \"pageViewCount\", \"eventCount\", \"isBounce\", \"entryPage\", \"exitPage\","
    " referrer, \"referrerDomain\", \"utmSource\", \"utmMedium\", \"utmCampaign\", \"utmTerm\","
    " \"utmContent\", \"deviceType\", browser, \"browserVersion\", os, \"osVersion\","
    " \"userAgent\", country, region, city, language, \"screenWidth\", \"screenHeight\","
    " \"startReason\" FROM analytics_sessions ORDER BY id";
static const char k_q_events[] =
    "SELECT \"eventId\", \"sessionId\", type, name, \"visitorId\", \"userId\", url, path,"
    " properties, " MS("\"occurredAt\"") ", " MS("\"receivedAt\"") ", referrer, \"pageViewId\","
    " \"timeOnPage\", \"scrollDepth\" FROM analytics_events ORDER BY \"eventId\"";
static const char k_q_page_views[] =
    "SELECT \"eventId\", \"sessionId\", \"visitorId\", url, path, title, referrer,"
    " \"timeOnPage\", \"scrollDepth\", " MS("\"viewedAt\"") " FROM page_views ORDER BY \"eventId\"";
static const char k_q_conversions[] =
    "SELECT \"eventId\", \"sessionId\", \"visitorId\", \"userId\", type, value, currency,"
    " \"utmSource\", \"utmMedium\", \"utmCampaign\", metadata, " MS("\"occurredAt\"")
    " FROM conversion_events ORDER BY \"eventId\"";
static const char k_q_offsets[] =
    "SELECT \"consumerGroup\", topic, partition, \"nextOffset\" FROM consumer_offsets"
    " ORDER BY 1, 2, 3";

static const char k_exp_sessions[] =
    S1 "|v-alpha|user-9|1732540800000|1732540860000|60|1|5|f|/products/shoes|/products/shoes|"
    REF1 "|google.com|google|cpc|winter|NULL|NULL|MOBILE|Mobile Safari|17.1|iOS|17.1.2|" UA1
    "|DE|BE|Berlin|de-DE|390|844|FIRST\n"
    S2 "|v-beta|NULL|1732540801000|1732540803000|2|1|2|t|/|/|NULL|NULL|NULL|NULL|NULL|NULL|NULL|"
    "UNKNOWN|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|INACTIVITY";
static const char k_exp_events[] =
    "ev-1|" S1 "|PAGE_VIEW|NULL|v-alpha|NULL|" URL1 "|/products/shoes|NULL|1732540800000|"
    "1732540800100|" REF1 "|NULL|NULL|NULL\n"
    "ev-2|" S1 "|SCROLL|NULL|v-alpha|NULL|NULL|NULL|NULL|1732540805000|1732540805101|NULL|ev-1|"
    "NULL|60\n"
    "ev-3|" S1 "|PAGE_LEAVE|NULL|v-alpha|NULL|NULL|NULL|NULL|1732540842700|1732540842802|NULL|"
    "ev-1|42.7|80\n"
    "ev-4|" S1 "|PURCHASE|NULL|v-alpha|user-9|NULL|NULL|{\"qty\": 2, \"sku\": \"A-1\"}|"
    "1732540850000|1732540850103|NULL|NULL|NULL|NULL\n"
    "ev-5|" S1 "|CUSTOM|line1\nline2\\N \\. caf\xc3\xa9|v-alpha|NULL|NULL|NULL|"
    "{\"note\": \"tab\\there \\\\ back\"}|1732540860000|1732540860104|NULL|NULL|NULL|NULL\n"
    "ev-6|" S2 "|PAGE_VIEW|NULL|v-beta|NULL|https://shop.example.com/|/|NULL|1732540801000|"
    "1732540801105|NULL|NULL|NULL|NULL\n"
    "ev-7|" S2 "|PRODUCT_VIEW|NULL|v-beta|NULL|NULL|NULL|{\"productId\": \"p-1\"}|1732540803000|"
    "1732540803106|NULL|NULL|NULL|NULL";
static const char k_exp_page_views[] =
    "ev-1|" S1 "|v-alpha|" URL1 "|/products/shoes|Shoes\tand \"boots\" \\ sale\r\nnow|" REF1
    "|42|80|1732540800000\n"
    "ev-6|" S2 "|v-beta|https://shop.example.com/|/|NULL|NULL|2|NULL|1732540801000";
static const char k_exp_conversions[] =
    "ev-4|" S1 "|v-alpha|user-9|PURCHASE|12.34|EUR|google|cpc|winter|{\"qty\": 2, \"sku\": \"A-1\"}|"
    "1732540850000";
static const char k_exp_offsets[] =
    "evpipe-ingest|analytics.events.raw|0|17\nevpipe-ingest|analytics.events.raw|3|42";

static void assert_fixture_rows(PGconn *conn) {
    assert_rows(conn, k_q_sessions, k_exp_sessions);
    assert_rows(conn, k_q_events, k_exp_events);
    assert_rows(conn, k_q_page_views, k_exp_page_views);
    assert_rows(conn, k_q_conversions, k_exp_conversions);
    assert_rows(conn, k_q_offsets, k_exp_offsets);
}

/* ---- tests -------------------------------------------------------------------------- */

START_TEST(test_pg_sink_write_exact_rows) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    fixture_t f;
    fixture_init(&f);
    write_ok(s, &f.batch);
    assert_fixture_rows(conn);
    /* Row ids are distinct. Events and page views get version 7 UUIDs made by the
     * sink, their first 48 bits the time of the write in ms; conversions get the
     * column's default (gen_random_uuid(), version 4). */
    assert_rows(conn,
                "SELECT count(DISTINCT id) FROM (SELECT id FROM analytics_events UNION ALL"
                " SELECT id FROM page_views UNION ALL SELECT id FROM conversion_events) u",
                "10");
    assert_rows(conn,
                "SELECT count(*), bool_and(id::text ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-"
                "[89ab][0-9a-f]{3}-[0-9a-f]{12}$'), bool_and(abs(('x' || substr(replace(id::text,"
                " '-', ''), 1, 12))::bit(48)::bigint - (extract(epoch FROM now()) * 1000)::bigint)"
                " < 600000) FROM (SELECT id FROM analytics_events UNION ALL SELECT id FROM"
                " page_views) u",
                "9|t|t");
    assert_rows(conn,
                "SELECT bool_and(id::text ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
                "[89ab][0-9a-f]{3}-[0-9a-f]{12}$') FROM conversion_events",
                "t");
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.transactions, 1);
    ck_assert_uint_eq(st.connects, 1);
    ck_assert_uint_eq(st.sessions_upserted, 2);
    ck_assert_uint_eq(st.events_inserted, 7);
    ck_assert_uint_eq(st.page_views_written, 2);
    ck_assert_uint_eq(st.conversions_inserted, 1);
    ck_assert_uint_eq(st.offsets_written, 2);
    ck_assert_uint_eq(st.failed_writes, 0);
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_pg_sink_offsets_roundtrip) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    sink_pg_error_t err;
    int32_t parts[3] = {0, 1, 3};
    int64_t got[3] = {7, 7, 7};
    ck_assert_int_eq(sink_pg_read_offsets(s, "g", "t", parts, got, 3, &err), 0);
    ck_assert(got[0] == -1 && got[1] == -1 && got[2] == -1);

    /* A batch without valid events stores its offsets alone. */
    int32_t wp[2] = {0, 3};
    int64_t wo[2] = {17, 42};
    sink_pg_batch_t b = {.group = "g", .topic = "t", .partitions = wp, .next_offsets = wo,
                         .n_offsets = 2};
    write_ok(s, &b);
    ck_assert_int_eq(sink_pg_read_offsets(s, "g", "t", parts, got, 3, &err), 0);
    ck_assert(got[0] == 17 && got[1] == -1 && got[2] == 42);

    int64_t wo2[1] = {20};
    b.n_offsets = 1;
    b.next_offsets = wo2;
    write_ok(s, &b);
    ck_assert_int_eq(sink_pg_read_offsets(s, "g", "t", parts, got, 3, &err), 0);
    ck_assert_msg(got[0] == 20 && got[1] == -1 && got[2] == 42, "%lld %lld %lld",
                  (long long)got[0], (long long)got[1], (long long)got[2]);
    /* Other groups and topics are separate. */
    ck_assert_int_eq(sink_pg_read_offsets(s, "g2", "t", parts, got, 3, &err), 0);
    ck_assert(got[0] == -1 && got[1] == -1 && got[2] == -1);
    ck_assert_int_eq(sink_pg_read_offsets(s, "g", "t2", parts, got, 3, &err), 0);
    ck_assert(got[0] == -1 && got[2] == -1);
    assert_counts(conn, 0, 0, 0, 0, 2);
    assert_rows(conn, k_q_offsets, "g|t|0|20\ng|t|3|42");
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_pg_sink_rewrite_is_idempotent) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    fixture_t f;
    fixture_init(&f);
    write_ok(s, &f.batch);
    /* The first write probed for stored eventIds and found none, so the second copies
     * without probing: the unique violation on the stored rows makes it redo the write
     * with the probe (no error reaches the caller), and the write after that probes at
     * once, since the last probe found rows. */
    write_ok(s, &f.batch);
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.existence_rechecks, 1);
    ck_assert_uint_eq(st.failed_writes, 0);
    ck_assert_uint_eq(st.transient_errors, 0);
    write_ok(s, &f.batch);
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.existence_rechecks, 1);
    /* And once more through another connection (a restarted consumer replaying): a new
     * sink probes before its first write. */
    sink_pg_t *s2 = new_sink(url);
    write_ok(s2, &f.batch);
    assert_counts(conn, 2, 7, 2, 1, 2);
    assert_fixture_rows(conn);
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.transactions, 3);
    ck_assert_uint_eq(st.events_inserted, 7);      /* the replays inserted nothing */
    ck_assert_uint_eq(st.conversions_inserted, 1);
    sink_pg_stats(s2, &st);
    ck_assert_uint_eq(st.existence_rechecks, 0);
    ck_assert_uint_eq(st.events_inserted, 0);
    ck_assert_uint_eq(st.conversions_inserted, 0);
    sink_pg_destroy(s);
    sink_pg_destroy(s2);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

#define SA "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define SB "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"

START_TEST(test_pg_sink_merge_repoints_and_deletes) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    /* Batch 1: visitor v-m has two sessions, A (google) and B (newsletter), each with a
     * page view and a conversion. */
    tf_event_t ev[5];
    event_base(&ev[0], "a1", TF_EVENT_PAGE_VIEW, T0, "v-m");
    ev[0].url = "https://x.test/a?utm_source=google&utm_medium=cpc&utm_campaign=winter";
    event_base(&ev[1], "a2", TF_EVENT_PURCHASE, T0 + 20 * MIN_MS, "v-m");
    ev[1].has_value = true;
    ev[1].value_text = "5";
    memcpy(ev[1].currency, "EUR", 4);
    event_base(&ev[2], "b1", TF_EVENT_PAGE_VIEW, T0 + 80 * MIN_MS, "v-m");
    ev[2].url = "https://x.test/b?utm_source=newsletter&utm_medium=email";
    event_base(&ev[3], "b2", TF_EVENT_LEAD, T0 + 85 * MIN_MS, "v-m");
    event_base(&ev[4], "m1", TF_EVENT_PAGE_VIEW, T0 + 50 * MIN_MS, "v-m");
    ev[4].url = "https://x.test/m";
    sink_pg_event_row_t rowsv[5];
    static const char *const paths[5] = {"/a", NULL, "/b", NULL, "/m"};
    for (int i = 0; i < 5; i++) {
        rowsv[i].event = &ev[i];
        rowsv[i].path = paths[i];
        rowsv[i].received_at_ms = T0 + 90 * MIN_MS;
    }
    tf_session_t sess[2];
    session_base(&sess[0], SA, "v-m", T0, T0 + 20 * MIN_MS, 1, 2, TF_START_FIRST);
    sess[0].entry_page = sess[0].exit_page = "/a";
    sess[0].context.utm_source = "google";
    sess[0].context.utm_medium = "cpc";
    sess[0].context.utm_campaign = "winter";
    session_base(&sess[1], SB, "v-m", T0 + 80 * MIN_MS, T0 + 85 * MIN_MS, 1, 2,
                 TF_START_INACTIVITY);
    sess[1].entry_page = sess[1].exit_page = "/b";
    sess[1].context.utm_source = "newsletter";
    sess[1].context.utm_medium = "email";
    tf_sess_assign_t as1[4];
    assign_set(&as1[0], "a1", SA, true, TF_EVENT_PAGE_VIEW, 0);
    assign_set(&as1[1], "a2", SA, true, TF_EVENT_PURCHASE, 1);
    assign_set(&as1[2], "b1", SB, true, TF_EVENT_PAGE_VIEW, 2);
    assign_set(&as1[3], "b2", SB, true, TF_EVENT_LEAD, 3);
    tf_page_view_update_t pv1[2];
    pv_set(&pv1[0], "a1", SA, true, 1200, -1, true);
    pv_set(&pv1[1], "b1", SB, true, 300, -1, true);
    tf_sess_changes_t c1 = {.upserts = sess, .n_upserts = 2, .assigns = as1, .n_assigns = 4,
                            .page_views = pv1, .n_page_views = 2};
    int32_t part = 1;
    int64_t off1 = 4, off2 = 5;
    sink_pg_batch_t b1 = {.events = rowsv, .n_events = 5, .changes = &c1,
                          .conversion_types = PURCHASE_BIT | LEAD_BIT, .group = "g",
                          .topic = "t", .partitions = &part, .next_offsets = &off1,
                          .n_offsets = 1};
    write_ok(s, &b1);
    assert_counts(conn, 2, 4, 2, 2, 1);
    assert_rows(conn, "SELECT \"eventId\", \"sessionId\", \"utmSource\", value FROM"
                      " conversion_events ORDER BY 1",
                "a2|" SA "|google|5.00\nb2|" SB "|newsletter|NULL");

    /* Batch 2: the late page view m1 closes the gap: B merges into A. */
    tf_session_t merged;
    session_base(&merged, SA, "v-m", T0, T0 + 85 * MIN_MS, 3, 5, TF_START_FIRST);
    merged.entry_page = "/a";
    merged.exit_page = "/b";
    merged.has_conversion = true;
    merged.context = sess[0].context;
    tf_sess_assign_t as2[3];
    assign_set(&as2[0], "m1", SA, true, TF_EVENT_PAGE_VIEW, 4);
    assign_set(&as2[1], "b1", SA, false, TF_EVENT_PAGE_VIEW, 0);
    assign_set(&as2[2], "b2", SA, false, TF_EVENT_LEAD, 0);
    tf_page_view_update_t pv2[3];
    pv_set(&pv2[0], "m1", SA, true, 1800, 55, true);
    pv_set(&pv2[1], "b1", SA, true, 300, -1, false);
    pv_set(&pv2[2], "a1", SA, true, 1200, 90, false);
    const char deletes[1][37] = {SB};
    tf_sess_changes_t c2 = {.upserts = &merged, .n_upserts = 1, .deletes = deletes,
                            .n_deletes = 1, .assigns = as2, .n_assigns = 3, .page_views = pv2,
                            .n_page_views = 3};
    sink_pg_batch_t b2 = b1;
    b2.changes = &c2;
    b2.next_offsets = &off2;
    write_ok(s, &b2);

    assert_counts(conn, 1, 5, 3, 2, 1);
    assert_rows(conn,
                "SELECT id, " MS("\"startedAt\"") ", " MS("\"endedAt\"") ", duration,"
                " \"pageViewCount\", \"eventCount\", \"isBounce\", \"entryPage\", \"exitPage\","
                " \"utmSource\" FROM analytics_sessions",
                SA "|1732540800000|1732545900000|5100|3|5|f|/a|/b|google");
    assert_rows(conn, "SELECT \"eventId\", \"sessionId\" FROM analytics_events ORDER BY 1",
                "a1|" SA "\na2|" SA "\nb1|" SA "\nb2|" SA "\nm1|" SA);
    assert_rows(conn,
                "SELECT \"eventId\", \"sessionId\", \"timeOnPage\", \"scrollDepth\", path"
                " FROM page_views ORDER BY 1",
                "a1|" SA "|1200|90|/a\nb1|" SA "|300|NULL|/b\nm1|" SA "|1800|55|/m");
    /* b2 moved to A and now carries A's attribution. */
    assert_rows(conn,
                "SELECT \"eventId\", \"sessionId\", \"utmSource\", \"utmMedium\","
                " \"utmCampaign\" FROM conversion_events ORDER BY 1",
                "a2|" SA "|google|cpc|winter\nb2|" SA "|google|cpc|winter");
    assert_rows(conn, k_q_offsets, "g|t|1|5");
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.events_repointed, 2);
    ck_assert_uint_eq(st.sessions_deleted, 1);
    ck_assert_uint_eq(st.events_inserted, 5);

    /* Replaying the merge batch changes nothing. */
    write_ok(s, &b2);
    assert_counts(conn, 1, 5, 3, 2, 1);
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.events_repointed, 2);
    ck_assert_uint_eq(st.sessions_deleted, 1);
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_pg_sink_data_error_writes_nothing) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    fixture_t f;
    fixture_init(&f);
    sink_pg_error_t err;

    /* 10^20 does not fit NUMERIC(14,2): rejected at the conversions, after sessions,
     * events and page views were written in the same transaction. */
    f.ev[3].value_text = "100000000000000000000";
    ck_assert_int_eq(sink_pg_write(s, &f.batch, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_DATA);
    ck_assert_str_eq(err.sqlstate, "22003");
    ck_assert_msg(strstr(err.message, "inserting conversions") != NULL, "%s", err.message);
    assert_counts(conn, 0, 0, 0, 0, 0);

    /* U+0000 cannot be stored in jsonb. */
    f.ev[3].value_text = "12.34";
    f.ev[6].properties_json = "{\"a\":\"\\u0000\"}";
    ck_assert_int_eq(sink_pg_write(s, &f.batch, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_DATA);
    ck_assert_str_eq(err.sqlstate, "22P05");
    assert_counts(conn, 0, 0, 0, 0, 0);

    /* A country longer than CHAR(2). */
    f.ev[6].properties_json = "{\"productId\":\"p-1\"}";
    f.sessions[0].context.country = "DEU";
    ck_assert_int_eq(sink_pg_write(s, &f.batch, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_DATA);
    ck_assert_str_eq(err.sqlstate, "22001");
    assert_counts(conn, 0, 0, 0, 0, 0);

    /* The same connection then writes the corrected batch. */
    f.sessions[0].context.country = "DE";
    write_ok(s, &f.batch);
    assert_fixture_rows(conn);
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.data_errors, 3);
    ck_assert_uint_eq(st.failed_writes, 3);
    ck_assert_uint_eq(st.transactions, 1);
    ck_assert_uint_eq(st.connects, 1);
    ck_assert_uint_eq(st.events_inserted, 7);
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_pg_sink_batch_duplicates_and_stored_page_views) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    fixture_t f;
    fixture_init(&f);
    /* The batch lists ev-4 twice (another message with the same eventId): the first
     * one is stored, once, with its conversion. */
    tf_event_t dup = f.ev[3];
    dup.value_text = "99.99";
    dup.user_id = "someone-else";
    sink_pg_event_row_t rows8[8];
    memcpy(rows8, f.rows, sizeof(f.rows));
    rows8[7].event = &dup;
    rows8[7].path = NULL;
    rows8[7].received_at_ms = T0;
    tf_sess_assign_t as8[8];
    memcpy(as8, f.assigns, sizeof(f.assigns));
    assign_set(&as8[7], "ev-4", S1, true, TF_EVENT_PURCHASE, 7);
    f.changes.assigns = as8;
    f.changes.n_assigns = 8;
    f.batch.events = rows8;
    f.batch.n_events = 8;
    /* A page view stored without its event, the same visitor's: it gets the new derived
     * fields (its other columns stay). Another visitor's is an eventId conflict
     * (test_pg_sink_event_id_conflict_with_stored). */
    tl_exec(conn, "INSERT INTO page_views (\"sessionId\", \"eventId\", \"visitorId\", url,"
                  " \"timeOnPage\", \"viewedAt\") VALUES"
                  " ('" S2 "', 'ev-1', 'v-alpha', 'https://old.test/', 1, to_timestamp(0))");
    write_ok(s, &f.batch);
    assert_rows(conn, k_q_sessions, k_exp_sessions);
    assert_rows(conn, k_q_events, k_exp_events);
    assert_rows(conn, k_q_conversions, k_exp_conversions);
    assert_rows(conn, k_q_offsets, k_exp_offsets);
    assert_rows(conn,
                "SELECT \"eventId\", \"sessionId\", \"visitorId\", url, \"timeOnPage\","
                " \"scrollDepth\" FROM page_views ORDER BY 1",
                "ev-1|" S1 "|v-alpha|https://old.test/|42|80\n"
                "ev-6|" S2 "|v-beta|https://shop.example.com/|2|NULL");
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.events_inserted, 7);
    ck_assert_uint_eq(st.page_views_written, 2);
    ck_assert_uint_eq(st.conversions_inserted, 1);
    ck_assert_uint_eq(st.failed_writes, 0);
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* The flags of a CONFLICT write as a string of 't'/'f', one per event. */
static void assert_conflicts(const bool *flags, size_t n, const char *expected) {
    char got[64];
    ck_assert_uint_lt(n, sizeof(got));
    for (size_t i = 0; i < n; i++) got[i] = flags[i] ? 't' : 'f';
    got[n] = '\0';
    ck_assert_str_eq(got, expected);
}

START_TEST(test_pg_sink_event_id_conflict_in_batch) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    fixture_t f;
    fixture_init(&f);
    /* Three more messages reuse eventIds of the fixture for the other visitor: a page
     * view (ev-1 is v-alpha's page view, message 6), a purchase (ev-4, v-alpha's, message
     * 3) and a custom event for v-alpha (ev-7 is v-beta's, message 0). Their assigns come
     * first: the earliest message wins, not the first assign. */
    tf_event_t x[3];
    event_base(&x[0], "ev-1", TF_EVENT_PAGE_VIEW, T0 + 2000, "v-beta");
    x[0].url = "https://shop.example.com/other";
    event_base(&x[1], "ev-4", TF_EVENT_PURCHASE, T0 + 2500, "v-beta");
    x[1].has_value = true;
    x[1].value = 5;
    x[1].value_text = "5";
    memcpy(x[1].currency, "USD", 4);
    event_base(&x[2], "ev-7", TF_EVENT_CUSTOM, T0 + 70000, "v-alpha");
    sink_pg_event_row_t rows10[10];
    memcpy(rows10, f.rows, sizeof(f.rows));
    tf_sess_assign_t as10[10];
    static const char *const sess_of[3] = {S2, S2, S1};
    for (int i = 0; i < 3; i++) {
        rows10[7 + i] = (sink_pg_event_row_t){.event = &x[i], .received_at_ms = T0};
        assign_set(&as10[i], x[i].event_id, sess_of[i], true, x[i].type, (uint64_t)(7 + i));
    }
    memcpy(as10 + 3, f.assigns, sizeof(f.assigns));
    tf_page_view_update_t pvs3[3];
    memcpy(pvs3, f.pvs, sizeof(f.pvs));
    pv_set(&pvs3[2], "ev-1", S2, false, 0, -1, true);
    f.changes.assigns = as10;
    f.changes.n_assigns = 10;
    f.changes.page_views = pvs3;
    f.changes.n_page_views = 3;
    f.batch.events = rows10;
    f.batch.n_events = 10;
    bool flags[10] = {false};
    f.batch.conflicts = flags;
    sink_pg_error_t err;
    ck_assert_int_eq(sink_pg_write(s, &f.batch, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_CONFLICT);
    ck_assert_str_eq(sink_pg_status_name(err.status), "conflict");
    ck_assert_str_eq(err.sqlstate, "");
    ck_assert_str_eq(err.message,
                     "batch: 3 event(s) with the eventId of an earlier event of another visitor");
    assert_conflicts(flags, 10, "fffffffttt");
    assert_counts(conn, 0, 0, 0, 0, 0);
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.connects, 0); /* refused before talking to the server */
    ck_assert_uint_eq(st.conflict_errors, 1);
    ck_assert_uint_eq(st.failed_writes, 1);
    /* Without them (the sessionizer forgot them): the fixture's rows, exactly. */
    fixture_t g;
    fixture_init(&g);
    write_ok(s, &g.batch);
    assert_fixture_rows(conn);
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

#define S3 "33333333-3333-4333-8333-333333333333"

/* A batch of one session of v-gamma (S3): events in message order, cookie = index. */
typedef struct gamma_batch_s {
    tf_event_t ev[8];
    sink_pg_event_row_t rows[8];
    tf_session_t session;
    tf_sess_assign_t assigns[8];
    tf_page_view_update_t pvs[8];
    tf_sess_changes_t changes;
    int32_t partition;
    int64_t offset;
    bool conflicts[8];
    sink_pg_batch_t batch;
} gamma_batch_t;

/* Builds the batch of the n (at most 8) events ids[i] of types[i], a second apart. */
static void gamma_batch_init(gamma_batch_t *g, const char *const *ids,
                             const tf_event_type_t *types, size_t n, int64_t next_offset) {
    memset(g, 0, sizeof(*g));
    int32_t n_pv = 0;
    for (size_t i = 0; i < n; i++) {
        tf_event_t *ev = &g->ev[i];
        event_base(ev, ids[i], types[i], T0 + 100000 + (int64_t)i * 1000, "v-gamma");
        if (types[i] == TF_EVENT_PAGE_VIEW) {
            ev->url = "https://shop.example.com/gamma";
            pv_set(&g->pvs[n_pv++], ids[i], S3, false, 0, -1, true);
        }
        if (types[i] == TF_EVENT_PURCHASE) {
            ev->has_value = true;
            ev->value = 7;
            ev->value_text = "7.00";
            memcpy(ev->currency, "EUR", 4);
        }
        g->rows[i] = (sink_pg_event_row_t){.event = ev, .received_at_ms = ev->timestamp_ms};
        assign_set(&g->assigns[i], ids[i], S3, true, types[i], (uint64_t)i);
    }
    session_base(&g->session, S3, "v-gamma", T0 + 100000, T0 + 100000 + (int64_t)(n - 1) * 1000,
                 n_pv, (int32_t)n, TF_START_FIRST);
    g->changes = (tf_sess_changes_t){.upserts = &g->session, .n_upserts = 1,
                                     .assigns = g->assigns, .n_assigns = n,
                                     .page_views = g->pvs, .n_page_views = (size_t)n_pv};
    g->partition = 0;
    g->offset = next_offset;
    g->batch = (sink_pg_batch_t){.events = g->rows, .n_events = n, .changes = &g->changes,
                                 .conversion_types = PURCHASE_BIT | LEAD_BIT,
                                 .group = "evpipe-ingest", .topic = "analytics.events.raw",
                                 .partitions = &g->partition, .next_offsets = &g->offset,
                                 .n_offsets = 1, .conflicts = g->conflicts};
}

START_TEST(test_pg_sink_event_id_conflict_with_stored) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    fixture_t f;
    fixture_init(&f);
    write_ok(s, &f.batch);
    /* Stored for another visitor without their events (another writer): a conversion
     * and a page view. */
    tl_exec(conn, "INSERT INTO conversion_events (\"sessionId\", \"eventId\", \"visitorId\","
                  " type, \"occurredAt\") VALUES ('" S1 "', 'c-1', 'v-other', 'PURCHASE',"
                  " to_timestamp(0)), ('" S1 "', 'c-2', 'v-other', 'PURCHASE', to_timestamp(0))");
    tl_exec(conn, "INSERT INTO page_views (\"sessionId\", \"eventId\", \"visitorId\", url,"
                  " \"viewedAt\") VALUES ('" S1 "', 'p-1', 'v-other', 'https://other.test/',"
                  " to_timestamp(0))");
    /* v-gamma reuses v-alpha's page view, purchase and custom event, v-beta's product
     * view, and the other writer's conversion and page view; g-1 is its own. The write
     * copies without probing (the last probe found nothing), hits the unique index,
     * redoes the write with the probe, and refuses the six. */
    static const char *const ids[7] = {"ev-1", "ev-4", "ev-5", "g-1", "ev-7", "c-1", "p-1"};
    static const tf_event_type_t types[7] = {TF_EVENT_PAGE_VIEW, TF_EVENT_PURCHASE,
                                             TF_EVENT_CUSTOM,    TF_EVENT_CUSTOM,
                                             TF_EVENT_CLICK,     TF_EVENT_PURCHASE,
                                             TF_EVENT_PAGE_VIEW};
    gamma_batch_t g;
    gamma_batch_init(&g, ids, types, 7, 20);
    sink_pg_error_t err;
    ck_assert_int_eq(sink_pg_write(s, &g.batch, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_CONFLICT);
    ck_assert_str_eq(err.sqlstate, "");
    ck_assert_msg(strstr(err.message, "is stored for another visitor") != NULL, "%s",
                  err.message);
    assert_conflicts(g.conflicts, 7, "tttfttt");
    assert_counts(conn, 2, 7, 3, 3, 2);
    assert_rows(conn, k_q_sessions, k_exp_sessions);
    assert_rows(conn, k_q_events, k_exp_events);
    assert_rows(conn, k_q_offsets, k_exp_offsets);
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.existence_rechecks, 1);
    ck_assert_uint_eq(st.conflict_errors, 1);
    ck_assert_uint_eq(st.failed_writes, 1);

    /* The batch again without them: g-1 alone is stored. */
    static const char *const ids1[1] = {"g-1"};
    static const tf_event_type_t types1[1] = {TF_EVENT_CUSTOM};
    gamma_batch_init(&g, ids1, types1, 1, 20);
    write_ok(s, &g.batch);
    assert_conflicts(g.conflicts, 1, "f");
    assert_counts(conn, 3, 8, 3, 3, 2);
    assert_rows(conn, "SELECT \"eventId\", \"visitorId\", \"sessionId\" FROM analytics_events"
                      " WHERE \"visitorId\" = 'v-gamma'",
                "g-1|v-gamma|" S3);
    assert_rows(conn, "SELECT \"eventCount\" FROM analytics_sessions WHERE id = '" S3 "'", "1");

    /* A conversion stored without its event for another visitor, found by a write that
     * does not probe: the insert comes up short, the write is redone with the probe. */
    static const char *const ids2[2] = {"g-2", "c-2"};
    static const tf_event_type_t types2[2] = {TF_EVENT_CUSTOM, TF_EVENT_PURCHASE};
    gamma_batch_init(&g, ids2, types2, 2, 22);
    ck_assert_int_eq(sink_pg_write(s, &g.batch, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_CONFLICT);
    ck_assert_str_eq(err.message,
                     "finding stored events: eventId c-2 is stored for another visitor");
    assert_conflicts(g.conflicts, 2, "ft");
    assert_counts(conn, 3, 8, 3, 3, 2);
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.existence_rechecks, 2);
    ck_assert_uint_eq(st.conflict_errors, 2);
    assert_rows(conn, "SELECT \"eventId\", \"visitorId\" FROM conversion_events ORDER BY 1",
                "c-1|v-other\nc-2|v-other\nev-4|v-alpha");
    assert_rows(conn, k_q_offsets,
                "evpipe-ingest|analytics.events.raw|0|20\nevpipe-ingest|analytics.events.raw|3|42");
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_pg_sink_caller_errors_are_fatal) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    fixture_t f;
    fixture_init(&f);
    sink_pg_error_t err;
    f.assigns[2].cookie = 7; /* beyond the 7 rows */
    ck_assert_int_eq(sink_pg_write(s, &f.batch, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_FATAL);
    ck_assert_str_eq(err.sqlstate, "");
    ck_assert_msg(strstr(err.message, "refers to event 7 of 7") != NULL, "%s", err.message);
    f.assigns[2].cookie = 4;
    f.batch.group = NULL;
    ck_assert_int_eq(sink_pg_write(s, &f.batch, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_FATAL);
    /* One new page view listed twice: no single row can hold both. */
    f.batch.group = "evpipe-ingest";
    pv_set(&f.pvs[1], "ev-1", S1, true, 7, -1, true);
    ck_assert_int_eq(sink_pg_write(s, &f.batch, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_FATAL);
    ck_assert_msg(strstr(err.message, "new page view ev-1 listed twice") != NULL, "%s",
                  err.message);
    assert_counts(conn, 0, 0, 0, 0, 0);
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.connects, 0); /* refused before talking to the server */
    ck_assert_uint_eq(st.fatal_errors, 3);
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_pg_sink_missing_schema_is_fatal) {
    char *url = tl_db_create("pgsink_noschema");
    sink_pg_t *s = new_sink(url);
    sink_pg_error_t err;
    ck_assert_int_eq(sink_pg_ping(s, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_FATAL);
    ck_assert_str_eq(err.sqlstate, "42704"); /* type "DeviceType" does not exist */
    fixture_t f;
    fixture_init(&f);
    ck_assert_int_eq(sink_pg_write(s, &f.batch, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_FATAL);
    sink_pg_destroy(s);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_pg_sink_unreachable_is_transient) {
    char errstr[256];
    ck_assert_ptr_null(sink_pg_new("postgresql://[bad", errstr, sizeof(errstr)));
    ck_assert_msg(strstr(errstr, "invalid database conninfo") != NULL, "%s", errstr);
    ck_assert_ptr_null(sink_pg_new("", errstr, sizeof(errstr)));

    /* Creating the sink does not need the server. */
    sink_pg_t *s = sink_pg_new("postgresql:///x?host=/nonexistent-evpipe-dir&user=postgres",
                               errstr, sizeof(errstr));
    ck_assert_ptr_nonnull(s);
    sink_pg_error_t err;
    ck_assert_int_eq(sink_pg_ping(s, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_TRANSIENT);
    ck_assert_msg(strstr(err.message, "cannot connect") != NULL, "%s", err.message);
    fixture_t f;
    fixture_init(&f);
    ck_assert_int_eq(sink_pg_write(s, &f.batch, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_TRANSIENT);
    int32_t p = 0;
    int64_t o = 0;
    ck_assert_int_eq(sink_pg_read_offsets(s, "g", "t", &p, &o, 1, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_TRANSIENT);
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.transient_errors, 3);
    ck_assert_uint_eq(st.connects, 0);
    sink_pg_destroy(s);
    sink_pg_destroy(NULL);
}
END_TEST

/* A write running in another thread. */
typedef struct bg_write_s {
    sink_pg_t *s;
    const sink_pg_batch_t *b;
    sink_pg_error_t err;
    int rc;
    pthread_t thread;
} bg_write_t;

static void *bg_write_main(void *arg) {
    bg_write_t *w = arg;
    w->rc = sink_pg_write(w->s, w->b, &w->err);
    return NULL;
}

/* Waits until a backend of application "evpipe" waits for a lock; returns its pid. */
static long long wait_for_blocked_writer(PGconn *conn) {
    for (int i = 0; i < 500; i++) {
        char *pid = tl_query_text(conn, "SELECT pid FROM pg_stat_activity WHERE"
                                        " application_name = 'evpipe' AND datname = current_database() AND"
                                        " wait_event_type = 'Lock' LIMIT 1");
        if (pid) {
            long long v = strtoll(pid, NULL, 10);
            free(pid);
            return v;
        }
        usleep(10000);
    }
    ck_abort_msg("the sink's transaction never blocked on the lock");
    return -1;
}

START_TEST(test_pg_sink_connection_lost_mid_transaction_is_transient) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    fixture_t f;
    fixture_init(&f);
    /* Hold consumer_offsets: the write blocks at its last statement, everything else of
     * the batch already inside its transaction; then its backend is terminated. */
    PGconn *locker = tl_connect(url);
    tl_exec(locker, "BEGIN");
    tl_exec(locker, "LOCK TABLE consumer_offsets IN ACCESS EXCLUSIVE MODE");
    bg_write_t w = {.s = s, .b = &f.batch};
    ck_assert_int_eq(pthread_create(&w.thread, NULL, bg_write_main, &w), 0);
    long long pid = wait_for_blocked_writer(conn);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%lld)", pid);
    tl_exec(conn, sql);
    pthread_join(w.thread, NULL);
    tl_exec(locker, "ROLLBACK");
    PQfinish(locker);
    ck_assert_int_eq(w.rc, -1);
    ck_assert_int_eq(w.err.status, SINK_PG_TRANSIENT);
    assert_counts(conn, 0, 0, 0, 0, 0);

    /* The next call reconnects and writes the batch once. */
    write_ok(s, &f.batch);
    assert_fixture_rows(conn);
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.connects, 2);
    ck_assert_uint_eq(st.transient_errors, 1);
    ck_assert_uint_eq(st.transactions, 1);
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_pg_sink_concurrent_duplicate_is_transient_then_skipped) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    fixture_t f;
    fixture_init(&f);
    /* Another writer inserts ev-5 and commits after the sink looked for stored eventIds
     * but before its COPY: the COPY waits on that writer's row, then fails with a unique
     * violation, which a retry resolves (TRANSIENT). */
    tl_exec(conn, "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", \"endedAt\")"
                  " VALUES ('" S1 "', 'v-alpha', to_timestamp(0), to_timestamp(0))");
    PGconn *other = tl_connect(url);
    tl_exec(other, "BEGIN");
    tl_exec(other, "INSERT INTO analytics_events (\"sessionId\", \"eventId\", type, name,"
                   " \"visitorId\", \"occurredAt\") VALUES ('" S1 "', 'ev-5', 'CUSTOM',"
                   " 'other writer', 'v-alpha', to_timestamp(0))");
    bg_write_t w = {.s = s, .b = &f.batch};
    ck_assert_int_eq(pthread_create(&w.thread, NULL, bg_write_main, &w), 0);
    wait_for_blocked_writer(conn);
    tl_exec(other, "COMMIT");
    pthread_join(w.thread, NULL);
    PQfinish(other);
    ck_assert_int_eq(w.rc, -1);
    ck_assert_int_eq(w.err.status, SINK_PG_TRANSIENT);
    ck_assert_str_eq(w.err.sqlstate, "23505");
    ck_assert_msg(strstr(w.err.message, "inserting events") != NULL &&
                      strstr(w.err.message, "analytics_events_eventId_key") != NULL,
                  "%s", w.err.message);
    assert_counts(conn, 1, 1, 0, 0, 0);

    /* The retry finds ev-5 stored, keeps that row and writes the rest. */
    write_ok(s, &f.batch);
    assert_counts(conn, 2, 7, 2, 1, 2);
    assert_rows(conn, k_q_sessions, k_exp_sessions);
    assert_rows(conn, k_q_page_views, k_exp_page_views);
    assert_rows(conn, k_q_conversions, k_exp_conversions);
    assert_rows(conn, k_q_offsets, k_exp_offsets);
    assert_rows(conn, "SELECT \"eventId\", name FROM analytics_events WHERE type = 'CUSTOM'",
                "ev-5|other writer");
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.transient_errors, 1);
    ck_assert_uint_eq(st.data_errors, 0);
    ck_assert_uint_eq(st.transactions, 1);
    ck_assert_uint_eq(st.events_inserted, 6);
    ck_assert_uint_eq(st.connects, 1);
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_pg_sink_idle_connection_closed_reconnects_at_once) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    sink_pg_error_t err;
    ck_assert_int_eq(sink_pg_ping(s, &err), 0);
    /* The server ends the idle session (as a restart or idle_session_timeout would). */
    tl_exec(conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE"
                  " application_name = 'evpipe' AND datname = current_database()");
    static const char q_left[] = "SELECT count(*) FROM pg_stat_activity WHERE"
                                 " application_name = 'evpipe' AND datname = current_database()";
    for (int i = 0; i < 3000 && tl_query_ll(conn, q_left) > 0; i++) usleep(10000);
    ck_assert_msg(tl_query_ll(conn, q_left) == 0, "the terminated backend is still there after 30 s");
    fixture_t f;
    fixture_init(&f);
    write_ok(s, &f.batch); /* no error reaches the caller */
    assert_fixture_rows(conn);
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.connects, 2);
    ck_assert_uint_eq(st.transient_errors, 0);
    ck_assert_uint_eq(st.failed_writes, 0);
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* Scratch places of the tests that need them, named in the parent process (unchecked
 * fixtures) and removed there after the test case, also when an assertion ended the
 * test's process early. */
static char g_cluster_dir[128];
static char g_bulk_dir[128];

static void shell_quietly(const char *cmd) {
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed: %s\n", cmd);
}

static void restart_setup(void) {
    snprintf(g_cluster_dir, sizeof(g_cluster_dir), "/tmp/evpipe-pgsink-restart-%d",
             (int)getpid());
}

static void restart_teardown(void) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "sh tests/pg_harness.sh stop '%s' >/dev/null 2>&1; rm -rf '%s'",
             g_cluster_dir, g_cluster_dir);
    shell_quietly(cmd);
}

static void bulk_setup(void) {
    snprintf(g_bulk_dir, sizeof(g_bulk_dir), "/tmp/evpipe-pgsink-bulk-%d", (int)getpid());
}

static void bulk_teardown(void) {
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_bulk_dir);
    shell_quietly(cmd);
}

/* Starts the stopped cluster of tests/pg_harness.sh in dir again, with the harness's
 * server settings. */
static void cluster_restart(const char *dir) {
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "pgbin=${EVPIPE_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin | sort -V -r | head -n 1)};"
             " if [ \"$(id -u)\" = 0 ]; then as='runuser -u postgres --'; else as=; fi;"
             " $as \"$pgbin/pg_ctl\" -D '%s/data' -l '%s/server.log' -w -t 60"
             " -o \"-c listen_addresses='' -c unix_socket_directories='%s/sock' -c port=5432"
             " -c fsync=off -c synchronous_commit=off -c full_page_writes=off\" start",
             dir, dir, dir);
    char *out = NULL, *errout = NULL;
    int rc = tl_run(cmd, &out, &errout);
    ck_assert_msg(rc == 0, "restarting PostgreSQL failed (%d): %s %s", rc, out, errout);
    free(out);
    free(errout);
}

START_TEST(test_pg_sink_server_restart_is_transient_then_recovers) {
    /* A private cluster, since it is stopped mid-way. */
    const char *dir = g_cluster_dir;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'; sh tests/pg_harness.sh start '%s'", dir, dir);
    char *admin = NULL, *errout = NULL;
    int rc = tl_run(cmd, &admin, &errout);
    ck_assert_msg(rc == 0, "pg_harness start failed: %s", errout);
    free(errout);
    admin[strcspn(admin, "\n")] = '\0';
    PGconn *conn = tl_connect(admin);
    char errstr[2048];
    ck_assert_msg(ev_migrate_up(conn, EV_MIGRATE_ALL, errstr, sizeof(errstr)) == 0, "%s", errstr);

    sink_pg_t *s = new_sink(admin);
    fixture_t f;
    fixture_init(&f);
    sink_pg_batch_t only_offsets = f.batch;
    only_offsets.changes = NULL;
    write_ok(s, &only_offsets);

    /* Stop the server while a write is inside its transaction. */
    PGconn *locker = tl_connect(admin);
    tl_exec(locker, "BEGIN");
    tl_exec(locker, "LOCK TABLE consumer_offsets IN ACCESS EXCLUSIVE MODE");
    bg_write_t w = {.s = s, .b = &f.batch};
    ck_assert_int_eq(pthread_create(&w.thread, NULL, bg_write_main, &w), 0);
    wait_for_blocked_writer(conn);
    snprintf(cmd, sizeof(cmd), "sh tests/pg_harness.sh stop '%s'", dir);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);
    pthread_join(w.thread, NULL);
    PQfinish(locker);
    PQfinish(conn);
    ck_assert_int_eq(w.rc, -1);
    ck_assert_msg(w.err.status == SINK_PG_TRANSIENT, "%s: %s",
                  sink_pg_status_name(w.err.status), w.err.message);

    /* While it is down every call is TRANSIENT. */
    sink_pg_error_t err;
    ck_assert_int_eq(sink_pg_write(s, &f.batch, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_TRANSIENT);
    ck_assert_int_eq(sink_pg_ping(s, &err), -1);
    ck_assert_int_eq(err.status, SINK_PG_TRANSIENT);

    cluster_restart(dir);
    write_ok(s, &f.batch);
    conn = tl_connect(admin);
    assert_fixture_rows(conn);
    PQfinish(conn);
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.transactions, 2);
    ck_assert_uint_eq(st.transient_errors, 3);
    ck_assert_uint_eq(st.connects, 2);
    sink_pg_destroy(s);
    free(admin);
}
END_TEST

/* ---- state reload through a real sessionizer ------------------------------------------ */

#define SZB_MAX 24

typedef struct sz_batch_s {
    tf_event_t ev[SZB_MAX];
    sink_pg_event_row_t rows[SZB_MAX];
    tf_sess_context_t ctx;
    size_t n;
} sz_batch_t;

/* Adds an event; returns it for the caller to set more fields. */
static tf_event_t *szb_add(sz_batch_t *b, const char *id, tf_event_type_t type, int64_t ts,
                           const char *visitor, const char *url, const char *path) {
    ck_assert(b->n < SZB_MAX);
    tf_event_t *ev = &b->ev[b->n];
    event_base(ev, id, type, ts, visitor);
    ev->url = url;
    b->rows[b->n].event = ev;
    b->rows[b->n].path = path;
    b->rows[b->n].received_at_ms = ts + 1;
    b->n++;
    return ev;
}

/* Runs the batch protocol for b: add, load what is asked, flush, write, commit. When
 * sizes != NULL, fills it with the flushed changes' upserts, deletes, assigns, page
 * views and duplicates. */
static void szb_run(sink_pg_t *s, tf_sessionizer_t *sz, sz_batch_t *b, size_t sizes[5]) {
    tf_url_t urls[SZB_MAX];
    for (size_t i = 0; i < b->n; i++) {
        const tf_event_t *ev = &b->ev[i];
        /* The campaign key as the ingest stage derives it from the URL. */
        char uerr[128];
        tf_url_init(&urls[i]);
        if (ev->url) ck_assert_int_eq(tf_url_parse(ev->url, &urls[i], uerr, sizeof(uerr)), 0);
        tf_sess_event_t se = {.visitor_id = ev->visitor_id, .event_id = ev->event_id,
                              .ts_ms = ev->timestamp_ms, .type = ev->type,
                              .user_id = ev->user_id, .path = b->rows[i].path,
                              .campaign_key = urls[i].campaign_key,
                              .page_view_id = ev->page_view_id,
                              .has_time_on_page = ev->has_time_on_page,
                              .time_on_page = ev->time_on_page,
                              .scroll_depth = ev->scroll_depth, .context = &b->ctx,
                              .cookie = i};
        ck_assert_int_eq(tf_sessionizer_add(sz, &se), 0);
    }
    for (size_t i = 0; i < b->n; i++) tf_url_reset(&urls[i]);
    size_t n_req = 0;
    const tf_sess_load_request_t *reqs = tf_sessionizer_load_requests(sz, &n_req);
    sink_pg_error_t err;
    if (n_req) ck_assert_msg(sink_pg_load(s, sz, reqs, n_req, &err) == 0, "load: %s", err.message);
    tf_sess_changes_t ch;
    ck_assert_int_eq(tf_sessionizer_flush(sz, &ch), 0);
    if (sizes) {
        sizes[0] = ch.n_upserts;
        sizes[1] = ch.n_deletes;
        sizes[2] = ch.n_assigns;
        sizes[3] = ch.n_page_views;
        sizes[4] = ch.n_duplicates;
    }
    sink_pg_batch_t batch = {.events = b->rows, .n_events = b->n, .changes = &ch,
                             .conversion_types = PURCHASE_BIT};
    write_ok(s, &batch);
    tf_sessionizer_commit(sz);
}

START_TEST(test_pg_sink_load_rebuilds_sessionizer_state) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    tf_session_config_t cfg;
    tf_session_config_default(&cfg);
    cfg.max_duration_ms = 60 * MIN_MS; /* so that the chain rule matters */
    cfg.split_on_campaign = true;      /* campaign keys must be rebuilt from stored URLs */
    tf_sessionizer_t *sz = tf_sessionizer_new(&cfg);
    ck_assert_ptr_nonnull(sz);

    /* v1: events every 20 min for 2 h 20 min: cut by max duration at 60 min. v2: two
     * sessions split by inactivity. */
    sz_batch_t b1;
    memset(&b1, 0, sizeof(b1));
    b1.ctx.device_type = TF_DEVICE_DESKTOP;
    b1.ctx.browser = "Firefox";
    char ids[8][8];
    for (int i = 0; i < 8; i++) {
        snprintf(ids[i], sizeof(ids[i]), "v1-%d", i);
        szb_add(&b1, ids[i], i % 2 ? TF_EVENT_CLICK : TF_EVENT_PAGE_VIEW, T0 + i * 20 * MIN_MS,
                "v1", i % 2 ? NULL : "https://x.test/p", i % 2 ? NULL : "/p");
    }
    szb_add(&b1, "v2-0", TF_EVENT_PAGE_VIEW, T0, "v2", "https://y.test/", "/");
    szb_add(&b1, "v2-1", TF_EVENT_PURCHASE, T0 + 5 * MIN_MS, "v2", NULL, NULL);
    szb_add(&b1, "v2-2", TF_EVENT_PAGE_VIEW, T0 + 50 * MIN_MS, "v2", "https://y.test/z", "/z");
    /* v3: a campaign split, page leave and scroll events, a user id. */
    szb_add(&b1, "v3-0", TF_EVENT_PAGE_VIEW, T0, "v3", "https://z.test/?utm_source=a", "/");
    szb_add(&b1, "v3-1", TF_EVENT_CLICK, T0 + MIN_MS, "v3", NULL, NULL)->user_id = "u-3";
    tf_event_t *leave = szb_add(&b1, "v3-2", TF_EVENT_PAGE_LEAVE, T0 + 90000, "v3", NULL, NULL);
    leave->page_view_id = "v3-0";
    leave->has_time_on_page = true;
    leave->time_on_page = 55.5;
    leave->scroll_depth = 70;
    szb_add(&b1, "v3-3", TF_EVENT_PAGE_VIEW, T0 + 2 * MIN_MS, "v3",
            "https://z.test/b?utm_source=b&utm_medium=email", "/b");
    tf_event_t *scroll = szb_add(&b1, "v3-4", TF_EVENT_SCROLL, T0 + 150000, "v3", NULL, NULL);
    scroll->page_view_id = "v3-3";
    scroll->scroll_depth = 30;
    /* v4: one event now, one much later (see below). */
    szb_add(&b1, "v4-0", TF_EVENT_CLICK, T0, "v4", NULL, NULL);
    size_t sizes[5];
    szb_run(s, sz, &b1, sizes);
    ck_assert_msg(sizes[0] == 7 && sizes[1] == 0 && sizes[2] == 17 && sizes[3] == 8,
                  "first batch: %zu upserts, %zu deletes, %zu assigns, %zu page views",
                  sizes[0], sizes[1], sizes[2], sizes[3]);
    assert_rows(conn,
                "SELECT \"visitorId\", \"startReason\", \"eventCount\", \"pageViewCount\""
                " FROM analytics_sessions ORDER BY 1, \"startedAt\"",
                "v1|FIRST|4|2\nv1|MAX_DURATION|4|2\nv2|FIRST|2|1\nv2|INACTIVITY|1|1\n"
                "v3|FIRST|3|1\nv3|CAMPAIGN|2|1\nv4|FIRST|1|0");
    assert_rows(conn,
                "SELECT \"eventId\", \"timeOnPage\", \"scrollDepth\" FROM page_views"
                " WHERE \"visitorId\" = 'v3' ORDER BY 1",
                "v3-0|55|70\nv3-3|30|30");
    char *before = rows(conn, k_q_sessions);
    tf_sessionizer_destroy(sz);

    /* A restarted consumer: a fresh sessionizer sees the same events again (a replay).
     * It asks to load v1 and v2; after the load nothing changes. */
    sz = tf_sessionizer_new(&cfg);
    szb_run(s, sz, &b1, sizes);
    ck_assert_msg(sizes[0] == 0 && sizes[1] == 0 && sizes[2] == 0 && sizes[3] == 0,
                  "changes after reload: %zu upserts, %zu deletes, %zu assigns, %zu page views",
                  sizes[0], sizes[1], sizes[2], sizes[3]);
    ck_assert_uint_eq(sizes[4], 17); /* every event recognised as stored */
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.loads, 2); /* the first batch's load found nothing */
    ck_assert_uint_eq(st.loaded_sessions, 7);
    ck_assert_uint_eq(st.loaded_events, 17);
    char *after = rows(conn, k_q_sessions);
    ck_assert_str_eq(after, before);
    free(after);
    tf_sessionizer_destroy(sz);

    /* Another restart; only a late event of v1 inside its last session: the load window
     * starts late, so that session is loaded through "endedAt" and its MAX_DURATION
     * predecessor through the chain. */
    sz = tf_sessionizer_new(&cfg);
    sz_batch_t b2;
    memset(&b2, 0, sizeof(b2));
    b2.ctx = b1.ctx;
    szb_add(&b2, "v1-late", TF_EVENT_CLICK, T0 + 135 * MIN_MS, "v1", NULL, NULL);
    /* v4 comes back after 5 h: nothing to load, but older history exists, so its new
     * session did not start FIRST. */
    szb_add(&b2, "v4-1", TF_EVENT_CLICK, T0 + 300 * MIN_MS, "v4", NULL, NULL);
    szb_run(s, sz, &b2, sizes);
    ck_assert_msg(sizes[1] == 0 && sizes[2] == 2, "%zu deletes, %zu assigns", sizes[1],
                  sizes[2]);
    assert_rows(conn,
                "SELECT \"startReason\", \"eventCount\" FROM analytics_sessions"
                " WHERE \"visitorId\" = 'v4' ORDER BY \"startedAt\"",
                "FIRST|1\nINACTIVITY|1");
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.loads, 3);
    ck_assert_uint_eq(st.loaded_sessions, 7 + 2);
    ck_assert_uint_eq(st.loaded_events, 17 + 8);
    assert_rows(conn,
                "SELECT \"startReason\", \"eventCount\", " MS("\"endedAt\"") " FROM"
                " analytics_sessions WHERE \"visitorId\" = 'v1' ORDER BY \"startedAt\"",
                "FIRST|4|1732544400000\nMAX_DURATION|5|1732549200000");
    tf_sessionizer_destroy(sz);

    /* A late event between v2's sessions merges them: loaded, re-pointed, deleted. */
    sz = tf_sessionizer_new(&cfg);
    sz_batch_t b3;
    memset(&b3, 0, sizeof(b3));
    b3.ctx = b1.ctx;
    szb_add(&b3, "v2-mid", TF_EVENT_CLICK, T0 + 25 * MIN_MS, "v2", NULL, NULL);
    szb_run(s, sz, &b3, sizes);
    ck_assert_uint_eq(sizes[1], 1); /* the second session is gone */
    assert_rows(conn,
                "SELECT \"startReason\", \"eventCount\", \"pageViewCount\", duration"
                " FROM analytics_sessions WHERE \"visitorId\" = 'v2'",
                "FIRST|4|2|3000");
    assert_rows(conn,
                "SELECT count(DISTINCT e.\"sessionId\"), count(*) FROM analytics_events e"
                " JOIN analytics_sessions a ON a.id = e.\"sessionId\" WHERE a.\"visitorId\" = 'v2'",
                "1|4");
    assert_rows(conn,
                "SELECT count(*) FROM page_views v JOIN analytics_sessions a"
                " ON a.id = v.\"sessionId\" WHERE a.\"visitorId\" = 'v2'",
                "2");
    tf_sessionizer_destroy(sz);

    /* And after all that, a fresh reload is again a no-op. */
    sz = tf_sessionizer_new(&cfg);
    sz_batch_t all;
    memset(&all, 0, sizeof(all));
    all.ctx = b1.ctx;
    szb_add(&all, "v1-0", TF_EVENT_PAGE_VIEW, T0, "v1", "https://x.test/p", "/p");
    szb_add(&all, "v2-2", TF_EVENT_PAGE_VIEW, T0 + 50 * MIN_MS, "v2", "https://y.test/z", "/z");
    szb_add(&all, "v3-3", TF_EVENT_PAGE_VIEW, T0 + 2 * MIN_MS, "v3",
            "https://z.test/b?utm_source=b&utm_medium=email", "/b");
    szb_run(s, sz, &all, sizes);
    ck_assert_msg(sizes[0] == 0 && sizes[1] == 0 && sizes[2] == 0 && sizes[3] == 0,
                  "changes after reload: %zu upserts, %zu deletes, %zu assigns, %zu page views",
                  sizes[0], sizes[1], sizes[2], sizes[3]);
    ck_assert_uint_eq(sizes[4], 3);
    tf_sessionizer_destroy(sz);
    free(before);
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* Appends src's events to dst (rows re-pointed at dst's copies). */
static void szb_append(sz_batch_t *dst, const sz_batch_t *src) {
    for (size_t i = 0; i < src->n; i++) {
        ck_assert(dst->n < SZB_MAX);
        dst->ev[dst->n] = src->ev[i];
        dst->rows[dst->n] = src->rows[i];
        dst->rows[dst->n].event = &dst->ev[dst->n];
        dst->n++;
    }
}

/* The full recomputation: every event of batches[] given at once to a fresh sessionizer
 * writing into a fresh database must give exactly the sessions, events and page views conn
 * holds (ids included: they are derived from the events). */
static void assert_same_as_recomputed(PGconn *conn, const tf_session_config_t *cfg,
                                      const sz_batch_t *const *batches, size_t n_batches) {
    PGconn *ref_conn;
    char *ref_url = migrated_db(&ref_conn);
    sink_pg_t *ref = new_sink(ref_url);
    tf_sessionizer_t *sz = tf_sessionizer_new(cfg);
    ck_assert_ptr_nonnull(sz);
    sz_batch_t *all = calloc(1, sizeof(*all));
    ck_assert_ptr_nonnull(all);
    all->ctx = batches[0]->ctx;
    for (size_t i = 0; i < n_batches; i++) szb_append(all, batches[i]);
    szb_run(ref, sz, all, NULL);
    const char *const queries[3] = {k_q_sessions, k_q_events, k_q_page_views};
    for (int q = 0; q < 3; q++) {
        char *want = rows(ref_conn, queries[q]);
        ck_assert_msg(strlen(want) > 0, "recomputation wrote nothing: %s", queries[q]);
        assert_rows(conn, queries[q], want);
        free(want);
    }
    free(all);
    tf_sessionizer_destroy(sz);
    sink_pg_destroy(ref);
    PQfinish(ref_conn);
    tl_db_drop(ref_url);
    free(ref_url);
}

/* Two sessions that start and end in the same millisecond (a campaign cut between equal
 * timestamps) after a MAX_DURATION chain: a late event after a restart must load the whole
 * chain back to its FIRST session, not only the two tied sessions. */
START_TEST(test_pg_sink_load_tied_sessions_load_their_chain) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    tf_session_config_t cfg;
    tf_session_config_default(&cfg);
    cfg.timeout_ms = 10 * MIN_MS;
    cfg.max_duration_ms = 60 * MIN_MS;
    cfg.split_on_campaign = true;
    tf_sessionizer_t *sz = tf_sessionizer_new(&cfg);
    ck_assert_ptr_nonnull(sz);

    /* Every 9 min from T0: page views of campaign a and clicks; cut by max duration at
     * T0+63 min; then at T0+90 min two page views of campaigns b and c in the same ms. */
    sz_batch_t b1;
    memset(&b1, 0, sizeof(b1));
    b1.ctx.device_type = TF_DEVICE_DESKTOP;
    char ids[10][8];
    for (int i = 0; i < 10; i++) {
        snprintf(ids[i], sizeof(ids[i]), "t-%02d", i);
        bool pv = i % 2 == 0;
        szb_add(&b1, ids[i], pv ? TF_EVENT_PAGE_VIEW : TF_EVENT_CLICK, T0 + i * 9 * MIN_MS,
                "t", pv ? "https://t.test/a?utm_source=a" : NULL, pv ? "/a" : NULL);
    }
    szb_add(&b1, "t-10b", TF_EVENT_PAGE_VIEW, T0 + 90 * MIN_MS, "t",
            "https://t.test/b?utm_source=b", "/b");
    szb_add(&b1, "t-10c", TF_EVENT_PAGE_VIEW, T0 + 90 * MIN_MS, "t",
            "https://t.test/c?utm_source=c", "/c");
    szb_run(s, sz, &b1, NULL);
    const char *q_t = "SELECT \"startReason\", \"eventCount\", \"pageViewCount\", "
                      MS("\"startedAt\"") " - 1732540800000, " MS("\"endedAt\"")
                      " - 1732540800000 FROM analytics_sessions ORDER BY \"startedAt\", id";
    /* The two tied sessions: t-10b's and t-10c's, both [90 min, 90 min]. */
    assert_rows(conn, q_t,
                "FIRST|7|4|0|3240000\nMAX_DURATION|3|1|3780000|4860000\n"
                "CAMPAIGN|1|1|5400000|5400000\nCAMPAIGN|1|1|5400000|5400000");
    tf_sessionizer_destroy(sz);

    /* A restart, then a late click 9 min after the ties: its window (T0+89 min) holds only
     * the tied sessions; their predecessor is the MAX_DURATION session, whose own
     * predecessor is the FIRST one. All four sessions and their 12 events are loaded. */
    sink_pg_stats_t st0, st1;
    sink_pg_stats(s, &st0);
    sz = tf_sessionizer_new(&cfg);
    ck_assert_ptr_nonnull(sz);
    sz_batch_t b2;
    memset(&b2, 0, sizeof(b2));
    b2.ctx = b1.ctx;
    szb_add(&b2, "t-late", TF_EVENT_CLICK, T0 + 99 * MIN_MS, "t", NULL, NULL);
    size_t sizes[5];
    szb_run(s, sz, &b2, sizes);
    sink_pg_stats(s, &st1);
    ck_assert_uint_eq(st1.loads - st0.loads, 1);
    ck_assert_uint_eq(st1.loaded_sessions - st0.loaded_sessions, 4);
    ck_assert_uint_eq(st1.loaded_events - st0.loaded_events, 12);
    ck_assert_msg(sizes[0] == 1 && sizes[1] == 0 && sizes[2] == 1,
                  "late event: %zu upserts, %zu deletes, %zu assigns", sizes[0], sizes[1],
                  sizes[2]);
    assert_rows(conn, q_t,
                "FIRST|7|4|0|3240000\nMAX_DURATION|3|1|3780000|4860000\n"
                "CAMPAIGN|1|1|5400000|5400000\nCAMPAIGN|2|1|5400000|5940000");
    const sz_batch_t *const batches[2] = {&b1, &b2};
    assert_same_as_recomputed(conn, &cfg, batches, 2);
    tf_sessionizer_destroy(sz);
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* A PAGE_LEAVE for a page view whose session left memory (trimmed: the tab stayed open for
 * hours) and lies far before the new event's window: the stored session is loaded through
 * page_view_ids and the stored page view gets the PAGE_LEAVE's timeOnPage. The same id
 * referred to by another visitor loads nothing. */
START_TEST(test_pg_sink_load_page_leave_outside_window) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    tf_session_config_t cfg;
    tf_session_config_default(&cfg);
    tf_sessionizer_t *sz = tf_sessionizer_new(&cfg);
    ck_assert_ptr_nonnull(sz);

    sz_batch_t b1;
    memset(&b1, 0, sizeof(b1));
    szb_add(&b1, "p-0", TF_EVENT_PAGE_VIEW, T0, "p", "https://p.test/a", "/a");
    szb_add(&b1, "p-1", TF_EVENT_CLICK, T0 + MIN_MS, "p", NULL, NULL);
    szb_run(s, sz, &b1, NULL);
    sz_batch_t b2;
    memset(&b2, 0, sizeof(b2));
    szb_add(&b2, "p-2", TF_EVENT_PAGE_VIEW, T0 + 300 * MIN_MS, "p", "https://p.test/b", "/b");
    szb_run(s, sz, &b2, NULL);
    assert_rows(conn,
                "SELECT \"eventId\", \"timeOnPage\", \"scrollDepth\" FROM page_views ORDER BY 1",
                "p-0|60|NULL\np-2|NULL|NULL");
    /* The first session ended more than timeout + lateness before the watermark: trimmed,
     * the visitor keeps only its latest session in memory. */
    ck_assert_uint_eq(tf_sessionizer_evict(sz, T0 + 300 * MIN_MS + 1), 0);
    ck_assert_uint_eq(tf_sessionizer_visitor_count(sz), 1);
    ck_assert_uint_eq(tf_sessionizer_event_count(sz), 1);

    sink_pg_stats_t st0, st1;
    sink_pg_stats(s, &st0);
    sz_batch_t b3;
    memset(&b3, 0, sizeof(b3));
    tf_event_t *leave = szb_add(&b3, "p-3", TF_EVENT_PAGE_LEAVE, T0 + 302 * MIN_MS, "p", NULL, NULL);
    leave->page_view_id = "p-0";
    leave->has_time_on_page = true;
    leave->time_on_page = 18120.9;
    leave->scroll_depth = 80;
    tf_event_t *other = szb_add(&b3, "q-0", TF_EVENT_PAGE_LEAVE, T0 + 302 * MIN_MS, "q", NULL, NULL);
    other->page_view_id = "p-0"; /* p's page view: not q's, ignored */
    other->has_time_on_page = true;
    other->time_on_page = 99999;
    other->scroll_depth = 5;
    szb_run(s, sz, &b3, NULL);
    sink_pg_stats(s, &st1);
    ck_assert_uint_eq(st1.loaded_sessions - st0.loaded_sessions, 2); /* p's two, none of q */
    ck_assert_uint_eq(st1.loaded_events - st0.loaded_events, 3);
    assert_rows(conn,
                "SELECT \"eventId\", \"timeOnPage\", \"scrollDepth\" FROM page_views ORDER BY 1",
                "p-0|18120|80\np-2|120|NULL"); /* p-2: time to the session's next event */
    assert_rows(conn,
                "SELECT e.\"eventId\", a.\"visitorId\", a.\"startReason\", a.\"eventCount\""
                " FROM analytics_events e JOIN analytics_sessions a ON a.id = e.\"sessionId\""
                " ORDER BY 1",
                "p-0|p|FIRST|2\np-1|p|FIRST|2\np-2|p|INACTIVITY|2\np-3|p|INACTIVITY|2\n"
                "q-0|q|FIRST|1");
    const sz_batch_t *const batches[3] = {&b1, &b2, &b3};
    assert_same_as_recomputed(conn, &cfg, batches, 3);
    tf_sessionizer_destroy(sz);
    sink_pg_destroy(s);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* ---- write rate against psql \copy -------------------------------------------------- */

#define BULK_VISITORS 5000
#define BULK_PER_VISITOR 10
#define BULK_BATCH 5000

typedef struct bulk_s {
    tf_event_t *ev;
    sink_pg_event_row_t *rows;
    char (*ids)[24];
    char (*vids)[24];
    char (*urls)[96];
    tf_session_t *sessions;
    tf_sess_assign_t *assigns;
    tf_page_view_update_t *pvs;
} bulk_t;

/* 50,000 events of 5,000 visitors (one session each, 4 page views, a purchase for one
 * visitor in ten) and their changes, in batches of 5,000 events. */
static void bulk_make(bulk_t *bk) {
    size_t n = BULK_VISITORS * BULK_PER_VISITOR;
    bk->ev = calloc(n, sizeof(*bk->ev));
    bk->rows = calloc(n, sizeof(*bk->rows));
    bk->ids = calloc(n, sizeof(*bk->ids));
    bk->vids = calloc(BULK_VISITORS, sizeof(*bk->vids));
    bk->urls = calloc(n, sizeof(*bk->urls));
    bk->sessions = calloc(BULK_VISITORS, sizeof(*bk->sessions));
    bk->assigns = calloc(n, sizeof(*bk->assigns));
    bk->pvs = calloc(n, sizeof(*bk->pvs));
    ck_assert(bk->ev && bk->rows && bk->ids && bk->vids && bk->urls && bk->sessions &&
              bk->assigns && bk->pvs);
    static const tf_event_type_t types[BULK_PER_VISITOR] = {
        TF_EVENT_PAGE_VIEW, TF_EVENT_SCROLL,       TF_EVENT_PAGE_VIEW, TF_EVENT_PRODUCT_VIEW,
        TF_EVENT_CLICK,     TF_EVENT_PAGE_VIEW,    TF_EVENT_ADD_TO_CART, TF_EVENT_PAGE_VIEW,
        TF_EVENT_PAGE_LEAVE, TF_EVENT_PURCHASE};
    for (size_t v = 0; v < BULK_VISITORS; v++) {
        snprintf(bk->vids[v], sizeof(bk->vids[v]), "visitor-%06zu", v);
        int64_t start = T0 + (int64_t)v * 1000;
        char sid[37];
        tf_session_id(bk->vids[v], "", sid);
        tf_session_t *ss = &bk->sessions[v];
        session_base(ss, sid, bk->vids[v], start, start + 9 * 15000, 4, BULK_PER_VISITOR,
                     TF_START_FIRST);
        ss->entry_page = "/products/1";
        ss->exit_page = "/checkout";
        ss->context.device_type = TF_DEVICE_DESKTOP;
        ss->context.browser = "Chrome";
        ss->context.browser_version = "120.0.0";
        ss->context.os = "Windows";
        ss->context.os_version = "10";
        ss->context.user_agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
                                 " (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        ss->context.language = "en-US";
        ss->context.country = "US";
        ss->context.screen_width = 1920;
        ss->context.screen_height = 1080;
        for (size_t k = 0; k < BULK_PER_VISITOR; k++) {
            size_t i = v * BULK_PER_VISITOR + k;
            snprintf(bk->ids[i], sizeof(bk->ids[i]), "e-%07zu", i);
            tf_event_t *ev = &bk->ev[i];
            tf_event_type_t type = types[k];
            if (type == TF_EVENT_PURCHASE && v % 10) type = TF_EVENT_CLICK;
            event_base(ev, bk->ids[i], type, start + (int64_t)k * 15000, bk->vids[v]);
            snprintf(bk->urls[i], sizeof(bk->urls[i]),
                     "https://shop.example.com/products/%zu?ref=home&variant=%zu", k, v % 7);
            ev->url = bk->urls[i];
            ev->referrer = "https://www.example.org/";
            ev->properties_json = "{\"category\":\"shoes\",\"price\":59.9,\"tags\":[\"a\",\"b\"]}";
            if (type == TF_EVENT_PURCHASE) {
                ev->has_value = true;
                ev->value_text = "59.90";
                memcpy(ev->currency, "USD", 4);
            }
            if (type == TF_EVENT_PAGE_LEAVE) {
                ev->has_time_on_page = true;
                ev->time_on_page = 12.5;
                ev->scroll_depth = 75;
            }
            bk->rows[i].event = ev;
            bk->rows[i].path = "/products/1";
            bk->rows[i].received_at_ms = ev->timestamp_ms + 250;
            assign_set(&bk->assigns[i], ev->event_id, sid, true, type, i % BULK_BATCH);
            pv_set(&bk->pvs[i], ev->event_id, sid, true, 15, -1, true);
        }
    }
}

static void bulk_free(bulk_t *bk) {
    free(bk->ev);
    free(bk->rows);
    free(bk->ids);
    free(bk->vids);
    free(bk->urls);
    free(bk->sessions);
    free(bk->assigns);
    free(bk->pvs);
}

static double seconds_since(int64_t t0_ns) { return (double)(ev_mono_ns() - t0_ns) / 1e9; }

static const char *const k_bulk_tables[4] = {"analytics_sessions", "analytics_events",
                                              "page_views", "conversion_events"};

/* Writes the bulk batches through a sink into a fresh database; returns the seconds
 * spent in sink_pg_write and the database (*url_out, caller drops and frees). */
static double bulk_sink_round(const bulk_t *bk, char **url_out, long long *n_pv) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    sink_pg_t *s = new_sink(url);
    sink_pg_error_t err;
    ck_assert_int_eq(sink_pg_ping(s, &err), 0);
    size_t per_batch_visitors = BULK_BATCH / BULK_PER_VISITOR;
    tf_page_view_update_t *pv_batch = calloc(BULK_BATCH, sizeof(*pv_batch));
    ck_assert_ptr_nonnull(pv_batch);
    int64_t t_sink = 0;
    long long total_pv = 0;
    for (size_t b = 0; b < BULK_VISITORS / per_batch_visitors; b++) {
        size_t first = b * BULK_BATCH;
        size_t npv = 0;
        for (size_t i = first; i < first + BULK_BATCH; i++)
            if (bk->ev[i].type == TF_EVENT_PAGE_VIEW) pv_batch[npv++] = bk->pvs[i];
        total_pv += (long long)npv;
        tf_sess_changes_t ch = {.upserts = bk->sessions + b * per_batch_visitors,
                                .n_upserts = per_batch_visitors,
                                .assigns = bk->assigns + first,
                                .n_assigns = BULK_BATCH,
                                .page_views = pv_batch,
                                .n_page_views = npv};
        int32_t part = 0;
        int64_t next = (int64_t)(first + BULK_BATCH);
        sink_pg_batch_t batch = {.events = bk->rows + first, .n_events = BULK_BATCH,
                                 .changes = &ch, .conversion_types = PURCHASE_BIT,
                                 .group = "bench", .topic = "raw", .partitions = &part,
                                 .next_offsets = &next, .n_offsets = 1};
        int64_t t = ev_mono_ns();
        write_ok(s, &batch);
        t_sink += ev_mono_ns() - t;
    }
    free(pv_batch);
    assert_counts(conn, BULK_VISITORS, BULK_VISITORS * BULK_PER_VISITOR, total_pv,
                  BULK_VISITORS / 10, 1);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(DISTINCT id) FROM analytics_events"),
                     BULK_VISITORS * BULK_PER_VISITOR);
    sink_pg_stats_t st;
    sink_pg_stats(s, &st);
    ck_assert_uint_eq(st.events_inserted, BULK_VISITORS * BULK_PER_VISITOR);
    ck_assert_uint_eq(st.transactions, BULK_VISITORS * BULK_PER_VISITOR / BULK_BATCH);
    sink_pg_destroy(s);
    PQfinish(conn);
    *url_out = url;
    *n_pv = total_pv;
    return (double)t_sink / 1e9;
}

/* Loads the exported tables of dir with one psql run of \copy into a fresh database;
 * returns the seconds the psql run took. */
static double bulk_copy_round(const char *dir, long long n_pv) {
    PGconn *conn;
    char *url = migrated_db(&conn);
    char cmd[4096];
    size_t len = (size_t)snprintf(cmd, sizeof(cmd), "psql -X -q -v ON_ERROR_STOP=1 '%s'", url);
    for (int t = 0; t < 4; t++)
        len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, " -c \"\\copy %s FROM '%s/%s.tsv'\"",
                                k_bulk_tables[t], dir, k_bulk_tables[t]);
    int64_t t0 = ev_mono_ns();
    char *errout = NULL;
    int rc = tl_run(cmd, NULL, &errout);
    double secs = seconds_since(t0);
    ck_assert_msg(rc == 0, "%s: %s", cmd, errout);
    free(errout);
    assert_counts(conn, BULK_VISITORS, BULK_VISITORS * BULK_PER_VISITOR, n_pv,
                  BULK_VISITORS / 10, 0);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
    return secs;
}

START_TEST(test_pg_sink_bulk_rate_vs_psql_copy) {
    bulk_t bk;
    bulk_make(&bk);
    const char *dir = g_bulk_dir;
    ck_assert_int_eq(mkdir(dir, 0700), 0); /* psql reads and writes the files itself */
    /* Two rounds of each, alternating, best of each kept: the machine is shared. */
    double sink_s = 1e9, copy_s = 1e9;
    long long n_pv = 0;
    for (int round = 0; round < 2; round++) {
        char *url = NULL;
        double t = bulk_sink_round(&bk, &url, &n_pv);
        if (t < sink_s) sink_s = t;
        if (round == 0) {
            /* The baseline loads the very rows the sink wrote. */
            char export_cmd[1024];
            for (int i = 0; i < 4; i++) {
                snprintf(export_cmd, sizeof(export_cmd),
                         "psql -X -q -v ON_ERROR_STOP=1 '%s' -c \"\\copy %s TO '%s/%s.tsv'\"",
                         url, k_bulk_tables[i], dir, k_bulk_tables[i]);
                ck_assert_msg(tl_run(export_cmd, NULL, NULL) == 0, "%s", export_cmd);
            }
        }
        tl_db_drop(url);
        free(url);
        t = bulk_copy_round(dir, n_pv);
        if (t < copy_s) copy_s = t;
    }
    long long n_events = BULK_VISITORS * BULK_PER_VISITOR;
    double sink_rate = (double)n_events / sink_s, copy_rate = (double)n_events / copy_s;
    printf("pg_sink: %lld events (+%d sessions, %lld page views, %d conversions) in %.3f s ="
           " %.0f events/s; psql \\copy of the same rows %.3f s = %.0f events/s; ratio %.2f"
           " (best of 2)\n",
           n_events, BULK_VISITORS, n_pv, BULK_VISITORS / 10, sink_s, sink_rate, copy_s,
           copy_rate, sink_rate / copy_rate);
    fflush(stdout);
    /* The goal is relative (the absolute rate depends on the machine); under sanitizers
     * (EVPIPE_TEST_SLOW) only the rows are checked. */
    if (!getenv("EVPIPE_TEST_SLOW"))
        ck_assert_msg(sink_rate >= 0.6 * copy_rate, "sink rate %.0f < 0.6 x psql \\copy %.0f",
                      sink_rate, copy_rate);
    bulk_free(&bk);
}
END_TEST

static Suite *pg_sink_suite(void) {
    Suite *suite = suite_create("pg_sink");
    /* CK_RUN_CASE=rows|errors|restart|reload|bulk runs one group. */
    TCase *rows_tc = tcase_create("rows");
    tcase_add_test(rows_tc, test_pg_sink_write_exact_rows);
    tcase_add_test(rows_tc, test_pg_sink_offsets_roundtrip);
    tcase_add_test(rows_tc, test_pg_sink_rewrite_is_idempotent);
    tcase_add_test(rows_tc, test_pg_sink_merge_repoints_and_deletes);
    tcase_add_test(rows_tc, test_pg_sink_batch_duplicates_and_stored_page_views);
    tcase_add_test(rows_tc, test_pg_sink_event_id_conflict_in_batch);
    tcase_add_test(rows_tc, test_pg_sink_event_id_conflict_with_stored);
    suite_add_tcase(suite, rows_tc);
    TCase *errors_tc = tcase_create("errors");
    tcase_set_timeout(errors_tc, 120);
    tcase_add_test(errors_tc, test_pg_sink_data_error_writes_nothing);
    tcase_add_test(errors_tc, test_pg_sink_caller_errors_are_fatal);
    tcase_add_test(errors_tc, test_pg_sink_missing_schema_is_fatal);
    tcase_add_test(errors_tc, test_pg_sink_unreachable_is_transient);
    tcase_add_test(errors_tc, test_pg_sink_connection_lost_mid_transaction_is_transient);
    tcase_add_test(errors_tc, test_pg_sink_concurrent_duplicate_is_transient_then_skipped);
    tcase_add_test(errors_tc, test_pg_sink_idle_connection_closed_reconnects_at_once);
    suite_add_tcase(suite, errors_tc);
    TCase *restart_tc = tcase_create("restart");
    tcase_set_timeout(restart_tc, 120);
    tcase_add_unchecked_fixture(restart_tc, restart_setup, restart_teardown);
    tcase_add_test(restart_tc, test_pg_sink_server_restart_is_transient_then_recovers);
    suite_add_tcase(suite, restart_tc);
    TCase *reload_tc = tcase_create("reload");
    tcase_add_test(reload_tc, test_pg_sink_load_rebuilds_sessionizer_state);
    tcase_add_test(reload_tc, test_pg_sink_load_tied_sessions_load_their_chain);
    tcase_add_test(reload_tc, test_pg_sink_load_page_leave_outside_window);
    suite_add_tcase(suite, reload_tc);
    TCase *bulk_tc = tcase_create("bulk");
    tcase_set_timeout(bulk_tc, 300);
    tcase_add_unchecked_fixture(bulk_tc, bulk_setup, bulk_teardown);
    tcase_add_test(bulk_tc, test_pg_sink_bulk_rate_vs_psql_copy);
    suite_add_tcase(suite, bulk_tc);
    return suite;
}

int main(void) {
    if (!tl_database_url()) {
        fprintf(stderr, "test_pg_sink: EVPIPE_TEST_DATABASE_URL is not set: this suite needs"
                        " PostgreSQL (run it through make check or tests/run.sh)\n");
        return 1;
    }
    return tl_run_suite(pg_sink_suite()) ? 1 : 0;
}
