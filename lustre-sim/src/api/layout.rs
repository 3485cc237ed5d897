//! The `llapi_layout_*` exports: a layout handle in the library's memory, read from and set on
//! files through the daemon (mds/layout.rs). Return conventions are liblustreapi_layout.c's:
//! 0 / -1 with errno, NULL with errno for the getters that allocate.

use super::{arg_path, arg_str};
use crate::client;
use crate::fid::Fid;
use crate::mds::layout::LayoutAttrs;
use crate::proto::{call_as, Request};
use lustre_sys::{
    llapi_layout, LLAPI_LAYOUT_DEFAULT, LLAPI_LAYOUT_WIDE_MAX, LLAPI_LAYOUT_WIDE_MIN,
    LOV_MAXPOOLNAME, LOV_MAX_STRIPE_COUNT, LOV_MIN_STRIPE_SIZE, O_LOV_DELAY_CREATE,
    O_LOV_DELAY_CREATE_2_17,
};
use std::ffi::{c_char, c_int, CStr};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `LLAPI_LAYOUT_MAGIC`: a handle not carrying it is refused with EINVAL, as the library does.
const LAYOUT_MAGIC: u32 = 0x11AD_1107;

struct SimLayout {
    magic: u32,
    attrs: LayoutAttrs,
}

fn set_errno(e: i32) {
    // SAFETY: the thread's errno location is always valid.
    unsafe { *libc::__errno_location() = e };
}

fn fail(e: i32) -> c_int {
    set_errno(e);
    -1
}

/// # Safety
/// `p` is NULL or a pointer this library returned and has not freed.
unsafe fn handle<'a>(p: *const llapi_layout) -> Option<&'a mut SimLayout> {
    // SAFETY: per the contract, a non-NULL `p` is one of our boxes.
    let l = unsafe { (p as *mut SimLayout).as_mut() }?;
    (l.magic == LAYOUT_MAGIC).then_some(l)
}

fn boxed(attrs: LayoutAttrs) -> *mut llapi_layout {
    Box::into_raw(Box::new(SimLayout {
        magic: LAYOUT_MAGIC,
        attrs,
    })) as *mut llapi_layout
}

/// `llapi_layout_stripe_count_is_valid`.
fn count_ok(c: u64) -> bool {
    c == LLAPI_LAYOUT_DEFAULT
        || (LLAPI_LAYOUT_WIDE_MIN..=LLAPI_LAYOUT_WIDE_MAX).contains(&c)
        || (1..=LOV_MAX_STRIPE_COUNT).contains(&c)
}

/// `llapi_layout_stripe_size_is_valid`.
fn size_ok(s: u64) -> bool {
    s == LLAPI_LAYOUT_DEFAULT || (s != 0 && s % LOV_MIN_STRIPE_SIZE == 0 && s < 1 << 32)
}

/// `llapi_pool_name_is_valid`: the part after an `fsname.` prefix, at most LOV_MAXPOOLNAME.
fn pool_part(p: &str) -> Option<&str> {
    let p = p.split_once('.').map_or(p, |(_, pool)| pool);
    (p.len() <= LOV_MAXPOOLNAME).then_some(p)
}

