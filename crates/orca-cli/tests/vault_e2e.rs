//! The vault end to end, as a DBA runs it: `orca vault serve` as its own process, the
//! simulator's `rman` loading the SBT library with `ORCA_VAULT`, `orca vault gc` and
//! `orca vault verify` beside it. Database sizes are small here; `ORCA_E2E_DATAFILE_MB`
//! (default 16, four datafiles) makes them bigger (256 gives the 1 GiB of the acceptance run).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use orca_testing::fs::{files_under, flip_byte};
use orca_testing::moto::S3Server;
use orca_testing::orca::Orca;
use orca_testing::pg::PgServer;
use orca_testing::process::{finish, run_ok};
use orca_testing::sim::{DbSpec, SimDb, sbt_parms, sbt_run};
use orca_testing::tools;
use orca_testing::vault::VaultServer;

const PASSWORD: &str = "vault e2e passphrase";

fn orca() -> Orca {
    Orca::at(env!("CARGO_BIN_EXE_orca")).with_password(PASSWORD)
}

fn datafile_mb() -> u32 {
    std::env::var("ORCA_E2E_DATAFILE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// A simulated database with its `rman`, backed up to the vault with its own token.
struct Db {
    sim: SimDb,
    cache: PathBuf,
    token: String,
}

impl Db {
    fn new(root: &Path, vault: &VaultServer, name: &str) -> Db {
        Db::sized(root, vault, name, datafile_mb())
    }

    /// Four datafiles of `mb` MiB.
    fn sized(root: &Path, vault: &VaultServer, name: &str, mb: u32) -> Db {
        let work = root.join(name.to_lowercase());
        std::fs::create_dir_all(&work).unwrap();
        let sim = SimDb::create(
            &tools::oraclesim(),
            &work,
            &DbSpec {
                name: name.into(),
                size_mb: mb,
                // Each database its own DBID and contents.
                seed: Some(name.len() as u64),
                ..DbSpec::default()
            },
        );
        let db = Db {
            sim,
            cache: work.join("cache"),
            token: vault.token(name),
        };
        db.sim.rman_ok(&format!(
            "configure channel device type sbt parms '{}';\nconfigure retention policy to redundancy 1;\n",
            db.parms(vault)
        ));
        db
    }

    /// A channel to `vault` with the database's token.
    fn parms(&self, vault: &VaultServer) -> String {
        sbt_parms(
            &tools::sbt_library(),
            &[
                ("ORCA_VAULT", vault.url()),
                ("ORCA_TOKEN", self.token.clone()),
                ("ORCA_PASSWORD", PASSWORD.into()),
                ("ORCA_CACHE_DIR", self.cache.display().to_string()),
            ],
        )
    }

    /// `rman` running `script` in the background, its output piped for [`finish`].
    fn spawn_rman(&self, script: &str) -> Child {
        self.sim
            .rman_cmd(script)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Two SBT channels, FILESPERSET 1.
    fn backup_script(&self, vault: &VaultServer) -> String {
        let p = self.parms(vault);
        sbt_run(&[&p, &p], "backup database filesperset 1;")
    }

    fn backup(&self, vault: &VaultServer) -> String {
        self.sim.rman_ok(&self.backup_script(vault))
    }

    /// Backs the archived logs up through `vault` and deletes that backup: chunks no piece
    /// uses any more, whatever the datafiles' delta chains keep of older backups.
    fn leave_garbage(&self, vault: &VaultServer) {
        let p = self.parms(vault);
        self.sim.switch();
        self.sim.rman_ok(&sbt_run(&[&p], "backup archivelog all;"));
        self.sim
            .rman_ok(&sbt_run(&[&p], "delete noprompt backup of archivelog all;"));
    }

    /// Delete every datafile, restore and recover through the vault, prove it against a
    /// snapshot taken before the loss.
    fn lose_restore_verify(&self, vault: &VaultServer) {
        let p = self.parms(vault);
        self.sim
            .lose_restore_verify(&sbt_run(&[&p, &p], "restore database;\nrecover database;"));
    }

    /// `oraclesim workload`: `pct` % of the blocks changed, drawn with `seed`.
    fn change(&self, pct: &str, seed: u32) {
        self.sim
            .sim(&["workload", "--change-pct", pct, "--seed", &seed.to_string()]);
    }
}

/// kill -9 `vault` once it has committed `commits` pieces of the running `rman`, which
/// must then fail naming the vault.
fn kill_after_commits(rman: &mut Child, vault: &mut VaultServer, commits: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while vault.metric("orca_vault_commits_total") < commits {
        assert!(
            Instant::now() < deadline,
            "no piece committed through {}",
            vault.url()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    vault.kill();
    let (ok, out) = finish(rman);
    assert!(!ok, "{out}");
    assert!(out.contains("ORA-19511"), "{out}");
    assert!(out.contains(&vault.url()), "{out}");
}

/// Every piece in `data` reads back with every chunk checked (`orca verify`, deep).
fn verify_deep(data: &Path) {
    let check = run_ok(orca().cmd().args(["verify", "--json", "--repo"]).arg(data));
    let check: serde_json::Value = serde_json::from_str(&check).unwrap();
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    assert!(check["deep"].as_bool().unwrap());
}

/// `orca vault verify` (what the vault checks without the key) and [`verify_deep`] clean.
fn verify_both(data: &Path) {
    run_ok(orca().cmd().args(["vault", "verify", "--data"]).arg(data));
    verify_deep(data);
}

/// `orca vault gc --grace 0s --json` on `data`; it may only be refused because another runs.
fn vault_gc(data: &Path) -> std::process::Output {
    let out = orca()
        .cmd()
        .args(["vault", "gc", "--grace", "0s", "--json", "--data"])
        .arg(data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || err.contains("another garbage collection"),
        "{err}"
    );
    out
}

/// The last `orca vault gc --grace 0s` on `collector`'s directory once backups are done and
/// a backup left garbage ([`Db::leave_garbage`]): it sweeps, and the packs (seen through
/// `observer`) shrink. Every pack with a swept chunk is rewritten (`--repack-below 100`):
/// the newest backups' delta chains keep older versions' chunks, so what retention deleted
/// is not all garbage, and packs may stay more than half alive.
fn final_gc(collector: &VaultServer, observer: &VaultServer) -> (u64, u64, serde_json::Value) {
    std::thread::sleep(Duration::from_millis(1100));
    let before = collector.pack_bytes();
    let report = run_ok(
        orca()
            .cmd()
            .args([
                "vault",
                "gc",
                "--grace",
                "0s",
                "--repack-below",
                "100",
                "--json",
                "--data",
            ])
            .arg(&collector.data),
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let after = observer.pack_bytes();
    assert!(report["swept_chunks"].as_u64().unwrap() > 0, "{report}");
    assert!(after < before, "{after} >= {before}");
    (before, after, report)
}

#[test]
fn backup_restore_and_an_unchanged_rebackup_through_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    let vault = VaultServer::init(&orca(), dir.path());
    let db = Db::new(dir.path(), &vault, "ORCL");
    let db_bytes = DbSpec::sized(4, datafile_mb()).bytes();

    let started = Instant::now();
    db.backup(&vault);
    let first = started.elapsed();
    let before = vault.requests();
    let uploaded_before = vault.metric("orca_vault_uploaded_bytes_total");

    let started = Instant::now();
    db.backup(&vault);
    let second = started.elapsed();
    let after = vault.requests();
    let delta: std::collections::BTreeMap<&String, f64> = after
        .iter()
        .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    // Datafile chunks are all fingerprint cache hits: no probe, no upload, no read for them,
    // whatever the size. What remains is per piece: its session, its commit, and a probe and
    // an upload for the chunks holding the piece's own header and trailer (new in every
    // backup: they carry its set stamp), one request each when they fall in one batch.
    let probes = delta
        .get(&"POST /api/v1/chunks/missing".to_string())
        .copied()
        .unwrap_or(0.0);
    eprintln!(
        "database {} MiB: first backup {:.1} s, unchanged re-backup {:.1} s; requests of the re-backup: {delta:?}",
        db_bytes >> 20,
        first.as_secs_f64(),
        second.as_secs_f64()
    );
    let pieces = delta
        .get(&"POST /api/v1/pieces".to_string())
        .copied()
        .unwrap_or(0.0);
    assert!(pieces >= 4.0, "{delta:?}");
    assert!(
        probes <= 2.0 * pieces,
        "{probes} probes for {pieces} pieces: {delta:?}"
    );
    let uploaded = vault.metric("orca_vault_uploaded_bytes_total") - uploaded_before;
    assert!(
        uploaded <= db_bytes as f64 * 0.005,
        "{uploaded} bytes uploaded by an unchanged re-backup"
    );
    db.lose_restore_verify(&vault);
}

#[test]
fn a_vault_killed_mid_backup_fails_the_channel_naming_it_and_a_rerun_sends_only_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = VaultServer::init(&orca(), dir.path());
    let db = Db::new(dir.path(), &vault, "ORCL");
    let mut rman = db.spawn_rman(&db.backup_script(&vault));
    // Kill the vault once some of the database has been committed, the rest in flight.
    kill_after_commits(&mut rman, &mut vault, 2.0);
    let kept = vault.pack_bytes();
    assert!(kept > 0);

    vault.start();
    db.backup(&vault);
    let sent = vault.metric("orca_vault_uploaded_bytes_total");
    let total = vault.pack_bytes();
    eprintln!("kept {kept} bytes from the failed run; the re-run sent {sent} of {total}");
    // The chunks that reached a pack before the kill are not sent again (a pack in flight
    // at the kill may be, once).
    assert!(
        sent <= (total - kept) as f64 + (32u64 << 20) as f64,
        "re-run sent {sent} bytes; {kept} of {total} were already stored"
    );
    db.lose_restore_verify(&vault);
}

#[test]
fn gc_beside_four_concurrent_backups_keeps_every_piece_and_reclaims_deleted_space() {
    let dir = tempfile::tempdir().unwrap();
    let vault = VaultServer::init(&orca(), dir.path());
    let dbs = [
        Db::new(dir.path(), &vault, "ORCL"),
        Db::new(dir.path(), &vault, "SALES"),
    ];
    for round in 0..5 {
        let backups: Vec<Child> = dbs
            .iter()
            .map(|d| d.spawn_rman(&d.backup_script(&vault)))
            .collect();
        let mut collections = 0;
        let mut running = backups;
        let mut outputs = Vec::new();
        while !running.is_empty() || collections == 0 {
            vault_gc(&vault.data);
            collections += 1;
            let mut still = Vec::new();
            for mut c in running {
                match c.try_wait().unwrap() {
                    Some(_) => outputs.push(finish(&mut c)),
                    None => still.push(c),
                }
            }
            running = still;
        }
        for (ok, text) in &outputs {
            assert!(ok, "round {round}: backup failed beside gc:\n{text}");
        }
        // Change the databases and drop what retention no longer needs.
        for d in &dbs {
            d.change("10", round + 1);
            d.sim.rman_ok("delete noprompt obsolete;\n");
        }
    }
    dbs[1].leave_garbage(&vault);
    let (before, after, report) = final_gc(&vault, &vault);
    eprintln!("after 5 rounds: {before} pack bytes, {after} after the last collection: {report}");

    // Every piece the vault holds reads back with every chunk verified.
    verify_deep(&vault.data);
    // And the databases restore from the vault as they are now.
    for d in &dbs {
        d.backup(&vault);
        d.lose_restore_verify(&vault);
    }
}

/// `orca vault group`: a database backed up through the vault is in a group of its own, is
/// not moved once it has pieces (refused, naming why, nothing changed), and the vault's
/// repository still verifies deep with the key (every group's chunk ids accepted).
#[test]
fn a_database_with_pieces_keeps_its_dedup_group() {
    let dir = tempfile::tempdir().unwrap();
    let vault = VaultServer::init(&orca(), dir.path());
    let db = Db::new(dir.path(), &vault, "ORCL");
    db.backup(&vault);
    let group = |args: &[&str]| {
        let mut c = orca().cmd();
        c.args(["vault", "group"])
            .args(&args[..1])
            .arg("--data")
            .arg(&vault.data);
        c.args(&args[1..]).output().unwrap()
    };
    assert!(group(&["create", "SHARED"]).status.success());
    let before = String::from_utf8_lossy(&group(&["list", "--json"]).stdout).to_string();
    let groups: serde_json::Value = serde_json::from_str(&before).unwrap();
    let orcl = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "ORCL");
    assert_eq!(
        orcl.unwrap()["members"],
        serde_json::json!(["ORCL"]),
        "{before}"
    );

    let out = group(&["add", "SHARED", "NEWDB", "ORCL"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("ORCL has committed pieces") && e.contains("Nothing changed"),
        "{e}"
    );
    let after = String::from_utf8_lossy(&group(&["list", "--json"]).stdout).to_string();
    assert_eq!(after, before, "a refused move changes nothing");
    assert!(group(&["add", "SHARED", "NEWDB"]).status.success());
    let shown = String::from_utf8_lossy(&group(&["show", "SHARED"]).stdout).to_string();
    assert!(
        shown.contains("NEWDB") && !shown.contains("ORCL"),
        "{shown}"
    );
    verify_deep(&vault.data);
    db.lose_restore_verify(&vault);
}

#[test]
fn vault_verify_finds_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let vault = VaultServer::init(&orca(), dir.path());
    let db = Db::new(dir.path(), &vault, "ORCL");
    db.backup(&vault);
    run_ok(
        orca()
            .cmd()
            .args(["vault", "verify", "--data"])
            .arg(&vault.data),
    );
    let packs = files_under(&vault.data.join("packs"));
    let victim = &packs[0];
    flip_byte(victim, 0x40);
    let out = orca()
        .cmd()
        .args(["vault", "verify", "--data"])
        .arg(&vault.data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("chunk contents against their ids need the key"),
        "{text}"
    );
    let name = victim.file_name().unwrap().to_str().unwrap();
    assert!(text.contains("PROBLEM") && text.contains(name), "{text}");
    assert!(text.contains("affects piece"), "{text}");
}

#[test]
fn a_vault_on_s3_backs_up_and_a_new_host_attached_to_the_bucket_restores() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start("orca-e2e");
    let url = "s3://orca-e2e/site1";
    let data = dir.path().join("vault");
    run_ok(
        orca()
            .cmd()
            .args(["repo", "init", "--repo"])
            .arg(&data)
            .args(s3.object_args(url)),
    );
    assert!(!data.join("packs").exists() && data.join("objects.json").exists());
    let info = run_ok(orca().cmd().args(["repo", "info", "--repo"]).arg(&data));
    assert!(info.contains(&format!("objects in    {url}")), "{info}");
    let mut vault = VaultServer::serve(&orca(), data.clone());
    let mut db = Db::new(dir.path(), &vault, "ORCL");
    let db_bytes = DbSpec::sized(4, datafile_mb()).bytes();
    let before = vault.object_requests();
    db.backup(&vault);
    let backup = delta(&vault.object_requests(), &before);

    // The vault host is lost with its directory; a new one attaches to the bucket.
    vault.kill();
    std::fs::remove_dir_all(&data).unwrap();
    let data2 = dir.path().join("vault2");
    let out = run_ok(
        orca()
            .cmd()
            .args(["repo", "attach", "--repo"])
            .arg(&data2)
            .args(s3.object_args(url)),
    );
    assert!(out.contains("attached"), "{out}");
    let vault2 = VaultServer::serve(&orca(), data2);
    db.token = vault2.token("ORCL");
    let before = vault2.object_requests();
    db.lose_restore_verify(&vault2);
    let restore = delta(&vault2.object_requests(), &before);
    let gib = db_bytes as f64 / f64::from(1u32 << 30);
    let per_gib = |m: &BTreeMap<String, u64>| -> BTreeMap<String, String> {
        m.iter()
            .map(|(k, v)| (k.clone(), format!("{:.0}", *v as f64 / gib)))
            .collect()
    };
    eprintln!(
        "S3 requests per GiB of database ({} MiB): backup {:?}, restore {:?}",
        db_bytes >> 20,
        per_gib(&backup),
        per_gib(&restore)
    );
    assert!(backup["put"] > 0, "{backup:?}");
    assert_eq!(backup["list"], 0, "LIST during backup: {backup:?}");
    assert_eq!(backup["delete"], 0, "DELETE during backup: {backup:?}");
    assert!(restore["get"] > 0, "{restore:?}");
    assert_eq!(restore["list"], 0, "LIST during restore: {restore:?}");
    assert_eq!(restore["put"], 0, "PUT during restore: {restore:?}");
}

/// Two vault servers on one moto bucket and one PostgreSQL index, the second attached.
struct TwoVaults {
    a: VaultServer,
    b: VaultServer,
    _s3: S3Server,
    pg: PgServer,
}

impl TwoVaults {
    fn start(root: &Path, bucket: &str) -> TwoVaults {
        let s3 = S3Server::start(bucket);
        // PostgreSQL over TLS only, as across a network: index and catalog both use it.
        let pg = PgServer::start();
        let index = pg.database("orca_two");
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        pg.require_tls(&cert.cert.pem(), &cert.signing_key.serialize_pem());
        let ca = root.join("pg-ca.pem");
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let mut shared = s3.object_args(&format!("s3://{bucket}/site1"));
        shared.extend([
            "--index-url".to_string(),
            index.clone(),
            "--index-ca-file".into(),
            ca.display().to_string(),
        ]);
        let (data_a, data_b) = (root.join("vault-a"), root.join("vault-b"));
        run_ok(
            orca()
                .cmd()
                .args(["repo", "init", "--repo"])
                .arg(&data_a)
                .args(&shared),
        );
        let out = run_ok(
            orca()
                .cmd()
                .args(["repo", "attach", "--repo"])
                .arg(&data_b)
                .args(&shared),
        );
        assert!(out.contains("attached"), "{out}");
        let info = run_ok(orca().cmd().args(["repo", "info", "--repo"]).arg(&data_b));
        assert!(info.contains(&format!("index         {index}")), "{info}");
        TwoVaults {
            a: VaultServer::serve(&orca(), data_a),
            b: VaultServer::serve(&orca(), data_b),
            _s3: s3,
            pg,
        }
    }

    /// Two servers, and a database whose token server A made, its backup through four
    /// channels split across both already running.
    fn with_split_backup(root: &Path, bucket: &str) -> (TwoVaults, Db, Child) {
        let two = TwoVaults::start(root, bucket);
        let db = Db::new(root, &two.a, "ORCL");
        let rman = db.spawn_rman(&two.split_backup(&db));
        (two, db, rman)
    }

    /// Four channels, two to each server, with the one token the shared catalog holds.
    fn split_backup(&self, db: &Db) -> String {
        let (pa, pb) = (db.parms(&self.a), db.parms(&self.b));
        sbt_run(&[&pa, &pa, &pb, &pb], "backup database filesperset 1;")
    }
}

/// Two vault servers over one bucket and one PostgreSQL index (over TLS): four SBT channels split
/// across them, the backup restored through either, LIST never called.
#[test]
fn two_vault_servers_on_one_bucket_and_one_postgresql_share_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let two = TwoVaults::start(dir.path(), "orca-two");
    let (a, b) = (&two.a, &two.b);
    // The token made through A's directory is B's too: the catalog is in PostgreSQL.
    let db = Db::new(dir.path(), a, "ORCL");
    let tokens: serde_json::Value = serde_json::from_str(&run_ok(
        orca()
            .cmd()
            .args(["vault", "token", "list", "--json", "--data"])
            .arg(&b.data),
    ))
    .unwrap();
    assert_eq!(tokens.as_array().unwrap().len(), 1, "{tokens}");
    assert_eq!(tokens[0]["db"], "ORCL", "{tokens}");
    let before = (a.object_requests(), b.object_requests());
    db.sim.rman_ok(&two.split_backup(&db));
    let (commits_a, commits_b) = (
        a.metric("orca_vault_commits_total"),
        b.metric("orca_vault_commits_total"),
    );
    assert!(
        commits_a > 0.0 && commits_b > 0.0,
        "pieces through A {commits_a}, B {commits_b}"
    );
    let backup = [
        delta(&a.object_requests(), &before.0),
        delta(&b.object_requests(), &before.1),
    ];
    // Each server lists the pieces both committed.
    let listed = |data: &Path| {
        let out = run_ok(orca().cmd().args(["ls", "--json", "--repo"]).arg(data));
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(listed(&a.data), listed(&b.data));

    let before = (a.object_requests(), b.object_requests());
    db.lose_restore_verify(b);
    db.lose_restore_verify(a);
    let restore = [
        delta(&a.object_requests(), &before.0),
        delta(&b.object_requests(), &before.1),
    ];
    let gib = f64::from(4 * datafile_mb()) / 1024.0;
    for (name, m) in [("backup", &backup), ("restore (twice)", &restore)] {
        let mut total: BTreeMap<String, u64> = BTreeMap::new();
        for side in m {
            for (k, v) in side {
                *total.entry(k.clone()).or_default() += v;
            }
        }
        let per_gib: BTreeMap<&String, String> = total
            .iter()
            .map(|(k, v)| (k, format!("{:.0}", *v as f64 / gib)))
            .collect();
        eprintln!("two servers, S3 requests per GiB of database, {name}: {per_gib:?}");
        assert_eq!(
            total.get("list").copied().unwrap_or(0),
            0,
            "LIST during {name}: {total:?}"
        );
    }

    // A job queued through A is B's to list; a token revoked through B is refused by A.
    let vault_args = |v: &VaultServer| {
        [
            "--vault".to_string(),
            v.url(),
            "--token".into(),
            db.token.clone(),
        ]
    };
    run_ok(
        orca()
            .cmd()
            .args(["backup", "--db", "ORCL", "--window", "1h"])
            .args(vault_args(a)),
    );
    let jobs: serde_json::Value = serde_json::from_str(&run_ok(
        orca().cmd().args(["jobs", "--json"]).args(vault_args(b)),
    ))
    .unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(jobs[0]["state"], "queued", "{jobs}");
    let id = tokens[0]["id"].as_str().unwrap();
    run_ok(
        orca()
            .cmd()
            .args(["vault", "token", "revoke", "--data"])
            .arg(&b.data)
            .arg(id),
    );
    let refused = orca()
        .cmd()
        .arg("jobs")
        .args(vault_args(a))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a revoked token still lists jobs"
    );
    eprintln!("revoked through B, refused by A: {}", err.trim());
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .collect()
}

/// One of two servers killed mid-backup: its channels fail naming it; the re-run through
/// the other server sends only what had not reached the shared repository.
#[test]
fn a_vault_server_killed_mid_backup_is_replaced_by_the_other_which_sends_only_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut two, db, mut rman) = TwoVaults::with_split_backup(dir.path(), "orca-kill");
    kill_after_commits(&mut rman, &mut two.a, 1.0);
    let kept = two.b.pack_bytes();
    assert!(kept > 0);

    let sent_before = two.b.metric("orca_vault_uploaded_bytes_total");
    db.backup(&two.b);
    let sent = two.b.metric("orca_vault_uploaded_bytes_total") - sent_before;
    let total = two.b.pack_bytes();
    eprintln!(
        "two servers, A killed: {kept} bytes in the shared repository after the failure; the re-run through B sent {sent} of {total}"
    );
    assert!(
        sent <= (total - kept) as f64 + (32u64 << 20) as f64,
        "re-run sent {sent} bytes; {kept} of {total} were already stored"
    );
    db.lose_restore_verify(&two.b);
}

