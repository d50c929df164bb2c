//! `manager.toml`: `[server]`, `[db]` and `[task]` as in seed 002's `wdpost_master.toml`, plus
//! `[mock]` and `[[persist_store]]`. Unknown keys and bad values refuse to start with the file,
//! the key and the reason.

use std::path::Path;
use std::time::Duration;

use damocles_actors::config_file;
use serde::Deserialize;

use crate::wdpost_keeper::KeeperRules;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:1789";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub db: DbSection,
    /// The WindowPoSt job keeper's timers.
    #[serde(default)]
    pub task: TaskSection,
    #[serde(default)]
    pub mock: MockSection,
    /// Persist stores workers may attach (`StoreBasicInfo`).
    #[serde(default)]
    pub persist_store: Vec<PersistStore>,
    /// Who may call the worker-facing API.
    #[serde(default)]
    pub auth: AuthSection,
    /// How long the tables that only grow keep their rows.
    #[serde(default)]
    pub retention: RetentionSection,
}

/// `[retention]`: ages (`7days`, `12h`) after which rows are pruned.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    #[serde(default, with = "humantime_serde")]
    pub sched_log: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub audit_log: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub archived_jobs: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub unused_stores: Option<Duration>,
}

impl RetentionSection {
    pub fn rules(&self) -> crate::retention::RetentionRules {
        let d = crate::retention::RetentionRules::default();
        crate::retention::RetentionRules {
            sched_log: self.sched_log.unwrap_or(d.sched_log),
            audit_log: self.audit_log.unwrap_or(d.audit_log),
            archived_jobs: self.archived_jobs.unwrap_or(d.archived_jobs),
            unused_stores: self.unused_stores.unwrap_or(d.unused_stores),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `required` (default): every worker call carries its token; `optional`: calls without
    /// one are taken too (stock damocles-workers), as anonymous.
    #[serde(default)]
    pub workers: crate::auth::Mode,
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
    /// How WindowPoSt claims take different jobs: `skip_locked` (MySQL/MariaDB, its default)
    /// or `conditional` (any engine: SQLite's only mode, and MySQL-compatible ones without
    /// `SKIP LOCKED`, such as TiDB).
    pub claim: Option<crate::db::wdpost::ClaimMode>,
}

/// The WindowPoSt job keeper's timers (`wdpost_master.toml` of seed 002).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Jobs whose challenge window closed longer ago than this leave the queue (seed 002's
    /// `JobLifetime`, default 25h).
    #[serde(default, with = "humantime_serde")]
    pub job_lifetime: Option<Duration>,
    /// Partitions per WindowPoSt job, so that several provers share a large deadline (default
    /// 0: one job per deadline).
    pub partitions_per_job: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSection {
    pub enable: Option<bool>,
    pub miner: Option<u64>,
    pub sector_size: Option<String>,
    /// How long each WindowPoSt deadline is open (default 60s).
    #[serde(default, with = "humantime_serde")]
    pub deadline_interval: Option<Duration>,
    /// Deadlines per proving period (default 48, as on chain).
    pub deadlines: Option<u32>,
    /// Grant a new CC sector to every asking thread (default true); false: only what operators
    /// pledge (`util sealer sectors pledge`).
    pub auto_pledge: Option<bool>,
}

impl MockSection {
    pub fn deadline_interval(&self) -> Duration {
        self.deadline_interval.unwrap_or(Duration::from_secs(60))
    }

    pub fn deadlines(&self) -> u32 {
        self.deadlines.unwrap_or(48)
    }
}

impl TaskSection {
    pub fn rules(&self) -> KeeperRules {
        let d = KeeperRules::default();
        KeeperRules {
            timeout: self.timeout.unwrap_or(d.timeout),
            max_retry: self.max_retry.unwrap_or(d.max_retry),
            heartbeat_timeout: self.heartbeat_timeout.unwrap_or(d.heartbeat_timeout),
            retry_job_interval: self.retry_job_interval.unwrap_or(d.retry_job_interval),
            archive_job_interval: self.archive_job_interval.unwrap_or(d.archive_job_interval),
            should_archive: self.should_archive.unwrap_or(d.should_archive),
            job_lifetime: self.job_lifetime.unwrap_or(d.job_lifetime),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistStore {
    pub name: String,
    /// Where the store is mounted; when it is a directory on the manager's host, its free
    /// space decides whether a sector fits (`StoreReserveSpace`).
    pub path: String,
    /// Preference among stores with room (default 1; higher first).
    pub weight: Option<u64>,
    /// Never chosen to persist to (default false).
    pub read_only: Option<bool>,
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
            damocles_proof_types::seal_proof_for_size(size)
                .map_err(|r| err("mock.sector_size", r))?;
        }
        let backend = match &cfg.db.url {
            Some(url) => crate::db::backend_of(url).map_err(|e| err("db.url", e.to_string()))?,
            None => "sqlite",
        };
        if cfg.db.claim == Some(crate::db::wdpost::ClaimMode::SkipLocked) && backend != "mysql" {
            return Err(err(
                "db.claim",
                "skip_locked needs MySQL or MariaDB (db.url = \"mysql://…\"); SQLite claims \
                 with \"conditional\""
                    .into(),
            ));
        }
        if let (Some(min), Some(max)) = (cfg.db.min_connections, cfg.db.max_connections) {
            if min > max {
                return Err(err(
                    "db.min_connections",
                    format!("{min} is more than max_connections ({max})"),
                ));
            }
        }
        let r = &cfg.retention;
        for (key, age) in [
            ("retention.sched_log", r.sched_log),
            ("retention.audit_log", r.audit_log),
            ("retention.archived_jobs", r.archived_jobs),
            ("retention.unused_stores", r.unused_stores),
        ] {
            if age == Some(Duration::ZERO) {
                return Err(err(
                    key,
                    "must be longer than 0s: rows would go as soon as written".into(),
                ));
            }
        }
        if cfg.db.max_connections == Some(0) {
            return Err(err("db.max_connections", "must be at least 1".into()));
        }
        if cfg.mock.deadlines == Some(0) {
            return Err(err("mock.deadlines", "must be at least 1".into()));
        }
        if cfg.mock.deadline_interval() < Duration::from_secs(1) {
            return Err(err("mock.deadline_interval", "must be at least 1s".into()));
        }
        if cfg.task.max_retry == Some(0) {
            return Err(err(
                "task.max_retry",
                "must be at least 1 (the number of tries a job gets)".into(),
            ));
        }
        let t = &cfg.task;
        for (key, value) in [
            ("task.timeout", t.timeout),
            ("task.heartbeat_timeout", t.heartbeat_timeout),
            ("task.retry_job_interval", t.retry_job_interval),
            ("task.archive_job_interval", t.archive_job_interval),
            ("task.should_archive", t.should_archive),
        ] {
            if value.is_some_and(|d| d < Duration::from_secs(1)) {
                return Err(err(key, "must be at least 1s".into()));
            }
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
    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2500))]

        /// Generated manager configs (the examples with values replaced, lines removed,
        /// repeated or added): each loads, or is refused with its key and a reason.
        #[test]
        fn generated_configs_load_or_are_refused_by_key(
            edits in proptest::collection::vec(
                (
                    proptest::prelude::any::<usize>(),
                    proptest::prelude::any::<u8>(),
                    proptest::sample::select(config_file::ODD_VALUES).prop_map(String::from),
                ),
                1..6,
            )
        ) {
            let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config-examples"));
            for path in config_file::example_files(dir, "manager").unwrap() {
                let text = config_file::mutated(&std::fs::read_to_string(&path).unwrap(), &edits);
                match ManagerConfig::parse(&text, "gen.toml") {
                    Ok(cfg) => {
                        let _ = (cfg.mock.deadline_interval(), cfg.mock.deadlines(), cfg.task.rules());
                    }
                    Err(e) => {
                        proptest::prop_assert_eq!(&e.file, "gen.toml");
                        proptest::prop_assert!(!e.key.is_empty() && !e.reason.is_empty(), "{}", e);
                    }
                }
            }
        }
    }

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
                "[db]\nclaim = \"skip_locked\"",
                "db.claim",
                "needs MySQL or MariaDB",
            ),
            (
                "[db]\nclaim = \"fastest\"",
                "db.claim",
                "expected `skip_locked` or `conditional`",
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
            ("[task]\nmax_retry = 0", "task.max_retry", "at least 1"),
            (
                "[task]\nheartbeat_timeout = \"0s\"",
                "task.heartbeat_timeout",
                "at least 1s",
            ),
            ("[mock]\ndeadlines = 0", "mock.deadlines", "at least 1"),
            (
                "[mock]\ndeadline_interval = \"soon\"",
                "mock.deadline_interval",
                "expected a duration",
            ),
        ];
        for (text, key, reason) in cases {
            let e = ManagerConfig::parse(text, "manager.toml").expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(e.reason.contains(reason), "{text}: {e}");
        }
    }
}
