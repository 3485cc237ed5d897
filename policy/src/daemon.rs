//! `lustre-blob daemon`: wires the engine to the real file system and blob store.
//!
//! Threads: one changelog reader per MDT (one long-lived reader in follow mode from the saved
//! cursor; a flush asks each for two short passes to the end of its changelog, the barrier
//! points), the control socket,
//! the optional metrics endpoint, and the engine loop on the calling thread, which owns all
//! state. Readers hand records over through a bounded channel. SIGTERM/SIGINT stop the readers,
//! save the state and exit; SIGHUP reloads the policy file (a bad file keeps the old policy).

use crate::control::{self, Request, Response};
use crate::engine::{now_ms, Engine, EngineConfig};
use crate::jobs::{JobRegistry, JobsError};
use crate::model::Change;
use crate::ports::{EventLog, Namespace, Store};
use crate::real::{discover_mdts, BlobLog, BlobPort, LustreNs};
use crate::scope::Scope;
use crate::state::{Source, StateFile};
use crate::status;
use crate::vocab::JobState;
use lustre_blob_config::Policy;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records per message from a reader.
const READ_BATCH: usize = 4096;
/// In-flight files without CL_HSM for this long are checked against their HSM state.
const STALE_AFTER_MS: u64 = 30_000;
/// State saves at most this often (write-ahead saves before archive requests are immediate).
const SAVE_INTERVAL_MS: u64 = 500;

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
        iteration_deadline_ms: p.autoexport.iteration_deadline.as_millis() as u64,
    })
}

/// The blob crate's target from the policy's plain fields.
pub fn target_spec(p: &Policy) -> blob::TargetSpec {
    let b = p.blob_target();
    blob::TargetSpec {
        url: b.url,
        use_emulator: b.use_emulator,
        account_key_file: b.account_key_file,
        sas_token_file: b.sas_token_file,
        connection_string_file: b.connection_string_file,
        request_timeout: b.request_timeout,
        retries: b.retries,
    }
}

/// One pass over MDT `name`'s changelog from `*next` to its end with a reader of its own:
/// the records are sent, the last message says `end`. A pass started after a flush began sees
/// every record recorded before it: the flush barrier's end point.
/// Hands the records read so far to the engine (nothing when there are none); `false` when the
/// engine is gone.
fn send_batch(tx: &SyncSender<Msg>, mdt: usize, batch: &mut Vec<Change>) -> bool {
    if batch.is_empty() {
        return true;
    }
    let records = std::mem::take(batch);
    tx.send(Msg::Records {
        mdt,
        records,
        end: false,
    })
    .is_ok()
}

fn one_pass(mdt: usize, name: &str, next: &mut u64, tx: &SyncSender<Msg>) -> Result<(), String> {
    let mut reader =
        lustre::ChangelogReader::start(name, *next, false).map_err(|e| format!("{name}: {e}"))?;
    let mut batch = Vec::new();
    loop {
        match reader.recv() {
            Ok(Some(r)) => {
                if r.index >= *next {
                    *next = r.index + 1;
                    batch.push(Change { mdt, record: r });
                }
                if batch.len() >= READ_BATCH && !send_batch(tx, mdt, &mut batch) {
                    return Err("engine gone".to_string());
                }
            }
            Ok(None) => break,
            Err(e) => return Err(format!("{name}: {e}")),
        }
    }
    tx.send(Msg::Records {
        mdt,
        records: batch,
        end: true,
    })
    .map_err(|_| "engine gone".to_string())
}

/// Waits up to `ms` for `fd` to become readable.
fn readable(fd: std::os::fd::RawFd, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd on a descriptor owned by a live changelog reader.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0
}

