//! Blob naming: blob name = blob prefix + path relative to the mount, byte for byte.
//!
//! `object_store::path::Path::from` percent-encodes characters such as `%`, so names are built
//! with `Path::parse`, which validates without re-encoding: the file `a%b #1?.txt` becomes the
//! blob `a%b #1?.txt`. Names a blob cannot carry are refused with a reason, never altered.

use object_store::path::Path;

/// Azure's limit on a blob name, in characters.
pub const MAX_NAME_CHARS: usize = 1024;

/// A validated blob name (prefix included), exactly the bytes of the file path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobName(Path);

impl BlobName {
    /// Validates a full blob name (already including any prefix).
    pub fn new(name: &str) -> Result<BlobName, NameError> {
        validate(name)?;
        let path = Path::parse(name).map_err(|e| NameError::Rejected {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        // Path::parse strips one leading/trailing '/'; validate() refused both, so this holds.
        debug_assert_eq!(path.as_ref(), name);
        Ok(BlobName(path))
    }

    /// The name as stored in the blob service.
    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// The object_store path (same bytes).
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The name's `/`-separated segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.as_str().split('/')
    }
}

impl std::fmt::Display for BlobName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for BlobName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobName({:?})", self.as_str())
    }
}

/// Why a path cannot be a blob name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not UTF-8.
    #[error("name is not valid UTF-8 (a blob name must be): {lossy:?}")]
    NotUtf8 {
        /// The name with invalid bytes replaced.
        lossy: String,
    },
    /// Over the 1,024 characters a blob name may have.
    #[error("name is {chars} characters long; a blob name has at most {MAX_NAME_CHARS}: {name:?}")]
    TooLong {
        /// The name.
        name: String,
        /// Its length in characters.
        chars: usize,
    },
    /// A control character.
    #[error("name contains a control character (0x{byte:02x}): {name:?}")]
    ControlChar {
        /// The name.
        name: String,
        /// The character.
        byte: u32,
    },
    /// An empty, `.` or `..` segment.
    #[error("name has an empty, `.` or `..` segment: {name:?}")]
    BadSegment {
        /// The name.
        name: String,
    },
    /// No name at all.
    #[error("name is empty")]
    Empty,
    /// Ends with `/`.
    #[error("name ends with `/`: {name:?}")]
    TrailingSlash {
        /// The name.
        name: String,
    },
    /// Starts with `/`.
    #[error("name starts with `/`: {name:?}")]
    LeadingSlash {
        /// The name.
        name: String,
    },
    /// Refused for another reason.
    #[error("name {name:?} refused: {reason}")]
    Rejected {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The URL or the blob service would store it under another name.
    #[error("name {name:?} would be stored under another name ({reason}); not exported")]
    Altered {
        /// The name.
        name: String,
        /// What would change it.
        reason: &'static str,
    },
}

fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(NameError::TooLong {
            name: name.chars().take(64).collect::<String>() + "...",
            chars,
        });
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(NameError::ControlChar {
            name: name.to_string(),
            byte: c as u32,
        });
    }
    if name.starts_with('/') {
        return Err(NameError::LeadingSlash {
            name: name.to_string(),
        });
    }
    if name.ends_with('/') {
        return Err(NameError::TrailingSlash {
            name: name.to_string(),
        });
    }
    if name
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(NameError::BadSegment {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Why the service (or the URL on the way to it) would store `name` under another name, if it
/// would. Checked for every name an export creates ([`join`]), so a file is exported under its
/// own name or not at all:
/// * `\` becomes `/` (URL path normalisation; the file `n/back\slash` would be the blob
///   `n/back/slash`);
/// * a segment ending in `.` loses its trailing dots (Azure: avoid names ending with a dot;
///   URL normalisation drops them);
/// * Unicode noncharacters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF) are not valid in blob names.
pub fn altered_by_the_store(name: &str) -> Option<&'static str> {
    if name.contains('\\') {
        return Some("a `\\` becomes `/` in a blob URL");
    }
    if name.split('/').any(|s| s.ends_with('.')) {
        return Some("a name or directory name ending in `.` loses the dot in a blob URL");
    }
    let nonchar = |c: char| {
        let u = c as u32;
        (0xFDD0..=0xFDEF).contains(&u) || u & 0xFFFE == 0xFFFE
    };
    if name.chars().any(nonchar) {
        return Some("Unicode noncharacters are not valid in blob names");
    }
    None
}

/// Joins a blob prefix (may be empty, no leading/trailing `/`) and a mount-relative path given as
/// raw bytes. A leading `/` of the relative path is not allowed either: paths are relative.
pub fn join(prefix: &str, rel_path: &[u8]) -> Result<BlobName, NameError> {
    let rel = std::str::from_utf8(rel_path).map_err(|_| NameError::NotUtf8 {
        lossy: String::from_utf8_lossy(rel_path).into_owned(),
    })?;
    if let Some(reason) = altered_by_the_store(rel).or_else(|| altered_by_the_store(prefix)) {
        return Err(NameError::Altered {
            name: rel.to_string(),
            reason,
        });
    }
    if prefix.is_empty() {
        BlobName::new(rel)
    } else if rel.is_empty() {
        BlobName::new(prefix)
    } else {
        BlobName::new(&format!("{prefix}/{rel}"))
    }
}

/// Maps a blob name back to a path relative to the mount for import: strips the prefix and
/// refuses anything that could escape the mount (absolute, `..`, control characters).
pub fn rel_path_of(prefix: &str, name: &BlobName) -> Option<String> {
    let s = name.as_str();
    let rest = if prefix.is_empty() {
        s
    } else {
        s.strip_prefix(prefix)?.strip_prefix('/')?
    };
    validate(rest).ok()?;
    Some(rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricky_names_are_kept_byte_exact() {
        for n in [
            "a%b #1?.txt",
            "plus+and&amp",
            "brackets[1]{2}",
            "ünï cödé/日本語.dat",
            "dir/sub dir/x%2Fy",
            "emoji 😀.bin",
            "tilde~quote'\"back\\slash",
        ] {
            let b = BlobName::new(n).unwrap();
            assert_eq!(b.as_str(), n);
            assert_eq!(b.path().as_ref(), n);
        }
    }

    #[test]
    fn names_the_store_would_alter_are_refused_on_export() {
        for n in [
            "n/back\\slash.txt",
            "n/ends-with-dot.",
            "n/dir./f",
            "n/dots..",
            "n/x\u{FFFE}",
            "n/y\u{FDD0}",
            "n/z\u{10FFFF}",
        ] {
            match join("", n.as_bytes()) {
                Err(NameError::Altered { name, reason }) => {
                    assert_eq!(name, n);
                    assert!(!reason.is_empty());
                }
                other => panic!("{n:?}: {other:?}"),
            }
        }
        assert!(join("pre.", b"f").is_err(), "the prefix too");
        // Dots elsewhere are fine.
        for n in ["n/.hidden", "n/a.b", "n/...x", "n/v1.2/f"] {
            assert_eq!(join("", n.as_bytes()).unwrap().as_str(), n);
        }
    }

    #[test]
    fn join_prefix_and_relative_path() {
        assert_eq!(join("", b"a/b").unwrap().as_str(), "a/b");
        assert_eq!(join("pre/fix", b"a%b").unwrap().as_str(), "pre/fix/a%b");
        assert_eq!(join("pre", b"").unwrap().as_str(), "pre");
        assert!(matches!(join("", b""), Err(NameError::Empty)));
    }

    #[test]
    fn refusals_carry_reasons() {
        assert!(matches!(
            join("", b"bad\xff"),
            Err(NameError::NotUtf8 { .. })
        ));
        let long = "x".repeat(1025);
        assert!(matches!(
            BlobName::new(&long),
            Err(NameError::TooLong { chars: 1025, .. })
        ));
        assert!(BlobName::new(&"x".repeat(1024)).is_ok());
        // 1024 characters of multi-byte UTF-8 are allowed: the limit counts characters.
        assert!(BlobName::new(&"é".repeat(1024)).is_ok());
        assert!(matches!(
            BlobName::new("a\nb"),
            Err(NameError::ControlChar { byte: 0x0a, .. })
        ));
        assert!(matches!(
            BlobName::new("a\u{7f}"),
            Err(NameError::ControlChar { .. })
        ));
        for n in ["a/./b", "a/../b", "..", ".", "a//b"] {
            assert!(
                matches!(BlobName::new(n), Err(NameError::BadSegment { .. })),
                "{n}"
            );
        }
        assert!(matches!(
            BlobName::new("a/"),
            Err(NameError::TrailingSlash { .. })
        ));
        assert!(matches!(
            BlobName::new("/a"),
            Err(NameError::LeadingSlash { .. })
        ));
        let msg = BlobName::new("a\tb").unwrap_err().to_string();
        assert!(msg.contains("control character"), "{msg}");
    }

    #[test]
    fn import_side_mapping_strips_prefix_and_refuses_escapes() {
        let n = BlobName::new("pre/a/b c").unwrap();
        assert_eq!(rel_path_of("pre", &n).as_deref(), Some("a/b c"));
        assert_eq!(rel_path_of("other", &n), None);
        assert_eq!(rel_path_of("", &n).as_deref(), Some("pre/a/b c"));
        let n = BlobName::new("prefix").unwrap();
        assert_eq!(rel_path_of("pre", &n), None);
    }
}
