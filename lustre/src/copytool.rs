//! The copytool session (lustre-abi.md §3.1, §4): register with the coordinator, receive
//! action lists, and carry each action from `begin` to exactly one `end`.

use crate::error::{check, Error, Result};
use crate::ffi::{aligned, api, c_path};
use crate::fid::Fid;
use crate::hsm::{ActionItem, ActionList, Extent};
use crate::wire::{decode_hal, encode_hai, HAL_HEADER_LEN};
use libc::c_int;
use lustre_sys::{self as sys, LustreApi};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The registered copytool handle, shared by the [`Copytool`] and its open actions (an action
/// keeps a pointer to it inside the library, so it must outlive them).
struct Session {
    api: &'static LustreApi,
    handle: *mut sys::hsm_copytool_private,
    /// `llapi_hsm_copytool_recv` reuses one buffer inside the handle: receive and copy-out
    /// happen under this lock.
    recv_lock: Mutex<()>,
}

// SAFETY: the handle is an opaque heap object. The only call that mutates it (recv, which
// refills its buffer) is serialised by `recv_lock`; get_fd and action_begin only read it; it is
// freed only by `unregister`/`Drop`, which run when no other reference to the session exists.
unsafe impl Send for Session {}
// SAFETY: see above: shared access is read-only except recv, which holds `recv_lock`.
unsafe impl Sync for Session {}

impl Session {
    fn unregister(&mut self) -> Result<()> {
        if self.handle.is_null() {
            return Ok(());
        }
        // SAFETY: the handle came from llapi_hsm_copytool_register, is released exactly once
        // (the library NULLs it) and no action refers to it any more (we own the session).
        let rc = unsafe { (self.api.llapi_hsm_copytool_unregister)(&mut self.handle) };
        self.handle = std::ptr::null_mut();
        check("llapi_hsm_copytool_unregister", rc).map(drop)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Err(e) = self.unregister() {
            tracing::warn!(error = %e, "copytool session dropped; unregister failed");
        }
    }
}

/// A registered HSM copytool (agent). `Send + Sync`: share it in an `Arc` across worker
/// threads, as lhsmtool_posix shares its handle.
pub struct Copytool {
    session: Arc<Session>,
}

impl std::fmt::Debug for Copytool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Copytool").finish_non_exhaustive()
    }
}

impl Copytool {
    /// Registers with the coordinators of the file system mounted at `mount` for `archives`
    /// (empty, or containing 0 = every archive). With `nonblocking`, [`Self::recv`] fails with
    /// `EAGAIN` instead of waiting. Needs root; `ENXIO` when no coordinator runs.
    pub fn register(mount: &Path, archives: &[u32], nonblocking: bool) -> Result<Copytool> {
        const CALL: &str = "llapi_hsm_copytool_register";
        let api = api()?;
        let mnt = c_path(CALL, mount)?;
        let mut ids = archives
            .iter()
            .map(|&id| {
                c_int::try_from(id).map_err(|_| Error::InvalidArgument {
                    call: CALL,
                    reason: format!("archive id {id} is out of range"),
                })
            })
            .collect::<Result<Vec<c_int>>>()?;
        let count = c_int::try_from(ids.len()).map_err(|_| Error::InvalidArgument {
            call: CALL,
            reason: "too many archive ids".into(),
        })?;
        let ids_ptr = if ids.is_empty() {
            std::ptr::null_mut()
        } else {
            ids.as_mut_ptr()
        };
        let rfd_flags = if nonblocking { libc::O_NONBLOCK } else { 0 };
        let mut handle = std::ptr::null_mut();
        // SAFETY: `handle` is a writable slot, `mnt` is NUL-terminated and `ids_ptr` points to
        // `count` ints (or is NULL with count 0), all alive for the call.
        check(CALL, unsafe {
            (api.llapi_hsm_copytool_register)(&mut handle, mnt.as_ptr(), count, ids_ptr, rfd_flags)
        })?;
        Ok(Copytool {
            session: Arc::new(Session {
                api,
                handle,
                recv_lock: Mutex::new(()),
            }),
        })
    }

    /// Receives the next action list, copied out of the library's buffer. Errors:
    /// `ESHUTDOWN` when the file system is unmounted, `EAGAIN` when non-blocking and idle,
    /// `EPROTO` on a malformed message.
    pub fn recv(&self) -> Result<ActionList> {
        let s = &*self.session;
        // A poisoned lock only means another receiver panicked; the buffer is refilled anyway.
        let _guard = s.recv_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut hal: *mut sys::hsm_action_list = std::ptr::null_mut();
        let mut msgsize: c_int = 0;
        // SAFETY: the handle is live (the session is borrowed) and both out-pointers are
        // writable; the receive lock is held, so no one else refills the buffer meanwhile.
        check("llapi_hsm_copytool_recv", unsafe {
            (s.api.llapi_hsm_copytool_recv)(s.handle, &mut hal, &mut msgsize)
        })?;
        // SAFETY: on success `hal` points to `msgsize` bytes inside the handle's buffer, which
        // stay valid until the next recv (excluded by the lock held until we return).
        unsafe { copy_action_list(hal.cast::<u8>().cast_const(), msgsize) }
    }

