/* url.h — parsing of page and referrer URLs: scheme, host, path as sent, UTM
 * parameters, ad click ids and the canonical campaign key (SPEC §4). Pure: no I/O.
 *
 * Parsing rules (chosen to match what browsers send and what GA4 reads):
 * - The URL must be absolute with a scheme ("https://…", "android-app://…"); any
 *   scheme is accepted. Leading and trailing ASCII whitespace is ignored. Input that
 *   is not valid UTF-8, longer than TF_URL_MAX_LEN, or that libcurl's URL parser
 *   refuses (spaces or backslashes in the host, bad port, control characters, …)
 *   fails with -1. No input crashes or reads out of bounds.
 * - scheme and host are lowercased. An internationalised host is converted to its
 *   ASCII (punycode, "xn--") form, as browsers serialise it in Referer headers and
 *   location.href; letters are lowercased first (ASCII, Latin-1, Latin Extended-A,
 *   Greek and Cyrillic; no other Unicode normalisation is applied). A trailing dot
 *   is dropped. IPv6 hosts keep their brackets ("[::1]"), without zone id. Userinfo
 *   and port are not kept.
 * - path is the path exactly as sent: no percent-decoding, no removal of "." / ".."
 *   segments, no query and no fragment; "/" when the URL has none.
 * - Only the query is read for parameters, never the fragment. It is split on '&';
 *   a name without '=' has an empty value. Names and values are percent-decoded and
 *   '+' means space; a malformed escape ("%zz", a trailing "%4") is kept as the raw
 *   text; a value whose decoding would contain a NUL byte or invalid UTF-8 is kept
 *   raw (undecoded) so the result always fits a PostgreSQL TEXT column. Names match
 *   case-insensitively ("UTM_Source"). When a name repeats, its first occurrence
 *   wins, even when that one is empty.
 * - utm_* fields are NULL when the parameter is absent or empty.
 * - Click ids, by priority (not by position in the URL): gclid, dclid, gbraid,
 *   wbraid, fbclid, msclkid, ttclid, twclid, li_fat_id; the first one present with a
 *   non-empty value is kept, its name in lowercase.
 * - campaign_key: "name=value" pairs joined by '&' for each non-NULL utm_* and the
 *   click id, sorted by name (byte order), values percent-encoded (everything but
 *   A-Z a-z 0-9 - . _ ~, as %XX uppercase). NULL when none is present. Two URLs
 *   carry the same campaign iff their keys are equal (both NULL included).
 */
#ifndef TF_URL_H
#define TF_URL_H

#include <stddef.h>

/* Longest URL accepted, in bytes (SPEC §3 allows 4096 for url and referrer). */
#define TF_URL_MAX_LEN 16384

/* A parsed URL. Every string is NUL-terminated UTF-8 owned by the struct (released
 * by tf_url_reset) and NULL when absent. Plain value type. */
typedef struct tf_url_s {
    char *scheme, *host; /* lowercased; host in ASCII (punycode) form, NULL when absent */
    char *path;          /* as sent (no query, no fragment, no decoding); "/" when none */
    char *utm_source, *utm_medium, *utm_campaign, *utm_term, *utm_content; /* decoded */
    char *click_id_name, *click_id; /* e.g. "gclid" and its decoded value */
    char *campaign_key;             /* canonical campaign parameters (see above), or NULL */
} tf_url_t;

/* Makes *u empty (all NULL); no allocation. */
void tf_url_init(tf_url_t *u);

/* Frees what *u holds and makes it empty again. Safe on an empty or zeroed struct. */
void tf_url_reset(tf_url_t *u);

/* Parses url (NUL-terminated, any bytes) into *out, which must be initialised
 * (tf_url_init) or hold an earlier result. Returns 0 and fills *out (its previous
 * content released) on success. Returns -1 with errstr filled and *out left empty
 * when the URL is not acceptable (see the rules above), and -2 (errstr "out of
 * memory", *out empty) only when memory ran out, which is not the URL's fault. */
int tf_url_parse(const char *url, tf_url_t *out, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Referrer domain of a parsed URL: its host without a leading "www." (kept when
 * what would remain has no dot, e.g. "www.com"). Returns a pointer into u->host
 * (valid as long as *u is), or NULL when the URL has no host. */
const char *tf_url_referrer_domain(const tf_url_t *u);

/* Converts one host name (UTF-8, at most 255 bytes) to its lowercase ASCII form:
 * ASCII letters lowercased, non-ASCII labels lowercased as described above and
 * punycode-encoded with the "xn--" prefix (RFC 3492). Writes a NUL-terminated
 * string to out. Returns 0, or -1 when host is not valid UTF-8, is too long, or out
 * (out_size bytes) is too small. */
int tf_url_host_ascii(const char *host, size_t host_len, char *out, size_t out_size);

#endif
