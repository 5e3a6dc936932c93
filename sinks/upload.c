/* upload.c — uploads finished export files: HTTP(S) PUT/DELETE through libcurl with
 * checksum headers, bearer/basic/AWS SigV4 auth, a stall timeout and capped exponential
 * backoff with full jitter; file:// targets copied into place atomically. */
#include "sinks/upload.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define UPLOAD_POLL_MS 100      /* keep_going and stall checks at least this often */
#define UPLOAD_ERRBODY_MAX 200  /* bytes of an error response quoted in errstr */
#define UPLOAD_COPY_CHUNK 65536

typedef enum { METHOD_PUT, METHOD_DELETE } method_t;

/* What one HTTP attempt needs and reports. */
typedef struct xfer_s {
    FILE *body;                           /* PUT body, rewound before each attempt */
    char errbody[UPLOAD_ERRBODY_MAX + 1]; /* start of the response body */
    size_t errbody_len;
} xfer_t;

/* The outcome of one attempt. */
typedef enum { TRY_OK, TRY_RETRY, TRY_PERMANENT, TRY_ABORTED } try_t;

int upload_global_init(char *errstr, size_t errstr_size) {
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "libcurl init: %s", curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

void upload_global_cleanup(void) { curl_global_cleanup(); }

/* ---- URLs ---------------------------------------------------------------------- */

/* Writes url without userinfo, query and fragment into out (for messages). */
static void redact_url(const char *url, char *out, size_t out_size) {
    CURLU *u = curl_url();
    char *s = NULL;
    if (u && url &&
        curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK) {
        curl_url_set(u, CURLUPART_USER, NULL, 0);
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        curl_url_set(u, CURLUPART_OPTIONS, NULL, 0);
        curl_url_set(u, CURLUPART_QUERY, NULL, 0);
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
        if (curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK) s = NULL;
    }
    snprintf(out, out_size, "%s", s ? s : "(malformed URL)");
    curl_free(s);
    curl_url_cleanup(u);
}

/* Parses url; *scheme (malloc'd by curl, curl_free) is lowercase. Returns the handle,
 * or NULL with errstr naming the problem (not the URL). */
static CURLU *parse_url(const char *url, char **scheme, char *errstr, size_t errstr_size) {
    *scheme = NULL;
    if (!url || !*url) {
        snprintf(errstr, errstr_size, "empty upload URL");
        return NULL;
    }
    CURLU *u = curl_url();
    if (!u) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_SCHEME, scheme, 0);
    if (rc != CURLUE_OK) {
        snprintf(errstr, errstr_size, "malformed upload URL: %s", curl_url_strerror(rc));
        curl_url_cleanup(u);
        return NULL;
    }
    if (strcmp(*scheme, "http") != 0 && strcmp(*scheme, "https") != 0 &&
        strcmp(*scheme, "file") != 0) {
        snprintf(errstr, errstr_size,
                 "unsupported upload URL scheme \"%.16s\" (use http, https or file)", *scheme);
        curl_free(*scheme);
        *scheme = NULL;
        curl_url_cleanup(u);
        return NULL;
    }
    return u;
}

/* The local path of a file:// URL (malloc'd), or NULL with errstr. */
static char *file_url_path(CURLU *u, char *errstr, size_t errstr_size) {
    char *host = NULL, *path = NULL, *copy = NULL;
    CURLUcode rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    if (rc == CURLUE_OK && *host && strcmp(host, "localhost") != 0) {
        snprintf(errstr, errstr_size, "file:// URL with a remote host is not supported");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK || !path ||
        path[0] != '/' || path[strlen(path) - 1] == '/') {
        snprintf(errstr, errstr_size, "file:// URL needs an absolute path to a file");
        goto done;
    }
    copy = strdup(path);
    if (!copy) snprintf(errstr, errstr_size, "out of memory");
done:
    curl_free(host);
    curl_free(path);
    return copy;
}

/* Appends rel to out (size cap) percent-encoding everything but unreserved chars and
 * '/'. Returns 0, or -1 when it does not fit. */
