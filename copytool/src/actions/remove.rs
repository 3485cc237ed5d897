//! REMOVE: delete every blob the file's export record names (unless the policy keeps them),
//! then clear the record.

use blob::ExportRecord;
use lustre_blob_config::DeleteMode;

use tokio_util::sync::CancellationToken;

use super::{blocking, recorded_name, Ctx, Done};
use crate::failure::{errno_of, Failure};
use crate::ports::{Coordinator, Store};

impl<C: Coordinator, S: Store> Ctx<'_, C, S> {
    pub(super) async fn remove_work(&mut self, token: &CancellationToken) -> Result<Done, Failure> {
        const NOTHING: Done = Done { bytes: 0 };
        self.learn_path();
        let file = match blocking(|| self.engine.ct.open_by_fid(&self.item.fid)) {
            Ok(f) => f,
            // Lustre 2.15 answers ENOENT for a deleted FID, 2.16 ESTALE (`open_by_handle_at`).
            Err(e) if matches!(errno_of(&e), libc::ENOENT | libc::ESTALE) => {
                tracing::info!(action = %self.label(), "file is gone; its export record with it: nothing to delete");
                return Ok(NOTHING);
            }
            Err(e) => return Err(Failure::from(e).context("open by fid")),
        };
        let Some(rec) =
            ExportRecord::read(&file).map_err(|e| Failure::from(e).context("export record"))?
        else {
            tracing::info!(action = %self.label(), "no export record: no blob of ours to delete");
            return Ok(NOTHING);
        };
        if self.cfg.remove == DeleteMode::Keep {
            tracing::info!(action = %self.label(), blob = %rec.blob, "policy keeps blobs on remove");
            return Ok(NOTHING);
        }
        if self.cfg.dry_run {
            let all = rec.all_blobs().collect::<Vec<_>>().join(", ");
            return Err(Failure::dry_run(format!(
                "dry run: would delete {all}; nothing deleted"
            )));
        }
        for name in rec.all_blobs() {
            if token.is_cancelled() {
                return Err(self.cancelled());
            }
            match self.engine.store.delete(&recorded_name(name)?).await {
                Ok(()) | Err(blob::Error::NotFound(_)) => {}
                Err(e) => return Err(self.store_failure(e).context(&format!("delete {name}"))),
            }
        }
        ExportRecord::clear(&file).map_err(|e| Failure::from(e).context("clear export record"))?;
        Ok(NOTHING)
    }
}
