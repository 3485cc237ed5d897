//! The two sides the engine talks to, as traits: the HSM coordinator (a `lustre::Copytool` session plus
//! the mount-level calls it needs) and the blob store (`blob::BlobStore`). Both speak the lower
//! crates' own types (`lustre::{ActionItem, Fid, Extent, Error}`, `blob::{BlobName, Metadata,
//! UploadOptions, Error}`): the production implementations in `crate::real` are thin, and the unit
//! tests' fakes build the same values.

use std::fs::File;
use std::future::Future;
use std::os::fd::RawFd;
use std::path::PathBuf;

use blob::{BlobInfo, BlobName, DownloadOptions, Downloaded, Metadata, UploadOptions, Uploaded};
use lustre::{ActionItem, ActionList, CopytoolAction, Extent, Fid};

/// The coordinator side: a registered copytool session and the mount it serves.
///
/// All calls are blocking (they are ioctls or a Unix-socket round trip to the simulator); the engine
/// runs them off the async worker threads.
pub trait Coordinator: Send + Sync + 'static {
    /// A begun action.
    type Action: CopyAction;

    /// The descriptor that becomes readable when an action list waits: the read end of the
    /// coordinator's pipe (`llapi_hsm_copytool_get_fd`; the kernel's `kernelcomm` writes to
    /// it). It stays open, and the same, for the life of the coordinator.
    fn fd(&self) -> lustre::Result<RawFd>;
    /// Receives the next action list without waiting: `Ok(None)` when none waits (EAGAIN).
    /// `Err` with errno ESHUTDOWN means the file system is being unmounted.
    fn recv(&self) -> lustre::Result<Option<ActionList>>;
    /// `llapi_hsm_action_begin(.., is_error = false)`.
    fn begin(&self, item: &ActionItem) -> lustre::Result<Self::Action>;
    /// `llapi_hsm_action_begin(.., is_error = true)`: a handle used only to report a failure.
    fn begin_error(&self, item: &ActionItem) -> lustre::Result<Self::Action>;
    /// The file system name of the mount (to check `hal_fsname`).
    fn fsname(&self) -> String;
    /// Every link of `fid`, relative to the mount root.
    fn fid2path(&self, fid: &Fid) -> lustre::Result<Vec<PathBuf>>;
    /// Opens the file itself (not the action's data fd) read-only, to read or write its export record.
    fn open_by_fid(&self, fid: &Fid) -> lustre::Result<File>;
    /// The layout of a file being archived (`None` when it has none a [`lustre::Striping`] can
    /// hold, or the library cannot tell).
    fn layout(&self, fid: &Fid, file: &File) -> lustre::Result<Option<lustre::Striping>>;
    /// The file's Lustre data version (changes whenever its data changes).
    fn data_version(&self, file: &File) -> lustre::Result<u64>;
    /// After an MDS restart a request a dead copytool had begun cannot be ended by cookie: if the
    /// file's current HSM action is still `action` and running, ask for its cancellation as
    /// `lfs hsm_cancel` does. True when a cancel was requested.
    fn cancel_stale(&self, _fid: &Fid, _action: CopytoolAction) -> lustre::Result<bool> {
        Ok(false)
    }
}

/// One begun action (`struct hsm_copyaction_private`).
pub trait CopyAction: Send + 'static {
    /// Reports `ext` as newly copied. Errno ECANCELED means the coordinator cancelled the request.
    fn progress(&self, ext: Extent, total: u64) -> lustre::Result<()>;
    /// The data fd: the source for ARCHIVE, the volatile destination for RESTORE (use pread/pwrite).
    fn fd(&self) -> lustre::Result<File>;
    /// RESTORE: gives the volatile file `layout` (`None`: the file system default) before any
    /// data is written, as `lhsmtool_posix`'s `ct_restore` does after creating it with
    /// `O_LOV_DELAY_CREATE`.
    fn set_layout(&self, layout: Option<&lustre::Striping>) -> lustre::Result<()>;
    /// `llapi_hsm_action_end`; consumes the handle.
    fn end(self, ext: Extent, hp_flags: i32, errval: i32) -> lustre::Result<()>;
}

/// The blob store side (what the engine needs of `blob::BlobStore`).
pub trait Store: Send + Sync + 'static {
    /// The blob name for a path relative to the mount (raw bytes), or `InvalidName` with the reason.
    fn name_for(&self, rel_path: &[u8]) -> Result<BlobName, blob::Error>;
    /// Uploads the whole of `file`; commits only when every byte is in (nothing visible on failure or cancel).
    fn upload(
        &self,
        file: &File,
        name: &BlobName,
        meta: &Metadata,
        opts: UploadOptions,
    ) -> impl Future<Output = Result<Uploaded, blob::Error>> + Send;
    /// Downloads the blob into `file` (pwrite), verifying size and checksum.
    fn download(
        &self,
        name: &BlobName,
        file: &File,
        opts: DownloadOptions,
    ) -> impl Future<Output = Result<Downloaded, blob::Error>> + Send;
    /// Size, ETag and decoded metadata of a blob; `None` when there is none.
    fn head(
        &self,
        name: &BlobName,
    ) -> impl Future<Output = Result<Option<BlobInfo>, blob::Error>> + Send;
    /// Deletes one blob (`NotFound` when it is not there).
    fn delete(&self, name: &BlobName) -> impl Future<Output = Result<(), blob::Error>> + Send;
    /// Server-side copy (data and metadata), replacing any blob at `to`.
    fn copy(
        &self,
        from: &BlobName,
        to: &BlobName,
    ) -> impl Future<Output = Result<(), blob::Error>> + Send;
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
