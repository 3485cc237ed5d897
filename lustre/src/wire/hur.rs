//! `hsm_user_request` (lustre-abi.md §1.6, §1.7): the logic of `hur_data` / `hur_len`, and
//! batching of large requests under the kernel's size limit.

use super::{DecodeError, EncodeError, Reader};
use crate::fid::Fid;
use crate::hsm::{Extent, UserAction, UserRequest};
use lustre_sys as sys;

/// The `hsm_request` header.
pub const HUR_HEADER_LEN: usize = 24;
/// One `hsm_user_item`.
pub const HUR_ITEM_LEN: usize = 32;
/// Largest request the kernel accepts: it rejects totals `>= MDS_MAXREQSIZE / 3` (1706) with
/// `E2BIG`.
pub const HUR_MAX_LEN: usize = (sys::MDS_MAXREQSIZE / 3) as usize - 1;
const WHAT: &str = "hsm_user_request";

/// `hur_len` of the request whose header starts `b`: `24 + 32 * hr_itemcount + hr_data_len`.
pub fn hur_len(b: &[u8]) -> Result<usize, DecodeError> {
    let r = Reader::new(b, WHAT);
    r.bytes(0, HUR_HEADER_LEN)?;
    let count = r.u32(16)? as usize;
    let data_len = r.u32(20)? as usize;
    count
        .checked_mul(HUR_ITEM_LEN)
        .and_then(|items| items.checked_add(HUR_HEADER_LEN + data_len))
        .ok_or(DecodeError::Invalid {
            what: "hr_itemcount",
            value: count as u64,
        })
}

/// Decodes a user request. `b` must hold at least `hur_len` bytes; extra bytes are ignored.
pub fn decode_hur(b: &[u8]) -> Result<UserRequest, DecodeError> {
    let len = hur_len(b)?;
    let r = Reader::new(b, WHAT);
    r.bytes(0, len)?;
    let count = r.u32(16)? as usize;
    let data_len = r.u32(20)? as usize;
    let mut items = Vec::with_capacity(count);
    for i in 0..count {
        let off = HUR_HEADER_LEN + i * HUR_ITEM_LEN;
        items.push((r.fid(off)?, Extent::new(r.u64(off + 16)?, r.u64(off + 24)?)));
    }
    let data_off = HUR_HEADER_LEN + count * HUR_ITEM_LEN;
    Ok(UserRequest {
        action: UserAction::from_raw(r.u32(0)?),
        archive_id: r.u32(4)?,
        flags: r.u64(8)?,
        items,
        data: r.bytes(data_off, data_len)?.to_vec(),
    })
}

/// Encodes a user request (`hur_len` bytes: header, items, then the data). Fails with
/// [`EncodeError::TooBig`] (errno `E2BIG`) above [`HUR_MAX_LEN`], as the kernel would.
pub fn encode_hur(req: &UserRequest) -> Result<Vec<u8>, EncodeError> {
    let len = HUR_HEADER_LEN + req.items.len().saturating_mul(HUR_ITEM_LEN) + req.data.len();
    if len > HUR_MAX_LEN {
        return Err(EncodeError::TooBig {
            what: "hsm_user_request",
            len,
            max: HUR_MAX_LEN,
        });
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&req.action.raw().to_le_bytes());
    out.extend_from_slice(&req.archive_id.to_le_bytes());
    out.extend_from_slice(&req.flags.to_le_bytes());
    // Both fit in u32: len <= HUR_MAX_LEN.
    out.extend_from_slice(&(req.items.len() as u32).to_le_bytes());
    out.extend_from_slice(&(req.data.len() as u32).to_le_bytes());
    for (fid, extent) in &req.items {
        out.extend_from_slice(&fid.to_bytes());
        out.extend_from_slice(&extent.offset.to_le_bytes());
        out.extend_from_slice(&extent.length.to_le_bytes());
    }
    out.extend_from_slice(&req.data);
    Ok(out)
}

