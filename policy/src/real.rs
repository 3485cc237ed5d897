//! The engine's ports implemented with the real crates: [`LustreNs`] over `lustre::Mount`,
//! [`BlobPort`] over `blob::BlobStore`, [`BlobLog`] over `blob::LogSink`.
//!
//! The blob calls are async; the engine runs on its own thread and blocks on a runtime handle.

use crate::model::{FileKind, FileStat};
use crate::ports::{BlobEntry, EventLog, Namespace, NsError, Store};
use crate::tree_scan::FsLister;
use futures::StreamExt;
use lustre::{Fid, HsmState, ImportAttrs};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;
use tokio::runtime::Handle;

fn ns_err(op: &'static str, e: &lustre::Error) -> NsError {
    NsError {
        op,
        errno: e.errno().unwrap_or(libc::EIO),
        message: e.to_string(),
    }
}

fn io_err(op: &'static str, e: &std::io::Error) -> NsError {
    NsError {
        op,
        errno: e.raw_os_error().unwrap_or(libc::EIO),
        message: e.to_string(),
    }
}

/// The Lustre side: one mount, its MDTs' changelog names and each MDT's changelog user (ids
/// are numbered per MDT).
pub struct LustreNs {
    /// The mount.
    pub mount: lustre::Mount,
    /// Changelog device names, one per MDT.
    pub mdts: Vec<String>,
    /// Changelog user of each MDT.
    pub users: Vec<String>,
}

impl LustreNs {
    /// An error from a call, with ENOENT double-checked: when the file system itself does not
    /// answer (an MDS restarting: the simulator's socket is missing, for one), "no such file" is
    /// not a verdict on the file, so it becomes ESHUTDOWN (re-queued, never "deleted").
    fn err(&self, op: &'static str, e: &lustre::Error) -> NsError {
        let mut n = ns_err(op, e);
        if n.errno == libc::ENOENT && self.mount.path2fid(self.mount.root()).is_err() {
            n.errno = libc::ESHUTDOWN;
            n.message = format!("{} (the file system does not answer)", n.message);
        }
        n
    }

    fn abs(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.mount.root().to_path_buf()
        } else {
            self.mount.root().join(OsStr::from_bytes(rel))
        }
    }
}

/// Probes MDT changelogs `<fsname>-MDT0000`, `...0001`, ... until one cannot be opened.
pub fn discover_mdts(mount: &lustre::Mount) -> Result<Vec<String>, lustre::Error> {
    // MDT0000 always exists: a failure there is retried briefly (a starting MDS), then reported.
    let mut tries = 0;
    let first = loop {
        match lustre::ChangelogReader::start(&mount.mdt_name(0), 0, false) {
            Ok(_) => break mount.mdt_name(0),
            Err(e) if tries >= 20 => return Err(e),
            Err(_) => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        }
    };
    let mut out = vec![first];
    for i in 1..256u32 {
        let name = mount.mdt_name(i);
        match lustre::ChangelogReader::start(&name, 0, false) {
            Ok(_) => out.push(name),
            Err(_) => break,
        }
    }
    Ok(out)
}

/// The fields of an `lstat` the engine uses.
pub fn stat_of(md: &std::fs::Metadata) -> FileStat {
    FileStat {
        kind: FileKind::from(md.file_type()),
        size: md.len(),
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        mtime_sec: md.mtime(),
        mtime_nsec: md.mtime_nsec().clamp(0, 999_999_999) as u32,
    }
}

