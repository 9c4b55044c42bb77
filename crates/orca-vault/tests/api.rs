//! The vault served for real on loopback: a client writes and reads through it; tokens keep
//! databases apart; bad requests get 4xx with a JSON error and change nothing; metrics count.

mod common;

use std::sync::Arc;

use axum::body::Body;
use orca_repo::{Backend, KeySource, PieceFilter, Repository};
use orca_vault::client::{ClientOptions, VaultClient};
use orca_vault::server::{Scope, VaultError, router};
use tower::ServiceExt;

use common::{Vault, claim, data, put, read};

#[test]
fn pieces_round_trip_and_tokens_keep_databases_apart() {
    let v = Vault::start();
    let orcl = v.token("ORCL", Scope::Backup);
    let other = v.token("OTHER", Scope::Backup);
    let reader = v.token("ORCL", Scope::Restore);
    let admin = v.token("ops", Scope::Admin);

    let a = v.repo(&orcl);
    let bytes = data(3_000_000, 0);
    put(&a, "ORCL/piece1", "ORCL", &bytes);
    assert_eq!(read(&v.rt, &a, "ORCL/piece1").unwrap(), bytes);
    // A second write of the same data is answered from the vault's index: probed, not sent.
    let dup_before = v.metric("orca_vault_probed_present_ids_total");
    put(&a, "ORCL/piece2", "ORCL", &bytes);
    assert!(v.metric("orca_vault_probed_present_ids_total") > dup_before);

    // A commit retried after its answer was lost finds its own manifest: success, no change.
    let c = v.client(&orcl);
    let manifest = v.rt.block_on(c.manifest("ORCL/piece1")).unwrap().unwrap();
    let again = v.rt.block_on(c.commit(manifest)).unwrap();
    assert_eq!(again.name, "ORCL/piece1");
    assert_eq!(v.metric("orca_vault_commits_total"), 2.0);

    // The restore token reads; it may not write.
    let r = v.repo(&reader);
    assert_eq!(read(&v.rt, &r, "ORCL/piece1").unwrap(), bytes);
    let e =
        v.rt.block_on(r.backend().delete("ORCL/piece1"))
            .unwrap_err();
    assert!(e.to_string().contains("refused the token"), "{e}");

    // Another database's token sees nothing and may neither read, look at nor delete.
    let b = v.repo(&other);
    let listed = v.rt.block_on(b.list(&PieceFilter::default())).unwrap();
    assert!(listed.is_empty());
    let e = read(&v.rt, &b, "ORCL/piece1").unwrap_err().to_string();
    assert!(
        e.contains("refused the token") && e.contains("check ORCA_TOKEN"),
        "{e}"
    );
    assert!(!e.contains(&other), "the token leaked into {e}");
    let e = v.rt.block_on(b.delete("ORCL/piece1")).unwrap_err();
    assert!(e.to_string().contains("refused the token"), "{e}");
    for (method, path) in [
        ("GET", "/api/v1/pieces/manifest?name=ORCL%2Fpiece1"),
        ("GET", "/api/v1/pieces/info?name=ORCL%2Fpiece1"),
        ("DELETE", "/api/v1/pieces?name=ORCL%2Fpiece1"),
        ("GET", "/api/v1/pieces?database=ORCL"),
    ] {
        let ans = v.raw(method, path, Some(&other), b"");
        assert_eq!(ans.status, 403, "{method} {path}: {ans:?}");
        ans.json();
    }
    let mine = v.raw(
        "GET",
        "/api/v1/pieces/info?name=ORCL%2Fpiece1",
        Some(&orcl),
        b"",
    );
    assert_eq!(mine.status, 200, "{mine:?}");
    assert_eq!(mine.json()["database"], "ORCL");
    assert_eq!(
        v.rt.block_on(a.list(&PieceFilter::default()))
            .unwrap()
            .len(),
        2
    );
    // An admin sees every database's pieces.
    let all = v.raw("GET", "/api/v1/pieces", Some(&admin), b"").json();
    assert_eq!(all.as_array().unwrap().len(), 2);

    // No token: 401 with a JSON error; an unknown one too.
    for token in [None, Some("orca_nope")] {
        let ans = v.raw("GET", "/api/v1/pieces", token, b"");
        assert_eq!(ans.status, 401, "{ans:?}");
        ans.json();
    }
    assert_eq!(v.raw("GET", "/healthz", None, b"").status, 200);
}

