//! The production implementations of the engine's ports: a `lustre::Copytool` session on a
//! `lustre::Mount`, and `blob::BlobStore` itself. Both ports speak these crates' types, so
//! nothing is converted here.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use blob::{BlobInfo, BlobName, BlobStore, DownloadOptions, Downloaded, Metadata};
use blob::{UploadOptions, Uploaded};
use lustre::{ActionItem, ActionList, CopytoolAction, Extent, Fid};

use crate::ports::{Coordinator, CopyAction, Store};

// ------------------------------------------------------------------ coordinator

/// A registered copytool on one mount.
pub struct LustreCoordinator {
    mount: lustre::Mount,
    ct: lustre::Copytool,
}

impl LustreCoordinator {
    /// Opens the mount and registers for `archives` (empty = all), non-blocking: the receive
    /// loop waits until the pipe is readable, then reads until it is empty.
    pub fn register(mount: &Path, archives: &[u32]) -> lustre::Result<LustreCoordinator> {
        let m = lustre::Mount::open(mount)?;
        let ct = lustre::Copytool::register(m.root(), archives, true)?;
        Ok(LustreCoordinator { mount: m, ct })
    }

    /// Unregisters (also done on drop).
    pub fn unregister(self) -> lustre::Result<()> {
        self.ct.unregister()
    }
}

impl Coordinator for LustreCoordinator {
    type Action = lustre::CopyAction;

    fn fd(&self) -> lustre::Result<RawFd> {
        self.ct.fd()
    }

    fn recv(&self) -> lustre::Result<Option<ActionList>> {
        // Registered non-blocking: an empty pipe answers EAGAIN.
        match self.ct.recv() {
            Ok(list) => Ok(Some(list)),
            Err(e) if e.errno() == Some(libc::EAGAIN) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn begin(&self, item: &ActionItem) -> lustre::Result<lustre::CopyAction> {
        // DNE: the volatile file of a RESTORE must be created on the file's own MDT, whose
        // coordinator holds the request (progress and end are routed by the volatile file's FID),
        // as `lhsmtool_posix`'s `ct_restore` does with `llapi_get_mdt_index_by_fid`.
        let mdt_index = if item.action == CopytoolAction::Restore {
            let idx = self.mount.mdt_index(&item.fid)?;
            i32::try_from(idx).map_err(|_| lustre::Error::Call {
                call: "llapi_get_mdt_index_by_fid",
                errno: libc::EINVAL,
            })?
        } else {
            -1
        };
        // RESTORE: the volatile file gets its layout from the export record before any data
        // (`set_layout`), so it is created without one, as `ct_restore` does when it has a
        // saved layout. A library without the layout calls keeps the directory's default.
        let open_flags = if item.action == CopytoolAction::Restore && lustre::layouts_supported() {
            lustre::lustre_sys::O_LOV_DELAY_CREATE
        } else {
            0
        };
        self.ct.begin(item, mdt_index, open_flags)
    }

    fn begin_error(&self, item: &ActionItem) -> lustre::Result<lustre::CopyAction> {
        self.ct.begin_error(item)
    }

    fn fsname(&self) -> String {
        self.mount.fsname().to_string()
    }

    fn fid2path(&self, fid: &Fid) -> lustre::Result<Vec<PathBuf>> {
        self.mount.fid2path(fid)
    }

    fn open_by_fid(&self, fid: &Fid) -> lustre::Result<File> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        self.mount.open_by_fid(fid, flags).map(File::from)
    }

    fn cancel_stale(&self, fid: &Fid, action: CopytoolAction) -> lustre::Result<bool> {
        let want = match action {
            CopytoolAction::Archive => lustre::UserAction::Archive,
            CopytoolAction::Remove => lustre::UserAction::Remove,
            _ => return Ok(false),
        };
        let paths = match self.mount.fid2path(fid) {
            Ok(p) => p,
            Err(e) if matches!(e.errno(), Some(libc::ENOENT) | Some(libc::ESTALE)) => {
                return Ok(false)
            }
            Err(e) => return Err(e),
        };
        let Some(first) = paths.first() else {
            return Ok(false);
        };
        let cur = self
            .mount
            .hsm_current_action(first.strip_prefix("/").unwrap_or(first))?;
        if cur.state != lustre::ProgressState::Running || cur.action != want {
            return Ok(false);
        }
        self.mount
            .hsm_request(lustre::UserAction::Cancel, 0, 0, &[*fid], b"")?;
        Ok(true)
    }

    fn layout(&self, _fid: &Fid, file: &File) -> lustre::Result<Option<lustre::Striping>> {
        if !lustre::layouts_supported() {
            return Ok(None);
        }
        lustre::Layout::of_file(file.as_fd()).and_then(|l| l.striping())
    }

    fn data_version(&self, file: &File) -> lustre::Result<u64> {
        // Flush other clients' dirty pages first so a change made elsewhere is counted.
        self.mount
            .data_version(file.as_fd(), lustre::lustre_sys::LL_DV_RD_FLUSH)
    }
}

impl CopyAction for lustre::CopyAction {
    fn progress(&self, ext: Extent, total: u64) -> lustre::Result<()> {
        lustre::CopyAction::progress(self, ext, total)
    }

    fn fd(&self) -> lustre::Result<File> {
        lustre::CopyAction::fd(self).map(File::from)
    }

    fn set_layout(&self, layout: Option<&lustre::Striping>) -> lustre::Result<()> {
        // Begun without O_LOV_DELAY_CREATE (see `begin`): the volatile file has its layout.
        if !lustre::layouts_supported() {
            return Ok(());
        }
        let l = match layout {
            Some(s) => lustre::Layout::from_striping(s),
            None => lustre::Layout::new(),
        }?;
        let fd = lustre::CopyAction::fd(self)?;
        l.apply_to(fd.as_fd())
    }

    fn end(self, ext: Extent, hp_flags: i32, errval: i32) -> lustre::Result<()> {
        lustre::CopyAction::end(self, ext, hp_flags, errval)
    }
}

// ------------------------------------------------------------------ blob store

/// The engine's store is the blob crate's own; each call is the method of the same name.
impl Store for BlobStore {
    fn name_for(&self, rel_path: &[u8]) -> Result<BlobName, blob::Error> {
        BlobStore::name_for(self, rel_path).map_err(blob::Error::from)
    }

    async fn upload(
        &self,
        file: &File,
        name: &BlobName,
        meta: &Metadata,
        opts: UploadOptions,
    ) -> Result<Uploaded, blob::Error> {
        self.upload_file(file, name, meta, opts).await
    }

    async fn download(
        &self,
        name: &BlobName,
        file: &File,
        opts: DownloadOptions,
    ) -> Result<Downloaded, blob::Error> {
        self.download_to(name, file, opts).await
    }

    async fn head(&self, name: &BlobName) -> Result<Option<BlobInfo>, blob::Error> {
        BlobStore::head(self, name).await
    }

    async fn delete(&self, name: &BlobName) -> Result<(), blob::Error> {
        BlobStore::delete(self, name).await
    }

    async fn copy(&self, from: &BlobName, to: &BlobName) -> Result<(), blob::Error> {
        BlobStore::copy(self, from, to, false).await
    }
}
