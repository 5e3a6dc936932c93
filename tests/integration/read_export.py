"""Reads an export file back with Python's own parsers (csv, json, gzip, zipfile + the
sheet XML) and compares it with the expected rows, a JSON file of rows (the header
first) whose cells are strings or null, produced by the test from SQL.

usage: read_export.py CSV|JSON|XLSX FILE EXPECTED.json [gzip]
Prints {"rows": N, "sheets": S} and exits 0 when equal; prints the first difference
and exits 1 otherwise."""
import csv
import datetime
import gzip
import io
import json
import re
import sys
import xml.etree.ElementTree as ET
import zipfile

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
R_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def read_csv(data):
    text = data.decode("utf-8")
    # RFC 4180: every record ends with CRLF (line breaks inside quotes stay as written).
    assert text == "" or text.endswith("\r\n"), "CSV must end with CRLF"
    return [row for row in csv.reader(io.StringIO(text, newline=""), strict=True)], 1


def canon_json(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return v  # str (numbers kept as their text)


def read_json(data):
    doc = json.loads(data.decode("utf-8"), parse_float=str, parse_int=str)
    if isinstance(doc, dict):  # a report's result
        return doc, 1
    assert isinstance(doc, list), "JSON export must be one array"
    rows = []
    for obj in doc:
        if not rows:
            rows.append(list(obj.keys()))
        assert list(obj.keys()) == rows[0], "every object has the columns in order"
        rows.append([canon_json(v) for v in obj.values()])
    return rows, 1


def col_index(ref):
    letters = re.match(r"[A-Z]+", ref).group(0)
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def read_xlsx(data):
    z = zipfile.ZipFile(io.BytesIO(data))
    styles = ET.fromstring(z.read("xl/styles.xml"))
    fmts = {int(f.get("numFmtId")): f.get("formatCode")
            for f in styles.findall("m:numFmts/m:numFmt", NS)}
    date_styles = set()
    for i, xf in enumerate(styles.findall("m:cellXfs/m:xf", NS)):
        if "yy" in fmts.get(int(xf.get("numFmtId", "0")), ""):
            date_styles.add(str(i))
    wb = ET.fromstring(z.read("xl/workbook.xml"))
    rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target") for r in rels}
    rows, header = [], None
    sheets = wb.findall("m:sheets/m:sheet", NS)
    for sh in sheets:
        xml = ET.fromstring(z.read("xl/" + targets[sh.get(R_NS)]))
        srows = []
        for r in xml.findall("m:sheetData/m:row", NS):
            cells = {}
            for c in r.findall("m:c", NS):
                t, s = c.get("t"), c.get("s")
                if t == "inlineStr":
                    v = "".join(x.text or "" for x in c.iter("{%s}t" % NS["m"]))
                    # OOXML escapes control characters as _xHHHH_ (ECMA-376 ST_Xstring).
                    v = re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), v)
                elif t == "b":
                    v = "true" if c.find("m:v", NS).text == "1" else "false"
                else:
                    v = float(c.find("m:v", NS).text)
                    if s in date_styles:
                        d = datetime.datetime(1899, 12, 30) + datetime.timedelta(days=v)
                        ms = round(d.microsecond / 1000)
                        d = d.replace(microsecond=0) + datetime.timedelta(milliseconds=ms)
                        v = d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)
                cells[col_index(c.get("r"))] = v
            width = max(cells) + 1 if cells else 0
            srows.append([cells.get(i) for i in range(width)])
        if header is None:
            header = srows[0]
            rows.append(header)
        assert srows[0] == header, "every sheet starts with the header"
        rows.extend(srows[1:])
    return rows, len(sheets)


def same_cell(fmt, got, want):
    if fmt == "CSV" and want is None:
        want = ""
    if fmt == "XLSX" and want == "" and got is None:  # an empty string cell is a blank cell
        return True
    if isinstance(got, float):
        return want is not None and float(want) == got
    if fmt == "JSON" and isinstance(want, str) and got and want and got[0] in "{[" and want[0] in "{[":
        return canon_json(json.loads(want, parse_float=str, parse_int=str)) == got
    return got == want


def main():
    fmt, path, expected_path = sys.argv[1:4]
    data = open(path, "rb").read()
    if len(sys.argv) > 4 and sys.argv[4] == "gzip":
        data = gzip.decompress(data)
    got, sheets = {"CSV": read_csv, "JSON": read_json, "XLSX": read_xlsx}[fmt](data)
    want = json.load(open(expected_path), parse_float=str, parse_int=str)
    if isinstance(got, dict):
        if canon_json(got) != canon_json(want):
            print("report document differs")
            sys.exit(1)
        print(json.dumps({"rows": 1, "sheets": 1}))
        return
    if fmt == "XLSX":  # trailing empty (NULL) cells are not stored
        got = [r + [None] * (len(want[0]) - len(r)) for r in got]
    if len(got) != len(want):
        print("rows: got %d, want %d" % (len(got), len(want)))
        sys.exit(1)
    for i, (g, w) in enumerate(zip(got, want)):
        if len(g) != len(w) or not all(same_cell(fmt, a, b) for a, b in zip(g, w)):
            print("row %d differs:\n got  %r\n want %r" % (i, g, w))
            sys.exit(1)
    print(json.dumps({"rows": len(got) - 1, "sheets": sheets}))


main()
