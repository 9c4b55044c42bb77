//! The backup store against hostile clients (issue 20): whoever can write to a mount's NFS
//! export swaps a file for a link to a store-host file while PUT runs, and slow HTTP clients
//! hold connections beside live traffic; and every documented route tried with no token, a
//! wrong one and the admin token against a written policy.

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use orca_testing::http::stall;

use orca_store::{Appliance, Limits, RestoreStatus, SnapshotMode, StoreConfig};

const LOG: &str = "connected to target database: ORCL (DBID=42)\nRecovery Manager complete.\n";

async fn open(root: &Path) -> Arc<Appliance> {
    let mut c = StoreConfig::with_root(root.to_path_buf());
    c.snapshot = SnapshotMode::Ingest;
    c.max_pending = 100;
    Appliance::open(c, None).await.unwrap()
}

/// `zz.dbf` as restored from point `snap`, when the point has it.
async fn restored(app: &Arc<Appliance>, snap: &str) -> Option<Vec<u8>> {
    let r = app.start_restore("m", snap).unwrap();
    for _ in 0..600 {
        let r = app.restore(r.jobid).unwrap();
        if r.status != RestoreStatus::Running {
            assert_eq!(r.status, RestoreStatus::Succeeded, "{r:?}");
            return std::fs::read(r.path.join("zz.dbf")).ok();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("restore of {snap} did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_swapped_for_a_link_during_put_is_never_read_through_it() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("store");
    let secret = d.path().join("secret");
    std::fs::write(&secret, b"store host secret!".repeat(4096)).unwrap();
    let app = open(&root).await;
    app.create_mount("m").unwrap();
    let data = app.data_dir("m");
    let spare = root.join("m");
    let datafile = b"DATAFILE".repeat(8192);
    std::fs::write(data.join("zz.dbf"), &datafile).unwrap();

    // The database host's side: zz.dbf is a regular file one moment, a link the next.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, data, spare, secret) = (stop.clone(), data.clone(), spare.clone(), secret);
        let datafile = datafile.clone();
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                std::fs::write(spare.join("zz.tmp"), &datafile).unwrap();
                let _ = std::fs::remove_file(spare.join("zz.link"));
                std::os::unix::fs::symlink(&secret, spare.join("zz.link")).unwrap();
                std::fs::rename(spare.join("zz.tmp"), data.join("zz.dbf")).unwrap();
                std::thread::sleep(Duration::from_micros(500));
                std::fs::rename(spare.join("zz.link"), data.join("zz.dbf")).unwrap();
                std::thread::sleep(Duration::from_micros(500));
                swaps += 1;
            }
            swaps
        })
    };
    let (mut points, mut refused) = (Vec::new(), 0);
    for i in 0..40u32 {
        let _ = app.start_backup("m");
        // A file read before zz.dbf, rewritten each time, keeps the walk and the read apart.
        std::fs::write(
            data.join("a.dbf"),
            orca_testing::data::pattern(256 << 10, i),
        )
        .unwrap();
        app.upload_log("m", "rman.log", LOG.as_bytes(), "/local/m", "linux")
            .unwrap();
        match app.end_backup("m").await {
            Ok(snap) => points.push(snap),
            Err(e) => {
                assert!(e.to_string().contains("symbolic link"), "{e}");
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(swapper.join().unwrap() > 40, "the swapper ran");
    let mut with_file = 0;
    for snap in &points {
        if let Some(bytes) = restored(&app, snap).await {
            assert!(
                bytes == datafile,
                "point {snap} holds a file from outside the mount ({} bytes)",
                bytes.len()
            );
            with_file += 1;
        }
    }
    eprintln!(
        "{} points ({with_file} with zz.dbf), {refused} PUTs refused a link",
        points.len()
    );
}

#[test]
fn slow_half_sent_requests_are_cut_off_beside_live_traffic() {
    let d = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let limits = Limits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        max_connections: 8,
    };
    let addr = rt.block_on(async {
        let app = open(&d.path().join("store")).await;
        app.create_mount("m").unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(orca_store::serve_on(app, listener, limits));
        addr
    });
    let url = format!("http://{addr}");
    let half_headers: Vec<TcpStream> = (0..16)
        .map(|_| {
            stall(
                &addr,
                "GET /druva-phoenix/v1/mounts/m/backup HTTP/1.1\r\nHost: x\r\n",
            )
        })
        .collect();
    let half_bodies: Vec<TcpStream> = (0..3)
        .map(|_| {
            stall(
                &addr,
                "POST /orca/v1/admin/mounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{\"name\"",
            )
        })
        .collect();
    for _ in 0..5 {
        let asked = Instant::now();
        let r = orca_testing::http::request(
            &url,
            "GET",
            "/druva-phoenix/v1/mounts/m/backup",
            None,
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{:?}",
            asked.elapsed()
        );
    }
    orca_testing::http::cut_off(half_bodies, half_headers);
    // An admin body over its limit is refused before it is read.
    let big = (2 << 20) + 1;
    let head = format!(
        "POST /orca/v1/admin/mounts HTTP/1.1\r\nContent-Type: application/json\r\n\
         Content-Length: {big}\r\n"
    );
    let r = orca_testing::http::exchange(&url, &head, &vec![b' '; big]).unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.body.contains("2 MiB"), "{r:?}");
}

