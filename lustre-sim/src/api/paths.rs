//! FID, path and mount helpers (lustre-abi.md §3.3).

use super::{arg_path, arg_str, from_lu, strcpy, to_lu};
use crate::client;
use crate::fid::Fid;
use lustre_sys::lu_fid;
use std::ffi::{c_char, c_int, c_longlong, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn mount_of_fd(fd: c_int) -> Result<PathBuf, i32> {
    let p = std::fs::read_link(format!("/proc/self/fd/{fd}")).map_err(|_| libc::EBADF)?;
    client::mount_for_path(&p)
}

/// Writes a fid2path answer into the caller's buffer (-ERANGE when it does not fit).
///
/// # Safety
/// `path` is writable for `pathlen` bytes; `linkno` is NULL or valid.
unsafe fn fid2path_common(
    mount: &Path,
    fid: &Fid,
    path: *mut c_char,
    pathlen: c_int,
    linkno: *mut c_int,
) -> c_int {
    if path.is_null() || pathlen <= 0 {
        return -libc::EINVAL;
    }
    let link = if linkno.is_null() {
        0
    } else {
        // SAFETY: linkno is not NULL, so valid per the contract.
        unsafe { *linkno }.max(0) as u32
    };
    match client::fid2path(mount, fid, link) {
        Ok((p, next)) => {
            let p = if p.is_empty() { "/".to_string() } else { p };
            if p.len() + 1 > pathlen as usize {
                return -libc::ERANGE;
            }
            // SAFETY: checked above that p and its NUL fit in pathlen bytes.
            unsafe { strcpy(path, p.as_bytes()) };
            if !linkno.is_null() {
                // SAFETY: non-NULL, valid per the contract.
                unsafe { *linkno = next as c_int };
            }
            0
        }
        Err(e) => -e,
    }
}

/// # Safety
/// C contract of `llapi_fid2path`: valid strings, `path` writable for `pathlen` bytes.
#[no_mangle]
pub unsafe extern "C" fn llapi_fid2path(
    device: *const c_char,
    fidstr: *const c_char,
    path: *mut c_char,
    pathlen: c_int,
    _recno: *mut c_longlong,
    linkno: *mut c_int,
) -> c_int {
    // SAFETY: strings per the contract.
    let (Some(dev), Some(fs)) = (unsafe { arg_str(device) }, unsafe { arg_str(fidstr) }) else {
        return -libc::EINVAL;
    };
    let Some(fid) = crate::fid::parse(fs) else {
        return -libc::EINVAL;
    };
    let mount = match client::device_mount(dev) {
        Ok((m, _)) => m,
        Err(e) => return -e,
    };
    // SAFETY: forwarded contract.
    unsafe { fid2path_common(&mount, &fid, path, pathlen, linkno) }
}

/// # Safety
/// C contract of `llapi_fid2path_at`.
#[no_mangle]
pub unsafe extern "C" fn llapi_fid2path_at(
    mnt_fd: c_int,
    fid: *const lu_fid,
    path: *mut c_char,
    pathlen: c_int,
    _recno: *mut c_longlong,
    linkno: *mut c_int,
) -> c_int {
    if fid.is_null() {
        return -libc::EINVAL;
    }
    let mount = match mount_of_fd(mnt_fd) {
        Ok(m) => m,
        Err(e) => return -e,
    };
    // SAFETY: fid is non-NULL and readable per the contract; the rest is forwarded.
    unsafe { fid2path_common(&mount, &from_lu(fid), path, pathlen, linkno) }
}

/// # Safety
/// C contract of `llapi_path2fid`.
#[no_mangle]
pub unsafe extern "C" fn llapi_path2fid(path: *const c_char, fid: *mut lu_fid) -> c_int {
    // SAFETY: string per the contract.
    let Some(p) = (unsafe { arg_path(path) }) else {
        return -libc::EINVAL;
    };
    if fid.is_null() {
        return -libc::EINVAL;
    }
    match client::path2fid(&p) {
        Ok(f) => {
            // SAFETY: fid is non-NULL and writable per the contract.
            unsafe { std::ptr::write_unaligned(fid, to_lu(f)) };
            0
        }
        Err(e) => -e,
    }
}

/// # Safety
/// C contract of `llapi_fd2fid`.
#[no_mangle]
pub unsafe extern "C" fn llapi_fd2fid(fd: c_int, fid: *mut lu_fid) -> c_int {
    if fid.is_null() {
        return -libc::EINVAL;
    }
    match client::fd2fid(fd) {
        Ok((_, f)) => {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { std::ptr::write_unaligned(fid, to_lu(f)) };
            0
        }
        Err(e) => -e,
    }
}

/// The liblustreapi version this library emulates: `LUSTRE_SIM_VERSION` (`2.15`, the default,
/// or `2.16`).
pub fn emulates_2_16() -> bool {
    std::env::var("LUSTRE_SIM_VERSION").is_ok_and(|v| v.trim().starts_with("2.16"))
}

fn open_rel(mount: &Path, fid: &Fid, flags: c_int) -> c_int {
    let rel = match client::fid2path(mount, fid, 0) {
        Ok((r, _)) => r,
        // 2.16's `llapi_open_by_fid_at` is `open_by_handle_at(2)`, which answers ESTALE for a
        // handle whose object is gone; 2.15 opens `<mount>/.lustre/fid/<FID>`: ENOENT.
        Err(libc::ENOENT) if emulates_2_16() => return -libc::ESTALE,
        Err(e) => return -e,
    };
    let full = if rel.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    };
    let Ok(c) = CString::new(full.as_os_str().as_bytes()) else {
        return -libc::EINVAL;
    };
    // SAFETY: c is a valid path; flags come from the caller as for open(2).
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return -std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
    }
    fd
}

