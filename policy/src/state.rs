//! The daemon's durable state: changelog cursors, pending work, the current iteration, counters
//! and job history. Saved atomically (temp file + fsync + rename + fsync of the directory), so a
//! kill -9 at any point leaves either the old or the new state, never a torn one.

use crate::inflight::{InFlightSet, Request};
use lustre::Fid;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Per-MDT changelog position.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Highest record index processed (0 = none yet).
    pub last_read: u64,
    /// Highest index acknowledged with changelog_clear.
    pub cleared: u64,
}

/// Records that must not be cleared until this entry's work is final: (MDT, lowest index).
pub type Holds = Vec<(usize, u64)>;

/// Adds a hold of record `index` of MDT `mdt` (the lowest index per MDT is kept).
pub fn add_hold(holds: &mut Holds, mdt: usize, index: u64) {
    match holds.iter_mut().find(|(m, _)| *m == mdt) {
        Some((_, i)) => *i = (*i).min(index),
        None => holds.push((mdt, index)),
    }
}

/// A file waiting for the next iteration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The changelog records that announced it.
    pub holds: Holds,
    /// Unix ms of the last change seen (min_age counts from here).
    pub last_change_ms: u64,
    /// Earliest change not yet exported (the lag gauge counts from here).
    pub first_change_ms: u64,
    /// Earlier attempts that ended with an error worth a bounded number of tries (EIO, ...):
    /// the file fails for good after [`crate::engine::MAX_ATTEMPTS`] of them.
    pub attempts: u32,
    /// Every earlier try that did not export the file, whatever the reason: the exponent of
    /// the back-off before the next one.
    #[serde(default)]
    pub retries: u32,
    /// Unix ms before which the file is not tried again (0 = as soon as it is due).
    #[serde(default)]
    pub retry_at_ms: u64,
    /// Why the last try did not export the file (shown by `status` while it waits).
    #[serde(default)]
    pub last_error: Option<String>,
    /// The path the records gave the file: the parent directory's path and the name of its
    /// CREATE, MKDIR or SOFTLINK record, or of a RENAME of it since. Discovery uses it instead
    /// of a `fid2path` (an MDS call) only once the client confirms it still leads to this FID
    /// (`lstat` + `path2fid`); a record that may have changed it drops it. UTF-8 paths only
    /// (others are asked for). Absent in states written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_path: Option<String>,
    /// The file's CREATE was read, and no CL_HSM of it since: its HSM flags are still empty
    /// (every change of them writes a CL_HSM, and the changelog mask must have HSM). Absent
    /// (false) in states written before it was kept.
    #[serde(default, skip_serializing_if = "is_false")]
    pub created: bool,
    /// A CLOSE of the file was read since its CREATE: whoever created it is done with the
    /// descriptor it was created through. Together with [`Pending::created`], discovery asks
    /// no `hsm_state` (an `llapi_hsm_import`, for one, sets the flags through that descriptor
    /// before closing it, so its CL_HSM comes before the CLOSE).
    #[serde(default, skip_serializing_if = "is_false")]
    pub closed: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What a record read after a file's creation makes unsure about it ([`Pending::forget`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forget {
    /// Its path may have changed (a rename, an unlink or a new link of it).
    pub path: bool,
    /// Its HSM flags may have changed (a CL_HSM of it).
    pub hsm: bool,
}

impl Forget {
    /// The path only.
    pub const PATH: Forget = Forget {
        path: true,
        hsm: false,
    };
    /// The HSM flags only.
    pub const HSM: Forget = Forget {
        path: false,
        hsm: true,
    };

    /// Both, where either one is unsure.
    pub fn and(self, other: Forget) -> Forget {
        Forget {
            path: self.path || other.path,
            hsm: self.hsm || other.hsm,
        }
    }
}

impl Pending {
    /// Drops what a later record made unsure: discovery asks the MDS for it instead.
    pub fn forget(&mut self, what: Forget) {
        if what.path {
            self.known_path = None;
        }
        if what.hsm {
            self.created = false;
            self.closed = false;
        }
    }

