/* report_params.h — the `parameters` of a reports row (docs/reports.md): parsing and
 * validation per ReportType, into values the report queries bind as $n parameters
 * (nothing here is ever pasted into SQL). Pure: no I/O, no clock. */
#ifndef TF_REPORT_PARAMS_H
#define TF_REPORT_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TF_REPORT_TRAFFIC = 0,
    TF_REPORT_CONVERSIONS,
    TF_REPORT_APPOINTMENTS,
    TF_REPORT_PRODUCTS,
    TF_REPORT_FUNNELS,
    TF_REPORT_COHORTS,
    TF_REPORT_CUSTOM,
    TF_REPORT_TYPE_COUNT
} tf_report_type_t;

#define TF_REPORT_LIMIT_DEFAULT 10
#define TF_REPORT_LIMIT_MAX 1000
#define TF_REPORT_MAX_KEYS 50       /* funnelIds / metrics entries */
#define TF_REPORT_MAX_KEY_BYTES 256 /* one funnel id or name, one metric key */
#define TF_REPORT_MAX_DIMENSIONS 8

/* "TRAFFIC" etc.; NULL for an out-of-range value. */
const char *tf_report_type_name(tf_report_type_t type);
/* Exact, case-sensitive ReportType name; 0 and *out set, or -1 when unknown. */
int tf_report_type_parse(const char *name, tf_report_type_t *out);

/* Parsed parameters: a plain value. The char * members are owned (NULL = not given);
 * free them with tf_report_params_clear. */
typedef struct tf_report_params_s {
    tf_report_type_t type;
    bool has_range;           /* from/to given (always true except FUNNELS) */
    int64_t from_ms, to_ms;   /* [from, to), from < to */
    char from[32], to[32];    /* the same as RFC 3339 UTC with ms ("" without range) */
    const char *device_type;  /* DeviceType name (static string), or NULL for all */
    long long limit;          /* top-N length: TRAFFIC, CONVERSIONS, PRODUCTS */
    const char *period;       /* MetricPeriod name (static): FUNNELS, CUSTOM; else NULL */
    char *keys_json;          /* FUNNELS funnelIds, CUSTOM metrics: JSON array of strings */
    char *dimensions_json;    /* CUSTOM dimensions as a JSON object of strings ({} none) */
} tf_report_params_t;

/* Parses json (the parameters column as text; NULL or "" = {}) for a report of type
 * type_name. Accepted keys per type (any other key is an error naming it):
 *   all but FUNNELS: from, to (RFC 3339 with a zone, required, from < to),
 *                    deviceType (DESKTOP | TABLET | MOBILE | BOT | UNKNOWN);
 *   TRAFFIC, CONVERSIONS, PRODUCTS: limit (integer 1..1000, default 10);
 *   FUNNELS: from, to (optional, both or neither), funnelIds (array of 1..50 non-empty
 *            strings: funnel ids or names), period (DAILY | WEEKLY | MONTHLY, default
 *            DAILY);
 *   CUSTOM: metrics (array of 1..50 metric keys, required), period (MetricPeriod,
 *           default DAILY), dimensions (object of up to 8 string values, names and
 *           values of [A-Za-z0-9_.-]); deviceType is the same as dimensions.deviceType.
 * Returns 0 and fills *out (caller clears it), or -1 with errstr naming the parameter
 * ("parameters.to: must be after parameters.from") and *out zeroed. */
int tf_report_params_parse(const char *type_name, const char *json, tf_report_params_t *out,
                           char *errstr, size_t errstr_size) __attribute__((warn_unused_result));

/* Frees the owned members and zeroes *p. NULL is a no-op. */
void tf_report_params_clear(tf_report_params_t *p);

#endif
