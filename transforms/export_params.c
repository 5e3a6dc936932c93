/* export_params.c — see export_params.h. */
#include "transforms/export_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "transforms/event.h"

static const struct {
    const char *name, *table, *time_column;
} k_datasets[TF_EXPORT_DATASET_COUNT] = {
    [TF_EXPORT_EVENTS] = {"events", "analytics_events", "occurredAt"},
    [TF_EXPORT_SESSIONS] = {"sessions", "analytics_sessions", "startedAt"},
    [TF_EXPORT_PAGE_VIEWS] = {"page_views", "page_views", "viewedAt"},
    [TF_EXPORT_CONVERSIONS] = {"conversions", "conversion_events", "occurredAt"},
    [TF_EXPORT_METRIC_SNAPSHOTS] = {"metric_snapshots", "metric_snapshots", "periodStart"},
    [TF_EXPORT_FUNNEL_RESULTS] = {"funnel_results", "funnel_results", "periodStart"},
    [TF_EXPORT_REPORT] = {"report", NULL, NULL},
};

const char *tf_export_dataset_name(tf_export_dataset_t d) {
    return (unsigned)d < TF_EXPORT_DATASET_COUNT ? k_datasets[d].name : NULL;
}
const char *tf_export_table(tf_export_dataset_t d) {
    return (unsigned)d < TF_EXPORT_DATASET_COUNT ? k_datasets[d].table : NULL;
}
const char *tf_export_time_column(tf_export_dataset_t d) {
    return (unsigned)d < TF_EXPORT_DATASET_COUNT ? k_datasets[d].time_column : NULL;
}

void tf_export_params_clear(tf_export_params_t *p) {
    for (size_t i = 0; i < p->n_columns; i++) free(p->columns[i]);
    free(p->columns);
    for (size_t i = 0; i < p->n_filters; i++) {
        free(p->filters[i].column);
        free(p->filters[i].value);
    }
    free(p->filters);
    memset(p, 0, sizeof(*p));
}

/* A column name: 1–63 bytes, printable ASCII without quotes (checked against the
 * catalog later; this only keeps error messages and logs sane). */
static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > TF_EXPORT_MAX_NAME) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"') return 0;
    return 1;
}

static int parse_time(yajl_val v, const char *key, int64_t *out, char *errstr, size_t n) {
    const char *s = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
    if (s == NULL || tf_event_parse_rfc3339(s, strlen(s), out) != 0) {
        snprintf(errstr, n, "parameters.%s: must be an RFC 3339 date-time with a zone", key);
        return -1;
    }
    return 0;
}

static int parse_columns(yajl_val v, tf_export_params_t *p, char *errstr, size_t n) {
    if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0 || v->u.array.len > TF_EXPORT_MAX_COLUMNS) {
        snprintf(errstr, n, "parameters.columns: must be an array of 1 to %d column names",
                 TF_EXPORT_MAX_COLUMNS);
        return -1;
    }
    p->columns = calloc(v->u.array.len, sizeof(*p->columns));
    if (!p->columns) goto oom;
    for (size_t i = 0; i < v->u.array.len; i++) {
        yajl_val c = v->u.array.values[i];
        const char *name = YAJL_IS_STRING(c) ? YAJL_GET_STRING(c) : NULL;
        if (!name || !name_ok(name)) {
            snprintf(errstr, n, "parameters.columns[%zu]: must be a column name", i);
            return -1;
        }
        for (size_t j = 0; j < p->n_columns; j++)
            if (strcmp(p->columns[j], name) == 0) {
                snprintf(errstr, n, "parameters.columns: '%s' listed twice", p->columns[j]);
                return -1;
            }
        if (!(p->columns[p->n_columns] = strdup(name))) goto oom;
        p->n_columns++;
    }
    return 0;
oom:
    snprintf(errstr, n, "out of memory");
    return -1;
}

