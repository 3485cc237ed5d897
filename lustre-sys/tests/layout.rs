//! Pins every size, offset and alignment of lustre-abi.md §1 and every constant value of §2.
#![allow(non_camel_case_types)]

use lustre_sys::*;
use std::mem::{align_of, offset_of, size_of};

macro_rules! layout {
    ($t:ty, size $size:expr, align $align:expr, { $($field:ident @ $off:expr),* $(,)? }) => {{
        assert_eq!(size_of::<$t>(), $size, "size of {}", stringify!($t));
        assert_eq!(align_of::<$t>(), $align, "align of {}", stringify!($t));
        $( assert_eq!(offset_of!($t, $field), $off, "offset of {}.{}", stringify!($t), stringify!($field)); )*
    }};
}

#[test]
fn fid_extent_and_items() {
    layout!(lu_fid, size 16, align 1, { f_seq @ 0, f_oid @ 8, f_ver @ 12 });
    layout!(hsm_extent, size 16, align 1, { offset @ 0, length @ 8 });
    layout!(hsm_action_item, size 72, align 1, {
        hai_len @ 0, hai_action @ 4, hai_fid @ 8, hai_dfid @ 24, hai_extent @ 40,
        hai_cookie @ 56, hai_gid @ 64, hai_data @ 72,
    });
    layout!(hsm_action_list, size 32, align 1, {
        hal_version @ 0, hal_count @ 4, hal_compound_id @ 8, hal_flags @ 16,
        hal_archive_id @ 24, padding1 @ 28, hal_fsname @ 32,
    });
    layout!(hsm_user_item, size 32, align 1, { hui_fid @ 0, hui_extent @ 16 });
    layout!(hsm_request, size 24, align 8, {
        hr_action @ 0, hr_archive_id @ 4, hr_flags @ 8, hr_itemcount @ 16, hr_data_len @ 20,
    });
    layout!(hsm_user_request, size 24, align 1, { hur_request @ 0, hur_user_item @ 24 });
}

#[test]
fn state_and_progress_structs() {
    layout!(hsm_user_state, size 32, align 4, {
        hus_states @ 0, hus_archive_id @ 4, hus_in_progress_state @ 8,
        hus_in_progress_action @ 12, hus_in_progress_location @ 16, hus_extended_info @ 32,
    });
    layout!(hsm_current_action, size 24, align 4, { hca_state @ 0, hca_action @ 4, hca_location @ 8 });
    layout!(hsm_state_set, size 24, align 8, {
        hss_valid @ 0, hss_archive_id @ 4, hss_setmask @ 8, hss_clearmask @ 16,
    });
    layout!(hsm_progress, size 48, align 8, {
        hp_fid @ 0, hp_cookie @ 16, hp_extent @ 24, hp_flags @ 40, hp_errval @ 42, padding @ 44,
    });
    layout!(hsm_copy, size 88, align 8, {
        hc_data_version @ 0, hc_flags @ 8, hc_errval @ 10, padding @ 12, hc_hai @ 16,
    });
    layout!(hsm_user_import, size 48, align 8, {
        hui_size @ 0, hui_atime @ 8, hui_mtime @ 16, hui_atime_ns @ 24, hui_mtime_ns @ 28,
        hui_uid @ 32, hui_gid @ 36, hui_mode @ 40, hui_archive_id @ 44,
    });
}

#[test]
fn changelog_structs() {
    layout!(changelog_rec, size 64, align 1, {
        cr_namelen @ 0, cr_flags @ 2, cr_type @ 4, cr_index @ 8, cr_prev @ 16, cr_time @ 24,
        cr_tfid @ 32, cr_pfid @ 48,
    });
    layout!(changelog_ext_rename, size 32, align 1, { cr_sfid @ 0, cr_spfid @ 16 });
    layout!(changelog_ext_jobid, size 32, align 1, { cr_jobid @ 0 });
    layout!(changelog_ext_extra_flags, size 8, align 8, { cr_extra_flags @ 0 });
    layout!(changelog_ext_uidgid, size 16, align 8, { cr_uid @ 0, cr_gid @ 8 });
    layout!(changelog_ext_nid, size 24, align 8, { cr_nid @ 0, extra @ 8, padding @ 16 });
    layout!(changelog_ext_openmode, size 4, align 4, { cr_openflags @ 0 });
    layout!(changelog_ext_xattr, size 256, align 1, { cr_xattr @ 0 });
    layout!(lnet_nid, size 20, align 1, { nid_size @ 0, nid_type @ 1, nid_num @ 2, nid_addr @ 4 });
}

