//! Parsing RMAN output (the log of `rman ... log=x.log` or its stdout) into
//! typed events.
//!
//! Tolerant by design: blank lines are skipped, CRLF is accepted, unknown
//! lines become [`RmanEvent::Other`], and no input makes it panic. Dates are
//! kept as text because their format follows the session's NLS_DATE_FORMAT.

use serde::{Deserialize, Serialize};

/// One `FACILITY-NNNNN: message` line of an error stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLine {
    /// `RMAN`, `ORA`, `SBT`, ...
    pub facility: String,
    /// The number (e.g. 3009 for RMAN-03009).
    pub code: u32,
    /// The message, with indented continuation lines appended after `\n`.
    pub message: String,
}

impl ErrorLine {
    /// `RMAN-03009`-style identifier (code zero-padded to 5 digits).
    pub fn id(&self) -> String {
        format!("{}-{:05}", self.facility, self.code)
    }

    /// Whether this is one of the `RMAN-00571`/`RMAN-00569` banner lines
    /// that frame an error stack.
    pub fn is_banner(&self) -> bool {
        self.facility == "RMAN" && (self.code == 571 || self.code == 569)
    }
}

/// Kind of backup set a channel starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupSetKind {
    /// Datafiles (possibly with control file / spfile).
    Datafile,
    /// Archived logs.
    ArchivedLog,
    /// Anything else (`spfile`, `control file` ...), as printed.
    Other(String),
}

