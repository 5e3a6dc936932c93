/* fuzz_event.c — libFuzzer target: tf_event_parse on arbitrary bytes, checking its invariants.
 * fuzz-sources: transforms/event.c
 * fuzz-pkgs: yajl libcurl */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "transforms/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Code points of a NUL-terminated UTF-8 string; aborts on invalid UTF-8. */
static size_t chars_of(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0xF8 || (*p >= 0x80 && *p < 0xC2 && (*p & 0xC0) != 0x80)) abort();
        n += (*p & 0xC0) != 0x80;
    }
    return n;
}

static void check_string(const tf_event_t *ev, const char *s, size_t min, size_t max) {
    if (!s) return;
    if (s < ev->buf_ || s >= ev->buf_ + ev->buf_cap_) abort(); /* outside the event's buffer */
    size_t len = strlen(s);
    if (s + len >= ev->buf_ + ev->buf_cap_) abort();
    size_t chars = chars_of(s);
    if (chars < min || chars > max) abort();
}

static void check_event(const tf_event_t *ev, size_t size) {
    if (!ev->event_id || !ev->visitor_id) abort();
    if ((int)ev->type < 0 || ev->type >= TF_EVENT_TYPE_COUNT || !tf_event_type_name(ev->type))
        abort();
    if (ev->timestamp_ms < 0 || ev->timestamp_ms > INT64_C(253402300799999)) abort();
    if (ev->buf_cap_ > size + 64) abort();
    check_string(ev, ev->event_id, 1, 128);
    check_string(ev, ev->visitor_id, 1, 128);
    check_string(ev, ev->user_id, 0, 128);
    check_string(ev, ev->name, 0, 256);
    check_string(ev, ev->url, 1, 4096);
    check_string(ev, ev->referrer, 1, 4096);
    check_string(ev, ev->title, 0, 1024);
    check_string(ev, ev->user_agent, 0, 2048);
    check_string(ev, ev->ch_platform, 0, 128);
    check_string(ev, ev->ch_model, 0, 128);
    check_string(ev, ev->language, 1, 35);
    check_string(ev, ev->geo_country, 2, 2);
    check_string(ev, ev->geo_region, 0, 128);
    check_string(ev, ev->geo_city, 0, 128);
    check_string(ev, ev->page_view_id, 0, 128);
    check_string(ev, ev->value_text, 1, size);
    check_string(ev, ev->properties_json, 2, size);
    if (ev->type == TF_EVENT_PAGE_VIEW && !ev->url) abort();
    if (ev->url && strncasecmp(ev->url, "http", 4) != 0) abort();
    if (ev->screen_width < 0 || ev->screen_width > 20000) abort();
    if (ev->screen_height < 0 || ev->screen_height > 20000) abort();
    if (ev->scroll_depth < -1 || ev->scroll_depth > 100) abort();
    if (ev->has_time_on_page && !(ev->time_on_page >= 0 && ev->time_on_page <= 2147483647.0))
        abort();
    if (!ev->has_time_on_page && ev->time_on_page != 0) abort();
    if (ev->has_value) {
        if (!ev->value_text || !(ev->value >= 0 && ev->value < 1e12)) abort();
        if (strlen(ev->currency) != 3) abort();
    } else if (ev->value_text) {
        abort();
    }
    for (const char *c = ev->currency; *c; c++)
        if (*c < 'A' || *c > 'Z') abort();
    if (ev->properties_json && ev->properties_json[0] != '{') abort();
    if (ev->ch_has_mobile && !ev->has_client_hints) abort();
    if (ev->unknown_fields > size / 4) abort();
}

/* properties_json is compact JSON that parses back to itself. */
static void check_properties_roundtrip(const char *props) {
    static const char head[] = "{\"eventId\":\"e\",\"type\":\"CLICK\",\"timestamp\":0,"
                               "\"visitorId\":\"v\",\"properties\":";
    size_t plen = strlen(props), hlen = sizeof(head) - 1;
    char *msg = malloc(hlen + plen + 1);
    if (!msg) return;
    memcpy(msg, head, hlen);
    memcpy(msg + hlen, props, plen);
    msg[hlen + plen] = '}';
    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    int rc = tf_event_parse(&ev, msg, hlen + plen + 1, &err);
    bool too_large = rc == -1 && err.reason == TF_REASON_TOO_LARGE; /* the wrapper adds bytes */
    if (rc != 0 && !too_large) abort();
    if (rc == 0 && strcmp(ev.properties_json, props) != 0) abort();
    tf_event_reset(&ev);
    free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    int rc = tf_event_parse(&ev, (const char *)data, size, &err);
    if (rc == 0) {
        check_event(&ev, size);
        if (err.reason != TF_REASON_OK || err.message[0]) abort();
        /* parsing again into the same event gives the same result */
        tf_event_t again;
        tf_event_init(&again);
        if (tf_event_parse(&again, (const char *)data, size, NULL) != 0) abort();
        if (strcmp(again.event_id, ev.event_id) != 0 || again.timestamp_ms != ev.timestamp_ms)
            abort();
        tf_event_reset(&again);
        if (ev.properties_json) check_properties_roundtrip(ev.properties_json);
    } else if (rc == -1) {
        if (err.reason <= TF_REASON_OK || err.reason >= TF_REASON_COUNT) abort();
        if (!tf_event_reason_code(err.reason) || !err.message[0]) abort();
        if (memchr(err.message, '\0', sizeof(err.message)) == NULL) abort();
        if (memchr(err.field, '\0', sizeof(err.field)) == NULL) abort();
        if (ev.buf_ || ev.event_id || ev.properties_json || ev.unknown_fields) abort();
        if ((size > TF_EVENT_MAX_BYTES) != (err.reason == TF_REASON_TOO_LARGE)) abort();
    } else if (rc != -2) {
        abort();
    }
    tf_event_reset(&ev);
    return 0;
}
