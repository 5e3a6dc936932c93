/* pg_sink.c — PostgreSQL writer and session-state loader of the ingest stage (see pg_sink.h). */
#include "sinks/pg_sink.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include "common/cli.h"
#include "common/log.h"
#include "sinks/pg_plan.h"
#include "transforms/device.h"
#include "transforms/url.h"

#define COPY_CHUNK_BYTES (1u << 20)   /* COPY data leaves in chunks of at most this */
#define PARAM_MAX_BYTES (256u << 20)  /* cap of one array parameter (load requests, ids) */
#define TS_MIN_MS 0LL                 /* load windows are clamped to event time range */
#define TS_MAX_MS 253402300799999LL   /* 9999-12-31T23:59:59.999Z */

/* Epoch milliseconds (bigint) to TIMESTAMPTZ, exactly (to_timestamp alone goes through a
 * double of the whole value and loses milliseconds near the end of the range). */
#define TS(x) "(to_timestamp((" x ") / 1000) + ((" x ") % 1000) * INTERVAL '1 millisecond')"
/* TIMESTAMPTZ(3) to epoch milliseconds (bigint), exactly. */
#define MS(x) "(extract(epoch FROM " x ") * 1000)::bigint"

/* ---- staging tables: one set per connection, emptied by every COMMIT ------------------ */

static const char k_setup_sql[] =
    "SET temp_buffers = '64MB';"
    "CREATE TEMP TABLE IF NOT EXISTS evpipe_stage_sessions ("
    " id uuid, \"visitorId\" text, \"userId\" text, started bigint, ended bigint,"
    " duration int, \"pageViewCount\" int, \"eventCount\" int, \"isBounce\" boolean,"
    " \"entryPage\" text, \"exitPage\" text, referrer text, \"referrerDomain\" text,"
    " \"utmSource\" text, \"utmMedium\" text, \"utmCampaign\" text, \"utmTerm\" text,"
    " \"utmContent\" text, \"deviceType\" \"DeviceType\", browser text,"
    " \"browserVersion\" text, os text, \"osVersion\" text, \"userAgent\" text,"
    " country text, region text, city text, language text, \"screenWidth\" int,"
    " \"screenHeight\" int, \"startReason\" \"SessionStartReason\""
    ") ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS evpipe_stage_repoints ("
    " \"eventId\" text, \"sessionId\" uuid"
    ") ON COMMIT DELETE ROWS;"
    /* Stored page views to update: visitorId NULL for a change the sessionizer made
     * (unconditional), set for a new page view found already stored (updated only when
     * it is the same visitor's). */
    "CREATE TEMP TABLE IF NOT EXISTS evpipe_stage_page_views ("
    " \"eventId\" text, \"sessionId\" uuid, \"timeOnPage\" int, \"scrollDepth\" int,"
    " \"visitorId\" text"
    ") ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS evpipe_stage_conversions ("
    " \"eventId\" text, \"sessionId\" uuid, \"visitorId\" text, \"userId\" text,"
    " type \"EventType\", value numeric, currency text, properties jsonb, occurred bigint"
    ") ON COMMIT DELETE ROWS;";

static const char k_copy_sessions[] = "COPY evpipe_stage_sessions FROM STDIN";
static const char k_copy_conversions[] = "COPY evpipe_stage_conversions FROM STDIN";
static const char k_copy_repoints[] = "COPY evpipe_stage_repoints FROM STDIN";
static const char k_copy_page_views[] = "COPY evpipe_stage_page_views FROM STDIN";
/* New rows go straight into their tables (no staging, no INSERT ... SELECT): the batch's
 * eventIds already stored are found first (ST_EXISTING) and left out. */
static const char k_copy_events[] =
    "COPY analytics_events (id, \"eventId\", \"sessionId\", type, name, \"visitorId\","
    " \"userId\", url, path, properties, \"occurredAt\", \"receivedAt\", referrer,"
    " \"pageViewId\", \"timeOnPage\", \"scrollDepth\") FROM STDIN";
static const char k_copy_new_page_views[] =
    "COPY page_views (id, \"eventId\", \"sessionId\", \"visitorId\", url, path, title, referrer,"
    " \"timeOnPage\", \"scrollDepth\", \"viewedAt\") FROM STDIN";
/* A unique violation on these keys while copying new rows can only come from another
 * writer that committed the same eventId after ST_EXISTING looked (the batch itself is
 * free of duplicates): TRANSIENT, since the retry finds the row and skips it. */
static const char *const k_race_keys[] = {"analytics_events_eventId_key",
                                          "page_views_eventId_key", NULL};

/* ---- statements --------------------------------------------------------------------- */

/* Prepared once per connection: their plans do not depend on how many rows are staged
 * (one staging table read in full, conflicts resolved through unique indexes). */
typedef struct stmt_s {
    const char *name;
    const char *sql;
    int n_params;
} stmt_t;

enum {
    ST_UPSERT_SESSIONS,
    ST_EXISTING,
    ST_DELETE_SESSIONS,
    ST_UPSERT_OFFSETS,
    ST_READ_OFFSETS,
    ST_LOAD_SESSIONS,
    ST_LOAD_EVENTS,
    ST_LOAD_EARLIER,
    ST_LOAD_LATEST,
    ST_COUNT
};

