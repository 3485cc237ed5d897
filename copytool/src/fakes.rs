//! In-memory fakes of the coordinator and the blob store for the engine's unit tests. They follow the
//! contracts in `ports` (and lustre-abi §3.1) closely enough to catch protocol mistakes: every call is
//! recorded, and an action ended twice or never is visible in the event list.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use blob::WriteMode;
use blob::{BlobInfo, BlobName, DownloadOptions, Downloaded, Metadata, UploadOptions, Uploaded};
use lustre::{ActionItem, ActionList, CopytoolAction, Extent, Fid};

use crate::ports::{Coordinator, CopyAction, FailureLog, Store};

/// A failed Lustre call, as the real wrappers report one.
fn call_failed(call: &'static str, errno: i32) -> lustre::Error {
    lustre::Error::Call { call, errno }
}

/// A local I/O error of the fake's own file calls, as errno of the call it stands for.
fn io_failed(call: &'static str, e: std::io::Error) -> lustre::Error {
    call_failed(call, e.raw_os_error().unwrap_or(libc::EIO))
}

/// A store answer with an HTTP status and Azure code, as `blob` reports one.
pub fn answered(op: &'static str, name: &str, status: u16, code: &str) -> blob::Failure {
    blob::Failure {
        op,
        name: name.to_string(),
        status: Some(status),
        code: Some(code.to_string()),
        message: code.to_string(),
    }
}

/// A local read or write of the fake store that failed.
fn local_io(op: &'static str, source: std::io::Error) -> blob::Error {
    blob::Error::Io { op, source }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Begin(u64),
    BeginError(u64),
    Progress(u64, Extent),
    End {
        cookie: u64,
        hp_flags: i32,
        errval: i32,
    },
}

#[derive(Default)]
pub struct CtState {
    pub queue: VecDeque<Result<ActionList, lustre::Error>>,
    pub events: Vec<Event>,
    /// fid -> (data file, its links relative to the mount)
    pub files: HashMap<Fid, (PathBuf, Vec<PathBuf>)>,
    pub data_versions: HashMap<Fid, u64>,
    pub begin_fail: HashMap<u64, i32>,
    pub progress_fail: HashMap<u64, i32>,
    /// `end` records the end, then fails with this errno (as the kernel's EBUSY for a file changed
    /// between begin and end).
    pub end_fail: HashMap<u64, i32>,
    pub recv_calls: usize,
    /// `fid2path` calls (each `llapi_fid2path` enumeration of every link counts once).
    pub fid2path_calls: usize,
    /// Layouts of the files (none: the file system default).
    pub layouts: HashMap<Fid, lustre::Striping>,
    /// `set_layout` calls per cookie (`None` = default asked for).
    pub volatile_layouts: HashMap<u64, Option<lustre::Striping>>,
    /// Pools the file system has; `None`: every pool (a layout naming another is refused with
    /// EINVAL, as `llapi_layout_file_open`'s sanity check refuses a pool that does not exist).
    pub pools: Option<Vec<String>>,
}

pub struct FakeCoordinator {
    pub dir: PathBuf,
    pub state: Mutex<CtState>,
    cv: Condvar,
    /// The copytool's pipe, as Lustre's: one byte is written per queued answer, so its read end
    /// is readable exactly while `CtState::queue` holds something.
    pipe_read: UnixStream,
    pipe_write: UnixStream,
}

impl FakeCoordinator {
    pub fn new(dir: PathBuf) -> Arc<Self> {
        let (pipe_read, pipe_write) = UnixStream::pair().unwrap();
        pipe_read.set_nonblocking(true).unwrap();
        Arc::new(FakeCoordinator {
            dir,
            state: Mutex::new(CtState::default()),
            cv: Condvar::new(),
            pipe_read,
            pipe_write,
        })
    }

