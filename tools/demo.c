/* demo.c — `evpipe demo`: the pipeline end to end on embedded defaults: an
 * in-process mock Kafka cluster, migrations, generated traffic, ingest until caught
 * up, and a summary of what PostgreSQL now holds. */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/commands.h"
#include "common/kmock.h"
#include "common/log.h"
#include "tools/demo_html.h"
#include "tools/demo_jobs.h"
#include "tools/migrate.h"

/* Runs this binary with args (NULL-terminated); returns its exit status. */
static int run_self(const char *const args[]) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execv("/proc/self/exe", (char *const *)args);
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Messages in a topic: sum of high watermarks (the demo's topics start empty). */
static long long topic_messages(const char *brokers, const char *topic) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) return -1;
    long long total = 0;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == 0 && md->topic_cnt == 1) {
        for (int i = 0; i < md->topics[0].partition_cnt; i++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(rk, topic, md->topics[0].partitions[i].id, &lo,
                                                 &hi, 5000) == 0)
                total += hi;
        }
    } else {
        total = -1;
    }
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return total;
}

static void print_query(PGconn *conn, const char *title, const char *sql) {
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        printf("  %s: query failed: %s", title, PQerrorMessage(conn));
        PQclear(res);
        return;
    }
    printf("\n%s\n", title);
    int cols = PQnfields(res);
    for (int r = 0; r < PQntuples(res); r++) {
        printf("  ");
        for (int c = 0; c < cols; c++)
            printf(c == 0 ? "%-28s" : " %12s", PQgetisnull(res, r, c) ? "-" : PQgetvalue(res, r, c));
        printf("\n");
    }
    PQclear(res);
}

