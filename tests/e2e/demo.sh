#!/bin/sh
# `evpipe demo` runs the whole pipeline (embedded mock Kafka, loadgen, ingest until
# caught up) and its summary tells exactly what the database holds.
set -eu
bin=${EVPIPE_BIN:-build/evpipe}
db=evpipe_e2e_demo_$$
psql -X -q "$EVPIPE_TEST_DATABASE_URL" -c "CREATE DATABASE $db"
url=$(echo "$EVPIPE_TEST_DATABASE_URL" | sed "s|/postgres?|/$db?|")
trap 'psql -X -q "$EVPIPE_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
html=${WORK:-/tmp}/demo-overview.html
exdir=${WORK:-/tmp}/demo-exports-$$
out=$("$bin" demo --database "$url" --visitors 60 --days 2 --bad-ratio 0.02 --html "$html" --exports-dir "$exdir" 2>"${WORK:-/tmp}/demo.err") || {
    cat "${WORK:-/tmp}/demo.err" >&2
    echo "demo failed" >&2
    exit 1
}
echo "$out"
fail=0
for table in analytics_sessions analytics_events page_views conversion_events; do
    shown=$(echo "$out" | awk -v t="$table" '$1 == t { print $2 }')
    actual=$(psql -X -At "$url" -c "SELECT count(*) FROM $table")
    if [ "$shown" != "$actual" ]; then
        echo "summary says $table=$shown, database has $actual" >&2
        fail=1
    fi
done
events=$(psql -X -At "$url" -c "SELECT count(*) FROM analytics_events")
raw=$(echo "$out" | awk '$1 == "analytics.events.raw" { print $3 }')
dlq=$(echo "$out" | awk '$1 == "analytics.events.dlq" { print $3 }')
enriched=$(echo "$out" | awk '$1 == "analytics.events.enriched" { print $2 }')
# Every raw message is stored, dead-lettered, or a duplicate of a stored one.
[ "$events" -gt 100 ] || { echo "too few events stored: $events" >&2; fail=1; }
[ "$dlq" -gt 0 ] || { echo "no dead letters although 2% were malformed" >&2; fail=1; }
[ "$enriched" = "$events" ] || { echo "enriched $enriched != stored $events" >&2; fail=1; }
[ $((events + dlq)) -le "$raw" ] || { echo "stored + dead-lettered exceeds produced" >&2; fail=1; }
# Sessions are consistent with their events.
bad=$(psql -X -At "$url" -c 'SELECT count(*) FROM analytics_sessions s WHERE "eventCount" <> (SELECT count(*) FROM analytics_events e WHERE e."sessionId" = s.id)')
[ "$bad" = 0 ] || { echo "$bad sessions whose eventCount disagrees with their events" >&2; fail=1; }
# The daily metric snapshots shown equal the sessions stored per UTC day (BOTs excluded).
days=$(echo "$out" | awk '$1 == "day" { n++ } END { print n + 0 }')
[ "$days" -ge 2 ] || { echo "no daily metric snapshots shown" >&2; fail=1; }
echo "$out" | awk '$1 == "day" { print $2, $3 }' | while read -r day n; do
    actual=$(psql -X -At "$url" -c "SELECT count(*) FROM analytics_sessions WHERE \"deviceType\" <> 'BOT' AND (\"startedAt\" AT TIME ZONE 'UTC')::date = '$day'")
    [ "$n" = "$actual" ] || { echo "summary says $n sessions on $day, database has $actual" >&2; exit 1; }
done || fail=1
# Both funnels are shown step by step, each step reached by at most the previous one's
# visitors; the entrants of the browse funnel are visitors who viewed a product.
steps=$(echo "$out" | grep -c "^  funnel ")
[ "$steps" = 5 ] || { echo "expected 5 funnel steps in the summary, got $steps" >&2; fail=1; }
echo "$out" | awk '/^  funnel / { n = $(NF - 1); if (prev != "" && $0 !~ / 1\. / && n > prev) bad = 1; prev = n } END { exit bad }' ||
    { echo "a funnel step has more visitors than the step before" >&2; fail=1; }
entrants=$(echo "$out" | awk '/funnel Browse to purchase: 1\. PRODUCT_VIEW/ { print $(NF - 1) }')
viewers=$(psql -X -At "$url" -c "SELECT count(DISTINCT e.\"visitorId\") FROM analytics_events e JOIN analytics_sessions s ON s.id = e.\"sessionId\" WHERE e.type = 'PRODUCT_VIEW' AND s.\"deviceType\" <> 'BOT'")
[ -n "$entrants" ] && [ "$entrants" -gt 0 ] && [ "$entrants" -le "$viewers" ] ||
    { echo "browse funnel entrants $entrants vs $viewers product viewers" >&2; fail=1; }
