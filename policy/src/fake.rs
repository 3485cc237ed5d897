//! In-memory stand-ins for the engine's ports: a namespace with FIDs and HSM flags, a blob
//! store, and a log. Used by unit tests and by the synthetic changelog benchmark.

use crate::model::{FileKind, FileStat};
use crate::ports::{BlobEntry, EventLog, Namespace, NsError, Store};
use lustre::lustre_sys::{HS_ARCHIVED, HS_EXISTS, HS_RELEASED};
use lustre::{Fid, HsmState, ImportAttrs};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// A file, directory or symlink of [`FakeFs`].
#[derive(Debug, Clone)]
pub struct Node {
    /// Path relative to the mount.
    pub path: Vec<u8>,
    /// Its attributes.
    pub stat: FileStat,
    /// Its HSM state.
    pub hsm: HsmState,
    /// A request is waiting or running (`hsm_current_action`): set by an archive request.
    pub action_pending: bool,
    /// Symlink target.
    pub link: Vec<u8>,
}

/// The state behind [`FakeNs`]: its entries and what was asked of it.
#[derive(Debug, Default)]
pub struct FakeFs {
    /// Entries by FID.
    pub nodes: HashMap<Fid, Node>,
    /// The layout each imported stub was created with.
    pub import_layouts: HashMap<Fid, Option<lustre::Striping>>,
    /// Object id of the last FID handed out.
    pub next_oid: u32,
    /// Every archive call: (fids, payload).
    pub archive_calls: Vec<(Vec<Fid>, Vec<u8>)>,
    /// Clear calls per MDT (last endrec).
    pub cleared: BTreeMap<usize, u64>,
    /// FIDs whose archive request is refused with this errno.
    pub refuse: HashMap<Fid, i32>,
    /// `fid2path` calls served.
    pub fid2path_calls: u64,
    /// `path2fid` calls served.
    pub path2fid_calls: u64,
    /// `lstat` calls served.
    pub stat_calls: u64,
    /// Every cancel call.
    pub cancel_calls: Vec<Vec<Fid>>,
    /// fid2path answers these paths instead of the node's own.
    pub path_override: HashMap<Fid, Vec<u8>>,
    /// When set, fid2path fails with this errno (an MDS that does not answer).
    pub fid2path_errno: Option<i32>,
    /// When set, changelog_clear fails with this errno.
    pub clear_errno: Option<i32>,
    /// Every changelog_clear call, failed ones included.
    pub clear_calls: u64,
    /// `llapi_hsm_state_get` calls.
    pub hsm_state_calls: u64,
    /// `llapi_hsm_current_action` calls.
    pub current_action_calls: u64,
    /// Files deleted just as an archive request reaches them (the request fails with ENOENT).
    pub vanish_on_archive: std::collections::HashSet<Fid>,
    /// Every `archive` call, refused ones included.
    pub archive_requests: u64,
    /// Items of archive requests the coordinator found not needed and dropped without recording
    /// them (`hsm_action_is_needed`: the file is archived and not dirty).
    pub not_needed: Vec<Fid>,
}

/// A namespace shared between the engine and the test that drives it.
#[derive(Debug, Clone, Default)]
pub struct FakeNs(pub Arc<Mutex<FakeFs>>);

fn st(kind: FileKind, size: u64) -> FileStat {
    FileStat {
        kind,
        size,
        mode: if kind == FileKind::Directory {
            0o755
        } else {
            0o644
        },
        uid: 1000,
        gid: 1000,
        mtime_sec: 1_700_000_000,
        mtime_nsec: 0,
    }
}

impl FakeNs {
    /// The shared state (poisoning ignored: a test that panicked already failed).
    pub fn lock(&self) -> MutexGuard<'_, FakeFs> {
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Adds an entry at `path` and returns its new FID.
    pub fn add(&self, path: &str, kind: FileKind, size: u64) -> Fid {
        let mut fs = self.lock();
        fs.next_oid += 1;
        let fid = Fid::new(0x200000401, fs.next_oid, 0);
        fs.nodes.insert(
            fid,
            Node {
                path: path.as_bytes().to_vec(),
                stat: st(kind, size),
                hsm: HsmState::default(),
                action_pending: false,
                link: Vec::new(),
            },
        );
        fid
    }

