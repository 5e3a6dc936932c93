/* export_params.h — the `parameters` of an exports row (SPEC §5): which dataset, the
 * range on its time column, equality filters, the columns and their order, and
 * compression. Pure: parsing and shape checks only; column names are checked against
 * the database catalog by the exporter (consumers/export_query.h). */
#ifndef TF_EXPORT_PARAMS_H
#define TF_EXPORT_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TF_EXPORT_EVENTS,
    TF_EXPORT_SESSIONS,
    TF_EXPORT_PAGE_VIEWS,
    TF_EXPORT_CONVERSIONS,
    TF_EXPORT_METRIC_SNAPSHOTS,
    TF_EXPORT_FUNNEL_RESULTS,
    TF_EXPORT_REPORT,
    TF_EXPORT_DATASET_COUNT
} tf_export_dataset_t;

#define TF_EXPORT_MAX_COLUMNS 100
#define TF_EXPORT_MAX_FILTERS 20
#define TF_EXPORT_MAX_NAME 63 /* PostgreSQL's identifier length */

typedef struct tf_export_filter_s {
    char *column;
    char *value; /* the value as text (numbers as written, booleans true/false); NULL = null */
} tf_export_filter_t;

typedef struct tf_export_params_s {
    tf_export_dataset_t dataset;
    bool has_from, has_to;
    int64_t from_ms, to_ms; /* [from, to) on the dataset's time column */
    char **columns;         /* NULL when not given: every column in table order */
    size_t n_columns;
    tf_export_filter_t *filters;
    size_t n_filters;
    bool gzip; /* "compression": "gzip" */
} tf_export_params_t;

/* Parses json (NULL or "" = {}). Returns 0 and fills *out (free with
 * tf_export_params_clear), or -1 with errstr naming the bad parameter
 * ("parameters.dataset: unknown dataset 'x' (events, sessions, …)"); *out is then
 * zeroed. Unknown keys are errors. */
int tf_export_params_parse(const char *json, tf_export_params_t *out, char *errstr,
                           size_t errstr_size) __attribute__((warn_unused_result));
void tf_export_params_clear(tf_export_params_t *p);

/* "events", "sessions", … */
const char *tf_export_dataset_name(tf_export_dataset_t d);
/* The table and its time column ("analytics_events", "occurredAt"); NULL for REPORT. */
const char *tf_export_table(tf_export_dataset_t d);
const char *tf_export_time_column(tf_export_dataset_t d);

#endif
