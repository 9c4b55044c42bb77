//! A throwaway PostgreSQL server for tests: `initdb` into a temporary
//! directory, started on a free loopback port, stopped when dropped. The
//! binaries come from `PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`,
//! else `PATH` (`apt-get install postgresql`). PostgreSQL refuses to run as
//! root, so as root it runs as the `postgres` user.

#![allow(dead_code)] // each test that includes this uses its own part of it

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
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
    pub fn start() -> PgServer {
        let dir = tempfile::tempdir().unwrap();
        let server = PgServer {
            bin: bindir(),
            port: TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port(),
            dir,
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

    fn pg(&self, program: &str, args: &[&str]) -> Output {
        let exe = if self.bin.as_os_str().is_empty() {
            PathBuf::from(program)
        } else {
            self.bin.join(program)
        };
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).output().unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): the PostgreSQL tests need a server; install it with apt-get install postgresql",
                exe.display()
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

    /// A new empty database, and the connection string that reaches it.
    pub fn database(&self, name: &str) -> String {
        let socket = self.dir.path().display().to_string();
        let out = self.pg(
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
                &format!("CREATE DATABASE {name}"),
            ],
        );
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
        self.down();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
