/* metrics.h — a small Prometheus registry (counters, gauges, histograms) and the
 * HTTP endpoint of every long-running stage: GET /metrics, /healthz and /readyz.
 *
 * Thread safety: handles are created and updated from any thread (the consumer);
 * the HTTP thread renders concurrently. Counter and gauge updates are lock-free;
 * a histogram observation takes that histogram's own lock, so a scrape always sees
 * buckets, _sum and _count of the same set of observations.
 *
 * Names: a metric's exposed name is "<prefix>_<name>" (just <name> when the prefix is
 * NULL or ""); it must match [a-zA-Z_:][a-zA-Z0-9_:]* and be at most 200 bytes.
 * Counter names should end in "_total", as Prometheus expects.
 *
 * Labels are given as exposition text, `reason="invalid_json",topic="x"`: names
 * [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__"), values in double quotes with \\,
 * \" and \n as the only escapes (see ev_metrics_escape_label_value), UTF-8, pairs
 * separated by ','. Order does not matter: the set is sorted by name, so
 * `b="1",a="2"` and `a="2",b="1"` are the same series. NULL or "" = no labels.
 *
 * Output: families sorted by name, each with one "# HELP" (the help given when the
 * family was first created, \ and newlines escaped) and one "# TYPE" line, its
 * series sorted by label text. Numbers are printed so that they read back exactly:
 * whole numbers below 1e15 in full ("400000"), others in the shortest %g form
 * ("0.25", "1e+20"), and "+Inf", "-Inf", "NaN".
 */
#ifndef EV_METRICS_H
#define EV_METRICS_H

#include <stddef.h>

#define EV_METRICS_MAX_SERIES 10000      /* counters + gauges + histograms per registry */
#define EV_METRICS_MAX_BUCKETS 64        /* finite bounds per histogram */
#define EV_METRICS_MAX_RENDER (16 << 20) /* bytes of one /metrics response */

typedef struct ev_metrics_s ev_metrics_t;
typedef struct ev_metric_s ev_metric_t;       /* one counter or gauge series */
typedef struct ev_histogram_s ev_histogram_t; /* one histogram */

/* Creates an empty registry whose metric names start with namespace_prefix + "_"
 * (e.g. "evpipe_ingest"; copied; NULL or "" for none). Returns NULL when out of
 * memory or when the prefix is not a valid metric name. */
ev_metrics_t *ev_metrics_new(const char *namespace_prefix);

/* Stops the HTTP endpoint (if serving) and frees the registry and every handle it
 * gave out. NULL is a no-op. */
void ev_metrics_destroy(ev_metrics_t *m);

/* Get-or-create the counter / gauge series `name` with the given label set. The same
 * (name, labels) always returns the same handle, valid until ev_metrics_destroy.
 * help is used when the family is created (NULL = empty). Returns NULL when the
 * name or labels are invalid, the name is already a metric of another type, the
 * registry holds EV_METRICS_MAX_SERIES series, or memory ran out; updating a NULL
 * handle does nothing, so callers need not check. */
ev_metric_t *ev_metrics_counter(ev_metrics_t *m, const char *name, const char *help,
                                const char *labels);
ev_metric_t *ev_metrics_gauge(ev_metrics_t *m, const char *name, const char *help,
                              const char *labels);

/* Adds v. For a counter, a negative or NaN v is ignored (counters never go down);
 * for a gauge any v is added. NULL handle: no-op. */
void ev_metric_add(ev_metric_t *metric, double v);

/* Sets the value (gauges; on a counter only to mirror a total kept elsewhere, which
 * must not decrease). NULL handle: no-op. */
void ev_metric_set(ev_metric_t *metric, double v);

/* The current value; 0 for a NULL handle. */
double ev_metric_value(const ev_metric_t *metric);

/* Get-or-create the histogram `name` (no labels) with n finite upper bounds, strictly
 * increasing (copied; the "+Inf" bucket is implicit; n may be 0). Returns the same
 * handle for the same name and bounds; NULL when the name is invalid or taken by
 * another type or other bounds, the bounds are not finite and increasing, n >
 * EV_METRICS_MAX_BUCKETS, the registry is full, or memory ran out. */
ev_histogram_t *ev_metrics_histogram(ev_metrics_t *m, const char *name, const char *help,
                                     const double *bounds, size_t n);

/* Records one observation: counted in every bucket whose bound is >= v (le
 * semantics), added to _sum and _count. NaN is ignored. NULL handle: no-op. */
void ev_histogram_observe(ev_histogram_t *h, double v);

/* Renders the Prometheus text exposition format (version 0.0.4) of every metric.
 * Returns a malloc'd NUL-terminated string (caller frees), or NULL when out of
 * memory or larger than EV_METRICS_MAX_RENDER. */
char *ev_metrics_render(ev_metrics_t *m);

/* Escapes a label value for the label text above (\ -> \\, " -> \", newline -> \n)
 * into out (NUL-terminated). Returns 0, or -1 when out_size is too small. */
int ev_metrics_escape_label_value(const char *value, char *out, size_t out_size);

/* Readiness probe: returns 1 when ready; otherwise 0 with a one-line reason written
 * into reason (reason_size bytes). Called on the HTTP thread, so it must be
 * thread-safe with respect to what it reads. */
typedef int (*ev_ready_fn)(void *ud, char *reason, size_t reason_size);

/* Serves, from a thread of its own, on 0.0.0.0:port (port 0 = any free port):
 *   GET /metrics  200, text/plain; version=0.0.4, the rendering above;
 *   GET /healthz  200 "ok\n" while the process is alive;
 *   GET /readyz   200 "ok\n" when ready is NULL or returns 1, else 503 with the
 *                 reason and a newline;
 *   any other path 404 "not found\n"; a method other than GET or HEAD 405.
 * Returns 0, or -1 with errstr filled (port taken, not permitted, out of range,
 * already serving). */
int ev_metrics_serve(ev_metrics_t *m, int port, ev_ready_fn ready, void *ud, char *errstr,
                     size_t errstr_size) __attribute__((warn_unused_result));

/* The TCP port being served, or -1 when not serving. */
int ev_metrics_port(const ev_metrics_t *m);

/* Stops serving (waits for the HTTP thread); the registry stays usable. No-op when
 * not serving. */
void ev_metrics_stop(ev_metrics_t *m);

#endif
