//! Decodes every golden vector of testdata/abi-vectors (bytes produced through the real 2.16
//! and 2.15 header helpers) and compares every field of its `expect`; re-encodes the hal, hur
//! and canonical 2.16 changelog vectors byte for byte.

use lustre::wire::{
    changelog_layout, decode_changelog, decode_hal, decode_hur, encode_changelog, encode_hal,
    encode_hur, hal_first_item_offset, hur_len, ChangelogLayout, HAI_FIXED_LEN,
};
use lustre::{ChangelogRecord, Fid, Nid};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn vectors(file: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/abi-vectors")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let Value::Array(list) = serde_json::from_str(&text).unwrap() else {
        panic!("{file}: not a list");
    };
    assert!(!list.is_empty());
    list
}

fn bytes_of(v: &Value) -> Vec<u8> {
    hex::decode(v["hex"].as_str().unwrap()).unwrap()
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

fn fid_of(v: &Value) -> Fid {
    v.as_str().unwrap().parse().unwrap()
}

/// Tracks which `expect` keys a test compared, so none is silently skipped.
struct Expect<'a> {
    name: String,
    map: &'a Map<String, Value>,
    seen: BTreeSet<&'static str>,
}

impl<'a> Expect<'a> {
    fn new(v: &'a Value) -> Self {
        Expect {
            name: v["name"].as_str().unwrap().to_string(),
            map: v["expect"].as_object().unwrap(),
            seen: BTreeSet::new(),
        }
    }
    fn get(&mut self, key: &'static str) -> &'a Value {
        self.seen.insert(key);
        self.map
            .get(key)
            .unwrap_or_else(|| panic!("{}: no key {key}", self.name))
    }
    fn opt(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.insert(key);
        self.map.get(key).filter(|v| !v.is_null())
    }
    fn all_seen(&self) {
        for key in self.map.keys() {
            assert!(
                self.seen.contains(key.as_str()),
                "{}: key {key} not compared",
                self.name
            );
        }
    }
}

fn ext_offset(layout: &ChangelogLayout, key: &str) -> Option<usize> {
    match key {
        "rename" => layout.rename,
        "jobid" => layout.jobid,
        "extra_flags" => layout.extra_flags,
        "uidgid" => layout.uidgid,
        "nid" => layout.nid,
        "openmode" => layout.openmode,
        "xattr" => layout.xattr,
        "name" => Some(layout.name),
        other => panic!("unknown offset key {other}"),
    }
}

fn in_ranges(ranges: &[(usize, usize)], off: Option<usize>) -> bool {
    off.is_some_and(|o| ranges.iter().any(|&(a, b)| o >= a && o < b))
}

fn check_changelog(v: &Value, bytes: &[u8], rec: &ChangelogRecord, len: usize) {
    let mut e = Expect::new(v);
    let name = e.name.clone();
    let layout = changelog_layout(bytes).unwrap();
    let ranges: Vec<(usize, usize)> = v
        .get("undefined_byte_ranges")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .map(|r| (u64_of(&r[0]) as usize, u64_of(&r[1]) as usize))
                .collect()
        })
        .unwrap_or_default();
    let undefined = |key: &str| in_ranges(&ranges, ext_offset(&layout, key));

    // `reader` says how the bytes were produced (library version and requested flags); the
    // bytes themselves carry everything decoded below. Check it names the vector's version.
    assert_eq!(e.get("reader")["library"], v["lustre"], "{name}");

    assert_eq!(u64::from(rec.rtype.raw()), u64_of(e.get("type")), "{name}");
    assert_eq!(
        rec.rtype.short_name(),
        e.get("type_name").as_str(),
        "{name}"
    );
    assert_eq!(u64::from(rec.flags), u64_of(e.get("flags")), "{name}");
    assert_eq!(
        u64::from(rec.flags_low()),
        u64_of(e.get("flags_low")),
        "{name}"
    );
    assert_eq!(layout.namelen as u64, u64_of(e.get("namelen")), "{name}");
    assert_eq!(rec.index, u64_of(e.get("index")), "{name}");
    assert_eq!(rec.prev, u64_of(e.get("prev")), "{name}");
    assert_eq!(rec.time_raw(), u64_of(e.get("time")), "{name}");
    assert_eq!(rec.time_sec, u64_of(e.get("time_sec")), "{name}");
    assert_eq!(
        u64::from(rec.time_nsec),
        u64_of(e.get("time_nsec")),
        "{name}"
    );
    assert_eq!(
        rec.tfid.to_string(),
        e.get("tfid").as_str().unwrap(),
        "{name}"
    );
    assert_eq!(
        rec.pfid.to_string(),
        e.get("pfid").as_str().unwrap(),
        "{name}"
    );
    assert_eq!(
        rec.marker_flags().map(u64::from),
        e.opt("markerflags").map(u64_of),
        "{name}"
    );

    let sfid = e.opt("sfid").map(fid_of);
    let spfid = e.opt("spfid").map(fid_of);
    assert_eq!(rec.rename.as_ref().map(|r| r.sfid), sfid, "{name}");
    assert_eq!(rec.rename.as_ref().map(|r| r.spfid), spfid, "{name}");
    assert_eq!(
        rec.jobid.as_deref(),
        e.opt("jobid").map(|j| j.as_str().unwrap()),
        "{name}"
    );
    assert_eq!(rec.extra_flags, e.opt("extra_flags").map(u64_of), "{name}");

    let uid = e.opt("uid").map(u64_of);
    let gid = e.opt("gid").map(u64_of);
    let openflags = e.opt("openflags").map(u64_of);
    let openflags_raw = e.opt("openflags_raw").map(u64_of);
    let xattr = e.opt("xattr").map(|x| x.as_str().unwrap().to_string());
    let nid = e.opt("nid");
    if !undefined("uidgid") {
        assert_eq!(rec.uid_gid.map(|p| p.0), uid, "{name}");
        assert_eq!(rec.uid_gid.map(|p| p.1), gid, "{name}");
    }
    if !undefined("openmode") {
        assert_eq!(rec.open_flags.map(u64::from), openflags, "{name}");
        let raw = layout
            .openmode
            .map(|o| u64::from(u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap())));
        assert_eq!(raw, openflags_raw, "{name}");
    }
    if !undefined("xattr") {
        assert_eq!(rec.xattr, xattr, "{name}");
    }
    if !undefined("nid") {
        check_nid(&name, bytes, &layout, rec.nid, nid);
    }

    let name_bytes = hex::decode(e.get("name_hex").as_str().unwrap()).unwrap();
    let mut area = rec.name.clone();
    if let Some(r) = rec.renamed() {
        area.push(0);
        area.extend_from_slice(&r.old_name);
    }
    assert_eq!(area, name_bytes, "{name}");
    assert_eq!(
        rec.name,
        e.get("name").as_str().unwrap().as_bytes(),
        "{name}"
    );
    match (e.opt("new_name"), e.opt("old_name")) {
        (Some(new), Some(old)) => {
            assert_eq!(rec.name, new.as_str().unwrap().as_bytes(), "{name}");
            let renamed = rec.renamed().expect("rename record");
            assert_eq!(renamed.old_name, old.as_str().unwrap().as_bytes(), "{name}");
        }
        (None, None) => assert!(rec.renamed().is_none(), "{name}"),
        _ => panic!("{name}: new_name and old_name disagree"),
    }

    match rec.hsm() {
        Some(h) => {
            assert_eq!(
                u64::from(h.event.raw()),
                u64_of(e.get("hsm_event")),
                "{name}"
            );
            assert_eq!(
                h.event.name(),
                e.get("hsm_event_name").as_str().unwrap(),
                "{name}"
            );
            assert_eq!(u64::from(h.error), u64_of(e.get("hsm_error")), "{name}");
            assert_eq!(u64::from(h.flags), u64_of(e.get("hsm_flags")), "{name}");
            assert_eq!(Some(h.dirty), e.get("hsm_dirty").as_bool(), "{name}");
        }
        None => {
            for key in [
                "hsm_event",
                "hsm_event_name",
                "hsm_error",
                "hsm_flags",
                "hsm_dirty",
            ] {
                assert!(e.opt(key).is_none(), "{name}: {key} on a non-HSM record");
            }
        }
    }

    assert_eq!(
        layout.rec_size() as u64,
        u64_of(e.get("rec_size")),
        "{name}"
    );
    assert_eq!(
        layout.total_len() as u64,
        u64_of(e.get("total_len")),
        "{name}"
    );
    assert_eq!(len, bytes.len(), "{name}");
    assert_eq!(len, layout.total_len(), "{name}");
    let offsets = e.get("offsets").as_object().unwrap();
    for key in [
        "rename",
        "jobid",
        "extra_flags",
        "uidgid",
        "nid",
        "openmode",
        "xattr",
        "name",
    ] {
        assert_eq!(
            ext_offset(&layout, key).map(|o| o as u64),
            offsets.get(key).map(u64_of),
            "{name}: offset of {key}"
        );
    }
    for key in offsets.keys() {
        ext_offset(&layout, key); // panics on an offset key we do not know
    }
    e.all_seen();
}

