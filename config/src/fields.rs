//! Per-key readers that check the value while it is read, so a refusal carries the value's
//! position in the file (the loader turns that into the line number).

use crate::units;
use serde::de::{self, Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn custom<E: de::Error>(msg: String) -> E {
    E::custom(msg)
}

pub fn de_mount<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let s = String::deserialize(d)?;
    if !s.starts_with('/') {
        return Err(custom(format!("must be an absolute path, got \"{s}\"")));
    }
    Ok(PathBuf::from(s))
}

pub fn de_abs_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    de_mount(d)
}

pub fn de_opt_abs_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    de_mount(d).map(Some)
}

pub fn de_archive_id<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = i64::deserialize(d)?;
    match u32::try_from(v) {
        Ok(0) | Err(_) => Err(custom(format!(
            "must be between 1 and {}, got {v}",
            u32::MAX
        ))),
        Ok(id) => Ok(id),
    }
}

/// `clN` or `clN-name` (name: a letter, then letters, digits, `-`, `_`; at most 15 characters).
pub fn check_changelog_user(s: &str) -> Result<(), String> {
    let bad = || {
        format!("invalid changelog user \"{s}\" (expected \"clN\" or \"clN-name\" as changelog_register printed it)")
    };
    let rest = s.strip_prefix("cl").ok_or_else(bad)?;
    let (num, name) = match rest.split_once('-') {
        Some((n, name)) => (n, Some(name)),
        None => (rest, None),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || num.parse::<u32>().is_err() {
        return Err(bad());
    }
    if let Some(name) = name {
        let ok = !name.is_empty()
            && name.len() <= 15
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// `changelog_user = "cl1"` (the same id on every MDT) or a table MDT → id (ids are numbered
/// per MDT by `changelog_register`), keyed by device name (`lustre-MDT0001`) or `MDT0001`.
pub fn de_changelog_user<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<crate::ChangelogUser, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Form {
        Same(String),
        PerMdt(std::collections::BTreeMap<String, String>),
    }
    match Form::deserialize(d).map_err(|_| {
        custom(
            "expected a changelog user (\"cl1\") or a table of MDT = user \
             ({ \"MDT0000\" = \"cl1\", \"MDT0001\" = \"cl2\" })"
                .into(),
        )
    })? {
        Form::Same(s) => {
            check_changelog_user(&s).map_err(custom)?;
            Ok(crate::ChangelogUser::Same(s))
        }
        Form::PerMdt(t) => {
            if t.is_empty() {
                return Err(custom("the table of MDT = user is empty".into()));
            }
            for (mdt, user) in &t {
                let idx = mdt.rsplit_once("MDT").map(|(_, i)| i).unwrap_or("");
                let ok = (mdt.starts_with("MDT") || mdt.contains("-MDT"))
                    && idx.len() == 4
                    && u32::from_str_radix(idx, 16).is_ok();
                if !ok {
                    return Err(custom(format!(
                        "invalid MDT \"{mdt}\" (expected \"MDTxxxx\" or \"<fsname>-MDTxxxx\")"
                    )));
                }
                check_changelog_user(user).map_err(|e| custom(format!("{mdt}: {e}")))?;
            }
            Ok(crate::ChangelogUser::PerMdt(t))
        }
    }
}

pub fn de_mdts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if v.is_empty() {
        return Err(custom(
            "must list at least one MDT (omit the key to read every MDT)".into(),
        ));
    }
    for m in &v {
        let ok = m.rsplit_once("-MDT").is_some_and(|(fs, idx)| {
            !fs.is_empty() && idx.len() == 4 && u32::from_str_radix(idx, 16).is_ok()
        });
        if !ok {
            return Err(custom(format!(
                "invalid MDT name \"{m}\" (expected \"<fsname>-MDTxxxx\", e.g. \"lustre-MDT0000\")"
            )));
        }
    }
    Ok(Some(v))
}

pub fn de_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let scheme_ok = [
        "https://", "http://", "az://", "azure://", "abfs://", "abfss://",
    ]
    .iter()
    .any(|p| s.starts_with(p) && s.len() > p.len());
    if !scheme_ok {
        return Err(custom(
            "invalid blob URL (expected https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX], az://CONTAINER[/PREFIX] or an Azurite http:// URL)".into(),
        ));
    }
    if s.chars().any(|c| c.is_control() || c == ' ') {
        return Err(custom(
            "invalid blob URL (contains spaces or control characters)".into(),
        ));
    }
    Ok(s)
}

pub fn de_positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = units::de_duration(d)?;
    if v.is_zero() {
        return Err(custom("must be longer than 0s".into()));
    }
    Ok(v)
}

