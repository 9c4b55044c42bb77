//! The `orca` binary end to end: what a user sees.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use orca_testing::data::oracle_blocks;
use orca_testing::fs::{files_under, flip_byte};
use orca_testing::orca::Orca;

const PASS: &str = "test passphrase";

fn orca() -> Command {
    Orca::at(env!("CARGO_BIN_EXE_orca"))
        .with_password(PASS)
        .cmd()
}

fn run(args: &[&str], cache: &Path) -> Output {
    let out = orca()
        .args(args)
        .env("ORCA_CACHE_DIR", cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "orca panicked: {stderr}");
    out
}

fn ok(args: &[&str], cache: &Path) -> String {
    let out = run(args, cache);
    assert!(
        out.status.success(),
        "orca {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str], cache: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(args, cache)).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    cache: PathBuf,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let repo = root.join("repo");
        let cache = root.join("cache");
        ok(
            &[
                "repo",
                "init",
                "--repo",
                repo.to_str().unwrap(),
                "--pack-size-mib",
                "4",
            ],
            &cache,
        );
        Fixture {
            _dir: dir,
            repo,
            cache,
            root,
        }
    }

    fn repo(&self) -> &str {
        self.repo.to_str().unwrap()
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.root.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(args, &self.cache)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        json(args, &self.cache)
    }

    fn run(&self, args: &[&str]) -> Output {
        run(args, &self.cache)
    }

    fn pack_bytes(&self) -> u64 {
        Orca::at(env!("CARGO_BIN_EXE_orca")).pack_bytes(&self.repo)
    }

    /// `orca put --repo R --name <name> <src> [extra...]`, which must succeed.
    fn put(&self, name: &str, src: &Path, extra: &[&str]) -> String {
        let mut args = vec!["put", "--repo", self.repo(), "--name", name];
        args.push(src.to_str().unwrap());
        args.extend(extra);
        self.ok(&args)
    }

    /// [`Fixture::put`] with `--json`: what it reports.
    fn put_json(&self, name: &str, src: &Path, extra: &[&str]) -> serde_json::Value {
        let mut extra = extra.to_vec();
        extra.push("--json");
        serde_json::from_str(&self.put(name, src, &extra)).unwrap()
    }

    /// `orca put --repo R --name <name> [extra...] -` fed `data` on standard input, which
    /// must succeed.
    fn put_stdin(&self, name: &str, data: &[u8], extra: &[&str]) -> String {
        let mut args = vec!["put", "--repo", self.repo(), "--name", name];
        args.extend(extra);
        args.push("-");
        let mut child = orca()
            .args(&args)
            .env("ORCA_CACHE_DIR", &self.cache)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), data).unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "orca {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    }

    /// `orca get --repo R <name> -o <out>`.
    fn get(&self, name: &str, out: &Path) -> Output {
        self.run(&[
            "get",
            "--repo",
            self.repo(),
            name,
            "-o",
            out.to_str().unwrap(),
        ])
    }

    /// [`Fixture::get`], which must succeed; the bytes restored.
    fn get_ok(&self, name: &str, out: &Path) -> Vec<u8> {
        let got = self.get(name, out);
        assert!(
            got.status.success(),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
        std::fs::read(out).unwrap()
    }
}

