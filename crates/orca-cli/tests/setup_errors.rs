//! Set-up mistakes a new administrator makes with a bucket and a shared index, each answered by
//! one line that says what to do, and none leaving a half-made repository behind.

use std::path::Path;
use std::process::Command;

use orca_testing::moto::S3Server;
use orca_testing::orca::Orca;
use orca_testing::pg::PgServer;
use orca_testing::process::output;

fn orca() -> Orca {
    Orca::at(env!("CARGO_BIN_EXE_orca")).with_password("test passphrase")
}

/// `orca` with no AWS variable of the caller's and no instance metadata service.
fn bare(o: &Orca) -> Command {
    let mut c = o.cmd();
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(&k);
        }
    }
    c.env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

#[test]
fn no_s3_credentials_is_named_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let (ok, text) = output(
        bare(&orca())
            .args(["repo", "init", "--repo"])
            .arg(&repo)
            .args([
                "--objects",
                "s3://nowhere/orca",
                "--s3-endpoint",
                "http://127.0.0.1:9",
            ]),
    );
    assert!(!ok, "init without credentials succeeded: {text}");
    assert!(
        text.contains("AWS_ACCESS_KEY_ID") && text.contains("--s3-credentials-file"),
        "{text}"
    );
    assert!(
        !repo.join("objects.json").exists(),
        "a failed init left objects.json behind"
    );
}

#[test]
fn secret_files_others_can_read_are_refused_and_a_failed_init_can_be_run_again() {
    let s3 = S3Server::shared();
    let bucket = s3.fresh_bucket();
    let url = format!("s3://{bucket}/orca");
    let tmp = tempfile::tempdir().unwrap();
    let o = orca();

    // A credentials file others can read: refused with the fix, nothing written to the bucket.
    let creds = tmp.path().join("s3.json");
    std::fs::copy(s3.credentials_file(), &creds).unwrap();
    chmod(&creds, 0o644);
    let args = |creds: &Path| -> Vec<String> {
        vec![
            "--objects".into(),
            url.clone(),
            "--s3-endpoint".into(),
            s3.endpoint(),
            "--s3-credentials-file".into(),
            creds.display().to_string(),
        ]
    };
    let repo = tmp.path().join("a");
    let (ok, text) = output(
        bare(&o)
            .args(["repo", "init", "--repo"])
            .arg(&repo)
            .args(args(&creds)),
    );
    assert!(!ok && text.contains("chmod 600"), "{text}");

    // An index that cannot be reached: init fails, and takes back what it wrote to the bucket.
    chmod(&creds, 0o600);
    let key = tmp.path().join("repo.key");
    let (ok, text) = output(
        bare(&o)
            .args(["repo", "init", "--repo"])
            .arg(&repo)
            .args(args(&creds))
            .args([
                "--index-url",
                "postgresql://orca@127.0.0.1:9/orca?connect_timeout=2",
            ])
            .arg("--key-file")
            .arg(&key),
    );
    assert!(!ok, "init with an unreachable index succeeded: {text}");
    assert!(
        !repo.join("objects.json").exists(),
        "objects.json left behind: {text}"
    );
    assert!(
        !key.exists(),
        "the key of a repository never made was left behind"
    );

    // The same init again, without the index, succeeds on the same bucket and prefix.
    let out = Command::new(env!("CARGO_BIN_EXE_orca"))
        .env("ORCA_PASSWORD", "test passphrase")
        .args(["repo", "init", "--repo"])
        .arg(&repo)
        .args(args(&creds))
        .arg("--key-file")
        .arg(&key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "init after a failed init was refused: {text}"
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("index in ") && said.contains("index.sqlite"),
        "init does not say where its index is: {said}"
    );
}

