//! Oracle blocks told apart from everything else in a backup piece, by datafile, so a
//! multiplexed piece can be stored demultiplexed: each datafile's blocks in a lane of their
//! own, whatever order RMAN interleaved them in (docs/design.md, "Demultiplexed pieces").
//!
//! RMAN writes a datafile block whole at an offset that is a multiple of its size (2 to
//! 32 KiB), so the stream is looked at in aligned 32 KiB windows, which no block crosses:
//! at each position a block of size `S` (from its kcbh format byte) is taken when the
//! position is a multiple of `S` and the block looks valid; otherwise the next 2 KiB are
//! RMAN's own bytes. Nothing depends on that guess being right: a misread range only goes
//! to another lane and comes back in its place on restore.

use orca_oracle::block::{BlockHeader, FLG_CHECKSUM, Rdba, block_size_from_format};

/// No block is larger, and every block size divides it.
pub const WINDOW: usize = 32 << 10;
/// No block is smaller (Oracle's smallest datafile block size is 2 KiB).
const STEP: usize = 2 << 10;

/// A part of the stream, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// One Oracle block of the file with relative file number `file`.
    Block { file: u32, bytes: &'a [u8] },
    /// Bytes that are no Oracle block.
    Other(&'a [u8]),
}

/// Splits a stream fed in arbitrary slices into [`Part`]s.
#[derive(Debug, Default)]
pub struct Splitter {
    /// The start of the window not yet complete.
    carry: Vec<u8>,
}

impl Splitter {
    /// Split `data`, the next bytes of the stream; whole windows are split straight from
    /// `data`, the last incomplete one is kept until it is complete.
    pub fn feed<E>(
        &mut self,
        mut data: &[u8],
        sink: &mut impl FnMut(Part<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.carry.is_empty() {
            let take = (WINDOW - self.carry.len()).min(data.len());
            self.carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.carry.len() < WINDOW {
                return Ok(());
            }
            let window = std::mem::take(&mut self.carry);
            split_window(&window, sink)?;
            self.carry = window;
            self.carry.clear();
        }
        let whole = data.len() - data.len() % WINDOW;
        for window in data[..whole].chunks_exact(WINDOW) {
            split_window(window, sink)?;
        }
        self.carry.extend_from_slice(&data[whole..]);
        Ok(())
    }

    /// Split what is left at the end of the stream.
    pub fn finish<E>(&mut self, sink: &mut impl FnMut(Part<'_>) -> Result<(), E>) -> Result<(), E> {
        let window = std::mem::take(&mut self.carry);
        split_window(&window, sink)
    }
}

/// Split one window (the stream's last may be short), merging neighbouring other bytes.
fn split_window<E>(w: &[u8], sink: &mut impl FnMut(Part<'_>) -> Result<(), E>) -> Result<(), E> {
    let mut other = 0;
    let mut at = 0;
    while at < w.len() {
        if let Some((file, size)) = block_at(w, at) {
            if other < at {
                sink(Part::Other(&w[other..at]))?;
            }
            sink(Part::Block {
                file,
                bytes: &w[at..at + size],
            })?;
            at += size;
            other = at;
        } else {
            at = (at + STEP).min(w.len());
        }
    }
    if other < w.len() {
        sink(Part::Other(&w[other..]))?;
    }
    Ok(())
}

/// The file and size of the block that starts at `at` in window `w`, if one does.
fn block_at(w: &[u8], at: usize) -> Option<(u32, usize)> {
    let size = block_size_from_format(*w.get(at + 1)?)?;
    if size < STEP || !at.is_multiple_of(size) || at + size > w.len() {
        return None;
    }
    plausible(&w[at..at + size]).map(|r| (r.rfile(), size))
}

/// The address of what looks like a datafile block: checksum flag set (Oracle's default,
/// `DB_BLOCK_CHECKSUM=TYPICAL`), tail matching the header, a file number. Bytes of RMAN's
/// own headers can match a tail by chance; the caller checks the checksum where it matters.
pub fn plausible(block: &[u8]) -> Option<Rdba> {
    let h = BlockHeader::parse(block).ok()?;
    let tail = u32::from_le_bytes(block[block.len() - 4..].try_into().ok()?);
    (h.flags & FLG_CHECKSUM != 0 && h.rdba.rfile() > 0 && tail == h.tail()).then_some(h.rdba)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orca_oracle::Scn;
    use orca_oracle::block::finish_block;

    pub(crate) fn block(size: usize, file: u32, no: u32) -> Vec<u8> {
        let mut b = vec![0u8; size];
        for (x, v) in b.iter_mut().skip(20).zip((0..=u8::MAX).cycle()) {
            *x = v.wrapping_add(no.to_le_bytes()[0]);
        }
        let h = BlockHeader::new(6, size, Rdba::new(file, no).unwrap(), Scn(100), 1).unwrap();
        finish_block(&mut b, &h).unwrap();
        b
    }

    fn parts(stream: &[u8], slice: usize) -> Vec<(Option<u32>, Vec<u8>)> {
        let mut out: Vec<(Option<u32>, Vec<u8>)> = Vec::new();
        let mut s = Splitter::default();
        let mut sink = |p: Part<'_>| -> Result<(), ()> {
            match p {
                Part::Block { file, bytes } => out.push((Some(file), bytes.to_vec())),
                Part::Other(b) => out.push((None, b.to_vec())),
            }
            Ok(())
        };
        for part in stream.chunks(slice) {
            s.feed(part, &mut sink).unwrap();
        }
        s.finish(&mut sink).unwrap();
        out
    }

    #[test]
    fn blocks_of_any_size_are_found_at_their_alignment() {
        for size in [2048, 4096, 8192, 16384, 32768] {
            let mut stream = vec![0x5au8; 512];
            stream.resize(size, 0);
            stream.extend(block(size, 3, 10));
            stream.extend(block(size, 4, 11));
            // Misaligned by 2 KiB: not a block of this size.
            let mut odd = vec![0u8; 2048];
            odd.extend(block(size, 5, 12));
            stream.extend(&odd);
            for slice in [1000, 4096, 65536] {
                let p = parts(&stream, slice);
                let files: Vec<u32> = p.iter().filter_map(|(f, _)| *f).collect();
                let want = if size == 2048 {
                    vec![3, 4, 5]
                } else {
                    vec![3, 4]
                };
                assert_eq!(files, want, "block size {size}, slices of {slice}");
                let back: Vec<u8> = p.into_iter().flat_map(|(_, b)| b).collect();
                assert_eq!(back, stream);
            }
        }
    }
}
