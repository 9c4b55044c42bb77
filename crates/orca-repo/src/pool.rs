//! Reusable buffers for chunks, encoded payloads and packs.
//!
//! Ingest allocates and frees about three bytes of buffers per byte backed
//! up, in blocks of 0.3 to 20 MiB. Allocators hand such blocks back to the
//! kernel within milliseconds, and the kernel zeroes every page again on the
//! next use: measured on a 1 GiB ingest here, 0.6 core-seconds of page
//! clearing out of 3.5. A pool keeps a bounded number of buffers of one size
//! class alive instead. Buffers come back by themselves: [`BufferPool::bytes`]
//! wraps one in a [`Bytes`] that returns it when its last clone is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

/// Runs `f` on rayon's pool and awaits it: the CPU work of the async paths (hashing,
/// encoding, decoding chunks) stays on the pool's threads, one per core. Run on Tokio's
/// blocking threads instead, it spread over as many threads as calls overlapped (20-36 in an
/// SBT channel backing up a 4 GiB datafile), each keeping zstd contexts and allocator caches
/// of its own. `f` must not block.
pub(crate) async fn on_cpu_pool<T: Send + 'static>(
    stage: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> crate::error::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        // A panic on a rayon task aborts the process: it becomes this call's error.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        if let Err(p) = &out {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(stage, panic = %why, "a task on the CPU pool panicked");
        }
        // The caller may have given up waiting (its future dropped): nothing to do then.
        let _ = tx.send(out.ok());
    });
    rx.await
        .ok()
        .flatten()
        .ok_or(crate::error::RepoError::PipelineStopped { stage })
}

/// The pools a repository's writers share.
#[derive(Debug)]
pub struct Pools {
    /// Chunk plaintext (1 MiB with the default chunker): the four batches a writer holds
    /// at most (one filling, one queued, two in process), so steady state allocates nothing.
    pub chunks: Arc<BufferPool>,
    /// Encoded payloads, on their way to a pack or a vault upload (three batches' worth).
    pub payloads: Arc<BufferPool>,
}

impl Default for Pools {
    fn default() -> Self {
        Pools {
            chunks: BufferPool::new(32),
            payloads: BufferPool::new(24),
        }
    }
}

/// Idle buffers of one size class, at most `keep` of them.
#[derive(Debug)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    keep: AtomicUsize,
}

impl BufferPool {
    /// A pool keeping at most `keep` idle buffers.
    pub fn new(keep: usize) -> Arc<Self> {
        Arc::new(BufferPool {
            free: Mutex::new(Vec::new()),
            keep: AtomicUsize::new(keep),
        })
    }

    /// A buffer with room for at least `capacity` bytes. Its length and
    /// contents are whatever its last user left: set the length before use
    /// (`truncate`/`resize` on a reused buffer writes nothing new).
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            let at = free.iter().rposition(|b| b.capacity() >= capacity);
            at.map(|i| free.swap_remove(i))
        };
        reused.unwrap_or_else(|| Vec::with_capacity(capacity))
    }

    /// Hand a buffer back for reuse.
    pub fn give(&self, buf: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < self.keep.load(Ordering::Relaxed) {
            free.push(buf);
        }
    }

    /// Keep at most `keep` idle buffers from now on (idle ones beyond it are freed): for a
    /// user whose pipeline holds fewer buffers than the pool was made for, so that buffers
    /// it needed once (a burst) are not kept idle for good.
    pub fn set_keep(&self, keep: usize) {
        self.keep.store(keep, Ordering::Relaxed);
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.truncate(keep);
    }

    /// Free the idle buffers now (the limit stays): for a user that turns from the work they
    /// served to other work, so that they do not add to its memory.
    pub fn clear_idle(&self) {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// `buf` as shared bytes that return it to this pool once dropped.
    pub fn bytes(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: Arc::downgrade(self),
        })
    }

    /// Idle buffers held.
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

struct Pooled {
    buf: Vec<u8>,
    pool: Weak<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.give(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cpu_pool_work_runs_on_the_pool_and_a_panic_is_an_error_not_an_abort() {
        let on = on_cpu_pool("test", || rayon::current_thread_index().is_some())
            .await
            .unwrap();
        assert!(on, "the closure ran outside rayon's pool");
        let sum = on_cpu_pool("test", || {
            use rayon::prelude::*;
            (1..=1000u64).into_par_iter().sum::<u64>()
        })
        .await
        .unwrap();
        assert_eq!(sum, 500_500);
        let e = on_cpu_pool("test stage", || -> u32 { panic!("deliberate") })
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                crate::error::RepoError::PipelineStopped {
                    stage: "test stage"
                }
            ),
            "{e}"
        );
        // The pool survived the panic.
        assert_eq!(on_cpu_pool("test", || 7).await.unwrap(), 7);
    }

    #[test]
    fn buffers_come_back_when_their_last_bytes_drop_and_the_pool_is_bounded() {
        let pool = BufferPool::new(2);
        let mut v = pool.take(1000);
        v.extend_from_slice(b"abc");
        let ptr = v.as_ptr();
        let b = pool.bytes(v);
        let part = b.slice(1..2);
        drop(b);
        assert_eq!(pool.idle(), 0);
        assert_eq!(&part[..], b"b");
        drop(part);
        assert_eq!(pool.idle(), 1);
        let again = pool.take(500);
        assert_eq!(again.as_ptr(), ptr);
        assert_eq!(again.len(), 3, "contents are left as they were");
        assert!(pool.take(5000).capacity() >= 5000);
        for _ in 0..5 {
            pool.give(Vec::with_capacity(10));
        }
        assert_eq!(pool.idle(), 2);
        pool.set_keep(1);
        assert_eq!(pool.idle(), 1);
        pool.give(Vec::with_capacity(10));
        assert_eq!(pool.idle(), 1);
    }
}
