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
/// and comments; the file is replaced only if the result is a valid config. The file named is
/// followed if it is a link; the new text takes the old one's mode and owner and is on disk
/// before it replaces it. An edit made by someone else while this one was being written is never
/// overwritten: the change starts over from the new text.
fn write_limits(path: &Path, changes: &BTreeMap<String, Option<usize>>) -> anyhow::Result<Config> {
    let target = std::fs::canonicalize(path).with_context(|| format!("find {}", path.display()))?;
    for _ in 0..5 {
        let text = std::fs::read_to_string(&target)
            .with_context(|| format!("read {}", target.display()))?;
        let new_text =
            with_limits(&text, changes).with_context(|| format!("edit {}", target.display()))?;
        // Checked with the name the operator knows, for errors they can find.
        let cfg = Config::parse(&new_text, &path.display().to_string())?;
        let meta = std::fs::metadata(&target)?;
        let tmp = target.with_extension("toml.new");
        let unchanged = || std::fs::read_to_string(&target).is_ok_and(|now| now == text);
        let written =
            damocles_actors::durable::replace_with(&target, &tmp, new_text.as_bytes(), |f| {
                use std::os::unix::fs::MetadataExt;
                f.set_permissions(meta.permissions())?;
                // Only root may give a file away; anyone else keeps their own ownership.
                let _ = std::os::unix::fs::fchown(f, Some(meta.uid()), Some(meta.gid()));
                if unchanged() {
                    Ok(())
                } else {
                    Err(std::io::Error::other(EDITED_MEANWHILE))
                }
            });
        match written {
            Ok(()) => return Ok(cfg),
            Err(e) if e.to_string() == EDITED_MEANWHILE => {
                let _ = std::fs::remove_file(&tmp);
                warn!(file = %target.display(), "config file changed while a limit change was written; applying the change to the new text");
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("replace {}", target.display()));
            }
        }
    }
    Err(anyhow!(
        "{} keeps changing while the limit change is written; try again",
        path.display()
    ))
}

const EDITED_MEANWHILE: &str = "the file was edited meanwhile";

/// `text` with `changes` made in `[processors.limitation.concurrent]`, which is created as a
/// table of its own (not an inline one) when the file has none.
fn with_limits(text: &str, changes: &BTreeMap<String, Option<usize>>) -> anyhow::Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    let mut node = doc.as_table_mut() as &mut dyn toml_edit::TableLike;
    for key in ["processors", "limitation"] {
        let item = node.entry(key).or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        });
        // An inline table (`processors = { limitation = {} }`) cannot hold a table section:
        // it becomes one.
        if item.is_inline_table() {
            if let Ok(t) = std::mem::take(item).into_table() {
                *item = toml_edit::Item::Table(t);
            }
        }
        node = item
            .as_table_like_mut()
            .ok_or_else(|| anyhow!("{key} is not a table"))?;
    }
    let table = node
        .entry("concurrent")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| anyhow!("processors.limitation.concurrent is not a table"))?;
    for (stage, limit) in changes {
        match limit {
            Some(n) => {
                let n = i64::try_from(*n).map_err(|_| anyhow!("{stage} = {n} is too large"))?;
                table.insert(stage, toml_edit::value(n));
            }
            None => {
                table.remove(stage);
            }
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linked_config_is_edited_at_its_target_keeping_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let real = dir.path().join("real.toml");
        let link = dir.path().join("w.toml");
        std::fs::write(
            &real,
            "[sector_manager]\nrpc_client.addr = \"/ip4/127.0.0.1/tcp/1789\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&real, &link).unwrap_or_else(|e| panic!("{e}"));
        write_limits(&link, &BTreeMap::from([("pc1".to_string(), Some(1))]))
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(std::fs::symlink_metadata(&link)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false));
        let meta = std::fs::metadata(&real).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert!(std::fs::read_to_string(&real)
            .unwrap_or_default()
            .contains("pc1 = 1"));
        assert_eq!(
            std::fs::read_dir(dir.path()).map(|d| d.count()).ok(),
            Some(2)
        );
    }

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
            Some(want.clone())
        );

        // A file without a [processors] section gets a table of its own, and it loads.
        let plain = "[sector_manager]\nrpc_client.addr = \"/ip4/127.0.0.1/tcp/1789\"\n";
        std::fs::write(&path, plain).unwrap_or_else(|e| panic!("{e}"));
        let cfg = write_limits(&path, &changes).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(cfg.processors.limitation.concurrent, want);
        let after = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            after.ends_with("\n[processors.limitation.concurrent]\npc1 = 1\npc2 = 3\n"),
            "{after}"
        );
        // So does one whose [processors] has entries but no limitation.
        let with_entries = format!("{plain}\n[[processors.pc1]]\nconcurrent = 2\n");
        std::fs::write(&path, &with_entries).unwrap_or_else(|e| panic!("{e}"));
        let cfg = write_limits(&path, &changes).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(cfg.processors.limitation.concurrent, want);
        assert_eq!(cfg.processors.pc1.map(|p| p.len()), Some(1));

        // A file an older version broke (an inline `processors` at the top) is mended too.
        let broken = format!("processors = {{ limitation = {{}} }}\n{plain}");
        std::fs::write(&path, &broken).unwrap_or_else(|e| panic!("{e}"));
        let cfg = write_limits(&path, &changes).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(cfg.processors.limitation.concurrent, want);

        // A config that would not load is never written.
        std::fs::write(&path, "[sector_manager]\nrpc_client.addr = 5\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(write_limits(&path, &changes).is_err());
        assert!(std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains("addr = 5"));
    }
}
