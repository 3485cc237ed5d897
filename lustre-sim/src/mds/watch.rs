//! Turning inotify events on the mount into namespace updates and changelog records.
//! One watch per directory (recursive by adding watches as directories appear); a directory's
//! watch maps to its FID, so renames of directories need no watch bookkeeping.

use super::inotify::read_events_wait;
pub use super::inotify::{Event, Watcher};
use super::state::{kind_of, Kind, Node, Stat, State};
pub use super::xattr::{get_fid_xattr, list_xattrs, set_fid_xattr};
use crate::consts::*;
use crate::fid::{Fid, ROOT_FID};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long an IN_MOVED_FROM without its IN_MOVED_TO waits for it. `fsnotify_move` queues the
/// two events one after the other, not atomically: a read can fall between them (seen in a
/// slow TCG guest, REAL_LUSTRE.md row 5). A rename is one RENME record on Lustre; only a move
/// out of the mount (no IN_MOVED_TO ever) becomes an UNLNK once this has passed.
const MOVE_PAIR_WAIT: Duration = Duration::from_millis(250);

/// IN_MOVED_FROM halves waiting for their IN_MOVED_TO, by cookie: (parent, name, FID, is dir).
type Moves = HashMap<u32, (Fid, Vec<u8>, Fid, bool)>;

/// What prompted a comparison with the cached stat.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cause {
    Modify,
    Attrib,
    Close,
    Rescan,
}

/// The `la_valid` bits (`lustre_user.h` `enum la_valid`) of the setattr that turned `old` into
/// `new`, as `mdd_attr_set` records them (`mdd_attr_set_changelog` stores the low 12 bits):
/// chmod is `LA_MODE|LA_CTIME` (0x14), a truncate `LA_SIZE|LA_MTIME|LA_CTIME` (0xe), a utime
/// `LA_ATIME|LA_MTIME|LA_CTIME` (0x7) — the values real 2.16.1 wrote (REAL_LUSTRE.md row 1).
fn la_valid(old: &Stat, new: &Stat) -> u16 {
    let mut valid = 0u16;
    if new.mode != old.mode {
        valid |= LA_MODE | LA_CTIME;
    }
    if new.uid != old.uid {
        valid |= LA_UID | LA_CTIME;
    }
    if new.gid != old.gid {
        valid |= LA_GID | LA_CTIME;
    }
    if new.size != old.size {
        valid |= LA_SIZE | LA_MTIME | LA_CTIME;
    }
    if new.mtime != old.mtime {
        valid |= LA_MTIME | LA_CTIME;
        // utimensat(2) sets both times; the client sends LA_ATIME with them.
        if new.atime != old.atime {
            valid |= LA_ATIME;
        }
    }
    valid
}

fn n_is_file(s: &State, fid: &Fid) -> bool {
    s.nodes.get(fid).is_some_and(|n| n.kind == Kind::File)
}

pub(super) fn join(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}
impl State {
    pub fn mdt_for_new(&self, parent: &Fid, kind: Kind, name: &[u8]) -> u32 {
        if kind == Kind::Dir && self.nmdts > 1 {
            super::journal::fnv32(name) % self.nmdts
        } else {
            self.nodes.get(parent).map(|n| n.mdt).unwrap_or(0)
        }
    }

    /// Registers a new entry (FID, xattr, model) and emits its creation record.
    pub fn create_entry(
        &mut self,
        w: &mut Watcher,
        parent: Fid,
        name: &[u8],
        path: &Path,
        meta: Option<std::fs::Metadata>,
        isdir_hint: bool,
    ) -> Fid {
        let kind =
            meta.as_ref()
                .map(kind_of)
                .unwrap_or(if isdir_hint { Kind::Dir } else { Kind::File });
        let stat = meta.as_ref().map(Stat::from_meta).unwrap_or_default();
        let mdt = self.mdt_for_new(&parent, kind, name);
        let fid = self.alloc_fid(mdt);
        if meta.is_some() {
            set_fid_xattr(path, fid);
        }
        let xattrs = if meta.is_some() {
            list_xattrs(path)
        } else {
            Vec::new()
        };
        let (uid, gid) = (stat.uid, stat.gid);
        self.insert_node(Node {
            fid,
            kind,
            mdt,
            links: vec![(parent, name.to_vec())],
            stat,
            xattrs,
            hsm: 0,
            archive_id: 0,
            dv: 1,
            layout: None,
        });
        let rtype = match kind {
            Kind::Dir => CL_MKDIR,
            Kind::Symlink => CL_SOFTLINK,
            Kind::Special => CL_MKNOD,
            Kind::File => CL_CREATE,
        };
        let pm = self.nodes.get(&parent).map(|n| n.mdt).unwrap_or(0);
        let r = State::base_rec(rtype, 0, fid, parent, uid, gid, name);
        self.emit(pm, r);
        if kind == Kind::Dir && meta.is_some() {
            let _ = w.add(path, fid);
            self.scan_new_dir(w, fid, path);
        }
        fid
    }

