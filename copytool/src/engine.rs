//! The copytool engine: receives action lists, serves ARCHIVE / RESTORE / REMOVE concurrently up to
//! `max_actions`, routes CANCEL to the running action with that cookie, and ends every other item
//! exactly once (lustre-abi §4).
//!
//! Threads: the receive loop is blocking (`Coordinator::recv` polls with a short timeout so a stop
//! request is seen quickly) and runs on its own thread; each action is a tokio task. Back-pressure:
//! the receive loop takes a slot (semaphore permit) before each receive and for every item it hands
//! out, so with `max_actions` actions running it stops receiving and the coordinator keeps the rest.

use blob::FailureReason;
use lustre_blob_config::{ConflictMode, DeleteMode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use blob::RateLimiter;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::actions::Ctx;
use crate::failure::{errno_of, Failure};
use crate::journal::{Journal, Leftovers};
use crate::metrics::{action_name, Metrics, Outcome};
use lustre::{ActionItem, ActionList, CopytoolAction, Extent};

use crate::job_tag::JobTag;
use crate::ports::{Coordinator, CopyAction, FailureLog, Store};

/// Settings of the engine; everything but `max_actions` is re-read on SIGHUP.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub max_actions: usize,
    pub block_size: u64,
    pub blocks_in_flight: usize,
    pub update_interval: Duration,
    /// Bytes per second; `None` = unlimited.
    pub bandwidth: Option<u64>,
    /// What to do when a blob changed behind our back (`autoexport.conflict`).
    pub conflict: ConflictMode,
    /// What REMOVE does with the blobs (`autoexport.on_delete`): `Keep` ends REMOVE successfully
    /// and leaves the blobs (and the export record) in place.
    pub remove: DeleteMode,
    pub dry_run: bool,
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

/// How long one `recv` waits before the loop checks for a stop request.
const RECV_POLL: Duration = Duration::from_millis(200);
/// Longest pause after repeated receive errors.
const RECV_BACKOFF_MAX: Duration = Duration::from_secs(5);

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
    stop: AtomicBool,
    /// Set when in-flight actions are being aborted because the agent is stopping.
    pub(crate) shutting_down: AtomicBool,
    abort_reason: Mutex<Option<String>>,
    /// Every item received and not yet ended (see `crate::journal`).
    pub(crate) journal: Arc<Journal>,
    /// Received items waiting for a slot, begun (ARCHIVE, RESTORE, REMOVE) or not (others).
    #[allow(clippy::type_complexity)]
    queue: Mutex<std::collections::VecDeque<(ActionItem, Option<C::Action>)>>,
    queued: tokio::sync::Notify,
    receiver_done: AtomicBool,
    /// Received and journalled, not yet begun (the beginner thread's input).
    to_begin: Mutex<std::collections::VecDeque<ActionItem>>,
    to_begin_cv: std::sync::Condvar,
}

impl<C: Coordinator, S: Store> Engine<C, S> {
    pub fn new(
        ct: Arc<C>,
        store: Arc<S>,
        log: Arc<dyn FailureLog>,
        metrics: Arc<Metrics>,
        agent: String,
        config: EngineConfig,
    ) -> Arc<Self> {
        Self::with_journal(
            ct,
            store,
            log,
            metrics,
            agent,
            config,
            Arc::new(Journal::memory()),
        )
    }