/// # Safety
/// C contract of `llapi_open_by_fid`.
#[no_mangle]
pub unsafe extern "C" fn llapi_open_by_fid(
    lustre_dir: *const c_char,
    fid: *const lu_fid,
    open_flags: c_int,
) -> c_int {
    // SAFETY: string per the contract.
    let Some(d) = (unsafe { arg_path(lustre_dir) }) else {
        return -libc::EINVAL;
    };
    if fid.is_null() {
        return -libc::EINVAL;
    }
    let mount = match client::mount_for_path(&d) {
        Ok(m) => m,
        Err(e) => return -e,
    };
    // SAFETY: fid non-NULL and readable.
    open_rel(&mount, &unsafe { from_lu(fid) }, open_flags)
}

/// # Safety
/// C contract of `llapi_open_by_fid_at`.
#[no_mangle]
pub unsafe extern "C" fn llapi_open_by_fid_at(
    lustre_fd: c_int,
    fid: *const lu_fid,
    open_flags: c_int,
) -> c_int {
    if fid.is_null() {
        return -libc::EINVAL;
    }
    let mount = match mount_of_fd(lustre_fd) {
        Ok(m) => m,
        Err(e) => return -e,
    };
    // SAFETY: fid non-NULL and readable.
    open_rel(&mount, &unsafe { from_lu(fid) }, open_flags)
}

/// # Safety
/// C contract of `llapi_get_mdt_index_by_fid`.
#[no_mangle]
pub unsafe extern "C" fn llapi_get_mdt_index_by_fid(
    fd: c_int,
    fid: *const lu_fid,
    mdt_index: *mut c_int,
) -> c_int {
    if fid.is_null() || mdt_index.is_null() {
        return -libc::EINVAL;
    }
    if let Err(e) = mount_of_fd(fd) {
        return -e;
    }
    // SAFETY: both pointers non-NULL and valid per the contract.
    let idx = crate::fid::mdt_index(&unsafe { from_lu(fid) }) as c_int;
    // SAFETY: as above.
    unsafe { *mdt_index = idx };
    idx
}

/// # Safety
/// C contract of `llapi_search_fsname`: `fsname` holds at least MAX_OBD_NAME + 1 bytes.
#[no_mangle]
pub unsafe extern "C" fn llapi_search_fsname(
    pathname: *const c_char,
    fsname: *mut c_char,
) -> c_int {
    // SAFETY: string per the contract.
    let Some(p) = (unsafe { arg_path(pathname) }) else {
        return -libc::EINVAL;
    };
    if fsname.is_null() {
        return -libc::EINVAL;
    }
    let r = client::mount_for_path(&p).and_then(|m| client::info(&m));
    match r {
        Ok(i) => {
            // SAFETY: fsnames are at most 8 bytes; the buffer holds MAX_OBD_NAME + 1.
            unsafe { strcpy(fsname, i.fsname.as_bytes()) };
            0
        }
        Err(e) => -e,
    }
}