    /// Queues an answer of `recv` and makes the pipe readable.
    fn send(&self, answer: Result<ActionList, lustre::Error>) {
        let mut s = self.lock();
        s.queue.push_back(answer);
        (&self.pipe_write).write_all(&[1]).unwrap();
        drop(s);
        self.cv.notify_all();
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, CtState> {
        self.state.lock().unwrap()
    }

    /// Creates a file with `content` at the mount-relative `links[0]` (other links are hard links).
    pub fn add_file(&self, fid: Fid, links: &[&str], content: &[u8]) -> PathBuf {
        let first = self.dir.join(links[0]);
        std::fs::create_dir_all(first.parent().unwrap()).unwrap();
        std::fs::write(&first, content).unwrap();
        for l in &links[1..] {
            let p = self.dir.join(l);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::hard_link(&first, p).unwrap();
        }
        let mut s = self.lock();
        s.files.insert(
            fid,
            (first.clone(), links.iter().map(PathBuf::from).collect()),
        );
        s.data_versions.insert(fid, 1);
        first
    }

    pub fn push(&self, list: ActionList) {
        self.send(Ok(list));
    }

    pub fn push_err(&self, errno: i32) {
        self.send(Err(call_failed("llapi_hsm_copytool_recv", errno)));
    }

    pub fn events(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    pub fn ends(&self) -> Vec<(u64, i32, i32)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::End {
                    cookie,
                    hp_flags,
                    errval,
                } => Some((cookie, hp_flags, errval)),
                _ => None,
            })
            .collect()
    }

    pub fn volatile_path(&self, cookie: u64) -> PathBuf {
        self.dir.join(format!(".volatile-{cookie}"))
    }

    /// Waits until `n` ends were recorded (panics after a generous deadline).
    pub fn wait_ends(&self, n: usize) -> Vec<(u64, i32, i32)> {
        self.wait_for(|s| {
            s.events
                .iter()
                .filter(|e| matches!(e, Event::End { .. }))
                .count()
                >= n
        });
        self.ends()
    }

    pub fn wait_for(&self, pred: impl Fn(&CtState) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut s = self.lock();
        while !pred(&s) {
            assert!(
                std::time::Instant::now() < deadline,
                "condition not reached; events: {:?}",
                s.events
            );
            s = self
                .cv
                .wait_timeout(s, Duration::from_millis(20))
                .unwrap()
                .0;
        }
    }

    fn record(&self, e: Event) {
        self.lock().events.push(e);
        self.cv.notify_all();
    }
}

pub struct FakeAction {
    ct: Arc<FakeCoordinator>,
    item: ActionItem,
    is_error: bool,
}

/// The fake needs to share itself with its actions.
pub struct FakeCt(pub Arc<FakeCoordinator>);

impl Coordinator for FakeCt {
    type Action = FakeAction;

    fn fd(&self) -> Result<RawFd, lustre::Error> {
        Ok(self.0.pipe_read.as_raw_fd())
    }

