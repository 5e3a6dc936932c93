/* test_pg_settings.c — runtime settings read from tracking_configs on a real server:
 * rows applied, inactive rows and pinned keys left out, invalid rows reported while
 * the others apply, reload without restart, and outages (refused, silent server,
 * connection closed by the server) reported without touching the settings, with the
 * next call after the server is back succeeding. A small TCP relay in front of the
 * test server plays the outages. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sinks/pg_settings.h"
#include "tests/testlib.h"
#include "transforms/event.h"
#include "transforms/settings.h"

#define BIT(t) (1u << (TF_EVENT_##t))
#define DEFAULT_TYPES                                                                              \
    (BIT(PURCHASE) | BIT(APPOINTMENT_COMPLETE) | BIT(LEAD) | BIT(SIGN_UP) | BIT(FORM_SUBMIT))

/* Bits of the pinned mask: 1 << index in tf_settings_keys. */
#define PIN_TIMEOUT (1u << 0)
#define PIN_MAX_DURATION (1u << 1)
#define PIN_CONVERSION (1u << 2)
#define PIN_BOTS (1u << 3)

/* ---- helpers -------------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A fresh database migrated by the evpipe binary itself. */
static char *migrated_db(void) { return tl_db_create_migrated("pgsettings"); }

static void set_row(PGconn *conn, const char *key, const char *json, bool active) {
    const char *params[] = {key, json, active ? "true" : "false"};
    PGresult *res =
        PQexecParams(conn,
                     "INSERT INTO tracking_configs (key, value, \"isActive\") "
                     "VALUES ($1, $2::jsonb, $3::boolean) ON CONFLICT (key) DO UPDATE "
                     "SET value = EXCLUDED.value, \"isActive\" = EXCLUDED.\"isActive\", "
                     "\"updatedAt\" = now()",
                     3, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "upsert %s failed: %s", key,
                  PQerrorMessage(conn));
    PQclear(res);
}

static tf_settings_t defaults(void) {
    tf_settings_t s;
    tf_settings_default(&s);
    return s;
}

/* Settings that differ from the defaults and from every row below in each field. */
static tf_settings_t sentinel(void) {
    tf_settings_t s = {.timeout_seconds = 111,
                       .max_duration_seconds = 2222,
                       .conversion_types = BIT(VIDEO_PLAY),
                       .bots_exclude_from_metrics = false};
    return s;
}

static void assert_settings(const tf_settings_t *s, long long timeout, long long max_duration,
                            uint32_t types, bool bots) {
    ck_assert_int_eq(s->timeout_seconds, timeout);
    ck_assert_int_eq(s->max_duration_seconds, max_duration);
    ck_assert_uint_eq(s->conversion_types, types);
    ck_assert_int_eq(s->bots_exclude_from_metrics, bots);
}

static sink_pg_settings_t *new_source(const char *conninfo) {
    sink_pg_settings_t *ps = sink_pg_settings_new(conninfo);
    ck_assert_ptr_nonnull(ps);
    return ps;
}

/* Loads onto *s, expecting success; returns the warning (static). */
static const char *load_ok(sink_pg_settings_t *ps, unsigned pinned, tf_settings_t *s) {
    static char warning[512];
    char errstr[512] = "";
    memset(warning, 'x', sizeof(warning) - 1);
    warning[sizeof(warning) - 1] = '\0';
    int rc = sink_pg_settings_load(ps, pinned, s, warning, sizeof(warning), errstr, sizeof(errstr));
    ck_assert_msg(rc == 0, "sink_pg_settings_load: rc %d: %s", rc, errstr);
    return warning;
}

/* ---- rows ----------------------------------------------------------------------------- */