    /// As `new`, journalling received items in `journal`.
    pub fn with_journal(
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
            stop: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            abort_reason: Mutex::new(None),
            journal,
            queue: Mutex::new(std::collections::VecDeque::new()),
            queued: tokio::sync::Notify::new(),
            receiver_done: AtomicBool::new(false),
            to_begin: Mutex::new(std::collections::VecDeque::new()),
            to_begin_cv: std::sync::Condvar::new(),
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

    pub fn config(&self) -> Arc<EngineConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

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

    /// Asks the receive loop to stop taking new action lists (signal handlers call this).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Cookies of the actions being served now.
    pub fn running_cookies(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.running_map().keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn running_map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The receive loop; blocking, run it on its own thread. Returns when a stop was requested, the
    /// file system is unmounted, or (with `--abort-on-error`) after the first error.
    pub fn run_receiver(self: &Arc<Self>, rt: &Handle) -> Result<StopReason, lustre::Error> {
        self.receiver_done.store(false, Ordering::SeqCst);
        let dispatcher = rt.spawn(self.clone().run_dispatcher(rt.clone()));
        let beginner = {
            let (engine, rt) = (self.clone(), rt.clone());
            std::thread::Builder::new()
                .name("hsm-begin".into())
                .spawn(move || engine.run_beginner(&rt))
        };
        let r = self.receive_loop();
        self.receiver_done.store(true, Ordering::SeqCst);
        self.to_begin_cv.notify_all();
        match beginner {
            Ok(b) => {
                let _ = b.join();
            }
            Err(e) => tracing::error!(error = %e, "could not start the beginner thread"),
        }
        self.refuse_queued(rt);
        self.queued.notify_one();
        let _ = rt.block_on(dispatcher);
        // Anything the dispatcher had taken a slot for but not started is refused too.
        self.refuse_queued(rt);
        r
    }

    fn receive_loop(self: &Arc<Self>) -> Result<StopReason, lustre::Error> {
        // Consecutive receive errors back off (up to RECV_BACKOFF_MAX) so a broken channel does not
        // spin or flood the log.
        let mut errors_in_row: u32 = 0;
        loop {
            if let Some(reason) = self
                .abort_reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                self.request_stop();
                return Ok(StopReason::Aborted(reason));
            }
            if self.stop_requested() {
                return Ok(StopReason::Requested);
            }
            // The pipe is read continuously (DESIGN §6b): what the coordinator sent is already
            // STARTED, and a full pipe blocks the client's kernel thread. Items wait for a slot
            // in the engine's queue instead.
            match self.ct.recv(RECV_POLL) {
                Ok(None) => errors_in_row = 0,
                Ok(Some(list)) => {
                    errors_in_row = 0;
                    self.accept(list)
                }
                Err(e) if errno_of(&e) == libc::ESHUTDOWN => return Ok(StopReason::Unmounted),
                Err(e) => {
                    self.metrics.receive_error();
                    tracing::error!(error = %e, "receiving HSM actions failed");
                    if self.config().abort_on_error {
                        self.request_stop();
                        return Ok(StopReason::Aborted(e.to_string()));
                    }
                    errors_in_row = errors_in_row.saturating_add(1);
                    let pause = RECV_POLL
                        .saturating_mul(1 << errors_in_row.min(6).saturating_sub(1))
                        .min(RECV_BACKOFF_MAX);
                    self.sleep_unless_stopped(pause);
                }
            }
        }
    }

    /// The dispatcher: hands queued items to free slots, and keeps queued items alive at the
    /// coordinator (a zero-length progress every `update_interval` refreshes their
    /// `active_request_timeout`, as `mdt_cdt_update_request` dates any progress).
    async fn run_dispatcher(self: Arc<Self>, rt: Handle) {
        let mut last_keepalive = tokio::time::Instant::now();
        loop {
            let permit = tokio::select! {
                p = self.slots.clone().acquire_owned() => p.ok(),
                () = tokio::time::sleep(RECV_POLL) => None,
            };
            if let Some(permit) = permit {
                let next = self.queue_lock().pop_front();
                match next {
                    Some((item, begun)) => {
                        self.spawn_item(item, begun, permit, &rt);
                        continue;
                    }
                    None => {
                        drop(permit);
                        if self.receiver_done.load(Ordering::SeqCst) {
                            return;
                        }
                        tokio::select! {
                            () = self.queued.notified() => {}
                            () = tokio::time::sleep(RECV_POLL) => {}
                        }
                    }
                }
            } else if self.receiver_done.load(Ordering::SeqCst) && self.queue_lock().is_empty() {
                return;
            }
            let every = self.config().update_interval;
            if last_keepalive.elapsed() >= every {
                last_keepalive = tokio::time::Instant::now();
                let engine = self.clone();
                let _ = tokio::task::spawn_blocking(move || engine.keep_queued_alive()).await;
            }
        }
    }

    /// One zero-length progress per queued, begun item.
    fn keep_queued_alive(&self) {
        let q = self.queue_lock();
        for (item, begun) in q.iter() {
            if let Some(a) = begun {
                let ext = Extent {
                    offset: item.extent.offset,
                    length: 0,
                };
                if let Err(e) = a.progress(ext, 0) {
                    tracing::debug!(fid = %item.fid, cookie = item.cookie, error = %e, "keep-alive of a queued item refused");
                }
            }
        }
    }

    fn queue_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(ActionItem, Option<C::Action>)>>
    {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After the receive loop returned: the queued items (not started by the dispatcher) are
    /// ended ESHUTDOWN, nothing done.
    fn refuse_queued(self: &Arc<Self>, rt: &Handle) {
        self.receiver_done.store(true, Ordering::SeqCst);
        let unbegun: Vec<ActionItem> = self.to_begin_lock().drain(..).collect();
        for item in unbegun {
            self.spawn_refusal(item, None, rt);
        }
        let left: Vec<(ActionItem, Option<C::Action>)> = self.queue_lock().drain(..).collect();
        for (item, begun) in left {
            self.spawn_refusal(item, begun, rt);
        }
    }

    fn sleep_unless_stopped(&self, d: Duration) {
        let until = std::time::Instant::now() + d;
        while !self.stop_requested() {
            let now = std::time::Instant::now();
            if now >= until {
                return;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    /// Takes one received list: every item is journalled and begun at once (so its end can be
    /// sent, and progress keeps it alive, whatever the wait for a slot), then queued. The list is
    /// already an owned copy of the receive buffer.
    fn accept(self: &Arc<Self>, list: ActionList) {
        let fsname = self.ct.fsname();
        if list.fsname != fsname {
            // lhsmtool_posix skips such lists too: the items belong to another file system's coordinator.
            tracing::error!(got = %list.fsname, expected = %fsname, items = list.items.len(), "action list for another file system ignored");
            self.metrics.receive_error();
            return;
        }
        // Journalled first, the whole list, before anything slower: what a kill -9 interrupts
        // from here on is in the journal. Begun by the beginner thread, so the pipe is read
        // again at once.
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
            self.to_begin_lock().extend(fresh);
            self.to_begin_cv.notify_all();
        }
    }

    fn to_begin_lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<ActionItem>> {
        self.to_begin.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The beginner thread: begins received items in order (`llapi_hsm_action_begin`) and queues
    /// them for a slot; a failed begin ends the item through the error path.
    fn run_beginner(self: &Arc<Self>, rt: &Handle) {
        loop {
            let next = {
                let mut q = self.to_begin_lock();
                loop {
                    if self.receiver_done.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Some(i) = q.pop_front() {
                        break i;
                    }
                    q = self
                        .to_begin_cv
                        .wait_timeout(q, RECV_POLL)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            };
            let begun = match next.action {
                CopytoolAction::Archive | CopytoolAction::Restore | CopytoolAction::Remove => {
                    match self.ct.begin(&next) {
                        Ok(a) => Some(a),
                        Err(e) => {
                            self.spawn_begin_failure(next, e, rt);
                            continue;
                        }
                    }
                }
                _ => None,
            };
            self.queue_lock().push_back((next, begun));
            self.queued.notify_one();
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

    fn cancel(&self, item: &ActionItem) {
        let unbegun = {
            let mut q = self.to_begin_lock();
            q.iter()
                .position(|i| i.cookie == item.cookie)
                .and_then(|p| q.remove(p))
        };
        if let Some(qi) = unbegun {
            tracing::info!(fid = %qi.fid, cookie = qi.cookie, "cancel requested by the coordinator before the action started");
            let res = self
                .ct
                .begin_error(&qi)
                .and_then(|a| a.end(qi.extent, 0, libc::ECANCELED));
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
        let queued = {
            let mut q = self.queue_lock();
            q.iter()
                .position(|(i, _)| i.cookie == item.cookie)
                .and_then(|p| q.remove(p))
        };
        if let Some((qi, begun)) = queued {
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
        let token = self.running_map().get(&item.cookie).cloned();
        match token {
            Some(t) => {
                tracing::info!(fid = %item.fid, cookie = item.cookie, "cancel requested by the coordinator");
                t.cancel();
            }
            None => {
                // Not running here: a request a dead copytool left STARTED (an admin's `lfs
                // hsm_cancel` of an orphan), or one that just ended. Answering ECANCELED by cookie
                // frees the coordinator's slot; -ENOENT means it was already over.
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
        self.metrics
            .action_done(CopytoolAction::Cancel, Outcome::Ok);
    }

    fn spawn_item(
        self: &Arc<Self>,
        item: ActionItem,
        begun: Option<C::Action>,
        permit: OwnedSemaphorePermit,
        rt: &Handle,
    ) {
        let token = CancellationToken::new();
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
        self.shutting_down.store(true, Ordering::SeqCst);
        let tokens: Vec<CancellationToken> = self.running_map().values().cloned().collect();
        tracing::warn!(count = tokens.len(), "aborting in-flight actions to stop");
        for t in &tokens {
            t.cancel();
        }
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::error!("in-flight actions did not end within the shutdown bound");
        }
        tokens.len()
    }
}
