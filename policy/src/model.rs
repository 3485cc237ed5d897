//! The engine's view of Lustre: its own small record and file types, so the engine can be tested
//! with in-memory fakes and fed by the real `lustre` crate through [`crate::real`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A Lustre FID (`[seq:oid:ver]`), the key of every per-file state in the engine.
/// Serialised as its text form, so it can key JSON maps in the state file.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Fid {
    pub seq: u64,
    pub oid: u32,
    pub ver: u32,
}

impl Fid {
    pub const fn new(seq: u64, oid: u32, ver: u32) -> Fid {
        Fid { seq, oid, ver }
    }
    pub fn is_zero(&self) -> bool {
        self.seq == 0 && self.oid == 0 && self.ver == 0
    }
}

impl fmt::Display for Fid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // DFID: "%#llx" for the sequence (plain "0" when zero), "0x%x" for the others.
        if self.seq == 0 {
            write!(f, "[0:0x{:x}:0x{:x}]", self.oid, self.ver)
        } else {
            write!(f, "[{:#x}:0x{:x}:0x{:x}]", self.seq, self.oid, self.ver)
        }
    }
}

impl FromStr for Fid {
    type Err = String;
    fn from_str(s: &str) -> Result<Fid, String> {
        let t = s.trim().trim_start_matches('[').trim_end_matches(']');
        let parts: Vec<&str> = t.split(':').collect();
        let num = |p: &str| -> Result<u64, String> {
            let p = p.trim();
            let r = match p.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => p.parse(),
            };
            r.map_err(|_| format!("invalid FID \"{s}\""))
        };
        if parts.len() != 3 {
            return Err(format!("invalid FID \"{s}\""));
        }
        let oid = u32::try_from(num(parts[1])?).map_err(|_| format!("invalid FID \"{s}\""))?;
        let ver = u32::try_from(num(parts[2])?).map_err(|_| format!("invalid FID \"{s}\""))?;
        Ok(Fid::new(num(parts[0])?, oid, ver))
    }
}

impl Serialize for Fid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Fid, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The changelog record types the engine distinguishes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChangeKind {
    Mark,
    Create,
    Mkdir,
    Hardlink,
    Softlink,
    Mknod,
    Unlink,
    Rmdir,
    Rename,
    Close,
    Layout,
    Trunc,
    Setattr,
    Setxattr,
    Hsm,
    Mtime,
    Ctime,
    Atime,
    Other,
}

/// HSM event of a CL_HSM record (`HE_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HsmEventKind {
    Archive,
    Restore,
    Cancel,
    Release,
    Remove,
    State,
    Other,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HsmEvent {
    pub event: HsmEventKind,
    /// Positive errno (0 = success; 0x7F = overflow).
    pub error: u8,
    pub dirty: bool,
}

/// One changelog record, decoded, as the engine needs it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Change {
    /// Index of the MDT (position in the engine's MDT list).
    pub mdt: usize,
    pub index: u64,
    pub kind: ChangeKind,
    /// Record flags (`cr_flags`): CLF_UNLINK_LAST etc.
    pub flags: u16,
    pub tfid: Fid,
    pub pfid: Fid,
    /// Entry name (for RENAME: the new name).
    pub name: Vec<u8>,
    /// RENAME: (renamed object, old parent, old name).
    pub rename: Option<(Fid, Fid, Vec<u8>)>,
    /// SETXATTR: the attribute name.
    pub xattr: Option<String>,
    pub hsm: Option<HsmEvent>,
}

impl Change {
    /// A record with only kind and target set (tests and the synthetic benchmark build on it).
    pub fn simple(mdt: usize, index: u64, kind: ChangeKind, tfid: Fid) -> Change {
        Change {
            mdt,
            index,
            kind,
            flags: 0,
            tfid,
            pfid: Fid::default(),
            name: Vec::new(),
            rename: None,
            xattr: None,
            hsm: None,
        }
    }
}

/// `CLF_UNLINK_LAST`: the last link went away.
pub const CLF_UNLINK_LAST: u16 = 0x0001;

/// What kind of file a path is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
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

/// `lstat` of a path, the fields the blob metadata needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileStat {
    pub kind: FileKind,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
}

/// HSM flags of a file (`hsm_user_state.hus_states`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct HsmFlags {
    pub exists: bool,
    pub archived: bool,
    pub dirty: bool,
    pub released: bool,
    /// `hsm_current_action` reports a request waiting or running.
    pub action_pending: bool,
}

impl HsmFlags {
    /// Exported and unchanged since: nothing to do.
    pub fn is_clean_archive(&self) -> bool {
        self.archived && !self.dirty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fid_text_round_trips() {
        let f = Fid::new(0x200000401, 0x1, 0);
        assert_eq!(f.to_string(), "[0x200000401:0x1:0x0]");
        assert_eq!("[0x200000401:0x1:0x0]".parse::<Fid>(), Ok(f));
        assert_eq!("0x200000401:0x1:0x0".parse::<Fid>(), Ok(f));
        assert_eq!(Fid::default().to_string(), "[0:0x0:0x0]");
        assert_eq!("[0:0x0:0x0]".parse::<Fid>(), Ok(Fid::default()));
        assert!("[0x1:0x2]".parse::<Fid>().is_err());
        assert!("[0x1:0x100000000:0]".parse::<Fid>().is_err());
        let json = serde_json::to_string(&std::collections::BTreeMap::from([(f, 1)])).unwrap();
        assert_eq!(json, r#"{"[0x200000401:0x1:0x0]":1}"#);
    }
}
