/* device.h — device classification (SPEC §4): uap-core regexes (browser, OS, device
 * family), Matomo device-detector's robots and device models, client hints and screen
 * size -> DeviceType. Pure: the caller reads the files and passes their text in
 * (common/ua_load.h does it); no I/O, no clock, no logging. */
#ifndef TF_DEVICE_H
#define TF_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values in the order of the PostgreSQL enum "DeviceType". */
typedef enum {
    TF_DEVICE_DESKTOP = 0,
    TF_DEVICE_TABLET,
    TF_DEVICE_MOBILE,
    TF_DEVICE_BOT,
    TF_DEVICE_UNKNOWN
} tf_device_type_t;

#define TF_DEVICE_TYPE_COUNT 5

/* Where the Debian package uap-core installs its regexes. */
#define TF_UA_REGEXES_DEFAULT_PATH "/usr/share/uap-core/regexes.yaml"

/* Where tools/deps_data.sh installs the data sets (see tf_ua_classifier_add_data). */
#define TF_UA_DATA_DEFAULT_PATH "/usr/local/share/evpipe/ua-data"

/* Only the first TF_UA_MAX_BYTES bytes of a user agent are considered (SPEC §3 maximum);
 * two agents equal on that prefix get the same answer. */
#define TF_UA_MAX_BYTES 2048

/* "DESKTOP", "TABLET", "MOBILE", "BOT", "UNKNOWN"; NULL for an out-of-range value. */
const char *tf_device_type_name(tf_device_type_t t);

/* Exact, case-sensitive match of a DeviceType name; returns 0 and sets *out, or -1. */
int tf_device_type_parse(const char *name, tf_device_type_t *out);

/* Client hints (Sec-CH-UA-Mobile / -Platform / -Model) and screen size sent with an
 * event. Strings may be NULL; a screen dimension <= 0 means absent. Not retained. */
typedef struct tf_device_hints_s {
    bool has_mobile, mobile; /* has_mobile false: Sec-CH-UA-Mobile not sent */
    const char *platform, *model;
    int32_t screen_width, screen_height;
} tf_device_hints_t;

/* The classification of one event's device. Strings are NUL-terminated, valid UTF-8
 * without control characters, truncated (on a character boundary) to their arrays;
 * "" when unknown. Versions are "major[.minor[.patch]]". */
typedef struct tf_ua_info_s {
    tf_device_type_t type;
    char browser[64], browser_version[32], os[64], os_version[32], device_family[64];
} tf_ua_info_t;

/* The raw uap-core parse of an agent, as uap-core's own test files describe it: a
 * field is "" when the parse leaves it undefined; families are "Other" when no regex
 * matched. Same string rules as tf_ua_info_t. */
typedef struct tf_ua_parse_s {
    char ua_family[128], ua_major[32], ua_minor[32], ua_patch[32];
    char os_family[128], os_major[32], os_minor[32], os_patch[32], os_patch_minor[32];
    char device_family[256], device_brand[64], device_model[256];
} tf_ua_parse_t;

typedef struct tf_ua_classifier_s tf_ua_classifier_t;

/* Compiles the regexes of a uap-core regexes.yaml (user_agent_parsers, os_parsers,
 * device_parsers; regex_flag 'i'; *_replacement with $1..$9) given as len bytes of
 * text (not retained). cache_entries is the capacity of the LRU cache of parses
 * keyed by agent (0 disables it). Returns a classifier (free with
 * tf_ua_classifier_destroy), or NULL with errstr filled when the YAML is malformed, a
 * regex does not compile, a section is missing, or memory runs out. */
tf_ua_classifier_t *tf_ua_classifier_new(const char *regexes_yaml, size_t len, size_t cache_entries,
                                         char *errstr, size_t errstr_size);

/* The data sets beyond uap-core, in the JSON form of Matomo device-detector's regexes
 * (as tools/deps_data.sh installs them under TF_UA_DATA_DEFAULT_PATH):
 *  - TF_UA_DATA_BOTS: bots.json, a list of {"regex", "name", ...}: robots;
 *  - TF_UA_DATA_LIBRARIES: client/libraries.json, same form: HTTP libraries and tools;
 *  - TF_UA_DATA_CLIENTS: client/feed_readers.json, pim.json, mediaplayers.json,
 *    mobile_apps.json: programs people use that are not browsers (never robots);
 *  - TF_UA_DATA_DEVICES: device/mobiles.json, {brand: {"regex", "device", "models":
 *    [{"regex", "device"}]}}: device models and their types. */
typedef enum {
    TF_UA_DATA_BOTS = 0,
    TF_UA_DATA_LIBRARIES,
    TF_UA_DATA_CLIENTS,
    TF_UA_DATA_DEVICES,
} tf_ua_data_kind_t;

