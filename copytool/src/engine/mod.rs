//! The copytool engine: receives action lists, serves ARCHIVE / RESTORE / REMOVE concurrently up to
//! `max_actions`, routes CANCEL to the running action with that cookie, and ends every other item
//! exactly once (lustre-abi §4).
//!
//! Tasks: the receive loop (`receive.rs`) waits until the copytool fd (the coordinator's pipe) is
//! readable and reads every action list at once; the beginner begins received items in order and
//! the dispatcher hands begun items to free slots (`dispatch.rs`); each action is a tokio task.
//! Back-pressure: with `max_actions` actions running the dispatcher waits for a slot, the queued
//! items are kept alive at the coordinator, and the pipe is still read.
//!
//! Stopping: one shutdown token ([`Engine::request_stop`]) ends the receive loop, the beginner and
//! the dispatcher wherever they wait; what was received and not started is then ended
//! ESHUTDOWN. [`Engine::drain`] gives the running actions a grace period, then cancels them
//! through the abort token every action's own token descends from.

mod dispatch;
mod receive;

use blob::FailureReason;
use lustre_blob_config::{ConflictMode, DeleteMode};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use blob::RateLimiter;
use lustre::{ActionItem, CopytoolAction};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::failure::{errno_of, Failure};
use crate::job_tag::JobTag;
use crate::journal::{Journal, Leftovers};
use crate::metrics::{action_name, Metrics};
use crate::ports::{Coordinator, CopyAction, FailureLog, Store};

/// Settings of the engine; everything but `max_actions` is re-read on SIGHUP.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Actions served at once (slots); the rest wait, begun, in the queue.
    pub max_actions: usize,
    /// Bytes per uploaded block and downloaded range.
    pub block_size: u64,
    /// Blocks (ranges) of one transfer in flight at once.
    pub blocks_in_flight: usize,
    /// How often a running action reports progress (and queued ones are kept alive).
    pub update_interval: Duration,
    /// Bytes per second; `None` = unlimited.
    pub bandwidth: Option<u64>,
    /// What to do when a blob changed behind our back (`autoexport.conflict`).
    pub conflict: ConflictMode,
    /// What REMOVE does with the blobs (`autoexport.on_delete`): `Keep` ends REMOVE successfully
    /// and leaves the blobs (and the export record) in place.
    pub remove: DeleteMode,
    /// Report what would be done, write nothing, and end every action with EOPNOTSUPP.
    pub dry_run: bool,
    /// Stop the agent after the first failed action or receive.
    pub abort_on_error: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_actions: 32,
            block_size: 8 << 20,
            blocks_in_flight: 16,
            update_interval: Duration::from_secs(10),
            bandwidth: None,
            conflict: ConflictMode::Fail,
            remove: DeleteMode::Keep,
            dry_run: false,
            abort_on_error: false,
        }
    }
}

/// Why the receive loop returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// `request_stop` (a signal).
    Requested,
    /// The coordinator said ESHUTDOWN (the file system is being unmounted).
    Unmounted,
    /// `--abort-on-error` and an error happened.
    Aborted(String),
}

/// Received items not yet running: the beginner's input, and begun items waiting for a slot.
struct Waiting<A> {
    /// Received and journalled, not yet begun, in order.
    to_begin: VecDeque<ActionItem>,
    /// Begun (ARCHIVE, RESTORE, REMOVE) or not (others), waiting for a slot.
    queued: VecDeque<Queued<A>>,
}

/// An item waiting for a slot.
struct Queued<A> {
    item: ActionItem,
    /// Its action, when it was begun.
    begun: Option<A>,
    /// When the coordinator last heard of it (its begin, or its last keep-alive): what
    /// `active_request_timeout` counts from.
    heard: tokio::time::Instant,
}

impl<A> Waiting<A> {
    /// Takes the item with `cookie` out of either queue.
    fn take(&mut self, cookie: u64) -> Option<(ActionItem, Option<A>)> {
        if let Some(p) = self.to_begin.iter().position(|i| i.cookie == cookie) {
            return self.to_begin.remove(p).map(|i| (i, None));
        }
        let p = self.queued.iter().position(|q| q.item.cookie == cookie)?;
        self.queued.remove(p).map(|q| (q.item, q.begun))
    }
}