fn check_nid(
    name: &str,
    bytes: &[u8],
    layout: &ChangelogLayout,
    got: Option<Nid>,
    want: Option<&Value>,
) {
    let Some(want) = want else {
        assert_eq!(got, None, "{name}");
        assert_eq!(layout.nid, None, "{name}");
        return;
    };
    let got = got.unwrap_or_else(|| panic!("{name}: NID missing"));
    let off = layout.nid.unwrap();
    assert_eq!(
        hex::encode(&bytes[off..off + 24]),
        want["bytes"].as_str().unwrap(),
        "{name}"
    );
    match want["encoding"].as_str().unwrap() {
        "nid4" => {
            let raw = u64_of(&want["raw"]);
            assert_eq!(got, Nid::Nid4(raw), "{name}");
            assert_eq!(u64::from(got.net()), u64_of(&want["net"]), "{name}");
            assert_eq!(raw & 0xFFFF_FFFF, u64_of(&want["addr"]), "{name}");
        }
        "nid_be" => {
            let addr: Vec<u64> = want["addr"]
                .as_array()
                .unwrap()
                .iter()
                .map(u64_of)
                .collect();
            let Nid::Large {
                size,
                lnd,
                num,
                addr: got_addr,
            } = got
            else {
                panic!("{name}: expected a large NID, got {got:?}");
            };
            assert_eq!(u64::from(size), u64_of(&want["size"]), "{name}");
            assert_eq!(u64::from(lnd), u64_of(&want["type"]), "{name}");
            assert_eq!(u64::from(num), u64_of(&want["num"]), "{name}");
            assert_eq!(got_addr.map(u64::from).to_vec(), addr, "{name}");
        }
        other => panic!("{name}: unknown NID encoding {other}"),
    }
    // `text` is the libcfs formatting.
    assert_eq!(got.to_string(), want["text"].as_str().unwrap(), "{name}");
}

