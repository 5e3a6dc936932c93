/* demo_jobs.h — the demo's reports and exports: one report of every ReportType and one
 * export of every format queued over the traffic's range, then a summary of what the
 * stages made of them. */
#ifndef EV_DEMO_JOBS_H
#define EV_DEMO_JOBS_H

#include <libpq-fe.h>
#include <stddef.h>

/* Inserts the PENDING reports and exports (once per database: a second run queues
 * nothing new). Returns 0 or -1 with errstr. */
int demo_queue_jobs(PGconn *conn, char *errstr, size_t errstr_size);

/* Prints each report's status and size, and each export's status, rows, bytes,
 * checksum and file. */
void demo_print_jobs(PGconn *conn);

#endif
