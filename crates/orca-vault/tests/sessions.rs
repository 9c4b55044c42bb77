//! Writer sessions through the vault: they belong to their database, and a lineage recorded
//! before a collection swept its chunks is refused.

mod common;

use orca_repo::{Backend, GcOptions, Store};
use orca_vault::server::Scope;

use common::{Vault, data, put};

#[test]
fn sessions_stay_with_their_database_and_stale_lineages_are_refused() {
    let v = Vault::start();
    let orcl = v.token("ORCL", Scope::Backup);
    let other = v.token("OTHER", Scope::Backup);
    let reader = v.token("ORCL", Scope::Restore);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = v.client(&orcl);
    let grant = rt.block_on(client.begin_session("piece1", None)).unwrap();
    assert!(grant.lineage_ok);
    assert!(rt.block_on(client.renew_session(grant.id)).unwrap());

    // Another database's token can neither renew nor end it; a reader may not begin one.
    let path = format!("/api/v1/sessions/{}/renew", grant.id);
    assert_eq!(v.raw("POST", &path, Some(&other), b"").status, 403);
    let path = format!("/api/v1/sessions/{}", grant.id);
    assert_eq!(v.raw("DELETE", &path, Some(&other), b"").status, 403);
    let ans = v.raw(
        "POST",
        "/api/v1/sessions",
        Some(&reader),
        br#"{"holder":"x"}"#,
    );
    assert_eq!(ans.status, 403, "{ans:?}");
    let ans = v.raw("POST", "/api/v1/sessions", Some(&orcl), br#"{"holder": 5}"#);
    assert_eq!(ans.status, 422, "{ans:?}");
    ans.json();

    rt.block_on(client.end_session(grant.id)).unwrap();
    assert!(!rt.block_on(client.renew_session(grant.id)).unwrap());
    assert_eq!(v.raw("DELETE", &path, Some(&orcl), b"").status, 404);

    // A piece is written and deleted, a collection sweeps its chunks: a lineage from before
    // those chunks were last referenced is refused, a newer one accepted. (A lineage taken
    // after the write may still be sound: the sweep took nothing referenced since.)
    let repo = v.repo(&orcl);
    let before = rt.block_on(client.begin_session("probe", None)).unwrap();
    rt.block_on(client.end_session(before.id)).unwrap();
    put(&repo, "ORCL/p", "ORCL", &data(3 << 20, 1));
    rt.block_on(repo.delete("ORCL/p")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let store = rt.block_on(Store::open_local(&v.data)).unwrap();
    let opts = GcOptions {
        grace: std::time::Duration::ZERO,
        ..Default::default()
    };
    let report = rt.block_on(store.gc(&opts, None)).unwrap();
    assert!(report.swept_chunks > 0, "{report:?}");
    let stale = rt
        .block_on(client.begin_session("p2", Some(before.started)))
        .unwrap();
    assert!(!stale.lineage_ok);
    assert!(
        !rt.block_on(client.adopt_lineage(stale.id, before.started))
            .unwrap()
    );
    let now = orca_repo::now_unix();
    assert!(rt.block_on(client.adopt_lineage(stale.id, now)).unwrap());
}
