/* export_cells.c — see export_cells.h. */
#include "transforms/export_cells.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int tf_copy_text_split(char *row, size_t len, char **fields, size_t max_fields) {
    if (len > 0 && row[len - 1] == '\n') len--;
    size_t n = 0;
    char *end = row + len;
    char *p = row;
    if (max_fields == 0) return -1;
    for (;;) {
        if (n == max_fields) return -1;
        char *start = p, *w = p;
        if (end - p >= 2 && p[0] == '\\' && p[1] == 'N' && (end - p == 2 || p[2] == '\t')) {
            fields[n++] = NULL;
            p += 2;
        } else {
            while (p < end && *p != '\t') {
                if (*p != '\\') {
                    *w++ = *p++;
                    continue;
                }
                if (++p == end) return -1;
                char c = *p++;
                switch (c) {
                case 'b': *w++ = '\b'; break;
                case 'f': *w++ = '\f'; break;
                case 'n': *w++ = '\n'; break;
                case 'r': *w++ = '\r'; break;
                case 't': *w++ = '\t'; break;
                case 'v': *w++ = '\v'; break;
                case 'x': {
                    int v = 0, k = 0, h;
                    while (k < 2 && p < end && (h = hexval(*p)) >= 0) v = v * 16 + h, p++, k++;
                    if (k == 0) *w++ = 'x';
                    else *w++ = (char)v;
                    break;
                }
                default:
                    if (c >= '0' && c <= '7') {
                        int v = c - '0', k = 1;
                        while (k < 3 && p < end && *p >= '0' && *p <= '7') v = v * 8 + (*p++ - '0'), k++;
                        *w++ = (char)v;
                    } else {
                        *w++ = c; /* \\ and any other escaped byte stand for themselves */
                    }
                }
            }
            fields[n++] = start;
            *w = '\0'; /* w never passes p: this overwrites the tab or row[len] */
        }
        if (p >= end) break;
        p++; /* the tab */
        if (p == end) { /* a trailing empty field */
            if (n == max_fields) return -1;
            *p = '\0';
            fields[n++] = p;
            break;
        }
    }
    return (int)n;
}

bool tf_csv_needs_neutralising(const char *s, size_t n) {
    if (!s || n == 0) return false;
    switch (s[0]) {
    case '=': case '+': case '-': case '@': case '\t': case '\r': return true;
    default: return false;
    }
}

size_t tf_csv_cell(const char *s, size_t n, bool neutralise, char *out) {
    if (!s) return 0;
    bool quote = n == 0;
    for (size_t i = 0; i < n && !quote; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n') quote = true;
    size_t w = 0;
    if (quote) out[w++] = '"';
    if (neutralise && tf_csv_needs_neutralising(s, n)) out[w++] = '\'';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') out[w++] = '"';
        out[w++] = s[i];
    }
    if (quote) out[w++] = '"';
    return w;
}

typedef struct {
    char *path;
    size_t len, cap;
    int (*row)(const char *, const char *, bool, void *);
    void *ud;
} flat_t;

static int path_push(flat_t *f, const char *piece, size_t n) {
    if (f->len + n + 1 > f->cap) {
        size_t cap = (f->len + n + 1) * 2;
        char *p = realloc(f->path, cap);
        if (!p) return -1;
        f->path = p;
        f->cap = cap;
    }
    memcpy(f->path + f->len, piece, n);
    f->len += n;
    f->path[f->len] = '\0';
    return 0;
}

static int walk(flat_t *f, yajl_val v, int depth) {
    if (depth > 64) return -2;
    size_t mark = f->len;
    int rc = 0;
    if (YAJL_IS_OBJECT(v)) {
        for (size_t i = 0; i < v->u.object.len && rc == 0; i++) {
            const char *k = v->u.object.keys[i];
            if ((mark > 0 && path_push(f, ".", 1) != 0) || path_push(f, k, strlen(k)) != 0)
                return -3;
            rc = walk(f, v->u.object.values[i], depth + 1);
            f->len = mark;
            if (f->path) f->path[mark] = '\0';
        }
        return rc;
    }
    if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len && rc == 0; i++) {
            char idx[32];
            int n = snprintf(idx, sizeof(idx), "[%zu]", i);
            if (path_push(f, idx, (size_t)n) != 0) return -3;
            rc = walk(f, v->u.array.values[i], depth + 1);
            f->len = mark;
            f->path[mark] = '\0';
        }
        return rc;
    }
    const char *path = f->len ? f->path : "$";
    if (YAJL_IS_STRING(v)) return f->row(path, YAJL_GET_STRING(v), true, f->ud);
    if (YAJL_IS_NUMBER(v)) return f->row(path, YAJL_GET_NUMBER(v), false, f->ud);
    if (YAJL_IS_TRUE(v)) return f->row(path, "true", false, f->ud);
    if (YAJL_IS_FALSE(v)) return f->row(path, "false", false, f->ud);
    return f->row(path, NULL, false, f->ud);
}

int tf_json_flatten(const char *json, int (*row)(const char *, const char *, bool, void *),
                    void *ud, char *errstr, size_t errstr_size) {
    char perr[256];
    yajl_val root = yajl_tree_parse(json ? json : "", perr, sizeof(perr));
    if (!root) {
        snprintf(errstr, errstr_size, "not JSON: %s", perr);
        return -1;
    }
    flat_t f = {NULL, 0, 0, row, ud};
    int rc = walk(&f, root, 0);
    free(f.path);
    yajl_tree_free(root);
    if (rc == -2 || rc == -3) {
        snprintf(errstr, errstr_size, rc == -2 ? "JSON nested deeper than 64 levels"
                                               : "out of memory");
        return -1;
    }
    return rc;
}
