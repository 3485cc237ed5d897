//! The `llapi_*` exports of liblustreapi_sim.so, with the real signatures (types from
//! `lustre-sys`) and return conventions (0 / -errno; see lustre-abi.md §3). `check.rs` proves
//! at compile time that each export's type equals the `lustre_sys::LustreApi` field type.

pub mod changelog;
mod check;
pub mod copytool;
pub mod hsm;
pub mod layout;
pub mod log;
pub mod paths;

use crate::fid::Fid;
use std::ffi::{c_char, CStr};
use std::path::PathBuf;

/// A C string argument as a Rust string (None for NULL or non-UTF-8).
///
/// # Safety
/// `p` is NULL or points at a NUL-terminated string that outlives the returned reference.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// A C path argument (bytes kept verbatim).
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn arg_path(p: *const c_char) -> Option<PathBuf> {
    if p.is_null() {
        return None;
    }
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let b = unsafe { CStr::from_ptr(p) }.to_bytes();
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(b)))
}

pub(crate) fn to_lu(f: Fid) -> lustre_sys::lu_fid {
    lustre_sys::lu_fid {
        f_seq: f.seq,
        f_oid: f.oid,
        f_ver: f.ver,
    }
}

/// # Safety
/// `p` points at a readable `lu_fid` (any alignment).
pub(crate) unsafe fn from_lu(p: *const lustre_sys::lu_fid) -> Fid {
    // SAFETY: readable per the caller's contract; read_unaligned handles the packed layout.
    let f = unsafe { std::ptr::read_unaligned(p) };
    Fid {
        seq: f.f_seq,
        oid: f.f_oid,
        ver: f.f_ver,
    }
}

/// Copies `s` plus a NUL into `dst` (the caller guarantees the room, as with C strcpy).
///
/// # Safety
/// `dst` is writable for `s.len() + 1` bytes.
pub(crate) unsafe fn strcpy(dst: *mut c_char, s: &[u8]) {
    // SAFETY: the caller guarantees room for the bytes and the NUL.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), dst as *mut u8, s.len());
        *dst.add(s.len()) = 0;
    }
}

pub(crate) fn neg(r: Result<(), i32>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => -e.abs(),
    }
}
