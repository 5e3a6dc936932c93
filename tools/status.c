/* status.c — `evpipe status [--json]`: one screen for an operator. From PostgreSQL: the
 * stored position of every consumer group and partition (consumer_offsets, written with
 * the rows), the last batch time per group, exports and reports by status, dirty hours
 * waiting per downstream stage. From Kafka: the end of each of those partitions (the
 * high watermark), hence the lag, and the dead-letter topic's size. Without Kafka it
 * shows what PostgreSQL knows and says Kafka is unreachable. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <yajl/yajl_gen.h>

#include "common/cli.h"
#include "common/commands.h"
#include "common/kafka_log.h"
#include "common/kmock.h"

#define ST_NO_END (-1)

/* Kafka, when reachable: watermarks on demand. */
typedef struct st_kafka_s {
    rd_kafka_t *rk;
    int timeout_ms;
    char error[256]; /* set once Kafka failed: later queries are skipped */
} st_kafka_t;

static void st_kafka_open(st_kafka_t *k, const char *brokers, const ev_kv_list_t *props,
                          int timeout_ms) {
    memset(k, 0, sizeof(*k));
    k->timeout_ms = timeout_ms;
    if (!brokers || !*brokers) {
        snprintf(k->error, sizeof(k->error), "no brokers given (--brokers, KAFKA_BROKERS)");
        return;
    }
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr))) {
        snprintf(k->error, sizeof(k->error), "%s", errstr);
        rd_kafka_conf_destroy(conf);
        return;
    }
    for (int i = 0; props && i < props->n; i++)
        if (rd_kafka_conf_set(conf, props->key[i], props->val[i], errstr, sizeof(errstr))) {
            snprintf(k->error, sizeof(k->error), "%s", errstr);
            rd_kafka_conf_destroy(conf);
            return;
        }
    rd_kafka_conf_set_log_cb(conf, ev_kafka_log_cb);
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!k->rk) {
        snprintf(k->error, sizeof(k->error), "%s", errstr);
        return;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(k->rk, 0, NULL, &md, timeout_ms);
    if (err)
        snprintf(k->error, sizeof(k->error), "%s: %s", brokers, rd_kafka_err2str(err));
    else
        rd_kafka_metadata_destroy(md);
}

static void st_kafka_close(st_kafka_t *k) {
    if (k->rk) rd_kafka_destroy(k->rk);
    k->rk = NULL;
}

/* Low and high watermark of topic/partition; returns 0, or -1 (Kafka unreachable, or
 * the partition unknown: *lo = *hi = ST_NO_END). */
static int st_kafka_watermarks(st_kafka_t *k, const char *topic, int32_t partition, int64_t *lo,
                               int64_t *hi) {
    *lo = *hi = ST_NO_END;
    if (k->error[0]) return -1;
    int64_t l = 0, h = 0;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(k->rk, topic, partition, &l, &h, k->timeout_ms);
    if (err) {
        if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__TIMED_OUT)
            snprintf(k->error, sizeof(k->error), "%s", rd_kafka_err2str(err));
        return -1;
    }
    *lo = l;
    *hi = h;
    return 0;
}

/* Size of topic (messages held: high - low over its partitions); -1 when unknown. */
static long long st_kafka_topic_size(st_kafka_t *k, const char *topic, int *partitions) {
    *partitions = 0;
    if (k->error[0]) return -1;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(k->rk, topic, NULL);
    if (!rkt) return -1;
    const struct rd_kafka_metadata *md = NULL;
    long long total = -1;
    if (rd_kafka_metadata(k->rk, 0, rkt, &md, k->timeout_ms) == 0 && md->topic_cnt == 1 &&
        !md->topics[0].err) {
        total = 0;
        for (int i = 0; i < md->topics[0].partition_cnt; i++) {
            int64_t lo, hi;
            if (st_kafka_watermarks(k, topic, md->topics[0].partitions[i].id, &lo, &hi) != 0) {
                total = -1;
                break;
            }
            total += hi - lo;
            (*partitions)++;
        }
    }
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return total;
}

