/* test_sessionize.c — the sessionizer (SPEC §4): hand cases with exact values; a property test
 * feeding random streams through add/load/flush/commit (random batches, aborts, evictions and
 * reloads from an in-test database) and comparing that database field for field with a
 * brute-force oracle; every allocation failing in turn; throughput and memory measurements. */
#include <check.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/testlib.h"
#include "transforms/sessionize.h"

#define T0 1700000000000LL /* 2023-11-14T22:13:20Z */
#define MAX_VIS 8
#define MAX_SPECS 4096
#define NCTX 16

/* ------------------------------------------------------------------ random numbers */

typedef struct rng_s {
    uint64_t s;
} rng_t;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rng_next(rng_t *r) {
    return splitmix(&r->s);
}
static uint32_t rng_below(rng_t *r, uint32_t n) {
    return (uint32_t)(rng_next(r) % n);
}
static bool rng_pct(rng_t *r, unsigned pct) {
    return rng_below(r, 100) < pct;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ context fields */

static const char *cfield(const tf_sess_context_t *c, int f) {
    switch (f) {
    case 0: return c->referrer;
    case 1: return c->referrer_domain;
    case 2: return c->utm_source;
    case 3: return c->utm_medium;
    case 4: return c->utm_campaign;
    case 5: return c->utm_term;
    case 6: return c->utm_content;
    case 7: return c->browser;
    case 8: return c->browser_version;
    case 9: return c->os;
    case 10: return c->os_version;
    case 11: return c->user_agent;
    case 12: return c->country;
    case 13: return c->region;
    case 14: return c->city;
    default: return c->language;
    }
}

static void cfield_set(tf_sess_context_t *c, int f, const char *v) {
    switch (f) {
    case 0: c->referrer = v; break;
    case 1: c->referrer_domain = v; break;
    case 2: c->utm_source = v; break;
    case 3: c->utm_medium = v; break;
    case 4: c->utm_campaign = v; break;
    case 5: c->utm_term = v; break;
    case 6: c->utm_content = v; break;
    case 7: c->browser = v; break;
    case 8: c->browser_version = v; break;
    case 9: c->os = v; break;
    case 10: c->os_version = v; break;
    case 11: c->user_agent = v; break;
    case 12: c->country = v; break;
    case 13: c->region = v; break;
    case 14: c->city = v; break;
    default: c->language = v; break;
    }
}

static const tf_sess_context_t rctx[6] = {
    {.referrer = "https://www.google.com/",
     .referrer_domain = "www.google.com",
     .utm_source = "google",
     .utm_medium = "organic",
     .device_type = 0,
     .browser = "Chrome",
     .browser_version = "120.0",
     .os = "Windows",
     .os_version = "10",
     .user_agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0",
     .country = "DE",
     .region = "BE",
     .city = "Berlin",
     .language = "de-DE",
     .screen_width = 1920,
     .screen_height = 1080},
    {.device_type = 2,
     .browser = "Mobile Safari",
     .os = "iOS",
     .user_agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X)",
     .country = "FR",
     .screen_width = 390,
     .screen_height = 844},
    {.device_type = 3,
     .user_agent = "Googlebot/2.1 (+http://www.google.com/bot.html)",
     .language = "en"},
    {.device_type = 4},
    {.referrer = "https://t.co/x",
     .referrer_domain = "t.co",
     .utm_source = "twitter",
     .utm_medium = "social",
     .utm_campaign = "spring",
     .utm_term = "shoes",
     .utm_content = "ad1",
     .device_type = 1,
     .browser = "Firefox",
     .browser_version = "121.0",
     .os = "Android",
     .os_version = "14",
     .region = "IDF",
     .city = "Paris"},
    {.device_type = 0,
     .browser = "Edge",
     .os = "Windows",
     .screen_width = 1280,
     .screen_height = 720},
};

/* ------------------------------------------------------------------ streams and the in-test
 * database */

typedef struct spec_s {
    int vis;
    char eid[360];
    int64_t ts;
    tf_event_type_t type;
    const char *user, *path, *campaign, *pvid;
    bool has_top;
    double top;
    int32_t scroll;
    const tf_sess_context_t *ctx;
    bool delivered; /* part of a committed batch */
    /* database: analytics_events + page_views */
    bool stored;
    char sid[37];
    bool has_pv, pv_has_top;
    int32_t pv_top, pv_scroll;
    char pv_sid[37];
} spec_t;

typedef struct row_s {
    tf_session_t s; /* strings owned */
    bool live;
} row_t;

typedef struct day_s {
    int64_t offset, len;
} day_t;

typedef struct stream_s {
    uint64_t seed;
    tf_session_config_t cfg;
    day_t day;
    char vid[MAX_VIS][64];
    int nvis;
    spec_t *specs;
    size_t nspecs;
    int *eidx; /* eventId -> spec index + 1, open addressing */
    size_t eidx_cap;
    row_t *rows;
    size_t nrows, rows_cap;
    tf_sessionizer_t *sz;
    bool lossy;      /* the loader gives stored events without context */
    bool interleave; /* the loader mixes sessions and events in random order */
    bool inject;     /* allocation failures are expected (failure-injection runs) */
    rng_t rng;
    struct {
        size_t ups, dels, asg_new, asg_moved, pv_new, pv_upd, dups, nreq;
        char del_ids[8][37];
        char ups_ids[8][37];
        int64_t since[8];
        size_t npvids;
        char pvid[48];
    } last;
    size_t n_requests, n_batches, n_aborts, n_evicted;
} stream_t;