static int encode_rel(const char *rel, char *out, size_t cap, size_t *len) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)rel; *p; p++) {
        int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
                   *p == '~' || *p == '/';
        size_t need = keep ? 1 : 3;
        if (*len + need + 1 > cap) return -1;
        if (keep) {
            out[(*len)++] = (char)*p;
        } else {
            out[(*len)++] = '%';
            out[(*len)++] = hex[*p >> 4];
            out[(*len)++] = hex[*p & 15];
        }
    }
    out[*len] = '\0';
    return 0;
}

char *upload_join_url(const char *base, const char *rel, char *errstr, size_t errstr_size) {
    char *scheme = NULL, *bpath = NULL, *joined = NULL, *path = NULL;
    CURLU *u = parse_url(base, &scheme, errstr, errstr_size);
    if (!u) return NULL;
    if (!rel) rel = "";
    while (*rel == '/') rel++;
    size_t rlen = strlen(rel);
    /* Refuse to climb out of the base folder or to name the folder itself. */
    int dots = rlen == 0 || rel[rlen - 1] == '/' || strcmp(rel, "..") == 0 ||
               strncmp(rel, "../", 3) == 0 || strstr(rel, "/../") != NULL ||
               (rlen >= 3 && strcmp(rel + rlen - 3, "/..") == 0) || strstr(rel, "//") != NULL;
    if (dots) {
        snprintf(errstr, errstr_size, "bad relative upload path (empty, a folder, or with ..)");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_PATH, &bpath, 0) != CURLUE_OK) {
        snprintf(errstr, errstr_size, "upload URL without a path");
        goto done;
    }
    size_t blen = strlen(bpath);
    while (blen > 0 && bpath[blen - 1] == '/') blen--;
    size_t cap = blen + 1 + rlen * 3 + 1;
    path = malloc(cap);
    if (!path) {
        snprintf(errstr, errstr_size, "out of memory");
        goto done;
    }
    memcpy(path, bpath, blen);
    path[blen] = '/';
    size_t len = blen + 1;
    if (encode_rel(rel, path, cap, &len) != 0 ||
        curl_url_set(u, CURLUPART_PATH, path, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &joined, 0) != CURLUE_OK) {
        snprintf(errstr, errstr_size, "cannot join the upload URL and \"%.64s\"", rel);
        curl_free(joined);
        joined = NULL;
    }
done:
    free(path);
    curl_free(bpath);
    curl_free(scheme);
    curl_url_cleanup(u);
    if (!joined) return NULL;
    char *out = strdup(joined);
    curl_free(joined);
    if (!out) snprintf(errstr, errstr_size, "out of memory");
    return out;
}

/* ---- environment ----------------------------------------------------------------- */

