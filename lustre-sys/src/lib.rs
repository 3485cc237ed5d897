//! Raw ABI of liblustreapi, hand-written from the measured facts in `lustre-abi.md`:
//! `#[repr(C)]` types ([`lu_fid`], [`hsm_action_item`], [`changelog_rec`], ...), constants
//! ([`HSMA_ARCHIVE`], [`HUA_ARCHIVE`], [`CL_CLOSE`], [`CLFE_UIDGID`], ...) and a function table
//! ([`LustreApi`], obtained with [`lib()`]) resolved at run time from `$LUSTREAPI_LIB` or
//! `liblustreapi.so.1`.
//!
//! No logic lives here; the header-inline helpers (`hai_first`, `changelog_rec_offset`, ...)
//! are reimplemented in `lustre::wire`, and the safe API is the `lustre` crate.
//!
//! With the `bindgen` feature and installed Lustre headers, the build also generates bindings
//! and the `bindgen_layout` test compares them with these hand-written layouts.
#![warn(missing_docs)]
#![allow(non_camel_case_types, non_upper_case_globals)]

mod api;
mod consts;
mod types;

pub use api::{
    candidates, candidates_from, hsm_copyaction_private, hsm_copytool_private, lib, llapi_layout,
    llapi_log_callback_t, LoadError, LustreApi, LUSTREAPI_DEVNAME, LUSTREAPI_LIB_ENV,
    LUSTREAPI_SONAME,
};
pub use consts::*;
pub use types::*;
