/* pg_settings.c — runtime settings from tracking_configs (see pg_settings.h). */
#include "sinks/pg_settings.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink_pg_settings_s {
    char *conninfo;
    PGconn *conn;
};

sink_pg_settings_t *sink_pg_settings_new(const char *conninfo) {
    sink_pg_settings_t *ps = calloc(1, sizeof(*ps));
    if (!ps) return NULL;
    ps->conninfo = strdup(conninfo);
    if (!ps->conninfo) {
        free(ps);
        return NULL;
    }
    return ps;
}

void sink_pg_settings_destroy(sink_pg_settings_t *ps) {
    if (!ps) return;
    if (ps->conn) PQfinish(ps->conn);
    free(ps->conninfo);
    free(ps);
}

/* libpq's messages span lines ("...failed: Connection refused\n\tIs the server
 * running..."): keep them on one line, tabs and newlines as spaces, none trailing. */
static void one_line_copy(char *dst, size_t size, const char *prefix, const char *src) {
    snprintf(dst, size, "%s%s", prefix, src ? src : "");
    size_t n = strlen(dst);
    while (n && (dst[n - 1] == '\n' || dst[n - 1] == '\r' || dst[n - 1] == ' ')) dst[--n] = '\0';
    for (char *p = dst; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
}

static void drop_connection(sink_pg_settings_t *ps) {
    if (ps->conn) PQfinish(ps->conn);
    ps->conn = NULL;
}

/* Connects when there is no usable connection. Client defaults come first so that
 * the caller's conninfo (expanded from dbname) overrides them: a bounded connect, TCP
 * keepalives for the long idle time between reloads, and a recognisable name. */
static int ensure_connection(sink_pg_settings_t *ps, char *errstr, size_t errstr_size) {
    if (ps->conn && PQstatus(ps->conn) == CONNECTION_OK) return 0;
    drop_connection(ps);
    static const char *const keys[] = {
        "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "application_name", "dbname",          NULL};
    const char *values[] = {"10", "1", "30", "10", "3", "evpipe-settings", ps->conninfo, NULL};
    ps->conn = PQconnectdbParams(keys, values, 1);
    if (!ps->conn) {
        snprintf(errstr, errstr_size, "cannot connect to PostgreSQL: out of memory");
        return -1;
    }
    if (PQstatus(ps->conn) != CONNECTION_OK) {
        one_line_copy(errstr, errstr_size, "cannot connect to PostgreSQL: ",
                      PQerrorMessage(ps->conn));
        drop_connection(ps);
        return -1;
    }
    /* Changes are announced by the trigger of migration 0002; without it (or on any
     * error) the caller's periodic reload still applies them. */
    PQclear(PQexec(ps->conn, "LISTEN " SINK_PG_SETTINGS_CHANNEL));
    return 0;
}

int sink_pg_settings_changed(sink_pg_settings_t *ps) {
    if (!ps || !ps->conn) return 0;
    if (!PQconsumeInput(ps->conn)) {
        drop_connection(ps); /* reconnects (and listens again) on the next load */
        return 1;
    }
    int n = 0;
    PGnotify *note;
    while ((note = PQnotifies(ps->conn)) != NULL) {
        n++;
        PQfreemem(note);
    }
    return n > 0;
}

/* The settings keys as a PostgreSQL text[] literal: {"a","b",...}. The keys are
 * plain identifiers with dots (no quotes or backslashes to escape). */
static int keys_array_literal(char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; tf_settings_keys[i]; i++) {
        int n = snprintf(out + used, size - used, "%s\"%s\"", i ? "," : "{", tf_settings_keys[i]);
        if (n < 0 || (size_t)n >= size - used) return -1;
        used += (size_t)n;
    }
    int n = snprintf(out + used, size - used, "%s}", used ? "" : "{");
    return n < 0 || (size_t)n >= size - used ? -1 : 0;
}

static PGresult *query_rows(PGconn *conn, const char *keys_literal) {
    const char *params[] = {keys_literal};
    return PQexecParams(conn,
                        "SELECT key, value::text FROM tracking_configs "
                        "WHERE \"isActive\" AND key = ANY($1::text[]) ORDER BY key",
                        1, NULL, params, NULL, NULL, 0);
}

int sink_pg_settings_load(sink_pg_settings_t *ps, unsigned pinned, tf_settings_t *s,
                          char *warning, size_t warning_size, char *errstr,
                          size_t errstr_size) {
    warning[0] = '\0';
    char keys_literal[512];
    if (keys_array_literal(keys_literal, sizeof(keys_literal)) != 0) {
        snprintf(errstr, errstr_size, "tracking_configs: too many settings keys");
        return -1;
    }
    /* A connection the server closed since the last reload (restart, idle timeout,
     * pg_terminate_backend) still looks fine until used: when the query fails on a
     * connection that turns out broken, connect again once and retry. */
    bool was_connected = ps->conn && PQstatus(ps->conn) == CONNECTION_OK;
    if (ensure_connection(ps, errstr, errstr_size) != 0) return -1;
    PGresult *res = query_rows(ps->conn, keys_literal);
    if (PQresultStatus(res) != PGRES_TUPLES_OK && was_connected &&
        PQstatus(ps->conn) != CONNECTION_OK) {
        PQclear(res);
        drop_connection(ps);
        if (ensure_connection(ps, errstr, errstr_size) != 0) return -1;
        res = query_rows(ps->conn, keys_literal);
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* The server's primary message alone ("relation ... does not exist"), without
         * the query quoted; libpq's own message when the server said nothing. */
        const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        one_line_copy(errstr, errstr_size, "cannot read tracking_configs: ",
                      primary && *primary ? primary : PQerrorMessage(ps->conn));
        PQclear(res);
        if (PQstatus(ps->conn) != CONNECTION_OK) drop_connection(ps);
        return -1;
    }
    tf_settings_t next = *s;
    for (int row = 0; row < PQntuples(res); row++) {
        const char *key = PQgetvalue(res, row, 0);
        int index = -1;
        for (int i = 0; tf_settings_keys[i]; i++)
            if (strcmp(tf_settings_keys[i], key) == 0) index = i;
        if (index < 0 || (pinned & (1u << index))) continue;
        char problem[256];
        const char *value = PQgetisnull(res, row, 1) ? "null" : PQgetvalue(res, row, 1);
        if (tf_settings_apply(&next, key, value, problem, sizeof(problem)) < 0 && !warning[0])
            snprintf(warning, warning_size, "tracking_configs row ignored: %s", problem);
    }
    PQclear(res);
    *s = next;
    return 0;
}
