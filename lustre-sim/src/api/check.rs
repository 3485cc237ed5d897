//! Compile-time proof that every export has exactly the type of its `lustre_sys::LustreApi`
//! field: assigning a function item to a field only compiles when the signatures are equal.
//! Never called.

use super::{changelog::*, copytool::*, hsm::*, layout::*, log::*, paths::*};

#[allow(dead_code)]
fn exports_match_the_function_table(t: &mut lustre_sys::LustreApi) {
    t.llapi_hsm_copytool_register = llapi_hsm_copytool_register;
    t.llapi_hsm_copytool_unregister = llapi_hsm_copytool_unregister;
    t.llapi_hsm_copytool_get_fd = llapi_hsm_copytool_get_fd;
    t.llapi_hsm_copytool_recv = llapi_hsm_copytool_recv;
    t.llapi_hsm_action_begin = llapi_hsm_action_begin;
    t.llapi_hsm_action_end = llapi_hsm_action_end;
    t.llapi_hsm_action_progress = llapi_hsm_action_progress;
    t.llapi_hsm_action_get_dfid = llapi_hsm_action_get_dfid;
    t.llapi_hsm_action_get_fd = llapi_hsm_action_get_fd;
    t.llapi_hsm_request = llapi_hsm_request;
    t.llapi_hsm_state_get = llapi_hsm_state_get;
    t.llapi_hsm_state_set = llapi_hsm_state_set;
    t.llapi_hsm_current_action = llapi_hsm_current_action;
    t.llapi_hsm_import = llapi_hsm_import;
    t.llapi_changelog_start = llapi_changelog_start;
    t.llapi_changelog_set_xflags = llapi_changelog_set_xflags;
    t.llapi_changelog_recv = llapi_changelog_recv;
    t.llapi_changelog_free = llapi_changelog_free;
    t.llapi_changelog_fini = llapi_changelog_fini;
    t.llapi_changelog_get_fd = llapi_changelog_get_fd;
    t.llapi_changelog_clear = llapi_changelog_clear;
    t.llapi_fid2path = llapi_fid2path;
    t.llapi_path2fid = llapi_path2fid;
    t.llapi_fd2fid = llapi_fd2fid;
    t.llapi_open_by_fid = llapi_open_by_fid;
    t.llapi_get_mdt_index_by_fid = llapi_get_mdt_index_by_fid;
    t.llapi_search_fsname = llapi_search_fsname;
    t.llapi_search_mounts = llapi_search_mounts;
    t.llapi_getname = llapi_getname;
    t.llapi_get_data_version = llapi_get_data_version;
    t.llapi_msg_set_level = llapi_msg_set_level;
    t.llapi_error_callback_set = llapi_error_callback_set;
    t.llapi_changelog_in_buf = Some(llapi_changelog_in_buf);
    t.llapi_changelog_repack_rec = Some(llapi_changelog_repack_rec);
    t.llapi_changelog_start_user = Some(llapi_changelog_start_user);
    t.llapi_fid2path_at = Some(llapi_fid2path_at);
    t.llapi_open_by_fid_at = Some(llapi_open_by_fid_at);
    t.llapi_fid_parse = Some(llapi_fid_parse);
    t.llapi_root_path_open = Some(llapi_root_path_open);
    t.llapi_info_callback_set = Some(llapi_info_callback_set);
    t.llapi_layout_alloc = Some(llapi_layout_alloc);
    t.llapi_layout_free = Some(llapi_layout_free);
    t.llapi_layout_get_by_fd = Some(llapi_layout_get_by_fd);
    t.llapi_layout_get_by_path = Some(llapi_layout_get_by_path);
    t.llapi_layout_stripe_count_get = Some(llapi_layout_stripe_count_get);
    t.llapi_layout_stripe_count_set = Some(llapi_layout_stripe_count_set);
    t.llapi_layout_stripe_size_get = Some(llapi_layout_stripe_size_get);
    t.llapi_layout_stripe_size_set = Some(llapi_layout_stripe_size_set);
    t.llapi_layout_pool_name_get = Some(llapi_layout_pool_name_get);
    t.llapi_layout_pool_name_set = Some(llapi_layout_pool_name_set);
    t.llapi_layout_is_composite = Some(llapi_layout_is_composite);
    t.llapi_layout_file_open = Some(llapi_layout_file_open);
}
