/* test_export_cells.c — the cell encodings of export files (transforms/export_cells.h):
 * COPY text rows decoded (NULL, every escape, empty and trailing fields, malformed
 * rows), CSV cells quoted per RFC 4180 and neutralised against formula injection, and
 * JSON documents flattened into (path, value) rows in document order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "transforms/export_cells.h"

static int split(const char *row, char **fields, size_t max, char *buf, size_t bufsize) {
    size_t n = strlen(row);
    ck_assert(n + 1 <= bufsize);
    memcpy(buf, row, n + 1);
    return tf_copy_text_split(buf, n, fields, max);
}

START_TEST(test_copy_text_split) {
    char buf[256], *f[8];
    ck_assert_int_eq(split("a\tb\\tc\t\\N\t\n", f, 8, buf, sizeof(buf)), 4);
    ck_assert_str_eq(f[0], "a");
    ck_assert_str_eq(f[1], "b\tc");
    ck_assert_ptr_null(f[2]);
    ck_assert_str_eq(f[3], "");
    ck_assert_int_eq(split("\\b\\f\\n\\r\\v\\\\\\x41\\101\\N", f, 8, buf, sizeof(buf)), 1);
    ck_assert_str_eq(f[0], "\b\f\n\r\v\\AAN");
    ck_assert_int_eq(split("\\N\n", f, 8, buf, sizeof(buf)), 1);
    ck_assert_ptr_null(f[0]);
    ck_assert_int_eq(split("\\Nx", f, 8, buf, sizeof(buf)), 1); /* not a NULL: "Nx" */
    ck_assert_str_eq(f[0], "Nx");
    ck_assert_int_eq(split("", f, 8, buf, sizeof(buf)), 1);
    ck_assert_str_eq(f[0], "");
    ck_assert_int_eq(split("\t", f, 8, buf, sizeof(buf)), 2);
    ck_assert_str_eq(f[0], "");
    ck_assert_str_eq(f[1], "");
    ck_assert_int_eq(split("ü\t✓", f, 8, buf, sizeof(buf)), 2);
    ck_assert_str_eq(f[1], "✓");
    /* Too many fields, a dangling backslash. */
    ck_assert_int_eq(split("a\tb\tc", f, 2, buf, sizeof(buf)), -1);
    ck_assert_int_eq(split("a\t", f, 1, buf, sizeof(buf)), -1);
    ck_assert_int_eq(split("a\\", f, 8, buf, sizeof(buf)), -1);
}
END_TEST

static const struct {
    const char *in; /* NULL = SQL NULL */
    int neutralise;
    const char *out;
} csv_cases[] = {
    {NULL, 1, ""},
    {"", 1, "\"\""},
    {"plain", 1, "plain"},
    {"a,b", 1, "\"a,b\""},
    {"say \"hi\"", 1, "\"say \"\"hi\"\"\""},
    {"two\nlines", 1, "\"two\nlines\""},
    {"cr\rhere", 1, "\"cr\rhere\""},
    {"=SUM(A1:A2)", 1, "'=SUM(A1:A2)"},
    {"+1", 1, "'+1"},
    {"-2", 1, "'-2"},
    {"-2", 0, "-2"},
    {"@cmd", 1, "'@cmd"},
    {"\tx", 1, "'\tx"},
    {"\rx", 1, "\"'\rx\""},
    {"=HYPERLINK(\"http://e\",\"x\")", 1, "\"'=HYPERLINK(\"\"http://e\"\",\"\"x\"\")\""},
    {"a=b", 1, "a=b"},
    {"ünï ✓", 1, "ünï ✓"},
};

START_TEST(test_csv_cell) {
    const char *in = csv_cases[_i].in;
    size_t n = in ? strlen(in) : 0;
    char *out = malloc(TF_CSV_CELL_MAX(n));
    size_t w = tf_csv_cell(in, n, csv_cases[_i].neutralise, out);
    ck_assert_uint_le(w, TF_CSV_CELL_MAX(n));
    ck_assert_msg(w == strlen(csv_cases[_i].out) && memcmp(out, csv_cases[_i].out, w) == 0,
                  "case %d: got '%.*s'", _i, (int)w, out);
    free(out);
}
END_TEST

START_TEST(test_csv_worst_case_fits) {
    char in[64];
    memset(in, '"', sizeof(in));
    in[0] = '=';
    char out[TF_CSV_CELL_MAX(sizeof(in))];
    ck_assert_uint_eq(tf_csv_cell(in, sizeof(in), 1, out), 1 + 1 + 1 + 2 * 63 + 1);
}
END_TEST

typedef struct {
    char buf[1024];
    int rows, stop_after;
} flat_t;

static int collect(const char *path, const char *value, bool is_string, void *ud) {
    flat_t *f = ud;
    size_t n = strlen(f->buf);
    snprintf(f->buf + n, sizeof(f->buf) - n, "%s=%s%s;", path, is_string ? "s:" : "",
             value ? value : "NULL");
    return ++f->rows == f->stop_after ? 7 : 0;
}

START_TEST(test_json_flatten) {
    flat_t f = {"", 0, 0};
    char err[128];
    ck_assert_int_eq(tf_json_flatten("{\"a\": {\"b\": [1, \"x\", null, {\"c\": true}], "
                                     "\"e\": {}}, \"d\": -2.50, \"f\": []}",
                                     collect, &f, err, sizeof(err)),
                     0);
    ck_assert_str_eq(f.buf, "a.b[0]=1;a.b[1]=s:x;a.b[2]=NULL;a.b[3].c=true;d=-2.50;");
    flat_t g = {"", 0, 0};
    ck_assert_int_eq(tf_json_flatten("\"solo\"", collect, &g, err, sizeof(err)), 0);
    ck_assert_str_eq(g.buf, "$=s:solo;");
    flat_t h = {"", 0, 2};
    ck_assert_int_eq(tf_json_flatten("[1, 2, 3]", collect, &h, err, sizeof(err)), 7);
    ck_assert_int_eq(h.rows, 2);
    ck_assert_int_eq(tf_json_flatten("{", collect, &h, err, sizeof(err)), -1);
    ck_assert(strncmp(err, "not JSON", 8) == 0);
    char deep[400] = "";
    for (int i = 0; i < 100; i++) strcat(deep, "[");
    for (int i = 0; i < 100; i++) strcat(deep, "]");
    ck_assert_int_eq(tf_json_flatten(deep, collect, &h, err, sizeof(err)), -1);
}
END_TEST

static Suite *export_cells_suite(void) {
    Suite *s = suite_create("export_cells");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_copy_text_split);
    tcase_add_loop_test(tc, test_csv_cell, 0, (int)(sizeof(csv_cases) / sizeof(csv_cases[0])));
    tcase_add_test(tc, test_csv_worst_case_fits);
    tcase_add_test(tc, test_json_flatten);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tl_run_suite(export_cells_suite()) == 0 ? 0 : 1; }
