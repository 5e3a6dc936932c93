/* demo_html.c — the demo's one-file HTML overview: inline SVG charts of sessions per
 * day by device, revenue per day, the funnels' steps and the top pages, read from what
 * the stages wrote. Self-contained: no script, font or image from anywhere. Every bar
 * carries its number in data-* attributes, so a test can compare it with the database. */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/demo_html.h"

#define CHART_W 760
#define BAR_AREA_H 220

static const char *const device_order[] = {"DESKTOP", "MOBILE", "TABLET", "UNKNOWN", "BOT"};
static const char *const device_color[] = {"#4063d8", "#e07a1f", "#389826", "#9558b2", "#888"};
static const char *const series_color[] = {"#4063d8", "#e07a1f", "#389826", "#9558b2", "#cb3c33"};

/* Writes s with &, <, >, " and ' escaped. */
static void put_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

static PGresult *query(PGconn *conn, const char *sql, char *errstr, size_t errstr_size) {
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) return res;
    snprintf(errstr, errstr_size, "%s", PQresultErrorMessage(res));
    PQclear(res);
    return NULL;
}

/* Rows (day, device, sessions) of DAILY sessions{deviceType=…}: stacked bars per day. */
static int chart_sessions(FILE *f, PGconn *conn, char *errstr, size_t errstr_size) {
    PGresult *res = query(conn,
                          "SELECT to_char(\"periodStart\" AT TIME ZONE 'UTC', 'YYYY-MM-DD'), "
                          "dimensions->>'deviceType', value::bigint FROM metric_snapshots "
                          "WHERE period = 'DAILY' AND \"metricKey\" LIKE 'sessions{deviceType=%}' "
                          "ORDER BY 1, 2",
                          errstr, errstr_size);
    if (!res) return -1;
    int n = PQntuples(res), days = 0;
    long long max_total = 1, total = 0;
    for (int i = 0; i < n; i++) {
        bool new_day = i == 0 || strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, i - 1, 0)) != 0;
        if (new_day) days++, total = 0;
        total += strtoll(PQgetvalue(res, i, 2), NULL, 10);
        if (total > max_total) max_total = total;
    }
    fputs("<h2>Sessions per day, by device</h2>\n", f);
    if (days == 0) {
        fputs("<p>No sessions.</p>\n", f);
        PQclear(res);
        return 0;
    }
    int slot = (CHART_W - 60) / days, bar = slot * 2 / 3;
    fprintf(f, "<svg class=\"chart\" id=\"sessions-chart\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"Sessions per day by device\">\n",
            CHART_W, BAR_AREA_H + 70, CHART_W, BAR_AREA_H + 70);
    int day = -1;
    double y = BAR_AREA_H;
    for (int i = 0; i < n; i++) {
        if (i == 0 || strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, i - 1, 0)) != 0) {
            day++;
            y = BAR_AREA_H;
            fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n",
                    50 + day * slot + bar / 2, BAR_AREA_H + 16, PQgetvalue(res, i, 0) + 5);
        }
        const char *device = PQgetvalue(res, i, 1);
        long long v = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        const char *color = "#aaa";
        for (size_t d = 0; d < sizeof(device_order) / sizeof(device_order[0]); d++)
            if (strcmp(device, device_order[d]) == 0) color = device_color[d];
        double h = (double)v * (BAR_AREA_H - 10) / (double)max_total;
        y -= h;
        fprintf(f, "<rect class=\"bar\" data-metric=\"sessions\" data-day=\"%s\" "
                   "data-device=\"%s\" data-value=\"%lld\" x=\"%d\" y=\"%.1f\" width=\"%d\" "
                   "height=\"%.1f\" fill=\"%s\"><title>%s %s: %lld sessions</title></rect>\n",
                PQgetvalue(res, i, 0), device, v, 50 + day * slot, y, bar, h, color,
                PQgetvalue(res, i, 0), device, v);
    }
    for (size_t d = 0; d < sizeof(device_order) / sizeof(device_order[0]); d++)
        fprintf(f, "<rect x=\"%zu\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                   "<text x=\"%zu\" y=\"%d\" font-size=\"11\">%s</text>\n",
                50 + d * 110, BAR_AREA_H + 34, device_color[d], 64 + d * 110, BAR_AREA_H + 43,
                device_order[d]);
    fprintf(f, "<text x=\"4\" y=\"12\" font-size=\"11\">max %lld</text>\n</svg>\n", max_total);
    PQclear(res);
    return 0;
}

