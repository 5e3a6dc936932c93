/* fuzz_url.c — libFuzzer target: URL parsing and attribution on arbitrary bytes.
 * fuzz-sources: transforms/url.c transforms/attribution.c
 * fuzz-pkgs: libcurl */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transforms/attribution.h"
#include "transforms/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Input: page URL, a NUL byte, referrer URL (both NUL-terminated copies). */
    char *buf = malloc(size + 2);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = '\0';
    const char *page = buf;
    const char *referrer = buf + strlen(buf) + 1;
    if (referrer > buf + size) referrer = buf + size;

    char errstr[256];
    tf_url_t url;
    tf_url_init(&url);
    int rc = tf_url_parse(page, &url, errstr, sizeof(errstr));
    if (rc == 0) {
        if (!url.path || url.path[0] == '\0') abort(); /* "/" at least */
        for (const char *p = url.host; p && *p; p++)
            if (*p >= 'A' && *p <= 'Z') abort(); /* hosts are lowercased */
        if (url.campaign_key && !url.utm_source && !url.utm_medium && !url.utm_campaign &&
            !url.utm_term && !url.utm_content && !url.click_id)
            abort(); /* a campaign key needs a campaign parameter */
    } else if (rc != -1 && rc != -2) {
        abort();
    }
    tf_attribution_t attr;
    tf_attribution_init(&attr);
    int arc = tf_attribution_compute(rc == 0 ? &url : NULL, *referrer ? referrer : NULL, &attr,
                                     errstr, sizeof(errstr));
    if (arc != 0 && arc != -1) abort();
    /* Without a parsed page nothing can come from its query string. */
    if (arc == 0 && rc != 0 && attr.campaign && !attr.referrer_domain) abort();
    tf_attribution_reset(&attr);
    tf_url_reset(&url);
    free(buf);
    return 0;
}
