/* ua_load.c — the device classifier from uap-core's regexes.yaml and the data sets
 * folder (see ua_load.h). */
#include "common/ua_load.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/util.h"

#define UA_FILE_MAX_BYTES (64u << 20)

static const struct {
    const char *file;
    tf_ua_data_kind_t kind;
} data_files[] = {
    {"bots.json", TF_UA_DATA_BOTS},
    {"client/libraries.json", TF_UA_DATA_LIBRARIES},
    {"client/feed_readers.json", TF_UA_DATA_CLIENTS},
    {"client/pim.json", TF_UA_DATA_CLIENTS},
    {"client/mediaplayers.json", TF_UA_DATA_CLIENTS},
    {"client/mobile_apps.json", TF_UA_DATA_CLIENTS},
    {"device/mobiles.json", TF_UA_DATA_DEVICES},
};

tf_ua_classifier_t *ev_ua_classifier_load(const char *regexes_path, const char *data_dir,
                                          size_t cache_entries, char *errstr, size_t errstr_size) {
    char err[512];
    char *text = NULL;
    size_t len = 0;
    if (ev_read_file(regexes_path, UA_FILE_MAX_BYTES, &text, &len, err, sizeof(err)) != 0) {
        snprintf(errstr, errstr_size, "uap-core regexes: %s (install the Debian package uap-core)",
                 err);
        return NULL;
    }
    tf_ua_classifier_t *c = tf_ua_classifier_new(text, len, cache_entries, err, sizeof(err));
    free(text);
    if (!c) {
        snprintf(errstr, errstr_size, "uap-core regexes %s: %s", regexes_path, err);
        return NULL;
    }
    for (size_t i = 0; data_dir && i < sizeof(data_files) / sizeof(data_files[0]); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", data_dir, data_files[i].file);
        if (ev_read_file(path, UA_FILE_MAX_BYTES, &text, &len, err, sizeof(err)) != 0) {
            snprintf(errstr, errstr_size,
                     "user agent data sets: %s (install them with `make deps` or "
                     "tools/deps_data.sh)",
                     err);
            tf_ua_classifier_destroy(c);
            return NULL;
        }
        int rc = tf_ua_classifier_add_data(c, data_files[i].kind, text, len, err, sizeof(err));
        free(text);
        if (rc != 0) {
            snprintf(errstr, errstr_size, "user agent data set %s: %s", path, err);
            tf_ua_classifier_destroy(c);
            return NULL;
        }
    }
    return c;
}