    /// As `llapi_hsm_copytool_recv` on a non-blocking pipe: EAGAIN (`None`) when it is empty.
    fn recv(&self) -> Result<Option<ActionList>, lustre::Error> {
        let mut s = self.0.lock();
        s.recv_calls += 1;
        match (&self.0.pipe_read).read(&mut [0u8; 1]) {
            Ok(1) => {}
            Ok(_) => return Err(call_failed("llapi_hsm_copytool_recv", libc::ESHUTDOWN)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(io_failed("llapi_hsm_copytool_recv", e)),
        }
        match s.queue.pop_front() {
            Some(Ok(l)) => Ok(Some(l)),
            Some(Err(e)) => Err(e),
            None => Err(call_failed("llapi_hsm_copytool_recv", libc::EPROTO)),
        }
    }

    fn begin(&self, item: &ActionItem) -> Result<FakeAction, lustre::Error> {
        let fail = self.0.lock().begin_fail.get(&item.cookie).copied();
        if let Some(errno) = fail {
            return Err(call_failed("llapi_hsm_action_begin", errno));
        }
        if item.action == CopytoolAction::Restore {
            File::create(self.0.volatile_path(item.cookie)).unwrap();
        }
        self.0.record(Event::Begin(item.cookie));
        Ok(FakeAction {
            ct: self.0.clone(),
            item: item.clone(),
            is_error: false,
        })
    }

    fn begin_error(&self, item: &ActionItem) -> Result<FakeAction, lustre::Error> {
        self.0.record(Event::BeginError(item.cookie));
        Ok(FakeAction {
            ct: self.0.clone(),
            item: item.clone(),
            is_error: true,
        })
    }

    fn fsname(&self) -> String {
        "lustre".into()
    }

    fn fid2path(&self, fid: &Fid) -> Result<Vec<PathBuf>, lustre::Error> {
        let mut s = self.0.lock();
        s.fid2path_calls += 1;
        match s.files.get(fid) {
            Some((_, links)) => Ok(links.clone()),
            None => Err(lustre::Error::Call {
                call: "llapi_fid2path",
                errno: libc::ENOENT,
            }),
        }
    }

    fn open_by_fid(&self, fid: &Fid) -> Result<File, lustre::Error> {
        let path = match self.0.lock().files.get(fid) {
            Some((p, _)) => p.clone(),
            None => {
                return Err(lustre::Error::Call {
                    call: "llapi_open_by_fid",
                    errno: libc::ENOENT,
                })
            }
        };
        File::open(path).map_err(|e| io_failed("open", e))
    }

    fn layout(&self, fid: &Fid, _file: &File) -> Result<Option<lustre::Striping>, lustre::Error> {
        Ok(self.0.lock().layouts.get(fid).cloned())
    }

    fn data_version(&self, file: &File) -> Result<u64, lustre::Error> {
        // Identify the fid by inode.
        use std::os::unix::fs::MetadataExt;
        let ino = file.metadata().unwrap().ino();
        let s = self.0.lock();
        for (fid, (p, _)) in &s.files {
            if std::fs::metadata(p).map(|m| m.ino()).ok() == Some(ino) {
                return Ok(s.data_versions.get(fid).copied().unwrap_or(0));
            }
        }
        Err(lustre::Error::Call {
            call: "llapi_get_data_version",
            errno: libc::ENOENT,
        })
    }
}

impl CopyAction for FakeAction {
    fn progress(&self, ext: Extent, _total: u64) -> Result<(), lustre::Error> {
        assert!(!self.is_error, "progress on an is_error handle");
        self.ct.record(Event::Progress(self.item.cookie, ext));
        match self.ct.lock().progress_fail.get(&self.item.cookie) {
            Some(&errno) => Err(call_failed("llapi_hsm_action_progress", errno)),
            None => Ok(()),
        }
    }

    fn fd(&self) -> Result<File, lustre::Error> {
        match self.item.action {
            CopytoolAction::Archive => {
                let path = self
                    .ct
                    .lock()
                    .files
                    .get(&self.item.fid)
                    .map(|(p, _)| p.clone());
                let path = path.ok_or(lustre::Error::Call {
                    call: "llapi_hsm_action_get_fd",
                    errno: libc::ENOENT,
                })?;
                File::open(path).map_err(|e| io_failed("open", e))
            }
            CopytoolAction::Restore => std::fs::OpenOptions::new()
                .write(true)
                .open(self.ct.volatile_path(self.item.cookie))
                .map_err(|e| io_failed("open", e)),
            _ => Err(lustre::Error::Call {
                call: "llapi_hsm_action_get_fd",
                errno: libc::EINVAL,
            }),
        }
    }

    /// As Lustre: only a RESTORE's volatile file takes a layout, and only once, before data.
    fn set_layout(&self, layout: Option<&lustre::Striping>) -> Result<(), lustre::Error> {
        const CALL: &str = "llapi_layout_file_open";
        if self.item.action != CopytoolAction::Restore || self.is_error {
            return Err(call_failed(CALL, libc::EINVAL));
        }
        let size = std::fs::metadata(self.ct.volatile_path(self.item.cookie))
            .map(|m| m.len())
            .unwrap_or(0);
        let mut s = self.ct.lock();
        if size > 0 || s.volatile_layouts.contains_key(&self.item.cookie) {
            return Err(call_failed(CALL, libc::EEXIST));
        }
        if let (Some(pools), Some(pool)) = (&s.pools, layout.and_then(lustre::Striping::pool)) {
            if !pools.iter().any(|p| p == pool) {
                return Err(call_failed(CALL, libc::EINVAL));
            }
        }
        s.volatile_layouts.insert(self.item.cookie, layout.cloned());
        Ok(())
    }

