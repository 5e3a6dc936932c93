/* log.c — level-gated log lines on stderr, as text or JSON. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int ev_log_min_level = EV_LOG_INFO;
static char log_stage[32] = "evpipe";
static int log_json;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void ev_log_init(const char *stage, int min_level, int json) {
    snprintf(log_stage, sizeof(log_stage), "%s", stage ? stage : "evpipe");
    ev_log_min_level = min_level;
    log_json = json;
}

int ev_log_level_parse(const char *name) {
    static const char *const lower[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, lower[i]) == 0) return i;
    return -1;
}

/* Appends s to out as a JSON string body (no quotes), escaping what JSON requires. */
static void json_escape(char *out, size_t out_size, const char *s) {
    size_t o = 0;
    for (; *s && o + 7 < out_size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, out_size - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

void ev_log_write(int level, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (level < 0 || level > EV_LOG_ERROR) level = EV_LOG_ERROR;

    if (log_json) {
        char esc[4096];
        json_escape(esc, sizeof(esc), msg);
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"stage\":\"%s\",\"msg\":\"%s\"}\n", when,
                level_names[level], log_stage, esc);
    } else {
        fprintf(stderr, "%s %-5s %s: %s\n", when, level_names[level], log_stage, msg);
    }
}
