//! Blob-integration jobs besides auto-export: manual export of a tree and import of a blob
//! prefix, one at a time (auto-export included), cancellable, with Azure's states and counters.
//! The history (final counters of recent jobs) is kept in `jobs.json` across restarts.
//!
//! Both jobs run in small steps on the engine thread ([`JobRegistry::step`]), so the daemon stays
//! responsive. A manual export's tree is read by a small pool of scanner threads
//! ([`crate::tree_scan`]); each step takes at most `STEP_ENTRIES` of their candidates. A manual
//! export archives through the same HSM path as auto-export and learns completions from the
//! CL_HSM records the engine passes on ([`Engine::take_foreign_hsm`]).
//!
//! The job holds at most [`crate::engine::EngineConfig::max_in_flight`] files requested or
//! waiting for a request (`job_bound`); past it, it takes no more scanned entries, so the
//! scanner threads block on their bounded queue and memory stays flat however big the tree. The
//! scan and the stale check decide from the `HS_*` flags ([`needs_archive`]); `current_action`
//! is asked only for a stale request of a file not archived, which the flags cannot tell about.

use crate::engine::{errno_text, is_requeue_errno, Engine};
use crate::inflight::{
    look_at_stale, needs_archive, request_archives, InFlightSet, Request, Stale,
};
use crate::model::FileKind;
use crate::ports::{blob_metadata, BlobEntry, EventLog, Namespace, NsError, Store};
use crate::state::{State, StateError, StateFile};
use crate::tree_scan::{default_threads, Next, ParallelScan, ScanItem, OUT_CAP, STEP_WAIT};
use crate::vocab::{ImportConflictMode, JobKind, JobState};
use blob::time::rfc3339_ms;
use lustre::Fid;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Instant;

const HISTORY: usize = 50;
/// Entries handled per step.
const STEP_ENTRIES: usize = 256;
/// In-flight files without CL_HSM for this long are settled from their HSM state.
const STALE_MS: u64 = 30_000;

/// Why a job request is refused.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// Another job is running (its id).
    #[error("refused: {0}")]
    Busy(String),
    /// No job with that id.
    #[error("no job {0}")]
    NotFound(String),
    /// A bad argument, with the reason.
    #[error("{0}")]
    Invalid(String),
}

/// Manual export progress (Azure archive status).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportProgress {
    /// Directory exported, relative to the mount.
    pub path: String,
    /// Share of the discovered files done.
    pub percent_complete: u64,
    /// Why the job failed (`FilesFailed`, `ScanFailed`).
    pub error_code: Option<String>,
    /// The failure in words.
    pub error_message: Option<String>,
    /// Files and directories found by the scan.
    pub files_discovered: u64,
    /// Their bytes.
    pub bytes_discovered: u64,
    /// Files archived (or directories and symlinks written).
    pub files_exported: u64,
    /// Bytes archived.
    pub bytes_exported: u64,
    /// Files archived and clean already (no request).
    pub files_already_exported: u64,
    /// Files that failed (logged).
    pub files_failed: u64,
    /// Directories still to scan (kept so a saved job shows them).
    #[serde(skip_serializing_if = "VecDeque::is_empty", default)]
    pub scan_queue: VecDeque<String>,
    /// Requests sent and not ended.
    #[serde(skip_serializing_if = "InFlightSet::is_empty", default)]
    pub inflight: InFlightSet<JobRequest>,
    /// Files waiting for a request: (FID, path, size).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub to_archive: Vec<(Fid, String, u64)>,
}

/// A file of a manual export whose archive request was sent. Saved as `[path, size,
/// submitted_ms]`, the shape job histories were written with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "(String, u64, u64)", into = "(String, u64, u64)")]
pub struct JobRequest {
    /// Path relative to the mount.
    pub path: String,
    /// Size when requested.
    pub size: u64,
    /// Unix ms the request was sent, or last found still queued.
    pub submitted_ms: u64,
}

impl From<(String, u64, u64)> for JobRequest {
    fn from((path, size, submitted_ms): (String, u64, u64)) -> JobRequest {
        JobRequest {
            path,
            size,
            submitted_ms,
        }
    }
}

impl From<JobRequest> for (String, u64, u64) {
    fn from(r: JobRequest) -> (String, u64, u64) {
        (r.path, r.size, r.submitted_ms)
    }
}

impl Request for JobRequest {
    fn submitted_ms(&self) -> u64 {
        self.submitted_ms
    }
    fn still_queued(&mut self, now_ms: u64) {
        self.submitted_ms = now_ms;
    }
}

/// Import progress (Azure import status).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportProgress {
    /// Blob prefix imported.
    pub prefix: String,
    /// What happens when the file exists.
    pub conflict_resolution_mode: Option<ImportConflictMode>,
    /// Errors after which the job fails (-1: never).
    pub maximum_errors: i64,
    /// Blobs listed.
    pub total_blobs_walked: u64,
    /// Listing rate.
    pub blobs_walked_per_second: u64,
    /// Blobs that became files, directories or symlinks.
    pub total_blobs_imported: u64,
    /// Released stubs created.
    pub imported_files: u64,
    /// Directories created.
    pub imported_directories: u64,
    /// Symlinks created.
    pub imported_symlinks: u64,
    /// Files that existed already.
    pub preexisting_files: u64,
    /// Directories that existed already.
    pub preexisting_directories: u64,
    /// Symlinks that existed already.
    pub preexisting_symlinks: u64,
    /// Blobs that could not be imported.
    pub total_errors: u64,
    /// Names that existed and were not replaced.
    pub total_conflicts: u64,
    /// Metadata values not applied as the blob wrote them (bad permissions or kind, a modtime that
    /// does not parse, dropped setuid/setgid/sticky bits, a directory's owner bits added): the
    /// blob was imported with a safe value instead, and one `import-metadata` line per blob in the
    /// logging container names each. Not in `totalErrors` (nothing failed); a blob refused for
    /// its owner or group is (it is not imported). See [`crate::import_meta`].
    #[serde(default)]
    pub total_coerced_values: u64,
    /// Why the job failed.
    pub error_code: Option<String>,
    /// The failure in words.
    pub error_message: Option<String>,
    /// The page of the listing being imported (`None`: the listing has not started).
    #[serde(skip, default)]
    pub listed: Option<VecDeque<crate::ports::BlobEntry>>,
    /// Where the next page of the listing starts (`None`: `listed` is the last page).
    #[serde(skip, default)]
    pub next_marker: Option<String>,
}

