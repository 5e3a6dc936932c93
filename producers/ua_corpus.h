/* ua_corpus.h — real user agents for the load generator, read at run time from
 * uap-core's test files (or a file of one's own) and labelled by device type, with
 * what a browser would send alongside them (platform, Chromium version, model). */
#ifndef EV_UA_CORPUS_H
#define EV_UA_CORPUS_H

#include <stddef.h>

#define UAC_DEFAULT_PATH "/usr/share/uap-core"
#define UAC_MAX_AGENTS 200000 /* agents kept, all types together */
#define UAC_MAX_UA_BYTES 2048 /* SPEC §3: userAgent <= 2048; longer ones are skipped */

/* Device types, named and ordered as the PostgreSQL enum "DeviceType". */
typedef enum {
    UAC_DESKTOP = 0,
    UAC_TABLET,
    UAC_MOBILE,
    UAC_BOT,
    UAC_UNKNOWN,
    UAC_DEVICE_COUNT
} uac_device_t;

/* Operating systems as Sec-CH-UA-Platform names them. */
typedef enum {
    UAC_OS_OTHER = 0,
    UAC_OS_WINDOWS,
    UAC_OS_MACOS,
    UAC_OS_IOS,
    UAC_OS_ANDROID,
    UAC_OS_CHROMEOS,
    UAC_OS_LINUX,
    UAC_OS_COUNT
} uac_os_t;

/* One agent. Strings are owned by the corpus. */
typedef struct uac_agent_s {
    const char *ua; /* as found, UTF-8, no control characters */
    size_t ua_len;
    const char *ua_json; /* the same, escaped for a JSON string body (no quotes) */
    size_t ua_json_len;
    uac_device_t device;
    uac_os_t os;
    int chromium_major; /* Chromium major version (sends client hints from 89), else 0 */
    const char *model;  /* Android device model taken from the agent, or "" */
} uac_agent_t;

typedef struct uac_corpus_s uac_corpus_t;

/* "DESKTOP", "TABLET", "MOBILE", "BOT", "UNKNOWN"; NULL when out of range. */
const char *uac_device_name(uac_device_t device);
/* Exact match of a name above; 0 and *out set, or -1. */
int uac_device_parse(const char *name, size_t len, uac_device_t *out);
/* "Windows", "macOS", "iOS", "Android", "Chrome OS", "Linux"; "" for other. */
const char *uac_os_name(uac_os_t os);

/* Labels an agent. device_family is uap-core's device family when the source
 * knows it (test_device.yaml), else NULL: "Spider" and crawler tokens give BOT,
 * TVs/consoles/watches UNKNOWN, then tablet, mobile and desktop tokens, else
 * UNKNOWN. Pure. */
uac_device_t uac_label(const char *ua, size_t len, const char *device_family);

/* An empty corpus; NULL when out of memory. */
uac_corpus_t *uac_corpus_new(void);
/* Frees the corpus and its agents; NULL is a no-op. */
void uac_corpus_destroy(uac_corpus_t *corpus);

/* Adds one agent (copied) labelled by uac_label, or with the given device when
 * forced >= 0. Returns 1 when added, 0 when skipped (duplicate, empty, longer than
 * UAC_MAX_UA_BYTES, control characters or invalid UTF-8), -1 with errstr when the
 * corpus is full or memory ran out. */
int uac_corpus_add(uac_corpus_t *corpus, const char *ua, size_t len, const char *device_family,
                   int forced, char *errstr, size_t errstr_size);

/* Loads agents from path: a directory (its *.yaml files and those of its tests/ and
 * test_resources/ subdirectories, in name order: a uap-core tree), a uap-core test
 * file (*.yaml / *.yml: test_cases[].user_agent_string, labelled with the case's
 * family when the case also has brand/model, i.e. is a device test), or a text file
 * with one agent per line, optionally "TYPE<TAB>agent" (TYPE a DeviceType name;
 * '#' starts a comment line). Returns the number of agents added (>= 0), or -1
 * with errstr on I/O, YAML or capacity errors. */
long uac_corpus_load(uac_corpus_t *corpus, const char *path, char *errstr, size_t errstr_size);

/* Number of agents of a device type, and the i-th of them (i < count). */
size_t uac_corpus_count(const uac_corpus_t *corpus, uac_device_t device);
const uac_agent_t *uac_corpus_agent(const uac_corpus_t *corpus, uac_device_t device, size_t i);

#endif
