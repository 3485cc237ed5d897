//! The copytool API (lustre-abi.md §3.1, §4, §6.1): registration passes a pipe's write end to
//! the daemon (SCM_RIGHTS); the daemon writes KUC-framed action lists into it.

use super::{arg_path, from_lu, to_lu};
use crate::consts::*;
use crate::fid::Fid;
use crate::hal::{HAL_HDR, KUC_HDR};
use crate::proto::{self, BeginReply, Request};
use lustre_sys::{
    hsm_action_item, hsm_action_list, hsm_copyaction_private, hsm_copytool_private, hsm_extent,
    lu_fid, HAL_MAXSIZE,
};
use std::ffi::{c_char, c_int, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use std::path::PathBuf;

const CT_MAGIC: u32 = 0xC0BB_C7A1;
const CA_MAGIC: u32 = 0xC0BB_CAA2;

struct Copytool {
    magic: u32,
    mount: PathBuf,
    agent: u64,
    rfd: OwnedFd,
    archives: Vec<u32>,
    /// 8 + HAL_MAXSIZE bytes, 8-aligned; the hal handed out starts at byte 8. Only
    /// `llapi_hsm_copytool_recv` touches it (one receiving thread, as the C API requires),
    /// while other threads share the handle for begin/progress/end.
    buf: std::cell::UnsafeCell<Vec<u64>>,
}

struct CopyAction {
    magic: u32,
    mount: PathBuf,
    action: u32,
    cookie: u64,
    fid: Fid,
    dfid: Fid,
    fd: Option<OwnedFd>,
}

impl CopyAction {
    /// The FID `llapi_hsm_action_progress`/`_end` put in `hpk_fid`: the data FID for ARCHIVE and
    /// RESTORE (the volatile file's after a RESTORE begin), the request's FID otherwise.
    fn progress_fid(&self) -> Option<Fid> {
        Some(
            if self.action == HSMA_ARCHIVE || self.action == HSMA_RESTORE {
                self.dfid
            } else {
                self.fid
            },
        )
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// # Safety
/// `p` is NULL or a handle from llapi_hsm_copytool_register.
unsafe fn ct<'a>(p: *const hsm_copytool_private) -> Option<&'a Copytool> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL handles come from Box::into_raw of a Copytool; shared access only.
    let c = unsafe { &*(p as *const Copytool) };
    (c.magic == CT_MAGIC).then_some(c)
}

/// # Safety
/// `p` is NULL or a handle from llapi_hsm_action_begin.
unsafe fn ca<'a>(p: *const hsm_copyaction_private) -> Option<&'a mut CopyAction> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL handles come from Box::into_raw of a CopyAction.
    let c = unsafe { &mut *(p as *mut CopyAction) };
    (c.magic == CA_MAGIC).then_some(c)
}

/// # Safety
/// C contract of `llapi_hsm_copytool_register`. Several registrations per mount are allowed
/// (each is its own agent), unlike real Lustre's one per client mount.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_copytool_register(
    priv_: *mut *mut hsm_copytool_private,
    mnt: *const c_char,
    archive_count: c_int,
    archives: *mut c_int,
    rfd_flags: c_int,
) -> c_int {
    // SAFETY: string per the contract.
    let Some(m) = (unsafe { arg_path(mnt) }) else {
        return -libc::EINVAL;
    };
    if priv_.is_null() || archive_count < 0 {
        return -libc::EINVAL;
    }
    if archive_count > 0 && archives.is_null() {
        super::log::llapi_error(super::log::MSG_ERROR | 0x10, 0, "NULL archive numbers");
        return -libc::EINVAL;
    }
    let mut ids = Vec::new();
    for i in 0..archive_count as usize {
        // SAFETY: archives holds archive_count ints per the contract.
        let v = unsafe { *archives.add(i) };
        if v < 0 {
            return -libc::EINVAL;
        }
        ids.push(v as u32);
    }
    if ids.contains(&0) {
        ids.clear();
    }
    let mount = match crate::client::mount_for_path(&m) {
        Ok(x) => x,
        Err(e) => return -e,
    };
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two descriptors into fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return -errno();
    }
    // SAFETY: both descriptors are fresh and owned from here on.
    let (rfd, wfd) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    if rfd_flags != 0 {
        // SAFETY: fcntl on our own descriptor.
        if unsafe { libc::fcntl(rfd.as_raw_fd(), libc::F_SETFL, rfd_flags) } != 0 {
            return -errno();
        }
    }
    let req = Request::CtRegister {
        archives: ids.clone(),
        pid: std::process::id(),
    };
    let agent = match proto::call_with_fd(&mount, &req, wfd.as_raw_fd()) {
        Ok(v) => match serde_json::from_value::<u64>(v) {
            Ok(a) => a,
            Err(_) => return -libc::EPROTO,
        },
        Err(e) => {
            // As `llapi_hsm_copytool_register` after a failed LL_IOC_HSM_CT_START.
            super::log::llapi_error(
                super::log::MSG_ERROR,
                e,
                &format!("cannot start copytool on '{}'", m.display()),
            );
            return -e;
        }
    };
    drop(wfd);
    let c = Box::new(Copytool {
        magic: CT_MAGIC,
        mount,
        agent,
        rfd,
        archives: ids,
        buf: std::cell::UnsafeCell::new(vec![0u64; (8 + HAL_MAXSIZE) / 8]),
    });
    // SAFETY: priv_ non-NULL and writable.
    unsafe { *priv_ = Box::into_raw(c) as *mut hsm_copytool_private };
    0
}

