/* test_metrics.c — the Prometheus registry and its HTTP endpoint, fetched over real
 * HTTP with libcurl on 127.0.0.1: exact exposition text, health and readiness,
 * errors, and exact totals under concurrent updates. */
#include <curl/curl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/metrics.h"
#include "tests/testlib.h"

typedef struct {
    long status;
    char *body;
    size_t len;
    char content_type[128];
} http_reply_t;

static size_t collect(char *data, size_t size, size_t nmemb, void *ud) {
    http_reply_t *r = ud;
    size_t n = size * nmemb;
    char *grown = realloc(r->body, r->len + n + 1);
    if (!grown) return 0;
    r->body = grown;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

/* Performs one request on 127.0.0.1:port; aborts the test on a transport error. */
static http_reply_t http_request(int port, const char *method, const char *path) {
    http_reply_t r = {0};
    r.body = calloc(1, 1);
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *curl = curl_easy_init();
    ck_assert_ptr_nonnull(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0) curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    CURLcode rc = curl_easy_perform(curl);
    ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    char *ct = NULL;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r.content_type, sizeof(r.content_type), "%s", ct ? ct : "");
    curl_easy_cleanup(curl);
    return r;
}

static http_reply_t http_get(int port, const char *path) { return http_request(port, "GET", path); }

/* A registry holding one metric of each kind, with known values. */
static ev_metrics_t *sample_registry(void) {
    ev_metrics_t *m = ev_metrics_new("evpipe_ingest");
    ck_assert_ptr_nonnull(m);
    ev_metric_t *c = ev_metrics_counter(m, "messages_consumed_total", "Messages polled", NULL);
    ev_metric_add(c, 3);
    ev_metric_add(c, 2);
    ev_metric_add(ev_metrics_counter(m, "dlq_messages_total", "Dead-lettered messages",
                                     "topic=\"raw\",reason=\"invalid_json\""),
                  2);
    ev_metric_add(ev_metrics_counter(m, "dlq_messages_total", "ignored: family exists",
                                     "reason=\"bad_url\",topic=\"raw\""),
                  1);
    ev_metric_set(
        ev_metrics_gauge(m, "consumer_lag_messages", "Messages behind", "partition=\"1\""), 7);
    ev_metric_set(ev_metrics_gauge(m, "consumer_lag_messages", NULL, "partition=\"0\""), 0.25);
    static const double bounds[] = {0.1, 0.5, 1};
    ev_histogram_t *h = ev_metrics_histogram(m, "batch_seconds", "Time per batch", bounds, 3);
    ck_assert_ptr_nonnull(h);
    ev_histogram_observe(h, 0.05);
    ev_histogram_observe(h, 0.1); /* le is inclusive */
    ev_histogram_observe(h, 0.3);
    ev_histogram_observe(h, 2);
    return m;
}

static const char sample_text[] =
    "# HELP evpipe_ingest_batch_seconds Time per batch\n"
    "# TYPE evpipe_ingest_batch_seconds histogram\n"
    "evpipe_ingest_batch_seconds_bucket{le=\"0.1\"} 2\n"
    "evpipe_ingest_batch_seconds_bucket{le=\"0.5\"} 3\n"
    "evpipe_ingest_batch_seconds_bucket{le=\"1\"} 3\n"
    "evpipe_ingest_batch_seconds_bucket{le=\"+Inf\"} 4\n"
    "evpipe_ingest_batch_seconds_sum 2.45\n"
    "evpipe_ingest_batch_seconds_count 4\n"
    "# HELP evpipe_ingest_consumer_lag_messages Messages behind\n"
    "# TYPE evpipe_ingest_consumer_lag_messages gauge\n"
    "evpipe_ingest_consumer_lag_messages{partition=\"0\"} 0.25\n"
    "evpipe_ingest_consumer_lag_messages{partition=\"1\"} 7\n"
    "# HELP evpipe_ingest_dlq_messages_total Dead-lettered messages\n"
    "# TYPE evpipe_ingest_dlq_messages_total counter\n"
    "evpipe_ingest_dlq_messages_total{reason=\"bad_url\",topic=\"raw\"} 1\n"
    "evpipe_ingest_dlq_messages_total{reason=\"invalid_json\",topic=\"raw\"} 2\n"
    "# HELP evpipe_ingest_messages_consumed_total Messages polled\n"
    "# TYPE evpipe_ingest_messages_consumed_total counter\n"
    "evpipe_ingest_messages_consumed_total 5\n";

