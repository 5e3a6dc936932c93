/* kafka_log.c — librdkafka's log lines through evpipe's logger (see kafka_log.h). */
#include "common/kafka_log.h"

#include "common/log.h"

void ev_kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    int ev = level <= 4 ? EV_LOG_WARN : EV_LOG_DEBUG;
    EV_LOG_AT(ev, "kafka %s: %s", fac, buf);
}
