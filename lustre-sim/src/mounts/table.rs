//! The mount table file, kept the way /etc/mtab-like files are kept safe.
//!
//! * One line per running daemon: `fsname<TAB>pid<TAB>starttime<TAB>dir` (the directory last,
//!   so it may hold tabs). Lines of older simulators, `fsname<TAB>dir`, are read as entries
//!   without an owner.
//! * Writers serialise on an flock of `<table>.lock`, a file that is never renamed or
//!   removed (locking the table itself would let two writers lock two generations of it,
//!   since every update replaces its inode), and read-modify-write under that lock.
//! * The new table goes to `<table>.tmp`, is fsync'ed and renamed over the table (and the
//!   directory fsync'ed), so readers, who take no lock, always see one whole generation.
//! * While rewriting, entries whose daemon is provably gone ([`super::liveness`]) are dropped;
//!   no other entry is ever dropped except by the caller's edit.

use super::liveness::{entry_is_gone, probe_socket, Owner};
use super::MountTabError;
use crate::proto::sock_path;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// One mount-table line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub fsname: String,
    /// The daemon that wrote the line (None for lines of older simulators).
    pub owner: Option<Owner>,
    pub dir: PathBuf,
}

impl Entry {
    pub fn parse(line: &str) -> Option<Entry> {
        let parts: Vec<&str> = line.splitn(4, '\t').collect();
        let (fsname, owner, dir) = match parts.as_slice() {
            [fs, pid, start, dir] => {
                let owner = Owner {
                    pid: pid.parse().ok()?,
                    start: start.parse().ok()?,
                };
                (*fs, Some(owner), *dir)
            }
            [fs, dir] => (*fs, None, *dir),
            _ => return None,
        };
        if fsname.is_empty() || !dir.starts_with('/') {
            return None;
        }
        Some(Entry {
            fsname: fsname.to_string(),
            owner,
            dir: PathBuf::from(dir),
        })
    }

    pub fn to_line(&self) -> String {
        match self.owner {
            Some(o) => format!(
                "{}\t{}\t{}\t{}",
                self.fsname,
                o.pid,
                o.start,
                self.dir.display()
            ),
            None => format!("{}\t{}", self.fsname, self.dir.display()),
        }
    }

    /// Whether the daemon behind this entry is provably gone (one probe of its socket, plus
    /// the owner check when the socket refuses).
    pub fn is_gone(&self) -> bool {
        entry_is_gone(probe_socket(&sock_path(&self.dir)), || {
            self.owner.map(|o| o.is_alive())
        })
    }
}

/// The entries of the table at `path` (none when it does not exist or cannot be read).
/// Takes no lock: writers replace the file by rename, so this sees one whole generation.
pub fn read(path: &Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .map(|t| parse_all(&t))
        .unwrap_or_default()
}

fn parse_all(text: &str) -> Vec<Entry> {
    text.lines().filter_map(Entry::parse).collect()
}

/// `<table><suffix>` next to the table.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// The lock file serialising writers of the table at `path`.
pub fn lock_path(path: &Path) -> PathBuf {
    sibling(path, ".lock")
}

/// Read-modify-write of the table at `path` under its lock: loads the entries, drops the
/// provably gone ones, lets `edit` change the rest, and installs the result atomically.
/// When `edit` fails nothing is written. A table that exists but cannot be read is an
/// error, never treated as empty (that would wipe every other daemon's entry).
pub fn update<T>(
    path: &Path,
    edit: impl FnOnce(&mut Vec<Entry>) -> Result<T, MountTabError>,
) -> Result<T, MountTabError> {
    let io = |what: &'static str| {
        let path = path.to_path_buf();
        move |source| MountTabError::Io { what, path, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
    }
    let _lock = lock(&lock_path(path)).map_err(io("locking"))?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io("reading")(e)),
    };
    let mut entries = parse_all(&text);
    entries.retain(|e| !e.is_gone());
    let out = edit(&mut entries)?;
    let mut body = String::new();
    for e in &entries {
        body.push_str(&e.to_line());
        body.push('\n');
    }
    install(path, body.as_bytes()).map_err(io("writing"))?;
    Ok(out)
}

