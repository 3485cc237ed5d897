//! `#[repr(C)]` structures of the liblustreapi / Lustre uapi ABI (lustre-abi.md §1).
//!
//! Names and field names are the C ones, as bindgen would emit them. Structures that C declares
//! packed are `#[repr(C, packed)]` (alignment 1); the others are naturally aligned. None of them has
//! internal padding, so sizes and offsets are the same either way; only alignment differs.
//! Never take a reference to a field of a packed structure: copy the value out.
//!
//! Flexible array members (`hai_data[]`, `hal_fsname[]`, ...) are zero-length arrays: they mark
//! where the variable part starts and add nothing to the size.
// C structures and fields, documented by the Lustre headers they mirror (lustre-abi.md §1), as bindgen output is.
#![allow(missing_docs)]
#![allow(non_camel_case_types)]

use std::os::raw::c_char;

/// `lnet_nid_t`: the 8-byte NID form (network in the high 32 bits, address in the low 32 bits).
pub type lnet_nid_t = u64;

/// `struct lu_fid`: the Lustre file identifier. Packed (align 1) since 2.14; 2.12 had align 8
/// with the same offsets.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct lu_fid {
    /// Sequence number.
    pub f_seq: u64,
    /// Object id within the sequence.
    pub f_oid: u32,
    /// Version (normally 0).
    pub f_ver: u32,
}

/// `struct hsm_extent`: a byte range; `length == u64::MAX` means "to end of file".
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct hsm_extent {
    pub offset: u64,
    pub length: u64,
}

/// `struct hsm_action_item` ("hai"): one item of an action list. The fixed part is 72 bytes;
/// `hai_len` = 72 + length of the opaque `hai_data` that follows.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct hsm_action_item {
    /// Valid size of this item, fixed part plus data.
    pub hai_len: u32,
    /// `HSMA_*` (an `hsm_copytool_action`).
    pub hai_action: u32,
    /// The Lustre file.
    pub hai_fid: lu_fid,
    /// FID used for data access (the volatile file's FID for a RESTORE after action_begin).
    pub hai_dfid: lu_fid,
    pub hai_extent: hsm_extent,
    /// Request cookie assigned by the coordinator.
    pub hai_cookie: u64,
    /// Group-lock id (always 0 from the coordinator).
    pub hai_gid: u64,
    /// Start of the opaque user data (flexible array).
    pub hai_data: [c_char; 0],
}

/// `struct hsm_action_list` ("hal"): header of a message sent to a copytool. The NUL-terminated
/// file-system name follows at offset 32, then the items (see `hai_first`/`hai_next` rules).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct hsm_action_list {
    /// `HAL_VERSION`.
    pub hal_version: u32,
    /// Number of items that follow.
    pub hal_count: u32,
    /// Obsolete, always 0.
    pub hal_compound_id: u64,
    /// Copy of the user request's `hr_flags`.
    pub hal_flags: u64,
    /// Archive every item of this list belongs to.
    pub hal_archive_id: u32,
    pub padding1: u32,
    /// Start of the NUL-terminated fsname (flexible array).
    pub hal_fsname: [c_char; 0],
}

/// `struct hsm_user_item`: one file of a user request.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct hsm_user_item {
    pub hui_fid: lu_fid,
    pub hui_extent: hsm_extent,
}

/// `struct hsm_request`: header of a user request. Naturally aligned (align 8), not packed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct hsm_request {
    /// `HUA_*` (an `hsm_user_action`).
    pub hr_action: u32,
    /// Only used for `HUA_ARCHIVE` (0 = default).
    pub hr_archive_id: u32,
    /// `HSM_FORCE_ACTION`, `HSM_GHOST_COPY`, ...
    pub hr_flags: u64,
    /// Number of `hsm_user_item` that follow the header.
    pub hr_itemcount: u32,
    /// Length of the opaque data that follows the items.
    pub hr_data_len: u32,
}

/// `struct hsm_user_request`: `hsm_request` then `hr_itemcount` items then `hr_data_len` bytes.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct hsm_user_request {
    pub hur_request: hsm_request,
    /// Start of the items (flexible array).
    pub hur_user_item: [hsm_user_item; 0],
}

