//! `orca completions SHELL` and `orca man DIR`: both generated from the
//! command definition itself, so they never drift from `--help`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Command};
use clap_complete::Shell;

/// Arguments of `orca completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    ///
    /// bash: `orca completions bash > /etc/bash_completion.d/orca`;
    /// zsh: `orca completions zsh > "${fpath[1]}/_orca"`;
    /// fish: `orca completions fish > ~/.config/fish/completions/orca.fish`.
    pub shell: Shell,
}

/// Arguments of `orca man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Directory to write the pages into (`orca.1`, `orca-vault.1`,
    /// `orca-vault-serve.1`, ...): one per command and subcommand.
    pub dir: PathBuf,
}

/// Writes the completion script for `shell` to standard output.
pub fn completions(mut cmd: Command, a: CompletionsArgs) -> Result<()> {
    use std::io::Write;
    let name = cmd.get_name().to_string();
    // Into a buffer first: clap_complete panics on a write error, and `| head` is a normal use.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, name, &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write the completion script")
        }
        _ => Ok(()),
    }
}

/// Writes one man page per command into `a.dir`, creating it.
pub fn man(cmd: Command, a: ManArgs) -> Result<()> {
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let mut cmd = cmd;
    cmd.build();
    let written = write_pages(&cmd, &a.dir, None)?;
    eprintln!("wrote {written} man pages into {}", a.dir.display());
    Ok(())
}

fn write_pages(cmd: &Command, dir: &Path, parent: Option<&str>) -> Result<usize> {
    let name = match parent {
        Some(p) => format!("{p}-{}", cmd.get_name()),
        None => cmd.get_name().to_string(),
    };
    let mut out = Vec::new();
    // The title is the full command path so `man orca-vault-serve` says which command it is
    // (after `build`, clap names subcommands `orca-vault-serve` in the page's NAME section).
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .render(&mut out)
        .with_context(|| format!("cannot render the man page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
    let mut written = 1;
    // clap's own `help` subcommand would add a page per command that only repeats the others.
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        written += write_pages(sub, dir, Some(&name))?;
    }
    Ok(written)
}
