//! RESTORE: find the file's blob (the one its export record names, or the one a rename moved it
//! to), refuse foreign data, give the volatile file the saved layout, and download into it.

use blob::{BlobInfo, BlobName, DownloadOptions, ExportRecord, FailureReason};
use lustre_blob_config::ConflictMode;

use tokio_util::sync::CancellationToken;

use super::{blob_fid, blocking, recorded_name, Ctx, Done};
use crate::failure::{errno_of, Failure};
use crate::guard::ActionGuard;
use crate::ports::{Coordinator, CopyAction, Store};

impl<C: Coordinator, S: Store> Ctx<'_, C, S> {
    pub(super) async fn restore_work(
        &mut self,
        guard: &ActionGuard<C::Action>,
        token: &CancellationToken,
    ) -> Result<Done, Failure> {
        let out = blocking(|| guard.with(|a| a.fd()))
            .map_err(|e| Failure::from(e).context("volatile fd"))?;
        let original = blocking(|| self.engine.ct.open_by_fid(&self.item.fid))
            .map_err(|e| Failure::from(e).context("open by fid"))?;
        let rec =
            ExportRecord::read(&original).map_err(|e| Failure::from(e).context("export record"))?;
        self.learn_path();
        let (name, head) = self.source_blob(rec.as_ref()).await?;
        if self.cfg.dry_run {
            let size = head.size;
            return Err(Failure::dry_run(format!(
                "dry run: would restore {size} bytes from {name}; nothing written"
            )));
        }
        // The record's layout, else the blob's (a stub an import made has no record).
        let layout = rec
            .as_ref()
            .and_then(|r| r.layout.clone())
            .or_else(|| head.metadata.as_ref().and_then(|m| m.layout.clone()));
        self.restore_layout(guard, layout.as_ref())?;
        let opts = DownloadOptions {
            range_size: self.cfg.block_size,
            ranges_in_flight: self.cfg.blocks_in_flight,
            progress: Some(self.count_progress(head.size)),
            cancel: token.clone(),
            rate_limit: Some(self.engine.rate_limit().clone()),
        };
        let got = self
            .engine
            .store
            .download(&name, &out, opts)
            .await
            .map_err(|e| self.store_failure(e).context(&format!("download {name}")))?;
        if !got.verified {
            tracing::debug!(blob = %name, "blob has no checksum to verify (written by another tool)");
        }
        let expected = rec.as_ref().map_or(head.size, |r| r.size);
        if got.size != expected {
            return Err(Failure::new(
                libc::EIO,
                FailureReason::Corrupt,
                format!(
                    "restored {} bytes from {name}, expected {expected}",
                    got.size
                ),
            ));
        }
        // The volatile file must be exactly the blob's size (it may have been preallocated).
        out.set_len(got.size)?;
        Ok(Done { bytes: got.size })
    }

    /// The blob to restore from: the one the export record names (or, without a record, the
    /// one of the file's current path), followed to where a rename moved it; under
    /// `conflict = "fail"` it must still be the blob the record was written for.
    async fn source_blob(
        &self,
        rec: Option<&ExportRecord>,
    ) -> Result<(BlobName, BlobInfo), Failure> {
        let name = match rec {
            Some(r) => recorded_name(&r.blob)?,
            None => {
                let path = self.path.as_deref().ok_or_else(|| {
                    Failure::new(
                        libc::ENOENT,
                        FailureReason::NotFound,
                        "no export record and no path to name the blob",
                    )
                })?;
                self.engine
                    .store
                    .name_for(path.as_bytes())
                    .map_err(Failure::from)?
            }
        };
        let head = self.head(&name).await?;
        let (name, head, moved) = match (head, rec) {
            (None, Some(r)) => match self.moved_blob(&name, r).await? {
                Some((current, h)) => (current, Some(h), true),
                None => (name, None, false),
            },
            (head, _) => (name, head, false),
        };
        let head = head.ok_or_else(|| {
            Failure::new(
                libc::ENOENT,
                FailureReason::NotFound,
                format!("blob {name} does not exist"),
            )
        })?;
        if let Some(r) = rec.filter(|_| !moved) {
            let etag = head.etag.as_deref().unwrap_or_default();
            if self.cfg.conflict == ConflictMode::Fail && etag != r.etag {
                return Err(Failure::new(
                    libc::EEXIST,
                    FailureReason::Conflict,
                    format!("blob {name} changed since it was exported (ETag {etag} != {}); not restoring foreign data", r.etag),
                ));
            }
        }
        Ok((name, head))
    }

    /// The daemon's `on_rename = "move"` copies the blob to the file's new name server-side and
    /// deletes the old one, leaving the record naming the old blob; the copy has a new ETag but
    /// keeps the metadata, which says it is this file's content of the recorded data version.
    /// That blob, when the file's current name has one.
    async fn moved_blob(
        &self,
        recorded: &BlobName,
        rec: &ExportRecord,
    ) -> Result<Option<(BlobName, BlobInfo)>, Failure> {
        let Some(path) = self.path.as_deref() else {
            return Ok(None);
        };
        let Ok(current) = self.engine.store.name_for(path.as_bytes()) else {
            return Ok(None);
        };
        if &current == recorded {
            return Ok(None);
        }
        let fid = self.item.fid.to_string();
        Ok(self.head(&current).await?.and_then(|h| {
            let ours = blob_fid(&h) == Some(fid.as_str())
                && h.metadata.as_ref().and_then(|m| m.data_version) == Some(rec.data_version)
                && h.size == rec.size;
            ours.then_some((current, h))
        }))
    }

    async fn head(&self, name: &BlobName) -> Result<Option<BlobInfo>, Failure> {
        self.engine
            .store
            .head(name)
            .await
            .map_err(|e| self.store_failure(e).context(&format!("head {name}")))
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
        let Some(pool) = l.pool().filter(|_| errno_of(e) == libc::EINVAL) else {
            return first.map_err(|e| Failure::from(e).context("set the volatile file's layout"));
        };
        let without = lustre::Striping::new(l.stripe_count().into(), l.stripe_size(), None)
            .map_err(|e| Failure::new(libc::EINVAL, FailureReason::Lustre, e.to_string()))?;
        tracing::warn!(action = %self.label(), pool, layout = %l, "the file's pool is refused (removed?); restoring its striping without the pool");
        blocking(|| guard.with(|a| a.set_layout(Some(&without))))
            .map_err(|e| Failure::from(e).context("set the volatile file's layout"))
    }
}
