#!/bin/sh
# The downstream stages' part of `make bench` (called by bench/run.sh, which sets the
# variables below): each figure is a ratio to a baseline measured in the same run.
#   BIN   the evpipe binary          URL   superuser URL of the bench server
#   IURL  a database holding the ingested stream, its marks not yet absorbed
#   B     bootstrap servers of the bench's mock cluster     work  a scratch folder
# BENCH_DOWNSTREAM_EVENTS sizes the ingest-with-stages comparison (default 200000).
set -eu
N_WITH=${BENCH_DOWNSTREAM_EVENTS:-200000}
now_ms() { date +%s%3N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
per_s() { awk -v n="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.0f", n * 1000 / ms; else print 0 }'; }
db_url() { echo "$URL" | sed "s|/postgres?|/$1?|"; }
new_db() {
    psql -X -q "$URL" -c "CREATE DATABASE $1"
    "$BIN" migrate up --database "$(db_url "$1")" >/dev/null 2>&1
}
expected_sql() { sed 's/:BOTS/true/' tests/integration/metrics_expected.sql; }
metrics() { "$BIN" metrics --database "$1" --until-caught-up --metrics-port -1 --debounce-ms 0 \
    --stats-interval 3600 2>>"$work/metrics.log"; }
funnels() { "$BIN" funnels --database "$1" --until-caught-up --metrics-port -1 --debounce-ms 0 \
    --stats-interval 3600 2>>"$work/funnels.log"; }
define_funnel() { psql -X -q "$1" -c "INSERT INTO funnels (name, steps, \"conversionWindowSeconds\")
    VALUES ('bench', '[{\"type\":\"PRODUCT_VIEW\"},{\"type\":\"ADD_TO_CART\"},{\"type\":\"PURCHASE\"}]', 86400)"; }
ingest_runs=0
ingest() { # database topic; a new group each time, so no join waits for an old member
    ingest_runs=$((ingest_runs + 1))
    "$BIN" ingest --brokers "$B" --database "$1" --topic "$2" --group "bench-$ingest_runs" \
        --until-caught-up \
        --metrics-port -1 --stats-interval 3600 --enriched-topic '' 2>>"$work/ingest2.log"
}

stored=$(psql -X -At "$IURL" -c "SELECT count(*) FROM analytics_events")
echo "== 5. metrics on $stored stored events (baseline: one plain SQL full recomputation)"
t0=$(now_ms)
{ echo "CREATE TABLE bench_full_recompute AS"; expected_sql; echo "SELECT * FROM expected;"; } |
    psql -X -q "$IURL"
full_ms=$(( $(now_ms) - t0 ))
t0=$(now_ms)
metrics "$IURL"
catchup_ms=$(( $(now_ms) - t0 ))
rows=$(psql -X -At "$IURL" -c "SELECT count(*) FROM metric_snapshots")
diff=$(psql -X -At "$IURL" -c "SELECT count(*) FROM bench_full_recompute x FULL JOIN metric_snapshots m
    ON m.\"metricKey\" = x.key AND m.period::text = x.period AND m.\"periodStart\" = x.ps
    WHERE m.id IS NULL OR x.key IS NULL OR m.\"sampleCount\" <> x.n
       OR abs(m.value - x.value) > 1e-9 * greatest(1, abs(x.value))")
echo "  plain SQL full recomputation       $full_ms ms (baseline)"
echo "  evpipe metrics catch-up from empty $catchup_ms ms   $(ratio "$catchup_ms" "$full_ms") x baseline   (goal <= 1.5 x)"
echo "  $rows snapshots; rows differing from the plain SQL: $diff"

echo
echo "== 5b. funnels on $stored stored events: one 3-step funnel, 1-day window (baseline: plain SQL)"
define_funnel "$IURL"
t0=$(now_ms)
psql -X -q -v WINDOW=86400 -f bench/funnels_expected.sql "$IURL"
ffull_ms=$(( $(now_ms) - t0 ))
t0=$(now_ms)
funnels "$IURL"
fcatchup_ms=$(( $(now_ms) - t0 ))
frows=$(psql -X -At "$IURL" -c "SELECT count(*) FROM funnel_results")
fdiff=$(psql -X -At "$IURL" -c "WITH m AS (
        SELECT r.period::text AS period, r.\"periodStart\" AS ps,
               (r.\"stepResults\"->0->>'count')::bigint AS c1, (r.\"stepResults\"->1->>'count')::bigint AS c2,
               (r.\"stepResults\"->2->>'count')::bigint AS c3,
               (r.\"stepResults\"->1->>'medianSecondsFromPrev')::float8 AS m2,
               (r.\"stepResults\"->2->>'medianSecondsFromPrev')::float8 AS m3 FROM funnel_results r)
    SELECT count(*) FROM bench_funnel_full x FULL JOIN m USING (period, ps)
    WHERE x.c1 IS DISTINCT FROM m.c1 OR x.c2 IS DISTINCT FROM m.c2 OR x.c3 IS DISTINCT FROM m.c3
       OR abs(coalesce(x.m2, -1) - coalesce(m.m2, -1)) > 1e-6 OR abs(coalesce(x.m3, -1) - coalesce(m.m3, -1)) > 1e-6")
echo "  plain SQL full recomputation       $ffull_ms ms (baseline)"
echo "  evpipe funnels catch-up from empty $fcatchup_ms ms   $(ratio "$fcatchup_ms" "$ffull_ms") x baseline   (goal <= 1.5 x)"
echo "  $frows results; rows differing from the plain SQL: $fdiff"

echo
echo "== 6. metrics and funnels absorbing a 10000-event batch (median of 3): 100000 vs $stored events of history"
new_db hist_small
SURL=$(db_url hist_small)
"$BIN" loadgen --seed 5 --visitors 10000 --days 7 --events 100000 --output "$work/small.ndjson" 2>/dev/null
for b in 1 2 3; do
    "$BIN" loadgen --seed $((5 + b)) --visitors 1000 --days 1 --start 2026-01-1$((1 + b))T00:00:00Z \
        --events 10000 --output "$work/batch$b.ndjson" 2>/dev/null
    "$BIN" replay --brokers "$B" --topic "batch$b" "$work/batch$b.ndjson" 2>/dev/null
done
"$BIN" replay --brokers "$B" --topic small "$work/small.ndjson" 2>/dev/null
ingest "$SURL" small
metrics "$SURL"
define_funnel "$SURL"
funnels "$SURL"
# Three batches, each ingested into both databases and absorbed there; the median of
# the three absorptions per database (one run is too noisy on a shared machine).
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
small_t= big_t= fsmall_t= fbig_t=
for b in 1 2 3; do
    for db in "$SURL" "$IURL"; do ingest "$db" "batch$b"; done
    t0=$(now_ms); metrics "$SURL"; small_t="$small_t $(( $(now_ms) - t0 ))"
    t0=$(now_ms); metrics "$IURL"; big_t="$big_t $(( $(now_ms) - t0 ))"
    t0=$(now_ms); funnels "$SURL"; fsmall_t="$fsmall_t $(( $(now_ms) - t0 ))"
    t0=$(now_ms); funnels "$IURL"; fbig_t="$fbig_t $(( $(now_ms) - t0 ))"
done
small_ms=$(median3 $small_t); big_ms=$(median3 $big_t)
fsmall_ms=$(median3 $fsmall_t); fbig_ms=$(median3 $fbig_t)
echo "  metrics, 100000 events of history  $small_ms ms (baseline; runs:$small_t)"
echo "  metrics, $stored events of history $big_ms ms   $(ratio "$big_ms" "$small_ms") x baseline   (goal <= 1.5 x: flat in history; runs:$big_t)"
echo "  funnels, 100000 events of history  $fsmall_ms ms (baseline; runs:$fsmall_t)"
echo "  funnels, $stored events of history $fbig_ms ms   $(ratio "$fbig_ms" "$fsmall_ms") x baseline   (goal <= 1.5 x: flat in history; runs:$fbig_t)"

echo
echo "== 7. ingest of $N_WITH events with the downstream stages running (baseline: ingest alone)"
"$BIN" loadgen --seed 8 --visitors $((N_WITH / 10)) --days 7 --events "$N_WITH" \
    --output "$work/with.ndjson" 2>/dev/null
"$BIN" replay --brokers "$B" --topic with "$work/with.ndjson" 2>/dev/null
new_db alone
new_db with_stages
t0=$(now_ms); ingest "$(db_url alone)" with; alone_ms=$(( $(now_ms) - t0 ))
WURL=$(db_url with_stages)
"$BIN" metrics --database "$WURL" --metrics-port -1 2>>"$work/metrics.log" &
spid=$!
fpid=
if "$BIN" funnels --help >/dev/null 2>&1; then
    "$BIN" funnels --database "$WURL" --metrics-port -1 2>>"$work/funnels.log" &
    fpid=$!
fi
t0=$(now_ms); ingest "$WURL" with; with_ms=$(( $(now_ms) - t0 ))
kill "$spid" $fpid 2>/dev/null; wait "$spid" $fpid 2>/dev/null || true
ar=$(per_s "$N_WITH" "$alone_ms"); wr=$(per_s "$N_WITH" "$with_ms")
echo "  ingest alone                       $ar events/s (baseline)"
echo "  ingest with the stages running     $wr events/s   $(ratio "$wr" "$ar") x baseline   (goal >= 0.8 x)"
