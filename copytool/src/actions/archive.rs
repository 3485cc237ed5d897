//! ARCHIVE: upload the file's data to its blob (and copy it to a blob per other hard link),
//! conditional on what the export record says is ours, then write the record (DESIGN §3).

use blob::{BlobName, ExportRecord, FailureReason, Metadata, UploadOptions, Uploaded, WriteMode};
use lustre_blob_config::ConflictMode;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::{blocking, Ctx, Done};
use crate::failure::Failure;
use crate::guard::ActionGuard;
use crate::ports::{Coordinator, CopyAction, Store};

/// The file being archived as it was when the copy started.
struct Source {
    file: File,
    stat: std::fs::Metadata,
    data_version: u64,
    layout: Option<lustre::Striping>,
}

impl Source {
    fn size(&self) -> u64 {
        self.stat.len()
    }

    /// The metadata the blob carries: ownership, mode, times, FID, data version and layout.
    fn blob_metadata(&self, fid: &lustre::Fid) -> Metadata {
        let st = &self.stat;
        Metadata {
            owner: st.uid(),
            group: st.gid(),
            permissions: st.mode() & 0o7777,
            modtime: st.modified().unwrap_or(UNIX_EPOCH),
            kind: blob::FileKind::File,
            fid: Some(fid.to_string()),
            mtime_ns: Some(i128::from(st.mtime()) * 1_000_000_000 + i128::from(st.mtime_nsec())),
            data_version: Some(self.data_version),
            checksum: None,
            layout: self.layout.clone(),
            extra: Default::default(),
        }
    }
}

