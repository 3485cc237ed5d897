//! `lustre-blob daemon`: wires the engine to the real file system and blob store.
//!
//! Threads: one changelog reader per MDT ([`crate::readers`]), the engine loop on the calling
//! thread, which owns all state, and a small tokio runtime for the control socket, the HTTP
//! endpoints and the logging container. Everything the loop reacts to arrives as a [`Msg`] on
//! one channel: records, control requests, and signals (SIGTERM/SIGINT stop, SIGHUP reloads the
//! policy file; a bad file keeps the old policy). Between messages the loop sleeps until the
//! next deadline (engine timers, flush timeouts, the metrics refresh), never on a fixed tick.
//! Stopping cancels one token that ends the control socket and the HTTP endpoints, and closes
//! the readers' wake-ups; their last records are applied, the state saved, the log flushed.

use crate::control::{self, Request, Response};
use crate::engine::{now_ms, Engine, EngineConfig};
use crate::jobs::{JobRegistry, JobsError};
use crate::model::Change;
use crate::ports::{EventLog, Namespace, Store};
use crate::readers::{self, ReaderWakers};
use crate::real::{discover_mdts, BlobLog, BlobPort, LustreNs};
use crate::scope::Scope;
use crate::state::{Source, StateFile};
use crate::status;
use crate::vocab::JobState;
use endpoint::signals::Signal;
use lustre_blob_config::Policy;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// In-flight files without CL_HSM for this long are checked against their HSM state.
const STALE_AFTER_MS: u64 = 30_000;
/// State saves at most this often (write-ahead saves before archive requests are immediate).
const SAVE_INTERVAL_MS: u64 = 500;
/// How often the metrics text and the page's chart points are refreshed.
const METRICS_EVERY_MS: u64 = 1_000;
/// While a manual job runs, how often it is advanced: its tree scanner hands results through a
/// queue the loop cannot wait on (the job's archive completions arrive as records).
const JOB_STEP_MS: u64 = 100;

/// What the engine loop waits for.
pub enum Msg {
    Records {
        mdt: usize,
        records: Vec<Change>,
        end: bool,
    },
    ReaderFailed {
        mdt: usize,
        error: String,
    },
    Control {
        req: Request,
        reply: Sender<Response>,
    },
    /// SIGTERM/SIGINT/SIGHUP, from [`endpoint::signals`].
    Signal(Signal),
    /// Every reader thread has ended (sent while stopping).
    ReadersEnded,
}

/// Engine settings from a policy file.
pub fn engine_config(p: &Policy) -> Result<EngineConfig, String> {
    Ok(EngineConfig {
        archive_id: p.lustre.archive_id,
        scope: Scope::new(&p.autoexport.path, &p.autoexport.exclude)?,
        min_age_ms: p.autoexport.min_age.as_millis() as u64,
        metadata: p.autoexport.metadata,
        on_delete: p.autoexport.on_delete,
        on_rename: p.autoexport.on_rename,
        batch_size: p.autoexport.batch_size,
        stale_after_ms: STALE_AFTER_MS,
        discover_chunk: 256,
        job_id: "autoexport".into(),
        retry_max_ms: crate::engine::DEFAULT_RETRY_MAX_MS,
        max_in_flight: p.autoexport.max_in_flight,
        queue_target_ms: p.autoexport.queue_target.as_millis() as u64,
        min_in_flight: p.autoexport.min_in_flight,
        iteration_deadline_ms: p.autoexport.iteration_deadline.as_millis() as u64,
    })
}

/// The blob crate's target from the policy's `[blob]` section.
pub fn target_spec(p: &Policy) -> blob::TargetSpec {
    p.blob_target().spec()
}

/// A `Job` request answered when the job ends or at `until_ms`, whichever comes first.
struct JobWait {
    id: String,
    reply: Sender<Response>,
    until_ms: u64,
}

struct FlushReply {
    id: u64,
    reply: Sender<Response>,
    deadline_ms: Option<u64>,
}

/// The engine loop and everything it answers.
pub struct Daemon<N: Namespace, S: Store, L: EventLog> {
    pub engine: Engine<N, S, L>,
    pub jobs: JobRegistry,
    policy_path: PathBuf,
    /// Last read error per MDT (cleared by that MDT's next successful pass).
    reader_errors: std::collections::BTreeMap<usize, String>,
    flushes: Vec<FlushReply>,
    job_waits: Vec<JobWait>,
    metrics: Arc<Mutex<String>>,
    /// Points for the page's charts.
    history: Arc<Mutex<crate::web::History>>,
    /// When this daemon started, and the changelog records each MDT's reader delivered since:
    /// an MDT that delivers none is the first sign of a forgotten changelog user (Lustre keeps
    /// no changelog without one, so the reader waits in silence).
    started_ms: u64,
    records_seen: std::collections::BTreeMap<usize, u64>,
    /// The readers' wake-ups: a flush asks each for two passes (see `Engine::flush_begin`).
    pub wakers: Arc<ReaderWakers>,
    /// A rate-limited save is due then (changes arrived since the last one).
    save_due_ms: Option<u64>,
    /// SIGTERM/SIGINT arrived: the loop ends after this round.
    stopping: bool,
}

/// After this long without a single record from an MDT, `status` asks whether the changelog
/// user is registered.
const NO_RECORD_WARNING_MS: u64 = 10_000;