int cmd_demo(int argc, char **argv) {
    const char *database = NULL, *html_path = "demo-overview.html", *exports_dir = "demo-exports";
    long long visitors = 300, days = 3, seed = 42, disorder = 120;
    double bad_ratio = 0.01, dup_ratio = 0.01;
    const ev_opt_t opts[] = {
        {"database", 'd', EV_OPT_STR, NULL, "DATABASE_URL", "URL",
         "PostgreSQL to write to (make demo starts a private one)", &database, 0, 0},
        {"visitors", 0, EV_OPT_INT, "300", NULL, "N", "visitors to simulate", &visitors, 1,
         1000000},
        {"days", 0, EV_OPT_INT, "3", NULL, "N", "days of traffic", &days, 1, 365},
        {"seed", 0, EV_OPT_INT, "42", NULL, "N", "generator seed", &seed, 0, 0},
        {"disorder", 0, EV_OPT_INT, "120", NULL, "SECONDS", "events shuffled within this window",
         &disorder, 0, 86400},
        {"bad-ratio", 0, EV_OPT_DOUBLE, "0.01", NULL, "R", "share of malformed messages",
         &bad_ratio, 0, 0},
        {"dup-ratio", 0, EV_OPT_DOUBLE, "0.01", NULL, "R", "share of duplicated messages",
         &dup_ratio, 0, 0},
        {"html", 0, EV_OPT_STR, "demo-overview.html", "EVPIPE_DEMO_HTML", "PATH",
         "where to write the self-contained HTML overview", &html_path, 0, 0},
        {"exports-dir", 0, EV_OPT_STR, "demo-exports", "EVPIPE_DEMO_EXPORTS", "DIR",
         "where the demo's exports are uploaded (file://DIR/exports/<id>.<ext>)", &exports_dir,
         0, 0},
        EV_OPT_END};
    const ev_cli_t cli = {
        "evpipe demo", "[OPTIONS]",
        "Runs the whole pipeline on embedded defaults: hosts librdkafka's mock Kafka\n"
        "cluster in this process, applies the migrations, generates realistic traffic\n"
        "(evpipe loadgen) with some disorder, duplicates and malformed messages, ingests\n"
        "it until caught up (evpipe ingest), runs metrics, funnels, one report of every type\n"
        "and one export of every format (evpipe reports, evpipe exports to file://), and\n"
        "prints a summary of what was stored.\n"
        "`make demo` starts a private PostgreSQL for it.",
        NULL, opts};
    char errstr[512];
    int first = 0, rc = ev_cli_parse(&cli, argc, argv, &first, errstr, sizeof(errstr));
    if (rc == 1) return 0;
    if (rc < 0 || !database) {
        fprintf(stderr, "evpipe demo: %s\n",
                rc < 0 ? errstr : "no database: give --database or DATABASE_URL (or run make demo)");
        return 2;
    }
    ev_log_init("demo", EV_LOG_INFO, 0);

    PGconn *conn = PQconnectdb(database);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "evpipe demo: cannot connect: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return 2;
    }
    PQsetNoticeProcessor(conn, NULL, NULL);
    if (ev_migrate_up(conn, 0, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "evpipe demo: migrations: %s\n", errstr);
        PQfinish(conn);
        return 1;
    }
    EV_INFO("[1/8] schema migrated");

    ev_kmock_t *km = ev_kmock_new(3, errstr, sizeof(errstr));
    if (!km || ev_kmock_topic_create(km, EV_TOPIC_RAW, 6, errstr, sizeof(errstr)) ||
        ev_kmock_topic_create(km, EV_TOPIC_DLQ, 3, errstr, sizeof(errstr)) ||
        ev_kmock_topic_create(km, EV_TOPIC_ENRICHED, 6, errstr, sizeof(errstr))) {
        fprintf(stderr, "evpipe demo: mock Kafka: %s\n", errstr);
        ev_kmock_destroy(km);
        PQfinish(conn);
        return 1;
    }
    char *brokers = strdup(ev_kmock_bootstraps(km));
    EV_INFO("[2/8] mock Kafka cluster (3 brokers) at %s", brokers);

    char s_visitors[32], s_days[32], s_seed[32], s_disorder[32], s_bad[32], s_dup[32];
    snprintf(s_visitors, sizeof(s_visitors), "%lld", visitors);
    snprintf(s_days, sizeof(s_days), "%lld", days);
    snprintf(s_seed, sizeof(s_seed), "%lld", seed);
    snprintf(s_disorder, sizeof(s_disorder), "%lld", disorder);
    snprintf(s_bad, sizeof(s_bad), "%g", bad_ratio);
    snprintf(s_dup, sizeof(s_dup), "%g", dup_ratio);
    const char *loadgen[] = {"evpipe",      "loadgen",     "--brokers",  brokers,  "--visitors",
                       s_visitors,    "--days",      s_days,       "--seed", s_seed,
                       "--disorder",  s_disorder,    "--bad-ratio", s_bad,   "--dup-ratio",
                       s_dup,         NULL};
    EV_INFO("[3/8] generating traffic: evpipe loadgen --visitors %s --days %s --seed %s", s_visitors,
            s_days, s_seed);
    int status = run_self(loadgen);
    if (status != 0) {
        fprintf(stderr, "evpipe demo: loadgen failed (exit %d)\n", status);
        rc = 1;
        goto done;
    }
    long long produced = topic_messages(brokers, EV_TOPIC_RAW);
    const char *ingest[] = {"evpipe",           "ingest",         "--brokers", brokers,
                      "--database",       database, "--until-caught-up",
                      "--metrics-port",   "-1",             "--stats-interval", "5", NULL};
    EV_INFO("[4/8] ingesting %lld messages: evpipe ingest --until-caught-up", produced);
    status = run_self(ingest);
    if (status != 0) {
        fprintf(stderr, "evpipe demo: ingest failed (exit %d)\n", status);
        rc = 1;
        goto done;
    }
    const char *metrics[] = {"evpipe",       "metrics",         "--database", database,
                             "--until-caught-up", "--debounce-ms", "0",
                             "--metrics-port", "-1",             NULL};
    EV_INFO("[5/8] computing metric snapshots: evpipe metrics --until-caught-up");
    status = run_self(metrics);
    if (status != 0) {
        fprintf(stderr, "evpipe demo: metrics failed (exit %d)\n", status);
        rc = 1;
        goto done;
    }
    /* Two funnels of the shop, defined once per database. */
    PGresult *fres = PQexec(
        conn, "INSERT INTO funnels (name, description, steps, \"conversionWindowSeconds\", "
              "\"createdBy\") SELECT v.name, v.description, v.steps::jsonb, 86400, 'evpipe demo' "
              "FROM (VALUES ('Browse to purchase', 'product view, add to cart, purchase', "
              "'[{\"type\":\"PRODUCT_VIEW\"},{\"type\":\"ADD_TO_CART\"},{\"type\":\"PURCHASE\"}]'), "
              "('Appointment booking', 'appointment started, completed', "
              "'[{\"type\":\"APPOINTMENT_START\"},{\"type\":\"APPOINTMENT_COMPLETE\"}]')) "
              "v(name, description, steps) WHERE NOT EXISTS (SELECT 1 FROM funnels f WHERE "
              "f.name = v.name)");
    if (PQresultStatus(fres) != PGRES_COMMAND_OK) {
        fprintf(stderr, "evpipe demo: funnels: %s", PQresultErrorMessage(fres));
        PQclear(fres);
        rc = 1;
        goto done;
    }
    PQclear(fres);
    const char *funnels[] = {"evpipe",       "funnels",         "--database", database,
                             "--until-caught-up", "--debounce-ms", "0",
                             "--metrics-port", "-1",             NULL};
    EV_INFO("[6/8] computing funnel results: evpipe funnels --until-caught-up");
    status = run_self(funnels);
    if (status != 0) {
        fprintf(stderr, "evpipe demo: funnels failed (exit %d)\n", status);
        rc = 1;
        goto done;
    }
    /* One report of every type and one export of every format, over the traffic. */
    if (demo_queue_jobs(conn, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "evpipe demo: %s", errstr);
        rc = 1;
        goto done;
    }
    const char *reports[] = {"evpipe", "reports", "--database", database, "--until-caught-up",
                             "--metrics-port", "-1", NULL};
    EV_INFO("[7/8] computing reports: evpipe reports --until-caught-up");
    status = run_self(reports);
    if (status != 0) {
        fprintf(stderr, "evpipe demo: reports failed (exit %d)\n", status);
        rc = 1;
        goto done;
    }
    char exports_abs[4096], upload_url[4200];
    if (mkdir(exports_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "evpipe demo: %s: %s\n", exports_dir, strerror(errno));
        rc = 1;
        goto done;
    }
    if (!realpath(exports_dir, exports_abs)) {
        fprintf(stderr, "evpipe demo: %s: %s\n", exports_dir, strerror(errno));
        rc = 1;
        goto done;
    }
    snprintf(upload_url, sizeof(upload_url), "file://%s/", exports_abs);
    const char *exports[] = {"evpipe", "exports", "--database", database, "--until-caught-up",
                             "--metrics-port", "-1", "--upload-url", upload_url, NULL};
    EV_INFO("[8/8] running exports: evpipe exports --until-caught-up --upload-url %s", upload_url);
    status = run_self(exports);
    if (status != 0) {
        fprintf(stderr, "evpipe demo: exports failed (exit %d)\n", status);
        rc = 1;
        goto done;
    }
    long long dead = topic_messages(brokers, EV_TOPIC_DLQ);
    long long enriched = topic_messages(brokers, EV_TOPIC_ENRICHED);

    printf("\n=== evpipe demo: what the pipeline stored ===\n");
    printf("\nKafka\n  %-28s %12lld\n  %-28s %12lld\n  %-28s %12lld\n",
           EV_TOPIC_RAW " messages", produced, EV_TOPIC_DLQ " (rejected)", dead,
           EV_TOPIC_ENRICHED, enriched);
    print_query(conn, "PostgreSQL rows",
                "SELECT 'analytics_sessions', count(*) FROM analytics_sessions UNION ALL "
                "SELECT 'analytics_events', count(*) FROM analytics_events UNION ALL "
                "SELECT 'page_views', count(*) FROM page_views UNION ALL "
                "SELECT 'conversion_events', count(*) FROM conversion_events");
    print_query(conn, "Sessions by device (sessions, bounce rate, avg seconds)",
                "SELECT \"deviceType\"::text, count(*), round(avg(\"isBounce\"::int), 3), "
                "round(avg(duration)) FROM analytics_sessions GROUP BY 1 ORDER BY 2 DESC");
    print_query(conn, "Conversions (count, revenue by currency)",
                "SELECT type::text || coalesce(' ' || currency, ''), count(*), "
                "coalesce(sum(value)::text, '') FROM conversion_events GROUP BY 1 ORDER BY 1");
    print_query(conn, "Traffic sources (sessions)",
                "SELECT coalesce(\"utmSource\" || ' / ' || \"utmMedium\", '(direct)'), count(*) "
                "FROM analytics_sessions GROUP BY 1 ORDER BY 2 DESC LIMIT 8");
    print_query(conn, "Top entry pages (sessions)",
                "SELECT coalesce(\"entryPage\", '-'), count(*) FROM analytics_sessions "
                "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5");
    print_query(conn, "Metric snapshots per day (sessions, visitors, revenue EUR)",
                "SELECT 'day ' || to_char(s.\"periodStart\" AT TIME ZONE 'UTC', 'YYYY-MM-DD'), "
                "s.value::bigint, coalesce(v.value::bigint, 0), coalesce(r.value::text, '0') "
                "FROM metric_snapshots s LEFT JOIN metric_snapshots v ON v.\"metricKey\" = "
                "'visitors' AND v.period = s.period AND v.\"periodStart\" = s.\"periodStart\" "
                "LEFT JOIN metric_snapshots r ON r.\"metricKey\" = 'revenue{currency=EUR}' AND "
                "r.period = s.period AND r.\"periodStart\" = s.\"periodStart\" "
                "WHERE s.\"metricKey\" = 'sessions' AND s.period = 'DAILY' ORDER BY 1");
    print_query(conn, "Funnels, whole range (visitors reaching each step, drop-off)",
                "SELECT 'funnel ' || f.name || ': ' || (st->>'step') || '. ' || (st->>'type'), "
                "sum((st->>'count')::bigint), sum((st->>'dropOff')::bigint) "
                "FROM funnels f JOIN funnel_results r ON r.\"funnelId\" = f.id AND r.period = "
                "'MONTHLY', jsonb_array_elements(r.\"stepResults\") st "
                "GROUP BY f.name, (st->>'step')::int, st->>'step', st->>'type' "
                "ORDER BY f.name, (st->>'step')::int");
    print_query(conn, "Why sessions started",
                "SELECT \"startReason\"::text, count(*) FROM analytics_sessions GROUP BY 1 "
                "ORDER BY 2 DESC");
    demo_print_jobs(conn);
    if (demo_write_html(conn, html_path, errstr, sizeof(errstr)) != 0) {
        fprintf(stderr, "evpipe demo: overview: %s\n", errstr);
        rc = 1;
        goto done;
    }
    char resolved[4096];
    printf("\nOverview (open in a browser; works offline): %s\n\n",
           realpath(html_path, resolved) ? resolved : html_path);
done:
    free(brokers);
    ev_kmock_destroy(km);
    PQfinish(conn);
    return rc;
}
