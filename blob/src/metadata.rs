//! POSIX metadata as blob metadata, in the keys Azure Managed Lustre, azcopy
//! (`--posix-properties-style amlfs`) and other tools read (DESIGN §4), plus our `lustre_*` extras.
//!
//! | key | value |
//! |---|---|
//! | `owner` | uid, decimal |
//! | `group` | gid, decimal |
//! | `permissions` | `%04o` of `mode & 07777` |
//! | `modtime` | `YYYY-MM-DD HH:MM:SS +0000` (one-second resolution, as Azure writes it) |
//! | `hdi_isfolder` | `true` on directory blobs only |
//! | `lustre_type` | `file`, `dir` or `symlink` |
//! | `lustre_fid` | the FID as Lustre prints it, e.g. `[0x200000401:0x1:0x0]` |
//! | `lustre_mtime_ns` | mtime in nanoseconds since the epoch (may be negative) |
//! | `lustre_data_version` | the file's data version when its content was read |
//! | `lustre_checksum` | content checksum, `crc32:XXXXXXXX` (see [`crate::checksum`]) |
//! | `lustre_stripe_count` | the file's stripe count when exported, decimal (with `lustre_stripe_size`) |
//! | `lustre_stripe_size` | its stripe size in bytes, decimal (a multiple of 65536 below 4 GiB) |
//! | `lustre_pool` | its OST pool, when it had one |

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Metadata key: owner uid (Azure's name).
pub const KEY_OWNER: &str = "owner";
/// Metadata key: group gid (Azure's name).
pub const KEY_GROUP: &str = "group";
/// Metadata key: permission bits, octal (Azure's name).
pub const KEY_PERMISSIONS: &str = "permissions";
/// Metadata key: modification time (Azure's name).
pub const KEY_MODTIME: &str = "modtime";
/// Metadata key: `true` on a directory blob (Azure's name).
pub const KEY_IS_FOLDER: &str = "hdi_isfolder";
/// Metadata key: `file`, `dir` or `symlink` (ours).
pub const KEY_TYPE: &str = "lustre_type";
/// Metadata key: the file's FID (ours).
pub const KEY_FID: &str = "lustre_fid";
/// Metadata key: mtime in nanoseconds (ours).
pub const KEY_MTIME_NS: &str = "lustre_mtime_ns";
/// Metadata key: the data version exported (ours).
pub const KEY_DATA_VERSION: &str = "lustre_data_version";
/// Metadata key: the content checksum (ours).
pub const KEY_CHECKSUM: &str = "lustre_checksum";
/// Blob metadata key: the file's stripe count when it was exported.
pub const KEY_STRIPE_COUNT: &str = "lustre_stripe_count";
/// Blob metadata key: the file's stripe size in bytes.
pub const KEY_STRIPE_SIZE: &str = "lustre_stripe_size";
/// Blob metadata key: the file's OST pool (absent when none).
pub const KEY_POOL: &str = "lustre_pool";

const MODTIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S %z";

/// What a blob stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    #[default]
    /// A regular file.
    File,
    /// A directory (a zero-length blob).
    Dir,
    /// A symbolic link (the blob holds the target).
    Symlink,
}

impl FileKind {
    /// The `lustre_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
        }
    }
}

/// The metadata written on every blob we create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Owner uid.
    pub owner: u32,
    /// Group gid.
    pub group: u32,
    /// `mode & 0o7777` (permission, setuid/setgid and sticky bits).
    pub permissions: u32,
    /// Encoded with one-second resolution (Azure's `modtime`); the full value goes to `lustre_mtime_ns`
    /// when `mtime_ns` is set.
    pub modtime: SystemTime,
    /// What the blob stands for.
    pub kind: FileKind,
    /// The file's FID in DFID form.
    pub fid: Option<String>,
    /// mtime with nanoseconds, when known.
    pub mtime_ns: Option<i128>,
    /// The Lustre data version exported.
    pub data_version: Option<u64>,
    /// The checksum of the content, when known.
    pub checksum: Option<String>,
    /// The file's layout (stripe count, size, pool), restored with the file and applied by an
    /// import.
    pub layout: Option<lustre::Striping>,
    /// Keys we do not interpret (written by other tools), kept so a metadata update preserves them.
    pub extra: BTreeMap<String, String>,
}

impl Default for Metadata {
    fn default() -> Self {
        Metadata {
            owner: 0,
            group: 0,
            permissions: 0o644,
            modtime: UNIX_EPOCH,
            kind: FileKind::File,
            fid: None,
            mtime_ns: None,
            data_version: None,
            checksum: None,
            layout: None,
            extra: BTreeMap::new(),
        }
    }
}

