//! Typed changelog records (decoded by [`crate::wire::decode_changelog`]).

use crate::fid::Fid;
use lustre_sys as sys;

macro_rules! record_types {
    ($( $variant:ident = $cl:ident ),* $(,)?) => {
        /// `cr_type` (`CL_*`).
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
        pub enum RecordType {
            #[default]
            $( #[doc = concat!("`", stringify!($cl), "`.")] $variant, )*
            /// A type this crate does not know (kept so decoding is lossless).
            Unknown(u32),
        }

        impl RecordType {
            /// The type of a raw `cr_type` value (unknown values kept).
            pub fn from_raw(v: u32) -> RecordType {
                $( if v == sys::$cl as u32 { return RecordType::$variant; } )*
                RecordType::Unknown(v)
            }

            /// The raw `cr_type` value.
            pub fn raw(self) -> u32 {
                match self {
                    $( RecordType::$variant => sys::$cl as u32, )*
                    RecordType::Unknown(v) => v,
                }
            }
        }
    };
}

record_types! {
    Mark = CL_MARK,
    Create = CL_CREATE,
    Mkdir = CL_MKDIR,
    Hardlink = CL_HARDLINK,
    Softlink = CL_SOFTLINK,
    Mknod = CL_MKNOD,
    Unlink = CL_UNLINK,
    Rmdir = CL_RMDIR,
    Rename = CL_RENAME,
    Ext = CL_EXT,
    Open = CL_OPEN,
    Close = CL_CLOSE,
    Layout = CL_LAYOUT,
    Trunc = CL_TRUNC,
    Setattr = CL_SETATTR,
    Setxattr = CL_SETXATTR,
    Hsm = CL_HSM,
    Mtime = CL_MTIME,
    Ctime = CL_CTIME,
    Atime = CL_ATIME,
    Migrate = CL_MIGRATE,
    Flrw = CL_FLRW,
    Resync = CL_RESYNC,
    Getxattr = CL_GETXATTR,
    DnOpen = CL_DN_OPEN,
}

impl RecordType {
    /// The short name `lfs changelog` prints (`CREAT`, `RENME`, ...), or `None` for unknown types.
    pub fn short_name(self) -> Option<&'static str> {
        sys::CHANGELOG_TYPE_NAMES
            .get(usize::try_from(self.raw()).ok()?)
            .copied()
    }

    /// Types whose name area is `new\0old` and whose rename extension names the moved object.
    pub fn is_rename_like(self) -> bool {
        matches!(self, RecordType::Rename | RecordType::Migrate)
    }
}

/// The rename extension. For `CL_RENAME` records, `sfid` is the renamed object and `spfid` its
/// old parent (the record's `tfid` is the overwritten target, `pfid` the new parent).
/// ≤2.15 libraries add a zeroed rename extension to every record; then both FIDs are zero.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct RenameExt {
    /// The renamed object.
    pub sfid: Fid,
    /// Its old parent directory.
    pub spfid: Fid,
    /// The old (source) name, for rename-like records; empty otherwise.
    pub old_name: Vec<u8>,
}

/// The NID of the client that made the change.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Nid {
    /// The 8-byte `lnet_nid_t`: network in the high 32 bits, address in the low 32 bits. An
    /// all-zero value means the reader did not ask for `NID_BE` and the NID (e.g. IPv6) had no
    /// 8-byte form.
    Nid4(u64),
    /// The large `struct lnet_nid` form (`CLFE_NID_BE`): values in host order (decoded from
    /// big endian).
    Large {
        /// Total bytes of the NID minus 8.
        size: u8,
        /// LND type (2 = tcp, 5 = o2ib, ...).
        lnd: u8,
        /// Network number.
        num: u16,
        /// The address words (IPv4 in the first, IPv6 in all four), host order.
        addr: [u32; 4],
    },
}

impl Nid {
    /// The network part (`(lnd << 16) | num`) of either form.
    pub fn net(&self) -> u32 {
        match *self {
            Nid::Nid4(raw) => (raw >> 32) as u32,
            Nid::Large { lnd, num, .. } => (u32::from(lnd) << 16) | u32::from(num),
        }
    }

    /// True when the record carried a NID extension with nothing in it.
    pub fn is_unknown(&self) -> bool {
        matches!(*self, Nid::Nid4(0))
    }
}

/// LND type numbers this crate names when printing NIDs (others print as `<type:num>`).
const LND_NAMES: [(u8, &str); 3] = [(2, "tcp"), (5, "o2ib"), (9, "lo")];

