//! ARCHIVE, RESTORE and REMOVE (DESIGN §3, lustre-abi §4.3–4.5), each: begin, work, exactly one end.

use blob::FailureReason;
use lustre_blob_config::{ConflictMode, DeleteMode};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineConfig};
use crate::failure::{errno_of, Failure};
use crate::guard::{ActionGuard, ActionSlot};
use crate::metrics::{action_name, Outcome};
use crate::ports::{Coordinator, CopyAction, Store};
use blob::{BlobName, DownloadOptions, ExportRecord, Metadata, UploadOptions, WriteMode};
use lustre::{ActionItem, Extent};

/// Runs a blocking Lustre call without stalling the async workers.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

/// One item being served.
pub(crate) struct Ctx<'a, C: Coordinator, S: Store> {
    engine: &'a Arc<Engine<C, S>>,
    item: &'a ActionItem,
    cfg: Arc<EngineConfig>,
    /// The file's first path relative to the mount, once known (for logs).
    path: Option<String>,
    /// The action begun when the item was received (the engine begins items at once).
    begun: std::sync::Mutex<Option<C::Action>>,
}

/// A successful action: bytes moved.
struct Done {
    bytes: u64,
}

impl<'a, C: Coordinator, S: Store> Ctx<'a, C, S> {
    pub(crate) fn new(engine: &'a Arc<Engine<C, S>>, item: &'a ActionItem) -> Self {
        Ctx {
            engine,
            item,
            cfg: engine.config(),
            path: None,
            begun: std::sync::Mutex::new(None),
        }
    }

    /// With the action already begun at receipt.
    pub(crate) fn with_begun(self, a: Option<C::Action>) -> Self {
        *self.begun.lock().unwrap_or_else(|p| p.into_inner()) = a;
        self
    }

    fn label(&self) -> String {
        format!(
            "{} {} cookie={:#x}",
            action_name(self.item.action),
            self.item.fid,
            self.item.cookie
        )
    }

    /// Ends an item that was never begun (begin failed, unknown action, stopping) through the
    /// is_error path, as lhsmtool_posix does.
    pub(crate) fn fail_unbegun(&self, f: Failure) {
        self.engine
            .report_failure(self.item, self.path.as_deref(), &f);
        let res = blocking(|| {
            let a = self.engine.ct.begin_error(self.item)?;
            a.end(self.item.extent, f.hp_flags(), f.errno)
        });
        if let Err(e) = res {
            tracing::error!(action = %self.label(), error = %e, "could not report the failure to the coordinator");
            self.note_undelivered(errno_of(&e));
        }
    }

    /// An end failed with `errno`: if it may not have reached the coordinator, the item stays
    /// in the journal so the next copytool ends it.
    ///
    /// -ENOENT: the coordinator no longer knows the cookie. After an MDS restart that is a
    /// request reloaded STARTED on disk only (`hsm_restore_cb`), which nobody can end and which
    /// stays until `active_request_timeout`: an ARCHIVE or REMOVE still shown running on the file
    /// is cancelled as an admin would, so the file can be exported again at once.
    fn note_undelivered(&self, errno: i32) {
        self.engine.after_end_error(self.item, errno);
    }

    fn begin(&self) -> Result<ActionGuard<C::Action>, Failure> {
        tracing::debug!(action = %self.label(), "started");
        let pre = self.begun.lock().unwrap_or_else(|p| p.into_inner()).take();
        let a = match pre {
            Some(a) => a,
            None => blocking(|| self.engine.ct.begin(self.item))
                .map_err(|e| Failure::from(e).context("begin"))?,
        };
        Ok(ActionGuard::new(a, self.item.extent, self.label()))
    }

    /// Turns a cancelled transfer into the right failure: ECANCELED when the coordinator cancelled it,
    /// ESHUTDOWN when the agent is stopping.
    fn cancelled(&self) -> Failure {
        if self.engine.shutting_down.load(Ordering::SeqCst) {
            Failure::new(
                libc::ESHUTDOWN,
                FailureReason::Shutdown,
                "aborted: copytool stopping",
            )
        } else {
            Failure::new(
                libc::ECANCELED,
                FailureReason::Cancelled,
                "cancelled by the coordinator",
            )
        }
    }

    fn store_failure(&self, e: blob::Error) -> Failure {
        if matches!(e, blob::Error::Cancelled) {
            self.cancelled()
        } else {
            Failure::from(e)
        }
    }

