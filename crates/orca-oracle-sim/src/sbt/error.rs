//! SBT failures and the ORA- lines Oracle prints for them.

use serde::{Deserialize, Serialize};

/// The SBT entry point that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SbtCall {
    Init,
    Init2,
    Backup,
    Write2,
    Close2,
    Info2,
    Restore,
    Read2,
    Remove2,
    Command,
    End,
}

impl SbtCall {
    /// The C name of the entry point.
    pub fn name(self) -> &'static str {
        match self {
            SbtCall::Init => "sbtinit",
            SbtCall::Init2 => "sbtinit2",
            SbtCall::Backup => "sbtbackup",
            SbtCall::Write2 => "sbtwrite2",
            SbtCall::Close2 => "sbtclose2",
            SbtCall::Info2 => "sbtinfo2",
            SbtCall::Restore => "sbtrestore",
            SbtCall::Read2 => "sbtread2",
            SbtCall::Remove2 => "sbtremove2",
            SbtCall::Command => "sbtcommand",
            SbtCall::End => "sbtend",
        }
    }
}

/// Why an SBT operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SbtError {
    /// `dlopen` or the `sbtinit` symbol lookup failed.
    #[error("cannot load SBT library {path}: {reason}")]
    Load { path: String, reason: String },
    /// `sbtinit` returned -1 with this bserc.
    #[error("sbtinit failed: bsercoer={code} bsercerrno={errno}")]
    Init { code: i32, errno: i32 },
    /// The library broke the API contract (missing tags, bad sizes, missing functions).
    #[error("media manager protocol error: {0}")]
    Protocol(String),
    /// A v2 call returned -1; `code` and `text` come from `sbterror`.
    #[error("{} returned error {code}: {text}", call.name())]
    Call {
        call: SbtCall,
        code: u64,
        text: String,
    },
    /// The simulator refused to pass an argument the API cannot carry.
    #[error("{}: {reason}", call.name())]
    Argument { call: SbtCall, reason: String },
    /// The channel server process died or its pipe broke.
    #[error("channel server lost: {0}")]
    Channel(String),
}

/// What the failing operation was working on, for the ORA- lines that name it.
#[derive(Debug, Clone, Default)]
pub struct ErrorSite<'a> {
    /// Backup piece handle.
    pub handle: Option<&'a str>,
    /// Buffer number within the file and buffer size (write/read errors).
    pub block: Option<(u64, usize)>,
    /// SEND text.
    pub command: Option<&'a str>,
}

const ORA_19511: &str =
    "ORA-19511: non RMAN, but media manager or vendor specific failure, error text:";

impl SbtError {
    /// The ORA- lines RMAN prints under its RMAN-03009 line for this failure.
    pub fn ora_lines(&self, site: &ErrorSite<'_>) -> Vec<String> {
        let handle = site.handle.unwrap_or("");
        let (block, bs) = site.block.unwrap_or((0, 0));
        match self {
            SbtError::Load { reason, .. } => vec![
                "ORA-19554: error allocating device, device type: SBT_TAPE, device name: ".into(),
                "ORA-27211: Failed to load Media Management Library".into(),
                format!("Additional information: {reason}"),
            ],
            SbtError::Init { code, errno } => vec![
                "ORA-19554: error allocating device, device type: SBT_TAPE, device name: ".into(),
                "ORA-27000: skgfqpini: failed to initialize storage subsystem (SBT) layer".into(),
                format!("Additional information: {code}"),
                format!("Additional information: {errno}"),
            ],
            SbtError::Protocol(reason) => vec![
                "ORA-19554: error allocating device, device type: SBT_TAPE, device name: ".into(),
                "ORA-27023: skgfqsbi: media manager protocol error".into(),
                format!("Additional information: {reason}"),
            ],
            SbtError::Argument { call, reason } => vec![
                format!("ORA-27023: {}: media manager protocol error", call.name()),
                format!("Additional information: {reason}"),
            ],
            SbtError::Channel(reason) => vec![
                "ORA-03113: end-of-file on communication channel".into(),
                format!("Additional information: {reason}"),
            ],
            SbtError::Call { call, text, .. } => {
                let mut lines: Vec<String> = match call {
                    SbtCall::Init | SbtCall::Init2 => vec![
                        "ORA-19554: error allocating device, device type: SBT_TAPE, device name: "
                            .into(),
                        "ORA-27023: skgfqsbi: media manager protocol error".into(),
                    ],
                    SbtCall::Backup => vec![
                        format!(
                            "ORA-19506: failed to create sequential file, name=\"{handle}\", parms=\"\""
                        ),
                        "ORA-27028: skgfqcre: sbtbackup returned error".into(),
                    ],
                    SbtCall::Write2 => vec![
                        format!(
                            "ORA-19502: write error on file \"{handle}\", block number {block} (block size={bs})"
                        ),
                        "ORA-27030: skgfwrt: sbtwrite2 returned error".into(),
                    ],
                    SbtCall::Close2 => vec![
                        format!(
                            "ORA-19502: write error on file \"{handle}\", block number {block} (block size={bs})"
                        ),
                        "ORA-27192: skgfcls: sbtclose2 returned error - failed to close file"
                            .into(),
                    ],
                    SbtCall::Info2 => vec!["ORA-27191: sbtinfo2 returned error".into()],
                    SbtCall::Restore => vec![
                        format!(
                            "ORA-19507: failed to retrieve sequential file, handle=\"{handle}\", parms=\"\""
                        ),
                        "ORA-27029: skgfrtrv: sbtrestore returned error".into(),
                    ],
                    SbtCall::Read2 => vec![
                        format!(
                            "ORA-19501: read error on file \"{handle}\", block number {block} (block size={bs})"
                        ),
                        "ORA-27190: skgfrd: sbtread2 returned error".into(),
                    ],
                    SbtCall::Remove2 => vec![
                        format!(
                            "ORA-19509: failed to delete sequential file, handle=\"{handle}\", parms=\"\""
                        ),
                        "ORA-27027: sbtremove2 returned error".into(),
                    ],
                    SbtCall::Command => vec![
                        format!(
                            "ORA-19559: error sending device command: {}",
                            site.command.unwrap_or("")
                        ),
                        "ORA-19557: device error, device type: SBT_TAPE, device name: ".into(),
                        "ORA-27194: skgfdvcmd: sbtcommand returned error".into(),
                    ],
                    SbtCall::End => vec![
                        "ORA-19557: device error, device type: SBT_TAPE, device name: ".into(),
                        "ORA-27193: skgfdvcls: sbtend returned error".into(),
                    ],
                };
                lines.push(ORA_19511.into());
                lines.push(format!("   {text}"));
                lines
            }
        }
    }

    /// True when this failure came from allocating the channel (RMAN says "allocate command").
    pub fn is_allocation(&self) -> bool {
        matches!(
            self,
            SbtError::Load { .. }
                | SbtError::Init { .. }
                | SbtError::Protocol(_)
                | SbtError::Call {
                    call: SbtCall::Init | SbtCall::Init2,
                    ..
                }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_failure_names_the_handle_and_carries_the_library_text() {
        let e = SbtError::Call {
            call: SbtCall::Backup,
            code: 7503,
            text: "file exists".into(),
        };
        let lines = e.ora_lines(&ErrorSite {
            handle: Some("abc_1_1"),
            ..Default::default()
        });
        assert_eq!(
            lines,
            vec![
                "ORA-19506: failed to create sequential file, name=\"abc_1_1\", parms=\"\"",
                "ORA-27028: skgfqcre: sbtbackup returned error",
                ORA_19511,
                "   file exists",
            ]
        );
    }
}
