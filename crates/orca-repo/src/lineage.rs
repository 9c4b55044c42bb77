//! Lineage: what a source (a datafile, a file path) looked like at its last
//! backup, chunk position by chunk position.
//!
//! A writer given the lineage of its source
//! - does not ask the repository about chunks that are unchanged since the
//!   last backup (the "fingerprint cache": no probe, no round trip);
//! - stores a changed chunk as a delta of the full chunk (the *anchor*) that
//!   held that position before, when few of its units changed.
//!
//! [`LineageCache`] keeps lineages on local disk between runs: SQLite in WAL
//! mode, so parallel processes (RMAN channels) share it safely and a crash
//! loses at most the entry being written. Entries expire after `max_age` and
//! the cache is bounded in size by evicting the least recently used sources.
//!
//! A lineage remembers when (on the store's clock) the session that recorded
//! it began, [`Lineage::since`]: a writer relies on it only after the store
//! confirms that no garbage collection since then could have swept its
//! chunks, and its session then holds collections back to that time (see
//! [`crate::index::WriterSessions::begin_session`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{RepoError, Result};
use crate::hash::UnitCv;

use crate::id::ChunkId;

/// The chunk a later version of the same position can be stored against: a full chunk, or
/// a delta short enough that one more stays within [`crate::MAX_DELTA_DEPTH`]. What the cache
/// keeps of it is its [`AnchorRef`]; the rest a writer reads from the chunk's payload and its
/// chain's ([`crate::codec::UnitValues`]), so the cache holds no per-unit values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The chunk.
    pub id: ChunkId,
    /// Its plaintext length.
    pub len: u32,
    /// Values of its units (of its writer's [`crate::WriteOptions::unit`]): a new version stores only the units whose values differ.
    pub cvs: Arc<Vec<UnitCv>>,
    /// Deltas between it and the full chunk its chain ends in (0: it is a full chunk).
    pub depth: u8,
    /// That full chunk, when it is not one itself.
    pub root: Option<ChunkId>,
    /// Its units that differ from `root`'s, in order.
    pub dirty: Arc<Vec<u16>>,
}

/// An [`Anchor`] as a lineage names it: the chunk and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnchorRef {
    /// The chunk.
    pub id: ChunkId,
    /// Its plaintext length.
    pub len: u32,
}

/// One chunk position of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineageEntry {
    /// The chunk last backed up at this position.
    pub chunk: ChunkId,
    /// The chunk to store a changed version of this position against, if any: usually
    /// `chunk` itself, an older one when `chunk` was not stored by this position's writer.
    pub anchor: Option<AnchorRef>,
}

/// Chunk positions (byte offset in the stream) of one source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lineage {
    /// Entries by byte offset of the chunk in the stream.
    pub entries: HashMap<u64, LineageEntry>,
    /// When the writer session that recorded it began, on the store's clock
    /// ([`crate::SessionGrant::started`]): every chunk named here was
    /// referenced at or after this time.
    pub since: i64,
}

impl Lineage {
    /// No position is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Positions known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the positions held at the last backup, as their anchors tell: a level 1 piece,
    /// which carries only changed blocks, covers few even when it touches every position.
    pub fn bytes(&self) -> u64 {
        self.entries
            .values()
            .filter_map(|e| e.anchor)
            .map(|a| u64::from(a.len))
            .sum()
    }

    /// Chunk ids the repository held at the last backup.
    pub fn known(&self) -> HashSet<ChunkId> {
        self.entries.values().map(|e| e.chunk).collect()
    }
}

/// Defaults: entries older than a week are not trusted; 4 GiB at most.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default size limit of a cache file (4 GiB); the least recently used sources go first.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

