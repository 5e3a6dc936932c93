#!/bin/sh
# Ingest against its peers, in the same run as section 3 of bench/run.sh (which sets
# the variables below and has ingested topic "raw" once with `--stats-interval 5`):
# steady and wall rates against the single-stream COPY of the same rows, wall against
# the consumer a team would write in an afternoon (bench/peer_consumer.py), CPU per
# event, two ingest instances in one group against one, and one process with two
# pipelines (--writers 2) against one.
#   BIN URL B work   as in bench/run.sh      lines      messages in topic "raw"
#   ingest_ms copy_ms   section 3's ingest and COPY times; $work/ingest.log, ingest.time
set -eu
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
per_s() { awk -v n="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.0f", n * 1000 / ms; else print 0 }'; }
now_ms() { date +%s%3N; }
db_url() { echo "$URL" | sed "s|/postgres?|/$1?|"; }
new_db() {
    psql -X -q "$URL" -c "CREATE DATABASE $1"
    "$BIN" migrate up --database "$(db_url "$1")" >/dev/null 2>&1
}
# Steady: between the first stats line that counts messages (the group join is over)
# and the one before the final line (the last drain left out); RFC 3339 timestamps.
steady=$(awk '/ingest: consumed/ {
        split($1, a, "T"); split(a[2], b, ":"); t = b[1] * 3600 + b[2] * 60 + b[3]
        for (i = 1; i <= NF; i++) if ($i == "consumed") n = $(i + 1)
        if (n > 0) { k++; T[k] = t; N[k] = n } }
    END { e = k >= 3 ? k - 1 : k
          if (k >= 2 && T[e] > T[1]) printf "%.0f", (N[e] - N[1]) / (T[e] - T[1]); else print 0 }' \
    "$work/ingest.log")
wall=$(per_s "$lines" "$ingest_ms")
copy=$(per_s "$lines" "$copy_ms")
cpu_us=$(awk -v n="$lines" '{ printf "%.1f", ($1 + $2) * 1e6 / n }' "$work/ingest.time")
rss_kb=$(awk '{ print $3 }' "$work/ingest.time")

new_db peer
t0=$(now_ms)
/usr/bin/time -o "$work/peer.time" -f "%U %S %M" \
    /usr/bin/python3 bench/peer_consumer.py "$B" raw "bench-peer-$$" "$(db_url peer)" "$lines"
peer_ms=$(( $(now_ms) - t0 ))
peer=$(per_s "$lines" "$peer_ms")
peer_cpu_us=$(awk -v n="$lines" '{ printf "%.1f", ($1 + $2) * 1e6 / n }' "$work/peer.time")
peer_stored=$(psql -X -At "$(db_url peer)" -c "SELECT count(*) FROM analytics_events")

echo "  ingest steady                      $steady events/s   $(ratio "$steady" "$copy") x the COPY   (goal >= 1.0 x)"
echo "  ingest wall                        $wall events/s   $(ratio "$wall" "$copy") x the COPY"
echo "  ingest CPU                         $cpu_us us per event; peak RSS $((rss_kb / 1024)) MiB"
echo "  peer consumer (python, at-least-once, arrival-order sessions)"
echo "                                     $peer events/s, $peer_cpu_us us per event; stored $peer_stored"
echo "  ingest wall / peer                 $(ratio "$wall" "$peer") x   (goal >= 4 x)"

new_db two
t0=$(now_ms)
for i in 1 2; do
    "$BIN" ingest --brokers "$B" --database "$(db_url two)" --topic raw --group "bench-two-$$" \
        --group-instance-id "bench-two-$i" --until-caught-up --metrics-port -1 \
        --stats-interval 3600 2>"$work/ingest-two-$i.log" &
done
wait
two_ms=$(( $(now_ms) - t0 ))
two_stored=$(psql -X -At "$(db_url two)" -c "SELECT count(*) FROM analytics_events")
one_stored=$(psql -X -At "$(db_url ingest)" -c "SELECT count(*) FROM analytics_events")
two=$(per_s "$lines" "$two_ms")
shares=$(for i in 1 2; do grep -E "visitors held" "$work/ingest-two-$i.log" | tail -n 1 |
    sed -n 's/.*consumed \([0-9]*\).*/\1/p'; done | paste -sd/ -)
echo "  two ingest instances in one group  $two events/s   $(ratio "$two" "$wall") x one instance (consumed $shares; stored $two_stored, one instance stored $one_stored)"

new_db writers
t0=$(now_ms)
"$BIN" ingest --brokers "$B" --database "$(db_url writers)" --topic raw --group "bench-writers-$$" \
    --writers 2 --until-caught-up --metrics-port -1 --stats-interval 3600 \
    2>"$work/ingest-writers.log"
writers_ms=$(( $(now_ms) - t0 ))
writers_stored=$(psql -X -At "$(db_url writers)" -c "SELECT count(*) FROM analytics_events")
writers=$(per_s "$lines" "$writers_ms")
echo "  ingest --writers 2 (one process)   $writers events/s   $(ratio "$writers" "$wall") x one pipeline, $(ratio "$writers" "$copy") x the COPY, $(ratio "$writers" "$peer") x peer (stored $writers_stored)"
