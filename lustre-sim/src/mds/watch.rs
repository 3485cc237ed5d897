//! Turning inotify events on the mount into namespace updates and changelog records.
//! One watch per directory (recursive by adding watches as directories appear); a directory's
//! watch maps to its FID, so renames of directories need no watch bookkeeping.

use super::inotify::read_events;
pub use super::inotify::{Event, Watcher};
use super::state::{kind_of, Kind, Node, Stat, State};
pub use super::xattr::{get_fid_xattr, list_xattrs, set_fid_xattr};
use crate::consts::*;
use crate::fid::{Fid, ROOT_FID};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What prompted a comparison with the cached stat.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cause {
    Modify,
    Attrib,
    Close,
    Rescan,
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
    pub fn attr_changed(&mut self, fid: Fid, path: &Path, cause: Cause) {
        let Ok(m) = std::fs::symlink_metadata(path) else {
            // Renamed (or removed) since the event: a write still changed the data; the stat
            // cache is refreshed when the rename is processed (see `adopt`).
            if cause == Cause::Modify && n_is_file(self, &fid) {
                self.data_changed(fid);
            }
            return;
        };
        let mut st = Stat::from_meta(&m);
        let Some(n) = self.nodes.get(&fid) else {
            return;
        };
        if st.ino != n.stat.ino && n.stat.ino != 0 {
            return;
        }
        let old = n.stat.clone();
        let parent = n.links.first().map(|l| l.0).unwrap_or_default();
        let mdt = n.mdt;
        if cause == Cause::Attrib && st.size != old.size {
            st.size = old.size;
            st.mtime = old.mtime;
        }
        let mut valid = 0u16;
        if st.mode != old.mode {
            valid |= ATTR_MODE;
        }
        if st.uid != old.uid {
            valid |= ATTR_UID;
        }
        if st.gid != old.gid {
            valid |= ATTR_GID;
        }
        let shrunk = st.size < old.size;
        if st.size != old.size {
            valid |= ATTR_SIZE;
        }
        if st.mtime != old.mtime {
            valid |= ATTR_MTIME | ATTR_CTIME;
        }
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
        } else if valid & (ATTR_MODE | ATTR_UID | ATTR_GID) != 0 {
            Some(CL_SETATTR)
        } else if cause == Cause::Attrib && valid & ATTR_MTIME != 0 {
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
        let r = State::base_rec(CL_CLOSE, MDS_FMODE_WRITE, fid, parent, uid, gid, b"");
        self.emit(mdt, r);
    }

    /// Processes every queued inotify event. Events on FIDs in `suppress` only refresh the
    /// cache (the daemon's own writes: release, restore, import).
    pub fn drain(&mut self, w: &mut Watcher, suppress: &[Fid]) {
        loop {
            let evs = read_events(&w.fd);
            if evs.is_empty() {
                break;
            }
            let mut moves: HashMap<u32, (Fid, Vec<u8>, Fid, bool)> = HashMap::new();
            for ev in evs {
                self.handle(w, ev, &mut moves, suppress);
            }
            // Moves whose other half never came: the entry left the mount.
            let mut rest: Vec<_> = moves.into_values().collect();
            rest.sort_by(|a, b| a.1.cmp(&b.1));
            for (parent, name, _fid, _dir) in rest {
                self.unlink_entry(w, parent, &name);
            }
        }
    }

    fn handle(
        &mut self,
        w: &mut Watcher,
        ev: Event,
        moves: &mut HashMap<u32, (Fid, Vec<u8>, Fid, bool)>,
        suppress: &[Fid],
    ) {
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
            if meta.is_none() {
                self.create_entry(w, dfid, &ev.name, &path, None, isdir);
            } else {
                self.link_or_create(w, dfid, &ev.name, &path, meta);
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
                self.attr_changed(c, &path, Cause::Modify);
            } else if ev.mask & libc::IN_ATTRIB != 0 {
                self.attr_changed(c, &path, Cause::Attrib);
            }
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
}
