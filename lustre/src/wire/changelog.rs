//! `changelog_rec` plus its conditional extension chain (lustre-abi.md §1.12–§1.14, §5.2).

use super::{c_field, put_c_field, DecodeError, EncodeError, Reader};
use crate::changelog::{ChangelogRecord, Nid, RecordType, RenameExt};
use lustre_sys as sys;

/// Size of the fixed part of a record.
pub const CHANGELOG_REC_LEN: usize = 64;
const RENAME_LEN: usize = 32;
const JOBID_LEN: usize = sys::LUSTRE_JOBID_SIZE;
const EXTRA_LEN: usize = 8;
const UIDGID_LEN: usize = 16;
const NID_LEN: usize = 24;
const OPENMODE_LEN: usize = 4;
const XATTR_LEN: usize = sys::XATTR_NAME_MAX + 1;
const WHAT: &str = "changelog record";

/// Where each part of one record lies (offsets from the start of the record), as the
/// `changelog_rec_*` accessors compute them from that record's own flags. An extension's
/// offset is `Some` only when the record carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangelogLayout {
    /// Offset of the rename extension.
    pub rename: Option<usize>,
    /// Offset of the job id extension.
    pub jobid: Option<usize>,
    /// Offset of the extra-flags extension.
    pub extra_flags: Option<usize>,
    /// Offset of the uid/gid extension.
    pub uidgid: Option<usize>,
    /// Offset of the NID extension.
    pub nid: Option<usize>,
    /// Offset of the open-mode extension.
    pub openmode: Option<usize>,
    /// Offset of the xattr-name extension.
    pub xattr: Option<usize>,
    /// Offset of the name, which is also `changelog_rec_size`.
    pub name: usize,
    /// `cr_namelen`.
    pub namelen: usize,
}

impl ChangelogLayout {
    /// `changelog_rec_size`: the fixed part plus every extension.
    pub fn rec_size(&self) -> usize {
        self.name
    }

    /// The whole record: `rec_size + cr_namelen`.
    pub fn total_len(&self) -> usize {
        self.name + self.namelen
    }
}

/// Computes the layout of the record at the start of `b`. Fails with
/// [`DecodeError::Truncated`] if `b` is shorter than the record; its `need` then tells how many
/// bytes to provide for the next step (the header, the extra-flags word, the whole record).
pub fn changelog_layout(b: &[u8]) -> Result<ChangelogLayout, DecodeError> {
    let r = Reader::new(b, WHAT);
    r.bytes(0, CHANGELOG_REC_LEN)?;
    let namelen = usize::from(r.u16(0)?);
    let flags = u32::from(r.u16(2)?);
    let mut l = ChangelogLayout {
        namelen,
        ..Default::default()
    };
    let mut off = CHANGELOG_REC_LEN;
    if flags & sys::CLF_RENAME != 0 {
        l.rename = Some(off);
        off += RENAME_LEN;
    }
    if flags & sys::CLF_JOBID != 0 {
        l.jobid = Some(off);
        off += JOBID_LEN;
    }
    if flags & sys::CLF_EXTRA_FLAGS != 0 {
        l.extra_flags = Some(off);
        let extra = r.u64(off)?;
        off += EXTRA_LEN;
        let mut place = |bit: u32, len: usize| {
            if extra & u64::from(bit) != 0 {
                let at = off;
                off += len;
                Some(at)
            } else {
                None
            }
        };
        l.uidgid = place(sys::CLFE_UIDGID, UIDGID_LEN);
        l.nid = place(sys::CLFE_NID, NID_LEN);
        l.openmode = place(sys::CLFE_OPEN, OPENMODE_LEN);
        l.xattr = place(sys::CLFE_XATTR, XATTR_LEN);
    }
    l.name = off;
    r.bytes(0, l.total_len())?;
    Ok(l)
}