static const char *env_nonempty(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

void upload_opts_from_env(upload_opts_t *o) {
    static char sigv4[160];
    const char *v;
    if ((v = env_nonempty("EVPIPE_UPLOAD_TOKEN"))) o->bearer_token = v;
    if ((v = env_nonempty("EVPIPE_UPLOAD_USER"))) o->basic_user = v;
    if ((v = env_nonempty("EVPIPE_UPLOAD_PASSWORD"))) o->basic_password = v;
    if ((v = env_nonempty("EVPIPE_UPLOAD_AWS_REGION"))) {
        snprintf(sigv4, sizeof(sigv4), "aws:amz:%.100s:s3", v);
        o->aws_sigv4 = sigv4;
    }
    if ((v = env_nonempty("AWS_ACCESS_KEY_ID"))) o->aws_access_key = v;
    if ((v = env_nonempty("AWS_SECRET_ACCESS_KEY"))) o->aws_secret_key = v;
    if ((v = env_nonempty("AWS_SESSION_TOKEN"))) o->aws_session_token = v;
}

/* ---- retry policy ---------------------------------------------------------------- */

static long opt_or(long v, long dflt) { return v > 0 ? v : dflt; }

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The delay before retry number `retry` (1 = the first): a uniform draw in
 * [0, min(cap, base * 2^(retry-1))] ("full jitter"), or the server's Retry-After
 * (seconds) capped by cap when it sent one. */
static long backoff_delay_ms(const upload_opts_t *o, int retry, long retry_after_s,
                             uint64_t *rng) {
    long base = opt_or(o->backoff_base_ms, 500);
    long cap = opt_or(o->backoff_max_ms, 30000);
    if (retry_after_s > 0) {
        return retry_after_s > cap / 1000 ? cap : retry_after_s * 1000;
    }
    long ceiling = base;
    for (int i = 1; i < retry && ceiling < cap; i++) ceiling *= 2;
    if (ceiling > cap) ceiling = cap;
    return (long)(splitmix64(rng) % (uint64_t)(ceiling + 1));
}

/* Sleeps ms, asking keep_going at least every UPLOAD_POLL_MS. Returns 1 when told to
 * stop. */
static int sleep_unless_stopped(const upload_opts_t *o, long ms) {
    int64_t end = ev_mono_ns() + (int64_t)ms * 1000000;
    for (;;) {
        if (o->keep_going && o->keep_going(o->ud)) return 1;
        int64_t left = end - ev_mono_ns();
        if (left <= 0) return 0;
        if (left > (int64_t)UPLOAD_POLL_MS * 1000000) left = (int64_t)UPLOAD_POLL_MS * 1000000;
        struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
        nanosleep(&ts, NULL);
    }
}

/* libcurl errors that another attempt cannot fix. */
static int curl_code_is_permanent(CURLcode rc) {
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_LOGIN_DENIED:
    case CURLE_REMOTE_ACCESS_DENIED:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_READ_ERROR:
    case CURLE_FILE_COULDNT_READ_FILE:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_AUTH_ERROR:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_FAILED_INIT:
        return 1;
    default:
        return 0;
    }
}

/* ---- one HTTP attempt ------------------------------------------------------------ */

static size_t read_cb(char *buf, size_t size, size_t n, void *ud) {
    xfer_t *x = ud;
    size_t got = fread(buf, 1, size * n, x->body);
    if (got == 0 && ferror(x->body)) return CURL_READFUNC_ABORT;
    return got;
}

static int seek_cb(void *ud, curl_off_t offset, int origin) {
    xfer_t *x = ud;
    return fseeko(x->body, (off_t)offset, origin) == 0 ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
}

static size_t write_cb(char *data, size_t size, size_t n, void *ud) {
    xfer_t *x = ud;
    size_t len = size * n;
    size_t room = UPLOAD_ERRBODY_MAX - x->errbody_len;
    size_t take = len < room ? len : room;
    memcpy(x->errbody + x->errbody_len, data, take);
    x->errbody_len += take;
    x->errbody[x->errbody_len] = '\0';
    return len;
}

/* The start of an error response on one line, printable ASCII only. */
static void errbody_oneline(const xfer_t *x, char *out, size_t out_size) {
    size_t j = 0;
    int space = 0;
    for (size_t i = 0; i < x->errbody_len && j + 1 < out_size; i++) {
        unsigned char c = (unsigned char)x->errbody[i];
        if (c <= ' ' || c >= 127) {
            space = j > 0;
            continue;
        }
        if (space && j + 2 < out_size) out[j++] = ' ';
        space = 0;
        out[j++] = (char)c;
    }
    out[j] = '\0';
}

/* Runs the prepared easy handle to the end through a multi handle so that keep_going
 * and the stall clock are checked every UPLOAD_POLL_MS whatever the network does.
 * Returns the transfer's CURLcode; *why is 1 when keep_going stopped it, 2 when it
 * stalled (both reported as CURLE_ABORTED_BY_CALLBACK). */
