/* test_util.c — the timestamp formatting every event goes through: equal to the C
 * library's gmtime + printf over the whole range of years, at the edges of days,
 * months, leap years and the epoch, and outside 0..9999. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "tests/testlib.h"

/* The independent computation: gmtime_r and snprintf. */
static void expected_rfc3339(int64_t ms, char out[64]) {
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    ck_assert_ptr_nonnull(gmtime_r(&t, &tm));
    snprintf(out, 64, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms - secs * 1000));
}

static void check_one(int64_t ms) {
    char want[64], got[32];
    expected_rfc3339(ms, want);
    ev_format_rfc3339_ms(ms, got);
    ck_assert_msg(strcmp(want, got) == 0, "%lld: %s, expected %s", (long long)ms, got, want);
}

START_TEST(test_rfc3339_edges) {
    static const int64_t cases[] = {
        0, -1, 1, 999, -999, -1000, -1001, 86399999, 86400000, -86400000, -86400001,
        951782400000,  /* 2000-02-29 */
        951868800000,  /* 2000-03-01 */
        4107542400000, /* 2100-03-01 (not a leap year) */
        1798761599999, /* 2026-12-31T23:59:59.999 */
        253402300799999,  /* 9999-12-31T23:59:59.999 */
        253402300800000,  /* 10000-01-01: the slow path */
        -62135596800000,  /* 0001-01-01 */
        -62167219200000,  /* 0000-01-01 */
        -62167219200001,  /* -0001-12-31: the slow path */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) check_one(cases[i]);
    char got[32];
    ev_format_rfc3339_ms(1764078000123, got);
    ck_assert_str_eq(got, "2025-11-25T13:40:00.123Z");
}
END_TEST

START_TEST(test_rfc3339_equals_gmtime_everywhere) {
    /* Every day of years 1..9999 at a varying time of day, and a pseudo-random sweep. */
    int64_t day0 = -62135596800000LL; /* 0001-01-01 */
    for (int64_t d = 0; d < 3652059; d += 7)
        check_one(day0 + d * 86400000 + (d * 7919) % 86400000);
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        check_one((int64_t)(x % 600000000000000ULL) - 300000000000000LL);
    }
}
END_TEST

START_TEST(test_civil_fields) {
    ev_civil_t c;
    ev_civil_of_ms(-1, &c);
    ck_assert_int_eq(c.year, 1969);
    ck_assert_int_eq(c.month, 12);
    ck_assert_int_eq(c.day, 31);
    ck_assert_int_eq(c.hour, 23);
    ck_assert_int_eq(c.minute, 59);
    ck_assert_int_eq(c.second, 59);
    ck_assert_int_eq(c.ms, 999);
    char text[32];
    char *end = ev_put_civil(text, &c, ' ');
    ck_assert_int_eq(end - text, 23);
    *end = '\0';
    ck_assert_str_eq(text, "1969-12-31 23:59:59.999");
}
END_TEST

static Suite *util_suite(void) {
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rfc3339_edges);
    tcase_add_test(tc, test_rfc3339_equals_gmtime_everywhere);
    tcase_add_test(tc, test_civil_fields);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(util_suite()) == 0 ? 0 : 1; }