/// How many items fit in one request carrying `data_len` bytes of data (52 with no data).
pub fn max_items_per_request(data_len: usize) -> usize {
    HUR_MAX_LEN
        .saturating_sub(HUR_HEADER_LEN)
        .saturating_sub(data_len)
        / HUR_ITEM_LEN
}

/// Splits one logical request over `fids` (whole-file extents) into as few requests as fit
/// the kernel's limit, each carrying the same `data`. No FIDs gives no requests. Fails with
/// `E2BIG` when `data` leaves no room for even one item.
pub fn split_requests(
    action: UserAction,
    archive_id: u32,
    flags: u64,
    fids: &[Fid],
    data: &[u8],
) -> Result<Vec<UserRequest>, EncodeError> {
    let per = max_items_per_request(data.len());
    if per == 0 {
        return Err(EncodeError::TooBig {
            what: "hsm_user_request data",
            len: HUR_HEADER_LEN + HUR_ITEM_LEN + data.len(),
            max: HUR_MAX_LEN,
        });
    }
    Ok(fids
        .chunks(per)
        .map(|chunk| UserRequest {
            action,
            archive_id,
            flags,
            items: chunk.iter().map(|f| (*f, Extent::WHOLE_FILE)).collect(),
            data: data.to_vec(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fids(n: u32) -> Vec<Fid> {
        (0..n).map(|i| Fid::new(0x200000401, i + 1, 0)).collect()
    }

    #[test]
    fn limits() {
        assert_eq!(HUR_MAX_LEN, 1705);
        assert_eq!(max_items_per_request(0), 52);
        assert_eq!(max_items_per_request(16), 52);
        assert_eq!(max_items_per_request(26), 51);
        assert_eq!(max_items_per_request(1681), 0);
        assert_eq!(max_items_per_request(5000), 0);
    }

    #[test]
    fn splits_within_the_limit_and_keeps_order() {
        let all = fids(200);
        let reqs = split_requests(UserAction::Archive, 2, 0, &all, b"tag").unwrap();
        assert_eq!(reqs.len(), 4);
        assert_eq!(
            reqs.iter().map(|r| r.items.len()).collect::<Vec<_>>(),
            [52, 52, 52, 44]
        );
        let back: Vec<Fid> = reqs
            .iter()
            .flat_map(|r| r.items.iter().map(|i| i.0))
            .collect();
        assert_eq!(back, all);
        for r in &reqs {
            let bytes = encode_hur(r).unwrap();
            assert!(bytes.len() <= HUR_MAX_LEN);
            assert_eq!(hur_len(&bytes), Ok(bytes.len()));
            assert_eq!(&decode_hur(&bytes).unwrap(), r);
            assert_eq!(r.data, b"tag");
            assert_eq!(r.archive_id, 2);
        }
        assert!(split_requests(UserAction::Archive, 0, 0, &[], b"")
            .unwrap()
            .is_empty());
        let err = split_requests(UserAction::Archive, 0, 0, &all, &[0; 1681]).unwrap_err();
        assert_eq!(err.errno(), libc::E2BIG);
    }

    #[test]
    fn too_big_is_e2big() {
        let req = UserRequest {
            action: UserAction::Archive,
            archive_id: 0,
            flags: 0,
            items: fids(53)
                .into_iter()
                .map(|f| (f, Extent::WHOLE_FILE))
                .collect(),
            data: vec![],
        };
        assert_eq!(
            encode_hur(&req),
            Err(EncodeError::TooBig {
                what: "hsm_user_request",
                len: 1720,
                max: 1705
            })
        );
    }

    #[test]
    fn truncated_and_garbage_requests_fail() {
        let req = split_requests(UserAction::Restore, 0, 0, &fids(3), b"xyz").unwrap();
        let bytes = encode_hur(&req[0]).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode_hur(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut huge = bytes.clone();
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_hur(&huge).is_err());
    }
}
