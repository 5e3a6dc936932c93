/* evscan.h — light scan of one NDJSON event line for the producers: is it a JSON
 * object, what is its visitorId (the message key) and its event time. Full
 * validation stays with ingest (transforms/event.h); this only routes bytes. */
#ifndef EV_EVSCAN_H
#define EV_EVSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVSCAN_MAX_KEY 4096 /* a visitorId longer than this is reported as unusable */

typedef struct evscan_s evscan_t;

/* What evscan_line found in one line. Plain value type; key points into the
 * scanner (valid until its next evscan_line call). */
typedef struct evscan_result_s {
    bool is_object;         /* the whole line is exactly one JSON object */
    const char *visitor_id; /* decoded top-level "visitorId" string, or NULL */
    size_t visitor_id_len;
    bool has_timestamp;   /* top-level "timestamp" present and understood */
    int64_t timestamp_ms; /* event time, when has_timestamp */
    char problem[160];    /* why is_object is false, or why visitor_id is NULL; "" if fine */
} evscan_result_t;

/* Creates a scanner (reusable for any number of lines). NULL when out of memory. */
evscan_t *evscan_new(void);
/* Frees the scanner; NULL is a no-op. */
void evscan_destroy(evscan_t *scanner);

/* Scans len bytes (no NUL needed, any bytes). Always fills *out; returns 0 when the
 * line is a JSON object with a string visitorId, 1 when it is a JSON object without
 * a usable visitorId (out->problem says why), -1 when it is not a JSON object
 * (out->problem carries the parser's message). UTF-8 is not validated here. */
int evscan_line(evscan_t *scanner, const char *line, size_t len, evscan_result_t *out);

/* Parses an event time: RFC 3339 with a zone ("2026-01-05T10:00:00.123Z",
 * "...+01:00", fraction optional, truncated to ms, 't'/'z' accepted) or a whole
 * number of epoch milliseconds >= 0. Returns 0 and sets *ms, or -1. Pure. */
int evscan_parse_time(const char *text, size_t len, int64_t *ms);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12). Pure. */
int64_t evscan_days_from_civil(int64_t year, unsigned month, unsigned day);

#endif
