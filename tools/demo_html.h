/* demo_html.h — the demo's self-contained HTML overview (inline SVG charts). */
#ifndef EV_DEMO_HTML_H
#define EV_DEMO_HTML_H

#include <libpq-fe.h>
#include <stddef.h>

/* Writes the overview of what conn's database holds (metric snapshots, funnel
 * results, page views) to path. Returns 0, or -1 with errstr (a query or the write
 * failed; the file may be partial). */
int demo_write_html(PGconn *conn, const char *path, char *errstr, size_t errstr_size);

#endif