START_TEST(test_pg_settings_rows_applied) {
    char *url = migrated_db();
    PGconn *conn = tl_connect(url);
    sink_pg_settings_t *ps = new_source(url);

    /* An empty table changes nothing. */
    tf_settings_t s = defaults();
    ck_assert_str_eq(load_ok(ps, 0, &s), "");
    assert_settings(&s, 1800, 86400, DEFAULT_TYPES, true);

    set_row(conn, "session.timeoutSeconds", "900", true);
    set_row(conn, "session.maxDurationSeconds", "43200", true);
    set_row(conn, "conversion.types", "[\"PURCHASE\", \"ADD_TO_CART\"]", true);
    set_row(conn, "bots.excludeFromMetrics", "false", true);
    /* Keys that are not settings are none of this module's business. */
    set_row(conn, "ui.theme", "\"dark\"", true);
    set_row(conn, "session.timeout", "\"not a setting\"", true);

    s = defaults();
    ck_assert_str_eq(load_ok(ps, 0, &s), "");
    assert_settings(&s, 900, 43200, BIT(PURCHASE) | BIT(ADD_TO_CART), false);

    /* Applied over whatever the caller passes: every field replaced. */
    s = sentinel();
    ck_assert_str_eq(load_ok(ps, 0, &s), "");
    assert_settings(&s, 900, 43200, BIT(PURCHASE) | BIT(ADD_TO_CART), false);

    /* jsonb normalises the text; the values are what count. */
    set_row(conn, "bots.excludeFromMetrics", " true ", true);
    set_row(conn, "conversion.types", "[ \"LEAD\" ,\"LEAD\" ]", true);
    s = defaults();
    ck_assert_str_eq(load_ok(ps, 0, &s), "");
    assert_settings(&s, 900, 43200, BIT(LEAD), true);

    sink_pg_settings_destroy(ps);
    sink_pg_settings_destroy(NULL);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_pg_settings_inactive_rows_ignored) {
    char *url = migrated_db();
    PGconn *conn = tl_connect(url);
    sink_pg_settings_t *ps = new_source(url);
    set_row(conn, "session.timeoutSeconds", "600", false);
    set_row(conn, "conversion.types", "[\"SIGN_UP\"]", false);
    set_row(conn, "session.maxDurationSeconds", "7200", true);
    /* An inactive row is not even validated. */
    set_row(conn, "bots.excludeFromMetrics", "\"no\"", false);

    tf_settings_t s = defaults();
    ck_assert_str_eq(load_ok(ps, 0, &s), "");
    assert_settings(&s, 1800, 7200, DEFAULT_TYPES, true);

    /* Activating a row brings it in; deactivating takes it out again. */
    set_row(conn, "session.timeoutSeconds", "600", true);
    s = defaults();
    load_ok(ps, 0, &s);
    assert_settings(&s, 600, 7200, DEFAULT_TYPES, true);
    set_row(conn, "session.maxDurationSeconds", "7200", false);
    s = defaults();
    load_ok(ps, 0, &s);
    assert_settings(&s, 600, 86400, DEFAULT_TYPES, true);

    sink_pg_settings_destroy(ps);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* Keys set by flags or environment (pinned) win over the table. */
START_TEST(test_pg_settings_pinned_keys_kept) {
    char *url = migrated_db();
    PGconn *conn = tl_connect(url);
    sink_pg_settings_t *ps = new_source(url);
    set_row(conn, "session.timeoutSeconds", "900", true);
    set_row(conn, "session.maxDurationSeconds", "43200", true);
    set_row(conn, "conversion.types", "[\"LEAD\"]", true);
    set_row(conn, "bots.excludeFromMetrics", "false", true);

    static const struct {
        unsigned pinned;
        long long timeout, max_duration;
        uint32_t types;
        bool bots;
    } cases[] = {
        {0, 900, 43200, BIT(LEAD), false},
        {PIN_TIMEOUT, 111, 43200, BIT(LEAD), false},
        {PIN_MAX_DURATION, 900, 2222, BIT(LEAD), false},
        {PIN_CONVERSION, 900, 43200, BIT(VIDEO_PLAY), false},
        {PIN_TIMEOUT | PIN_CONVERSION, 111, 43200, BIT(VIDEO_PLAY), false},
        {PIN_TIMEOUT | PIN_MAX_DURATION | PIN_CONVERSION | PIN_BOTS, 111, 2222, BIT(VIDEO_PLAY),
         false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tf_settings_t s = sentinel();
        ck_assert_str_eq(load_ok(ps, cases[i].pinned, &s), "");
        assert_settings(&s, cases[i].timeout, cases[i].max_duration, cases[i].types, cases[i].bots);
    }
    /* The bots flag pinned to true by a flag stays true although the row says false. */
    tf_settings_t s = defaults();
    load_ok(ps, PIN_BOTS, &s);
    assert_settings(&s, 900, 43200, BIT(LEAD), true);

    /* An invalid row under a pinned key is not looked at: no warning. */
    set_row(conn, "session.timeoutSeconds", "\"half an hour\"", true);
    s = defaults();
    ck_assert_str_eq(load_ok(ps, PIN_TIMEOUT, &s), "");
    assert_settings(&s, 1800, 43200, BIT(LEAD), false);

    sink_pg_settings_destroy(ps);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* Invalid rows are skipped with a warning naming the first one (in key order); the
 * valid rows still apply. */
START_TEST(test_pg_settings_invalid_row_warns_others_apply) {
    char *url = migrated_db();
    PGconn *conn = tl_connect(url);
    sink_pg_settings_t *ps = new_source(url);
    set_row(conn, "bots.excludeFromMetrics", "false", true);
    set_row(conn, "conversion.types", "[\"PURCHASE\", \"NOPE\"]", true);
    set_row(conn, "session.maxDurationSeconds", "7200", true);
    set_row(conn, "session.timeoutSeconds", "\"half an hour\"", true);

    tf_settings_t s = defaults();
    ck_assert_str_eq(load_ok(ps, 0, &s),
                     "tracking_configs row ignored: conversion.types[1]: 'NOPE' is not an "
                     "EventType name");
    assert_settings(&s, 1800, 7200, DEFAULT_TYPES, false);

    /* The caller's values stay for the invalid keys (here the sentinel's). */
    s = sentinel();
    load_ok(ps, 0, &s);
    assert_settings(&s, 111, 7200, BIT(VIDEO_PLAY), false);

    /* With conversion.types fixed, the next invalid row is the one reported. */
    set_row(conn, "conversion.types", "[\"PURCHASE\"]", true);
    s = defaults();
    ck_assert_str_eq(load_ok(ps, 0, &s),
                     "tracking_configs row ignored: session.timeoutSeconds: expected a whole "
                     "number of seconds, got a string");
    assert_settings(&s, 1800, 7200, BIT(PURCHASE), false);

    /* JSON null and out-of-range numbers are invalid too. */
    set_row(conn, "session.timeoutSeconds", "null", true);
    set_row(conn, "session.maxDurationSeconds", "30", true);
    s = defaults();
    ck_assert_str_eq(load_ok(ps, 0, &s), "tracking_configs row ignored: "
                                         "session.maxDurationSeconds: 30 is outside 60..2592000");
    assert_settings(&s, 1800, 86400, BIT(PURCHASE), false);

    /* Everything valid again: no warning. */
    set_row(conn, "session.timeoutSeconds", "1200", true);
    set_row(conn, "session.maxDurationSeconds", "3600", true);
    s = defaults();
    ck_assert_str_eq(load_ok(ps, 0, &s), "");
    assert_settings(&s, 1200, 3600, BIT(PURCHASE), false);

    sink_pg_settings_destroy(ps);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* The same source object reads the table again on every call: a changed row is picked
 * up without a restart, over one connection kept between calls. */
START_TEST(test_pg_settings_reload_picks_up_change) {
    char *url = migrated_db();
    PGconn *conn = tl_connect(url);
    sink_pg_settings_t *ps = new_source(url);
    set_row(conn, "session.timeoutSeconds", "900", true);
    tf_settings_t s = defaults();
    load_ok(ps, 0, &s);
    assert_settings(&s, 900, 86400, DEFAULT_TYPES, true);

    set_row(conn, "session.timeoutSeconds", "300", true);
    set_row(conn, "conversion.types", "[\"FORM_START\"]", true);
    s = defaults();
    load_ok(ps, 0, &s);
    assert_settings(&s, 300, 86400, BIT(FORM_START), true);

    /* A deleted row: the caller's base values come back. */
    tl_exec(conn, "DELETE FROM tracking_configs WHERE key = 'session.timeoutSeconds'");
    s = defaults();
    load_ok(ps, 0, &s);
    assert_settings(&s, 1800, 86400, BIT(FORM_START), true);

    /* Changed inside a transaction: invisible until committed. */
    tl_exec(conn, "BEGIN");
    tl_exec(conn, "UPDATE tracking_configs SET value = '[\"LOGIN\"]' WHERE key = "
                  "'conversion.types'");
    s = defaults();
    load_ok(ps, 0, &s);
    assert_settings(&s, 1800, 86400, BIT(FORM_START), true);
    tl_exec(conn, "COMMIT");
    s = defaults();
    load_ok(ps, 0, &s);
    assert_settings(&s, 1800, 86400, BIT(LOGIN), true);

    /* One connection for all these reloads, under its own application name. */
    char sql[512];
    char *db = tl_query_text(conn, "SELECT current_database()");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND application_name = "
             "'evpipe-settings'",
             db);
    free(db);
    ck_assert_int_eq(tl_query_ll(conn, sql), 1);
    sink_pg_settings_destroy(ps);
    /* Closed on destroy (the backend may take a moment to leave pg_stat_activity). */
    long long left = 1;
    for (int i = 0; i < 100 && left; i++) {
        left = tl_query_ll(conn, sql);
        if (left) usleep(20000);
    }
    ck_assert_int_eq(left, 0);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* Waits up to 3 s for sink_pg_settings_changed to report an announcement. */
static int changed_within(sink_pg_settings_t *ps) {
    for (int i = 0; i < 150; i++) {
        if (sink_pg_settings_changed(ps)) return 1;
        usleep(20000);
    }
    return 0;
}

/* A change of tracking_configs is announced at once (NOTIFY from migration 0002's
 * trigger), each change once, and nothing is announced without a change. */
START_TEST(test_pg_settings_change_is_announced) {
    char *url = migrated_db();
    PGconn *conn = tl_connect(url);
    sink_pg_settings_t *ps = new_source(url);
    ck_assert_int_eq(sink_pg_settings_changed(ps), 0); /* not connected yet: nothing */
    tf_settings_t s = defaults();
    load_ok(ps, 0, &s); /* connects and listens */
    ck_assert_int_eq(sink_pg_settings_changed(ps), 0);
    set_row(conn, "session.timeoutSeconds", "600", true);
    ck_assert_int_eq(changed_within(ps), 1);
    ck_assert_int_eq(sink_pg_settings_changed(ps), 0); /* consumed */
    s = defaults();
    load_ok(ps, 0, &s);
    assert_settings(&s, 600, 86400, DEFAULT_TYPES, true);
    /* Uncommitted changes are not announced; the commit is. */
    tl_exec(conn, "BEGIN");
    tl_exec(conn, "DELETE FROM tracking_configs");
    usleep(200000);
    ck_assert_int_eq(sink_pg_settings_changed(ps), 0);
    tl_exec(conn, "COMMIT");
    ck_assert_int_eq(changed_within(ps), 1);
    sink_pg_settings_destroy(ps);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* A database without the table: -1 naming the problem, settings untouched; the same
 * source works once the schema is there. */
START_TEST(test_pg_settings_missing_table) {
    char *url = tl_db_create("pgsettings");
    sink_pg_settings_t *ps = new_source(url);
    tf_settings_t s = sentinel();
    char warning[256] = "x", errstr[512] = "";
    ck_assert_int_eq(
        sink_pg_settings_load(ps, 0, &s, warning, sizeof(warning), errstr, sizeof(errstr)), -1);
    ck_assert_str_eq(errstr,
                     "cannot read tracking_configs: relation \"tracking_configs\" does not exist");
    ck_assert_str_eq(warning, "");
    assert_settings(&s, 111, 2222, BIT(VIDEO_PLAY), false);

    size_t n = strlen(tl_evpipe_bin()) + strlen(url) + 64;
    char *cmd = malloc(n);
    snprintf(cmd, n, "%s migrate up --database '%s'", tl_evpipe_bin(), url);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);
    free(cmd);
    PGconn *conn = tl_connect(url);
    set_row(conn, "session.maxDurationSeconds", "120", true);
    s = sentinel();
    ck_assert_str_eq(load_ok(ps, 0, &s), "");
    assert_settings(&s, 111, 120, BIT(VIDEO_PLAY), false);
    sink_pg_settings_destroy(ps);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* ---- a TCP relay in front of the test server, to play outages ------------------------- */

typedef enum { RELAY_DOWN = 0, RELAY_UP, RELAY_SILENT } relay_mode_t;

#define RELAY_MAX_PAIRS 16

/* All sockets are opened and closed by the relay thread; the test thread only asks for
 * a mode and waits until the relay has switched to it. */
typedef struct relay_s {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    relay_mode_t want, have;
    bool stop;
    int port;
    int lfd; /* bound to 127.0.0.1:port; listening unless DOWN */
    bool listening;
    struct sockaddr_storage upstream;
    socklen_t upstream_len;
    int pairs[RELAY_MAX_PAIRS][2]; /* client, server (-1 while SILENT) */
    int n_pairs;
} relay_t;

static int bound_socket(int port, int *port_out) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind: %s", strerror(errno));
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    if (port_out) *port_out = ntohs(a.sin_port);
    return fd;
}

static void relay_close_pairs(relay_t *r) {
    for (int i = 0; i < r->n_pairs; i++) {
        close(r->pairs[i][0]);
        if (r->pairs[i][1] >= 0) close(r->pairs[i][1]);
    }
    r->n_pairs = 0;
}

/* Applies r->want (called by the relay thread with mu held). */
static void relay_apply(relay_t *r) {
    if (r->want == r->have) return;
    relay_close_pairs(r);
    if (r->want == RELAY_DOWN) {
        /* A bound socket that does not listen: connections are refused. */
        close(r->lfd);
        r->lfd = bound_socket(r->port, NULL);
        r->listening = false;
    } else if (!r->listening) {
        listen(r->lfd, 16);
        r->listening = true;
    }
    r->have = r->want;
    pthread_cond_broadcast(&r->cond);
}

static void relay_drop_pair(relay_t *r, int i) {
    close(r->pairs[i][0]);
    if (r->pairs[i][1] >= 0) close(r->pairs[i][1]);
    r->pairs[i][0] = r->pairs[r->n_pairs - 1][0];
    r->pairs[i][1] = r->pairs[r->n_pairs - 1][1];
    r->n_pairs--;
}

static void *relay_main(void *arg) {
    relay_t *r = arg;
    char buf[65536];
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        relay_apply(r);
        struct pollfd pfd[1 + 2 * RELAY_MAX_PAIRS];
        int owner[1 + 2 * RELAY_MAX_PAIRS];
        int nfd = 0;
        if (r->listening && r->n_pairs < RELAY_MAX_PAIRS) {
            pfd[nfd] = (struct pollfd){.fd = r->lfd, .events = POLLIN};
            owner[nfd++] = -1;
        }
        if (r->have == RELAY_UP)
            for (int i = 0; i < r->n_pairs; i++)
                for (int side = 0; side < 2; side++) {
                    pfd[nfd] = (struct pollfd){.fd = r->pairs[i][side], .events = POLLIN};
                    owner[nfd++] = i * 2 + side;
                }
        /* The sockets are only touched by this thread, so polling without the lock is
         * safe; the short timeout picks up mode changes. */
        pthread_mutex_unlock(&r->mu);
        int ready = poll(pfd, (nfds_t)nfd, 20);
        pthread_mutex_lock(&r->mu);
        if (ready <= 0 || r->want != r->have) continue;
        int dropped = -1;
        for (int k = 0; k < nfd && dropped < 0; k++) {
            if (!pfd[k].revents) continue;
            if (owner[k] < 0) {
                int cfd = accept(r->lfd, NULL, NULL);
                if (cfd < 0) continue;
                int sfd = -1;
                if (r->have == RELAY_UP) {
                    sfd = socket(r->upstream.ss_family, SOCK_STREAM, 0);
                    if (sfd < 0 ||
                        connect(sfd, (struct sockaddr *)&r->upstream, r->upstream_len) != 0) {
                        if (sfd >= 0) close(sfd);
                        close(cfd);
                        continue;
                    }
                }
                r->pairs[r->n_pairs][0] = cfd;
                r->pairs[r->n_pairs][1] = sfd;
                r->n_pairs++;
                break; /* the pair indexes of this round are still valid: rebuild */
            }
            int i = owner[k] / 2, side = owner[k] % 2;
            ssize_t got = read(r->pairs[i][side], buf, sizeof(buf));
            bool ok = got > 0;
            for (ssize_t off = 0; ok && off < got;) {
                ssize_t put = write(r->pairs[i][1 - side], buf + off, (size_t)(got - off));
                if (put <= 0)
                    ok = false;
                else
                    off += put;
            }
            if (!ok) dropped = i;
        }
        if (dropped >= 0) relay_drop_pair(r, dropped);
    }
    relay_close_pairs(r);
    close(r->lfd);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* The server address of the test database URL: its Unix socket or TCP address. */
static void upstream_address(relay_t *r) {
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(tl_database_url(), &err);
    ck_assert_msg(opts != NULL, "cannot parse EVPIPE_TEST_DATABASE_URL: %s", err ? err : "");
    const char *host = NULL, *port = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "host") == 0 && o->val && *o->val) host = o->val;
        if (strcmp(o->keyword, "hostaddr") == 0 && o->val && *o->val) host = o->val;
        if (strcmp(o->keyword, "port") == 0 && o->val && *o->val) port = o->val;
    }
    if (!port) port = "5432";
    if (!host) host = "/var/run/postgresql";
    if (host[0] == '/') {
        struct sockaddr_un *un = (struct sockaddr_un *)&r->upstream;
        un->sun_family = AF_UNIX;
        int n = snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%s", host, port);
        ck_assert_msg(n > 0 && (size_t)n < sizeof(un->sun_path), "socket path too long: %s", host);
        r->upstream_len = sizeof(*un);
    } else {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
        int rc = getaddrinfo(host, port, &hints, &ai);
        ck_assert_msg(rc == 0, "cannot resolve %s: %s", host, gai_strerror(rc));
        memcpy(&r->upstream, ai->ai_addr, ai->ai_addrlen);
        r->upstream_len = (socklen_t)ai->ai_addrlen;
        freeaddrinfo(ai);
    }
    PQconninfoFree(opts);
}

static void relay_set(relay_t *r, relay_mode_t mode) {
    pthread_mutex_lock(&r->mu);
    r->want = mode;
    while (r->have != mode) pthread_cond_wait(&r->cond, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static relay_t *relay_start(relay_mode_t mode) {
    relay_t *r = calloc(1, sizeof(*r));
    upstream_address(r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->lfd = bound_socket(0, &r->port);
    r->have = r->want = RELAY_DOWN;
    ck_assert_int_eq(pthread_create(&r->thread, NULL, relay_main, r), 0);
    relay_set(r, mode);
    return r;
}

static void relay_stop(relay_t *r) {
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
    free(r);
}

/* Appends a keyword=value pair to a conninfo string, quoted as libpq wants. */
static void append_kv(char *out, size_t size, const char *key, const char *value) {
    size_t n = strlen(out);
    n += (size_t)snprintf(out + n, size - n, "%s%s='", n ? " " : "", key);
    for (const char *p = value; *p && n + 3 < size; p++) {
        if (*p == '\'' || *p == '\\') out[n++] = '\\';
        out[n++] = *p;
    }
    snprintf(out + n, size - n, "'");
}

/* The conninfo of database url reached through the relay (host and port replaced),
 * plus extra ("connect_timeout=2" or ""). */
static char *via_relay(const char *url, const relay_t *r, const char *extra) {
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &err);
    ck_assert_msg(opts != NULL, "cannot parse %s: %s", url, err ? err : "");
    char *out = calloc(1, 4096);
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val) continue;
        if (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr") ||
            !strcmp(o->keyword, "port"))
            continue;
        append_kv(out, 4096, o->keyword, o->val);
    }
    PQconninfoFree(opts);
    char port[16];
    snprintf(port, sizeof(port), "%d", r->port);
    append_kv(out, 4096, "host", "127.0.0.1");
    append_kv(out, 4096, "port", port);
    if (*extra) {
        size_t n = strlen(out);
        snprintf(out + n, 4096 - n, " %s", extra);
    }
    return out;
}

/* ---- outages -------------------------------------------------------------------------- */

/* Nothing listens on the port: -1 with libpq's reason on one line, settings untouched;
 * the same source succeeds on the first call once the server can be reached, and again
 * after a second outage. */
START_TEST(test_pg_settings_unreachable_then_back) {
    char *url = migrated_db();
    PGconn *conn = tl_connect(url);
    set_row(conn, "session.timeoutSeconds", "900", true);
    set_row(conn, "bots.excludeFromMetrics", "false", true);
    relay_t *r = relay_start(RELAY_DOWN);
    char *conninfo = via_relay(url, r, "");
    sink_pg_settings_t *ps = new_source(conninfo);

    char warning[256], errstr[512], want[256];
    snprintf(want, sizeof(want),
             "cannot connect to PostgreSQL: connection to server at \"127.0.0.1\", port %d "
             "failed: Connection refused",
             r->port);
    for (int attempt = 0; attempt < 2; attempt++) {
        tf_settings_t s = sentinel();
        memset(warning, 'x', sizeof(warning));
        errstr[0] = '\0';
        ck_assert_int_eq(
            sink_pg_settings_load(ps, 0, &s, warning, sizeof(warning), errstr, sizeof(errstr)), -1);
        ck_assert_msg(strncmp(errstr, want, strlen(want)) == 0, "errstr: %s", errstr);
        ck_assert_ptr_null(strchr(errstr, '\n'));
        ck_assert_str_eq(warning, "");
        assert_settings(&s, 111, 2222, BIT(VIDEO_PLAY), false);
    }

    relay_set(r, RELAY_UP);
    tf_settings_t s = defaults();
    ck_assert_str_eq(load_ok(ps, 0, &s), "");
    assert_settings(&s, 900, 86400, DEFAULT_TYPES, false);

    /* The server goes away with the connection open: -1, untouched. */
    relay_set(r, RELAY_DOWN);
    s = sentinel();
    ck_assert_int_eq(
        sink_pg_settings_load(ps, 0, &s, warning, sizeof(warning), errstr, sizeof(errstr)), -1);
    ck_assert_msg(strncmp(errstr, want, strlen(want)) == 0, "errstr: %s", errstr);
    assert_settings(&s, 111, 2222, BIT(VIDEO_PLAY), false);

    /* Back, with a row changed meanwhile: the first call succeeds and sees it. */
    set_row(conn, "session.timeoutSeconds", "450", true);
    relay_set(r, RELAY_UP);
    s = defaults();
    ck_assert_str_eq(load_ok(ps, 0, &s), "");
    assert_settings(&s, 450, 86400, DEFAULT_TYPES, false);

    sink_pg_settings_destroy(ps);
    relay_stop(r);
    free(conninfo);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* The server closed the idle connection between two reloads (restart, idle timeout,
 * pg_terminate_backend) while staying up: the next reload succeeds at once. */
START_TEST(test_pg_settings_reconnects_after_server_closed_connection) {
    char *url = migrated_db();
    PGconn *conn = tl_connect(url);
    set_row(conn, "session.timeoutSeconds", "900", true);
    sink_pg_settings_t *ps = new_source(url);
    tf_settings_t s = defaults();
    load_ok(ps, 0, &s);
    assert_settings(&s, 900, 86400, DEFAULT_TYPES, true);

    char *db = tl_query_text(conn, "SELECT current_database()");
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s' "
             "AND pid <> pg_backend_pid()",
             db);
    ck_assert_int_eq(tl_query_ll(conn, sql), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND pid <> "
             "pg_backend_pid()",
             db);
    long long left = 1;
    for (int i = 0; i < 100 && left; i++) {
        left = tl_query_ll(conn, sql);
        if (left) usleep(20000);
    }
    ck_assert_int_eq(left, 0);

    set_row(conn, "session.timeoutSeconds", "333", true);
    s = defaults();
    ck_assert_str_eq(load_ok(ps, 0, &s), "");
    assert_settings(&s, 333, 86400, DEFAULT_TYPES, true);
    ck_assert_int_eq(tl_query_ll(conn, sql), 1);

    free(db);
    sink_pg_settings_destroy(ps);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* A server that accepts the connection and never answers: the connection attempt gives
 * up after connect_timeout (the conninfo's, else 10 s by default) instead of hanging the
 * reload; settings untouched. */
static void silent_server_case(const char *extra, double min_s, double max_s) {
    char *url = tl_db_create("pgsettings");
    relay_t *r = relay_start(RELAY_SILENT);
    char *conninfo = via_relay(url, r, extra);
    sink_pg_settings_t *ps = new_source(conninfo);
    tf_settings_t s = sentinel();
    char warning[256] = "x", errstr[512] = "";
    double t0 = now_s();
    ck_assert_int_eq(
        sink_pg_settings_load(ps, 0, &s, warning, sizeof(warning), errstr, sizeof(errstr)), -1);
    double took = now_s() - t0;
    ck_assert_msg(took >= min_s && took <= max_s, "gave up after %.2f s, expected %.0f..%.0f s",
                  took, min_s, max_s);
    ck_assert_msg(strstr(errstr, "cannot connect to PostgreSQL: ") == errstr &&
                      strstr(errstr, "timeout expired") != NULL,
                  "errstr: %s", errstr);
    ck_assert_str_eq(warning, "");
    assert_settings(&s, 111, 2222, BIT(VIDEO_PLAY), false);
    sink_pg_settings_destroy(ps);
    relay_stop(r);
    free(conninfo);
    tl_db_drop(url);
    free(url);
}

START_TEST(test_pg_settings_silent_server_times_out) {
    silent_server_case("connect_timeout=2", 1.5, 6);
}
END_TEST

START_TEST(test_pg_settings_silent_server_default_timeout) { silent_server_case("", 9, 16); }
END_TEST

static Suite *pg_settings_suite(void) {
    Suite *s = suite_create("pg_settings");
    TCase *rows_tc = tcase_create("rows");
    tcase_set_timeout(rows_tc, 120);
    tcase_add_test(rows_tc, test_pg_settings_rows_applied);
    tcase_add_test(rows_tc, test_pg_settings_inactive_rows_ignored);
    tcase_add_test(rows_tc, test_pg_settings_pinned_keys_kept);
    tcase_add_test(rows_tc, test_pg_settings_invalid_row_warns_others_apply);
    tcase_add_test(rows_tc, test_pg_settings_reload_picks_up_change);
    tcase_add_test(rows_tc, test_pg_settings_missing_table);
    suite_add_tcase(s, rows_tc);
    TCase *outage_tc = tcase_create("outages");
    tcase_set_timeout(outage_tc, 120);
    tcase_add_test(outage_tc, test_pg_settings_unreachable_then_back);
    tcase_add_test(outage_tc, test_pg_settings_reconnects_after_server_closed_connection);
    tcase_add_test(outage_tc, test_pg_settings_change_is_announced);
    tcase_add_test(outage_tc, test_pg_settings_silent_server_times_out);
    tcase_add_test(outage_tc, test_pg_settings_silent_server_default_timeout);
    suite_add_tcase(s, outage_tc);
    return s;
}

int main(void) { return tl_run_suite(pg_settings_suite()) == 0 ? 0 : 1; }