/// `orca vault gc` on server A's host while server B takes backups (and RMAN deletes what
/// retention no longer needs): the collection sees B's sessions through the shared index,
/// so every piece still restores.
#[test]
fn gc_on_one_vault_server_while_the_other_takes_backups_keeps_every_piece() {
    let dir = tempfile::tempdir().unwrap();
    let two = TwoVaults::start(dir.path(), "orca-gc-two");
    let db = Db::new(dir.path(), &two.b, "ORCL");
    let mut collections = 0;
    for round in 0..3 {
        let mut rman = db.spawn_rman(&db.backup_script(&two.b));
        while rman.try_wait().unwrap().is_none() {
            vault_gc(&two.a.data);
            collections += 1;
        }
        let (ok, text) = finish(&mut rman);
        assert!(
            ok,
            "round {round}: backup through B failed beside gc on A:\n{text}"
        );
        db.change("10", round + 1);
        db.sim.rman_ok("delete noprompt obsolete;\n");
    }
    assert!(collections > 0, "no collection ran beside a backup");
    db.leave_garbage(&two.b);
    let (before, after, report) = final_gc(&two.a, &two.b);
    eprintln!(
        "gc on A beside backups on B: {collections} collections; {before} pack bytes, {after} after the last: {report}"
    );
    verify_deep(&two.b.data);
    db.lose_restore_verify(&two.a);
}