/* Runs sql (no parameters); returns the result, or NULL with errstr. */
static PGresult *st_query(PGconn *conn, const char *sql, char *errstr, size_t errstr_size) {
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(errstr, errstr_size, "%s", PQerrorMessage(conn));
        PQclear(res);
        return NULL;
    }
    return res;
}

static void st_gen_str(yajl_gen g, const char *s) {
    yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void st_gen_kv_ll(yajl_gen g, const char *key, long long v, bool null) {
    st_gen_str(g, key);
    if (null)
        yajl_gen_null(g);
    else
        yajl_gen_integer(g, v);
}

/* Status rows of a job table (exports or reports), every enum value listed. */
static int st_jobs(PGconn *conn, const char *table, const char *type, yajl_gen g, bool json,
                   char *errstr, size_t errstr_size) {
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT e.s::text, (SELECT count(*) FROM \"%s\" t WHERE t.status = e.s) "
             "FROM unnest(enum_range(NULL::\"%s\")) WITH ORDINALITY e(s, n) ORDER BY e.n",
             table, type);
    PGresult *res = st_query(conn, sql, errstr, errstr_size);
    if (!res) return -1;
    if (json) {
        st_gen_str(g, table);
        yajl_gen_map_open(g);
    } else {
        printf("%s:", table);
    }
    for (int i = 0; i < PQntuples(res); i++) {
        long long n = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        if (json)
            st_gen_kv_ll(g, PQgetvalue(res, i, 0), n, false);
        else
            printf(" %s %lld", PQgetvalue(res, i, 0), n);
    }
    if (json)
        yajl_gen_map_close(g);
    else
        printf("\n");
    PQclear(res);
    return 0;
}

static const char st_positions_sql[] =
    "SELECT \"consumerGroup\", topic, partition, \"nextOffset\", "
    "to_char(\"updatedAt\" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
    "FROM consumer_offsets ORDER BY 1, 2, 3";
static const char st_groups_sql[] =
    "SELECT \"consumerGroup\", "
    "to_char(max(\"updatedAt\") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
    "FROM consumer_offsets GROUP BY 1 ORDER BY 1";
static const char st_dirty_sql[] =
    "SELECT s.name, count(d.id), count(DISTINCT d.\"hourStart\"), "
    "coalesce(to_char(min(d.\"hourStart\") AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') "
    "FROM downstream_stages s LEFT JOIN dirty_hours d ON d.stage = s.name "
    "GROUP BY s.name ORDER BY s.name";

static int st_report(PGconn *conn, st_kafka_t *k, const char *dlq_topic, bool json,
                     char *errstr, size_t errstr_size) {
    int rc = -1;
    yajl_gen g = json ? yajl_gen_alloc(NULL) : NULL;
    PGresult *pos = st_query(conn, st_positions_sql, errstr, errstr_size);
    PGresult *groups = pos ? st_query(conn, st_groups_sql, errstr, errstr_size) : NULL;
    PGresult *dirty = groups ? st_query(conn, st_dirty_sql, errstr, errstr_size) : NULL;
    if (!dirty || (json && !g)) goto out;
    if (json) {
        yajl_gen_config(g, yajl_gen_beautify, 0);
        yajl_gen_map_open(g);
    }

    /* Positions, ends and lag per group and partition. */
    if (json) {
        st_gen_str(g, "positions");
        yajl_gen_array_open(g);
    } else {
        printf("%-20s %-28s %9s %12s %12s %10s  %s\n", "group", "topic", "partition", "stored",
               "end", "lag", "updated");
    }
    long long total_lag = 0;
    bool lag_known = true;
    for (int i = 0; i < PQntuples(pos); i++) {
        const char *group = PQgetvalue(pos, i, 0), *topic = PQgetvalue(pos, i, 1);
        int32_t partition = (int32_t)strtol(PQgetvalue(pos, i, 2), NULL, 10);
        long long stored = strtoll(PQgetvalue(pos, i, 3), NULL, 10);
        int64_t lo, hi;
        bool known = st_kafka_watermarks(k, topic, partition, &lo, &hi) == 0;
        long long lag = known ? (long long)hi - stored : 0;
        if (known)
            total_lag += lag;
        else
            lag_known = false;
        if (json) {
            yajl_gen_map_open(g);
            st_gen_str(g, "group");
            st_gen_str(g, group);
            st_gen_str(g, "topic");
            st_gen_str(g, topic);
            st_gen_kv_ll(g, "partition", partition, false);
            st_gen_kv_ll(g, "stored", stored, false);
            st_gen_kv_ll(g, "end", hi, !known);
            st_gen_kv_ll(g, "lag", lag, !known);
            st_gen_str(g, "updatedAt");
            st_gen_str(g, PQgetvalue(pos, i, 4));
            yajl_gen_map_close(g);
        } else {
            char end_s[24] = "?", lag_s[24] = "?";
            if (known) {
                snprintf(end_s, sizeof(end_s), "%lld", (long long)hi);
                snprintf(lag_s, sizeof(lag_s), "%lld", lag);
            }
            printf("%-20s %-28s %9d %12lld %12s %10s  %s\n", group, topic, (int)partition, stored,
                   end_s, lag_s, PQgetvalue(pos, i, 4));
        }
    }
    if (json) {
        yajl_gen_array_close(g);
        st_gen_kv_ll(g, "totalLag", total_lag, !lag_known || PQntuples(pos) == 0);
        st_gen_str(g, "lastBatch");
        yajl_gen_map_open(g);
        for (int i = 0; i < PQntuples(groups); i++) {
            st_gen_str(g, PQgetvalue(groups, i, 0));
            st_gen_str(g, PQgetvalue(groups, i, 1));
        }
        yajl_gen_map_close(g);
    } else {
        if (PQntuples(pos) == 0) printf("(no stored positions: ingest has not committed yet)\n");
        if (lag_known && PQntuples(pos) > 0) printf("total lag %lld\n", total_lag);
        for (int i = 0; i < PQntuples(groups); i++)
            printf("last batch of %s: %s\n", PQgetvalue(groups, i, 0), PQgetvalue(groups, i, 1));
    }

    /* Dead-letter topic. */
    int dlq_parts = 0;
    long long dlq = st_kafka_topic_size(k, dlq_topic, &dlq_parts);
    if (json) {
        st_gen_str(g, "dlq");
        yajl_gen_map_open(g);
        st_gen_str(g, "topic");
        st_gen_str(g, dlq_topic);
        st_gen_kv_ll(g, "messages", dlq, dlq < 0);
        yajl_gen_map_close(g);
    } else if (dlq >= 0) {
        printf("dead letters in %s: %lld\n", dlq_topic, dlq);
    } else {
        printf("dead letters in %s: unknown\n", dlq_topic);
    }

    /* Jobs and downstream work. */
    if (st_jobs(conn, "exports", "ExportStatus", g, json, errstr, errstr_size) != 0 ||
        st_jobs(conn, "reports", "ReportStatus", g, json, errstr, errstr_size) != 0)
        goto out;
    if (json) {
        st_gen_str(g, "dirtyHours");
        yajl_gen_map_open(g);
    }
    for (int i = 0; i < PQntuples(dirty); i++) {
        long long marks = strtoll(PQgetvalue(dirty, i, 1), NULL, 10);
        long long hours = strtoll(PQgetvalue(dirty, i, 2), NULL, 10);
        const char *oldest = PQgetvalue(dirty, i, 3);
        if (json) {
            st_gen_str(g, PQgetvalue(dirty, i, 0));
            yajl_gen_map_open(g);
            st_gen_kv_ll(g, "marks", marks, false);
            st_gen_kv_ll(g, "hours", hours, false);
            st_gen_str(g, "oldestHour");
            if (*oldest)
                st_gen_str(g, oldest);
            else
                yajl_gen_null(g);
            yajl_gen_map_close(g);
        } else {
            printf("dirty hours waiting for %s: %lld marks, %lld distinct hours%s%s\n",
                   PQgetvalue(dirty, i, 0), marks, hours, *oldest ? ", oldest " : "", oldest);
        }
    }
    if (json) {
        yajl_gen_map_close(g);
        st_gen_str(g, "kafka");
        yajl_gen_map_open(g);
        st_gen_str(g, "reachable");
        yajl_gen_bool(g, k->error[0] == '\0');
        st_gen_str(g, "error");
        if (k->error[0])
            st_gen_str(g, k->error);
        else
            yajl_gen_null(g);
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
        const unsigned char *buf;
        size_t len;
        yajl_gen_get_buf(g, &buf, &len);
        printf("%.*s\n", (int)len, (const char *)buf);
    } else if (k->error[0]) {
        printf("kafka unreachable: %s (ends, lag and the dead-letter count are unknown)\n",
               k->error);
    }
    rc = 0;
out:
    PQclear(pos);
    PQclear(groups);
    PQclear(dirty);
    if (g) yajl_gen_free(g);
    return rc;
}

int cmd_status(int argc, char **argv) {
    const char *brokers = NULL, *database = NULL, *dlq_topic = NULL;
    bool json = false;
    long long timeout_s = 5;
    ev_kv_list_t props = {0};
    const ev_opt_t opts[] = {
        {"brokers", 'b', EV_OPT_STR, NULL, "KAFKA_BROKERS", "LIST", "Kafka bootstrap servers",
         &brokers, 0, 0},
        {"database", 'd', EV_OPT_STR, NULL, "DATABASE_URL", "URL", "PostgreSQL conninfo or URL",
         &database, 0, 0},
        {"dlq-topic", 0, EV_OPT_STR, EV_TOPIC_DLQ, NULL, "NAME", "dead-letter topic", &dlq_topic,
         0, 0},
        {"json", 0, EV_OPT_BOOL, "false", NULL, NULL, "one JSON object instead of the table",
         &json, 0, 0},
        {"kafka-timeout", 0, EV_OPT_INT, "5", NULL, "SECONDS",
         "how long to wait for Kafka before reporting it unreachable", &timeout_s, 1, 300},
        {"prop", 'X', EV_OPT_KV, NULL, NULL, "KEY=VALUE", "librdkafka property (repeatable)",
         &props, 0, 0},
        EV_OPT_END};
    const ev_cli_t cli = {
        "evpipe status", "[OPTIONS]",
        "One screen for an operator: per consumer group and partition the position stored in\n"
        "PostgreSQL (consumer_offsets, committed with the rows), the end of the partition in\n"
        "Kafka and the lag; the last batch time per group; the number of messages in the\n"
        "dead-letter topic; exports and reports by status; the dirty hours waiting for each\n"
        "downstream stage. Without Kafka it shows what PostgreSQL knows and says so.",
        "Exit status: 0 shown (Kafka reachable or not); 1 PostgreSQL unreachable or not\n"
        "migrated; 2 usage error.",
        opts};
    char errstr[1024];
    int exit_code = 2;
    PGconn *conn = NULL;
    st_kafka_t k;
    memset(&k, 0, sizeof(k));
    int rc = ev_cli_parse(&cli, argc, argv, NULL, errstr, sizeof(errstr));
    if (rc == 1) {
        exit_code = 0;
        goto out;
    }
    if (rc < 0) goto usage;
    if (!database || !*database) {
        snprintf(errstr, sizeof(errstr), "no database: give --database or DATABASE_URL");
        goto usage;
    }
    exit_code = 1;
    conn = PQconnectdb(database);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "evpipe status: PostgreSQL: %s", PQerrorMessage(conn));
        goto out;
    }
    st_kafka_open(&k, brokers, &props, (int)timeout_s * 1000);
    if (st_report(conn, &k, dlq_topic, json, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "evpipe status: %s%s", errstr,
                strstr(errstr, "does not exist") ? "(run evpipe migrate up)\n" : "");
        goto out;
    }
    exit_code = 0;
    goto out;
usage:
    fprintf(stderr, "evpipe status: %s\n", errstr);
out:
    st_kafka_close(&k);
    PQfinish(conn);
    ev_kv_list_clear(&props);
    return exit_code;
}
