#!/usr/bin/env bash
# Fuzz rstscope's parsers of attacker-controlled input with cargo-fuzz (libFuzzer + ASan).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all of them, one after the other, never two at once) for SECONDS
# (default 60) with a 2 GiB RSS limit and a 10 s per-input timeout, starting from a seed corpus
# built from testdata/ and ../shared/captures/. Works on the stable toolchain: cargo-fuzz needs
# nightly-only flags (-Zsanitizer), which RUSTC_BOOTSTRAP=1 unlocks. Installs cargo-fuzz when
# it is missing.
#
# Corpora grow in fuzz/corpus/<target>/ and are not committed (fuzz/.gitignore). An input that
# crashes, hangs or runs out of memory lands in fuzz/artifacts/<target>/; copy it to
# testdata/fuzz/<target>/ and the regression tests (crates/*/tests/fuzz_regressions.rs, part of
# the ordinary `cargo test`) run it from then on.
#
# Targets: capture capture_framed decode conn_log classifier zeeklog_tsv carry resync
# The targets run one at a time, each as a single libFuzzer process (no -jobs/-fork).
# FUZZ_ARGS adds libFuzzer options (e.g. FUZZ_ARGS=-max_len=4096); FUZZ_CORPUS puts the corpora
# somewhere else (CI uses a fresh one with FUZZ_ARGS=-seed=1, so its brief run replays the start
# of the run checked before committing). libFuzzer's final stats
# (stat::number_of_executed_units, ...) are printed per target; its full output is in
# fuzz/corpus/<target>.log.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_PER_TARGET=${1:-60}
shift || true
ALL_TARGETS=(capture capture_framed decode conn_log classifier zeeklog_tsv carry resync)
if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=("${ALL_TARGETS[@]}")
fi
SHARED=$ROOT/../shared/captures

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

CORPUS=${FUZZ_CORPUS:-$ROOT/fuzz/corpus}
mkdir -p "$CORPUS"

# Seeds: copied once per target (an existing corpus is kept and grows).
seed_captures() {
    local dst=$1
    find "$ROOT/testdata" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.gz' -o -name '*.zst' \) \
        -not -path '*/golden/*' -exec cp {} "$dst/" \;
    if [ -d "$SHARED" ]; then
        find "$SHARED" -type f \( -name '*.pcap' -o -name '*.pcapng' -o -name '*.gz' -o -name '*.zst' \) \
            -size -40k -exec cp {} "$dst/" \;
    fi
}

seed() {
    local t=$1 dst=$CORPUS/$1
    if [ -d "$dst" ] && [ -n "$(ls -A "$dst")" ]; then
        return
    fi
    mkdir -p "$dst"
    case $t in
        capture)
            seed_captures "$dst"
            ;;
        resync)
            # A selector byte first: 0x00 (mod 3 = 0) reads the rest as the file itself.
            local tmp f
            tmp=$(mktemp -d)
            seed_captures "$tmp"
            for f in "$tmp"/*.pcap "$tmp"/*.pcapng; do
                [ -f "$f" ] || continue
                { printf '\x00'; cat "$f"; } >"$dst/$(basename "$f")"
            done
            rm -rf "$tmp"
            ;;
        capture_framed | decode)
            local tmp
            tmp=$(mktemp -d)
            seed_captures "$tmp"
            python3 "$ROOT/fuzz/seeds.py" "$t" "$tmp" "$dst"
            rm -rf "$tmp"
            ;;
        conn_log)
            if [ -d "$SHARED/zeek" ]; then
                cp "$SHARED"/zeek/*.conn.log "$SHARED"/zeek/*.conn-cut.tsv "$dst/" 2>/dev/null || true
            fi
            python3 "$ROOT/fuzz/seeds.py" conn_log - "$dst"
            ;;
        classifier | zeeklog_tsv)
            python3 "$ROOT/fuzz/seeds.py" "$t" - "$dst"
            ;;
        carry)
            # Real carries (testdata/fuzz/carry/, written by rstscope runs over testdata) are
            # copied below with the earlier crash inputs.
            ;;
    esac
    # Crash inputs found before are seeds too.
    if [ -d "$ROOT/testdata/fuzz/$t" ]; then
        cp "$ROOT/testdata/fuzz/$t"/* "$dst/" 2>/dev/null || true
    fi
}

cd "$ROOT/fuzz"
cargo fuzz build
status=0
for t in "${TARGETS[@]}"; do
    seed "$t"
    echo "== $t: ${SECONDS_PER_TARGET}s" >&2
    # shellcheck disable=SC2086
    if ! cargo fuzz run "$t" "$CORPUS/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
        -max_len=65536 -print_final_stats=1 ${FUZZ_ARGS:-} 2>"$CORPUS/$t.log"; then
        echo "fuzz.sh: $t FAILED; see fuzz/corpus/$t.log and fuzz/artifacts/$t/" >&2
        tail -40 "$CORPUS/$t.log" >&2
        status=1
    fi
    grep -E '^(stat::|Done|#[0-9]+ *DONE)' "$CORPUS/$t.log" >&2 || true
done
exit $status