#[test]
fn bad_requests_get_json_errors_and_change_nothing() {
    let v = Vault::start();
    let t = v.token("ORCL", Scope::Backup);
    let a = v.repo(&t);
    put(&a, "ORCL/p", "ORCL", &data(100_000, 1));
    let state = |v: &Vault| {
        (
            v.raw("GET", "/api/v1/pieces", Some(&t), b"").body,
            v.metric("orca_vault_commits_total"),
            v.metric("orca_vault_uploaded_chunks_total"),
        )
    };
    let before = state(&v);
    let unknown_id = format!("{{\"ids\": [\"{}\"]}}", "ab".repeat(32));
    for (method, path, body, status) in [
        ("POST", "/api/v1/chunks/missing", &b"{not json"[..], 400),
        ("POST", "/api/v1/chunks/missing", b"{\"ids\": 3}", 422),
        (
            "POST",
            "/api/v1/chunks/missing",
            b"{\"ids\": [\"xyz\"]}",
            422,
        ),
        ("PUT", "/api/v1/chunks", &[1u8; 50], 400),
        ("POST", "/api/v1/pieces", b"garbage manifest", 400),
        ("POST", "/api/v1/chunks/read", unknown_id.as_bytes(), 404),
        ("GET", "/api/v1/pieces/info?name=nope", b"", 404),
        ("GET", "/api/v1/pieces/manifest?name=nope", b"", 404),
        ("DELETE", "/api/v1/pieces?name=nope", b"", 404),
        ("DELETE", "/api/v1/pieces", b"", 400),
        ("GET", "/api/v1/pieces?dbid=many", b"", 400),
        ("GET", "/api/v1/pieces?file_type=tape", b"", 400),
        ("GET", "/api/v1/recovery-points?since=yesterday", b"", 400),
        ("GET", "/api/v1/jobs?state=sleeping", b"", 400),
        ("GET", "/api/v1/jobs/no%20such%20id", b"", 422),
        ("GET", "/api/v1/jobs/none", b"", 404),
        ("GET", "/api/v1/nowhere", b"", 404),
        ("PATCH", "/api/v1/pieces", b"", 405),
    ] {
        let ans = v.raw(method, path, Some(&t), body);
        assert_eq!(ans.status, status, "{method} {path}: {ans:?}");
        ans.json();
    }
    // A body declared over the limit is refused before it is sent, and what is counted in is
    // what arrived, not what was claimed.
    let bytes_in = v.metric("orca_vault_bytes_in_total");
    let ans = claim(&v.url, "PUT", "/api/v1/chunks", &t, 65 << 20);
    assert_eq!(ans.status, 413, "{ans:?}");
    assert!(ans.json()["hint"].as_str().unwrap().contains("64 MiB"));
    assert!(v.metric("orca_vault_bytes_in_total") - bytes_in < 1e6);
    let errors = v.raw("GET", "/metrics", None, b"").body;
    assert!(
        errors.contains("orca_vault_request_errors_total{status=\"413\"} 1"),
        "{errors}"
    );
    assert_eq!(state(&v), before);
}

#[test]
fn a_body_over_the_limit_is_refused_in_json_as_it_streams() {
    let dir = tempfile::tempdir().unwrap();
    common::init(dir.path());
    let token = orca_vault::server::Tokens::open(dir.path())
        .unwrap()
        .create("ORCL", Scope::Backup)
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(router(dir.path())).unwrap();
    // No Content-Length: only reading the body finds it too large.
    let req = axum::http::Request::builder()
        .method("PUT")
        .uri("/api/v1/chunks")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(vec![0u8; (64 << 20) + 1]))
        .unwrap();
    let resp = rt.block_on(app.oneshot(req)).unwrap();
    assert_eq!(resp.status(), 413);
    let body = rt
        .block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
        .unwrap();
    let e: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(e["error"].is_string() && e["hint"].is_string(), "{e}");
}

