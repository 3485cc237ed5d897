//! Changelog records in the raw on-disk / on-device layout (lustre-abi.md §1.12–§1.14).
//!
//! The daemon stores every record in its full shape (jobid, extra flags with uid/gid and NID,
//! plus xattr or rename where they apply), like the MDT's llog; the library trims them to the
//! extensions a reader asked for, the way the 2.16 kernel and `llapi_changelog_recv` do.

use crate::consts::*;
use crate::fid::Fid;

pub const CR_HDR: usize = 64;
pub const CR_MAXSIZE: usize = 952;

/// One record, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rec {
    pub rtype: u32,
    /// Low 12 bits (per-type flags); the high bits are derived from the extensions present.
    pub flags: u16,
    pub index: u64,
    /// `(seconds << 30) + nanoseconds`.
    pub time: u64,
    pub tfid: Fid,
    pub pfid: Fid,
    /// (sfid, spfid) for renames.
    pub rename: Option<(Fid, Fid)>,
    pub jobid: Option<String>,
    /// `Some` when the extra-flags extension is present; its CLFE bits come from the fields below.
    pub extra: bool,
    pub uidgid: Option<(u64, u64)>,
    /// As stored by a 2.16 MDT: `struct lnet_nid` (`Nid::Large`, CLFE_NID_BE); a reader that did
    /// not ask for CHANGELOG_FLAG_NID_BE gets the 8-byte `Nid::Nid4` form (see `trimmed`).
    pub nid: Option<lustre::Nid>,
    pub openmode: Option<u32>,
    pub xattr: Option<String>,
    pub name: Vec<u8>,
}

pub fn pack_time(secs: u64, nsec: u32) -> u64 {
    (secs << 30) | (nsec as u64 & 0x3FFF_FFFF)
}

impl Rec {
    pub fn extra_bits(&self) -> u64 {
        let mut b = 0;
        if self.uidgid.is_some() {
            b |= CLFE_UIDGID;
        }
        if let Some(n) = self.nid {
            b |= CLFE_NID;
            if matches!(n, lustre::Nid::Large { .. }) {
                b |= CLFE_NID_BE;
            }
        }
        if self.openmode.is_some() {
            b |= CLFE_OPEN;
        }
        if self.xattr.is_some() {
            b |= CLFE_XATTR;
        }
        b
    }

    pub fn cr_flags(&self) -> u16 {
        let mut f = CLF_VERSION | (self.flags & CLF_FLAGMASK);
        if self.rename.is_some() {
            f |= CLF_RENAME;
        }
        if self.jobid.is_some() {
            f |= CLF_JOBID;
        }
        if self.extra {
            f |= CLF_EXTRA_FLAGS;
        }
        f
    }

    /// As a `lustre::ChangelogRecord` (the rename name area split into new and old names).
    pub fn to_lustre(&self) -> lustre::ChangelogRecord {
        let (name, rename) = match self.rename {
            Some((s, sp)) => {
                let cut = self
                    .name
                    .iter()
                    .position(|&c| c == 0)
                    .unwrap_or(self.name.len());
                let old = self.name.get(cut + 1..).unwrap_or(&[]).to_vec();
                let ext = lustre::RenameExt {
                    sfid: lf(s),
                    spfid: lf(sp),
                    old_name: old,
                };
                (self.name[..cut].to_vec(), Some(ext))
            }
            None => (self.name.clone(), None),
        };
        lustre::ChangelogRecord {
            index: self.index,
            prev: 0,
            rtype: lustre::RecordType::from_raw(self.rtype),
            flags: self.flags & CLF_FLAGMASK,
            time_sec: self.time >> 30,
            time_nsec: (self.time & 0x3FFF_FFFF) as u32,
            tfid: lf(self.tfid),
            pfid: lf(self.pfid),
            rename,
            jobid: self.jobid.clone(),
            extra_flags: self.extra.then_some(0),
            uid_gid: self.uidgid,
            nid: self.nid,
            open_flags: self.openmode,
            xattr: self.xattr.clone(),
            name,
        }
    }

