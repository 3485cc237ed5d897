//! Numeric constants and enum values of the liblustreapi ABI (lustre-abi.md §2).
//!
//! C enums become a type alias plus one constant per enumerator, the way bindgen names them;
//! `#define`s become constants of the width the corresponding field has. Values are identical in
//! 2.12, 2.15, 2.16 and master unless a doc comment says otherwise.
// C names, documented by the Lustre headers they mirror (lustre-abi.md §2), as bindgen output is.
#![allow(missing_docs)]
#![allow(non_camel_case_types)]

use std::os::raw::{c_int, c_uint};

// ---- enum hsm_copytool_action (in hai_action) ----
pub type hsm_copytool_action = c_uint;
pub const HSMA_NONE: hsm_copytool_action = 10;
pub const HSMA_ARCHIVE: hsm_copytool_action = 20;
pub const HSMA_RESTORE: hsm_copytool_action = 21;
pub const HSMA_REMOVE: hsm_copytool_action = 22;
pub const HSMA_CANCEL: hsm_copytool_action = 23;

// ---- enum hsm_user_action (in hr_action and hca_action) ----
pub type hsm_user_action = c_uint;
pub const HUA_NONE: hsm_user_action = 1;
pub const HUA_ARCHIVE: hsm_user_action = 10;
pub const HUA_RESTORE: hsm_user_action = 11;
pub const HUA_RELEASE: hsm_user_action = 12;
pub const HUA_REMOVE: hsm_user_action = 13;
pub const HUA_CANCEL: hsm_user_action = 14;

// ---- enum hsm_progress_states ----
pub type hsm_progress_states = c_uint;
pub const HPS_NONE: hsm_progress_states = 0;
pub const HPS_WAITING: hsm_progress_states = 1;
pub const HPS_RUNNING: hsm_progress_states = 2;
pub const HPS_DONE: hsm_progress_states = 3;

// ---- enum hsm_states (hus_states bits) ----
pub type hsm_states = c_uint;
pub const HS_NONE: hsm_states = 0x000;
pub const HS_EXISTS: hsm_states = 0x001;
pub const HS_DIRTY: hsm_states = 0x002;
pub const HS_RELEASED: hsm_states = 0x004;
pub const HS_ARCHIVED: hsm_states = 0x008;
pub const HS_NORELEASE: hsm_states = 0x010;
pub const HS_NOARCHIVE: hsm_states = 0x020;
pub const HS_LOST: hsm_states = 0x040;
/// 2.16+.
pub const HS_PCCRW: hsm_states = 0x080;
/// 2.16+.
pub const HS_PCCRO: hsm_states = 0x100;
/// Flags a non-root user may set or clear.
pub const HSM_USER_MASK: u64 = (HS_NORELEASE | HS_NOARCHIVE | HS_DIRTY) as u64;
/// 2.16+ value (0x4D in ≤2.15, without the PCC bits).
pub const HSM_STATUS_MASK: u64 =
    (HS_EXISTS | HS_LOST | HS_RELEASED | HS_ARCHIVED | HS_PCCRW | HS_PCCRO) as u64;
/// 2.16+ value (0x7F in ≤2.15).
pub const HSM_FLAGS_MASK: u64 = HSM_USER_MASK | HSM_STATUS_MASK;

// ---- hsm_request.hr_flags ----
pub const HSM_FORCE_ACTION: u64 = 0x0001;
/// Copytool use only.
pub const HSM_GHOST_COPY: u64 = 0x0002;
/// 2.17+ header.
pub const HSM_REQ_BLOCKING: u64 = 0x0004;

// ---- hsm_state_set.hss_valid ----
pub const HSS_SETMASK: u32 = 0x01;
pub const HSS_CLEARMASK: u32 = 0x02;
pub const HSS_ARCHIVE_ID: u32 = 0x04;

// ---- progress flags (hp_flags / hp_flags argument) ----
/// Added by the kernel on action_end.
pub const HP_FLAG_COMPLETED: c_int = 0x01;
/// Ignored under the coordinator's default NoRetryAction policy.
pub const HP_FLAG_RETRY: c_int = 0x02;

