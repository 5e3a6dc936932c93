/* export_file.c — see export_file.h. CSV and JSON go through one byte sink (buffered
 * stdio, optional gzip via zlib, sha256 and size of what reaches the file); XLSX is
 * written by libxlsxwriter, which owns its file, so its checksum is read back after
 * the zip is closed. */
#include "sinks/export_file.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xlsxwriter.h>
#include <yajl/yajl_gen.h>
#include <zlib.h>

#include "transforms/export_cells.h"

#define OUT_CHUNK (256 * 1024)

struct export_file_s {
    export_file_opts_t o;
    char *path;
    size_t n_cols;
    char **names;
    export_col_kind_t *kinds;
    long long rows;
    bool failed;
    char err[256];
    /* CSV and JSON: the byte sink. */
    FILE *fp;
    z_stream z;
    bool z_on;
    unsigned char *zbuf;
    EVP_MD_CTX *md;
    long long size;
    unsigned char *obuf; /* bytes on their way to the file: hashed and written per chunk */
    size_t olen;
    char *line; /* CSV row buffer */
    size_t line_cap;
    yajl_gen gen;
    bool raw_json;
    /* XLSX */
    lxw_workbook *wb;
    lxw_worksheet *ws;
    lxw_format *bold, *datefmt;
    long sheet_row, sheets;
    char *sheet_name;
};

static void set_err(export_file_t *f, const char *fmt, const char *detail) {
    if (f->failed) return;
    f->failed = true;
    snprintf(f->err, sizeof(f->err), fmt, detail);
}

/* Bytes as they reach the file: hashed, counted, written. */
static void sink_write(export_file_t *f, const void *p, size_t n) {
    if (f->failed || n == 0) return;
    EVP_DigestUpdate(f->md, p, n);
    if (fwrite(p, 1, n, f->fp) != n) set_err(f, "writing the export file: %s", strerror(errno));
    f->size += (long long)n;
}

static void deflate_out(export_file_t *f, int flush) {
    do {
        f->z.next_out = f->zbuf;
        f->z.avail_out = OUT_CHUNK;
        int rc = deflate(&f->z, flush);
        if (rc == Z_STREAM_ERROR) {
            set_err(f, "gzip: %s", "stream error");
            return;
        }
        sink_write(f, f->zbuf, OUT_CHUNK - f->z.avail_out);
    } while (f->z.avail_out == 0 && !f->failed);
}

/* Hands the staged bytes on, compressed or not. */
static void stage_flush(export_file_t *f) {
    if (f->failed || f->olen == 0) return;
    if (f->z_on) {
        f->z.next_in = f->obuf;
        f->z.avail_in = (uInt)f->olen;
        deflate_out(f, Z_NO_FLUSH);
    } else {
        sink_write(f, f->obuf, f->olen);
    }
    f->olen = 0;
}

/* The file's content, staged so that compression, hashing and writing go by chunks
 * (the JSON generator hands over one token at a time). */
static void out_write(export_file_t *f, const void *p, size_t n) {
    while (!f->failed && n > 0) {
        size_t room = OUT_CHUNK - f->olen, k = n < room ? n : room;
        memcpy(f->obuf + f->olen, p, k);
        f->olen += k;
        p = (const char *)p + k;
        n -= k;
        if (f->olen == OUT_CHUNK) stage_flush(f);
    }
}

static void gen_print(void *ud, const char *s, size_t n) { out_write(ud, s, n); }

static int xlsx_fail(export_file_t *f, lxw_error e, char *errstr, size_t n) {
    snprintf(errstr, n, "xlsx: %s", lxw_strerror(e));
    f->failed = true;
    return -1;
}

static int xlsx_new_sheet(export_file_t *f, char *errstr, size_t n) {
    char name[48];
    f->sheets++;
    /* Excel sheet names: at most 31 characters, none of []:*?/\ (ours are plain). */
    if (f->sheets == 1)
        snprintf(name, sizeof(name), "%.31s", f->sheet_name);
    else
        snprintf(name, sizeof(name), "%.20s (%ld)", f->sheet_name, f->sheets);
    f->ws = workbook_add_worksheet(f->wb, name);
    if (!f->ws) {
        snprintf(errstr, n, "xlsx: cannot add sheet '%s'", name);
        f->failed = true;
        return -1;
    }
    for (size_t c = 0; c < f->n_cols; c++) {
        lxw_error e = worksheet_write_string(f->ws, 0, (lxw_col_t)c, f->names[c], f->bold);
        if (e) return xlsx_fail(f, e, errstr, n);
    }
    f->sheet_row = 1;
    return 0;
}