/// Blobs an import lists per request (Azure's largest page): the job holds one page at a time,
/// so its memory does not grow with the prefix.
pub const IMPORT_PAGE: usize = 5000;

/// One job as `jobs` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// Job id (`autoexport` for the auto-export job).
    pub id: String,
    /// What kind of job.
    pub kind: JobKind,
    /// Export: Idle, FSScanInProgress, InProgress, Cancelling, Canceled, Completed, Failed.
    /// Import: InProgress, Cancelling, Canceled, Completed, Failed. Auto-export: its status state.
    pub state: JobState,
    /// RFC 3339 start time.
    #[serde(rename = "startTimeUTC")]
    pub start_time_utc: Option<String>,
    /// RFC 3339 end time, once ended.
    #[serde(rename = "completionTimeUTC")]
    pub completion_time_utc: Option<String>,
    /// Progress of a manual export.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportProgress>,
    /// Progress of an import.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportProgress>,
    /// Status of the auto-export job (see [`crate::status`]).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub autoexport: Option<serde_json::Value>,
    #[serde(skip, default)]
    started_ms: u64,
}

/// The auto-export status as the fields a [`JobRecord`] flattens into itself: all but `state`,
/// which the record carries as its own field. Left in, it was written twice into one JSON object,
/// which `jobs --json` readers may take either way and which the daemon's own loader refused
/// (`duplicate field `state``): a history holding a disabled or cancelled auto-export job kept the
/// daemon from starting again.
fn status_fields(s: &crate::status::AutoExportStatus) -> Option<serde_json::Value> {
    let mut v = serde_json::to_value(s).ok()?;
    if let serde_json::Value::Object(m) = &mut v {
        m.remove("state");
    }
    Some(v)
}

impl JobRecord {
    /// Still running (not completed, failed or canceled).
    pub fn is_running(&self) -> bool {
        self.state.is_running()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    next_id: u64,
    jobs: VecDeque<JobRecord>,
    /// When the current auto-export job started (enabled), `None` while it is off.
    #[serde(default)]
    autoexport_since_ms: Option<u64>,
    /// Auto-export jobs started so far: names the ended ones in the history
    /// (`autoexport-N`), as the portal lists each run of auto-export as a job of its own.
    #[serde(default)]
    autoexport_runs: u64,
}

/// Running and recent jobs.
pub struct JobRegistry {
    file: Option<StateFile>,
    saved: Saved,
    archive_id: u32,
    batch_size: usize,
    dirty: bool,
    /// The running manual export's scanner threads.
    scan: Option<ParallelScan>,
    /// `import.keep_special_bits`: imports apply setuid/setgid/sticky bits (default false).
    pub keep_special_bits: bool,
}

/// A path relative to the mount that import may create: no absolute path, no `.`/`..` or empty
/// segment, no control character.
pub fn check_import_path(rel: &str) -> Result<(), String> {
    if rel.is_empty() {
        return Err("empty path".into());
    }
    if rel.starts_with('/') {
        return Err("absolute path".into());
    }
    if rel.chars().any(char::is_control) {
        return Err("control character in name".into());
    }
    for seg in rel.split('/') {
        match seg {
            "" => return Err("empty path segment".into()),
            "." | ".." => return Err(format!("\"{seg}\" path segment")),
            _ => {}
        }
    }
    Ok(())
}

impl JobRegistry {
    /// The registry saved in `file` (jobs that were running end failed: the process that ran them is gone).
    pub fn open(file: StateFile, archive_id: u32) -> Result<JobRegistry, StateError> {
        // Read as a JSON value first: a history written before `status_fields` holds auto-export
        // records with `state` twice (the same value both times), which a value takes once.
        let mut saved: Saved = match file.load::<serde_json::Value>()? {
            Some(v) => serde_json::from_value(v).map_err(|source| file.corrupt(source))?,
            None => Saved::default(),
        };
        // A job that was running when the daemon died cannot resume its scan: it ends Failed.
        for j in saved.jobs.iter_mut().filter(|j| j.is_running()) {
            j.state = JobState::Failed;
            let msg = Some("the daemon stopped while the job was running".to_string());
            if let Some(e) = j.export.as_mut() {
                e.error_code = Some("Interrupted".into());
                e.error_message = msg.clone();
                e.inflight.clear();
                e.scan_queue.clear();
                e.to_archive.clear();
            }
            if let Some(i) = j.import.as_mut() {
                i.error_code = Some("Interrupted".into());
                i.error_message = msg;
            }
        }
        Ok(JobRegistry {
            file: Some(file),
            saved,
            archive_id,
            batch_size: 1000,
            dirty: true,
            scan: None,
            keep_special_bits: false,
        })
    }

    /// A registry that is never saved (tests, one-shot commands).
    pub fn in_memory(archive_id: u32) -> JobRegistry {
        JobRegistry {
            file: None,
            saved: Saved::default(),
            archive_id,
            batch_size: 1000,
            dirty: false,
            scan: None,
            keep_special_bits: false,
        }
    }

    fn save(&mut self) {
        if !self.dirty {
            return;
        }
        if let Some(f) = &self.file {
            if let Err(e) = f.save(&self.saved) {
                tracing::error!(error = %e, "cannot save the job history");
                return;
            }
        }
        self.dirty = false;
    }

