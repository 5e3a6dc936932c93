/* migrate.h — the schema migrations embedded in the binary and the migrator. */
#ifndef EV_MIGRATE_H
#define EV_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

typedef struct ev_embedded_file_s {
    const char *name; /* "0001_init.up.sql" */
    const char *data; /* NUL-terminated file contents */
    size_t len;
} ev_embedded_file_t;

/* Generated from the files in migrations/, sorted by name, terminated by {0}. */
extern const ev_embedded_file_t ev_embedded_migrations[];
extern const int ev_embedded_migration_count;

/* The session-level advisory lock (pg_advisory_lock) every migrator holds for its
 * whole run, so migrators started together apply each migration once: "evpipe" in
 * ASCII followed by 0x0001. Advisory locks are per database. */
#define EV_MIGRATE_LOCK_KEY 0x6576706970650001LL

/* The bookkeeping table: version TEXT primary key ("0001_init"), checksum TEXT (sha256
 * hex of the up file as applied), "appliedAt" TIMESTAMPTZ(3). Created by the first
 * run in the connection's current schema; never dropped by a rollback. */
#define EV_MIGRATE_TABLE "schema_migrations"

/* `max_steps` value meaning "every migration". */
#define EV_MIGRATE_ALL 0

/* Applies the pending embedded migrations in version order, at most max_steps of
 * them (EV_MIGRATE_ALL or any value <= 0: all). Holds EV_MIGRATE_LOCK_KEY for the
 * whole run (waits for another migrator; a lock_timeout set on the session bounds the
 * wait), creates schema_migrations when missing, and runs each file whole in its own
 * transaction together with its schema_migrations row. Applied migrations whose
 * checksum differs are logged as warnings, not re-applied. The connection must be
 * open and idle (not inside a transaction); it stays open and is not modified beyond
 * the schema. Returns 0 (also when nothing was pending) or -1 with errstr filled: on a
 * failing file, errstr names it, the line of the error in the file and the statement
 * (several lines); the failing migration is rolled back entirely and the ones before
 * it stay applied. */
int ev_migrate_up(PGconn *conn, int max_steps, char *errstr, size_t errstr_size);

/* Rolls back the last max_steps applied migrations, newest first, running each down
 * file in its own transaction together with the removal of its schema_migrations row
 * (EV_MIGRATE_ALL or <= 0: all of them). Same lock and connection rules as
 * ev_migrate_up. Returns 0 or -1 with errstr filled; fails before changing anything
 * when an applied migration to roll back is not in this binary or has no down file. */
int ev_migrate_down(PGconn *conn, int max_steps, char *errstr, size_t errstr_size);

/* Compares the applied migrations with the embedded files without changing anything.
 * Returns 0 when every applied version exists in this binary with the same checksum
 * (pending migrations are not a difference), 1 when not, with errstr listing each
 * difference ("0001_init.up.sql changed since it was applied", "9999_x is applied but
 * not in this binary"; truncated to errstr_size), -1 on a database error. */
int ev_migrate_verify(PGconn *conn, char *errstr, size_t errstr_size);

/* Sets *pending to the number of embedded migrations not applied yet (stages can
 * refuse to start on an old schema). Read-only. Returns 0, or -1 with errstr filled. */
int ev_migrate_pending(PGconn *conn, int *pending, char *errstr, size_t errstr_size);

/* Where a failed statement is: given the SQL text of a file and PostgreSQL's error
 * position (1-based, in characters, as in PG_DIAG_STATEMENT_POSITION), sets *line
 * (1-based line in the file) and *stmt_line (line where the statement holding that
 * position starts). Returns 0, or -1 when position is outside the text. Pure. */
int ev_migrate_locate(const char *sql, size_t len, long position, int *line, int *stmt_line);

#endif