/* DAILY revenue{currency=…}: one bar per currency and day. */
static int chart_revenue(FILE *f, PGconn *conn, char *errstr, size_t errstr_size) {
    PGresult *res = query(conn,
                          "WITH r AS (SELECT to_char(\"periodStart\" AT TIME ZONE 'UTC', "
                          "'YYYY-MM-DD') AS d, dimensions->>'currency' AS cur, value, dense_rank() "
                          "OVER (ORDER BY dimensions->>'currency') - 1 ci, dense_rank() OVER "
                          "(ORDER BY \"periodStart\") - 1 di FROM metric_snapshots WHERE "
                          "period = 'DAILY' AND \"metricKey\" ~ '^revenue\\{currency=[A-Z]{3}\\}$') "
                          "SELECT d, cur, value, ci, max(ci) OVER () + 1, di, max(value) OVER () "
                          "FROM r ORDER BY 1, 2",
                          errstr, errstr_size);
    if (!res) return -1;
    int n = PQntuples(res);
    fputs("<h2>Revenue per day, by currency</h2>\n", f);
    if (n == 0) {
        fputs("<p>No revenue.</p>\n", f);
        PQclear(res);
        return 0;
    }
    int currencies = atoi(PQgetvalue(res, 0, 4)), days = 1;
    for (int i = 0; i < n; i++)
        if (atoi(PQgetvalue(res, i, 5)) + 1 > days) days = atoi(PQgetvalue(res, i, 5)) + 1;
    double max = strtod(PQgetvalue(res, 0, 6), NULL);
    if (max <= 0) max = 1;
    int slot = (CHART_W - 60) / days, bar = (slot * 3 / 4) / (currencies ? currencies : 1);
    fprintf(f, "<svg class=\"chart\" id=\"revenue-chart\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"Revenue per day\">\n",
            CHART_W, BAR_AREA_H + 50, CHART_W, BAR_AREA_H + 50);
    for (int i = 0; i < n; i++) {
        int c = atoi(PQgetvalue(res, i, 3)), d = atoi(PQgetvalue(res, i, 5));
        double v = strtod(PQgetvalue(res, i, 2), NULL), h = v * (BAR_AREA_H - 10) / max;
        fprintf(f, "<rect class=\"bar\" data-metric=\"revenue\" data-day=\"%s\" "
                   "data-currency=\"%s\" data-value=\"%s\" x=\"%d\" y=\"%.1f\" width=\"%d\" "
                   "height=\"%.1f\" fill=\"%s\"><title>%s %s %s</title></rect>\n",
                PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                50 + d * slot + c * bar, BAR_AREA_H - h, bar > 1 ? bar - 1 : 1, h,
                series_color[c % 5], PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                PQgetvalue(res, i, 2));
        if (c == 0)
            fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n", 50 + d * slot,
                    BAR_AREA_H + 16, PQgetvalue(res, i, 0) + 5);
    }
    char names[5][8] = {{0}};
    for (int i = 0; i < n; i++) {
        int c = atoi(PQgetvalue(res, i, 3));
        if (c < 5) snprintf(names[c], sizeof(names[c]), "%s", PQgetvalue(res, i, 1));
    }
    for (int c = 0; c < currencies && c < 5; c++)
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                   "<text x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n",
                50 + c * 80, BAR_AREA_H + 28, series_color[c], 64 + c * 80, BAR_AREA_H + 37,
                names[c]);
    fputs("</svg>\n", f);
    PQclear(res);
    return 0;
}