static int parse_filters(yajl_val v, tf_export_params_t *p, char *errstr, size_t n) {
    if (!YAJL_IS_OBJECT(v) || v->u.object.len > TF_EXPORT_MAX_FILTERS) {
        snprintf(errstr, n, "parameters.filters: must be an object of at most %d column: value",
                 TF_EXPORT_MAX_FILTERS);
        return -1;
    }
    p->filters = calloc(v->u.object.len + 1, sizeof(*p->filters));
    if (!p->filters) goto oom;
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *col = v->u.object.keys[i];
        yajl_val x = v->u.object.values[i];
        if (!name_ok(col)) {
            snprintf(errstr, n, "parameters.filters: '%.64s' is not a column name", col);
            return -1;
        }
        tf_export_filter_t *f = &p->filters[p->n_filters];
        if (!(f->column = strdup(col))) goto oom;
        p->n_filters++;
        if (YAJL_IS_NULL(x)) continue;
        const char *text = YAJL_IS_STRING(x) ? YAJL_GET_STRING(x)
                           : YAJL_IS_NUMBER(x) ? YAJL_GET_NUMBER(x)
                           : YAJL_IS_TRUE(x)   ? "true"
                           : YAJL_IS_FALSE(x)  ? "false"
                                               : NULL;
        if (!text) {
            snprintf(errstr, n, "parameters.filters.%s: must be a string, number, boolean or null",
                     col);
            return -1;
        }
        if (!(f->value = strdup(text))) goto oom;
    }
    return 0;
oom:
    snprintf(errstr, n, "out of memory");
    return -1;
}

int tf_export_params_parse(const char *json, tf_export_params_t *out, char *errstr,
                           size_t errstr_size) {
    memset(out, 0, sizeof(*out));
    char perr[256];
    yajl_val root = yajl_tree_parse(json && *json ? json : "{}", perr, sizeof(perr));
    int rc = -1;
    if (!root || !YAJL_IS_OBJECT(root)) {
        snprintf(errstr, errstr_size, "parameters: must be a JSON object");
        goto done;
    }
    bool have_dataset = false;
    for (size_t i = 0; i < root->u.object.len; i++) {
        const char *key = root->u.object.keys[i];
        yajl_val v = root->u.object.values[i];
        if (strcmp(key, "dataset") == 0) {
            const char *s = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
            if (!s) s = "";
            int d = -1;
            for (int k = 0; k < TF_EXPORT_DATASET_COUNT; k++)
                if (strcmp(s, k_datasets[k].name) == 0) d = k;
            if (d < 0) {
                snprintf(errstr, errstr_size,
                         "parameters.dataset: unknown dataset '%.64s' (events, sessions, "
                         "page_views, conversions, metric_snapshots, funnel_results, report)",
                         s);
                goto done;
            }
            out->dataset = (tf_export_dataset_t)d;
            have_dataset = true;
        } else if (strcmp(key, "from") == 0) {
            if (parse_time(v, key, &out->from_ms, errstr, errstr_size) != 0) goto done;
            out->has_from = true;
        } else if (strcmp(key, "to") == 0) {
            if (parse_time(v, key, &out->to_ms, errstr, errstr_size) != 0) goto done;
            out->has_to = true;
        } else if (strcmp(key, "columns") == 0) {
            if (parse_columns(v, out, errstr, errstr_size) != 0) goto done;
        } else if (strcmp(key, "filters") == 0) {
            if (parse_filters(v, out, errstr, errstr_size) != 0) goto done;
        } else if (strcmp(key, "compression") == 0) {
            const char *c = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
            if (c && strcmp(c, "gzip") == 0) {
                out->gzip = true;
            } else if (!YAJL_IS_NULL(v) && !(c && strcmp(c, "none") == 0)) {
                snprintf(errstr, errstr_size,
                         "parameters.compression: must be \"gzip\" or \"none\"");
                goto done;
            }
        } else {
            snprintf(errstr, errstr_size, "parameters.%.64s: unknown parameter", key);
            goto done;
        }
    }
    if (!have_dataset) {
        snprintf(errstr, errstr_size, "parameters.dataset: required");
        goto done;
    }
    if (out->has_from && out->has_to && out->from_ms >= out->to_ms) {
        snprintf(errstr, errstr_size,
                 "parameters.to: must be after parameters.from (the range is [from, to))");
        goto done;
    }
    if (out->dataset == TF_EXPORT_REPORT &&
        (out->has_from || out->has_to || out->n_filters || out->columns)) {
        snprintf(errstr, errstr_size,
                 "parameters: a report export takes no from, to, filters or columns");
        goto done;
    }
    rc = 0;
done:
    yajl_tree_free(root);
    if (rc != 0) tf_export_params_clear(out);
    return rc;
}