    /// The FID of the entry at `path`.
    pub fn fid_of(&self, path: &str) -> Option<Fid> {
        self.lock()
            .nodes
            .iter()
            .find(|(_, n)| n.path == path.as_bytes())
            .map(|(f, _)| *f)
    }

    /// Moves an entry (a rename the engine has not been told of).
    pub fn set_path(&self, fid: Fid, path: &str) {
        if let Some(n) = self.lock().nodes.get_mut(&fid) {
            n.path = path.as_bytes().to_vec();
        }
    }

    /// Deletes an entry.
    pub fn remove(&self, fid: Fid) {
        self.lock().nodes.remove(&fid);
    }

    /// Sets the file's `HS_*` bits and whether a request is pending on it.
    pub fn set_hsm(&self, fid: Fid, states: u32, action_pending: bool) {
        if let Some(n) = self.lock().nodes.get_mut(&fid) {
            n.hsm.states = states;
            n.action_pending = action_pending;
        }
    }

    /// Every FID an archive request queued, in order.
    pub fn archived_fids(&self) -> Vec<Fid> {
        self.lock()
            .archive_calls
            .iter()
            .flat_map(|(f, _)| f.clone())
            .collect()
    }
}

fn enoent(op: &'static str) -> NsError {
    NsError::new(op, libc::ENOENT)
}

impl crate::tree_scan::DirLister for FakeNs {
    fn list_dir(&self, rel: &[u8]) -> Result<Vec<(Vec<u8>, FileKind)>, NsError> {
        Namespace::list_dir(self, rel)
    }
}

