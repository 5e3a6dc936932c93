/* commands.h — the subcommands of the evpipe binary. Each takes argv with argv[0]
 * set to the subcommand name and returns the process exit code
 * (0 success, 1 failure of the work, 2 usage or configuration error). */
#ifndef EV_COMMANDS_H
#define EV_COMMANDS_H

int cmd_migrate(int argc, char **argv);
int cmd_kafka_mock(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_loadgen(int argc, char **argv);
int cmd_classify_ua(int argc, char **argv);
int cmd_reclassify(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_dlq(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_funnels(int argc, char **argv);
int cmd_reports(int argc, char **argv);
int cmd_exports(int argc, char **argv);

#endif
