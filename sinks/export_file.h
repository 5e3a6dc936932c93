/* export_file.h — writes one export file: CSV (RFC 4180, formula-injection safe), JSON
 * (one array of objects) or XLSX (libxlsxwriter in constant-memory mode, typed cells,
 * a new sheet when one is full), CSV and JSON optionally gzipped, row by row in
 * constant memory, with its size and sha256 known at the end. The file goes to a
 * path of the caller's (a private temp file): the upload sends its checksum with the
 * body, and a retry resends identical bytes. */
#ifndef EV_EXPORT_FILE_H
#define EV_EXPORT_FILE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { EXPORT_CSV, EXPORT_JSON, EXPORT_XLSX } export_format_t;

/* How a column's values are written. Values arrive as text (PostgreSQL's text form),
 * timestamps already as RFC 3339 UTC with milliseconds ("2026-01-02T03:04:05.678Z"). */
typedef enum {
    EXPORT_COL_TEXT,   /* string; CSV cells starting with = + - @ TAB CR get a ' */
    EXPORT_COL_NUMBER, /* JSON number, XLSX number; NaN and infinities become null */
    EXPORT_COL_BOOL,   /* "t"/"true" or "f"/"false" */
    EXPORT_COL_TIME,   /* JSON string, XLSX date-time cell */
    EXPORT_COL_JSON    /* JSON text: nested as is in JSON, a string in CSV and XLSX */
} export_col_kind_t;

/* Excel's row limit per sheet, header included. */
#define EXPORT_XLSX_SHEET_ROWS 1048576L
/* Excel's cell limit; longer strings are cut (at a UTF-8 boundary). */
#define EXPORT_XLSX_MAX_STRING 32767

typedef struct export_file_s export_file_t;

/* Opens path for writing (truncating it). names/kinds describe n_cols columns (copied;
 * NULL kinds = all TEXT). gzip is for CSV and JSON only. sheet_name names the XLSX
 * sheets ("events", "events (2)", …); sheet_rows (0 = EXPORT_XLSX_SHEET_ROWS) is the
 * rows per sheet, header included. tmpdir is where libxlsxwriter keeps its row
 * buffers. Writes the header (CSV, XLSX). Returns NULL with errstr. */
typedef struct export_file_opts_s {
    export_format_t format;
    bool gzip;
    const char *sheet_name;
    long sheet_rows;
    const char *tmpdir;
} export_file_opts_t;

export_file_t *export_file_open(const char *path, const export_file_opts_t *opts,
                                const char *const *names, const export_col_kind_t *kinds,
                                size_t n_cols, char *errstr, size_t errstr_size);

/* Writes one row: values[i] NUL-terminated, NULL = SQL NULL (an empty CSV cell; "" is
 * written as a quoted empty cell), booleans as PostgreSQL's t/f or true/false. kinds
 * overrides the columns' kinds for this row (NULL = theirs). Returns 0 or -1. */
int export_file_row(export_file_t *f, const char *const *values, const export_col_kind_t *kinds,
                    char *errstr, size_t errstr_size) __attribute__((warn_unused_result));

/* JSON only, with no row written: the file's content is this JSON document instead
 * of the array (a report's result). Returns 0 or -1. */
int export_file_raw_json(export_file_t *f, const char *json, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Finishes the file (closing bracket, gzip trailer, the XLSX zip) and frees f; then
 * sets *size and sha256_hex (lowercase) from the bytes as written. Returns 0, or -1
 * with errstr (f is freed either way). */
int export_file_close(export_file_t *f, long long *size, char sha256_hex[65], char *errstr,
                      size_t errstr_size) __attribute__((warn_unused_result));

/* Frees f without finishing the file (the caller removes it). NULL is a no-op. */
void export_file_abort(export_file_t *f);

/* Rows written so far (header excluded). */
long long export_file_rows(const export_file_t *f);

#endif
