//! HSM action lists (`hsm_action_list` + items, lustre-abi.md §1.3–§1.4) and their KUC framing
//! (§1.15, §6.1), byte for byte.

use crate::consts::*;
use crate::fid::Fid;

pub const HAL_HDR: usize = 32;
pub const HAI_HDR: usize = 72;
pub const KUC_HDR: usize = 8;

fn a8(x: usize) -> usize {
    (x + 7) & !7
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub action: u32,
    pub fid: Fid,
    pub dfid: Fid,
    pub offset: u64,
    pub length: u64,
    pub cookie: u64,
    pub gid: u64,
    pub data: Vec<u8>,
}

impl Item {
    /// Bytes this item takes in a hal (rounded up to 8).
    pub fn wire_len(&self) -> usize {
        a8(HAI_HDR + self.data.len())
    }

    pub fn encode_into(&self, b: &mut Vec<u8>) {
        let start = b.len();
        b.extend_from_slice(&((HAI_HDR + self.data.len()) as u32).to_le_bytes());
        b.extend_from_slice(&self.action.to_le_bytes());
        b.extend_from_slice(&self.fid.to_bytes());
        b.extend_from_slice(&self.dfid.to_bytes());
        b.extend_from_slice(&self.offset.to_le_bytes());
        b.extend_from_slice(&self.length.to_le_bytes());
        b.extend_from_slice(&self.cookie.to_le_bytes());
        b.extend_from_slice(&self.gid.to_le_bytes());
        b.extend_from_slice(&self.data);
        b.resize(start + self.wire_len(), 0);
    }

    /// Decodes the fixed 72 bytes (+ data up to `hai_len`) at the start of `b`.
    pub fn decode(b: &[u8]) -> Option<Item> {
        if b.len() < HAI_HDR {
            return None;
        }
        let u32at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
        let u64at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let len = u32at(0) as usize;
        if len < HAI_HDR || len > b.len() {
            return None;
        }
        Some(Item {
            action: u32at(4),
            fid: crate::fid::from_bytes(&b[8..24])?,
            dfid: crate::fid::from_bytes(&b[24..40])?,
            offset: u64at(40),
            length: u64at(48),
            cookie: u64at(56),
            gid: u64at(64),
            data: b[HAI_HDR..len].to_vec(),
        })
    }
}

/// Size of a hal holding `items` under `fsname`.
pub fn hal_size(fsname: &str, items: &[Item]) -> usize {
    HAL_HDR + a8(fsname.len() + 1) + items.iter().map(Item::wire_len).sum::<usize>()
}

pub fn encode_hal(archive_id: u32, flags: u64, fsname: &str, items: &[Item]) -> Vec<u8> {
    let mut b = Vec::with_capacity(hal_size(fsname, items));
    b.extend_from_slice(&HAL_VERSION.to_le_bytes());
    b.extend_from_slice(&(items.len() as u32).to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&archive_id.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(fsname.as_bytes());
    b.resize(HAL_HDR + a8(fsname.len() + 1), 0);
    for it in items {
        it.encode_into(&mut b);
    }
    b
}

/// A KUC message: header + payload, ready for one `write()`.
pub fn kuc_message(transport: u8, msgtype: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(KUC_HDR + payload.len());
    b.extend_from_slice(&KUC_MAGIC.to_le_bytes());
    b.push(transport);
    b.push(0);
    b.extend_from_slice(&msgtype.to_le_bytes());
    b.extend_from_slice(&((KUC_HDR + payload.len()) as u16).to_le_bytes());
    b.extend_from_slice(payload);
    b
}

/// One KUC message carrying a hal, encoded by `lustre::wire::encode_kuc_hal` (the codec the
/// product decodes with).
pub fn kuc_hal(
    archive_id: u32,
    flags: u64,
    fsname: &str,
    items: &[Item],
) -> Result<Vec<u8>, lustre::wire::EncodeError> {
    let lf = |f: Fid| lustre::Fid {
        seq: f.seq,
        oid: f.oid,
        ver: f.ver,
    };
    let hal = lustre::ActionList {
        version: HAL_VERSION,
        archive_id,
        flags,
        compound_id: 0,
        fsname: fsname.to_string(),
        items: items
            .iter()
            .map(|i| lustre::ActionItem {
                action: lustre::CopytoolAction::from_raw(i.action),
                fid: lf(i.fid),
                dfid: lf(i.dfid),
                extent: lustre::Extent {
                    offset: i.offset,
                    length: i.length,
                },
                cookie: i.cookie,
                gid: i.gid,
                data: i.data.clone(),
            })
            .collect(),
    };
    lustre::wire::encode_kuc_hal(&hal)
}

pub fn kuc_shutdown() -> Vec<u8> {
    kuc_message(KUC_TRANSPORT_GENERIC, KUC_MSG_SHUTDOWN, &[])
}

/// Walks the items of a hal payload (bounded by its length).
pub fn decode_hal_items(b: &[u8]) -> Option<(u32, u64, String, Vec<Item>)> {
    if b.len() < HAL_HDR {
        return None;
    }
    let count = u32::from_le_bytes(b[4..8].try_into().ok()?);
    let flags = u64::from_le_bytes(b[16..24].try_into().ok()?);
    let archive_id = u32::from_le_bytes(b[24..28].try_into().ok()?);
    let nul = b[HAL_HDR..].iter().position(|&c| c == 0)?;
    let fsname = String::from_utf8_lossy(&b[HAL_HDR..HAL_HDR + nul]).into_owned();
    let mut o = HAL_HDR + a8(nul + 1);
    let mut items = Vec::new();
    for _ in 0..count {
        let it = Item::decode(b.get(o..)?)?;
        o += it.wire_len();
        items.push(it);
    }
    Some((archive_id, flags, fsname, items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(datalen: usize) -> Item {
        Item {
            action: HSMA_ARCHIVE,
            fid: Fid {
                seq: 0x200000401,
                oid: 1,
                ver: 0,
            },
            dfid: Fid {
                seq: 0x200000401,
                oid: 1,
                ver: 0,
            },
            offset: 0,
            length: u64::MAX,
            cookie: 9,
            gid: 0,
            data: vec![0xAB; datalen],
        }
    }

    #[test]
    fn measured_positions() {
        // lustre-abi.md §1.4: "lustre" puts the first hai at 40; two items of hai_len 77 and 72
        // put the second at 120 and the hal size at 192.
        let items = [item(5), item(0)];
        let b = encode_hal(1, 0, "lustre", &items);
        assert_eq!(b.len(), 192);
        assert_eq!(u32::from_le_bytes(b[40..44].try_into().unwrap()), 77);
        assert_eq!(u32::from_le_bytes(b[120..124].try_into().unwrap()), 72);
        assert_eq!(HAL_HDR + a8("fs1234567".len() + 1), 48);
        let (aid, _, fs, got) = decode_hal_items(&b).unwrap();
        assert_eq!((aid, fs.as_str()), (1, "lustre"));
        assert_eq!(got, items);
        let m = kuc_hal(1, 0, "lustre", &items).unwrap();
        assert_eq!(&m[..8], &[0x1C, 0x19, 2, 0, 100, 0, 200, 0]);
        assert_eq!(&m[8..], &b[..], "lustre::wire and the local layout agree");
    }
}