static const stmt_t k_stmts[ST_COUNT] = {
    [ST_UPSERT_SESSIONS] =
        {"evpipe_upsert_sessions",
         "INSERT INTO analytics_sessions (id, \"visitorId\", \"userId\", \"startedAt\","
         " \"endedAt\", duration, \"pageViewCount\", \"eventCount\", \"isBounce\","
         " \"entryPage\", \"exitPage\", referrer, \"referrerDomain\", \"utmSource\","
         " \"utmMedium\", \"utmCampaign\", \"utmTerm\", \"utmContent\", \"deviceType\","
         " browser, \"browserVersion\", os, \"osVersion\", \"userAgent\", country, region,"
         " city, language, \"screenWidth\", \"screenHeight\", \"startReason\")"
         " SELECT id, \"visitorId\", \"userId\", " TS("started") ", " TS("ended") ","
         " duration, \"pageViewCount\", \"eventCount\", \"isBounce\", \"entryPage\","
         " \"exitPage\", referrer, \"referrerDomain\", \"utmSource\", \"utmMedium\","
         " \"utmCampaign\", \"utmTerm\", \"utmContent\", \"deviceType\", browser,"
         " \"browserVersion\", os, \"osVersion\", \"userAgent\", country, region, city,"
         " language, \"screenWidth\", \"screenHeight\", \"startReason\""
         " FROM evpipe_stage_sessions"
         " ON CONFLICT (id) DO UPDATE SET \"visitorId\" = EXCLUDED.\"visitorId\","
         " \"userId\" = EXCLUDED.\"userId\", \"startedAt\" = EXCLUDED.\"startedAt\","
         " \"endedAt\" = EXCLUDED.\"endedAt\", duration = EXCLUDED.duration,"
         " \"pageViewCount\" = EXCLUDED.\"pageViewCount\","
         " \"eventCount\" = EXCLUDED.\"eventCount\", \"isBounce\" = EXCLUDED.\"isBounce\","
         " \"entryPage\" = EXCLUDED.\"entryPage\", \"exitPage\" = EXCLUDED.\"exitPage\","
         " referrer = EXCLUDED.referrer, \"referrerDomain\" = EXCLUDED.\"referrerDomain\","
         " \"utmSource\" = EXCLUDED.\"utmSource\", \"utmMedium\" = EXCLUDED.\"utmMedium\","
         " \"utmCampaign\" = EXCLUDED.\"utmCampaign\", \"utmTerm\" = EXCLUDED.\"utmTerm\","
         " \"utmContent\" = EXCLUDED.\"utmContent\", \"deviceType\" = EXCLUDED.\"deviceType\","
         " browser = EXCLUDED.browser, \"browserVersion\" = EXCLUDED.\"browserVersion\","
         " os = EXCLUDED.os, \"osVersion\" = EXCLUDED.\"osVersion\","
         " \"userAgent\" = EXCLUDED.\"userAgent\", country = EXCLUDED.country,"
         " region = EXCLUDED.region, city = EXCLUDED.city, language = EXCLUDED.language,"
         " \"screenWidth\" = EXCLUDED.\"screenWidth\","
         " \"screenHeight\" = EXCLUDED.\"screenHeight\","
         " \"startReason\" = EXCLUDED.\"startReason\", \"updatedAt\" = now()",
         0},
    /* Which of the batch's new eventIds ($1), new page views ($2) and new conversions
     * ($3) are stored, and for which visitor: 0 for an event, 1 for a page view, 2 for a
     * conversion. */
    [ST_EXISTING] =
        {"evpipe_existing",
         "SELECT 0, \"eventId\", \"visitorId\" FROM analytics_events"
         " WHERE \"eventId\" = ANY($1::text[])"
         " UNION ALL"
         " SELECT 1, \"eventId\", \"visitorId\" FROM page_views WHERE \"eventId\" = ANY($2::text[])"
         " UNION ALL"
         " SELECT 2, \"eventId\", \"visitorId\" FROM conversion_events"
         " WHERE \"eventId\" = ANY($3::text[])",
         3},
    [ST_DELETE_SESSIONS] = {"evpipe_delete_sessions",
                            "DELETE FROM analytics_sessions WHERE id = ANY($1::uuid[])", 1},
    [ST_UPSERT_OFFSETS] =
        {"evpipe_upsert_offsets",
         "INSERT INTO consumer_offsets (\"consumerGroup\", topic, partition, \"nextOffset\","
         " \"updatedAt\") SELECT $1, $2, u.p, u.o, now()"
         " FROM unnest($3::int[], $4::bigint[]) AS u(p, o)"
         " ON CONFLICT (\"consumerGroup\", topic, partition) DO UPDATE"
         " SET \"nextOffset\" = EXCLUDED.\"nextOffset\", \"updatedAt\" = now()",
         4},
    [ST_READ_OFFSETS] = {"evpipe_read_offsets",
                         "SELECT partition, \"nextOffset\" FROM consumer_offsets"
                         " WHERE \"consumerGroup\" = $1 AND topic = $2"
                         " AND partition = ANY($3::int[])",
                         3},
    /* The sessions to load (contract in sessionize.h), per visitor: those with "endedAt" >=
     * a bound. The bound starts at since ($2), lowered to the "endedAt" of the visitor's
     * stored sessions holding a page view that new events refer to ($3/$4: visitor and
     * eventId pairs); then, while a selected session started by maximum duration, campaign
     * or midnight needs its predecessor, lowered to the latest "endedAt" strictly before
     * that session's "startedAt" (or to its "startedAt" when none: the sessions ending in
     * that very millisecond are then selected too). Each step of the recursion only looks
     * at the sessions the previous step added ("endedAt" in [bound, prev)), so a chain of k
     * sessions costs k index probes, and the whole walk stays in this one statement. */
    [ST_LOAD_SESSIONS] =
        {"evpipe_load_sessions",
         "WITH RECURSIVE req(vid, since) AS (SELECT * FROM unnest($1::text[], $2::bigint[])),"
         " pv(vid, eid) AS (SELECT * FROM unnest($3::text[], $4::text[])),"
         " b(vid, bound, prev) AS ("
         "  SELECT r.vid, LEAST(" TS("r.since") ","
         "   (SELECT min(a.\"endedAt\") FROM pv JOIN analytics_events e"
         "     ON e.\"eventId\" = pv.eid AND e.\"visitorId\" = pv.vid"
         "    JOIN analytics_sessions a ON a.id = e.\"sessionId\" AND a.\"visitorId\" = pv.vid"
         "    WHERE pv.vid = r.vid)), NULL::timestamptz"
         "  FROM req r"
         "  UNION ALL"
         "  SELECT b.vid, n.bound, b.bound FROM b CROSS JOIN LATERAL ("
         "   SELECT min(COALESCE((SELECT max(p.\"endedAt\") FROM analytics_sessions p"
         "     WHERE p.\"visitorId\" = b.vid AND p.\"endedAt\" < x.\"startedAt\"),"
         "     x.\"startedAt\")) AS bound"
         "   FROM analytics_sessions x WHERE x.\"visitorId\" = b.vid"
         "    AND x.\"endedAt\" >= b.bound AND (b.prev IS NULL OR x.\"endedAt\" < b.prev)"
         "    AND x.\"startReason\" NOT IN ('FIRST', 'INACTIVITY')) n"
         "  WHERE n.bound < b.bound),"
         " fb(vid, bound) AS (SELECT vid, min(bound) FROM b GROUP BY vid)"
         " SELECT a.id, a.\"visitorId\", a.\"userId\", " MS("a.\"startedAt\"") ","
         " " MS("a.\"endedAt\"") ", a.duration, a.\"pageViewCount\", a.\"eventCount\","
         " a.\"isBounce\", a.\"entryPage\", a.\"exitPage\", a.referrer, a.\"referrerDomain\","
         " a.\"utmSource\", a.\"utmMedium\", a.\"utmCampaign\", a.\"utmTerm\", a.\"utmContent\","
         " a.\"deviceType\", a.browser, a.\"browserVersion\", a.os, a.\"osVersion\","
         " a.\"userAgent\", a.country, a.region, a.city, a.language, a.\"screenWidth\","
         " a.\"screenHeight\", a.\"startReason\","
         " EXISTS (SELECT 1 FROM conversion_events c WHERE c.\"sessionId\" = a.id)"
         " FROM (SELECT DISTINCT a.id FROM fb JOIN analytics_sessions a"
         "  ON a.\"visitorId\" = fb.vid AND a.\"endedAt\" >= fb.bound) d"
         " JOIN analytics_sessions a ON a.id = d.id",
         4},
    [ST_LOAD_EVENTS] =
        {"evpipe_load_events",
         "SELECT e.\"sessionId\", e.\"eventId\", e.\"visitorId\", " MS("e.\"occurredAt\"") ","
         " e.type, e.\"userId\", e.path, e.url, e.\"pageViewId\", e.\"timeOnPage\","
         " e.\"scrollDepth\", pv.\"timeOnPage\", pv.\"scrollDepth\""
         " FROM analytics_events e LEFT JOIN page_views pv"
         "  ON e.type = 'PAGE_VIEW' AND pv.\"eventId\" = e.\"eventId\""
         " WHERE e.\"sessionId\" = ANY($1::uuid[])",
         1},
    /* Loaded sessions are a visitor's latest ones (a suffix of its history), so older
     * history exists iff the visitor has a session that was not loaded. */
    [ST_LOAD_EARLIER] =
        {"evpipe_load_earlier",
         "SELECT r.ord, EXISTS (SELECT 1 FROM analytics_sessions x"
         "  WHERE x.\"visitorId\" = r.vid AND x.id NOT IN (SELECT unnest($2::uuid[])))"
         " FROM unnest($1::text[]) WITH ORDINALITY AS r(vid, ord) ORDER BY r.ord",
         2},
    /* Per requested visitor ($1, since $2): whether it has stored sessions, and whether
     * one ends at or after since. Most requests are for visitors that have none or only
     * older ones (first seen, or back after an idle spell): the walk above would load
     * nothing for them, so this index-only probe settles them without it. */
    [ST_LOAD_LATEST] =
        {"evpipe_load_latest",
         "SELECT r.ord, l.m IS NOT NULL, COALESCE(l.m >= " TS("r.since") ", false)"
         " FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS r(vid, since, ord)"
         " CROSS JOIN LATERAL (SELECT max(x.\"endedAt\") AS m FROM analytics_sessions x"
         "  WHERE x.\"visitorId\" = r.vid) l ORDER BY r.ord",
         2},
};

/* Statements joining staging tables with each other or with the big tables are planned
 * for each batch (PQexecParams, not prepared): a cached plan made for the first batch's
 * sizes (e.g. a hash join scanning analytics_events while it was small) would stay
 * with the connection as the tables grow. */
static const char k_repoint_events[] =
    "UPDATE analytics_events e SET \"sessionId\" = r.\"sessionId\""
    " FROM evpipe_stage_repoints r"
    " WHERE e.\"eventId\" = r.\"eventId\" AND e.\"sessionId\" IS DISTINCT FROM r.\"sessionId\"";
static const char k_repoint_page_views[] =
    "UPDATE page_views v SET \"sessionId\" = r.\"sessionId\", \"updatedAt\" = now()"
    " FROM evpipe_stage_repoints r"
    " WHERE v.\"eventId\" = r.\"eventId\" AND v.\"sessionId\" IS DISTINCT FROM r.\"sessionId\"";
static const char k_repoint_conversions[] =
    "UPDATE conversion_events c SET \"sessionId\" = r.\"sessionId\""
    " FROM evpipe_stage_repoints r"
    " WHERE c.\"eventId\" = r.\"eventId\" AND c.\"sessionId\" IS DISTINCT FROM r.\"sessionId\"";
/* Conversions carry their session's attribution: keep it equal after a session changed
 * (a merge, or a late event that became the first to carry a UTM parameter). */
static const char k_refresh_attribution[] =
    "UPDATE conversion_events c SET \"utmSource\" = s.\"utmSource\","
    " \"utmMedium\" = s.\"utmMedium\", \"utmCampaign\" = s.\"utmCampaign\""
    " FROM evpipe_stage_sessions s WHERE c.\"sessionId\" = s.id"
    " AND (c.\"utmSource\", c.\"utmMedium\", c.\"utmCampaign\")"
    "  IS DISTINCT FROM (s.\"utmSource\", s.\"utmMedium\", s.\"utmCampaign\")";
static const char k_update_page_views[] =
    "UPDATE page_views v SET \"sessionId\" = p.\"sessionId\", \"timeOnPage\" = p.\"timeOnPage\","
    " \"scrollDepth\" = p.\"scrollDepth\", \"updatedAt\" = now()"
    " FROM evpipe_stage_page_views p WHERE v.\"eventId\" = p.\"eventId\""
    " AND (p.\"visitorId\" IS NULL OR v.\"visitorId\" = p.\"visitorId\")";
static const char k_insert_conversions[] =
    "INSERT INTO conversion_events (\"sessionId\", \"eventId\", \"visitorId\", \"userId\", type,"
    " value, currency, \"utmSource\", \"utmMedium\", \"utmCampaign\", metadata, \"occurredAt\")"
    " SELECT e.\"sessionId\", e.\"eventId\", e.\"visitorId\", e.\"userId\", e.type, e.value,"
    " e.currency, s.\"utmSource\", s.\"utmMedium\", s.\"utmCampaign\", e.properties,"
    " " TS("e.occurred")
    " FROM evpipe_stage_conversions e JOIN analytics_sessions s ON s.id = e.\"sessionId\""
    " ON CONFLICT (\"eventId\") DO NOTHING";