impl Namespace for LustreNs {
    fn fid2path(&self, fid: &Fid) -> Result<Option<Vec<u8>>, NsError> {
        match self.mount.fid2path(fid) {
            Ok(paths) => Ok(paths
                .into_iter()
                .next()
                .map(|p| p.as_os_str().as_bytes().to_vec())),
            Err(e) => {
                let n = self.err("llapi_fid2path", &e);
                match n.errno {
                    libc::ENOENT | libc::EINVAL => Ok(None),
                    _ => Err(n),
                }
            }
        }
    }
    fn path2fid(&self, rel: &[u8]) -> Result<Fid, NsError> {
        self.mount
            .path2fid(&self.abs(rel))
            .map_err(|e| self.err("llapi_path2fid", &e))
    }
    fn stat(&self, rel: &[u8]) -> Result<Option<FileStat>, NsError> {
        match std::fs::symlink_metadata(self.abs(rel)) {
            Ok(md) => Ok(Some(stat_of(&md))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("lstat", &e)),
        }
    }
    fn hsm_state(&self, rel: &[u8]) -> Result<HsmState, NsError> {
        self.mount
            .hsm_state(&self.abs(rel))
            .map_err(|e| self.err("llapi_hsm_state_get", &e))
    }
    fn action_pending(&self, rel: &[u8]) -> Result<bool, NsError> {
        let a = self
            .mount
            .hsm_current_action(&self.abs(rel))
            .map_err(|e| self.err("llapi_hsm_current_action", &e))?;
        Ok(matches!(
            a.state,
            lustre::ProgressState::Waiting | lustre::ProgressState::Running
        ) && a.action != lustre::UserAction::None)
    }
    fn archive(&self, archive_id: u32, fids: &[Fid], data: &[u8]) -> Result<(), NsError> {
        self.mount
            .hsm_request(lustre::UserAction::Archive, archive_id, 0, fids, data)
            .map_err(|e| self.err("llapi_hsm_request", &e))
    }
    fn cancel(&self, archive_id: u32, fids: &[Fid]) -> Result<(), NsError> {
        self.mount
            .hsm_request(lustre::UserAction::Cancel, archive_id, 0, fids, b"")
            .map_err(|e| self.err("llapi_hsm_request", &e))
    }
    fn read_link(&self, rel: &[u8]) -> Result<Vec<u8>, NsError> {
        std::fs::read_link(self.abs(rel))
            .map(|t| t.as_os_str().as_bytes().to_vec())
            .map_err(|e| io_err("readlink", &e))
    }
    fn list_dir(&self, rel: &[u8]) -> Result<Vec<(Vec<u8>, FileKind)>, NsError> {
        crate::tree_scan::DirLister::list_dir(&FsLister::new(self.mount.root().to_path_buf()), rel)
    }
    fn dir_lister(&self) -> std::sync::Arc<dyn crate::tree_scan::DirLister> {
        std::sync::Arc::new(FsLister::new(self.mount.root().to_path_buf()))
    }
    fn import_file(
        &self,
        rel: &[u8],
        archive_id: u32,
        attrs: &ImportAttrs,
        layout: Option<&lustre::Striping>,
    ) -> Result<Fid, NsError> {
        let dst = self.abs(rel);
        let imported = match layout {
            None => self.mount.hsm_import(&dst, archive_id, attrs),
            Some(l) => match self.mount.hsm_import_striped(&dst, archive_id, attrs, l) {
                // `llapi_file_open_param` refuses a pool this file system does not have (EINVAL,
                // before anything is created): the blob may come from another file system.
                // The stub keeps the striping without the pool.
                Err(e) if e.errno() == Some(libc::EINVAL) && l.pool().is_some() => {
                    let without =
                        lustre::Striping::new(l.stripe_count().into(), l.stripe_size(), None)
                            .map_err(|e| NsError {
                                op: "llapi_hsm_import",
                                errno: libc::EINVAL,
                                message: e.to_string(),
                            })?;
                    tracing::warn!(path = %dst.display(), layout = %l, "the blob's pool is refused by this file system; the stub is created without it");
                    self.mount
                        .hsm_import_striped(&dst, archive_id, attrs, &without)
                }
                other => other,
            },
        };
        imported.map_err(|e| ns_err("llapi_hsm_import", &e))
    }
    fn make_dir(&self, rel: &[u8], mode: u32, uid: u32, gid: u32) -> Result<(), NsError> {
        let p = self.abs(rel);
        std::fs::create_dir(&p).map_err(|e| io_err("mkdir", &e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| io_err("chmod", &e))?;
        match std::os::unix::fs::chown(&p, Some(uid), Some(gid)) {
            Ok(()) => Ok(()),
            // Not root (tests): ownership stays with the caller.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
            Err(e) => Err(io_err("chown", &e)),
        }
    }
    fn make_symlink(&self, rel: &[u8], target: &[u8]) -> Result<(), NsError> {
        std::os::unix::fs::symlink(OsStr::from_bytes(target), self.abs(rel))
            .map_err(|e| io_err("symlink", &e))
    }
    fn remove_file(&self, rel: &[u8]) -> Result<(), NsError> {
        std::fs::remove_file(self.abs(rel)).map_err(|e| io_err("unlink", &e))
    }
    fn clear_changelog(&self, mdt: usize, endrec: u64) -> Result<(), NsError> {
        let (Some(name), Some(user)) = (self.mdts.get(mdt), self.users.get(mdt)) else {
            return Err(NsError::new("llapi_changelog_clear", libc::EINVAL));
        };
        lustre::changelog_clear(name, user, endrec).map_err(|e| ns_err("llapi_changelog_clear", &e))
    }
}

/// The `blob` crate's metadata for the engine's.
/// The blob container through `blob::BlobStore`.
pub struct BlobPort {
    /// The store.
    pub store: blob::BlobStore,
    /// The runtime the engine's thread blocks on.
    pub rt: Handle,
}

impl BlobPort {
    fn name(&self, name: &str) -> Result<blob::BlobName, blob::Error> {
        Ok(blob::BlobName::new(name)?)
    }
}

impl Store for BlobPort {
    fn name_for(&self, rel: &[u8]) -> Result<String, blob::Error> {
        self.store
            .name_for(rel)
            .map(|n| n.as_str().to_string())
            .map_err(blob::Error::from)
    }
    fn root(&self) -> String {
        self.store.prefix().trim_end_matches('/').to_string()
    }
    fn rel_for(&self, name: &str) -> Option<String> {
        let n = blob::BlobName::new(name).ok()?;
        blob::name::rel_path_of(self.store.prefix(), &n)
    }
    fn put_dir(&self, name: &str, meta: &blob::Metadata) -> Result<(), blob::Error> {
        let n = self.name(name)?;
        self.rt
            .block_on(self.store.put_empty(&n, meta, blob::WriteMode::Overwrite))
            .map(|_| ())
    }
    fn put_symlink(
        &self,
        name: &str,
        target: &[u8],
        meta: &blob::Metadata,
    ) -> Result<(), blob::Error> {
        let n = self.name(name)?;
        let body = bytes::Bytes::copy_from_slice(target);
        self.rt
            .block_on(
                self.store
                    .put_bytes(&n, body, meta, blob::WriteMode::Overwrite),
            )
            .map(|_| ())
    }
    fn set_metadata(&self, name: &str, meta: &blob::Metadata) -> Result<(), blob::Error> {
        let n = self.name(name)?;
        self.rt.block_on(async {
            let Some(info) = self.store.head(&n).await? else {
                return Err(blob::Error::NotFound(blob::Failure {
                    op: "set metadata",
                    name: name.to_string(),
                    status: None,
                    code: None,
                    message: "no such blob".into(),
                }));
            };
            // Keep what the copytool recorded (checksum, data version, other tools' keys);
            // replace only the POSIX attributes.
            let mut m = info.metadata.unwrap_or_default();
            m.owner = meta.owner;
            m.group = meta.group;
            m.permissions = meta.permissions;
            m.modtime = meta.modtime;
            m.mtime_ns = meta.mtime_ns;
            self.store
                .set_metadata(&n, &m, info.etag.as_deref())
                .await
                .map(|_| ())
        })
    }
    fn copy(&self, from: &str, to: &str) -> Result<(), blob::Error> {
        let (a, b) = (self.name(from)?, self.name(to)?);
        self.rt.block_on(self.store.copy(&a, &b, false))
    }
    fn delete(&self, name: &str) -> Result<(), blob::Error> {
        let n = self.name(name)?;
        self.rt
            .block_on(self.store.delete_if_exists(&n))
            .map(|_| ())
    }
    fn list(&self, dir: &str) -> Result<Vec<BlobEntry>, blob::Error> {
        self.rt.block_on(async {
            let mut s = self.store.list(dir)?;
            let mut out = Vec::new();
            while let Some(i) = s.next().await {
                out.push(blob_entry(i?));
            }
            Ok(out)
        })
    }
    fn list_page(
        &self,
        dir: &str,
        marker: &str,
        max: usize,
    ) -> Result<(Vec<BlobEntry>, Option<String>), blob::Error> {
        let size = u32::try_from(max).unwrap_or(u32::MAX);
        let (page, next) = self
            .rt
            .block_on(self.store.list_one_page(dir, marker, size))?;
        Ok((page.into_iter().map(blob_entry).collect(), next))
    }
    fn exists(&self, name: &str) -> Result<bool, blob::Error> {
        let n = self.name(name)?;
        self.rt.block_on(self.store.head(&n)).map(|i| i.is_some())
    }
    fn get_bytes(&self, name: &str) -> Result<Vec<u8>, blob::Error> {
        let n = self.name(name)?;
        self.rt
            .block_on(self.store.get_bytes(&n))
            .map(|b| b.to_vec())
    }
}

/// The logging container through `blob::LogSink` (its flusher writes in the background).
pub struct BlobLog {
    /// The writer.
    pub sink: blob::LogSink,
    /// The runtime the engine's thread blocks on for [`EventLog::flush`].
    pub rt: Handle,
}

impl EventLog for BlobLog {
    fn record(&mut self, entry: blob::LogEntry) {
        self.sink.record(entry);
    }
    fn flush(&mut self) {
        if let Err(e) = self.rt.block_on(self.sink.flush()) {
            tracing::warn!(error = %e, pending = self.sink.pending(), "logging container write failed; entries kept for the next write");
        }
    }
}

/// A path inside the mount as bytes relative to its root (`None` when outside it).
pub fn rel_to_mount(root: &Path, path: &Path) -> Option<Vec<u8>> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let rel = abs.strip_prefix(root).ok()?;
    Some(rel.as_os_str().as_bytes().to_vec())
}

/// A listed blob as the engine sees it.
fn blob_entry(i: blob::BlobInfo) -> BlobEntry {
    let last_modified_sec = match i.last_modified.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    BlobEntry {
        name: i.name.as_str().to_string(),
        size: i.size,
        metadata: i.raw_metadata,
        last_modified_sec,
    }
}
