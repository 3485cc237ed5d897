//! The copytool's own view of an HSM action list.
//!
//! These mirror `lustre::{Fid, Extent, ActionList, ActionItem}` field for field. The engine works on
//! these owned copies so it can be unit-tested with fakes, and because every item must be copied out
//! of the receive buffer before a worker touches it (lustre-abi §4.2): an owned `Item` is that copy.

use std::fmt;

/// A Lustre file identifier. Display is the DFID form `[0x200000401:0x1:0x0]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Fid {
    pub seq: u64,
    pub oid: u32,
    pub ver: u32,
}

impl fmt::Display for Fid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}:{:#x}:{:#x}]", self.seq, self.oid, self.ver)
    }
}

/// A byte range of a file; `length == u64::MAX` means "to the end of the file".
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Extent {
    pub offset: u64,
    pub length: u64,
}

/// What the coordinator asks of the copytool (`HSMA_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    None,
    Archive,
    Restore,
    Remove,
    Cancel,
    Unknown(u32),
}

impl Action {
    /// The lower-case name used in logs, metrics and failure entries.
    pub fn name(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Archive => "archive",
            Action::Restore => "restore",
            Action::Remove => "remove",
            Action::Cancel => "cancel",
            Action::Unknown(_) => "unknown",
        }
    }
}

/// One action item, owned (copied out of the receive buffer).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Item {
    pub action: Action,
    pub fid: Fid,
    pub dfid: Fid,
    pub extent: Extent,
    pub cookie: u64,
    pub gid: u64,
    /// The opaque request data (`hai_data`); the policy engine puts `lb:j=<job>:i=<iteration>` there.
    pub data: Vec<u8>,
}

/// One received action list.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ActionList {
    pub archive_id: u32,
    pub flags: u64,
    pub fsname: String,
    pub items: Vec<Item>,
}

/// Job and iteration the policy engine tagged a request with (`hai_data` = `lb:j=<job>:i=<iteration>`).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct JobTag {
    pub job: Option<String>,
    pub iteration: Option<u64>,
}

impl JobTag {
    /// Parses `lb:j=<job>:i=<iteration>` (either field optional, order free, trailing NULs ignored).
    /// Anything else (including data from other requesters) yields an empty tag.
    pub fn parse(data: &[u8]) -> JobTag {
        let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
        let Ok(text) = std::str::from_utf8(&data[..end]) else {
            return JobTag::default();
        };
        let Some(rest) = text.trim().strip_prefix("lb:") else {
            return JobTag::default();
        };
        let mut tag = JobTag::default();
        for field in rest.split(':') {
            if let Some(job) = field.strip_prefix("j=") {
                if !job.is_empty() {
                    tag.job = Some(job.to_string());
                }
            } else if let Some(iter) = field.strip_prefix("i=") {
                tag.iteration = iter.parse().ok();
            }
        }
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fid_displays_as_dfid() {
        let fid = Fid {
            seq: 0x200000401,
            oid: 1,
            ver: 0,
        };
        assert_eq!(fid.to_string(), "[0x200000401:0x1:0x0]");
    }

    #[test]
    fn job_tag_parses_policy_engine_data() {
        let tag = JobTag::parse(b"lb:j=auto-3:i=17\0\0");
        assert_eq!(tag.job.as_deref(), Some("auto-3"));
        assert_eq!(tag.iteration, Some(17));
        let tag = JobTag::parse(b"lb:i=4");
        assert_eq!((tag.job, tag.iteration), (None, Some(4)));
    }

    #[test]
    fn job_tag_ignores_foreign_data() {
        assert_eq!(JobTag::parse(b"bucket=x"), JobTag::default());
        assert_eq!(JobTag::parse(&[0xff, 0xfe]), JobTag::default());
        assert_eq!(JobTag::parse(b""), JobTag::default());
    }
}
