/* migrate.c — `evpipe migrate`: applies, rolls back, lists and verifies the SQL
 * migrations embedded in the binary, each in one transaction, under an advisory lock. */
#include "tools/migrate.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/commands.h"
#include "common/log.h"
#include "common/util.h"

#define MIG_VERSION_MAX 128 /* bytes of a version name, NUL included */
#define MIG_FILES_MAX 4096  /* cap on embedded files and on schema_migrations rows */
#define MIG_LINE_SHOW 160   /* bytes of a source line quoted in an error */
#define MIG_MSG_MAX 1024    /* one server message (primary, detail, hint, context) */

/* One migration of this binary: its up file and, when it has one, its down file. */
typedef struct mig_s {
    char version[MIG_VERSION_MAX];
    const ev_embedded_file_t *up;
    const ev_embedded_file_t *down;
    char checksum[65];
} mig_t;

/* One row of schema_migrations. */
typedef struct mig_applied_s {
    char version[MIG_VERSION_MAX];
    char checksum[80];
    char applied_at[40];
} mig_applied_t;

/* The embedded catalog and what the database says, both sorted by version (strcmp,
 * whatever the database collation). */
typedef struct mig_state_s {
    mig_t *migs;
    int n_migs;
    mig_applied_t *applied;
    int n_applied;
} mig_state_t;

/* ---------------------------------------------------------------- small helpers */

/* Appends formatted text to buf (size bytes, *used of them filled), truncating
 * silently at the end of the buffer. */
__attribute__((format(printf, 4, 5))) static void buf_append(char *buf, size_t size, size_t *used,
                                                             const char *fmt, ...) {
    if (size == 0 || *used >= size - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, size - *used, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    *used += (size_t)n;
    if (*used > size - 1) *used = size - 1;
}

/* Copies s into out with every run of whitespace (newlines, tabs) collapsed to one
 * space and both ends trimmed: libpq's messages end in newlines and may span lines. */
static void one_line(char *out, size_t out_size, const char *s) {
    size_t o = 0;
    bool space = false;
    if (out_size == 0) return;
    for (; s && *s && o + 1 < out_size; s++) {
        if (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') {
            space = o > 0;
            continue;
        }
        if (space && o + 2 < out_size) out[o++] = ' ';
        space = false;
        out[o++] = *s;
    }
    out[o] = '\0';
}

/* The server's primary message of res, else libpq's message, on one line. */
static void pg_message(PGconn *conn, const PGresult *res, char *out, size_t out_size) {
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!m || !*m) m = PQerrorMessage(conn);
    one_line(out, out_size, m && *m ? m : "unknown error");
}

static bool result_ok(const PGresult *res) {
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

/* Ends a COPY that a statement started (migrations cannot feed or read one), so
 * the connection can be used again. */
static void drain_copy(PGconn *conn, const PGresult *res) {
    if (PQresultStatus(res) == PGRES_COPY_IN) {
        PQputCopyEnd(conn, "COPY FROM STDIN is not supported in a migration");
    } else if (PQresultStatus(res) == PGRES_COPY_OUT) {
        char *row = NULL;
        while (PQgetCopyData(conn, &row, 0) > 0) PQfreemem(row);
    } else {
        return;
    }
    PGresult *rest;
    while ((rest = PQgetResult(conn)) != NULL) PQclear(rest);
}

/* Runs one command; on failure fills errstr with "what: message". */
static int exec_cmd(PGconn *conn, const char *sql, const char *what, char *errstr,
                    size_t errstr_size) {
    PGresult *res = PQexec(conn, sql);
    if (!result_ok(res)) {
        char msg[MIG_MSG_MAX];
        pg_message(conn, res, msg, sizeof(msg));
        drain_copy(conn, res);
        snprintf(errstr, errstr_size, "%s: %s", what, msg);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Logs the server's messages: WARNING at warn level (a GRANT that granted nothing),
 * INFO at info level (what a migration chose to say, e.g. a role it kept), NOTICE and
 * below (DROP ... IF EXISTS and the like) at debug level. */
static void notice_to_log(void *arg, const PGresult *res) {
    (void)arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    char line[MIG_MSG_MAX];
    one_line(line, sizeof(line), message ? message : PQresultErrorMessage(res));
    if (severity && strcmp(severity, "WARNING") == 0)
        EV_WARN("server: %s", line);
    else if (severity && strcmp(severity, "INFO") == 0)
        EV_INFO("server: %s", line);
    else
        EV_DEBUG("server: %s", line);
}

static int conn_ready(PGconn *conn, char *errstr, size_t errstr_size) {
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        snprintf(errstr, errstr_size, "no open database connection");
        return -1;
    }
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        snprintf(errstr, errstr_size,
                 "the connection is inside a transaction; migrations need an idle connection");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- SQL text */

static bool ident_char(char c) {
    unsigned char u = (unsigned char)c;
    return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '_' ||
           u == '$' || u >= 0x80;
}

/* Finds the next statement at or after *pos in sql[0..len): sets *start to its first
 * token and *end just past its top-level ';' (or to len), and advances *pos to *end.
 * Knows comments (-- and nested block comments), quoted strings (with '' and, in
 * E'...', backslash escapes), quoted identifiers and dollar quoting. Returns false
 * when only whitespace and comments remain. */
static bool sql_next_statement(const char *sql, size_t len, size_t *pos, size_t *start,
                               size_t *end) {
    size_t i = *pos;
    bool have_start = false;
    while (i < len) {
        char c = sql[i];
        char next = i + 1 < len ? sql[i + 1] : '\0';
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            i++;
            continue;
        }
        if (c == '-' && next == '-') {
            while (i < len && sql[i] != '\n') i++;
            continue;
        }
        if (c == '/' && next == '*') {
            int depth = 1;
            i += 2;
            while (i < len && depth > 0) {
                if (sql[i] == '/' && i + 1 < len && sql[i + 1] == '*') {
                    depth++;
                    i += 2;
                } else if (sql[i] == '*' && i + 1 < len && sql[i + 1] == '/') {
                    depth--;
                    i += 2;
                } else {
                    i++;
                }
            }
            continue;
        }
        if (!have_start) {
            *start = i;
            have_start = true;
        }
        if (c == '\'' || c == '"') {
            bool backslash = c == '\'' && i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                             !(i > 1 && ident_char(sql[i - 2]));
            i++;
            while (i < len) {
                if (backslash && sql[i] == '\\') {
                    i += 2;
                } else if (sql[i] == c) {
                    if (i + 1 < len && sql[i + 1] == c) {
                        i += 2;
                    } else {
                        i++;
                        break;
                    }
                } else {
                    i++;
                }
            }
            continue;
        }
        if (c == '$' && !(i > 0 && ident_char(sql[i - 1]))) {
            size_t j = i + 1;
            if (j < len && !(sql[j] >= '0' && sql[j] <= '9')) {
                while (j < len && sql[j] != '$' && ident_char(sql[j])) j++;
            }
            if (j < len && sql[j] == '$') {
                size_t tag_len = j - i + 1;
                size_t k = j + 1;
                while (k + tag_len <= len && memcmp(sql + k, sql + i, tag_len) != 0) k++;
                i = k + tag_len <= len ? k + tag_len : len;
                continue;
            }
            i++;
            continue;
        }
        if (c == ';') {
            *end = i + 1;
            *pos = i + 1;
            return true;
        }
        i++;
    }
    *pos = len;
    if (!have_start) return false;
    *end = len;
    return true;
}

/* 1-based line number of byte offset off. */
static int line_number_of(const char *sql, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off; i++)
        if (sql[i] == '\n') line++;
    return line;
}

static size_t line_start_of(const char *sql, size_t off) {
    while (off > 0 && sql[off - 1] != '\n') off--;
    return off;
}

/* Byte offset of the 1-based character position (UTF-8) in sql, len + 1 characters
 * allowed (PostgreSQL points past the end for "at end of input"); -1 when outside. */
static long char_to_byte(const char *sql, size_t len, long position) {
    if (position < 1) return -1;
    long chars = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)sql[i] & 0xC0) != 0x80) {
            chars++;
            if (chars == position) return (long)i;
        }
    }
    return chars + 1 == position ? (long)len : -1;
}

