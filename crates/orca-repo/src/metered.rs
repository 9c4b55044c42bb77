//! Request counts per operation on the object store under a repository.
//!
//! Object storage bills per request and lists are slow and costly on S3, so
//! how many PUT, GET, HEAD, LIST and DELETE requests a backup or a restore
//! makes is a figure an operator watches (the vault exports it in `/metrics`).
//! A decorator counts at the `ObjectStore` seam, the same for every backend.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use serde::Serialize;

/// Requests made so far, per operation. A ranged read is a GET; reading
/// several ranges of one object counts the GETs the backend makes for them
/// (ranges less than `OBJECT_STORE_COALESCE_DEFAULT` apart share one).
#[derive(Debug, Default)]
pub struct RequestCounts {
    put: AtomicU64,
    get: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    copy: AtomicU64,
}

/// Requests made to a store's objects, per operation ([`crate::Store::object_requests`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Requests {
    /// PUT requests (objects written).
    pub put: u64,
    /// GET requests, whole objects or ranges.
    pub get: u64,
    /// HEAD requests.
    pub head: u64,
    /// LIST requests.
    pub list: u64,
    /// DELETE requests.
    pub delete: u64,
    /// COPY requests.
    pub copy: u64,
}

impl RequestCounts {
    pub fn snapshot(&self) -> Requests {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Requests {
            put: r(&self.put),
            get: r(&self.get),
            head: r(&self.head),
            list: r(&self.list),
            delete: r(&self.delete),
            copy: r(&self.copy),
        }
    }

    fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }
}

/// An object store that counts the requests made through it.
pub struct Metered {
    inner: Arc<dyn ObjectStore>,
    counts: Arc<RequestCounts>,
}

impl Metered {
    pub fn new(inner: Arc<dyn ObjectStore>) -> (Metered, Arc<RequestCounts>) {
        let counts = Arc::new(RequestCounts::default());
        (
            Metered {
                inner,
                counts: counts.clone(),
            },
            counts,
        )
    }
}

impl fmt::Debug for Metered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

impl fmt::Display for Metered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Metered {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        RequestCounts::add(&self.counts.put, 1);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        // Parts are not counted one by one: packs are written whole.
        RequestCounts::add(&self.counts.put, 1);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let counter = if options.head {
            &self.counts.head
        } else {
            &self.counts.get
        };
        RequestCounts::add(counter, 1);
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        RequestCounts::add(&self.counts.get, coalesced(ranges));
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let counts = self.counts.clone();
        let counted = locations
            .inspect(move |_| RequestCounts::add(&counts.delete, 1))
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        RequestCounts::add(&self.counts.list, 1);
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        RequestCounts::add(&self.counts.list, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        RequestCounts::add(&self.counts.copy, 1);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        RequestCounts::add(&self.counts.copy, 1);
        self.inner.rename_opts(from, to, options).await
    }
}

/// How many requests `get_ranges` makes for `ranges`: object_store merges
/// ranges closer than its coalescing gap into one.
fn coalesced(ranges: &[Range<u64>]) -> u64 {
    let gap = object_store::OBJECT_STORE_COALESCE_DEFAULT;
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable_by_key(|r| r.start);
    let mut n = 0;
    let mut end: Option<u64> = None;
    for r in sorted {
        match end {
            Some(e) if r.start <= e.saturating_add(gap) => end = Some(e.max(r.end)),
            _ => {
                n += 1;
                end = Some(r.end);
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn each_operation_is_counted_once() {
        let (m, counts) = Metered::new(Arc::new(object_store::memory::InMemory::new()));
        let p = Path::from("a/b");
        m.put(&p, PutPayload::from_static(b"0123456789"))
            .await
            .unwrap();
        m.get(&p).await.unwrap().bytes().await.unwrap();
        m.get_range(&p, 2..4).await.unwrap();
        m.head(&p).await.unwrap();
        let listed: Vec<_> = m.list(Some(&Path::from("a"))).try_collect().await.unwrap();
        assert_eq!(listed.len(), 1);
        m.delete(&p).await.unwrap();
        let s = counts.snapshot();
        assert_eq!((s.put, s.head, s.list, s.delete), (1, 1, 1, 1), "{s:?}");
        assert!(s.get >= 2, "{s:?}");
    }

    #[test]
    fn close_ranges_share_a_request() {
        let mib = 1 << 20;
        assert_eq!(coalesced(&[]), 0);
        assert_eq!(coalesced(&[0..10, 20..30, 5..8]), 1);
        assert_eq!(coalesced(&[0..10, 10 + 2 * mib..10 + 3 * mib]), 2);
    }
}