#[test]
fn kernelcomm_structs() {
    layout!(kuc_hdr, size 8, align 8, {
        kuc_magic @ 0, kuc_transport @ 2, kuc_flags @ 3, kuc_msgtype @ 4, kuc_msglen @ 6,
    });
    layout!(lustre_kernelcomm, size 24, align 1, {
        lk_wfd @ 0, lk_rfd @ 4, lk_uid @ 8, lk_group @ 12, lk_data_count @ 16, lk_flags @ 20,
        lk_data @ 24,
    });
    layout!(getinfo_fid2path, size 32, align 1, {
        gf_fid @ 0, gf_recno @ 16, gf_linkno @ 24, gf_pathlen @ 28, gf_path @ 32,
    });
}

#[test]
fn marker_flags_share_the_tfid_union() {
    let rec = changelog_rec {
        cr_tfid: lu_fid {
            f_seq: 0x0001_0001,
            f_oid: 0,
            f_ver: 0,
        },
        ..Default::default()
    };
    assert_eq!(rec.cr_markerflags(), 65537);
}

#[test]
fn hsm_action_and_state_enums() {
    assert_eq!(
        [
            HSMA_NONE,
            HSMA_ARCHIVE,
            HSMA_RESTORE,
            HSMA_REMOVE,
            HSMA_CANCEL
        ],
        [10, 20, 21, 22, 23]
    );
    assert_eq!(
        [
            HUA_NONE,
            HUA_ARCHIVE,
            HUA_RESTORE,
            HUA_RELEASE,
            HUA_REMOVE,
            HUA_CANCEL
        ],
        [1, 10, 11, 12, 13, 14]
    );
    assert_eq!([HPS_NONE, HPS_WAITING, HPS_RUNNING, HPS_DONE], [0, 1, 2, 3]);
    assert_eq!(
        [
            HS_NONE,
            HS_EXISTS,
            HS_DIRTY,
            HS_RELEASED,
            HS_ARCHIVED,
            HS_NORELEASE,
            HS_NOARCHIVE,
            HS_LOST,
            HS_PCCRW,
            HS_PCCRO
        ],
        [0, 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100]
    );
    assert_eq!(HSM_USER_MASK, 0x32);
    assert_eq!(HSM_STATUS_MASK, 0x1CD);
    assert_eq!(HSM_FLAGS_MASK, 0x1FF);
    assert_eq!(
        [HSM_FORCE_ACTION, HSM_GHOST_COPY, HSM_REQ_BLOCKING],
        [1, 2, 4]
    );
    assert_eq!([HSS_SETMASK, HSS_CLEARMASK, HSS_ARCHIVE_ID], [1, 2, 4]);
    assert_eq!([HP_FLAG_COMPLETED, HP_FLAG_RETRY], [1, 2]);
    assert_eq!(
        [
            ARS_WAITING,
            ARS_STARTED,
            ARS_FAILED,
            ARS_CANCELED,
            ARS_SUCCEED
        ],
        [0, 1, 2, 3, 4]
    );
}

#[test]
fn kuc_and_registration_constants() {
    assert_eq!(HAL_VERSION, 1);
    assert_eq!(HAL_MAXSIZE, 1 << 20);
    assert_eq!(HMT_ACTION_LIST, 100);
    assert_eq!(KUC_MAGIC, 0x191C);
    assert_eq!((KUC_TRANSPORT_GENERIC, KUC_TRANSPORT_HSM), (1, 2));
    assert_eq!(KUC_MSG_SHUTDOWN, 1);
    assert_eq!(KUC_GRP_HSM, 2);
    assert_eq!((LK_FLG_STOP, LK_FLG_DATANR, LK_NOFD), (1, 2, 0xFFFF_FFFF));
    assert_eq!(LL_HSM_ORIGIN_MAX_ARCHIVE, 32);
    assert_eq!(LL_HSM_MAX_ARCHIVES_PER_AGENT, 1024);
    assert_eq!(MDS_MAXREQSIZE / 3, 1706);
    assert_eq!(LDLM_MAXREQSIZE, 5120);
}

#[test]
fn changelog_types_and_names() {
    let types = [
        CL_NONE,
        CL_MARK,
        CL_CREATE,
        CL_MKDIR,
        CL_HARDLINK,
        CL_SOFTLINK,
        CL_MKNOD,
        CL_UNLINK,
        CL_RMDIR,
        CL_RENAME,
        CL_EXT,
        CL_OPEN,
        CL_CLOSE,
        CL_LAYOUT,
        CL_TRUNC,
        CL_SETATTR,
        CL_SETXATTR,
        CL_HSM,
        CL_MTIME,
        CL_CTIME,
        CL_ATIME,
        CL_MIGRATE,
        CL_FLRW,
        CL_RESYNC,
        CL_GETXATTR,
        CL_DN_OPEN,
        CL_LAST,
    ];
    let expected: Vec<i32> = (-1..=25).collect();
    assert_eq!(types.to_vec(), expected);
    assert_eq!(CL_XATTR, 15);
    assert_eq!(CHANGELOG_TYPE_NAMES[CL_CREATE as usize], "CREAT");
    assert_eq!(CHANGELOG_TYPE_NAMES[CL_RENAME as usize], "RENME");
    assert_eq!(CHANGELOG_TYPE_NAMES[CL_EXT as usize], "RNMTO");
    assert_eq!(CHANGELOG_TYPE_NAMES[CL_GETXATTR as usize], "GXATR");
    assert_eq!(CHANGELOG_TYPE_NAMES[CL_DN_OPEN as usize], "NOPEN");
    assert_eq!(CHANGELOG_TYPE_NAMES.len(), 25);
}

