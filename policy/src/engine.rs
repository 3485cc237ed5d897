//! The auto-export engine (DESIGN §3–§5): changelog records in, iterations of archive requests
//! out, counters and the changelog clear point kept exactly.
//!
//! * Records are filtered by scope (prefix + exclusions) and deduplicated by FID into the
//!   pending set; our own bookkeeping (SETXATTR of `trusted.lustre_blob`, CL_HSM of archives)
//!   never creates work.
//! * One iteration at a time takes the files whose last change is at least `min_age` old
//!   (files that become due while it runs join it, ahead of its backlog; one it already tried
//!   that is due again makes it end and hand its backlog to the next iteration),
//!   stats them, skips archived-and-clean ones, exports directories and symlinks directly and
//!   sends batched HUA_ARCHIVE requests whose payload names job and iteration.
//! * CL_HSM HE_ARCHIVE records complete files: success counts as exported; ECANCELED, EBUSY and
//!   transient errors re-queue the file for the next iteration (not failed, at most
//!   [`MAX_ATTEMPTS`] times); any other error counts in Files Failed and is logged.
//! * Every piece of work holds the changelog records that announced it; an MDT's changelog is
//!   cleared only below its lowest held record, and only after the state saying so is on disk.
//! * State is saved before archive requests are sent (write-ahead), so a restart finds every
//!   request it may have sent in the in-flight set; one whose CL_HSM never comes is settled by
//!   the stale check from the file's HSM state.

use crate::inflight::{
    look_after_refusal, look_at_stale, needs_archive, request_archives, AfterRefusal, Request,
    Stale,
};
use crate::members::Members;
use crate::model::{Change, FileKind, FileStat};
use crate::ports::{blob_metadata, EventLog, Namespace, NsError, Store};
use crate::scope::{join, DirCache, Scope};
use crate::state::{
    add_hold, CoordinatorPause, Cursor, Failure, Forget, Holds, InFlight, IterCounters, Iteration,
    NsOp, NsOpKind, Pending, Source, State, StateError, StateFile, MAX_RECENT_FAILURES,
    STATE_VERSION,
};
use crate::window::RequestWindow;
use lustre::{Fid, HsmEvent, RecordType};
use lustre_blob_config::{DeleteMode, MetadataMode, RenameMode};

/// A file whose archive ended this many times with an error of [`Verdict::Retry`] fails for good.
/// Errors of the environment ([`Verdict::Environment`]) and changes during the copy never count.
pub const MAX_ATTEMPTS: u32 = 5;
/// Due files join a running iteration at most this often (each look walks the pending set).
const JOIN_INTERVAL_MS: u64 = 50;
/// A file joins a running iteration only once its last change is this old: its CREATE and its
/// CLOSE may come in separate reads, and a copy started between them ends EBUSY, which puts
/// the file back for the *next* iteration (the end of the bulk load it was meant to pass).
const JOIN_SETTLE_MS: u64 = 100;
/// A change that joined the running iteration may go out beyond the request bound while it was
/// read this recently ([`Engine::free_slots`]): a trickle, not a backlog read at start-up.
const RECENT_JOIN_MS: u64 = 2_000;
/// The backlog of an iteration is refilled in batches of the request bound divided by this
/// ([`Engine::free_slots`]).
const REFILL_DIVISOR: usize = 8;
/// How long after `r` was written (`cr_time`, the MDS's clock) the daemon reads it at `now`; 0
/// for a record without a time or from the future (clocks apart).
fn reported_after_ms(r: &lustre::ChangelogRecord, now: u64) -> u64 {
    let at_ms = r.time_sec * 1_000 + u64::from(r.time_nsec) / 1_000_000;
    if r.time_sec == 0 {
        0
    } else {
        now.saturating_sub(at_ms)
    }
}

/// Free request slots ([`Engine::free_slots`]).
struct Slots {
    /// Within the bound.
    within: usize,
    /// For a change that joined recently: beyond the bound, within limits of its own.
    beyond: usize,
    /// For the backlog: `within` once it holds a batch, else 0.
    backlog: usize,
}

/// What a pending file does while an iteration runs ([`Engine::turn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// It joins the iteration (a new change).
    Join,
    /// The iteration tried it already: it hands over to the next one ([`Engine::hand_over`]).
    HandOver,
    /// It waits: for its turn in the iteration, or for its request in flight to settle.
    Wait,
}

/// First back-off after a try that did not export a file; it doubles with every further try.
const BACKOFF_BASE_MS: u64 = 1_000;
/// Pause before the next iteration after the file system failed to answer.
const RETRY_PAUSE_MS: u64 = 1_000;
/// How long after a refused changelog_clear it is tried again.
pub const CLEAR_RETRY: std::time::Duration = std::time::Duration::from_secs(10);
/// Bound of the out-of-scope FID cache.
const OUT_OF_SCOPE_CAP: usize = 1 << 20;

/// What the engine needs from the policy file, plus internal tunables.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// HSM archive id the requests go to.
    pub archive_id: u32,
    /// What the export covers (prefix and exclusions).
    pub scope: Scope,
    /// A file is exported only once its last change is this old.
    pub min_age_ms: u64,
    /// Whether metadata changes (chmod, chown, utime) update blobs.
    pub metadata: MetadataMode,
    /// What a delete does to the blob.
    pub on_delete: DeleteMode,
    /// What a rename does to the blobs.
    pub on_rename: RenameMode,
    /// Files per HSM request.
    pub batch_size: usize,
    /// In-flight files without a CL_HSM for this long are checked against their HSM state.
    pub stale_after_ms: u64,
    /// Files looked at per [`Engine::step`] (keeps the engine responsive during big iterations).
    pub discover_chunk: usize,
    /// The auto-export job's id, named in request payloads and log entries.
    pub job_id: String,
    /// Longest back-off between two tries of a file the store could not take (it doubles from
    /// one second up to this).
    pub retry_max_ms: u64,
    /// Archive requests handed to the coordinator and not finished yet, at most (a small
    /// multiple of its `hsm.max_requests`): the rest of an iteration waits in the engine, not
    /// in the coordinator's catalog, which Lustre walks under a lock for every lookup. The hard
    /// cap of the adaptive bound ([`crate::window`]).
    pub max_in_flight: usize,
    /// Requests outstanding are kept to about this many ms of work at the measured completion
    /// rate, so a new change waits about this long behind them ([`crate::window`]); 0: always
    /// `max_in_flight`.
    pub queue_target_ms: u64,
    /// Requests outstanding whatever the measured rate (at most `max_in_flight`): enough to keep
    /// the copytools' slots busy.
    pub min_in_flight: usize,
    /// An iteration whose requests make no progress (no completion, no new request) for this
    /// long ends; its stuck requests are carried into the next iteration.
    pub iteration_deadline_ms: u64,
}

/// Default of [`EngineConfig::iteration_deadline_ms`].
pub const DEFAULT_ITERATION_DEADLINE_MS: u64 = 600_000;

/// Default of [`EngineConfig::max_in_flight`]. The daemon refills its requests only as their
/// CL_HSM records arrive, in the changelog reader's passes a second apart, so the cap is also
/// about the most files a second an export can reach: 256 held small files to ~255/s where the
/// store took 450-700/s (BENCHMARKS.md, "small files").
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// Default of [`EngineConfig::queue_target_ms`].
pub const DEFAULT_QUEUE_TARGET_MS: u64 = crate::window::DEFAULT_QUEUE_TARGET_MS;

/// Default of [`EngineConfig::min_in_flight`].
pub const DEFAULT_MIN_IN_FLIGHT: usize = crate::window::DEFAULT_MIN_IN_FLIGHT;

/// Default of [`EngineConfig::retry_max_ms`]: an outage costs at most this once it is over.
pub const DEFAULT_RETRY_MAX_MS: u64 = 30_000;

/// Answer to a finished `flush`: every failure standing when it completed (at most
/// [`MAX_RECENT_FAILURES`] listed; `failed` counts them all), whenever it was recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlushOutcome {
    /// The failures standing (at most [`MAX_RECENT_FAILURES`]).
    pub failures: Vec<Failure>,
    /// How many stand in all.
    #[serde(default)]
    pub failed: u64,
}

#[derive(Debug)]
struct FlushWait {
    id: u64,
    /// End-of-changelog passes each MDT must complete before the barrier is known (two more
    /// than at the ask: the first may have started before it).
    need_passes: Vec<u64>,
    barrier: Option<Vec<u64>>,
    done: Option<FlushOutcome>,
}

/// Errors that stop the engine (state cannot be saved).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state could not be saved.
    #[error(transparent)]
    State(#[from] StateError),
}

/// What the errno of a finished archive means for its file. A failure is final only when
/// another try cannot help: the environment (store unreachable, throttled, container missing,
/// credentials refused, agent gone) is waited out however long it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// EBUSY: the file changed during its copy; export it again (not a failure).
    Changed,
    /// Not the file's fault: retried with back-off until it succeeds.
    Environment,
    /// ENOENT/ESTALE (2.15/2.16): the file is gone, unless its FID still resolves.
    Gone,
    /// Unknown or local errors (EIO, ...): retried [`MAX_ATTEMPTS`] times, then final.
    Retry,
    /// Retrying cannot help: a name the store cannot hold, a conflict the policy keeps, a file
    /// the coordinator refuses (NOARCHIVE, another archive id).
    Final,
}

/// Classifies an archive errno (see [`Verdict`]). The copytool reports a missing container as
/// ENOMEDIUM and refused credentials as EKEYREJECTED, so both are told from the file's own errors.
pub fn verdict(errno: i32) -> Verdict {
    match errno {
        libc::EBUSY => Verdict::Changed,
        libc::ECANCELED
        | libc::ETIMEDOUT
        | libc::EAGAIN
        | libc::ECONNRESET
        | libc::ECONNREFUSED
        | libc::ECONNABORTED
        | libc::EHOSTUNREACH
        | libc::EHOSTDOWN
        | libc::ENETUNREACH
        | libc::ENETDOWN
        | libc::ENETRESET
        | libc::ENOTCONN
        | libc::EINTR
        | libc::ESHUTDOWN
        // No such device: the MDT is not there (lustre-sim while its MDS restarts; a client
        // whose MDT is not set up), never the file's doing.
        | libc::ENODEV
        | libc::ENOMEDIUM
        | libc::EKEYREJECTED
        | libc::EKEYEXPIRED
        | libc::EKEYREVOKED
        | libc::EINPROGRESS
        | libc::EALREADY => Verdict::Environment,
        libc::ENOENT | libc::ESTALE => Verdict::Gone,
        libc::EINVAL
        | libc::EEXIST
        | libc::ENAMETOOLONG
        | libc::EILSEQ
        | libc::EFBIG
        | libc::EPERM
        | libc::EACCES
        | libc::EOPNOTSUPP
        | libc::EISDIR
        | libc::ENOTDIR => Verdict::Final,
        _ => Verdict::Retry,
    }
}

/// Whether a file-system call that failed with `errno` may work later (the MDS did not answer).
pub fn is_requeue_errno(errno: i32) -> bool {
    matches!(verdict(errno), Verdict::Environment | Verdict::Changed)
}

