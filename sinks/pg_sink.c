/* pg_sink.c — PostgreSQL writer and session-state loader of the ingest stage (see
 * pg_sink.h): the sink, its connection, errors and prepared statements. The loader is
 * in pg_sink_load.c, the batch write in pg_sink_write.c, COPY encoding in pg_copy.c. */
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

#include "sinks/pg_sink_internal.h"

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

void pgs_set_error(sink_pg_error_t *err, sink_pg_status_t status, const char *sqlstate,
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

void pgs_clear_error(sink_pg_error_t *err) {
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
int pgs_result_error(sink_pg_t *s, const PGresult *res, const char *what,
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
        pgs_set_error(err, st, state, "%s: %s (%s)", what, primary, detail);
    else
        pgs_set_error(err, st, state, "%s: %s", what, primary);
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
        pgs_result_error(s, res, "creating the staging tables", err);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    for (int i = 0; i < ST_COUNT; i++) {
        res = PQprepare(s->conn, k_stmts[i].name, k_stmts[i].sql, k_stmts[i].n_params, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            char what[96];
            snprintf(what, sizeof(what), "preparing %s", k_stmts[i].name);
            pgs_result_error(s, res, what, err);
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
int pgs_ensure_connection(sink_pg_t *s, sink_pg_error_t *err) {
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
            pgs_set_error(err, SINK_PG_FATAL, NULL, "out of memory connecting to PostgreSQL");
            return -1;
        }
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
        pgs_set_error(err, SINK_PG_TRANSIENT, NULL, "cannot connect to PostgreSQL: %s",
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
void pgs_abandon_transaction(sink_pg_t *s) {
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

void pgs_count_error(sink_pg_t *s, const sink_pg_error_t *err) {
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
        pgs_result_error(s, res, what, err);
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

int pgs_exec_simple(sink_pg_t *s, const char *sql, const char *what, sink_pg_error_t *err) {
    return check_command(s, PQexec(s->conn, sql), what, NULL, err);
}

int pgs_exec_prepared(sink_pg_t *s, int stmt, const char *const *params, uint64_t *rows,
                      sink_pg_error_t *err) {
    PGresult *res = PQexecPrepared(s->conn, k_stmts[stmt].name, k_stmts[stmt].n_params, params,
                                   NULL, NULL, 0);
    return check_command(s, res, k_stmts[stmt].name, rows, err);
}

int pgs_exec_planned(sink_pg_t *s, const char *sql, const char *what, uint64_t *rows,
                     sink_pg_error_t *err) {
    return check_command(s, PQexecParams(s->conn, sql, 0, NULL, NULL, NULL, NULL, 0), what,
                         rows, err);
}

/* Runs a prepared query returning rows; *out owns the result on success. */
int pgs_query_prepared(sink_pg_t *s, int stmt, const char *const *params, PGresult **out,
                       sink_pg_error_t *err) {
    PGresult *res = PQexecPrepared(s->conn, k_stmts[stmt].name, k_stmts[stmt].n_params, params,
                                   NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pgs_result_error(s, res, k_stmts[stmt].name, err);
        PQclear(res);
        return -1;
    }
    *out = res;
    return 0;
}

/* ---- public API --------------------------------------------------------------------- */

int sink_pg_ping(sink_pg_t *s, sink_pg_error_t *err) {
    pgs_clear_error(err);
    if (pgs_ensure_connection(s, err) != 0 || pgs_exec_simple(s, "SELECT 1", "ping", err) != 0) {
        pgs_abandon_transaction(s);
        pgs_count_error(s, err);
        return -1;
    }
    return 0;
}

int sink_pg_read_offsets(sink_pg_t *s, const char *group, const char *topic,
                         const int32_t *partitions, int64_t *offsets, size_t n,
                         sink_pg_error_t *err) {
    pgs_clear_error(err);
    if (!group || !topic || (n && (!partitions || !offsets))) {
        pgs_set_error(err, SINK_PG_FATAL, NULL, "read offsets: group, topic and arrays required");
        return -1;
    }
    if (n == 0) return 0;
    textbuf_t parts;
    pgs_tb_init(&parts, PARAM_MAX_BYTES);
    for (size_t i = 0; i < n; i++) {
        pgs_tb_next(&parts);
        pgs_tb_i64(&parts, partitions[i]);
    }
    pgs_tb_close(&parts);
    PGresult *res = NULL;
    int rc = -1;
    if (pgs_tb_check(&parts, "read offsets", err) != 0) goto done;
    if (pgs_ensure_connection(s, err) != 0) goto done;
    const char *params[3] = {group, topic, parts.data};
    if (pgs_query_prepared(s, ST_READ_OFFSETS, params, &res, err) != 0) goto done;
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
    pgs_tb_free(&parts);
    if (rc != 0) {
        pgs_abandon_transaction(s);
        pgs_count_error(s, err);
    }
    return rc;
}

