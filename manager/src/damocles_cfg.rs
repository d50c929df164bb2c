//! damocles' own manager config, `<home>/sector-manager.cfg`, read for what it says that this
//! manager does too (seed 002): `[Common.Proving.WorkerProver]` (`JobMaxTry`,
//! `HeartbeatTimeout`, `JobLifetime`), the miner of `[[Miners]] Actor`, and
//! `[[Common.PersistStores]]`. Its other sections configure parts this manager does not have and
//! are named in the log, not refused. A key `manager.toml` also sets must say the same thing,
//! or the manager does not start.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::config::{ConfigError, ManagerConfig, PersistStore};

pub const FILE_NAME: &str = "sector-manager.cfg";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct File {
    #[serde(default)]
    common: Common,
    #[serde(default)]
    miners: Vec<Miner>,
    /// Sections for parts this manager does not have: only their names are kept, for the log.
    #[serde(flatten)]
    other: BTreeMap<String, IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Common {
    #[serde(default)]
    proving: Proving,
    #[serde(default)]
    persist_stores: Vec<Store>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Proving {
    #[serde(default)]
    worker_prover: WorkerProver,
}

/// The section seed 002 shows; its keys are checked strictly.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct WorkerProver {
    job_max_try: Option<u32>,
    heartbeat_timeout: Option<String>,
    job_lifetime: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Miner {
    actor: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Store {
    name: Option<String>,
    path: String,
    read_only: Option<bool>,
    weight: Option<u64>,
}

/// What `sector-manager.cfg` changed, for the log.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    pub keys: Vec<&'static str>,
    /// Top-level sections this manager has no use for.
    pub ignored: Vec<String>,
}

/// Parses Go's `time.Duration` text: `15s`, `25h0m0s`, `1m30s`, `500ms`, `1.5h`.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like \"15s\" or \"25h0m0s\"");
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * secs;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// Puts what `text` (the file `file`) says into `cfg`, refusing a key that `manager.toml`
/// already sets to something else.
pub fn apply(cfg: &mut ManagerConfig, text: &str, file: &str) -> Result<Applied, ConfigError> {
    let err = |key: &str, reason: String| ConfigError::new(file, key, reason);
    let parsed: File = damocles_actors::config_file::parse(text, file)?;
    let mut applied = Applied {
        ignored: parsed.other.keys().cloned().collect(),
        ..Default::default()
    };
    let wp = parsed.common.proving.worker_prover;
    let conflict = |ours: &str, theirs: &str, a: String, b: String| {
        err(
            theirs,
            format!("{theirs} = {b} here, but {ours} = {a} in manager.toml: they are the same setting; keep one"),
        )
    };
    if let Some(n) = wp.job_max_try {
        if n == 0 {
            return Err(err(
                "Common.Proving.WorkerProver.JobMaxTry",
                "must be at least 1".into(),
            ));
        }
        match cfg.task.max_retry {
            Some(ours) if ours != n => {
                return Err(conflict(
                    "[task] max_retry",
                    "Common.Proving.WorkerProver.JobMaxTry",
                    ours.to_string(),
                    n.to_string(),
                ))
            }
            _ => cfg.task.max_retry = Some(n),
        }
        applied.keys.push("JobMaxTry");
    }
    for (key, value, ours, name) in [
        (
            "Common.Proving.WorkerProver.HeartbeatTimeout",
            &wp.heartbeat_timeout,
            &mut cfg.task.heartbeat_timeout,
            "HeartbeatTimeout",
        ),
        (
            "Common.Proving.WorkerProver.JobLifetime",
            &wp.job_lifetime,
            &mut cfg.task.job_lifetime,
            "JobLifetime",
        ),
    ] {
        let Some(text) = value else { continue };
        let d = parse_go_duration(text).map_err(|r| err(key, r))?;
        if d < Duration::from_secs(1) {
            return Err(err(key, "must be at least 1s".into()));
        }
        match ours {
            Some(o) if *o != d => {
                let which = if name == "JobLifetime" {
                    "[task] job_lifetime"
                } else {
                    "[task] heartbeat_timeout"
                };
                return Err(conflict(
                    which,
                    key,
                    humantime::format_duration(*o).to_string(),
                    format!("{text:?}"),
                ));
            }
            _ => *ours = Some(d),
        }
        applied.keys.push(name);
    }
    if let Some(m) = parsed.miners.first() {
        match cfg.mock.miner {
            Some(ours) if ours != m.actor => {
                return Err(conflict(
                    "[mock] miner",
                    "Miners.Actor",
                    ours.to_string(),
                    m.actor.to_string(),
                ))
            }
            _ => cfg.mock.miner = Some(m.actor),
        }
        applied.keys.push("Miners.Actor");
    }
    for s in parsed.common.persist_stores {
        let name = s.name.clone().unwrap_or_else(|| s.path.clone());
        match cfg.persist_store.iter().find(|p| p.name == name) {
            Some(p) if p.path != s.path => {
                return Err(conflict(
                    &format!("[[persist_store]] {name} path"),
                    "Common.PersistStores.Path",
                    p.path.clone(),
                    s.path.clone(),
                ))
            }
            Some(_) => {}
            None => cfg.persist_store.push(PersistStore {
                name,
                path: s.path,
                weight: s.weight,
                read_only: s.read_only,
            }),
        }
        applied.keys.push("Common.PersistStores");
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let cases = [
            ("15s", Some(15.0)),
            ("25h0m0s", Some(90_000.0)),
            ("1m30s", Some(90.0)),
            ("500ms", Some(0.5)),
            ("1.5h", Some(5400.0)),
            ("0", Some(0.0)),
            ("15", None),
            ("15 s", None),
            ("soon", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = parse_go_duration(text).ok().map(|d| d.as_secs_f64());
            assert_eq!(got, want, "{text}");
        }
    }

    const SEED: &str = r#"
# ~/.damocles-manager/sector-manager.cfg
[Common.API]
Chain = "/ip4/127.0.0.1/tcp/3453"

[Plugins]
Dir = "/opt/plugins"

[Common.Proving.WorkerProver]
JobMaxTry = 2
HeartbeatTimeout = "15s"
JobLifetime = "25h0m0s"

[[Common.PersistStores]]
Name = "remote"
Path = "/mnt/remote"

[[Miners]]
Actor = 10000
"#;

    #[test]
    fn the_seed_file_sets_the_keeper_the_miner_and_the_stores() {
        let mut cfg = ManagerConfig::default();
        let applied = apply(&mut cfg, SEED, "sector-manager.cfg").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.task.max_retry, Some(2));
        assert_eq!(cfg.task.heartbeat_timeout, Some(Duration::from_secs(15)));
        assert_eq!(cfg.task.job_lifetime, Some(Duration::from_secs(25 * 3600)));
        assert_eq!(cfg.mock.miner, Some(10000));
        assert_eq!(cfg.persist_store[0].path, "/mnt/remote");
        assert_eq!(applied.ignored, ["Plugins"], "{applied:?}");
        // The same values in manager.toml are no conflict.
        let mut same = ManagerConfig::parse(
            "[task]\nheartbeat_timeout = \"15s\"\nmax_retry = 2\n",
            "m.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(apply(&mut same, SEED, "sector-manager.cfg").is_ok());
    }

    #[test]
    fn differing_or_bad_values_name_both_files_keys() {
        let cases = [
            (
                "[task]\nheartbeat_timeout = \"10s\"\n",
                SEED,
                "Common.Proving.WorkerProver.HeartbeatTimeout",
                "[task] heartbeat_timeout = 10s in manager.toml",
            ),
            (
                "[task]\nmax_retry = 3\n",
                SEED,
                "Common.Proving.WorkerProver.JobMaxTry",
                "[task] max_retry = 3",
            ),
            (
                "[mock]\nminer = 1000\n",
                SEED,
                "Miners.Actor",
                "[mock] miner = 1000",
            ),
            (
                "",
                "[Common.Proving.WorkerProver]\nHeartbeatTimeout = \"15 seconds\"\n",
                "Common.Proving.WorkerProver.HeartbeatTimeout",
                "not a duration",
            ),
            (
                "",
                "[Common.Proving.WorkerProver]\nJobMaxTries = 2\n",
                "Common.Proving.WorkerProver.JobMaxTries",
                "unknown field",
            ),
        ];
        for (ours, theirs, key, reason) in cases {
            let mut cfg =
                ManagerConfig::parse(ours, "manager.toml").unwrap_or_else(|e| panic!("{e}"));
            let e = apply(&mut cfg, theirs, "sector-manager.cfg").expect_err(key);
            assert_eq!(e.key, key, "{e}");
            assert!(e.reason.contains(reason), "{e}");
        }
    }
}
