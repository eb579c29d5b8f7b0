#![no_main]

#[allow(dead_code)]
#[path = "../harness/resync.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::fuzz_resync(data);
});
