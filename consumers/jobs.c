/* jobs.c — claims, leases, transitions and audit rows of export and report jobs
 * (see jobs.h). Every status change is one SQL statement that updates the row and
 * inserts its audit_logs row, so neither exists without the other. */
#include "consumers/jobs.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/util.h"

struct jobs_s {
    char *conninfo;
    PGconn *conn;
    jobs_kind_t kind;
    char *actor;
    char *worker;
    int lease_seconds;
    int max_attempts;
    int listening;
    int want_listen;
    char *snapshot; /* "{id,id,…}" restricting claims, or NULL */
    int64_t last_renew_ms;
    atomic_int connected;
};

typedef struct {
    const char *table;  /* "exports" */
    const char *entity; /* audit entityType */
    const char *enum_t; /* status enum */
    const char *channel;
    const char *columns; /* returned by a claim after id, old status, attempts, parameters */
    const char *ready;   /* further condition of a claimable row */
} kind_info_t;

static const kind_info_t kinds[] = {
    {"exports", "export", "\"ExportStatus\"", "evpipe_exports",
     "e.\"format\"::text, e.\"destinationUrl\", e.\"reportId\"::text",
     /* An export of a report waits until the report is final. */
     " AND (e.\"reportId\" IS NULL OR e.\"parameters\"->>'dataset' IS DISTINCT FROM 'report' "
     "OR EXISTS (SELECT 1 FROM \"reports\" r WHERE r.\"id\" = e.\"reportId\" AND "
     "r.\"status\" IN ('COMPLETED', 'FAILED')))"},
    {"reports", "report", "\"ReportStatus\"", "evpipe_reports", "e.\"type\"::text, e.\"name\"", ""},
};

void jobs_job_free(jobs_job_t *job) {
    if (!job) return;
    free(job->parameters);
    free(job->format);
    free(job->destination_url);
    free(job->report_id);
    free(job->type);
    free(job->name);
    free(job);
}

static int connect_db(jobs_t *jobs, char *errstr, size_t errstr_size) {
    if (jobs->conn && PQstatus(jobs->conn) == CONNECTION_OK) return 0;
    if (jobs->conn) PQfinish(jobs->conn);
    jobs->listening = 0;
    jobs->conn = PQconnectdb(jobs->conninfo);
    if (PQstatus(jobs->conn) != CONNECTION_OK) {
        snprintf(errstr, errstr_size, "database: %s", PQerrorMessage(jobs->conn));
        atomic_store(&jobs->connected, 0);
        return -1;
    }
    PQsetNoticeProcessor(jobs->conn, NULL, NULL);
    atomic_store(&jobs->connected, 1);
    return 0;
}

static void db_error(jobs_t *jobs, const char *what, char *errstr, size_t errstr_size) {
    const char *msg = PQerrorMessage(jobs->conn);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) n--;
    snprintf(errstr, errstr_size, "%s: %.*s", what, (int)n, msg);
    if (PQstatus(jobs->conn) != CONNECTION_OK) atomic_store(&jobs->connected, 0);
}

jobs_t *jobs_new(const char *conninfo, jobs_kind_t kind, const char *actor,
                 const char *worker_id, int lease_seconds, int max_attempts, char *errstr,
                 size_t errstr_size) {
    jobs_t *jobs = calloc(1, sizeof(*jobs));
    if (!jobs) goto oom;
    jobs->kind = kind;
    jobs->lease_seconds = lease_seconds > 0 ? lease_seconds : 60;
    jobs->max_attempts = max_attempts > 0 ? max_attempts : 1;
    jobs->conninfo = strdup(conninfo);
    jobs->actor = strdup(actor);
    jobs->worker = strdup(worker_id);
    if (!jobs->conninfo || !jobs->actor || !jobs->worker) goto oom;
    if (connect_db(jobs, errstr, errstr_size) != 0) {
        jobs_destroy(jobs);
        return NULL;
    }
    return jobs;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    jobs_destroy(jobs);
    return NULL;
}

void jobs_destroy(jobs_t *jobs) {
    if (!jobs) return;
    if (jobs->conn) PQfinish(jobs->conn);
    free(jobs->conninfo);
    free(jobs->actor);
    free(jobs->worker);
    free(jobs->snapshot);
    free(jobs);
}

