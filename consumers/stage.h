/* stage.h — the loop every downstream stage (metrics, funnels) shares.
 *
 * A stage is driven by PostgreSQL, not by a topic: every change to the stored rows
 * marks its UTC hours in dirty_hours for each stage, in the writer's own transaction
 * (migration 0003, docs/downstream-changes.md). The loop, per batch, in ONE
 * transaction:
 *   1. once the oldest waiting mark is --debounce-ms old, deletes up to --batch-marks
 *      of the stage's marks (FOR UPDATE SKIP LOCKED: instances never claim the same
 *      mark) and keeps
 *      their distinct hours in the temporary table claimed_hours("hourStart");
 *   2. takes the stage's transaction-level advisory lock, so two instances never
 *      compute the same period at once (the second waits, then its statements see
 *      what the first committed);
 *   3. calls the stage's process function, which recomputes every period holding a
 *      claimed hour and writes the results;
 *   4. commits. A crash before the commit leaves the marks in place (nothing half
 *      written, nothing skipped); a failed batch is rolled back and retried.
 * Around it: connection with backoff (logged once per state change), the
 * bots.excludeFromMetrics setting (a change marks every stored hour, so everything
 * is recomputed), --recompute FROM..TO (marks every hour of the range),
 * --until-caught-up (exit 0 once every mark that existed at start is absorbed),
 * /metrics /healthz /readyz, SIGTERM/SIGINT between batches. */
#ifndef EV_STAGE_H
#define EV_STAGE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/metrics.h"

/* What a stage's process function gets for one batch. */
typedef struct stage_batch_s {
    PGconn *conn;       /* inside the batch's transaction; TimeZone is UTC */
    size_t n_hours;     /* rows of the temporary table claimed_hours("hourStart") */
    bool exclude_bots;  /* bots.excludeFromMetrics as applied */
} stage_batch_t;

typedef struct stage_def_s {
    const char *name;           /* the downstream_stages row, e.g. "metrics" */
    const char *command;        /* "evpipe metrics" */
    const char *summary;        /* --help paragraph */
    const char *epilog;         /* --help examples, or NULL */
    int default_metrics_port;   /* 9102 metrics, 9103 funnels */
    /* Recomputes every period that holds a claimed hour. Returns 0, or -1 with errstr
     * filled (the batch is rolled back and retried after a backoff). */
    int (*process)(const stage_batch_t *batch, void *ud, char *errstr, size_t errstr_size);
    /* Optional, called between batches outside any transaction (e.g. funnels looks
     * for new or changed definitions). Returns 0, or -1 with errstr (retried). */
    int (*tick)(PGconn *conn, bool exclude_bots, void *ud, char *errstr, size_t errstr_size);
    /* Optional: registers the stage's own Prometheus series once at start. */
    void (*init_metrics)(ev_metrics_t *metrics, void *ud);
    void *ud;
} stage_def_t;

/* Runs the stage with the command line argv (argv[0] = the subcommand). Returns the
 * process exit code: 0 done (stopped or caught up), 1 fatal error, 2 usage. */
int stage_main(const stage_def_t *def, int argc, char **argv);

/* Runs one statement with text parameters (NULL = SQL NULL). Returns the number of
 * rows it affected or returned (>= 0), or -1 with errstr holding PostgreSQL's
 * message. */
long long stage_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                     char *errstr, size_t errstr_size);

/* Marks, for stage, every UTC hour in [from, to) (RFC 3339 or any PostgreSQL
 * timestamptz literal), as --recompute does. Returns the number of hours marked, or
 * -1 with errstr. */
long long stage_mark_range(PGconn *conn, const char *stage, const char *from, const char *to,
                           char *errstr, size_t errstr_size);

#endif
