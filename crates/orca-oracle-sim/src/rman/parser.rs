//! Recursive-descent parser for the RMAN subset; errors read like RMAN's RMAN-00558 stack.

use super::ast::*;
use super::lexer::{LexError, Tok, Token, lex};

mod dr;

/// A syntax error, with what RMAN prints for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was found: a keyword, "identifier", "end-of-file", a symbol, ...
    pub found: String,
    /// What would have been accepted.
    pub expecting: Vec<String>,
    /// The offending identifier (RMAN-01008).
    pub bad_identifier: Option<String>,
    pub line: usize,
    pub col: usize,
    /// A lexical error message instead of found/expecting.
    pub lexical: Option<String>,
}

impl ParseError {
    /// The lines under `RMAN-00558`, with the input's name ("standard input" or the cmdfile).
    pub fn rman_lines(&self, source: &str) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(msg) = &self.lexical {
            v.push(format!("RMAN-01006: error signaled during parse: {msg}"));
        } else {
            v.push(format!(
                "RMAN-01009: syntax error: found \"{}\": expecting one of: \"{}\"",
                self.found,
                self.expecting.join(", ")
            ));
            if let Some(id) = &self.bad_identifier {
                v.push(format!("RMAN-01008: the bad identifier was: {id}"));
            }
        }
        v.push(format!(
            "RMAN-01007: at line {} column {} file: {source}",
            self.line, self.col
        ));
        v
    }
}

impl From<LexError> for ParseError {
    fn from(e: LexError) -> Self {
        ParseError {
            found: String::new(),
            expecting: Vec::new(),
            bad_identifier: None,
            line: e.line,
            col: e.col,
            lexical: Some(e.message),
        }
    }
}

/// Words the parser treats as keywords when reporting what it found.
const KEYWORDS: &[&str] = &[
    "AFTER",
    "ALL",
    "ALLOCATE",
    "ALTER",
    "AND",
    "ARCHIVELOG",
    "AS",
    "AUTOBACKUP",
    "BACKED",
    "BACKUP",
    "BACKUPPIECE",
    "BACKUPSET",
    "BEFORE",
    "BETWEEN",
    "BLOCK",
    "CATALOG",
    "CHANNEL",
    "CLEAR",
    "COMMAND",
    "COMPLETED",
    "COMPRESSED",
    "CONFIGURE",
    "CONNECT",
    "CONTROLFILE",
    "COPIES",
    "COPY",
    "CORRUPTION",
    "CROSSCHECK",
    "CUMULATIVE",
    "CURRENT",
    "DATABASE",
    "DATAFILE",
    "DATAFILECOPY",
    "DAYS",
    "DEFAULT",
    "DELETE",
    "DEVICE",
    "DISK",
    "EXIT",
    "EXPIRED",
    "FILESPERSET",
    "FOR",
    "FORCE",
    "FORMAT",
    "FROM",
    "FULL",
    "ID",
    "INCARNATION",
    "INCREMENTAL",
    "INPUT",
    "LEVEL",
    "LIST",
    "MAINTENANCE",
    "MAXDAYS",
    "MAXPIECESIZE",
    "MAXSEQ",
    "MAXSETSIZE",
    "NEWNAME",
    "NOPROMPT",
    "NOT",
    "OBSOLETE",
    "OF",
    "OFF",
    "ON",
    "PARALLELISM",
    "PARMS",
    "PLUS",
    "POLICY",
    "QUIT",
    "RECOVER",
    "RECOVERY",
    "REDUNDANCY",
    "RELEASE",
    "REPORT",
    "RESET",
    "RESTORE",
    "RETENTION",
    "RUN",
    "SCN",
    "SECTION",
    "SEND",
    "SEQUENCE",
    "SET",
    "SHOW",
    "SHUTDOWN",
    "SINCE",
    "SIZE",
    "SPFILE",
    "SQL",
    "START",
    "STARTUP",
    "SUMMARY",
    "SWITCH",
    "TABLESPACE",
    "TAG",
    "THREAD",
    "TIME",
    "TIMES",
    "TO",
    "TYPE",
    "UNTIL",
    "UP",
    "VALIDATE",
    "WINDOW",
    "WITH",
];

const COMMANDS: &[&str] = &[
    "allocate",
    "alter",
    "backup",
    "catalog",
    "configure",
    "crosscheck",
    "delete",
    "exit",
    "list",
    "quit",
    "recover",
    "release",
    "report",
    "reset",
    "restore",
    "run",
    "send",
    "set",
    "show",
    "shutdown",
    "sql",
    "startup",
    "switch",
    "validate",
];

const RUN_COMMANDS: &[&str] = &[
    "allocate",
    "alter",
    "backup",
    "catalog",
    "crosscheck",
    "delete",
    "list",
    "recover",
    "release",
    "report",
    "restore",
    "send",
    "set",
    "shutdown",
    "sql",
    "startup",
    "switch",
    "validate",
    "}",
];

/// Parses a whole script (cmdfile or standard input).
pub fn parse(src: &str) -> Result<Vec<Stmt>, ParseError> {
    let tokens = lex(src)?;
    let mut p = Parser {
        src,
        t: tokens,
        i: 0,
    };
    let mut out = Vec::new();
    while !p.at_end() {
        out.push(p.statement(false)?);
    }
    Ok(out)
}

struct Parser<'a> {
    src: &'a str,
    t: Vec<Token>,
    i: usize,
}

type R<T> = Result<T, ParseError>;

fn up(s: &str) -> String {
    s.to_ascii_uppercase()
}

