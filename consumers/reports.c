/* reports.c — `evpipe reports`: claims PENDING reports (consumers/jobs.h), computes
 * each one's result document in PostgreSQL (consumers/report_queries.h) and marks it
 * COMPLETED with the result, or FAILED with an error naming the problem. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/commands.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "consumers/jobs.h"
#include "consumers/report_queries.h"
#include "sinks/pg_settings.h"
#include "transforms/report_params.h"

static volatile sig_atomic_t reports_stop_requested;

static void on_signal(int sig) {
    (void)sig;
    reports_stop_requested = 1;
}

typedef struct reports_run_s {
    const char *database;
    jobs_t *jobs;
    PGconn *conn; /* data connection: the report queries */
    sink_pg_settings_t *settings_src;
    volatile int data_connected;
    ev_metrics_t *metrics;
    ev_metric_t *m_completed, *m_failed, *m_released, *m_retries, *m_lost;
    ev_histogram_t *m_seconds;
} reports_run_t;

/* What the query's tick sees of the job it runs for. */
typedef struct tick_ctx_s {
    reports_run_t *run;
    const jobs_job_t *job;
    bool lost; /* the lease was lost: someone else holds the job now */
} tick_ctx_t;

static void sleep_ms(int64_t ms) { jobs_sleep_ms(ms, &reports_stop_requested); }

static int ready_cb(void *ud, char *reason, size_t reason_size) {
    reports_run_t *run = ud;
    if (run->jobs && jobs_connected(run->jobs) && run->data_connected) return 1;
    snprintf(reason, reason_size, "not connected to PostgreSQL");
    return 0;
}

/* Connects the data connection (once; again after it broke). Returns 0 or -1. */
static int data_connect(reports_run_t *run, char *errstr, size_t errstr_size) {
    run->data_connected = jobs_data_connect(&run->conn, run->database, "evpipe-reports", errstr,
                                            errstr_size) == 0;
    return run->data_connected ? 0 : -1;
}

static int query_tick(void *ud) {
    tick_ctx_t *ctx = ud;
    if (reports_stop_requested) return 1;
    char errstr[256];
    int rc = jobs_renew(ctx->run->jobs, ctx->job, errstr, sizeof(errstr));
    if (rc == 1) {
        ctx->lost = true;
        return 1;
    }
    if (rc < 0) EV_WARN("report %s: renewing the lease: %s", ctx->job->id, errstr);
    return 0;
}

/* Processes one claimed job. Returns 0 when it reached a final state or was given
 * back on SIGTERM, -1 on a transient problem (given back; caller backs off). */