static CURLcode perform_watched(CURL *easy, const upload_opts_t *o, int *why) {
    long stall_ms = opt_or(o->stall_timeout_ms, 30000);
    CURLcode result = CURLE_FAILED_INIT;
    *why = 0;
    CURLM *multi = curl_multi_init();
    if (!multi) return CURLE_OUT_OF_MEMORY;
    if (curl_multi_add_handle(multi, easy) != CURLM_OK) {
        curl_multi_cleanup(multi);
        return CURLE_FAILED_INIT;
    }
    curl_off_t last_bytes = -1;
    int64_t last_change = ev_mono_ns();
    int running = 1;
    for (;;) {
        if (curl_multi_perform(multi, &running) != CURLM_OK) break;
        if (!running) break;
        if (o->keep_going && o->keep_going(o->ud)) {
            *why = 1;
            break;
        }
        curl_off_t up = 0, down = 0;
        curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &up);
        curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
        int64_t now = ev_mono_ns();
        if (up + down != last_bytes) {
            last_bytes = up + down;
            last_change = now;
        } else if ((now - last_change) / 1000000 >= stall_ms) {
            *why = 2;
            break;
        }
        curl_multi_poll(multi, NULL, 0, UPLOAD_POLL_MS, NULL);
    }
    if (*why) {
        result = CURLE_ABORTED_BY_CALLBACK;
    } else if (!running) {
        int left = 0;
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) result = msg->data.result;
        }
    }
    curl_multi_remove_handle(multi, easy);
    curl_multi_cleanup(multi);
    return result;
}

/* Base64 of the 32 bytes written as 64 hex chars; out needs 45 bytes. Returns 0, or
 * -1 when hex is not 64 lowercase hex digits. */
static int sha256_hex_to_b64(const char *hex, char out[45]) {
    unsigned char raw[32];
    if (!hex || strlen(hex) != 64) return -1;
    for (int i = 0; i < 64; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return -1;
        if (i % 2 == 0) raw[i / 2] = (unsigned char)(v << 4);
        else raw[i / 2] |= (unsigned char)v;
    }
    EVP_EncodeBlock((unsigned char *)out, raw, 32);
    return 0;
}

/* Adds "name: value" to *list. Returns 0, or -1 when out of memory. */
static int add_header(struct curl_slist **list, const char *name, const char *value) {
    char line[512];
    int n = snprintf(line, sizeof(line), "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof(line)) return -1;
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l) return -1;
    *list = l;
    return 0;
}

/* Prepares easy for one request: URL, method, auth, timeouts and headers (kept in
 * *headers, freed by the caller). Returns 0, or -1 with errstr. */
static int setup_easy(CURL *easy, const upload_opts_t *o, method_t method, const char *url,
                      long long size, const char *sha_b64, const char *sha_hex,
                      const char *content_type, xfer_t *x, struct curl_slist **headers,
                      char *errbuf, char *errstr, size_t errstr_size) {
    int bad = 0;
#define SET(opt, val) bad |= curl_easy_setopt(easy, opt, val) != CURLE_OK
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_CONNECTTIMEOUT_MS, opt_or(o->connect_timeout_ms, 10000));
    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_USERAGENT, "evpipe/" EVPIPE_VERSION);
    if (method == METHOD_PUT) {
        SET(CURLOPT_UPLOAD, 1L);
        SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
        SET(CURLOPT_READFUNCTION, read_cb);
        SET(CURLOPT_READDATA, x);
        SET(CURLOPT_SEEKFUNCTION, seek_cb);
        SET(CURLOPT_SEEKDATA, x);
    } else {
        SET(CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    if (o->aws_sigv4) {
        SET(CURLOPT_AWS_SIGV4, o->aws_sigv4);
        SET(CURLOPT_USERNAME, o->aws_access_key ? o->aws_access_key : "");
        SET(CURLOPT_PASSWORD, o->aws_secret_key ? o->aws_secret_key : "");
    } else if (o->bearer_token) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        SET(CURLOPT_XOAUTH2_BEARER, o->bearer_token);
    } else if (o->basic_user) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SET(CURLOPT_USERNAME, o->basic_user);
        SET(CURLOPT_PASSWORD, o->basic_password ? o->basic_password : "");
    }
