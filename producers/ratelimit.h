/* ratelimit.h — token bucket for the producers' --rate: N messages per second with a
 * short burst allowance. Pure: the caller passes the monotonic time in. */
#ifndef EV_RATELIMIT_H
#define EV_RATELIMIT_H

#include <stdint.h>

typedef struct rl_bucket_s rl_bucket_t;

/* A bucket refilled at rate tokens per second, holding at most burst tokens
 * (burst <= 0: rate/20, at least 1, i.e. 50 ms worth), full at now_ns.
 * Returns NULL when rate <= 0 or out of memory. */
rl_bucket_t *rl_bucket_new(double rate, double burst, int64_t now_ns);
/* Frees the bucket; NULL is a no-op. */
void rl_bucket_destroy(rl_bucket_t *bucket);

/* Takes one token at now_ns. Returns 0 when it was available (taken), else the
 * nanoseconds to wait before one will be (nothing taken; call again then). */
int64_t rl_bucket_take(rl_bucket_t *bucket, int64_t now_ns);

#endif