static void fail_at(const stream_t *st, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_at(const stream_t *st, int line, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ck_abort_msg("line %d, stream seed %" PRIu64 " (reproduce: EVPIPE_TEST_SEED=%" PRIu64
                 " EVPIPE_TEST_STREAMS=1): %s",
                 line, st->seed, st->seed, msg);
}

/* A cheap assertion for hot loops (ck_assert records a location on every call). */
#define REQUIRE(st, cond, ...)                             \
    do {                                                   \
        if (!(cond)) fail_at((st), __LINE__, __VA_ARGS__); \
    } while (0)

static int64_t test_day_of(int64_t ms, void *ud) {
    const day_t *d = ud;
    int64_t x = ms + d->offset;
    return x >= 0 ? x / d->len : -((-x - 1) / d->len) - 1;
}

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static stream_t *stream_new(uint64_t seed, const tf_session_config_t *cfg, int nvis) {
    stream_t *st = calloc(1, sizeof *st);
    ck_assert_ptr_nonnull(st);
    st->seed = seed;
    st->rng.s = seed;
    st->cfg = *cfg;
    st->nvis = nvis;
    for (int i = 0; i < nvis; i++)
        snprintf(st->vid[i], sizeof st->vid[i], "visitor-%d", i + 1);
    st->specs = calloc(MAX_SPECS, sizeof *st->specs);
    st->eidx_cap = 2 * MAX_SPECS;
    st->eidx = calloc(st->eidx_cap, sizeof *st->eidx);
    ck_assert_ptr_nonnull(st->specs);
    ck_assert_ptr_nonnull(st->eidx);
    return st;
}

static void stream_start(stream_t *st) {
    if (st->cfg.split_at_midnight && st->day.len) {
        st->cfg.day_of = test_day_of;
        st->cfg.day_of_ud = &st->day;
    }
    st->sz = tf_sessionizer_new(&st->cfg);
    ck_assert_ptr_nonnull(st->sz);
}

static void row_clear(row_t *r) {
    free((char *)r->s.visitor_id);
    free((char *)r->s.user_id);
    free((char *)r->s.entry_page);
    free((char *)r->s.exit_page);
    for (int f = 0; f < NCTX; f++)
        free((char *)cfield(&r->s.context, f));
    memset(r, 0, sizeof *r);
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

static void row_set(row_t *r, const tf_session_t *s) {
    row_clear(r);
    r->s = *s;
    r->s.visitor_id = dup_or_null(s->visitor_id);
    r->s.user_id = dup_or_null(s->user_id);
    r->s.entry_page = dup_or_null(s->entry_page);
    r->s.exit_page = dup_or_null(s->exit_page);
    for (int f = 0; f < NCTX; f++)
        cfield_set(&r->s.context, f, dup_or_null(cfield(&s->context, f)));
    r->live = true;
}

static void stream_free(stream_t *st) {
    if (!st) return;
    tf_sessionizer_destroy(st->sz);
    for (size_t i = 0; i < st->nrows; i++)
        row_clear(&st->rows[i]);
    free(st->rows);
    free(st->specs);
    free(st->eidx);
    free(st);
}

static spec_t *spec_by_eid(stream_t *st, const char *eid) {
    size_t mask = st->eidx_cap - 1;
    for (size_t i = str_hash(eid) & mask; st->eidx[i]; i = (i + 1) & mask) {
        spec_t *sp = &st->specs[st->eidx[i] - 1];
        if (strcmp(sp->eid, eid) == 0) return sp;
    }
    return NULL;
}

static spec_t *spec_add(stream_t *st, int vis, const char *eid, int64_t ts, tf_event_type_t type) {
    ck_assert_uint_lt(st->nspecs, MAX_SPECS);
    ck_assert_ptr_null(spec_by_eid(st, eid));
    spec_t *sp = &st->specs[st->nspecs];
    memset(sp, 0, sizeof *sp);
    sp->vis = vis;
    snprintf(sp->eid, sizeof sp->eid, "%s", eid);
    sp->ts = ts;
    sp->type = type;
    sp->scroll = -1;
    if (type == TF_EVENT_PAGE_VIEW) sp->path = "/";
    size_t mask = st->eidx_cap - 1, i = str_hash(eid) & mask;
    while (st->eidx[i])
        i = (i + 1) & mask;
    st->eidx[i] = (int)st->nspecs + 1;
    st->nspecs++;
    return sp;
}

static int vis_index(const stream_t *st, const char *id) {
    for (int i = 0; i < st->nvis; i++)
        if (strcmp(st->vid[i], id) == 0) return i;
    return -1;
}

static row_t *db_row(stream_t *st, const char *id) {
    for (size_t i = 0; i < st->nrows; i++)
        if (st->rows[i].live && strcmp(st->rows[i].s.id, id) == 0) return &st->rows[i];
    return NULL;
}

static row_t *db_new_row(stream_t *st) {
    for (size_t i = 0; i < st->nrows; i++)
        if (!st->rows[i].live) return &st->rows[i];
    if (st->nrows == st->rows_cap) {
        st->rows_cap = st->rows_cap ? 2 * st->rows_cap : 64;
        st->rows = realloc(st->rows, st->rows_cap * sizeof *st->rows);
        ck_assert_ptr_nonnull(st->rows);
    }
    row_t *r = &st->rows[st->nrows++];
    memset(r, 0, sizeof *r);
    return r;
}

static bool str_eq(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Compares two session rows field by field; names the first difference in why. */
static bool sess_equal(const tf_session_t *a, const tf_session_t *b, bool with_ctx, char *why,
                       size_t why_size) {
#define DIFF(cond, ...)                           \
    do {                                          \
        if (!(cond)) {                            \
            snprintf(why, why_size, __VA_ARGS__); \
            return false;                         \
        }                                         \
    } while (0)
    DIFF(strcmp(a->id, b->id) == 0, "id %s vs %s", a->id, b->id);
    DIFF(str_eq(a->visitor_id, b->visitor_id), "visitor_id");
    DIFF(str_eq(a->user_id, b->user_id), "user_id %s vs %s", a->user_id ? a->user_id : "NULL",
         b->user_id ? b->user_id : "NULL");
    DIFF(a->started_at_ms == b->started_at_ms, "started %" PRId64 " vs %" PRId64, a->started_at_ms,
         b->started_at_ms);
    DIFF(a->ended_at_ms == b->ended_at_ms, "ended %" PRId64 " vs %" PRId64, a->ended_at_ms,
         b->ended_at_ms);
    DIFF(a->duration_s == b->duration_s, "duration %d vs %d", a->duration_s, b->duration_s);
    DIFF(a->page_view_count == b->page_view_count, "page_view_count %d vs %d", a->page_view_count,
         b->page_view_count);
    DIFF(a->event_count == b->event_count, "event_count %d vs %d", a->event_count, b->event_count);
    DIFF(a->has_conversion == b->has_conversion, "has_conversion");
    DIFF(a->is_bounce == b->is_bounce, "is_bounce");
    DIFF(str_eq(a->entry_page, b->entry_page), "entry_page");
    DIFF(str_eq(a->exit_page, b->exit_page), "exit_page");
    DIFF(a->start_reason == b->start_reason, "start_reason %s vs %s",
         tf_start_reason_name(a->start_reason), tf_start_reason_name(b->start_reason));
    if (with_ctx) {
        for (int f = 0; f < NCTX; f++)
            DIFF(str_eq(cfield(&a->context, f), cfield(&b->context, f)), "context field %d", f);
        DIFF(a->context.device_type == b->context.device_type, "device_type %d vs %d",
             a->context.device_type, b->context.device_type);
        DIFF(a->context.screen_width == b->context.screen_width, "screen_width");
        DIFF(a->context.screen_height == b->context.screen_height, "screen_height");
    }
    return true;
#undef DIFF
}

static tf_sess_event_t ev_of(const stream_t *st, const spec_t *sp, bool with_ctx) {
    tf_sess_event_t e;
    memset(&e, 0, sizeof e);
    e.visitor_id = st->vid[sp->vis];
    e.event_id = sp->eid;
    e.ts_ms = sp->ts;
    e.type = sp->type;
    e.user_id = sp->user;
    e.path = sp->path;
    e.campaign_key = sp->campaign;
    e.page_view_id = sp->pvid;
    e.has_time_on_page = sp->has_top;
    e.time_on_page = sp->top;
    e.scroll_depth = sp->scroll;
    e.context = with_ctx ? sp->ctx : NULL;
    e.cookie = (uint64_t)(sp - st->specs);
    return e;
}

static bool is_chain_reason(tf_start_reason_t r) {
    return r != TF_START_FIRST && r != TF_START_INACTIVITY;
}

/* The loader, as the PostgreSQL sink does it (contract in sessionize.h): the visitor's
 * sessions with endedAt >= a bound lowered for page_view_ids and for chain-started sessions,
 * their events (with the stored page view fields), and whether earlier history exists. */
static int serve(stream_t *st, const tf_sess_load_request_t *r) {
    int vis = vis_index(st, r->visitor_id);
    REQUIRE(st, vis >= 0, "request for unknown visitor %s", r->visitor_id);
    int64_t since = r->since_ms;
    for (size_t k = 0; k < r->n_page_view_ids; k++) {
        const spec_t *pv = spec_by_eid(st, r->page_view_ids[k]);
        if (!pv || pv->vis != vis || !pv->stored) continue;
        const row_t *w = db_row(st, pv->sid);
        if (w && w->s.ended_at_ms < since) since = w->s.ended_at_ms;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < st->nrows; i++) {
            const row_t *w = &st->rows[i];
            if (!w->live || strcmp(w->s.visitor_id, r->visitor_id) != 0 ||
                w->s.ended_at_ms < since || !is_chain_reason(w->s.start_reason))
                continue;
            int64_t best = w->s.started_at_ms;
            bool found = false;
            for (size_t j = 0; j < st->nrows; j++) {
                const row_t *p = &st->rows[j];
                if (!p->live || strcmp(p->s.visitor_id, r->visitor_id) != 0 ||
                    p->s.ended_at_ms >= w->s.started_at_ms)
                    continue;
                if (!found || p->s.ended_at_ms > best) best = p->s.ended_at_ms;
                found = true;
            }
            if (best < since) {
                since = best;
                changed = true;
            }
        }
    }
    bool *sel = calloc(st->nrows + 1, sizeof *sel);
    ck_assert_ptr_nonnull(sel);
    for (size_t i = 0; i < st->nrows; i++) {
        const row_t *w = &st->rows[i];
        sel[i] =
            w->live && strcmp(w->s.visitor_id, r->visitor_id) == 0 && w->s.ended_at_ms >= since;
    }
    /* items: rows (index) and events (~spec index) */
    size_t nitems = 0;
    long *items = calloc(st->nrows + st->nspecs + 1, sizeof *items);
    ck_assert_ptr_nonnull(items);
    for (size_t i = 0; i < st->nrows; i++)
        if (sel[i]) items[nitems++] = (long)i;
    size_t nsess = nitems;
    bool earlier = false;
    for (size_t i = 0; i < st->nspecs; i++) {
        const spec_t *sp = &st->specs[i];
        if (!sp->stored || sp->vis != vis) continue;
        row_t *w = db_row(st, sp->sid);
        REQUIRE(st, w != NULL, "stored event %s points to a missing session %s", sp->eid, sp->sid);
        if (sel[w - st->rows])
            items[nitems++] = -(long)i - 1;
        else
            earlier = true;
    }
    size_t from = st->interleave ? 0 : nsess;
    for (size_t i = nitems; i > from + 1; i--) {
        size_t j = from + rng_below(&st->rng, (uint32_t)(i - from));
        long t = items[i - 1];
        items[i - 1] = items[j];
        items[j] = t;
    }
    int rc = 0;
    for (size_t i = 0; i < nitems && rc == 0; i++) {
        if (items[i] >= 0) {
            rc = tf_sessionizer_load_session(st->sz, &st->rows[items[i]].s);
        } else {
            const spec_t *sp = &st->specs[-items[i] - 1];
            tf_sess_event_t e = ev_of(st, sp, !st->lossy);
            rc = tf_sessionizer_load_event(st->sz, &e, sp->sid, sp->pv_has_top, sp->pv_top,
                                           sp->pv_scroll);
        }
    }
    if (rc == 0) rc = tf_sessionizer_loaded(st->sz, r->visitor_id, earlier);
    free(items);
    free(sel);
    return rc;
}

/* Applies a flush's changes to the database, checking that each change is needed and stays
 * within the batch's visitors. */
static void apply(stream_t *st, const tf_sess_changes_t *ch, const bool *touched) {
    char why[256];
    for (size_t i = 0; i < ch->n_upserts; i++) {
        const tf_session_t *u = &ch->upserts[i];
        int vis = vis_index(st, u->visitor_id);
        REQUIRE(st, vis >= 0 && touched[vis], "upsert for an untouched visitor %s", u->visitor_id);
        for (size_t j = 0; j < ch->n_deletes; j++)
            REQUIRE(st, strcmp(ch->deletes[j], u->id) != 0, "session %s both upserted and deleted",
                    u->id);
        row_t *w = db_row(st, u->id);
        if (w)
            REQUIRE(st, !sess_equal(&w->s, u, true, why, sizeof why),
                    "upsert of unchanged session %s", u->id);
        if (!w) w = db_new_row(st);
        if (st->last.ups < 8) snprintf(st->last.ups_ids[st->last.ups], 37, "%s", u->id);
        row_set(w, u);
        st->last.ups++;
    }
    for (size_t i = 0; i < ch->n_assigns; i++) {
        const tf_sess_assign_t *a = &ch->assigns[i];
        spec_t *sp;
        if (a->is_new) {
            REQUIRE(st, a->cookie < st->nspecs, "bad cookie");
            sp = &st->specs[a->cookie];
            REQUIRE(st, strcmp(sp->eid, a->event_id) == 0, "cookie/eventId mismatch %s %s", sp->eid,
                    a->event_id);
            REQUIRE(st, !sp->stored, "new assign for the stored event %s", sp->eid);
            sp->stored = true;
            st->last.asg_new++;
        } else {
            sp = spec_by_eid(st, a->event_id);
            REQUIRE(st, sp && sp->stored, "re-point of an unknown event %s", a->event_id);
            REQUIRE(st, strcmp(sp->sid, a->session_id) != 0, "re-point of %s to its own session",
                    sp->eid);
            st->last.asg_moved++;
        }
        REQUIRE(st, touched[sp->vis], "assign for an untouched visitor");
        REQUIRE(st, a->type == sp->type, "assign type");
        memcpy(sp->sid, a->session_id, 37);
    }
    for (size_t i = 0; i < ch->n_page_views; i++) {
        const tf_page_view_update_t *p = &ch->page_views[i];
        spec_t *sp = spec_by_eid(st, p->event_id);
        REQUIRE(st, sp && sp->stored && sp->type == TF_EVENT_PAGE_VIEW, "page view for %s",
                p->event_id);
        REQUIRE(st, touched[sp->vis], "page view for an untouched visitor");
        REQUIRE(st, strcmp(p->session_id, sp->sid) == 0,
                "page view %s session differs from its event's", sp->eid);
        int32_t top = p->has_time_on_page ? p->time_on_page_s : -1;
        if (p->is_new) {
            REQUIRE(st, !sp->has_pv, "new page view %s already stored", sp->eid);
            st->last.pv_new++;
        } else {
            REQUIRE(st, sp->has_pv, "update of a missing page view %s", sp->eid);
            REQUIRE(st,
                    top != (sp->pv_has_top ? sp->pv_top : -1) || p->scroll_depth != sp->pv_scroll ||
                        strcmp(p->session_id, sp->pv_sid) != 0,
                    "page view update without change %s", sp->eid);
            st->last.pv_upd++;
        }
        sp->has_pv = true;
        sp->pv_has_top = p->has_time_on_page;
        sp->pv_top = p->has_time_on_page ? p->time_on_page_s : 0;
        sp->pv_scroll = p->scroll_depth;
        memcpy(sp->pv_sid, p->session_id, 37);
    }
    for (size_t i = 0; i < ch->n_deletes; i++) {
        row_t *w = db_row(st, ch->deletes[i]);
        REQUIRE(st, w != NULL, "delete of a missing session %s", ch->deletes[i]);
        int vis = vis_index(st, w->s.visitor_id);
        REQUIRE(st, touched[vis], "delete for an untouched visitor");
        if (st->last.dels < 8) snprintf(st->last.del_ids[st->last.dels], 37, "%s", ch->deletes[i]);
        row_clear(w);
        st->last.dels++;
    }
    /* foreign keys: every stored event points to a live session, every session has events */
    for (size_t i = 0; i < st->nspecs; i++) {
        const spec_t *sp = &st->specs[i];
        if (sp->stored)
            REQUIRE(st, db_row(st, sp->sid) != NULL, "event %s points to deleted session %s",
                    sp->eid, sp->sid);
    }
    st->last.dups = ch->n_duplicates;
}

enum {
    RUN_COMMIT = 0,
    RUN_ABORT_BEFORE_LOAD,
    RUN_ABORT_AFTER_LOAD,
    RUN_ABORT_AFTER_FLUSH,
    RUN_TWO_ROUNDS
};

/* Adds deliveries [from, to) of the batch; returns 0, or 2 after an injected failure. */
static int batch_add(stream_t *st, const size_t *idx, size_t from, size_t to, bool *touched) {
    for (size_t i = from; i < to; i++) {
        const spec_t *sp = &st->specs[idx[i]];
        tf_sess_event_t e = ev_of(st, sp, true);
        touched[sp->vis] = true;
        if (tf_sessionizer_add(st->sz, &e) != 0) {
            REQUIRE(st, st->inject, "tf_sessionizer_add failed");
            tf_sessionizer_abort(st->sz);
            return 2;
        }
    }
    return 0;
}

/* Asks for the load requests and serves them; checks each request against the deliveries
 * added so far. Returns 0, or 2 after an injected failure. */
static int batch_load(stream_t *st, const size_t *idx, size_t n, const bool *touched) {
    size_t nreq = 0;
    const tf_sess_load_request_t *reqs = tf_sessionizer_load_requests(st->sz, &nreq);
    if (!reqs) {
        REQUIRE(st, st->inject, "tf_sessionizer_load_requests failed");
        tf_sessionizer_abort(st->sz);
        return 2;
    }
    st->n_requests += nreq;
    for (size_t r = 0; r < nreq; r++) {
        int vis = vis_index(st, reqs[r].visitor_id);
        REQUIRE(st, vis >= 0 && touched[vis], "request for a visitor outside the batch");
        bool found = false;
        for (size_t i = 0; i < n; i++) {
            const spec_t *sp = &st->specs[idx[i]];
            if (sp->vis == vis && sp->ts - st->cfg.timeout_ms == reqs[r].since_ms) found = true;
        }
        REQUIRE(st, found, "since_ms %" PRId64 " is not a batch event time minus the timeout",
                reqs[r].since_ms);
        if (st->last.nreq < 8) st->last.since[st->last.nreq] = reqs[r].since_ms;
        st->last.nreq++;
        st->last.npvids += reqs[r].n_page_view_ids;
        if (reqs[r].n_page_view_ids)
            snprintf(st->last.pvid, sizeof st->last.pvid, "%s", reqs[r].page_view_ids[0]);
    }
    for (size_t r = 0; r < nreq; r++) {
        if (serve(st, &reqs[r]) != 0) {
            REQUIRE(st, st->inject, "loading %s failed", reqs[r].visitor_id);
            tf_sessionizer_abort(st->sz);
            return 2;
        }
    }
    return 0;
}

/* One consumer batch of deliveries (spec indexes). Returns 0 when committed, 1 when aborted
 * on purpose, 2 when an injected allocation failure made a call fail (then aborted).
 * RUN_TWO_ROUNDS adds half the batch, loads, adds the rest and loads again. */
static int run_batch(stream_t *st, const size_t *idx, size_t n, int mode) {
    bool touched[MAX_VIS] = {false};
    memset(&st->last, 0, sizeof st->last);
    st->n_batches++;
    size_t half = mode == RUN_TWO_ROUNDS ? n / 2 : n;
    if (batch_add(st, idx, 0, half, touched)) return 2;
    if (mode == RUN_ABORT_BEFORE_LOAD) {
        tf_sessionizer_abort(st->sz);
        st->n_aborts++;
        return 1;
    }
    if (batch_load(st, idx, half, touched)) return 2;
    if (half < n) {
        if (batch_add(st, idx, half, n, touched)) return 2;
        if (batch_load(st, idx, n, touched)) return 2;
    }
    if (mode == RUN_ABORT_AFTER_LOAD) {
        tf_sessionizer_abort(st->sz);
        st->n_aborts++;
        return 1;
    }
    tf_sess_changes_t ch;
    if (tf_sessionizer_flush(st->sz, &ch) != 0) {
        REQUIRE(st, st->inject, "tf_sessionizer_flush failed");
        tf_sessionizer_abort(st->sz);
        return 2;
    }
    if (mode == RUN_ABORT_AFTER_FLUSH) {
        tf_sessionizer_abort(st->sz);
        st->n_aborts++;
        return 1;
    }
    apply(st, &ch, touched);
    REQUIRE(st, st->last.asg_new + st->last.dups == n, "%zu new + %zu duplicates != %zu delivered",
            st->last.asg_new, st->last.dups, n);
    tf_sessionizer_commit(st->sz);
    for (size_t i = 0; i < n; i++)
        st->specs[idx[i]].delivered = true;
    return 0;
}

/* Delivers the named events as one committed batch. */
static void deliver(stream_t *st, const char *first, ...) {
    size_t idx[256], n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *e = first; e; e = va_arg(ap, const char *)) {
        spec_t *sp = spec_by_eid(st, e);
        ck_assert_msg(sp != NULL, "no event %s", e);
        idx[n++] = (size_t)(sp - st->specs);
    }
    va_end(ap);
    ck_assert_int_eq(run_batch(st, idx, n, RUN_COMMIT), 0);
}

static const row_t *row_of(stream_t *st, const char *eid) {
    const spec_t *sp = spec_by_eid(st, eid);
    ck_assert_msg(sp && sp->stored, "event %s not stored", eid);
    const row_t *w = db_row(st, sp->sid);
    ck_assert_msg(w != NULL, "session of %s missing", eid);
    return w;
}

static size_t live_rows(const stream_t *st) {
    size_t n = 0;
    for (size_t i = 0; i < st->nrows; i++)
        n += st->rows[i].live;
    return n;
}

/* ------------------------------------------------------------------ the oracle */

/* Session id computed independently: SHA-256(visitor '\0' eventId) with OpenSSL, first 16
 * bytes, version 8, variant 10. */
static void oracle_id(const char *visitor, const char *eid, char out[37]) {
    unsigned char md[32];
    unsigned int mdlen = 0;
    size_t vl = strlen(visitor), el = strlen(eid);
    unsigned char *buf = malloc(vl + 1 + el);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, visitor, vl);
    buf[vl] = 0;
    memcpy(buf + vl + 1, eid, el);
    ck_assert_int_eq(EVP_Digest(buf, vl + 1 + el, md, &mdlen, EVP_sha256(), NULL), 1);
    free(buf);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0],
             md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11], md[12],
             md[13], md[14], md[15]);
}

static int spec_ptr_cmp(const void *a, const void *b) {
    const spec_t *x = *(const spec_t *const *)a, *y = *(const spec_t *const *)b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return strcmp(x->eid, y->eid);
}

static int64_t oracle_day(const stream_t *st, int64_t ts) {
    if (st->cfg.day_of) return st->cfg.day_of(ts, st->cfg.day_of_ud);
    int64_t d = 86400000;
    return ts >= 0 ? ts / d : -((-ts - 1) / d) - 1;
}

/* Sorts each visitor's delivered events, cuts them, computes every field by brute force and
 * compares with the database. */