    fn end(self, _ext: Extent, hp_flags: i32, errval: i32) -> Result<(), lustre::Error> {
        self.ct.record(Event::End {
            cookie: self.item.cookie,
            hp_flags,
            errval,
        });
        match self.ct.lock().end_fail.get(&self.item.cookie) {
            Some(&errno) => Err(call_failed("llapi_hsm_action_end", errno)),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FakeBlob {
    pub data: Vec<u8>,
    pub etag: String,
    pub meta: Option<Metadata>,
}

/// A blob store in memory. Uploads pass through `gate` after their first block when it is set, so a
/// test can hold an upload mid-way. Like the real store, every block acquires its length from the
/// transfer's rate limiter before it is read or written.
#[derive(Default)]
pub struct FakeStore {
    pub blobs: Mutex<HashMap<String, FakeBlob>>,
    etags: AtomicU64,
    pub fail_next: Mutex<VecDeque<blob::Error>>,
    pub gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    pub uploads_waiting: AtomicUsize,
    /// Called while an upload waits at the gate (e.g. to modify the file).
    pub on_gate: Mutex<Option<Box<dyn Fn() + Send>>>,
    /// HEAD requests served (Get Blob Properties).
    pub heads: AtomicUsize,
    /// Upload calls, successful or not.
    pub uploads: AtomicUsize,
}

impl FakeStore {
    pub fn new() -> Arc<Self> {
        Arc::new(FakeStore::default())
    }
    pub fn put(&self, name: &str, data: &[u8]) -> String {
        self.put_with_meta(name, data, None)
    }
    /// Stores a blob as if uploaded with `meta` (e.g. by a copytool killed before it wrote the record).
    pub fn put_with_meta(&self, name: &str, data: &[u8], meta: Option<Metadata>) -> String {
        let etag = self.next_etag();
        self.blobs.lock().unwrap().insert(
            name.to_string(),
            FakeBlob {
                data: data.to_vec(),
                etag: etag.clone(),
                meta,
            },
        );
        etag
    }
    pub fn get(&self, name: &str) -> Option<FakeBlob> {
        self.blobs.lock().unwrap().get(name).cloned()
    }
    pub fn close_gate(&self) -> Arc<tokio::sync::Semaphore> {
        let g = Arc::new(tokio::sync::Semaphore::new(0));
        *self.gate.lock().unwrap() = Some(g.clone());
        g
    }
    fn next_etag(&self) -> String {
        format!("\"e{}\"", self.etags.fetch_add(1, Ordering::SeqCst))
    }
    fn injected(&self) -> Result<(), blob::Error> {
        match self.fail_next.lock().unwrap().pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    fn missing(&self, op: &'static str, name: &BlobName) -> blob::Error {
        blob::Error::NotFound(answered(op, name.as_str(), 404, "BlobNotFound"))
    }
    /// Waits at the gate (when closed) after an upload's first block, as a slow upload would.
    async fn hold_at_gate(&self, cancel: &blob::CancellationToken) {
        let gate = self.gate.lock().unwrap().clone();
        let Some(g) = gate else {
            return;
        };
        self.uploads_waiting.fetch_add(1, Ordering::SeqCst);
        if let Some(f) = self.on_gate.lock().unwrap().as_ref() {
            f();
        }
        tokio::select! {
            p = g.acquire() => { if let Ok(p) = p { p.forget(); } }
            () = cancel.cancelled() => {}
        }
        self.uploads_waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Store for FakeStore {
    fn name_for(&self, rel_path: &[u8]) -> Result<BlobName, blob::Error> {
        let s = std::str::from_utf8(rel_path).map_err(|_| {
            blob::Error::InvalidName(blob::NameError::NotUtf8 {
                lossy: String::from_utf8_lossy(rel_path).into_owned(),
            })
        })?;
        Ok(BlobName::new(s)?)
    }

    async fn upload(
        &self,
        file: &File,
        name: &BlobName,
        meta: &Metadata,
        opts: UploadOptions,
    ) -> Result<Uploaded, blob::Error> {
        self.uploads.fetch_add(1, Ordering::SeqCst);
        self.injected()?;
        let size = file.metadata().map_err(|e| local_io("stat", e))?.len();
        let mut data = Vec::new();
        let mut off = 0u64;
        let mut first = true;
        loop {
            if opts.cancel.is_cancelled() {
                return Err(blob::Error::Cancelled);
            }
            let want = opts.block_size.min(size.saturating_sub(off));
            if let Some(limit) = &opts.rate_limit {
                tokio::select! {
                    () = limit.acquire(want) => {}
                    () = opts.cancel.cancelled() => return Err(blob::Error::Cancelled),
                }
            }
            let mut buf = vec![0u8; opts.block_size as usize];
            let n = file
                .read_at(&mut buf, off)
                .map_err(|e| local_io("read", e))?;
            data.extend_from_slice(&buf[..n]);
            off += n as u64;
            if let Some(p) = &opts.progress {
                p(off);
            }
            if first && self.gate.lock().unwrap().is_some() {
                first = false;
                self.hold_at_gate(&opts.cancel).await;
                continue;
            }
            first = false;
            if n == 0 || off >= size {
                break;
            }
        }
        if opts.cancel.is_cancelled() {
            return Err(blob::Error::Cancelled);
        }
        let mut blobs = self.blobs.lock().unwrap();
        let current = blobs.get(name.as_str()).map(|b| b.etag.clone());
        match (&opts.mode, current) {
            (WriteMode::CreateOnly, Some(_)) => {
                return Err(blob::Error::Conflict(answered(
                    "put blob",
                    name.as_str(),
                    409,
                    "BlobAlreadyExists",
                )))
            }
            (WriteMode::IfMatch(want), cur) if cur.as_ref() != Some(want) => {
                return Err(blob::Error::Conflict(answered(
                    "put blob",
                    name.as_str(),
                    412,
                    "ConditionNotMet",
                )))
            }
            _ => {}
        }
        let etag = self.next_etag();
        let len = data.len() as u64;
        blobs.insert(
            name.to_string(),
            FakeBlob {
                data,
                etag: etag.clone(),
                meta: Some(meta.clone()),
            },
        );
        Ok(Uploaded {
            etag,
            size: len,
            checksum: String::new(),
            blocks: 0,
            block_size: opts.block_size,
            peak_buffered: 0,
        })
    }

    async fn download(
        &self,
        name: &BlobName,
        file: &File,
        opts: DownloadOptions,
    ) -> Result<Downloaded, blob::Error> {
        self.injected()?;
        let blob = self
            .get(name.as_str())
            .ok_or_else(|| self.missing("get", name))?;
        for (i, chunk) in blob.data.chunks(opts.range_size as usize).enumerate() {
            if let Some(limit) = &opts.rate_limit {
                tokio::select! {
                    () = limit.acquire(chunk.len() as u64) => {}
                    () = opts.cancel.cancelled() => return Err(blob::Error::Cancelled),
                }
            }
            let at = i as u64 * opts.range_size;
            file.write_at(chunk, at).map_err(|e| local_io("write", e))?;
            if let Some(p) = &opts.progress {
                p(at + chunk.len() as u64);
            }
        }
        Ok(Downloaded {
            size: blob.data.len() as u64,
            etag: Some(blob.etag),
            checksum: String::new(),
            verified: false,
        })
    }

    async fn head(&self, name: &BlobName) -> Result<Option<BlobInfo>, blob::Error> {
        self.heads.fetch_add(1, Ordering::SeqCst);
        self.injected()?;
        Ok(self.get(name.as_str()).map(|b| BlobInfo {
            name: name.to_string(),
            size: b.data.len() as u64,
            etag: Some(b.etag),
            last_modified: std::time::SystemTime::UNIX_EPOCH,
            metadata: b.meta,
            raw_metadata: Vec::new(),
        }))
    }

    async fn delete(&self, name: &BlobName) -> Result<(), blob::Error> {
        self.injected()?;
        match self.blobs.lock().unwrap().remove(name.as_str()) {
            Some(_) => Ok(()),
            None => Err(self.missing("delete", name)),
        }
    }

    async fn copy(&self, from: &BlobName, to: &BlobName) -> Result<(), blob::Error> {
        self.injected()?;
        let src = self
            .get(from.as_str())
            .ok_or_else(|| self.missing("copy", from))?;
        let etag = self.next_etag();
        self.blobs
            .lock()
            .unwrap()
            .insert(to.to_string(), FakeBlob { etag, ..src });
        Ok(())
    }
}

#[derive(Default)]
pub struct FakeLog(pub Mutex<Vec<blob::FailureEntry>>);

impl FailureLog for FakeLog {
    fn record(&self, entry: blob::FailureEntry) {
        self.0.lock().unwrap().push(entry);
    }
}

impl FakeLog {
    pub fn entries(&self) -> Vec<blob::FailureEntry> {
        self.0.lock().unwrap().clone()
    }
}
