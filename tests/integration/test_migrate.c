/* test_migrate.c — `evpipe migrate` against a real PostgreSQL: the exact SPEC §2 seed
 * schema, the pipeline migration, rollback to nothing, the advisory lock, verify,
 * status, error reports and append-only audit logs. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/testlib.h"
#include "tools/migrate.h"

/* ---------------------------------------------------------------- helpers */

static char *fmt_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_alloc(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ck_assert(n >= 0);
    char *out = malloc((size_t)n + 1);
    ck_assert(out != NULL);
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* Runs `evpipe migrate ARGS --database URL`; returns the exit status. */
static int run_migrate(const char *url, const char *args, char **out, char **err) {
    char *cmd = fmt_alloc("'%s' migrate %s --database '%s'", tl_evpipe_bin(), args, url);
    int rc = tl_run(cmd, out, err);
    free(cmd);
    return rc;
}

/* Runs the migrator and asserts it exits 0. */
static void migrate_ok(const char *url, const char *args) {
    char *out = NULL, *err = NULL;
    int rc = run_migrate(url, args, &out, &err);
    ck_assert_msg(rc == 0, "migrate %s exited %d:\n%s%s", args, rc, out, err);
    free(out);
    free(err);
}

static char *query_text(PGconn *conn, const char *sql) {
    char *v = tl_query_text(conn, sql);
    return v ? v : strdup("(null)");
}

/* Asserts that sql returns exactly want as its first value. */
static void assert_query(PGconn *conn, const char *sql, const char *want) {
    char *got = query_text(conn, sql);
    ck_assert_msg(strcmp(got, want) == 0, "query: %s\n got: %s\nwant: %s", sql, got, want);
    free(got);
}

static char *read_whole(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    ck_assert(buf != NULL);
    while ((n = fread(buf + len, 1, cap - 1 - len, f)) > 0) {
        len += n;
        if (len + 1 >= cap) break;
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int count_substr(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

/* The embedded file with this name (the test binary links the same migrations). */
static const ev_embedded_file_t *embedded(const char *name) {
    for (int i = 0; i < ev_embedded_migration_count; i++)
        if (strcmp(ev_embedded_migrations[i].name, name) == 0) return &ev_embedded_migrations[i];
    ck_abort_msg("migration %s is not embedded", name);
    return NULL;
}

static int embedded_up_count(void) {
    int n = 0;
    for (int i = 0; i < ev_embedded_migration_count; i++) {
        const char *name = ev_embedded_migrations[i].name;
        size_t len = strlen(name);
        if (len > 7 && strcmp(name + len - 7, ".up.sql") == 0) n++;
    }
    return n;
}

/* 1-based line of the first line of file that contains needle. */
static int line_of(const ev_embedded_file_t *f, const char *needle) {
    const char *hit = strstr(f->data, needle);
    ck_assert_msg(hit != NULL, "%s does not contain %s", f->name, needle);
    int line = 1;
    for (const char *p = f->data; p < hit; p++)
        if (*p == '\n') line++;
    return line;
}

/* Everything that defines the schema (columns with types, nullability and defaults,
 * constraints, indexes, enum types with values, triggers, functions, other relations),
 * schema_migrations excepted, one sorted line each. */
static char *schema_fingerprint(PGconn *conn) {
    return query_text(
        conn,
        "SELECT coalesce(string_agg(x, E'\\n' ORDER BY x), '') FROM ("
        " SELECT 'col ' || c.relname || '.' || a.attname || ' ' ||"
        "   format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' NOT NULL'"
        "   ELSE '' END || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')"
        " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
        " LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
        "   AND c.relname <> 'schema_migrations' AND a.attnum > 0 AND NOT a.attisdropped"
        " UNION ALL SELECT 'con ' || conrelid::regclass::text || ' ' || conname || ' ' ||"
        "   pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = 'public'::regnamespace"
        "   AND conrelid::regclass::text <> 'schema_migrations'"
        " UNION ALL SELECT 'idx ' || indexdef FROM pg_indexes"
        " WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        " UNION ALL SELECT 'enum ' || t.typname || ' ' || string_agg(e.enumlabel, ','"
        "   ORDER BY e.enumsortorder) FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid"
        " WHERE t.typnamespace = 'public'::regnamespace GROUP BY t.typname"
        " UNION ALL SELECT 'trg ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
        " UNION ALL SELECT 'fn ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc) FROM pg_proc "
        "p"
        " WHERE p.pronamespace = 'public'::regnamespace"
        " UNION ALL SELECT 'rel ' || relname || ' ' || relkind::text FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace AND relkind NOT IN ('r', 'i')"
        "   AND relname NOT LIKE 'schema_migrations%') s(x)");
}

/* Asserts two fingerprints are equal, naming the first line where they differ (the
 * whole text is too long for a failure message). */
static void assert_same_schema(const char *got, const char *want, const char *what) {
    if (strcmp(got, want) == 0) return;
    const char *g = got, *w = want;
    while (*g && *g == *w) {
        g++;
        w++;
    }
    while (g > got && g[-1] != '\n') {
        g--;
        w--;
    }
    ck_abort_msg("%s: schemas differ at\n got: %.300s\nwant: %.300s", what, g, w);
}

static const char *const SEED_TABLES =
    "analytics_events,analytics_sessions,audit_logs,conversion_events,dashboard_widgets,"
    "dashboards,exports,funnel_results,funnels,metric_snapshots,page_views,reports,"
    "tracking_configs";

static const char *const TABLES_SQL =
    "SELECT coalesce(string_agg(table_name, ',' ORDER BY table_name), '') FROM "
    "information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' "
    "AND table_name <> 'schema_migrations'";

/* Columns of one table, "name type[ NOT NULL][ DEFAULT expr]" in order, "; "-joined. */
static char *columns_of(PGconn *conn, const char *table) {
    char *sql = fmt_alloc(
        "SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||"
        " CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END ||"
        " coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), ''), '; ' ORDER BY a.attnum)"
        " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND"
        " d.adnum = a.attnum WHERE a.attrelid = 'public.%s'::regclass AND a.attnum > 0 AND"
        " NOT a.attisdropped",
        table);
    char *cols = query_text(conn, sql);
    free(sql);
    return cols;
}

#define TS "timestamp(3) with time zone"
#define ID "id uuid NOT NULL DEFAULT gen_random_uuid(); "
#define CREATED "createdAt " TS " NOT NULL DEFAULT now()"
#define UPDATED "updatedAt " TS " NOT NULL DEFAULT now()"

/* SPEC §2, table by table, as 0001_init creates it. */
static const struct {
    const char *table;
    const char *columns;
} SEED_COLUMNS[] = {
    {"analytics_sessions",
     ID "visitorId text NOT NULL; userId text; startedAt " TS " NOT NULL; endedAt " TS
        " NOT NULL; duration integer NOT NULL DEFAULT 0; pageViewCount integer NOT NULL "
        "DEFAULT 0; eventCount integer NOT NULL DEFAULT 0; isBounce boolean NOT NULL DEFAULT "
        "true; entryPage text; exitPage text; referrer text; referrerDomain text; utmSource "
        "text; utmMedium text; utmCampaign text; utmTerm text; utmContent text; deviceType "
        "\"DeviceType\" NOT NULL DEFAULT 'UNKNOWN'::\"DeviceType\"; browser text; "
        "browserVersion text; os text; osVersion text; userAgent text; country character(2); "
        "region text; city text; language text; screenWidth integer; screenHeight integer; " CREATED
        "; " UPDATED},
    {"analytics_events",
     ID "sessionId uuid NOT NULL; eventId text NOT NULL; type \"EventType\" NOT NULL; name "
        "text; visitorId text NOT NULL; userId text; url text; path text; properties jsonb; "
        "occurredAt " TS " NOT NULL; receivedAt " TS " NOT NULL DEFAULT now(); " CREATED},
    {"page_views",
     ID "sessionId uuid NOT NULL; eventId text; visitorId text NOT NULL; url text NOT NULL; "
        "path text; title text; referrer text; timeOnPage integer; scrollDepth integer; "
        "viewedAt " TS " NOT NULL; " CREATED "; " UPDATED},
    {"conversion_events",
     ID "sessionId uuid NOT NULL; eventId text; visitorId text NOT NULL; userId text; type "
        "\"EventType\" NOT NULL; value numeric(14,2); currency character(3); utmSource text; "
        "utmMedium text; utmCampaign text; metadata jsonb; occurredAt " TS " NOT NULL; " CREATED},
    {"funnels",
     ID "name text NOT NULL; description text; steps jsonb NOT NULL; conversionWindowSeconds "
        "integer NOT NULL DEFAULT 86400; scope text NOT NULL DEFAULT 'visitor'::text; status "
        "\"FunnelStatus\" NOT NULL DEFAULT 'ACTIVE'::\"FunnelStatus\"; createdBy text; " CREATED
        "; " UPDATED},
    {"funnel_results", ID
     "funnelId uuid NOT NULL; period \"MetricPeriod\" NOT NULL; periodStart " TS
     " NOT NULL; periodEnd " TS " NOT NULL; entrants integer NOT NULL DEFAULT 0; "
     "conversions integer NOT NULL DEFAULT 0; conversionRate double precision NOT NULL "
     "DEFAULT 0; stepResults jsonb NOT NULL; computedAt " TS " NOT NULL DEFAULT now(); " CREATED},
    {"dashboards",
     ID "name text NOT NULL; description text; type \"DashboardType\" NOT NULL DEFAULT "
        "'CUSTOM'::\"DashboardType\"; isDefault boolean NOT NULL DEFAULT false; layout jsonb; "
        "createdBy text; " CREATED "; " UPDATED},
    {"dashboard_widgets",
     ID "dashboardId uuid NOT NULL; title text NOT NULL; widgetType text NOT NULL; metricKey "
        "text; aggregation \"MetricAggregation\"; period \"MetricPeriod\"; config jsonb; "
        "position jsonb; " CREATED "; " UPDATED},
    {"metric_snapshots",
     ID "metricKey text NOT NULL; period \"MetricPeriod\" NOT NULL; periodStart " TS
        " NOT NULL; periodEnd " TS " NOT NULL; aggregation \"MetricAggregation\" NOT NULL; "
        "value double precision NOT NULL; sampleCount bigint NOT NULL DEFAULT 0; dimensions "
        "jsonb NOT NULL DEFAULT '{}'::jsonb; computedAt " TS " NOT NULL DEFAULT now(); " CREATED},
    {"tracking_configs",
     ID "key text NOT NULL; value jsonb NOT NULL; description text; isActive boolean NOT NULL "
        "DEFAULT true; " CREATED "; " UPDATED},
    {"reports",
     ID "name text NOT NULL; type \"ReportType\" NOT NULL; status \"ReportStatus\" NOT NULL "
        "DEFAULT 'PENDING'::\"ReportStatus\"; parameters jsonb; result jsonb; error text; "
        "requestedBy text; startedAt " TS "; completedAt " TS "; " CREATED "; " UPDATED},
    {"exports",
     ID "reportId uuid; format \"ExportFormat\" NOT NULL; status \"ExportStatus\" NOT NULL "
        "DEFAULT 'PENDING'::\"ExportStatus\"; parameters jsonb; destinationUrl text; fileUrl "
        "text; fileSize bigint; rowCount bigint; checksum text; attempts integer NOT NULL "
        "DEFAULT 0; error text; expiresAt " TS "; requestedBy text; startedAt " TS
        "; completedAt " TS "; " CREATED "; " UPDATED},
    {"audit_logs",
     ID "action text NOT NULL; entityType text NOT NULL; entityId text; actorType text; "
        "actorId text; changes jsonb; " CREATED},
};

/* SPEC §2's enums with their values in order. */
static const struct {
    const char *type;
    const char *values;
} SEED_ENUMS[] = {
    {"EventType",
     "PAGE_VIEW,PAGE_LEAVE,PRODUCT_VIEW,PRODUCT_LIST_VIEW,SEARCH,ADD_TO_CART,REMOVE_FROM_CART,"
     "CHECKOUT_START,PURCHASE,APPOINTMENT_START,APPOINTMENT_COMPLETE,APPOINTMENT_CANCEL,"
     "FORM_START,FORM_SUBMIT,LEAD,SIGN_UP,LOGIN,CLICK,SCROLL,OUTBOUND_CLICK,FILE_DOWNLOAD,"
     "VIDEO_PLAY,CUSTOM"},
    {"DeviceType", "DESKTOP,TABLET,MOBILE,BOT,UNKNOWN"},
    {"FunnelStatus", "ACTIVE,PAUSED,ARCHIVED"},
    {"ExportStatus", "PENDING,PROCESSING,COMPLETED,FAILED,EXPIRED"},
    {"ExportFormat", "CSV,JSON,XLSX"},
    {"ReportType", "TRAFFIC,CONVERSIONS,APPOINTMENTS,PRODUCTS,FUNNELS,COHORTS,CUSTOM"},
    {"ReportStatus", "PENDING,PROCESSING,COMPLETED,FAILED"},
    {"DashboardType", "OVERVIEW,MARKETING,SALES,OPERATIONS,CUSTOM"},
    {"MetricAggregation", "SUM,AVG,COUNT,MIN,MAX,UNIQUE"},
    {"MetricPeriod", "HOURLY,DAILY,WEEKLY,MONTHLY,YEARLY"},
};

static char *enum_values(PGconn *conn, const char *type) {
    char *sql = fmt_alloc("SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM "
                          "pg_enum e JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typname = "
                          "'%s' AND t.typnamespace = 'public'::regnamespace",
                          type);
    char *v = query_text(conn, sql);
    free(sql);
    return v;
}

/* Runs sql expecting it to fail; returns "SQLSTATE primary message". */
static char *exec_fail(PGconn *conn, const char *sql) {
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    ck_assert_msg(st == PGRES_FATAL_ERROR, "expected an error from: %s", sql);
    char *out = fmt_alloc("%s %s", PQresultErrorField(res, PG_DIAG_SQLSTATE),
                          PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
    PQclear(res);
    return out;
}

/* Collects the notifications received so far as "channel:payload" lines. */
static char *take_notifies(PGconn *conn) {
    char buf[4096];
    size_t used = 0;
    buf[0] = '\0';
    ck_assert(PQconsumeInput(conn) == 1);
    PGnotify *n;
    while ((n = PQnotifies(conn)) != NULL) {
        int w = snprintf(buf + used, sizeof(buf) - used, "%s:%s\n", n->relname, n->extra);
        if (w > 0 && used + (size_t)w < sizeof(buf)) used += (size_t)w;
        PQfreemem(n);
    }
    return strdup(buf);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_migrate_up_creates_seed_schema) {
    char *url = tl_db_create("mig_seed");
    migrate_ok(url, "up 1");
    PGconn *conn = tl_connect(url);

    /* Exactly the 13 tables, each with exactly SPEC §2's columns. */
    assert_query(conn, TABLES_SQL, SEED_TABLES);
    size_t n_tables = sizeof(SEED_COLUMNS) / sizeof(SEED_COLUMNS[0]);
    ck_assert_int_eq(n_tables, 13);
    for (size_t i = 0; i < n_tables; i++) {
        char *cols = columns_of(conn, SEED_COLUMNS[i].table);
        ck_assert_msg(strcmp(cols, SEED_COLUMNS[i].columns) == 0, "%s:\n got: %s\nwant: %s",
                      SEED_COLUMNS[i].table, cols, SEED_COLUMNS[i].columns);
        free(cols);
    }
    /* Every table: UUID primary key named <table>_pkey; no timestamp without zone or
     * precision other than 3. */
    assert_query(conn,
                 "SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND connamespace = "
                 "'public'::regnamespace AND conname = conrelid::regclass::text || '_pkey' AND "
                 "pg_get_constraintdef(oid) = 'PRIMARY KEY (id)'",
                 "13");
    assert_query(conn,
                 "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' "
                 "AND (data_type = 'timestamp without time zone' OR (data_type = 'timestamp "
                 "with time zone' AND datetime_precision <> 3))",
                 "0");

    /* The 10 enums, values in order, and no other type. */
    size_t n_enums = sizeof(SEED_ENUMS) / sizeof(SEED_ENUMS[0]);
    ck_assert_int_eq(n_enums, 10);
    for (size_t i = 0; i < n_enums; i++) {
        char *values = enum_values(conn, SEED_ENUMS[i].type);
        ck_assert_msg(strcmp(values, SEED_ENUMS[i].values) == 0, "%s:\n got: %s\nwant: %s",
                      SEED_ENUMS[i].type, values, SEED_ENUMS[i].values);
        free(values);
    }
    assert_query(conn,
                 "SELECT count(*) FROM pg_type WHERE typnamespace = 'public'::regnamespace AND "
                 "typtype = 'e'",
                 "10");

    /* The 4 foreign keys with their actions (confdeltype/confupdtype: r restrict,
     * c cascade, n set null), the 2 unique constraints, nothing else. */
    assert_query(conn,
                 "SELECT string_agg(conname || ' ' || conrelid::regclass::text || ' -> ' || "
                 "confrelid::regclass::text || ' del=' || confdeltype::text || ' upd=' || "
                 "confupdtype::text || ' ' || pg_get_constraintdef(oid), E'\\n' ORDER BY conname) "
                 "FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace",
                 "analytics_events_sessionId_fkey analytics_events -> analytics_sessions del=r "
                 "upd=c FOREIGN KEY (\"sessionId\") REFERENCES analytics_sessions(id) ON UPDATE "
                 "CASCADE ON DELETE RESTRICT\n"
                 "dashboard_widgets_dashboardId_fkey dashboard_widgets -> dashboards del=c "
                 "upd=c FOREIGN KEY (\"dashboardId\") REFERENCES dashboards(id) ON UPDATE "
                 "CASCADE ON DELETE CASCADE\n"
                 "exports_reportId_fkey exports -> reports del=n upd=c FOREIGN KEY "
                 "(\"reportId\") REFERENCES reports(id) ON UPDATE CASCADE ON DELETE SET NULL\n"
                 "funnel_results_funnelId_fkey funnel_results -> funnels del=r upd=c FOREIGN "
                 "KEY (\"funnelId\") REFERENCES funnels(id) ON UPDATE CASCADE ON DELETE "
                 "RESTRICT");
    assert_query(conn,
                 "SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), E'\\n' ORDER "
                 "BY conname) FROM pg_constraint WHERE contype = 'u' AND connamespace = "
                 "'public'::regnamespace",
                 "metric_snapshots_metricKey_period_periodStart_periodEnd_key UNIQUE "
                 "(\"metricKey\", period, \"periodStart\", \"periodEnd\")\n"
                 "tracking_configs_key_key UNIQUE (key)");
    assert_query(conn,
                 "SELECT count(*) FROM pg_constraint WHERE connamespace = "
                 "'public'::regnamespace AND contype NOT IN ('p', 'f', 'u')",
                 "0");
    /* The seed has no unique index beyond primary keys and the 2 constraints. */
    assert_query(conn,
                 "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE "
                 "c.relnamespace = 'public'::regnamespace AND i.indisunique AND c.relname <> "
                 "'schema_migrations'",
                 "15");

    /* The actions behave as declared. */
    tl_exec(conn, "INSERT INTO dashboards (id, name) VALUES "
                  "('00000000-0000-0000-0000-000000000001', 'd')");
    tl_exec(conn, "INSERT INTO dashboard_widgets (\"dashboardId\", title, \"widgetType\") "
                  "VALUES ('00000000-0000-0000-0000-000000000001', 'w', 'line')");
    tl_exec(conn, "DELETE FROM dashboards");
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM dashboard_widgets"), 0);
    tl_exec(conn, "INSERT INTO reports (id, name, type) VALUES "
                  "('00000000-0000-0000-0000-000000000002', 'r', 'TRAFFIC')");
    tl_exec(conn, "INSERT INTO exports (\"reportId\", format) VALUES "
                  "('00000000-0000-0000-0000-000000000002', 'CSV')");
    tl_exec(conn, "DELETE FROM reports");
    assert_query(conn, "SELECT count(*) || ' ' || count(\"reportId\") FROM exports", "1 0");
    tl_exec(conn, "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", "
                  "\"endedAt\") VALUES ('00000000-0000-0000-0000-000000000003', 'v', now(), "
                  "now())");
    tl_exec(conn, "INSERT INTO analytics_events (\"sessionId\", \"eventId\", type, "
                  "\"visitorId\", \"occurredAt\") VALUES "
                  "('00000000-0000-0000-0000-000000000003', 'e1', 'PAGE_VIEW', 'v', now())");
    char *err = exec_fail(conn, "DELETE FROM analytics_sessions");
    ck_assert_msg(strncmp(err, "23503 ", 6) == 0, "got %s", err);
    free(err);
    tl_exec(conn, "UPDATE analytics_sessions SET id = '00000000-0000-0000-0000-000000000004'");
    assert_query(conn, "SELECT \"sessionId\"::text FROM analytics_events",
                 "00000000-0000-0000-0000-000000000004");
    err =
        exec_fail(conn, "INSERT INTO tracking_configs (key, value) VALUES ('k', '1'), ('k', '2')");
    ck_assert_msg(strncmp(err, "23505 ", 6) == 0, "got %s", err);
    free(err);

    /* Bookkept with the checksum of the embedded file. */
    char sum[65];
    const ev_embedded_file_t *f = embedded("0001_init.up.sql");
    ev_sha256_hex(f->data, f->len, sum);
    char *want = fmt_alloc("0001_init %s", sum);
    assert_query(conn, "SELECT string_agg(version || ' ' || checksum, ',') FROM schema_migrations",
                 want);
    free(want);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_migrate_up_adds_pipeline_objects) {
    char *url = tl_db_create("mig_pipe");
    migrate_ok(url, "up 2");
    PGconn *conn = tl_connect(url);
    assert_query(conn, "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations",
                 "0001_init,0002_pipeline");
    assert_query(conn, TABLES_SQL,
                 "analytics_events,analytics_sessions,audit_logs,consumer_offsets,"
                 "conversion_events,dashboard_widgets,dashboards,exports,funnel_results,funnels,"
                 "metric_snapshots,page_views,reports,tracking_configs");

    char *v = enum_values(conn, "SessionStartReason");
    ck_assert_str_eq(v, "FIRST,INACTIVITY,MAX_DURATION,CAMPAIGN,MIDNIGHT");
    free(v);
    char *cols = columns_of(conn, "analytics_sessions");
    const char *tail = "; startReason \"SessionStartReason\" NOT NULL DEFAULT "
                       "'FIRST'::\"SessionStartReason\"";
    char *want = fmt_alloc("%s%s", SEED_COLUMNS[0].columns, tail);
    ck_assert_str_eq(cols, want);
    free(cols);
    free(want);
    cols = columns_of(conn, "analytics_events");
    want = fmt_alloc("%s; referrer text; pageViewId text; timeOnPage double precision; "
                     "scrollDepth integer",
                     SEED_COLUMNS[1].columns);
    ck_assert_str_eq(cols, want);
    free(cols);
    free(want);
    cols = columns_of(conn, "consumer_offsets");
    ck_assert_str_eq(cols, "consumerGroup text NOT NULL; topic text NOT NULL; partition integer "
                           "NOT NULL; nextOffset bigint NOT NULL; updatedAt " TS
                           " NOT NULL DEFAULT now()");
    free(cols);
    assert_query(conn,
                 "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = "
                 "'consumer_offsets_pkey'",
                 "PRIMARY KEY (\"consumerGroup\", topic, partition)");
    assert_query(conn,
                 "SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), E'\\n' ORDER "
                 "BY conname) FROM pg_constraint WHERE contype = 'u' AND connamespace = "
                 "'public'::regnamespace",
                 "funnel_results_funnelId_period_periodStart_periodEnd_key UNIQUE (\"funnelId\", "
                 "period, \"periodStart\", \"periodEnd\")\n"
                 "metric_snapshots_metricKey_period_periodStart_periodEnd_key UNIQUE "
                 "(\"metricKey\", period, \"periodStart\", \"periodEnd\")\n"
                 "tracking_configs_key_key UNIQUE (key)");

    /* 0002's indexes, exactly. */
    static const char *const indexes[][2] = {
        {"analytics_events_eventId_key",
         "CREATE UNIQUE INDEX \"analytics_events_eventId_key\" ON public.analytics_events USING "
         "btree (\"eventId\")"},
        {"page_views_eventId_key", "CREATE UNIQUE INDEX \"page_views_eventId_key\" ON "
                                   "public.page_views USING btree (\"eventId\")"},
        {"conversion_events_eventId_key",
         "CREATE UNIQUE INDEX \"conversion_events_eventId_key\" ON public.conversion_events "
         "USING btree (\"eventId\")"},
        {"analytics_sessions_visitorId_endedAt_idx",
         "CREATE INDEX \"analytics_sessions_visitorId_endedAt_idx\" ON "
         "public.analytics_sessions USING btree (\"visitorId\", \"endedAt\")"},
        {"analytics_events_sessionId_idx", "CREATE INDEX \"analytics_events_sessionId_idx\" ON "
                                           "public.analytics_events USING btree (\"sessionId\")"},
        {"analytics_events_visitorId_occurredAt_idx",
         "CREATE INDEX \"analytics_events_visitorId_occurredAt_idx\" ON public.analytics_events "
         "USING btree (\"visitorId\", \"occurredAt\")"},
        {"page_views_sessionId_idx", "CREATE INDEX \"page_views_sessionId_idx\" ON "
                                     "public.page_views USING btree (\"sessionId\")"},
        {"conversion_events_sessionId_idx",
         "CREATE INDEX \"conversion_events_sessionId_idx\" ON public.conversion_events USING "
         "btree (\"sessionId\")"},
    };
    for (size_t i = 0; i < sizeof(indexes) / sizeof(indexes[0]); i++) {
        char *sql =
            fmt_alloc("SELECT indexdef FROM pg_indexes WHERE indexname = '%s'", indexes[i][0]);
        assert_query(conn, sql, indexes[i][1]);
        free(sql);
    }

    /* eventId is an idempotency key in all three tables. */
    tl_exec(conn, "INSERT INTO analytics_sessions (id, \"visitorId\", \"startedAt\", "
                  "\"endedAt\") VALUES ('00000000-0000-0000-0000-000000000001', 'v', now(), "
                  "now())");
    assert_query(conn, "SELECT \"startReason\"::text FROM analytics_sessions", "FIRST");
    const char *dup_sql[] = {
        "INSERT INTO analytics_events (\"sessionId\", \"eventId\", type, \"visitorId\", "
        "\"occurredAt\") VALUES ('00000000-0000-0000-0000-000000000001', 'e1', 'PAGE_VIEW', "
        "'v', now())",
        "INSERT INTO page_views (\"sessionId\", \"eventId\", \"visitorId\", url, \"viewedAt\") "
        "VALUES ('00000000-0000-0000-0000-000000000001', 'e1', 'v', 'https://x.test/', now())",
        "INSERT INTO conversion_events (\"sessionId\", \"eventId\", \"visitorId\", type, "
        "\"occurredAt\") VALUES ('00000000-0000-0000-0000-000000000001', 'e1', 'v', 'LEAD', "
        "now())",
    };
    for (size_t i = 0; i < 3; i++) {
        tl_exec(conn, dup_sql[i]);
        char *err = exec_fail(conn, dup_sql[i]);
        ck_assert_msg(strncmp(err, "23505 ", 6) == 0, "%s: %s", dup_sql[i], err);
        free(err);
    }
    tl_exec(conn, "INSERT INTO funnels (id, name, steps) VALUES "
                  "('00000000-0000-0000-0000-000000000005', 'f', '[]')");
    const char *fr = "INSERT INTO funnel_results (\"funnelId\", period, \"periodStart\", "
                     "\"periodEnd\", \"stepResults\") VALUES "
                     "('00000000-0000-0000-0000-000000000005', 'DAILY', '2026-01-01Z', "
                     "'2026-01-02Z', '[]')";
    tl_exec(conn, fr);
    char *err = exec_fail(conn, fr);
    ck_assert_msg(strncmp(err, "23505 ", 6) == 0, "got %s", err);
    free(err);

    /* Exports that become PENDING and every settings change are announced. */
    tl_exec(conn, "LISTEN evpipe_exports");
    tl_exec(conn, "LISTEN evpipe_tracking_configs");
    char *id = query_text(conn, "INSERT INTO exports (format) VALUES ('CSV') RETURNING id");
    char *n = take_notifies(conn);
    want = fmt_alloc("evpipe_exports:%s\n", id);
    ck_assert_str_eq(n, want);
    free(n);
    tl_exec(conn, "UPDATE exports SET status = 'PROCESSING'");
    tl_exec(conn, "UPDATE exports SET attempts = 1");
    n = take_notifies(conn);
    ck_assert_str_eq(n, "");
    free(n);
    tl_exec(conn, "UPDATE exports SET status = 'PENDING'");
    tl_exec(conn, "UPDATE exports SET attempts = 2");
    n = take_notifies(conn);
    ck_assert_str_eq(n, want);
    free(n);
    free(want);
    free(id);
    tl_exec(conn, "INSERT INTO exports (format, status) VALUES ('JSON', 'COMPLETED')");
    n = take_notifies(conn);
    ck_assert_str_eq(n, "");
    free(n);
    tl_exec(conn, "INSERT INTO tracking_configs (key, value) VALUES "
                  "('session.timeoutSeconds', '900')");
    tl_exec(conn, "UPDATE tracking_configs SET value = '1200'");
    tl_exec(conn, "UPDATE tracking_configs SET key = 'session.maxDurationSeconds'");
    tl_exec(conn, "DELETE FROM tracking_configs");
    n = take_notifies(conn);
    ck_assert_str_eq(n, "evpipe_tracking_configs:session.timeoutSeconds\n"
                        "evpipe_tracking_configs:session.timeoutSeconds\n"
                        "evpipe_tracking_configs:session.maxDurationSeconds\n"
                        "evpipe_tracking_configs:session.timeoutSeconds\n"
                        "evpipe_tracking_configs:session.maxDurationSeconds\n");
    free(n);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_migrate_audit_logs_append_only) {
    char *url = tl_db_create("mig_audit");
    migrate_ok(url, "up 2");
    PGconn *conn = tl_connect(url);
    tl_exec(conn, "INSERT INTO audit_logs (action, \"entityType\", \"entityId\") VALUES "
                  "('export.status', 'exports', 'x1')");
    const char *refused[] = {"UPDATE audit_logs SET action = 'changed'", "DELETE FROM audit_logs",
                             "TRUNCATE audit_logs"};
    for (size_t i = 0; i < 3; i++) {
        char *err = exec_fail(conn, refused[i]);
        ck_assert_msg(strcmp(err, "P0001 audit_logs is append-only") == 0, "%s: %s", refused[i],
                      err);
        free(err);
    }
    assert_query(conn, "SELECT count(*) || ' ' || min(action) FROM audit_logs", "1 export.status");
    tl_exec(conn, "INSERT INTO audit_logs (action, \"entityType\") VALUES ('a2', 'reports')");
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM audit_logs"), 2);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_migrate_down_to_zero_leaves_nothing) {
    char *seed_url = tl_db_create("mig_ref1");
    char *full_url = tl_db_create("mig_ref2");
    char *url = tl_db_create("mig_down");
    migrate_ok(seed_url, "up 1");
    migrate_ok(full_url, "up");
    migrate_ok(url, "up");
    PGconn *seed = tl_connect(seed_url), *full = tl_connect(full_url), *conn = tl_connect(url);
    char *seed_fp = schema_fingerprint(seed);
    char *full_fp = schema_fingerprint(full);
    char *fp = schema_fingerprint(conn);
    assert_same_schema(fp, full_fp, "up vs up");
    free(fp);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM schema_migrations"),
                     embedded_up_count());

    /* Rolling back to 0001 gives exactly the seed schema. */
    char *args = fmt_alloc("down %d", embedded_up_count() - 1);
    migrate_ok(url, args);
    free(args);
    fp = schema_fingerprint(conn);
    assert_same_schema(fp, seed_fp, "up then down to 0001 vs up 1");
    free(fp);
    assert_query(conn, "SELECT string_agg(version, ',') FROM schema_migrations", "0001_init");

    /* Down all: nothing but schema_migrations (its row type and key) remains. */
    migrate_ok(url, "down all");
    assert_query(
        conn,
        "SELECT coalesce(string_agg(relname || ':' || relkind::text, ',' ORDER BY relname), "
        "'') FROM pg_class WHERE relnamespace = 'public'::regnamespace",
        "schema_migrations:r,schema_migrations_pkey:i");
    assert_query(conn,
                 "SELECT count(*) FROM pg_type WHERE typnamespace = 'public'::regnamespace AND "
                 "typname NOT IN ('schema_migrations', '_schema_migrations')",
                 "0");
    assert_query(conn, "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace",
                 "0");
    assert_query(conn, "SELECT count(*) FROM pg_trigger", "0");
    assert_query(conn, "SELECT count(*) FROM schema_migrations", "0");
    /* No grant of 0010_roles is left: on schema_migrations, the schema, the defaults. */
    assert_query(conn,
                 "SELECT (SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a WHERE "
                 "c.relnamespace = 'public'::regnamespace AND a.grantee <> c.relowner) + "
                 "(SELECT count(*) FROM pg_default_acl) + (SELECT count(*) FROM pg_namespace n, "
                 "aclexplode(n.nspacl) a JOIN pg_roles r ON r.oid = a.grantee WHERE "
                 "r.rolname LIKE 'evpipe\\_%')",
                 "0");
    fp = schema_fingerprint(conn);
    assert_same_schema(fp, "", "down all vs empty");
    free(fp);

    /* Nothing left to roll back: exit 0, no change. */
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(run_migrate(url, "down", &out, &err), 0);
    ck_assert_msg(strstr(err, "nothing to roll back") != NULL, "%s", err);
    free(out);
    free(err);

    /* And up again rebuilds the same schema. */
    migrate_ok(url, "up");
    fp = schema_fingerprint(conn);
    assert_same_schema(fp, full_fp, "up after down all vs up");
    free(fp);
    free(seed_fp);
    free(full_fp);
    PQfinish(seed);
    PQfinish(full);
    PQfinish(conn);
    tl_db_drop(seed_url);
    tl_db_drop(full_url);
    tl_db_drop(url);
    free(seed_url);
    free(full_url);
    free(url);
}
END_TEST

START_TEST(test_migrate_concurrent_up_applies_each_once) {
    for (int round = 0; round < 3; round++) {
        char *url = tl_db_create("mig_race");
        char *base = tl_unique_name("/tmp/evpipe_mig_race");
        char *cmd = fmt_alloc("'%s' migrate up --database '%s' 2>'%s.1' & p1=$!; "
                              "'%s' migrate up --database '%s' 2>'%s.2' & p2=$!; "
                              "wait $p1; r1=$?; wait $p2; r2=$?; echo $r1 $r2",
                              tl_evpipe_bin(), url, base, tl_evpipe_bin(), url, base);
        char *out = NULL;
        ck_assert_int_eq(tl_run(cmd, &out, NULL), 0);
        ck_assert_str_eq(out, "0 0\n");
        char *p1 = fmt_alloc("%s.1", base), *p2 = fmt_alloc("%s.2", base);
        char *log1 = read_whole(p1), *log2 = read_whole(p2);
        ck_assert(log1 && log2);
        /* One migrator applied everything, the other found nothing to do. */
        int applied1 = count_substr(log1, " applied 0001_init in ");
        int applied2 = count_substr(log2, " applied 0001_init in ");
        ck_assert_msg(applied1 + applied2 == 1, "round %d:\n%s\n%s", round, log1, log2);
        ck_assert_msg(strstr(applied1 ? log2 : log1, "nothing to do") != NULL, "%s\n%s", log1,
                      log2);
        ck_assert_int_eq(count_substr(log1, "ERROR") + count_substr(log2, "ERROR"), 0);

        PGconn *conn = tl_connect(url);
        char *want = fmt_alloc("%d %d", embedded_up_count(), embedded_up_count());
        assert_query(
            conn, "SELECT count(*) || ' ' || count(DISTINCT version) FROM schema_migrations", want);
        free(want);
        ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM pg_type WHERE typname = "
                                           "'EventType'"),
                         1);
        PQfinish(conn);
        unlink(p1);
        unlink(p2);
        free(log1);
        free(log2);
        free(p1);
        free(p2);
        free(out);
        free(cmd);
        free(base);
        tl_db_drop(url);
        free(url);
    }
}
END_TEST

START_TEST(test_migrate_lock_makes_second_migrator_wait) {
    char *url = tl_db_create("mig_lock");
    PGconn *holder = tl_connect(url);
    char *lock_sql = fmt_alloc("SELECT pg_advisory_lock(%lld)", (long long)EV_MIGRATE_LOCK_KEY);
    tl_exec(holder, lock_sql);

    /* With --lock-timeout the migrator gives up, exit 1, having changed nothing. */
    char *out = NULL, *err = NULL;
    int64_t t0 = ev_mono_ns();
    int rc = run_migrate(url, "up --lock-timeout 1", &out, &err);
    double waited = (double)(ev_mono_ns() - t0) / 1e9;
    ck_assert_msg(rc == 1, "exit %d: %s", rc, err);
    ck_assert_msg(strstr(err, "gave up waiting for the migration lock") != NULL, "%s", err);
    ck_assert_msg(waited >= 0.9 && waited < 10, "waited %.2f s", waited);
    assert_query(holder, "SELECT to_regclass('schema_migrations') IS NULL", "t");
    free(out);
    free(err);

    /* Without it, it waits for the lock, then does the work. */
    char *base = tl_unique_name("/tmp/evpipe_mig_lock");
    char *log_path = fmt_alloc("%s.log", base), *rc_path = fmt_alloc("%s.rc", base);
    char *cmd = fmt_alloc("( '%s' migrate up --database '%s' >'%s' 2>&1; echo $? >'%s.tmp'; "
                          "mv '%s.tmp' '%s' ) &",
                          tl_evpipe_bin(), url, log_path, rc_path, rc_path, rc_path);
    ck_assert_int_eq(tl_run(cmd, NULL, NULL), 0);
    long long waiting = 0;
    for (int i = 0; i < 300 && waiting == 0; i++) {
        waiting = tl_query_ll(holder, "SELECT count(*) FROM pg_locks WHERE locktype = "
                                      "'advisory' AND NOT granted AND database = (SELECT oid "
                                      "FROM pg_database WHERE datname = current_database())");
        if (!waiting) sleep_ms(50);
    }
    ck_assert_msg(waiting == 1, "the second migrator never waited for the lock");
    sleep_ms(300);
    ck_assert_msg(access(rc_path, F_OK) != 0, "the migrator finished while the lock was held");
    assert_query(holder, "SELECT to_regclass('schema_migrations') IS NULL", "t");

    char *unlock_sql = fmt_alloc("SELECT pg_advisory_unlock(%lld)", (long long)EV_MIGRATE_LOCK_KEY);
    assert_query(holder, unlock_sql, "t");
    char *rc_text = NULL;
    for (int i = 0; i < 600 && !rc_text; i++) {
        rc_text = read_whole(rc_path);
        if (!rc_text) sleep_ms(50);
    }
    ck_assert_msg(rc_text != NULL, "the migrator did not finish after the lock was released");
    char *log = read_whole(log_path);
    ck_assert_msg(strcmp(rc_text, "0\n") == 0, "exit %s: %s", rc_text, log);
    ck_assert_msg(strstr(log, "waiting for it") != NULL, "%s", log);
    ck_assert_msg(strstr(log, " applied 0001_init in ") != NULL, "%s", log);
    ck_assert_int_eq(tl_query_ll(holder, "SELECT count(*) FROM schema_migrations"),
                     embedded_up_count());
    /* The lock is released when the migrator is done. */
    assert_query(holder,
                 "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                 "(SELECT oid FROM pg_database WHERE datname = current_database())",
                 "0");
    unlink(log_path);
    unlink(rc_path);
    free(log);
    free(rc_text);
    free(unlock_sql);
    free(cmd);
    free(log_path);
    free(rc_path);
    free(base);
    free(lock_sql);
    PQfinish(holder);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_migrate_verify_detects_edited_migration) {
    char *url = tl_db_create("mig_verify");
    migrate_ok(url, "up");
    PGconn *conn = tl_connect(url);
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(run_migrate(url, "verify", &out, &err), 0);
    ck_assert_str_eq(out, "");
    free(out);
    free(err);

    /* An applied file edited afterwards: its stored checksum no longer matches. */
    char *orig = query_text(conn, "SELECT checksum FROM schema_migrations WHERE version = "
                                  "'0001_init'");
    tl_exec(conn, "UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = "
                  "'0001_init'");
    ck_assert_int_eq(run_migrate(url, "verify", &out, &err), 1);
    const char *changed = "0001_init.up.sql changed since it was applied";
    ck_assert_msg(strncmp(out, changed, strlen(changed)) == 0, "%s", out);
    ck_assert_int_eq(count_substr(out, "\n"), 1);
    ck_assert_msg(strstr(err, "verify failed: 1 applied migration(s) differ") != NULL, "%s", err);
    free(out);
    free(err);
    ck_assert_int_eq(run_migrate(url, "status", &out, &err), 0);
    const char *row = strstr(out, "\n0001_init ");
    ck_assert_msg(row && strstr(row, "CHANGED") && strstr(row, "CHANGED") < strchr(row + 1, '\n'),
                  "%s", out);
    ck_assert_int_eq(count_substr(out, "CHANGED"), 1);
    free(out);
    free(err);
    /* ev_migrate_verify says the same to callers in C. */
    char errstr[1024];
    ck_assert_int_eq(ev_migrate_verify(conn, errstr, sizeof(errstr)), 1);
    ck_assert_msg(strstr(errstr, "0001_init.up.sql changed") != NULL, "%s", errstr);

    /* Restored, plus an applied version this binary does not have. */
    char *sql = fmt_alloc("UPDATE schema_migrations SET checksum = '%s' WHERE version = "
                          "'0001_init'",
                          orig);
    tl_exec(conn, sql);
    free(sql);
    ck_assert_int_eq(ev_migrate_verify(conn, errstr, sizeof(errstr)), 0);
    tl_exec(conn, "INSERT INTO schema_migrations (version, checksum) VALUES ('9999_future', "
                  "repeat('a', 64))");
    ck_assert_int_eq(run_migrate(url, "verify", &out, &err), 1);
    ck_assert_str_eq(out, "9999_future is applied but not in this binary\n");
    free(out);
    free(err);
    ck_assert_int_eq(run_migrate(url, "status", &out, &err), 0);
    ck_assert_msg(strstr(out, "\n9999_future ") != NULL && strstr(out, "MISSING") != NULL, "%s",
                  out);
    free(out);
    free(err);
    /* up still works (warning), down refuses to roll back what it does not have. */
    ck_assert_int_eq(run_migrate(url, "up", &out, &err), 0);
    ck_assert_msg(strstr(err, "WARN") != NULL && strstr(err, "9999_future") != NULL, "%s", err);
    free(out);
    free(err);
    ck_assert_int_eq(run_migrate(url, "down", &out, &err), 1);
    ck_assert_msg(strstr(err, "cannot roll back 9999_future: it is not in this binary") != NULL,
                  "%s", err);
    free(out);
    free(err);
    ck_assert_int_eq(tl_query_ll(conn, "SELECT count(*) FROM schema_migrations"),
                     embedded_up_count() + 1);
    free(orig);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_migrate_bad_url_exits_2_with_one_line) {
    static const char *const urls[] = {
        "postgresql://nobody@127.0.0.1:1/nothing", /* nothing listens on port 1 */
        "postgresql://u:s3cretpw@[bad",            /* unparsable URL holding a password */
        "port=notanumber",                         /* bad conninfo */
        "host=/nonexistent/dir dbname=x",          /* no server on that socket */
    };
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        char *out = NULL, *err = NULL;
        int rc = run_migrate(urls[i], "status", &out, &err);
        ck_assert_msg(rc == 2, "%s: exit %d (%s)", urls[i], rc, err);
        ck_assert_str_eq(out, "");
        ck_assert_msg(count_substr(err, "\n") == 1 && err[strlen(err) - 1] == '\n',
                      "%s: not one line: %s", urls[i], err);
        ck_assert_msg(strstr(err, "cannot connect to the database: ") != NULL, "%s", err);
        ck_assert_msg(strstr(err, "s3cretpw") == NULL, "password shown: %s", err);
        free(out);
        free(err);
    }
    /* No database at all, and usage errors: one line, exit 2. */
    static const char *const usage[] = {
        "env -u DATABASE_URL '%s' migrate up",
        "'%s' migrate sideways --database x",
        "'%s' migrate down 0 --database x",
        "'%s' migrate up 1 2 --database x",
    };
    for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++) {
        char *cmd = fmt_alloc(usage[i], tl_evpipe_bin());
        char *out = NULL, *err = NULL;
        int rc = tl_run(cmd, &out, &err);
        ck_assert_msg(rc == 2, "%s: exit %d", cmd, rc);
        ck_assert_msg(count_substr(err, "\n") == 1, "%s: %s", cmd, err);
        free(out);
        free(err);
        free(cmd);
    }
}
END_TEST

START_TEST(test_migrate_status_output) {
    char *url = tl_db_create("mig_status");
    PGconn *conn = tl_connect(url);
    /* Versions of this binary, in order, and the column width status uses. */
    const char *versions[64];
    int n = 0, width = 7;
    for (int i = 0; i < ev_embedded_migration_count && n < 64; i++) {
        const char *name = ev_embedded_migrations[i].name;
        size_t len = strlen(name);
        if (len > 7 && strcmp(name + len - 7, ".up.sql") == 0) {
            versions[n++] = name;
            if ((int)(len - 7) > width) width = (int)(len - 7);
        }
    }
    ck_assert_int_ge(n, 2);

    char *out = NULL, *err = NULL;
    ck_assert_int_eq(run_migrate(url, "status", &out, &err), 0);
    char want[8192];
    size_t used = (size_t)snprintf(want, sizeof(want), "%-*s  %-24s  %s\n", width, "VERSION",
                                   "APPLIED AT", "STATE");
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(want + used, sizeof(want) - used, "%-*.*s  %-24s  %s\n", width,
                                 (int)(strlen(versions[i]) - 7), versions[i], "-", "pending");
    ck_assert_str_eq(out, want);
    free(out);
    free(err);
    /* status is read-only: it does not even create schema_migrations. */
    assert_query(conn, "SELECT to_regclass('schema_migrations') IS NULL", "t");

    migrate_ok(url, "up 1");
    char *applied_at = query_text(conn, "SELECT to_char(\"appliedAt\" AT TIME ZONE 'UTC', "
                                        "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM "
                                        "schema_migrations");
    ck_assert_int_eq(strlen(applied_at), 24);
    ck_assert_int_eq(run_migrate(url, "status", &out, &err), 0);
    used = (size_t)snprintf(want, sizeof(want), "%-*s  %-24s  %s\n", width, "VERSION", "APPLIED AT",
                            "STATE");
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(want + used, sizeof(want) - used, "%-*.*s  %-24s  %s\n", width,
                                 (int)(strlen(versions[i]) - 7), versions[i],
                                 i == 0 ? applied_at : "-", i == 0 ? "applied" : "pending");
    ck_assert_str_eq(out, want);
    free(out);
    free(err);
    int pending = -1;
    char errstr[256];
    ck_assert_int_eq(ev_migrate_pending(conn, &pending, errstr, sizeof(errstr)), 0);
    ck_assert_int_eq(pending, n - 1);
    free(applied_at);
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

START_TEST(test_migrate_failure_names_file_line_and_rolls_back) {
    char *url = tl_db_create("mig_fail");
    migrate_ok(url, "up 1");
    PGconn *conn = tl_connect(url);
    const ev_embedded_file_t *f = embedded("0002_pipeline.up.sql");

    /* An error without a position (the server names no offset): the statement is found. */
    tl_exec(conn, "CREATE TABLE consumer_offsets (x int)");
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(run_migrate(url, "up", &out, &err), 1);
    char *want = fmt_alloc("0002_pipeline.up.sql: line %d: relation \"consumer_offsets\" already "
                           "exists (SQLSTATE 42P07)",
                           line_of(f, "CREATE TABLE \"consumer_offsets\""));
    ck_assert_msg(strstr(err, want) != NULL, "want %s in:\n%s", want, err);
    ck_assert_msg(strstr(err, "| CREATE TABLE \"consumer_offsets\" (") != NULL, "%s", err);
    free(want);
    free(out);
    free(err);
    /* Nothing of 0002 stayed. */
    assert_query(conn, "SELECT string_agg(version, ',') FROM schema_migrations", "0001_init");
    assert_query(conn, "SELECT to_regtype('\"SessionStartReason\"') IS NULL", "t");
    assert_query(conn,
                 "SELECT count(*) FROM information_schema.columns WHERE column_name IN "
                 "('startReason', 'pageViewId')",
                 "0");

    /* An error with a position: the line in the file, the statement, a caret. */
    tl_exec(conn, "DROP TABLE consumer_offsets");
    tl_exec(conn, "ALTER TYPE \"ExportStatus\" RENAME VALUE 'PENDING' TO 'QUEUED'");
    ck_assert_int_eq(run_migrate(url, "up", &out, &err), 1);
    int line = line_of(f, "FOR EACH ROW WHEN (NEW.\"status\" = 'PENDING')");
    want = fmt_alloc("0002_pipeline.up.sql: line %d: invalid input value for enum "
                     "\"ExportStatus\": \"PENDING\" (SQLSTATE 22P02)",
                     line);
    ck_assert_msg(strstr(err, want) != NULL, "want %s in:\n%s", want, err);
    free(want);
    want = fmt_alloc("%7d | CREATE TRIGGER \"exports_notify_insert\"",
                     line_of(f, "CREATE TRIGGER \"exports_notify_insert\""));
    ck_assert_msg(strstr(err, want) != NULL, "want %s in:\n%s", want, err);
    free(want);
    /* The caret sits under the literal. */
    const char *src = strstr(err, "|     FOR EACH ROW WHEN");
    ck_assert_msg(src != NULL, "%s", err);
    const char *caret = strstr(src, "\n");
    ck_assert(caret != NULL);
    caret = strchr(caret, '|');
    ck_assert(caret != NULL);
    ck_assert_int_eq((int)(strchr(caret, '^') - caret), (int)(strstr(src, "'PENDING'") - src));
    assert_query(conn, "SELECT string_agg(version, ',') FROM schema_migrations", "0001_init");
    free(out);
    free(err);

    /* The file and its schema_migrations row commit together: when recording fails,
     * the file's changes are rolled back too. */
    tl_exec(conn, "ALTER TYPE \"ExportStatus\" RENAME VALUE 'QUEUED' TO 'PENDING'");
    tl_exec(conn, "CREATE FUNCTION refuse_0002() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                  "IF NEW.version = '0002_pipeline' THEN RAISE EXCEPTION 'refused by test'; "
                  "END IF; RETURN NEW; END $$");
    tl_exec(conn, "CREATE TRIGGER refuse_0002 BEFORE INSERT ON schema_migrations FOR EACH ROW "
                  "EXECUTE FUNCTION refuse_0002()");
    ck_assert_int_eq(run_migrate(url, "up", &out, &err), 1);
    ck_assert_msg(strstr(err, "0002_pipeline.up.sql: recording it in schema_migrations: refused "
                              "by test") != NULL,
                  "%s", err);
    assert_query(conn, "SELECT string_agg(version, ',') FROM schema_migrations", "0001_init");
    assert_query(conn, "SELECT to_regclass('consumer_offsets') IS NULL", "t");
    assert_query(conn, "SELECT to_regtype('\"SessionStartReason\"') IS NULL", "t");
    free(out);
    free(err);
    tl_exec(conn, "DROP TRIGGER refuse_0002 ON schema_migrations");
    migrate_ok(url, "up 1");
    assert_query(conn, "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations",
                 "0001_init,0002_pipeline");
    PQfinish(conn);
    tl_db_drop(url);
    free(url);
}
END_TEST

/* Character position (1-based, as PostgreSQL counts) of the first byte of needle. */
static long pos_of(const char *sql, const char *needle) {
    const char *hit = strstr(sql, needle);
    ck_assert(hit != NULL);
    long chars = 0;
    for (const char *p = sql; p <= hit; p++)
        if (((unsigned char)*p & 0xC0) != 0x80) chars++;
    return chars;
}

START_TEST(test_migrate_locate_maps_positions) {
    /* Lines:  1 comment; 2 string with ';'; 3 block comment; 4-5 dollar-quoted body;
     * 6-7 one statement with a multi-byte character and a quoted identifier. */
    const char *sql = "-- header; not a statement\n"
                      "CREATE TABLE a (x text DEFAULT 'a;b');\n"
                      "/* block ; /* nested ; */ comment */\n"
                      "CREATE FUNCTION f() RETURNS int\n"
                      "LANGUAGE sql AS $body$ SELECT 1; $body$;\n"
                      "SELECT 'é', \"q;\", E'\\';'\n"
                      "  FROM t;\n";
    size_t len = strlen(sql);
    int line = 0, stmt = 0;
    ck_assert_int_eq(ev_migrate_locate(sql, len, pos_of(sql, "b')"), &line, &stmt), 0);
    ck_assert_int_eq(line, 2);
    ck_assert_int_eq(stmt, 2);
    ck_assert_int_eq(ev_migrate_locate(sql, len, pos_of(sql, "SELECT 1"), &line, &stmt), 0);
    ck_assert_int_eq(line, 5);
    ck_assert_int_eq(stmt, 4);
    ck_assert_int_eq(ev_migrate_locate(sql, len, pos_of(sql, "FROM t"), &line, &stmt), 0);
    ck_assert_int_eq(line, 7);
    ck_assert_int_eq(stmt, 6);
    ck_assert_int_eq(ev_migrate_locate(sql, len, pos_of(sql, "nested"), &line, &stmt), 0);
    ck_assert_int_eq(line, 3);
    ck_assert_int_eq(stmt, 3);
    /* "at end of input" points one past the last character: the last line. */
    long total = pos_of(sql, "t;\n") + 2;
    ck_assert_int_eq(ev_migrate_locate(sql, len, total + 1, &line, &stmt), 0);
    ck_assert_int_eq(line, 7);
    ck_assert_int_eq(stmt, 6);
    ck_assert_int_eq(ev_migrate_locate(sql, len, total + 2, &line, &stmt), -1);
    ck_assert_int_eq(ev_migrate_locate(sql, len, 0, &line, &stmt), -1);
}
END_TEST

static Suite *migrate_suite(void) {
    Suite *s = suite_create("migrate");
    TCase *tc = tcase_create("migrate");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_migrate_locate_maps_positions);
    tcase_add_test(tc, test_migrate_up_creates_seed_schema);
    tcase_add_test(tc, test_migrate_up_adds_pipeline_objects);
    tcase_add_test(tc, test_migrate_audit_logs_append_only);
    tcase_add_test(tc, test_migrate_down_to_zero_leaves_nothing);
    tcase_add_test(tc, test_migrate_concurrent_up_applies_each_once);
    tcase_add_test(tc, test_migrate_lock_makes_second_migrator_wait);
    tcase_add_test(tc, test_migrate_verify_detects_edited_migration);
    tcase_add_test(tc, test_migrate_bad_url_exits_2_with_one_line);
    tcase_add_test(tc, test_migrate_status_output);
    tcase_add_test(tc, test_migrate_failure_names_file_line_and_rolls_back);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(migrate_suite()) ? 1 : 0; }