/// `struct hsm_user_state`: result of `llapi_hsm_state_get`. Always allocate the full 32 bytes;
/// 2.16 MDTs fill only `hus_states` and `hus_archive_id`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct hsm_user_state {
    /// `HS_*` bit set.
    pub hus_states: u32,
    pub hus_archive_id: u32,
    /// `HPS_*`.
    pub hus_in_progress_state: u32,
    /// `HUA_*`.
    pub hus_in_progress_action: u32,
    pub hus_in_progress_location: hsm_extent,
    /// Unused flexible array.
    pub hus_extended_info: [c_char; 0],
}

/// `struct hsm_current_action`: result of `llapi_hsm_current_action`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct hsm_current_action {
    /// `HPS_*`.
    pub hca_state: u32,
    /// `HUA_*` (user action codes, not `HSMA_*`).
    pub hca_action: u32,
    /// The request extent; while running, `length` is the number of bytes moved so far.
    pub hca_location: hsm_extent,
}

/// `struct hsm_state_set` (`lustre_idl.h`): payload of `LL_IOC_HSM_STATE_SET`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct hsm_state_set {
    /// `HSS_*` bits saying which of the other fields are valid.
    pub hss_valid: u32,
    pub hss_archive_id: u32,
    pub hss_setmask: u64,
    pub hss_clearmask: u64,
}

/// `struct hsm_progress`: payload of `LL_IOC_HSM_PROGRESS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct hsm_progress {
    pub hp_fid: lu_fid,
    pub hp_cookie: u64,
    pub hp_extent: hsm_extent,
    /// `HP_FLAG_*`.
    pub hp_flags: u16,
    /// Positive errno.
    pub hp_errval: u16,
    pub padding: u32,
}

/// `struct hsm_copy`: payload of `LL_IOC_HSM_COPY_START` / `_END`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct hsm_copy {
    pub hc_data_version: u64,
    pub hc_flags: u16,
    pub hc_errval: u16,
    pub padding: u32,
    /// The fixed 72-byte part of the item.
    pub hc_hai: hsm_action_item,
}

/// `struct hsm_user_import`: payload of `LL_IOC_HSM_IMPORT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct hsm_user_import {
    pub hui_size: u64,
    pub hui_atime: u64,
    pub hui_mtime: u64,
    pub hui_atime_ns: u32,
    pub hui_mtime_ns: u32,
    pub hui_uid: u32,
    pub hui_gid: u32,
    pub hui_mode: u32,
    pub hui_archive_id: u32,
}

/// `struct changelog_rec`: the fixed 64-byte part of a changelog record. Extensions and the
/// name follow (see lustre-abi.md §1.14).
///
/// In C, `cr_tfid` shares a union with `__u32 cr_markerflags` (used by `CL_MARK`); read that
/// member with [`changelog_rec::cr_markerflags`].
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct changelog_rec {
    /// Bytes of name data after the extensions (no NUL counted).
    pub cr_namelen: u16,
    /// Low 12 bits: per-type flags; high 4 bits: `CLF_VERSION|CLF_RENAME|CLF_JOBID|CLF_EXTRA_FLAGS`.
    pub cr_flags: u16,
    /// `CL_*`.
    pub cr_type: u32,
    pub cr_index: u64,
    /// Never maintained by the MDT.
    pub cr_prev: u64,
    /// `(seconds << 30) + nanoseconds`.
    pub cr_time: u64,
    /// Target FID (union with `cr_markerflags`).
    pub cr_tfid: lu_fid,
    /// Parent directory FID.
    pub cr_pfid: lu_fid,
}

impl changelog_rec {
    /// The `cr_markerflags` member of the `cr_tfid` union: its first 4 bytes, little endian on
    /// the hosts Lustre clients run on (x86_64, aarch64).
    pub fn cr_markerflags(&self) -> u32 {
        let seq = self.cr_tfid.f_seq;
        (seq & 0xFFFF_FFFF) as u32
    }
}