/// Version of the tables below: 2 = 16 KiB unit values and the store's
/// session time per source; 3 = the anchor's place in its delta chain (depth, the
/// chain's full chunk, the units that differ from it); 4 = 8 KiB units; 5 = unit values
/// with their pair's (24 bytes, `hash::UnitCv`); 6 = chunk ids only, a source's positions
/// in one blob (the unit values are read from the chunks' payloads). Older caches are
/// dropped (losing a cache costs probes, never data).
const LAYOUT: &str = "6";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (key TEXT PRIMARY KEY, updated INTEGER NOT NULL, since INTEGER NOT NULL, bytes INTEGER NOT NULL, positions BLOB NOT NULL);
";

/// SQLite pages of a new cache: a source's positions are one blob, so small pages waste
/// little at its end, and an empty cache is 4 pages (4 KiB) rather than 16 KiB.
const CACHE_PAGE: u32 = 1024;

/// `positions` anchor kinds: none, the position's chunk itself, another chunk.
const NO_ANCHOR: u8 = 0;
const SELF_ANCHOR: u8 = 1;
const OTHER_ANCHOR: u8 = 2;

/// A source's positions as the cache keeps them, in offset order (docs/design.md, "Lineage
/// cache"): `u64 offset | chunk id (32) | u8 kind | anchor id (32, kind 2) | u32 anchor
/// length (kinds 1, 2)`, little-endian; 45 bytes a position whose anchor is its chunk.
fn encode_positions(entries: &HashMap<u64, LineageEntry>) -> Vec<u8> {
    let mut offsets: Vec<u64> = entries.keys().copied().collect();
    offsets.sort_unstable();
    let mut out = Vec::with_capacity(offsets.len() * 45);
    for off in offsets {
        let e = &entries[&off];
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(e.chunk.as_bytes());
        match e.anchor {
            None => out.push(NO_ANCHOR),
            Some(a) if a.id == e.chunk => {
                out.push(SELF_ANCHOR);
                out.extend_from_slice(&a.len.to_le_bytes());
            }
            Some(a) => {
                out.push(OTHER_ANCHOR);
                out.extend_from_slice(a.id.as_bytes());
                out.extend_from_slice(&a.len.to_le_bytes());
            }
        }
    }
    out
}

/// [`encode_positions`] read back; `None` for bytes it did not write (a damaged cache).
fn decode_positions(mut b: &[u8]) -> Option<HashMap<u64, LineageEntry>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = b.split_at_checked(n)?;
        *b = rest;
        Some(head)
    }
    let mut entries = HashMap::new();
    while !b.is_empty() {
        let off = u64::from_le_bytes(take(&mut b, 8)?.try_into().ok()?);
        let chunk = ChunkId::from_slice(take(&mut b, 32)?)?;
        let id = match take(&mut b, 1)?[0] {
            NO_ANCHOR => None,
            SELF_ANCHOR => Some(chunk),
            OTHER_ANCHOR => Some(ChunkId::from_slice(take(&mut b, 32)?)?),
            _ => return None,
        };
        let anchor = match id {
            Some(id) => Some(AnchorRef {
                id,
                len: u32::from_le_bytes(take(&mut b, 4)?.try_into().ok()?),
            }),
            None => None,
        };
        if entries
            .insert(off, LineageEntry { chunk, anchor })
            .is_some()
        {
            return None;
        }
    }
    Some(entries)
}

/// The local fingerprint cache of one repository: a SQLite file holding a
/// [`Lineage`] per source key (a file, an RMAN datafile identity). It only saves
/// probes and reads: losing it costs one slower backup.
#[derive(Debug)]
pub struct LineageCache {
    conn: Mutex<Connection>,
    path: PathBuf,
    max_age: Duration,
    max_bytes: u64,
}

