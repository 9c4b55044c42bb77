//! Chunk fingerprints with unit-level chaining values.
//!
//! The chunk id is the standard keyed BLAKE3 of the chunk. BLAKE3 is a tree
//! hash, and every 8 KiB-aligned unit of a chunk is a complete subtree of
//! that tree, as is every 16 KiB-aligned pair of units, so hashing those
//! subtrees and merging their chaining values yields the id and, on the way,
//! one value per unit. Comparing those values with the ones of an earlier
//! version of the chunk tells which units (8 KiB Oracle blocks) changed; the
//! writer then stores only those units (a delta).
//!
//! Why pairs: BLAKE3 hashes up to 16 of its 1 KiB chunks at once with
//! AVX-512, so an 8 KiB subtree runs at half the width of a 16 KiB one (3.45
//! against 5.5 GB/s per core here). A writer that knows the chunk's last
//! version (its anchor) hashes each pair whole and compares it with the
//! anchor's pair value; only a pair that differs has its halves hashed, to
//! tell which block changed. An unchanged full then hashes at full width,
//! and a changed block still costs only itself in a delta.

use blake3::hazmat::{
    HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

use crate::id::ChunkId;

/// Granularity of change detection and of deltas: one default Oracle block.
pub const UNIT: usize = 8192;

/// Two units, hashed whole when their last version is known.
pub const PAIR: usize = 2 * UNIT;

/// A unit's value: its chaining value truncated to 128 bits (bytes 0-15),
/// then half of its pair's, truncated likewise (bytes 16-23: the first
/// unit of a pair holds the first half). A unit with no complete pair (the
/// last of an odd count, or a short one) carries bytes 16-23 of its own
/// value there. 128 bits make an undetected change of a unit or of a pair a
/// 2^-128 event.
pub type UnitCv = [u8; 24];

/// The part of a chunk's tree one unit accounts for, as hashed so far.
#[derive(Clone, Copy, Debug)]
pub enum Node {
    /// The unit hashed on its own: its chaining value.
    Unit([u8; 32]),
    /// The first unit of a pair hashed whole and found equal to the anchor's
    /// pair: the pair's chaining value, and both units' values (the anchor's).
    Pair([u8; 32], [UnitCv; 2]),
    /// The second unit of such a pair.
    Covered,
}

/// Keyed chunk id, plus the unit values when `with_units` and the chunk is
/// longer than one unit. `anchor`, the values of the chunk's last version,
/// lets pairs equal to it be hashed whole.
pub fn chunk_hash(
    key: &[u8; 32],
    data: &[u8],
    with_units: bool,
    anchor: Option<&[UnitCv]>,
) -> (ChunkId, Option<Vec<UnitCv>>) {
    if !with_units || data.len() <= UNIT {
        return (ChunkId(*blake3::keyed_hash(key, data).as_bytes()), None);
    }
    let mut nodes = Vec::with_capacity(data.len().div_ceil(UNIT));
    hash_units(key, data, 0, anchor, &mut nodes);
    from_nodes(key, data, &nodes)
}

/// Append the nodes of the units of `data`, which starts `offset` bytes (a
/// multiple of [`UNIT`]) into its chunk: a pair past the first that `data`
/// holds whole and that equals the anchor's is hashed at once, any other
/// unit on its own. Lets a reader hash each part of a chunk right after
/// reading it, while it is still in the cache.
pub fn hash_units(
    key: &[u8; 32],
    data: &[u8],
    offset: usize,
    anchor: Option<&[UnitCv]>,
    out: &mut Vec<Node>,
) {
    debug_assert_eq!(offset % UNIT, 0);
    let mut at = 0;
    while at < data.len() {
        let (pos, unit) = (offset + at, (offset + at) / UNIT);
        if let Some(a) = anchor
            && pos.is_multiple_of(PAIR)
            && unit > 0
            && at + PAIR <= data.len()
        {
            let cv = pair_cv(key, &data[at..at + PAIR], pos);
            if pair_value(a, unit / 2).is_some_and(|v| v[..] == cv[..16]) {
                out.extend([Node::Pair(cv, [a[unit], a[unit + 1]]), Node::Covered]);
                at += PAIR;
                continue;
            }
        }
        let end = (at + UNIT).min(data.len());
        unit_cvs(key, &data[at..end], pos, out);
        at = end;
    }
}

/// Append the nodes of the units of `data`, which starts `offset` bytes (a
/// multiple of [`UNIT`]) into its chunk, each hashed on its own.
pub fn unit_cvs(key: &[u8; 32], data: &[u8], offset: usize, out: &mut Vec<Node>) {
    debug_assert_eq!(offset % UNIT, 0);
    for (i, unit) in data.chunks(UNIT).enumerate() {
        out.push(Node::Unit(subtree(key, unit, offset + i * UNIT)));
    }
}

/// The chaining value of the pair `data` ([`PAIR`] bytes, `offset` a
/// multiple of [`PAIR`] into its chunk).
pub fn pair_cv(key: &[u8; 32], data: &[u8], offset: usize) -> [u8; 32] {
    debug_assert!(data.len() == PAIR && offset.is_multiple_of(PAIR));
    subtree(key, data, offset)
}

fn subtree(key: &[u8; 32], data: &[u8], offset: usize) -> [u8; 32] {
    blake3::Hasher::new_keyed(key)
        .set_input_offset(offset as u64)
        .update(data)
        .finalize_non_root()
}

/// Pair `p`'s value in the unit values of a chunk where it is complete.
pub fn pair_value(values: &[UnitCv], p: usize) -> Option<[u8; 16]> {
    let (a, b) = (values.get(2 * p)?, values.get(2 * p + 1)?);
    let mut v = [0; 16];
    v[..8].copy_from_slice(&a[16..]);
    v[8..].copy_from_slice(&b[16..]);
    Some(v)
}

/// Whether two values of the unit at one place of a chunk are of the same bytes.
pub fn same_unit(a: &UnitCv, b: &UnitCv) -> bool {
    a[..16] == b[..16]
}

/// Whether a unit's chaining value is the one `value` was made from.
pub fn unit_matches(value: &UnitCv, cv: &[u8; 32]) -> bool {
    value[..16] == cv[..16]
}

/// The result of [`chunk_hash`] (with units) from the nodes of every unit
/// of `data`. Bytes are read only when the chunk is one unit or less, the
/// tree's root then being a unit.
pub fn from_nodes(key: &[u8; 32], data: &[u8], nodes: &[Node]) -> (ChunkId, Option<Vec<UnitCv>>) {
    let len = data.len();
    if len <= UNIT {
        return (ChunkId(*blake3::keyed_hash(key, data).as_bytes()), None);
    }
    let root = merge(key, nodes, 0, len as u64, true);
    let pairs = len / PAIR;
    let mut values = Vec::with_capacity(nodes.len());
    for p in 0..pairs {
        match nodes[2 * p..2 * p + 2] {
            [Node::Pair(_, v), _] => values.extend(v),
            [Node::Unit(a), Node::Unit(b)] => {
                let pair = merge_subtrees_non_root(&a, &b, Mode::KeyedHash(key));
                for (cv, half) in [(a, &pair[..8]), (b, &pair[8..16])] {
                    let mut v = [0; 24];
                    v[..16].copy_from_slice(&cv[..16]);
                    v[16..].copy_from_slice(half);
                    values.push(v);
                }
            }
            _ => unreachable!("a pair's second unit is covered only after its first"),
        }
    }
    for node in &nodes[2 * pairs..] {
        let Node::Unit(cv) = node else {
            unreachable!("only complete pairs are hashed whole");
        };
        values.push(std::array::from_fn(|i| cv[i]));
    }
    (ChunkId(root), Some(values))
}

/// Merge the nodes of a subtree of `len` bytes starting at unit `first`,
/// following BLAKE3's rule that a left subtree holds the largest
/// power-of-two number of 1 KiB chunks that leaves at least one byte on the
/// right. Since `len` > UNIT at every split, left sizes are multiples of
/// UNIT and the split falls between whole units; a subtree of [`PAIR`]
/// bytes starts at a multiple of it, so it is a pair.
fn merge(key: &[u8; 32], nodes: &[Node], first: usize, len: u64, root: bool) -> [u8; 32] {
    debug_assert!(len > UNIT as u64 || !root);
    match nodes[first] {
        Node::Unit(cv) if len <= UNIT as u64 => return cv,
        Node::Pair(cv, _) if len == PAIR as u64 && !root => return cv,
        Node::Covered | Node::Pair(..) if len <= PAIR as u64 => {
            unreachable!("a pair hashed whole is a subtree of its own, never the root")
        }
        _ => {}
    }
    let left_len = left_subtree_len(len);
    // left_len < len, the length of a chunk in memory: it fits usize.
    #[allow(clippy::cast_possible_truncation)]
    let left_units = (left_len / UNIT as u64) as usize;
    let left = merge(key, nodes, first, left_len, false);
    let right = merge(key, nodes, first + left_units, len - left_len, false);
    if root {
        *merge_subtrees_root(&left, &right, Mode::KeyedHash(key)).as_bytes()
    } else {
        merge_subtrees_non_root(&left, &right, Mode::KeyedHash(key))
    }
}

/// The units of a chunk whose `new` values differ from its `old` ones.
pub fn changed_units(old: &[UnitCv], new: &[UnitCv]) -> Vec<usize> {
    (0..new.len())
        .filter(|&u| old.get(u).is_none_or(|o| !same_unit(o, &new[u])))
        .collect()
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
            let (id, cvs) = chunk_hash(&key, &data[..len], true, None);
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
        let (_, ca) = chunk_hash(&key, &a, true, None);
        let (_, cb) = chunk_hash(&key, &b, true, None);
        let (ca, cb) = (ca.unwrap(), cb.unwrap());
        assert_eq!(changed_units(&ca, &cb), vec![5, 50]);
        // Unit 4 shares its pair with unit 5: its pair half changed, not its own value.
        assert_ne!(ca[4], cb[4]);
        assert!(same_unit(&ca[4], &cb[4]));
        assert_eq!(pair_value(&ca, 1), pair_value(&cb, 1));
        assert_ne!(pair_value(&ca, 2), pair_value(&cb, 2));
    }

    /// What a writer with the anchor does, the chunk arriving in parts of
    /// `part` bytes; and how many pairs it hashed whole.
    fn with_pairs(
        key: &[u8; 32],
        data: &[u8],
        anchor: &[UnitCv],
        part: usize,
    ) -> ((ChunkId, Option<Vec<UnitCv>>), usize) {
        let mut nodes = Vec::new();
        for (i, p) in data.chunks(part).enumerate() {
            hash_units(key, p, i * part, Some(anchor), &mut nodes);
        }
        let whole = nodes.iter().filter(|n| matches!(n, Node::Pair(..))).count();
        (from_nodes(key, data, &nodes), whole)
    }

    #[test]
    fn pairs_hashed_whole_give_the_id_and_values_of_units_hashed_apart() {
        let key = [9u8; 32];
        let data: Vec<u8> = (0..(1u32 << 20) + 3 * 8192 + 5)
            .map(|i| (i * 7 % 249).to_le_bytes()[0])
            .collect();
        for len in [
            PAIR + 1,
            PAIR + UNIT,
            2 * PAIR,
            2 * PAIR + 1,
            5 * PAIR + UNIT + 3,
            (1 << 20) - 1,
            1 << 20,
            (1 << 20) + 3 * 8192 + 5,
        ] {
            let old = &data[..len];
            let (id, values) = chunk_hash(&key, old, true, None);
            let values = values.unwrap();
            let pairs = len / PAIR;
            let mut new = old.to_vec();
            let at = len * 2 / 3;
            new[at] ^= 0x40;
            let (id2, values2) = chunk_hash(&key, &new, true, None);
            let values2 = values2.unwrap();
            assert_ne!(id2, id);
            assert_eq!(changed_units(&values, &values2), vec![at / UNIT]);
            // Whole, in parts of three units (every other pair split), of one unit.
            let in_thirds = (1..pairs)
                .filter(|p| (2 * p) / 3 == (2 * p + 1) / 3)
                .count();
            for (part, whole) in [(len, pairs - 1), (3 * UNIT, in_thirds), (UNIT, 0)] {
                let same = with_pairs(&key, old, &values, part);
                assert_eq!(
                    same,
                    ((id, Some(values.clone())), whole),
                    "len {len} part {part}"
                );
                // A changed block: its pair is hashed apart, the others stay whole.
                let (changed, _) = with_pairs(&key, &new, &values, part);
                assert_eq!(
                    changed,
                    (id2, Some(values2.clone())),
                    "len {len} part {part}"
                );
            }
            // Another chunk's values as the anchor: no pair taken from them.
            let other = chunk_hash(&[8u8; 32], old, true, None).1.unwrap();
            assert_eq!(
                with_pairs(&key, old, &other, len),
                ((id, Some(values.clone())), 0)
            );
        }
    }

    proptest! {
        #[test]
        fn any_length_agrees(len in 0usize..200_000, seed in any::<u8>()) {
            let key = [seed; 32];
            let data: Vec<u8> = (0..len)
                .map(|i| i.to_le_bytes()[0].wrapping_mul(seed | 1))
                .collect();
            let (id, _) = chunk_hash(&key, &data, true, None);
            prop_assert_eq!(id.0, *blake3::keyed_hash(&key, &data).as_bytes());
        }
    }
}
