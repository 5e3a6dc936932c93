/* exports.c — `evpipe exports`: claims PENDING exports (consumers/jobs.h), writes the
 * selected rows into a private temp file in the requested format (consumers/
 * export_query.h, sinks/export_file.h), uploads it (sinks/upload.h) and marks the row
 * COMPLETED with fileUrl, fileSize, rowCount, checksum and expiresAt, or FAILED with
 * the error. A sweeper marks expired exports EXPIRED and deletes their files. */
#include <errno.h>
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
#include "consumers/export_query.h"
#include "consumers/jobs.h"
#include "sinks/upload.h"
#include "sinks/xlsx_deflate.h"
#include "transforms/export_params.h"

static volatile sig_atomic_t exports_stop_requested;

static void on_signal(int sig) {
    (void)sig;
    exports_stop_requested = 1;
}

typedef struct exports_run_s {
    const char *database;
    const char *upload_url;
    const char *tmpdir;
    long long retention_seconds;
    long long sheet_rows;
    upload_opts_t upload;
    jobs_t *jobs;
    PGconn *conn; /* data connection: the export queries */
    volatile int data_connected;
    ev_metrics_t *metrics;
    ev_metric_t *m_completed, *m_failed, *m_released, *m_retries, *m_lost, *m_rows, *m_bytes,
        *m_expired, *m_upload_attempts;
    ev_histogram_t *m_seconds;
} exports_run_t;

typedef struct tick_ctx_s {
    exports_run_t *run;
    const jobs_job_t *job;
    bool lost;
} tick_ctx_t;

static void sleep_ms(int64_t ms) { jobs_sleep_ms(ms, &exports_stop_requested); }

static int ready_cb(void *ud, char *reason, size_t reason_size) {
    exports_run_t *run = ud;
    if (run->jobs && jobs_connected(run->jobs) && run->data_connected) return 1;
    snprintf(reason, reason_size, "not connected to PostgreSQL");
    return 0;
}

static int data_connect(exports_run_t *run, char *errstr, size_t errstr_size) {
    run->data_connected = jobs_data_connect(&run->conn, run->database, "evpipe-exports", errstr,
                                            errstr_size) == 0;
    return run->data_connected ? 0 : -1;
}

/* Renews the lease; nonzero stops the work (SIGTERM, or the job is someone else's). */
static int keep_going(void *ud) {
    tick_ctx_t *ctx = ud;
    if (exports_stop_requested) return 1;
    char errstr[256];
    int rc = jobs_renew(ctx->run->jobs, ctx->job, errstr, sizeof(errstr));
    if (rc == 1) {
        ctx->lost = true;
        return 1;
    }
    if (rc < 0) EV_WARN("export %s: renewing the lease: %s", ctx->job->id, errstr);
    return 0;
}


static const char *format_ext(export_format_t f) {
    return f == EXPORT_JSON ? "json" : f == EXPORT_XLSX ? "xlsx" : "csv";
}

static const char *content_type(export_format_t f, bool gzip) {
    if (gzip) return "application/gzip";
    if (f == EXPORT_JSON) return "application/json";
    if (f == EXPORT_XLSX) return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
    return "text/csv; charset=utf-8";
}

typedef enum { OUTCOME_COMPLETED, OUTCOME_FAILED, OUTCOME_RELEASE, OUTCOME_LOST } outcome_t;