/// The engine. Share it in an `Arc`.
pub struct Engine<C: Coordinator, S: Store> {
    pub(crate) ct: Arc<C>,
    pub(crate) store: Arc<S>,
    pub(crate) log: Arc<dyn FailureLog>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) agent: String,
    config: RwLock<Arc<EngineConfig>>,
    /// The one bandwidth budget of this agent: every transfer draws from it block by block, and a
    /// reload changes its rate in place (also for transfers already running).
    rate_limit: Arc<RateLimiter>,
    slots: Arc<Semaphore>,
    running: Mutex<HashMap<u64, CancellationToken>>,
    tasks: TaskTracker,
    /// Cancelled to stop: every loop of the engine waits on it.
    shutdown: CancellationToken,
    /// Cancelled when in-flight actions are aborted because the agent is stopping; each running
    /// action's token is a child of it.
    abort: CancellationToken,
    abort_reason: Mutex<Option<String>>,
    /// Every item received and not yet ended (see `crate::journal`).
    pub(crate) journal: Arc<Journal>,
    waiting: Mutex<Waiting<C::Action>>,
    /// An item was added to `Waiting::to_begin`.
    to_begin_added: Notify,
    /// An item was added to `Waiting::queued`.
    queued_added: Notify,
}

impl<C: Coordinator, S: Store> Engine<C, S> {
    /// An engine journalling received items in `journal` ([`Journal::memory`] keeps nothing).
    pub fn new(
        ct: Arc<C>,
        store: Arc<S>,
        log: Arc<dyn FailureLog>,
        metrics: Arc<Metrics>,
        agent: String,
        config: EngineConfig,
        journal: Arc<Journal>,
    ) -> Arc<Self> {
        let max = config.max_actions.max(1);
        let rate_limit = Arc::new(RateLimiter::new(config.bandwidth.unwrap_or(0)));
        Arc::new(Engine {
            ct,
            store,
            log,
            metrics,
            agent,
            config: RwLock::new(Arc::new(config)),
            rate_limit,
            slots: Arc::new(Semaphore::new(max)),
            running: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            abort: CancellationToken::new(),
            abort_reason: Mutex::new(None),
            journal,
            waiting: Mutex::new(Waiting {
                to_begin: VecDeque::new(),
                queued: VecDeque::new(),
            }),
            to_begin_added: Notify::new(),
            queued_added: Notify::new(),
        })
    }

    /// Ends what dead copytools of this host left STARTED (their journals' items), before the
    /// first receive: `llapi_hsm_action_begin(is_error)` + `llapi_hsm_action_end(ECANCELED)`, as
    /// `lhsmtool_posix`'s `ct_fini` ends a failed item. -ENOENT: already ended, or reloaded by a
    /// restarted MDT, which no longer knows the cookie (`mdt_cdt_update_request`) and keeps the
    /// request STARTED until `active_request_timeout`; then an ARCHIVE or REMOVE still shown
    /// running on the file is cancelled the way an admin would (`lfs hsm_cancel`). -EINVAL: the
    /// cookie is not this coordinator's (another file system instance): nothing more is tried.
    /// Returns (ended by us, already ended or cancelled, kept for the next start).
    pub fn recover(&self, leftovers: Leftovers) -> (usize, usize, usize) {
        let (mut ended, mut gone, mut kept) = (0, 0, 0);
        let mut refused = false;
        for e in &leftovers.items {
            if refused {
                self.journal.ended(e.cookie);
                continue;
            }
            let item = e.item();
            let res = self
                .ct
                .begin_error(&item)
                .and_then(|a| a.end(item.extent, 0, libc::ECANCELED));
            match res {
                Ok(()) => {
                    tracing::info!(fid = %e.fid, cookie = e.cookie, action = action_name(e.action), "ended a request a previous copytool left running (ECANCELED; it will be issued again)");
                    self.journal.ended(e.cookie);
                    ended += 1;
                }
                Err(err) if errno_of(&err) == libc::ENOENT => {
                    if matches!(e.action, CopytoolAction::Archive | CopytoolAction::Remove) {
                        match self.ct.cancel_stale(&e.fid, e.action) {
                            Ok(true) => {
                                tracing::info!(fid = %e.fid, cookie = e.cookie, action = action_name(e.action), "a request left running before an MDS restart cannot be ended by cookie; cancelled it")
                            }
                            Ok(false) => {}
                            Err(err) => {
                                tracing::warn!(fid = %e.fid, cookie = e.cookie, error = %err, "could not cancel a request left running before an MDS restart")
                            }
                        }
                    }
                    self.journal.ended(e.cookie);
                    gone += 1;
                }
                Err(err) if errno_of(&err) == libc::EINVAL => {
                    tracing::warn!(cookie = e.cookie, error = %err, "the coordinator does not know the journalled cookies as ours; dropping the rest of the journal");
                    self.journal.ended(e.cookie);
                    refused = true;
                    gone += 1;
                }
                Err(err) => {
                    tracing::warn!(fid = %e.fid, cookie = e.cookie, error = %err, "could not end a request a previous copytool left running; kept for the next start");
                    kept += 1;
                }
            }
        }
        self.journal.recovered(leftovers);
        (ended, gone, kept)
    }

