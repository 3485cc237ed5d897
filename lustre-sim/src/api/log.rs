//! Logging controls and the library's own messages. As liblustreapi (`liblustreapi.c`:
//! `llapi_error`, `llapi_printf`), a message at or below the set level goes to the error (or
//! info) callback, by default to stderr as `<program>: <message>: <strerror> (<errno>)`; the
//! simulator emits the messages the real library emits on the paths it emulates (e.g.
//! `llapi_hsm_copytool_register`'s "cannot start copytool on '%s'").

use lustre_sys::llapi_log_callback_t;
use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

static LEVEL: AtomicI32 = AtomicI32::new(7);
static ERR_CB: AtomicUsize = AtomicUsize::new(0);
static INFO_CB: AtomicUsize = AtomicUsize::new(0);

/// # Safety
/// None beyond the C contract (any level is accepted and clamped to 0..7).
#[no_mangle]
pub unsafe extern "C" fn llapi_msg_set_level(level: c_int) {
    LEVEL.store(level.clamp(0, 7), Ordering::SeqCst);
}

/// # Safety
/// None.
#[no_mangle]
pub unsafe extern "C" fn llapi_msg_get_level() -> c_int {
    LEVEL.load(Ordering::SeqCst)
}

fn swap(slot: &AtomicUsize, cb: llapi_log_callback_t) -> llapi_log_callback_t {
    let new = cb.map(|f| f as usize).unwrap_or(0);
    let old = slot.swap(new, Ordering::SeqCst);
    if old == 0 {
        None
    } else {
        // SAFETY: `old` was stored from a value of this same function-pointer type.
        Some(unsafe {
            std::mem::transmute::<
                usize,
                unsafe extern "C" fn(
                    lustre_sys::llapi_message_level,
                    c_int,
                    *const std::ffi::c_char,
                    *mut std::ffi::c_void,
                ),
            >(old)
        })
    }
}

/// # Safety
/// `cb` is NULL or a function with the callback's C signature.
#[no_mangle]
pub unsafe extern "C" fn llapi_error_callback_set(
    cb: llapi_log_callback_t,
) -> llapi_log_callback_t {
    swap(&ERR_CB, cb)
}

/// # Safety
/// As [`llapi_error_callback_set`].
#[no_mangle]
pub unsafe extern "C" fn llapi_info_callback_set(cb: llapi_log_callback_t) -> llapi_log_callback_t {
    swap(&INFO_CB, cb)
}

/// `LLAPI_MSG_MASK` and `LLAPI_MSG_NO_ERRNO`.
const MSG_MASK: c_int = 0x0000_0007;
const MSG_NO_ERRNO: c_int = 0x0000_0010;
pub const MSG_ERROR: c_int = 2;

/// `llapi_error(level, err, "%s", text)` (`llapi_err_noerrno` = `level | LLAPI_MSG_NO_ERRNO`).
pub fn llapi_error(level: c_int, err: c_int, text: &str) {
    if (level & MSG_MASK) > LEVEL.load(Ordering::SeqCst) {
        return;
    }
    let err = err.abs();
    let Ok(msg) = std::ffi::CString::new(text.replace('\0', " ")) else {
        return;
    };
    let cb = ERR_CB.load(Ordering::SeqCst);
    if cb != 0 && call_with_va_list(cb, level, err, &msg) {
        return;
    }
    // `error_callback_default`.
    let prog = std::env::args()
        .next()
        .map(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(a)
        })
        .unwrap_or_default();
    if level & MSG_NO_ERRNO != 0 || err == 0 {
        eprintln!("{prog}: {text}");
    } else {
        // SAFETY: strerror returns a valid NUL-terminated string for any errno.
        let what = unsafe { std::ffi::CStr::from_ptr(libc::strerror(err)) };
        eprintln!("{prog}: {text}: {} ({err})", what.to_string_lossy());
    }
}

/// Calls a `llapi_log_callback_t` with the format "%s" and a `va_list` holding `msg`, built as
/// the platform ABI lays one out (all register slots used up, the argument in the overflow
/// area). False where that layout is not known here.
fn call_with_va_list(cb: usize, level: c_int, err: c_int, msg: &std::ffi::CStr) -> bool {
    type Cb = unsafe extern "C" fn(
        lustre_sys::llapi_message_level,
        c_int,
        *const std::ffi::c_char,
        *mut std::ffi::c_void,
    );
    // SAFETY: `cb` was stored from a value of this function-pointer type (see `swap`).
    let f = unsafe { std::mem::transmute::<usize, Cb>(cb) };
    let mut args: [usize; 1] = [msg.as_ptr() as usize];
    #[cfg(target_arch = "x86_64")]
    {
        #[repr(C)]
        struct VaListTag {
            gp_offset: u32,
            fp_offset: u32,
            overflow_arg_area: *mut std::ffi::c_void,
            reg_save_area: *mut std::ffi::c_void,
        }
        let mut tag = VaListTag {
            gp_offset: 48,
            fp_offset: 304,
            overflow_arg_area: args.as_mut_ptr().cast(),
            reg_save_area: std::ptr::null_mut(),
        };
        // SAFETY: a callback with the C signature; the va_list points at one pointer argument
        // for the "%s" format, alive for the call.
        unsafe {
            f(
                level as lustre_sys::llapi_message_level,
                err,
                c"%s".as_ptr(),
                (&mut tag as *mut VaListTag).cast(),
            )
        };
        true
    }
    #[cfg(target_arch = "aarch64")]
    {
        #[repr(C)]
        struct VaList {
            stack: *mut std::ffi::c_void,
            gr_top: *mut std::ffi::c_void,
            vr_top: *mut std::ffi::c_void,
            gr_offs: i32,
            vr_offs: i32,
        }
        let mut va = VaList {
            stack: args.as_mut_ptr().cast(),
            gr_top: std::ptr::null_mut(),
            vr_top: std::ptr::null_mut(),
            gr_offs: 0,
            vr_offs: 0,
        };
        // SAFETY: as on x86_64.
        unsafe {
            f(
                level as lustre_sys::llapi_message_level,
                err,
                c"%s".as_ptr(),
                (&mut va as *mut VaList).cast(),
            )
        };
        true
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (f, &mut args, level, err);
        false
    }
}
