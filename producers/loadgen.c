/* loadgen.c — `evpipe loadgen`: deterministic synthetic shop traffic (loadgen_model)
 * to a Kafka topic or an NDJSON file, with a rate limit and a summary by kind. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/commands.h"
#include "common/kmock.h"
#include "common/log.h"
#include "common/util.h"
#include "producers/evscan.h"
#include "producers/kprod.h"
#include "producers/loadgen_model.h"
#include "producers/ratelimit.h"
#include "producers/ua_corpus.h"

#define LG_PROGRESS_NS (5LL * 1000000000) /* a progress line this often */
#define LG_FILE_BUFFER (1 << 20)

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested++;
}

static void sleep_ns(int64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested) {
    }
}

/* Writes the counters as one JSON object. Returns 0, or -1 with errstr. */
static int write_stats_json(const char *path, const lg_stats_t *st, const kprod_stats_t *ks,
                            double elapsed_s, char *errstr, size_t errstr_size) {
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f) {
        snprintf(errstr, errstr_size, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "{\"messages\":%llu,\"byKind\":{", (unsigned long long)st->messages);
    for (int k = 0; k < LG_KIND_COUNT; k++)
        fprintf(f, "%s\"%s\":%llu", k ? "," : "", lg_kind_name((lg_kind_t)k),
                (unsigned long long)st->by_kind[k]);
    fprintf(f, "},\"validByEventType\":{");
    for (int t = 0; t < LG_EVENT_TYPE_COUNT; t++)
        fprintf(f, "%s\"%s\":%llu", t ? "," : "", lg_event_type_name(t),
                (unsigned long long)st->by_event_type[t]);
    fprintf(f, "},\"visitors\":%llu,\"visitorsByDevice\":{", (unsigned long long)st->visitors);
    for (int d = 0; d < UAC_DEVICE_COUNT; d++)
        fprintf(f, "%s\"%s\":%llu", d ? "," : "", uac_device_name((uac_device_t)d),
                (unsigned long long)st->visitors_by_device[d]);
    fprintf(f, "},\"sessions\":%llu,\"reorderOverflows\":%llu", (unsigned long long)st->sessions,
            (unsigned long long)st->reorder_overflows);
    if (ks)
        fprintf(f, ",\"delivered\":%llu,\"failed\":%llu", (unsigned long long)ks->delivered,
                (unsigned long long)ks->failed);
    fprintf(f, ",\"elapsedSeconds\":%.3f}\n", elapsed_s);
    int bad = ferror(f);
    if (f != stdout)
        bad |= fclose(f) != 0;
    else
        bad |= fflush(f) != 0;
    if (bad) {
        snprintf(errstr, errstr_size, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void log_summary(const lg_stats_t *st, double elapsed_s, const char *dest) {
    uint64_t bad = 0;
    for (int k = LG_KIND_FIRST_BAD; k < LG_KIND_COUNT; k++) bad += st->by_kind[k];
    char kinds[1024] = "";
    size_t o = 0;
    for (int k = LG_KIND_FIRST_BAD; k < LG_KIND_COUNT && o < sizeof(kinds); k++)
        if (st->by_kind[k])
            o += (size_t)snprintf(kinds + o, sizeof(kinds) - o, "%s%s %llu", o ? ", " : "",
                                  lg_kind_name((lg_kind_t)k), (unsigned long long)st->by_kind[k]);
    EV_INFO(
        "%llu messages to %s in %.2f s (%.0f/s): %llu valid, %llu duplicates, %llu malformed%s%s%s",
        (unsigned long long)st->messages, dest, elapsed_s,
        elapsed_s > 0 ? (double)st->messages / elapsed_s : 0.0,
        (unsigned long long)st->by_kind[LG_KIND_VALID],
        (unsigned long long)st->by_kind[LG_KIND_DUPLICATE], (unsigned long long)bad,
        bad ? " (" : "", kinds, bad ? ")" : "");
    char types[1536] = "";
    o = 0;
    for (int t = 0; t < LG_EVENT_TYPE_COUNT && o < sizeof(types); t++)
        if (st->by_event_type[t])
            o += (size_t)snprintf(types + o, sizeof(types) - o, "%s%s %llu", o ? ", " : "",
                                  lg_event_type_name(t), (unsigned long long)st->by_event_type[t]);
    EV_INFO("valid events by type: %s", types);
    EV_INFO(
        "%llu visitors (DESKTOP %llu, TABLET %llu, MOBILE %llu, BOT %llu, UNKNOWN %llu), "
        "%llu sessions%s",
        (unsigned long long)st->visitors, (unsigned long long)st->visitors_by_device[UAC_DESKTOP],
        (unsigned long long)st->visitors_by_device[UAC_TABLET],
        (unsigned long long)st->visitors_by_device[UAC_MOBILE],
        (unsigned long long)st->visitors_by_device[UAC_BOT],
        (unsigned long long)st->visitors_by_device[UAC_UNKNOWN], (unsigned long long)st->sessions,
        st->reorder_overflows ? " (disorder buffer full: some messages released early)" : "");
}

int cmd_loadgen(int argc, char **argv) {
    long long seed = 1, visitors = 1000, days = 7, hours = 0, disorder = 0, max_events = 0;
    double dup_ratio = 0, bad_ratio = 0, rate = 0;
    const char *start = NULL, *output = NULL, *brokers = NULL, *topic = NULL, *ua_path = NULL,
               *site = NULL, *stats_path = NULL, *log_level = NULL;
    ev_kv_list_t props = {0};
    const ev_opt_t opts[] = {
        {"seed", 0, EV_OPT_INT, "1", NULL, "N",
         "random seed: the same seed and options give byte-identical output", &seed, 0,
         9223372036854775807LL},
        {"visitors", 0, EV_OPT_INT, "1000", NULL, "N", "distinct visitors arriving in the window",
         &visitors, 1, LG_MAX_VISITORS},
        {"days", 0, EV_OPT_INT, "7", NULL, "N",
         "length of the window; visitors come back within it", &days, 1, LG_MAX_DAYS},
        {"hours", 0, EV_OPT_INT, "0", NULL, "N",
         "a window of N hours instead of --days: a burst where every visitor is active at "
         "about the same time (0 = use --days)",
         &hours, 0, (long long)LG_MAX_DAYS * 24},
        {"start", 0, EV_OPT_STR, "2026-01-05T00:00:00Z", NULL, "TIME",
         "start of the window (RFC 3339); fixed by default so output is reproducible", &start, 0,
         0},
        {"disorder", 0, EV_OPT_INT, "0", NULL, "SECONDS",
         "shuffle: each message is late by up to this much event time", &disorder, 0,
         LG_MAX_DISORDER_MS / 1000},
        {"dup-ratio", 0, EV_OPT_DOUBLE, "0", NULL, "R",
         "share of exact duplicate messages among valid ones (0..0.9)", &dup_ratio, 0, 0},
        {"bad-ratio", 0, EV_OPT_DOUBLE, "0", NULL, "R",
         "share of malformed messages (21 kinds) among all messages (0..0.9)", &bad_ratio, 0, 0},
        {"events", 0, EV_OPT_INT, "0", NULL, "N",
         "stop after N messages (0: when the traffic ends)", &max_events, 0, 9223372036854775807LL},
        {"rate", 0, EV_OPT_DOUBLE, "0", NULL, "N", "messages per second (0: as fast as possible)",
         &rate, 0, 0},
        {"output", 'o', EV_OPT_STR, NULL, NULL, "FILE",
         "write NDJSON to FILE ('-' = stdout) instead of Kafka", &output, 0, 0},
        {"brokers", 'b', EV_OPT_STR, NULL, "KAFKA_BROKERS", "LIST",
         "Kafka bootstrap servers (required without --output)", &brokers, 0, 0},
        {"topic", 't', EV_OPT_STR, EV_TOPIC_RAW, NULL, "NAME", "topic to produce to", &topic, 0, 0},
        {"prop", 'X', EV_OPT_KV, NULL, NULL, "KEY=VALUE",
         "librdkafka producer property, passed untouched (repeatable)", &props, 0, 0},
        {"ua-corpus", 0, EV_OPT_STR, UAC_DEFAULT_PATH, "EVPIPE_UA_CORPUS", "PATH",
         "user agents: a uap-core tree, one of its test YAML files, or a text file of "
         "'[TYPE<TAB>]agent' lines",
         &ua_path, 0, 0},
        {"site", 0, EV_OPT_STR, LG_DEFAULT_SITE, NULL, "URL", "origin of the shop's pages", &site,
         0, 0},
        {"stats", 0, EV_OPT_STR, NULL, NULL, "FILE",
         "also write the final counters as JSON to FILE ('-' = stdout)", &stats_path, 0, 0},
        {"log-level", 0, EV_OPT_STR, "info", "EVPIPE_LOG_LEVEL", "LEVEL",
         "debug, info, warn or error", &log_level, 0, 0},
        EV_OPT_END};
    const ev_cli_t cli = {
        "evpipe loadgen", "[OPTIONS]",
        "Generates realistic, reproducible traffic of an eyewear shop with online sales and\n"
        "appointment booking: visitors on desktops, phones, tablets, TVs and crawlers (real\n"
        "user agents from uap-core's test files), arriving over the day's curve and coming\n"
        "back over --days in sessions separated by more than 30 minutes; page views and\n"
        "leaves, scrolls, product and list views, search, cart, checkout and purchases (EUR,\n"
        "USD, GBP), appointment booking and cancelling, forms, leads, sign-ups, logins,\n"
        "clicks, downloads, videos; campaigns (utm_*, gclid ...), search engines, social and\n"
        "referral sites. Knobs add disorder, exact duplicates and malformed messages of 21\n"
        "kinds, each breaking one rule of the raw event contract. Messages are keyed by\n"
        "visitorId. The same options give byte-identical output; the valid traffic does not\n"
        "depend on --disorder, --dup-ratio or --bad-ratio.",
        "Exit status: 0 done; 1 a write or a delivery failed; 2 usage error.\n"
        "\n"
        "Examples:\n"
        "  evpipe loadgen --seed 7 --visitors 150 --days 3 --output events.ndjson\n"
        "  evpipe loadgen --brokers localhost:9092 --visitors 100000 --disorder 900 \\\n"
        "      --dup-ratio 0.03 --bad-ratio 0.03 --rate 5000 -X compression.type=zstd",
        opts};
    char errstr[1024];
    int first = 0;
    int rc = ev_cli_parse(&cli, argc, argv, &first, errstr, sizeof(errstr));
    if (rc == 1) return 0;
    if (rc < 0) {
        fprintf(stderr, "evpipe loadgen: %s\n", errstr);
        ev_kv_list_clear(&props);
        return 2;
    }
    int level = ev_log_level_parse(log_level);
    rc = 2;
    lg_options_t lo;
    lg_options_init(&lo);
    if (level < 0) {
        fprintf(stderr, "evpipe loadgen: --log-level: '%s' is not debug, info, warn or error\n",
                log_level);
        goto out_props;
    }
    ev_log_init("loadgen", level, 0);
    if (first < argc) {
        fprintf(stderr, "evpipe loadgen: unexpected argument '%s' (see evpipe loadgen --help)\n",
                argv[first]);
        goto out_props;
    }
    if (evscan_parse_time(start, strlen(start), &lo.start_ms) != 0 || !strchr(start, 'T')) {
        fprintf(stderr, "evpipe loadgen: --start: '%s' is not an RFC 3339 time with a zone\n",
                start);
        goto out_props;
    }
    if (!(rate >= 0) || !(rate <= 1e9)) {
        fprintf(stderr, "evpipe loadgen: --rate must be within 0..1000000000\n");
        goto out_props;
    }
    if (!output && (!brokers || !*brokers)) {
        fprintf(stderr,
                "evpipe loadgen: give --output FILE or --brokers LIST (or KAFKA_BROKERS)\n");
        goto out_props;
    }
    lo.seed = (uint64_t)seed;
    lo.visitors = visitors;
    lo.days = (int)days;
    lo.hours = (int)hours;
    lo.disorder_ms = disorder * 1000;
    lo.dup_ratio = dup_ratio;
    lo.bad_ratio = bad_ratio;
    lo.site = site;

    uac_corpus_t *corpus = uac_corpus_new();
    lg_model_t *model = NULL;
    kprod_t *kp = NULL;
    FILE *out = NULL;
    rl_bucket_t *bucket = NULL;
    static char filebuf[LG_FILE_BUFFER];
    if (!corpus) {
        fprintf(stderr, "evpipe loadgen: out of memory\n");
        rc = 1;
        goto out;
    }
    long agents = uac_corpus_load(corpus, ua_path, errstr, sizeof(errstr));
    if (agents < 0) {
        fprintf(stderr, "evpipe loadgen: %s\n", errstr);
        goto out;
    }
    EV_DEBUG("%ld user agents from %s: DESKTOP %zu, TABLET %zu, MOBILE %zu, BOT %zu, UNKNOWN %zu",
             agents, ua_path, uac_corpus_count(corpus, UAC_DESKTOP),
             uac_corpus_count(corpus, UAC_TABLET), uac_corpus_count(corpus, UAC_MOBILE),
             uac_corpus_count(corpus, UAC_BOT), uac_corpus_count(corpus, UAC_UNKNOWN));
    model = lg_model_new(&lo, corpus, errstr, sizeof(errstr));
    if (!model) {
        fprintf(stderr, "evpipe loadgen: %s\n", errstr);
        goto out;
    }
    char dest[512];
    if (output) {
        out = strcmp(output, "-") == 0 ? stdout : fopen(output, "w");
        if (!out) {
            fprintf(stderr, "evpipe loadgen: cannot write %s: %s\n", output, strerror(errno));
            rc = 1;
            goto out;
        }
        setvbuf(out, filebuf, _IOFBF, sizeof(filebuf));
        snprintf(dest, sizeof(dest), "%s", strcmp(output, "-") == 0 ? "stdout" : output);
    } else {
        kp = kprod_new(brokers, topic, &props, errstr, sizeof(errstr));
        if (!kp) {
            fprintf(stderr, "evpipe loadgen: %s\n", errstr);
            goto out;
        }
        snprintf(dest, sizeof(dest), "topic %s", topic);
    }
    if (rate > 0) bucket = rl_bucket_new(rate, 0, ev_mono_ns());

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (kp) kprod_set_interrupt(kp, &stop_requested);

    EV_INFO("generating: seed %lld, %lld visitors over %lld %s from %s to %s", seed, visitors,
            hours > 0 ? hours : days, hours > 0 ? "hours" : "days", start, dest);
    rc = 0;
    int64_t t0 = ev_mono_ns(), next_progress = t0 + LG_PROGRESS_NS;
    uint64_t written = 0, refused = 0;
    lg_message_t msg;
    int r = 0;
    while (!stop_requested && (max_events == 0 || written < (uint64_t)max_events)) {
        r = lg_model_next(model, &msg);
        if (r <= 0) break;
        if (bucket) {
            int64_t wait;
            while ((wait = rl_bucket_take(bucket, ev_mono_ns())) > 0 && !stop_requested)
                sleep_ns(wait);
        }
        if (out) {
            if (memchr(msg.value, '\n', msg.value_len)) {
                EV_ERROR("message %llu contains a newline: cannot be written as NDJSON",
                         (unsigned long long)written + 1);
                rc = 1;
                break;
            }
            if (fwrite(msg.value, 1, msg.value_len, out) != msg.value_len ||
                putc('\n', out) == EOF) {
                EV_ERROR("cannot write %s: %s", dest, strerror(errno));
                rc = 1;
                break;
            }
        } else if (kprod_send(kp, msg.key, msg.key_len, msg.value, msg.value_len, errstr,
                              sizeof(errstr)) != 0) {
            /* Refused for good (too large, fatal producer error, interrupted). */
            if (++refused <= 20) EV_ERROR("%s", errstr);
            rc = 1;
            if (strstr(errstr, "fatal")) break;
            continue;
        }
        written++;
        if ((written & 4095) == 0) {
            int64_t now = ev_mono_ns();
            if (now >= next_progress) {
                double s = (double)(now - t0) / 1e9;
                char when[32];
                ev_format_rfc3339_ms(msg.event_time_ms, when);
                EV_INFO("%llu messages (%.0f/s), event time %s", (unsigned long long)written,
                        (double)written / s, when);
                next_progress = now + LG_PROGRESS_NS;
            }
        }
    }
    if (r < 0) {
        EV_ERROR("out of memory while generating");
        rc = 1;
    }
    if (stop_requested) EV_WARN("interrupted after %llu messages", (unsigned long long)written);
    kprod_stats_t ks = {0};
    if (out) {
        if (fflush(out) != 0 || ferror(out)) {
            EV_ERROR("cannot write %s: %s", dest, strerror(errno));
            rc = 1;
        }
    } else {
        /* Every message gets its delivery report before the summary. */
        int64_t waited_from = ev_mono_ns();
        while (kprod_flush(kp, 1000) != 0) {
            if (stop_requested > 1) {
                EV_WARN("not waiting for %d deliveries any longer", kprod_in_flight(kp));
                break;
            }
            if (ev_mono_ns() - waited_from > 10LL * 1000000000) {
                EV_INFO("waiting for %d deliveries", kprod_in_flight(kp));
                waited_from = ev_mono_ns();
            }
        }
        kprod_stats(kp, &ks);
        /* Refused at once, or enqueued and never acknowledged (failed or given up on). */
        uint64_t lost = refused + (ks.enqueued - ks.delivered);
        ks.failed = lost; /* as reported below and in --stats */
        if (lost > 0) {
            EV_ERROR("%llu of %llu messages were not delivered: %s", (unsigned long long)lost,
                     (unsigned long long)(ks.enqueued + refused),
                     kprod_first_error(kp)[0] ? kprod_first_error(kp) : "see the errors above");
            rc = 1;
        }
    }
    double elapsed = (double)(ev_mono_ns() - t0) / 1e9;
    lg_stats_t st;
    lg_model_stats(model, &st);
    log_summary(&st, elapsed, dest);
    if (kp)
        EV_INFO("delivered %llu, failed %llu", (unsigned long long)ks.delivered,
                (unsigned long long)ks.failed);
    if (stats_path &&
        write_stats_json(stats_path, &st, kp ? &ks : NULL, elapsed, errstr, sizeof(errstr)) != 0) {
        EV_ERROR("%s", errstr);
        rc = 1;
    }
out:
    if (out && out != stdout)
        fclose(out);
    else if (out)
        fflush(out);
    rl_bucket_destroy(bucket);
    kprod_destroy(kp);
    lg_model_destroy(model);
    uac_corpus_destroy(corpus);
out_props:
    ev_kv_list_clear(&props);
    return rc;
}
