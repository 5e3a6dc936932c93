/* metrics.c — Prometheus registry, text exposition and the libmicrohttpd endpoint. */
#include "common/metrics.h"

#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define NAME_MAX_LEN 200
#define LABELS_MAX_LEN 4096
#define LABEL_PAIRS_MAX 32

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

typedef struct family_s {
    char *name; /* full exposed name */
    char *help;
    kind_t kind;
    ev_metric_t **series; /* counters and gauges */
    size_t n_series, cap_series;
    ev_histogram_t *histogram; /* histograms: the single series */
} family_t;

struct ev_metric_s {
    family_t *family;
    char *labels;          /* canonical label text, "" for none */
    _Atomic uint64_t bits; /* the double value's bits */
};

struct ev_histogram_s {
    family_t *family;
    pthread_mutex_t mu;
    size_t n;
    double *bounds;   /* n finite bounds */
    uint64_t *counts; /* n + 1 per-bucket (not cumulative) counts, last = above all */
    double sum;
    uint64_t count;
};

struct ev_metrics_s {
    pthread_mutex_t mu; /* the family list and each family's series list */
    char *prefix;       /* "" for none */
    family_t **families;
    size_t n_families, cap_families;
    size_t n_series;
    struct MHD_Daemon *daemon;
    int port;
    ev_ready_fn ready;
    void *ready_ud;
};

/* ---- values ------------------------------------------------------------------ */