START_TEST(test_metrics_render_exact_text) {
    ev_metrics_t *m = sample_registry();
    char *text = ev_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, sample_text);
    free(text);
    ev_metrics_destroy(m);

    ev_metrics_t *empty = ev_metrics_new(NULL);
    text = ev_metrics_render(empty);
    ck_assert_str_eq(text, "");
    free(text);
    ev_metrics_destroy(empty);
    ev_metrics_destroy(NULL);
}
END_TEST

START_TEST(test_metrics_get_or_create_and_validation) {
    ev_metrics_t *m = ev_metrics_new("app");
    ev_metric_t *a = ev_metrics_counter(m, "x_total", "X", "b=\"1\",a=\"2\"");
    ck_assert_ptr_nonnull(a);
    /* the same label set in another order, or with a trailing comma: same series */
    ck_assert_ptr_eq(ev_metrics_counter(m, "x_total", NULL, "a=\"2\",b=\"1\""), a);
    ck_assert_ptr_eq(ev_metrics_counter(m, "x_total", NULL, "a=\"2\",b=\"1\","), a);
    ck_assert_ptr_ne(ev_metrics_counter(m, "x_total", NULL, "a=\"2\""), a);
    /* another type under a taken name */
    ck_assert_ptr_null(ev_metrics_gauge(m, "x_total", NULL, NULL));
    ck_assert_ptr_null(ev_metrics_histogram(m, "x_total", NULL, NULL, 0));
    /* invalid names and label texts */
    ck_assert_ptr_null(ev_metrics_counter(m, "", NULL, NULL));
    ck_assert_ptr_null(ev_metrics_counter(m, NULL, NULL, NULL));
    ck_assert_ptr_null(ev_metrics_counter(m, "has-dash", NULL, NULL));
    ck_assert_ptr_null(ev_metrics_counter(m, "y", NULL, "a=1"));
    ck_assert_ptr_null(ev_metrics_counter(m, "y", NULL, "a=\"1\"b=\"2\""));
    ck_assert_ptr_null(ev_metrics_counter(m, "y", NULL, "a=\"1\",a=\"2\""));
    ck_assert_ptr_null(ev_metrics_counter(m, "y", NULL, "__name__=\"x\""));
    ck_assert_ptr_null(ev_metrics_counter(m, "y", NULL, "a=\"unterminated"));
    ck_assert_ptr_null(ev_metrics_counter(m, "y", NULL, "a=\"bad \\x escape\""));
    ck_assert_ptr_null(ev_metrics_counter(m, "y", NULL, "a=\"\xff\""));
    ck_assert_ptr_null(ev_metrics_counter(m, "y", NULL, "1a=\"x\""));
    ck_assert_ptr_null(ev_metrics_counter(NULL, "y", NULL, NULL));
    ck_assert_ptr_null(ev_metrics_new("bad prefix"));
    /* escaped values are accepted and kept as given */
    char esc[64];
    ck_assert_int_eq(ev_metrics_escape_label_value("a\"b\\c\nd", esc, sizeof(esc)), 0);
    ck_assert_str_eq(esc, "a\\\"b\\\\c\\nd");
    ck_assert_int_eq(ev_metrics_escape_label_value("a\"b", esc, 4), -1);
    ck_assert_int_eq(ev_metrics_escape_label_value("a\"b", esc, 5), 0);
    char labels[96];
    snprintf(labels, sizeof(labels), "v=\"%s\"", "a\\\"b\\\\c\\nd");
    ev_metric_t *e = ev_metrics_gauge(m, "escaped", "line one\nback\\slash", labels);
    ck_assert_ptr_nonnull(e);
    ev_metric_set(e, -1.5);
    /* counters never go down; gauges do */
    ev_metric_add(a, 2);
    ev_metric_add(a, -1);
    ev_metric_add(a, NAN);
    ck_assert(ev_metric_value(a) == 2);
    ev_metric_add(e, -1);
    ck_assert(ev_metric_value(e) == -2.5);
    /* NULL handles are no-ops */
    ev_metric_add(NULL, 1);
    ev_metric_set(NULL, 1);
    ev_histogram_observe(NULL, 1);
    ck_assert(ev_metric_value(NULL) == 0);

    char *text = ev_metrics_render(m);
    ck_assert_str_eq(text, "# HELP app_escaped line one\\nback\\\\slash\n"
                           "# TYPE app_escaped gauge\n"
                           "app_escaped{v=\"a\\\"b\\\\c\\nd\"} -2.5\n"
                           "# HELP app_x_total X\n"
                           "# TYPE app_x_total counter\n"
                           "app_x_total{a=\"2\"} 0\n"
                           "app_x_total{a=\"2\",b=\"1\"} 2\n");
    free(text);
    ev_metrics_destroy(m);
}
END_TEST