static void oracle_check(stream_t *st) {
    const tf_session_config_t *cfg = &st->cfg;
    const spec_t **arr = calloc(st->nspecs + 1, sizeof *arr);
    int *sess = calloc(st->nspecs + 1, sizeof *sess);
    tf_session_t *exp = calloc(st->nspecs + 1, sizeof *exp);
    ck_assert(arr && sess && exp);
    char why[256];
    for (int vis = 0; vis < st->nvis; vis++) {
        size_t n = 0;
        for (size_t i = 0; i < st->nspecs; i++) {
            const spec_t *sp = &st->specs[i];
            if (sp->vis != vis) continue;
            REQUIRE(st, sp->stored == sp->delivered, "event %s stored=%d delivered=%d", sp->eid,
                    sp->stored, sp->delivered);
            if (sp->delivered) arr[n++] = sp;
        }
        qsort(arr, n, sizeof *arr, spec_ptr_cmp);
        int ns = -1;
        const char *camp = NULL;
        for (size_t i = 0; i < n; i++) {
            const spec_t *e = arr[i];
            int reason = -1;
            if (i == 0)
                reason = TF_START_FIRST;
            else if (e->ts - arr[i - 1]->ts > cfg->timeout_ms)
                reason = TF_START_INACTIVITY;
            else if (e->ts - exp[ns].started_at_ms > cfg->max_duration_ms)
                reason = TF_START_MAX_DURATION;
            else if (cfg->split_at_midnight &&
                     oracle_day(st, e->ts) != oracle_day(st, arr[i - 1]->ts))
                reason = TF_START_MIDNIGHT;
            else if (cfg->split_on_campaign && e->campaign && camp &&
                     strcmp(e->campaign, camp) != 0)
                reason = TF_START_CAMPAIGN;
            if (reason >= 0) {
                ns++;
                memset(&exp[ns], 0, sizeof exp[ns]);
                oracle_id(st->vid[vis], e->eid, exp[ns].id);
                exp[ns].visitor_id = st->vid[vis];
                exp[ns].started_at_ms = e->ts;
                exp[ns].start_reason = (tf_start_reason_t)reason;
                exp[ns].context.device_type = -1;
                camp = e->campaign;
            } else if (!camp) {
                camp = e->campaign;
            }
            tf_session_t *s = &exp[ns];
            sess[i] = ns;
            s->ended_at_ms = e->ts;
            s->event_count++;
            if (e->user) s->user_id = e->user;
            if (e->type == TF_EVENT_PAGE_VIEW) {
                if (!s->page_view_count) s->entry_page = e->path;
                s->exit_page = e->path;
                s->page_view_count++;
            }
            if (cfg->conversion_types & (1u << e->type)) s->has_conversion = true;
            if (e->ctx) {
                bool first_ctx = s->context.device_type < 0;
                if (first_ctx) s->context.device_type = e->ctx->device_type;
                /* referrer and utm_* (fields 0..6): the first event's, as a group */
                for (int f = 0; f < NCTX; f++)
                    if ((f >= 7 || first_ctx) && !cfield(&s->context, f))
                        cfield_set(&s->context, f, cfield(e->ctx, f));
                if (!s->context.screen_width) s->context.screen_width = e->ctx->screen_width;
                if (!s->context.screen_height) s->context.screen_height = e->ctx->screen_height;
            }
        }
        size_t live = 0;
        for (size_t i = 0; i < st->nrows; i++)
            live += st->rows[i].live && strcmp(st->rows[i].s.visitor_id, st->vid[vis]) == 0;
        REQUIRE(st, live == (size_t)(ns + 1), "visitor %d: %zu sessions stored, %d expected", vis,
                live, ns + 1);
        for (int j = 0; j <= ns; j++) {
            tf_session_t *s = &exp[j];
            s->duration_s = (int32_t)((s->ended_at_ms - s->started_at_ms) / 1000);
            s->is_bounce = !(s->duration_s >= 10 || s->has_conversion || s->page_view_count >= 2);
            if (s->context.device_type < 0) s->context.device_type = TF_SESS_DEVICE_UNKNOWN;
            const row_t *w = db_row(st, s->id);
            REQUIRE(st, w != NULL, "visitor %d: expected session %s (starting %s) missing", vis,
                    s->id, arr[0]->eid);
            REQUIRE(st, sess_equal(&w->s, s, !st->lossy, why, sizeof why),
                    "session %s differs: %s (stored vs expected)", s->id, why);
        }
        for (size_t i = 0; i < n; i++) {
            const spec_t *e = arr[i];
            REQUIRE(st, strcmp(e->sid, exp[sess[i]].id) == 0, "event %s in session %s, expected %s",
                    e->eid, e->sid, exp[sess[i]].id);
            if (e->type != TF_EVENT_PAGE_VIEW) {
                REQUIRE(st, !e->has_pv, "page view row for %s", e->eid);
                continue;
            }
            int32_t leave = -1, scroll = -1;
            for (size_t k = 0; k < n; k++) {
                const spec_t *l = arr[k];
                if (!l->pvid || strcmp(l->pvid, e->eid) != 0) continue;
                if (l->type == TF_EVENT_PAGE_LEAVE && l->has_top && l->top >= 0) {
                    int32_t t = l->top >= 2147483647.0 ? INT32_MAX : (int32_t)floor(l->top);
                    if (t > leave) leave = t;
                }
                if ((l->type == TF_EVENT_PAGE_LEAVE || l->type == TF_EVENT_SCROLL) &&
                    l->scroll >= 0) {
                    int32_t d = l->scroll > 100 ? 100 : l->scroll;
                    if (d > scroll) scroll = d;
                }
            }
            int32_t top = leave;
            if (top < 0 && i + 1 < n && sess[i + 1] == sess[i])
                top = (int32_t)((arr[i + 1]->ts - e->ts) / 1000);
            REQUIRE(st, e->has_pv, "page view %s missing", e->eid);
            REQUIRE(st, (e->pv_has_top ? e->pv_top : -1) == top,
                    "page view %s time on page %d, expected %d", e->eid,
                    e->pv_has_top ? e->pv_top : -1, top);
            REQUIRE(st, e->pv_scroll == scroll, "page view %s scroll %d, expected %d", e->eid,
                    e->pv_scroll, scroll);
        }
    }
    free(arr);
    free(sess);
    free(exp);
}

/* After forgetting every visitor, re-delivering one stored event per visitor loads its state
 * back and must report no change at all (only the duplicates). */
static void reload_check(stream_t *st) {
    tf_sessionizer_evict(st->sz, INT64_MAX);
    REQUIRE(st, tf_sessionizer_visitor_count(st->sz) == 0, "visitors left after evicting all");
    REQUIRE(st, tf_sessionizer_event_count(st->sz) == 0, "events left after evicting all");
    size_t idx[MAX_VIS], n = 0;
    for (int vis = 0; vis < st->nvis; vis++) {
        size_t cand[MAX_SPECS], nc = 0;
        for (size_t i = 0; i < st->nspecs; i++)
            if (st->specs[i].vis == vis && st->specs[i].stored) cand[nc++] = i;
        if (nc) idx[n++] = cand[rng_below(&st->rng, (uint32_t)nc)];
    }
    if (!n) return;
    REQUIRE(st, run_batch(st, idx, n, RUN_COMMIT) == 0, "reload batch not committed");
    REQUIRE(st,
            st->last.ups == 0 && st->last.dels == 0 && st->last.asg_new == 0 &&
                st->last.asg_moved == 0 && st->last.pv_new == 0 && st->last.pv_upd == 0,
            "reload of consistent state reported changes: %zu upserts %zu deletes %zu moved %zu pv "
            "updates",
            st->last.ups, st->last.dels, st->last.asg_moved, st->last.pv_upd);
    REQUIRE(st, st->last.dups == n, "reload: %zu duplicates, expected %zu", st->last.dups, n);
}

/* ------------------------------------------------------------------ hand cases */

static tf_session_config_t cfg_default(void) {
    tf_session_config_t cfg;
    tf_session_config_default(&cfg);
    cfg.hash_seed = 12345;
    return cfg;
}

static stream_t *hand(const tf_session_config_t *cfg, int nvis) {
    stream_t *st = stream_new(1, cfg, nvis);
    stream_start(st);
    return st;
}

START_TEST(test_sessionize_config_default) {
    tf_session_config_t cfg;
    memset(&cfg, 0x5a, sizeof cfg);
    tf_session_config_default(&cfg);
    ck_assert_int_eq(cfg.timeout_ms, 1800000);
    ck_assert_int_eq(cfg.max_duration_ms, 86400000);
    ck_assert(!cfg.split_on_campaign);
    ck_assert(!cfg.split_at_midnight);
    ck_assert_ptr_null((void *)(uintptr_t)cfg.day_of);
    ck_assert_int_eq(cfg.allowed_lateness_ms, 3600000);
    ck_assert_uint_eq(cfg.conversion_types, (1u << TF_EVENT_PURCHASE) |
                                                (1u << TF_EVENT_APPOINTMENT_COMPLETE) |
                                                (1u << TF_EVENT_LEAD) | (1u << TF_EVENT_SIGN_UP) |
                                                (1u << TF_EVENT_FORM_SUBMIT));
    ck_assert_uint_eq(cfg.max_events, 0);
}
END_TEST

/* Beyond cfg.max_events, tf_sessionizer_add fails cleanly; after the abort the held events
 * are still within the cap and a batch that fits goes through. */
START_TEST(test_sessionize_max_events_cap) {
    tf_session_config_t cfg = cfg_default();
    cfg.max_events = 3;
    stream_t *st = hand(&cfg, 1);
    spec_add(st, 0, "m1", T0, TF_EVENT_CLICK);
    spec_add(st, 0, "m2", T0 + 1000, TF_EVENT_CLICK);
    spec_add(st, 0, "m3", T0 + 2000, TF_EVENT_CLICK);
    spec_add(st, 0, "m4", T0 + 3000, TF_EVENT_CLICK);
    deliver(st, "m1", "m2", NULL);
    tf_sess_event_t e3 = ev_of(st, spec_by_eid(st, "m3"), true);
    tf_sess_event_t e4 = ev_of(st, spec_by_eid(st, "m4"), true);
    ck_assert_int_eq(tf_sessionizer_add(st->sz, &e3), 0);
    ck_assert_int_eq(tf_sessionizer_add(st->sz, &e4), -1);
    ck_assert_uint_eq(tf_sessionizer_event_count(st->sz), 3);
    tf_sessionizer_abort(st->sz);
    ck_assert_uint_eq(tf_sessionizer_event_count(st->sz), 0);
    deliver(st, "m3", NULL);
    ck_assert_uint_eq(st->last.nreq, 1);
    ck_assert_int_eq(row_of(st, "m1")->s.event_count, 3);
    stream_free(st);
}
END_TEST

START_TEST(test_sessionize_reason_names) {
    static const char *names[] = {"FIRST", "INACTIVITY", "MAX_DURATION", "CAMPAIGN", "MIDNIGHT"};
    for (int i = 0; i < 5; i++) {
        tf_start_reason_t r = TF_START_FIRST;
        ck_assert_str_eq(tf_start_reason_name((tf_start_reason_t)i), names[i]);
        ck_assert_int_eq(tf_start_reason_parse(names[i], &r), 0);
        ck_assert_int_eq(r, i);
    }
    tf_start_reason_t r = TF_START_CAMPAIGN;
    ck_assert_ptr_null(tf_start_reason_name((tf_start_reason_t)5));
    ck_assert_int_eq(tf_start_reason_parse("first", &r), -1);
    ck_assert_int_eq(tf_start_reason_parse("", &r), -1);
    ck_assert_int_eq(r, TF_START_CAMPAIGN);
}
END_TEST

START_TEST(test_sessionize_session_id) {
    char a[37], b[37], c[37], o[37];
    tf_session_id("visitor-1", "e1", a);
    tf_session_id("visitor-1", "e1", b);
    tf_session_id("visitor-1", "e2", c);
    oracle_id("visitor-1", "e1", o);
    ck_assert_str_eq(a, b);
    ck_assert_str_eq(a, o);
    ck_assert_str_ne(a, c);
    ck_assert_uint_eq(strlen(a), 36);
    ck_assert_int_eq(a[14], '8');
    ck_assert(strchr("89ab", a[19]) != NULL);
    /* the separator matters: ("ab", "c") and ("a", "bc") differ */
    tf_session_id("ab", "c", b);
    tf_session_id("a", "bc", c);
    ck_assert_str_ne(b, c);
    /* long inputs span several SHA-256 blocks */
    char lv[200], le[130];
    memset(lv, 'v', sizeof lv - 1);
    lv[sizeof lv - 1] = 0;
    memset(le, 'e', sizeof le - 1);
    le[sizeof le - 1] = 0;
    tf_session_id(lv, le, a);
    oracle_id(lv, le, o);
    ck_assert_str_eq(a, o);
}
END_TEST

START_TEST(test_sessionize_inactivity_boundary) {
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 1);
    spec_add(st, 0, "e1", T0, TF_EVENT_PAGE_VIEW)->path = "/a";
    spec_add(st, 0, "e2", T0 + 1800000, TF_EVENT_CLICK);
    spec_add(st, 0, "e3", T0 + 1800000 + 1800001, TF_EVENT_CLICK);
    deliver(st, "e3", "e1", "e2", NULL);
    ck_assert_uint_eq(live_rows(st), 2);
    ck_assert_uint_eq(st->last.ups, 2);
    ck_assert_uint_eq(st->last.asg_new, 3);
    ck_assert_uint_eq(st->last.pv_new, 1);
    const row_t *a = row_of(st, "e1"), *b = row_of(st, "e3");
    ck_assert_ptr_eq(a, row_of(st, "e2"));
    char id[37];
    tf_session_id("visitor-1", "e1", id);
    ck_assert_str_eq(a->s.id, id);
    ck_assert_int_eq(a->s.started_at_ms, T0);
    ck_assert_int_eq(a->s.ended_at_ms, T0 + 1800000);
    ck_assert_int_eq(a->s.duration_s, 1800);
    ck_assert_int_eq(a->s.event_count, 2);
    ck_assert_int_eq(a->s.page_view_count, 1);
    ck_assert_int_eq(a->s.start_reason, TF_START_FIRST);
    ck_assert_str_eq(a->s.entry_page, "/a");
    ck_assert_str_eq(a->s.exit_page, "/a");
    ck_assert(!a->s.is_bounce);
    ck_assert_int_eq(b->s.started_at_ms, T0 + 3600001);
    ck_assert_int_eq(b->s.duration_s, 0);
    ck_assert_int_eq(b->s.event_count, 1);
    ck_assert_int_eq(b->s.start_reason, TF_START_INACTIVITY);
    ck_assert_ptr_null(b->s.entry_page);
    ck_assert(b->s.is_bounce);
    const spec_t *pv = spec_by_eid(st, "e1");
    ck_assert(pv->has_pv && pv->pv_has_top);
    ck_assert_int_eq(pv->pv_top, 1800);
    ck_assert_int_eq(pv->pv_scroll, -1);
    oracle_check(st);
    stream_free(st);
}
END_TEST

START_TEST(test_sessionize_max_duration_boundary) {
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 1);
    char name[16];
    size_t idx[128], n = 0;
    /* an unbroken chain: an event every 30 min (= timeout, so never INACTIVITY) */
    for (int k = 0; k <= 48; k++) {
        snprintf(name, sizeof name, "c%02d", k);
        idx[n++] =
            (size_t)(spec_add(st, 0, name, T0 + (int64_t)k * 1800000, TF_EVENT_CLICK) - st->specs);
    }
    int64_t second = T0 + 86400001; /* 1 ms past 24 h after the first: MAX_DURATION */
    for (int k = 0; k <= 48; k++) {
        snprintf(name, sizeof name, "d%02d", k);
        idx[n++] = (size_t)(spec_add(st, 0, name, second + (int64_t)k * 1800000, TF_EVENT_CLICK) -
                            st->specs);
    }
    spec_add(st, 0, "x", second + 86400001, TF_EVENT_CLICK);
    idx[n++] = (size_t)(spec_by_eid(st, "x") - st->specs);
    /* delivered backwards in three batches: every arrival is late */
    size_t rev[128];
    for (size_t i = 0; i < n; i++)
        rev[i] = idx[n - 1 - i];
    ck_assert_int_eq(run_batch(st, rev, 40, RUN_COMMIT), 0);
    ck_assert_int_eq(run_batch(st, rev + 40, 40, RUN_COMMIT), 0);
    ck_assert_int_eq(run_batch(st, rev + 80, n - 80, RUN_COMMIT), 0);
    ck_assert_uint_eq(live_rows(st), 3);
    const row_t *a = row_of(st, "c00"), *b = row_of(st, "d00"), *c = row_of(st, "x");
    ck_assert_ptr_eq(a, row_of(st, "c48")); /* exactly 86400 s after the first: same session */
    ck_assert_ptr_eq(b, row_of(st, "d48"));
    ck_assert_int_eq(a->s.event_count, 49);
    ck_assert_int_eq(a->s.duration_s, 86400);
    ck_assert_int_eq(a->s.start_reason, TF_START_FIRST);
    ck_assert_int_eq(b->s.started_at_ms, second);
    ck_assert_int_eq(b->s.event_count, 49);
    ck_assert_int_eq(b->s.duration_s, 86400);
    ck_assert_int_eq(b->s.start_reason, TF_START_MAX_DURATION);
    ck_assert_int_eq(c->s.event_count, 1);
    ck_assert_int_eq(c->s.start_reason, TF_START_MAX_DURATION);
    oracle_check(st);
    stream_free(st);
}
END_TEST

