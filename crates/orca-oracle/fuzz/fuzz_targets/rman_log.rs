//! The RMAN output parser and FORMAT expansion on arbitrary text: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = orca_oracle::parse_log(&text);
});
