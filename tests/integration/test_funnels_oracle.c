/* test_funnels_oracle — every funnel_results row of `evpipe funnels` (DAILY, WEEKLY,
 * MONTHLY; counts, drop-offs, rates and medians) equals a brute-force computation
 * written here: every chain of every visitor enumerated, the furthest kept, ties to
 * the earliest first step and then the earliest step times. The data spans two month
 * and several ISO week boundaries, puts chains across midnight, mixes a visitor-scope
 * funnel with path-prefix and property filters and a session-scope funnel whose
 * chains may not cross sessions, and leaves bots out. Also: PAUSED and ARCHIVED
 * funnels are left alone and a re-activated one is recomputed over its history; the
 * stage killed with SIGKILL at random moments and then two instances finishing the
 * work give the same rows. */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/testlib.h"

#define T0_EPOCH 1792886400LL /* 2026-10-25T00:00:00Z, a Sunday */
#define MAX_VISITORS 120
#define EVENTS_PER_SESSION 6
#define N_EVENTS (2 * EVENTS_PER_SESSION)
#define WINDOW_MS 120000
#define N_STEPS 3
#define N_FUNNELS 2

enum { PAGE_VIEW, ADD_TO_CART, PURCHASE, CLICK };
static const char *const type_names[] = {"PAGE_VIEW", "ADD_TO_CART", "PURCHASE", "CLICK"};
static const char *const paths[] = {"/shop/a", "/shop", "/home", "/shop/b/c"};
static const char *const props[] = {"{\"sku\":\"x\",\"qty\":1.0}", "{\"sku\":\"x\"}",
                                    "{\"qty\":1,\"sku\":\"x\",\"extra\":true}",
                                    "{\"sku\":\"y\",\"qty\":1}"};
/* Funnel 0 ("shop", visitor scope): a view under the /shop/ prefix (paths 0 and 3), a cart of sku x with
 * qty 1 (props 0 and 2: 1.0 equals 1, extra keys allowed), a purchase.
 * Funnel 1 ("any", session scope): view, cart, purchase, all in one session. */
static const char *const funnel_names[N_FUNNELS] = {"shop", "any"};

typedef struct {
    int64_t t;   /* ms since T0 */
    int type;
    int variant; /* index into paths (views) or props (carts) */
    int session; /* 0 or 1 */
    int bot;     /* the event's session is a BOT session */
} ev_t;

typedef struct {
    int n_visitors;
    ev_t evs[MAX_VISITORS][N_EVENTS];
} data_t;

static int step_matches(int funnel, int step, const ev_t *e) {
    static const int step_type[N_STEPS] = {PAGE_VIEW, ADD_TO_CART, PURCHASE};
    if (e->type != step_type[step]) return 0;
    if (funnel == 1) return 1;
    if (step == 0) return e->variant == 0 || e->variant == 3;
    if (step == 1) return e->variant == 0 || e->variant == 2;
    return 1;
}

/* ---- civil dates (days since 1970-01-01) ---- */

static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

enum { DAILY, WEEKLY, MONTHLY };
static const char *const kind_names[] = {"DAILY", "WEEKLY", "MONTHLY"};

/* The first day of the period of `kind` holding t (ms since T0). */
static int64_t period_key(int kind, int64_t t) {
    int64_t ms = T0_EPOCH * 1000 + t;
    int64_t day = ms / 86400000;
    if (kind == DAILY) return day;
    if (kind == WEEKLY) return day - (day + 3) % 7; /* 1970-01-01 was a Thursday */
    int y, m, d;
    civil_from_days(day, &y, &m, &d);
    return days_from_civil(y, m, 1);
}

/* ---- brute force ---- */

typedef struct {
    int level;
    int64_t at[N_STEPS];
} chain_t;