#undef SET
    if (bad) {
        snprintf(errstr, errstr_size, "libcurl does not support an option this upload needs");
        return -1;
    }
    int oom = 0;
    /* The body is a finished file: no need to wait for 100 Continue. Not with SigV4:
     * libcurl would sign the removed header as an empty one that is never sent. */
    if (!o->aws_sigv4) oom |= add_header(headers, "Expect", "");
    if (method == METHOD_PUT) {
        if (content_type && *content_type) oom |= add_header(headers, "Content-Type", content_type);
        if (o->aws_sigv4) {
            oom |= add_header(headers, "x-amz-checksum-sha256", sha_b64);
            oom |= add_header(headers, "x-amz-content-sha256", sha_hex);
        } else {
            char v[64];
            snprintf(v, sizeof(v), "sha-256=:%s:", sha_b64);
            oom |= add_header(headers, "Content-Digest", v);
            snprintf(v, sizeof(v), "SHA-256=%s", sha_b64);
            oom |= add_header(headers, "Digest", v);
        }
    } else if (o->aws_sigv4) {
        oom |= add_header(headers, "x-amz-content-sha256",
                          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
    if (o->aws_sigv4 && o->aws_session_token)
        oom |= add_header(headers, "x-amz-security-token", o->aws_session_token);
    if (oom || curl_easy_setopt(easy, CURLOPT_HTTPHEADER, *headers) != CURLE_OK) {
        snprintf(errstr, errstr_size, "out of memory building the request headers");
        return -1;
    }
    return 0;
}

/* One request. Fills *status and *retry_after_s; errstr gets the error when the
 * result is not TRY_OK. */
static try_t http_try(CURL *easy, const upload_opts_t *o, method_t method, xfer_t *x,
                      const char *shown, long *status, long *retry_after_s, char *errbuf,
                      char *errstr, size_t errstr_size) {
    const char *verb = method == METHOD_PUT ? "PUT" : "DELETE";
    *status = 0;
    *retry_after_s = 0;
    x->errbody_len = 0;
    x->errbody[0] = '\0';
    errbuf[0] = '\0';
    if (x->body && fseeko(x->body, 0, SEEK_SET) != 0) {
        snprintf(errstr, errstr_size, "%s %s: cannot rewind the file: %s", verb, shown,
                 strerror(errno));
        return TRY_PERMANENT;
    }
    int why = 0;
    CURLcode rc = perform_watched(easy, o, &why);
    if (why == 1) {
        snprintf(errstr, errstr_size, "%s %s: stopped (shutdown or lost lease)", verb, shown);
        return TRY_ABORTED;
    }
    if (why == 2) {
        snprintf(errstr, errstr_size, "%s %s: stalled, no progress for %ld ms", verb, shown,
                 opt_or(o->stall_timeout_ms, 30000));
        return TRY_RETRY;
    }
    if (rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "%s %s: %s%s%s", verb, shown, curl_easy_strerror(rc),
                 errbuf[0] ? ": " : "", errbuf);
        return curl_code_is_permanent(rc) ? TRY_PERMANENT : TRY_RETRY;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
    if (*status >= 200 && *status < 300) return TRY_OK;
    if (method == METHOD_DELETE && (*status == 404 || *status == 410)) return TRY_OK;
    curl_off_t ra = 0;
    if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
        *retry_after_s = ra > LONG_MAX / 1000 ? LONG_MAX / 1000 : (long)ra;
    char body[UPLOAD_ERRBODY_MAX + 1];
    errbody_oneline(x, body, sizeof(body));
    snprintf(errstr, errstr_size, "%s %s: HTTP %ld%s%s", verb, shown, *status,
             body[0] ? ": " : "", body);
    if (*status == 408 || *status == 429 || *status >= 500) return TRY_RETRY;
    return TRY_PERMANENT;
}

/* The retry loop around http_try. */
static int http_run(const upload_opts_t *o, method_t method, const char *url, const char *path,
                    long long size, const char *sha_b64, const char *sha_hex,
                    const char *content_type, const char *shown, upload_result_t *res,
                    char *errstr, size_t errstr_size) {
    int ret = -1;
    xfer_t x = {0};
    struct curl_slist *headers = NULL;
    char errbuf[CURL_ERROR_SIZE];
    int max_attempts = o->max_attempts >= 1 ? o->max_attempts : 1;
    uint64_t rng = (uint64_t)ev_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)&x;
    CURL *easy = curl_easy_init();
    if (!easy) {
        snprintf(errstr, errstr_size, "out of memory (libcurl handle)");
        res->permanent = 1;
        return -1;
    }
    if (method == METHOD_PUT) {
        x.body = fopen(path, "rb");
        if (!x.body) {
            snprintf(errstr, errstr_size, "PUT %s: cannot open %s: %s", shown, path,
                     strerror(errno));
            res->permanent = 1;
            goto done;
        }
        struct stat st;
        if (fstat(fileno(x.body), &st) != 0) {
            snprintf(errstr, errstr_size, "PUT %s: cannot stat %s: %s", shown, path,
                     strerror(errno));
            res->permanent = 1;
            goto done;
        }
        if ((long long)st.st_size != size) {
            snprintf(errstr, errstr_size, "PUT %s: %s has %lld bytes, expected %lld", shown,
                     path, (long long)st.st_size, size);
            res->permanent = 1;
            goto done;
        }
    }
    errbuf[0] = '\0';
    if (setup_easy(easy, o, method, url, size, sha_b64, sha_hex, content_type, &x, &headers,
                   errbuf, errstr, errstr_size) != 0) {
        res->permanent = 1;
        goto done;
    }
    for (;;) {
        long retry_after_s = 0;
        res->attempts++;
        try_t t = http_try(easy, o, method, &x, shown, &res->http_status, &retry_after_s, errbuf,
                           errstr, errstr_size);
        if (t == TRY_OK) {
            ret = 0;
            break;
        }
        if (t == TRY_ABORTED) {
            res->aborted = 1;
            break;
        }
        if (t == TRY_PERMANENT) {
            res->permanent = 1;
            break;
        }
        if (res->attempts >= max_attempts) break;
        long delay = backoff_delay_ms(o, res->attempts, retry_after_s, &rng);
        EV_WARN("upload: %s (attempt %d of %d); retrying in %ld ms", errstr, res->attempts,
                max_attempts, delay);
        if (sleep_unless_stopped(o, delay)) {
            res->aborted = 1;
            size_t n = strlen(errstr);
            if (n < errstr_size) snprintf(errstr + n, errstr_size - n, " (then stopped)");
            break;
        }
    }
    if (ret != 0 && !res->aborted && !res->permanent && res->attempts > 1) {
        size_t n = strlen(errstr);
        if (n < errstr_size)
            snprintf(errstr + n, errstr_size - n, " (after %d attempts)", res->attempts);
    }
done:
    curl_slist_free_all(headers);
    if (x.body) fclose(x.body);
    curl_easy_cleanup(easy);
    return ret;
}

