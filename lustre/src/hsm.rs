//! Typed HSM values: actions, action lists, user requests, file states. Plain data shared by
//! the codec ([`crate::wire`]) and the FFI wrappers.

use crate::fid::Fid;
use lustre_sys as sys;

/// A byte range of a file. `length == u64::MAX` means "to end of file".
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Extent {
    /// First byte.
    pub offset: u64,
    /// Number of bytes (`u64::MAX`: to end of file).
    pub length: u64,
}

impl Extent {
    /// The whole file: offset 0, length all ones (what the coordinator and `lfs` use).
    pub const WHOLE_FILE: Extent = Extent {
        offset: 0,
        length: u64::MAX,
    };

    /// The range of `length` bytes from `offset`.
    pub const fn new(offset: u64, length: u64) -> Extent {
        Extent { offset, length }
    }

    /// True for a length that means "to end of file".
    pub fn is_to_eof(&self) -> bool {
        self.length == u64::MAX
    }
}

impl From<sys::hsm_extent> for Extent {
    fn from(e: sys::hsm_extent) -> Extent {
        Extent {
            offset: e.offset,
            length: e.length,
        }
    }
}

impl From<Extent> for sys::hsm_extent {
    fn from(e: Extent) -> sys::hsm_extent {
        sys::hsm_extent {
            offset: e.offset,
            length: e.length,
        }
    }
}

/// What the coordinator asks a copytool to do (`HSMA_*`, found in `hai_action`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum CopytoolAction {
    /// `HSMA_NONE`.
    None,
    /// `HSMA_ARCHIVE`: copy the file into the archive.
    Archive,
    /// `HSMA_RESTORE`: copy the data back from the archive.
    Restore,
    /// `HSMA_REMOVE`: delete the archive copy.
    Remove,
    /// `HSMA_CANCEL`: stop a running action.
    Cancel,
    /// A value this crate does not know (kept so decoding is lossless).
    Unknown(u32),
}

impl CopytoolAction {
    /// The action of a raw `hai_action` value.
    pub fn from_raw(v: u32) -> CopytoolAction {
        match v {
            sys::HSMA_NONE => CopytoolAction::None,
            sys::HSMA_ARCHIVE => CopytoolAction::Archive,
            sys::HSMA_RESTORE => CopytoolAction::Restore,
            sys::HSMA_REMOVE => CopytoolAction::Remove,
            sys::HSMA_CANCEL => CopytoolAction::Cancel,
            other => CopytoolAction::Unknown(other),
        }
    }

    /// The raw `hai_action` value.
    pub fn raw(self) -> u32 {
        match self {
            CopytoolAction::None => sys::HSMA_NONE,
            CopytoolAction::Archive => sys::HSMA_ARCHIVE,
            CopytoolAction::Restore => sys::HSMA_RESTORE,
            CopytoolAction::Remove => sys::HSMA_REMOVE,
            CopytoolAction::Cancel => sys::HSMA_CANCEL,
            CopytoolAction::Unknown(v) => v,
        }
    }

    /// Upper-case name as `hsm_copytool_action2name` prints it (`UNKNOWN` otherwise).
    pub fn name(self) -> &'static str {
        match self {
            CopytoolAction::None => "NOOP",
            CopytoolAction::Archive => "ARCHIVE",
            CopytoolAction::Restore => "RESTORE",
            CopytoolAction::Remove => "REMOVE",
            CopytoolAction::Cancel => "CANCEL",
            CopytoolAction::Unknown(_) => "UNKNOWN",
        }
    }
}

/// What a user asks of the coordinator (`HUA_*`, found in `hr_action` and `hca_action`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum UserAction {
    /// `HUA_NONE`.
    None,
    /// `HUA_ARCHIVE`.
    Archive,
    /// `HUA_RESTORE`.
    Restore,
    /// `HUA_RELEASE`.
    Release,
    /// `HUA_REMOVE`.
    Remove,
    /// `HUA_CANCEL`.
    Cancel,
    /// A value this crate does not know (kept so decoding is lossless).
    Unknown(u32),
}

