/* pg_sink_internal.h — what the files of the PostgreSQL sink share (sinks/pg_sink.c:
 * connection, errors, statements; sinks/pg_copy.c: array parameters and COPY text
 * encoding; sinks/pg_sink_load.c: the session-state loader; sinks/pg_sink_write.c: the
 * batch write). Private to them: names start with pgs_. */
#ifndef EVPIPE_SINKS_PG_SINK_INTERNAL_H
#define EVPIPE_SINKS_PG_SINK_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "sinks/pg_sink.h"

#define COPY_CHUNK_BYTES (1u << 20)   /* COPY data leaves in chunks of at most this */
#define PARAM_MAX_BYTES (256u << 20)  /* cap of one array parameter (load requests, ids) */
#define TS_MIN_MS 0LL                 /* load windows are clamped to event time range */
#define TS_MAX_MS 253402300799999LL   /* 9999-12-31T23:59:59.999Z */

/* Epoch milliseconds (bigint) to TIMESTAMPTZ, exactly (to_timestamp alone goes through a
 * double of the whole value and loses milliseconds near the end of the range). */
#define TS(x) "(to_timestamp((" x ") / 1000) + ((" x ") % 1000) * INTERVAL '1 millisecond')"
/* TIMESTAMPTZ(3) to epoch milliseconds (bigint), exactly. */
#define MS(x) "(extract(epoch FROM " x ") * 1000)::bigint"

/* The prepared statements (their SQL: k_stmts in pg_sink.c). */
enum {
    ST_UPSERT_SESSIONS,
    ST_EXISTING,
    ST_DELETE_SESSIONS,
    ST_UPSERT_OFFSETS,
    ST_READ_OFFSETS,
    ST_LOAD_SESSIONS,
    ST_LOAD_EVENTS,
    ST_LOAD_EARLIER,
    ST_LOAD_LATEST,
    ST_COUNT
};

/* A text buffer that grows up to max bytes, then refuses (overflow set). */
typedef struct textbuf_s {
    char *data;
    size_t len, cap, max;
    bool overflow, oom;
} textbuf_t;

struct sink_pg_s {
    char *conninfo;
    PGconn *conn;
    bool ready;      /* staging tables and prepared statements exist on conn */
    bool closing;    /* the server sent a FATAL message outside any query: it is closing
                        conn (pg_terminate_backend, shutdown), even if EOF is not read yet */
    char *copy_buf;  /* COPY_CHUNK_BYTES */
    size_t copy_len;
    const char *copy_failed; /* why the COPY is aborted at its end (a chunk could not be
                                sent, no random bytes), or NULL */
    unsigned char random[4096]; /* pool for row ids; random_pos bytes of it are used */
    size_t random_pos;
    bool row_start;
    bool race_transient; /* copying new rows: a unique violation on k_race_keys is a race */
    bool probe_stored;   /* look for stored eventIds before copying (see sink_pg_write) */
    sink_pg_stats_t stats;
};

/* Rows changed by the open write transaction, added to the stats at COMMIT. */
typedef struct counts_s {
    uint64_t sessions, deleted, events, repointed, page_views, conversions, offsets;
} counts_t;

/* ---- pg_sink.c ---- */
void pgs_set_error(sink_pg_error_t *err, sink_pg_status_t status, const char *sqlstate,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void pgs_clear_error(sink_pg_error_t *err);
int pgs_result_error(sink_pg_t *s, const PGresult *res, const char *what,
                     sink_pg_error_t *err);
int pgs_ensure_connection(sink_pg_t *s, sink_pg_error_t *err);
void pgs_abandon_transaction(sink_pg_t *s);
void pgs_count_error(sink_pg_t *s, const sink_pg_error_t *err);
int pgs_exec_simple(sink_pg_t *s, const char *sql, const char *what, sink_pg_error_t *err);
int pgs_exec_prepared(sink_pg_t *s, int stmt, const char *const *params, uint64_t *rows,
                      sink_pg_error_t *err);
int pgs_exec_planned(sink_pg_t *s, const char *sql, const char *what, uint64_t *rows,
                     sink_pg_error_t *err);
int pgs_query_prepared(sink_pg_t *s, int stmt, const char *const *params, PGresult **out,
                       sink_pg_error_t *err);

/* ---- pg_copy.c ---- */
void pgs_tb_init(textbuf_t *tb, size_t max);
void pgs_tb_free(textbuf_t *tb);
void pgs_tb_str(textbuf_t *tb, const char *s);
void pgs_tb_next(textbuf_t *tb);
void pgs_tb_close(textbuf_t *tb);
void pgs_tb_quoted(textbuf_t *tb, const char *s);
void pgs_tb_i64(textbuf_t *tb, long long v);
int pgs_tb_check(const textbuf_t *tb, const char *what, sink_pg_error_t *err);
void pgs_copy_row_end(sink_pg_t *s);
void pgs_col_null(sink_pg_t *s);
void pgs_col_text(sink_pg_t *s, const char *str);
void pgs_col_i64(sink_pg_t *s, int64_t v);
void pgs_col_bool(sink_pg_t *s, bool v);
void pgs_col_double(sink_pg_t *s, double v);
void pgs_col_ts(sink_pg_t *s, int64_t ms);
void pgs_col_new_uuid(sink_pg_t *s);
int pgs_copy_begin(sink_pg_t *s, const char *sql, sink_pg_error_t *err);
int pgs_copy_end(sink_pg_t *s, const char *what, uint64_t *rows, sink_pg_error_t *err);

#endif
