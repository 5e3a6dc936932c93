/* test_device_data.c — device classification with its data sets (Matomo device-detector's
 * robots, libraries, clients and device models): agreement on the held-out corpus
 * against the goals, one table case per error class of issue 12, and loading errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ua_load.h"
#include "tests/testlib.h"
#include "transforms/device.h"

#define HELDOUT_TSV "tests/data/ua/heldout.tsv"

static const char *regexes_path(void) {
    const char *path = getenv("EVPIPE_UA_REGEXES");
    return path && *path ? path : TF_UA_REGEXES_DEFAULT_PATH;
}

static const char *data_dir(void) {
    const char *dir = getenv("EVPIPE_UA_DATA");
    return dir && *dir ? dir : TF_UA_DATA_DEFAULT_PATH;
}

static tf_ua_classifier_t *new_classifier(size_t cache, bool with_data) {
    char err[1024] = "";
    tf_ua_classifier_t *c = ev_ua_classifier_load(regexes_path(), with_data ? data_dir() : NULL,
                                                  cache, err, sizeof(err));
    ck_assert_msg(c != NULL, "classifier: %s", err);
    return c;
}

static tf_device_type_t classify(tf_ua_classifier_t *c, const char *ua) {
    tf_ua_info_t info;
    ck_assert_int_eq(tf_ua_classify(c, ua, NULL, &info), 0);
    return info.type;
}

/* ---- held-out corpus ------------------------------------------------------------- */

START_TEST(test_device_data_heldout_agreement) {
    FILE *f = fopen(HELDOUT_TSV, "r");
    ck_assert_msg(f != NULL, "cannot open %s (run the tests from the repository root)",
                  HELDOUT_TSV);
    tf_ua_classifier_t *c = new_classifier(0, true);
    size_t confusion[TF_DEVICE_TYPE_COUNT][TF_DEVICE_TYPE_COUNT];
    memset(confusion, 0, sizeof(confusion));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        char *tab = strchr(line, '\t');
        ck_assert_msg(tab != NULL, "%s: line without a tab: %s", HELDOUT_TSV, line);
        *tab = '\0';
        tf_device_type_t want;
        ck_assert_msg(tf_device_type_parse(line, &want) == 0, "bad label %s", line);
        confusion[want][classify(c, tab + 1)]++;
    }
    free(line);
    fclose(f);
    size_t n = 0, ok = 0, per[TF_DEVICE_TYPE_COUNT] = {0};
    for (int t = 0; t < TF_DEVICE_TYPE_COUNT; t++) {
        for (int g = 0; g < TF_DEVICE_TYPE_COUNT; g++)
            per[t] += confusion[t][g];
        n += per[t];
        ok += confusion[t][t];
        if (per[t])
            fprintf(stderr,
                    "held-out %-8s %5zu lines, agreement %.2f%% (as D/T/M/B/U: %zu %zu %zu %zu "
                    "%zu)\n",
                    tf_device_type_name((tf_device_type_t)t), per[t],
                    100.0 * (double)confusion[t][t] / (double)per[t], confusion[t][0],
                    confusion[t][1], confusion[t][2], confusion[t][3], confusion[t][4]);
    }
    size_t browsers = per[TF_DEVICE_DESKTOP] + per[TF_DEVICE_TABLET] + per[TF_DEVICE_MOBILE];
    size_t browsers_as_bots = confusion[TF_DEVICE_DESKTOP][TF_DEVICE_BOT] +
                              confusion[TF_DEVICE_TABLET][TF_DEVICE_BOT] +
                              confusion[TF_DEVICE_MOBILE][TF_DEVICE_BOT];
    double agreement = (double)ok / (double)n;
    double bot_recall =
        (double)confusion[TF_DEVICE_BOT][TF_DEVICE_BOT] / (double)per[TF_DEVICE_BOT];
    fprintf(stderr,
            "held-out overall %zu lines: agreement %.2f%%, bots recognised %.2f%%, browsers "
            "called BOT %zu of %zu\n",
            n, 100.0 * agreement, 100.0 * bot_recall, browsers_as_bots, browsers);
    ck_assert_uint_gt(n, 2000);
    ck_assert_uint_gt(per[TF_DEVICE_BOT], 1000);
    ck_assert_uint_gt(browsers, 900);
    ck_assert_uint_eq(per[TF_DEVICE_UNKNOWN], 0);
    /* The goals of issue 12 (measured: 97.39% agreement, 95.60% of bots, no browser
     * called BOT; desktops, tablets and phones 100%). */
    ck_assert_msg(agreement >= 0.97, "agreement %.4f below 0.97", agreement);
    ck_assert_msg(bot_recall >= 0.95, "bot recall %.4f below 0.95", bot_recall);
    ck_assert_msg(browsers_as_bots * 100 <= browsers, "%zu of %zu browsers called BOT",
                  browsers_as_bots, browsers);
    for (int t = TF_DEVICE_DESKTOP; t <= TF_DEVICE_MOBILE; t++)
        ck_assert_msg(confusion[t][t] * 100 >= per[t] * 99, "%s agreement %zu of %zu",
                      tf_device_type_name((tf_device_type_t)t), confusion[t][t], per[t]);
    tf_ua_classifier_destroy(c);
}
END_TEST