impl UserAction {
    /// The action of a raw `hr_action`/`hca_action` value.
    pub fn from_raw(v: u32) -> UserAction {
        match v {
            sys::HUA_NONE => UserAction::None,
            sys::HUA_ARCHIVE => UserAction::Archive,
            sys::HUA_RESTORE => UserAction::Restore,
            sys::HUA_RELEASE => UserAction::Release,
            sys::HUA_REMOVE => UserAction::Remove,
            sys::HUA_CANCEL => UserAction::Cancel,
            other => UserAction::Unknown(other),
        }
    }

    /// The raw `hr_action`/`hca_action` value.
    pub fn raw(self) -> u32 {
        match self {
            UserAction::None => sys::HUA_NONE,
            UserAction::Archive => sys::HUA_ARCHIVE,
            UserAction::Restore => sys::HUA_RESTORE,
            UserAction::Release => sys::HUA_RELEASE,
            UserAction::Remove => sys::HUA_REMOVE,
            UserAction::Cancel => sys::HUA_CANCEL,
            UserAction::Unknown(v) => v,
        }
    }

    /// Upper-case name as `hsm_user_action2name` prints it (`UNKNOWN` otherwise).
    pub fn name(self) -> &'static str {
        match self {
            UserAction::None => "NOOP",
            UserAction::Archive => "ARCHIVE",
            UserAction::Restore => "RESTORE",
            UserAction::Release => "RELEASE",
            UserAction::Remove => "REMOVE",
            UserAction::Cancel => "CANCEL",
            UserAction::Unknown(_) => "UNKNOWN",
        }
    }
}

/// One item of an action list, copied out of the receive buffer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ActionItem {
    /// What to do.
    pub action: CopytoolAction,
    /// The file (its metadata FID).
    pub fid: Fid,
    /// The data FID (equal to `fid` as the coordinator sends it).
    pub dfid: Fid,
    /// The byte range to act on.
    pub extent: Extent,
    /// The coordinator's cookie, which identifies the action in `begin`/`progress`/`end`.
    pub cookie: u64,
    /// Group lock id (0: none).
    pub gid: u64,
    /// The opaque data the requester attached (`hai_len - 72` bytes).
    pub data: Vec<u8>,
}

/// An action list ("hal") as a copytool receives it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ActionList {
    /// `hal_version` (`HAL_VERSION`).
    pub version: u32,
    /// The archive the actions are for.
    pub archive_id: u32,
    /// Copy of the user request's flags (`HSM_FORCE_ACTION`, ...).
    pub flags: u64,
    /// Obsolete, always 0.
    pub compound_id: u64,
    /// The file system name.
    pub fsname: String,
    /// The actions.
    pub items: Vec<ActionItem>,
}

/// An HSM user request ("hur"): one action over a list of files, plus opaque data that the
/// coordinator copies into every resulting action item.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UserRequest {
    /// What is asked.
    pub action: UserAction,
    /// The archive (0: the coordinator's default).
    pub archive_id: u32,
    /// Request flags (`HSM_FORCE_ACTION`, ...).
    pub flags: u64,
    /// The files and their byte ranges.
    pub items: Vec<(Fid, Extent)>,
    /// Opaque data copied into every action item.
    pub data: Vec<u8>,
}

/// The HSM state of a file (`hsm_user_state`; only these two fields are filled by 2.16 MDTs).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct HsmState {
    /// `HS_*` bits.
    pub states: u32,
    /// The archive the file belongs to (`HS_*` bits alone do not say which).
    pub archive_id: u32,
}

impl HsmState {
    fn has(&self, bit: u32) -> bool {
        self.states & bit != 0
    }
    /// A copy exists in the archive (possibly stale).
    pub fn is_exists(&self) -> bool {
        self.has(sys::HS_EXISTS)
    }
    /// The archive copy is complete and current unless [`Self::is_dirty`].
    pub fn is_archived(&self) -> bool {
        self.has(sys::HS_ARCHIVED)
    }
    /// The file changed since it was archived.
    pub fn is_dirty(&self) -> bool {
        self.has(sys::HS_DIRTY)
    }
    /// Archived and unchanged since: the archive copy is current (`HS_ARCHIVED` without
    /// `HS_DIRTY`).
    pub fn is_clean_archive(&self) -> bool {
        self.is_archived() && !self.is_dirty()
    }
    /// The data lives only in the archive.
    pub fn is_released(&self) -> bool {
        self.has(sys::HS_RELEASED)
    }
    /// The archive copy is lost (`HS_LOST`).
    pub fn is_lost(&self) -> bool {
        self.has(sys::HS_LOST)
    }
    /// The file must never be released (`HS_NORELEASE`).
    pub fn is_norelease(&self) -> bool {
        self.has(sys::HS_NORELEASE)
    }
    /// The file must never be archived (`HS_NOARCHIVE`).
    pub fn is_noarchive(&self) -> bool {
        self.has(sys::HS_NOARCHIVE)
    }
}

