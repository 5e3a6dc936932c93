/* export_query.h — writes the rows an export's parameters select into an export file:
 * the dataset's columns are looked up in the database catalog (an unknown column is
 * an error naming it, never SQL), the values are bound (set_config inside the
 * export's read-only transaction, read back with current_setting in the statement),
 * and the rows stream through `COPY (SELECT …) TO STDOUT` so memory stays flat
 * whatever their number. A "report" dataset writes the linked report's result. */
#ifndef EV_EXPORT_QUERY_H
#define EV_EXPORT_QUERY_H

#include <libpq-fe.h>
#include <stddef.h>

#include "sinks/export_file.h"
#include "transforms/export_params.h"

typedef enum {
    EXPORT_QUERY_OK = 0,
    EXPORT_QUERY_FAILED = -1,    /* cannot be exported: bad parameter, missing report, SQL error */
    EXPORT_QUERY_RETRY = -2,     /* the connection broke or the disk failed: try again later */
    EXPORT_QUERY_CANCELLED = -3, /* tick asked to stop */
} export_query_rc_t;

typedef struct export_query_req_s {
    const tf_export_params_t *params;
    const char *report_id; /* exports."reportId", or NULL */
    export_format_t format;
    const char *path;   /* the file to write (created or truncated) */
    const char *tmpdir; /* libxlsxwriter's scratch files */
    long sheet_rows;    /* XLSX rows per sheet, header included; 0 = Excel's limit */
    int (*tick)(void *ud); /* every few thousand rows; nonzero cancels */
    void *ud;
} export_query_req_t;

typedef struct export_query_out_s {
    long long rows, size;
    char sha256[65];
} export_query_out_t;

/* Writes the file for req on conn (TimeZone UTC, not inside a transaction). Returns
 * EXPORT_QUERY_OK with *out filled, or another code with errstr naming the problem
 * ("parameters.columns: unknown column 'x' of events (id, sessionId, …)"). */
export_query_rc_t export_query_write(PGconn *conn, const export_query_req_t *req,
                                     export_query_out_t *out, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

#endif
