//! What a WindowPoSt slot does in each state: claim a job, prove it in a `window_post`
//! processor, hand the result back, and keep the job alive with heartbeats meanwhile.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::limits::StageLimits;
use crate::processors::Processors;
use crate::sealing::calls::{run_stage, wait_for_params};
use crate::sealing::env::{AttachedStore, ParamsStatus};
use crate::thread::activity::ActivityCell;
use crate::wire::jsonrpc::{CallError, Client, METHOD_NOT_FOUND, NOT_YOURS};
use crate::wire::processor::{PoStReplica, Stage, WindowPoStOutput, WindowPoStTask};
use crate::wire::venus::SectorId;
use crate::wire::venus_methods as m;
use crate::wire::venus_post::{AllocatePoStSpec, AllocatedPoStJob};

/// Everything a slot's steps need from the worker.
pub struct PostEnv {
    /// The worker's name.
    pub instance: String,
    /// The manager, with this slot's token and thread index in every call's headers.
    pub manager: Client,
    /// The worker's processor children.
    pub processors: Processors,
    /// The worker's stage limits.
    pub limits: Arc<StageLimits>,
    /// The stores whose files a job names.
    pub attached: Vec<AttachedStore>,
    /// Which jobs this slot takes (`sealing.allowed_miners` / `allowed_sizes`).
    pub spec: AllocatePoStSpec,
    /// How long to wait before asking again when there is no job.
    pub recover_interval: Duration,
    /// How often a held job is heartbeated.
    pub heartbeat_interval: Duration,
    /// Tries of `WdPoStFinishJob` when the manager cannot be reached.
    pub max_retries: u32,
    /// Sent by the daemon's parameter generator: the WindowPoSt parameters.
    pub params: watch::Receiver<ParamsStatus>,
}

/// Asks the manager for one job. An error says why none could be asked for.
pub async fn claim(env: &PostEnv) -> Result<Option<AllocatedPoStJob>, String> {
    let jobs = env
        .manager
        .call::<m::WdPoStAllocateJobs>((env.spec.clone(), 1, env.instance.clone()))
        .await
        .map_err(|e| match e {
            CallError::Rpc(r) if r.code == METHOD_NOT_FOUND => format!(
                "the manager does not serve WindowPoSt jobs ({}): start it with the WindowPoSt job queue enabled",
                r.message
            ),
            other => format!("cannot claim a WindowPoSt job: {other}"),
        })?;
    Ok(jobs.into_iter().next())
}

/// The files of a job's sectors, found through `[[attached]]` by store name.
pub fn replicas(
    attached: &[AttachedStore],
    job: &AllocatedPoStJob,
) -> Result<Vec<PoStReplica>, String> {
    let store = |name: &str| -> Result<PathBuf, String> {
        attached
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.path.clone())
            .ok_or_else(|| {
                format!(
                    "store {name:?} is not attached on this worker: add an [[attached]] entry with that name"
                )
            })
    };
    job.input
        .sectors
        .iter()
        .map(|s| {
            let name = SectorId {
                miner: job.input.miner_id,
                number: s.sector_id,
            }
            .to_string();
            let (sealed, cache) = if s.upgrade {
                ("update", "update-cache")
            } else {
                ("sealed", "cache")
            };
            Ok(PoStReplica {
                sector_id: s.sector_id,
                comm_r: s.comm_r,
                sealed_file: store(&s.accesses.sealed_file)?
                    .join(sealed)
                    .join(&name)
                    .display()
                    .to_string(),
                cache_dir: store(&s.accesses.cache_dir)?
                    .join(cache)
                    .join(&name)
                    .display()
                    .to_string(),
            })
        })
        .collect()
}

