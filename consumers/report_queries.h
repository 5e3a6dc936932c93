/* report_queries.h — the SQL of each ReportType (docs/reports.md): one statement per
 * report that builds the whole result document in PostgreSQL (jsonb_build_object /
 * jsonb_agg), every parameter bound as $n, never pasted into the text. */
#ifndef EV_REPORT_QUERIES_H
#define EV_REPORT_QUERIES_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "transforms/report_params.h"

/* Called about every 200 ms while a statement runs. Returns 0 to go on, non-zero to
 * cancel the statement (the run then returns REPORT_QUERY_CANCELLED). */
typedef int (*report_query_tick_fn)(void *ud);

typedef enum {
    REPORT_QUERY_OK = 0,
    REPORT_QUERY_FAILED = -1,    /* the report cannot be computed: bad key, SQL error */
    REPORT_QUERY_RETRY = -2,     /* the connection broke: try again later */
    REPORT_QUERY_CANCELLED = -3, /* tick asked to stop */
} report_query_rc_t;

/* Computes the result of a report with parameters p on conn (TimeZone UTC expected,
 * not inside a transaction). exclude_bots is bots.excludeFromMetrics: sessions of
 * device type BOT and everything that belongs to them are left out when true.
 * Returns REPORT_QUERY_OK and sets *json (the result as JSON text, malloc'd, caller
 * frees), or another code with errstr filled (for FAILED it names the problem, e.g.
 * "parameters.metrics: unknown metric key 'x'"). */
report_query_rc_t report_query_run(PGconn *conn, const tf_report_params_t *p, bool exclude_bots,
                                   report_query_tick_fn tick, void *ud, char **json,
                                   char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

#endif
