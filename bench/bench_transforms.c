/* bench_transforms.c — events/s on one core for parse, classify (cold and cached),
 * sessionize, and the three together, on an NDJSON stream; each printed with its
 * ratio to a baseline measured in the same run (a bare yajl tree parse of the same
 * bytes), so numbers stay comparable on a noisy machine; then the memory the sessionizer
 * holds per held event after the three together. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "common/ua_load.h"
#include "common/util.h"
#include "transforms/device.h"
#include "transforms/enrich.h"
#include "transforms/event.h"
#include "transforms/sessionize.h"

typedef struct {
    char **lines;
    size_t *lens;
    size_t n;
} corpus_t;

static void load(const char *path, corpus_t *c) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    size_t cap = 1 << 16;
    c->lines = malloc(cap * sizeof(char *));
    c->lens = malloc(cap * sizeof(size_t));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        if (len && line[len - 1] == '\n') len--;
        if (c->n == cap) {
            cap *= 2;
            c->lines = realloc(c->lines, cap * sizeof(char *));
            c->lens = realloc(c->lens, cap * sizeof(size_t));
        }
        c->lines[c->n] = malloc((size_t)len + 1);
        memcpy(c->lines[c->n], line, (size_t)len);
        c->lines[c->n][len] = '\0';
        c->lens[c->n++] = (size_t)len;
    }
    free(line);
    fclose(f);
}

static double rate(size_t n, int64_t ns) { return ns > 0 ? (double)n * 1e9 / (double)ns : 0; }

static void report(const char *what, size_t n, int64_t ns, double baseline) {
    double r = rate(n, ns);
    printf("  %-34s %12.0f events/s   %6.2f x baseline\n", what, r, baseline > 0 ? r / baseline : 0);
}

/* ingest's default --batch-size. */
#define INGEST_BATCH 4000

/* Parse, enrich and sessionize every message in batches of INGEST_BATCH, as ingest does.
 * Kept out of line so instruction counters can measure exactly this. Returns 0 or -1. */
