//! [`ExportRecord`]: where a file went, stored by the copytool on the file itself in the xattr
//! [`EXPORT_XATTR`] (DESIGN §4b) as compact JSON, and read back by RESTORE, REMOVE, conflict
//! detection, `catalog` and `verify`. This module is the only place that reads or writes it
//! (through `rustix`'s xattr calls):
//!
//! ```json
//! {"blob":"projects/a.dat","etag":"\"0x8DC...\"","data_version":7,"exported_at":"2026-11-25T20:00:00.123Z","size":1048576,
//!  "links":["projects/b.dat"],"layout":{"stripe_count":4,"stripe_size":4194304,"pool":"flash"}}
//! ```
//!
//! `links` (other hard links' blobs) and `layout` (the file's striping when it was exported) are
//! left out when empty; readers that predate them ignore them.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use rustix::fs::XattrFlags;
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

/// The xattr the copytool stores [`ExportRecord`]s under.
pub const EXPORT_XATTR: &str = "trusted.lustre_blob";

/// Largest record read: far above any real one (a blob name is at most 1024 bytes, and a file
/// has at most a few thousand hard links), and what the kernel allows for one xattr value.
const MAX_RECORD: usize = 64 << 10;

/// Where a file went: its blob (and its other links' blobs), what the store answered, and the
/// file's data version and layout at that moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    /// The full blob name (prefix included) of the file's first link.
    pub blob: String,
    /// The ETag the store answered for the committed blob (conflict detection compares it).
    pub etag: String,
    /// The file's data version (`llapi_get_data_version`) when its copy began.
    pub data_version: u64,
    /// When the blob was committed ([`crate::time`]'s one format; older records with any
    /// precision still read).
    #[serde(with = "crate::time::serde_rfc3339")]
    pub exported_at: SystemTime,
    /// Bytes in the blob.
    pub size: u64,
    /// Blobs of the file's other hard links (server-side copies of `blob`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// The file's layout when it was exported (a RESTORE recreates it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<lustre::Striping>,
}

