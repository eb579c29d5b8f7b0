#!/usr/bin/env bash
# Crash safety: start rstscope on an archive and SIGKILL it at random moments, TRIALS times.
# After every kill no log may exist under a final name unless it is complete (same bytes as a
# clean run), and the next run must complete and give the clean run's bytes.
#
# Usage: bash scripts/kill-test.sh [TRIALS]     (default 20; builds target/release/rstscope)
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-20}
cargo build -q --release -p rstscope -p rstscope-gen
BIN=${CARGO_TARGET_DIR:-target}/release/rstscope
GEN=${CARGO_TARGET_DIR:-target}/release/rstscope-gen
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$GEN" bench "$WORK/archive" --bytes 300MiB --files 6 2>/dev/null
"$BIN" -q -o "$WORK/clean" "$WORK/archive"
want=$(sha256sum <"$WORK/clean/reset.log")
fail=0
for t in $(seq 1 "$TRIALS"); do
    out="$WORK/run-$t"
    mkdir -p "$out"
    # a previous complete log must survive a killed re-run untouched
    [ $((t % 2)) -eq 0 ] && cp "$WORK/clean/reset.log" "$out/reset.log"
    "$BIN" -q -o "$out" "$WORK/archive" &
    pid=$!
    sleep "0.$(( (RANDOM % 90) + 5 ))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ -e "$out/reset.log" ] && [ "$(sha256sum <"$out/reset.log")" != "$want" ]; then
        echo "trial $t: a partial reset.log was left under its final name"; fail=1
    fi
    "$BIN" -q -o "$out" "$WORK/archive"
    if [ "$(sha256sum <"$out/reset.log")" != "$want" ]; then
        echo "trial $t: the re-run did not give the clean bytes"; fail=1
    fi
    leftovers=$(find "$out" -name '.*.tmp-*' | wc -l)
    echo "trial $t: killed, re-run complete ($leftovers temporary files left by the killed run)"
done
[ "$fail" -eq 0 ] && echo "kill-test: $TRIALS passed, 0 failed" || { echo "kill-test: FAILED"; exit 1; }
