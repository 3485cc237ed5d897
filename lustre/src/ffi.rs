//! Small helpers shared by the FFI wrappers.

use crate::error::{Error, Result};
use lustre_sys::LustreApi;
use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The process-wide function table.
pub(crate) fn api() -> Result<&'static LustreApi> {
    lustre_sys::lib().map_err(Error::from)
}

/// A path as a C string (no NUL allowed inside).
pub(crate) fn c_path(call: &'static str, path: &Path) -> Result<CString> {
    c_bytes(call, path.as_os_str().as_bytes())
}

/// A string as a C string (no NUL allowed inside).
pub(crate) fn c_bytes(call: &'static str, b: &[u8]) -> Result<CString> {
    CString::new(b).map_err(|_| Error::InvalidArgument {
        call,
        reason: format!("{:?} contains a NUL byte", String::from_utf8_lossy(b)),
    })
}

/// The NUL-terminated prefix of a buffer the C side wrote into (the whole buffer if it has
/// no NUL).
pub(crate) fn until_nul(buf: &[u8]) -> &[u8] {
    match CStr::from_bytes_until_nul(buf) {
        Ok(s) => s.to_bytes(),
        Err(_) => buf,
    }
}

pub(crate) fn path_from_bytes(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

/// Copies bytes into an 8-byte aligned buffer (a `Vec<u64>`), as the C library's own heap
/// buffers are, so C code may read the structure with natural alignment.
pub(crate) fn aligned(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        *word = u64::from_ne_bytes(w);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_copy_keeps_bytes_and_alignment() {
        let bytes: Vec<u8> = (1..=13).collect();
        let words = aligned(&bytes);
        assert_eq!(words.len(), 2);
        assert_eq!(words.as_ptr() as usize % 8, 0);
        // SAFETY: reading the 16 initialised bytes of a live Vec<u64> as bytes.
        let view = unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), 16) };
        assert_eq!(&view[..13], &bytes[..]);
        assert_eq!(&view[13..], &[0, 0, 0]);
    }

    #[test]
    fn c_strings() {
        assert_eq!(until_nul(b"lustre\0junk"), b"lustre");
        assert_eq!(until_nul(b"abc"), b"abc");
        let e = c_path("llapi_path2fid", Path::new("a\0b")).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EINVAL));
        assert_eq!(
            c_bytes("x", b"/mnt/lustre").unwrap().as_bytes(),
            b"/mnt/lustre"
        );
    }
}