    pub fn from_lustre(r: &lustre::ChangelogRecord) -> Rec {
        let mut name = r.name.clone();
        let rename = r.rename.as_ref().map(|e| {
            if r.rtype.is_rename_like() {
                name.push(0);
                name.extend_from_slice(&e.old_name);
            }
            (sf(e.sfid), sf(e.spfid))
        });
        Rec {
            rtype: r.rtype.raw(),
            flags: r.flags & CLF_FLAGMASK,
            index: r.index,
            time: r.time_raw(),
            tfid: sf(r.tfid),
            pfid: sf(r.pfid),
            rename,
            jobid: r.jobid.clone(),
            extra: r.extra_flags.is_some(),
            uidgid: r.uid_gid,
            nid: r.nid,
            openmode: r.open_flags,
            xattr: r.xattr.clone(),
            name,
        }
    }

    /// Encodes the record exactly as the device would hand it out (2.16 shape), with
    /// `lustre::wire::encode_changelog`.
    pub fn encode(&self) -> Result<Vec<u8>, lustre::wire::EncodeError> {
        lustre::wire::encode_changelog(&self.to_lustre())
    }

    /// Decodes one record from the start of `b` (`lustre::wire::decode_changelog`); returns
    /// it and its length.
    pub fn decode(b: &[u8]) -> Option<(Rec, usize)> {
        let (r, n) = lustre::wire::decode_changelog(b).ok()?;
        Some((Rec::from_lustre(&r), n))
    }

    /// The 2.16 reader's view: only extensions both present and requested
    /// (`jobid` with CHANGELOG_FLAG_JOBID; extra flags with CHANGELOG_FLAG_EXTRA_FLAGS, then
    /// each extra extension only when its bit is in `xflags`). `nid_be`: the reader asked for
    /// CHANGELOG_FLAG_NID_BE; otherwise the kernel hands out the 8-byte form (lustre-abi.md §5.2).
    pub fn trimmed(&self, want_jobid: bool, want_extra: bool, xflags: u64, nid_be: bool) -> Rec {
        let mut r = self.clone();
        if !want_jobid {
            r.jobid = None;
        }
        if !want_extra || !r.extra {
            r.extra = false;
            r.uidgid = None;
            r.nid = None;
            r.openmode = None;
            r.xattr = None;
        } else {
            if xflags & CLFE_UIDGID == 0 {
                r.uidgid = None;
            }
            if xflags & CLFE_NID == 0 {
                r.nid = None;
            } else if !nid_be {
                r.nid = r.nid.map(nid4);
            }
            if xflags & CLFE_OPEN == 0 {
                r.openmode = None;
            }
            if xflags & CLFE_XATTR == 0 {
                r.xattr = None;
            }
        }
        r
    }
}

/// The 8-byte `lnet_nid_t` of a NID: network (`lnd << 16 | num`) high, IPv4 address low; a NID
/// with a longer address has no such form and is all zeros (lustre-abi.md §1.13).
pub fn nid4(n: lustre::Nid) -> lustre::Nid {
    match n {
        lustre::Nid::Large { size: 0, addr, .. } => {
            lustre::Nid::Nid4((u64::from(n.net()) << 32) | u64::from(addr[0]))
        }
        lustre::Nid::Large { .. } => lustre::Nid::Nid4(0),
        small => small,
    }
}

/// `0@lo` as a 2.16 MDT stores it (`struct lnet_nid`, LOLND, network 0, address 0).
pub const NID_LO_BE: lustre::Nid = lustre::Nid::Large {
    size: 0,
    lnd: LNET_LND_LO,
    num: 0,
    addr: [0; 4],
};

/// The zero NID of records the coordinator thread writes (no client request behind them:
/// `lfs changelog` prints it `0@<0:0>`).
pub const NID_NONE_BE: lustre::Nid = lustre::Nid::Large {
    size: 0,
    lnd: 0,
    num: 0,
    addr: [0; 4],
};

