/* evpub.h — the publishing library for upstream C services: build raw tracking events
 * (SPEC §3) field by field, check them with exactly the rules ingest applies
 * (tf_event_parse on the bytes that will be sent), and publish them to Kafka keyed by
 * visitorId through an idempotent producer. Link with libevpipe.a. */
#ifndef EVPUB_H
#define EVPUB_H

#include <stddef.h>
#include <stdint.h>

#define EVPUB_DEFAULT_TOPIC "analytics.events.raw"
#define EVPUB_MAX_STRING 65536 /* a setter refuses a longer string (no event could hold it) */

typedef struct evpub_event_s evpub_event_t;
typedef struct evpub_publisher_s evpub_publisher_t;

/* ---- events ---------------------------------------------------------------------- */

/* A new event: type is an EventType name ("PAGE_VIEW", "PURCHASE" ...), visitor_id the
 * anonymous visitor id (also the message key), timestamp_ms the event time in epoch
 * milliseconds. Strings are copied. Nothing is checked here: evpub_event_validate and
 * evpub_publish say what is wrong. Returns NULL when out of memory or type/visitor_id
 * is NULL. The caller owns the event (evpub_event_destroy). */
evpub_event_t *evpub_event_new(const char *type, const char *visitor_id, int64_t timestamp_ms);

/* Frees the event; NULL is a no-op. */
void evpub_event_destroy(evpub_event_t *ev);

/* Setters. Each copies its strings; NULL clears the field (the field is then not sent).
 * Return 0, or -1 when out of memory or a string is longer than EVPUB_MAX_STRING (the
 * field is then left as it was). */
int evpub_event_set_event_id(evpub_event_t *ev,
                             const char *event_id); /* default: a random UUID v4 */
int evpub_event_set_user_id(evpub_event_t *ev, const char *user_id);
int evpub_event_set_name(evpub_event_t *ev, const char *name);
int evpub_event_set_url(evpub_event_t *ev, const char *url);
int evpub_event_set_referrer(evpub_event_t *ev, const char *referrer);
int evpub_event_set_title(evpub_event_t *ev, const char *title);
int evpub_event_set_user_agent(evpub_event_t *ev, const char *user_agent);
int evpub_event_set_language(evpub_event_t *ev, const char *language);
int evpub_event_set_ip(evpub_event_t *ev, const char *ip);
int evpub_event_set_page_view_id(evpub_event_t *ev, const char *page_view_id);
/* Client hints: mobile is 1, 0, or -1 for "not sent"; platform and model may be NULL. */
int evpub_event_set_client_hints(evpub_event_t *ev, int mobile, const char *platform,
                                 const char *model);
/* geo.country (ISO 3166-1 alpha-2), region and city; any may be NULL. */
int evpub_event_set_geo(evpub_event_t *ev, const char *country, const char *region,
                        const char *city);
/* Numbers: these cannot fail; the validator checks their ranges. */
void evpub_event_set_screen(evpub_event_t *ev, int width, int height);
void evpub_event_set_time_on_page(evpub_event_t *ev, double seconds);
void evpub_event_set_scroll_depth(evpub_event_t *ev, int percent);
/* value (sent with up to 15 significant digits) and its ISO 4217 currency; currency
 * NULL sends the value alone, which the validator refuses. */
int evpub_event_set_value(evpub_event_t *ev, double value, const char *currency);
/* The same with the value as decimal text ("149.90"), sent exactly as given. */
int evpub_event_set_value_text(evpub_event_t *ev, const char *value, const char *currency);
/* properties as a whole JSON object (sent as given; replaces properties added below). */
int evpub_event_set_properties_json(evpub_event_t *ev, const char *json_object);
/* Adds one property to the properties object. Returns -1 also when properties were
 * given whole by evpub_event_set_properties_json. Keys are not de-duplicated. */
int evpub_event_add_property_string(evpub_event_t *ev, const char *key, const char *value);
int evpub_event_add_property_number(evpub_event_t *ev, const char *key, double value);
int evpub_event_add_property_bool(evpub_event_t *ev, const char *key, int value);

/* The event's eventId, generated (UUID v4 from the kernel's random source) at the first
 * call of this, validate, to_json or publish when none was set; owned by ev. Use it as
 * the pageViewId of the PAGE_LEAVE and SCROLL events of a page view. NULL when out of
 * memory. */
const char *evpub_event_id(evpub_event_t *ev);

/* The JSON message that would be sent (not validated): *json is malloc'd (caller frees)
 * and NUL-terminated, *len its length. Returns 0, or -1 with errstr (out of memory, or
 * larger than the 64 KiB a message may have). */
int evpub_event_to_json(evpub_event_t *ev, char **json, size_t *len, char *errstr,
                        size_t errstr_size);

/* Checks the event with ingest's rules. Returns 0 when valid; -1 when not, with errstr
 * "<reason code>: <message>" (e.g. "currency_required: currency: required when value
 * is present"; the codes are those of the dead-letter header evpipe.reason); -2 when
 * out of memory. */
int evpub_event_validate(evpub_event_t *ev, char *errstr, size_t errstr_size);

/* ---- publishing ------------------------------------------------------------------ */

/* A publisher to topic (NULL: EVPUB_DEFAULT_TOPIC) on brokers, with an idempotent
 * producer (acks=all, lz4, Java-compatible key partitioning). props is NULL or an array
 * of librdkafka property names and values ("key", "value", ..., NULL) applied after the
 * defaults (TLS, SASL ...). Returns NULL with errstr on a configuration error. */
evpub_publisher_t *evpub_publisher_new(const char *brokers, const char *topic,
                                       const char *const *props, char *errstr, size_t errstr_size);

/* Waits up to 10 s for outstanding deliveries, then frees the publisher (what is still
 * undelivered is dropped: call evpub_flush first to know). NULL is a no-op. */
void evpub_publisher_destroy(evpub_publisher_t *pub);

/* Validates ev and enqueues it, keyed by its visitorId (the bytes are copied: ev stays
 * the caller's and may be destroyed at once). Blocks while the local queue is full.
 * Returns 0 when enqueued (delivery is confirmed by evpub_flush); -1 when the event is
 * invalid (nothing sent; errstr as evpub_event_validate gives it); -2 when the producer
 * refused it (errstr says why: fatal producer error, message too large for the cluster
 * ...); -3 when out of memory. */
int evpub_publish(evpub_publisher_t *pub, evpub_event_t *ev, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Waits until every published event has been acknowledged, at most timeout_ms (< 0:
 * no limit). Returns 0 when all were delivered; -1 when some are still in flight at the
 * timeout, or some failed since the previous evpub_flush (errstr gives the count and
 * the first error). */
int evpub_flush(evpub_publisher_t *pub, int timeout_ms, char *errstr, size_t errstr_size);

typedef struct evpub_stats_s {
    uint64_t published; /* enqueued by evpub_publish */
    uint64_t delivered; /* acknowledged by the cluster */
    uint64_t failed;    /* refused by the producer or not delivered */
    uint64_t invalid;   /* refused by validation */
} evpub_stats_t;

/* Counters since the publisher was created. */
void evpub_publisher_stats(const evpub_publisher_t *pub, evpub_stats_t *stats);

#endif
