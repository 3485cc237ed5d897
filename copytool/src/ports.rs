//! The two sides the engine talks to, as traits: the HSM coordinator (a `lustre::Copytool` session plus
//! the mount-level calls it needs) and the blob store (`blob::BlobStore`). The real implementations live
//! in `crate::real`; the unit tests use in-memory fakes.

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use blob::RateLimiter;
use tokio_util::sync::CancellationToken;

use crate::model::{ActionList, Extent, Fid, Item};

/// A failed Lustre call: which call and the (positive) errno it returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{call}: {} (errno {errno})", std::io::Error::from_raw_os_error(*errno))]
pub struct CtError {
    pub call: &'static str,
    pub errno: i32,
}

impl CtError {
    pub fn new(call: &'static str, errno: i32) -> CtError {
        CtError {
            call,
            errno: errno.abs(),
        }
    }
}

/// The coordinator side: a registered copytool session and the mount it serves.
///
/// All calls are blocking (they are ioctls or a Unix-socket round trip to the simulator); the engine
/// runs them off the async worker threads.
pub trait Coordinator: Send + Sync + 'static {
    type Action: CopyAction;

    /// Waits up to `timeout` for the next action list; `Ok(None)` when nothing arrived.
    /// `Err` with errno ESHUTDOWN means the file system is being unmounted.
    fn recv(&self, timeout: Duration) -> Result<Option<ActionList>, CtError>;
    /// `llapi_hsm_action_begin(.., is_error = false)`.
    fn begin(&self, item: &Item) -> Result<Self::Action, CtError>;
    /// `llapi_hsm_action_begin(.., is_error = true)`: a handle used only to report a failure.
    fn begin_error(&self, item: &Item) -> Result<Self::Action, CtError>;
    /// The file system name of the mount (to check `hal_fsname`).
    fn fsname(&self) -> String;
    /// Every link of `fid`, relative to the mount root.
    fn fid2path(&self, fid: &Fid) -> Result<Vec<PathBuf>, CtError>;
    /// Opens the file itself (not the action's data fd) read-only, to read or write its export record.
    fn open_by_fid(&self, fid: &Fid) -> Result<File, CtError>;
    /// The file's Lustre data version (changes whenever its data changes).
    /// The layout of a file being archived (`None` when it has none a [`lustre::Striping`] can
    /// hold, or the library cannot tell).
    fn layout(&self, fid: &Fid, file: &File) -> Result<Option<lustre::Striping>, CtError>;
    fn data_version(&self, file: &File) -> Result<u64, CtError>;
    /// After an MDS restart a request a dead copytool had begun cannot be ended by cookie: if the
    /// file's current HSM action is still `action` and running, ask for its cancellation as
    /// `lfs hsm_cancel` does. True when a cancel was requested.
    fn cancel_stale(&self, _fid: &Fid, _action: crate::model::Action) -> Result<bool, CtError> {
        Ok(false)
    }
}

/// One begun action (`struct hsm_copyaction_private`).
pub trait CopyAction: Send + 'static {
    /// Reports `ext` as newly copied. Errno ECANCELED means the coordinator cancelled the request.
    fn progress(&self, ext: Extent, total: u64) -> Result<(), CtError>;
    /// The data fd: the source for ARCHIVE, the volatile destination for RESTORE (use pread/pwrite).
    fn fd(&self) -> Result<File, CtError>;
    /// RESTORE: gives the volatile file `layout` (`None`: the file system default) before any
    /// data is written, as `lhsmtool_posix`'s `ct_restore` does after creating it with
    /// `O_LOV_DELAY_CREATE`.
    fn set_layout(&self, layout: Option<&lustre::Striping>) -> Result<(), CtError>;
    /// `llapi_hsm_action_end`; consumes the handle.
    fn end(self, ext: Extent, hp_flags: i32, errval: i32) -> Result<(), CtError>;
}