/* ---- the error classes of issue 12 ---------------------------------------------- */

typedef struct case_s {
    const char *ua;
    tf_device_type_t type;
} case_t;

static void run_cases(const case_t *cases, size_t n) {
    tf_ua_classifier_t *c = new_classifier(16, true);
    for (size_t i = 0; i < n; i++) {
        tf_device_type_t got = classify(c, cases[i].ua);
        ck_assert_msg(got == cases[i].type, "%s -> %s, expected %s", cases[i].ua,
                      tf_device_type_name(got), tf_device_type_name(cases[i].type));
    }
    tf_ua_classifier_destroy(c);
}

#define RUN_CASES(arr) run_cases((arr), sizeof(arr) / sizeof((arr)[0]))

/* Bots without any browser token: bare tool, library, monitor and scanner names. */
START_TEST(test_device_data_bare_tools_bot) {
    static const case_t cases[] = {
        {"url", TF_DEVICE_BOT},
        {"parser", TF_DEVICE_BOT},
        {"ThousandEyes-Dragonfly-x1", TF_DEVICE_BOT},
        {"github-camo (876de43e)", TF_DEVICE_BOT},
        {"${jndi:ldap://127.0.0.1:1389/a}", TF_DEVICE_BOT},
        {"() { :; }; /bin/bash -c 'id'", TF_DEVICE_BOT},
        {"coccoc", TF_DEVICE_BOT},
        {"Amazon CloudFront", TF_DEVICE_BOT},
        {"binlar_2.6.3 test@example.org", TF_DEVICE_BOT},
        {"okhttp/4.12.0", TF_DEVICE_BOT},
        {"Wget/1.21.3", TF_DEVICE_BOT},
        /* no word: still no signal */
        {"-", TF_DEVICE_UNKNOWN},
        {"12345", TF_DEVICE_UNKNOWN},
        {"Mozilla/5.0", TF_DEVICE_UNKNOWN},
    };
    RUN_CASES(cases);
}
END_TEST

/* Crawlers and monitors that add their token to an ordinary Chrome agent. */
START_TEST(test_device_data_chrome_with_bot_token) {
    static const case_t cases[] = {
        {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/109.0.0.0 Safari/537.36 CloudflareObservatory/1.0",
         TF_DEVICE_BOT},
        {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko; "
         "Google-BusinessLinkVerification) Chrome/120.0.0.0 Safari/537.36",
         TF_DEVICE_BOT},
        {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36 PTST/231205.151709",
         TF_DEVICE_BOT},
        /* the same agents without the token are browsers */
        {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/109.0.0.0 Safari/537.36",
         TF_DEVICE_DESKTOP},
        {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36",
         TF_DEVICE_DESKTOP},
    };
    RUN_CASES(cases);
}
END_TEST

/* Android tablets that send "Mobile": the model decides. */
START_TEST(test_device_data_tablets_sending_mobile) {
    static const case_t cases[] = {
        {"Mozilla/5.0 (Linux; Android 7.0; B1-790) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/89.0.4389.105 Mobile Safari/537.36",
         TF_DEVICE_TABLET},
        {"Mozilla/5.0 (Linux; Android 8.1.0; Plane 7594 3G Build/O11019) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/70.0.3538.110 Mobile Safari/537.36",
         TF_DEVICE_TABLET},
        {"Mozilla/5.0 (Linux; Android 5.1; Optima 8 Z801 Build/LMY47I) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/61.0.3163.98 Mobile Safari/537.36",
         TF_DEVICE_TABLET},
        /* a phone of a brand that also makes tablets stays a phone */
        {"Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Mobile Safari/537.36",
         TF_DEVICE_MOBILE},
        {"Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Safari/537.36",
         TF_DEVICE_TABLET},
    };
    RUN_CASES(cases);
}
END_TEST