/* ---- file:// --------------------------------------------------------------------- */

/* Creates the folders above path (like mkdir -p of its dirname). */
static int make_parents(const char *path, char *errstr, size_t errstr_size) {
    char *dir = strdup(path);
    if (!dir) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            snprintf(errstr, errstr_size, "cannot create folder %s: %s", dir, strerror(errno));
            free(dir);
            return -1;
        }
        *p = '/';
    }
    free(dir);
    return 0;
}

/* fsyncs the folder that holds path. */
static void sync_parent(const char *path) {
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    if (slash) {
        if (slash == dir) slash[1] = '\0';
        else *slash = '\0';
        int fd = open(dir, O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    free(dir);
}

/* With may_link: src hard-linked beside dst (same file system), made readable,
 * fsynced and renamed over dst. Returns 0, 1 when linking is not possible here (the
 * caller copies instead), -1 with errstr. */
static int file_link(const char *src, const char *dst, long long size, char *errstr,
                     size_t errstr_size) {
    static unsigned counter;
    size_t tlen = strlen(dst) + 48;
    char *tmp = malloc(tlen);
    if (!tmp) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld.%u", dst, (long)getpid(), counter++);
    if (link(src, tmp) != 0) {
        free(tmp);
        return 1;
    }
    int ret = -1, fd = open(tmp, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size != size) {
        snprintf(errstr, errstr_size, "link to %s: %s is not the %lld bytes expected", dst, src,
                 size);
    } else if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        snprintf(errstr, errstr_size, "sync %s: %s", tmp, strerror(errno));
    } else if (rename(tmp, dst) != 0) {
        snprintf(errstr, errstr_size, "rename to %s: %s", dst, strerror(errno));
    } else {
        tmp[0] = '\0';
        sync_parent(dst);
        ret = 0;
    }
    if (fd >= 0) close(fd);
    if (tmp[0]) unlink(tmp);
    free(tmp);
    return ret;
}

/* Copies src to a temp file beside dst, checks size and sha256, fsyncs, renames over
 * dst (or, with may_link, links instead of copying when it can). Returns 0, or -1
 * with errstr (*aborted = 1 when keep_going stopped it). */
static int file_put(const upload_opts_t *o, const char *src, const char *dst, long long size,
                    const char *sha_hex, int *aborted, char *errstr, size_t errstr_size) {
    int ret = -1, in = -1, out = -1;
    char *tmp = NULL;
    unsigned char *buf = NULL;
    EVP_MD_CTX *md = NULL;
    if (make_parents(dst, errstr, errstr_size) != 0) return -1;
    if (o->may_link) {
        int lrc = file_link(src, dst, size, errstr, errstr_size);
        if (lrc <= 0) return lrc;
    }
    size_t tlen = strlen(dst) + 16;
    tmp = malloc(tlen);
    buf = malloc(UPLOAD_COPY_CHUNK);
    md = EVP_MD_CTX_new();
    if (!tmp || !buf || !md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        snprintf(errstr, errstr_size, "out of memory");
        goto done;
    }
    snprintf(tmp, tlen, "%s.tmp.XXXXXX", dst);
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        snprintf(errstr, errstr_size, "cannot open %s: %s", src, strerror(errno));
        goto done;
    }
    out = mkstemp(tmp);
    if (out < 0) {
        snprintf(errstr, errstr_size, "cannot create a file beside %s: %s", dst, strerror(errno));
        tmp[0] = '\0';
        goto done;
    }
    long long copied = 0;
    int64_t next_check = ev_mono_ns();
    for (;;) {
        if (o->keep_going && ev_mono_ns() >= next_check) {
            if (o->keep_going(o->ud)) {
                *aborted = 1;
                snprintf(errstr, errstr_size, "copy to %s: stopped (shutdown or lost lease)", dst);
                goto done;
            }
            next_check = ev_mono_ns() + (int64_t)UPLOAD_POLL_MS * 1000000;
        }
        ssize_t n = read(in, buf, UPLOAD_COPY_CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            snprintf(errstr, errstr_size, "read %s: %s", src, strerror(errno));
            goto done;
        }
        if (n == 0) break;
        EVP_DigestUpdate(md, buf, (size_t)n);
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                snprintf(errstr, errstr_size, "write %s: %s", dst, strerror(errno));
                goto done;
            }
            off += w;
        }
        copied += n;
    }
    unsigned char digest[32];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(md, digest, &dlen);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    if (copied != size || strcmp(hex, sha_hex) != 0) {
        snprintf(errstr, errstr_size,
                 "copy to %s: %s changed (%lld bytes, sha256 %.12s…; expected %lld, %.12s…)",
                 dst, src, copied, hex, size, sha_hex);
        goto done;
    }
    if (fchmod(out, 0644) != 0 || fsync(out) != 0) {
        snprintf(errstr, errstr_size, "sync %s: %s", tmp, strerror(errno));
        goto done;
    }
    if (close(out) != 0) {
        out = -1;
        snprintf(errstr, errstr_size, "close %s: %s", tmp, strerror(errno));
        goto done;
    }
    out = -1;
    if (rename(tmp, dst) != 0) {
        snprintf(errstr, errstr_size, "rename to %s: %s", dst, strerror(errno));
        goto done;
    }
    tmp[0] = '\0';
    sync_parent(dst);
    ret = 0;