/* Resolves byte offset off (which may be len: "at end of input") to the byte shown
 * (the last non-blank one at the end), its 1-based line, and the first byte and line
 * of the statement holding it (the byte's own when it lies between statements). */
static void locate_offset(const char *sql, size_t len, size_t off, size_t *at_out, int *line,
                          size_t *stmt_start, int *stmt_line) {
    size_t at = off;
    if (at >= len) {
        at = len ? len - 1 : 0;
        while (at > 0 && (sql[at] == '\n' || sql[at] == ' ' || sql[at] == '\t' || sql[at] == '\r'))
            at--;
    }
    *at_out = at;
    *line = len ? line_number_of(sql, at) : 1;
    *stmt_start = at;
    *stmt_line = *line;
    size_t pos = 0, start = 0, end = 0;
    while (sql_next_statement(sql, len, &pos, &start, &end)) {
        if (start > at) break;
        if (at < end) {
            *stmt_start = start;
            *stmt_line = line_number_of(sql, start);
            break;
        }
    }
}

int ev_migrate_locate(const char *sql, size_t len, long position, int *line, int *stmt_line) {
    long off = char_to_byte(sql, len, position);
    if (off < 0) return -1;
    size_t at = 0, stmt_start = 0;
    locate_offset(sql, len, (size_t)off, &at, line, &stmt_start, stmt_line);
    return 0;
}

/* Appends "  NNNNN | text of the line holding off" (and a caret line under off when
 * caret is set) to buf. */
static void show_line(char *buf, size_t size, size_t *used, const char *sql, size_t len, size_t off,
                      bool caret) {
    size_t ls = line_start_of(sql, off);
    size_t le = ls;
    while (le < len && sql[le] != '\n') le++;
    if (le > ls && sql[le - 1] == '\r') le--;
    size_t shown = le - ls;
    if (shown > MIG_LINE_SHOW) {
        shown = MIG_LINE_SHOW;
        while (shown > 0 && ((unsigned char)sql[ls + shown] & 0xC0) == 0x80) shown--;
    }
    buf_append(buf, size, used, "\n  %5d | %.*s%s", line_number_of(sql, ls), (int)shown, sql + ls,
               shown < le - ls ? " ..." : "");
    if (caret && off >= ls && off - ls <= shown) {
        char pad[MIG_LINE_SHOW + 1];
        size_t p = 0;
        for (size_t i = ls; i < off && p < MIG_LINE_SHOW; i++) {
            if (sql[i] == '\t')
                pad[p++] = '\t';
            else if (((unsigned char)sql[i] & 0xC0) != 0x80)
                pad[p++] = ' ';
        }
        pad[p] = '\0';
        buf_append(buf, size, used, "\n        | %s^", pad);
    }
}

