//! Kernel-to-user message framing on the copytool pipe (lustre-abi.md §1.15, §6.1).

use super::{encode_hal, DecodeError, EncodeError, Reader};
use crate::hsm::ActionList;
use lustre_sys as sys;

/// Size of `struct kuc_hdr`.
pub const KUC_HEADER_LEN: usize = 8;

/// `struct kuc_hdr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KucHeader {
    /// `KUC_MAGIC` in a well-formed message (not checked when decoding: the caller decides).
    pub magic: u16,
    /// `KUC_TRANSPORT_*`.
    pub transport: u8,
    /// Flags (unused: 0).
    pub flags: u8,
    /// `KUC_MSG_*` or `HMT_*` message type.
    pub msgtype: u16,
    /// Total message length including this header.
    pub msglen: u16,
}

/// The shutdown message the kernel broadcasts at unmount (generic transport, type 1, header
/// only); the library maps it to `-ESHUTDOWN`.
pub const KUC_SHUTDOWN_MESSAGE: [u8; KUC_HEADER_LEN] = encode_kuc_header(&KucHeader {
    magic: sys::KUC_MAGIC,
    transport: sys::KUC_TRANSPORT_GENERIC,
    flags: 0,
    msgtype: sys::KUC_MSG_SHUTDOWN,
    msglen: KUC_HEADER_LEN as u16,
});

/// Reads a header (no check of the magic: the caller decides, as the library does with
/// `-EPROTO`).
pub fn decode_kuc_header(b: &[u8]) -> Result<KucHeader, DecodeError> {
    let r = Reader::new(b, "kuc_hdr");
    r.bytes(0, KUC_HEADER_LEN)?;
    Ok(KucHeader {
        magic: r.u16(0)?,
        transport: r.array::<1>(2)?[0],
        flags: r.array::<1>(3)?[0],
        msgtype: r.u16(4)?,
        msglen: r.u16(6)?,
    })
}

/// The 8-byte header of `h`, little endian.
pub const fn encode_kuc_header(h: &KucHeader) -> [u8; KUC_HEADER_LEN] {
    let m = h.magic.to_le_bytes();
    let t = h.msgtype.to_le_bytes();
    let l = h.msglen.to_le_bytes();
    [m[0], m[1], h.transport, h.flags, t[0], t[1], l[0], l[1]]
}

/// One complete HSM message (header then hal), ready for a single `write()` to the pipe.
/// Fails when the message does not fit the 16-bit `kuc_msglen`.
pub fn encode_kuc_hal(hal: &ActionList) -> Result<Vec<u8>, EncodeError> {
    let body = encode_hal(hal)?;
    let total = KUC_HEADER_LEN + body.len();
    let msglen = u16::try_from(total).map_err(|_| EncodeError::TooBig {
        what: "KUC message",
        len: total,
        max: usize::from(u16::MAX),
    })?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&encode_kuc_header(&KucHeader {
        magic: sys::KUC_MAGIC,
        transport: sys::KUC_TRANSPORT_HSM,
        flags: 0,
        msgtype: sys::HMT_ACTION_LIST,
        msglen,
    }));
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_and_hal_messages() {
        let h = decode_kuc_header(&KUC_SHUTDOWN_MESSAGE).unwrap();
        assert_eq!(
            (h.magic, h.transport, h.msgtype, h.msglen),
            (0x191C, 1, 1, 8)
        );
        let hal = ActionList {
            version: 1,
            archive_id: 3,
            flags: 0,
            compound_id: 0,
            fsname: "lustre".into(),
            items: vec![],
        };
        let msg = encode_kuc_hal(&hal).unwrap();
        let h = decode_kuc_header(&msg).unwrap();
        assert_eq!(
            (h.magic, h.transport, h.flags, h.msgtype),
            (0x191C, 2, 0, 100)
        );
        assert_eq!(usize::from(h.msglen), msg.len());
        assert_eq!(msg.len(), 8 + 40);
        assert_eq!(crate::wire::decode_hal(&msg[8..]).unwrap(), hal);
        assert!(decode_kuc_header(&msg[..7]).is_err());
    }
}
