/* test_report_params.c — report parameters (transforms/report_params.h): every type's
 * valid parameters parsed to the exact values the queries bind; every invalid one
 * refused with a message naming the parameter and the output zeroed; canonical JSON of
 * key lists and dimensions (escaping, deviceType merged). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "transforms/report_params.h"

#define RANGE "\"from\": \"2026-03-01T00:00:00Z\", \"to\": \"2026-03-08T00:00:00Z\""

typedef struct {
    const char *type, *json;
    const char *from, *to;   /* "" = no range */
    const char *device;      /* NULL = none */
    long long limit;
    const char *period;      /* NULL = none */
    const char *keys;        /* keys_json or NULL */
    const char *dimensions;  /* dimensions_json or NULL */
} valid_case_t;

static const valid_case_t valid_cases[] = {
    {"TRAFFIC", "{" RANGE "}", "2026-03-01T00:00:00.000Z", "2026-03-08T00:00:00.000Z", NULL, 10,
     NULL, NULL, NULL},
    {"TRAFFIC", "{" RANGE ", \"deviceType\": \"MOBILE\", \"limit\": 3}",
     "2026-03-01T00:00:00.000Z", "2026-03-08T00:00:00.000Z", "MOBILE", 3, NULL, NULL, NULL},
    /* zones normalised to UTC, fractions kept to the ms */
    {"CONVERSIONS",
     "{\"from\": \"2026-03-01T01:30:00.123456+01:30\", \"to\": \"2026-03-01t00:00:01z\", "
     "\"limit\": 1000}",
     "2026-03-01T00:00:00.123Z", "2026-03-01T00:00:01.000Z", NULL, 1000, NULL, NULL, NULL},
    {"APPOINTMENTS", "{" RANGE ", \"deviceType\": \"BOT\"}", "2026-03-01T00:00:00.000Z",
     "2026-03-08T00:00:00.000Z", "BOT", 10, NULL, NULL, NULL},
    {"PRODUCTS", "{" RANGE ", \"limit\": 1}", "2026-03-01T00:00:00.000Z",
     "2026-03-08T00:00:00.000Z", NULL, 1, NULL, NULL, NULL},
    {"COHORTS", "{" RANGE ", \"deviceType\": \"UNKNOWN\"}", "2026-03-01T00:00:00.000Z",
     "2026-03-08T00:00:00.000Z", "UNKNOWN", 10, NULL, NULL, NULL},
    {"FUNNELS", NULL, "", "", NULL, 10, "DAILY", NULL, NULL},
    {"FUNNELS", "", "", "", NULL, 10, "DAILY", NULL, NULL},
    {"FUNNELS", "{\"funnelIds\": [\"shop\", \"a\\\"b\\\\c\"], \"period\": \"MONTHLY\"}", "", "",
     NULL, 10, "MONTHLY", "[\"shop\",\"a\\\"b\\\\c\"]", NULL},
    {"FUNNELS", "{" RANGE ", \"period\": \"WEEKLY\"}", "2026-03-01T00:00:00.000Z",
     "2026-03-08T00:00:00.000Z", NULL, 10, "WEEKLY", NULL, NULL},
    {"CUSTOM", "{" RANGE ", \"metrics\": [\"sessions\", \"revenue{currency=EUR}\"]}",
     "2026-03-01T00:00:00.000Z", "2026-03-08T00:00:00.000Z", NULL, 10, "DAILY",
     "[\"sessions\",\"revenue{currency=EUR}\"]", "{}"},
    {"CUSTOM",
     "{" RANGE ", \"metrics\": [\"session_duration.avg\"], \"period\": \"HOURLY\", "
     "\"dimensions\": {\"currency\": \"EUR\"}, \"deviceType\": \"TABLET\"}",
     "2026-03-01T00:00:00.000Z", "2026-03-08T00:00:00.000Z", "TABLET", 10, "HOURLY",
     "[\"session_duration.avg\"]", "{\"currency\":\"EUR\",\"deviceType\":\"TABLET\"}"},
    {"CUSTOM",
     "{" RANGE ", \"metrics\": [\"visitors\"], \"period\": \"YEARLY\", \"dimensions\": "
     "{\"deviceType\": \"DESKTOP\"}, \"deviceType\": \"DESKTOP\"}",
     "2026-03-01T00:00:00.000Z", "2026-03-08T00:00:00.000Z", "DESKTOP", 10, "YEARLY",
     "[\"visitors\"]", "{\"deviceType\":\"DESKTOP\"}"},
};