    /// Whether discovery may skip `hsm_state`: created and closed under the daemon's eyes,
    /// with no CL_HSM since ([`Pending::created`], [`Pending::closed`]).
    pub fn hsm_known_empty(&self) -> bool {
        self.created && self.closed
    }

    /// Takes in the entry of changes read after this one was taken into an iteration, when the
    /// iteration tries the file (the try covers them): their holds, times and tries. What this
    /// entry knows from the file's creation stays; a record that made it unsure was noted as such.
    pub fn absorb(&mut self, later: Pending) {
        for (m, i) in later.holds {
            add_hold(&mut self.holds, m, i);
        }
        self.last_change_ms = self.last_change_ms.max(later.last_change_ms);
        self.first_change_ms = self.first_change_ms.min(later.first_change_ms);
        self.attempts = self.attempts.max(later.attempts);
        self.retries = self.retries.max(later.retries);
    }

    /// A file first seen now, held by changelog record `index` of MDT `mdt`.
    pub fn new(mdt: usize, index: u64, now_ms: u64) -> Pending {
        Pending {
            holds: vec![(mdt, index)],
            last_change_ms: now_ms,
            first_change_ms: now_ms,
            attempts: 0,
            retries: 0,
            retry_at_ms: 0,
            last_error: None,
            known_path: None,
            created: false,
            closed: false,
        }
    }
}

/// A file whose archive request was sent and whose CL_HSM has not arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlight {
    /// The changelog records that announced it.
    pub holds: Holds,
    /// Path when requested.
    pub path: String,
    /// Size when requested.
    pub size: u64,
    /// Unix ms the request was sent, or last found still queued.
    pub submitted_ms: u64,
    /// Earliest change not yet exported.
    pub first_change_ms: u64,
    /// See [`Pending::attempts`].
    pub attempts: u32,
    /// See [`Pending::retries`].
    #[serde(default)]
    pub retries: u32,
    /// The request made no progress past the iteration deadline: it no longer holds its
    /// iteration open (the file is carried into the next one, where it still settles).
    #[serde(default)]
    pub carried: bool,
}

impl Request for InFlight {
    fn submitted_ms(&self) -> u64 {
        self.submitted_ms
    }
    fn still_queued(&mut self, now_ms: u64) {
        self.submitted_ms = now_ms;
    }
}

/// A namespace operation HSM does not carry (delete, move), applied at the next iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NsOpKind {
    /// Delete the blob(s) of a path.
    Delete {
        /// Path relative to the mount.
        path: String,
        /// A directory: its blobs below go too.
        dir: bool,
    },
    /// Move the blob(s) of a path.
    Move {
        /// Old path relative to the mount.
        from: String,
        /// New path.
        to: String,
    },
}

/// A namespace operation, with the record that announced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NsOp {
    /// MDT of the record.
    pub mdt: usize,
    /// Index of the record.
    pub index: u64,
    /// Unix ms it was seen.
    pub at_ms: u64,
    /// What to do.
    pub op: NsOpKind,
    /// Tries that failed because the store was unavailable (the back-off exponent).
    #[serde(default)]
    pub retries: u32,
    /// Unix ms before which the operation is not tried again.
    #[serde(default)]
    pub retry_at_ms: u64,
    /// Why the last try failed.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl NsOp {
    /// Operation `op`, announced by record `index` of MDT `mdt` seen at `at_ms`, not tried yet.
    pub fn new(mdt: usize, index: u64, at_ms: u64, op: NsOpKind) -> NsOp {
        NsOp {
            mdt,
            index,
            at_ms,
            op,
            retries: 0,
            retry_at_ms: 0,
            last_error: None,
        }
    }
}

