//! Mount-level calls: FID <-> path, open by FID, HSM state, requests, import, data version.

use crate::error::{check, Error, Result};
use crate::ffi::{aligned, api, c_bytes, c_path, path_from_bytes, until_nul};
use crate::fid::Fid;
use crate::hsm::{CurrentAction, HsmState, UserAction, UserRequest};
use crate::striping::Striping;
use crate::wire::{encode_hur, split_requests};
use libc::{c_int, c_longlong};
use lustre_sys::{self as sys, LustreApi};
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const PATH_MAX: usize = libc::PATH_MAX as usize;
/// fid2path buffers grow by PATH_MAX on ERANGE/EOVERFLOW (as lfs does) up to this size.
const FID2PATH_MAX_BUF: usize = 64 * PATH_MAX;
/// Upper bound on links enumerated for one FID (guards against a library that never stops).
const FID2PATH_MAX_LINKS: usize = 1 << 16;
/// Buffer for fsnames: `llapi_search_fsname` copies without a bound, so use far more than
/// `MAX_OBD_NAME + 1` (129) bytes.
const FSNAME_BUF: usize = 256;

/// Attributes of a file created by [`Mount::hsm_import`] (a released stub of an archived file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportAttrs {
    /// Size in bytes (the stub reports it; the data stays in the archive).
    pub size: u64,
    /// Full `st_mode` (file type bits included; a regular file if they are 0).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Access time, seconds.
    pub atime_sec: i64,
    /// Access time, nanoseconds.
    pub atime_nsec: u32,
    /// Modification time, seconds.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
}

/// A mounted Lustre file system (client mount point), the anchor of every path- and FID-based
/// call. Paths given to its methods may be absolute or relative to the mount root.
pub struct Mount {
    api: &'static LustreApi,
    root: PathBuf,
    root_c: CString,
    fsname: String,
    root_fd: OwnedFd,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("root", &self.root)
            .field("fsname", &self.fsname)
            .finish()
    }
}