/* Better for the same period: further, then earlier first step, then earlier times. */
static int chain_better(const chain_t *a, const chain_t *b) {
    if (a->level != b->level) return a->level > b->level;
    for (int i = 0; i < a->level; i++)
        if (a->at[i] != b->at[i]) return a->at[i] < b->at[i];
    return 0;
}

static void extend(int funnel, const ev_t *e, int level, unsigned used, chain_t *cur,
                   chain_t *best) {
    if (chain_better(cur, best)) *best = *cur;
    if (level == N_STEPS) return;
    for (int j = 0; j < N_EVENTS; j++) {
        if ((used >> j) & 1u || e[j].bot || !step_matches(funnel, level, &e[j])) continue;
        if (e[j].t < cur->at[level - 1] || e[j].t > cur->at[0] + WINDOW_MS) continue;
        if (funnel == 1 && e[j].session != e[__builtin_ctz(used)].session) continue;
        cur->at[level] = e[j].t;
        cur->level = level + 1;
        extend(funnel, e, level + 1, used | (1u << j), cur, best);
        cur->level = level;
    }
}

/* The visitor's best chain entering in period `key` of `kind` (level 0 = none). For
 * session scope every event of a chain shares the first one's session, so extend
 * compares with the lowest used index. */
static chain_t best_chain(int funnel, const ev_t *e, int kind, int64_t key) {
    chain_t best = {0};
    for (int i = 0; i < N_EVENTS; i++) {
        if (e[i].bot || !step_matches(funnel, 0, &e[i]) || period_key(kind, e[i].t) != key)
            continue;
        chain_t cur = {.level = 1};
        cur.at[0] = e[i].t;
        extend(funnel, e, 1, 1u << i, &cur, &best);
    }
    return best;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The expected stepResults of one period as "count|dropOff|fromPrev|fromStart|median;"
 * per step, numbers as %.9g, median "null" when none. Returns 0 when nobody entered. */
static int expected_row(const data_t *d, int funnel, int kind, int64_t key, char *out,
                        size_t out_size) {
    long long count[N_STEPS] = {0};
    static double gaps[N_STEPS][MAX_VISITORS];
    int n_gaps[N_STEPS] = {0};
    for (int v = 0; v < d->n_visitors; v++) {
        chain_t c = best_chain(funnel, d->evs[v], kind, key);
        for (int k = 0; k < c.level; k++) {
            count[k]++;
            if (k > 0) gaps[k][n_gaps[k]++] = (double)(c.at[k] - c.at[k - 1]) / 1000.0;
        }
    }
    if (count[0] == 0) return 0;
    size_t len = 0;
    for (int k = 0; k < N_STEPS; k++) {
        double from_prev = k == 0 ? 1.0 : count[k - 1] ? (double)count[k] / (double)count[k - 1] : 0;
        char med[32] = "null";
        if (k > 0 && n_gaps[k] > 0) snprintf(med, sizeof(med), "%.9g", median(gaps[k], n_gaps[k]));
        len += (size_t)snprintf(out + len, out_size - len, "%lld|%lld|%.9g|%.9g|%s;", count[k],
                                k == 0 ? 0 : count[k - 1] - count[k], from_prev,
                                (double)count[k] / (double)count[0], med);
    }
    return 1;
}

/* ---- data ---- */

static void generate(data_t *d, int n_visitors, unsigned seed) {
    srand(seed);
    d->n_visitors = n_visitors;
    for (int v = 0; v < n_visitors; v++) {
        /* A third of the visitors start in the last 400 s of a day: chains across midnight. */
        int64_t day = rand() % 45;
        int64_t base = v % 3 == 0 ? (day + 1) * 86400 - 10 * (rand() % 40) : day * 86400 + 10 * (rand() % 8640);
        for (int i = 0; i < N_EVENTS; i++) {
            ev_t *e = &d->evs[v][i];
            e->session = i / EVENTS_PER_SESSION;
            /* Session 0 on multiples of 10 s, session 1 five seconds off: equal times
             * within a session, never a tie between the sessions' first steps. */
            e->t = (base + 10 * (rand() % 30) + 5 * e->session) * 1000;
            e->type = rand() % 4;
            e->variant = rand() % 4;
            e->bot = v < 6 || (v == 6 && e->session == 0);
        }
    }
}

static void session_id(char *buf, size_t n, unsigned seed, int v, int s) {
    snprintf(buf, n, "00000000-0000-%04x-0000-%012d", seed & 0xffff, v * 2 + s);
}

/* Inserts the visitors [from, to) of d: their sessions and events. */
static void insert(PGconn *conn, const data_t *d, unsigned seed, int from, int to) {
    char sql[1024], sid[64];
    for (int v = from; v < to; v++) {
        for (int s = 0; s < 2; s++) {
            session_id(sid, sizeof(sid), seed, v, s);
            const ev_t *first = &d->evs[v][s * EVENTS_PER_SESSION];
            snprintf(sql, sizeof(sql),
                     "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", "
                     "\"endedAt\", \"deviceType\") VALUES ('%s', 'v%u_%d', "
                     "to_timestamp(%lld / 1000.0), to_timestamp(%lld / 1000.0) + interval '10 "
                     "minutes', '%s')",
                     sid, seed, v, (long long)(T0_EPOCH * 1000 + first->t),
                     (long long)(T0_EPOCH * 1000 + first->t), first->bot ? "BOT" : "DESKTOP");
            tl_exec(conn, sql);
        }
        for (int i = 0; i < N_EVENTS; i++) {
            const ev_t *e = &d->evs[v][i];
            session_id(sid, sizeof(sid), seed, v, e->session);
            snprintf(sql, sizeof(sql),
                     "INSERT INTO analytics_events (\"sessionId\", \"eventId\", type, "
                     "\"visitorId\", path, properties, \"occurredAt\") VALUES ('%s', "
                     "'e%u_%d_%d', '%s', 'v%u_%d', '%s', '%s', to_timestamp(%lld / 1000.0))",
                     sid, seed, v, i, type_names[e->type], seed, v,
                     e->type == PAGE_VIEW ? paths[e->variant] : "/",
                     e->type == ADD_TO_CART ? props[e->variant] : "{}",
                     (long long)(T0_EPOCH * 1000 + e->t));
            tl_exec(conn, sql);
        }
    }
}

static void define_funnels(PGconn *conn) {
    tl_exec(conn,
            "INSERT INTO funnels (name, steps, \"conversionWindowSeconds\", scope) VALUES "
            "('shop', '[{\"type\":\"PAGE_VIEW\",\"path\":\"/shop/*\"},{\"type\":\"ADD_TO_CART\","
            "\"properties\":{\"sku\":\"x\",\"qty\":1}},{\"type\":\"PURCHASE\"}]', 120, 'visitor'), "
            "('any', '[{\"type\":\"PAGE_VIEW\"},{\"type\":\"ADD_TO_CART\"},{\"type\":\"PURCHASE\"}]', "
            "120, 'session')");
}

/* Every row of the funnel's results equals the brute force, and there is exactly one
 * row per period with entrants. */
static void check_funnel(PGconn *conn, const data_t *d, int funnel) {
    for (int kind = DAILY; kind <= MONTHLY; kind++) {
        /* Periods with a possible entry: those of the events matching step 1. */
        int64_t keys[MAX_VISITORS * N_EVENTS];
        int n_keys = 0, n_rows = 0;
        for (int v = 0; v < d->n_visitors; v++)
            for (int i = 0; i < N_EVENTS; i++) {
                const ev_t *e = &d->evs[v][i];
                if (e->bot || !step_matches(funnel, 0, e)) continue;
                int64_t k = period_key(kind, e->t);
                int seen = 0;
                for (int j = 0; j < n_keys && !seen; j++) seen = keys[j] == k;
                if (!seen) keys[n_keys++] = k;
            }
        for (int j = 0; j < n_keys; j++) {
            char want[512], q[1024];
            if (!expected_row(d, funnel, kind, keys[j], want, sizeof(want))) continue;
            n_rows++;
            int y, m, dd;
            civil_from_days(keys[j], &y, &m, &dd);
            snprintf(q, sizeof(q),
                     "SELECT string_agg(concat_ws('|', s->>'count', s->>'dropOff', "
                     "s->>'conversionRateFromPrev', s->>'conversionRateFromStart', "
                     "coalesce(s->>'medianSecondsFromPrev', 'null')), ';' ORDER BY "
                     "(s->>'step')::int) || ';' || '#' || r.entrants || '|' || r.conversions "
                     "|| '|' || r.\"conversionRate\" FROM funnel_results r JOIN funnels f ON "
                     "f.id = r.\"funnelId\", jsonb_array_elements(r.\"stepResults\") s WHERE "
                     "f.name = '%s' AND r.period = '%s' AND r.\"periodStart\" = "
                     "'%04d-%02d-%02dT00:00:00Z' GROUP BY r.id",
                     funnel_names[funnel], kind_names[kind], y, m, dd);
            char *got = tl_query_text(conn, q);
            ck_assert_msg(got != NULL, "%s %s %04d-%02d-%02d: no row, want %s", funnel_names[funnel],
                          kind_names[kind], y, m, dd, want);
            /* Compare field by field as numbers. */
            char *g = got, *w = want;
            long long entrants = -1, conversions = 0;
            for (int k = 0; k < N_STEPS * 5; k++) {
                char *ge, *we;
                int gnull = strncmp(g, "null", 4) == 0, wnull = strncmp(w, "null", 4) == 0;
                ck_assert_msg(gnull == wnull, "%s %s %04d-%02d-%02d: got %s, want %s",
                              funnel_names[funnel], kind_names[kind], y, m, dd, got, want);
                if (gnull) {
                    ge = g + 4;
                    we = w + 4;
                } else {
                    double gv = strtod(g, &ge), wv = strtod(w, &we);
                    ck_assert_msg(fabs(gv - wv) < 1e-9, "%s %s %04d-%02d-%02d: got %s, want %s",
                                  funnel_names[funnel], kind_names[kind], y, m, dd, got, want);
                    if (k == 0) entrants = (long long)wv;
                    if (k == (N_STEPS - 1) * 5) conversions = (long long)wv;
                }
                g = ge + 1;
                w = we + 1;
            }
            char tail[96];
            snprintf(tail, sizeof(tail), "#%lld|%lld|", entrants, conversions);
            ck_assert_msg(strncmp(g, tail, strlen(tail)) == 0, "entrants/conversions: %s vs %s", g,
                          tail);
            double rate = strtod(g + strlen(tail), NULL);
            ck_assert(fabs(rate - (double)conversions / (double)entrants) < 1e-9);
            free(got);
        }
        char q[512];
        snprintf(q, sizeof(q),
                 "SELECT count(*) FROM funnel_results r JOIN funnels f ON f.id = r.\"funnelId\" "
                 "WHERE f.name = '%s' AND r.period = '%s'",
                 funnel_names[funnel], kind_names[kind]);
        ck_assert_int_eq(tl_query_ll(conn, q), n_rows);
        ck_assert_msg(n_rows >= (kind == MONTHLY ? 2 : 4), "%s %s: data too thin (%d periods)",
                      funnel_names[funnel], kind_names[kind], n_rows);
    }
}

/* The per-level counts the stage keeps by deltas equal a count of the per-visitor
 * rows they summarise, with no row left at zero. */
static void check_levels(PGconn *conn) {
    ck_assert_int_eq(
        tl_query_ll(conn,
                    "SELECT count(*) FROM funnel_period_levels l FULL JOIN (SELECT \"funnelId\", "
                    "period, \"periodStart\", level, count(*) AS n FROM funnel_entry_periods "
                    "GROUP BY 1, 2, 3, 4) x USING (\"funnelId\", period, \"periodStart\", level) "
                    "WHERE l.visitors IS DISTINCT FROM x.n"),
        0);
    ck_assert_int_gt(tl_query_ll(conn, "SELECT count(*) FROM funnel_period_levels"), 0);
    /* The counted step seconds the medians are read from: every visitor's seconds of
     * each step past the first, bucketed, and bucket totals equal to their values'. */
    ck_assert_int_eq(
        tl_query_ll(conn,
                    "SELECT count(*) FROM funnel_period_step_seconds v FULL JOIN (SELECT "
                    "b.\"funnelId\", b.period, b.\"periodStart\", (s.k + 1)::smallint AS step, "
                    "floor(ln(1 + s.v) * 46)::smallint AS bucket, s.v AS seconds, count(*) AS n "
                    "FROM funnel_entry_periods b, unnest(b.\"stepSeconds\") WITH ORDINALITY s(v, k) "
                    "GROUP BY 1, 2, 3, 4, 5, 6) x USING (\"funnelId\", period, \"periodStart\", "
                    "step, bucket, seconds) WHERE v.visitors IS DISTINCT FROM x.n"),
        0);
    ck_assert_int_eq(
        tl_query_ll(conn,
                    "SELECT count(*) FROM funnel_period_step_buckets k FULL JOIN (SELECT "
                    "\"funnelId\", period, \"periodStart\", step, bucket, sum(visitors) AS n FROM "
                    "funnel_period_step_seconds GROUP BY 1, 2, 3, 4, 5) x USING (\"funnelId\", "
                    "period, \"periodStart\", step, bucket) WHERE k.visitors IS DISTINCT FROM x.n"),
        0);
    ck_assert_int_gt(tl_query_ll(conn, "SELECT count(*) FROM funnel_period_step_buckets"), 0);
}

static void check_all(PGconn *conn, const data_t *d) {
    for (int f = 0; f < N_FUNNELS; f++) check_funnel(conn, d, f);
    check_levels(conn);
}

static void run_stage(const char *url) {
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s funnels --database '%s' --until-caught-up --metrics-port -1 "
             "--debounce-ms 0", tl_evpipe_bin(), url);
    int rc = tl_run(cmd, &out, &err);
    ck_assert_msg(rc == 0, "funnels exited %d: %s", rc, err ? err : "");
    free(out);
    free(err);
}