const ADMIN_TOKEN: &str = "the store's admin token";

/// The store's access policy, route by route: `*` open to every caller (the contract's
/// endpoints, which the DBAs' scripts call without a token, and the document), `A` the admin
/// token only. A change of policy is a change of this table.
const POLICY: &[(&str, &str)] = &[
    ("GET /druva-phoenix/v1/mounts/{mount}/backup", "*"),
    ("POST /druva-phoenix/v1/mounts/{mount}/backup", "*"),
    ("PUT /druva-phoenix/v1/mounts/{mount}/backup", "*"),
    ("POST /druva-phoenix/v1/mounts/{mount}/uploadlog", "*"),
    (
        "DELETE /druva-phoenix/v1/mounts/{mount}/restores/{jobid}",
        "*",
    ),
    ("GET /orca/v1/mounts/{mount}/backup", "*"),
    ("POST /orca/v1/mounts/{mount}/backup", "*"),
    ("PUT /orca/v1/mounts/{mount}/backup", "*"),
    ("POST /orca/v1/mounts/{mount}/uploadlog", "*"),
    ("DELETE /orca/v1/mounts/{mount}/restores/{jobid}", "*"),
    ("GET /orca/v1/openapi.json", "*"),
    ("GET /orca/v1/admin/store", "A"),
    ("POST /orca/v1/admin/store/decommission", "A"),
    ("POST /orca/v1/admin/store/register", "A"),
    ("GET /orca/v1/admin/mounts", "A"),
    ("POST /orca/v1/admin/mounts", "A"),
    ("DELETE /orca/v1/admin/mounts/{mount}", "A"),
    ("PUT /orca/v1/admin/mounts/{mount}/retention", "A"),
    ("GET /orca/v1/admin/recovery-points", "A"),
    (
        "POST /orca/v1/admin/mounts/{mount}/recovery-points/{snap}/restore",
        "A",
    ),
    ("POST /orca/v1/admin/mounts/{mount}/restore", "A"),
    ("GET /orca/v1/admin/restores/{jobid}", "A"),
    ("GET /orca/v1/admin/uploads", "A"),
];

/// Who calls: no token, a wrong one, the admin token.
const CALLERS: [(char, Option<&str>); 3] = [
    ('-', None),
    ('?', Some("not the store's admin token")),
    ('A', Some(ADMIN_TOKEN)),
];

/// A store with an admin token, serving mount `m` with one recovery point and one restore of
/// it, made afresh for each route.
struct Served {
    // Before the directory: its tasks stop before the directory goes.
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    url: String,
    snap: String,
    jobid: u64,
}

