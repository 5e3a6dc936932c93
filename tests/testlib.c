/* testlib.c — helpers shared by the Check suites (see testlib.h). */
#include "tests/testlib.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *tl_database_url(void) {
    const char *v = getenv("EVPIPE_TEST_DATABASE_URL");
    return v && *v ? v : NULL;
}

const char *tl_brokers(void) {
    const char *v = getenv("EVPIPE_TEST_BROKERS");
    return v && *v ? v : NULL;
}

const char *tl_evpipe_bin(void) {
    const char *v = getenv("EVPIPE_BIN");
    return v && *v ? v : "build/evpipe";
}

int tl_have_services(void) { return tl_database_url() && tl_brokers(); }

char *tl_unique_name(const char *prefix) {
    static int counter;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s_%d_%d_%d", prefix, (int)getpid(), ++counter, rand() % 100000);
    return strdup(buf);
}

PGconn *tl_connect(const char *url) {
    PGconn *conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK)
        ck_abort_msg("cannot connect to %s: %s", url, PQerrorMessage(conn));
    PQsetNoticeProcessor(conn, NULL, NULL);
    return conn;
}

void tl_exec(PGconn *conn, const char *sql) {
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
        PQclear(res);
        ck_abort_msg("SQL failed: %s\n  %s", sql, msg);
    }
    PQclear(res);
}

char *tl_query_text(PGconn *conn, const char *sql) {
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
        PQclear(res);
        ck_abort_msg("query failed: %s\n  %s", sql, msg);
    }
    char *out = NULL;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) out = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return out;
}

long long tl_query_ll(PGconn *conn, const char *sql) {
    char *text = tl_query_text(conn, sql);
    ck_assert_msg(text != NULL, "query returned no value: %s", sql);
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    int ok = end && *end == '\0' && end != text;
    char copy[128];
    snprintf(copy, sizeof(copy), "%s", text);
    free(text);
    ck_assert_msg(ok, "not a number (%s) from: %s", copy, sql);
    return v;
}

/* Replaces the dbname of a URL-style conninfo: everything after the last '/' before
 * any '?'. The harness always hands out URLs. */
static char *url_with_db(const char *url, const char *db) {
    const char *q = strchr(url, '?');
    size_t base_len = q ? (size_t)(q - url) : strlen(url);
    const char *slash = NULL;
    for (const char *p = url; p < url + base_len; p++)
        if (*p == '/') slash = p;
    ck_assert_msg(slash && strstr(url, "://") && slash > strstr(url, "://") + 2,
                  "EVPIPE_TEST_DATABASE_URL must be a URL with a database name: %s", url);
    size_t n = (size_t)(slash - url) + 1 + strlen(db) + (q ? strlen(q) : 0) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s/%s%s", (int)(slash - url), url, db, q ? q : "");
    return out;
}

char *tl_db_create(const char *prefix) {
    const char *admin = tl_database_url();
    ck_assert_msg(admin != NULL, "EVPIPE_TEST_DATABASE_URL is not set (run through make check)");
    char *name = tl_unique_name(prefix);
    for (char *p = name; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    PGconn *conn = tl_connect(admin);
    char sql[512];
    snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", name);
    tl_exec(conn, sql);
    PQfinish(conn);
    char *url = url_with_db(admin, name);
    free(name);
    return url;
}

char *tl_db_create_migrated(const char *prefix) {
    char *url = tl_db_create(prefix);
    size_t n = strlen(tl_evpipe_bin()) + strlen(url) + 64;
    char *cmd = malloc(n);
    ck_assert(cmd != NULL);
    snprintf(cmd, n, "'%s' migrate up --database '%s'", tl_evpipe_bin(), url);
    char *out = NULL, *err = NULL;
    int rc = tl_run(cmd, &out, &err);
    ck_assert_msg(rc == 0, "migrate up failed (exit %d): %s\n%s", rc, cmd, err ? err : "");
    free(cmd);
    free(out);
    free(err);
    return url;
}

void tl_db_drop(const char *url) {
    if (!url) return;
    const char *q = strchr(url, '?');
    size_t base_len = q ? (size_t)(q - url) : strlen(url);
    const char *slash = url;
    for (const char *p = url; p < url + base_len; p++)
        if (*p == '/') slash = p;
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)(base_len - (size_t)(slash + 1 - url)), slash + 1);
    PGconn *conn = tl_connect(tl_database_url());
    char sql[512];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
    tl_exec(conn, sql);
    PQfinish(conn);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

int tl_run(const char *cmdline, char **out, char **err) {
    char outp[] = "/tmp/evpipe_test_outXXXXXX", errp[] = "/tmp/evpipe_test_errXXXXXX";
    int fo = mkstemp(outp), fe = mkstemp(errp);
    ck_assert(fo >= 0 && fe >= 0);
    close(fo);
    close(fe);
    size_t n = strlen(cmdline) + 2 * sizeof(outp) + 64;
    char *full = malloc(n);
    snprintf(full, n, "( %s ) >%s 2>%s </dev/null", cmdline, outp, errp);
    int st = system(full);
    free(full);
    if (out) *out = slurp(outp);
    if (err) *err = slurp(errp);
    unlink(outp);
    unlink(errp);
    if (st == -1) return -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

int tl_run_suite(Suite *suite) {
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

/* A port nobody listens on right now. */
int tl_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ck_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static size_t collect(char *data, size_t size, size_t n, void *ud) {
    char **buf = ud;
    size_t old = *buf ? strlen(*buf) : 0;
    *buf = realloc(*buf, old + size * n + 1);
    memcpy(*buf + old, data, size * n);
    (*buf)[old + size * n] = '\0';
    return size * n;
}

/* GET http://127.0.0.1:port/path; returns the status (0 when unreachable). */
long tl_http_get(int port, const char *path, char **body) {
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    *body = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}
