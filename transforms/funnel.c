/* funnel.c — funnel definitions, step matching, windowFunnel chains and stepResults
 * (see funnel.h; the choices SPEC leaves open are in docs/funnels.md). */
#include "transforms/funnel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

typedef struct tf_funnel_step_s {
    tf_event_type_t type;
    const char *name;       /* into the tree; NULL = any */
    const char *path;       /* into the tree; NULL = any */
    size_t path_len;        /* without the '*' of a prefix */
    bool path_prefix;
    yajl_val properties;    /* an object node of the tree; NULL = any */
} tf_funnel_step_t;

struct tf_funnel_s {
    yajl_val tree; /* the parsed steps, owned */
    size_t n_steps;
    tf_funnel_step_t steps[TF_FUNNEL_MAX_STEPS];
    int64_t window_ms;
    bool session_scope;
    bool needs_properties;
    uint32_t type_mask;
};

/* Finds key in an object node; NULL when absent. */
static yajl_val object_get(yajl_val obj, const char *key) {
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (strcmp(obj->u.object.keys[i], key) == 0) return obj->u.object.values[i];
    return NULL;
}

static int parse_step(tf_funnel_t *f, size_t i, yajl_val v, char *errstr, size_t errstr_size) {
    tf_funnel_step_t *s = &f->steps[i];
    if (!YAJL_IS_OBJECT(v)) {
        snprintf(errstr, errstr_size, "step %zu is not a JSON object", i + 1);
        return -1;
    }
    yajl_val type = object_get(v, "type");
    if (!type || !YAJL_IS_STRING(type)) {
        snprintf(errstr, errstr_size, "step %zu: \"type\" is required and must be a string",
                 i + 1);
        return -1;
    }
    if (tf_event_type_parse(type->u.string, strlen(type->u.string), &s->type) != 0) {
        snprintf(errstr, errstr_size, "step %zu: unknown event type '%.64s'", i + 1,
                 type->u.string);
        return -1;
    }
    f->type_mask |= 1u << s->type;
    yajl_val name = object_get(v, "name");
    if (name && !YAJL_IS_NULL(name)) {
        if (!YAJL_IS_STRING(name)) {
            snprintf(errstr, errstr_size, "step %zu: \"name\" must be a string", i + 1);
            return -1;
        }
        s->name = name->u.string;
    }
    yajl_val path = object_get(v, "path");
    if (path && !YAJL_IS_NULL(path)) {
        if (!YAJL_IS_STRING(path)) {
            snprintf(errstr, errstr_size, "step %zu: \"path\" must be a string", i + 1);
            return -1;
        }
        const char *p = path->u.string;
        size_t len = strlen(p);
        const char *star = strchr(p, '*');
        if (p[0] != '/' || (star && star != p + len - 1)) {
            snprintf(errstr, errstr_size,
                     "step %zu: \"path\" must be \"/exact\" or \"/prefix*\" (got '%.64s')",
                     i + 1, p);
            return -1;
        }
        s->path = p;
        s->path_prefix = star != NULL;
        s->path_len = star ? len - 1 : len;
    }
    yajl_val props = object_get(v, "properties");
    if (props && !YAJL_IS_NULL(props)) {
        if (!YAJL_IS_OBJECT(props)) {
            snprintf(errstr, errstr_size, "step %zu: \"properties\" must be an object", i + 1);
            return -1;
        }
        if (props->u.object.len) {
            s->properties = props;
            f->needs_properties = true;
        }
    }
    return 0;
}

