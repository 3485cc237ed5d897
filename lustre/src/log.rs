//! Routing liblustreapi's own messages (`llapi_error`, `llapi_printf` ...) to the application.

use crate::error::Result;
use crate::ffi::{api, until_nul};
use libc::{c_char, c_int, c_void};
use lustre_sys as sys;
use std::sync::{Arc, RwLock};

/// One message from the library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogMessage<'a> {
    /// `LLAPI_MSG_FATAL` (1) .. `LLAPI_MSG_DEBUG` (6).
    pub level: u32,
    /// The errno the message is about, or 0.
    pub errno: i32,
    /// The message text.
    pub text: &'a str,
}

type Handler = Arc<dyn Fn(LogMessage<'_>) + Send + Sync>;

static HANDLER: RwLock<Option<Handler>> = RwLock::new(None);

/// Formatted messages longer than this are truncated.
const MESSAGE_MAX: usize = 2048;

extern "C" {
    // The `va_list` the library hands its callback is pointer-sized on x86_64 and aarch64; it
    // is passed through to vsnprintf untouched and consumed once.
    fn vsnprintf(s: *mut c_char, n: libc::size_t, format: *const c_char, ap: *mut c_void) -> c_int;
}

/// Sets the library's message level (`LLAPI_MSG_*`, clamped to 0..=7; the default 7 prints
/// everything).
pub fn set_log_level(level: u32) -> Result<()> {
    let api = api()?;
    let level = c_int::try_from(level.min(sys::LLAPI_MSG_MAX)).unwrap_or(0);
    // SAFETY: a plain integer argument.
    unsafe { (api.llapi_msg_set_level)(level) };
    Ok(())
}

/// Sends the library's messages to `handler` instead of stderr and stdout: its errors
/// (`llapi_error`, error callback) and, where the library has the info callback, its
/// informational output (`llapi_printf`, `llapi_info_callback_set`).
pub fn set_log_handler(handler: impl Fn(LogMessage<'_>) + Send + Sync + 'static) -> Result<()> {
    let api = api()?;
    *HANDLER.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(handler));
    // SAFETY: `forward` has the callback's C signature and never unwinds.
    unsafe { (api.llapi_error_callback_set)(Some(forward)) };
    if let Some(set_info) = api.llapi_info_callback_set {
        // SAFETY: as above.
        unsafe { set_info(Some(forward)) };
    }
    Ok(())
}

/// Restores the library's default (stderr / stdout) output.
pub fn clear_log_handler() -> Result<()> {
    let api = api()?;
    // SAFETY: NULL restores the library's default callback.
    unsafe { (api.llapi_error_callback_set)(None) };
    if let Some(set_info) = api.llapi_info_callback_set {
        // SAFETY: as above.
        unsafe { set_info(None) };
    }
    *HANDLER.write().unwrap_or_else(|p| p.into_inner()) = None;
    Ok(())
}

/// The C callback: formats the message and hands it to the installed handler.
unsafe extern "C" fn forward(
    level: sys::llapi_message_level,
    err: c_int,
    fmt: *const c_char,
    ap: *mut c_void,
) {
    if fmt.is_null() {
        return;
    }
    let mut buf = [0u8; MESSAGE_MAX];
    // SAFETY: `buf` has MESSAGE_MAX writable bytes; `fmt` and `ap` are the format and argument
    // list the library passed to this callback, used exactly once.
    let n = unsafe { vsnprintf(buf.as_mut_ptr().cast(), buf.len(), fmt, ap) };
    let text = if n < 0 { &[][..] } else { until_nul(&buf) };
    let text = String::from_utf8_lossy(text);
    let handler = HANDLER.read().ok().and_then(|h| h.clone());
    if let Some(handler) = handler {
        let msg = LogMessage {
            level: level & sys::LLAPI_MSG_MASK,
            errno: err,
            text: text.trim_end_matches('\n'),
        };
        // A panicking handler must not unwind into C.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(msg)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn messages_are_formatted_masked_and_forwarded() {
        let seen: Arc<Mutex<Vec<(u32, i32, String)>>> = Arc::default();
        let sink = Arc::clone(&seen);
        *HANDLER.write().unwrap() = Some(Arc::new(move |m: LogMessage<'_>| {
            sink.lock()
                .unwrap()
                .push((m.level, m.errno, m.text.to_string()));
        }));
        let long = format!("{}\0", "x".repeat(3000));
        // A zeroed va_list object (24 bytes on x86_64, 32 on aarch64): vsnprintf may copy it,
        // and formats without conversions never read an argument through it.
        let mut ap = [0u64; 4];
        let ap = ap.as_mut_ptr().cast::<c_void>();
        // SAFETY: valid formats and a valid (empty) argument list object.
        unsafe {
            forward(
                sys::LLAPI_MSG_ERROR | sys::LLAPI_MSG_NO_ERRNO,
                5,
                c"copy failed: 100%%\n".as_ptr(),
                ap,
            );
            forward(sys::LLAPI_MSG_DEBUG, 0, long.as_ptr().cast(), ap);
            forward(sys::LLAPI_MSG_INFO, 0, std::ptr::null(), ap);
        }
        *HANDLER.write().unwrap() = Some(Arc::new(|_| panic!("handler bug")));
        // SAFETY: as above; the panic must be contained.
        unsafe { forward(sys::LLAPI_MSG_WARN, 0, c"x".as_ptr(), ap) };
        *HANDLER.write().unwrap() = None;
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], (2, 5, "copy failed: 100%".to_string()));
        assert_eq!(seen[1].0, 6);
        assert_eq!(seen[1].2.len(), MESSAGE_MAX - 1);
    }
}