/// PostgreSQL stopped at once (`pg_ctl -m immediate`) and started again while four channels
/// back up through two servers: each call the vault makes reconnects, so the backup commits
/// or fails with our message; either way no piece names a chunk the bucket lacks, and the
/// database restores.
#[test]
fn postgresql_restarted_mid_backup_leaves_no_dangling_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (two, db, mut rman) = TwoVaults::with_split_backup(dir.path(), "orca-pg-restart");
    // Down once chunks flow: probes and the commits still to come meet it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let sent = |v: &VaultServer| v.metric("orca_vault_uploaded_bytes_total");
    while sent(&two.a) + sent(&two.b) == 0.0 {
        assert!(Instant::now() < deadline, "no chunk uploaded");
        std::thread::sleep(Duration::from_millis(5));
    }
    // A small piece can upload and commit between two looks at the metrics on a loaded
    // machine; what matters is that the backup is still running when PostgreSQL goes down.
    let committed = |v: &VaultServer| v.metric("orca_vault_commits_total");
    let early = committed(&two.a) + committed(&two.b);
    assert!(
        rman.try_wait().unwrap().is_none(),
        "the backup finished before PostgreSQL could be stopped under it"
    );
    two.pg.down();
    std::thread::sleep(Duration::from_secs(2));
    two.pg.up();
    let (ok, text) = finish(&mut rman);
    eprintln!(
        "PostgreSQL restarted mid-backup ({early} pieces committed before): the backup {}",
        if ok { "committed" } else { "failed; re-run" }
    );
    if !ok {
        assert!(text.contains("ORA-19511"), "{text}");
        db.backup(&two.b);
    }
    verify_deep(&two.a.data);
    db.lose_restore_verify(&two.b);
}

