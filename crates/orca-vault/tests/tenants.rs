//! Integrity isolation between databases (issue 20): one database's token, holding the
//! repository key, cannot change what another database's pieces restore to; only databases
//! an administrator puts in one dedup group share chunks, and trust each other.

mod common;

use orca_repo::{
    Backend, ChunkerSpec, EncodedChunk, KeySource, Keys, Manifest, ManifestHeader, PieceMeta,
    Repository,
};
use orca_vault::server::{Groups, LEGACY_GROUP, Scope};

use common::{PASS, Vault, data, put, read};

const MIB: u32 = 1 << 20;

/// The keys every database's client holds: the repository key, ids keyed by it alone.
fn repository_keys(v: &Vault, token: &str) -> Keys {
    let c = v.client(token);
    let config = v.rt.block_on(c.config()).unwrap();
    let wrapped = v.rt.block_on(c.wrapped_keys()).unwrap();
    wrapped[0]
        .unwrap(&config.id, PASS, "keys")
        .unwrap()
        .unwrap()
}

/// The attack: through `attacker`'s token, garbage stored under the id each 1 MiB chunk of
/// `victim` (the default fixed chunking) gets under every key in `keys`, before the victim's
/// backup. Returns the chunks stored.
fn poison(v: &Vault, attacker: &Repository, keys: &[&Keys], victim: &[u8]) -> usize {
    let mut chunks = Vec::new();
    for k in keys {
        for c in victim.chunks(MIB as usize) {
            let id = k.chunk_id(c);
            let garbage = vec![0x5a; c.len()];
            chunks.push(EncodedChunk {
                id,
                raw_len: u32::try_from(c.len()).unwrap(),
                payload: attacker.codec().encode(&id, &garbage).unwrap().into(),
            });
        }
    }
    let n = chunks.len();
    let b = attacker.backend();
    v.rt.block_on(async {
        b.put_chunks(chunks).await?;
        b.flush().await
    })
    .unwrap();
    n
}

fn uploaded(v: &Vault) -> f64 {
    v.metric("orca_vault_uploaded_chunks_total")
}

/// A's token and key store garbage under the ids B's data would get under A's group key and
/// under the bare repository key; B's backup of that data then restores byte-exact. A reader
/// in another group (an admin token of another database) reads B's piece with the group key
/// its manifest seals.
#[test]
fn a_database_cannot_change_what_another_restores_to() {
    let v = Vault::start();
    let (ta, tb) = (v.token("DBA", Scope::Backup), v.token("DBB", Scope::Backup));
    let a = v.repo(&ta);
    let victim = data(3 * MIB + 12_345, 7);
    let bare = repository_keys(&v, &ta);
    assert_eq!(poison(&v, &a, &[a.codec().keys(), &bare], &victim), 8);

    let b = v.repo(&tb);
    let before = uploaded(&v);
    put(&b, "DBB/p1", "DBB", &victim);
    assert_eq!(uploaded(&v) - before, 4.0, "B stores its own chunks");
    assert_eq!(read(&v.rt, &b, "DBB/p1").unwrap(), victim);

    let admin = v.repo(&v.token("OPS", Scope::Admin));
    assert_ne!(
        admin.codec().keys().id_key_fingerprint(),
        b.codec().keys().id_key_fingerprint()
    );
    assert_eq!(read(&v.rt, &admin, "DBB/p1").unwrap(), victim);
}

/// Negative control: with A and B put in one group by an administrator, the same attack makes
/// B's restore fail. That is the trust a group means.
#[test]
fn within_one_group_the_same_attack_succeeds() {
    let v = Vault::start();
    let groups = Groups::open(&v.data).unwrap();
    groups.create("SHARED").unwrap();
    let dbs = ["DBA".to_string(), "DBB".to_string()];
    groups.add("SHARED", &dbs, &|_| Ok(false)).unwrap();
    let (ta, tb) = (v.token("DBA", Scope::Backup), v.token("DBB", Scope::Backup));
    let a = v.repo(&ta);
    let victim = data(3 * MIB + 12_345, 7);
    poison(&v, &a, &[a.codec().keys()], &victim);

    let b = v.repo(&tb);
    let before = uploaded(&v);
    put(&b, "DBB/p1", "DBB", &victim);
    assert_eq!(uploaded(&v), before, "B found every chunk stored");
    let e = read(&v.rt, &b, "DBB/p1").unwrap_err().to_string();
    assert!(e.contains("does not match its fingerprint"), "{e}");
}