impl<N: Namespace, S: Store, L: EventLog> Daemon<N, S, L> {
    pub fn new(engine: Engine<N, S, L>, mut jobs: JobRegistry, policy_path: PathBuf) -> Self {
        // An auto-export job runs from the start when the state says auto-export is on.
        if engine.enabled() {
            jobs.autoexport_toggled(true, JobState::InProgress, engine.state(), now_ms());
        }
        Daemon {
            engine,
            jobs,
            policy_path,
            reader_errors: Default::default(),
            flushes: Vec::new(),
            job_waits: Vec::new(),
            metrics: Arc::default(),
            history: Arc::default(),
            started_ms: now_ms(),
            records_seen: Default::default(),
            wakers: Arc::default(),
            save_due_ms: None,
            stopping: false,
        }
    }

    pub fn status(&self) -> status::AutoExportStatus {
        let error = self
            .reader_errors
            .values()
            .next()
            .or_else(|| self.engine.unknown_users().values().next());
        let now = now_ms();
        let mut s = status::build(self.engine.state(), now, error.map(String::as_str));
        s.in_flight_limit = self.engine.in_flight_limit(now) as u64;
        if let Some(w) = self.engine.mask_warnings().values().next() {
            if s.status_message.is_empty() {
                s.status_code = "ChangelogMaskIncomplete".into();
                s.status_message = w.clone();
            }
        }
        s.warnings = self.warnings(now);
        s
    }

    /// Problems that last, said while they last.
    fn warnings(&self, now: u64) -> Vec<String> {
        let st = self.engine.state();
        let mut w = Vec::new();
        if now.saturating_sub(self.started_ms) < NO_RECORD_WARNING_MS {
            return w;
        }
        let names = st
            .source
            .as_ref()
            .map(|s| s.mdts.clone())
            .unwrap_or_default();
        for (mdt, cursor) in st.cursors.iter().enumerate() {
            let user = st
                .source
                .as_ref()
                .map_or("the changelog user", |s| s.user_of(mdt));
            // A cursor past 0 read records in an earlier run: the user exists.
            if cursor.last_read > 0 || self.records_seen.get(&mdt).is_some_and(|n| *n > 0) {
                continue;
            }
            let name = names
                .get(mdt)
                .cloned()
                .unwrap_or_else(|| format!("MDT index {mdt}"));
            w.push(format!(
                "no changelog record read from {name} since start {}s ago (is {user} registered? \
                 on the MDS: lctl get_param mdd.{name}.changelog_users; register with \
                 lctl --device {name} changelog_register; Lustre keeps no changelog without a user, \
                 so changes made before that are not seen)",
                now.saturating_sub(self.started_ms) / 1000
            ));
        }
        w
    }

    /// Applies one message (records, a control request, a signal).
    pub fn handle(&mut self, msg: Msg) {
        let now = now_ms();
        self.save_due_ms
            .get_or_insert(now.saturating_add(SAVE_INTERVAL_MS));
        match msg {
            Msg::Signal(Signal::Reload) => self.reload(),
            Msg::Signal(Signal::Stop(signo)) => {
                tracing::info!(signal = signo, "stopping");
                self.stopping = true;
            }
            Msg::ReadersEnded => {}
            Msg::Records { mdt, records, end } => {
                *self.records_seen.entry(mdt).or_default() += records.len() as u64;
                // Any message of a reader says its changelog can be read.
                self.reader_errors.remove(&mdt);
                self.engine.on_records(mdt, &records, end, now);
            }
            Msg::ReaderFailed { mdt, error } => {
                tracing::error!(mdt, %error, "changelog read failed; retrying");
                self.reader_errors.insert(mdt, error);
            }
            Msg::Control { req, reply } => {
                if let Some(r) = self.control(req, reply.clone(), now) {
                    let _ = reply.send(r);
                }
            }
        }
    }