/// xorshift64*: the moments of the kill test, the same again from the seed it prints.
struct Rng(u64);

impl Rng {
    /// A seed from `ORCA_KILL_SEED`, else from the clock.
    fn seeded() -> (Rng, u64) {
        let seed = std::env::var("ORCA_KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos()
                    .into()
            });
        (Rng(seed | 1), seed)
    }

    /// Uniform enough in `0..n` milliseconds.
    fn millis(&mut self, n: u64) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        Duration::from_millis(self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1))
    }
}

/// What the SBT library's client waits through before a channel fails: its backoffs
/// (0.2 + 0.4 + 0.8 + 1.6 s between five attempts).
const RETRY_WINDOW: Duration = Duration::from_millis(3000);

/// kill -9 of the vault, and a restart after `down` (its start waits until it answers):
/// how long the vault did not answer.
fn bounce(vault: &mut VaultServer, down: Duration) -> Duration {
    let killed = Instant::now();
    vault.kill();
    std::thread::sleep(down);
    vault.start();
    killed.elapsed()
}

#[test]
fn a_vault_killed_at_20_random_moments_of_backups_and_restarted_within_a_second_loses_nothing() {
    let (mut rng, seed) = Rng::seeded();
    eprintln!("kill moments from seed {seed} (ORCA_KILL_SEED={seed} draws them again)");
    let dir = tempfile::tempdir().unwrap();
    let mut vault = VaultServer::init(&orca(), dir.path());
    let db = Db::sized(dir.path(), &vault, "ORCL", 8);
    // An undisturbed backup: how long one takes, so that the kills land inside the next ones.
    let started = Instant::now();
    db.backup(&vault);
    let one = started.elapsed();
    // One kill per backup, at a random moment of it: the client retries each request through
    // one restart; kills closer together than its retry window would be an outage.
    let (mut kills, mut backups, mut longest) = (0, 0, Duration::ZERO);
    while kills < 20 {
        db.change("5", backups + 1);
        let mut rman = db.spawn_rman(&db.backup_script(&vault));
        // Backups after a small change take less than the first.
        let at = rng.millis(u64::try_from(one.as_millis() * 3 / 4).unwrap());
        std::thread::sleep(at);
        let killed = rman.try_wait().unwrap().is_none();
        if killed {
            let down = bounce(&mut vault, rng.millis(400));
            // Within a second on an idle machine; a loaded one may start the vault slower.
            assert!(
                down < RETRY_WINDOW / 2,
                "the vault took {down:?} to restart"
            );
            longest = longest.max(down);
            kills += 1;
        }
        let (ok, out) = finish(&mut rman);
        assert!(
            ok,
            "backup {} failed, the vault killed {at:?} into it (seed {seed}): {out}",
            backups + 1
        );
        backups += 1;
    }
    eprintln!(
        "{kills} kills in {backups} backups (one undisturbed backup takes {one:?}), each \
         restarted within {longest:?}; every backup completed without a re-run, in {:?}",
        started.elapsed()
    );
    verify_both(&vault.data);
    db.lose_restore_verify(&vault);
}