/* Horizontal bars: rows of (label, value, note) from sql. */
static int chart_hbars(FILE *f, PGconn *conn, const char *id, const char *metric,
                       const char *sql, char *errstr, size_t errstr_size) {
    PGresult *res = query(conn, sql, errstr, errstr_size);
    if (!res) return -1;
    int n = PQntuples(res);
    double max = 1;
    for (int i = 0; i < n; i++)
        if (strtod(PQgetvalue(res, i, 1), NULL) > max) max = strtod(PQgetvalue(res, i, 1), NULL);
    fprintf(f, "<svg class=\"chart\" id=\"%s\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "role=\"img\">\n",
            id, CHART_W, 24 * n + 10, CHART_W, 24 * n + 10);
    for (int i = 0; i < n; i++) {
        double v = strtod(PQgetvalue(res, i, 1), NULL), w = v * 420 / max;
        fprintf(f, "<text x=\"0\" y=\"%d\" font-size=\"12\">", 24 * i + 17);
        put_text(f, PQgetvalue(res, i, 0));
        fprintf(f, "</text><rect class=\"bar\" data-metric=\"%s\" data-label=\"", metric);
        put_text(f, PQgetvalue(res, i, 0));
        fprintf(f, "\" data-value=\"%s\" x=\"220\" y=\"%d\" width=\"%.1f\" height=\"18\" "
                   "fill=\"#4063d8\"/><text x=\"%.1f\" y=\"%d\" font-size=\"12\">%s ",
                PQgetvalue(res, i, 1), 24 * i + 4, w, 226 + w, 24 * i + 17, PQgetvalue(res, i, 1));
        put_text(f, PQgetvalue(res, i, 2));
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
    PQclear(res);
    return 0;
}

/* Each funnel's steps over its whole range (its MONTHLY results added up), with the
 * drop-off from the previous step. */
static int chart_funnels(FILE *f, PGconn *conn, char *errstr, size_t errstr_size) {
    PGresult *res = query(conn,
                          "SELECT f.id, f.name FROM funnels f WHERE EXISTS (SELECT 1 FROM "
                          "funnel_results r WHERE r.\"funnelId\" = f.id) ORDER BY f.name",
                          errstr, errstr_size);
    if (!res) return -1;
    fputs("<h2>Funnels</h2>\n", f);
    if (PQntuples(res) == 0) fputs("<p>No funnel results.</p>\n", f);
    for (int i = 0; i < PQntuples(res); i++) {
        fputs("<h3>", f);
        put_text(f, PQgetvalue(res, i, 1));
        fputs("</h3>\n", f);
        char sql[1024], id[64];
        snprintf(id, sizeof(id), "funnel-%d", i + 1);
        snprintf(sql, sizeof(sql),
                 "SELECT (s->>'step') || '. ' || (s->>'type'), sum((s->>'count')::bigint), "
                 "CASE WHEN (s->>'step')::int = 1 THEN '' ELSE '(drop-off ' || "
                 "sum((s->>'dropOff')::bigint) || ')' END FROM funnel_results r, "
                 "jsonb_array_elements(r.\"stepResults\") s WHERE r.\"funnelId\" = '%s' AND "
                 "r.period = 'MONTHLY' GROUP BY (s->>'step')::int, s->>'step', s->>'type' "
                 "ORDER BY (s->>'step')::int",
                 PQgetvalue(res, i, 0));
        if (chart_hbars(f, conn, id, "funnel-step", sql, errstr, errstr_size) != 0) {
            PQclear(res);
            return -1;
        }
    }
    PQclear(res);
    return 0;
}

int demo_write_html(PGconn *conn, const char *path, char *errstr, size_t errstr_size) {
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(errstr, errstr_size, "%s: cannot write", path);
        return -1;
    }
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<title>evpipe demo overview</title>\n<style>body{font-family:sans-serif;"
          "max-width:800px;margin:2em auto;color:#222}h2{margin-top:1.6em}"
          "svg.chart{display:block;background:#fafafa;border:1px solid #ddd}</style>\n"
          "</head><body>\n<h1>evpipe demo overview</h1>\n"
          "<p>What the pipeline stored and computed: metric snapshots (bots excluded), "
          "funnel results and page views, read from PostgreSQL.</p>\n",
          f);
    int rc = chart_sessions(f, conn, errstr, errstr_size);
    if (rc == 0) rc = chart_revenue(f, conn, errstr, errstr_size);
    if (rc == 0) rc = chart_funnels(f, conn, errstr, errstr_size);
    if (rc == 0) {
        fputs("<h2>Top pages (page views)</h2>\n", f);
        rc = chart_hbars(f, conn, "pages-chart", "pageviews",
                         "SELECT coalesce(path, '-'), count(*), '' FROM page_views "
                         "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10",
                         errstr, errstr_size);
    }
    fputs("</body></html>\n", f);
    if (fclose(f) != 0 && rc == 0) {
        snprintf(errstr, errstr_size, "%s: write failed", path);
        rc = -1;
    }
    return rc;
}
