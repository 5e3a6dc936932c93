/* ratelimit.c — token bucket for --rate (see ratelimit.h). */
#include "producers/ratelimit.h"

#include <stdlib.h>

struct rl_bucket_s {
    double rate;   /* tokens per second */
    double burst;  /* capacity */
    double tokens; /* available now */
    int64_t last_ns;
};

rl_bucket_t *rl_bucket_new(double rate, double burst, int64_t now_ns) {
    if (!(rate > 0)) return NULL;
    rl_bucket_t *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    b->rate = rate;
    b->burst = burst > 0 ? burst : rate / 20.0;
    if (b->burst < 1.0) b->burst = 1.0;
    b->tokens = b->burst;
    b->last_ns = now_ns;
    return b;
}

void rl_bucket_destroy(rl_bucket_t *bucket) { free(bucket); }

int64_t rl_bucket_take(rl_bucket_t *b, int64_t now_ns) {
    if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) * b->rate / 1e9;
        if (b->tokens > b->burst) b->tokens = b->burst;
        b->last_ns = now_ns;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    int64_t wait = (int64_t)((1.0 - b->tokens) * 1e9 / b->rate) + 1;
    return wait > 0 ? wait : 1;
}
