//! Every binary parser of Oracle structures on arbitrary bytes: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orca_oracle::block::{BlockHeader, FileHeaderBlock, check_block};
use orca_oracle::redo::RedoBlockHeader;
use orca_oracle::{DatafileHeader, RedoLogHeader};

fuzz_target!(|data: &[u8]| {
    let _ = BlockHeader::parse(data);
    let _ = check_block(data, None);
    let _ = FileHeaderBlock::parse(data);
    let _ = DatafileHeader::parse(data);
    let _ = RedoBlockHeader::parse(data);
    let _ = RedoLogHeader::parse(data);
});
