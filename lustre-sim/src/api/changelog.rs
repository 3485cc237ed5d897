//! Changelog reading and clearing (lustre-abi.md §3.2, §5.2), 2.16 record shape.

use super::{arg_str, neg};
use crate::client::{self, ChangelogStream};
use crate::consts::*;
use crate::record::{Rec, CR_MAXSIZE};
use lustre_sys::{
    changelog_rec, changelog_rec_extra_flags, changelog_rec_flags, changelog_send_extra_flag,
    changelog_send_flag,
};
use std::ffi::{c_char, c_int, c_longlong, c_void};
use std::os::fd::AsRawFd;

const MAGIC: u32 = 0x4C53_434C;

struct Reader {
    magic: u32,
    stream: ChangelogStream,
    /// Type mask of `llapi_changelog_start_user` (all types otherwise).
    mask: u64,
}

/// # Safety
/// `p` is NULL or a handle from llapi_changelog_start.
unsafe fn reader<'a>(p: *mut c_void) -> Option<&'a mut Reader> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL handles were created by Box::into_raw of a Reader below.
    let r = unsafe { &mut *(p as *mut Reader) };
    (r.magic == MAGIC).then_some(r)
}

unsafe fn start(
    priv_: *mut *mut c_void,
    flags: changelog_send_flag,
    mdtname: *const c_char,
    startrec: c_longlong,
    mask: u64,
) -> c_int {
    // SAFETY: string per the caller's contract.
    let Some(dev) = (unsafe { arg_str(mdtname) }) else {
        return -libc::EINVAL;
    };
    if priv_.is_null() {
        return -libc::EINVAL;
    }
    match ChangelogStream::start(dev, flags as i32, startrec) {
        Ok(stream) => {
            let r = Box::new(Reader {
                magic: MAGIC,
                stream,
                mask,
            });
            // SAFETY: priv_ is non-NULL and writable per the contract.
            unsafe { *priv_ = Box::into_raw(r) as *mut c_void };
            0
        }
        Err(e) => -e,
    }
}

/// # Safety
/// C contract of `llapi_changelog_start`.
#[no_mangle]
pub unsafe extern "C" fn llapi_changelog_start(
    priv_: *mut *mut c_void,
    flags: changelog_send_flag,
    mdtname: *const c_char,
    startrec: c_longlong,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { start(priv_, flags, mdtname, startrec, u64::MAX) }
}

/// # Safety
/// C contract of `llapi_changelog_start_user`. The user name is accepted; records are
/// filtered by `mask` (bit (1 << CL_x)) on the reader side.
#[no_mangle]
pub unsafe extern "C" fn llapi_changelog_start_user(
    priv_: *mut *mut c_void,
    flags: changelog_send_flag,
    mdtname: *const c_char,
    _username: *const c_char,
    mask: u64,
    startrec: c_longlong,
) -> c_int {
    let mask = if mask == 0 { u64::MAX } else { mask };
    // SAFETY: forwarded contract.
    unsafe { start(priv_, flags, mdtname, startrec, mask) }
}

/// # Safety
/// C contract of `llapi_changelog_set_xflags`.
#[no_mangle]
pub unsafe extern "C" fn llapi_changelog_set_xflags(
    priv_: *mut c_void,
    extra_flags: changelog_send_extra_flag,
) -> c_int {
    // SAFETY: handle per the contract.
    match unsafe { reader(priv_) } {
        Some(r) => {
            r.stream.xflags = extra_flags as u64;
            0
        }
        None => -libc::EINVAL,
    }
}

/// A calloc(CR_MAXSIZE) copy of an encoded record (free() with llapi_changelog_free).
fn heap_rec(b: &[u8]) -> *mut changelog_rec {
    let size = CR_MAXSIZE.max(b.len() + 1);
    // SAFETY: calloc of `size` bytes; we copy b.len() < size bytes into it.
    unsafe {
        let p = libc::calloc(1, size) as *mut u8;
        if !p.is_null() {
            std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
        }
        p as *mut changelog_rec
    }
}

/// # Safety
/// C contract of `llapi_changelog_recv`.
#[no_mangle]
pub unsafe extern "C" fn llapi_changelog_recv(
    priv_: *mut c_void,
    rech: *mut *mut changelog_rec,
) -> c_int {
    if rech.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: rech is non-NULL and writable.
    unsafe { *rech = std::ptr::null_mut() };
    // SAFETY: handle per the contract.
    let Some(r) = (unsafe { reader(priv_) }) else {
        return -libc::EINVAL;
    };
    loop {
        match r.stream.recv() {
            Ok(Some(rec)) => {
                if rec.rtype < 64 && r.mask & (1u64 << rec.rtype) == 0 {
                    continue;
                }
                let Ok(b) = rec.encode() else {
                    return -libc::EPROTO;
                };
                // SAFETY: rech non-NULL and writable.
                unsafe { *rech = heap_rec(&b) };
                return 0;
            }
            Ok(None) => return 1,
            Err(e) => return -e,
        }
    }
}

