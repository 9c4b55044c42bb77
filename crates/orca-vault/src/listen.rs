//! Serving HTTP to clients that may be hostile: the vault's server and the backup store's.
//!
//! Every connection holds a file descriptor and memory, so what one client can hold is
//! bounded ([`Limits`]):
//! - at most `max_connections` connections are served at once; more wait in the kernel's
//!   listen backlog until one closes, so the process never runs out of descriptors;
//! - a TLS handshake, and the headers of each HTTP/1.1 request, must arrive within
//!   `header_timeout` (for a kept-alive connection hyper counts from the previous answer, so
//!   this also closes HTTP/1.1 connections left idle);
//! - a request body must arrive within `body_timeout` of its headers: past it the handler's
//!   read of the body fails with [`BodyTimeout`] (see [`is_body_timeout`]) and it answers 408;
//! - a connection with no request in flight for `idle_timeout` is shut down (HTTP/2, and a
//!   connection that never sends a whole request), and dropped if it does not finish within
//!   `header_timeout` more.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// HTTP/2 streams one connection may have open at once.
const MAX_STREAMS: u32 = 64;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a server allows each client; [`Limits::default`] gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A TLS handshake, and the headers of an HTTP/1.1 request, must arrive within this.
    pub header_timeout: Duration,
    /// A request body must arrive within this once its headers have.
    pub body_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(120),
            max_connections: 1024,
        }
    }
}

impl Limits {
    /// Refuses limits that would let nothing through.
    pub fn check(&self) -> Result<(), String> {
        let zero = [
            ("header timeout", self.header_timeout),
            ("body timeout", self.body_timeout),
            ("idle timeout", self.idle_timeout),
        ]
        .into_iter()
        .find(|(_, d)| d.is_zero());
        if let Some((what, _)) = zero {
            return Err(format!("the {what} must be longer than 0 s"));
        }
        if self.max_connections == 0 {
            return Err("at least one connection must be allowed".into());
        }
        Ok(())
    }
}

/// A request body that did not arrive within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs_f64())]
pub struct BodyTimeout(pub Duration);

/// Whether `e`, or an error it wraps, is a [`BodyTimeout`]: what a handler's failed read of
/// its body answers 408 for.
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<BodyTimeout>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// A connection's stream once accepted (TLS or plain TCP).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// What turns an accepted TCP connection into the stream HTTP is spoken on (a TLS handshake).
pub type Handshake = Arc<
    dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = std::io::Result<Box<dyn Stream>>> + Send>>
        + Send
        + Sync,
>;

/// Serves `app` on `listener` until the process ends: HTTP/1.1 and HTTP/2 (by prior knowledge
/// on plain TCP, by ALPN after `handshake`), within `limits`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    handshake: Option<Handshake>,
) -> Infallible {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    // Upload bodies are megabytes: let HTTP/2 windows grow with the link instead of stalling
    // every stream at the default 64 KiB.
    http.http2()
        .timer(TokioTimer::new())
        .adaptive_window(true)
        .max_concurrent_streams(MAX_STREAMS);
    let http = Arc::new(http);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait for connections to close, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (http, app, handshake) = (http.clone(), app.clone(), handshake.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let stream: Box<dyn Stream> = match handshake {
                None => Box::new(tcp),
                Some(h) => match tokio::time::timeout(limits.header_timeout, h(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "handshake timed out");
                        return;
                    }
                },
            };
            connection(&http, stream, app, limits, peer).await;
        });
    }
}

/// Serves one connection until it ends, or until it stays idle too long.
async fn connection(
    http: &auto::Builder<TokioExecutor>,
    stream: Box<dyn Stream>,
    app: Router,
    limits: Limits,
    peer: std::net::SocketAddr,
) {
    let activity = Arc::new(Activity::new());
    let app = TowerToHyperService::new(app);
    let watched = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = watched.begin();
        let req = req.map(|body| Deadline::new(body, limits.body_timeout));
        let answer = app.call(req);
        async move {
            let resp = answer.await?;
            Ok::<_, Infallible>(resp.map(|body| Body::new(Busy { body, _busy: busy })))
        }
    });
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(limits.idle_timeout / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tick.tick() => {
                if activity.idle_for(limits.idle_timeout) {
                    break;
                }
            }
        }
    }
    tracing::debug!(%peer, "closing an idle connection");
    conn.as_mut().graceful_shutdown();
    if tokio::time::timeout(limits.header_timeout, conn)
        .await
        .is_err()
    {
        tracing::debug!(%peer, "dropped a connection that did not shut down");
    }
}

/// Whether a connection has requests in flight, and since when it has had none.
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// No request in flight, for at least `d`.
    fn idle_for(&self, d: Duration) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
            && self
                .idle_since
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                >= d
    }
}

/// A request in flight, until its answer is sent (or dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An answer's body, which keeps its request in flight until it is sent.
struct Busy {
    body: Body,
    _busy: InFlight,
}

impl HttpBody for Busy {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that fails with [`BodyTimeout`] once its time is up.
struct Deadline {
    body: Incoming,
    timer: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl Deadline {
    fn new(body: Incoming, limit: Duration) -> Self {
        Deadline {
            body,
            timer: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_found_under_the_errors_that_wrap_it() {
        let wrapped = axum::Error::new(BodyTimeout(Duration::from_secs(3)));
        assert!(is_body_timeout(&wrapped));
        assert!(!is_body_timeout(&axum::Error::new(std::io::Error::other(
            "reset"
        ))));
        assert!(Limits::default().check().is_ok());
        let none = Limits {
            max_connections: 0,
            ..Limits::default()
        };
        assert!(none.check().is_err());
    }
}