/// Opens `path` (creating it) and takes an exclusive flock, held until the file is dropped.
fn lock(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)?;
    loop {
        // SAFETY: flock on a descriptor owned by `f`; the lock goes away when `f` is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(f);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes `body` to `<path>.tmp`, fsyncs it, renames it over `path` and fsyncs the directory.
/// Only lock holders call this, so one temporary name suffices.
fn install(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = sibling(path, ".tmp");
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn owner_of_exited_process() -> Owner {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        Owner { pid, start: 0 }
    }

    #[test]
    fn lines_round_trip_and_old_lines_parse_without_owner() {
        let e = Entry {
            fsname: "fs1".into(),
            owner: Some(Owner {
                pid: 42,
                start: 4242,
            }),
            dir: PathBuf::from("/mnt/with\ttab"),
        };
        assert_eq!(e.to_line(), "fs1\t42\t4242\t/mnt/with\ttab");
        assert_eq!(Entry::parse(&e.to_line()), Some(e));
        assert_eq!(
            Entry::parse("old\t/mnt/old"),
            Some(Entry {
                fsname: "old".into(),
                owner: None,
                dir: PathBuf::from("/mnt/old"),
            })
        );
        assert_eq!(Entry::parse(""), None);
        assert_eq!(Entry::parse("fs\tx\ty\t/d"), None);
        assert_eq!(Entry::parse("fs\trelative"), None);
    }

    /// The stale-entry rule as a rewrite applies it: only the entry whose socket is missing
    /// and the one whose socket refuses while its recorded process is dead go; a refusing
    /// socket whose owner lives, and an answering one, stay.
    #[test]
    fn a_rewrite_drops_only_entries_whose_daemon_is_provably_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let mk = |name: &str| {
            let d = tmp.path().join(name);
            std::fs::create_dir_all(sock_path(&d).parent().unwrap()).unwrap();
            d
        };
        let (live, refusing_alive, refusing_dead, refusing_old, absent) =
            (mk("live"), mk("ra"), mk("rd"), mk("ro"), mk("absent"));
        let _l = UnixListener::bind(sock_path(&live)).unwrap();
        for d in [&refusing_alive, &refusing_dead, &refusing_old] {
            drop(UnixListener::bind(sock_path(d)).unwrap());
        }
        let dead = owner_of_exited_process();
        let entry = |fs: &str, owner: Option<Owner>, dir: &Path| Entry {
            fsname: fs.into(),
            owner,
            dir: dir.to_path_buf(),
        };
        let all = [
            entry("live", Some(dead), &live),
            entry("ra", Some(Owner::current()), &refusing_alive),
            entry("rd", Some(dead), &refusing_dead),
            entry("ro", None, &refusing_old),
            entry("absent", Some(Owner::current()), &absent),
        ];
        let tab = tmp.path().join("mounts");
        let text: String = all.iter().map(|e| e.to_line() + "\n").collect();
        std::fs::write(&tab, text).unwrap();

        update(&tab, |_| Ok(())).unwrap();
        let kept: Vec<String> = read(&tab).into_iter().map(|e| e.fsname).collect();
        assert_eq!(kept, ["live", "ra"]);
        assert!(lock_path(&tab).exists());
        assert!(!sibling(&tab, ".tmp").exists());
    }

    /// Writers in parallel (threads here; each opens the lock file itself, so each holds
    /// its own flock) never lose each other's additions, and the lock file keeps its inode.
    #[test]
    fn parallel_updates_keep_every_addition() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let tab = tmp.path().join("mounts");
        let dirs: Vec<PathBuf> = (0..16).map(|i| tmp.path().join(format!("m{i}"))).collect();
        let _listeners: Vec<UnixListener> = dirs
            .iter()
            .map(|d| {
                std::fs::create_dir_all(sock_path(d).parent().unwrap()).unwrap();
                UnixListener::bind(sock_path(d)).unwrap()
            })
            .collect();
        update(&tab, |_| Ok(())).unwrap();
        let lock_ino = std::fs::metadata(lock_path(&tab)).unwrap().ino();
        std::thread::scope(|sc| {
            for (i, d) in dirs.iter().enumerate() {
                let tab = &tab;
                sc.spawn(move || {
                    update(tab, |es| {
                        es.push(Entry {
                            fsname: format!("fs{i}"),
                            owner: Some(Owner::current()),
                            dir: d.clone(),
                        });
                        Ok(())
                    })
                    .unwrap()
                });
            }
        });
        let mut names: Vec<String> = read(&tab).into_iter().map(|e| e.fsname).collect();
        names.sort();
        let mut want: Vec<String> = (0..16).map(|i| format!("fs{i}")).collect();
        want.sort();
        assert_eq!(names, want);
        assert_eq!(std::fs::metadata(lock_path(&tab)).unwrap().ino(), lock_ino);
    }

    #[test]
    fn a_failed_edit_or_an_unreadable_table_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let tab = tmp.path().join("mounts");
        std::fs::write(&tab, "fs\t1\t0\t/nonexistent/dir\n").unwrap();
        let r: Result<(), _> = update(&tab, |_| {
            Err(MountTabError::FsnameTaken {
                fsname: "x".into(),
                dir: PathBuf::from("/y"),
            })
        });
        assert!(matches!(r, Err(MountTabError::FsnameTaken { .. })));
        assert_eq!(
            std::fs::read_to_string(&tab).unwrap(),
            "fs\t1\t0\t/nonexistent/dir\n"
        );

        // A directory where the table should be: reading fails, and the update with it.
        let bad = tmp.path().join("dir-table");
        std::fs::create_dir(&bad).unwrap();
        let r = update(&bad, |_| Ok(()));
        assert!(matches!(r, Err(MountTabError::Io { .. })), "{r:?}");
        assert!(bad.is_dir());
    }
}