// ---- message, KUC and registration constants ----
pub const HAL_VERSION: u32 = 1;
/// A userspace buffer size only (LNET_MTU); the coordinator caps one hal at about 5 KiB.
pub const HAL_MAXSIZE: usize = 1 << 20;
pub const HMT_ACTION_LIST: u16 = 100;
pub const KUC_MAGIC: u16 = 0x191C;
pub const KUC_TRANSPORT_GENERIC: u8 = 1;
pub const KUC_TRANSPORT_HSM: u8 = 2;
/// Message type of the shutdown message (generic transport).
pub const KUC_MSG_SHUTDOWN: u16 = 1;
pub const KUC_GRP_HSM: u32 = 2;
pub const LK_FLG_STOP: u32 = 0x01;
pub const LK_FLG_DATANR: u32 = 0x02;
pub const LK_NOFD: u32 = 0xFFFF_FFFF;
/// Legacy archive bitmap limit.
pub const LL_HSM_ORIGIN_MAX_ARCHIVE: u32 = 32;
/// Defined, not enforced.
pub const LL_HSM_MAX_ARCHIVES_PER_AGENT: u32 = 1024;
/// LDLM request size cap; the kernel rejects user requests of `MDS_MAXREQSIZE / 3` bytes or more.
pub const MDS_MAXREQSIZE: u32 = 5 * 1024;
pub const LDLM_MAXREQSIZE: u32 = 5 * 1024;

// ---- enum agent_req_status (coordinator request states, lustre_idl.h) ----
pub type agent_req_status = c_uint;
pub const ARS_WAITING: agent_req_status = 0;
pub const ARS_STARTED: agent_req_status = 1;
pub const ARS_FAILED: agent_req_status = 2;
pub const ARS_CANCELED: agent_req_status = 3;
pub const ARS_SUCCEED: agent_req_status = 4;

// ---- enum changelog_rec_type (cr_type) ----
pub type changelog_rec_type = c_int;
pub const CL_NONE: changelog_rec_type = -1;
pub const CL_MARK: changelog_rec_type = 0;
pub const CL_CREATE: changelog_rec_type = 1;
pub const CL_MKDIR: changelog_rec_type = 2;
pub const CL_HARDLINK: changelog_rec_type = 3;
pub const CL_SOFTLINK: changelog_rec_type = 4;
pub const CL_MKNOD: changelog_rec_type = 5;
pub const CL_UNLINK: changelog_rec_type = 6;
pub const CL_RMDIR: changelog_rec_type = 7;
pub const CL_RENAME: changelog_rec_type = 8;
/// Legacy second half of a rename; not emitted by 2.16.
pub const CL_EXT: changelog_rec_type = 9;
pub const CL_OPEN: changelog_rec_type = 10;
pub const CL_CLOSE: changelog_rec_type = 11;
pub const CL_LAYOUT: changelog_rec_type = 12;
pub const CL_TRUNC: changelog_rec_type = 13;
pub const CL_SETATTR: changelog_rec_type = 14;
pub const CL_SETXATTR: changelog_rec_type = 15;
/// Alias of `CL_SETXATTR`.
pub const CL_XATTR: changelog_rec_type = CL_SETXATTR;
pub const CL_HSM: changelog_rec_type = 16;
pub const CL_MTIME: changelog_rec_type = 17;
pub const CL_CTIME: changelog_rec_type = 18;
pub const CL_ATIME: changelog_rec_type = 19;
pub const CL_MIGRATE: changelog_rec_type = 20;
pub const CL_FLRW: changelog_rec_type = 21;
pub const CL_RESYNC: changelog_rec_type = 22;
pub const CL_GETXATTR: changelog_rec_type = 23;
pub const CL_DN_OPEN: changelog_rec_type = 24;
pub const CL_LAST: changelog_rec_type = 25;

/// The lfs short names of `CL_MARK` .. `CL_DN_OPEN`, indexed by type (`changelog_type2str`).
pub const CHANGELOG_TYPE_NAMES: [&str; CL_LAST as usize] = [
    "MARK", "CREAT", "MKDIR", "HLINK", "SLINK", "MKNOD", "UNLNK", "RMDIR", "RENME", "RNMTO",
    "OPEN", "CLOSE", "LYOUT", "TRUNC", "SATTR", "XATTR", "HSM", "MTIME", "CTIME", "ATIME", "MIGRT",
    "FLRW", "RESYNC", "GXATR", "NOPEN",
];