/* Builds the file and uploads it. Fills *url (malloc'd), *q. errstr on failure. */
static outcome_t build_and_upload(exports_run_t *run, const jobs_job_t *job, tick_ctx_t *ctx,
                                  char **url, export_query_out_t *q, bool *transient,
                                  char *errstr, size_t n) {
    tf_export_params_t params;
    *transient = false;
    export_format_t format;
    if (!job->format || !strcmp(job->format, "CSV")) format = EXPORT_CSV;
    else if (!strcmp(job->format, "JSON")) format = EXPORT_JSON;
    else if (!strcmp(job->format, "XLSX")) format = EXPORT_XLSX;
    else {
        snprintf(errstr, n, "format: unknown export format '%s'", job->format);
        return OUTCOME_FAILED;
    }
    if (tf_export_params_parse(job->parameters, &params, errstr, n) != 0) return OUTCOME_FAILED;
    outcome_t out = OUTCOME_FAILED;
    char path[4200] = "";
    if (params.gzip && format == EXPORT_XLSX) {
        snprintf(errstr, n, "parameters.compression: gzip is for CSV and JSON (an XLSX file is "
                            "already compressed)");
        goto done;
    }
    if (job->destination_url && *job->destination_url) {
        *url = strdup(job->destination_url);
    } else if (run->upload_url && *run->upload_url) {
        char rel[96];
        snprintf(rel, sizeof(rel), "exports/%s.%s%s", job->id, format_ext(format),
                 params.gzip ? ".gz" : "");
        *url = upload_join_url(run->upload_url, rel, errstr, n);
        if (!*url) goto done;
    } else {
        snprintf(errstr, n, "no destinationUrl and no --upload-url (EVPIPE_UPLOAD_URL): nowhere "
                            "to upload to");
        goto done;
    }
    if (!*url) {
        snprintf(errstr, n, "out of memory");
        out = OUTCOME_RELEASE;
        goto done;
    }
    if (data_connect(run, errstr, n) != 0) {
        out = OUTCOME_RELEASE;
        goto done;
    }
    snprintf(path, sizeof(path), "%s/evpipe-export-%s-XXXXXX", run->tmpdir, job->id);
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(errstr, n, "temp file in %s: %s", run->tmpdir, strerror(errno));
        path[0] = '\0';
        out = OUTCOME_RELEASE;
        goto done;
    }
    close(fd);
    export_query_req_t req = {&params, job->report_id, format, path, run->tmpdir,
                              (long)run->sheet_rows, keep_going, ctx};
    export_query_rc_t rc = export_query_write(run->conn, &req, q, errstr, n);
    if (PQstatus(run->conn) != CONNECTION_OK) run->data_connected = 0;
    if (rc == EXPORT_QUERY_CANCELLED) {
        out = ctx->lost ? OUTCOME_LOST : OUTCOME_RELEASE;
        goto done;
    }
    if (rc == EXPORT_QUERY_RETRY) {
        out = OUTCOME_RELEASE;
        goto done;
    }
    if (rc != EXPORT_QUERY_OK) goto done;
    EV_INFO("export %s: %lld rows, %lld bytes written; uploading to %s", job->id, q->rows,
            q->size, *url);
    upload_opts_t uo = run->upload;
    uo.keep_going = keep_going;
    uo.ud = ctx;
    uo.may_link = 1; /* the temp file is ours and removed after the upload */
    upload_result_t ur = {0};
    int urc = upload_put(&uo, *url, path, q->size, q->sha256,
                         content_type(format, params.gzip), &ur, errstr, n);
    ev_metric_add(run->m_upload_attempts, ur.attempts);
    if (urc == 0) {
        out = OUTCOME_COMPLETED;
    } else if (ur.aborted) {
        out = ctx->lost ? OUTCOME_LOST : OUTCOME_RELEASE;
    } else {
        /* Permanent (4xx), or transient after every try: FAILED with the last error. */
        char tmp[900];
        snprintf(tmp, sizeof(tmp), "%.899s", errstr);
        snprintf(errstr, n, "upload after %d attempt%s: %s", ur.attempts,
                 ur.attempts == 1 ? "" : "s", tmp);
        *transient = !ur.permanent;
    }
done:
    if (path[0]) unlink(path);
    tf_export_params_clear(&params);
    return out;
}

