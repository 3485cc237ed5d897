//! The manual export's tree scan: a small pool of scanner threads that read directories
//! concurrently and hand (directory, name, kind) candidates to the engine thread through a
//! bounded queue, so a huge tree neither grows memory without bound nor blocks the daemon.
//!
//! * Directories to read wait in a shared queue of at most [`DIR_QUEUE_CAP`] entries; a scanner
//!   whose subdirectories do not fit keeps them on its own stack and walks them depth-first, so
//!   no scanner ever waits for queue room (which could deadlock the pool).
//! * Candidates wait in an output queue of at most [`OUT_CAP`] entries; a scanner blocks while it
//!   is full. A directory's own entry is always queued before any of its children.
//! * [`ParallelScan::cancel`] (or dropping the scan) wakes every scanner; each stops before its
//!   next directory or candidate. Dropping joins the threads.

use crate::model::FileKind;
use crate::ports::NsError;
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most scanner threads (the pool is `min(SCAN_THREADS_MAX, 2 × cores)`).
pub const SCAN_THREADS_MAX: usize = 4;
/// Most candidates read but not yet taken by the engine.
pub const OUT_CAP: usize = 1024;
/// Most directories waiting in the shared queue.
pub const DIR_QUEUE_CAP: usize = 4096;

/// Lists one directory; shared by the scanner threads.
pub trait DirLister: Send + Sync {
    /// Entries of `rel` (relative to the mount, `""` is the root), sorted by name.
    fn list_dir(&self, rel: &[u8]) -> Result<Vec<(Vec<u8>, FileKind)>, NsError>;
}

/// A [`DirLister`] over a mounted directory tree: `opendir`/`readdir`, the entry type from
/// `d_type` (an `lstat` where the file system does not fill it in). Lustre's hidden `.lustre`
/// control directory at the root is not listed.
#[derive(Debug, Clone)]
pub struct FsLister {
    root: PathBuf,
}

impl FsLister {
    /// Lists directories under `root` (the mount).
    pub fn new(root: PathBuf) -> FsLister {
        FsLister { root }
    }
}

fn io_err(op: &'static str, e: &std::io::Error) -> NsError {
    NsError::new(op, e.raw_os_error().unwrap_or(libc::EIO))
}