/* ---- the sink ----------------------------------------------------------------------- */

/* A text buffer that grows up to max bytes, then refuses (overflow set). */
typedef struct textbuf_s {
    char *data;
    size_t len, cap, max;
    bool overflow, oom;
} textbuf_t;

struct sink_pg_s {
    char *conninfo;
    PGconn *conn;
    bool ready;      /* staging tables and prepared statements exist on conn */
    bool closing;    /* the server sent a FATAL message outside any query: it is closing
                        conn (pg_terminate_backend, shutdown), even if EOF is not read yet */
    char *copy_buf;  /* COPY_CHUNK_BYTES */
    size_t copy_len;
    const char *copy_failed; /* why the COPY is aborted at its end (a chunk could not be
                                sent, no random bytes), or NULL */
    unsigned char random[4096]; /* pool for row ids; random_pos bytes of it are used */
    size_t random_pos;
    bool row_start;
    bool race_transient; /* copying new rows: a unique violation on k_race_keys is a race */
    bool probe_stored;   /* look for stored eventIds before copying (see sink_pg_write) */
    sink_pg_stats_t stats;
};

/* Rows changed by the open write transaction, added to the stats at COMMIT. */
typedef struct counts_s {
    uint64_t sessions, deleted, events, repointed, page_views, conversions, offsets;
} counts_t;

const char *sink_pg_status_name(sink_pg_status_t status) {
    switch (status) {
    case SINK_PG_OK: return "ok";
    case SINK_PG_TRANSIENT: return "transient";
    case SINK_PG_DATA: return "data";
    case SINK_PG_CONFLICT: return "conflict";
    case SINK_PG_FATAL: return "fatal";
    }
    return "unknown";
}

static void set_error(sink_pg_error_t *err, sink_pg_status_t status, const char *sqlstate,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_error(sink_pg_error_t *err, sink_pg_status_t status, const char *sqlstate,
                      const char *fmt, ...) {
    err->status = status;
    snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate ? sqlstate : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    /* libpq messages end with a newline; keep one line. */
    size_t n = strlen(err->message);
    while (n > 0 && (err->message[n - 1] == '\n' || err->message[n - 1] == ' '))
        err->message[--n] = '\0';
    for (char *p = err->message; *p; p++)
        if (*p == '\n') *p = ' ';
}

static void clear_error(sink_pg_error_t *err) {
    err->status = SINK_PG_OK;
    err->sqlstate[0] = '\0';
    err->message[0] = '\0';
}

/* Which retry policy an error calls for (see pg_sink.h). */
static sink_pg_status_t classify(const char *sqlstate, PGconn *conn) {
    if (!conn || PQstatus(conn) != CONNECTION_OK) return SINK_PG_TRANSIENT;
    if (!sqlstate || strlen(sqlstate) != 5) return SINK_PG_FATAL;
    if (strcmp(sqlstate, "25006") == 0) return SINK_PG_TRANSIENT; /* read-only: failover */
    static const char *const transient[] = {"08", "40", "53", "55", "57", "58"};
    static const char *const data[] = {"22", "23", "54"};
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        if (strncmp(sqlstate, transient[i], 2) == 0) return SINK_PG_TRANSIENT;
    for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++)
        if (strncmp(sqlstate, data[i], 2) == 0) return SINK_PG_DATA;
    return SINK_PG_FATAL;
}

/* Fills *err from a failed result (or from the connection when res is NULL) and returns -1. */
static int result_error(sink_pg_t *s, const PGresult *res, const char *what,
                        sink_pg_error_t *err) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    if (!primary) primary = s->conn ? PQerrorMessage(s->conn) : "no connection";
    if (!primary || !*primary) primary = "unknown error";
    sink_pg_status_t st = classify(state, s->conn);
    if (st == SINK_PG_DATA && s->race_transient && state && strcmp(state, "23505") == 0) {
        const char *key = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        for (size_t i = 0; key && k_race_keys[i]; i++)
            if (strcmp(key, k_race_keys[i]) == 0) st = SINK_PG_TRANSIENT;
    }
    if (detail)
        set_error(err, st, state, "%s: %s (%s)", what, primary, detail);
    else
        set_error(err, st, state, "%s: %s", what, primary);
    return -1;
}

/* Notices are not logged. An error the server sends while the connection is idle (a
 * FATAL before it closes the session) reaches libpq's notice receiver: remember it. */
static void notice_receive(void *arg, const PGresult *res) {
    sink_pg_t *s = arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (!sev) sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
    if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)) s->closing = true;
}

sink_pg_t *sink_pg_new(const char *conninfo, char *errstr, size_t errstr_size) {
    if (!conninfo || !*conninfo) {
        snprintf(errstr, errstr_size, "no database given (conninfo or postgresql:// URL)");
        return NULL;
    }
    /* A plain word is a database name; anything else must parse as conninfo or URL. */
    if (strchr(conninfo, '=') || strncmp(conninfo, "postgres://", 11) == 0 ||
        strncmp(conninfo, "postgresql://", 13) == 0) {
        char *msg = NULL;
        PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
        if (!opts) {
            snprintf(errstr, errstr_size, "invalid database conninfo: %s",
                     msg ? msg : "out of memory");
            if (msg) PQfreemem(msg);
            size_t n = strlen(errstr);
            while (n > 0 && errstr[n - 1] == '\n') errstr[--n] = '\0';
            return NULL;
        }
        PQconninfoFree(opts);
    }
    sink_pg_t *s = calloc(1, sizeof(*s));
    if (s) s->conninfo = strdup(conninfo);
    if (s) s->copy_buf = malloc(COPY_CHUNK_BYTES);
    if (s) s->random_pos = sizeof(s->random); /* empty: filled on first use */
    if (s) s->probe_stored = true; /* the first write after a start may be a replay */
    if (!s || !s->conninfo || !s->copy_buf) {
        snprintf(errstr, errstr_size, "out of memory");
        sink_pg_destroy(s);
        return NULL;
    }
    return s;
}

void sink_pg_destroy(sink_pg_t *s) {
    if (!s) return;
    if (s->conn) PQfinish(s->conn);
    free(s->conninfo);
    free(s->copy_buf);
    free(s);
}

void sink_pg_stats(const sink_pg_t *s, sink_pg_stats_t *out) { *out = s->stats; }

/* Forgets the connection entirely (its state is unknown); the next call reconnects. */
static void drop_connection(sink_pg_t *s) {
    if (s->conn) PQfinish(s->conn);
    s->conn = NULL;
    s->ready = false;
}

/* Creates the staging tables and prepares the statements on a fresh connection. */
static int setup_connection(sink_pg_t *s, sink_pg_error_t *err) {
    PGresult *res = PQexec(s->conn, k_setup_sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        result_error(s, res, "creating the staging tables", err);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    for (int i = 0; i < ST_COUNT; i++) {
        res = PQprepare(s->conn, k_stmts[i].name, k_stmts[i].sql, k_stmts[i].n_params, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            char what[96];
            snprintf(what, sizeof(what), "preparing %s", k_stmts[i].name);
            result_error(s, res, what, err);
            PQclear(res);
            return -1;
        }
        PQclear(res);
    }
    s->ready = true;
    return 0;
}

/* Reads whatever an idle connection has pending (a FATAL message, end of file), without
 * blocking. Returns false when the server has closed it. */
static bool idle_connection_alive(sink_pg_t *s) {
    PGconn *conn = s->conn;
    for (int i = 0; i < 4; i++) {
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        if (pfd.fd < 0) return false;
        if (poll(&pfd, 1, 0) <= 0) break;
        if (PQconsumeInput(conn) == 0) return false;
        if (PQstatus(conn) != CONNECTION_OK || s->closing) return false;
    }
    return PQstatus(conn) == CONNECTION_OK && !s->closing;
}

/* Makes sure there is an idle, set-up connection: connects on first use, resets a
 * broken one. Returns 0, or -1 with *err filled (TRANSIENT when unreachable). */
static int ensure_connection(sink_pg_t *s, sink_pg_error_t *err) {
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK && s->ready &&
        PQtransactionStatus(s->conn) == PQTRANS_IDLE) {
        /* A connection the server closed while it was idle (restart, idle timeout,
         * pg_terminate_backend) shows here as end of file, without blocking: reconnect
         * now rather than fail the call. */
        if (idle_connection_alive(s)) return 0;
        EV_WARN("PostgreSQL: the idle connection was closed by the server; reconnecting");
    }
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK) {
        /* Alive but not idle or not set up: start again from a clean session. */
        drop_connection(s);
    }
    bool reset = s->conn != NULL;
    if (reset) {
        PQreset(s->conn);
    } else {
        /* Defaults first: the caller's conninfo (expanded from dbname) overrides them;
         * the encoding comes last because COPY data is UTF-8. */
        static const char *const keys[] = {"connect_timeout",   "keepalives",
                                           "keepalives_idle",   "keepalives_interval",
                                           "keepalives_count",  "application_name",
                                           "dbname",            "client_encoding",
                                           NULL};
        const char *values[] = {"10", "1", "30", "10", "3", "evpipe", s->conninfo, "UTF8", NULL};
        s->conn = PQconnectdbParams(keys, values, 1);
        if (!s->conn) {
            set_error(err, SINK_PG_FATAL, NULL, "out of memory connecting to PostgreSQL");
            return -1;
        }
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
        set_error(err, SINK_PG_TRANSIENT, NULL, "cannot connect to PostgreSQL: %s",
                  PQerrorMessage(s->conn));
        return -1;
    }
    s->closing = false;
    PQsetNoticeReceiver(s->conn, notice_receive, s);
    s->ready = false;
    s->stats.connects++;
    if (s->stats.connects > 1) EV_INFO("PostgreSQL: reconnected (%s)", reset ? "reset" : "new");
    if (setup_connection(s, err) != 0) {
        /* Leave nothing half set up behind: the next attempt starts a new session. */
        drop_connection(s);
        return -1;
    }
    return 0;
}

