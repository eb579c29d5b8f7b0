#![no_main]

#[path = "../harness/zeeklog_tsv.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::fuzz_zeeklog_tsv(data);
});
