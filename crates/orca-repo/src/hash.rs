//! Chunk fingerprints with unit-level chaining values.
//!
//! The chunk id is the standard keyed BLAKE3 of the chunk. BLAKE3 is a tree
//! hash, and every 8 KiB-aligned unit of a chunk is a complete subtree of
//! that tree, so the same pass that produces the id also yields one chaining
//! value per unit. Comparing those values with the ones of an earlier
//! version of the chunk tells which units (8 KiB Oracle blocks) changed, at
//! no extra hashing cost; the writer then stores only those units (a delta).
//!
//! Why 8 KiB, though BLAKE3 hashes up to 16 of its 1 KiB chunks at once with
//! AVX-512 and 8 KiB subtrees run at half that width: with 16 KiB units a
//! changed block cost its unchanged neighbour too, and a day of 1% changed
//! blocks stored 2.6 times their compressed size instead of 1.2-1.4 times
//! (docs/design.md). The price is paid on every full: a repeat of an unchanged 1 GiB
//! database through SBT took 0.38-0.44 s against 0.35-0.37 s with 16 KiB units.

use blake3::hazmat::{
    HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

use crate::id::ChunkId;

/// Granularity of change detection and of deltas: one default Oracle block.
pub const UNIT: usize = 8192;

/// A unit's chaining value, truncated to 128 bits (collision resistance of
/// 2^64 per pair, ample for telling an old unit from its new version).
pub type UnitCv = [u8; 16];

/// Keyed chunk id, plus the unit chaining values when `with_units` and the
/// chunk is longer than one unit.
pub fn chunk_hash(key: &[u8; 32], data: &[u8], with_units: bool) -> (ChunkId, Option<Vec<UnitCv>>) {
    if !with_units || data.len() <= UNIT {
        return (ChunkId(*blake3::keyed_hash(key, data).as_bytes()), None);
    }
    let mut cvs = Vec::with_capacity(data.len().div_ceil(UNIT));
    unit_cvs(key, data, 0, &mut cvs);
    from_unit_cvs(key, data, &cvs)
}

/// Append the chaining values of the units of `data`, which starts `offset`
/// bytes (a multiple of [`UNIT`]) into its chunk. Lets a reader hash each
/// part of a chunk right after reading it, while it is still in the cache.
pub fn unit_cvs(key: &[u8; 32], data: &[u8], offset: usize, out: &mut Vec<[u8; 32]>) {
    debug_assert_eq!(offset % UNIT, 0);
    for (i, unit) in data.chunks(UNIT).enumerate() {
        out.push(
            blake3::Hasher::new_keyed(key)
                .set_input_offset((offset + i * UNIT) as u64)
                .update(unit)
                .finalize_non_root(),
        );
    }
}

/// The result of [`chunk_hash`] (with units) from the chaining values of every
/// unit of `data`.
pub fn from_unit_cvs(
    key: &[u8; 32],
    data: &[u8],
    cvs_full: &[[u8; 32]],
) -> (ChunkId, Option<Vec<UnitCv>>) {
    if data.len() <= UNIT {
        return (ChunkId(*blake3::keyed_hash(key, data).as_bytes()), None);
    }
    let root = merge(key, cvs_full, data.len() as u64, true);
    let cvs = cvs_full
        .iter()
        .map(|cv| std::array::from_fn(|i| cv[i]))
        .collect();
    (ChunkId(root), Some(cvs))
}

/// Merge the unit chaining values of a subtree of `len` bytes, following
/// BLAKE3's rule that a left subtree holds the largest power-of-two number of
/// 1 KiB chunks that leaves at least one byte on the right. Since `len` >
/// UNIT at every split, left sizes are multiples of UNIT and the split falls
/// between whole units.
fn merge(key: &[u8; 32], cvs: &[[u8; 32]], len: u64, root: bool) -> [u8; 32] {
    debug_assert!(len > UNIT as u64 || !root);
    if len <= UNIT as u64 {
        return cvs[0];
    }
    let left_len = left_subtree_len(len);
    // left_len < len, the length of a chunk in memory: it fits usize.
    #[allow(clippy::cast_possible_truncation)]
    let left_units = (left_len / UNIT as u64) as usize;
    let left = merge(key, &cvs[..left_units], left_len, false);
    let right = merge(key, &cvs[left_units..], len - left_len, false);
    if root {
        *merge_subtrees_root(&left, &right, Mode::KeyedHash(key)).as_bytes()
    } else {
        merge_subtrees_non_root(&left, &right, Mode::KeyedHash(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_standard_keyed_blake3() {
        let key = [5u8; 32];
        let data: Vec<u8> = (0..(3u32 << 20) + 777)
            .map(|i| (i * 31 % 251).to_le_bytes()[0])
            .collect();
        for len in [
            0,
            1,
            1024,
            8191,
            8192,
            8193,
            16384,
            24576,
            65536 + 3,
            (1 << 20) - 1,
            1 << 20,
            (1 << 20) + 8192,
            3 << 20,
            (3 << 20) + 777,
        ] {
            let (id, cvs) = chunk_hash(&key, &data[..len], true);
            assert_eq!(
                id.0,
                *blake3::keyed_hash(&key, &data[..len]).as_bytes(),
                "len {len}"
            );
            if len > UNIT {
                assert_eq!(cvs.unwrap().len(), len.div_ceil(UNIT));
            }
        }
    }

    #[test]
    fn only_changed_units_change_their_value() {
        let key = [1u8; 32];
        let a: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i % 253).to_le_bytes()[0])
            .collect();
        let mut b = a.clone();
        b[5 * UNIT + 17] ^= 1;
        b[50 * UNIT] ^= 1;
        let (_, ca) = chunk_hash(&key, &a, true);
        let (_, cb) = chunk_hash(&key, &b, true);
        let diff: Vec<usize> = ca
            .unwrap()
            .iter()
            .zip(cb.unwrap())
            .enumerate()
            .filter(|(_, (x, y))| *x != y)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(diff, vec![5, 50]);
    }

    proptest! {
        #[test]
        fn any_length_agrees(len in 0usize..200_000, seed in any::<u8>()) {
            let key = [seed; 32];
            let data: Vec<u8> = (0..len)
                .map(|i| i.to_le_bytes()[0].wrapping_mul(seed | 1))
                .collect();
            let (id, _) = chunk_hash(&key, &data, true);
            prop_assert_eq!(id.0, *blake3::keyed_hash(&key, &data).as_bytes());
        }
    }
}