static void assert_str_or_null(const char *got, const char *want, const char *what) {
    if (!want)
        ck_assert_msg(got == NULL, "%s: '%s', expected NULL", what, got);
    else
        ck_assert_msg(got && strcmp(got, want) == 0, "%s: '%s', expected '%s'", what,
                      got ? got : "(null)", want);
}

START_TEST(test_report_params_valid) {
    const valid_case_t *c = &valid_cases[_i];
    tf_report_params_t p;
    char err[256] = "";
    ck_assert_msg(tf_report_params_parse(c->type, c->json, &p, err, sizeof(err)) == 0,
                  "case %d: %s", _i, err);
    tf_report_type_t t;
    ck_assert_int_eq(tf_report_type_parse(c->type, &t), 0);
    ck_assert_int_eq(p.type, t);
    ck_assert_int_eq(p.has_range, *c->from != '\0');
    ck_assert_str_eq(p.from, c->from);
    ck_assert_str_eq(p.to, c->to);
    assert_str_or_null(p.device_type, c->device, "deviceType");
    ck_assert_int_eq(p.limit, c->limit);
    assert_str_or_null(p.period, c->period, "period");
    assert_str_or_null(p.keys_json, c->keys, "keys");
    assert_str_or_null(p.dimensions_json, c->dimensions, "dimensions");
    if (p.has_range) ck_assert(p.from_ms < p.to_ms);
    tf_report_params_clear(&p);
    ck_assert_ptr_null(p.keys_json);
    tf_report_params_clear(NULL);
}
END_TEST

typedef struct {
    const char *type, *json, *message_part;
} invalid_case_t;

