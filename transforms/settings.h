/* settings.h — the runtime settings of SPEC §4 that may come from tracking_configs:
 * validation of each key's JSON value. Pure. */
#ifndef TF_SETTINGS_H
#define TF_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tf_settings_s {
    int64_t timeout_seconds;      /* session.timeoutSeconds, 1..604800 */
    int64_t max_duration_seconds; /* session.maxDurationSeconds, 60..2592000 */
    uint32_t conversion_types;    /* conversion.types, bit per tf_event_type_t */
    bool bots_exclude_from_metrics; /* bots.excludeFromMetrics */
} tf_settings_t;

/* SPEC §4 defaults: 1800, 86400, PURCHASE APPOINTMENT_COMPLETE LEAD SIGN_UP FORM_SUBMIT, true. */
void tf_settings_default(tf_settings_t *s);

/* The tracking_configs keys understood, NULL-terminated. */
extern const char *const tf_settings_keys[];

/* Applies one tracking_configs row (key, value as JSON text) to *s. Returns 0 when
 * applied, 1 when the key is not a setting (ignored), -1 when the value is invalid
 * (errstr names the key and what is wrong; *s unchanged). */
int tf_settings_apply(tf_settings_t *s, const char *key, const char *json_value, char *errstr,
                      size_t errstr_size);

/* Parses a comma-separated list of EventType names (the --conversion-types flag)
 * into a bit mask. Returns 0, or -1 with errstr naming the unknown type. */
int tf_settings_parse_types(const char *list, uint32_t *mask, char *errstr, size_t errstr_size);

#endif