static uint64_t to_bits(double v) {
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

static double from_bits(uint64_t b) {
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

void ev_metric_add(ev_metric_t *metric, double v) {
    if (!metric) return;
    if (metric->family->kind == KIND_COUNTER && !(v >= 0)) return;
    uint64_t old = atomic_load_explicit(&metric->bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&metric->bits, &old, to_bits(from_bits(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void ev_metric_set(ev_metric_t *metric, double v) {
    if (!metric) return;
    atomic_store_explicit(&metric->bits, to_bits(v), memory_order_relaxed);
}

double ev_metric_value(const ev_metric_t *metric) {
    if (!metric) return 0;
    return from_bits(atomic_load_explicit(&((ev_metric_t *)metric)->bits, memory_order_relaxed));
}

void ev_histogram_observe(ev_histogram_t *h, double v) {
    if (!h || isnan(v)) return;
    size_t i = 0;
    while (i < h->n && v > h->bounds[i]) i++; /* first bucket with v <= bound */
    pthread_mutex_lock(&h->mu);
    h->counts[i]++;
    h->sum += v;
    h->count++;
    pthread_mutex_unlock(&h->mu);
}

/* ---- names and labels ------------------------------------------------------------ */

static bool name_char(char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

static bool valid_metric_name(const char *s) {
    if (!s || !*s || strlen(s) > NAME_MAX_LEN) return false;
    for (size_t i = 0; s[i]; i++)
        if (!name_char(s[i], i == 0)) return false;
    return true;
}

static bool utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2, cp = c & 0x1Fu, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3, cp = c & 0x0Fu, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4, cp = c & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

typedef struct {
    const char *name;
    size_t name_len;
    const char *pair; /* name="value" as given */
    size_t pair_len;
} label_pair_t;

static int pair_cmp(const void *a, const void *b) {
    const label_pair_t *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* Validates label text and writes its canonical form (pairs sorted by name, joined
 * by ',') into out (LABELS_MAX_LEN + 1 bytes). Returns 0 or -1 when invalid. */
static int canonical_labels(const char *labels, char *out) {
    out[0] = '\0';
    if (!labels || !*labels) return 0;
    if (strlen(labels) > LABELS_MAX_LEN) return -1;
    label_pair_t pairs[LABEL_PAIRS_MAX];
    size_t n = 0;
    const char *p = labels;
    for (;;) {
        if (n == LABEL_PAIRS_MAX) return -1;
        label_pair_t *lp = &pairs[n];
        lp->pair = lp->name = p;
        if (!name_char(*p, true) || *p == ':') return -1;
        while (name_char(*p, false) && *p != ':') p++;
        lp->name_len = (size_t)(p - lp->name);
        if (lp->name_len >= 2 && lp->name[0] == '_' && lp->name[1] == '_') return -1;
        if (*p++ != '=' || *p++ != '"') return -1;
        const char *value = p;
        while (*p && *p != '"') {
            if (*p == '\n') return -1;
            if (*p == '\\') {
                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') return -1;
                p++;
            }
            p++;
        }
        if (*p != '"') return -1;
        if (!utf8_valid((const unsigned char *)value, (size_t)(p - value))) return -1;
        p++;
        lp->pair_len = (size_t)(p - lp->pair);
        n++;
        if (*p == '\0') break;
        if (*p++ != ',') return -1;
        if (*p == '\0') break; /* a trailing comma is allowed */
    }
    qsort(pairs, n, sizeof(pairs[0]), pair_cmp);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && pair_cmp(&pairs[i - 1], &pairs[i]) == 0) return -1; /* duplicate name */
        if (i > 0) out[len++] = ',';
        memcpy(out + len, pairs[i].pair, pairs[i].pair_len);
        len += pairs[i].pair_len;
    }
    out[len] = '\0';
    return 0;
}

int ev_metrics_escape_label_value(const char *value, char *out, size_t out_size) {
    size_t len = 0;
    for (const char *p = value; *p; p++) {
        const char *rep = NULL;
        if (*p == '\\')
            rep = "\\\\";
        else if (*p == '"')
            rep = "\\\"";
        else if (*p == '\n')
            rep = "\\n";
        size_t k = rep ? 2 : 1;
        if (len + k >= out_size) return -1;
        if (rep)
            memcpy(out + len, rep, 2);
        else
            out[len] = *p;
        len += k;
    }
    if (out_size == 0) return -1;
    out[len] = '\0';
    return 0;
}

/* ---- registry ----------------------------------------------------------------- */

ev_metrics_t *ev_metrics_new(const char *namespace_prefix) {
    if (namespace_prefix && *namespace_prefix && !valid_metric_name(namespace_prefix)) return NULL;
    ev_metrics_t *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->prefix = strdup(namespace_prefix ? namespace_prefix : "");
    if (!m->prefix || pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m->prefix);
        free(m);
        return NULL;
    }
    m->port = -1;
    return m;
}

static void family_free(family_t *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_series; i++) {
        free(f->series[i]->labels);
        free(f->series[i]);
    }
    free(f->series);
    if (f->histogram) {
        pthread_mutex_destroy(&f->histogram->mu);
        free(f->histogram->bounds);
        free(f->histogram->counts);
        free(f->histogram);
    }
    free(f->name);
    free(f->help);
    free(f);
}

void ev_metrics_destroy(ev_metrics_t *m) {
    if (!m) return;
    ev_metrics_stop(m);
    for (size_t i = 0; i < m->n_families; i++) family_free(m->families[i]);
    free(m->families);
    free(m->prefix);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* Full name into out (NAME_MAX_LEN + 1 bytes); false when invalid. */
static bool full_name(const ev_metrics_t *m, const char *name, char *out) {
    if (!name || !*name) return false;
    int n = m->prefix[0] ? snprintf(out, NAME_MAX_LEN + 1, "%s_%s", m->prefix, name)
                         : snprintf(out, NAME_MAX_LEN + 1, "%s", name);
    return n > 0 && n <= NAME_MAX_LEN && valid_metric_name(out);
}

/* Finds the family (m->mu held); NULL when absent. */
static family_t *find_family(const ev_metrics_t *m, const char *name) {
    for (size_t i = 0; i < m->n_families; i++)
        if (strcmp(m->families[i]->name, name) == 0) return m->families[i];
    return NULL;
}

/* Creates and appends a family (m->mu held); NULL when out of memory. */
static family_t *add_family(ev_metrics_t *m, const char *name, const char *help, kind_t kind) {
    if (m->n_families == m->cap_families) {
        size_t cap = m->cap_families ? m->cap_families * 2 : 16;
        family_t **grown = realloc(m->families, cap * sizeof(*grown));
        if (!grown) return NULL;
        m->families = grown;
        m->cap_families = cap;
    }
    family_t *f = calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->kind = kind;
    if (!f->name || !f->help) {
        family_free(f);
        return NULL;
    }
    m->families[m->n_families++] = f;
    return f;
}

static ev_metric_t *get_series(ev_metrics_t *m, const char *name, const char *help,
                               const char *labels, kind_t kind) {
    if (!m) return NULL;
    char full[NAME_MAX_LEN + 1];
    char canon[LABELS_MAX_LEN + 1];
    if (!full_name(m, name, full) || canonical_labels(labels, canon) != 0) return NULL;
    ev_metric_t *found = NULL;
    pthread_mutex_lock(&m->mu);
    family_t *f = find_family(m, full);
    if (f && f->kind != kind) goto out;
    if (f)
        for (size_t i = 0; i < f->n_series; i++)
            if (strcmp(f->series[i]->labels, canon) == 0) {
                found = f->series[i];
                goto out;
            }
    if (m->n_series >= EV_METRICS_MAX_SERIES) goto out;
    if (!f && !(f = add_family(m, full, help, kind))) goto out;
    if (f->n_series == f->cap_series) {
        size_t cap = f->cap_series ? f->cap_series * 2 : 4;
        ev_metric_t **grown = realloc(f->series, cap * sizeof(*grown));
        if (!grown) goto out;
        f->series = grown;
        f->cap_series = cap;
    }
    ev_metric_t *s = calloc(1, sizeof(*s));
    if (!s) goto out;
    if (!(s->labels = strdup(canon))) {
        free(s);
        goto out;
    }
    s->family = f;
    atomic_init(&s->bits, to_bits(0.0));
    f->series[f->n_series++] = s;
    m->n_series++;
    found = s;
out:
    pthread_mutex_unlock(&m->mu);
    return found;
}

ev_metric_t *ev_metrics_counter(ev_metrics_t *m, const char *name, const char *help,
                                const char *labels) {
    return get_series(m, name, help, labels, KIND_COUNTER);
}

ev_metric_t *ev_metrics_gauge(ev_metrics_t *m, const char *name, const char *help,
                              const char *labels) {
    return get_series(m, name, help, labels, KIND_GAUGE);
}

ev_histogram_t *ev_metrics_histogram(ev_metrics_t *m, const char *name, const char *help,
                                     const double *bounds, size_t n) {
    if (!m || n > EV_METRICS_MAX_BUCKETS || (n > 0 && !bounds)) return NULL;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) return NULL;
    char full[NAME_MAX_LEN + 1];
    if (!full_name(m, name, full)) return NULL;
    ev_histogram_t *found = NULL;
    pthread_mutex_lock(&m->mu);
    family_t *f = find_family(m, full);
    if (f) {
        ev_histogram_t *h = f->histogram;
        if (f->kind == KIND_HISTOGRAM && h->n == n &&
            (n == 0 || memcmp(h->bounds, bounds, n * sizeof(double)) == 0))
            found = h;
        goto out;
    }
    if (m->n_series >= EV_METRICS_MAX_SERIES) goto out;
    ev_histogram_t *h = calloc(1, sizeof(*h));
    if (!h) goto out;
    h->n = n;
    h->bounds = malloc((n ? n : 1) * sizeof(double));
    h->counts = calloc(n + 1, sizeof(uint64_t));
    if (!h->bounds || !h->counts || pthread_mutex_init(&h->mu, NULL) != 0) {
        free(h->bounds);
        free(h->counts);
        free(h);
        goto out;
    }
    if (n) memcpy(h->bounds, bounds, n * sizeof(double));
    if (!(f = add_family(m, full, help, KIND_HISTOGRAM))) {
        pthread_mutex_destroy(&h->mu);
        free(h->bounds);
        free(h->counts);
        free(h);
        goto out;
    }
    h->family = f;
    f->histogram = h;
    m->n_series++;
    found = h;
out:
    pthread_mutex_unlock(&m->mu);
    return found;
}

/* ---- rendering ---------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} buf_t;

static void buf_put(buf_t *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        if (cap > EV_METRICS_MAX_RENDER) {
            if (b->len + n + 1 > EV_METRICS_MAX_RENDER) {
                b->failed = true;
                return;
            }
            cap = EV_METRICS_MAX_RENDER;
        }
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_str(buf_t *b, const char *s) { buf_put(b, s, strlen(s)); }

/* Decimal text that reads back to exactly v: whole numbers below 1e15 in full,
 * others in the shortest %g form. */
static void format_value(double v, char out[40]) {
    if (isnan(v)) {
        snprintf(out, 40, "NaN");
    } else if (isinf(v)) {
        snprintf(out, 40, v > 0 ? "+Inf" : "-Inf");
    } else if (v == 0) {
        snprintf(out, 40, "0"); /* -0 too */
    } else if (fabs(v) < 1e15 && v == floor(v)) {
        snprintf(out, 40, "%.0f", v); /* whole numbers (counts) in full: "400000" */
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(out, 40, "%.*g", prec, v);
            if (strtod(out, NULL) == v) break;
        }
    }
}

static void buf_help(buf_t *b, const char *name, const char *help, const char *type) {
    buf_str(b, "# HELP ");
    buf_str(b, name);
    buf_str(b, " ");
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            buf_str(b, "\\\\");
        else if (*p == '\n')
            buf_str(b, "\\n");
        else
            buf_put(b, p, 1);
    }
    buf_str(b, "\n# TYPE ");
    buf_str(b, name);
    buf_str(b, " ");
    buf_str(b, type);
    buf_str(b, "\n");
}

static void buf_sample(buf_t *b, const char *name, const char *suffix, const char *labels,
                       double v) {
    char num[40];
    format_value(v, num);
    buf_str(b, name);
    buf_str(b, suffix);
    if (labels && *labels) {
        buf_str(b, "{");
        buf_str(b, labels);
        buf_str(b, "}");
    }
    buf_str(b, " ");
    buf_str(b, num);
    buf_str(b, "\n");
}

static int family_cmp(const void *a, const void *b) {
    return strcmp((*(family_t *const *)a)->name, (*(family_t *const *)b)->name);
}

static int series_cmp(const void *a, const void *b) {
    return strcmp((*(ev_metric_t *const *)a)->labels, (*(ev_metric_t *const *)b)->labels);
}

static void render_histogram(buf_t *b, family_t *f) {
    ev_histogram_t *h = f->histogram;
    uint64_t counts[EV_METRICS_MAX_BUCKETS + 1];
    pthread_mutex_lock(&h->mu);
    memcpy(counts, h->counts, (h->n + 1) * sizeof(uint64_t));
    double sum = h->sum;
    uint64_t count = h->count;
    pthread_mutex_unlock(&h->mu);
    buf_help(b, f->name, f->help, "histogram");
    uint64_t cumulative = 0;
    char labels[64];
    for (size_t i = 0; i <= h->n; i++) {
        cumulative += counts[i];
        if (i < h->n) {
            char num[40];
            format_value(h->bounds[i], num);
            snprintf(labels, sizeof(labels), "le=\"%s\"", num);
        } else {
            snprintf(labels, sizeof(labels), "le=\"+Inf\"");
        }
        buf_sample(b, f->name, "_bucket", labels, (double)cumulative);
    }
    buf_sample(b, f->name, "_sum", NULL, sum);
    buf_sample(b, f->name, "_count", NULL, (double)count);
}

char *ev_metrics_render(ev_metrics_t *m) {
    if (!m) return NULL;
    buf_t b = {0};
    buf_put(&b, "", 0); /* an empty registry renders as "" */
    pthread_mutex_lock(&m->mu);
    family_t **fams = malloc((m->n_families ? m->n_families : 1) * sizeof(*fams));
    if (!fams) {
        b.failed = true;
        goto out;
    }
    if (m->n_families) memcpy(fams, m->families, m->n_families * sizeof(*fams));
    qsort(fams, m->n_families, sizeof(*fams), family_cmp);
    for (size_t i = 0; i < m->n_families && !b.failed; i++) {
        family_t *f = fams[i];
        if (f->kind == KIND_HISTOGRAM) {
            render_histogram(&b, f);
            continue;
        }
        ev_metric_t **series = malloc((f->n_series ? f->n_series : 1) * sizeof(*series));
        if (!series) {
            b.failed = true;
            break;
        }
        if (f->n_series) memcpy(series, f->series, f->n_series * sizeof(*series));
        qsort(series, f->n_series, sizeof(*series), series_cmp);
        buf_help(&b, f->name, f->help, f->kind == KIND_COUNTER ? "counter" : "gauge");
        for (size_t k = 0; k < f->n_series; k++)
            buf_sample(&b, f->name, "", series[k]->labels, ev_metric_value(series[k]));
        free(series);
    }
out:
    pthread_mutex_unlock(&m->mu);
    free(fams);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

/* ---- HTTP endpoint ------------------------------------------------------------ */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body,
                             size_t len, enum MHD_ResponseMemoryMode mode,
                             const char *content_type) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE) free((void *)body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static const char text_plain[] = "text/plain; charset=utf-8";

static enum MHD_Result handle_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls) {
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    ev_metrics_t *m = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        static const char body[] = "method not allowed\n";
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, body, sizeof(body) - 1,
                     MHD_RESPMEM_PERSISTENT, text_plain);
    }
    if (strcmp(url, "/metrics") == 0) {
        char *text = ev_metrics_render(m);
        if (!text) {
            static const char body[] = "metrics unavailable (out of memory)\n";
            return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, body, sizeof(body) - 1,
                         MHD_RESPMEM_PERSISTENT, text_plain);
        }
        return reply(conn, MHD_HTTP_OK, text, strlen(text), MHD_RESPMEM_MUST_FREE,
                     "text/plain; version=0.0.4; charset=utf-8");
    }
    if (strcmp(url, "/healthz") == 0) {
        static const char body[] = "ok\n";
        return reply(conn, MHD_HTTP_OK, body, sizeof(body) - 1, MHD_RESPMEM_PERSISTENT, text_plain);
    }
    if (strcmp(url, "/readyz") == 0) {
        char reason[256] = "";
        if (!m->ready || m->ready(m->ready_ud, reason, sizeof(reason) - 1) == 1) {
            static const char body[] = "ok\n";
            return reply(conn, MHD_HTTP_OK, body, sizeof(body) - 1, MHD_RESPMEM_PERSISTENT,
                         text_plain);
        }
        reason[sizeof(reason) - 1] = '\0';
        char body[260];
        int n = snprintf(body, sizeof(body), "%s\n", reason[0] ? reason : "not ready");
        return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body, (size_t)n, MHD_RESPMEM_MUST_COPY,
                     text_plain);
    }
    static const char body[] = "not found\n";
    return reply(conn, MHD_HTTP_NOT_FOUND, body, sizeof(body) - 1, MHD_RESPMEM_PERSISTENT,
                 text_plain);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    EV_WARN("metrics endpoint: %s", line);
}