impl DirLister for FsLister {
    fn list_dir(&self, rel: &[u8]) -> Result<Vec<(Vec<u8>, FileKind)>, NsError> {
        let dir = if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(OsStr::from_bytes(rel))
        };
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| io_err("opendir", &e))? {
            let e = e.map_err(|e| io_err("readdir", &e))?;
            let kind = FileKind::from(e.file_type().map_err(|e| io_err("lstat", &e))?);
            let name = e.file_name().as_bytes().to_vec();
            if rel.is_empty() && name == b".lustre" {
                continue;
            }
            out.push((name, kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// What the scanners hand to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanItem {
    /// `name` in directory `dir` (both relative to the mount).
    Entry {
        /// The directory.
        dir: Vec<u8>,
        /// The entry's name in it.
        name: Vec<u8>,
        /// What it is.
        kind: FileKind,
    },
    /// Directory `dir` could not be read.
    DirError {
        /// The directory.
        dir: Vec<u8>,
        /// Why.
        error: String,
    },
}

/// What [`ParallelScan::next_item`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// An entry or a directory error.
    Item(ScanItem),
    /// Nothing arrived before the deadline; the scan goes on.
    Waiting,
    /// Every directory has been read and every candidate taken (or the scan was cancelled).
    Finished,
}

#[derive(Default)]
struct Shared {
    dirs: VecDeque<Vec<u8>>,
    out: VecDeque<ScanItem>,
    /// Scanners holding directories not yet fully read.
    active: usize,
    finished: bool,
    cancelled: bool,
    /// Instrumentation: the most candidates ever waiting in `out`, and how many were queued.
    max_out: usize,
    produced: u64,
}

struct Inner {
    state: Mutex<Shared>,
    /// Signalled when a directory is queued, the walk finishes or the scan is cancelled.
    work: Condvar,
    /// Signalled when a candidate is queued or the walk finishes.
    item: Condvar,
    /// Signalled when a candidate is taken or the scan is cancelled.
    space: Condvar,
    out_cap: usize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A scanner never panics while holding the lock; recover the data if one did.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues one candidate, waiting for room; false when the scan was cancelled.
    fn push(&self, item: ScanItem) -> bool {
        let mut s = self.lock();
        while s.out.len() >= self.out_cap && !s.cancelled {
            s = self.space.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.cancelled {
            return false;
        }
        s.out.push_back(item);
        s.produced += 1;
        s.max_out = s.max_out.max(s.out.len());
        self.item.notify_one();
        true
    }
}

/// A running parallel scan of one or more subtrees.
pub struct ParallelScan {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
}

/// The default pool size: `min(SCAN_THREADS_MAX, 2 × cores)`.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    SCAN_THREADS_MAX.min(2 * cores).max(1)
}

impl ParallelScan {
    /// Starts `threads` scanners over the subtrees `roots` (their own entries are not queued,
    /// only what is under them), with at most `out_cap` candidates waiting.
    pub fn start(
        lister: Arc<dyn DirLister>,
        roots: Vec<Vec<u8>>,
        threads: usize,
        out_cap: usize,
    ) -> std::io::Result<ParallelScan> {
        let inner = Arc::new(Inner {
            state: Mutex::new(Shared {
                finished: roots.is_empty(),
                dirs: roots.into(),
                ..Shared::default()
            }),
            work: Condvar::new(),
            item: Condvar::new(),
            space: Condvar::new(),
            out_cap: out_cap.max(1),
        });
        let mut scan = ParallelScan {
            inner,
            threads: Vec::new(),
        };
        for i in 0..threads.max(1) {
            let inner = Arc::clone(&scan.inner);
            let lister = Arc::clone(&lister);
            // On a spawn failure `scan` is dropped, which cancels and joins the ones started.
            let h = std::thread::Builder::new()
                .name(format!("export-scan-{i}"))
                .spawn(move || scanner(&inner, lister.as_ref()))?;
            scan.threads.push(h);
        }
        Ok(scan)
    }

    /// Takes the next candidate, waiting at most until `deadline`.
    pub fn next_item(&self, deadline: Instant) -> Next {
        let mut s = self.inner.lock();
        loop {
            if let Some(it) = s.out.pop_front() {
                self.inner.space.notify_one();
                return Next::Item(it);
            }
            if s.finished || s.cancelled {
                return Next::Finished;
            }
            let now = Instant::now();
            if now >= deadline {
                return Next::Waiting;
            }
            s = self
                .inner
                .item
                .wait_timeout(s, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Stops the scanners before their next directory or candidate; returns at once.
    pub fn cancel(&self) {
        let mut s = self.inner.lock();
        s.cancelled = true;
        s.out.clear();
        self.inner.work.notify_all();
        self.inner.space.notify_all();
        self.inner.item.notify_all();
    }

    /// The most candidates that ever waited undelivered (never above the bound).
    pub fn max_undelivered(&self) -> usize {
        self.inner.lock().max_out
    }

    /// How many candidates the scanners queued so far.
    pub fn produced(&self) -> u64 {
        self.inner.lock().produced
    }

    /// Waits for every scanner to exit (after the walk ended or [`Self::cancel`]).
    pub fn join(mut self) {
        self.join_threads();
    }

    fn join_threads(&mut self) {
        for h in self.threads.drain(..) {
            if h.join().is_err() {
                tracing::warn!("an export scanner thread panicked");
            }
        }
    }
}

impl Drop for ParallelScan {
    fn drop(&mut self) {
        self.cancel();
        self.join_threads();
    }
}

/// Bounded wait used by [`ParallelScan::next_item`] callers that must stay responsive.
pub const STEP_WAIT: Duration = Duration::from_millis(500);

fn scanner(inner: &Inner, lister: &dyn DirLister) {
    loop {
        // Take a directory, or end when none is queued and no scanner can queue more.
        let dir = {
            let mut s = inner.lock();
            loop {
                if s.cancelled || s.finished {
                    return;
                }
                if let Some(d) = s.dirs.pop_front() {
                    s.active += 1;
                    break d;
                }
                if s.active == 0 {
                    s.finished = true;
                    inner.work.notify_all();
                    inner.item.notify_all();
                    return;
                }
                s = inner.work.wait(s).unwrap_or_else(|p| p.into_inner());
            }
        };
        let keep_going = walk(inner, lister, dir);
        let mut s = inner.lock();
        s.active -= 1;
        if s.active == 0 && s.dirs.is_empty() {
            inner.work.notify_all();
        }
        if !keep_going {
            return;
        }
    }
}

/// Reads `first` and, depth-first, the subdirectories that do not fit in the shared queue.
/// False when the scan was cancelled.
fn walk(inner: &Inner, lister: &dyn DirLister, first: Vec<u8>) -> bool {
    let mut stack = vec![first];
    while let Some(dir) = stack.pop() {
        if inner.lock().cancelled {
            return false;
        }
        let entries = match lister.list_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                if !inner.push(ScanItem::DirError {
                    dir,
                    error: e.to_string(),
                }) {
                    return false;
                }
                continue;
            }
        };
        let mut subdirs = Vec::new();
        for (name, kind) in entries {
            if kind == FileKind::Directory {
                subdirs.push(crate::scope::join(&dir, &name));
            }
            let item = ScanItem::Entry {
                dir: dir.clone(),
                name,
                kind,
            };
            if !inner.push(item) {
                return false;
            }
        }
        // Share what fits; keep the rest.
        let mut s = inner.lock();
        let mut rest = subdirs.into_iter();
        for d in rest.by_ref() {
            if s.dirs.len() >= DIR_QUEUE_CAP {
                stack.push(d);
                break;
            }
            s.dirs.push_back(d);
            inner.work.notify_one();
        }
        drop(s);
        stack.extend(rest);
    }
    true
}

#[cfg(test)]
#[path = "tree_scan_tests.rs"]
mod tests;
