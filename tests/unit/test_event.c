/* test_event.c — the raw event parser against golden files (tests/data/events) and rules. */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/testlib.h"
#include "transforms/event.h"

#define MAX_FILES 1024

static const char *data_dir(void) {
    const char *v = getenv("EVPIPE_TEST_DATA_DIR");
    return v && *v ? v : "tests/data";
}

static char *valid_files[MAX_FILES];
static size_t valid_count;
static char *invalid_files[MAX_FILES];
static size_t invalid_count;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the .json files of events/<sub>, sorted. Returns the count (0 when the folder is missing).
 */
static size_t list_json(const char *sub, char **out) {
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/events/%s", data_dir(), sub);
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < MAX_FILES) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0) continue;
        out[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(out, n, sizeof(out[0]), cmp_str);
    return n;
}

/* Reads a whole file into an exactly sized buffer (no terminator: the parser must not
 * read past len). Aborts the test when the file cannot be read. */
static char *read_exact(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert(fseek(f, 0, SEEK_END) == 0);
    long size = ftell(f);
    ck_assert(size >= 0);
    ck_assert(fseek(f, 0, SEEK_SET) == 0);
    char *buf = malloc(size ? (size_t)size : 1);
    ck_assert(buf != NULL);
    ck_assert_msg(fread(buf, 1, (size_t)size, f) == (size_t)size, "short read of %s", path);
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static char *read_case(const char *sub, const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/events/%s/%s", data_dir(), sub, name);
    return read_exact(path, len);
}

/* ---- event dump: every field of tf_event_t by name -------------------------------- */

typedef enum { K_STR, K_CHARS, K_TYPE, K_BOOL, K_I32, K_I64, K_U32, K_DBL } kind_t;
typedef struct key_def_s {
    const char *key;
    kind_t kind;
    size_t off;
    const char *dflt; /* the value when absent; NULL for an absent string */
} key_def_t;

#define KD(name, kind, dflt)                                                                       \
    { #name, kind, offsetof(tf_event_t, name), dflt }
static const key_def_t key_defs[] = {
    KD(event_id, K_STR, NULL),
    KD(type, K_TYPE, "(required)"),
    KD(timestamp_ms, K_I64, "(required)"),
    KD(visitor_id, K_STR, NULL),
    KD(user_id, K_STR, NULL),
    KD(name, K_STR, NULL),
    KD(url, K_STR, NULL),
    KD(referrer, K_STR, NULL),
    KD(title, K_STR, NULL),
    KD(user_agent, K_STR, NULL),
    KD(has_client_hints, K_BOOL, "false"),
    KD(ch_has_mobile, K_BOOL, "false"),
    KD(ch_mobile, K_BOOL, "false"),
    KD(ch_platform, K_STR, NULL),
    KD(ch_model, K_STR, NULL),
    KD(screen_width, K_I32, "0"),
    KD(screen_height, K_I32, "0"),
    KD(language, K_STR, NULL),
    KD(geo_country, K_STR, NULL),
    KD(geo_region, K_STR, NULL),
    KD(geo_city, K_STR, NULL),
    KD(page_view_id, K_STR, NULL),
    KD(has_time_on_page, K_BOOL, "false"),
    KD(time_on_page, K_DBL, "0"),
    KD(scroll_depth, K_I32, "-1"),
    KD(has_value, K_BOOL, "false"),
    KD(value, K_DBL, "0"),
    KD(value_text, K_STR, NULL),
    KD(currency, K_CHARS, ""),
    KD(properties_json, K_STR, NULL),
    KD(unknown_fields, K_U32, "0"),
};
#define KEY_COUNT (sizeof(key_defs) / sizeof(key_defs[0]))

/* Renders one field; returns NULL for an absent string. */
static const char *render(const tf_event_t *ev, const key_def_t *kd, char *buf, size_t size) {
    const char *base = (const char *)ev + kd->off;
    switch (kd->kind) {
    case K_STR: return *(const char *const *)(const void *)base;
    case K_CHARS: return base;
    case K_TYPE: {
        const char *n = tf_event_type_name(*(const tf_event_type_t *)(const void *)base);
        return n ? n : "(bad type)";
    }
    case K_BOOL: return *(const bool *)(const void *)base ? "true" : "false";
    case K_I32: snprintf(buf, size, "%d", (int)*(const int32_t *)(const void *)base); return buf;
    case K_I64:
        snprintf(buf, size, "%lld", (long long)*(const int64_t *)(const void *)base);
        return buf;
    case K_U32:
        snprintf(buf, size, "%u", (unsigned)*(const uint32_t *)(const void *)base);
        return buf;
    case K_DBL: snprintf(buf, size, "%.15g", *(const double *)(const void *)base); return buf;
    }
    return NULL;
}

/* Decodes the escapes of .expect values: \\ \n \t \xHH. */
static void unescape(char *s) {
    char *out = s;
    for (char *p = s; *p; p++) {
        if (*p != '\\') {
            *out++ = *p;
            continue;
        }
        p++;
        if (*p == 'n')
            *out++ = '\n';
        else if (*p == 't')
            *out++ = '\t';
        else if (*p == '\\')
            *out++ = '\\';
        else if (*p == 'x' && p[1] && p[2]) {
            char hex[3] = {p[1], p[2], 0};
            *out++ = (char)strtol(hex, NULL, 16);
            p += 2;
        } else {
            ck_abort_msg("bad escape in expectation: \\%c", *p);
        }
    }
    *out = '\0';
}

/* Every string of the event points into its one buffer. */
static void assert_strings_in_buffer(const tf_event_t *ev, const char *what) {
    for (size_t k = 0; k < KEY_COUNT; k++) {
        if (key_defs[k].kind != K_STR) continue;
        const char *s = *(const char *const *)(const void *)((const char *)ev + key_defs[k].off);
        if (!s) continue;
        ck_assert_msg(s >= ev->buf_ && s + strlen(s) < ev->buf_ + ev->buf_cap_,
                      "%s: %s is outside the event buffer", what, key_defs[k].key);
    }
}

/* An event after a failed parse, or after reset: nothing held, every field absent. */
static void assert_empty(const tf_event_t *ev, const char *what) {
    char buf[64];
    ck_assert_msg(ev->buf_ == NULL && ev->buf_cap_ == 0, "%s: buffer still held", what);
    for (size_t k = 0; k < KEY_COUNT; k++) {
        const key_def_t *kd = &key_defs[k];
        const char *got = render(ev, kd, buf, sizeof(buf));
        if (kd->kind == K_TYPE || kd->kind == K_I64) continue; /* 0 = PAGE_VIEW / epoch */
        if (!kd->dflt)
            ck_assert_msg(got == NULL, "%s: %s = \"%s\" on an empty event", what, kd->key, got);
        else
            ck_assert_msg(strcmp(got, kd->dflt) == 0, "%s: %s = %s on an empty event", what,
                          kd->key, got);
    }
}

/* ---- golden files ------------------------------------------------------------------ */

START_TEST(test_event_valid_files) {
    const char *name = valid_files[_i];
    size_t len;
    char *data = read_case("valid", name, &len);
    char expect_name[512];
    snprintf(expect_name, sizeof(expect_name), "%.*s.expect", (int)(strlen(name) - 5), name);
    size_t elen;
    char *expect_raw = read_case("valid", expect_name, &elen);
    char *expect = malloc(elen + 1);
    memcpy(expect, expect_raw, elen);
    expect[elen] = '\0';

    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    int rc = tf_event_parse(&ev, data, len, &err);
    ck_assert_msg(rc == 0, "%s: rejected: %s (%s)", name, err.message,
                  tf_event_reason_code(err.reason));
    ck_assert_int_eq(err.reason, TF_REASON_OK);
    ck_assert_str_eq(err.message, "");

    bool listed[KEY_COUNT] = {false};
    for (char *line = expect, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char *eq = strchr(line, '=');
        ck_assert_msg(eq != NULL, "%s: bad expectation line %s", expect_name, line);
        *eq = '\0';
        char *want = eq + 1;
        unescape(want);
        size_t k = 0;
        while (k < KEY_COUNT && strcmp(key_defs[k].key, line) != 0)
            k++;
        ck_assert_msg(k < KEY_COUNT, "%s: unknown field %s", expect_name, line);
        listed[k] = true;
        char buf[64];
        const char *got = render(&ev, &key_defs[k], buf, sizeof(buf));
        ck_assert_msg(got != NULL, "%s: %s absent, want \"%s\"", name, line, want);
        ck_assert_msg(strcmp(got, want) == 0, "%s: %s = \"%s\", want \"%s\"", name, line, got,
                      want);
    }
    for (size_t k = 0; k < KEY_COUNT; k++) {
        if (listed[k]) continue;
        char buf[64];
        const char *got = render(&ev, &key_defs[k], buf, sizeof(buf));
        if (!key_defs[k].dflt)
            ck_assert_msg(got == NULL, "%s: %s = \"%s\", want absent", name, key_defs[k].key, got);
        else
            ck_assert_msg(strcmp(got, key_defs[k].dflt) == 0, "%s: %s = %s, want %s", name,
                          key_defs[k].key, got, key_defs[k].dflt);
    }
    assert_strings_in_buffer(&ev, name);
    ck_assert_msg(ev.buf_cap_ <= len + 64, "%s: buffer of %zu bytes for %zu input bytes", name,
                  ev.buf_cap_, len);
    tf_event_reset(&ev);
    assert_empty(&ev, name);
    free(expect);
    free(expect_raw);
    free(data);
}
END_TEST

/* invalid/<reason>__<field or ->__<description>.json */
START_TEST(test_event_invalid_files) {
    const char *name = invalid_files[_i];
    char reason[64], field[64];
    const char *sep1 = strstr(name, "__");
    ck_assert_msg(sep1 != NULL, "bad file name %s", name);
    const char *sep2 = strstr(sep1 + 2, "__");
    ck_assert_msg(sep2 != NULL, "bad file name %s", name);
    snprintf(reason, sizeof(reason), "%.*s", (int)(sep1 - name), name);
    snprintf(field, sizeof(field), "%.*s", (int)(sep2 - sep1 - 2), sep1 + 2);
    if (strcmp(field, "-") == 0) field[0] = '\0';

    size_t len;
    char *data = read_case("invalid", name, &len);
    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    int rc = tf_event_parse(&ev, data, len, &err);
    ck_assert_msg(rc == -1, "%s: accepted (rc %d)", name, rc);
    ck_assert_msg(strcmp(tf_event_reason_code(err.reason), reason) == 0,
                  "%s: reason %s, want %s (%s)", name, tf_event_reason_code(err.reason), reason,
                  err.message);
    ck_assert_msg(strcmp(err.field, field) == 0, "%s: field \"%s\", want \"%s\"", name, err.field,
                  field);
    ck_assert_msg(err.message[0] != '\0', "%s: empty message", name);
    if (field[0]) {
        char prefix[80];
        snprintf(prefix, sizeof(prefix), "%s: ", field);
        ck_assert_msg(strncmp(err.message, prefix, strlen(prefix)) == 0,
                      "%s: message does not name the field: %s", name, err.message);
    }
    for (const char *m = err.message; *m; m++)
        ck_assert_msg((unsigned char)*m >= 0x20 && *m != 0x7F, "%s: control byte in message", name);
    assert_empty(&ev, name);
    free(data);
}
END_TEST

START_TEST(test_event_golden_files_present) {
    ck_assert_msg(valid_count >= 50, "only %zu files in %s/events/valid", valid_count, data_dir());
    ck_assert_msg(invalid_count >= 200, "only %zu files in %s/events/invalid", invalid_count,
                  data_dir());
}
END_TEST

START_TEST(test_event_invalid_files_cover_every_reason) {
    for (int r = TF_REASON_OK + 1; r < TF_REASON_COUNT; r++) {
        if (r == TF_REASON_TOO_LARGE)
            continue; /* 64 KiB inputs are built in test_event_size_limit */
        const char *code = tf_event_reason_code((tf_event_reason_t)r);
        size_t hits = 0;
        for (size_t i = 0; i < invalid_count; i++)
            if (strncmp(invalid_files[i], code, strlen(code)) == 0 &&
                strncmp(invalid_files[i] + strlen(code), "__", 2) == 0)
                hits++;
        ck_assert_msg(hits >= 2, "reason %s has %zu golden cases", code, hits);
    }
}
END_TEST

/* ---- enums ------------------------------------------------------------------------- */

START_TEST(test_event_type_names_follow_the_enum) {
    static const char *const want[] = {"PAGE_VIEW",
                                       "PAGE_LEAVE",
                                       "PRODUCT_VIEW",
                                       "PRODUCT_LIST_VIEW",
                                       "SEARCH",
                                       "ADD_TO_CART",
                                       "REMOVE_FROM_CART",
                                       "CHECKOUT_START",
                                       "PURCHASE",
                                       "APPOINTMENT_START",
                                       "APPOINTMENT_COMPLETE",
                                       "APPOINTMENT_CANCEL",
                                       "FORM_START",
                                       "FORM_SUBMIT",
                                       "LEAD",
                                       "SIGN_UP",
                                       "LOGIN",
                                       "CLICK",
                                       "SCROLL",
                                       "OUTBOUND_CLICK",
                                       "FILE_DOWNLOAD",
                                       "VIDEO_PLAY",
                                       "CUSTOM"};
    ck_assert_int_eq(TF_EVENT_TYPE_COUNT, 23);
    for (int i = 0; i < TF_EVENT_TYPE_COUNT; i++) {
        ck_assert_str_eq(tf_event_type_name((tf_event_type_t)i), want[i]);
        tf_event_type_t t = TF_EVENT_TYPE_COUNT;
        ck_assert_int_eq(tf_event_type_parse(want[i], strlen(want[i]), &t), 0);
        ck_assert_int_eq(t, i);
    }
    ck_assert_ptr_null(tf_event_type_name(TF_EVENT_TYPE_COUNT));
    ck_assert_ptr_null(tf_event_type_name((tf_event_type_t)-1));
    tf_event_type_t t = TF_EVENT_CUSTOM;
    ck_assert_int_eq(tf_event_type_parse("click", 5, &t), -1);
    ck_assert_int_eq(tf_event_type_parse("CLICKS", 6, &t), -1);
    ck_assert_int_eq(tf_event_type_parse("", 0, &t), -1);
    ck_assert_int_eq(t, TF_EVENT_CUSTOM);                      /* untouched on failure */
    ck_assert_int_eq(tf_event_type_parse("CLICKS", 5, &t), 0); /* exactly len bytes */
    ck_assert_int_eq(t, TF_EVENT_CLICK);
}
END_TEST

START_TEST(test_event_reason_codes_are_stable) {
    static const char *const want[] = {"ok",           "too_large",          "invalid_utf8",
                                       "invalid_json", "not_object",         "missing_field",
                                       "wrong_type",   "unknown_event_type", "bad_timestamp",
                                       "too_long",     "out_of_range",       "bad_url",
                                       "bad_currency", "currency_required",  "too_deep",
                                       "bad_country",  "bad_language",       "duplicate_field"};
    ck_assert_int_eq(TF_REASON_COUNT, (int)(sizeof(want) / sizeof(want[0])));
    for (int i = 0; i < TF_REASON_COUNT; i++)
        ck_assert_str_eq(tf_event_reason_code((tf_event_reason_t)i), want[i]);
    ck_assert_ptr_null(tf_event_reason_code(TF_REASON_COUNT));
}
END_TEST

START_TEST(test_event_every_type_parses) {
    for (int i = 0; i < TF_EVENT_TYPE_COUNT; i++) {
        char msg[256];
        int n =
            snprintf(msg, sizeof(msg),
                     "{\"eventId\":\"e%d\",\"type\":\"%s\",\"timestamp\":%d,\"visitorId\":\"v\","
                     "\"url\":\"https://example.com/\"}",
                     i, tf_event_type_name((tf_event_type_t)i), i);
        tf_event_t ev;
        tf_event_init(&ev);
        tf_event_error_t err;
        ck_assert_msg(tf_event_parse(&ev, msg, (size_t)n, &err) == 0, "%s: %s", msg, err.message);
        ck_assert_int_eq(ev.type, i);
        ck_assert_int_eq(ev.timestamp_ms, i);
        tf_event_reset(&ev);
    }
}
END_TEST

/* ---- size, truncation, NUL bytes, reuse -------------------------------------------- */

static const char minimal[] =
    "{\"eventId\":\"e-1\",\"type\":\"CLICK\",\"timestamp\":\"2025-11-25T13:40:00.123Z\","
    "\"visitorId\":\"v-1\"}";

/* A valid event of exactly size bytes: the minimal one plus an unknown "pad" string. */
static char *padded_event(size_t size, char fill) {
    const char head[] = "{\"pad\":\"";
    const char tail[] =
        "\",\"eventId\":\"e\",\"type\":\"CLICK\",\"timestamp\":0,\"visitorId\":\"v\"}";
    size_t fixed = strlen(head) + strlen(tail);
    ck_assert(size > fixed);
    char *buf = malloc(size);
    memcpy(buf, head, strlen(head));
    memset(buf + strlen(head), fill, size - fixed);
    memcpy(buf + size - strlen(tail), tail, strlen(tail));
    return buf;
}

START_TEST(test_event_size_limit) {
    ck_assert_int_eq(TF_EVENT_MAX_BYTES, 65536);
    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    char *at_limit = padded_event(65536, 'x');
    ck_assert_msg(tf_event_parse(&ev, at_limit, 65536, &err) == 0, "%s", err.message);
    ck_assert_uint_eq(ev.unknown_fields, 1);
    ck_assert_str_eq(ev.event_id, "e");
    char *over = padded_event(65537, 'x');
    ck_assert_int_eq(tf_event_parse(&ev, over, 65537, &err), -1);
    ck_assert_int_eq(err.reason, TF_REASON_TOO_LARGE);
    ck_assert_str_eq(tf_event_reason_code(err.reason), "too_large");
    ck_assert_str_eq(err.field, "");
    ck_assert_msg(strstr(err.message, "65537") != NULL, "message: %s", err.message);
    assert_empty(&ev, "too large");
    /* too_large is decided before anything else: even garbage of that size */
    memset(over, 0xFF, 65537);
    ck_assert_int_eq(tf_event_parse(&ev, over, 65537, &err), -1);
    ck_assert_int_eq(err.reason, TF_REASON_TOO_LARGE);
    free(at_limit);
    free(over);
}
END_TEST

/* Every strict prefix of a valid event is rejected: invalid_utf8 when the cut splits a
 * UTF-8 sequence, invalid_json otherwise. */
START_TEST(test_event_truncated_prefixes) {
    size_t len;
    char *full = read_case("valid", "full_page_view.json", &len);
    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    ck_assert_int_eq(tf_event_parse(&ev, full, len, &err), 0);
    size_t split = 0;
    for (size_t cut = 0; cut < len; cut++) {
        char *prefix = malloc(cut ? cut : 1);
        memcpy(prefix, full, cut);
        int rc = tf_event_parse(&ev, prefix, cut, &err);
        bool splits = ((unsigned char)full[cut] & 0xC0) == 0x80;
        split += splits;
        ck_assert_msg(rc == -1, "prefix of %zu bytes accepted", cut);
        ck_assert_msg(err.reason == (splits ? TF_REASON_INVALID_UTF8 : TF_REASON_INVALID_JSON),
                      "prefix of %zu bytes: %s (%s)", cut, tf_event_reason_code(err.reason),
                      err.message);
        assert_empty(&ev, "prefix");
        free(prefix);
    }
    ck_assert_uint_gt(split, 0); /* the file has multi-byte characters ("–") */
    free(full);
}
END_TEST

START_TEST(test_event_nul_bytes_anywhere) {
    size_t len = strlen(minimal);
    char *copy = malloc(len + 1);
    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    for (size_t i = 0; i < len; i++) { /* replaced */
        memcpy(copy, minimal, len);
        copy[i] = '\0';
        ck_assert_int_eq(tf_event_parse(&ev, copy, len, &err), -1);
        ck_assert_msg(err.reason == TF_REASON_INVALID_JSON, "NUL at %zu: %s", i, err.message);
    }
    for (size_t i = 0; i <= len; i++) { /* inserted, including after the object */
        memcpy(copy, minimal, i);
        copy[i] = '\0';
        memcpy(copy + i + 1, minimal + i, len - i);
        ck_assert_int_eq(tf_event_parse(&ev, copy, len + 1, &err), -1);
        ck_assert_msg(err.reason == TF_REASON_INVALID_JSON, "NUL inserted at %zu: %s", i,
                      err.message);
    }
    free(copy);
}
END_TEST

START_TEST(test_event_reads_only_len_bytes) {
    size_t len = strlen(minimal);
    char *buf = malloc(len + 8);
    memcpy(buf, minimal, len);
    memcpy(buf + len, "garbage!", 8); /* beyond len: must not be seen */
    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    ck_assert_int_eq(tf_event_parse(&ev, buf, len, &err), 0);
    ck_assert_str_eq(ev.visitor_id, "v-1");
    /* and with the object cut short by len, the bytes after it do not complete it */
    ck_assert_int_eq(tf_event_parse(&ev, buf, len - 1, &err), -1);
    ck_assert_int_eq(err.reason, TF_REASON_INVALID_JSON);
    free(buf);
}
END_TEST

START_TEST(test_event_reuse_releases_previous) {
    const char with_user[] = "{\"eventId\":\"a\",\"type\":\"LOGIN\",\"timestamp\":5,\"visitorId\":"
                             "\"v\",\"userId\":\"u-7\",\"scrollDepth\":3,\"currency\":\"EUR\"}";
    tf_event_t ev;
    tf_event_init(&ev);
    assert_empty(&ev, "after init");
    tf_event_error_t err;
    ck_assert_int_eq(tf_event_parse(&ev, with_user, strlen(with_user), &err), 0);
    ck_assert_str_eq(ev.user_id, "u-7");
    ck_assert_int_eq(ev.scroll_depth, 3);
    ck_assert_str_eq(ev.currency, "EUR");
    ck_assert_int_eq(tf_event_parse(&ev, minimal, strlen(minimal), &err), 0);
    ck_assert_ptr_null(ev.user_id);
    ck_assert_int_eq(ev.scroll_depth, -1);
    ck_assert_str_eq(ev.currency, "");
    ck_assert_str_eq(ev.event_id, "e-1");
    ck_assert_int_eq(tf_event_parse(&ev, "{\"eventId\":1}", 13, &err), -1);
    assert_empty(&ev, "after a failure");
    tf_event_reset(&ev);
    tf_event_reset(&ev);
    tf_event_reset(NULL);
    assert_empty(&ev, "after two resets");
    /* err is optional, and cleared on success */
    ck_assert_int_eq(tf_event_parse(&ev, "[]", 2, NULL), -1);
    memset(&err, 'x', sizeof(err));
    ck_assert_int_eq(tf_event_parse(&ev, minimal, strlen(minimal), &err), 0);
    ck_assert_int_eq(err.reason, TF_REASON_OK);
    ck_assert_str_eq(err.field, "");
    ck_assert_str_eq(err.message, "");
    ck_assert_int_eq(tf_event_parse(&ev, NULL, 0, &err), -1);
    ck_assert_int_eq(err.reason, TF_REASON_INVALID_JSON);
    tf_event_reset(&ev);
}
END_TEST

/* ---- messages, precedence ---------------------------------------------------------- */

static void expect_error(const char *msg, tf_event_reason_t reason, const char *field,
                         const char *message) {
    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    ck_assert_msg(tf_event_parse(&ev, msg, strlen(msg), &err) == -1, "accepted: %s", msg);
    ck_assert_msg(err.reason == reason, "%s: reason %s (%s)", msg, tf_event_reason_code(err.reason),
                  err.message);
    ck_assert_str_eq(err.field, field);
    if (message) ck_assert_str_eq(err.message, message);
}

START_TEST(test_event_messages_name_the_field) {
    expect_error(
        "{\"eventId\":\"e\",\"type\":\"CLICK\",\"timestamp\":\"yesterday\",\"visitorId\":\"v\"}",
        TF_REASON_BAD_TIMESTAMP, "timestamp",
        "timestamp: expected RFC 3339 with a time zone or epoch milliseconds, from 1970 "
        "to 9999; got \"yesterday\"");
    expect_error("{\"type\":\"CLICK\"}", TF_REASON_MISSING_FIELD, "eventId",
                 "eventId: required field is missing (or null)");
    expect_error("{\"eventId\":\"e\",\"type\":\"CLICK\",\"timestamp\":0,\"visitorId\":\"v\","
                 "\"screen\":{\"width\":20001}}",
                 TF_REASON_OUT_OF_RANGE, "screen.width",
                 "screen.width: must be an integer from 1 to 20000, got 20001");
    expect_error("{\"eventId\":\"e\",\"type\":\"CLICK\",\"timestamp\":0,\"visitorId\":\"v\","
                 "\"name\":5}",
                 TF_REASON_WRONG_TYPE, "name", "name: expected a string, got a number");
    expect_error("{\"eventId\":\"e\",\"type\":\"VISIT\",\"timestamp\":0,\"visitorId\":\"v\"}",
                 TF_REASON_UNKNOWN_EVENT_TYPE, "type", "type: unknown event type \"VISIT\"");
    /* lengths count characters, and the message says how many */
    char msg[512];
    snprintf(msg, sizeof(msg),
             "{\"eventId\":\"e\",\"type\":\"CLICK\",\"timestamp\":0,\"visitorId\":\"v\",\"userId\":"
             "\"%s\"}",
             "ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé"
             "éééééééééééééééééééééééééééééééééééééééééééééééé"); /* 129 × é */
    expect_error(msg, TF_REASON_TOO_LONG, "userId",
                 "userId: must be at most 128 characters, got 129");
    expect_error(
        "{\"eventId\":\"e\",\"type\":\"CLICK\",\"timestamp\":0,\"visitorId\":\"v\",\"x\":[1,]}",
        TF_REASON_INVALID_JSON, "", NULL);
    expect_error("\n\n  [", TF_REASON_INVALID_JSON, "",
                 "invalid JSON at byte 5: parse error: premature EOF");
}
END_TEST

/* The first problem in document order wins, but a syntax error anywhere beats any rule,
 * and required/cross-field checks come last. */
START_TEST(test_event_error_precedence) {
    expect_error("{\"eventId\":5,\"type\":7}", TF_REASON_WRONG_TYPE, "eventId", NULL);
    expect_error("{\"eventId\":5,\"type\":7", TF_REASON_INVALID_JSON, "", NULL);
    expect_error("{\"eventId\":\"\\u0000\"", TF_REASON_INVALID_JSON, "", NULL);
    expect_error("{\"eventId\":\"\\u0000\",\"type\":7}", TF_REASON_INVALID_UTF8, "", NULL);
    expect_error("[\"\\u0000\"]", TF_REASON_INVALID_UTF8, "", NULL);
    expect_error("{\"eventId\":\"\xff\"", TF_REASON_INVALID_UTF8, "", NULL);
    expect_error("{\"value\":-1,\"eventId\":5}", TF_REASON_OUT_OF_RANGE, "value", NULL);
    expect_error("{\"value\":1,\"type\":\"PAGE_VIEW\",\"eventId\":\"e\",\"timestamp\":0,"
                 "\"visitorId\":\"v\"}",
                 TF_REASON_MISSING_FIELD, "url", NULL);
    expect_error("{\"type\":\"PAGE_VIEW\",\"eventId\":\"e\",\"timestamp\":0}",
                 TF_REASON_MISSING_FIELD, "visitorId", NULL);
}
END_TEST

/* ---- timestamps against the C library's calendar ----------------------------------- */

static uint64_t lcg(uint64_t *state) {
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return *state >> 33;
}

START_TEST(test_event_timestamps_match_timegm) {
    uint64_t rnd = 42;
    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    size_t checked = 0, leap_days = 0;
    for (int i = 0; i < 20000; i++) {
        struct tm tm = {0};
        tm.tm_year = (int)(lcg(&rnd) % 8030) + 1970 - 1900;
        tm.tm_mon = (int)(lcg(&rnd) % 12);
        tm.tm_mday = (int)(lcg(&rnd) % 31) + 1;
        tm.tm_hour = (int)(lcg(&rnd) % 24);
        tm.tm_min = (int)(lcg(&rnd) % 60);
        tm.tm_sec = (int)(lcg(&rnd) % 60);
        int off = (int)(lcg(&rnd) % (2 * 24 * 60 - 1)) - (24 * 60 - 1); /* -23:59..+23:59 */
        int ms = (int)(lcg(&rnd) % 1000);
        struct tm norm = tm;
        time_t t = timegm(&norm);
        bool real_day = norm.tm_mday == tm.tm_mday; /* timegm normalises Feb 30 to Mar 1 */
        if (real_day && tm.tm_mon == 1 && tm.tm_mday == 29) leap_days++;
        char text[160];
        int n = snprintf(text, sizeof(text),
                         "{\"eventId\":\"e\",\"type\":\"CLICK\",\"visitorId\":\"v\",\"timestamp\":"
                         "\"%04d-%02d-%02dT%02d:%02d:%02d.%03d%c%02d:%02d\"}",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, ms, off < 0 ? '-' : '+', abs(off) / 60, abs(off) % 60);
        int64_t want = ((int64_t)t - (int64_t)off * 60) * 1000 + ms;
        bool in_range = want >= 0 && want <= INT64_C(253402300799999);
        int rc = tf_event_parse(&ev, text, (size_t)n, &err);
        if (real_day && in_range) {
            ck_assert_msg(rc == 0, "%s: %s", text, err.message);
            ck_assert_msg(ev.timestamp_ms == want, "%s: %lld, want %lld", text,
                          (long long)ev.timestamp_ms, (long long)want);
            checked++;
        } else {
            ck_assert_msg(rc == -1 && err.reason == TF_REASON_BAD_TIMESTAMP, "%s accepted", text);
        }
    }
    ck_assert_uint_gt(checked, 15000);
    ck_assert_uint_gt(leap_days, 0);
    tf_event_reset(&ev);
}
END_TEST

/* ---- structure: unknown keys, nesting ---------------------------------------------- */

START_TEST(test_event_many_unknown_fields) {
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    n += (size_t)snprintf(
        buf, cap, "{\"eventId\":\"e\",\"type\":\"CLICK\",\"timestamp\":0,\"visitorId\":\"v\"");
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(buf + n, cap - n, ",\"u%d\":%d", i, i);
    n += (size_t)snprintf(buf + n, cap - n, "}");
    ck_assert_uint_lt(n, cap - 1);
    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    ck_assert_msg(tf_event_parse(&ev, buf, n, &err) == 0, "%s", err.message);
    ck_assert_uint_eq(ev.unknown_fields, 5000);
    /* the same key once more, at the end, is a duplicate */
    n--;
    n += (size_t)snprintf(buf + n, cap - n, ",\"u4321\":0}");
    ck_assert_int_eq(tf_event_parse(&ev, buf, n, &err), -1);
    ck_assert_int_eq(err.reason, TF_REASON_DUPLICATE_FIELD);
    ck_assert_str_eq(err.field, "u4321");
    free(buf);
}
END_TEST

START_TEST(test_event_deep_nesting_is_bounded) {
    size_t depth = 30000;
    const char head[] =
        "{\"eventId\":\"e\",\"type\":\"CLICK\",\"timestamp\":0,\"visitorId\":\"v\",\"deep\":";
    size_t n = strlen(head) + 2 * depth + 1;
    char *buf = malloc(n);
    memcpy(buf, head, strlen(head));
    memset(buf + strlen(head), '[', depth);
    memset(buf + strlen(head) + depth, ']', depth);
    buf[n - 1] = '}';
    tf_event_t ev;
    tf_event_init(&ev);
    tf_event_error_t err;
    ck_assert_msg(tf_event_parse(&ev, buf, n, &err) == 0, "%s", err.message);
    ck_assert_uint_eq(ev.unknown_fields, 1);
    tf_event_reset(&ev);
    /* the same nesting inside properties is too deep */
    char *props = malloc(n + 32);
    int k = snprintf(props, n + 32,
                     "{\"eventId\":\"e\",\"type\":\"CLICK\",\"timestamp\":0,\"visitorId\":\"v\","
                     "\"properties\":{\"a\":");
    memset(props + k, '[', depth);
    memset(props + k + depth, ']', depth);
    memcpy(props + k + 2 * depth, "}}", 2);
    ck_assert_int_eq(tf_event_parse(&ev, props, (size_t)k + 2 * depth + 2, &err), -1);
    ck_assert_int_eq(err.reason, TF_REASON_TOO_DEEP);
    ck_assert_str_eq(err.field, "properties");
    free(props);
    free(buf);
}
END_TEST

static Suite *event_suite(void) {
    Suite *s = suite_create("event");
    TCase *files = tcase_create("golden");
    tcase_add_test(files, test_event_golden_files_present);
    tcase_add_test(files, test_event_invalid_files_cover_every_reason);
    tcase_add_loop_test(files, test_event_valid_files, 0, (int)valid_count);
    tcase_add_loop_test(files, test_event_invalid_files, 0, (int)invalid_count);
    suite_add_tcase(s, files);
    TCase *rules = tcase_create("rules");
    tcase_add_test(rules, test_event_type_names_follow_the_enum);
    tcase_add_test(rules, test_event_reason_codes_are_stable);
    tcase_add_test(rules, test_event_every_type_parses);
    tcase_add_test(rules, test_event_size_limit);
    tcase_add_test(rules, test_event_truncated_prefixes);
    tcase_add_test(rules, test_event_nul_bytes_anywhere);
    tcase_add_test(rules, test_event_reads_only_len_bytes);
    tcase_add_test(rules, test_event_reuse_releases_previous);
    tcase_add_test(rules, test_event_messages_name_the_field);
    tcase_add_test(rules, test_event_error_precedence);
    tcase_add_test(rules, test_event_timestamps_match_timegm);
    tcase_add_test(rules, test_event_many_unknown_fields);
    tcase_add_test(rules, test_event_deep_nesting_is_bounded);
    suite_add_tcase(s, rules);
    return s;
}

int main(void) {
    valid_count = list_json("valid", valid_files);
    invalid_count = list_json("invalid", invalid_files);
    int failed = tl_run_suite(event_suite());
    for (size_t i = 0; i < valid_count; i++)
        free(valid_files[i]);
    for (size_t i = 0; i < invalid_count; i++)
        free(invalid_files[i]);
    return failed ? 1 : 0;
}