int jobs_connected(const jobs_t *jobs) { return atomic_load(&jobs->connected); }

int jobs_listen(jobs_t *jobs, char *errstr, size_t errstr_size) {
    jobs->want_listen = 1;
    if (connect_db(jobs, errstr, errstr_size) != 0) return -1;
    char sql[96];
    snprintf(sql, sizeof(sql), "LISTEN %s", kinds[jobs->kind].channel);
    PGresult *res = PQexec(jobs->conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        db_error(jobs, "LISTEN", errstr, errstr_size);
        return -1;
    }
    jobs->listening = 1;
    return 0;
}

/* Runs sql with params; returns the result (caller clears) or NULL with errstr. */
static PGresult *run(jobs_t *jobs, const char *what, const char *sql, int n,
                     const char *const *values, char *errstr, size_t errstr_size) {
    if (connect_db(jobs, errstr, errstr_size) != 0) return NULL;
    if (jobs->want_listen && !jobs->listening) {
        /* a reconnect lost the LISTEN: restore it */
        char listen_sql[96];
        snprintf(listen_sql, sizeof(listen_sql), "LISTEN %s", kinds[jobs->kind].channel);
        PGresult *lr = PQexec(jobs->conn, listen_sql);
        jobs->listening = PQresultStatus(lr) == PGRES_COMMAND_OK;
        PQclear(lr);
    }
    PGresult *res = PQexecParams(jobs->conn, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        db_error(jobs, what, errstr, errstr_size);
        PQclear(res);
        return NULL;
    }
    return res;
}

#define CLAIMABLE                                                                          \
    "(e.\"status\" = 'PENDING' OR (e.\"status\" = 'PROCESSING' AND e.\"leaseExpiresAt\" < " \
    "now() AND e.\"attempts\" < $2::int))"

