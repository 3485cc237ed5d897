//! Client side of the control protocol: what the `llapi_*` exports and the CLI do, in Rust.
//! Errors are positive errno values (the exports negate them).

use crate::consts::*;
use crate::fid::Fid;
use crate::mounts;
use crate::proto::{self, call, call_as, Request};
use crate::record::Rec;
use std::io::{BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

pub type Res<T> = Result<T, i32>;

/// The mount holding `path` (-ENODEV-style error when it is not on a simulated mount).
pub fn mount_for_path(path: &Path) -> Res<PathBuf> {
    mounts::mount_of_path(path).ok_or(libc::ENODEV)
}

/// `path` relative to its mount, without following a final symlink.
pub fn rel_in_mount(path: &Path) -> Res<(PathBuf, String)> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|_| libc::ENOENT)?
            .join(path)
    };
    let (dir, name) = match (abs.parent(), abs.file_name()) {
        (Some(d), Some(n)) if n != ".." => (
            d.canonicalize().map_err(|_| libc::ENOENT)?,
            Some(n.to_os_string()),
        ),
        _ => (abs.canonicalize().map_err(|_| libc::ENOENT)?, None),
    };
    let full = match name {
        Some(n) => dir.join(n),
        None => dir.clone(),
    };
    // The mount root itself (or a directory under it) may be the path: look from the path
    // unless it is a symlink, whose target must not be followed.
    let is_link = std::fs::symlink_metadata(&full)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(true);
    let mount = if is_link {
        mount_for_path(&dir)?
    } else {
        mount_for_path(&full)?
    };
    let rel = full.strip_prefix(&mount).map_err(|_| libc::EINVAL)?;
    Ok((
        mount,
        String::from_utf8_lossy(rel.as_os_str().as_bytes()).into_owned(),
    ))
}

pub fn path2fid(path: &Path) -> Res<Fid> {
    std::fs::symlink_metadata(path).map_err(|e| e.raw_os_error().unwrap_or(libc::ENOENT))?;
    let (mount, rel) = rel_in_mount(path)?;
    call_as(&mount, &Request::Path2Fid { path: rel })
}

/// The FID of an open descriptor (through its path in /proc/self/fd).
pub fn fd2fid(fd: i32) -> Res<(PathBuf, Fid)> {
    let p = std::fs::read_link(format!("/proc/self/fd/{fd}")).map_err(|_| libc::EBADF)?;
    let mount = mount_for_path(&p)?;
    if let Some(f) = crate::mds::watch::get_fid_xattr(&p) {
        return Ok((mount, f));
    }
    Ok((mount, path2fid(&p)?))
}

/// A device argument (mount path, fsname or MDT name) to its mount.
pub fn device_mount(dev: &str) -> Res<(PathBuf, Option<u32>)> {
    mounts::resolve_device(dev).ok_or(libc::ENODEV)
}

pub fn fid2path(mount: &Path, fid: &Fid, linkno: u32) -> Res<(String, u32)> {
    let r: proto::Fid2PathReply = call_as(mount, &Request::Fid2Path { fid: *fid, linkno })?;
    Ok((r.path, r.linkno))
}

pub fn info(mount: &Path) -> Res<proto::MountInfo> {
    call_as(mount, &Request::Info)
}

pub fn hsm_state(mount: &Path, fid: &Fid) -> Res<proto::HsmState> {
    call_as(mount, &Request::HsmStateGet { fid: *fid })
}

pub fn hsm_state_set(mount: &Path, fid: &Fid, set: u64, clear: u64, archive_id: u32) -> Res<()> {
    call(
        mount,
        &Request::HsmStateSet {
            fid: *fid,
            set,
            clear,
            archive_id,
        },
    )
    .map(|_| ())
}

pub fn current_action(mount: &Path, fid: &Fid) -> Res<proto::CurrentAction> {
    call_as(mount, &Request::CurrentAction { fid: *fid })
}