    /// Ends a begun action with the result of `work` and returns the outcome.
    /// Ends a begun action with the result of the work. A success the coordinator refuses at the end
    /// (e.g. EBUSY: the file changed after our own check) comes back as `Err(errno)`.
    fn finish(
        &self,
        guard: ActionGuard<C::Action>,
        result: Result<Done, Failure>,
    ) -> Result<Outcome, i32> {
        match result {
            Ok(done) => match blocking(|| guard.end(self.item.extent, 0, 0)) {
                Ok(()) => {
                    tracing::info!(action = %self.label(), path = self.path.as_deref().unwrap_or(""), bytes = done.bytes, "done");
                    Ok(Outcome::Ok)
                }
                Err(e) => {
                    let errno = errno_of(&e);
                    self.note_undelivered(errno);
                    let f = Failure::from(e).context("end");
                    self.engine
                        .report_failure(self.item, self.path.as_deref(), &f);
                    Err(errno)
                }
            },
            Err(f) => {
                self.engine
                    .report_failure(self.item, self.path.as_deref(), &f);
                if let Err(e) = blocking(|| guard.end(self.item.extent, f.hp_flags(), f.errno)) {
                    tracing::error!(action = %self.label(), error = %e, "ending the failed action failed");
                    self.note_undelivered(errno_of(&e));
                }
                if f.errno == libc::ECANCELED {
                    Ok(Outcome::Cancelled)
                } else {
                    Ok(Outcome::Failed)
                }
            }
        }
    }