static int process_job(exports_run_t *run, const jobs_job_t *job) {
    int64_t t0 = ev_mono_ns();
    char errstr[1024], finish_err[512];
    char *url = NULL;
    export_query_out_t q = {0};
    bool transient = false;
    tick_ctx_t ctx = {run, job, false};
    EV_INFO("export %s (%s, attempt %d): exporting", job->id, job->format ? job->format : "?",
            job->attempts);
    outcome_t o = build_and_upload(run, job, &ctx, &url, &q, &transient, errstr, sizeof(errstr));
    int status = 0, done = 0;
    if (o == OUTCOME_COMPLETED) {
        char size[32], rows[32], retention[32];
        snprintf(size, sizeof(size), "%lld", q.size);
        snprintf(rows, sizeof(rows), "%lld", q.rows);
        snprintf(retention, sizeof(retention), "%lld", run->retention_seconds);
        const char *extra[] = {url, size, rows, q.sha256, retention};
        done = jobs_finish(run->jobs, job, "COMPLETED", NULL,
                           ", \"fileUrl\" = $5, \"fileSize\" = $6::bigint, \"rowCount\" = "
                           "$7::bigint, \"checksum\" = $8, \"completedAt\" = now(), "
                           "\"expiresAt\" = now() + make_interval(secs => $9::double precision)",
                           5, extra, finish_err, sizeof(finish_err));
        if (done == 0) {
            double secs = (double)(ev_mono_ns() - t0) / 1e9;
            ev_metric_add(run->m_completed, 1);
            ev_metric_add(run->m_rows, (double)q.rows);
            ev_metric_add(run->m_bytes, (double)q.size);
            ev_histogram_observe(run->m_seconds, secs);
            EV_INFO("export %s: COMPLETED in %.3f s (%lld rows, %lld bytes, sha256 %s)", job->id,
                    secs, q.rows, q.size, q.sha256);
        }
    } else if (o == OUTCOME_FAILED) {
        done = jobs_finish(run->jobs, job, "FAILED", errstr, NULL, 0, NULL, finish_err,
                           sizeof(finish_err));
        if (done == 0) {
            ev_metric_add(run->m_failed, 1);
            EV_WARN("export %s: FAILED: %s%s", job->id, errstr,
                    transient ? " (transient errors on every attempt)" : "");
        }
    } else if (o == OUTCOME_LOST) {
        EV_WARN("export %s: lease lost to another worker; left to it", job->id);
        ev_metric_add(run->m_lost, 1);
        free(url);
        return 0;
    } else {
        if (!exports_stop_requested) EV_WARN("export %s: %s (released)", job->id, errstr);
        done = jobs_release(run->jobs, job, finish_err, sizeof(finish_err));
        if (done == 0) {
            ev_metric_add(run->m_released, 1);
            EV_INFO("export %s: released", job->id);
        }
        status = exports_stop_requested ? 0 : -1;
    }
    if (done == 1) {
        ev_metric_add(run->m_lost, 1);
        EV_WARN("export %s: %s (nothing written)", job->id, finish_err);
    } else if (done < 0) {
        EV_WARN("export %s: %s (its lease will expire and it will be retried)", job->id,
                finish_err);
        status = -1;
    }
    free(url);
    return status;
}

static void delete_expired(const char *file_url, void *ud) {
    exports_run_t *run = ud;
    char errstr[512];
    upload_result_t ur = {0};
    if (upload_delete(&run->upload, file_url, &ur, errstr, sizeof(errstr)) == 0)
        EV_INFO("expired: deleted %s", file_url);
    else
        EV_WARN("expired: could not delete %s: %s (the row is EXPIRED all the same)", file_url,
                errstr);
}

static int sweep(exports_run_t *run, char *errstr, size_t n) {
    long long expired = 0;
    if (jobs_expire(run->jobs, &expired, delete_expired, run, errstr, n) != 0) return -1;
    if (expired > 0) {
        ev_metric_add(run->m_expired, (double)expired);
        EV_INFO("%lld exports EXPIRED", expired);
    }
    return 0;
}

