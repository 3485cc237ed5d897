//! How a failed action is reported: the errno the coordinator gets (lustre-abi §4.3: HP_FLAG_RETRY only
//! for ETIMEDOUT, as lhsmtool_posix does), a short machine-readable reason, and the HTTP details that go
//! into the failure log.

use blob::FailureReason;

use crate::ports::{CtError, StoreError, StoreErrorKind};

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
    pub message: String,
    pub http_status: Option<u16>,
    pub azure_code: Option<String>,
}

impl Failure {
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

    pub fn context(mut self, what: &str) -> Failure {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        // Errors of the store as a whole (container missing, credentials refused) get errnos of
        // their own, so the policy engine tells them from the file's own errors and waits them
        // out instead of failing the file for good.
        let container_missing = e.azure_code.as_deref() == Some("ContainerNotFound");
        let (errno, reason) = match e.kind {
            _ if container_missing => (libc::ENOMEDIUM, FailureReason::ContainerMissing),
            StoreErrorKind::Conflict => (libc::EEXIST, FailureReason::Conflict),
            StoreErrorKind::NotFound => (libc::ENOENT, FailureReason::NotFound),
            StoreErrorKind::PermissionDenied => {
                (libc::EKEYREJECTED, FailureReason::PermissionDenied)
            }
            StoreErrorKind::InvalidName => (libc::EINVAL, FailureReason::InvalidName),
            StoreErrorKind::Transient => (libc::ETIMEDOUT, FailureReason::Transient),
            StoreErrorKind::Permanent => (libc::EIO, FailureReason::BlobError),
            StoreErrorKind::Cancelled => (libc::ECANCELED, FailureReason::Cancelled),
            StoreErrorKind::Io => (e.errno.unwrap_or(libc::EIO), FailureReason::Io),
            StoreErrorKind::Corrupt => (libc::EIO, FailureReason::Corrupt),
        };
        let mut f = Failure::new(errno, reason, e.message);
        f.http_status = e.http_status;
        f.azure_code = e.azure_code;
        f
    }
}

impl From<CtError> for Failure {
    fn from(e: CtError) -> Failure {
        let reason = if e.errno == libc::ECANCELED {
            FailureReason::Cancelled
        } else {
            FailureReason::Lustre
        };
        Failure::new(e.errno, reason, e.to_string())
    }
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

    fn map(kind: StoreErrorKind) -> Failure {
        Failure::from(StoreError::new(kind, "x"))
    }

    #[test]
    fn store_errors_map_to_coordinator_errnos() {
        assert_eq!(map(StoreErrorKind::Conflict).errno, libc::EEXIST);
        assert_eq!(
            map(StoreErrorKind::Conflict).reason,
            FailureReason::Conflict
        );
        assert_eq!(
            map(StoreErrorKind::PermissionDenied).errno,
            libc::EKEYREJECTED
        );
        assert_eq!(map(StoreErrorKind::InvalidName).errno, libc::EINVAL);
        assert_eq!(map(StoreErrorKind::NotFound).errno, libc::ENOENT);
        assert_eq!(map(StoreErrorKind::Cancelled).errno, libc::ECANCELED);
    }

    #[test]
    fn a_missing_container_is_told_from_a_missing_blob() {
        let e = StoreError::new(StoreErrorKind::Permanent, "no container")
            .with_http(Some(404), Some("ContainerNotFound".into()));
        let f = Failure::from(e);
        assert_eq!(
            (f.errno, f.reason),
            (libc::ENOMEDIUM, FailureReason::ContainerMissing)
        );
        let e = StoreError::new(StoreErrorKind::NotFound, "no blob")
            .with_http(Some(404), Some("BlobNotFound".into()));
        assert_eq!(Failure::from(e).errno, libc::ENOENT);
    }

    #[test]
    fn only_transient_failures_ask_for_retry() {
        let t = map(StoreErrorKind::Transient);
        assert_eq!(t.errno, libc::ETIMEDOUT);
        assert_eq!(t.hp_flags(), HP_FLAG_RETRY);
        for kind in [
            StoreErrorKind::Conflict,
            StoreErrorKind::PermissionDenied,
            StoreErrorKind::Permanent,
            StoreErrorKind::Corrupt,
        ] {
            assert_eq!(map(kind).hp_flags(), 0, "{kind:?}");
        }
    }

    #[test]
    fn http_details_are_kept() {
        let e = StoreError::new(StoreErrorKind::PermissionDenied, "denied")
            .with_http(Some(403), Some("AuthorizationFailure".into()));
        let f = Failure::from(e);
        assert_eq!(f.http_status, Some(403));
        assert_eq!(f.azure_code.as_deref(), Some("AuthorizationFailure"));
    }
}
