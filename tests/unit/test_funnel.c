/* test_funnel — funnel definitions, step matching, windowFunnel chains and the
 * stepResults JSON (transforms/funnel.h), against hand-computed expectations. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "transforms/funnel.h"

static tf_funnel_t *parse_ok(const char *steps, long long window, const char *scope) {
    tf_funnel_t *f = NULL;
    char err[256];
    ck_assert_msg(tf_funnel_parse(steps, window, scope, &f, err, sizeof(err)) == 0, "%s", err);
    return f;
}

static const struct {
    const char *steps;
    long long window;
    const char *scope;
    const char *error;
} invalid_cases[] = {
    {"[{\"type\":", 60, "visitor", "steps is not valid JSON"},
    {"{\"type\":\"PAGE_VIEW\"}", 60, "visitor", "steps must be a JSON array"},
    {"[{\"type\":\"PAGE_VIEW\"}]", 60, "visitor", "steps must hold 2 to 20 steps (got 1)"},
    {"[{\"type\":\"NOPE\"},{\"type\":\"PURCHASE\"}]", 60, "visitor",
     "step 1: unknown event type 'NOPE'"},
    {"[{\"type\":\"PAGE_VIEW\"},{\"name\":\"x\"}]", 60, "visitor",
     "step 2: \"type\" is required and must be a string"},
    {"[{\"type\":\"PAGE_VIEW\"},3]", 60, "visitor", "step 2 is not a JSON object"},
    {"[{\"type\":\"PAGE_VIEW\",\"path\":\"a*\"},{\"type\":\"PURCHASE\"}]", 60, "visitor",
     "step 1: \"path\" must be \"/exact\" or \"/prefix*\" (got 'a*')"},
    {"[{\"type\":\"PAGE_VIEW\",\"path\":\"/a*b\"},{\"type\":\"PURCHASE\"}]", 60, "visitor",
     "step 1: \"path\" must be \"/exact\" or \"/prefix*\" (got '/a*b')"},
    {"[{\"type\":\"PAGE_VIEW\",\"properties\":[]},{\"type\":\"PURCHASE\"}]", 60, "visitor",
     "step 1: \"properties\" must be an object"},
    {"[{\"type\":\"PAGE_VIEW\"},{\"type\":\"PURCHASE\"}]", -1, "visitor",
     "conversionWindowSeconds must be >= 0 (got -1)"},
    {"[{\"type\":\"PAGE_VIEW\"},{\"type\":\"PURCHASE\"}]", 60, "user",
     "scope must be 'visitor' or 'session' (got 'user')"},
};

START_TEST(test_funnel_parse_malformed_refused) {
    tf_funnel_t *f = NULL;
    char err[256];
    ck_assert_int_eq(tf_funnel_parse(invalid_cases[_i].steps, invalid_cases[_i].window,
                                     invalid_cases[_i].scope, &f, err, sizeof(err)),
                     -1);
    ck_assert_ptr_null(f);
    ck_assert_msg(strncmp(err, invalid_cases[_i].error, strlen(invalid_cases[_i].error)) == 0,
                  "got '%s', want '%s'", err, invalid_cases[_i].error);
}
END_TEST

START_TEST(test_funnel_parse_21_steps_refused) {
    char steps[1024] = "[";
    for (int i = 0; i < 21; i++) strncat(steps, i ? ",{\"type\":\"CLICK\"}" : "{\"type\":\"CLICK\"}", sizeof(steps) - strlen(steps) - 2);
    strncat(steps, "]", 2);
    tf_funnel_t *f = NULL;
    char err[256];
    ck_assert_int_eq(tf_funnel_parse(steps, 0, "session", &f, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "steps must hold 2 to 20 steps (got 21)");
}
END_TEST

START_TEST(test_funnel_match_fields) {
    tf_funnel_t *f = parse_ok("[{\"type\":\"PAGE_VIEW\",\"path\":\"/shop/*\"},"
                              "{\"type\":\"PAGE_VIEW\",\"path\":\"/shop/cart\"},"
                              "{\"type\":\"PURCHASE\",\"name\":\"buy\",\"properties\":"
                              "{\"plan\":\"pro\",\"n\":2}}]",
                              60, "visitor");
    tf_funnel_event_t e = {TF_EVENT_PAGE_VIEW, NULL, "/shop/cart", NULL};
    ck_assert_uint_eq(tf_funnel_match(f, &e), 3u);
    e.path = "/shop/x";
    ck_assert_uint_eq(tf_funnel_match(f, &e), 1u);
    e.path = "/shopping";
    ck_assert_uint_eq(tf_funnel_match(f, &e), 0u);
    e.path = "/shop/cart?x=1";
    ck_assert_uint_eq(tf_funnel_match(f, &e), 1u);
    tf_funnel_event_t p = {TF_EVENT_PURCHASE, "buy", NULL, "{\"n\":2.0,\"plan\":\"pro\",\"x\":1}"};
    ck_assert_uint_eq(tf_funnel_match(f, &p), 4u);
    p.properties_json = "{\"n\":3,\"plan\":\"pro\"}";
    ck_assert_uint_eq(tf_funnel_match(f, &p), 0u);
    p.properties_json = NULL;
    ck_assert_uint_eq(tf_funnel_match(f, &p), 0u);
    p.properties_json = "{\"n\":2,\"plan\":\"pro\"}";
    p.name = "other";
    ck_assert_uint_eq(tf_funnel_match(f, &p), 0u);
    tf_funnel_destroy(f);
}
END_TEST

/* Steps A(PAGE_VIEW) B(ADD_TO_CART) C(PURCHASE), window 10 s. */
#define ABC "[{\"type\":\"PAGE_VIEW\"},{\"type\":\"ADD_TO_CART\"},{\"type\":\"PURCHASE\"}]"