/// An export prefix relative to the mount: no leading `/`, no `.`/`..` segments, no control
/// characters. Returned without trailing `/` ("" = everything).
pub fn normalize_export_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') {
        return Err(format!("must be relative to the mount, got \"{s}\""));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("contains a control character: {s:?}"));
    }
    let trimmed = s.trim_end_matches('/');
    let mut out = Vec::new();
    for seg in trimmed.split('/') {
        match seg {
            "" if trimmed.is_empty() => {}
            "" => return Err(format!("empty path segment in \"{s}\"")),
            "." | ".." => return Err(format!("\"{seg}\" segments are not allowed, got \"{s}\"")),
            seg => out.push(seg),
        }
    }
    Ok(out.join("/"))
}

pub fn de_paths<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let raw = match OneOrMany::deserialize(d)
        .map_err(|_| custom::<D::Error>("must be a string or a list of strings".into()))?
    {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    };
    if raw.is_empty() {
        return Err(custom(
            "must name at least one path (\"\" = everything)".into(),
        ));
    }
    raw.iter()
        .map(|s| normalize_export_path(s).map_err(custom))
        .collect()
}

pub fn de_globs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    for g in &v {
        globset::Glob::new(g).map_err(|e| custom(format!("invalid glob \"{g}\": {}", e.kind())))?;
    }
    Ok(v)
}

pub fn de_batch_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    bounded(i64::deserialize(d)?, 1, 100_000)
}

pub fn de_max_in_flight<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    bounded(i64::deserialize(d)?, 1, 1_000_000)
}

pub fn de_min_in_flight<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    bounded(i64::deserialize(d)?, 1, 1_000_000)
}

/// `autoexport.queue_target`: 0 (no adaptation) up to 10 minutes.
pub fn de_queue_target<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = units::de_duration(d)?;
    if v > Duration::from_secs(600) {
        return Err(custom(format!(
            "must be at most 10min, got {} s (\"0s\" keeps max_in_flight requests outstanding)",
            v.as_secs()
        )));
    }
    Ok(v)
}

/// `lustre.changelog_interval`: `"auto"`, or 100ms to 60s.
pub fn de_changelog_interval<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<super::ChangelogInterval, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim() == "auto" {
        return Ok(super::ChangelogInterval::Auto);
    }
    let v = units::parse_duration(&text)
        .map_err(|e| custom(format!("must be \"auto\" or an interval: {e}")))?;
    if v < Duration::from_millis(100) || v > Duration::from_secs(60) {
        return Err(custom(format!(
            "must be \"auto\" or 100ms to 60s, got {} ms (1s follows the changelog as Lustre's reader does)",
            v.as_millis()
        )));
    }
    Ok(super::ChangelogInterval::Every(v))
}

pub fn de_max_actions<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    bounded(i64::deserialize(d)?, 1, 1024)
}

pub fn de_blocks_in_flight<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    bounded(i64::deserialize(d)?, 1, 256)
}

fn bounded<E: de::Error>(v: i64, lo: i64, hi: i64) -> Result<usize, E> {
    if v < lo || v > hi {
        return Err(custom(format!("must be between {lo} and {hi}, got {v}")));
    }
    usize::try_from(v).map_err(|_| custom(format!("must be between {lo} and {hi}, got {v}")))
}

pub fn de_block_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = units::de_size(d)?;
    if !(crate::MIN_BLOCK_SIZE..=crate::MAX_BLOCK_SIZE).contains(&v) {
        return Err(custom(format!(
            "{} is outside Azure's block size limits ({} to {})",
            units::format_size(v),
            units::format_size(crate::MIN_BLOCK_SIZE),
            units::format_size(crate::MAX_BLOCK_SIZE)
        )));
    }
    Ok(v)
}

pub fn de_bandwidth<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = units::de_opt_size(d)?;
    if v == Some(0) {
        return Err(custom(
            "must be more than 0 bytes per second (omit the key for no limit)".into(),
        ));
    }
    Ok(v)
}

/// Azure container names: 3-63 characters, lowercase letters, digits and single hyphens, starting
/// and ending with a letter or digit.
pub fn check_container(s: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid container name \"{s}\" (3-63 lowercase letters, digits and single hyphens)"
        ))
    }
}

pub fn de_container<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    check_container(&s).map_err(custom)?;
    Ok(s)
}

pub fn de_metrics<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<SocketAddr>().map(Some).map_err(|_| {
        custom(format!(
            "invalid listen address \"{s}\" (expected ADDR:PORT, e.g. \"127.0.0.1:9464\")"
        ))
    })
}
