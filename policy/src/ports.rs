//! The engine's ports: what it needs from Lustre ([`Namespace`]), from the blob store ([`Store`],
//! failing with the `blob` crate's own errors) and from the logging container ([`EventLog`]).
//! Small synchronous traits, so the engine runs on one thread and unit tests use in-memory
//! fakes; [`crate::real`] implements them with the `lustre` and `blob` crates.

use crate::model::{FileKind, FileStat};
use lustre::{Fid, HsmState, ImportAttrs, Striping};

/// A failed Lustre call, keeping the errno.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {message} (errno {errno})")]
pub struct NsError {
    /// The call.
    pub op: &'static str,
    /// Its errno.
    pub errno: i32,
    /// The error in words.
    pub message: String,
}

impl NsError {
    /// The error of `op` failing with `errno`.
    pub fn new(op: &'static str, errno: i32) -> NsError {
        NsError {
            op,
            errno,
            message: std::io::Error::from_raw_os_error(errno).to_string(),
        }
    }
}

/// The file system, as the engine uses it. Paths are raw bytes relative to the mount root,
/// without a leading `/` (`""` is the root).
pub trait Namespace: Send {
    /// The first path of `fid`; `Ok(None)` when the file no longer exists.
    fn fid2path(&self, fid: &Fid) -> Result<Option<Vec<u8>>, NsError>;
    /// The FID of a path.
    fn path2fid(&self, rel: &[u8]) -> Result<Fid, NsError>;
    /// `lstat`; `Ok(None)` when the path does not exist.
    fn stat(&self, rel: &[u8]) -> Result<Option<FileStat>, NsError>;
    /// The file's HSM state (`llapi_hsm_state_get`, one attribute read on the MDT).
    fn hsm_state(&self, rel: &[u8]) -> Result<HsmState, NsError>;
    /// Whether a request is waiting or running on the file (`llapi_hsm_current_action`). On
    /// Lustre this reads the coordinator's whole action catalog under its lock
    /// (`mdt_hsm_get_action` → `cdt_llog_process`): call it only where the state cannot decide.
    fn action_pending(&self, rel: &[u8]) -> Result<bool, NsError>;
    /// One `llapi_hsm_request(HUA_ARCHIVE)` call (the implementation splits it within the
    /// request size limit) with `data` as the request payload.
    fn archive(&self, archive_id: u32, fids: &[Fid], data: &[u8]) -> Result<(), NsError>;
    /// `HUA_CANCEL` of running or waiting requests.
    fn cancel(&self, archive_id: u32, fids: &[Fid]) -> Result<(), NsError>;
    /// A symlink's target.
    fn read_link(&self, rel: &[u8]) -> Result<Vec<u8>, NsError>;
    /// Entries of a directory (name, kind), for tree scans.
    fn list_dir(&self, rel: &[u8]) -> Result<Vec<(Vec<u8>, FileKind)>, NsError>;
    /// The same listing as [`Namespace::list_dir`], shareable with the manual export's scanner
    /// threads ([`crate::tree_scan`]).
    fn dir_lister(&self) -> std::sync::Arc<dyn crate::tree_scan::DirLister>;
    /// Creates a released stub (`llapi_hsm_import`) with `layout` (`None`: the file system
    /// default), from the blob's metadata.
    fn import_file(
        &self,
        rel: &[u8],
        archive_id: u32,
        attrs: &ImportAttrs,
        layout: Option<&Striping>,
    ) -> Result<Fid, NsError>;
    /// Creates a directory with these permissions and owner.
    fn make_dir(&self, rel: &[u8], mode: u32, uid: u32, gid: u32) -> Result<(), NsError>;
    /// Creates a symlink.
    fn make_symlink(&self, rel: &[u8], target: &[u8]) -> Result<(), NsError>;
    /// Removes a file or symlink (not directories).
    fn remove_file(&self, rel: &[u8]) -> Result<(), NsError>;
    /// Acknowledges changelog records of MDT `mdt` up to `endrec` (inclusive).
    fn clear_changelog(&self, mdt: usize, endrec: u64) -> Result<(), NsError>;
}

