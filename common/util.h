/* util.h — small shared helpers: clocks, hex, SHA-256, UUID formatting. */
#ifndef EV_UTIL_H
#define EV_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall clock in milliseconds since the epoch. */
int64_t ev_now_ms(void);
/* Monotonic clock in nanoseconds (for durations). */
int64_t ev_mono_ns(void);

/* SHA-256 of data as 64 lowercase hex chars + NUL into hex[65]. */
void ev_sha256_hex(const void *data, size_t len, char hex[65]);

/* Formats 16 bytes as a canonical lowercase UUID (36 chars + NUL). */
void ev_uuid_format(const uint8_t bytes[16], char out[37]);

/* Formats epoch milliseconds as RFC 3339 UTC with ms: 2026-11-25T13:40:00.123Z (25 bytes). */
void ev_format_rfc3339_ms(int64_t epoch_ms, char out[32]);

/* The UTC civil time of epoch milliseconds (proleptic Gregorian; year 0 is 1 BC). */
typedef struct ev_civil_s {
    int64_t year;
    int month, day, hour, minute, second, ms;
} ev_civil_t;
void ev_civil_of_ms(int64_t epoch_ms, ev_civil_t *out);

/* Writes "YYYY-MM-DD<sep>hh:mm:ss.mmm" (23 bytes, no NUL) for a year in 0..9999 and
 * returns the end; the formatting of every timestamp written per event, without
 * printf (a tenth of an ingested event's CPU went into snprintf for two of them). */
char *ev_put_civil(char *p, const ev_civil_t *c, char sep);

/* Reads a whole file (at most max_bytes) into a NUL-terminated malloc'd buffer.
 * Returns 0 and sets *out (caller frees) and *len, or -1 with errstr filled. */
int ev_read_file(const char *path, size_t max_bytes, char **out, size_t *len, char *errstr,
                 size_t errstr_size);
#endif