/* Ends a failed write: rolls back when the connection still works, else leaves it for
 * the next call to reset. */
static void abandon_transaction(sink_pg_t *s) {
    if (!s->conn) return;
    if (PQstatus(s->conn) != CONNECTION_OK) {
        s->ready = false;
        return;
    }
    if (PQtransactionStatus(s->conn) == PQTRANS_IDLE) return;
    PGresult *res = PQexec(s->conn, "ROLLBACK");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok || PQtransactionStatus(s->conn) != PQTRANS_IDLE) drop_connection(s);
}

static void count_error(sink_pg_t *s, const sink_pg_error_t *err) {
    switch (err->status) {
    case SINK_PG_TRANSIENT: s->stats.transient_errors++; break;
    case SINK_PG_DATA: s->stats.data_errors++; break;
    case SINK_PG_CONFLICT: s->stats.conflict_errors++; break;
    case SINK_PG_FATAL: s->stats.fatal_errors++; break;
    case SINK_PG_OK: break;
    }
}

/* Checks a command's result; adds the affected row count to *rows when rows != NULL.
 * Takes ownership of res. */
static int check_command(sink_pg_t *s, PGresult *res, const char *what, uint64_t *rows,
                         sink_pg_error_t *err) {
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        result_error(s, res, what, err);
        PQclear(res);
        return -1;
    }
    if (rows) {
        long long n = 0;
        const char *t = PQcmdTuples(res);
        if (t && *t && ev_parse_ll(t, &n) == 0 && n > 0) *rows += (uint64_t)n;
    }
    PQclear(res);
    return 0;
}

static int exec_simple(sink_pg_t *s, const char *sql, const char *what, sink_pg_error_t *err) {
    return check_command(s, PQexec(s->conn, sql), what, NULL, err);
}

static int exec_prepared(sink_pg_t *s, int stmt, const char *const *params, uint64_t *rows,
                         sink_pg_error_t *err) {
    PGresult *res = PQexecPrepared(s->conn, k_stmts[stmt].name, k_stmts[stmt].n_params, params,
                                   NULL, NULL, 0);
    return check_command(s, res, k_stmts[stmt].name, rows, err);
}

static int exec_planned(sink_pg_t *s, const char *sql, const char *what, uint64_t *rows,
                        sink_pg_error_t *err) {
    return check_command(s, PQexecParams(s->conn, sql, 0, NULL, NULL, NULL, NULL, 0), what,
                         rows, err);
}

/* Runs a prepared query returning rows; *out owns the result on success. */
static int query_prepared(sink_pg_t *s, int stmt, const char *const *params, PGresult **out,
                          sink_pg_error_t *err) {
    PGresult *res = PQexecPrepared(s->conn, k_stmts[stmt].name, k_stmts[stmt].n_params, params,
                                   NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        result_error(s, res, k_stmts[stmt].name, err);
        PQclear(res);
        return -1;
    }
    *out = res;
    return 0;
}

/* ---- text buffers for array parameters ---------------------------------------------- */

static void tb_init(textbuf_t *tb, size_t max) {
    memset(tb, 0, sizeof(*tb));
    tb->max = max;
}

static void tb_free(textbuf_t *tb) {
    free(tb->data);
    memset(tb, 0, sizeof(*tb));
}

static void tb_put(textbuf_t *tb, const char *p, size_t n) {
    if (tb->overflow || tb->oom) return;
    if (tb->len + n + 1 > tb->cap) {
        if (tb->len + n + 1 > tb->max) {
            tb->overflow = true;
            return;
        }
        size_t cap = tb->cap ? tb->cap : 256;
        while (cap < tb->len + n + 1) cap *= 2;
        if (cap > tb->max) cap = tb->max;
        char *data = realloc(tb->data, cap);
        if (!data) {
            tb->oom = true;
            return;
        }
        tb->data = data;
        tb->cap = cap;
    }
    memcpy(tb->data + tb->len, p, n);
    tb->len += n;
    tb->data[tb->len] = '\0';
}

static void tb_str(textbuf_t *tb, const char *s) { tb_put(tb, s, strlen(s)); }

/* An array literal element separator: "{" before the first, "," after. */
static void tb_next(textbuf_t *tb) { tb_put(tb, tb->len == 0 ? "{" : ",", 1); }

/* Finishes an array literal ("{}" when empty). */
static void tb_close(textbuf_t *tb) {
    if (tb->len == 0) tb_put(tb, "{", 1);
    tb_put(tb, "}", 1);
}

/* Appends a double-quoted array element (", \ escaped). */
static void tb_quoted(textbuf_t *tb, const char *s) {
    tb_put(tb, "\"", 1);
    for (const char *p = s;;) {
        size_t run = strcspn(p, "\"\\");
        tb_put(tb, p, run);
        p += run;
        if (!*p) break;
        tb_put(tb, "\\", 1);
        tb_put(tb, p, 1);
        p++;
    }
    tb_put(tb, "\"", 1);
}

static void tb_i64(textbuf_t *tb, long long v) {
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", v);
    tb_put(tb, num, (size_t)n);
}

/* Returns 0, or -1 with *err set when the buffer overflowed or memory ran out. */
static int tb_check(const textbuf_t *tb, const char *what, sink_pg_error_t *err) {
    if (tb->oom) {
        set_error(err, SINK_PG_FATAL, NULL, "%s: out of memory", what);
        return -1;
    }
    if (tb->overflow) {
        set_error(err, SINK_PG_FATAL, NULL, "%s: parameter larger than %u bytes", what,
                  PARAM_MAX_BYTES);
        return -1;
    }
    return 0;
}

/* ---- COPY (text format) ------------------------------------------------------------- */

static void copy_flush(sink_pg_t *s) {
    if (s->copy_len == 0) return;
    if (!s->copy_failed && PQputCopyData(s->conn, s->copy_buf, (int)s->copy_len) != 1)
        s->copy_failed = "client could not send the data";
    s->copy_len = 0;
}

static void copy_put(sink_pg_t *s, const char *p, size_t n) {
    while (n > 0) {
        if (s->copy_len == COPY_CHUNK_BYTES) copy_flush(s);
        size_t k = COPY_CHUNK_BYTES - s->copy_len;
        if (k > n) k = n;
        memcpy(s->copy_buf + s->copy_len, p, k);
        s->copy_len += k;
        p += k;
        n -= k;
    }
}

static void copy_sep(sink_pg_t *s) {
    if (!s->row_start) copy_put(s, "\t", 1);
    s->row_start = false;
}

static void copy_row_end(sink_pg_t *s) {
    copy_put(s, "\n", 1);
    s->row_start = true;
}

static void col_null(sink_pg_t *s) {
    copy_sep(s);
    copy_put(s, "\\N", 2);
}

/* A text column: NULL as \N; backslash, tab, newline and carriage return escaped (the
 * only bytes COPY's text format treats specially; C strings cannot hold NUL). */
static void col_text(sink_pg_t *s, const char *str) {
    if (!str) {
        col_null(s);
        return;
    }
    copy_sep(s);
    for (const char *p = str;;) {
        size_t run = strcspn(p, "\\\t\n\r");
        copy_put(s, p, run);
        p += run;
        switch (*p) {
        case '\0': return;
        case '\\': copy_put(s, "\\\\", 2); break;
        case '\t': copy_put(s, "\\t", 2); break;
        case '\n': copy_put(s, "\\n", 2); break;
        default: copy_put(s, "\\r", 2); break;
        }
        p++;
    }
}

static void col_i64(sink_pg_t *s, int64_t v) {
    char num[24], *end = num + sizeof(num), *p = end;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    copy_sep(s);
    copy_put(s, p, (size_t)(end - p));
}

static void col_bool(sink_pg_t *s, bool v) {
    copy_sep(s);
    copy_put(s, v ? "t" : "f", 1);
}

static void col_double(sink_pg_t *s, double v) {
    char num[40];
    int n = snprintf(num, sizeof(num), "%.17g", v);
    copy_sep(s);
    copy_put(s, num, (size_t)n);
}

/* Epoch milliseconds as a TIMESTAMPTZ literal in UTC ("2024-11-25 13:20:00.000+00",
 * " BC" before year 1), exact for the whole int64 range the server accepts. */