impl Served {
    fn new() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (url, snap, jobid) = rt.block_on(async {
            let mut c = StoreConfig::with_root(dir.path().join("store"));
            c.snapshot = SnapshotMode::Ingest;
            c.admin_token = Some(ADMIN_TOKEN.into());
            let app = Appliance::open(c, None).await.unwrap();
            app.create_mount("m").unwrap();
            app.start_backup("m").unwrap();
            std::fs::write(app.data_dir("m").join("a.dbf"), b"DATAFILE").unwrap();
            app.upload_log("m", "rman.log", LOG.as_bytes(), "/local/m", "linux")
                .unwrap();
            let snap = app.end_backup("m").await.unwrap();
            let jobid = app.start_restore("m", &snap).unwrap().jobid;
            while app.restore(jobid).unwrap().status == RestoreStatus::Running {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(orca_store::serve_on(app, listener, Limits::default()));
            (url, snap, jobid)
        });
        Served {
            _rt: rt,
            _dir: dir,
            url,
            snap,
            jobid,
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> orca_testing::http::Response {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let ct = if path.ends_with("/uploadlog") {
            "multipart/form-data; boundary=XyZ"
        } else {
            "application/json"
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\n{auth}Content-Type: {ct}\r\nContent-Length: {}\r\n",
            body.len()
        );
        orca_testing::http::exchange(&self.url, &head, body).unwrap()
    }

    /// What a refused request must leave as it was, as the admin sees it.
    fn state(&self) -> Vec<String> {
        let restore = format!("/orca/v1/admin/restores/{}", self.jobid);
        [
            "/orca/v1/admin/store",
            "/orca/v1/admin/mounts",
            "/orca/v1/admin/recovery-points",
            "/orca/v1/admin/uploads",
            &restore,
        ]
        .iter()
        .map(|p| self.send("GET", p, Some(ADMIN_TOKEN), b"").body)
        .collect()
    }
}

#[test]
fn every_route_answers_each_caller_as_the_policy_says() {
    let s = Served::new();
    let doc: serde_json::Value =
        serde_json::from_str(&s.send("GET", "/orca/v1/openapi.json", None, b"").body).unwrap();
    let routes = orca_testing::http::routes_of(&doc, POLICY);
    // The negative control of "changed nothing": what an allowed admin write changes is seen.
    for (method, path, body) in [
        ("POST", "/orca/v1/admin/mounts", &br#"{"name": "n"}"#[..]),
        ("POST", "/orca/v1/admin/store/decommission", b""),
    ] {
        let before = s.state();
        let a = s.send(method, path, Some(ADMIN_TOKEN), body);
        assert_eq!(a.status, 200, "{a:?}");
        assert_ne!(s.state(), before, "{method} {path} changed nothing seen");
    }
    drop(s);

    let mut table = String::new();
    for (method, path) in &routes {
        let key = format!("{method} {path}");
        let allowed = POLICY.iter().find(|(r, _)| *r == key).unwrap().1;
        let s = Served::new();
        let target = path
            .replace("{mount}", "m")
            .replace("{snap}", &s.snap)
            .replace("{jobid}", &s.jobid.to_string());
        let body: Vec<u8> = match (method.as_str(), path.rsplit('/').next().unwrap()) {
            ("POST", "uploadlog") => format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"rman.log\"\r\n\r\n\
                 {LOG}\r\n--XyZ--\r\n"
            )
            .into_bytes(),
            ("POST", "mounts") => br#"{"name": "n"}"#.to_vec(),
            ("PUT", "retention") => br#"{"daily": 3, "weekly": 0, "monthly": 0, "yearly": 0}"#.to_vec(),
            ("POST", "restore") if path.ends_with("{mount}/restore") => {
                br#"{"until_time": "2099-01-01 00:00:00"}"#.to_vec()
            }
            _ => vec![],
        };
        let mut row = format!("{key:<68}");
        for (code, token) in CALLERS {
            let before = s.state();
            let a = s.send(method, &target, token, &body);
            row.push_str(&format!(" {code}:{}", a.status));
            assert!(a.status < 500, "{key} by {code}: a 5xx: {a:?}");
            let envelope: serde_json::Value = serde_json::from_str(&a.body)
                .unwrap_or_else(|e| panic!("{key} by {code}: not JSON ({e}): {a:?}"));
            if allowed == "*" || allowed.contains(code) {
                assert_ne!(
                    a.status, 401,
                    "{key} by {code} is allowed but refused: {a:?}"
                );
                continue;
            }
            assert_eq!(a.status, 401, "{key} by {code}: {a:?}");
            assert_eq!(envelope["error_code"], 4295626761u64, "{a:?}");
            assert_eq!(
                s.state(),
                before,
                "{key} by {code} was refused but changed the store"
            );
        }
        table.push_str(&row);
        table.push('\n');
    }
    eprintln!("{table}");
}
