//! Policy-file errors: one line naming the file, the line and the key.

use std::path::{Path, PathBuf};

/// A policy file that cannot be read or is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read (keeps the OS error).
    #[error("{}: cannot read the policy file: {source}", file.display())]
    Io {
        /// The policy file.
        file: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key is unknown, missing or has a bad value.
    #[error("{}", render(file, *line, key, message))]
    Invalid {
        /// The policy file.
        file: PathBuf,
        /// The line, when known.
        line: Option<usize>,
        /// The key (`section.key`).
        key: String,
        /// What is wrong, one line.
        message: String,
    },
}

impl ConfigError {
    /// 1-based line of the offending text, when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => *line,
            ConfigError::Io { .. } => None,
        }
    }

    /// Dotted key (`autoexport.min_age`), empty for syntax errors.
    pub fn key(&self) -> &str {
        match self {
            ConfigError::Invalid { key, .. } => key,
            ConfigError::Io { .. } => "",
        }
    }
}

fn render(file: &Path, line: Option<usize>, key: &str, message: &str) -> String {
    let mut s = file.display().to_string();
    if let Some(l) = line {
        s.push_str(&format!(":{l}"));
    }
    if !key.is_empty() {
        s.push_str(&format!(": {key}"));
    }
    s.push_str(&format!(": {message}"));
    s
}

/// 1-based line number of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Extracts the name in serde's "unknown field `x`, expected ..." / "missing field `x`" messages.
fn quoted_field<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    let rest = rest.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

pub(crate) fn from_toml(
    e: serde_path_to_error::Error<toml::de::Error>,
    text: &str,
    file: &Path,
) -> ConfigError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    // One line: toml puts details of some syntax errors on following lines.
    let message = inner
        .message()
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let line = inner.span().map(|s| line_of(text, s.start));
    let mut key = if path == "." { String::new() } else { path };
    // serde reports unknown and missing keys at the enclosing table: name the key itself.
    for prefix in ["unknown field ", "missing field "] {
        if let Some(field) = quoted_field(&message, prefix) {
            if key.split('.').next_back().is_none_or(|last| last != field) {
                key = if key.is_empty() {
                    field.to_string()
                } else {
                    format!("{key}.{field}")
                };
            }
        }
    }
    ConfigError::Invalid {
        file: file.to_path_buf(),
        line,
        key,
        message,
    }
}
