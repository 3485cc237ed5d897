//! The receive side: wait until the copytool fd is readable, read every action list waiting in
//! the pipe, journal each item and hand it to the beginner; CANCEL items are served here.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use lustre::{ActionItem, ActionList, CopytoolAction};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::runtime::Handle;

use super::{Engine, StopReason};
use crate::failure::errno_of;
use crate::journal::Journal;
use crate::metrics::Outcome;
use crate::ports::{Coordinator, CopyAction, Store};

/// Shortest pause after a failed receive; it doubles with each failure in a row.
const RECV_BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest pause after repeated receive errors.
const RECV_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The read end of the coordinator's pipe (`llapi_hsm_copytool_get_fd`). The session owns the
/// descriptor and outlives the loop that watches it.
struct CopytoolFd(RawFd);

impl AsRawFd for CopytoolFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// An I/O error of the readiness machinery, as a failed call.
fn io_call(call: &'static str, e: &std::io::Error) -> lustre::Error {
    lustre::Error::Call {
        call,
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    }
}

impl<C: Coordinator, S: Store> Engine<C, S> {
    /// The receive loop; blocking, run it on its own thread. Returns when a stop was requested, the
    /// file system is unmounted, or (with `--abort-on-error`) after the first error. Whatever
    /// was received and not started by then is ended ESHUTDOWN.
    pub fn run_receiver(self: &Arc<Self>, rt: &Handle) -> lustre::Result<StopReason> {
        let beginner = rt.spawn(self.clone().run_beginner());
        let dispatcher = rt.spawn(self.clone().run_dispatcher());
        let reason = rt.block_on(self.receive_loop());
        // The beginner and the dispatcher end on the same token.
        self.request_stop();
        let _ = rt.block_on(beginner);
        let _ = rt.block_on(dispatcher);
        self.refuse_waiting(rt);
        reason
    }

    async fn receive_loop(self: &Arc<Self>) -> lustre::Result<StopReason> {
        // The pipe is read continuously (DESIGN §6b): what the coordinator sent is already
        // STARTED, and a full pipe blocks the client's kernel thread. Items wait for a slot
        // in the engine's queue instead.
        let fd = CopytoolFd(self.ct.fd()?);
        // SAFETY: the descriptor belongs to the coordinator session in `self.ct`, which keeps it
        // open and unchanged for its life (`Coordinator::fd`); `pipe` is dropped at the end of
        // this function, while `self` (and so the session) is still borrowed.
        let pipe = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| io_call("epoll_ctl", &e.into_parts().1))?;
        // Consecutive receive errors back off (up to RECV_BACKOFF_MAX) so a broken channel does
        // not spin or flood the log.
        let mut errors_in_row: u32 = 0;
        loop {
            let mut ready = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return Ok(self.stop_reason()),
                r = pipe.readable() => r.map_err(|e| io_call("epoll_wait", &e))?,
            };
            match self.ct.recv() {
                Ok(Some(list)) => {
                    errors_in_row = 0;
                    self.accept(list);
                }
                // Read to the end: readable again only when the coordinator writes.
                Ok(None) => ready.clear_ready(),
                Err(e) if errno_of(&e) == libc::ESHUTDOWN => return Ok(StopReason::Unmounted),
                Err(e) => {
                    self.metrics.receive_error();
                    tracing::error!(error = %e, "receiving HSM actions failed");
                    if self.config().abort_on_error {
                        self.request_stop();
                        return Ok(StopReason::Aborted(e.to_string()));
                    }
                    errors_in_row = errors_in_row.saturating_add(1);
                    let pause = RECV_BACKOFF_MIN
                        .saturating_mul(1 << errors_in_row.min(6).saturating_sub(1))
                        .min(RECV_BACKOFF_MAX);
                    tokio::select! {
                        () = self.shutdown.cancelled() => return Ok(self.stop_reason()),
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// Why the shutdown token was cancelled: an action's failure under `--abort-on-error`, or
    /// a request.
    fn stop_reason(&self) -> StopReason {
        match self
            .abort_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(reason) => StopReason::Aborted(reason),
            None => StopReason::Requested,
        }
    }

    /// Takes one received list: every item is journalled and handed to the beginner at once (so
    /// its end can be sent, and progress keeps it alive, whatever the wait for a slot). The list
    /// is already an owned copy of the receive buffer.
    fn accept(self: &Arc<Self>, list: ActionList) {
        let fsname = self.ct.fsname();
        if list.fsname != fsname {
            // lhsmtool_posix skips such lists too: the items belong to another file system's coordinator.
            tracing::error!(got = %list.fsname, expected = %fsname, items = list.items.len(), "action list for another file system ignored");
            self.metrics.receive_error();
            return;
        }
        // Journalled first, the whole list, before anything slower: what a kill -9 interrupts
        // from here on is in the journal. Begun by the beginner, so the pipe is read again at
        // once.
        let mut fresh = Vec::with_capacity(list.items.len());
        for item in list.items {
            if item.action == CopytoolAction::Cancel {
                self.cancel(&item);
                continue;
            }
            self.journal.begun(&item);
            fresh.push(item);
        }
        if !fresh.is_empty() {
            self.waiting().to_begin.extend(fresh);
            self.to_begin_added.notify_one();
        }
    }

    /// A CANCEL: an item still waiting is ended ECANCELED without running; a running one has its
    /// token cancelled (it ends itself); any other is answered by cookie.
    fn cancel(&self, item: &ActionItem) {
        let waiting = self.waiting().take(item.cookie);
        if let Some((qi, begun)) = waiting {
            tracing::info!(fid = %qi.fid, cookie = qi.cookie, "cancel requested by the coordinator before the action started");
            let res = match begun {
                Some(a) => a.end(qi.extent, 0, libc::ECANCELED),
                None => self
                    .ct
                    .begin_error(&qi)
                    .and_then(|a| a.end(qi.extent, 0, libc::ECANCELED)),
            };
            if let Err(e) = res {
                tracing::warn!(fid = %qi.fid, cookie = qi.cookie, error = %e, "ending a cancelled queued action failed");
                if Journal::undelivered_errno(errno_of(&e)) {
                    self.journal.end_undelivered(qi.cookie);
                }
            }
            self.journal.ended(qi.cookie);
            self.metrics.action_done(qi.action, Outcome::Cancelled);
            self.metrics
                .action_done(CopytoolAction::Cancel, Outcome::Ok);
            return;
        }
        let running = self.running_map().get(&item.cookie).cloned();
        match running {
            Some(t) => {
                tracing::info!(fid = %item.fid, cookie = item.cookie, "cancel requested by the coordinator");
                t.cancel();
            }
            None => self.cancel_unknown(item),
        }
        self.metrics
            .action_done(CopytoolAction::Cancel, Outcome::Ok);
    }

    /// A cancel for an action not running here: a request a dead copytool left STARTED (an
    /// admin's `lfs hsm_cancel` of an orphan), or one that just ended. Answering ECANCELED by
    /// cookie frees the coordinator's slot; -ENOENT means it was already over.
    fn cancel_unknown(&self, item: &ActionItem) {
        let res = self
            .ct
            .begin_error(item)
            .and_then(|a| a.end(item.extent, 0, libc::ECANCELED));
        match res {
            Ok(()) => {
                tracing::info!(fid = %item.fid, cookie = item.cookie, "cancel for an action not running here: ended it (ECANCELED)")
            }
            Err(e) => {
                tracing::info!(fid = %item.fid, cookie = item.cookie, error = %e, "cancel for an action not running here (already over)")
            }
        }
        self.journal.ended(item.cookie);
    }
}
