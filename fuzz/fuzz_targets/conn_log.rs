#![no_main]

use std::sync::OnceLock;

#[path = "../harness/conn_log.rs"]
mod harness;

/// One scratch directory per fuzzing process (under /dev/shm when it exists, to spare the disk).
fn scratch() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("rstscope-fuzz-")
                .tempdir_in(shm)
                .expect("scratch dir")
        } else {
            tempfile::tempdir().expect("scratch dir")
        }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::fuzz_conn_log(data, scratch().path());
});
