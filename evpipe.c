/* evpipe.c — entry point: dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "common/commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"demo", cmd_demo, "run the whole pipeline on embedded defaults and show what it stored"},
    {"migrate", cmd_migrate, "apply, roll back, list or verify the schema migrations"},
    {"ingest", cmd_ingest, "consume raw events into sessions, events, page views, conversions"},
    {"metrics", cmd_metrics, "keep metric snapshots exact for every period, from the stored rows"},
    {"funnels", cmd_funnels, "keep funnel results exact per day, week and month of entry"},
    {"reports", cmd_reports, "compute PENDING reports of every type into a JSON result"},
    {"exports", cmd_exports, "stream PENDING exports to CSV, JSON or XLSX files and upload them"},
    {"replay", cmd_replay, "publish NDJSON files (plain or gzip) to a topic, for backfills"},
    {"loadgen", cmd_loadgen, "generate realistic synthetic traffic to Kafka or NDJSON"},
    {"classify-ua", cmd_classify_ua, "classify user agents read from stdin, one per line"},
    {"reclassify", cmd_reclassify, "classify stored sessions again with the current data sets"},
    {"dlq", cmd_dlq, "replay dead-lettered messages to the raw topic (dlq replay)"},
    {"status", cmd_status, "positions, lag, dead letters, jobs and waiting work, for operators"},
    {"kafka-mock", cmd_kafka_mock, "host librdkafka's mock Kafka cluster until SIGTERM"},
};

static void usage(FILE *out) {
    fprintf(out,
            "evpipe %s — Kafka to PostgreSQL event pipeline for web analytics\n\n"
            "Usage: evpipe COMMAND [OPTIONS]\n\nCommands:\n",
            EVPIPE_VERSION);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'evpipe COMMAND --help' for the options of a command.\n"
                 "Connections: --brokers (KAFKA_BROKERS) and --database (DATABASE_URL).\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("evpipe %s\n", EVPIPE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "evpipe: unknown command '%s' (see evpipe --help)\n", argv[1]);
    return 2;
}