/// Back-off before try `retries + 1`: one second, doubling, at most `max_ms`.
pub fn backoff_ms(retries: u32, max_ms: u64) -> u64 {
    BACKOFF_BASE_MS
        .saturating_mul(1u64 << retries.min(20))
        .min(max_ms.max(BACKOFF_BASE_MS))
}

/// Why a file goes back to the pending set, and what it keeps.
struct Requeue {
    holds: Holds,
    first_change_ms: u64,
    attempts: u32,
    retries: u32,
    /// Wait this long before the next try (0: at the next iteration).
    delay_ms: u64,
    error: Option<String>,
}

/// The text of a positive errno with its number: `Operation not permitted (errno 1)`.
pub fn errno_text(errno: i32) -> String {
    format!(
        "{} (errno {errno})",
        std::io::Error::from_raw_os_error(errno)
    )
}

/// Now, in Unix ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The engine. Single-threaded: the daemon feeds it records and calls [`Engine::step`].
pub struct Engine<N: Namespace, S: Store, L: EventLog> {
    ns: N,
    store: S,
    log: L,
    cfg: EngineConfig,
    dirs: DirCache,
    /// FIDs found out of scope: their further records cost no fid2path. Cleared by renames
    /// (a path, hence the scope, may change) and when it grows past its bound.
    out_of_scope: std::collections::HashSet<Fid>,
    st: State,
    file: Option<StateFile>,
    changed: bool,
    end_passes: Vec<u64>,
    flushes: Vec<FlushWait>,
    next_flush: u64,
    last_stale_check_ms: u64,
    /// CL_HSM archive completions of files the engine did not request (a manual export job's),
    /// collected while `collect_foreign` is set: (FID, errno).
    foreign_hsm: Vec<(Fid, i32)>,
    collect_foreign: bool,
    last_save_ms: u64,
    /// No new iteration before this (after the file system failed to answer).
    retry_after_ms: u64,
    /// Per MDT: when changelog_clear was last refused; it is tried again `clear_retry` later
    /// (the engine persists every round; a clear the MDT keeps refusing must not become a
    /// warning every 100 ms).
    clear_failed_at: Vec<Option<std::time::Instant>>,
    clear_retry: std::time::Duration,
    /// Metadata updates wait until then after the store was unavailable.
    meta_retry_at_ms: u64,
    meta_retries: u32,
    /// Bumped whenever an in-flight request settles or a request is sent (progress).
    progress_ticks: u64,
    seen_ticks: u64,
    last_progress_ms: u64,
    /// When due files last joined the running iteration ([`JOIN_INTERVAL_MS`]).
    last_join_ms: u64,
    /// Every file the running iteration took or was joined by, and whether it tried it yet: one
    /// that changes again while it runs waits for the next one (a file counts once per
    /// iteration), and one tried already makes the iteration hand over ([`Engine::hand_over`]).
    /// Not saved: after a restart it holds what the saved iteration still has to do.
    iteration_members: Members,
    /// Per MDT: changelog_clear answered ENOENT (the user is not registered there).
    unknown_user: std::collections::BTreeMap<usize, String>,
    /// Per MDT: files created (CREATE records) while no CLOSE was ever seen, and the warning
    /// given about the mask (item 7: the changelog mask is the admin's).
    creates_without_close: Vec<Option<u64>>,
    mask_warnings: std::collections::BTreeMap<usize, String>,
    /// Files of the running iteration (taken from the pending set, not discovered yet) that a
    /// record read since made unsure of what their entry knows ([`Pending::forget`]): applied
    /// when the file is discovered, and to the iteration's entries at the next save.
    unsure: std::collections::HashMap<Fid, Forget>,
    /// The completion rate of our requests and the bound on those outstanding it gives.
    window: RequestWindow,
    /// How many files at the front of the running iteration's `to_discover` joined it while it
    /// ran (`join_running`): they are requested as soon as one slot frees, not in a batch.
    fresh_ahead: usize,
    /// Files requested beyond the bound as changes that joined the running iteration (pruned to
    /// those still in flight): how far the joiners are out beyond it ([`Engine::free_slots`]).
    /// Not saved.
    joined_out: std::collections::HashSet<Fid>,
}

/// CREATE records on an MDT without a single CLOSE before the daemon warns about the mask (a
/// file created for writing gets a CLOSE when closed: `mdd_close`).
pub const CREATES_WITHOUT_CLOSE_WARN: u64 = 64;

impl<N: Namespace, S: Store, L: EventLog> Engine<N, S, L> {
    /// Builds the engine for `mdts` changelogs, resuming from `file` when it holds a state.
    pub fn new(
        ns: N,
        store: S,
        log: L,
        cfg: EngineConfig,
        mdts: usize,
        file: Option<StateFile>,
        enabled: bool,
    ) -> Result<Self, EngineError> {
        let loaded = match &file {
            Some(f) => f.load::<State>()?,
            None => None,
        };
        let mut st = loaded.unwrap_or_else(|| State {
            version: STATE_VERSION,
            autoexport_enabled: enabled,
            next_iteration: 1,
            ..State::default()
        });
        if st.cursors.len() < mdts {
            st.cursors.resize(mdts, Cursor::default());
        }
        if st.next_iteration == 0 {
            st.next_iteration = 1;
        }
        let iteration_members = match &st.iteration {
            Some(it) => it
                .to_discover
                .iter()
                .map(|(f, _)| (*f, false))
                .chain(st.inflight.keys().map(|f| (*f, true)))
                .collect(),
            None => Members::default(),
        };
        Ok(Engine {
            ns,
            store,
            log,
            cfg,
            dirs: DirCache::new(1 << 20),
            out_of_scope: std::collections::HashSet::new(),
            st,
            file,
            changed: true,
            end_passes: vec![0; mdts],
            flushes: Vec::new(),
            next_flush: 1,
            last_stale_check_ms: 0,
            foreign_hsm: Vec::new(),
            collect_foreign: false,
            last_save_ms: 0,
            retry_after_ms: 0,
            clear_failed_at: vec![None; mdts],
            clear_retry: CLEAR_RETRY,
            meta_retry_at_ms: 0,
            meta_retries: 0,
            progress_ticks: 0,
            seen_ticks: 0,
            last_progress_ms: 0,
            last_join_ms: 0,
            iteration_members,
            unknown_user: Default::default(),
            creates_without_close: vec![Some(0); mdts],
            mask_warnings: Default::default(),
            unsure: Default::default(),
            window: RequestWindow::default(),
            fresh_ahead: 0,
            joined_out: std::collections::HashSet::new(),
        })
    }

    /// Ties the state to the changelogs it counts in: a new state (or one from before this was
    /// recorded) takes `source`; a state kept for another changelog user or other MDTs is refused
    /// with a reason, before anything is read or cleared. More MDTs than before (a file system
    /// that grew) is the same source.
    pub fn bind_source(&mut self, source: Source) -> Result<(), String> {
        if let Some(old) = &self.st.source {
            // The same MDTs (or more: a grown file system), each read with the same user.
            let same = old.mdts.len() <= source.mdts.len()
                && old.mdts.iter().zip(&source.mdts).all(|(a, b)| a == b)
                && (0..old.mdts.len()).all(|i| old.user_of(i) == source.user_of(i));
            if !same {
                return Err(format!(
                    "the state was kept for changelog user {} on {}, but the policy reads user {} on {}: \
                     its cursors and pending files mean nothing here; give [control] state_dir a new \
                     directory (or move this one away) to start afresh",
                    old.changelog_user,
                    old.mdts.join(","),
                    source.changelog_user,
                    source.mdts.join(",")
                ));
            }
        }
        if self.st.source.as_ref() != Some(&source) {
            self.st.source = Some(source);
            self.changed = true;
        }
        Ok(())
    }

    /// The state as it stands (saved or not).
    pub fn state(&self) -> &State {
        &self.st
    }