impl Namespace for FakeNs {
    fn fid2path(&self, fid: &Fid) -> Result<Option<Vec<u8>>, NsError> {
        let mut fs = self.lock();
        fs.fid2path_calls += 1;
        if let Some(e) = fs.fid2path_errno {
            return Err(NsError::new("llapi_fid2path", e));
        }
        if let Some(p) = fs.path_override.get(fid) {
            return Ok(Some(p.clone()));
        }
        Ok(fs.nodes.get(fid).map(|n| n.path.clone()))
    }
    fn path2fid(&self, rel: &[u8]) -> Result<Fid, NsError> {
        let mut fs = self.lock();
        fs.path2fid_calls += 1;
        fs.nodes
            .iter()
            .find(|(_, n)| n.path == rel)
            .map(|(f, _)| *f)
            .ok_or_else(|| enoent("path2fid"))
    }
    fn stat(&self, rel: &[u8]) -> Result<Option<FileStat>, NsError> {
        let mut fs = self.lock();
        fs.stat_calls += 1;
        Ok(fs.nodes.values().find(|n| n.path == rel).map(|n| n.stat))
    }
    fn hsm_state(&self, rel: &[u8]) -> Result<HsmState, NsError> {
        let mut fs = self.lock();
        fs.hsm_state_calls += 1;
        fs.nodes
            .values()
            .find(|n| n.path == rel)
            .map(|n| n.hsm)
            .ok_or_else(|| enoent("hsm_state"))
    }
    fn action_pending(&self, rel: &[u8]) -> Result<bool, NsError> {
        let mut fs = self.lock();
        fs.current_action_calls += 1;
        fs.nodes
            .values()
            .find(|n| n.path == rel)
            .map(|n| n.action_pending)
            .ok_or_else(|| enoent("hsm_current_action"))
    }
    /// As an MDT records a request (`mdt_hsm_register_hal`): item by item, stopping at the
    /// first refused or missing file; the items before it stay queued (in `archive_calls`). An
    /// item whose file is archived and not dirty is not needed: skipped without a record
    /// (`hsm_action_is_needed`), kept in `not_needed`.
    fn archive(&self, _archive_id: u32, fids: &[Fid], data: &[u8]) -> Result<(), NsError> {
        let mut fs = self.lock();
        fs.archive_requests += 1;
        let mut recorded = Vec::new();
        let mut failed = None;
        for f in fids {
            if fs.vanish_on_archive.remove(f) {
                fs.nodes.remove(f);
            }
            if let Some(e) = fs.refuse.get(f).copied() {
                failed = Some(e);
                break;
            }
            let fs = &mut *fs;
            match fs.nodes.get_mut(f) {
                Some(n) if n.hsm.is_clean_archive() => fs.not_needed.push(*f),
                Some(n) => {
                    n.action_pending = true;
                    recorded.push(*f);
                }
                None => {
                    failed = Some(libc::ENOENT);
                    break;
                }
            }
        }
        if !recorded.is_empty() {
            fs.archive_calls.push((recorded, data.to_vec()));
        }
        match failed {
            Some(e) => Err(NsError::new("llapi_hsm_request", e)),
            None => Ok(()),
        }
    }
    fn cancel(&self, _archive_id: u32, fids: &[Fid]) -> Result<(), NsError> {
        let mut fs = self.lock();
        fs.cancel_calls.push(fids.to_vec());
        Ok(())
    }
    fn read_link(&self, rel: &[u8]) -> Result<Vec<u8>, NsError> {
        self.lock()
            .nodes
            .values()
            .find(|n| n.path == rel)
            .map(|n| n.link.clone())
            .ok_or_else(|| enoent("readlink"))
    }
    fn dir_lister(&self) -> Arc<dyn crate::tree_scan::DirLister> {
        Arc::new(self.clone())
    }
    fn list_dir(&self, rel: &[u8]) -> Result<Vec<(Vec<u8>, FileKind)>, NsError> {
        let fs = self.lock();
        let mut out = Vec::new();
        for n in fs.nodes.values() {
            let parent_ok = match n.path.iter().rposition(|&b| b == b'/') {
                Some(i) => &n.path[..i] == rel,
                None => rel.is_empty(),
            };
            if parent_ok && !n.path.is_empty() {
                let name = n
                    .path
                    .rsplit(|&b| b == b'/')
                    .next()
                    .unwrap_or(&n.path)
                    .to_vec();
                out.push((name, n.stat.kind));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
    fn import_file(
        &self,
        rel: &[u8],
        _archive_id: u32,
        a: &ImportAttrs,
        layout: Option<&lustre::Striping>,
    ) -> Result<Fid, NsError> {
        if self.stat(rel)?.is_some() {
            return Err(NsError::new("llapi_hsm_import", libc::EEXIST));
        }
        let fid = self.add(&String::from_utf8_lossy(rel), FileKind::Regular, a.size);
        let mut fs = self.lock();
        fs.import_layouts.insert(fid, layout.cloned());
        if let Some(n) = fs.nodes.get_mut(&fid) {
            n.stat = FileStat {
                kind: FileKind::Regular,
                size: a.size,
                mode: a.mode,
                uid: a.uid,
                gid: a.gid,
                mtime_sec: a.mtime_sec,
                mtime_nsec: a.mtime_nsec,
            };
            n.hsm.states = HS_EXISTS | HS_ARCHIVED | HS_RELEASED;
        }
        Ok(fid)
    }
    fn make_dir(&self, rel: &[u8], mode: u32, uid: u32, gid: u32) -> Result<(), NsError> {
        if self.stat(rel)?.is_some() {
            return Err(NsError::new("mkdir", libc::EEXIST));
        }
        let fid = self.add(&String::from_utf8_lossy(rel), FileKind::Directory, 0);
        if let Some(n) = self.lock().nodes.get_mut(&fid) {
            n.stat.mode = mode;
            n.stat.uid = uid;
            n.stat.gid = gid;
        }
        Ok(())
    }
    fn make_symlink(&self, rel: &[u8], target: &[u8]) -> Result<(), NsError> {
        if self.stat(rel)?.is_some() {
            return Err(NsError::new("symlink", libc::EEXIST));
        }
        let fid = self.add(
            &String::from_utf8_lossy(rel),
            FileKind::Symlink,
            target.len() as u64,
        );
        if let Some(n) = self.lock().nodes.get_mut(&fid) {
            n.link = target.to_vec();
        }
        Ok(())
    }
    fn remove_file(&self, rel: &[u8]) -> Result<(), NsError> {
        let fid = self.path2fid(rel)?;
        self.remove(fid);
        Ok(())
    }
    fn clear_changelog(&self, mdt: usize, endrec: u64) -> Result<(), NsError> {
        let mut fs = self.lock();
        fs.clear_calls += 1;
        if let Some(errno) = fs.clear_errno {
            return Err(NsError::new("llapi_changelog_clear", errno));
        }
        fs.cleared.insert(mdt, endrec);
        Ok(())
    }
}

/// Blobs in memory: name -> (body, metadata).
pub type BlobMap = BTreeMap<String, (Vec<u8>, Option<blob::Metadata>)>;

/// Listed metadata pairs by blob name.
pub type RawMetadata = HashMap<String, Vec<(String, String)>>;

/// Blob store in memory.
#[derive(Debug, Clone, Default)]
pub struct FakeStore {
    /// The blobs.
    pub blobs: Arc<Mutex<BlobMap>>,
    /// The target's prefix (with its trailing `/`, or empty).
    pub prefix: String,
    /// Names whose writes fail for good, with this message (a 403, say).
    pub fail: Arc<Mutex<HashMap<String, String>>>,
    /// While set, every call fails as an unreachable store does (transient).
    pub unavailable: Arc<std::sync::atomic::AtomicBool>,
    /// Metadata pairs listed as written (another tool's, or hostile), instead of the pairs of the
    /// blob's metadata.
    pub raw: Arc<Mutex<RawMetadata>>,
    /// `list_page` calls served (an import lists page by page).
    pub list_pages_served: Arc<std::sync::atomic::AtomicUsize>,
}

/// The Last-Modified every fake blob lists with (2025-06-15 15:06:40 UTC).
pub const FAKE_LAST_MODIFIED: i64 = 1_750_000_000;

impl FakeStore {
    /// The blobs (poisoning ignored).
    pub fn lock(&self) -> MutexGuard<'_, BlobMap> {
        match self.blobs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
    /// Every blob name, in order.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
    /// Writes a blob directly (no failure injection).
    pub fn put(&self, name: &str, body: &[u8], meta: Option<blob::Metadata>) {
        self.lock().insert(name.to_string(), (body.to_vec(), meta));
    }
    /// An outage of the whole store (every call fails transiently) starts or ends.
    pub fn set_unavailable(&self, on: bool) {
        self.unavailable
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }
    fn reachable(&self) -> Result<(), blob::Error> {
        if self.unavailable.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(blob::Error::Transient(failure(
                "request",
                "",
                "connection refused",
            )));
        }
        Ok(())
    }
    /// A blob whose listed metadata is exactly `pairs`.
    pub fn put_raw(&self, name: &str, body: &[u8], pairs: &[(&str, &str)]) {
        self.put(name, body, None);
        let pairs = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match self.raw.lock() {
            Ok(mut g) => g.insert(name.to_string(), pairs),
            Err(p) => p.into_inner().insert(name.to_string(), pairs),
        };
    }
    fn check(&self, name: &str) -> Result<(), blob::Error> {
        self.reachable()?;
        let f = match self.fail.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match f.get(name) {
            Some(why) => Err(blob::Error::Permanent(failure("write", name, why))),
            None => Ok(()),
        }
    }
}

impl Store for FakeStore {
    fn name_for(&self, rel: &[u8]) -> Result<String, blob::Error> {
        let s = std::str::from_utf8(rel).map_err(|_| blob::NameError::NotUtf8 {
            lossy: String::from_utf8_lossy(rel).into_owned(),
        })?;
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(blob::NameError::ControlChar {
                name: s.to_string(),
                byte: u32::from(c),
            }
            .into());
        }
        Ok(format!("{}{s}", self.prefix))
    }
    fn root(&self) -> String {
        self.prefix.trim_end_matches('/').to_string()
    }
    fn rel_for(&self, name: &str) -> Option<String> {
        name.strip_prefix(&self.prefix).map(str::to_string)
    }
    fn put_dir(&self, name: &str, meta: &blob::Metadata) -> Result<(), blob::Error> {
        self.check(name)?;
        self.put(name, b"", Some(meta.clone()));
        Ok(())
    }
    fn put_symlink(
        &self,
        name: &str,
        target: &[u8],
        meta: &blob::Metadata,
    ) -> Result<(), blob::Error> {
        self.check(name)?;
        self.put(name, target, Some(meta.clone()));
        Ok(())
    }
    fn set_metadata(&self, name: &str, meta: &blob::Metadata) -> Result<(), blob::Error> {
        self.check(name)?;
        match self.lock().get_mut(name) {
            Some(b) => {
                b.1 = Some(meta.clone());
                Ok(())
            }
            None => Err(not_found("set metadata", name)),
        }
    }
    fn copy(&self, from: &str, to: &str) -> Result<(), blob::Error> {
        self.check(to)?;
        let mut m = self.lock();
        let b = m
            .get(from)
            .cloned()
            .ok_or_else(|| not_found("copy", from))?;
        m.insert(to.to_string(), b);
        Ok(())
    }
    fn delete(&self, name: &str) -> Result<(), blob::Error> {
        self.check(name)?;
        self.lock().remove(name);
        Ok(())
    }
    fn exists(&self, name: &str) -> Result<bool, blob::Error> {
        self.reachable()?;
        Ok(self.lock().contains_key(name))
    }
    fn list(&self, dir: &str) -> Result<Vec<BlobEntry>, blob::Error> {
        self.reachable()?;
        let dir = dir.trim_end_matches('/');
        let under = format!("{dir}/");
        let raw = match self.raw.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        Ok(self
            .lock()
            .iter()
            .filter(|(k, _)| dir.is_empty() || k.starts_with(&under))
            .map(|(k, (b, m))| BlobEntry {
                name: k.clone(),
                size: b.len() as u64,
                metadata: match (raw.get(k), m) {
                    (Some(pairs), _) => pairs.clone(),
                    (None, Some(m)) => m.to_pairs(),
                    (None, None) => Vec::new(),
                },
                last_modified_sec: FAKE_LAST_MODIFIED,
            })
            .collect())
    }
    fn list_page(
        &self,
        dir: &str,
        marker: &str,
        max: usize,
    ) -> Result<(Vec<BlobEntry>, Option<String>), blob::Error> {
        self.list_pages_served
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The marker is the last name of the previous page (Azure's is opaque).
        let mut all = self.list(dir)?;
        all.retain(|e| marker.is_empty() || e.name.as_str() > marker);
        let more = all.len() > max.max(1);
        all.truncate(max.max(1));
        let next = more.then(|| all.last().map(|e| e.name.clone())).flatten();
        Ok((all, next))
    }
    fn get_bytes(&self, name: &str) -> Result<Vec<u8>, blob::Error> {
        self.lock()
            .get(name)
            .map(|b| b.0.clone())
            .ok_or_else(|| not_found("get", name))
    }
}

/// A failure of operation `op` on blob `name`, as the store would describe it.
fn failure(op: &'static str, name: &str, message: &str) -> blob::Failure {
    blob::Failure {
        op,
        name: name.to_string(),
        status: None,
        code: None,
        message: message.to_string(),
    }
}

fn not_found(op: &'static str, name: &str) -> blob::Error {
    blob::Error::NotFound(failure(op, name, "no such blob"))
}

/// Log entries kept in memory; `flushed` counts the requests to write them.
#[derive(Debug, Clone, Default)]
pub struct FakeLog {
    /// Every entry recorded.
    pub entries: Arc<Mutex<Vec<blob::LogEntry>>>,
    /// Flush calls.
    pub flushed: Arc<Mutex<usize>>,
}

impl FakeLog {
    /// The entries as the JSON lines the logging container would hold.
    pub fn entries(&self) -> Vec<serde_json::Value> {
        let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        g.iter()
            .map(|e| serde_json::to_value(e).unwrap_or_default())
            .collect()
    }
}

impl EventLog for FakeLog {
    fn record(&mut self, entry: blob::LogEntry) {
        if let Ok(mut g) = self.entries.lock() {
            g.push(entry);
        }
    }
    fn flush(&mut self) {
        if let Ok(mut g) = self.flushed.lock() {
            *g += 1;
        }
    }
}
