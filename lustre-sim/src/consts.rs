//! The ABI constants the simulator uses, taken from `lustre-sys` (values of lustre-abi.md §2)
//! in the types the simulator's code works in; and the few of its own.

use lustre_sys as sys;

pub use sys::{
    CLF_RENAME_LAST, CLF_RENAME_LAST_EXISTS, CLF_UNLINK_HSM_EXISTS, CLF_UNLINK_LAST, HAL_VERSION,
    HMT_ACTION_LIST, HPS_DONE, HPS_NONE, HPS_RUNNING, HPS_WAITING, HP_FLAG_COMPLETED,
    HP_FLAG_RETRY, HSMA_ARCHIVE, HSMA_CANCEL, HSMA_NONE, HSMA_REMOVE, HSMA_RESTORE, HSM_FLAGS_MASK,
    HSM_FORCE_ACTION, HSM_USER_MASK, HSS_ARCHIVE_ID, HSS_CLEARMASK, HSS_SETMASK, HS_ARCHIVED,
    HS_DIRTY, HS_EXISTS, HS_LOST, HS_NOARCHIVE, HS_NORELEASE, HS_RELEASED, HUA_ARCHIVE, HUA_CANCEL,
    HUA_NONE, HUA_RELEASE, HUA_REMOVE, HUA_RESTORE, KUC_MAGIC, KUC_MSG_SHUTDOWN,
    KUC_TRANSPORT_GENERIC, KUC_TRANSPORT_HSM,
};

/// Short names used by `lfs changelog`, indexed by record type.
pub const CL_NAMES: [&str; 25] = sys::CHANGELOG_TYPE_NAMES;

// Record types, as the `cr_type` field (u32) holds them.
pub const CL_MARK: u32 = sys::CL_MARK as u32;
pub const CL_CREATE: u32 = sys::CL_CREATE as u32;
pub const CL_MKDIR: u32 = sys::CL_MKDIR as u32;
pub const CL_HARDLINK: u32 = sys::CL_HARDLINK as u32;
pub const CL_SOFTLINK: u32 = sys::CL_SOFTLINK as u32;
pub const CL_MKNOD: u32 = sys::CL_MKNOD as u32;
pub const CL_UNLINK: u32 = sys::CL_UNLINK as u32;
pub const CL_RMDIR: u32 = sys::CL_RMDIR as u32;
pub const CL_RENAME: u32 = sys::CL_RENAME as u32;
pub const CL_CLOSE: u32 = sys::CL_CLOSE as u32;
pub const CL_LAYOUT: u32 = sys::CL_LAYOUT as u32;
pub const CL_TRUNC: u32 = sys::CL_TRUNC as u32;
pub const CL_SETATTR: u32 = sys::CL_SETATTR as u32;
pub const CL_SETXATTR: u32 = sys::CL_SETXATTR as u32;
pub const CL_HSM: u32 = sys::CL_HSM as u32;
pub const CL_MTIME: u32 = sys::CL_MTIME as u32;

// `cr_flags` bits, as the record's u16 holds them.
pub const CLF_VERSION: u16 = sys::CLF_VERSION as u16;
pub const CLF_RENAME: u16 = sys::CLF_RENAME as u16;
pub const CLF_JOBID: u16 = sys::CLF_JOBID as u16;
pub const CLF_EXTRA_FLAGS: u16 = sys::CLF_EXTRA_FLAGS as u16;
pub const CLF_FLAGMASK: u16 = sys::CLF_FLAGMASK as u16;

// `cr_extra_flags` bits (u64 on the wire).
pub const CLFE_UIDGID: u64 = sys::CLFE_UIDGID as u64;
pub const CLFE_NID: u64 = sys::CLFE_NID as u64;
pub const CLFE_OPEN: u64 = sys::CLFE_OPEN as u64;
pub const CLFE_XATTR: u64 = sys::CLFE_XATTR as u64;
pub const CLFE_NID_BE: u64 = sys::CLFE_NID_BE as u64;

// Reader flags, as `llapi_changelog_start` takes them (an int).
pub const CHANGELOG_FLAG_FOLLOW: i32 = sys::CHANGELOG_FLAG_FOLLOW as i32;
pub const CHANGELOG_FLAG_JOBID: i32 = sys::CHANGELOG_FLAG_JOBID as i32;
pub const CHANGELOG_FLAG_EXTRA_FLAGS: i32 = sys::CHANGELOG_FLAG_EXTRA_FLAGS as i32;
/// 2.16: the reader takes NIDs as `struct lnet_nid` (big endian) rather than `lnet_nid_t`.
pub const CHANGELOG_FLAG_NID_BE: i32 = sys::CHANGELOG_FLAG_NID_BE as i32;