#[test]
fn a_postgresql_that_asks_for_a_password_none_was_given_for_fails_at_once_saying_what_to_set() {
    let s3 = S3Server::shared();
    let pg = PgServer::start();
    let index = pg.fresh_database();
    pg.require_password("pg secret");
    let tmp = tempfile::tempdir().unwrap();
    let o = orca();
    let init = |repo: &str, password_file: Option<&Path>| {
        let mut c = bare(&o);
        c.env_remove("PGPASSWORD")
            .args(["repo", "init", "--repo"])
            .arg(tmp.path().join(repo))
            .args(s3.object_args(&format!("s3://{}/orca", s3.fresh_bucket())))
            .args(["--index-url", &index]);
        if let Some(f) = password_file {
            c.arg("--index-password-file").arg(f);
        }
        let started = std::time::Instant::now();
        let (ok, text) = output(&mut c);
        (ok, text, started.elapsed())
    };
    let (ok, text, took) = init("a", None);
    assert!(!ok, "init without the password succeeded: {text}");
    assert!(
        text.contains("--index-password-file") && text.contains("PGPASSWORD"),
        "{text}"
    );
    // Retrying a missing password is pointless: before, the user waited out 30 s of retries.
    assert!(
        took < std::time::Duration::from_secs(25),
        "the missing password was retried for {took:?}"
    );
    // The same init with the password in a 0600 file works (the check can pass).
    let pw = tmp.path().join("pg.pw");
    std::fs::write(&pw, "pg secret\n").unwrap();
    chmod(&pw, 0o600);
    let (ok, text, _) = init("b", Some(&pw));
    assert!(ok, "init with the password failed: {text}");
}

#[test]
fn a_missing_bucket_names_create_bucket_which_makes_it_and_takes_it_back_when_init_fails() {
    let s3 = S3Server::shared();
    let bucket = format!("{}-made-by-init", s3.fresh_bucket());
    let url = format!("s3://{bucket}/orca");
    let exists = || {
        orca_testing::http::request(&s3.endpoint(), "HEAD", &format!("/{bucket}"), None, b"")
            .unwrap()
            .status
            == 200
    };
    let tmp = tempfile::tempdir().unwrap();
    let o = orca();
    let repo = tmp.path().join("repo");
    let key = tmp.path().join("repo.key");
    let init = || {
        let mut c = bare(&o);
        c.args(["repo", "init", "--repo"])
            .arg(&repo)
            .args(s3.object_args(&url))
            .arg("--key-file")
            .arg(&key);
        c
    };

    // No bucket: one line naming it and the flag, nothing written.
    let (ok, text) = output(&mut init());
    assert!(!ok, "init into a missing bucket succeeded: {text}");
    assert!(
        text.contains("does not exist") && text.contains("--create-bucket"),
        "{text}"
    );
    assert!(!repo.join("objects.json").exists());
    assert!(!exists());

    // --create-bucket with an index that cannot be reached: the bucket it made goes again.
    let (ok, text) = output(init().arg("--create-bucket").args([
        "--index-url",
        "postgresql://orca@127.0.0.1:9/orca?connect_timeout=2",
    ]));
    assert!(!ok, "init with an unreachable index succeeded: {text}");
    assert!(text.contains("created the bucket"), "{text}");
    assert!(!exists(), "the bucket a failed init made is left: {text}");

    // --create-bucket: made, and the repository in it works.
    let (ok, text) = output(init().arg("--create-bucket"));
    assert!(ok && text.contains("created the bucket"), "{text}");
    assert!(exists());
    let (ok, text) = output(
        bare(&o)
            .args(["repo", "info", "--repo"])
            .arg(&repo)
            .arg("--key-file")
            .arg(&key),
    );
    assert!(ok, "{text}");
}

/// Log lines carry no colour codes when stderr is a file or a pipe, and do on a terminal
/// (the control: the check sees codes where they are).
#[test]
fn logs_have_no_colour_codes_unless_stderr_is_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let key = tmp.path().join("k");
    let (ok, text) = output(
        orca()
            .cmd()
            .args(["repo", "init", "--repo"])
            .arg(&repo)
            .arg("--key-file")
            .arg(&key),
    );
    assert!(ok, "{text}");
    // A cache directory that is a file: `put` warns and goes on, a log line to look at.
    let not_a_dir = tmp.path().join("data");
    std::fs::write(&not_a_dir, b"some data").unwrap();
    let put = |name: &str| {
        format!(
            "{} put --repo {} --key-file {} --cache-dir {} --name {name} {}",
            env!("CARGO_BIN_EXE_orca"),
            repo.display(),
            key.display(),
            not_a_dir.display(),
            not_a_dir.display()
        )
    };
    let out = Command::new("sh")
        .args(["-c", &put("piped")])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("WARN") && err.contains("lineage cache unavailable"),
        "{err}"
    );
    assert!(
        !err.contains('\x1b'),
        "colour codes in a piped log: {err:?}"
    );

    // The same through a pseudo-terminal (util-linux `script`): the warning is coloured.
    let out = Command::new("script")
        .args(["-qec", &put("on-a-terminal"), "/dev/null"])
        .env_remove("NO_COLOR")
        .output()
        .expect("util-linux script, for a terminal");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains("\x1b[33m WARN"),
        "no colour on a terminal either: {tty:?}"
    );
}
