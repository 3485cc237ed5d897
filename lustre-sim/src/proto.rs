//! The control protocol between liblustreapi_sim.so / the CLI and the `lustre-sim mds` daemon:
//! length-prefixed JSON messages on the Unix socket `<mount>/.lustre/mds.sock`, plus one file
//! descriptor passed with SCM_RIGHTS for copytool registration (the pipe's write end).

use crate::fid::Fid;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Largest control message accepted (requests carry at most a hur's worth of data).
pub const MAX_MSG: usize = 16 << 20;

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(tag = "op")]
pub enum Request {
    Info,
    Path2Fid {
        path: String,
    },
    Fid2Path {
        fid: Fid,
        linkno: u32,
    },
    HsmStateGet {
        fid: Fid,
    },
    HsmStateSet {
        fid: Fid,
        set: u64,
        clear: u64,
        archive_id: u32,
    },
    CurrentAction {
        fid: Fid,
    },
    HsmRequest {
        action: u32,
        archive_id: u32,
        flags: u64,
        items: Vec<(Fid, u64, u64)>,
        data: Vec<u8>,
    },
    Import {
        path: String,
        archive_id: u32,
        size: u64,
        mode: u32,
        uid: u32,
        gid: u32,
        atime: (i64, u32),
        mtime: (i64, u32),
        /// `llapi_hsm_import`'s striping (0 = default); see mds/layout.rs.
        #[serde(default)]
        stripe_count: i32,
        #[serde(default)]
        stripe_size: u64,
        #[serde(default)]
        pool: String,
    },
    DataVersion {
        fid: Fid,
    },
    ChangelogStart {
        mdt: u32,
        start: u64,
        follow: bool,
    },
    ChangelogClear {
        mdt: u32,
        user: String,
        endrec: u64,
    },
    ChangelogRegister {
        mdt: u32,
        name: Option<String>,
    },
    ChangelogDeregister {
        mdt: u32,
        user: String,
    },
    CtRegister {
        archives: Vec<u32>,
        pid: u32,
    },
    CtUnregister {
        agent: u64,
    },
    ActionBegin {
        cookie: u64,
        fid: Fid,
        is_error: bool,
        /// `restore_mdt_index` of `llapi_hsm_action_begin` (-1: let the name decide).
        #[serde(default = "no_mdt_index")]
        mdt_index: i32,
        /// `restore_open_flags`: with O_LOV_DELAY_CREATE the volatile file has no layout yet.
        #[serde(default)]
        open_flags: i32,
    },
    ActionProgress {
        cookie: u64,
        /// The FID liblustreapi sends (`hpk_fid`: the data FID for ARCHIVE and RESTORE).
        #[serde(default)]
        fid: Option<Fid>,
        offset: u64,
        length: u64,
        flags: i32,
    },
    ActionEnd {
        cookie: u64,
        /// As in `ActionProgress`.
        #[serde(default)]
        fid: Option<Fid>,
        offset: u64,
        length: u64,
        flags: i32,
        errval: i32,
    },
    GetParam {
        pattern: String,
    },
    /// The layout of a file or of a RESTORE's volatile file (mds/layout.rs).
    LayoutGet {
        fid: Fid,
    },
    LayoutSet {
        fid: Fid,
        layout: crate::mds::layout::LayoutAttrs,
        /// The caller has just created the file (the layout goes with the create).
        created: bool,
    },
    SetParam {
        name: String,
        value: String,
    },
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct MountInfo {
    pub fsname: String,
    pub mdts: u32,
    pub root: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct HsmState {
    pub states: u32,
    pub archive_id: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct CurrentAction {
    pub state: u32,
    pub action: u32,
    pub offset: u64,
    pub length: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct BeginReply {
    /// Absolute path the library opens (the file for ARCHIVE, the volatile file for RESTORE).
    pub path: Option<String>,
    pub dfid: Fid,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Fid2PathReply {
    pub path: String,
    pub linkno: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub enum Reply {
    Ok(serde_json::Value),
    Err(i32),
}

pub fn write_msg(s: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    let mut b = Vec::with_capacity(4 + body.len());
    b.extend_from_slice(&(body.len() as u32).to_le_bytes());
    b.extend_from_slice(body);
    s.write_all(&b)
}

pub fn read_msg(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut l = [0u8; 4];
    s.read_exact(&mut l)?;
    let n = u32::from_le_bytes(l) as usize;
    if n > MAX_MSG {
        return Err(std::io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    let mut b = vec![0u8; n];
    s.read_exact(&mut b)?;
    Ok(b)
}

pub fn send_json<T: Serialize>(s: &mut impl Write, v: &T) -> std::io::Result<()> {
    let b = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    write_msg(s, &b)
}

pub fn recv_json<T: for<'de> Deserialize<'de>>(s: &mut impl Read) -> std::io::Result<T> {
    let b = read_msg(s)?;
    serde_json::from_slice(&b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

pub fn sock_path(mount: &Path) -> PathBuf {
    mount.join(".lustre").join("mds.sock")
}

/// Errors of a call: a negative-errno style code the library returns as-is.
fn io_errno(e: &std::io::Error) -> i32 {
    match e.raw_os_error() {
        Some(libc::ENOENT)
        | Some(libc::ECONNREFUSED)
        | Some(libc::ECONNRESET)
        | Some(libc::EPIPE) => libc::ESHUTDOWN,
        Some(x) => x,
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => libc::ESHUTDOWN,
        None => libc::EPROTO,
    }
}

pub fn connect(mount: &Path) -> Result<UnixStream, i32> {
    UnixStream::connect(sock_path(mount)).map_err(|e| io_errno(&e))
}

/// One request/response exchange. Err is a positive errno.
///
/// Connections are reused (see [`pool`]): a copytool makes about five calls per file, and a
/// connect + accept + server thread for each one cost the daemon more than the calls themselves.
fn no_mdt_index() -> i32 {
    -1
}

pub fn call(mount: &Path, req: &Request) -> Result<serde_json::Value, i32> {
    let body = serde_json::to_vec(req).map_err(|_| libc::EINVAL)?;
    let mut msg = Vec::with_capacity(4 + body.len());
    msg.extend_from_slice(&(body.len() as u32).to_le_bytes());
    msg.extend_from_slice(&body);
    // A pooled connection whose daemon went away (restart) refuses the write with EPIPE before
    // anything was delivered: only then is the request sent again, on a fresh connection.
    let mut s = loop {
        match pool::take(mount) {
            Some(s) => {
                if pool::send_all(&s, &msg).is_ok() {
                    break s;
                }
            }
            None => {
                let s = connect(mount)?;
                pool::send_all(&s, &msg).map_err(|e| io_errno(&e))?;
                break s;
            }
        }
    };
    let reply = recv_json::<Reply>(&mut s).map_err(|e| io_errno(&e))?;
    pool::give_back(mount, s);
    match reply {
        Reply::Ok(v) => Ok(v),
        Reply::Err(e) => Err(e),
    }
}

/// Idle control connections of this process, per mount, for [`call`].
pub mod pool {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    /// Idle connections kept; more concurrent callers open (and then close) their own.
    const KEEP: usize = 16;

    struct Idle {
        pid: u32,
        mount: PathBuf,
        sock: UnixStream,
    }

    static IDLE: Mutex<Vec<Idle>> = Mutex::new(Vec::new());

    /// An idle connection to `mount` opened by this process (a forked child never shares its
    /// parent's: the two would read each other's replies).
    pub fn take(mount: &Path) -> Option<UnixStream> {
        let pid = std::process::id();
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|c| c.pid == pid);
        let i = idle.iter().rposition(|c| c.mount == mount)?;
        Some(idle.swap_remove(i).sock)
    }

    pub fn give_back(mount: &Path, sock: UnixStream) {
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEEP {
            idle.push(Idle {
                pid: std::process::id(),
                mount: mount.to_path_buf(),
                sock,
            });
        }
    }

    /// Writes all of `b` without raising SIGPIPE (the library lives in other people's
    /// processes, which may not ignore it).
    pub fn send_all(s: &UnixStream, mut b: &[u8]) -> std::io::Result<()> {
        while !b.is_empty() {
            // SAFETY: send() reads at most b.len() bytes from a live slice on our own socket.
            let n = unsafe {
                libc::send(
                    s.as_raw_fd(),
                    b.as_ptr() as *const libc::c_void,
                    b.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            b = &b[n as usize..];
        }
        Ok(())
    }
}

pub fn call_on(s: &mut UnixStream, req: &Request) -> Result<serde_json::Value, i32> {
    send_json(s, req).map_err(|e| io_errno(&e))?;
    match recv_json::<Reply>(s).map_err(|e| io_errno(&e))? {
        Reply::Ok(v) => Ok(v),
        Reply::Err(e) => Err(e),
    }
}

pub fn call_as<T: for<'de> Deserialize<'de>>(mount: &Path, req: &Request) -> Result<T, i32> {
    let v = call(mount, req)?;
    serde_json::from_value(v).map_err(|_| libc::EPROTO)
}

/// Sends one request together with a file descriptor (SCM_RIGHTS), then reads the reply.
pub fn call_with_fd(mount: &Path, req: &Request, fd: RawFd) -> Result<serde_json::Value, i32> {
    let s = connect(mount)?;
    let body = serde_json::to_vec(req).map_err(|_| libc::EINVAL)?;
    let mut msg = Vec::with_capacity(4 + body.len());
    msg.extend_from_slice(&(body.len() as u32).to_le_bytes());
    msg.extend_from_slice(&body);
    send_fd(s.as_raw_fd(), &msg, fd).map_err(|e| io_errno(&e))?;
    let mut s = s;
    match recv_json::<Reply>(&mut s).map_err(|e| io_errno(&e))? {
        Reply::Ok(v) => Ok(v),
        Reply::Err(e) => Err(e),
    }
}

/// sendmsg() of `data` with one fd attached.
pub fn send_fd(sock: RawFd, data: &[u8], fd: RawFd) -> std::io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at a buffer of CMSG_SPACE(sizeof fd) bytes, so the first
    // header and its data fit; the pointers come from the CMSG macros on that same msghdr.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut RawFd, fd);
    }
    let mut sent = 0usize;
    // The fd rides with the first byte; the rest (if the kernel sends short) follows plainly.
    // SAFETY: msg is fully initialised and its buffers outlive the call.
    let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    sent += n as usize;
    while sent < data.len() {
        // SAFETY: plain send of the remaining bytes of a live slice.
        let n = unsafe {
            libc::send(
                sock,
                data[sent..].as_ptr() as *const libc::c_void,
                data.len() - sent,
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        sent += n as usize;
    }
    Ok(())
}

/// Reads one length-prefixed message that may carry one fd (SCM_RIGHTS).
pub fn recv_msg_with_fd(sock: &mut UnixStream) -> std::io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut head = [0u8; 4];
    let mut got_fd: Option<OwnedFd> = None;
    let mut filled = 0usize;
    while filled < 4 {
        let mut iov = libc::iovec {
            iov_base: head[filled..].as_mut_ptr() as *mut libc::c_void,
            iov_len: 4 - filled,
        };
        // SAFETY: size computation only.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8)];
        // SAFETY: zeroed msghdr is valid; fields set below point into live buffers.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        // SAFETY: recvmsg writes at most iov_len bytes and msg_controllen control bytes.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        // SAFETY: the CMSG macros walk the control buffer recvmsg just filled.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd);
                    got_fd = Some(OwnedFd::from_raw_fd(fd));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        filled += n as usize;
    }
    let n = u32::from_le_bytes(head) as usize;
    if n > MAX_MSG {
        return Err(std::io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    let mut b = vec![0u8; n];
    sock.read_exact(&mut b)?;
    Ok((b, got_fd))
}
