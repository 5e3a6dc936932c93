#!/bin/sh
# Builds every libFuzzer target fuzz/fuzz_<name>.c with clang (-fsanitize=fuzzer,address,
# undefined) and runs each for FUZZ_SECONDS (default 60) over its corpus: the committed
# seeds in fuzz/corpus/<name> plus tests/data/<name>s when present. New inputs go to
# $BUILD/corpus/<name>, crashes to $BUILD/artifacts/<name>/. A target names the sources
# it links and their pkg-config packages in its header comment:
#   * fuzz-sources: transforms/event.c
#   * fuzz-pkgs: yajl libcurl
# Usage: sh fuzz/run.sh [name...]   (FUZZ_SECONDS, FUZZ_JOBS, FUZZ_MAX_LEN, BUILD)
set -eu
BUILD=${BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-1}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-8192}
CC_FUZZ=${CC_FUZZ:-clang}
FLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I."

command -v "$CC_FUZZ" >/dev/null || { echo "fuzz: $CC_FUZZ not found (clang with libFuzzer is needed)" >&2; exit 1; }
if [ $# -gt 0 ]; then names="$*"; else
    names=$(for f in fuzz/fuzz_*.c; do [ -f "$f" ] && basename "$f" .c | sed 's/^fuzz_//'; done)
fi
[ -n "$names" ] || { echo "fuzz: no targets in fuzz/" >&2; exit 1; }

root=$(pwd)
status=0
for name in $names; do
    src=fuzz/fuzz_$name.c
    [ -f "$src" ] || { echo "fuzz: no $src" >&2; exit 1; }
    sources=$(sed -n 's/^.*fuzz-sources:\([^*]*\).*$/\1/p' "$src" | head -n 1)
    pkgs=$(sed -n 's/^.*fuzz-pkgs:\([^*]*\).*$/\1/p' "$src" | head -n 1)
    bin=$BUILD/fuzz/fuzz_$name
    mkdir -p "$BUILD/fuzz" "$BUILD/corpus/$name" "$BUILD/artifacts/$name"
    echo "fuzz: building $bin from $src $sources"
    # shellcheck disable=SC2086
    $CC_FUZZ $FLAGS $( [ -n "$pkgs" ] && pkg-config --cflags $pkgs ) -o "$bin" "$src" $sources \
        $( [ -n "$pkgs" ] && pkg-config --libs $pkgs ) -lm
    seeds=
    for d in "fuzz/corpus/$name" "tests/data/${name}s/valid" "tests/data/${name}s/invalid"; do
        [ -d "$d" ] && seeds="$seeds $root/$d"
    done
    dict=
    [ -f "fuzz/$name.dict" ] && dict="-dict=$root/fuzz/$name.dict"
    parallel=
    # with -jobs, libFuzzer writes fuzz-<n>.log into the working directory: keep it in $BUILD
    [ "$FUZZ_JOBS" -gt 1 ] && parallel="-jobs=$FUZZ_JOBS -workers=$FUZZ_JOBS"
    echo "fuzz: running $name for ${FUZZ_SECONDS}s (jobs $FUZZ_JOBS, max_len $FUZZ_MAX_LEN)"
    # shellcheck disable=SC2086
    if ! (cd "$BUILD/fuzz" && "$root/$bin" -max_total_time="$FUZZ_SECONDS" -max_len="$FUZZ_MAX_LEN" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 $parallel \
        -artifact_prefix="$root/$BUILD/artifacts/$name/" $dict "$root/$BUILD/corpus/$name" $seeds); then
        echo "fuzz: $name FAILED; reproducer(s) in $BUILD/artifacts/$name/" >&2
        status=1
    fi
done
exit $status