/// # Safety
/// C contract of `llapi_hsm_copytool_unregister`.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_copytool_unregister(
    priv_: *mut *mut hsm_copytool_private,
) -> c_int {
    if priv_.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: *priv_ checked by magic.
    let p = unsafe { *priv_ };
    // SAFETY: as above.
    let Some(c) = (unsafe { ct(p) }) else {
        return -libc::EINVAL;
    };
    let _ = proto::call(&c.mount, &Request::CtUnregister { agent: c.agent });
    // SAFETY: created by Box::into_raw in register; reclaimed once; the pointer is cleared.
    unsafe {
        (*(p as *mut Copytool)).magic = 0;
        drop(Box::from_raw(p as *mut Copytool));
        *priv_ = std::ptr::null_mut();
    }
    0
}

/// # Safety
/// C contract of `llapi_hsm_copytool_get_fd`.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_copytool_get_fd(ct_: *mut hsm_copytool_private) -> c_int {
    // SAFETY: handle per the contract.
    match unsafe { ct(ct_) } {
        Some(c) => c.rfd.as_raw_fd(),
        None => -libc::EINVAL,
    }
}

/// # Safety
/// C contract of `llapi_hsm_copytool_recv`. `*hal` points into the handle's buffer, valid
/// until the next recv.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_copytool_recv(
    ct_: *mut hsm_copytool_private,
    hal: *mut *mut hsm_action_list,
    msgsize: *mut c_int,
) -> c_int {
    if hal.is_null() || msgsize.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: both out-pointers are non-NULL and writable.
    unsafe {
        *hal = std::ptr::null_mut();
        *msgsize = 0;
    }
    // SAFETY: handle per the contract.
    let Some(c) = (unsafe { ct(ct_) }) else {
        return -libc::EINVAL;
    };
    let fd = c.rfd.as_raw_fd();
    // SAFETY: only the (single) receiving thread uses the buffer; see `Copytool::buf`.
    let buf = unsafe { &mut *c.buf.get() };
    let base = buf.as_mut_ptr() as *mut u8;
    let cap = buf.len() * 8;
    loop {
        // SAFETY: reading at most 8 bytes into the start of our buffer.
        let n = unsafe { libc::read(fd, base as *mut libc::c_void, KUC_HDR) };
        if n < 0 {
            return -errno();
        }
        if n == 0 {
            // The daemon (the only writer) is gone: the file system went away.
            return -libc::ESHUTDOWN;
        }
        if (n as usize) < KUC_HDR {
            return -libc::EPROTO;
        }
        // SAFETY: the first 8 bytes were just read.
        let h = unsafe { std::slice::from_raw_parts(base, KUC_HDR) };
        let magic = u16::from_le_bytes([h[0], h[1]]);
        let transport = h[2];
        let msgtype = u16::from_le_bytes([h[4], h[5]]);
        let msglen = u16::from_le_bytes([h[6], h[7]]) as usize;
        if magic != KUC_MAGIC {
            return -libc::EPROTO;
        }
        if msglen > cap || msglen < KUC_HDR {
            return -libc::EMSGSIZE;
        }
        if msglen > KUC_HDR {
            // SAFETY: reading msglen - 8 <= cap - 8 bytes right after the header.
            let m =
                unsafe { libc::read(fd, base.add(KUC_HDR) as *mut libc::c_void, msglen - KUC_HDR) };
            if m < 0 {
                return -errno();
            }
            if m as usize != msglen - KUC_HDR {
                return -libc::EPROTO;
            }
        }
        if transport == KUC_TRANSPORT_GENERIC && msgtype == KUC_MSG_SHUTDOWN {
            return -libc::ESHUTDOWN;
        }
        if transport != KUC_TRANSPORT_HSM {
            continue;
        }
        if msgtype != HMT_ACTION_LIST || msglen < KUC_HDR + HAL_HDR {
            return -libc::EPROTO;
        }
        // SAFETY: the hal header is within the bytes just read; read unaligned (packed).
        let h = unsafe { std::ptr::read_unaligned(base.add(KUC_HDR) as *const hsm_action_list) };
        let aid = h.hal_archive_id;
        if !c.archives.is_empty() && !c.archives.contains(&aid) {
            continue;
        }
        // SAFETY: out-pointers valid; the hal starts 8 bytes into an 8-aligned buffer.
        unsafe {
            *hal = base.add(KUC_HDR) as *mut hsm_action_list;
            *msgsize = (msglen - KUC_HDR) as c_int;
        }
        return 0;
    }
}