/* The first word of a statement, upper-cased, into word[size]. */
static void first_word(const char *sql, size_t start, size_t end, char *word, size_t size) {
    size_t n = 0;
    for (size_t i = start; i < end && n + 1 < size; i++) {
        char c = sql[i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
        if (c < 'A' || c > 'Z') break;
        word[n++] = c;
    }
    word[n] = '\0';
}

/* Refuses files that open or end transactions themselves: the migrator runs every
 * file in exactly one transaction of its own. */
static int check_no_txn_control(const ev_embedded_file_t *f, char *errstr, size_t errstr_size) {
    static const char *const refused[] = {"BEGIN", "START", "COMMIT", "END", "ABORT", "ROLLBACK"};
    size_t pos = 0, start = 0, end = 0;
    while (sql_next_statement(f->data, f->len, &pos, &start, &end)) {
        char word[16], second[16];
        first_word(f->data, start, end, word, sizeof(word));
        for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
            if (strcmp(word, refused[k]) != 0) continue;
            if (strcmp(word, "ROLLBACK") == 0) {
                size_t s = start + strlen(word);
                while (s < end && (f->data[s] == ' ' || f->data[s] == '\t' || f->data[s] == '\n'))
                    s++;
                first_word(f->data, s, end, second, sizeof(second));
                if (strcmp(second, "TO") == 0) continue;
            }
            snprintf(errstr, errstr_size,
                     "%s: line %d: %s: a migration must not control transactions (each file "
                     "runs in one transaction of its own)",
                     f->name, line_number_of(f->data, start), word);
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- catalog */

static int cmp_mig(const void *a, const void *b) {
    return strcmp(((const mig_t *)a)->version, ((const mig_t *)b)->version);
}

static int cmp_applied(const void *a, const void *b) {
    return strcmp(((const mig_applied_t *)a)->version, ((const mig_applied_t *)b)->version);
}

static void state_clear(mig_state_t *st) {
    free(st->migs);
    free(st->applied);
    memset(st, 0, sizeof(*st));
}

/* Builds st->migs from ev_embedded_migrations: pairs NAME.up.sql with NAME.down.sql,
 * checks the names, computes each up file's checksum and sorts by version. */
static int catalog_load(mig_state_t *st, char *errstr, size_t errstr_size) {
    int n_files = ev_embedded_migration_count;
    if (n_files < 0 || n_files > MIG_FILES_MAX) {
        snprintf(errstr, errstr_size, "%d embedded migration files (at most %d)", n_files,
                 MIG_FILES_MAX);
        return -1;
    }
    st->migs = calloc((size_t)n_files + 1, sizeof(mig_t));
    if (!st->migs) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    st->n_migs = 0;
    for (int i = 0; i < n_files; i++) {
        const ev_embedded_file_t *f = &ev_embedded_migrations[i];
        size_t name_len = strlen(f->name);
        static const char up_sfx[] = ".up.sql", down_sfx[] = ".down.sql";
        bool is_up;
        size_t vlen;
        if (name_len > sizeof(up_sfx) - 1 &&
            strcmp(f->name + name_len - (sizeof(up_sfx) - 1), up_sfx) == 0) {
            is_up = true;
            vlen = name_len - (sizeof(up_sfx) - 1);
        } else if (name_len > sizeof(down_sfx) - 1 &&
                   strcmp(f->name + name_len - (sizeof(down_sfx) - 1), down_sfx) == 0) {
            is_up = false;
            vlen = name_len - (sizeof(down_sfx) - 1);
        } else {
            snprintf(errstr, errstr_size,
                     "embedded migration %s: the name must end in .up.sql or .down.sql", f->name);
            return -1;
        }
        if (vlen >= MIG_VERSION_MAX) {
            snprintf(errstr, errstr_size, "embedded migration %s: the version is too long",
                     f->name);
            return -1;
        }
        for (size_t k = 0; k < vlen; k++) {
            char c = f->name[k];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-')) {
                snprintf(errstr, errstr_size,
                         "embedded migration %s: the version may hold only letters, digits, _ "
                         "and -",
                         f->name);
                return -1;
            }
        }
        mig_t *m = NULL;
        for (int k = 0; k < st->n_migs; k++)
            if (strlen(st->migs[k].version) == vlen &&
                memcmp(st->migs[k].version, f->name, vlen) == 0)
                m = &st->migs[k];
        if (!m) {
            m = &st->migs[st->n_migs++];
            memcpy(m->version, f->name, vlen);
            m->version[vlen] = '\0';
        }
        if ((is_up && m->up) || (!is_up && m->down)) {
            snprintf(errstr, errstr_size, "embedded migration %s appears twice", f->name);
            return -1;
        }
        if (is_up)
            m->up = f;
        else
            m->down = f;
    }
    for (int k = 0; k < st->n_migs; k++) {
        mig_t *m = &st->migs[k];
        if (!m->up) {
            snprintf(errstr, errstr_size, "embedded migration %s has no %s.up.sql", m->down->name,
                     m->version);
            return -1;
        }
        ev_sha256_hex(m->up->data, m->up->len, m->checksum);
    }
    qsort(st->migs, (size_t)st->n_migs, sizeof(mig_t), cmp_mig);
    return 0;
}

/* True when schema_migrations exists in the connection's search path. */
static int table_exists(PGconn *conn, bool *exists, char *errstr, size_t errstr_size) {
    PGresult *res = PQexec(conn, "SELECT to_regclass('" EV_MIGRATE_TABLE "') IS NOT NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        char msg[MIG_MSG_MAX];
        pg_message(conn, res, msg, sizeof(msg));
        snprintf(errstr, errstr_size, "looking for " EV_MIGRATE_TABLE ": %s", msg);
        PQclear(res);
        return -1;
    }
    *exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

/* Reads schema_migrations into st->applied (empty when the table does not exist). */
static int applied_load(PGconn *conn, mig_state_t *st, char *errstr, size_t errstr_size) {
    free(st->applied);
    st->applied = NULL;
    st->n_applied = 0;
    bool exists = false;
    if (table_exists(conn, &exists, errstr, errstr_size)) return -1;
    if (!exists) return 0;
    PGresult *res = PQexec(
        conn, "SELECT \"version\", \"checksum\", to_char(\"appliedAt\" AT TIME "
              "ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM \"" EV_MIGRATE_TABLE "\"");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[MIG_MSG_MAX];
        pg_message(conn, res, msg, sizeof(msg));
        snprintf(errstr, errstr_size, "reading " EV_MIGRATE_TABLE ": %s", msg);
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    if (n > MIG_FILES_MAX) {
        snprintf(errstr, errstr_size, EV_MIGRATE_TABLE " holds %d rows (at most %d)", n,
                 MIG_FILES_MAX);
        PQclear(res);
        return -1;
    }
    st->applied = calloc((size_t)n + 1, sizeof(mig_applied_t));
    if (!st->applied) {
        snprintf(errstr, errstr_size, "out of memory");
        PQclear(res);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        mig_applied_t *a = &st->applied[i];
        snprintf(a->version, sizeof(a->version), "%s", PQgetvalue(res, i, 0));
        snprintf(a->checksum, sizeof(a->checksum), "%s", PQgetvalue(res, i, 1));
        snprintf(a->applied_at, sizeof(a->applied_at), "%s", PQgetvalue(res, i, 2));
    }
    st->n_applied = n;
    PQclear(res);
    qsort(st->applied, (size_t)n, sizeof(mig_applied_t), cmp_applied);
    return 0;
}

static const mig_t *find_mig(const mig_state_t *st, const char *version) {
    for (int i = 0; i < st->n_migs; i++)
        if (strcmp(st->migs[i].version, version) == 0) return &st->migs[i];
    return NULL;
}

static const mig_applied_t *find_applied(const mig_state_t *st, const char *version) {
    for (int i = 0; i < st->n_applied; i++)
        if (strcmp(st->applied[i].version, version) == 0) return &st->applied[i];
    return NULL;
}

/* Lists the differences between the applied migrations and this binary into buf, one
 * per line; returns their number. */
static int state_differences(const mig_state_t *st, char *buf, size_t size) {
    size_t used = 0;
    int n = 0;
    if (size) buf[0] = '\0';
    for (int i = 0; i < st->n_applied; i++) {
        const mig_applied_t *a = &st->applied[i];
        const mig_t *m = find_mig(st, a->version);
        if (!m) {
            buf_append(buf, size, &used, "%s%s is applied but not in this binary", n ? "\n" : "",
                       a->version);
            n++;
        } else if (strcmp(m->checksum, a->checksum) != 0) {
            buf_append(buf, size, &used,
                       "%s%s changed since it was applied (applied sha256 %.12s..., this binary "
                       "%.12s...)",
                       n ? "\n" : "", m->up->name, a->checksum, m->checksum);
            n++;
        }
    }
    return n;
}

/* ---------------------------------------------------------------- locking */

static int lock_acquire(PGconn *conn, char *errstr, size_t errstr_size) {
    char key[32];
    snprintf(key, sizeof(key), "%lld", (long long)EV_MIGRATE_LOCK_KEY);
    const char *params[1] = {key};
    PGresult *res = PQexecParams(conn, "SELECT pg_try_advisory_lock($1::bigint)", 1, NULL, params,
                                 NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
        PQclear(res);
        return 0;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char msg[MIG_MSG_MAX];
        pg_message(conn, res, msg, sizeof(msg));
        snprintf(errstr, errstr_size, "taking the migration lock: %s", msg);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    EV_INFO("another migrator holds the migration lock (advisory lock %s); waiting for it", key);
    res = PQexecParams(conn, "SELECT pg_advisory_lock($1::bigint)", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        char msg[MIG_MSG_MAX];
        pg_message(conn, res, msg, sizeof(msg));
        if (state && strcmp(state, "55P03") == 0)
            snprintf(errstr, errstr_size,
                     "gave up waiting for the migration lock held by another migrator (%s)", msg);
        else
            snprintf(errstr, errstr_size, "taking the migration lock: %s", msg);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

static void lock_release(PGconn *conn) {
    char key[32];
    snprintf(key, sizeof(key), "%lld", (long long)EV_MIGRATE_LOCK_KEY);
    const char *params[1] = {key};
    PGresult *res =
        PQexecParams(conn, "SELECT pg_advisory_unlock($1::bigint)", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK && PQstatus(conn) == CONNECTION_OK) {
        char msg[MIG_MSG_MAX];
        pg_message(conn, res, msg, sizeof(msg));
        EV_WARN("releasing the migration lock: %s", msg);
    }
    PQclear(res);
}

static int ensure_table(PGconn *conn, char *errstr, size_t errstr_size) {
    bool exists = false;
    if (table_exists(conn, &exists, errstr, errstr_size)) return -1;
    if (exists) return 0;
    return exec_cmd(conn,
                    "CREATE TABLE \"" EV_MIGRATE_TABLE "\" (\n"
                    "    \"version\" TEXT NOT NULL,\n"
                    "    \"checksum\" TEXT NOT NULL,\n"
                    "    \"appliedAt\" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),\n"
                    "    CONSTRAINT \"" EV_MIGRATE_TABLE "_pkey\" PRIMARY KEY (\"version\"))",
                    "creating " EV_MIGRATE_TABLE, errstr, errstr_size);
}

/* ---------------------------------------------------------------- running a file */

/* Finds which statement of f fails by running them one at a time in a transaction
 * that is rolled back (used when the server gave no position for the error). Sets
 * *stmt_off to the failing statement's first byte and *err_off to the error position
 * inside it when the server gave one (else -1). Returns 0 when found. */
static int locate_by_rerun(PGconn *conn, const ev_embedded_file_t *f, const char *sqlstate,
                           long *stmt_off, long *err_off) {
    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) return -1;
    PGresult *res = PQexec(conn, "BEGIN");
    bool began = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!began) return -1;
    int rc = -1;
    size_t pos = 0, start = 0, end = 0;
    while (sql_next_statement(f->data, f->len, &pos, &start, &end)) {
        char *text = malloc(end - start + 1);
        if (!text) break;
        memcpy(text, f->data + start, end - start);
        text[end - start] = '\0';
        res = PQexec(conn, text);
        if (result_ok(res)) {
            PQclear(res);
            free(text);
            continue;
        }
        drain_copy(conn, res);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (!sqlstate || !state || strcmp(state, sqlstate) == 0) {
            *stmt_off = (long)start;
            *err_off = -1;
            const char *p = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
            long long position;
            if (p && ev_parse_ll(p, &position) == 0) {
                long in_stmt = char_to_byte(text, end - start, (long)position);
                if (in_stmt >= 0) *err_off = (long)start + in_stmt;
            }
            rc = 0;
        }
        PQclear(res);
        free(text);
        break;
    }
    res = PQexec(conn, "ROLLBACK");
    PQclear(res);
    return rc;
}

/* Rolls back the failed file's transaction and writes into errstr what failed:
 * "FILE: line N: message (SQLSTATE x)", the statement's first line, the line of the
 * error with a caret, then DETAIL, HINT and CONTEXT when the server sent them. */
static void describe_failure(PGconn *conn, const ev_embedded_file_t *f, const PGresult *res,
                             char *errstr, size_t errstr_size) {
    char msg[MIG_MSG_MAX], detail[MIG_MSG_MAX] = "", hint[MIG_MSG_MAX] = "",
                           context[MIG_MSG_MAX] = "", sqlstate[8] = "";
    pg_message(conn, res, msg, sizeof(msg));
    const char *v = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (v) snprintf(sqlstate, sizeof(sqlstate), "%s", v);
    if ((v = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL))) one_line(detail, sizeof(detail), v);
    if ((v = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT))) one_line(hint, sizeof(hint), v);
    if ((v = PQresultErrorField(res, PG_DIAG_CONTEXT))) one_line(context, sizeof(context), v);
    long err_off = -1, stmt_off = -1;
    long long position = 0;
    v = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
    if (v && ev_parse_ll(v, &position) == 0)
        err_off = char_to_byte(f->data, f->len, (long)position);

    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult *rb = PQexec(conn, "ROLLBACK");
        PQclear(rb);
    }
    if (err_off < 0) locate_by_rerun(conn, f, sqlstate[0] ? sqlstate : NULL, &stmt_off, &err_off);

    size_t used = 0;
    if (err_off >= 0) {
        size_t at = 0, stmt_start = 0;
        int line = 0, stmt_line = 0;
        locate_offset(f->data, f->len, (size_t)err_off, &at, &line, &stmt_start, &stmt_line);
        buf_append(errstr, errstr_size, &used, "%s: line %d: %s", f->name, line, msg);
        if (sqlstate[0]) buf_append(errstr, errstr_size, &used, " (SQLSTATE %s)", sqlstate);
        if (stmt_line != line) {
            show_line(errstr, errstr_size, &used, f->data, f->len, stmt_start, false);
            if (stmt_line + 1 < line) buf_append(errstr, errstr_size, &used, "\n        | ...");
        }
        show_line(errstr, errstr_size, &used, f->data, f->len, at, true);
    } else if (stmt_off >= 0) {
        buf_append(errstr, errstr_size, &used, "%s: line %d: %s", f->name,
                   line_number_of(f->data, (size_t)stmt_off), msg);
        if (sqlstate[0]) buf_append(errstr, errstr_size, &used, " (SQLSTATE %s)", sqlstate);
        show_line(errstr, errstr_size, &used, f->data, f->len, (size_t)stmt_off, false);
    } else {
        buf_append(errstr, errstr_size, &used, "%s: %s", f->name, msg);
        if (sqlstate[0]) buf_append(errstr, errstr_size, &used, " (SQLSTATE %s)", sqlstate);
        buf_append(errstr, errstr_size, &used, "\n  (the failing statement could not be located)");
    }
    if (detail[0]) buf_append(errstr, errstr_size, &used, "\n  DETAIL: %s", detail);
    if (hint[0]) buf_append(errstr, errstr_size, &used, "\n  HINT: %s", hint);
    if (context[0]) buf_append(errstr, errstr_size, &used, "\n  CONTEXT: %s", context);
}

/* Runs m's up or down file and its schema_migrations change in one transaction. */
static int run_migration(PGconn *conn, const mig_t *m, bool up, char *errstr, size_t errstr_size) {
    const ev_embedded_file_t *f = up ? m->up : m->down;
    if (check_no_txn_control(f, errstr, errstr_size)) return -1;
    int64_t t0 = ev_mono_ns();
    if (exec_cmd(conn, "BEGIN", "starting a transaction", errstr, errstr_size)) return -1;
    PGresult *res = PQexec(conn, f->data);
    if (!result_ok(res)) {
        drain_copy(conn, res);
        describe_failure(conn, f, res, errstr, errstr_size);
        PQclear(res);
        return -1;
    }
    PQclear(res);

    const char *params[2] = {m->version, m->checksum};
    if (up)
        res = PQexecParams(conn,
                           "INSERT INTO \"" EV_MIGRATE_TABLE "\" (\"version\", \"checksum\") "
                           "VALUES ($1, $2)",
                           2, NULL, params, NULL, NULL, 0);
    else
        res = PQexecParams(conn, "DELETE FROM \"" EV_MIGRATE_TABLE "\" WHERE \"version\" = $1", 1,
                           NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK || strcmp(PQcmdTuples(res), "1") != 0) {
        char msg[MIG_MSG_MAX];
        if (PQresultStatus(res) == PGRES_COMMAND_OK)
            snprintf(msg, sizeof(msg), "%s rows changed instead of 1", PQcmdTuples(res));
        else
            pg_message(conn, res, msg, sizeof(msg));
        snprintf(errstr, errstr_size, "%s: recording it in " EV_MIGRATE_TABLE ": %s", f->name, msg);
        PQclear(res);
        res = PQexec(conn, "ROLLBACK");
        PQclear(res);
        return -1;
    }
    PQclear(res);
    char what[MIG_VERSION_MAX + 32];
    snprintf(what, sizeof(what), "%s: COMMIT", f->name);
    if (exec_cmd(conn, "COMMIT", what, errstr, errstr_size)) {
        res = PQexec(conn, "ROLLBACK");
        PQclear(res);
        return -1;
    }
    EV_INFO("%s %s in %lld ms", up ? "applied" : "rolled back", m->version,
            (long long)((ev_mono_ns() - t0) / 1000000));
    return 0;
}

/* Warns about applied migrations that changed or that this binary does not have. */
static void warn_differences(const mig_state_t *st) {
    char diffs[4096];
    if (state_differences(st, diffs, sizeof(diffs)) == 0) return;
    char *line = diffs;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        EV_WARN("%s (see evpipe migrate verify)", line);
        line = nl ? nl + 1 : NULL;
    }
}

