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

#[path = "../../../fuzz/harness/carry.rs"]
mod carry_harness;

/// Carry files (testdata/fuzz/carry/: carries rstscope wrote over testdata, and any input the
/// fuzzer found), each also truncated at every length and with bytes flipped — with the
/// checksum made right again, so the mutations reach the decoder behind it.
#[test]
fn carry_inputs_pass_the_harness() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/fuzz/carry");
    let inputs = files(&dir);
    assert!(!inputs.is_empty(), "no carry seeds in {}", dir.display());
    for f in inputs {
        let data = std::fs::read(&f).unwrap();
        assert!(
            f.extension().is_none_or(|e| e != "carry")
                || rstscope_flow::read_carry_file(&data).is_ok(),
            "{}: a seed carry does not read",
            f.display()
        );
        carry_harness::fuzz_carry(&data);
        for n in (0..data.len()).step_by(19) {
            carry_harness::fuzz_carry(&data[..n]);
        }
        for i in (24..data.len()).step_by(11) {
            let mut b = data.clone();
            b[i] ^= 0x41;
            let crc = crc32fast::hash(&b[24..]);
            b[20..24].copy_from_slice(&crc.to_le_bytes());
            carry_harness::fuzz_carry(&b);
        }
    }
}
