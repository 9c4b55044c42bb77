//! Raw HTTP/1.1 on loopback, written by hand so a test sees exactly what a server answers
//! (status, headers, body) and can send what no client library would; Prometheus text.

use std::io::{Read, Write};
use std::net::TcpStream;

/// A server's answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The header lines, lower-cased.
    pub headers: String,
    pub body: String,
}

/// `host:port` of `http://host:port[/]` (or of `host:port`).
fn authority(url: &str) -> &str {
    url.trim_start_matches("http://").trim_end_matches('/')
}

/// Sends `head` (the request line and any header lines, each ending in CRLF) with `Host`
/// and `Connection: close` added, then `body` as it is; reads the answer to its end.
pub fn exchange(url: &str, head: &str, body: &[u8]) -> std::io::Result<Response> {
    let addr = authority(url);
    let mut s = TcpStream::connect(addr)?;
    write!(s, "{head}Host: {addr}\r\nConnection: close\r\n\r\n")?;
    // A server may answer and close before an oversized body is all sent (that is what a
    // bound is for): the answer is then already on its way, so read it instead of failing
    // on the broken pipe.
    let sent = s.write_all(body);
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => return Err(sent.err().unwrap_or(e)),
        }
    }
    if raw.is_empty() {
        sent?;
    }
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (headers, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP answer: {raw:?}"),
            )
        })?;
    Ok(Response {
        status,
        headers: headers.to_ascii_lowercase(),
        body: body.to_string(),
    })
}

/// `method path` with `body` (its length in `Content-Length`), bearing `token` when given.
pub fn request(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> std::io::Result<Response> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\n{auth}Content-Length: {}\r\n",
        body.len()
    );
    exchange(url, &head, body)
}

/// The body of `GET path` when the server answers 200; `None` when nothing listens yet or
/// it answers anything else.
pub fn get_ok(url: &str, path: &str) -> Option<String> {
    request(url, "GET", path, None, b"")
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.body)
}

/// The value of metric `name` in Prometheus text, summed over its label sets; `None` when
/// no line has it.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let bare = key.split('{').next()?;
            (bare == name).then(|| value.trim().parse::<f64>().ok())?
        })
        .reduce(|a, b| a + b)
}

/// A connection to `addr` (`host:port`, or an `http://` URL) that sends `head` and then
/// nothing more: a slow client.
pub fn stall(addr: &str, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr.trim_start_matches("http://")).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// What the server sends before it closes `s` (waiting at most `within`); `None` if it keeps
/// the connection open longer.
pub fn closed_within(mut s: TcpStream, within: std::time::Duration) -> Option<String> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(String::new()),
        Err(_) => None,
    }
}

/// Every operation of an OpenAPI document, as `METHOD /path`, asserted to be exactly the
/// routes a test's policy table names: a route added without its line in the table fails
/// the auth matrix instead of escaping it.
pub fn routes_of(doc: &serde_json::Value, policy: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("an OpenAPI document") {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item[method].is_object() {
                routes.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    let documented: std::collections::BTreeSet<String> =
        routes.iter().map(|(m, p)| format!("{m} {p}")).collect();
    let named: std::collections::BTreeSet<String> =
        policy.iter().map(|(r, _)| r.to_string()).collect();
    assert_eq!(
        documented, named,
        "every route of the OpenAPI document has its line in POLICY, and only those"
    );
    routes
}

/// Stalled requests are cut off within 5 s each: those that stopped in their body with a
/// 408, those that stopped in their headers by the connection closing.
pub fn cut_off(half_bodies: Vec<TcpStream>, half_headers: Vec<TcpStream>) {
    let within = std::time::Duration::from_secs(5);
    for s in half_bodies {
        let said = closed_within(s, within).expect("a stalled body is cut off");
        assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    }
    for s in half_headers {
        closed_within(s, within).expect("stalled headers are cut off");
    }
}
