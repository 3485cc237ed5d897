//! Reading and clearing MDT changelogs through liblustreapi (lustre-abi.md §3.2, §5.2).

use crate::changelog::ChangelogRecord;
use crate::error::{check, Error, Result};
use crate::ffi::{api, c_bytes};
use crate::wire::{changelog_layout, decode_changelog, DecodeError};
use libc::{c_int, c_longlong, c_void};
use lustre_sys::{self as sys, LustreApi};
use std::os::fd::RawFd;

/// An open changelog of one MDT. Records are copied out of the library and freed at once;
/// the handle is closed (`llapi_changelog_fini`) on drop.
///
/// It asks for jobids and every extra extension (uid/gid, NID, open mode, xattr name), and for
/// big-endian NIDs when the library is 2.16+, exactly as `lfs changelog` does, so ≤2.15
/// libraries also return records whose layout matches their flags.
pub struct ChangelogReader {
    api: &'static LustreApi,
    handle: *mut c_void,
}

// SAFETY: the handle is an opaque heap object owned by this value alone; liblustreapi keeps no
// thread-local state for it, so it may be used from another thread (never from two at once:
// every use takes `&mut self` except `fd`/`in_buf`, which only read it).
unsafe impl Send for ChangelogReader {}

impl std::fmt::Debug for ChangelogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangelogReader").finish_non_exhaustive()
    }
}

/// The send flags used by [`ChangelogReader::start`].
pub fn start_flags(follow: bool, nid_be: bool) -> sys::changelog_send_flag {
    let mut flags = sys::CHANGELOG_FLAG_JOBID | sys::CHANGELOG_FLAG_EXTRA_FLAGS;
    if follow {
        flags |= sys::CHANGELOG_FLAG_FOLLOW;
    }
    if nid_be {
        flags |= sys::CHANGELOG_FLAG_NID_BE;
    }
    flags
}

/// The extra flags used by [`ChangelogReader::start`]: all four.
pub const EXTRA_FLAGS: sys::changelog_send_extra_flag = sys::CHANGELOG_EXTRA_FLAG_UIDGID
    | sys::CHANGELOG_EXTRA_FLAG_NID
    | sys::CHANGELOG_EXTRA_FLAG_OMODE
    | sys::CHANGELOG_EXTRA_FLAG_XATTR;

impl ChangelogReader {
    /// Opens the changelog of `mdt` (`<fsname>-MDTxxxx`, see [`crate::Mount::mdt_name`]) at
    /// record `start_rec` (0 = the oldest record still present). With `follow`, [`Self::recv`]
    /// blocks for new records instead of reporting the end.
    pub fn start(mdt: &str, start_rec: u64, follow: bool) -> Result<ChangelogReader> {
        let api = api()?;
        let mdt_c = c_bytes("llapi_changelog_start", mdt.as_bytes())?;
        let start = c_longlong::try_from(start_rec)
            .map_err(|_| Error::call_failed("llapi_changelog_start", libc::EINVAL))?;
        // NID_BE exists from 2.16 on, as does llapi_changelog_repack_rec.
        let flags = start_flags(follow, api.llapi_changelog_repack_rec.is_some());
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: `handle` is a writable pointer slot and `mdt_c` is NUL-terminated.
        check("llapi_changelog_start", unsafe {
            (api.llapi_changelog_start)(&mut handle, flags, mdt_c.as_ptr(), start)
        })?;
        let reader = ChangelogReader { api, handle };
        // SAFETY: `handle` was just returned by llapi_changelog_start; xflags must be set right
        // after start.
        check("llapi_changelog_set_xflags", unsafe {
            (api.llapi_changelog_set_xflags)(reader.handle, EXTRA_FLAGS)
        })?;
        Ok(reader)
    }

    /// The next record, or `None` at the end of the records (only without `follow`).
    pub fn recv(&mut self) -> Result<Option<ChangelogRecord>> {
        let mut rec: *mut sys::changelog_rec = std::ptr::null_mut();
        // SAFETY: `self.handle` is a live changelog handle; `rec` is a writable pointer slot.
        let rc = unsafe { (self.api.llapi_changelog_recv)(self.handle, &mut rec) };
        if rc == 1 {
            return Ok(None);
        }
        check("llapi_changelog_recv", rc)?;
        if rec.is_null() {
            // 2.16 returns 0 with no record when it cannot allocate the copy.
            return Err(Error::call_failed("llapi_changelog_recv", libc::ENOMEM));
        }
        let base = rec.cast::<u8>().cast_const();
        let decoded = copy_record(|len| {
            // SAFETY: the library's record buffer holds at least the whole record
            // (changelog_rec_size + cr_namelen bytes, at most CR_MAXSIZE), and `copy_record`
            // only asks for prefixes of that length, each computed from bytes already read.
            unsafe { std::slice::from_raw_parts(base, len) }
        });
        // SAFETY: `rec` came from llapi_changelog_recv and is freed exactly once, here, after
        // its bytes were copied; the library NULLs the pointer.
        unsafe { (self.api.llapi_changelog_free)(&mut rec) };
        decoded.map(Some).map_err(|source| Error::Decode {
            call: "llapi_changelog_recv",
            source,
        })
    }