static const invalid_case_t invalid_cases[] = {
    {"NOPE", "{" RANGE "}", "type: unknown ReportType 'NOPE'"},
    {NULL, "{" RANGE "}", "type: unknown ReportType"},
    {"traffic", "{" RANGE "}", "unknown ReportType"},
    {"TRAFFIC", "[1]", "parameters: must be a JSON object"},
    {"TRAFFIC", "{\"from\": ", "parameters: must be a JSON object"},
    {"TRAFFIC", "{}", "parameters.from: required"},
    {"TRAFFIC", "{\"from\": \"2026-03-01T00:00:00Z\"}", "parameters.to: required"},
    {"TRAFFIC", "{\"to\": \"2026-03-01T00:00:00Z\"}", "parameters.from: required"},
    {"FUNNELS", "{\"to\": \"2026-03-01T00:00:00Z\"}", "parameters.from: required when the other"},
    {"TRAFFIC", "{\"from\": \"2026-03-01\", \"to\": \"2026-03-08T00:00:00Z\"}",
     "parameters.from: must be an RFC 3339 time"},
    {"TRAFFIC", "{\"from\": \"2026-03-01T00:00:00\", \"to\": \"2026-03-08T00:00:00Z\"}",
     "parameters.from: must be an RFC 3339"},
    {"TRAFFIC", "{\"from\": \"2026-03-01T00:00:00Z\", \"to\": 1772928000000}",
     "parameters.to: must be an RFC 3339"},
    {"TRAFFIC", "{\"from\": \"2026-02-30T00:00:00Z\", \"to\": \"2026-03-08T00:00:00Z\"}",
     "parameters.from"},
    {"TRAFFIC", "{\"from\": \"2026-03-08T00:00:00Z\", \"to\": \"2026-03-08T00:00:00Z\"}",
     "parameters.to: must be after parameters.from"},
    {"COHORTS", "{\"from\": \"2026-03-08T00:00:00Z\", \"to\": \"2026-03-08T00:00:00+01:00\"}",
     "parameters.to: must be after parameters.from"},
    {"TRAFFIC", "{" RANGE ", \"deviceType\": \"PHONE\"}",
     "parameters.deviceType: must be one of DESKTOP | TABLET | MOBILE | BOT | UNKNOWN"},
    {"TRAFFIC", "{" RANGE ", \"deviceType\": \"mobile\"}", "parameters.deviceType"},
    {"TRAFFIC", "{" RANGE ", \"deviceType\": null}", "parameters.deviceType"},
    {"TRAFFIC", "{" RANGE ", \"limit\": 0}", "parameters.limit: must be an integer from 1 to 1000"},
    {"TRAFFIC", "{" RANGE ", \"limit\": 1001}", "parameters.limit"},
    {"TRAFFIC", "{" RANGE ", \"limit\": 2.5}", "parameters.limit"},
    {"TRAFFIC", "{" RANGE ", \"limit\": \"5\"}", "parameters.limit"},
    {"TRAFFIC", "{" RANGE ", \"colour\": \"red\"}",
     "parameters.colour: unknown parameter for a TRAFFIC report"},
    {"APPOINTMENTS", "{" RANGE ", \"limit\": 5}",
     "parameters.limit: unknown parameter for a APPOINTMENTS report"},
    {"FUNNELS", "{\"deviceType\": \"MOBILE\"}", "parameters.deviceType: unknown parameter"},
    {"TRAFFIC", "{" RANGE ", \"metrics\": [\"sessions\"]}", "parameters.metrics: unknown"},
    {"TRAFFIC", "{" RANGE ", \"from\": \"2026-03-01T00:00:00Z\"}", "parameters.from: given twice"},
    {"FUNNELS", "{\"funnelIds\": []}", "parameters.funnelIds: must be an array of 1 to 50"},
    {"FUNNELS", "{\"funnelIds\": \"shop\"}", "parameters.funnelIds: must be an array"},
    {"FUNNELS", "{\"funnelIds\": [\"shop\", 3]}", "parameters.funnelIds[1]: must be a non-empty"},
    {"FUNNELS", "{\"funnelIds\": [\"\"]}", "parameters.funnelIds[0]"},
    {"FUNNELS", "{\"period\": \"HOURLY\"}",
     "parameters.period: must be one of DAILY | WEEKLY | MONTHLY"},
    {"CUSTOM", "{" RANGE "}", "parameters.metrics: required"},
    {"CUSTOM", "{\"metrics\": [\"sessions\"]}", "parameters.from: required"},
    {"CUSTOM", "{" RANGE ", \"metrics\": [\"sessions; DROP TABLE x\"]}",
     "parameters.metrics[0]: not a metric key"},
    {"CUSTOM", "{" RANGE ", \"metrics\": [\"sessions\", \"a'b\"]}", "parameters.metrics[1]"},
    {"CUSTOM", "{" RANGE ", \"metrics\": [\"sessions\"], \"period\": \"DECADE\"}",
     "parameters.period: must be one of HOURLY"},
    {"CUSTOM", "{" RANGE ", \"metrics\": [\"sessions\"], \"dimensions\": [1]}",
     "parameters.dimensions: must be an object"},
    {"CUSTOM", "{" RANGE ", \"metrics\": [\"sessions\"], \"dimensions\": {\"currency\": 1}}",
     "parameters.dimensions: 'currency' must name a string"},
    {"CUSTOM", "{" RANGE ", \"metrics\": [\"sessions\"], \"dimensions\": {\"a b\": \"x\"}}",
     "parameters.dimensions"},
    {"CUSTOM",
     "{" RANGE ", \"metrics\": [\"sessions\"], \"dimensions\": {\"deviceType\": \"PHONE\"}}",
     "parameters.dimensions.deviceType"},
    {"CUSTOM",
     "{" RANGE ", \"metrics\": [\"sessions\"], \"dimensions\": {\"deviceType\": \"BOT\"}, "
     "\"deviceType\": \"MOBILE\"}",
     "parameters.dimensions.deviceType"},
    {"CUSTOM", "{" RANGE ", \"metrics\": [\"sessions\"], \"limit\": 3}",
     "parameters.limit: unknown parameter for a CUSTOM report"},
};

