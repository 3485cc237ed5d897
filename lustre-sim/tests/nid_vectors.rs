//! The NID of a changelog record as real Lustre 2.16.1 stores it (REAL_LUSTRE.md row 9):
//! `ef=0x13` (CLFE_UIDGID | CLFE_NID | CLFE_NID_BE) with a big-endian `struct lnet_nid`
//! (lustre-abi.md §1.13), built here byte by byte from the ABI document, not by our encoder.
//! The product's decoder (`lustre::wire::decode_changelog`) must read both forms, and the
//! simulator must write what the real MDT writes.

use lustre::wire::decode_changelog;
use lustre::Nid;
use lustreapi_sim::consts::*;
use lustreapi_sim::fid::Fid;
use lustreapi_sim::record::{Rec, NID_LO_BE, NID_NONE_BE};

const TFID: (u64, u32) = (0x200000402, 0xe);

/// `11CLOSE ... 0x42 t=[0x200000402:0xe:0x0] ef=EF u=0:0 nid=NID` as the 2.16 device hands it
/// out: changelog_rec (64), jobid (32, empty), extra flags (8), uid/gid (16), nid (24).
fn close_bytes(ef: u64, nid: [u8; 24]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0u16.to_le_bytes()); // cr_namelen
    b.extend_from_slice(&(0x1000u16 | 0x4000 | 0x8000 | 0x42).to_le_bytes()); // VERSION|JOBID|EXTRA
    b.extend_from_slice(&11u32.to_le_bytes()); // CL_CLOSE
    b.extend_from_slice(&49u64.to_le_bytes()); // cr_index
    b.extend_from_slice(&0u64.to_le_bytes()); // cr_prev
    b.extend_from_slice(&(1_764_746_830u64 << 30).to_le_bytes()); // cr_time
    b.extend_from_slice(&TFID.0.to_le_bytes());
    b.extend_from_slice(&TFID.1.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&[0u8; 16]); // cr_pfid
    b.extend_from_slice(&[0u8; 32]); // jobid ""
    b.extend_from_slice(&ef.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // uid
    b.extend_from_slice(&0u64.to_le_bytes()); // gid
    b.extend_from_slice(&nid);
    b
}

/// `struct lnet_nid` (packed, big endian) in the 24-byte NID extension.
fn lnet_nid(size: u8, lnd: u8, num: u16, addr: [u32; 4]) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[0] = size;
    n[1] = lnd;
    n[2..4].copy_from_slice(&num.to_be_bytes());
    for (i, a) in addr.iter().enumerate() {
        n[4 + 4 * i..8 + 4 * i].copy_from_slice(&a.to_be_bytes());
    }
    n
}

fn sim_close(nid: Nid) -> Rec {
    Rec {
        rtype: CL_CLOSE,
        flags: MDS_OPEN_CREAT | MDS_FMODE_WRITE,
        index: 49,
        time: 1_764_746_830u64 << 30,
        tfid: Fid {
            seq: TFID.0,
            oid: TFID.1,
            ver: 0,
        },
        jobid: Some(String::new()),
        extra: true,
        uidgid: Some((0, 0)),
        nid: Some(nid),
        ..Default::default()
    }
}

#[test]
fn nid_0_at_lo_in_the_2_16_big_endian_form() {
    let bytes = close_bytes(0x13, lnet_nid(0, 9, 0, [0; 4]));
    let (r, n) = decode_changelog(&bytes).expect("a 2.16 record decodes");
    assert_eq!(n, bytes.len());
    assert_eq!(r.extra_flags, Some(0x13));
    assert_eq!(
        r.nid,
        Some(Nid::Large {
            size: 0,
            lnd: 9,
            num: 0,
            addr: [0; 4]
        })
    );
    assert_eq!(r.flags & 0xFFF, 0x42);
    // the simulator writes these very bytes
    assert_eq!(sim_close(NID_LO_BE).encode().expect("encodes"), bytes);
}

#[test]
fn the_coordinators_zero_nid() {
    // `nid=0@<0:0>` on the HE_STATE the coordinator thread writes at dispatch
    let bytes = close_bytes(0x13, lnet_nid(0, 0, 0, [0; 4]));
    let (r, _) = decode_changelog(&bytes).expect("decodes");
    assert_eq!(r.nid.map(|n| n.net()), Some(0));
    assert_eq!(sim_close(NID_NONE_BE).encode().expect("encodes"), bytes);
}

#[test]
fn the_8_byte_form_a_reader_without_nid_be_gets() {
    // lnet_nid_t, little endian: LOLND (9) in the network's high half, address 0
    let mut nid = [0u8; 24];
    nid[..8].copy_from_slice(&NID_LO.to_le_bytes());
    let bytes = close_bytes(0x3, nid);
    let (r, _) = decode_changelog(&bytes).expect("decodes");
    assert_eq!(r.nid, Some(Nid::Nid4(NID_LO)));
    assert_eq!(r.nid.map(|n| n.net()), Some(9 << 16));
    // the simulator's library converts its stored record the same way
    let t = sim_close(NID_LO_BE).trimmed(true, true, CLFE_UIDGID | CLFE_NID, false);
    assert_eq!(t.encode().expect("encodes"), bytes);
}