// ---- enum changelog_rec_flags (cr_flags) ----
pub type changelog_rec_flags = c_uint;
pub const CLF_FLAGSHIFT: u32 = 12;
pub const CLF_FLAGMASK: changelog_rec_flags = (1 << CLF_FLAGSHIFT) - 1;
/// The complement of `CLF_FLAGMASK` (0xF000 within the 16-bit `cr_flags`).
pub const CLF_VERMASK: changelog_rec_flags = !CLF_FLAGMASK;
pub const CLF_VERSION: changelog_rec_flags = 0x1000;
pub const CLF_RENAME: changelog_rec_flags = 0x2000;
pub const CLF_JOBID: changelog_rec_flags = 0x4000;
pub const CLF_EXTRA_FLAGS: changelog_rec_flags = 0x8000;
pub const CLF_SUPPORTED: changelog_rec_flags =
    CLF_VERSION | CLF_RENAME | CLF_JOBID | CLF_EXTRA_FLAGS;

// per-type low bits
/// UNLINK/RMDIR: the last link was removed.
pub const CLF_UNLINK_LAST: u16 = 0x0001;
/// UNLINK/RMDIR: the file had an archive copy (only kept together with LAST).
pub const CLF_UNLINK_HSM_EXISTS: u16 = 0x0002;
/// RENAME: the overwritten target lost its last link.
pub const CLF_RENAME_LAST: u16 = 0x0001;
/// RENAME: the overwritten target had an archive copy.
pub const CLF_RENAME_LAST_EXISTS: u16 = 0x0002;

// ---- CL_HSM packing of the low 12 bits of cr_flags ----
pub const CLF_HSM_ERR_L: u32 = 0;
pub const CLF_HSM_ERR_H: u32 = 6;
pub const CLF_HSM_EVENT_L: u32 = 7;
pub const CLF_HSM_EVENT_H: u32 = 9;
pub const CLF_HSM_FLAG_L: u32 = 10;
pub const CLF_HSM_FLAG_H: u32 = 11;
pub const CLF_HSM_SPARE_L: u32 = 12;
pub const CLF_HSM_SPARE_H: u32 = 15;
pub const CLF_HSM_LAST: u32 = 15;
pub const CLF_HSM_SUCCESS: u32 = 0x00;
pub const CLF_HSM_MAXERROR: u32 = 0x7E;
pub const CLF_HSM_ERROVERFLOW: u32 = 0x7F;
/// The HSM flag value meaning "file is dirty" (bit 10 of cr_flags once shifted).
pub const CLF_HSM_DIRTY: u32 = 1;

// ---- enum hsm_event ----
pub type hsm_event = c_uint;
pub const HE_ARCHIVE: hsm_event = 0;
pub const HE_RESTORE: hsm_event = 1;
pub const HE_CANCEL: hsm_event = 2;
pub const HE_RELEASE: hsm_event = 3;
pub const HE_REMOVE: hsm_event = 4;
pub const HE_STATE: hsm_event = 5;
pub const HE_SPARE1: hsm_event = 6;
pub const HE_SPARE2: hsm_event = 7;

// ---- enum changelog_rec_extra_flags (cr_extra_flags) ----
pub type changelog_rec_extra_flags = c_uint;
pub const CLFE_INVALID: changelog_rec_extra_flags = 0;
pub const CLFE_UIDGID: changelog_rec_extra_flags = 0x0001;
pub const CLFE_NID: changelog_rec_extra_flags = 0x0002;
pub const CLFE_OPEN: changelog_rec_extra_flags = 0x0004;
pub const CLFE_XATTR: changelog_rec_extra_flags = 0x0008;
/// 2.16+: the NID extension holds a big-endian `lnet_nid`.
pub const CLFE_NID_BE: changelog_rec_extra_flags = 0x0010;
/// 2.16+ value (0x0F in ≤2.15).
pub const CLFE_SUPPORTED: changelog_rec_extra_flags =
    CLFE_UIDGID | CLFE_NID | CLFE_OPEN | CLFE_XATTR | CLFE_NID_BE;

// ---- enum changelog_send_flag (llapi_changelog_start flags) ----
pub type changelog_send_flag = c_uint;
pub const CHANGELOG_FLAG_FOLLOW: changelog_send_flag = 0x01;
/// Ignored since 2.10.
pub const CHANGELOG_FLAG_BLOCK: changelog_send_flag = 0x02;
pub const CHANGELOG_FLAG_JOBID: changelog_send_flag = 0x04;
pub const CHANGELOG_FLAG_EXTRA_FLAGS: changelog_send_flag = 0x08;
/// 2.16+.
pub const CHANGELOG_FLAG_NID_BE: changelog_send_flag = 0x10;