static char *results_fingerprint(PGconn *conn, const char *funnel) {
    char q[512];
    snprintf(q, sizeof(q),
             "SELECT coalesce(string_agg(r.id::text || r.\"computedAt\"::text || "
             "r.\"stepResults\"::text, ',' ORDER BY r.id), '') FROM funnel_results r JOIN "
             "funnels f ON f.id = r.\"funnelId\" WHERE f.name = '%s'",
             funnel);
    return tl_query_text(conn, q);
}

static data_t data;

START_TEST(test_funnels_equal_brute_force_all_periods_scopes_and_filters) {
    char *url = tl_db_create_migrated("funnels_oracle");
    PGconn *conn = tl_connect(url);
    generate(&data, 100, 11);
    insert(conn, &data, 11, 0, 80);
    define_funnels(conn);
    data.n_visitors = 80;
    run_stage(url);
    check_all(conn, &data);

    /* New events while one funnel changes: its whole-history pass must leave the marks
     * the other, current funnel still needs. */
    insert(conn, &data, 11, 80, 90);
    tl_exec(conn, "UPDATE funnels SET \"updatedAt\" = now() WHERE name = 'any'");
    data.n_visitors = 90;
    run_stage(url);
    check_all(conn, &data);

    /* PAUSED and ARCHIVED are left alone while new events arrive... */
    tl_exec(conn, "UPDATE funnels SET status = 'PAUSED' WHERE name = 'shop'");
    tl_exec(conn, "UPDATE funnels SET status = 'ARCHIVED' WHERE name = 'any'");
    char *shop = results_fingerprint(conn, "shop"), *any = results_fingerprint(conn, "any");
    insert(conn, &data, 11, 90, 100);
    run_stage(url);
    char *shop2 = results_fingerprint(conn, "shop"), *any2 = results_fingerprint(conn, "any");
    ck_assert_str_eq(shop, shop2);
    ck_assert_str_eq(any, any2);
    /* ...and re-activated (status only, updatedAt untouched) they are recomputed over
     * their whole history, the events that arrived meanwhile included. */
    tl_exec(conn, "UPDATE funnels SET status = 'ACTIVE'");
    data.n_visitors = 100;
    run_stage(url);
    check_all(conn, &data);

    /* Migration 0013 fills the step-second summaries of state computed before it: the
     * same rows the stage keeps, and the stage goes on from them. */
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' migrate down 1 --database '%s' 2>/dev/null && "
             "'%s' migrate up --database '%s' 2>/dev/null",
             tl_evpipe_bin(), url, tl_evpipe_bin(), url);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);
    check_levels(conn);
    snprintf(cmd, sizeof(cmd), "'%s' funnels --database '%s' --recompute 2026-10-01..2027-03-01 "
             "--until-caught-up --metrics-port -1 --debounce-ms 0 2>/dev/null",
             tl_evpipe_bin(), url);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);
    check_all(conn, &data);
    free(shop);
    free(any);
    free(shop2);
    free(any2);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

