//! `hsm_action_list` + `hsm_action_item`s (lustre-abi.md §1.3, §1.4): the logic of the
//! header-inline `hai_first`, `hai_next` and `hal_size`.

use super::{align8, c_field, DecodeError, EncodeError, Reader};
use crate::hsm::{ActionItem, ActionList, CopytoolAction, Extent};

/// Fixed part of an `hsm_action_list`; the fsname follows.
pub const HAL_HEADER_LEN: usize = 32;
/// Fixed part of an `hsm_action_item`; `hai_data` follows.
pub const HAI_FIXED_LEN: usize = 72;
const WHAT: &str = "hsm_action_list";

/// `hai_first`: offset of the first item, `32 + A8(strlen(fsname) + 1)`.
pub fn hal_first_item_offset(fsname_len: usize) -> Option<usize> {
    HAL_HEADER_LEN.checked_add(align8(fsname_len.checked_add(1)?)?)
}

/// Decodes an action list of `msgsize` bytes (`b.len()`), copying every item out. Each item
/// must lie entirely within `b` (as lhsmtool_posix checks against `msgsize`).
pub fn decode_hal(b: &[u8]) -> Result<ActionList, DecodeError> {
    let r = Reader::new(b, WHAT);
    r.bytes(0, HAL_HEADER_LEN)?;
    let version = r.u32(0)?;
    let count = r.u32(4)?;
    let compound_id = r.u64(8)?;
    let flags = r.u64(16)?;
    let archive_id = r.u32(24)?;
    let tail = &b[HAL_HEADER_LEN..];
    let fsname_len = tail
        .iter()
        .position(|&c| c == 0)
        .ok_or(DecodeError::Truncated {
            what: "hal_fsname (no NUL)",
            need: b.len() + 1,
            have: b.len(),
        })?;
    let fsname = String::from_utf8_lossy(c_field(tail)).into_owned();
    let mut pos = hal_first_item_offset(fsname_len).ok_or(DecodeError::Invalid {
        what: "hal_fsname length",
        value: fsname_len as u64,
    })?;
    // Every item takes at least 72 bytes, so garbage counts cannot make us allocate much.
    let mut items = Vec::with_capacity((count as usize).min(b.len() / HAI_FIXED_LEN));
    for i in 0..count {
        let hai_len = r.u32(pos)? as usize;
        if hai_len < HAI_FIXED_LEN {
            return Err(DecodeError::Invalid {
                what: "hai_len",
                value: hai_len as u64,
            });
        }
        r.bytes(pos, hai_len)?;
        items.push(ActionItem {
            action: CopytoolAction::from_raw(r.u32(pos + 4)?),
            fid: r.fid(pos + 8)?,
            dfid: r.fid(pos + 24)?,
            extent: Extent::new(r.u64(pos + 40)?, r.u64(pos + 48)?),
            cookie: r.u64(pos + 56)?,
            gid: r.u64(pos + 64)?,
            data: r
                .bytes(pos + HAI_FIXED_LEN, hai_len - HAI_FIXED_LEN)?
                .to_vec(),
        });
        if i + 1 < count {
            pos = align8(hai_len)
                .and_then(|step| pos.checked_add(step))
                .ok_or(DecodeError::Invalid {
                    what: "hai_len",
                    value: hai_len as u64,
                })?;
        }
    }
    Ok(ActionList {
        version,
        archive_id,
        flags,
        compound_id,
        fsname,
        items,
    })
}

