#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sticky_split_harness::cookie(data));
