//! How a failed action is reported: the errno the coordinator gets (lustre-abi §4.3: HP_FLAG_RETRY only
//! for ETIMEDOUT, as lhsmtool_posix does), a short machine-readable reason, and the HTTP details that go
//! into the failure log.

use blob::FailureReason;

/// `HP_FLAG_RETRY` from `lustre_user.h`.
pub const HP_FLAG_RETRY: i32 = 0x02;

/// Why an action failed, in the terms the coordinator and the failure log need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Positive errno passed to `action_end`.
    pub errno: i32,
    /// Set HP_FLAG_RETRY (transient failures only).
    pub retry: bool,
    /// The keyword of the failure log (documented in the README).
    pub reason: FailureReason,
    /// What failed, for people (the log line and the failure entry).
    pub message: String,
    /// The HTTP status of a blob-store failure, when the store answered.
    pub http_status: Option<u16>,
    /// Azure's error code of a blob-store failure (`ConditionNotMet`, ...).
    pub azure_code: Option<String>,
}

impl Failure {
    /// A failure ending the action with `errno`; only ETIMEDOUT asks for a retry.
    pub fn new(errno: i32, reason: FailureReason, message: impl Into<String>) -> Failure {
        Failure {
            errno,
            retry: errno == libc::ETIMEDOUT,
            reason,
            message: message.into(),
            http_status: None,
            azure_code: None,
        }
    }

    /// The `hp_flags` for `action_end`.
    pub fn hp_flags(&self) -> i32 {
        if self.retry {
            HP_FLAG_RETRY
        } else {
            0
        }
    }

    /// A dry run's answer: what would have been done; nothing was written (EOPNOTSUPP).
    pub fn dry_run(what: String) -> Failure {
        Failure::new(libc::EOPNOTSUPP, FailureReason::DryRun, what)
    }

