#!/bin/sh
# Private PostgreSQL for tests and demos: `pg_harness.sh start DIR` creates a cluster
# in DIR (initdb as the postgres user when run as root; the server refuses root),
# listening only on a Unix socket inside DIR, and prints its URL; `pg_harness.sh stop
# DIR` stops it. Nothing is left outside DIR.
set -eu
cmd=${1:?usage: pg_harness.sh start|stop|resume|url DIR}
dir=${2:?usage: pg_harness.sh start|stop|resume|url DIR}

pgbin=${EVPIPE_PG_BINDIR:-}
if [ -z "$pgbin" ]; then
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && { pgbin=$d; break; }
    done
fi
[ -n "$pgbin" ] || { echo "pg_harness: PostgreSQL server binaries not found (apt-get install postgresql, or make deps)" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() { echo "postgresql://postgres@/postgres?host=$dir/sock&port=5432"; }

# Test servers trade durability for speed; sockets stay inside DIR.
opts="-c listen_addresses='' -c unix_socket_directories='$dir/sock' -c port=5432 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=256MB -c max_wal_size=2GB"

case "$cmd" in
start)
    mkdir -p "$dir/sock"
    [ "$(id -u)" = 0 ] && chown -R postgres "$dir" && chmod 755 "$dir"
    as_owner "$pgbin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "$opts" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    url
    ;;
resume)
    # Start an existing cluster again (after stop), e.g. to test outages.
    as_owner "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$opts" start >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    url
    ;;
stop)
    [ -d "$dir/data" ] && as_owner "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    ;;
url)
    url
    ;;
*)
    echo "usage: pg_harness.sh start|stop|resume|url DIR" >&2
    exit 2
    ;;
esac