// ---- enum changelog_send_extra_flag (llapi_changelog_set_xflags) ----
pub type changelog_send_extra_flag = c_uint;
pub const CHANGELOG_EXTRA_FLAG_UIDGID: changelog_send_extra_flag = 0x01;
pub const CHANGELOG_EXTRA_FLAG_NID: changelog_send_extra_flag = 0x02;
pub const CHANGELOG_EXTRA_FLAG_OMODE: changelog_send_extra_flag = 0x04;
pub const CHANGELOG_EXTRA_FLAG_XATTR: changelog_send_extra_flag = 0x08;

// ---- legacy enum changelog_message_type ----
pub const CL_RECORD: u32 = 10;
pub const CL_EOF: u32 = 11;

// ---- changelog masks and user names (lustre_idl.h) ----
pub const CHANGELOG_MINMASK: u32 = 1 << CL_MARK;
pub const CHANGELOG_ALLMASK: u32 = 0x01FF_FFFF;
/// All types except ATIME, OPEN, GETXATTR and DN_OPEN.
pub const CHANGELOG_DEFMASK: u32 = CHANGELOG_ALLMASK
    & !((1 << CL_ATIME) | (1 << CL_OPEN) | (1 << CL_GETXATTR) | (1 << CL_DN_OPEN));
pub const CHANGELOG_USER_PREFIX: &str = "cl";
pub const CHANGELOG_USER_NAMELEN: usize = 16;
pub const CHANGELOG_USER_NAMELEN_FULL: usize = 30;

// ---- enum mds_open_flags: low bits of CL_OPEN/CL_CLOSE cr_flags (octal, not POSIX O_*) ----
pub const MDS_FMODE_READ: u64 = 0o1;
pub const MDS_FMODE_WRITE: u64 = 0o2;
pub const MDS_FMODE_EXEC: u64 = 0o4;
pub const MDS_OPEN_CREATED: u64 = 0o10;
pub const MDS_OPEN_CREAT: u64 = 0o100;
pub const MDS_OPEN_EXCL: u64 = 0o200;
pub const MDS_OPEN_TRUNC: u64 = 0o1000;
pub const MDS_OPEN_APPEND: u64 = 0o2000;
pub const MDS_OPEN_SYNC: u64 = 0o10000;

// ---- enum llapi_message_level ----
pub type llapi_message_level = c_uint;
pub const LLAPI_MSG_OFF: llapi_message_level = 0;
pub const LLAPI_MSG_FATAL: llapi_message_level = 1;
pub const LLAPI_MSG_ERROR: llapi_message_level = 2;
pub const LLAPI_MSG_WARN: llapi_message_level = 3;
pub const LLAPI_MSG_NORMAL: llapi_message_level = 4;
pub const LLAPI_MSG_INFO: llapi_message_level = 5;
pub const LLAPI_MSG_DEBUG: llapi_message_level = 6;
pub const LLAPI_MSG_MAX: llapi_message_level = 7;
pub const LLAPI_MSG_MASK: llapi_message_level = 0x07;
/// OR'ed into the level passed to a log callback; mask levels with `LLAPI_MSG_MASK`.
pub const LLAPI_MSG_NO_ERRNO: llapi_message_level = 0x10;

// ---- llapi_get_data_version flags ----
pub const LL_DV_RD_FLUSH: u64 = 1 << 0;
pub const LL_DV_WR_FLUSH: u64 = 1 << 1;
pub const LL_DV_SZ_UPDATE: u64 = 1 << 2;