#[test]
fn changelog_flags() {
    assert_eq!(CLF_FLAGSHIFT, 12);
    assert_eq!(CLF_FLAGMASK, 0x0FFF);
    assert_eq!(CLF_VERMASK as u16, 0xF000);
    assert_eq!(
        [
            CLF_VERSION,
            CLF_RENAME,
            CLF_JOBID,
            CLF_EXTRA_FLAGS,
            CLF_SUPPORTED
        ],
        [0x1000, 0x2000, 0x4000, 0x8000, 0xF000]
    );
    assert_eq!((CLF_UNLINK_LAST, CLF_UNLINK_HSM_EXISTS), (1, 2));
    assert_eq!((CLF_RENAME_LAST, CLF_RENAME_LAST_EXISTS), (1, 2));
    assert_eq!(
        [
            CLF_HSM_ERR_L,
            CLF_HSM_ERR_H,
            CLF_HSM_EVENT_L,
            CLF_HSM_EVENT_H,
            CLF_HSM_FLAG_L,
            CLF_HSM_FLAG_H,
            CLF_HSM_SPARE_L,
            CLF_HSM_SPARE_H,
            CLF_HSM_LAST
        ],
        [0, 6, 7, 9, 10, 11, 12, 15, 15]
    );
    assert_eq!(
        (
            CLF_HSM_SUCCESS,
            CLF_HSM_MAXERROR,
            CLF_HSM_ERROVERFLOW,
            CLF_HSM_DIRTY
        ),
        (0, 0x7E, 0x7F, 1)
    );
    assert_eq!(
        [
            HE_ARCHIVE, HE_RESTORE, HE_CANCEL, HE_RELEASE, HE_REMOVE, HE_STATE, HE_SPARE1,
            HE_SPARE2
        ],
        [0, 1, 2, 3, 4, 5, 6, 7]
    );
    assert_eq!(
        [
            CLFE_INVALID,
            CLFE_UIDGID,
            CLFE_NID,
            CLFE_OPEN,
            CLFE_XATTR,
            CLFE_NID_BE,
            CLFE_SUPPORTED
        ],
        [0, 1, 2, 4, 8, 0x10, 0x1F]
    );
    assert_eq!(
        [
            CHANGELOG_FLAG_FOLLOW,
            CHANGELOG_FLAG_BLOCK,
            CHANGELOG_FLAG_JOBID,
            CHANGELOG_FLAG_EXTRA_FLAGS,
            CHANGELOG_FLAG_NID_BE
        ],
        [1, 2, 4, 8, 0x10]
    );
    assert_eq!(
        [
            CHANGELOG_EXTRA_FLAG_UIDGID,
            CHANGELOG_EXTRA_FLAG_NID,
            CHANGELOG_EXTRA_FLAG_OMODE,
            CHANGELOG_EXTRA_FLAG_XATTR
        ],
        [CLFE_UIDGID, CLFE_NID, CLFE_OPEN, CLFE_XATTR]
    );
    assert_eq!((CL_RECORD, CL_EOF), (10, 11));
    assert_eq!(CHANGELOG_MINMASK, 0x1);
    assert_eq!(CHANGELOG_ALLMASK, 0x1FF_FFFF);
    assert_eq!(CHANGELOG_DEFMASK, 0x77_FBFF);
    assert_eq!(CHANGELOG_USER_PREFIX, "cl");
    assert_eq!(
        (CHANGELOG_USER_NAMELEN, CHANGELOG_USER_NAMELEN_FULL),
        (16, 30)
    );
}