fn open_path(path: &str, flags: c_int) -> Result<OwnedFd, i32> {
    let c = CString::new(path.as_bytes()).map_err(|_| libc::EINVAL)?;
    // SAFETY: valid path string; flags as for open(2).
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: fresh descriptor, owned from here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// # Safety
/// C contract of `llapi_hsm_action_begin`: `hai` points at a readable item (fixed part).
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_action_begin(
    phcp: *mut *mut hsm_copyaction_private,
    ct_: *const hsm_copytool_private,
    hai: *const hsm_action_item,
    restore_mdt_index: c_int,
    restore_open_flags: c_int,
    is_error: bool,
) -> c_int {
    if phcp.is_null() || hai.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: handle per the contract.
    let Some(c) = (unsafe { ct(ct_) }) else {
        return -libc::EINVAL;
    };
    // SAFETY: the fixed 72 bytes are readable (unaligned read of a packed struct).
    let item = unsafe { std::ptr::read_unaligned(hai) };
    // SAFETY: the FIDs inside the item copy are readable.
    let (fid, dfid) = unsafe {
        (
            from_lu(std::ptr::addr_of!(item.hai_fid)),
            from_lu(std::ptr::addr_of!(item.hai_dfid)),
        )
    };
    let mut a = CopyAction {
        magic: CA_MAGIC,
        mount: c.mount.clone(),
        action: item.hai_action,
        cookie: item.hai_cookie,
        fid,
        dfid,
        fd: None,
    };
    if !is_error && (a.action == HSMA_ARCHIVE || a.action == HSMA_RESTORE) {
        let r: BeginReply = match proto::call_as(
            &c.mount,
            &Request::ActionBegin {
                cookie: a.cookie,
                fid,
                is_error,
                mdt_index: restore_mdt_index,
                open_flags: restore_open_flags,
            },
        ) {
            Ok(r) => r,
            Err(e) => return -e,
        };
        a.dfid = r.dfid;
        if let Some(p) = r.path {
            let fd = if a.action == HSMA_ARCHIVE {
                let base = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
                open_path(&p, base | libc::O_NOATIME).or_else(|e| {
                    if e == libc::EPERM {
                        open_path(&p, base)
                    } else {
                        Err(e)
                    }
                })
            } else {
                open_path(&p, libc::O_RDWR | libc::O_NOFOLLOW)
            };
            match fd {
                Ok(fd) => a.fd = Some(fd),
                Err(e) => return -e,
            }
        }
    }
    // SAFETY: phcp non-NULL and writable.
    unsafe { *phcp = Box::into_raw(Box::new(a)) as *mut hsm_copyaction_private };
    0
}

/// # Safety
/// C contract of `llapi_hsm_action_end`.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_action_end(
    phcp: *mut *mut hsm_copyaction_private,
    he: *const hsm_extent,
    hp_flags: c_int,
    errval: c_int,
) -> c_int {
    if phcp.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: *phcp checked by magic.
    let p = unsafe { *phcp };
    // SAFETY: as above.
    let Some(a) = (unsafe { ca(p) }) else {
        return -libc::EINVAL;
    };
    if he.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: he non-NULL and readable.
    let ext = unsafe { std::ptr::read_unaligned(he) };
    let mut err = errval.abs();
    if err == 0 && a.action == HSMA_RESTORE {
        if let Some(fd) = &a.fd {
            // SAFETY: fsync on our own descriptor.
            if unsafe { libc::fsync(fd.as_raw_fd()) } != 0 {
                err = errno();
            }
        }
    }
    let r = proto::call(
        &a.mount,
        &Request::ActionEnd {
            cookie: a.cookie,
            fid: a.progress_fid(),
            offset: ext.offset,
            length: ext.length,
            flags: hp_flags,
            errval: err,
        },
    );
    // SAFETY: created by Box::into_raw in begin; reclaimed once; the pointer is cleared.
    unsafe {
        (*(p as *mut CopyAction)).magic = 0;
        drop(Box::from_raw(p as *mut CopyAction));
        *phcp = std::ptr::null_mut();
    }
    match r {
        Ok(_) => 0,
        Err(e) => -e,
    }
}

