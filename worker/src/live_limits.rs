//! `[processors.limitation.concurrent]` and `[sealing] disk_quota` / `ignore_out_of_space` while
//! the worker runs. The config file is the one source of truth: an operator edits it (the worker
//! notices within a few seconds), or a remote change of a stage limit
//! (`VenusWorker.WorkerSetLimits`, forwarded by the manager) is written into it first, so it
//! survives a restart, and then applied. Lowering a limit stops nothing that runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context as _};
use damocles_actors::limits::{check_stage, StageLimits, StageUse};
use damocles_actors::sealing::quota::DiskQuota;
use damocles_actors::size::format_size;
use tracing::{info, warn};

use crate::config::Config;

/// How often the config file is looked at.
const POLL: Duration = Duration::from_secs(2);

pub struct LiveLimits {
    pub path: PathBuf,
    pub limits: Arc<StageLimits>,
    pub quota: Arc<DiskQuota>,
    /// Serialises remote changes: each reads, edits and writes the whole file.
    write: tokio::sync::Mutex<()>,
}

impl LiveLimits {
    pub fn new(path: PathBuf, limits: Arc<StageLimits>, quota: Arc<DiskQuota>) -> Self {
        LiveLimits {
            path,
            limits,
            quota,
            write: tokio::sync::Mutex::new(()),
        }
    }

    pub fn show(&self) -> BTreeMap<String, StageUse> {
        self.limits.concurrent()
    }

    /// Makes the running limits those of `cfg`, logging each change.
    fn apply(&self, cfg: &Config, why: &str) {
        let (bytes, ignore) = cfg.disk_quota();
        let old = self.quota.set(bytes, ignore);
        if old != (bytes, ignore) {
            info!(old = %format_size(old.0), new = %format_size(bytes), ignore_out_of_space = ignore, why, "disk quota changed");
        }
        let wanted = &cfg.processors.limitation.concurrent;
        let mut stages: Vec<String> = self.limits.concurrent().into_keys().collect();
        stages.extend(wanted.keys().cloned());
        stages.sort();
        stages.dedup();
        for stage in stages {
            let new = wanted.get(&stage).copied();
            let old = self.limits.set_concurrent(&stage, new);
            if old != new {
                info!(stage = %stage, old = %show(old), new = %show(new), why, "stage limit changed");
            }
        }
    }

    /// Writes `changes` into the config file (checked as a whole before it replaces the old
    /// one), then applies it. Returns the limits now in force.
    pub async fn set(
        &self,
        changes: BTreeMap<String, Option<usize>>,
    ) -> anyhow::Result<BTreeMap<String, StageUse>> {
        for stage in changes.keys() {
            check_stage(stage).map_err(|e| anyhow!(e))?;
        }
        let _one_at_a_time = self.write.lock().await;
        let path = self.path.clone();
        let cfg = tokio::task::spawn_blocking(move || write_limits(&path, &changes)).await??;
        self.apply(&cfg, "remote change");
        Ok(self.show())
    }

    /// Watches the config file and applies the limits of every valid new version.
    pub fn watch(self: Arc<Self>) {
        actix_rt::spawn(async move {
            let mut seen = modified(&self.path);
            loop {
                tokio::time::sleep(POLL).await;
                let now = modified(&self.path);
                if now == seen {
                    continue;
                }
                seen = now;
                let path = self.path.clone();
                match tokio::task::spawn_blocking(move || Config::load(&path)).await {
                    Ok(Ok(cfg)) => self.apply(&cfg, "config file changed"),
                    Ok(Err(e)) => {
                        warn!(error = %e, "config file changed but does not load; the running limits stay")
                    }
                    Err(e) => warn!(error = %e, "cannot reload the config file"),
                }
            }
        });
    }
}

fn show(limit: Option<usize>) -> String {
    limit.map_or_else(|| "none".into(), |n| n.to_string())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Sets or removes `processors.limitation.concurrent.<stage>` in the file, keeping its layout
/// and comments; the file is replaced only if the result is a valid config.
fn write_limits(path: &Path, changes: &BTreeMap<String, Option<usize>>) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("parse {}", path.display()))?;
    let concurrent = &mut doc["processors"]["limitation"]["concurrent"];
    if concurrent.is_none() {
        *concurrent = toml_edit::Item::Table(toml_edit::Table::new());
    }
    let table = concurrent.as_table_like_mut().ok_or_else(|| {
        anyhow!(
            "processors.limitation.concurrent in {} is not a table",
            path.display()
        )
    })?;
    for (stage, limit) in changes {
        match limit {
            Some(n) => {
                table.insert(stage, toml_edit::value(*n as i64));
            }
            None => {
                table.remove(stage);
            }
        }
    }
    let new_text = doc.to_string();
    let cfg = Config::parse(&new_text, &path.display().to_string())?;
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, &new_text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replace {}", path.display()))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_written_into_the_file_keeping_the_rest() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("w.toml");
        let text = "# my worker\n[sector_manager]\nrpc_client.addr = \"/ip4/127.0.0.1/tcp/1789\"\n\n[processors.limitation.concurrent]\npc1 = 2 # two at once\nc2 = 1\n";
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let changes = BTreeMap::from([
            ("pc1".to_string(), Some(1)),
            ("c2".to_string(), None),
            ("pc2".to_string(), Some(3)),
        ]);
        let cfg = write_limits(&path, &changes).unwrap_or_else(|e| panic!("{e:#}"));
        let want =
            std::collections::HashMap::from([("pc1".to_string(), 1), ("pc2".to_string(), 3)]);
        assert_eq!(cfg.processors.limitation.concurrent, want);
        let after = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(after.starts_with("# my worker\n"), "{after}");
        assert!(after.contains("pc1 = 1"), "{after}");
        assert!(!after.contains("\nc2 ="), "{after}");
        assert_eq!(
            Config::load(&path)
                .map(|c| c.processors.limitation.concurrent)
                .ok(),
            Some(want)
        );

        // A config that would not load is never written.
        std::fs::write(&path, "[sector_manager]\nrpc_client.addr = 5\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(write_limits(&path, &changes).is_err());
        assert!(std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains("addr = 5"));
    }
}
