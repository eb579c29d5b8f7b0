#!/usr/bin/env bash
# Crash safety: start rstscope on an archive and SIGKILL it at random moments, TRIALS times.
# After every kill no log may exist under a final name unless it is complete (same bytes as a
# clean run), and the next run must complete and give the clean run's bytes.
#
# Then the same for nightly runs with --state (see the end): whatever runs are killed, every
# row is delivered exactly once.
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
[ "$fail" -eq 0 ] && echo "kill-test: $TRIALS passed, 0 failed" || echo "kill-test: $TRIALS trials, FAILED"

# Nightly runs with --state, killed at random moments: one sensor's capture cut into rotated
# files delivered one per run (the last with --finish); a run may be SIGKILLed and is then run
# again. Whatever the kills, the rows of all delivered logs must be exactly those of one clean
# run over all the files: nothing lost, nothing delivered twice.
"$GEN" bench "$WORK/one" --bytes 60MiB --files 1 2>/dev/null
mkdir -p "$WORK/pieces"
python3 scripts/cut-pcap.py "$WORK/one/bench-000.pcap" "$WORK/pieces" 6
touch -m -d '10 minutes ago' "$WORK/pieces"/*.pcap
mkdir -p "$WORK/all" && cp -p "$WORK/pieces"/*.pcap "$WORK/all/"
"$BIN" -q -o "$WORK/clean-stream" "$WORK/all"
grep -v '^#' "$WORK/clean-stream/reset.log" | sort >"$WORK/want-rows"
STATE_TRIALS=$(((TRIALS + 1) / 2))
kills=0
for t in $(seq 1 "$STATE_TRIALS"); do
    d="$WORK/stream-$t"
    mkdir -p "$d/arch"
    for p in "$WORK/pieces"/*.pcap; do
        cp -p "$p" "$d/arch/"
        finish=()
        [ "$p" = "$(ls "$WORK/pieces"/*.pcap | tail -1)" ] && finish=(--finish)
        if [ $((RANDOM % 2)) -eq 0 ]; then
            "$BIN" -q "${finish[@]}" --state "$d/state.json" -o "$d/out" "$d/arch" &
            pid=$!
            # a run over one piece takes tens of milliseconds: 1-49 ms in
            sleep "0.0$(printf %02d $(( (RANDOM % 49) + 1 )))"
            kill -9 "$pid" 2>/dev/null && kills=$((kills + 1)) || true
            wait "$pid" 2>/dev/null || true
        fi
        # The run after a kill (or the only run) must complete.
        "$BIN" -q "${finish[@]}" --state "$d/state.json" -o "$d/out" "$d/arch" ||
            { echo "stream trial $t: a run after a kill failed"; fail=1; }
    done
    cat "$d"/out/reset.*.log | grep -v '^#' | sort >"$d/got-rows"
    if ! cmp -s "$d/got-rows" "$WORK/want-rows"; then
        echo "stream trial $t: delivered rows differ from one clean run ($(wc -l <"$d/got-rows") vs $(wc -l <"$WORK/want-rows"))"
        diff "$d/got-rows" "$WORK/want-rows" | head -5
        fail=1
    else
        echo "stream trial $t: 6 runs, rows delivered exactly once"
    fi
done
echo "kill-test: $STATE_TRIALS stream trials, $kills runs killed"
[ "$fail" -eq 0 ] && echo "kill-test: all passed" || { echo "kill-test: FAILED"; exit 1; }
