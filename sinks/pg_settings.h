/* pg_settings.h — runtime settings read from the tracking_configs table. */
#ifndef SINK_PG_SETTINGS_H
#define SINK_PG_SETTINGS_H

#include <stddef.h>

#include "transforms/settings.h"

typedef struct sink_pg_settings_s sink_pg_settings_t;

/* Keeps its own connection (made lazily) to conninfo. NULL only when out of memory. */
sink_pg_settings_t *sink_pg_settings_new(const char *conninfo);
void sink_pg_settings_destroy(sink_pg_settings_t *ps);

/* Reads the active rows for the keys of tf_settings_keys and applies each over *s,
 * except the keys whose bit (1 << index in tf_settings_keys) is set in pinned (set by
 * flags or environment, which win). Invalid rows are skipped; the first problem is
 * described in warning (empty when none). Returns 0, or -1 when the table could not
 * be read (errstr; *s unchanged). */
int sink_pg_settings_load(sink_pg_settings_t *ps, unsigned pinned, tf_settings_t *s,
                          char *warning, size_t warning_size, char *errstr,
                          size_t errstr_size);

/* The NOTIFY channel of tracking_configs changes (migration 0002's trigger). */
#define SINK_PG_SETTINGS_CHANNEL "evpipe_tracking_configs"

/* Returns 1 when a change of tracking_configs was announced since the last call (or
 * the connection broke, so the caller should reload to find out), 0 otherwise. Never
 * blocks: meant for the consumer loop, next to the periodic reload which stays the
 * fallback (notifications sent while disconnected are lost). */
int sink_pg_settings_changed(sink_pg_settings_t *ps);

#endif