impl<C: Coordinator, S: Store> Ctx<'_, C, S> {
    pub(super) async fn archive_work(
        &mut self,
        guard: &ActionGuard<C::Action>,
        token: &CancellationToken,
    ) -> Result<Done, Failure> {
        let file =
            blocking(|| guard.with(|a| a.fd())).map_err(|e| Failure::from(e).context("data fd"))?;
        let stat = file.metadata()?;
        if !stat.file_type().is_file() {
            return Err(not_regular(&stat));
        }
        let names = self.blob_names()?;
        let previous =
            ExportRecord::read(&file).map_err(|e| Failure::from(e).context("export record"))?;
        let src = self.snapshot(file, stat)?;
        let mode = self
            .first_write_mode(&names[0], previous.as_ref(), src.size())
            .await?;
        if self.cfg.dry_run {
            let (size, others) = (src.size(), names.len() - 1);
            return Err(Failure::dry_run(format!("dry run: would upload {size} bytes to {} ({mode:?}) and copy it to {others} other link(s); nothing written", names[0])));
        }
        let uploaded = self
            .upload(&src, &names[0], mode, previous.as_ref(), token)
            .await?;
        self.withdraw_if_changed(&src, &names[0], uploaded.size)
            .await?;
        for link in &names[1..] {
            self.engine.store.copy(&names[0], link).await.map_err(|e| {
                self.store_failure(e)
                    .context(&format!("copy to hard link blob {link}"))
            })?;
        }
        let rec = ExportRecord {
            blob: names[0].to_string(),
            etag: uploaded.etag,
            data_version: src.data_version,
            exported_at: SystemTime::now(),
            size: uploaded.size,
            links: names[1..].iter().map(BlobName::to_string).collect(),
            layout: src.layout,
        };
        rec.write(&src.file)
            .map_err(|e| Failure::from(e).context("write export record"))?;
        Ok(Done {
            bytes: uploaded.size,
        })
    }

    /// One blob name per link of the file (links that map to the same name count once); the
    /// first is the blob the data goes to, the others get server-side copies.
    fn blob_names(&mut self) -> Result<Vec<BlobName>, Failure> {
        let paths = blocking(|| self.engine.ct.fid2path(&self.item.fid))
            .map_err(|e| Failure::from(e).context("fid2path"))?;
        let Some(first) = paths.first() else {
            return Err(Failure::new(
                libc::ENOENT,
                FailureReason::NotFound,
                "the file has no name (fid2path returned no link)",
            ));
        };
        self.path = Some(first.to_string_lossy().into_owned());
        let mut names = Vec::with_capacity(paths.len());
        for p in &paths {
            let name =
                self.engine.store.name_for(rel_bytes(p)).map_err(|e| {
                    Failure::from(e).context(&format!("blob name for {}", p.display()))
                })?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// The data version and layout of the file before any byte is read.
    fn snapshot(&self, file: File, stat: std::fs::Metadata) -> Result<Source, Failure> {
        let ct = &self.engine.ct;
        let data_version = blocking(|| ct.data_version(&file))
            .map_err(|e| Failure::from(e).context("data version"))?;
        // Keeping the layout is not critical (as `lhsmtool_posix`'s `ct_save_stripe`): a file
        // whose layout cannot be read is exported, and restored with the default layout.
        let layout = blocking(|| ct.layout(&self.item.fid, &file)).unwrap_or_else(|e| {
            tracing::warn!(action = %self.label(), error = %e, "cannot read the file's layout; a restore will use the default layout");
            None
        });
        Ok(Source {
            file,
            stat,
            data_version,
            layout,
        })
    }

    /// The condition of the first upload. A file that fits one Put Blob is written
    /// optimistically: the condition the record implies (If-None-Match: * or If-Match: recorded
    /// ETag) is tried first and the blob is looked at only when the service refuses it. That
    /// saves a HEAD per file, half the requests of a small-file export. Larger files look first:
    /// a refused Put Block List would waste the whole upload.
    async fn first_write_mode(
        &self,
        name: &BlobName,
        previous: Option<&ExportRecord>,
        size: u64,
    ) -> Result<WriteMode, Failure> {
        let optimistic = !self.cfg.dry_run
            && self.cfg.conflict == ConflictMode::Fail
            && size <= self.cfg.block_size;
        if optimistic {
            Ok(assumed_mode(name, previous))
        } else {
            self.write_mode(name, previous).await
        }
    }

    /// Uploads the file in `mode`. Refused: the blob may still be ours — an export whose record
    /// was lost, or this very upload, applied by the service and then retried by the HTTP client
    /// after its answer was lost. Look once and, if it is ours, replace it on the ETag just
    /// read. Otherwise (a foreign blob) the refusal stands.
    async fn upload(
        &self,
        src: &Source,
        name: &BlobName,
        mode: WriteMode,
        previous: Option<&ExportRecord>,
        token: &CancellationToken,
    ) -> Result<Uploaded, Failure> {
        let meta = src.blob_metadata(&self.item.fid);
        let store = &self.engine.store;
        let opts = |mode| self.upload_opts(mode, src.size(), token);
        let mut uploaded = store
            .upload(&src.file, name, &meta, opts(mode.clone()))
            .await;
        if matches!(&uploaded, Err(blob::Error::Conflict(_))) {
            if let Some(etag) = self.ours_now(name, previous).await? {
                if mode != WriteMode::IfMatch(etag.clone()) {
                    let second = WriteMode::IfMatch(etag);
                    uploaded = store.upload(&src.file, name, &meta, opts(second)).await;
                }
            }
        }
        uploaded.map_err(|e| match e {
            // A file truncated while it is read ends the read early (an unexpected end of file):
            // that is a change during the copy, exported again, not an I/O error.
            blob::Error::Io { .. } if self.changed_since(src) => Failure::new(
                libc::EBUSY,
                FailureReason::Changed,
                format!("file changed during archive (it was truncated while read: {e}); nothing committed, it will be exported again"),
            ),
            e => self.store_failure(e).context(&format!("upload {name}")),
        })
    }

    /// An upload in `mode` of `size` bytes, counted for progress, stopped by `token`, within
    /// the agent's bandwidth budget; files up to one block go in one Put Blob.
    fn upload_opts(&self, mode: WriteMode, size: u64, token: &CancellationToken) -> UploadOptions {
        UploadOptions {
            mode,
            block_size: self.cfg.block_size,
            blocks_in_flight: self.cfg.blocks_in_flight,
            single_put_threshold: self.cfg.block_size,
            progress: Some(self.count_progress(size)),
            cancel: token.clone(),
            rate_limit: Some(self.engine.rate_limit().clone()),
        }
    }

    /// A file changed while it was read may have produced a blob mixing old and new bytes:
    /// withdraw it (and the record that would make the next archive if-match a blob that no
    /// longer exists), and fail with EBUSY so it is exported again.
    async fn withdraw_if_changed(
        &self,
        src: &Source,
        name: &BlobName,
        uploaded: u64,
    ) -> Result<(), Failure> {
        let dv_after = blocking(|| self.engine.ct.data_version(&src.file))
            .map_err(|e| Failure::from(e).context("data version"))?;
        if dv_after == src.data_version && uploaded == src.size() {
            return Ok(());
        }
        if let Err(e) = self.engine.store.delete(name).await {
            tracing::error!(blob = %name, error = %e, "could not withdraw the blob of a file changed during archive");
        }
        if let Err(e) = ExportRecord::clear(&src.file) {
            tracing::error!(error = %e, "could not clear the export record");
        }
        Err(Failure::new(
            libc::EBUSY,
            FailureReason::Changed,
            "file changed during archive; blob withdrawn, it will be exported again",
        ))
    }

    /// Whether the file's data changed since the copy started (data version or size).
    fn changed_since(&self, src: &Source) -> bool {
        let dv = blocking(|| self.engine.ct.data_version(&src.file));
        dv.is_ok_and(|dv| dv != src.data_version)
            || src.file.metadata().is_ok_and(|m| m.len() != src.size())
    }

    /// The coordinator refused an archive at its end because the file changed after our last check:
    /// the blob may mix old and new bytes, so withdraw it with its record, as when we notice it.
    pub(super) async fn withdraw_export(&self) {
        let ct = &self.engine.ct;
        let Ok(file) = blocking(|| ct.open_by_fid(&self.item.fid)) else {
            return;
        };
        let Ok(Some(rec)) = ExportRecord::read(&file) else {
            return;
        };
        for name in rec.all_blobs() {
            let deleted = match super::recorded_name(name) {
                Ok(n) => self.engine.store.delete(&n).await.map_err(Failure::from),
                Err(f) => Err(f),
            };
            if let Err(e) = deleted {
                tracing::error!(blob = name, error = %e.message, "could not withdraw the blob of a file changed during archive");
            }
        }
        if let Err(e) = ExportRecord::clear(&file) {
            tracing::error!(error = %e, "could not clear the export record");
        }
    }

    /// How the upload to `name` may replace what is there (README "Conflicts").
    ///
    /// Under `conflict = "fail"` a blob is replaced only when it is ours: the one the export record
    /// names with the recorded ETag, or, when there is no matching record, a blob whose `lustre_fid`
    /// is this very file's FID. The second case is our own export whose record was never written (the
    /// copytool died between the commit and the xattr) or is stale; without it such a file would fail
    /// with a conflict forever. Either way the upload is conditional on the ETag just seen, so a
    /// foreign write racing with us still surfaces as a conflict.
    async fn write_mode(
        &self,
        name: &BlobName,
        previous: Option<&ExportRecord>,
    ) -> Result<WriteMode, Failure> {
        if self.cfg.conflict == ConflictMode::Overwrite {
            return Ok(WriteMode::Overwrite);
        }
        let recorded = previous
            .filter(|r| r.blob == name.as_str())
            .map(|r| r.etag.clone());
        let head = self
            .engine
            .store
            .head(name)
            .await
            .map_err(|e| self.store_failure(e).context(&format!("head {name}")))?;
        let Some(head) = head else {
            // Nothing there: create it. A recorded blob that vanished keeps its If-Match, so a
            // deletion behind our back is reported as a conflict rather than silently undone.
            return Ok(recorded.map_or(WriteMode::CreateOnly, WriteMode::IfMatch));
        };
        let etag = head.etag.clone().unwrap_or_default();
        if recorded.as_deref() == Some(etag.as_str()) {
            return Ok(WriteMode::IfMatch(etag));
        }
        if super::blob_fid(&head) == Some(self.item.fid.to_string().as_str()) {
            tracing::info!(
                action = %self.label(),
                blob = %name,
                etag = %etag,
                recorded = recorded.as_deref().unwrap_or("none"),
                "blob carries this file's lustre_fid but no matching export record: replacing our own earlier export"
            );
            return Ok(WriteMode::IfMatch(etag));
        }
        // Not ours: let the conditional upload report the conflict (with Azure's status and code).
        Ok(assumed_mode(name, previous))
    }

    /// The ETag of the blob at `name` when it is ours (the one the export record names, or one
    /// carrying this file's `lustre_fid`), `None` when it is missing or foreign.
    async fn ours_now(
        &self,
        name: &BlobName,
        previous: Option<&ExportRecord>,
    ) -> Result<Option<String>, Failure> {
        Ok(match self.write_mode(name, previous).await? {
            WriteMode::IfMatch(etag)
                if assumed_mode(name, previous) != WriteMode::IfMatch(etag.clone()) =>
            {
                Some(etag)
            }
            _ => None,
        })
    }
}

/// fid2path gives paths relative to the mount; tolerate a leading '/'.
fn rel_bytes(p: &Path) -> &[u8] {
    let mut s = p.as_os_str().as_bytes();
    while let [b'/', rest @ ..] = s {
        s = rest;
    }
    s
}

fn not_regular(st: &std::fs::Metadata) -> Failure {
    let ft = st.file_type();
    let kind = if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symlink"
    } else {
        "not a regular file"
    };
    Failure::new(
        libc::EINVAL,
        FailureReason::NotRegular,
        format!("{kind}: HSM moves regular files only; directories and symlinks are exported by lustre-blob itself"),
    )
}

/// The write condition the export record alone implies for `name`: If-Match on the recorded ETag
/// when the record names this blob, otherwise create-only. Under `conflict = "fail"` every upload
/// carries at least this condition, so a foreign blob is never overwritten unseen.
fn assumed_mode(name: &BlobName, previous: Option<&ExportRecord>) -> WriteMode {
    previous
        .filter(|r| r.blob == name.as_str())
        .map_or(WriteMode::CreateOnly, |r| {
            WriteMode::IfMatch(r.etag.clone())
        })
}