[ "$(grep -c 'data-metric="funnel-step"' "$html")" = 5 ] || { echo "the overview lacks the funnel bars" >&2; fail=1; }
# One report of every type and one export of every format, completed; each file is where
# fileUrl says, with the recorded size and sha256.
n=$(psql -X -At "$url" -c "SELECT count(*) FROM reports WHERE status = 'COMPLETED' AND \"requestedBy\" = 'evpipe demo'")
[ "$n" = 7 ] || { echo "expected 7 completed reports, got $n" >&2; fail=1; }
[ "$(echo "$out" | grep -c '^  demo .* COMPLETED ')" = 7 ] || { echo "the summary lacks the reports" >&2; fail=1; }
psql -X -At -F ' ' "$url" -c "SELECT status, \"fileUrl\", \"fileSize\", checksum, \"rowCount\" FROM exports WHERE \"requestedBy\" = 'evpipe demo'" >"${WORK:-/tmp}/demo-exports.txt"
[ "$(wc -l <"${WORK:-/tmp}/demo-exports.txt")" = 4 ] || { echo "expected 4 demo exports" >&2; fail=1; }
while read -r st furl size sum rows; do
    f=${furl#file://}
    [ "$st" = COMPLETED ] || { echo "export $furl is $st" >&2; fail=1; continue; }
    [ "$(stat -c %s "$f")" = "$size" ] || { echo "$f: size differs from fileSize $size" >&2; fail=1; }
    [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$sum" ] || { echo "$f: sha256 differs" >&2; fail=1; }
    echo "$out" | grep -q "COMPLETED  *$rows  *$size .*$furl" || { echo "the summary lacks $furl" >&2; fail=1; }
done <"${WORK:-/tmp}/demo-exports.txt"
events_csv=$(psql -X -At "$url" -c "SELECT \"fileUrl\" FROM exports WHERE \"requestedBy\" = 'evpipe demo' AND format = 'CSV'")
in_range=$(psql -X -At "$url" -c "SELECT count(*) FROM analytics_events e, exports x WHERE x.\"requestedBy\" = 'evpipe demo' AND x.format = 'CSV' AND e.\"occurredAt\" >= (x.parameters->>'from')::timestamptz AND e.\"occurredAt\" < (x.parameters->>'to')::timestamptz")
[ "$(zcat "${events_csv#file://}" | /usr/bin/python3 -c 'import csv, sys; print(sum(1 for _ in csv.reader(sys.stdin)) - 1)')" = "$in_range" ] ||
    { echo "the events CSV does not hold the $in_range events of its range" >&2; fail=1; }
rm -rf "$exdir"
# The overview's bars carry the numbers of the database they were drawn from.
echo "$out" | grep -q "Overview (open in a browser; works offline): .*demo-overview.html" ||
    { echo "the summary does not name the overview" >&2; fail=1; }
bars() { grep -o "data-metric=\"$1\"[^>]*data-value=\"[^\"]*\"" "$html" | sed 's/.*data-value="\([^"]*\)"/\1/' | awk '{ s += $1 } END { printf "%.2f", s }'; }
want=$(psql -X -At "$url" -c "SELECT to_char(count(*), 'FM999999990.00') FROM analytics_sessions WHERE \"deviceType\" <> 'BOT'")
[ "$(bars sessions)" = "$want" ] || { echo "overview sessions $(bars sessions) != $want" >&2; fail=1; }
want=$(psql -X -At "$url" -c "SELECT to_char(coalesce(sum(c.value), 0), 'FM999999990.00') FROM conversion_events c JOIN analytics_sessions s ON s.id = c.\"sessionId\" WHERE s.\"deviceType\" <> 'BOT' AND c.currency IS NOT NULL")
[ "$(bars revenue)" = "$want" ] || { echo "overview revenue $(bars revenue) != $want" >&2; fail=1; }
want=$(psql -X -At "$url" -c "SELECT to_char(sum(n), 'FM999999990.00') FROM (SELECT count(*) n FROM page_views GROUP BY path ORDER BY 1 DESC LIMIT 10) t")
[ "$(bars pageviews)" = "$want" ] || { echo "overview top pages $(bars pageviews) != $want" >&2; fail=1; }
if grep -Eq '<script|src="http|href="http|@import|url\(' "$html"; then
    echo "the overview loads something from elsewhere" >&2; fail=1
fi
# It renders in a real browser: a screenshot, the charts in the DOM, no console error.
chrome=$(command -v chromium || true)
if [ -n "$chrome" ]; then
    prof=$(mktemp -d /tmp/evpipe-chromium.XXXXXX)
    flags="--headless --no-sandbox --disable-gpu --disable-background-networking --user-data-dir=$prof"
    timeout 120 "$chrome" $flags --window-size=900,1400 --screenshot="$prof/shot.png" \
        --enable-logging=stderr --v=0 "file://$html" >/dev/null 2>"$prof/log" || true
    size=$(stat -c %s "$prof/shot.png" 2>/dev/null || echo 0)
    [ "$size" -gt 10000 ] || { echo "no screenshot of the overview (size $size)" >&2; fail=1; }
    if grep -E 'CONSOLE|Uncaught' "$prof/log" >&2; then echo "console errors in the overview" >&2; fail=1; fi
    timeout 120 "$chrome" $flags --dump-dom "file://$html" 2>/dev/null >"$prof/dom.html" || true
    charts=$(grep -o '<svg class="chart"' "$prof/dom.html" | wc -l)
    [ "$charts" -ge 3 ] || { echo "the rendered overview has $charts charts" >&2; fail=1; }
    rm -rf "$prof"
else
    echo "chromium is not installed (make deps installs it): rendering not checked" >&2
    fail=1
fi
exit $fail
