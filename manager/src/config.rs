//! `manager.toml`: `[server]`, `[db]` and `[task]` as in seed 002's `wdpost_master.toml`, plus
//! `[mock]` and `[[persist_store]]`. Unknown keys and bad values refuse to start with the file,
//! the key and the reason.

use std::path::Path;
use std::time::Duration;

use damocles_actors::config_file;
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:1789";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub db: DbSection,
    /// Read by the WindowPoSt job keeper; parsed and checked now so a bad value fails at start.
    #[serde(default)]
    #[allow(dead_code)]
    pub task: TaskSection,
    #[serde(default)]
    pub mock: MockSection,
    /// Persist stores workers may attach (`StoreBasicInfo`).
    #[serde(default)]
    pub persist_store: Vec<PersistStore>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Option<String>,
    pub max_connections: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbSection {
    /// `mysql://user:pass@host:port/db` or a SQLite file path; default `<home>/damocles.sqlite`.
    pub url: Option<String>,
    pub min_connections: Option<u32>,
    pub max_connections: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
}

/// The WindowPoSt job keeper's timers (used by the WindowPoSt job queue).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TaskSection {
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    pub max_retry: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub heartbeat_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub retry_job_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub archive_job_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub should_archive: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSection {
    pub enable: Option<bool>,
    pub miner: Option<u64>,
    pub sector_size: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistStore {
    pub name: String,
    pub path: String,
}

pub use damocles_actors::config_file::ConfigError;

impl ManagerConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&config_file::read(path)?, &path.display().to_string())
    }

    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let cfg: Self = config_file::parse(text, file)?;
        let err = |key: &str, reason: String| ConfigError::new(file, key, reason);
        if let Some(size) = &cfg.mock.sector_size {
            crate::mock_chain::proof_for_size(size).map_err(|r| err("mock.sector_size", r))?;
        }
        if let Some(url) = &cfg.db.url {
            crate::db::backend_of(url).map_err(|e| err("db.url", e.to_string()))?;
        }
        if let (Some(min), Some(max)) = (cfg.db.min_connections, cfg.db.max_connections) {
            if min > max {
                return Err(err(
                    "db.min_connections",
                    format!("{min} is more than max_connections ({max})"),
                ));
            }
        }
        if cfg.db.max_connections == Some(0) {
            return Err(err("db.max_connections", "must be at least 1".into()));
        }
        if let Some(listen) = &cfg.server.listen {
            listen.parse::<std::net::SocketAddr>().map_err(|e| {
                err(
                    "server.listen",
                    format!("{listen:?}: {e}; use host:port like 0.0.0.0:1789"),
                )
            })?;
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_config_parses() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config-examples"));
        let files = config_file::example_files(dir, "manager").unwrap();
        for path in &files {
            ManagerConfig::load(path).unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(files.len() >= 2, "found {} manager examples", files.len());
    }

    #[test]
    fn bad_configs_name_the_key_and_the_reason() {
        let cases = [
            ("[server]\nlisten = 1789", "server.listen", "invalid type"),
            (
                "[server]\nlisten = \"nowhere\"",
                "server.listen",
                "host:port",
            ),
            (
                "[db]\nidle_timeout = \"10x\"",
                "db.idle_timeout",
                "expected a duration",
            ),
            (
                "[db]\nmin_connections = 5\nmax_connections = 2",
                "db.min_connections",
                "more than",
            ),
            (
                "[db]\nurl = \"postgres://x\"",
                "db.url",
                "unsupported database url",
            ),
            (
                "[task]\nmax_retry = \"two\"",
                "task.max_retry",
                "invalid type",
            ),
            (
                "[mock]\nsector_size = \"3KiB\"",
                "mock.sector_size",
                "valid sizes",
            ),
            ("[bogus]\nx = 1", "bogus", "unknown field `bogus`"),
        ];
        for (text, key, reason) in cases {
            let e = ManagerConfig::parse(text, "manager.toml").expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(e.reason.contains(reason), "{text}: {e}");
        }
    }
}
