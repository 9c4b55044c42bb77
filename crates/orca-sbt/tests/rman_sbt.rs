//! The library loaded by the simulator's `rman` exactly as Oracle's RMAN loads it: backup,
//! loss of the datafiles, restore and recovery, repeat backups, maintenance and failures.

mod support;

use std::path::PathBuf;

use orca_testing::http;
use orca_testing::sim::{DbSpec, SimDb, sbt_parms, sbt_run};
use orca_testing::tools;

struct Env {
    tmp: tempfile::TempDir,
    db: SimDb,
    repo: PathBuf,
}

const PASSWORD: &str = "sbt-test-pass";

impl Env {
    /// A database of 4 x `mb` MiB and an empty repository.
    fn new(mb: u32) -> Env {
        Env::with(&DbSpec::sized(4, mb))
    }

    fn with(spec: &DbSpec) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let db = SimDb::create(&tools::oraclesim(), tmp.path(), spec);
        let repo = tmp.path().join("repo");
        support::init_repo(&repo, PASSWORD);
        Env { tmp, db, repo }
    }

    /// The SBT channel's PARMS for the local repository.
    fn parms(&self) -> String {
        sbt_parms(
            &tools::sbt_library(),
            &[
                ("ORCA_REPO", self.repo.display().to_string()),
                ("ORCA_PASSWORD", PASSWORD.into()),
                (
                    "ORCA_CACHE_DIR",
                    self.tmp.path().join("cache").display().to_string(),
                ),
            ],
        )
    }

    fn rman(&self, script: &str, env: &[(&str, &str)]) -> (bool, String) {
        self.db.rman(script, env)
    }

    fn rman_ok(&self, script: &str) -> String {
        self.db.rman_ok(script)
    }

    /// `BACKUP DATABASE FILESPERSET 1` through two SBT channels.
    fn backup(&self) -> String {
        let p = self.parms();
        self.rman_ok(&sbt_run(&[&p, &p], "backup database filesperset 1;"))
    }

    /// Per-piece statistics lines of the trace file, in order.
    fn stats(&self) -> Vec<PieceStats> {
        let text =
            std::fs::read_to_string(self.db.home.join("trace/sbtio.log")).unwrap_or_default();
        text.lines().filter_map(PieceStats::parse).collect()
    }

    /// The repository opened in-process, and the runtime its calls run on.
    fn open_repo(&self) -> (tokio::runtime::Runtime, orca_repo::Repository) {
        support::open_repo(&self.repo, PASSWORD)
    }
}

#[derive(Debug, Default, Clone)]
struct PieceStats {
    name: String,
    bytes_in: u64,
    new_bytes: u64,
    chunks: u64,
    cache_hits: u64,
    delta_chunks: u64,
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
                "delta_chunks" => s.delta_chunks = v,
                "probes" => s.probes = v,
                "oracle_blocks" => s.oracle_blocks = v,
                _ => {}
            }
        }
        Some(s)
    }
}

/// Lose every datafile, restore and recover the database through one SBT channel per
/// entry of `parms`, and prove it is its snapshot from before the loss.
fn lose_restore_recover(env: &Env, parms: &[&str]) {
    let out = env
        .db
        .lose_restore_verify(&sbt_run(parms, "restore database;\nrecover database;"));
    assert!(out.contains("media recovery complete"), "{out}");
}

#[test]
fn backup_lose_datafiles_restore_recover_verifies() {
    let env = Env::new(16);
    env.backup();
    env.db.workload("2", 2);
    let p = env.parms();
    lose_restore_recover(&env, &[&p, &p]);
}

#[test]
fn repeat_backups_store_almost_nothing_and_skip_probes() {
    let env = Env::new(16);
    let size = env.db.datafile_bytes();
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
    env.db.sim(&["workload", "--change-pct", "1"]);
    let before = env.stats().len();
    let p = env.parms();
    env.rman_ok(&sbt_run(
        &[&p, &p],
        "backup incremental level 0 database filesperset 1;",
    ));
    let third: u64 = env.stats()[before..].iter().map(|s| s.new_bytes).sum();
    assert!(
        third * 20 <= size,
        "level 0 after 1% change stored {third} of {size} (limit 5%)"
    );
}