START_TEST(test_sessionize_campaign_split) {
    static const char *camps[] = {NULL,           "utm_source=a", NULL, "utm_source=a",
                                  "utm_source=b", "utm_source=a", NULL};
    for (int split = 0; split < 2; split++) {
        tf_session_config_t cfg = cfg_default();
        cfg.split_on_campaign = split;
        stream_t *st = hand(&cfg, 1);
        char name[8];
        size_t idx[7];
        for (int k = 0; k < 7; k++) {
            snprintf(name, sizeof name, "a%d", k + 1);
            spec_t *sp = spec_add(st, 0, name, T0 + k * 60000, TF_EVENT_CLICK);
            sp->campaign = camps[k];
            idx[k] = (size_t)(sp - st->specs);
        }
        ck_assert_int_eq(run_batch(st, idx, 7, RUN_COMMIT), 0);
        if (!split) {
            ck_assert_uint_eq(live_rows(st), 1);
            ck_assert_int_eq(row_of(st, "a1")->s.event_count, 7);
        } else {
            ck_assert_uint_eq(live_rows(st), 3);
            ck_assert_ptr_eq(
                row_of(st, "a1"),
                row_of(st, "a4")); /* NULL never splits; a session adopts its first key */
            ck_assert_int_eq(row_of(st, "a1")->s.event_count, 4);
            ck_assert_int_eq(row_of(st, "a5")->s.event_count, 1);
            ck_assert_int_eq(row_of(st, "a5")->s.start_reason, TF_START_CAMPAIGN);
            ck_assert_ptr_eq(row_of(st, "a6"), row_of(st, "a7"));
            ck_assert_int_eq(row_of(st, "a6")->s.start_reason, TF_START_CAMPAIGN);
            ck_assert_int_eq(row_of(st, "a6")->s.event_count, 2);
        }
        oracle_check(st);
        stream_free(st);
    }
}
END_TEST

START_TEST(test_sessionize_midnight_split) {
    /* 22:50Z, 23:10Z, 23:20Z, 23:50Z on 2023-11-14 and 00:10Z on 2023-11-15 */
    static const int64_t ts[5] = {1700002200000LL, 1700003400000LL, 1700004000000LL,
                                  1700005800000LL, 1700007000000LL};
    for (int utc = 0; utc < 2; utc++) {
        tf_session_config_t cfg = cfg_default();
        cfg.split_at_midnight = true;
        stream_t *st = stream_new(1, &cfg, 1);
        if (!utc) st->day = (day_t){.offset = 3600000, .len = 86400000}; /* UTC+1 */
        stream_start(st);
        char name[8];
        size_t idx[5];
        for (int k = 0; k < 5; k++) {
            snprintf(name, sizeof name, "m%d", k + 1);
            idx[k] = (size_t)(spec_add(st, 0, name, ts[k], TF_EVENT_CLICK) - st->specs);
        }
        ck_assert_int_eq(run_batch(st, idx, 5, RUN_COMMIT), 0);
        ck_assert_uint_eq(live_rows(st), 2);
        if (!utc) { /* local midnight at 23:00Z */
            ck_assert_int_eq(row_of(st, "m1")->s.event_count, 1);
            ck_assert_ptr_eq(row_of(st, "m2"), row_of(st, "m5"));
            ck_assert_int_eq(row_of(st, "m2")->s.start_reason, TF_START_MIDNIGHT);
        } else {
            ck_assert_ptr_eq(row_of(st, "m1"), row_of(st, "m4"));
            ck_assert_int_eq(row_of(st, "m1")->s.event_count, 4);
            ck_assert_int_eq(row_of(st, "m5")->s.start_reason, TF_START_MIDNIGHT);
        }
        oracle_check(st);
        stream_free(st);
    }
}
END_TEST

START_TEST(test_sessionize_late_event_merges_sessions) {
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 1);
    spec_add(st, 0, "e1", T0, TF_EVENT_PAGE_VIEW);
    spec_add(st, 0, "e2", T0 + 2400000, TF_EVENT_CLICK);
    spec_add(st, 0, "e3", T0 + 1200000, TF_EVENT_CLICK);
    deliver(st, "e1", "e2", NULL);
    ck_assert_uint_eq(live_rows(st), 2);
    char a[37], b[37];
    tf_session_id("visitor-1", "e1", a);
    tf_session_id("visitor-1", "e2", b);
    ck_assert_str_eq(row_of(st, "e2")->s.id, b);
    ck_assert(!spec_by_eid(st, "e1")->pv_has_top); /* alone in its session: no time on page */
    deliver(st, "e3", NULL);
    ck_assert_uint_eq(st->last.dels, 1);
    ck_assert_str_eq(st->last.del_ids[0], b);
    ck_assert_uint_eq(st->last.ups, 1);
    ck_assert_str_eq(st->last.ups_ids[0], a);
    ck_assert_uint_eq(st->last.asg_new, 1);
    ck_assert_uint_eq(st->last.asg_moved, 1); /* e2 re-pointed */
    ck_assert_uint_eq(st->last.pv_upd, 1);    /* e1 now has a next event */
    ck_assert_uint_eq(live_rows(st), 1);
    const row_t *w = row_of(st, "e2");
    ck_assert_str_eq(w->s.id, a);
    ck_assert_int_eq(w->s.event_count, 3);
    ck_assert_int_eq(w->s.ended_at_ms, T0 + 2400000);
    ck_assert_int_eq(w->s.duration_s, 2400);
    ck_assert_int_eq(spec_by_eid(st, "e1")->pv_top, 1200);
    oracle_check(st);
    stream_free(st);
}
END_TEST

START_TEST(test_sessionize_late_event_changes_first) {
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 1);
    spec_add(st, 0, "f1", T0, TF_EVENT_PAGE_VIEW)->path = "/landing";
    spec_add(st, 0, "f2", T0 + 60000, TF_EVENT_CLICK);
    spec_add(st, 0, "f0", T0 - 300000, TF_EVENT_CLICK);
    deliver(st, "f1", "f2", NULL);
    char a[37], b[37];
    tf_session_id("visitor-1", "f1", a);
    tf_session_id("visitor-1", "f0", b);
    ck_assert_str_eq(row_of(st, "f1")->s.id, a);
    deliver(st, "f0", NULL);
    ck_assert_uint_eq(st->last.dels, 1);
    ck_assert_str_eq(st->last.del_ids[0], a);
    ck_assert_uint_eq(st->last.ups, 1);
    ck_assert_str_eq(st->last.ups_ids[0], b);
    ck_assert_uint_eq(st->last.asg_new, 1);
    ck_assert_uint_eq(st->last.asg_moved, 2);
    ck_assert_uint_eq(st->last.pv_upd, 1); /* f1's page view follows its event */
    const row_t *w = row_of(st, "f1");
    ck_assert_str_eq(w->s.id, b);
    ck_assert_int_eq(w->s.started_at_ms, T0 - 300000);
    ck_assert_int_eq(w->s.event_count, 3);
    ck_assert_int_eq(w->s.start_reason, TF_START_FIRST);
    ck_assert_str_eq(w->s.entry_page, "/landing");
    ck_assert_uint_eq(live_rows(st), 1);
    oracle_check(st);
    stream_free(st);
}
END_TEST

START_TEST(test_sessionize_duplicates) {
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 1);
    spec_add(st, 0, "d1", T0, TF_EVENT_PAGE_VIEW);
    spec_add(st, 0, "d2", T0 + 1000, TF_EVENT_CLICK);
    spec_add(st, 0, "d3", T0 + 2000, TF_EVENT_CLICK);
    spec_add(st, 0, "d4", T0 + 3000, TF_EVENT_CLICK);
    deliver(st, "d1", "d1", "d2", NULL); /* twice in one batch */
    ck_assert_uint_eq(st->last.dups, 1);
    ck_assert_uint_eq(st->last.asg_new, 2);
    deliver(st, "d2", "d3", NULL); /* held in memory */
    ck_assert_uint_eq(st->last.dups, 1);
    ck_assert_uint_eq(st->last.asg_new, 1);
    ck_assert_uint_eq(tf_sessionizer_evict(st->sz, INT64_MAX), 1);
    ck_assert_uint_eq(tf_sessionizer_event_count(st->sz), 0);
    deliver(st, "d1", "d4", NULL); /* d1 is only in storage: found when loading */
    ck_assert_uint_eq(st->last.nreq, 1);
    ck_assert_uint_eq(st->last.dups, 1);
    ck_assert_uint_eq(st->last.asg_new, 1);
    ck_assert_uint_eq(st->last.asg_moved, 0);
    ck_assert_uint_eq(st->last.ups, 1);
    ck_assert_int_eq(row_of(st, "d1")->s.event_count, 4);
    ck_assert_uint_eq(tf_sessionizer_event_count(st->sz), 4);
    oracle_check(st);
    stream_free(st);
}
END_TEST

START_TEST(test_sessionize_page_view_time) {
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 1);
    spec_add(st, 0, "p1", T0, TF_EVENT_PAGE_VIEW)->path = "/a";
    spec_add(st, 0, "p1c", T0 + 5500, TF_EVENT_CLICK);
    spec_add(st, 0, "p2", T0 + 10000, TF_EVENT_PAGE_VIEW)->path = "/b";
    spec_t *l2 = spec_add(st, 0, "l2", T0 + 11000, TF_EVENT_PAGE_LEAVE);
    l2->pvid = "p2";
    l2->has_top = true;
    l2->top = 12.9;
    spec_t *l2b = spec_add(st, 0, "l2b", T0 + 12000, TF_EVENT_PAGE_LEAVE);
    l2b->pvid = "p2";
    l2b->has_top = true;
    l2b->top = 7.2;
    spec_add(st, 0, "p3", T0 + 20000, TF_EVENT_PAGE_VIEW)->path = "/c";
    spec_add(st, 0, "p4", T0 + 4000000, TF_EVENT_PAGE_VIEW)->path = "/d";
    spec_t *l1 = spec_add(st, 0, "l1", T0 + 4000500, TF_EVENT_PAGE_LEAVE); /* a later session */
    l1->pvid = "p1";
    l1->has_top = true;
    l1->top = 3.99;
    deliver(st, "l2", "p1", "p1c", NULL); /* the PAGE_LEAVE arrives before its page view */
    ck_assert_int_eq(spec_by_eid(st, "p1")->pv_top, 5); /* time to the next event */
    ck_assert_uint_eq(st->last.pv_new, 1);
    deliver(st, "p2", "p3", "l2b", NULL);
    ck_assert_uint_eq(st->last.pv_new, 2);
    ck_assert_uint_eq(st->last.pv_upd, 0);
    const spec_t *p2 = spec_by_eid(st, "p2"), *p3 = spec_by_eid(st, "p3");
    ck_assert(p2->pv_has_top);
    ck_assert_int_eq(p2->pv_top, 12);         /* the largest PAGE_LEAVE value, floored */
    ck_assert(p3->has_pv && !p3->pv_has_top); /* last of its session: none */
    deliver(st, "p4", "l1", NULL);
    ck_assert_uint_eq(st->last.pv_new, 1);
    ck_assert_uint_eq(st->last.pv_upd, 1);
    ck_assert_int_eq(spec_by_eid(st, "p1")->pv_top, 3); /* PAGE_LEAVE beats the next event */
    ck_assert(spec_by_eid(st, "p4")->pv_has_top);
    ck_assert_int_eq(spec_by_eid(st, "p4")->pv_top, 0); /* 500 ms to l1 */
    ck_assert_uint_eq(live_rows(st), 2);
    oracle_check(st);
    stream_free(st);
}
END_TEST

/* A PAGE_LEAVE arriving after the visitor was evicted, for a page view in an older session
 * (a tab left open longer than the timeout): the load window reaches back to it. */
START_TEST(test_sessionize_page_leave_for_old_page_view) {
    tf_session_config_t cfg = cfg_default();
    for (int in_memory = 0; in_memory < 2; in_memory++) {
        stream_t *st = hand(&cfg, 1);
        spec_add(st, 0, "o1", T0, TF_EVENT_PAGE_VIEW);
        spec_add(st, 0, "o2", T0 + 20000, TF_EVENT_CLICK);
        spec_add(st, 0, "o3", T0 + 4000000, TF_EVENT_PAGE_VIEW); /* a later session */
        spec_t *l = spec_add(st, 0, "ol", T0 + 7200000, TF_EVENT_PAGE_LEAVE);
        l->pvid = "o1";
        l->has_top = true;
        l->top = 7200.5;
        l->scroll = 90;
        deliver(st, "o1", "o2", NULL);
        deliver(st, "o3", NULL);
        ck_assert_int_eq(spec_by_eid(st, "o1")->pv_top, 20);
        if (!in_memory) ck_assert_uint_eq(tf_sessionizer_evict(st->sz, INT64_MAX), 1);
        deliver(st, "ol", NULL);
        if (!in_memory) { /* evicted: the request names the page view */
            ck_assert_uint_eq(st->last.nreq, 1);
            ck_assert_uint_eq(st->last.npvids, 1);
            ck_assert_str_eq(st->last.pvid, "o1");
        } else { /* still held: nothing to load */
            ck_assert_uint_eq(st->last.nreq, 0);
        }
        ck_assert_uint_eq(st->last.pv_upd, 1);
        ck_assert_int_eq(spec_by_eid(st, "o1")->pv_top, 7200);
        ck_assert_int_eq(spec_by_eid(st, "o1")->pv_scroll, 90);
        ck_assert_uint_eq(live_rows(st), 3);
        oracle_check(st);
        reload_check(st);
        stream_free(st);
    }
}
END_TEST

/* A PAGE_LEAVE for a page view that is nowhere is asked for once: a second
 * tf_sessionizer_load_requests in the same batch does not request the visitor again. */
