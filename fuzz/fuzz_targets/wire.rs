//! The vault's wire bodies: upload batches, read answers, ids.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orca_vault::fuzz::wire(data));