/// Counters of one iteration ("so far" while it runs), DESIGN §4.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IterCounters {
    /// Iteration number.
    pub number: u64,
    /// Unix ms it started.
    pub started_ms: u64,
    /// Unix ms it ended.
    pub ended_ms: Option<u64>,
    /// Files it found to export.
    pub files_discovered: u64,
    /// Their bytes.
    pub bytes_discovered: u64,
    /// Files exported.
    pub files_exported: u64,
    /// Bytes exported.
    pub bytes_exported: u64,
    /// Files failed.
    pub files_failed: u64,
    /// Re-queued for the next iteration (CANCELED, EBUSY, store unavailable): not failed, but
    /// not exported either, so the iteration is not a successful one.
    pub files_requeued: u64,
    /// Requests that made no progress past the iteration deadline and were carried into the
    /// next iteration (each file counted once).
    #[serde(default)]
    pub files_carried: u64,
}

/// Overall counters, DESIGN §4.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Files exported in all.
    pub files_exported: u64,
    /// Bytes exported in all.
    pub bytes_exported: u64,
    /// Files failed in all.
    pub files_failed: u64,
    /// Iterations completed.
    pub iterations_completed: u64,
    /// End time of the last iteration that exported every file it discovered (Azure's "Last
    /// Successful Iteration": no file failed and none had to be re-queued).
    pub last_successful_ms: Option<u64>,
    /// Start of the last iteration.
    pub last_started_ms: Option<u64>,
    /// End of the last iteration.
    pub last_completed_ms: Option<u64>,
}

/// The running iteration: files still to look at, and its counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Iteration {
    /// Its counters so far.
    pub counters: IterCounters,
    /// Taken from the pending set, not yet stat'ed / requested.
    pub to_discover: VecDeque<(Fid, Pending)>,
}

/// One failed file, kept for `flush` answers and `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Unix ms of the failure.
    pub at_ms: u64,
    /// Iteration it happened in.
    pub iteration: u64,
    /// The file's FID, when it has one.
    pub fid: Option<Fid>,
    /// Path relative to the mount.
    pub path: String,
    /// What failed (`archive`, `export`, `delete`, ...).
    pub operation: String,
    /// Why.
    pub error: String,
}

/// Which changelogs the cursors count in: the changelog user and the MDT devices, in order.
/// A state kept for other changelogs (another file system, another user) must not be applied:
/// its cursors would skip or re-read records and its FIDs name other files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The policy's `changelog_user` as written (one id, or `MDT=id,...`).
    pub changelog_user: String,
    /// Changelog device of each MDT, in order.
    pub mdts: Vec<String>,
    /// The user of each MDT, in `mdts` order (ids are numbered per MDT); empty in states from
    /// before per-MDT users, which read `changelog_user` on every MDT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

impl Source {
    /// The changelog user MDT number `i` is read with.
    pub fn user_of(&self, i: usize) -> &str {
        self.users.get(i).unwrap_or(&self.changelog_user)
    }
}

/// A coordinator that does not take requests, and when it is asked again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CoordinatorPause {
    /// Unix ms of the first refusal.
    pub since_ms: u64,
    /// Unix ms of the next try.
    pub until_ms: u64,
    /// Tries refused so far (the back-off exponent).
    pub retries: u32,
    /// The refusal.
    pub reason: String,
}

/// Everything the daemon persists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// [`STATE_VERSION`] of the writer.
    pub version: u32,
    /// `None` in a state written before this was recorded; set on the next start.
    #[serde(default)]
    pub source: Option<Source>,
    /// Changelog position of each MDT.
    pub cursors: Vec<Cursor>,
    /// Whether the auto-export is on.
    pub autoexport_enabled: bool,
    /// Files waiting for an iteration.
    pub pending: BTreeMap<Fid, Pending>,
    /// FIDs whose metadata changed (metadata = sync), with their holds.
    pub meta_pending: BTreeMap<Fid, Holds>,
    /// Deletes and renames waiting.
    pub ns_ops: VecDeque<NsOp>,
    /// Archive requests sent and not ended.
    pub inflight: InFlightSet<InFlight>,
    /// The running iteration.
    pub iteration: Option<Iteration>,
    /// Counters of the last ended iteration.
    pub last_iteration: Option<IterCounters>,
    /// Number of the next iteration.
    pub next_iteration: u64,
    /// Overall counters.
    pub totals: Totals,
    /// Most recent failures (bounded).
    pub recent_failures: VecDeque<Failure>,
    /// Failures that still stand, by file: an entry goes only when that file is exported, is
    /// found archived and clean, or is gone. `status` and `flush` answer from here, never from
    /// counters, so a failure recorded long before a `flush` is still reported by it.
    #[serde(default)]
    pub failed: BTreeMap<Fid, Failure>,
    /// Standing failures of namespace operations (delete, rename) and of entries without a
    /// FID, by path: an entry goes when a later operation on the same path succeeds.
    #[serde(default)]
    pub failed_ops: BTreeMap<String, Failure>,
    /// The HSM coordinator refused requests because it is not running (`hsm_control` shut
    /// down): a pause with back-off, not a failure of any file.
    #[serde(default)]
    pub coordinator_pause: Option<CoordinatorPause>,
}