/// A metadata value that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blob metadata key `{key}` has an invalid value {value:?}: expected {expected}")]
pub struct MetadataError {
    /// The metadata key.
    pub key: String,
    /// The value found.
    pub value: String,
    /// What was expected instead.
    pub expected: &'static str,
}

impl Metadata {
    /// Whether this is a directory blob (`hdi_isfolder=true`).
    pub fn is_folder(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// The Azure metadata pairs, in a stable order.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::with_capacity(10 + self.extra.len());
        for (k, v) in &self.extra {
            out.push((k.clone(), v.clone()));
        }
        let mut put = |k: &str, v: String| {
            out.retain(|(key, _)| key != k);
            out.push((k.to_string(), v));
        };
        put(KEY_OWNER, self.owner.to_string());
        put(KEY_GROUP, self.group.to_string());
        put(
            KEY_PERMISSIONS,
            format!("{:04o}", self.permissions & 0o7777),
        );
        put(KEY_MODTIME, format_modtime(self.modtime));
        if self.is_folder() {
            put(KEY_IS_FOLDER, "true".to_string());
        }
        put(KEY_TYPE, self.kind.as_str().to_string());
        if let Some(f) = &self.fid {
            put(KEY_FID, f.clone());
        }
        if let Some(ns) = self.mtime_ns {
            put(KEY_MTIME_NS, ns.to_string());
        }
        if let Some(dv) = self.data_version {
            put(KEY_DATA_VERSION, dv.to_string());
        }
        if let Some(c) = &self.checksum {
            put(KEY_CHECKSUM, c.clone());
        }
        if let Some(l) = &self.layout {
            put(KEY_STRIPE_COUNT, l.stripe_count().to_string());
            put(KEY_STRIPE_SIZE, l.stripe_size().to_string());
            if let Some(p) = l.pool() {
                put(KEY_POOL, p.to_string());
            }
        }
        out
    }

    /// Decodes blob metadata. Keys are matched case-insensitively (Azure does); missing keys take
    /// the defaults (uid 0, gid 0, 0644, the epoch, a file); malformed values are errors.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Metadata, MetadataError> {
        let mut m = Metadata::default();
        let mut is_folder = false;
        let mut kind = None;
        let mut layout = LayoutKeys::default();
        for (k, v) in pairs {
            let key = k.to_ascii_lowercase();
            let bad = |expected| MetadataError {
                key: key.clone(),
                value: v.to_string(),
                expected,
            };
            match key.as_str() {
                KEY_OWNER => m.owner = v.trim().parse().map_err(|_| bad("a decimal uid"))?,
                KEY_GROUP => m.group = v.trim().parse().map_err(|_| bad("a decimal gid"))?,
                KEY_PERMISSIONS => {
                    let p = u32::from_str_radix(v.trim(), 8).map_err(|_| bad("octal like 0644"))?;
                    if p > 0o7777 {
                        return Err(bad("octal at most 7777"));
                    }
                    m.permissions = p;
                }
                KEY_MODTIME => {
                    m.modtime = parse_modtime(v).ok_or_else(|| bad("YYYY-MM-DD HH:MM:SS +0000"))?
                }
                KEY_IS_FOLDER => is_folder = v.trim().eq_ignore_ascii_case("true"),
                KEY_TYPE => {
                    kind = Some(match v.trim() {
                        "file" => FileKind::File,
                        "dir" => FileKind::Dir,
                        "symlink" => FileKind::Symlink,
                        _ => return Err(bad("file, dir or symlink")),
                    })
                }
                KEY_FID => m.fid = Some(v.to_string()),
                KEY_MTIME_NS => {
                    m.mtime_ns = Some(v.trim().parse().map_err(|_| bad("integer nanoseconds"))?)
                }
                KEY_DATA_VERSION => {
                    m.data_version = Some(v.trim().parse().map_err(|_| bad("a decimal u64"))?)
                }
                KEY_CHECKSUM => m.checksum = Some(v.to_string()),
                KEY_STRIPE_COUNT => layout.count = Some(v.to_string()),
                KEY_STRIPE_SIZE => layout.size = Some(v.to_string()),
                KEY_POOL => layout.pool = Some(v.to_string()),
                _ => {
                    m.extra.insert(key, v.to_string());
                }
            }
        }
        m.layout = layout.decode()?;
        m.kind = match (kind, is_folder) {
            (Some(k), _) => k,
            (None, true) => FileKind::Dir,
            (None, false) => FileKind::File,
        };
        Ok(m)
    }

    /// Sets `modtime` and `mtime_ns` from seconds + nanoseconds since the epoch.
    pub fn with_mtime(mut self, secs: i64, nsecs: u32) -> Self {
        self.mtime_ns = Some(secs as i128 * 1_000_000_000 + nsecs as i128);
        self.modtime = if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs as u64, nsecs)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
                + Duration::from_nanos(nsecs as u64)
        };
        self
    }
}

