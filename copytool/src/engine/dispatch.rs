//! Between the receive loop and the actions: the beginner begins received items in order
//! (`llapi_hsm_action_begin`), the dispatcher starts begun items as slots free up and keeps the
//! queued ones alive at the coordinator; on the way out, what never started is ended ESHUTDOWN.

use blob::FailureReason;
use std::sync::Arc;

use lustre::{ActionItem, CopytoolAction, Extent};
use tokio::runtime::Handle;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Engine, Queued};
use crate::actions::Ctx;
use crate::failure::{errno_of, Failure};
use crate::metrics::{action_name, Outcome};
use crate::ports::{Coordinator, CopyAction, Store};

impl<C: Coordinator, S: Store> Engine<C, S> {
    /// Begins received items in order and queues them for a slot; a failed begin ends the item
    /// through the error path. Stops at shutdown (what is left is refused).
    pub(super) async fn run_beginner(self: Arc<Self>) {
        let rt = Handle::current();
        loop {
            let next = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                next = self.next_to_begin() => next,
            };
            let begun = match next.action {
                CopytoolAction::Archive | CopytoolAction::Restore | CopytoolAction::Remove => {
                    let engine = self.clone();
                    let item = next.clone();
                    let begun = tokio::task::spawn_blocking(move || engine.ct.begin(&item))
                        .await
                        // A begin that panicked still gets its item ended (EIO).
                        .unwrap_or(Err(lustre::Error::Call {
                            call: "llapi_hsm_action_begin",
                            errno: libc::EIO,
                        }));
                    match begun {
                        Ok(a) => Some(a),
                        Err(e) => {
                            self.spawn_begin_failure(next, e, &rt);
                            continue;
                        }
                    }
                }
                _ => None,
            };
            self.waiting().queued.push_back(Queued {
                item: next,
                begun,
                heard: Instant::now(),
            });
            self.queued_added.notify_one();
        }
    }

    async fn next_to_begin(&self) -> ActionItem {
        loop {
            if let Some(item) = self.waiting().to_begin.pop_front() {
                return item;
            }
            self.to_begin_added.notified().await;
        }
    }

    async fn next_queued(&self) -> (ActionItem, Option<C::Action>) {
        loop {
            if let Some(next) = self.waiting().queued.pop_front() {
                return (next.item, next.begun);
            }
            self.queued_added.notified().await;
        }
    }

    /// Hands queued items to free slots, and keeps queued items alive at the coordinator while
    /// they wait for one: a zero-length progress refreshes their `active_request_timeout`, as
    /// `mdt_cdt_update_request` dates any progress. Every `update_interval` the dispatcher looks
    /// for items the coordinator has not heard of for that long.
    pub(super) async fn run_dispatcher(self: Arc<Self>) {
        let rt = Handle::current();
        let mut keepalive_at = Instant::now() + self.config().update_interval;
        loop {
            let permit = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                p = self.slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_closed) => return,
                },
                () = tokio::time::sleep_until(keepalive_at) => {
                    let engine = self.clone();
                    let now = Instant::now();
                    let _ = tokio::task::spawn_blocking(move || engine.keep_queued_alive(now)).await;
                    keepalive_at = Instant::now() + self.config().update_interval;
                    continue;
                }
            };
            let (item, begun) = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                next = self.next_queued() => next,
            };
            self.spawn_item(item, begun, permit, &rt);
        }
    }

    /// One zero-length progress per queued, begun item the coordinator has not heard of for
    /// `update_interval` at `now`. Only those: an item begun a moment ago is as fresh as a
    /// progress would make it, and with a deep queue (the daemon keeps up to
    /// `autoexport.max_in_flight` requests out) a keep-alive for every item at every tick was an
    /// MDS call for most small files, where `lhsmtool_posix` makes none. An item therefore goes
    /// at most twice `update_interval` unheard, far below `active_request_timeout` (3600 s).
    pub(crate) fn keep_queued_alive(&self, now: Instant) {
        let interval = self.config().update_interval;
        let mut w = self.waiting();
        for q in w.queued.iter_mut() {
            let Some(a) = &q.begun else { continue };
            if now.saturating_duration_since(q.heard) < interval {
                continue;
            }
            let ext = Extent {
                offset: q.item.extent.offset,
                length: 0,
            };
            match a.progress(ext, 0) {
                Ok(()) => q.heard = now,
                Err(e) => {
                    tracing::debug!(fid = %q.item.fid, cookie = q.item.cookie, error = %e, "keep-alive of a queued item refused")
                }
            }
        }
    }

    /// After the receive loop returned: the items received and not started are ended
    /// ESHUTDOWN, nothing done.
    pub(super) fn refuse_waiting(self: &Arc<Self>, rt: &Handle) {
        let (unbegun, queued) = {
            let mut w = self.waiting();
            (
                w.to_begin.drain(..).collect::<Vec<_>>(),
                w.queued
                    .drain(..)
                    .map(|q| (q.item, q.begun))
                    .collect::<Vec<_>>(),
            )
        };
        for item in unbegun {
            self.spawn_refusal(item, None, rt);
        }
        for (item, begun) in queued {
            self.spawn_refusal(item, begun, rt);
        }
    }

    fn spawn_begin_failure(self: &Arc<Self>, item: ActionItem, e: lustre::Error, rt: &Handle) {
        let engine = self.clone();
        self.tasks.spawn_on(
            async move {
                let ctx = Ctx::new(&engine, &item);
                ctx.fail_unbegun(Failure::from(e).context("begin"));
                engine.journal.ended(item.cookie);
                engine.metrics.action_done(item.action, Outcome::Failed);
            },
            rt,
        );
    }

    fn spawn_item(
        self: &Arc<Self>,
        item: ActionItem,
        begun: Option<C::Action>,
        permit: OwnedSemaphorePermit,
        rt: &Handle,
    ) {
        // A child of the abort token: `drain` cancels every running action at once.
        let token = self.abort.child_token();
        // Registered before the task starts so a CANCEL in the very next list finds it.
        self.running_map().insert(item.cookie, token.clone());
        let engine = self.clone();
        self.metrics.started();
        self.tasks.spawn_on(
            async move {
                let cookie = item.cookie;
                let action = item.action;
                let outcome = engine.serve(item, token, begun).await;
                engine.journal.ended(cookie);
                engine.running_map().remove(&cookie);
                engine.metrics.finished();
                engine.metrics.action_done(action, outcome);
                drop(permit);
            },
            rt,
        );
    }

    fn spawn_refusal(self: &Arc<Self>, item: ActionItem, begun: Option<C::Action>, rt: &Handle) {
        let engine = self.clone();
        self.tasks.spawn_on(
            async move {
                let f = Failure::new(libc::ESHUTDOWN, FailureReason::Shutdown, "copytool stopping");
                match begun {
                    Some(a) => {
                        engine.report_failure(&item, None, &f);
                        if let Err(e) = a.end(item.extent, f.hp_flags(), f.errno) {
                            tracing::error!(fid = %item.fid, cookie = item.cookie, error = %e, "could not report the failure to the coordinator");
                            engine.after_end_error(&item, errno_of(&e));
                        }
                    }
                    None => Ctx::new(&engine, &item).fail_unbegun(f),
                }
                engine.journal.ended(item.cookie);
                engine.metrics.action_done(item.action, Outcome::Failed);
            },
            rt,
        );
    }

    async fn serve(
        self: &Arc<Self>,
        item: ActionItem,
        token: CancellationToken,
        begun: Option<C::Action>,
    ) -> Outcome {
        let ctx = Ctx::new(self, &item).with_begun(begun);
        match item.action {
            CopytoolAction::Archive | CopytoolAction::Restore | CopytoolAction::Remove => {
                ctx.run(token).await
            }
            CopytoolAction::None | CopytoolAction::Unknown(_) | CopytoolAction::Cancel => {
                let what = match item.action {
                    CopytoolAction::Unknown(n) => format!("unknown HSM action {n}"),
                    other => format!("unexpected HSM action {}", action_name(other)),
                };
                ctx.fail_unbegun(Failure::new(
                    libc::EINVAL,
                    FailureReason::UnknownAction,
                    what,
                ));
                Outcome::Failed
            }
        }
    }
}
