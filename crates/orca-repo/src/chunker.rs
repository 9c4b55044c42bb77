//! Chunkers: where a byte stream is cut into chunks.
//!
//! - `Fixed`: cuts every `size` bytes from the start of the stream (or from the
//!   last forced boundary). With a size that is a multiple of the Oracle block
//!   size, chunks stay block-aligned; this is what RMAN streams and image copies
//!   need, and it costs nothing per byte.
//! - `Cdc`: FastCDC (2020) with a gear table seeded from the repository key, so
//!   cut points do not reveal content. For logs and other files where inserts
//!   shift the data.
//!
//! Both are deterministic: the same bytes give the same chunks.

use std::borrow::Cow;
use std::fmt;

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};

/// Default fixed chunk size: 1 MiB, a multiple of every Oracle block size.
pub const DEFAULT_FIXED_SIZE: usize = 1 << 20;

/// How a piece was (or will be) chunked. Stored in the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ChunkerSpec {
    /// Chunks of `size` bytes from the start of the stream, so a changed Oracle block
    /// changes one chunk.
    Fixed {
        /// Bytes per chunk (the last one may be shorter).
        size: u32,
    },
    /// Content-defined (FastCDC) cuts, so data that shifts (logs, other files) still
    /// deduplicates.
    Cdc {
        /// Smallest chunk.
        min: u32,
        /// Average chunk.
        avg: u32,
        /// Largest chunk.
        max: u32,
    },
}

impl Default for ChunkerSpec {
    fn default() -> Self {
        ChunkerSpec::Fixed {
            // 1 MiB: a constant far below u32::MAX.
            #[allow(clippy::cast_possible_truncation)]
            size: DEFAULT_FIXED_SIZE as u32,
        }
    }
}

impl ChunkerSpec {
    /// Content-defined chunking around a 1 MiB average.
    pub fn default_cdc() -> Self {
        ChunkerSpec::Cdc {
            min: 256 * 1024,
            avg: 1 << 20,
            max: 4 << 20,
        }
    }

    /// Refuse sizes out of range: a fixed size is a multiple of 512 from 4 KiB to 16 MiB,
    /// content-defined sizes are even with `min < avg < max` within FastCDC's bounds.
    pub fn validate(&self) -> Result<()> {
        match *self {
            ChunkerSpec::Fixed { size } => {
                if !(4096..=(16 << 20)).contains(&size) || size % 512 != 0 {
                    return Err(RepoError::InvalidArgument(format!(
                        "fixed chunk size {size} must be a multiple of 512 between 4 KiB and 16 MiB"
                    )));
                }
            }
            ChunkerSpec::Cdc { min, avg, max } => {
                let (min, avg, max) = (min as usize, avg as usize, max as usize);
                let ok = (fastcdc::v2020::MINIMUM_MIN..=fastcdc::v2020::MINIMUM_MAX).contains(&min)
                    && (fastcdc::v2020::AVERAGE_MIN..=fastcdc::v2020::AVERAGE_MAX).contains(&avg)
                    && (fastcdc::v2020::MAXIMUM_MIN..=fastcdc::v2020::MAXIMUM_MAX).contains(&max)
                    && min < avg
                    && avg < max
                    && min % 2 == 0
                    && avg % 2 == 0
                    && max % 2 == 0;
                if !ok {
                    return Err(RepoError::InvalidArgument(format!(
                        "content-defined chunk sizes min={min} avg={avg} max={max} are out of range \
                         (even numbers, min < avg < max, avg between 256 B and 4 MiB, max up to 16 MiB)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The largest chunk this spec can produce.
    pub fn max_chunk(&self) -> usize {
        match *self {
            ChunkerSpec::Fixed { size } => size as usize,
            ChunkerSpec::Cdc { max, .. } => max as usize,
        }
    }

    pub(crate) fn build(&self, cdc_seed: u64) -> Result<Chunker> {
        self.validate()?;
        Ok(match *self {
            ChunkerSpec::Fixed { size } => Chunker::Fixed {
                size: size as usize,
            },
            ChunkerSpec::Cdc { min, avg, max } => {
                let (mask_s, mask_l) = select_masks(avg as usize, Normalization::Level1);
                let (gear, gear_ls) = get_gear_with_seed(cdc_seed);
                Chunker::Cdc(Box::new(Cdc {
                    min: min as usize,
                    avg: avg as usize,
                    max: max as usize,
                    mask_s,
                    mask_l,
                    gear,
                    gear_ls,
                }))
            }
        })
    }
}

impl fmt::Display for ChunkerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ChunkerSpec::Fixed { size } => write!(f, "fixed {} KiB", size / 1024),
            ChunkerSpec::Cdc { min, avg, max } => {
                write!(f, "cdc {}/{}/{} KiB", min / 1024, avg / 1024, max / 1024)
            }
        }
    }
}

pub struct Cdc {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
}

/// A chunker instance for one stream.
pub enum Chunker {
    Fixed { size: usize },
    Cdc(Box<Cdc>),
}

impl fmt::Debug for Chunker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chunker::Fixed { size } => write!(f, "Chunker::Fixed({size})"),
            Chunker::Cdc(c) => write!(f, "Chunker::Cdc({}/{}/{})", c.min, c.avg, c.max),
        }
    }
}

impl Chunker {
    /// Length of the next chunk at the start of `buf`, or `None` when more
    /// data is needed to decide. With `eof`, any non-empty `buf` yields a cut.
    pub fn next_cut(&self, buf: &[u8], eof: bool) -> Option<usize> {
        if buf.is_empty() {
            return None;
        }
        match self {
            Chunker::Fixed { size } => {
                if buf.len() >= *size {
                    Some(*size)
                } else if eof {
                    Some(buf.len())
                } else {
                    None
                }
            }
            Chunker::Cdc(c) => {
                if buf.len() < c.max && !eof {
                    return None;
                }
                let window = &buf[..buf.len().min(c.max)];
                let (_, len) = cut_gear(
                    window,
                    c.min,
                    c.avg,
                    c.max,
                    c.mask_s,
                    c.mask_l,
                    c.mask_s << 1,
                    c.mask_l << 1,
                    &c.gear,
                    &c.gear_ls,
                );
                Some(len.max(1).min(window.len()))
            }
        }
    }