impl Mount {
    /// Opens the Lustre file system that holds `path` (the mount point or any path inside it):
    /// finds its mount point (`llapi_search_mounts`) and fsname (`llapi_search_fsname`).
    pub fn open(path: &Path) -> Result<Mount> {
        let api = api()?;
        let abs = std::fs::canonicalize(path).map_err(|e| Error::Call {
            call: "realpath",
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        })?;
        let abs_c = c_path("llapi_search_mounts", &abs)?;
        if abs_c.as_bytes().len() >= PATH_MAX {
            return Err(Error::call_failed(
                "llapi_search_mounts",
                libc::ENAMETOOLONG,
            ));
        }
        let mut mntdir = vec![0u8; PATH_MAX + 1];
        // SAFETY: `abs_c` is NUL-terminated and shorter than PATH_MAX, `mntdir` holds PATH_MAX
        // + 1 writable bytes (the library strcpy's the path there, then the mount point, both
        // bounded by PATH_MAX); a NULL fsname is allowed.
        let rc = unsafe {
            (api.llapi_search_mounts)(
                abs_c.as_ptr(),
                0,
                mntdir.as_mut_ptr().cast(),
                std::ptr::null_mut(),
            )
        };
        check("llapi_search_mounts", rc)?;
        let root = path_from_bytes(until_nul(&mntdir));
        let root_c = c_path("llapi_search_fsname", &root)?;
        let mut fsname = vec![0u8; FSNAME_BUF];
        // SAFETY: `root_c` is NUL-terminated; `fsname` holds FSNAME_BUF (> MAX_OBD_NAME + 1)
        // writable bytes, more than any fsname the library copies.
        let rc = unsafe { (api.llapi_search_fsname)(root_c.as_ptr(), fsname.as_mut_ptr().cast()) };
        check("llapi_search_fsname", rc)?;
        let fsname = String::from_utf8_lossy(until_nul(&fsname)).into_owned();
        let root_fd = File::open(&root)
            .map(OwnedFd::from)
            .map_err(|e| Error::Call {
                call: "open",
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            })?;
        Ok(Mount {
            api,
            root,
            root_c,
            fsname,
            root_fd,
        })
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file system name (e.g. `lustre`).
    pub fn fsname(&self) -> &str {
        &self.fsname
    }

    /// The name of MDT `index` as changelog calls take it: `<fsname>-MDT<index as %04x>`.
    pub fn mdt_name(&self, index: u32) -> String {
        mdt_name(&self.fsname, index)
    }

    /// An fd on the mount root (for `*_at` style calls).
    pub fn root_fd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.root_fd.as_fd()
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root.join(path)
        }
    }

    /// Every path (hard link) of `fid`, relative to the mount root, in link-xattr order. The
    /// mount root itself is returned as an empty path. Paths are resolved now, not as of any
    /// changelog record. Errors: `ENOENT` (the file is gone), `EPERM`, `EINVAL`, ...
    pub fn fid2path(&self, fid: &Fid) -> Result<Vec<PathBuf>> {
        let fid_c = c_bytes("llapi_fid2path", fid.to_string().as_bytes())?;
        enumerate_links(|buf, linkno| {
            let mut recno: c_longlong = -1;
            let len = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
            // SAFETY: the strings are NUL-terminated, `buf` has `len` writable bytes, and
            // `recno`/`linkno` point to live integers for the duration of the call.
            unsafe {
                (self.api.llapi_fid2path)(
                    self.root_c.as_ptr(),
                    fid_c.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    len,
                    &mut recno,
                    linkno,
                )
            }
        })
    }

    /// The FID of a file (not following a final symlink).
    pub fn path2fid(&self, path: &Path) -> Result<Fid> {
        let c = c_path("llapi_path2fid", &self.resolve(path))?;
        let mut fid = sys::lu_fid::default();
        // SAFETY: `c` is NUL-terminated and `fid` is a live, writable lu_fid.
        check("llapi_path2fid", unsafe {
            (self.api.llapi_path2fid)(c.as_ptr(), &mut fid)
        })?;
        Ok(fid.into())
    }

    /// The FID of an open file.
    pub fn fd2fid(&self, fd: BorrowedFd<'_>) -> Result<Fid> {
        let mut fid = sys::lu_fid::default();
        // SAFETY: `fd` is a valid open descriptor for the call; `fid` is writable.
        check("llapi_fd2fid", unsafe {
            (self.api.llapi_fd2fid)(fd.as_raw_fd(), &mut fid)
        })?;
        Ok(fid.into())
    }

    /// Opens a file by FID with `open(2)` flags (add `O_CLOEXEC` as needed).
    pub fn open_by_fid(&self, fid: &Fid, flags: i32) -> Result<OwnedFd> {
        let raw: sys::lu_fid = (*fid).into();
        // SAFETY: `root_c` is NUL-terminated and `raw` a live lu_fid.
        let fd = check("llapi_open_by_fid", unsafe {
            (self.api.llapi_open_by_fid)(self.root_c.as_ptr(), &raw, flags)
        })?;
        // SAFETY: on success the library returns a new descriptor that nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// The index of the MDT holding `fid` (for RESTORE's `restore_mdt_index`).
    pub fn mdt_index(&self, fid: &Fid) -> Result<u32> {
        let raw: sys::lu_fid = (*fid).into();
        let mut index: c_int = -1;
        // SAFETY: the root fd is open for the life of `self`; `raw` and `index` are live.
        let rc = check("llapi_get_mdt_index_by_fid", unsafe {
            (self.api.llapi_get_mdt_index_by_fid)(self.root_fd.as_raw_fd(), &raw, &mut index)
        })?;
        let index = if index >= 0 { index } else { rc };
        u32::try_from(index)
            .map_err(|_| Error::call_failed("llapi_get_mdt_index_by_fid", libc::EINVAL))
    }

    /// `<fsname>-<client instance>` of this mount (`llapi_getname`).
    pub fn instance_name(&self) -> Result<String> {
        let mut buf = vec![0u8; FSNAME_BUF];
        // SAFETY: `buf` has `buf.len()` writable bytes and the length is passed along.
        check("llapi_getname", unsafe {
            (self.api.llapi_getname)(self.root_c.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
        })?;
        Ok(String::from_utf8_lossy(until_nul(&buf)).into_owned())
    }

    /// The HSM state of a file.
    pub fn hsm_state(&self, path: &Path) -> Result<HsmState> {
        let c = c_path("llapi_hsm_state_get", &self.resolve(path))?;
        let mut hus = sys::hsm_user_state::default();
        // SAFETY: `c` is NUL-terminated and `hus` is a full 32-byte hsm_user_state.
        check("llapi_hsm_state_get", unsafe {
            (self.api.llapi_hsm_state_get)(c.as_ptr(), &mut hus)
        })?;
        Ok(HsmState {
            states: hus.hus_states,
            archive_id: hus.hus_archive_id,
        })
    }

    /// Sets and clears `HS_*` flags; `archive_id` 0 leaves the id unchanged (a non-zero id is
    /// only stored when the resulting flags include `HS_EXISTS`).
    pub fn hsm_state_set(&self, path: &Path, set: u64, clear: u64, archive_id: u32) -> Result<()> {
        let c = c_path("llapi_hsm_state_set", &self.resolve(path))?;
        // SAFETY: `c` is NUL-terminated; the other arguments are plain integers.
        check("llapi_hsm_state_set", unsafe {
            (self.api.llapi_hsm_state_set)(c.as_ptr(), set, clear, archive_id)
        })?;
        Ok(())
    }

    /// The file's current HSM request (state, `HUA_*` action, progress).
    pub fn hsm_current_action(&self, path: &Path) -> Result<CurrentAction> {
        let c = c_path("llapi_hsm_current_action", &self.resolve(path))?;
        let mut hca = sys::hsm_current_action::default();
        // SAFETY: `c` is NUL-terminated and `hca` is a writable hsm_current_action.
        check("llapi_hsm_current_action", unsafe {
            (self.api.llapi_hsm_current_action)(c.as_ptr(), &mut hca)
        })?;
        Ok(hca.into())
    }

    /// Sends one HSM request over `fids` (whole-file extents), split into as many
    /// `llapi_hsm_request` calls as the 1706-byte kernel limit needs, each carrying `data`.
    /// Stops at the first failing batch: the batches before it were submitted.
    pub fn hsm_request(
        &self,
        action: UserAction,
        archive_id: u32,
        flags: u64,
        fids: &[Fid],
        data: &[u8],
    ) -> Result<()> {
        let reqs = split_requests(action, archive_id, flags, fids, data).map_err(|source| {
            Error::Encode {
                call: "llapi_hsm_request",
                source,
            }
        })?;
        submit_requests(&reqs, |buf| {
            // SAFETY: `root_c` is NUL-terminated and `buf` holds one complete encoded request
            // of `hur_len` bytes, 8-byte aligned, alive for the call.
            unsafe {
                (self.api.llapi_hsm_request)(
                    self.root_c.as_ptr(),
                    buf.as_ptr().cast::<sys::hsm_user_request>(),
                )
            }
        })
    }

    /// Creates `dst` as a released (archived, not resident) file with the given attributes and
    /// archive id, and returns its FID (`llapi_hsm_import`, default striping).
    pub fn hsm_import(&self, dst: &Path, archive_id: u32, attrs: &ImportAttrs) -> Result<Fid> {
        self.import_with(dst, archive_id, attrs, None)
    }

    /// [`Mount::hsm_import`] with the stub created with `striping` (its stripe count, size and
    /// pool, which a later RESTORE's volatile file takes too).
    pub fn hsm_import_striped(
        &self,
        dst: &Path,
        archive_id: u32,
        attrs: &ImportAttrs,
        striping: &Striping,
    ) -> Result<Fid> {
        self.import_with(dst, archive_id, attrs, Some(striping))
    }

    fn import_with(
        &self,
        dst: &Path,
        archive_id: u32,
        attrs: &ImportAttrs,
        striping: Option<&Striping>,
    ) -> Result<Fid> {
        const CALL: &str = "llapi_hsm_import";
        let c = c_path(CALL, &self.resolve(dst))?;
        let archive = c_int::try_from(archive_id).map_err(|_| Error::InvalidArgument {
            call: CALL,
            reason: format!("archive id {archive_id} does not fit the C int argument"),
        })?;
        let st =
            import_stat(attrs).map_err(|reason| Error::InvalidArgument { call: CALL, reason })?;
        let mut fid = sys::lu_fid::default();
        // Size 0, count 0 and a NULL pool are the file-system defaults (what lhsmtool_posix
        // passes); offset -1 lets the MDS choose the OSTs, pattern 0 is RAID0.
        let (size, count) = striping.map_or((0, 0), |s| {
            (
                s.stripe_size(),
                c_int::try_from(s.stripe_count()).unwrap_or(0),
            )
        });
        let mut pool = match striping.and_then(Striping::pool) {
            Some(p) => Some(c_bytes(CALL, p.as_bytes())?),
            None => None,
        };
        let pool_ptr = pool
            .as_mut()
            .map_or(std::ptr::null_mut(), |p| p.as_ptr().cast_mut());
        // SAFETY: `c` is NUL-terminated, `st` is a fully initialised struct stat, the pool
        // name is NULL or a NUL-terminated string the library only reads (the header lacks
        // `const`), and `fid` is writable.
        check(CALL, unsafe {
            (self.api.llapi_hsm_import)(
                c.as_ptr(),
                archive,
                &st,
                size,
                -1,
                count,
                0,
                pool_ptr,
                &mut fid,
            )
        })?;
        Ok(fid.into())
    }

    /// The data version of an open file (`LL_DV_RD_FLUSH` / `LL_DV_WR_FLUSH` in `flags` to
    /// flush client caches first).
    pub fn data_version(&self, fd: BorrowedFd<'_>, flags: u64) -> Result<u64> {
        let mut dv = 0u64;
        // SAFETY: `fd` is open for the call and `dv` is writable.
        check("llapi_get_data_version", unsafe {
            (self.api.llapi_get_data_version)(fd.as_raw_fd(), &mut dv, flags)
        })?;
        Ok(dv)
    }
}

/// `<fsname>-MDT<index as %04x>`.
pub fn mdt_name(fsname: &str, index: u32) -> String {
    format!("{fsname}-MDT{index:04x}")
}

/// Drives `llapi_fid2path`'s link enumeration (lustre-abi.md §5.6): `call(buf, &mut linkno)`
/// returns the C result. Starts at link 0 and continues while the library advances `linkno`;
/// grows the buffer by PATH_MAX on ERANGE/EOVERFLOW.
fn enumerate_links(mut call: impl FnMut(&mut [u8], &mut c_int) -> c_int) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    let mut buf = vec![0u8; PATH_MAX];
    let mut linkno: c_int = 0;
    loop {
        let passed = linkno;
        let rc = loop {
            let mut next = passed;
            buf.fill(0);
            let rc = call(&mut buf, &mut next);
            let too_small = rc == -libc::ERANGE || rc == -libc::EOVERFLOW;
            if too_small && buf.len() < FID2PATH_MAX_BUF {
                buf.resize(buf.len() + PATH_MAX, 0);
                continue;
            }
            linkno = next;
            break rc;
        };
        check("llapi_fid2path", rc)?;
        paths.push(relative_path(until_nul(&buf)));
        if linkno <= passed || paths.len() >= FID2PATH_MAX_LINKS {
            return Ok(paths);
        }
    }
}