static void csv_header(export_file_t *f) {
    for (size_t c = 0; c < f->n_cols; c++) {
        size_t len = strlen(f->names[c]);
        char *cell = malloc(TF_CSV_CELL_MAX(len) + 1);
        if (!cell) {
            set_err(f, "%s", "out of memory");
            return;
        }
        if (c) out_write(f, ",", 1);
        out_write(f, cell, tf_csv_cell(f->names[c], len, true, cell));
        free(cell);
    }
    out_write(f, "\r\n", 2);
}

export_file_t *export_file_open(const char *path, const export_file_opts_t *opts,
                                const char *const *names, const export_col_kind_t *kinds,
                                size_t n_cols, char *errstr, size_t errstr_size) {
    export_file_t *f = calloc(1, sizeof(*f));
    if (!f) goto oom;
    f->o = *opts;
    if (f->o.format == EXPORT_XLSX) f->o.gzip = false;
    f->n_cols = n_cols;
    f->path = strdup(path);
    f->names = calloc(n_cols + 1, sizeof(*f->names));
    f->kinds = calloc(n_cols + 1, sizeof(*f->kinds));
    f->sheet_name = strdup(opts->sheet_name ? opts->sheet_name : "export");
    if (!f->path || !f->names || !f->kinds || !f->sheet_name) goto oom;
    for (size_t i = 0; i < n_cols; i++) {
        if (!(f->names[i] = strdup(names[i]))) goto oom;
        f->kinds[i] = kinds ? kinds[i] : EXPORT_COL_TEXT;
    }
    if (f->o.sheet_rows <= 1 || f->o.sheet_rows > EXPORT_XLSX_SHEET_ROWS)
        f->o.sheet_rows = EXPORT_XLSX_SHEET_ROWS;
    if (f->o.format == EXPORT_XLSX) {
        lxw_workbook_options wo = {.constant_memory = LXW_TRUE,
                                   .tmpdir = (char *)(uintptr_t)opts->tmpdir,
                                   .use_zip64 = LXW_TRUE};
        f->wb = workbook_new_opt(path, &wo);
        if (!f->wb) {
            snprintf(errstr, errstr_size, "xlsx: cannot create %s", path);
            goto fail;
        }
        f->bold = workbook_add_format(f->wb);
        f->datefmt = workbook_add_format(f->wb);
        format_set_bold(f->bold);
        format_set_num_format(f->datefmt, "yyyy-mm-dd hh:mm:ss.000");
        if (xlsx_new_sheet(f, errstr, errstr_size) != 0) goto fail;
        return f;
    }
    f->fp = fopen(path, "wb");
    if (!f->fp) {
        snprintf(errstr, errstr_size, "cannot create %s: %s", path, strerror(errno));
        goto fail;
    }
    f->md = EVP_MD_CTX_new();
    f->obuf = malloc(OUT_CHUNK);
    if (!f->md || !f->obuf || !EVP_DigestInit_ex(f->md, EVP_sha256(), NULL)) goto oom;
    if (f->o.gzip) {
        f->zbuf = malloc(OUT_CHUNK);
        /* windowBits 15 + 16: a gzip wrapper; level 6, zlib's default trade-off. */
        if (!f->zbuf || deflateInit2(&f->z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            goto oom;
        f->z_on = true;
    }
    if (f->o.format == EXPORT_JSON) {
        f->gen = yajl_gen_alloc(NULL);
        if (!f->gen) goto oom;
        yajl_gen_config(f->gen, yajl_gen_print_callback, gen_print, f);
    } else {
        csv_header(f);
    }
    if (f->failed) {
        snprintf(errstr, errstr_size, "%s", f->err);
        goto fail;
    }
    return f;
oom:
    snprintf(errstr, errstr_size, "out of memory");
fail:
    export_file_abort(f);
    return NULL;
}

/* NaN, Infinity and -Infinity are numbers to PostgreSQL and not to JSON or Excel. */
static bool finite_number(const char *s) {
    const char *p = s + (*s == '-' || *s == '+');
    return *p >= '0' && *p <= '9';
}

static int json_row(export_file_t *f, const char *const *v, const export_col_kind_t *kinds) {
    yajl_gen g = f->gen;
    if (f->rows == 0) yajl_gen_array_open(g); /* late, so that raw_json can replace it */
    yajl_gen_map_open(g);
    for (size_t c = 0; c < f->n_cols; c++) {
        yajl_gen_string(g, (const unsigned char *)f->names[c], strlen(f->names[c]));
        if (!v[c]) {
            yajl_gen_null(g);
            continue;
        }
        switch (kinds[c]) {
        case EXPORT_COL_NUMBER:
            if (finite_number(v[c])) yajl_gen_number(g, v[c], strlen(v[c]));
            else yajl_gen_null(g);
            break;
        case EXPORT_COL_BOOL:
            yajl_gen_bool(g, v[c][0] == 't');
            break;
        case EXPORT_COL_JSON:
            /* yajl_gen_number writes its argument verbatim: PostgreSQL's json/jsonb
             * text is valid JSON, nested here as it is. */
            yajl_gen_number(g, v[c], strlen(v[c]));
            break;
        default:
            yajl_gen_string(g, (const unsigned char *)v[c], strlen(v[c]));
        }
    }
    yajl_gen_status st = yajl_gen_map_close(g);
    if (st != yajl_gen_status_ok) set_err(f, "json: generator state %s", "invalid");
    return f->failed ? -1 : 0;
}

static int csv_row(export_file_t *f, const char *const *v, const export_col_kind_t *kinds) {
    size_t need = 2;
    for (size_t c = 0; c < f->n_cols; c++) need += TF_CSV_CELL_MAX(v[c] ? strlen(v[c]) : 0) + 1;
    if (need > f->line_cap) {
        char *p = realloc(f->line, need);
        if (!p) {
            set_err(f, "%s", "out of memory");
            return -1;
        }
        f->line = p;
        f->line_cap = need;
    }
    size_t w = 0;
    for (size_t c = 0; c < f->n_cols; c++) {
        if (c) f->line[w++] = ',';
        if (kinds[c] == EXPORT_COL_BOOL && v[c]) {
            const char *b = v[c][0] == 't' ? "true" : "false";
            memcpy(f->line + w, b, strlen(b));
            w += strlen(b);
            continue;
        }
        w += tf_csv_cell(v[c], v[c] ? strlen(v[c]) : 0,
                         kinds[c] == EXPORT_COL_TEXT || kinds[c] == EXPORT_COL_JSON, f->line + w);
    }
    f->line[w++] = '\r';
    f->line[w++] = '\n';
    out_write(f, f->line, w);
    return f->failed ? -1 : 0;
}

/* "2026-01-02T03:04:05.678Z" → lxw_datetime. */
static bool parse_time(const char *s, lxw_datetime *dt) {
    int y, mo, d, h, mi;
    double sec;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%lf", &y, &mo, &d, &h, &mi, &sec) != 6) return false;
    dt->year = y, dt->month = mo, dt->day = d, dt->hour = h, dt->min = mi, dt->sec = sec;
    return y >= 1900 && y <= 9999;
}

static int xlsx_row(export_file_t *f, const char *const *v, const export_col_kind_t *kinds,
                    char *errstr, size_t n) {
    if (f->sheet_row >= f->o.sheet_rows && xlsx_new_sheet(f, errstr, n) != 0) return -1;
    lxw_row_t r = (lxw_row_t)f->sheet_row;
    for (size_t c = 0; c < f->n_cols; c++) {
        if (!v[c]) continue;
        lxw_col_t col = (lxw_col_t)c;
        lxw_error e = LXW_NO_ERROR;
        lxw_datetime dt;
        switch (kinds[c]) {
        case EXPORT_COL_NUMBER:
            if (finite_number(v[c])) e = worksheet_write_number(f->ws, r, col, strtod(v[c], NULL), NULL);
            break;
        case EXPORT_COL_BOOL:
            e = worksheet_write_boolean(f->ws, r, col, v[c][0] == 't', NULL);
            break;
        case EXPORT_COL_TIME:
            if (parse_time(v[c], &dt)) {
                e = worksheet_write_datetime(f->ws, r, col, &dt, f->datefmt);
                break;
            }
            e = worksheet_write_string(f->ws, r, col, v[c], NULL); /* not a date Excel holds */
            break;
        default: {
            size_t len = strlen(v[c]);
            if (len > EXPORT_XLSX_MAX_STRING) {
                /* Cut at a character boundary: never inside a UTF-8 sequence. */
                size_t cut = EXPORT_XLSX_MAX_STRING;
                while (cut > 0 && ((unsigned char)v[c][cut] & 0xC0) == 0x80) cut--;
                char *s = strndup(v[c], cut);
                if (!s) {
                    snprintf(errstr, n, "out of memory");
                    return -1;
                }
                e = worksheet_write_string(f->ws, r, col, s, NULL);
                free(s);
            } else {
                e = worksheet_write_string(f->ws, r, col, v[c], NULL);
            }
        }
        }
        if (e) return xlsx_fail(f, e, errstr, n);
    }
    f->sheet_row++;
    return 0;
}

int export_file_row(export_file_t *f, const char *const *values, const export_col_kind_t *kinds,
                    char *errstr, size_t errstr_size) {
    if (f->failed || f->raw_json) {
        snprintf(errstr, errstr_size, "%s", f->failed ? f->err : "raw JSON file");
        return -1;
    }
    if (!kinds) kinds = f->kinds;
    int rc;
    switch (f->o.format) {
    case EXPORT_JSON: rc = json_row(f, values, kinds); break;
    case EXPORT_XLSX: rc = xlsx_row(f, values, kinds, errstr, errstr_size); break;
    default: rc = csv_row(f, values, kinds);
    }
    if (rc != 0) {
        if (f->o.format != EXPORT_XLSX) snprintf(errstr, errstr_size, "%s", f->err);
        return -1;
    }
    f->rows++;
    return 0;
}

int export_file_raw_json(export_file_t *f, const char *json, char *errstr, size_t errstr_size) {
    if (f->o.format != EXPORT_JSON || f->rows > 0 || f->raw_json) {
        snprintf(errstr, errstr_size, "a raw JSON document needs an empty JSON file");
        return -1;
    }
    f->raw_json = true; /* nothing has reached the file yet: the array opens late */
    out_write(f, json, strlen(json));
    if (f->failed) {
        snprintf(errstr, errstr_size, "%s", f->err);
        return -1;
    }
    return 0;
}

static int hash_file(const char *path, long long *size, unsigned char md[32], char *errstr,
                     size_t n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(errstr, n, "reading back %s: %s", path, strerror(errno));
        return -1;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = malloc(OUT_CHUNK);
    int rc = -1;
    if (ctx && buf && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        size_t got;
        *size = 0;
        while ((got = fread(buf, 1, OUT_CHUNK, fp)) > 0) {
            EVP_DigestUpdate(ctx, buf, got);
            *size += (long long)got;
        }
        rc = ferror(fp) ? -1 : 0;
        if (rc == 0) EVP_DigestFinal_ex(ctx, md, NULL);
        else snprintf(errstr, n, "reading back %s: %s", path, strerror(errno));
    } else {
        snprintf(errstr, n, "out of memory");
    }
    EVP_MD_CTX_free(ctx);
    free(buf);
    fclose(fp);
    return rc;
}

int export_file_close(export_file_t *f, long long *size, char sha256_hex[65], char *errstr,
                      size_t errstr_size) {
    unsigned char md[32];
    int rc = -1;
    if (f->failed) {
        snprintf(errstr, errstr_size, "%s", f->err);
        export_file_abort(f);
        return -1;
    }
    if (f->o.format == EXPORT_XLSX) {
        lxw_error e = workbook_close(f->wb);
        f->wb = NULL;
        if (e) {
            snprintf(errstr, errstr_size, "xlsx: %s", lxw_strerror(e));
        } else {
            rc = hash_file(f->path, size, md, errstr, errstr_size);
        }
    } else {
        if (f->o.format == EXPORT_JSON && !f->raw_json) {
            if (f->rows == 0) yajl_gen_array_open(f->gen);
            yajl_gen_array_close(f->gen);
        }
        stage_flush(f);
        if (f->z_on) {
            deflate_out(f, Z_FINISH);
            deflateEnd(&f->z);
            f->z_on = false;
        }
        if (!f->failed && fflush(f->fp) != 0) set_err(f, "writing the export file: %s", strerror(errno));
        if (fclose(f->fp) != 0) set_err(f, "closing the export file: %s", strerror(errno));
        f->fp = NULL;
        if (f->failed) {
            snprintf(errstr, errstr_size, "%s", f->err);
        } else {
            EVP_DigestFinal_ex(f->md, md, NULL);
            *size = f->size;
            rc = 0;
        }
    }
    if (rc == 0)
        for (int i = 0; i < 32; i++) snprintf(sha256_hex + 2 * i, 3, "%02x", md[i]);
    export_file_abort(f);
    return rc;
}

void export_file_abort(export_file_t *f) {
    if (!f) return;
    if (f->wb) {
        /* libxlsxwriter has no abort: closing writes a (discarded) file, and frees. */
        workbook_close(f->wb);
    }
    if (f->z_on) deflateEnd(&f->z);
    if (f->fp) fclose(f->fp);
    if (f->gen) yajl_gen_free(f->gen);
    EVP_MD_CTX_free(f->md);
    free(f->zbuf);
    free(f->obuf);
    free(f->line);
    for (size_t i = 0; f->names && i < f->n_cols; i++) free(f->names[i]);
    free(f->names);
    free(f->kinds);
    free(f->sheet_name);
    free(f->path);
    free(f);
}

long long export_file_rows(const export_file_t *f) { return f->rows; }