/* The body of up/down, run while holding the lock: *done counts the migrations run. */
static int run_locked(PGconn *conn, mig_state_t *st, bool up, int max_steps, int *done,
                      char *errstr, size_t errstr_size) {
    if (ensure_table(conn, errstr, errstr_size)) return -1;
    if (applied_load(conn, st, errstr, errstr_size)) return -1;
    warn_differences(st);
    if (up) {
        const char *newest = st->n_applied ? st->applied[st->n_applied - 1].version : NULL;
        for (int i = 0; i < st->n_migs; i++) {
            const mig_t *m = &st->migs[i];
            if (find_applied(st, m->version)) continue;
            if (max_steps > 0 && *done >= max_steps) break;
            if (newest && strcmp(m->version, newest) < 0)
                EV_WARN("applying %s out of order: %s is applied already", m->version, newest);
            if (run_migration(conn, m, true, errstr, errstr_size)) return -1;
            (*done)++;
        }
        return 0;
    }
    int n = max_steps > 0 && max_steps < st->n_applied ? max_steps : st->n_applied;
    /* Check every step first: nothing is rolled back unless all of them can be. */
    for (int k = 0; k < n; k++) {
        const mig_applied_t *a = &st->applied[st->n_applied - 1 - k];
        const mig_t *m = find_mig(st, a->version);
        if (!m) {
            snprintf(errstr, errstr_size, "cannot roll back %s: it is not in this binary",
                     a->version);
            return -1;
        }
        if (!m->down) {
            snprintf(errstr, errstr_size, "cannot roll back %s: it has no %s.down.sql", a->version,
                     a->version);
            return -1;
        }
    }
    for (int k = 0; k < n; k++) {
        const mig_t *m = find_mig(st, st->applied[st->n_applied - 1 - k].version);
        if (run_migration(conn, m, false, errstr, errstr_size)) return -1;
        (*done)++;
    }
    return 0;
}