    fn running(&mut self) -> Option<&mut JobRecord> {
        self.saved.jobs.iter_mut().find(|j| j.is_running())
    }

    /// The id of the running manual job, if any.
    pub fn running_manual(&self) -> Option<String> {
        self.saved
            .jobs
            .iter()
            .find(|j| j.is_running())
            .map(|j| j.id.clone())
    }

    fn refuse_if_busy(&self, autoexport_enabled: bool) -> Result<(), JobsError> {
        if autoexport_enabled {
            return Err(JobsError::Busy(
                "job autoexport (auto-export) is running; one blob-integration job at a time (`lustre-blob autoexport disable` first)".into(),
            ));
        }
        if let Some(j) = self.saved.jobs.iter().find(|j| j.is_running()) {
            return Err(JobsError::Busy(format!(
                "job {} ({}) is running; one blob-integration job at a time",
                j.id, j.kind
            )));
        }
        Ok(())
    }

    fn push(&mut self, kind: JobKind, now: u64) -> String {
        self.saved.next_id += 1;
        let id = format!("{kind}-{}", self.saved.next_id);
        self.saved.jobs.push_back(JobRecord {
            id: id.clone(),
            kind,
            state: JobState::Idle,
            start_time_utc: Some(rfc3339_ms(now)),
            completion_time_utc: None,
            export: None,
            import: None,
            autoexport: None,
            started_ms: now,
        });
        while self.saved.jobs.len() > HISTORY {
            self.saved.jobs.pop_front();
        }
        self.dirty = true;
        id
    }

    /// Starts a manual export of `path` (relative to the mount).
    pub fn start_export(
        &mut self,
        path: &str,
        autoexport_enabled: bool,
        now: u64,
    ) -> Result<String, JobsError> {
        let rel = path.trim_matches('/').to_string();
        if !rel.is_empty() {
            check_import_path(&rel)
                .map_err(|e| JobsError::Invalid(format!("export path \"{path}\": {e}")))?;
        }
        self.refuse_if_busy(autoexport_enabled)?;
        let id = self.push(JobKind::Export, now);
        if let Some(j) = self.saved.jobs.back_mut() {
            j.state = JobState::FSScanInProgress;
            j.export = Some(ExportProgress {
                path: rel.clone(),
                scan_queue: VecDeque::from([rel]),
                ..ExportProgress::default()
            });
        }
        self.save();
        Ok(id)
    }

    /// Starts an import of the blobs under `prefix` (relative to the target's blob prefix).
    pub fn start_import(
        &mut self,
        prefix: &str,
        conflict: &str,
        maximum_errors: i64,
        autoexport_enabled: bool,
        now: u64,
    ) -> Result<String, JobsError> {
        let mode: ImportConflictMode = conflict.parse().map_err(JobsError::Invalid)?;
        if prefix.starts_with('/') {
            return Err(JobsError::Invalid(format!(
                "import prefix \"{prefix}\": absolute; a blob prefix is relative to the target's \
                 blob prefix"
            )));
        }
        if maximum_errors < -1 {
            return Err(JobsError::Invalid(format!(
                "maximumErrors {maximum_errors}: -1 (no limit) or a count of 0 or more"
            )));
        }
        let p = prefix.trim_end_matches('/').to_string();
        if !p.is_empty() {
            check_import_path(&p)
                .map_err(|e| JobsError::Invalid(format!("import prefix \"{prefix}\": {e}")))?;
        }
        self.refuse_if_busy(autoexport_enabled)?;
        let id = self.push(JobKind::Import, now);
        if let Some(j) = self.saved.jobs.back_mut() {
            j.state = JobState::InProgress;
            j.import = Some(ImportProgress {
                prefix: p,
                conflict_resolution_mode: Some(mode),
                maximum_errors,
                ..ImportProgress::default()
            });
        }
        self.save();
        Ok(id)
    }

    /// Cancels job `id`. `autoexport` is the portal's Cancel of the current auto-export job:
    /// the caller disables auto-export and reports the end with [`JobRegistry::autoexport_toggled`].
    pub fn cancel(&mut self, id: &str, _now: u64) -> Result<(), JobsError> {
        if id == "autoexport" {
            return match self.saved.autoexport_since_ms {
                Some(_) => Ok(()),
                None => Err(JobsError::Invalid(
                    "the auto-export job is not running (start one with `lustre-blob autoexport enable`)"
                        .into(),
                )),
            };
        }
        let j = self
            .saved
            .jobs
            .iter_mut()
            .find(|j| j.id == id)
            .ok_or_else(|| JobsError::NotFound(id.into()))?;
        if !j.is_running() {
            return Err(JobsError::Invalid(format!(
                "job {id} is not running (state {})",
                j.state
            )));
        }
        j.state = JobState::Cancelling;
        if let Some(scan) = self.scan.as_ref() {
            scan.cancel();
        }
        self.dirty = true;
        self.save();
        Ok(())
    }

    /// The current auto-export job: started when auto-export was enabled; a running job has no
    /// completion time.
    fn autoexport_record(&self, st: &State) -> JobRecord {
        let s = crate::status::build(st, crate::engine::now_ms(), None);
        let running = st.autoexport_enabled;
        JobRecord {
            id: "autoexport".into(),
            kind: JobKind::AutoExport,
            state: s.state,
            start_time_utc: self
                .saved
                .autoexport_since_ms
                .map(rfc3339_ms)
                .or_else(|| s.last_started_time_utc.clone()),
            completion_time_utc: if running {
                None
            } else {
                s.last_completion_time_utc.clone()
            },
            export: None,
            import: None,
            autoexport: status_fields(&s),
            started_ms: 0,
        }
    }

