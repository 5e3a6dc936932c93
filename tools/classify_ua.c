/* classify_ua.c — `evpipe classify-ua`: device classification of user agents read from
 * stdin, one per line, as tab-separated lines on stdout. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/commands.h"
#include "common/log.h"
#include "common/ua_load.h"
#include "common/util.h"
#include "transforms/device.h"

/* Writes s as one TSV field: tabs and line breaks (already removed by the classifier's
 * output rules) cannot occur, so the text is written as is. */
static void put_field(FILE *out, const char *s, bool last) {
    fputs(s, out);
    fputc(last ? '\n' : '\t', out);
}

/* Reads one line of any length into buf (at most cap bytes kept, the rest of the line
 * is consumed and dropped). Returns the kept length, or -1 at end of input. A final
 * line without a newline counts; "\r\n" endings lose their '\r'. */
static long read_line(FILE *in, char *buf, size_t cap) {
    size_t n = 0;
    int ch;
    bool any = false;
    while ((ch = getc_unlocked(in)) != EOF) {
        any = true;
        if (ch == '\n') break;
        if (n < cap) buf[n++] = (char)ch;
    }
    if (!any) return -1;
    if (n > 0 && buf[n - 1] == '\r' && n < cap) n--;
    buf[n] = '\0';
    return (long)n;
}

int cmd_classify_ua(int argc, char **argv) {
    const char *regexes_path = NULL, *data_dir = NULL;
    long long cache = 10000;
    bool stats = false;
    const ev_opt_t opts[] = {
        {"regexes", 'r', EV_OPT_STR, TF_UA_REGEXES_DEFAULT_PATH, "EVPIPE_UA_REGEXES", "PATH",
         "uap-core regexes.yaml to classify with", &regexes_path, 0, 0},
        {"ua-data", 'd', EV_OPT_STR, TF_UA_DATA_DEFAULT_PATH, "EVPIPE_UA_DATA", "DIR",
         "folder of the device and robot data sets (tools/deps_data.sh installs them)", &data_dir,
         0, 0},
        {"cache", 'c', EV_OPT_INT, "10000", "EVPIPE_UA_CACHE", "N",
         "entries of the LRU cache of parsed agents (0 disables it)", &cache, 0, 1 << 24},
        {"stats", 0, EV_OPT_BOOL, NULL, NULL, NULL,
         "log the number of lines and the cache hits and misses on stderr at the end", &stats, 0,
         0},
        EV_OPT_END};
    const ev_cli_t cli = {
        "evpipe classify-ua", "[OPTIONS] < AGENTS",
        "Reads one user agent per line on stdin and writes one line per input line on\n"
        "stdout: DEVICETYPE<TAB>browser<TAB>browserVersion<TAB>os<TAB>osVersion, the\n"
        "fields ingest stores (empty when unknown). DEVICETYPE is DESKTOP, TABLET, MOBILE,\n"
        "BOT or UNKNOWN (an empty line is UNKNOWN). Only the first 2048 bytes of a line are\n"
        "considered; lines are never merged or dropped.",
        "Example:\n"
        "  echo 'Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15' \\\n"
        "    | evpipe classify-ua",
        opts};
    char errstr[512];
    int first = 0;
    int rc = ev_cli_parse(&cli, argc, argv, &first, errstr, sizeof(errstr));
    if (rc == 1) return 0;
    if (rc < 0) {
        fprintf(stderr, "evpipe classify-ua: %s\n", errstr);
        return 2;
    }
    if (first < argc) {
        fprintf(stderr, "evpipe classify-ua: unexpected argument '%s' (agents come on stdin)\n",
                argv[first]);
        return 2;
    }
    ev_log_init("classify-ua", EV_LOG_INFO, 0);

    tf_ua_classifier_t *c =
        ev_ua_classifier_load(regexes_path, data_dir, (size_t)cache, errstr, sizeof(errstr));
    if (!c) {
        EV_ERROR("%s", errstr);
        return 2;
    }

    char *line = malloc(TF_UA_MAX_BYTES + 1);
    if (!line) {
        EV_ERROR("out of memory");
        tf_ua_classifier_destroy(c);
        return 1;
    }
    unsigned long long lines = 0;
    bool warned = false;
    long n;
    rc = 0;
    while ((n = read_line(stdin, line, TF_UA_MAX_BYTES)) >= 0) {
        tf_ua_info_t info;
        if (tf_ua_classify(c, line, NULL, &info) != 0 && !warned) {
            EV_WARN("out of memory for the cache; classifying without it");
            warned = true;
        }
        put_field(stdout, tf_device_type_name(info.type), false);
        put_field(stdout, info.browser, false);
        put_field(stdout, info.browser_version, false);
        put_field(stdout, info.os, false);
        put_field(stdout, info.os_version, true);
        lines++;
    }
    if (ferror(stdin)) {
        EV_ERROR("error reading stdin");
        rc = 1;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        EV_ERROR("error writing stdout");
        rc = 1;
    }
    if (stats) {
        uint64_t hits = 0, misses = 0;
        tf_ua_classifier_stats(c, &hits, &misses);
        EV_INFO("%llu agents classified, cache hits %llu, misses %llu", lines,
                (unsigned long long)hits, (unsigned long long)misses);
    }
    free(line);
    tf_ua_classifier_destroy(c);
    return rc;
}