    /// The pipe read fd, for `poll()`.
    pub fn fd(&self) -> Result<RawFd> {
        // SAFETY: the handle is live while the session is borrowed.
        check("llapi_hsm_copytool_get_fd", unsafe {
            (self.session.api.llapi_hsm_copytool_get_fd)(self.session.handle)
        })
    }

    /// Starts `item` (ARCHIVE opens the source, RESTORE creates the volatile file on
    /// `restore_mdt_index` (-1 = default) with `restore_open_flags`, REMOVE opens the file).
    /// Errors (e.g. `ECANCELED`, `ENOENT`) mean the action still needs an end: report it with
    /// [`Self::begin_error`] then [`CopyAction::end`].
    pub fn begin(
        &self,
        item: &ActionItem,
        restore_mdt_index: i32,
        restore_open_flags: i32,
    ) -> Result<CopyAction> {
        self.begin_inner(item, restore_mdt_index, restore_open_flags, false)
    }

    /// A handle used only to report a failure for `item` through [`CopyAction::end`] (for an
    /// action that could not begin or that this copytool does not handle). Sends nothing.
    pub fn begin_error(&self, item: &ActionItem) -> Result<CopyAction> {
        self.begin_inner(item, -1, 0, true)
    }

    fn begin_inner(
        &self,
        item: &ActionItem,
        mdt_index: i32,
        open_flags: i32,
        is_error: bool,
    ) -> Result<CopyAction> {
        const CALL: &str = "llapi_hsm_action_begin";
        let bytes = encode_hai(item).map_err(|source| Error::Encode { call: CALL, source })?;
        let hai = aligned(&bytes);
        let s = &*self.session;
        let mut hcp = std::ptr::null_mut();
        // SAFETY: `hcp` is a writable slot, the copytool handle is live, and `hai` holds the
        // whole encoded item (hai_len bytes, 8-byte aligned) for the duration of the call.
        check(CALL, unsafe {
            (s.api.llapi_hsm_action_begin)(
                &mut hcp,
                s.handle,
                hai.as_ptr().cast::<sys::hsm_action_item>(),
                mdt_index,
                open_flags,
                is_error,
            )
        })?;
        Ok(CopyAction {
            session: Arc::clone(&self.session),
            handle: hcp,
            fid: item.fid,
            extent: item.extent,
        })
    }

    /// Unregisters now, or — while actions begun by this copytool are still open — as soon
    /// as the last of them ends (they need the registration to report their end).
    pub fn unregister(self) -> Result<()> {
        match Arc::try_unwrap(self.session) {
            Ok(mut session) => session.unregister(),
            Err(_shared) => Ok(()),
        }
    }
}

/// Copies an action list out of the library's receive buffer.
///
/// # Safety
/// `hal` must be NULL or point to `msgsize` readable bytes.
unsafe fn copy_action_list(hal: *const u8, msgsize: c_int) -> Result<ActionList> {
    const CALL: &str = "llapi_hsm_copytool_recv";
    let len = usize::try_from(msgsize).unwrap_or(0);
    if hal.is_null() || len < HAL_HEADER_LEN {
        return Err(Error::call_failed(CALL, libc::EPROTO));
    }
    // SAFETY: guaranteed by the caller: `hal` points to `msgsize` readable bytes.
    let bytes = unsafe { std::slice::from_raw_parts(hal, len) };
    decode_hal(bytes).map_err(|source| Error::Decode { call: CALL, source })
}

/// One action in progress. Exactly one end per action: [`CopyAction::end`] consumes it, and an
/// action dropped without `end` is ended with `EIO` (and logged), so the coordinator never
/// waits for `active_request_timeout`. `Send`, so it can move to a worker thread.
pub struct CopyAction {
    session: Arc<Session>,
    handle: *mut sys::hsm_copyaction_private,
    fid: Fid,
    extent: Extent,
}

// SAFETY: the action handle is owned by this value alone and the library keeps no thread
// affinity for it; the copytool handle it refers to is kept alive (and Sync) by `session`.
unsafe impl Send for CopyAction {}

impl std::fmt::Debug for CopyAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyAction")
            .field("fid", &self.fid)
            .field("extent", &self.extent)
            .finish_non_exhaustive()
    }
}

impl CopyAction {
    /// The FID of the file this action is about.
    pub fn fid(&self) -> Fid {
        self.fid
    }