impl State {
    /// How many failures stand now (files and namespace operations).
    pub fn standing_failures(&self) -> usize {
        self.failed.len() + self.failed_ops.len()
    }

    /// Pending files (waiting for an iteration or in the running one's queue) that wait out a
    /// back-off after a try that did not export them, with the latest reason.
    pub fn waiting(&self, now_ms: u64) -> (u64, Option<(&str, u64)>) {
        let queued = self
            .iteration
            .iter()
            .flat_map(|it| it.to_discover.iter().map(|(_, p)| p));
        let files = self
            .pending
            .values()
            .chain(queued)
            .map(|p| (p.retry_at_ms, p.last_error.as_deref()));
        let ops = self
            .ns_ops
            .iter()
            .map(|o| (o.retry_at_ms, o.last_error.as_deref()));
        let mut count = 0;
        let mut latest: Option<(&str, u64)> = None;
        for (at, error) in files.chain(ops).filter(|(at, _)| *at > now_ms) {
            count += 1;
            if let Some(e) = error {
                if latest.is_none_or(|(_, t)| at > t) {
                    latest = Some((e, at));
                }
            }
        }
        (count, latest)
    }
}

/// Version of the state file's shape.
pub const STATE_VERSION: u32 = 1;
/// Failures kept in `recent_failures` and listed by `flush`.
pub const MAX_RECENT_FAILURES: usize = 1000;

/// The exclusive claim of one daemon on a state directory, held for the daemon's life: two
/// daemons on one state would overwrite each other's cursors and counters. An `flock` on
/// `DIR/lock` (released by the kernel when the process dies, however it dies), with the
/// owner's pid written into the file so the refusal can name it.
#[derive(Debug)]
pub struct StateDirLock {
    _file: std::fs::File,
}

impl StateDirLock {
    /// Takes the lock or says who holds it.
    pub fn acquire(dir: &Path) -> Result<StateDirLock, String> {
        use std::io::{Read, Seek};
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("state directory {}: {e}", dir.display()))?;
        let path = dir.join("lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(format!("{}: cannot lock: {err}", path.display()));
            }
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let owner = match text.trim() {
                "" => "another process".to_string(),
                pid => format!("pid {pid}"),
            };
            return Err(format!(
                "state directory {} is in use by another lustre-blob daemon ({owner}); one daemon per state directory",
                dir.display()
            ));
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_all());
        written.map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(StateDirLock { _file: file })
    }
}

/// Atomic JSON file writes and reads.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

/// The state file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The state file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("{path}: corrupt state file: {source}")]
    Corrupt {
        /// The state file.
        path: String,
        /// Where and why it does not parse.
        source: serde_json::Error,
    },
}

impl StateFile {
    /// The state kept at `path`.
    pub fn new(path: PathBuf) -> StateFile {
        StateFile { path }
    }