    /// The coordinator refused an archive at its end because the file changed after our last check:
    /// the blob may mix old and new bytes, so withdraw it with its record, as when we notice it.
    async fn withdraw_export(&self) {
        let ct = &self.engine.ct;
        let Ok(file) = blocking(|| ct.open_by_fid(&self.item.fid)) else {
            return;
        };
        let Ok(Some(rec)) = ExportRecord::read(&file) else {
            return;
        };
        for name in rec.all_blobs() {
            let deleted = match BlobName::new(name) {
                Ok(n) => self.engine.store.delete(&n).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = deleted {
                tracing::error!(blob = name, error = %e, "could not withdraw the blob of a file changed during archive");
            }
        }
        if let Err(e) = ExportRecord::clear(&file) {
            tracing::error!(error = %e, "could not clear the export record");
        }
    }

    /// An upload in `mode` that counts its bytes in `counter`, stops on `token` and draws from
    /// the agent's bandwidth budget; files up to one block go in one Put Blob.
    fn upload_opts(
        &self,
        mode: WriteMode,
        token: &CancellationToken,
        counter: &Arc<AtomicU64>,
    ) -> UploadOptions {
        UploadOptions {
            mode,
            block_size: self.cfg.block_size,
            blocks_in_flight: self.cfg.blocks_in_flight,
            single_put_threshold: self.cfg.block_size,
            progress: Some(count_into(counter)),
            cancel: token.clone(),
            rate_limit: Some(self.engine.rate_limit().clone()),
        }
    }

    /// A download counting into `counter`, stopped by `token`, within the agent's budget.
    fn download_opts(
        &self,
        token: &CancellationToken,
        counter: &Arc<AtomicU64>,
    ) -> DownloadOptions {
        DownloadOptions {
            range_size: self.cfg.block_size,
            ranges_in_flight: self.cfg.blocks_in_flight,
            progress: Some(count_into(counter)),
            cancel: token.clone(),
            rate_limit: Some(self.engine.rate_limit().clone()),
        }
    }

    // ---------------------------------------------------------------- ARCHIVE

    pub(crate) async fn archive(mut self, token: CancellationToken) -> Outcome {
        let guard = match self.begin() {
            Ok(g) => g,
            Err(f) => {
                self.fail_unbegun(f);
                return Outcome::Failed;
            }
        };
        let result = self.archive_work(&guard, &token).await;
        let bytes = result.as_ref().map_or(0, |d| d.bytes);
        match self.finish(guard, result) {
            Ok(Outcome::Ok) => {
                self.engine.metrics.add_archived(bytes);
                Outcome::Ok
            }
            Ok(other) => other,
            Err(errno) => {
                if errno == libc::EBUSY {
                    self.withdraw_export().await;
                }
                Outcome::Failed
            }
        }
    }

    async fn archive_work(
        &mut self,
        guard: &ActionGuard<C::Action>,
        token: &CancellationToken,
    ) -> Result<Done, Failure> {
        let ct = &self.engine.ct;
        let store = &self.engine.store;
        let file =
            blocking(|| guard.with(|a| a.fd())).map_err(|e| Failure::from(e).context("data fd"))?;
        let st = file.metadata()?;
        if !st.file_type().is_file() {
            return Err(not_regular(&st));
        }
        let paths = blocking(|| ct.fid2path(&self.item.fid))
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
            let name = store
                .name_for(rel_bytes(p))
                .map_err(|e| Failure::from(e).context(&format!("blob name for {}", p.display())))?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let previous =
            ExportRecord::read(&file).map_err(|e| Failure::from(e).context("export record"))?;
        let dv_before = blocking(|| ct.data_version(&file))
            .map_err(|e| Failure::from(e).context("data version"))?;
        // Keeping the layout is not critical (as `lhsmtool_posix`'s `ct_save_stripe`): a file
        // whose layout cannot be read is exported, and restored with the default layout.
        let layout = blocking(|| ct.layout(&self.item.fid, &file)).unwrap_or_else(|e| {
            tracing::warn!(action = %self.label(), error = %e, "cannot read the file's layout; a restore will use the default layout");
            None
        });
        // A file that fits one Put Blob is written optimistically: the condition the record implies
        // (If-None-Match: * or If-Match: recorded ETag) is tried first and the blob is looked at only
        // when the service refuses it. That saves a HEAD per file, half the requests of a small-file
        // export. Larger files look first: a refused Put Block List would waste the whole upload.
        let optimistic = !self.cfg.dry_run
            && self.cfg.conflict == ConflictMode::Fail
            && st.len() <= self.cfg.block_size;
        let mode = if optimistic {
            assumed_mode(&names[0], previous.as_ref())
        } else {
            self.write_mode(&names[0], previous.as_ref()).await?
        };
        if self.cfg.dry_run {
            return Err(Failure::new(
                libc::EOPNOTSUPP,
                FailureReason::DryRun,
                format!(
                    "dry run: would upload {} bytes to {} ({mode:?}) and copy it to {} other link(s); nothing written",
                    st.len(),
                    names[0],
                    names.len() - 1
                ),
            ));
        }
        let meta = Metadata {
            owner: st.uid(),
            group: st.gid(),
            permissions: st.mode() & 0o7777,
            modtime: st.modified().unwrap_or(UNIX_EPOCH),
            kind: blob::FileKind::File,
            fid: Some(self.item.fid.to_string()),
            mtime_ns: Some(i128::from(st.mtime()) * 1_000_000_000 + i128::from(st.mtime_nsec())),
            data_version: Some(dv_before),
            checksum: None,
            layout: layout.clone(),
            extra: Default::default(),
        };
        let counter = Arc::new(AtomicU64::new(0));
        let reporter = self.spawn_progress(guard.slot(), counter.clone(), st.len(), token.clone());
        let mut uploaded = store
            .upload(
                &file,
                &names[0],
                &meta,
                self.upload_opts(mode.clone(), token, &counter),
            )
            .await;
        if matches!(&uploaded, Err(blob::Error::Conflict(_))) {
            // Refused: the blob may still be ours — an export whose record was lost, or this very
            // upload, applied by the service and then retried by the HTTP client after its answer
            // was lost. Look once and, if it is ours, replace it on the ETag just read. Otherwise
            // (a foreign blob) the refusal stands.
            match self.ours_now(&names[0], previous.as_ref()).await {
                Ok(Some(etag)) if mode != WriteMode::IfMatch(etag.clone()) => {
                    let second = WriteMode::IfMatch(etag);
                    uploaded = store
                        .upload(
                            &file,
                            &names[0],
                            &meta,
                            self.upload_opts(second, token, &counter),
                        )
                        .await;
                }
                Ok(_) => {}
                Err(f) => {
                    reporter.cancel();
                    return Err(f);
                }
            }
        }
        reporter.cancel();
        let uploaded = match uploaded {
            // A file truncated while it is read ends the read early (an unexpected end of file):
            // that is a change during the copy, exported again, not an I/O error.
            Err(e)
                if matches!(e, blob::Error::Io { .. })
                    && self.changed_since(&file, dv_before, st.len()) =>
            {
                return Err(Failure::new(
                    libc::EBUSY,
                    FailureReason::Changed,
                    format!("file changed during archive (it was truncated while read: {e}); nothing committed, it will be exported again"),
                ));
            }
            other => other.map_err(|e| {
                self.store_failure(e)
                    .context(&format!("upload {}", names[0]))
            })?,
        };

        // A file changed while it was read may have produced a blob mixing old and new bytes: withdraw it
        // (and the record that would make the next archive if-match a blob that no longer exists).
        let dv_after = blocking(|| ct.data_version(&file))
            .map_err(|e| Failure::from(e).context("data version"))?;
        if dv_after != dv_before || uploaded.size != st.len() {
            if let Err(e) = store.delete(&names[0]).await {
                tracing::error!(blob = %names[0], error = %e, "could not withdraw the blob of a file changed during archive");
            }
            if let Err(e) = ExportRecord::clear(&file) {
                tracing::error!(error = %e, "could not clear the export record");
            }
            return Err(Failure::new(
                libc::EBUSY,
                FailureReason::Changed,
                "file changed during archive; blob withdrawn, it will be exported again",
            ));
        }
        for link in &names[1..] {
            store.copy(&names[0], link).await.map_err(|e| {
                self.store_failure(e)
                    .context(&format!("copy to hard link blob {link}"))
            })?;
        }
        let rec = ExportRecord {
            blob: names[0].to_string(),
            etag: uploaded.etag,
            data_version: dv_before,
            exported_at: std::time::SystemTime::now(),
            size: uploaded.size,
            links: names[1..].iter().map(BlobName::to_string).collect(),
            layout,
        };
        rec.write(&file)
            .map_err(|e| Failure::from(e).context("write export record"))?;
        Ok(Done {
            bytes: uploaded.size,
        })
    }

    /// Whether the file's data changed since `dv_before`/`size` were taken (data version or size).
    fn changed_since(&self, file: &std::fs::File, dv_before: u64, size: u64) -> bool {
        let dv = blocking(|| self.engine.ct.data_version(file));
        dv.is_ok_and(|dv| dv != dv_before) || file.metadata().is_ok_and(|m| m.len() != size)
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
        if blob_fid(&head) == Some(self.item.fid.to_string().as_str()) {
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

    /// Reports progress every update interval until cancelled; an ECANCELED answer cancels `token`.
    fn spawn_progress(
        &self,
        slot: ActionSlot<C::Action>,
        done: Arc<AtomicU64>,
        total: u64,
        token: CancellationToken,
    ) -> CancellationToken {
        let stop = CancellationToken::new();
        let stop2 = stop.clone();
        let interval = self.cfg.update_interval.max(Duration::from_millis(10));
        let base = self.item.extent.offset;
        let label = self.label();
        tokio::spawn(async move {
            let mut reported = 0u64;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = stop2.cancelled() => return,
                }
                let now = done.load(Ordering::Relaxed);
                let ext = Extent {
                    offset: base + reported,
                    length: now.saturating_sub(reported),
                };
                match blocking(|| slot.progress(ext, total)) {
                    Ok(true) => reported = now.max(reported),
                    Ok(false) => return,
                    Err(e) if errno_of(&e) == libc::ECANCELED => {
                        tracing::info!(action = %label, "coordinator cancelled the action");
                        token.cancel();
                        return;
                    }
                    Err(e) => tracing::warn!(action = %label, error = %e, "progress report failed"),
                }
            }
        });
        stop
    }

    // ---------------------------------------------------------------- RESTORE

    pub(crate) async fn restore(mut self, token: CancellationToken) -> Outcome {
        let guard = match self.begin() {
            Ok(g) => g,
            Err(f) => {
                self.fail_unbegun(f);
                return Outcome::Failed;
            }
        };
        let result = self.restore_work(&guard, &token).await;
        let bytes = result.as_ref().map_or(0, |d| d.bytes);
        let outcome = self.finish(guard, result).unwrap_or(Outcome::Failed);
        if outcome == Outcome::Ok {
            self.engine.metrics.add_restored(bytes);
        }
        outcome
    }

    async fn restore_work(
        &mut self,
        guard: &ActionGuard<C::Action>,
        token: &CancellationToken,
    ) -> Result<Done, Failure> {
        let ct = &self.engine.ct;
        let store = &self.engine.store;
        let out = blocking(|| guard.with(|a| a.fd()))
            .map_err(|e| Failure::from(e).context("volatile fd"))?;
        let original = blocking(|| ct.open_by_fid(&self.item.fid))
            .map_err(|e| Failure::from(e).context("open by fid"))?;
        let rec =
            ExportRecord::read(&original).map_err(|e| Failure::from(e).context("export record"))?;
        if let Ok(paths) = blocking(|| ct.fid2path(&self.item.fid)) {
            self.path = paths.first().map(|p| p.to_string_lossy().into_owned());
        }
        let name = match &rec {
            Some(r) => recorded_name(&r.blob)?,
            None => {
                let path = self.path.clone().ok_or_else(|| {
                    Failure::new(
                        libc::ENOENT,
                        FailureReason::NotFound,
                        "no export record and no path to name the blob",
                    )
                })?;
                store.name_for(path.as_bytes()).map_err(Failure::from)?
            }
        };
        let mut name = name;
        let mut head = store
            .head(&name)
            .await
            .map_err(|e| self.store_failure(e).context(&format!("head {name}")))?;
        // The daemon's `on_rename = "move"` copies the blob to the file's new name server-side
        // and deletes the old one, leaving the record naming the old blob; the copy has a new
        // ETag but keeps the metadata, which says it is this file's content of the recorded
        // data version.
        let mut moved = false;
        if let (None, Some(r), Some(path)) = (&head, &rec, &self.path) {
            if let Ok(current) = store.name_for(path.as_bytes()) {
                if current != name {
                    let h = store
                        .head(&current)
                        .await
                        .map_err(|e| self.store_failure(e).context(&format!("head {current}")))?;
                    if h.as_ref().is_some_and(|h| {
                        blob_fid(h) == Some(self.item.fid.to_string().as_str())
                            && h.metadata.as_ref().and_then(|m| m.data_version)
                                == Some(r.data_version)
                            && h.size == r.size
                    }) {
                        name = current;
                        head = h;
                        moved = true;
                    }
                }
            }
        }
        let head = head.ok_or_else(|| {
            Failure::new(
                libc::ENOENT,
                FailureReason::NotFound,
                format!("blob {name} does not exist"),
            )
        })?;
        if let Some(r) = rec.as_ref().filter(|_| !moved) {
            let etag = head.etag.as_deref().unwrap_or_default();
            if self.cfg.conflict == ConflictMode::Fail && etag != r.etag {
                return Err(Failure::new(
                    libc::EEXIST,
                    FailureReason::Conflict,
                    format!("blob {name} changed since it was exported (ETag {etag} != {}); not restoring foreign data", r.etag),
                ));
            }
        }
        if self.cfg.dry_run {
            return Err(Failure::new(
                libc::EOPNOTSUPP,
                FailureReason::DryRun,
                format!(
                    "dry run: would restore {} bytes from {name}; nothing written",
                    head.size
                ),
            ));
        }
        // The record's layout, else the blob's (a stub an import made has no record).
        let layout = rec
            .as_ref()
            .and_then(|r| r.layout.clone())
            .or_else(|| head.metadata.as_ref().and_then(|m| m.layout.clone()));
        self.restore_layout(guard, layout.as_ref())?;
        let counter = Arc::new(AtomicU64::new(0));
        let reporter = self.spawn_progress(guard.slot(), counter.clone(), head.size, token.clone());
        let got = store
            .download(&name, &out, self.download_opts(token, &counter))
            .await;
        reporter.cancel();
        let got = got.map_err(|e| self.store_failure(e).context(&format!("download {name}")))?;
        if !got.verified {
            tracing::debug!(blob = %name, "blob has no checksum to verify (written by another tool)");
        }
        let size = got.size;
        let expected = rec.as_ref().map_or(head.size, |r| r.size);
        if size != expected {
            return Err(Failure::new(
                libc::EIO,
                FailureReason::Corrupt,
                format!("restored {size} bytes from {name}, expected {expected}"),
            ));
        }
        // The volatile file must be exactly the blob's size (it may have been preallocated).
        out.set_len(size)?;
        Ok(Done { bytes: size })
    }

    /// Gives the volatile file `layout` before any data is written. A pool that no longer
    /// exists (Lustre: EINVAL from the layout sanity check) must not make the file
    /// unrestorable: the layout is then applied without its pool, and that is logged.
    fn restore_layout(
        &self,
        guard: &ActionGuard<C::Action>,
        layout: Option<&lustre::Striping>,
    ) -> Result<(), Failure> {
        let first = blocking(|| guard.with(|a| a.set_layout(layout)));
        let (Err(e), Some(l)) = (&first, layout) else {
            return first.map_err(|e| Failure::from(e).context("set the volatile file's layout"));
        };
        let Some(pool) = l.pool().filter(|_| errno_of(&e) == libc::EINVAL) else {
            return first.map_err(|e| Failure::from(e).context("set the volatile file's layout"));
        };
        let without = lustre::Striping::new(l.stripe_count().into(), l.stripe_size(), None)
            .map_err(|e| Failure::new(libc::EINVAL, FailureReason::Lustre, e.to_string()))?;
        tracing::warn!(action = %self.label(), pool, layout = %l, "the file's pool is refused (removed?); restoring its striping without the pool");
        blocking(|| guard.with(|a| a.set_layout(Some(&without))))
            .map_err(|e| Failure::from(e).context("set the volatile file's layout"))
    }

    // ---------------------------------------------------------------- REMOVE

    pub(crate) async fn remove(mut self, token: CancellationToken) -> Outcome {
        let guard = match self.begin() {
            Ok(g) => g,
            Err(f) => {
                self.fail_unbegun(f);
                return Outcome::Failed;
            }
        };
        let result = self.remove_work(&token).await;
        self.finish(guard, result).unwrap_or(Outcome::Failed)
    }

    async fn remove_work(&mut self, token: &CancellationToken) -> Result<Done, Failure> {
        let ct = &self.engine.ct;
        let store = &self.engine.store;
        if let Ok(paths) = blocking(|| ct.fid2path(&self.item.fid)) {
            self.path = paths.first().map(|p| p.to_string_lossy().into_owned());
        }
        let file = match blocking(|| ct.open_by_fid(&self.item.fid)) {
            Ok(f) => f,
            // Lustre 2.15 answers ENOENT for a deleted FID, 2.16 ESTALE (`open_by_handle_at`).
            Err(e) if errno_of(&e) == libc::ENOENT || errno_of(&e) == libc::ESTALE => {
                tracing::info!(action = %self.label(), "file is gone; its export record with it: nothing to delete");
                return Ok(Done { bytes: 0 });
            }
            Err(e) => return Err(Failure::from(e).context("open by fid")),
        };
        let Some(rec) =
            ExportRecord::read(&file).map_err(|e| Failure::from(e).context("export record"))?
        else {
            tracing::info!(action = %self.label(), "no export record: no blob of ours to delete");
            return Ok(Done { bytes: 0 });
        };
        if self.cfg.remove == DeleteMode::Keep {
            tracing::info!(action = %self.label(), blob = %rec.blob, "policy keeps blobs on remove");
            return Ok(Done { bytes: 0 });
        }
        if self.cfg.dry_run {
            return Err(Failure::new(
                libc::EOPNOTSUPP,
                FailureReason::DryRun,
                format!(
                    "dry run: would delete {}; nothing deleted",
                    rec.all_blobs().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        for name in rec.all_blobs() {
            if token.is_cancelled() {
                return Err(self.cancelled());
            }
            match store.delete(&recorded_name(name)?).await {
                Ok(()) => {}
                Err(blob::Error::NotFound(_)) => {}
                Err(e) => return Err(self.store_failure(e).context(&format!("delete {name}"))),
            }
        }
        ExportRecord::clear(&file).map_err(|e| Failure::from(e).context("clear export record"))?;
        Ok(Done { bytes: 0 })
    }
}

/// fid2path gives paths relative to the mount; tolerate a leading '/'.
fn rel_bytes(p: &Path) -> &[u8] {
    let b = p.as_os_str().as_bytes();
    let mut s = b;
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

/// The `lustre_fid` metadata of a blob: the file it was exported from (`None` for a blob another
/// tool wrote, or metadata that does not decode).
fn blob_fid(head: &blob::BlobInfo) -> Option<&str> {
    head.metadata.as_ref().and_then(|m| m.fid.as_deref())
}

/// A progress callback that keeps the highest byte count reported in `counter`.
fn count_into(counter: &Arc<AtomicU64>) -> blob::Progress {
    let counter = counter.clone();
    Arc::new(move |total| {
        counter.fetch_max(total, Ordering::Relaxed);
    })
}

/// A blob name read from an export record (an xattr anyone with root may have written).
fn recorded_name(name: &str) -> Result<BlobName, Failure> {
    BlobName::new(name)
        .map_err(|e| Failure::from(blob::Error::from(e)).context("blob named by the export record"))
}
