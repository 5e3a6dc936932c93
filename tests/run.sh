#!/bin/sh
# Runs every test suite against a private PostgreSQL and a mock Kafka cluster
# (`evpipe kafka-mock`), and always tears both down (also on failure or Ctrl-C).
# Point the tests at real services instead with EVPIPE_TEST_DATABASE_URL (a
# superuser URL; tests create and drop their own databases) and EVPIPE_TEST_BROKERS.
set -u
BUILD=${BUILD:-build}
EVPIPE_BIN=${EVPIPE_BIN:-$BUILD/evpipe}
export EVPIPE_BIN
work=$(mktemp -d /tmp/evpipe-test.XXXXXX)
chmod 755 "$work" # the server runs as the postgres user and must reach its folder
mock_pid=
pg_started=

cleanup() {
    [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null
    [ -n "$pg_started" ] && sh tests/pg_harness.sh stop "$work/pg"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${EVPIPE_TEST_UNIT_ONLY:-}" ]; then
    if [ -z "${EVPIPE_TEST_DATABASE_URL:-}" ]; then
        EVPIPE_TEST_DATABASE_URL=$(sh tests/pg_harness.sh start "$work/pg") || exit 1
        pg_started=1
    fi
    if [ -z "${EVPIPE_TEST_BROKERS:-}" ]; then
        "$EVPIPE_BIN" kafka-mock --brokers 3 --partitions 6 --bootstrap-file "$work/brokers" \
            >/dev/null 2>"$work/kafka-mock.log" &
        mock_pid=$!
        i=0
        while [ ! -s "$work/brokers" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        [ -s "$work/brokers" ] || { echo "kafka-mock did not start:" >&2; cat "$work/kafka-mock.log" >&2; exit 1; }
        EVPIPE_TEST_BROKERS=$(cat "$work/brokers")
    fi
    export EVPIPE_TEST_DATABASE_URL EVPIPE_TEST_BROKERS
    echo "test services: PostgreSQL $EVPIPE_TEST_DATABASE_URL, Kafka $EVPIPE_TEST_BROKERS"
fi

passed=0
failed=0
failed_names=
for t in "$BUILD"/tests/unit/test_* "$BUILD"/tests/integration/test_*; do
    [ -x "$t" ] || continue
    case "$t" in */integration/*) [ -n "${EVPIPE_TEST_UNIT_ONLY:-}" ] && continue ;; esac
    echo "== $t"
    out="$work/$(basename "$t").out"
    CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-300} "$t" >"$out" 2>&1
    rc=$?
    cat "$out"
    line=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$out" | tail -n 1)
    if [ -n "$line" ]; then
        n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
        f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+), Errors: ([0-9]+).*/\1+\2/')
        f=$(( $f ))
        passed=$((passed + n - f))
        failed=$((failed + f))
        [ "$f" -gt 0 ] && failed_names="$failed_names $(basename "$t")"
    fi
    if [ $rc -ne 0 ] && { [ -z "$line" ] || [ "$f" -eq 0 ]; }; then
        failed=$((failed + 1))
        failed_names="$failed_names $(basename "$t")(exit $rc)"
    fi
done
if [ -z "${EVPIPE_TEST_UNIT_ONLY:-}" ]; then
    for t in tests/e2e/*.sh; do
        [ -f "$t" ] || continue
        echo "== $t"
        if WORK="$work" sh "$t"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            failed_names="$failed_names $(basename "$t")"
        fi
    done
fi
echo
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