/* Adds one data set (len bytes of JSON text, not retained) to the classifier; may be
 * called several times per kind (the entries are appended, in order). Regexes are
 * compiled as device-detector applies them: case-insensitive, anchored at a word start.
 * Empties the cache. Returns 0, or -1 with errstr filled (malformed JSON, an entry
 * without a regex, a regex that does not compile, out of memory); the classifier then
 * keeps what it had before the call. */
int tf_ua_classifier_add_data(tf_ua_classifier_t *c, tf_ua_data_kind_t kind, const char *json,
                              size_t len, char *errstr, size_t errstr_size);

/* Makes the classifier usable from several threads at once: each query (classify,
 * parse, statistics) then holds the classifier's lock. A cached answer takes about a
 * microsecond, so threads that mostly hit the cache rarely wait; a loaded classifier
 * (compiled regexes, data sets) is ~25 MB that a second copy would repeat. Call it
 * before the threads start. Returns 0, or -1 when the lock cannot be created. */
int tf_ua_classifier_share(tf_ua_classifier_t *c);

/* Releases the classifier and its cache. NULL is a no-op. */
void tf_ua_classifier_destroy(tf_ua_classifier_t *c);

/* Classifies one event's device from its user agent (may be NULL; only the first
 * TF_UA_MAX_BYTES bytes count; any bytes, invalid UTF-8 included) and hints (may be
 * NULL). Always fills *out (type UNKNOWN and empty strings when nothing is known).
 * DeviceType, in order (docs/devices.md):
 *  - BOT: uap-core's "Spider" device, injection probes, the robots of the data sets,
 *    their HTTP libraries (unless a browser engine speaks); then, unless a data set
 *    names the agent a non-browser client people use (feed reader, mail, player, app),
 *    crawler / preview / monitoring / HTTP-library / browser-automation tokens (curl,
 *    HeadlessChrome, Lighthouse ...), a contact URL or address, and agents that name no
 *    platform but a program's product token ("Name/1.0"), a domain or a bare word.
 *    Hints never undo BOT.
 *  - Android: a Tab/Pad/Tablet model name is a TABLET; then the data sets' device
 *    model decides (tablets that send "Mobile", laptops and Chromebooks -> DESKTOP).
 *  - TABLET: iPad, Kindle/Silk, PlayBook, uap "Generic Tablet", tablet model names
 *    (Tab, Pad, MIDnnnn, Tablet), Windows RT, Android 3, Android browsers without
 *    "Mobile".
 *  - MOBILE: iPhone/iPod, Android "Mobile" and Android apps' own agents, Windows
 *    Phone, BlackBerry, Symbian, feature phones (MIDP, WAP ...), other devices
 *    uap-core names.
 *  - DESKTOP: Windows, macOS (CFNetwork apps on "Darwin (x86_64)" too), Microsoft
 *    Office's desktop agents, Linux/X11, Chrome OS and other desktop systems; also
 *    televisions and game consoles (large screen, no touch).
 *  - then hints: platform "iPadOS" or an iPad model -> TABLET; Sec-CH-UA-Mobile ?1 ->
 *    MOBILE; ?0 on Android -> TABLET; a Macintosh agent with an iPad screen (e.g.
 *    1024x1366, 820x1180, 810x1080, 768x1024, either orientation) -> TABLET; a
 *    Macintosh or X11 agent with a phone screen (short side < 600, long < 1100) ->
 *    MOBILE; without a usable agent the platform, then the screen decide.
 *  - UNKNOWN: no agent (or an unrecognisable one) and no hint.
 * Regex work is bounded per agent (PCRE2 match, depth and heap limits): a regex that
 * hits a limit counts as not matching. Returns 0, or -1 only when memory ran out (then
 * *out still holds a valid answer, computed without the cache). Not thread-safe unless
 * shared (tf_ua_classifier_share): use one classifier per thread, or share one. */
int tf_ua_classify(tf_ua_classifier_t *c, const char *ua, const tf_device_hints_t *hints,
                   tf_ua_info_t *out);

/* The uap-core parse alone (no cache, no hints), for conformance tests and tools.
 * ua may be NULL (parsed as ""). Always fills *out; returns 0 (never fails today; -1
 * is reserved for out of memory). */
int tf_ua_parse(tf_ua_classifier_t *c, const char *ua, tf_ua_parse_t *out);

/* Cache statistics since creation, for metrics and benchmarks (either pointer may be
 * NULL). A call with cache_entries 0 counts as a miss. */
void tf_ua_classifier_stats(const tf_ua_classifier_t *c, uint64_t *hits, uint64_t *misses);

/* Regex evaluations that stopped at a PCRE2 limit since creation (adversarial input). */
uint64_t tf_ua_classifier_limit_hits(const tf_ua_classifier_t *c);

/* Regexes JIT-compiled so far: each one once it has run a few times (the others stay
 * interpreted, with the same answers and limits, and cost no JIT code memory). */
size_t tf_ua_classifier_jit_compiled(const tf_ua_classifier_t *c);

/* Number of entries currently in the cache (<= cache_entries). */
size_t tf_ua_classifier_cache_size(const tf_ua_classifier_t *c);

#endif