/// An event in RMAN output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RmanEvent {
    /// `Recovery Manager: Release 19.0.0.0.0 - Production on ...`
    Banner {
        /// `19.0.0.0.0`.
        version: String,
    },
    /// `connected to target database: ORCL (DBID=1234567890)`
    ConnectedTarget {
        /// DB_NAME.
        db_name: String,
        /// DBID if printed.
        dbid: Option<u64>,
    },
    /// `RMAN> command` or `2> continuation` (command echo in logs).
    Prompt {
        /// Text after the prompt.
        command: String,
    },
    /// `executing command: SET COMMAND ID`
    ExecutingCommand {
        /// The command named.
        command: String,
    },
    /// `allocated channel: c1`
    ChannelAllocated {
        /// Channel name.
        channel: String,
    },
    /// `channel c1: SID=78 device type=SBT_TAPE`
    ChannelSid {
        /// Channel name.
        channel: String,
        /// Server session id.
        sid: u32,
        /// Device type (`SBT_TAPE`, `DISK`).
        device_type: String,
    },
    /// `channel c1: <media manager description> VER=19.0.0.1`
    ChannelMediaManager {
        /// Channel name.
        channel: String,
        /// SBTINIT_MMS_DESC.
        description: String,
        /// MMS version.
        version: String,
    },
    /// `channel c1: WARNING: ...`
    ChannelWarning {
        /// Channel name.
        channel: String,
        /// Warning text.
        text: String,
    },
    /// `released channel: c1`
    ChannelReleased {
        /// Channel name.
        channel: String,
    },
    /// `Starting <operation> at <date>` (backup, restore, recover,
    /// `Control File and SPFILE Autobackup`, ...).
    Starting {
        /// Operation as printed.
        operation: String,
        /// Date as printed.
        at: String,
    },
    /// `Finished <operation> at <date>`.
    Finished {
        /// Operation as printed.
        operation: String,
        /// Date as printed.
        at: String,
    },
    /// `channel c1: starting [compressed] {full|incremental level N [cumulative]} datafile backup set`
    /// or `channel c1: starting archived log backup set`.
    BackupSetStarted {
        /// Channel name.
        channel: String,
        /// Datafiles or archived logs.
        kind: BackupSetKind,
        /// `full`.
        full: bool,
        /// `incremental level N`.
        incremental_level: Option<u8>,
        /// `cumulative`.
        cumulative: bool,
        /// `compressed`.
        compressed: bool,
    },
    /// `channel c1: specifying datafile(s) in backup set` (and variants).
    Specifying {
        /// Channel name.
        channel: String,
        /// What is specified, as printed.
        what: String,
    },
    /// `input datafile file number=00006 name=/path`
    InputDatafile {
        /// Absolute file number.
        file_no: u32,
        /// File name.
        name: String,
    },
    /// `input archived log thread=1 sequence=10 RECID=5 STAMP=1100000000`
    InputArchivedLog {
        /// Thread.
        thread: u32,
        /// Sequence.
        sequence: u32,
        /// RECID if printed.
        recid: Option<u64>,
        /// STAMP if printed.
        stamp: Option<u64>,
    },
    /// `including current control file in backup set`
    IncludingControlfile,
    /// `including current SPFILE in backup set`
    IncludingSpfile,
    /// `channel c1: starting piece 1 at 04-MAR-26`
    PieceStarted {
        /// Channel name.
        channel: String,
        /// Piece number.
        piece: u32,
        /// Date as printed.
        at: String,
    },
    /// `channel c1: finished piece 1 at 04-MAR-26`
    PieceFinished {
        /// Channel name.
        channel: String,
        /// Piece number.
        piece: u32,
        /// Date as printed.
        at: String,
    },
    /// `piece handle=<h> tag=<t> comment=<c>` (also prefixed `channel c1: `
    /// in restore output).
    PieceHandle {
        /// Channel if the line was prefixed with one.
        channel: Option<String>,
        /// Piece handle.
        handle: String,
        /// Tag.
        tag: Option<String>,
        /// Media manager comment (`NONE` on disk).
        comment: Option<String>,
    },
    /// `channel c1: backup set complete, elapsed time: 00:00:07`
    BackupSetComplete {
        /// Channel name.
        channel: String,
        /// Elapsed seconds, if the time parsed.
        elapsed_secs: Option<u64>,
    },
    /// `skipping datafile 1; already backed up on 04-MAR-26` (optionally with
    /// an `RMAN-NNNNN:` prefix).
    SkippedDatafile {
        /// Absolute file number.
        file_no: u32,
        /// Text after the semicolon.
        reason: String,
    },
    /// `skipping archived log of thread 1 with sequence 5; already backed up`
    SkippedArchivedLog {
        /// Thread.
        thread: u32,
        /// Sequence.
        sequence: u32,
        /// Text after the semicolon.
        reason: String,
    },
    /// `channel c1: starting datafile copy`
    DatafileCopyStarted {
        /// Channel name.
        channel: String,
    },
    /// `output file name=/path tag=TAG RECID=3 STAMP=1100000000`
    OutputFile {
        /// Output file name.
        name: String,
        /// Tag.
        tag: Option<String>,
        /// RECID.
        recid: Option<u64>,
        /// STAMP.
        stamp: Option<u64>,
    },
    /// `channel c1: datafile copy complete, elapsed time: 00:00:01`
    CopyComplete {
        /// Channel name.
        channel: String,
        /// Elapsed seconds.
        elapsed_secs: Option<u64>,
    },
    /// `channel c1: restoring datafile 00001 to /path`
    RestoringDatafile {
        /// Channel name.
        channel: String,
        /// Absolute file number.
        file_no: u32,
        /// Destination.
        to: String,
    },
    /// `channel c1: reading from backup piece <handle>`
    ReadingFromPiece {
        /// Channel name.
        channel: String,
        /// Piece handle.
        handle: String,
    },
    /// `channel c1: restored backup piece 1`
    RestoredPiece {
        /// Channel name.
        channel: String,
        /// Piece number.
        piece: u32,
    },
    /// `channel c1: restore complete, elapsed time: 00:00:03`
    RestoreComplete {
        /// Channel name.
        channel: String,
        /// Elapsed seconds.
        elapsed_secs: Option<u64>,
    },
    /// `archived log thread=1 sequence=5` (restore of an archived log) or
    /// `channel c1: restoring archived log` followed by it.
    RestoringArchivedLog {
        /// Thread.
        thread: u32,
        /// Sequence.
        sequence: u32,
    },
    /// `archived log for thread 1 with sequence 5 is already on disk as file /path`
    ArchivedLogOnDisk {
        /// Thread.
        thread: u32,
        /// Sequence.
        sequence: u32,
        /// File name.
        name: String,
    },
    /// `archived log file name=/path thread=1 sequence=5` (applied during recovery)
    ArchivedLogApplied {
        /// File name.
        name: String,
        /// Thread.
        thread: u32,
        /// Sequence.
        sequence: u32,
    },
    /// `starting media recovery`
    MediaRecoveryStarted,
    /// `media recovery complete, elapsed time: 00:00:01`
    MediaRecoveryComplete {
        /// Elapsed seconds.
        elapsed_secs: Option<u64>,
    },
    /// `RMAN-03009: ...`, `ORA-19506: ...` and friends.
    Error(ErrorLine),
    /// `Recovery Manager complete.`
    Complete,
    /// Anything else, trimmed.
    Other(String),
}

