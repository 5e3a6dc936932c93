#!/bin/sh
# `make bench`: throughput of the transforms, replay and ingest, each printed with its
# ratio to a baseline measured in the same run on the same data (the machine is shared
# and noisy: absolute numbers drift, ratios much less). Sizes can be lowered for a
# quick look: BENCH_EVENTS (ingest, default 1000000), BENCH_TRANSFORM_EVENTS (200000),
# BENCH_EXPORT_ROWS (exports, default 2000000).
set -eu
BUILD=${BUILD:-build}
BIN=$BUILD/evpipe
N_INGEST=${BENCH_EVENTS:-1000000}
N_TRANSFORM=${BENCH_TRANSFORM_EVENTS:-200000}
work=$(mktemp -d /tmp/evpipe-bench.XXXXXX)
chmod 755 "$work" # the PostgreSQL server runs as postgres
mock_pid=
cleanup() {
    [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null
    sh tests/pg_harness.sh stop "$work/pg" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
per_s() { awk -v n="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.0f", n * 1000 / ms; else print 0 }'; }

echo "== 1. transforms (one core)"
# ~25 events per visitor over a week: about 200 distinct user agents per 10k events.
"$BIN" loadgen --seed 3 --visitors $((N_TRANSFORM / 25)) --days 7 --events "$N_TRANSFORM" \
    --output "$work/transform.ndjson" 2>/dev/null
"$BUILD/bench/bench_transforms" "$work/transform.ndjson"
echo
echo "== 1b. device classification: held-out agreement, cold and cached rates"
"$BUILD/bench/bench_device" tests/data/ua/heldout.tsv tests/data/ua/labelled.tsv
if command -v perf >/dev/null 2>&1 && perf stat -e instructions true 2>&1 | grep -q "[0-9] *instructions"; then
    BENCH_ALL_ONLY=1 perf stat -e instructions -o "$work/perf.txt" \
        "$BUILD/bench/bench_transforms" "$work/transform.ndjson" >/dev/null
    grep -E "instructions" "$work/perf.txt" | sed 's/^/  perf (whole run, three together only): /'
elif command -v valgrind >/dev/null 2>&1; then
    # Instruction counts are stable on a noisy machine: count the three together on a
    # 20000-message sample, regex compilation excluded.
    head -n 20000 "$work/transform.ndjson" >"$work/sample.ndjson"
    BENCH_ALL_ONLY=1 valgrind --tool=callgrind --toggle-collect=run_all_three \
        --callgrind-out-file="$work/cg.out" "$BUILD/bench/bench_transforms" \
        "$work/sample.ndjson" >/dev/null 2>&1
    ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$work/cg.out")
    echo "  instructions (callgrind): $(awk -v i="$ir" 'BEGIN { printf "%.0f", i / 20000 }') per message, parse + enrich + sessionize"
else
    echo "  (neither perf stat nor valgrind here: no instruction counts)"
fi

echo
echo "== 2. replay to the mock cluster (baseline: kcat producing the same lines)"
"$BIN" kafka-mock --brokers 3 --topic bench=64 --topic kcat=64 --topic raw=64 \
    --topic small=16 --topic batch1=8 --topic batch2=8 --topic batch3=8 --topic with=32 \
    --bootstrap-file "$work/brokers" >/dev/null 2>"$work/mock.log" &
mock_pid=$!
i=0; while [ ! -s "$work/brokers" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
B=$(cat "$work/brokers")
"$BIN" loadgen --seed 5 --visitors $((N_INGEST / 10)) --days 7 --events "$N_INGEST" \
    --output "$work/events.ndjson" 2>/dev/null
lines=$(wc -l <"$work/events.ndjson")
t0=$(now_ms)
kcat -P -b "$B" -t kcat -z lz4 -X linger.ms=50 -X batch.size=1000000 -l "$work/events.ndjson"
kcat_ms=$(( $(now_ms) - t0 ))
t0=$(now_ms)
"$BIN" replay --brokers "$B" --topic bench --send-invalid "$work/events.ndjson" 2>"$work/replay.log"
replay_ms=$(( $(now_ms) - t0 ))
kr=$(per_s "$lines" "$kcat_ms"); rr=$(per_s "$lines" "$replay_ms")
echo "  kcat -P (baseline, unkeyed)        $kr events/s"
echo "  evpipe replay (keyed, idempotent)  $rr events/s   $(ratio "$rr" "$kr") x baseline   (goal >= 300000/s)"

echo
echo "== 3. ingest of $lines pre-loaded events into PostgreSQL (baseline: psql \\copy of the same rows)"
"$BIN" replay --brokers "$B" --topic raw --send-invalid "$work/events.ndjson" 2>/dev/null
URL=$(sh tests/pg_harness.sh start "$work/pg")
psql -X -q "$URL" -c "CREATE DATABASE ingest" -c "CREATE DATABASE copyload"
IURL=$(echo "$URL" | sed 's|/postgres?|/ingest?|')
CURL=$(echo "$URL" | sed 's|/postgres?|/copyload?|')
"$BIN" migrate up --database "$IURL" >/dev/null 2>&1
"$BIN" migrate up --database "$CURL" >/dev/null 2>&1
t0=$(now_ms)
/usr/bin/time -o "$work/ingest.time" -f "%U %S %M" \
    "$BIN" ingest --brokers "$B" --database "$IURL" --topic raw --until-caught-up \
    --metrics-port -1 --stats-interval 5 2>"$work/ingest.log"
ingest_ms=$(( $(now_ms) - t0 ))
peak=$(awk '{ print $3 }' "$work/ingest.time")
stored=$(psql -X -At "$IURL" -c "SELECT count(*) FROM analytics_events")
# Baseline: the database's own limit for these rows, loaded with COPY into empty tables.
for t in analytics_sessions analytics_events page_views conversion_events; do
    psql -X -q "$IURL" -c "\\copy $t TO '$work/$t.copy'"
done
t0=$(now_ms)
psql -X -q "$CURL" -c "BEGIN" -c "\\copy analytics_sessions FROM '$work/analytics_sessions.copy'" \
    -c "\\copy analytics_events FROM '$work/analytics_events.copy'" \
    -c "\\copy page_views FROM '$work/page_views.copy'" \
    -c "\\copy conversion_events FROM '$work/conversion_events.copy'" -c "COMMIT"
copy_ms=$(( $(now_ms) - t0 ))
ir=$(per_s "$lines" "$ingest_ms"); cr=$(per_s "$lines" "$copy_ms")
echo "  psql COPY of the resulting rows    $cr events/s (baseline)"
echo "  evpipe ingest --until-caught-up    $ir events/s   $(ratio "$ir" "$cr") x baseline   (goals: >= 0.6 x, >= 50000/s)"
echo "  stored $stored events; peak RSS $((peak / 1024)) MiB"
grep -E "visitors held" "$work/ingest.log" | tail -n 1 | sed 's/^/  /'
BIN=$BIN URL=$URL B=$B work=$work lines=$lines ingest_ms=$ingest_ms copy_ms=$copy_ms \
    sh bench/ingest_peers.sh

echo
BIN=$BIN URL=$URL IURL=$IURL B=$B work=$work sh bench/downstream.sh

echo
echo "== 4. memory with 100000 visitors active at once (default settings)"
# A one-hour burst: every visitor arrives within the hour, so all of them have an open
# session at the end of the stream and none may be evicted.
"$BIN" kafka-mock --brokers 1 --topic burst=96 --bootstrap-file "$work/brokers2" >/dev/null 2>&1 &
mpid2=$!
i=0; while [ ! -s "$work/brokers2" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
B2=$(cat "$work/brokers2")
"$BIN" loadgen --seed 9 --visitors 100000 --hours 1 --output "$work/burst.ndjson" 2>/dev/null
burst_lines=$(wc -l <"$work/burst.ndjson")
"$BIN" replay --brokers "$B2" --topic burst "$work/burst.ndjson" 2>/dev/null
psql -X -q "$URL" -c "CREATE DATABASE mem"
MURL=$(echo "$URL" | sed 's|/postgres?|/mem?|')
"$BIN" migrate up --database "$MURL" >/dev/null 2>&1
"$BIN" ingest --brokers "$B2" --database "$MURL" --topic burst --until-caught-up \
    --metrics-port -1 --stats-interval 3600 2>"$work/mem.log" &
ipid=$!
peak=0
while kill -0 "$ipid" 2>/dev/null; do
    rss=$(awk '/VmRSS/ { print $2 }' /proc/$ipid/status 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    sleep 0.5
done
wait "$ipid"
kill "$mpid2" 2>/dev/null; wait "$mpid2" 2>/dev/null || true
stored=$(psql -X -At "$MURL" -c "SELECT count(*) FROM analytics_events")
held=$(sed -n 's/.*visitors held \([0-9]*\).*/\1/p' "$work/mem.log" | tail -n 1)
echo "  $stored of $burst_lines events stored; $held visitors held at the end (of 100000)"
echo "  peak RSS $((peak / 1024)) MiB = $((peak * 1024 / 1000000)) MB (goal < 200 MB)"

echo
BIN=$BIN URL=$URL work=$work sh bench/exports.sh
