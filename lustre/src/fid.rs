//! The Lustre file identifier and its `DFID` text form.

use std::fmt;
use std::str::FromStr;

/// A Lustre FID. `Display` prints exactly like C's `DFID` (`[0x200000401:0x1:0x0]`, with a zero
/// sequence printed as `0` because of `%#llx`); `FromStr` accepts that form with or without the
/// brackets.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Fid {
    /// Sequence.
    pub seq: u64,
    /// Object id within the sequence.
    pub oid: u32,
    /// Version (0 for every FID the MDT hands out to files).
    pub ver: u32,
}

/// Length of the `lu_fid` wire form.
pub const FID_BYTES: usize = 16;

impl Fid {
    /// The all-zero FID (what an absent FID field holds).
    pub const ZERO: Fid = Fid {
        seq: 0,
        oid: 0,
        ver: 0,
    };

    /// A FID from its three parts.
    pub const fn new(seq: u64, oid: u32, ver: u32) -> Fid {
        Fid { seq, oid, ver }
    }

    /// True when seq and oid are both 0 (the version is ignored, as `fid_is_zero` does).
    pub fn is_zero(&self) -> bool {
        self.seq == 0 && self.oid == 0
    }

    /// The "no brace" text form (`0x200000401:0x1:0x0`), as used in `.lustre/fid/` names and
    /// archive object names.
    pub fn nobrace(&self) -> NoBrace {
        NoBrace(*self)
    }

    /// Reads the 16-byte little-endian `lu_fid` layout.
    pub fn from_bytes(b: &[u8; FID_BYTES]) -> Fid {
        let mut seq = [0u8; 8];
        let mut oid = [0u8; 4];
        let mut ver = [0u8; 4];
        seq.copy_from_slice(&b[0..8]);
        oid.copy_from_slice(&b[8..12]);
        ver.copy_from_slice(&b[12..16]);
        Fid {
            seq: u64::from_le_bytes(seq),
            oid: u32::from_le_bytes(oid),
            ver: u32::from_le_bytes(ver),
        }
    }

    /// The 16-byte little-endian `lu_fid` layout.
    pub fn to_bytes(&self) -> [u8; FID_BYTES] {
        let mut b = [0u8; FID_BYTES];
        b[0..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..12].copy_from_slice(&self.oid.to_le_bytes());
        b[12..16].copy_from_slice(&self.ver.to_le_bytes());
        b
    }
}

/// Display adapter for [`Fid::nobrace`].
#[derive(Clone, Copy, Debug)]
pub struct NoBrace(Fid);

impl fmt::Display for NoBrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Fid { seq, oid, ver } = self.0;
        // `%#llx` prints 0 without the 0x prefix; `0x%x` always has it.
        if seq == 0 {
            write!(f, "0:{oid:#x}:{ver:#x}")
        } else {
            write!(f, "{seq:#x}:{oid:#x}:{ver:#x}")
        }
    }
}

impl fmt::Display for Fid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.nobrace())
    }
}

/// A string that is not a FID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid FID {input:?}: expected [SEQ:OID:VER] with hexadecimal (0x...) or decimal parts")]
pub struct ParseFidError {
    /// The text that did not parse.
    pub input: String,
}

impl FromStr for Fid {
    type Err = ParseFidError;

