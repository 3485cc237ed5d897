//! Reconciling the model with the tree after a gap in events (daemon start, inotify overflow).

use super::inotify::Watcher;
use super::state::{kind_of, Kind, Node, Stat, State};
use super::watch::{join, Cause};
use super::xattr::{get_fid_xattr, set_fid_xattr};
use crate::fid::{Fid, ROOT_FID};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;

impl State {
    /// Walks the whole tree and reconciles it with the model: adds watches, and emits records
    /// for what changed while nobody was watching (daemon down, inotify overflow).
    pub fn rescan(&mut self, w: &mut Watcher) {
        use std::os::unix::fs::MetadataExt;
        let root = self.root.clone();
        if !self.nodes.contains_key(&ROOT_FID) {
            let m = std::fs::symlink_metadata(&root).ok();
            let stat = m.as_ref().map(Stat::from_meta).unwrap_or_default();
            self.insert_node(Node {
                fid: ROOT_FID,
                kind: Kind::Dir,
                mdt: 0,
                links: Vec::new(),
                stat,
                xattrs: Vec::new(),
                hsm: 0,
                archive_id: 0,
                dv: 1,
                layout: None,
            });
            set_fid_xattr(&root, ROOT_FID);
        }
        if !w.fid_wd.contains_key(&ROOT_FID) {
            let _ = w.add(&root, ROOT_FID);
        }
        // Pass 1: walk, collecting (fid -> links seen) and creating unknown entries.
        let mut seen: HashMap<Fid, Vec<(Fid, Vec<u8>)>> = HashMap::new();
        let mut stack = vec![(ROOT_FID, root.clone())];
        let mut moved: Vec<(Fid, Fid, Vec<u8>)> = Vec::new();
        while let Some((dfid, dpath)) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dpath) else {
                continue;
            };
            let mut names: Vec<Vec<u8>> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().as_bytes().to_vec())
                .collect();
            names.sort();
            for name in names {
                if dfid == ROOT_FID && name == b".lustre" {
                    continue;
                }
                let p = join(&dpath, &name);
                let Ok(m) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                let known = get_fid_xattr(&p)
                    .filter(|f| {
                        self.nodes
                            .get(f)
                            .is_some_and(|n| n.stat.ino == m.ino() || n.stat.ino == 0)
                    })
                    .or_else(|| {
                        self.by_ino
                            .get(&m.ino())
                            .copied()
                            .filter(|f| self.nodes.get(f).is_some_and(|n| n.kind == kind_of(&m)))
                    });
                let fid = match known {
                    Some(f) => {
                        let links = seen.entry(f).or_default();
                        links.push((dfid, name.clone()));
                        let n = &self.nodes[&f];
                        if !n.links.iter().any(|(pp, nn)| *pp == dfid && *nn == name) {
                            moved.push((f, dfid, name.clone()));
                        }
                        f
                    }
                    None => {
                        let f = self.create_entry(w, dfid, &name, &p, Some(m.clone()), false);
                        if m.is_file() {
                            // created while nobody watched: its close was not seen either
                            self.close_write(f, &p);
                        }
                        seen.entry(f).or_default().push((dfid, name.clone()));
                        // create_entry already scanned a new directory's content
                        if m.is_dir() {
                            self.mark_seen_subtree(f, &mut seen);
                            continue;
                        }
                        f
                    }
                };
                if m.is_dir() {
                    if !w.fid_wd.contains_key(&fid) {
                        let _ = w.add(&p, fid);
                    }
                    stack.push((fid, p));
                }
            }
        }
        // Pass 2: links that moved (renames while down) and links that vanished.
        for (fid, np, nn) in moved {
            let old = self.nodes.get(&fid).and_then(|n| {
                n.links
                    .iter()
                    .find(|l| !seen.get(&fid).is_some_and(|s| s.contains(l)))
                    .cloned()
            });
            match old {
                Some((op, on)) => self.rename_entry(w, fid, op, &on, np, &nn),
                None => {
                    self.add_hardlink(fid, np, &nn);
                }
            }
        }
        let mut gone: Vec<(usize, Fid, Vec<u8>)> = Vec::new();
        for (fid, n) in &self.nodes {
            if *fid == ROOT_FID {
                continue;
            }
            for l in &n.links {
                if !seen.get(fid).is_some_and(|s| s.contains(l)) {
                    let depth = self
                        .rel_path(fid)
                        .map(|p| p.iter().filter(|&&c| c == b'/').count())
                        .unwrap_or(0);
                    gone.push((depth, l.0, l.1.clone()));
                }
            }
        }
        gone.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)));
        for (_, p, n) in gone {
            self.unlink_entry(w, p, &n);
        }
        // Pass 3: content / attribute changes.
        let fids: Vec<Fid> = seen.keys().copied().collect();
        for fid in fids {
            let Some(path) = self.abs_path(&fid) else {
                continue;
            };
            let Some(n) = self.nodes.get(&fid) else {
                continue;
            };
            let Ok(m) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let st = Stat::from_meta(&m);
            let content =
                n.kind == Kind::File && (st.size != n.stat.size || st.mtime != n.stat.mtime);
            if content {
                self.close_with(fid, &path, Cause::Rescan);
            } else {
                self.attr_changed(fid, &path, Cause::Rescan);
            }
        }
    }

    fn mark_seen_subtree(&self, fid: Fid, seen: &mut HashMap<Fid, Vec<(Fid, Vec<u8>)>>) {
        let kids: Vec<((Fid, Vec<u8>), Fid)> = self
            .children
            .iter()
            .filter(|((p, _), _)| *p == fid)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (k, c) in kids {
            seen.entry(c).or_default().push(k);
            if self.nodes.get(&c).is_some_and(|n| n.kind == Kind::Dir) {
                self.mark_seen_subtree(c, seen);
            }
        }
    }
}