START_TEST(test_sessionize_orphan_page_leave_asked_once) {
    tf_session_config_t cfg = cfg_default();
    tf_sessionizer_t *sz = tf_sessionizer_new(&cfg);
    ck_assert_ptr_nonnull(sz);
    tf_sess_event_t pv = {.visitor_id = "v",
                          .event_id = "p1",
                          .ts_ms = T0,
                          .type = TF_EVENT_PAGE_VIEW,
                          .path = "/",
                          .scroll_depth = -1};
    tf_sess_event_t leave = {.visitor_id = "v",
                             .event_id = "l1",
                             .ts_ms = T0 + 1000,
                             .type = TF_EVENT_PAGE_LEAVE,
                             .page_view_id = "gone",
                             .has_time_on_page = true,
                             .time_on_page = 3,
                             .scroll_depth = 50,
                             .cookie = 1};
    tf_sess_changes_t ch;
    size_t n = 0;
    ck_assert_int_eq(tf_sessionizer_add(sz, &pv), 0);
    ck_assert_ptr_nonnull(tf_sessionizer_load_requests(sz, &n));
    ck_assert_int_eq(tf_sessionizer_loaded(sz, "v", false), 0);
    ck_assert_int_eq(tf_sessionizer_flush(sz, &ch), 0);
    tf_sessionizer_commit(sz);
    /* held visitor, orphan reference: requested once, with the id */
    ck_assert_int_eq(tf_sessionizer_add(sz, &leave), 0);
    const tf_sess_load_request_t *r = tf_sessionizer_load_requests(sz, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(r[0].n_page_view_ids, 1);
    ck_assert_str_eq(r[0].page_view_ids[0], "gone");
    ck_assert_int_eq(r[0].since_ms, T0 + 1000 - 1800000);
    tf_session_t row;
    memset(&row, 0, sizeof row);
    tf_session_id("v", "p1", row.id);
    row.visitor_id = "v";
    row.started_at_ms = row.ended_at_ms = T0;
    row.page_view_count = row.event_count = 1;
    row.is_bounce = true;
    row.context.device_type = TF_SESS_DEVICE_UNKNOWN;
    ck_assert_int_eq(tf_sessionizer_load_session(sz, &row), 0);
    ck_assert_int_eq(tf_sessionizer_load_event(sz, &pv, row.id, false, 0, -1), 0);
    ck_assert_int_eq(tf_sessionizer_loaded(sz, "v", false), 0);
    ck_assert_ptr_nonnull(tf_sessionizer_load_requests(sz, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(tf_sessionizer_flush(sz, &ch), 0);
    ck_assert_uint_eq(ch.n_assigns, 1);
    ck_assert_uint_eq(ch.n_page_views, 1); /* p1 now has a next event: 1 s */
    ck_assert_int_eq(ch.page_views[0].time_on_page_s, 1);
    ck_assert_int_eq(ch.page_views[0].scroll_depth, -1);
    tf_sessionizer_commit(sz);
    tf_sessionizer_destroy(sz);
}
END_TEST

START_TEST(test_sessionize_scroll_max) {
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 1);
    spec_add(st, 0, "s1", T0, TF_EVENT_PAGE_VIEW);
    spec_add(st, 0, "s2", T0 + 60000, TF_EVENT_PAGE_VIEW);
    int depths[3] = {30, 80, 50};
    const char *names[3] = {"sc1", "sc2", "sl"};
    for (int i = 0; i < 3; i++) {
        spec_t *sp = spec_add(st, 0, names[i], T0 + 1000 * (i + 1),
                              i == 2 ? TF_EVENT_PAGE_LEAVE : TF_EVENT_SCROLL);
        sp->pvid = "s1";
        sp->scroll = depths[i];
        if (i == 2) {
            sp->has_top = true;
            sp->top = 4.0;
        }
    }
    deliver(st, "s1", "sc1", NULL);
    ck_assert_int_eq(spec_by_eid(st, "s1")->pv_scroll, 30);
    deliver(st, "sl", "s2", NULL);
    ck_assert_int_eq(spec_by_eid(st, "s1")->pv_scroll, 50);
    ck_assert_int_eq(spec_by_eid(st, "s1")->pv_top, 4);
    deliver(st, "sc2", NULL);
    ck_assert_uint_eq(st->last.pv_upd, 1);
    ck_assert_int_eq(spec_by_eid(st, "s1")->pv_scroll, 80);
    ck_assert_int_eq(spec_by_eid(st, "s2")->pv_scroll, -1);
    oracle_check(st);
    stream_free(st);
}
END_TEST

START_TEST(test_sessionize_bounce_rules) {
    for (int custom = 0; custom < 2; custom++) {
        tf_session_config_t cfg = cfg_default();
        if (custom) cfg.conversion_types = 1u << TF_EVENT_CLICK;
        stream_t *st = hand(&cfg, 5);
        spec_add(st, 0, "b0a", T0, TF_EVENT_PAGE_VIEW);
        spec_add(st, 0, "b0b", T0 + 9999, TF_EVENT_SCROLL);
        spec_add(st, 1, "b1a", T0, TF_EVENT_PAGE_VIEW);
        spec_add(st, 1, "b1b", T0 + 10000, TF_EVENT_SCROLL);
        spec_add(st, 2, "b2", T0, TF_EVENT_PURCHASE);
        spec_add(st, 3, "b3a", T0, TF_EVENT_PAGE_VIEW);
        spec_add(st, 3, "b3b", T0 + 1000, TF_EVENT_PAGE_VIEW);
        spec_add(st, 4, "b4", T0, TF_EVENT_CLICK);
        deliver(st, "b0a", "b0b", "b1a", "b1b", "b2", "b3a", "b3b", "b4", NULL);
        ck_assert(row_of(st, "b0a")->s.is_bounce);  /* 9.999 s, one page view */
        ck_assert(!row_of(st, "b1a")->s.is_bounce); /* exactly 10 s */
        ck_assert_int_eq(row_of(st, "b1a")->s.duration_s, 10);
        ck_assert(!row_of(st, "b3a")->s.is_bounce); /* two page views */
        ck_assert_int_eq(row_of(st, "b2")->s.has_conversion, !custom);
        ck_assert_int_eq(row_of(st, "b2")->s.is_bounce, custom);
        ck_assert_int_eq(row_of(st, "b4")->s.has_conversion, custom);
        ck_assert_int_eq(row_of(st, "b4")->s.is_bounce, !custom);
        oracle_check(st);
        stream_free(st);
    }
}
END_TEST

START_TEST(test_sessionize_context_first_event) {
    static const tf_sess_context_t a = {.os = "Linux", .device_type = 2};
    static const tf_sess_context_t b = {.browser = "Firefox",
                                        .os = "Mac",
                                        .device_type = 0,
                                        .screen_width = 1280,
                                        .screen_height = 720,
                                        .country = "DE",
                                        .referrer = "https://www.google.com/",
                                        .referrer_domain = "google.com",
                                        .utm_source = "google"};
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 2);
    spec_add(st, 0, "x0", T0, TF_EVENT_CLICK);
    spec_add(st, 0, "x1", T0 + 1000, TF_EVENT_CLICK)->ctx = &a;
    spec_add(st, 0, "x2", T0 + 2000, TF_EVENT_CLICK)->ctx = &b;
    spec_add(st, 1, "y0", T0, TF_EVENT_CLICK);
    deliver(st, "x2", "y0", NULL);
    const row_t *w = row_of(st, "x2");
    ck_assert_int_eq(w->s.context.device_type, 0);
    ck_assert_str_eq(w->s.context.os, "Mac");
    deliver(st, "x0", "x1", NULL);
    w = row_of(st, "x2");
    ck_assert_int_eq(w->s.context.device_type, 2); /* first event with a context */
    ck_assert_str_eq(w->s.context.browser, "Firefox");
    ck_assert_str_eq(w->s.context.os, "Linux");
    ck_assert_str_eq(w->s.context.country, "DE");
    ck_assert_int_eq(w->s.context.screen_width, 1280);
    ck_assert_int_eq(w->s.context.screen_height, 720);
    ck_assert_ptr_null(w->s.context.user_agent);
    /* Attribution is the first event's as a group: x1 had none, so none. */
    ck_assert_ptr_null(w->s.context.referrer);
    ck_assert_ptr_null(w->s.context.referrer_domain);
    ck_assert_ptr_null(w->s.context.utm_source);
    w = row_of(st, "y0");
    ck_assert_int_eq(w->s.context.device_type, TF_SESS_DEVICE_UNKNOWN);
    ck_assert_ptr_null(w->s.context.browser);
    ck_assert_int_eq(w->s.context.screen_width, 0);
    oracle_check(st);
    stream_free(st);
}
END_TEST

START_TEST(test_sessionize_user_id_latest) {
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 1);
    spec_add(st, 0, "y1", T0, TF_EVENT_CLICK)->user = "alice";
    spec_add(st, 0, "y2", T0 + 1000, TF_EVENT_CLICK);
    spec_add(st, 0, "y3", T0 + 2000, TF_EVENT_CLICK)->user = "bob";
    spec_add(st, 0, "y4", T0 + 3000, TF_EVENT_CLICK);
    spec_add(st, 0, "y5", T0 + 4000, TF_EVENT_CLICK)->user = "carol";
    deliver(st, "y3", "y4", NULL);
    ck_assert_str_eq(row_of(st, "y3")->s.user_id, "bob");
    deliver(st, "y1", "y2", NULL); /* earlier in time: does not override */
    ck_assert_str_eq(row_of(st, "y3")->s.user_id, "bob");
    deliver(st, "y5", NULL);
    ck_assert_str_eq(row_of(st, "y3")->s.user_id, "carol");
    oracle_check(st);
    stream_free(st);
}
END_TEST

START_TEST(test_sessionize_load_requests) {
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 2);
    spec_add(st, 0, "r1", T0 + 5000, TF_EVENT_CLICK);
    spec_add(st, 0, "r2", T0, TF_EVENT_CLICK);
    spec_add(st, 0, "r3", T0 + 100000, TF_EVENT_CLICK);
    spec_add(st, 0, "r4", T0 - 1000, TF_EVENT_CLICK);
    spec_add(st, 1, "q1", T0, TF_EVENT_CLICK);
    deliver(st, "r1", "r2", NULL);
    ck_assert_uint_eq(st->last.nreq, 1);
    ck_assert_int_eq(st->last.since[0], T0 - 1800000); /* earliest pending - timeout */
    deliver(st, "r3", NULL);
    ck_assert_uint_eq(st->last.nreq, 0); /* covered since T0 */
    deliver(st, "r4", NULL);
    ck_assert_uint_eq(st->last.nreq, 1); /* before the covered window: reloaded */
    ck_assert_int_eq(st->last.since[0], T0 - 1000 - 1800000);
    ck_assert_int_eq(row_of(st, "r4")->s.event_count, 4);
    ck_assert_uint_eq(st->last.asg_moved, 3);

    /* flush refuses a requested visitor that was not loaded; abort forgets it */
    tf_sess_event_t e = ev_of(st, spec_by_eid(st, "q1"), true);
    ck_assert_int_eq(tf_sessionizer_add(st->sz, &e), 0);
    size_t n = 0;
    const tf_sess_load_request_t *reqs = tf_sessionizer_load_requests(st->sz, &n);
    ck_assert_ptr_nonnull(reqs);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(reqs[0].visitor_id, "visitor-2");
    tf_sess_changes_t ch;
    ck_assert_int_eq(tf_sessionizer_flush(st->sz, &ch), -1);
    ck_assert_uint_eq(tf_sessionizer_visitor_count(st->sz), 2);
    tf_sessionizer_abort(st->sz);
    ck_assert_uint_eq(tf_sessionizer_visitor_count(st->sz), 1);
    ck_assert_uint_eq(tf_sessionizer_event_count(st->sz), 4);
    /* an aborted visitor that was in memory is forgotten too, and requested again */
    e = ev_of(st, spec_by_eid(st, "r3"), true);
    ck_assert_int_eq(tf_sessionizer_add(st->sz, &e), 0);
    tf_sessionizer_abort(st->sz);
    ck_assert_uint_eq(tf_sessionizer_visitor_count(st->sz), 0);
    deliver(st, "q1", "r3", NULL);
    ck_assert_uint_eq(st->last.nreq, 2);
    ck_assert_uint_eq(st->last.dups, 1);
    ck_assert_uint_eq(st->last.ups + st->last.dels + st->last.asg_moved, 1); /* q1's new session */
    /* loading calls for a visitor that was not requested are refused */
    tf_session_t row = row_of(st, "q1")->s;
    ck_assert_int_eq(tf_sessionizer_load_session(st->sz, &row), -1);
    ck_assert_int_eq(tf_sessionizer_loaded(st->sz, "visitor-1", false), -1);
    oracle_check(st);
    stream_free(st);
}
END_TEST

START_TEST(test_sessionize_reload_without_context) {
    static const tf_sess_context_t a = {.browser = "Chrome",
                                        .os = "Windows",
                                        .device_type = 0,
                                        .screen_width = 1920,
                                        .screen_height = 1080};
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 1);
    st->lossy = true;
    spec_add(st, 0, "w1", T0, TF_EVENT_PAGE_VIEW)->ctx = &a;
    spec_add(st, 0, "w2", T0 + 1000, TF_EVENT_CLICK);
    spec_add(st, 0, "w0", T0 - 1000, TF_EVENT_CLICK); /* late, no context of its own */
    deliver(st, "w1", "w2", NULL);
    ck_assert_uint_eq(tf_sessionizer_evict(st->sz, INT64_MAX), 1);
    deliver(st, "w0", NULL);
    ck_assert_uint_eq(st->last.nreq, 1);
    ck_assert_uint_eq(st->last.dels, 1);
    const row_t *w = row_of(st, "w0");
    ck_assert_int_eq(w->s.event_count, 3);
    /* the stored events took the stored session's context */
    ck_assert_str_eq(w->s.context.browser, "Chrome");
    ck_assert_int_eq(w->s.context.device_type, 0);
    ck_assert_int_eq(w->s.context.screen_width, 1920);
    reload_check(st);
    stream_free(st);
}
END_TEST

START_TEST(test_sessionize_evict_boundary) {
    tf_session_config_t cfg = cfg_default();
    cfg.timeout_ms = 1000;
    cfg.allowed_lateness_ms = 500;
    stream_t *st = hand(&cfg, 2);
    spec_add(st, 0, "v1", 9000, TF_EVENT_CLICK);
    spec_add(st, 0, "v2", 10000, TF_EVENT_CLICK);
    spec_add(st, 1, "w1", 20000, TF_EVENT_CLICK);
    deliver(st, "v2", "v1", "w1", NULL);
    size_t mem_full = tf_sessionizer_memory_bytes(st->sz);
    ck_assert_uint_eq(tf_sessionizer_evict(st->sz, 11500), 0); /* 10000 is not < 11500 - 1500 */
    ck_assert_uint_eq(tf_sessionizer_evict(st->sz, 11501), 1);
    ck_assert_uint_eq(tf_sessionizer_visitor_count(st->sz), 1);
    ck_assert_uint_eq(tf_sessionizer_event_count(st->sz), 1);
    ck_assert_uint_lt(tf_sessionizer_memory_bytes(st->sz), mem_full);
    ck_assert_uint_eq(tf_sessionizer_evict(st->sz, INT64_MAX), 1);
    ck_assert_uint_eq(tf_sessionizer_visitor_count(st->sz), 0);
    stream_free(st);
}
END_TEST

/* A visitor that never goes idle (an event every 10 min, sessions cut every hour by
 * MAX_DURATION): eviction trims its old sessions, so what it holds stays bounded; the first
 * kept session keeps its start reason; late events reaching into the trimmed part reload it. */