    /// Answers a request; `None` when the answer comes later (flush --wait).
    fn control(&mut self, req: Request, reply: Sender<Response>, now: u64) -> Option<Response> {
        let r = match req {
            Request::Status => {
                self.make_durable();
                Response::ok(serde_json::to_value(self.status()).unwrap_or_default())
            }
            Request::Jobs => {
                self.make_durable();
                Response::ok(
                    serde_json::to_value(self.jobs.list(self.engine.state())).unwrap_or_default(),
                )
            }
            Request::Job { id, wait_ms } => {
                if let Some(ms) = wait_ms {
                    if self.job_running(&id) {
                        self.job_waits.push(JobWait {
                            id,
                            reply,
                            until_ms: now.saturating_add(ms),
                        });
                        return None;
                    }
                }
                self.make_durable();
                match self.jobs.get(&id, self.engine.state()) {
                    Some(j) => Response::ok(serde_json::to_value(j).unwrap_or_default()),
                    None => Response::err(crate::exit::NOT_FOUND, format!("no job {id}")),
                }
            }
            Request::Autoexport { enable } => {
                if enable {
                    if let Some(running) = self.jobs.running_manual() {
                        return Some(Response::err(crate::exit::REFUSED, format!("refused: job {running} is running; one blob-integration job at a time")));
                    }
                }
                self.engine.set_enabled(enable);
                self.jobs
                    .autoexport_toggled(enable, JobState::Disabled, self.engine.state(), now);
                tracing::info!(enable, "auto-export toggled");
                Response::ok(serde_json::json!({ "enabled": enable }))
            }
            Request::Flush { wait, timeout_ms } => {
                if !self.engine.enabled() {
                    return Some(Response::err(
                        crate::exit::REFUSED,
                        "auto-export is disabled: no changes are being exported",
                    ));
                }
                let id = self.engine.flush_begin(now);
                // The barrier needs two end-of-changelog passes begun after this.
                self.wakers.ask_passes(2);
                if !wait {
                    return Some(Response::ok(
                        serde_json::json!({ "flush": id, "waiting": false }),
                    ));
                }
                self.flushes.push(FlushReply {
                    id,
                    reply,
                    deadline_ms: timeout_ms.map(|t| now + t),
                });
                return None;
            }
            Request::Export { path } => {
                match self.jobs.start_export(&path, self.engine.enabled(), now) {
                    Ok(id) => Response::ok(serde_json::json!({ "id": id })),
                    Err(e) => jobs_refusal(e),
                }
            }
            Request::Import {
                prefix,
                conflict,
                maximum_errors,
            } => {
                match self.jobs.start_import(
                    &prefix,
                    &conflict,
                    maximum_errors,
                    self.engine.enabled(),
                    now,
                ) {
                    Ok(id) => Response::ok(serde_json::json!({ "id": id })),
                    Err(e) => jobs_refusal(e),
                }
            }
            Request::Failures { limit } => {
                let st = self.engine.state();
                let latest: Vec<_> = st.recent_failures.iter().rev().take(limit).collect();
                Response::ok(serde_json::json!({
                    "standing": st.standing_failures(),
                    "latest": latest,
                }))
            }
            Request::Requeue { paths } => {
                let mut queued = 0u64;
                let mut unknown = Vec::new();
                for p in &paths {
                    use std::os::unix::ffi::OsStrExt;
                    match self.engine.requeue_path(p.as_os_str().as_bytes(), now) {
                        Ok(()) => queued += 1,
                        Err(e) => unknown.push(format!("{}: {e}", p.display())),
                    }
                }
                tracing::info!(queued, refused = unknown.len(), "paths requeued on request");
                Response::ok(serde_json::json!({ "queued": queued, "refused": unknown }))
            }
            Request::Cancel { id } => match self.jobs.cancel(&id, now) {
                Ok(()) if id == "autoexport" => {
                    // The portal's Cancel of auto-export: it stops (requests already sent still
                    // settle) and the job ends Canceled with its counters.
                    self.engine.set_enabled(false);
                    self.jobs.autoexport_toggled(
                        false,
                        JobState::Canceled,
                        self.engine.state(),
                        now,
                    );
                    tracing::info!("auto-export job canceled");
                    Response::ok(serde_json::json!({ "id": id, "state": JobState::Canceled }))
                }
                Ok(()) => {
                    Response::ok(serde_json::json!({ "id": id, "state": JobState::Cancelling }))
                }
                Err(e) => jobs_refusal(e),
            },
        };
        Some(r)
    }

    /// One round of work after messages: engine step, persistence, job progress, answers.
    pub fn tick(&mut self) -> Result<(), crate::engine::EngineError> {
        let now = now_ms();
        self.engine.step(now)?;
        self.jobs.step(&mut self.engine, now);
        self.engine.persist_due(now, SAVE_INTERVAL_MS)?;
        if self.save_due_ms.is_some_and(|t| t <= now) {
            self.save_due_ms = None;
        }
        self.answer_job_waits(now);
        let mut i = 0;
        while i < self.flushes.len() {
            let f = &self.flushes[i];
            if let Some(out) = self.engine.flush_poll(f.id) {
                let f = self.flushes.remove(i);
                let code = if out.failures.is_empty() {
                    None
                } else {
                    Some(crate::exit::FILES_FAILED)
                };
                let mut r = Response::ok(serde_json::to_value(&out).unwrap_or_default());
                r.code = code;
                let _ = f.reply.send(r);
                continue;
            }
            // The timeout counts once the barrier is known (the changelog read up to the call,
            // normally within a second), so `--timeout 0` asks "is everything before now already
            // exported?"; a reader that cannot get there times out FLUSH_BARRIER_GRACE_MS later.
            let barrier_known = self.engine.flush_barrier_known(f.id);
            if f.deadline_ms.is_some_and(|d| {
                now >= d && (barrier_known || now >= d.saturating_add(FLUSH_BARRIER_GRACE_MS))
            }) {
                let f = self.flushes.remove(i);
                self.engine.flush_forget(f.id);
                let _ = f.reply.send(Response::err(
                    crate::exit::TIMEOUT,
                    "flush timed out before every earlier change was exported",
                ));
                continue;
            }
            i += 1;
        }
        Ok(())
    }

    fn job_running(&self, id: &str) -> bool {
        self.jobs
            .get(id, self.engine.state())
            .is_some_and(|j| j.is_running())
    }

    /// Answers the `Job` waits whose job ended or whose time is up.
    fn answer_job_waits(&mut self, now: u64) {
        let (due, waiting): (Vec<JobWait>, Vec<JobWait>) = std::mem::take(&mut self.job_waits)
            .into_iter()
            .partition(|w| now >= w.until_ms || !self.job_running(&w.id));
        self.job_waits = waiting;
        if due.is_empty() {
            return;
        }
        self.make_durable();
        for w in due {
            let r = match self.jobs.get(&w.id, self.engine.state()) {
                Some(j) => Response::ok(serde_json::to_value(j).unwrap_or_default()),
                None => Response::err(crate::exit::NOT_FOUND, format!("no job {}", w.id)),
            };
            let _ = w.reply.send(r);
        }
    }

