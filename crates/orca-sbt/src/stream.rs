//! What a piece carries, found by scanning the stream in 8 KiB steps: RMAN stores datafile
//! blocks whole at block-aligned offsets, so each step either is an Oracle block (kcbh with a
//! valid block-size format byte) or belongs to RMAN's own headers.

use orca_oracle::block::{BlockHeader, FLG_CHECKSUM, Rdba, check_block, is_null_block};
use orca_oracle::datafile::{DatafileHeader, looks_like_header};

/// The datafile, or the section of one, a piece holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A whole datafile or its first section: from the datafile header block in it.
    Datafile { dbid: u32, file_no: u16 },
    /// A later section of a multi-section backup, which carries no header: from the block
    /// addresses in it, the file and the first block of the section. The DBID comes from
    /// RMAN's `sbtobject` list.
    Section { file_no: u32, first_block: u32 },
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
    /// The address of the first valid datafile block (tail and checksum checked, so that
    /// none of RMAN's own header bytes is taken for one).
    first: Option<Rdba>,
    /// Blocks of more than one file were seen.
    mixed: bool,
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
        match self.first {
            None => {
                if let Some(rdba) = plausible(block)
                    && check_block(block, None).is_ok()
                {
                    self.first = Some(rdba);
                }
            }
            Some(first) => {
                self.mixed |= plausible(block).is_some_and(|r| r.rfile() != first.rfile());
            }
        }
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

    /// The datafile, or datafile section, of a single-file piece; `None` for multiplexed,
    /// archived-log or other pieces (those are deduplicated by probing only).
    pub fn identity(&self) -> Option<Identity> {
        match self.headers {
            1 => self.identity,
            0 if !self.mixed => self.first.map(|r| Identity::Section {
                file_no: r.rfile(),
                first_block: r.block(),
            }),
            _ => None,
        }
    }
}

/// The address of what looks like a datafile block: checksum flag set (Oracle's default,
/// `DB_BLOCK_CHECKSUM=TYPICAL`), tail matching the header, a file number. Bytes of RMAN's
/// own headers can match a tail by chance; the caller checks the checksum where it matters.
fn plausible(block: &[u8]) -> Option<Rdba> {
    let h = BlockHeader::parse(block).ok()?;
    let tail = u32::from_le_bytes(block[block.len() - 4..].try_into().ok()?);
    (h.flags & FLG_CHECKSUM != 0 && h.rdba.rfile() > 0 && tail == h.tail()).then_some(h.rdba)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orca_oracle::Scn;
    use orca_oracle::block::finish_block;

    fn block(file: u32, no: u32) -> Vec<u8> {
        let mut b = vec![0u8; STEP];
        for (x, v) in b.iter_mut().skip(20).zip((0..=u8::MAX).cycle()) {
            *x = v.wrapping_add(no.to_le_bytes()[0]);
        }
        let h = BlockHeader::new(6, STEP, Rdba::new(file, no).unwrap(), Scn(100), 1).unwrap();
        finish_block(&mut b, &h).unwrap();
        b
    }

    #[test]
    fn a_section_is_known_by_its_file_and_first_block() {
        let mut s = StreamScan::default();
        // RMAN's own header, then the section's blocks, fed in uneven slices.
        let mut stream = vec![0x5au8; STEP];
        stream[1] = FORMAT_8K;
        for no in 4096..4100 {
            stream.extend(block(7, no));
        }
        for part in stream.chunks(3000) {
            s.feed(part);
        }
        assert_eq!(
            s.identity(),
            Some(Identity::Section {
                file_no: 7,
                first_block: 4096
            })
        );
    }

    #[test]
    fn blocks_of_two_files_give_no_identity() {
        let mut s = StreamScan::default();
        s.feed(&block(7, 10));
        s.feed(&block(8, 10));
        assert_eq!(s.identity(), None);
    }
}
