//! What a piece carries, found by splitting the stream into Oracle blocks (any block size,
//! see [`crate::demux`]) and RMAN's own bytes.

use orca_oracle::block::{Rdba, check_block, is_null_block};
use orca_oracle::datafile::{DatafileHeader, looks_like_header};

use crate::demux::{Part, Splitter, plausible};

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

/// Null blocks are counted in units of this size (a figure for the trace).
const NULL_UNIT: usize = 8192;

#[derive(Debug, Default)]
pub struct StreamScan {
    split: Splitter,
    seen: Seen,
}

/// What the blocks found so far tell.
#[derive(Debug, Default)]
pub struct Seen {
    identity: Option<Identity>,
    /// DBID of the first datafile header block.
    dbid: Option<u32>,
    /// Datafile header blocks seen; more than one means a multiplexed piece, whose chunks
    /// follow no single file's layout.
    headers: u32,
    /// The address of the first valid datafile block (tail and checksum checked, so that
    /// none of RMAN's own header bytes is taken for one).
    first: Option<Rdba>,
    /// Blocks of more than one file were seen.
    mixed: bool,
    /// Each file's valid blocks (the first [`MAX_RUNS`] files): how many, the lowest and
    /// highest block numbers, and their size.
    runs: Vec<Run>,
    pub oracle_blocks: u64,
    pub null_blocks: u64,
}

/// Files whose blocks are tallied in [`Seen`]: a piece's lanes are at most as many.
const MAX_RUNS: usize = 64;

/// The blocks of one file of a piece, as far as they were seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub rfile: u32,
    pub block_size: usize,
    pub count: u64,
    pub lowest: u32,
    pub highest: u32,
}

impl Run {
    /// Whether the blocks seen are most of those their numbers span: a full backup's, with
    /// a few never-formatted blocks left out, rather than a level 1's changed blocks.
    pub fn dense(&self) -> bool {
        self.count * 2 > u64::from(self.highest - self.lowest) + 1
    }
}

impl StreamScan {
    pub fn feed(&mut self, data: &[u8]) {
        let _ = self.feed_to(data, &mut |_| Ok::<(), ()>(()));
    }

    /// Split the stream's last bytes.
    pub fn finish(&mut self) {
        let _ = self.finish_to(&mut |_| Ok::<(), ()>(()));
    }

    /// [`Self::feed`], handing each part to `sink` too.
    pub fn feed_to<E>(
        &mut self,
        data: &[u8],
        sink: &mut impl FnMut(Part<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let seen = &mut self.seen;
        self.split.feed(data, &mut |p: Part<'_>| {
            seen.see(&p);
            sink(p)
        })
    }

    /// [`Self::finish`], handing each part to `sink` too.
    pub fn finish_to<E>(
        &mut self,
        sink: &mut impl FnMut(Part<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let seen = &mut self.seen;
        self.split.finish(&mut |p: Part<'_>| {
            seen.see(&p);
            sink(p)
        })
    }

    pub fn seen(&self) -> &Seen {
        &self.seen
    }
}

impl Seen {
    pub fn see(&mut self, part: &Part<'_>) {
        let block = match part {
            Part::Other(bytes) => {
                self.null_blocks += bytes
                    .chunks_exact(NULL_UNIT)
                    .filter(|u| is_null_block(u))
                    .count() as u64;
                return;
            }
            Part::Block { bytes, .. } => *bytes,
        };
        self.oracle_blocks += 1;
        match self.first {
            None => {
                if let Some(rdba) = plausible(block)
                    && check_block(block, None).is_ok()
                {
                    self.first = Some(rdba);
                    self.tally(rdba, block.len());
                }
            }
            Some(first) => {
                let rdba = plausible(block);
                self.mixed |= rdba.is_some_and(|r| r.rfile() != first.rfile());
                if let Some(r) = rdba {
                    self.tally(r, block.len());
                }
            }
        }
        if looks_like_header(block)
            && let Ok(h) = DatafileHeader::parse(block)
        {
            self.headers += 1;
            self.dbid.get_or_insert(h.dbid);
            if self.identity.is_none() {
                self.identity = Some(Identity::Datafile {
                    dbid: h.dbid,
                    file_no: h.file_no,
                });
            }
        }
    }

    /// Blocks of more than one datafile were seen: a multiplexed piece.
    pub fn multiplexed(&self) -> bool {
        self.mixed || self.headers > 1
    }

    fn tally(&mut self, rdba: Rdba, block_size: usize) {
        if let Some(run) = self.runs.iter_mut().find(|r| r.rfile == rdba.rfile()) {
            if run.block_size == block_size {
                run.count += 1;
                run.lowest = run.lowest.min(rdba.block());
                run.highest = run.highest.max(rdba.block());
            }
        } else if self.runs.len() < MAX_RUNS {
            self.runs.push(Run {
                rfile: rdba.rfile(),
                block_size,
                count: 1,
                lowest: rdba.block(),
                highest: rdba.block(),
            });
        }
    }

    /// The blocks of the first datafile seen.
    pub fn run(&self) -> Option<Run> {
        self.runs.first().copied()
    }

    /// The smallest datafile block size seen (2 KiB or more), the one a piece's units
    /// follow ([`orca_repo::unit_for_block`]).
    pub fn block_size(&self) -> Option<usize> {
        self.runs
            .iter()
            .map(|r| r.block_size)
            .filter(|&b| b >= orca_repo::MIN_UNIT)
            .min()
    }

    /// Whether the blocks seen, file by file, are most of those their numbers span: a full
    /// backup's (see [`Run::dense`]), multiplexed or not.
    pub fn dense(&self) -> bool {
        let count: u64 = self.runs.iter().map(|r| r.count).sum();
        let span: u64 = self
            .runs
            .iter()
            .map(|r| u64::from(r.highest - r.lowest) + 1)
            .sum();
        !self.runs.is_empty() && count * 2 > span
    }

    /// The DBID of the first datafile header block seen.
    pub fn dbid(&self) -> Option<u32> {
        self.dbid
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

#[cfg(test)]
mod tests {
    use super::*;
    use orca_oracle::Scn;
    use orca_oracle::block::{BlockHeader, finish_block};

    const STEP: usize = 8192;
    const FORMAT_8K: u8 = 0xa2;

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
        s.finish();
        assert_eq!(
            s.seen().identity(),
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
        s.finish();
        assert_eq!(s.seen().identity(), None);
        assert!(s.seen().multiplexed());
    }
}