int cmd_exports(int argc, char **argv) {
    exports_run_t run_s = {0}, *run = &run_s;
    const char *brokers = NULL, *group = NULL, *worker_id = NULL;
    const char *log_level = "info", *log_format = "text";
    long long metrics_port = 9104, max_attempts = 5, lease_seconds = 120, poll_ms = 5000,
              stats_every = 60, retention_hours = 168, sweep_seconds = 60,
              connect_timeout_ms = 10000, stall_timeout_ms = 30000;
    long long deflate_level = XLSX_DEFLATE_LEVEL_DEFAULT;
    bool until_caught_up = false;
    ev_kv_list_t props = {0};
    run->sheet_rows = EXPORT_XLSX_SHEET_ROWS;
    const ev_opt_t opts[] = {
        {"database", 'd', EV_OPT_STR, NULL, "DATABASE_URL", "URL", "PostgreSQL conninfo or URL",
         &run->database, 0, 0},
        {"brokers", 'b', EV_OPT_STR, NULL, "KAFKA_BROKERS", "LIST",
         "Kafka bootstrap servers (accepted for one environment across stages; exports read "
         "PostgreSQL only)",
         &brokers, 0, 0},
        {"group", 'g', EV_OPT_STR, "evpipe-exports", NULL, "ID",
         "instance group name (workers share the jobs through row locks)", &group, 0, 0},
        {"prop", 'X', EV_OPT_KV, NULL, NULL, "KEY=VALUE",
         "librdkafka property (accepted, as for every stage)", &props, 0, 0},
        {"upload-url", 0, EV_OPT_STR, NULL, "EVPIPE_UPLOAD_URL", "URL",
         "base URL of exports without a destinationUrl: files go to URL/exports/<id>.<ext> "
         "(http, https or file://)",
         &run->upload_url, 0, 0},
        {"retention-hours", 0, EV_OPT_INT, "168", NULL, "HOURS",
         "a completed export expires this long after it completed (its file is deleted)",
         &retention_hours, 1, 87600},
        {"max-attempts", 0, EV_OPT_INT, "5", NULL, "N",
         "upload tries per claim, and claims of an export whose worker died, before FAILED",
         &max_attempts, 1, 1000},
        {"connect-timeout-ms", 0, EV_OPT_INT, "10000", NULL, "MS",
         "upload connection timeout", &connect_timeout_ms, 100, 600000},
        {"stall-timeout-ms", 0, EV_OPT_INT, "30000", NULL, "MS",
         "an upload moving less than 1 byte/s for this long is aborted and retried",
         &stall_timeout_ms, 100, 3600000},
        {"tmp-dir", 0, EV_OPT_STR, NULL, "TMPDIR", "DIR",
         "where files are built before upload (default /tmp)", &run->tmpdir, 0, 0},
        {"xlsx-sheet-rows", 0, EV_OPT_INT, "1048576", NULL, "N",
         "rows per XLSX sheet, header included (Excel's limit); a new sheet starts after",
         &run->sheet_rows, 2, EXPORT_XLSX_SHEET_ROWS},
        {"xlsx-deflate-level", 0, EV_OPT_INT, "1", NULL, "LEVEL",
         "zlib level of the XLSX zip: 1 fastest, 9 smallest (6 = libxlsxwriter's own)",
         &deflate_level, 0, 9},
        {"worker-id", 0, EV_OPT_STR, NULL, NULL, "ID",
         "this worker's name in the rows and audit log (default host:pid)", &worker_id, 0, 0},
        {"lease-seconds", 0, EV_OPT_INT, "120", NULL, "SECONDS",
         "a claimed export is taken again when its worker has not renewed it for this long",
         &lease_seconds, 2, 86400},
        {"sweep-seconds", 0, EV_OPT_INT, "60", NULL, "SECONDS",
         "how often expired exports are marked EXPIRED and their files deleted",
         &sweep_seconds, 1, 86400},
        {"until-caught-up", 0, EV_OPT_BOOL, "false", NULL, NULL,
         "process every export claimable at start (and its retries), then exit 0",
         &until_caught_up, 0, 0},
        {"poll-ms", 0, EV_OPT_INT, "5000", NULL, "MS",
         "look for exports this often when no notification arrives", &poll_ms, 10, 600000},
        {"metrics-port", 0, EV_OPT_INT, "9104", "EVPIPE_METRICS_PORT", "PORT",
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
        "evpipe exports", "[OPTIONS]",
        "Runs PENDING exports: claims each (FOR UPDATE SKIP LOCKED, under a lease), streams the "
        "dataset its parameters name into a CSV, JSON or XLSX file (gzip optional) in constant "
        "memory, uploads it with HTTP PUT (bearer, basic or AWS SigV4 auth from the "
        "environment: EVPIPE_UPLOAD_TOKEN, EVPIPE_UPLOAD_USER/EVPIPE_UPLOAD_PASSWORD, "
        "EVPIPE_UPLOAD_AWS_REGION with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or to a file:// "
        "path, and marks it COMPLETED or FAILED. Expired exports become EXPIRED and their files "
        "are deleted. Parameters and formats: docs/exports.md.",
        "Examples:\n  evpipe exports --database postgres://localhost/evpipe --upload-url "
        "https://files.example.com/analytics/\n"
        "  evpipe exports --until-caught-up --upload-url file:///var/lib/evpipe/",
        opts};
    char errstr[1024], worker_buf[300];
    int rc = ev_cli_parse(&cli, argc, argv, NULL, errstr, sizeof(errstr));
    int exit_code = 2;
    bool curl_ready = false;
    if (rc == 1) {
        exit_code = 0;
        goto out;
    }
    if (rc < 0) goto usage;
    xlsx_deflate_set_level((int)deflate_level);
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
    if (!run->tmpdir || !*run->tmpdir) run->tmpdir = "/tmp";
    if (access(run->tmpdir, W_OK) != 0) {
        snprintf(errstr, sizeof(errstr), "--tmp-dir %s: %s", run->tmpdir, strerror(errno));
        goto usage;
    }
    if (!worker_id) {
        char host[256];
        if (gethostname(host, sizeof(host)) != 0) snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        snprintf(worker_buf, sizeof(worker_buf), "%s:%ld", host, (long)getpid());
        worker_id = worker_buf;
    }
    ev_log_init("exports", level, strcmp(log_format, "json") == 0);
    run->retention_seconds = retention_hours * 3600;
    upload_opts_from_env(&run->upload);
    run->upload.connect_timeout_ms = connect_timeout_ms;
    run->upload.stall_timeout_ms = stall_timeout_ms;
    run->upload.max_attempts = (int)max_attempts;

    exit_code = 1;
    if (upload_global_init(errstr, sizeof(errstr)) != 0) {
        EV_ERROR("%s", errstr);
        goto out;
    }
    curl_ready = true;
    run->metrics = ev_metrics_new("evpipe_exports");
    if (!run->metrics) {
        EV_ERROR("out of memory");
        goto out;
    }
    run->m_completed = ev_metrics_counter(run->metrics, "jobs_total", "Exports finished",
                                          "status=\"COMPLETED\"");
    run->m_failed = ev_metrics_counter(run->metrics, "jobs_total", "Exports finished",
                                       "status=\"FAILED\"");
    run->m_expired = ev_metrics_counter(run->metrics, "expired_total",
                                        "Exports marked EXPIRED by the sweeper", NULL);
    run->m_released = ev_metrics_counter(run->metrics, "released_total",
                                         "Exports given back (SIGTERM, PostgreSQL or disk lost)",
                                         NULL);
    run->m_lost = ev_metrics_counter(run->metrics, "leases_lost_total",
                                     "Exports whose lease was lost to another worker", NULL);
    run->m_rows = ev_metrics_counter(run->metrics, "rows_total", "Rows in completed exports",
                                     NULL);
    run->m_bytes = ev_metrics_counter(run->metrics, "bytes_total",
                                      "Bytes of completed export files", NULL);
    run->m_upload_attempts = ev_metrics_counter(run->metrics, "upload_attempts_total",
                                                "HTTP PUT attempts (retries included)", NULL);
    run->m_retries = ev_metrics_counter(run->metrics, "retries_total",
                                        "Retries after transient failures",
                                        "component=\"postgresql\"");
    static const double bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800};
    run->m_seconds = ev_metrics_histogram(run->metrics, "export_seconds",
                                          "Time to build, upload and record one export", bounds,
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
    signal(SIGPIPE, SIG_IGN);

    bool down = false;
    long long snapshot_n = 0;
    for (int64_t backoff = JOBS_BACKOFF_MIN_MS; !exports_stop_requested;) {
        if (!run->jobs)
            run->jobs = jobs_new(run->database, JOBS_EXPORTS, "exports", worker_id,
                                 (int)lease_seconds, (int)max_attempts, errstr, sizeof(errstr));
        if (run->jobs && data_connect(run, errstr, sizeof(errstr)) == 0 &&
            jobs_listen(run->jobs, errstr, sizeof(errstr)) == 0 &&
            sweep(run, errstr, sizeof(errstr)) == 0 &&
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
    if (exports_stop_requested) {
        exit_code = 0;
        goto out;
    }
    if (until_caught_up)
        EV_INFO("worker %s: %lld exports claimable, processing them", worker_id, snapshot_n);
    else
        EV_INFO("worker %s: waiting for exports", worker_id);

    exit_code = 0;
    int64_t backoff = JOBS_BACKOFF_MIN_MS, now = ev_now_ms();
    int64_t next_stats = now + stats_every * 1000, next_sweep = now + sweep_seconds * 1000;
    down = false;
    while (!exports_stop_requested) {
        jobs_job_t *job = NULL;
        bool ok = jobs_fail_exhausted(run->jobs, NULL, errstr, sizeof(errstr)) == 0 &&
                  jobs_claim(run->jobs, &job, errstr, sizeof(errstr)) == 0;
        if (ok && job) {
            ok = process_job(run, job) == 0;
            if (!ok) snprintf(errstr, sizeof(errstr), "export %s given back", job->id);
            jobs_job_free(job);
            if (ok) {
                backoff = JOBS_BACKOFF_MIN_MS;
                continue;
            }
        }
        now = ev_now_ms();
        if (ok && now >= next_sweep) {
            ok = sweep(run, errstr, sizeof(errstr)) == 0;
            next_sweep = now + sweep_seconds * 1000;
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
            EV_INFO("caught up: %.0f completed, %.0f failed, %.0f expired",
                    ev_metric_value(run->m_completed), ev_metric_value(run->m_failed),
                    ev_metric_value(run->m_expired));
            break;
        }
        if (now >= next_stats) {
            EV_INFO("stats: %.0f completed, %.0f failed, %.0f released, %.0f expired, %.0f rows",
                    ev_metric_value(run->m_completed), ev_metric_value(run->m_failed),
                    ev_metric_value(run->m_released), ev_metric_value(run->m_expired),
                    ev_metric_value(run->m_rows));
            next_stats = now + stats_every * 1000;
        }
        int64_t wait = poll_ms;
        if (next_sweep - now < wait) wait = next_sweep - now > 0 ? next_sweep - now : 1;
        if (jobs_wait(run->jobs, (int)wait) < 0) sleep_ms(backoff);
    }
    if (exports_stop_requested) EV_INFO("stopped");
    goto out;
usage:
    fprintf(stderr, "evpipe exports: %s\n", errstr);
    exit_code = 2;
out:
    ev_metrics_destroy(run->metrics);
    jobs_destroy(run->jobs);
    PQfinish(run->conn);
    if (curl_ready) upload_global_cleanup();
    ev_kv_list_clear(&props);
    return exit_code;
}
