//! The error type of every FFI wrapper: which call failed and with which errno.

use crate::wire::{DecodeError, EncodeError};
use lustre_sys::LoadError;

/// Result of the FFI wrappers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed Lustre operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A liblustreapi call (or a system call made on its behalf) failed with `errno`.
    /// Displays as `llapi_hsm_request: Operation not permitted (errno 1)`.
    #[error("{call}: {} (errno {errno})", describe_errno(*errno))]
    Call {
        /// The C function.
        call: &'static str,
        /// Its (positive) errno.
        errno: i32,
    },
    /// liblustreapi could not be loaded; `tried` names each path with the loader's message.
    #[error("liblustreapi not found (set LUSTREAPI_LIB to its path); tried: {}", tried.join("; "))]
    LibraryNotFound {
        /// Each path tried, with the loader's message.
        tried: Vec<String>,
    },
    /// The library lacks a symbol every supported version exports.
    #[error("{library}: required symbol {symbol} is missing")]
    MissingSymbol {
        /// The library path.
        library: String,
        /// The missing symbol.
        symbol: &'static str,
    },
    /// The loaded library is too old for this call (an optional symbol is missing).
    #[error("{call}: not provided by this liblustreapi")]
    Unsupported {
        /// The call.
        call: &'static str,
    },
    /// The library returned bytes that do not decode.
    #[error("{call}: malformed data: {source}")]
    Decode {
        /// The call.
        call: &'static str,
        /// Why the bytes do not decode.
        #[source]
        source: DecodeError,
    },
    /// A value could not be encoded for the library (e.g. a request too large).
    #[error("{call}: {source}")]
    Encode {
        /// The call.
        call: &'static str,
        /// Why the value does not encode.
        #[source]
        source: EncodeError,
    },
    /// An argument the C API cannot carry (e.g. a path containing a NUL byte).
    #[error("{call}: invalid argument: {reason}")]
    InvalidArgument {
        /// The call.
        call: &'static str,
        /// What is wrong with the argument.
        reason: String,
    },
}

impl Error {
    /// The errno of the failure: the C error for failed calls, `EPROTO` for undecodable data,
    /// `E2BIG`/`EINVAL`/`ENAMETOOLONG` for unencodable values, `ENOSYS` for a missing optional
    /// symbol, `EINVAL` for invalid arguments; `None` when the library itself is unusable.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Call { errno, .. } => Some(*errno),
            Error::Decode { source, .. } => Some(source.errno()),
            Error::Encode { source, .. } => Some(source.errno()),
            Error::Unsupported { .. } => Some(libc::ENOSYS),
            Error::InvalidArgument { .. } => Some(libc::EINVAL),
            Error::LibraryNotFound { .. } | Error::MissingSymbol { .. } => None,
        }
    }

    /// The name of the call that failed, when the failure belongs to one call.
    pub fn call(&self) -> Option<&'static str> {
        match self {
            Error::Call { call, .. }
            | Error::Unsupported { call }
            | Error::Decode { call, .. }
            | Error::Encode { call, .. }
            | Error::InvalidArgument { call, .. } => Some(call),
            Error::LibraryNotFound { .. } | Error::MissingSymbol { .. } => None,
        }
    }

    pub(crate) fn call_failed(call: &'static str, errno: i32) -> Error {
        Error::Call { call, errno }
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Error {
        match e {
            LoadError::NotFound { tried } => Error::LibraryNotFound { tried },
            LoadError::MissingSymbol { library, symbol } => {
                Error::MissingSymbol { library, symbol }
            }
        }
    }
}

/// Maps the `-errno` return convention of liblustreapi: negative values become errors.
pub(crate) fn check(call: &'static str, rc: libc::c_int) -> Result<libc::c_int> {
    if rc < 0 {
        Err(Error::call_failed(
            call,
            rc.checked_neg().unwrap_or(libc::EIO),
        ))
    } else {
        Ok(rc)
    }
}

/// `strerror` text without the `(os error N)` suffix std adds.
fn describe_errno(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_errors_display_the_call_and_errno() {
        let e = Error::call_failed("llapi_hsm_request", libc::EPERM);
        assert_eq!(
            e.to_string(),
            "llapi_hsm_request: Operation not permitted (errno 1)"
        );
        assert_eq!(e.errno(), Some(libc::EPERM));
        assert_eq!(e.call(), Some("llapi_hsm_request"));
    }

    #[test]
    fn check_maps_negative_returns() {
        assert_eq!(check("x", 5).unwrap(), 5);
        assert_eq!(check("x", 0).unwrap(), 0);
        let e = check("llapi_fid2path", -libc::ENOENT).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(e
            .to_string()
            .starts_with("llapi_fid2path: No such file or directory"));
        assert_eq!(check("x", i32::MIN).unwrap_err().errno(), Some(libc::EIO));
    }

    #[test]
    fn load_errors_keep_what_was_tried() {
        let e = Error::from(LoadError::NotFound {
            tried: vec![
                "/a/lib.so (no such file)".into(),
                "liblustreapi.so.1 (x)".into(),
            ],
        });
        assert_eq!(e.errno(), None);
        assert_eq!(
            e.to_string(),
            "liblustreapi not found (set LUSTREAPI_LIB to its path); tried: /a/lib.so (no such file); liblustreapi.so.1 (x)"
        );
        let e = Error::from(LoadError::MissingSymbol {
            library: "x.so".into(),
            symbol: "llapi_fid2path",
        });
        assert_eq!(
            e.to_string(),
            "x.so: required symbol llapi_fid2path is missing"
        );
        assert_eq!(e.call(), None);
    }

    #[test]
    fn other_variants_have_errnos() {
        let d = Error::Decode {
            call: "llapi_hsm_copytool_recv",
            source: DecodeError::Invalid {
                what: "hai_len",
                value: 3,
            },
        };
        assert_eq!(d.errno(), Some(libc::EPROTO));
        assert_eq!(
            d.to_string(),
            "llapi_hsm_copytool_recv: malformed data: hai_len: invalid value 3"
        );
        let u = Error::Unsupported {
            call: "llapi_fid_parse",
        };
        assert_eq!(u.errno(), Some(libc::ENOSYS));
        let i = Error::InvalidArgument {
            call: "llapi_path2fid",
            reason: "NUL".into(),
        };
        assert_eq!(i.errno(), Some(libc::EINVAL));
    }
}
