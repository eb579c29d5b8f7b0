//! `testdata/` is what `rstscope-gen testdata` writes: regenerate it in memory and compare, so
//! the committed captures never drift from the code that documents how they were made.

use std::path::Path;

#[test]
fn committed_testdata_matches_the_generator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let files = rstscope_gen::testdata();
    assert!(files.len() > 30);
    for (rel, bytes) in files {
        let on_disk = std::fs::read(root.join(&rel)).unwrap_or_else(|e| {
            panic!("testdata/{rel}: {e}; run `cargo run -p rstscope-gen -- testdata testdata`")
        });
        assert!(
            on_disk == bytes,
            "testdata/{rel} differs from the generator; run `cargo run -p rstscope-gen -- testdata testdata`"
        );
    }
}

#[test]
fn bench_archives_are_deterministic_and_have_rsts() {
    let spec = rstscope_gen::BenchSpec {
        bytes: 200_000,
        concurrent: 20,
        seed: 3,
    };
    let mut a = Vec::new();
    let (packets, rsts) = rstscope_gen::write_bench(&mut a, spec, rstscope_gen::T0).unwrap();
    let mut b = Vec::new();
    rstscope_gen::write_bench(&mut b, spec, rstscope_gen::T0).unwrap();
    assert_eq!(a, b);
    assert!(packets > 100);
    assert!(rsts > 0 && rsts < packets);
}