done:
    if (out >= 0) close(out);
    if (in >= 0) close(in);
    if (tmp && tmp[0]) unlink(tmp);
    free(tmp);
    free(buf);
    EVP_MD_CTX_free(md);
    return ret;
}

/* ---- public entry points --------------------------------------------------------- */

static void result_reset(upload_result_t *res) { memset(res, 0, sizeof(*res)); }

int upload_put(const upload_opts_t *opts, const char *url, const char *path, long long size,
               const char *sha256_hex, const char *content_type, upload_result_t *res,
               char *errstr, size_t errstr_size) {
    upload_result_t local;
    if (!res) res = &local;
    result_reset(res);
    char shown[512];
    redact_url(url, shown, sizeof(shown));
    char sha_b64[45];
    if (!opts || !path || size < 0 || sha256_hex_to_b64(sha256_hex, sha_b64) != 0) {
        snprintf(errstr, errstr_size, "PUT %s: bad arguments (need options, a file, a size "
                 "and a 64-digit lowercase hex sha256)", shown);
        res->permanent = 1;
        return -1;
    }
    char *scheme = NULL, perr[256];
    CURLU *u = parse_url(url, &scheme, perr, sizeof(perr));
    if (!u) {
        snprintf(errstr, errstr_size, "PUT %s: %s", shown, perr);
        res->permanent = 1;
        return -1;
    }
    int ret;
    if (strcmp(scheme, "file") == 0) {
        char *dst = file_url_path(u, perr, sizeof(perr));
        res->attempts = 1;
        if (!dst) {
            snprintf(errstr, errstr_size, "PUT %s: %s", shown, perr);
            res->permanent = 1;
            ret = -1;
        } else {
            ret = file_put(opts, path, dst, size, sha256_hex, &res->aborted, errstr, errstr_size);
            if (ret != 0 && !res->aborted) res->permanent = 1;
            free(dst);
        }
    } else {
        ret = http_run(opts, METHOD_PUT, url, path, size, sha_b64, sha256_hex, content_type, shown,
                       res, errstr, errstr_size);
    }
    curl_free(scheme);
    curl_url_cleanup(u);
    return ret;
}