__attribute__((noinline)) static int run_all_three(const corpus_t *c, tf_ua_classifier_t *clf,
                                                   tf_sessionizer_t *sz) {
    tf_event_t *batch = calloc(INGEST_BATCH, sizeof(*batch));
    tf_enriched_t *en = calloc(INGEST_BATCH, sizeof(*en));
    tf_enrich_cache_t *cache = tf_enrich_cache_new(16384); /* as ingest uses it */
    if (!batch || !en || !cache) return -1;
    for (size_t k = 0; k < INGEST_BATCH; k++) tf_event_init(&batch[k]), tf_enriched_init(&en[k]);
    int rc = 0;
    for (size_t i = 0; i < c->n && rc == 0;) {
        size_t k = 0;
        for (; i < c->n && k < INGEST_BATCH; i++) {
            tf_event_error_t err;
            if (tf_event_parse(&batch[k], c->lines[i], c->lens[i], &err) != 0) continue;
            if (tf_enrich_cached(&batch[k], clf, cache, &en[k]) != 0) return -1;
            tf_sess_event_t se = {.visitor_id = batch[k].visitor_id,
                                  .event_id = batch[k].event_id,
                                  .ts_ms = batch[k].timestamp_ms,
                                  .type = batch[k].type,
                                  .user_id = batch[k].user_id,
                                  .path = en[k].path,
                                  .campaign_key = en[k].campaign_key,
                                  .page_view_id = batch[k].page_view_id,
                                  .has_time_on_page = batch[k].has_time_on_page,
                                  .time_on_page = batch[k].time_on_page,
                                  .scroll_depth = batch[k].scroll_depth,
                                  .context = &en[k].context,
                                  .cookie = k};
            if (tf_sessionizer_add(sz, &se)) rc = -1;
            k++;
        }
        size_t nr = 0;
        const tf_sess_load_request_t *rq = tf_sessionizer_load_requests(sz, &nr);
        if (!rq) rc = -1;
        for (size_t r = 0; r < nr && rc == 0; r++)
            if (tf_sessionizer_loaded(sz, rq[r].visitor_id, false)) rc = -1;
        tf_sess_changes_t ch;
        if (rc == 0 && tf_sessionizer_flush(sz, &ch)) rc = -1;
        tf_sessionizer_commit(sz);
    }
    for (size_t k = 0; k < INGEST_BATCH; k++) tf_event_reset(&batch[k]), tf_enriched_reset(&en[k]);
    free(batch);
    free(en);
    tf_enrich_cache_destroy(cache);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_transforms EVENTS.ndjson [REGEXES.yaml]\n");
        return 2;
    }
    corpus_t c = {0};
    load(argv[1], &c);
    /* BENCH_ALL_ONLY=1: only the three together (for instruction counters). */
    bool all_only = getenv("BENCH_ALL_ONLY") != NULL;
    /* BENCH_HOLD_ALL=1: no lateness bound, so that no visitor would ever be evicted and the
     * memory line measures every event of the stream held at once. */
    const char *hold_env = getenv("BENCH_HOLD_ALL");
    bool hold_all = hold_env && strcmp(hold_env, "1") == 0;
    const char *regexes = argc > 2 ? argv[2] : TF_UA_REGEXES_DEFAULT_PATH;
    /* The data sets as ingest loads them (EVPIPE_UA_DATA, else the default folder). */
    const char *ua_data = getenv("EVPIPE_UA_DATA");
    if (!ua_data || !*ua_data) ua_data = TF_UA_DATA_DEFAULT_PATH;
    char errstr[1024];

    /* Baseline: a bare JSON tree parse of the same bytes. */
    int64_t t0 = ev_mono_ns();
    for (size_t i = 0; i < c.n; i++) {
        yajl_val v = yajl_tree_parse(c.lines[i], NULL, 0);
        yajl_tree_free(v);
    }
    int64_t base_ns = ev_mono_ns() - t0;
    double baseline = rate(c.n, base_ns);
    printf("transforms on %zu messages (%s)\n", c.n, argv[1]);
    printf("  %-34s %12.0f events/s   (baseline)\n", "yajl_tree_parse (baseline)", baseline);

    /* Parse. */
    tf_event_t *evs = calloc(c.n, sizeof(*evs));
    bool *ok = calloc(c.n, sizeof(bool));
    t0 = ev_mono_ns();
    size_t valid = 0;
    for (size_t i = 0; i < c.n; i++) {
        tf_event_error_t err;
        tf_event_init(&evs[i]);
        ok[i] = tf_event_parse(&evs[i], c.lines[i], c.lens[i], &err) == 0;
        valid += ok[i];
    }
    report("parse + validate", c.n, ev_mono_ns() - t0, baseline);

    tf_ua_classifier_t *cold = NULL, *warm = NULL;
    size_t distinct = 0;
    tf_session_config_t cfg;
    tf_session_config_default(&cfg);
    if (hold_all) cfg.allowed_lateness_ms = INT64_MAX;
    tf_sessionizer_t *sz = NULL;
    if (!all_only) {
    /* Classify: cold (no cache) and cached. */
    size_t n_ua = 0;
    for (size_t i = 0; i < c.n; i++)
        if (ok[i] && evs[i].user_agent) n_ua++;
    cold = ev_ua_classifier_load(regexes, ua_data, 0, errstr, sizeof(errstr));
    warm = ev_ua_classifier_load(regexes, ua_data, 10000, errstr, sizeof(errstr));
    if (!cold || !warm) {
        fprintf(stderr, "classifier: %s\n", errstr);
        return 2;
    }
    size_t cold_n = n_ua < 5000 ? n_ua : 5000; /* cold is slow: a sample */
    tf_ua_info_t info;
    t0 = ev_mono_ns();
    for (size_t i = 0, k = 0; i < c.n && k < cold_n; i++)
        if (ok[i] && evs[i].user_agent) tf_ua_classify(cold, evs[i].user_agent, NULL, &info), k++;
    report("classify, cold (no cache)", cold_n, ev_mono_ns() - t0, baseline);
    t0 = ev_mono_ns();
    for (size_t i = 0; i < c.n; i++)
        if (ok[i] && evs[i].user_agent) tf_ua_classify(warm, evs[i].user_agent, NULL, &info);
    report("classify, cached (LRU 10000)", n_ua, ev_mono_ns() - t0, baseline);
    distinct = tf_ua_classifier_cache_size(warm);

    /* Sessionize alone (context-free), batches of INGEST_BATCH with the full protocol. */
    sz = tf_sessionizer_new(&cfg);
    t0 = ev_mono_ns();
    for (size_t i = 0; i < c.n;) {
        size_t end = i + INGEST_BATCH < c.n ? i + INGEST_BATCH : c.n;
        for (; i < end; i++) {
            if (!ok[i]) continue;
            tf_sess_event_t se = {.visitor_id = evs[i].visitor_id, .event_id = evs[i].event_id,
                                  .ts_ms = evs[i].timestamp_ms, .type = evs[i].type,
                                  .scroll_depth = -1, .cookie = i};
            if (tf_sessionizer_add(sz, &se)) return 1;
        }
        size_t nr = 0;
        const tf_sess_load_request_t *rq = tf_sessionizer_load_requests(sz, &nr);
        for (size_t r = 0; r < nr; r++)
            if (tf_sessionizer_loaded(sz, rq[r].visitor_id, false)) return 1;
        tf_sess_changes_t ch;
        if (tf_sessionizer_flush(sz, &ch)) return 1;
        tf_sessionizer_commit(sz);
    }
    report("sessionize", valid, ev_mono_ns() - t0, baseline);
    tf_sessionizer_destroy(sz);

    }
    /* The three together, as ingest runs them: parse, enrich (URL, attribution,
     * cached device), sessionize. */
    tf_ua_classifier_t *clf = ev_ua_classifier_load(regexes, ua_data, 10000, errstr, sizeof(errstr));
    if (!clf) {
        fprintf(stderr, "classifier: %s\n", errstr);
        return 2;
    }
    sz = tf_sessionizer_new(&cfg);
    t0 = ev_mono_ns();
    if (run_all_three(&c, clf, sz) != 0) return 1;
    int64_t all_ns = ev_mono_ns() - t0;
    report("parse + enrich + sessionize", c.n, all_ns, baseline);
    if (all_only) distinct = tf_ua_classifier_cache_size(clf);
    printf("  (%zu valid, %zu distinct user agents cached, %zu visitors held)\n", valid, distinct,
           tf_sessionizer_visitor_count(sz));
    size_t held = tf_sessionizer_event_count(sz), bytes = tf_sessionizer_memory_bytes(sz);
    printf("  sessionizer memory: %zu events held, %zu bytes, %.1f bytes per held event%s\n",
           held, bytes, held ? (double)bytes / (double)held : 0.0,
           hold_all ? " (BENCH_HOLD_ALL)" : "");
    double all_rate = rate(c.n, all_ns);
    printf("goal: >= 250000 events/s for the three together: %s (%.0f)\n",
           all_rate >= 250000 ? "met" : "NOT met", all_rate);

    for (size_t i = 0; i < c.n; i++) tf_event_reset(&evs[i]), free(c.lines[i]);
    free(evs);
    free(ok);
    free(c.lines);
    free(c.lens);
    tf_sessionizer_destroy(sz);
    tf_ua_classifier_destroy(clf);
    tf_ua_classifier_destroy(cold);
    tf_ua_classifier_destroy(warm);
    return 0;
}