impl<'a> Parser<'a> {
    fn at_end(&self) -> bool {
        self.i >= self.t.len()
    }

    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i).map(|t| &t.tok)
    }

    fn peek_at(&self, k: usize) -> Option<&Tok> {
        self.t.get(self.i + k).map(|t| &t.tok)
    }

    fn is_kw_at(&self, k: usize, kw: &str) -> bool {
        matches!(self.peek_at(k), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn is_kw(&self, kw: &str) -> bool {
        self.is_kw_at(0, kw)
    }

    fn is_sym(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Sym(c))
    }

    fn accept_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn accept_sym(&mut self, c: char) -> bool {
        if self.is_sym(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn error(&self, expecting: &[&str]) -> ParseError {
        let expecting = expecting.iter().map(|s| s.to_ascii_lowercase()).collect();
        match self.t.get(self.i) {
            None => {
                let (line, col) = self.end_position();
                ParseError {
                    found: "end-of-file".into(),
                    expecting,
                    bad_identifier: None,
                    line,
                    col,
                    lexical: None,
                }
            }
            Some(tok) => {
                let (found, bad) = match &tok.tok {
                    Tok::Word(w) if KEYWORDS.contains(&up(w).as_str()) => {
                        (w.to_ascii_lowercase(), None)
                    }
                    Tok::Word(w) => ("identifier".to_string(), Some(w.clone())),
                    Tok::Int(n) => ("integer".to_string(), Some(n.to_string())),
                    Tok::Str { text, double } => (
                        if *double {
                            "double-quoted-string".to_string()
                        } else {
                            "single-quoted-string".to_string()
                        },
                        Some(text.clone()),
                    ),
                    Tok::Sym(c) => (c.to_string(), None),
                };
                ParseError {
                    found,
                    expecting,
                    bad_identifier: bad,
                    line: tok.line,
                    col: tok.col,
                    lexical: None,
                }
            }
        }
    }

    fn end_position(&self) -> (usize, usize) {
        let line = self.src.lines().count().max(1);
        let col = self.src.lines().last().map_or(1, |l| l.len() + 1);
        (line, col)
    }

    fn expect_kw(&mut self, kw: &str) -> R<()> {
        if self.accept_kw(kw) {
            Ok(())
        } else {
            Err(self.error(&[kw]))
        }
    }

    fn expect_sym(&mut self, c: char) -> R<()> {
        if self.accept_sym(c) {
            Ok(())
        } else {
            Err(self.error(&[&c.to_string()]))
        }
    }

    fn expect_end(&mut self) -> R<()> {
        self.expect_sym(';')
    }

    fn expect_int(&mut self) -> R<u64> {
        match self.peek() {
            Some(Tok::Int(n)) => {
                let n = *n;
                self.i += 1;
                Ok(n)
            }
            _ => Err(self.error(&["integer"])),
        }
    }

    fn expect_u32(&mut self) -> R<u32> {
        let at = self.i;
        let n = self.expect_int()?;
        u32::try_from(n).map_err(|_| {
            self.i = at;
            self.error(&["integer below 4294967296"])
        })
    }

    fn expect_string(&mut self) -> R<String> {
        match self.peek() {
            Some(Tok::Str { text, .. }) => {
                let s = text.clone();
                self.i += 1;
                Ok(s)
            }
            _ => Err(self.error(&["single-quoted-string", "double-quoted-string"])),
        }
    }

    /// An identifier or a quoted string (channel names, tags, tablespace names).
    fn expect_name(&mut self) -> R<String> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let s = w.clone();
                self.i += 1;
                Ok(s)
            }
            Some(Tok::Str { text, .. }) => {
                let s = text.clone();
                self.i += 1;
                Ok(s)
            }
            Some(Tok::Int(n)) => {
                let s = n.to_string();
                self.i += 1;
                Ok(s)
            }
            _ => Err(self.error(&["identifier", "single-quoted-string"])),
        }
    }

    /// Size: `100M`, `100 M`, `1048576`, `2G`, `512K`.
    fn expect_size(&mut self) -> R<u64> {
        let mult = |u: &str| match u.to_ascii_uppercase().as_str() {
            "K" => Some(1u64 << 10),
            "M" => Some(1 << 20),
            "G" => Some(1 << 30),
            "T" => Some(1 << 40),
            _ => None,
        };
        match self.peek().cloned() {
            Some(Tok::Int(n)) => {
                self.i += 1;
                if let Some(Tok::Word(u)) = self.peek()
                    && let Some(m) = mult(u)
                {
                    self.i += 1;
                    return Ok(n.saturating_mul(m));
                }
                Ok(n)
            }
            Some(Tok::Word(w)) => {
                let split = w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len());
                let (num, unit) = w.split_at(split);
                match (num.parse::<u64>(), mult(unit)) {
                    (Ok(n), Some(m)) => {
                        self.i += 1;
                        Ok(n.saturating_mul(m))
                    }
                    _ => Err(self.error(&["integer"])),
                }
            }
            _ => Err(self.error(&["integer"])),
        }
    }

    fn device_type(&mut self) -> R<DeviceType> {
        let at = self.i;
        let name = self.expect_name()?;
        match up(&name).as_str() {
            "DISK" => Ok(DeviceType::Disk),
            "SBT" | "SBT_TAPE" => Ok(DeviceType::Sbt),
            _ => {
                self.i = at;
                Err(self.error(&["disk", "sbt", "sbt_tape"]))
            }
        }
    }

    /// `DEVICE TYPE x` or the older `TYPE x`.
    fn device_clause(&mut self) -> R<DeviceType> {
        self.accept_kw("DEVICE");
        self.expect_kw("TYPE")?;
        self.device_type()
    }

    fn int_list(&mut self) -> R<Vec<u32>> {
        let mut v = vec![self.expect_u32()?];
        while self.accept_sym(',') {
            v.push(self.expect_u32()?);
        }
        Ok(v)
    }

    fn u64_list(&mut self) -> R<Vec<u64>> {
        let mut v = vec![self.expect_int()?];
        while self.accept_sym(',') {
            v.push(self.expect_int()?);
        }
        Ok(v)
    }

    fn name_list(&mut self) -> R<Vec<String>> {
        let mut v = vec![self.expect_name()?];
        while self.accept_sym(',') {
            v.push(self.expect_name()?);
        }
        Ok(v)
    }

    fn string_list(&mut self) -> R<Vec<String>> {
        let mut v = vec![self.expect_string()?];
        while self.accept_sym(',') {
            v.push(self.expect_string()?);
        }
        Ok(v)
    }

    fn time(&mut self) -> R<TimeExpr> {
        Ok(TimeExpr(self.expect_string()?))
    }

    /// Raw source text from the current token up to (not including) the next `;`.
    fn raw_until_semicolon(&mut self) -> R<String> {
        let start = self
            .t
            .get(self.i)
            .map(|t| t.start)
            .ok_or_else(|| self.error(&[";"]))?;
        let mut end = start;
        while let Some(t) = self.t.get(self.i) {
            if t.tok == Tok::Sym(';') {
                break;
            }
            end = t.end;
            self.i += 1;
        }
        self.expect_end()?;
        Ok(self.src[start..end].trim().to_string())
    }

    fn statement(&mut self, in_run: bool) -> R<Stmt> {
        let line = self.t.get(self.i).map_or(1, |t| t.line);
        let expecting = if in_run { RUN_COMMANDS } else { COMMANDS };
        let Some(Tok::Word(w)) = self.peek().cloned() else {
            return Err(self.error(expecting));
        };
        let kw = up(&w);
        if in_run && kw == "RUN" {
            return Err(self.error(expecting));
        }
        self.i += 1;
        let cmd = match kw.as_str() {
            "RUN" => {
                self.expect_sym('{')?;
                let mut body = Vec::new();
                while !self.accept_sym('}') {
                    if self.at_end() {
                        return Err(self.error(&["}"]));
                    }
                    body.push(self.statement(true)?);
                }
                Command::Run(body)
            }
            "ALLOCATE" => self.allocate(in_run)?,
            "RELEASE" => {
                self.expect_kw("CHANNEL")?;
                let name = if self.is_sym(';') {
                    None
                } else {
                    Some(self.expect_name()?)
                };
                self.expect_end()?;
                Command::Release(name)
            }
            "CONFIGURE" if !in_run => Command::Configure(self.configure()?),
            "SET" if self.is_kw("CONTROLFILE") => Command::Set(self.set_autobackup_format()?),
            "SET" => Command::Set(self.set()?),
            "SEND" => self.send()?,
            "BACKUP" if self.is_kw("BACKUPSET") => self.backup_backupset()?,
            "BACKUP" => Command::Backup(Box::new(self.backup()?)),
            "RESTORE" if self.is_kw("CONTROLFILE") || self.is_kw("SPFILE") => {
                Command::Dr(self.restore_file()?)
            }
            "RESTORE" => Command::Restore(self.restore()?),
            "RESET" if !in_run => Command::Dr(self.reset()?),
            "RECOVER" => self.recover()?,
            "BLOCKRECOVER" => Command::BlockRecover(self.block_list()?),
            "SWITCH" => Command::Switch(self.switch()?),
            "VALIDATE" => Command::Validate(self.validate()?),
            "DELETE" => Command::Delete(self.delete()?),
            "CROSSCHECK" => Command::Crosscheck(self.crosscheck()?),
            "LIST" if self.is_kw("INCARNATION") => Command::Dr(self.list_incarnation()?),
            "LIST" => Command::List(self.list()?),
            "REPORT" => Command::Report(self.report()?),
            "CATALOG" => Command::Catalog(self.catalog()?),
            "SQL" => {
                let s = self.expect_string()?;
                self.expect_end()?;
                Command::Sql(s)
            }
            "SHOW" if !in_run => {
                if self.accept_kw("ALL") {
                    self.expect_end()?;
                    Command::Show(None)
                } else {
                    let raw = self.raw_until_semicolon()?;
                    let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
                    if name.is_empty() {
                        return Err(self.error(&["all", "retention", "channel", "device"]));
                    }
                    Command::Show(Some(name.to_ascii_uppercase()))
                }
            }
            "CHANGE" => Command::Change(self.change()?),
            "STARTUP" => {
                let mut force = false;
                let mut mount_only = false;
                let mut nomount = false;
                loop {
                    if self.accept_kw("FORCE") {
                        force = true;
                    } else if self.accept_kw("MOUNT") {
                        mount_only = true;
                    } else if self.accept_kw("NOMOUNT") {
                        nomount = true;
                    } else {
                        break;
                    }
                }
                self.expect_end()?;
                Command::Startup {
                    force,
                    mount_only,
                    nomount,
                }
            }
            "SHUTDOWN" => {
                let mut abort = false;
                if self.accept_kw("ABORT") {
                    abort = true;
                } else {
                    let _ = self.accept_kw("IMMEDIATE")
                        || self.accept_kw("NORMAL")
                        || self.accept_kw("TRANSACTIONAL");
                }
                self.expect_end()?;
                Command::Shutdown { abort }
            }
            "ALTER" => {
                if self.is_kw("DATABASE") && (self.is_kw_at(1, "MOUNT") || self.is_kw_at(1, "OPEN"))
                {
                    self.i += 1;
                    let a = if self.accept_kw("MOUNT") {
                        AlterDatabase::Mount
                    } else {
                        self.expect_kw("OPEN")?;
                        AlterDatabase::Open {
                            resetlogs: self.accept_kw("RESETLOGS"),
                        }
                    };
                    self.expect_end()?;
                    Command::AlterDatabase(a)
                } else {
                    // RMAN 12c+ runs other SQL statements typed directly.
                    self.i -= 1;
                    Command::Sql(self.raw_until_semicolon()?)
                }
            }
            "EXIT" | "QUIT" if !in_run => {
                let _ = self.accept_sym(';');
                Command::Exit
            }
            _ => {
                self.i -= 1;
                return Err(self.error(expecting));
            }
        };
        Ok(Stmt { cmd, line })
    }

    fn allocate(&mut self, in_run: bool) -> R<Command> {
        self.expect_kw("CHANNEL")?;
        let name = if !in_run {
            self.expect_kw("FOR")?;
            self.expect_kw("MAINTENANCE")?;
            None
        } else {
            Some(self.expect_name()?)
        };
        let device = self.device_clause()?;
        let opts = self.channel_options()?;
        self.expect_end()?;
        Ok(Command::Allocate(Allocate { name, device, opts }))
    }

    fn channel_options(&mut self) -> R<ChannelOptions> {
        let mut o = ChannelOptions::default();
        loop {
            if self.accept_kw("PARMS") {
                let _ = self.accept_sym('=');
                o.parms = Some(self.expect_string()?);
            } else if self.accept_kw("FORMAT") {
                let _ = self.accept_sym('=');
                o.formats = self.string_list()?;
            } else if self.accept_kw("MAXPIECESIZE") {
                let _ = self.accept_sym('=');
                o.maxpiecesize = Some(self.expect_size()?);
            } else if self.accept_kw("MAXOPENFILES") {
                let _ = self.accept_sym('=');
                o.maxopenfiles = Some(self.expect_u32()?);
            } else if self.accept_kw("RATE") {
                let _ = self.accept_sym('=');
                o.rate = Some(self.expect_size()?);
            } else if self.accept_kw("SEND") {
                o.send = Some(self.expect_string()?);
            } else if self.accept_kw("CONNECT") {
                let _ = self.accept_sym('=');
                o.connect = Some(self.expect_string()?);
            } else if self.accept_kw("TRACE") {
                let _ = self.accept_sym('=');
                o.trace = Some(self.expect_int()?);
            } else {
                return Ok(o);
            }
        }
    }

    fn configure(&mut self) -> R<Configure> {
        if self.accept_kw("RETENTION") {
            self.expect_kw("POLICY")?;
            if self.accept_kw("CLEAR") {
                self.expect_end()?;
                return Ok(Configure::Retention(None));
            }
            self.expect_kw("TO")?;
            let p = self.retention_policy(true)?;
            self.expect_end()?;
            return Ok(Configure::Retention(Some(p)));
        }
        if self.accept_kw("CHANNEL") {
            let number = if let Some(Tok::Int(_)) = self.peek() {
                Some(self.expect_u32()?)
            } else {
                None
            };
            let device = self.device_clause()?;
            if self.accept_kw("CLEAR") {
                self.expect_end()?;
                return Ok(Configure::Channel {
                    number,
                    device,
                    opts: None,
                });
            }
            let opts = self.channel_options()?;
            self.expect_end()?;
            return Ok(Configure::Channel {
                number,
                device,
                opts: Some(opts),
            });
        }
        if self.accept_kw("DEVICE") {
            self.expect_kw("TYPE")?;
            let device = self.device_type()?;
            if self.accept_kw("CLEAR") {
                self.expect_end()?;
                return Ok(Configure::Device {
                    device,
                    setting: None,
                });
            }
            let mut parallelism = 1;
            let mut backup_type = None;
            let mut any = false;
            loop {
                if self.accept_kw("PARALLELISM") {
                    parallelism = self.expect_u32()?.max(1);
                    any = true;
                } else if self.accept_kw("BACKUP") {
                    self.expect_kw("TYPE")?;
                    self.expect_kw("TO")?;
                    let t = if self.accept_kw("COMPRESSED") {
                        self.expect_kw("BACKUPSET")?;
                        "COMPRESSED BACKUPSET"
                    } else if self.accept_kw("COPY") {
                        "COPY"
                    } else {
                        self.expect_kw("BACKUPSET")?;
                        "BACKUPSET"
                    };
                    backup_type = Some(t.to_string());
                    any = true;
                } else {
                    break;
                }
            }
            if !any {
                return Err(self.error(&["parallelism", "backup", "clear"]));
            }
            self.expect_end()?;
            return Ok(Configure::Device {
                device,
                setting: Some(DeviceSetting {
                    parallelism,
                    backup_type,
                }),
            });
        }
        if self.accept_kw("DEFAULT") {
            self.expect_kw("DEVICE")?;
            self.expect_kw("TYPE")?;
            if self.accept_kw("CLEAR") {
                self.expect_end()?;
                return Ok(Configure::DefaultDevice(None));
            }
            self.expect_kw("TO")?;
            let d = self.device_type()?;
            self.expect_end()?;
            return Ok(Configure::DefaultDevice(Some(d)));
        }
        if self.accept_kw("CONTROLFILE") {
            self.expect_kw("AUTOBACKUP")?;
            if self.accept_kw("FORMAT") {
                self.expect_kw("FOR")?;
                self.expect_kw("DEVICE")?;
                self.expect_kw("TYPE")?;
                let device = self.device_type()?;
                if self.accept_kw("CLEAR") {
                    self.expect_end()?;
                    return Ok(Configure::AutobackupFormat {
                        device,
                        format: None,
                    });
                }
                self.expect_kw("TO")?;
                let f = self.expect_string()?;
                self.expect_end()?;
                return Ok(Configure::AutobackupFormat {
                    device,
                    format: Some(f),
                });
            }
            let v = if self.accept_kw("ON") {
                Some(true)
            } else if self.accept_kw("OFF") {
                Some(false)
            } else {
                self.expect_kw("CLEAR")
                    .map_err(|_| self.error(&["on", "off", "clear", "format"]))?;
                None
            };
            self.expect_end()?;
            return Ok(Configure::ControlfileAutobackup(v));
        }
        if self.accept_kw("EXCLUDE") {
            self.expect_kw("FOR")?;
            self.expect_kw("TABLESPACE")?;
            let tablespace = up(&self.expect_name()?);
            let clear = self.accept_kw("CLEAR");
            self.expect_end()?;
            return Ok(Configure::Exclude { tablespace, clear });
        }
        // Accepted without effect: keep the words as Oracle shows them.
        let start = self.i;
        let raw = self.raw_until_semicolon()?;
        let words: Vec<&str> = raw.split_whitespace().collect();
        let known: &[&[&str]] = &[
            &["BACKUP", "OPTIMIZATION"],
            &["SNAPSHOT", "CONTROLFILE", "NAME"],
            &["ARCHIVELOG", "DELETION", "POLICY"],
            &["COMPRESSION", "ALGORITHM"],
            &["ENCRYPTION", "FOR", "DATABASE"],
            &["ENCRYPTION", "ALGORITHM"],
            &["MAXSETSIZE"],
            &["DATAFILE", "BACKUP", "COPIES", "FOR", "DEVICE", "TYPE"],
            &["ARCHIVELOG", "BACKUP", "COPIES", "FOR", "DEVICE", "TYPE"],
            &["RMAN", "OUTPUT"],
        ];
        for k in known {
            if words.len() > k.len()
                && words
                    .iter()
                    .zip(k.iter())
                    .all(|(a, b)| a.eq_ignore_ascii_case(b))
            {
                let name = k.join(" ");
                let rest = words[k.len()..].join(" ");
                let value = if rest.eq_ignore_ascii_case("CLEAR") {
                    None
                } else if rest.contains(['\'', '"']) {
                    Some(rest)
                } else {
                    // Keywords read back as Oracle shows them: `ON`, `TO 2`, `SBT TO 2`.
                    Some(rest.to_ascii_uppercase())
                };
                return Ok(Configure::Other { name, value });
            }
        }
        self.i = start;
        Err(self.error(&[
            "archivelog",
            "backup",
            "channel",
            "compression",
            "controlfile",
            "default",
            "device",
            "encryption",
            "maxsetsize",
            "retention",
            "snapshot",
        ]))
    }

    fn retention_policy(&mut self, allow_none: bool) -> R<RetentionPolicy> {
        if self.accept_kw("RECOVERY") {
            self.expect_kw("WINDOW")?;
            self.expect_kw("OF")?;
            let n = self.expect_u32()?;
            self.expect_kw("DAYS")?;
            Ok(RetentionPolicy::RecoveryWindow(n))
        } else if self.accept_kw("REDUNDANCY") {
            Ok(RetentionPolicy::Redundancy(self.expect_u32()?.max(1)))
        } else if allow_none && self.accept_kw("NONE") {
            Ok(RetentionPolicy::None)
        } else {
            Err(self.error(&["recovery", "redundancy", "none"]))
        }
    }

    fn set(&mut self) -> R<SetCmd> {
        let s = if self.accept_kw("COMMAND") {
            self.expect_kw("ID")?;
            self.expect_kw("TO")?;
            SetCmd::CommandId(self.expect_name()?)
        } else if self.accept_kw("UNTIL") {
            SetCmd::Until(self.until_body()?)
        } else if self.accept_kw("DBID") {
            let _ = self.accept_sym('=');
            SetCmd::Dbid(self.expect_int()?)
        } else if self.accept_kw("NEWNAME") {
            SetCmd::Newname(self.newname()?)
        } else if self.accept_kw("ECHO") {
            if self.accept_kw("ON") {
                SetCmd::Echo(true)
            } else {
                self.expect_kw("OFF")?;
                SetCmd::Echo(false)
            }
        } else if self.accept_kw("ENCRYPTION") {
            if self.accept_kw("OFF") {
                SetCmd::Encryption(None)
            } else {
                self.expect_kw("ON")?;
                let password = if self.accept_kw("IDENTIFIED") {
                    self.expect_kw("BY")?;
                    Some(self.expect_name()?)
                } else {
                    None
                };
                let only = password.is_some() && self.accept_kw("ONLY");
                if self.accept_kw("FOR") {
                    self.expect_kw("ALL")?;
                    self.expect_kw("TABLESPACES")?;
                }
                SetCmd::Encryption(Some(EncryptionSet { password, only }))
            }
        } else if self.accept_kw("DECRYPTION") {
            self.expect_kw("IDENTIFIED")?;
            self.expect_kw("BY")?;
            let mut v = vec![self.expect_name()?];
            while self.accept_sym(',') {
                v.push(self.expect_name()?);
            }
            SetCmd::Decryption(v)
        } else {
            return Err(self.error(&[
                "command",
                "dbid",
                "decryption",
                "echo",
                "encryption",
                "newname",
                "until",
            ]));
        };
        self.expect_end()?;
        Ok(s)
    }

    /// After UNTIL: TIME 'x' | SCN n | SEQUENCE n THREAD t.
    fn until_body(&mut self) -> R<Until> {
        if self.accept_kw("TIME") {
            let _ = self.accept_sym('=');
            Ok(Until::Time(self.time()?))
        } else if self.accept_kw("SCN") {
            let _ = self.accept_sym('=');
            Ok(Until::Scn(self.expect_int()?))
        } else if self.accept_kw("SEQUENCE") {
            let _ = self.accept_sym('=');
            let sequence = self.expect_int()?;
            let thread = if self.accept_kw("THREAD") {
                let _ = self.accept_sym('=');
                self.expect_u32()?
            } else {
                1
            };
            Ok(Until::Sequence { sequence, thread })
        } else {
            Err(self.error(&["time", "scn", "sequence"]))
        }
    }

    fn send(&mut self) -> R<Command> {
        let mut channel = None;
        let mut device = None;
        if self.accept_kw("CHANNEL") {
            channel = Some(self.expect_name()?);
        } else if self.is_kw("DEVICE") {
            device = Some(self.device_clause()?);
        }
        let text = self.expect_string()?;
        if self.accept_kw("PARMS") {
            self.expect_string()?;
        }
        self.expect_end()?;
        Ok(Command::Send {
            channel,
            device,
            text,
        })
    }

    fn archivelog_range(&mut self) -> R<ArchivelogRange> {
        // `ALL COMPLETED BEFORE 'SYSDATE-7'` is how DBA scripts commonly prune logs.
        if self.accept_kw("ALL") && !self.is_kw("COMPLETED") {
            return Ok(ArchivelogRange::All);
        }
        let mut from_seq = None;
        let mut until_seq = None;
        let mut thread = None;
        let mut from_scn = None;
        let mut until_scn = None;
        let mut from_time = None;
        let mut until_time = None;
        let mut completed_after = None;
        let mut completed_before = None;
        let mut any = false;
        loop {
            if self.accept_kw("COMPLETED") {
                if self.accept_kw("AFTER") {
                    completed_after = Some(self.time()?);
                } else if self.accept_kw("BEFORE") {
                    completed_before = Some(self.time()?);
                } else {
                    self.expect_kw("BETWEEN")
                        .map_err(|_| self.error(&["after", "before", "between"]))?;
                    completed_after = Some(self.time()?);
                    self.expect_kw("AND")?;
                    completed_before = Some(self.time()?);
                }
            } else if self.accept_kw("FROM") {
                if self.accept_kw("SEQUENCE") {
                    from_seq = Some(self.expect_int()?);
                } else if self.accept_kw("SCN") {
                    from_scn = Some(self.expect_int()?);
                } else {
                    self.expect_kw("TIME")
                        .map_err(|_| self.error(&["sequence", "scn", "time"]))?;
                    from_time = Some(self.time()?);
                }
            } else if self.accept_kw("UNTIL") {
                if self.accept_kw("SEQUENCE") {
                    until_seq = Some(self.expect_int()?);
                } else if self.accept_kw("SCN") {
                    until_scn = Some(self.expect_int()?);
                } else {
                    self.expect_kw("TIME")
                        .map_err(|_| self.error(&["sequence", "scn", "time"]))?;
                    until_time = Some(self.time()?);
                }
            } else if self.accept_kw("SEQUENCE") {
                if self.accept_kw("BETWEEN") {
                    from_seq = Some(self.expect_int()?);
                    self.expect_kw("AND")?;
                    until_seq = Some(self.expect_int()?);
                } else {
                    let n = self.expect_int()?;
                    from_seq = Some(n);
                    until_seq = Some(n);
                }
            } else if any && self.accept_kw("THREAD") {
                let _ = self.accept_sym('=');
                thread = Some(self.expect_u32()?);
            } else {
                break;
            }
            any = true;
        }
        if !any {
            return Err(self.error(&["all", "from", "sequence", "until"]));
        }
        Ok(if completed_after.is_some() || completed_before.is_some() {
            ArchivelogRange::Completed {
                after: completed_after,
                before: completed_before,
            }
        } else if from_scn.is_some() || until_scn.is_some() {
            ArchivelogRange::Scn {
                from: from_scn,
                until: until_scn,
            }
        } else if from_time.is_some() || until_time.is_some() {
            ArchivelogRange::Time {
                from: from_time,
                until: until_time,
            }
        } else {
            ArchivelogRange::Sequence {
                from: from_seq,
                until: until_seq,
                thread,
            }
        })
    }

    /// A backup object, if one starts here.
    fn backup_object(&mut self) -> R<Option<BackupObject>> {
        Ok(Some(if self.accept_kw("DATABASE") {
            BackupObject::Database
        } else if self.accept_kw("DATAFILE") {
            BackupObject::Datafile(self.int_list()?)
        } else if self.accept_kw("TABLESPACE") {
            BackupObject::Tablespace(self.name_list()?)
        } else if self.accept_kw("ARCHIVELOG") {
            BackupObject::Archivelog(self.archivelog_range()?)
        } else if self.is_kw("CURRENT") && self.is_kw_at(1, "CONTROLFILE") {
            self.i += 2;
            BackupObject::CurrentControlfile
        } else if self.accept_kw("SPFILE") {
            BackupObject::Spfile
        } else {
            return Ok(None);
        }))
    }

    /// What follows OF in LIST, CROSSCHECK and DELETE BACKUP: these name the control file
    /// without CURRENT.
    fn backed_up_object(&mut self) -> R<BackupObject> {
        if self.accept_kw("CONTROLFILE") {
            return Ok(BackupObject::CurrentControlfile);
        }
        self.backup_object()?.ok_or_else(|| {
            self.error(&[
                "archivelog",
                "controlfile",
                "database",
                "datafile",
                "spfile",
                "tablespace",
            ])
        })
    }

    /// A backup operand, if one starts here.
    fn backup_operand(&mut self, o: &mut BackupOpts) -> R<bool> {
        if self.accept_kw("FILESPERSET") {
            let _ = self.accept_sym('=');
            o.filesperset = Some(self.expect_u32()?.max(1));
        } else if self.is_kw("SECTION") {
            self.i += 1;
            self.expect_kw("SIZE")?;
            let _ = self.accept_sym('=');
            o.section_size = Some(self.expect_size()?);
        } else if self.accept_kw("MAXSETSIZE") {
            let _ = self.accept_sym('=');
            o.maxsetsize = Some(self.expect_size()?);
        } else if self.accept_kw("TAG") {
            let _ = self.accept_sym('=');
            o.tag = Some(up(&self.expect_name()?));
        } else if self.accept_kw("FORCE") {
            o.force = true;
        } else if self.accept_kw("NOEXCLUDE") {
            o.noexclude = true;
        } else if self.accept_kw("FORMAT") {
            let _ = self.accept_sym('=');
            o.formats = self.string_list()?;
        } else if self.is_kw("NOT") && self.is_kw_at(1, "BACKED") {
            self.i += 2;
            self.expect_kw("UP")?;
            o.not_backed_up = Some(if self.accept_kw("SINCE") {
                self.expect_kw("TIME")?;
                let _ = self.accept_sym('=');
                NotBackedUp::Since(self.time()?)
            } else if let Some(Tok::Int(_)) = self.peek() {
                let n = self.expect_u32()?;
                self.expect_kw("TIMES")?;
                NotBackedUp::Times(n)
            } else {
                NotBackedUp::Ever
            });
        } else if self.is_kw("DELETE")
            && (self.is_kw_at(1, "INPUT") || (self.is_kw_at(1, "ALL") && self.is_kw_at(2, "INPUT")))
        {
            self.i += 1;
            let all = self.accept_kw("ALL");
            self.expect_kw("INPUT")?;
            o.delete_input = Some(all);
        } else if self.accept_kw("COPIES") {
            let _ = self.accept_sym('=');
            o.copies = Some(self.expect_u32()?.clamp(1, 4));
        } else if self.accept_kw("POOL") {
            let _ = self.accept_sym('=');
            o.pool = Some(self.expect_u32()?);
        } else if self.accept_kw("NOKEEP") {
            o.keep = None;
        } else if self.accept_kw("KEEP") {
            let until = if self.accept_kw("FOREVER") {
                None
            } else {
                self.expect_kw("UNTIL")
                    .map_err(|_| self.error(&["forever", "until"]))?;
                self.expect_kw("TIME")?;
                let _ = self.accept_sym('=');
                Some(self.time()?)
            };
            let logs = if self.accept_kw("LOGS") {
                Some(true)
            } else if self.accept_kw("NOLOGS") {
                Some(false)
            } else {
                None
            };
            let restore_point = if self.is_kw("RESTORE") && self.is_kw_at(1, "POINT") {
                self.i += 2;
                Some(up(&self.expect_name()?))
            } else {
                None
            };
            o.keep = Some(Keep {
                until,
                logs,
                restore_point,
            });
        } else if self.is_kw("INCLUDE") {
            self.i += 1;
            self.expect_kw("CURRENT")?;
            self.expect_kw("CONTROLFILE")?;
            o.include_controlfile = true;
        } else if self.is_kw("SKIP") {
            self.i += 1;
            let _ = self.accept_kw("INACCESSIBLE")
                || self.accept_kw("OFFLINE")
                || self.accept_kw("READONLY");
            o.skip_inaccessible = true;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// A backup object; DATAFILE also takes quoted file names.
    fn backup_spec(&mut self) -> R<Option<BackupSpec>> {
        let mut spec = BackupSpec {
            object: BackupObject::Database,
            opts: BackupOpts::default(),
            datafile_names: Vec::new(),
        };
        if self.is_kw("DATAFILE") && matches!(self.peek_at(1), Some(Tok::Str { .. })) {
            self.i += 1;
            let mut numbers = Vec::new();
            loop {
                match self.peek().cloned() {
                    Some(Tok::Str { text, .. }) => {
                        self.i += 1;
                        spec.datafile_names.push(text);
                    }
                    _ => numbers.push(self.expect_u32()?),
                }
                if !self.accept_sym(',') {
                    break;
                }
            }
            spec.object = BackupObject::Datafile(numbers);
            return Ok(Some(spec));
        }
        Ok(self
            .backup_object()?
            .map(|object| BackupSpec { object, ..spec }))
    }

    fn backup_backupset(&mut self) -> R<Command> {
        self.expect_kw("BACKUPSET")?;
        let sets = if self.accept_kw("ALL") {
            None
        } else {
            Some(self.u64_list()?)
        };
        let mut formats = Vec::new();
        if self.accept_kw("FORMAT") {
            let _ = self.accept_sym('=');
            formats = self.string_list()?;
        }
        self.expect_end()?;
        Ok(Command::BackupBackupset { sets, formats })
    }

    fn change(&mut self) -> R<Change> {
        let what = if self.accept_kw("BACKUPSET") {
            ChangeWhat::Backupset(self.u64_list()?)
        } else if self.accept_kw("BACKUPPIECE") {
            ChangeWhat::Backuppiece(self.piece_refs()?)
        } else {
            return Err(self.error(&["backupset", "backuppiece"]));
        };
        let action = if self.accept_kw("UNAVAILABLE") {
            ChangeAction::Unavailable
        } else if self.accept_kw("AVAILABLE") {
            ChangeAction::Available
        } else if self.accept_kw("UNCATALOG") {
            ChangeAction::Uncatalog
        } else if self.accept_kw("NOKEEP") {
            ChangeAction::Nokeep
        } else if self.accept_kw("KEEP") {
            let until = if self.accept_kw("FOREVER") {
                None
            } else {
                self.expect_kw("UNTIL")
                    .map_err(|_| self.error(&["forever", "until"]))?;
                self.expect_kw("TIME")?;
                let _ = self.accept_sym('=');
                Some(self.time()?)
            };
            let _ = self.accept_kw("LOGS") || self.accept_kw("NOLOGS");
            ChangeAction::Keep(until)
        } else {
            return Err(self.error(&["available", "keep", "nokeep", "uncatalog", "unavailable"]));
        };
        self.expect_end()?;
        Ok(Change { what, action })
    }

    fn backup(&mut self) -> R<Backup> {
        let mut b = Backup::default();
        // Operands that must precede the objects.
        loop {
            if self.is_kw("INCREMENTAL") && self.is_kw_at(1, "FROM") {
                self.i += 2;
                self.expect_kw("SCN")?;
                let _ = self.accept_sym('=');
                b.from_scn = Some(self.expect_int()?);
            } else if self.accept_kw("INCREMENTAL") {
                self.expect_kw("LEVEL")?;
                let _ = self.accept_sym('=');
                let at = self.i;
                let level = self.expect_int()?;
                if level > 1 {
                    self.i = at;
                    return Err(self.error(&["0", "1"]));
                }
                let cumulative = self.accept_kw("CUMULATIVE");
                b.incremental = Some(Incremental {
                    level: level as u8,
                    cumulative,
                });
            } else if self.accept_kw("FULL") {
            } else if self.accept_kw("CUMULATIVE") {
                if let Some(i) = b.incremental.as_mut() {
                    i.cumulative = true;
                }
            } else if self.accept_kw("AS") {
                if self.accept_kw("COPY") {
                    b.as_copy = true;
                } else {
                    b.compressed = Some(self.accept_kw("COMPRESSED"));
                    self.expect_kw("BACKUPSET")?;
                }
            } else if self.accept_kw("VALIDATE") {
                b.validate = true;
            } else if self.is_kw("CHECK") && self.is_kw_at(1, "LOGICAL") {
                // The simulator's block check already covers what CHECK LOGICAL adds.
                self.i += 2;
            } else if self.is_kw("FOR") {
                self.i += 1;
                self.expect_kw("RECOVER")?;
                self.expect_kw("OF")?;
                self.expect_kw("COPY")?;
                let mut tag = None;
                if self.accept_kw("WITH") {
                    self.expect_kw("TAG")?;
                    tag = Some(up(&self.expect_name()?));
                } else if self.accept_kw("TAG") {
                    tag = Some(up(&self.expect_name()?));
                }
                if self.accept_kw("DATAFILECOPY") {
                    self.expect_kw("FORMAT")?;
                    b.datafilecopy_format = Some(self.expect_string()?);
                }
                b.recover_of_copy = Some(tag);
            } else if self.is_kw("DEVICE") {
                b.device = Some(self.device_clause()?);
            } else if self.accept_kw("CHANNEL") {
                b.opts.channel = Some(self.expect_name()?);
            } else if !self.backup_operand(&mut b.opts)? {
                break;
            }
        }
        // Objects, each with its own operands.
        let mut plus = false;
        loop {
            if self.is_kw("PLUS") && self.is_kw_at(1, "ARCHIVELOG") {
                self.i += 2;
                plus = true;
                let mut o = BackupOpts::default();
                while self.backup_operand(&mut o)? {}
                b.plus_archivelog = Some(o);
                continue;
            }
            // `(object operands [CHANNEL c])`: one spec in parentheses, as Oracle writes them.
            let paren = !plus && self.accept_sym('(');
            if let Some(mut spec) = self.backup_spec()? {
                if plus {
                    return Err(self.error(&[";"]));
                }
                loop {
                    if paren && self.accept_kw("CHANNEL") {
                        spec.opts.channel = Some(self.expect_name()?);
                    } else if !self.backup_operand(&mut spec.opts)? {
                        break;
                    }
                }
                if paren {
                    self.expect_sym(')')?;
                }
                b.specs.push(spec);
                continue;
            }
            if paren {
                return Err(self.error(&["archivelog", "database", "datafile", "tablespace"]));
            }
            break;
        }
        if b.specs.is_empty() {
            return Err(self.error(&[
                "archivelog",
                "current",
                "database",
                "datafile",
                "spfile",
                "tablespace",
            ]));
        }
        self.expect_end()?;
        Ok(b)
    }

    fn restore(&mut self) -> R<Restore> {
        let object = if self.accept_kw("DATABASE") {
            RestoreObject::Database
        } else if self.accept_kw("DATAFILE") {
            RestoreObject::Datafile(self.int_list()?)
        } else if self.accept_kw("TABLESPACE") {
            RestoreObject::Tablespace(self.name_list()?)
        } else if self.accept_kw("ARCHIVELOG") {
            RestoreObject::Archivelog(self.archivelog_range()?)
        } else {
            return Err(self.error(&["archivelog", "database", "datafile", "tablespace"]));
        };
        let mut r = Restore {
            object,
            from_tag: None,
            validate: false,
            preview: false,
            preview_summary: false,
            until: None,
        };
        loop {
            if self.accept_kw("FROM") {
                self.expect_kw("TAG")?;
                let _ = self.accept_sym('=');
                r.from_tag = Some(up(&self.expect_name()?));
            } else if self.accept_kw("VALIDATE") {
                r.validate = true;
            } else if self.accept_kw("PREVIEW") {
                r.preview = true;
                r.preview_summary = self.accept_kw("SUMMARY");
            } else if self.accept_kw("UNTIL") {
                r.until = Some(self.until_body()?);
            } else {
                break;
            }
        }
        self.expect_end()?;
        Ok(r)
    }

    fn recover(&mut self) -> R<Command> {
        if self.accept_kw("COPY") {
            self.expect_kw("OF")?;
            let datafiles = if self.accept_kw("DATABASE") {
                None
            } else {
                self.expect_kw("DATAFILE")
                    .map_err(|_| self.error(&["database", "datafile"]))?;
                Some(self.int_list()?)
            };
            let mut tag = None;
            let mut until = None;
            loop {
                if self.accept_kw("WITH") {
                    self.expect_kw("TAG")?;
                    tag = Some(up(&self.expect_name()?));
                } else if self.accept_kw("TAG") {
                    tag = Some(up(&self.expect_name()?));
                } else if self.accept_kw("UNTIL") {
                    self.expect_kw("TIME")?;
                    let _ = self.accept_sym('=');
                    until = Some(self.time()?);
                } else {
                    break;
                }
            }
            self.expect_end()?;
            return Ok(Command::RecoverCopy {
                datafiles,
                tag,
                until,
            });
        }
        if self.is_kw("CORRUPTION") || (self.is_kw("DATAFILE") && self.is_kw_at(2, "BLOCK")) {
            return Ok(Command::BlockRecover(self.block_list()?));
        }
        let object = if self.accept_kw("DATABASE") {
            RecoverObject::Database
        } else if self.accept_kw("DATAFILE") {
            RecoverObject::Datafile(self.int_list()?)
        } else if self.accept_kw("TABLESPACE") {
            RecoverObject::Tablespace(self.name_list()?)
        } else {
            return Err(self.error(&["copy", "database", "datafile", "tablespace"]));
        };
        let mut r = Recover {
            object,
            until: None,
            noredo: false,
            delete_archivelog: false,
        };
        loop {
            if self.accept_kw("UNTIL") {
                r.until = Some(self.until_body()?);
            } else if self.accept_kw("NOREDO") {
                r.noredo = true;
            } else if self.is_kw("DELETE") && self.is_kw_at(1, "ARCHIVELOG") {
                self.i += 2;
                r.delete_archivelog = true;
            } else {
                break;
            }
        }
        self.expect_end()?;
        Ok(Command::Recover(r))
    }

    fn validate(&mut self) -> R<Validate> {
        if self.is_kw("CHECK") && self.is_kw_at(1, "LOGICAL") {
            self.i += 2;
        }
        let v = if self.accept_kw("DATABASE") {
            Validate::Database
        } else if self.accept_kw("DATAFILE") {
            Validate::Datafile(self.int_list()?)
        } else if self.accept_kw("TABLESPACE") {
            Validate::Tablespace(self.name_list()?)
        } else if self.accept_kw("BACKUPSET") {
            Validate::Backupset(self.u64_list()?)
        } else {
            return Err(self.error(&["backupset", "database", "datafile", "tablespace"]));
        };
        self.expect_end()?;
        Ok(v)
    }

    /// After SET NEWNAME: FOR DATAFILE n|'name' | FOR TABLESPACE t | FOR DATABASE, then
    /// TO 'name' | TO NEW.
    fn newname(&mut self) -> R<super::newname::Newname> {
        use super::newname::{Newname, NewnameTarget};
        self.expect_kw("FOR")?;
        let target = if self.accept_kw("DATAFILE") {
            if let Some(Tok::Str { .. }) = self.peek() {
                NewnameTarget::DatafileName(self.expect_string()?)
            } else {
                NewnameTarget::Datafile(self.expect_u32()?)
            }
        } else if self.accept_kw("TABLESPACE") {
            NewnameTarget::Tablespace(up(&self.expect_name()?))
        } else if self.accept_kw("DATABASE") {
            NewnameTarget::Database
        } else {
            return Err(self.error(&["database", "datafile", "tablespace"]));
        };
        self.expect_kw("TO")?;
        let to = if self.accept_kw("NEW") {
            None
        } else {
            Some(self.expect_string()?)
        };
        Ok(Newname { target, to })
    }

    /// SWITCH DATAFILE ALL | SWITCH DATAFILE n[,m] [TO COPY] | SWITCH DATABASE TO COPY.
    fn switch(&mut self) -> R<super::newname::Switch> {
        use super::newname::Switch;
        let s = if self.accept_kw("DATABASE") {
            self.expect_kw("TO")?;
            self.expect_kw("COPY")?;
            Switch::ToCopy(None)
        } else {
            self.expect_kw("DATAFILE")
                .map_err(|_| self.error(&["database", "datafile"]))?;
            if self.accept_kw("ALL") {
                Switch::Newnames(None)
            } else {
                let files = self.int_list()?;
                if self.accept_kw("TO") {
                    self.expect_kw("COPY")?;
                    Switch::ToCopy(Some(files))
                } else {
                    Switch::Newnames(Some(files))
                }
            }
        };
        self.expect_end()?;
        Ok(s)
    }

    /// CORRUPTION LIST | DATAFILE n BLOCK m[, m...] [DATAFILE n BLOCK ...] (RECOVER and
    /// the older BLOCKRECOVER).
    fn block_list(&mut self) -> R<super::blockrecover::BlockRecover> {
        use super::blockrecover::BlockRecover;
        if self.accept_kw("CORRUPTION") {
            self.expect_kw("LIST")?;
            self.expect_end()?;
            return Ok(BlockRecover::CorruptionList);
        }
        let mut blocks = Vec::new();
        while self.accept_kw("DATAFILE") {
            let file = self.expect_u32()?;
            self.expect_kw("BLOCK")?;
            blocks.push((file, self.int_list()?));
        }
        if blocks.is_empty() {
            return Err(self.error(&["corruption", "datafile"]));
        }
        self.expect_end()?;
        Ok(BlockRecover::Blocks(blocks))
    }

    fn piece_refs(&mut self) -> R<Vec<PieceRef>> {
        let mut v = Vec::new();
        loop {
            match self.peek().cloned() {
                Some(Tok::Str { text, .. }) => {
                    self.i += 1;
                    v.push(PieceRef::Handle(text));
                }
                Some(Tok::Int(n)) => {
                    self.i += 1;
                    v.push(PieceRef::Key(n));
                }
                _ => return Err(self.error(&["integer", "single-quoted-string"])),
            }
            if !self.accept_sym(',') {
                return Ok(v);
            }
        }
    }

    fn optional_device(&mut self) -> R<Option<DeviceType>> {
        if self.is_kw("DEVICE") {
            Ok(Some(self.device_clause()?))
        } else {
            Ok(None)
        }
    }

    fn delete(&mut self) -> R<Delete> {
        let mut noprompt = false;
        let mut force = false;
        loop {
            if self.accept_kw("NOPROMPT") {
                noprompt = true;
            } else if self.accept_kw("FORCE") {
                force = true;
            } else {
                break;
            }
        }
        let mut device = None;
        let what = if self.accept_kw("BACKUPPIECE") {
            DeleteWhat::Backuppiece(self.piece_refs()?)
        } else if self.accept_kw("BACKUPSET") {
            DeleteWhat::Backupset(self.u64_list()?)
        } else if self.accept_kw("OBSOLETE") {
            let p = if self.is_kw("RECOVERY") || self.is_kw("REDUNDANCY") {
                Some(self.retention_policy(false)?)
            } else {
                None
            };
            DeleteWhat::Obsolete(p)
        } else if self.accept_kw("EXPIRED") {
            let k = self.list_kind()?;
            DeleteWhat::Expired(k)
        } else if self.accept_kw("BACKUP") {
            let mut tag = None;
            let mut of = None;
            loop {
                if self.accept_kw("TAG") {
                    let _ = self.accept_sym('=');
                    tag = Some(up(&self.expect_name()?));
                } else if self.is_kw("DEVICE") {
                    device = Some(self.device_clause()?);
                } else if self.accept_kw("OF") {
                    of = Some(self.backed_up_object()?);
                } else {
                    break;
                }
            }
            DeleteWhat::Backup { tag, of }
        } else if self.accept_kw("ARCHIVELOG") {
            let range = self.archivelog_range()?;
            let mut backed_up = None;
            if self.accept_kw("BACKED") {
                self.expect_kw("UP")?;
                let n = self.expect_u32()?;
                self.expect_kw("TIMES")?;
                self.expect_kw("TO")?;
                let d = self.device_clause()?;
                backed_up = Some((n, Some(d)));
            }
            DeleteWhat::Archivelog { range, backed_up }
        } else if self.accept_kw("COPY") || self.accept_kw("DATAFILECOPY") {
            let mut tag = None;
            let mut files = None;
            loop {
                if self.accept_kw("TAG") {
                    let _ = self.accept_sym('=');
                    tag = Some(up(&self.expect_name()?));
                } else if self.accept_kw("ALL") {
                } else if self.accept_kw("OF") {
                    if self.accept_kw("DATAFILE") {
                        files = Some(self.int_list()?);
                    } else {
                        self.expect_kw("DATABASE")
                            .map_err(|_| self.error(&["database", "datafile"]))?;
                    }
                } else {
                    break;
                }
            }
            DeleteWhat::Copy { tag, files }
        } else {
            return Err(self.error(&[
                "archivelog",
                "backup",
                "backuppiece",
                "backupset",
                "copy",
                "expired",
                "obsolete",
            ]));
        };
        if device.is_none() {
            device = self.optional_device()?;
        }
        self.expect_end()?;
        Ok(Delete {
            noprompt,
            force,
            what,
            device,
        })
    }

    fn list_kind(&mut self) -> R<ListKind> {
        if self.accept_kw("BACKUP") || self.accept_kw("BACKUPSET") {
            Ok(ListKind::Backup)
        } else if self.accept_kw("ARCHIVELOG") {
            Ok(ListKind::Archivelog(self.archivelog_range()?))
        } else if self.accept_kw("COPY") {
            Ok(ListKind::Copy)
        } else {
            Err(self.error(&["archivelog", "backup", "copy"]))
        }
    }

    fn crosscheck(&mut self) -> R<Crosscheck> {
        let mut c = Crosscheck {
            kind: ListKind::Backup,
            pieces: Vec::new(),
            tag: None,
            of: None,
            device: None,
        };
        if self.accept_kw("BACKUPPIECE") {
            c.pieces = self.piece_refs()?;
        } else {
            c.kind = self.list_kind()?;
            loop {
                if self.accept_kw("TAG") {
                    let _ = self.accept_sym('=');
                    c.tag = Some(up(&self.expect_name()?));
                } else if self.accept_kw("OF") {
                    c.of = Some(self.backed_up_object()?);
                } else if self.is_kw("DEVICE") {
                    c.device = Some(self.device_clause()?);
                } else {
                    break;
                }
            }
        }
        self.expect_end()?;
        Ok(c)
    }

    fn list(&mut self) -> R<List> {
        if self.accept_kw("COPY") || self.accept_kw("DATAFILECOPY") {
            let _ = self.accept_kw("ALL")
                || (self.accept_kw("OF")
                    && (self.accept_kw("DATABASE")
                        || self.accept_kw("DATAFILE") && self.int_list().is_ok()));
            self.expect_end()?;
            return Ok(List::Copy);
        }
        if self.accept_kw("ARCHIVELOG") {
            let r = self.archivelog_range()?;
            self.expect_end()?;
            return Ok(List::Archivelog(r));
        }
        let expired = self.accept_kw("EXPIRED");
        if expired && self.accept_kw("ARCHIVELOG") {
            let r = self.archivelog_range()?;
            self.expect_end()?;
            return Ok(List::ExpiredArchivelog(r));
        }
        let mut sets = Vec::new();
        if self.accept_kw("BACKUPSET") {
            if let Some(Tok::Int(_)) = self.peek() {
                sets = self.u64_list()?;
            }
        } else {
            self.expect_kw("BACKUP").map_err(|_| {
                self.error(&["archivelog", "backup", "backupset", "copy", "expired"])
            })?;
        }
        let mut summary = false;
        let mut of = None;
        let mut tag = None;
        let mut device = None;
        let mut recoverable = false;
        loop {
            if self.accept_kw("SUMMARY") {
                summary = true;
            } else if self.accept_kw("RECOVERABLE") {
                recoverable = true;
            } else if self.accept_kw("OF") {
                of = Some(self.backed_up_object()?);
            } else if self.accept_kw("TAG") {
                let _ = self.accept_sym('=');
                tag = Some(up(&self.expect_name()?));
            } else if self.is_kw("DEVICE") {
                device = Some(self.device_clause()?);
            } else if self.accept_kw("BY") {
                let _ = self.accept_kw("FILE") || self.accept_kw("BACKUP");
            } else {
                break;
            }
        }
        self.expect_end()?;
        Ok(List::Backup {
            summary,
            expired,
            of,
            tag,
            sets,
            device,
            recoverable,
        })
    }

    fn report(&mut self) -> R<Report> {
        if self.accept_kw("SCHEMA") {
            self.expect_end()?;
            return Ok(Report::Schema);
        }
        if self.accept_kw("UNRECOVERABLE") {
            let _ = self.accept_kw("DATABASE");
            self.expect_end()?;
            return Ok(Report::Unrecoverable);
        }
        if self.accept_kw("NEED") {
            self.expect_kw("BACKUP")?;
            let need = if self.accept_kw("DAYS") {
                let _ = self.accept_sym('=');
                Some(NeedBackup::Days(self.expect_u32()?))
            } else if self.is_kw("RECOVERY") || self.is_kw("REDUNDANCY") {
                Some(match self.retention_policy(false)? {
                    RetentionPolicy::RecoveryWindow(n) => NeedBackup::Window(n),
                    RetentionPolicy::Redundancy(n) => NeedBackup::Redundancy(n),
                    RetentionPolicy::None => NeedBackup::Redundancy(1),
                })
            } else {
                None
            };
            let _ = self.accept_kw("DATABASE");
            self.expect_end()?;
            return Ok(Report::NeedBackup(need));
        }
        self.expect_kw("OBSOLETE")
            .map_err(|_| self.error(&["need", "obsolete", "schema"]))?;
        let policy = if self.is_kw("RECOVERY") || self.is_kw("REDUNDANCY") {
            Some(self.retention_policy(false)?)
        } else {
            None
        };
        let device = self.optional_device()?;
        self.expect_end()?;
        Ok(Report::Obsolete { policy, device })
    }

    fn catalog(&mut self) -> R<Catalog> {
        let mut device = None;
        if self.is_kw("DEVICE") {
            device = Some(self.device_clause()?);
        }
        let c = if self.accept_kw("START") {
            self.expect_kw("WITH")?;
            let prefix = self.expect_string()?;
            let noprompt = self.accept_kw("NOPROMPT");
            Catalog::StartWith { prefix, noprompt }
        } else if self.accept_kw("BACKUPPIECE") {
            Catalog::Backuppiece {
                device,
                handles: self.string_list()?,
            }
        } else if self.accept_kw("DATAFILECOPY") {
            let paths = self.string_list()?;
            let mut level0 = false;
            let mut tag = None;
            loop {
                if self.accept_kw("LEVEL") {
                    let at = self.i;
                    if self.expect_int()? != 0 {
                        self.i = at;
                        return Err(self.error(&["0"]));
                    }
                    level0 = true;
                } else if self.accept_kw("TAG") {
                    let _ = self.accept_sym('=');
                    tag = Some(up(&self.expect_name()?));
                } else {
                    break;
                }
            }
            Catalog::Datafilecopy { paths, level0, tag }
        } else if self.accept_kw("ARCHIVELOG") {
            Catalog::Archivelog(self.string_list()?)
        } else {
            return Err(self.error(&["archivelog", "backuppiece", "datafilecopy", "start"]));
        };
        self.expect_end()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Command {
        let mut v = parse(s).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0).cmd
    }

    #[test]
    fn run_block_with_channels_and_backup() {
        let c = one(
            "run {\n allocate channel c1 device type sbt parms 'SBT_LIBRARY=/x.so, ENV=(A=1)';\n\
             set command id to 'job42';\n\
             backup incremental level 0 database filesperset 1 tag 'full_1' format '%U'\n\
               plus archivelog delete input;\n release channel c1;\n}",
        );
        let Command::Run(body) = c else { panic!() };
        assert_eq!(body.len(), 4);
        assert!(
            matches!(&body[0].cmd, Command::Allocate(a) if a.name.as_deref() == Some("c1")
            && a.device == DeviceType::Sbt && a.opts.parms.as_deref() == Some("SBT_LIBRARY=/x.so, ENV=(A=1)"))
        );
        assert_eq!(body[1].cmd, Command::Set(SetCmd::CommandId("job42".into())));
        let Command::Backup(b) = &body[2].cmd else {
            panic!()
        };
        assert_eq!(
            b.incremental,
            Some(Incremental {
                level: 0,
                cumulative: false
            })
        );
        assert_eq!(b.specs[0].object, BackupObject::Database);
        assert_eq!(b.specs[0].opts.filesperset, Some(1));
        assert_eq!(b.specs[0].opts.tag.as_deref(), Some("FULL_1"));
        assert_eq!(
            b.plus_archivelog.as_ref().unwrap().delete_input,
            Some(false)
        );
        assert_eq!(body[3].line, 6);
    }

    #[test]
    fn backup_variants() {
        let Command::Backup(b) = one(
            "backup as backupset section size 2M datafile 1,2 not backed up since time 'SYSDATE-1';",
        ) else {
            panic!()
        };
        assert_eq!(b.opts.section_size, Some(2 << 20));
        assert_eq!(b.specs[0].object, BackupObject::Datafile(vec![1, 2]));
        assert_eq!(
            b.specs[0].opts.not_backed_up,
            Some(NotBackedUp::Since(TimeExpr("SYSDATE-1".into())))
        );
        let Command::Backup(b) =
            one("BACKUP INCREMENTAL LEVEL 1 FOR RECOVER OF COPY WITH TAG 'incr_upd' DATABASE;")
        else {
            panic!()
        };
        assert_eq!(b.recover_of_copy, Some(Some("INCR_UPD".into())));
        let Command::Backup(b) = one(
            "backup archivelog from sequence 10 until sequence 12 thread 1 not backed up 2 times;",
        ) else {
            panic!()
        };
        assert_eq!(
            b.specs[0].object,
            BackupObject::Archivelog(ArchivelogRange::Sequence {
                from: Some(10),
                until: Some(12),
                thread: Some(1)
            })
        );
        assert_eq!(b.specs[0].opts.not_backed_up, Some(NotBackedUp::Times(2)));
        let Command::Backup(b) = one("backup as copy datafile 3 format '/c/%U';") else {
            panic!()
        };
        assert!(b.as_copy);
        let Command::Backup(b) = one("backup current controlfile spfile;") else {
            panic!()
        };
        assert_eq!(b.specs.len(), 2);
        let Command::Backup(b) = one(
            "backup database not backed up since time \"to_date('2026-11-22 10:00:00','YYYY-MM-DD HH24:MI:SS')\";",
        ) else {
            panic!()
        };
        assert!(
            matches!(&b.specs[0].opts.not_backed_up, Some(NotBackedUp::Since(t)) if t.0.starts_with("to_date"))
        );
    }

    #[test]
    fn configure_variants() {
        assert_eq!(
            one("configure retention policy to recovery window of 7 days;"),
            Command::Configure(Configure::Retention(Some(RetentionPolicy::RecoveryWindow(
                7
            ))))
        );
        assert_eq!(
            one("CONFIGURE DEVICE TYPE sbt PARALLELISM 2 BACKUP TYPE TO BACKUPSET;"),
            Command::Configure(Configure::Device {
                device: DeviceType::Sbt,
                setting: Some(DeviceSetting {
                    parallelism: 2,
                    backup_type: Some("BACKUPSET".into())
                })
            })
        );
        assert_eq!(
            one("configure controlfile autobackup format for device type disk to '/b/%F';"),
            Command::Configure(Configure::AutobackupFormat {
                device: DeviceType::Disk,
                format: Some("/b/%F".into())
            })
        );
        assert_eq!(
            one("configure backup optimization on;"),
            Command::Configure(Configure::Other {
                name: "BACKUP OPTIMIZATION".into(),
                value: Some("ON".into())
            })
        );
        assert!(matches!(
            one("configure channel device type 'SBT_TAPE' parms 'SBT_LIBRARY=/l.so' maxpiecesize 1G;"),
            Command::Configure(Configure::Channel { number: None, device: DeviceType::Sbt, opts: Some(o) })
                if o.maxpiecesize == Some(1 << 30)
        ));
    }

    #[test]
    fn maintenance_commands() {
        assert!(matches!(
            one("delete noprompt backuppiece 'a_1_1', 'b_1_1';"),
            Command::Delete(Delete { noprompt: true, what: DeleteWhat::Backuppiece(v), .. }) if v.len() == 2
        ));
        assert!(matches!(
            one("delete noprompt obsolete;"),
            Command::Delete(Delete {
                what: DeleteWhat::Obsolete(None),
                ..
            })
        ));
        assert!(matches!(
            one("list backup summary;"),
            Command::List(List::Backup { summary: true, .. })
        ));
        assert!(matches!(
            one("delete noprompt backup of archivelog all;"),
            Command::Delete(Delete {
                what: DeleteWhat::Backup {
                    tag: None,
                    of: Some(BackupObject::Archivelog(_))
                },
                ..
            })
        ));
        assert!(matches!(
            one("crosscheck backup of controlfile;"),
            Command::Crosscheck(Crosscheck {
                of: Some(BackupObject::CurrentControlfile),
                ..
            })
        ));
        assert!(matches!(
            one("crosscheck backup;"),
            Command::Crosscheck(Crosscheck {
                kind: ListKind::Backup,
                ..
            })
        ));
        assert!(matches!(
            one("catalog start with '/backup/' noprompt;"),
            Command::Catalog(Catalog::StartWith { noprompt: true, .. })
        ));
        assert!(matches!(
            one("recover copy of database with tag 'x' until time 'SYSDATE-7';"),
            Command::RecoverCopy { tag: Some(t), until: Some(_), .. } if t == "X"
        ));
        assert_eq!(
            one("sql 'alter system switch logfile';"),
            Command::Sql("alter system switch logfile".into())
        );
        assert_eq!(
            one("alter system archive log current;"),
            Command::Sql("alter system archive log current".into())
        );
        assert!(matches!(
            one("allocate channel for maintenance device type sbt parms 'SBT_LIBRARY=/l.so';"),
            Command::Allocate(Allocate { name: None, .. })
        ));
    }

    #[test]
    fn syntax_errors_read_like_rman() {
        let e = parse("run {\n  bakup database;\n}").unwrap_err();
        assert_eq!(e.found, "identifier");
        assert_eq!(e.bad_identifier.as_deref(), Some("bakup"));
        assert_eq!((e.line, e.col), (2, 3));
        let lines = e.rman_lines("standard input");
        assert!(lines[0].starts_with("RMAN-01009: syntax error: found \"identifier\": expecting one of: \"allocate, alter, backup"));
        assert_eq!(lines[1], "RMAN-01008: the bad identifier was: bakup");
        assert_eq!(
            lines[2],
            "RMAN-01007: at line 2 column 3 file: standard input"
        );

        let e = parse("backup database").unwrap_err();
        assert_eq!(e.found, "end-of-file");
        let e = parse("backup incremental level 2 database;").unwrap_err();
        assert_eq!(e.found, "integer");
        let e = parse("run { backup database; ").unwrap_err();
        assert_eq!(e.found, "end-of-file");
        assert!(parse("configure channel device type sbt foo;").is_err());
    }
}
