//! The library loaded by the simulator's `rman` exactly as Oracle's RMAN loads it: backup,
//! loss of the datafiles, restore and recovery, repeat backups, maintenance and failures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

/// The workspace target directory (where `cargo` puts the library and the simulator).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("debug")
}

/// Builds the cdylib and the simulator binary when missing (`cargo test -p orca-sbt` alone).
/// `cargo test --workspace` builds both itself; building again from here would resolve
/// features differently and rebuild half the dependency graph.
fn build() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if Env::lib().exists() && target_dir().join("oraclesim").exists() {
            return;
        }
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "orca-sbt", "-p", "orca-oracle-sim"])
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build of the library and simulator failed"
        );
    });
}

struct Env {
    tmp: tempfile::TempDir,
    home: PathBuf,
    repo: PathBuf,
    bin: PathBuf,
}

const PASSWORD: &str = "sbt-test-pass";

impl Env {
    /// A database of 4 x `mb` MiB and an empty repository.
    fn new(mb: u32) -> Env {
        build();
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        let sim = target_dir().join("oraclesim");
        let ok = Command::new(&sim)
            .arg("install-shims")
            .arg(&bin)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok);
        let home = tmp.path().join("db");
        let ok = Command::new(&sim)
            .args(["create", "--home"])
            .arg(&home)
            .args(["--name", "ORCL", "--datafiles", "4", "--size-mb"])
            .arg(mb.to_string())
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok);
        let repo = tmp.path().join("repo");
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(orca_repo::Repository::init_local(
            &repo,
            &orca_repo::InitOptions {
                kdf: orca_repo::KdfParams {
                    m_kib: 256,
                    t: 1,
                    p: 1,
                },
                ..Default::default()
            },
            &orca_repo::NewKey::Passphrase(PASSWORD.into()),
        ))
        .unwrap();
        Env {
            tmp,
            home,
            repo,
            bin,
        }
    }

    fn lib() -> PathBuf {
        target_dir().join("liborca_sbt.so")
    }

    fn channel(&self, extra_env: &str) -> String {
        format!(
            "device type sbt parms 'SBT_LIBRARY={}, ENV=(ORCA_REPO={}, ORCA_PASSWORD={PASSWORD}, ORCA_CACHE_DIR={}{extra_env})'",
            Self::lib().display(),
            self.repo.display(),
            self.tmp.path().join("cache").display()
        )
    }

    fn rman(&self, script: &str, env: &[(&str, &str)]) -> (bool, String) {
        let f = self.tmp.path().join("script.rman");
        std::fs::write(&f, script).unwrap();
        let mut c = Command::new(self.bin.join("rman"));
        c.arg("target")
            .arg("/")
            .arg(format!("cmdfile={}", f.display()))
            .env("ORACLESIM_HOME", &self.home);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    fn rman_ok(&self, script: &str) -> String {
        let (ok, out) = self.rman(script, &[]);
        assert!(ok, "rman failed:\n{out}");
        out
    }

    /// `BACKUP DATABASE FILESPERSET 1` through two SBT channels.
    fn backup(&self) -> String {
        let ch = self.channel("");
        self.rman_ok(&format!(
            "run {{\n allocate channel c1 {ch};\n allocate channel c2 {ch};\n backup database filesperset 1;\n}}\n"
        ))
    }

    fn oraclesim(&self, args: &[&str]) {
        let ok = Command::new(target_dir().join("oraclesim"))
            .args(args)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "oraclesim {args:?}");
    }

    /// Per-piece statistics lines of the trace file, in order.
    fn stats(&self) -> Vec<PieceStats> {
        let text = std::fs::read_to_string(self.home.join("trace/sbtio.log")).unwrap_or_default();
        text.lines().filter_map(PieceStats::parse).collect()
    }

    fn db_bytes(&self) -> u64 {
        std::fs::read_dir(self.home.join("oradata/ORCL"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    }
}

#[derive(Debug, Default, Clone)]
struct PieceStats {
    name: String,
    bytes_in: u64,
    new_bytes: u64,
    chunks: u64,
    cache_hits: u64,
    probes: u64,
    oracle_blocks: u64,
}

impl PieceStats {
    fn parse(line: &str) -> Option<PieceStats> {
        let rest = line.split(" piece ").nth(1)?;
        let (name, rest) = rest.split_once(" committed: ")?;
        let mut s = PieceStats {
            name: name.to_string(),
            ..Default::default()
        };
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "bytes_in" => s.bytes_in = v,
                "new_bytes" => s.new_bytes = v,
                "chunks" => s.chunks = v,
                "cache_hits" => s.cache_hits = v,
                "probes" => s.probes = v,
                "oracle_blocks" => s.oracle_blocks = v,
                _ => {}
            }
        }
        Some(s)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn backup_lose_datafiles_restore_recover_verifies() {
    let env = Env::new(16);
    env.backup();
    let home = env.home.to_str().unwrap();
    env.oraclesim(&[
        "workload",
        "--home",
        home,
        "--change-pct",
        "2",
        "--log-switches",
        "2",
    ]);
    let reference = env.tmp.path().join("reference");
    copy_dir(&env.home, &reference);
    for e in std::fs::read_dir(env.home.join("oradata/ORCL")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let ch = env.channel("");
    let out = env.rman_ok(&format!(
        "run {{\n allocate channel c1 {ch};\n allocate channel c2 {ch};\n restore database;\n recover database;\n}}\n"
    ));
    assert!(out.contains("media recovery complete"), "{out}");
    env.oraclesim(&[
        "verify",
        "--home",
        home,
        "--against",
        reference.to_str().unwrap(),
    ]);
}

#[test]
fn repeat_backups_store_almost_nothing_and_skip_probes() {
    let env = Env::new(16);
    let size = env.db_bytes();
    env.backup();
    let first = env.stats();
    let out = env.backup();
    assert!(out.contains("comment=API Version 2.0,MMS Version"), "{out}");
    let second: Vec<PieceStats> = env.stats()[first.len()..].to_vec();
    let datafile_pieces: Vec<&PieceStats> = second
        .iter()
        .filter(|s| s.oracle_blocks > 0 && !s.name.starts_with("c-"))
        .collect();
    assert_eq!(datafile_pieces.len(), 4, "{second:?}");
    let new: u64 = second.iter().map(|s| s.new_bytes).sum();
    assert!(
        new * 200 <= size,
        "second backup stored {new} new bytes of {size} (limit 0.5%): {second:?}"
    );
    for s in &datafile_pieces {
        // Only the chunks holding RMAN's piece header and trailer change between runs; every
        // chunk of datafile blocks is a cache hit.
        assert!(s.cache_hits + 2 >= s.chunks, "{s:?}");
    }

    // 1% of the blocks changed: a full backup stores little more than the changed blocks.
    let home = env.home.to_str().unwrap();
    env.oraclesim(&["workload", "--home", home, "--change-pct", "1"]);
    let before = env.stats().len();
    let ch = env.channel("");
    env.rman_ok(&format!(
        "run {{\n allocate channel c1 {ch};\n allocate channel c2 {ch};\n backup incremental level 0 database filesperset 1;\n}}\n"
    ));
    let third: u64 = env.stats()[before..].iter().map(|s| s.new_bytes).sum();
    assert!(
        third * 20 <= size,
        "level 0 after 1% change stored {third} of {size} (limit 5%)"
    );
}

#[test]
fn archived_logs_and_autobackups_go_through_sbt_and_crosscheck_finds_deleted_pieces() {
    let env = Env::new(4);
    let home = env.home.to_str().unwrap();
    env.oraclesim(&[
        "workload",
        "--home",
        home,
        "--change-pct",
        "1",
        "--log-switches",
        "3",
    ]);
    let ch = env.channel("");
    let out = env.rman_ok(&format!(
        "configure channel device type sbt parms 'SBT_LIBRARY={}, ENV=(ORCA_REPO={}, ORCA_PASSWORD={PASSWORD}, ORCA_CACHE_DIR={})';\nconfigure controlfile autobackup on;\nrun {{\n allocate channel c1 {ch};\n backup archivelog all;\n}}\n",
        Env::lib().display(),
        env.repo.display(),
        env.tmp.path().join("cache").display()
    ));
    assert!(
        out.contains("piece handle=c-"),
        "autobackup with %F:\n{out}"
    );
    // Every piece committed is in the repository.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (repo, _) = rt
        .block_on(orca_repo::Repository::open_local(
            &env.repo,
            &orca_repo::KeySource::Passphrase(PASSWORD.into()),
        ))
        .unwrap();
    let pieces = rt
        .block_on(repo.list(&orca_repo::PieceFilter::default()))
        .unwrap();
    assert!(pieces.len() >= 2, "{pieces:?}");
    // Deleted behind RMAN's back: CROSSCHECK marks it EXPIRED, DELETE EXPIRED drops it.
    let victim = pieces
        .iter()
        .find(|p| !p.name.starts_with("c-"))
        .unwrap()
        .name
        .clone();
    rt.block_on(repo.delete(&victim)).unwrap();
    let out = env.rman_ok("crosscheck backup;\n");
    assert!(out.contains("found to be 'EXPIRED'"), "{out}");
    let out = env.rman_ok("delete noprompt expired backup;\n");
    assert!(out.contains("Deleted 1 objects"), "{out}");
    // DELETE BACKUPPIECE removes it from the repository through sbtremove2.
    let other = pieces
        .iter()
        .find(|p| p.name != victim)
        .unwrap()
        .name
        .clone();
    let out = env.rman_ok(&format!("delete noprompt backuppiece '{other}';\n"));
    assert!(out.contains("Deleted 1 objects"), "{out}");
    let left = rt
        .block_on(repo.list(&orca_repo::PieceFilter::default()))
        .unwrap();
    assert!(left.iter().all(|p| p.name != other && p.name != victim));
}

#[test]
fn configuration_errors_reach_rman_as_ora_19511_naming_the_setting() {
    let env = Env::new(4);
    let script =
        |ch: &str| format!("run {{\n allocate channel c1 {ch};\n backup datafile 1;\n}}\n");
    let missing = format!(
        "device type sbt parms 'SBT_LIBRARY={}, ENV=(ORCA_REPO=/nonexistent/repo, ORCA_PASSWORD=x)'",
        Env::lib().display()
    );
    let (ok, out) = env.rman(&script(&missing), &[]);
    assert!(!ok);
    assert!(out.contains("ORA-19511"), "{out}");
    assert!(out.contains("ORCA_REPO=/nonexistent/repo"), "{out}");

    let wrong_key = format!(
        "device type sbt parms 'SBT_LIBRARY={}, ENV=(ORCA_REPO={}, ORCA_PASSWORD=wrong)'",
        Env::lib().display(),
        env.repo.display()
    );
    let (ok, out) = env.rman(&script(&wrong_key), &[]);
    assert!(!ok);
    assert!(out.contains("ORA-19511"), "{out}");
}

#[test]
fn a_channel_killed_mid_piece_leaves_nothing_visible_and_a_rerun_resends_little() {
    let env = Env::new(16);
    let ch = env.channel("");
    let script = format!("run {{\n allocate channel c1 {ch};\n backup datafile 1;\n}}\n");
    let (ok, out) = env.rman(
        &script,
        &[("ORACLESIM_KILL_CHANNEL_AFTER_BYTES", "8000000")],
    );
    assert!(!ok, "{out}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (repo, _) = rt
        .block_on(orca_repo::Repository::open_local(
            &env.repo,
            &orca_repo::KeySource::Passphrase(PASSWORD.into()),
        ))
        .unwrap();
    let listed = rt
        .block_on(repo.list(&orca_repo::PieceFilter::default()))
        .unwrap();
    assert!(
        listed.is_empty(),
        "a killed piece must stay invisible: {listed:?}"
    );
    env.rman_ok(&script);
    let s = env.stats();
    let last = s
        .iter()
        .find(|p| p.oracle_blocks > 0)
        .expect("datafile piece");
    assert!(
        last.new_bytes < last.bytes_in,
        "the re-run stores less than the piece: {last:?}"
    );
}

#[test]
fn a_stale_fingerprint_cache_fails_one_commit_cleanly_then_recovers() {
    let env = Env::new(8);
    let ch = env.channel("");
    let script = format!("run {{\n allocate channel c1 {ch};\n backup datafile 4;\n}}\n");
    env.rman_ok(&script);
    // The repository loses every chunk behind the cache's back (packs gone, index rebuilt).
    std::fs::remove_dir_all(env.repo.join("packs")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = orca_repo::Store::open_local(&env.repo).await.unwrap();
        store.rebuild_index(None).await.unwrap();
    });
    let (ok, out) = env.rman(&script, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("fingerprint cache was out of date"), "{out}");
    let out = env.rman_ok(&script);
    assert!(out.contains("piece handle="), "{out}");
}

/// Reads a counter from the vault's /metrics.
fn metric(url: &str, name: &str) -> u64 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn backup_and_restore_through_the_vault() {
    let env = Env::new(8);
    let tokens = orca_vault::server::Tokens::open(&env.repo).unwrap();
    let token = tokens
        .create("ORCL", orca_vault::server::Scope::Backup)
        .unwrap();
    let url = orca_vault::server::spawn_local(&env.repo).unwrap();
    let ch = format!(
        "device type sbt parms 'SBT_LIBRARY={}, ENV=(ORCA_VAULT={url}, ORCA_TOKEN={token}, ORCA_PASSWORD={PASSWORD}, ORCA_CACHE_DIR={})'",
        Env::lib().display(),
        env.tmp.path().join("vcache").display()
    );
    let backup = format!(
        "run {{\n allocate channel c1 {ch};\n allocate channel c2 {ch};\n backup database filesperset 1;\n}}\n"
    );
    env.rman_ok(&backup);
    let probes_first = metric(&url, "orca_vault_probes_total");
    env.rman_ok(&backup);
    let probes_second = metric(&url, "orca_vault_probes_total") - probes_first;
    // Unchanged datafiles: only the pieces' header/trailer chunks and the autobackup are probed.
    assert!(
        probes_second <= 2 * 5,
        "{probes_second} probes for an unchanged database"
    );

    let home = env.home.to_str().unwrap();
    let reference = env.tmp.path().join("reference");
    copy_dir(&env.home, &reference);
    for e in std::fs::read_dir(env.home.join("oradata/ORCL")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    env.rman_ok(&format!(
        "run {{\n allocate channel c1 {ch};\n restore database;\n recover database;\n}}\n"
    ));
    env.oraclesim(&[
        "verify",
        "--home",
        home,
        "--against",
        reference.to_str().unwrap(),
    ]);

    // A token of another database is refused with a message naming the vault.
    let other = tokens
        .create("OTHER", orca_vault::server::Scope::Backup)
        .unwrap();
    let bad = ch.replace(&token, &other);
    let (ok, out) = env.rman(
        &format!("run {{\n allocate channel c1 {bad};\n restore datafile 4;\n}}\n"),
        &[],
    );
    assert!(!ok, "{out}");
}
