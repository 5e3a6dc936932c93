/* test_settings.c — runtime settings of SPEC §4: defaults, every tracking_configs key
 * applied from valid JSON, every invalid value refused with a message naming the key
 * and the settings untouched, unknown keys, and the --conversion-types list parser. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "transforms/event.h"
#include "transforms/settings.h"

#define BIT(t) (1u << (TF_EVENT_##t))
#define DEFAULT_TYPES                                                                              \
    (BIT(PURCHASE) | BIT(APPOINTMENT_COMPLETE) | BIT(LEAD) | BIT(SIGN_UP) | BIT(FORM_SUBMIT))
#define ALL_TYPES ((1u << TF_EVENT_TYPE_COUNT) - 1u)

/* Settings that differ from the defaults in every field, to see that nothing is reset. */
static tf_settings_t sentinel(void) {
    tf_settings_t s = {.timeout_seconds = 777,
                       .max_duration_seconds = 7777,
                       .conversion_types = BIT(CLICK) | BIT(SCROLL),
                       .bots_exclude_from_metrics = false};
    return s;
}

static void assert_settings_eq(const tf_settings_t *got, const tf_settings_t *want) {
    ck_assert_int_eq(got->timeout_seconds, want->timeout_seconds);
    ck_assert_int_eq(got->max_duration_seconds, want->max_duration_seconds);
    ck_assert_uint_eq(got->conversion_types, want->conversion_types);
    ck_assert_int_eq(got->bots_exclude_from_metrics, want->bots_exclude_from_metrics);
}

/* ---- defaults and keys ---------------------------------------------------------------- */

START_TEST(test_settings_defaults_match_spec) {
    tf_settings_t s = sentinel();
    tf_settings_default(&s);
    ck_assert_int_eq(s.timeout_seconds, 1800);
    ck_assert_int_eq(s.max_duration_seconds, 86400);
    ck_assert(s.bots_exclude_from_metrics);
    /* Exactly the five conversion types of SPEC §4, checked by name. */
    static const char *const conversions[] = {"PURCHASE", "APPOINTMENT_COMPLETE", "LEAD", "SIGN_UP",
                                              "FORM_SUBMIT"};
    uint32_t want = 0;
    for (size_t i = 0; i < sizeof(conversions) / sizeof(conversions[0]); i++) {
        tf_event_type_t t;
        ck_assert_int_eq(tf_event_type_parse(conversions[i], strlen(conversions[i]), &t), 0);
        want |= 1u << t;
    }
    ck_assert_uint_eq(s.conversion_types, want);
    ck_assert_uint_eq(s.conversion_types, DEFAULT_TYPES);
    int bits = 0;
    for (int t = 0; t < 32; t++) bits += (s.conversion_types >> t) & 1u;
    ck_assert_int_eq(bits, 5);
}
END_TEST

START_TEST(test_settings_keys_are_the_spec_keys) {
    ck_assert_str_eq(tf_settings_keys[0], "session.timeoutSeconds");
    ck_assert_str_eq(tf_settings_keys[1], "session.maxDurationSeconds");
    ck_assert_str_eq(tf_settings_keys[2], "conversion.types");
    ck_assert_str_eq(tf_settings_keys[3], "bots.excludeFromMetrics");
    ck_assert_ptr_null(tf_settings_keys[4]);
}
END_TEST

/* ---- valid values --------------------------------------------------------------------- */

typedef struct {
    const char *key, *json;
    int field; /* 0 timeout, 1 max duration, 2 conversion types, 3 bots */
    long long number;
    uint32_t types;
    int flag;
} valid_case_t;

