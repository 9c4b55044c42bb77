//! A throwaway PostgreSQL server for tests: `initdb` into a temporary
//! directory, started on a free loopback port, stopped when dropped. The
//! binaries come from `PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`,
//! else `PATH` (`apt-get install postgresql`). PostgreSQL refuses to run as
//! root, so as root it runs as the `postgres` user.
//!
//! A test that stops and starts its server ([`PgServer::down`], [`PgServer::up`]) or
//! changes its configuration owns one ([`PgServer::start`]); tests that only need a
//! database of their own share one per test binary ([`PgServer::shared`] and
//! [`PgServer::fresh_database`]).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::process::{free_port, on_exit, shell_quote, text};

/// A PostgreSQL server in a temporary directory, listening on 127.0.0.1:`port`.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Shared servers are stopped at the process's exit, not on drop.
    owned: bool,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgServer(127.0.0.1:{})", self.port)
    }
}

fn bindir() -> PathBuf {
    if let Ok(d) = std::env::var("PG_BINDIR") {
        return d.into();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl PgServer {
    /// A new server of this test's own, stopped when dropped.
    pub fn start() -> PgServer {
        PgServer::make(true)
    }

    /// The server the tests of this binary share, started by the first that asks and
    /// stopped when the binary exits. Make databases in it with [`PgServer::fresh_database`].
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            let server = PgServer::make(false);
            let stop: Vec<String> = server
                .pg_words(
                    "pg_ctl",
                    &[
                        "-D",
                        server.data().to_str().unwrap(),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ],
                )
                .iter()
                .map(|w| shell_quote(w))
                .collect();
            on_exit(&format!(
                "{}; rm -rf {}",
                stop.join(" "),
                shell_quote(&server.dir.path().display().to_string())
            ));
            server
        })
    }

    fn make(owned: bool) -> PgServer {
        let dir = tempfile::tempdir().unwrap();
        let server = PgServer {
            bin: bindir(),
            port: free_port(),
            dir,
            owned,
        };
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(server.dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(
                ok,
                "cannot hand {} to the postgres user: install PostgreSQL (apt-get install postgresql)",
                server.dir.path().display()
            );
        }
        let data = server.data();
        let out = server.pg(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        server.up();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `program` with `args` as the server's user runs it: `runuser -u postgres --` first
    /// as root.
    fn pg_words(&self, program: &str, args: &[&str]) -> Vec<String> {
        let exe = if self.bin.as_os_str().is_empty() {
            PathBuf::from(program)
        } else {
            self.bin.join(program)
        };
        let mut words = Vec::new();
        if is_root() {
            words.extend(["runuser", "-u", "postgres", "--"].map(String::from));
        }
        words.push(exe.display().to_string());
        words.extend(args.iter().map(|a| a.to_string()));
        words
    }

    fn pg(&self, program: &str, args: &[&str]) -> Output {
        let words = self.pg_words(program, args);
        Command::new(&words[0])
            .args(&words[1..])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): the PostgreSQL tests need a server; install it with apt-get install postgresql",
                    words.join(" ")
                )
            })
    }

    /// Start (again) on the same port and data.
    pub fn up(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("pg.log");
        let out = self.pg(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-o",
                &opts,
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "PostgreSQL did not start: {}\n{}",
            text(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Serve TLS only, with this certificate and key (PEM): plain TCP is
    /// refused from now on (`hostssl` in pg_hba.conf). Restarts the server.
    pub fn require_tls(&self, cert_pem: &str, key_pem: &str) {
        use std::os::unix::fs::PermissionsExt;
        let data = self.data();
        std::fs::write(data.join("server.crt"), cert_pem).unwrap();
        let key = data.join("server.key");
        std::fs::write(&key, key_pem).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(
            &mut conf,
            b"\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
        )
        .unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        if is_root() {
            for f in ["server.crt", "server.key", "postgresql.conf", "pg_hba.conf"] {
                let ok = Command::new("chown")
                    .arg("postgres")
                    .arg(data.join(f))
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "cannot hand {f} to the postgres user");
            }
        }
        self.down();
        self.up();
    }

    /// Ask for a password over TCP from now on (`scram-sha-256` in pg_hba.conf), and give
    /// the `postgres` role `password`. Restarts the server.
    pub fn require_password(&self, password: &str) {
        let out = self.psql(&format!(
            "ALTER ROLE postgres PASSWORD '{}'",
            password.replace('\'', "''")
        ));
        assert!(out.status.success(), "ALTER ROLE failed: {}", text(&out));
        let hba = self.data().join("pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .arg("postgres")
                .arg(&hba)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot hand pg_hba.conf to the postgres user");
        }
        self.down();
        self.up();
    }

    /// Stop at once, dropping every connection (`pg_ctl -m immediate`).
    pub fn down(&self) {
        self.pg(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// A new empty database with a name no other caller in this process got, and the
    /// connection string that reaches it.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        self.database(&format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed)))
    }

    /// `sql` run by psql as `postgres` over the server's socket.
    fn psql(&self, sql: &str) -> Output {
        let socket = self.dir.path().display().to_string();
        self.pg(
            "psql",
            &[
                "-h",
                &socket,
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qc",
                sql,
            ],
        )
    }

    /// A new empty database, and the connection string that reaches it.
    pub fn database(&self, name: &str) -> String {
        let out = self.psql(&format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "CREATE DATABASE failed: {}",
            text(&out)
        );
        format!("postgresql://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.owned {
            self.down();
        }
    }
}