    /// The changelog device fd, for `poll()` (POLLIN: records queued).
    pub fn fd(&self) -> Result<RawFd> {
        // SAFETY: `self.handle` is a live changelog handle.
        check("llapi_changelog_get_fd", unsafe {
            (self.api.llapi_changelog_get_fd)(self.handle)
        })
    }

    /// Whether already-read records wait in the library's buffer: `poll()` does not report
    /// them, so drain with [`Self::recv`] while this is true. False on libraries older than
    /// 2.13, which lack the call.
    pub fn in_buf(&self) -> bool {
        match self.api.llapi_changelog_in_buf {
            // SAFETY: `self.handle` is a live changelog handle.
            Some(f) => (unsafe { f(self.handle) }) == 1,
            None => false,
        }
    }
}

impl Drop for ChangelogReader {
    fn drop(&mut self) {
        // SAFETY: `self.handle` came from llapi_changelog_start and is released exactly once.
        let rc = unsafe { (self.api.llapi_changelog_fini)(&mut self.handle) };
        if rc < 0 {
            let e = Error::call_failed("llapi_changelog_fini", -rc);
            tracing::warn!(error = %e, "closing a changelog reader failed");
        }
    }
}

/// Copies a record out of memory the library owns: `view(n)` returns its first `n` bytes.
/// Asks for the fixed header first, then the extra-flags word, then the whole record, never
/// more than the record's own length (and never more than `CR_MAXSIZE`).
fn copy_record<'a>(
    view: impl Fn(usize) -> &'a [u8],
) -> std::result::Result<ChangelogRecord, DecodeError> {
    let mut len = crate::wire::CHANGELOG_REC_LEN;
    loop {
        match changelog_layout(view(len)) {
            Ok(layout) => return decode_changelog(view(layout.total_len())).map(|(rec, _)| rec),
            Err(DecodeError::Truncated { need, .. }) if need > len && need <= sys::CR_MAXSIZE => {
                len = need;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Lets user `user` (`"clN"`) of changelog `mdt` purge records up to and including `endrec`
/// (0 = every current record).
pub fn changelog_clear(mdt: &str, user: &str, endrec: u64) -> Result<()> {
    let api = api()?;
    let mdt_c = c_bytes("llapi_changelog_clear", mdt.as_bytes())?;
    let user_c = c_bytes("llapi_changelog_clear", user.as_bytes())?;
    let end = c_longlong::try_from(endrec)
        .map_err(|_| Error::call_failed("llapi_changelog_clear", libc::EINVAL))?;
    // SAFETY: both strings are NUL-terminated; `end` is a plain integer.
    let rc: c_int = unsafe { (api.llapi_changelog_clear)(mdt_c.as_ptr(), user_c.as_ptr(), end) };
    check("llapi_changelog_clear", rc)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changelog::{Nid, RecordType, RenameExt};
    use crate::wire::encode_changelog;
    use crate::Fid;
    use std::cell::RefCell;

    #[test]
    fn copies_only_within_the_record() {
        let rec = ChangelogRecord {
            index: 42,
            rtype: RecordType::Rename,
            rename: Some(RenameExt {
                sfid: Fid::new(0x200000401, 2, 0),
                spfid: Fid::new(0x200000007, 1, 0),
                old_name: b"old".to_vec(),
            }),
            jobid: Some("mv.1".into()),
            uid_gid: Some((0, 0)),
            nid: Some(Nid::Nid4(7)),
            xattr: Some("user.a".into()),
            name: b"new".to_vec(),
            ..Default::default()
        };
        let bytes = encode_changelog(&rec).unwrap();
        let asked = RefCell::new(Vec::new());
        let got = copy_record(|n| {
            asked.borrow_mut().push(n);
            assert!(n <= bytes.len(), "asked for {n} of {}", bytes.len());
            &bytes[..n]
        })
        .unwrap();
        assert_eq!(got.index, 42);
        assert_eq!(got.renamed().unwrap().old_name, b"old");
        assert_eq!(asked.into_inner(), [64, 136, bytes.len(), bytes.len()]);
    }

    #[test]
    fn a_record_claiming_more_than_cr_maxsize_is_refused() {
        let mut bytes = encode_changelog(&ChangelogRecord {
            rtype: RecordType::Create,
            ..Default::default()
        })
        .unwrap();
        bytes[0..2].copy_from_slice(&2000u16.to_le_bytes());
        let e = copy_record(|n| {
            assert!(n <= bytes.len());
            &bytes[..n]
        })
        .unwrap_err();
        assert!(
            matches!(e, DecodeError::Truncated { need: 2064, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn start_flags_follow_lfs() {
        assert_eq!(start_flags(false, false), 0x0C);
        assert_eq!(start_flags(true, false), 0x0D);
        assert_eq!(start_flags(true, true), 0x1D);
        assert_eq!(EXTRA_FLAGS, 0x0F);
    }
}