    /// Where it is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> StateError {
        StateError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Reads the file; `Ok(None)` when it does not exist yet.
    pub fn load<T: for<'de> Deserialize<'de>>(&self) -> Result<Option<T>, StateError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| self.corrupt(source)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    /// The error for a file whose content does not decode.
    pub fn corrupt(&self, source: serde_json::Error) -> StateError {
        StateError::Corrupt {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Writes `value` to a temp file in the same directory, fsyncs it, renames it over the
    /// file and fsyncs the directory.
    pub fn save<T: Serialize>(&self, value: &T) -> Result<(), StateError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let bytes =
            serde_json::to_vec(value).map_err(|e| self.io(std::io::Error::other(e.to_string())))?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = std::fs::File::create(&tmp).map_err(|e| self.io(e))?;
            f.write_all(&bytes).map_err(|e| self.io(e))?;
            f.sync_all().map_err(|e| self.io(e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_directory_is_owned_by_one_holder_and_the_refusal_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDirLock::acquire(dir.path()).unwrap();
        let e = StateDirLock::acquire(dir.path()).unwrap_err();
        assert!(
            e.contains(&format!("pid {}", std::process::id())) && e.contains("in use"),
            "{e}"
        );
        drop(first);
        StateDirLock::acquire(dir.path()).expect("free again once the holder is gone");
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path().join("sub/state.json"));
        assert_eq!(f.load::<State>().unwrap(), None);
        let mut s = State {
            version: STATE_VERSION,
            ..State::default()
        };
        s.cursors.push(Cursor {
            last_read: 9,
            cleared: 4,
        });
        s.pending.insert(
            Fid::new(0x200000401, 3, 0),
            Pending {
                holds: vec![(0, 5)],
                last_change_ms: 7,
                first_change_ms: 6,
                attempts: 1,
                retries: 2,
                retry_at_ms: 99,
                last_error: Some("x".into()),
                known_path: Some("projects/a.dat".into()),
                created: true,
                closed: true,
            },
        );
        s.totals.files_exported = 3;
        f.save(&s).unwrap();
        assert_eq!(f.load::<State>().unwrap(), Some(s.clone()));
        s.totals.files_exported = 4;
        f.save(&s).unwrap();
        assert_eq!(f.load::<State>().unwrap().unwrap().totals.files_exported, 4);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    /// A state file as the daemon wrote it while the engine had its own FID type (keys and
    /// values in `DFID` text, a zero sequence printed `0`): it still loads, every FID in it
    /// parses to the same value, and saving it again writes the same text.
    #[test]
    fn a_state_file_written_before_the_lustre_fid_still_loads() {
        let written = r#"{"version":1,"source":null,"cursors":[{"last_read":9,"cleared":4}],"autoexport_enabled":true,"pending":{"[0x200000401:0x3:0x0]":{"holds":[[0,5]],"last_change_ms":7,"first_change_ms":6,"attempts":0,"retries":0,"retry_at_ms":0,"last_error":null}},"meta_pending":{"[0:0x2a:0x1]":[[1,8]]},"ns_ops":[],"inflight":{"[0x200000401:0x4:0x0]":{"holds":[[0,6]],"path":"a","size":3,"submitted_ms":1,"first_change_ms":1,"attempts":0,"retries":0,"carried":false}},"iteration":{"counters":{"number":1,"started_ms":1,"ended_ms":null,"files_discovered":0,"bytes_discovered":0,"files_exported":0,"bytes_exported":0,"files_failed":0,"files_requeued":0,"files_carried":0},"to_discover":[["[0x200000401:0x5:0x0]",{"holds":[[0,7]],"last_change_ms":7,"first_change_ms":7,"attempts":0,"retries":0,"retry_at_ms":0,"last_error":null}]]},"last_iteration":null,"next_iteration":2,"totals":{"files_exported":0,"bytes_exported":0,"files_failed":0,"iterations_completed":0,"last_successful_ms":null,"last_started_ms":null,"last_completed_ms":null},"recent_failures":[],"failed":{"[0x200000401:0x6:0x0]":{"at_ms":1,"iteration":1,"fid":"[0x200000401:0x6:0x0]","path":"b","operation":"archive","error":"EIO"}},"failed_ops":{},"coordinator_pause":null}"#;
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path().join("state.json"));
        std::fs::write(f.path(), written).unwrap();
        let s: State = f.load().unwrap().expect("a state");
        let fid = |oid| Fid::new(0x200000401, oid, 0);
        assert!(s.pending.contains_key(&fid(3)));
        assert!(s.meta_pending.contains_key(&Fid::new(0, 0x2a, 1)));
        assert!(s.inflight.contains_key(&fid(4)));
        let to_discover = &s.iteration.as_ref().expect("an iteration").to_discover;
        assert_eq!(to_discover.front().map(|(f, _)| *f), Some(fid(5)));
        assert_eq!(s.failed.get(&fid(6)).and_then(|x| x.fid), Some(fid(6)));
        assert_eq!(serde_json::to_string(&s).unwrap(), written);
    }

    /// A state file written before pending files kept what their records told (the path of
    /// their CREATE, that their HSM flags are empty): it loads with neither, so discovery asks
    /// the MDS for both, and saving it again writes the same text (nothing new is written for
    /// an entry that knows nothing).
    #[test]
    fn a_state_file_written_before_known_paths_loads_without_them() {
        let written = r#"{"version":1,"source":null,"cursors":[{"last_read":9,"cleared":4}],"autoexport_enabled":true,"pending":{"[0x200000401:0x3:0x0]":{"holds":[[0,5]],"last_change_ms":7,"first_change_ms":6,"attempts":0,"retries":0,"retry_at_ms":0,"last_error":null}},"meta_pending":{},"ns_ops":[],"inflight":{},"iteration":{"counters":{"number":1,"started_ms":1,"ended_ms":null,"files_discovered":0,"bytes_discovered":0,"files_exported":0,"bytes_exported":0,"files_failed":0,"files_requeued":0,"files_carried":0},"to_discover":[["[0x200000401:0x5:0x0]",{"holds":[[0,7]],"last_change_ms":7,"first_change_ms":7,"attempts":0,"retries":0,"retry_at_ms":0,"last_error":null}]]},"last_iteration":null,"next_iteration":2,"totals":{"files_exported":0,"bytes_exported":0,"files_failed":0,"iterations_completed":0,"last_successful_ms":null,"last_started_ms":null,"last_completed_ms":null},"recent_failures":[],"failed":{},"failed_ops":{},"coordinator_pause":null}"#;
        let s: State = serde_json::from_str(written).unwrap();
        let fid = |oid| Fid::new(0x200000401, oid, 0);
        let entries = [
            &s.pending[&fid(3)],
            &s.iteration.as_ref().unwrap().to_discover[0].1,
        ];
        for p in entries {
            assert_eq!(p.known_path, None);
            assert!(!p.created && !p.closed && !p.hsm_known_empty());
        }
        assert_eq!(serde_json::to_string(&s).unwrap(), written);
    }

    #[test]
    fn a_forgotten_path_or_hsm_state_is_asked_for_again() {
        let mut p = Pending {
            known_path: Some("projects/a".into()),
            created: true,
            closed: true,
            ..Pending::new(0, 1, 1)
        };
        assert!(p.hsm_known_empty());
        p.forget(Forget::HSM);
        assert!(!p.hsm_known_empty() && !p.created);
        assert_eq!(p.known_path.as_deref(), Some("projects/a"));
        p.forget(Forget::PATH);
        assert_eq!(p.known_path, None);
        assert_eq!(
            Forget::PATH.and(Forget::HSM),
            Forget {
                path: true,
                hsm: true
            }
        );
    }

    #[test]
    fn corrupt_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        std::fs::write(&p, b"{not json").unwrap();
        let e = StateFile::new(p.clone()).load::<State>().unwrap_err();
        assert!(e.to_string().contains("corrupt state file"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"{not json");
    }

    #[test]
    fn holds_keep_the_lowest_index_per_mdt() {
        let mut h = Holds::new();
        add_hold(&mut h, 0, 10);
        add_hold(&mut h, 0, 4);
        add_hold(&mut h, 1, 7);
        add_hold(&mut h, 0, 12);
        assert_eq!(h, vec![(0, 4), (1, 7)]);
    }
}
