//! The per-file export record (DESIGN §4b): after a successful archive the copytool stores on the file
//! the xattr `trusted.lustre_blob` holding JSON with the blob name, its ETag, the data version exported
//! and when. Conflict detection (if-match that ETag), RESTORE (which blob) and REMOVE (which blobs to
//! delete) read it back.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;

use serde::{Deserialize, Serialize};

/// The xattr holding the record.
pub const XATTR_NAME: &str = "trusted.lustre_blob";

/// The export record (JSON in the xattr). The same shape as `blob::ExportRecord` (which the policy
/// engine's `catalog` reads) plus `links`, which readers that do not know it ignore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    /// The data blob (first link's name).
    pub blob: String,
    pub etag: String,
    pub data_version: u64,
    /// RFC 3339 UTC.
    pub exported_at: String,
    pub size: u64,
    /// Blobs of the file's other hard links (server-side copies of `blob`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
}

impl ExportRecord {
    /// Every blob this record names.
    pub fn all_blobs(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.blob.as_str()).chain(self.links.iter().map(String::as_str))
    }
}

fn xattr_name() -> CString {
    // The constant has no NUL byte.
    CString::new(XATTR_NAME).unwrap_or_default()
}

/// Reads the record from an open file. `Ok(None)` when the file has none; an unparsable record is an
/// error (EINVAL) rather than silently ignored, since ignoring it would drop conflict protection.
pub fn read(file: &File) -> std::io::Result<Option<ExportRecord>> {
    let name = xattr_name();
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: fd is open for the lifetime of `file`; name is NUL-terminated; buf is valid for
        // buf.len() writable bytes.
        let n = unsafe {
            libc::fgetxattr(
                file.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            break;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENODATA) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            _ => return Err(err),
        }
    }
    serde_json::from_slice(&buf).map(Some).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{XATTR_NAME} is not a valid export record: {e}"),
        )
    })
}

/// Stores the record on an open file (replacing any previous one).
pub fn write(file: &File, record: &ExportRecord) -> std::io::Result<()> {
    let json = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    let name = xattr_name();
    // SAFETY: fd is open for the lifetime of `file`; name is NUL-terminated; json is valid for
    // json.len() readable bytes.
    let rc = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            name.as_ptr(),
            json.as_ptr().cast(),
            json.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Removes the record; a file without one is fine.
pub fn clear(file: &File) -> std::io::Result<()> {
    let name = xattr_name();
    // SAFETY: fd is open for the lifetime of `file`; name is NUL-terminated.
    let rc = unsafe { libc::fremovexattr(file.as_raw_fd(), name.as_ptr()) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENODATA) {
        Ok(())
    } else {
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ExportRecord {
        ExportRecord {
            blob: "dir/a b%.txt".into(),
            etag: "\"0x8D\"".into(),
            data_version: 7,
            exported_at: "2023-11-14T22:13:20.000Z".into(),
            size: 12,
            links: vec!["other/link".into()],
        }
    }

    #[test]
    fn record_round_trips_through_the_xattr() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(read(&file).unwrap(), None);
        write(&file, &sample()).unwrap();
        assert_eq!(read(&file).unwrap(), Some(sample()));
        clear(&file).unwrap();
        assert_eq!(read(&file).unwrap(), None);
        clear(&file).unwrap();
    }

    #[test]
    fn garbage_record_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let file = File::open(&path).unwrap();
        let name = xattr_name();
        // SAFETY: valid fd, NUL-terminated name, 3 readable bytes.
        let rc = unsafe {
            libc::fsetxattr(
                file.as_raw_fd(),
                name.as_ptr(),
                b"{x}".as_ptr().cast(),
                3,
                0,
            )
        };
        assert_eq!(rc, 0);
        let err = read(&file).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn all_blobs_lists_primary_then_links() {
        let r = sample();
        assert_eq!(
            r.all_blobs().collect::<Vec<_>>(),
            ["dir/a b%.txt", "other/link"]
        );
    }
}

#[cfg(test)]
mod compat {
    use super::*;

    #[test]
    fn blob_crate_reads_our_record() {
        let ours = ExportRecord {
            blob: "p/a.dat".into(),
            etag: "\"0x8DC\"".into(),
            data_version: 7,
            exported_at: blob::time::rfc3339(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_100_000_123),
            ),
            size: 42,
            links: vec!["p/b.dat".into()],
        };
        let json = serde_json::to_vec(&ours).unwrap();
        let theirs = blob::ExportRecord::from_json(&json).unwrap();
        assert_eq!(
            (theirs.blob.as_str(), theirs.etag.as_str()),
            ("p/a.dat", "\"0x8DC\"")
        );
        assert_eq!((theirs.data_version, theirs.size), (7, 42));
        assert_eq!(
            theirs.exported_at,
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_100_000_123)
        );
    }
}
