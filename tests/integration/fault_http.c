/* fault_http.c — a scripted HTTP/1.1 fault server for the upload tests (see
 * fault_http.h). */
#include "tests/integration/fault_http.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FH_MAX_STEPS 16
#define FH_MAX_REQS 32
#define FH_HEAD_MAX 65536

struct fh_server_s {
    int fd;
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    volatile int stop;
    fh_step_t steps[FH_MAX_STEPS];
    int nsteps;
    int next;
    fh_request_t reqs[FH_MAX_REQS];
    int nreqs;
};

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Waits up to 100 ms for fd to be readable; 1 readable, 0 not yet, -1 stopping. */
static int wait_readable(fh_server_t *s, int fd) {
    if (s->stop) return -1;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 100) > 0 ? 1 : 0;
}

/* Reads until the blank line ending the headers; returns the bytes read (head plus
 * any body bytes after it) or -1. *head_len = offset of the body. */
static ssize_t read_head(fh_server_t *s, int fd, char *buf, size_t cap, size_t *head_len) {
    size_t got = 0;
    int64_t deadline = mono_ns() + 10LL * 1000000000;
    while (got < cap - 1) {
        int r = wait_readable(s, fd);
        if (r < 0 || mono_ns() > deadline) return -1;
        if (r == 0) continue;
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n <= 0) return -1;
        got += (size_t)n;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            *head_len = (size_t)(end - buf) + 4;
            return (ssize_t)got;
        }
    }
    return -1;
}

/* Reads body bytes until want are in r->body (or the peer leaves). */
static void read_body(fh_server_t *s, int fd, fh_request_t *r, size_t want) {
    int64_t deadline = mono_ns() + 20LL * 1000000000;
    while (r->body_len < want && mono_ns() < deadline) {
        int w = wait_readable(s, fd);
        if (w < 0) return;
        if (w == 0) continue;
        ssize_t n = recv(fd, r->body + r->body_len, want - r->body_len, 0);
        if (n <= 0) return;
        r->body_len += (size_t)n;
    }
}

static void send_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0) return;
        data += n;
        len -= (size_t)n;
    }
}

static void serve_one(fh_server_t *s, int fd) {
    char *buf = malloc(FH_HEAD_MAX);
    size_t head_len = 0;
    ssize_t got = read_head(s, fd, buf, FH_HEAD_MAX, &head_len);
    if (got < 0) {
        free(buf);
        return;
    }
    fh_request_t r = {.content_length = -1, .at_ns = mono_ns()};
    char *line_end = strstr(buf, "\r\n");
    *line_end = '\0';
    sscanf(buf, "%15s %1023s", r.method, r.path);
    size_t hdr_len = head_len - (size_t)(line_end + 2 - buf);
    r.headers = malloc(hdr_len + 1);
    memcpy(r.headers, line_end + 2, hdr_len);
    r.headers[hdr_len] = '\0';
    char cl[32];
    if (fh_header(&r, "Content-Length", cl, sizeof(cl))) r.content_length = strtoll(cl, NULL, 10);
    size_t want = r.content_length > 0 ? (size_t)r.content_length : 0;
    r.body = malloc(want + 1);
    size_t early = (size_t)got - head_len;
    if (early > want) early = want;
    memcpy(r.body, buf + head_len, early);
    r.body_len = early;
    free(buf);

    pthread_mutex_lock(&s->mu);
    fh_step_t step = s->steps[s->next < s->nsteps ? s->next : s->nsteps - 1];
    s->next++;
    pthread_mutex_unlock(&s->mu);

    char expect[32];
    if (fh_header(&r, "Expect", expect, sizeof(expect)) && strcasecmp(expect, "100-continue") == 0)
        send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    if (step.kind == FH_DROP) {
        read_body(s, fd, &r, want / 4);
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    } else {
        read_body(s, fd, &r, want);
    }
    pthread_mutex_lock(&s->mu);
    if (s->nreqs < FH_MAX_REQS) {
        s->reqs[s->nreqs++] = r;
    } else {
        free(r.headers);
        free(r.body);
    }
    pthread_mutex_unlock(&s->mu);

    if (step.kind == FH_STALL) {
        char tmp[256];
        int64_t deadline = mono_ns() + 60LL * 1000000000;
        while (mono_ns() < deadline) {
            int w = wait_readable(s, fd);
            if (w < 0) break;
            if (w > 0 && recv(fd, tmp, sizeof(tmp), 0) <= 0) break;
        }
    } else if (step.kind == FH_STATUS) {
        char resp[1024];
        const char *body = step.status >= 300 ? "<Error><Code>Scripted</Code>\n  <Message>fault "
                                                "server says no</Message></Error>"
                                              : "";
        int n = snprintf(resp, sizeof(resp),
                         "HTTP/1.1 %d Scripted\r\nContent-Length: %zu\r\nConnection: close\r\n"
                         "%s\r\n%s",
                         step.status, strlen(body), step.extra ? step.extra : "", body);
        send_all(fd, resp, (size_t)n);
        shutdown(fd, SHUT_WR);
        char tmp[256];
        for (int i = 0; i < 20 && wait_readable(s, fd) == 0; i++) {
        }
        while (recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT) > 0) {
        }
    }
}

static void *server_main(void *ud) {
    fh_server_t *s = ud;
    while (!s->stop) {
        if (wait_readable(s, s->fd) <= 0) continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) continue;
        serve_one(s, c);
        close(c);
    }
    return NULL;
}

fh_server_t *fh_start(const fh_step_t *steps, int n) {
    ck_assert(n >= 1 && n <= FH_MAX_STEPS);
    fh_server_t *s = calloc(1, sizeof(*s));
    ck_assert(s != NULL);
    memcpy(s->steps, steps, sizeof(*steps) * (size_t)n);
    s->nsteps = n;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert(bind(s->fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    ck_assert(listen(s->fd, 16) == 0);
    ck_assert(getsockname(s->fd, (struct sockaddr *)&a, &len) == 0);
    s->port = ntohs(a.sin_port);
    ck_assert(pthread_create(&s->thread, NULL, server_main, s) == 0);
    return s;
}

int fh_port(const fh_server_t *s) { return s->port; }

void fh_stop(fh_server_t *s) {
    if (!s) return;
    s->stop = 1;
    pthread_join(s->thread, NULL);
    close(s->fd);
    for (int i = 0; i < s->nreqs; i++) {
        free(s->reqs[i].headers);
        free(s->reqs[i].body);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int fh_count(fh_server_t *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->nreqs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

const fh_request_t *fh_request(fh_server_t *s, int i) {
    pthread_mutex_lock(&s->mu);
    const fh_request_t *r = i >= 0 && i < s->nreqs ? &s->reqs[i] : NULL;
    pthread_mutex_unlock(&s->mu);
    ck_assert_msg(r != NULL, "no request %d (saw %d)", i, fh_count(s));
    return r;
}

const char *fh_header(const fh_request_t *r, const char *name, char *out, size_t out_size) {
    size_t nlen = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol) eol = p + strlen(p);
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            const char *e = eol;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
            snprintf(out, out_size, "%.*s", (int)(e - v), v);
            return out;
        }
        p = *eol ? eol + 2 : eol;
    }
    return NULL;
}
