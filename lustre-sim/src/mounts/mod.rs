//! Finding a simulated mount, the way liblustreapi finds a Lustre mount in /proc/mounts:
//! from a path (walk up to the directory holding `.lustre/mds.sock`), or from an fsname or
//! an MDT name `<fsname>-MDTxxxx` through the mount table each daemon keeps an entry in
//! (default `/run/lustre-sim/mounts`, `LUSTRE_SIM_MOUNTTAB` overrides). [`table`] holds the
//! file format and the locked rewrite, [`liveness`] the rule for when an entry is stale.

pub mod liveness;
pub mod table;

use crate::proto::sock_path;
use liveness::Owner;
use std::path::{Path, PathBuf};
use table::Entry;

/// Why the mount table could not be updated.
#[derive(Debug, thiserror::Error)]
pub enum MountTabError {
    #[error("mount table {}: {what}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("fsname {fsname} is already in the mount table, served at {}", dir.display())]
    FsnameTaken { fsname: String, dir: PathBuf },
    #[error("{0:?}: a mount table line cannot hold a newline or a tab in the fsname")]
    Unrepresentable(String),
}

impl MountTabError {
    /// The errno closest to the failure.
    pub fn errno(&self) -> i32 {
        match self {
            MountTabError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            MountTabError::FsnameTaken { .. } => libc::EEXIST,
            MountTabError::Unrepresentable(_) => libc::EINVAL,
        }
    }
}

pub const DEFAULT_MOUNTTAB: &str = "/run/lustre-sim/mounts";

/// Mount tables in the order they are tried: `LUSTRE_SIM_MOUNTTAB` alone when set, else
/// `/run/lustre-sim/mounts` and, for daemons that cannot write /run (not root), a per-user
/// file under the temporary directory. Readers read all of them.
pub fn mounttab_paths() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("LUSTRE_SIM_MOUNTTAB") {
        return vec![PathBuf::from(p)];
    }
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    vec![
        PathBuf::from(DEFAULT_MOUNTTAB),
        std::env::temp_dir()
            .join(format!("lustre-sim-{uid}"))
            .join("mounts"),
    ]
}

/// The mount directory holding `path` (which need not exist; its nearest existing ancestor is used).
pub fn mount_of_path(path: &Path) -> Option<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut cur: Option<PathBuf> = None;
    for anc in abs.ancestors() {
        if let Ok(c) = anc.canonicalize() {
            cur = Some(c);
            break;
        }
    }
    let cur = cur?;
    cur.ancestors()
        .find(|d| sock_path(d).exists())
        .map(Path::to_path_buf)
}

/// Splits `<fsname>-MDTxxxx` into (fsname, index); a bare fsname gives index None.
pub fn split_mdt_name(name: &str) -> (String, Option<u32>) {
    if let Some(pos) = name.rfind("-MDT") {
        let idx = &name[pos + 4..];
        if let Ok(i) = u32::from_str_radix(idx, 16) {
            if !idx.is_empty() {
                return (name[..pos].to_string(), Some(i));
            }
        }
    }
    (name.to_string(), None)
}

/// Mounts in the mount tables whose daemon is not provably gone: (fsname, dir). An entry
/// whose daemon is merely busy (full backlog) or starting still resolves; the call made on
/// it then reports the daemon's real state instead of "no such device".
pub fn live_mounts() -> Vec<(String, PathBuf)> {
    live_mounts_in(&mounttab_paths())
}

/// [`live_mounts`] from the given tables.
pub fn live_mounts_in(tables: &[PathBuf]) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for e in tables.iter().flat_map(|p| table::read(p)) {
        if out.iter().any(|(f, d)| *f == e.fsname && *d == e.dir) || e.is_gone() {
            continue;
        }
        out.push((e.fsname, e.dir));
    }
    out
}

/// The mount serving `fsname`, probing only the entries that name it.
pub fn mount_of_fsname(fsname: &str) -> Option<PathBuf> {
    mount_of_fsname_in(&mounttab_paths(), fsname)
}

/// [`mount_of_fsname`] from the given tables.
pub fn mount_of_fsname_in(tables: &[PathBuf], fsname: &str) -> Option<PathBuf> {
    tables
        .iter()
        .flat_map(|p| table::read(p))
        .find(|e| e.fsname == fsname && !e.is_gone())
        .map(|e| e.dir)
}

/// A "device" argument as liblustreapi takes it: a path starting with '/', else an fsname or
/// MDT name. Returns the mount and the MDT index named (if any).
pub fn resolve_device(dev: &str) -> Option<(PathBuf, Option<u32>)> {
    if dev.starts_with('/') {
        return mount_of_path(Path::new(dev)).map(|m| (m, None));
    }
    let (fs, idx) = split_mdt_name(dev);
    mount_of_fsname(&fs).map(|m| (m, idx))
}

/// Adds the calling daemon's entry (with its pid) to the first mount table it can write.
/// Called once its socket listens at `dir`. Entries for the same directory are replaced:
/// the socket there is this daemon's now. Fails with [`MountTabError::FsnameTaken`] when a
/// daemon that is not provably gone serves `fsname` at another directory (decided under the
/// table lock, so two daemons starting with one fsname cannot both get in).
pub fn register(fsname: &str, dir: &Path) -> Result<(), MountTabError> {
    register_in(&mounttab_paths(), fsname, dir)
}