/// The negative control of the test above: a vault that stays down fails the backup once
/// the client's retry window is over, cleanly: what was committed before reads back whole.
#[test]
fn a_vault_down_past_the_clients_retry_window_fails_the_backup_and_commits_nothing_broken() {
    let dir = tempfile::tempdir().unwrap();
    let mut vault = VaultServer::init(&orca(), dir.path());
    // Files large enough that the pieces left after the first commit cannot all commit
    // before the vault goes down (8 MiB ones once did, on a fast run).
    let db = Db::sized(dir.path(), &vault, "ORCL", 32);
    let mut rman = db.spawn_rman(&db.backup_script(&vault));
    let deadline = Instant::now() + Duration::from_secs(60);
    while vault.metric("orca_vault_commits_total") < 1.0 {
        assert!(Instant::now() < deadline, "no piece committed");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Down until the backup ends: a fixed outage only a little past the window raced a
    // loaded machine, where a channel busy hashing may not call the vault for seconds.
    let killed = Instant::now();
    vault.kill();
    let deadline = killed + Duration::from_secs(120);
    while rman.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = rman.kill();
            panic!("the backup still waits for a vault down for 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let gave_up = killed.elapsed();
    let (ok, out) = finish(&mut rman);
    vault.start();
    assert!(!ok, "the backup completed with the vault down: {out}");
    assert!(
        gave_up >= RETRY_WINDOW,
        "the backup failed {gave_up:?} after the vault went down, within the retry window"
    );
    assert!(
        out.contains("ORA-19511") && out.contains(&vault.url()),
        "{out}"
    );
    verify_both(&vault.data);
}
