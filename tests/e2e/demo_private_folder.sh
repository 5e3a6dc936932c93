#!/bin/sh
# `make demo`'s script works from a copy of the project in a folder only root can
# enter (mode 700, as /root is): its PostgreSQL must not live inside that folder,
# since the server runs as the postgres user. It leaves no server or folder behind.
set -eu
bin=${EVPIPE_BIN:-build/evpipe}
home=$(mktemp -d /tmp/evpipe-home.XXXXXX)
chmod 700 "$home"
trap 'rm -rf "$home"' EXIT
mkdir -p "$home/evpipe/build"
cp -r tools tests "$home/evpipe/"
cp "$bin" "$home/evpipe/build/evpipe"
before=$(ls -d /tmp/evpipe-demo.* 2>/dev/null | wc -l)
cd "$home/evpipe"
out=$(env -u DATABASE_URL sh tools/demo.sh --visitors 30 --days 2 2>"$home/err") || {
    cat "$home/err" >&2
    echo "the demo failed in a mode-700 folder" >&2
    exit 1
}
fail=0
echo "$out" | grep -q "=== evpipe demo: what the pipeline stored ===" || { echo "no summary" >&2; fail=1; }
[ -s "$home/evpipe/demo-overview.html" ] || { echo "no overview written" >&2; fail=1; }
after=$(ls -d /tmp/evpipe-demo.* 2>/dev/null | wc -l)
[ "$after" = "$before" ] || { echo "the demo left its PostgreSQL folder behind" >&2; fail=1; }
exit $fail