static void col_ts(sink_pg_t *s, int64_t ms) {
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) {
        rem += 86400000;
        days--;
    }
    /* Civil date of a day count since 1970-01-01 (proleptic Gregorian). */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);
    bool bc = year <= 0;
    if (bc) year = 1 - year;
    char text[64];
    int n = snprintf(text, sizeof(text), "%04lld-%02lld-%02lld %02lld:%02lld:%02lld.%03lld+00%s",
                     (long long)year, (long long)month, (long long)day,
                     (long long)(rem / 3600000), (long long)(rem / 60000 % 60),
                     (long long)(rem / 1000 % 60), (long long)(rem % 1000), bc ? " BC" : "");
    copy_sep(s);
    copy_put(s, text, (size_t)n);
}

/* A new random (version 4) UUID, as gen_random_uuid(), the tables' default, would make:
 * made here, the server does not spend its time on it for every row. */
static void col_new_uuid(sink_pg_t *s) {
    if (s->random_pos + 16 > sizeof(s->random)) {
        size_t got = 0;
        while (got < sizeof(s->random)) {
            ssize_t n = getrandom(s->random + got, sizeof(s->random) - got, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += (size_t)n;
        }
        if (got < sizeof(s->random)) {
            if (!s->copy_failed) s->copy_failed = "could not read random bytes for row ids";
            col_null(s);
            return;
        }
        s->random_pos = 0;
    }
    unsigned char *u = s->random + s->random_pos;
    s->random_pos += 16;
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    char text[36];
    size_t n = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) text[n++] = '-';
        text[n++] = hex[u[i] >> 4];
        text[n++] = hex[u[i] & 15];
    }
    copy_sep(s);
    copy_put(s, text, n);
}

static int copy_begin(sink_pg_t *s, const char *sql, sink_pg_error_t *err) {
    PGresult *res = PQexec(s->conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        result_error(s, res, sql, err);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    s->copy_len = 0;
    s->copy_failed = NULL;
    s->row_start = true;
    return 0;
}

/* Sends the rest, ends the COPY and reads its outcome (the server reports bad data
 * here); adds the rows copied to *rows when rows != NULL. */
static int copy_end(sink_pg_t *s, const char *what, uint64_t *rows, sink_pg_error_t *err) {
    copy_flush(s);
    int rc = 0;
    if (PQputCopyEnd(s->conn, s->copy_failed) != 1) {
        result_error(s, NULL, what, err);
        rc = -1;
    }
    PGresult *res;
    while ((res = PQgetResult(s->conn)) != NULL) {
        if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK) {
            result_error(s, res, what, err);
            rc = -1;
        } else if (rc == 0 && rows) {
            long long n = 0;
            const char *t = PQcmdTuples(res);
            if (t && *t && ev_parse_ll(t, &n) == 0 && n > 0) *rows += (uint64_t)n;
        }
        PQclear(res);
        if (PQstatus(s->conn) != CONNECTION_OK) break;
    }
    if (rc == 0 && s->copy_failed) {
        result_error(s, NULL, what, err);
        rc = -1;
    }
    return rc;
}

/* ---- public API --------------------------------------------------------------------- */

int sink_pg_ping(sink_pg_t *s, sink_pg_error_t *err) {
    clear_error(err);
    if (ensure_connection(s, err) != 0 || exec_simple(s, "SELECT 1", "ping", err) != 0) {
        abandon_transaction(s);
        count_error(s, err);
        return -1;
    }
    return 0;
}

int sink_pg_read_offsets(sink_pg_t *s, const char *group, const char *topic,
                         const int32_t *partitions, int64_t *offsets, size_t n,
                         sink_pg_error_t *err) {
    clear_error(err);
    if (!group || !topic || (n && (!partitions || !offsets))) {
        set_error(err, SINK_PG_FATAL, NULL, "read offsets: group, topic and arrays required");
        return -1;
    }
    if (n == 0) return 0;
    textbuf_t parts;
    tb_init(&parts, PARAM_MAX_BYTES);
    for (size_t i = 0; i < n; i++) {
        tb_next(&parts);
        tb_i64(&parts, partitions[i]);
    }
    tb_close(&parts);
    PGresult *res = NULL;
    int rc = -1;
    if (tb_check(&parts, "read offsets", err) != 0) goto done;
    if (ensure_connection(s, err) != 0) goto done;
    const char *params[3] = {group, topic, parts.data};
    if (query_prepared(s, ST_READ_OFFSETS, params, &res, err) != 0) goto done;
    for (size_t i = 0; i < n; i++) offsets[i] = -1;
    for (int r = 0; r < PQntuples(res); r++) {
        long long p = 0, o = 0;
        if (ev_parse_ll(PQgetvalue(res, r, 0), &p) != 0 ||
            ev_parse_ll(PQgetvalue(res, r, 1), &o) != 0)
            continue;
        for (size_t i = 0; i < n; i++)
            if (partitions[i] == p) offsets[i] = o;
    }
    rc = 0;
done:
    PQclear(res);
    tb_free(&parts);
    if (rc != 0) {
        abandon_transaction(s);
        count_error(s, err);
    }
    return rc;
}