/// The layout the `lustre_stripe_count` / `lustre_stripe_size` / `lustre_pool` keys of `pairs`
/// describe (keys in any case): `None` without them, an error naming the key for a value Lustre
/// would refuse or for an incomplete set.
pub fn layout_from_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Option<lustre::Striping>, MetadataError> {
    let mut keys = LayoutKeys::default();
    for (k, v) in pairs {
        match k.to_ascii_lowercase().as_str() {
            KEY_STRIPE_COUNT => keys.count = Some(v.to_string()),
            KEY_STRIPE_SIZE => keys.size = Some(v.to_string()),
            KEY_POOL => keys.pool = Some(v.to_string()),
            _ => {}
        }
    }
    keys.decode()
}

/// The three layout keys as found; they are checked together (a pool alone, or a count without
/// a size, is no layout Lustre can create).
#[derive(Default)]
struct LayoutKeys {
    count: Option<String>,
    size: Option<String>,
    pool: Option<String>,
}

impl LayoutKeys {
    fn decode(self) -> Result<Option<lustre::Striping>, MetadataError> {
        const BOTH: &str = "lustre_stripe_count and lustre_stripe_size given together";
        let bad = |key: &str, value: &Option<String>, expected| MetadataError {
            key: key.to_string(),
            value: value.clone().unwrap_or_default(),
            expected,
        };
        let (count, size) = match (&self.count, &self.size) {
            (None, None) if self.pool.is_none() => return Ok(None),
            (Some(c), Some(s)) => (c.trim(), s.trim()),
            (None, _) => return Err(bad(KEY_STRIPE_COUNT, &self.count, BOTH)),
            (Some(_), None) => return Err(bad(KEY_STRIPE_SIZE, &self.size, BOTH)),
        };
        const COUNT: &str = "a stripe count from 1 to 2000";
        const SIZE: &str = "a stripe size in bytes, a multiple of 65536 below 4 GiB";
        let count: u64 = count
            .parse()
            .map_err(|_| bad(KEY_STRIPE_COUNT, &self.count, COUNT))?;
        let size: u64 = size
            .parse()
            .map_err(|_| bad(KEY_STRIPE_SIZE, &self.size, SIZE))?;
        lustre::Striping::new(count, size, self.pool.as_deref())
            .map(Some)
            .map_err(|e| match e {
                lustre::StripingError::StripeCount(_) => bad(KEY_STRIPE_COUNT, &self.count, COUNT),
                lustre::StripingError::StripeSize(_) => bad(KEY_STRIPE_SIZE, &self.size, SIZE),
                lustre::StripingError::Pool(_) => bad(
                    KEY_POOL,
                    &self.pool,
                    "a pool name of 1 to 15 printable ASCII characters without '.', '/' or '\\'",
                ),
            })
    }
}

/// `modtime` as Azure writes it: `YYYY-MM-DD HH:MM:SS +0000`, truncated to the second.
pub fn format_modtime(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format(MODTIME_FORMAT).to_string()
}