fn lf(f: Fid) -> lustre::Fid {
    lustre::Fid {
        seq: f.seq,
        oid: f.oid,
        ver: f.ver,
    }
}

fn sf(f: lustre::Fid) -> Fid {
    Fid {
        seq: f.seq,
        oid: f.oid,
        ver: f.ver,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Rec {
        Rec {
            rtype: CL_RENAME,
            flags: 1,
            index: 7,
            time: pack_time(100, 5),
            tfid: Fid {
                seq: 0x200000401,
                oid: 2,
                ver: 0,
            },
            pfid: Fid {
                seq: 0x200000401,
                oid: 1,
                ver: 0,
            },
            rename: Some((
                Fid {
                    seq: 0x200000401,
                    oid: 3,
                    ver: 0,
                },
                Fid {
                    seq: 0x200000401,
                    oid: 4,
                    ver: 0,
                },
            )),
            jobid: Some(String::new()),
            extra: true,
            uidgid: Some((1, 2)),
            nid: Some(NID_LO_BE),
            openmode: Some(2),
            xattr: Some("trusted.lustre_blob".into()),
            name: b"new\0old".to_vec(),
        }
    }

    #[test]
    fn full_record_has_measured_offsets() {
        let b = full().encode().unwrap();
        // R,J,X with all four extra bits and NID_BE: name at 436 (lustre-abi.md §1.14).
        assert_eq!(b.len(), 436 + 7);
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), 0xF001);
        assert_eq!(u64::from_le_bytes(b[128..136].try_into().unwrap()), 0x1F);
        // the NID as 2.16 stores it: struct lnet_nid, 0@lo = size 0, LOLND 9, net 0 (BE)
        assert_eq!(&b[152..156], &[0, 9, 0, 0]);
        assert_eq!(&b[436..], b"new\0old");
        let (d, n) = Rec::decode(&b).unwrap();
        assert_eq!(n, b.len());
        assert_eq!(d, full());
    }

    #[test]
    fn trimming_keeps_only_requested_present_extensions() {
        let t = full().trimmed(false, true, CLFE_UIDGID, true);
        let b = t.encode().unwrap();
        // R,X(UIDGID): rename@64, extra@96, uidgid@104, name@120
        assert_eq!(b.len(), 120 + 7);
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), 0xB001);
        let t = full().trimmed(true, false, 0xF, true);
        assert_eq!(t.encode().unwrap().len(), 64 + 32 + 32 + 7);
        let plain = Rec {
            rtype: CL_CREATE,
            name: b"new".to_vec(),
            ..Default::default()
        };
        assert_eq!(
            plain.trimmed(true, true, 0xF, true).encode().unwrap().len(),
            64 + 3
        );
    }

    #[test]
    fn a_reader_without_nid_be_gets_the_8_byte_nid_and_no_nid_be_bit() {
        let t = full().trimmed(true, true, 0xF, false);
        assert_eq!(t.nid, Some(lustre::Nid::Nid4(NID_LO)));
        assert_eq!(t.extra_bits(), 0xF);
        let b = t.encode().unwrap();
        assert_eq!(u64::from_le_bytes(b[128..136].try_into().unwrap()), 0xF);
        assert_eq!(u64::from_le_bytes(b[152..160].try_into().unwrap()), NID_LO);
        // an IPv6-sized NID has no 8-byte form: zeros (lustre-abi.md §1.13)
        let mut v6 = full();
        v6.nid = Some(lustre::Nid::Large {
            size: 12,
            lnd: 2,
            num: 0,
            addr: [1, 2, 3, 4],
        });
        assert_eq!(
            v6.trimmed(true, true, 0xF, false).nid,
            Some(lustre::Nid::Nid4(0))
        );
        // with NID_BE the stored form is handed out unchanged
        assert_eq!(full().trimmed(true, true, 0xF, true).nid, Some(NID_LO_BE));
    }
}
