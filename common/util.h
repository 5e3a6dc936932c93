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



/* Reads a whole file (at most max_bytes) into a NUL-terminated malloc'd buffer.
 * Returns 0 and sets *out (caller frees) and *len, or -1 with errstr filled. */
int ev_read_file(const char *path, size_t max_bytes, char **out, size_t *len, char *errstr,
                 size_t errstr_size);
#endif
