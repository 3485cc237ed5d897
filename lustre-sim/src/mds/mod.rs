//! `lustre-sim mds`: the simulated metadata server. Threads: one inotify reader, one
//! coordinator timer, one per client connection; all share `Inner` under one mutex. Every
//! request first drains pending inotify events, so a client always sees its own writes.

pub mod coord;
pub mod hsm_records;
pub mod inotify;
pub mod journal;
pub mod layout;
pub mod opens;
pub mod params;
pub mod rescan;
pub mod state;
pub mod stats;
pub mod watch;
pub mod xattr;

use crate::mounts::liveness::{probe_socket, SockProbe};
use crate::proto::{self, Reply, Request};
use state::State;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use watch::Watcher;

pub struct Inner {
    pub st: State,
    pub w: Watcher,
    last_house: u64,
    /// Calls and their cost, for `sim.stats`.
    pub stats: stats::Stats,
}

pub struct Shared {
    pub inner: Mutex<Inner>,
    pub cv: Condvar,
    pub stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// Drains inotify, then journals and publishes whatever changed.
    fn sync(&mut self, cv: &Condvar) {
        self.st.drain(&mut self.w, &[]);
        self.commit(cv);
    }

    fn commit(&mut self, cv: &Condvar) {
        match self.st.commit() {
            Ok(true) => cv.notify_all(),
            Ok(false) => {}
            Err(e) => {
                eprintln!("lustre-sim mds: journal write failed: {e}");
                std::process::exit(1);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MdsError {
    #[error("mount {0}: not a directory")]
    NotADir(PathBuf),
    #[error("fsname {0:?}: 1 to 8 characters of letters, digits, '_' or '-'")]
    BadFsname(String),
    #[error("{0}")]
    State(#[from] state::StateError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("fsname {0} is already served by a running simulator at {1}")]
    FsnameTaken(String, PathBuf),
    #[error("{0} is already served by a running simulator")]
    MountTaken(PathBuf),
}

fn ioe(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MdsError {
    let what = what.into();
    move |source| MdsError::Io { what, source }
}

pub struct Options {
    pub mount: PathBuf,
    pub fsname: String,
    pub mdts: u32,
}

static STOP: AtomicBool = AtomicBool::new(false);

/// Connections served at once (changelog followers and copytool calls included).
const MAX_CLIENTS: usize = 1024;
static CLIENTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Runs the daemon in the foreground until SIGTERM / SIGINT.
pub fn run(opts: Options) -> Result<(), MdsError> {
    let fsname_ok = !opts.fsname.is_empty()
        && opts.fsname.len() <= 8
        && opts
            .fsname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !fsname_ok {
        return Err(MdsError::BadFsname(opts.fsname));
    }
    if !opts.mount.is_dir() {
        return Err(MdsError::NotADir(opts.mount));
    }
    let root = opts
        .mount
        .canonicalize()
        .map_err(ioe(format!("mount {}", opts.mount.display())))?;
    // SAFETY: installing async-signal-safe handlers (they only store to an atomic) and
    // ignoring SIGPIPE so writes to dead agents' pipes report EPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    if let Some(other) = crate::mounts::mount_of_fsname(&opts.fsname) {
        return Err(MdsError::FsnameTaken(opts.fsname, other));
    }
    // Only a socket that is missing or refuses is free to take over: one that answers, or
    // whose state cannot be told (e.g. a full backlog), may belong to a running daemon.
    if !matches!(
        probe_socket(&proto::sock_path(&root)),
        SockProbe::Absent | SockProbe::Refused
    ) {
        return Err(MdsError::MountTaken(root));
    }
    let mut st = State::load(&root, &opts.fsname, opts.mdts.max(1))?;
    let mut w = Watcher::new().map_err(ioe("inotify_init1"))?;
    // Watches first, then the scan: changes made while we were down become records.
    st.rescan(&mut w);
    st.drain(&mut w, &[]);
    st.commit().map_err(ioe("journal"))?;
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            st,
            w,
            last_house: state::now_secs(),
            stats: stats::Stats::default(),
        }),
        cv: Condvar::new(),
        stop: AtomicBool::new(false),
    });
    let sock = proto::sock_path(&root);
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(ioe(format!("bind {}", sock.display())))?;
    match crate::mounts::register(&opts.fsname, &root) {
        Ok(()) => {}
        Err(crate::mounts::MountTabError::FsnameTaken { fsname, dir }) => {
            let _ = std::fs::remove_file(&sock);
            return Err(MdsError::FsnameTaken(fsname, dir));
        }
        Err(e) => eprintln!(
            "lustre-sim mds: warning: no mount table entry ({e}): {} is found by path only",
            opts.fsname
        ),
    }

    let s2 = shared.clone();
    std::thread::spawn(move || inotify_loop(s2));
    let s3 = shared.clone();
    std::thread::spawn(move || timer_loop(s3));
    let (s5, fs5, root5) = (shared.clone(), opts.fsname.clone(), root.clone());
    std::thread::spawn(move || mounttab_keeper(s5, fs5, root5));
    let s4 = shared.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            // Bounded: one thread per connection, at most MAX_CLIENTS of them.
            if CLIENTS.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
                CLIENTS.fetch_sub(1, Ordering::SeqCst);
                let _ = proto::send_json(&mut c, &Reply::Err(libc::EAGAIN));
                continue;
            }
            let s = s4.clone();
            std::thread::spawn(move || {
                serve(s, c);
                CLIENTS.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    eprintln!(
        "lustre-sim mds: {} ({} MDT) serving {}",
        opts.fsname,
        opts.mdts.max(1),
        root.display()
    );
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    shared.stop.store(true, Ordering::SeqCst);
    let mut g = shared.lock();
    g.sync(&shared.cv);
    if let Ok(Some(f)) = g.st.take_commit() {
        if let Err(e) = f.sync_data() {
            eprintln!("lustre-sim mds: journal commit (fsync) at stop failed: {e}");
        }
    }
    let shutdown = crate::hal::kuc_shutdown();
    for a in g.st.agents.iter_mut() {
        let _ = coord::write_pipe(a, &shutdown);
    }
    g.st.agents.clear();
    let snap = g.st.snapshot();
    let _ = std::fs::remove_file(&sock);
    let _ = crate::mounts::unregister(&opts.fsname, &root);
    shared.cv.notify_all();
    snap.map_err(ioe("snapshot"))
}

fn inotify_loop(s: Arc<Shared>) {
    let fd = s.lock().w.fd.as_raw_fd();
    while !s.stop.load(Ordering::SeqCst) {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd on the inotify descriptor, which lives as long as `s`.
        let n = unsafe { libc::poll(&mut p, 1, 500) };
        if n > 0 {
            let mut g = s.lock();
            g.sync(&s.cv);
        }
    }
}

/// Puts this daemon's mount-table entry back if it disappeared: the table may be shared with
/// older simulators (whose rewrites dropped entries on any failed connect) or edited by
/// hand. Simulators of this version never drop a live entry, so each restore is logged
/// (`mount table entry ... restored`), and tests check that line never shows up.
fn mounttab_keeper(s: Arc<Shared>, fsname: String, root: PathBuf) {
    while !s.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_secs(1));
        if !s.stop.load(Ordering::SeqCst) && !crate::mounts::is_registered(&fsname, &root) {
            match crate::mounts::register(&fsname, &root) {
                Ok(()) => {
                    eprintln!("lustre-sim mds: mount table entry for {fsname} was lost; restored")
                }
                Err(e) => eprintln!("lustre-sim mds: mount table entry for {fsname} lost: {e}"),
            }
        }
    }
}

