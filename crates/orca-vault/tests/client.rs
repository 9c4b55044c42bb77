//! The client against a stand-in server that answers what the test says: requests in flight
//! are bounded, 5xx is retried, 4xx never is, and the errors say what to do.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orca_repo::Backend;
use orca_vault::client::{ClientError, ClientOptions, VaultClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counts connections and requests; answers each request with `answer`, or never when `None`.
struct StandIn {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

async fn stand_in(answer: Option<String>) -> StandIn {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (c, r) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let (r, answer) = (r.clone(), answer.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // Requests here carry no body: the head ends the request.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        r.fetch_add(1, Ordering::SeqCst);
                        match &answer {
                            Some(a) => {
                                let _ = s.write_all(a.as_bytes()).await;
                            }
                            None => std::future::pending::<()>().await,
                        }
                    }
                }
            });
        }
    });
    StandIn {
        url,
        connections,
        requests,
    }
}

fn client(url: &str, concurrency: usize) -> Arc<VaultClient> {
    let opts = ClientOptions {
        concurrency: Some(concurrency),
        ..Default::default()
    };
    VaultClient::with_options(url, "orca_secret_token", &opts).unwrap()
}

#[test]
fn requests_in_flight_are_bounded() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = stand_in(None).await;
        let c = client(&s.url, 3);
        let calls: Vec<_> = (0..12)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.config().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(s.requests.load(Ordering::SeqCst), 3);
        assert_eq!(s.connections.load(Ordering::SeqCst), 3);
        for call in calls {
            call.abort();
        }
    });
}

/// An HTTP/1.1 answer with a JSON body.
fn answer(status: &str, body: &str) -> Option<String> {
    Some(format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
}

#[test]
fn server_errors_are_retried_and_refusals_are_not() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = stand_in(answer("503 Service Unavailable", "{}")).await;
        let e = client(&s.url, 8).config().await.unwrap_err().to_string();
        assert_eq!(s.requests.load(Ordering::SeqCst), 5);
        assert!(
            e.contains(&s.url) && e.contains("503") && e.contains("ORCA_VAULT"),
            "{e}"
        );

        let s = stand_in(answer(
            "403 Forbidden",
            r#"{"error":"not yours","hint":"other token"}"#,
        ))
        .await;
        let e = client(&s.url, 8).config().await.unwrap_err().to_string();
        assert_eq!(s.requests.load(Ordering::SeqCst), 1);
        assert!(
            e.contains(&s.url) && e.contains("not yours") && e.contains("check ORCA_TOKEN"),
            "{e}"
        );
        assert!(!e.contains("orca_secret_token"), "{e}");

        let s = stand_in(answer(
            "409 Conflict",
            r#"{"error":"exists","hint":"pick again"}"#,
        ))
        .await;
        let e = client(&s.url, 8).job("j1").await.unwrap_err();
        assert_eq!(s.requests.load(Ordering::SeqCst), 1);
        let ClientError::Rejected { status, body, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!((status.as_u16(), body.hint.as_str()), (409, "pick again"));
    });
}
