/* export_cells.h — the cell-level encodings of export files, pure: PostgreSQL's COPY
 * text format decoded into fields, CSV cells per RFC 4180 with spreadsheet formula
 * injection neutralised (OWASP "CSV Injection"), and a JSON document flattened into
 * (path, value) rows for the table formats. */
#ifndef TF_EXPORT_CELLS_H
#define TF_EXPORT_CELLS_H

#include <stdbool.h>
#include <stddef.h>

/* Splits one COPY text-format row (tab separated, "\N" = NULL, backslash escapes;
 * the trailing newline, when present, is ignored) in place; row[len] must be
 * writable (libpq's COPY buffers end with a NUL): fields[i] points into row
 * (NUL-terminated after decoding) or is NULL for SQL NULL. Returns the number of
 * fields, or -1 when the row has more than max_fields fields or a dangling
 * backslash. */
int tf_copy_text_split(char *row, size_t len, char **fields, size_t max_fields);

/* True when a spreadsheet would read the cell as a formula: it starts with = + - @,
 * a tab or a carriage return. Such cells are written with a leading apostrophe. */
bool tf_csv_needs_neutralising(const char *s, size_t n);

/* Upper bound of the bytes tf_csv_cell writes for an n-byte value. */
#define TF_CSV_CELL_MAX(n) (2 * (n) + 3)

/* Encodes one CSV cell into out (at least TF_CSV_CELL_MAX(n) bytes): quoted when it
 * holds a comma, quote, CR or LF (quotes doubled), leading apostrophe when
 * neutralise and tf_csv_needs_neutralising. NULL (s == NULL) and "" both become an
 * empty cell, "" quoted so they stay apart. Returns the bytes written (no NUL). */
size_t tf_csv_cell(const char *s, size_t n, bool neutralise, char *out);

/* Calls row(path, value, is_string, ud) for every leaf of the JSON document text, in
 * document order: path is "a.b[2].c" (keys as they are; "$" for a scalar document),
 * value the leaf's text (strings unquoted, numbers as written, true/false, NULL for
 * null). Stops when row returns nonzero and returns that. Returns -1 with errstr when
 * json does not parse. Empty objects and arrays give no row. */
int tf_json_flatten(const char *json, int (*row)(const char *path, const char *value,
                                                  bool is_string, void *ud),
                    void *ud, char *errstr, size_t errstr_size);

#endif
