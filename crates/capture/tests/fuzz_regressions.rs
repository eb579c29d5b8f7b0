//! Inputs the fuzzers found (testdata/fuzz/capture*/), run through the same harness as the
//! cargo-fuzz targets (fuzz/harness/capture.rs): each must be read without a panic and with the
//! reader's invariants holding. The bundled captures are run through it too.

#[allow(dead_code)]
#[path = "../../../fuzz/harness/capture.rs"]
mod harness;

#[allow(dead_code)]
#[path = "../../../fuzz/harness/resync.rs"]
mod resync_harness;

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

#[test]
fn capture_crashes_stay_fixed() {
    for f in files(&testdata().join("fuzz/capture")) {
        eprintln!("{}", f.display());
        harness::fuzz_capture(&std::fs::read(&f).unwrap());
    }
}

#[test]
fn capture_framed_crashes_stay_fixed() {
    for f in files(&testdata().join("fuzz/capture_framed")) {
        eprintln!("{}", f.display());
        harness::fuzz_capture_framed(&std::fs::read(&f).unwrap());
    }
}

#[test]
fn resync_crashes_stay_fixed() {
    let all = files(&testdata().join("fuzz/resync"));
    assert!(!all.is_empty(), "testdata/fuzz/resync/ seeds not found");
    for f in all {
        eprintln!("{}", f.display());
        resync_harness::fuzz_resync(&std::fs::read(&f).unwrap());
    }
}

#[test]
fn bundled_captures_pass_the_harness() {
    let all: Vec<PathBuf> = files(&testdata())
        .into_iter()
        .filter(|p| !p.starts_with(testdata().join("golden")))
        .collect();
    assert!(all.len() > 20, "testdata/ captures not found");
    for f in all {
        let bytes = std::fs::read(&f).unwrap();
        harness::fuzz_capture(&bytes);
        // The same records behind every generated header, plain and compressed.
        let mut framed = vec![0x80, 1];
        framed.extend_from_slice(bytes.get(24..).unwrap_or_default());
        harness::fuzz_capture_framed(&framed);
        framed[0] = 0x82;
        harness::fuzz_capture_framed(&framed);
    }
}
