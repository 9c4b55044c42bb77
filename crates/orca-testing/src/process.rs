//! Running programs: their output or a panic that names the command line and shows what it
//! printed; waiting for a condition with a deadline; free ports; children killed on drop.

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a finished program printed: stdout, then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `c` to its end; panics only when it cannot be started.
pub fn run(c: &mut Command) -> Output {
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"))
}

/// Runs `c`: whether it succeeded, and what it printed (stdout, then stderr).
pub fn output(c: &mut Command) -> (bool, String) {
    let out = run(c);
    (out.status.success(), text(&out))
}

/// Runs `c`, which must succeed; its stdout. The panic shows the command line, its stdout
/// and its stderr.
pub fn run_ok(c: &mut Command) -> String {
    let out = run(c);
    assert!(out.status.success(), "{c:?} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `ready` every 100 ms until it holds; panics naming `what` after `secs` seconds.
pub fn wait_for(what: &str, secs: u64, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Waits for a child started with `stdout(Stdio::piped())`: whether it succeeded, and its
/// stdout.
pub fn finish(child: &mut Child) -> (bool, String) {
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_string(&mut out)
            .expect("read the child's output");
    }
    (child.wait().expect("wait for the child").success(), out)
}

/// A running child, killed (SIGKILL) and reaped when dropped, so a failed test leaves no
/// server behind.
#[derive(Debug, Default)]
pub struct Guard(Option<Child>);

impl Guard {
    /// Starts `c`.
    pub fn spawn(c: &mut Command) -> Guard {
        Guard::new(
            c.spawn()
                .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}")),
        )
    }

    /// Guards a child started elsewhere.
    pub fn new(child: Child) -> Guard {
        Guard(Some(child))
    }

    /// Its process id while it runs.
    pub fn id(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// kill -9, then wait for it; nothing when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cleanup` (a shell command) when this test process ends, however it ends (a panic
/// that aborts, a kill): for a server shared by the tests of one binary, which no test owns
/// and no destructor stops. A shell waits on a pipe only this process holds open; the
/// kernel closes it at exit, and the shell's read returns.
pub fn on_exit(cleanup: &str) {
    // Held, never waited for: each shell's stdin stays open until this process ends.
    static HELD: Mutex<Vec<Child>> = Mutex::new(Vec::new());
    let mut c = Command::new("sh");
    c.args(["-c", &format!("read _; {cleanup}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));
    HELD.lock().unwrap_or_else(|p| p.into_inner()).push(child);
}

/// `s` quoted for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
