#!/bin/sh
# The exports part of `make bench` (called by bench/run.sh, or alone: it then starts a
# private PostgreSQL). A BENCH_EXPORT_ROWS-row (default 2000000) events export in each
# format, its rate against psql's `\copy (SELECT …) TO` of the same rows in the same
# run, and the exporter's peak resident memory. Variables from run.sh: BIN, URL, work.
set -eu
BUILD=${BUILD:-build}
BIN=${BIN:-$BUILD/evpipe}
N=${BENCH_EXPORT_ROWS:-2000000}
own_pg=
if [ -z "${work:-}" ]; then
    work=$(mktemp -d /tmp/evpipe-bench-exp.XXXXXX)
    chmod 755 "$work"
    own_pg=1
    trap 'sh tests/pg_harness.sh stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"' EXIT
    URL=$(sh tests/pg_harness.sh start "$work/pg")
fi
ms_of() { awk '{ printf "%.0f", $1 * 1000 }' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
per_s() { awk -v n="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.0f", n * 1000 / ms; else print 0 }'; }

printf "%s\n" "== exports: $N events in each format (baseline: psql \\copy of the same SELECT)"
psql -X -q "$URL" -c "CREATE DATABASE exports_bench"
XURL=$(echo "$URL" | sed 's|/postgres?|/exports_bench?|')
"$BIN" migrate up --database "$XURL" >/dev/null 2>&1
# Realistic rows: ten events per session, URLs, paths, JSON properties, a few NULLs.
psql -X -q "$XURL" <<SQL
INSERT INTO analytics_sessions (id, "visitorId", "startedAt", "endedAt", duration,
    "pageViewCount", "eventCount", "isBounce", "deviceType")
SELECT md5(s::text)::uuid, 'visitor-' || (s % 50000), '2026-01-01'::timestamptz + s * interval '13 s',
       '2026-01-01'::timestamptz + s * interval '13 s' + interval '5 min', 300, 4, 10, false,
       (ARRAY['DESKTOP','MOBILE','TABLET'])[s % 3 + 1]::"DeviceType"
FROM generate_series(1, ($N + 9) / 10) s;
INSERT INTO analytics_events ("sessionId", "eventId", type, name, "visitorId", url, path,
    properties, "occurredAt", "receivedAt")
SELECT md5(s::text)::uuid, 'evt-' || s || '-' || k,
       (ARRAY['PAGE_VIEW','PRODUCT_VIEW','ADD_TO_CART','CLICK','SCROLL'])[k % 5 + 1]::"EventType",
       CASE WHEN k % 5 = 3 THEN 'cta-' || k END, 'visitor-' || (s % 50000),
       'https://shop.example.com/category/' || (s % 97) || '/item-' || k || '?utm_source=news',
       '/category/' || (s % 97) || '/item-' || k,
       jsonb_build_object('productId', 'SKU-' || (s % 1000), 'price', (s % 500) / 10.0, 'k', k),
       '2026-01-01'::timestamptz + s * interval '13 s' + k * interval '17 s',
       '2026-01-01'::timestamptz + s * interval '13 s' + k * interval '17 s' + interval '40 ms'
FROM generate_series(1, ($N + 9) / 10) s CROSS JOIN generate_series(0, 9) k
LIMIT $N;
VACUUM ANALYZE;
SQL
rows=$(psql -X -At "$XURL" -c "SELECT count(*) FROM analytics_events")
mkdir -p "$work/files"
# Best of two runs each, alternating with the baseline: the machine is shared and noisy.
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }
baseline() {
    /usr/bin/time -f "%e %M" -o "$work/psql.time" psql -X -q "$XURL" -c \
        "\\copy (SELECT * FROM analytics_events ORDER BY \"occurredAt\", id) TO '$work/psql.csv' WITH (FORMAT csv, HEADER)"
    psql_bytes=$(stat -c %s "$work/psql.csv")
    rm -f "$work/psql.csv"
    ms_of "$work/psql.time"
}
export_once() { # format; prints "ms rss_kb"
    psql -X -q "$XURL" -c "DELETE FROM exports" \
        -c "INSERT INTO exports (format, parameters) VALUES ('$1', '{\"dataset\": \"events\"}')"
    /usr/bin/time -f "%e %M" -o "$work/exp.time" "$BIN" exports --database "$XURL" \
        --until-caught-up --metrics-port -1 --upload-url "file://$work/files/" \
        --tmp-dir "$work" 2>"$work/exports.log"
    got=$(psql -X -At "$XURL" -c "SELECT \"rowCount\" || ' rows, ' || (\"fileSize\" / 1000000) || ' MB' FROM exports WHERE status = 'COMPLETED'")
    rm -rf "$work/files/exports"
    echo "$(ms_of "$work/exp.time") $(awk '{ print $2 }' "$work/exp.time") $got"
}
base_ms=$(baseline)
for spec in CSV:0.7 JSON:0.5 XLSX:0.2; do
    fmt=${spec%%:*}; goal=${spec#*:}
    set -- $(export_once "$fmt"); ms1=$1; rss1=$2
    base_ms=$(best "$base_ms" "$(baseline)")
    set -- $(export_once "$fmt"); ms=$(best "$ms1" "$1"); rss=$(best "$rss1" "$2"); shift 2
    r=$(per_s "$rows" "$ms")
    eval "rate_$fmt=$r rss_$fmt=$rss got_$fmt=\"\$*\""
done
base=$(per_s "$rows" "$base_ms")
printf "  %-34s %8s rows/s (baseline)\n" "psql \\copy (SELECT ...) TO (CSV)" "$base"
for spec in CSV:0.7 JSON:0.5 XLSX:0.2; do
    fmt=${spec%%:*}; goal=${spec#*:}
    eval "r=\$rate_$fmt rss=\$rss_$fmt got=\$got_$fmt"
    printf "  %-34s %8s rows/s %6s x baseline (goal >= %s x)  peak RSS %s MB (goal < 50)  %s\n" \
        "evpipe exports $fmt (build + upload)" "$r" "$(ratio "$r" "$base")" "$goal" \
        "$((rss * 1024 / 1000000))" "${got:-NOT COMPLETED}"
done
psql -X -q "$URL" -c "DROP DATABASE exports_bench"
