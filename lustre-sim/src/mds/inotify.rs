//! The inotify side: one watch per directory, each mapped to the directory's FID (so renames
//! of directories need no watch bookkeeping), and the raw event reader.

use crate::fid::Fid;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const WATCH_MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_CLOSE_WRITE
    | libc::IN_MODIFY
    | libc::IN_ATTRIB
    // for open(O_TRUNC): its truncation's IN_MODIFY comes right before the IN_OPEN (`opens`)
    | libc::IN_OPEN
    | libc::IN_DONT_FOLLOW
    | libc::IN_ONLYDIR;

pub struct Watcher {
    pub fd: OwnedFd,
    pub wd_fid: HashMap<i32, Fid>,
    pub fid_wd: HashMap<Fid, i32>,
}

impl Watcher {
    pub fn new() -> std::io::Result<Watcher> {
        // SAFETY: plain syscall; the returned fd is owned below.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Watcher {
            // SAFETY: fd is a fresh descriptor we own.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            wd_fid: HashMap::new(),
            fid_wd: HashMap::new(),
        })
    }

    pub fn add(&mut self, path: &Path, fid: Fid) -> std::io::Result<()> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: c is a valid NUL-terminated path; the fd is our inotify instance.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), WATCH_MASK) };
        if wd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.wd_fid.insert(wd, fid);
        self.fid_wd.insert(fid, wd);
        Ok(())
    }

    pub fn remove(&mut self, fid: &Fid) {
        if let Some(wd) = self.fid_wd.remove(fid) {
            self.wd_fid.remove(&wd);
            // SAFETY: removing a watch descriptor from our own inotify instance.
            unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
        }
    }
}

pub struct Event {
    pub wd: i32,
    pub mask: u32,
    pub cookie: u32,
    pub name: Vec<u8>,
}

/// Like [`read_events`], but when nothing is queued waits up to `wait` for an event first.
pub fn read_events_wait(fd: &OwnedFd, wait: Option<std::time::Duration>) -> Vec<Event> {
    if let Some(d) = wait {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = d.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one pollfd we own, count 1.
        unsafe { libc::poll(&mut p, 1, ms) };
    }
    read_events(fd)
}

/// Reads every queued event (non-blocking fd); empty when nothing is queued.
pub fn read_events(fd: &OwnedFd) -> Vec<Event> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: reading into a buffer we own, bounded by its length.
        let n = unsafe {
            libc::read(
                fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if n <= 0 {
            break;
        }
        let n = n as usize;
        let mut o = 0;
        while o + 16 <= n {
            let wd = i32::from_le_bytes(buf[o..o + 4].try_into().unwrap_or([0; 4]));
            let mask = u32::from_le_bytes(buf[o + 4..o + 8].try_into().unwrap_or([0; 4]));
            let cookie = u32::from_le_bytes(buf[o + 8..o + 12].try_into().unwrap_or([0; 4]));
            let len = u32::from_le_bytes(buf[o + 12..o + 16].try_into().unwrap_or([0; 4])) as usize;
            let raw = &buf[o + 16..(o + 16 + len).min(n)];
            let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
            out.push(Event {
                wd,
                mask,
                cookie,
                name: raw[..end].to_vec(),
            });
            o += 16 + len;
        }
    }
    out
}