START_TEST(test_sessionize_trim_active_visitor) {
    tf_session_config_t cfg = cfg_default();
    cfg.max_duration_ms = 3600000;
    cfg.allowed_lateness_ms = 0;
    stream_t *st = hand(&cfg, 1);
    char name[16];
    for (int k = 0; k < 60; k++) {
        snprintf(name, sizeof name, "t%02d", k);
        spec_add(st, 0, name, T0 + (int64_t)k * 600000, TF_EVENT_PAGE_VIEW);
    }
    spec_add(st, 0, "late", T0 + 300000, TF_EVENT_CLICK);
    spec_add(st, 0, "early", T0 - 300000, TF_EVENT_CLICK);
    size_t most = 0;
    for (int b = 0; b < 10; b++) {
        size_t idx[6];
        for (int k = 0; k < 6; k++)
            idx[k] = (size_t)(b * 6 + k);
        ck_assert_int_eq(run_batch(st, idx, 6, RUN_COMMIT), 0);
        if (b) ck_assert_uint_eq(st->last.nreq, 0); /* the kept window covers new events */
        tf_sessionizer_evict(st->sz, st->specs[b * 6 + 5].ts);
        size_t held = tf_sessionizer_event_count(st->sz);
        if (held > most) most = held;
    }
    ck_assert_uint_eq(tf_sessionizer_visitor_count(st->sz), 1);
    ck_assert_uint_le(most, 14); /* at most two 7-event sessions: the current one and the last */
    ck_assert_uint_eq(live_rows(st), 9);
    ck_assert_int_eq(row_of(st, "t07")->s.start_reason, TF_START_MAX_DURATION);
    ck_assert_int_eq(row_of(st, "t56")->s.start_reason, TF_START_MAX_DURATION);
    oracle_check(st);
    deliver(st, "late", NULL); /* inside the first, long trimmed session */
    ck_assert_uint_eq(st->last.nreq, 1);
    ck_assert_int_eq(row_of(st, "t00")->s.event_count, 8);
    oracle_check(st);
    deliver(st, "early", NULL); /* a new first event: every hourly cut moves */
    ck_assert_uint_eq(st->last.nreq, 1);
    ck_assert_int_eq(row_of(st, "early")->s.event_count, 8); /* -5, 0, late, 10 .. 50 min */
    ck_assert_int_eq(row_of(st, "t06")->s.start_reason, TF_START_MAX_DURATION);
    oracle_check(st);
    reload_check(st);
    stream_free(st);
}
END_TEST

/* Times on page of 32767 s and more (kept outside the event records) are exact: from a
 * PAGE_LEAVE, from the gap to the next event, after a reload from storage and after the
 * visitor's old sessions were trimmed; a written large value is not reported again. */
START_TEST(test_sessionize_large_time_on_page) {
    tf_session_config_t cfg = cfg_default();
    cfg.timeout_ms = 50000000; /* 13.9 h: gaps of 40000 s stay inside a session */
    cfg.max_duration_ms = 200000000;
    cfg.allowed_lateness_ms = 0;
    stream_t *st = hand(&cfg, 1);
    const int64_t s = 1000;
    spec_add(st, 0, "p1", T0, TF_EVENT_PAGE_VIEW);
    spec_t *l = spec_add(st, 0, "l1", T0 + 10 * s, TF_EVENT_PAGE_LEAVE);
    l->pvid = "p1", l->has_top = true, l->top = 40000.9;
    spec_add(st, 0, "p2", T0 + 20 * s, TF_EVENT_PAGE_VIEW);
    spec_add(st, 0, "c2", T0 + 20 * s + 40000 * s, TF_EVENT_CLICK); /* p2: 40000 s to it */
    spec_add(st, 0, "p3", T0 + 40030 * s, TF_EVENT_PAGE_VIEW);
    l = spec_add(st, 0, "l3a", T0 + 40031 * s, TF_EVENT_PAGE_LEAVE);
    l->pvid = "p3", l->has_top = true, l->top = 32766.5; /* the largest value held inline */
    l = spec_add(st, 0, "l3b", T0 + 40032 * s, TF_EVENT_PAGE_LEAVE);
    l->pvid = "p3", l->has_top = true, l->top = 32767.0; /* the smallest value held aside */
    spec_add(st, 0, "p4", T0 + 40040 * s, TF_EVENT_PAGE_VIEW);
    l = spec_add(st, 0, "l4", T0 + 40041 * s, TF_EVENT_PAGE_LEAVE);
    l->pvid = "p4", l->has_top = true, l->top = 5e9; /* clamped */
    spec_add(st, 0, "c5", T0 + 40050 * s, TF_EVENT_CLICK);
    spec_add(st, 0, "c5b", T0 + 40055 * s, TF_EVENT_CLICK);
    spec_add(st, 0, "p6", T0 + 100000 * s, TF_EVENT_PAGE_VIEW); /* a later session */
    spec_add(st, 0, "c6", T0 + 140000 * s, TF_EVENT_CLICK);
    spec_add(st, 0, "c7", T0 + 140000 * s + 500, TF_EVENT_CLICK);
    l = spec_add(st, 0, "l6", T0 + 140001 * s, TF_EVENT_PAGE_LEAVE);
    l->pvid = "p6", l->has_top = true, l->top = 90000.0;

    deliver(st, "p1", "l1", "p2", "c2", NULL);
    ck_assert_int_eq(spec_by_eid(st, "p1")->pv_top, 40000);
    ck_assert_int_eq(spec_by_eid(st, "p2")->pv_top, 40000);
    deliver(st, "p3", "l3a", "p4", "l4", NULL);
    ck_assert_int_eq(spec_by_eid(st, "p3")->pv_top, 32766);
    ck_assert_int_eq(spec_by_eid(st, "p4")->pv_top, INT32_MAX);
    deliver(st, "l3b", NULL);
    ck_assert_uint_eq(st->last.pv_upd, 1);
    ck_assert_int_eq(spec_by_eid(st, "p3")->pv_top, 32767);
    deliver(st, "c5", NULL); /* nothing about the written large values changes */
    ck_assert_uint_eq(st->last.pv_upd, 0);
    ck_assert_uint_eq(st->last.ups, 1);
    oracle_check(st);
    /* evicted and reloaded: the stored large values come back through the load API */
    ck_assert_uint_eq(tf_sessionizer_evict(st->sz, INT64_MAX), 1);
    deliver(st, "c5b", NULL);
    ck_assert_uint_eq(st->last.nreq, 1);
    ck_assert_uint_eq(st->last.pv_upd, 0);
    deliver(st, "p6", NULL);
    deliver(st, "c6", NULL);
    ck_assert_int_eq(spec_by_eid(st, "p6")->pv_top, 40000);
    /* the first session is trimmed away (the heap compacted): the kept large value moves */
    tf_sessionizer_evict(st->sz, T0 + 140000 * s);
    ck_assert_uint_eq(tf_sessionizer_event_count(st->sz), 2);
    deliver(st, "c7", NULL);
    ck_assert_uint_eq(st->last.nreq, 0);
    ck_assert_uint_eq(st->last.pv_upd, 0);
    deliver(st, "l6", NULL);
    ck_assert_uint_eq(st->last.pv_upd, 1);
    ck_assert_int_eq(spec_by_eid(st, "p6")->pv_top, 90000);
    oracle_check(st);
    reload_check(st);
    stream_free(st);
}
END_TEST

/* A canonical lowercase UUID visitorId and the same UUID in capitals are two visitors; both
 * come back exactly as given (rows, load requests) and their session ids hash that text. */
START_TEST(test_sessionize_uuid_visitor_ids) {
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 3);
    snprintf(st->vid[0], sizeof st->vid[0], "%s", "0f8fad5b-d9cb-469f-a165-70867728950e");
    snprintf(st->vid[1], sizeof st->vid[1], "%s", "0F8FAD5B-D9CB-469F-A165-70867728950E");
    snprintf(st->vid[2], sizeof st->vid[2], "%s", "0f8fad5b-d9cb-469f-a165-70867728950");
    spec_add(st, 0, "a1", T0, TF_EVENT_PAGE_VIEW);
    spec_add(st, 1, "b1", T0 + 1, TF_EVENT_PAGE_VIEW);
    spec_add(st, 2, "c1", T0 + 2, TF_EVENT_PAGE_VIEW);
    spec_add(st, 0, "a2", T0 + 5000, TF_EVENT_CLICK);
    spec_add(st, 1, "b2", T0 + 5000, TF_EVENT_CLICK);
    deliver(st, "a1", "b1", "c1", NULL);
    ck_assert_uint_eq(tf_sessionizer_visitor_count(st->sz), 3);
    ck_assert_uint_eq(st->last.ups, 3);
    char id[37];
    tf_session_id(st->vid[0], "a1", id);
    ck_assert_str_eq(row_of(st, "a1")->s.id, id);
    ck_assert_str_eq(row_of(st, "a1")->s.visitor_id, st->vid[0]);
    ck_assert_str_eq(row_of(st, "b1")->s.visitor_id, st->vid[1]);
    ck_assert_str_eq(row_of(st, "c1")->s.visitor_id, st->vid[2]);
    ck_assert_uint_eq(tf_sessionizer_evict(st->sz, INT64_MAX), 3);
    deliver(st, "a2", "b2", NULL); /* requests name each visitor as it was given */
    ck_assert_uint_eq(st->last.nreq, 2);
    ck_assert_int_eq(row_of(st, "a2")->s.event_count, 2);
    ck_assert_int_eq(row_of(st, "b2")->s.event_count, 2);
    oracle_check(st);
    reload_check(st);
    stream_free(st);
}
END_TEST

static void big_add(tf_sessionizer_t *sz, const char *eid, int64_t ts, tf_event_type_t type,
                    const char *pvid, uint64_t cookie) {
    tf_sess_event_t e = {.visitor_id = "busy",
                         .event_id = eid,
                         .ts_ms = ts,
                         .type = type,
                         .path = type == TF_EVENT_PAGE_VIEW ? "/p" : NULL,
                         .page_view_id = pvid,
                         .has_time_on_page = pvid != NULL,
                         .time_on_page = 5.5,
                         .scroll_depth = -1,
                         .cookie = cookie};
    ck_assert_int_eq(tf_sessionizer_add(sz, &e), 0);
}

static void big_commit(tf_sessionizer_t *sz, tf_sess_changes_t *ch) {
    size_t n = 0;
    const tf_sess_load_request_t *r = tf_sessionizer_load_requests(sz, &n);
    ck_assert_ptr_nonnull(r);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(tf_sessionizer_loaded(sz, r[i].visitor_id, false), 0);
    ck_assert_int_eq(tf_sessionizer_flush(sz, ch), 0);
}

/* One visitor with 70,000 events over four batches: its arrays are trimmed to size at each
 * commit and grow again; its eventId index passes from 16-bit to 32-bit slots. Duplicates of
 * events of every batch are found exactly, and a PAGE_LEAVE finds its page view. */
START_TEST(test_sessionize_many_events_one_visitor) {
    tf_session_config_t cfg = cfg_default();
    tf_sessionizer_t *sz = tf_sessionizer_new(&cfg);
    ck_assert_ptr_nonnull(sz);
    char eid[32];
    tf_sess_changes_t ch;
    size_t before_commit = 0;
    for (int b = 0; b < 4; b++) {
        int from = b * 20000, to = b == 3 ? 70000 : from + 20000;
        for (int i = from; i < to; i++) {
            snprintf(eid, sizeof eid, "e%06d", i);
            big_add(sz, eid, T0 + (int64_t)i * 1000,
                    i % 10 == 0 ? TF_EVENT_PAGE_VIEW : TF_EVENT_CLICK, NULL, (uint64_t)i);
        }
        if (b == 2) big_add(sz, "e000010", T0, TF_EVENT_CLICK, NULL, 0); /* a batch earlier */
        big_commit(sz, &ch);
        ck_assert_uint_eq(ch.n_assigns, (size_t)(to - from));
        ck_assert_uint_eq(ch.n_duplicates, b == 2 ? 1 : 0);
        ck_assert_uint_eq(ch.n_page_views, (size_t)(to - from) / 10);
        before_commit = tf_sessionizer_memory_bytes(sz);
        tf_sessionizer_commit(sz);
        ck_assert_uint_lt(tf_sessionizer_memory_bytes(sz), before_commit);
        ck_assert_uint_eq(tf_sessionizer_event_count(sz), (size_t)to);
    }
    /* every 7th event again, one new event twice, a PAGE_LEAVE for the very first page view */
    size_t dups = 0;
    for (int i = 0; i < 70000; i += 7, dups++) {
        snprintf(eid, sizeof eid, "e%06d", i);
        big_add(sz, eid, T0 + (int64_t)i * 1000, TF_EVENT_CLICK, NULL, 0);
    }
    big_add(sz, "new", T0 + 70000000, TF_EVENT_CLICK, NULL, 1);
    big_add(sz, "new", T0 + 70000000, TF_EVENT_CLICK, NULL, 1);
    big_add(sz, "leave", T0 + 70000001, TF_EVENT_PAGE_LEAVE, "e000000", 2);
    big_commit(sz, &ch);
    ck_assert_uint_eq(ch.n_duplicates, dups + 1);
    ck_assert_uint_eq(ch.n_assigns, 2);
    ck_assert_uint_eq(ch.n_page_views, 1);
    ck_assert_str_eq(ch.page_views[0].event_id, "e000000");
    ck_assert(ch.page_views[0].has_time_on_page);
    ck_assert_int_eq(ch.page_views[0].time_on_page_s, 5); /* was 1 s to the next event */
    tf_sessionizer_commit(sz);
    ck_assert_uint_eq(tf_sessionizer_event_count(sz), 70002);
    ck_assert_uint_eq(tf_sessionizer_evict(sz, INT64_MAX), 1);
    ck_assert_uint_eq(tf_sessionizer_event_count(sz), 0);
    tf_sessionizer_destroy(sz);
}
END_TEST

/* Stored rows that do not match their events are corrected on the first flush after a load:
 * a stale row is upserted; a session stored under an id that is not its first event's is
 * replaced (deleted, events re-pointed), never upserted and deleted at once. */
START_TEST(test_sessionize_inconsistent_storage) {
    tf_session_config_t cfg = cfg_default();
    tf_sessionizer_t *sz = tf_sessionizer_new(&cfg);
    ck_assert_ptr_nonnull(sz);
    for (int variant = 0; variant < 4; variant++) {
        static const char *const vids[] = {"visitor-a", "visitor-b", "visitor-c", "visitor-d"};
        const char *vid = vids[variant];
        tf_sess_event_t e0 = {.visitor_id = vid,
                              .event_id = "s0",
                              .ts_ms = T0,
                              .type = TF_EVENT_CLICK,
                              .scroll_depth = -1};
        tf_sess_event_t e1 = e0;
        e1.event_id = "s1";
        e1.ts_ms = T0 + 1000;
        e1.cookie = 7;
        /* variant 2: the row is stored under s0's id but holds only s1; s0 arrives now;
         * variant 3: only a duplicate of the stored s0 arrives */
        ck_assert_int_eq(tf_sessionizer_add(sz, variant >= 2 ? &e0 : &e1), 0);
        size_t n = 0;
        const tf_sess_load_request_t *r = tf_sessionizer_load_requests(sz, &n);
        ck_assert_ptr_nonnull(r);
        ck_assert_uint_eq(n, 1);
        tf_session_t row;
        memset(&row, 0, sizeof row);
        char right[37], other[37];
        tf_session_id(vid, "s0", right);
        tf_session_id(vid, "elsewhere", other);
        memcpy(row.id, variant == 1 ? other : right, 37);
        row.visitor_id = vid;
        row.started_at_ms = row.ended_at_ms = T0;
        row.event_count = 5; /* stale */
        row.is_bounce = true;
        row.context.device_type = TF_SESS_DEVICE_UNKNOWN;
        ck_assert_int_eq(
            tf_sessionizer_load_event(sz, variant == 2 ? &e1 : &e0, row.id, false, 0, -1),
            0); /* before its row */
        if (variant == 3) {
            row.started_at_ms = row.ended_at_ms = T0 - 5000; /* also stale */
        }
        ck_assert_int_eq(tf_sessionizer_load_session(sz, &row), 0);
        ck_assert_int_eq(tf_sessionizer_loaded(sz, vid, false), 0);
        tf_sess_changes_t ch;
        ck_assert_int_eq(tf_sessionizer_flush(sz, &ch), 0);
        ck_assert_uint_eq(ch.n_upserts, 1);
        ck_assert_str_eq(ch.upserts[0].id, right);
        if (variant == 3) { /* the stale row is corrected although no new event touched it */
            ck_assert_int_eq(ch.upserts[0].event_count, 1);
            ck_assert_int_eq(ch.upserts[0].ended_at_ms, T0);
            ck_assert_uint_eq(ch.n_duplicates, 1);
            ck_assert_uint_eq(ch.n_assigns + ch.n_deletes, 0);
            tf_sessionizer_commit(sz);
            continue;
        }
        ck_assert_int_eq(ch.upserts[0].event_count, 2);
        ck_assert_int_eq(ch.upserts[0].ended_at_ms, T0 + 1000);
        ck_assert_uint_eq(ch.n_deletes, variant == 1 ? 1 : 0);
        if (variant == 1) ck_assert_str_eq(ch.deletes[0], other);
        ck_assert_uint_eq(ch.n_assigns, variant == 1 ? 2 : 1); /* the new event; a re-point */
        const char *fresh = variant == 2 ? "s0" : "s1";
        for (size_t i = 0; i < ch.n_assigns; i++) {
            ck_assert_str_eq(ch.assigns[i].session_id, right);
            ck_assert_int_eq(ch.assigns[i].is_new, strcmp(ch.assigns[i].event_id, fresh) == 0);
        }
        tf_sessionizer_commit(sz);
    }
    tf_sessionizer_destroy(sz);
}
END_TEST

