/* xlsx_deflate.h — the deflate level of the XLSX files libxlsxwriter writes.
 *
 * libxlsxwriter (1.1.4) zips every part of a workbook through minizip at zlib's default
 * level 6 and offers no option to change it; at that level the zip's deflate is half
 * the time of a large export. This module interposes minizip's zipOpenNewFileInZip4_64,
 * the one entry libxlsxwriter opens each part with, and passes the level chosen here
 * on to the real function (dlsym RTLD_NEXT). Any zlib level gives a valid XLSX. */
#ifndef EVPIPE_SINKS_XLSX_DEFLATE_H
#define EVPIPE_SINKS_XLSX_DEFLATE_H

/* zlib's fastest level: 1.6x the rate of the default for a third more bytes. */
#define XLSX_DEFLATE_LEVEL_DEFAULT 1

/* Sets the level (0-9; -1 = zlib's default) of the parts of workbooks opened from now on. */
void xlsx_deflate_set_level(int level);

#endif