    /// Reports that `ext` (a newly copied slice) is done; `total` is informational. Fails with
    /// errno `ECANCELED` when the request was cancelled (stop and end with `ECANCELED`), or
    /// `ENOENT` when the coordinator forgot it.
    pub fn progress(&self, ext: Extent, total: u64) -> Result<()> {
        let he: sys::hsm_extent = ext.into();
        // SAFETY: the action handle is live until end/drop; `he` is alive for the call.
        check("llapi_hsm_action_progress", unsafe {
            (self.session.api.llapi_hsm_action_progress)(self.handle, &he, total, 0)
        })
        .map(drop)
    }

    /// A new descriptor for the data: the source (ARCHIVE) or the volatile file (RESTORE).
    /// It shares the file offset with the library's own: use positioned I/O.
    pub fn fd(&self) -> Result<OwnedFd> {
        // SAFETY: the action handle is live until end/drop.
        let fd = check("llapi_hsm_action_get_fd", unsafe {
            (self.session.api.llapi_hsm_action_get_fd)(self.handle)
        })?;
        // SAFETY: the library returns a dup() that the caller owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The data FID (the volatile file's FID for RESTORE, the file's own for ARCHIVE).
    pub fn dfid(&self) -> Result<Fid> {
        let mut fid = sys::lu_fid::default();
        // SAFETY: the action handle is live until end/drop; `fid` is writable.
        check("llapi_hsm_action_get_dfid", unsafe {
            (self.session.api.llapi_hsm_action_get_dfid)(self.handle, &mut fid)
        })?;
        Ok(fid.into())
    }

    /// Ends the action: `errval` 0 for success or a positive errno, `hp_flags` 0 or
    /// `HP_FLAG_RETRY`. The handle is released even when this fails (e.g. `EBUSY` when an
    /// archived file changed during the copy).
    pub fn end(mut self, ext: Extent, hp_flags: i32, errval: i32) -> Result<()> {
        self.finish(ext, hp_flags, errval)
    }

    fn finish(&mut self, ext: Extent, hp_flags: i32, errval: i32) -> Result<()> {
        let he: sys::hsm_extent = ext.into();
        // SAFETY: the handle came from llapi_hsm_action_begin and is ended exactly once: the
        // library frees it and NULLs our copy whatever the outcome, and we NULL it as well.
        let rc = unsafe {
            (self.session.api.llapi_hsm_action_end)(&mut self.handle, &he, hp_flags, errval)
        };
        self.handle = std::ptr::null_mut();
        check("llapi_hsm_action_end", rc).map(drop)
    }
}

impl Drop for CopyAction {
    fn drop(&mut self) {
        if self.handle.is_null() {
            return;
        }
        tracing::warn!(fid = %self.fid, "HSM action dropped without an end; ending it with EIO");
        if let Err(e) = self.finish(self.extent, 0, libc::EIO) {
            tracing::warn!(fid = %self.fid, error = %e, "ending a dropped HSM action failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hsm::CopytoolAction;
    use crate::wire::encode_hal;

    fn is_send_sync<T: Send + Sync>() {}
    fn is_send<T: Send>() {}

    #[test]
    fn thread_safety_markers() {
        is_send_sync::<Copytool>();
        is_send::<CopyAction>();
    }

    #[test]
    fn action_lists_are_copied_within_msgsize() {
        let hal = ActionList {
            version: 1,
            archive_id: 2,
            flags: 0,
            compound_id: 0,
            fsname: "lustre".into(),
            items: vec![ActionItem {
                action: CopytoolAction::Restore,
                fid: Fid::new(0x200000401, 5, 0),
                dfid: Fid::new(0x200000401, 5, 0),
                extent: Extent::WHOLE_FILE,
                cookie: 77,
                gid: 0,
                data: b"key".to_vec(),
            }],
        };
        let mut buf = encode_hal(&hal).unwrap();
        let msgsize = buf.len() as c_int;
        buf.extend_from_slice(&[0xEE; 64]); // stale bytes of an earlier, longer message
                                            // SAFETY: `buf` is a live buffer of at least `msgsize` bytes.
        let got = unsafe { copy_action_list(buf.as_ptr(), msgsize) }.unwrap();
        assert_eq!(got, hal);
        // SAFETY: as above, with a shorter size.
        let short = unsafe { copy_action_list(buf.as_ptr(), msgsize - 80) }.unwrap_err();
        assert_eq!(short.errno(), Some(libc::EPROTO));
        // SAFETY: NULL and negative sizes are rejected before any read.
        let null = unsafe { copy_action_list(std::ptr::null(), 100) }.unwrap_err();
        assert_eq!(null.errno(), Some(libc::EPROTO));
        // SAFETY: as above.
        let neg = unsafe { copy_action_list(buf.as_ptr(), -1) }.unwrap_err();
        assert_eq!(neg.errno(), Some(libc::EPROTO));
    }
}
