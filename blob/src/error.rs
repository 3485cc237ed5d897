//! Errors of the blob layer, classified for the callers' retry decisions (DESIGN §5): transient
//! (timeouts, connection errors, 408/429/5xx) vs permanent (403, 404 container, 409, invalid
//! name), keeping the HTTP status and Azure error code when known. Messages are scrubbed of
//! secrets and URL query strings (a SAS travels in the query) before they are stored.

use object_store::client::HttpError;

use crate::metadata::MetadataError;
use crate::name::NameError;

/// What failed, where, and what the service said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The operation (`put block list`, `get`, `delete`, ...).
    pub op: &'static str,
    /// The blob name (or container) concerned.
    pub name: String,
    /// The HTTP status, when the store answered.
    pub status: Option<u16>,
    /// Azure's error code (`BlobAlreadyExists`, `ConditionNotMet`, `AuthenticationFailed`, ...).
    pub code: Option<String>,
    /// The store's message, or the transport error.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.op, self.name)?;
        if let Some(s) = self.status {
            write!(f, ": HTTP {s}")?;
        }
        if let Some(c) = &self.code {
            write!(f, " {c}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
/// Every error of the blob layer, by what the caller can do about it.
pub enum Error {
    /// The blob changed on the blob side (create-only found one, or the ETag no longer matches).
    #[error("conflict: {0}")]
    Conflict(Failure),
    #[error("not found: {0}")]
    /// No such blob or container.
    NotFound(Failure),
    #[error("permission denied: {0}")]
    /// Credentials refused or not allowed (HTTP 401/403).
    PermissionDenied(Failure),
    #[error("invalid blob name: {0}")]
    /// A name a blob cannot carry.
    InvalidName(#[from] NameError),
    #[error("invalid blob metadata: {0}")]
    /// Metadata that does not read as ours.
    InvalidMetadata(#[from] MetadataError),
    /// Worth retrying later: timeouts, connection errors, throttling, server errors.
    #[error("transient failure: {0}")]
    Transient(Failure),
    #[error("{0}")]
    /// Any other error of the store: retrying will not help.
    Permanent(Failure),
    /// The content read back (or the file read for upload) does not match what was expected.
    #[error("integrity check failed for {name:?}: {detail}")]
    Integrity {
        /// The blob.
        name: String,
        /// What differed.
        detail: String,
    },
    #[error("cancelled")]
    /// Cancelled by its token.
    Cancelled,
    /// A local read or write failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        #[source]
        /// The OS error.
        source: std::io::Error,
    },
    #[error("blob target configuration: {0}")]
    /// The target or the credentials are misconfigured.
    Config(String),
}

impl Error {
    /// Worth retrying (the same operation may succeed later).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Transient(_))
    }

    /// Whether the error is about the store as a whole rather than this blob: unreachable,
    /// throttled, the container missing, or the credentials refused. Such an error goes away
    /// when the environment is fixed, so work that met it is worth another try later.
    pub fn is_environmental(&self) -> bool {
        match self {
            Error::Transient(_) | Error::PermissionDenied(_) => true,
            Error::Permanent(f) => f.code.as_deref() == Some("ContainerNotFound"),
            _ => false,
        }
    }

    /// A conditional write lost (HTTP 409/412).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }

    /// The blob (or container) is not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }

    fn failure(&self) -> Option<&Failure> {
        match self {
            Error::Conflict(f)
            | Error::NotFound(f)
            | Error::PermissionDenied(f)
            | Error::Transient(f)
            | Error::Permanent(f) => Some(f),
            _ => None,
        }
    }

    /// The HTTP status, when the service answered.
    pub fn http_status(&self) -> Option<u16> {
        self.failure().and_then(|f| f.status)
    }

    /// Azure's error code, when the service gave one.
    pub fn azure_code(&self) -> Option<&str> {
        self.failure().and_then(|f| f.code.as_deref())
    }

    /// A short machine-friendly kind, for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Conflict(_) => "conflict",
            Error::NotFound(_) => "not_found",
            Error::PermissionDenied(_) => "permission_denied",
            Error::InvalidName(_) => "invalid_name",
            Error::InvalidMetadata(_) => "invalid_metadata",
            Error::Transient(_) => "transient",
            Error::Permanent(_) => "permanent",
            Error::Integrity { .. } => "integrity",
            Error::Cancelled => "cancelled",
            Error::Io { .. } => "io",
            Error::Config(_) => "config",
        }
    }

    pub(crate) fn io(op: &'static str, source: std::io::Error) -> Error {
        Error::Io { op, source }
    }
}

