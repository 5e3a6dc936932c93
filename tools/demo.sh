#!/bin/sh
# `make demo`: the whole pipeline on embedded defaults. Starts a private PostgreSQL in
# a fresh folder under /tmp (the server runs as the postgres user, which must be able
# to enter it: a clone under /root, mode 700, could not host it), unless DATABASE_URL
# is set; then `evpipe demo`, which hosts the mock Kafka cluster in process, applies
# the migrations, generates traffic, runs the stages until caught up, prints what was
# stored and writes demo-overview.html in the current folder. EVPIPE_DEMO_KEEP=1
# leaves the server running for a look; EVPIPE_DEMO_DIR picks its folder.
set -eu
here=$(pwd)
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
bin=$(pwd)/$BUILD/evpipe
started=
dir=
cleanup() {
    if [ -n "$started" ] && [ -z "${EVPIPE_DEMO_KEEP:-}" ]; then
        sh tests/pg_harness.sh stop "$dir/pg" >/dev/null 2>&1 || true
        rm -rf "$dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -z "${DATABASE_URL:-}" ]; then
    dir=${EVPIPE_DEMO_DIR:-$(mktemp -d /tmp/evpipe-demo.XXXXXX)}
    mkdir -p "$dir"
    chmod 755 "$dir"
    sh tests/pg_harness.sh stop "$dir/pg" 2>/dev/null || true
    rm -rf "$dir/pg"
    echo "starting a private PostgreSQL in $dir/pg"
    DATABASE_URL=$(sh tests/pg_harness.sh start "$dir/pg")
    started=1
fi
export DATABASE_URL
rc=0
(cd "$here" && "$bin" demo "$@") || rc=$?
if [ -n "$started" ]; then
    if [ -n "${EVPIPE_DEMO_KEEP:-}" ]; then
        echo "PostgreSQL left running: psql \"$DATABASE_URL\"  (stop: sh tests/pg_harness.sh stop $dir/pg)"
    else
        echo "PostgreSQL stopped and its folder removed (EVPIPE_DEMO_KEEP=1 keeps it running)"
    fi
fi
exit $rc