static int level_of(const tf_funnel_point_t *pts, size_t n, tf_funnel_chain_t *c) {
    tf_funnel_t *f = parse_ok(ABC, 10, "visitor");
    ck_assert_int_eq(tf_funnel_best_chain(f, pts, n, 0, 86400000, c), 0);
    tf_funnel_destroy(f);
    return c->level;
}

START_TEST(test_funnel_chain_window_edges) {
    tf_funnel_chain_t c;
    tf_funnel_point_t in[] = {{1000, 1}, {5000, 2}, {11000, 4}};
    ck_assert_int_eq(level_of(in, 3, &c), 3); /* = window */
    tf_funnel_point_t minus[] = {{1000, 1}, {5000, 2}, {10999, 4}};
    ck_assert_int_eq(level_of(minus, 3, &c), 3);
    tf_funnel_point_t plus[] = {{1000, 1}, {5000, 2}, {11001, 4}};
    ck_assert_int_eq(level_of(plus, 3, &c), 2);
    ck_assert_int_eq(c.at_ms[0], 1000);
    ck_assert_int_eq(c.at_ms[1], 5000);
}
END_TEST

START_TEST(test_funnel_chain_order_and_equal_times) {
    tf_funnel_chain_t c;
    tf_funnel_point_t rev[] = {{1000, 2}, {2000, 1}, {3000, 4}};
    ck_assert_int_eq(level_of(rev, 3, &c), 1); /* B before A does not count */
    tf_funnel_point_t eq[] = {{1000, 4}, {1000, 2}, {1000, 1}};
    ck_assert_int_eq(level_of(eq, 3, &c), 3); /* equal times are in order */
    tf_funnel_point_t one[] = {{1000, 1}, {2000, 3}};
    ck_assert_int_eq(level_of(one, 2, &c), 2); /* one event, one step */
    tf_funnel_point_t later[] = {{0, 1}, {20000, 1}, {21000, 2}, {22000, 4}, {23000, 2}};
    ck_assert_int_eq(level_of(later, 5, &c), 3); /* a later start reaches further */
    ck_assert_int_eq(c.at_ms[0], 20000);
    ck_assert_int_eq(c.at_ms[2], 22000);
}
END_TEST

START_TEST(test_funnel_step_results_json_format) {
    tf_funnel_t *f = parse_ok(ABC, 10, "visitor");
    tf_funnel_step_stat_t st[3] = {{4, false, 0}, {2, true, 1.5}, {0, false, 0}};
    char *json = NULL, err[128];
    ck_assert_int_eq(tf_funnel_step_results_json(f, st, &json, err, sizeof(err)), 0);
    ck_assert_str_eq(json,
                     "[{\"step\":1,\"type\":\"PAGE_VIEW\",\"count\":4,\"dropOff\":0,"
                     "\"conversionRateFromPrev\":1,\"conversionRateFromStart\":1,"
                     "\"medianSecondsFromPrev\":null},"
                     "{\"step\":2,\"type\":\"ADD_TO_CART\",\"count\":2,\"dropOff\":2,"
                     "\"conversionRateFromPrev\":0.5,\"conversionRateFromStart\":0.5,"
                     "\"medianSecondsFromPrev\":1.5},"
                     "{\"step\":3,\"type\":\"PURCHASE\",\"count\":0,\"dropOff\":2,"
                     "\"conversionRateFromPrev\":0,\"conversionRateFromStart\":0,"
                     "\"medianSecondsFromPrev\":null}]");
    free(json);
    tf_funnel_destroy(f);
    ck_assert(tf_funnel_rate(1, 0) == 0.0);
}
END_TEST

static Suite *funnel_suite(void) {
    Suite *s = suite_create("funnel");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_funnel_parse_malformed_refused, 0,
                        (int)(sizeof(invalid_cases) / sizeof(invalid_cases[0])));
    tcase_add_test(tc, test_funnel_parse_21_steps_refused);
    tcase_add_test(tc, test_funnel_match_fields);
    tcase_add_test(tc, test_funnel_chain_window_edges);
    tcase_add_test(tc, test_funnel_chain_order_and_equal_times);
    tcase_add_test(tc, test_funnel_step_results_json_format);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(funnel_suite()) == 0 ? 0 : 1; }
