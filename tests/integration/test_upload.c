/* test_upload.c — the upload module against real servers started here: Debian nginx
 * with WebDAV PUT/DELETE (stored bytes and sha256 equal the source), a scripted fault
 * server (500, 429 + Retry-After, stalls, dropped connections, 403, 404 on DELETE;
 * headers and auth recorded and checked), SigV4 signatures verified independently with
 * python3-botocore, keep_going aborts, file:// targets, URL joins and bad input. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "sinks/upload.h"
#include "tests/integration/fault_http.h"
#include "tests/integration/nginx_dav.h"
#include "tests/testlib.h"

#define PYTHON_BIN "/usr/bin/python3"

static char errstr[1024];

/* ---- helpers ------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sha256_raw(const void *data, size_t len, unsigned char md[32]) {
    unsigned int n = 0;
    ck_assert(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) == 1 && n == 32);
}

static void sha256_hex(const void *data, size_t len, char hex[65]) {
    unsigned char md[32];
    sha256_raw(data, len, md);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void b64(const void *data, size_t len, char *out) {
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
}

static void sha256_b64(const void *data, size_t len, char out[45]) {
    unsigned char md[32];
    sha256_raw(data, len, md);
    b64(md, 32, out);
}

/* A private temp folder (malloc'd), world-traversable so nginx workers reach it. */
static char *temp_dir(void) {
    char *d = strdup("/tmp/evupl.XXXXXX");
    ck_assert(mkdtemp(d) != NULL);
    chmod(d, 0755);
    return d;
}

static void rm_rf(const char *dir) {
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert(system(cmd) == 0);
}

/* Writes len deterministic pseudo-random bytes (seed) to path; returns them (malloc'd). */
static unsigned char *write_file(const char *path, size_t len, unsigned seed) {
    unsigned char *data = malloc(len + 1);
    ck_assert(data != NULL);
    unsigned x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (unsigned char)x;
    }
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    ck_assert(len == 0 || fwrite(data, 1, len, f) == len);
    ck_assert(fclose(f) == 0);
    return data;
}

