//! Prometheus metrics at `/metrics`, in the text exposition format.
//!
//! Bytes in and out are counted as body frames pass, so they are what travelled, not what a
//! `Content-Length` claimed. Dedup savings: probed ids that were already stored, and uploaded
//! chunks (and their bytes) the vault already held.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// Upper bounds of the latency buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Upper bounds of the probe batch size buckets, ids.
const PROBE_BUCKETS: &[f64] = &[1.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0];

struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative; the last one is +Inf.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
    }
}

/// Labels of a request: method, route template (bounded: never the raw path), status class.
type RequestKey = (&'static str, String, &'static str);

#[derive(Default)]
struct Labelled {
    requests: BTreeMap<RequestKey, Histogram>,
    /// 4xx and 5xx answers by status code.
    errors: BTreeMap<u16, u64>,
    probe_sizes: Option<Histogram>,
}

#[derive(Default)]
pub(crate) struct Metrics {
    requests: AtomicU64,
    bytes_in: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
    probes: AtomicU64,
    probed_ids: AtomicU64,
    probed_present: AtomicU64,
    uploads: AtomicU64,
    uploaded_chunks: AtomicU64,
    uploaded_bytes: AtomicU64,
    duplicate_chunks: AtomicU64,
    duplicate_bytes: AtomicU64,
    commits: AtomicU64,
    chunk_reads: AtomicU64,
    chunk_read_bytes: AtomicU64,
    labelled: Mutex<Labelled>,
    /// Per (database, command id): what its backup sent.
    transfers: Mutex<BTreeMap<(String, String), crate::wire::Transfer>>,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    fn labelled(&self) -> std::sync::MutexGuard<'_, Labelled> {
        // Counters stay meaningful after a panic elsewhere; never poison the scrape.
        self.labelled.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn probe(&self, ids: usize, missing: usize) {
        add(&self.probes, 1);
        add(&self.probed_ids, ids as u64);
        add(&self.probed_present, (ids - missing) as u64);
        self.labelled()
            .probe_sizes
            .get_or_insert_with(|| Histogram::new(PROBE_BUCKETS))
            .observe(ids as f64);
    }

    /// An upload batch: all its chunks and bytes, and those the vault already held.
    pub fn upload(&self, chunks: usize, bytes: u64, dup_chunks: usize, dup_bytes: u64) {
        add(&self.uploads, 1);
        add(&self.uploaded_chunks, chunks as u64);
        add(&self.uploaded_bytes, bytes);
        add(&self.duplicate_chunks, dup_chunks as u64);
        add(&self.duplicate_bytes, dup_bytes);
    }

    /// An upload batch of the backup `command_id` of database `db`, as [`Metrics::upload`].
    pub fn transfer(
        &self,
        (db, command_id): (&str, &str),
        chunks: usize,
        bytes: u64,
        dup_chunks: usize,
        dup_bytes: u64,
    ) {
        let mut all = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
        let t = all
            .entry((db.to_string(), command_id.to_string()))
            .or_insert_with(|| crate::wire::Transfer {
                command_id: command_id.to_string(),
                ..Default::default()
            });
        t.received_chunks += chunks as u64;
        t.received_bytes += bytes;
        t.resent_chunks += dup_chunks as u64;
        t.resent_bytes += dup_bytes;
        t.stored_bytes = t.received_bytes - t.resent_bytes;
    }

