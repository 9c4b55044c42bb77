//! Virtual fulls: datafile images built straight from the backup pieces of a chain (a level
//! 0, then its level 1s in order), the way a media manager sees the pieces: Oracle blocks,
//! whole, at offsets that are multiples of their block size, each with a valid `kcbh`
//! header, RDBA, tail and checksum. The piece format around them is never parsed. Each block
//! is written at `block# x block_size` of its file's image; a later piece's version of a
//! block replaces an earlier one, and a block no piece carries stays zero, as RMAN's
//! null-block compression left it. The header block of the newest level makes the image's
//! checkpoint that level's, so RMAN recovers the image with archived logs from there.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use orca_oracle::block::{
    BLOCK0_RDBA, BlockHeader, FileHeaderBlock, block_size_from_format, check_block,
};
use orca_oracle::{DatafileHeader, Scn};
use orca_repo::{
    Backend, ChunkId, EncodedChunk, PieceFilter, PieceInfo, PieceReader, RepoConfig,
    Result as RepoResult, SessionGrant, WrappedKey,
};

use crate::AgentError;

/// The smallest datafile block size: blocks are looked for at multiples of it.
pub const MIN_BLOCK: usize = 2048;
/// The largest block size: a scan buffer starting at a multiple of it holds only whole
/// blocks, but for its end.
pub const MAX_BLOCK: usize = 32768;

/// Calls `found` with each Oracle datafile block of `buf` whose header, tail and checksum
/// hold, `buf` starting at a stream offset that is a multiple of [`MAX_BLOCK`] (so that
/// every block of the stream is whole in one buffer). Block 0 (the OS header block, the same
/// in every file) is skipped: its file cannot be told in a multiplexed piece, and the
/// image's own is rebuilt from its header block. Bytes that are no such block are passed
/// over.
pub fn scan(buf: &[u8], mut found: impl FnMut(&BlockHeader, &[u8])) {
    let mut off = 0;
    while off + MIN_BLOCK <= buf.len() {
        let size = block_size_from_format(buf[off + 1]).filter(|s| *s >= MIN_BLOCK);
        if let Some(size) = size
            && off % size == 0
            && off + size <= buf.len()
        {
            let block = &buf[off..off + size];
            if let Ok(h) = check_block(block, None)
                && h.rdba.0 != BLOCK0_RDBA
            {
                found(&h, block);
                off += size;
                continue;
            }
        }
        off += MIN_BLOCK;
    }
}

/// A datafile of the database being rebuilt: where its image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub file_no: u32,
    pub rfile_no: u32,
    pub block_size: usize,
    pub image: PathBuf,
}

/// An image made: its file, where it is, the checkpoint its header block carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub file_no: u32,
    pub image: PathBuf,
    pub checkpoint: Scn,
    /// Blocks written (a block rewritten by a later level counts each time).
    pub blocks: u64,
}

struct Image {
    target: Target,
    file: File,
    header: Option<DatafileHeader>,
    blocks: u64,
}

/// The images being built, by relative file number (the RDBA's file part).
pub struct Images {
    images: BTreeMap<u32, Image>,
}