/// # Safety
/// C contract of `llapi_changelog_free`.
#[no_mangle]
pub unsafe extern "C" fn llapi_changelog_free(rech: *mut *mut changelog_rec) -> c_int {
    if !rech.is_null() {
        // SAFETY: *rech is NULL or a record allocated with calloc by llapi_changelog_recv /
        // llapi_changelog_repack_rec.
        unsafe {
            libc::free(*rech as *mut c_void);
            *rech = std::ptr::null_mut();
        }
    }
    0
}

/// # Safety
/// C contract of `llapi_changelog_fini`.
#[no_mangle]
pub unsafe extern "C" fn llapi_changelog_fini(priv_: *mut *mut c_void) -> c_int {
    if priv_.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: *priv_ is a handle from llapi_changelog_start (checked by magic).
    let p = unsafe { *priv_ };
    // SAFETY: as above.
    if unsafe { reader(p) }.is_none() {
        return -libc::EINVAL;
    }
    // SAFETY: created by Box::into_raw in start(); reclaimed once, then the caller's pointer
    // is cleared.
    unsafe {
        (*(p as *mut Reader)).magic = 0;
        drop(Box::from_raw(p as *mut Reader));
        *priv_ = std::ptr::null_mut();
    }
    0
}

/// # Safety
/// C contract of `llapi_changelog_get_fd`.
#[no_mangle]
pub unsafe extern "C" fn llapi_changelog_get_fd(priv_: *mut c_void) -> c_int {
    // SAFETY: handle per the contract.
    match unsafe { reader(priv_) } {
        Some(r) => r.stream.sock.get_ref().as_raw_fd(),
        None => -libc::EINVAL,
    }
}

/// # Safety
/// C contract of `llapi_changelog_in_buf`.
#[no_mangle]
pub unsafe extern "C" fn llapi_changelog_in_buf(priv_: *mut c_void) -> c_int {
    // SAFETY: handle per the contract.
    match unsafe { reader(priv_) } {
        Some(r) => r.stream.in_buf() as c_int,
        None => 0,
    }
}

/// # Safety
/// C contract of `llapi_changelog_clear`.
#[no_mangle]
pub unsafe extern "C" fn llapi_changelog_clear(
    mdtname: *const c_char,
    idstr: *const c_char,
    endrec: c_longlong,
) -> c_int {
    // SAFETY: strings per the contract.
    let (Some(dev), Some(id)) = (unsafe { arg_str(mdtname) }, unsafe { arg_str(idstr) }) else {
        return -libc::EINVAL;
    };
    neg(client::changelog_clear(dev, id, endrec))
}

/// # Safety
/// `rec` points at a complete record (its header, extensions and name).
#[no_mangle]
pub unsafe extern "C" fn llapi_changelog_repack_rec(
    rec: *const changelog_rec,
    crf_wanted: changelog_rec_flags,
    cref_want: changelog_rec_extra_flags,
) -> *mut changelog_rec {
    if rec.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: the 64-byte header is readable; its flags tell how long the record is, and the
    // whole record is readable per the contract.
    let bytes = unsafe {
        let h = std::ptr::read_unaligned(rec);
        let f = h.cr_flags;
        let mut len = 64usize + h.cr_namelen as usize;
        if f & CLF_RENAME != 0 {
            len += 32;
        }
        if f & CLF_JOBID != 0 {
            len += 32;
        }
        if f & CLF_EXTRA_FLAGS != 0 {
            let off = 64
                + if f & CLF_RENAME != 0 { 32 } else { 0 }
                + if f & CLF_JOBID != 0 { 32 } else { 0 };
            let ef = std::ptr::read_unaligned((rec as *const u8).add(off) as *const u64);
            len += 8;
            for (bit, sz) in [
                (CLFE_UIDGID, 16),
                (CLFE_NID, 24),
                (CLFE_OPEN, 4),
                (CLFE_XATTR, 256),
            ] {
                if ef & bit != 0 {
                    len += sz;
                }
            }
        }
        std::slice::from_raw_parts(rec as *const u8, len)
    };
    let Some((r, _)) = Rec::decode(bytes) else {
        return std::ptr::null_mut();
    };
    let t = r.trimmed(
        crf_wanted as u16 & CLF_JOBID != 0,
        crf_wanted as u16 & CLF_EXTRA_FLAGS != 0,
        cref_want as u64,
        // the record already has the form its reader got from recv
        true,
    );
    match t.encode() {
        Ok(b) => heap_rec(&b),
        Err(_) => std::ptr::null_mut(),
    }
}