/// Progress state of a file's current HSM request (`HPS_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ProgressState {
    /// `HPS_NONE`: no request.
    None,
    /// `HPS_WAITING`: queued.
    Waiting,
    /// `HPS_RUNNING`: a copytool works on it.
    Running,
    /// `HPS_DONE`: ended.
    Done,
    /// A value this crate does not know.
    Unknown(u32),
}

impl ProgressState {
    /// The state of a raw `hca_state` value.
    pub fn from_raw(v: u32) -> ProgressState {
        match v {
            sys::HPS_NONE => ProgressState::None,
            sys::HPS_WAITING => ProgressState::Waiting,
            sys::HPS_RUNNING => ProgressState::Running,
            sys::HPS_DONE => ProgressState::Done,
            other => ProgressState::Unknown(other),
        }
    }
}

/// A file's current HSM request (`hsm_current_action`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CurrentAction {
    /// Where the request stands.
    pub state: ProgressState,
    /// A user action code (`HUA_*`), not a copytool one.
    pub action: UserAction,
    /// The request extent; while running, `length` is the number of bytes moved so far.
    pub location: Extent,
}

impl From<sys::hsm_current_action> for CurrentAction {
    fn from(h: sys::hsm_current_action) -> CurrentAction {
        CurrentAction {
            state: ProgressState::from_raw(h.hca_state),
            action: UserAction::from_raw(h.hca_action),
            location: h.hca_location.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_codes_round_trip_and_differ_between_enums() {
        for v in [10, 20, 21, 22, 23, 99] {
            assert_eq!(CopytoolAction::from_raw(v).raw(), v);
        }
        for v in [1, 10, 11, 12, 13, 14, 99] {
            assert_eq!(UserAction::from_raw(v).raw(), v);
        }
        // 10 is HSMA_NONE in one enum and HUA_ARCHIVE in the other.
        assert_eq!(CopytoolAction::from_raw(10), CopytoolAction::None);
        assert_eq!(UserAction::from_raw(10), UserAction::Archive);
        assert_eq!(CopytoolAction::from_raw(99), CopytoolAction::Unknown(99));
        assert_eq!(CopytoolAction::Archive.name(), "ARCHIVE");
        assert_eq!(UserAction::Release.name(), "RELEASE");
    }

    #[test]
    fn state_bits() {
        let s = HsmState {
            states: sys::HS_EXISTS | sys::HS_ARCHIVED | sys::HS_DIRTY,
            archive_id: 1,
        };
        assert!(s.is_exists() && s.is_archived() && s.is_dirty());
        assert!(!s.is_clean_archive());
        let clean = HsmState {
            states: sys::HS_EXISTS | sys::HS_ARCHIVED,
            archive_id: 1,
        };
        assert!(clean.is_clean_archive());
        assert!(!s.is_released() && !s.is_lost() && !s.is_norelease() && !s.is_noarchive());
        let r = HsmState {
            states: sys::HS_RELEASED | sys::HS_LOST | sys::HS_NORELEASE | sys::HS_NOARCHIVE,
            archive_id: 0,
        };
        assert!(r.is_released() && r.is_lost() && r.is_norelease() && r.is_noarchive());
    }

    #[test]
    fn current_action_uses_user_action_codes() {
        let raw = sys::hsm_current_action {
            hca_state: sys::HPS_RUNNING,
            hca_action: sys::HUA_RESTORE,
            hca_location: sys::hsm_extent {
                offset: 0,
                length: 4096,
            },
        };
        let ca = CurrentAction::from(raw);
        assert_eq!(ca.state, ProgressState::Running);
        assert_eq!(ca.action, UserAction::Restore);
        assert_eq!(ca.location, Extent::new(0, 4096));
        assert_eq!(ProgressState::from_raw(9), ProgressState::Unknown(9));
        assert!(Extent::WHOLE_FILE.is_to_eof());
    }
}