int tf_funnel_parse(const char *steps_json, long long window_seconds, const char *scope,
                    tf_funnel_t **out, char *errstr, size_t errstr_size) {
    if (window_seconds < 0 || window_seconds > INT64_MAX / 1000) {
        snprintf(errstr, errstr_size, "conversionWindowSeconds must be >= 0 (got %lld)",
                 window_seconds);
        return -1;
    }
    if (!scope || (strcmp(scope, "visitor") != 0 && strcmp(scope, "session") != 0)) {
        snprintf(errstr, errstr_size, "scope must be 'visitor' or 'session' (got '%.32s')",
                 scope ? scope : "(null)");
        return -1;
    }
    tf_funnel_t *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    char perr[256] = "";
    f->tree = yajl_tree_parse(steps_json ? steps_json : "", perr, sizeof(perr));
    if (!f->tree) {
        size_t n = strlen(perr);
        while (n && (perr[n - 1] == '\n' || perr[n - 1] == ' ')) perr[--n] = '\0';
        for (char *c = perr; *c; c++)
            if (*c == '\n') *c = ' ';
        snprintf(errstr, errstr_size, "steps is not valid JSON: %s", perr);
        goto fail;
    }
    if (!YAJL_IS_ARRAY(f->tree)) {
        snprintf(errstr, errstr_size, "steps must be a JSON array");
        goto fail;
    }
    size_t n = f->tree->u.array.len;
    if (n < TF_FUNNEL_MIN_STEPS || n > TF_FUNNEL_MAX_STEPS) {
        snprintf(errstr, errstr_size, "steps must hold %d to %d steps (got %zu)",
                 TF_FUNNEL_MIN_STEPS, TF_FUNNEL_MAX_STEPS, n);
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        if (parse_step(f, i, f->tree->u.array.values[i], errstr, errstr_size) != 0) goto fail;
    f->n_steps = n;
    f->window_ms = (int64_t)window_seconds * 1000;
    f->session_scope = strcmp(scope, "session") == 0;
    *out = f;
    return 0;
fail:
    tf_funnel_destroy(f);
    return -1;
}

void tf_funnel_destroy(tf_funnel_t *funnel) {
    if (!funnel) return;
    yajl_tree_free(funnel->tree);
    free(funnel);
}

size_t tf_funnel_step_count(const tf_funnel_t *funnel) { return funnel->n_steps; }
tf_event_type_t tf_funnel_step_type(const tf_funnel_t *funnel, size_t step) {
    return funnel->steps[step].type;
}
int64_t tf_funnel_window_ms(const tf_funnel_t *funnel) { return funnel->window_ms; }
bool tf_funnel_session_scope(const tf_funnel_t *funnel) { return funnel->session_scope; }
uint32_t tf_funnel_type_mask(const tf_funnel_t *funnel) { return funnel->type_mask; }

/* Deep equality of two JSON values; numbers by value, object keys in any order. */
static bool json_equal(yajl_val a, yajl_val b, int depth) {
    if (depth > 64) return false;
    if (YAJL_IS_NUMBER(a) && YAJL_IS_NUMBER(b)) {
        if (strcmp(a->u.number.r, b->u.number.r) == 0) return true;
        char *ea, *eb;
        double da = strtod(a->u.number.r, &ea), db = strtod(b->u.number.r, &eb);
        return *ea == '\0' && *eb == '\0' && da == db;
    }
    if (YAJL_IS_STRING(a) && YAJL_IS_STRING(b)) return strcmp(a->u.string, b->u.string) == 0;
    if (YAJL_IS_TRUE(a) || YAJL_IS_FALSE(a) || YAJL_IS_NULL(a)) return a->type == b->type;
    if (YAJL_IS_ARRAY(a) && YAJL_IS_ARRAY(b)) {
        if (a->u.array.len != b->u.array.len) return false;
        for (size_t i = 0; i < a->u.array.len; i++)
            if (!json_equal(a->u.array.values[i], b->u.array.values[i], depth + 1)) return false;
        return true;
    }
    if (YAJL_IS_OBJECT(a) && YAJL_IS_OBJECT(b)) {
        if (a->u.object.len != b->u.object.len) return false;
        for (size_t i = 0; i < a->u.object.len; i++) {
            yajl_val bv = object_get(b, a->u.object.keys[i]);
            if (!bv || !json_equal(a->u.object.values[i], bv, depth + 1)) return false;
        }
        return true;
    }
    return false;
}

static bool step_matches(const tf_funnel_step_t *s, const tf_funnel_event_t *e, yajl_val props) {
    if (s->type != e->type) return false;
    if (s->name && (!e->name || strcmp(s->name, e->name) != 0)) return false;
    if (s->path) {
        if (!e->path) return false;
        if (s->path_prefix ? strncmp(e->path, s->path, s->path_len) != 0
                           : strcmp(e->path, s->path) != 0)
            return false;
    }
    if (s->properties) {
        if (!props || !YAJL_IS_OBJECT(props)) return false;
        for (size_t i = 0; i < s->properties->u.object.len; i++) {
            yajl_val ev = object_get(props, s->properties->u.object.keys[i]);
            if (!ev || !json_equal(s->properties->u.object.values[i], ev, 0)) return false;
        }
    }
    return true;
}

uint32_t tf_funnel_match(const tf_funnel_t *funnel, const tf_funnel_event_t *event) {
    if ((unsigned)event->type >= TF_EVENT_TYPE_COUNT ||
        !(funnel->type_mask & (1u << event->type)))
        return 0;
    yajl_val props = NULL;
    bool parsed = false;
    uint32_t mask = 0;
    for (size_t i = 0; i < funnel->n_steps; i++) {
        const tf_funnel_step_t *s = &funnel->steps[i];
        if (s->type != event->type) continue;
        if (s->properties && !parsed && event->properties_json) {
            props = yajl_tree_parse(event->properties_json, NULL, 0);
            parsed = true;
        }
        if (step_matches(s, event, props)) mask |= 1u << i;
    }
    yajl_tree_free(props);
    return mask;
}

/* Kuhn's augmenting path inside one group of equal-time points: tries to give step
 * `step` a point, moving steps already placed in the group to other points. owner[p]
 * is the step point p holds (-1 = free). */
static bool augment(const tf_funnel_point_t *g, size_t gn, int step, int *owner, bool *seen) {
    for (size_t p = 0; p < gn; p++) {
        if (seen[p] || !(g[p].steps & (1u << step))) continue;
        seen[p] = true;
        if (owner[p] < 0 || augment(g, gn, owner[p], owner, seen)) {
            owner[p] = step;
            return true;
        }
    }
    return false;
}

/* The chain that starts at time t0 (points[start] is the first point at t0). Steps are
 * taken group by group of equal times, each group advancing as far as a matching of
 * the next steps to its distinct points allows. Returns the level, or -1 (memory). */
static int chain_from(const tf_funnel_t *f, const tf_funnel_point_t *points, size_t n,
                      size_t start, int64_t *at_ms, int **owner, bool **seen, size_t *cap) {
    int64_t t0 = points[start].at_ms, last = t0 + f->window_ms;
    if (f->window_ms > INT64_MAX - t0) last = INT64_MAX;
    int level = 0, nsteps = (int)f->n_steps;
    for (size_t i = start; i < n && points[i].at_ms <= last && level < nsteps;) {
        size_t j = i + 1;
        while (j < n && points[j].at_ms == points[i].at_ms) j++;
        size_t gn = j - i;
        if (gn == 1) {
            if (points[i].steps & (1u << level)) at_ms[level++] = points[i].at_ms;
        } else {
            if (gn > *cap) {
                int *o = realloc(*owner, gn * sizeof(*o));
                if (!o) return -1;
                *owner = o;
                bool *s = realloc(*seen, gn * sizeof(*s));
                if (!s) return -1;
                *seen = s;
                *cap = gn;
            }
            for (size_t p = 0; p < gn; p++) (*owner)[p] = -1;
            while (level < nsteps) {
                memset(*seen, 0, gn * sizeof(**seen));
                if (!augment(points + i, gn, level, *owner, *seen)) break;
                at_ms[level++] = points[i].at_ms;
            }
        }
        if (level == 0) break; /* the start group did not hold step 1 */
        i = j;
    }
    return level;
}

int tf_funnel_best_chain(const tf_funnel_t *funnel, const tf_funnel_point_t *points, size_t n,
                         int64_t from_ms, int64_t to_ms, tf_funnel_chain_t *out) {
    out->level = 0;
    int *owner = NULL;
    bool *seen = NULL;
    size_t cap = 0;
    int rc = 0;
    int64_t at_ms[TF_FUNNEL_MAX_STEPS];
    /* First point at or after from_ms. */
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (points[mid].at_ms < from_ms) lo = mid + 1;
        else hi = mid;
    }
    for (size_t i = lo; i < n && points[i].at_ms < to_ms;) {
        size_t j = i + 1;
        bool starts = (points[i].steps & 1u) != 0;
        while (j < n && points[j].at_ms == points[i].at_ms) starts |= (points[j++].steps & 1u) != 0;
        if (starts) {
            int level = chain_from(funnel, points, n, i, at_ms, &owner, &seen, &cap);
            if (level < 0) {
                out->level = 0;
                rc = -1;
                break;
            }
            if (level > out->level) {
                out->level = level;
                memcpy(out->at_ms, at_ms, (size_t)level * sizeof(at_ms[0]));
                if (level == (int)funnel->n_steps) break;
            }
        }
        i = j;
    }
    free(owner);
    free(seen);
    return rc;
}

