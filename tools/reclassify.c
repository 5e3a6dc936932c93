/* reclassify.c — `evpipe reclassify`: classifies stored sessions again from their
 * userAgent and screen with the current classifier and data sets, in batches, and
 * updates the sessions whose deviceType, browser, os or versions change. The downstream
 * triggers mark every hour an updated session spans (docs/downstream-changes.md), so
 * the metrics and funnels stages recompute exactly the periods whose numbers change. */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/commands.h"
#include "common/log.h"
#include "common/ua_load.h"
#include "transforms/device.h"

/* Keyset pagination by id over the sessions started in [from, to) (either bound may be
 * absent). */
static const char select_sql[] =
    "SELECT id::text, \"userAgent\", \"screenWidth\", \"screenHeight\", \"deviceType\"::text,"
    " coalesce(browser, ''), coalesce(\"browserVersion\", ''), coalesce(os, ''),"
    " coalesce(\"osVersion\", '')"
    " FROM analytics_sessions"
    " WHERE ($1::uuid IS NULL OR id > $1::uuid)"
    " AND ($2::timestamptz IS NULL OR \"startedAt\" >= $2::timestamptz)"
    " AND ($3::timestamptz IS NULL OR \"startedAt\" < $3::timestamptz)"
    " ORDER BY id LIMIT $4";

/* Only when the stored agent is still the one classified (a concurrent writer wins). */
static const char update_sql[] =
    "UPDATE analytics_sessions SET \"deviceType\" = $2::\"DeviceType\", browser = $3,"
    " \"browserVersion\" = $4, os = $5, \"osVersion\" = $6, \"updatedAt\" = now()"
    " WHERE id = $1::uuid AND \"userAgent\" IS NOT DISTINCT FROM $7";

typedef struct rc_stats_s {
    unsigned long long read, changed, type_changed;
    unsigned long long moves[TF_DEVICE_TYPE_COUNT][TF_DEVICE_TYPE_COUNT];
} rc_stats_t;

static const char *or_null(const char *s) { return s && *s ? s : NULL; }

/* One batch: reads up to batch sessions after *last_id, updates the changed ones in one
 * transaction. Returns the number read (0: done), or -1 with errstr filled. */
