//! Logging controls. The simulator keeps the level and the callbacks (returning the previous
//! one, as the real library does) but never logs through them: it reports errors only through
//! return codes.

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
