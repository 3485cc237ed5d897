//! A blob's metadata as an import may apply it. Anyone who can write to the container chooses
//! these values, so nothing is taken on trust:
//!
//! * `owner` / `group` must be decimal ids in `0..=4294967294`; anything else (`alice`, `-1`,
//!   `4294967295`, the "nobody"/"no change" sentinel of `chown(2)`) **refuses the blob** (counted in
//!   `totalErrors`, logged). An import never guesses an identity: mapping `alice` to root, to the
//!   importing process or to the mount root's owner would hand her files to someone else, and a
//!   refused blob loses nothing (it stays in the container; fix its metadata and import again).
//!   A blob without the key is owned by uid/gid 0, as Azure Managed Lustre imports it.
//! * `permissions` must be octal up to `7777`; anything else becomes the kind's default (`0644`
//!   for a file, `0755` for a directory), counted and logged. A missing value takes the same default
//!   (a folder marker without permissions is `0755`, never a mode without execute bits).
//! * setuid, setgid and sticky bits are dropped (counted and logged) unless the policy sets
//!   `import.keep_special_bits = true`.
//! * a directory always keeps its owner's read and execute bits (added, counted and logged).
//! * `modtime` that does not parse (or a `lustre_mtime_ns` that is not an integer) takes the blob's
//!   Last-Modified, counted and logged; a blob without either also takes Last-Modified.
//! * `hdi_isfolder` other than `true`/`false`, or `lustre_type` other than `file`/`dir`/`symlink`,
//!   is counted and logged and does not decide the kind (the other key does, else a file); so
//!   `hdi_isfolder=true` with bad permissions is still a directory.
//! * `lustre_stripe_count`, `lustre_stripe_size` and `lustre_pool` (the file's layout when it was
//!   exported) must be values Lustre accepts, given together; anything else **refuses the blob**:
//!   a layout is not something to guess (a stub created with a made-up striping would keep it
//!   through every restore).

use crate::model::FileKind;
use crate::model::FileStat;
use blob::metadata as m;

/// Default mode of an imported file whose blob carries no usable `permissions`.
pub const FILE_DEFAULT_MODE: u32 = 0o644;
/// Default mode of an imported directory whose blob carries no usable `permissions`.
pub const DIR_DEFAULT_MODE: u32 = 0o755;
/// Bits a directory keeps whatever its blob says: its owner's read and execute.
pub const DIR_OWNER_BITS: u32 = 0o500;
const SPECIAL_BITS: u32 = 0o7000;

/// What an import applies, and every value it did not take as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The attributes decoded (or defaulted, see `coerced`); the size is the listing's.
    pub meta: FileStat,
    /// The layout the stub is created with (`None`: the directory's default).
    pub layout: Option<lustre::Striping>,
    /// One line per coerced value (`key "value": what was applied instead`).
    pub coerced: Vec<String>,
}

/// Decodes a listed blob's metadata `pairs` (keys in any case) for an import. `last_modified_sec`
/// is the blob's Last-Modified. `Err` names the value that refuses the blob.
pub fn decode(
    pairs: &[(String, String)],
    size: u64,
    last_modified_sec: i64,
    keep_special_bits: bool,
) -> Result<Decoded, String> {
    let mut coerced = Vec::new();
    let uid = owner_id(pairs, m::KEY_OWNER, "uid")?;
    let gid = owner_id(pairs, m::KEY_GROUP, "gid")?;
    let layout = m::layout_from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| format!("{e}: blob refused (fix the blob's metadata and import again)"))?;
    let kind = kind_of(pairs, &mut coerced);
    let mode = mode_of(pairs, kind, keep_special_bits, &mut coerced);
    let (mtime_sec, mtime_nsec) = mtime_of(pairs, last_modified_sec, &mut coerced);
    Ok(Decoded {
        meta: FileStat {
            kind,
            size,
            mode,
            uid,
            gid,
            mtime_sec,
            mtime_nsec,
        },
        layout,
        coerced,
    })
}

/// The value of `key`, compared without case (the last one when repeated).
fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// An owner or group id (0 when absent); anything but a decimal id refuses the blob: no
/// owner is guessed.
fn owner_id(pairs: &[(String, String)], key: &str, what: &str) -> Result<u32, String> {
    match get(pairs, key) {
        None => Ok(0),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if n != u32::MAX => Ok(n),
            _ => Err(format!(
                "{key} {v:?} is not a decimal {what} in 0..=4294967294: blob refused \
                 (no owner is guessed; fix the blob's metadata and import again)"
            )),
        },
    }
}