START_TEST(test_sessionize_set_config) {
    tf_session_config_t cfg = cfg_default();
    stream_t *st = hand(&cfg, 1);
    spec_add(st, 0, "c1", T0, TF_EVENT_CLICK);
    spec_add(st, 0, "c2", T0 + 1000, TF_EVENT_SCROLL);
    deliver(st, "c1", NULL);
    ck_assert(!row_of(st, "c1")->s.has_conversion);
    st->cfg.conversion_types = 1u << TF_EVENT_CLICK;
    tf_sessionizer_set_config(st->sz, &st->cfg);
    deliver(st, "c2", NULL);
    ck_assert(row_of(st, "c1")->s.has_conversion);
    ck_assert(!row_of(st, "c1")->s.is_bounce);
    oracle_check(st);
    stream_free(st);
}
END_TEST

/* ------------------------------------------------------------------ random streams */

static void random_uuid(rng_t *r, char out[37], bool upper) {
    uint64_t a = rng_next(r), b = rng_next(r);
    snprintf(out, 37, upper ? "%08X-%04X-%04X-%04X-%012" PRIX64 : "%08x-%04x-%04x-%04x-%012" PRIx64,
             (unsigned)(a >> 32), (unsigned)((a >> 16) & 0xffff), (unsigned)(a & 0xffff),
             (unsigned)(b >> 48), (uint64_t)(b & 0xffffffffffffULL));
}

static const char *const r_paths[] = {"/", "/products", "/checkout", "/blog/post-1"};
static const char *const r_users[] = {"u-1", "u-2", "u-3"};
static const char *const r_camps[] = {"utm_source=google", "utm_source=news&utm_campaign=spring",
                                      "gclid=abc"};

static stream_t *random_stream(uint64_t seed) {
    rng_t r = {seed};
    tf_session_config_t cfg;
    tf_session_config_default(&cfg);
    /* the last one lets a page view's time to the next event pass 32767 s */
    static const int64_t timeouts[] = {2000, 5000, 60000, 2000, 5000, 60000, 40000000};
    cfg.timeout_ms = timeouts[rng_below(&r, 7)];
    switch (rng_below(&r, 4)) {
    case 0: cfg.max_duration_ms = 86400000; break;
    case 1: cfg.max_duration_ms = 3 * cfg.timeout_ms; break;
    case 2: cfg.max_duration_ms = 5 * cfg.timeout_ms + 1; break;
    default: cfg.max_duration_ms = cfg.timeout_ms; break;
    }
    cfg.split_on_campaign = rng_pct(&r, 40);
    cfg.split_at_midnight = rng_pct(&r, 30);
    cfg.conversion_types = 0;
    for (int t = 0; t < TF_EVENT_TYPE_COUNT; t++)
        if (rng_pct(&r, 15)) cfg.conversion_types |= 1u << t;
    static const int64_t lateness[] = {0, 1, 10};
    cfg.allowed_lateness_ms = lateness[rng_below(&r, 3)] * cfg.timeout_ms;
    cfg.hash_seed = rng_next(&r);
    stream_t *st = stream_new(seed, &cfg, 1 + (int)rng_below(&r, 4));
    st->rng.s = rng_next(&r);
    if (cfg.split_at_midnight && rng_pct(&r, 70))
        st->day = (day_t){.offset = (int64_t)rng_below(&r, 100000),
                          .len = (rng_pct(&r, 50) ? 4 : 7) * cfg.timeout_ms + 3};
    st->lossy = rng_pct(&r, 30);
    st->interleave = rng_pct(&r, 50);
    for (int i = 0; i < st->nvis; i++)
        if (rng_pct(&r, 50)) random_uuid(&r, st->vid[i], false);
    /* event times near a UTC midnight (sometimes near the epoch, negative included) */
    int64_t base = rng_pct(&r, 5)
                       ? -(int64_t)rng_below(&r, 20000)
                       : 1700006400000LL - (int64_t)rng_below(&r, 3 * (uint32_t)cfg.timeout_ms);
    int64_t t = cfg.timeout_ms;
    for (int vis = 0; vis < st->nvis; vis++) {
        int nev = 1 + (int)rng_below(&r, 30);
        int64_t ts = base + (int64_t)rng_below(&r, (uint32_t)(2 * t));
        const tf_sess_context_t *ctxs[2] = {&rctx[rng_below(&r, 6)], &rctx[rng_below(&r, 6)]};
        size_t first = st->nspecs;
        for (int k = 0; k < nev; k++) {
            switch (rng_below(&r, 10)) {
            case 0: break; /* same time: ordered by eventId */
            case 1: ts += 1; break;
            case 2: ts += t; break;
            case 3: ts += t + 1; break;
            case 4: ts += t - 1; break;
            case 5: ts += t + (int64_t)rng_below(&r, (uint32_t)(2 * t)); break;
            default: ts += (int64_t)rng_below(&r, (uint32_t)t); break;
            }
            char eid[360];
            switch (rng_below(&r, 20)) {
            case 0:
            case 1: random_uuid(&r, eid, true); break;
            case 2: /* longer than 253 bytes: the long form of a stored id */
                memset(eid, 'x', 300);
                snprintf(eid + 300, 40, "-%d-%u", vis, rng_below(&r, 1000000));
                break;
            case 3:
            case 4:
            case 5:
            case 6:
            case 7:
            case 8:
            case 9:
            case 10:
            case 11: random_uuid(&r, eid, false); break;
            default: snprintf(eid, sizeof eid, "e%d-%u", vis, rng_below(&r, 1000000)); break;
            }
            if (spec_by_eid(st, eid)) continue;
            unsigned roll = rng_below(&r, 100);
            tf_event_type_t type = roll < 35   ? TF_EVENT_PAGE_VIEW
                                   : roll < 50 ? TF_EVENT_PAGE_LEAVE
                                   : roll < 60
                                       ? TF_EVENT_SCROLL
                                       : (tf_event_type_t)rng_below(&r, TF_EVENT_TYPE_COUNT);
            spec_t *sp = spec_add(st, vis, eid, ts, type);
            sp->path =
                type == TF_EVENT_PAGE_VIEW && rng_pct(&r, 95) ? r_paths[rng_below(&r, 4)] : NULL;
            sp->user = rng_pct(&r, 40) ? r_users[rng_below(&r, 3)] : NULL;
            sp->campaign = rng_pct(&r, 20) ? r_camps[rng_below(&r, 3)] : NULL;
            /* a loader passing NULL means "the stored session's context": an event without
             * context can only be told apart when loaded events carry none at all */
            sp->ctx = st->lossy && rng_pct(&r, 20) ? NULL : ctxs[rng_below(&r, 2)];
            if (type == TF_EVENT_PAGE_LEAVE || type == TF_EVENT_SCROLL) {
                unsigned ref = rng_below(&r, 10);
                if (ref < 7) { /* a page view of this visitor at or before it */
                    size_t c[MAX_SPECS], nc = 0;
                    for (size_t i = first; i + 1 < st->nspecs; i++)
                        if (st->specs[i].type == TF_EVENT_PAGE_VIEW && st->specs[i].ts <= ts)
                            c[nc++] = i;
                    sp->pvid = nc ? st->specs[c[rng_below(&r, (uint32_t)nc)]].eid : NULL;
                } else if (ref == 7) {
                    sp->pvid = "no-such-page-view";
                } else if (ref == 8 && st->nspecs - first > 1) {
                    sp->pvid =
                        st->specs[first + rng_below(&r, (uint32_t)(st->nspecs - first - 1))].eid;
                }
                sp->has_top = type == TF_EVENT_PAGE_LEAVE && rng_pct(&r, 70);
                sp->top = rng_pct(&r, 20)  ? (double)rng_below(&r, 100)
                          : rng_pct(&r, 10) ? (double)(32765 + rng_below(&r, 4)) /* 16-bit edge */
                          : rng_pct(&r, 5)  ? 1e12 /* clamped to INT32_MAX */
                                            : (double)rng_below(&r, 100000) / 997.0;
                sp->scroll = rng_pct(&r, 70) ? (int32_t)rng_below(&r, 101) : -1;
            }
        }
    }
    stream_start(st);
    return st;
}

typedef struct prop_stats_s {
    size_t streams, events, deliveries, batches, aborts, requests, evicted;
} prop_stats_t;

static void run_random_stream(uint64_t seed, prop_stats_t *ps) {
    stream_t *st = random_stream(seed);
    rng_t *r = &st->rng;
    size_t n = st->nspecs;
    size_t cap = 4 * n + 64, qn = 0;
    size_t *q = malloc(cap * sizeof *q);
    ck_assert_ptr_nonnull(q);
    for (size_t i = 0; i < n; i++)
        q[qn++] = i;
    for (size_t i = 0; i < n; i++)
        if (rng_pct(r, 10)) q[qn++] = rng_below(r, (uint32_t)n);
    unsigned order = rng_below(r, 10);
    if (order < 5) { /* shuffled */
        for (size_t i = qn; i > 1; i--) {
            size_t j = rng_below(r, (uint32_t)i), t = q[i - 1];
            q[i - 1] = q[j];
            q[j] = t;
        }
    } else { /* in time order (or reversed) with local disorder */
        for (size_t i = 1; i < qn; i++)
            for (size_t j = i; j > 0 && st->specs[q[j - 1]].ts > st->specs[q[j]].ts; j--) {
                size_t t = q[j];
                q[j] = q[j - 1];
                q[j - 1] = t;
            }
        if (order >= 8)
            for (size_t i = 0; i < qn / 2; i++) {
                size_t t = q[i];
                q[i] = q[qn - 1 - i];
                q[qn - 1 - i] = t;
            }
        for (size_t i = 0; i + 1 < qn; i++)
            if (rng_pct(r, 20)) {
                size_t t = q[i];
                q[i] = q[i + 1];
                q[i + 1] = t;
            }
    }
    int64_t min_ts = INT64_MAX, max_ts = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        if (st->specs[i].ts < min_ts) min_ts = st->specs[i].ts;
        if (st->specs[i].ts > max_ts) max_ts = st->specs[i].ts;
    }
    size_t pos = 0, guard = 0;
    while (pos < qn) {
        REQUIRE(st, ++guard < 100000, "stream does not finish");
        size_t k = 1 + rng_below(r, 12);
        if (k > qn - pos) k = qn - pos;
        unsigned roll = rng_below(r, 100);
        int mode = roll < 4    ? RUN_ABORT_BEFORE_LOAD
                   : roll < 7  ? RUN_ABORT_AFTER_LOAD
                   : roll < 11 ? RUN_ABORT_AFTER_FLUSH
                   : roll < 26 ? RUN_TWO_ROUNDS
                               : RUN_COMMIT;
        int rc = run_batch(st, q + pos, k, mode);
        if (rc == 1) { /* redeliver the aborted batch later */
            if (qn + k > cap) {
                cap = 2 * (qn + k);
                q = realloc(q, cap * sizeof *q);
                ck_assert_ptr_nonnull(q);
            }
            memcpy(q + qn, q + pos, k * sizeof *q);
            qn += k;
        }
        pos += k;
        if (rng_pct(r, 25)) {
            int64_t span =
                max_ts - min_ts + 3 * (st->cfg.timeout_ms + st->cfg.allowed_lateness_ms) + 1;
            int64_t wm = min_ts + (int64_t)(rng_next(r) % (uint64_t)span);
            st->n_evicted += tf_sessionizer_evict(st->sz, wm);
        }
    }
    oracle_check(st);
    reload_check(st);
    ps->streams++;
    ps->events += n;
    ps->deliveries += qn;
    ps->batches += st->n_batches;
    ps->aborts += st->n_aborts;
    ps->requests += st->n_requests;
    ps->evicted += st->n_evicted;
    free(q);
    stream_free(st);
}

static uint64_t env_u64(const char *name, uint64_t dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    ck_assert_msg(end && *end == '\0', "%s must be a number", name);
    return (uint64_t)x;
}

START_TEST(test_sessionize_property_random_streams) {
    uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    uint64_t base = env_u64("EVPIPE_TEST_SEED", splitmix(&t));
    uint64_t count = env_u64("EVPIPE_TEST_STREAMS", 15000);
    prop_stats_t ps = {0};
    double t0 = now_s();
    for (uint64_t i = 0; i < count; i++) {
        uint64_t s = base ^ (i * 0xd1342543de82ef95ULL); /* streams of different bases differ */
        run_random_stream(i == 0 ? base : splitmix(&s), &ps);
    }
    printf("sessionize property: base seed %" PRIu64
           ": %zu streams, %zu events, %zu deliveries, "
           "%zu batches (%zu aborted), %zu load requests, %zu evictions, %.1f s\n",
           base, ps.streams, ps.events, ps.deliveries, ps.batches, ps.aborts, ps.requests,
           ps.evicted, now_s() - t0);
    ck_assert_uint_eq(ps.streams, count);
}
END_TEST

/* Every allocation failing in turn: each failure must surface as a clean -1 (or NULL), the
 * batch is aborted and delivered again without failures, and the end state is exact. */
START_TEST(test_sessionize_alloc_failures) {
    uint64_t seeds[] = {7, 11};
    size_t runs = 0, failures = 0;
    for (size_t si = 0; si < sizeof seeds / sizeof seeds[0]; si++) {
        int clean_in_a_row = 0;
        for (long fail_at_n = 0; clean_in_a_row < 2; fail_at_n++) {
            stream_t *st = random_stream(seeds[si]);
            st->inject = true;
            st->interleave = true;
            tf_sessionizer_fail_allocs_after(st->sz, fail_at_n);
            size_t n = st->nspecs, b = 0;
            size_t order[MAX_SPECS];
            for (size_t i = 0; i < n; i++)
                order[i] = n - 1 - i; /* late arrivals */
            bool failed = false;
            for (size_t pos = 0; pos < n; pos += b) {
                b = n - pos < 5 ? n - pos : 5;
                int rc = run_batch(st, order + pos, b, RUN_COMMIT);
                if (rc == 2) {
                    failed = true;
                    tf_sessionizer_fail_allocs_after(st->sz, -1);
                    ck_assert_int_eq(run_batch(st, order + pos, b, RUN_COMMIT), 0);
                }
                if (pos == 10) tf_sessionizer_evict(st->sz, INT64_MAX); /* forces reloads */
            }
            tf_sessionizer_fail_allocs_after(st->sz, -1);
            oracle_check(st);
            reload_check(st);
            stream_free(st);
            runs++;
            failures += failed;
            clean_in_a_row = failed ? 0 : clean_in_a_row + 1;
            ck_assert_int_lt(fail_at_n, 100000);
        }
    }
    printf("sessionize allocation failures: %zu runs, %zu with a failed call, all recovered\n",
           runs, failures);
    ck_assert_uint_gt(failures, 100);
}
END_TEST