impl Images {
    /// Creates (empty) the image of every target.
    pub fn create(targets: &[Target]) -> Result<Images, AgentError> {
        let mut images = BTreeMap::new();
        for t in targets {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&t.image)
                .map_err(AgentError::io(format!(
                    "cannot create the image {}",
                    t.image.display()
                )))?;
            images.insert(
                t.rfile_no,
                Image {
                    target: t.clone(),
                    file,
                    header: None,
                    blocks: 0,
                },
            );
        }
        Ok(Images { images })
    }

    /// Writes `block` into its file's image; false for a block of no target (another
    /// file, another block size). A header block of another database is refused.
    pub fn place(&mut self, h: &BlockHeader, block: &[u8]) -> Result<bool, AgentError> {
        let Some(img) = self.images.get_mut(&h.rdba.rfile()) else {
            return Ok(false);
        };
        if block.len() != img.target.block_size {
            return Ok(false);
        }
        let n = h.rdba.block();
        if n == 1 {
            let Ok(hdr) = DatafileHeader::parse(block) else {
                return Ok(false);
            };
            if u32::from(hdr.file_no) != img.target.file_no {
                return Ok(false);
            }
            // A file shrunk since an older level: its blocks past the new end are gone, and
            // if it grows again they come back unformatted (zero), not as they were.
            let end = (u64::from(hdr.file_size_blocks) + 1) * block.len() as u64;
            img.file
                .metadata()
                .and_then(|m| {
                    if m.len() > end {
                        img.file.set_len(end)
                    } else {
                        Ok(())
                    }
                })
                .map_err(AgentError::io(format!(
                    "cannot cut {}",
                    img.target.image.display()
                )))?;
            img.header = Some(hdr);
        }
        let at = u64::from(n) * block.len() as u64;
        img.file
            .write_all_at(block, at)
            .map_err(AgentError::io(format!(
                "cannot write block {n} of {}",
                img.target.image.display()
            )))?;
        img.blocks += 1;
        Ok(true)
    }

    /// Blocks placed so far.
    pub fn blocks(&self) -> u64 {
        self.images.values().map(|i| i.blocks).sum()
    }

    /// Sizes each image as its newest header block says, writes its block 0 and syncs it.
    /// Fails when a file's header block was in no piece: its image cannot be recovered.
    pub fn finish(self) -> Result<Vec<Made>, AgentError> {
        let mut made = Vec::new();
        for img in self.images.into_values() {
            let t = &img.target;
            let hdr = img.header.ok_or_else(|| {
                AgentError::Job(format!(
                    "no backup piece of the chain holds the header block of datafile {}: its \
                     image cannot be built; restore normally (without --virtual-full)",
                    t.file_no
                ))
            })?;
            let io = AgentError::io(format!("cannot finish the image {}", t.image.display()));
            let b0 = FileHeaderBlock::datafile(t.block_size, hdr.file_size_blocks)
                .map_err(|e| AgentError::Job(format!("datafile {}: {e}", t.file_no)))?;
            let mut buf = vec![0u8; t.block_size];
            b0.build(&mut buf)
                .map_err(|e| AgentError::Job(format!("datafile {}: {e}", t.file_no)))?;
            img.file.set_len(b0.file_size()).map_err(io)?;
            img.file
                .write_all_at(&buf, 0)
                .and_then(|()| img.file.sync_all())
                .map_err(AgentError::io(format!(
                    "cannot finish the image {}",
                    t.image.display()
                )))?;
            made.push(Made {
                file_no: t.file_no,
                image: t.image.clone(),
                checkpoint: hdr.checkpoint.scn,
                blocks: img.blocks,
            });
        }
        made.sort_by_key(|m| m.file_no);
        Ok(made)
    }

    /// Removes every image (a refused or failed build leaves no half image behind).
    pub fn discard(self) {
        for img in self.images.into_values() {
            let _ = std::fs::remove_file(&img.target.image);
        }
    }
}

/// The vault as the repository reads it, counting the encoded bytes it answers with
/// (chunks and manifests): what a virtual full costs the vault and the network, to set
/// against a full's stored bytes.
#[derive(Debug)]
pub struct Counted {
    inner: Arc<dyn Backend>,
    bytes: AtomicU64,
}

impl Counted {
    pub fn new(inner: Arc<dyn Backend>) -> Arc<Counted> {
        Arc::new(Counted {
            inner,
            bytes: AtomicU64::new(0),
        })
    }

