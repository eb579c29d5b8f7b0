//! Inputs the fuzzer found (testdata/fuzz/decode/), run through the same harness as the
//! cargo-fuzz target (fuzz/harness/decode.rs): each must decode without a panic and with the
//! decoder's invariants holding. Every packet of the bundled link-type captures, and every
//! prefix of it, is run through it too.

#[path = "../../../fuzz/harness/decode.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

#[test]
fn decode_crashes_stay_fixed() {
    for f in files(&testdata().join("fuzz/decode")) {
        eprintln!("{}", f.display());
        harness::fuzz_decode(&std::fs::read(&f).unwrap());
    }
}

/// The records of a little-endian µs pcap file (what rstscope-gen writes).
fn records(b: &[u8]) -> (u16, Vec<&[u8]>) {
    let lt = u16::from_le_bytes([b[20], b[21]]);
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= b.len() {
        let cl = u32::from_le_bytes([b[off + 8], b[off + 9], b[off + 10], b[off + 11]]) as usize;
        if off + 16 + cl > b.len() {
            break;
        }
        out.push(&b[off + 16..off + 16 + cl]);
        off += 16 + cl;
    }
    (lt, out)
}

#[test]
fn bundled_packets_and_their_prefixes_pass_the_harness() {
    let mut n = 0;
    for f in files(&testdata().join("links")).into_iter().chain([
        testdata().join("tunnels.pcap"),
        testdata().join("hostile.pcap"),
    ]) {
        let bytes = std::fs::read(&f).unwrap();
        let (lt, pkts) = records(&bytes);
        let sel = harness::LINKTYPES
            .iter()
            .position(|&l| l == lt)
            .expect("a supported link type") as u8;
        for p in pkts {
            for cut in 0..=p.len() {
                let mut input = vec![sel];
                input.extend_from_slice(&p[..cut]);
                harness::fuzz_decode(&input);
                n += 1;
            }
        }
    }
    assert!(n > 1000, "bundled captures not found");
}