/// Parses Azure's `modtime` (any UTC offset is accepted and applied).
pub fn parse_modtime(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_str(s.trim(), MODTIME_FORMAT)
        .ok()
        .map(|d| SystemTime::from(d.with_timezone(&chrono::Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        Metadata {
            owner: 1000,
            group: 100,
            permissions: 0o1755,
            kind: FileKind::File,
            fid: Some("[0x200000401:0x1:0x0]".into()),
            data_version: Some(42),
            checksum: Some("crc32:0badf00d".into()),
            layout: Some(lustre::Striping::new(4, 4 << 20, Some("flash")).unwrap()),
            ..Default::default()
        }
        .with_mtime(1_700_000_000, 123_456_789)
    }

    #[test]
    fn encodes_azure_keys() {
        let pairs = sample().to_pairs();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("owner"), Some("1000"));
        assert_eq!(get("group"), Some("100"));
        assert_eq!(get("permissions"), Some("1755"));
        assert_eq!(get("modtime"), Some("2023-11-14 22:13:20 +0000"));
        assert_eq!(get("hdi_isfolder"), None);
        assert_eq!(get("lustre_type"), Some("file"));
        assert_eq!(get("lustre_fid"), Some("[0x200000401:0x1:0x0]"));
        assert_eq!(get("lustre_mtime_ns"), Some("1700000000123456789"));
        assert_eq!(get("lustre_data_version"), Some("42"));
        assert_eq!(get("lustre_checksum"), Some("crc32:0badf00d"));
        assert_eq!(get("lustre_stripe_count"), Some("4"));
        assert_eq!(get("lustre_stripe_size"), Some("4194304"));
        assert_eq!(get("lustre_pool"), Some("flash"));
        let dir = Metadata {
            kind: FileKind::Dir,
            permissions: 0o755,
            ..Default::default()
        };
        let pairs = dir.to_pairs();
        assert!(pairs.contains(&("hdi_isfolder".into(), "true".into())));
        assert!(pairs.contains(&("permissions".into(), "0755".into())));
    }

    #[test]
    fn round_trips_both_ways() {
        let m = sample();
        let pairs = m.to_pairs();
        let back =
            Metadata::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        // modtime is kept to the second.
        assert_eq!(
            back.modtime,
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert_eq!(
            Metadata {
                modtime: m.modtime,
                ..back.clone()
            },
            m
        );
        // And encoding the decoded value gives the same pairs.
        assert_eq!(back.to_pairs(), pairs);
    }

    #[test]
    fn decodes_foreign_blobs() {
        let m = Metadata::from_pairs([("HDI_ISFOLDER", "true"), ("Owner", "7"), ("other", "x")])
            .unwrap();
        assert_eq!(m.kind, FileKind::Dir);
        assert_eq!(m.owner, 7);
        assert_eq!(m.extra.get("other").map(String::as_str), Some("x"));
        assert!(m.to_pairs().contains(&("other".into(), "x".into())));
        let e = Metadata::from_pairs([("permissions", "999")]).unwrap_err();
        assert_eq!(e.key, "permissions");
        assert!(Metadata::from_pairs([("permissions", "17777")]).is_err());
        assert!(Metadata::from_pairs([("modtime", "yesterday")]).is_err());
        assert!(Metadata::from_pairs([("lustre_type", "fifo")]).is_err());
        let t = Metadata::from_pairs([("modtime", "2024-02-29 01:02:03 +0100")]).unwrap();
        assert_eq!(format_modtime(t.modtime), "2024-02-29 00:02:03 +0000");
    }

    #[test]
    fn layout_keys_decode_together_or_not_at_all() {
        let m = Metadata::from_pairs([
            ("LUSTRE_STRIPE_COUNT", "2"),
            ("lustre_stripe_size", "65536"),
        ])
        .unwrap();
        assert_eq!(
            m.layout,
            Some(lustre::Striping::new(2, 65536, None).unwrap())
        );
        assert_eq!(Metadata::from_pairs([("owner", "1")]).unwrap().layout, None);
        let no_layout = Metadata::default().to_pairs();
        assert!(!no_layout
            .iter()
            .any(|(k, _)| k.starts_with("lustre_stripe")));
        for (pairs, key, expected) in [
            (
                vec![("lustre_stripe_count", "4")],
                "lustre_stripe_size",
                "together",
            ),
            (
                vec![("lustre_pool", "flash")],
                "lustre_stripe_count",
                "together",
            ),
            (
                vec![
                    ("lustre_stripe_count", "four"),
                    ("lustre_stripe_size", "65536"),
                ],
                "lustre_stripe_count",
                "from 1 to 2000",
            ),
            (
                vec![
                    ("lustre_stripe_count", "0"),
                    ("lustre_stripe_size", "65536"),
                ],
                "lustre_stripe_count",
                "from 1 to 2000",
            ),
            (
                vec![("lustre_stripe_count", "1"), ("lustre_stripe_size", "1000")],
                "lustre_stripe_size",
                "multiple of 65536",
            ),
            (
                vec![
                    ("lustre_stripe_count", "1"),
                    ("lustre_stripe_size", "65536"),
                    ("lustre_pool", "../etc"),
                ],
                "lustre_pool",
                "pool name",
            ),
        ] {
            let e = Metadata::from_pairs(pairs.clone()).unwrap_err();
            assert_eq!(e.key, key, "{pairs:?}");
            assert!(e.to_string().contains(expected), "{pairs:?}: {e}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn negative_mtimes() {
        let m = Metadata::default().with_mtime(-2, 500);
        assert_eq!(m.mtime_ns, Some(-1_999_999_500));
        assert_eq!(format_modtime(m.modtime), "1969-12-31 23:59:58 +0000");
    }
}
