/* ingest_oracle.c — independent expectation for ingest runs (see ingest_oracle.h). */
#include "tests/integration/ingest_oracle.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "transforms/event.h"

typedef struct oev_s {
    char visitor[160];
    char event_id[160];
    int64_t ts;
    int type;
} oev_t;

static int cmp_oev(const void *a, const void *b) {
    const oev_t *x = a, *y = b;
    int c = strcmp(x->visitor, y->visitor);
    if (c) return c;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return strcmp(x->event_id, y->event_id);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* value text -> cents, rounding half away from zero like NUMERIC(14,2). */
static long long to_cents(const char *text) {
    double v = strtod(text, NULL);
    return (long long)(v * 100.0 + (v >= 0 ? 0.5 : -0.5));
}

static int is_conversion(int type) {
    return type == TF_EVENT_PURCHASE || type == TF_EVENT_APPOINTMENT_COMPLETE ||
           type == TF_EVENT_LEAD || type == TF_EVENT_SIGN_UP || type == TF_EVENT_FORM_SUBMIT;
}

void oracle_compute(const char *path, int64_t timeout_ms, int64_t max_duration_ms,
                    oracle_t *out) {
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t cap = 1024, n = 0, ids_cap = 1024, n_ids = 0;
    oev_t *evs = malloc(cap * sizeof(*evs));
    char **ids = malloc(ids_cap * sizeof(*ids));
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    tf_event_t ev;
    tf_event_init(&ev);
    /* First pass: valid events (duplicates by eventId are resolved below). */
    while ((len = getline(&line, &line_cap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') len--;
        out->n_lines++;
        tf_event_error_t err;
        if (tf_event_parse(&ev, line, (size_t)len, &err) != 0) {
            out->n_invalid++;
            continue;
        }
        if (n == cap) evs = realloc(evs, (cap *= 2) * sizeof(*evs));
        oev_t *o = &evs[n++];
        snprintf(o->visitor, sizeof(o->visitor), "%s", ev.visitor_id);
        snprintf(o->event_id, sizeof(o->event_id), "%s", ev.event_id);
        o->ts = ev.timestamp_ms;
        o->type = (int)ev.type;
        if (n_ids == ids_cap) ids = realloc(ids, (ids_cap *= 2) * sizeof(*ids));
        /* id + value so the first occurrence's value is what counts */
        size_t need = strlen(ev.event_id) + 64;
        ids[n_ids] = malloc(need);
        snprintf(ids[n_ids], need, "%s\t%zu\t%lld", ev.event_id, n - 1,
                 ev.has_value ? to_cents(ev.value_text) : 0LL);
        n_ids++;
    }
    tf_event_reset(&ev);
    free(line);
    fclose(f);
    /* Dedup by eventId keeping the first occurrence (smallest index). */
    qsort(ids, n_ids, sizeof(*ids), cmp_str);
    char *keep = calloc(n ? n : 1, 1);
    long long *cents = calloc(n ? n : 1, sizeof(long long));
    for (size_t i = 0; i < n_ids;) {
        size_t j = i;
        const char *tab = strchr(ids[i], '\t');
        size_t idlen = (size_t)(tab - ids[i]);
        size_t best = (size_t)-1;
        long long best_cents = 0;
        while (j < n_ids && strncmp(ids[j], ids[i], idlen + 1) == 0) {
            size_t idx = 0;
            long long c = 0;
            sscanf(ids[j] + idlen + 1, "%zu\t%lld", &idx, &c);
            if (idx < best) best = idx, best_cents = c;
            j++;
        }
        ck_assert(best < n);
        keep[best] = 1;
        cents[best] = best_cents;
        out->n_duplicates += j - i - 1;
        i = j;
    }
    for (size_t i = 0; i < n_ids; i++) free(ids[i]);
    free(ids);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!keep[i]) continue;
        if (evs[i].type == TF_EVENT_PAGE_VIEW) out->n_page_views++;
        if (is_conversion(evs[i].type)) {
            out->n_conversions++;
            out->value_cents += cents[i];
        }
        evs[m++] = evs[i];
    }
    free(keep);
    free(cents);
    out->n_valid_unique = m;
    /* Sessions: sort a visitor's events by time, cut at the gaps and the max duration. */
    qsort(evs, m, sizeof(*evs), cmp_oev);
    out->sessions = malloc((m ? m : 1) * sizeof(*out->sessions));
    oracle_session_t *cur = NULL;
    for (size_t i = 0; i < m; i++) {
        const oev_t *e = &evs[i];
        int new_session = !cur || strcmp(cur->visitor, e->visitor) != 0 ||
                          e->ts - cur->end_ms > timeout_ms ||
                          e->ts - cur->start_ms > max_duration_ms;
        if (new_session) {
            cur = &out->sessions[out->n_sessions++];
            memset(cur, 0, sizeof(*cur));
            snprintf(cur->visitor, sizeof(cur->visitor), "%s", e->visitor);
            cur->start_ms = e->ts;
        }
        cur->end_ms = e->ts;
        cur->event_count++;
        if (e->type == TF_EVENT_PAGE_VIEW) cur->page_view_count++;
    }
    free(evs);
}

void oracle_free(oracle_t *o) {
    free(o->sessions);
    memset(o, 0, sizeof(*o));
}

size_t oracle_produce_file(const char *brokers, const char *topic, const char *path) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ck_assert(rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) == 0);
    ck_assert(rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) == 0);
    ck_assert(rd_kafka_conf_set(conf, "compression.type", "lz4", errstr, sizeof(errstr)) == 0);
    ck_assert(rd_kafka_conf_set(conf, "linger.ms", "20", errstr, sizeof(errstr)) == 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "%s", errstr);
    FILE *f = fopen(path, "rb");
    ck_assert(f != NULL);
    char *line = NULL;
    size_t cap = 0, count = 0;
    ssize_t len;
    tf_event_t ev;
    tf_event_init(&ev);
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') len--;
        tf_event_error_t err;
        char key[200];
        if (tf_event_parse(&ev, line, (size_t)len, &err) == 0)
            snprintf(key, sizeof(key), "%s", ev.visitor_id);
        else
            snprintf(key, sizeof(key), "invalid-%zu", count);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                      RD_KAFKA_V_VALUE(line, (size_t)len),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        ck_assert_int_eq(e, 0);
        count++;
    }
    tf_event_reset(&ev);
    free(line);
    fclose(f);
    ck_assert_int_eq(rd_kafka_flush(rk, 60000), 0);
    rd_kafka_destroy(rk);
    return count;
}