int jobs_snapshot(jobs_t *jobs, long long *n, char *errstr, size_t errstr_size) {
    const kind_info_t *k = &kinds[jobs->kind];
    char sql[1024], max[16];
    snprintf(max, sizeof(max), "%d", jobs->max_attempts);
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(array_agg(e.\"id\")::text, '{}'), count(*) FROM \"%s\" e "
             "WHERE $1::int IS NULL AND " CLAIMABLE "%s",
             k->table, k->ready);
    const char *values[2] = {NULL, max};
    PGresult *res = run(jobs, "snapshot", sql, 2, values, errstr, errstr_size);
    if (!res) return -1;
    char *ids = strdup(PQgetvalue(res, 0, 0));
    long long count = 0;
    ev_parse_ll(PQgetvalue(res, 0, 1), &count);
    PQclear(res);
    if (!ids) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    free(jobs->snapshot);
    jobs->snapshot = ids;
    if (n) *n = count;
    return 0;
}

int jobs_fail_exhausted(jobs_t *jobs, long long *n, char *errstr, size_t errstr_size) {
    const kind_info_t *k = &kinds[jobs->kind];
    char sql[1400], max[16];
    snprintf(max, sizeof(max), "%d", jobs->max_attempts);
    snprintf(sql, sizeof(sql),
             "WITH c AS (SELECT e.\"id\" FROM \"%s\" e WHERE e.\"status\" = 'PROCESSING' "
             "AND e.\"leaseExpiresAt\" < now() AND e.\"attempts\" >= $2::int "
             "FOR UPDATE SKIP LOCKED), "
             "u AS (UPDATE \"%s\" e SET \"status\" = 'FAILED', \"error\" = 'the worker stopped "
             "answering (lease expired) on each of ' || e.\"attempts\" || ' attempts', "
             "\"leaseExpiresAt\" = NULL, \"leasedBy\" = NULL, \"updatedAt\" = now() FROM c "
             "WHERE e.\"id\" = c.\"id\" RETURNING e.\"id\", e.\"attempts\", e.\"error\") "
             "INSERT INTO \"audit_logs\" (\"action\", \"entityType\", \"entityId\", "
             "\"actorType\", \"actorId\", \"changes\") SELECT 'failed', '%s', u.\"id\"::text, "
             "'stage', $1, jsonb_build_object('status', jsonb_build_object('old', "
             "'PROCESSING', 'new', 'FAILED'), 'error', u.\"error\", 'attempts', u.\"attempts\") "
             "FROM u",
             k->table, k->table, k->entity);
    const char *values[2] = {jobs->actor, max};
    PGresult *res = run(jobs, "fail exhausted jobs", sql, 2, values, errstr, errstr_size);
    if (!res) return -1;
    long long count = 0;
    ev_parse_ll(PQcmdTuples(res), &count);
    PQclear(res);
    if (n) *n = count;
    return 0;
}

static char *dup_value(PGresult *res, int col) {
    if (PQgetisnull(res, 0, col)) return NULL;
    return strdup(PQgetvalue(res, 0, col));
}

int jobs_claim(jobs_t *jobs, jobs_job_t **out, char *errstr, size_t errstr_size) {
    const kind_info_t *k = &kinds[jobs->kind];
    char sql[3200], max[16], lease[16];
    snprintf(max, sizeof(max), "%d", jobs->max_attempts);
    snprintf(lease, sizeof(lease), "%d", jobs->lease_seconds);
    snprintf(sql, sizeof(sql),
             "WITH c AS (SELECT e.\"id\", e.\"status\" AS old_status FROM \"%s\" e WHERE " CLAIMABLE
             "%s AND ($4::uuid[] IS NULL OR e.\"id\" = ANY($4::uuid[])) "
             "ORDER BY e.\"createdAt\", e.\"id\" LIMIT 1 FOR UPDATE SKIP LOCKED), "
             "u AS (UPDATE \"%s\" e SET \"status\" = 'PROCESSING', \"attempts\" = e.\"attempts\" "
             "+ 1, \"startedAt\" = now(), \"leaseExpiresAt\" = now() + make_interval(secs => "
             "$3::int), \"leasedBy\" = $1, \"error\" = NULL, \"updatedAt\" = now() FROM c "
             "WHERE e.\"id\" = c.\"id\" RETURNING e.\"id\"::text AS id, c.old_status::text AS "
             "old_status, e.\"attempts\", e.\"parameters\"::text, %s), "
             "a AS (INSERT INTO \"audit_logs\" (\"action\", \"entityType\", \"entityId\", "
             "\"actorType\", \"actorId\", \"changes\") SELECT CASE WHEN u.old_status = "
             "'PENDING' THEN 'claim' ELSE 'reclaim' END, '%s', u.id, 'stage', $5, "
             "jsonb_build_object('status', jsonb_build_object('old', u.old_status, 'new', "
             "'PROCESSING'), 'attempts', u.\"attempts\", 'worker', $1::text) FROM u) "
             "SELECT * FROM u",
             k->table, k->ready, k->table, k->columns, k->entity);
    const char *values[5] = {jobs->worker, max, lease, jobs->snapshot, jobs->actor};
    PGresult *res = run(jobs, "claim", sql, 5, values, errstr, errstr_size);
    if (!res) return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        *out = NULL;
        return 0;
    }
    jobs_job_t *job = calloc(1, sizeof(*job));
    if (!job) {
        PQclear(res);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    snprintf(job->id, sizeof(job->id), "%s", PQgetvalue(res, 0, 0));
    snprintf(job->old_status, sizeof(job->old_status), "%s", PQgetvalue(res, 0, 1));
    long long attempts = 0;
    ev_parse_ll(PQgetvalue(res, 0, 2), &attempts);
    job->attempts = (int)attempts;
    job->parameters = dup_value(res, 3);
    if (jobs->kind == JOBS_EXPORTS) {
        job->format = dup_value(res, 4);
        job->destination_url = dup_value(res, 5);
        job->report_id = dup_value(res, 6);
    } else {
        job->type = dup_value(res, 4);
        job->name = dup_value(res, 5);
    }
    PQclear(res);
    jobs->last_renew_ms = ev_now_ms();
    *out = job;
    return 0;
}

int jobs_renew(jobs_t *jobs, const jobs_job_t *job, char *errstr, size_t errstr_size) {
    int64_t now = ev_now_ms();
    if (now - jobs->last_renew_ms < (int64_t)jobs->lease_seconds * 250) return 0;
    char sql[400], lease[16];
    snprintf(lease, sizeof(lease), "%d", jobs->lease_seconds);
    snprintf(sql, sizeof(sql),
             "UPDATE \"%s\" SET \"leaseExpiresAt\" = now() + make_interval(secs => $3::int) "
             "WHERE \"id\" = $1::uuid AND \"status\" = 'PROCESSING' AND \"leasedBy\" = $2",
             kinds[jobs->kind].table);
    const char *values[3] = {job->id, jobs->worker, lease};
    PGresult *res = run(jobs, "renew lease", sql, 3, values, errstr, errstr_size);
    if (!res) return -1;
    int mine = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    jobs->last_renew_ms = now;
    if (!mine) {
        snprintf(errstr, errstr_size, "job %s is no longer held by %s", job->id, jobs->worker);
        return 1;
    }
    return 0;
}

/* The shared transition: PROCESSING (held by this worker) -> status. */
static int transition(jobs_t *jobs, const jobs_job_t *job, const char *status,
                      const char *action, const char *error, const char *set_more,
                      const char *extra_set, int n_extra, const char *const *extra_values,
                      char *errstr, size_t errstr_size) {
    const kind_info_t *k = &kinds[jobs->kind];
    char sql[3000];
    int len = snprintf(
        sql, sizeof(sql),
        "WITH u AS (UPDATE \"%s\" e SET \"status\" = $2::%s, \"error\" = $3::text, "
        "\"leaseExpiresAt\" = NULL, \"leasedBy\" = NULL, \"updatedAt\" = now()%s%s "
        "WHERE e.\"id\" = $1::uuid AND e.\"status\" = 'PROCESSING' AND e.\"leasedBy\" = "
        "$4::text RETURNING e.\"id\"::text AS id, e.\"attempts\"), "
        "a AS (INSERT INTO \"audit_logs\" (\"action\", \"entityType\", \"entityId\", "
        "\"actorType\", \"actorId\", \"changes\") SELECT '%s', '%s', u.id, 'stage', '%s', "
        "jsonb_build_object('status', jsonb_build_object('old', 'PROCESSING', 'new', "
        "$2::text), 'error', $3::text, 'attempts', u.\"attempts\", 'worker', $4::text) FROM "
        "u) SELECT count(*) FROM u",
        k->table, k->enum_t, set_more ? set_more : "", extra_set ? extra_set : "", action,
        k->entity, jobs->actor);
    if (len < 0 || (size_t)len >= sizeof(sql) || n_extra > 16 ||
        strchr(jobs->actor, '\'') != NULL) {
        snprintf(errstr, errstr_size, "transition statement too long");
        return -1;
    }
    const char *values[20] = {job->id, status, error, jobs->worker};
    for (int i = 0; i < n_extra; i++) values[4 + i] = extra_values[i];
    PGresult *res = run(jobs, action, sql, 4 + n_extra, values, errstr, errstr_size);
    if (!res) return -1;
    int mine = strcmp(PQgetvalue(res, 0, 0), "1") == 0;
    PQclear(res);
    if (!mine) {
        snprintf(errstr, errstr_size, "job %s is no longer held by %s", job->id, jobs->worker);
        return 1;
    }
    return 0;
}

int jobs_finish(jobs_t *jobs, const jobs_job_t *job, const char *status, const char *error,
                const char *extra_set, int n_extra, const char *const *extra_values,
                char *errstr, size_t errstr_size) {
    char action[24];
    size_t i = 0;
    for (; status[i] && i + 1 < sizeof(action); i++)
        action[i] = (char)(status[i] >= 'A' && status[i] <= 'Z' ? status[i] + 32 : status[i]);
    action[i] = 0;
    return transition(jobs, job, status, action, error, NULL, extra_set, n_extra, extra_values,
                      errstr, errstr_size);
}

int jobs_release(jobs_t *jobs, const jobs_job_t *job, char *errstr, size_t errstr_size) {
    return transition(jobs, job, "PENDING", "release", NULL,
                      ", \"attempts\" = GREATEST(e.\"attempts\" - 1, 0)", NULL, 0, NULL, errstr,
                      errstr_size);
}

int jobs_expire(jobs_t *jobs, long long *n, void (*on_expired)(const char *file_url, void *ud),
                void *ud, char *errstr, size_t errstr_size) {
    if (jobs->kind != JOBS_EXPORTS) {
        if (n) *n = 0;
        return 0;
    }
    const char *sql =
        "WITH c AS (SELECT e.\"id\" FROM \"exports\" e WHERE e.\"status\" = 'COMPLETED' AND "
        "e.\"expiresAt\" <= now() FOR UPDATE SKIP LOCKED LIMIT 1000), "
        "u AS (UPDATE \"exports\" e SET \"status\" = 'EXPIRED', \"updatedAt\" = now() FROM c "
        "WHERE e.\"id\" = c.\"id\" RETURNING e.\"id\"::text AS id, e.\"fileUrl\", "
        "e.\"expiresAt\"), "
        "a AS (INSERT INTO \"audit_logs\" (\"action\", \"entityType\", \"entityId\", "
        "\"actorType\", \"actorId\", \"changes\") SELECT 'expired', 'export', u.id, 'stage', "
        "$1, jsonb_build_object('status', jsonb_build_object('old', 'COMPLETED', 'new', "
        "'EXPIRED'), 'expiresAt', u.\"expiresAt\") FROM u) "
        "SELECT u.\"fileUrl\" FROM u";
    const char *values[1] = {jobs->actor};
    PGresult *res = run(jobs, "expire", sql, 1, values, errstr, errstr_size);
    if (!res) return -1;
    int rows = PQntuples(res);
    for (int i = 0; on_expired && i < rows; i++)
        if (!PQgetisnull(res, i, 0)) on_expired(PQgetvalue(res, i, 0), ud);
    PQclear(res);
    if (n) *n = rows;
    return 0;
}

int jobs_wait(jobs_t *jobs, int timeout_ms) {
    char err[256];
    if (!jobs->listening && jobs_listen(jobs, err, sizeof(err)) != 0) return -1;
    int got = 0;
    PGnotify *nt;
    PQconsumeInput(jobs->conn);
    while ((nt = PQnotifies(jobs->conn)) != NULL) {
        got = 1;
        PQfreemem(nt);
    }
    if (got) return 1;
    struct pollfd pfd = {.fd = PQsocket(jobs->conn), .events = POLLIN};
    if (pfd.fd < 0) return -1;
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc < 0) return errno == EINTR ? 0 : -1;
    if (rc == 0) return 0;
    if (!PQconsumeInput(jobs->conn)) {
        atomic_store(&jobs->connected, 0);
        jobs->listening = 0;
        return -1;
    }
    while ((nt = PQnotifies(jobs->conn)) != NULL) {
        got = 1;
        PQfreemem(nt);
    }
    return got;
}