/// fid2path returns paths without a leading '/', and "/" for the root itself.
fn relative_path(b: &[u8]) -> PathBuf {
    let mut b = b;
    while let [b'/', rest @ ..] = b {
        b = rest;
    }
    path_from_bytes(b)
}

/// Submits encoded requests one by one through `submit`, stopping at the first failure.
fn submit_requests(reqs: &[UserRequest], mut submit: impl FnMut(&[u64]) -> c_int) -> Result<()> {
    for req in reqs {
        let bytes = encode_hur(req).map_err(|source| Error::Encode {
            call: "llapi_hsm_request",
            source,
        })?;
        check("llapi_hsm_request", submit(&aligned(&bytes)))?;
    }
    Ok(())
}

fn import_stat(a: &ImportAttrs) -> std::result::Result<libc::stat, String> {
    // SAFETY: struct stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    st.st_size = a
        .size
        .try_into()
        .map_err(|_| format!("size {} does not fit off_t", a.size))?;
    st.st_mode = if a.mode & libc::S_IFMT == 0 {
        a.mode | libc::S_IFREG
    } else {
        a.mode
    };
    st.st_uid = a.uid;
    st.st_gid = a.gid;
    st.st_atime = a.atime_sec;
    st.st_atime_nsec = i64::from(a.atime_nsec);
    st.st_mtime = a.mtime_sec;
    st.st_mtime_nsec = i64::from(a.mtime_nsec);
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_hur, HUR_MAX_LEN};

    fn write(buf: &mut [u8], s: &str) -> c_int {
        if buf.len() <= s.len() {
            return -libc::ERANGE;
        }
        buf[..s.len()].copy_from_slice(s.as_bytes());
        0
    }

    #[test]
    fn enumerates_every_link_in_order() {
        let links = ["dir/a", "dir/b", "other/c"];
        let mut calls = Vec::new();
        let paths = enumerate_links(|buf, linkno| {
            calls.push(*linkno);
            let n = *linkno as usize;
            let rc = write(buf, links[n]);
            if n + 1 < links.len() {
                *linkno += 1;
            }
            rc
        })
        .unwrap();
        assert_eq!(paths, links.map(PathBuf::from).to_vec());
        assert_eq!(calls, [0, 1, 2]);
    }

    #[test]
    fn single_link_and_root() {
        let paths = enumerate_links(|buf, _| write(buf, "/")).unwrap();
        assert_eq!(paths, [PathBuf::new()]);
        let paths = enumerate_links(|buf, _| write(buf, "a/b")).unwrap();
        assert_eq!(paths, [PathBuf::from("a/b")]);
    }

    #[test]
    fn grows_the_buffer_on_erange_and_eoverflow() {
        let long = "d/".repeat(3000) + "f"; // 6001 bytes: needs two growth steps
        let mut sizes = Vec::new();
        let mut overflow_once = true;
        let paths = enumerate_links(|buf, linkno| {
            sizes.push(buf.len());
            if *linkno == 0 {
                let rc = write(buf, &long);
                if rc == 0 {
                    *linkno = 1;
                }
                return rc;
            }
            if overflow_once {
                overflow_once = false;
                return -libc::EOVERFLOW;
            }
            write(buf, "short")
        })
        .unwrap();
        assert_eq!(paths, [PathBuf::from(&long), PathBuf::from("short")]);
        assert_eq!(sizes, [4096, 8192, 8192, 12288]);
    }

    #[test]
    fn gives_up_growing_at_the_cap_and_reports_errors() {
        let mut calls = 0;
        let e = enumerate_links(|_, _| {
            calls += 1;
            -libc::ERANGE
        })
        .unwrap_err();
        assert_eq!(e.errno(), Some(libc::ERANGE));
        assert_eq!(calls, FID2PATH_MAX_BUF / PATH_MAX);
        let e = enumerate_links(|_, _| -libc::ENOENT).unwrap_err();
        assert_eq!(
            e.to_string(),
            "llapi_fid2path: No such file or directory (errno 2)"
        );
    }

    #[test]
    fn a_library_that_always_advances_is_bounded() {
        let paths = enumerate_links(|buf, linkno| {
            *linkno += 1;
            write(buf, "x")
        })
        .unwrap();
        assert_eq!(paths.len(), FID2PATH_MAX_LINKS);
    }

    #[test]
    fn requests_are_submitted_in_batches_within_the_limit() {
        let fids: Vec<Fid> = (1..=120).map(|i| Fid::new(0x200000401, i, 0)).collect();
        let reqs = split_requests(UserAction::Archive, 1, 0, &fids, b"job=7").unwrap();
        let mut seen = Vec::new();
        submit_requests(&reqs, |buf| {
            // SAFETY: viewing the initialised words of a live Vec<u64> as bytes.
            let bytes =
                unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), buf.len() * 8) };
            let req = decode_hur(bytes).unwrap();
            assert!(crate::wire::hur_len(bytes).unwrap() <= HUR_MAX_LEN);
            assert_eq!(req.data, b"job=7");
            seen.extend(req.items.iter().map(|i| i.0));
            0
        })
        .unwrap();
        assert_eq!(seen, fids);

        let mut calls = 0;
        let e = submit_requests(&reqs, |_| {
            calls += 1;
            if calls == 2 {
                -libc::EPERM
            } else {
                0
            }
        })
        .unwrap_err();
        assert_eq!(calls, 2);
        assert_eq!(
            e.to_string(),
            "llapi_hsm_request: Operation not permitted (errno 1)"
        );
    }

    #[test]
    fn mdt_names_use_four_hex_digits() {
        assert_eq!(mdt_name("lustre", 0), "lustre-MDT0000");
        assert_eq!(mdt_name("fs", 0x1a), "fs-MDT001a");
    }

    #[test]
    fn import_stat_fills_the_fields_the_library_reads() {
        let st = import_stat(&ImportAttrs {
            size: 12345,
            mode: 0o640,
            uid: 1000,
            gid: 100,
            atime_sec: 1_700_000_000,
            atime_nsec: 5,
            mtime_sec: 1_700_000_001,
            mtime_nsec: 6,
        })
        .unwrap();
        assert_eq!(st.st_size, 12345);
        assert_eq!(st.st_mode, libc::S_IFREG | 0o640);
        assert_eq!((st.st_uid, st.st_gid), (1000, 100));
        assert_eq!((st.st_atime, st.st_atime_nsec), (1_700_000_000, 5));
        assert_eq!((st.st_mtime, st.st_mtime_nsec), (1_700_000_001, 6));
        let e = import_stat(&ImportAttrs {
            size: u64::MAX,
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
    }
}