/// Encodes an action list as the coordinator sends it: `hal_size` bytes, alignment padding
/// zeroed, `hai_len = 72 + data.len()`, `hal_count = items.len()`.
pub fn encode_hal(hal: &ActionList) -> Result<Vec<u8>, EncodeError> {
    let fsname = hal.fsname.as_bytes();
    if fsname.contains(&0) {
        return Err(EncodeError::InteriorNul { what: "hal_fsname" });
    }
    let count = u32::try_from(hal.items.len()).map_err(|_| EncodeError::TooBig {
        what: "hal_count",
        len: hal.items.len(),
        max: u32::MAX as usize,
    })?;
    let mut out = Vec::new();
    out.extend_from_slice(&hal.version.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&hal.compound_id.to_le_bytes());
    out.extend_from_slice(&hal.flags.to_le_bytes());
    out.extend_from_slice(&hal.archive_id.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(fsname);
    out.push(0);
    pad8(&mut out);
    for item in &hal.items {
        out.extend_from_slice(&encode_hai(item)?);
        pad8(&mut out);
    }
    Ok(out)
}

/// Encodes one action item: the fixed 72 bytes with `hai_len = 72 + data.len()`, then the
/// data (no trailing padding).
pub fn encode_hai(item: &ActionItem) -> Result<Vec<u8>, EncodeError> {
    let hai_len = HAI_FIXED_LEN
        .checked_add(item.data.len())
        .and_then(|l| u32::try_from(l).ok())
        .ok_or(EncodeError::TooBig {
            what: "hai_data",
            len: item.data.len(),
            max: u32::MAX as usize - HAI_FIXED_LEN,
        })?;
    let mut out = Vec::with_capacity(hai_len as usize);
    out.extend_from_slice(&hai_len.to_le_bytes());
    out.extend_from_slice(&item.action.raw().to_le_bytes());
    out.extend_from_slice(&item.fid.to_bytes());
    out.extend_from_slice(&item.dfid.to_bytes());
    out.extend_from_slice(&item.extent.offset.to_le_bytes());
    out.extend_from_slice(&item.extent.length.to_le_bytes());
    out.extend_from_slice(&item.cookie.to_le_bytes());
    out.extend_from_slice(&item.gid.to_le_bytes());
    out.extend_from_slice(&item.data);
    Ok(out)
}

fn pad8(out: &mut Vec<u8>) {
    let len = (out.len() + 7) & !7;
    out.resize(len, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fid::Fid;

    fn item(data: &[u8]) -> ActionItem {
        ActionItem {
            action: CopytoolAction::Archive,
            fid: Fid::new(0x200000401, 1, 0),
            dfid: Fid::new(0x200000401, 1, 0),
            extent: Extent::WHOLE_FILE,
            cookie: 9,
            gid: 0,
            data: data.to_vec(),
        }
    }

    fn list(fsname: &str, items: Vec<ActionItem>) -> ActionList {
        ActionList {
            version: 1,
            archive_id: 1,
            flags: 0,
            compound_id: 0,
            fsname: fsname.into(),
            items,
        }
    }

    #[test]
    fn measured_item_positions() {
        assert_eq!(hal_first_item_offset(6), Some(40));
        assert_eq!(hal_first_item_offset(9), Some(48));
        let bytes = encode_hal(&list("lustre", vec![item(b"abcde"), item(b"")])).unwrap();
        assert_eq!(bytes.len(), 192);
        assert_eq!(u32::from_le_bytes(bytes[120..124].try_into().unwrap()), 72);
        assert_eq!(decode_hal(&bytes).unwrap().items[0].data, b"abcde");
    }

    #[test]
    fn bounded_by_msgsize() {
        let bytes = encode_hal(&list("lustre", vec![item(b"abcde"), item(b"xy")])).unwrap();
        // The last item ends at 120 + 74; its padding is not needed.
        assert!(decode_hal(&bytes[..194]).is_ok());
        for cut in 0..194 {
            assert!(decode_hal(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut bad = bytes.clone();
        bad[40..44].copy_from_slice(&71u32.to_le_bytes());
        assert_eq!(
            decode_hal(&bad),
            Err(DecodeError::Invalid {
                what: "hai_len",
                value: 71
            })
        );
        let mut many = bytes;
        many[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_hal(&many).is_err());
    }

    #[test]
    fn fsname_with_nul_is_rejected() {
        assert_eq!(
            encode_hal(&list("a\0b", vec![])),
            Err(EncodeError::InteriorNul { what: "hal_fsname" })
        );
    }
}
