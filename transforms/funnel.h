/* funnel.h — funnel definitions of SPEC §5 (`funnels.steps`): parsing and validation,
 * matching an event against the steps, the windowFunnel chain of one visitor's (or
 * session's) time-ordered events, and the stepResults JSON of a period. Pure: no I/O,
 * no clock. The choices SPEC leaves open are in docs/funnels.md. */
#ifndef TF_FUNNEL_H
#define TF_FUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transforms/event.h"

#define TF_FUNNEL_MIN_STEPS 2
#define TF_FUNNEL_MAX_STEPS 20

typedef struct tf_funnel_s tf_funnel_t;

/* Parses a definition: steps_json is the `steps` column as JSON text, window_seconds
 * the `conversionWindowSeconds`, scope 'visitor' or 'session'. Returns 0 and sets *out
 * (caller owns it, free with tf_funnel_destroy), or -1 with errstr naming what is
 * malformed (bad JSON, not an array, fewer than 2 or more than 20 steps, a step that
 * is not an object, a missing or unknown type, a field of the wrong JSON type, a path
 * not starting with '/' or with '*' anywhere but at its end, a negative window, an
 * unknown scope); *out is untouched then. Unknown fields of a step are ignored. */
int tf_funnel_parse(const char *steps_json, long long window_seconds, const char *scope,
                    tf_funnel_t **out, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));
void tf_funnel_destroy(tf_funnel_t *funnel);

size_t tf_funnel_step_count(const tf_funnel_t *funnel);
tf_event_type_t tf_funnel_step_type(const tf_funnel_t *funnel, size_t step);
/* The window in milliseconds (conversionWindowSeconds × 1000). */
int64_t tf_funnel_window_ms(const tf_funnel_t *funnel);
/* True for scope 'session': the steps of one chain must lie in one session. */
bool tf_funnel_session_scope(const tf_funnel_t *funnel);
/* Bit per EventType (1u << type) of the types some step names. */
uint32_t tf_funnel_type_mask(const tf_funnel_t *funnel);

/* One stored event, as much of it as the steps can look at. */
typedef struct tf_funnel_event_s {
    tf_event_type_t type;
    const char *name;            /* NULL when the event has none */
    const char *path;            /* the URL's path as sent; NULL when none */
    const char *properties_json; /* the properties object as JSON text; NULL when none */
} tf_funnel_event_t;

/* The steps the event satisfies: bit i set when step i+1 matches (its type, and every
 * field it gives: name equal, path equal or prefix for "/prefix*", each property
 * present and equal as a JSON value, numbers compared by value). 0 when none (also
 * for unparseable properties when a step needs them). */
uint32_t tf_funnel_match(const tf_funnel_t *funnel, const tf_funnel_event_t *event);

/* One event reduced to its time and the steps it satisfies (tf_funnel_match). */
typedef struct tf_funnel_point_s {
    int64_t at_ms;
    uint32_t steps;
} tf_funnel_point_t;

/* The chain used for a unit: how far it got and when each step was reached. */
typedef struct tf_funnel_chain_s {
    int level;                            /* steps reached, 0 = no entry */
    int64_t at_ms[TF_FUNNEL_MAX_STEPS];   /* at_ms[i] = time of step i+1, i < level */
} tf_funnel_chain_t;

/* windowFunnel over one unit's points sorted by at_ms (ascending; equal times in any
 * order), among chains whose first step lies in [from_ms, to_ms): steps in order,
 * each later step at or after the previous one (equal times count as in order) and at
 * most the window after the first step, other events between allowed, one point per
 * step. Fills *out with the furthest chain; when several reach it, the one with the
 * earliest first step, with each step taken at its earliest possible time.
 * Returns 0, or -1 when out of memory (*out then says level 0). */
int tf_funnel_best_chain(const tf_funnel_t *funnel, const tf_funnel_point_t *points, size_t n,
                         int64_t from_ms, int64_t to_ms, tf_funnel_chain_t *out)
    __attribute__((warn_unused_result));

/* One step's numbers in a period. */
typedef struct tf_funnel_step_stat_s {
    long long count;       /* units of the period that reached this step */
    bool has_median;       /* false for step 1 and for a step nobody reached */
    double median_seconds; /* median of the seconds from the previous step */
} tf_funnel_step_stat_t;

/* num / den, and 0 when den is 0. */
double tf_funnel_rate(long long num, long long den);

/* stepResults of SPEC §5 for stats[0 .. step_count-1]: a JSON array in step order of
 * {"step", "type", "count", "dropOff", "conversionRateFromPrev",
 * "conversionRateFromStart", "medianSecondsFromPrev"}. Returns 0 and sets *json
 * (NUL-terminated, caller frees), or -1 with errstr. */
int tf_funnel_step_results_json(const tf_funnel_t *funnel, const tf_funnel_step_stat_t *stats,
                                char **json, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

#endif