impl std::fmt::Display for Nid {
    /// libcfs style: `192.168.20.31@tcp`, `10.10.1.7@o2ib2`, `2001:db8::15@tcp`; networks of
    /// unknown LND types print as `<type:num>` with a decimal address.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (lnd, num, addr) = match *self {
            Nid::Nid4(raw) => {
                let net = (raw >> 32) as u32;
                (
                    (net >> 16) as u8,
                    (net & 0xFFFF) as u16,
                    [raw as u32, 0, 0, 0],
                )
            }
            Nid::Large { lnd, num, addr, .. } => (lnd, num, addr),
        };
        let size = match *self {
            Nid::Nid4(_) => 0,
            Nid::Large { size, .. } => size,
        };
        let known = LND_NAMES.iter().find(|(t, _)| *t == lnd).map(|(_, n)| *n);
        match known {
            Some(_) if size == 12 => {
                let mut octets = [0u8; 16];
                for (chunk, word) in octets.chunks_mut(4).zip(addr) {
                    chunk.copy_from_slice(&word.to_be_bytes());
                }
                write!(f, "{}", std::net::Ipv6Addr::from(octets))?;
            }
            Some(_) => write!(f, "{}", std::net::Ipv4Addr::from(addr[0]))?,
            None => write!(f, "{}", addr[0])?,
        }
        match known {
            Some(name) if num == 0 => write!(f, "@{name}"),
            Some(name) => write!(f, "@{name}{num}"),
            None => write!(f, "@<{lnd}:{num}>"),
        }
    }
}

/// `hsm_event` of a `CL_HSM` record.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HsmEvent {
    /// `HE_ARCHIVE`: an archive ended.
    Archive,
    /// `HE_RESTORE`: a restore ended.
    Restore,
    /// `HE_CANCEL`: a request was canceled.
    Cancel,
    /// `HE_RELEASE`: the file was released.
    Release,
    /// `HE_REMOVE`: the archive copy was removed.
    Remove,
    /// `HE_STATE`: the HSM state changed (`hsm_state_set`, or a write making the file dirty).
    State,
    /// `HE_SPARE1` (unused by Lustre).
    Spare1,
    /// `HE_SPARE2` (unused by Lustre).
    Spare2,
}

impl HsmEvent {
    /// From the 3-bit event field.
    pub fn from_raw(v: u32) -> HsmEvent {
        match v & 7 {
            sys::HE_ARCHIVE => HsmEvent::Archive,
            sys::HE_RESTORE => HsmEvent::Restore,
            sys::HE_CANCEL => HsmEvent::Cancel,
            sys::HE_RELEASE => HsmEvent::Release,
            sys::HE_REMOVE => HsmEvent::Remove,
            sys::HE_STATE => HsmEvent::State,
            sys::HE_SPARE1 => HsmEvent::Spare1,
            _ => HsmEvent::Spare2,
        }
    }

    /// The 3-bit event field value.
    pub fn raw(self) -> u32 {
        match self {
            HsmEvent::Archive => sys::HE_ARCHIVE,
            HsmEvent::Restore => sys::HE_RESTORE,
            HsmEvent::Cancel => sys::HE_CANCEL,
            HsmEvent::Release => sys::HE_RELEASE,
            HsmEvent::Remove => sys::HE_REMOVE,
            HsmEvent::State => sys::HE_STATE,
            HsmEvent::Spare1 => sys::HE_SPARE1,
            HsmEvent::Spare2 => sys::HE_SPARE2,
        }
    }

    /// Upper-case name (`ARCHIVE`, `RESTORE`, ...).
    pub fn name(self) -> &'static str {
        match self {
            HsmEvent::Archive => "ARCHIVE",
            HsmEvent::Restore => "RESTORE",
            HsmEvent::Cancel => "CANCEL",
            HsmEvent::Release => "RELEASE",
            HsmEvent::Remove => "REMOVE",
            HsmEvent::State => "STATE",
            HsmEvent::Spare1 => "SPARE1",
            HsmEvent::Spare2 => "SPARE2",
        }
    }
}

/// The fields packed into the low 12 bits of a `CL_HSM` record's `cr_flags`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct HsmEventInfo {
    /// What happened.
    pub event: HsmEvent,
    /// Positive errno; `CLF_HSM_ERROVERFLOW` (0x7F) when it did not fit.
    pub error: u8,
    /// The 2-bit HSM flags field (bit 0 = dirty).
    pub flags: u8,
    /// The file was dirty (`CLF_HSM_DIRTY`).
    pub dirty: bool,
}

