//! Human-friendly units in the policy file: humantime durations ("30s", "5m") and byte sizes
//! ("8MiB", "1GiB", "4096"). Each parser returns a message that names the bad value, so the
//! loader can prefix it with file, line and key.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::time::Duration;

/// Parses a humantime duration, refusing anything humantime does not understand.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration \"{text}\" ({e}; e.g. \"30s\", \"5m\", \"1h 30m\")"))
}

/// Parses a byte size: a plain integer (bytes) or a number with a unit. Binary units (KiB, MiB,
/// GiB, TiB) are powers of 1024; decimal units (kB/KB, MB, GB, TB) powers of 1000; `B` is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad =
        |why: &str| format!("invalid size \"{text}\" ({why}; e.g. \"8MiB\", \"1GiB\", \"65536\")");
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad("no number"));
    }
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => return Err(bad(&format!("unknown unit \"{other}\""))),
    };
    if let Some((int, frac)) = num.split_once('.') {
        // Fractions are allowed with a unit ("1.5GiB") and must come out as whole bytes.
        if int.is_empty() || frac.is_empty() || frac.contains('.') {
            return Err(bad("malformed number"));
        }
        let int: u64 = int.parse().map_err(|_| bad("number too large"))?;
        let scale = 10u64
            .checked_pow(frac.len() as u32)
            .ok_or_else(|| bad("too many decimals"))?;
        let frac: u64 = frac.parse().map_err(|_| bad("malformed number"))?;
        let whole = int.checked_mul(mult).ok_or_else(|| bad("too large"))?;
        let part = (frac as u128 * mult as u128) / scale as u128;
        if (frac as u128 * mult as u128) % scale as u128 != 0 {
            return Err(bad("not a whole number of bytes"));
        }
        let part = u64::try_from(part).map_err(|_| bad("too large"))?;
        whole.checked_add(part).ok_or_else(|| bad("too large"))
    } else {
        let n: u64 = num.parse().map_err(|_| bad("number too large"))?;
        n.checked_mul(mult).ok_or_else(|| bad("too large"))
    }
}

/// Formats a byte count the way the policy file writes it (largest exact binary unit).
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes != 0 && bytes % (1u64 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// `deserialize_with` helper: a humantime duration string.
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize_str(d)?;
    parse_duration(&s).map_err(de::Error::custom)
}

/// `deserialize_with` helper: a byte size, as a string with a unit or a bare integer.
pub fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a size such as \"8MiB\" or a number of bytes")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("invalid size {v} (negative)")))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_size(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

/// Like [`de_size`] for an optional key.
pub fn de_opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_size(d).map(Some)
}

/// Small extension so helpers can ask for an owned string with a clear "expected" text.
trait DeserializeStr: Sized {
    fn deserialize_str<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

impl DeserializeStr for String {
    fn deserialize_str<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = String;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string such as \"30s\" or \"5m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_owned())
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_every_unit() {
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10B"), Ok(10));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("3kB"), Ok(3_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size(" 8 MiB "), Ok(8 << 20));
    }

    #[test]
    fn sizes_refuse_garbage() {
        for bad in [
            "",
            "MiB",
            "8 parsecs",
            "1.2.3MiB",
            "1.MiB",
            "0.1B",
            "99999999999999999999",
            "20000000TiB",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains(&format!("\"{bad}\"")), "{e}");
        }
    }

    #[test]
    fn durations_parse_and_refuse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        let e = parse_duration("5 parsecs").unwrap_err();
        assert!(e.starts_with("invalid duration \"5 parsecs\""), "{e}");
    }

    #[test]
    fn sizes_format_in_largest_exact_unit() {
        assert_eq!(format_size(8 << 20), "8MiB");
        assert_eq!(format_size(1 << 30), "1GiB");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(0), "0B");
    }
}
