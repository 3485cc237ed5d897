//! Property tests: decoders never panic or read out of bounds on arbitrary, truncated or
//! corrupted input, and encode -> decode round-trips.

use lustre::wire::{
    changelog_layout, decode_changelog, decode_hal, decode_hur, decode_kuc_header,
    encode_changelog, encode_hal, encode_hur, hur_len, split_requests, HUR_MAX_LEN,
};
use lustre::{
    ActionItem, ActionList, ChangelogRecord, CopytoolAction, Extent, Fid, Nid, RecordType,
    RenameExt, UserAction, UserRequest,
};
use proptest::collection::vec;
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The golden vectors of one file, parsed once per test process.
fn golden(file: &str) -> &'static [Vec<u8>] {
    static CACHE: OnceLock<Vec<(String, Vec<Vec<u8>>)>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        ["changelog.json", "hal.json", "hur.json"]
            .into_iter()
            .map(|f| (f.to_string(), load(f)))
            .collect()
    });
    &cache
        .iter()
        .find(|(f, _)| f == file)
        .expect("known vector file")
        .1
}

fn load(file: &str) -> Vec<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/abi-vectors")
        .join(file);
    let list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| hex::decode(v["hex"].as_str().unwrap()).unwrap())
        .collect()
}

fn fid() -> impl Strategy<Value = Fid> {
    (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(s, o, v)| Fid::new(s, o, v))
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9._-]{{0,{max}}}")).unwrap()
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    vec(1u8..=255, 0..=255)
}

fn nid() -> impl Strategy<Value = Nid> {
    prop_oneof![
        any::<u64>().prop_map(Nid::Nid4),
        (any::<u8>(), any::<u8>(), any::<u16>(), any::<[u32; 4]>()).prop_map(
            |(size, lnd, num, addr)| Nid::Large {
                size,
                lnd,
                num,
                addr
            }
        ),
    ]
}

prop_compose! {
    fn record()(
        index in any::<u64>(), prev in any::<u64>(), raw_type in 0u32..30,
        low in 0u16..0x1000, time_sec in 0u64..(1 << 34), time_nsec in 0u32..(1 << 30),
        tfid in fid(), pfid in fid(), rename in proptest::option::of((fid(), fid(), name())),
        jobid in proptest::option::of(text(31)),
        extra_high in proptest::option::of(any::<u64>().prop_map(|v| v & !0x1F)),
        uid_gid in proptest::option::of(any::<(u64, u64)>()), nid in proptest::option::of(nid()),
        open_flags in proptest::option::of(0u32..0x1000), xattr in proptest::option::of(text(255)),
        name in name(),
    ) -> ChangelogRecord {
        let rtype = RecordType::from_raw(raw_type);
        let rename = rename.map(|(sfid, spfid, old)| RenameExt {
            sfid,
            spfid,
            old_name: if rtype.is_rename_like() { old } else { Vec::new() },
        });
        ChangelogRecord {
            index, prev, rtype, flags: low, time_sec, time_nsec, tfid, pfid, rename, jobid,
            extra_flags: extra_high, uid_gid, nid, open_flags, xattr, name,
        }
    }
}