/// # Safety
/// C contract of `llapi_hsm_action_progress`.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_action_progress(
    hcp: *mut hsm_copyaction_private,
    he: *const hsm_extent,
    _total: u64,
    hp_flags: c_int,
) -> c_int {
    // SAFETY: handle per the contract.
    let Some(a) = (unsafe { ca(hcp) }) else {
        return -libc::EINVAL;
    };
    if he.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: he non-NULL and readable.
    let ext = unsafe { std::ptr::read_unaligned(he) };
    match proto::call(
        &a.mount,
        &Request::ActionProgress {
            cookie: a.cookie,
            fid: a.progress_fid(),
            offset: ext.offset,
            length: ext.length,
            flags: hp_flags,
        },
    ) {
        Ok(_) => 0,
        Err(e) => -e,
    }
}

/// # Safety
/// C contract of `llapi_hsm_action_get_dfid`.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_action_get_dfid(
    hcp: *const hsm_copyaction_private,
    fid: *mut lu_fid,
) -> c_int {
    // SAFETY: handle per the contract.
    let Some(a) = (unsafe { ca(hcp) }) else {
        return -libc::EINVAL;
    };
    if fid.is_null() || !(a.action == HSMA_ARCHIVE || a.action == HSMA_RESTORE) {
        return -libc::EINVAL;
    }
    // SAFETY: non-NULL and writable.
    unsafe { std::ptr::write_unaligned(fid, to_lu(a.dfid)) };
    0
}

/// # Safety
/// C contract of `llapi_hsm_action_get_fd`: a dup() the caller closes.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_action_get_fd(hcp: *const hsm_copyaction_private) -> c_int {
    // SAFETY: handle per the contract.
    let Some(a) = (unsafe { ca(hcp) }) else {
        return -libc::EINVAL;
    };
    let Some(fd) = &a.fd else {
        return -libc::EINVAL;
    };
    // SAFETY: dup of a descriptor we own.
    let d = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if d < 0 {
        return -errno();
    }
    d
}