static long rc_batch(PGconn *conn, tf_ua_classifier_t *clf, const char *from, const char *to,
                     long long batch, bool dry_run, char *last_id, size_t last_size, rc_stats_t *st,
                     char *errstr, size_t errstr_size) {
    char limit[32];
    snprintf(limit, sizeof(limit), "%lld", batch);
    const char *params[4] = {last_id[0] ? last_id : NULL, or_null(from), or_null(to), limit};
    PGresult *res = PQexecParams(conn, select_sql, 4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(errstr, errstr_size, "reading sessions: %s", PQerrorMessage(conn));
        PQclear(res);
        return -1;
    }
    long n = PQntuples(res);
    long rc = n;
    bool in_tx = false;
    for (long i = 0; i < n; i++) {
        const char *ua = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
        tf_device_hints_t hints = {false, false, NULL, NULL, 0, 0};
        if (!PQgetisnull(res, i, 2))
            hints.screen_width = (int32_t)strtol(PQgetvalue(res, i, 2), NULL, 10);
        if (!PQgetisnull(res, i, 3))
            hints.screen_height = (int32_t)strtol(PQgetvalue(res, i, 3), NULL, 10);
        tf_ua_info_t info;
        (void)tf_ua_classify(clf, ua, &hints, &info); /* out of memory: answered uncached */
        tf_device_type_t old;
        if (tf_device_type_parse(PQgetvalue(res, i, 4), &old) != 0) old = TF_DEVICE_UNKNOWN;
        st->read++;
        bool type_changed = old != info.type;
        bool changed = type_changed || strcmp(PQgetvalue(res, i, 5), info.browser) != 0 ||
                       strcmp(PQgetvalue(res, i, 6), info.browser_version) != 0 ||
                       strcmp(PQgetvalue(res, i, 7), info.os) != 0 ||
                       strcmp(PQgetvalue(res, i, 8), info.os_version) != 0;
        if (!changed) continue;
        if (!dry_run) {
            if (!in_tx) {
                PGresult *b = PQexec(conn, "BEGIN");
                bool ok = PQresultStatus(b) == PGRES_COMMAND_OK;
                PQclear(b);
                if (!ok) {
                    snprintf(errstr, errstr_size, "BEGIN: %s", PQerrorMessage(conn));
                    rc = -1;
                    break;
                }
                in_tx = true;
            }
            const char *up[7] = {PQgetvalue(res, i, 0),
                                 tf_device_type_name(info.type),
                                 or_null(info.browser),
                                 or_null(info.browser_version),
                                 or_null(info.os),
                                 or_null(info.os_version),
                                 ua};
            PGresult *u = PQexecParams(conn, update_sql, 7, NULL, up, NULL, NULL, 0);
            bool ok = PQresultStatus(u) == PGRES_COMMAND_OK;
            bool updated = ok && strcmp(PQcmdTuples(u), "1") == 0;
            PQclear(u);
            if (!ok) {
                snprintf(errstr, errstr_size, "updating session %s: %s", PQgetvalue(res, i, 0),
                         PQerrorMessage(conn));
                rc = -1;
                break;
            }
            if (!updated) continue; /* its agent changed meanwhile */
        }
        st->changed++;
        if (type_changed) st->type_changed++, st->moves[old][info.type]++;
    }
    if (in_tx) {
        PGresult *e = PQexec(conn, rc < 0 ? "ROLLBACK" : "COMMIT");
        if (rc >= 0 && PQresultStatus(e) != PGRES_COMMAND_OK) {
            snprintf(errstr, errstr_size, "COMMIT: %s", PQerrorMessage(conn));
            rc = -1;
        }
        PQclear(e);
    }
    if (rc > 0) snprintf(last_id, last_size, "%s", PQgetvalue(res, n - 1, 0));
    PQclear(res);
    return rc;
}

