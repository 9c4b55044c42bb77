//! What a piece carries, found by scanning the stream in 8 KiB steps: RMAN stores datafile
//! blocks whole at block-aligned offsets, so each step either is an Oracle block (kcbh with a
//! valid block-size format byte) or belongs to RMAN's own headers.

use orca_oracle::block::is_null_block;
use orca_oracle::datafile::{DatafileHeader, looks_like_header};

/// The datafile a piece holds, from the first datafile header block in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    Datafile { dbid: u32, file_no: u16 },
}

const STEP: usize = 8192;
/// Oracle's kcbh format byte for 8 KiB blocks.
const FORMAT_8K: u8 = 0xa2;

#[derive(Debug, Default)]
pub struct StreamScan {
    carry: Vec<u8>,
    identity: Option<Identity>,
    /// Datafile header blocks seen; more than one means a multiplexed piece, whose chunks
    /// follow no single file's layout.
    headers: u32,
    pub oracle_blocks: u64,
    pub null_blocks: u64,
}

impl StreamScan {
    pub fn feed(&mut self, data: &[u8]) {
        let mut rest = data;
        if !self.carry.is_empty() {
            let need = STEP - self.carry.len();
            let take = need.min(rest.len());
            self.carry.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.carry.len() == STEP {
                let block = std::mem::take(&mut self.carry);
                self.step(&block);
            }
        }
        let mut chunks = rest.chunks_exact(STEP);
        for block in &mut chunks {
            self.step(block);
        }
        self.carry.extend_from_slice(chunks.remainder());
    }

    fn step(&mut self, block: &[u8]) {
        if is_null_block(block) {
            self.null_blocks += 1;
            return;
        }
        if block[1] != FORMAT_8K {
            return;
        }
        self.oracle_blocks += 1;
        if looks_like_header(block)
            && let Ok(h) = DatafileHeader::parse(block)
        {
            self.headers += 1;
            if self.identity.is_none() {
                self.identity = Some(Identity::Datafile {
                    dbid: h.dbid,
                    file_no: h.file_no,
                });
            }
        }
    }

    /// The datafile of a single-file piece; `None` for multiplexed, archived-log or other
    /// pieces (those are deduplicated by probing only).
    pub fn identity(&self) -> Option<Identity> {
        if self.headers == 1 {
            self.identity
        } else {
            None
        }
    }
}