static const valid_case_t valid_cases[] = {
    {"session.timeoutSeconds", "900", 0, 900, 0, 0},
    {"session.timeoutSeconds", "1", 0, 1, 0, 0},
    {"session.timeoutSeconds", "604800", 0, 604800, 0, 0},
    {"session.timeoutSeconds", " \n 1800\t", 0, 1800, 0, 0},
    {"session.maxDurationSeconds", "43200", 1, 43200, 0, 0},
    {"session.maxDurationSeconds", "60", 1, 60, 0, 0},
    {"session.maxDurationSeconds", "2592000", 1, 2592000, 0, 0},
    {"conversion.types", "[\"PURCHASE\"]", 2, 0, BIT(PURCHASE), 0},
    {"conversion.types", "[\"LEAD\", \"SIGN_UP\", \"LEAD\"]", 2, 0, BIT(LEAD) | BIT(SIGN_UP), 0},
    {"conversion.types", "[\"PAGE_VIEW\",\"CUSTOM\"]", 2, 0, BIT(PAGE_VIEW) | BIT(CUSTOM), 0},
    {"conversion.types", "[\"ADD_TO_CART\",\"CHECKOUT_START\",\"APPOINTMENT_START\"]", 2, 0,
     BIT(ADD_TO_CART) | BIT(CHECKOUT_START) | BIT(APPOINTMENT_START), 0},
    {"bots.excludeFromMetrics", "false", 3, 0, 0, 0},
    {"bots.excludeFromMetrics", "true", 3, 0, 0, 1},
};

START_TEST(test_settings_apply_valid_value) {
    const valid_case_t *c = &valid_cases[_i];
    tf_settings_t s = sentinel(), want = sentinel();
    switch (c->field) {
    case 0:
        want.timeout_seconds = c->number;
        break;
    case 1:
        want.max_duration_seconds = c->number;
        break;
    case 2:
        want.conversion_types = c->types;
        break;
    default:
        want.bots_exclude_from_metrics = c->flag;
        break;
    }
    char errstr[256] = "untouched";
    int rc = tf_settings_apply(&s, c->key, c->json, errstr, sizeof(errstr));
    ck_assert_msg(rc == 0, "%s = %s: rc %d (%s)", c->key, c->json, rc, errstr);
    assert_settings_eq(&s, &want);
}
END_TEST

/* Every EventType name is accepted, and conversion.types replaces the set (no union). */
START_TEST(test_settings_apply_conversion_types_all_names_and_replace) {
    char json[1024] = "[";
    for (int t = 0; t < TF_EVENT_TYPE_COUNT; t++) {
        size_t n = strlen(json);
        snprintf(json + n, sizeof(json) - n, "%s\"%s\"", t ? "," : "",
                 tf_event_type_name((tf_event_type_t)t));
    }
    size_t n = strlen(json);
    snprintf(json + n, sizeof(json) - n, "]");
    tf_settings_t s;
    tf_settings_default(&s);
    char errstr[256];
    ck_assert_int_eq(tf_settings_apply(&s, "conversion.types", json, errstr, sizeof(errstr)), 0);
    ck_assert_uint_eq(s.conversion_types, ALL_TYPES);
    ck_assert_int_eq(
        tf_settings_apply(&s, "conversion.types", "[\"VIDEO_PLAY\"]", errstr, sizeof(errstr)), 0);
    ck_assert_uint_eq(s.conversion_types, BIT(VIDEO_PLAY));
    ck_assert_int_eq(s.timeout_seconds, 1800);
    ck_assert_int_eq(s.max_duration_seconds, 86400);
    ck_assert(s.bots_exclude_from_metrics);
}
END_TEST