/* The whole content of path (malloc'd) or NULL when it does not exist. */
static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc((size_t)n + 1);
    ck_assert(n == 0 || fread(data, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return data;
}

/* Options for fast tests: short timeouts and backoff. */
static upload_opts_t fast_opts(int attempts) {
    upload_opts_t o = {0};
    o.max_attempts = attempts;
    o.backoff_base_ms = 20;
    o.backoff_max_ms = 200;
    o.connect_timeout_ms = 2000;
    o.stall_timeout_ms = 3000;
    return o;
}

/* A source file of len bytes in dir; fills its sha256. Returns the bytes. */
typedef struct src_s {
    char path[512];
    unsigned char *data;
    size_t len;
    char hex[65];
    char b64[45];
} src_t;

static void src_make(src_t *s, const char *dir, const char *name, size_t len, unsigned seed) {
    snprintf(s->path, sizeof(s->path), "%s/%s", dir, name);
    s->data = write_file(s->path, len, seed);
    s->len = len;
    sha256_hex(s->data, len, s->hex);
    sha256_b64(s->data, len, s->b64);
}

static void assert_header(const fh_request_t *r, const char *name, const char *want) {
    char v[2048];
    const char *got = fh_header(r, name, v, sizeof(v));
    ck_assert_msg(got != NULL, "no %s header in:\n%s", name, r->headers);
    ck_assert_msg(strcmp(got, want) == 0, "%s: got \"%s\", want \"%s\"", name, got, want);
}

/* ---- nginx WebDAV -------------------------------------------------------------- */

static nginx_dav_t dav;
static void nginx_setup(void) { nginx_dav_start(&dav); }
static void nginx_teardown(void) { nginx_dav_stop(&dav); }

/* PUTs src to base + rel on nginx and checks the stored bytes. */
static void nginx_put_and_check(const src_t *s, const char *rel) {
    char base[128];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/b/", dav.port);
    char *url = upload_join_url(base, rel, errstr, sizeof(errstr));
    ck_assert_msg(url != NULL, "%s", errstr);
    char want_url[256];
    snprintf(want_url, sizeof(want_url), "http://127.0.0.1:%d/b/%s", dav.port, rel);
    ck_assert_str_eq(url, want_url);
    upload_opts_t o = fast_opts(3);
    upload_result_t res;
    int rc = upload_put(&o, url, s->path, (long long)s->len, s->hex, "text/csv", &res, errstr,
                        sizeof(errstr));
    ck_assert_msg(rc == 0, "%s", errstr);
    ck_assert_int_eq(res.attempts, 1);
    ck_assert(res.http_status == 201 || res.http_status == 204);
    char stored[700];
    snprintf(stored, sizeof(stored), "%s/root/b/%s", dav.dir, rel);
    size_t len = 0;
    unsigned char *got = slurp(stored, &len);
    ck_assert_msg(got != NULL, "nothing stored at %s", stored);
    ck_assert_uint_eq(len, s->len);
    ck_assert(len == 0 || memcmp(got, s->data, len) == 0);
    char hex[65];
    sha256_hex(got, len, hex);
    ck_assert_str_eq(hex, s->hex);
    free(got);
    free(url);
}

START_TEST(test_upload_nginx_put_sizes_and_delete) {
    if (!dav.pid) return;
    char *dir = temp_dir();
    src_t s0, s1, big;
    src_make(&s0, dir, "empty", 0, 1);
    src_make(&s1, dir, "one", 1, 2);
    src_make(&big, dir, "big", 5 * 1024 * 1024 + 123, 3);
    nginx_put_and_check(&s0, "exports/empty.csv");
    nginx_put_and_check(&s1, "exports/one.csv");
    nginx_put_and_check(&big, "exports/deep/er/big.csv");
    /* Overwrite: the same name now holds the 1-byte file. */
    nginx_put_and_check(&s1, "exports/deep/er/big.csv");

    char url[256], stored[700];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/b/exports/one.csv", dav.port);
    snprintf(stored, sizeof(stored), "%s/root/b/exports/one.csv", dav.dir);
    upload_opts_t o = fast_opts(3);
    upload_result_t res;
    ck_assert_msg(upload_delete(&o, url, &res, errstr, sizeof(errstr)) == 0, "%s", errstr);
    ck_assert_int_eq(res.http_status, 204);
    struct stat st;
    ck_assert(stat(stored, &st) != 0 && errno == ENOENT);
    /* Already gone: nginx says 404, which counts as deleted. */
    ck_assert_msg(upload_delete(&o, url, &res, errstr, sizeof(errstr)) == 0, "%s", errstr);
    ck_assert_int_eq(res.http_status, 404);
    ck_assert_int_eq(res.attempts, 1);
    free(s0.data);
    free(s1.data);
    free(big.data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- URL join -------------------------------------------------------------------- */

START_TEST(test_upload_join_url_table) {
    static const struct {
        const char *base, *rel, *want; /* want NULL = error containing err */
        const char *err;
    } cases[] = {
        {"http://h/b", "exports/x.csv", "http://h/b/exports/x.csv", NULL},
        {"http://h/b/", "exports/x.csv", "http://h/b/exports/x.csv", NULL},
        {"http://h/b//", "/exports/x.csv", "http://h/b/exports/x.csv", NULL},
        {"http://h", "x.json", "http://h/x.json", NULL},
        {"https://h:8443/a/b", "c d+e.csv", "https://h:8443/a/b/c%20d%2be.csv", NULL},
        {"https://bucket.s3.eu-west-1.amazonaws.com/", "exports/7.xlsx",
         "https://bucket.s3.eu-west-1.amazonaws.com/exports/7.xlsx", NULL},
        {"http://h/b?token=1", "y.csv", "http://h/b/y.csv?token=1", NULL},
        {"file:///var/exports", "exports/1.csv.gz", "file:///var/exports/exports/1.csv.gz", NULL},
        {"http://h/b", "../etc/passwd", NULL, "bad relative"},
        {"http://h/b", "a/../../x", NULL, "bad relative"},
        {"http://h/b", "", NULL, "bad relative"},
        {"http://h/b", "dir/", NULL, "bad relative"},
        {"ftp://h/b", "x", NULL, "unsupported upload URL scheme \"ftp\""},
        {"http://", "x", NULL, "malformed upload URL"},
        {"", "x", NULL, "empty upload URL"},
        {"no scheme here", "x", NULL, "malformed upload URL"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        errstr[0] = '\0';
        char *got = upload_join_url(cases[i].base, cases[i].rel, errstr, sizeof(errstr));
        if (cases[i].want) {
            ck_assert_msg(got != NULL, "case %zu: %s", i, errstr);
            ck_assert_msg(strcmp(got, cases[i].want) == 0, "case %zu: got %s want %s", i, got,
                          cases[i].want);
        } else {
            ck_assert_msg(got == NULL, "case %zu: got %s", i, got);
            ck_assert_msg(strstr(errstr, cases[i].err) != NULL, "case %zu: %s", i, errstr);
        }
        free(got);
    }
    ck_assert_ptr_null(upload_join_url(NULL, "x", errstr, sizeof(errstr)));
}
END_TEST

/* ---- fault server ---------------------------------------------------------------- */

static void fault_url(const fh_server_t *f, const char *path, char *out, size_t n) {
    snprintf(out, n, "http://127.0.0.1:%d%s", fh_port(f), path);
}

/* The recorded PUT carries exactly src's body and its checksum headers. */
static void assert_put_of(const fh_request_t *r, const src_t *s, const char *path) {
    ck_assert_str_eq(r->method, "PUT");
    ck_assert_str_eq(r->path, path);
    ck_assert_int_eq(r->content_length, (long long)s->len);
    ck_assert_uint_eq(r->body_len, s->len);
    ck_assert(s->len == 0 || memcmp(r->body, s->data, s->len) == 0);
    char want[128];
    snprintf(want, sizeof(want), "sha-256=:%s:", s->b64);
    assert_header(r, "Content-Digest", want);
    snprintf(want, sizeof(want), "SHA-256=%s", s->b64);
    assert_header(r, "Digest", want);
}

START_TEST(test_upload_retry_500_then_200_headers) {
    char *dir = temp_dir();
    src_t s;
    src_make(&s, dir, "f.csv", 70000, 7);
    fh_step_t steps[] = {{FH_STATUS, 500, NULL}, {FH_STATUS, 200, NULL}};
    fh_server_t *f = fh_start(steps, 2);
    char url[256];
    fault_url(f, "/x/f.csv", url, sizeof(url));
    upload_opts_t o = fast_opts(4);
    upload_result_t res;
    int rc = upload_put(&o, url, s.path, (long long)s.len, s.hex, "text/csv; charset=utf-8", &res,
                        errstr, sizeof(errstr));
    ck_assert_msg(rc == 0, "%s", errstr);
    ck_assert_int_eq(res.attempts, 2);
    ck_assert_int_eq(res.http_status, 200);
    ck_assert_int_eq(res.permanent, 0);
    ck_assert_int_eq(fh_count(f), 2);
    for (int i = 0; i < 2; i++) {
        const fh_request_t *r = fh_request(f, i);
        assert_put_of(r, &s, "/x/f.csv");
        assert_header(r, "Content-Type", "text/csv; charset=utf-8");
        char v[64];
        ck_assert_ptr_null(fh_header(r, "Authorization", v, sizeof(v)));
        ck_assert_ptr_null(fh_header(r, "x-amz-checksum-sha256", v, sizeof(v)));
    }
    fh_stop(f);
    free(s.data);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_upload_429_retry_after_seconds_and_date) {
    char *dir = temp_dir();
    src_t s;
    src_make(&s, dir, "f", 10, 8);
    upload_opts_t o = fast_opts(3);
    o.backoff_max_ms = 5000;
    upload_result_t res;
    char url[256];

    fh_step_t steps[] = {{FH_STATUS, 429, "Retry-After: 1\r\n"}, {FH_STATUS, 201, NULL}};
    fh_server_t *f = fh_start(steps, 2);
    fault_url(f, "/r", url, sizeof(url));
    ck_assert_msg(upload_put(&o, url, s.path, 10, s.hex, NULL, &res, errstr, sizeof(errstr)) == 0,
                  "%s", errstr);
    ck_assert_int_eq(res.attempts, 2);
    ck_assert_int_eq(res.http_status, 201);
    double gap = (double)(fh_request(f, 1)->at_ns - fh_request(f, 0)->at_ns) / 1e9;
    ck_assert_msg(gap >= 0.95 && gap < 3.0, "Retry-After: 1 gave a gap of %.3f s", gap);
    fh_stop(f);

    /* An HTTP date two seconds ahead: at least one second once rounded to seconds. */
    char date_hdr[128];
    time_t later = time(NULL) + 2;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(date_hdr, sizeof(date_hdr), "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    fh_step_t steps2[] = {{FH_STATUS, 503, date_hdr}, {FH_STATUS, 200, NULL}};
    f = fh_start(steps2, 2);
    fault_url(f, "/r", url, sizeof(url));
    ck_assert_msg(upload_put(&o, url, s.path, 10, s.hex, NULL, &res, errstr, sizeof(errstr)) == 0,
                  "%s", errstr);
    ck_assert_int_eq(res.attempts, 2);
    gap = (double)(fh_request(f, 1)->at_ns - fh_request(f, 0)->at_ns) / 1e9;
    ck_assert_msg(gap >= 0.95 && gap < 4.0, "Retry-After date gave a gap of %.3f s", gap);
    fh_stop(f);

    /* Retry-After beyond backoff_max_ms is capped. */
    o.backoff_max_ms = 300;
    fh_step_t steps3[] = {{FH_STATUS, 429, "Retry-After: 100\r\n"}, {FH_STATUS, 200, NULL}};
    f = fh_start(steps3, 2);
    fault_url(f, "/r", url, sizeof(url));
    double t0 = now_s();
    ck_assert_msg(upload_put(&o, url, s.path, 10, s.hex, NULL, &res, errstr, sizeof(errstr)) == 0,
                  "%s", errstr);
    ck_assert_int_eq(res.attempts, 2);
    ck_assert_msg(now_s() - t0 < 2.0, "Retry-After not capped: %.3f s", now_s() - t0);
    fh_stop(f);
    free(s.data);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_upload_stall_then_retry_succeeds) {
    char *dir = temp_dir();
    src_t s;
    src_make(&s, dir, "f", 3000, 9);
    fh_step_t steps[] = {{FH_STALL, 0, NULL}, {FH_STATUS, 200, NULL}};
    fh_server_t *f = fh_start(steps, 2);
    char url[256];
    fault_url(f, "/stall", url, sizeof(url));
    upload_opts_t o = fast_opts(3);
    o.stall_timeout_ms = 600;
    upload_result_t res;
    double t0 = now_s();
    int rc = upload_put(&o, url, s.path, 3000, s.hex, NULL, &res, errstr, sizeof(errstr));
    double took = now_s() - t0;
    ck_assert_msg(rc == 0, "%s", errstr);
    ck_assert_int_eq(res.attempts, 2);
    ck_assert_msg(took >= 0.6 && took < 4.0, "stall timeout of 600 ms took %.3f s", took);
    ck_assert_int_eq(fh_count(f), 2);
    assert_put_of(fh_request(f, 1), &s, "/stall");
    fh_stop(f);

    /* Stalling every time: the error says so. */
    fh_step_t always[] = {{FH_STALL, 0, NULL}};
    f = fh_start(always, 1);
    fault_url(f, "/stall", url, sizeof(url));
    o.max_attempts = 2;
    o.stall_timeout_ms = 300;
    rc = upload_put(&o, url, s.path, 3000, s.hex, NULL, &res, errstr, sizeof(errstr));
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(res.attempts, 2);
    ck_assert_int_eq(res.http_status, 0);
    ck_assert_msg(strstr(errstr, "stalled, no progress for 300 ms") != NULL, "%s", errstr);
    fh_stop(f);
    free(s.data);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_upload_dropped_mid_body_then_retry) {
    char *dir = temp_dir();
    src_t s;
    src_make(&s, dir, "f", 4 * 1024 * 1024, 10);
    fh_step_t steps[] = {{FH_DROP, 0, NULL}, {FH_STATUS, 200, NULL}};
    fh_server_t *f = fh_start(steps, 2);
    char url[256];
    fault_url(f, "/drop", url, sizeof(url));
    upload_opts_t o = fast_opts(3);
    upload_result_t res;
    int rc = upload_put(&o, url, s.path, (long long)s.len, s.hex, NULL, &res, errstr,
                        sizeof(errstr));
    ck_assert_msg(rc == 0, "%s", errstr);
    ck_assert_int_eq(res.attempts, 2);
    ck_assert_int_eq(fh_count(f), 2);
    ck_assert(fh_request(f, 0)->body_len < s.len);
    assert_put_of(fh_request(f, 1), &s, "/drop"); /* the retry resent every byte */
    fh_stop(f);
    free(s.data);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_upload_403_permanent_and_exhausted_attempts) {
    char *dir = temp_dir();
    src_t s;
    src_make(&s, dir, "f", 100, 11);
    fh_step_t steps[] = {{FH_STATUS, 403, NULL}};
    fh_server_t *f = fh_start(steps, 1);
    char url[256];
    fault_url(f, "/deny", url, sizeof(url));
    upload_opts_t o = fast_opts(5);
    upload_result_t res;
    int rc = upload_put(&o, url, s.path, 100, s.hex, NULL, &res, errstr, sizeof(errstr));
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(res.attempts, 1);
    ck_assert_int_eq(res.permanent, 1);
    ck_assert_int_eq(res.http_status, 403);
    ck_assert_int_eq(fh_count(f), 1);
    char want[512];
    snprintf(want, sizeof(want),
             "PUT http://127.0.0.1:%d/deny: HTTP 403: <Error><Code>Scripted</Code> "
             "<Message>fault server says no</Message></Error>",
             fh_port(f));
    ck_assert_str_eq(errstr, want);
    fh_stop(f);

    fh_step_t always[] = {{FH_STATUS, 503, NULL}};
    f = fh_start(always, 1);
    fault_url(f, "/busy", url, sizeof(url));
    o.max_attempts = 3;
    rc = upload_put(&o, url, s.path, 100, s.hex, NULL, &res, errstr, sizeof(errstr));
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(res.attempts, 3);
    ck_assert_int_eq(res.permanent, 0);
    ck_assert_int_eq(res.http_status, 503);
    ck_assert_int_eq(fh_count(f), 3);
    ck_assert_msg(strstr(errstr, ": HTTP 503: ") != NULL && strstr(errstr, "(after 3 attempts)"),
                  "%s", errstr);
    fh_stop(f);

    /* Nobody listening: connection errors are retried, then reported. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/none", tl_free_port());
    o.max_attempts = 2;
    rc = upload_put(&o, url, s.path, 100, s.hex, NULL, &res, errstr, sizeof(errstr));
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(res.attempts, 2);
    ck_assert_int_eq(res.http_status, 0);
    ck_assert_msg(strstr(errstr, "Couldn't connect") != NULL, "%s", errstr);
    free(s.data);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_upload_delete_statuses) {
    fh_step_t steps[] = {{FH_STATUS, 404, NULL}, {FH_STATUS, 410, NULL}, {FH_STATUS, 500, NULL},
                         {FH_STATUS, 204, NULL}, {FH_STATUS, 403, NULL}};
    fh_server_t *f = fh_start(steps, 5);
    char url[256];
    fault_url(f, "/exports/1.csv", url, sizeof(url));
    upload_opts_t o = fast_opts(3);
    upload_result_t res;
    ck_assert_msg(upload_delete(&o, url, &res, errstr, sizeof(errstr)) == 0, "%s", errstr);
    ck_assert_int_eq(res.http_status, 404);
    ck_assert_msg(upload_delete(&o, url, &res, errstr, sizeof(errstr)) == 0, "%s", errstr);
    ck_assert_int_eq(res.http_status, 410);
    ck_assert_msg(upload_delete(&o, url, &res, errstr, sizeof(errstr)) == 0, "%s", errstr);
    ck_assert_int_eq(res.attempts, 2);
    ck_assert_int_eq(res.http_status, 204);
    ck_assert_int_eq(upload_delete(&o, url, &res, errstr, sizeof(errstr)), -1);
    ck_assert_int_eq(res.permanent, 1);
    ck_assert_msg(strstr(errstr, "DELETE http://127.0.0.1:") && strstr(errstr, "HTTP 403"), "%s",
                  errstr);
    ck_assert_int_eq(fh_count(f), 5);
    for (int i = 0; i < 5; i++) {
        ck_assert_str_eq(fh_request(f, i)->method, "DELETE");
        ck_assert_str_eq(fh_request(f, i)->path, "/exports/1.csv");
        ck_assert_uint_eq(fh_request(f, i)->body_len, 0);
    }
    fh_stop(f);
}
END_TEST

START_TEST(test_upload_bearer_basic_and_no_secret_in_errors) {
    char *dir = temp_dir();
    src_t s;
    src_make(&s, dir, "f", 5, 12);
    fh_step_t steps[] = {{FH_STATUS, 200, NULL}, {FH_STATUS, 200, NULL}, {FH_STATUS, 401, NULL}};
    fh_server_t *f = fh_start(steps, 3);
    char url[256];
    fault_url(f, "/a", url, sizeof(url));
    upload_opts_t o = fast_opts(2);
    o.bearer_token = "tok-123.abc";
    upload_result_t res;
    ck_assert_msg(upload_put(&o, url, s.path, 5, s.hex, NULL, &res, errstr, sizeof(errstr)) == 0,
                  "%s", errstr);
    assert_header(fh_request(f, 0), "Authorization", "Bearer tok-123.abc");

    o = fast_opts(2);
    o.basic_user = "uploader";
    o.basic_password = "pa ss:wörd";
    ck_assert_msg(upload_put(&o, url, s.path, 5, s.hex, NULL, &res, errstr, sizeof(errstr)) == 0,
                  "%s", errstr);
    char b[128], want[160];
    b64("uploader:pa ss:wörd", strlen("uploader:pa ss:wörd"), b);
    snprintf(want, sizeof(want), "Basic %s", b);
    assert_header(fh_request(f, 1), "Authorization", want);

    /* Secrets in the URL (userinfo, a signed query) and the token stay out of errstr. */
    char secret_url[512];
    snprintf(secret_url, sizeof(secret_url),
             "http://alice:hunter2@127.0.0.1:%d/a/b.csv?X-Amz-Signature=deadbeefsecret#frag",
             fh_port(f));
    o = fast_opts(2);
    o.bearer_token = "tok-SECRET";
    ck_assert_int_eq(upload_put(&o, secret_url, s.path, 5, s.hex, NULL, &res, errstr,
                                sizeof(errstr)),
                     -1);
    ck_assert_int_eq(res.http_status, 401);
    ck_assert_int_eq(res.permanent, 1);
    char shown[256];
    snprintf(shown, sizeof(shown), "PUT http://127.0.0.1:%d/a/b.csv: HTTP 401", fh_port(f));
    ck_assert_msg(strncmp(errstr, shown, strlen(shown)) == 0, "%s", errstr);
    ck_assert(!strstr(errstr, "hunter2") && !strstr(errstr, "alice") &&
              !strstr(errstr, "deadbeef") && !strstr(errstr, "SECRET"));
    fh_stop(f);
    free(s.data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- keep_going -------------------------------------------------------------------- */

static double stop_at;
static int stop_after_deadline(void *ud) {
    int *calls = ud;
    (*calls)++;
    return now_s() >= stop_at;
}

START_TEST(test_upload_keep_going_aborts_backoff_and_stall) {
    char *dir = temp_dir();
    src_t s;
    src_make(&s, dir, "f", 2000, 13);
    int calls = 0;
    upload_opts_t o = fast_opts(5);
    o.backoff_max_ms = 60000;
    o.keep_going = stop_after_deadline;
    o.ud = &calls;
    upload_result_t res;
    char url[256];

    fh_step_t busy[] = {{FH_STATUS, 503, "Retry-After: 30\r\n"}};
    fh_server_t *f = fh_start(busy, 1);
    fault_url(f, "/k", url, sizeof(url));
    stop_at = now_s() + 0.5;
    double t0 = now_s();
    ck_assert_int_eq(upload_put(&o, url, s.path, 2000, s.hex, NULL, &res, errstr, sizeof(errstr)),
                     -1);
    double took = now_s() - t0;
    ck_assert_int_eq(res.aborted, 1);
    ck_assert_int_eq(res.attempts, 1);
    ck_assert_int_eq(res.http_status, 503);
    ck_assert_msg(took >= 0.45 && took < 1.5, "abort during backoff took %.3f s", took);
    ck_assert_msg(strstr(errstr, "HTTP 503") && strstr(errstr, "(then stopped)"), "%s", errstr);
    fh_stop(f);

    fh_step_t stall[] = {{FH_STALL, 0, NULL}};
    f = fh_start(stall, 1);
    fault_url(f, "/k", url, sizeof(url));
    o.stall_timeout_ms = 30000;
    calls = 0;
    stop_at = now_s() + 0.5;
    t0 = now_s();
    ck_assert_int_eq(upload_put(&o, url, s.path, 2000, s.hex, NULL, &res, errstr, sizeof(errstr)),
                     -1);
    took = now_s() - t0;
    ck_assert_int_eq(res.aborted, 1);
    ck_assert_int_eq(res.attempts, 1);
    ck_assert_msg(took >= 0.45 && took < 1.5, "abort during a stall took %.3f s", took);
    ck_assert_msg(calls >= 3, "keep_going asked only %d times in 0.5 s", calls);
    ck_assert_msg(strstr(errstr, "stopped (shutdown or lost lease)") != NULL, "%s", errstr);
    fh_stop(f);
    free(s.data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- SigV4 ----------------------------------------------------------------------- */

/* Recomputes the signature of a recorded request with botocore's S3 signer over the
 * headers the request says it signed, and compares it with the one sent. */
static const char *VERIFY_PY =
    "import sys\n"
    "from botocore.auth import S3SigV4Auth\n"
    "from botocore.awsrequest import AWSRequest\n"
    "from botocore.credentials import Credentials\n"
    "head, body_path, ak, sk, region = sys.argv[1:6]\n"
    "lines = open(head, encoding='latin-1').read().split('\\n')\n"
    "method, path = lines[0], lines[1]\n"
    "h = {}\n"
    "for l in lines[2:]:\n"
    "    if l.strip():\n"
    "        n, v = l.split(':', 1)\n"
    "        h[n.strip().lower()] = v.strip()\n"
    "auth = h['authorization']\n"
    "assert auth.startswith('AWS4-HMAC-SHA256 '), auth\n"
    "parts = dict(p.strip().split('=', 1) for p in auth[17:].split(','))\n"
    "signed = parts['SignedHeaders'].split(';')\n"
    "body = open(body_path, 'rb').read()\n"
    "req = AWSRequest(method=method, url='http://' + h['host'] + path, data=body,\n"
    "                 headers={n: h[n] for n in signed})\n"
    "req.context['timestamp'] = h['x-amz-date']\n"
    "signer = S3SigV4Auth(Credentials(ak, sk), 's3', region)\n"
    "cr = signer.canonical_request(req)\n"
    "sig = signer.signature(signer.string_to_sign(req, cr), req)\n"
    "scope = [ak, h['x-amz-date'][:8], region, 's3', 'aws4_request']\n"
    "problems = []\n"
    "if sig != parts['Signature']: problems.append('signature %s != %s' % (parts['Signature'], sig))\n"
    "if parts['Credential'].split('/') != scope: problems.append('scope ' + parts['Credential'])\n"
    "if signer.signed_headers(signer.headers_to_sign(req)) != parts['SignedHeaders']:\n"
    "    problems.append('signed headers ' + parts['SignedHeaders'])\n"
    "print('OK ' + parts['SignedHeaders'] if not problems else 'MISMATCH ' + '; '.join(problems))\n"
    "sys.exit(1 if problems else 0)\n";

/* Runs the verifier on r with the given secret; returns its exit status, output in out. */
static int botocore_verify(const char *dir, const fh_request_t *r, const char *ak,
                           const char *sk, const char *region, char **out) {
    char py[600], head[600], body[600], cmd[3000];
    snprintf(py, sizeof(py), "%s/verify.py", dir);
    snprintf(head, sizeof(head), "%s/req.head", dir);
    snprintf(body, sizeof(body), "%s/req.body", dir);
    FILE *f = fopen(py, "w");
    ck_assert(f && fputs(VERIFY_PY, f) >= 0 && fclose(f) == 0);
    f = fopen(head, "w");
    ck_assert(f != NULL);
    fprintf(f, "%s\n%s\n", r->method, r->path);
    for (const char *p = r->headers; *p; p++)
        if (*p != '\r') fputc(*p, f);
    ck_assert(fclose(f) == 0);
    f = fopen(body, "wb");
    ck_assert(f && (r->body_len == 0 || fwrite(r->body, 1, r->body_len, f) == r->body_len));
    ck_assert(fclose(f) == 0);
    snprintf(cmd, sizeof(cmd), "%s '%s' '%s' '%s' '%s' '%s' '%s'", PYTHON_BIN, py, head, body, ak,
             sk, region);
    char *err = NULL;
    int rc = tl_run(cmd, out, &err);
    ck_assert_msg(rc == 0 || rc == 1, "verifier failed to run (%d): %s", rc, err ? err : "");
    if (rc != 0 && err && *err) fprintf(stderr, "verifier: %s\n", err);
    free(err);
    return rc;
}

START_TEST(test_upload_sigv4_verified_by_botocore) {
    if (access(PYTHON_BIN, X_OK) != 0 ||
        tl_run(PYTHON_BIN " -c 'import botocore'", NULL, NULL) != 0) {
        ck_abort_msg("%s with botocore is required (sh tools/deps.sh installs python3-botocore)",
                     PYTHON_BIN);
    }
    char *dir = temp_dir();
    src_t s;
    src_make(&s, dir, "f.json", 100000, 14);
    fh_step_t steps[] = {{FH_STATUS, 200, NULL}, {FH_STATUS, 204, NULL}};
    fh_server_t *f = fh_start(steps, 2);
    const char *ak = "AKIDEXAMPLE", *sk = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    upload_opts_t o = fast_opts(2);
    o.aws_sigv4 = "aws:amz:eu-west-1:s3";
    o.aws_access_key = ak;
    o.aws_secret_key = sk;
    o.aws_session_token = "FwoGZXIvYXdzE+/session=";
    char url[256];
    fault_url(f, "/bucket/exports/42.json", url, sizeof(url));
    upload_result_t res;
    ck_assert_msg(upload_put(&o, url, s.path, (long long)s.len, s.hex, "application/json", &res,
                             errstr, sizeof(errstr)) == 0,
                  "%s", errstr);
    const fh_request_t *r = fh_request(f, 0);
    ck_assert_uint_eq(r->body_len, s.len);
    ck_assert(memcmp(r->body, s.data, s.len) == 0);
    assert_header(r, "x-amz-checksum-sha256", s.b64);
    assert_header(r, "x-amz-content-sha256", s.hex);
    assert_header(r, "x-amz-security-token", "FwoGZXIvYXdzE+/session=");
    char v[64];
    ck_assert_ptr_null(fh_header(r, "Content-Digest", v, sizeof(v)));
    char *out = NULL;
    int rc = botocore_verify(dir, r, ak, sk, "eu-west-1", &out);
    ck_assert_msg(rc == 0, "botocore: %s", out);
    /* The checksum, the payload hash and the token are covered by the signature. */
    ck_assert_msg(strstr(out, "x-amz-checksum-sha256") && strstr(out, "x-amz-content-sha256") &&
                      strstr(out, "x-amz-security-token") && strstr(out, "host") &&
                      strstr(out, "content-type") && strstr(out, "x-amz-date"),
                  "%s", out);
    free(out);
    rc = botocore_verify(dir, r, ak, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYWRONGKEY", "eu-west-1", &out);
    ck_assert_msg(rc == 1 && strstr(out, "MISMATCH signature"), "wrong secret verified: %s", out);
    free(out);
    rc = botocore_verify(dir, r, ak, sk, "us-east-1", &out);
    ck_assert_msg(rc == 1, "wrong region verified: %s", out);
    free(out);

    /* DELETE is signed too (over the empty payload). */
    ck_assert_msg(upload_delete(&o, url, &res, errstr, sizeof(errstr)) == 0, "%s", errstr);
    r = fh_request(f, 1);
    ck_assert_str_eq(r->method, "DELETE");
    assert_header(r, "x-amz-content-sha256",
                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    rc = botocore_verify(dir, r, ak, sk, "eu-west-1", &out);
    ck_assert_msg(rc == 0, "botocore (DELETE): %s", out);
    free(out);
    fh_stop(f);
    free(s.data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- file:// ------------------------------------------------------------------------ */

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

START_TEST(test_upload_file_url_atomic_and_delete) {
    char *dir = temp_dir();
    src_t a, b;
    src_make(&a, dir, "a", 300000, 15);
    src_make(&b, dir, "b", 1234, 16);
    char url[700], dst[700], folder[700];
    snprintf(url, sizeof(url), "file://%s/out/exports/x.csv", dir);
    snprintf(dst, sizeof(dst), "%s/out/exports/x.csv", dir);
    snprintf(folder, sizeof(folder), "%s/out/exports", dir);
    upload_opts_t o = fast_opts(1);
    upload_result_t res;
    ck_assert_msg(upload_put(&o, url, a.path, (long long)a.len, a.hex, NULL, &res, errstr,
                             sizeof(errstr)) == 0,
                  "%s", errstr);
    ck_assert_int_eq(res.attempts, 1);
    size_t len;
    unsigned char *got = slurp(dst, &len);
    ck_assert(got && len == a.len && memcmp(got, a.data, len) == 0);
    free(got);
    /* Replacing: a reader holding the old file keeps the old bytes (a rename, not an
     * overwrite in place), and no temp file is left behind. */
    int old_fd = open(dst, O_RDONLY);
    ck_assert(old_fd >= 0);
    ck_assert_msg(upload_put(&o, url, b.path, (long long)b.len, b.hex, NULL, &res, errstr,
                             sizeof(errstr)) == 0,
                  "%s", errstr);
    unsigned char first[16];
    ck_assert_int_eq(pread(old_fd, first, sizeof(first), 0), (ssize_t)sizeof(first));
    ck_assert(memcmp(first, a.data, sizeof(first)) == 0);
    close(old_fd);
    got = slurp(dst, &len);
    ck_assert(got && len == b.len && memcmp(got, b.data, len) == 0);
    free(got);
    ck_assert_int_eq(count_entries(folder), 1);
    struct stat st;
    ck_assert(stat(dst, &st) == 0 && (st.st_mode & 0777) == 0644);

    /* A wrong size or checksum fails and leaves the target as it was. */
    ck_assert_int_eq(upload_put(&o, url, a.path, (long long)a.len - 1, a.hex, NULL, &res, errstr,
                                sizeof(errstr)),
                     -1);
    ck_assert_msg(strstr(errstr, "changed") != NULL, "%s", errstr);
    ck_assert_int_eq(upload_put(&o, url, a.path, (long long)a.len, b.hex, NULL, &res, errstr,
                                sizeof(errstr)),
                     -1);
    got = slurp(dst, &len);
    ck_assert(got && len == b.len && memcmp(got, b.data, len) == 0);
    free(got);
    ck_assert_int_eq(count_entries(folder), 1);

    ck_assert_msg(upload_delete(&o, url, &res, errstr, sizeof(errstr)) == 0, "%s", errstr);
    ck_assert(stat(dst, &st) != 0 && errno == ENOENT);
    ck_assert_msg(upload_delete(&o, url, &res, errstr, sizeof(errstr)) == 0, "%s", errstr);

    snprintf(url, sizeof(url), "file://otherhost%s/x", dir);
    ck_assert_int_eq(upload_put(&o, url, b.path, (long long)b.len, b.hex, NULL, &res, errstr,
                                sizeof(errstr)),
                     -1);
    ck_assert_msg(strstr(errstr, "Bad file:// URL") != NULL, "%s", errstr);
    snprintf(url, sizeof(url), "file://%s/out/", dir);
    ck_assert_int_eq(upload_put(&o, url, b.path, (long long)b.len, b.hex, NULL, &res, errstr,
                                sizeof(errstr)),
                     -1);
    ck_assert_msg(strstr(errstr, "absolute path to a file") != NULL, "%s", errstr);
    free(a.data);
    free(b.data);
    rm_rf(dir);
    free(dir);
}
END_TEST

/* ---- bad input and environment ---------------------------------------------------- */

START_TEST(test_upload_bad_input_clear_errors) {
    char *dir = temp_dir();
    src_t s;
    src_make(&s, dir, "f", 10, 17);
    upload_opts_t o = fast_opts(3);
    upload_result_t res;
    static const struct {
        const char *url, *err;
    } bad_urls[] = {
        {"http//nohost/x", "malformed upload URL"},
        {"http://", "malformed upload URL"},
        {"ftp://127.0.0.1/x", "unsupported upload URL scheme \"ftp\""},
        {"gopher://h/x", "unsupported upload URL scheme \"gopher\""},
        {"", "empty upload URL"},
        {"http://exa mple.com/x", "malformed upload URL"},
    };
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(*bad_urls); i++) {
        ck_assert_int_eq(upload_put(&o, bad_urls[i].url, s.path, 10, s.hex, NULL, &res, errstr,
                                    sizeof(errstr)),
                         -1);
        ck_assert_msg(strstr(errstr, bad_urls[i].err) != NULL, "%s: %s", bad_urls[i].url, errstr);
        ck_assert_int_eq(res.permanent, 1);
        ck_assert_int_eq(res.attempts, 0);
        ck_assert_int_eq(upload_delete(&o, bad_urls[i].url, &res, errstr, sizeof(errstr)), -1);
        ck_assert_msg(strstr(errstr, bad_urls[i].err) != NULL, "%s: %s", bad_urls[i].url, errstr);
    }
    ck_assert_int_eq(upload_put(&o, NULL, s.path, 10, s.hex, NULL, &res, errstr, sizeof(errstr)),
                     -1);
    ck_assert_int_eq(upload_delete(&o, NULL, &res, errstr, sizeof(errstr)), -1);

    fh_step_t steps[] = {{FH_STATUS, 200, NULL}};
    fh_server_t *f = fh_start(steps, 1);
    char url[256];
    fault_url(f, "/x", url, sizeof(url));
    /* Bad checksum text, negative size, wrong size, missing file: nothing is sent. */
    ck_assert_int_eq(upload_put(&o, url, s.path, 10, "XYZ", NULL, &res, errstr, sizeof(errstr)),
                     -1);
    ck_assert_msg(strstr(errstr, "64-digit lowercase hex sha256"), "%s", errstr);
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)(s.hex[i] >= 'a' && s.hex[i] <= 'f' ? s.hex[i] - 32 : s.hex[i]);
    ck_assert_int_eq(upload_put(&o, url, s.path, 10, upper, NULL, &res, errstr, sizeof(errstr)),
                     -1);
    ck_assert_int_eq(upload_put(&o, url, s.path, -1, s.hex, NULL, &res, errstr, sizeof(errstr)),
                     -1);
    ck_assert_int_eq(upload_put(&o, url, s.path, 11, s.hex, NULL, &res, errstr, sizeof(errstr)),
                     -1);
    ck_assert_msg(strstr(errstr, "has 10 bytes, expected 11"), "%s", errstr);
    ck_assert_int_eq(res.permanent, 1);
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/missing", dir);
    ck_assert_int_eq(upload_put(&o, url, missing, 10, s.hex, NULL, &res, errstr, sizeof(errstr)),
                     -1);
    ck_assert_msg(strstr(errstr, "cannot open") && strstr(errstr, "No such file"), "%s", errstr);
    ck_assert_int_eq(upload_put(NULL, url, s.path, 10, s.hex, NULL, &res, errstr, sizeof(errstr)),
                     -1);
    ck_assert_int_eq(fh_count(f), 0);
    /* max_attempts below 1 still tries once. */
    o.max_attempts = 0;
    ck_assert_msg(upload_put(&o, url, s.path, 10, s.hex, NULL, &res, errstr, sizeof(errstr)) == 0,
                  "%s", errstr);
    ck_assert_int_eq(res.attempts, 1);
    fh_stop(f);
    free(s.data);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(test_upload_opts_from_env) {
    static const char *vars[] = {"EVPIPE_UPLOAD_TOKEN", "EVPIPE_UPLOAD_USER",
                                 "EVPIPE_UPLOAD_PASSWORD", "EVPIPE_UPLOAD_AWS_REGION",
                                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                 "AWS_SESSION_TOKEN"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++) unsetenv(vars[i]);
    upload_opts_t o = {0};
    o.bearer_token = "from-flag";
    upload_opts_from_env(&o);
    ck_assert_str_eq(o.bearer_token, "from-flag");
    ck_assert_ptr_null(o.aws_sigv4);
    ck_assert_ptr_null(o.basic_user);
    setenv("EVPIPE_UPLOAD_TOKEN", "t0k", 1);
    setenv("EVPIPE_UPLOAD_USER", "u", 1);
    setenv("EVPIPE_UPLOAD_PASSWORD", "p", 1);
    setenv("EVPIPE_UPLOAD_AWS_REGION", "eu-central-1", 1);
    setenv("AWS_ACCESS_KEY_ID", "AK", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
    setenv("AWS_SESSION_TOKEN", "", 1); /* empty = unset */
    upload_opts_from_env(&o);
    ck_assert_str_eq(o.bearer_token, "t0k");
    ck_assert_str_eq(o.basic_user, "u");
    ck_assert_str_eq(o.basic_password, "p");
    ck_assert_str_eq(o.aws_sigv4, "aws:amz:eu-central-1:s3");
    ck_assert_str_eq(o.aws_access_key, "AK");
    ck_assert_str_eq(o.aws_secret_key, "SK");
    ck_assert_ptr_null(o.aws_session_token);
    for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++) unsetenv(vars[i]);
}
END_TEST

int main(void) {
    char e[256];
    if (upload_global_init(e, sizeof(e)) != 0) {
        fprintf(stderr, "%s\n", e);
        return 1;
    }
    Suite *s = suite_create("upload");
    TCase *nginx = tcase_create("nginx");
    tcase_set_timeout(nginx, 120);
    tcase_add_unchecked_fixture(nginx, nginx_setup, nginx_teardown);
    tcase_add_test(nginx, test_upload_nginx_put_sizes_and_delete);
    suite_add_tcase(s, nginx);
    TCase *tc = tcase_create("upload");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_upload_join_url_table);
    tcase_add_test(tc, test_upload_retry_500_then_200_headers);
    tcase_add_test(tc, test_upload_429_retry_after_seconds_and_date);
    tcase_add_test(tc, test_upload_stall_then_retry_succeeds);
    tcase_add_test(tc, test_upload_dropped_mid_body_then_retry);
    tcase_add_test(tc, test_upload_403_permanent_and_exhausted_attempts);
    tcase_add_test(tc, test_upload_delete_statuses);
    tcase_add_test(tc, test_upload_bearer_basic_and_no_secret_in_errors);
    tcase_add_test(tc, test_upload_keep_going_aborts_backoff_and_stall);
    tcase_add_test(tc, test_upload_sigv4_verified_by_botocore);
    tcase_add_test(tc, test_upload_file_url_atomic_and_delete);
    tcase_add_test(tc, test_upload_bad_input_clear_errors);
    tcase_add_test(tc, test_upload_opts_from_env);
    suite_add_tcase(s, tc);
    int failed = tl_run_suite(s);
    upload_global_cleanup();
    return failed ? 1 : 0;
}