    /// The settings actions started now use.
    pub fn config(&self) -> Arc<EngineConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The agent's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Applies a reloaded configuration to actions started from now on. `max_actions` cannot change
    /// while running (the slots are sized at start); a different value is reported and ignored.
    pub fn reload(&self, mut new: EngineConfig) {
        let old = self.config();
        if new.max_actions != old.max_actions {
            tracing::warn!(
                old = old.max_actions,
                new = new.max_actions,
                "max_actions changes only at restart"
            );
            new.max_actions = old.max_actions;
        }
        self.rate_limit.set_rate(new.bandwidth.unwrap_or(0));
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
    }

    /// The agent's bandwidth budget (what `-b/--bandwidth` sets).
    pub fn rate_limit(&self) -> &Arc<RateLimiter> {
        &self.rate_limit
    }

    /// Stops taking new action lists (signal handlers call this): cancels the shutdown token.
    pub fn request_stop(&self) {
        self.shutdown.cancel();
    }

    /// Whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Whether in-flight actions are being aborted because the agent stops (their failure is
    /// then ESHUTDOWN, not the coordinator's ECANCELED).
    pub(crate) fn aborting(&self) -> bool {
        self.abort.is_cancelled()
    }

    /// Cookies of the actions being served now.
    pub fn running_cookies(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.running_map().keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn running_map(&self) -> MutexGuard<'_, HashMap<u64, CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn waiting(&self) -> MutexGuard<'_, Waiting<C::Action>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An end of `item` failed with `errno`. If it may not have reached the coordinator, the item
    /// stays in the journal so the next copytool ends it. -ENOENT: the coordinator no longer
    /// knows the cookie; after an MDS restart that is a request reloaded STARTED on disk only
    /// (`hsm_restore_cb`), which nobody can end and which stays until `active_request_timeout`:
    /// an ARCHIVE or REMOVE still shown running on the file is cancelled as an admin would, so the
    /// file can be issued again at once.
    pub(crate) fn after_end_error(&self, item: &ActionItem, errno: i32) {
        if Journal::undelivered_errno(errno) {
            self.journal.end_undelivered(item.cookie);
        } else if errno == libc::ENOENT
            && matches!(
                item.action,
                CopytoolAction::Archive | CopytoolAction::Remove
            )
        {
            let res = tokio::task::block_in_place(|| self.ct.cancel_stale(&item.fid, item.action));
            match res {
                Ok(true) => {
                    tracing::info!(fid = %item.fid, cookie = item.cookie, action = action_name(item.action), "the coordinator lost this request (MDS restart); cancelled it so it can be issued again")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(fid = %item.fid, cookie = item.cookie, error = %e, "could not cancel a request the coordinator lost")
                }
            }
        }
    }

    /// Records a failure: tracing, the failure log, and the abort-on-error trigger.
    pub(crate) fn report_failure(&self, item: &ActionItem, path: Option<&str>, f: &Failure) {
        let tag = JobTag::parse(&item.data);
        if f.reason == FailureReason::Changed {
            // Not a failure: the file changed during its copy and is exported again. The policy
            // engine, which sees every try, logs it once per file and iteration.
            tracing::info!(fid = %item.fid, path = path.unwrap_or(""), "{} (EBUSY to the coordinator)", f.message);
            return;
        }
        tracing::warn!(
            fid = %item.fid,
            path = path.unwrap_or(""),
            action = action_name(item.action),
            errno = f.errno,
            reason = %f.reason,
            job = tag.job.as_deref().unwrap_or(""),
            "action failed: {}",
            f.message
        );
        self.log.record(blob::FailureEntry {
            agent: Some(self.agent.clone()),
            error: f.message.clone(),
            errno: Some(f.errno),
            reason: Some(f.reason),
            http_status: f.http_status,
            azure_code: f.azure_code.clone(),
            ..blob::FailureEntry::new(
                tag.job.as_deref().unwrap_or(""),
                tag.iteration.unwrap_or(0),
                Some(item.fid.to_string()),
                path.unwrap_or(""),
                action_name(item.action),
            )
        });
        if self.config().abort_on_error && f.reason != FailureReason::Cancelled {
            *self.abort_reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!(
                "{} {}: {}",
                action_name(item.action),
                item.fid,
                f.message
            ));
            self.request_stop();
        }
    }

    /// After the receive loop returned: waits up to `grace` for in-flight actions to finish, then
    /// aborts the rest (they end with ESHUTDOWN, nothing committed) and waits up to `grace` again.
    /// Returns how many actions had to be aborted.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_ok() {
            return 0;
        }
        let count = self.running_map().len();
        tracing::warn!(count, "aborting in-flight actions to stop");
        self.abort.cancel();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::error!("in-flight actions did not end within the shutdown bound");
        }
        count
    }
}