/// Sections 2..n carry no datafile header: the library knows them by the file and first block
/// of their block addresses, so a second full finds every unchanged section in the cache.
#[test]
fn a_second_multi_section_full_hits_the_cache_for_every_section() {
    let env = Env::new(16);
    let p = env.parms();
    let script = sbt_run(&[&p, &p], "backup database section size 4M filesperset 1;");
    env.rman_ok(&script);
    let first = env.stats().len();
    env.rman_ok(&script);
    let second: Vec<PieceStats> = env.stats()[first..].to_vec();
    let sections: Vec<&PieceStats> = second
        .iter()
        .filter(|s| s.oracle_blocks > 0 && !s.name.starts_with("c-"))
        .collect();
    // Four 16 MiB files in 4 MiB sections.
    assert_eq!(sections.len(), 16, "{second:?}");
    for s in &sections {
        // Only the chunks holding RMAN's piece header and trailer differ between runs.
        assert!(s.cache_hits + 2 >= s.chunks, "{s:?}");
    }
    // The check bites: most sections are more than a header and a trailer chunk, and
    // without a key sections 2..n would have no hit at all.
    let long = sections.iter().filter(|s| s.chunks > 2).count();
    assert!(long >= 8, "{sections:?}");
}

impl Env {
    /// A vault server on the repository, a backup token of ORCL, and the channel's PARMS.
    fn vault(&self) -> (orca_vault::server::Tokens, String, String, String) {
        let tokens = orca_vault::server::Tokens::open(&self.repo).unwrap();
        let token = tokens
            .create("ORCL", orca_vault::server::Scope::Backup)
            .unwrap();
        let url = orca_vault::server::spawn_local(&self.repo).unwrap();
        let p = sbt_parms(
            &tools::sbt_library(),
            &[
                ("ORCA_VAULT", url.clone()),
                ("ORCA_TOKEN", token.clone()),
                ("ORCA_PASSWORD", PASSWORD.into()),
                (
                    "ORCA_CACHE_DIR",
                    self.tmp.path().join("vcache").display().to_string(),
                ),
            ],
        );
        (tokens, url, token, p)
    }

    /// A full backup through two channels with this FILESPERSET, and its pieces' figures.
    fn full(&self, files_per_set: u32) -> Vec<PieceStats> {
        self.run(&format!("backup database filesperset {files_per_set};"))
    }

    fn run(&self, body: &str) -> Vec<PieceStats> {
        let before = self.stats().len();
        let p = self.parms();
        self.rman_ok(&sbt_run(&[&p, &p], body));
        self.stats()[before..].to_vec()
    }
}

fn new_bytes(pieces: &[PieceStats]) -> u64 {
    pieces.iter().map(|s| s.new_bytes).sum()
}

/// Pieces of datafile blocks whose every chunk but the few holding RMAN's own bytes (the
/// layout of a multiplexed piece, or a piece's header and trailer) came from the cache.
fn all_hits(pieces: &[PieceStats], spare: u64) -> bool {
    pieces
        .iter()
        .filter(|s| s.oracle_blocks > 0)
        .all(|s| s.cache_hits + spare >= s.chunks)
}