    /// Entries already inside a directory that just appeared (created before its watch).
    fn scan_new_dir(&mut self, w: &mut Watcher, dfid: Fid, path: &Path) {
        let Ok(rd) = std::fs::read_dir(path) else {
            return;
        };
        let mut names: Vec<Vec<u8>> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().as_bytes().to_vec())
            .collect();
        names.sort();
        for name in names {
            if self.children.contains_key(&(dfid, name.clone())) {
                continue;
            }
            let p = join(path, &name);
            let meta = std::fs::symlink_metadata(&p).ok();
            let known = self.nodes.len();
            let fid = self.link_or_create(w, dfid, &name, &p, meta);
            // A file written before its directory's watch existed: its close was not seen.
            if self.nodes.len() > known
                && self.nodes.get(&fid).is_some_and(|n| n.kind == Kind::File)
            {
                self.open_created(fid);
                self.close_write(fid, &p);
            }
        }
    }

    fn link_or_create(
        &mut self,
        w: &mut Watcher,
        parent: Fid,
        name: &[u8],
        path: &Path,
        meta: Option<std::fs::Metadata>,
    ) -> Fid {
        use std::os::unix::fs::MetadataExt;
        if let Some(m) = &meta {
            let xfid = get_fid_xattr(path);
            let known = self.by_ino.get(&m.ino()).copied();
            if let (Some(x), Some(k)) = (xfid, known) {
                if x == k && self.nodes.contains_key(&k) {
                    // A known object under a new name: a rename we saw no event pair for (it
                    // happened before the new directory's watch existed) if one of its old
                    // links is gone, else a new hard link.
                    let gone = self.nodes[&k]
                        .links
                        .iter()
                        .find(|(p, n)| !self.link_exists(p, n, m.ino()))
                        .cloned();
                    return match gone {
                        Some((op, on)) => {
                            self.rename_entry(w, k, op, &on, parent, name);
                            k
                        }
                        None if !m.is_dir() => self.add_hardlink(k, parent, name),
                        None => self.create_entry(w, parent, name, path, meta, false),
                    };
                }
            }
        }
        self.create_entry(w, parent, name, path, meta, false)
    }

    /// Does `parent/name` exist on disk as inode `ino`?
    fn link_exists(&self, parent: &Fid, name: &[u8], ino: u64) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Some(d) = self.abs_path(parent) else {
            return false;
        };
        std::fs::symlink_metadata(join(&d, name)).is_ok_and(|m| m.ino() == ino)
    }

    /// Is the model's entry `fid` the object now at `path` (same inode)?
    fn same_entry(&self, fid: &Fid, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Some(n) = self.nodes.get(fid) else {
            return false;
        };
        std::fs::symlink_metadata(path).is_ok_and(|m| m.ino() == n.stat.ino && n.stat.ino != 0)
    }

    pub(super) fn add_hardlink(&mut self, fid: Fid, parent: Fid, name: &[u8]) -> Fid {
        let Some(n) = self.node_mut(&fid) else {
            return fid;
        };
        n.links.push((parent, name.to_vec()));
        let (uid, gid) = (n.stat.uid, n.stat.gid);
        self.children.insert((parent, name.to_vec()), fid);
        let pm = self.nodes.get(&parent).map(|n| n.mdt).unwrap_or(0);
        let r = State::base_rec(CL_HARDLINK, 0, fid, parent, uid, gid, name);
        self.emit(pm, r);
        fid
    }

    /// Removes one link; emits UNLINK/RMDIR (`emit` false for moves out of the mount that the
    /// caller reports itself).
    pub fn unlink_entry(&mut self, w: &mut Watcher, parent: Fid, name: &[u8]) {
        let Some(fid) = self.children.remove(&(parent, name.to_vec())) else {
            return;
        };
        let Some(n) = self.node_mut(&fid) else { return };
        n.links.retain(|(p, nm)| !(*p == parent && nm == name));
        let last = n.links.is_empty();
        let kind = n.kind;
        let (uid, gid, hsm) = (n.stat.uid, n.stat.gid, n.hsm);
        let mut flags = 0;
        if last {
            flags |= CLF_UNLINK_LAST;
            if hsm & HS_EXISTS != 0 {
                flags |= CLF_UNLINK_HSM_EXISTS;
            }
        }
        if last && kind == Kind::Dir {
            self.drop_subtree(w, fid);
        } else if last {
            self.remove_node(&fid);
        } else if let Some(other) = self.nodes.get(&fid).and_then(|n| n.links.first().cloned()) {
            // keep the children index pointing at a surviving link
            self.children.insert(other, fid);
        }
        let rtype = if kind == Kind::Dir {
            CL_RMDIR
        } else {
            CL_UNLINK
        };
        let pm = self.nodes.get(&parent).map(|n| n.mdt).unwrap_or(0);
        let r = State::base_rec(rtype, flags, fid, parent, uid, gid, name);
        self.emit(pm, r);
    }

    fn drop_subtree(&mut self, w: &mut Watcher, fid: Fid) {
        let kids: Vec<Fid> = self
            .children
            .iter()
            .filter(|((p, _), _)| *p == fid)
            .map(|(_, c)| *c)
            .collect();
        for k in kids {
            if self.nodes.get(&k).is_some_and(|n| n.kind == Kind::Dir) {
                self.drop_subtree(w, k);
            } else {
                self.remove_node(&k);
            }
        }
        w.remove(&fid);
        self.remove_node(&fid);
    }

    pub fn rename_entry(
        &mut self,
        w: &mut Watcher,
        fid: Fid,
        sparent: Fid,
        sname: &[u8],
        tparent: Fid,
        tname: &[u8],
    ) {
        // Overwritten target?
        let mut tfid = Fid::default();
        let mut flags = 0u16;
        if let Some(victim) = self.children.get(&(tparent, tname.to_vec())).copied() {
            if victim != fid {
                tfid = victim;
                if let Some(v) = self.node_mut(&victim) {
                    v.links.retain(|(p, n)| !(*p == tparent && n == tname));
                    if v.links.is_empty() {
                        flags |= CLF_RENAME_LAST;
                        if v.hsm & HS_EXISTS != 0 {
                            flags |= CLF_RENAME_LAST_EXISTS;
                        }
                        self.remove_node(&victim);
                    }
                }
            }
        }
        if self.children.get(&(sparent, sname.to_vec())) == Some(&fid) {
            self.children.remove(&(sparent, sname.to_vec()));
        }
        let Some(n) = self.node_mut(&fid) else { return };
        if let Some(l) = n
            .links
            .iter_mut()
            .find(|(p, nm)| *p == sparent && nm == sname)
        {
            *l = (tparent, tname.to_vec());
        } else {
            n.links.push((tparent, tname.to_vec()));
        }
        let (uid, gid) = (n.stat.uid, n.stat.gid);
        self.children.insert((tparent, tname.to_vec()), fid);
        let mut name = tname.to_vec();
        name.push(0);
        name.extend_from_slice(sname);
        let mut r = State::base_rec(CL_RENAME, flags, tfid, tparent, uid, gid, &name);
        r.rename = Some((fid, sparent));
        let pm = self.nodes.get(&tparent).map(|n| n.mdt).unwrap_or(0);
        self.emit(pm, r);
        self.adopt(w, fid);
    }

    /// An entry first seen only by name (created and renamed before its IN_CREATE was
    /// processed, so it could not be stat'ed then) gets its inode, stat and FID xattr as soon
    /// as its current name is known.
    fn adopt(&mut self, w: &mut Watcher, fid: Fid) {
        use std::os::unix::fs::MetadataExt;
        let Some(ino) = self.nodes.get(&fid).map(|n| n.stat.ino) else {
            return;
        };
        let Some(path) = self.abs_path(&fid) else {
            return;
        };
        if ino != 0 {
            // Events queued before the rename could not stat the old name: refresh the cache
            // (their data changes were counted, their records emitted).
            if let Ok(m) = std::fs::symlink_metadata(&path) {
                if m.ino() == ino {
                    let x = list_xattrs(&path);
                    if let Some(n) = self.node_mut(&fid) {
                        n.stat = Stat::from_meta(&m);
                        n.xattrs = x;
                    }
                    // A directory renamed between its stat and inotify_add_watch has no watch.
                    if m.is_dir() && !w.fid_wd.contains_key(&fid) {
                        let _ = w.add(&path, fid);
                        self.scan_new_dir(w, fid, &path);
                    }
                }
            }
            return;
        }
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            return;
        };
        if self.by_ino.contains_key(&m.ino()) {
            return;
        }
        set_fid_xattr(&path, fid);
        let x = list_xattrs(&path);
        if let Some(n) = self.node_mut(&fid) {
            n.stat = Stat::from_meta(&m);
            n.kind = kind_of(&m);
            n.xattrs = x;
        }
        self.by_ino.insert(m.ino(), fid);
        if m.is_dir() {
            let _ = w.add(&path, fid);
            self.scan_new_dir(w, fid, &path);
        }
    }

    /// A data modification observed on `fid` (write, truncate): new data version, HS_DIRTY.
    pub fn data_changed(&mut self, fid: Fid) {
        let Some(n) = self.node_mut(&fid) else { return };
        n.dv += 1;
        if n.hsm & HS_EXISTS != 0 && n.hsm & HS_DIRTY == 0 {
            n.hsm |= HS_DIRTY;
            // No implicit restore here: a write to a released file makes it an ordinary dirty
            // file (see README).
            n.hsm &= !HS_RELEASED;
            self.emit_hsm(fid, HE_STATE, 0);
        }
    }

    /// Compares the entry with its cached stat/xattrs and emits the setattr-family /
    /// SETXATTR records the difference calls for. `cause` says which event prompted it:
    /// a write (IN_MODIFY) always changes the data; an IN_ATTRIB that sees a new size belongs
    /// to a write whose IN_MODIFY is still queued, so it leaves size and mtime to that event.
    /// Returns true when it recorded a TRUNC.
    pub fn attr_changed(&mut self, fid: Fid, path: &Path, cause: Cause) -> bool {
        let Ok(m) = std::fs::symlink_metadata(path) else {
            // Renamed (or removed) since the event: a write still changed the data; the stat
            // cache is refreshed when the rename is processed (see `adopt`).
            if cause == Cause::Modify && n_is_file(self, &fid) {
                self.data_changed(fid);
            }
            return false;
        };
        let mut st = Stat::from_meta(&m);
        let Some(n) = self.nodes.get(&fid) else {
            return false;
        };
        if st.ino != n.stat.ino && n.stat.ino != 0 {
            return false;
        }
        let old = n.stat.clone();
        let parent = n.links.first().map(|l| l.0).unwrap_or_default();
        let mdt = n.mdt;
        if cause == Cause::Attrib && st.size != old.size {
            st.size = old.size;
            st.mtime = old.mtime;
        }
        if n.kind == Kind::Dir {
            // An entry added or removed sets the directory's size, mtime and ctime without a
            // setattr: Lustre records only the entry's own CREAT/UNLNK/... (`mdd_create`), so
            // those changes make no record here (the daemon took such an MTIME for a changed
            // directory and put its blob again). utime(2) to a given time is a setattr: it
            // leaves mtime != ctime. (`touch DIR`, mtime = ctime = now, goes unrecorded.)
            use std::os::unix::fs::MetadataExt;
            st.size = old.size;
            if (m.mtime(), m.mtime_nsec()) == (m.ctime(), m.ctime_nsec()) {
                st.mtime = old.mtime;
            }
        }
        let valid = la_valid(&old, &st);
        let shrunk = st.size < old.size;
        let data = match cause {
            Cause::Modify => true,
            Cause::Rescan => st.size != old.size || st.mtime != old.mtime,
            Cause::Attrib | Cause::Close => false,
        };
        // Only IN_ATTRIB (and the rescan) can mean changed xattrs.
        let old_x = n.xattrs.clone();
        let xattrs = if matches!(cause, Cause::Attrib | Cause::Rescan) {
            list_xattrs(path)
        } else {
            old_x.clone()
        };
        if let Some(n) = self.node_mut(&fid) {
            n.stat = st.clone();
            n.xattrs = xattrs.clone();
        }
        if data && n_is_file(self, &fid) {
            self.data_changed(fid);
        }
        // Setattr family: one record, the lowest type among TRUNC, SETATTR, MTIME that applies.
        let rtype = if shrunk {
            Some(CL_TRUNC)
        } else if valid & (LA_MODE | LA_UID | LA_GID) != 0 {
            Some(CL_SETATTR)
        } else if cause == Cause::Attrib && valid & LA_MTIME != 0 {
            Some(CL_MTIME)
        } else {
            None
        };
        if let Some(t) = rtype {
            let r = State::base_rec(t, valid & CLF_FLAGMASK, fid, parent, st.uid, st.gid, b"");
            self.emit(mdt, r);
        }
        for (name, h) in &xattrs {
            if !old_x.iter().any(|(n, oh)| n == name && oh == h) {
                self.emit_xattr(mdt, fid, parent, &st, name);
            }
        }
        for (name, _) in &old_x {
            if !xattrs.iter().any(|(n, _)| n == name) {
                self.emit_xattr(mdt, fid, parent, &st, name);
            }
        }
        rtype == Some(CL_TRUNC)
    }

    fn emit_xattr(&mut self, mdt: u32, fid: Fid, parent: Fid, st: &Stat, name: &str) {
        let mut r = State::base_rec(CL_SETXATTR, 0, fid, parent, st.uid, st.gid, b"");
        r.xattr = Some(name.to_string());
        self.emit(mdt, r);
    }

    pub fn close_write(&mut self, fid: Fid, path: &Path) {
        self.close_with(fid, path, Cause::Close);
    }

    pub(super) fn close_with(&mut self, fid: Fid, path: &Path, cause: Cause) {
        self.attr_changed(fid, path, cause);
        let Some(n) = self.nodes.get(&fid) else {
            return;
        };
        if n.kind != Kind::File {
            return;
        }
        let (mdt, uid, gid) = (n.mdt, n.stat.uid, n.stat.gid);
        let parent = n.links.first().map(|l| l.0).unwrap_or_default();
        let flags = self.close_flags(&fid);
        let r = State::base_rec(CL_CLOSE, flags, fid, parent, uid, gid, b"");
        self.emit(mdt, r);
    }

    /// Processes every queued inotify event. Events on FIDs in `suppress` only refresh the
    /// cache (the daemon's own writes: release, restore, import).
    pub fn drain(&mut self, w: &mut Watcher, suppress: &[Fid]) {
        self.drain_from(w, suppress, &mut |w: &Watcher, wait| {
            read_events_wait(&w.fd, wait)
        });
    }

    /// `drain` with the events from `next` (the watcher's fd; tests split reads with it).
    /// `next(w, wait)` returns the queued events, waiting up to `wait` when there are none.
    pub fn drain_from(
        &mut self,
        w: &mut Watcher,
        suppress: &[Fid],
        next: &mut dyn FnMut(&Watcher, Option<Duration>) -> Vec<Event>,
    ) {
        let mut moves: Moves = HashMap::new();
        let mut deadline: Option<Instant> = None;
        loop {
            let wait = if moves.is_empty() {
                deadline = None;
                None
            } else {
                let d = *deadline.get_or_insert_with(|| Instant::now() + MOVE_PAIR_WAIT);
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                Some(left)
            };
            let evs = next(w, wait);
            if evs.is_empty() && moves.is_empty() {
                break;
            }
            for ev in evs {
                self.handle(w, ev, &mut moves, suppress);
            }
        }
        // Moves whose other half never came: the entry left the mount.
        let mut rest: Vec<_> = moves.into_values().collect();
        rest.sort_by(|a, b| a.1.cmp(&b.1));
        for (parent, name, _fid, _dir) in rest {
            self.unlink_entry(w, parent, &name);
        }
    }

    fn handle(&mut self, w: &mut Watcher, ev: Event, moves: &mut Moves, suppress: &[Fid]) {
        if ev.mask & libc::IN_Q_OVERFLOW != 0 {
            self.rescan(w);
            return;
        }
        if ev.mask & libc::IN_IGNORED != 0 {
            if let Some(f) = w.wd_fid.remove(&ev.wd) {
                w.fid_wd.remove(&f);
            }
            return;
        }
        let Some(&dfid) = w.wd_fid.get(&ev.wd) else {
            return;
        };
        if ev.name.is_empty() {
            if ev.mask & libc::IN_ATTRIB != 0 && dfid == ROOT_FID {
                let root = self.root.clone();
                self.attr_changed(dfid, &root, Cause::Attrib);
            }
            return;
        }
        if dfid == ROOT_FID && ev.name == b".lustre" {
            return;
        }
        let Some(dpath) = self.abs_path(&dfid) else {
            return;
        };
        let path = join(&dpath, &ev.name);
        let isdir = ev.mask & libc::IN_ISDIR != 0;
        let child = self.children.get(&(dfid, ev.name.clone())).copied();
        if let Some(c) = child {
            if suppress.contains(&c)
                && ev.mask & (libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_CLOSE_WRITE) != 0
            {
                if let Ok(m) = std::fs::symlink_metadata(&path) {
                    let x = list_xattrs(&path);
                    if let Some(n) = self.node_mut(&c) {
                        n.stat = Stat::from_meta(&m);
                        n.xattrs = x;
                    }
                }
                return;
            }
        }
        if ev.mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0
            && child.is_some_and(|c| self.same_entry(&c, &path))
        {
            // Already found by the scan of a new directory.
            if ev.mask & libc::IN_MOVED_TO != 0 {
                moves.remove(&ev.cookie);
            }
            return;
        }
        if ev.mask & libc::IN_CREATE != 0 {
            if child.is_some() {
                // stale model entry (missed delete): drop it first
                self.unlink_entry(w, dfid, &ev.name);
            }
            let meta = std::fs::symlink_metadata(&path).ok();
            let known = self.nodes.len();
            let fid = if meta.is_none() {
                self.create_entry(w, dfid, &ev.name, &path, None, isdir)
            } else {
                self.link_or_create(w, dfid, &ev.name, &path, meta)
            };
            if self.nodes.len() > known && n_is_file(self, &fid) {
                self.open_created(fid);
            }
        } else if ev.mask & libc::IN_DELETE != 0 {
            self.unlink_entry(w, dfid, &ev.name);
        } else if ev.mask & libc::IN_MOVED_FROM != 0 {
            if let Some(c) = child {
                moves.insert(ev.cookie, (dfid, ev.name.clone(), c, isdir));
            }
        } else if ev.mask & libc::IN_MOVED_TO != 0 {
            if let Some((sp, sn, fid, _)) = moves.remove(&ev.cookie) {
                self.rename_entry(w, fid, sp, &sn, dfid, &ev.name);
            } else {
                if child.is_some() {
                    self.unlink_entry(w, dfid, &ev.name);
                }
                let meta = std::fs::symlink_metadata(&path).ok();
                self.create_entry(w, dfid, &ev.name, &path, meta, isdir);
            }
        } else if let Some(c) = child {
            if ev.mask & libc::IN_CLOSE_WRITE != 0 {
                self.close_write(c, &path);
            } else if ev.mask & libc::IN_MODIFY != 0 {
                let trunc = self.attr_changed(c, &path, Cause::Modify);
                self.open_modified(c, trunc);
                return;
            } else if ev.mask & libc::IN_OPEN != 0 {
                if !isdir {
                    self.open_seen(c);
                }
                return;
            } else if ev.mask & libc::IN_ATTRIB != 0 {
                self.attr_changed(c, &path, Cause::Attrib);
            }
            self.open_other_event(&c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Rec;

    /// A state and watcher on a fresh directory, with a changelog user on MDT0.
    fn setup() -> (tempfile::TempDir, State, Watcher) {
        let d = tempfile::tempdir().unwrap();
        let mut st = State::load(d.path(), "t", 1).unwrap();
        let mut w = Watcher::new().unwrap();
        st.rescan(&mut w);
        st.changelog_register(0, None).unwrap();
        (d, st, w)
    }

    fn types(st: &State) -> Vec<(u32, Vec<u8>)> {
        st.records[0]
            .iter()
            .map(|(_, b)| Rec::decode(b).unwrap().0)
            .map(|r| (r.rtype, r.name))
            .collect()
    }

    #[test]
    fn operations_done_before_the_events_are_read_keep_their_meaning() {
        let (d, mut st, mut w) = setup();
        // everything happens before the daemon reads a single event
        std::fs::write(d.path().join("tmp"), b"x").unwrap();
        std::fs::rename(d.path().join("tmp"), d.path().join("final")).unwrap();
        std::fs::create_dir(d.path().join("new")).unwrap();
        std::fs::rename(d.path().join("new"), d.path().join("dir")).unwrap();
        st.drain(&mut w, &[]);
        assert_eq!(
            types(&st),
            vec![
                (CL_CREATE, b"tmp".to_vec()),
                (CL_CLOSE, vec![]),
                (CL_RENAME, b"final\0tmp".to_vec()),
                (CL_MKDIR, b"new".to_vec()),
                (CL_RENAME, b"dir\0new".to_vec()),
            ]
        );
        // the late-known entries got their FID on the inode and the directory a watch
        let f = st.lookup_rel(b"final").unwrap();
        assert_eq!(get_fid_xattr(&d.path().join("final")), Some(f));
        std::fs::write(d.path().join("dir/inner"), b"y").unwrap();
        st.drain(&mut w, &[]);
        assert!(st.lookup_rel(b"dir/inner").is_some());
        assert_eq!(types(&st)[5], (CL_CREATE, b"inner".to_vec()));
    }

    #[test]
    fn a_rename_into_a_directory_not_yet_watched_is_still_a_rename() {
        let (d, mut st, mut w) = setup();
        std::fs::write(d.path().join("a"), b"x").unwrap();
        st.drain(&mut w, &[]);
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::rename(d.path().join("a"), d.path().join("sub/b")).unwrap();
        st.drain(&mut w, &[]);
        let a = st.records[0]
            .front()
            .map(|(_, b)| Rec::decode(b).unwrap().0.tfid)
            .unwrap();
        // the FID on the inode identifies the object: it is a rename, not a new file
        assert_eq!(st.lookup_rel(b"sub/b"), Some(a));
        let t: Vec<u32> = types(&st).into_iter().map(|x| x.0).collect();
        assert_eq!(t, vec![CL_CREATE, CL_CLOSE, CL_MKDIR, CL_RENAME]);
    }

    #[test]
    fn a_write_seen_only_after_a_rename_still_counts() {
        let (d, mut st, mut w) = setup();
        std::fs::write(d.path().join("a"), b"").unwrap();
        st.drain(&mut w, &[]);
        let f = st.lookup_rel(b"a").unwrap();
        assert_eq!(st.nodes[&f].dv, 1);
        std::fs::write(d.path().join("a"), b"content").unwrap();
        std::fs::rename(d.path().join("a"), d.path().join("b")).unwrap();
        st.drain(&mut w, &[]);
        assert_eq!(st.lookup_rel(b"b"), Some(f));
        assert!(st.nodes[&f].dv > 1, "the write changed the data version");
        assert_eq!(
            st.nodes[&f].stat.size, 7,
            "the cache follows the renamed file"
        );
        let n = st.records[0].len();
        st.rescan(&mut w);
        assert_eq!(st.records[0].len(), n, "a rescan finds nothing new");
    }

    fn recs(st: &State) -> Vec<Rec> {
        st.records[0]
            .iter()
            .map(|(_, b)| Rec::decode(b).unwrap().0)
            .collect()
    }

    #[test]
    fn a_move_pair_split_across_reads_stays_one_rename() {
        let (d, mut st, mut w) = setup();
        std::fs::write(d.path().join("a"), b"x").unwrap();
        st.drain(&mut w, &[]);
        let f = st.lookup_rel(b"a").unwrap();
        std::fs::rename(d.path().join("a"), d.path().join("b")).unwrap();
        // The read ends right after IN_MOVED_FROM; the next read (without waiting) finds
        // nothing; IN_MOVED_TO arrives only while the drain waits for it.
        let mut evs = read_events_wait(&w.fd, None);
        let cut = evs
            .iter()
            .position(|e| e.mask & libc::IN_MOVED_FROM != 0)
            .unwrap();
        let second: Vec<Event> = evs.split_off(cut + 1);
        assert!(second.iter().any(|e| e.mask & libc::IN_MOVED_TO != 0));
        let mut batches = vec![Some(evs), None, Some(second)].into_iter();
        let mut waited = false;
        st.drain_from(&mut w, &[], &mut |_w, wait| {
            waited |= wait.is_some();
            batches.next().flatten().unwrap_or_default()
        });
        assert!(waited, "an unpaired IN_MOVED_FROM makes the drain wait");
        let rs = recs(&st);
        let last = rs.last().unwrap();
        assert_eq!(
            (last.rtype, last.name.as_slice()),
            (CL_RENAME, &b"b\0a"[..])
        );
        assert_eq!(last.rename.map(|r| r.0), Some(f));
        assert!(!rs.iter().any(|r| r.rtype == CL_UNLINK), "{rs:#?}");
        assert_eq!(st.lookup_rel(b"b"), Some(f), "same FID under the new name");
    }

    #[test]
    fn a_move_out_of_the_mount_is_an_unlink_once_the_wait_is_over() {
        let (d, mut st, mut w) = setup();
        let out = tempfile::tempdir_in(d.path().parent().unwrap()).unwrap();
        std::fs::write(d.path().join("a"), b"x").unwrap();
        st.drain(&mut w, &[]);
        std::fs::rename(d.path().join("a"), out.path().join("a")).unwrap();
        st.drain(&mut w, &[]);
        let last = recs(&st).pop().unwrap();
        assert_eq!((last.rtype, last.flags), (CL_UNLINK, CLF_UNLINK_LAST));
        assert_eq!(st.lookup_rel(b"a"), None);
    }

    fn flags_of(st: &State) -> Vec<(u32, u16)> {
        recs(st).iter().map(|r| (r.rtype, r.flags)).collect()
    }

    const TRUNC_0XE: (u32, u16) = (CL_TRUNC, LA_SIZE | LA_MTIME | LA_CTIME);

    #[test]
    fn close_flags_and_trunc_follow_the_open() {
        use std::io::Write;
        let (d, mut st, mut w) = setup();
        let p = d.path().join("a");
        // created by the open: CLOSE 0x42 (O_CREAT | MDS_FMODE_WRITE), as real `touch`
        std::fs::write(&p, b"hello").unwrap();
        st.drain(&mut w, &[]);
        // open(O_TRUNC) that empties a file: TRUNC 0xe, CLOSE 0x202 (real `>`: 0x242)
        std::fs::write(&p, b"").unwrap();
        st.drain(&mut w, &[]);
        // an append open: neither flag is visible (real 0x442: O_APPEND)
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"more").unwrap();
        drop(f);
        st.drain(&mut w, &[]);
        let wr = MDS_FMODE_WRITE;
        assert_eq!(
            flags_of(&st),
            vec![
                (CL_CREATE, 0),
                (CL_CLOSE, MDS_OPEN_CREAT | wr),
                TRUNC_0XE,
                (CL_CLOSE, MDS_OPEN_TRUNC | wr),
                (CL_CLOSE, wr),
            ]
        );
    }

    #[test]
    fn an_in_modify_right_before_in_open_is_an_o_trunc() {
        // The events a 6.1 kernel queues for `printf x > a` on an existing file: the
        // truncation (IN_MODIFY) before fsnotify_open (IN_OPEN), then the write and the close.
        let (d, mut st, mut w) = setup();
        let p = d.path().join("a");
        std::fs::write(&p, b"").unwrap();
        st.drain(&mut w, &[]);
        let before = st.records[0].len();
        std::fs::write(&p, b"x").unwrap();
        let _ = read_events_wait(&w.fd, None); // the host kernel's own events, dropped
        let wd = w.fid_wd[&ROOT_FID];
        let ev = |mask: u32| Event {
            wd,
            mask,
            cookie: 0,
            name: b"a".to_vec(),
        };
        let mut once = Some(vec![
            ev(libc::IN_MODIFY),
            ev(libc::IN_OPEN),
            ev(libc::IN_MODIFY),
            ev(libc::IN_CLOSE_WRITE),
        ]);
        st.drain_from(&mut w, &[], &mut |_w, _wait| {
            once.take().unwrap_or_default()
        });
        let got = flags_of(&st).split_off(before);
        // real 2.16.1: TRUNC 0xe even for an empty file, then CLOSE 0x242
        assert_eq!(
            got,
            vec![TRUNC_0XE, (CL_CLOSE, MDS_OPEN_TRUNC | MDS_FMODE_WRITE)]
        );
        // an IN_OPEN after other events is a plain open
        let before = st.records[0].len();
        let mut once = Some(vec![
            ev(libc::IN_OPEN),
            ev(libc::IN_MODIFY),
            ev(libc::IN_CLOSE_WRITE),
        ]);
        st.drain_from(&mut w, &[], &mut |_w, _wait| {
            once.take().unwrap_or_default()
        });
        assert_eq!(
            flags_of(&st).split_off(before),
            vec![(CL_CLOSE, MDS_FMODE_WRITE)]
        );
    }

    #[test]
    fn setattr_records_carry_la_valid_bits() {
        use std::os::unix::fs::PermissionsExt;
        let (d, mut st, mut w) = setup();
        let p = d.path().join("a");
        std::fs::write(&p, b"hello").unwrap();
        st.drain(&mut w, &[]);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        st.drain(&mut w, &[]);
        let last = recs(&st).pop().unwrap();
        // chmod: LA_MODE|LA_CTIME, real `SATTR 0x14`
        assert_eq!((last.rtype, last.flags), (CL_SETATTR, 0x14));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(3)
            .unwrap();
        st.drain(&mut w, &[]);
        let rs = recs(&st);
        // truncate -s 3: real `TRUNC 0xe`
        let t = rs.iter().rev().find(|r| r.rtype == CL_TRUNC).unwrap();
        assert_eq!(t.flags, 0xe);
    }

    #[test]
    fn a_file_created_in_a_directory_leaves_no_record_on_the_directory() {
        // mdd_create records CREAT (+ the CLOSE of its open) on the new file only; the
        // parent's new mtime has no record (real run: changelog-all). The simulator's own FID
        // xattr on a new directory queues an IN_ATTRIB; when files appear in the directory
        // before it is read, that IN_ATTRIB sees a new mtime: it must not become an MTIME
        // record (the daemon exported the directory blob again for it).
        let (d, mut st, mut w) = setup();
        std::fs::create_dir(d.path().join("web")).unwrap();
        let mut first = Some(read_events_wait(&w.fd, None));
        let web = d.path().join("web");
        let mut calls = 0;
        st.drain_from(&mut w, &[], &mut |w, wait| {
            calls += 1;
            if let Some(evs) = first.take() {
                return evs;
            }
            if calls == 2 {
                std::thread::sleep(Duration::from_millis(20));
                std::fs::write(web.join("f0.txt"), b"page").unwrap();
            }
            read_events_wait(&w.fd, wait)
        });
        let dir = st.lookup_rel(b"web").unwrap();
        let rs = recs(&st);
        assert!(st.lookup_rel(b"web/f0.txt").is_some(), "{rs:#?}");
        assert_eq!(
            rs.iter()
                .filter(|r| r.tfid == dir)
                .map(|r| r.rtype)
                .collect::<Vec<_>>(),
            vec![CL_MKDIR],
            "{rs:#?}"
        );
        // a utime on the directory (both times set) is a setattr Lustre records
        let t = libc::timespec {
            tv_sec: 1_000_000,
            tv_nsec: 0,
        };
        let c = std::ffi::CString::new(web.as_os_str().as_bytes()).unwrap();
        let times = [t, t];
        // SAFETY: a NUL-terminated path and an array of two timespecs, both alive for the call.
        let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) };
        assert_eq!(rc, 0);
        st.drain(&mut w, &[]);
        let last = recs(&st).pop().unwrap();
        assert_eq!((last.rtype, last.tfid), (CL_MTIME, dir));
    }
}