START_TEST(test_report_params_invalid) {
    const invalid_case_t *c = &invalid_cases[_i];
    tf_report_params_t p;
    memset(&p, 0x5a, sizeof(p));
    char err[256] = "";
    ck_assert_msg(tf_report_params_parse(c->type, c->json, &p, err, sizeof(err)) == -1,
                  "case %d accepted", _i);
    ck_assert_msg(strstr(err, c->message_part) != NULL, "case %d: '%s' lacks '%s'", _i, err,
                  c->message_part);
    ck_assert_ptr_null(p.keys_json);
    ck_assert_ptr_null(p.dimensions_json);
    ck_assert_int_eq(p.has_range, 0);
}
END_TEST

START_TEST(test_report_params_key_limits) {
    char json[32768];
    size_t len = (size_t)snprintf(json, sizeof(json), "{\"funnelIds\": [");
    for (int i = 0; i < TF_REPORT_MAX_KEYS; i++)
        len += (size_t)snprintf(json + len, sizeof(json) - len, "%s\"f%d\"", i ? "," : "", i);
    snprintf(json + len, sizeof(json) - len, "]}");
    tf_report_params_t p;
    char err[256];
    ck_assert_int_eq(tf_report_params_parse("FUNNELS", json, &p, err, sizeof(err)), 0);
    ck_assert(strncmp(p.keys_json, "[\"f0\",\"f1\",", 11) == 0);
    tf_report_params_clear(&p);
    /* one more is refused */
    snprintf(json + len, sizeof(json) - len, ",\"x\"]}");
    ck_assert_int_eq(tf_report_params_parse("FUNNELS", json, &p, err, sizeof(err)), -1);
    ck_assert(strstr(err, "parameters.funnelIds") != NULL);
    /* a 256-byte name is accepted, 257 refused */
    char name[300];
    memset(name, 'n', 257);
    name[256] = '\0';
    snprintf(json, sizeof(json), "{\"funnelIds\": [\"%s\"]}", name);
    ck_assert_int_eq(tf_report_params_parse("FUNNELS", json, &p, err, sizeof(err)), 0);
    tf_report_params_clear(&p);
    name[256] = 'n';
    name[257] = '\0';
    snprintf(json, sizeof(json), "{\"funnelIds\": [\"%s\"]}", name);
    ck_assert_int_eq(tf_report_params_parse("FUNNELS", json, &p, err, sizeof(err)), -1);
    /* control characters are escaped in the canonical JSON */
    ck_assert_int_eq(tf_report_params_parse("FUNNELS", "{\"funnelIds\": [\"a\\nb\"]}", &p, err,
                                            sizeof(err)),
                     0);
    ck_assert_str_eq(p.keys_json, "[\"a\\u000ab\"]");
    tf_report_params_clear(&p);
}
END_TEST

START_TEST(test_report_params_type_names_round_trip) {
    for (int i = 0; i < TF_REPORT_TYPE_COUNT; i++) {
        tf_report_type_t t;
        ck_assert_int_eq(tf_report_type_parse(tf_report_type_name((tf_report_type_t)i), &t), 0);
        ck_assert_int_eq(t, i);
    }
    ck_assert_ptr_null(tf_report_type_name(TF_REPORT_TYPE_COUNT));
    ck_assert_str_eq(tf_report_type_name(TF_REPORT_COHORTS), "COHORTS");
}
END_TEST

START_TEST(test_report_params_error_truncated_to_buffer) {
    tf_report_params_t p;
    char err[8];
    ck_assert_int_eq(tf_report_params_parse("TRAFFIC", "{}", &p, err, sizeof(err)), -1);
    ck_assert_int_eq(strlen(err), 7);
}
END_TEST

static Suite *report_params_suite(void) {
    Suite *s = suite_create("report_params");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_report_params_valid, 0,
                        (int)(sizeof(valid_cases) / sizeof(valid_cases[0])));
    tcase_add_loop_test(tc, test_report_params_invalid, 0,
                        (int)(sizeof(invalid_cases) / sizeof(invalid_cases[0])));
    tcase_add_test(tc, test_report_params_key_limits);
    tcase_add_test(tc, test_report_params_type_names_round_trip);
    tcase_add_test(tc, test_report_params_error_truncated_to_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(report_params_suite()) == 0 ? 0 : 1; }
