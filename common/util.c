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

void ev_civil_of_ms(int64_t epoch_ms, ev_civil_t *out) {
    int64_t days = epoch_ms / 86400000, rem = epoch_ms % 86400000;
    if (rem < 0) {
        rem += 86400000;
        days--;
    }
    /* Civil date of a day count since 1970-01-01 (Howard Hinnant's civil_from_days). */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    out->day = (int)(doy - (153 * mp + 2) / 5 + 1);
    out->month = (int)(mp < 10 ? mp + 3 : mp - 9);
    out->year = yoe + era * 400 + (out->month <= 2);
    out->hour = (int)(rem / 3600000);
    out->minute = (int)(rem / 60000 % 60);
    out->second = (int)(rem / 1000 % 60);
    out->ms = (int)(rem % 1000);
}

static char *put_digits(char *p, unsigned v, int n) {
    for (int i = n - 1; i >= 0; i--, v /= 10) p[i] = (char)('0' + v % 10);
    return p + n;
}

char *ev_put_civil(char *p, const ev_civil_t *c, char sep) {
    p = put_digits(p, (unsigned)c->year, 4);
    *p++ = '-';
    p = put_digits(p, (unsigned)c->month, 2);
    *p++ = '-';
    p = put_digits(p, (unsigned)c->day, 2);
    *p++ = sep;
    p = put_digits(p, (unsigned)c->hour, 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)c->minute, 2);
    *p++ = ':';
    p = put_digits(p, (unsigned)c->second, 2);
    *p++ = '.';
    return put_digits(p, (unsigned)c->ms, 3);
}

void ev_format_rfc3339_ms(int64_t epoch_ms, char out[32]) {
    ev_civil_t c;
    ev_civil_of_ms(epoch_ms, &c);
    if (c.year >= 0 && c.year <= 9999) {
        char *end = ev_put_civil(out, &c, 'T');
        end[0] = 'Z';
        end[1] = '\0';
        return;
    }
    char tmp[96]; /* roomy: the compiler cannot see the fields are in range */
    snprintf(tmp, sizeof(tmp), "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)c.year,
             c.month, c.day, c.hour, c.minute, c.second, c.ms);
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
