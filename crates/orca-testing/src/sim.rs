//! A simulated database (`oraclesim create`) driven as a DBA drives Oracle: its `rman` and
//! `sqlplus` are the shims `oraclesim install-shims` links, run with `ORACLESIM_HOME`
//! naming the database.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fs::flip_at;
use crate::process::{output, run, run_ok, text};

/// What `oraclesim create` makes.
#[derive(Debug, Clone)]
pub struct DbSpec {
    /// DB_NAME.
    pub name: String,
    pub datafiles: u32,
    /// Size of each datafile.
    pub size_mb: u32,
    /// Redo threads (instances); more than one is RAC, with SIDs `orcl1`, `orcl2`, ...
    pub threads: u16,
    /// Seed of the contents and the DBID; the simulator's default when `None`.
    pub seed: Option<u64>,
    /// Size of each online log; the simulator's default when `None`.
    pub online_log_mb: Option<u32>,
    /// Incompressible blocks (`--fill random`) instead of rows.
    pub random_fill: bool,
    /// Other block sizes in KiB (`--block-sizes`): one tablespace of one datafile each,
    /// after the `datafiles` of the database's own block size.
    pub block_sizes: Vec<u32>,
}

impl Default for DbSpec {
    /// ORCL: four datafiles of 4 MiB, one thread.
    fn default() -> Self {
        DbSpec {
            name: "ORCL".into(),
            datafiles: 4,
            size_mb: 4,
            threads: 1,
            seed: None,
            online_log_mb: None,
            random_fill: false,
            block_sizes: Vec::new(),
        }
    }
}

impl DbSpec {
    /// `<n>` datafiles of `<mb>` MiB, the rest as [`DbSpec::default`].
    pub fn sized(datafiles: u32, size_mb: u32) -> DbSpec {
        DbSpec {
            datafiles,
            size_mb,
            ..DbSpec::default()
        }
    }

    /// Bytes in datafiles.
    pub fn bytes(&self) -> u64 {
        u64::from(self.datafiles) * (u64::from(self.size_mb) << 20)
    }
}

/// A database home, the directory with its `rman` and `sqlplus`, and a work directory for
/// command files and the snapshots that prove a restore.
#[derive(Debug)]
pub struct SimDb {
    /// The simulator binary.
    pub oraclesim: PathBuf,
    /// DB_NAME.
    pub name: String,
    /// ORACLESIM_HOME.
    pub home: PathBuf,
    /// Where `rman` and `sqlplus` are.
    pub bin: PathBuf,
    work: PathBuf,
}

impl SimDb {
    /// Installs the shims into `<work>/bin` and creates the database in `<work>/db`.
    pub fn create(oraclesim: &Path, work: &Path, spec: &DbSpec) -> SimDb {
        let bin = work.join("bin");
        run_ok(Command::new(oraclesim).arg("install-shims").arg(&bin));
        let home = work.join("db");
        let mut c = Command::new(oraclesim);
        c.args(["create", "--home"])
            .arg(&home)
            .args(["--name", &spec.name])
            .args(["--datafiles", &spec.datafiles.to_string()])
            .args(["--size-mb", &spec.size_mb.to_string()])
            .args(["--threads", &spec.threads.to_string()]);
        if let Some(seed) = spec.seed {
            c.args(["--seed", &seed.to_string()]);
        }
        if let Some(mb) = spec.online_log_mb {
            c.args(["--online-log-mb", &mb.to_string()]);
        }
        if spec.random_fill {
            c.args(["--fill", "random"]);
        }
        if !spec.block_sizes.is_empty() {
            let sizes: Vec<String> = spec.block_sizes.iter().map(u32::to_string).collect();
            c.args(["--block-sizes", &sizes.join(",")]);
        }
        run_ok(&mut c);
        SimDb {
            oraclesim: oraclesim.to_path_buf(),
            name: spec.name.clone(),
            home,
            bin,
            work: work.to_path_buf(),
        }
    }

