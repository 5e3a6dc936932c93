/* upload.h — uploads finished export files to an HTTP(S) target (PUT/DELETE with
 * checksum headers, bearer/basic/AWS SigV4 auth, retries with capped exponential
 * backoff and full jitter) or to a local file:// path (atomic rename). */
#ifndef SINK_UPLOAD_H
#define SINK_UPLOAD_H

#include <stddef.h>

typedef struct upload_opts_s {
    const char *bearer_token;     /* Authorization: Bearer …, or NULL */
    const char *basic_user;       /* basic auth when not NULL */
    const char *basic_password;
    const char *aws_sigv4;        /* CURLOPT_AWS_SIGV4 provider, e.g. "aws:amz:eu-west-1:s3"; NULL = none */
    const char *aws_access_key;   /* with aws_sigv4 */
    const char *aws_secret_key;
    const char *aws_session_token;/* x-amz-security-token, or NULL */
    long connect_timeout_ms;      /* 0 = 10000 */
    long stall_timeout_ms;        /* abort when < 1 byte/s for this long; 0 = 30000 */
    int max_attempts;             /* tries per upload, >= 1 */
    long backoff_base_ms;         /* first retry delay; 0 = 500 */
    long backoff_max_ms;          /* cap; 0 = 30000 */
    /* Called during transfers and backoff sleeps (>= every 500 ms); nonzero aborts
     * the upload (SIGTERM, lost lease). May be NULL. */
    int (*keep_going)(void *ud);
    void *ud;
    /* file:// only: the source is the caller's private file, not touched after the
     * upload; it is hard-linked into place when on the same file system (no copy). */
    int may_link;
} upload_opts_t;

typedef struct upload_result_s {
    int attempts;        /* tries made */
    long http_status;    /* last status, 0 when none */
    int permanent;       /* 1: not retried (4xx other than 408/429, bad URL, auth) */
    int aborted;         /* 1: keep_going said stop */
} upload_result_t;

/* Global libcurl init/cleanup, once per process. */
int upload_global_init(char *errstr, size_t errstr_size);
void upload_global_cleanup(void);

/* PUTs the file at path (size bytes, lowercase hex sha256) to url (http, https, or
 * file:// = copy to that local path, atomically via rename). Sends Content-Length,
 * content_type, and the checksum: x-amz-checksum-sha256 (base64) when aws_sigv4 is
 * set, else Content-Digest: sha-256=:base64: and Digest: SHA-256=base64.
 * Retries connection errors, timeouts, 408, 429 (honouring Retry-After, seconds or
 * HTTP date, capped by backoff_max_ms), 5xx, with capped exponential backoff and full
 * jitter, up to max_attempts. Returns 0 on a 2xx, -1 with errstr = the last error
 * (never containing a secret) and *res filled. */
int upload_put(const upload_opts_t *opts, const char *url, const char *path, long long size,
               const char *sha256_hex, const char *content_type, upload_result_t *res,
               char *errstr, size_t errstr_size);

/* DELETE url (file:// = unlink). 404/410 count as success. Same retries. */
int upload_delete(const upload_opts_t *opts, const char *url, upload_result_t *res,
                  char *errstr, size_t errstr_size);

/* Joins a base URL and a relative path with exactly one '/' (libcurl URL API,
 * CURLU): "http://h/b" + "exports/x.csv" → "http://h/b/exports/x.csv". Returns a
 * malloc'd string or NULL with errstr. */
char *upload_join_url(const char *base, const char *rel, char *errstr, size_t errstr_size);

/* Fills the secret fields of o from the environment: EVPIPE_UPLOAD_TOKEN,
 * EVPIPE_UPLOAD_USER, EVPIPE_UPLOAD_PASSWORD, EVPIPE_UPLOAD_AWS_REGION (aws_sigv4 =
 * "aws:amz:REGION:s3"), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.
 * Fields whose variable is unset or empty are left as they are. The pointers go into
 * the environment (valid until it changes) and, for aws_sigv4, into a static buffer
 * that the next call overwrites: call it once at startup, not from several threads. */
void upload_opts_from_env(upload_opts_t *o);

#endif