void oracle_check_database(const oracle_t *o, const char *database_url) {
    PGconn *conn = tl_connect(database_url);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM analytics_events"),
                     (long long)o->n_valid_unique);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM page_views"),
                     (long long)o->n_page_views);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM conversion_events"),
                     (long long)o->n_conversions);
    ck_assert_int_eq(
        tl_query_ll(conn, "SELECT coalesce(sum(value) * 100, 0)::bigint FROM conversion_events"),
        o->value_cents);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM analytics_sessions"),
                     (long long)o->n_sessions);
    /* Every event points at an existing session of its visitor, inside its bounds. */
    ck_assert_int_eq(tl_query_ll(conn,
                                 "SELECT count(*) FROM analytics_events e LEFT JOIN "
                                 "analytics_sessions s ON s.id = e.\"sessionId\" WHERE s.id IS "
                                 "NULL OR s.\"visitorId\" <> e.\"visitorId\" OR e.\"occurredAt\" "
                                 "< s.\"startedAt\" OR e.\"occurredAt\" > s.\"endedAt\""),
                     0);
    ck_assert_int_eq(tl_query_ll(conn,
                                 "SELECT count(*) FROM page_views p LEFT JOIN analytics_events e "
                                 "ON e.\"eventId\" = p.\"eventId\" WHERE e.\"sessionId\" IS "
                                 "DISTINCT FROM p.\"sessionId\""),
                     0);
    /* Session by session, against the oracle's cut. */
    PGresult *res = PQexec(conn,
                           "SELECT \"visitorId\", (extract(epoch FROM \"startedAt\") * 1000)::bigint,"
                           " (extract(epoch FROM \"endedAt\") * 1000)::bigint, \"eventCount\","
                           " \"pageViewCount\" FROM analytics_sessions"
                           " ORDER BY \"visitorId\" COLLATE \"C\", \"startedAt\"");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    ck_assert_int_eq(PQntuples(res), (int)o->n_sessions);
    for (int r = 0; r < PQntuples(res); r++) {
        const oracle_session_t *s = &o->sessions[r];
        char got[512], want[512];
        snprintf(got, sizeof(got), "%s %s %s %s %s", PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                 PQgetvalue(res, r, 2), PQgetvalue(res, r, 3), PQgetvalue(res, r, 4));
        snprintf(want, sizeof(want), "%s %lld %lld %d %d", s->visitor, (long long)s->start_ms,
                 (long long)s->end_ms, s->event_count, s->page_view_count);
        ck_assert_msg(strcmp(got, want) == 0, "session %d differs:\n  db     %s\n  oracle %s", r,
                      got, want);
    }
    PQclear(res);
    PQfinish(conn);
}

static void append_query(PGconn *conn, const char *sql, char **buf, size_t *len, size_t *cap) {
    PGresult *res = PQexec(conn, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(conn));
    for (int r = 0; r < PQntuples(res); r++) {
        const char *v = PQgetvalue(res, r, 0);
        size_t n = strlen(v);
        while (*len + n + 2 > *cap) *buf = realloc(*buf, *cap *= 2);
        memcpy(*buf + *len, v, n);
        *len += n;
        (*buf)[(*len)++] = '\n';
        (*buf)[*len] = '\0';
    }
    PQclear(res);
}

char *oracle_dump_tables(const char *database_url) {
    PGconn *conn = tl_connect(database_url);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    buf[0] = '\0';
    append_query(conn,
                 "SELECT (to_jsonb(s) - 'createdAt' - 'updatedAt')::text FROM analytics_sessions s "
                 "ORDER BY id",
                 &buf, &len, &cap);
    append_query(conn,
                 "SELECT (to_jsonb(e) - 'id' - 'createdAt' - 'receivedAt')::text FROM "
                 "analytics_events e ORDER BY \"eventId\"",
                 &buf, &len, &cap);
    append_query(conn,
                 "SELECT (to_jsonb(p) - 'id' - 'createdAt' - 'updatedAt')::text FROM page_views p "
                 "ORDER BY \"eventId\"",
                 &buf, &len, &cap);
    append_query(conn,
                 "SELECT (to_jsonb(c) - 'id' - 'createdAt')::text FROM conversion_events c "
                 "ORDER BY \"eventId\"",
                 &buf, &len, &cap);
    PQfinish(conn);
    return buf;
}