    /// Recent jobs, newest first, auto-export first of all.
    pub fn list(&self, st: &State) -> Vec<JobRecord> {
        let mut v = vec![self.autoexport_record(st)];
        v.extend(self.saved.jobs.iter().rev().cloned());
        v
    }

    /// One job by id, the auto-export one included.
    pub fn get(&self, id: &str, st: &State) -> Option<JobRecord> {
        if id == "autoexport" {
            return Some(self.autoexport_record(st));
        }
        self.saved.jobs.iter().find(|j| j.id == id).cloned()
    }

    /// Auto-export switched on or off. On: a new auto-export job starts now (unless one runs).
    /// Off: the running one ends with state `ended` (`Canceled` for a cancel, `Disabled` for a
    /// disable) and its final counters, kept in the history as `autoexport-N`.
    pub fn autoexport_toggled(&mut self, enabled: bool, ended: JobState, st: &State, now: u64) {
        match (enabled, self.saved.autoexport_since_ms) {
            (true, None) => {
                self.saved.autoexport_since_ms = Some(now);
                self.saved.autoexport_runs += 1;
            }
            (false, Some(since)) => {
                let s = crate::status::build(st, now, None);
                // The record's own `state` says how the job ended, not the live auto-export state.
                let counters = status_fields(&s);
                self.saved.jobs.push_back(JobRecord {
                    id: format!("autoexport-{}", self.saved.autoexport_runs.max(1)),
                    kind: JobKind::AutoExport,
                    state: ended,
                    start_time_utc: Some(rfc3339_ms(since)),
                    completion_time_utc: Some(rfc3339_ms(now)),
                    export: None,
                    import: None,
                    autoexport: counters,
                    started_ms: since,
                });
                while self.saved.jobs.len() > HISTORY {
                    self.saved.jobs.pop_front();
                }
                self.saved.autoexport_since_ms = None;
            }
            _ => return,
        }
        self.dirty = true;
        self.save();
    }