/* Takes the lock, runs up or down, releases the lock. */
static int migrate_run(PGconn *conn, bool up, int max_steps, int *done, int *pending, char *errstr,
                       size_t errstr_size) {
    *done = 0;
    if (conn_ready(conn, errstr, errstr_size)) return -1;
    mig_state_t st = {0};
    if (catalog_load(&st, errstr, errstr_size)) {
        state_clear(&st);
        return -1;
    }
    if (lock_acquire(conn, errstr, errstr_size)) {
        state_clear(&st);
        return -1;
    }
    int rc = run_locked(conn, &st, up, max_steps, done, errstr, errstr_size);
    if (pending) {
        int n = 0;
        if (rc == 0) {
            char ignored[256];
            if (applied_load(conn, &st, ignored, sizeof(ignored)) == 0)
                for (int i = 0; i < st.n_migs; i++)
                    if (!find_applied(&st, st.migs[i].version)) n++;
        }
        *pending = n;
    }
    lock_release(conn);
    state_clear(&st);
    return rc;
}

int ev_migrate_up(PGconn *conn, int max_steps, char *errstr, size_t errstr_size) {
    int done = 0;
    return migrate_run(conn, true, max_steps, &done, NULL, errstr, errstr_size);
}

int ev_migrate_down(PGconn *conn, int max_steps, char *errstr, size_t errstr_size) {
    int done = 0;
    return migrate_run(conn, false, max_steps, &done, NULL, errstr, errstr_size);
}

