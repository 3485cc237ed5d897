//! [`ExportRecord`]: where a file went, stored by the copytool on the file itself in the xattr
//! `trusted.lustre_blob` (DESIGN §4b), as compact JSON:
//!
//! ```json
//! {"blob":"projects/a.dat","etag":"\"0x8DC...\"","data_version":7,"exported_at":"2026-11-25T20:00:00.123456789Z","size":1048576}
//! ```

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The xattr name the copytool stores [`ExportRecord`]s under.
pub const EXPORT_XATTR: &str = "trusted.lustre_blob";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRecord {
    /// The full blob name (prefix included).
    pub blob: String,
    pub etag: String,
    pub data_version: u64,
    #[serde(with = "rfc3339")]
    pub exported_at: SystemTime,
    pub size: u64,
}

impl ExportRecord {
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<ExportRecord, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// SystemTime as RFC 3339 UTC with nanoseconds.
pub(crate) mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub fn format(t: SystemTime) -> String {
        let d: chrono::DateTime<chrono::Utc> = t.into();
        d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| SystemTime::from(t.with_timezone(&chrono::Utc)))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn json_round_trip() {
        let r = ExportRecord {
            blob: "pre/a%b #1?.txt".into(),
            etag: "\"0x1\"".into(),
            data_version: 7,
            exported_at: UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            size: 42,
        };
        let j = r.to_json();
        let text = String::from_utf8(j.clone()).unwrap();
        assert!(
            text.contains("\"exported_at\":\"2023-11-14T22:13:20.123456789Z\""),
            "{text}"
        );
        assert!(text.contains("\"blob\":\"pre/a%b #1?.txt\""), "{text}");
        assert_eq!(ExportRecord::from_json(&j).unwrap(), r);
        assert!(ExportRecord::from_json(b"{}").is_err());
    }
}
