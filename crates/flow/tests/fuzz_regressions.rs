//! Inputs the fuzzer found (testdata/fuzz/classifier/), run through the same harness as the
//! cargo-fuzz target (fuzz/harness/classifier.rs): each segment sequence must be tracked without
//! a panic, every RST giving exactly one event with a cause and consistent evidence.

#[path = "../../../fuzz/harness/classifier.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn classifier_crashes_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/fuzz/classifier");
    for f in files(&dir) {
        eprintln!("{}", f.display());
        harness::fuzz_classifier(&std::fs::read(&f).unwrap());
    }
}

/// A deterministic pseudo-random byte stream (xorshift), so the harness also runs over many
/// sequences in the ordinary test suite, with and without a tiny connection table.
#[test]
fn pseudo_random_sequences_pass_the_harness() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rsts = 0;
    for round in 0..300u32 {
        let len = 2 + harness::RECORD * (1 + (round as usize % 40));
        let mut data = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push((x >> 24) as u8);
        }
        rsts += harness::run(&data).len();
    }
    assert!(rsts > 100, "only {rsts} RSTs over all sequences");
}