/* Loads the catalog and the applied rows without taking the lock (read-only). */
static int state_read(PGconn *conn, mig_state_t *st, char *errstr, size_t errstr_size) {
    if (conn_ready(conn, errstr, errstr_size) || catalog_load(st, errstr, errstr_size) ||
        applied_load(conn, st, errstr, errstr_size)) {
        state_clear(st);
        return -1;
    }
    return 0;
}

int ev_migrate_verify(PGconn *conn, char *errstr, size_t errstr_size) {
    mig_state_t st = {0};
    if (state_read(conn, &st, errstr, errstr_size)) return -1;
    int n = state_differences(&st, errstr, errstr_size);
    state_clear(&st);
    return n ? 1 : 0;
}

int ev_migrate_pending(PGconn *conn, int *pending, char *errstr, size_t errstr_size) {
    mig_state_t st = {0};
    if (state_read(conn, &st, errstr, errstr_size)) return -1;
    int n = 0;
    for (int i = 0; i < st.n_migs; i++)
        if (!find_applied(&st, st.migs[i].version)) n++;
    state_clear(&st);
    *pending = n;
    return 0;
}

/* ---------------------------------------------------------------- the command */

/* Prints VERSION / APPLIED AT / STATE for every embedded or applied migration. */
static int print_status(PGconn *conn, char *errstr, size_t errstr_size) {
    mig_state_t st = {0};
    if (state_read(conn, &st, errstr, errstr_size)) return -1;
    int width = (int)strlen("VERSION");
    for (int i = 0; i < st.n_migs; i++)
        if ((int)strlen(st.migs[i].version) > width) width = (int)strlen(st.migs[i].version);
    for (int i = 0; i < st.n_applied; i++)
        if ((int)strlen(st.applied[i].version) > width) width = (int)strlen(st.applied[i].version);
    printf("%-*s  %-24s  %s\n", width, "VERSION", "APPLIED AT", "STATE");
    int i = 0, j = 0, n_pending = 0, n_bad = 0;
    while (i < st.n_migs || j < st.n_applied) {
        int c = i >= st.n_migs      ? 1
                : j >= st.n_applied ? -1
                                    : strcmp(st.migs[i].version, st.applied[j].version);
        if (c < 0) {
            printf("%-*s  %-24s  %s\n", width, st.migs[i].version, "-", "pending");
            n_pending++;
            i++;
        } else if (c > 0) {
            printf("%-*s  %-24s  %s\n", width, st.applied[j].version, st.applied[j].applied_at,
                   "MISSING (applied, not in this binary)");
            n_bad++;
            j++;
        } else {
            bool same = strcmp(st.migs[i].checksum, st.applied[j].checksum) == 0;
            printf("%-*s  %-24s  %s\n", width, st.migs[i].version, st.applied[j].applied_at,
                   same ? "applied" : "CHANGED (file differs from the applied one)");
            if (!same) n_bad++;
            i++;
            j++;
        }
    }
    EV_DEBUG("%d applied, %d pending, %d differ from this binary", st.n_applied, n_pending, n_bad);
    state_clear(&st);
    return 0;
}

