//! The production implementations of the engine's ports: a `lustre::Copytool` session on a
//! `lustre::Mount`, and a `blob::BlobStore`.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::{Action, ActionList, Extent, Fid, Item};
use crate::ports::{
    BlobHead, BlobMeta, Coordinator, CopyAction, CtError, Store, StoreError, StoreErrorKind,
    TransferOpts, Uploaded, WriteMode,
};

// ------------------------------------------------------------------ conversions

impl From<lustre::Fid> for Fid {
    fn from(f: lustre::Fid) -> Fid {
        Fid {
            seq: f.seq,
            oid: f.oid,
            ver: f.ver,
        }
    }
}

impl From<Fid> for lustre::Fid {
    fn from(f: Fid) -> lustre::Fid {
        lustre::Fid {
            seq: f.seq,
            oid: f.oid,
            ver: f.ver,
        }
    }
}

fn extent_in(e: lustre::Extent) -> Extent {
    Extent {
        offset: e.offset,
        length: e.length,
    }
}

fn extent_out(e: Extent) -> lustre::Extent {
    lustre::Extent {
        offset: e.offset,
        length: e.length,
    }
}

fn action_in(a: lustre::CopytoolAction) -> Action {
    match a {
        lustre::CopytoolAction::None => Action::None,
        lustre::CopytoolAction::Archive => Action::Archive,
        lustre::CopytoolAction::Restore => Action::Restore,
        lustre::CopytoolAction::Remove => Action::Remove,
        lustre::CopytoolAction::Cancel => Action::Cancel,
        lustre::CopytoolAction::Unknown(n) => Action::Unknown(n),
    }
}

fn action_out(a: Action) -> lustre::CopytoolAction {
    match a {
        Action::None => lustre::CopytoolAction::None,
        Action::Archive => lustre::CopytoolAction::Archive,
        Action::Restore => lustre::CopytoolAction::Restore,
        Action::Remove => lustre::CopytoolAction::Remove,
        Action::Cancel => lustre::CopytoolAction::Cancel,
        Action::Unknown(n) => lustre::CopytoolAction::Unknown(n),
    }
}

fn item_in(i: lustre::ActionItem) -> Item {
    Item {
        action: action_in(i.action),
        fid: i.fid.into(),
        dfid: i.dfid.into(),
        extent: extent_in(i.extent),
        cookie: i.cookie,
        gid: i.gid,
        data: i.data,
    }
}

fn item_out(i: &Item) -> lustre::ActionItem {
    lustre::ActionItem {
        action: action_out(i.action),
        fid: i.fid.into(),
        dfid: i.dfid.into(),
        extent: extent_out(i.extent),
        cookie: i.cookie,
        gid: i.gid,
        data: i.data.clone(),
    }
}

fn ct_err(e: lustre::Error) -> CtError {
    CtError::new(
        e.call().unwrap_or("liblustreapi"),
        e.errno().unwrap_or(libc::EIO),
    )
}

// ------------------------------------------------------------------ coordinator

/// A registered copytool on one mount.
pub struct LustreCoordinator {
    mount: lustre::Mount,
    ct: lustre::Copytool,
}

impl LustreCoordinator {
    /// Opens the mount and registers for `archives` (empty = all), non-blocking so the receive loop
    /// can poll and notice a stop request.
    pub fn register(mount: &Path, archives: &[u32]) -> Result<LustreCoordinator, lustre::Error> {
        let m = lustre::Mount::open(mount)?;
        let ct = lustre::Copytool::register(m.root(), archives, true)?;
        Ok(LustreCoordinator { mount: m, ct })
    }

    /// Unregisters (also done on drop).
    pub fn unregister(self) -> Result<(), lustre::Error> {
        self.ct.unregister()
    }
}

impl Coordinator for LustreCoordinator {
    type Action = lustre::CopyAction;