fn timer_loop(s: Arc<Shared>) {
    let mut last_commit = state::now_secs();
    while !s.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(250));
        let now = state::now_secs();
        if now.saturating_sub(last_commit) >= journal::COMMIT_INTERVAL_SECS {
            last_commit = now;
            group_commit(&s);
        }
        let mut g = s.lock();
        let period =
            g.st.mdts
                .iter()
                .map(|m| m.tun.loop_period)
                .min()
                .unwrap_or(10)
                .max(1);
        if now.saturating_sub(g.last_house) >= period {
            g.last_house = now;
            let Inner { st, w, .. } = &mut *g;
            st.drain(w, &[]);
            st.housekeeping();
            g.commit(&s.cv);
        }
    }
}

/// Makes the journal's changelog records durable, as jbd2's periodic commit does on an MDT:
/// the fsync runs without the MDS's lock, so no call waits for the disk.
fn group_commit(s: &Shared) {
    let handle = s.lock().st.take_commit();
    match handle.and_then(|h| h.map_or(Ok(()), |f| f.sync_data())) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("lustre-sim mds: journal commit (fsync) failed: {e}");
            std::process::exit(1);
        }
    }
}

fn reply_ok<T: serde::Serialize>(v: T) -> Reply {
    match serde_json::to_value(v) {
        Ok(v) => Reply::Ok(v),
        Err(_) => Reply::Err(libc::EPROTO),
    }
}

/// Records sent to a changelog reader per read.
const RECORDS_PER_READ: usize = 256;

/// Up to [`RECORDS_PER_READ`] records from index `next` on. The queue is in index order, so the first one is
/// found by bisection: a reader far behind (a backlog of millions) costs the MDS a seek per batch,
/// as a Lustre changelog reader pays its llog positioning once per open (`chlg_load`), not a walk
/// from the oldest record for every batch.
fn records_from(q: &std::collections::VecDeque<(u64, Vec<u8>)>, next: u64) -> Vec<(u64, Vec<u8>)> {
    let start = q.partition_point(|(i, _)| *i < next);
    q.range(start..).take(RECORDS_PER_READ).cloned().collect()
}

