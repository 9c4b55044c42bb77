//! Block-level access to one datafile (or an image copy of one).

use super::{DbError, io_err};
use orca_oracle::block::{FileHeaderBlock, check_block_size};
use orca_oracle::{Checkpoint, DatafileHeader};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A datafile opened for block I/O. Block numbers are Oracle's: block 0 is
/// the file header block, block 1 the datafile header, `1..=block_count()`
/// the datafile's blocks. Reads and writes are positional, so one
/// `DatafileIo` may be shared by threads (`&self`).
#[derive(Debug)]
pub struct DatafileIo {
    file: File,
    path: PathBuf,
    block_size: usize,
    blocks: u32,
}

impl DatafileIo {
    /// Opens an existing datafile (or image copy) and reads its block 0.
    pub fn open(path: impl AsRef<Path>, writable: bool) -> Result<DatafileIo, DbError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .map_err(|e| io_err(format!("cannot open datafile {}", path.display()), e))?;
        let mut b0 = [0u8; 512];
        file.read_exact_at(&mut b0, 0)
            .map_err(|e| io_err(format!("cannot read block 0 of {}", path.display()), e))?;
        let fh = FileHeaderBlock::parse(&b0).map_err(|e| {
            DbError::Invalid(format!("{} is not an Oracle datafile: {e}", path.display()))
        })?;
        Ok(DatafileIo {
            file,
            path,
            block_size: fh.block_size as usize,
            blocks: fh.block_count,
        })
    }

    /// Creates a new, empty datafile of `blocks` blocks (block 0 written,
    /// everything else null), replacing any file at `path`. Used to restore
    /// a datafile to a new location.
    pub fn create(
        path: impl AsRef<Path>,
        block_size: usize,
        blocks: u32,
    ) -> Result<DatafileIo, DbError> {
        check_block_size(block_size)?;
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| io_err(format!("cannot create {}", dir.display()), e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| io_err(format!("cannot create datafile {}", path.display()), e))?;
        let mut io = DatafileIo {
            file,
            path,
            block_size,
            blocks: 0,
        };
        io.resize(blocks)?;
        Ok(io)
    }

    /// File path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Block size.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Number of blocks (block 0 excluded), from block 0.
    pub fn block_count(&self) -> u32 {
        self.blocks
    }

    fn check_range(&self, first: u32, len: usize) -> Result<u64, DbError> {
        if !len.is_multiple_of(self.block_size) {
            return Err(DbError::Invalid(format!(
                "buffer of {len} bytes is not a whole number of {}-byte blocks",
                self.block_size
            )));
        }
        let n = (len / self.block_size) as u64;
        if u64::from(first) + n > u64::from(self.blocks) + 1 {
            return Err(DbError::Invalid(format!(
                "blocks {first}..{} are beyond the end of {} ({} blocks)",
                u64::from(first) + n,
                self.path.display(),
                self.blocks
            )));
        }
        Ok(u64::from(first) * self.block_size as u64)
    }

    /// Reads consecutive blocks starting at `first` into `buf` (a multiple
    /// of the block size).
    pub fn read_blocks(&self, first: u32, buf: &mut [u8]) -> Result<(), DbError> {
        let off = self.check_range(first, buf.len())?;
        self.file.read_exact_at(buf, off).map_err(|e| {
            io_err(
                format!("cannot read block {first} of {}", self.path.display()),
                e,
            )
        })
    }

    /// Reads one block.
    pub fn read_block(&self, block: u32, buf: &mut [u8]) -> Result<(), DbError> {
        if buf.len() != self.block_size {
            return Err(DbError::Invalid(format!(
                "block buffer is {} bytes, block size is {}",
                buf.len(),
                self.block_size
            )));
        }
        self.read_blocks(block, buf)
    }

    /// Writes consecutive blocks starting at `first`.
    pub fn write_blocks(&self, first: u32, buf: &[u8]) -> Result<(), DbError> {
        let off = self.check_range(first, buf.len())?;
        self.file.write_all_at(buf, off).map_err(|e| {
            io_err(
                format!("cannot write block {first} of {}", self.path.display()),
                e,
            )
        })
    }

    /// Writes one block.
    pub fn write_block(&self, block: u32, buf: &[u8]) -> Result<(), DbError> {
        if buf.len() != self.block_size {
            return Err(DbError::Invalid(format!(
                "block buffer is {} bytes, block size is {}",
                buf.len(),
                self.block_size
            )));
        }
        self.write_blocks(block, buf)
    }

    /// Reads and parses the datafile header (block 1).
    pub fn header(&self) -> Result<DatafileHeader, DbError> {
        let mut b = vec![0u8; self.block_size];
        self.read_block(1, &mut b)?;
        DatafileHeader::parse(&b).map_err(|e| {
            DbError::Invalid(format!(
                "datafile header of {} is invalid: {e}",
                self.path.display()
            ))
        })
    }

    /// Builds and writes the datafile header; returns the block written.
    pub fn write_header(&self, h: &DatafileHeader) -> Result<Vec<u8>, DbError> {
        let mut b = vec![0u8; self.block_size];
        h.build(&mut b)?;
        self.write_block(1, &b)?;
        Ok(b)
    }

    /// Sets the header's checkpoint (as recovery of an image copy does after
    /// applying an incremental) and bumps the checkpoint counts.
    pub fn update_checkpoint(&self, ckpt: Checkpoint) -> Result<DatafileHeader, DbError> {
        let mut h = self.header()?;
        h.checkpoint = ckpt;
        h.checkpoint_count = h.checkpoint_count.wrapping_add(1);
        h.cf_checkpoint_count = h.cf_checkpoint_count.wrapping_add(1);
        self.write_header(&h)?;
        Ok(h)
    }

    /// Resizes the file to `blocks` blocks: new blocks are null, block 0 is
    /// rewritten. The header's size field is the caller's business.
    pub fn resize(&mut self, blocks: u32) -> Result<(), DbError> {
        let fh = FileHeaderBlock::datafile(self.block_size, blocks)?;
        self.file
            .set_len(fh.file_size())
            .map_err(|e| io_err(format!("cannot resize {}", self.path.display()), e))?;
        let mut b0 = vec![0u8; self.block_size];
        fh.build(&mut b0)?;
        self.file.write_all_at(&b0, 0).map_err(|e| {
            io_err(
                format!("cannot write block 0 of {}", self.path.display()),
                e,
            )
        })?;
        self.blocks = blocks;
        Ok(())
    }

    /// Flushes data to disk.
    pub fn sync(&self) -> Result<(), DbError> {
        self.file
            .sync_data()
            .map_err(|e| io_err(format!("cannot sync {}", self.path.display()), e))
    }
}