double tf_funnel_rate(long long num, long long den) {
    return den > 0 ? (double)num / (double)den : 0.0;
}

/* The shortest of %.15g, %.16g, %.17g that reads back as v. */
static yajl_gen_status gen_double(yajl_gen g, double v) {
    char buf[40];
    if (!isfinite(v)) return yajl_gen_null(g);
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return yajl_gen_number(g, buf, strlen(buf));
}

static yajl_gen_status gen_key(yajl_gen g, const char *key) {
    return yajl_gen_string(g, (const unsigned char *)key, strlen(key));
}

int tf_funnel_step_results_json(const tf_funnel_t *funnel, const tf_funnel_step_stat_t *stats,
                                char **json, char *errstr, size_t errstr_size) {
    yajl_gen g = yajl_gen_alloc(NULL);
    if (!g) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    int st = yajl_gen_array_open(g);
    long long start = funnel->n_steps ? stats[0].count : 0;
    for (size_t i = 0; i < funnel->n_steps && st == yajl_gen_status_ok; i++) {
        long long prev = i ? stats[i - 1].count : stats[0].count;
        const char *type = tf_event_type_name(funnel->steps[i].type);
        st |= yajl_gen_map_open(g);
        st |= gen_key(g, "step");
        st |= yajl_gen_integer(g, (long long)i + 1);
        st |= gen_key(g, "type");
        st |= yajl_gen_string(g, (const unsigned char *)type, strlen(type));
        st |= gen_key(g, "count");
        st |= yajl_gen_integer(g, stats[i].count);
        st |= gen_key(g, "dropOff");
        st |= yajl_gen_integer(g, i ? prev - stats[i].count : 0);
        st |= gen_key(g, "conversionRateFromPrev");
        st |= gen_double(g, tf_funnel_rate(stats[i].count, prev));
        st |= gen_key(g, "conversionRateFromStart");
        st |= gen_double(g, tf_funnel_rate(stats[i].count, start));
        st |= gen_key(g, "medianSecondsFromPrev");
        st |= (i && stats[i].has_median) ? gen_double(g, stats[i].median_seconds)
                                         : yajl_gen_null(g);
        st |= yajl_gen_map_close(g);
    }
    if (st == yajl_gen_status_ok) st = yajl_gen_array_close(g);
    const unsigned char *buf;
    size_t len;
    if (st != yajl_gen_status_ok || yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
        snprintf(errstr, errstr_size, "stepResults: JSON generation failed");
        yajl_gen_free(g);
        return -1;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        snprintf(errstr, errstr_size, "out of memory");
        yajl_gen_free(g);
        return -1;
    }
    memcpy(copy, buf, len);
    copy[len] = '\0';
    yajl_gen_free(g);
    *json = copy;
    return 0;
}
