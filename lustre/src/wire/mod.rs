//! Byte-exact codecs for the Lustre HSM and changelog wire formats (lustre-abi.md §1, §7),
//! reimplementing the header-inline helpers (`changelog_rec_offset`, `hai_first`/`hai_next`,
//! `hur_data`/`hur_len`, `hsm_get_cl_*` ...). Pure Rust, no FFI: the simulator uses the encoders
//! to produce what the kernel would, the FFI layer uses the decoders on what the library returns.
//!
//! All integers are in host order, which is little endian on every platform Lustre clients run
//! on (x86_64, aarch64); the codecs are written for little endian explicitly. Decoders never
//! panic and never read past the slice they are given: truncated or garbage input gives a
//! [`DecodeError`].

mod changelog;
mod hal;
mod hur;
mod kuc;

pub use changelog::{
    changelog_layout, decode_changelog, encode_changelog, ChangelogLayout, CHANGELOG_REC_LEN,
};
pub use hal::{
    decode_hal, encode_hai, encode_hal, hal_first_item_offset, HAI_FIXED_LEN, HAL_HEADER_LEN,
};
pub use hur::{
    decode_hur, encode_hur, hur_len, max_items_per_request, split_requests, HUR_HEADER_LEN,
    HUR_ITEM_LEN, HUR_MAX_LEN,
};
pub use kuc::{
    decode_kuc_header, encode_kuc_hal, encode_kuc_header, KucHeader, KUC_HEADER_LEN,
    KUC_SHUTDOWN_MESSAGE,
};

/// Input that is not a well-formed record, action list or request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ends before the structure does; `need` is the length known so far to be
    /// required (more may be needed once those bytes are read).
    #[error("{what}: truncated, need {need} bytes but have {have}")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes there.
        have: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("{what}: invalid value {value}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
}

impl DecodeError {
    /// The errno liblustreapi uses for malformed messages (`EPROTO`).
    pub fn errno(&self) -> i32 {
        libc::EPROTO
    }
}

/// A value that cannot be represented in the wire format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message would be too large (the kernel answers `E2BIG`).
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooBig {
        /// What was being encoded.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A string field is longer than its fixed-size slot.
    #[error("{what} is {len} bytes long, at most {max} fit")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The slot's size.
        max: usize,
    },
    /// A NUL-terminated field contains a NUL byte.
    #[error("{what} contains a NUL byte")]
    InteriorNul {
        /// The field.
        what: &'static str,
    },
    /// The value contradicts itself (e.g. an old name on a record that is not a rename).
    #[error("{0}")]
    Inconsistent(&'static str),
}

impl EncodeError {
    /// The errno the kernel or library would report for the same condition.
    pub fn errno(&self) -> i32 {
        match self {
            EncodeError::TooBig { .. } => libc::E2BIG,
            EncodeError::TooLong { .. } => libc::ENAMETOOLONG,
            EncodeError::InteriorNul { .. } | EncodeError::Inconsistent(_) => libc::EINVAL,
        }
    }
}

/// `A8(x)`: rounds up to a multiple of 8, as the hal layout does. `None` on overflow.
pub(crate) fn align8(x: usize) -> Option<usize> {
    x.checked_add(7).map(|v| v & !7)
}

/// Bounds-checked little-endian reads from a byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    pub(crate) fn bytes(&self, off: usize, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = off.checked_add(len).ok_or(DecodeError::Truncated {
            what: self.what,
            need: usize::MAX,
            have: self.buf.len(),
        })?;
        self.buf.get(off..end).ok_or(DecodeError::Truncated {
            what: self.what,
            need: end,
            have: self.buf.len(),
        })
    }

    pub(crate) fn array<const N: usize>(&self, off: usize) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(off, N)?);
        Ok(out)
    }

    pub(crate) fn u16(&self, off: usize) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(off)?))
    }

    pub(crate) fn u32(&self, off: usize) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(off)?))
    }

    pub(crate) fn u64(&self, off: usize) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(off)?))
    }

    pub(crate) fn fid(&self, off: usize) -> Result<crate::Fid, DecodeError> {
        Ok(crate::Fid::from_bytes(&self.array(off)?))
    }
}

/// The bytes of a fixed-size NUL-terminated C string field, up to (not including) the first
/// NUL, or the whole field when it has none.
pub(crate) fn c_field(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(n) => &field[..n],
        None => field,
    }
}

/// Writes `value` into a zeroed fixed-size slot that must keep a terminating NUL.
pub(crate) fn put_c_field(
    out: &mut Vec<u8>,
    value: &[u8],
    slot: usize,
    what: &'static str,
) -> Result<(), EncodeError> {
    if value.contains(&0) {
        return Err(EncodeError::InteriorNul { what });
    }
    if value.len() >= slot {
        return Err(EncodeError::TooLong {
            what,
            len: value.len(),
            max: slot - 1,
        });
    }
    out.extend_from_slice(value);
    out.resize(out.len() + slot - value.len(), 0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align8_rounds_up() {
        assert_eq!(align8(0), Some(0));
        assert_eq!(align8(1), Some(8));
        assert_eq!(align8(7), Some(8));
        assert_eq!(align8(8), Some(8));
        assert_eq!(align8(77), Some(80));
        assert_eq!(align8(usize::MAX), None);
    }

    #[test]
    fn reader_reports_what_is_missing() {
        let r = Reader::new(&[1, 2, 3], "thing");
        assert_eq!(r.u16(1), Ok(0x0302));
        assert_eq!(
            r.u32(0),
            Err(DecodeError::Truncated {
                what: "thing",
                need: 4,
                have: 3
            })
        );
        assert!(r.bytes(usize::MAX, 2).is_err());
        assert_eq!(
            DecodeError::Truncated {
                what: "thing",
                need: 4,
                have: 3
            }
            .to_string(),
            "thing: truncated, need 4 bytes but have 3"
        );
    }

    #[test]
    fn c_fields() {
        assert_eq!(c_field(b"ab\0cd"), b"ab");
        assert_eq!(c_field(b"abc"), b"abc");
        let mut out = Vec::new();
        put_c_field(&mut out, b"ab", 4, "f").unwrap();
        assert_eq!(out, b"ab\0\0");
        assert_eq!(
            put_c_field(&mut out, b"abcd", 4, "f"),
            Err(EncodeError::TooLong {
                what: "f",
                len: 4,
                max: 3
            })
        );
        assert_eq!(
            put_c_field(&mut out, b"a\0", 4, "f"),
            Err(EncodeError::InteriorNul { what: "f" })
        );
        assert_eq!(EncodeError::InteriorNul { what: "f" }.errno(), libc::EINVAL);
        assert_eq!(
            EncodeError::TooBig {
                what: "r",
                len: 1706,
                max: 1705
            }
            .errno(),
            libc::E2BIG
        );
    }
}