/* Keys applied one after the other accumulate; a refused value keeps what came before. */
START_TEST(test_settings_apply_sequence_accumulates) {
    tf_settings_t s;
    tf_settings_default(&s);
    char errstr[256];
    ck_assert_int_eq(tf_settings_apply(&s, "session.timeoutSeconds", "600", errstr, sizeof(errstr)),
                     0);
    ck_assert_int_eq(
        tf_settings_apply(&s, "session.maxDurationSeconds", "7200", errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(
        tf_settings_apply(&s, "session.timeoutSeconds", "604801", errstr, sizeof(errstr)), -1);
    ck_assert_int_eq(
        tf_settings_apply(&s, "bots.excludeFromMetrics", "false", errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(
        tf_settings_apply(&s, "conversion.types", "[\"LEAD\"]", errstr, sizeof(errstr)), 0);
    tf_settings_t want = {600, 7200, BIT(LEAD), false};
    assert_settings_eq(&s, &want);
}
END_TEST

/* ---- invalid values ------------------------------------------------------------------- */

typedef struct {
    const char *key, *json; /* json NULL: no value at all */
    const char *message;    /* the exact message, or with a trailing '*' its prefix */
} invalid_case_t;

static const invalid_case_t invalid_cases[] = {
    /* session.timeoutSeconds: integer 1..604800 */
    {"session.timeoutSeconds", "0", "session.timeoutSeconds: 0 is outside 1..604800"},
    {"session.timeoutSeconds", "-0", "session.timeoutSeconds: 0 is outside 1..604800"},
    {"session.timeoutSeconds", "-5", "session.timeoutSeconds: -5 is outside 1..604800"},
    {"session.timeoutSeconds", "604801", "session.timeoutSeconds: 604801 is outside 1..604800"},
    {"session.timeoutSeconds", "99999999999999999999",
     "session.timeoutSeconds: 99999999999999999999 is outside 1..604800"},
    {"session.timeoutSeconds", "-99999999999999999999",
     "session.timeoutSeconds: -99999999999999999999 is outside 1..604800"},
    {"session.timeoutSeconds", "1800.5",
     "session.timeoutSeconds: expected a whole number of seconds, got 1800.5"},
    {"session.timeoutSeconds", "1800.0",
     "session.timeoutSeconds: expected a whole number of seconds, got 1800.0"},
    {"session.timeoutSeconds", "1.8e3",
     "session.timeoutSeconds: expected a whole number of seconds, got 1.8e3"},
    {"session.timeoutSeconds", "\"1800\"",
     "session.timeoutSeconds: expected a whole number of seconds, got a string"},
    {"session.timeoutSeconds", "true",
     "session.timeoutSeconds: expected a whole number of seconds, got true"},
    {"session.timeoutSeconds", "null",
     "session.timeoutSeconds: expected a whole number of seconds, got null"},
    {"session.timeoutSeconds", "[1800]",
     "session.timeoutSeconds: expected a whole number of seconds, got an array"},
    {"session.timeoutSeconds", "{\"seconds\": 1800}",
     "session.timeoutSeconds: expected a whole number of seconds, got an object"},
    {"session.timeoutSeconds", "", "session.timeoutSeconds: value is not JSON (*"},
    {"session.timeoutSeconds", NULL, "session.timeoutSeconds: value is not JSON (*"},
    {"session.timeoutSeconds", "thirty minutes", "session.timeoutSeconds: value is not JSON (*"},
    {"session.timeoutSeconds", "1800 1", "session.timeoutSeconds: value is not JSON (*"},
    {"session.timeoutSeconds", "1800,", "session.timeoutSeconds: value is not JSON (*"},
    /* session.maxDurationSeconds: integer 60..2592000 */
    {"session.maxDurationSeconds", "59", "session.maxDurationSeconds: 59 is outside 60..2592000"},
    {"session.maxDurationSeconds", "2592001",
     "session.maxDurationSeconds: 2592001 is outside 60..2592000"},
    {"session.maxDurationSeconds", "\"86400\"",
     "session.maxDurationSeconds: expected a whole number of seconds, got a string"},
    {"session.maxDurationSeconds", "false",
     "session.maxDurationSeconds: expected a whole number of seconds, got false"},
    {"session.maxDurationSeconds", "null",
     "session.maxDurationSeconds: expected a whole number of seconds, got null"},
    {"session.maxDurationSeconds", "86400.25",
     "session.maxDurationSeconds: expected a whole number of seconds, got 86400.25"},
    {"session.maxDurationSeconds", "{", "session.maxDurationSeconds: value is not JSON (*"},
    /* conversion.types: non-empty array of EventType names */
    {"conversion.types", "[]",
     "conversion.types: expected a non-empty array of EventType names, got an empty array"},
    {"conversion.types", "\"PURCHASE\"",
     "conversion.types: expected a non-empty array of EventType names, got a string"},
    {"conversion.types", "null",
     "conversion.types: expected a non-empty array of EventType names, got null"},
    {"conversion.types", "{\"PURCHASE\": true}",
     "conversion.types: expected a non-empty array of EventType names, got an object"},
    {"conversion.types", "8",
     "conversion.types: expected a non-empty array of EventType names, got a number"},
    {"conversion.types", "[\"NOPE\"]", "conversion.types[0]: 'NOPE' is not an EventType name"},
    {"conversion.types", "[\"PURCHASE\", \"purchase\"]",
     "conversion.types[1]: 'purchase' is not an EventType name"},
    {"conversion.types", "[\"PURCHASE\", \" LEAD\"]",
     "conversion.types[1]: ' LEAD' is not an EventType name"},
    {"conversion.types", "[\"\"]", "conversion.types[0]: '' is not an EventType name"},
    {"conversion.types", "[\"PURCHASE\", 8]",
     "conversion.types[1]: expected an EventType name, got a number"},
    {"conversion.types", "[\"PURCHASE\", null]",
     "conversion.types[1]: expected an EventType name, got null"},
    {"conversion.types", "[[\"PURCHASE\"]]",
     "conversion.types[0]: expected an EventType name, got an array"},
    {"conversion.types", "PURCHASE", "conversion.types: value is not JSON (*"},
    {"conversion.types", "[\"PURCHASE\",]", "conversion.types: value is not JSON (*"},
    {"conversion.types", "[\"PURCHASE\"", "conversion.types: value is not JSON (*"},
    /* bots.excludeFromMetrics: true or false */
    {"bots.excludeFromMetrics", "1",
     "bots.excludeFromMetrics: expected true or false, got a number"},
    {"bots.excludeFromMetrics", "0",
     "bots.excludeFromMetrics: expected true or false, got a number"},
    {"bots.excludeFromMetrics", "\"true\"",
     "bots.excludeFromMetrics: expected true or false, got a string"},
    {"bots.excludeFromMetrics", "null",
     "bots.excludeFromMetrics: expected true or false, got null"},
    {"bots.excludeFromMetrics", "[true]",
     "bots.excludeFromMetrics: expected true or false, got an array"},
    {"bots.excludeFromMetrics", "yes", "bots.excludeFromMetrics: value is not JSON (*"},
    {"bots.excludeFromMetrics", "True", "bots.excludeFromMetrics: value is not JSON (*"},
};

START_TEST(test_settings_apply_invalid_value_refused) {
    const invalid_case_t *c = &invalid_cases[_i];
    const tf_settings_t before = sentinel();
    tf_settings_t s = before;
    char errstr[256] = "";
    int rc = tf_settings_apply(&s, c->key, c->json, errstr, sizeof(errstr));
    ck_assert_msg(rc == -1, "%s = %s: rc %d, expected -1", c->key, c->json ? c->json : "(NULL)",
                  rc);
    assert_settings_eq(&s, &before);
    /* Also from the defaults (a different starting point must not change either). */
    tf_settings_t d, dbefore;
    tf_settings_default(&d);
    dbefore = d;
    char errstr2[256] = "";
    ck_assert_int_eq(tf_settings_apply(&d, c->key, c->json, errstr2, sizeof(errstr2)), -1);
    assert_settings_eq(&d, &dbefore);
    ck_assert_str_eq(errstr2, errstr);

    size_t want_len = strlen(c->message);
    if (want_len && c->message[want_len - 1] == '*') {
        ck_assert_msg(strncmp(errstr, c->message, want_len - 1) == 0,
                      "%s = %s: message '%s' does not start with '%.*s'", c->key,
                      c->json ? c->json : "(NULL)", errstr, (int)(want_len - 1), c->message);
        /* yajl's multi-line description (with the input quoted) is cut to one line. */
        ck_assert_ptr_null(strchr(errstr, '\n'));
        ck_assert_int_eq(errstr[strlen(errstr) - 1], ')');
        ck_assert_uint_gt(strlen(errstr), want_len + 1);
    } else {
        ck_assert_str_eq(errstr, c->message);
    }
}
END_TEST

/* A message longer than the caller's buffer is cut, still NUL-terminated. */
START_TEST(test_settings_apply_error_truncated_to_buffer) {
    tf_settings_t s = sentinel();
    char errstr[16];
    memset(errstr, 'x', sizeof(errstr));
    ck_assert_int_eq(
        tf_settings_apply(&s, "conversion.types", "[\"NOPE\"]", errstr, sizeof(errstr)), -1);
    ck_assert_str_eq(errstr, "conversion.type");
    tf_settings_t before = sentinel();
    assert_settings_eq(&s, &before);
}
END_TEST

/* ---- unknown keys --------------------------------------------------------------------- */

static const char *const unknown_keys[] = {
    "session.timeout",
    "session.timeoutseconds",
    "Session.TimeoutSeconds",
    "session.timeoutSeconds ",
    " bots.excludeFromMetrics",
    "conversion.types.extra",
    "ui.theme",
    "",
};

START_TEST(test_settings_apply_unknown_key_ignored) {
    const char *key = unknown_keys[_i];
    const tf_settings_t before = sentinel();
    /* Whatever the value, even one that is not JSON: the key is not ours. */
    static const char *const values[] = {"900", "not json", "[\"NOPE\"]", "null"};
    for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
        tf_settings_t s = before;
        char errstr[64] = "untouched";
        ck_assert_int_eq(tf_settings_apply(&s, key, values[v], errstr, sizeof(errstr)), 1);
        assert_settings_eq(&s, &before);
        ck_assert_str_eq(errstr, "untouched");
    }
}
END_TEST

/* ---- tf_settings_parse_types ---------------------------------------------------------- */

typedef struct {
    const char *list;
    uint32_t mask;       /* expected on success */
    const char *message; /* NULL when the list is valid */
} types_case_t;

static const types_case_t types_cases[] = {
    {"PURCHASE", BIT(PURCHASE), NULL},
    {"PURCHASE,LEAD", BIT(PURCHASE) | BIT(LEAD), NULL},
    {" PURCHASE , LEAD ", BIT(PURCHASE) | BIT(LEAD), NULL},
    {"\tSIGN_UP,\t FORM_SUBMIT\t", BIT(SIGN_UP) | BIT(FORM_SUBMIT), NULL},
    {"LEAD,LEAD,LEAD", BIT(LEAD), NULL},
    {"PURCHASE, LEAD ,PURCHASE", BIT(PURCHASE) | BIT(LEAD), NULL},
    {"PAGE_VIEW,CUSTOM", BIT(PAGE_VIEW) | BIT(CUSTOM), NULL},
    {"", 0, "the list of event types is empty"},
    {"   ", 0, "the list of event types is empty"},
    {",", 0, "item 1 of the list of event types is empty"},
    {"PURCHASE,,LEAD", 0, "item 2 of the list of event types is empty"},
    {"PURCHASE, ,LEAD", 0, "item 2 of the list of event types is empty"},
    {"PURCHASE,", 0, "item 2 of the list of event types is empty"},
    {"PURCHASE, ", 0, "item 2 of the list of event types is empty"},
    {",PURCHASE", 0, "item 1 of the list of event types is empty"},
    {"purchase", 0, "unknown event type 'purchase'"},
    {"PURCHASE,NOPE,LEAD", 0, "unknown event type 'NOPE'"},
    {"PURCHASE, PAGE VIEW", 0, "unknown event type 'PAGE VIEW'"},
    {"PURCHASE;LEAD", 0, "unknown event type 'PURCHASE;LEAD'"},
    {"PURCHASES", 0, "unknown event type 'PURCHASES'"},
    {"PURCHAS", 0, "unknown event type 'PURCHAS'"},
};

START_TEST(test_settings_parse_types_table) {
    const types_case_t *c = &types_cases[_i];
    uint32_t mask = 0xdeadbeefu;
    char errstr[256] = "";
    int rc = tf_settings_parse_types(c->list, &mask, errstr, sizeof(errstr));
    if (c->message) {
        ck_assert_msg(rc == -1, "'%s': rc %d, expected -1", c->list, rc);
        ck_assert_str_eq(errstr, c->message);
        ck_assert_uint_eq(mask, 0xdeadbeefu); /* untouched on error */
    } else {
        ck_assert_msg(rc == 0, "'%s': rc %d (%s)", c->list, rc, errstr);
        ck_assert_uint_eq(mask, c->mask);
    }
}
END_TEST

/* Every EventType name round-trips, and all of them together give every bit. */
START_TEST(test_settings_parse_types_every_name) {
    char list[1024] = "";
    for (int t = 0; t < TF_EVENT_TYPE_COUNT; t++) {
        const char *name = tf_event_type_name((tf_event_type_t)t);
        uint32_t mask = 0;
        char errstr[128];
        ck_assert_int_eq(tf_settings_parse_types(name, &mask, errstr, sizeof(errstr)), 0);
        ck_assert_uint_eq(mask, 1u << t);
        size_t n = strlen(list);
        snprintf(list + n, sizeof(list) - n, "%s%s", t ? " , " : "", name);
    }
    uint32_t mask = 0;
    char errstr[128];
    ck_assert_int_eq(tf_settings_parse_types(list, &mask, errstr, sizeof(errstr)), 0);
    ck_assert_uint_eq(mask, ALL_TYPES);
}
END_TEST

/* A very long unknown name is quoted only in part; the message stays bounded. */
START_TEST(test_settings_parse_types_long_unknown_name) {
    char list[400];
    memset(list, 'A', sizeof(list) - 1);
    list[sizeof(list) - 1] = '\0';
    uint32_t mask = 7;
    char errstr[256];
    ck_assert_int_eq(tf_settings_parse_types(list, &mask, errstr, sizeof(errstr)), -1);
    char want[128];
    snprintf(want, sizeof(want), "unknown event type '%.64s'", list);
    ck_assert_str_eq(errstr, want);
    ck_assert_uint_eq(mask, 7);
}
END_TEST

static Suite *settings_suite(void) {
    Suite *s = suite_create("settings");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_settings_defaults_match_spec);
    tcase_add_test(tc, test_settings_keys_are_the_spec_keys);
    tcase_add_loop_test(tc, test_settings_apply_valid_value, 0,
                        (int)(sizeof(valid_cases) / sizeof(valid_cases[0])));
    tcase_add_test(tc, test_settings_apply_conversion_types_all_names_and_replace);
    tcase_add_test(tc, test_settings_apply_sequence_accumulates);
    tcase_add_loop_test(tc, test_settings_apply_invalid_value_refused, 0,
                        (int)(sizeof(invalid_cases) / sizeof(invalid_cases[0])));
    tcase_add_test(tc, test_settings_apply_error_truncated_to_buffer);
    tcase_add_loop_test(tc, test_settings_apply_unknown_key_ignored, 0,
                        (int)(sizeof(unknown_keys) / sizeof(unknown_keys[0])));
    tcase_add_loop_test(tc, test_settings_parse_types_table, 0,
                        (int)(sizeof(types_cases) / sizeof(types_cases[0])));
    tcase_add_test(tc, test_settings_parse_types_every_name);
    tcase_add_test(tc, test_settings_parse_types_long_unknown_name);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(settings_suite()) == 0 ? 0 : 1; }