/* Android on laptops and Chromebooks. */
START_TEST(test_device_data_android_laptops_desktop) {
    static const case_t cases[] = {
        {"Mozilla/5.0 (Linux; Android 7.1.2; Inspiron 13-5378) AppleWebKit/537.36 (KHTML, like "
         "Gecko) Chrome/95.0.4638.74 Safari/537.36",
         TF_DEVICE_DESKTOP},
        {"Mozilla/5.0 (Linux; Android 9; Latitude E4310) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/90.0.4430.91 Safari/537.36",
         TF_DEVICE_DESKTOP},
        {"Mozilla/5.0 (Linux; Android 9; ASUS Chromebook Flip C302) AppleWebKit/537.36 (KHTML, "
         "like Gecko) Chrome/96.0.4664.45 Safari/537.36",
         TF_DEVICE_DESKTOP},
        {"Mozilla/5.0 (Linux; Android 9; Aspire XC-704G) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/96.0.4664.45 Safari/537.36",
         TF_DEVICE_DESKTOP},
    };
    RUN_CASES(cases);
}
END_TEST

/* Desktop applications and feed readers are people, not robots; CFNetwork apps on a
 * Mac are desktops. */
START_TEST(test_device_data_desktop_apps_not_bot) {
    static const case_t cases[] = {
        {"NetNewsWire/4.0.0 (Mac OS X; http://netnewswireapp.com/mac/; gzip-happy)",
         TF_DEVICE_DESKTOP},
        {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "GOGGalaxyClient/2.0.45.61 Safari/537.36",
         TF_DEVICE_DESKTOP},
        {"Mozilla/4.0 (compatible; ms-office; MSOffice 16)", TF_DEVICE_DESKTOP},
        {"Liferea/1.10.19 (Linux; en_US.UTF-8; http://liferea.sf.net/)", TF_DEVICE_DESKTOP},
        {"Podcasts/1.0 CFNetwork/1220.1 Darwin/20.3.0 (x86_64)", TF_DEVICE_DESKTOP},
        {"Podcasts/1.0 CFNetwork/1220.1 Darwin/20.3.0", TF_DEVICE_MOBILE},
    };
    RUN_CASES(cases);
}
END_TEST

/* Hints and screen still refine what the agent says. */
START_TEST(test_device_data_hints_still_refine) {
    tf_ua_classifier_t *c = new_classifier(16, true);
    tf_ua_info_t info;
    tf_device_hints_t ipad = {false, false, NULL, NULL, 1024, 1366};
    ck_assert_int_eq(tf_ua_classify(c,
                                    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
                                    "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
                                    "Safari/605.1.15",
                                    &ipad, &info),
                     0);
    ck_assert_int_eq(info.type, TF_DEVICE_TABLET);
    tf_device_hints_t windows = {true, false, "Windows", NULL, 0, 0};
    ck_assert_int_eq(tf_ua_classify(c, "x-1", &windows, &info), 0);
    ck_assert_int_eq(info.type, TF_DEVICE_DESKTOP);
    /* hints never undo BOT */
    tf_device_hints_t phone = {true, true, "Android", NULL, 390, 844};
    ck_assert_int_eq(tf_ua_classify(c, "url", &phone, &info), 0);
    ck_assert_int_eq(info.type, TF_DEVICE_BOT);
    tf_ua_classifier_destroy(c);
}
END_TEST

/* ---- loading --------------------------------------------------------------------- */