/// Computes the job's proof in a `window_post` processor (after its parameters are ready and
/// within the stage limit). Any error is the job's result: it goes back to the manager.
pub async fn prove(
    env: &PostEnv,
    job: &AllocatedPoStJob,
    activity: &ActivityCell,
) -> Result<WindowPoStOutput, String> {
    let task = WindowPoStTask {
        miner_id: job.input.miner_id,
        proof_type: job.input.proof_type.clone(),
        replicas: replicas(&env.attached, job)?,
        seed: job.input.seed,
    };
    wait_for_params(&env.params, activity).await?;
    // The default timeout of a WindowPoSt does not depend on the sector size.
    run_stage(
        &env.processors,
        &env.limits,
        activity,
        Stage::WindowPost,
        0,
        &task,
    )
    .await
}

/// Why the manager did not take a call about a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobCallError {
    /// The job is not ours any more: drop it.
    NotOwned(String),
    /// The manager could not be asked (down, overloaded): try again later.
    Unreachable(String),
}

fn job_call_error(e: CallError) -> JobCallError {
    match e {
        CallError::Rpc(r) if r.code == NOT_YOURS => JobCallError::NotOwned(r.message),
        other => JobCallError::Unreachable(other.to_string()),
    }
}

/// Keeps job `id` alive; refused when it is not this worker's any more.
pub async fn heartbeat(env: &PostEnv, id: &str) -> Result<(), JobCallError> {
    env.manager
        .call::<m::WdPoStHeartbeatJobs>((vec![id.to_string()], env.instance.clone()))
        .await
        .map_err(job_call_error)
}

/// Hands the result back, trying again every `recover_interval` while the manager cannot be
/// reached, up to `max_retries` more times.
pub async fn finish(
    env: &PostEnv,
    id: &str,
    result: &Result<WindowPoStOutput, String>,
) -> Result<(), JobCallError> {
    let (output, error) = match result {
        Ok(out) => (Some(out.clone()), String::new()),
        Err(e) => (None, e.clone()),
    };
    let mut tries = 0;
    loop {
        let res = env
            .manager
            .call::<m::WdPoStFinishJob>((id.to_string(), output.clone(), error.clone()))
            .await
            .map_err(job_call_error);
        match res {
            Err(JobCallError::Unreachable(e)) if tries < env.max_retries => {
                tries += 1;
                tracing::warn!(job = %id, error = %e, tries, "cannot hand the WindowPoSt result back; trying again");
                tokio::time::sleep(env.recover_interval).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::venus_post::{PoStInput, PoStSectorAccesses, PoStSectorInfo};

    fn job(stores: &[(&str, bool)]) -> AllocatedPoStJob {
        AllocatedPoStJob {
            id: "j".into(),
            input: PoStInput {
                sectors: stores
                    .iter()
                    .enumerate()
                    .map(|(i, (store, upgrade))| PoStSectorInfo {
                        sector_id: i as u64 + 1,
                        comm_r: [i as u8; 32],
                        upgrade: *upgrade,
                        accesses: PoStSectorAccesses {
                            sealed_file: store.to_string(),
                            cache_dir: store.to_string(),
                        },
                    })
                    .collect(),
                miner_id: 10000,
                proof_type: "StackedDrgWindow2KiBV1_2".into(),
                seed: [1; 32],
            },
        }
    }

    #[test]
    fn replicas_are_found_in_the_attached_stores_by_name() {
        let attached = vec![
            AttachedStore {
                name: "a".into(),
                path: "/mnt/a".into(),
                readonly: true,
            },
            AttachedStore {
                name: "b".into(),
                path: "/mnt/b".into(),
                readonly: false,
            },
        ];
        let r = replicas(&attached, &job(&[("b", false), ("a", true)])).unwrap_or_default();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].sealed_file, "/mnt/b/sealed/s-t010000-1");
        assert_eq!(r[0].cache_dir, "/mnt/b/cache/s-t010000-1");
        assert_eq!(r[1].sealed_file, "/mnt/a/update/s-t010000-2");
        assert_eq!(r[1].cache_dir, "/mnt/a/update-cache/s-t010000-2");
        assert_eq!(r[1].comm_r, [1; 32]);

        let err = replicas(&attached, &job(&[("c", false)])).unwrap_err();
        assert!(err.contains("store \"c\" is not attached"), "{err}");
    }
}
