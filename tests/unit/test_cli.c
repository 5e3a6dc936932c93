/* test_cli.c — the option table parser: precedence, types, ranges, positionals. */
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "tests/testlib.h"

static const char *opt_str;
static long long opt_int;
static bool opt_bool;
static double opt_double;
static ev_kv_list_t opt_kv;

static const ev_opt_t test_opts[] = {
    {"brokers", 'b', EV_OPT_STR, "localhost:9092", "EVPIPE_TEST_CLI_BROKERS", "LIST", "brokers",
     &opt_str, 0, 0},
    {"batch", 0, EV_OPT_INT, "100", NULL, "N", "batch size", &opt_int, 1, 1000},
    {"verbose", 'v', EV_OPT_BOOL, "false", NULL, NULL, "verbose", &opt_bool, 0, 0},
    {"ratio", 0, EV_OPT_DOUBLE, "0.5", NULL, "R", "ratio", &opt_double, 0, 0},
    {"prop", 'X', EV_OPT_KV, NULL, NULL, "K=V", "property", &opt_kv, 0, 0},
    EV_OPT_END};
static const ev_cli_t test_cli = {"evpipe test", "[OPTIONS] FILE...", "A test command.", NULL,
                                  test_opts};

static char *parsed_argv[32]; /* argv after parsing: positionals moved to the end */

static int parse(int argc, const char **argv_in, int *first, char *err) {
    for (int i = 0; i < argc; i++) parsed_argv[i] = (char *)argv_in[i];
    ev_kv_list_clear(&opt_kv);
    return ev_cli_parse(&test_cli, argc, parsed_argv, first, err, 256);
}

START_TEST(test_cli_defaults_then_env_then_flags) {
    char err[256];
    int first;
    unsetenv("EVPIPE_TEST_CLI_BROKERS");
    const char *a1[] = {"test"};
    ck_assert_int_eq(parse(1, a1, &first, err), 0);
    ck_assert_str_eq(opt_str, "localhost:9092");
    ck_assert_int_eq(opt_int, 100);
    ck_assert(!opt_bool);
    ck_assert(opt_double == 0.5);
    setenv("EVPIPE_TEST_CLI_BROKERS", "env:1", 1);
    ck_assert_int_eq(parse(1, a1, &first, err), 0);
    ck_assert_str_eq(opt_str, "env:1");
    const char *a2[] = {"test", "--brokers", "flag:2"};
    ck_assert_int_eq(parse(3, a2, &first, err), 0);
    ck_assert_str_eq(opt_str, "flag:2");
    const char *a3[] = {"test", "-bshort:3"};
    ck_assert_int_eq(parse(2, a3, &first, err), 0);
    ck_assert_str_eq(opt_str, "short:3");
    unsetenv("EVPIPE_TEST_CLI_BROKERS");
}
END_TEST

START_TEST(test_cli_types_and_positionals) {
    char err[256];
    int first = -1;
    const char *a[] = {"test", "a.ndjson", "--batch=250", "-v", "--ratio", "0.25", "b.gz",
                       "-X", "compression.type=lz4", "-Xacks=all", "--", "--not-an-option"};
    ck_assert_int_eq(parse(12, a, &first, err), 0);
    ck_assert_int_eq(opt_int, 250);
    ck_assert(opt_bool);
    ck_assert(opt_double == 0.25);
    ck_assert_int_eq(opt_kv.n, 2);
    ck_assert_str_eq(opt_kv.key[0], "compression.type");
    ck_assert_str_eq(opt_kv.val[0], "lz4");
    ck_assert_str_eq(opt_kv.key[1], "acks");
    ck_assert_str_eq(opt_kv.val[1], "all");
    ck_assert_int_eq(first, 9);
    ck_assert_str_eq(parsed_argv[9], "a.ndjson");
    ck_assert_str_eq(parsed_argv[10], "b.gz");
    ck_assert_str_eq(parsed_argv[11], "--not-an-option");
    ev_kv_list_clear(&opt_kv);
}
END_TEST

START_TEST(test_cli_errors_are_named) {
    char err[256];
    int first;
    const char *a1[] = {"test", "--batch", "12x"};
    ck_assert_int_eq(parse(3, a1, &first, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "--batch"));
    ck_assert_ptr_nonnull(strstr(err, "12x"));
    const char *a2[] = {"test", "--batch", "5000"};
    ck_assert_int_eq(parse(3, a2, &first, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "outside 1..1000"));
    const char *a3[] = {"test", "--nope"};
    ck_assert_int_eq(parse(2, a3, &first, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "unknown option --nope"));
    const char *a4[] = {"test", "--brokers"};
    ck_assert_int_eq(parse(2, a4, &first, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "needs a value"));
    const char *a5[] = {"test", "-X", "novalue"};
    ck_assert_int_eq(parse(3, a5, &first, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "key=value"));
    const char *a6[] = {"test", "--verbose=maybe"};
    ck_assert_int_eq(parse(2, a6, &first, err), -1);
    /* A command without positional arguments (NULL) refuses one, options parsed first. */
    const char *a8[] = {"test", "--batch=250", "stray", "-v"};
    ck_assert_int_eq(parse(4, a8, NULL, err), -1);
    ck_assert_str_eq(err, "unexpected argument 'stray'");
    const char *a9[] = {"test", "--batch=250", "-v"};
    ck_assert_int_eq(parse(3, a9, NULL, err), 0);
    ck_assert_int_eq(opt_int, 250);
    setenv("EVPIPE_TEST_CLI_BROKERS", "", 1); /* empty environment = unset */
    const char *a7[] = {"test"};
    ck_assert_int_eq(parse(1, a7, &first, err), 0);
    ck_assert_str_eq(opt_str, "localhost:9092");
    unsetenv("EVPIPE_TEST_CLI_BROKERS");
}
END_TEST

START_TEST(test_cli_parse_ll_rejects_garbage) {
    long long v = 7;
    ck_assert_int_eq(ev_parse_ll("42", &v), 0);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(ev_parse_ll("-9", &v), 0);
    ck_assert_int_eq(v, -9);
    ck_assert_int_eq(ev_parse_ll("", &v), -1);
    ck_assert_int_eq(ev_parse_ll("1 ", &v), -1);
    ck_assert_int_eq(ev_parse_ll("99999999999999999999", &v), -1);
    ck_assert_int_eq(v, -9);
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_cli_defaults_then_env_then_flags);
    tcase_add_test(tc, test_cli_types_and_positionals);
    tcase_add_test(tc, test_cli_errors_are_named);
    tcase_add_test(tc, test_cli_parse_ll_rejects_garbage);
    suite_add_tcase(s, tc);
    return tl_run_suite(s) ? 1 : 0;
}
