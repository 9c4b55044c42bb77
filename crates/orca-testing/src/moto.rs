//! An S3-compatible server for tests: moto (`pip install 'moto[server]'`) on a free
//! loopback port, with the credentials file a vault service keeps beside it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::http;
use crate::process::{Guard, free_port, on_exit, shell_quote};

/// A moto server; an owned one is stopped when dropped.
#[derive(Debug)]
pub struct S3Server {
    child: Guard,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl S3Server {
    /// A server of this test's own with an empty `bucket`.
    pub fn start(bucket: &str) -> S3Server {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server ({e}): install it with pip install 'moto[server]'")
            });
        let child = Guard::new(child);
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("s3.json");
        std::fs::write(
            &credentials,
            r#"{"access_key_id": "test", "secret_access_key": "testtest"}"#,
        )
        .unwrap();
        // ORCA refuses a credentials file that others can read.
        std::fs::set_permissions(
            &credentials,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let server = S3Server { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.create_bucket(bucket) {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start: install it with pip install 'moto[server]'"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// The server the tests of this binary share, started by the first that asks and
    /// stopped when the binary exits. Each test takes a bucket of its own
    /// ([`S3Server::fresh_bucket`]).
    pub fn shared() -> &'static S3Server {
        static SHARED: OnceLock<S3Server> = OnceLock::new();
        SHARED.get_or_init(|| {
            let server = S3Server::start("orca-shared");
            let pid = server.child.id().expect("a running moto_server");
            // A static is never dropped: its directory goes with the server.
            on_exit(&format!(
                "kill {pid}; rm -rf {}",
                shell_quote(&server.dir.path().display().to_string())
            ));
            server
        })
    }

    /// A new empty bucket with a name no other caller in this process got.
    pub fn fresh_bucket(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let bucket = format!("orca-t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        assert!(self.create_bucket(&bucket), "cannot create bucket {bucket}");
        bucket
    }

    /// CreateBucket by hand (object_store has no bucket administration); whether the server
    /// answered 200.
    pub fn create_bucket(&self, bucket: &str) -> bool {
        http::request(&self.endpoint(), "PUT", &format!("/{bucket}"), None, b"")
            .is_ok_and(|r| r.status == 200)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A JSON file with the server's credentials, as a vault service keeps them.
    pub fn credentials_file(&self) -> PathBuf {
        self.dir.path().join("s3.json")
    }

    /// The `orca repo init`/`attach` flags that put a repository's objects at `url`
    /// (`s3://bucket/prefix`) on this server.
    pub fn object_args(&self, url: &str) -> Vec<String> {
        vec![
            "--objects".into(),
            url.into(),
            "--s3-endpoint".into(),
            self.endpoint(),
            "--s3-credentials-file".into(),
            self.credentials_file().display().to_string(),
        ]
    }
}
