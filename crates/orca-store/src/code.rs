//! The error codes of the backup-store contract (`backup-store-api.md`), with their messages,
//! and the codes ORCA adds for bad requests the contract does not cover.
//!
//! The nine contract codes and their messages are kept bit for bit: template scripts compare
//! them. ORCA's own codes sit in a separate range (`4295626753..`) so they can never be
//! mistaken for a contract code.

use axum::http::StatusCode;
use serde::Serialize;

/// Every code a response may carry besides 0 (success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum Code {
    /// The store is being decommissioned: it takes no new backup.
    DecommissionInProgress,
    /// The store was decommissioned.
    Decommissioned,
    /// No such mount.
    MountMissing,
    /// The mount's directories are not as the store left them.
    MountInconsistent,
    /// The mount was deleted and goes once its points are uploaded.
    MountMarkedForDelete,
    /// The mount's directory cannot be made or exported.
    ExportFailed,
    /// PUT (end backup) without a POST (start backup) before it.
    StartBackupMissing,
    /// The mount already has `max_pending` points waiting for upload.
    MaxPendingSnapshots,
    /// The restore's directory is gone.
    RestorePathMissing,
    // ORCA's own, for what the contract leaves open.
    /// The request is malformed.
    BadRequest,
    /// The mount name is not valid ([`crate::validate_mount`]).
    InvalidMountName,
    /// No such route.
    UnknownRoute,
    /// The request body is over the limit.
    BodyTooLarge,
    /// A mount of that name exists.
    MountExists,
    /// No such recovery point.
    RecoveryPointMissing,
    /// No such restore job.
    RestoreJobMissing,
    /// The store failed; the detail says how.
    Internal,
    /// An admin route without the store's admin token.
    Unauthorized,
    /// The request body did not arrive within the store's body timeout (408).
    RequestTimeout,
}

impl Code {
    /// Every code, for the OpenAPI description and the tests.
    pub const ALL: [Code; 19] = [
        Code::DecommissionInProgress,
        Code::Decommissioned,
        Code::MountMissing,
        Code::MountInconsistent,
        Code::MountMarkedForDelete,
        Code::ExportFailed,
        Code::StartBackupMissing,
        Code::MaxPendingSnapshots,
        Code::RestorePathMissing,
        Code::BadRequest,
        Code::InvalidMountName,
        Code::UnknownRoute,
        Code::BodyTooLarge,
        Code::MountExists,
        Code::RecoveryPointMissing,
        Code::RestoreJobMissing,
        Code::Internal,
        Code::Unauthorized,
        Code::RequestTimeout,
    ];

    /// The number the contract (or ORCA) gives the code.
    pub fn value(self) -> u64 {
        match self {
            Code::DecommissionInProgress => 4295622675,
            Code::Decommissioned => 4295622676,
            Code::MountMissing => 4295622665,
            Code::MountInconsistent => 4295622669,
            Code::MountMarkedForDelete => 4295622667,
            Code::ExportFailed => 4295622670,
            Code::StartBackupMissing => 4295622659,
            Code::MaxPendingSnapshots => 4295622664,
            Code::RestorePathMissing => 4295622663,
            Code::BadRequest => 4295626753,
            Code::InvalidMountName => 4295626754,
            Code::UnknownRoute => 4295626755,
            Code::BodyTooLarge => 4295626756,
            Code::MountExists => 4295626757,
            Code::RecoveryPointMissing => 4295626758,
            Code::RestoreJobMissing => 4295626759,
            Code::Internal => 4295626760,
            Code::Unauthorized => 4295626761,
            Code::RequestTimeout => 4295626762,
        }
    }