    fn recv(&self, timeout: Duration) -> Result<Option<ActionList>, CtError> {
        let fd = self.ct.fd().map_err(ct_err)?;
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            return if errno == libc::EINTR {
                Ok(None)
            } else {
                Err(CtError::new("poll", errno))
            };
        }
        if n == 0 {
            return Ok(None);
        }
        match self.ct.recv() {
            Ok(list) => Ok(Some(ActionList {
                archive_id: list.archive_id,
                flags: list.flags,
                fsname: list.fsname,
                items: list.items.into_iter().map(item_in).collect(),
            })),
            Err(e) if e.errno() == Some(libc::EAGAIN) => Ok(None),
            Err(e) => Err(ct_err(e)),
        }
    }

    fn begin(&self, item: &Item) -> Result<lustre::CopyAction, CtError> {
        // DNE: the volatile file of a RESTORE must be created on the file's own MDT, whose
        // coordinator holds the request (progress and end are routed by the volatile file's FID),
        // as `lhsmtool_posix`'s `ct_restore` does with `llapi_get_mdt_index_by_fid`.
        let mdt_index = if item.action == Action::Restore {
            let idx = self.mount.mdt_index(&item.fid.into()).map_err(ct_err)?;
            i32::try_from(idx)
                .map_err(|_| CtError::new("llapi_get_mdt_index_by_fid", libc::EINVAL))?
        } else {
            -1
        };
        // RESTORE: the volatile file gets its layout from the export record before any data
        // (`set_layout`), so it is created without one, as `ct_restore` does when it has a
        // saved layout. A library without the layout calls keeps the directory's default.
        let open_flags = if item.action == Action::Restore && lustre::layouts_supported() {
            lustre::lustre_sys::O_LOV_DELAY_CREATE
        } else {
            0
        };
        self.ct
            .begin(&item_out(item), mdt_index, open_flags)
            .map_err(ct_err)
    }

    fn begin_error(&self, item: &Item) -> Result<lustre::CopyAction, CtError> {
        self.ct.begin_error(&item_out(item)).map_err(ct_err)
    }

    fn fsname(&self) -> String {
        self.mount.fsname().to_string()
    }

    fn fid2path(&self, fid: &Fid) -> Result<Vec<PathBuf>, CtError> {
        self.mount.fid2path(&(*fid).into()).map_err(ct_err)
    }

    fn open_by_fid(&self, fid: &Fid) -> Result<File, CtError> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        self.mount
            .open_by_fid(&(*fid).into(), flags)
            .map(File::from)
            .map_err(ct_err)
    }

    fn cancel_stale(&self, fid: &Fid, action: Action) -> Result<bool, CtError> {
        let want = match action {
            Action::Archive => lustre::UserAction::Archive,
            Action::Remove => lustre::UserAction::Remove,
            _ => return Ok(false),
        };
        let lfid: lustre::Fid = (*fid).into();
        let paths = match self.mount.fid2path(&lfid) {
            Ok(p) => p,
            Err(e) if matches!(e.errno(), Some(libc::ENOENT) | Some(libc::ESTALE)) => {
                return Ok(false)
            }
            Err(e) => return Err(ct_err(e)),
        };
        let Some(first) = paths.first() else {
            return Ok(false);
        };
        let cur = self
            .mount
            .hsm_current_action(first.strip_prefix("/").unwrap_or(first))
            .map_err(ct_err)?;
        if cur.state != lustre::ProgressState::Running || cur.action != want {
            return Ok(false);
        }
        self.mount
            .hsm_request(lustre::UserAction::Cancel, 0, 0, &[lfid], b"")
            .map_err(ct_err)?;
        Ok(true)
    }

    fn layout(&self, _fid: &Fid, file: &File) -> Result<Option<lustre::Striping>, CtError> {
        if !lustre::layouts_supported() {
            return Ok(None);
        }
        lustre::Layout::of_file(file.as_fd())
            .and_then(|l| l.striping())
            .map_err(ct_err)
    }

    fn data_version(&self, file: &File) -> Result<u64, CtError> {
        // Flush other clients' dirty pages first so a change made elsewhere is counted.
        self.mount
            .data_version(file.as_fd(), lustre::lustre_sys::LL_DV_RD_FLUSH)
            .map_err(ct_err)
    }
}

impl CopyAction for lustre::CopyAction {
    fn progress(&self, ext: Extent, total: u64) -> Result<(), CtError> {
        lustre::CopyAction::progress(self, extent_out(ext), total).map_err(ct_err)
    }

    fn fd(&self) -> Result<File, CtError> {
        lustre::CopyAction::fd(self).map(File::from).map_err(ct_err)
    }

    fn set_layout(&self, layout: Option<&lustre::Striping>) -> Result<(), CtError> {
        // Begun without O_LOV_DELAY_CREATE (see `begin`): the volatile file has its layout.
        if !lustre::layouts_supported() {
            return Ok(());
        }
        let l = match layout {
            Some(s) => lustre::Layout::from_striping(s),
            None => lustre::Layout::new(),
        }
        .map_err(ct_err)?;
        let fd = lustre::CopyAction::fd(self).map_err(ct_err)?;
        l.apply_to(fd.as_fd()).map_err(ct_err)
    }

    fn end(self, ext: Extent, hp_flags: i32, errval: i32) -> Result<(), CtError> {
        lustre::CopyAction::end(self, extent_out(ext), hp_flags, errval).map_err(ct_err)
    }
}

// ------------------------------------------------------------------ blob store

