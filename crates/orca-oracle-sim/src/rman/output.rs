//! Where RMAN's output goes (stdout, or only the log file with `log=`), shared by the channel
//! threads, and the shape of RMAN error stacks.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The three banner lines that open every RMAN error stack.
pub const STACK_BANNER: [&str; 3] = [
    "RMAN-00571: ===========================================================",
    "RMAN-00569: =============== ERROR MESSAGE STACK FOLLOWS ===============",
    "RMAN-00571: ===========================================================",
];

struct Inner {
    sink: Box<dyn Write + Send>,
    lines: Vec<String>,
}

/// Line-oriented output shared between the session and its channel threads.
#[derive(Clone)]
pub struct Out {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Out")
    }
}

impl Out {
    /// Output to stdout.
    pub fn stdout() -> Self {
        Self::new(Box::new(io::stdout()))
    }

    /// Output to a log file only, as `rman log=<file> [append]` does.
    pub fn log_file(path: &Path, append: bool) -> io::Result<Self> {
        let f: File = if append {
            OpenOptions::new().create(true).append(true).open(path)?
        } else {
            File::create(path)?
        };
        Ok(Self::new(Box::new(f)))
    }

    fn new(sink: Box<dyn Write + Send>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                sink,
                lines: Vec::new(),
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }

    /// Writes one line.
    pub fn line(&self, s: impl AsRef<str>) {
        let s = s.as_ref();
        self.with(|i| {
            // Output errors (closed pipe, full disk) cannot be reported anywhere better.
            let _ = writeln!(i.sink, "{s}");
            let _ = i.sink.flush();
            i.lines.push(s.to_string());
        });
    }

    /// Writes text without a newline (the `RMAN> ` prompt).
    pub fn prompt(&self, s: &str) {
        self.with(|i| {
            let _ = write!(i.sink, "{s}");
            let _ = i.sink.flush();
        });
    }

    /// Writes an empty line.
    pub fn blank(&self) {
        self.line("");
    }

    /// Writes an RMAN error stack: a blank line, the banner, then `lines`.
    pub fn stack(&self, lines: &[String]) {
        self.blank();
        for b in STACK_BANNER {
            self.line(b);
        }
        for l in lines {
            self.line(l);
        }
    }

    /// Lines written since the last call (for V$RMAN_OUTPUT).
    pub fn take_lines(&self) -> Vec<String> {
        self.with(|i| std::mem::take(&mut i.lines))
    }
}