START_TEST(test_device_data_bad_data_rejected) {
    tf_ua_classifier_t *c = new_classifier(16, false);
    static const char bots[] = "[{\"regex\": \"ZzTestProbe\", \"name\": \"Zz\"}]";
    char err[512];
    ck_assert_int_eq(classify(c, "ZzTestProbe (Windows NT 10.0)"), TF_DEVICE_DESKTOP);
    ck_assert_int_eq(
        tf_ua_classifier_add_data(c, TF_UA_DATA_BOTS, bots, strlen(bots), err, sizeof(err)), 0);
    /* the cache is emptied: the same agent now gets the new answer */
    ck_assert_int_eq(classify(c, "ZzTestProbe (Windows NT 10.0)"), TF_DEVICE_BOT);
    static const struct {
        tf_ua_data_kind_t kind;
        const char *json, *error;
    } bad[] = {
        {TF_UA_DATA_BOTS, "[{\"regex\": \"a(\"}]", "bots[0]: regex does not compile"},
        {TF_UA_DATA_BOTS, "[{\"name\": \"x\"}]", "bots[0]: no regex"},
        {TF_UA_DATA_BOTS, "{\"regex\": \"x\"}", "bots: the top level is not a list"},
        {TF_UA_DATA_CLIENTS, "[{\"regex\": \"x\"}, 3]", "clients[1]: not an object"},
        {TF_UA_DATA_LIBRARIES, "[{\"regex\": ", "libraries: malformed JSON"},
        {TF_UA_DATA_DEVICES, "[]", "devices: the top level is not an object"},
        {TF_UA_DATA_DEVICES, "{\"Acme\": {\"regex\": \"Acme\", \"models\": 3}}",
         "devices[0] (Acme): models is not a list"},
        {TF_UA_DATA_DEVICES, "{\"Acme\": {\"regex\": \"Acme\", \"models\": [{\"regex\": \"[\"}]}}",
         "devices Acme models[0]: regex does not compile"},
        {(tf_ua_data_kind_t)9, "[]", "unknown kind of data"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_int_eq(tf_ua_classifier_add_data(c, bad[i].kind, bad[i].json, strlen(bad[i].json),
                                                   err, sizeof(err)),
                         -1);
        ck_assert_msg(strstr(err, bad[i].error) != NULL, "'%s': '%s'", bad[i].json, err);
    }
    /* a NUL inside the text */
    ck_assert_int_eq(tf_ua_classifier_add_data(c, TF_UA_DATA_BOTS, "[]\0[]", 5, err, sizeof(err)),
                     -1);
    ck_assert(strstr(err, "NUL") != NULL);
    /* what was loaded before a failed call still works */
    ck_assert_int_eq(classify(c, "ZzTestProbe (Windows NT 10.0)"), TF_DEVICE_BOT);
    tf_ua_classifier_destroy(c);
    /* a missing data folder is a clear error */
    char lerr[1024];
    ck_assert(ev_ua_classifier_load(regexes_path(), "/nonexistent/ua-data", 0, lerr,
                                    sizeof(lerr)) == NULL);
    ck_assert_msg(strstr(lerr, "/nonexistent/ua-data/bots.json") != NULL &&
                      strstr(lerr, "make deps") != NULL,
                  "%s", lerr);
}
END_TEST

/* A device model's type wins over the "Mobile" token, whatever brand uap-core gives. */
START_TEST(test_device_data_model_decides) {
    tf_ua_classifier_t *c = new_classifier(0, false);
    static const char devices[] =
        "{\"Zyx\": {\"regex\": \"ZQ-[0-9]+\", \"device\": \"smartphone\", \"models\": ["
        "{\"regex\": \"ZQ-7[0-9]{2}(?:[);/ ]|$)\", \"device\": \"tablet\", \"model\": \"Tab\"},"
        "{\"regex\": \"ZQ-9[0-9]{2}(?:[);/ ]|$)\", \"device\": \"desktop\"},"
        "{\"regex\": \"ZQ-1[0-9]{2}(?:[);/ ]|$)\"}]}}";
    char err[512];
    ck_assert_int_eq(tf_ua_classifier_add_data(c, TF_UA_DATA_DEVICES, devices, strlen(devices), err,
                                               sizeof(err)),
                     0);
    const char *tablet = "Mozilla/5.0 (Linux; Android 12; ZQ-710 Build/S) AppleWebKit/537.36 "
                         "(KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
    const char *laptop = "Mozilla/5.0 (Linux; Android 12; ZQ-901) AppleWebKit/537.36 (KHTML, "
                         "like Gecko) Chrome/120.0.0.0 Safari/537.36";
    /* a model without a type has its brand's */
    const char *phone = "Mozilla/5.0 (Linux; Android 12; ZQ-120) AppleWebKit/537.36 (KHTML, "
                        "like Gecko) Chrome/120.0.0.0 Safari/537.36";
    ck_assert_int_eq(classify(c, tablet), TF_DEVICE_TABLET);
    ck_assert_int_eq(classify(c, laptop), TF_DEVICE_DESKTOP);
    ck_assert_int_eq(classify(c, phone), TF_DEVICE_MOBILE);
    /* no model matches: the "Mobile" token decides as before */
    ck_assert_int_eq(classify(c, "Mozilla/5.0 (Linux; Android 12; ZQ-555) AppleWebKit/537.36 "
                                 "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"),
                     TF_DEVICE_TABLET);
    tf_ua_classifier_destroy(c);
}
END_TEST

static Suite *device_data_suite(void) {
    Suite *s = suite_create("device_data");
    TCase *tc = tcase_create("device_data");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_device_data_bad_data_rejected);
    tcase_add_test(tc, test_device_data_model_decides);
    tcase_add_test(tc, test_device_data_bare_tools_bot);
    tcase_add_test(tc, test_device_data_chrome_with_bot_token);
    tcase_add_test(tc, test_device_data_tablets_sending_mobile);
    tcase_add_test(tc, test_device_data_android_laptops_desktop);
    tcase_add_test(tc, test_device_data_desktop_apps_not_bot);
    tcase_add_test(tc, test_device_data_hints_still_refine);
    tcase_add_test(tc, test_device_data_heldout_agreement);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(device_data_suite()) == 0 ? 0 : 1; }