#[test]
fn every_changelog_vector_decodes_to_its_expect() {
    let all = vectors("changelog.json");
    assert_eq!(all.len(), 66);
    let mut versions = BTreeSet::new();
    for v in &all {
        let bytes = bytes_of(v);
        let (rec, len) = decode_changelog(&bytes).unwrap();
        check_changelog(v, &bytes, &rec, len);
        versions.insert(v["lustre"].as_str().unwrap().to_string());
    }
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), ["2.15", "2.16"]);
}

#[test]
fn undefined_bytes_do_not_change_the_defined_fields() {
    let mut checked = 0;
    for v in vectors("changelog.json") {
        let Some(ranges) = v.get("undefined_byte_ranges").and_then(Value::as_array) else {
            continue;
        };
        let mut bytes = bytes_of(&v);
        for r in ranges {
            let (a, b) = (u64_of(&r[0]) as usize, u64_of(&r[1]) as usize);
            bytes[a..b]
                .iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = 0xA5 ^ i as u8);
        }
        let (rec, len) = decode_changelog(&bytes).unwrap();
        check_changelog(&v, &bytes, &rec, len);
        checked += 1;
    }
    assert_eq!(checked, 1);
}

/// The 2.16 encoder rebuilds what the 2.16 library returns. The synthetic vector is not
/// canonical: its openmode word carries 0xE000 where an MDT writes the record's own high flag
/// bits (0xF000 there).
#[test]
fn canonical_216_changelog_vectors_re_encode_byte_for_byte() {
    let mut exact = 0;
    for v in vectors("changelog.json") {
        let name = v["name"].as_str().unwrap();
        let bytes = bytes_of(&v);
        let (rec, _) = decode_changelog(&bytes).unwrap();
        let again = encode_changelog(&rec).unwrap();
        // Whatever the shape, the encoding means the same record.
        let (back, _) = decode_changelog(&again).unwrap();
        let mut want = rec.clone();
        want.flags |= lustre_sys::CLF_VERSION as u16;
        assert_eq!(back, want, "{name}");
        if v["lustre"] == "2.16" && name != "v216_combo_RJX_all_synthetic" {
            assert_eq!(hex::encode(&again), hex::encode(&bytes), "{name}");
            exact += 1;
        }
    }
    assert_eq!(exact, 37);
}

