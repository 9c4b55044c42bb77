//! RMAN `FORMAT` string expansion (`%U`, `%u`, `%d`, `%s`, `%p`, `%t`, `%c`,
//! `%F`, ...).

use crate::time::OracleTime;
use chrono::{Datelike, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// Longest name RMAN hands to the media manager (SBT_FILE_MAX 512 incl. NUL).
pub const MAX_HANDLE_LEN: usize = 511;

/// What is being named: `%U` expands differently for each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FormatKind {
    /// A backup piece: `%U` = `%u_%p_%c`.
    #[default]
    BackupPiece,
    /// A datafile image copy: `%U` = `data-D-%d_id-%I_TS-%N_FNO-%f_%u`.
    DatafileCopy,
    /// An archived log copy: `%U` = `arch-D_%d-id-%I_S-%e_T-%h_A-%a_%u`.
    ArchivedLogCopy,
    /// A control file copy: `%U` = `cf-D_%d-id-%I_%u`.
    ControlfileCopy,
}

/// Everything a FORMAT string may refer to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatContext {
    /// What is being named.
    pub kind: FormatKind,
    /// DB_NAME (`%d`, `%n`).
    pub db_name: String,
    /// DBID (`%I`, `%F`).
    pub dbid: u32,
    /// Backup set number = SET_COUNT (`%s`, `%u`).
    pub set_count: u32,
    /// Backup set stamp = SET_STAMP (`%t`, `%u`).
    pub set_stamp: OracleTime,
    /// Piece number within the set, from 1 (`%p`).
    pub piece_no: u32,
    /// Copy number of a duplexed piece, from 1 (`%c`).
    pub copy_no: u32,
    /// Activation id (`%a`).
    pub activation_id: u32,
    /// Absolute file number (`%f`), image copies.
    pub file_no: Option<u32>,
    /// Tablespace name (`%N`), image copies.
    pub tablespace: Option<String>,
    /// File name without directory (`%b`), image copies.
    pub file_name: Option<String>,
    /// Archived log thread (`%h`).
    pub thread: Option<u32>,
    /// Archived log sequence (`%e`).
    pub sequence: Option<u32>,
    /// Date of the backup (`%T`, `%D`, `%M`, `%Y`, `%F`).
    pub date: NaiveDateTime,
    /// Control file autobackup sequence of the day, 0..=255 (`QQ` of `%F`).
    pub autobackup_seq: u8,
}

/// Errors of FORMAT expansion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// `%x` with an unknown `x`.
    #[error("invalid substitution variable %{0} in FORMAT string")]
    UnknownVariable(char),
    /// A lone `%` at the end of the string.
    #[error("FORMAT string ends with a lone %")]
    TrailingPercent,
    /// The variable has no value for this kind of file.
    #[error("substitution variable %{var} is not valid here: no {what}")]
    NotApplicable {
        /// The variable.
        var: char,
        /// What is missing.
        what: &'static str,
    },
    /// The expanded name is too long for the media manager.
    #[error("expanded name is {0} bytes, longer than the 511-byte maximum")]
    TooLong(usize),
}