#[test]
fn put_get_dedup_and_scattered_changes() {
    let f = Fixture::new();
    let data = oracle_blocks(8192, 1); // 64 MiB
    let src = f.file("users01.dbf", &data);
    let first = f.put_json("p1", &src, &[]);
    assert_eq!(first["size"].as_u64().unwrap(), data.len() as u64);
    assert_eq!(f.get_ok("p1", &f.root.join("restored")), data);

    // The same file again, under another name, without the lineage cache:
    // every chunk is found by asking the repository.
    let again = f.put_json("p2", &src, &["--no-lineage"]);
    assert!(again["new_bytes"].as_u64().unwrap() * 1000 < data.len() as u64);

    // 1% of the 8 KiB blocks rewritten at random places.
    let mut changed = data.clone();
    let mut x = 12345u64;
    for _ in 0..data.len() / 8192 / 100 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let b = (x >> 33) as usize % (data.len() / 8192);
        let block = &mut changed[b * 8192..(b + 1) * 8192];
        block[..8192].copy_from_slice(&oracle_blocks(1, x)[..]);
    }
    std::fs::write(&src, &changed).unwrap();
    let third = f.put_json("p3", &src, &[]);
    let new = third["new_bytes"].as_u64().unwrap();
    assert!(
        new * 100 <= data.len() as u64 * 3,
        "{new} new bytes for {} (1% blocks changed)",
        data.len()
    );
    assert!(third["delta_chunks"].as_u64().unwrap() > 0);
    let out3 = f.root.join("restored3");
    assert_eq!(f.get_ok("p3", &out3), changed);

    // Restoring to an existing file needs --force.
    let refused = f.get("p3", &out3);
    assert!(!refused.status.success());

    let listed = f.json(&["ls", "--repo", f.repo(), "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 3);
    f.ok(&["verify", "--repo", f.repo()]);
    f.ok(&["rm", "--repo", f.repo(), "p2"]);
    assert_eq!(
        f.json(&["ls", "--repo", f.repo(), "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(!f.run(&["rm", "--repo", f.repo(), "p2"]).status.success());
}

/// A datafile of 2 KiB blocks, put as a file and through standard input: its block 0 tells
/// its block size, so 64 changed blocks, none within 8 KiB of another, store about 64
/// blocks. The same bytes without a datafile's block 0 (the negative control) have their
/// changes found in 8 KiB units: four times as much. Both read back equal.
#[test]
fn a_datafile_of_small_blocks_is_put_block_by_block() {
    let (bs, blocks) = (2048, 2048u32);
    let changed_cost = |datafile: bool, stdin: bool| -> u64 {
        let f = Fixture::new();
        let mut data = orca_testing::data::noise((blocks as usize + 1) * bs, 11);
        if datafile {
            orca_oracle::FileHeaderBlock::datafile(bs, blocks)
                .unwrap()
                .build(&mut data[..bs])
                .unwrap();
        }
        let put = |name: &str, data: &[u8]| -> serde_json::Value {
            if stdin {
                let out = f.put_stdin(name, data, &["--lineage", "df_2k", "--json"]);
                serde_json::from_str(&out).unwrap()
            } else {
                f.put_json(name, &f.file("df_2k.dbf", data), &[])
            }
        };
        put("v1", &data);
        for b in 0..64 {
            data[(1 + b * 32) * bs + 100] ^= 0x5a;
        }
        let v2 = put("v2", &data);
        assert_eq!(f.get_ok("v2", &f.root.join("restored")), data);
        v2["new_bytes"].as_u64().unwrap()
    };
    for stdin in [false, true] {
        let (small, control) = (changed_cost(true, stdin), changed_cost(false, stdin));
        eprintln!(
            "64 changed 2 KiB blocks (stdin: {stdin}): {small} B, {control} B without block 0"
        );
        assert!(
            small < 64 * 2048 + (32 << 10) && control >= 64 * 8192,
            "stdin {stdin}: by block {small} B, in 8 KiB units {control} B"
        );
    }
}

/// A datafile's unformatted space (zero blocks) comes back as holes that read as zeros; with
/// `--no-sparse` the file owns every block. Content is compared byte for byte either way.
#[test]
fn get_leaves_zero_runs_as_holes_unless_told_not_to() {
    use std::os::unix::fs::MetadataExt;
    let f = Fixture::new();
    // 4 MiB of blocks, 12 MiB of zeros, 1 MiB of blocks, an odd tail of zeros, 3 bytes.
    let mut data = oracle_blocks(512, 5);
    data.resize(data.len() + (12 << 20), 0);
    data.extend_from_slice(&oracle_blocks(128, 6));
    data.resize(data.len() + 5000, 0);
    data.extend_from_slice(&[1, 2, 3]);
    let src = f.file("sparse01.dbf", &data);
    f.put("sparse", &src, &[]);
    let allocated = |p: &Path| std::fs::metadata(p).unwrap().blocks() * 512;

    let holes = f.root.join("holes");
    assert_eq!(f.get_ok("sparse", &holes), data);
    let dense = f.root.join("dense");
    let got = f.run(&[
        "get",
        "--repo",
        f.repo(),
        "sparse",
        "-o",
        dense.to_str().unwrap(),
        "--no-sparse",
    ]);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(std::fs::read(&dense).unwrap(), data);
    let (h, d) = (allocated(&holes), allocated(&dense));
    // Only where the filesystem keeps holes: otherwise both own every block.
    if d >= data.len() as u64 - (64 << 10) {
        assert!(
            h < (6 << 20),
            "the sparse restore owns {h} bytes of {}",
            data.len()
        );
    }
    assert!(d >= h, "{d} {h}");
}

#[test]
fn stdin_and_wrong_keys() {
    let f = Fixture::new();
    let data = oracle_blocks(64, 2);
    f.put_stdin("from-stdin", &data, &[]);
    let got = orca()
        .args(["get", "--repo", f.repo(), "from-stdin"])
        .output()
        .unwrap();
    assert_eq!(got.stdout, data);

    let wrong = orca().args(["ls", "--repo", f.repo()]).output().unwrap();
    assert!(wrong.status.success(), "listing needs no key");
    let wrong = orca()
        .args(["get", "--repo", f.repo(), "from-stdin"])
        .env("ORCA_PASSWORD", "not it")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let msg = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        msg.contains("wrong key") && msg.contains("ORCA_PASSWORD"),
        "{msg}"
    );
    assert!(wrong.stdout.is_empty(), "no garbage on a wrong key");

    let missing = orca()
        .args(["ls", "--repo", f.root.join("nowhere").to_str().unwrap()])
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&missing.stderr);
    assert!(msg.contains("orca repo init"), "{msg}");
}

#[test]
fn a_flipped_byte_fails_get_and_verify_naming_piece_and_chunk() {
    let f = Fixture::new();
    let data = oracle_blocks(2048, 3);
    let src = f.file("f", &data);
    f.put("db/ORCL/df1", &src, &[]);
    let packs = files_under(&f.repo.join("packs"));
    flip_byte(&packs[packs.len() / 2], 0x08);

    let out = f.root.join("out");
    let got = f.get("db/ORCL/df1", &out);
    assert!(!got.status.success());
    let msg = String::from_utf8_lossy(&got.stderr);
    assert!(
        msg.contains("db/ORCL/df1") && msg.contains("chunk #"),
        "{msg}"
    );
    assert!(!out.exists(), "no partial restore left behind");

    let v = f.run(&["verify", "--repo", f.repo()]);
    assert!(!v.status.success());
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        text.contains("PROBLEM") && text.contains("db/ORCL/df1") && text.contains("chunk #"),
        "{text}"
    );
    let v = f.run(&["verify", "--repo", f.repo(), "--checksums-only", "--json"]);
    assert!(!v.status.success());
    let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    assert!(!report["problems"].as_array().unwrap().is_empty());
}

/// `orca get --output-dir`: several pieces at once, each checked against what was put; a
/// piece whose pack was damaged fails alone and is named, the others land whole.
#[test]
fn several_pieces_restore_into_a_directory_and_a_damaged_one_is_named() {
    let f = Fixture::new();
    let data: Vec<Vec<u8>> = (0..3).map(|k| oracle_blocks(768, 10 + k)).collect();
    let names = ["db/ORCL/df1", "db/ORCL/df2", "df3"];
    let mut packs_of = Vec::new();
    for (k, name) in names.iter().enumerate() {
        let before = files_under(&f.repo.join("packs"));
        f.put(name, &f.file(&format!("src{k}"), &data[k]), &[]);
        let after = files_under(&f.repo.join("packs"));
        packs_of.push(
            after
                .into_iter()
                .filter(|p| !before.contains(p))
                .collect::<Vec<_>>(),
        );
    }
    let get = |dir: &Path, extra: &[&str]| {
        std::fs::create_dir_all(dir).unwrap();
        let mut args = vec!["get", "--repo", f.repo()];
        args.extend(names);
        args.extend(["--output-dir", dir.to_str().unwrap()]);
        args.extend(extra);
        f.run(&args)
    };

    let all = f.root.join("all");
    let got = get(&all, &["--parallel", "2", "--json"]);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(report["pieces"].as_array().unwrap().len(), 3, "{report}");
    for (k, file) in ["df1", "df2", "df3"].iter().enumerate() {
        assert!(
            std::fs::read(all.join(file)).unwrap() == data[k],
            "{file} restored differently"
        );
    }

    // Refusals change nothing: files there already, two pieces onto one file, several
    // pieces with no directory.
    let again = get(&all, &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let clash = f.run(&[
        "get",
        "--repo",
        f.repo(),
        "db/ORCL/df1",
        "x/df1",
        "--output-dir",
        all.to_str().unwrap(),
        "--force",
    ]);
    assert!(!clash.status.success());
    assert!(
        String::from_utf8_lossy(&clash.stderr).contains("both"),
        "{}",
        String::from_utf8_lossy(&clash.stderr)
    );
    let nodir = f.run(&["get", "--repo", f.repo(), "db/ORCL/df1", "df3"]);
    assert!(!nodir.status.success());
    assert!(String::from_utf8_lossy(&nodir.stderr).contains("--output-dir"));
    assert!(std::fs::read(all.join("df1")).unwrap() == data[0]);

    // The negative control: one byte of df2's pack flipped.
    assert!(!packs_of[1].is_empty(), "df2 wrote packs of its own");
    flip_byte(&packs_of[1][0], 0x08);
    let some = f.root.join("some");
    let got = get(&some, &[]);
    assert!(!got.status.success(), "a damaged piece fails the command");
    let msg = String::from_utf8_lossy(&got.stderr);
    assert!(
        msg.contains("db/ORCL/df2") && msg.contains("1 of 3"),
        "{msg}"
    );
    assert!(!some.join("df2").exists(), "no damaged file left behind");
    assert!(std::fs::read(some.join("df1")).unwrap() == data[0]);
    assert!(std::fs::read(some.join("df3")).unwrap() == data[2]);
    let partial = std::fs::read_dir(&some)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".orca-partial")
        })
        .count();
    assert_eq!(partial, 0, "no partial file left behind");
}

