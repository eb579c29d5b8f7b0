#![no_main]

#[path = "../harness/carry.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::fuzz_carry(data);
});
