/* export_query.c — see export_query.h. */
#include "consumers/export_query.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "transforms/export_cells.h"

#define MAX_TABLE_COLUMNS 128
#define TICK_ROWS 4096

typedef struct column_s {
    char name[64];
    char type[96]; /* format_type(): what a filter value is cast to */
    export_col_kind_t kind;
    bool is_json;
    bool is_time_tz;
} column_t;

typedef struct sqlbuf_s {
    char *s;
    size_t len, cap;
    bool oom;
} sqlbuf_t;

static void sb_add(sqlbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sqlbuf_t *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
}

static export_query_rc_t db_error(PGconn *conn, const char *what, PGresult *res, char *errstr,
                                  size_t n) {
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg) msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    snprintf(errstr, n, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
    return PQstatus(conn) == CONNECTION_OK ? EXPORT_QUERY_FAILED : EXPORT_QUERY_RETRY;
}

static void exec_quiet(PGconn *conn, const char *sql) { PQclear(PQexec(conn, sql)); }

/* The table's columns in table order. Returns the count, or -1. */
static int load_columns(PGconn *conn, const char *table, column_t *cols, char *errstr, size_t n) {
    const char *sql =
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, t.typcategory "
        "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum";
    const char *values[1] = {table};
    PGresult *res = PQexecParams(conn, sql, 1, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        db_error(conn, "reading the catalog", res, errstr, n);
        PQclear(res);
        return -1;
    }
    int rows = PQntuples(res);
    if (rows == 0 || rows > MAX_TABLE_COLUMNS) {
        snprintf(errstr, n, "table %s: %s", table, rows ? "too many columns" : "not found");
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < rows; i++) {
        column_t *c = &cols[i];
        memset(c, 0, sizeof(*c));
        snprintf(c->name, sizeof(c->name), "%s", PQgetvalue(res, i, 0));
        snprintf(c->type, sizeof(c->type), "%s", PQgetvalue(res, i, 1));
        const char *typname = PQgetvalue(res, i, 2), cat = PQgetvalue(res, i, 3)[0];
        c->is_json = strcmp(typname, "json") == 0 || strcmp(typname, "jsonb") == 0;
        c->is_time_tz = strcmp(typname, "timestamptz") == 0;
        if (c->is_json)
            c->kind = EXPORT_COL_JSON;
        else if (c->is_time_tz || strcmp(typname, "timestamp") == 0)
            c->kind = EXPORT_COL_TIME;
        else if (cat == 'N')
            c->kind = EXPORT_COL_NUMBER;
        else if (cat == 'B')
            c->kind = EXPORT_COL_BOOL;
        else
            c->kind = EXPORT_COL_TEXT;
    }
    PQclear(res);
    return rows;
}

static const column_t *find_column(const column_t *cols, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(cols[i].name, name) == 0) return &cols[i];
    return NULL;
}

static void list_columns(const column_t *cols, int n, char *out, size_t size) {
    size_t w = 0;
    out[0] = '\0';
    for (int i = 0; i < n && w + 1 < size; i++) {
        int k = snprintf(out + w, size - w, "%s%s", i ? ", " : "", cols[i].name);
        if (k < 0) break;
        w += (size_t)k;
    }
}

/* The select-list expression of a column: timestamps as RFC 3339 UTC with ms, the
 * rest in PostgreSQL's text form (the file writer types and encodes the cells). */
static void column_expr(sqlbuf_t *b, const column_t *c) {
    if (c->kind == EXPORT_COL_TIME)
        sb_add(b, "to_char(\"%s\"%s, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS \"%s\"", c->name,
               c->is_time_tz ? " AT TIME ZONE 'UTC'" : "", c->name);
    else
        sb_add(b, "\"%s\"", c->name);
}

typedef struct report_rows_s {
    export_file_t *f;
    char *errstr;
    size_t errstr_size;
} report_rows_t;

static int report_leaf(const char *path, const char *value, bool is_string, void *ud) {
    report_rows_t *r = ud;
    const char *v[2] = {path, value};
    export_col_kind_t kinds[2] = {EXPORT_COL_TEXT, EXPORT_COL_TEXT};
    if (value && !is_string)
        kinds[1] = strcmp(value, "true") == 0 || strcmp(value, "false") == 0 ? EXPORT_COL_BOOL
                                                                              : EXPORT_COL_NUMBER;
    return export_file_row(r->f, v, kinds, r->errstr, r->errstr_size) == 0 ? 0 : 1;
}

