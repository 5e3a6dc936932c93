#!/bin/sh
# `make demo`: the whole pipeline on embedded defaults. Starts a private PostgreSQL
# in ./demo-data (unless DATABASE_URL is set), then `evpipe demo`, which hosts the
# mock Kafka cluster in process, applies the migrations, generates traffic, ingests
# it until caught up and prints what was stored. The database is kept for a look:
#   psql "$(sh tests/pg_harness.sh url demo-data/pg)"
set -eu
BUILD=${BUILD:-build}
dir=${EVPIPE_DEMO_DIR:-$(pwd)/demo-data}
started=
if [ -z "${DATABASE_URL:-}" ]; then
    sh tests/pg_harness.sh stop "$dir/pg" 2>/dev/null || true
    rm -rf "$dir/pg"
    mkdir -p "$dir"
    echo "starting a private PostgreSQL in $dir/pg"
    DATABASE_URL=$(sh tests/pg_harness.sh start "$dir/pg")
    started=1
fi
export DATABASE_URL
rc=0
"$BUILD/evpipe" demo "$@" || rc=$?
if [ -n "$started" ]; then
    if [ -n "${EVPIPE_DEMO_KEEP:-}" ]; then
        echo "PostgreSQL left running: psql \"$DATABASE_URL\"  (stop: sh tests/pg_harness.sh stop $dir/pg)"
    else
        sh tests/pg_harness.sh stop "$dir/pg"
        echo "PostgreSQL stopped; its data stays in $dir/pg (EVPIPE_DEMO_KEEP=1 keeps it running)"
    fi
fi
exit $rc
