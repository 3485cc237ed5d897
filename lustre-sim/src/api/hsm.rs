//! HSM user requests, state and import (lustre-abi.md §3.1).

use super::{arg_path, arg_str, from_lu, neg, to_lu};
use crate::client;
use crate::consts::HUR_MAX_LEN;
use crate::fid::Fid;
use lustre_sys::{hsm_current_action, hsm_extent, hsm_user_request, hsm_user_state, lu_fid};
use std::ffi::{c_char, c_int, c_ulonglong};
use std::path::{Path, PathBuf};

/// # Safety
/// None (returns a calloc'd buffer the caller frees with free()).
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_user_request_alloc(
    itemcount: c_int,
    data_len: c_int,
) -> *mut hsm_user_request {
    if itemcount < 0 || data_len < 0 {
        return std::ptr::null_mut();
    }
    let len = 24 + 32 * itemcount as usize + data_len as usize;
    // SAFETY: plain calloc; the caller owns and frees the buffer.
    unsafe { libc::calloc(1, len) as *mut hsm_user_request }
}

fn mount_of(path: &str) -> Result<PathBuf, i32> {
    if path.starts_with('/') || path.starts_with('.') {
        client::mount_for_path(Path::new(path))
    } else {
        client::device_mount(path).map(|(m, _)| m)
    }
}

/// # Safety
/// `request` points at a complete hsm_user_request (header, items, data).
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_request(
    path: *const c_char,
    request: *const hsm_user_request,
) -> c_int {
    // SAFETY: string per the contract.
    let Some(p) = (unsafe { arg_str(path) }) else {
        return -libc::EINVAL;
    };
    if request.is_null() {
        return -libc::EINVAL;
    }
    let b = request as *const u8;
    // SAFETY: the 24-byte header is readable per the contract (read unaligned).
    let hr = unsafe { std::ptr::read_unaligned(request as *const lustre_sys::hsm_request) };
    let count = hr.hr_itemcount as usize;
    let dlen = hr.hr_data_len as usize;
    if 24 + 32 * count + dlen >= HUR_MAX_LEN {
        return -libc::E2BIG;
    }
    let mut items = Vec::with_capacity(count);
    for i in 0..count {
        // SAFETY: item i lies inside the request (hur_len bytes readable per the contract).
        let (fid, ext) = unsafe {
            let ip = b.add(24 + 32 * i);
            (
                from_lu(ip as *const lu_fid),
                std::ptr::read_unaligned(ip.add(16) as *const hsm_extent),
            )
        };
        items.push((fid, ext.offset, ext.length));
    }
    // SAFETY: the data follows the items, dlen bytes, inside the request.
    let data = unsafe { std::slice::from_raw_parts(b.add(24 + 32 * count), dlen) }.to_vec();
    let mount = match mount_of(p) {
        Ok(m) => m,
        Err(e) => return -e,
    };
    neg(client::hsm_request(
        &mount,
        hr.hr_action,
        hr.hr_archive_id,
        hr.hr_flags,
        items,
        data,
    ))
}

fn fill_state(hus: *mut hsm_user_state, r: Result<(PathBuf, Fid), i32>) -> c_int {
    if hus.is_null() {
        return -libc::EFAULT;
    }
    let (m, f) = match r {
        Ok(x) => x,
        Err(e) => return -e,
    };
    match client::hsm_state(&m, &f) {
        Ok(s) => {
            let v = hsm_user_state {
                hus_states: s.states,
                hus_archive_id: s.archive_id,
                ..Default::default()
            };
            // SAFETY: hus is non-NULL and points at 32 writable bytes per the contract.
            unsafe { std::ptr::write(hus, v) };
            0
        }
        Err(e) => -e,
    }
}

fn path_target(p: &Path) -> Result<(PathBuf, Fid), i32> {
    std::fs::metadata(p).map_err(|e| e.raw_os_error().unwrap_or(libc::ENOENT))?;
    let (m, _) = client::rel_in_mount(p)?;
    Ok((m, client::path2fid(p)?))
}

/// # Safety
/// C contract of `llapi_hsm_state_get`.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_state_get(
    path: *const c_char,
    hus: *mut hsm_user_state,
) -> c_int {
    // SAFETY: string per the contract.
    let Some(p) = (unsafe { arg_path(path) }) else {
        return -libc::EINVAL;
    };
    fill_state(hus, path_target(&p))
}

