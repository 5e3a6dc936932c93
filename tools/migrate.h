/* migrate.h — the schema migrations embedded in the binary and the migrator. */
#ifndef EV_MIGRATE_H
#define EV_MIGRATE_H

#include <stddef.h>

typedef struct ev_embedded_file_s {
    const char *name; /* "0001_init.up.sql" */
    const char *data; /* NUL-terminated file contents */
    size_t len;
} ev_embedded_file_t;

/* Generated from the files in migrations/, sorted by name, terminated by {0}. */
extern const ev_embedded_file_t ev_embedded_migrations[];
extern const int ev_embedded_migration_count;

#endif