#[test]
fn open_flags_logging_and_data_version() {
    assert_eq!(
        [
            MDS_FMODE_READ,
            MDS_FMODE_WRITE,
            MDS_FMODE_EXEC,
            MDS_OPEN_CREATED,
            MDS_OPEN_CREAT,
            MDS_OPEN_EXCL,
            MDS_OPEN_TRUNC,
            MDS_OPEN_APPEND,
            MDS_OPEN_SYNC
        ],
        [1, 2, 4, 8, 0o100, 0o200, 0o1000, 0o2000, 0o10000]
    );
    assert_eq!(
        [
            LLAPI_MSG_OFF,
            LLAPI_MSG_FATAL,
            LLAPI_MSG_ERROR,
            LLAPI_MSG_WARN,
            LLAPI_MSG_NORMAL,
            LLAPI_MSG_INFO,
            LLAPI_MSG_DEBUG,
            LLAPI_MSG_MAX
        ],
        [0, 1, 2, 3, 4, 5, 6, 7]
    );
    assert_eq!((LLAPI_MSG_MASK, LLAPI_MSG_NO_ERRNO), (7, 0x10));
    assert_eq!([LL_DV_RD_FLUSH, LL_DV_WR_FLUSH, LL_DV_SZ_UPDATE], [1, 2, 4]);
}

#[test]
fn sizes() {
    assert_eq!(LUSTRE_MAXFSNAME, 8);
    assert_eq!(LUSTRE_MAXINSTANCE, 16);
    assert_eq!(MAX_OBD_NAME, 128);
    assert_eq!(UUID_MAX, 40);
    assert_eq!(LOV_MAXPOOLNAME, 15);
    assert_eq!(LUSTRE_JOBID_SIZE, 32);
    assert_eq!((NAME_MAX, XATTR_NAME_MAX), (255, 255));
    assert_eq!(CR_MAXSIZE, 952);
    // CR_MAXSIZE = A8(2*NAME_MAX + 2 + the offset with every extension).
    let all_ext = 64 + 32 + 32 + 8 + 16 + 24 + 4 + 256;
    assert_eq!(all_ext, 436);
    assert_eq!((2 * NAME_MAX + 2 + all_ext + 7) & !7, CR_MAXSIZE);
    assert_eq!(CHANGELOG_BUFFER_SZ, 4096);
    assert_eq!((FID_NOBRACE_LEN, FID_LEN), (40, 42));
    assert_eq!(FID_SEQ_NORMAL, 0x200000400);
    assert_eq!(LUSTRE_VOLATILE_HDR.len(), LUSTRE_VOLATILE_HDR_LEN);
    assert_eq!(&LUSTRE_VOLATILE_HDR[..5], &[b'.', 0x0C, 0x13, 0x14, 0x12]);
    assert_eq!(&LUSTRE_VOLATILE_HDR[5..], b":VOLATILE");
    assert_eq!(O_LOV_DELAY_CREATE, 0o100020400);
    assert_eq!(O_LOV_DELAY_CREATE_2_17, libc::O_NOCTTY | libc::O_ASYNC);
}

/// `_IOC(dir, type, nr, size)` as Linux defines it on x86_64 and aarch64.
const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((b'f' as u32) << 8) | nr
}
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

#[test]
fn ioctl_numbers() {
    let table = [
        (LL_IOC_HSM_STATE_GET, 0x802066d3),
        (LL_IOC_HSM_STATE_SET, 0x401866d4),
        (LL_IOC_HSM_CT_START, 0x401866d5),
        (LL_IOC_HSM_COPY_START, 0x400866d6),
        (LL_IOC_HSM_COPY_END, 0x400866d7),
        (LL_IOC_HSM_PROGRESS, 0x401866d8),
        (LL_IOC_HSM_REQUEST, 0x401866d9),
        (LL_IOC_HSM_ACTION, 0x801866dc),
        (LL_IOC_HSM_IMPORT, 0xc03066f5),
        (LL_IOC_PATH2FID, 0x800866ad),
        (OBD_IOC_FID2PATH, 0xc0086696),
    ];
    for (got, want) in table {
        assert_eq!(got, want, "{got:#x}");
    }
    // Cross-check the encodings against the payload sizes they are declared with.
    assert_eq!(
        LL_IOC_HSM_STATE_GET,
        ioc(IOC_READ, 0xd3, size_of::<hsm_user_state>())
    );
    assert_eq!(
        LL_IOC_HSM_STATE_SET,
        ioc(IOC_WRITE, 0xd4, size_of::<hsm_state_set>())
    );
    assert_eq!(
        LL_IOC_HSM_ACTION,
        ioc(IOC_READ, 0xdc, size_of::<hsm_current_action>())
    );
    assert_eq!(
        LL_IOC_HSM_PROGRESS,
        ioc(IOC_WRITE, 0xd8, size_of::<hsm_user_request>())
    );
    assert_eq!(
        LL_IOC_HSM_IMPORT,
        ioc(IOC_READ | IOC_WRITE, 0xf5, size_of::<hsm_user_import>())
    );
    assert_eq!(
        OBD_IOC_CHLG_SET_FLAGS,
        ioc(IOC_READ, 233, size_of::<std::ffi::c_long>())
    );
    assert_eq!(OBD_IOC_CHLG_POLL, OBD_IOC_CHLG_SET_FLAGS);
}