    /// `<home>/oradata/<NAME>`, where the datafiles are.
    pub fn oradata(&self) -> PathBuf {
        self.home.join("oradata").join(&self.name)
    }

    /// The datafiles (`*.dbf`), sorted.
    pub fn datafiles(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.oradata())
            .expect("the database's oradata")
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "dbf"))
            .collect();
        v.sort();
        v
    }

    /// Bytes in the datafiles.
    pub fn datafile_bytes(&self) -> u64 {
        self.datafiles()
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum()
    }

    /// `oraclesim <args>` on this database, which must succeed; its stdout.
    pub fn sim(&self, args: &[&str]) -> String {
        run_ok(
            Command::new(&self.oraclesim)
                .args(args)
                .env("ORACLESIM_HOME", &self.home),
        )
    }

    /// `oraclesim <args>` on this database: whether it succeeded, and what it printed
    /// (stdout, then stderr).
    pub fn sim_status(&self, args: &[&str]) -> (bool, String) {
        output(
            Command::new(&self.oraclesim)
                .args(args)
                .env("ORACLESIM_HOME", &self.home),
        )
    }

    /// `oraclesim switch`: a log switch, so every change so far is in an archived log.
    pub fn switch(&self) {
        self.sim(&["switch"]);
    }

    /// `oraclesim workload`: `change_pct` % of the blocks changed, then `log_switches`
    /// log switches.
    pub fn workload(&self, change_pct: &str, log_switches: u32) {
        self.sim(&[
            "workload",
            "--change-pct",
            change_pct,
            "--log-switches",
            &log_switches.to_string(),
        ]);
    }

    /// The shim `tool` (`rman`, `sqlplus`) as a DBA's shell runs it: on PATH, with
    /// ORACLESIM_HOME set and no ORACLE_SID from the test run's environment (it would pick
    /// the instance).
    pub fn tool(&self, tool: &str) -> Command {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new(self.bin.join(tool));
        c.env("PATH", path)
            .env("ORACLESIM_HOME", &self.home)
            .env_remove("ORACLE_SID");
        c
    }

    /// `rman target / cmdfile=<script>`, to be run (or spawned) by the caller.
    pub fn rman_cmd(&self, script: &str) -> Command {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let f = self
            .work
            .join(format!("s{}.rman", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&f, script).unwrap();
        let mut c = self.tool("rman");
        c.arg("target")
            .arg("/")
            .arg(format!("cmdfile={}", f.display()));
        c
    }

    /// Runs `script` through `rman` with `env` added: whether it succeeded, and what it
    /// printed (stdout, then stderr).
    pub fn rman(&self, script: &str, env: &[(&str, &str)]) -> (bool, String) {
        let mut c = self.rman_cmd(script);
        c.envs(env.iter().copied());
        output(&mut c)
    }

    /// Runs `script` through `rman`, which must succeed; what it printed.
    pub fn rman_ok(&self, script: &str) -> String {
        let (ok, out) = self.rman(script, &[]);
        assert!(ok, "rman failed:\n{script}\n{out}");
        out
    }

    /// Runs `script` through `rman`, which must fail; what it printed.
    pub fn rman_err(&self, script: &str) -> String {
        let (ok, out) = self.rman(script, &[]);
        assert!(!ok, "rman should have failed:\n{script}\n{out}");
        out
    }

    /// `sqlplus -S / as sysdba` with `input` on stdin: whether it succeeded, and its stdout.
    pub fn sqlplus(&self, input: &str) -> (bool, String) {
        let mut child = self
            .tool("sqlplus")
            .args(["-S", "/", "as", "sysdba"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sqlplus");
        child
            .stdin
            .take()
            .expect("a piped stdin")
            .write_all(input.as_bytes())
            .expect("write to sqlplus");
        let out = child.wait_with_output().expect("wait for sqlplus");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The one column a query selects, as the CSV markup prints it, unquoted.
    pub fn sql_column(&self, sql: &str) -> Vec<String> {
        let (ok, out) = self.sqlplus(&format!(
            "set markup csv on\nset feedback off\nset heading off\n{sql};\nexit\n"
        ));
        assert!(ok, "{sql}: {out}");
        out.lines()
            .map(|l| l.trim().trim_matches('"').to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The one number a query selects.
    pub fn number(&self, sql: &str) -> u64 {
        let col = self.sql_column(sql);
        col.first()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{sql}: {col:?}"))
    }

    /// `V$DATAFILE.STATUS` of FILE# `file_no` (ONLINE, OFFLINE, RECOVER, ...).
    pub fn datafile_status(&self, file_no: u32) -> String {
        self.sql_column(&format!(
            "select status from v$datafile where file# = {file_no}"
        ))
        .join(" ")
    }

    /// `oraclesim snapshot` of the home into `<work>/<name>` (replacing an earlier one): a
    /// self-consistent reference, whose control file names its own datafiles.
    pub fn snapshot(&self, name: &str) -> Snapshot {
        let dir = self.work.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        run_ok(
            Command::new(&self.oraclesim)
                .args(["snapshot", "--home"])
                .arg(&self.home)
                .arg("--to")
                .arg(&dir),
        );
        let scn = Snapshot::manifest(&dir)["scn"]
            .as_u64()
            .unwrap_or_else(|| panic!("no SCN in the manifest of {}", dir.display()));
        Snapshot { dir, scn }
    }

    /// `oraclesim verify --at-scn` of the datafiles against `snapshot`: whether every block
    /// is equal, and what it printed.
    pub fn verify_at(&self, snapshot: &Snapshot) -> (bool, String) {
        let out = run(Command::new(&self.oraclesim)
            .args(["verify", "--home"])
            .arg(&self.home)
            .arg("--against")
            .arg(&snapshot.dir)
            .args(["--at-scn", &snapshot.scn.to_string()]));
        (out.status.success(), text(&out))
    }

    /// The restore proof and its negative control: [`SimDb::verify_at`] passes, and fails
    /// naming the file and block once one byte of one data block of the snapshot differs.
    pub fn prove(&self, snapshot: &Snapshot) {
        let (ok, out) = self.verify_at(snapshot);
        assert!(ok && out.starts_with("OK: "), "{out}");
        let (file_no, path, block, offset) = snapshot.data_byte();
        flip_at(&path, offset, 0x10);
        let (ok, out) = self.verify_at(snapshot);
        flip_at(&path, offset, 0x10);
        assert!(
            !ok,
            "verify passed with a byte of file {file_no} block {block} of the snapshot changed:\n{out}"
        );
        assert!(
            out.contains(&format!("file {file_no} block {block}: content differs")),
            "{out}"
        );
    }

    /// Takes a snapshot, deletes every datafile (the loss a restore must repair), runs
    /// `restore` (RESTORE and RECOVER through `rman`) on the mounted database, opens it,
    /// and proves the datafiles equal the snapshot; what `rman` printed.
    pub fn lose_restore_verify(&self, restore: &str) -> String {
        let snapshot = self.snapshot("before-loss");
        for f in self.datafiles() {
            std::fs::remove_file(f).unwrap();
        }
        // Oracle restores the datafiles of a mounted database, never under an open instance.
        let out = self.rman_ok(&format!(
            "shutdown abort;\nstartup mount;\n{restore}alter database open;\n"
        ));
        self.prove(&snapshot);
        let _ = std::fs::remove_dir_all(&snapshot.dir);
        out
    }
}

/// A database in a temporary directory of its own, deleted when dropped.
#[derive(Debug)]
pub struct TempDb {
    /// The directory: the database's work directory, and room for the test's own files.
    pub tmp: tempfile::TempDir,
    /// The database in it.
    pub db: SimDb,
}

impl TempDb {
    /// [`SimDb::create`] in a new temporary directory.
    pub fn new(oraclesim: &Path, spec: &DbSpec) -> TempDb {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let db = SimDb::create(oraclesim, tmp.path(), spec);
        TempDb { tmp, db }
    }

    /// A default database with 1 MiB online logs, switched `logs` times: that many archived
    /// logs for the archived-log tests.
    pub fn with_archived_logs(oraclesim: &Path, logs: u32) -> TempDb {
        let env = TempDb::new(
            oraclesim,
            &DbSpec {
                online_log_mb: Some(1),
                ..DbSpec::default()
            },
        );
        for _ in 0..logs {
            env.db.switch();
        }
        env
    }

    /// `rel` in the temporary directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `rel` in the temporary directory, created, as the text an RMAN FORMAT takes.
    pub fn dir(&self, rel: &str) -> String {
        let d = self.path(rel);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        d.display().to_string()
    }
}

/// A reference taken with `oraclesim snapshot`: its directory and the SCN it was taken at.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Its directory.
    pub dir: PathBuf,
    /// The database's SCN when it was taken.
    pub scn: u64,
}

impl Snapshot {
    fn manifest(dir: &Path) -> serde_json::Value {
        let path = dir.join("snapshot.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A byte in the middle of a data block halfway into the last datafile: its FILE#, its
    /// path, the block and the byte's offset in the file.
    fn data_byte(&self) -> (u64, PathBuf, u64, u64) {
        let manifest = Snapshot::manifest(&self.dir);
        let last = manifest["datafiles"]
            .as_array()
            .and_then(|v| v.last())
            .unwrap_or_else(|| panic!("no datafiles in {manifest}"));
        let field = |k: &str| {
            last[k]
                .as_u64()
                .unwrap_or_else(|| panic!("no {k} in {last}"))
        };
        let path = self.dir.join(
            last["path"]
                .as_str()
                .unwrap_or_else(|| panic!("no path in {last}")),
        );
        // `blocks` leaves out block 0.
        let blocks = field("blocks");
        let block_size = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len()
            / (blocks + 1);
        let block = blocks / 2;
        (
            field("file_no"),
            path,
            block,
            block * block_size + block_size / 2,
        )
    }
}

/// The `PARMS` of an SBT channel: `SBT_LIBRARY=<library>, ENV=(K=V, ...)`.
pub fn sbt_parms(library: &Path, env: &[(&str, String)]) -> String {
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "SBT_LIBRARY={}, ENV=({})",
        library.display(),
        env.join(", ")
    )
}

/// A `RUN` block: one `ALLOCATE CHANNEL cN DEVICE TYPE SBT PARMS '<p>'` per entry of
/// `channel_parms` (named c1, c2, ...), then `commands` (each ending in `;`).
pub fn sbt_run(channel_parms: &[&str], commands: &str) -> String {
    let mut s = String::from("run {\n");
    for (i, p) in channel_parms.iter().enumerate() {
        s.push_str(&format!(
            " allocate channel c{} device type sbt parms '{p}';\n",
            i + 1
        ));
    }
    for line in commands.lines() {
        s.push_str(&format!(" {line}\n"));
    }
    s.push_str("}\n");
    s
}

/// Whether an image copy holds the data of a datafile: the same length and every 8 KiB
/// block equal but blocks 0 and 1, the file header, which says what marks a copy.
pub fn copy_matches_datafile(copy: &[u8], datafile: &[u8]) -> bool {
    copy.len() == datafile.len()
        && copy
            .chunks(8192)
            .zip(datafile.chunks(8192))
            .skip(2)
            .all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::copy_matches_datafile;

    #[test]
    fn a_copy_matches_its_datafile_but_for_the_header_and_one_changed_byte_is_seen() {
        let datafile: Vec<u8> = (0..5 * 8192u32)
            .map(|i| (i % 251).to_le_bytes()[0])
            .collect();
        let mut copy = datafile.clone();
        copy[100] ^= 0xff; // block 0: the header that marks a copy
        copy[8192 + 7] ^= 0xff; // block 1
        assert!(copy_matches_datafile(&copy, &datafile));
        copy[2 * 8192] ^= 0x01;
        assert!(!copy_matches_datafile(&copy, &datafile));
        assert!(!copy_matches_datafile(&datafile[..4 * 8192], &datafile));
    }
}
