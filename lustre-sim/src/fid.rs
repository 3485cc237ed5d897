//! The simulator's FID: the same three numbers as `lu_fid`, printable and parsable the way
//! liblustreapi prints (`DFID`) and parses (`llapi_fid_parse`) them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// First sequence of normal file FIDs (`FID_SEQ_NORMAL`).
pub const FID_SEQ_NORMAL: u64 = 0x2_0000_0400;
/// Width of the sequence range each simulated MDT owns (real DNE hands out super-sequences
/// of this size, which is why MDT1 FIDs look like `[0x240000400:..]`).
pub const MDT_SEQ_STRIDE: u64 = 0x4000_0000;
/// Objects per sequence before the next one is taken (`LUSTRE_DATA_SEQ_MAX_WIDTH`).
pub const SEQ_WIDTH: u32 = 0x20000;
/// The root directory's FID on real Lustre.
pub const ROOT_FID: Fid = Fid {
    seq: 0x2_0000_0007,
    oid: 1,
    ver: 0,
};

#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default, Serialize, Deserialize,
)]
pub struct Fid {
    pub seq: u64,
    pub oid: u32,
    pub ver: u32,
}

impl Fid {
    pub fn is_zero(&self) -> bool {
        self.seq == 0 && self.oid == 0
    }

    /// The MDT whose sequence range holds this FID (the root and other special FIDs are on MDT0).
    pub fn mdt_index(&self) -> u32 {
        if self.seq < FID_SEQ_NORMAL {
            return 0;
        }
        ((self.seq - FID_SEQ_NORMAL) / MDT_SEQ_STRIDE) as u32
    }

    /// 16 bytes in the `lu_fid` layout (little-endian fields).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..12].copy_from_slice(&self.oid.to_le_bytes());
        b[12..16].copy_from_slice(&self.ver.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8]) -> Option<Fid> {
        if b.len() < 16 {
            return None;
        }
        Some(Fid {
            seq: u64::from_le_bytes(b[0..8].try_into().ok()?),
            oid: u32::from_le_bytes(b[8..12].try_into().ok()?),
            ver: u32::from_le_bytes(b[12..16].try_into().ok()?),
        })
    }

    /// Parses `[0x..:0x..:0x..]` or the no-brace form; hex with or without `0x`.
    pub fn parse(s: &str) -> Option<Fid> {
        let t = s.trim();
        let t = t.strip_prefix('[').unwrap_or(t);
        let t = t.strip_suffix(']').unwrap_or(t);
        let mut parts = t.split(':');
        let seq = parse_hex(parts.next()?)?;
        let oid = parse_hex(parts.next()?)?;
        let ver = parse_hex(parts.next()?)?;
        if parts.next().is_some() || oid > u32::MAX as u64 || ver > u32::MAX as u64 {
            return None;
        }
        Some(Fid {
            seq,
            oid: oid as u32,
            ver: ver as u32,
        })
    }

    /// The "no brace" form (`%#llx:0x%x:0x%x`).
    pub fn nobrace(&self) -> String {
        let seq = if self.seq == 0 {
            "0".to_string()
        } else {
            format!("{:#x}", self.seq)
        };
        format!("{}:0x{:x}:0x{:x}", seq, self.oid, self.ver)
    }
}

fn parse_hex(s: &str) -> Option<u64> {
    let s = s.trim();
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if h.is_empty() {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

impl fmt::Display for Fid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.nobrace())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let f = Fid {
            seq: 0x200000401,
            oid: 1,
            ver: 0,
        };
        assert_eq!(f.to_string(), "[0x200000401:0x1:0x0]");
        assert_eq!(Fid::parse("[0x200000401:0x1:0x0]"), Some(f));
        assert_eq!(Fid::parse("0x200000401:0x1:0x0"), Some(f));
        assert_eq!(Fid::parse("bogus"), None);
        assert_eq!(Fid::default().to_string(), "[0:0x0:0x0]");
        assert_eq!(Fid::from_bytes(&f.to_bytes()), Some(f));
        assert_eq!(
            Fid {
                seq: 0x240000400,
                oid: 3,
                ver: 0
            }
            .mdt_index(),
            1
        );
    }
}