#[test]
fn kill_9_during_put_leaves_a_clean_repository_and_loses_no_work() {
    let f = Fixture::new();
    let data = oracle_blocks(16384, 4); // 128 MiB
    let src = f.file("big", &data);

    // How long an uninterrupted put takes here, in a scratch repository.
    let scratch = Fixture::new();
    let started = Instant::now();
    let clean = scratch.put_json("x", &src, &["--no-lineage"]);
    let full = started.elapsed();
    let clean_pack_bytes = scratch.pack_bytes();
    assert_eq!(clean["size"].as_u64().unwrap(), data.len() as u64);

    let mut killed = 0;
    // Each kill lands when the attempt has stored a share of the packs, watched rather than
    // timed: a sleep tuned to one run is too long for the next on a loaded machine.
    for percent in [25u64, 50, 80] {
        let goal = f.pack_bytes() + clean_pack_bytes * percent / 100;
        let mut child = orca()
            .args([
                "put",
                "--repo",
                f.repo(),
                "--name",
                "big",
                src.to_str().unwrap(),
                "--no-lineage",
            ])
            .env("ORCA_CACHE_DIR", &f.cache)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let give_up = Instant::now() + full * 4 + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none()
            && f.pack_bytes() < goal
            && Instant::now() < give_up
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
        // After each crash: the repository verifies clean and the piece is absent.
        f.ok(&["verify", "--repo", f.repo()]);
        let listed = f.json(&["ls", "--repo", f.repo(), "--json"]);
        if listed
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "big")
        {
            break; // this attempt finished before the kill
        }
    }
    assert!(
        killed > 0,
        "no put was interrupted: every attempt finished between two looks at the packs"
    );
    let before = f.pack_bytes();
    let listed = f.json(&["ls", "--repo", f.repo(), "--json"]);
    if !listed
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "big")
    {
        let rerun = f.put_json("big", &src, &["--no-lineage"]);
        let sent = rerun["new_bytes"].as_u64().unwrap();
        // What the killed attempts had stored is not sent again: the re-run
        // sends at most what was missing plus the packs in flight at the kill.
        assert!(
            sent <= clean_pack_bytes.saturating_sub(before) + 3 * 4 * (1 << 20) + (1 << 20),
            "re-run sent {sent} bytes; {before} of {clean_pack_bytes} were already stored"
        );
    }
    assert_eq!(f.get_ok("big", &f.root.join("out")), data);
    f.ok(&["verify", "--repo", f.repo()]);
    // No chunk was stored twice (beyond the packs cut short by the kills).
    assert!(f.pack_bytes() <= clean_pack_bytes + 3 * 4 * (1 << 20) + (1 << 20));
}