/// FILESPERSET 4 interleaves the set's files in a new order every run; stored demultiplexed,
/// an unchanged repeat stores next to nothing, a 1% change costs what it costs with
/// FILESPERSET 1, a level 1 leaves the fulls' cache entries alone, and the restore is the
/// database (with both negative controls: a byte of the snapshot, a byte of the stored data).
#[test]
fn multiplexed_fulls_dedup_like_single_file_sets_and_restore() {
    let spec = DbSpec {
        seed: Some(25),
        ..DbSpec::sized(4, 8)
    };
    let (one, four) = (Env::with(&spec), Env::with(&spec));
    let size = four.db.datafile_bytes();

    let full4 = four.full(4);
    let repeat4 = four.full(4);
    one.full(1);
    eprintln!(
        "FILESPERSET 4: full {} B, unchanged repeat {} B of {size}: {repeat4:?}",
        new_bytes(&full4),
        new_bytes(&repeat4)
    );
    assert!(
        new_bytes(&repeat4) * 500 <= size,
        "an unchanged FILESPERSET 4 repeat stored {} of {size} (limit 0.2%): {repeat4:?}",
        new_bytes(&repeat4)
    );
    assert!(all_hits(&repeat4, 3), "{repeat4:?}");

    for env in [&one, &four] {
        env.db.sim(&["workload", "--change-pct", "1"]);
    }
    let changed1 = new_bytes(&one.full(1));
    let changed4 = four.full(4);
    eprintln!(
        "after 1% change: FILESPERSET 1 stores {changed1} B, FILESPERSET 4 {} B: {changed4:?}",
        new_bytes(&changed4)
    );
    assert!(changed4.iter().any(|s| s.delta_chunks > 0), "{changed4:?}");
    assert!(
        new_bytes(&changed4) <= changed1 * 3 / 2 + (128 << 10),
        "FILESPERSET 4 stored {} after a 1% change, FILESPERSET 1 {changed1}",
        new_bytes(&changed4)
    );

    // A level 1 carries only changed blocks: the next full still finds every chunk.
    four.run("backup incremental level 1 database filesperset 4;");
    let after = four.full(4);
    assert!(
        all_hits(&after, 3),
        "the level 1 replaced a full's cache entry: {after:?}"
    );

    let p = four.parms();
    let out = four.db.lose_restore_verify(&sbt_run(
        &[&p, &p],
        "restore database;
recover database;",
    ));
    assert!(out.contains("media recovery complete"), "{out}");

    // One byte of the stored data changed: the restore fails rather than return it.
    let pack = orca_testing::fs::files_under(&four.repo.join("packs"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("a pack");
    let at = std::fs::metadata(&pack).unwrap().len() / 2;
    orca_testing::fs::flip_at(&pack, at, 0x10);
    let (ok, out) = four.rman(
        &format!(
            "shutdown abort;\nstartup mount;\n{}",
            sbt_run(&[&p], "restore database;")
        ),
        &[],
    );
    orca_testing::fs::flip_at(&pack, at, 0x10);
    assert!(!ok, "a restore from a damaged pack succeeded:\n{out}");
}

/// A level 1 piece holds only changed blocks: its lineage does not replace the full's, so
/// the next full finds every chunk in the cache (FILESPERSET 1; the multiplexed test checks
/// the same of lanes).
#[test]
fn a_level_1_keeps_the_fulls_cache_entries() {
    let env = Env::new(4);
    env.run("backup incremental level 0 database filesperset 1;");
    env.run("backup incremental level 1 database filesperset 1;");
    let trace = std::fs::read_to_string(env.db.home.join("trace/sbtio.log")).unwrap();
    assert!(
        trace.contains("kept: this piece holds"),
        "no level 1 piece kept a full's entry:\n{trace}"
    );
    let after = env.full(1);
    assert!(all_hits(&after, 2), "{after:?}");
}

/// Demultiplexed pieces through the vault (ids of the database's dedup group): the repeat
/// finds the full's chunks, and the restore is the database.
#[test]
fn multiplexed_pieces_through_the_vault() {
    let env = Env::new(4);
    let (_tokens, _url, _token, p) = env.vault();
    let size = env.db.datafile_bytes();
    let backup = sbt_run(&[&p, &p], "backup database filesperset 4;");
    env.rman_ok(&backup);
    let before = env.stats().len();
    env.rman_ok(&backup);
    let repeat = env.stats()[before..].to_vec();
    assert!(
        new_bytes(&repeat) * 200 <= size,
        "an unchanged repeat through the vault stored {} of {size}: {repeat:?}",
        new_bytes(&repeat)
    );
    lose_restore_recover(&env, &[&p]);
}

/// A database of 16 KiB blocks beside the 8 KiB ones: its pieces are known by their
/// datafile, so a repeat full finds every chunk in the cache and a 1% change stores deltas.
#[test]
fn sixteen_kib_blocks_get_cache_hits_and_deltas() {
    let env = Env::with(&DbSpec {
        block_sizes: vec![16],
        ..DbSpec::sized(2, 8)
    });
    let size = env.db.datafile_bytes();
    env.full(1);
    let repeat = env.full(1);
    let big = |pieces: &[PieceStats]| -> PieceStats {
        pieces
            .iter()
            .find(|s| s.oracle_blocks > 0 && s.bytes_in / s.oracle_blocks > 12 << 10)
            .cloned()
            .unwrap_or_else(|| panic!("no piece of 16 KiB blocks: {pieces:?}"))
    };
    let r = big(&repeat);
    assert!(r.cache_hits > 0 && r.cache_hits + 2 >= r.chunks, "{r:?}");
    env.db.sim(&["workload", "--change-pct", "1"]);
    let changed = env.full(1);
    let c = big(&changed);
    eprintln!("16 KiB blocks: repeat {r:?}, after 1% change {c:?}");
    assert!(c.delta_chunks > 0, "{c:?}");
    assert!(
        new_bytes(&changed) * 20 <= size,
        "a 1% change stored {} of {size}: {changed:?}",
        new_bytes(&changed)
    );

    // Multiplexed with the 8 KiB files, its blocks still make a lane of their own.
    env.full(4);
    let repeat4 = env.full(4);
    assert!(
        new_bytes(&repeat4) * 200 <= size,
        "an unchanged FILESPERSET 4 repeat stored {} of {size}: {repeat4:?}",
        new_bytes(&repeat4)
    );
    assert!(all_hits(&repeat4, 3), "{repeat4:?}");
}

/// Datafiles of 2 and 4 KiB blocks: their pieces detect changes in units of their block
/// size, so a day of 1% changed blocks stores those blocks, not the 8 KiB around each (the
/// negative control, `ORCA_SBT_UNIT_BY_BLOCK=0`, in a repository of its own, stores about
/// twice and four times as much). The restore is the database.
#[test]
fn small_blocks_cost_themselves_not_eight_kib() {
    let day = |by_block: bool| -> (Env, Vec<PieceStats>) {
        let env = Env::with(&DbSpec {
            block_sizes: vec![2, 4],
            ..DbSpec::sized(1, 8)
        });
        let flag = [("ORCA_SBT_UNIT_BY_BLOCK", if by_block { "1" } else { "0" })];
        let full = |env: &Env| {
            let before = env.stats().len();
            let p = env.parms();
            let (ok, out) = env
                .db
                .rman(&sbt_run(&[&p, &p], "backup database filesperset 1;"), &flag);
            assert!(ok, "{out}");
            env.stats()[before..].to_vec()
        };
        full(&env);
        env.db.sim(&["workload", "--change-pct", "1"]);
        let changed = full(&env);
        (env, changed)
    };
    // A piece of the datafile of `kib` KiB blocks.
    let of = |pieces: &[PieceStats], kib: u64| -> PieceStats {
        pieces
            .iter()
            .find(|s| s.oracle_blocks > 0 && (s.bytes_in / s.oracle_blocks) >> 10 == kib)
            .cloned()
            .unwrap_or_else(|| panic!("no piece of {kib} KiB blocks: {pieces:?}"))
    };
    let (env, by_block) = day(true);
    let (_control, by_8k) = day(false);
    for kib in [2, 4] {
        let (small, eight) = (of(&by_block, kib), of(&by_8k, kib));
        eprintln!(
            "{kib} KiB blocks, 1% changed: {} B by block, {} B in 8 KiB units",
            small.new_bytes, eight.new_bytes
        );
        assert!(small.delta_chunks > 0, "{small:?}");
        assert!(
            small.new_bytes * 10 < eight.new_bytes * 7,
            "{kib} KiB blocks: {small:?} by block against {eight:?} in 8 KiB units"
        );
    }
    let p = env.parms();
    lose_restore_recover(&env, &[&p, &p]);
}

/// A multiplexed set of two 8 KiB datafiles and one of 2 KiB blocks: each lane's chunks are
/// in its own file's unit. So when the 8 KiB files are next backed up in a set without the
/// 2 KiB one, their lanes find their last versions and a 1% change is stored as deltas.
/// With one unit per piece, the smallest block size's, those lanes had 2 KiB values and the
/// next set, in 8 KiB units, stored them whole. The restore is the database.
#[test]
fn a_lane_keeps_its_files_unit_whatever_set_it_is_in() {
    let env = Env::with(&DbSpec {
        block_sizes: vec![2],
        ..DbSpec::sized(2, 8)
    });
    let p = env.parms();
    env.rman_ok(&sbt_run(&[&p], "backup database filesperset 4;"));
    env.db.sim(&["workload", "--change-pct", "1"]);
    let before = env.stats().len();
    env.rman_ok(&sbt_run(&[&p], "backup datafile 1, 2 filesperset 4;"));
    let day1 = env.stats()[before..].to_vec();
    let set = day1
        .iter()
        .find(|s| s.oracle_blocks > 0)
        .unwrap_or_else(|| panic!("no piece of datafile blocks: {day1:?}"));
    eprintln!("the 8 KiB files without the 2 KiB one, after a 1% change: {set:?}");
    assert!(set.delta_chunks > 0, "{set:?}");
    assert!(
        set.new_bytes * 20 <= set.bytes_in,
        "a 1% change stored {} of {}: {set:?}",
        set.new_bytes,
        set.bytes_in
    );
    lose_restore_recover(&env, &[&p]);
}

#[test]
fn archived_logs_and_autobackups_go_through_sbt_and_crosscheck_finds_deleted_pieces() {
    let env = Env::new(4);
    env.db.workload("1", 3);
    let p = env.parms();
    let out = env.rman_ok(&format!(
        "configure channel device type sbt parms '{p}';\nconfigure controlfile autobackup on;\n{}",
        sbt_run(&[&p], "backup archivelog all;")
    ));
    assert!(
        out.contains("piece handle=c-"),
        "autobackup with %F:\n{out}"
    );
    // Every piece committed is in the repository.
    let (rt, repo) = env.open_repo();
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
    let script = |p: &str| sbt_run(&[p], "backup datafile 1;");
    let lib = tools::sbt_library();
    let missing = sbt_parms(
        &lib,
        &[
            ("ORCA_REPO", "/nonexistent/repo".into()),
            ("ORCA_PASSWORD", "x".into()),
        ],
    );
    let (ok, out) = env.rman(&script(&missing), &[]);
    assert!(!ok);
    assert!(out.contains("ORA-19511"), "{out}");
    assert!(out.contains("ORCA_REPO=/nonexistent/repo"), "{out}");

    let wrong_key = sbt_parms(
        &lib,
        &[
            ("ORCA_REPO", env.repo.display().to_string()),
            ("ORCA_PASSWORD", "wrong".into()),
        ],
    );
    let (ok, out) = env.rman(&script(&wrong_key), &[]);
    assert!(!ok);
    assert!(out.contains("ORA-19511"), "{out}");
}

#[test]
fn a_channel_killed_mid_piece_leaves_nothing_visible_and_a_rerun_resends_little() {
    let env = Env::new(16);
    let p = env.parms();
    let script = sbt_run(&[&p], "backup datafile 1;");
    let (ok, out) = env.rman(
        &script,
        &[("ORACLESIM_KILL_CHANNEL_AFTER_BYTES", "8000000")],
    );
    assert!(!ok, "{out}");
    let (rt, repo) = env.open_repo();
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
    let p = env.parms();
    let script = sbt_run(&[&p], "backup datafile 4;");
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

/// A counter of the vault's /metrics (0 before it counts).
fn metric(url: &str, name: &str) -> f64 {
    let text = http::get_ok(url, "/metrics").expect("the vault's metrics");
    http::metric(&text, name).unwrap_or(0.0)
}

#[test]
fn backup_and_restore_through_the_vault() {
    let env = Env::new(8);
    let (tokens, url, token, p) = env.vault();
    let backup = sbt_run(&[&p, &p], "backup database filesperset 1;");
    env.rman_ok(&backup);
    let probes_first = metric(&url, "orca_vault_probes_total");
    env.rman_ok(&backup);
    let probes_second = metric(&url, "orca_vault_probes_total") - probes_first;
    // Unchanged datafiles: only the pieces' header/trailer chunks and the autobackup are probed.
    assert!(
        probes_second <= 2.0 * 5.0,
        "{probes_second} probes for an unchanged database"
    );

    lose_restore_recover(&env, &[&p]);

    // A token of another database cannot read this database's pieces.
    let other = tokens
        .create("OTHER", orca_vault::server::Scope::Backup)
        .unwrap();
    let bad = p.replace(&token, &other);
    // On a mounted database, so the vault's answer is what stops the restore.
    let (ok, out) = env.rman(
        &format!(
            "shutdown abort;\nstartup mount;\n{}",
            sbt_run(&[&bad], "restore datafile 4;")
        ),
        &[],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("ORA-19511"), "{out}");
    assert!(out.contains("is not in the ORCA repository"), "{out}");
}

/// A full with two formatted blocks a third into the last datafile left out (zeroed: never
/// formatted, so RMAN skips them; the simulator's RMAN then starts a new run of blocks, with
/// a record header the size of a block, so the stream loses one block's length), then those
/// blocks formatted and a second full, FILESPERSET `fps`; with `ORCA_SBT_BY_BLOCK` set as
/// `by_block` says. The two fulls' pieces.
fn fill_a_hole(env: &Env, by_block: bool, fps: u32) -> (Vec<PieceStats>, Vec<PieceStats>) {
    let file = env.db.datafiles().into_iter().last().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let bs = 8192;
    let third = bytes.len() / bs / 3;
    let formatted = |b: usize| bytes[b * bs..(b + 1) * bs].iter().any(|&x| x != 0);
    let block = (third..bytes.len() / bs - 1)
        .find(|&b| formatted(b) && formatted(b + 1))
        .expect("a formatted block");
    let hole = block * bs..(block + 2) * bs;
    let saved = bytes[hole.clone()].to_vec();
    let full = |env: &Env| {
        let before = env.stats().len();
        let p = env.parms();
        let (ok, out) = env.db.rman(
            &sbt_run(&[&p, &p], &format!("backup database filesperset {fps};")),
            &[("ORCA_SBT_BY_BLOCK", if by_block { "1" } else { "0" })],
        );
        assert!(ok, "{out}");
        env.stats()[before..].to_vec()
    };
    bytes[hole.clone()].fill(0);
    std::fs::write(&file, &bytes).unwrap();
    let first = full(env);
    bytes[hole].copy_from_slice(&saved);
    std::fs::write(&file, &bytes).unwrap();
    let second = full(env);
    eprintln!(
        "block {block} of {} formatted, FILESPERSET {fps}, by block {by_block}: full {} B, next full {} B: {second:?}",
        file.display(),
        new_bytes(&first),
        new_bytes(&second)
    );
    (first, second)
}

/// RMAN leaves never-formatted blocks out of a backup piece. When one in the middle of a
/// datafile is formatted, every later block of the file moves up in the stream (or in its
/// lane, multiplexed): keyed by block number, the next full stores the chunk holding it (and
/// RMAN's headers), not the rest of the file, which it does keyed by stream offset (the
/// negative control, in a repository of its own). The restore is the database.
#[test]
fn a_block_formatted_mid_file_costs_one_chunk_not_the_rest_of_the_file() {
    for fps in [1, 4] {
        let env = Env::new(16);
        let size = env.db.datafile_bytes();
        let (_, second) = fill_a_hole(&env, true, fps);
        // One chunk of blocks at most (1 MiB, compressed), and RMAN's own bytes.
        assert!(
            new_bytes(&second) <= (1 << 20) + (256 << 10),
            "FILESPERSET {fps}: a block formatted mid-file stored {} of {size}: {second:?}",
            new_bytes(&second)
        );
        assert!(all_hits(&second, 4), "FILESPERSET {fps}: {second:?}");

        let control = Env::new(16);
        let (_, shifted) = fill_a_hole(&control, false, fps);
        assert!(
            new_bytes(&shifted) > new_bytes(&second) * 5,
            "FILESPERSET {fps}: keyed by stream offset the same change stored {} B, by block {} B",
            new_bytes(&shifted),
            new_bytes(&second)
        );

        let p = env.parms();
        let out = env.db.lose_restore_verify(&sbt_run(
            &[&p, &p],
            "restore database;
recover database;",
        ));
        assert!(out.contains("media recovery complete"), "{out}");
    }
}