/// `llapi_hsm_import`'s pool argument (NULL = none), checked as `llapi_file_open_param` does.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
pub(crate) unsafe fn import_pool(p: *const c_char) -> Result<String, i32> {
    if p.is_null() {
        return Ok(String::new());
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let s = unsafe { arg_str(p) }.ok_or(libc::EINVAL)?;
    pool_part(s).map(str::to_string).ok_or(libc::EINVAL)
}

/// `llapi_file_open_param`'s checks of the stripe size (0 = default) and count (0 = default).
pub(crate) fn import_striping_ok(stripe_size: u64, stripe_count: c_int) -> bool {
    stripe_size % LOV_MIN_STRIPE_SIZE == 0
        && stripe_size < 1 << 32
        && (-32..=LOV_MAX_STRIPE_COUNT as c_int).contains(&stripe_count)
}

/// The mount and FID behind an open descriptor: a RESTORE's volatile file (named by its FID in
/// the daemon's volatile directory) or a file of the namespace.
fn target_of_fd(fd: RawFd) -> Result<(PathBuf, Fid), i32> {
    let p = std::fs::read_link(format!("/proc/self/fd/{fd}")).map_err(|_| libc::EBADF)?;
    let mount = client::mount_for_path(&p)?;
    let vdir = crate::mds::state::State::state_dir(&mount).join("volatile");
    if p.parent() == Some(vdir.as_path()) {
        let fid = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(crate::fid::parse)
            .ok_or(libc::EBADF)?;
        return Ok((mount, fid));
    }
    client::fd2fid(fd)
}

/// `llapi_search_fsname`: the path, or its parent when it does not exist yet, is on a mount.
fn on_a_mount(p: &Path) -> bool {
    let real = std::fs::canonicalize(p)
        .or_else(|_| std::fs::canonicalize(p.parent().unwrap_or(Path::new("/"))));
    real.ok()
        .and_then(|r| client::mount_for_path(&r).ok())
        .is_some()
}

fn get_by_fd(fd: RawFd) -> Result<LayoutAttrs, i32> {
    let (mount, fid) = target_of_fd(fd)?;
    call_as(&mount, &Request::LayoutGet { fid })
}

/// # Safety
/// No arguments.
#[no_mangle]
pub unsafe extern "C" fn llapi_layout_alloc() -> *mut llapi_layout {
    boxed(LayoutAttrs::default())
}

/// # Safety
/// `layout` is NULL or a handle of this library, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn llapi_layout_free(layout: *mut llapi_layout) {
    // SAFETY: per the contract.
    if unsafe { handle(layout) }.is_some() {
        // SAFETY: one of our boxes (magic checked), freed once.
        drop(unsafe { Box::from_raw(layout as *mut SimLayout) });
    }
}

/// # Safety
/// `fd` is any integer (a bad one gives EBADF).
#[no_mangle]
pub unsafe extern "C" fn llapi_layout_get_by_fd(fd: c_int, _flags: u32) -> *mut llapi_layout {
    match get_by_fd(fd) {
        Ok(a) => boxed(a),
        Err(e) => {
            set_errno(e);
            std::ptr::null_mut()
        }
    }
}

/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn llapi_layout_get_by_path(
    path: *const c_char,
    _flags: u32,
) -> *mut llapi_layout {
    // SAFETY: per the contract.
    let Some(p) = (unsafe { arg_path(path) }) else {
        set_errno(libc::EINVAL);
        return std::ptr::null_mut();
    };
    let got = client::rel_in_mount(&p)
        .and_then(|(mount, _)| Ok((mount, client::path2fid(&p)?)))
        .and_then(|(mount, fid)| call_as(&mount, &Request::LayoutGet { fid }));
    match got {
        Ok(a) => boxed(a),
        Err(e) => {
            set_errno(e);
            std::ptr::null_mut()
        }
    }
}

/// # Safety
/// `layout` a handle of this library, `count` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn llapi_layout_stripe_count_get(
    layout: *const llapi_layout,
    count: *mut u64,
) -> c_int {
    // SAFETY: per the contract.
    match (unsafe { handle(layout) }, count.is_null()) {
        (Some(l), false) => {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { *count = l.attrs.stripe_count };
            0
        }
        _ => fail(libc::EINVAL),
    }
}

/// # Safety
/// `layout` a handle of this library.
#[no_mangle]
pub unsafe extern "C" fn llapi_layout_stripe_count_set(
    layout: *mut llapi_layout,
    count: u64,
) -> c_int {
    // SAFETY: per the contract.
    match unsafe { handle(layout) } {
        Some(l) if count_ok(count) => {
            l.attrs.stripe_count = count;
            0
        }
        _ => fail(libc::EINVAL),
    }
}

/// # Safety
/// `layout` a handle of this library, `size` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn llapi_layout_stripe_size_get(
    layout: *const llapi_layout,
    size: *mut u64,
) -> c_int {
    // SAFETY: per the contract.
    match (unsafe { handle(layout) }, size.is_null()) {
        (Some(l), false) => {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { *size = l.attrs.stripe_size };
            0
        }
        _ => fail(libc::EINVAL),
    }
}