/// # Safety
/// C contract of `llapi_search_mounts`: `mntdir` holds PATH_MAX bytes; `fsname` NULL or
/// MAX_OBD_NAME + 1 bytes.
#[no_mangle]
pub unsafe extern "C" fn llapi_search_mounts(
    pathname: *const c_char,
    index: c_int,
    mntdir: *mut c_char,
    fsname: *mut c_char,
) -> c_int {
    if mntdir.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: string per the contract (NULL allowed).
    let p = unsafe { arg_path(pathname) }.filter(|p| !p.as_os_str().is_empty());
    let found = match &p {
        Some(p) => {
            let b = p.as_os_str().as_bytes();
            if b.len() < libc::PATH_MAX as usize {
                // SAFETY: mntdir holds PATH_MAX bytes; b is shorter.
                unsafe { strcpy(mntdir, b) };
            }
            client::mount_for_path(p)
                .ok()
                .and_then(|m| client::info(&m).ok().map(|i| (m, i.fsname)))
        }
        None => crate::mounts::live_mounts()
            .into_iter()
            .nth(index.max(0) as usize)
            .map(|(f, m)| (m, f)),
    };
    let Some((m, fs)) = found else {
        return -libc::ENODEV;
    };
    let b = m.as_os_str().as_bytes();
    if b.len() >= libc::PATH_MAX as usize {
        return -libc::ENAMETOOLONG;
    }
    // SAFETY: mntdir holds PATH_MAX bytes; fsname (when given) MAX_OBD_NAME + 1.
    unsafe {
        strcpy(mntdir, b);
        if !fsname.is_null() {
            strcpy(fsname, fs.as_bytes());
        }
    }
    0
}

/// # Safety
/// C contract of `llapi_getname`: `name` writable for `namelen` bytes.
#[no_mangle]
pub unsafe extern "C" fn llapi_getname(
    path: *const c_char,
    name: *mut c_char,
    namelen: libc::size_t,
) -> c_int {
    // SAFETY: string per the contract.
    let Some(p) = (unsafe { arg_path(path) }) else {
        return -libc::EINVAL;
    };
    if name.is_null() {
        return -libc::EINVAL;
    }
    let (m, info) = match client::mount_for_path(&p).and_then(|m| client::info(&m).map(|i| (m, i)))
    {
        Ok(x) => x,
        Err(e) => return -e,
    };
    let inst = crate::mds::journal::fnv32(m.as_os_str().as_bytes());
    let s = format!("{}-ffff{:08x}", info.fsname, inst);
    if s.len() + 1 > namelen {
        return -libc::ENAMETOOLONG;
    }
    // SAFETY: checked that s and its NUL fit in namelen bytes.
    unsafe { strcpy(name, s.as_bytes()) };
    0
}

/// # Safety
/// C contract of `llapi_get_data_version`.
#[no_mangle]
pub unsafe extern "C" fn llapi_get_data_version(fd: c_int, dv: *mut u64, _flags: u64) -> c_int {
    if dv.is_null() {
        return -libc::EINVAL;
    }
    let r = client::fd2fid(fd).and_then(|(m, f)| client::data_version(&m, &f));
    match r {
        Ok(v) => {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { *dv = v };
            0
        }
        Err(e) => -e,
    }
}

/// # Safety
/// C contract of `llapi_root_path_open`.
#[no_mangle]
pub unsafe extern "C" fn llapi_root_path_open(device: *const c_char, outfd: *mut c_int) -> c_int {
    // SAFETY: string per the contract.
    let Some(dev) = (unsafe { arg_str(device) }) else {
        return -libc::EINVAL;
    };
    if outfd.is_null() {
        return -libc::EINVAL;
    }
    let m = match client::device_mount(dev) {
        Ok((m, _)) => m,
        Err(e) => return -e,
    };
    let Ok(c) = CString::new(m.as_os_str().as_bytes()) else {
        return -libc::EINVAL;
    };
    // SAFETY: valid path string.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return -std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
    }
    // SAFETY: non-NULL and writable.
    unsafe { *outfd = fd };
    0
}

/// # Safety
/// C contract of `llapi_fid_parse`: `fidstr` a valid string, `fid` writable, `endptr` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn llapi_fid_parse(
    fidstr: *const c_char,
    fid: *mut lu_fid,
    endptr: *mut *mut c_char,
) -> c_int {
    if fidstr.is_null() || fid.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: NUL-terminated per the contract.
    let b = unsafe { std::ffi::CStr::from_ptr(fidstr) }.to_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    let bracket = i < b.len() && b[i] == b'[';
    if bracket {
        i += 1;
    }
    let start = i;
    let mut colons = 0;
    while i < b.len()
        && (b[i].is_ascii_hexdigit()
            || b[i] == b'x'
            || b[i] == b'X'
            || (b[i] == b':' && colons < 2))
    {
        if b[i] == b':' {
            colons += 1;
        }
        i += 1;
    }
    let Ok(text) = std::str::from_utf8(&b[start..i]) else {
        return -libc::EINVAL;
    };
    let Some(f) = crate::fid::parse(text) else {
        return -libc::EINVAL;
    };
    if bracket {
        if i < b.len() && b[i] == b']' {
            i += 1;
        } else {
            return -libc::EINVAL;
        }
    }
    // SAFETY: fid writable; endptr NULL or writable; the end pointer stays inside fidstr.
    unsafe {
        std::ptr::write_unaligned(fid, to_lu(f));
        if !endptr.is_null() {
            *endptr = fidstr.add(i) as *mut c_char;
        }
    }
    0
}
