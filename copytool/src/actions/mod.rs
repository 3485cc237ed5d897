//! ARCHIVE, RESTORE and REMOVE (DESIGN §3, lustre-abi §4.3–4.5). All three go through one
//! `Ctx::run`: begin (or take the action begun at receipt), report progress while the work
//! runs, and send exactly one end with the errno and flags the outcome calls for. The work of
//! each is in its own module.

mod archive;
mod remove;
mod restore;

use blob::{BlobName, FailureReason};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lustre::{ActionItem, CopytoolAction, Extent};
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineConfig};
use crate::failure::{errno_of, Failure};
use crate::guard::{ActionGuard, ActionSlot};
use crate::metrics::{action_name, Outcome};
use crate::ports::{Coordinator, CopyAction, Store};

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
    begun: Mutex<Option<C::Action>>,
    /// Bytes the work has moved, and how many it will move: what progress reports carry.
    moved: Arc<Moved>,
}

/// A successful action: bytes moved.
struct Done {
    bytes: u64,
}

/// The transfer's counters, shared with the progress reporter.
#[derive(Default)]
struct Moved {
    /// The highest byte count the transfer reported.
    done: AtomicU64,
    /// The size of the whole transfer, once known (informational for the coordinator).
    total: AtomicU64,
}

impl<'a, C: Coordinator, S: Store> Ctx<'a, C, S> {
    pub(crate) fn new(engine: &'a Arc<Engine<C, S>>, item: &'a ActionItem) -> Self {
        Ctx {
            engine,
            item,
            cfg: engine.config(),
            path: None,
            begun: Mutex::new(None),
            moved: Arc::default(),
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

    /// Serves an ARCHIVE, RESTORE or REMOVE: begin → work (with progress reports) → one end.
    /// A cancel (the coordinator's, or the agent stopping) reaches the work through `token`.
    pub(crate) async fn run(mut self, token: CancellationToken) -> Outcome {
        let guard = match self.begin() {
            Ok(g) => g,
            Err(f) => {
                self.fail_unbegun(f);
                return Outcome::Failed;
            }
        };
        let reporter = self.spawn_progress(guard.slot(), token.clone());
        let result = match self.item.action {
            CopytoolAction::Archive => self.archive_work(&guard, &token).await,
            CopytoolAction::Restore => self.restore_work(&guard, &token).await,
            CopytoolAction::Remove => self.remove_work(&token).await,
            other => Err(Failure::new(
                libc::EINVAL,
                FailureReason::UnknownAction,
                format!("unexpected HSM action {}", action_name(other)),
            )),
        };
        reporter.cancel();
        let bytes = result.as_ref().map_or(0, |d| d.bytes);
        match self.end(guard, result) {
            Ok(Outcome::Ok) => {
                self.count_bytes(bytes);
                Outcome::Ok
            }
            Ok(other) => other,
            Err(errno) => {
                if errno == libc::EBUSY && self.item.action == CopytoolAction::Archive {
                    self.withdraw_export().await;
                }
                Outcome::Failed
            }
        }
    }

    fn count_bytes(&self, bytes: u64) {
        match self.item.action {
            CopytoolAction::Archive => self.engine.metrics.add_archived(bytes),
            CopytoolAction::Restore => self.engine.metrics.add_restored(bytes),
            _ => {}
        }
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
            self.engine.after_end_error(self.item, errno_of(&e));
        }
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

    /// Ends a begun action with the result of the work. A success the coordinator refuses at
    /// the end (e.g. EBUSY: the file changed after our own check) comes back as `Err(errno)`.
    /// An end that may not have reached the coordinator leaves the item journalled
    /// (`Engine::after_end_error`).
    fn end(
        &self,
        guard: ActionGuard<C::Action>,
        result: Result<Done, Failure>,
    ) -> Result<Outcome, i32> {
        let path = self.path.as_deref();
        match result {
            Ok(done) => match blocking(|| guard.end(self.item.extent, 0, 0)) {
                Ok(()) => {
                    tracing::info!(action = %self.label(), path = path.unwrap_or(""), bytes = done.bytes, "done");
                    Ok(Outcome::Ok)
                }
                Err(e) => {
                    let errno = errno_of(&e);
                    self.engine.after_end_error(self.item, errno);
                    let f = Failure::from(e).context("end");
                    self.engine.report_failure(self.item, path, &f);
                    Err(errno)
                }
            },
            Err(f) => {
                self.engine.report_failure(self.item, path, &f);
                if let Err(e) = blocking(|| guard.end(self.item.extent, f.hp_flags(), f.errno)) {
                    tracing::error!(action = %self.label(), error = %e, "ending the failed action failed");
                    self.engine.after_end_error(self.item, errno_of(&e));
                }
                Ok(if f.errno == libc::ECANCELED {
                    Outcome::Cancelled
                } else {
                    Outcome::Failed
                })
            }
        }
    }

    /// Turns a cancelled transfer into the right failure: ECANCELED when the coordinator cancelled it,
    /// ESHUTDOWN when the agent is stopping.
    fn cancelled(&self) -> Failure {
        if self.engine.aborting() {
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

    /// Sets the file's first path (for logs) from fid2path, when it answers.
    fn learn_path(&mut self) {
        if let Ok(paths) = blocking(|| self.engine.ct.fid2path(&self.item.fid)) {
            self.path = paths.first().map(|p| p.to_string_lossy().into_owned());
        }
    }

    /// A progress callback for a transfer of `total` bytes: keeps the highest count reported.
    fn count_progress(&self, total: u64) -> blob::Progress {
        self.moved.total.store(total, Ordering::Relaxed);
        let moved = self.moved.clone();
        Arc::new(move |n| {
            moved.done.fetch_max(n, Ordering::Relaxed);
        })
    }

    /// Reports the bytes moved every update interval until the returned token is cancelled; an
    /// ECANCELED answer cancels `token` (the coordinator cancelled the request).
    fn spawn_progress(
        &self,
        slot: ActionSlot<C::Action>,
        token: CancellationToken,
    ) -> CancellationToken {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let interval = self.cfg.update_interval.max(Duration::from_millis(10));
        let base = self.item.extent.offset;
        let label = self.label();
        let moved = self.moved.clone();
        tokio::spawn(async move {
            let mut reported = 0u64;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = stopped.cancelled() => return,
                }
                let now = moved.done.load(Ordering::Relaxed);
                let total = moved.total.load(Ordering::Relaxed);
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
}

/// A blob name read from an export record (an xattr anyone with root may have written).
fn recorded_name(name: &str) -> Result<BlobName, Failure> {
    BlobName::new(name)
        .map_err(|e| Failure::from(blob::Error::from(e)).context("blob named by the export record"))
}

/// The `lustre_fid` metadata of a blob: the file it was exported from (`None` for a blob another
/// tool wrote, or metadata that does not decode).
fn blob_fid(head: &blob::BlobInfo) -> Option<&str> {
    head.metadata.as_ref().and_then(|m| m.fid.as_deref())
}
