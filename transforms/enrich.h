/* enrich.h — from a parsed event to what the session and the enriched feed need:
 * URL path and campaign, attribution, device. Pure: no I/O. */
#ifndef TF_ENRICH_H
#define TF_ENRICH_H

#include <stddef.h>
#include <stdint.h>

#include "transforms/attribution.h"
#include "transforms/device.h"
#include "transforms/event.h"
#include "transforms/sessionize.h"
#include "transforms/url.h"

typedef struct tf_enriched_s {
    tf_url_t url;                 /* the event's URL, parsed (fields NULL without URL) */
    tf_attribution_t attribution; /* from the URL and referrer */
    tf_ua_info_t ua;              /* device classification */
    tf_sess_context_t context;    /* points into the fields above and the event */
    const char *path;             /* url.path or NULL */
    const char *campaign_key;     /* url.campaign_key or NULL */
} tf_enriched_t;

void tf_enriched_init(tf_enriched_t *en);
void tf_enriched_reset(tf_enriched_t *en);

/* Fills *en for ev (which must outlive en's use of its strings). A URL or referrer
 * that cannot be parsed leaves the derived fields NULL (the event is still valid:
 * the parser has checked what SPEC §3 requires). Returns 0, or -1 when out of memory. */
int tf_enrich(const tf_event_t *ev, tf_ua_classifier_t *clf, tf_enriched_t *en)
    __attribute__((warn_unused_result));

/* A cache of (page URL, referrer) -> parsed URL and attribution: parsing URLs is the
 * costliest part of enrichment, and most events repeat a pair seen shortly before.
 * Direct-mapped, capacity rounded up to a power of two (at most 2^24). NULL when
 * out of memory. Not thread-safe. */
typedef struct tf_enrich_cache_s tf_enrich_cache_t;
tf_enrich_cache_t *tf_enrich_cache_new(size_t capacity);
/* NULL is a no-op. */
void tf_enrich_cache_destroy(tf_enrich_cache_t *cache);
void tf_enrich_cache_stats(const tf_enrich_cache_t *cache, uint64_t *hits, uint64_t *misses);

/* tf_enrich through cache (NULL = no cache): the same result, computed once per pair. */
int tf_enrich_cached(const tf_event_t *ev, tf_ua_classifier_t *clf, tf_enrich_cache_t *cache,
                     tf_enriched_t *en) __attribute__((warn_unused_result));

/* Serialises the enriched event of the analytics.events.enriched feed: the stored
 * event fields plus sessionId, deviceType and attribution, as one JSON object.
 * Returns a malloc'd NUL-terminated string (*len set), or NULL when out of memory. */
char *tf_enriched_json(const tf_event_t *ev, const tf_enriched_t *en, const char *session_id,
                       size_t *len);

#endif
