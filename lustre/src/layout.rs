//! [`Layout`]: an owned `struct llapi_layout` (liblustreapi_layout.c), freed on drop; read from
//! an open file, built from a [`Striping`], and set on a file opened with `O_LOV_DELAY_CREATE`.

use crate::error::{Error, Result};
use crate::ffi::{api, c_bytes, c_path, until_nul};
use crate::striping::Striping;
use lustre_sys::{self as sys, LustreApi, LLAPI_LAYOUT_DEFAULT, LOV_MAXPOOLNAME};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;

/// An owned layout handle.
pub struct Layout {
    api: &'static LustreApi,
    raw: NonNull<sys::llapi_layout>,
}

// SAFETY: the handle is a plain heap object of liblustreapi with no thread affinity; `&self`
// methods only read it, and `&mut self` ones are the only writers.
unsafe impl Send for Layout {}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layout")
            .field("striping", &self.striping().ok().flatten())
            .finish()
    }
}

/// Whether the loaded liblustreapi has the layout calls (every Lustre since 2.7 does; a test
/// mock may not). Without them files keep the default layout of their directory.
pub fn layouts_supported() -> bool {
    api().is_ok_and(|a| {
        a.llapi_layout_alloc.is_some()
            && a.llapi_layout_free.is_some()
            && a.llapi_layout_get_by_fd.is_some()
            && a.llapi_layout_file_open.is_some()
    })
}

/// An optional symbol or `Unsupported`.
fn func<F>(f: Option<F>, call: &'static str) -> Result<F> {
    f.ok_or(Error::Unsupported { call })
}