const BASE32: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// `%u`: 8 base-32 characters from the low 10 bits of the set count and the
/// low 30 bits of the set stamp.
pub fn unique_u(set_count: u32, set_stamp: OracleTime) -> String {
    let v: u64 = (u64::from(set_count % 1024) << 30) | u64::from(set_stamp.0 % (1 << 30));
    (0..8)
        .rev()
        .map(|i| BASE32[((v >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// `%F`: `c-<DBID>-<YYYYMMDD>-<QQ>` (QQ two lower-case hex digits).
pub fn autobackup_name(dbid: u32, date: NaiveDateTime, seq: u8) -> String {
    format!(
        "c-{dbid}-{:04}{:02}{:02}-{seq:02x}",
        date.year(),
        date.month(),
        date.day()
    )
}

/// Expands a FORMAT string.
pub fn expand_format(fmt: &str, ctx: &FormatContext) -> Result<String, FormatError> {
    let mut out = String::with_capacity(fmt.len() + 32);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let v = chars.next().ok_or(FormatError::TrailingPercent)?;
        expand_var(v, ctx, &mut out)?;
    }
    if out.len() > MAX_HANDLE_LEN {
        return Err(FormatError::TooLong(out.len()));
    }
    Ok(out)
}

fn expand_var(v: char, ctx: &FormatContext, out: &mut String) -> Result<(), FormatError> {
    use std::fmt::Write;
    let na = |what| FormatError::NotApplicable { var: v, what };
    // Writing into a String cannot fail.
    let _ = match v {
        '%' => write!(out, "%"),
        'a' => write!(out, "{}", ctx.activation_id),
        'b' => write!(
            out,
            "{}",
            ctx.file_name
                .as_deref()
                .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n))
                .ok_or_else(|| na("file name"))?
        ),
        'c' => write!(out, "{}", ctx.copy_no),
        'd' => write!(out, "{}", ctx.db_name),
        'D' => write!(out, "{:02}", ctx.date.day()),
        'e' => write!(out, "{}", ctx.sequence.ok_or_else(|| na("log sequence"))?),
        'f' => write!(out, "{}", ctx.file_no.ok_or_else(|| na("file number"))?),
        'F' => write!(
            out,
            "{}",
            autobackup_name(ctx.dbid, ctx.date, ctx.autobackup_seq)
        ),
        'h' => write!(out, "{}", ctx.thread.ok_or_else(|| na("log thread"))?),
        'I' => write!(out, "{}", ctx.dbid),
        'M' => write!(out, "{:02}", ctx.date.month()),
        'n' => write!(out, "{:x<8}", ctx.db_name),
        'N' => write!(
            out,
            "{}",
            ctx.tablespace
                .as_deref()
                .ok_or_else(|| na("tablespace name"))?
        ),
        'p' => write!(out, "{}", ctx.piece_no),
        's' => write!(out, "{}", ctx.set_count),
        't' => write!(out, "{}", ctx.set_stamp.0),
        'T' => write!(
            out,
            "{:04}{:02}{:02}",
            ctx.date.year(),
            ctx.date.month(),
            ctx.date.day()
        ),
        'u' => write!(out, "{}", unique_u(ctx.set_count, ctx.set_stamp)),
        'U' => {
            let pattern = match ctx.kind {
                FormatKind::BackupPiece => "%u_%p_%c",
                FormatKind::DatafileCopy => "data-D-%d_id-%I_TS-%N_FNO-%f_%u",
                FormatKind::ArchivedLogCopy => "arch-D_%d-id-%I_S-%e_T-%h_A-%a_%u",
                FormatKind::ControlfileCopy => "cf-D_%d-id-%I_%u",
            };
            let mut chars = pattern.chars();
            while let Some(c) = chars.next() {
                if c == '%' {
                    let inner = chars.next().ok_or(FormatError::TrailingPercent)?;
                    expand_var(inner, ctx, out)?;
                } else {
                    out.push(c);
                }
            }
            Ok(())
        }
        'Y' => write!(out, "{:04}", ctx.date.year()),
        other => return Err(FormatError::UnknownVariable(other)),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn stamp(s: &str) -> OracleTime {
        OracleTime::from_datetime(dt(s)).unwrap()
    }

    fn ctx() -> FormatContext {
        FormatContext {
            kind: FormatKind::BackupPiece,
            db_name: "ORCL".into(),
            dbid: 1_000_593_576,
            set_count: 10679,
            set_stamp: stamp("2026-03-04 09:17:14"),
            piece_no: 1,
            copy_no: 1,
            activation_id: 3_456_789,
            file_no: Some(6),
            tablespace: Some("USERS".into()),
            file_name: Some("/u01/oradata/ORCL/users01.dbf".into()),
            thread: Some(1),
            sequence: Some(42),
            date: dt("2026-03-04 09:17:14"),
            autobackup_seq: 0x13,
        }
    }

    #[test]
    fn unique_u_worked_examples() {
        assert_eq!(unique_u(10679, stamp("2026-03-04 09:17:14")), "dn4i520q");
        assert_eq!(unique_u(191, stamp("2025-05-19 09:55:49")), "5v3pr9l5");
    }

    #[test]
    fn piece_names() {
        let c = ctx();
        assert_eq!(expand_format("%U", &c).unwrap(), "dn4i520q_1_1");
        assert_eq!(
            expand_format("%u_%s_%p_%c", &c).unwrap(),
            "dn4i520q_10679_1_1"
        );
        assert_eq!(expand_format("%F", &c).unwrap(), "c-1000593576-20260304-13");
        assert_eq!(
            expand_format("%d_%n_%T_%Y%M%D_%t_%%", &c).unwrap(),
            format!("ORCL_ORCLxxxx_20260304_20260304_{}_%", c.set_stamp.0)
        );
        assert_eq!(
            expand_format("rman/%d/%e_%h_%f_%N_%b_%a_%I", &c).unwrap(),
            "rman/ORCL/42_1_6_USERS_users01.dbf_3456789_1000593576"
        );
    }

    #[test]
    fn copy_names() {
        let mut c = ctx();
        c.kind = FormatKind::DatafileCopy;
        assert_eq!(
            expand_format("%U", &c).unwrap(),
            "data-D-ORCL_id-1000593576_TS-USERS_FNO-6_dn4i520q"
        );
        c.kind = FormatKind::ArchivedLogCopy;
        assert_eq!(
            expand_format("%U", &c).unwrap(),
            "arch-D_ORCL-id-1000593576_S-42_T-1_A-3456789_dn4i520q"
        );
        c.kind = FormatKind::ControlfileCopy;
        assert_eq!(
            expand_format("%U", &c).unwrap(),
            "cf-D_ORCL-id-1000593576_dn4i520q"
        );
    }

    #[test]
    fn errors() {
        let mut c = ctx();
        assert_eq!(
            expand_format("%q", &c),
            Err(FormatError::UnknownVariable('q'))
        );
        assert_eq!(expand_format("abc%", &c), Err(FormatError::TrailingPercent));
        c.sequence = None;
        assert!(matches!(
            expand_format("%e", &c),
            Err(FormatError::NotApplicable { var: 'e', .. })
        ));
        assert!(matches!(
            expand_format(&"x".repeat(600), &c),
            Err(FormatError::TooLong(600))
        ));
    }

    proptest! {
        #[test]
        fn unique_u_is_8_base32(set in any::<u32>(), st in any::<u32>()) {
            let u = unique_u(set, OracleTime(st));
            prop_assert_eq!(u.len(), 8);
            prop_assert!(u.bytes().all(|b| BASE32.contains(&b)));
        }

        #[test]
        fn never_panics(f in "[%a-zA-Z_/.%]{0,40}") {
            let _ = expand_format(&f, &ctx());
        }
    }
}
