/* fault_http.h — a tiny HTTP/1.1 server on loopback for upload tests: answers each
 * connection by a script (a status, a stall, a dropped connection) and records every
 * request (method, path, headers, body, arrival time). One request per connection. */
#ifndef TEST_FAULT_HTTP_H
#define TEST_FAULT_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    FH_STATUS, /* read the whole request, answer status with extra headers */
    FH_STALL,  /* read the whole request, never answer; wait for the client to leave */
    FH_DROP    /* read the headers and a quarter of the body, then reset the connection */
} fh_kind_t;

typedef struct fh_step_s {
    fh_kind_t kind;
    int status;        /* FH_STATUS */
    const char *extra; /* extra response header lines, each ending in \r\n, or NULL */
} fh_step_t;

typedef struct fh_request_s {
    char method[16];
    char path[1024];
    char *headers;        /* raw header lines after the request line (malloc'd) */
    unsigned char *body;  /* the bytes received (malloc'd, may be NULL when empty) */
    size_t body_len;
    long long content_length; /* -1 when absent */
    int64_t at_ns;        /* monotonic time the headers arrived */
} fh_request_t;

typedef struct fh_server_s fh_server_t;

/* Starts the server on 127.0.0.1 (a free port) with the script steps[0..n-1]; after
 * the last step the last one repeats. Aborts the test on error. */
fh_server_t *fh_start(const fh_step_t *steps, int n);
int fh_port(const fh_server_t *s);
/* Stops the thread and frees everything (requests included). */
void fh_stop(fh_server_t *s);
/* Number of requests seen so far and the i-th one (valid until fh_stop). */
int fh_count(fh_server_t *s);
const fh_request_t *fh_request(fh_server_t *s, int i);
/* The value of header name (case-insensitive) in r, trimmed, into out; returns out,
 * or NULL when absent. */
const char *fh_header(const fh_request_t *r, const char *name, char *out, size_t out_size);

#endif
