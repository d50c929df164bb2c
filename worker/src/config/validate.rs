//! What a loaded config must satisfy beyond its types: values in range, names that exist,
//! sections that go together. Each refusal names the key and says what is allowed.

use std::time::Duration;

use damocles_actors::config_file::ConfigError;
use damocles_actors::size::parse_size;
use damocles_actors::thread::plan::PlanKind;
use damocles_actors::wire::processor::Stage;
use damocles_actors::wire::seal_proof;

use super::{Config, SealingSection};

impl Config {
    pub(super) fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: String, reason: String| ConfigError::new(file, key, reason);
        if self.worker.ping_interval == Some(Duration::ZERO) {
            return Err(err(
                "worker.ping_interval".into(),
                "must be longer than 0s (default 30s): the worker would ping without pause".into(),
            ));
        }
        for (i, t) in self.sealing_thread.iter().enumerate() {
            let plan = match t.plan.as_deref().map(str::parse::<PlanKind>).transpose() {
                Ok(p) => p.unwrap_or_default(),
                Err(e) => return Err(err(format!("sealing_thread[{i}].plan"), e)),
            };
            if plan != PlanKind::WdPost && t.location.as_deref().is_none_or(str::is_empty) {
                return Err(err(
                    format!("sealing_thread[{i}].location"),
                    format!("missing: a thread with plan {plan} needs a location"),
                ));
            }
            if let Some(sizes) = &t.allowed_sizes {
                let plain = SealingSection {
                    allowed_sizes: Some(sizes.clone()),
                    ..Default::default()
                };
                plain
                    .validate(&format!("sealing_thread[{i}]"))
                    .map_err(|(k, r)| err(k, r))?;
                let nested = t.sealing.as_ref().and_then(|s| s.allowed_sizes.as_ref());
                if nested.is_some_and(|n| n != sizes) {
                    return Err(err(
                        format!("sealing_thread[{i}].allowed_sizes"),
                        "differs from sealing.allowed_sizes of the same thread: keep one of them"
                            .into(),
                    ));
                }
            }
            if let Some(s) = &t.sealing {
                s.validate(&format!("sealing_thread[{i}].sealing"))
                    .map_err(|(k, r)| err(k, r))?;
                for (key, set) in [
                    ("disk_quota", s.disk_quota.is_some()),
                    ("ignore_out_of_space", s.ignore_out_of_space.is_some()),
                ] {
                    if set {
                        return Err(err(
                            format!("sealing_thread[{i}].sealing.{key}"),
                            format!("{key} is per worker: set it in [sealing]"),
                        ));
                    }
                }
            }
        }
        self.sealing
            .validate("sealing")
            .map_err(|(k, r)| err(k, r))?;
        let mut seen = std::collections::HashSet::new();
        for (i, t) in self.sealing_thread.iter().enumerate() {
            if let Some(loc) = &t.location {
                if !seen.insert(loc.clone()) {
                    return Err(err(
                        format!("sealing_thread[{i}].location"),
                        format!(
                            "{loc:?} is used by another thread; each thread needs its own location"
                        ),
                    ));
                }
            }
        }
        for (kind, map) in [
            (
                "concurrent",
                self.processors
                    .limitation
                    .concurrent
                    .keys()
                    .collect::<Vec<_>>(),
            ),
            (
                "staggered",
                self.processors.limitation.staggered.keys().collect(),
            ),
        ] {
            for stage in map {
                if let Err(e) = stage.parse::<Stage>() {
                    return Err(err(format!("processors.limitation.{kind}.{stage}"), e));
                }
            }
        }
        for (stage, entries) in self.processors.entries() {
            for (i, e) in entries.iter().enumerate() {
                for lock in e.locks.iter().flatten() {
                    if !self.processors.ext_locks.contains_key(lock) {
                        return Err(err(
                            format!("processors.{stage}[{i}].locks"),
                            format!("lock {lock:?} is not declared in [processors.ext_locks]"),
                        ));
                    }
                }
                if let Some(cpuset) = e.cgroup.as_ref().and_then(|c| c.cpuset.as_deref()) {
                    damocles_actors::processor::parse_cpuset(cpuset)
                        .map_err(|r| err(format!("processors.{stage}[{i}].cgroup.cpuset"), r))?;
                }
                if e.timeout == Some(Duration::ZERO) {
                    return Err(err(
                        format!("processors.{stage}[{i}].timeout"),
                        "must be longer than 0s (leave it out for the stage's default)".into(),
                    ));
                }
                if e.concurrent == Some(0) {
                    return Err(err(
                        format!("processors.{stage}[{i}].concurrent"),
                        "must be at least 1 (leave it out for no limit)".into(),
                    ));
                }
            }
        }
        if self.attached.is_empty()
            && self
                .sealing_thread
                .iter()
                .any(|t| t.plan() == PlanKind::Sealer)
        {
            return Err(err(
                "attached".into(),
                "missing: sealer threads need at least one [[attached]] store to persist sectors to".into(),
            ));
        }
        self.manager_urls()
            .map_err(|r| err("sector_manager.rpc_client.addr".into(), r))?;
        let rc = &self.sector_manager.rpc_client;
        if rc.token_file.is_some() && self.header_token().is_some() {
            return Err(err(
                "sector_manager.rpc_client.token_file".into(),
                "the token is also in rpc_client.headers (Authorization): keep one of them".into(),
            ));
        }
        for (k, v) in rc.headers.iter().flatten() {
            if reqwest_header_ok(k, v).is_err() {
                return Err(err(
                    format!("sector_manager.rpc_client.headers.{k}"),
                    "not a valid HTTP header name and value".into(),
                ));
            }
        }
        Ok(())
    }
}

impl SealingSection {
    pub(super) fn validate(&self, prefix: &str) -> Result<(), (String, String)> {
        for (i, s) in self.allowed_sizes.iter().flatten().enumerate() {
            let bytes = parse_size(s).map_err(|r| (format!("{prefix}.allowed_sizes[{i}]"), r))?;
            if seal_proof::for_size(bytes).is_none() {
                return Err((
                    format!("{prefix}.allowed_sizes[{i}]"),
                    format!(
                        "{s:?} is not a sector size; valid sizes: 2KiB, 8MiB, 512MiB, 32GiB, 64GiB"
                    ),
                ));
            }
        }
        if self.rpc_polling_interval == Some(Duration::ZERO) {
            return Err((
                format!("{prefix}.rpc_polling_interval"),
                "must be longer than 0s: the thread would ask the manager without pause".into(),
            ));
        }
        if let Some(s) = &self.min_deal_space {
            parse_size(s).map_err(|r| (format!("{prefix}.min_deal_space"), r))?;
        }
        if let Some(s) = &self.disk_quota {
            parse_size(s).map_err(|r| (format!("{prefix}.disk_quota"), r))?;
        }
        Ok(())
    }
}

/// Whether `name: value` can be sent as an HTTP header.
fn reqwest_header_ok(name: &str, value: &str) -> Result<(), ()> {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let value_ok = value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
    if name_ok && value_ok {
        Ok(())
    } else {
        Err(())
    }
}
