//! `damocles-worker.toml`: one typed config, parsed once, with every default in one place.
//! Unknown keys, wrong types and bad values are refused with the file, the key and the reason.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use damocles_actors::config_file;
use damocles_actors::processor::StartAt;
use damocles_actors::size::parse_size;
use damocles_actors::thread::plan::PlanKind;
use damocles_actors::wire::auth::bearer;
use damocles_actors::wire::processor::Stage;
use damocles_actors::wire::worker_api::DEFAULT_PORT;
use serde::Deserialize;

mod validate;

pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_STABLE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub worker: WorkerSection,
    pub sector_manager: SectorManagerSection,
    #[serde(default)]
    pub sealing: SealingSection,
    #[serde(default)]
    pub sealing_thread: Vec<ThreadSection>,
    #[serde(default)]
    pub attached: Vec<AttachedSection>,
    #[serde(default)]
    pub processors: ProcessorsSection,
    #[serde(default)]
    #[allow(dead_code)]
    pub metrics: MetricsSection,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSection {
    /// Instance name; default: the local IP used to reach the manager.
    pub name: Option<String>,
    #[serde(default)]
    pub rpc_server: RpcServerSection,
    #[serde(default, with = "humantime_serde")]
    pub ping_interval: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcServerSection {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Whether `WorkerList`, `WorkerVersion` and `WorkerLimits` answer callers without the
    /// manager's credential (default true: a damocles-manager's `util worker info` cannot sign).
    pub open_reads: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectorManagerSection {
    pub rpc_client: RpcClientSection,
    /// Accepted for damocles compatibility; not used by this worker yet.
    #[allow(dead_code)]
    pub piece_token: Option<String>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcClientSection {
    /// A multiaddr (`/ip4/127.0.0.1/tcp/1789`) or a URL; or a list of them, managers on one
    /// database, used in turn when one cannot take calls.
    #[serde(deserialize_with = "one_or_many")]
    pub addr: Vec<String>,
    /// Sent with every call to the manager, as damocles' key is spelled; the token can ride
    /// here: `{ Authorization = "Bearer <token>" }`.
    pub headers: Option<HashMap<String, String>>,
    /// Ours: a file holding the worker's token (from `damocles-manager util worker token
    /// create <name>`), sent as `Authorization: Bearer <token>`; relative to the config file.
    pub token_file: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Accepted for damocles compatibility: this worker always serves `GET /metrics` on its
    /// management port instead.
    #[allow(dead_code)]
    pub enable: Option<bool>,
    /// Accepted for damocles compatibility (see `enable`).
    #[allow(dead_code)]
    pub http_listen: Option<String>,
}

/// `[sealing]`, and `sealing.*` inside a thread (merged field by field over the global one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealingSection {
    pub allowed_miners: Option<Vec<u64>>,
    pub allowed_sizes: Option<Vec<String>>,
    /// A sealer thread asks for deals for each new sector.
    pub enable_deals: Option<bool>,
    /// Accepted for damocles compatibility; not used by this worker yet.
    #[allow(dead_code)]
    pub disable_cc: Option<bool>,
    /// At most this many deals a sector.
    pub max_deals: Option<u64>,
    pub min_deal_space: Option<String>,
    pub max_retries: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub seal_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub recover_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub rpc_polling_interval: Option<Duration>,
    /// Accepted for damocles compatibility; not used by this worker yet.
    #[allow(dead_code)]
    pub ignore_proof_check: Option<bool>,
    /// Accepted for damocles compatibility; not used by this worker yet.
    #[allow(dead_code)]
    pub request_task_max_retries: Option<u32>,
    /// Accepted for damocles compatibility; not used by this worker yet.
    #[allow(dead_code)]
    pub verify_after_pc2: Option<bool>,
    /// Bytes the worker's sealing locations may use (`"2TiB"`; 0 = no limit). `[sealing]` only.
    pub disk_quota: Option<String>,
    /// Skip the disk quota check. `[sealing]` only.
    pub ignore_out_of_space: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadSection {
    pub location: Option<String>,
    pub plan: Option<String>,
    /// The same as `sealing.allowed_sizes`, where seed 002's example puts it.
    pub allowed_sizes: Option<Vec<String>>,
    pub sealing: Option<SealingSection>,
}

impl ThreadSection {
    /// The thread's plan (`sealer` when unset; an unknown name is refused when the file loads).
    pub fn plan(&self) -> PlanKind {
        self.plan
            .as_deref()
            .and_then(|p| p.parse().ok())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachedSection {
    pub name: Option<String>,
    pub location: String,
    pub readonly: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorsSection {
    /// When each processor's child starts: `"first_task"` (default) or `"startup"`.
    #[serde(default)]
    pub start: StartAt,
    #[serde(default)]
    pub limitation: LimitationSection,
    #[serde(default)]
    pub ext_locks: HashMap<String, usize>,
    pub add_pieces: Option<Vec<ProcessorSection>>,
    pub tree_d: Option<Vec<ProcessorSection>>,
    pub pc1: Option<Vec<ProcessorSection>>,
    pub pc2: Option<Vec<ProcessorSection>>,
    pub c1: Option<Vec<ProcessorSection>>,
    pub c2: Option<Vec<ProcessorSection>>,
    pub snap_encode: Option<Vec<ProcessorSection>>,
    pub snap_prove: Option<Vec<ProcessorSection>>,
    pub unseal: Option<Vec<ProcessorSection>>,
    pub window_post: Option<Vec<ProcessorSection>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitationSection {
    #[serde(default)]
    pub concurrent: HashMap<String, usize>,
    #[serde(default)]
    pub staggered: HashMap<String, humantime_serde::Serde<Duration>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorSection {
    pub bin: Option<String>,
    pub args: Option<Vec<String>>,
    pub envs: Option<HashMap<String, String>>,
    pub concurrent: Option<usize>,
    pub cgroup: Option<CgroupSection>,
    #[serde(default, with = "humantime_serde")]
    pub stable_wait: Option<Duration>,
    /// How long one task may run before the child is killed (default: by stage and size).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    pub auto_restart: Option<bool>,
    pub inherit_envs: Option<bool>,
    pub locks: Option<Vec<String>>,
    pub numa_preferred: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupSection {
    /// Accepted for damocles compatibility; not used by this worker yet.
    #[allow(dead_code)]
    pub group_name: Option<String>,
    pub cpuset: Option<String>,
}

pub use damocles_actors::config_file::ConfigError;

/// The `sealing` values one thread runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveSealing {
    pub allowed_miners: Option<Vec<u64>>,
    pub allowed_sizes: Option<Vec<u64>>,
    pub max_retries: u32,
    pub seal_interval: Duration,
    pub recover_interval: Duration,
    pub rpc_polling_interval: Duration,
    pub enable_deals: bool,
    pub max_deals: Option<u64>,
    pub min_deal_space: Option<u64>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::parse(&config_file::read(path)?, &path.display().to_string())
    }

    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let cfg: Config = config_file::parse(text, file)?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// The token in `rpc_client.headers`' Authorization header, if any.
    fn header_token(&self) -> Option<String> {
        let headers = self.sector_manager.rpc_client.headers.as_ref()?;
        let (_, v) = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?;
        bearer(Some(v)).map(String::from)
    }

    /// The managers' JSON-RPC URLs, in the order they are tried.
    pub fn manager_urls(&self) -> Result<Vec<String>, String> {
        let addrs = &self.sector_manager.rpc_client.addr;
        if addrs.is_empty() {
            return Err("an empty list: name at least one manager".into());
        }
        addrs
            .iter()
            .map(|a| crate::manager_addr::to_url(a))
            .collect()
    }

    /// The worker's token: from `rpc_client.token_file`, else from its headers.
    /// A relative `token_file` is taken from the config file's folder, so the daemon and the CLI
    /// find the same file wherever they are started.
    pub fn token(&self, config: &Path) -> Result<Option<String>, ConfigError> {
        let file = config.display().to_string();
        match &self.sector_manager.rpc_client.token_file {
            Some(name) => {
                let path = config.parent().unwrap_or(Path::new(".")).join(name);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::new(
                        &file,
                        "sector_manager.rpc_client.token_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let t = text.trim();
                if t.is_empty() {
                    return Err(ConfigError::new(
                        &file,
                        "sector_manager.rpc_client.token_file",
                        format!("{} is empty: put the output of `damocles-manager util worker token create <name>` in it", path.display()),
                    ));
                }
                Ok(Some(t.to_string()))
            }
            None => Ok(self.header_token()),
        }
    }

    /// The headers of every call to the manager: `rpc_client.headers`, and the token file's
    /// token as `Authorization: Bearer`.
    pub fn manager_headers(&self, token: &Option<String>) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .sector_manager
            .rpc_client
            .headers
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let (Some(t), Some(_)) = (token, &self.sector_manager.rpc_client.token_file) {
            out.push(("Authorization".into(), format!("Bearer {t}")));
        }
        out
    }

    /// `(stage, entries)` for every stage with `[[processors.<stage>]]` entries.
    pub fn processor_entries(&self) -> Vec<(Stage, &Vec<ProcessorSection>)> {
        self.processors.entries()
    }

    pub fn rpc_port(&self) -> u16 {
        self.worker.rpc_server.port.unwrap_or(DEFAULT_PORT)
    }

    pub fn rpc_listen(&self) -> String {
        format!(
            "{}:{}",
            self.worker.rpc_server.host.as_deref().unwrap_or("0.0.0.0"),
            self.rpc_port()
        )
    }

    /// Global `[sealing]` merged with a thread's overrides, defaults filled in.
    pub fn sealing_for(&self, thread: &ThreadSection) -> EffectiveSealing {
        let g = &self.sealing;
        let t = thread.sealing.clone().unwrap_or_default();
        let sizes = t
            .allowed_sizes
            .or_else(|| thread.allowed_sizes.clone())
            .or_else(|| g.allowed_sizes.clone());
        EffectiveSealing {
            allowed_miners: t.allowed_miners.or_else(|| g.allowed_miners.clone()),
            // Validated at load: every entry parses.
            allowed_sizes: sizes.map(|v| v.iter().filter_map(|s| parse_size(s).ok()).collect()),
            max_retries: t.max_retries.or(g.max_retries).unwrap_or(5),
            seal_interval: t
                .seal_interval
                .or(g.seal_interval)
                .unwrap_or(Duration::from_secs(30)),
            recover_interval: t
                .recover_interval
                .or(g.recover_interval)
                .unwrap_or(Duration::from_secs(60)),
            rpc_polling_interval: t
                .rpc_polling_interval
                .or(g.rpc_polling_interval)
                .unwrap_or(Duration::from_secs(180)),
            enable_deals: t.enable_deals.or(g.enable_deals).unwrap_or(false),
            max_deals: t.max_deals.or(g.max_deals),
            // Validated at load: it parses.
            min_deal_space: t
                .min_deal_space
                .or_else(|| g.min_deal_space.clone())
                .and_then(|s| parse_size(&s).ok()),
        }
    }

    /// `[sealing] disk_quota` in bytes (0: none) and `ignore_out_of_space`.
    pub fn disk_quota(&self) -> (u64, bool) {
        let bytes = self
            .sealing
            .disk_quota
            .as_deref()
            .and_then(|s| parse_size(s).ok())
            .unwrap_or(0);
        (bytes, self.sealing.ignore_out_of_space.unwrap_or(false))
    }

    pub fn attached_stores(&self) -> Vec<(String, PathBuf, bool)> {
        self.attached
            .iter()
            .map(|a| {
                (
                    a.name.clone().unwrap_or_else(|| a.location.clone()),
                    PathBuf::from(&a.location),
                    a.readonly.unwrap_or(false),
                )
            })
            .collect()
    }
}

impl ProcessorsSection {
    fn entries(&self) -> Vec<(Stage, &Vec<ProcessorSection>)> {
        [
            (Stage::AddPieces, &self.add_pieces),
            (Stage::TreeD, &self.tree_d),
            (Stage::Pc1, &self.pc1),
            (Stage::Pc2, &self.pc2),
            (Stage::C1, &self.c1),
            (Stage::C2, &self.c2),
            (Stage::SnapEncode, &self.snap_encode),
            (Stage::SnapProve, &self.snap_prove),
            (Stage::Unseal, &self.unseal),
            (Stage::WindowPost, &self.window_post),
        ]
        .into_iter()
        .filter_map(|(s, e)| e.as_ref().map(|e| (s, e)))
        .collect()
    }
}

#[cfg(test)]
mod tests;

/// The effective config is logged: the token in a header must not be.
impl std::fmt::Debug for RpcClientSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Option<Vec<(&String, &str)>> = self.headers.as_ref().map(|h| {
            h.iter()
                .map(|(k, v)| {
                    let shown = if k.eq_ignore_ascii_case("authorization") {
                        "<redacted>"
                    } else {
                        v.as_str()
                    };
                    (k, shown)
                })
                .collect()
        });
        f.debug_struct("RpcClientSection")
            .field("addr", &self.addr)
            .field("headers", &headers)
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// A string, or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a manager address, or a list of them")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut all = Vec::new();
            while let Some(one) = seq.next_element()? {
                all.push(one);
            }
            Ok(all)
        }
    }
    d.deserialize_any(V)
}