static export_query_rc_t write_report(PGconn *conn, const export_query_req_t *req,
                                      const export_file_opts_t *fo, export_query_out_t *out,
                                      char *errstr, size_t n) {
    if (!req->report_id) {
        snprintf(errstr, n, "parameters.dataset: \"report\" needs the export's reportId");
        return EXPORT_QUERY_FAILED;
    }
    const char *values[1] = {req->report_id};
    PGresult *res = PQexecParams(conn,
                                 "SELECT \"status\"::text, \"result\"::text FROM \"reports\" "
                                 "WHERE \"id\" = $1::uuid",
                                 1, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        export_query_rc_t rc = db_error(conn, "reading the report", res, errstr, n);
        PQclear(res);
        return rc;
    }
    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "COMPLETED") != 0 ||
        PQgetisnull(res, 0, 1)) {
        if (PQntuples(res) == 0)
            snprintf(errstr, n, "report %s does not exist", req->report_id);
        else
            snprintf(errstr, n, "report %s is %s: it has no result to export", req->report_id,
                     PQgetvalue(res, 0, 0));
        PQclear(res);
        return EXPORT_QUERY_FAILED;
    }
    const char *names[2] = {"path", "value"};
    export_file_t *f = export_file_open(req->path, fo, names, NULL, 2, errstr, n);
    if (!f) {
        PQclear(res);
        return EXPORT_QUERY_RETRY;
    }
    const char *json = PQgetvalue(res, 0, 1);
    int rc;
    if (req->format == EXPORT_JSON) {
        rc = export_file_raw_json(f, json, errstr, n);
    } else {
        report_rows_t r = {f, errstr, n};
        rc = tf_json_flatten(json, report_leaf, &r, errstr, n);
    }
    PQclear(res);
    if (rc != 0) {
        export_file_abort(f);
        return EXPORT_QUERY_RETRY;
    }
    /* A report is one document: its JSON export counts as one row. */
    out->rows = req->format == EXPORT_JSON ? 1 : export_file_rows(f);
    return export_file_close(f, &out->size, out->sha256, errstr, n) == 0 ? EXPORT_QUERY_OK
                                                                         : EXPORT_QUERY_RETRY;
}

/* Checks the parameters against the catalog and builds the COPY statement and the
 * settings it reads. Returns 0 or -1 (FAILED, errstr set). */
static int build_copy(const tf_export_params_t *p, const column_t *cols,
                      int n_cols, const column_t **sel, size_t *n_sel, sqlbuf_t *copy,
                      sqlbuf_t *settings, const char **setting_values, int *n_settings,
                      char (*time_values)[32], char *errstr, size_t n) {
    const char *ds = tf_export_dataset_name(p->dataset);
    char known[1200];
    if (p->columns) {
        for (size_t i = 0; i < p->n_columns; i++) {
            sel[i] = find_column(cols, n_cols, p->columns[i]);
            if (!sel[i]) {
                list_columns(cols, n_cols, known, sizeof(known));
                snprintf(errstr, n, "parameters.columns: unknown column '%s' of %s (%s)",
                         p->columns[i], ds, known);
                return -1;
            }
        }
        *n_sel = p->n_columns;
    } else {
        for (int i = 0; i < n_cols; i++) sel[i] = &cols[i];
        *n_sel = (size_t)n_cols;
    }
    const char *time_col = tf_export_time_column(p->dataset);
    sb_add(copy, "COPY (SELECT ");
    for (size_t i = 0; i < *n_sel; i++) {
        if (i) sb_add(copy, ", ");
        column_expr(copy, sel[i]);
    }
    sb_add(copy, " FROM \"%s\" WHERE true", tf_export_table(p->dataset));
    int k = 0;
    sb_add(settings, "SELECT true");
    if (p->has_from) {
        ev_format_rfc3339_ms(p->from_ms, time_values[0]);
        setting_values[k++] = time_values[0];
        sb_add(settings, ", set_config('evpipe.export_p%d', $%d, true)", k, k);
        sb_add(copy, " AND \"%s\" >= current_setting('evpipe.export_p%d')::timestamptz", time_col,
               k);
    }
    if (p->has_to) {
        ev_format_rfc3339_ms(p->to_ms, time_values[1]);
        setting_values[k++] = time_values[1];
        sb_add(settings, ", set_config('evpipe.export_p%d', $%d, true)", k, k);
        sb_add(copy, " AND \"%s\" < current_setting('evpipe.export_p%d')::timestamptz", time_col,
               k);
    }
    for (size_t i = 0; i < p->n_filters; i++) {
        const tf_export_filter_t *flt = &p->filters[i];
        const column_t *c = find_column(cols, n_cols, flt->column);
        if (!c) {
            list_columns(cols, n_cols, known, sizeof(known));
            snprintf(errstr, n, "parameters.filters: unknown column '%s' of %s (%s)", flt->column,
                     ds, known);
            return -1;
        }
        if (c->is_json) {
            snprintf(errstr, n, "parameters.filters.%s: a JSON column cannot be filtered on",
                     c->name);
            return -1;
        }
        if (!flt->value) {
            sb_add(copy, " AND \"%s\" IS NULL", c->name);
            continue;
        }
        setting_values[k++] = flt->value;
        sb_add(settings, ", set_config('evpipe.export_p%d', $%d, true)", k, k);
        /* Cast to the column's own type: the comparison can use the column's index. */
        sb_add(copy, " AND \"%s\" = current_setting('evpipe.export_p%d')::%s", c->name, k,
               c->type);
    }
    sb_add(copy, " ORDER BY \"%s\", \"id\") TO STDOUT", time_col);
    *n_settings = k;
    if (copy->oom || settings->oom) {
        snprintf(errstr, n, "out of memory");
        return -1;
    }
    return 0;
}