/// `blob::Error` in the engine's terms (status and Azure code kept).
pub fn store_err(e: blob::Error) -> StoreError {
    let kind = match &e {
        blob::Error::Conflict(_) => StoreErrorKind::Conflict,
        blob::Error::NotFound(_) => StoreErrorKind::NotFound,
        blob::Error::PermissionDenied(_) => StoreErrorKind::PermissionDenied,
        blob::Error::InvalidName(_) | blob::Error::InvalidMetadata(_) => {
            StoreErrorKind::InvalidName
        }
        blob::Error::Transient(_) => StoreErrorKind::Transient,
        blob::Error::Integrity { .. } => StoreErrorKind::Corrupt,
        blob::Error::Cancelled => StoreErrorKind::Cancelled,
        blob::Error::Io { .. } => StoreErrorKind::Io,
        blob::Error::Permanent(_) | blob::Error::Config(_) => StoreErrorKind::Permanent,
    };
    let errno = match &e {
        blob::Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    };
    let mut se = StoreError::new(kind, e.to_string())
        .with_http(e.http_status(), e.azure_code().map(str::to_string));
    se.errno = errno;
    se
}

fn name(n: &str) -> Result<blob::BlobName, StoreError> {
    blob::BlobName::new(n).map_err(|e| store_err(e.into()))
}

/// The blob store side.
pub struct BlobBackend {
    store: blob::BlobStore,
}

impl BlobBackend {
    pub fn new(store: blob::BlobStore) -> BlobBackend {
        BlobBackend { store }
    }
}

fn mode_out(m: WriteMode) -> blob::WriteMode {
    match m {
        WriteMode::Overwrite => blob::WriteMode::Overwrite,
        WriteMode::CreateOnly => blob::WriteMode::CreateOnly,
        WriteMode::IfMatch(e) => blob::WriteMode::IfMatch(e),
    }
}

impl Store for BlobBackend {
    fn name_for(&self, rel_path: &[u8]) -> Result<String, StoreError> {
        self.store
            .name_for(rel_path)
            .map(|n| n.as_str().to_string())
            .map_err(|e| store_err(e.into()))
    }

    async fn upload(
        &self,
        file: &File,
        name_: &str,
        meta: &BlobMeta,
        mode: WriteMode,
        opts: TransferOpts,
    ) -> Result<Uploaded, StoreError> {
        let n = name(name_)?;
        let m = blob::Metadata {
            owner: meta.owner,
            group: meta.group,
            permissions: meta.permissions,
            modtime: meta.modtime,
            kind: blob::FileKind::File,
            fid: Some(meta.fid.clone()),
            mtime_ns: Some(meta.mtime_ns),
            data_version: Some(meta.data_version),
            checksum: None,
            layout: meta.layout.clone(),
            extra: Default::default(),
        };
        let o = blob::UploadOptions {
            mode: mode_out(mode),
            block_size: opts.block_size,
            blocks_in_flight: opts.blocks_in_flight,
            single_put_threshold: opts.block_size,
            progress: Some(opts.progress),
            cancel: opts.cancel,
            rate_limit: Some(opts.rate_limit),
        };
        let up = self
            .store
            .upload_file(file, &n, &m, o)
            .await
            .map_err(store_err)?;
        Ok(Uploaded {
            etag: up.etag,
            size: up.size,
            checksum: Some(up.checksum),
        })
    }

    async fn download(
        &self,
        name_: &str,
        file: &File,
        opts: TransferOpts,
    ) -> Result<u64, StoreError> {
        let n = name(name_)?;
        let o = blob::DownloadOptions {
            range_size: opts.block_size,
            ranges_in_flight: opts.blocks_in_flight,
            progress: Some(opts.progress),
            cancel: opts.cancel,
            rate_limit: Some(opts.rate_limit),
        };
        let d = self
            .store
            .download_to(&n, file, o)
            .await
            .map_err(store_err)?;
        if !d.verified {
            tracing::debug!(
                blob = name_,
                "blob has no checksum to verify (written by another tool)"
            );
        }
        Ok(d.size)
    }

    async fn head(&self, name_: &str) -> Result<Option<BlobHead>, StoreError> {
        let n = name(name_)?;
        let info = self.store.head(&n).await.map_err(store_err)?;
        Ok(info.map(|i| BlobHead {
            size: i.size,
            etag: i.etag.unwrap_or_default(),
            layout: i.metadata.as_ref().and_then(|m| m.layout.clone()),
            fid: i.metadata.as_ref().and_then(|m| m.fid.clone()),
            data_version: i.metadata.and_then(|m| m.data_version),
        }))
    }

    async fn delete(&self, name_: &str) -> Result<(), StoreError> {
        let n = name(name_)?;
        self.store.delete(&n).await.map_err(store_err)
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (f, t) = (name(from)?, name(to)?);
        self.store.copy(&f, &t, false).await.map_err(store_err)
    }
}
