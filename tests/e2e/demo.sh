#!/bin/sh
# `evpipe demo` runs the whole pipeline (embedded mock Kafka, loadgen, ingest until
# caught up) and its summary tells exactly what the database holds.
set -eu
bin=${EVPIPE_BIN:-build/evpipe}
db=evpipe_e2e_demo_$$
psql -X -q "$EVPIPE_TEST_DATABASE_URL" -c "CREATE DATABASE $db"
url=$(echo "$EVPIPE_TEST_DATABASE_URL" | sed "s|/postgres?|/$db?|")
trap 'psql -X -q "$EVPIPE_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
out=$("$bin" demo --database "$url" --visitors 60 --days 2 --bad-ratio 0.02 2>"${WORK:-/tmp}/demo.err") || {
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
exit $fail