static int process_job(reports_run_t *run, const jobs_job_t *job) {
    int64_t t0 = ev_mono_ns();
    char errstr[1024], finish_err[512];
    tf_report_params_t params;
    char *json = NULL;
    int status = -1;
    report_query_rc_t rc = REPORT_QUERY_FAILED;
    EV_INFO("report %s (%s, attempt %d): computing", job->id, job->type ? job->type : "?",
            job->attempts);
    if (tf_report_params_parse(job->type, job->parameters, &params, errstr, sizeof(errstr)) !=
        0) {
        rc = REPORT_QUERY_FAILED;
    } else {
        tf_settings_t settings;
        tf_settings_default(&settings);
        char warning[256] = "";
        if (sink_pg_settings_load(run->settings_src, 0, &settings, warning, sizeof(warning),
                                  errstr, sizeof(errstr)) != 0) {
            rc = REPORT_QUERY_RETRY;
        } else if (data_connect(run, errstr, sizeof(errstr)) != 0) {
            rc = REPORT_QUERY_RETRY;
        } else {
            if (*warning) EV_WARN("tracking_configs: %s", warning);
            tick_ctx_t ctx = {run, job, false};
            rc = report_query_run(run->conn, &params, settings.bots_exclude_from_metrics,
                                  query_tick, &ctx, &json, errstr, sizeof(errstr));
            if (rc == REPORT_QUERY_CANCELLED && ctx.lost) {
                EV_WARN("report %s: lease lost to another worker; left to it", job->id);
                ev_metric_add(run->m_lost, 1);
                tf_report_params_clear(&params);
                return 0;
            }
            if (PQstatus(run->conn) != CONNECTION_OK) run->data_connected = 0;
        }
        tf_report_params_clear(&params);
    }
    int done;
    if (rc == REPORT_QUERY_OK) {
        const char *extra[] = {json};
        done = jobs_finish(run->jobs, job, "COMPLETED", NULL,
                           ", \"result\" = $5::jsonb, \"completedAt\" = now()", 1, extra,
                           finish_err, sizeof(finish_err));
        if (done == 0) {
            ev_metric_add(run->m_completed, 1);
            ev_histogram_observe(run->m_seconds, (double)(ev_mono_ns() - t0) / 1e9);
            EV_INFO("report %s: COMPLETED in %.3f s (%zu bytes)", job->id,
                    (double)(ev_mono_ns() - t0) / 1e9, strlen(json));
        }
        status = 0;
    } else if (rc == REPORT_QUERY_FAILED) {
        done = jobs_finish(run->jobs, job, "FAILED", errstr, ", \"result\" = NULL", 0, NULL,
                           finish_err, sizeof(finish_err));
        if (done == 0) {
            ev_metric_add(run->m_failed, 1);
            EV_WARN("report %s: FAILED: %s", job->id, errstr);
        }
        status = 0;
    } else {
        /* Stopping, or PostgreSQL went away: give the job back for a later try. */
        if (rc == REPORT_QUERY_RETRY) EV_WARN("report %s: %s (released)", job->id, errstr);
        done = jobs_release(run->jobs, job, finish_err, sizeof(finish_err));
        if (done == 0) {
            ev_metric_add(run->m_released, 1);
            EV_INFO("report %s: released", job->id);
        }
        status = rc == REPORT_QUERY_CANCELLED ? 0 : -1;
    }
    if (done == 1) {
        ev_metric_add(run->m_lost, 1);
        EV_WARN("report %s: %s (nothing written)", job->id, finish_err);
    } else if (done < 0) {
        /* The lease runs out and the job is claimed again. */
        EV_WARN("report %s: %s (its lease will expire and it will be retried)", job->id,
                finish_err);
        status = -1;
    }
    free(json);
    return status;
}