/* ------------------------------------------------------------------ throughput and memory */

typedef struct gen_ev_s {
    int64_t ts;
    uint32_t vis;
    uint16_t k;
    uint8_t type;
    uint8_t session; /* index of its session within the visitor */
} gen_ev_t;

static int gen_cmp(const void *a, const void *b) {
    const gen_ev_t *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    if (x->vis != y->vis) return x->vis < y->vis ? -1 : 1;
    return x->k < y->k ? -1 : x->k > y->k;
}

typedef struct workload_s {
    gen_ev_t *ev;
    size_t n;
    char (*vid)[40];
    char (*eid)[40];
    uint32_t nvis;
    size_t sessions;
    size_t page_views;
} workload_t;

/* A realistic stream: visitors arriving over `window_ms`, each with `per` events in one or two
 * visits (gaps 5-120 s inside a visit, 35-45 min between visits), in time order. */
static void workload_make(workload_t *w, uint32_t nvis, int per, int64_t window_ms, bool uuid_ids,
                          uint64_t seed) {
    rng_t r = {seed};
    w->nvis = nvis;
    w->n = (size_t)nvis * (size_t)per;
    w->ev = malloc(w->n * sizeof *w->ev);
    w->vid = malloc((size_t)nvis * sizeof *w->vid);
    w->eid = malloc(w->n * sizeof *w->eid);
    ck_assert(w->ev && w->vid && w->eid);
    w->sessions = 0;
    w->page_views = 0;
    size_t n = 0;
    for (uint32_t v = 0; v < nvis; v++) {
        random_uuid(&r, w->vid[v], false);
        int64_t ts = T0 + (int64_t)(rng_next(&r) % (uint64_t)window_ms);
        int visits = rng_pct(&r, 40) ? 2 : 1,
            split = visits == 2 ? 1 + (int)rng_below(&r, (uint32_t)per - 1) : per;
        int session = 0;
        w->sessions += (size_t)visits;
        for (int k = 0; k < per; k++) {
            if (k == split) {
                ts += 2100000 + (int64_t)rng_below(&r, 600000);
                session++;
            } else if (k) {
                ts += 5000 + (int64_t)rng_below(&r, 115000);
            }
            gen_ev_t *e = &w->ev[n];
            e->ts = ts;
            e->vis = v;
            e->k = (uint16_t)k;
            e->session = (uint8_t)session;
            unsigned roll = rng_below(&r, 100);
            e->type = (uint8_t)(k == 0 || k == split || roll < 40 ? TF_EVENT_PAGE_VIEW
                                : roll < 55                       ? TF_EVENT_PAGE_LEAVE
                                : roll < 70                       ? TF_EVENT_SCROLL
                                : roll < 72                       ? TF_EVENT_PURCHASE
                                                                  : TF_EVENT_CLICK);
            w->page_views += e->type == TF_EVENT_PAGE_VIEW;
            if (uuid_ids)
                random_uuid(&r, w->eid[n], false);
            else
                snprintf(w->eid[n], sizeof w->eid[n], "evt-%07u-%02d", v, k);
            n++;
        }
    }
    /* event ids travel with their events through the sort */
    char(*sorted_ids)[40] = malloc(w->n * sizeof *sorted_ids);
    ck_assert_ptr_nonnull(sorted_ids);
    size_t *first = calloc(nvis + 1, sizeof *first);
    ck_assert_ptr_nonnull(first);
    for (uint32_t v = 0; v < nvis; v++)
        first[v + 1] = first[v] + (size_t)per;
    qsort(w->ev, w->n, sizeof *w->ev, gen_cmp);
    for (size_t i = 0; i < w->n; i++)
        memcpy(sorted_ids[i], w->eid[first[w->ev[i].vis] + w->ev[i].k], 40);
    free(w->eid);
    w->eid = sorted_ids;
    free(first);
}

static void workload_free(workload_t *w) {
    free(w->ev);
    free(w->vid);
    free(w->eid);
}

static tf_sess_event_t workload_event(const workload_t *w, size_t i, const char *last_pv[]) {
    static const char *const paths[] = {"/",         "/products", "/products/42", "/cart",
                                        "/checkout", "/blog",     "/about",       "/contact"};
    static const char *const users[] = {"user-a", "user-b", "user-c"};
    const gen_ev_t *g = &w->ev[i];
    tf_sess_event_t e;
    memset(&e, 0, sizeof e);
    e.visitor_id = w->vid[g->vis];
    e.event_id = w->eid[i];
    e.ts_ms = g->ts;
    e.type = (tf_event_type_t)g->type;
    e.user_id = g->vis % 3 == 0 ? users[(g->vis / 3) % 3] : NULL;
    e.path = g->type == TF_EVENT_PAGE_VIEW ? paths[(g->vis + g->k) % 8] : NULL;
    e.scroll_depth = g->type == TF_EVENT_SCROLL || g->type == TF_EVENT_PAGE_LEAVE
                         ? (int32_t)(g->k * 7 % 101)
                         : -1;
    e.page_view_id =
        (g->type == TF_EVENT_SCROLL || g->type == TF_EVENT_PAGE_LEAVE) ? last_pv[g->vis] : NULL;
    e.has_time_on_page = g->type == TF_EVENT_PAGE_LEAVE;
    e.time_on_page = 3.5 + g->k;
    e.context = &rctx[g->vis % 6];
    e.cookie = i;
    if (g->type == TF_EVENT_PAGE_VIEW) last_pv[g->vis] = w->eid[i];
    return e;
}

/* Runs the workload through add/load/flush/commit in batches; checks the exact totals. */
static double workload_run(const workload_t *w, tf_sessionizer_t *sz, size_t batch, bool evict,
                           size_t *peak_mem) {
    const char **last_pv = calloc(w->nvis, sizeof *last_pv);
    uint8_t *last_session = malloc(w->nvis);
    char(*last_sid)[37] = calloc(w->nvis, sizeof *last_sid);
    ck_assert(last_pv && last_session && last_sid);
    memset(last_session, 0xff, w->nvis);
    size_t sessions = 0, assigns = 0, moved = 0, deletes = 0, pv_new = 0, dups = 0;
    double busy = 0;
    for (size_t pos = 0; pos < w->n; pos += batch) {
        size_t end = pos + batch < w->n ? pos + batch : w->n;
        tf_sess_event_t *evs = malloc((end - pos) * sizeof *evs);
        ck_assert_ptr_nonnull(evs);
        for (size_t i = pos; i < end; i++)
            evs[i - pos] = workload_event(w, i, last_pv);
        double t0 = now_s();
        int failed = 0; /* no ck_assert in the timed loop: each one writes a location record */
        for (size_t i = pos; i < end; i++)
            failed |= tf_sessionizer_add(sz, &evs[i - pos]);
        size_t nreq = 0;
        const tf_sess_load_request_t *reqs = tf_sessionizer_load_requests(sz, &nreq);
        failed |= !reqs;
        for (size_t i = 0; i < nreq; i++)
            failed |= tf_sessionizer_loaded(sz, reqs[i].visitor_id, false);
        tf_sess_changes_t ch;
        failed |= tf_sessionizer_flush(sz, &ch);
        busy += now_s() - t0;
        ck_assert_int_eq(failed, 0);
        for (size_t i = 0; i < ch.n_assigns; i++) {
            const tf_sess_assign_t *a = &ch.assigns[i];
            if (!a->is_new) {
                moved++;
                continue;
            }
            assigns++;
            const gen_ev_t *g = &w->ev[a->cookie];
            if (g->session != last_session[g->vis]) {
                sessions++;
                last_session[g->vis] = g->session;
                if (strcmp(last_sid[g->vis], a->session_id) == 0) ck_abort_msg("session id reused");
                memcpy(last_sid[g->vis], a->session_id, 37);
            } else if (strcmp(last_sid[g->vis], a->session_id) != 0) {
                ck_abort_msg("event %zu of a visit in another session", (size_t)a->cookie);
            }
        }
        for (size_t i = 0; i < ch.n_page_views; i++)
            pv_new += ch.page_views[i].is_new;
        deletes += ch.n_deletes;
        dups += ch.n_duplicates;
        size_t mem = tf_sessionizer_memory_bytes(sz);
        if (mem > *peak_mem) *peak_mem = mem;
        t0 = now_s();
        tf_sessionizer_commit(sz);
        if (evict) tf_sessionizer_evict(sz, w->ev[end - 1].ts);
        busy += now_s() - t0;
        free(evs);
    }
    ck_assert_uint_eq(assigns, w->n);
    ck_assert_uint_eq(moved, 0);
    ck_assert_uint_eq(deletes, 0);
    ck_assert_uint_eq(dups, 0);
    ck_assert_uint_eq(sessions, w->sessions);
    ck_assert_uint_eq(pv_new, w->page_views);
    free(last_pv);
    free(last_session);
    free(last_sid);
    return busy;
}

START_TEST(test_sessionize_throughput) {
    workload_t w;
    workload_make(&w, 60000, 10, 4 * 3600000LL, true, 99);
    tf_session_config_t cfg = cfg_default();
    tf_sessionizer_t *sz = tf_sessionizer_new(&cfg);
    ck_assert_ptr_nonnull(sz);
    size_t peak = 0;
    double busy = workload_run(&w, sz, 5000, true, &peak);
    double rate = (double)w.n / busy;
    printf(
        "sessionize throughput: %zu events (%u visitors, %zu sessions) in %.3f s: %.0f events/s "
        "for add+load+flush+commit+evict on one core; peak held %.1f MB\n",
        w.n, w.nvis, w.sessions, busy, rate, (double)peak / 1e6);
    size_t held_visitors = tf_sessionizer_visitor_count(sz);
    ck_assert_uint_gt(held_visitors, 0);
    ck_assert_uint_eq(tf_sessionizer_evict(sz, INT64_MAX), held_visitors);
    ck_assert_uint_eq(tf_sessionizer_visitor_count(sz), 0);
    ck_assert_uint_eq(tf_sessionizer_event_count(sz), 0);
    /* a floor far below the target: catches quadratic behaviour, not machine noise */
    ck_assert_msg(rate > 150000, "only %.0f events/s", rate);
    tf_sessionizer_destroy(sz);
    workload_free(&w);
}
END_TEST

/* 100,000 visitors with 10 events each, all held at once. */
START_TEST(test_sessionize_memory) {
    for (int uuid = 1; uuid >= 0; uuid--) {
        workload_t w;
        workload_make(&w, 100000, 10, 3600000LL, uuid, 5);
        tf_session_config_t cfg = cfg_default();
        struct mallinfo2 before = mallinfo2();
        tf_sessionizer_t *sz = tf_sessionizer_new(&cfg);
        ck_assert_ptr_nonnull(sz);
        size_t peak = 0;
        workload_run(&w, sz, 10000, false, &peak);
        struct mallinfo2 after = mallinfo2();
        size_t held = tf_sessionizer_memory_bytes(sz), heap = after.uordblks - before.uordblks;
        ck_assert_uint_eq(tf_sessionizer_event_count(sz), 1000000);
        ck_assert_uint_eq(tf_sessionizer_visitor_count(sz), 100000);
        if (after.uordblks ==
            0) { /* an allocator without mallinfo (sanitizers): accounted bytes only */
            printf(
                "sessionize memory: this allocator does not report malloc'd bytes; checking the "
                "accounted bytes\n");
            heap = held;
        }
        double nev = (double)tf_sessionizer_event_count(sz);
        printf(
            "sessionize memory (%s event ids): 100000 visitors x 10 events: %.1f MB accounted "
            "(%.1f bytes/event), %.1f MB malloc'd (%.1f bytes/event)\n",
            uuid ? "UUID" : "14-character", (double)held / 1e6, (double)held / nev,
            (double)heap / 1e6, (double)heap / nev);
        size_t id_bytes = 0;
        for (size_t i = 0; i < w.n; i++)
            id_bytes += strlen(w.eid[i]);
        ck_assert_uint_lt(heap, 100u * 1000 * 1000);
        ck_assert_uint_le(held, heap);
        /* per event, all overheads included: under 64 bytes plus the eventId's length (a
         * 36-character UUID is held in 16 bytes) */
        ck_assert_double_lt((double)held / nev, 64.0 + (double)id_bytes / nev);
        ck_assert_double_lt((double)held / nev, 80.0);
        tf_sessionizer_destroy(sz);
        workload_free(&w);
    }
}
END_TEST

static Suite *sessionize_suite(void) {
    Suite *s = suite_create("sessionize");
    TCase *tc = tcase_create("hand");
    tcase_add_test(tc, test_sessionize_config_default);
    tcase_add_test(tc, test_sessionize_reason_names);
    tcase_add_test(tc, test_sessionize_max_events_cap);
    tcase_add_test(tc, test_sessionize_session_id);
    tcase_add_test(tc, test_sessionize_inactivity_boundary);
    tcase_add_test(tc, test_sessionize_max_duration_boundary);
    tcase_add_test(tc, test_sessionize_campaign_split);
    tcase_add_test(tc, test_sessionize_midnight_split);
    tcase_add_test(tc, test_sessionize_late_event_merges_sessions);
    tcase_add_test(tc, test_sessionize_late_event_changes_first);
    tcase_add_test(tc, test_sessionize_duplicates);
    tcase_add_test(tc, test_sessionize_page_view_time);
    tcase_add_test(tc, test_sessionize_page_leave_for_old_page_view);
    tcase_add_test(tc, test_sessionize_orphan_page_leave_asked_once);
    tcase_add_test(tc, test_sessionize_scroll_max);
    tcase_add_test(tc, test_sessionize_bounce_rules);
    tcase_add_test(tc, test_sessionize_context_first_event);
    tcase_add_test(tc, test_sessionize_user_id_latest);
    tcase_add_test(tc, test_sessionize_load_requests);
    tcase_add_test(tc, test_sessionize_reload_without_context);
    tcase_add_test(tc, test_sessionize_evict_boundary);
    tcase_add_test(tc, test_sessionize_trim_active_visitor);
    tcase_add_test(tc, test_sessionize_large_time_on_page);
    tcase_add_test(tc, test_sessionize_uuid_visitor_ids);
    tcase_add_test(tc, test_sessionize_many_events_one_visitor);
    tcase_add_test(tc, test_sessionize_inconsistent_storage);
    tcase_add_test(tc, test_sessionize_set_config);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("property");
    tcase_set_timeout(tp, 300);
    tcase_add_test(tp, test_sessionize_property_random_streams);
    tcase_add_test(tp, test_sessionize_alloc_failures);
    suite_add_tcase(s, tp);
    TCase *tb = tcase_create("performance");
    tcase_set_timeout(tb, 300);
    tcase_add_test(tb, test_sessionize_throughput);
    tcase_add_test(tb, test_sessionize_memory);
    suite_add_tcase(s, tb);
    return s;
}

int main(void) {
    return tl_run_suite(sessionize_suite()) == 0 ? 0 : 1;
}
