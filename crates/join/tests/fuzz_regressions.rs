//! Inputs the fuzzer found (testdata/fuzz/conn_log/), run through the same harness as the
//! cargo-fuzz target (fuzz/harness/conn_log.rs): each is read as a conn.log, joined with fixed
//! reset events and written back as conn_rst.log in every format, without a panic and with
//! every output line whole.

#[path = "../../../fuzz/harness/conn_log.rs"]
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
fn conn_log_crashes_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/fuzz/conn_log");
    let scratch = tempfile::tempdir().unwrap();
    for f in files(&dir) {
        eprintln!("{}", f.display());
        harness::fuzz_conn_log(&std::fs::read(&f).unwrap(), scratch.path());
    }
}

#[test]
fn joined_rows_pass_the_harness() {
    let scratch = tempfile::tempdir().unwrap();
    let tsv = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n\
        #fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\thistory\ttunnel_parents\n\
        #types\ttime\tstring\taddr\tport\taddr\tport\tenum\tinterval\tstring\tset[string]\n\
        1300000000.000000\tCx1\t10.0.0.1\t40000\t10.0.0.2\t80\ttcp\t0.5\tSr\ta\\x2cb,c\n\
        1300000099.000000\tCx2\t2001:db8::1\t443\t2001:db8::2\t55555\ttcp\t-\tShR\t(empty)\n";
    harness::fuzz_conn_log(tsv.as_bytes(), scratch.path());
    let json = r#"{"ts":1300000000.0,"uid":"Cj1","id.orig_h":"10.0.0.1","id.orig_p":40000,"id.resp_h":"10.0.0.2","id.resp_p":80,"proto":"tcp","history":"Sr\t#","x":{"y":[1]}}"#;
    harness::fuzz_conn_log(json.as_bytes(), scratch.path());
}
