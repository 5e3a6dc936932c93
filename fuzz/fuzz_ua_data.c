/* fuzz_ua_data.c — libFuzzer target: the device classifier's data sets (device-detector
 * JSON) on arbitrary bytes, then agents classified with what loaded.
 * fuzz-sources: transforms/device.c transforms/device_uap.c transforms/device_prefilter.c transforms/device_bots.c transforms/device_data.c transforms/device_models.c
 * fuzz-pkgs: yajl yaml-0.1 libpcre2-8 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transforms/device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char uap_yaml[] = "user_agent_parsers:\n"
                               "  - regex: '(Chrome)/(\\d+)'\n"
                               "os_parsers:\n"
                               "  - regex: '(Android) (\\d+)'\n"
                               "device_parsers:\n"
                               "  - regex: '; ([^;)]+) Build/'\n"
                               "    brand_replacement: 'Generic_Android'\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Input: one byte choosing the kind of data set, then its JSON text; the text is
     * also classified as an agent. */
    if (size < 1) return 0;
    char err[512];
    tf_ua_classifier_t *c = tf_ua_classifier_new(uap_yaml, sizeof(uap_yaml) - 1, 8, err,
                                                 sizeof(err));
    if (!c) abort();
    tf_ua_data_kind_t kind = (tf_ua_data_kind_t)(data[0] % 4);
    int rc = tf_ua_classifier_add_data(c, kind, (const char *)data + 1, size - 1, err,
                                       sizeof(err));
    if (rc != 0 && rc != -1) abort();
    if (rc == -1 && err[0] == '\0') abort(); /* an error always says why */
    char *agent = malloc(size);
    if (!agent) abort();
    memcpy(agent, data + 1, size - 1);
    agent[size - 1] = '\0';
    static const char *const agents[] = {
        "Mozilla/5.0 (Linux; Android 12; SM-X200 Build/S) Chrome/120 Mobile Safari/537.36",
        "curl/8.4.0", "url", "Mozilla/5.0 (Windows NT 10.0) Chrome/120 Safari/537.36"};
    tf_ua_info_t info;
    for (size_t i = 0; i < sizeof(agents) / sizeof(agents[0]); i++) {
        if (tf_ua_classify(c, agents[i], NULL, &info) < -1) abort();
        if (!tf_device_type_name(info.type)) abort();
    }
    tf_ua_classify(c, agent, NULL, &info);
    if (!tf_device_type_name(info.type)) abort();
    free(agent);
    tf_ua_classifier_destroy(c);
    return 0;
}