impl ExportRecord {
    /// Every blob this record names: `blob`, then `links`.
    pub fn all_blobs(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.blob.as_str()).chain(self.links.iter().map(String::as_str))
    }

    /// The record as stored: compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a stored record; a malformed one (layout included) is an error.
    pub fn from_json(bytes: &[u8]) -> Result<ExportRecord, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The record of an open file. `Ok(None)` when it has none; an unparsable record is an
    /// `InvalidData` error rather than ignored, since ignoring it would drop conflict protection.
    pub fn read(file: &File) -> io::Result<Option<ExportRecord>> {
        let mut buf = vec![0u8; MAX_RECORD];
        match rustix::fs::fgetxattr(file, EXPORT_XATTR, &mut buf[..]) {
            Ok(n) => parse(&buf[..n]).map(Some),
            Err(Errno::NODATA) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The record of the file at `path` (a symlink's own, never its target's).
    pub fn read_at(path: &Path) -> io::Result<Option<ExportRecord>> {
        let mut buf = vec![0u8; MAX_RECORD];
        match rustix::fs::lgetxattr(path, EXPORT_XATTR, &mut buf[..]) {
            Ok(n) => parse(&buf[..n]).map(Some),
            Err(Errno::NODATA) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores the record on an open file, replacing any previous one.
    pub fn write(&self, file: &File) -> io::Result<()> {
        rustix::fs::fsetxattr(file, EXPORT_XATTR, &self.to_json(), XattrFlags::empty())
            .map_err(io::Error::from)
    }

    /// Removes the record of an open file; a file without one is fine.
    pub fn clear(file: &File) -> io::Result<()> {
        match rustix::fs::fremovexattr(file, EXPORT_XATTR) {
            Ok(()) | Err(Errno::NODATA) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the record of the file at `path` (not following a symlink); none is fine.
    pub fn clear_at(path: &Path) -> io::Result<()> {
        match rustix::fs::lremovexattr(path, EXPORT_XATTR) {
            Ok(()) | Err(Errno::NODATA) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn parse(bytes: &[u8]) -> io::Result<ExportRecord> {
    ExportRecord::from_json(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{EXPORT_XATTR} is not a valid export record: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample() -> ExportRecord {
        ExportRecord {
            blob: "pre/a%b #1?.txt".into(),
            etag: "\"0x1\"".into(),
            data_version: 7,
            exported_at: UNIX_EPOCH + Duration::new(1_700_000_000, 123_000_000),
            size: 42,
            links: vec!["pre/other link".into()],
            layout: Some(lustre::Striping::new(4, 4 << 20, Some("flash")).unwrap()),
        }
    }

    #[test]
    fn json_round_trip() {
        let r = sample();
        let j = r.to_json();
        let text = String::from_utf8(j.clone()).unwrap();
        assert!(
            text.contains("\"exported_at\":\"2023-11-14T22:13:20.123Z\""),
            "{text}"
        );
        assert!(text.contains("\"blob\":\"pre/a%b #1?.txt\""), "{text}");
        assert!(
            text.contains(r#""layout":{"stripe_count":4,"stripe_size":4194304,"pool":"flash"}"#),
            "{text}"
        );
        assert_eq!(ExportRecord::from_json(&j).unwrap(), r);
        assert!(ExportRecord::from_json(b"{}").is_err());
    }

    #[test]
    fn older_records_without_links_or_layout_still_read() {
        let old = br#"{"blob":"p/a","etag":"e","data_version":1,"exported_at":"2023-11-14T22:13:20.000Z","size":3}"#;
        let r = ExportRecord::from_json(old).unwrap();
        assert_eq!((r.links.len(), &r.layout), (0, &None));
        let text = String::from_utf8(r.to_json()).unwrap();
        assert!(
            !text.contains("links") && !text.contains("layout"),
            "{text}"
        );
    }

    #[test]
    fn a_malformed_layout_makes_the_record_invalid() {
        let bad = br#"{"blob":"p/a","etag":"e","data_version":1,"exported_at":"2023-11-14T22:13:20Z","size":3,"layout":{"stripe_count":4,"stripe_size":1000}}"#;
        let e = ExportRecord::from_json(bad).unwrap_err();
        assert!(e.to_string().contains("stripe size 1000"), "{e}");
    }

    #[test]
    fn all_blobs_lists_primary_then_links() {
        assert_eq!(
            sample().all_blobs().collect::<Vec<_>>(),
            ["pre/a%b #1?.txt", "pre/other link"]
        );
    }

    /// Through the xattr, by fd and by path. `trusted.*` needs CAP_SYS_ADMIN, which the test
    /// environment (like the copytool) has.
    #[test]
    fn record_round_trips_through_the_xattr() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(ExportRecord::read(&file).unwrap(), None);
        sample().write(&file).unwrap();
        assert_eq!(ExportRecord::read(&file).unwrap(), Some(sample()));
        assert_eq!(ExportRecord::read_at(&path).unwrap(), Some(sample()));
        ExportRecord::clear(&file).unwrap();
        assert_eq!(ExportRecord::read_at(&path).unwrap(), None);
        ExportRecord::clear(&file).unwrap();
        sample().write(&file).unwrap();
        ExportRecord::clear_at(&path).unwrap();
        assert_eq!(ExportRecord::read(&file).unwrap(), None);
        ExportRecord::clear_at(&path).unwrap();
    }

    #[test]
    fn a_garbage_record_is_invalid_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let file = File::open(&path).unwrap();
        rustix::fs::fsetxattr(&file, EXPORT_XATTR, b"{x}", XattrFlags::empty()).unwrap();
        let err = ExportRecord::read(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().starts_with(EXPORT_XATTR), "{err}");
        assert_eq!(
            ExportRecord::read_at(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
