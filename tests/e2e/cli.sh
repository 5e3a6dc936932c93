#!/bin/sh
# The binary's surface: --version, --help for every command, usage errors exit 2.
set -u
bin=${EVPIPE_BIN:-build/evpipe}
fail=0
check() { # description, expected exit code, command...
    what=$1 want=$2
    shift 2
    "$@" >/tmp/evpipe_cli_out.$$ 2>&1
    got=$?
    if [ "$got" != "$want" ]; then
        echo "FAIL: $what: exit $got, expected $want" >&2
        sed 's/^/  | /' /tmp/evpipe_cli_out.$$ >&2
        fail=1
    fi
}
version=$(cat VERSION)
[ "$("$bin" --version)" = "evpipe $version" ] || { echo "FAIL: --version" >&2; fail=1; }
check "no command" 2 "$bin"
check "unknown command" 2 "$bin" frobnicate
check "--help" 0 "$bin" --help
for cmd in demo migrate ingest replay loadgen classify-ua reclassify kafka-mock; do
    check "$cmd --help" 0 "$bin" "$cmd" --help
    grep -q "^Usage: evpipe $cmd" /tmp/evpipe_cli_out.$$ || { echo "FAIL: $cmd --help has no usage line" >&2; fail=1; }
    check "$cmd with an unknown option" 2 "$bin" "$cmd" --no-such-option
    grep -q "unknown option --no-such-option" /tmp/evpipe_cli_out.$$ || { echo "FAIL: $cmd does not name the unknown option" >&2; fail=1; }
done
# Every command that talks to Kafka or PostgreSQL documents the shared connection options.
for cmd in ingest replay loadgen; do
    "$bin" "$cmd" --help | grep -q -- "--brokers" || { echo "FAIL: $cmd --help lacks --brokers" >&2; fail=1; }
done
for cmd in ingest migrate demo reclassify; do
    "$bin" "$cmd" --help | grep -q "DATABASE_URL" || { echo "FAIL: $cmd --help lacks DATABASE_URL" >&2; fail=1; }
done
rm -f /tmp/evpipe_cli_out.$$
exit $fail