/* A result's text value, NULL for SQL NULL. */
static const char *val(const PGresult *res, int row, int col) {
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static int64_t val_i64(const PGresult *res, int row, int col, int64_t null_value) {
    long long v = 0;
    const char *t = val(res, row, col);
    if (!t || ev_parse_ll(t, &v) != 0) return null_value;
    return v;
}

static bool val_bool(const PGresult *res, int row, int col) {
    const char *t = val(res, row, col);
    return t && t[0] == 't';
}

/* Fills a session from a row of ST_LOAD_SESSIONS (strings point into res). */
static void session_of_row(const PGresult *res, int r, tf_session_t *ss) {
    memset(ss, 0, sizeof(*ss));
    snprintf(ss->id, sizeof(ss->id), "%s", PQgetvalue(res, r, 0));
    ss->visitor_id = val(res, r, 1);
    ss->user_id = val(res, r, 2);
    ss->started_at_ms = val_i64(res, r, 3, 0);
    ss->ended_at_ms = val_i64(res, r, 4, ss->started_at_ms);
    ss->duration_s = (int32_t)val_i64(res, r, 5, 0);
    ss->page_view_count = (int32_t)val_i64(res, r, 6, 0);
    ss->event_count = (int32_t)val_i64(res, r, 7, 0);
    ss->is_bounce = val_bool(res, r, 8);
    ss->entry_page = val(res, r, 9);
    ss->exit_page = val(res, r, 10);
    tf_sess_context_t *c = &ss->context;
    c->referrer = val(res, r, 11);
    c->referrer_domain = val(res, r, 12);
    c->utm_source = val(res, r, 13);
    c->utm_medium = val(res, r, 14);
    c->utm_campaign = val(res, r, 15);
    c->utm_term = val(res, r, 16);
    c->utm_content = val(res, r, 17);
    tf_device_type_t dt = TF_DEVICE_UNKNOWN;
    const char *dtn = val(res, r, 18);
    if (!dtn || tf_device_type_parse(dtn, &dt) != 0) dt = TF_DEVICE_UNKNOWN;
    c->device_type = (int)dt;
    c->browser = val(res, r, 19);
    c->browser_version = val(res, r, 20);
    c->os = val(res, r, 21);
    c->os_version = val(res, r, 22);
    c->user_agent = val(res, r, 23);
    c->country = val(res, r, 24);
    c->region = val(res, r, 25);
    c->city = val(res, r, 26);
    c->language = val(res, r, 27);
    c->screen_width = (int32_t)val_i64(res, r, 28, 0);
    c->screen_height = (int32_t)val_i64(res, r, 29, 0);
    tf_start_reason_t reason = TF_START_FIRST;
    const char *rn = val(res, r, 30);
    if (!rn || tf_start_reason_parse(rn, &reason) != 0) reason = TF_START_INACTIVITY;
    ss->start_reason = reason;
    ss->has_conversion = val_bool(res, r, 31);
}

/* The array parameters of the requests listed in idx, or of the first m when idx is NULL:
 * visitors and their bounds, and, when pv_vids is not NULL, the flattened (visitor, page
 * view eventId) pairs. Returns 0, or -1 with err set. */
static int load_params(const tf_sess_load_request_t *reqs, const size_t *idx, size_t m,
                       textbuf_t *vids, textbuf_t *since, textbuf_t *pv_vids,
                       textbuf_t *pv_ids, sink_pg_error_t *err) {
    for (size_t j = 0; j < m; j++) {
        const tf_sess_load_request_t *rq = &reqs[idx ? idx[j] : j];
        int64_t t = rq->since_ms;
        if (t < TS_MIN_MS) t = TS_MIN_MS;
        if (t > TS_MAX_MS) t = TS_MAX_MS;
        tb_next(vids);
        tb_quoted(vids, rq->visitor_id);
        tb_next(since);
        tb_i64(since, t);
        for (size_t k = 0; pv_vids && k < rq->n_page_view_ids; k++) {
            const char *pvid = rq->page_view_ids[k];
            if (!pvid) continue;
            tb_next(pv_vids);
            tb_quoted(pv_vids, rq->visitor_id);
            tb_next(pv_ids);
            tb_quoted(pv_ids, pvid);
        }
    }
    tb_close(vids);
    tb_close(since);
    if (tb_check(vids, "load", err) != 0 || tb_check(since, "load", err) != 0) return -1;
    if (!pv_vids) return 0;
    tb_close(pv_vids);
    tb_close(pv_ids);
    if (tb_check(pv_vids, "load", err) != 0 || tb_check(pv_ids, "load", err) != 0) return -1;
    return 0;
}

/* Hands the stored sessions and events of a load to the sessionizer. */
static int load_rows(tf_sessionizer_t *sz, const PGresult *rs, const PGresult *re,
                     tf_url_t *url, sink_pg_error_t *err) {
    for (int r = 0; r < PQntuples(rs); r++) {
        tf_session_t ss;
        session_of_row(rs, r, &ss);
        if (tf_sessionizer_load_session(sz, &ss) != 0) {
            set_error(err, SINK_PG_FATAL, NULL, "load: out of memory in the sessionizer");
            return -1;
        }
    }
    for (int r = 0; r < PQntuples(re); r++) {
        tf_sess_event_t ev;
        memset(&ev, 0, sizeof(ev));
        const char *session_id = PQgetvalue(re, r, 0);
        ev.event_id = val(re, r, 1);
        ev.visitor_id = val(re, r, 2);
        ev.ts_ms = val_i64(re, r, 3, 0);
        tf_event_type_t type = TF_EVENT_CUSTOM;
        const char *tn = val(re, r, 4);
        if (!tn || tf_event_type_parse(tn, strlen(tn), &type) != 0) type = TF_EVENT_CUSTOM;
        ev.type = type;
        ev.user_id = val(re, r, 5);
        ev.path = val(re, r, 6);
        const char *u = val(re, r, 7);
        ev.campaign_key = NULL;
        if (u) {
            char uerr[128];
            int urc = tf_url_parse(u, url, uerr, sizeof(uerr));
            if (urc == -2) {
                set_error(err, SINK_PG_FATAL, NULL, "load: out of memory parsing a URL");
                return -1;
            }
            if (urc == 0) ev.campaign_key = url->campaign_key;
        }
        ev.page_view_id = val(re, r, 8);
        const char *top = val(re, r, 9);
        ev.has_time_on_page = top != NULL;
        ev.time_on_page = top ? strtod(top, NULL) : 0.0;
        ev.scroll_depth = (int32_t)val_i64(re, r, 10, -1);
        ev.context = NULL;
        const char *pv_top = val(re, r, 11);
        int32_t pv_top_s = (int32_t)val_i64(re, r, 11, 0);
        int32_t pv_scroll = (int32_t)val_i64(re, r, 12, -1);
        if (tf_sessionizer_load_event(sz, &ev, session_id, pv_top != NULL, pv_top_s,
                                      pv_scroll) != 0) {
            set_error(err, SINK_PG_FATAL, NULL, "load: out of memory in the sessionizer");
            return -1;
        }
    }
    return 0;
}

int sink_pg_load(sink_pg_t *s, tf_sessionizer_t *sz, const tf_sess_load_request_t *reqs,
                 size_t n, sink_pg_error_t *err) {
    clear_error(err);
    if (n == 0) return 0;
    if (!sz || !reqs) {
        set_error(err, SINK_PG_FATAL, NULL, "load: sessionizer and requests required");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!reqs[i].visitor_id) {
            set_error(err, SINK_PG_FATAL, NULL, "load: request %zu has no visitor", i);
            count_error(s, err);
            return -1;
        }
        if (reqs[i].n_page_view_ids && !reqs[i].page_view_ids) {
            set_error(err, SINK_PG_FATAL, NULL, "load: request %zu has no page view array", i);
            count_error(s, err);
            return -1;
        }
    }
    textbuf_t vids, since, ids, wvids, wsince, wpv_vids, wpv_ids;
    textbuf_t *bufs[] = {&vids, &since, &ids, &wvids, &wsince, &wpv_vids, &wpv_ids};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) tb_init(bufs[i], PARAM_MAX_BYTES);
    PGresult *rl = NULL, *rs = NULL, *re = NULL, *rh = NULL;
    size_t *walk = malloc(n * sizeof(*walk)), n_walk = 0;
    tf_url_t url;
    tf_url_init(&url);
    int rc = -1;
    bool in_txn = false;
    if (!walk) {
        set_error(err, SINK_PG_FATAL, NULL, "load: out of memory");
        goto done;
    }
    /* the probe needs visitors and bounds only; the walk below, its subset's page views */
    if (load_params(reqs, NULL, n, &vids, &since, NULL, NULL, err) != 0) goto done;
    if (ensure_connection(s, err) != 0) goto done;

    /* One snapshot for every read. The reads are planned at each execution: a generic
     * plan made while the tables were small (a sequential scan) would otherwise stay with
     * the connection as they grow, and every load would get slower. (Not for the writes:
     * planning "= ANY" over a batch's thousands of eventIds costs more than it saves.) */
    in_txn = true;
    if (exec_simple(s,
                    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;"
                    " SET LOCAL plan_cache_mode = force_custom_plan",
                    "load: BEGIN", err) != 0)
        goto done;
    const char *p_latest[2] = {vids.data, since.data};
    if (query_prepared(s, ST_LOAD_LATEST, p_latest, &rl, err) != 0) goto done;
    if ((size_t)PQntuples(rl) != n) {
        set_error(err, SINK_PG_FATAL, NULL, "load: %d latest rows for %zu requests",
                  PQntuples(rl), n);
        goto done;
    }
    /* Row r is request r (ORDER BY ord). A request walks the stored sessions when one of
     * them ends at or after its bound, or when it refers to page views (their sessions
     * may be older). */
    for (size_t i = 0; i < n; i++) {
        if (val_i64(rl, (int)i, 0, 0) != (int64_t)i + 1) {
            set_error(err, SINK_PG_FATAL, NULL, "load: latest rows out of order");
            goto done;
        }
        if (reqs[i].n_page_view_ids || val_bool(rl, (int)i, 2)) walk[n_walk++] = i;
    }
    if (n_walk) {
        if (load_params(reqs, walk, n_walk, &wvids, &wsince, &wpv_vids, &wpv_ids, err) != 0)
            goto done;
        const char *p_sessions[4] = {wvids.data, wsince.data, wpv_vids.data, wpv_ids.data};
        if (query_prepared(s, ST_LOAD_SESSIONS, p_sessions, &rs, err) != 0) goto done;
        for (int r = 0; r < PQntuples(rs); r++) {
            tb_next(&ids);
            tb_str(&ids, PQgetvalue(rs, r, 0));
        }
        tb_close(&ids);
        if (tb_check(&ids, "load", err) != 0) goto done;
        const char *p_events[1] = {ids.data};
        if (query_prepared(s, ST_LOAD_EVENTS, p_events, &re, err) != 0) goto done;
        const char *p_earlier[2] = {wvids.data, ids.data};
        if (query_prepared(s, ST_LOAD_EARLIER, p_earlier, &rh, err) != 0) goto done;
        if ((size_t)PQntuples(rh) != n_walk) {
            set_error(err, SINK_PG_FATAL, NULL, "load: %d history rows for %zu requests",
                      PQntuples(rh), n_walk);
            goto done;
        }
    }
    if (exec_simple(s, "COMMIT", "load: COMMIT", err) != 0) goto done;
    in_txn = false;

    if (rs && load_rows(sz, rs, re, &url, err) != 0) goto done;
    /* Settled by the probe: nothing to load; earlier history iff any session is stored. */
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w < n_walk && walk[w] == i) {
            w++;
            continue;
        }
        if (tf_sessionizer_loaded(sz, reqs[i].visitor_id, val_bool(rl, (int)i, 1)) != 0) {
            set_error(err, SINK_PG_FATAL, NULL, "load: out of memory in the sessionizer");
            goto done;
        }
    }
    for (int r = 0; rh && r < PQntuples(rh); r++) {
        long long ord = val_i64(rh, r, 0, 0);
        if (ord < 1 || (size_t)ord > n_walk) continue;
        if (tf_sessionizer_loaded(sz, reqs[walk[ord - 1]].visitor_id, val_bool(rh, r, 1)) !=
            0) {
            set_error(err, SINK_PG_FATAL, NULL, "load: out of memory in the sessionizer");
            goto done;
        }
    }
    s->stats.loads++;
    s->stats.loaded_sessions += rs ? (uint64_t)PQntuples(rs) : 0;
    s->stats.loaded_events += re ? (uint64_t)PQntuples(re) : 0;
    rc = 0;
done:
    PQclear(rl);
    PQclear(rs);
    PQclear(re);
    PQclear(rh);
    free(walk);
    tf_url_reset(&url);
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) tb_free(bufs[i]);
    if (rc != 0) {
        if (in_txn) abandon_transaction(s);
        count_error(s, err);
    }
    return rc;
}

/* The caller's batch must be consistent before anything is sent. */
static int validate_batch(const sink_pg_batch_t *b, sink_pg_error_t *err) {
    if (b->n_offsets && (!b->group || !b->topic || !b->partitions || !b->next_offsets)) {
        set_error(err, SINK_PG_FATAL, NULL, "batch: offsets without group, topic or arrays");
        return -1;
    }
    const tf_sess_changes_t *c = b->changes;
    if (!c) return 0;
    for (size_t i = 0; i < c->n_assigns; i++) {
        const tf_sess_assign_t *a = &c->assigns[i];
        if (!a->is_new) {
            if (!a->event_id) {
                set_error(err, SINK_PG_FATAL, NULL, "batch: assign %zu without eventId", i);
                return -1;
            }
            continue;
        }
        if (!b->events || a->cookie >= b->n_events || !b->events[a->cookie].event) {
            set_error(err, SINK_PG_FATAL, NULL,
                      "batch: assign %zu refers to event %llu of %zu", i,
                      (unsigned long long)a->cookie, b->n_events);
            return -1;
        }
        const tf_event_t *ev = b->events[a->cookie].event;
        if (!tf_event_type_name(ev->type)) {
            set_error(err, SINK_PG_FATAL, NULL, "batch: event %llu has type %d",
                      (unsigned long long)a->cookie, (int)ev->type);
            return -1;
        }
    }
    for (size_t i = 0; i < c->n_upserts; i++)
        if (!tf_start_reason_name(c->upserts[i].start_reason)) {
            set_error(err, SINK_PG_FATAL, NULL, "batch: session %s has start reason %d",
                      c->upserts[i].id, (int)c->upserts[i].start_reason);
            return -1;
        }
    for (size_t i = 0; i < c->n_page_views; i++)
        if (!c->page_views[i].event_id) {
            set_error(err, SINK_PG_FATAL, NULL, "batch: page view %zu without eventId", i);
            return -1;
        }
    return 0;
}