    /// Asks each MDT whether it knows our changelog user, where that can be told without
    /// clearing anything: a clear up to the point already cleared, or to just below the first
    /// record the MDT still keeps (`first_kept`), changes nothing for a known user
    /// (`mdd_changelog_clear` answers EINVAL when the user is already past it) and fails with
    /// ENOENT for a user the MDT does not have. An MDT with nothing cleared and its changelog
    /// starting at record 1 cannot be asked (a clear to 0 means "everything").
    pub fn check_users(&mut self, first_kept: &[Option<u64>]) -> Result<(), (usize, NsError)> {
        for m in 0..self.st.cursors.len() {
            let cleared = self.st.cursors[m].cleared;
            let end = if cleared > 0 {
                cleared
            } else {
                first_kept
                    .get(m)
                    .copied()
                    .flatten()
                    .map_or(0, |f| f.saturating_sub(1))
            };
            if end == 0 {
                continue;
            }
            match self.ns.clear_changelog(m, end) {
                Err(e) if e.errno == libc::ENOENT => return Err((m, e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Counts CREATE records per MDT until the first CLOSE; warns once when files keep being
    /// created and no CLOSE ever comes: the MDT's changelog mask lacks CLOSE.
    fn watch_mask(&mut self, c: &Change) {
        let Some(slot) = self.creates_without_close.get_mut(c.mdt) else {
            return;
        };
        let Some(n) = slot.as_mut() else {
            return; // a CLOSE was seen: the mask has it
        };
        match c.record.rtype {
            RecordType::Close => *slot = None,
            RecordType::Create => {
                *n += 1;
                if *n == CREATES_WITHOUT_CLOSE_WARN {
                    let msg = format!(
                        "MDT {}: {n} files created and no CLOSE record: the changelog mask lacks CLOSE, \
                         so written files are not exported; on the MDS: lctl set_param mdd.*.changelog_mask=+CLOSE+HSM",
                        c.mdt
                    );
                    tracing::warn!(mdt = c.mdt, "{msg}");
                    self.mask_warnings.insert(c.mdt, msg);
                }
            }
            _ => {}
        }
    }

    /// How long a refused `changelog_clear` waits before it is sent again (default
    /// [`CLEAR_RETRY`]): a test or a tool that must see the retry sets it shorter.
    pub fn set_clear_retry(&mut self, pause: std::time::Duration) {
        self.clear_retry = pause;
    }

    /// The file system the engine works on (jobs share it).
    pub fn ns(&self) -> &N {
        &self.ns
    }

    /// The blob container the engine exports to (jobs share it).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The logging container (jobs log their failures there too).
    pub fn log(&mut self) -> &mut L {
        &mut self.log
    }

    /// While on, CL_HSM archive ends of files the engine did not request (a manual export
    /// job's) are kept for [`Engine::take_foreign_hsm`]; turning it off drops those kept.
    pub fn collect_foreign_hsm(&mut self, on: bool) {
        self.collect_foreign = on;
        if !on {
            self.foreign_hsm.clear();
        }
    }

    /// The archive ends of files the engine did not request, since the last call: (FID, errno).
    pub fn take_foreign_hsm(&mut self) -> Vec<(Fid, i32)> {
        std::mem::take(&mut self.foreign_hsm)
    }

    /// Warnings about MDTs whose records show the changelog mask lacks what the export needs.
    pub fn mask_warnings(&self) -> &std::collections::BTreeMap<usize, String> {
        &self.mask_warnings
    }

    /// MDTs whose changelog_clear said our user does not exist there (ENOENT), with the error.
    pub fn unknown_users(&self) -> &std::collections::BTreeMap<usize, String> {
        &self.unknown_user
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Our archive requests outstanding that count against the bound: sent, not ended, not
    /// carried from an earlier iteration.
    fn active_requests(&self) -> usize {
        self.st.inflight.values().filter(|i| !i.carried).count()
    }

    /// Archive requests the engine may have outstanding at `now`: about `queue_target_ms` of
    /// work at the measured completion rate, within `min_in_flight..=max_in_flight`
    /// ([`crate::window`]).
    pub fn in_flight_limit(&self, now: u64) -> usize {
        self.window.limit(
            now,
            self.cfg.queue_target_ms,
            self.cfg.min_in_flight,
            self.cfg.max_in_flight,
        )
    }

    /// Free request slots the iteration may fill at `now`.
    ///
    /// The backlog waits until at least an eighth of the bound is free: every send saves the
    /// whole state first (write-ahead), so it is refilled in batches, not one request per
    /// completion (a bulk export at 50-130 files/s saved the state 40-60 times a second, each a
    /// full JSON of the pending set and two fsyncs); below `min_in_flight` outstanding the
    /// copytools' slots wait, so then any free slot is filled.
    ///
    /// A change that joined goes out with any free slot. One read in the last
    /// [`RECENT_JOIN_MS`] goes out beyond the bound too, while fewer than `min_in_flight` of the
    /// joiners sent beyond it are still out, and never beyond `max_in_flight` (the admin's hard
    /// cap). Holding it back would not let it pass what is queued already; it would only wait
    /// longer: ends and new changes come in the same pass of the changelog reader (a second
    /// apart in Lustre's follow mode), a change joins only once it has settled
    /// ([`JOIN_SETTLE_MS`]), and by then the backlog has taken the slots the pass freed, or the
    /// bound has fallen below what is out (the store slowed down); either way the change waited
    /// for a later pass's ends (close() -> commit p50 1.4-2.4 s beside a bulk export with the
    /// defaults). The excess is bounded, so a bulk load written while an iteration runs (it
    /// joins too) still goes out at about the pace of the bound, and a backlog read in batches
    /// after the first iteration started (it joins too, at once) does not use up the excess.
    fn free_slots(&self, now: u64) -> Slots {
        let active = self.active_requests();
        let limit = self.in_flight_limit(now);
        let within = limit.saturating_sub(active);
        let batch = if active < self.cfg.min_in_flight.min(limit) {
            1
        } else {
            (limit / REFILL_DIVISOR).max(1)
        };
        let joiners_out = self
            .joined_out
            .iter()
            .filter(|f| self.st.inflight.contains_key(f))
            .count();
        let beyond = within
            .max(self.cfg.min_in_flight.max(1).saturating_sub(joiners_out))
            .min(self.cfg.max_in_flight.saturating_sub(active));
        Slots {
            within,
            beyond,
            backlog: if within >= batch { within } else { 0 },
        }
    }

    /// How many requests [`Engine::discover_some`] may have taken when it comes to the entry at
    /// the front of the running iteration: a change that joined recently may go beyond the
    /// bound, one that joined earlier takes any free slot within it, the backlog a batch.
    fn front_cap(&self, now: u64, slots: &Slots) -> usize {
        if self.fresh_ahead == 0 {
            return slots.backlog;
        }
        let recent = self
            .st
            .iteration
            .as_ref()
            .and_then(|it| it.to_discover.front())
            .is_some_and(|(_, p)| now.saturating_sub(p.last_change_ms) <= RECENT_JOIN_MS);
        if recent {
            slots.beyond
        } else {
            slots.within
        }
    }

    /// When the bound, growing with the ends that pile up unreported between two passes of the
    /// changelog reader ([`crate::window`]), will let [`Engine::discover_some`] request a file
    /// again, if it does before the next report.
    fn bound_grows_enough(&self, now: u64) -> Option<u64> {
        let active = self.active_requests();
        let want = if self.fresh_ahead > 0 || active < self.cfg.min_in_flight {
            active + 1
        } else {
            // A batch: an eighth of the bound free, i.e. the bound at 8/7 of what is out.
            (active * REFILL_DIVISOR).div_ceil(REFILL_DIVISOR - 1)
        };
        self.window
            .reaches(now, self.cfg.queue_target_ms, self.cfg.max_in_flight, want)
    }

    /// Whether [`Engine::discover_some`] would request a file now.
    fn may_request(&self, now: u64) -> bool {
        self.front_cap(now, &self.free_slots(now)) > 0
    }

    /// Replaces the policy-derived settings (SIGHUP).
    pub fn reconfigure(&mut self, cfg: EngineConfig) {
        self.cfg = cfg;
        self.dirs.invalidate_all();
        self.out_of_scope.clear();
    }

    /// Where each MDT's reader resumes (next record index to read).
    pub fn resume_points(&self) -> Vec<u64> {
        self.st.cursors.iter().map(|c| c.last_read + 1).collect()
    }

    /// Switches the auto-export on or off (records keep being read either way).
    pub fn set_enabled(&mut self, on: bool) {
        if self.st.autoexport_enabled != on {
            self.st.autoexport_enabled = on;
            self.changed = true;
        }
    }

    /// Whether the auto-export is on.
    pub fn enabled(&self) -> bool {
        self.st.autoexport_enabled
    }

    /// Puts the file at `rel` into the pending set as if the changelog had announced a change
    /// (`verify --requeue`): it is exported at the next iteration if it is in scope.
    pub fn requeue_path(&mut self, rel: &[u8], now: u64) -> Result<(), String> {
        if !self.cfg.scope.covers(rel) {
            return Err("outside the export path".into());
        }
        let fid = self.ns.path2fid(rel).map_err(|e| e.to_string())?;
        let p = self.st.pending.entry(fid).or_insert(Pending {
            holds: Vec::new(),
            last_change_ms: now,
            first_change_ms: now,
            ..Pending::default()
        });
        p.retry_at_ms = 0;
        self.changed = true;
        Ok(())
    }

    // ---------------------------------------------------------------- changelog records

    /// Feeds records of MDT `mdt` in index order; `end_of_pass` says the reader reached the end
    /// of the changelog after them.
    pub fn on_records(&mut self, mdt: usize, records: &[Change], end_of_pass: bool, now: u64) {
        for r in records {
            self.on_change(r, now);
        }
        if end_of_pass {
            if let Some(p) = self.end_passes.get_mut(mdt) {
                *p += 1;
            }
        }
    }

    /// Processes one record (the hot path: one hash lookup for a file already pending).
    pub fn on_change(&mut self, c: &Change, now: u64) {
        let Some(cur) = self.st.cursors.get_mut(c.mdt) else {
            return;
        };
        if c.record.index <= cur.last_read {
            return; // replayed after a restart: already applied
        }
        cur.last_read = c.record.index;
        self.changed = true;
        self.watch_mask(c);
        let enabled = self.st.autoexport_enabled;
        match c.record.rtype {
            RecordType::Hsm => self.on_hsm(c, now),
            _ if !enabled => {}
            // CL_MTIME: a write whose CLOSE is still to come, or a utime that changed nothing
            // but the mtime (the file stays archived and clean, so the export skips it): with
            // metadata sync the blob's modtime follows too. Lustre records one MTIME/CTIME per
            // cached object after its first data record (mdd_changelog_data_store), so this may
            // be the only record a utime leaves.
            RecordType::Mtime => {
                self.on_content(c, now);
                if self.cfg.metadata == MetadataMode::Sync {
                    self.on_metadata(c);
                }
            }
            RecordType::Create
            | RecordType::Close
            | RecordType::Trunc
            | RecordType::Layout
            | RecordType::Hardlink
            | RecordType::Softlink
            | RecordType::Mkdir => self.on_content(c, now),
            RecordType::Setattr | RecordType::Ctime if self.cfg.metadata == MetadataMode::Sync => {
                self.on_metadata(c)
            }
            RecordType::Unlink | RecordType::Rmdir => self.on_unlink(c, now),
            RecordType::Rename => self.on_rename(c, now),
            // SETXATTR: ours (trusted.lustre_blob) or user xattrs, which blobs do not carry;
            // MARK, MKNOD, ATIME, OPEN, MIGRATE, ...: nothing a blob holds.
            _ => {}
        }
    }

    fn on_content(&mut self, c: &Change, now: u64) {
        let r = &c.record;
        let fid = r.tfid;
        if r.rtype == RecordType::Hardlink {
            // A second name: which one fid2path gives first (the one the scope is decided on) is
            // the MDT's to say.
            self.forget_seen(&fid, Forget::PATH);
        }
        tracing::trace!(fid = %fid, record = r.index, kind = ?r.rtype, "change read");
        if let Some(p) = self.st.pending.get_mut(&fid) {
            p.last_change_ms = now;
            add_hold(&mut p.holds, c.mdt, r.index);
            if r.rtype == RecordType::Close && p.created {
                p.closed = true;
            }
            return;
        }
        if self.out_of_scope.contains(&fid) {
            return;
        }
        let path = match r.rtype {
            RecordType::Create
            | RecordType::Mkdir
            | RecordType::Softlink
            | RecordType::Hardlink
                if !r.pfid.is_zero() && !r.name.is_empty() =>
            {
                self.dir_path(&r.pfid).map(|d| join(&d, &r.name))
            }
            _ => None,
        };
        let path = match path {
            Some(p) => Some(p),
            None => match self.ns.fid2path(&fid) {
                Ok(p) => p,
                Err(e) => {
                    // Cannot tell now (MDS busy or restarting): keep it; discovery re-checks
                    // the scope with the path it resolves then.
                    tracing::debug!(fid = %fid, error = %e, "fid2path failed; kept pending");
                    self.st
                        .pending
                        .insert(fid, Pending::new(c.mdt, r.index, now));
                    return;
                }
            },
        };
        let Some(path) = path else { return }; // gone already: nothing to export
        if r.rtype == RecordType::Mkdir {
            self.dirs.insert(fid, path.clone());
        }
        if !self.cfg.scope.covers(&path) {
            if self.out_of_scope.len() >= OUT_OF_SCOPE_CAP {
                self.out_of_scope.clear();
            }
            self.out_of_scope.insert(fid);
            return;
        }
        let mut p = Pending::new(c.mdt, r.index, now);
        // Born under the daemon's eyes: the path its record gave (confirmed at discovery) and,
        // for a file, empty HSM flags until a CL_HSM of it says otherwise. A HARDLINK names a
        // file that already had a name, and flags of its own: nothing is kept.
        if matches!(
            r.rtype,
            RecordType::Create | RecordType::Mkdir | RecordType::Softlink
        ) {
            p.known_path = String::from_utf8(path).ok();
            p.created = r.rtype == RecordType::Create;
        }
        self.st.pending.insert(fid, p);
    }

    /// A record that may have changed what `fid`'s entry knows from its creation: its pending
    /// entry forgets it, and so does its entry in the running iteration (noted in `unsure`:
    /// looking it up in the iteration's queue would cost a walk of it per record).
    fn forget_seen(&mut self, fid: &Fid, what: Forget) {
        if let Some(p) = self.st.pending.get_mut(fid) {
            p.forget(what);
        }
        if self.iteration_members.contains(fid) && !self.iteration_members.was_tried(fid) {
            let w = self.unsure.entry(*fid).or_default();
            *w = w.and(what);
        }
    }

    /// Applies `unsure` to the entries it is about (before a save, so a restart does not find
    /// again what a record already made unsure).
    fn apply_unsure(&mut self) {
        if self.unsure.is_empty() {
            return;
        }
        let unsure = std::mem::take(&mut self.unsure);
        for (fid, what) in &unsure {
            if let Some(p) = self.st.pending.get_mut(fid) {
                p.forget(*what);
            }
        }
        if let Some(it) = self.st.iteration.as_mut() {
            for (fid, p) in it.to_discover.iter_mut() {
                if let Some(what) = unsure.get(fid) {
                    p.forget(*what);
                }
            }
        }
    }

    fn on_metadata(&mut self, c: &Change) {
        let (fid, index) = (c.record.tfid, c.record.index);
        if let Some(h) = self.st.meta_pending.get_mut(&fid) {
            add_hold(h, c.mdt, index);
            return;
        }
        match self.ns.fid2path(&fid) {
            Ok(Some(path)) if self.cfg.scope.covers(&path) => {
                self.st.meta_pending.insert(fid, vec![(c.mdt, index)]);
            }
            _ => {}
        }
    }

    fn on_unlink(&mut self, c: &Change, now: u64) {
        let r = &c.record;
        // One of its names went, maybe the one its entry knows (the last: fid2path says gone).
        self.forget_seen(&r.tfid, Forget::PATH);
        let is_dir = r.rtype == RecordType::Rmdir;
        if is_dir {
            self.dirs.remove(&r.tfid);
        }
        if r.is_last_unlink() {
            self.resolved(&r.tfid); // gone: its failure no longer stands
        }
        if self.cfg.on_delete != DeleteMode::Delete || !r.is_last_unlink() {
            return;
        }
        let Some(parent) = self.dir_path(&r.pfid) else {
            return;
        };
        let path = join(&parent, &r.name);
        if !self.cfg.scope.covers(&path) {
            return;
        }
        let op = NsOpKind::Delete {
            path: lossy(&path),
            dir: is_dir,
        };
        self.st.ns_ops.push_back(NsOp::new(c.mdt, r.index, now, op));
    }

    fn on_rename(&mut self, c: &Change, now: u64) {
        let r = &c.record;
        let Some(ext) = r.renamed() else {
            return;
        };
        // Old path from the cache as it was before the rename; new path from the new parent.
        let old = self.dir_path(&ext.spfid).map(|d| join(&d, &ext.old_name));
        let renamed_dir = self.dirs.get(&ext.sfid).is_some();
        self.dirs.invalidate_all();
        self.out_of_scope.clear();
        let new = self.dir_path(&r.pfid).map(|d| join(&d, &r.name));
        if renamed_dir {
            if let Some(n) = &new {
                self.dirs.insert(ext.sfid, n.clone());
            }
        }
        // The renamed entry's known path becomes its new one (confirmed at discovery like any);
        // an overwritten target lost its name. Entries below a renamed directory keep paths that
        // no longer lead to them: discovery finds that (`at_known_path`) and asks fid2path.
        self.forget_seen(&ext.sfid, Forget::PATH);
        if let (Some(p), Some(n)) = (self.st.pending.get_mut(&ext.sfid), &new) {
            p.known_path = std::str::from_utf8(n).ok().map(str::to_string);
        }
        if !r.tfid.is_zero() {
            self.forget_seen(&r.tfid, Forget::PATH);
        }
        if self.cfg.on_rename != RenameMode::Move {
            return;
        }
        if let (Some(old), Some(new)) = (old, new) {
            if self.cfg.scope.covers(&old) && self.cfg.scope.covers(&new) {
                let op = NsOpKind::Move {
                    from: lossy(&old),
                    to: lossy(&new),
                };
                self.st.ns_ops.push_back(NsOp::new(c.mdt, r.index, now, op));
            }
        }
    }

    fn on_hsm(&mut self, c: &Change, now: u64) {
        let Some(ev) = c.record.hsm() else { return };
        let fid = c.record.tfid;
        // Whatever the event (archive, restore, state, release, remove), the flags may have
        // changed: discovery asks for them.
        self.forget_seen(&fid, Forget::HSM);
        match ev.event {
            HsmEvent::Archive => {
                if let Some(inf) = self.st.inflight.remove(&fid) {
                    self.window
                        .completed(now, reported_after_ms(&c.record, now));
                    self.settle(fid, inf, i32::from(ev.error), now);
                } else if self.collect_foreign {
                    self.foreign_hsm.push((fid, i32::from(ev.error)));
                }
            }
            // The MDT marked an archived file dirty: it changed after its export.
            HsmEvent::State if ev.dirty && self.st.autoexport_enabled => self.on_content(c, now),
            _ => {}
        }
    }

    /// Path of a directory FID, through the cache.
    fn dir_path(&mut self, fid: &Fid) -> Option<Vec<u8>> {
        if let Some(p) = self.dirs.get(fid) {
            return Some(p.to_vec());
        }
        let p = self.ns.fid2path(fid).ok().flatten()?;
        self.dirs.insert(*fid, p.clone());
        Some(p)
    }

    // ---------------------------------------------------------------- iterations

    /// Advances the engine: resolves flush barriers, starts an iteration when one is due,
    /// discovers a chunk of files, checks stale in-flight files, finishes the iteration.
    pub fn step(&mut self, now: u64) -> Result<(), EngineError> {
        self.resolve_barriers();
        // Twice: when an iteration finishes, the next one starts right away with what changed
        // (or was re-queued) meanwhile.
        for _ in 0..2 {
            if self.st.iteration.is_none() && self.st.autoexport_enabled {
                self.maybe_start(now);
            }
            if self.st.iteration.is_none() {
                break;
            }
            if self.st.autoexport_enabled {
                self.join_running(now);
            }
            self.discover_some(now)?;
            if now.saturating_sub(self.last_stale_check_ms) >= self.cfg.stale_after_ms / 2 {
                self.last_stale_check_ms = now;
                self.stale_check(now);
            }
            self.check_deadline(now);
            self.maybe_finish(now);
            if self.st.iteration.is_some() {
                break;
            }
        }
        self.settle_flushes(now);
        Ok(())
    }

    /// When [`Engine::step`] next has work that no record brings: the earliest timer it keeps
    /// (a pending file coming of age or out of its back-off, a paused coordinator or file system,
    /// the stale check and the deadline of a running iteration, fresh files joining it), or
    /// `now` while the running iteration has files left to request and room for them. `None`:
    /// nothing until the next record. The daemon waits for records until then (issue 14 item 6:
    /// a computed timeout, no fixed tick), so every condition `step` tests on `now` has its time
    /// here; a time already past that `step` would not act on is never returned.
    pub fn next_due(&self, now: u64) -> Option<u64> {
        let mut due: Option<u64> = None;
        let mut at = |t: u64| due = Some(due.map_or(t, |d: u64| d.min(t)));
        let paused_until = self
            .st
            .coordinator_pause
            .as_ref()
            .map_or(0, |p| p.until_ms)
            .max(now);
        match &self.st.iteration {
            None if self.st.autoexport_enabled => {
                // `maybe_start`: the first due pending file, namespace operation or metadata
                // update starts an iteration, not before the file system pause ends.
                let mut start: Option<u64> = None;
                let mut first = |t: u64| start = Some(start.map_or(t, |s: u64| s.min(t)));
                for p in self.st.pending.values() {
                    let of_age = if self.forced_by_flush(&p.holds) {
                        0
                    } else {
                        p.last_change_ms.saturating_add(self.cfg.min_age_ms)
                    };
                    first(p.retry_at_ms.max(of_age));
                }
                if let Some(op) = self.st.ns_ops.front() {
                    first(op.retry_at_ms);
                }
                if !self.st.meta_pending.is_empty() {
                    first(self.meta_retry_at_ms);
                }
                if let Some(s) = start {
                    at(s.max(self.retry_after_ms));
                }
            }
            None => {}
            Some(it) => {
                // A full bound waits for a completion (a record) or for the bound to grow with
                // the ends piling up unreported since the last one (`crate::window`).
                if !it.to_discover.is_empty() {
                    if self.may_request(now) {
                        at(paused_until);
                    } else if let Some(t) = self.bound_grows_enough(now) {
                        at(t.max(paused_until));
                    }
                }
                if !self.st.inflight.is_empty() {
                    at(self
                        .last_stale_check_ms
                        .saturating_add(self.cfg.stale_after_ms / 2));
                }
                // `check_deadline` acts on requests not carried yet; once carried, it waits.
                if self.active_requests() > 0 {
                    at(self
                        .last_progress_ms
                        .saturating_add(self.cfg.iteration_deadline_ms));
                }
                if self.st.autoexport_enabled {
                    // `join_running`: a file joins once it settled, at most every interval; one
                    // tried already makes the iteration hand over once it is due.
                    let next_join = self.last_join_ms.saturating_add(JOIN_INTERVAL_MS);
                    for (f, p) in &self.st.pending {
                        let wait = match (self.turn(f, p), self.forced_by_flush(&p.holds)) {
                            (Turn::Wait, _) => continue,
                            (Turn::HandOver, true) => 0,
                            (Turn::HandOver, false) => self.cfg.min_age_ms,
                            (Turn::Join, true) => JOIN_SETTLE_MS,
                            (Turn::Join, false) => self.cfg.min_age_ms.max(JOIN_SETTLE_MS),
                        };
                        let of_age = p.last_change_ms.saturating_add(wait);
                        at(of_age.max(p.retry_at_ms).max(next_join));
                    }
                }
            }
        }
        due.map(|d| d.max(now))
    }

    fn forced_by_flush(&self, holds: &Holds) -> bool {
        self.flushes.iter().any(|f| match &f.barrier {
            Some(b) => holds.iter().any(|(m, i)| b.get(*m).is_some_and(|e| i <= e)),
            None => false,
        })
    }

    /// Pending files due now: past their back-off, and `min_age` after their last change (or
    /// held by a flush).
    fn due_pending(&self, now: u64) -> Vec<Fid> {
        let min_age = self.cfg.min_age_ms;
        self.st
            .pending
            .iter()
            .filter(|(_, p)| {
                p.retry_at_ms <= now
                    && (now.saturating_sub(p.last_change_ms) >= min_age
                        || self.forced_by_flush(&p.holds))
            })
            .map(|(f, _)| *f)
            .collect()
    }

    /// Files that changed and became due while an iteration runs join it, ahead of the files it
    /// has not requested yet, newest first: a new change never waits for a long iteration (a bulk
    /// load) to end, only for a free request slot. The iteration ends once they are exported too.
    /// A file the iteration already tried cannot join it (it counts once per iteration): when
    /// one is due, the iteration hands over ([`Engine::hand_over`]) so that it is not left
    /// waiting for as long as new changes keep joining.
    fn join_running(&mut self, now: u64) {
        if now.saturating_sub(self.last_join_ms) < JOIN_INTERVAL_MS || self.st.pending.is_empty() {
            return;
        }
        self.last_join_ms = now;
        if self.st.iteration.is_none() {
            return;
        }
        let due = self.due_pending(now);
        let turns: Vec<(Fid, Turn)> = due
            .into_iter()
            .filter_map(|f| self.st.pending.get(&f).map(|p| (f, self.turn(&f, p))))
            .collect();
        if let Some((again, _)) = turns.iter().find(|(_, t)| *t == Turn::HandOver) {
            self.hand_over(*again, now);
            return;
        }
        let fresh: Vec<Fid> = turns
            .into_iter()
            .filter(|(f, t)| {
                *t == Turn::Join
                    && self
                        .st
                        .pending
                        .get(f)
                        .is_some_and(|p| now.saturating_sub(p.last_change_ms) >= JOIN_SETTLE_MS)
            })
            .map(|(f, _)| f)
            .collect();
        let mut joining: Vec<(Fid, Pending)> = fresh
            .into_iter()
            .filter_map(|f| self.st.pending.remove(&f).map(|p| (f, p)))
            .collect();
        if joining.is_empty() {
            return;
        }
        // Newest first: each pass's files go to the very front (oldest first among them), ahead
        // of what joined earlier and of the backlog. A bulk load written while an iteration runs
        // joins too; the newest changes passing it is what keeps a trickle fresh beside it, and
        // the bulk still gets every slot the trickle leaves.
        joining.sort_by_key(|(f, p)| (p.first_change_ms, *f));
        let Some(it) = self.st.iteration.as_mut() else {
            return;
        };
        self.fresh_ahead += joining.len();
        for entry in joining.into_iter().rev() {
            tracing::trace!(fid = %entry.0, "joined the running iteration");
            self.iteration_members.join(entry.0);
            it.to_discover.push_front(entry);
        }
        self.changed = true;
    }

    /// What a pending file does while an iteration runs.
    fn turn(&self, fid: &Fid, p: &Pending) -> Turn {
        let members = &self.iteration_members;
        if self.waits(fid) {
            Turn::Wait
        } else if members.was_tried(fid) || p.retries > 0 || p.attempts > 0 {
            // Tried by this iteration, or put back after a try by an earlier one (or by this
            // one before a restart: the members rebuilt then are only what it still had to do).
            Turn::HandOver
        } else {
            Turn::Join
        }
    }

    /// Whether a pending change of `fid` waits whatever its age: the file's turn in the running
    /// iteration has not come yet (the look taken then covers this change too; the entry is
    /// merged into it, `discover_some`), or its request is in flight (it settles first: a
    /// change the copy saw ends it EBUSY and puts it back, then the file is tried again).
    fn waits(&self, fid: &Fid) -> bool {
        let members = &self.iteration_members;
        (members.contains(fid) && !members.was_tried(fid))
            || self.st.inflight.get(fid).is_some_and(|i| !i.carried)
    }

    /// A file the running iteration already tried (put back after its copy, or changed again
    /// since) is due again. It cannot join (a file counts once per iteration), and the
    /// iteration may not end for a long time: its backlog may be a bulk load, and new changes
    /// keep joining it. So the iteration ends here, and the next one starts at once with that
    /// file and the changes that came meanwhile, then the files the ended one had not reached
    /// (its backlog, in its order: they were not discovered, so nothing counts twice), and its
    /// requests still in flight, which count in the new iteration (discovered there, exported
    /// or failed there). Nothing waits for those requests: a 1 GiB copy in flight does not hold
    /// the next change back.
    fn hand_over(&mut self, again: Fid, now: u64) {
        if now < self.retry_after_ms {
            return;
        }
        let Some(it) = self.st.iteration.as_mut() else {
            return;
        };
        let backlog = std::mem::take(&mut it.to_discover);
        let (files, bytes) = self
            .st
            .inflight
            .values()
            .filter(|i| !i.carried)
            .fold((0u64, 0u64), |(n, b), i| (n + 1, b + i.size));
        let c = &mut it.counters;
        c.files_discovered = c.files_discovered.saturating_sub(files);
        c.bytes_discovered = c.bytes_discovered.saturating_sub(bytes);
        tracing::info!(job = %self.cfg.job_id, iteration = c.number, fid = %again, backlog = backlog.len(), in_flight = files, "a file this iteration already tried is due again: it ends, and the next one takes its backlog and its requests in flight");
        // A file the ended iteration had not reached yet stays pending until its turn in the
        // backlog absorbs it; one in flight, until its request settles.
        let due: Vec<Fid> = self
            .due_pending(now)
            .into_iter()
            .filter(|f| !self.waits(f))
            .collect();
        self.finish(now);
        self.start(now, due, backlog);
    }

    /// Files an iteration took but did not request go back to the pending set; a change of one
    /// read since (an entry of its own there) keeps its entry, with the holds of both.
    fn give_back(&mut self, rest: Vec<(Fid, Pending)>) {
        self.fresh_ahead = 0;
        for (fid, p) in rest {
            match self.st.pending.get_mut(&fid) {
                Some(q) => {
                    for (m, i) in p.holds {
                        add_hold(&mut q.holds, m, i);
                    }
                }
                None => {
                    self.st.pending.insert(fid, p);
                }
            }
        }
        self.changed = true;
    }

    fn maybe_start(&mut self, now: u64) {
        if now < self.retry_after_ms {
            return;
        }
        let due = self.due_pending(now);
        let ns_due = self.st.ns_ops.front().is_some_and(|o| o.retry_at_ms <= now);
        let meta_due = !self.st.meta_pending.is_empty() && self.meta_retry_at_ms <= now;
        if due.is_empty() && !ns_due && !meta_due {
            return;
        }
        self.start(now, due, std::collections::VecDeque::new());
    }

    /// Starts an iteration with the pending files `due` (taken from the pending set), then the
    /// `backlog` of an iteration that handed over, and the requests still in flight (not
    /// carried: those count where they were discovered), which it takes over: they count as
    /// discovered by it. Applies the namespace operations and metadata updates that are due.
    fn start(
        &mut self,
        now: u64,
        due: Vec<Fid>,
        backlog: std::collections::VecDeque<(Fid, Pending)>,
    ) {
        let ns_due = self.st.ns_ops.front().is_some_and(|o| o.retry_at_ms <= now);
        let meta_due = !self.st.meta_pending.is_empty() && self.meta_retry_at_ms <= now;
        let number = self.st.next_iteration;
        self.st.next_iteration += 1;
        let mut it = Iteration {
            counters: IterCounters {
                number,
                started_ms: now,
                ..IterCounters::default()
            },
            ..Iteration::default()
        };
        self.iteration_members.clear();
        for (fid, inf) in self.st.inflight.iter().filter(|(_, i)| !i.carried) {
            it.counters.files_discovered += 1;
            it.counters.bytes_discovered += inf.size;
            self.iteration_members.tried(*fid);
        }
        // After a hand-over, the changes that came meanwhile go first, each as soon as a slot
        // frees (as joiners do), then the backlog.
        self.fresh_ahead = if backlog.is_empty() { 0 } else { due.len() };
        for fid in due {
            if let Some(p) = self.st.pending.remove(&fid) {
                self.iteration_members.join(fid);
                it.to_discover.push_back((fid, p));
            }
        }
        for (fid, p) in backlog {
            self.iteration_members.join(fid);
            it.to_discover.push_back((fid, p));
        }
        self.st.totals.last_started_ms = Some(now);
        self.st.iteration = Some(it);
        self.last_progress_ms = now;
        self.changed = true;
        tracing::info!(job = %self.cfg.job_id, iteration = number, "iteration started");
        if ns_due {
            self.apply_ns_ops(now);
        }
        if meta_due {
            self.apply_metadata(now);
        }
    }

    fn iteration_number(&self) -> u64 {
        self.st
            .iteration
            .as_ref()
            .map(|i| i.counters.number)
            .unwrap_or(0)
    }

    fn counters(&mut self) -> Option<&mut IterCounters> {
        self.st.iteration.as_mut().map(|i| &mut i.counters)
    }

    fn fail(&mut self, fid: Option<Fid>, path: &str, operation: &str, error: String, now: u64) {
        let iteration = self.iteration_number();
        if let Some(c) = self.counters() {
            c.files_failed += 1;
        }
        self.st.totals.files_failed += 1;
        tracing::warn!(job = %self.cfg.job_id, iteration, path, operation, %error, "export failed");
        self.log.record(blob::LogEntry::Failure(blob::FailureEntry {
            time: blob::time::from_ms(now),
            error: error.clone(),
            ..blob::FailureEntry::new(
                &self.cfg.job_id,
                iteration,
                fid.map(|f| f.to_string()),
                path,
                operation,
            )
        }));
        let failure = Failure {
            at_ms: now,
            iteration,
            fid,
            path: path.to_string(),
            operation: operation.to_string(),
            error,
        };
        match fid {
            Some(f) => self.st.failed.insert(f, failure.clone()),
            None => self.st.failed_ops.insert(path.to_string(), failure.clone()),
        };
        self.st.recent_failures.push_back(failure);
        while self.st.recent_failures.len() > MAX_RECENT_FAILURES {
            self.st.recent_failures.pop_front();
        }
        self.changed = true;
    }

    /// A file that needs nothing more (exported, found archived and clean, or gone): an earlier
    /// failure of it no longer stands.
    fn resolved(&mut self, fid: &Fid) {
        if self.st.failed.remove(fid).is_some() {
            self.changed = true;
        }
    }

    fn exported(&mut self, bytes: u64) {
        if let Some(c) = self.counters() {
            c.files_exported += 1;
            c.bytes_exported += bytes;
        }
        self.st.totals.files_exported += 1;
        self.st.totals.bytes_exported += bytes;
        self.changed = true;
    }

    fn discovered(&mut self, bytes: u64) {
        if let Some(c) = self.counters() {
            c.files_discovered += 1;
            c.bytes_discovered += bytes;
        }
    }

    /// Applies queued deletes and moves in order. One the store cannot take now (unavailable)
    /// stops the queue with a back-off: later operations may depend on it (a rename, then a
    /// delete of the new name), so none overtakes it.
    fn apply_ns_ops(&mut self, now: u64) {
        while let Some(mut op) = self.st.ns_ops.pop_front() {
            let res = match &op.op {
                NsOpKind::Delete { path, dir } => self.delete_blob(path, *dir),
                NsOpKind::Move { from, to } => self.move_blobs(from, to),
            };
            let (key, what) = match &op.op {
                NsOpKind::Delete { path, .. } => (path.clone(), "delete"),
                NsOpKind::Move { from, .. } => (from.clone(), "rename"),
            };
            match res {
                Ok(()) => {
                    self.st.failed_ops.remove(&key);
                }
                Err(e) if e.is_environmental() => {
                    tracing::info!(path = %key, operation = what, error = %e, "store unavailable; the operation waits and is tried again");
                    op.last_error = Some(format!("store unavailable: {e}"));
                    op.retry_at_ms = now + backoff_ms(op.retries, self.cfg.retry_max_ms);
                    op.retries += 1;
                    self.st.ns_ops.push_front(op);
                    if let Some(c) = self.counters() {
                        c.files_requeued += 1;
                    }
                    break;
                }
                Err(e) => {
                    let path = match &op.op {
                        NsOpKind::Delete { path, .. } => path.clone(),
                        NsOpKind::Move { from, to } => format!("{from} -> {to}"),
                    };
                    self.fail(None, &path, what, e.to_string(), now);
                    // Keyed by the path the operation was about, so a later success clears it.
                    if let Some(f) = self.st.failed_ops.remove(&path) {
                        self.st.failed_ops.insert(key, f);
                    }
                }
            }
        }
        self.changed = true;
    }

    fn delete_blob(&self, path: &str, dir: bool) -> Result<(), blob::Error> {
        let name = self.store.name_for(path.as_bytes())?;
        self.store.delete(&name)?;
        if dir {
            // A removed directory was empty on the file system; its blobs may still be there
            // when they were kept earlier. Only the directory blob itself goes.
            tracing::debug!(path, "directory blob deleted");
        }
        Ok(())
    }

    /// Server-side copy + delete of the blob at `from` and of every blob under `from/`.
    fn move_blobs(&self, from: &str, to: &str) -> Result<(), blob::Error> {
        let src = self.store.name_for(from.as_bytes())?;
        let dst = self.store.name_for(to.as_bytes())?;
        let mut moves = Vec::new();
        if self.store.exists(&src)? {
            moves.push((src.clone(), dst.clone()));
        }
        let under = format!("{src}/");
        for e in self.store.list(&src)? {
            if let Some(rest) = e.name.strip_prefix(&under) {
                moves.push((e.name.clone(), format!("{dst}/{rest}")));
            }
        }
        for (a, b) in &moves {
            self.store.copy(a, b)?;
        }
        for (a, _) in &moves {
            self.store.delete(a)?;
        }
        Ok(())
    }

    fn apply_metadata(&mut self, now: u64) {
        let entries = std::mem::take(&mut self.st.meta_pending);
        let mut unavailable = false;
        for (fid, holds) in entries {
            if unavailable {
                self.st.meta_pending.insert(fid, holds);
                continue;
            }
            let Ok(Some(path)) = self.ns.fid2path(&fid) else {
                continue;
            };
            if !self.cfg.scope.covers(&path) {
                continue;
            }
            let Ok(Some(st)) = self.ns.stat(&path) else {
                continue;
            };
            let res = self.store.name_for(&path).and_then(|name| {
                self.store
                    .set_metadata(&name, &blob_metadata(&st, Some(fid)))
            });
            match res {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {} // never exported: nothing to update
                Err(e) if e.is_environmental() => {
                    // Kept with its holds; the whole set waits for the store.
                    tracing::info!(fid = %fid, error = %e, "store unavailable; metadata update waits");
                    self.st.meta_pending.insert(fid, holds);
                    unavailable = true;
                }
                Err(e) => self.fail(Some(fid), &lossy(&path), "metadata", e.to_string(), now),
            }
        }
        self.meta_retry_at_ms = if unavailable {
            self.meta_retries += 1;
            now + backoff_ms(self.meta_retries - 1, self.cfg.retry_max_ms)
        } else {
            self.meta_retries = 0;
            0
        };
    }

    /// Puts a file back into the pending set: not failed, not exported (the iteration does not
    /// count as successful). A change seen meanwhile keeps its own, earlier, due time.
    fn requeue(&mut self, fid: Fid, r: Requeue, now: u64) {
        if let Some(c) = self.counters() {
            c.files_requeued += 1;
        }
        let p = self.st.pending.entry(fid).or_insert(Pending {
            holds: Vec::new(),
            last_change_ms: 0,
            first_change_ms: r.first_change_ms,
            ..Pending::default()
        });
        for (m, i) in r.holds {
            add_hold(&mut p.holds, m, i);
        }
        p.attempts = p.attempts.max(r.attempts);
        p.retries = p.retries.max(r.retries);
        p.retry_at_ms = p.retry_at_ms.max(now + r.delay_ms);
        p.last_error = r.error;
        p.first_change_ms = p.first_change_ms.min(r.first_change_ms);
        self.changed = true;
    }

    /// Completion of an in-flight file with `errno` (0 = success).
    fn settle(&mut self, fid: Fid, inf: InFlight, errno: i32, now: u64) {
        self.changed = true;
        self.progress_ticks += 1;
        if errno == 0 {
            self.resolved(&fid);
            self.exported(inf.size);
            return;
        }
        let text = errno_text(errno);
        let mut verdict = verdict(errno);
        if verdict == Verdict::Gone {
            match self.ns.fid2path(&fid) {
                Ok(None) => {
                    tracing::info!(fid = %fid, path = %inf.path, "deleted before its archive ended: nothing to export");
                    self.resolved(&fid);
                    return;
                }
                // Still there: the error was about something else.
                Ok(Some(_)) => verdict = Verdict::Retry,
                // Cannot tell now: look again later.
                Err(_) => verdict = Verdict::Environment,
            }
        }
        if verdict == Verdict::Retry && inf.attempts + 1 >= MAX_ATTEMPTS {
            verdict = Verdict::Final;
        }
        let r = Requeue {
            holds: inf.holds,
            first_change_ms: inf.first_change_ms,
            attempts: inf.attempts,
            retries: inf.retries + 1,
            delay_ms: backoff_ms(inf.retries, self.cfg.retry_max_ms),
            error: Some(text.clone()),
        };
        match verdict {
            Verdict::Changed => {
                // Logged once per file and iteration (the file settles once per iteration);
                // the next iteration exports the new content. Not a failure.
                tracing::info!(fid = %fid, path = %inf.path, "changed during copy, re-exported");
                self.log
                    .record(blob::LogEntry::Requeued(blob::RequeuedEntry {
                        time: blob::time::from_ms(now),
                        job: self.cfg.job_id.clone(),
                        iteration: self.iteration_number(),
                        fid: Some(fid.to_string()),
                        path: inf.path.clone(),
                        operation: "archive".into(),
                        reason: "changed during copy, re-exported".into(),
                    }));
                let r = Requeue {
                    delay_ms: 0,
                    error: Some("changed during copy".into()),
                    ..r
                };
                self.requeue(fid, r, now);
            }
            Verdict::Environment => {
                tracing::info!(fid = %fid, path = %inf.path, error = %text, retry_in_ms = r.delay_ms, "not exported (environment); tried again after a back-off");
                self.requeue(fid, r, now);
            }
            Verdict::Retry => {
                tracing::info!(fid = %fid, path = %inf.path, error = %text, attempt = inf.attempts + 1, "archive failed; tried again after a back-off");
                let r = Requeue {
                    attempts: inf.attempts + 1,
                    ..r
                };
                self.requeue(fid, r, now);
            }
            Verdict::Final | Verdict::Gone => self.fail(Some(fid), &inf.path, "archive", text, now),
        }
    }

    fn discover_some(&mut self, now: u64) -> Result<(), EngineError> {
        if self
            .st
            .coordinator_pause
            .as_ref()
            .is_some_and(|p| now < p.until_ms)
        {
            return Ok(()); // the coordinator does not take requests: wait out the back-off
        }
        // Only as many requests as the bound allows: the rest of the iteration waits here, where
        // a new change can still pass it (`join_running`). Requests carried from an earlier
        // iteration (stuck) do not hold up this one.
        let inflight = &self.st.inflight;
        self.joined_out.retain(|f| inflight.contains_key(f));
        let slots = self.free_slots(now);
        let active = self.active_requests();
        let mut to_archive: Vec<(Fid, InFlight)> = Vec::new();
        for _ in 0..self.cfg.discover_chunk.max(1) {
            // The changes that joined are at the front, newest first ([`Engine::join_running`]),
            // then the backlog.
            if to_archive.len() >= self.front_cap(now, &slots) {
                break;
            }
            let Some(it) = self.st.iteration.as_mut() else {
                break;
            };
            let Some((fid, mut p)) = it.to_discover.pop_front() else {
                break;
            };
            let joined = self.fresh_ahead > 0;
            self.fresh_ahead = self.fresh_ahead.saturating_sub(1);
            self.changed = true;
            self.iteration_members.tried(fid);
            // Its earlier request is still queued (carried): asking again would queue a
            // duplicate (the MDT records one since LU-13651). The copy reads the file when it
            // runs, so the request covers this change too; a change during the copy ends EBUSY.
            if let Some(inf) = self.st.inflight.get_mut(&fid) {
                for (m, i) in p.holds {
                    add_hold(&mut inf.holds, m, i);
                }
                continue;
            }
            // This look covers every change read so far, also one that came after the file was
            // taken (an entry of its own in the pending set); a change from now on needs the
            // next iteration.
            if let Some(q) = self.st.pending.remove(&fid) {
                p.absorb(q);
            }
            if let Some(inf) = self.discover_one(fid, p, now) {
                if joined && to_archive.len() >= slots.within {
                    self.joined_out.insert(fid); // beyond the bound
                }
                to_archive.push((fid, inf));
            }
        }
        if to_archive.is_empty() {
            return Ok(());
        }
        for (fid, inf) in &to_archive {
            tracing::trace!(fid = %fid, path = %inf.path, "archive requested");
            self.st.inflight.insert(*fid, inf.clone());
        }
        // Write-ahead: a crash after this finds the requests in the in-flight set.
        self.save()?;
        let payload = format!("lb:j={}:i={}", self.cfg.job_id, self.iteration_number());
        let fids: Vec<Fid> = to_archive.iter().map(|(f, _)| *f).collect();
        self.progress_ticks += 1;
        self.window.sending(active, now);
        tracing::debug!(
            sent = fids.len(),
            outstanding = active + fids.len(),
            limit = self.in_flight_limit(now),
            completions_per_s = self.window.rate(now),
            "archive requests sent"
        );
        self.send_requests(&fids, payload.as_bytes(), now);
        Ok(())
    }

    /// Sends the requests of files just put in flight and settles what the coordinator did not
    /// take: a refusal of a file alone is that file's own try; a paused coordinator is no one's.
    fn send_requests(&mut self, fids: &[Fid], payload: &[u8], now: u64) {
        let sent = request_archives(
            &self.ns,
            self.cfg.archive_id,
            fids,
            self.cfg.batch_size,
            payload,
        );
        if sent.accepted {
            self.coordinator_back();
        }
        for fid in sent.gone {
            self.forget_deleted(
                &fid,
                "deleted before its archive was queued: nothing to export",
            );
        }
        for (fid, e) in sent.refused {
            if let Some(inf) = self.st.inflight.remove(&fid) {
                self.settle(fid, inf, e.errno, now);
            }
        }
        if let Some((e, not_sent)) = sent.paused {
            self.coordinator_refused(&e, now);
            self.not_taken(&not_sent, now);
        }
    }

    /// An in-flight file found deleted: nothing left to export, and its failure no longer
    /// stands.
    fn forget_deleted(&mut self, fid: &Fid, why: &str) {
        if let Some(inf) = self.st.inflight.remove(fid) {
            tracing::info!(fid = %fid, path = %inf.path, "{why}");
        }
        self.resolved(fid);
        self.changed = true;
        self.progress_ticks += 1;
    }

    /// The coordinator answered EAGAIN: no coordinator running on an MDT (`hsm_control`
    /// shut down; `mdt_hsm_add_actions`). A pause with back-off, shown in `status`, never a
    /// failed try of any file.
    fn coordinator_refused(&mut self, e: &NsError, now: u64) {
        let retries = self.st.coordinator_pause.as_ref().map_or(0, |p| p.retries);
        let delay = backoff_ms(retries, self.cfg.retry_max_ms);
        let since = self
            .st
            .coordinator_pause
            .as_ref()
            .map_or(now, |p| p.since_ms);
        tracing::warn!(error = %e, retry_in_ms = delay, "the HSM coordinator takes no requests (hsm_control shut down?); archive requests paused");
        self.st.coordinator_pause = Some(CoordinatorPause {
            since_ms: since,
            until_ms: now + delay,
            retries: retries + 1,
            reason: format!("the HSM coordinator takes no requests (hsm_control shut down?): {e}"),
        });
        self.changed = true;
    }

    fn coordinator_back(&mut self) {
        if self.st.coordinator_pause.take().is_some() {
            tracing::info!("the HSM coordinator takes requests again");
            self.changed = true;
        }
    }

    /// Files of a request the coordinator did not take (paused): those it queued anyway (another
    /// MDT's part) stay in flight; the others wait for the end of the pause, no try counted.
    fn not_taken(&mut self, chunk: &[Fid], now: u64) {
        let until = self
            .st
            .coordinator_pause
            .as_ref()
            .map_or(now, |p| p.until_ms);
        for fid in chunk {
            if !self.st.inflight.contains_key(fid) {
                continue;
            }
            match look_after_refusal(&self.ns, fid) {
                AfterRefusal::Queued => continue,
                AfterRefusal::Gone => {
                    self.forget_deleted(
                        fid,
                        "deleted before its archive was queued: nothing to export",
                    );
                    continue;
                }
                AfterRefusal::Resend => {}
            }
            if let Some(inf) = self.st.inflight.remove(fid) {
                let r = Requeue {
                    holds: inf.holds,
                    first_change_ms: inf.first_change_ms,
                    attempts: inf.attempts,
                    retries: inf.retries,
                    delay_ms: until.saturating_sub(now),
                    error: Some("the HSM coordinator takes no requests".into()),
                };
                self.requeue(*fid, r, now);
            }
        }
    }

    /// Ends an iteration whose requests made no progress for the deadline: they are carried
    /// into the next iteration (still in flight, still settled by CL_HSM or the stale check,
    /// counted once), the files it had not reached go back to the pending set, and the next
    /// iteration starts with the new changes.
    fn check_deadline(&mut self, now: u64) {
        // A daemon (re)started with an iteration in progress has not watched it yet: its time
        // without progress counts from now, not from the epoch, or every request the previous
        // process sent would be carried at the first step after a restart.
        if self.progress_ticks != self.seen_ticks || self.last_progress_ms == 0 {
            self.seen_ticks = self.progress_ticks;
            self.last_progress_ms = now;
            return;
        }
        if self.st.iteration.is_none()
            || now.saturating_sub(self.last_progress_ms) < self.cfg.iteration_deadline_ms
        {
            return;
        }
        let stuck: Vec<Fid> = self
            .st
            .inflight
            .iter()
            .filter(|(_, i)| !i.carried)
            .map(|(f, _)| *f)
            .collect();
        if stuck.is_empty() {
            return;
        }
        for f in &stuck {
            if let Some(i) = self.st.inflight.get_mut(f) {
                i.carried = true;
            }
        }
        let rest: Vec<(Fid, Pending)> = self
            .st
            .iteration
            .as_mut()
            .map(|it| it.to_discover.drain(..).collect())
            .unwrap_or_default();
        self.give_back(rest);
        if let Some(c) = self.counters() {
            c.files_carried += stuck.len() as u64;
        }
        tracing::warn!(job = %self.cfg.job_id, iteration = self.iteration_number(), files = stuck.len(), deadline_s = self.cfg.iteration_deadline_ms / 1000, "archive requests made no progress past the iteration deadline; carried into the next iteration");
        self.changed = true;
    }

    /// Looks at one pending file; returns it when it needs an archive request.
    ///
    /// The path comes from the file's own records when it has one (a file created under the
    /// daemon's eyes) and the client confirms it still leads to the file; otherwise from
    /// `fid2path`, an MDS call. Either is the path *now*: a rename right after this is read
    /// later, as a rename right after a `fid2path` always was. The path decides the scope, the
    /// `lstat` (the size counted in MiB Discovered) and the log text; it does not name the blob:
    /// the request carries the FID, and the copytool names the blob by its own `fid2path` at
    /// copy time, so the blob follows a rename however late the daemon reads it.
    fn discover_one(&mut self, fid: Fid, mut p: Pending, now: u64) -> Option<InFlight> {
        if let Some(what) = self.unsure.remove(&fid) {
            p.forget(what);
        }
        let known = p
            .known_path
            .take()
            .and_then(|k| self.at_known_path(&fid, k.into_bytes()));
        let (path, st, p) = match known {
            Some((path, st)) => (path, st, p),
            None => self.look_up_by_fid(fid, p, now)?,
        };
        let text = lossy(&path);
        match st.kind {
            FileKind::Directory | FileKind::Symlink => {
                self.export_entry(fid, p, &path, &text, &st, now);
                None
            }
            FileKind::Other => None,
            FileKind::Regular => self.archive_request(fid, p, &path, text, st.size, now),
        }
    }

    /// Writes the blob of a directory or symlink (HSM does not carry them); a store that does
    /// not answer puts the entry back after a back-off.
    fn export_entry(
        &mut self,
        fid: Fid,
        p: Pending,
        path: &[u8],
        text: &str,
        st: &FileStat,
        now: u64,
    ) {
        self.discovered(0);
        let meta = blob_metadata(st, Some(fid));
        let res = self.store.name_for(path).and_then(|name| {
            if st.kind == FileKind::Directory {
                self.store.put_dir(&name, &meta)
            } else {
                let target = self.ns.read_link(path).map_err(|e| blob::Error::Io {
                    op: "readlink",
                    source: std::io::Error::from_raw_os_error(e.errno),
                })?;
                self.store.put_symlink(&name, &target, &meta)
            }
        });
        match res {
            Ok(()) => {
                self.resolved(&fid);
                self.exported(0);
            }
            Err(e) if e.is_environmental() => {
                let delay_ms = backoff_ms(p.retries, self.cfg.retry_max_ms);
                tracing::info!(path = %text, error = %e, retry_in_ms = delay_ms, "store unavailable; tried again after a back-off");
                let r = Requeue {
                    holds: p.holds,
                    first_change_ms: p.first_change_ms,
                    attempts: p.attempts,
                    retries: p.retries + 1,
                    delay_ms,
                    error: Some(format!("store unavailable: {e}")),
                };
                self.requeue(fid, r, now);
            }
            Err(e) => self.fail(Some(fid), text, "export", e.to_string(), now),
        }
    }

    /// The file's path from `fid2path` (an MDS call) and its attributes, with its entry handed
    /// back; `None` once the file is settled here: deleted, out of scope, a path that does not
    /// lead back to it (a failure), or a file system that did not answer (put back).
    fn look_up_by_fid(
        &mut self,
        fid: Fid,
        p: Pending,
        now: u64,
    ) -> Option<(Vec<u8>, FileStat, Pending)> {
        let path = match self.ns.fid2path(&fid) {
            Ok(Some(path)) => path,
            Ok(None) => {
                self.resolved(&fid); // deleted since: nothing to export
                return None;
            }
            Err(e) => {
                self.discover_error(fid, p, "", e, now);
                return None;
            }
        };
        if !self.cfg.scope.covers(&path) {
            self.resolved(&fid); // renamed out of scope or into an exclusion
            return None;
        }
        match self.ns.stat(&path) {
            Ok(Some(st)) => Some((path, st, p)),
            Ok(None) => {
                // Deleted meanwhile, or a path that does not lead back to the file (a name the
                // path API could not carry): only the second is a failure.
                if matches!(self.ns.fid2path(&fid), Ok(Some(_))) {
                    let why =
                        "the file exists but its path does not resolve (name not representable?)";
                    self.fail(Some(fid), &lossy(&path), "export", why.to_string(), now);
                } else {
                    self.resolved(&fid);
                }
                None
            }
            Err(e) => {
                self.discover_error(fid, p, &lossy(&path), e, now);
                None
            }
        }
    }

    /// The path a file's records gave it, with its attributes, when it is in scope and still
    /// leads to this file: `lstat` finds an entry there and `path2fid` of it is this FID. Both
    /// are answered by the client on Lustre (the lookup and getattr of the `lstat` aside, which
    /// the `fid2path` path pays too; `path2fid` is an `O_PATH` open of the entry just looked up
    /// and `name_to_handle_at`). `None`, and discovery asks `fid2path`, when anything differs:
    /// the file was renamed, or its directory, and the record is not read yet (or not at all:
    /// a restart that found records cleared), or another file took the name.
    fn at_known_path(&self, fid: &Fid, path: Vec<u8>) -> Option<(Vec<u8>, FileStat)> {
        if !self.cfg.scope.covers(&path) {
            return None;
        }
        let st = self.ns.stat(&path).ok().flatten()?;
        (self.ns.path2fid(&path).ok()? == *fid).then_some((path, st))
    }

    /// A regular file: the in-flight entry of its archive request, unless it is archived and
    /// clean or no blob can carry its name. The flags decide (no current_action: see
    /// `Namespace::action_pending`).
    ///
    /// A file created and closed under the daemon's eyes with no CL_HSM of it read since has
    /// empty flags, and costs no `hsm_state` (an MDS_HSM_STATE_GET, and the open and close
    /// around it): every change of the flags writes a CL_HSM (`mdd_xattr_set` of
    /// `trusted.hsm`, reached from `mdt_hsm_attr_set`: `lfs hsm_set`, an archive request as it
    /// is recorded (`mdt_hsm_set_exists`) and as it ends, restore, remove, dirty on write; a
    /// release's layout swap writes one of its own).
    /// When that is wrong anyway (an admin's `lfs hsm_archive` whose CL_HSM is not read yet;
    /// a changelog mask without HSM; a file created straight into a read-write PCC, whose flags
    /// `mdd_create` sets without a record), the request is one the coordinator finds not
    /// needed and drops (`hsm_action_is_needed`), or one it runs again after the other archive
    /// (recorded twice since LU-13651); the first CL_HSM to come, or the stale check, settles
    /// the file once.
    fn archive_request(
        &mut self,
        fid: Fid,
        p: Pending,
        path: &[u8],
        text: String,
        size: u64,
        now: u64,
    ) -> Option<InFlight> {
        if !p.hsm_known_empty() {
            let hsm = match self.ns.hsm_state(path) {
                Ok(h) => h,
                Err(e) => return self.discover_error(fid, p, &text, e, now),
            };
            if !needs_archive(&hsm) {
                self.resolved(&fid);
                return None; // archived and clean: nothing to do
            }
        }
        self.discovered(size);
        // A name no blob can carry fails here with its reason, without a request.
        if let Err(e) = self.store.name_for(path) {
            self.fail(Some(fid), &text, "archive", e.to_string(), now);
            return None;
        }
        Some(InFlight {
            holds: p.holds,
            path: text,
            size,
            submitted_ms: now,
            first_change_ms: p.first_change_ms,
            attempts: p.attempts,
            retries: p.retries,
            carried: false,
        })
    }

    fn discover_error(
        &mut self,
        fid: Fid,
        p: Pending,
        path: &str,
        e: NsError,
        now: u64,
    ) -> Option<InFlight> {
        if is_requeue_errno(e.errno) {
            // The file system did not answer: not the file's fault, so no attempt is counted;
            // new iterations wait a moment instead of spinning.
            let r = Requeue {
                holds: p.holds,
                first_change_ms: p.first_change_ms,
                attempts: p.attempts,
                retries: p.retries,
                delay_ms: 0,
                error: Some(format!("file system did not answer: {e}")),
            };
            self.requeue(fid, r, now);
            self.retry_after_ms = now + RETRY_PAUSE_MS;
        } else {
            self.fail(Some(fid), path, "archive", e.to_string(), now);
        }
        None
    }

    /// In-flight files without a CL_HSM for `stale_after`: settled from their HSM state (the
    /// coordinator skips "not needed" requests silently, and a restart may have lost the send).
    fn stale_check(&mut self, now: u64) {
        for fid in self.st.inflight.stale(now, self.cfg.stale_after_ms) {
            match look_at_stale(&self.ns, &fid) {
                // Cannot tell now: looked at again at the next check.
                Stale::Unknown(_) => {}
                Stale::Gone => {
                    self.forget_deleted(&fid, "deleted before its archive ended: nothing to export")
                }
                Stale::Queued => {
                    if let Some(i) = self.st.inflight.get_mut(&fid) {
                        i.still_queued(now);
                    }
                }
                Stale::Archived => {
                    if let Some(inf) = self.st.inflight.remove(&fid) {
                        self.settle(fid, inf, 0, now);
                    }
                }
                Stale::Vanished => {
                    if let Some(inf) = self.st.inflight.remove(&fid) {
                        self.requeue_vanished(fid, inf, now);
                    }
                }
            }
        }
    }

    /// A request neither queued nor done: the file goes back to the pending set, no try
    /// counted (the request was lost, not refused).
    fn requeue_vanished(&mut self, fid: Fid, inf: InFlight, now: u64) {
        self.progress_ticks += 1;
        tracing::info!(fid = %fid, path = %inf.path, "archive request vanished; re-queued");
        let r = Requeue {
            holds: inf.holds,
            first_change_ms: inf.first_change_ms,
            attempts: inf.attempts,
            retries: inf.retries,
            delay_ms: 0,
            error: Some("the archive request vanished".into()),
        };
        self.requeue(fid, r, now);
    }

    fn maybe_finish(&mut self, now: u64) {
        let done = matches!(&self.st.iteration, Some(it) if it.to_discover.is_empty())
            && self.st.inflight.values().all(|i| i.carried);
        if done {
            self.finish(now);
        }
    }

    /// Ends the running iteration: its counters become the last iteration's, its summary goes
    /// to the logging container.
    fn finish(&mut self, now: u64) {
        let Some(it) = self.st.iteration.take() else {
            return;
        };
        self.iteration_members.clear();
        let mut c = it.counters;
        c.ended_ms = Some(now);
        self.st.totals.iterations_completed += 1;
        self.st.totals.last_completed_ms = Some(now);
        // Azure's definition: an iteration that exported all its data. One in which a file
        // failed, or had to be re-queued (changed, store unavailable), is not successful.
        if c.files_failed == 0
            && c.files_requeued == 0
            && c.files_carried == 0
            && c.files_exported >= c.files_discovered
        {
            self.st.totals.last_successful_ms = Some(now);
        }
        tracing::info!(job = %self.cfg.job_id, iteration = c.number, exported = c.files_exported, failed = c.files_failed, "iteration completed");
        self.log.record(blob::LogEntry::Summary(blob::SummaryEntry {
            time: blob::time::from_ms(now),
            job: self.cfg.job_id.clone(),
            iteration: c.number,
            files_discovered: c.files_discovered,
            mib_discovered: c.bytes_discovered >> 20,
            files_exported: c.files_exported,
            mib_exported: c.bytes_exported >> 20,
            files_failed: c.files_failed,
        }));
        self.log.flush();
        self.st.last_iteration = Some(c);
        self.changed = true;
    }

    // ---------------------------------------------------------------- persistence and clearing

    /// Lowest record each MDT must keep, over all unfinished work.
    fn holds_floor(&self) -> Vec<Option<u64>> {
        let mut floor: Vec<Option<u64>> = vec![None; self.st.cursors.len()];
        let mut note = |holds: &[(usize, u64)]| {
            for (m, i) in holds {
                if let Some(f) = floor.get_mut(*m) {
                    *f = Some(f.map_or(*i, |x| x.min(*i)));
                }
            }
        };
        self.st.pending.values().for_each(|p| note(&p.holds));
        self.st.inflight.values().for_each(|p| note(&p.holds));
        self.st.meta_pending.values().for_each(|h| note(h));
        self.st
            .ns_ops
            .iter()
            .for_each(|o| note(&[(o.mdt, o.index)]));
        if let Some(it) = &self.st.iteration {
            it.to_discover.iter().for_each(|(_, p)| note(&p.holds));
        }
        floor
    }

    /// Index up to which each MDT's changelog may be cleared now.
    pub fn clear_points(&self) -> Vec<u64> {
        self.holds_floor()
            .iter()
            .zip(&self.st.cursors)
            .map(|(f, c)| match f {
                Some(i) => i.saturating_sub(1).min(c.last_read),
                None => c.last_read,
            })
            .collect()
    }

    fn save(&mut self) -> Result<(), EngineError> {
        self.apply_unsure();
        if let Some(f) = &self.file {
            f.save(&self.st)?;
        }
        self.changed = false;
        Ok(())
    }

    /// Saves the state if it changed, then clears each changelog below its lowest held record.
    pub fn persist(&mut self) -> Result<(), EngineError> {
        self.persist_inner()
    }

    /// Like [`Engine::persist`], but saves at most every `interval_ms` (a busy changelog would
    /// otherwise rewrite a large state file on every round). The changelog is only cleared from
    /// a state that is on disk, so a crash replays what the saved cursor has not covered.
    pub fn persist_due(&mut self, now: u64, interval_ms: u64) -> Result<(), EngineError> {
        if self.changed && now.saturating_sub(self.last_save_ms) < interval_ms {
            return Ok(());
        }
        self.last_save_ms = now;
        self.persist_inner()
    }

    fn persist_inner(&mut self) -> Result<(), EngineError> {
        if self.changed {
            self.save()?;
        }
        // The state is on disk: clear below what it still holds.
        let points = self.clear_points();
        let now = std::time::Instant::now();
        for (m, p) in points.into_iter().enumerate() {
            if p <= self.st.cursors[m].cleared {
                continue;
            }
            let failed_at = self.clear_failed_at.get(m).copied().flatten();
            if failed_at.is_some_and(|t| now < t + self.clear_retry) {
                continue;
            }
            match self.ns.clear_changelog(m, p) {
                Ok(()) => {
                    self.unknown_user.remove(&m);
                    // Saved with the next save; clearing again after a crash is harmless.
                    // Kept on disk because the start-up user check clears up to it.
                    self.st.cursors[m].cleared = p;
                    self.changed = true;
                    if let Some(r) = self.clear_failed_at.get_mut(m) {
                        *r = None;
                    }
                }
                Err(e) if e.errno == libc::ENOENT => {
                    tracing::error!(mdt = m, error = %e, "changelog_clear: the changelog user is not registered on this MDT (ids are numbered per MDT: give [lustre] changelog_user a table MDT = user); records are kept");
                    self.unknown_user.insert(
                        m,
                        format!("MDT {m}: the changelog user is not registered there: {e}"),
                    );
                    if let Some(r) = self.clear_failed_at.get_mut(m) {
                        *r = Some(now);
                    }
                }
                Err(e) => {
                    tracing::warn!(mdt = m, endrec = p, error = %e, retry_in_s = self.clear_retry.as_secs(), "changelog_clear failed; records are kept until it succeeds");
                    if let Some(r) = self.clear_failed_at.get_mut(m) {
                        *r = Some(now);
                    }
                }
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- flush barrier

    /// Starts a flush: it completes once every change recorded before now is exported or failed.
    pub fn flush_begin(&mut self, _now: u64) -> u64 {
        let id = self.next_flush;
        self.next_flush += 1;
        self.flushes.push(FlushWait {
            id,
            need_passes: self.end_passes.iter().map(|p| p + 2).collect(),
            barrier: None,
            done: None,
        });
        id
    }

    /// `Some` once flush `id` is complete (then forgotten), `None` while it waits.
    pub fn flush_poll(&mut self, id: u64) -> Option<FlushOutcome> {
        let pos = self
            .flushes
            .iter()
            .position(|f| f.id == id && f.done.is_some())?;
        self.flushes.remove(pos).done
    }

    /// Whether flush `id`'s barrier is known: the changelog has been read past the moment it was
    /// asked, so what remains is waiting for exports (not for reading).
    pub fn flush_barrier_known(&self, id: u64) -> bool {
        self.flushes
            .iter()
            .any(|f| f.id == id && f.barrier.is_some())
    }

    /// Drops a flush whose caller went away.
    pub fn flush_forget(&mut self, id: u64) {
        self.flushes.retain(|f| f.id != id);
    }

    fn resolve_barriers(&mut self) {
        for f in &mut self.flushes {
            if f.barrier.is_none()
                && f.need_passes
                    .iter()
                    .zip(&self.end_passes)
                    .all(|(need, seen)| seen >= need)
            {
                f.barrier = Some(self.st.cursors.iter().map(|c| c.last_read).collect());
            }
        }
    }

    fn settle_flushes(&mut self, _now: u64) {
        if self
            .flushes
            .iter()
            .all(|f| f.barrier.is_none() || f.done.is_some())
        {
            return;
        }
        let floor = self.holds_floor();
        let standing = || {
            let mut list: Vec<Failure> = self
                .st
                .failed
                .values()
                .chain(self.st.failed_ops.values())
                .cloned()
                .collect();
            list.sort_by_key(|f| f.at_ms);
            let failed = list.len() as u64;
            list.truncate(MAX_RECENT_FAILURES);
            FlushOutcome {
                failures: list,
                failed,
            }
        };
        let mut outcome: Option<FlushOutcome> = None;
        for f in &mut self.flushes {
            let (Some(b), None) = (&f.barrier, &f.done) else {
                continue;
            };
            // Every record up to the barrier is final: exported, or a standing failure. The
            // answer lists every failure standing now, however old: one recorded before the
            // flush was called is as unexported as one recorded after.
            let clear = floor.iter().zip(b).all(|(fl, e)| fl.is_none_or(|x| x > *e));
            if clear {
                f.done = Some(outcome.get_or_insert_with(standing).clone());
            }
        }
    }
}

/// Raw path bytes as text for logs and blob-side operations (lossy for non-UTF-8).
pub fn lossy(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}
