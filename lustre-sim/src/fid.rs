//! The simulator's FID: the same three numbers as `lu_fid`, printable and parsable the way
//! liblustreapi prints (`DFID`) and parses (`llapi_fid_parse`) them.

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

/// The FID the product uses: one type for both sides of the ABI (`lustre::Fid`), so the simulator
/// prints and parses FIDs exactly as the product reads them.
pub use lustre::Fid;

/// The MDT whose sequence range holds `fid` (the root and other special FIDs are on MDT0).
pub fn mdt_index(fid: &Fid) -> u32 {
    if fid.seq < FID_SEQ_NORMAL {
        return 0;
    }
    ((fid.seq - FID_SEQ_NORMAL) / MDT_SEQ_STRIDE) as u32
}

/// A FID from the first 16 bytes of `b` in the `lu_fid` layout; `None` when `b` is shorter.
pub fn from_bytes(b: &[u8]) -> Option<Fid> {
    let bytes: &[u8; lustre::FID_BYTES] = b.get(..lustre::FID_BYTES)?.try_into().ok()?;
    Some(Fid::from_bytes(bytes))
}

/// Parses a FID as `llapi_fid_parse` accepts it (`[0x..:0x..:0x..]` or the no-brace form).
pub fn parse(s: &str) -> Option<Fid> {
    s.parse().ok()
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
        assert_eq!(parse("[0x200000401:0x1:0x0]"), Some(f));
        assert_eq!(parse("0x200000401:0x1:0x0"), Some(f));
        assert_eq!(parse("bogus"), None);
        assert_eq!(Fid::default().to_string(), "[0:0x0:0x0]");
        assert_eq!(from_bytes(&f.to_bytes()), Some(f));
        assert_eq!(mdt_index(&Fid::new(0x240000400, 3, 0)), 1);
        assert_eq!(from_bytes(&[0u8; 15]), None, "too short for an lu_fid");
    }
}
