/* test_loadgen.c — the synthetic traffic model (determinism, realism, every malformed
 * kind rejected by the validator and every valid event accepted, ratios, disorder
 * bounds, session gaps), the `evpipe loadgen` command, and the producers' pure helpers:
 * user-agent corpus, line scanner, token bucket. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "common/util.h"
#include "producers/evscan.h"
#include "producers/loadgen_model.h"
#include "producers/ratelimit.h"
#include "producers/ua_corpus.h"
#include "tests/testlib.h"
#include "transforms/event.h"

static uac_corpus_t *corpus; /* uap-core's test files, loaded once */

static void load_corpus(void) {
    char err[512];
    corpus = uac_corpus_new();
    ck_assert_ptr_nonnull(corpus);
    long n = uac_corpus_load(corpus, UAC_DEFAULT_PATH, err, sizeof(err));
    if (n < 0) {
        fprintf(stderr, "cannot load the user agent corpus: %s (apt-get install uap-core)\n", err);
        abort();
    }
}

static void free_corpus(void) {
    uac_corpus_destroy(corpus);
    corpus = NULL;
}

static uint64_t fnv(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static lg_model_t *model_new(uint64_t seed, long long visitors, int days, int64_t disorder_ms,
                             double dup, double bad) {
    lg_options_t o;
    lg_options_init(&o);
    o.seed = seed;
    o.visitors = visitors;
    o.days = days;
    o.disorder_ms = disorder_ms;
    o.dup_ratio = dup;
    o.bad_ratio = bad;
    char err[256];
    lg_model_t *m = lg_model_new(&o, corpus, err, sizeof(err));
    ck_assert_msg(m != NULL, "lg_model_new: %s", err);
    return m;
}

/* Runs a model to its end: message count and a hash of every key, value and kind. */
static uint64_t model_digest(lg_model_t *m, size_t *count) {
    uint64_t h = 1469598103934665603ULL;
    lg_message_t msg;
    size_t n = 0;
    int r;
    while ((r = lg_model_next(m, &msg)) == 1) {
        n++;
        h = fnv(h, &msg.kind, sizeof(msg.kind));
        if (msg.key) h = fnv(h, msg.key, msg.key_len);
        h = fnv(h, "|", 1);
        h = fnv(h, msg.value, msg.value_len);
    }
    ck_assert_int_eq(r, 0);
    *count = n;
    return h;
}

START_TEST(test_loadgen_same_seed_same_bytes) {
    size_t n1, n2;
    lg_model_t *a = model_new(7, 150, 3, 900000, 0.03, 0.03);
    lg_model_t *b = model_new(7, 150, 3, 900000, 0.03, 0.03);
    uint64_t h1 = model_digest(a, &n1), h2 = model_digest(b, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_uint_eq(h1, h2);
    /* A corpus loaded again gives the same stream too (no address or time leaks in). */
    uac_corpus_t *saved = corpus;
    load_corpus();
    lg_model_t *c = model_new(7, 150, 3, 900000, 0.03, 0.03);
    size_t n3;
    ck_assert_uint_eq(model_digest(c, &n3), h1);
    lg_model_destroy(c);
    uac_corpus_destroy(corpus);
    corpus = saved;
    lg_model_destroy(a);
    lg_model_destroy(b);
}
END_TEST

START_TEST(test_loadgen_different_seed_differs) {
    size_t n1, n2;
    lg_model_t *a = model_new(7, 150, 3, 0, 0, 0);
    lg_model_t *b = model_new(8, 150, 3, 0, 0, 0);
    lg_message_t m1, m2;
    ck_assert_int_eq(lg_model_next(a, &m1), 1);
    ck_assert_int_eq(lg_model_next(b, &m2), 1);
    ck_assert(m1.value_len != m2.value_len || memcmp(m1.value, m2.value, m1.value_len) != 0);
    ck_assert(m1.key_len != m2.key_len || memcmp(m1.key, m2.key, m1.key_len) != 0);
    lg_model_destroy(a);
    lg_model_destroy(b);
    a = model_new(7, 150, 3, 0, 0, 0);
    b = model_new(8, 150, 3, 0, 0, 0);
    ck_assert_uint_ne(model_digest(a, &n1), model_digest(b, &n2));
    lg_model_destroy(a);
    lg_model_destroy(b);
}
END_TEST

/* The reasons the validator may give for each malformed kind. */
static int reason_fits(lg_kind_t kind, tf_event_reason_t r) {
    switch (kind) {
    case LG_KIND_BAD_INVALID_JSON: return r == TF_REASON_INVALID_JSON;
    case LG_KIND_BAD_TRUNCATED: /* a cut inside a UTF-8 sequence is invalid UTF-8 first */
        return r == TF_REASON_INVALID_JSON || r == TF_REASON_INVALID_UTF8;
    case LG_KIND_BAD_NOT_OBJECT: return r == TF_REASON_NOT_OBJECT;
    case LG_KIND_BAD_WRONG_TYPE: return r == TF_REASON_WRONG_TYPE;
    case LG_KIND_BAD_MISSING_EVENT_ID:
    case LG_KIND_BAD_MISSING_TYPE:
    case LG_KIND_BAD_MISSING_TIMESTAMP:
    case LG_KIND_BAD_MISSING_VISITOR_ID: return r == TF_REASON_MISSING_FIELD;
    case LG_KIND_BAD_UNKNOWN_TYPE: return r == TF_REASON_UNKNOWN_EVENT_TYPE;
    case LG_KIND_BAD_TIMESTAMP: return r == TF_REASON_BAD_TIMESTAMP;
    case LG_KIND_BAD_TOO_LONG: return r == TF_REASON_TOO_LONG;
    case LG_KIND_BAD_URL: return r == TF_REASON_BAD_URL;
    case LG_KIND_BAD_VALUE_NO_CURRENCY: return r == TF_REASON_CURRENCY_REQUIRED;
    case LG_KIND_BAD_CURRENCY: return r == TF_REASON_BAD_CURRENCY;
    case LG_KIND_BAD_OUT_OF_RANGE: return r == TF_REASON_OUT_OF_RANGE;
    case LG_KIND_BAD_DEEP_PROPERTIES: return r == TF_REASON_TOO_DEEP;
    case LG_KIND_BAD_INVALID_UTF8: return r == TF_REASON_INVALID_UTF8;
    case LG_KIND_BAD_OVERSIZE: return r == TF_REASON_TOO_LARGE;
    case LG_KIND_BAD_COUNTRY: return r == TF_REASON_BAD_COUNTRY;
    case LG_KIND_BAD_LANGUAGE: return r == TF_REASON_BAD_LANGUAGE;
    case LG_KIND_BAD_DUPLICATE_FIELD: return r == TF_REASON_DUPLICATE_FIELD;
    default: return 0;
    }
}

START_TEST(test_loadgen_malformed_rejected_valid_accepted) {
    /* Half of the messages malformed: every kind and variant appears many times. */
    lg_model_t *m = model_new(11, 1500, 3, 600000, 0.05, 0.5);
    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    uint64_t seen[LG_KIND_COUNT] = {0}, ok_valid = 0;
    lg_message_t msg;
    int r;
    while ((r = lg_model_next(m, &msg)) == 1) {
        seen[msg.kind]++;
        int pr = tf_event_parse(&ev, msg.value, msg.value_len, &err);
        ck_assert_int_ne(pr, -2);
        if (msg.kind == LG_KIND_VALID || msg.kind == LG_KIND_DUPLICATE) {
            ck_assert_msg(pr == 0, "a %s message was rejected (%s: %s): %.*s",
                          lg_kind_name(msg.kind), tf_event_reason_code(err.reason), err.message,
                          (int)msg.value_len, msg.value);
            /* The key is the visitorId of the event. */
            ck_assert_uint_eq(msg.key_len, strlen(ev.visitor_id));
            ck_assert(memcmp(msg.key, ev.visitor_id, msg.key_len) == 0);
            ck_assert_int_eq((int)ev.type, msg.event_type);
            ck_assert_int_eq(ev.timestamp_ms, msg.event_time_ms);
            ok_valid++;
        } else {
            ck_assert_msg(pr == -1, "a %s message was accepted: %.*s", lg_kind_name(msg.kind),
                          (int)(msg.value_len > 400 ? 400 : msg.value_len), msg.value);
            ck_assert_msg(reason_fits(msg.kind, err.reason), "%s rejected as %s (%s)",
                          lg_kind_name(msg.kind), tf_event_reason_code(err.reason), err.message);
            if (msg.kind == LG_KIND_BAD_MISSING_VISITOR_ID)
                ck_assert_ptr_null(msg.key);
            else
                ck_assert_ptr_nonnull(msg.key);
        }
    }
    ck_assert_int_eq(r, 0);
    lg_stats_t st;
    lg_model_stats(m, &st);
    for (int k = 0; k < LG_KIND_COUNT; k++) {
        ck_assert_msg(seen[k] >= 200, "only %llu %s messages", (unsigned long long)seen[k],
                      lg_kind_name((lg_kind_t)k));
        ck_assert_uint_eq(st.by_kind[k], seen[k]);
    }
    ck_assert_uint_eq(ok_valid, seen[LG_KIND_VALID] + seen[LG_KIND_DUPLICATE]);
    tf_event_reset(&ev);
    lg_model_destroy(m);
}
END_TEST

START_TEST(test_loadgen_ratios_as_asked) {
    lg_model_t *m = model_new(3, 3000, 3, 0, 0.1, 0.05);
    lg_message_t msg;
    uint64_t valid = 0, dup = 0, bad = 0, total = 0;
    uint64_t last_valid_hash = 0;
    while (lg_model_next(m, &msg) == 1) {
        total++;
        uint64_t h = fnv(1469598103934665603ULL, msg.value, msg.value_len);
        if (msg.kind == LG_KIND_VALID) {
            valid++;
            last_valid_hash = h;
        } else if (msg.kind == LG_KIND_DUPLICATE) {
            dup++;
            /* Without disorder a duplicate follows its original (malformed ones may come between).
             */
            ck_assert_uint_eq(h, last_valid_hash);
        } else {
            bad++;
        }
    }
    ck_assert_uint_gt(total, 20000);
    double dup_share = (double)dup / (double)(valid + dup), bad_share = (double)bad / (double)total;
    ck_assert_msg(fabs(dup_share - 0.1) < 0.01, "duplicates %.4f of valid messages", dup_share);
    ck_assert_msg(fabs(bad_share - 0.05) < 0.006, "malformed %.4f of all messages", bad_share);
    lg_stats_t st;
    lg_model_stats(m, &st);
    ck_assert_uint_eq(st.messages, total);
    ck_assert_uint_eq(st.by_kind[LG_KIND_DUPLICATE], dup);
    ck_assert_uint_eq(st.by_kind[LG_KIND_VALID], valid);
    lg_model_destroy(m);
}
END_TEST

/* Per visitor, in event time: gaps within a session are at most 30 minutes, between
 * sessions more; sessions are numbered 0, 1, 2 ... */
START_TEST(test_loadgen_sessions_separated_by_gaps) {
    lg_model_t *m = model_new(5, 2000, 5, 0, 0, 0);
    size_t cap = 4000;
    int64_t *last_t = malloc(cap * sizeof(int64_t));
    int64_t *last_s = malloc(cap * sizeof(int64_t));
    for (size_t i = 0; i < cap; i++) last_s[i] = -1;
    lg_message_t msg;
    int64_t prev_global = 0;
    uint64_t within = 0, between = 0;
    while (lg_model_next(m, &msg) == 1) {
        ck_assert_uint_lt(msg.visitor, 2000);
        ck_assert_int_ge(msg.event_time_ms, prev_global); /* no disorder: event-time order */
        prev_global = msg.event_time_ms;
        ck_assert_int_ge(msg.event_time_ms, LG_DEFAULT_START_MS);
        size_t v = (size_t)msg.visitor;
        if (last_s[v] < 0) {
            ck_assert_uint_eq(msg.session, 0);
        } else if ((int64_t)msg.session == last_s[v]) {
            ck_assert_int_le(msg.event_time_ms - last_t[v], LG_SESSION_GAP_MS);
            within++;
        } else {
            ck_assert_int_eq((int64_t)msg.session, last_s[v] + 1);
            ck_assert_int_gt(msg.event_time_ms - last_t[v], LG_SESSION_GAP_MS);
            between++;
        }
        last_s[v] = msg.session;
        last_t[v] = msg.event_time_ms;
    }
    lg_stats_t st;
    lg_model_stats(m, &st);
    ck_assert_uint_eq(st.visitors, 2000);
    ck_assert_uint_gt(between, 500); /* visitors do come back */
    ck_assert_uint_eq(st.sessions, 2000 + between);
    ck_assert_uint_gt(within, 3 * st.sessions);
    free(last_t);
    free(last_s);
    lg_model_destroy(m);
}
END_TEST

/* --hours N: every visitor arrives within the N-hour window (a burst: all of them active
 * at once), and its first session is the only one that can start there. */
START_TEST(test_loadgen_hours_window_is_a_burst) {
    lg_options_t o;
    lg_options_init(&o);
    o.seed = 11;
    o.visitors = 3000;
    o.hours = 1;
    char err[256];
    lg_model_t *m = lg_model_new(&o, corpus, err, sizeof(err));
    ck_assert_msg(m != NULL, "lg_model_new: %s", err);
    int64_t *first = malloc(3000 * sizeof(int64_t));
    for (size_t i = 0; i < 3000; i++) first[i] = -1;
    lg_message_t msg;
    int64_t last = 0;
    size_t n = 0;
    while (lg_model_next(m, &msg) == 1) {
        n++;
        ck_assert_uint_lt(msg.visitor, 3000);
        ck_assert_int_ge(msg.event_time_ms, LG_DEFAULT_START_MS);
        if (first[msg.visitor] < 0) first[msg.visitor] = msg.event_time_ms;
        if (msg.event_time_ms > last) last = msg.event_time_ms;
    }
    size_t arrived = 0;
    for (size_t i = 0; i < 3000; i++) {
        if (first[i] < 0) continue;
        arrived++;
        ck_assert_int_lt(first[i], LG_DEFAULT_START_MS + 3600000); /* arrived in the hour */
    }
    ck_assert_uint_eq(arrived, 3000);
    lg_stats_t st;
    lg_model_stats(m, &st);
    ck_assert_uint_eq(st.visitors, 3000);
    ck_assert_uint_lt(st.sessions, 3000 + 3000 / 50); /* hardly anyone comes back */
    ck_assert_uint_gt(n, 5 * 3000);
    /* A session that starts late in the hour runs on past it, not for days. */
    ck_assert_int_lt(last, LG_DEFAULT_START_MS + 6 * 3600000);
    free(first);
    lg_model_destroy(m);
    /* Out of range. */
    lg_options_init(&o);
    o.hours = -1;
    ck_assert_ptr_null(lg_model_new(&o, corpus, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "hours"));
}
END_TEST

/* --disorder D: no message comes more than D after a message with a later event time,
 * and the messages are exactly those of the ordered run. */
START_TEST(test_loadgen_disorder_is_bounded) {
    const int64_t d = 600000;
    lg_model_t *ordered = model_new(9, 800, 2, 0, 0.02, 0.02);
    lg_model_t *shuffled = model_new(9, 800, 2, d, 0.02, 0.02);
    uint64_t sum_a = 0, sum_b = 0, xor_a = 0, xor_b = 0, n_a = 0, n_b = 0, late = 0;
    lg_message_t msg;
    while (lg_model_next(ordered, &msg) == 1) {
        uint64_t h = fnv(1469598103934665603ULL, msg.value, msg.value_len);
        sum_a += h;
        xor_a ^= h * 31 + msg.kind;
        n_a++;
    }
    int64_t max_seen = INT64_MIN;
    while (lg_model_next(shuffled, &msg) == 1) {
        uint64_t h = fnv(1469598103934665603ULL, msg.value, msg.value_len);
        sum_b += h;
        xor_b ^= h * 31 + msg.kind;
        n_b++;
        if (n_b > 1) ck_assert_int_le(max_seen - msg.event_time_ms, d);
        if (msg.event_time_ms < max_seen) late++;
        if (msg.event_time_ms > max_seen) max_seen = msg.event_time_ms;
    }
    ck_assert_uint_eq(n_a, n_b);
    ck_assert_uint_eq(sum_a, sum_b); /* the same multiset of messages */
    ck_assert_uint_eq(xor_a, xor_b);
    ck_assert_uint_gt(late, n_b / 20); /* and really shuffled */
    lg_stats_t st;
    lg_model_stats(shuffled, &st);
    ck_assert_uint_eq(st.reorder_overflows, 0);
    lg_model_destroy(ordered);
    lg_model_destroy(shuffled);
}
END_TEST

/* The valid traffic does not depend on the noise knobs. */
START_TEST(test_loadgen_valid_traffic_independent_of_noise) {
    lg_model_t *clean = model_new(21, 500, 2, 0, 0, 0);
    lg_model_t *noisy = model_new(21, 500, 2, 0, 0.2, 0.2);
    lg_message_t a, b;
    uint64_t n = 0;
    for (;;) {
        int ra = lg_model_next(clean, &a);
        int rb;
        while ((rb = lg_model_next(noisy, &b)) == 1 && b.kind != LG_KIND_VALID) {
        }
        ck_assert_int_eq(ra, rb);
        if (ra != 1) break;
        ck_assert_uint_eq(a.value_len, b.value_len);
        ck_assert(memcmp(a.value, b.value, a.value_len) == 0);
        n++;
    }
    ck_assert_uint_gt(n, 3000);
    lg_model_destroy(clean);
    lg_model_destroy(noisy);
}
END_TEST

/* ---- the content: one JSON document per valid message, checked with yajl_tree ---- */

static const char *jstr(yajl_val root, const char *key) {
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(root, path, yajl_t_string);
    return v ? YAJL_GET_STRING(v) : NULL;
}

static yajl_val jget(yajl_val root, const char *k1, const char *k2) {
    const char *path[] = {k1, k2, NULL};
    return yajl_tree_get(root, path, yajl_t_any);
}

static long long cents(yajl_val v) {
    ck_assert_msg(v && YAJL_IS_NUMBER(v), "not a number");
    return llround(YAJL_GET_DOUBLE(v) * 100.0);
}

START_TEST(test_loadgen_realistic_mix) {
    /* The run the ingest tests use. */
    lg_model_t *m = model_new(7, 150, 3, 900000, 0.03, 0.03);
    lg_message_t msg;
    int paths_home = 0, paths_products = 0, paths_product = 0, paths_cart = 0, paths_checkout = 0,
        paths_book = 0, paths_blog = 0, utm = 0, ext_referrer = 0, hints = 0, epoch_ts = 0,
        offset_ts = 0, purchases = 0;
    char err[256];
    while (lg_model_next(m, &msg) == 1) {
        if (msg.kind != LG_KIND_VALID) continue;
        char *json = strndup(msg.value, msg.value_len);
        yajl_val root = yajl_tree_parse(json, err, sizeof(err));
        ck_assert_msg(root != NULL, "%s", err);
        const char *url = jstr(root, "url");
        ck_assert_ptr_nonnull(url);
        ck_assert(strncmp(url, LG_DEFAULT_SITE "/", strlen(LG_DEFAULT_SITE) + 1) == 0);
        const char *path = url + strlen(LG_DEFAULT_SITE);
        if (msg.event_type == 0) {
            paths_home += path[1] == '\0' || path[1] == '?';
            paths_products +=
                strncmp(path, "/products", 9) == 0 && (path[9] == '\0' || path[9] == '?');
            paths_product += strncmp(path, "/products/", 10) == 0;
            paths_cart += strcmp(path, "/cart") == 0;
            paths_checkout += strcmp(path, "/checkout") == 0;
            paths_book += strncmp(path, "/appointments/book", 18) == 0;
            paths_blog += strncmp(path, "/blog/", 6) == 0;
            utm += strstr(path, "utm_source=") != NULL;
            const char *ref = jstr(root, "referrer");
            ext_referrer +=
                ref && *ref && strncmp(ref, LG_DEFAULT_SITE, strlen(LG_DEFAULT_SITE)) != 0;
            hints += jget(root, "clientHints", "mobile") != NULL;
            ck_assert_ptr_nonnull(jstr(root, "title"));
        }
        yajl_val ts = jget(root, "timestamp", NULL);
        epoch_ts += YAJL_IS_NUMBER(ts);
        const char *ts_text = jstr(root, "timestamp");
        offset_ts += ts_text && strchr(ts_text, '+') != NULL;
        if (msg.event_type == 8) { /* PURCHASE: value = items + shipping - coupon */
            purchases++;
            const char *cur = jstr(root, "currency");
            ck_assert(cur && (!strcmp(cur, "EUR") || !strcmp(cur, "USD") || !strcmp(cur, "GBP")));
            yajl_val items = jget(root, "properties", "items");
            ck_assert(items && YAJL_IS_ARRAY(items) && items->u.array.len > 0);
            long long sum = 0;
            for (size_t i = 0; i < items->u.array.len; i++) {
                yajl_val it = items->u.array.values[i];
                const char *pk[] = {"price", NULL}, *qk[] = {"quantity", NULL};
                sum += cents(yajl_tree_get(it, pk, yajl_t_number)) *
                       YAJL_GET_INTEGER(yajl_tree_get(it, qk, yajl_t_number));
            }
            if (jget(root, "properties", "coupon")) sum -= sum / 10;
            sum += cents(jget(root, "properties", "shipping"));
            ck_assert_int_eq(cents(jget(root, "value", NULL)), sum);
        }
        yajl_tree_free(root);
        free(json);
    }
    lg_stats_t st;
    lg_model_stats(m, &st);
    ck_assert_msg(st.messages >= 2000 && st.messages <= 6000, "%llu messages",
                  (unsigned long long)st.messages);
    ck_assert_uint_eq(st.visitors, 150);
    ck_assert_uint_gt(st.sessions, 180);
    for (int d = 0; d < UAC_DEVICE_COUNT; d++) ck_assert_uint_gt(st.visitors_by_device[d], 0);
    int types = 0;
    for (int t = 0; t < LG_EVENT_TYPE_COUNT; t++) types += st.by_event_type[t] > 0;
    ck_assert_int_ge(types, 18);
    ck_assert_uint_gt(st.by_event_type[0], st.messages / 5); /* page views dominate */
    ck_assert_int_gt(purchases, 3);
    ck_assert_int_gt(paths_home, 10);
    ck_assert_int_gt(paths_products, 10);
    ck_assert_int_gt(paths_product, 50);
    ck_assert_int_gt(paths_cart, 3);
    ck_assert_int_gt(paths_checkout, 3);
    ck_assert_int_gt(paths_book, 1);
    ck_assert_int_gt(paths_blog, 5);
    ck_assert_int_gt(utm, 5);
    ck_assert_int_gt(ext_referrer, 10);
    ck_assert_int_gt(hints, 10);
    ck_assert_int_gt(epoch_ts, 10);
    ck_assert_int_gt(offset_ts, 10);
    lg_model_destroy(m);
}
END_TEST

/* PAGE_LEAVE and SCROLL name a page view of the same visitor that came before them;
 * devices agree with their screens and client hints. */
START_TEST(test_loadgen_references_and_devices_consistent) {
    lg_model_t *m = model_new(13, 600, 2, 0, 0, 0);
    lg_message_t msg;
    char err[256];
    /* eventId of every page view, with the visitor it belongs to */
    size_t cap = 1 << 16, n_pv = 0;
    struct pv_s {
        char id[40];
        uint64_t visitor;
    } *pv = calloc(cap, sizeof(*pv));
    uint64_t refs = 0, bots = 0, phones = 0;
    while (lg_model_next(m, &msg) == 1) {
        char *json = strndup(msg.value, msg.value_len);
        yajl_val root = yajl_tree_parse(json, err, sizeof(err));
        ck_assert_msg(root != NULL, "%s", err);
        if (msg.event_type == 0) {
            ck_assert_uint_lt(n_pv, cap);
            snprintf(pv[n_pv].id, sizeof(pv[n_pv].id), "%s", jstr(root, "eventId"));
            pv[n_pv++].visitor = msg.visitor;
            yajl_val w = jget(root, "screen", "width");
            yajl_val mob = jget(root, "clientHints", "mobile");
            if (msg.device == UAC_BOT) {
                bots++;
                ck_assert_ptr_null(w);
                ck_assert_ptr_null(mob);
            }
            if (msg.device == UAC_MOBILE && w) {
                phones++;
                ck_assert_int_le(YAJL_GET_INTEGER(w), 430);
                if (mob) ck_assert(YAJL_IS_TRUE(mob));
            }
            if (msg.device == UAC_DESKTOP && w) ck_assert_int_ge(YAJL_GET_INTEGER(w), 1280);
            if ((msg.device == UAC_DESKTOP || msg.device == UAC_TABLET) && mob)
                ck_assert(YAJL_IS_FALSE(mob));
            const char *lang = jstr(root, "language");
            if (lang) ck_assert(strlen(lang) == 2 || strlen(lang) == 5);
        } else if (msg.event_type == 1 || msg.event_type == 18) {
            const char *ref = jstr(root, "pageViewId");
            ck_assert_ptr_nonnull(ref);
            size_t i = n_pv;
            while (i > 0 && strcmp(pv[i - 1].id, ref) != 0) i--;
            ck_assert_msg(i > 0, "pageViewId %s names no earlier page view", ref);
            ck_assert_uint_eq(pv[i - 1].visitor, msg.visitor);
            refs++;
        }
        yajl_tree_free(root);
        free(json);
    }
    ck_assert_uint_gt(refs, 1000);
    ck_assert_uint_gt(bots, 10);
    ck_assert_uint_gt(phones, 100);
    free(pv);
    lg_model_destroy(m);
}
END_TEST

static int add_agent(uac_corpus_t *c, const char *ua, int forced) {
    char err[256];
    int r = uac_corpus_add(c, ua, strlen(ua), NULL, forced, err, sizeof(err));
    ck_assert_msg(r >= 0, "%s", err);
    return r;
}

START_TEST(test_loadgen_options_rejected) {
    lg_options_t o;
    char err[256];
    lg_options_init(&o);
    o.visitors = 0;
    ck_assert_ptr_null(lg_model_new(&o, corpus, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "visitors"));
    lg_options_init(&o);
    o.days = 0;
    ck_assert_ptr_null(lg_model_new(&o, corpus, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "days"));
    lg_options_init(&o);
    o.dup_ratio = 0.95;
    ck_assert_ptr_null(lg_model_new(&o, corpus, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "ratio"));
    lg_options_init(&o);
    o.site = "shop.example.com";
    ck_assert_ptr_null(lg_model_new(&o, corpus, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "site"));
    /* A corpus without tablets cannot make the device mix. */
    uac_corpus_t *small = uac_corpus_new();
    ck_assert_int_eq(add_agent(small, "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", UAC_DESKTOP), 1);
    ck_assert_int_eq(
        add_agent(small, "Mozilla/5.0 (iPhone; CPU iPhone OS 16_0 like Mac OS X) Mobile", -1), 1);
    lg_options_init(&o);
    ck_assert_ptr_null(lg_model_new(&o, small, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "TABLET"));
    /* With one agent of each required type, and no bots: no BOT visitors. */
    ck_assert_int_eq(
        add_agent(small, "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) Mobile/15E148", -1), 1);
    o.visitors = 300;
    lg_model_t *m = lg_model_new(&o, small, err, sizeof(err));
    ck_assert_msg(m != NULL, "%s", err);
    size_t n;
    model_digest(m, &n);
    lg_stats_t st;
    lg_model_stats(m, &st);
    ck_assert_uint_eq(st.visitors_by_device[UAC_BOT], 0);
    ck_assert_uint_eq(st.visitors_by_device[UAC_UNKNOWN], 0);
    ck_assert_uint_eq(st.visitors_by_device[UAC_DESKTOP] + st.visitors_by_device[UAC_MOBILE] +
                          st.visitors_by_device[UAC_TABLET],
                      300);
    lg_model_destroy(m);
    uac_corpus_destroy(small);
    lg_model_destroy(NULL);
}
END_TEST

START_TEST(test_ua_corpus_labels_and_loads) {
    static const struct {
        const char *ua;
        uac_device_t device;
    } cases[] = {
        {"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", UAC_BOT},
        {"Mozilla/5.0 (iPhone; CPU iPhone OS 16_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/16.5 Mobile/15E148 Safari/604.1",
         UAC_MOBILE},
        {"Mozilla/5.0 (iPad; CPU OS 15_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/15.0 Mobile/15E148 Safari/604.1",
         UAC_TABLET},
        {"Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/112.0.0.0 Safari/537.36",
         UAC_TABLET},
        {"Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/112.0.0.0 Mobile Safari/537.36",
         UAC_MOBILE},
        {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/114.0.0.0 Safari/537.36",
         UAC_DESKTOP},
        {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
         "Version/16.5 Safari/605.1.15",
         UAC_DESKTOP},
        {"Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
         "SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36",
         UAC_UNKNOWN},
        {"curl/8.1.2", UAC_BOT},
        {"", UAC_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(uac_label(cases[i].ua, strlen(cases[i].ua), NULL) == cases[i].device,
                      "%s -> %s", cases[i].ua,
                      uac_device_name(uac_label(cases[i].ua, strlen(cases[i].ua), NULL)));
    ck_assert_int_eq(uac_label("Mozilla/5.0 (Linux; Android 9)", 30, "Spider"), UAC_BOT);

    /* A text corpus: optional TYPE<TAB>, comments, duplicates and bad bytes skipped. */
    char path[] = "/tmp/evpipe_uaXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fprintf(
        f,
        "# agents\nBOT\tMyMonitor/1.0\nMozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0\n"
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0\nbad\xff\xfe agent\n\n");
    fclose(f);
    uac_corpus_t *c = uac_corpus_new();
    char err[256];
    ck_assert_int_eq(uac_corpus_load(c, path, err, sizeof(err)), 2);
    ck_assert_uint_eq(uac_corpus_count(c, UAC_BOT), 1);
    ck_assert_uint_eq(uac_corpus_count(c, UAC_DESKTOP), 1);
    const uac_agent_t *a = uac_corpus_agent(c, UAC_DESKTOP, 0);
    ck_assert_int_eq(a->chromium_major, 120);
    ck_assert_int_eq(a->os, UAC_OS_WINDOWS);
    ck_assert_ptr_null(uac_corpus_agent(c, UAC_DESKTOP, 1));
    f = fopen(path, "w");
    fprintf(f, "PHONE\tMozilla/5.0\n");
    fclose(f);
    ck_assert_int_eq(uac_corpus_load(c, path, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, ":1:"));
    unlink(path);
    ck_assert_int_eq(uac_corpus_load(c, "/nonexistent/agents", err, sizeof(err)), -1);
    uac_corpus_destroy(c);
    uac_corpus_destroy(NULL);

    /* uap-core's tree: thousands of agents of every type. */
    for (int d = 0; d < UAC_DEVICE_COUNT; d++)
        ck_assert_uint_gt(uac_corpus_count(corpus, (uac_device_t)d), 500);
}
END_TEST

START_TEST(test_evscan_key_time_and_problems) {
    evscan_t *sc = evscan_new();
    evscan_result_t r;
    const char *ok = "{\"eventId\":\"e1\",\"visitorId\":\"v\\u00e9-1\",\"timestamp\":\"2026-01-"
                     "05T10:00:00.1239+01:00\","
                     "\"properties\":{\"visitorId\":\"inner\",\"timestamp\":1}}";
    ck_assert_int_eq(evscan_line(sc, ok, strlen(ok), &r), 0);
    ck_assert(r.is_object);
    ck_assert_uint_eq(r.visitor_id_len, 5); /* decoded: "v", U+00E9 (2 bytes), "-1" */
    ck_assert(memcmp(r.visitor_id, "v\xc3\xa9-1", 5) == 0);
    ck_assert(r.has_timestamp);
    ck_assert_int_eq(r.timestamp_ms, 1767603600123LL); /* 09:00:00.123Z; fraction truncated */
    const char *epoch = "{\"timestamp\":1767571200000,\"visitorId\":\"a\"}";
    ck_assert_int_eq(evscan_line(sc, epoch, strlen(epoch), &r), 0);
    ck_assert_int_eq(r.timestamp_ms, 1767571200000LL);
    const char *nokey = "{\"visitorId\":42,\"timestamp\":\"not a time\"}";
    ck_assert_int_eq(evscan_line(sc, nokey, strlen(nokey), &r), 1);
    ck_assert(r.is_object);
    ck_assert(!r.has_timestamp);
    ck_assert_ptr_null(r.visitor_id);
    ck_assert_str_eq(r.problem, "visitorId is a number, not a string");
    ck_assert_int_eq(evscan_line(sc, "{}", 2, &r), 1);
    ck_assert_str_eq(r.problem, "no visitorId");
    ck_assert_int_eq(evscan_line(sc, "[1,2]", 5, &r), -1);
    ck_assert_str_eq(r.problem, "not a JSON object (top level is an array)");
    ck_assert_int_eq(evscan_line(sc, "{\"a\":", 5, &r), -1);
    ck_assert_ptr_nonnull(strstr(r.problem, "invalid JSON"));
    ck_assert_int_eq(evscan_line(sc, "{} {}", 5, &r), -1);
    ck_assert_int_eq(evscan_line(sc, "", 0, &r), -1);
    int64_t ms;
    ck_assert_int_eq(evscan_parse_time("2026-01-05T00:00:00Z", 20, &ms), 0);
    ck_assert_int_eq(ms, LG_DEFAULT_START_MS);
    ck_assert_int_eq(evscan_parse_time("2016-12-31T23:59:60Z", 20, &ms), 0); /* leap second */
    ck_assert_int_eq(evscan_parse_time("2026-02-29T00:00:00Z", 20, &ms), -1);
    ck_assert_int_eq(evscan_parse_time("2026-01-05T00:00:00", 19, &ms), -1);
    ck_assert_int_eq(evscan_parse_time("2026-01-05 00:00:00Z", 20, &ms), -1);
    ck_assert_int_eq(evscan_days_from_civil(1970, 1, 1), 0);
    ck_assert_int_eq(evscan_days_from_civil(2000, 3, 1), 11017);
    evscan_destroy(sc);
    evscan_destroy(NULL);
}
END_TEST

START_TEST(test_ratelimit_bucket_paces) {
    const int64_t s = 1000000000;
    ck_assert_ptr_null(rl_bucket_new(0, 0, 0));
    rl_bucket_t *b = rl_bucket_new(100, 5, 0);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(rl_bucket_take(b, 0), 0); /* the burst */
    int64_t wait = rl_bucket_take(b, 0);
    ck_assert_int_gt(wait, s / 100 - 2);
    ck_assert_int_le(wait, s / 100 + 2);
    ck_assert_int_gt(rl_bucket_take(b, s / 200), 0); /* half a token later: not yet */
    ck_assert_int_eq(rl_bucket_take(b, s / 100 + 1), 0);
    /* Over 10 s at most rate * 10 + burst tokens are given. */
    int taken = 0;
    for (int64_t t = s; t <= 11 * s; t += s / 1000)
        while (rl_bucket_take(b, t) == 0) taken++;
    ck_assert_int_ge(taken, 999);
    ck_assert_int_le(taken, 1005);
    rl_bucket_destroy(b);
    rl_bucket_destroy(NULL);
}
END_TEST

/* ---- the command ------------------------------------------------------------------ */

static char *tmp_path(const char *suffix) {
    char *name = tl_unique_name("/tmp/evpipe_loadgen");
    size_t n = strlen(name) + strlen(suffix) + 1;
    char *p = malloc(n);
    snprintf(p, n, "%s%s", name, suffix);
    free(name);
    return p;
}

static char *slurp_file(const char *path, size_t *len) {
    char err[256];
    char *data = NULL;
    ck_assert_msg(ev_read_file(path, 1 << 30, &data, len, err, sizeof(err)) == 0, "%s", err);
    return data;
}

START_TEST(test_loadgen_command_reproducible_file) {
    char *a = tmp_path(".a.ndjson"), *b = tmp_path(".b.ndjson"), *c = tmp_path(".c.ndjson"),
         *stats = tmp_path(".json");
    const char *common =
        "--seed 7 --visitors 150 --days 3 --disorder 900 --dup-ratio 0.03 --bad-ratio 0.03";
    char cmd[1024], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s loadgen --output %s %s --stats %s", tl_evpipe_bin(), a, common,
             stats);
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, "messages to"));
    free(err);
    snprintf(cmd, sizeof(cmd), "%s loadgen --output - %s > %s", tl_evpipe_bin(), common, b);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof(cmd),
             "%s loadgen --output %s --seed 8 --visitors 150 --days 3 --disorder 900 "
             "--dup-ratio 0.03 --bad-ratio 0.03",
             tl_evpipe_bin(), c);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);
    size_t la, lb, lc, ls;
    char *da = slurp_file(a, &la), *db = slurp_file(b, &lb), *dc = slurp_file(c, &lc),
         *ds = slurp_file(stats, &ls);
    ck_assert_uint_eq(la, lb);
    ck_assert(memcmp(da, db, la) == 0); /* byte-identical */
    ck_assert(la != lc || memcmp(da, dc, la) != 0);
    /* The file holds exactly the messages the model makes, one per line. */
    lg_model_t *m = model_new(7, 150, 3, 900000, 0.03, 0.03);
    lg_message_t msg;
    size_t off = 0, lines = 0;
    while (lg_model_next(m, &msg) == 1) {
        ck_assert_uint_le(off + msg.value_len + 1, la);
        ck_assert(memcmp(da + off, msg.value, msg.value_len) == 0);
        ck_assert_int_eq(da[off + msg.value_len], '\n');
        off += msg.value_len + 1;
        lines++;
    }
    ck_assert_uint_eq(off, la);
    lg_stats_t st;
    lg_model_stats(m, &st);
    char expect[128];
    snprintf(expect, sizeof(expect),
             "{\"messages\":%zu,\"byKind\":{\"valid\":%llu,\"duplicate\":%llu,", lines,
             (unsigned long long)st.by_kind[LG_KIND_VALID],
             (unsigned long long)st.by_kind[LG_KIND_DUPLICATE]);
    ck_assert_msg(strncmp(ds, expect, strlen(expect)) == 0, "%s", ds);
    lg_model_destroy(m);
    /* --events stops after exactly N messages: the first N of the full run. */
    snprintf(cmd, sizeof(cmd), "%s loadgen --output - %s --events 100", tl_evpipe_bin(), common);
    ck_assert_int_eq(tl_run(cmd, &out, NULL), 0);
    size_t nl = 0;
    for (char *p = out; *p; p++) nl += *p == '\n';
    ck_assert_uint_eq(nl, 100);
    ck_assert(strncmp(out, da, strlen(out)) == 0);
    free(out);
    free(da);
    free(db);
    free(dc);
    free(ds);
    unlink(a);
    unlink(b);
    unlink(c);
    unlink(stats);
    free(a);
    free(b);
    free(c);
    free(stats);
}
END_TEST