/// Builds classified errors with secrets scrubbed.
#[derive(Clone, Default)]
pub(crate) struct Classifier {
    secrets: std::sync::Arc<Vec<String>>,
}

impl Classifier {
    pub fn new(secrets: Vec<String>) -> Classifier {
        Classifier {
            secrets: std::sync::Arc::new(secrets),
        }
    }

    /// Removes secrets and URL query strings from a message.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = strip_url_queries(text);
        for s in self.secrets.iter() {
            if !s.is_empty() {
                out = out.replace(s.as_str(), "<redacted>");
            }
        }
        out
    }

    /// Classifies an HTTP answer from our own signed requests.
    pub fn http_error(&self, op: &'static str, name: &str, status: u16, body: &str) -> Error {
        let (code, message) = parse_azure_body(body);
        self.classify(op, name, Some(status), code, message)
    }

    /// Classifies an object_store error. object_store keeps its retry error type private, so the
    /// status and Azure body are read from the error chain's text (`... status code: 412 ...: <Error>...`),
    /// transport failures from its public `HttpError`, and the variant gives the status otherwise.
    pub fn store_error(&self, op: &'static str, name: &str, err: object_store::Error) -> Error {
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = src {
            if let Some(h) = e.downcast_ref::<HttpError>() {
                let f = Failure {
                    op,
                    name: name.to_string(),
                    status: None,
                    code: None,
                    message: self.scrub(&format!("{:?}: {}", h.kind(), chain_text(h))),
                };
                // Every transport failure is worth another try, `Decode` included: a body cut
                // short by a server that died mid-answer is reported as a decode error.
                return Error::Transient(f);
            }
            src = e.source();
        }
        let text = chain_text(&err);
        let status = status_from_text(&text).or(match &err {
            object_store::Error::NotFound { .. } => Some(404),
            object_store::Error::Precondition { .. } => Some(412),
            object_store::Error::AlreadyExists { .. } => Some(409),
            object_store::Error::PermissionDenied { .. } => Some(403),
            object_store::Error::Unauthenticated { .. } => Some(401),
            _ => None,
        });
        let (code, message) = match text.find("<?xml").or_else(|| text.find("<Error>")) {
            Some(i) => parse_azure_body(&text[i..]),
            None => (None, String::new()),
        };
        let message = if status.is_some() && !message.is_empty() {
            message
        } else if status.is_some() {
            String::new()
        } else {
            text
        };
        self.classify(op, name, status, code, message)
    }

    fn classify(
        &self,
        op: &'static str,
        name: &str,
        status: Option<u16>,
        code: Option<String>,
        message: String,
    ) -> Error {
        let f = Failure {
            op,
            name: name.to_string(),
            status,
            code,
            message: self.scrub(&message),
        };
        match (status, f.code.as_deref()) {
            (Some(412), _) => Error::Conflict(f),
            (Some(409), Some("BlobAlreadyExists")) | (Some(409), None) if op.starts_with("put") => {
                Error::Conflict(f)
            }
            (Some(404), Some("ContainerNotFound")) => Error::Permanent(f),
            (Some(404), _) => Error::NotFound(f),
            (Some(401), _) | (Some(403), _) => Error::PermissionDenied(f),
            (Some(408), _) | (Some(429), _) => Error::Transient(f),
            (Some(s), _) if s >= 500 => Error::Transient(f),
            _ => Error::Permanent(f),
        }
    }
}

/// `... status code: 412 Precondition Failed ...` -> 412.
fn status_from_text(text: &str) -> Option<u16> {
    let i = text.find("status code: ")? + "status code: ".len();
    let digits: String = text[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok().filter(|s| (100..600).contains(s))
}

fn chain_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        src = s.source();
    }
    text
}

