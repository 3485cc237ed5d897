//! The liblustreapi function table, resolved at run time (lustre-abi.md §3).
//!
//! The library is loaded from the path in `LUSTREAPI_LIB` when that variable is set, else from
//! the SONAME `liblustreapi.so.1` (then the development name `liblustreapi.so`). Symbols that
//! every supported version (2.12+) exports are required; symbols added later under the same
//! SONAME are looked up one by one and are `None` when absent, so one missing symbol never
//! stops the rest.
//!
//! Only the functions the copytool, the policy engine and the simulator use are declared: the
//! simulator implements every symbol declared here.

use std::ffi::{c_char, c_int, c_longlong, c_ulonglong, c_void, OsString};
use std::fmt;
use std::sync::OnceLock;

use crate::consts::{changelog_rec_extra_flags, changelog_rec_flags, llapi_message_level};
use crate::types::{
    changelog_rec, hsm_action_item, hsm_action_list, hsm_current_action, hsm_extent,
    hsm_user_request, hsm_user_state, lu_fid,
};

/// Opaque copytool handle (`struct hsm_copytool_private`).
#[repr(C)]
pub struct hsm_copytool_private {
    _opaque: [u8; 0],
}

/// Opaque copy-action handle (`struct hsm_copyaction_private`).
#[repr(C)]
pub struct hsm_copyaction_private {
    _opaque: [u8; 0],
}

/// Opaque layout handle (`struct llapi_layout`), allocated by `llapi_layout_alloc` or
/// `llapi_layout_get_by_*` and released with `llapi_layout_free`.
#[repr(C)]
pub struct llapi_layout {
    _opaque: [u8; 0],
}

/// `llapi_log_callback_t`. The `va_list` is passed as an opaque pointer (pointer-sized on
/// x86_64 and aarch64); `level` may carry `LLAPI_MSG_NO_ERRNO`, mask it with `LLAPI_MSG_MASK`.
#[allow(non_camel_case_types)]
pub type llapi_log_callback_t = Option<
    unsafe extern "C" fn(
        level: llapi_message_level,
        err: c_int,
        fmt: *const c_char,
        ap: *mut c_void,
    ),
>;

/// Environment variable naming the library file to load instead of `liblustreapi.so.1`.
pub const LUSTREAPI_LIB_ENV: &str = "LUSTREAPI_LIB";
/// The SONAME of liblustreapi (unchanged from 2.12 to master).
pub const LUSTREAPI_SONAME: &str = "liblustreapi.so.1";
/// The development symlink name, tried after the SONAME.
pub const LUSTREAPI_DEVNAME: &str = "liblustreapi.so";

/// Why the function table could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// No candidate could be opened; each entry is `path (loader message)`.
    NotFound {
        /// Every path tried.
        tried: Vec<String>,
    },
    /// The library opened but lacks a symbol every supported version exports.
    MissingSymbol {
        /// The library opened.
        library: String,
        /// The symbol it lacks.
        symbol: &'static str,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NotFound { tried } => write!(
                f,
                "liblustreapi not found (set {LUSTREAPI_LIB_ENV} to its path); tried: {}",
                tried.join("; ")
            ),
            LoadError::MissingSymbol { library, symbol } => {
                write!(f, "{library}: required symbol {symbol} is missing")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// The library file names to try, in order: `$LUSTREAPI_LIB` alone when set and not empty,
/// else the SONAME and then the development name.
pub fn candidates() -> Vec<OsString> {
    candidates_from(std::env::var_os(LUSTREAPI_LIB_ENV))
}

/// [`candidates`] for a given value of `LUSTREAPI_LIB`.
pub fn candidates_from(env_value: Option<OsString>) -> Vec<OsString> {
    match env_value {
        Some(path) if !path.is_empty() => vec![path],
        _ => vec![LUSTREAPI_SONAME.into(), LUSTREAPI_DEVNAME.into()],
    }
}

/// The process-wide function table, loaded on first use from [`candidates`]. The outcome (also
/// a failure) is cached for the life of the process.
pub fn lib() -> Result<&'static LustreApi, LoadError> {
    static LIB: OnceLock<Result<LustreApi, LoadError>> = OnceLock::new();
    LIB.get_or_init(|| LustreApi::load_first(&candidates()))
        .as_ref()
        .map_err(Clone::clone)
}

