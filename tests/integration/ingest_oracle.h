/* ingest_oracle.h — an independent computation of what ingest must store for an
 * NDJSON stream: valid unique events, sessions cut at the gaps, page views,
 * conversions, dead letters. Shares nothing with the sessionizer or the sink; it uses
 * only the event validator (tested on its own) to decide validity. */
#ifndef INGEST_ORACLE_H
#define INGEST_ORACLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct oracle_session_s {
    char visitor[160];
    int64_t start_ms, end_ms;
    int event_count, page_view_count;
} oracle_session_t;

typedef struct oracle_s {
    size_t n_lines, n_invalid, n_duplicates, n_valid_unique;
    size_t n_page_views, n_conversions;
    long long value_cents; /* sum of conversion values, in cents (NUMERIC(14,2)) */
    oracle_session_t *sessions;
    size_t n_sessions;
} oracle_t;

/* Computes the expectation for the file (one message per line) with the session
 * timeout and maximum duration in ms. Aborts the test on I/O errors. */
void oracle_compute(const char *path, int64_t timeout_ms, int64_t max_duration_ms, oracle_t *out);
void oracle_free(oracle_t *o);

/* Produces every line of path to topic (key = visitorId when the line parses, else
 * "invalid-<line>"), waits for all deliveries; returns the number produced. */
size_t oracle_produce_file(const char *brokers, const char *topic, const char *path);

/* Compares the database's sessions/events/page views/conversions with the oracle;
 * fails the test with the first difference. */
void oracle_check_database(const oracle_t *o, const char *database_url);

/* A canonical text dump of the four tables (every column but createdAt/updatedAt),
 * sorted, for row-for-row comparison of two runs. Caller frees. */
char *oracle_dump_tables(const char *database_url);

#endif