fn serve(s: Arc<Shared>, mut c: UnixStream) {
    loop {
        let (body, fd) = match proto::recv_msg_with_fd(&mut c) {
            Ok(x) => x,
            Err(_) => return,
        };
        let req: Request = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(_) => {
                let _ = proto::send_json(&mut c, &Reply::Err(libc::EPROTO));
                return;
            }
        };
        if let Request::ChangelogStart { mdt, start, follow } = req {
            stream_changelog(&s, c, mdt, start, follow);
            return;
        }
        let reply = handle(&s, req, fd);
        if proto::send_json(&mut c, &reply).is_err() {
            return;
        }
    }
}

fn handle(s: &Shared, req: Request, fd: Option<std::os::fd::OwnedFd>) -> Reply {
    let mut g = s.lock();
    g.sync(&s.cv);
    g.stats.call(&req);
    let Inner { st, w, stats, .. } = &mut *g;
    let r = match req {
        Request::Info => reply_ok(proto::MountInfo {
            fsname: st.fsname.clone(),
            mdts: st.nmdts,
            root: st.root.display().to_string(),
        }),
        Request::Path2Fid { path } => match st.lookup_rel(path.as_bytes()) {
            Some(f) => reply_ok(f),
            None => Reply::Err(libc::ENOENT),
        },
        Request::Fid2Path { fid, linkno } => {
            if !st.nodes.contains_key(&fid) && fid != crate::fid::ROOT_FID {
                Reply::Err(libc::ENOENT)
            } else {
                let nlinks = st
                    .nodes
                    .get(&fid)
                    .map(|n| n.links.len())
                    .unwrap_or(1)
                    .max(1);
                let k = (linkno as usize).min(nlinks - 1);
                match st.rel_path_link(&fid, k) {
                    Some(p) => {
                        let next = if k + 1 < nlinks {
                            k as u32 + 1
                        } else {
                            k as u32
                        };
                        reply_ok(proto::Fid2PathReply {
                            path: String::from_utf8_lossy(&p).into_owned(),
                            linkno: next,
                        })
                    }
                    None => Reply::Err(libc::ENOENT),
                }
            }
        }
        Request::HsmStateGet { fid } => st.hsm_state(&fid).map_or_else(Reply::Err, reply_ok),
        Request::HsmStateSet {
            fid,
            set,
            clear,
            archive_id,
        } => st
            .hsm_state_set(&fid, set, clear, archive_id)
            .map_or_else(Reply::Err, reply_ok),
        Request::CurrentAction { fid } => match st.current_action_walk(&fid) {
            Ok((a, walked)) => {
                stats.add("current_action.records_read", walked);
                reply_ok(a)
            }
            Err(e) => Reply::Err(e),
        },
        Request::HsmRequest {
            action,
            archive_id,
            flags,
            items,
            data,
        } => st
            .hsm_request(w, action, archive_id, flags, &items, &data)
            .map_or_else(Reply::Err, reply_ok),
        Request::Import {
            path,
            archive_id,
            size,
            mode,
            uid,
            gid,
            atime,
            mtime,
            stripe_count,
            stripe_size,
            pool,
        } => st
            .import(
                w,
                &path,
                archive_id,
                size,
                mode,
                uid,
                gid,
                atime,
                mtime,
                layout::LayoutAttrs::from_import(stripe_count, stripe_size, &pool),
            )
            .map_or_else(Reply::Err, reply_ok),
        Request::LayoutGet { fid } => st.layout_get(&fid).map_or_else(Reply::Err, reply_ok),
        Request::LayoutSet {
            fid,
            layout,
            created,
        } => st
            .layout_set(&fid, &layout, created)
            .map_or_else(Reply::Err, reply_ok),
        Request::DataVersion { fid } => match st.nodes.get(&fid) {
            Some(n) => reply_ok(n.dv),
            None => Reply::Err(libc::ENOENT),
        },
        Request::ChangelogStart { .. } => Reply::Err(libc::EINVAL),
        Request::ChangelogClear { mdt, user, endrec } => st
            .changelog_clear(mdt, &user, endrec)
            .map_or_else(Reply::Err, reply_ok),
        Request::ChangelogRegister { mdt, name } => st
            .changelog_register(mdt, name)
            .map_or_else(Reply::Err, reply_ok),
        Request::ChangelogDeregister { mdt, user } => st
            .changelog_deregister(mdt, &user)
            .map_or_else(Reply::Err, reply_ok),
        Request::CtRegister { archives, pid } => match fd {
            Some(fd) => st
                .register_agent(archives, fd, pid)
                .map_or_else(Reply::Err, reply_ok),
            None => Reply::Err(libc::EBADF),
        },
        Request::CtUnregister { agent } => {
            st.unregister_agent(agent);
            reply_ok(())
        }
        Request::ActionBegin {
            cookie,
            fid,
            is_error: _,
            mdt_index,
            open_flags,
        } => st
            .action_begin(cookie, fid, mdt_index, open_flags)
            .map_or_else(Reply::Err, reply_ok),
        Request::ActionProgress {
            cookie,
            fid,
            offset,
            length,
            flags: _,
        } => st
            .action_progress(cookie, fid, offset, length)
            .map_or_else(Reply::Err, reply_ok),
        Request::ActionEnd {
            cookie,
            fid,
            offset,
            length,
            flags,
            errval,
        } => st
            .action_end(w, cookie, fid, offset, length, flags, errval)
            .map_or_else(Reply::Err, reply_ok),
        Request::GetParam { pattern } => {
            let extra = stats.param();
            let mut v = st.get_param(&pattern).unwrap_or_default();
            if params::glob(&pattern, &extra.0) {
                v.push(extra);
            }
            if v.is_empty() {
                Reply::Err(libc::ENOENT)
            } else {
                reply_ok(v)
            }
        }
        Request::SetParam { name, value } => st
            .set_param(&name, &value)
            .map_or_else(Reply::Err, reply_ok),
    };
    g.commit(&s.cv);
    r
}

