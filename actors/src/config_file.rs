//! Loading a TOML config file for either binary: one error shape that names the file, the key
//! and the reason, on one line.

use std::path::Path;

use serde::de::DeserializeOwned;

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct ConfigError {
    /// The file it came from.
    pub file: String,
    /// The key that is wrong (`sealing_thread[0].plan`).
    pub key: String,
    /// What is wrong, and what is allowed.
    pub reason: String,
}

impl ConfigError {
    /// An error about `key` in `file`.
    pub fn new(file: &str, key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// The `<prefix>*.toml` files of a folder (`config-examples/`), for the tests that parse them all.
pub fn example_files(dir: &Path, prefix: &str) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.starts_with(prefix) && name.ends_with(".toml") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Test support for generated config files: values of every TOML type that a key should refuse
/// or take with care (zero, negative, huge, durations and sizes good and bad, wrong types).
pub const ODD_VALUES: &[&str] = &[
    "0",
    "-1",
    "18446744073709551616",
    "1.5e308",
    "nan",
    "\"\"",
    "\"0s\"",
    "\"1x\"",
    "\"99999999999999999999days\"",
    "\"2KiB\"",
    "\"3KiB\"",
    "\"0-3,8\"",
    "\"/ip4/127.0.0.1/tcp/0\"",
    "\"\\u0000\"",
    "true",
    "[]",
    "[1, \"a\", {}]",
    "{ x = 1 }",
    "\"pc1\"",
];

/// Test support for generated config files: `text` with `edits` applied. Each edit is
/// (line, what, value): the line is taken modulo the number of lines; `what` % 4 replaces the
/// value of a `key = value` line with `value`, deletes the line, repeats it, or adds `value` as
/// a line after it.
pub fn mutated(text: &str, edits: &[(usize, u8, String)]) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for (at, what, value) in edits {
        if lines.is_empty() {
            lines.push(value.clone());
            continue;
        }
        let i = at % lines.len();
        match what % 4 {
            0 => {
                if let Some((key, _)) = lines[i].split_once('=') {
                    lines[i] = format!("{key}= {value}");
                }
            }
            1 => {
                lines.remove(i);
            }
            2 => {
                let line = lines[i].clone();
                lines.insert(i, line);
            }
            _ => lines.insert(i + 1, value.clone()),
        }
    }
    lines.join("\n")
}

/// The text of a config file, or an error naming it.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            &path.display().to_string(),
            "-",
            format!("cannot read the file: {e}"),
        )
    })
}

/// Parses `text`; unknown keys, wrong types and bad values come back with the key's path.
pub fn parse<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let path = e.path().to_string();
        let key = if path.is_empty() || path == "." {
            "(top level)".to_string()
        } else {
            path
        };
        let mut reason = one_line(&e.inner().to_string());
        if reason.contains("expected a duration") {
            reason.push_str("; write durations like 30s, 5min, 1h 30m, 2days");
        }
        ConfigError::new(file, key, reason)
    })
}

/// toml's errors span several lines with a source excerpt; keep the reason and the position.
fn one_line(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let location = lines.first().copied().unwrap_or_default();
    let reason = lines
        .iter()
        .rev()
        .find(|l| !l.starts_with('|') && !l.starts_with(|c: char| c.is_ascii_digit()))
        .copied()
        .unwrap_or(location);
    if location.starts_with("TOML parse error") && reason != location {
        format!(
            "{reason} ({})",
            location.trim_start_matches("TOML parse error ").trim()
        )
    } else {
        reason.to_string()
    }
}
