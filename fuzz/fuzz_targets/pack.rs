//! A pack read back from storage: its blobs, footer and trailer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orca_repo::fuzz::pack(data));