/// `struct changelog_ext_rename`: present iff `CLF_RENAME`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct changelog_ext_rename {
    /// The renamed object.
    pub cr_sfid: lu_fid,
    /// The source (old) parent.
    pub cr_spfid: lu_fid,
}

/// `struct changelog_ext_jobid`: present iff `CLF_JOBID`; NUL-terminated job id.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct changelog_ext_jobid {
    pub cr_jobid: [c_char; LUSTRE_JOBID_SIZE],
}

/// `struct changelog_ext_extra_flags`: present iff `CLF_EXTRA_FLAGS`; `CLFE_*` bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct changelog_ext_extra_flags {
    pub cr_extra_flags: u64,
}

/// `struct changelog_ext_uidgid`: present iff `CLFE_UIDGID`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct changelog_ext_uidgid {
    pub cr_uid: u64,
    pub cr_gid: u64,
}

/// `struct changelog_ext_nid`: present iff `CLFE_NID`. 24 bytes including 4 bytes of tail
/// padding. With `CLFE_NID_BE` the first 20 bytes hold an [`lnet_nid`] instead of an `lnet_nid_t`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct changelog_ext_nid {
    pub cr_nid: lnet_nid_t,
    pub extra: u64,
    pub padding: u32,
}

/// `struct changelog_ext_openmode`: present iff `CLFE_OPEN`. Mask `cr_openflags` with 0xFFF.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct changelog_ext_openmode {
    pub cr_openflags: u32,
}

/// `struct changelog_ext_xattr`: present iff `CLFE_XATTR`; NUL-terminated xattr name.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct changelog_ext_xattr {
    pub cr_xattr: [c_char; XATTR_NAME_MAX + 1],
}

/// `struct lnet_nid` (packed, 20 bytes): the large NID form stored in the NID extension when
/// `CLFE_NID_BE` is set. Multi-byte fields are big endian.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct lnet_nid {
    /// Total bytes of the NID minus 8.
    pub nid_size: u8,
    pub nid_type: u8,
    /// Network number, big endian.
    pub nid_num: u16,
    /// Address words, big endian.
    pub nid_addr: [u32; 4],
}

/// `struct kuc_hdr`: header of every kernel-to-user message on the copytool pipe. `aligned(8)`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default)]
pub struct kuc_hdr {
    /// `KUC_MAGIC`.
    pub kuc_magic: u16,
    /// `KUC_TRANSPORT_*`.
    pub kuc_transport: u8,
    pub kuc_flags: u8,
    /// `HMT_ACTION_LIST`, `KUC_MSG_SHUTDOWN`, ...
    pub kuc_msgtype: u16,
    /// Total bytes including this header.
    pub kuc_msglen: u16,
}

/// `struct lustre_kernelcomm`: copytool registration payload (`LL_IOC_HSM_CT_START`).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct lustre_kernelcomm {
    pub lk_wfd: u32,
    pub lk_rfd: u32,
    /// The pid of the copytool.
    pub lk_uid: u32,
    pub lk_group: u32,
    pub lk_data_count: u32,
    /// `LK_FLG_*`.
    pub lk_flags: u32,
    /// Archive ids (flexible array).
    pub lk_data: [u32; 0],
}

/// `struct getinfo_fid2path` (`lustre_idl.h`): payload of `OBD_IOC_FID2PATH`; the path (or the
/// root FID) follows the 32-byte header.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct getinfo_fid2path {
    pub gf_fid: lu_fid,
    pub gf_recno: u64,
    pub gf_linkno: u32,
    pub gf_pathlen: u32,
    /// Start of the path (flexible array; a union with the root FID in C).
    pub gf_path: [c_char; 0],
}

use crate::consts::{LUSTRE_JOBID_SIZE, XATTR_NAME_MAX};

impl Default for changelog_ext_jobid {
    fn default() -> Self {
        changelog_ext_jobid {
            cr_jobid: [0; LUSTRE_JOBID_SIZE],
        }
    }
}

impl Default for changelog_ext_xattr {
    fn default() -> Self {
        changelog_ext_xattr {
            cr_xattr: [0; XATTR_NAME_MAX + 1],
        }
    }
}
