/* jobs.h — the job lifecycle shared by `evpipe exports` and `evpipe reports`: claim a
 * PENDING row of the exports or reports table with FOR UPDATE SKIP LOCKED (any number
 * of workers, none takes a job twice), hold it under a lease that the worker renews,
 * reclaim a PROCESSING row whose lease ran out (its worker died), and write an
 * audit_logs row in the same statement as every status change.
 *
 * A jobs_t owns one PostgreSQL connection of its own (LISTEN, claims, renewals and
 * transitions), separate from whatever connection the worker reads data with. Not
 * thread-safe: one thread per jobs_t. On a connection error a call returns -1 and the
 * next call reconnects. */
#ifndef EV_JOBS_H
#define EV_JOBS_H

#include <libpq-fe.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { JOBS_EXPORTS = 0, JOBS_REPORTS = 1 } jobs_kind_t;

typedef struct jobs_s jobs_t;

/* A claimed job. Strings are owned by the job (NULL for SQL NULL). */
typedef struct jobs_job_s {
    char id[40];
    int attempts;          /* claims so far, this one included */
    char *parameters;      /* JSON text of "parameters" */
    char *format;          /* exports: CSV | JSON | XLSX */
    char *destination_url; /* exports: "destinationUrl" */
    char *report_id;       /* exports: "reportId" */
    char *type;            /* reports: the ReportType */
    char *name;            /* reports: "name" */
    char old_status[16];   /* PENDING, or PROCESSING for a reclaimed job */
} jobs_job_t;

void jobs_job_free(jobs_job_t *job);

/* Connects to conninfo. worker_id names this worker in the row ("leasedBy") and in
 * the audit log; actor is the stage name written as actorId ("exports", "reports").
 * Returns NULL with errstr filled on failure. */
jobs_t *jobs_new(const char *conninfo, jobs_kind_t kind, const char *actor,
                 const char *worker_id, int lease_seconds, int max_attempts, char *errstr,
                 size_t errstr_size);
void jobs_destroy(jobs_t *jobs);

/* LISTEN on the table's channel (evpipe_exports / evpipe_reports). Returns 0 or -1. */
int jobs_listen(jobs_t *jobs, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Restricts every later claim to the rows that are claimable now (PENDING, or
 * PROCESSING with an expired lease): what `--until-caught-up` processes. Sets *n to
 * their number. Returns 0 or -1. */
int jobs_snapshot(jobs_t *jobs, long long *n, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Marks FAILED every PROCESSING row whose lease expired after max_attempts claims
 * (its worker died every time). Sets *n (may be NULL). Returns 0 or -1. */
int jobs_fail_exhausted(jobs_t *jobs, long long *n, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Claims the oldest claimable job: status PROCESSING, attempts + 1, a fresh lease,
 * startedAt = now, error cleared, audited as "claim" (or "reclaim"). Returns 0 with
 * *job set (caller frees with jobs_job_free) or NULL when there is none, or -1. */
int jobs_claim(jobs_t *jobs, jobs_job_t **job, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Extends the lease of a job this worker holds. Returns 0, 1 when the job is no
 * longer this worker's (lease lost and reclaimed, or changed by someone else), -1 on
 * a database error. Calls at most once per lease_seconds/4 do any work; others return
 * 0 at once, so the caller may call it as often as it likes. */
int jobs_renew(jobs_t *jobs, const jobs_job_t *job, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Moves a job this worker holds from PROCESSING to status (an ExportStatus or
 * ReportStatus name) with error (NULL = none), clears the lease, and writes the audit
 * row (action = lowercase status, changes = {"status": {"old", "new"}, "error",
 * "attempts", "worker"}). extra_set, when not NULL, is a constant SQL fragment of
 * further assignments (", \"fileUrl\" = $5, …") whose parameters $5.. are
 * extra_values[0..n_extra-1] (text, NULL = SQL NULL). Returns 0, 1 when the job is no
 * longer this worker's (nothing written), -1 on error. */
int jobs_finish(jobs_t *jobs, const jobs_job_t *job, const char *status, const char *error,
                const char *extra_set, int n_extra, const char *const *extra_values,
                char *errstr, size_t errstr_size) __attribute__((warn_unused_result));

/* Gives an interrupted job back: PENDING again, this claim not counted, audited as
 * "release". Returns 0, 1 when it was no longer this worker's, -1 on error. */
int jobs_release(jobs_t *jobs, const jobs_job_t *job, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Exports only: marks EXPIRED every COMPLETED export whose expiresAt has passed,
 * audited as "expire". Sets *n. The file URLs of the rows are passed to on_expired
 * (may be NULL) before the transaction commits; its return value is ignored. Returns
 * 0 or -1. */
int jobs_expire(jobs_t *jobs, long long *n, void (*on_expired)(const char *file_url, void *ud),
                void *ud, char *errstr, size_t errstr_size) __attribute__((warn_unused_result));

/* Waits up to timeout_ms for a notification on the channel. Returns 1 when one (or
 * more, all consumed) arrived, 0 on timeout or interruption by a signal, -1 on a
 * connection error. */
int jobs_wait(jobs_t *jobs, int timeout_ms);

/* True while the connection is up (for /readyz). Thread-safe: reads a flag. */
int jobs_connected(const jobs_t *jobs);

/* What both job stages do beside the lifecycle. */

/* Said by both job stages when a statement is refused for want of a grant ("permission
 * denied", SQLSTATE 42501): retrying cannot help, so they stop. */
#define JOBS_GRANT_HINT \
    "make this user a member of evpipe_exporter: docs/operations.md, \"Database roles\""

/* (Re)connects *conn, the worker's data connection, when it is not up: conninfo, with
 * TimeZone UTC, application_name app_name and JIT off. Returns 0 or -1 with errstr. */
int jobs_data_connect(PGconn **conn, const char *conninfo, const char *app_name, char *errstr,
                      size_t errstr_size) __attribute__((warn_unused_result));

/* Sleeps ms in 100 ms slices, returning early once *stop is set (by a signal handler). */
void jobs_sleep_ms(int64_t ms, const volatile sig_atomic_t *stop);

/* The retry backoff after ms: doubled, at most JOBS_BACKOFF_MAX_MS. */
#define JOBS_BACKOFF_MIN_MS 100
#define JOBS_BACKOFF_MAX_MS 10000
int64_t jobs_next_backoff(int64_t ms);

#endif