    /// Encoded bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn count(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[async_trait]
impl Backend for Counted {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn config(&self) -> RepoResult<RepoConfig> {
        self.inner.config().await
    }
    async fn wrapped_keys(&self) -> RepoResult<Vec<WrappedKey>> {
        self.inner.wrapped_keys().await
    }
    async fn group_secret(&self) -> RepoResult<Option<[u8; 32]>> {
        self.inner.group_secret().await
    }
    async fn missing(&self, ids: &[ChunkId]) -> RepoResult<Vec<ChunkId>> {
        self.inner.missing(ids).await
    }
    async fn put_chunks(&self, chunks: Vec<EncodedChunk>) -> RepoResult<()> {
        self.inner.put_chunks(chunks).await
    }
    async fn flush(&self) -> RepoResult<()> {
        self.inner.flush().await
    }
    async fn commit(&self, manifest: Bytes) -> RepoResult<PieceInfo> {
        self.inner.commit(manifest).await
    }
    async fn manifest(&self, name: &str) -> RepoResult<Option<Bytes>> {
        let m = self.inner.manifest(name).await?;
        self.count(m.as_ref().map_or(0, Bytes::len));
        Ok(m)
    }
    async fn list(&self, filter: &PieceFilter) -> RepoResult<Vec<PieceInfo>> {
        self.inner.list(filter).await
    }
    async fn delete(&self, name: &str) -> RepoResult<bool> {
        self.inner.delete(name).await
    }
    async fn get_chunks(&self, ids: &[ChunkId]) -> RepoResult<Vec<Bytes>> {
        let chunks = self.inner.get_chunks(ids).await?;
        self.count(chunks.iter().map(Bytes::len).sum());
        Ok(chunks)
    }
    async fn begin_session(
        &self,
        holder: &str,
        lineage_since: Option<i64>,
    ) -> RepoResult<SessionGrant> {
        self.inner.begin_session(holder, lineage_since).await
    }
    async fn adopt_lineage(&self, session: u64, since: i64) -> RepoResult<bool> {
        self.inner.adopt_lineage(session, since).await
    }
    async fn renew_session(&self, session: u64) -> RepoResult<bool> {
        self.inner.renew_session(session).await
    }
    async fn end_session(&self, session: u64) -> RepoResult<()> {
        self.inner.end_session(session).await
    }
}

/// Bytes of one piece read between two progress reports.
pub const PROGRESS_EVERY: u64 = 256 << 20;

/// Bytes asked of the repository at a time: a multiple of [`MAX_BLOCK`].
const READ_BUFFER: usize = 4 << 20;

/// Reads the piece `reader` (RMAN's `handle`) to its end, placing its blocks into `images`;
/// the bytes read. `progress` is told the bytes read so far every [`PROGRESS_EVERY`].
/// Pieces of one level may be read at once into the same images: they hold other files,
/// or other blocks of one file.
pub fn read_piece(
    mut reader: PieceReader,
    images: &Mutex<Images>,
    handle: &str,
    mut progress: impl FnMut(u64),
) -> Result<u64, AgentError> {
    let mut read = 0u64;
    let mut told = 0u64;
    place_stream(
        |buf| {
            let n = reader.fill(buf).map_err(|source| AgentError::Repo {
                context: format!("reading backup piece {handle} from the vault"),
                source: Box::new(source),
            })?;
            read += n as u64;
            if read - told >= PROGRESS_EVERY {
                told = read;
                progress(read);
            }
            Ok(n)
        },
        images,
        handle,
    )
}

/// Places the blocks of the stream `fill` reads (it fills a buffer whole but at the end)
/// into `images`; the bytes read. A datafile piece in which no block of a target is seen is
/// refused: its blocks are not visible (compressed, encrypted), and an image built without
/// them would be wrong.
pub fn place_stream(
    mut fill: impl FnMut(&mut [u8]) -> Result<usize, AgentError>,
    images: &Mutex<Images>,
    handle: &str,
) -> Result<u64, AgentError> {
    let mut buf = vec![0u8; READ_BUFFER];
    let mut read = 0u64;
    let mut placed = 0u64;
    loop {
        let n = fill(&mut buf)?;
        read += n as u64;
        let mut failed = None;
        // One lock a buffer: the readers decode in parallel, the block writes take turns.
        let mut images = images.lock().unwrap_or_else(|p| p.into_inner());
        scan(&buf[..n], |h, b| {
            if failed.is_none() {
                match images.place(h, b) {
                    Ok(true) => placed += 1,
                    Ok(false) => {}
                    Err(e) => failed = Some(e),
                }
            }
        });
        drop(images);
        if let Some(e) = failed {
            return Err(e);
        }
        if n < buf.len() {
            break;
        }
    }
    if placed == 0 {
        return Err(AgentError::Job(format!(
            "backup piece {handle} shows no Oracle block of the database's datafiles (a \
             compressed or encrypted backup set hides them): no virtual full can be built from \
             it; restore normally (without --virtual-full)"
        )));
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orca_oracle::block::{Rdba, block_type, finish_block};
    use orca_oracle::datafile::{COMPAT_19, FILE_TYPE_DATAFILE};
    use orca_oracle::{Checkpoint, OracleTime};
    use std::path::Path;

    const BS: usize = 8192;

    fn header(file_no: u16, blocks: u32, checkpoint: u64) -> Vec<u8> {
        let h = DatafileHeader {
            block_size: 8192,
            compat_version: COMPAT_19,
            dbid: 42,
            db_name: "ORCL".into(),
            controlfile_seq: 1,
            file_size_blocks: blocks,
            file_no,
            file_type: FILE_TYPE_DATAFILE,
            activation_id: 1,
            root_dba: 0,
            creation_scn: Scn(10),
            creation_time: OracleTime(1),
            resetlogs_time: OracleTime(1),
            resetlogs_scn: Scn(1),
            status: 0,
            checkpoint_count: 1,
            cf_checkpoint_count: 1,
            tablespace_no: 4,
            tablespace_name: "USERS".into(),
            rfile_no: u32::from(file_no),
            absolute_fuzzy_scn: Scn(0),
            checkpoint: Checkpoint {
                scn: Scn(checkpoint),
                time: OracleTime(2),
                ..Default::default()
            },
        };
        let mut b = vec![0u8; BS];
        h.build(&mut b).unwrap();
        b
    }

    fn data(rfile: u32, n: u32, scn: u64, fill: u8) -> Vec<u8> {
        let mut b = vec![fill; BS];
        let h = BlockHeader::new(
            block_type::DATA,
            BS,
            Rdba::new(rfile, n).unwrap(),
            Scn(scn),
            1,
        )
        .unwrap();
        finish_block(&mut b, &h).unwrap();
        b
    }

    /// A stream as a piece carries it: `lead` bytes of something else, then the blocks.
    fn stream(lead: usize, blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut s = vec![0x52u8; lead];
        for b in blocks {
            s.extend_from_slice(b);
        }
        s
    }

    fn target(dir: &Path, file_no: u32) -> Target {
        Target {
            file_no,
            rfile_no: file_no,
            block_size: BS,
            image: dir.join(format!("file{file_no}.dbf")),
        }
    }

    /// `piece` read as the repository reader hands it over: whole buffers but the last.
    fn feed(images: &mut Images, piece: &[u8]) -> Result<u64, AgentError> {
        let shared = Mutex::new(std::mem::replace(
            images,
            Images {
                images: BTreeMap::new(),
            },
        ));
        let mut at = 0;
        let done = place_stream(
            |buf| {
                let n = buf.len().min(piece.len() - at);
                buf[..n].copy_from_slice(&piece[at..at + n]);
                at += n;
                Ok(n)
            },
            &shared,
            "0a_1_1",
        );
        *images = shared.into_inner().unwrap();
        done
    }

    fn build(dir: &Path, pieces: &[Vec<u8>]) -> (Vec<Made>, PathBuf) {
        let t = target(dir, 4);
        let mut images = Images::create(std::slice::from_ref(&t)).unwrap();
        for p in pieces {
            assert_eq!(feed(&mut images, p).unwrap(), p.len() as u64);
        }
        (images.finish().unwrap(), t.image)
    }

    fn block(image: &[u8], n: usize) -> &[u8] {
        &image[n * BS..(n + 1) * BS]
    }

    #[test]
    fn a_later_level_wins_null_blocks_stay_zero_and_other_bytes_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let level0 = stream(
            BS,
            &[
                header(4, 8, 100),
                data(4, 2, 90, 0xA0),
                data(4, 3, 95, 0xB0),
            ],
        );
        // Level 1: the header again, block 3 changed, block 5 newly formatted; a block of
        // another file and 512-byte garbage the scan must pass over.
        let mut level1 = stream(
            2 * BS,
            &[
                header(4, 8, 200),
                data(4, 3, 150, 0xB1),
                data(7, 3, 150, 0xEE),
                data(4, 5, 160, 0xC0),
            ],
        );
        level1.extend_from_slice(&[0x42; 512]);
        let (made, path) = build(dir.path(), &[level0, level1]);
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].checkpoint, Scn(200));
        let image = std::fs::read(&path).unwrap();
        assert_eq!(
            image.len(),
            9 * BS,
            "block 0 and the 8 blocks the header names"
        );
        let b0 = FileHeaderBlock::parse(block(&image, 0)).unwrap();
        assert_eq!((b0.block_size, b0.block_count), (8192, 8));
        assert_eq!(
            DatafileHeader::parse(block(&image, 1))
                .unwrap()
                .checkpoint
                .scn,
            Scn(200)
        );
        assert_eq!(block(&image, 2), data(4, 2, 90, 0xA0));
        assert_eq!(
            block(&image, 3),
            data(4, 3, 150, 0xB1),
            "the later level wins"
        );
        assert_eq!(block(&image, 5), data(4, 5, 160, 0xC0));
        for n in [4, 6, 7, 8] {
            assert!(
                block(&image, n).iter().all(|b| *b == 0),
                "block {n} is zero"
            );
        }
    }

    #[test]
    fn a_file_shrunk_and_grown_again_has_zeros_where_its_old_end_was() {
        let dir = tempfile::tempdir().unwrap();
        let level0 = stream(0, &[header(4, 8, 100), data(4, 7, 90, 0x70)]);
        let shrunk = stream(0, &[header(4, 4, 200)]);
        let grown = stream(0, &[header(4, 8, 300), data(4, 6, 290, 0x60)]);
        let (_, path) = build(dir.path(), &[level0, shrunk, grown]);
        let image = std::fs::read(&path).unwrap();
        assert_eq!(image.len(), 9 * BS);
        assert_eq!(block(&image, 6), data(4, 6, 290, 0x60));
        assert!(block(&image, 7).iter().all(|b| *b == 0));
    }

    #[test]
    fn a_damaged_block_or_one_off_its_alignment_is_not_taken() {
        let mut bad = data(4, 2, 90, 0xA0);
        bad[100] ^= 1;
        let good = data(4, 3, 90, 0xA1);
        let mut s = stream(0, &[bad, good.clone()]);
        // The same block again, 512 bytes off an 8 KiB boundary.
        s.extend_from_slice(&[0; 512]);
        s.extend_from_slice(&good);
        s.resize(s.len() + BS - 512, 0);
        let mut seen = Vec::new();
        scan(&s, |h, _| seen.push(h.rdba.block()));
        assert_eq!(seen, [3]);
    }

    #[test]
    fn a_file_whose_header_block_is_in_no_piece_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut images = Images::create(&[target(dir.path(), 4)]).unwrap();
        feed(&mut images, &data(4, 2, 90, 0xA0)).unwrap();
        let e = images.finish().unwrap_err().to_string();
        assert!(e.contains("header block of datafile 4"), "{e}");
    }

    #[test]
    fn multiplexed_files_each_get_their_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let mut images = Images::create(&[target(dir.path(), 4), target(dir.path(), 5)]).unwrap();
        let piece = stream(
            BS,
            &[
                data(5, 3, 90, 0x55),
                header(4, 4, 100),
                data(4, 3, 90, 0x44),
                header(5, 4, 100),
                data(5, 2, 90, 0x52),
            ],
        );
        feed(&mut images, &piece).unwrap();
        let made = images.finish().unwrap();
        assert_eq!(made.iter().map(|m| m.blocks).collect::<Vec<_>>(), [2, 3]);
        let four = std::fs::read(&made[0].image).unwrap();
        let five = std::fs::read(&made[1].image).unwrap();
        assert_eq!(block(&four, 3), data(4, 3, 90, 0x44));
        assert!(block(&four, 2).iter().all(|b| *b == 0));
        assert_eq!(block(&five, 2), data(5, 2, 90, 0x52));
        assert_eq!(block(&five, 3), data(5, 3, 90, 0x55));
    }

    #[test]
    fn a_piece_showing_no_block_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut images = Images::create(&[target(dir.path(), 4)]).unwrap();
        // What a compressed run looks like to a media manager: bytes, no aligned block.
        let mut piece = stream(BS, &[header(4, 4, 100), data(4, 2, 90, 0xA0)]);
        for (b, k) in piece.iter_mut().skip(BS).zip((1u8..=251).cycle()) {
            *b ^= k;
        }
        let e = feed(&mut images, &piece).unwrap_err().to_string();
        assert!(
            e.contains("backup piece 0a_1_1") && e.contains("restore normally"),
            "{e}"
        );
        images.discard();
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