fn parse_elapsed(s: &str) -> Option<u64> {
    let mut parts = s.trim().split(':');
    let h: u64 = parts.next()?.trim().parse().ok()?;
    let m: u64 = parts.next()?.trim().parse().ok()?;
    let sec: u64 = parts.next()?.trim().parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    h.checked_mul(3600)?.checked_add(m * 60)?.checked_add(sec)
}

/// Splits `key=value key2=value2` text into pairs. Values run to the next
/// ` key=` whose key is one of `keys` so that names may contain spaces.
fn key_values<'a>(s: &'a str, keys: &[&'static str]) -> Vec<(&'static str, &'a str)> {
    let mut found: Vec<(usize, &str)> = Vec::new();
    for k in keys {
        let pat = format!("{k}=");
        let mut from = 0;
        while let Some(i) = s[from..].find(&pat) {
            let at = from + i;
            if at == 0 || s[..at].ends_with(' ') {
                found.push((at, k));
                break;
            }
            from = at + pat.len();
        }
    }
    found.sort_by_key(|f| f.0);
    let mut out = Vec::with_capacity(found.len());
    for (i, &(at, k)) in found.iter().enumerate() {
        let start = at + k.len() + 1;
        let end = found.get(i + 1).map_or(s.len(), |n| n.0);
        if start <= end {
            out.push((k, s[start..end].trim()));
        }
    }
    out
}

fn get<'a>(kv: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    kv.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn parse_error_line(line: &str) -> Option<ErrorLine> {
    let (head, message) = line.split_once(':')?;
    let (facility, code) = head.split_once('-')?;
    if facility.is_empty()
        || facility.len() > 5
        || !facility
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        || code.is_empty()
        || code.len() > 6
        || !code.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(ErrorLine {
        facility: facility.to_string(),
        code: code.parse().ok()?,
        message: message.trim().to_string(),
    })
}

fn parse_skip(text: &str) -> Option<RmanEvent> {
    let rest = text.strip_prefix("skipping ")?;
    let (what, reason) = rest.split_once(';').unwrap_or((rest, ""));
    let reason = reason.trim().to_string();
    if let Some(n) = what.strip_prefix("datafile ") {
        return Some(RmanEvent::SkippedDatafile {
            file_no: n.trim().parse().ok()?,
            reason,
        });
    }
    let r = what.strip_prefix("archived log of thread ")?;
    let (t, s) = r.split_once(" with sequence ")?;
    Some(RmanEvent::SkippedArchivedLog {
        thread: t.trim().parse().ok()?,
        sequence: s.trim().parse().ok()?,
        reason,
    })
}

fn parse_backup_set_start(channel: &str, rest: &str) -> Option<RmanEvent> {
    let body = rest
        .strip_prefix("starting ")?
        .strip_suffix(" backup set")?;
    let mut words: Vec<&str> = body.split_whitespace().collect();
    let mut compressed = false;
    let mut full = false;
    let mut cumulative = false;
    let mut level = None;
    if words.first() == Some(&"compressed") {
        compressed = true;
        words.remove(0);
    }
    if words.first() == Some(&"full") {
        full = true;
        words.remove(0);
    } else if words.len() >= 3 && words[0] == "incremental" && words[1] == "level" {
        level = Some(words[2].parse().ok()?);
        words.drain(..3);
        if words.first() == Some(&"cumulative") {
            cumulative = true;
            words.remove(0);
        }
    }
    let kind = match words.join(" ").as_str() {
        "datafile" => BackupSetKind::Datafile,
        "archived log" | "archivelog" => BackupSetKind::ArchivedLog,
        other => BackupSetKind::Other(other.to_string()),
    };
    Some(RmanEvent::BackupSetStarted {
        channel: channel.to_string(),
        kind,
        full,
        incremental_level: level,
        cumulative,
        compressed,
    })
}

fn parse_piece_handle(channel: Option<&str>, rest: &str) -> Option<RmanEvent> {
    let body = rest.strip_prefix("piece handle=")?;
    let kv = key_values(body, &["tag", "comment"]);
    let handle_end = kv
        .first()
        .map(|(k, _)| body.find(&format!(" {k}=")).unwrap_or(body.len()))
        .unwrap_or(body.len());
    Some(RmanEvent::PieceHandle {
        channel: channel.map(str::to_string),
        handle: body[..handle_end].trim().to_string(),
        tag: get(&kv, "tag").map(str::to_string),
        comment: get(&kv, "comment").map(str::to_string),
    })
}

