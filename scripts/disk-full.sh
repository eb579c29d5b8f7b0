#!/usr/bin/env bash
# Output on a full disk and on a read-only filesystem, for real (needs root to mount tmpfs; the
# test suite has a root-free variant with a file-size limit: failed_write_leaves_nothing_and_exits_74).
#
#   bash scripts/disk-full.sh [BIN]      (BIN defaults to target/debug/rstscope, built if missing)
#
# For each case it checks: exit status 74, an error naming the output directory, no file under a
# final name that was not complete before the run, no temporary file left behind; and that a
# later run with room succeeds. Prints "disk-full: N passed, M failed"; exits 1 on a failure,
# 0 when all passed, 0 with "skipped" when it cannot mount (not root, no tmpfs).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${1:-${CARGO_TARGET_DIR:-target}/debug/rstscope}
GEN=${CARGO_TARGET_DIR:-target}/debug/rstscope-gen
[ -x "$BIN" ] || cargo build -q -p rstscope
[ -x "$GEN" ] || cargo build -q -p rstscope-gen

WORK=$(mktemp -d)
MNT=$WORK/mnt
mkdir -p "$MNT"
cleanup() {
    umount "$MNT" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
if ! mount -t tmpfs -o size=64k tmpfs "$MNT" 2>/dev/null; then
    echo "disk-full: skipped (cannot mount a tmpfs here: not root?)"
    exit 0
fi

# A capture whose reset.log (~2 MB) cannot fit in 64 KiB.
"$GEN" bench "$WORK/cap" --bytes 20000000 --seed 3 >/dev/null
CAP=$(ls "$WORK"/cap/*.pcap | head -1)

passed=0
failed=0
check() { # name, condition-result
    if [ "$2" = ok ]; then
        passed=$((passed + 1))
        echo "ok   $1"
    else
        failed=$((failed + 1))
        echo "FAIL $1: $2"
    fi
}

leftovers() { # dir: temporary files left by a writer
    find "$1" -name '.*.tmp-*' | wc -l
}

# 1. Full disk while writing reset.log.
"$BIN" -q -o "$MNT/out" "$CAP" 2>"$WORK/err"
st=$?
[ $st -eq 74 ] && check "full disk: exit 74" ok || check "full disk: exit 74" "status $st: $(cat "$WORK/err")"
grep -q "cannot write the logs in $MNT/out" "$WORK/err" && check "full disk: message names the directory" ok \
    || check "full disk: message names the directory" "$(cat "$WORK/err")"
[ ! -e "$MNT/out/reset.log" ] && check "full disk: no reset.log under its final name" ok \
    || check "full disk: no reset.log under its final name" "$(ls -la "$MNT/out")"
[ "$(leftovers "$MNT/out")" -eq 0 ] && check "full disk: no temporary file left" ok \
    || check "full disk: no temporary file left" "$(ls -la "$MNT/out")"

# 2. The same directory, filled to the brim by someone else, then freed: the next run succeeds
#    and writes the same bytes as a run elsewhere.
"$BIN" -q -o "$WORK/ref" "$CAP" 2>/dev/null
umount "$MNT"
mount -t tmpfs -o size=64m tmpfs "$MNT"
mkdir -p "$MNT/out"
"$BIN" -q -o "$MNT/out" "$CAP" 2>"$WORK/err"
st=$?
if [ $st -eq 0 ] && cmp -s "$MNT/out/reset.log" "$WORK/ref/reset.log"; then
    check "room again: same bytes as a run elsewhere" ok
else
    check "room again: same bytes as a run elsewhere" "status $st $(cat "$WORK/err")"
fi

# 3. Read-only filesystem: nothing can be created (not even the lock).
mount -o remount,ro "$MNT"
before=$(ls -la --time-style=+%s "$MNT/out" | md5sum)
"$BIN" -q -o "$MNT/out" "$CAP" 2>"$WORK/err"
st=$?
[ $st -eq 74 ] && check "read-only: exit 74" ok || check "read-only: exit 74" "status $st: $(cat "$WORK/err")"
grep -q "$MNT/out" "$WORK/err" && check "read-only: message names the directory" ok \
    || check "read-only: message names the directory" "$(cat "$WORK/err")"
after=$(ls -la --time-style=+%s "$MNT/out" | md5sum)
[ "$before" = "$after" ] && check "read-only: earlier outputs untouched" ok \
    || check "read-only: earlier outputs untouched" "directory changed"
cmp -s "$MNT/out/reset.log" "$WORK/ref/reset.log" && check "read-only: earlier reset.log intact" ok \
    || check "read-only: earlier reset.log intact" "differs"

# 4. Full disk while spilling sorted runs (issue 17): a sort buffer far smaller than the rows
#    sends nearly all of them to hidden .reset.spill.tmp-* files in the output directory, which
#    fill the 64 KiB before any log is written. Skipped until the binary has --sort-memory.
if "$BIN" --help 2>/dev/null | grep -q -- --sort-memory; then
    # 5000 RSTs (a 256-byte payload on every tenth): about half a megabyte of runs.
    "$GEN" rsts "$WORK/rsts.pcap" 5000 >/dev/null
    umount "$MNT"
    mount -t tmpfs -o size=64k tmpfs "$MNT"
    "$BIN" -q --sort-memory "${SORT_MEMORY:-4096}" -o "$MNT/spill" "$WORK/rsts.pcap" 2>"$WORK/err"
    st=$?
    [ $st -eq 74 ] && check "spill: exit 74" ok || check "spill: exit 74" "status $st: $(cat "$WORK/err")"
    grep -q "$MNT/spill/\.reset\.spill\.tmp-" "$WORK/err" && check "spill: message names the spill file" ok \
        || check "spill: message names the spill file" "$(cat "$WORK/err")"
    [ ! -e "$MNT/spill/reset.log" ] && check "spill: no reset.log under its final name" ok \
        || check "spill: no reset.log under its final name" "$(ls -la "$MNT/spill")"
    [ "$(leftovers "$MNT/spill")" -eq 0 ] && check "spill: no temporary file left" ok \
        || check "spill: no temporary file left" "$(ls -la "$MNT/spill")"
    # Spill files are unlinked when made: their blocks are freed when the run ends.
    used=$(df -k --output=used "$MNT" | tail -1 | tr -d ' ')
    [ "$used" -le 16 ] && check "spill: the space is free again" ok \
        || check "spill: the space is free again" "${used} KiB used: $(ls -la "$MNT/spill")"

    # 5. The same with the spill files elsewhere (--tmp-dir on the full disk, the output
    #    directory with room): the run fails the same way and leaves nothing in either.
    umount "$MNT"
    mount -t tmpfs -o size=64k tmpfs "$MNT"
    mkdir -p "$MNT/tmp"
    "$BIN" -q --sort-memory "${SORT_MEMORY:-4096}" --tmp-dir "$MNT/tmp" -o "$WORK/roomy" "$WORK/rsts.pcap" 2>"$WORK/err"
    st=$?
    [ $st -eq 74 ] && check "spill to --tmp-dir: exit 74" ok \
        || check "spill to --tmp-dir: exit 74" "status $st: $(cat "$WORK/err")"
    grep -q "$MNT/tmp/\.reset\.spill\.tmp-" "$WORK/err" && check "spill to --tmp-dir: message names the spill file" ok \
        || check "spill to --tmp-dir: message names the spill file" "$(cat "$WORK/err")"
    [ ! -e "$WORK/roomy/reset.log" ] && [ ! -e "$WORK/roomy/reset_summary.json" ] \
        && check "spill to --tmp-dir: no log under its final name" ok \
        || check "spill to --tmp-dir: no log under its final name" "$(ls -la "$WORK/roomy")"
    [ "$(leftovers "$MNT/tmp")" -eq 0 ] && [ "$(leftovers "$WORK/roomy")" -eq 0 ] \
        && check "spill to --tmp-dir: no temporary file left" ok \
        || check "spill to --tmp-dir: no temporary file left" "$(ls -la "$MNT/tmp" "$WORK/roomy")"
    used=$(df -k --output=used "$MNT" | tail -1 | tr -d ' ')
    [ "$used" -le 16 ] && check "spill to --tmp-dir: the space is free again" ok \
        || check "spill to --tmp-dir: the space is free again" "${used} KiB used: $(ls -la "$MNT/tmp")"

    # 6. Room again: the spilling run writes the bytes of a run that kept its rows in memory.
    umount "$MNT"
    mount -t tmpfs -o size=64m tmpfs "$MNT"
    "$BIN" -q -o "$WORK/ref-rsts" "$WORK/rsts.pcap" 2>/dev/null
    "$BIN" -q --sort-memory "${SORT_MEMORY:-4096}" -o "$MNT/spill" "$WORK/rsts.pcap" 2>"$WORK/err"
    st=$?
    if [ $st -eq 0 ] && cmp -s "$MNT/spill/reset.log" "$WORK/ref-rsts/reset.log" \
        && cmp -s "$MNT/spill/reset_report.html" "$WORK/ref-rsts/reset_report.html"; then
        check "spill, room again: same bytes as a run in memory" ok
    else
        check "spill, room again: same bytes as a run in memory" "status $st $(cat "$WORK/err")"
    fi
else
    echo "skip spill: $BIN has no --sort-memory"
fi

echo "disk-full: $passed passed, $failed failed"
[ $failed -eq 0 ]
