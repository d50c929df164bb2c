//! What a processor child is started with (`[[processors.<stage>]]`, resolved), and the
//! timeout a task gets when its entry sets none.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::wire::processor::Stage;

/// How long a task of `stage` on a sector of `sector_size` bytes may run before its child is
/// killed, when `[[processors.<stage>]] timeout` is not set: generous for a CPU-only machine at
/// 32GiB, proportionally less for smaller sectors, never under 30 minutes (a small sector's
/// first task also loads its parameters). A WindowPoSt is worthless after its 30-minute
/// deadline, whatever the size.
pub fn default_timeout(stage: Stage, sector_size: u64) -> Duration {
    const HOUR: u64 = 3600;
    const GIB32: u64 = 32 << 30;
    let at_32gib = match stage {
        Stage::WindowPost => return Duration::from_secs(HOUR / 2),
        Stage::Pc1 => 24 * HOUR,
        Stage::C2 | Stage::SnapProve | Stage::Unseal => 12 * HOUR,
        Stage::Pc2 | Stage::SnapEncode => 6 * HOUR,
        Stage::AddPieces => 2 * HOUR,
        Stage::TreeD | Stage::C1 => HOUR,
    };
    let scaled = u128::from(at_32gib) * u128::from(sector_size) / u128::from(GIB32);
    Duration::from_secs(u64::try_from(scaled).unwrap_or(u64::MAX).max(HOUR / 2))
}

/// How to start and keep one processor child.
#[derive(Debug, Clone)]
pub struct ProcessorSpec {
    /// The stage it serves.
    pub stage: Stage,
    /// Position among this stage's `[[processors.<stage>]]` entries.
    pub index: usize,
    /// The program (the worker itself by default).
    pub bin: PathBuf,
    /// Its arguments (`processor <stage>` by default).
    pub args: Vec<String>,
    /// Variables set in its environment.
    pub envs: HashMap<String, String>,
    /// Whether it inherits the worker's environment too.
    pub inherit_envs: bool,
    /// How long it has to print its ready line.
    pub stable_wait: Duration,
    /// Whether it is started again after it exits.
    pub auto_restart: bool,
    /// When the first child starts (`[processors] start`).
    pub start: StartAt,
    /// The CPUs it may run on (`0-3,8`).
    pub cpuset: Option<String>,
    /// Where to put cgroups when `cpuset` is set (cgroup v2 mount).
    pub cgroup_root: PathBuf,
    /// `[[processors.<stage>]] timeout`: how long a task may run before the child is killed
    /// (`None`: `default_timeout` of the stage and the sector's size).
    pub timeout: Option<Duration>,
    /// Longest line of output accepted from the child (`MAX_LINE`).
    pub max_line: usize,
    /// The worker's environment changes made through `WorkerSetEnv` / `WorkerRemoveEnv`,
    /// shared by every processor: a child started afterwards inherits them (with
    /// `inherit_envs`), as it would have inherited the worker's own environment.
    pub env_overlay: EnvOverlay,
}

/// When a processor's first child starts (`[processors] start`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// At its first task: an idle worker holds no children (a child that loaded the proof
    /// code is several megabytes, and there is one per configured stage).
    #[default]
    FirstTask,
    /// With the worker: a binary that cannot start or never gets ready shows at once.
    Startup,
}

/// Variables set (`Some`) or removed (`None`) in the environment processor children inherit.
pub type EnvOverlay = Arc<std::sync::RwLock<std::collections::BTreeMap<String, Option<String>>>>;

/// Refuses what no environment can hold: an empty name, `=` or NUL in the name, NUL in the value.
pub fn check_env(name: &str, value: Option<&str>) -> Result<(), String> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return Err(format!(
            "invalid environment variable name {name:?}: it must be non-empty, without '=' or NUL"
        ));
    }
    if value.is_some_and(|v| v.contains('\0')) {
        return Err(format!("invalid value for {name}: it contains NUL"));
    }
    Ok(())
}