fn parse_channel_line(channel: &str, rest: &str) -> RmanEvent {
    let ch = channel.to_string();
    if let Some(r) = rest.strip_prefix("SID=") {
        let (sid, dev) = r.split_once(' ').unwrap_or((r, ""));
        if let (Ok(sid), Some(dt)) = (sid.parse(), dev.trim().strip_prefix("device type=")) {
            return RmanEvent::ChannelSid {
                channel: ch,
                sid,
                device_type: dt.trim().to_string(),
            };
        }
    }
    if let Some(r) = rest.strip_prefix("sid=") {
        // Pre-10g form: `channel ORA_DISK_1: sid=16 devtype=DISK`.
        let (sid, dev) = r.split_once(' ').unwrap_or((r, ""));
        if let (Ok(sid), Some(dt)) = (sid.parse(), dev.trim().strip_prefix("devtype=")) {
            return RmanEvent::ChannelSid {
                channel: ch,
                sid,
                device_type: dt.trim().to_string(),
            };
        }
    }
    if let Some(t) = rest.strip_prefix("WARNING: ") {
        return RmanEvent::ChannelWarning {
            channel: ch,
            text: t.trim().to_string(),
        };
    }
    if let Some(ev) = parse_backup_set_start(channel, rest) {
        return ev;
    }
    if let Some(w) = rest.strip_prefix("specifying ") {
        return RmanEvent::Specifying {
            channel: ch,
            what: w.trim().to_string(),
        };
    }
    for (prefix, started) in [("starting piece ", true), ("finished piece ", false)] {
        if let Some(r) = rest.strip_prefix(prefix)
            && let Some((n, at)) = r.split_once(" at ")
            && let Ok(piece) = n.trim().parse()
        {
            let at = at.trim().to_string();
            return if started {
                RmanEvent::PieceStarted {
                    channel: ch,
                    piece,
                    at,
                }
            } else {
                RmanEvent::PieceFinished {
                    channel: ch,
                    piece,
                    at,
                }
            };
        }
    }
    if let Some(ev) = parse_piece_handle(Some(channel), rest) {
        return ev;
    }
    for (prefix, which) in [
        ("backup set complete, elapsed time:", 0),
        ("datafile copy complete, elapsed time:", 1),
        ("restore complete, elapsed time:", 2),
    ] {
        if let Some(t) = rest.strip_prefix(prefix) {
            let elapsed_secs = parse_elapsed(t);
            return match which {
                0 => RmanEvent::BackupSetComplete {
                    channel: ch,
                    elapsed_secs,
                },
                1 => RmanEvent::CopyComplete {
                    channel: ch,
                    elapsed_secs,
                },
                _ => RmanEvent::RestoreComplete {
                    channel: ch,
                    elapsed_secs,
                },
            };
        }
    }
    if rest == "starting datafile copy" {
        return RmanEvent::DatafileCopyStarted { channel: ch };
    }
    if let Some(r) = rest.strip_prefix("restoring datafile ")
        && let Some((n, to)) = r.split_once(" to ")
        && let Ok(file_no) = n.trim().parse()
    {
        return RmanEvent::RestoringDatafile {
            channel: ch,
            file_no,
            to: to.trim().to_string(),
        };
    }
    if let Some(h) = rest.strip_prefix("reading from backup piece ") {
        return RmanEvent::ReadingFromPiece {
            channel: ch,
            handle: h.trim().to_string(),
        };
    }
    if let Some(n) = rest.strip_prefix("restored backup piece ")
        && let Ok(piece) = n.trim().parse()
    {
        return RmanEvent::RestoredPiece { channel: ch, piece };
    }
    if let Some(ev) = parse_archived_log_thread_seq(rest) {
        return ev;
    }
    if let Some((desc, ver)) = rest.rsplit_once(" VER=") {
        return RmanEvent::ChannelMediaManager {
            channel: ch,
            description: desc.trim().to_string(),
            version: ver.trim().to_string(),
        };
    }
    RmanEvent::Other(format!("channel {channel}: {rest}"))
}

fn parse_archived_log_thread_seq(text: &str) -> Option<RmanEvent> {
    let body = text.strip_prefix("archived log thread=")?;
    let (t, s) = body.split_once(" sequence=")?;
    let s = s.split_whitespace().next()?;
    Some(RmanEvent::RestoringArchivedLog {
        thread: t.trim().parse().ok()?,
        sequence: s.parse().ok()?,
    })
}

