#![no_main]

#[path = "../harness/classifier.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::fuzz_classifier(data);
});
