/* replay.c — `evpipe replay FILE...`: NDJSON (plain or gzip, '-' = stdin) to a Kafka
 * topic, keyed by visitorId, through the idempotent producer; --rate, --from/--to,
 * invalid lines reported with file:line, a progress bar and a summary. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "common/cli.h"
#include "common/commands.h"
#include "common/kmock.h"
#include "common/log.h"
#include "common/util.h"
#include "producers/evscan.h"
#include "producers/kprod.h"
#include "producers/ratelimit.h"

#define RP_READ_CHUNK (256 * 1024)
#define RP_MAX_LINE_DEFAULT (1024 * 1024)
#define RP_REPORT_FIRST 20 /* invalid lines reported one by one; then only counted */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested++;
}

/* ---- reading lines from a plain or gzip file ------------------------------------ */

typedef struct reader_s {
    gzFile gz;
    const char *name; /* as given ("-" shown as "stdin") */
    char *buf;        /* [start, end) holds unread bytes */
    size_t cap, start, end;
    size_t max_line;
    int eof, error;
    char errmsg[256];
    long long lineno;
    int overlong; /* the current line is longer than max_line: being skipped */
} reader_t;

/* Opens path ("-" = stdin). Returns 0, or -1 with errstr. */
static int reader_open(reader_t *rd, const char *path, size_t max_line, char *errstr,
                       size_t errstr_size) {
    memset(rd, 0, sizeof(*rd));
    rd->name = strcmp(path, "-") == 0 ? "stdin" : path;
    rd->max_line = max_line;
    if (strcmp(path, "-") == 0) {
        int fd = dup(STDIN_FILENO);
        rd->gz = fd >= 0 ? gzdopen(fd, "rb") : NULL;
        if (!rd->gz && fd >= 0) close(fd);
    } else {
        rd->gz = gzopen(path, "rb");
    }
    if (!rd->gz) {
        snprintf(errstr, errstr_size, "cannot open %s: %s", rd->name,
                 errno ? strerror(errno) : "out of memory");
        return -1;
    }
    gzbuffer(rd->gz, RP_READ_CHUNK);
    rd->cap = max_line + RP_READ_CHUNK;
    rd->buf = malloc(rd->cap);
    if (!rd->buf) {
        gzclose(rd->gz);
        rd->gz = NULL;
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
}

static void reader_close(reader_t *rd) {
    if (rd->gz) gzclose(rd->gz);
    rd->gz = NULL;
    free(rd->buf);
    rd->buf = NULL;
}

/* Compressed bytes consumed so far (the file offset for plain files). */
static long long reader_offset(reader_t *rd) {
    z_off_t off = rd->gz ? gzoffset(rd->gz) : 0;
    return off > 0 ? (long long)off : 0;
}

/* Reads more input; returns bytes added, 0 at the end, -1 on error. */
static int reader_fill(reader_t *rd) {
    if (rd->eof) return 0;
    if (rd->start > 0) {
        memmove(rd->buf, rd->buf + rd->start, rd->end - rd->start);
        rd->end -= rd->start;
        rd->start = 0;
    }
    size_t room = rd->cap - rd->end;
    if (room > RP_READ_CHUNK) room = RP_READ_CHUNK;
    int n = gzread(rd->gz, rd->buf + rd->end, (unsigned)room);
    if (n < 0) {
        int zerr = 0;
        const char *msg = gzerror(rd->gz, &zerr);
        snprintf(rd->errmsg, sizeof(rd->errmsg), "%s: read error: %s", rd->name,
                 zerr == Z_ERRNO ? strerror(errno) : msg);
        rd->error = 1;
        return -1;
    }
    if (n == 0) {
        int zerr = 0;
        const char *msg = gzerror(rd->gz, &zerr);
        if (zerr != Z_OK && zerr != Z_STREAM_END) {
            snprintf(rd->errmsg, sizeof(rd->errmsg), "%s: %s", rd->name,
                     zerr == Z_ERRNO ? strerror(errno) : msg);
            rd->error = 1;
            return -1;
        }
        rd->eof = 1;
        return 0;
    }
    rd->end += (size_t)n;
    return n;
}

/* The next line without its "\n" / "\r\n". Returns 1 and sets *line and *len (valid until
 * the next call), 2 for a line longer than max_line (skipped: *len is its length),
 * 0 at the end, -1 on a read error (rd->errmsg). */
static int reader_line(reader_t *rd, const char **line, size_t *len) {
    size_t scanned = 0; /* bytes of [start, end) known to hold no newline */
    size_t skipped = 0; /* bytes of an overlong line already dropped */
    for (;;) {
        char *from = rd->buf + rd->start + scanned;
        char *nl = memchr(from, '\n', rd->end - rd->start - scanned);
        if (nl) {
            size_t n = (size_t)(nl - (rd->buf + rd->start));
            const char *l = rd->buf + rd->start;
            rd->start += n + 1;
            rd->lineno++;
            if (skipped) {
                *len = skipped + n;
                return 2;
            }
            if (n > 0 && l[n - 1] == '\r') n--;
            *line = l;
            *len = n;
            return 1;
        }
        scanned = rd->end - rd->start;
        if (scanned > rd->max_line) {
            /* Longer than allowed: drop what we have and look for its end. */
            skipped += scanned;
            rd->start = rd->end;
            scanned = 0;
        }
        int r = reader_fill(rd);
        if (r < 0) return -1;
        if (r == 0) {
            size_t n = rd->end - rd->start;
            if (n == 0 && !skipped) return 0;
            /* Last line without a newline. */
            const char *l = rd->buf + rd->start;
            rd->start = rd->end;
            rd->lineno++;
            if (skipped) {
                *len = skipped + n;
                return 2;
            }
            if (n > 0 && l[n - 1] == '\r') n--;
            *line = l;
            *len = n;
            return 1;
        }
        /* reader_fill moved the data to the buffer's start: scanned is still right. */
    }
}

/* ---- progress -------------------------------------------------------------------- */

typedef struct counters_s {
    unsigned long long lines, sent, sent_invalid, invalid, filtered, filtered_no_time, blank,
        too_long, refused;
} counters_t;

typedef struct progress_s {
    int tty;         /* draw a bar on stderr */
    int shown;       /* the bar is on screen */
    long long total; /* input bytes, -1 when unknown (stdin, a pipe) */
    long long done;  /* input bytes of the files already finished */
    int64_t t0, next_ns, interval_ns;
} progress_t;

static void progress_clear(progress_t *pg) {
    if (pg->tty && pg->shown) {
        fputs("\r\033[K", stderr);
        pg->shown = 0;
    }
}

static void format_duration(double s, char *out, size_t out_size) {
    long long t = (long long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, out_size, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, out_size, "%lld:%02lld", t / 60, t % 60);
}

static void progress_show(progress_t *pg, const counters_t *c, long long at_bytes, int64_t now) {
    double elapsed = (double)(now - pg->t0) / 1e9;
    double rate = elapsed > 0 ? (double)c->sent / elapsed : 0;
    char eta[32] = "?";
    double frac = -1;
    if (pg->total > 0) {
        frac = (double)at_bytes / (double)pg->total;
        if (frac > 1) frac = 1;
        if (frac > 0.001 && elapsed > 0.5)
            format_duration(elapsed / frac - elapsed, eta, sizeof(eta));
    }
    if (pg->tty) {
        char bar[32];
        int width = 24, fill = frac >= 0 ? (int)(frac * width) : 0;
        for (int i = 0; i < width; i++) bar[i] = frac < 0 ? '?' : i < fill ? '#' : '-';
        bar[width] = '\0';
        if (frac >= 0)
            fprintf(stderr, "\r\033[K[%s] %3.0f%%  %llu events  %.0f/s  ETA %s", bar, frac * 100,
                    c->sent, rate, eta);
        else
            fprintf(stderr, "\r\033[K%llu events  %.0f/s", c->sent, rate);
        fflush(stderr);
        pg->shown = 1;
    } else if (frac >= 0) {
        EV_INFO("%llu lines, %llu sent (%.0f/s), %.0f%% of the input, ETA %s", c->lines, c->sent,
                rate, frac * 100, eta);
    } else {
        EV_INFO("%llu lines, %llu sent (%.0f/s)", c->lines, c->sent, rate);
    }
}

/* ---- the command ------------------------------------------------------------------ */

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

static int parse_time_opt(const char *name, const char *text, int64_t *ms) {
    if (!text) return 0;
    if (evscan_parse_time(text, strlen(text), ms) != 0 || !strchr(text, 'T')) {
        fprintf(stderr, "evpipe replay: --%s: '%s' is not an RFC 3339 time with a zone\n", name,
                text);
        return -1;
    }
    return 1;
}

/* One invalid line: reported individually for the first few. */
static void report_invalid(progress_t *pg, counters_t *c, const char *file, long long line,
                           const char *problem, bool sent) {
    c->invalid++;
    if (c->invalid <= RP_REPORT_FIRST) {
        progress_clear(pg);
        EV_WARN("%s:%lld: %s%s", file, line, problem,
                sent ? " (sent as is: --send-invalid)" : " (skipped)");
        if (c->invalid == RP_REPORT_FIRST) EV_WARN("further invalid lines are only counted");
    }
}

int cmd_replay(int argc, char **argv) {
    const char *brokers = NULL, *topic = NULL, *from_text = NULL, *to_text = NULL,
               *log_level = NULL;
    double rate = 0;
    long long interval = 10, max_line = RP_MAX_LINE_DEFAULT;
    bool send_invalid = false;
    ev_kv_list_t props = {0};
    const ev_opt_t opts[] = {
        {"brokers", 'b', EV_OPT_STR, NULL, "KAFKA_BROKERS", "LIST",
         "Kafka bootstrap servers (required)", &brokers, 0, 0},
        {"topic", 't', EV_OPT_STR, EV_TOPIC_RAW, NULL, "NAME", "topic to produce to", &topic, 0, 0},
        {"prop", 'X', EV_OPT_KV, NULL, NULL, "KEY=VALUE",
         "librdkafka producer property, passed untouched (repeatable), e.g. -X "
         "compression.type=zstd",
         &props, 0, 0},
        {"rate", 'r', EV_OPT_DOUBLE, "0", NULL, "N", "events per second (0: as fast as possible)",
         &rate, 0, 0},
        {"from", 0, EV_OPT_STR, NULL, NULL, "TIME",
         "only events whose time is at or after TIME (RFC 3339)", &from_text, 0, 0},
        {"to", 0, EV_OPT_STR, NULL, NULL, "TIME",
         "only events whose time is before TIME (RFC 3339)", &to_text, 0, 0},
        {"send-invalid", 0, EV_OPT_BOOL, NULL, NULL, NULL,
         "send lines that are not JSON objects with a visitorId as they are (no key), e.g. to "
         "test the dead-letter path; they are still reported",
         &send_invalid, 0, 0},
        {"max-line-bytes", 0, EV_OPT_INT, "1048576", NULL, "N",
         "longer lines are reported and skipped (a message is at most 64 KiB anyway)", &max_line,
         1024, 64LL * 1024 * 1024},
        {"progress-interval", 0, EV_OPT_INT, "10", NULL, "SECONDS",
         "a progress line this often when stderr is not a terminal (0: none)", &interval, 0, 86400},
        {"log-level", 0, EV_OPT_STR, "info", "EVPIPE_LOG_LEVEL", "LEVEL",
         "debug, info, warn or error", &log_level, 0, 0},
        EV_OPT_END};
    const ev_cli_t cli = {
        "evpipe replay", "[OPTIONS] FILE...",
        "Publishes NDJSON files (one event per line; plain or gzip, detected; '-' = stdin) to a\n"
        "topic, keyed by visitorId, in file and line order, through the idempotent producer\n"
        "(acks=all, lz4), as fast as possible or at --rate. This is how backfills run.\n"
        "A line that is not a JSON object with a string visitorId is reported with its\n"
        "file:line and skipped (or sent unkeyed with --send-invalid); nothing is dropped\n"
        "silently. --from/--to keep the events of a time window [from, to): lines outside it,\n"
        "or whose timestamp cannot be read, are skipped and counted. Full validation is\n"
        "ingest's job: a line that passes here may still be dead-lettered there.\n"
        "A progress bar is drawn when stderr is a terminal; the summary (read, sent, failed,\n"
        "skipped) comes after every delivery has been confirmed.",
        "Exit status: 0 everything read was delivered or deliberately skipped; 1 a delivery\n"
        "failed, a file could not be read to its end, or interrupted; 2 usage error.\n"
        "\n"
        "Examples:\n"
        "  evpipe replay --brokers kafka:9092 archive/2026-11-*.ndjson.gz\n"
        "  evpipe replay --rate 20000 --from 2026-11-01T00:00:00Z --to 2026-11-08T00:00:00Z "
        "day*.gz\n"
        "  evpipe loadgen --output - --bad-ratio 0.1 | evpipe replay --send-invalid -t test -",
        opts};
    char errstr[1024];
    int first = 0;
    int rc = ev_cli_parse(&cli, argc, argv, &first, errstr, sizeof(errstr));
    if (rc == 1) return 0;
    if (rc < 0) {
        fprintf(stderr, "evpipe replay: %s\n", errstr);
        ev_kv_list_clear(&props);
        return 2;
    }
    rc = 2;
    int level = ev_log_level_parse(log_level);
    int64_t from_ms = INT64_MIN, to_ms = INT64_MAX;
    int has_from = parse_time_opt("from", from_text, &from_ms);
    int has_to = parse_time_opt("to", to_text, &to_ms);
    if (level < 0) {
        fprintf(stderr, "evpipe replay: --log-level: '%s' is not debug, info, warn or error\n",
                log_level);
        goto out_props;
    }
    if (has_from < 0 || has_to < 0) goto out_props;
    if (has_from && has_to && to_ms <= from_ms) {
        fprintf(stderr, "evpipe replay: --to must be after --from\n");
        goto out_props;
    }
    if (!(rate >= 0) || !(rate <= 1e9)) {
        fprintf(stderr, "evpipe replay: --rate must be within 0..1000000000\n");
        goto out_props;
    }
    if (first >= argc) {
        fprintf(stderr,
                "evpipe replay: no input FILE (use '-' for stdin; see evpipe replay --help)\n");
        goto out_props;
    }
    if (!brokers || !*brokers) {
        fprintf(stderr, "evpipe replay: --brokers (or KAFKA_BROKERS) is required\n");
        goto out_props;
    }
    ev_log_init("replay", level, 0);
    int stdin_count = 0;
    long long total = 0;
    for (int i = first; i < argc; i++) {
        /* Every input must be readable before anything is sent. */
        if (strcmp(argv[i], "-") == 0) {
            stdin_count++;
            total = -1;
            continue;
        }
        struct stat st;
        if (stat(argv[i], &st) != 0 || access(argv[i], R_OK) != 0) {
            fprintf(stderr, "evpipe replay: cannot read %s: %s\n", argv[i], strerror(errno));
            goto out_props;
        }
        if (S_ISDIR(st.st_mode)) {
            fprintf(stderr, "evpipe replay: %s is a directory\n", argv[i]);
            goto out_props;
        }
        if (total >= 0) total = S_ISREG(st.st_mode) ? total + (long long)st.st_size : -1;
    }
    if (stdin_count > 1) {
        fprintf(stderr, "evpipe replay: '-' (stdin) given more than once\n");
        goto out_props;
    }

    kprod_t *kp = kprod_new(brokers, topic, &props, errstr, sizeof(errstr));
    evscan_t *scanner = evscan_new();
    rl_bucket_t *bucket = rate > 0 ? rl_bucket_new(rate, 0, ev_mono_ns()) : NULL;
    if (!kp) {
        fprintf(stderr, "evpipe replay: %s\n", errstr);
        goto out;
    }
    if (!scanner || (rate > 0 && !bucket)) {
        fprintf(stderr, "evpipe replay: out of memory\n");
        rc = 1;
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    kprod_set_interrupt(kp, &stop_requested);

    rc = 0;
    counters_t c;
    memset(&c, 0, sizeof(c));
    progress_t pg;
    memset(&pg, 0, sizeof(pg));
    pg.tty = isatty(STDERR_FILENO) && level <= EV_LOG_INFO;
    pg.total = total;
    pg.t0 = ev_mono_ns();
    pg.interval_ns = pg.tty ? 200000000LL : interval * 1000000000LL;
    pg.next_ns = pg.t0 + (pg.interval_ns ? pg.interval_ns : INT64_MAX / 2);
    int filtering = has_from || has_to;
    EV_INFO("replaying %d file%s to topic %s%s", argc - first, argc - first == 1 ? "" : "s", topic,
            send_invalid ? " (invalid lines sent too)" : "");

    for (int i = first; i < argc && !stop_requested; i++) {
        reader_t rd;
        if (reader_open(&rd, argv[i], (size_t)max_line, errstr, sizeof(errstr)) != 0) {
            progress_clear(&pg);
            EV_ERROR("%s", errstr);
            rc = 1;
            continue;
        }
        const char *line;
        size_t len;
        int r;
        while (!stop_requested && (r = reader_line(&rd, &line, &len)) != 0) {
            if (r < 0) {
                progress_clear(&pg);
                EV_ERROR("%s (after line %lld)", rd.errmsg, rd.lineno);
                rc = 1;
                break;
            }
            c.lines++;
            if (r == 2) {
                char problem[96];
                snprintf(problem, sizeof(problem),
                         "line of %zu bytes is longer than --max-line-bytes", len);
                c.too_long++;
                report_invalid(&pg, &c, rd.name, rd.lineno, problem, false);
                continue;
            }
            if (is_blank(line, len)) {
                c.blank++;
                continue;
            }
            evscan_result_t res;
            int sr = evscan_line(scanner, line, len, &res);
            const void *key = NULL;
            size_t key_len = 0;
            if (sr != 0) {
                report_invalid(&pg, &c, rd.name, rd.lineno, res.problem, send_invalid);
                if (!send_invalid) continue;
                c.sent_invalid++;
            } else {
                if (filtering) {
                    if (!res.has_timestamp) {
                        c.filtered++;
                        c.filtered_no_time++;
                        continue;
                    }
                    if (res.timestamp_ms < from_ms || res.timestamp_ms >= to_ms) {
                        c.filtered++;
                        continue;
                    }
                }
                key = res.visitor_id;
                key_len = res.visitor_id_len;
            }
            if (bucket) {
                int64_t wait;
                while ((wait = rl_bucket_take(bucket, ev_mono_ns())) > 0 && !stop_requested) {
                    struct timespec ts = {(time_t)(wait / 1000000000), (long)(wait % 1000000000)};
                    nanosleep(&ts, NULL);
                    kprod_poll(kp);
                }
            }
            if (kprod_send(kp, key, key_len, line, len, errstr, sizeof(errstr)) != 0) {
                c.refused++;
                if (c.refused <= RP_REPORT_FIRST) {
                    progress_clear(&pg);
                    EV_ERROR("%s:%lld: %s", rd.name, rd.lineno, errstr);
                }
                rc = 1;
                continue;
            }
            c.sent++;
            if ((c.lines & 63) == 0) {
                int64_t now = ev_mono_ns();
                if (now >= pg.next_ns) {
                    progress_show(&pg, &c, pg.done + reader_offset(&rd), now);
                    pg.next_ns = now + pg.interval_ns;
                }
            }
        }
        pg.done += reader_offset(&rd);
        reader_close(&rd);
    }
    if (stop_requested) {
        progress_clear(&pg);
        EV_WARN("interrupted: not reading further; waiting for the deliveries of what was sent");
        rc = 1;
    }
    /* Every message gets its delivery report before the summary. */
    int64_t last_note = ev_mono_ns();
    while (kprod_flush(kp, 500) != 0) {
        int64_t now = ev_mono_ns();
        if (pg.tty) progress_show(&pg, &c, pg.done, now);
        if (stop_requested > 1) {
            progress_clear(&pg);
            EV_WARN("not waiting for %d deliveries any longer", kprod_in_flight(kp));
            break;
        }
        if (now - last_note > 10LL * 1000000000) {
            progress_clear(&pg);
            EV_INFO("waiting for %d deliveries", kprod_in_flight(kp));
            last_note = now;
        }
    }
    progress_clear(&pg);
    kprod_stats_t ks;
    kprod_stats(kp, &ks);
    double elapsed = (double)(ev_mono_ns() - pg.t0) / 1e9;
    unsigned long long undelivered = c.sent - (ks.delivered < c.sent ? ks.delivered : c.sent);
    unsigned long long failed = undelivered + c.refused;
    if (c.invalid > RP_REPORT_FIRST)
        EV_WARN("%llu more invalid lines not shown", c.invalid - RP_REPORT_FIRST);
    char sent_note[64] = "", filtered_note[96] = "";
    if (c.sent_invalid)
        snprintf(sent_note, sizeof(sent_note), " (%llu of them invalid, --send-invalid)",
                 c.sent_invalid);
    if (c.filtered_no_time)
        snprintf(filtered_note, sizeof(filtered_note), " (%llu without a readable timestamp)",
                 c.filtered_no_time);
    EV_INFO(
        "read %llu lines; sent %llu%s; failed %llu; skipped-invalid %llu; skipped-filtered %llu%s; "
        "blank %llu; elapsed %.2f s; %.0f events/s",
        c.lines, c.sent, sent_note, failed, c.invalid - c.sent_invalid, c.filtered, filtered_note,
        c.blank, elapsed, elapsed > 0 ? (double)c.sent / elapsed : 0.0);
    if (failed > 0) {
        EV_ERROR("%llu events were not delivered: %s", failed,
                 kprod_first_error(kp)[0] ? kprod_first_error(kp) : "see the errors above");
        rc = 1;
    }
out:
    rl_bucket_destroy(bucket);
    evscan_destroy(scanner);
    kprod_destroy(kp);
out_props:
    ev_kv_list_clear(&props);
    return rc;
}