/// Open flags a CL_CLOSE record carries in its low bits (`mdd_close` stores the open's
/// `mod_flags`): MDS_FMODE_WRITE for a write open, and the open(2) flags the MDS saw. Only the
/// two that inotify can reveal are used: O_CREAT (the open created the file) and O_TRUNC.
pub const MDS_FMODE_WRITE: u16 = sys::MDS_FMODE_WRITE as u16;
pub const MDS_OPEN_CREAT: u16 = sys::MDS_OPEN_CREAT as u16;
pub const MDS_OPEN_TRUNC: u16 = sys::MDS_OPEN_TRUNC as u16;

/// `lustre_user.h` `enum la_valid`: the low 12 bits of `la_valid` are what
/// `mdd_attr_set_changelog` stores as the flags of TRUNC / SATTR / MTIME records.
pub const LA_ATIME: u16 = 0x1;
pub const LA_MTIME: u16 = 0x2;
pub const LA_CTIME: u16 = 0x4;
pub const LA_SIZE: u16 = 0x8;
pub const LA_MODE: u16 = 0x10;
pub const LA_UID: u16 = 0x20;
pub const LA_GID: u16 = 0x40;

// HSM events, as the 3-bit field of a CL_HSM record's flags.
pub const HE_ARCHIVE: u16 = sys::HE_ARCHIVE as u16;
pub const HE_RESTORE: u16 = sys::HE_RESTORE as u16;
pub const HE_CANCEL: u16 = sys::HE_CANCEL as u16;
pub const HE_RELEASE: u16 = sys::HE_RELEASE as u16;
pub const HE_REMOVE: u16 = sys::HE_REMOVE as u16;
pub const HE_STATE: u16 = sys::HE_STATE as u16;

/// Largest user request the kernel accepts is one byte below this (`MDS_MAXREQSIZE / 3`).
pub const HUR_MAX_LEN: usize = (sys::MDS_MAXREQSIZE / 3) as usize;
/// The simulator caps one KUC message at PIPE_BUF so each write() is atomic.
pub const KUC_MAX_MSG: usize = 4096;

/// LNet NID of `0@lo` as an 8-byte `lnet_nid_t` (LOLND = 9 in the network's high half).
pub const NID_LO: u64 = 0x0009_0000_0000_0000;
/// LOLND, the loopback LND type of `struct lnet_nid`.
pub const LNET_LND_LO: u8 = 9;

/// xattr holding an entry's FID on the backing file system.
pub const FID_XATTR: &str = "trusted.lsim.fid";
/// Prefix of the simulator's own xattrs; never reported as SETXATTR.
pub const SIM_XATTR_PREFIX: &str = "trusted.lsim.";

pub fn hsm_action_name(hsma: u32) -> &'static str {
    match hsma {
        HSMA_NONE => "NOOP",
        HSMA_ARCHIVE => "ARCHIVE",
        HSMA_RESTORE => "RESTORE",
        HSMA_REMOVE => "REMOVE",
        HSMA_CANCEL => "CANCEL",
        _ => "UNKNOWN",
    }
}

pub fn hsm_user_action_name(hua: u32) -> &'static str {
    match hua {
        HUA_NONE => "NOOP",
        HUA_ARCHIVE => "ARCHIVE",
        HUA_RESTORE => "RESTORE",
        HUA_RELEASE => "RELEASE",
        HUA_REMOVE => "REMOVE",
        HUA_CANCEL => "CANCEL",
        _ => "UNKNOWN",
    }
}

pub fn hsm_state_names(states: u32) -> Vec<&'static str> {
    // The order `lfs hsm_state` prints them in: user-settable hints first, then
    // system flags with "released" ahead of "exists" ("released exists archived").
    let names = [
        (HS_NORELEASE, "never_release"),
        (HS_NOARCHIVE, "never_archive"),
        (HS_RELEASED, "released"),
        (HS_EXISTS, "exists"),
        (HS_DIRTY, "dirty"),
        (HS_ARCHIVED, "archived"),
        (HS_LOST, "lost_from_hsm"),
    ];
    names
        .iter()
        .filter(|(b, _)| states & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

#[cfg(test)]
mod state_name_tests {
    use super::*;

    #[test]
    fn hsm_state_names_follow_lfs_order() {
        let released = HS_EXISTS | HS_RELEASED | HS_ARCHIVED;
        assert_eq!(
            hsm_state_names(released),
            ["released", "exists", "archived"]
        );
        assert_eq!(
            hsm_state_names(HS_EXISTS | HS_DIRTY | HS_ARCHIVED | HS_NORELEASE),
            ["never_release", "exists", "dirty", "archived"]
        );
        assert!(hsm_state_names(0).is_empty());
    }
}