START_TEST(test_loadgen_command_usage_errors) {
    static const char *const bad[] = {
        "--visitors 0 --output /dev/null",
        "--dup-ratio 0.95 --output /dev/null",
        "--start yesterday --output /dev/null",
        "--seed x --output /dev/null",
        "--output /dev/null extra",
        "--rate -1 --output /dev/null",
        "--ua-corpus /nonexistent --output /dev/null",
    };
    char cmd[512], *err = NULL;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(cmd, sizeof(cmd), "%s loadgen %s", tl_evpipe_bin(), bad[i]);
        ck_assert_msg(tl_run(cmd, NULL, &err) == 2, "%s", cmd);
        ck_assert_msg(strstr(err, "evpipe loadgen: ") != NULL, "%s: %s", cmd, err);
        free(err);
    }
    /* Neither a file nor brokers. */
    snprintf(cmd, sizeof(cmd), "env -u KAFKA_BROKERS %s loadgen", tl_evpipe_bin());
    ck_assert_int_eq(tl_run(cmd, NULL, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "--output FILE or --brokers"));
    free(err);
    snprintf(cmd, sizeof(cmd), "%s loadgen --help", tl_evpipe_bin());
    char *out = NULL;
    ck_assert_int_eq(tl_run(cmd, &out, NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "--bad-ratio"));
    ck_assert_ptr_nonnull(strstr(out, "[env KAFKA_BROKERS]"));
    free(out);
}
END_TEST