impl LineageCache {
    /// Open (or create) the cache named `repo_id` under `dir`: a repository's
    /// [`crate::Repository::cache_id`], which changes with the chunk-id key, so ids keyed
    /// otherwise never come out of it.
    pub fn open(dir: &Path, repo_id: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            RepoError::io(
                format!("cannot create cache directory {}", dir.display()),
                e,
            )
        })?;
        let path = dir.join(format!("lineage-{repo_id}.sqlite"));
        let ctx = |what: &str| format!("{}: {what}", path.display());
        let mut conn = crate::index::open_wal(&path, Some(CACHE_PAGE))
            .map_err(|e| RepoError::cache(ctx("open"), e))?;
        // Channels open the cache at the same moment: the layout is read and
        // reset in the transaction that writes it, or a late opener would drop
        // what an earlier one had stored.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| RepoError::cache(ctx("lock"), e))?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);")
            .map_err(|e| RepoError::cache(ctx("create schema"), e))?;
        let layout: Option<String> = tx
            .query_row("SELECT v FROM meta WHERE k = 'layout'", [], |r| r.get(0))
            .optional()
            .map_err(|e| RepoError::cache(ctx("read"), e))?;
        // Chaining values of another unit size would make every changed chunk
        // a wrong delta: an older cache is dropped whole.
        let reset = if layout.as_deref() == Some(LAYOUT) {
            ""
        } else {
            "DROP TABLE IF EXISTS entries; DROP TABLE IF EXISTS sources;"
        };
        tx.execute_batch(&format!(
            "{reset} {SCHEMA} INSERT OR REPLACE INTO meta(k, v) VALUES ('layout', '{LAYOUT}');"
        ))
        .map_err(|e| RepoError::cache(ctx("create schema"), e))?;
        tx.commit()
            .map_err(|e| RepoError::cache(ctx("create schema"), e))?;
        Ok(LineageCache {
            conn: Mutex::new(conn),
            path,
            max_age: DEFAULT_MAX_AGE,
            max_bytes: DEFAULT_MAX_BYTES,
        })
    }

    /// The same cache with other age and size limits.
    pub fn with_limits(mut self, max_age: Duration, max_bytes: u64) -> Self {
        self.max_age = max_age;
        self.max_bytes = max_bytes;
        self
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c).map_err(|e| RepoError::cache(format!("{}: {what}", self.path.display()), e))
    }

    /// The lineage of `key`, empty when unknown, expired or unreadable.
    pub fn load(&self, key: &str) -> Result<Lineage> {
        // Saturating: an age beyond i64 seconds means "keep everything".
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        let oldest = crate::now_unix().saturating_sub(max_age);
        let source: Option<(i64, Vec<u8>)> = self.with("load", |c| {
            c.query_row(
                "SELECT since, positions FROM sources WHERE key = ?1 AND updated >= ?2",
                params![key, oldest],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })?;
        let Some((since, positions)) = source else {
            return Ok(Lineage::default());
        };
        match decode_positions(&positions) {
            Some(entries) => Ok(Lineage { entries, since }),
            None => {
                tracing::warn!(cache = %self.path.display(), source = key, "fingerprint cache entry is damaged; probing instead");
                Ok(Lineage::default())
            }
        }
    }

    /// Replace the lineage of `key`, then keep the cache within its size.
    pub fn store(&self, key: &str, lineage: &Lineage) -> Result<()> {
        let now = crate::now_unix();
        let positions = encode_positions(&lineage.entries);
        let bytes = positions.len() as u64 + key.len() as u64;
        self.with("store", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR REPLACE INTO sources(key, updated, since, bytes, positions) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key, now, lineage.since, bytes, positions],
            )?;
            // Evict the least recently used sources beyond the size bound.
            let total: u64 = tx.query_row("SELECT coalesce(sum(bytes), 0) FROM sources", [], |r| r.get(0))?;
            if total > self.max_bytes {
                let mut excess = total - self.max_bytes;
                let victims: Vec<(String, u64)> = {
                    let mut st = tx.prepare("SELECT key, bytes FROM sources WHERE key != ?1 ORDER BY updated")?;
                    let rows = st.query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                for (victim, b) in victims {
                    if excess == 0 {
                        break;
                    }
                    tx.execute("DELETE FROM sources WHERE key = ?1", [&victim])?;
                    excess = excess.saturating_sub(b);
                }
            }
            tx.commit()
        })
    }

    /// Record that `key`'s lineage was backed up again unchanged, by a session that began at
    /// `since`: its entries stay as they are, only their age and session time move, so an
    /// unchanged source costs one row rather than a rewrite of every position. Returns
    /// whether the cache held the source (when not, [`Self::store`] is the call to make).
    fn touch(&self, key: &str, since: i64) -> Result<bool> {
        let now = crate::now_unix();
        self.with("touch", |c| {
            let n = c.execute(
                "UPDATE sources SET updated = ?2, since = ?3 WHERE key = ?1",
                params![key, now, since],
            )?;
            Ok(n == 1)
        })
    }

    /// Keep what a committed piece learnt of `key`: when the writer found the lineage
    /// `unchanged` ([`crate::Committed::lineage_unchanged`]) and the cache still holds it,
    /// only the source's age and session time move; else [`Self::store`].
    pub fn update(&self, key: &str, lineage: &Lineage, unchanged: bool) -> Result<()> {
        if unchanged && self.touch(key, lineage.since)? {
            return Ok(());
        }
        self.store(key, lineage)
    }

    /// Forget a source (e.g. after a commit found its cached chunks missing).
    pub fn forget(&self, key: &str) -> Result<()> {
        self.with("forget", |c| {
            c.execute("DELETE FROM sources WHERE key = ?1", [key])?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Positions of each kind: no anchor, anchored on its own chunk, on another.
    fn entry(n: u8, anchor: u8) -> LineageEntry {
        let chunk = ChunkId([n; 32]);
        LineageEntry {
            chunk,
            anchor: match anchor {
                0 => None,
                1 => Some(AnchorRef {
                    id: chunk,
                    len: 1 << 20,
                }),
                _ => Some(AnchorRef {
                    id: ChunkId([n.wrapping_add(1); 32]),
                    len: 4096 + u32::from(n),
                }),
            },
        }
    }

    #[test]
    fn store_load_forget_and_evict() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LineageCache::open(dir.path(), "r1").unwrap();
        let mut l = Lineage::default();
        l.entries.insert(0, entry(1, 0));
        l.entries.insert(1 << 20, entry(2, 1));
        l.entries.insert(2 << 20, entry(3, 2));
        cache.store("dbid:1:file:5", &l).unwrap();
        assert_eq!(cache.load("dbid:1:file:5").unwrap(), l);
        assert!(cache.load("other").unwrap().is_empty());
        cache.forget("dbid:1:file:5").unwrap();
        assert!(cache.load("dbid:1:file:5").unwrap().is_empty());

        let small = LineageCache::open(dir.path(), "r1")
            .unwrap()
            .with_limits(DEFAULT_MAX_AGE, 200);
        small.store("a", &l).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        small.store("b", &l).unwrap();
        assert!(
            small.load("a").unwrap().is_empty(),
            "least recently used source evicted"
        );
        assert_eq!(small.load("b").unwrap(), l);

        let expired = LineageCache::open(dir.path(), "r1")
            .unwrap()
            .with_limits(Duration::ZERO, u64::MAX);
        expired.store("c", &l).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert!(expired.load("c").unwrap().is_empty());
    }

    /// A touched source keeps its entries and takes the new session time; a source the
    /// cache does not hold is reported so, and not created.
    #[test]
    fn touch_moves_the_session_time_and_keeps_the_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LineageCache::open(dir.path(), "r1").unwrap();
        let mut l = Lineage {
            since: 100,
            ..Lineage::default()
        };
        l.entries.insert(0, entry(1, 2));
        cache.store("k", &l).unwrap();
        assert!(cache.touch("k", 250).unwrap());
        let back = cache.load("k").unwrap();
        assert_eq!(back.since, 250);
        assert_eq!(back.entries, l.entries);
        assert!(!cache.touch("absent", 250).unwrap());
        assert!(cache.load("absent").unwrap().is_empty());
    }

    /// A position costs 45 bytes when its anchor is its own chunk: ~45 MiB for a TiB of
    /// 1 MiB chunks, within issue 25's 64.
    #[test]
    fn a_position_anchored_on_its_chunk_costs_45_bytes() {
        let mut l = Lineage::default();
        for i in 0..1000u64 {
            l.entries
                .insert(i << 20, entry(u8::try_from(i % 256).unwrap(), 1));
        }
        assert_eq!(encode_positions(&l.entries).len(), 45 * 1000);
    }

    /// A damaged entry (cut short, an unknown anchor kind, a position twice) is read as no
    /// lineage, never as other chunks.
    #[test]
    fn damaged_positions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LineageCache::open(dir.path(), "r1").unwrap();
        let mut l = Lineage::default();
        l.entries.insert(0, entry(1, 1));
        l.entries.insert(1 << 20, entry(2, 2));
        let good = encode_positions(&l.entries);
        assert_eq!(decode_positions(&good), Some(l.entries.clone()));
        let mut unknown_kind = good.clone();
        unknown_kind[40] = 7;
        let twice = [&good[..45], &good[..45]].concat();
        for bad in [&good[..good.len() - 1], &unknown_kind[..], &twice[..]] {
            assert_eq!(decode_positions(bad), None);
            cache.store("k", &l).unwrap();
            cache
                .with("damage", |c| {
                    c.execute("UPDATE sources SET positions = ?1 WHERE key = 'k'", [bad])
                })
                .unwrap();
            assert!(cache.load("k").unwrap().is_empty());
        }
    }

    proptest::proptest! {
        #[test]
        fn positions_round_trip(
            positions in proptest::collection::hash_map(
                proptest::num::u64::ANY,
                (proptest::array::uniform32(proptest::num::u8::ANY), 0u8..3, proptest::num::u32::ANY),
                0..50,
            )
        ) {
            let entries: HashMap<u64, LineageEntry> = positions
                .into_iter()
                .map(|(off, (id, kind, len))| {
                    let chunk = ChunkId(id);
                    let anchor = match kind {
                        0 => None,
                        1 => Some(AnchorRef { id: chunk, len }),
                        _ => Some(AnchorRef { id: ChunkId(blake3::hash(&id).into()), len }),
                    };
                    (off, LineageEntry { chunk, anchor })
                })
                .collect();
            proptest::prop_assert_eq!(decode_positions(&encode_positions(&entries)), Some(entries));
        }
    }
}

#[cfg(test)]
mod concurrency {
    use super::*;

    /// RMAN's channels open one cache at once (one process, or several sharing a
    /// directory): every open must succeed and no open may drop what another stored.
    #[test]
    fn concurrent_opens_and_stores_lose_nothing() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let mut l = Lineage::default();
            l.entries.insert(
                0,
                LineageEntry {
                    chunk: ChunkId([round; 32]),
                    anchor: None,
                },
            );
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let (dir, l) = (dir.path().to_path_buf(), l.clone());
                    std::thread::spawn(move || {
                        let c = LineageCache::open(&dir, "r").map_err(|e| e.to_string())?;
                        c.store(&format!("k{t}"), &l).map_err(|e| e.to_string())
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap().unwrap();
            }
            // Reopened at once once every connection closed (the next backup's channels).
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    let (dir, l) = (dir.path().to_path_buf(), l.clone());
                    std::thread::spawn(move || {
                        let c = LineageCache::open(&dir, "r").map_err(|e| e.to_string())?;
                        assert_eq!(
                            c.load(&format!("k{t}")).unwrap(),
                            l,
                            "round {round} key k{t}"
                        );
                        Ok::<_, String>(())
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap().unwrap();
            }
        }
    }
}