#[test]
fn metrics_count_latencies_probes_uploads_and_bytes() {
    let v = Vault::start();
    let t = v.token("ORCL", Scope::Backup);
    let a = v.repo(&t);
    let bytes = data(2_500_000, 2);
    put(&a, "ORCL/m1", "ORCL", &bytes);
    // Sending chunks the vault holds costs bandwidth but no space: counted as duplicates.
    let c = v.client(&t);
    let b = v.rt.block_on(c.manifest("ORCL/m1")).unwrap().unwrap();
    let ids: Vec<_> = orca_repo::Manifest::decode_unverified(&b, "m")
        .unwrap()
        .chunks
        .iter()
        .map(|c| c.id)
        .collect();
    let payloads = v.rt.block_on(c.get_chunks(&ids)).unwrap();
    let chunks: Vec<_> = ids
        .iter()
        .zip(payloads)
        .map(|(id, payload)| orca_repo::EncodedChunk {
            id: *id,
            raw_len: 0,
            payload,
        })
        .collect();
    let sent: usize = chunks.iter().map(|c| c.payload.len()).sum();
    let in_before = v.metric("orca_vault_bytes_in_total");
    // Sent for a backup: the vault counts them for its command id too, for its database only.
    let opts = ClientOptions {
        command_id: Some("orca-job-7".into()),
        ..Default::default()
    };
    let tagged = VaultClient::with_options(&v.url, &t, &opts).unwrap();
    v.rt.block_on(tagged.put_chunks(chunks)).unwrap();
    let tr = v.rt.block_on(c.transfer("orca-job-7")).unwrap();
    assert_eq!(tr.received_bytes, sent as u64, "{tr:?}");
    assert_eq!(tr.resent_bytes, sent as u64, "{tr:?}");
    assert_eq!(tr.received_chunks, ids.len() as u64, "{tr:?}");
    assert_eq!(tr.stored_bytes, 0, "{tr:?}");
    let other = v.client(&v.token("PROD", Scope::Backup));
    let none = v.rt.block_on(other.transfer("orca-job-7")).unwrap();
    assert_eq!(none.received_bytes, 0, "{none:?}");
    assert!(v.metric("orca_vault_bytes_in_total") - in_before >= sent as f64);
    assert_eq!(
        v.metric("orca_vault_upload_duplicate_chunks_total"),
        ids.len() as f64
    );
    assert!(v.metric("orca_vault_upload_duplicate_bytes_total") >= sent as f64);
    assert!(v.metric("orca_vault_chunk_reads_total") >= ids.len() as f64);
    assert_eq!(v.metric("orca_vault_commits_total"), 1.0);
    let m = v.raw("GET", "/metrics", None, b"").body;
    for needle in [
        "# TYPE orca_vault_request_duration_seconds histogram",
        "orca_vault_request_duration_seconds_bucket{method=\"PUT\",route=\"/api/v1/chunks\",status=\"2xx\",le=\"+Inf\"}",
        "orca_vault_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/pieces\",status=\"2xx\"} 1",
        "# TYPE orca_vault_probe_batch_size histogram",
        "orca_vault_probe_batch_size_bucket{le=\"+Inf\"}",
    ] {
        assert!(m.contains(needle), "{needle} not in\n{m}");
    }
    assert!(v.metric("orca_vault_bytes_out_total") >= sent as f64);
}

#[test]
fn tokens_are_listed_without_secrets_and_revoked_by_id() {
    let v = Vault::start();
    let a = v.token("ORCL", Scope::Backup);
    let b = v.token("OTHER", Scope::Restore);
    let list = v.tokens.list().unwrap();
    assert_eq!(list.len(), 2);
    let shown = format!("{list:?} {}", serde_json::to_string(&list).unwrap());
    assert!(
        !shown.contains(&a[5..]) && !shown.contains(&b[5..]),
        "{shown}"
    );
    let other = list.iter().find(|t| t.db == "OTHER").unwrap();
    assert_eq!(other.scope, Scope::Restore);
    assert_eq!(v.raw("GET", "/api/v1/pieces", Some(&b), b"").status, 200);

    assert!(matches!(
        v.tokens.revoke("zz"),
        Err(VaultError::InvalidArgument(_))
    ));
    assert!(matches!(
        v.tokens.revoke("0123456789abcdef"),
        Err(VaultError::TokenNotFound(_))
    ));
    let gone = v.tokens.revoke(&other.id[..8]).unwrap();
    assert_eq!(gone.db, "OTHER");
    assert_eq!(v.raw("GET", "/api/v1/pieces", Some(&b), b"").status, 401);
    assert_eq!(v.raw("GET", "/api/v1/pieces", Some(&a), b"").status, 200);
    assert_eq!(v.tokens.list().unwrap().len(), 1);
}

#[test]
fn an_unreachable_vault_is_named_in_the_error() {
    let c: Arc<dyn Backend> = VaultClient::connect("http://127.0.0.1:9", "orca_x").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt
        .block_on(Repository::open(c, &KeySource::Passphrase("x".into())))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("127.0.0.1:9") && e.contains("unreachable") && !e.contains("orca_x"),
        "{e}"
    );
}
