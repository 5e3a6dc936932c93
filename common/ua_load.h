/* ua_load.h — builds the device classifier (transforms/device.h) from its files:
 * uap-core's regexes.yaml and the folder of data sets that tools/deps_data.sh installs. */
#ifndef EV_UA_LOAD_H
#define EV_UA_LOAD_H

#include <stddef.h>

#include "transforms/device.h"

/* Reads regexes_path and every data set file under data_dir (bots.json,
 * client/libraries.json, client/{feed_readers,pim,mediaplayers,mobile_apps}.json,
 * device/mobiles.json) and returns the classifier (free with tf_ua_classifier_destroy).
 * data_dir NULL: uap-core alone. On error returns NULL with errstr naming the file and
 * the problem (a missing data file says how to install the data sets). */
tf_ua_classifier_t *ev_ua_classifier_load(const char *regexes_path, const char *data_dir,
                                          size_t cache_entries, char *errstr, size_t errstr_size);

#endif