    /// Advances the running job by one step.
    pub fn step<N: Namespace, S: Store, L: EventLog>(
        &mut self,
        engine: &mut Engine<N, S, L>,
        now: u64,
    ) {
        self.batch_size = engine.config().batch_size;
        let archive_id = self.archive_id;
        let batch = self.batch_size;
        let keep_special_bits = self.keep_special_bits;
        let mut scan = self.scan.take();
        let Some(job) = self.running() else {
            engine.collect_foreign_hsm(false);
            return;
        };
        let before = job.clone();
        if job.export.is_some() {
            engine.collect_foreign_hsm(true);
            step_export(job, &mut scan, engine, archive_id, batch, now);
        } else if job.import.is_some() {
            step_import(job, engine, archive_id, keep_special_bits, now);
        }
        // Kept only while the job still runs; dropping it joins the scanner threads.
        let keep = job.is_running();
        if job != &before {
            self.dirty = true;
        }
        if keep {
            self.scan = scan;
        }
        // Progress is saved at most on state changes and job ends, not per step.
        let ended = !self.saved.jobs.iter().any(|j| j.is_running());
        if ended
            || self
                .saved
                .jobs
                .back()
                .is_some_and(|j| j.state != before.state)
        {
            self.save();
        }
    }
}

fn log_failure<L: EventLog>(
    log: &mut L,
    job: &str,
    fid: Option<Fid>,
    path: &str,
    op: &str,
    error: &str,
    now: u64,
) {
    log.record(blob::LogEntry::Failure(blob::FailureEntry {
        time: blob::time::from_ms(now),
        error: error.to_string(),
        ..blob::FailureEntry::new(job, 1, fid.map(|f| f.to_string()), path, op)
    }));
}

fn finish<L: EventLog>(job: &mut JobRecord, log: &mut L, state: JobState, now: u64) {
    job.state = state;
    job.completion_time_utc = Some(rfc3339_ms(now));
    log.flush();
    tracing::info!(job = %job.id, state = %state, "job ended");
}

/// One step of a manual export: completions, the stale requests, a chunk of the scan as far as
/// the bound allows, the requests it calls for, then the job's state.
fn step_export<N: Namespace, S: Store, L: EventLog>(
    job: &mut JobRecord,
    scan: &mut Option<ParallelScan>,
    engine: &mut Engine<N, S, L>,
    archive_id: u32,
    batch: usize,
    now: u64,
) {
    if job.state == JobState::Cancelling {
        cancel_export(job, scan, engine, archive_id, now);
        return;
    }
    let id = job.id.clone();
    let Some(ex) = job.export.as_mut() else {
        return;
    };
    settle_completions(ex, engine, &id, now);
    // Before the scan: the room stale requests free is taken in this same step.
    settle_stale_requests(ex, engine, &id, now);
    if scan.is_none() && !ex.scan_queue.is_empty() {
        let roots: Vec<Vec<u8>> = ex.scan_queue.drain(..).map(String::into_bytes).collect();
        match ParallelScan::start(engine.ns().dir_lister(), roots, default_threads(), OUT_CAP) {
            Ok(s) => *scan = Some(s),
            Err(e) => {
                ex.error_code = Some("ScanFailed".into());
                ex.error_message = Some(format!("cannot start the scanner threads: {e}"));
                finish(job, engine.log(), JobState::Failed, now);
                return;
            }
        }
    }
    let bound = job_bound(engine.config());
    take_scanned(ex, scan, engine, &id, bound, now);
    let send = Sending {
        archive_id,
        batch,
        bound,
    };
    let scanning = scan.is_some() || !ex.scan_queue.is_empty();
    request_job_archives(ex, engine, &id, &send, scanning, now);
    update_export_state(job, engine.log(), scanning, now);
}

/// Cancels a manual export: HSM cancel of its requests, the scan stopped.
fn cancel_export<N: Namespace, S: Store, L: EventLog>(
    job: &mut JobRecord,
    scan: &mut Option<ParallelScan>,
    engine: &mut Engine<N, S, L>,
    archive_id: u32,
    now: u64,
) {
    if let Some(ex) = job.export.as_mut() {
        let fids: Vec<Fid> = ex.inflight.keys().copied().collect();
        if !fids.is_empty() {
            if let Err(e) = engine.ns().cancel(archive_id, &fids) {
                tracing::warn!(job = %job.id, error = %e, "cancel request failed");
            }
        }
        ex.inflight.clear();
        ex.scan_queue.clear();
        ex.to_archive.clear();
    }
    // Dropping the scan stops and joins the scanner threads.
    *scan = None;
    finish(job, engine.log(), JobState::Canceled, now);
}

/// The CL_HSM archive ends of the job's files since the last step.
fn settle_completions<N: Namespace, S: Store, L: EventLog>(
    ex: &mut ExportProgress,
    engine: &mut Engine<N, S, L>,
    id: &str,
    now: u64,
) {
    for (fid, errno) in engine.take_foreign_hsm() {
        let Some(req) = ex.inflight.remove(&fid) else {
            continue;
        };
        if errno == 0 {
            ex.files_exported += 1;
            ex.bytes_exported += req.size;
        } else if is_requeue_errno(errno) {
            ex.to_archive.push((fid, req.path, req.size));
        } else {
            ex.files_failed += 1;
            let why = errno_text(errno);
            log_failure(engine.log(), id, Some(fid), &req.path, "archive", &why, now);
        }
    }
}

/// Most files a manual export holds requested or waiting for a request: the engine's
/// `max_in_flight`. The job and auto-export each have this budget rather than sharing one: they
/// never start together (one blob-integration job at a time), and overlap only while an
/// auto-export iteration disabled just before the job finishes its tail, so the coordinator's
/// catalog holds at most twice the bound. The bound is not what limits the copies (the
/// coordinator hands each agent at most `hsm.max_requests`); it keeps the catalog short, since
/// Lustre walks it from its start under `cdt_llog_lock` for every lookup
/// (`mdt_hsm_get_action` → `cdt_llog_process`) and in every coordinator pass.
fn job_bound(cfg: &crate::engine::EngineConfig) -> usize {
    cfg.max_in_flight.max(1)
}

/// Files the job holds: requested and not ended, or waiting for a request.
fn held(ex: &ExportProgress) -> usize {
    ex.inflight.len() + ex.to_archive.len()
}

/// Takes at most [`STEP_ENTRIES`] entries the scanner threads found: directories and symlinks
/// are exported here, regular files not archived and clean wait in `to_archive`. Nothing is
/// taken while the job holds `bound` files (each entry adds at most one): the scanners then
/// wait on their bounded queue until requests end.
fn take_scanned<N: Namespace, S: Store, L: EventLog>(
    ex: &mut ExportProgress,
    scan: &mut Option<ParallelScan>,
    engine: &mut Engine<N, S, L>,
    id: &str,
    bound: usize,
    now: u64,
) {
    let deadline = Instant::now() + STEP_WAIT;
    for _ in 0..STEP_ENTRIES {
        if held(ex) >= bound {
            break;
        }
        let Some(sc) = scan.as_ref() else {
            break;
        };
        match sc.next_item(deadline) {
            Next::Item(ScanItem::Entry { dir, name, kind }) => {
                let rel = crate::scope::join(&dir, &name);
                scanned_entry(ex, engine, id, &rel, kind, now);
            }
            Next::Item(ScanItem::DirError { dir, error }) => {
                ex.files_failed += 1;
                let dir = String::from_utf8_lossy(&dir);
                log_failure(engine.log(), id, None, &dir, "scan", &error, now);
            }
            Next::Waiting => break,
            Next::Finished => {
                *scan = None;
                break;
            }
        }
    }
}

/// One entry of the scan, counted and exported or queued for a request.
fn scanned_entry<N: Namespace, S: Store, L: EventLog>(
    ex: &mut ExportProgress,
    engine: &mut Engine<N, S, L>,
    id: &str,
    rel: &[u8],
    kind: FileKind,
    now: u64,
) {
    let text = String::from_utf8_lossy(rel).into_owned();
    match kind {
        FileKind::Directory | FileKind::Symlink => {
            ex.files_discovered += 1;
            match export_entry(engine, rel, kind) {
                Ok(()) => ex.files_exported += 1,
                Err(e) => {
                    ex.files_failed += 1;
                    log_failure(engine.log(), id, None, &text, "export", &e, now);
                }
            }
        }
        FileKind::Regular => match look_at_file(engine.ns(), rel) {
            Ok(Some((size, up_to_date, fid))) => {
                ex.files_discovered += 1;
                ex.bytes_discovered += size;
                if up_to_date {
                    ex.files_already_exported += 1;
                } else {
                    ex.to_archive.push((fid, text, size));
                }
            }
            Ok(None) => {}
            Err(e) => {
                ex.files_failed += 1;
                log_failure(engine.log(), id, None, &text, "scan", &e.to_string(), now);
            }
        },
        FileKind::Other => {}
    }
}

/// Size, whether it is archived and clean (from the flags alone, as auto-export decides:
/// [`needs_archive`]), and FID of a regular file (`None`: deleted since the scan saw it).
fn look_at_file<N: Namespace>(ns: &N, rel: &[u8]) -> Result<Option<(u64, bool, Fid)>, NsError> {
    let Some(st) = ns.stat(rel)? else {
        return Ok(None);
    };
    let up_to_date = !needs_archive(&ns.hsm_state(rel)?);
    Ok(Some((st.size, up_to_date, ns.path2fid(rel)?)))
}

/// How the job's archive requests are sent.
struct Sending {
    archive_id: u32,
    /// Files per request.
    batch: usize,
    /// Most requests in flight ([`job_bound`]).
    bound: usize,
}

/// Free slots the job waits for before it sends a request while files wait beyond its bound.
fn refill(send: &Sending) -> usize {
    send.batch.min(send.bound / 4).max(1)
}

/// Requests archives of the files waiting in `to_archive`, first come first, as long as fewer
/// than `send.bound` are in flight; a file refused (alone) or not taken by a paused coordinator
/// fails with the refusal.
fn request_job_archives<N: Namespace, S: Store, L: EventLog>(
    ex: &mut ExportProgress,
    engine: &mut Engine<N, S, L>,
    id: &str,
    send: &Sending,
    scanning: bool,
    now: u64,
) {
    let room = send.bound.saturating_sub(ex.inflight.len());
    let n = room.min(ex.to_archive.len());
    if n == 0 {
        return;
    }
    // While the scan runs, a request per freed slot would cost the MDS an MDS_HSM_REQUEST for
    // every few files (the job holds at most its bound, so at the bound each end lets the scan
    // add one file): a 1,000,000-file export sent 237,179 requests of 4.2 files. Wait until a
    // batch's worth waits instead (a quarter of the bound at most, so the copytools never run
    // dry); with nothing in flight, or once the scan is over, send what there is.
    if scanning && n < refill(send) && !ex.inflight.is_empty() {
        return;
    }
    let payload = format!("lb:j={id}:i=1");
    let todo: Vec<(Fid, String, u64)> = ex.to_archive.drain(..n).collect();
    let fids: Vec<Fid> = todo.iter().map(|t| t.0).collect();
    for (fid, path, size) in todo {
        let req = JobRequest {
            path,
            size,
            submitted_ms: now,
        };
        ex.inflight.insert(fid, req);
    }
    let sent = request_archives(
        engine.ns(),
        send.archive_id,
        &fids,
        send.batch,
        payload.as_bytes(),
    );
    for fid in sent.gone {
        ex.inflight.remove(&fid); // deleted before its request: nothing to export
    }
    let paused = sent.paused.into_iter().flat_map(|(e, fids)| {
        let fids: Vec<(Fid, NsError)> = fids.into_iter().map(|f| (f, e.clone())).collect();
        fids
    });
    for (fid, e) in sent.refused.into_iter().chain(paused) {
        if let Some(req) = ex.inflight.remove(&fid) {
            ex.files_failed += 1;
            log_failure(
                engine.log(),
                id,
                Some(fid),
                &req.path,
                "archive",
                &e.to_string(),
                now,
            );
        }
    }
}

/// Requests without an answer for [`STALE_MS`], settled as auto-export settles its own
/// ([`look_at_stale`]: the flags first, `current_action` only for a file not archived). A file
/// whose state cannot be read fails with the reason (it is not silently dropped).
fn settle_stale_requests<N: Namespace, S: Store, L: EventLog>(
    ex: &mut ExportProgress,
    engine: &mut Engine<N, S, L>,
    id: &str,
    now: u64,
) {
    for fid in ex.inflight.stale(now, STALE_MS) {
        match look_at_stale(engine.ns(), &fid) {
            Stale::Queued => {
                if let Some(req) = ex.inflight.get_mut(&fid) {
                    req.still_queued(now);
                }
            }
            Stale::Gone => {
                ex.inflight.remove(&fid); // deleted since: nothing to export
            }
            Stale::Archived => {
                if let Some(req) = ex.inflight.remove(&fid) {
                    ex.files_exported += 1;
                    ex.bytes_exported += req.size;
                }
            }
            Stale::Vanished => {
                if let Some(req) = ex.inflight.remove(&fid) {
                    ex.to_archive.push((fid, req.path, req.size));
                }
            }
            Stale::Unknown(e) => {
                if let Some(req) = ex.inflight.remove(&fid) {
                    ex.files_failed += 1;
                    let why = format!("the archive's end cannot be told: {e}");
                    log_failure(engine.log(), id, Some(fid), &req.path, "archive", &why, now);
                }
            }
        }
    }
}

/// Percent complete, and the job's end once nothing is scanned, waiting or in flight.
fn update_export_state<L: EventLog>(job: &mut JobRecord, log: &mut L, scanning: bool, now: u64) {
    let Some(ex) = job.export.as_mut() else {
        return;
    };
    let done = ex.files_exported + ex.files_failed + ex.files_already_exported;
    ex.percent_complete = if scanning || ex.files_discovered == 0 {
        0
    } else {
        done * 100 / ex.files_discovered.max(1)
    };
    if scanning {
        job.state = JobState::FSScanInProgress;
    } else if ex.inflight.is_empty() && ex.to_archive.is_empty() {
        ex.percent_complete = 100;
        if ex.files_failed > 0 {
            ex.error_code = Some("FilesFailed".into());
            ex.error_message = Some(format!(
                "{} files failed; see the logging container",
                ex.files_failed
            ));
        }
        finish(job, log, JobState::Completed, now);
    } else {
        job.state = JobState::InProgress;
    }
}

fn export_entry<N: Namespace, S: Store, L: EventLog>(
    engine: &mut Engine<N, S, L>,
    rel: &[u8],
    kind: FileKind,
) -> Result<(), String> {
    let st = engine
        .ns()
        .stat(rel)
        .map_err(|e| e.to_string())?
        .ok_or("vanished")?;
    let fid = engine.ns().path2fid(rel).ok();
    let meta = blob_metadata(&st, fid);
    let name = engine.store().name_for(rel).map_err(|e| e.to_string())?;
    match kind {
        FileKind::Directory => engine.store().put_dir(&name, &meta),
        _ => {
            let target = engine.ns().read_link(rel).map_err(|e| e.to_string())?;
            engine.store().put_symlink(&name, &target, &meta)
        }
    }
    .map_err(|e| e.to_string())
}

/// One step of an import: the next page of the listing when the last one is done, at most
/// [`STEP_ENTRIES`] of its blobs imported, then the job's state.
fn step_import<N: Namespace, S: Store, L: EventLog>(
    job: &mut JobRecord,
    engine: &mut Engine<N, S, L>,
    archive_id: u32,
    keep_special_bits: bool,
    now: u64,
) {
    let id = job.id.clone();
    let Some(im) = job.import.as_mut() else {
        return;
    };
    if job.state == JobState::Cancelling {
        im.listed = None;
        finish(job, engine.log(), JobState::Canceled, now);
        return;
    }
    let page_done = im.listed.as_ref().is_none_or(VecDeque::is_empty);
    if im.listed.is_none() || (page_done && im.next_marker.is_some()) {
        if let Err((code, message)) = list_next_page(im, engine.store()) {
            im.error_code = Some(code.into());
            im.error_message = Some(message);
            finish(job, engine.log(), JobState::Failed, now);
            return;
        }
    }
    let mode = im
        .conflict_resolution_mode
        .unwrap_or(ImportConflictMode::Fail);
    let rules = ImportRules {
        mode,
        archive_id,
        keep_special_bits,
    };
    for _ in 0..STEP_ENTRIES {
        let Some(entry) = im.listed.as_mut().and_then(|l| l.pop_front()) else {
            break;
        };
        im.total_blobs_walked += 1;
        let blob = ImportedBlob {
            rel: rel_of_blob(engine.store(), &entry.name),
            entry,
        };
        let mut coerced = Vec::new();
        let res = import_one(
            engine.ns(),
            engine.store(),
            &blob.rel,
            &blob.entry,
            &rules,
            &mut coerced,
        );
        log_coerced(im, engine.log(), &id, &blob, &coerced, now);
        count_import(im, engine.log(), &id, &blob, res, now);
        if im.maximum_errors >= 0 && im.total_errors > im.maximum_errors as u64 {
            im.error_code = Some("MaximumErrorsExceeded".into());
            im.error_message = Some(format!(
                "{} errors (maximumErrors {})",
                im.total_errors, im.maximum_errors
            ));
            im.listed = None;
            finish(job, engine.log(), JobState::Failed, now);
            return;
        }
    }
    let secs = (now.saturating_sub(job.started_ms) / 1000).max(1);
    im.blobs_walked_per_second = im.total_blobs_walked / secs;
    if im.listed.as_ref().is_some_and(|l| l.is_empty()) && im.next_marker.is_none() {
        im.listed = None;
        end_import(job, engine.log(), mode, now);
    }
}

/// Lists the next page of blobs under the import's prefix, in name order (the service lists
/// by name: a directory's blob comes before the blobs under it). `Err`: the job's error code
/// and message.
fn list_next_page<S: Store>(
    im: &mut ImportProgress,
    store: &S,
) -> Result<(), (&'static str, String)> {
    let dir = if im.prefix.is_empty() {
        store.root()
    } else {
        store
            .name_for(im.prefix.as_bytes())
            .map_err(|e| ("InvalidPrefix", e.to_string()))?
    };
    let marker = im.next_marker.take().unwrap_or_default();
    let (page, next) = store
        .list_page(dir.trim_end_matches('/'), &marker, IMPORT_PAGE)
        .map_err(|e| ("ListFailed", e.to_string()))?;
    im.listed = Some(page.into());
    im.next_marker = next;
    Ok(())
}

/// How an import creates entries: the conflict mode, the archive of its stubs, and whether
/// setuid/setgid/sticky bits from blob metadata are kept.
struct ImportRules {
    mode: ImportConflictMode,
    archive_id: u32,
    keep_special_bits: bool,
}

/// A listed blob and the path it is imported at.
struct ImportedBlob {
    rel: String,
    entry: BlobEntry,
}

/// The path a blob is imported at. A name the store cannot even parse is still checked as
/// written, for a precise reason.
fn rel_of_blob<S: Store>(store: &S, name: &str) -> String {
    store.rel_for(name).unwrap_or_else(|| {
        let root = store.root();
        let under = format!("{root}/");
        match name.strip_prefix(&under) {
            Some(r) if !root.is_empty() => r.to_string(),
            _ => name.to_string(),
        }
    })
}

/// Logs the metadata values of a blob that were not applied as written.
fn log_coerced<L: EventLog>(
    im: &mut ImportProgress,
    log: &mut L,
    id: &str,
    blob: &ImportedBlob,
    coerced: &[String],
    now: u64,
) {
    if coerced.is_empty() {
        return;
    }
    im.total_coerced_values += coerced.len() as u64;
    let why = format!(
        "blob {:?}: {} metadata value(s) not applied as written: {}",
        blob.entry.name,
        coerced.len(),
        coerced.join("; ")
    );
    log_failure(log, id, None, &blob.rel, "import-metadata", &why, now);
}

/// Counts what one blob's import did, and logs a conflict or an error.
fn count_import<L: EventLog>(
    im: &mut ImportProgress,
    log: &mut L,
    id: &str,
    blob: &ImportedBlob,
    res: Result<Imported, ImportError>,
    now: u64,
) {
    match res {
        Ok(Imported::File) => {
            im.imported_files += 1;
            im.total_blobs_imported += 1;
        }
        Ok(Imported::Dir) => {
            im.imported_directories += 1;
            im.total_blobs_imported += 1;
        }
        Ok(Imported::Symlink) => {
            im.imported_symlinks += 1;
            im.total_blobs_imported += 1;
        }
        Ok(Imported::Preexisting(k)) => match k {
            FileKind::Directory => im.preexisting_directories += 1,
            FileKind::Symlink => im.preexisting_symlinks += 1,
            _ => im.preexisting_files += 1,
        },
        Err(ImportError::Conflict(e)) => {
            im.total_conflicts += 1;
            let why = format!("conflict: {e}");
            log_failure(log, id, None, &blob.rel, "import", &why, now);
        }
        Err(ImportError::Other(e)) => {
            im.total_errors += 1;
            let shown = if blob.rel.is_empty() {
                &blob.entry.name
            } else {
                &blob.rel
            };
            log_failure(log, id, None, shown, "import", &e, now);
        }
    }
}

/// The end of an import whose listing is done: failed when conflicts stand in mode `Fail`.
fn end_import<L: EventLog>(job: &mut JobRecord, log: &mut L, mode: ImportConflictMode, now: u64) {
    let Some(im) = job.import.as_mut() else {
        return;
    };
    let state = if mode == ImportConflictMode::Fail && im.total_conflicts > 0 {
        im.error_code = Some("Conflicts".into());
        im.error_message = Some(format!(
            "{} conflicts with existing files (conflict mode Fail)",
            im.total_conflicts
        ));
        JobState::Failed
    } else {
        JobState::Completed
    };
    finish(job, log, state, now);
}

enum Imported {
    File,
    Dir,
    Symlink,
    Preexisting(FileKind),
}

enum ImportError {
    Conflict(String),
    Other(String),
}

/// Imports one listed blob at `rel`: its metadata decoded (none of it trusted), parents
/// made, an existing entry settled by `mode`, then the stub, directory or symlink created.
fn import_one<N: Namespace, S: Store>(
    ns: &N,
    store: &S,
    rel: &str,
    entry: &BlobEntry,
    rules: &ImportRules,
    coerced: &mut Vec<String>,
) -> Result<Imported, ImportError> {
    check_import_path(rel).map_err(|e| {
        ImportError::Other(format!(
            "refused blob name \"{}\": {e}",
            entry.name.escape_debug()
        ))
    })?;
    // The listing carries each blob's metadata (no HEAD per blob); none of it is trusted: an
    // owner that is not an id refuses the blob, other bad values are replaced by safe ones.
    let decoded = crate::import_meta::decode(
        &entry.metadata,
        entry.size,
        entry.last_modified_sec,
        rules.keep_special_bits,
    )
    .map_err(ImportError::Other)?;
    *coerced = decoded.coerced;
    let meta = decoded.meta;
    make_parents(ns, rel, meta.uid, meta.gid)?;
    if let Some(kept) = settle_existing(ns, rel, meta.kind, rules.mode)? {
        return Ok(kept);
    }
    let other = |e: &dyn std::fmt::Display| ImportError::Other(e.to_string());
    match meta.kind {
        FileKind::Directory => {
            ns.make_dir(rel.as_bytes(), meta.mode, meta.uid, meta.gid)
                .map_err(|e| other(&e))?;
            Ok(Imported::Dir)
        }
        FileKind::Symlink => {
            let target = store.get_bytes(&entry.name).map_err(|e| other(&e))?;
            ns.make_symlink(rel.as_bytes(), &target)
                .map_err(|e| other(&e))?;
            Ok(Imported::Symlink)
        }
        _ => {
            // The stub's atime is its mtime: the blob keeps no atime.
            let attrs = lustre::ImportAttrs {
                size: meta.size,
                mode: 0o100000 | (meta.mode & 0o7777),
                uid: meta.uid,
                gid: meta.gid,
                atime_sec: meta.mtime_sec,
                atime_nsec: meta.mtime_nsec,
                mtime_sec: meta.mtime_sec,
                mtime_nsec: meta.mtime_nsec,
            };
            ns.import_file(
                rel.as_bytes(),
                rules.archive_id,
                &attrs,
                decoded.layout.as_ref(),
            )
            .map_err(|e| other(&e))?;
            Ok(Imported::File)
        }
    }
}

/// Makes the missing parents of `rel`. Each must be a real directory inside the mount, never
/// a symlink leading elsewhere.
fn make_parents<N: Namespace>(ns: &N, rel: &str, uid: u32, gid: u32) -> Result<(), ImportError> {
    let other = |e: &dyn std::fmt::Display| ImportError::Other(e.to_string());
    let segs: Vec<&str> = rel.split('/').collect();
    for i in 1..segs.len() {
        let parent = segs[..i].join("/");
        match ns.stat(parent.as_bytes()).map_err(|e| other(&e))? {
            Some(st) if st.kind == FileKind::Directory => {}
            Some(st) => {
                return Err(ImportError::Other(format!(
                    "parent \"{parent}\" is a {} , not a directory",
                    st.kind
                )))
            }
            None => ns
                .make_dir(parent.as_bytes(), 0o755, uid, gid)
                .map_err(|e| other(&e))?,
        }
    }
    Ok(())
}

/// What an entry already at `rel` becomes under `mode`: kept (`Some`), or removed so the
/// blob's entry replaces it (`None`; also when there is none). Directories are never removed.
fn settle_existing<N: Namespace>(
    ns: &N,
    rel: &str,
    kind: FileKind,
    mode: ImportConflictMode,
) -> Result<Option<Imported>, ImportError> {
    let other = |e: &dyn std::fmt::Display| ImportError::Other(e.to_string());
    let Some(ex) = ns.stat(rel.as_bytes()).map_err(|e| other(&e))? else {
        return Ok(None);
    };
    if ex.kind == FileKind::Directory && kind == FileKind::Directory {
        return Ok(Some(Imported::Preexisting(FileKind::Directory)));
    }
    let replace = match mode {
        ImportConflictMode::Fail => return Err(ImportError::Conflict(format!("{rel} exists"))),
        ImportConflictMode::Skip => false,
        ImportConflictMode::OverwriteAlways => true,
        ImportConflictMode::OverwriteIfDirty => {
            ex.kind == FileKind::Regular
                && ns
                    .hsm_state(rel.as_bytes())
                    .is_ok_and(|h| !h.is_clean_archive())
        }
    };
    if !replace || ex.kind == FileKind::Directory {
        return Ok(Some(Imported::Preexisting(ex.kind)));
    }
    ns.remove_file(rel.as_bytes()).map_err(|e| other(&e))?;
    Ok(None)
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