/// Parses one line. Returns `None` for blank lines.
pub fn parse_line(raw: &str) -> Option<RmanEvent> {
    let line = raw.trim_end_matches(['\r', '\n']).trim();
    if line.is_empty() {
        return None;
    }
    if let Some(ev) = parse_skip(line) {
        return Some(ev);
    }
    if let Some(err) = parse_error_line(line) {
        // `RMAN-06501: skipping datafile ...` style lines are skips, not errors.
        if let Some(ev) = parse_skip(&err.message) {
            return Some(ev);
        }
        return Some(RmanEvent::Error(err));
    }
    if line == "Recovery Manager complete." {
        return Some(RmanEvent::Complete);
    }
    if let Some(r) = line.strip_prefix("Recovery Manager: Release ") {
        let version = r.split_whitespace().next().unwrap_or("").to_string();
        return Some(RmanEvent::Banner { version });
    }
    if let Some(r) = line.strip_prefix("connected to target database: ") {
        let (name, rest) = r.split_once(' ').unwrap_or((r, ""));
        let dbid = rest
            .split_once("DBID=")
            .and_then(|(_, d)| d.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse().ok());
        return Some(RmanEvent::ConnectedTarget {
            db_name: name.to_string(),
            dbid,
        });
    }
    if let Some(r) = line.strip_prefix("RMAN>") {
        return Some(RmanEvent::Prompt {
            command: r.trim().to_string(),
        });
    }
    if let Some((n, r)) = line.split_once("> ")
        && !n.is_empty()
        && n.len() <= 6
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return Some(RmanEvent::Prompt {
            command: r.trim().to_string(),
        });
    }
    if let Some(r) = line.strip_prefix("executing command: ") {
        return Some(RmanEvent::ExecutingCommand {
            command: r.trim().to_string(),
        });
    }
    if let Some(c) = line.strip_prefix("allocated channel: ") {
        return Some(RmanEvent::ChannelAllocated {
            channel: c.trim().to_string(),
        });
    }
    if let Some(c) = line.strip_prefix("released channel: ") {
        return Some(RmanEvent::ChannelReleased {
            channel: c.trim().to_string(),
        });
    }
    for (prefix, starting) in [("Starting ", true), ("Finished ", false)] {
        if let Some(r) = line.strip_prefix(prefix)
            && let Some((op, at)) = r.rsplit_once(" at ")
        {
            let (operation, at) = (op.trim().to_string(), at.trim().to_string());
            return Some(if starting {
                RmanEvent::Starting { operation, at }
            } else {
                RmanEvent::Finished { operation, at }
            });
        }
    }
    if let Some(r) = line.strip_prefix("channel ")
        && let Some((ch, rest)) = r.split_once(": ")
        && !ch.contains(' ')
    {
        return Some(parse_channel_line(ch, rest.trim()));
    }
    if let Some(r) = line.strip_prefix("input datafile ") {
        let kv = key_values(r, &["file number", "fno", "name"]);
        let no = get(&kv, "file number").or_else(|| get(&kv, "fno"));
        if let (Some(no), Some(name)) = (no.and_then(|n| n.parse().ok()), get(&kv, "name")) {
            return Some(RmanEvent::InputDatafile {
                file_no: no,
                name: name.to_string(),
            });
        }
    }
    if let Some(r) = line.strip_prefix("input archived log ") {
        let kv = key_values(r, &["thread", "sequence", "RECID", "STAMP"]);
        if let (Some(t), Some(s)) = (
            get(&kv, "thread").and_then(|v| v.parse().ok()),
            get(&kv, "sequence").and_then(|v| v.parse().ok()),
        ) {
            return Some(RmanEvent::InputArchivedLog {
                thread: t,
                sequence: s,
                recid: get(&kv, "RECID").and_then(|v| v.parse().ok()),
                stamp: get(&kv, "STAMP").and_then(|v| v.parse().ok()),
            });
        }
    }
    match line {
        "including current control file in backup set" => {
            return Some(RmanEvent::IncludingControlfile);
        }
        "including current SPFILE in backup set" => return Some(RmanEvent::IncludingSpfile),
        "starting media recovery" => return Some(RmanEvent::MediaRecoveryStarted),
        _ => {}
    }
    if let Some(ev) = parse_piece_handle(None, line) {
        return Some(ev);
    }
    if let Some(r) = line.strip_prefix("output file name=") {
        let kv = key_values(r, &["tag", "RECID", "STAMP"]);
        let name_end = kv
            .first()
            .and_then(|(k, _)| r.find(&format!(" {k}=")))
            .unwrap_or(r.len());
        return Some(RmanEvent::OutputFile {
            name: r[..name_end].trim().to_string(),
            tag: get(&kv, "tag").map(str::to_string),
            recid: get(&kv, "RECID").and_then(|v| v.parse().ok()),
            stamp: get(&kv, "STAMP").and_then(|v| v.parse().ok()),
        });
    }
    if let Some(r) = line.strip_prefix("archived log for thread ")
        && let Some((t, rest)) = r.split_once(" with sequence ")
        && let Some((s, name)) = rest.split_once(" is already on disk as file ")
        && let (Ok(thread), Ok(sequence)) = (t.trim().parse(), s.trim().parse())
    {
        return Some(RmanEvent::ArchivedLogOnDisk {
            thread,
            sequence,
            name: name.trim().to_string(),
        });
    }
    if let Some(r) = line.strip_prefix("archived log file name=") {
        let kv = key_values(r, &["thread", "sequence"]);
        let name_end = r.find(" thread=").unwrap_or(r.len());
        if let (Some(thread), Some(sequence)) = (
            get(&kv, "thread").and_then(|v| v.parse().ok()),
            get(&kv, "sequence").and_then(|v| v.parse().ok()),
        ) {
            return Some(RmanEvent::ArchivedLogApplied {
                name: r[..name_end].trim().to_string(),
                thread,
                sequence,
            });
        }
    }
    if let Some(ev) = parse_archived_log_thread_seq(line) {
        return Some(ev);
    }
    if let Some(t) = line.strip_prefix("media recovery complete, elapsed time:") {
        return Some(RmanEvent::MediaRecoveryComplete {
            elapsed_secs: parse_elapsed(t),
        });
    }
    Some(RmanEvent::Other(line.to_string()))
}

