/* test_export_params.c — export parameters (transforms/export_params.h): valid
 * parameters parsed to the exact values the query binds (range in ms, columns in
 * order, filters as text or null, gzip); every invalid one refused with a message
 * naming the parameter and the output zeroed; the dataset table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "transforms/export_params.h"

START_TEST(test_export_params_full) {
    tf_export_params_t p;
    char err[256];
    const char *json =
        "{\"dataset\": \"sessions\", \"from\": \"2026-03-01T01:00:00+01:00\", \"to\": "
        "\"2026-03-08T00:00:00.1239Z\", \"columns\": [\"startedAt\", \"id\", \"deviceType\"], "
        "\"filters\": {\"deviceType\": \"MOBILE\", \"duration\": 30, \"isBounce\": true, "
        "\"country\": null, \"bounce\": false}, \"compression\": \"gzip\"}";
    ck_assert_int_eq(tf_export_params_parse(json, &p, err, sizeof(err)), 0);
    ck_assert_int_eq(p.dataset, TF_EXPORT_SESSIONS);
    ck_assert(p.has_from && p.has_to);
    ck_assert_int_eq(p.from_ms, 1772323200000LL); /* 2026-03-01T00:00:00Z */
    ck_assert_int_eq(p.to_ms, 1772928000123LL);   /* fraction kept to the ms, truncated */
    ck_assert_uint_eq(p.n_columns, 3);
    ck_assert_str_eq(p.columns[0], "startedAt");
    ck_assert_str_eq(p.columns[1], "id");
    ck_assert_str_eq(p.columns[2], "deviceType");
    ck_assert_uint_eq(p.n_filters, 5);
    ck_assert_str_eq(p.filters[0].column, "deviceType");
    ck_assert_str_eq(p.filters[0].value, "MOBILE");
    ck_assert_str_eq(p.filters[1].value, "30");
    ck_assert_str_eq(p.filters[2].value, "true");
    ck_assert_ptr_null(p.filters[3].value);
    ck_assert_str_eq(p.filters[4].value, "false");
    ck_assert(p.gzip);
    tf_export_params_clear(&p);
    ck_assert_ptr_null(p.columns);
    ck_assert_uint_eq(p.n_filters, 0);
}
END_TEST

START_TEST(test_export_params_minimal_and_datasets) {
    static const struct {
        const char *name, *table, *time;
        tf_export_dataset_t d;
    } ds[] = {{"events", "analytics_events", "occurredAt", TF_EXPORT_EVENTS},
              {"sessions", "analytics_sessions", "startedAt", TF_EXPORT_SESSIONS},
              {"page_views", "page_views", "viewedAt", TF_EXPORT_PAGE_VIEWS},
              {"conversions", "conversion_events", "occurredAt", TF_EXPORT_CONVERSIONS},
              {"metric_snapshots", "metric_snapshots", "periodStart", TF_EXPORT_METRIC_SNAPSHOTS},
              {"funnel_results", "funnel_results", "periodStart", TF_EXPORT_FUNNEL_RESULTS}};
    for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++) {
        char json[128], err[256];
        tf_export_params_t p;
        snprintf(json, sizeof(json), "{\"dataset\": \"%s\", \"compression\": \"none\"}", ds[i].name);
        ck_assert_int_eq(tf_export_params_parse(json, &p, err, sizeof(err)), 0);
        ck_assert_int_eq(p.dataset, ds[i].d);
        ck_assert(!p.has_from && !p.has_to && !p.gzip);
        ck_assert_ptr_null(p.columns);
        ck_assert_str_eq(tf_export_dataset_name(p.dataset), ds[i].name);
        ck_assert_str_eq(tf_export_table(p.dataset), ds[i].table);
        ck_assert_str_eq(tf_export_time_column(p.dataset), ds[i].time);
        tf_export_params_clear(&p);
    }
    tf_export_params_t p;
    char err[256];
    ck_assert_int_eq(tf_export_params_parse("{\"dataset\": \"report\"}", &p, err, sizeof(err)), 0);
    ck_assert_int_eq(p.dataset, TF_EXPORT_REPORT);
    ck_assert_ptr_null(tf_export_table(p.dataset));
    tf_export_params_clear(&p);
    ck_assert_ptr_null(tf_export_dataset_name(TF_EXPORT_DATASET_COUNT));
}
END_TEST