/// # Safety
/// `layout` a handle of this library.
#[no_mangle]
pub unsafe extern "C" fn llapi_layout_stripe_size_set(
    layout: *mut llapi_layout,
    size: u64,
) -> c_int {
    // SAFETY: per the contract.
    match unsafe { handle(layout) } {
        Some(l) if size_ok(size) => {
            l.attrs.stripe_size = size;
            0
        }
        _ => fail(libc::EINVAL),
    }
}

/// # Safety
/// `layout` a handle of this library, `dest` NULL or writable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn llapi_layout_pool_name_get(
    layout: *const llapi_layout,
    dest: *mut c_char,
    n: libc::size_t,
) -> c_int {
    // SAFETY: per the contract.
    let Some(l) = (unsafe { handle(layout) }) else {
        return fail(libc::EINVAL);
    };
    if dest.is_null() {
        return fail(libc::EINVAL);
    }
    if n == 0 {
        return 0;
    }
    // snprintf: as much as fits, always NUL-terminated.
    let b = l.attrs.pool.as_bytes();
    let len = b.len().min(n - 1);
    // SAFETY: `dest` is writable for `n` > len bytes per the contract.
    unsafe {
        std::ptr::copy_nonoverlapping(b.as_ptr(), dest as *mut u8, len);
        *dest.add(len) = 0;
    }
    0
}

/// # Safety
/// `layout` a handle of this library, `pool` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn llapi_layout_pool_name_set(
    layout: *mut llapi_layout,
    pool: *const c_char,
) -> c_int {
    // SAFETY: per the contract.
    let (Some(l), Some(p)) = (unsafe { handle(layout) }, unsafe { arg_str(pool) }) else {
        return fail(libc::EINVAL);
    };
    match pool_part(p) {
        Some(p) => {
            l.attrs.pool = p.to_string();
            0
        }
        None => fail(libc::EINVAL),
    }
}

/// # Safety
/// `layout` a handle of this library.
#[no_mangle]
pub unsafe extern "C" fn llapi_layout_is_composite(layout: *mut llapi_layout) -> bool {
    // The simulator only has plain layouts (no PFL or FLR).
    let _ = layout;
    false
}

/// `llapi_layout_file_open`: opens `path` (O_LOV_DELAY_CREATE added with O_CREAT) and, with a
/// layout, sets it on the file (`fsetxattr("lustre.lov")` on Lustre); EEXIST when the file
/// already has one. With a pool, the path must be on a (simulated) Lustre mount
/// (`llapi_search_fsname`), else ENOTTY.
///
/// # Safety
/// `path` NULL or a NUL-terminated string, `layout` NULL or a handle of this library.
#[no_mangle]
pub unsafe extern "C" fn llapi_layout_file_open(
    path: *const c_char,
    open_flags: c_int,
    mode: libc::mode_t,
    layout: *const llapi_layout,
) -> c_int {
    if path.is_null() {
        return fail(libc::EINVAL);
    }
    // SAFETY: per the contract.
    let attrs = match unsafe { (layout.is_null(), handle(layout)) } {
        (true, _) => None,
        (false, Some(l)) => Some(l.attrs.clone()),
        (false, None) => return fail(libc::EINVAL),
    };
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let c = unsafe { CStr::from_ptr(path) };
    let p = Path::new(std::ffi::OsStr::from_bytes(c.to_bytes()));
    if attrs.as_ref().is_some_and(|a| !a.pool.is_empty()) && !on_a_mount(p) {
        return fail(libc::ENOTTY);
    }
    let created = open_flags & libc::O_CREAT != 0 && std::fs::symlink_metadata(p).is_err();
    // The delay-create bits mean nothing to the backing file system.
    let flags = open_flags & !(O_LOV_DELAY_CREATE | O_LOV_DELAY_CREATE_2_17);
    // SAFETY: `c` is NUL-terminated; flags and mode as for open(2).
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    let Some(attrs) = attrs else {
        return fd;
    };
    if fd < 0 {
        return fd;
    }
    let set = target_of_fd(fd).and_then(|(mount, fid)| {
        call_as::<()>(
            &mount,
            &Request::LayoutSet {
                fid,
                layout: attrs,
                created,
            },
        )
    });
    match set {
        Ok(()) => fd,
        Err(e) => {
            // SAFETY: our own descriptor, closed once.
            unsafe { libc::close(fd) };
            fail(e)
        }
    }
}