START_TEST(test_metrics_number_formats) {
    ev_metrics_t *m = ev_metrics_new("");
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {1, "1"},
        {0.1, "0.1"},
        {1.5e-7, "1.5e-07"},
        {1e20, "1e+20"},
        {123456789012, "123456789012"},
        {2.0 / 3, "0.6666666666666666"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[32], expected[128];
        snprintf(name, sizeof(name), "g%zu", i);
        ev_metric_set(ev_metrics_gauge(m, name, "h", NULL), cases[i].v);
        char *text = ev_metrics_render(m);
        snprintf(expected, sizeof(expected), "%s %s\n", name, cases[i].text);
        ck_assert_msg(strstr(text, expected) != NULL, "missing \"%s\" in:\n%s", expected, text);
        free(text);
    }
    ev_metrics_destroy(m);
}
END_TEST

START_TEST(test_metrics_histogram_rules) {
    ev_metrics_t *m = ev_metrics_new("h");
    static const double b1[] = {1, 2}, b2[] = {1, 3}, bad[] = {2, 1}, dup[] = {1, 1},
                        inf[] = {1, INFINITY};
    ev_histogram_t *h = ev_metrics_histogram(m, "lat", "L", b1, 2);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_eq(ev_metrics_histogram(m, "lat", "L", b1, 2), h);
    ck_assert_ptr_null(ev_metrics_histogram(m, "lat", "L", b2, 2));
    ck_assert_ptr_null(ev_metrics_histogram(m, "lat", "L", b1, 1));
    ck_assert_ptr_null(ev_metrics_histogram(m, "x", "L", bad, 2));
    ck_assert_ptr_null(ev_metrics_histogram(m, "x", "L", dup, 2));
    ck_assert_ptr_null(ev_metrics_histogram(m, "x", "L", inf, 2));
    ck_assert_ptr_null(ev_metrics_counter(m, "lat", "L", NULL));
    ev_histogram_observe(h, NAN);
    ev_histogram_observe(h, -5);
    ev_histogram_observe(h, 2);
    ev_histogram_observe(h, INFINITY);
    ev_histogram_t *only_inf = ev_metrics_histogram(m, "any", "no bounds", NULL, 0);
    ck_assert_ptr_nonnull(only_inf);
    ev_histogram_observe(only_inf, 4);
    char *text = ev_metrics_render(m);
    ck_assert_str_eq(text, "# HELP h_any no bounds\n"
                           "# TYPE h_any histogram\n"
                           "h_any_bucket{le=\"+Inf\"} 1\n"
                           "h_any_sum 4\n"
                           "h_any_count 1\n"
                           "# HELP h_lat L\n"
                           "# TYPE h_lat histogram\n"
                           "h_lat_bucket{le=\"1\"} 1\n"
                           "h_lat_bucket{le=\"2\"} 2\n"
                           "h_lat_bucket{le=\"+Inf\"} 3\n"
                           "h_lat_sum +Inf\n"
                           "h_lat_count 3\n");
    free(text);
    ev_metrics_destroy(m);
}
END_TEST

START_TEST(test_metrics_series_cap) {
    ev_metrics_t *m = ev_metrics_new("cap");
    char labels[32];
    for (int i = 0; i < EV_METRICS_MAX_SERIES; i++) {
        snprintf(labels, sizeof(labels), "i=\"%d\"", i);
        ck_assert_ptr_nonnull(ev_metrics_counter(m, "c_total", "C", labels));
    }
    snprintf(labels, sizeof(labels), "i=\"%d\"", EV_METRICS_MAX_SERIES);
    ck_assert_ptr_null(ev_metrics_counter(m, "c_total", "C", labels));
    ck_assert_ptr_null(ev_metrics_gauge(m, "other", "O", NULL));
    /* existing series are still found */
    ck_assert_ptr_nonnull(ev_metrics_counter(m, "c_total", "C", "i=\"0\""));
    char *text = ev_metrics_render(m);
    ck_assert_ptr_nonnull(text);
    size_t lines = 0;
    for (const char *p = text; *p; p++) lines += *p == '\n';
    ck_assert_uint_eq(lines, EV_METRICS_MAX_SERIES + 2);
    free(text);
    ev_metrics_destroy(m);
}
END_TEST

