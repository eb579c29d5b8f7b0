# shellcheck shell=bash
# Sourced by the benchmarks: how the capture files sit in the page cache before timed rounds.
#
# settle_cache FILE...: write the files out, drop them from the page cache (dd's nocache with
#   count=0 is posix_fadvise(DONTNEED) over the whole file; no root needed) and read them back
#   in, as a run reads files from disk. The kernel may hold a cached file in large folios or in
#   4 KiB pages, depending on how it got there and how fragmented memory was then; a memory map
#   takes one fault per large folio, one per 64 KiB otherwise (30 000 against 14 000 faults for
#   rstscope on a 1 GiB capture here). Reading the files back makes runs comparable.
# date_back FILE...: set the files' modification time ten minutes back. rstscope reads a file
#   modified in the last two minutes through a buffer instead of mapping it (it may still be
#   being written); a capture the benchmark has just generated is complete.
settle_cache() {
    sync -- "$@"
    local f
    for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none; done
    cat -- "$@" >/dev/null
}

date_back() {
    touch -m -d '10 minutes ago' -- "$@"
}