pub fn hsm_request(
    mount: &Path,
    action: u32,
    archive_id: u32,
    flags: u64,
    items: Vec<(Fid, u64, u64)>,
    data: Vec<u8>,
) -> Res<()> {
    if 24 + 32 * items.len() + data.len() >= HUR_MAX_LEN {
        return Err(libc::E2BIG);
    }
    call(
        mount,
        &Request::HsmRequest {
            action,
            archive_id,
            flags,
            items,
            data,
        },
    )
    .map(|_| ())
}

pub fn data_version(mount: &Path, fid: &Fid) -> Res<u64> {
    call_as(mount, &Request::DataVersion { fid: *fid })
}

/// Resolves an MDT name ("fs-MDT0001") or a mount path to (mount, MDT index).
pub fn mdt_of(dev: &str) -> Res<(PathBuf, u32)> {
    let (m, idx) = device_mount(dev)?;
    let idx = idx.unwrap_or(0);
    let inf = info(&m)?;
    if idx >= inf.mdts {
        return Err(libc::ENODEV);
    }
    Ok((m, idx))
}

pub fn changelog_clear(dev: &str, user: &str, endrec: i64) -> Res<()> {
    if endrec < 0 {
        return Err(libc::EINVAL);
    }
    let (m, idx) = mdt_of(dev)?;
    let user = user.split('-').next().unwrap_or(user).to_string();
    call(
        &m,
        &Request::ChangelogClear {
            mdt: idx,
            user,
            endrec: endrec as u64,
        },
    )
    .map(|_| ())
}

pub fn changelog_register(dev: &str, name: Option<String>) -> Res<String> {
    let (m, idx) = mdt_of(dev)?;
    call_as(&m, &Request::ChangelogRegister { mdt: idx, name })
}

pub fn changelog_deregister(dev: &str, user: &str) -> Res<()> {
    let (m, idx) = mdt_of(dev)?;
    call(
        &m,
        &Request::ChangelogDeregister {
            mdt: idx,
            user: user.to_string(),
        },
    )
    .map(|_| ())
}

/// A changelog reader: a streaming connection to the daemon, records buffered client-side.
pub struct ChangelogStream {
    pub sock: BufReader<UnixStream>,
    pub want_jobid: bool,
    pub want_extra: bool,
    pub xflags: u64,
    /// CHANGELOG_FLAG_NID_BE: NIDs as `struct lnet_nid`, else converted to `lnet_nid_t`.
    pub nid_be: bool,
    pub at_end: bool,
}

impl ChangelogStream {
    pub fn start(dev: &str, flags: i32, startrec: i64) -> Res<ChangelogStream> {
        let (m, idx) = mdt_of(dev)?;
        let mut s = proto::connect(&m)?;
        proto::call_on(
            &mut s,
            &Request::ChangelogStart {
                mdt: idx,
                start: startrec.max(0) as u64,
                follow: flags & CHANGELOG_FLAG_FOLLOW != 0,
            },
        )?;
        Ok(ChangelogStream {
            sock: BufReader::with_capacity(64 * 1024, s),
            want_jobid: flags & CHANGELOG_FLAG_JOBID != 0,
            want_extra: flags & CHANGELOG_FLAG_EXTRA_FLAGS != 0,
            xflags: 0,
            nid_be: flags & CHANGELOG_FLAG_NID_BE != 0,
            at_end: false,
        })
    }

    /// Next record, trimmed to what the reader asked for; None at the end (non-follow).
    pub fn recv(&mut self) -> Res<Option<Rec>> {
        if self.at_end {
            return Ok(None);
        }
        let mut l = [0u8; 4];
        self.sock.read_exact(&mut l).map_err(|_| libc::ESHUTDOWN)?;
        let n = u32::from_le_bytes(l) as usize;
        if n == 0 {
            self.at_end = true;
            return Ok(None);
        }
        let mut b = vec![0u8; n];
        self.sock.read_exact(&mut b).map_err(|_| libc::ESHUTDOWN)?;
        let (r, _) = Rec::decode(&b).ok_or(libc::EPROTO)?;
        Ok(Some(r.trimmed(
            self.want_jobid,
            self.want_extra,
            self.xflags,
            self.nid_be,
        )))
    }

    pub fn in_buf(&self) -> bool {
        !self.sock.buffer().is_empty()
    }
}
