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
    pub nid: Option<u64>,
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
        if self.nid.is_some() {
            b |= CLFE_NID;
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

    /// Encodes the record exactly as the device would hand it out.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(CR_HDR + 64 + self.name.len());
        b.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        b.extend_from_slice(&self.cr_flags().to_le_bytes());
        b.extend_from_slice(&self.rtype.to_le_bytes());
        b.extend_from_slice(&self.index.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&self.time.to_le_bytes());
        b.extend_from_slice(&self.tfid.to_bytes());
        b.extend_from_slice(&self.pfid.to_bytes());
        if let Some((s, sp)) = self.rename {
            b.extend_from_slice(&s.to_bytes());
            b.extend_from_slice(&sp.to_bytes());
        }
        if let Some(j) = &self.jobid {
            let mut a = [0u8; 32];
            let n = j.len().min(31);
            a[..n].copy_from_slice(&j.as_bytes()[..n]);
            b.extend_from_slice(&a);
        }
        if self.extra {
            b.extend_from_slice(&self.extra_bits().to_le_bytes());
            if let Some((u, g)) = self.uidgid {
                b.extend_from_slice(&u.to_le_bytes());
                b.extend_from_slice(&g.to_le_bytes());
            }
            if let Some(n) = self.nid {
                b.extend_from_slice(&n.to_le_bytes());
                b.extend_from_slice(&[0u8; 16]);
            }
            if let Some(o) = self.openmode {
                b.extend_from_slice(&o.to_le_bytes());
            }
            if let Some(x) = &self.xattr {
                let mut a = [0u8; 256];
                let n = x.len().min(255);
                a[..n].copy_from_slice(&x.as_bytes()[..n]);
                b.extend_from_slice(&a);
            }
        }
        b.extend_from_slice(&self.name);
        b
    }

    /// Decodes one record from the start of `b`; returns it and its length.
    pub fn decode(b: &[u8]) -> Option<(Rec, usize)> {
        if b.len() < CR_HDR {
            return None;
        }
        let u16at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
        let u64at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let namelen = u16at(0) as usize;
        let flags = u16at(2);
        let mut r = Rec {
            rtype: u32at(4),
            flags: flags & CLF_FLAGMASK,
            index: u64at(8),
            time: u64at(24),
            tfid: Fid::from_bytes(&b[32..48])?,
            pfid: Fid::from_bytes(&b[48..64])?,
            ..Default::default()
        };
        let mut o = CR_HDR;
        let need = |o: usize, n: usize| if b.len() < o + n { None } else { Some(()) };
        if flags & CLF_RENAME != 0 {
            need(o, 32)?;
            r.rename = Some((Fid::from_bytes(&b[o..o + 16])?, Fid::from_bytes(&b[o + 16..o + 32])?));
            o += 32;
        }
        if flags & CLF_JOBID != 0 {
            need(o, 32)?;
            r.jobid = Some(cstr(&b[o..o + 32]));
            o += 32;
        }
        if flags & CLF_EXTRA_FLAGS != 0 {
            need(o, 8)?;
            r.extra = true;
            let ef = u64at(o);
            o += 8;
            if ef & CLFE_UIDGID != 0 {
                need(o, 16)?;
                r.uidgid = Some((u64at(o), u64at(o + 8)));
                o += 16;
            }
            if ef & CLFE_NID != 0 {
                need(o, 24)?;
                r.nid = Some(u64at(o));
                o += 24;
            }
            if ef & CLFE_OPEN != 0 {
                need(o, 4)?;
                r.openmode = Some(u32at(o));
                o += 4;
            }
            if ef & CLFE_XATTR != 0 {
                need(o, 256)?;
                r.xattr = Some(cstr(&b[o..o + 256]));
                o += 256;
            }
        }
        need(o, namelen)?;
        r.name = b[o..o + namelen].to_vec();
        Some((r, o + namelen))
    }

    /// The 2.16 reader's view: only extensions both present and requested
    /// (`jobid` with CHANGELOG_FLAG_JOBID; extra flags with CHANGELOG_FLAG_EXTRA_FLAGS, then
    /// each extra extension only when its bit is in `xflags`).
    pub fn trimmed(&self, want_jobid: bool, want_extra: bool, xflags: u64) -> Rec {
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

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
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
            tfid: Fid { seq: 0x200000401, oid: 2, ver: 0 },
            pfid: Fid { seq: 0x200000401, oid: 1, ver: 0 },
            rename: Some((Fid { seq: 0x200000401, oid: 3, ver: 0 }, Fid { seq: 0x200000401, oid: 4, ver: 0 })),
            jobid: Some(String::new()),
            extra: true,
            uidgid: Some((1, 2)),
            nid: Some(NID_LO),
            openmode: Some(2),
            xattr: Some("trusted.lustre_blob".into()),
            name: b"new\0old".to_vec(),
        }
    }

    #[test]
    fn full_record_has_measured_offsets() {
        let b = full().encode();
        // R,J,X with all four extra bits: name at 436 (lustre-abi.md §1.14).
        assert_eq!(b.len(), 436 + 7);
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), 0xF001);
        assert_eq!(u64::from_le_bytes(b[128..136].try_into().unwrap()), 0xF);
        assert_eq!(&b[436..], b"new\0old");
        let (d, n) = Rec::decode(&b).unwrap();
        assert_eq!(n, b.len());
        assert_eq!(d, full());
    }

    #[test]
    fn trimming_keeps_only_requested_present_extensions() {
        let t = full().trimmed(false, true, CLFE_UIDGID);
        let b = t.encode();
        // R,X(UIDGID): rename@64, extra@96, uidgid@104, name@120
        assert_eq!(b.len(), 120 + 7);
        assert_eq!(u16::from_le_bytes([b[2], b[3]]), 0xB001);
        let t = full().trimmed(true, false, 0xF);
        assert_eq!(t.encode().len(), 64 + 32 + 32 + 7);
        let mut plain = full();
        plain.rename = None;
        plain.extra = false;
        plain.jobid = None;
        assert_eq!(plain.trimmed(true, true, 0xF).encode().len(), 64 + 7);
    }
}