#[test]
fn two_concurrent_puts_into_one_repository() {
    let f = Fixture::new();
    let common = oracle_blocks(4096, 5);
    let mut a = common.clone();
    a.extend(oracle_blocks(1024, 6));
    let mut b = common;
    b.extend(oracle_blocks(1024, 7));
    let fa = f.file("a", &a);
    let fb = f.file("b", &b);
    let spawn = |name: &str, p: &Path| {
        orca()
            .args([
                "put",
                "--repo",
                f.repo(),
                "--name",
                name,
                p.to_str().unwrap(),
            ])
            .env("ORCA_CACHE_DIR", &f.cache)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let ca = spawn("a", &fa);
    let cb = spawn("b", &fb);
    let oa = ca.wait_with_output().unwrap();
    let ob = cb.wait_with_output().unwrap();
    assert!(
        oa.status.success(),
        "{}",
        String::from_utf8_lossy(&oa.stderr)
    );
    assert!(
        ob.status.success(),
        "{}",
        String::from_utf8_lossy(&ob.stderr)
    );
    f.ok(&["verify", "--repo", f.repo()]);
    for (name, data) in [("a", &a), ("b", &b)] {
        assert_eq!(&f.get_ok(name, &f.root.join(format!("{name}.out"))), data);
    }
}

#[test]
fn key_file_repositories_and_index_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let repo = dir.path().join("r");
    let key = dir.path().join("r.key");
    let out = orca()
        .env_remove("ORCA_PASSWORD")
        .args([
            "repo",
            "init",
            "--repo",
            repo.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let src = dir.path().join("src");
    std::fs::write(&src, oracle_blocks(100, 8)).unwrap();
    let put = orca()
        .env_remove("ORCA_PASSWORD")
        .env("ORCA_KEY_FILE", &key)
        .env("ORCA_CACHE_DIR", &cache)
        .args([
            "put",
            "--repo",
            repo.to_str().unwrap(),
            "--name",
            "k",
            src.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    std::fs::remove_file(repo.join("index.sqlite")).unwrap();
    let _ = std::fs::remove_file(repo.join("index.sqlite-wal"));
    let _ = std::fs::remove_file(repo.join("index.sqlite-shm"));
    let listed = json(&["ls", "--repo", repo.to_str().unwrap(), "--json"], &cache);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let got = orca()
        .env_remove("ORCA_PASSWORD")
        .args([
            "get",
            "--repo",
            repo.to_str().unwrap(),
            "k",
            "--key-file",
            key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(got.stdout, oracle_blocks(100, 8));
    let no_key = orca()
        .env_remove("ORCA_PASSWORD")
        .args(["get", "--repo", repo.to_str().unwrap(), "k"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("ORCA_PASSWORD"));
}

#[test]
fn gc_reclaims_deleted_pieces_and_verify_samples_the_oldest_checked_packs() {
    let f = Fixture::new();
    let keep = f.file("keep.dbf", &oracle_blocks(2048, 21));
    let drop = f.file("drop.dbf", &oracle_blocks(2048, 22));
    f.put("keep", &keep, &[]);
    f.put("drop", &drop, &[]);
    let before = f.pack_bytes();
    f.ok(&["rm", "--repo", f.repo(), "drop"]);
    // References are kept per second: a zero grace needs the clock to move on.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let report = f.json(&["repo", "gc", "--repo", f.repo(), "--grace", "0s", "--json"]);
    assert!(report["swept_chunks"].as_u64().unwrap() > 0, "{report}");
    let after = f.pack_bytes();
    assert!(after * 100 < before * 60, "{after} of {before} bytes left");
    let got = f.run(&["get", "--repo", f.repo(), "keep"]);
    assert!(got.status.success());
    assert_eq!(got.stdout, oracle_blocks(2048, 21));
    let text = f.ok(&["repo", "gc", "--repo", f.repo(), "--grace", "0s"]);
    assert!(text.contains("0 chunks swept"), "{text}");

    // Two sampled runs of half the packs each cover the whole repository.
    let packs = f.json(&["repo", "info", "--repo", f.repo(), "--json"])["stats"]["packs"]
        .as_u64()
        .unwrap();
    assert!(packs >= 2, "{packs} packs");
    let first = f.json(&["verify", "--repo", f.repo(), "--sample", "50", "--json"]);
    assert_eq!(first["never_checked"].as_u64().unwrap(), packs);
    assert_eq!(first["packs"].as_u64().unwrap(), packs.div_ceil(2));
    let second = f.json(&["verify", "--repo", f.repo(), "--sample", "50", "--json"]);
    assert_eq!(
        second["never_checked"].as_u64().unwrap(),
        packs - packs.div_ceil(2)
    );
    let third = f.json(&["verify", "--repo", f.repo(), "--sample", "50", "--json"]);
    assert_eq!(third["never_checked"].as_u64().unwrap(), 0);
    let bad = f.run(&["verify", "--repo", f.repo(), "--sample", "0"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("percentage"));
}