/* Each filter value must be a value of its column's type: checked one by one so the
 * error names the filter. On an error the transaction is aborted. */
static export_query_rc_t check_filters(PGconn *conn, const tf_export_params_t *p,
                                       const column_t *cols, int n_cols, int first_setting,
                                       char *errstr, size_t n) {
    int k = first_setting;
    for (size_t i = 0; i < p->n_filters; i++) {
        if (!p->filters[i].value) continue;
        const column_t *c = find_column(cols, n_cols, p->filters[i].column);
        char sql[256];
        k++;
        snprintf(sql, sizeof(sql), "SELECT current_setting('evpipe.export_p%d')::%s", k, c->type);
        PGresult *res = PQexec(conn, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            char what[128];
            snprintf(what, sizeof(what), "parameters.filters.%s", c->name);
            export_query_rc_t rc = db_error(conn, what, res, errstr, n);
            PQclear(res);
            return rc;
        }
        PQclear(res);
    }
    return EXPORT_QUERY_OK;
}

static void cancel_running(PGconn *conn) {
    PGcancel *c = PQgetCancel(conn);
    char buf[256];
    if (c) {
        PQcancel(c, buf, sizeof(buf));
        PQfreeCancel(c);
    }
}

export_query_rc_t export_query_write(PGconn *conn, const export_query_req_t *req,
                                     export_query_out_t *out, char *errstr, size_t n) {
    const tf_export_params_t *p = req->params;
    memset(out, 0, sizeof(*out));
    export_file_opts_t fo = {.format = req->format,
                             .gzip = p->gzip,
                             .sheet_name = tf_export_dataset_name(p->dataset),
                             .sheet_rows = req->sheet_rows,
                             .tmpdir = req->tmpdir};
    if (p->dataset == TF_EXPORT_REPORT) return write_report(conn, req, &fo, out, errstr, n);
    column_t *cols = calloc(MAX_TABLE_COLUMNS, sizeof(*cols));
    const column_t **sel = calloc(MAX_TABLE_COLUMNS + TF_EXPORT_MAX_COLUMNS, sizeof(*sel));
    const char *setting_values[2 + TF_EXPORT_MAX_FILTERS];
    char time_values[2][32];
    sqlbuf_t copy = {0}, settings = {0};
    export_file_t *f = NULL;
    export_query_rc_t rc = EXPORT_QUERY_FAILED;
    bool in_tx = false;
    if (!cols || !sel) {
        snprintf(errstr, n, "out of memory");
        rc = EXPORT_QUERY_RETRY;
        goto done;
    }
    int n_cols = load_columns(conn, tf_export_table(p->dataset), cols, errstr, n);
    if (n_cols < 0) {
        rc = PQstatus(conn) == CONNECTION_OK ? EXPORT_QUERY_FAILED : EXPORT_QUERY_RETRY;
        goto done;
    }
    size_t n_sel = 0;
    int n_settings = 0;
    if (build_copy(p, cols, n_cols, sel, &n_sel, &copy, &settings, setting_values,
                   &n_settings, time_values, errstr, n) != 0)
        goto done;

    /* One snapshot for the whole file; a read-only transaction holds no row locks. */
    PGresult *res = PQexec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = db_error(conn, "BEGIN", res, errstr, n);
        PQclear(res);
        goto done;
    }
    PQclear(res);
    in_tx = true;
    res = PQexecParams(conn, settings.s, n_settings, NULL, setting_values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = db_error(conn, "binding the parameters", res, errstr, n);
        PQclear(res);
        goto done;
    }
    PQclear(res);
    rc = check_filters(conn, p, cols, n_cols, (p->has_from ? 1 : 0) + (p->has_to ? 1 : 0),
                       errstr, n);
    if (rc != EXPORT_QUERY_OK) goto done;

    const char *names[MAX_TABLE_COLUMNS + TF_EXPORT_MAX_COLUMNS];
    export_col_kind_t kinds[MAX_TABLE_COLUMNS + TF_EXPORT_MAX_COLUMNS];
    for (size_t i = 0; i < n_sel; i++) names[i] = sel[i]->name, kinds[i] = sel[i]->kind;
    f = export_file_open(req->path, &fo, names, kinds, n_sel, errstr, n);
    if (!f) {
        rc = EXPORT_QUERY_RETRY;
        goto done;
    }
    res = PQexec(conn, copy.s);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        rc = db_error(conn, "export query", res, errstr, n);
        PQclear(res);
        goto done;
    }
    PQclear(res);
    char *fields[MAX_TABLE_COLUMNS + TF_EXPORT_MAX_COLUMNS];
    char *buf = NULL;
    int len;
    long long lines = 0;
    bool cancelled = false, write_failed = false;
    while ((len = PQgetCopyData(conn, &buf, 0)) > 0) {
        int wrc = 0;
        if (cancelled || write_failed) {
            /* draining after a cancel */
        } else if (tf_copy_text_split(buf, (size_t)len, fields, n_sel) != (int)n_sel) {
            snprintf(errstr, n, "export query: a row of unexpected shape");
            wrc = -1;
        } else {
            wrc = export_file_row(f, (const char *const *)fields, NULL, errstr, n);
        }
        PQfreemem(buf);
        buf = NULL;
        if (wrc != 0 && !write_failed) {
            write_failed = true;
            cancel_running(conn);
        }
        if (++lines % TICK_ROWS == 0 && !cancelled && !write_failed && req->tick &&
            req->tick(req->ud)) {
            cancelled = true;
            cancel_running(conn);
        }
    }
    if (len == -2) {
        rc = db_error(conn, "export query", NULL, errstr, n);
        goto done;
    }
    res = PQgetResult(conn);
    bool copy_ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!copy_ok && !cancelled && !write_failed) rc = db_error(conn, "export query", res, errstr, n);
    PQclear(res);
    while ((res = PQgetResult(conn)) != NULL) PQclear(res);
    if (cancelled) {
        snprintf(errstr, n, "cancelled");
        rc = EXPORT_QUERY_CANCELLED;
        goto done;
    }
    if (write_failed) {
        rc = EXPORT_QUERY_RETRY; /* the local disk, not the export: try again */
        goto done;
    }
    if (!copy_ok) goto done;
    exec_quiet(conn, "COMMIT");
    in_tx = false;
    out->rows = export_file_rows(f);
    rc = export_file_close(f, &out->size, out->sha256, errstr, n) == 0 ? EXPORT_QUERY_OK
                                                                       : EXPORT_QUERY_RETRY;
    f = NULL;
done:
    if (in_tx && PQstatus(conn) == CONNECTION_OK) exec_quiet(conn, "ROLLBACK");
    export_file_abort(f);
    free(copy.s);
    free(settings.s);
    free(cols);
    free(sel);
    return rc;
}