static void stage_session(sink_pg_t *s, const tf_session_t *ss) {
    const tf_sess_context_t *c = &ss->context;
    col_text(s, ss->id);
    col_text(s, ss->visitor_id);
    col_text(s, ss->user_id);
    col_i64(s, ss->started_at_ms);
    col_i64(s, ss->ended_at_ms);
    col_i64(s, ss->duration_s);
    col_i64(s, ss->page_view_count);
    col_i64(s, ss->event_count);
    col_bool(s, ss->is_bounce);
    col_text(s, ss->entry_page);
    col_text(s, ss->exit_page);
    col_text(s, c->referrer);
    col_text(s, c->referrer_domain);
    col_text(s, c->utm_source);
    col_text(s, c->utm_medium);
    col_text(s, c->utm_campaign);
    col_text(s, c->utm_term);
    col_text(s, c->utm_content);
    const char *dt = tf_device_type_name((tf_device_type_t)c->device_type);
    col_text(s, dt ? dt : tf_device_type_name(TF_DEVICE_UNKNOWN));
    col_text(s, c->browser);
    col_text(s, c->browser_version);
    col_text(s, c->os);
    col_text(s, c->os_version);
    col_text(s, c->user_agent);
    col_text(s, c->country);
    col_text(s, c->region);
    col_text(s, c->city);
    col_text(s, c->language);
    if (c->screen_width > 0) col_i64(s, c->screen_width); else col_null(s);
    if (c->screen_height > 0) col_i64(s, c->screen_height); else col_null(s);
    col_text(s, tf_start_reason_name(ss->start_reason));
    copy_row_end(s);
}

/* ---- the write ----------------------------------------------------------------------- */

/* Marks the planned events and page views already stored (one indexed query). Returns
 * 0, or -1 with *err filled: CONFLICT when some are stored for another visitor (those
 * flagged in b->conflicts). */
static int find_stored(sink_pg_t *s, const sink_pg_batch_t *b, sink_pg_plan_t *pl,
                       sink_pg_error_t *err) {
    const tf_sess_changes_t *c = b->changes;
    textbuf_t eids, pids, cids;
    tb_init(&eids, PARAM_MAX_BYTES);
    tb_init(&pids, PARAM_MAX_BYTES);
    tb_init(&cids, PARAM_MAX_BYTES);
    for (size_t i = 0; i < pl->n_events; i++) {
        const tf_event_t *ev = sink_pg_plan_event(b, pl, i);
        tb_next(&eids);
        tb_quoted(&eids, ev->event_id);
        if (!sink_pg_is_conversion(b->conversion_types, ev->type)) continue;
        tb_next(&cids);
        tb_quoted(&cids, ev->event_id);
    }
    for (size_t i = 0; i < pl->n_pvs; i++) {
        tb_next(&pids);
        tb_quoted(&pids, c->page_views[pl->pvs[i]].event_id);
    }
    tb_close(&eids);
    tb_close(&pids);
    tb_close(&cids);
    PGresult *res = NULL;
    int rc = -1;
    if (tb_check(&eids, "finding stored events", err) != 0 ||
        tb_check(&pids, "finding stored events", err) != 0 ||
        tb_check(&cids, "finding stored events", err) != 0)
        goto done;
    const char *params[3] = {eids.data, pids.data, cids.data};
    if (query_prepared(s, ST_EXISTING, params, &res, err) != 0) goto done;
    const char *conflict_id = NULL; /* the first one stored for another visitor */
    for (int r = 0; r < PQntuples(res); r++) {
        char kind = PQgetvalue(res, r, 0)[0];
        const char *id = PQgetvalue(res, r, 1);
        size_t k = sink_pg_strmap_get(kind == '1' ? &pl->pv_map : &pl->event_map, id);
        if (k == SIZE_MAX) continue;
        size_t e = kind == '1' ? pl->pv_event[k] : k;
        const tf_sess_assign_t *a = &c->assigns[pl->events[e]];
        if (strcmp(PQgetvalue(res, r, 2), sink_pg_assign_event(b, a)->visitor_id) != 0) {
            sink_pg_flag_conflict(b, a->cookie);
            if (!conflict_id) conflict_id = id;
        } else if (kind == '1') {
            pl->pv_stored[k] = true;
        } else if (kind == '0') {
            pl->event_stored[k] = true;
        }
    }
    if (conflict_id) {
        set_error(err, SINK_PG_CONFLICT, NULL,
                  "finding stored events: eventId %s is stored for another visitor",
                  conflict_id);
        goto done;
    }
    rc = 0;
done:
    PQclear(res);
    tb_free(&eids);
    tb_free(&pids);
    tb_free(&cids);
    return rc;
}

static void copy_event(sink_pg_t *s, const sink_pg_event_row_t *row, const char *session_id) {
    const tf_event_t *ev = row->event;
    col_new_uuid(s);
    col_text(s, ev->event_id);
    col_text(s, session_id);
    col_text(s, tf_event_type_name(ev->type));
    col_text(s, ev->name);
    col_text(s, ev->visitor_id);
    col_text(s, ev->user_id);
    col_text(s, ev->url);
    col_text(s, row->path);
    col_text(s, ev->properties_json);
    col_ts(s, ev->timestamp_ms);
    /* 'now' is the transaction's start, as the column's default now() would be. */
    if (row->received_at_ms >= 0) col_ts(s, row->received_at_ms); else col_text(s, "now");
    col_text(s, ev->referrer);
    col_text(s, ev->page_view_id);
    if (ev->has_time_on_page) col_double(s, ev->time_on_page); else col_null(s);
    if (ev->scroll_depth >= 0) col_i64(s, ev->scroll_depth); else col_null(s);
    copy_row_end(s);
}

static void copy_page_view(sink_pg_t *s, const tf_page_view_update_t *pv,
                           const sink_pg_event_row_t *row) {
    const tf_event_t *ev = row->event;
    col_new_uuid(s);
    col_text(s, pv->event_id);
    col_text(s, pv->session_id);
    col_text(s, ev->visitor_id);
    col_text(s, ev->url);
    col_text(s, row->path);
    col_text(s, ev->title);
    col_text(s, ev->referrer);
    if (pv->has_time_on_page) col_i64(s, pv->time_on_page_s); else col_null(s);
    if (pv->scroll_depth >= 0) col_i64(s, pv->scroll_depth); else col_null(s);
    col_ts(s, ev->timestamp_ms);
    copy_row_end(s);
}

static void stage_page_view_update(sink_pg_t *s, const tf_page_view_update_t *pv,
                                   const char *visitor_id) {
    col_text(s, pv->event_id);
    col_text(s, pv->session_id);
    if (pv->has_time_on_page) col_i64(s, pv->time_on_page_s); else col_null(s);
    if (pv->scroll_depth >= 0) col_i64(s, pv->scroll_depth); else col_null(s);
    col_text(s, visitor_id);
    copy_row_end(s);
}

static void stage_conversion(sink_pg_t *s, const sink_pg_event_row_t *row,
                             const char *session_id) {
    const tf_event_t *ev = row->event;
    col_text(s, ev->event_id);
    col_text(s, session_id);
    col_text(s, ev->visitor_id);
    col_text(s, ev->user_id);
    col_text(s, tf_event_type_name(ev->type));
    if (ev->has_value && ev->value_text)
        col_text(s, ev->value_text);
    else if (ev->has_value)
        col_double(s, ev->value);
    else
        col_null(s);
    col_text(s, ev->currency[0] ? ev->currency : NULL);
    col_text(s, ev->properties_json);
    col_i64(s, ev->timestamp_ms);
    copy_row_end(s);
}

/* COPY of new rows straight into a table, a concurrent duplicate reported TRANSIENT. */
static int copy_new_end(sink_pg_t *s, const char *what, uint64_t *rows, sink_pg_error_t *err) {
    s->race_transient = true;
    int rc = copy_end(s, what, rows, err);
    s->race_transient = false;
    return rc;
}

/* Everything of the write between BEGIN and COMMIT. Statements without input are not
 * sent. probed: find_stored ran; without it, a conversion found stored (its event was
 * not, or the COPY would have failed) fails the write as a unique violation, so that it
 * is redone with the probe, which tells whose it is. */