/// Decodes the record at the start of `b` (either the ≤2.15 forced-format shape or the 2.16
/// shape: offsets always come from the record's own flags). Returns the record and its length
/// in bytes; records in a raw stream follow each other without padding.
pub fn decode_changelog(b: &[u8]) -> Result<(ChangelogRecord, usize), DecodeError> {
    let l = changelog_layout(b)?;
    let r = Reader::new(b, WHAT);
    let mut rec = ChangelogRecord {
        flags: r.u16(2)?,
        rtype: RecordType::from_raw(r.u32(4)?),
        index: r.u64(8)?,
        prev: r.u64(16)?,
        tfid: r.fid(32)?,
        pfid: r.fid(48)?,
        ..Default::default()
    };
    rec.set_time_raw(r.u64(24)?);
    let mut name = r.bytes(l.name, l.namelen)?.to_vec();
    if let Some(off) = l.rename {
        let mut ext = RenameExt {
            sfid: r.fid(off)?,
            spfid: r.fid(off + 16)?,
            old_name: Vec::new(),
        };
        if rec.rtype.is_rename_like() {
            if let Some(nul) = name.iter().position(|&c| c == 0) {
                ext.old_name = name.split_off(nul + 1);
                name.truncate(nul);
            }
        }
        rec.rename = Some(ext);
    }
    if let Some(off) = l.jobid {
        rec.jobid = Some(lossy(c_field(r.bytes(off, JOBID_LEN)?)));
    }
    if let Some(off) = l.extra_flags {
        let extra = r.u64(off)?;
        rec.extra_flags = Some(extra);
        if let Some(off) = l.uidgid {
            rec.uid_gid = Some((r.u64(off)?, r.u64(off + 8)?));
        }
        if let Some(off) = l.nid {
            rec.nid = Some(if extra & u64::from(sys::CLFE_NID_BE) != 0 {
                let be = |i: usize| -> Result<u32, DecodeError> {
                    Ok(u32::from_be_bytes(r.array(off + 4 + 4 * i)?))
                };
                Nid::Large {
                    size: r.array::<1>(off)?[0],
                    lnd: r.array::<1>(off + 1)?[0],
                    num: u16::from_be_bytes(r.array(off + 2)?),
                    addr: [be(0)?, be(1)?, be(2)?, be(3)?],
                }
            } else {
                Nid::Nid4(r.u64(off)?)
            });
        }
        if let Some(off) = l.openmode {
            rec.open_flags = Some(r.u32(off)? & sys::CLF_FLAGMASK);
        }
        if let Some(off) = l.xattr {
            rec.xattr = Some(lossy(c_field(r.bytes(off, XATTR_LEN)?)));
        }
    }
    rec.name = name;
    Ok((rec, l.total_len()))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Encodes a record in the shape a 2.16 library returns it: only the extensions that are
/// `Some` are written, `CLF_VERSION` is always set and the high 4 bits of `cr_flags` (and the
/// `CLFE_*` bits of `cr_extra_flags`) are derived from which extensions are present; other bits
/// of `flags` and `extra_flags` are kept. The openmode extension repeats the high `cr_flags`
/// bits, as the MDT does. For rename-like records the name area is `name \0 old_name`.
///
/// Errors: names longer than `NAME_MAX` or containing NUL, a jobid over 31 bytes, an xattr
/// name over 255 bytes, or an old name on a record that is not rename-like.
pub fn encode_changelog(rec: &ChangelogRecord) -> Result<Vec<u8>, EncodeError> {
    check_name(&rec.name, "name")?;
    let old_name: &[u8] = match &rec.rename {
        Some(ext) if rec.rtype.is_rename_like() => {
            check_name(&ext.old_name, "old name")?;
            &ext.old_name
        }
        Some(ext) if !ext.old_name.is_empty() => {
            return Err(EncodeError::Inconsistent(
                "an old name is only allowed on a rename-like record",
            ))
        }
        _ => &[],
    };
    let mut name_area = rec.name.clone();
    if rec.rename.is_some() && rec.rtype.is_rename_like() {
        name_area.push(0);
        name_area.extend_from_slice(old_name);
    }
    let namelen = u16::try_from(name_area.len()).map_err(|_| EncodeError::TooLong {
        what: "name area",
        len: name_area.len(),
        max: usize::from(u16::MAX),
    })?;

    let ext_bits = [
        (rec.uid_gid.is_some(), sys::CLFE_UIDGID),
        (rec.nid.is_some(), sys::CLFE_NID),
        (matches!(rec.nid, Some(Nid::Large { .. })), sys::CLFE_NID_BE),
        (rec.open_flags.is_some(), sys::CLFE_OPEN),
        (rec.xattr.is_some(), sys::CLFE_XATTR),
    ];
    let has_extra = rec.extra_flags.is_some() || ext_bits.iter().any(|(on, _)| *on);
    let mut extra = rec.extra_flags.unwrap_or(0) & !u64::from(sys::CLFE_SUPPORTED);
    for (on, bit) in ext_bits {
        if on {
            extra |= u64::from(bit);
        }
    }
    let mut high = sys::CLF_VERSION;
    for (on, bit) in [
        (rec.rename.is_some(), sys::CLF_RENAME),
        (rec.jobid.is_some(), sys::CLF_JOBID),
        (has_extra, sys::CLF_EXTRA_FLAGS),
    ] {
        if on {
            high |= bit;
        }
    }
    let flags = (u32::from(rec.flags) & sys::CLF_FLAGMASK | high) as u16;

    let mut out = Vec::with_capacity(sys::CR_MAXSIZE);
    out.extend_from_slice(&namelen.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&rec.rtype.raw().to_le_bytes());
    out.extend_from_slice(&rec.index.to_le_bytes());
    out.extend_from_slice(&rec.prev.to_le_bytes());
    out.extend_from_slice(&rec.time_raw().to_le_bytes());
    out.extend_from_slice(&rec.tfid.to_bytes());
    out.extend_from_slice(&rec.pfid.to_bytes());
    if let Some(ext) = &rec.rename {
        out.extend_from_slice(&ext.sfid.to_bytes());
        out.extend_from_slice(&ext.spfid.to_bytes());
    }
    if let Some(jobid) = &rec.jobid {
        put_c_field(&mut out, jobid.as_bytes(), JOBID_LEN, "jobid")?;
    }
    if has_extra {
        out.extend_from_slice(&extra.to_le_bytes());
        if let Some((uid, gid)) = rec.uid_gid {
            out.extend_from_slice(&uid.to_le_bytes());
            out.extend_from_slice(&gid.to_le_bytes());
        }
        if let Some(nid) = rec.nid {
            let start = out.len();
            match nid {
                Nid::Nid4(raw) => out.extend_from_slice(&raw.to_le_bytes()),
                Nid::Large {
                    size,
                    lnd,
                    num,
                    addr,
                } => {
                    out.push(size);
                    out.push(lnd);
                    out.extend_from_slice(&num.to_be_bytes());
                    for a in addr {
                        out.extend_from_slice(&a.to_be_bytes());
                    }
                }
            }
            out.resize(start + NID_LEN, 0);
        }
        if let Some(open) = rec.open_flags {
            if open > sys::CLF_FLAGMASK {
                return Err(EncodeError::Inconsistent(
                    "open flags must fit in the low 12 bits",
                ));
            }
            let raw = open | (u32::from(flags) & !sys::CLF_FLAGMASK);
            out.extend_from_slice(&raw.to_le_bytes());
        }
        if let Some(xattr) = &rec.xattr {
            put_c_field(&mut out, xattr.as_bytes(), XATTR_LEN, "xattr name")?;
        }
    }
    out.extend_from_slice(&name_area);
    Ok(out)
}

fn check_name(name: &[u8], what: &'static str) -> Result<(), EncodeError> {
    if name.contains(&0) {
        return Err(EncodeError::InteriorNul { what });
    }
    if name.len() > sys::NAME_MAX {
        return Err(EncodeError::TooLong {
            what,
            len: name.len(),
            max: sys::NAME_MAX,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Fid;

    fn sample() -> ChangelogRecord {
        ChangelogRecord {
            index: 7,
            rtype: RecordType::Rename,
            flags: 0x0001,
            time_sec: 1732531200,
            time_nsec: 5,
            tfid: Fid::ZERO,
            pfid: Fid::new(0x200000bd2, 0x10, 0),
            rename: Some(RenameExt {
                sfid: Fid::new(0x200000401, 0x1, 0),
                spfid: Fid::new(0x200000007, 0x1, 0),
                old_name: b"old".to_vec(),
            }),
            jobid: Some("mv.1".into()),
            extra_flags: Some(0),
            uid_gid: Some((1000, 100)),
            nid: Some(Nid::Nid4(0x0002_0000_c0a8_141f)),
            open_flags: Some(3),
            xattr: Some("user.x".into()),
            name: b"new".to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn rename_layout_and_round_trip() {
        let rec = sample();
        let bytes = encode_changelog(&rec).unwrap();
        let l = changelog_layout(&bytes).unwrap();
        assert_eq!(l.rename, Some(64));
        assert_eq!(l.jobid, Some(96));
        assert_eq!(l.extra_flags, Some(128));
        assert_eq!(l.openmode, Some(176));
        assert_eq!(l.xattr, Some(180));
        assert_eq!(l.rec_size(), 436);
        assert_eq!(&bytes[436..], b"new\0old");
        let (back, len) = decode_changelog(&bytes).unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(back.flags, 0xF001);
        assert_eq!(back.extra_flags, Some(0xF));
        assert_eq!(
            ChangelogRecord {
                flags: 0xF001,
                extra_flags: Some(0xF),
                ..rec
            },
            back
        );
        // openmode carries the high cr_flags bits, as the MDT writes it
        assert_eq!(
            u32::from_le_bytes(bytes[176..180].try_into().unwrap()),
            0xF003
        );
    }

    #[test]
    fn truncation_reports_the_next_need() {
        let bytes = encode_changelog(&sample()).unwrap();
        assert!(matches!(
            changelog_layout(&bytes[..10]),
            Err(DecodeError::Truncated { need: 64, .. })
        ));
        // Header present: the extra-flags word is needed next.
        assert!(matches!(
            changelog_layout(&bytes[..64]),
            Err(DecodeError::Truncated { need: 136, .. })
        ));
        assert!(matches!(
            changelog_layout(&bytes[..136]),
            Err(DecodeError::Truncated { need, .. }) if need == bytes.len()
        ));
        for cut in 0..bytes.len() {
            assert!(decode_changelog(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn encoder_rejects_what_does_not_fit() {
        let mut r = sample();
        r.jobid = Some("x".repeat(32));
        assert!(matches!(
            encode_changelog(&r),
            Err(EncodeError::TooLong { what: "jobid", .. })
        ));
        let mut r = sample();
        r.name = vec![b'a'; 256];
        assert!(matches!(
            encode_changelog(&r),
            Err(EncodeError::TooLong { what: "name", .. })
        ));
        let mut r = sample();
        r.name = b"a\0b".to_vec();
        assert_eq!(
            encode_changelog(&r),
            Err(EncodeError::InteriorNul { what: "name" })
        );
        let mut r = sample();
        r.rtype = RecordType::Create;
        assert!(matches!(
            encode_changelog(&r),
            Err(EncodeError::Inconsistent(_))
        ));
        let mut r = sample();
        r.open_flags = Some(0x1000);
        assert!(matches!(
            encode_changelog(&r),
            Err(EncodeError::Inconsistent(_))
        ));
        let mut r = sample();
        r.xattr = Some("x".repeat(256));
        assert!(matches!(
            encode_changelog(&r),
            Err(EncodeError::TooLong { .. })
        ));
    }

    #[test]
    fn minimal_record_has_only_the_version_bit() {
        let rec = ChangelogRecord {
            rtype: RecordType::Create,
            name: b"f".to_vec(),
            ..Default::default()
        };
        let bytes = encode_changelog(&rec).unwrap();
        assert_eq!(bytes.len(), 65);
        assert_eq!(u16::from_le_bytes([bytes[2], bytes[3]]), 0x1000);
    }
}