// ---- sizes ----
pub const LUSTRE_MAXFSNAME: usize = 8;
pub const LUSTRE_MAXINSTANCE: usize = 16;
pub const MAX_OBD_NAME: usize = 128;
pub const UUID_MAX: usize = 40;
pub const LOV_MAXPOOLNAME: usize = 15;
pub const LUSTRE_JOBID_SIZE: usize = 32;
pub const NAME_MAX: usize = 255;
pub const XATTR_NAME_MAX: usize = 255;
/// Largest changelog record: A8(2*NAME_MAX + 2 + offset with every extension = 436).
pub const CR_MAXSIZE: usize = 952;
/// Library read chunk for the changelog device (internal to liblustreapi).
pub const CHANGELOG_BUFFER_SZ: usize = 4096;
pub const FID_NOBRACE_LEN: usize = 40;
pub const FID_LEN: usize = FID_NOBRACE_LEN + 2;
pub const FID_SEQ_NORMAL: u64 = 0x2_0000_0400;
/// Name prefix of volatile files: ".", bytes 0x0C 0x13 0x14 0x12, then ":VOLATILE".
pub const LUSTRE_VOLATILE_HDR: &[u8; 14] = b".\x0c\x13\x14\x12:VOLATILE";
pub const LUSTRE_VOLATILE_HDR_LEN: usize = 14;
// ---- llapi_layout values (lustreapi.h) ----
/// Never a valid value.
pub const LLAPI_LAYOUT_INVALID: u64 = 0x1000_0000_0000_0001;
/// "Use the file system default" for stripe count, size, offset or pattern.
pub const LLAPI_LAYOUT_DEFAULT: u64 = LLAPI_LAYOUT_INVALID + 1;
/// Stripe count "every OST" (`LLAPI_LAYOUT_DEFAULT - (-1)`); up to
/// [`LLAPI_LAYOUT_WIDE_MAX`] for overstriping (`-32`).
pub const LLAPI_LAYOUT_WIDE_MIN: u64 = LLAPI_LAYOUT_DEFAULT.wrapping_add(1);
pub const LLAPI_LAYOUT_WIDE_MAX: u64 = LLAPI_LAYOUT_DEFAULT.wrapping_add(32);
pub const LLAPI_LAYOUT_RAID0: u64 = 0;
/// `enum llapi_layout_get_flags`.
pub const LLAPI_LAYOUT_GET_EXPECTED: u32 = 0x0001;
pub const LLAPI_LAYOUT_GET_COPY: u32 = 0x0002;
pub const LLAPI_LAYOUT_GET_CHECK: u32 = 0x0004;
/// Largest stripe count of a file (`LOV_MAX_STRIPE_COUNT`).
pub const LOV_MAX_STRIPE_COUNT: u64 = 2000;
/// Stripe sizes are multiples of this (`LOV_MIN_STRIPE_SIZE`, 64 KiB) and below 4 GiB.
pub const LOV_MIN_STRIPE_SIZE: u64 = 1 << 16;
/// The xattr `llapi_layout_file_open` and `lhsmtool_posix` set a layout through.
pub const XATTR_LUSTRE_LOV: &str = "lustre.lov";

/// `O_LOV_DELAY_CREATE` up to 2.16 (octal 0100020400).
pub const O_LOV_DELAY_CREATE: c_int = 0o100020400;
/// `O_LOV_DELAY_CREATE` in 2.17+ (octal 020400 = O_NOCTTY|FASYNC).
pub const O_LOV_DELAY_CREATE_2_17: c_int = 0o20400;

// ---- ioctl numbers (x86_64, 2.16 headers; for a simulator that intercepts ioctls) ----
pub const LL_IOC_HSM_STATE_GET: u32 = 0x8020_66d3;
pub const LL_IOC_HSM_STATE_SET: u32 = 0x4018_66d4;
pub const LL_IOC_HSM_CT_START: u32 = 0x4018_66d5;
pub const LL_IOC_HSM_COPY_START: u32 = 0x4008_66d6;
pub const LL_IOC_HSM_COPY_END: u32 = 0x4008_66d7;
pub const LL_IOC_HSM_PROGRESS: u32 = 0x4018_66d8;
pub const LL_IOC_HSM_REQUEST: u32 = 0x4018_66d9;
pub const LL_IOC_HSM_ACTION: u32 = 0x8018_66dc;
pub const LL_IOC_HSM_IMPORT: u32 = 0xc030_66f5;
pub const LL_IOC_PATH2FID: u32 = 0x8008_66ad;
pub const OBD_IOC_FID2PATH: u32 = 0xc008_6696;
/// `_IOR('f', 233, long)`: the only ioctl the changelog device accepts.
pub const OBD_IOC_CHLG_SET_FLAGS: u32 = 0x8008_66e9;
pub const OBD_IOC_CHLG_POLL: u32 = OBD_IOC_CHLG_SET_FLAGS;