static int write_rows(sink_pg_t *s, const sink_pg_batch_t *b, const sink_pg_plan_t *pl,
                      bool probed, counts_t *k, sink_pg_error_t *err) {
    const tf_sess_changes_t *c = b->changes;
    if (c && c->n_upserts) {
        if (copy_begin(s, k_copy_sessions, err) != 0) return -1;
        for (size_t i = 0; i < c->n_upserts; i++) stage_session(s, &c->upserts[i]);
        if (copy_end(s, "staging sessions", NULL, err) != 0) return -1;
        if (exec_prepared(s, ST_UPSERT_SESSIONS, NULL, &k->sessions, err) != 0) return -1;
    }
    size_t n_insert = 0, n_pv_insert = 0, n_pv_update = pl->n_pv_changes;
    for (size_t i = 0; i < pl->n_events; i++) n_insert += !pl->event_stored[i];
    for (size_t i = 0; i < pl->n_pvs; i++) {
        if (pl->pv_stored[i])
            n_pv_update++;
        else
            n_pv_insert++;
    }
    if (n_insert) {
        if (copy_begin(s, k_copy_events, err) != 0) return -1;
        for (size_t i = 0; i < pl->n_events; i++) {
            if (pl->event_stored[i]) continue;
            const tf_sess_assign_t *a = &c->assigns[pl->events[i]];
            copy_event(s, &b->events[a->cookie], a->session_id);
        }
        if (copy_new_end(s, "inserting events", &k->events, err) != 0) return -1;
    }
    if (pl->n_moved) {
        if (copy_begin(s, k_copy_repoints, err) != 0) return -1;
        for (size_t i = 0; i < c->n_assigns; i++) {
            const tf_sess_assign_t *a = &c->assigns[i];
            if (a->is_new) continue;
            col_text(s, a->event_id);
            col_text(s, a->session_id);
            copy_row_end(s);
        }
        if (copy_end(s, "staging re-pointed events", NULL, err) != 0) return -1;
        if (exec_planned(s, k_repoint_events, "re-pointing events", &k->repointed, err) != 0 ||
            exec_planned(s, k_repoint_page_views, "re-pointing page views", NULL, err) != 0 ||
            exec_planned(s, k_repoint_conversions, "re-pointing conversions", NULL, err) != 0)
            return -1;
    }
    if (c && c->n_upserts &&
        exec_planned(s, k_refresh_attribution, "refreshing conversion attribution", NULL,
                     err) != 0)
        return -1;
    if (n_pv_insert) {
        if (copy_begin(s, k_copy_new_page_views, err) != 0) return -1;
        for (size_t i = 0; i < pl->n_pvs; i++) {
            if (pl->pv_stored[i]) continue;
            const tf_sess_assign_t *a = &c->assigns[pl->events[pl->pv_event[i]]];
            copy_page_view(s, &c->page_views[pl->pvs[i]], &b->events[a->cookie]);
        }
        if (copy_new_end(s, "inserting page views", &k->page_views, err) != 0) return -1;
    }
    if (n_pv_update) {
        /* Changed stored page views, and new ones a replay finds stored (their derived
         * fields refreshed when the stored row is the same visitor's). */
        if (copy_begin(s, k_copy_page_views, err) != 0) return -1;
        for (size_t i = 0; i < pl->n_pvs; i++) {
            if (!pl->pv_stored[i]) continue;
            const tf_sess_assign_t *a = &c->assigns[pl->events[pl->pv_event[i]]];
            stage_page_view_update(s, &c->page_views[pl->pvs[i]],
                                   b->events[a->cookie].event->visitor_id);
        }
        for (size_t i = 0; i < c->n_page_views; i++)
            if (!c->page_views[i].is_new) stage_page_view_update(s, &c->page_views[i], NULL);
        if (copy_end(s, "staging page views", NULL, err) != 0) return -1;
        if (exec_planned(s, k_update_page_views, "updating page views", &k->page_views,
                         err) != 0)
            return -1;
    }
    if (pl->n_conversions) {
        if (copy_begin(s, k_copy_conversions, err) != 0) return -1;
        uint64_t staged = 0, inserted = 0;
        for (size_t i = 0; i < pl->n_events; i++) {
            const tf_sess_assign_t *a = &c->assigns[pl->events[i]];
            const sink_pg_event_row_t *row = &b->events[a->cookie];
            if (!sink_pg_is_conversion(b->conversion_types, row->event->type)) continue;
            stage_conversion(s, row, a->session_id);
            staged++;
        }
        if (copy_end(s, "staging conversions", NULL, err) != 0) return -1;
        if (exec_planned(s, k_insert_conversions, "inserting conversions", &inserted, err) != 0)
            return -1;
        if (!probed && inserted < staged) {
            set_error(err, SINK_PG_TRANSIENT, "23505",
                      "inserting conversions: %llu of %llu already stored",
                      (unsigned long long)(staged - inserted), (unsigned long long)staged);
            return -1;
        }
        k->conversions += inserted;
    }
    if (c && c->n_deletes) {
        textbuf_t ids;
        tb_init(&ids, PARAM_MAX_BYTES);
        for (size_t i = 0; i < c->n_deletes; i++) {
            tb_next(&ids);
            tb_quoted(&ids, c->deletes[i]);
        }
        tb_close(&ids);
        int rc = tb_check(&ids, "deleting sessions", err);
        const char *params[1] = {ids.data};
        if (rc == 0) rc = exec_prepared(s, ST_DELETE_SESSIONS, params, &k->deleted, err);
        tb_free(&ids);
        if (rc != 0) return -1;
    }
    if (b->n_offsets) {
        textbuf_t parts, offs;
        tb_init(&parts, PARAM_MAX_BYTES);
        tb_init(&offs, PARAM_MAX_BYTES);
        for (size_t i = 0; i < b->n_offsets; i++) {
            tb_next(&parts);
            tb_i64(&parts, b->partitions[i]);
            tb_next(&offs);
            tb_i64(&offs, b->next_offsets[i]);
        }
        tb_close(&parts);
        tb_close(&offs);
        int rc = tb_check(&parts, "storing offsets", err);
        if (rc == 0) rc = tb_check(&offs, "storing offsets", err);
        const char *params[4] = {b->group, b->topic, parts.data, offs.data};
        if (rc == 0) rc = exec_prepared(s, ST_UPSERT_OFFSETS, params, &k->offsets, err);
        tb_free(&parts);
        tb_free(&offs);
        if (rc != 0) return -1;
    }
    return 0;
}

int sink_pg_write(sink_pg_t *s, const sink_pg_batch_t *b, sink_pg_error_t *err) {
    clear_error(err);
    counts_t k;
    memset(&k, 0, sizeof(k));
    sink_pg_plan_t pl;
    memset(&pl, 0, sizeof(pl));
    if (!b) {
        set_error(err, SINK_PG_FATAL, NULL, "write: no batch");
        goto fail;
    }
    if (validate_batch(b, err) != 0) goto fail;
    if (sink_pg_plan_init(b, &pl, err) != 0) goto fail;
    /* The sessionizer already knows the stored events of the visitors it writes, so an
     * eventId of the batch is rarely stored: after a write whose probe found none, the
     * next one copies without probing, and a unique violation on an eventId (a replay
     * the sessionizer could not see, another writer) rolls back and redoes the write
     * with the probe. */
    bool probe = s->probe_stored, begin_retried = false;
    for (;;) {
        if (ensure_connection(s, err) != 0) goto fail;
        if (exec_simple(s, "BEGIN", "BEGIN", err) != 0) {
            /* The server closed the idle connection an instant before its goodbye
             * could be seen: nothing was sent yet, so connect again and begin, once. */
            if (!begin_retried && s->conn && PQstatus(s->conn) != CONNECTION_OK) {
                begin_retried = true;
                EV_WARN("PostgreSQL: the idle connection was closed by the server; reconnecting");
                s->ready = false;
                clear_error(err);
                continue;
            }
            goto fail;
        }
        /* In the transaction: a row committed meanwhile by another writer makes the
         * COPY fail (TRANSIENT), and the retry finds it here. */
        if (probe && (pl.n_events || pl.n_pvs) && find_stored(s, b, &pl, err) != 0)
            goto fail;
        if (write_rows(s, b, &pl, probe, &k, err) == 0) break;
        if (probe || err->status != SINK_PG_TRANSIENT || strcmp(err->sqlstate, "23505") != 0)
            goto fail;
        abandon_transaction(s);
        memset(&k, 0, sizeof(k));
        clear_error(err);
        s->stats.existence_rechecks++;
        probe = true;
    }
    if (exec_simple(s, "COMMIT", "COMMIT", err) != 0) goto fail;
    bool found = false;
    for (size_t i = 0; i < pl.n_events && !found; i++) found = pl.event_stored[i];
    for (size_t i = 0; i < pl.n_pvs && !found; i++) found = pl.pv_stored[i];
    s->probe_stored = found;
    sink_pg_plan_free(&pl);
    s->stats.transactions++;
    s->stats.sessions_upserted += k.sessions;
    s->stats.sessions_deleted += k.deleted;
    s->stats.events_inserted += k.events;
    s->stats.events_repointed += k.repointed;
    s->stats.page_views_written += k.page_views;
    s->stats.conversions_inserted += k.conversions;
    s->stats.offsets_written += k.offsets;
    return 0;
fail:
    sink_pg_plan_free(&pl);
    abandon_transaction(s);
    s->probe_stored = true; /* the retry may be of rows a lost COMMIT did store */
    s->stats.failed_writes++;
    count_error(s, err);
    return -1;
}