/// [`register`] into the first writable one of `tables`.
pub fn register_in(tables: &[PathBuf], fsname: &str, dir: &Path) -> Result<(), MountTabError> {
    let me = own_entry(fsname, dir)?;
    let mut last = None;
    for p in tables {
        let r = table::update(p, |entries| {
            if let Some(other) = entries
                .iter()
                .find(|e| e.fsname == me.fsname && e.dir != me.dir)
            {
                return Err(MountTabError::FsnameTaken {
                    fsname: me.fsname.clone(),
                    dir: other.dir.clone(),
                });
            }
            entries.retain(|e| e.dir != me.dir);
            entries.push(me.clone());
            Ok(())
        });
        match r {
            Ok(()) => return Ok(()),
            Err(e @ MountTabError::FsnameTaken { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(MountTabError::Io {
        what: "no mount table configured",
        path: PathBuf::new(),
        source: std::io::Error::from_raw_os_error(libc::ENOENT),
    }))
}

/// Whether the calling daemon's own entry is in one of the mount tables.
pub fn is_registered(fsname: &str, dir: &Path) -> bool {
    is_registered_in(&mounttab_paths(), fsname, dir)
}

/// [`is_registered`] in `tables`.
pub fn is_registered_in(tables: &[PathBuf], fsname: &str, dir: &Path) -> bool {
    let Ok(me) = own_entry(fsname, dir) else {
        return false;
    };
    tables.iter().any(|p| table::read(p).contains(&me))
}

/// Removes the calling daemon's own entry (same fsname, directory and pid) on clean exit;
/// entries of other daemons, even for the same fsname, stay.
pub fn unregister(fsname: &str, dir: &Path) -> Result<(), MountTabError> {
    unregister_in(&mounttab_paths(), fsname, dir)
}

/// [`unregister`] from `tables`.
pub fn unregister_in(tables: &[PathBuf], fsname: &str, dir: &Path) -> Result<(), MountTabError> {
    let me = own_entry(fsname, dir)?;
    for p in tables.iter().filter(|p| p.exists()) {
        table::update(p, |entries| {
            entries.retain(|e| *e != me);
            Ok(())
        })?;
    }
    Ok(())
}

fn own_entry(fsname: &str, dir: &Path) -> Result<Entry, MountTabError> {
    let bad = |s: &str| s.is_empty() || s.contains(['\n', '\t']);
    let dir_ok = dir.is_absolute() && dir.to_str().is_some_and(|d| !d.contains('\n'));
    if bad(fsname) || !dir_ok {
        return Err(MountTabError::Unrepresentable(format!(
            "{fsname}\t{}",
            dir.display()
        )));
    }
    Ok(Entry {
        fsname: fsname.to_string(),
        owner: Some(Owner::current()),
        dir: dir.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A directory whose control socket listens (a daemon that answers).
    fn served(tmp: &Path, name: &str) -> (PathBuf, UnixListener) {
        let d = tmp.join(name);
        std::fs::create_dir_all(sock_path(&d).parent().unwrap()).unwrap();
        let l = UnixListener::bind(sock_path(&d)).unwrap();
        (d, l)
    }

    #[test]
    fn register_refuses_a_served_fsname_and_replaces_its_own_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let tabs = [tmp.path().join("mounts")];
        let (a, _la) = served(tmp.path(), "a");
        let (b, _lb) = served(tmp.path(), "b");
        register_in(&tabs, "fs", &a).unwrap();
        assert!(is_registered_in(&tabs, "fs", &a));

        let before = std::fs::read_to_string(&tabs[0]).unwrap();
        let r = register_in(&tabs, "fs", &b);
        assert!(
            matches!(&r, Err(MountTabError::FsnameTaken { dir, .. }) if *dir == a),
            "{r:?}"
        );
        assert_eq!(r.unwrap_err().errno(), libc::EEXIST);
        assert_eq!(std::fs::read_to_string(&tabs[0]).unwrap(), before);

        // Another fsname on a directory already listed: the socket there is the new
        // daemon's, so the old line goes.
        register_in(&tabs, "other", &a).unwrap();
        assert_eq!(
            live_mounts_in(&tabs),
            vec![("other".to_string(), a.clone())]
        );
        assert_eq!(mount_of_fsname_in(&tabs, "fs"), None);
    }

    #[test]
    fn unregister_removes_only_the_callers_own_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let tabs = [tmp.path().join("mounts")];
        let (a, _la) = served(tmp.path(), "a");
        let (b, _lb) = served(tmp.path(), "b");
        register_in(&tabs, "fsb", &b).unwrap();
        // Same fsname and directory as ours, but written by another process: not ours.
        let foreign = Entry {
            fsname: "fsa".into(),
            owner: Some(Owner { pid: 1, start: 0 }),
            dir: a.clone(),
        };
        let text = std::fs::read_to_string(&tabs[0]).unwrap() + &foreign.to_line() + "\n";
        std::fs::write(&tabs[0], text).unwrap();

        unregister_in(&tabs, "fsa", &a).unwrap();
        unregister_in(&tabs, "fsb", &b).unwrap();
        assert_eq!(table::read(&tabs[0]), vec![foreign]);
        assert_eq!(mount_of_fsname_in(&tabs, "fsa"), Some(a));
        assert_eq!(mount_of_fsname_in(&tabs, "fsb"), None);
    }

    #[test]
    fn lines_that_cannot_be_represented_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let tabs = [tmp.path().join("mounts")];
        for (fs, dir) in [
            ("a\tb", "/x"),
            ("a\nb", "/x"),
            ("", "/x"),
            ("fs", "relative"),
            ("fs", "/x\ny"),
        ] {
            let r = register_in(&tabs, fs, Path::new(dir));
            assert!(matches!(r, Err(MountTabError::Unrepresentable(_))), "{r:?}");
        }
        assert!(!tabs[0].exists());
    }
}