static pid_t spawn(const char *cmdline) {
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmdline, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid, int seconds) {
    for (int i = 0; i < seconds * 20; i++) {
        int st = 0;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("process did not finish within %d s", seconds);
    return -1;
}

/* SIGKILL at random moments while marks are absorbed one per batch, then two
 * instances finishing the work: the rows equal the brute force. */
START_TEST(test_funnels_kill9_and_two_instances) {
    char *url = tl_db_create_migrated("funnels_kill");
    PGconn *conn = tl_connect(url);
    generate(&data, 120, 23);
    insert(conn, &data, 23, 0, 40);
    define_funnels(conn);
    run_stage(url); /* whole history; then the rest arrives as marks */
    insert(conn, &data, 23, 40, 120);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "exec %s funnels --database '%s' --metrics-port -1 --debounce-ms 0 --batch-marks 1 "
             ">>/tmp/evpipe_test_funnels.log 2>&1",
             tl_evpipe_bin(), url);
    srand((unsigned)time(NULL));
    const char *left = "SELECT count(*) FROM dirty_hours WHERE stage = 'funnels'";
    for (int round = 0; round < 4; round++) {
        pid_t pid = spawn(cmd);
        usleep(150000 + (useconds_t)(rand() % 400) * 1000);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    ck_assert_int_gt(tl_query_ll(conn, left), 0);
    pid_t a = spawn(cmd), b = spawn(cmd);
    for (int i = 0; i < 1200 && tl_query_ll(conn, left) > 0; i++) usleep(100000);
    /* Settled: both idle once the marks are gone and the whole-history pass is done. */
    usleep(1000000);
    kill(a, SIGTERM);
    kill(b, SIGTERM);
    ck_assert_int_eq(wait_exit(a, 30), 0);
    ck_assert_int_eq(wait_exit(b, 30), 0);
    ck_assert_int_eq(tl_query_ll(conn, left), 0);
    check_all(conn, &data);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

static Suite *funnels_oracle_suite(void) {
    Suite *s = suite_create("funnels_oracle");
    TCase *tc = tcase_create("oracle");
    tcase_set_timeout(tc, 240);
    if (tl_database_url()) {
        tcase_add_test(tc, test_funnels_equal_brute_force_all_periods_scopes_and_filters);
        tcase_add_test(tc, test_funnels_kill9_and_two_instances);
    }
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(funnels_oracle_suite()) == 0 ? 0 : 1; }