/// The kind: lustre_type first (ours), then hdi_isfolder (Azure's), else a file.
fn kind_of(pairs: &[(String, String)], coerced: &mut Vec<String>) -> FileKind {
    let typed = match get(pairs, m::KEY_TYPE).map(str::trim) {
        None => None,
        Some("file") => Some(FileKind::Regular),
        Some("dir") => Some(FileKind::Directory),
        Some("symlink") => Some(FileKind::Symlink),
        Some(v) => {
            coerced.push(format!(
                "{} {v:?} is not file, dir or symlink: ignored",
                m::KEY_TYPE
            ));
            None
        }
    };
    let folder = match get(pairs, m::KEY_IS_FOLDER).map(str::trim) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            coerced.push(format!(
                "{} {v:?} is not true or false: taken as false",
                m::KEY_IS_FOLDER
            ));
            false
        }
    };
    typed.unwrap_or(if folder {
        FileKind::Directory
    } else {
        FileKind::Regular
    })
}

/// The permission bits: a default for a bad value, setuid/setgid/sticky dropped unless kept,
/// and a directory always enterable by its owner.
fn mode_of(
    pairs: &[(String, String)],
    kind: FileKind,
    keep_special_bits: bool,
    coerced: &mut Vec<String>,
) -> u32 {
    let default_mode = if kind == FileKind::Directory {
        DIR_DEFAULT_MODE
    } else {
        FILE_DEFAULT_MODE
    };
    let mut mode = match get(pairs, m::KEY_PERMISSIONS) {
        None => default_mode,
        Some(v) => match u32::from_str_radix(v.trim(), 8) {
            Ok(p) if p <= 0o7777 => p,
            _ => {
                coerced.push(format!(
                    "{} {v:?} is not an octal mode up to 7777: {default_mode:04o} applied",
                    m::KEY_PERMISSIONS
                ));
                default_mode
            }
        },
    };
    if mode & SPECIAL_BITS != 0 && !keep_special_bits {
        let kept = mode & !SPECIAL_BITS;
        coerced.push(format!(
            "{} {mode:04o}: setuid/setgid/sticky bits dropped, {kept:04o} applied \
             (import.keep_special_bits = false)",
            m::KEY_PERMISSIONS
        ));
        mode = kept;
    }
    if kind == FileKind::Directory && mode & DIR_OWNER_BITS != DIR_OWNER_BITS {
        let fixed = mode | DIR_OWNER_BITS;
        coerced.push(format!(
            "{} {mode:04o} of a directory: owner read and execute added, {fixed:04o} applied",
            m::KEY_PERMISSIONS
        ));
        mode = fixed;
    }
    mode
}

/// mtime: lustre_mtime_ns (ours, exact), then modtime (Azure's), then Last-Modified.
fn mtime_of(
    pairs: &[(String, String)],
    last_modified_sec: i64,
    coerced: &mut Vec<String>,
) -> (i64, u32) {
    if let Some(v) = get(pairs, m::KEY_MTIME_NS) {
        match v.trim().parse::<i128>().ok().and_then(split_ns) {
            Some(t) => return t,
            None => coerced.push(format!(
                "{} {v:?} is not integer nanoseconds: ignored",
                m::KEY_MTIME_NS
            )),
        }
    }
    if let Some(v) = get(pairs, m::KEY_MODTIME) {
        match m::parse_modtime(v).map(epoch_secs) {
            Some(t) => return (t, 0),
            None => coerced.push(format!(
                "{} {v:?} is not YYYY-MM-DD HH:MM:SS +0000: the blob's Last-Modified {} applied",
                m::KEY_MODTIME,
                m::format_modtime(from_epoch_secs(last_modified_sec))
            )),
        }
    }
    (last_modified_sec, 0)
}