int main(void) {
    Suite *s = suite_create("loadgen");
    TCase *tc = tcase_create("model");
    tcase_add_unchecked_fixture(tc, load_corpus, free_corpus);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_loadgen_same_seed_same_bytes);
    tcase_add_test(tc, test_loadgen_different_seed_differs);
    tcase_add_test(tc, test_loadgen_malformed_rejected_valid_accepted);
    tcase_add_test(tc, test_loadgen_ratios_as_asked);
    tcase_add_test(tc, test_loadgen_sessions_separated_by_gaps);
    tcase_add_test(tc, test_loadgen_hours_window_is_a_burst);
    tcase_add_test(tc, test_loadgen_disorder_is_bounded);
    tcase_add_test(tc, test_loadgen_valid_traffic_independent_of_noise);
    tcase_add_test(tc, test_loadgen_realistic_mix);
    tcase_add_test(tc, test_loadgen_references_and_devices_consistent);
    tcase_add_test(tc, test_loadgen_options_rejected);
    tcase_add_test(tc, test_ua_corpus_labels_and_loads);
    tcase_add_test(tc, test_evscan_key_time_and_problems);
    tcase_add_test(tc, test_ratelimit_bucket_paces);
    suite_add_tcase(s, tc);
    TCase *cmd = tcase_create("command");
    tcase_add_unchecked_fixture(cmd, load_corpus, free_corpus);
    tcase_set_timeout(cmd, 120);
    tcase_add_test(cmd, test_loadgen_command_reproducible_file);
    tcase_add_test(cmd, test_loadgen_command_usage_errors);
    suite_add_tcase(s, cmd);
    return tl_run_suite(s) ? 1 : 0;
}
