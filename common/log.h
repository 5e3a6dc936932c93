/* log.h — level-gated log lines on stderr, as text or JSON, carrying the stage. */
#ifndef EV_LOG_H
#define EV_LOG_H

typedef enum { EV_LOG_DEBUG = 0, EV_LOG_INFO, EV_LOG_WARN, EV_LOG_ERROR } ev_log_level_t;

extern int ev_log_min_level;

/* Sets the stage name printed on every line, the minimum level and the format
 * (json != 0: one JSON object per line). The stage string is copied. */
void ev_log_init(const char *stage, int min_level, int json);

/* Parses "debug|info|warn|error"; returns -1 when unknown. */
int ev_log_level_parse(const char *name);

void ev_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define EV_LOG_AT(lvl, ...)                                                    \
    do {                                                                       \
        if ((lvl) >= ev_log_min_level) ev_log_write((lvl), __VA_ARGS__);       \
    } while (0)
#define EV_DEBUG(...) EV_LOG_AT(EV_LOG_DEBUG, __VA_ARGS__)
#define EV_INFO(...) EV_LOG_AT(EV_LOG_INFO, __VA_ARGS__)
#define EV_WARN(...) EV_LOG_AT(EV_LOG_WARN, __VA_ARGS__)
#define EV_ERROR(...) EV_LOG_AT(EV_LOG_ERROR, __VA_ARGS__)

#endif
