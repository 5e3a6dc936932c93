/* pg_settings.c — runtime settings from tracking_configs (see pg_settings.h). */
#include "sinks/pg_settings.h"

#include <libpq-fe.h>
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

static void chomp_copy(char *dst, size_t size, const char *src) {
    snprintf(dst, size, "%s", src);
    dst[strcspn(dst, "\n")] = '\0';
}

int sink_pg_settings_load(sink_pg_settings_t *ps, unsigned pinned, tf_settings_t *s,
                          char *warning, size_t warning_size, char *errstr,
                          size_t errstr_size) {
    warning[0] = '\0';
    if (ps->conn && PQstatus(ps->conn) != CONNECTION_OK) {
        PQfinish(ps->conn);
        ps->conn = NULL;
    }
    if (!ps->conn) {
        ps->conn = PQconnectdb(ps->conninfo);
        if (PQstatus(ps->conn) != CONNECTION_OK) {
            chomp_copy(errstr, errstr_size, PQerrorMessage(ps->conn));
            PQfinish(ps->conn);
            ps->conn = NULL;
            return -1;
        }
    }
    PGresult *res = PQexec(ps->conn,
                           "SELECT key, value::text FROM tracking_configs "
                           "WHERE \"isActive\" AND key IN ('session.timeoutSeconds', "
                           "'session.maxDurationSeconds', 'conversion.types', "
                           "'bots.excludeFromMetrics') ORDER BY key");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        chomp_copy(errstr, errstr_size, PQerrorMessage(ps->conn));
        PQclear(res);
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