prop_compose! {
    fn action_list()(
        archive_id in any::<u32>(), flags in any::<u64>(), compound_id in any::<u64>(),
        fsname in text(16),
        items in vec((any::<u32>(), fid(), fid(), any::<(u64, u64)>(), any::<u64>(), any::<u64>(),
                      vec(any::<u8>(), 0..40)), 0..6),
    ) -> ActionList {
        ActionList {
            version: 1, archive_id, flags, compound_id, fsname,
            items: items.into_iter().map(|(a, fid, dfid, (o, l), cookie, gid, data)| ActionItem {
                action: CopytoolAction::from_raw(a), fid, dfid, extent: Extent::new(o, l),
                cookie, gid, data,
            }).collect(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoders_survive_arbitrary_bytes(b in vec(any::<u8>(), 0..1200)) {
        if let Ok((_, len)) = decode_changelog(&b) {
            prop_assert!(len <= b.len());
            prop_assert_eq!(changelog_layout(&b).unwrap().total_len(), len);
        }
        let _ = decode_hal(&b);
        if decode_hur(&b).is_ok() {
            prop_assert!(hur_len(&b).unwrap() <= b.len());
        }
        let _ = decode_kuc_header(&b);
    }

    #[test]
    fn decoders_survive_corrupted_golden_bytes(
        which in any::<prop::sample::Index>(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        for (file, decode) in [
            ("changelog.json", (|b: &[u8]| decode_changelog(b).is_ok()) as fn(&[u8]) -> bool),
            ("hal.json", |b: &[u8]| decode_hal(b).is_ok()),
            ("hur.json", |b: &[u8]| decode_hur(b).is_ok()),
        ] {
            let all = golden(file);
            let mut b = all[which.index(all.len())].clone();
            for (at, val) in &flips {
                let i = at.index(b.len());
                b[i] ^= val;
            }
            let _ = decode(&b);
            let len = cut.index(b.len());
            let _ = decode(&b[..len]);
        }
    }

    #[test]
    fn truncated_valid_records_are_errors(rec in record(), cut in any::<prop::sample::Index>()) {
        let bytes = encode_changelog(&rec).unwrap();
        let len = cut.index(bytes.len());
        prop_assert!(decode_changelog(&bytes[..len]).is_err());
    }

    #[test]
    fn changelog_round_trips(rec in record()) {
        let bytes = encode_changelog(&rec).unwrap();
        let (back, len) = decode_changelog(&bytes).unwrap();
        prop_assert_eq!(len, bytes.len());
        // The encoder derives the high cr_flags bits and the CLFE_* bits from the extensions.
        prop_assert_eq!(back.flags & 0x0FFF, rec.flags);
        prop_assert!(back.flags & 0x1000 != 0);
        let mut want = rec.clone();
        want.flags = back.flags;
        if let Some(extra) = back.extra_flags {
            prop_assert_eq!(extra & !0x1F, rec.extra_flags.unwrap_or(0));
            want.extra_flags = Some(extra);
        }
        prop_assert_eq!(back, want);
    }

    #[test]
    fn records_concatenate_without_padding(a in record(), b in record()) {
        let mut stream = encode_changelog(&a).unwrap();
        let first = stream.len();
        stream.extend(encode_changelog(&b).unwrap());
        let (ra, la) = decode_changelog(&stream).unwrap();
        prop_assert_eq!(la, first);
        let (rb, lb) = decode_changelog(&stream[la..]).unwrap();
        prop_assert_eq!(la + lb, stream.len());
        prop_assert_eq!((ra.index, rb.index), (a.index, b.index));
    }

    #[test]
    fn hal_round_trips(hal in action_list(), cut in any::<prop::sample::Index>()) {
        let bytes = encode_hal(&hal).unwrap();
        prop_assert_eq!(bytes.len() % 8, 0);
        prop_assert_eq!(&decode_hal(&bytes).unwrap(), &hal);
        let len = cut.index(bytes.len());
        if let Ok(short) = decode_hal(&bytes[..len]) {
            // Only the padding after the last item may be cut.
            prop_assert_eq!(short, hal);
        }
    }

    #[test]
    fn hur_round_trips_and_splits(
        fids in vec(fid(), 0..200), data in vec(any::<u8>(), 0..200),
        action in 0u32..16, archive_id in any::<u32>(), flags in any::<u64>(),
    ) {
        let action = UserAction::from_raw(action);
        let reqs = split_requests(action, archive_id, flags, &fids, &data).unwrap();
        let mut back = Vec::new();
        for r in &reqs {
            prop_assert!(!r.items.is_empty());
            let bytes = encode_hur(r).unwrap();
            prop_assert!(bytes.len() <= HUR_MAX_LEN);
            let d: UserRequest = decode_hur(&bytes).unwrap();
            prop_assert_eq!(&d, r);
            back.extend(d.items.iter().map(|i| i.0));
        }
        prop_assert_eq!(back, fids);
    }
}