impl HsmEventInfo {
    /// Unpacks the low bits of `cr_flags`.
    pub fn from_flags(cr_flags: u16) -> HsmEventInfo {
        let f = u32::from(cr_flags);
        let flags = ((f >> sys::CLF_HSM_FLAG_L) & 3) as u8;
        HsmEventInfo {
            event: HsmEvent::from_raw(f >> sys::CLF_HSM_EVENT_L),
            error: (f & 0x7F) as u8,
            flags,
            dirty: u32::from(flags) & sys::CLF_HSM_DIRTY != 0,
        }
    }

    /// An event with its error (a positive errno, saturated to `CLF_HSM_ERROVERFLOW` as the MDT
    /// does) and dirty flag.
    pub fn new(event: HsmEvent, error: u32, dirty: bool) -> HsmEventInfo {
        HsmEventInfo {
            event,
            error: error.min(sys::CLF_HSM_ERROVERFLOW) as u8,
            flags: u8::from(dirty),
            dirty,
        }
    }

    /// The low 12 bits of `cr_flags` for this event (`hsm_set_cl_event/error/flags`).
    pub fn to_flags(&self) -> u16 {
        let flags = u32::from(self.flags & 3) | u32::from(self.dirty);
        ((u32::from(self.error) & 0x7F)
            | (self.event.raw() << sys::CLF_HSM_EVENT_L)
            | (flags << sys::CLF_HSM_FLAG_L)) as u16
    }
}

/// One changelog record, decoded from either the ≤2.15 or the 2.16 shape.
///
/// Each optional field is `Some` exactly when the record carried that extension.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ChangelogRecord {
    /// `cr_index`: record number, increasing per MDT.
    pub index: u64,
    /// `cr_prev` (never maintained by the MDT; kept for completeness).
    pub prev: u64,
    /// `cr_type`.
    pub rtype: RecordType,
    /// The whole `cr_flags`. The encoder recomputes the high 4 bits from the extensions.
    pub flags: u16,
    /// `cr_time`: seconds part.
    pub time_sec: u64,
    /// `cr_time`: nanoseconds part.
    pub time_nsec: u32,
    /// Target FID (for `CL_RENAME`: the overwritten target, often zero; for `CL_MARK`: the
    /// marker flags, see [`ChangelogRecord::marker_flags`]).
    pub tfid: Fid,
    /// Parent directory FID (for `CL_RENAME`: the new parent).
    pub pfid: Fid,
    /// The rename extension (`CLF_RENAME`); see [`ChangelogRecord::renamed`].
    pub rename: Option<RenameExt>,
    /// The job id of the process that made the change (`CLF_JOBID`).
    pub jobid: Option<String>,
    /// `cr_extra_flags` (`CLFE_*`) when the extra-flags extension is present.
    pub extra_flags: Option<u64>,
    /// `(uid, gid)` of the change (`CLFE_UIDGID`).
    pub uid_gid: Option<(u64, u64)>,
    /// NID of the client that made the change (`CLFE_NID`).
    pub nid: Option<Nid>,
    /// Open flags from the openmode extension, masked with 0xFFF (MDS open flags).
    pub open_flags: Option<u32>,
    /// The extended attribute name of a SETXATTR/GETXATTR record (`CLFE_XATTR`).
    pub xattr: Option<String>,
    /// The entry name (for rename-like records: the new name; the old one is in `rename`).
    pub name: Vec<u8>,
}

impl ChangelogRecord {
    /// The HSM event fields of a `CL_HSM` record.
    pub fn hsm(&self) -> Option<HsmEventInfo> {
        (self.rtype == RecordType::Hsm).then(|| HsmEventInfo::from_flags(self.flags))
    }

    /// Makes this a `CL_HSM` record carrying `info` in the low 12 bits of `flags`.
    pub fn set_hsm(&mut self, info: HsmEventInfo) {
        self.rtype = RecordType::Hsm;
        self.flags = (self.flags & !(sys::CLF_FLAGMASK as u16)) | info.to_flags();
    }

    /// The per-type low 12 bits of `cr_flags`.
    pub fn flags_low(&self) -> u16 {
        self.flags & sys::CLF_FLAGMASK as u16
    }

    /// `cr_markerflags` of a `CL_MARK` record (the first 4 bytes of the tfid union).
    pub fn marker_flags(&self) -> Option<u32> {
        (self.rtype == RecordType::Mark).then_some((self.tfid.seq & 0xFFFF_FFFF) as u32)
    }

    /// `cr_time` as the MDT stores it: `(seconds << 30) | nanoseconds`.
    pub fn time_raw(&self) -> u64 {
        (self.time_sec << 30) | u64::from(self.time_nsec & 0x3FFF_FFFF)
    }

