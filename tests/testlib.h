/* testlib.h — helpers shared by the Check suites: the private PostgreSQL and mock
 * Kafka started by tests/run.sh (or a real pair named in the environment), fresh
 * databases per test, running the evpipe binary. */
#ifndef TESTLIB_H
#define TESTLIB_H

#include <check.h>
#include <libpq-fe.h>
#include <stddef.h>

/* EVPIPE_TEST_DATABASE_URL: a superuser conninfo of the test server (tests/run.sh). */
const char *tl_database_url(void);
/* EVPIPE_TEST_BROKERS: bootstrap servers of the shared test cluster. */
const char *tl_brokers(void);
/* EVPIPE_BIN: the evpipe binary under test (default build/evpipe). */
const char *tl_evpipe_bin(void);
/* True when the integration environment is present (PostgreSQL + Kafka). */
int tl_have_services(void);

/* Creates an empty database with a unique name; returns its conninfo URL
 * (malloc'd, caller frees; drop it with tl_db_drop). Aborts the test on error. */
char *tl_db_create(const char *prefix);
void tl_db_drop(const char *url);
/* tl_db_create, then `evpipe migrate up` on it with the binary under test. Aborts the
 * test when the migration fails. */
char *tl_db_create_migrated(const char *prefix);

/* Connects or aborts the test. */
PGconn *tl_connect(const char *url);
/* Runs sql and aborts the test unless it succeeds. */
void tl_exec(PGconn *conn, const char *sql);
/* The first column of the first row as text (malloc'd) or NULL for SQL NULL/no row. */
char *tl_query_text(PGconn *conn, const char *sql);
/* The first column of the first row as a number (aborts when not a number). */
long long tl_query_ll(PGconn *conn, const char *sql);

/* Runs a shell command line; captures stdout and stderr (malloc'd, may be NULL
 * out-params); returns the exit status (or 128 + signal). */
int tl_run(const char *cmdline, char **out, char **err);

/* A unique name for a topic/group/file with the given prefix (static buffer is not
 * used: returns malloc'd). */
char *tl_unique_name(const char *prefix);

/* Runs the suite with CK_ENV settings; returns the number of failures. */
int tl_run_suite(Suite *suite);

/* A loopback TCP port nobody listens on right now. */
int tl_free_port(void);
/* GET http://127.0.0.1:port/path; returns the HTTP status (0 when unreachable) and the
 * body in *body (malloc'd or NULL; caller frees). */
long tl_http_get(int port, const char *path, char **body);

#endif