    /// When the loop must run a round without a message: the earliest of the engine's timers,
    /// a flush's timeout, a due save, a running job's next step. `None`: only a message.
    pub fn next_wake(&self, now: u64) -> Option<u64> {
        let mut due = self.engine.next_due(now);
        let mut at = |t: u64| due = Some(due.map_or(t, |d: u64| d.min(t)));
        for f in &self.flushes {
            if let Some(d) = f.deadline_ms {
                // See `tick`: without its barrier a flush times out a grace period later.
                if self.engine.flush_barrier_known(f.id) {
                    at(d);
                } else {
                    at(d.saturating_add(FLUSH_BARRIER_GRACE_MS));
                }
            }
        }
        if let Some(t) = self.save_due_ms {
            at(t);
        }
        for w in &self.job_waits {
            at(w.until_ms);
        }
        if self.jobs.running_manual().is_some() {
            at(now.saturating_add(JOB_STEP_MS));
        }
        due.map(|d| d.max(now))
    }

    /// The loop: waits for a message or the next deadline, applies what came, runs a round;
    /// until SIGTERM/SIGINT (or every sender is gone).
    fn serve(&mut self, rx: &Receiver<Msg>) -> Result<(), crate::engine::EngineError> {
        let mut metrics_due = 0u64;
        while !self.stopping {
            let now = now_ms();
            if now >= metrics_due {
                metrics_due = now.saturating_add(METRICS_EVERY_MS);
                self.refresh_metrics();
            }
            let wake = self
                .next_wake(now)
                .map_or(metrics_due, |w| w.min(metrics_due));
            match rx.recv_timeout(Duration::from_millis(wake.saturating_sub(now))) {
                Ok(m) => {
                    self.handle(m);
                    // What queued meanwhile is applied before the round (bounded: a round
                    // must come even under a flood of records).
                    for m in rx.try_iter().take(64) {
                        self.handle(m);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.tick()?;
        }
        Ok(())
    }

    /// Saves what changed before counters are shown: a number an admin (or a Prometheus
    /// scrape) has seen must survive a `kill -9` of the daemon, or Total Files Exported would go
    /// back after the restart until the replayed changelog counts the lost part again. Saves are
    /// otherwise rate-limited ([`SAVE_INTERVAL_MS`]); showing is rare, so this costs little.
    fn make_durable(&mut self) {
        if let Err(e) = self.engine.persist() {
            tracing::warn!(error = %e, "state not saved before showing counters");
        }
    }

    fn refresh_metrics(&mut self) {
        self.make_durable();
        let s = self.status();
        let text = status::render_metrics(&s);
        if let Ok(mut m) = self.metrics.lock() {
            *m = text;
        }
        if let Ok(mut h) = self.history.lock() {
            h.note(&s, now_ms());
        }
    }

    /// Re-reads the policy file; a bad file keeps the old policy.
    pub fn reload(&mut self) {
        match Policy::load(&self.policy_path)
            .map_err(|e| e.to_string())
            .and_then(|p| engine_config(&p))
        {
            Ok(cfg) => {
                self.engine.reconfigure(cfg);
                tracing::info!(file = %self.policy_path.display(), "policy reloaded (the [lustre] section, blob target and control settings need a restart)");
            }
            Err(e) => {
                tracing::error!(error = %e, "policy reload refused; keeping the previous policy")
            }
        }
    }
}

fn jobs_refusal(e: JobsError) -> Response {
    let code = match &e {
        JobsError::Busy(_) => crate::exit::REFUSED,
        JobsError::NotFound(_) => crate::exit::NOT_FOUND,
        JobsError::Invalid(_) => crate::exit::USAGE,
    };
    Response::err(code, e.to_string())
}

/// How long past its timeout a flush still waits for its barrier (the changelog read up to the
/// moment of the call) before it times out without one.
pub const FLUSH_BARRIER_GRACE_MS: u64 = 10_000;

/// How often queued entries are written to the logging container (and soon after each
/// iteration and job ends).
const LOG_FLUSH: Duration = Duration::from_secs(5);
/// Entries queued at most while the logging container cannot be written.
const LOG_CAPACITY: usize = 10_000;

/// The product's daemon: the engine over Lustre and the blob store.
type RealDaemon = Daemon<LustreNs, BlobPort, BlobLog>;

/// The logging container's writer and how to end it (after the last save).
struct LogFlusher {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(policy_path: &Path) -> anyhow::Result<()> {
    let policy = Policy::load(policy_path)?;
    let cfg = engine_config(&policy).map_err(anyhow::Error::msg)?;
    // Before anything reads or writes the state: held until this function returns.
    let _owner = crate::state::StateDirLock::acquire(&policy.control.state_dir)
        .map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mount = lustre::Mount::open(&policy.lustre.mount)?;
    let mdts = match &policy.lustre.mdts {
        Some(v) => v.clone(),
        None => discover_mdts(&mount)?,
    };
    let store = open_store(&policy, policy_path)?;
    let (sink, log) = start_log(&policy, &store, &rt)?;
    let users = changelog_users(&policy, policy_path, &mdts)?;
    let mut d = build_daemon(
        &policy,
        policy_path,
        cfg,
        mount,
        &mdts,
        &users,
        store,
        sink,
        &rt,
    )?;
    d.engine.persist()?;

    let (tx, rx): (SyncSender<Msg>, Receiver<Msg>) = mpsc::sync_channel(64);
    let signals = {
        let tx = tx.clone();
        endpoint::signals::watch(move |s| {
            let _ = tx.send(Msg::Signal(s));
        })?
    };
    let cadence = readers::Cadence::from_interval(policy.lustre.changelog_interval);
    let readers = readers::start(&mdts, d.engine.resume_points(), cadence, &tx, &d.wakers)?;
    let shutdown = CancellationToken::new();
    let server = start_control(&policy, &d, control_handler(tx.clone()), &rt, &shutdown)?;
    tracing::info!(mount = %policy.lustre.mount.display(), mdts = ?mdts, socket = %policy.control.socket.display(), "lustre-blob daemon started");

    d.serve(&rx)?;

    tracing::info!("stopping: saving state");
    drop(signals);
    shutdown.cancel();
    drop(server);
    d.wakers.close();
    // Records the readers still hand over are applied before the save; control requests that
    // come meanwhile are refused.
    std::thread::Builder::new()
        .name("readers-joined".into())
        .spawn(move || {
            for r in readers {
                let _ = r.join();
            }
            let _ = tx.send(Msg::ReadersEnded);
        })?;
    for m in rx.iter() {
        match m {
            Msg::ReadersEnded => break,
            Msg::Control { reply, .. } => {
                let _ = reply.send(Response::err(
                    crate::exit::UNAVAILABLE,
                    "daemon is shutting down",
                ));
            }
            m => d.handle(m),
        }
    }
    d.engine.persist()?;
    // Once more: saves the clear points the last persist reached.
    d.engine.persist()?;
    // The flusher writes what is queued once more, then ends.
    log.stop.cancel();
    let _ = rt.block_on(log.task);
    // A control client that connected and never sent its line holds a blocking thread until its
    // read times out: the process does not wait for it.
    rt.shutdown_background();
    Ok(())
}

/// The changelog user of each MDT (ids are numbered per MDT): a table must name every MDT read.
fn changelog_users(
    policy: &Policy,
    policy_path: &Path,
    mdts: &[String],
) -> anyhow::Result<Vec<String>> {
    mdts.iter()
        .map(|m| match policy.lustre.changelog_user.for_mdt(m) {
            Some(u) => Ok(u.to_string()),
            None => Err(anyhow::anyhow!(
                "{}: [lustre] changelog_user has no user for {m} (give every MDT read its id)",
                policy_path.display()
            )),
        })
        .collect()
}

/// The blob target, or an error naming the credential files involved (never their contents).
fn open_store(policy: &Policy, policy_path: &Path) -> anyhow::Result<blob::BlobStore> {
    let spec = target_spec(policy);
    blob::BlobStore::open(&spec).map_err(|e| {
        let files: Vec<String> = [
            ("account_key_file", &spec.account_key_file),
            ("sas_token_file", &spec.sas_token_file),
            ("connection_string_file", &spec.connection_string_file),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|p| format!("{k} {}", p.display())))
        .collect();
        let what = if files.is_empty() {
            String::new()
        } else {
            format!(" ({})", files.join(", "))
        };
        anyhow::Error::new(e).context(format!("{}: blob target{what}", policy_path.display()))
    })
}

/// The logging container's writer and its flusher task on `rt`.
fn start_log(
    policy: &Policy,
    store: &blob::BlobStore,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<(blob::LogSink, LogFlusher)> {
    let log_store = store.with_container(&policy.logging.container)?;
    let sink = blob::LogSink::new(log_store, "", "lustre-blob", LOG_CAPACITY);
    let stop = blob::CancellationToken::new();
    let task = {
        let _in_rt = rt.enter();
        sink.spawn_flusher(LOG_FLUSH, stop.clone())
    };
    Ok((sink, LogFlusher { stop, task }))
}

/// The engine and the job registry from the state directory, bound to these changelogs, with
/// every changelog user checked.
#[allow(clippy::too_many_arguments)]
fn build_daemon(
    policy: &Policy,
    policy_path: &Path,
    cfg: EngineConfig,
    mount: lustre::Mount,
    mdts: &[String],
    users: &[String],
    store: blob::BlobStore,
    sink: blob::LogSink,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<RealDaemon> {
    // Where each MDT's changelog starts now (for the user check below).
    let first_kept: Vec<Option<u64>> = mdts
        .iter()
        .map(|m| {
            lustre::ChangelogReader::start(m, 0, false)
                .ok()
                .and_then(|mut r| r.recv().ok().flatten())
                .map(|r| r.index)
        })
        .collect();
    let ns = LustreNs {
        mount,
        mdts: mdts.to_vec(),
        users: users.to_vec(),
    };
    let state_path = policy.control.state_dir.join("state.json");
    let engine = Engine::new(
        ns,
        BlobPort {
            store,
            rt: rt.handle().clone(),
        },
        BlobLog {
            sink,
            rt: rt.handle().clone(),
        },
        cfg,
        mdts.len(),
        Some(StateFile::new(state_path.clone())),
        policy.autoexport.enabled,
    )?;
    let mut jobs = JobRegistry::open(
        StateFile::new(policy.control.state_dir.join("jobs.json")),
        policy.lustre.archive_id,
    )?;
    jobs.keep_special_bits = policy.import.keep_special_bits;
    let mut d = Daemon::new(engine, jobs, policy_path.to_path_buf());
    d.engine
        .bind_source(Source {
            changelog_user: policy.lustre.changelog_user.to_string(),
            mdts: mdts.to_vec(),
            users: users.to_vec(),
        })
        .map_err(|e| anyhow::anyhow!("{}: {e}", state_path.display()))?;
    if let Err((m, e)) = d.engine.check_users(&first_kept) {
        anyhow::bail!(
            "{}: changelog user {} is not registered on {} ({e}); register one there \
             (lctl --device {} changelog_register) and name it in [lustre] changelog_user \
             (a table MDT = user when the ids differ per MDT)",
            policy_path.display(),
            users[m],
            mdts[m],
            mdts[m]
        );
    }
    Ok(d)
}

/// How the control socket and the page reach the engine loop: a request on the loop's channel
/// and a wait for its answer.
fn control_handler(tx: SyncSender<Msg>) -> control::Handler {
    Arc::new(move |req| {
        let (rtx, rrx) = mpsc::channel();
        if tx.send(Msg::Control { req, reply: rtx }).is_err() {
            return Response::err(crate::exit::UNAVAILABLE, "daemon is shutting down");
        }
        rrx.recv()
            .unwrap_or_else(|_| Response::err(crate::exit::UNAVAILABLE, "daemon is shutting down"))
    })
}

/// The control socket and the configured HTTP endpoints, all ending with `shutdown`.
fn start_control(
    policy: &Policy,
    d: &RealDaemon,
    handler: control::Handler,
    rt: &tokio::runtime::Runtime,
    shutdown: &CancellationToken,
) -> anyhow::Result<control::Server> {
    let server = control::Server::start(
        &policy.control.socket,
        handler.clone(),
        rt.handle(),
        shutdown,
    )?;
    let token = match &policy.control.http_token_file {
        Some(f) => Some(crate::web::read_token(f).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let parts = crate::web::WebParts {
        ask: handler,
        metrics: d.metrics.clone(),
        history: d.history.clone(),
    };
    if let Some(addr) = policy.control.metrics {
        crate::web::spawn(rt.handle(), addr, false, None, &parts, shutdown.clone())
            .map_err(|e| anyhow::anyhow!("control.metrics {addr}: {e}"))?;
    }
    if let Some(addr) = policy.control.http {
        let at = crate::web::spawn(rt.handle(), addr, true, token, &parts, shutdown.clone())
            .map_err(|e| anyhow::anyhow!("control.http {addr}: {e}"))?;
        tracing::info!(url = %format!("http://{at}/"), "Blob-integration page");
    }
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeLog, FakeNs, FakeStore};
    use crate::model::FileKind;
    use lustre::{HsmEvent, HsmEventInfo, RecordType};

    fn daemon() -> (Daemon<FakeNs, FakeStore, FakeLog>, FakeNs) {
        let ns = FakeNs::default();
        ns.add("", FileKind::Directory, 0);
        (daemon_on(&ns, None), ns)
    }

    /// A daemon over `ns`, keeping its state in `file` when given.
    fn daemon_on(
        ns: &FakeNs,
        file: Option<crate::state::StateFile>,
    ) -> Daemon<FakeNs, FakeStore, FakeLog> {
        let text =
            "[lustre]\nmount = \"/m\"\n[blob]\nurl = \"http://127.0.0.1:1/devstoreaccount1/c\"\n";
        let p = Policy::from_toml(text, Path::new("p.toml")).unwrap();
        let e = Engine::new(
            ns.clone(),
            FakeStore::default(),
            FakeLog::default(),
            engine_config(&p).unwrap(),
            1,
            file,
            true,
        )
        .unwrap();
        Daemon::new(e, JobRegistry::in_memory(1), PathBuf::from("p.toml"))
    }

    /// The MDT's record of `f`'s archive ending well, at changelog index `index`.
    fn archived(d: &mut Daemon<FakeNs, FakeStore, FakeLog>, f: lustre::Fid, index: u64) {
        let mut h = Change::simple(0, index, RecordType::Hsm, f);
        h.record
            .set_hsm(HsmEventInfo::new(HsmEvent::Archive, 0, false));
        d.handle(Msg::Records {
            mdt: 0,
            records: vec![h],
            end: true,
        });
    }

    /// A daemon over a policy file of its own in `dir`, `min_age` as given.
    fn daemon_with_policy(dir: &Path, min_age: &str) -> Daemon<FakeNs, FakeStore, FakeLog> {
        let ns = FakeNs::default();
        ns.add("", FileKind::Directory, 0);
        let path = dir.join("policy.toml");
        std::fs::write(&path, policy_text(min_age)).unwrap();
        let p = Policy::load(&path).unwrap();
        let e = Engine::new(
            ns,
            FakeStore::default(),
            FakeLog::default(),
            engine_config(&p).unwrap(),
            1,
            None,
            true,
        )
        .unwrap();
        Daemon::new(e, JobRegistry::in_memory(1), path)
    }

    fn policy_text(min_age: &str) -> String {
        format!(
            "[lustre]\nmount = \"/m\"\n[blob]\nurl = \"http://127.0.0.1:1/devstoreaccount1/c\"\n\
             [autoexport]\nmin_age = \"{min_age}\"\n"
        )
    }

    #[test]
    fn sighup_rereads_the_policy_file_and_a_bad_file_keeps_the_old_policy() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon_with_policy(dir.path(), "5s");
        assert_eq!(d.engine.config().min_age_ms, 5_000);
        std::fs::write(dir.path().join("policy.toml"), policy_text("7s")).unwrap();
        d.handle(Msg::Signal(Signal::Reload));
        assert_eq!(d.engine.config().min_age_ms, 7_000);
        std::fs::write(dir.path().join("policy.toml"), "[lustre\n").unwrap();
        d.handle(Msg::Signal(Signal::Reload));
        assert_eq!(d.engine.config().min_age_ms, 7_000, "kept");
    }

    #[test]
    fn sigterm_ends_the_loop_after_what_came_before_it_is_applied() {
        let (mut d, ns) = daemon();
        let f = ns.add("a", FileKind::Regular, 3);
        let (tx, rx) = mpsc::sync_channel(8);
        tx.send(Msg::Records {
            mdt: 0,
            records: vec![Change::simple(0, 1, lustre::RecordType::Close, f)],
            end: true,
        })
        .unwrap();
        tx.send(Msg::Signal(Signal::Stop(libc::SIGTERM))).unwrap();
        // `tx` stays open: the loop ends on the signal, not on a closed channel.
        d.serve(&rx).unwrap();
        assert_eq!(
            d.engine.state().cursors[0].last_read,
            1,
            "the record was applied"
        );
        assert!(
            d.engine.state().iteration.is_some(),
            "and a round ran after it"
        );
        drop(tx);
    }

    #[test]
    fn the_loop_sleeps_until_the_next_deadline_and_not_at_all_when_idle() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = daemon_with_policy(dir.path(), "5s");
        let t0 = now_ms();
        assert_eq!(
            d.engine.next_due(t0),
            None,
            "nothing to do: only a message wakes it"
        );
        let f = d.engine.ns().add("a", FileKind::Regular, 3);
        d.engine.on_records(
            0,
            &[Change::simple(0, 1, lustre::RecordType::Close, f)],
            true,
            t0,
        );
        assert_eq!(
            d.engine.next_due(t0),
            Some(t0 + 5_000),
            "the file comes of age"
        );
        d.engine.step(t0 + 5_000).unwrap();
        assert!(d.engine.state().iteration.is_some(), "started when due");
        // In flight now: the next timer is the stale check.
        let due = d.engine.next_due(t0 + 5_000).unwrap();
        assert!(
            due > t0 + 5_000,
            "{due}: no busy loop while a request is out"
        );
        archived(&mut d, f, 2);
        d.engine.step(now_ms()).unwrap();
        assert!(d.engine.state().iteration.is_none());
        assert_eq!(d.engine.next_due(now_ms()), None);
        // A flush with a timeout wakes the loop at its deadline.
        let _rx = ask(
            &mut d,
            Request::Flush {
                wait: true,
                timeout_ms: Some(60_000),
            },
        );
        d.save_due_ms = None; // the save the request made due is another deadline
        let deadline = d.flushes[0].deadline_ms.unwrap();
        assert_eq!(
            d.next_wake(now_ms()),
            Some(deadline + FLUSH_BARRIER_GRACE_MS),
            "no barrier yet: the timeout waits the grace period too"
        );
    }

    #[test]
    fn a_job_question_with_a_wait_is_answered_when_the_job_ends_not_before() {
        let (mut d, _ns) = daemon();
        assert!(
            ask(&mut d, Request::Autoexport { enable: false })
                .try_recv()
                .unwrap()
                .ok
        );
        let r = ask(&mut d, Request::Export { path: "".into() })
            .try_recv()
            .unwrap();
        let id = r.data["id"].as_str().unwrap().to_string();
        let job = |wait_ms| Request::Job {
            id: id.clone(),
            wait_ms,
        };
        let until_end = ask(&mut d, job(Some(600_000)));
        let until_round = ask(&mut d, job(Some(0)));
        assert!(until_end.try_recv().is_err(), "held while the job runs");
        assert!(
            until_round.try_recv().is_err(),
            "answered by the loop, not at once"
        );
        assert!(
            ask(&mut d, Request::Cancel { id: id.clone() })
                .try_recv()
                .unwrap()
                .ok
        );
        d.tick().unwrap();
        assert_eq!(until_end.try_recv().unwrap().data["state"], "Canceled");
        assert!(until_round.try_recv().unwrap().ok);
        // A job that has ended is told at once.
        let r = ask(&mut d, job(Some(600_000))).try_recv().unwrap();
        assert_eq!(r.data["state"], "Canceled");
    }

    #[test]
    fn an_mdt_whose_changelog_delivers_nothing_asks_for_the_changelog_user() {
        let (mut d, ns) = daemon();
        d.engine
            .bind_source(crate::state::Source {
                changelog_user: "cl1".into(),
                mdts: vec!["lsim-MDT0000".into()],
                users: vec!["cl1".into()],
            })
            .unwrap();
        assert!(d.status().warnings.is_empty(), "not in the first seconds");
        d.started_ms -= NO_RECORD_WARNING_MS;
        let w = d.status().warnings;
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("no changelog record read from lsim-MDT0000"),
            "{}",
            w[0]
        );
        assert!(w[0].contains("is cl1 registered?"), "{}", w[0]);
        assert!(
            w[0].contains("lctl --device lsim-MDT0000 changelog_register"),
            "{}",
            w[0]
        );
        assert!(status::render_human(&d.status()).contains("Warning: no changelog record"));
        // The first record ends it.
        let f = ns.add("a", FileKind::Regular, 1);
        d.handle(Msg::Records {
            mdt: 0,
            records: vec![Change::simple(0, 1, RecordType::Close, f)],
            end: true,
        });
        assert!(d.status().warnings.is_empty());
    }

    fn ask(d: &mut Daemon<FakeNs, FakeStore, FakeLog>, req: Request) -> mpsc::Receiver<Response> {
        let (tx, rx) = mpsc::channel();
        d.handle(Msg::Control { req, reply: tx });
        rx
    }

    #[test]
    fn flush_wait_is_answered_after_the_export_and_reader_errors_show_in_status() {
        let (mut d, ns) = daemon();
        let f = ns.add("a", FileKind::Regular, 3);
        let rx = ask(
            &mut d,
            Request::Flush {
                wait: true,
                timeout_ms: None,
            },
        );
        d.handle(Msg::Records {
            mdt: 0,
            records: vec![Change::simple(0, 1, RecordType::Close, f)],
            end: true,
        });
        d.handle(Msg::Records {
            mdt: 0,
            records: vec![],
            end: true,
        });
        d.tick().unwrap();
        assert!(rx.try_recv().is_err(), "still in flight");
        archived(&mut d, f, 2);
        d.tick().unwrap();
        let r = rx.try_recv().unwrap();
        assert!(r.ok && r.code.is_none(), "{r:?}");
        d.handle(Msg::ReaderFailed {
            mdt: 0,
            error: "fs-MDT0000: No such device".into(),
        });
        let s = ask(&mut d, Request::Status).try_recv().unwrap();
        assert_eq!(s.data["state"], "Failed");
        assert_eq!(s.data["totalFilesExported"], 1);
        d.handle(Msg::Records {
            mdt: 0,
            records: vec![],
            end: true,
        });
        assert_eq!(
            ask(&mut d, Request::Status).try_recv().unwrap().data["state"],
            "InProgress"
        );
    }

    /// What `status` showed survives a `kill -9` right after it: a daemon restarted from the
    /// state directory never shows a smaller Total Files Exported than was seen.
    #[test]
    fn counters_shown_by_status_survive_a_crash_right_after() {
        let dir = tempfile::tempdir().unwrap();
        let file = crate::state::StateFile::new(dir.path().join("state.json"));
        let ns = FakeNs::default();
        ns.add("", FileKind::Directory, 0);
        let mut d = daemon_on(&ns, Some(file.clone()));
        d.tick().unwrap(); // the first save: from now on saves are rate-limited
        let f = ns.add("a", FileKind::Regular, 3);
        d.handle(Msg::Records {
            mdt: 0,
            records: vec![Change::simple(0, 1, RecordType::Close, f)],
            end: true,
        });
        d.tick().unwrap();
        archived(&mut d, f, 2);
        let seen = ask(&mut d, Request::Status).try_recv().unwrap();
        assert_eq!(seen.data["totalFilesExported"], 1);
        drop(d); // kill -9: no shutdown save
        let mut again = daemon_on(&ns, Some(file));
        let after = ask(&mut again, Request::Status).try_recv().unwrap();
        assert_eq!(after.data["totalFilesExported"], 1, "{}", after.data);
    }

    #[test]
    fn flush_times_out_and_refusals_carry_exit_codes() {
        let (mut d, ns) = daemon();
        let f = ns.add("a", FileKind::Regular, 3);
        d.handle(Msg::Records {
            mdt: 0,
            records: vec![Change::simple(0, 1, RecordType::Close, f)],
            end: false,
        });
        let rx = ask(
            &mut d,
            Request::Flush {
                wait: true,
                timeout_ms: Some(0),
            },
        );
        // The timeout counts from the moment the changelog has been read past the call.
        d.tick().unwrap();
        assert!(
            rx.try_recv().is_err(),
            "timed out before the barrier was known"
        );
        for _ in 0..2 {
            d.handle(Msg::Records {
                mdt: 0,
                records: vec![],
                end: true,
            });
        }
        d.tick().unwrap();
        assert_eq!(rx.try_recv().unwrap().code, Some(crate::exit::TIMEOUT));
        let r = ask(&mut d, Request::Export { path: "x".into() })
            .try_recv()
            .unwrap();
        assert_eq!(r.code, Some(crate::exit::REFUSED));
        assert!(r.error.unwrap().contains("autoexport"));
        assert!(
            ask(&mut d, Request::Autoexport { enable: false })
                .try_recv()
                .unwrap()
                .ok
        );
        let r = ask(
            &mut d,
            Request::Flush {
                wait: true,
                timeout_ms: None,
            },
        )
        .try_recv()
        .unwrap();
        assert_eq!(r.code, Some(crate::exit::REFUSED));
        let r = ask(&mut d, Request::Export { path: "".into() })
            .try_recv()
            .unwrap();
        assert!(r.ok, "{r:?}");
        let r = ask(&mut d, Request::Autoexport { enable: true })
            .try_recv()
            .unwrap();
        assert_eq!(
            r.code,
            Some(crate::exit::REFUSED),
            "a manual job is running"
        );
        let r = ask(
            &mut d,
            Request::Job {
                id: "nope".into(),
                wait_ms: Some(60_000),
            },
        )
        .try_recv()
        .unwrap();
        assert_eq!(r.code, Some(crate::exit::NOT_FOUND));
    }
}