/* Finds the password in a conninfo: "scheme://user:PASSWORD@host", "password=PASSWORD"
 * (keyword form) or "?password=PASSWORD" (URL query). Sets *pw and *pw_len, or returns
 * false when there is none. */
static bool conninfo_password(const char *conninfo, const char **pw, size_t *pw_len) {
    const char *scheme = strstr(conninfo, "://");
    if (scheme) {
        const char *auth = scheme + 3;
        size_t auth_len = strcspn(auth, "/?");
        const char *at = NULL;
        for (const char *p = auth; p < auth + auth_len; p++)
            if (*p == '@') at = p;
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon && at > colon + 1) {
            *pw = colon + 1;
            *pw_len = (size_t)(at - colon - 1);
            return true;
        }
    }
    const char *key = strstr(conninfo, "password");
    while (key) {
        const char *v = key + strlen("password");
        while (*v == ' ') v++;
        if (*v == '=') {
            v++;
            while (*v == ' ') v++;
            if (*v == '\'') v++;
            size_t n = strcspn(v, scheme ? "&" : " '");
            if (n > 0) {
                *pw = v;
                *pw_len = n;
                return true;
            }
        }
        key = strstr(key + 1, "password");
    }
    return false;
}

/* Copies msg into out (one line) with every occurrence of the conninfo's password
 * replaced by ****: libpq quotes the whole URL in some of its parse errors. */
