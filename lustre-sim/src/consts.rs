//! Numeric ABI constants the simulator needs (values from lustre-abi.md §2).

pub const CL_MARK: u32 = 0;
pub const CL_CREATE: u32 = 1;
pub const CL_MKDIR: u32 = 2;
pub const CL_HARDLINK: u32 = 3;
pub const CL_SOFTLINK: u32 = 4;
pub const CL_MKNOD: u32 = 5;
pub const CL_UNLINK: u32 = 6;
pub const CL_RMDIR: u32 = 7;
pub const CL_RENAME: u32 = 8;
pub const CL_CLOSE: u32 = 11;
pub const CL_LAYOUT: u32 = 12;
pub const CL_TRUNC: u32 = 13;
pub const CL_SETATTR: u32 = 14;
pub const CL_SETXATTR: u32 = 15;
pub const CL_HSM: u32 = 16;
pub const CL_MTIME: u32 = 17;

/// Short names used by `lfs changelog`, indexed by record type.
pub const CL_NAMES: [&str; 25] = [
    "MARK", "CREAT", "MKDIR", "HLINK", "SLINK", "MKNOD", "UNLNK", "RMDIR", "RENME", "RNMTO",
    "OPEN", "CLOSE", "LYOUT", "TRUNC", "SATTR", "XATTR", "HSM", "MTIME", "CTIME", "ATIME", "MIGRT",
    "FLRW", "RESYNC", "GXATR", "NOPEN",
];

pub const CLF_VERSION: u16 = 0x1000;
pub const CLF_RENAME: u16 = 0x2000;
pub const CLF_JOBID: u16 = 0x4000;
pub const CLF_EXTRA_FLAGS: u16 = 0x8000;
pub const CLF_FLAGMASK: u16 = 0x0FFF;
pub const CLF_UNLINK_LAST: u16 = 0x1;
pub const CLF_UNLINK_HSM_EXISTS: u16 = 0x2;
pub const CLF_RENAME_LAST: u16 = 0x1;
pub const CLF_RENAME_LAST_EXISTS: u16 = 0x2;

pub const CLFE_UIDGID: u64 = 0x1;
pub const CLFE_NID: u64 = 0x2;
pub const CLFE_OPEN: u64 = 0x4;
pub const CLFE_XATTR: u64 = 0x8;
pub const CLFE_NID_BE: u64 = 0x10;

pub const CHANGELOG_FLAG_FOLLOW: i32 = 0x1;
pub const CHANGELOG_FLAG_JOBID: i32 = 0x4;
pub const CHANGELOG_FLAG_EXTRA_FLAGS: i32 = 0x8;
/// 2.16: the reader takes NIDs as `struct lnet_nid` (big endian) rather than `lnet_nid_t`.
pub const CHANGELOG_FLAG_NID_BE: i32 = 0x10;

/// Open flags a CL_CLOSE record carries in its low bits (`mdd_close` stores the open's
/// `mod_flags`): MDS_FMODE_WRITE for a write open, and the open(2) flags the MDS saw. Only the
/// two that inotify can reveal are used: O_CREAT (the open created the file) and O_TRUNC.
pub const MDS_FMODE_WRITE: u16 = 0x2;
pub const MDS_OPEN_CREAT: u16 = 0o100;
pub const MDS_OPEN_TRUNC: u16 = 0o1000;

/// `lustre_user.h` `enum la_valid`: the low 12 bits of `la_valid` are what
/// `mdd_attr_set_changelog` stores as the flags of TRUNC / SATTR / MTIME records.
pub const LA_ATIME: u16 = 0x1;
pub const LA_MTIME: u16 = 0x2;
pub const LA_CTIME: u16 = 0x4;
pub const LA_SIZE: u16 = 0x8;
pub const LA_MODE: u16 = 0x10;
pub const LA_UID: u16 = 0x20;
pub const LA_GID: u16 = 0x40;

pub const HE_ARCHIVE: u16 = 0;
pub const HE_RESTORE: u16 = 1;
pub const HE_CANCEL: u16 = 2;
pub const HE_RELEASE: u16 = 3;
pub const HE_REMOVE: u16 = 4;
pub const HE_STATE: u16 = 5;

pub const HS_EXISTS: u32 = 0x1;
pub const HS_DIRTY: u32 = 0x2;
pub const HS_RELEASED: u32 = 0x4;
pub const HS_ARCHIVED: u32 = 0x8;
pub const HS_NORELEASE: u32 = 0x10;
pub const HS_NOARCHIVE: u32 = 0x20;
pub const HS_LOST: u32 = 0x40;
pub const HSM_USER_MASK: u64 = 0x32;
pub const HSM_FLAGS_MASK: u64 = 0x1FF;

pub const HSMA_NONE: u32 = 10;
pub const HSMA_ARCHIVE: u32 = 20;
pub const HSMA_RESTORE: u32 = 21;
pub const HSMA_REMOVE: u32 = 22;
pub const HSMA_CANCEL: u32 = 23;

pub const HUA_NONE: u32 = 1;
pub const HUA_ARCHIVE: u32 = 10;
pub const HUA_RESTORE: u32 = 11;
pub const HUA_RELEASE: u32 = 12;
pub const HUA_REMOVE: u32 = 13;
pub const HUA_CANCEL: u32 = 14;

pub const HPS_NONE: u32 = 0;
pub const HPS_WAITING: u32 = 1;
pub const HPS_RUNNING: u32 = 2;
pub const HPS_DONE: u32 = 3;

pub const HSM_FORCE_ACTION: u64 = 0x1;
pub const HP_FLAG_COMPLETED: i32 = 0x1;
pub const HP_FLAG_RETRY: i32 = 0x2;

pub const HAL_VERSION: u32 = 1;
pub const KUC_MAGIC: u16 = 0x191C;
pub const KUC_TRANSPORT_GENERIC: u8 = 1;
pub const KUC_TRANSPORT_HSM: u8 = 2;
pub const KUC_MSG_SHUTDOWN: u16 = 1;
pub const HMT_ACTION_LIST: u16 = 100;
/// Largest user request the kernel accepts is one byte below this (`MDS_MAXREQSIZE / 3`).
pub const HUR_MAX_LEN: usize = 1706;
/// The simulator caps one KUC message at PIPE_BUF so each write() is atomic.
pub const KUC_MAX_MSG: usize = 4096;

pub const HSS_SETMASK: u32 = 0x1;
pub const HSS_CLEARMASK: u32 = 0x2;
pub const HSS_ARCHIVE_ID: u32 = 0x4;

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
