//! The daemon's state: namespace model (FID per entry, links, cached stat and xattrs, HSM
//! attributes), per-MDT changelog (records, users, index), coordinator requests and agents.
//! Every mutation marks what it touched; `commit()` journals exactly that (see journal.rs).

use super::journal::{write_atomic, Journal};
use crate::consts::*;
use crate::fid::{Fid, FID_SEQ_NORMAL, MDT_SEQ_STRIDE, ROOT_FID, SEQ_WIDTH};
use crate::record::{pack_time, Rec};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Special,
}

#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Eq, Debug)]
pub struct Stat {
    pub size: u64,
    pub mtime: (i64, i64),
    pub atime: (i64, i64),
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub ino: u64,
}

impl Stat {
    pub fn from_meta(m: &std::fs::Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt;
        Stat {
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            atime: (m.atime(), m.atime_nsec()),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            ino: m.ino(),
        }
    }
}

pub fn kind_of(m: &std::fs::Metadata) -> Kind {
    let t = m.file_type();
    if t.is_dir() {
        Kind::Dir
    } else if t.is_symlink() {
        Kind::Symlink
    } else if t.is_file() {
        Kind::File
    } else {
        Kind::Special
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Node {
    pub fid: Fid,
    pub kind: Kind,
    pub mdt: u32,
    /// (parent FID, entry name) for every link.
    pub links: Vec<(Fid, Vec<u8>)>,
    pub stat: Stat,
    /// Names and value hashes of the entry's xattrs (the simulator's own excluded).
    pub xattrs: Vec<(String, u64)>,
    pub hsm: u32,
    pub archive_id: u32,
    /// Data version: bumped on every observed data modification.
    pub dv: u64,
    /// The layout of a regular file (`None`: the file system default); see layout.rs.
    #[serde(default)]
    pub layout: Option<super::layout::LayoutAttrs>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct User {
    pub id: u32,
    pub name: Option<String>,
    pub clear: u64,
    pub since: u64,
}

impl User {
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("cl{}-{}", self.id, n),
            None => format!("cl{}", self.id),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Tunables {
    pub max_requests: u32,
    pub active_request_timeout: u64,
    pub loop_period: u64,
    pub grace_delay: u64,
    pub default_archive_id: u32,
    pub policy_nra: bool,
    pub policy_nbr: bool,
    pub hsm_control: String,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            max_requests: 3,
            active_request_timeout: 3600,
            loop_period: 10,
            grace_delay: 60,
            default_archive_id: 1,
            policy_nra: true,
            policy_nbr: false,
            hsm_control: "enabled".into(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct MdtMeta {
    /// Last record index handed out.
    pub index: u64,
    /// Records with index <= purged are gone.
    pub purged: u64,
    pub users: Vec<User>,
    pub next_user: u32,
    pub seq: u64,
    pub next_oid: u32,
    pub tun: Tunables,
    pub archive_count: u64,
    pub restore_count: u64,
    pub remove_count: u64,
}

pub const ARS_WAITING: u8 = 0;
pub const ARS_STARTED: u8 = 1;
pub const ARS_FAILED: u8 = 2;
pub const ARS_CANCELED: u8 = 3;
pub const ARS_SUCCEED: u8 = 4;

pub fn ars_name(s: u8) -> &'static str {
    match s {
        ARS_WAITING => "WAITING",
        ARS_STARTED => "STARTED",
        ARS_FAILED => "FAILED",
        ARS_CANCELED => "CANCELED",
        _ => "SUCCEED",
    }
}

/// One coordinator request (one item of a user request), as in `hsm.actions`.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Req {
    pub cookie: u64,
    pub mdt: u32,
    pub fid: Fid,
    pub dfid: Fid,
    pub action: u32,
    pub archive_id: u32,
    pub flags: u64,
    pub offset: u64,
    pub length: u64,
    pub data: Vec<u8>,
    pub status: u8,
    pub agent: Option<u64>,
    pub last_update: u64,
    pub canceled: bool,
    pub moved: Vec<(u64, u64)>,
    pub dv_begin: Option<u64>,
    pub volatile: Option<String>,
    /// The volatile file's layout (RESTORE); see layout.rs.
    #[serde(default)]
    pub volatile_layout: super::layout::VolatileLayout,
    pub finished_at: u64,
    /// Reloaded from the action log as STARTED after a restart of the MDS: on disk only, not in
    /// the coordinator's memory list (`cdt_request_list`). Lustre's `mdt_cdt_update_request`
    /// finds no such cookie (progress and end answer -ENOENT), `cdt_request_count` does not
    /// count it against `max_requests`, and `mdt_cdt_started_cb` cancels it once
    /// `active_request_timeout` has passed since its last change.
    #[serde(default)]
    pub orphan: bool,
}

impl Req {
    pub fn active(&self) -> bool {
        self.status == ARS_WAITING || self.status == ARS_STARTED
    }

    pub fn bytes_moved(&self) -> u64 {
        self.moved.iter().map(|(s, e)| e - s).sum()
    }

    /// Merges [off, off+len) into the moved-interval set.
    pub fn add_moved(&mut self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        let mut s = off;
        let mut e = off.saturating_add(len);
        let mut out = Vec::new();
        for &(a, b) in &self.moved {
            if b < s || a > e {
                out.push((a, b));
            } else {
                s = s.min(a);
                e = e.max(b);
            }
        }
        out.push((s, e));
        out.sort();
        self.moved = out;
    }
}

pub struct Agent {
    pub id: u64,
    pub uuid: String,
    pub archives: Vec<u32>,
    pub pipe: OwnedFd,
    pub ok: u64,
    pub errors: u64,
    /// MDT coordinators this agent is registered with (all of them at registration).
    pub mdts: Vec<u32>,
    /// A write hit EPIPE: like the client kernel, which forgets a dead pipe after the first
    /// failed write, later sends "succeed" without reaching anyone (lustre-abi.md §6.2, DNE).
    pub pipe_dead: bool,
    /// What the "client kernel thread" still has to write: bytes that did not fit the pipe.
    pub backlog: PipeBacklog,
}

/// The part of an agent's messages that did not fit its pipe (64 KiB). On real Lustre the
/// client's kernel thread blocks in `pipe_write` (holding `kg_sem`) until the copytool reads,
/// while the MDT already counts the requests as sent (STARTED). Here a writer thread blocks on
/// the pipe instead, and later messages queue behind it in order.
#[derive(Default)]
pub struct PipeBacklog {
    pub tx: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    /// Bytes handed to the writer and not yet written.
    pub pending: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The writer hit an error (EPIPE: the copytool is gone).
    pub broken: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Agent {
    pub fn serves_on(&self, mdt: u32, archive_id: u32) -> bool {
        self.mdts.contains(&mdt) && self.serves(archive_id)
    }

    pub fn serves(&self, archive_id: u32) -> bool {
        self.archives.is_empty()
            || self.archives.contains(&0)
            || self.archives.contains(&archive_id)
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Entry {
    seq: u64,
    nodes: Vec<(Fid, Option<Node>)>,
    mdts: Vec<(u32, MdtMeta)>,
    reqs: Vec<(u64, Option<Req>)>,
    records: Vec<(u32, u64, String)>,
    next_cookie: u64,
}

#[derive(Serialize, Deserialize, Default)]
struct Snapshot {
    seq: u64,
    fsname: String,
    nodes: Vec<Node>,
    mdts: Vec<MdtMeta>,
    reqs: Vec<Req>,
    records: Vec<Vec<(u64, String)>>,
    next_cookie: u64,
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for c in b {
        s.push_str(&format!("{:02x}", c));
    }
    s
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct State {
    pub root: PathBuf,
    pub fsname: String,
    pub nmdts: u32,
    pub nodes: HashMap<Fid, Node>,
    pub children: HashMap<(Fid, Vec<u8>), Fid>,
    pub by_ino: HashMap<u64, Fid>,
    pub mdts: Vec<MdtMeta>,
    pub records: Vec<VecDeque<(u64, Vec<u8>)>>,
    pub reqs: BTreeMap<u64, Req>,
    /// Live requests, found without walking `reqs` (see [`ReqIndex`]).
    pub idx: ReqIndex,
    pub next_cookie: u64,
    pub agents: Vec<Agent>,
    pub next_agent: u64,
    /// User cancels of STARTED requests not yet delivered to an agent (cookies of the requests
    /// to cancel). Lustre records a CANCEL as a WAITING request that `mdt_cdt_waiting_cb` sends
    /// only while the coordinator is below `max_requests`; the target stays STARTED until then.
    pub pending_cancels: Vec<u64>,
    d_nodes: HashSet<Fid>,
    d_mdts: HashSet<u32>,
    d_reqs: HashSet<u64>,
    new_records: Vec<(u32, u64, Vec<u8>)>,
    journal: Journal,
    seq: u64,
    /// Bumped on every commit that added records (changelog followers wait on it).
    pub generation: u64,
    /// Objects that got a data record since the daemon started (see `stats::suppressed`).
    pub data_recorded: HashSet<Fid>,
    /// Open flags seen for files with an open in progress (see `opens`).
    pub opens: HashMap<Fid, super::opens::OpenTrack>,
}

/// Where the coordinator finds live requests. `reqs` also keeps every finished request for
/// `grace_delay` (a 10,000-file export leaves 10,000 of them), and dispatch runs after every
/// request and every `action_end`: walking `reqs` each time made an export quadratic.
/// Each set may still hold cookies that have moved on (started, ended, purged); readers check
/// the status, and dispatch and housekeeping drop them.
#[derive(Debug, Default)]
pub struct ReqIndex {
    /// WAITING requests, oldest first.
    pub waiting: BTreeSet<u64>,
    /// WAITING RESTOREs (the one that may run above `max_requests`).
    pub waiting_restores: BTreeSet<u64>,
    /// STARTED requests.
    pub started: BTreeSet<u64>,
    /// Active requests per file, oldest first.
    pub by_fid: HashMap<Fid, Vec<u64>>,
    /// Bumped when a node is removed: waiting requests of vanished files are failed only then.
    pub removals: u64,
    pub removals_checked: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("state file {0}: {1}")]
    Corrupt(String, serde_json::Error),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StateError {
    let w = what.into();
    move |source| StateError::Io { what: w, source }
}

impl State {
    pub fn state_dir(root: &Path) -> PathBuf {
        root.join(".lustre")
    }

    /// Loads the snapshot and replays the journal.
    pub fn load(root: &Path, fsname: &str, nmdts: u32) -> Result<State, StateError> {
        let dir = Self::state_dir(root);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let snap_path = dir.join("state.json");
        let snap: Snapshot = match std::fs::read(&snap_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StateError::Corrupt(snap_path.display().to_string(), e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot::default(),
            Err(e) => return Err(io(format!("reading {}", snap_path.display()))(e)),
        };
        let jpath = dir.join("journal");
        let (journal, entries) =
            Journal::open(&jpath).map_err(io(format!("opening {}", jpath.display())))?;
        let mut st = State {
            root: root.to_path_buf(),
            fsname: fsname.to_string(),
            nmdts,
            nodes: snap.nodes.into_iter().map(|n| (n.fid, n)).collect(),
            children: HashMap::new(),
            by_ino: HashMap::new(),
            mdts: snap.mdts,
            records: snap
                .records
                .into_iter()
                .map(|v| v.into_iter().map(|(i, h)| (i, unhex(&h))).collect())
                .collect(),
            reqs: snap.reqs.into_iter().map(|r| (r.cookie, r)).collect(),
            idx: ReqIndex::default(),
            next_cookie: snap.next_cookie,
            agents: Vec::new(),
            pending_cancels: Vec::new(),
            // Agent ids never repeat across restarts (requests persisted as STARTED keep theirs).
            next_agent: now_secs() << 20,
            d_nodes: HashSet::new(),
            d_mdts: HashSet::new(),
            d_reqs: HashSet::new(),
            new_records: Vec::new(),
            journal,
            seq: snap.seq,
            generation: 0,
            data_recorded: HashSet::new(),
            opens: HashMap::new(),
        };
        for raw in entries {
            let Ok(e) = serde_json::from_slice::<Entry>(&raw) else {
                continue;
            };
            if e.seq <= st.seq {
                continue;
            }
            st.seq = e.seq;
            for (fid, n) in e.nodes {
                match n {
                    Some(n) => st.nodes.insert(fid, n),
                    None => st.nodes.remove(&fid),
                };
            }
            for (i, m) in e.mdts {
                while st.mdts.len() <= i as usize {
                    st.mdts.push(MdtMeta::default());
                }
                st.mdts[i as usize] = m;
            }
            for (c, r) in e.reqs {
                match r {
                    Some(r) => st.reqs.insert(c, r),
                    None => st.reqs.remove(&c),
                };
            }
            for (m, i, h) in e.records {
                while st.records.len() <= m as usize {
                    st.records.push(VecDeque::new());
                }
                st.records[m as usize].push_back((i, unhex(&h)));
            }
            st.next_cookie = st.next_cookie.max(e.next_cookie);
        }
        while st.mdts.len() < nmdts as usize {
            let i = st.mdts.len() as u64;
            st.mdts.push(MdtMeta {
                seq: FID_SEQ_NORMAL + i * MDT_SEQ_STRIDE,
                next_oid: 1,
                next_user: 1,
                ..Default::default()
            });
            st.d_mdts.insert(i as u32);
        }
        while st.records.len() < st.mdts.len() {
            st.records.push(VecDeque::new());
        }
        for (i, m) in st.mdts.iter().enumerate() {
            let p = m.purged;
            st.records[i].retain(|(x, _)| *x > p);
        }
        if st.next_cookie == 0 {
            st.next_cookie = now_secs() << 16;
        }
        st.reload_requests();
        st.reindex();
        let cookies: Vec<u64> = st.reqs.keys().copied().collect();
        for c in cookies {
            st.index_req(c);
        }
        // Files may have gone while the daemon was down: check the waiting ones once.
        st.idx.removals = 1;
        Ok(st)
    }

    /// What a restarted coordinator makes of its action log (`mdt_hsm_cdt_start` ->
    /// `mdt_hsm_pending_restore` -> `hsm_restore_cb`): a RESTORE left STARTED goes back to
    /// WAITING (dated now) and is sent again; every other STARTED request stays STARTED on disk
    /// but is in no memory list (see [`Req::orphan`]); nothing is owed by any agent any more.
    fn reload_requests(&mut self) {
        let now = now_secs();
        let mut changed = Vec::new();
        for r in self.reqs.values_mut() {
            if r.agent.is_none() && (r.status != ARS_STARTED || r.orphan) {
                continue;
            }
            if r.status == ARS_STARTED && r.action == HSMA_RESTORE {
                r.status = ARS_WAITING;
                r.last_update = now;
                r.dfid = r.fid;
                r.moved.clear();
                if let Some(v) = r.volatile.take() {
                    let _ = std::fs::remove_file(v);
                }
            } else if r.status == ARS_STARTED {
                r.orphan = true;
            }
            r.agent = None;
            changed.push(r.cookie);
        }
        for c in changed {
            self.touch_req(c);
        }
    }

    /// Files the request `c` to the index sets its status puts it in (after it is inserted
    /// or starts; leaving a set needs nothing, see [`ReqIndex`]).
    pub fn index_req(&mut self, c: u64) {
        let Some(r) = self.reqs.get(&c) else {
            return;
        };
        match r.status {
            ARS_WAITING => {
                self.idx.waiting.insert(c);
                if r.action == HSMA_RESTORE {
                    self.idx.waiting_restores.insert(c);
                }
            }
            ARS_STARTED => {
                self.idx.started.insert(c);
            }
            _ => return,
        }
        let v = self.idx.by_fid.entry(r.fid).or_default();
        if !v.contains(&c) {
            v.push(c);
        }
    }

    /// Active (waiting or started) requests on `fid`, oldest first.
    pub fn active_on(&self, fid: &Fid) -> impl DoubleEndedIterator<Item = &Req> + '_ {
        self.idx
            .by_fid
            .get(fid)
            .into_iter()
            .flatten()
            .filter_map(|c| self.reqs.get(c))
            .filter(|r| r.active())
    }

    /// WAITING requests, oldest first.
    pub fn waiting_reqs(&self) -> impl Iterator<Item = &Req> + '_ {
        self.idx
            .waiting
            .iter()
            .filter_map(|c| self.reqs.get(c))
            .filter(|r| r.status == ARS_WAITING)
    }

    /// STARTED requests.
    pub fn started_reqs(&self) -> impl Iterator<Item = &Req> + '_ {
        self.idx
            .started
            .iter()
            .filter_map(|c| self.reqs.get(c))
            .filter(|r| r.status == ARS_STARTED)
    }

    /// Drops index entries of requests that moved on. `full` walks every set (housekeeping);
    /// otherwise only the cheap parts: the started set and the head of the waiting queue.
    pub fn prune_index(&mut self, full: bool) {
        let reqs = &self.reqs;
        let has = |c: &u64, st: u8| reqs.get(c).is_some_and(|r| r.status == st);
        self.idx.started.retain(|c| has(c, ARS_STARTED));
        while let Some(c) = self.idx.waiting.first() {
            if has(c, ARS_WAITING) {
                break;
            }
            self.idx.waiting.pop_first();
        }
        if full {
            self.idx.waiting.retain(|c| has(c, ARS_WAITING));
            self.idx.waiting_restores.retain(|c| has(c, ARS_WAITING));
            self.idx.by_fid.retain(|_, v| {
                v.retain(|c| reqs.get(c).is_some_and(|r| r.active()));
                !v.is_empty()
            });
        }
    }

    pub fn reindex(&mut self) {
        self.children.clear();
        self.by_ino.clear();
        for n in self.nodes.values() {
            for (p, name) in &n.links {
                self.children.insert((*p, name.clone()), n.fid);
            }
            if n.stat.ino != 0 {
                self.by_ino.insert(n.stat.ino, n.fid);
            }
        }
    }

    pub fn touch_node(&mut self, fid: Fid) {
        self.d_nodes.insert(fid);
    }
    pub fn touch_mdt(&mut self, m: u32) {
        self.d_mdts.insert(m);
    }
    pub fn touch_req(&mut self, c: u64) {
        self.d_reqs.insert(c);
    }

    pub fn node_mut(&mut self, fid: &Fid) -> Option<&mut Node> {
        self.d_nodes.insert(*fid);
        self.nodes.get_mut(fid)
    }

    pub fn insert_node(&mut self, n: Node) {
        for (p, name) in &n.links {
            self.children.insert((*p, name.clone()), n.fid);
        }
        if n.stat.ino != 0 {
            self.by_ino.insert(n.stat.ino, n.fid);
        }
        self.d_nodes.insert(n.fid);
        self.nodes.insert(n.fid, n);
    }

    pub fn remove_node(&mut self, fid: &Fid) -> Option<Node> {
        let n = self.nodes.remove(fid)?;
        self.idx.removals += 1;
        self.opens.remove(fid);
        for (p, name) in &n.links {
            if self.children.get(&(*p, name.clone())) == Some(fid) {
                self.children.remove(&(*p, name.clone()));
            }
        }
        if self.by_ino.get(&n.stat.ino) == Some(fid) {
            self.by_ino.remove(&n.stat.ino);
        }
        self.d_nodes.insert(*fid);
        Some(n)
    }

    /// A new FID from MDT `mdt`'s sequence.
    pub fn alloc_fid(&mut self, mdt: u32) -> Fid {
        let m = &mut self.mdts[mdt as usize];
        if m.next_oid == 0 || m.next_oid > SEQ_WIDTH {
            m.seq += 1;
            m.next_oid = 1;
        }
        let f = Fid {
            seq: m.seq,
            oid: m.next_oid,
            ver: 0,
        };
        m.next_oid += 1;
        self.d_mdts.insert(mdt);
        f
    }

    /// Path of a node relative to the mount (first link), "" for the root.
    pub fn rel_path(&self, fid: &Fid) -> Option<Vec<u8>> {
        self.rel_path_link(fid, 0)
    }

    pub fn rel_path_link(&self, fid: &Fid, link: usize) -> Option<Vec<u8>> {
        if *fid == ROOT_FID {
            return Some(Vec::new());
        }
        let n = self.nodes.get(fid)?;
        let (p, name) = n.links.get(link)?;
        let mut parts = vec![name.clone()];
        let mut cur = *p;
        let mut guard = 0;
        while cur != ROOT_FID {
            let pn = self.nodes.get(&cur)?;
            let (pp, pname) = pn.links.first()?;
            parts.push(pname.clone());
            cur = *pp;
            guard += 1;
            if guard > 4096 {
                return None;
            }
        }
        parts.reverse();
        Some(parts.join(&b'/'))
    }

    pub fn abs_path(&self, fid: &Fid) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        let rel = self.rel_path(fid)?;
        if rel.is_empty() {
            return Some(self.root.clone());
        }
        Some(self.root.join(std::ffi::OsStr::from_bytes(&rel)))
    }

    pub fn lookup_rel(&self, rel: &[u8]) -> Option<Fid> {
        let mut cur = ROOT_FID;
        for comp in rel
            .split(|&c| c == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
        {
            cur = *self.children.get(&(cur, comp.to_vec()))?;
        }
        Some(cur)
    }

    pub fn has_users(&self, mdt: u32) -> bool {
        self.mdts
            .get(mdt as usize)
            .is_some_and(|m| !m.users.is_empty())
    }

    /// Appends a record to MDT `mdt`'s changelog (dropped while the MDT has no user).
    pub fn emit(&mut self, mdt: u32, mut r: Rec) {
        if !self.has_users(mdt) || self.time_record_suppressed(&r) {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let m = &mut self.mdts[mdt as usize];
        r.index = m.index + 1;
        r.time = pack_time(now.as_secs(), now.subsec_nanos());
        let b = match r.encode() {
            Ok(b) => b,
            Err(e) => {
                // Cannot happen for names the file system accepted; never leave a gap.
                eprintln!("lustre-sim mds: record not encodable ({e}): {r:?}");
                return;
            }
        };
        m.index = r.index;
        self.records[mdt as usize].push_back((r.index, b.clone()));
        self.new_records.push((mdt, r.index, b));
        self.d_mdts.insert(mdt);
    }

    /// A record in the full MDT shape: jobid (empty) and extra flags with uid/gid and NID.
    pub fn base_rec(
        rtype: u32,
        flags: u16,
        tfid: Fid,
        pfid: Fid,
        uid: u32,
        gid: u32,
        name: &[u8],
    ) -> Rec {
        Rec {
            rtype,
            flags,
            tfid,
            pfid,
            jobid: Some(String::new()),
            extra: true,
            uidgid: Some((uid as u64, gid as u64)),
            nid: Some(crate::record::NID_LO_BE),
            name: name.to_vec(),
            ..Default::default()
        }
    }

    /// Emits a CL_HSM record for `fid` (event, error, dirty flag from the node's state).
    pub fn emit_hsm(&mut self, fid: Fid, event: u16, error: i32) {
        let Some(n) = self.nodes.get(&fid) else {
            return;
        };
        let err = (error.unsigned_abs().min(0x7F)) as u16;
        let dirty = if n.hsm & HS_DIRTY != 0 { 1u16 << 10 } else { 0 };
        let flags = err | (event << 7) | dirty;
        let (mdt, uid, gid) = (n.mdt, n.stat.uid, n.stat.gid);
        let r = Self::base_rec(CL_HSM, flags, fid, Fid::default(), uid, gid, b"");
        self.emit(mdt, r);
    }

    /// Journals everything touched since the last commit and wakes followers.
    pub fn commit(&mut self) -> std::io::Result<bool> {
        if self.d_nodes.is_empty()
            && self.d_mdts.is_empty()
            && self.d_reqs.is_empty()
            && self.new_records.is_empty()
        {
            return Ok(false);
        }
        self.seq += 1;
        let e = Entry {
            seq: self.seq,
            nodes: self
                .d_nodes
                .drain()
                .map(|f| (f, self.nodes.get(&f).cloned()))
                .collect(),
            mdts: self
                .d_mdts
                .drain()
                .filter_map(|i| self.mdts.get(i as usize).map(|m| (i, m.clone())))
                .collect(),
            reqs: self
                .d_reqs
                .drain()
                .map(|c| (c, self.reqs.get(&c).cloned()))
                .collect(),
            records: self
                .new_records
                .drain(..)
                .map(|(m, i, b)| (m, i, hex(&b)))
                .collect(),
            next_cookie: self.next_cookie,
        };
        let had_records = !e.records.is_empty();
        // Changelog records must survive a machine crash (the next group commit fsyncs them);
        // everything else only the daemon's death, which a plain write() already covers.
        let durable = had_records;
        let b = serde_json::to_vec(&e).map_err(std::io::Error::other)?;
        self.journal.append(&b, durable)?;
        if had_records {
            self.generation += 1;
        }
        if self.journal.len() > 32 << 20 {
            self.snapshot()?;
        }
        Ok(had_records)
    }

    /// The journal's group commit, if one is due (see `journal.rs`): a handle to fsync outside
    /// the MDS's lock.
    pub fn take_commit(&mut self) -> std::io::Result<Option<std::fs::File>> {
        self.journal.take_commit()
    }

    /// Writes a full snapshot and empties the journal.
    pub fn snapshot(&mut self) -> std::io::Result<()> {
        let s = Snapshot {
            seq: self.seq,
            fsname: self.fsname.clone(),
            nodes: self.nodes.values().cloned().collect(),
            mdts: self.mdts.clone(),
            reqs: self.reqs.values().cloned().collect(),
            records: self
                .records
                .iter()
                .map(|q| q.iter().map(|(i, b)| (*i, hex(b))).collect())
                .collect(),
            next_cookie: self.next_cookie,
        };
        let b = serde_json::to_vec(&s).map_err(std::io::Error::other)?;
        write_atomic(&Self::state_dir(&self.root).join("state.json"), &b)?;
        self.journal.reset()
    }

    /// Drops records every user of `mdt` has cleared.
    pub fn purge(&mut self, mdt: u32) {
        let m = &mut self.mdts[mdt as usize];
        let upto = if m.users.is_empty() {
            m.index
        } else {
            m.users.iter().map(|u| u.clear).min().unwrap_or(0)
        };
        if upto > m.purged {
            m.purged = upto;
            self.d_mdts.insert(mdt);
            self.records[mdt as usize].retain(|(i, _)| *i > upto);
        }
    }
}