    pub fn max_chunk(&self) -> usize {
        match self {
            Chunker::Fixed { size } => *size,
            Chunker::Cdc(c) => c.max,
        }
    }

    /// Cut a whole buffer into chunk lengths.
    #[cfg(test)]
    pub fn split(&self, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(n) = self.next_cut(&data[pos..], true) {
            out.push(n);
            pos += n;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orca_testing::data::noise;
    use proptest::prelude::*;

    fn small_cdc() -> ChunkerSpec {
        ChunkerSpec::Cdc {
            min: 2048,
            avg: 8192,
            max: 32768,
        }
    }

    #[test]
    fn fixed_cuts_every_size() {
        let c = ChunkerSpec::Fixed { size: 4096 }.build(0).unwrap();
        assert_eq!(c.split(&[0u8; 10000]), vec![4096, 4096, 1808]);
        assert_eq!(c.next_cut(&[0u8; 100], false), None);
        assert_eq!(c.next_cut(&[], true), None);
    }

    #[test]
    fn cdc_resynchronises_after_insert() {
        let c = small_cdc().build(42).unwrap();
        let data = noise(400_000, 7);
        let mut shifted = data[..1000].to_vec();
        shifted.extend_from_slice(b"inserted bytes");
        shifted.extend_from_slice(&data[1000..]);
        let cuts = |d: &[u8]| {
            let mut pos = 0;
            let mut ends = std::collections::HashSet::new();
            for n in c.split(d) {
                pos += n;
                ends.insert(i64::try_from(pos).unwrap() - i64::try_from(d.len()).unwrap());
            }
            ends
        };
        let a = cuts(&data);
        let b = cuts(&shifted);
        let common = a.intersection(&b).count();
        assert!(
            common * 10 >= a.len() * 8,
            "only {common} of {} boundaries survived",
            a.len()
        );
    }

    #[test]
    fn seed_changes_boundaries() {
        let data = noise(300_000, 3);
        let a = small_cdc().build(1).unwrap().split(&data);
        let b = small_cdc().build(2).unwrap().split(&data);
        assert_ne!(a, b);
    }

    #[test]
    fn specs_are_validated() {
        assert!(ChunkerSpec::Fixed { size: 1000 }.validate().is_err());
        assert!(
            ChunkerSpec::Cdc {
                min: 10,
                avg: 20,
                max: 30
            }
            .validate()
            .is_err()
        );
        assert!(ChunkerSpec::default().validate().is_ok());
        assert!(ChunkerSpec::default_cdc().validate().is_ok());
    }

    proptest! {
        #[test]
        fn concatenation_equals_input(len in 0usize..200_000, seed in any::<u64>(), fixed in any::<bool>()) {
            let data = noise(len, seed);
            let spec = if fixed { ChunkerSpec::Fixed { size: 8192 } } else { small_cdc() };
            let c = spec.build(seed).unwrap();
            let lens = c.split(&data);
            prop_assert_eq!(lens.iter().sum::<usize>(), data.len());
            prop_assert!(lens.iter().all(|&n| n > 0 && n <= c.max_chunk()));
        }

        #[test]
        fn boundaries_are_deterministic_and_streaming_agrees(len in 1usize..150_000, seed in any::<u64>(), step in 1usize..50_000) {
            let data = noise(len, seed);
            let c = small_cdc().build(seed).unwrap();
            let whole = c.split(&data);
            prop_assert_eq!(&whole, &c.split(&data));
            // Feed the same bytes in arbitrary pieces, as a stream would arrive.
            let mut pending: Vec<u8> = Vec::new();
            let mut streamed = Vec::new();
            let mut fed = 0;
            while fed < data.len() || !pending.is_empty() {
                let take = step.min(data.len() - fed);
                pending.extend_from_slice(&data[fed..fed + take]);
                fed += take;
                let eof = fed == data.len();
                while let Some(n) = c.next_cut(&pending, eof) {
                    streamed.push(n);
                    pending.drain(..n);
                }
                if eof && pending.is_empty() { break; }
            }
            prop_assert_eq!(whole, streamed);
        }
    }
}
