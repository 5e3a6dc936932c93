/* stage.c — the loop of the downstream stages: claim dirty hours, recompute, commit
 * (see stage.h for the contract). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/log.h"
#include "common/util.h"
#include "consumers/stage.h"
#include "sinks/pg_settings.h"
#include "transforms/settings.h"

#define STAGE_BACKOFF_MIN_MS 100
#define STAGE_BACKOFF_MAX_MS 10000

static volatile sig_atomic_t stage_stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stage_stop_requested = 1;
}

typedef struct stage_run_s {
    const stage_def_t *def;
    const char *database;
    PGconn *conn;
    sink_pg_settings_t *settings_src;
    bool exclude_bots;
    volatile int connected; /* read by the /readyz thread */
    ev_metrics_t *metrics;
    ev_metric_t *m_batches, *m_hours, *m_marks, *m_retries, *m_pending;
    ev_histogram_t *m_batch_seconds;
} stage_run_t;

static void sleep_ms(int64_t ms) {
    /* Sliced so SIGTERM is noticed quickly. */
    while (ms > 0 && !stage_stop_requested) {
        int64_t slice = ms < 100 ? ms : 100;
        struct timespec ts = {slice / 1000, (long)(slice % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
}

static int64_t next_backoff(int64_t ms) {
    ms *= 2;
    return ms > STAGE_BACKOFF_MAX_MS ? STAGE_BACKOFF_MAX_MS : ms;
}

static void copy_pg_error(const char *msg, char *errstr, size_t errstr_size) {
    snprintf(errstr, errstr_size, "%s", msg && *msg ? msg : "unknown PostgreSQL error");
    size_t n = strlen(errstr);
    while (n && (errstr[n - 1] == '\n' || errstr[n - 1] == ' ')) errstr[--n] = '\0';
}

long long stage_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                     char *errstr, size_t errstr_size) {
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    long long n = -1;
    if (st == PGRES_COMMAND_OK) {
        const char *t = PQcmdTuples(res);
        n = *t ? strtoll(t, NULL, 10) : 0;
    } else if (st == PGRES_TUPLES_OK) {
        n = PQntuples(res);
    } else {
        copy_pg_error(PQresultErrorMessage(res), errstr, errstr_size);
    }
    PQclear(res);
    return n;
}

long long stage_mark_range(PGconn *conn, const char *stage, const char *from, const char *to,
                           char *errstr, size_t errstr_size) {
    const char *params[] = {stage, from, to};
    return stage_exec(conn,
                      "INSERT INTO dirty_hours (stage, entity, \"hourStart\") "
                      "SELECT $1, 'recompute', h FROM generate_series("
                      "date_trunc('hour', $2::timestamptz, 'UTC'), "
                      "$3::timestamptz - interval '1 millisecond', interval '1 hour') h",
                      3, params, errstr, errstr_size);
}

static int ready_cb(void *ud, char *reason, size_t reason_size) {
    stage_run_t *run = ud;
    if (run->connected) return 1;
    snprintf(reason, reason_size, "not connected to PostgreSQL");
    return 0;
}

/* Connects (once) and prepares the session. Returns 0 or -1 with errstr. */
static int stage_connect(stage_run_t *run, char *errstr, size_t errstr_size) {
    if (run->conn && PQstatus(run->conn) == CONNECTION_OK) return 0;
    PQfinish(run->conn);
    run->connected = 0;
    run->conn = PQconnectdb(run->database);
    if (PQstatus(run->conn) != CONNECTION_OK) {
        copy_pg_error(PQerrorMessage(run->conn), errstr, errstr_size);
        return -1;
    }
    char app[96];
    snprintf(app, sizeof(app), "evpipe-%s", run->def->name);
    const char *params[] = {app};
    /* UTC: date_trunc on timestamptz follows the session's zone. No JIT: a batch's
     * statements are short, and compiling them cost more than it saved (~20 ms each).
     * random_page_cost 1.1 (SSD or cached data, the usual setting today): with the
     * default 4, joining a batch's rows to their sessions scanned the whole sessions
     * table instead of looking the few up by key, and the cost grew with history. */
    if (stage_exec(run->conn, "SELECT set_config('TimeZone', 'UTC', false), "
                              "set_config('application_name', $1, false), "
                              "set_config('jit', 'off', false), "
                              "set_config('random_page_cost', '1.1', false)",
                   1, params, errstr, errstr_size) < 0)
        return -1;
    run->connected = 1;
    return 0;
}

static bool conn_broken(const stage_run_t *run) {
    return !run->conn || PQstatus(run->conn) != CONNECTION_OK;
}

/* A statement refused for want of a grant (SQLSTATE 42501): retrying cannot help. */
static const char k_grant_hint[] =
    "make this user a member of evpipe_stages: docs/operations.md, \"Database roles\"";
static bool stage_refused(const stage_run_t *run, const char *errstr) {
    return !conn_broken(run) && strstr(errstr, "permission denied") != NULL;
}

/* Reads bots.excludeFromMetrics and, when it differs from what the stage last applied
 * (downstream_stages.appliedSettings), marks every stored hour so that everything is
 * recomputed under the new value. Returns 0 or -1 with errstr. */
static int stage_sync_settings(stage_run_t *run, char *errstr, size_t errstr_size) {
    tf_settings_t s;
    tf_settings_default(&s);
    char warning[256] = "";
    if (sink_pg_settings_load(run->settings_src, 0, &s, warning, sizeof(warning), errstr,
                              errstr_size) != 0)
        return -1;
    if (*warning) EV_WARN("tracking_configs: %s", warning);
    const char *value = s.bots_exclude_from_metrics ? "true" : "false";
    const char *params[] = {run->def->name, value};
    if (stage_exec(run->conn, "BEGIN", 0, NULL, errstr, errstr_size) < 0) return -1;
    PGresult *res = PQexecParams(run->conn,
                                 "SELECT \"appliedSettings\"->>'excludeBots' FROM "
                                 "downstream_stages WHERE name = $1 FOR UPDATE",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            snprintf(errstr, errstr_size, "stage '%s' is not registered in downstream_stages",
                     run->def->name);
        else
            copy_pg_error(PQresultErrorMessage(res), errstr, errstr_size);
        PQclear(res);
        goto fail;
    }
    bool known = !PQgetisnull(res, 0, 0);
    bool same = known && strcmp(PQgetvalue(res, 0, 0), value) == 0;
    PQclear(res);
    if (!same) {
        if (known) {
            /* Every stored row lies inside its session's span: marking the sessions'
             * hours marks every hour that holds data. */
            long long n = stage_exec(
                run->conn,
                "INSERT INTO dirty_hours (stage, entity, \"hourStart\") "
                "SELECT $1, 'settings', h FROM (SELECT DISTINCT generate_series("
                "date_trunc('hour', \"startedAt\", 'UTC'), date_trunc('hour', \"endedAt\", 'UTC'), "
                "interval '1 hour') h FROM analytics_sessions) hours",
                1, params, errstr, errstr_size);
            if (n < 0) goto fail;
            EV_INFO("bots.excludeFromMetrics is now %s: %lld stored hours marked for "
                    "recomputation", value, n);
        }
        if (stage_exec(run->conn,
                       "UPDATE downstream_stages SET \"appliedSettings\" = "
                       "jsonb_build_object('excludeBots', $2::boolean) WHERE name = $1",
                       2, params, errstr, errstr_size) < 0)
            goto fail;
    }
    if (stage_exec(run->conn, "COMMIT", 0, NULL, errstr, errstr_size) < 0) goto fail;
    run->exclude_bots = s.bots_exclude_from_metrics;
    return 0;
fail:
    if (!conn_broken(run)) {
        char ignored[64];
        stage_exec(run->conn, "ROLLBACK", 0, NULL, ignored, sizeof(ignored));
    }
    return -1;
}

/* One batch. Returns the number of hours absorbed (0 = nothing claimable), or -1 with
 * errstr (rolled back). */
static long long stage_run_batch(stage_run_t *run, long long batch_marks, long long debounce_ms,
                                 char *errstr, size_t errstr_size) {
    int64_t t0 = ev_mono_ns();
    char limit[24], debounce[24];
    snprintf(limit, sizeof(limit), "%lld", batch_marks);
    snprintf(debounce, sizeof(debounce), "%lld", debounce_ms);
    const char *params[] = {run->def->name, limit};
    long long hours = -1, marks;
    /* Debounce: start only once the oldest waiting mark is debounce_ms old, then take
     * every mark there is, so hours that a stream of ingest batches keeps touching are
     * recomputed about once per debounce_ms, not once per batch. */
    PGresult *res = PQexecParams(run->conn,
                                 "SELECT \"createdAt\" <= now() - $2::bigint * interval "
                                 "'1 millisecond' FROM dirty_hours WHERE stage = $1 "
                                 "ORDER BY id LIMIT 1",
                                 2, NULL, (const char *const[]){run->def->name, debounce}, NULL,
                                 NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        copy_pg_error(PQresultErrorMessage(res), errstr, errstr_size);
        PQclear(res);
        return -1;
    }
    bool due = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!due) return 0;
    if (stage_exec(run->conn, "BEGIN", 0, NULL, errstr, errstr_size) < 0) return -1;
    if (stage_exec(run->conn,
                   "CREATE TEMPORARY TABLE claimed_hours (\"hourStart\" timestamptz PRIMARY KEY) "
                   "ON COMMIT DROP",
                   0, NULL, errstr, errstr_size) < 0)
        goto fail;
    /* Claim by deleting: the marks come back if this transaction does not commit. */
    marks = stage_exec(run->conn,
                       "WITH claimed AS (DELETE FROM dirty_hours WHERE id IN ("
                       "SELECT id FROM dirty_hours WHERE stage = $1 ORDER BY id LIMIT $2 "
                       "FOR UPDATE SKIP LOCKED) RETURNING \"hourStart\") "
                       "INSERT INTO claimed_hours SELECT DISTINCT \"hourStart\" FROM claimed",
                       2, params, errstr, errstr_size);
    if (marks < 0) goto fail;
    if (marks == 0) {
        if (stage_exec(run->conn, "ROLLBACK", 0, NULL, errstr, errstr_size) < 0) return -1;
        return 0;
    }
    hours = stage_exec(run->conn, "SELECT 1 FROM claimed_hours", 0, NULL, errstr, errstr_size);
    if (hours < 0) goto fail;
    if (stage_exec(run->conn, "ANALYZE claimed_hours", 0, NULL, errstr, errstr_size) < 0)
        goto fail;
    if (stage_exec(run->conn,
                   "SELECT pg_advisory_xact_lock(hashtext('evpipe.stage.' || $1))", 1, params,
                   errstr, errstr_size) < 0)
        goto fail;
    stage_batch_t batch = {run->conn, (size_t)hours, run->exclude_bots};
    if (run->def->process(&batch, run->def->ud, errstr, errstr_size) != 0) goto fail;
    if (stage_exec(run->conn, "COMMIT", 0, NULL, errstr, errstr_size) < 0) goto fail;
    ev_metric_add(run->m_batches, 1);
    ev_metric_add(run->m_hours, (double)hours);
    ev_metric_add(run->m_marks, (double)marks);
    ev_histogram_observe(run->m_batch_seconds, (double)(ev_mono_ns() - t0) / 1e9);
    EV_DEBUG("absorbed %lld marks: %lld hours in %.3f s", marks, hours,
             (double)(ev_mono_ns() - t0) / 1e9);
    return hours;
fail:
    if (!conn_broken(run)) {
        char ignored[64];
        stage_exec(run->conn, "ROLLBACK", 0, NULL, ignored, sizeof(ignored));
    }
    return -1;
}

/* The highest mark id of the stage now (0 when none): --until-caught-up's target. */
static long long stage_last_mark(stage_run_t *run, char *errstr, size_t errstr_size) {
    const char *params[] = {run->def->name};
    PGresult *res = PQexecParams(run->conn,
                                 "SELECT coalesce(max(id), 0) FROM dirty_hours WHERE stage = $1",
                                 1, NULL, params, NULL, NULL, 0);
    long long v = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    else
        copy_pg_error(PQresultErrorMessage(res), errstr, errstr_size);
    PQclear(res);
    return v;
}

/* Marks of the stage still waiting: those up to `upto` (when > 0) or all. -1 on error. */
static long long stage_pending(stage_run_t *run, long long upto, char *errstr,
                               size_t errstr_size) {
    char upto_s[24];
    snprintf(upto_s, sizeof(upto_s), "%lld", upto > 0 ? upto : (long long)INT64_MAX);
    const char *params[] = {run->def->name, upto_s};
    PGresult *res = PQexecParams(run->conn,
                                 "SELECT count(*) FROM dirty_hours WHERE stage = $1 AND id <= $2",
                                 2, NULL, params, NULL, NULL, 0);
    long long v = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    else
        copy_pg_error(PQresultErrorMessage(res), errstr, errstr_size);
    PQclear(res);
    return v;
}

/* Splits "FROM..TO" into two strings (pointers into buf). Returns 0 or -1. */
static int split_range(const char *range, char *buf, size_t buf_size, const char **from,
                       const char **to) {
    const char *dots = strstr(range, "..");
    if (!dots || dots == range || !dots[2] || strlen(range) >= buf_size) return -1;
    memcpy(buf, range, strlen(range) + 1);
    buf[dots - range] = '\0';
    *from = buf;
    *to = buf + (dots - range) + 2;
    return 0;
}

int stage_main(const stage_def_t *def, int argc, char **argv) {
    stage_run_t run_s = {0}, *run = &run_s;
    run->def = def;
    const char *brokers = NULL, *group = NULL, *recompute = NULL;
    const char *log_level = "info", *log_format = "text";
    char port_def[16], group_def[64];
    snprintf(port_def, sizeof(port_def), "%d", def->default_metrics_port);
    snprintf(group_def, sizeof(group_def), "evpipe-%s", def->name);
    long long metrics_port = def->default_metrics_port, batch_marks = 20000, debounce_ms = 1000,
              poll_ms = 250, config_poll = 10, stats_every = 10;
    bool until_caught_up = false;
    ev_kv_list_t props = {0};
    const ev_opt_t opts[] = {
        {"database", 'd', EV_OPT_STR, NULL, "DATABASE_URL", "URL", "PostgreSQL conninfo or URL",
         &run->database, 0, 0},
        {"brokers", 'b', EV_OPT_STR, NULL, "KAFKA_BROKERS", "LIST",
         "Kafka bootstrap servers (accepted for one environment across stages; this stage "
         "reads its changes from PostgreSQL)",
         &brokers, 0, 0},
        {"group", 'g', EV_OPT_STR, group_def, NULL, "ID",
         "instance group name (instances share work through PostgreSQL row locks)", &group, 0,
         0},
        {"prop", 'X', EV_OPT_KV, NULL, NULL, "KEY=VALUE",
         "librdkafka property (accepted, as for every stage)", &props, 0, 0},
        {"until-caught-up", 0, EV_OPT_BOOL, "false", NULL, NULL,
         "exit 0 once every change stored when the stage started is reflected",
         &until_caught_up, 0, 0},
        {"recompute", 0, EV_OPT_STR, NULL, NULL, "FROM..TO",
         "first mark every UTC hour in [FROM, TO) for recomputation (backfills)", &recompute, 0,
         0},
        {"batch-marks", 0, EV_OPT_INT, "20000", NULL, "N", "marks absorbed per transaction",
         &batch_marks, 1, 10000000},
        {"debounce-ms", 0, EV_OPT_INT, "1000", NULL, "MS",
         "start a batch once the oldest mark is this old (folds bursts of changes)", &debounce_ms,
         0, 3600000},
        {"poll-ms", 0, EV_OPT_INT, "250", NULL, "MS", "wait between looks when idle", &poll_ms,
         10, 60000},
        {"config-poll", 0, EV_OPT_INT, "10", NULL, "SECONDS",
         "how often tracking_configs is re-read (its NOTIFY applies changes at once)",
         &config_poll, 1, 86400},
        {"metrics-port", 0, EV_OPT_INT, port_def, "EVPIPE_METRICS_PORT", "PORT",
         "serve /metrics, /healthz, /readyz here (0 = any free port, -1 = off)", &metrics_port,
         -1, 65535},
        {"stats-interval", 0, EV_OPT_INT, "10", NULL, "SECONDS", "period of the stats log line",
         &stats_every, 1, 86400},
        {"log-level", 0, EV_OPT_STR, "info", "EVPIPE_LOG_LEVEL", "LEVEL",
         "debug, info, warn or error", &log_level, 0, 0},
        {"log-format", 0, EV_OPT_STR, "text", "EVPIPE_LOG_FORMAT", "FORMAT", "text or json",
         &log_format, 0, 0},
        EV_OPT_END};
    const ev_cli_t cli = {def->command, "[OPTIONS]", def->summary, def->epilog, opts};
    char errstr[1024], range_buf[256];
    const char *range_from = NULL, *range_to = NULL;
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
    if (recompute &&
        split_range(recompute, range_buf, sizeof(range_buf), &range_from, &range_to) != 0) {
        snprintf(errstr, sizeof(errstr), "--recompute wants FROM..TO, e.g. "
                                         "2026-01-01..2026-02-01");
        goto usage;
    }
    ev_log_init(def->name, level, strcmp(log_format, "json") == 0);

    exit_code = 1;
    run->settings_src = sink_pg_settings_new(run->database);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "evpipe_%s", def->name);
    run->metrics = ev_metrics_new(prefix);
    if (!run->settings_src || !run->metrics) {
        EV_ERROR("out of memory");
        goto out;
    }
    run->m_batches = ev_metrics_counter(run->metrics, "batches_committed_total",
                                        "Batches of marks absorbed and committed", NULL);
    run->m_hours = ev_metrics_counter(run->metrics, "hours_recomputed_total",
                                      "Distinct UTC hours recomputed", NULL);
    run->m_marks = ev_metrics_counter(run->metrics, "marks_absorbed_total",
                                      "dirty_hours marks absorbed", NULL);
    run->m_retries = ev_metrics_counter(run->metrics, "retries_total",
                                        "Retries after transient failures",
                                        "component=\"postgresql\"");
    run->m_pending = ev_metrics_gauge(run->metrics, "marks_pending",
                                      "Marks waiting for this stage (at the last stats line)",
                                      NULL);
    static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    run->m_batch_seconds = ev_metrics_histogram(run->metrics, "batch_seconds",
                                                "Time to recompute and commit one batch", bounds,
                                                sizeof(bounds) / sizeof(bounds[0]));
    if (def->init_metrics) def->init_metrics(run->metrics, def->ud);
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

    /* Start: connect, apply settings, mark a requested range, fix the target. */
    long long target = -1;
    bool down = false, recompute_done = !recompute;
    for (int64_t backoff = STAGE_BACKOFF_MIN_MS; !stage_stop_requested;) {
        if (stage_connect(run, errstr, sizeof(errstr)) == 0 &&
            stage_sync_settings(run, errstr, sizeof(errstr)) == 0) {
            if (!recompute_done) {
                long long n = stage_mark_range(run->conn, def->name, range_from, range_to,
                                               errstr, sizeof(errstr));
                if (n < 0 && !conn_broken(run)) {
                    EV_ERROR("--recompute %s: %s", recompute, errstr);
                    exit_code = 2;
                    goto out;
                }
                if (n >= 0) {
                    EV_INFO("marked %lld hours of [%s, %s) for recomputation", n, range_from,
                            range_to);
                    recompute_done = true;
                }
            }
            if (recompute_done && (target = stage_last_mark(run, errstr, sizeof(errstr))) >= 0)
                break;
        }
        if (!conn_broken(run) && strstr(errstr, "does not exist")) {
            EV_ERROR("database: %s (is the schema migrated? run `evpipe migrate up`)", errstr);
            exit_code = 2;
            goto out;
        }
        if (stage_refused(run, errstr)) {
            EV_ERROR("database: %s (%s)", errstr, k_grant_hint);
            exit_code = 2;
            goto out;
        }
        if (!down) EV_WARN("waiting for PostgreSQL: %s", errstr);
        down = true;
        ev_metric_add(run->m_retries, 1);
        sleep_ms(backoff);
        backoff = next_backoff(backoff);
    }
    if (stage_stop_requested) {
        exit_code = 0;
        goto out;
    }
    if (down) EV_INFO("PostgreSQL is reachable again");
    down = false;
    EV_INFO("absorbing changes for stage %s%s", def->name,
            until_caught_up ? " until caught up" : "");

    int64_t next_config = ev_now_ms() + config_poll * 1000, next_stats = 0;
    int64_t backoff = STAGE_BACKOFF_MIN_MS;
    exit_code = 0;
    while (!stage_stop_requested) {
        int64_t now = ev_now_ms();
        bool ok = stage_connect(run, errstr, sizeof(errstr)) == 0;
        if (ok && (sink_pg_settings_changed(run->settings_src) || now >= next_config)) {
            ok = stage_sync_settings(run, errstr, sizeof(errstr)) == 0;
            next_config = now + config_poll * 1000;
        }
        if (ok && def->tick) ok = def->tick(run->conn, run->exclude_bots, def->ud, errstr,
                                            sizeof(errstr)) == 0;
        long long hours = 0;
        if (ok) ok = (hours = stage_run_batch(run, batch_marks, debounce_ms, errstr,
                                              sizeof(errstr))) >= 0;
        long long pending = -1;
        if (ok && (until_caught_up || now >= next_stats))
            ok = (pending = stage_pending(run, until_caught_up ? target : 0, errstr,
                                          sizeof(errstr))) >= 0;
        if (!ok && stage_refused(run, errstr)) {
            EV_ERROR("%s (%s); stopping", errstr, k_grant_hint);
            exit_code = 1;
            goto out;
        }
        if (!ok) {
            if (!down) EV_WARN("%s (retrying with backoff)", errstr);
            down = true;
            ev_metric_add(run->m_retries, 1);
            sleep_ms(backoff);
            backoff = next_backoff(backoff);
            continue;
        }
        if (down) EV_INFO("working again");
        down = false;
        backoff = STAGE_BACKOFF_MIN_MS;
        if (now >= next_stats && !until_caught_up) {
            ev_metric_set(run->m_pending, (double)pending);
            EV_INFO("stats: %.0f batches, %.0f hours recomputed, %lld marks pending",
                    ev_metric_value(run->m_batches), ev_metric_value(run->m_hours), pending);
            next_stats = now + stats_every * 1000;
        }
        if (until_caught_up && pending == 0) {
            EV_INFO("caught up: %.0f batches, %.0f hours recomputed",
                    ev_metric_value(run->m_batches), ev_metric_value(run->m_hours));
            break;
        }
        if (hours == 0) sleep_ms(poll_ms);
    }
    if (stage_stop_requested) EV_INFO("stopped");
    goto out;
usage:
    fprintf(stderr, "%s: %s\n", def->command, errstr);
    exit_code = 2;
out:
    ev_metrics_destroy(run->metrics);
    sink_pg_settings_destroy(run->settings_src);
    PQfinish(run->conn);
    ev_kv_list_clear(&props);
    return exit_code;
}