fn epoch_secs(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn from_epoch_secs(s: i64) -> std::time::SystemTime {
    let d = std::time::Duration::from_secs(s.unsigned_abs());
    if s >= 0 {
        std::time::UNIX_EPOCH + d
    } else {
        std::time::UNIX_EPOCH - d
    }
}

fn split_ns(ns: i128) -> Option<(i64, u32)> {
    let sec = i64::try_from(ns.div_euclid(1_000_000_000)).ok()?;
    Some((sec, ns.rem_euclid(1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LM: i64 = 1_750_000_000;

    fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ok(kv: &[(&str, &str)]) -> Decoded {
        decode(&pairs(kv), 0, LM, false).unwrap_or_else(|e| panic!("{kv:?}: {e}"))
    }

    #[test]
    fn our_own_metadata_is_applied_as_written() {
        let written = blob::Metadata {
            owner: 1000,
            group: 100,
            permissions: 0o640,
            ..blob::Metadata::default()
        }
        .with_mtime(1_700_000_000, 5)
        .to_pairs();
        let d = decode(&written, 0, LM, false).unwrap();
        assert!(d.coerced.is_empty(), "{:?}", d.coerced);
        assert_eq!(
            (d.meta.kind, d.meta.mode, d.meta.uid, d.meta.gid),
            (FileKind::Regular, 0o640, 1000, 100)
        );
        assert_eq!((d.meta.mtime_sec, d.meta.mtime_nsec), (1_700_000_000, 5));
    }

    #[test]
    fn setuid_root_is_never_applied_by_default() {
        let d = ok(&[("permissions", "4755"), ("owner", "0")]);
        assert_eq!((d.meta.mode, d.meta.uid), (0o755, 0));
        assert_eq!(d.coerced.len(), 1, "{:?}", d.coerced);
        assert!(d.coerced[0].contains("4755"), "{:?}", d.coerced);
        let d = ok(&[("permissions", "7777")]);
        assert_eq!(d.meta.mode, 0o777);
        // Opted in: kept, nothing coerced.
        let d = decode(&pairs(&[("permissions", "7777")]), 0, LM, true).unwrap();
        assert_eq!((d.meta.mode, d.coerced.len()), (0o7777, 0));
    }

    #[test]
    fn owners_that_are_not_ids_refuse_the_blob() {
        for (k, v) in [
            ("owner", "alice"),
            ("owner", "-1"),
            ("owner", "4294967295"),
            ("owner", "4294967296"),
            ("owner", ""),
            ("group", "staff"),
            ("Group", "-1"),
        ] {
            let e = decode(&pairs(&[(k, v)]), 0, LM, false).unwrap_err();
            assert!(e.contains(&format!("{v:?}")), "{e}");
            assert!(e.contains("refused"), "{e}");
        }
        assert_eq!(ok(&[("owner", " 4294967294 ")]).meta.uid, 4_294_967_294);
    }

    #[test]
    fn bad_permissions_take_the_kinds_default_and_are_counted() {
        for bad in ["abc", "999", "17777", "", "-1", "0x1ff"] {
            let d = ok(&[("permissions", bad)]);
            assert_eq!(d.meta.mode, FILE_DEFAULT_MODE, "{bad}");
            assert_eq!(d.coerced.len(), 1, "{bad}: {:?}", d.coerced);
            let d = ok(&[("hdi_isfolder", "true"), ("permissions", bad)]);
            assert_eq!(
                (d.meta.kind, d.meta.mode),
                (FileKind::Directory, DIR_DEFAULT_MODE),
                "{bad}"
            );
            assert_eq!(d.coerced.len(), 1, "{bad}: {:?}", d.coerced);
        }
    }

    #[test]
    fn directories_keep_their_owners_read_and_execute() {
        let d = ok(&[("hdi_isfolder", "true")]);
        assert_eq!((d.meta.kind, d.meta.mode), (FileKind::Directory, 0o755));
        assert!(d.coerced.is_empty());
        let d = ok(&[("hdi_isfolder", "true"), ("permissions", "0644")]);
        assert_eq!(d.meta.mode, 0o744);
        assert_eq!(d.coerced.len(), 1);
        let d = ok(&[("lustre_type", "dir"), ("permissions", "0000")]);
        assert_eq!(d.meta.mode, 0o500);
        // A file may be unreadable to its owner if the blob says so.
        assert_eq!(ok(&[("permissions", "0000")]).meta.mode, 0);
    }

    #[test]
    fn modtime_garbage_takes_last_modified() {
        let d = ok(&[("modtime", "garbage")]);
        assert_eq!((d.meta.mtime_sec, d.meta.mtime_nsec), (LM, 0));
        assert_eq!(d.coerced.len(), 1);
        assert!(
            d.coerced[0].contains("Last-Modified 2025-06-15"),
            "{:?}",
            d.coerced
        );
        // Missing: Last-Modified too, not counted.
        let d = ok(&[]);
        assert_eq!((d.meta.mtime_sec, d.coerced.len()), (LM, 0));
        // A bad lustre_mtime_ns falls back to a good modtime.
        let d = ok(&[
            ("lustre_mtime_ns", "soon"),
            ("modtime", "2024-02-29 01:02:03 +0000"),
        ]);
        assert_eq!(d.meta.mtime_sec, 1_709_168_523);
        assert_eq!(d.coerced.len(), 1);
        // Out of i64 seconds: refused as a value, not a panic.
        let d = ok(&[("lustre_mtime_ns", &i128::MAX.to_string())]);
        assert_eq!((d.meta.mtime_sec, d.coerced.len()), (LM, 1));
    }

    #[test]
    fn unknown_kinds_are_counted_and_do_not_decide() {
        let d = ok(&[("lustre_type", "fifo"), ("hdi_isfolder", "true")]);
        assert_eq!(d.meta.kind, FileKind::Directory);
        assert_eq!(d.coerced.len(), 1);
        let d = ok(&[("hdi_isfolder", "yes")]);
        assert_eq!(d.meta.kind, FileKind::Regular);
        assert_eq!(d.coerced.len(), 1);
        assert_eq!(
            ok(&[("HDI_ISFOLDER", "True")]).meta.kind,
            FileKind::Directory
        );
    }
}