    /// Accepts `[seq:oid:ver]` or `seq:oid:ver`; each part is hexadecimal with a `0x`/`0X`
    /// prefix or decimal, the forms `DFID` and `lfs` print (whitespace around the whole text is
    /// ignored).
    fn from_str(s: &str) -> Result<Fid, ParseFidError> {
        let err = || ParseFidError {
            input: s.to_string(),
        };
        let t = s.trim();
        let inner = match (t.strip_prefix('['), t.strip_suffix(']')) {
            (Some(_), Some(_)) if t.len() >= 2 => &t[1..t.len() - 1],
            (None, None) => t,
            _ => return Err(err()),
        };
        let mut parts = inner.split(':');
        let (Some(seq), Some(oid), Some(ver), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        let seq = parse_number(seq).ok_or_else(err)?;
        let oid = parse_number(oid)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(err)?;
        let ver = parse_number(ver)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(err)?;
        Ok(Fid { seq, oid, ver })
    }
}

fn parse_number(s: &str) -> Option<u64> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Serialised as its `DFID` text, so a FID can key a JSON map (the policy daemon's state file
/// keeps per-file work that way) and reads back from any text [`FromStr`] accepts.
impl serde::Serialize for Fid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Fid, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl From<lustre_sys::lu_fid> for Fid {
    fn from(f: lustre_sys::lu_fid) -> Fid {
        Fid {
            seq: f.f_seq,
            oid: f.f_oid,
            ver: f.f_ver,
        }
    }
}

impl From<Fid> for lustre_sys::lu_fid {
    fn from(f: Fid) -> lustre_sys::lu_fid {
        lustre_sys::lu_fid {
            f_seq: f.seq,
            f_oid: f.oid,
            f_ver: f.ver,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_dfid() {
        assert_eq!(
            Fid::new(0x200000401, 1, 0).to_string(),
            "[0x200000401:0x1:0x0]"
        );
        assert_eq!(Fid::ZERO.to_string(), "[0:0x0:0x0]");
        assert_eq!(Fid::new(0, 0x2a, 3).nobrace().to_string(), "0:0x2a:0x3");
    }

    #[test]
    fn parses_with_and_without_brackets() {
        let want = Fid::new(0x200000401, 0x1, 0);
        for text in [
            "[0x200000401:0x1:0x0]",
            "0x200000401:0x1:0x0",
            " [0x200000401:0x1:0x0]\n",
            "0X200000401:1:0",
            "8589935617:0x1:0",
        ] {
            assert_eq!(text.parse::<Fid>(), Ok(want), "{text}");
        }
        assert_eq!("[0:0x0:0x0]".parse::<Fid>(), Ok(Fid::ZERO));
    }

    #[test]
    fn rejects_malformed_text() {
        for text in [
            "",
            "[]",
            "[0x1:0x2]",
            "0x1:0x2:0x3:0x4",
            "[0x1:0x2:0x3",
            "0x1:0x2:0x3]",
            "0x1:0x100000000:0",
            "0x1:0x2:0x100000000",
            "0x10000000000000000:0:0",
            "0x:1:0",
            "-1:1:0",
            "+1:1:0",
            "0xg:1:0",
            "[0x1 :0x2:0x3]",
        ] {
            let err = text.parse::<Fid>().unwrap_err();
            assert_eq!(err.input, text);
        }
    }

    #[test]
    fn serialises_as_dfid_text_so_it_can_key_a_json_map() {
        let fid = Fid::new(0x200000401, 0x1, 0);
        let map = std::collections::BTreeMap::from([(fid, 1), (Fid::ZERO, 2)]);
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, r#"{"[0:0x0:0x0]":2,"[0x200000401:0x1:0x0]":1}"#);
        let back: std::collections::BTreeMap<Fid, i32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, map);
        let err = serde_json::from_str::<Fid>(r#""[0x1:0x2]""#).unwrap_err();
        assert!(err.to_string().contains("invalid FID"), "{err}");
    }

    #[test]
    fn zero_ignores_version() {
        assert!(Fid::new(0, 0, 3).is_zero());
        assert!(!Fid::new(0, 1, 0).is_zero());
        assert!(!Fid::new(1, 0, 0).is_zero());
    }

    #[test]
    fn converts_to_and_from_lu_fid_and_bytes() {
        let fid = Fid::new(0x1234567890abcdef, 0xdeadbeef, 7);
        let raw: lustre_sys::lu_fid = fid.into();
        assert_eq!(Fid::from(raw), fid);
        assert_eq!(Fid::from_bytes(&fid.to_bytes()), fid);
        assert_eq!(&fid.to_bytes()[..8], &0x1234567890abcdefu64.to_le_bytes());
    }
}