int cmd_reclassify(int argc, char **argv) {
    const char *database = NULL, *from = NULL, *to = NULL, *regexes = NULL, *ua_data = NULL;
    const char *log_level = "info";
    long long batch = 1000, ua_cache = 10000;
    bool dry_run = false;
    const ev_opt_t opts[] = {
        {"database", 'd', EV_OPT_STR, NULL, "DATABASE_URL", "URL", "PostgreSQL conninfo or URL",
         &database, 0, 0},
        {"from", 0, EV_OPT_STR, NULL, NULL, "T",
         "only sessions started at or after T (an ISO 8601 time or date)", &from, 0, 0},
        {"to", 0, EV_OPT_STR, NULL, NULL, "T", "only sessions started before T", &to, 0, 0},
        {"batch-size", 0, EV_OPT_INT, "1000", NULL, "N",
         "sessions read and updated per transaction", &batch, 1, 100000},
        {"dry-run", 0, EV_OPT_BOOL, "false", NULL, NULL, "count what would change, change nothing",
         &dry_run, 0, 0},
        {"ua-regexes", 0, EV_OPT_STR, TF_UA_REGEXES_DEFAULT_PATH, "EVPIPE_UA_REGEXES", "PATH",
         "uap-core regexes.yaml", &regexes, 0, 0},
        {"ua-data", 0, EV_OPT_STR, TF_UA_DATA_DEFAULT_PATH, "EVPIPE_UA_DATA", "DIR",
         "device and robot data sets (docs/devices.md)", &ua_data, 0, 0},
        {"ua-cache", 0, EV_OPT_INT, "10000", NULL, "N", "user agents kept classified", &ua_cache, 0,
         10000000},
        {"log-level", 0, EV_OPT_STR, "info", "EVPIPE_LOG_LEVEL", "LEVEL",
         "debug, info, warn or error", &log_level, 0, 0},
        EV_OPT_END};
    const ev_cli_t cli = {
        "evpipe reclassify", "[OPTIONS]",
        "Classifies the stored sessions again (deviceType, browser, os and their versions)\n"
        "from their userAgent and screen size with the current classifier and data sets, in\n"
        "batches in id order, and updates only the sessions whose values change; progress\n"
        "goes to stderr, one line per batch. The database marks the hours of every updated\n"
        "session for the metrics and funnels stages, which then recompute exactly the\n"
        "periods whose numbers change. Client hints are not stored: a type they decided at\n"
        "ingest may change. Run it after a data set update, once ingest runs with it.",
        "Prints one summary line on stdout: read, changed, and the deviceType moves.\n"
        "Exit status: 0 done; 1 a database error (the batches committed before stay);\n"
        "2 usage or configuration error.",
        opts};
    char errstr[1024];
    int exit_code = 2;
    PGconn *conn = NULL;
    tf_ua_classifier_t *clf = NULL;
    int rc = ev_cli_parse(&cli, argc, argv, NULL, errstr, sizeof(errstr));
    if (rc == 1) {
        exit_code = 0;
        goto out;
    }
    if (rc < 0) goto usage;
    if (!database || !*database) {
        snprintf(errstr, sizeof(errstr), "no database: give --database or DATABASE_URL");
        goto usage;
    }
    int level = ev_log_level_parse(log_level);
    if (level < 0) {
        snprintf(errstr, sizeof(errstr), "--log-level must be debug|info|warn|error");
        goto usage;
    }
    ev_log_init("reclassify", level, 0);
    clf = ev_ua_classifier_load(regexes, ua_data, (size_t)ua_cache, errstr, sizeof(errstr));
    if (!clf) goto usage;
    exit_code = 1;
    conn = PQconnectdb(database);
    if (PQstatus(conn) != CONNECTION_OK) {
        EV_ERROR("PostgreSQL: %s", PQerrorMessage(conn));
        goto out;
    }
    /* Bad bounds are a usage error, said before any work. */
    const char *bounds[2] = {or_null(from), or_null(to)};
    PGresult *chk = PQexecParams(conn, "SELECT $1::timestamptz, $2::timestamptz", 2, NULL, bounds,
                                 NULL, NULL, 0);
    if (PQresultStatus(chk) != PGRES_TUPLES_OK) {
        snprintf(errstr, sizeof(errstr), "--from/--to: %s", PQerrorMessage(conn));
        PQclear(chk);
        exit_code = 2;
        goto usage;
    }
    PQclear(chk);
    rc_stats_t st;
    memset(&st, 0, sizeof(st));
    char last_id[64] = "";
    long n;
    while ((n = rc_batch(conn, clf, from, to, batch, dry_run, last_id, sizeof(last_id), &st, errstr,
                         sizeof(errstr))) > 0)
        EV_INFO("%llu sessions read, %llu changed (%llu of them in deviceType)%s", st.read,
                st.changed, st.type_changed, dry_run ? " [dry run]" : "");
    if (n < 0) {
        EV_ERROR("%s", errstr);
        goto out;
    }
    printf("%s%llu sessions read, %llu changed, %llu in deviceType", dry_run ? "dry run: " : "",
           st.read, st.changed, st.type_changed);
    for (int a = 0; a < TF_DEVICE_TYPE_COUNT; a++)
        for (int b = 0; b < TF_DEVICE_TYPE_COUNT; b++)
            if (st.moves[a][b])
                printf(" %s->%s %llu", tf_device_type_name((tf_device_type_t)a),
                       tf_device_type_name((tf_device_type_t)b), st.moves[a][b]);
    printf("\n");
    exit_code = fflush(stdout) == 0 ? 0 : 1;
    goto out;
usage:
    fprintf(stderr, "evpipe reclassify: %s\n", errstr);
out:
    tf_ua_classifier_destroy(clf);
    PQfinish(conn);
    return exit_code;
}
