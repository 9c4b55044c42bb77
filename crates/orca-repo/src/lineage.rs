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

const UNIT_CV: usize = std::mem::size_of::<UnitCv>();
use crate::id::ChunkId;

/// The chunk a later version of the same position can be stored against: a full chunk, or
/// a delta short enough that one more stays within [`crate::MAX_DELTA_DEPTH`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The chunk.
    pub id: ChunkId,
    /// Its plaintext length.
    pub len: u32,
    /// Chaining values of its units ([`crate::hash::UNIT`]): a new version stores only the units whose values differ.
    pub cvs: Arc<Vec<UnitCv>>,
    /// Deltas between it and the full chunk its chain ends in (0: it is a full chunk).
    pub depth: u8,
    /// That full chunk, when it is not one itself.
    pub root: Option<ChunkId>,
    /// Its units that differ from `root`'s, in order.
    pub dirty: Arc<Vec<u16>>,
}

/// One chunk position of a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineageEntry {
    /// The chunk last backed up at this position.
    pub chunk: ChunkId,
    /// The full chunk to store a changed version of this position against, if any.
    pub anchor: Option<Anchor>,
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
            .filter_map(|e| e.anchor.as_ref())
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
/// with their pair's (24 bytes, `hash::UnitCv`). Older caches are dropped (losing a cache costs probes, never data).
const LAYOUT: &str = "5";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (key TEXT PRIMARY KEY, updated INTEGER NOT NULL, since INTEGER NOT NULL, bytes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    key TEXT NOT NULL,
    offset INTEGER NOT NULL,
    chunk BLOB NOT NULL,
    anchor BLOB,
    anchor_len INTEGER,
    cvs BLOB,
    anchor_depth INTEGER NOT NULL DEFAULT 0,
    anchor_root BLOB,
    anchor_dirty BLOB,
    PRIMARY KEY (key, offset)
) WITHOUT ROWID;
";

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
        let mut conn =
            crate::index::open_wal(&path).map_err(|e| RepoError::cache(ctx("open"), e))?;
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

    /// The lineage of `key`, empty when unknown or expired.
    pub fn load(&self, key: &str) -> Result<Lineage> {
        // Saturating: an age beyond i64 seconds means "keep everything".
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        let oldest = crate::now_unix().saturating_sub(max_age);
        self.with("load", |c| {
            let tx = c.transaction()?;
            let source: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT updated, since FROM sources WHERE key = ?1",
                    [key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let mut lineage = Lineage::default();
            if let Some((_, since)) = source.filter(|(updated, _)| *updated >= oldest) {
                lineage.since = since;
                let mut st = tx.prepare(
                    "SELECT offset, chunk, anchor, anchor_len, cvs, anchor_depth, anchor_root, anchor_dirty FROM entries WHERE key = ?1",
                )?;
                let rows = st.query_map([key], |r| {
                    Ok((
                        r.get::<_, u64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Option<Vec<u8>>>(2)?,
                        r.get::<_, Option<u32>>(3)?,
                        r.get::<_, Option<Vec<u8>>>(4)?,
                        r.get::<_, u8>(5)?,
                        r.get::<_, Option<Vec<u8>>>(6)?,
                        r.get::<_, Option<Vec<u8>>>(7)?,
                    ))
                })?;
                for row in rows {
                    let (offset, chunk, anchor, anchor_len, cvs, depth, root, dirty) = row?;
                    let Some(chunk) = ChunkId::from_slice(&chunk) else {
                        continue;
                    };
                    let anchor = match (
                        anchor.and_then(|a| ChunkId::from_slice(&a)),
                        anchor_len,
                        cvs,
                    ) {
                        (Some(id), Some(len), Some(cvs)) if cvs.len() % UNIT_CV == 0 => Some(Anchor {
                            id,
                            len,
                            cvs: Arc::new(cvs.as_chunks::<UNIT_CV>().0.to_vec()),
                            depth,
                            root: root.and_then(|r| ChunkId::from_slice(&r)),
                            dirty: Arc::new(
                                dirty
                                    .unwrap_or_default()
                                    .as_chunks::<2>()
                                    .0
                                    .iter()
                                    .map(|u| u16::from_le_bytes(*u))
                                    .collect(),
                            ),
                        }),
                        _ => None,
                    };
                    lineage
                        .entries
                        .insert(offset, LineageEntry { chunk, anchor });
                }
            }
            drop(tx);
            Ok(lineage)
        })
    }

    /// Replace the lineage of `key`, then keep the cache within its size.
    pub fn store(&self, key: &str, lineage: &Lineage) -> Result<()> {
        let now = crate::now_unix();
        let bytes: u64 = lineage
            .entries
            .values()
            .map(|e| {
                64 + e.anchor.as_ref().map_or(0, |a| {
                    72 + (a.cvs.len() * UNIT_CV) as u64 + a.dirty.len() as u64 * 2
                })
            })
            .sum();
        self.with("store", |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM entries WHERE key = ?1", [key])?;
            {
                let mut st = tx.prepare(
                    "INSERT INTO entries(key, offset, chunk, anchor, anchor_len, cvs, anchor_depth, anchor_root, anchor_dirty) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for (off, e) in &lineage.entries {
                    let (a, l, cvs) = match &e.anchor {
                        Some(a) => (
                            Some(a.id.as_bytes().to_vec()),
                            Some(a.len),
                            Some(a.cvs.iter().flatten().copied().collect::<Vec<u8>>()),
                        ),
                        None => (None, None, None),
                    };
                    let depth = e.anchor.as_ref().map_or(0, |a| a.depth);
                    let root = e
                        .anchor
                        .as_ref()
                        .and_then(|a| a.root)
                        .map(|r| r.as_bytes().to_vec());
                    let dirty: Option<Vec<u8>> = e
                        .anchor
                        .as_ref()
                        .filter(|a| !a.dirty.is_empty())
                        .map(|a| a.dirty.iter().flat_map(|u| u.to_le_bytes()).collect());
                    st.execute(params![
                        key,
                        *off,
                        e.chunk.as_bytes().as_slice(),
                        a,
                        l,
                        cvs,
                        depth,
                        root,
                        dirty
                    ])?;
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO sources(key, updated, since, bytes) VALUES (?1, ?2, ?3, ?4)",
                params![key, now, lineage.since, bytes],
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
                    tx.execute("DELETE FROM entries WHERE key = ?1", [&victim])?;
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
            c.execute("DELETE FROM entries WHERE key = ?1", [key])?;
            c.execute("DELETE FROM sources WHERE key = ?1", [key])?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, with_anchor: bool) -> LineageEntry {
        LineageEntry {
            chunk: ChunkId([n; 32]),
            anchor: with_anchor.then(|| Anchor {
                id: ChunkId([n.wrapping_add(1); 32]),
                len: 1 << 20,
                cvs: Arc::new(vec![[n; UNIT_CV]; 128]),
                depth: n % 3,
                root: (!n.is_multiple_of(3)).then_some(ChunkId([n.wrapping_add(2); 32])),
                dirty: Arc::new(vec![1, u16::from(n), 300]),
            }),
        }
    }

    #[test]
    fn store_load_forget_and_evict() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LineageCache::open(dir.path(), "r1").unwrap();
        let mut l = Lineage::default();
        l.entries.insert(0, entry(1, false));
        l.entries.insert(1 << 20, entry(2, true));
        cache.store("dbid:1:file:5", &l).unwrap();
        assert_eq!(cache.load("dbid:1:file:5").unwrap(), l);
        assert!(cache.load("other").unwrap().is_empty());
        cache.forget("dbid:1:file:5").unwrap();
        assert!(cache.load("dbid:1:file:5").unwrap().is_empty());

        let small = LineageCache::open(dir.path(), "r1")
            .unwrap()
            .with_limits(DEFAULT_MAX_AGE, 3000);
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
        l.entries.insert(0, entry(1, true));
        cache.store("k", &l).unwrap();
        assert!(cache.touch("k", 250).unwrap());
        let back = cache.load("k").unwrap();
        assert_eq!(back.since, 250);
        assert_eq!(back.entries, l.entries);
        assert!(!cache.touch("absent", 250).unwrap());
        assert!(cache.load("absent").unwrap().is_empty());
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
