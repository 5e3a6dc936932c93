/* util.c — small shared helpers: clocks, hex, SHA-256, UUID formatting. */
#include "common/util.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t ev_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ev_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void ev_sha256_hex(const void *data, size_t len, char hex[65]) {
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

void ev_uuid_format(const uint8_t b[16], char out[37]) {
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

void ev_format_rfc3339_ms(int64_t epoch_ms, char out[32]) {
    int64_t secs = epoch_ms >= 0 ? epoch_ms / 1000 : -((-epoch_ms + 999) / 1000);
    int ms = (int)(epoch_ms - secs * 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[96]; /* roomy: the compiler cannot see tm's fields are in range */
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    size_t n = strlen(tmp);
    if (n > 31) n = 31;
    memcpy(out, tmp, n);
    out[n] = '\0';
}

int ev_read_file(const char *path, size_t max_bytes, char **out, size_t *len, char *errstr,
                 size_t errstr_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errstr_size, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 65536, used = 0;
    char *buf = malloc(cap);
    int rc = -1;
    if (!buf) {
        snprintf(errstr, errstr_size, "out of memory reading %s", path);
        goto done;
    }
    for (;;) {
        if (used + 1 >= cap) {
            if (cap >= max_bytes + 1) {
                snprintf(errstr, errstr_size, "%s is larger than %zu bytes", path, max_bytes);
                goto done;
            }
            size_t ncap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            char *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                snprintf(errstr, errstr_size, "out of memory reading %s", path);
                goto done;
            }
            buf = nbuf;
            cap = ncap;
        }
        size_t n = fread(buf + used, 1, cap - used - 1, f);
        used += n;
        if (n == 0) break;
    }
    if (ferror(f)) {
        snprintf(errstr, errstr_size, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    buf[used] = '\0';
    *out = buf;
    *len = used;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    fclose(f);
    return rc;
}