int cmd_reports(int argc, char **argv) {
    reports_run_t run_s = {0}, *run = &run_s;
    const char *brokers = NULL, *group = NULL, *worker_id = NULL;
    const char *log_level = "info", *log_format = "text";
    long long metrics_port = 9105, max_attempts = 3, lease_seconds = 120, poll_ms = 5000,
              stats_every = 60;
    bool until_caught_up = false;
    ev_kv_list_t props = {0};
    const ev_opt_t opts[] = {
        {"database", 'd', EV_OPT_STR, NULL, "DATABASE_URL", "URL", "PostgreSQL conninfo or URL",
         &run->database, 0, 0},
        {"brokers", 'b', EV_OPT_STR, NULL, "KAFKA_BROKERS", "LIST",
         "Kafka bootstrap servers (accepted for one environment across stages; reports read "
         "PostgreSQL only)",
         &brokers, 0, 0},
        {"group", 'g', EV_OPT_STR, "evpipe-reports", NULL, "ID",
         "instance group name (workers share the jobs through row locks)", &group, 0, 0},
        {"prop", 'X', EV_OPT_KV, NULL, NULL, "KEY=VALUE",
         "librdkafka property (accepted, as for every stage)", &props, 0, 0},
        {"worker-id", 0, EV_OPT_STR, NULL, NULL, "ID",
         "this worker's name in the rows and audit log (default host:pid)", &worker_id, 0, 0},
        {"max-attempts", 0, EV_OPT_INT, "3", NULL, "N",
         "claims of a report whose worker died before it is FAILED", &max_attempts, 1, 1000},
        {"lease-seconds", 0, EV_OPT_INT, "120", NULL, "SECONDS",
         "a claimed report is taken again when its worker has not renewed it for this long",
         &lease_seconds, 2, 86400},
        {"until-caught-up", 0, EV_OPT_BOOL, "false", NULL, NULL,
         "process every report claimable at start (and its retries), then exit 0",
         &until_caught_up, 0, 0},
        {"poll-ms", 0, EV_OPT_INT, "5000", NULL, "MS",
         "look for reports this often when no notification arrives", &poll_ms, 10, 600000},
        {"metrics-port", 0, EV_OPT_INT, "9105", "EVPIPE_METRICS_PORT", "PORT",
         "serve /metrics, /healthz, /readyz here (0 = any free port, -1 = off)", &metrics_port,
         -1, 65535},
        {"stats-interval", 0, EV_OPT_INT, "60", NULL, "SECONDS", "period of the stats log line",
         &stats_every, 1, 86400},
        {"log-level", 0, EV_OPT_STR, "info", "EVPIPE_LOG_LEVEL", "LEVEL",
         "debug, info, warn or error", &log_level, 0, 0},
        {"log-format", 0, EV_OPT_STR, "text", "EVPIPE_LOG_FORMAT", "FORMAT", "text or json",
         &log_format, 0, 0},
        EV_OPT_END};
    const ev_cli_t cli = {
        "evpipe reports", "[OPTIONS]",
        "Computes PENDING reports: claims each (FOR UPDATE SKIP LOCKED, under a lease), builds "
        "its JSON result from the stored tables and snapshots, and marks it COMPLETED with "
        "the result or FAILED with the error. Woken by NOTIFY on evpipe_reports, with a poll "
        "fallback. Report types and their results: docs/reports.md.",
        "Examples:\n  evpipe reports --database postgres://localhost/evpipe\n"
        "  evpipe reports --until-caught-up",
        opts};
    char errstr[1024], worker_buf[300];
    int rc = ev_cli_parse(&cli, argc, argv, NULL, errstr, sizeof(errstr));
    int exit_code = 2;
    if (rc == 1) {
        exit_code = 0;
        goto out;
    }
    if (rc < 0) goto usage;
    int level = ev_log_level_parse(log_level);
    if (level < 0 || (strcmp(log_format, "text") && strcmp(log_format, "json"))) {
        snprintf(errstr, sizeof(errstr),
                 "--log-level must be debug|info|warn|error and --log-format text|json");
        goto usage;
    }
    if (!run->database) {
        snprintf(errstr, sizeof(errstr), "no database: give --database or DATABASE_URL");
        goto usage;
    }
    if (!worker_id) {
        char host[256];
        if (gethostname(host, sizeof(host)) != 0) snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        snprintf(worker_buf, sizeof(worker_buf), "%s:%ld", host, (long)getpid());
        worker_id = worker_buf;
    }
    ev_log_init("reports", level, strcmp(log_format, "json") == 0);

    exit_code = 1;
    run->settings_src = sink_pg_settings_new(run->database);
    run->metrics = ev_metrics_new("evpipe_reports");
    if (!run->settings_src || !run->metrics) {
        EV_ERROR("out of memory");
        goto out;
    }
    run->m_completed = ev_metrics_counter(run->metrics, "jobs_total", "Reports finished",
                                          "status=\"COMPLETED\"");
    run->m_failed = ev_metrics_counter(run->metrics, "jobs_total", "Reports finished",
                                       "status=\"FAILED\"");
    run->m_released = ev_metrics_counter(run->metrics, "released_total",
                                         "Reports given back (SIGTERM or PostgreSQL lost)", NULL);
    run->m_lost = ev_metrics_counter(run->metrics, "leases_lost_total",
                                     "Reports whose lease was lost to another worker", NULL);
    run->m_retries = ev_metrics_counter(run->metrics, "retries_total",
                                        "Retries after transient failures",
                                        "component=\"postgresql\"");
    static const double bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
    run->m_seconds = ev_metrics_histogram(run->metrics, "report_seconds",
                                          "Time to compute and store one report", bounds,
                                          sizeof(bounds) / sizeof(bounds[0]));
    if (metrics_port >= 0 && ev_metrics_serve(run->metrics, (int)metrics_port, ready_cb, run,
                                              errstr, sizeof(errstr)) != 0) {
        EV_ERROR("metrics endpoint on port %lld: %s", metrics_port, errstr);
        exit_code = 2;
        goto out;
    }
    if (metrics_port >= 0) EV_INFO("metrics on :%d/metrics", ev_metrics_port(run->metrics));

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* Start: connect both connections, LISTEN, and fix the snapshot. */
    bool down = false;
    long long snapshot_n = 0;
    for (int64_t backoff = JOBS_BACKOFF_MIN_MS; !reports_stop_requested;) {
        if (!run->jobs)
            run->jobs = jobs_new(run->database, JOBS_REPORTS, "reports", worker_id,
                                 (int)lease_seconds, (int)max_attempts, errstr, sizeof(errstr));
        if (run->jobs && data_connect(run, errstr, sizeof(errstr)) == 0 &&
            jobs_listen(run->jobs, errstr, sizeof(errstr)) == 0 &&
            (!until_caught_up || jobs_snapshot(run->jobs, &snapshot_n, errstr,
                                               sizeof(errstr)) == 0))
            break;
        if (strstr(errstr, "does not exist")) {
            EV_ERROR("%s (is the schema migrated? run `evpipe migrate up`)", errstr);
            exit_code = 2;
            goto out;
        }
        if (strstr(errstr, "permission denied")) {
            EV_ERROR("%s (%s)", errstr, JOBS_GRANT_HINT);
            exit_code = 2;
            goto out;
        }
        if (!down) EV_WARN("waiting for PostgreSQL: %s", errstr);
        down = true;
        ev_metric_add(run->m_retries, 1);
        sleep_ms(backoff);
        backoff = jobs_next_backoff(backoff);
    }
    if (reports_stop_requested) {
        exit_code = 0;
        goto out;
    }
    if (until_caught_up)
        EV_INFO("worker %s: %lld reports claimable, processing them", worker_id, snapshot_n);
    else
        EV_INFO("worker %s: waiting for reports", worker_id);

    exit_code = 0;
    int64_t backoff = JOBS_BACKOFF_MIN_MS, next_stats = ev_now_ms() + stats_every * 1000;
    down = false;
    while (!reports_stop_requested) {
        jobs_job_t *job = NULL;
        bool ok = jobs_fail_exhausted(run->jobs, NULL, errstr, sizeof(errstr)) == 0 &&
                  jobs_claim(run->jobs, &job, errstr, sizeof(errstr)) == 0;
        if (ok && job) {
            ok = process_job(run, job) == 0;
            if (!ok) snprintf(errstr, sizeof(errstr), "report %s given back", job->id);
            jobs_job_free(job);
            if (ok) {
                backoff = JOBS_BACKOFF_MIN_MS;
                continue;
            }
        }
        if (!ok && strstr(errstr, "permission denied")) {
            EV_ERROR("%s (%s); stopping", errstr, JOBS_GRANT_HINT);
            exit_code = 1;
            goto out;
        }
        if (!ok) {
            if (!down) EV_WARN("%s (retrying with backoff)", errstr);
            down = true;
            ev_metric_add(run->m_retries, 1);
            sleep_ms(backoff);
            backoff = jobs_next_backoff(backoff);
            continue;
        }
        if (down) EV_INFO("working again");
        down = false;
        backoff = JOBS_BACKOFF_MIN_MS;
        if (until_caught_up) {
            EV_INFO("caught up: %.0f completed, %.0f failed",
                    ev_metric_value(run->m_completed), ev_metric_value(run->m_failed));
            break;
        }
        int64_t now = ev_now_ms();
        if (now >= next_stats) {
            EV_INFO("stats: %.0f completed, %.0f failed, %.0f released",
                    ev_metric_value(run->m_completed), ev_metric_value(run->m_failed),
                    ev_metric_value(run->m_released));
            next_stats = now + stats_every * 1000;
        }
        if (jobs_wait(run->jobs, (int)poll_ms) < 0) sleep_ms(backoff);
    }
    if (reports_stop_requested) EV_INFO("stopped");
    goto out;
usage:
    fprintf(stderr, "evpipe reports: %s\n", errstr);
    exit_code = 2;
out:
    ev_metrics_destroy(run->metrics);
    sink_pg_settings_destroy(run->settings_src);
    jobs_destroy(run->jobs);
    PQfinish(run->conn);
    ev_kv_list_clear(&props);
    return exit_code;
}
