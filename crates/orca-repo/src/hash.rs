//! Chunk fingerprints with unit-level chaining values.
//!
//! The chunk id is the standard keyed BLAKE3 of the chunk. BLAKE3 is a tree
//! hash, and every unit-aligned unit of a chunk (a power of two from 2 to
//! 8 KiB) is a complete subtree of that tree, as is every 16 KiB-aligned
//! group of units, so hashing those subtrees and merging their chaining
//! values yields the id and, on the way, one value per unit. Comparing those
//! values with the ones of an earlier version of the chunk tells which units
//! (Oracle blocks, or 8 KiB slices of larger ones) changed; the writer then
//! stores only those units (a delta).
//!
//! Why groups: BLAKE3 hashes up to 16 of its 1 KiB chunks at once with
//! AVX-512, so an 8 KiB subtree runs at half the width of a 16 KiB one (3.45
//! against 5.5 GB/s per core here), a 2 KiB one at an eighth. A writer that
//! knows the chunk's last version (its anchor) hashes each group whole and
//! compares it with the anchor's group value; only a group that differs has
//! its units hashed apart, to tell which block changed. An unchanged full
//! then hashes at full width whatever the unit, and a changed block still
//! costs only itself in a delta.

use blake3::hazmat::{
    HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

use crate::id::ChunkId;

/// Granularity of change detection and of deltas by default, and the largest: one
/// default Oracle block (a larger block is several units).
pub const UNIT: usize = 8192;

/// The smallest unit: Oracle's smallest block.
pub const MIN_UNIT: usize = 2048;

/// Units hashed whole at once when their last version is known (two of 8 KiB, a pair;
/// eight of 2 KiB).
pub const GROUP: usize = 16384;

/// The unit for a stream of Oracle blocks of `block_size` bytes: the block, within
/// [`MIN_UNIT`]..=[`UNIT`], so that a changed block costs itself and no neighbour.
pub fn unit_for_block(block_size: usize) -> usize {
    if block_size.is_power_of_two() {
        block_size.clamp(MIN_UNIT, UNIT)
    } else {
        UNIT
    }
}

/// The unit for a file whose first bytes are `head`: its block size when they are block 0
/// of a datafile of 2 or 4 KiB blocks (an image copy, a datafile stored as a file), so that
/// a changed block costs itself; else [`UNIT`]. 32 bytes of head are enough.
pub fn unit_for_file(head: &[u8]) -> usize {
    match orca_oracle::FileHeaderBlock::parse(head) {
        Ok(b) if b.kind() == orca_oracle::block::FileKind::Datafile => {
            unit_for_block(b.block_size as usize)
        }
        _ => UNIT,
    }
}

/// Whether `unit` is a unit this module hashes by.
pub fn valid_unit(unit: usize) -> bool {
    unit.is_power_of_two() && (MIN_UNIT..=UNIT).contains(&unit)
}

/// A unit's value: its chaining value truncated to 128 bits (bytes 0-15),
/// then 8 bytes of its group's (bytes 16-23): the first unit of a complete
/// group holds the group value's bytes 0-7, the second its bytes 8-15.
/// Any other unit (the third and later of a group of small units, the units
/// of an incomplete group) carries bytes 16-23 of its own value there.
/// 128 bits make an undetected change of a unit or of a group a 2^-128 event.
pub type UnitCv = [u8; 24];

/// The part of a chunk's tree one unit accounts for, as hashed so far.
#[derive(Clone, Copy, Debug)]
pub enum Node {
    /// The unit hashed on its own: its chaining value.
    Unit([u8; 32]),
    /// The first unit of a group hashed whole and found equal to the anchor's
    /// group: the group's chaining value, and the unit's value (the anchor's).
    Group([u8; 32], UnitCv),
    /// Another unit of such a group, and its value (the anchor's).
    Covered(UnitCv),
}

/// Keyed chunk id, plus the values of its units of `unit` bytes when
/// `with_units` and the chunk is longer than one unit. `anchor`, the values of
/// the chunk's last version, lets groups equal to it be hashed whole.
pub fn chunk_hash(
    key: &[u8; 32],
    data: &[u8],
    unit: usize,
    with_units: bool,
    anchor: Option<&[UnitCv]>,
) -> (ChunkId, Option<Vec<UnitCv>>) {
    debug_assert!(valid_unit(unit));
    if !with_units || data.len() <= unit {
        return (ChunkId(*blake3::keyed_hash(key, data).as_bytes()), None);
    }
    let mut nodes = Vec::with_capacity(data.len().div_ceil(unit));
    hash_units(key, data, 0, unit, anchor, &mut nodes);
    from_nodes(key, data, unit, &nodes)
}

/// Append the nodes of the units of `data`, which starts `offset` bytes (a
/// multiple of `unit`) into its chunk: a group past the first that `data`
/// holds whole and that equals the anchor's is hashed at once, any other
/// unit on its own. Lets a reader hash each part of a chunk right after
/// reading it, while it is still in the cache.
pub fn hash_units(
    key: &[u8; 32],
    data: &[u8],
    offset: usize,
    unit: usize,
    anchor: Option<&[UnitCv]>,
    out: &mut Vec<Node>,
) {
    debug_assert_eq!(offset % unit, 0);
    let mut at = 0;
    while at < data.len() {
        let pos = offset + at;
        if let Some(a) = anchor
            && pos.is_multiple_of(GROUP)
            && pos > 0
            && at + GROUP <= data.len()
        {
            let cv = group_cv(key, &data[at..at + GROUP], pos);
            if group_value(a, unit, pos / GROUP).is_some_and(|v| v[..] == cv[..16]) {
                out.extend(group_nodes(cv, a, pos / unit, unit));
                at += GROUP;
                continue;
            }
        }
        let end = (at + unit).min(data.len());
        unit_cvs(key, &data[at..end], pos, unit, out);
        at = end;
    }
}

/// The nodes of a group hashed whole, of chaining value `cv`, its first unit `first`:
/// its units' values are the anchor's.
pub fn group_nodes(
    cv: [u8; 32],
    anchor: &[UnitCv],
    first: usize,
    unit: usize,
) -> impl Iterator<Item = Node> + '_ {
    let values = &anchor[first..first + GROUP / unit];
    std::iter::once(Node::Group(cv, values[0])).chain(values[1..].iter().map(|&v| Node::Covered(v)))
}