/// The blob metadata of a file with attributes `st`: its POSIX attributes in Azure's keys, the
/// exact mtime, and its FID.
pub fn blob_metadata(st: &FileStat, fid: Option<Fid>) -> blob::Metadata {
    let kind = match st.kind {
        FileKind::Directory => blob::FileKind::Dir,
        FileKind::Symlink => blob::FileKind::Symlink,
        FileKind::Regular | FileKind::Other => blob::FileKind::File,
    };
    blob::Metadata {
        owner: st.uid,
        group: st.gid,
        permissions: st.mode & 0o7777,
        kind,
        fid: fid.map(|f| f.to_string()),
        ..blob::Metadata::default()
    }
    .with_mtime(st.mtime_sec, st.mtime_nsec)
}

/// One listed blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    /// Full blob name (with the target's prefix).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The blob's metadata pairs exactly as listed (keys in any case, values unchecked): an
    /// import decodes them with [`crate::import_meta::decode`], trusting none.
    pub metadata: Vec<(String, String)>,
    /// The blob's Last-Modified, seconds since the epoch (an import's mtime when the metadata
    /// carries none that parses).
    pub last_modified_sec: i64,
}

/// The blob container, as the engine uses it. Names are full blob names.
pub trait Store: Send {
    /// Blob name for a path relative to the mount (prefix + path, byte-exact), or why it cannot be.
    fn name_for(&self, rel: &[u8]) -> Result<String, blob::Error>;
    /// The target's blob prefix as a directory name (no trailing `/`; `""` = the container).
    fn root(&self) -> String;
    /// Path relative to the mount for a blob name under the prefix (`None` if outside it).
    fn rel_for(&self, name: &str) -> Option<String>;
    /// Writes a directory blob (empty).
    fn put_dir(&self, name: &str, meta: &blob::Metadata) -> Result<(), blob::Error>;
    /// Writes a symlink blob holding the target.
    fn put_symlink(
        &self,
        name: &str,
        target: &[u8],
        meta: &blob::Metadata,
    ) -> Result<(), blob::Error>;
    /// Replaces the metadata of an existing blob (`NotFound` if there is none).
    fn set_metadata(&self, name: &str, meta: &blob::Metadata) -> Result<(), blob::Error>;
    /// Server-side copy (content and metadata).
    fn copy(&self, from: &str, to: &str) -> Result<(), blob::Error>;
    /// Deletes a blob; a missing blob is not an error.
    fn delete(&self, name: &str) -> Result<(), blob::Error>;
    /// Every blob under the directory `dir` (names starting with `dir/`; `""` = all), full names.
    fn list(&self, dir: &str) -> Result<Vec<BlobEntry>, blob::Error>;
    /// One page of [`Store::list`]: at most `max` blobs under `dir` from `marker` (empty: the
    /// first page), in name order, and the marker of the next page (`None` after the last).
    fn list_page(
        &self,
        dir: &str,
        marker: &str,
        max: usize,
    ) -> Result<(Vec<BlobEntry>, Option<String>), blob::Error>;
    /// Whether the blob exists.
    fn exists(&self, name: &str) -> Result<bool, blob::Error>;
    /// A blob's whole content.
    fn get_bytes(&self, name: &str) -> Result<Vec<u8>, blob::Error>;
}

/// The logging container: entries are queued without blocking the engine and written in the
/// background; at the end of each iteration and job the engine waits for them to be written,
/// so what an iteration logged is in the container once it is reported complete.
pub trait EventLog: Send {
    /// Queues an entry.
    fn record(&mut self, entry: blob::LogEntry);
    /// Writes what is queued and returns once written (or failed: the entries stay queued for
    /// the background flusher).
    fn flush(&mut self);
}
