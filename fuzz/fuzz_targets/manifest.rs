//! A manifest as the vault parses one it holds no key for.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = orca_repo::Manifest::decode_unverified(data, "fuzz");
});
