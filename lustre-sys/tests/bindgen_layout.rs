//! With `--features bindgen` and installed Lustre headers: compares the hand-written layouts
//! with bindgen's view of the real headers. Compiles to nothing otherwise.
#![cfg(lustre_bindgen)]
#![allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code
)]

mod c {
    #![allow(clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

use std::mem::{align_of, offset_of, size_of};

macro_rules! same {
    ($t:ident { $($f:ident),* }) => {{
        assert_eq!(size_of::<lustre_sys::$t>(), size_of::<c::$t>(), "size of {}", stringify!($t));
        assert_eq!(align_of::<lustre_sys::$t>(), align_of::<c::$t>(), "align of {}", stringify!($t));
        $( assert_eq!(offset_of!(lustre_sys::$t, $f), offset_of!(c::$t, $f),
                      "offset of {}.{}", stringify!($t), stringify!($f)); )*
    }};
}

#[test]
fn hand_written_layouts_match_the_headers() {
    same!(lu_fid {
        f_seq,
        f_oid,
        f_ver
    });
    same!(hsm_extent { offset, length });
    same!(hsm_action_item {
        hai_len,
        hai_action,
        hai_fid,
        hai_dfid,
        hai_extent,
        hai_cookie,
        hai_gid,
        hai_data
    });
    same!(hsm_action_list {
        hal_version,
        hal_count,
        hal_compound_id,
        hal_flags,
        hal_archive_id,
        padding1,
        hal_fsname
    });
    same!(hsm_user_item {
        hui_fid,
        hui_extent
    });
    same!(hsm_request {
        hr_action,
        hr_archive_id,
        hr_flags,
        hr_itemcount,
        hr_data_len
    });
    same!(hsm_user_request {
        hur_request,
        hur_user_item
    });
    same!(hsm_user_state {
        hus_states,
        hus_archive_id,
        hus_in_progress_state,
        hus_in_progress_action,
        hus_in_progress_location
    });
    same!(hsm_current_action {
        hca_state,
        hca_action,
        hca_location
    });
    same!(hsm_state_set {
        hss_valid,
        hss_archive_id,
        hss_setmask,
        hss_clearmask
    });
    same!(hsm_progress {
        hp_fid,
        hp_cookie,
        hp_extent,
        hp_flags,
        hp_errval,
        padding
    });
    same!(hsm_copy {
        hc_data_version,
        hc_flags,
        hc_errval,
        padding,
        hc_hai
    });
    same!(hsm_user_import {
        hui_size,
        hui_atime,
        hui_mtime,
        hui_atime_ns,
        hui_mtime_ns,
        hui_uid,
        hui_gid,
        hui_mode,
        hui_archive_id
    });
    same!(changelog_rec {
        cr_namelen,
        cr_flags,
        cr_type,
        cr_index,
        cr_prev,
        cr_time,
        cr_pfid
    });
    same!(changelog_ext_rename { cr_sfid, cr_spfid });
    same!(changelog_ext_jobid { cr_jobid });
    same!(changelog_ext_extra_flags { cr_extra_flags });
    same!(changelog_ext_uidgid { cr_uid, cr_gid });
    same!(changelog_ext_nid {
        cr_nid,
        extra,
        padding
    });
    same!(changelog_ext_openmode { cr_openflags });
    same!(changelog_ext_xattr { cr_xattr });
    same!(kuc_hdr {
        kuc_magic,
        kuc_transport,
        kuc_flags,
        kuc_msgtype,
        kuc_msglen
    });
    same!(lustre_kernelcomm {
        lk_wfd,
        lk_rfd,
        lk_uid,
        lk_group,
        lk_data_count,
        lk_flags,
        lk_data
    });
    same!(getinfo_fid2path {
        gf_fid,
        gf_recno,
        gf_linkno,
        gf_pathlen
    });
}