/// # Safety
/// C contract of `llapi_hsm_state_get_fd`.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_state_get_fd(fd: c_int, hus: *mut hsm_user_state) -> c_int {
    fill_state(hus, client::fd2fid(fd))
}

/// # Safety
/// C contract of `llapi_hsm_state_set`.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_state_set(
    path: *const c_char,
    setmask: u64,
    clearmask: u64,
    archive_id: u32,
) -> c_int {
    // SAFETY: string per the contract.
    let Some(p) = (unsafe { arg_path(path) }) else {
        return -libc::EINVAL;
    };
    neg(path_target(&p)
        .and_then(|(m, f)| client::hsm_state_set(&m, &f, setmask, clearmask, archive_id)))
}

/// # Safety
/// C contract of `llapi_hsm_state_set_fd`.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_state_set_fd(
    fd: c_int,
    setmask: u64,
    clearmask: u64,
    archive_id: u32,
) -> c_int {
    neg(client::fd2fid(fd)
        .and_then(|(m, f)| client::hsm_state_set(&m, &f, setmask, clearmask, archive_id)))
}

/// # Safety
/// C contract of `llapi_hsm_current_action`.
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_current_action(
    path: *const c_char,
    hca: *mut hsm_current_action,
) -> c_int {
    // SAFETY: string per the contract.
    let Some(p) = (unsafe { arg_path(path) }) else {
        return -libc::EINVAL;
    };
    if hca.is_null() {
        return -libc::EFAULT;
    }
    match path_target(&p).and_then(|(m, f)| client::current_action(&m, &f)) {
        Ok(a) => {
            let v = hsm_current_action {
                hca_state: a.state,
                hca_action: a.action,
                hca_location: hsm_extent {
                    offset: a.offset,
                    length: a.length,
                },
            };
            // SAFETY: non-NULL, writable per the contract.
            unsafe { std::ptr::write(hca, v) };
            0
        }
        Err(e) => -e,
    }
}

/// # Safety
/// C contract of `llapi_hsm_import`: `dst` a valid path, `st` a readable struct stat,
/// `newfid` writable, `pool_name` NULL or a C string. The striping is checked as
/// `llapi_file_open_param` checks it (EINVAL) and kept as the stub's layout; the stripe offset
/// and pattern have no effect here (no OSTs).
#[no_mangle]
pub unsafe extern "C" fn llapi_hsm_import(
    dst: *const c_char,
    archive: c_int,
    st: *const libc::stat,
    stripe_size: c_ulonglong,
    _stripe_offset: c_int,
    stripe_count: c_int,
    _stripe_pattern: c_int,
    pool_name: *mut c_char,
    newfid: *mut lu_fid,
) -> c_int {
    // SAFETY: string per the contract.
    let Some(p) = (unsafe { arg_path(dst) }) else {
        return -libc::EINVAL;
    };
    if st.is_null() || newfid.is_null() || archive < 0 {
        return -libc::EINVAL;
    }
    // SAFETY: NULL or a C string per the contract.
    let pool = match unsafe { crate::api::layout::import_pool(pool_name) } {
        Ok(p) => p,
        Err(e) => return -e,
    };
    if !crate::api::layout::import_striping_ok(stripe_size, stripe_count) {
        return -libc::EINVAL;
    }
    // SAFETY: st is readable per the contract.
    let s = unsafe { &*st };
    let (mount, rel) = match client::rel_in_mount(&p) {
        Ok(x) => x,
        Err(e) => return -e,
    };
    let req = crate::proto::Request::Import {
        path: rel,
        archive_id: archive as u32,
        size: s.st_size as u64,
        mode: s.st_mode,
        uid: s.st_uid,
        gid: s.st_gid,
        atime: (s.st_atime, s.st_atime_nsec as u32),
        mtime: (s.st_mtime, s.st_mtime_nsec as u32),
        stripe_count,
        stripe_size,
        pool,
    };
    match crate::proto::call_as::<Fid>(&mount, &req) {
        Ok(f) => {
            // SAFETY: newfid non-NULL and writable.
            unsafe { std::ptr::write_unaligned(newfid, to_lu(f)) };
            0
        }
        Err(e) => -e,
    }
}
