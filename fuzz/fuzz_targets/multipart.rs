//! The store's multipart parser (`uploadlog`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orca_store::fuzz_multipart(data));