/// Parses a whole log. Indented lines that follow an error line are appended
/// to that error's message (media-manager texts continue that way).
pub fn parse_log(text: &str) -> Vec<RmanEvent> {
    let mut out: Vec<RmanEvent> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.trim_end_matches('\r');
        let indented = line.starts_with([' ', '\t']);
        if indented
            && !line.trim().is_empty()
            && let Some(RmanEvent::Error(e)) = out.last_mut()
            && parse_error_line(line.trim()).is_none()
        {
            e.message.push('\n');
            e.message.push_str(line.trim());
            continue;
        }
        if let Some(ev) = parse_line(line) {
            out.push(ev);
        }
    }
    out
}

/// Groups consecutive error lines into stacks, dropping the
/// `RMAN-00571`/`RMAN-00569` banner lines.
pub fn error_stacks(events: &[RmanEvent]) -> Vec<Vec<ErrorLine>> {
    let mut stacks: Vec<Vec<ErrorLine>> = Vec::new();
    let mut current: Vec<ErrorLine> = Vec::new();
    for ev in events {
        match ev {
            RmanEvent::Error(e) if e.is_banner() => {
                if !current.is_empty() {
                    stacks.push(std::mem::take(&mut current));
                }
            }
            RmanEvent::Error(e) => current.push(e.clone()),
            _ => {
                if !current.is_empty() {
                    stacks.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        stacks.push(current);
    }
    stacks
}

/// A backup piece reported in RMAN output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedPiece {
    /// Channel that wrote it, if known.
    pub channel: Option<String>,
    /// Piece handle.
    pub handle: String,
    /// Tag.
    pub tag: Option<String>,
    /// Comment.
    pub comment: Option<String>,
}

/// What a whole RMAN run reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmanSummary {
    /// Backup pieces written (`piece handle=` lines outside restores).
    pub pieces: Vec<ReportedPiece>,
    /// Datafile copies and other output files.
    pub output_files: Vec<String>,
    /// Datafiles skipped because already backed up.
    pub skipped_datafiles: Vec<u32>,
    /// Error stacks.
    pub errors: Vec<Vec<ErrorLine>>,
    /// `Recovery Manager complete.` was printed.
    pub completed: bool,
}

impl RmanSummary {
    /// Summarises parsed events.
    pub fn from_events(events: &[RmanEvent]) -> RmanSummary {
        let mut s = RmanSummary {
            errors: error_stacks(events),
            ..RmanSummary::default()
        };
        let mut piece_channel: Option<String> = None;
        for ev in events {
            match ev {
                RmanEvent::PieceFinished { channel, .. } => piece_channel = Some(channel.clone()),
                RmanEvent::PieceHandle {
                    channel,
                    handle,
                    tag,
                    comment,
                } if channel.is_none() => s.pieces.push(ReportedPiece {
                    channel: piece_channel.take(),
                    handle: handle.clone(),
                    tag: tag.clone(),
                    comment: comment.clone(),
                }),
                RmanEvent::OutputFile { name, .. } => s.output_files.push(name.clone()),
                RmanEvent::SkippedDatafile { file_no, .. } => s.skipped_datafiles.push(*file_no),
                RmanEvent::Complete => s.completed = true,
                _ => {}
            }
        }
        s
    }

    /// Whether RMAN reported success: it completed and printed no error stack.
    pub fn succeeded(&self) -> bool {
        self.completed && self.errors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "\r
Recovery Manager: Release 19.0.0.0.0 - Production on Wed Mar 4 09:17:00 2026\r
connected to target database: ORCL (DBID=1000593576)\r
using target database control file instead of recovery catalog\r
\r
RMAN> run {\r
2> allocate channel cloud1 device type sbt parms 'SBT_LIBRARY=/x.so';\r
allocated channel: cloud1\r
channel cloud1: SID=78 device type=SBT_TAPE\r
channel cloud1: Oracle Database Backup Service Library VER=19.0.0.1\r
Starting backup at 04-MAR-26\r
channel cloud1: starting compressed full datafile backup set\r
channel cloud1: specifying datafile(s) in backup set\r
including current control file in backup set\r
input datafile file number=00006 name=/u01/oradata/ORCL/users 01.dbf\r
channel cloud1: starting piece 1 at 04-MAR-26\r
channel cloud1: finished piece 1 at 04-MAR-26\r
piece handle=dn4i520q_10679_1_1 tag=TEST_CF_RUN1 comment=API Version 2.0,MMS Version 19.0.0.1\r
channel cloud1: backup set complete, elapsed time: 00:00:07\r
Finished backup at 04-MAR-26\r
Starting Control File and SPFILE Autobackup at 04-MAR-26\r
piece handle=c-1000593576-20260304-13 comment=API Version 2.0,MMS Version 19.0.0.1\r
Finished Control File and SPFILE Autobackup at 04-MAR-26\r
released channel: cloud1\r
Recovery Manager complete.\r
";

    #[test]
    fn sample_backup() {
        let ev = parse_log(SAMPLE);
        assert_eq!(
            ev[0],
            RmanEvent::Banner {
                version: "19.0.0.0.0".into()
            }
        );
        assert_eq!(
            ev[1],
            RmanEvent::ConnectedTarget {
                db_name: "ORCL".into(),
                dbid: Some(1_000_593_576)
            }
        );
        assert!(ev.contains(&RmanEvent::ChannelSid {
            channel: "cloud1".into(),
            sid: 78,
            device_type: "SBT_TAPE".into()
        }));
        assert!(ev.contains(&RmanEvent::ChannelMediaManager {
            channel: "cloud1".into(),
            description: "Oracle Database Backup Service Library".into(),
            version: "19.0.0.1".into()
        }));
        assert!(ev.contains(&RmanEvent::BackupSetStarted {
            channel: "cloud1".into(),
            kind: BackupSetKind::Datafile,
            full: true,
            incremental_level: None,
            cumulative: false,
            compressed: true
        }));
        assert!(ev.contains(&RmanEvent::InputDatafile {
            file_no: 6,
            name: "/u01/oradata/ORCL/users 01.dbf".into()
        }));
        assert!(ev.contains(&RmanEvent::PieceHandle {
            channel: None,
            handle: "dn4i520q_10679_1_1".into(),
            tag: Some("TEST_CF_RUN1".into()),
            comment: Some("API Version 2.0,MMS Version 19.0.0.1".into())
        }));
        assert!(ev.contains(&RmanEvent::BackupSetComplete {
            channel: "cloud1".into(),
            elapsed_secs: Some(7)
        }));
        assert!(ev.contains(&RmanEvent::Starting {
            operation: "Control File and SPFILE Autobackup".into(),
            at: "04-MAR-26".into()
        }));
        let s = RmanSummary::from_events(&ev);
        assert_eq!(s.pieces.len(), 2);
        assert_eq!(s.pieces[0].channel.as_deref(), Some("cloud1"));
        assert_eq!(s.pieces[1].tag, None);
        assert!(s.succeeded());
    }

    #[test]
    fn error_stack() {
        let log = "\
channel c1: starting incremental level 1 cumulative datafile backup set
RMAN-00571: ===========================================================
RMAN-00569: =============== ERROR MESSAGE STACK FOLLOWS ===============
RMAN-00571: ===========================================================
RMAN-03009: failure of backup command on c1 channel at 03/04/2026 09:17:14
ORA-19506: failed to create sequential file, name=\"x\", parms=\"\"
ORA-27028: skgfqcre: sbtbackup returned error
ORA-19511: non RMAN, but media manager or vendor specific failure, error text:
   SBT error = 7501, errno = 0, sbtbackup: vault unreachable

Recovery Manager complete.
";
        let ev = parse_log(log);
        assert!(matches!(
            &ev[0],
            RmanEvent::BackupSetStarted {
                incremental_level: Some(1),
                cumulative: true,
                ..
            }
        ));
        let stacks = error_stacks(&ev);
        assert_eq!(stacks.len(), 1);
        assert_eq!(stacks[0][0].id(), "RMAN-03009");
        assert_eq!(stacks[0].len(), 4);
        assert!(stacks[0][3].message.ends_with("vault unreachable"));
        assert!(!RmanSummary::from_events(&ev).succeeded());
    }

    #[test]
    fn misc_lines() {
        let cases: Vec<(&str, RmanEvent)> = vec![
            (
                "RMAN-06501: skipping datafile 1; already backed up on 04-MAR-26",
                RmanEvent::SkippedDatafile {
                    file_no: 1,
                    reason: "already backed up on 04-MAR-26".into(),
                },
            ),
            (
                "skipping archived log of thread 2 with sequence 15; already backed up",
                RmanEvent::SkippedArchivedLog {
                    thread: 2,
                    sequence: 15,
                    reason: "already backed up".into(),
                },
            ),
            (
                "input archived log thread=1 sequence=10 RECID=5 STAMP=1100000000",
                RmanEvent::InputArchivedLog {
                    thread: 1,
                    sequence: 10,
                    recid: Some(5),
                    stamp: Some(1_100_000_000),
                },
            ),
            (
                "output file name=/b/data_D-ORCL_I-1_TS-USERS_FNO-4_x tag=MERGE RECID=3 STAMP=1100",
                RmanEvent::OutputFile {
                    name: "/b/data_D-ORCL_I-1_TS-USERS_FNO-4_x".into(),
                    tag: Some("MERGE".into()),
                    recid: Some(3),
                    stamp: Some(1100),
                },
            ),
            (
                "channel c1: restoring datafile 00001 to /u01/system01.dbf",
                RmanEvent::RestoringDatafile {
                    channel: "c1".into(),
                    file_no: 1,
                    to: "/u01/system01.dbf".into(),
                },
            ),
            (
                "channel c1: piece handle=abc_1_1 tag=T1",
                RmanEvent::PieceHandle {
                    channel: Some("c1".into()),
                    handle: "abc_1_1".into(),
                    tag: Some("T1".into()),
                    comment: None,
                },
            ),
            (
                "archived log for thread 1 with sequence 5 is already on disk as file /a/1_5.arc",
                RmanEvent::ArchivedLogOnDisk {
                    thread: 1,
                    sequence: 5,
                    name: "/a/1_5.arc".into(),
                },
            ),
            (
                "archived log file name=/a/1_5.arc thread=1 sequence=5",
                RmanEvent::ArchivedLogApplied {
                    name: "/a/1_5.arc".into(),
                    thread: 1,
                    sequence: 5,
                },
            ),
            (
                "channel ORA_DISK_1: archived log thread=1 sequence=7",
                RmanEvent::RestoringArchivedLog {
                    thread: 1,
                    sequence: 7,
                },
            ),
            (
                "media recovery complete, elapsed time: 00:01:02",
                RmanEvent::MediaRecoveryComplete {
                    elapsed_secs: Some(62),
                },
            ),
            (
                "channel ORA_SBT_TAPE_1: WARNING: Oracle Test Disk API",
                RmanEvent::ChannelWarning {
                    channel: "ORA_SBT_TAPE_1".into(),
                    text: "Oracle Test Disk API".into(),
                },
            ),
            (
                "executing command: SET COMMAND ID",
                RmanEvent::ExecutingCommand {
                    command: "SET COMMAND ID".into(),
                },
            ),
            ("something new", RmanEvent::Other("something new".into())),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), Some(want), "{line}");
        }
        assert_eq!(parse_line("  \r"), None);
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse_log(&s);
        }

        #[test]
        fn never_panics_near_miss(prefix in prop::sample::select(vec![
            "channel ", "piece handle=", "input datafile ", "input archived log ", "RMAN-",
            "skipping ", "Starting ", "archived log file name=", "output file name=", "channel c: SID=",
            "channel c: starting ", "archived log for thread ",
        ]), rest in "[a-z0-9=: ;.,é-]{0,60}") {
            let _ = parse_line(&format!("{prefix}{rest}"));
        }
    }
}