/// MDT `mdt`'s reader: one long-lived changelog reader in follow mode, waiting on its fd (each
/// open costs a Lustre MDS a thread that re-reads the current plain llog from its start,
/// `chlg_load` in mdc_changelog.c). A flush asks for passes (`passes`: how many were asked so
/// far); each is one short non-follow read from the follower's position to the end.
fn reader_loop(
    mdt: usize,
    name: String,
    mut next: u64,
    tx: SyncSender<Msg>,
    stop: Arc<AtomicBool>,
    passes: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut served = passes.load(Ordering::SeqCst);
    while !stop.load(Ordering::SeqCst) {
        let started = lustre::ChangelogReader::start(&name, next, true)
            .and_then(|r| r.fd().map(|fd| (r, fd)));
        let (mut reader, fd) = match started {
            Ok(x) => x,
            Err(e) => {
                let _ = tx.send(Msg::ReaderFailed {
                    mdt,
                    error: format!("{name}: {e}"),
                });
                sleep_unless(&stop, Duration::from_secs(2));
                continue;
            }
        };
        // Reading works (again): an empty message clears a reader error shown in status.
        if tx
            .send(Msg::Records {
                mdt,
                records: Vec::new(),
                end: false,
            })
            .is_err()
        {
            return;
        }
        let mut batch = Vec::new();
        let mut failed = None;
        // Follow until stopped or the reader fails; passes asked by a flush run beside it
        // (the follower's copies of their records are skipped by index).
        while !stop.load(Ordering::SeqCst) {
            if passes.load(Ordering::SeqCst) > served {
                if !send_batch(&tx, mdt, &mut batch) {
                    return;
                }
                match one_pass(mdt, &name, &mut next, &tx) {
                    Ok(()) => served += 1,
                    Err(error) if error == "engine gone" => return,
                    Err(error) => {
                        let _ = tx.send(Msg::ReaderFailed { mdt, error });
                        sleep_unless(&stop, Duration::from_secs(2));
                    }
                }
                continue;
            }
            if !reader.in_buf() && !readable(fd, if batch.is_empty() { 250 } else { 0 }) {
                if !send_batch(&tx, mdt, &mut batch) {
                    return;
                }
                continue;
            }
            match reader.recv() {
                Ok(Some(r)) => {
                    if r.index >= next {
                        next = r.index + 1;
                        batch.push(Change { mdt, record: r });
                    }
                    if batch.len() >= READ_BATCH && !send_batch(&tx, mdt, &mut batch) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(format!("{name}: {e}"));
                    break;
                }
            }
        }
        drop(reader);
        if !batch.is_empty()
            && tx
                .send(Msg::Records {
                    mdt,
                    records: batch,
                    end: false,
                })
                .is_err()
        {
            return;
        }
        if let Some(error) = failed {
            let _ = tx.send(Msg::ReaderFailed { mdt, error });
            sleep_unless(&stop, Duration::from_secs(2));
        }
    }
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() && !stop.load(Ordering::SeqCst) {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
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
    metrics: Arc<Mutex<String>>,
    /// Points for the page's charts.
    history: Arc<Mutex<crate::web::History>>,
    /// When this daemon started, and the changelog records each MDT's reader delivered since:
    /// an MDT that delivers none is the first sign of a forgotten changelog user (Lustre keeps
    /// no changelog without one, so the reader waits in silence).
    started_ms: u64,
    records_seen: std::collections::BTreeMap<usize, u64>,
    /// Changelog passes asked of the readers so far (two per flush: see `Engine::flush_begin`).
    pub passes: Arc<std::sync::atomic::AtomicU64>,
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
            metrics: Arc::default(),
            history: Arc::default(),
            started_ms: now_ms(),
            records_seen: Default::default(),
            passes: Arc::default(),
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

    /// Applies one message (records or a control request).
    pub fn handle(&mut self, msg: Msg) {
        let now = now_ms();
        match msg {
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
            Request::Job { id } => {
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
                self.passes.fetch_add(2, Ordering::SeqCst);
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
                tracing::info!(file = %self.policy_path.display(), "policy reloaded (mount, blob target and control settings need a restart)");
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
    let spec = target_spec(&policy);
    let store = blob::BlobStore::open(&spec).map_err(|e| {
        // Name the credential files involved (never their contents).
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
    })?;
    let log_store = store.with_container(&policy.logging.container)?;
    let sink = blob::LogSink::new(log_store, "", "lustre-blob", LOG_CAPACITY);
    let log_stop = blob::CancellationToken::new();
    let log_flusher = {
        let _in_rt = rt.enter();
        sink.spawn_flusher(LOG_FLUSH, log_stop.clone())
    };
    // The user of each MDT (ids are numbered per MDT): a table must name every MDT read.
    let mut users = Vec::with_capacity(mdts.len());
    for m in &mdts {
        match policy.lustre.changelog_user.for_mdt(m) {
            Some(u) => users.push(u.to_string()),
            None => anyhow::bail!(
                "{}: [lustre] changelog_user has no user for {m} (give every MDT read its id)",
                policy_path.display()
            ),
        }
    }
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
        mdts: mdts.clone(),
        users: users.clone(),
    };
    let state_file = StateFile::new(policy.control.state_dir.join("state.json"));
    let engine = Engine::new(
        ns,
        BlobPort {
            store: store.clone(),
            rt: rt.handle().clone(),
        },
        BlobLog {
            sink,
            rt: rt.handle().clone(),
        },
        cfg,
        mdts.len(),
        Some(state_file),
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
            mdts: mdts.clone(),
            users: users.clone(),
        })
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}",
                policy.control.state_dir.join("state.json").display()
            )
        })?;
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
    d.engine.persist()?;

    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, term.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, term.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;

    let (tx, rx): (SyncSender<Msg>, Receiver<Msg>) = mpsc::sync_channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for (i, (name, next)) in mdts.iter().zip(d.engine.resume_points()).enumerate() {
        let (tx, stop, name) = (tx.clone(), stop.clone(), name.clone());
        let passes = d.passes.clone();
        readers.push(
            std::thread::Builder::new()
                .name(format!("changelog-{i}"))
                .spawn(move || reader_loop(i, name, next, tx, stop, passes))?,
        );
    }
    let ctl_tx = tx.clone();
    let handler: control::Handler = Arc::new(move |req| {
        let (rtx, rrx) = mpsc::channel();
        if ctl_tx.send(Msg::Control { req, reply: rtx }).is_err() {
            return Response::err(crate::exit::UNAVAILABLE, "daemon is shutting down");
        }
        rrx.recv()
            .unwrap_or_else(|_| Response::err(crate::exit::UNAVAILABLE, "daemon is shutting down"))
    });
    drop(tx);
    let server = control::Server::start(&policy.control.socket, handler.clone())?;
    let token = match &policy.control.http_token_file {
        Some(f) => Some(crate::web::read_token(f).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let parts = crate::web::WebParts {
        ask: handler,
        metrics: d.metrics.clone(),
        history: d.history.clone(),
    };
    let http_stop = tokio_util::sync::CancellationToken::new();
    if let Some(addr) = policy.control.metrics {
        crate::web::spawn(rt.handle(), addr, false, None, &parts, http_stop.clone())
            .map_err(|e| anyhow::anyhow!("control.metrics {addr}: {e}"))?;
    }
    if let Some(addr) = policy.control.http {
        let at = crate::web::spawn(rt.handle(), addr, true, token, &parts, http_stop.clone())
            .map_err(|e| anyhow::anyhow!("control.http {addr}: {e}"))?;
        tracing::info!(url = %format!("http://{at}/"), "Blob-integration page");
    }
    tracing::info!(mount = %policy.lustre.mount.display(), mdts = ?mdts, socket = %policy.control.socket.display(), "lustre-blob daemon started");

    let mut last_metrics = 0u64;
    while !term.load(Ordering::SeqCst) {
        if hup.swap(false, Ordering::SeqCst) {
            d.reload();
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => {
                d.handle(m);
                for _ in 0..64 {
                    match rx.try_recv() {
                        Ok(m) => d.handle(m),
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        d.tick()?;
        let now = now_ms();
        if now.saturating_sub(last_metrics) >= 1000 {
            last_metrics = now;
            d.refresh_metrics();
        }
    }
    tracing::info!("stopping: saving state");
    http_stop.cancel();
    stop.store(true, Ordering::SeqCst);
    drop(server);
    // Let readers finish their pass; records they still hand over are applied before the save.
    while let Ok(m) = rx.recv_timeout(Duration::from_millis(200)) {
        if let Msg::Control { reply, .. } = m {
            let _ = reply.send(Response::err(
                crate::exit::UNAVAILABLE,
                "daemon is shutting down",
            ));
        } else {
            d.handle(m);
        }
    }
    for r in readers {
        let _ = r.join();
    }
    d.engine.persist()?;
    // Once more: saves the clear points the last persist reached.
    d.engine.persist()?;
    // The flusher writes what is queued once more, then ends.
    log_stop.cancel();
    let _ = rt.block_on(log_flusher);
    Ok(())
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
        let r = ask(&mut d, Request::Job { id: "nope".into() })
            .try_recv()
            .unwrap();
        assert_eq!(r.code, Some(crate::exit::NOT_FOUND));
    }
}