int jobs_data_connect(PGconn **conn, const char *conninfo, const char *app_name, char *errstr,
                      size_t errstr_size) {
    if (*conn && PQstatus(*conn) == CONNECTION_OK) return 0;
    PQfinish(*conn);
    *conn = PQconnectdb(conninfo);
    if (PQstatus(*conn) != CONNECTION_OK) {
        snprintf(errstr, errstr_size, "database: %s", PQerrorMessage(*conn));
        return -1;
    }
    PQsetNoticeProcessor(*conn, NULL, NULL);
    const char *values[1] = {app_name};
    PGresult *res = PQexecParams(*conn,
                                 "SELECT set_config('TimeZone', 'UTC', false), "
                                 "set_config('application_name', $1, false), "
                                 "set_config('jit', 'off', false)",
                                 1, NULL, values, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    if (!ok) {
        snprintf(errstr, errstr_size, "database: %s", PQerrorMessage(*conn));
        return -1;
    }
    return 0;
}

void jobs_sleep_ms(int64_t ms, const volatile sig_atomic_t *stop) {
    while (ms > 0 && !*stop) {
        int64_t slice = ms < 100 ? ms : 100;
        struct timespec ts = {slice / 1000, (long)(slice % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
}

int64_t jobs_next_backoff(int64_t ms) {
    ms *= 2;
    return ms > JOBS_BACKOFF_MAX_MS ? JOBS_BACKOFF_MAX_MS : ms;
}