macro_rules! function_table {
    (
        required { $( $(#[$rm:meta])* $rname:ident : fn( $($rarg:ty),* ) $(-> $rret:ty)? ; )* }
        optional { $( $(#[$om:meta])* $oname:ident : fn( $($oarg:ty),* ) $(-> $oret:ty)? ; )* }
    ) => {
        /// Typed pointers to the liblustreapi functions. Required ones are plain function
        /// pointers; optional ones (added after 2.12) are `Option`s. Calling any of them is
        /// `unsafe`: the caller upholds the C contract of that function.
        pub struct LustreApi {
            path: String,
            $( #[doc = concat!("`", stringify!($rname), "` of liblustreapi.")] $(#[$rm])* pub $rname: unsafe extern "C" fn( $($rarg),* ) $(-> $rret)?, )*
            $( #[doc = concat!("`", stringify!($oname), "` of liblustreapi, when it has one.")] $(#[$om])* pub $oname: Option<unsafe extern "C" fn( $($oarg),* ) $(-> $oret)?>, )*
            // Keeps the library mapped for as long as the pointers above can be used. Declared
            // last so it is dropped after them.
            _lib: libloading::Library,
        }

        impl LustreApi {
            fn from_library(lib: libloading::Library, path: String) -> Result<Self, LoadError> {
                $(
                    // SAFETY: the symbol is looked up by its exact C name and typed with the C
                    // prototype from lustre-abi.md §3; the pointer is only used while `_lib`
                    // (moved into the same struct) keeps the library mapped.
                    let $rname = unsafe {
                        lib.get::<unsafe extern "C" fn( $($rarg),* ) $(-> $rret)?>(
                            concat!(stringify!($rname), "\0").as_bytes(),
                        )
                    }
                    .map(|sym| *sym)
                    .map_err(|_| LoadError::MissingSymbol {
                        library: path.clone(),
                        symbol: stringify!($rname),
                    })?;
                )*
                $(
                    // SAFETY: as for the required symbols; absence is allowed and gives None.
                    let $oname = unsafe {
                        lib.get::<unsafe extern "C" fn( $($oarg),* ) $(-> $oret)?>(
                            concat!(stringify!($oname), "\0").as_bytes(),
                        )
                    }
                    .ok()
                    .map(|sym| *sym);
                )*
                Ok(LustreApi { path, $($rname,)* $($oname,)* _lib: lib })
            }

            /// Names of the required symbols.
            pub const REQUIRED_SYMBOLS: &'static [&'static str] = &[$(stringify!($rname)),*];
            /// Names of the optional symbols.
            pub const OPTIONAL_SYMBOLS: &'static [&'static str] = &[$(stringify!($oname)),*];

            /// The names of the optional symbols this library lacks.
            pub fn missing_optional(&self) -> Vec<&'static str> {
                let mut missing = Vec::new();
                $( if self.$oname.is_none() { missing.push(stringify!($oname)); } )*
                missing
            }
        }
    };
}

function_table! {
    required {
        // ---- copytool (§3.1) ----
        llapi_hsm_copytool_register: fn(*mut *mut hsm_copytool_private, *const c_char, c_int, *mut c_int, c_int) -> c_int;
        llapi_hsm_copytool_unregister: fn(*mut *mut hsm_copytool_private) -> c_int;
        llapi_hsm_copytool_get_fd: fn(*mut hsm_copytool_private) -> c_int;
        llapi_hsm_copytool_recv: fn(*mut hsm_copytool_private, *mut *mut hsm_action_list, *mut c_int) -> c_int;
        /// The last argument is C `bool`.
        llapi_hsm_action_begin: fn(*mut *mut hsm_copyaction_private, *const hsm_copytool_private, *const hsm_action_item, c_int, c_int, bool) -> c_int;
        llapi_hsm_action_end: fn(*mut *mut hsm_copyaction_private, *const hsm_extent, c_int, c_int) -> c_int;
        llapi_hsm_action_progress: fn(*mut hsm_copyaction_private, *const hsm_extent, u64, c_int) -> c_int;
        llapi_hsm_action_get_dfid: fn(*const hsm_copyaction_private, *mut lu_fid) -> c_int;
        llapi_hsm_action_get_fd: fn(*const hsm_copyaction_private) -> c_int;
        // ---- HSM requests and state ----
        llapi_hsm_request: fn(*const c_char, *const hsm_user_request) -> c_int;
        llapi_hsm_state_get: fn(*const c_char, *mut hsm_user_state) -> c_int;
        llapi_hsm_state_set: fn(*const c_char, u64, u64, u32) -> c_int;
        llapi_hsm_current_action: fn(*const c_char, *mut hsm_current_action) -> c_int;
        /// `(dst, archive, st, stripe_size, stripe_offset, stripe_count, stripe_pattern, pool_name, newfid)`.
        llapi_hsm_import: fn(*const c_char, c_int, *const libc::stat, c_ulonglong, c_int, c_int, c_int, *mut c_char, *mut lu_fid) -> c_int;
        // ---- changelog (§3.2) ----
        llapi_changelog_start: fn(*mut *mut c_void, crate::consts::changelog_send_flag, *const c_char, c_longlong) -> c_int;
        llapi_changelog_set_xflags: fn(*mut c_void, crate::consts::changelog_send_extra_flag) -> c_int;
        llapi_changelog_recv: fn(*mut c_void, *mut *mut changelog_rec) -> c_int;
        llapi_changelog_free: fn(*mut *mut changelog_rec) -> c_int;
        llapi_changelog_fini: fn(*mut *mut c_void) -> c_int;
        llapi_changelog_get_fd: fn(*mut c_void) -> c_int;
        llapi_changelog_clear: fn(*const c_char, *const c_char, c_longlong) -> c_int;
        // ---- FID, path and mount helpers (§3.3) ----
        /// `(device, fidstr, path, pathlen, recno, linkno)`.
        llapi_fid2path: fn(*const c_char, *const c_char, *mut c_char, c_int, *mut c_longlong, *mut c_int) -> c_int;
        llapi_path2fid: fn(*const c_char, *mut lu_fid) -> c_int;
        llapi_fd2fid: fn(c_int, *mut lu_fid) -> c_int;
        llapi_open_by_fid: fn(*const c_char, *const lu_fid, c_int) -> c_int;
        llapi_get_mdt_index_by_fid: fn(c_int, *const lu_fid, *mut c_int) -> c_int;
        /// `fsname` must hold at least `MAX_OBD_NAME + 1` bytes (unbounded copy).
        llapi_search_fsname: fn(*const c_char, *mut c_char) -> c_int;
        /// `mntdir` must hold `PATH_MAX` bytes (the path is strcpy'd into it first).
        llapi_search_mounts: fn(*const c_char, c_int, *mut c_char, *mut c_char) -> c_int;
        llapi_getname: fn(*const c_char, *mut c_char, libc::size_t) -> c_int;
        llapi_get_data_version: fn(c_int, *mut u64, u64) -> c_int;
        // ---- logging (§3.4) ----
        llapi_msg_set_level: fn(c_int);
        llapi_error_callback_set: fn(llapi_log_callback_t) -> llapi_log_callback_t;
    }
    optional {
        /// Since 2.13.
        llapi_changelog_in_buf: fn(*mut c_void) -> c_int;
        /// Since 2.16.
        llapi_changelog_repack_rec: fn(*const changelog_rec, changelog_rec_flags, changelog_rec_extra_flags) -> *mut changelog_rec;
        /// Master only: `(priv, flags, mdtname, username, mask, startrec)`.
        llapi_changelog_start_user: fn(*mut *mut c_void, crate::consts::changelog_send_flag, *const c_char, *const c_char, u64, c_longlong) -> c_int;
        /// Since 2.15: `(mnt_fd, fid, path, pathlen, recno, linkno)`.
        llapi_fid2path_at: fn(c_int, *const lu_fid, *mut c_char, c_int, *mut c_longlong, *mut c_int) -> c_int;
        /// Since 2.16.
        llapi_open_by_fid_at: fn(c_int, *const lu_fid, c_int) -> c_int;
        /// Since 2.14: `(fidstr, fid, endptr)`.
        llapi_fid_parse: fn(*const c_char, *mut lu_fid, *mut *mut c_char) -> c_int;
        /// Since 2.16: `(device, outfd)`.
        llapi_root_path_open: fn(*const c_char, *mut c_int) -> c_int;
        /// `llapi_printf`'s callback (info messages; stdout by default). In every version this
        /// project supports, optional so a library without it still loads.
        llapi_info_callback_set: fn(llapi_log_callback_t) -> llapi_log_callback_t;
        // ---- layouts (lustreapi.h, liblustreapi_layout.c): exported by every version since 2.7, optional so a library
        // without them (a test mock) still serves the rest; the product then keeps the
        // file system's default layout. All return 0 / -1 with errno (not -errno), the
        // getters NULL with errno. ----
        llapi_layout_alloc: fn() -> *mut llapi_layout;
        llapi_layout_free: fn(*mut llapi_layout);
        /// `(fd, enum llapi_layout_get_flags)`.
        llapi_layout_get_by_fd: fn(c_int, u32) -> *mut llapi_layout;
        /// `(path, enum llapi_layout_get_flags)`.
        llapi_layout_get_by_path: fn(*const c_char, u32) -> *mut llapi_layout;
        llapi_layout_stripe_count_get: fn(*const llapi_layout, *mut u64) -> c_int;
        llapi_layout_stripe_count_set: fn(*mut llapi_layout, u64) -> c_int;
        llapi_layout_stripe_size_get: fn(*const llapi_layout, *mut u64) -> c_int;
        llapi_layout_stripe_size_set: fn(*mut llapi_layout, u64) -> c_int;
        /// `(layout, dest, n)`: snprintf of the pool name ("" for none) into `dest`.
        llapi_layout_pool_name_get: fn(*const llapi_layout, *mut c_char, libc::size_t) -> c_int;
        /// Strips an `fsname.` prefix; longer than `LOV_MAXPOOLNAME` gives EINVAL.
        llapi_layout_pool_name_set: fn(*mut llapi_layout, *const c_char) -> c_int;
        /// C `bool` result; takes a non-const pointer in the header although it only reads.
        llapi_layout_is_composite: fn(*mut llapi_layout) -> bool;
        /// `(path, open_flags, mode, layout)`: opens `path` (adding O_LOV_DELAY_CREATE with
        /// O_CREAT) and sets the layout with `fsetxattr("lustre.lov")`; the fd or -1 + errno.
        llapi_layout_file_open: fn(*const c_char, c_int, libc::mode_t, *const llapi_layout) -> c_int;
    }
}

impl LustreApi {
    /// Loads the first candidate that opens. A candidate that opens but lacks a required
    /// symbol is an error (not skipped): it is the library the user pointed at.
    pub fn load_first(candidates: &[OsString]) -> Result<LustreApi, LoadError> {
        let mut tried = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let shown = candidate.to_string_lossy().into_owned();
            // SAFETY: loading a shared library runs its initialisers. liblustreapi (or a
            // stand-in named by the administrator through LUSTREAPI_LIB) is a plain C library
            // whose initialisers only set up its own state.
            match unsafe { libloading::Library::new(candidate) } {
                Ok(lib) => return LustreApi::from_library(lib, shown),
                Err(err) => tried.push(format!("{shown} ({})", one_line(&err.to_string()))),
            }
        }
        Err(LoadError::NotFound { tried })
    }

    /// The file name the table was loaded from.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Debug for LustreApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LustreApi")
            .field("path", &self.path)
            .field("missing_optional", &self.missing_optional())
            .finish()
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