#[test]
fn every_hal_vector_decodes_and_re_encodes() {
    for v in vectors("hal.json") {
        let bytes = bytes_of(&v);
        let hal = decode_hal(&bytes).unwrap();
        let mut e = Expect::new(&v);
        let name = e.name.clone();
        assert_eq!(u64::from(hal.version), u64_of(e.get("version")), "{name}");
        assert_eq!(hal.fsname, e.get("fsname").as_str().unwrap(), "{name}");
        assert_eq!(
            u64::from(hal.archive_id),
            u64_of(e.get("archive_id")),
            "{name}"
        );
        assert_eq!(hal.flags, u64_of(e.get("flags")), "{name}");
        assert_eq!(hal.compound_id, u64_of(e.get("compound_id")), "{name}");
        assert_eq!(hal.items.len() as u64, u64_of(e.get("count")), "{name}");
        assert_eq!(bytes.len() as u64, u64_of(e.get("hal_size")), "{name}");
        let items = e.get("items").as_array().unwrap();
        assert_eq!(items.len(), hal.items.len(), "{name}");
        let mut offset = hal_first_item_offset(hal.fsname.len()).unwrap();
        for (got, want) in hal.items.iter().zip(items) {
            let hai_len = HAI_FIXED_LEN + got.data.len();
            assert_eq!(offset as u64, u64_of(&want["offset"]), "{name}");
            assert_eq!(hai_len as u64, u64_of(&want["hai_len"]), "{name}");
            assert_eq!(
                u64::from(got.action.raw()),
                u64_of(&want["action"]),
                "{name}"
            );
            assert_eq!(
                got.action.name(),
                want["action_name"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(got.fid, fid_of(&want["fid"]), "{name}");
            assert_eq!(got.dfid, fid_of(&want["dfid"]), "{name}");
            assert_eq!(
                got.extent.offset,
                u64_of(&want["extent"]["offset"]),
                "{name}"
            );
            assert_eq!(
                got.extent.length,
                u64_of(&want["extent"]["length"]),
                "{name}"
            );
            assert_eq!(got.cookie, u64_of(&want["cookie"]), "{name}");
            assert_eq!(got.gid, u64_of(&want["gid"]), "{name}");
            assert_eq!(
                hex::encode(&got.data),
                want["data"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(want.as_object().unwrap().len(), 10, "{name}: item keys");
            offset += (hai_len + 7) & !7;
        }
        e.all_seen();
        assert_eq!(encode_hal(&hal).unwrap(), bytes, "{name}");
    }
}

#[test]
fn every_hur_vector_decodes_and_re_encodes() {
    for v in vectors("hur.json") {
        let bytes = bytes_of(&v);
        let hur = decode_hur(&bytes).unwrap();
        let mut e = Expect::new(&v);
        let name = e.name.clone();
        assert_eq!(
            u64::from(hur.action.raw()),
            u64_of(e.get("action")),
            "{name}"
        );
        assert_eq!(
            hur.action.name(),
            e.get("action_name").as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            u64::from(hur.archive_id),
            u64_of(e.get("archive_id")),
            "{name}"
        );
        assert_eq!(hur.flags, u64_of(e.get("flags")), "{name}");
        assert_eq!(hur.items.len() as u64, u64_of(e.get("itemcount")), "{name}");
        assert_eq!(hur.data.len() as u64, u64_of(e.get("data_len")), "{name}");
        assert_eq!(
            (24 + 32 * hur.items.len()) as u64,
            u64_of(e.get("data_offset")),
            "{name}"
        );
        assert_eq!(
            hex::encode(&hur.data),
            e.get("data").as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            hur_len(&bytes).unwrap() as u64,
            u64_of(e.get("total_len")),
            "{name}"
        );
        assert_eq!(bytes.len() as u64, u64_of(e.get("total_len")), "{name}");
        let items = e.get("items").as_array().unwrap();
        assert_eq!(items.len(), hur.items.len(), "{name}");
        for (i, ((fid, extent), want)) in hur.items.iter().zip(items).enumerate() {
            assert_eq!((24 + 32 * i) as u64, u64_of(&want["offset"]), "{name}");
            assert_eq!(*fid, fid_of(&want["fid"]), "{name}");
            assert_eq!(extent.offset, u64_of(&want["extent"]["offset"]), "{name}");
            assert_eq!(extent.length, u64_of(&want["extent"]["length"]), "{name}");
            assert_eq!(want.as_object().unwrap().len(), 3, "{name}: item keys");
        }
        e.all_seen();
        assert_eq!(encode_hur(&hur).unwrap(), bytes, "{name}");
    }
}

#[test]
fn every_fid_vector_prints_and_parses() {
    for v in vectors("fid.json") {
        let bytes: [u8; 16] = bytes_of(&v).try_into().unwrap();
        let fid = Fid::from_bytes(&bytes);
        let mut e = Expect::new(&v);
        let name = e.name.clone();
        assert_eq!(fid.seq, u64_of(e.get("seq")), "{name}");
        assert_eq!(u64::from(fid.oid), u64_of(e.get("oid")), "{name}");
        assert_eq!(u64::from(fid.ver), u64_of(e.get("ver")), "{name}");
        let dfid = e.get("dfid").as_str().unwrap();
        let nobrace = e.get("dfid_nobrace").as_str().unwrap();
        assert_eq!(fid.to_string(), dfid, "{name}");
        assert_eq!(fid.nobrace().to_string(), nobrace, "{name}");
        assert_eq!(Some(fid.is_zero()), e.get("is_zero").as_bool(), "{name}");
        assert_eq!(dfid.parse::<Fid>(), Ok(fid), "{name}");
        assert_eq!(nobrace.parse::<Fid>(), Ok(fid), "{name}");
        assert_eq!(fid.to_bytes(), bytes, "{name}");
        e.all_seen();
    }
}
