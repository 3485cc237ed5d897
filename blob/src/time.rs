//! The one time format of everything lustre-blob writes (logging container, export records,
//! status): RFC 3339 in UTC with milliseconds, `2026-01-01T00:00:00.000Z`. One precision, so
//! lines of both binaries sort and compare as text.

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};

/// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The current time cut to whole milliseconds: what is written reads back equal.
pub fn now() -> SystemTime {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(since.as_millis() as u64)
}

/// [`rfc3339`] of the current time.
pub fn rfc3339_now() -> String {
    rfc3339(SystemTime::now())
}

/// The instant `ms` milliseconds after the Unix epoch (the policy engine counts in those).
pub fn from_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms)
}

/// [`rfc3339`] of [`from_ms`]`(ms)`.
pub fn rfc3339_ms(ms: u64) -> String {
    rfc3339(from_ms(ms))
}

/// Parses any RFC 3339 time (any precision, any offset).
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| SystemTime::from(t.with_timezone(&Utc)))
}

/// `#[serde(with = "blob::time::serde_rfc3339")]` for a `SystemTime` field.
pub mod serde_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    /// Writes [`super::rfc3339`].
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }

    /// Reads any RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_known_instants_with_milliseconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.789Z");
        // Sub-millisecond digits are cut, not rounded up into the next second.
        let t = UNIX_EPOCH + Duration::new(951_868_799, 999_999_999);
        assert_eq!(rfc3339(t), "2000-02-29T23:59:59.999Z");
        assert_eq!(rfc3339_ms(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn parses_what_it_writes_and_other_precisions() {
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(parse_rfc3339(&rfc3339(t)).unwrap(), t);
        let n = now();
        assert_eq!(parse_rfc3339(&rfc3339(n)).unwrap(), n);
        assert_eq!(
            parse_rfc3339("2024-02-29T12:34:56Z").unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_709_210_096)
        );
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
