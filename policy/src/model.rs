//! The engine's own values: a changelog record tagged with the MDT it came from, and what an
//! `lstat` tells the engine about a path. Everything else (FIDs, record types, HSM events and
//! states) is the `lustre` crate's.

use lustre::{ChangelogRecord, Fid, RecordType};
use serde::{Deserialize, Serialize};

/// One changelog record and the MDT it was read from (the MDT's position in the engine's MDT
/// list: cursors, holds and clears are per MDT).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Change {
    /// Index of the MDT (position in the engine's MDT list).
    pub mdt: usize,
    /// The decoded record.
    pub record: ChangelogRecord,
}

impl Change {
    /// A record of MDT `mdt` with only its index, type and target set (tests and the
    /// synthetic benchmark build on it).
    pub fn simple(mdt: usize, index: u64, rtype: RecordType, tfid: Fid) -> Change {
        Change {
            mdt,
            record: ChangelogRecord {
                index,
                rtype,
                tfid,
                ..ChangelogRecord::default()
            },
        }
    }
}

/// What kind of file a path is, as `lstat` says (blobs exist only for the first three; the
/// engine skips [`FileKind::Other`]: sockets, devices, FIFOs).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// Anything else (never exported).
    Other,
}

impl From<std::fs::FileType> for FileKind {
    fn from(ft: std::fs::FileType) -> FileKind {
        if ft.is_file() {
            FileKind::Regular
        } else if ft.is_dir() {
            FileKind::Directory
        } else if ft.is_symlink() {
            FileKind::Symlink
        } else {
            FileKind::Other
        }
    }
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Other => "other",
        })
    }
}

/// `lstat` of a path, the fields the blob metadata needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileStat {
    /// The file type.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// mtime, seconds since the epoch.
    pub mtime_sec: i64,
    /// mtime, nanoseconds within the second.
    pub mtime_nsec: u32,
}
