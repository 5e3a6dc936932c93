/* bench_device.c — the device classifier on the held-out corpus (tests/data/ua/heldout.tsv,
 * labelled by projects it was not tuned on): agreement per class and the confusion
 * matrix; then classifications per second on one core, cold (no cache) and cached, with
 * the data sets and, as a same-run reference, without them (uap-core and the hand rules
 * alone), each with its ratio.
 *
 *   bench_device [HELDOUT.tsv [LABELLED.tsv]]   (EVPIPE_UA_REGEXES, EVPIPE_UA_DATA) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ua_load.h"
#include "common/util.h"
#include "transforms/device.h"

typedef struct {
    char **ua;
    tf_device_type_t *label;
    size_t n, cap;
} tsv_t;

static void tsv_load(const char *path, tsv_t *t) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(2);
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        char *tab = strchr(line, '\t');
        if (line[0] == '#' || !tab) continue;
        *tab = '\0';
        tf_device_type_t label;
        if (tf_device_type_parse(line, &label) != 0) continue;
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 4096;
            t->ua = realloc(t->ua, t->cap * sizeof(*t->ua));
            t->label = realloc(t->label, t->cap * sizeof(*t->label));
            if (!t->ua || !t->label) exit(3);
        }
        t->ua[t->n] = strdup(tab + 1);
        if (!t->ua[t->n]) exit(3);
        t->label[t->n++] = label;
    }
    free(line);
    fclose(f);
}

static void tsv_free(tsv_t *t) {
    for (size_t i = 0; i < t->n; i++)
        free(t->ua[i]);
    free(t->ua);
    free(t->label);
}

static tf_ua_classifier_t *load(const char *data_dir, size_t cache) {
    const char *regexes = getenv("EVPIPE_UA_REGEXES");
    if (!regexes || !*regexes) regexes = TF_UA_REGEXES_DEFAULT_PATH;
    char err[1024];
    tf_ua_classifier_t *c = ev_ua_classifier_load(regexes, data_dir, cache, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "bench_device: %s\n", err);
        exit(2);
    }
    return c;
}

static void agreement(const char *name, const tsv_t *t, tf_ua_classifier_t *c) {
    size_t m[TF_DEVICE_TYPE_COUNT][TF_DEVICE_TYPE_COUNT];
    memset(m, 0, sizeof(m));
    for (size_t i = 0; i < t->n; i++) {
        tf_ua_info_t info;
        tf_ua_classify(c, t->ua[i], NULL, &info);
        m[t->label[i]][info.type]++;
    }
    size_t ok = 0, browsers = 0, browsers_bot = 0;
    printf("%s: %zu agents\n", name, t->n);
    printf("  %-8s %6s %9s   as DESKTOP  TABLET  MOBILE     BOT UNKNOWN\n", "label", "n",
           "agreement");
    for (int l = 0; l < TF_DEVICE_TYPE_COUNT; l++) {
        size_t n = 0;
        for (int g = 0; g < TF_DEVICE_TYPE_COUNT; g++)
            n += m[l][g];
        ok += m[l][l];
        if (l != TF_DEVICE_BOT && l != TF_DEVICE_UNKNOWN) browsers += n, browsers_bot += m[l][3];
        if (n == 0) continue;
        printf("  %-8s %6zu %8.2f%%   %10zu %7zu %7zu %7zu %7zu\n",
               tf_device_type_name((tf_device_type_t)l), n, 100.0 * (double)m[l][l] / (double)n,
               m[l][0], m[l][1], m[l][2], m[l][3], m[l][4]);
    }
    size_t bots = 0;
    for (int g = 0; g < TF_DEVICE_TYPE_COUNT; g++)
        bots += m[TF_DEVICE_BOT][g];
    printf("  overall %.2f%% agreement (goal >= 97%%), bots recognised %.2f%% (goal >= 95%%), "
           "browsers called BOT %.2f%% (goal <= 1%%)\n",
           t->n ? 100.0 * (double)ok / (double)t->n : 0.0,
           bots ? 100.0 * (double)m[TF_DEVICE_BOT][TF_DEVICE_BOT] / (double)bots : 0.0,
           browsers ? 100.0 * (double)browsers_bot / (double)browsers : 0.0);
}

/* Classifications per second of every agent of t, reps times over. */
static double rate(tf_ua_classifier_t *c, const tsv_t *t, int reps) {
    tf_ua_info_t info;
    int64_t t0 = ev_mono_ns();
    for (int r = 0; r < reps; r++)
        for (size_t i = 0; i < t->n; i++)
            tf_ua_classify(c, t->ua[i], NULL, &info);
    int64_t ns = ev_mono_ns() - t0;
    return ns > 0 ? (double)t->n * reps * 1e9 / (double)ns : 0.0;
}

static void rates(const char *name, const tsv_t *t) {
    const char *data = getenv("EVPIPE_UA_DATA");
    if (!data || !*data) data = TF_UA_DATA_DEFAULT_PATH;
    /* The cache holds every agent (as ingest's holds its working set). */
    size_t cache = t->n > 10000 ? 2 * t->n : 10000;
    tf_ua_classifier_t *cold = load(data, 0), *warm = load(data, cache);
    tf_ua_classifier_t *cold_uap = load(NULL, 0), *warm_uap = load(NULL, cache);
    rate(warm, t, 1); /* fill the caches */
    rate(warm_uap, t, 1);
    int cold_reps = t->n < 5000 ? 4 : 1; /* at least ~10000 classifications */
    double rc = rate(cold, t, cold_reps), rw = rate(warm, t, 20);
    double uc = rate(cold_uap, t, cold_reps), uw = rate(warm_uap, t, 20);
    printf("classification rate on %s (%zu agents, one core):\n", name, t->n);
    printf("  %-44s %10.0f /s\n", "cold (no cache), with the data sets", rc);
    printf("  %-44s %10.0f /s   cold/cached %.4f\n", "cached (LRU), with the data sets", rw,
           rw > 0 ? rc / rw : 0.0);
    printf("  %-44s %10.0f /s   with/without %.2f\n", "cold, uap-core and hand rules alone", uc,
           uc > 0 ? rc / uc : 0.0);
    printf("  %-44s %10.0f /s   with/without %.2f\n", "cached, uap-core and hand rules alone", uw,
           uw > 0 ? rw / uw : 0.0);
    tf_ua_classifier_destroy(cold);
    tf_ua_classifier_destroy(warm);
    tf_ua_classifier_destroy(cold_uap);
    tf_ua_classifier_destroy(warm_uap);
}

int main(int argc, char **argv) {
    const char *heldout = argc > 1 ? argv[1] : "tests/data/ua/heldout.tsv";
    const char *labelled = argc > 2 ? argv[2] : "tests/data/ua/labelled.tsv";
    tsv_t h = {0}, l = {0};
    tsv_load(heldout, &h);
    tsv_load(labelled, &l);
    const char *data = getenv("EVPIPE_UA_DATA");
    tf_ua_classifier_t *c = load(data && *data ? data : TF_UA_DATA_DEFAULT_PATH, 0);
    agreement("held-out corpus (tests/data/ua/heldout.tsv; never tuned on)", &h, c);
    agreement("tuning corpus (tests/data/ua/labelled.tsv)", &l, c);
    tf_ua_classifier_destroy(c);
    rates("the held-out corpus", &h);
    rates("the tuning corpus", &l);
    tsv_free(&h);
    tsv_free(&l);
    return 0;
}