static atomic_int ready_flag;

static int ready_probe(void *ud, char *reason, size_t reason_size) {
    ck_assert_ptr_eq(ud, &ready_flag);
    if (atomic_load(&ready_flag)) return 1;
    snprintf(reason, reason_size, "waiting for a partition assignment");
    return 0;
}

START_TEST(test_metrics_http_endpoints) {
    ev_metrics_t *m = sample_registry();
    char errstr[256];
    ck_assert_int_eq(ev_metrics_port(m), -1);
    atomic_store(&ready_flag, 0);
    ck_assert_int_eq(ev_metrics_serve(m, 0, ready_probe, &ready_flag, errstr, sizeof(errstr)), 0);
    int port = ev_metrics_port(m);
    ck_assert_int_gt(port, 0);

    http_reply_t r = http_get(port, "/metrics");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    ck_assert_str_eq(r.body, sample_text);
    free(r.body);

    /* values updated after start are served */
    ev_metric_add(ev_metrics_counter(m, "messages_consumed_total", NULL, NULL), 1);
    r = http_get(port, "/metrics?debug=1");
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\nevpipe_ingest_messages_consumed_total 6\n"));
    free(r.body);

    r = http_get(port, "/healthz");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "ok\n");
    free(r.body);

    r = http_get(port, "/readyz");
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.body, "waiting for a partition assignment\n");
    free(r.body);
    atomic_store(&ready_flag, 1);
    r = http_get(port, "/readyz");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "ok\n");
    free(r.body);

    r = http_get(port, "/");
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(r.body, "not found\n");
    free(r.body);
    r = http_get(port, "/metrics/extra");
    ck_assert_int_eq(r.status, 404);
    free(r.body);
    r = http_request(port, "POST", "/metrics");
    ck_assert_int_eq(r.status, 405);
    free(r.body);
    r = http_request(port, "HEAD", "/healthz");
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.len, 0);
    free(r.body);

    /* a second server on the same registry, or on a taken port, is refused */
    ck_assert_int_eq(ev_metrics_serve(m, 0, NULL, NULL, errstr, sizeof(errstr)), -1);
    snprintf(r.content_type, sizeof(r.content_type), "already serving on port %d", port);
    ck_assert_str_eq(errstr, r.content_type);
    ev_metrics_t *other = ev_metrics_new("other");
    ck_assert_int_eq(ev_metrics_serve(other, port, NULL, NULL, errstr, sizeof(errstr)), -1);
    ck_assert_msg(strstr(errstr, "cannot listen on 0.0.0.0:") == errstr, "%s", errstr);
    ck_assert_int_eq(ev_metrics_serve(other, 70000, NULL, NULL, errstr, sizeof(errstr)), -1);
    ck_assert_str_eq(errstr, "port 70000 out of range 0..65535");
    ck_assert_int_eq(ev_metrics_port(other), -1);
    ev_metrics_destroy(other);

    /* stopping closes the port; serving again works */
    ev_metrics_stop(m);
    ck_assert_int_eq(ev_metrics_port(m), -1);
    ck_assert_int_eq(ev_metrics_serve(m, port, NULL, NULL, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(ev_metrics_port(m), port);
    r = http_get(port, "/readyz"); /* no probe: ready */
    ck_assert_int_eq(r.status, 200);
    free(r.body);
    ev_metrics_destroy(m);
}
END_TEST

/* The port is free again once the registry is destroyed. */
START_TEST(test_metrics_destroy_releases_port) {
    ev_metrics_t *m = ev_metrics_new("p");
    char errstr[256];
    ck_assert_int_eq(ev_metrics_serve(m, 0, NULL, NULL, errstr, sizeof(errstr)), 0);
    int port = ev_metrics_port(m);
    ev_metrics_destroy(m);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
}
END_TEST

#define UPDATES_PER_THREAD 1000000

typedef struct {
    ev_metrics_t *m;
    atomic_int *stop;
    int renders;
} worker_t;

static void *update_worker(void *arg) {
    worker_t *w = arg;
    /* handles looked up by each thread: get-or-create races on the same series */
    ev_metric_t *c = ev_metrics_counter(w->m, "events_total", "E", "kind=\"a\"");
    ev_metric_t *g = ev_metrics_gauge(w->m, "level", "L", NULL);
    static const double bounds[] = {1, 10};
    ev_histogram_t *h = ev_metrics_histogram(w->m, "size", "S", bounds, 2);
    for (int i = 0; i < UPDATES_PER_THREAD; i++) {
        ev_metric_add(c, 1);
        ev_metric_add(g, 0.5);
        ev_histogram_observe(h, (double)(i % 20));
        if (i % 50000 == 0)
            ev_metric_add(ev_metrics_counter(w->m, "events_total", "E", "kind=\"b\""), 1);
    }
    return NULL;
}

static void *scrape_worker(void *arg) {
    worker_t *w = arg;
    int port = ev_metrics_port(w->m);
    while (!atomic_load(w->stop)) {
        http_reply_t r = http_get(port, "/metrics");
        ck_assert_int_eq(r.status, 200);
        /* a histogram scrape is consistent: +Inf bucket == _count */
        const char *inf = strstr(r.body, "conc_size_bucket{le=\"+Inf\"} ");
        const char *count = strstr(r.body, "conc_size_count ");
        if (inf && count)
            ck_assert_int_eq(strtoll(inf + strlen("conc_size_bucket{le=\"+Inf\"} "), NULL, 10),
                             strtoll(count + strlen("conc_size_count "), NULL, 10));
        free(r.body);
        w->renders++;
    }
    return NULL;
}

START_TEST(test_metrics_concurrent_updates_exact) {
    ev_metrics_t *m = ev_metrics_new("conc");
    char errstr[256];
    ck_assert_int_eq(ev_metrics_serve(m, 0, NULL, NULL, errstr, sizeof(errstr)), 0);
    atomic_int stop = 0;
    worker_t w1 = {m, &stop, 0}, w2 = {m, &stop, 0}, ws = {m, &stop, 0};
    pthread_t t1, t2, ts;
    ck_assert_int_eq(pthread_create(&ts, NULL, scrape_worker, &ws), 0);
    ck_assert_int_eq(pthread_create(&t1, NULL, update_worker, &w1), 0);
    ck_assert_int_eq(pthread_create(&t2, NULL, update_worker, &w2), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    atomic_store(&stop, 1);
    pthread_join(ts, NULL);
    ck_assert_int_gt(ws.renders, 0);

    http_reply_t r = http_get(ev_metrics_port(m), "/metrics");
    /* Per thread, N = UPDATES_PER_THREAD values i % 20, each residue N / 20 times:
     * le 1 holds residues 0..1 (N / 10), le 10 residues 0..10 (11 N / 20), and the
     * sum is (N / 20) * (0 + 1 + ... + 19) = 9.5 N. kind="b": i % 50000 == 0. */
    const long long n = UPDATES_PER_THREAD;
    char expected[1024];
    snprintf(expected, sizeof(expected),
             "# HELP conc_events_total E\n"
             "# TYPE conc_events_total counter\n"
             "conc_events_total{kind=\"a\"} %lld\n"
             "conc_events_total{kind=\"b\"} %lld\n"
             "# HELP conc_level L\n"
             "# TYPE conc_level gauge\n"
             "conc_level %lld\n"
             "# HELP conc_size S\n"
             "# TYPE conc_size histogram\n"
             "conc_size_bucket{le=\"1\"} %lld\n"
             "conc_size_bucket{le=\"10\"} %lld\n"
             "conc_size_bucket{le=\"+Inf\"} %lld\n"
             "conc_size_sum %lld\n"
             "conc_size_count %lld\n",
             2 * n, 2 * (n / 50000), n, 2 * (n / 10), 2 * (11 * n / 20), 2 * n, 19 * n, 2 * n);
    ck_assert_str_eq(r.body, expected);
    ck_assert_str_eq(strstr(expected, "conc_size_sum"),
                     "conc_size_sum 19000000\nconc_size_count 2000000\n");
    free(r.body);
    ev_metrics_destroy(m);
}
END_TEST

static Suite *metrics_suite(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_metrics_render_exact_text);
    tcase_add_test(tc, test_metrics_get_or_create_and_validation);
    tcase_add_test(tc, test_metrics_number_formats);
    tcase_add_test(tc, test_metrics_histogram_rules);
    tcase_add_test(tc, test_metrics_series_cap);
    tcase_add_test(tc, test_metrics_http_endpoints);
    tcase_add_test(tc, test_metrics_destroy_releases_port);
    tcase_add_test(tc, test_metrics_concurrent_updates_exact);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = tl_run_suite(metrics_suite());
    curl_global_cleanup();
    return failed == 0 ? 0 : 1;
}
