//! What an administrator installs: the Debian package built by `scripts/build-deb`, its systemd
//! units (checked by systemd's own `systemd-analyze verify`), man pages and shell completions.

use std::path::{Path, PathBuf};
use std::process::Command;

use orca_testing::process::{output, run_ok};
use orca_testing::tools::{self, Tool};

const UNITS: [&str; 3] = ["orca-vault", "orca-store", "orca-agent"];

/// A tool the test needs; in CI its absence is a failure, not a skip.
fn have(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").map_or(true, |v| v.is_empty() || v == "false"),
            "CI is set and {tool} is missing: scripts/test-deps installs {package}"
        );
        eprintln!("SKIPPED: {tool} is missing (apt-get install {package})");
    }
    found
}

/// Builds the package from this build's binaries and unpacks it under `root`.
fn build_and_unpack(tmp: &Path) -> (PathBuf, PathBuf) {
    tools::ensure(&[Tool::Orca, Tool::SbtLibrary]);
    let out = tmp.join("out");
    let printed = run_ok(
        Command::new(tools::workspace().join("scripts/build-deb"))
            .arg("--bin-dir")
            .arg(tools::dir())
            .arg("--out")
            .arg(&out),
    );
    let deb = PathBuf::from(
        printed
            .lines()
            .last()
            .expect("build-deb prints the package")
            .trim(),
    );
    assert!(deb.is_file(), "build-deb printed {printed:?}");
    let root = tmp.join("root");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    (deb, root)
}

/// `systemd-analyze verify` of one unit inside `root`; it prints warnings (an unknown key) on
/// stderr with exit status 0, so a clean unit is one with status 0 and nothing said.
fn verify_unit(root: &Path, unit: &str) -> Result<(), String> {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.display()))
        .arg(format!("/lib/systemd/system/{unit}.service"))
        .output()
        .expect("systemd-analyze runs");
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success() && said.is_empty() {
        Ok(())
    } else {
        Err(format!("{unit}: {} {said}", out.status))
    }
}

/// systemd looks for the targets the units hang off in the root it checks.
fn add_system_targets(root: &Path) {
    run_ok(
        Command::new("cp")
            .arg("-rn")
            .arg("/lib/systemd/system/.")
            .arg(root.join("lib/systemd/system")),
    );
}

#[test]
fn the_package_holds_the_binary_library_units_man_pages_and_completions() {
    if !have("dpkg-deb", "dpkg") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (deb, root) = build_and_unpack(tmp.path());

    let info = run_ok(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for line in ["Package: orca", "Depends: libc6", "postinst"] {
        assert!(
            info.contains(line),
            "dpkg-deb --info lacks {line:?}: {info}"
        );
    }
    for path in [
        "usr/bin/orca",
        "usr/lib/orca/liborca_sbt.so",
        "lib/systemd/system/orca-vault.service",
        "lib/systemd/system/orca-store.service",
        "lib/systemd/system/orca-agent.service",
        "usr/share/man/man1/orca.1.gz",
        "usr/share/man/man1/orca-vault-serve.1.gz",
        "usr/share/bash-completion/completions/orca",
        "usr/share/zsh/vendor-completions/_orca",
        "usr/share/fish/vendor_completions.d/orca.fish",
        "usr/share/doc/orca/examples/agent.example.toml",
        "usr/share/doc/orca/examples/store.example.toml",
    ] {
        assert!(root.join(path).is_file(), "the package lacks /{path}");
    }
    let version = run_ok(Command::new(root.join("usr/bin/orca")).arg("--version"));
    assert!(version.starts_with("orca "), "{version}");

    // The maintainer scripts are valid shell.
    let control = tmp.path().join("control");
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    for script in ["postinst", "postrm"] {
        run_ok(Command::new("sh").arg("-n").arg(control.join(script)));
    }

    // The bash completion completes subcommands.
    let completion = root.join("usr/share/bash-completion/completions/orca");
    let words = run_ok(Command::new("bash").arg("-c").arg(format!(
        "source {}; COMP_WORDS=(orca va); COMP_CWORD=1; _orca orca va orca; echo \"${{COMPREPLY[@]}}\"",
        completion.display()
    )));
    assert!(
        words.contains("vault"),
        "bash completion of `orca va` gave {words:?}"
    );
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify_and_a_broken_one_does_not() {
    if !have("dpkg-deb", "dpkg") || !have("systemd-analyze", "systemd") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_, root) = build_and_unpack(tmp.path());
    add_system_targets(&root);
    for unit in UNITS {
        verify_unit(&root, unit).unwrap_or_else(|e| panic!("{e}"));
    }
    let unit_file = root.join("lib/systemd/system/orca-vault.service");
    let good = std::fs::read_to_string(&unit_file).unwrap();

    // Negative controls: a misspelt hardening key, and a binary that is not installed.
    std::fs::write(&unit_file, good.replace("ProtectSystem=", "ProtectSystm=")).unwrap();
    let err = verify_unit(&root, "orca-vault").expect_err("a misspelt key must be reported");
    assert!(err.contains("ProtectSystm"), "{err}");
    std::fs::write(&unit_file, good.replace("/usr/bin/orca ", "/usr/bin/orcx ")).unwrap();
    let err = verify_unit(&root, "orca-vault").expect_err("a missing binary must be reported");
    assert!(err.contains("orcx"), "{err}");

    // The servers run as their own user, with the file system read-only around them.
    for key in [
        "User=orca",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "UMask=0077",
    ] {
        assert!(good.contains(key), "orca-vault.service lacks {key}");
    }
}

#[test]
fn man_pages_cover_every_command_and_render() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man");
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_orca"))
            .arg("man")
            .arg(&dir),
    );
    for page in [
        "orca",
        "orca-vault-serve",
        "orca-store-serve",
        "orca-agent-run",
        "orca-backup",
    ] {
        let file = dir.join(format!("{page}.1"));
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("no man page {}: {e}", file.display()));
        assert!(text.contains(".SH NAME"), "{page}.1 is not a man page");
    }
    assert!(
        !dir.join("orca-help.1").exists(),
        "clap's help subcommand gets no page"
    );
    let (ok, text) = output(Command::new(env!("CARGO_BIN_EXE_orca")).args(["completions", "tcsh"]));
    assert!(
        !ok && text.contains("tcsh"),
        "an unknown shell is refused by name: {text}"
    );
}