    /// What the backup `command_id` of database `db` sent (zeros when nothing).
    pub fn transfer_of(&self, db: &str, command_id: &str) -> crate::wire::Transfer {
        self.transfers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(db.to_string(), command_id.to_string()))
            .cloned()
            .unwrap_or_else(|| crate::wire::Transfer {
                command_id: command_id.to_string(),
                ..Default::default()
            })
    }

    pub fn commit(&self) {
        add(&self.commits, 1);
    }

    pub fn chunk_read(&self, chunks: usize, bytes: u64) {
        add(&self.chunk_reads, chunks as u64);
        add(&self.chunk_read_bytes, bytes);
    }

    /// The exposition, with the object store's request counts `objects`.
    pub fn render(&self, objects: &orca_repo::Requests) -> String {
        let mut out = String::new();
        let name = "orca_vault_object_requests_total";
        header(
            &mut out,
            name,
            "requests to the object store under the repository (what S3 bills)",
            "counter",
        );
        for (op, n) in [
            ("put", objects.put),
            ("get", objects.get),
            ("head", objects.head),
            ("list", objects.list),
            ("delete", objects.delete),
            ("copy", objects.copy),
        ] {
            let _ = writeln!(out, "{name}{{op=\"{op}\"}} {n}");
        }
        for (name, help, c) in [
            ("orca_vault_requests_total", "HTTP requests", &self.requests),
            (
                "orca_vault_bytes_in_total",
                "request body bytes received",
                &*self.bytes_in,
            ),
            (
                "orca_vault_bytes_out_total",
                "response body bytes sent",
                &*self.bytes_out,
            ),
            ("orca_vault_probes_total", "batch probes", &self.probes),
            (
                "orca_vault_probed_ids_total",
                "chunk ids probed",
                &self.probed_ids,
            ),
            (
                "orca_vault_probed_present_ids_total",
                "probed chunk ids already stored (not sent: dedup savings)",
                &self.probed_present,
            ),
            (
                "orca_vault_uploads_total",
                "chunk upload requests",
                &self.uploads,
            ),
            (
                "orca_vault_uploaded_chunks_total",
                "chunks received",
                &self.uploaded_chunks,
            ),
            (
                "orca_vault_uploaded_bytes_total",
                "encoded chunk bytes received",
                &self.uploaded_bytes,
            ),
            (
                "orca_vault_upload_duplicate_chunks_total",
                "chunks received that were already stored",
                &self.duplicate_chunks,
            ),
            (
                "orca_vault_upload_duplicate_bytes_total",
                "encoded bytes received of chunks already stored",
                &self.duplicate_bytes,
            ),
            (
                "orca_vault_commits_total",
                "pieces committed",
                &self.commits,
            ),
            (
                "orca_vault_chunk_reads_total",
                "chunks read for restores",
                &self.chunk_reads,
            ),
            (
                "orca_vault_chunk_read_bytes_total",
                "encoded chunk bytes read for restores",
                &self.chunk_read_bytes,
            ),
        ] {
            header(&mut out, name, help, "counter");
            let _ = writeln!(out, "{name} {}", c.load(Ordering::Relaxed));
        }
        let l = self.labelled();
        let name = "orca_vault_request_errors_total";
        header(
            &mut out,
            name,
            "answers with a 4xx or 5xx status",
            "counter",
        );
        for (status, n) in &l.errors {
            let _ = writeln!(out, "{name}{{status=\"{status}\"}} {n}");
        }
        let name = "orca_vault_request_duration_seconds";
        header(&mut out, name, "time to answer a request", "histogram");
        for ((method, route, class), h) in &l.requests {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{class}\"",
                escape(route)
            );
            histogram(&mut out, name, &labels, h);
        }
        let name = "orca_vault_probe_batch_size";
        header(&mut out, name, "chunk ids per probe", "histogram");
        if let Some(h) = &l.probe_sizes {
            histogram(&mut out, name, "", h);
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (i, n) in h.counts.iter().enumerate() {
        cumulative += n;
        let le = h
            .bounds
            .get(i)
            .map_or("+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
        );
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum);
    let _ = writeln!(out, "{name}_count{braces} {cumulative}");
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// Middleware around every route: counts body bytes as they pass, times the answer.
pub(crate) async fn observe(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    add(&m.requests, 1);
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let counter = m.bytes_in.clone();
    let req = req.map(|b| Body::new(Counted { inner: b, counter }));
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    {
        let mut l = m.labelled();
        l.requests
            .entry((method, route, status_class(status)))
            .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
            .observe(start.elapsed().as_secs_f64());
        if status >= 400 {
            *l.errors.entry(status).or_default() += 1;
        }
    }
    let counter = m.bytes_out.clone();
    resp.map(|b| Body::new(Counted { inner: b, counter }))
}

/// A body that counts its data bytes as they pass and keeps the inner body's size (so answers
/// keep their `Content-Length`).
struct Counted {
    inner: Body,
    counter: Arc<AtomicU64>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            add(&self.counter, data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