    /// Sets `time_sec`/`time_nsec` from a raw `cr_time`.
    pub fn set_time_raw(&mut self, raw: u64) {
        self.time_sec = raw >> 30;
        self.time_nsec = (raw & 0x3FFF_FFFF) as u32;
    }

    /// The renamed object and old parent of a rename-like record (`None` for the zeroed
    /// extension ≤2.15 libraries add to every record).
    pub fn renamed(&self) -> Option<&RenameExt> {
        self.rename.as_ref().filter(|_| self.rtype.is_rename_like())
    }

    /// UNLINK/RMDIR removed the last link (`CLF_UNLINK_LAST`).
    pub fn is_last_unlink(&self) -> bool {
        matches!(self.rtype, RecordType::Unlink | RecordType::Rmdir)
            && self.flags & sys::CLF_UNLINK_LAST != 0
    }

    /// UNLINK/RMDIR of the last link of a file that had an archive copy.
    pub fn unlinked_hsm_exists(&self) -> bool {
        self.is_last_unlink() && self.flags & sys::CLF_UNLINK_HSM_EXISTS != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_types_round_trip_with_short_names() {
        for v in 0..25u32 {
            let t = RecordType::from_raw(v);
            assert_eq!(t.raw(), v);
            assert!(!matches!(t, RecordType::Unknown(_)));
            assert_eq!(t.short_name(), Some(sys::CHANGELOG_TYPE_NAMES[v as usize]));
        }
        assert_eq!(RecordType::from_raw(25), RecordType::Unknown(25));
        assert_eq!(RecordType::Unknown(25).short_name(), None);
        assert_eq!(RecordType::Close.short_name(), Some("CLOSE"));
        assert_eq!(RecordType::from_raw(8), RecordType::Rename);
    }

    #[test]
    fn hsm_bits_pack_like_the_header_helpers() {
        // Worked example of lustre-abi.md: RESTORE, error 5, dirty = 0x485.
        let info = HsmEventInfo::new(HsmEvent::Restore, 5, true);
        assert_eq!(info.to_flags(), 0x485);
        assert_eq!(HsmEventInfo::from_flags(0xD485), info);
        assert_eq!(HsmEventInfo::new(HsmEvent::Remove, 300, false).error, 0x7F);
        let cancel = HsmEventInfo::from_flags(0x0FD);
        assert_eq!(
            (cancel.event, cancel.error, cancel.dirty),
            (HsmEvent::Restore, 125, false)
        );
        for v in 0..8 {
            assert_eq!(HsmEvent::from_raw(v).raw(), v);
        }
    }

    #[test]
    fn set_hsm_replaces_only_the_low_bits() {
        let mut r = ChangelogRecord {
            flags: 0xD123,
            ..Default::default()
        };
        r.set_hsm(HsmEventInfo::new(
            HsmEvent::Archive,
            libc::EBUSY as u32,
            false,
        ));
        assert_eq!(r.rtype, RecordType::Hsm);
        assert_eq!(r.flags, 0xD010);
        assert_eq!(
            r.hsm(),
            Some(HsmEventInfo::new(HsmEvent::Archive, 16, false))
        );
    }

    #[test]
    fn time_split() {
        let mut r = ChangelogRecord::default();
        r.set_time_raw(1860291767751582285);
        assert_eq!((r.time_sec, r.time_nsec), (1732531718, 728408653));
        assert_eq!(r.time_raw(), 1860291767751582285);
    }

    #[test]
    fn unlink_flags_and_markers() {
        let r = ChangelogRecord {
            rtype: RecordType::Unlink,
            flags: 0x9003,
            ..Default::default()
        };
        assert!(r.is_last_unlink() && r.unlinked_hsm_exists());
        let r = ChangelogRecord {
            rtype: RecordType::Unlink,
            flags: 0x9002,
            ..Default::default()
        };
        assert!(!r.is_last_unlink() && !r.unlinked_hsm_exists());
        let m = ChangelogRecord {
            rtype: RecordType::Mark,
            tfid: Fid::new(0x10001, 0, 0),
            ..Default::default()
        };
        assert_eq!(m.marker_flags(), Some(0x10001));
        assert_eq!(r.marker_flags(), None);
        assert_eq!(r.hsm(), None);
        let n = Nid::Large {
            size: 0,
            lnd: 5,
            num: 2,
            addr: [0; 4],
        };
        assert_eq!(n.net(), 0x50002);
        assert_eq!(Nid::Nid4(0x0002_0000_c0a8_141f).net(), 0x20000);
        assert!(Nid::Nid4(0).is_unknown());
    }
}
