//! Whether the daemon behind a mount-table entry is provably gone.
//!
//! A failed `connect` alone proves nothing: a daemon whose listen backlog is full answers
//! EAGAIN, one that is still starting (or briefly stopped) may refuse. An entry is dropped
//! only when its socket file does not exist, or when nobody listens on it (ECONNREFUSED) and
//! the process recorded in the entry no longer exists. Every other outcome keeps it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What one non-blocking connection attempt on a control socket found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockProbe {
    /// A listener accepted or queued the connection.
    Answers,
    /// No socket file at the path (ENOENT / ENOTDIR).
    Absent,
    /// The file exists but nothing listens on it (ECONNREFUSED).
    Refused,
    /// Anything else (EAGAIN from a full backlog, EACCES, ENAMETOOLONG, ...): says nothing
    /// about whether the daemon lives. Holds the errno.
    Inconclusive(i32),
}

/// Connects to the Unix socket at `path` without blocking: a full listen backlog gives
/// [`SockProbe::Inconclusive`]`(EAGAIN)` instead of waiting, so a daemon that is busy or
/// stopped never stalls a mount-table writer holding the lock.
pub fn probe_socket(path: &Path) -> SockProbe {
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid (empty) value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return SockProbe::Inconclusive(libc::ENAMETOOLONG);
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return SockProbe::Inconclusive(errno());
    }
    // SAFETY: `raw` is a descriptor socket(2) just returned and nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: `addr` is a valid sockaddr_un whose first `len` bytes hold the family and the
    // NUL-terminated path; `fd` is an open socket.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_un as *const libc::sockaddr,
            len as libc::socklen_t,
        )
    };
    if rc == 0 {
        return SockProbe::Answers;
    }
    match errno() {
        libc::ENOENT | libc::ENOTDIR => SockProbe::Absent,
        libc::ECONNREFUSED => SockProbe::Refused,
        e => SockProbe::Inconclusive(e),
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A process as a mount-table entry records it: the pid plus its start time (clock ticks
/// after boot, field 22 of `/proc/PID/stat`; 0 = unknown), which tells the original process
/// from a later one that reused the pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub start: u64,
}

impl Owner {
    /// The calling process.
    pub fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: proc_stat(pid).map(|(_, start)| start).unwrap_or(0),
        }
    }

    /// Whether the recorded process still exists (and is not a zombie). Errs towards
    /// "alive": only a pid nobody holds, or one now held by a process started at another
    /// time, or a zombie, counts as dead.
    pub fn is_alive(&self) -> bool {
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: signal 0 only checks that the pid exists and may be signalled.
        let rc = unsafe { libc::kill(pid, 0) };
        if rc != 0 && errno() != libc::EPERM {
            return false;
        }
        match proc_stat(self.pid) {
            Some((state, _)) if state == 'Z' || state == 'X' => false,
            Some((_, start)) if self.start != 0 && start != self.start => false,
            _ => true,
        }
    }
}

/// State letter and start time of `pid` from `/proc/PID/stat`, when readable.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so fields are
    // counted after the last ')'. STATE is field 3, STARTTIME field 22.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(22 - 3)?.parse().ok()?;
    Some((state, start))
}

/// The stale-entry rule. `owner_alive` is asked only when the socket refuses, and gives
/// `None` when the entry records no owner (lines written by older simulators).
pub fn entry_is_gone(probe: SockProbe, owner_alive: impl FnOnce() -> Option<bool>) -> bool {
    match probe {
        SockProbe::Answers | SockProbe::Inconclusive(_) => false,
        SockProbe::Absent => true,
        SockProbe::Refused => owner_alive() != Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn the_stale_entry_rule_drops_only_provably_gone_daemons() {
        let never = || -> Option<bool> { panic!("owner checked although the probe decides") };
        assert!(!entry_is_gone(SockProbe::Answers, never));
        assert!(!entry_is_gone(SockProbe::Inconclusive(libc::EAGAIN), never));
        assert!(!entry_is_gone(SockProbe::Inconclusive(libc::EACCES), never));
        assert!(entry_is_gone(SockProbe::Absent, never));
        assert!(!entry_is_gone(SockProbe::Refused, || Some(true)));
        assert!(entry_is_gone(SockProbe::Refused, || Some(false)));
        assert!(entry_is_gone(SockProbe::Refused, || None));
    }

    #[test]
    fn probe_tells_listening_refusing_and_absent_sockets_apart() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.sock");
        let _l = UnixListener::bind(&live).unwrap();
        assert_eq!(probe_socket(&live), SockProbe::Answers);

        let dead = dir.path().join("dead.sock");
        drop(UnixListener::bind(&dead).unwrap()); // the file stays, nobody listens
        assert_eq!(probe_socket(&dead), SockProbe::Refused);

        assert_eq!(
            probe_socket(&dir.path().join("none.sock")),
            SockProbe::Absent
        );
        assert_eq!(
            probe_socket(&dir.path().join("f").join("x.sock")),
            SockProbe::Absent
        );
    }

    /// A listener with backlog 0 that never accepts: its queue fills after one or two
    /// connections, and then the probe must report EAGAIN (inconclusive), not a dead daemon.
    #[test]
    fn a_full_listen_backlog_is_inconclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.sock");
        let l = UnixListener::bind(&path).unwrap();
        // SAFETY: re-listening on our own bound socket with a smaller backlog.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
        // Each answered probe leaves its connection queued (nobody accepts).
        let mut last = SockProbe::Answers;
        for _ in 0..64 {
            last = probe_socket(&path);
            if last != SockProbe::Answers {
                break;
            }
        }
        assert_eq!(last, SockProbe::Inconclusive(libc::EAGAIN));
        assert!(!entry_is_gone(last, || Some(false)));
    }

    #[test]
    fn owner_liveness_follows_the_process_and_its_start_time() {
        let me = Owner::current();
        assert_eq!(me.pid, std::process::id());
        assert!(me.start > 0, "start time read from /proc/self/stat");
        assert!(me.is_alive());
        // Same pid, other start time: a process that reused the pid.
        assert!(!Owner {
            start: me.start + 1,
            ..me
        }
        .is_alive());
        // Start time unknown: the pid alone decides.
        assert!(Owner { start: 0, ..me }.is_alive());

        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = proc_stat(pid).map(|(_, s)| s).unwrap_or(0);
        // Exited but not yet reaped: a zombie counts as dead.
        while proc_stat(pid).is_some_and(|(st, _)| st != 'Z') {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!Owner { pid, start }.is_alive());
        child.wait().unwrap();
        assert!(!Owner { pid, start }.is_alive());
        assert!(!Owner { pid: 0, start: 0 }.is_alive());
    }
}