    /// The message of the contract, or ORCA's fixed prefix for its own codes (the handler
    /// appends what exactly was wrong).
    pub fn message(self) -> &'static str {
        match self {
            Code::DecommissionInProgress => "Store Decommission in progress.",
            Code::Decommissioned => "Store was decommissioned.",
            Code::MountMissing => "Backup mount does not exist on Export Service.",
            Code::MountInconsistent => "Backup mount is inconsistent state on Export Service.",
            Code::MountMarkedForDelete => "Backup mount marked for delete on Export Service.",
            Code::ExportFailed => "Failed to export path to NFS.",
            Code::StartBackupMissing => "START_BACKUP cmd not received yet.",
            Code::MaxPendingSnapshots => "Backup mount exceeded max pending snapshots.",
            Code::RestorePathMissing => "Restore Path is missing on Export Service.",
            Code::BadRequest => "Bad request.",
            Code::InvalidMountName => "Invalid backup mount name.",
            Code::UnknownRoute => "No such API route.",
            Code::BodyTooLarge => "Request body too large.",
            Code::MountExists => "Backup mount already exists.",
            Code::RecoveryPointMissing => "Recovery point does not exist.",
            Code::RestoreJobMissing => "Restore job does not exist.",
            Code::Internal => "Internal error on the backup store.",
            Code::Unauthorized => "The admin routes need the store's admin token.",
            Code::RequestTimeout => "The request body did not arrive in time.",
        }
    }

    /// Whether the contract defines the code (its message is then sent unchanged).
    pub fn is_contract(self) -> bool {
        self.value() < 4295626753
    }

    /// The HTTP status an answer with this code carries.
    pub fn status(self) -> StatusCode {
        match self {
            Code::DecommissionInProgress | Code::Decommissioned => StatusCode::SERVICE_UNAVAILABLE,
            Code::MountMissing
            | Code::RestorePathMissing
            | Code::UnknownRoute
            | Code::RecoveryPointMissing
            | Code::RestoreJobMissing => StatusCode::NOT_FOUND,
            Code::MountInconsistent | Code::ExportFailed | Code::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Code::MountMarkedForDelete
            | Code::StartBackupMissing
            | Code::MountExists
            | Code::MaxPendingSnapshots => StatusCode::CONFLICT,
            Code::BadRequest | Code::InvalidMountName => StatusCode::BAD_REQUEST,
            Code::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The code numbered `v`, if any.
    pub fn from_value(v: u64) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.value() == v)
    }
}

/// A refused request: the code, and for ORCA's own codes what exactly was wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} ({})", .code.message(), .detail)]
pub struct ApiError {
    /// The code.
    pub code: Code,
    /// What exactly was wrong (sent only with ORCA's own codes).
    pub detail: String,
    /// Set on answers about a mount: the envelope's `result` then names it.
    pub mount: Option<String>,
}

impl ApiError {
    /// A refusal with `code` and `detail`.
    pub fn new(code: Code, detail: impl Into<String>) -> ApiError {
        ApiError {
            code,
            detail: detail.into(),
            mount: None,
        }
    }

    /// The same refusal, about mount `mount`.
    pub fn on(mut self, mount: &str) -> ApiError {
        self.mount = Some(mount.to_string());
        self
    }

    /// The envelope's `error_msg`: a contract code's message exactly; ORCA's own with the detail.
    pub fn text(&self) -> String {
        if self.code.is_contract() || self.detail.is_empty() {
            self.code.message().to_string()
        } else {
            format!("{} {}", self.code.message(), self.detail)
        }
    }
}

pub fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::Internal, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.value()), "{c:?}");
            assert_eq!(Code::from_value(c.value()), Some(c));
        }
        assert_eq!(Code::ALL.iter().filter(|c| c.is_contract()).count(), 9);
    }

    #[test]
    fn contract_messages_are_sent_unchanged() {
        let e = ApiError::new(Code::MaxPendingSnapshots, "5 of 5 pending");
        assert_eq!(e.text(), "Backup mount exceeded max pending snapshots.");
        let e = ApiError::new(Code::BadRequest, "no `file` part");
        assert_eq!(e.text(), "Bad request. no `file` part");
    }
}