    /// Prefixes the message with what was being done (`upload d/f: ...`).
    pub fn context(mut self, what: &str) -> Failure {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl From<blob::Error> for Failure {
    fn from(e: blob::Error) -> Failure {
        use blob::Error as E;
        // Errors of the store as a whole (container missing, credentials refused) get errnos of
        // their own, so the policy engine tells them from the file's own errors and waits them
        // out instead of failing the file for good.
        let container_missing = e.azure_code() == Some("ContainerNotFound");
        let (errno, reason) = match &e {
            _ if container_missing => (libc::ENOMEDIUM, FailureReason::ContainerMissing),
            E::Conflict(_) => (libc::EEXIST, FailureReason::Conflict),
            E::NotFound(_) => (libc::ENOENT, FailureReason::NotFound),
            E::PermissionDenied(_) => (libc::EKEYREJECTED, FailureReason::PermissionDenied),
            E::InvalidName(_) | E::InvalidMetadata(_) => (libc::EINVAL, FailureReason::InvalidName),
            E::Transient(_) => (libc::ETIMEDOUT, FailureReason::Transient),
            E::Permanent(_) | E::Config(_) => (libc::EIO, FailureReason::BlobError),
            E::Cancelled => (libc::ECANCELED, FailureReason::Cancelled),
            E::Io { source, .. } => (
                source.raw_os_error().unwrap_or(libc::EIO),
                FailureReason::Io,
            ),
            E::Integrity { .. } => (libc::EIO, FailureReason::Corrupt),
        };
        let mut f = Failure::new(errno, reason, e.to_string());
        f.http_status = e.http_status();
        f.azure_code = e.azure_code().map(str::to_string);
        f
    }
}

impl From<lustre::Error> for Failure {
    fn from(e: lustre::Error) -> Failure {
        let errno = errno_of(&e);
        let reason = if errno == libc::ECANCELED {
            FailureReason::Cancelled
        } else {
            FailureReason::Lustre
        };
        Failure::new(errno, reason, e.to_string())
    }
}

/// The errno of a failed Lustre call; EIO when the library itself is unusable (it has none).
pub fn errno_of(e: &lustre::Error) -> i32 {
    e.errno().unwrap_or(libc::EIO)
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::new(
            e.raw_os_error().unwrap_or(libc::EIO),
            FailureReason::Io,
            e.to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store failure as `blob` reports one, with Azure's status and code.
    fn answered(status: u16, code: &str) -> blob::Failure {
        blob::Failure {
            op: "put blob",
            name: "d/f".into(),
            status: Some(status),
            code: Some(code.into()),
            message: "x".into(),
        }
    }

    #[test]
    fn store_errors_map_to_coordinator_errnos() {
        let conflict = Failure::from(blob::Error::Conflict(answered(409, "BlobAlreadyExists")));
        assert_eq!(
            (conflict.errno, conflict.reason),
            (libc::EEXIST, FailureReason::Conflict)
        );
        let denied = blob::Error::PermissionDenied(answered(403, "AuthorizationFailure"));
        assert_eq!(Failure::from(denied).errno, libc::EKEYREJECTED);
        let name = blob::BlobName::new("a/../b").unwrap_err();
        assert_eq!(Failure::from(blob::Error::from(name)).errno, libc::EINVAL);
        let missing = blob::Error::NotFound(answered(404, "BlobNotFound"));
        assert_eq!(Failure::from(missing).errno, libc::ENOENT);
        assert_eq!(Failure::from(blob::Error::Cancelled).errno, libc::ECANCELED);
        let io = blob::Error::Io {
            op: "read",
            source: std::io::Error::from_raw_os_error(libc::EROFS),
        };
        assert_eq!(
            (
                Failure::from(io).errno,
                Failure::from(blob::Error::Cancelled).reason
            ),
            (libc::EROFS, FailureReason::Cancelled)
        );
    }

    #[test]
    fn a_missing_container_is_told_from_a_missing_blob() {
        let f = Failure::from(blob::Error::Permanent(answered(404, "ContainerNotFound")));
        assert_eq!(
            (f.errno, f.reason),
            (libc::ENOMEDIUM, FailureReason::ContainerMissing)
        );
        let f = Failure::from(blob::Error::NotFound(answered(404, "BlobNotFound")));
        assert_eq!(f.errno, libc::ENOENT);
    }

    #[test]
    fn only_transient_failures_ask_for_retry() {
        let t = Failure::from(blob::Error::Transient(answered(503, "ServerBusy")));
        assert_eq!(t.errno, libc::ETIMEDOUT);
        assert_eq!(t.hp_flags(), HP_FLAG_RETRY);
        for e in [
            blob::Error::Conflict(answered(412, "ConditionNotMet")),
            blob::Error::PermissionDenied(answered(403, "AuthorizationFailure")),
            blob::Error::Permanent(answered(400, "InvalidHeaderValue")),
            blob::Error::Integrity {
                name: "d/f".into(),
                detail: "crc".into(),
            },
        ] {
            let shown = e.to_string();
            assert_eq!(Failure::from(e).hp_flags(), 0, "{shown}");
        }
    }

    #[test]
    fn http_details_are_kept() {
        let f = Failure::from(blob::Error::PermissionDenied(answered(
            403,
            "AuthorizationFailure",
        )));
        assert_eq!(f.http_status, Some(403));
        assert_eq!(f.azure_code.as_deref(), Some("AuthorizationFailure"));
    }

    #[test]
    fn lustre_errors_keep_their_errno_and_a_cancel_is_told_apart() {
        let busy = Failure::from(lustre::Error::Call {
            call: "llapi_hsm_action_end",
            errno: libc::EBUSY,
        });
        assert_eq!(
            (busy.errno, busy.reason),
            (libc::EBUSY, FailureReason::Lustre)
        );
        assert!(
            busy.message.starts_with("llapi_hsm_action_end:"),
            "{}",
            busy.message
        );
        let cancelled = Failure::from(lustre::Error::Call {
            call: "llapi_hsm_action_progress",
            errno: libc::ECANCELED,
        });
        assert_eq!(cancelled.reason, FailureReason::Cancelled);
    }
}