/// Streams MDT `mdt`'s records from `start` as frames (u32 length + raw record); a zero-length
/// frame marks the end of records when not following.
fn stream_changelog(s: &Shared, mut c: UnixStream, mdt: u32, start: u64, follow: bool) {
    {
        let mut g = s.lock();
        g.sync(&s.cv);
        // Each open costs a real MDS a reader thread that re-reads the plain llog from its
        // start (mdc_changelog.c, chlg_load): counted per MDT.
        let name = format!("changelog_open.{}", g.st.mdt_name(mdt));
        g.stats.add(&name, 1);
        if mdt as usize >= g.st.mdts.len() {
            let _ = proto::send_json(&mut c, &Reply::Err(libc::ENODEV));
            return;
        }
        // That thread's first pass starts at the oldest record some user still keeps and reads
        // every record up to `start` only to skip it (`chlg_read_cat_process_cb`;
        // `llog_is_plain_skipable` skips whole plain logs only, and those hold every kept
        // record): counted per MDT, so a reader that reopens while records stay uncleared shows
        // what it costs. A follower's later passes resume where it stopped and re-read nothing.
        let kept_below = g.st.records[mdt as usize].partition_point(|(i, _)| *i < start);
        let name = format!("changelog_reread.{}", g.st.mdt_name(mdt));
        g.stats.add(&name, kept_below as u64);
    }
    if proto::send_json(&mut c, &reply_ok(())).is_err() {
        return;
    }
    let mut next = start;
    loop {
        let batch: Vec<(u64, Vec<u8>)> = {
            let mut g = s.lock();
            g.sync(&s.cv);
            records_from(&g.st.records[mdt as usize], next)
        };
        let at_end = batch.len() < RECORDS_PER_READ;
        if !batch.is_empty() {
            let mut out = Vec::new();
            for (i, b) in &batch {
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
                next = i + 1;
            }
            if std::io::Write::write_all(&mut c, &out).is_err() {
                return;
            }
        }
        if !at_end {
            continue;
        }
        if !follow {
            let _ = proto::write_msg(&mut c, &[]);
            return;
        }
        // Caught up. A Lustre client's reader thread (mdc_changelog.c, `chlg_load`) then closes
        // the catalog, sleeps one second (`schedule_timeout_interruptible(cfs_time_seconds(1))`)
        // and reads again from where it stopped: a record written meanwhile reaches the reader
        // up to a second later, in a batch. Not woken by new records, as that thread is not.
        sleep_unless_stopped(s, FOLLOW_PERIOD);
        if s.stop.load(Ordering::SeqCst) || peer_gone(&c) {
            return;
        }
    }
}

/// How long a following changelog reader sleeps once caught up (`chlg_load`: one second).
pub const FOLLOW_PERIOD: Duration = Duration::from_secs(1);

/// Sleeps `d`, or less if the simulator stops meanwhile.
fn sleep_unless_stopped(s: &Shared, d: Duration) {
    let g = s.lock();
    let _ =
        s.cv.wait_timeout_while(g, d, |_| !s.stop.load(Ordering::SeqCst));
}

fn peer_gone(c: &UnixStream) -> bool {
    let mut p = libc::pollfd {
        fd: c.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: polling one descriptor we own, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

pub fn rel_of(root: &Path, p: &Path) -> Option<Vec<u8>> {
    p.strip_prefix(root)
        .ok()
        .map(|r| r.as_os_str().as_bytes().to_vec())
}