/// Azure error bodies: `<Error><Code>X</Code><Message>Y\nRequestId:...</Message>...</Error>`.
/// Only the code and the first line of the message are kept (the rest can echo signatures).
pub(crate) fn parse_azure_body(body: &str) -> (Option<String>, String) {
    let tag = |t: &str| {
        let open = format!("<{t}>");
        let close = format!("</{t}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&close)? + start;
        Some(body[start..end].to_string())
    };
    let code = tag("Code");
    let message = tag("Message")
        .map(|m| m.lines().next().unwrap_or("").to_string())
        .unwrap_or_default();
    (code, message)
}

/// Replaces the query string of every `http://` / `https://` URL in `text` with `?<redacted>`.
fn strip_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("http") {
        let (before, from) = rest.split_at(pos);
        out.push_str(before);
        if from.starts_with("http://") || from.starts_with("https://") {
            let end = from
                .find(|c: char| c.is_whitespace() || c == ')' || c == '"' || c == '\'' || c == '>')
                .unwrap_or(from.len());
            let url = &from[..end];
            match url.find('?') {
                Some(q) => {
                    out.push_str(&url[..q]);
                    out.push_str("?<redacted>");
                }
                None => out.push_str(url),
            }
            rest = &from[end..];
        } else {
            out.push_str("http");
            rest = &from[4..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::client::HttpErrorKind;

    #[test]
    fn store_wide_errors_are_environmental_and_blob_errors_are_not() {
        let c = Classifier::default();
        let missing = c.http_error("put", "a", 404, "<Code>ContainerNotFound</Code>");
        assert!(missing.is_environmental(), "{missing:?}");
        assert!(!missing.is_transient());
        let denied = c.http_error("put", "a", 403, "<Code>AuthenticationFailed</Code>");
        assert!(denied.is_environmental());
        let busy = c.http_error("put", "a", 503, "<Code>ServerBusy</Code>");
        assert!(busy.is_environmental());
        let gone = c.http_error("get", "a", 404, "<Code>BlobNotFound</Code>");
        assert!(!gone.is_environmental());
        let conflict = c.http_error("put", "a", 412, "<Code>ConditionNotMet</Code>");
        assert!(!conflict.is_environmental());
    }

    #[test]
    fn classifies_statuses() {
        let c = Classifier::default();
        let e = c.http_error(
            "put block list",
            "a",
            412,
            "<Error><Code>ConditionNotMet</Code><Message>no\nRequestId:1</Message></Error>",
        );
        assert!(e.is_conflict());
        assert_eq!(e.http_status(), Some(412));
        assert_eq!(e.azure_code(), Some("ConditionNotMet"));
        assert!(!e.to_string().contains("RequestId"));
        assert!(c
            .http_error("put blob", "a", 409, "<Code>BlobAlreadyExists</Code>")
            .is_conflict());
        let mem = c.http_error(
            "put blob",
            "a",
            409,
            "<Code>MemoryExtentStoreAtSizeLimit</Code>",
        );
        assert!(!mem.is_conflict() && !mem.is_transient());
        assert!(c
            .http_error("get", "a", 404, "<Code>BlobNotFound</Code>")
            .is_not_found());
        assert!(matches!(
            c.http_error("get", "a", 404, "<Code>ContainerNotFound</Code>"),
            Error::Permanent(_)
        ));
        assert!(matches!(
            c.http_error("get", "a", 403, ""),
            Error::PermissionDenied(_)
        ));
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(c.http_error("get", "a", s, "").is_transient(), "{s}");
        }
        assert!(matches!(
            c.http_error("get", "a", 400, ""),
            Error::Permanent(_)
        ));
    }

    #[test]
    fn reads_status_from_object_store_text() {
        assert_eq!(status_from_text("Error performing PUT in 1s - Server returned non-2xx status code: 503 Service Unavailable: x"), Some(503));
        assert_eq!(status_from_text("nothing"), None);
        let c = Classifier::default();
        let e = c.store_error(
            "get",
            "x",
            object_store::Error::NotFound { path: "x".into(), source: "Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?><Error><Code>BlobNotFound</Code><Message>gone</Message></Error>".into() },
        );
        assert!(e.is_not_found());
        assert_eq!(e.azure_code(), Some("BlobNotFound"));
        assert_eq!(e.http_status(), Some(404));
    }

    #[test]
    fn every_transport_failure_is_transient_even_a_cut_body() {
        let c = Classifier::default();
        for kind in [
            HttpErrorKind::Connect,
            HttpErrorKind::Request,
            HttpErrorKind::Timeout,
            HttpErrorKind::Interrupted,
            HttpErrorKind::Decode,
            HttpErrorKind::Unknown,
        ] {
            let cause = std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before message completed",
            );
            let err = object_store::Error::Generic {
                store: "MicrosoftAzure",
                source: Box::new(HttpError::new(kind, cause)),
            };
            let e = c.store_error("put blob", "a", err);
            assert!(e.is_transient(), "{kind:?}: {e:?}");
            assert!(e.to_string().contains("connection closed"), "{e}");
        }
    }

    #[test]
    fn scrubs_secrets_and_queries() {
        let c = Classifier::new(vec!["SECRETKEY123".into()]);
        let s = c.scrub(
            "error sending request for url (http://h/c/b?sv=1&sig=abc%2F) key SECRETKEY123 http",
        );
        assert_eq!(
            s,
            "error sending request for url (http://h/c/b?<redacted>) key <redacted> http"
        );
    }
}