/// The errno the layout calls leave (they return -1 or NULL and set errno).
fn errno_failure(call: &'static str) -> Error {
    Error::call_failed(
        call,
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// 0 / -1 + errno.
fn check_errno(call: &'static str, rc: libc::c_int) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(errno_failure(call))
    }
}

impl Layout {
    fn own(
        api: &'static LustreApi,
        raw: *mut sys::llapi_layout,
        call: &'static str,
    ) -> Result<Layout> {
        let raw = NonNull::new(raw).ok_or_else(|| errno_failure(call))?;
        Ok(Layout { api, raw })
    }

    /// A layout with every attribute "file system default" (`llapi_layout_alloc`).
    pub fn new() -> Result<Layout> {
        let api = api()?;
        let alloc = func(api.llapi_layout_alloc, "llapi_layout_alloc")?;
        func(api.llapi_layout_free, "llapi_layout_free")?;
        // SAFETY: no arguments; the result is NULL or a fresh handle we own.
        Layout::own(api, unsafe { alloc() }, "llapi_layout_alloc")
    }

    /// The layout of an open file (`llapi_layout_get_by_fd`, no flags).
    pub fn of_file(fd: BorrowedFd<'_>) -> Result<Layout> {
        let api = api()?;
        let get = func(api.llapi_layout_get_by_fd, "llapi_layout_get_by_fd")?;
        func(api.llapi_layout_free, "llapi_layout_free")?;
        // SAFETY: `fd` is open for the call; the result is NULL or a fresh handle we own.
        Layout::own(
            api,
            unsafe { get(fd.as_raw_fd(), 0) },
            "llapi_layout_get_by_fd",
        )
    }

    /// The layout of a file by path (`llapi_layout_get_by_path`, no flags).
    pub fn of_path(path: &Path) -> Result<Layout> {
        const CALL: &str = "llapi_layout_get_by_path";
        let api = api()?;
        let get = func(api.llapi_layout_get_by_path, CALL)?;
        func(api.llapi_layout_free, "llapi_layout_free")?;
        let c = c_path(CALL, path)?;
        // SAFETY: `c` is NUL-terminated; the result is NULL or a fresh handle we own.
        Layout::own(api, unsafe { get(c.as_ptr(), 0) }, CALL)
    }

    /// A layout with the given stripe count, size and pool.
    pub fn from_striping(s: &Striping) -> Result<Layout> {
        let mut l = Layout::new()?;
        l.set_stripe_count(u64::from(s.stripe_count()))?;
        l.set_stripe_size(s.stripe_size())?;
        if let Some(p) = s.pool() {
            l.set_pool(p)?;
        }
        Ok(l)
    }

    /// Stripe count; `None` for "file system default" (`LLAPI_LAYOUT_DEFAULT`). The
    /// `LLAPI_LAYOUT_WIDE_*` values ("every OST") come back as they are.
    pub fn stripe_count(&self) -> Result<Option<u64>> {
        const CALL: &str = "llapi_layout_stripe_count_get";
        let get = func(self.api.llapi_layout_stripe_count_get, CALL)?;
        let mut v = 0u64;
        // SAFETY: `raw` is a live handle; `v` is writable.
        check_errno(CALL, unsafe { get(self.raw.as_ptr(), &mut v) })?;
        Ok((v != LLAPI_LAYOUT_DEFAULT).then_some(v))
    }

    /// Stripe size in bytes; `None` for "file system default".
    pub fn stripe_size(&self) -> Result<Option<u64>> {
        const CALL: &str = "llapi_layout_stripe_size_get";
        let get = func(self.api.llapi_layout_stripe_size_get, CALL)?;
        let mut v = 0u64;
        // SAFETY: `raw` is a live handle; `v` is writable.
        check_errno(CALL, unsafe { get(self.raw.as_ptr(), &mut v) })?;
        Ok((v != LLAPI_LAYOUT_DEFAULT).then_some(v))
    }

    /// The OST pool; `None` when there is none.
    pub fn pool(&self) -> Result<Option<String>> {
        const CALL: &str = "llapi_layout_pool_name_get";
        let get = func(self.api.llapi_layout_pool_name_get, CALL)?;
        let mut buf = [0u8; LOV_MAXPOOLNAME + 1];
        // SAFETY: `raw` is a live handle; `buf` has `buf.len()` writable bytes (snprintf).
        check_errno(CALL, unsafe {
            get(self.raw.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        })?;
        let name = until_nul(&buf);
        Ok((!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned()))
    }

    /// Whether this is a composite layout (PFL, FLR, SEL), which a [`Striping`] cannot hold.
    pub fn is_composite(&self) -> Result<bool> {
        let f = func(
            self.api.llapi_layout_is_composite,
            "llapi_layout_is_composite",
        )?;
        // SAFETY: `raw` is a live handle; the call only reads it.
        Ok(unsafe { f(self.raw.as_ptr()) })
    }

    /// Sets the stripe count (`llapi_layout_stripe_count_set`).
    pub fn set_stripe_count(&mut self, count: u64) -> Result<()> {
        const CALL: &str = "llapi_layout_stripe_count_set";
        let set = func(self.api.llapi_layout_stripe_count_set, CALL)?;
        // SAFETY: `raw` is a live handle we hold exclusively.
        check_errno(CALL, unsafe { set(self.raw.as_ptr(), count) })
    }

    /// Sets the stripe size in bytes (`llapi_layout_stripe_size_set`).
    pub fn set_stripe_size(&mut self, size: u64) -> Result<()> {
        const CALL: &str = "llapi_layout_stripe_size_set";
        let set = func(self.api.llapi_layout_stripe_size_set, CALL)?;
        // SAFETY: `raw` is a live handle we hold exclusively.
        check_errno(CALL, unsafe { set(self.raw.as_ptr(), size) })
    }

    /// Sets the OST pool (`llapi_layout_pool_name_set`).
    pub fn set_pool(&mut self, pool: &str) -> Result<()> {
        const CALL: &str = "llapi_layout_pool_name_set";
        let set = func(self.api.llapi_layout_pool_name_set, CALL)?;
        let c = c_bytes(CALL, pool.as_bytes())?;
        // SAFETY: `raw` is a live handle we hold exclusively; `c` is NUL-terminated.
        check_errno(CALL, unsafe { set(self.raw.as_ptr(), c.as_ptr()) })
    }

    /// The layout as a [`Striping`]: `None` for a composite layout or one whose count or size
    /// is left to the file system (nothing definite to keep).
    pub fn striping(&self) -> Result<Option<Striping>> {
        if self.is_composite()? {
            return Ok(None);
        }
        let (Some(count), Some(size)) = (self.stripe_count()?, self.stripe_size()?) else {
            return Ok(None);
        };
        let pool = self.pool()?;
        Ok(Striping::new(count, size, pool.as_deref()).ok())
    }

    /// Creates the file `path` (it must not exist) with this layout and `mode` (umask
    /// applies), as `llapi_layout_file_create` does; the file is returned open for writing.
    pub fn create_file(&self, path: &Path, mode: u32) -> Result<std::fs::File> {
        const CALL: &str = "llapi_layout_file_open";
        let open = func(self.api.llapi_layout_file_open, CALL)?;
        let c = c_path(CALL, path)?;
        // SAFETY: `c` is NUL-terminated and `raw` a live handle.
        let fd = unsafe {
            open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                mode as libc::mode_t,
                self.raw.as_ptr(),
            )
        };
        if fd < 0 {
            return Err(errno_failure(CALL));
        }
        // SAFETY: a fresh descriptor that nobody else owns.
        Ok(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sets this layout on `file`, a regular file opened with `O_LOV_DELAY_CREATE` that has no
    /// layout yet (a RESTORE's volatile file). liblustreapi only sets layouts by path
    /// (`llapi_layout_file_open`, which opens and then `fsetxattr("lustre.lov")`s), so the file
    /// is reopened through `/proc/self/fd`, which reuses the open handle the client already holds
    /// and therefore works for the unlinked volatile file too. Lustre refuses (EEXIST) a file
    /// that already has a layout.
    pub fn apply_to(&self, file: BorrowedFd<'_>) -> Result<()> {
        const CALL: &str = "llapi_layout_file_open";
        let open = func(self.api.llapi_layout_file_open, CALL)?;
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let c = c_bytes(CALL, path.as_bytes())?;
        // SAFETY: `c` is NUL-terminated and `raw` a live handle; no O_CREAT, so mode is unused.
        let fd = unsafe {
            open(
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC | sys::O_LOV_DELAY_CREATE,
                0,
                self.raw.as_ptr(),
            )
        };
        if fd < 0 {
            return Err(errno_failure(CALL));
        }
        // SAFETY: a fresh descriptor that nobody else owns; closing it keeps `file` open.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(())
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        // Every constructor checked that `llapi_layout_free` exists.
        if let Some(free) = self.api.llapi_layout_free {
            // SAFETY: `raw` came from liblustreapi and is freed exactly once, here.
            unsafe { free(self.raw.as_ptr()) };
        }
    }
}
