//! Extended attributes on the backing file system: the FID each entry carries
//! (`trusted.lsim.fid`) and the xattr list compared for SETXATTR records.

use crate::consts::*;
use crate::fid::Fid;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn get_fid_xattr(path: &Path) -> Option<Fid> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = CString::new(FID_XATTR).ok()?;
    let mut b = [0u8; 16];
    // SAFETY: valid C strings and a 16-byte buffer whose length we pass.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            name.as_ptr(),
            b.as_mut_ptr() as *mut libc::c_void,
            16,
        )
    };
    if n != 16 {
        return None;
    }
    crate::fid::from_bytes(&b)
}

pub fn set_fid_xattr(path: &Path, fid: Fid) {
    let (Ok(c), Ok(name)) = (
        CString::new(path.as_os_str().as_bytes()),
        CString::new(FID_XATTR),
    ) else {
        return;
    };
    let b = fid.to_bytes();
    // SAFETY: valid C strings and a 16-byte value. Failure is tolerated (the FID then lives
    // only in the daemon's state, keyed by inode number).
    unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            name.as_ptr(),
            b.as_ptr() as *const libc::c_void,
            16,
            0,
        )
    };
}

/// Names and value hashes of an entry's xattrs, the simulator's own excluded.
pub fn list_xattrs(path: &Path) -> Vec<(String, u64)> {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    let mut buf = vec![0u8; 4096];
    // SAFETY: buffer and length agree.
    let n =
        unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if n <= 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for name in buf[..n as usize]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
    {
        let s = String::from_utf8_lossy(name).into_owned();
        if s.starts_with(SIM_XATTR_PREFIX) {
            continue;
        }
        let Ok(cn) = CString::new(name) else { continue };
        let mut v = vec![0u8; 65536];
        // SAFETY: buffer and length agree; names come from llistxattr.
        let m = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cn.as_ptr(),
                v.as_mut_ptr() as *mut libc::c_void,
                v.len(),
            )
        };
        let h = if m >= 0 {
            super::journal::fnv32(&v[..m as usize]) as u64
        } else {
            0
        };
        out.push((s, h));
    }
    out.sort();
    out
}