static void redact_password(const char *conninfo, const char *msg, char *out, size_t out_size) {
    const char *pw = NULL;
    size_t pw_len = 0, o = 0;
    if (out_size == 0) return;
    if (!conninfo_password(conninfo, &pw, &pw_len)) {
        snprintf(out, out_size, "%s", msg);
        return;
    }
    for (const char *p = msg; *p && o + 1 < out_size;) {
        if (strncmp(p, pw, pw_len) == 0) {
            for (int k = 0; k < 4 && o + 1 < out_size; k++) out[o++] = '*';
            p += pw_len;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

/* Connects with a bounded connect timeout (the conninfo may override it) and the
 * application name evpipe-migrate. Returns NULL with errstr on one line, password
 * masked, on failure. */
static PGconn *connect_db(const char *conninfo, long long timeout_s, char *errstr,
                          size_t errstr_size) {
    char timeout[24];
    snprintf(timeout, sizeof(timeout), "%lld", timeout_s);
    const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *const values[] = {timeout, "evpipe-migrate", conninfo, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (!conn) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[MIG_MSG_MAX];
        one_line(msg, sizeof(msg), PQerrorMessage(conn));
        redact_password(conninfo, msg[0] ? msg : "connection failed", errstr, errstr_size);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Logs a multi-line error as one log line per line. */
static void log_error_lines(char *text) {
    char *line = text;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        EV_ERROR("%s", line);
        line = nl ? nl + 1 : NULL;
    }
}

typedef enum { ACT_UP, ACT_DOWN, ACT_STATUS, ACT_VERIFY } mig_action_t;

int cmd_migrate(int argc, char **argv) {
    const char *database = NULL, *log_level = "info";
    long long lock_timeout = 0, connect_timeout = 10;
    const ev_opt_t opts[] = {
        {"database", 'd', EV_OPT_STR, NULL, "DATABASE_URL", "URL",
         "PostgreSQL to migrate: any libpq conninfo or postgresql:// URL (required)", &database, 0,
         0},
        {"lock-timeout", 0, EV_OPT_INT, "0", NULL, "SECONDS",
         "give up (exit 1) after waiting this long for another migrator or for a table lock; "
         "0 = wait as long as it takes",
         &lock_timeout, 0, 86400},
        {"connect-timeout", 0, EV_OPT_INT, "10", NULL, "SECONDS",
         "give up connecting after this long (a connect_timeout in the URL wins)", &connect_timeout,
         1, 3600},
        {"log-level", 0, EV_OPT_STR, "info", "EVPIPE_LOG_LEVEL", "LEVEL",
         "debug, info, warn or error (debug also shows the server's notices)", &log_level, 0, 0},
        EV_OPT_END};
    const ev_cli_t cli = {
        "evpipe migrate", "[OPTIONS] up [N] | down [N|all] | status | verify",
        "Applies, rolls back, lists or verifies the schema migrations built into this binary\n"
        "(migrations/NNNN_name.up.sql and .down.sql). Each migration runs whole in its own\n"
        "transaction and is recorded in schema_migrations (version, sha256 of the up file,\n"
        "appliedAt). A PostgreSQL advisory lock is held for the whole run, so migrators\n"
        "started together are safe: the others wait, then find nothing left to do.\n"
        "\n"
        "Actions:\n"
        "  up [N]        apply the pending migrations in order (at most N; default all)\n"
        "  down [N|all]  roll back the N most recent applied migrations (default 1);\n"
        "                'all' rolls back every one (only schema_migrations remains)\n"
        "  status        print VERSION, APPLIED AT (UTC) and STATE for each migration:\n"
        "                applied, pending, CHANGED (the file differs from the applied one)\n"
        "                or MISSING (applied but not in this binary)\n"
        "  verify        exit 1 naming every applied migration that is CHANGED or MISSING",
        "Exit status: 0 done; 1 a migration failed (it is rolled back; the error names the\n"
        "file, the line and the statement) or verify found a difference; 2 usage error or\n"
        "the database cannot be reached.\n"
        "\n"
        "Examples:\n"
        "  evpipe migrate up --database postgresql://evpipe@db:5432/analytics\n"
        "  DATABASE_URL='host=/run/postgresql dbname=analytics' evpipe migrate status\n"
        "  evpipe migrate down 1 -d \"$DATABASE_URL\"",
        opts};
    char errstr[8192];
    int first = 0;
    int rc = ev_cli_parse(&cli, argc, argv, &first, errstr, sizeof(errstr));
    if (rc == 1) return 0;
    if (rc < 0) {
        fprintf(stderr, "evpipe migrate: %s\n", errstr);
        return 2;
    }
    int level = ev_log_level_parse(log_level);
    if (level < 0) {
        fprintf(stderr, "evpipe migrate: --log-level: '%s' is not debug, info, warn or error\n",
                log_level);
        return 2;
    }
    ev_log_init("migrate", level, 0);

    int npos = argc - first;
    char **pos = argv + first;
    if (npos < 1) {
        fprintf(stderr, "evpipe migrate: missing action: up [N], down [N|all], status or verify "
                        "(see evpipe migrate --help)\n");
        return 2;
    }
    mig_action_t action;
    int steps = EV_MIGRATE_ALL;
    int max_args = 1;
    if (strcmp(pos[0], "up") == 0) {
        action = ACT_UP;
        max_args = 2;
    } else if (strcmp(pos[0], "down") == 0) {
        action = ACT_DOWN;
        max_args = 2;
        steps = 1;
    } else if (strcmp(pos[0], "status") == 0) {
        action = ACT_STATUS;
    } else if (strcmp(pos[0], "verify") == 0) {
        action = ACT_VERIFY;
    } else {
        fprintf(stderr,
                "evpipe migrate: unknown action '%s': up [N], down [N|all], status or verify\n",
                pos[0]);
        return 2;
    }
    if (npos > max_args) {
        fprintf(stderr, "evpipe migrate: unexpected argument '%s' after %s\n", pos[max_args],
                pos[0]);
        return 2;
    }
    if (npos == 2) {
        long long n;
        if (action == ACT_DOWN && strcmp(pos[1], "all") == 0) {
            steps = EV_MIGRATE_ALL;
        } else if (ev_parse_ll(pos[1], &n) != 0 || n < 1 || n > MIG_FILES_MAX) {
            fprintf(stderr, "evpipe migrate: %s %s: N must be a whole number from 1 to %d%s\n",
                    pos[0], pos[1], MIG_FILES_MAX, action == ACT_DOWN ? " or 'all'" : "");
            return 2;
        } else {
            steps = (int)n;
        }
    }
    if (!database) {
        fprintf(stderr, "evpipe migrate: no database: give --database URL or set DATABASE_URL\n");
        return 2;
    }

    PGconn *conn = connect_db(database, connect_timeout, errstr, sizeof(errstr));
    if (!conn) {
        EV_ERROR("cannot connect to the database: %s", errstr);
        return 2;
    }
    PQsetNoticeReceiver(conn, notice_to_log, NULL);
    if (lock_timeout > 0) {
        char value[32];
        snprintf(value, sizeof(value), "%llds", lock_timeout);
        const char *params[1] = {value};
        PGresult *res = PQexecParams(conn, "SELECT set_config('lock_timeout', $1, false)", 1, NULL,
                                     params, NULL, NULL, 0);
        bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
        if (!ok) pg_message(conn, res, errstr, sizeof(errstr));
        PQclear(res);
        if (!ok) {
            EV_ERROR("setting lock_timeout: %s", errstr);
            PQfinish(conn);
            return 1;
        }
    }

    int exit_code = 0;
    switch (action) {
    case ACT_UP:
    case ACT_DOWN: {
        int done = 0, pending = 0;
        if (migrate_run(conn, action == ACT_UP, steps, &done, &pending, errstr, sizeof(errstr))) {
            log_error_lines(errstr);
            if (done)
                EV_ERROR("the %d migration(s) %s before the failure stay so", done,
                         action == ACT_UP ? "applied" : "rolled back");
            exit_code = 1;
        } else if (action == ACT_UP) {
            if (done == 0)
                EV_INFO("schema is up to date: nothing to do (%d pending)", pending);
            else
                EV_INFO("applied %d migration(s); %d pending", done, pending);
        } else {
            if (done == 0)
                EV_INFO("nothing to roll back");
            else
                EV_INFO("rolled back %d migration(s); %d pending", done, pending);
        }
        break;
    }
    case ACT_STATUS:
        if (print_status(conn, errstr, sizeof(errstr))) {
            EV_ERROR("status: %s", errstr);
            exit_code = 1;
        }
        break;
    case ACT_VERIFY: {
        int v = ev_migrate_verify(conn, errstr, sizeof(errstr));
        if (v < 0) {
            EV_ERROR("verify: %s", errstr);
            exit_code = 1;
        } else if (v > 0) {
            int n = 1;
            for (const char *p = errstr; *p; p++)
                if (*p == '\n') n++;
            printf("%s\n", errstr);
            EV_ERROR("verify failed: %d applied migration(s) differ from this binary", n);
            exit_code = 1;
        } else {
            int pending = 0;
            if (ev_migrate_pending(conn, &pending, errstr, sizeof(errstr)) == 0)
                EV_INFO("verify: every applied migration matches this binary (%d pending)",
                        pending);
        }
        break;
    }
    }
    PQfinish(conn);
    return exit_code;
}