static const struct {
    const char *json, *error;
} invalid[] = {
    {NULL, "parameters.dataset: required"},
    {"[]", "parameters: must be a JSON object"},
    {"{\"dataset\": ", "parameters: must be a JSON object"},
    {"{\"dataset\": \"users\"}", "parameters.dataset: unknown dataset 'users' (events,"},
    {"{\"dataset\": 3}", "parameters.dataset: unknown dataset ''"},
    {"{\"dataset\": \"events\", \"from\": \"2026-03-01\"}", "parameters.from: must be an RFC 3339"},
    {"{\"dataset\": \"events\", \"to\": 1772326800000}", "parameters.to: must be an RFC 3339"},
    {"{\"dataset\": \"events\", \"from\": \"2026-03-02T00:00:00Z\", \"to\": \"2026-03-02T00:00:00Z\"}",
     "parameters.to: must be after parameters.from"},
    {"{\"dataset\": \"events\", \"columns\": []}", "parameters.columns: must be an array of 1 to"},
    {"{\"dataset\": \"events\", \"columns\": \"id\"}", "parameters.columns: must be an array"},
    {"{\"dataset\": \"events\", \"columns\": [\"id\", 2]}", "parameters.columns[1]: must be a column name"},
    {"{\"dataset\": \"events\", \"columns\": [\"a\\\"b\"]}", "parameters.columns[0]: must be a column name"},
    {"{\"dataset\": \"events\", \"columns\": [\"id\", \"id\"]}", "parameters.columns: 'id' listed twice"},
    {"{\"dataset\": \"events\", \"columns\": [\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]}",
     "parameters.columns[0]: must be a column name"},
    {"{\"dataset\": \"events\", \"filters\": [1]}", "parameters.filters: must be an object"},
    {"{\"dataset\": \"events\", \"filters\": {\"a b\": 1}}", "parameters.filters: 'a b' is not a column name"},
    {"{\"dataset\": \"events\", \"filters\": {\"type\": [\"PAGE_VIEW\"]}}",
     "parameters.filters.type: must be a string, number, boolean or null"},
    {"{\"dataset\": \"events\", \"compression\": \"zip\"}", "parameters.compression: must be \"gzip\" or \"none\""},
    {"{\"dataset\": \"events\", \"limit\": 5}", "parameters.limit: unknown parameter"},
    {"{\"dataset\": \"report\", \"from\": \"2026-03-01T00:00:00Z\"}",
     "parameters: a report export takes no from, to, filters or columns"},
};

START_TEST(test_export_params_invalid) {
    tf_export_params_t p;
    char err[256];
    ck_assert_int_eq(tf_export_params_parse(invalid[_i].json, &p, err, sizeof(err)), -1);
    ck_assert_msg(strncmp(err, invalid[_i].error, strlen(invalid[_i].error)) == 0,
                  "case %d: '%s' does not start with '%s'", _i, err, invalid[_i].error);
    ck_assert_ptr_null(p.columns);
    ck_assert_ptr_null(p.filters);
    ck_assert_uint_eq(p.n_columns + p.n_filters, 0);
}
END_TEST

START_TEST(test_export_params_limits) {
    char json[8192] = "{\"dataset\": \"events\", \"columns\": [";
    for (int i = 0; i < TF_EXPORT_MAX_COLUMNS + 1; i++)
        snprintf(json + strlen(json), sizeof(json) - strlen(json), "%s\"c%d\"", i ? ", " : "", i);
    strcat(json, "]}");
    tf_export_params_t p;
    char err[256];
    ck_assert_int_eq(tf_export_params_parse(json, &p, err, sizeof(err)), -1);
    snprintf(json, sizeof(json), "{\"dataset\": \"events\", \"filters\": {");
    for (int i = 0; i < TF_EXPORT_MAX_FILTERS + 1; i++)
        snprintf(json + strlen(json), sizeof(json) - strlen(json), "%s\"c%d\": 1", i ? ", " : "", i);
    strcat(json, "}}");
    ck_assert_int_eq(tf_export_params_parse(json, &p, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "parameters.filters: must be an object of at most 20 column: value");
}
END_TEST

static Suite *export_params_suite(void) {
    Suite *s = suite_create("export_params");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_export_params_full);
    tcase_add_test(tc, test_export_params_minimal_and_datasets);
    tcase_add_loop_test(tc, test_export_params_invalid, 0, (int)(sizeof(invalid) / sizeof(invalid[0])));
    tcase_add_test(tc, test_export_params_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(export_params_suite()) == 0 ? 0 : 1; }