/// Databases of one group dedup with each other; a database of another group stores the
/// same data again.
#[test]
fn one_group_dedups_and_different_groups_do_not() {
    let v = Vault::start();
    let groups = Groups::open(&v.data).unwrap();
    groups.create("SHARED").unwrap();
    let dbs = ["DBA".to_string(), "DBB".to_string()];
    groups.add("SHARED", &dbs, &|_| Ok(false)).unwrap();
    let bytes = data(4 * MIB, 3);
    let sent = |db: &str| {
        let r = v.repo(&v.token(db, Scope::Backup));
        let before = uploaded(&v);
        put(&r, &format!("{db}/p"), db, &bytes);
        assert_eq!(read(&v.rt, &r, &format!("{db}/p")).unwrap(), bytes);
        uploaded(&v) - before
    };
    assert_eq!(sent("DBA"), 4.0);
    assert_eq!(sent("DBB"), 0.0, "same group: nothing new");
    assert_eq!(sent("DBC"), 4.0, "a group of its own: stored again");
    let listed = groups.list().unwrap();
    let of = |name: &str| {
        listed
            .iter()
            .find(|g| g.name == name)
            .unwrap()
            .members
            .clone()
    };
    assert_eq!(of("SHARED"), ["DBA", "DBB"]);
    assert_eq!(of("DBC"), ["DBC"]);
}

/// Pieces written before groups existed (by the repository key alone, no vault in between):
/// their database goes to the legacy group, restores them, and dedups its new backups against
/// them; a database first seen now gets a group of its own. A client that keys ids without
/// its group's secret (one from before groups) may not commit in a group that has one.
#[test]
fn pieces_from_before_groups_still_restore() {
    let old = data(2 * MIB + 99, 5);
    let v = Vault::start_prepared(|dir| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (repo, _) = rt
            .block_on(Repository::open_local(
                dir,
                &KeySource::Passphrase(PASS.into()),
            ))
            .unwrap();
        put(&repo, "OLD/p1", "OLD", &old);
    });
    let t = v.token("OLD", Scope::Backup);
    let me = v.rt.block_on(v.client(&t).whoami()).unwrap();
    assert_eq!(
        (me.group.as_deref(), me.group_secret),
        (Some(LEGACY_GROUP), None)
    );
    let r = v.repo(&t);
    assert_eq!(read(&v.rt, &r, "OLD/p1").unwrap(), old);
    let before = uploaded(&v);
    put(&r, "OLD/p2", "OLD", &old);
    assert_eq!(uploaded(&v), before, "dedups against the old pieces");
    assert_eq!(read(&v.rt, &r, "OLD/p2").unwrap(), old);

    let tn = v.token("NEW", Scope::Backup);
    let me = v.rt.block_on(v.client(&tn).whoami()).unwrap();
    assert_eq!(me.group.as_deref(), Some("NEW"));
    assert_eq!(me.group_secret.map(|s| s.len()), Some(64));

    // A manifest as a client from before groups writes it: no id key named.
    let m = Manifest {
        header: ManifestHeader {
            version: 1,
            name: "NEW/stale-client".into(),
            size: 0,
            chunker: ChunkerSpec::default(),
            meta: PieceMeta {
                database: Some("NEW".into()),
                created: orca_repo::now_unix(),
                ..Default::default()
            },
            id_key: None,
            group_secret: None,
            demux: None,
        },
        chunks: Vec::new(),
    };
    let bytes = m.encode(&repository_keys(&v, &tn)).unwrap();
    let e =
        v.rt.block_on(v.client(&tn).commit(bytes))
            .unwrap_err()
            .to_string();
    assert!(e.contains("older than the vault's dedup groups"), "{e}");
}

/// Moving a database with committed pieces to another group is refused, naming why, and
/// changes nothing; the database keeps restoring in its own group.
#[test]
fn a_database_with_pieces_is_not_moved() {
    let v = Vault::start();
    let t = v.token("DBA", Scope::Backup);
    let r = v.repo(&t);
    let bytes = data(MIB, 1);
    put(&r, "DBA/p", "DBA", &bytes);
    let groups = Groups::open(&v.data).unwrap();
    groups.create("SHARED").unwrap();
    let before = groups.list().unwrap();
    let e = groups
        .add("SHARED", &["DBA".to_string()], &|db| Ok(db == "DBA"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("DBA has committed pieces") && e.contains("bound to its group DBA"),
        "{e}"
    );
    assert_eq!(groups.list().unwrap(), before);
    assert_eq!(read(&v.rt, &v.repo(&t), "DBA/p").unwrap(), bytes);
}