/// What kind of blob-store failure happened; decides the errno and whether a retry may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The blob changed behind our back (ETag mismatch, or it exists under create-only).
    Conflict,
    NotFound,
    PermissionDenied,
    InvalidName,
    /// Network failure, timeout, 5xx, throttling: worth retrying later.
    Transient,
    Permanent,
    Cancelled,
    /// Local I/O (reading or writing the Lustre file).
    Io,
    /// Size or checksum of downloaded data did not match.
    Corrupt,
}

/// A blob-store failure with what Azure said about it. Never carries credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
    pub http_status: Option<u16>,
    pub azure_code: Option<String>,
    /// For `Io`: the errno of the local failure.
    pub errno: Option<i32>,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
            http_status: None,
            azure_code: None,
            errno: None,
        }
    }
    pub fn with_http(mut self, status: Option<u16>, code: Option<String>) -> StoreError {
        self.http_status = status;
        self.azure_code = code;
        self
    }
}

/// How an upload may replace an existing blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    Overwrite,
    /// Fail with `Conflict` if the blob exists.
    CreateOnly,
    /// Fail with `Conflict` unless the blob's ETag is this one.
    IfMatch(String),
}

/// POSIX and Lustre metadata stored with a data blob (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub owner: u32,
    pub group: u32,
    pub permissions: u32,
    pub modtime: SystemTime,
    pub fid: String,
    pub mtime_ns: i128,
    pub data_version: u64,
    /// The file's layout, kept in the blob's `lustre_stripe_*` / `lustre_pool` metadata.
    pub layout: Option<lustre::Striping>,
}

/// Called with the total number of bytes transferred so far (as `blob::Progress`).
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

/// Options of one transfer.
#[derive(Clone)]
pub struct TransferOpts {
    pub block_size: u64,
    pub blocks_in_flight: usize,
    pub progress: ProgressFn,
    pub cancel: CancellationToken,
    /// The agent's bandwidth budget, shared by every transfer: each block or range acquires its
    /// length from it before it moves (`-b/--bandwidth`; unlimited when no limit is set).
    pub rate_limit: Arc<RateLimiter>,
}

/// A committed upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub etag: String,
    pub size: u64,
    pub checksum: Option<String>,
}

/// What a HEAD said about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHead {
    pub size: u64,
    pub etag: String,
    /// The blob's `lustre_fid` metadata: the file this copytool exported it from. `None` for a blob
    /// written by another tool (or with metadata that cannot be decoded).
    pub fid: Option<String>,
    /// The layout in the blob's metadata (`None` when absent or not decodable).
    pub layout: Option<lustre::Striping>,
    /// The blob's `lustre_data_version` metadata: the file's data version its content was read at.
    pub data_version: Option<u64>,
}

/// The blob store side.
pub trait Store: Send + Sync + 'static {
    /// The blob name for a path relative to the mount (raw bytes), or `InvalidName` with the reason.
    fn name_for(&self, rel_path: &[u8]) -> Result<String, StoreError>;
    /// Uploads the whole of `file`; commits only when every byte is in (nothing visible on failure or cancel).
    fn upload(
        &self,
        file: &File,
        name: &str,
        meta: &BlobMeta,
        mode: WriteMode,
        opts: TransferOpts,
    ) -> impl Future<Output = Result<Uploaded, StoreError>> + Send;
    /// Downloads the blob into `file` (pwrite), verifying size and checksum; returns the size.
    fn download(
        &self,
        name: &str,
        file: &File,
        opts: TransferOpts,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn head(&self, name: &str)
        -> impl Future<Output = Result<Option<BlobHead>, StoreError>> + Send;
    fn delete(&self, name: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Server-side copy (data and metadata), replacing any blob at `to`.
    fn copy(&self, from: &str, to: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where failure entries go: the logging container through `blob::LogSink` in production.
pub trait FailureLog: Send + Sync + 'static {
    /// Queues an entry; never blocks the action.
    fn record(&self, entry: blob::FailureEntry);
}

impl FailureLog for blob::LogSink {
    fn record(&self, entry: blob::FailureEntry) {
        blob::LogSink::record(self, blob::LogEntry::Failure(entry));
    }
}