/// Append the nodes of the units of `data`, which starts `offset` bytes (a
/// multiple of `unit`) into its chunk, each hashed on its own.
pub fn unit_cvs(key: &[u8; 32], data: &[u8], offset: usize, unit: usize, out: &mut Vec<Node>) {
    debug_assert_eq!(offset % unit, 0);
    for (i, bytes) in data.chunks(unit).enumerate() {
        out.push(Node::Unit(subtree(key, bytes, offset + i * unit)));
    }
}

/// The chaining value of the group `data` ([`GROUP`] bytes, `offset` a
/// multiple of [`GROUP`] into its chunk).
pub fn group_cv(key: &[u8; 32], data: &[u8], offset: usize) -> [u8; 32] {
    debug_assert!(data.len() == GROUP && offset.is_multiple_of(GROUP));
    subtree(key, data, offset)
}

fn subtree(key: &[u8; 32], data: &[u8], offset: usize) -> [u8; 32] {
    blake3::Hasher::new_keyed(key)
        .set_input_offset(offset as u64)
        .update(data)
        .finalize_non_root()
}

/// Group `g`'s value in the values of a chunk's units of `unit` bytes, when the values
/// reach past it.
pub fn group_value(values: &[UnitCv], unit: usize, g: usize) -> Option<[u8; 16]> {
    let per = GROUP / unit;
    if values.len() < (g + 1) * per {
        return None;
    }
    let (a, b) = (&values[g * per], &values[g * per + 1]);
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

/// The result of [`chunk_hash`] (with units of `unit` bytes) from the nodes of every unit
/// of `data`. Bytes are read only when the chunk is one unit or less, the
/// tree's root then being a unit.
pub fn from_nodes(
    key: &[u8; 32],
    data: &[u8],
    unit: usize,
    nodes: &[Node],
) -> (ChunkId, Option<Vec<UnitCv>>) {
    let len = data.len();
    if len <= unit {
        return (ChunkId(*blake3::keyed_hash(key, data).as_bytes()), None);
    }
    let root = merge(key, nodes, unit, 0, len as u64, true);
    let per = GROUP / unit;
    let groups = len / GROUP;
    let mut values = Vec::with_capacity(nodes.len());
    for g in 0..groups {
        let units = &nodes[g * per..(g + 1) * per];
        if let Node::Group(_, first) = units[0] {
            values.push(first);
            values.extend(units[1..].iter().map(|n| match n {
                Node::Covered(v) => *v,
                _ => unreachable!("a group hashed whole covers all its units"),
            }));
            continue;
        }
        let group = merge(key, nodes, unit, g * per, GROUP as u64, false);
        for (j, node) in units.iter().enumerate() {
            let Node::Unit(cv) = node else {
                unreachable!("a group is hashed whole from its first unit");
            };
            let mut v = [0; 24];
            v[..16].copy_from_slice(&cv[..16]);
            v[16..].copy_from_slice(match j {
                0 => &group[..8],
                1 => &group[8..16],
                _ => &cv[16..24],
            });
            values.push(v);
        }
    }
    for node in &nodes[groups * per..] {
        let Node::Unit(cv) = node else {
            unreachable!("only complete groups are hashed whole");
        };
        values.push(std::array::from_fn(|i| cv[i]));
    }
    (ChunkId(root), Some(values))
}

/// Merge the nodes of a subtree of `len` bytes starting at unit `first`,
/// following BLAKE3's rule that a left subtree holds the largest
/// power-of-two number of 1 KiB chunks that leaves at least one byte on the
/// right. Since `len` > `unit` at every split, left sizes are multiples of
/// `unit` and the split falls between whole units; a subtree of [`GROUP`]
/// bytes starts at a multiple of it, so it is a group.
fn merge(
    key: &[u8; 32],
    nodes: &[Node],
    unit: usize,
    first: usize,
    len: u64,
    root: bool,
) -> [u8; 32] {
    debug_assert!(len > unit as u64 || !root);
    match nodes[first] {
        Node::Unit(cv) if len <= unit as u64 => return cv,
        Node::Group(cv, _) if len == GROUP as u64 && !root => return cv,
        Node::Covered(_) | Node::Group(..) if len <= GROUP as u64 => {
            unreachable!("a group hashed whole is a subtree of its own, never the root")
        }
        _ => {}
    }
    let left_len = left_subtree_len(len);
    // left_len < len, the length of a chunk in memory: it fits usize.
    #[allow(clippy::cast_possible_truncation)]
    let left_units = (left_len / unit as u64) as usize;
    let left = merge(key, nodes, unit, first, left_len, false);
    let right = merge(key, nodes, unit, first + left_units, len - left_len, false);
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

    const UNITS: [usize; 3] = [MIN_UNIT, 4096, UNIT];

    #[test]
    fn matches_standard_keyed_blake3() {
        let key = [5u8; 32];
        let data: Vec<u8> = (0..(3u32 << 20) + 777)
            .map(|i| (i * 31 % 251).to_le_bytes()[0])
            .collect();
        for unit in UNITS {
            for len in [
                0,
                1,
                1024,
                2047,
                2049,
                4097,
                8191,
                8192,
                8193,
                16384,
                16384 + 2048,
                24576,
                65536 + 3,
                (1 << 20) - 1,
                1 << 20,
                (1 << 20) + 8192,
                3 << 20,
                (3 << 20) + 777,
            ] {
                let (id, cvs) = chunk_hash(&key, &data[..len], unit, true, None);
                assert_eq!(
                    id.0,
                    *blake3::keyed_hash(&key, &data[..len]).as_bytes(),
                    "unit {unit} len {len}"
                );
                if len > unit {
                    assert_eq!(cvs.unwrap().len(), len.div_ceil(unit));
                }
            }
        }
    }

    #[test]
    fn only_changed_units_change_their_value() {
        let key = [1u8; 32];
        let a: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i % 253).to_le_bytes()[0])
            .collect();
        for unit in UNITS {
            let mut b = a.clone();
            b[5 * unit + 17] ^= 1;
            b[50 * unit] ^= 1;
            let (_, ca) = chunk_hash(&key, &a, unit, true, None);
            let (_, cb) = chunk_hash(&key, &b, unit, true, None);
            let (ca, cb) = (ca.unwrap(), cb.unwrap());
            assert_eq!(changed_units(&ca, &cb), vec![5, 50], "unit {unit}");
            // Unit 4 shares its group with unit 5 at every unit size: its group half
            // changed, not its own value.
            let per = GROUP / unit;
            let first = 5 / per * per;
            assert_ne!(ca[first], cb[first]);
            assert!(same_unit(&ca[first], &cb[first]));
            assert_eq!(
                group_value(&ca, unit, 5 * unit / GROUP + 1),
                group_value(&cb, unit, 5 * unit / GROUP + 1)
            );
            assert_ne!(
                group_value(&ca, unit, 5 * unit / GROUP),
                group_value(&cb, unit, 5 * unit / GROUP)
            );
        }
    }

    /// What a writer with the anchor does, the chunk arriving in parts of
    /// `part` bytes; and how many groups it hashed whole.
    fn with_groups(
        key: &[u8; 32],
        data: &[u8],
        unit: usize,
        anchor: &[UnitCv],
        part: usize,
    ) -> ((ChunkId, Option<Vec<UnitCv>>), usize) {
        let mut nodes = Vec::new();
        for (i, p) in data.chunks(part).enumerate() {
            hash_units(key, p, i * part, unit, Some(anchor), &mut nodes);
        }
        let whole = nodes
            .iter()
            .filter(|n| matches!(n, Node::Group(..)))
            .count();
        (from_nodes(key, data, unit, &nodes), whole)
    }

    #[test]
    fn groups_hashed_whole_give_the_id_and_values_of_units_hashed_apart() {
        let key = [9u8; 32];
        let data: Vec<u8> = (0..(1u32 << 20) + 3 * 8192 + 5)
            .map(|i| (i * 7 % 249).to_le_bytes()[0])
            .collect();
        for unit in UNITS {
            for len in [
                GROUP + 1,
                GROUP + unit,
                2 * GROUP,
                2 * GROUP + 1,
                5 * GROUP + unit + 3,
                (1 << 20) - 1,
                1 << 20,
                (1 << 20) + 3 * 8192 + 5,
            ] {
                let old = &data[..len];
                let (id, values) = chunk_hash(&key, old, unit, true, None);
                let values = values.unwrap();
                let groups = len / GROUP;
                let mut new = old.to_vec();
                let at = len * 2 / 3;
                new[at] ^= 0x40;
                let (id2, values2) = chunk_hash(&key, &new, unit, true, None);
                let values2 = values2.unwrap();
                assert_ne!(id2, id);
                assert_eq!(changed_units(&values, &values2), vec![at / unit]);
                // Whole, in parts of three 8 KiB (every other group split), of one unit.
                let in_thirds = (1..groups)
                    .filter(|g| (2 * g) / 3 == (2 * g + 1) / 3)
                    .count();
                for (part, whole) in [(len, groups - 1), (3 * UNIT, in_thirds), (unit, 0)] {
                    let same = with_groups(&key, old, unit, &values, part);
                    assert_eq!(
                        same,
                        ((id, Some(values.clone())), whole),
                        "unit {unit} len {len} part {part}"
                    );
                    // A changed block: its group is hashed apart, the others stay whole.
                    let (changed, _) = with_groups(&key, &new, unit, &values, part);
                    assert_eq!(
                        changed,
                        (id2, Some(values2.clone())),
                        "unit {unit} len {len} part {part}"
                    );
                }
                // Another chunk's values as the anchor: no group taken from them.
                let other = chunk_hash(&[8u8; 32], old, unit, true, None).1.unwrap();
                assert_eq!(
                    with_groups(&key, old, unit, &other, len),
                    ((id, Some(values.clone())), 0)
                );
                // Values of another unit size never pass for this one's.
                for wrong in UNITS.into_iter().filter(|&u| u != unit) {
                    let theirs = chunk_hash(&key, old, wrong, true, None).1.unwrap();
                    assert_eq!(with_groups(&key, old, unit, &theirs, len).1, 0);
                }
            }
        }
    }

    #[test]
    fn units_follow_the_block_size() {
        assert_eq!(
            [1024, 2048, 4096, 8192, 16384, 32768, 6000].map(unit_for_block),
            [MIN_UNIT, MIN_UNIT, 4096, UNIT, UNIT, UNIT, UNIT]
        );
        assert!(UNITS.iter().all(|&u| valid_unit(u)));
        assert!(![1024, 3000, 16384].iter().any(|&u| valid_unit(u)));
    }

    proptest! {
        #[test]
        fn any_length_agrees(len in 0usize..200_000, seed in any::<u8>(), shift in 0usize..3) {
            let key = [seed; 32];
            let data: Vec<u8> = (0..len)
                .map(|i| i.to_le_bytes()[0].wrapping_mul(seed | 1))
                .collect();
            let (id, _) = chunk_hash(&key, &data, UNITS[shift], true, None);
            prop_assert_eq!(id.0, *blake3::keyed_hash(&key, &data).as_bytes());
        }

        /// A writer with the last version's values, the chunk arriving in parts of any
        /// unit-aligned size: the id and values are those of the chunk hashed unit by unit,
        /// and exactly the changed units differ from the last version's.
        #[test]
        fn hashing_with_an_anchor_agrees(
            len in 1usize..300_000,
            shift in 0usize..3,
            parts in 1usize..40,
            changes in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let (key, unit) = ([3u8; 32], UNITS[shift]);
            let old: Vec<u8> = (0..len).map(|i| (i * 131 % 251).to_le_bytes()[0]).collect();
            let mut new = old.clone();
            for &c in &changes {
                new[c % len] ^= 0x11;
            }
            let (_, was) = chunk_hash(&key, &old, unit, true, None);
            let (id, values) = chunk_hash(&key, &new, unit, true, None);
            prop_assert_eq!(id.0, *blake3::keyed_hash(&key, &new).as_bytes());
            if let (Some(was), Some(values)) = (was, values.as_ref()) {
                let got = with_groups(&key, &new, unit, &was, parts * unit).0;
                prop_assert_eq!(&got, &(id, Some(values.clone())));
                let expected: Vec<usize> = (0..len.div_ceil(unit))
                    .filter(|u| {
                        let r = u * unit..((u + 1) * unit).min(len);
                        old[r.clone()] != new[r]
                    })
                    .collect();
                prop_assert_eq!(changed_units(&was, values), expected);
            }
        }
    }
}
