//! A simulated database (`oraclesim create`) driven as a DBA drives Oracle: its `rman` and
//! `sqlplus` are the shims `oraclesim install-shims` links, run with `ORACLESIM_HOME`
//! naming the database.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fs::copy_dir;
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
/// command files and the reference copy of a restore.
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
    /// ORACLESIM_HOME set.
    pub fn tool(&self, tool: &str) -> Command {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new(self.bin.join(tool));
        c.env("PATH", path).env("ORACLESIM_HOME", &self.home);
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

    /// `oraclesim verify` of the datafiles against those of the home copied to `reference`:
    /// whether they are equal, and what it printed.
    pub fn verify(&self, reference: &Path) -> (bool, String) {
        let out = run(Command::new(&self.oraclesim)
            .args(["verify", "--home"])
            .arg(&self.home)
            .arg("--against")
            .arg(reference));
        (out.status.success(), text(&out))
    }

    /// Copies the home aside (`<work>/reference`, replacing an earlier copy) and deletes
    /// every datafile: the loss a restore must repair. The copy's path.
    pub fn lose_datafiles(&self) -> PathBuf {
        let reference = self.work.join("reference");
        let _ = std::fs::remove_dir_all(&reference);
        copy_dir(&self.home, &reference);
        for f in self.datafiles() {
            std::fs::remove_file(f).unwrap();
        }
        reference
    }

    /// Loses every datafile, runs `restore` (RESTORE and RECOVER through `rman`), and
    /// checks the datafiles equal the copy taken before the loss; what `rman` printed.
    pub fn lose_restore_verify(&self, restore: &str) -> String {
        let reference = self.lose_datafiles();
        let out = self.rman_ok(restore);
        let (ok, verified) = self.verify(&reference);
        assert!(ok && verified.contains("OK"), "{verified}");
        out
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