int ev_metrics_serve(ev_metrics_t *m, int port, ev_ready_fn ready, void *ud, char *errstr,
                     size_t errstr_size) {
    if (!m) {
        snprintf(errstr, errstr_size, "no registry");
        return -1;
    }
    if (m->daemon) {
        snprintf(errstr, errstr_size, "already serving on port %d", m->port);
        return -1;
    }
    if (port < 0 || port > 65535) {
        snprintf(errstr, errstr_size, "port %d out of range 0..65535", port);
        return -1;
    }
    m->ready = ready;
    m->ready_ud = ud;
    errno = 0;
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG,
                         (uint16_t)port, NULL, NULL, handle_request, m, MHD_OPTION_EXTERNAL_LOGGER,
                         mhd_log, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
    if (!d) {
        int err = errno;
        snprintf(errstr, errstr_size, "cannot listen on 0.0.0.0:%d%s%s", port, err ? ": " : "",
                 err ? strerror(err) : "");
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info && info->port ? (int)info->port : port;
    m->daemon = d;
    return 0;
}

int ev_metrics_port(const ev_metrics_t *m) { return m && m->daemon ? m->port : -1; }

void ev_metrics_stop(ev_metrics_t *m) {
    if (!m || !m->daemon) return;
    MHD_stop_daemon(m->daemon);
    m->daemon = NULL;
    m->port = -1;
}
