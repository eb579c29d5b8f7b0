//! Inputs the fuzzer found (testdata/fuzz/zeeklog_tsv/), run through the same harness as the
//! cargo-fuzz target (fuzz/harness/zeeklog_tsv.rs): every value written by the TSV writer must
//! stay in its cell and read back as written.

#[path = "../../../fuzz/harness/zeeklog_tsv.rs"]
mod harness;

use std::path::Path;

#[test]
fn zeeklog_tsv_crashes_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/fuzz/zeeklog_tsv");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        eprintln!("{}", f.display());
        harness::fuzz_zeeklog_tsv(&std::fs::read(&f).unwrap());
    }
}

#[test]
fn every_byte_and_reserved_value_reads_back() {
    let mut all: Vec<u8> = (0u8..=0xfd).collect();
    all.extend_from_slice(
        b"\xff-\xff(empty)\xff#x\xff\"q\xff\\x41\xff\xc3\xa9\xf0\x9f\x98\x80\xc3\xfe,\xfe",
    );
    harness::fuzz_zeeklog_tsv(&all);
    harness::fuzz_zeeklog_tsv(b"");
    harness::fuzz_zeeklog_tsv(b"\xff\xff");
}
