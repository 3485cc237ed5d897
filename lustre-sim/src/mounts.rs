//! Finding a simulated mount, the way liblustreapi finds a Lustre mount in /proc/mounts:
//! from a path (walk up to the directory holding `.lustre/mds.sock`), or from an fsname or
//! an MDT name `<fsname>-MDTxxxx` through the mount table each daemon keeps an entry in
//! (default `/run/lustre-sim/mounts`, `LUSTRE_SIM_MOUNTTAB` overrides; one `fsname<TAB>dir`
//! line per running daemon; lines whose socket is dead are ignored).

use crate::proto::sock_path;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

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

/// Splits "<fsname>-MDTxxxx" into (fsname, index); a bare fsname gives index None.
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

/// Live mounts from the mount tables: (fsname, dir).
pub fn live_mounts() -> Vec<(String, PathBuf)> {
    let text = mounttab_paths()
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect::<Vec<_>>()
        .join("\n");
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(2, '\t');
        let (Some(fs), Some(dir)) = (it.next(), it.next()) else {
            continue;
        };
        let dir = PathBuf::from(dir);
        if out.iter().any(|(f, d)| f == fs && d == &dir) {
            continue;
        }
        if UnixStream::connect(sock_path(&dir)).is_ok() {
            out.push((fs.to_string(), dir));
        }
    }
    out
}

pub fn mount_of_fsname(fsname: &str) -> Option<PathBuf> {
    live_mounts()
        .into_iter()
        .find(|(f, _)| f == fsname)
        .map(|(_, d)| d)
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

/// Adds this daemon's line to the first mount table it can write; stale lines (dead
/// sockets) are dropped while rewriting.
pub fn register(fsname: &str, dir: &Path) -> std::io::Result<()> {
    let line = format!("{}\t{}", fsname, dir.display());
    let mut last = std::io::Error::from_raw_os_error(libc::ENOENT);
    for p in mounttab_paths() {
        match rewrite(&p, |lines| lines.push(line.clone())) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

pub fn unregister(fsname: &str, dir: &Path) -> std::io::Result<()> {
    let me = format!("{}\t{}", fsname, dir.display());
    for p in mounttab_paths().iter().filter(|p| p.exists()) {
        rewrite(p, |lines| lines.retain(|l| *l != me))?;
    }
    Ok(())
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<String>)) -> std::io::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: flock on a descriptor we own; released when `file` closes.
    if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| {
            l.split_once('\t')
                .is_some_and(|(_, d)| UnixStream::connect(sock_path(Path::new(d))).is_ok())
        })
        .map(str::to_string)
        .collect();
    f(&mut lines);
    let mut out = String::new();
    for l in &lines {
        out.push_str(l);
        out.push('\n');
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut t = std::fs::File::create(&tmp)?;
    t.write_all(out.as_bytes())?;
    t.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