int upload_delete(const upload_opts_t *opts, const char *url, upload_result_t *res,
                  char *errstr, size_t errstr_size) {
    upload_result_t local;
    if (!res) res = &local;
    result_reset(res);
    char shown[512];
    redact_url(url, shown, sizeof(shown));
    if (!opts) {
        snprintf(errstr, errstr_size, "DELETE %s: no options", shown);
        res->permanent = 1;
        return -1;
    }
    char *scheme = NULL, perr[256];
    CURLU *u = parse_url(url, &scheme, perr, sizeof(perr));
    if (!u) {
        snprintf(errstr, errstr_size, "DELETE %s: %s", shown, perr);
        res->permanent = 1;
        return -1;
    }
    int ret;
    if (strcmp(scheme, "file") == 0) {
        char *dst = file_url_path(u, perr, sizeof(perr));
        res->attempts = 1;
        if (!dst) {
            snprintf(errstr, errstr_size, "DELETE %s: %s", shown, perr);
            res->permanent = 1;
            ret = -1;
        } else if (unlink(dst) != 0 && errno != ENOENT) {
            snprintf(errstr, errstr_size, "DELETE %s: %s", shown, strerror(errno));
            res->permanent = 1;
            ret = -1;
        } else {
            ret = 0;
        }
        free(dst);
    } else {
        ret = http_run(opts, METHOD_DELETE, url, NULL, 0, NULL, NULL, NULL, shown, res, errstr,
                       errstr_size);
    }
    curl_free(scheme);
    curl_url_cleanup(u);
    return ret;
}
