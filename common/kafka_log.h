/* kafka_log.h — librdkafka's log lines through evpipe's logger (same format, stage
 * and level gate as every other line). */
#ifndef EV_KAFKA_LOG_H
#define EV_KAFKA_LOG_H

#include <librdkafka/rdkafka.h>

/* For rd_kafka_conf_set_log_cb: syslog levels <= 4 become WARN (librdkafka retries what
 * it logs as errors, e.g. a refused connection), the rest DEBUG. */
void ev_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
