//! The calls a sector step makes: to the manager (with what its errors mean for the sector), to
//! processors (within the stage limits), and to the disk (persisting, wiping). Each returns a
//! [`Failure`] whose level says what the thread does about it.

use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use super::env::{ParamsStatus, ThreadEnv};
use super::failure::Failure;
use super::quota::disk_usage;
use super::sector::Sector;
use super::state::{EventKind, State};
use super::store::copy_into;
use super::table::{Outcome, Step, StepResult};
use crate::limits::StageLimits;
use crate::processors::Processors;
use crate::thread::activity::{set_activity, Activity, ActivityCell};
use crate::wire::jsonrpc::{CallError, NOT_YOURS, SECTOR_STATE_NOT_FOUND};
use crate::wire::method::Method;
use crate::wire::processor::Stage;
use crate::wire::venus::{
    OnChainState, PollStateResp, ReportStateReq, SectorId, SectorStateChange, SubmitResp,
    SubmitResult, WorkerIdentifier,
};
use crate::wire::venus_methods as m;

/// Removes the sector's files (all of the location's when `id` is none).
pub async fn wipe(env: &ThreadEnv, id: Option<SectorId>) -> Result<(), Failure> {
    let loc = env.location.clone();
    tokio::task::spawn_blocking(move || loc.wipe(id))
        .await
        .map_err(|e| Failure::critical(e.to_string()))?
        .map_err(|e| Failure::perm(format!("clean up sector files: {e}")))
}

/// Asks the manager which writable attached store takes the sector (`StoreReserveSpace`: it
/// keeps the room reserved until the sector is persisted or aborted), then copies `files`
/// there, each `(local path, folder in the store)`: the sealed file and the cache, or a
/// snap-up's update files.
pub async fn persist(
    env: &ThreadEnv,
    id: SectorId,
    files: Vec<(PathBuf, &'static str)>,
) -> Result<String, Failure> {
    let candidates: Vec<String> = env
        .attached
        .iter()
        .filter(|s| !s.readonly)
        .map(|s| s.name.clone())
        .collect();
    if candidates.is_empty() {
        return Err(Failure::perm(
            "no writable [[attached]] store to persist to",
        ));
    }
    let paths: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let size = tokio::task::spawn_blocking(move || paths.iter().map(|p| disk_usage(p)).sum())
        .await
        .map_err(|e| Failure::critical(e.to_string()))?;
    let chosen = rpc::<m::StoreReserveSpace>(env, (id, size, Some(candidates.clone())))
        .await?
        .ok_or_else(|| {
            Failure::temp(format!(
                "no persist store among {candidates:?} has {size} bytes free for {id} (StoreReserveSpace answered null)"
            ))
        })?;
    let store = env
        .attached
        .iter()
        .find(|s| s.name == chosen.name && !s.readonly)
        .ok_or_else(|| {
            Failure::perm(format!(
                "the manager chose store {:?}, which is not a writable [[attached]] store of this worker",
                chosen.name
            ))
        })?
        .clone();
    let name = id.to_string();
    let dest = store.path.clone();
    tokio::task::spawn_blocking(move || {
        files
            .iter()
            .try_for_each(|(src, folder)| copy_into(src, &dest.join(folder).join(&name)))
    })
    .await
    .map_err(|e| Failure::critical(e.to_string()))?
    .map_err(|e| Failure::temp(format!("persist {id} to {}: {e}", store.path.display())))?;
    Ok(store.name)
}

/// Where `[[attached]]` store `name` is mounted on this worker.
pub fn attached_path(env: &ThreadEnv, name: &str) -> Result<PathBuf, Failure> {
    env.attached
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.path.clone())
        .ok_or_else(|| {
            Failure::perm(format!(
                "store {name:?} is not attached on this worker: add an [[attached]] entry with that name"
            ))
        })
}

/// Waits until the parameters `params` reports on are ready, showing it as the thread's activity.
pub async fn wait_for_params(
    params: &watch::Receiver<ParamsStatus>,
    activity: &ActivityCell,
) -> Result<(), String> {
    let mut rx = params.clone();
    loop {
        let status = rx.borrow_and_update().clone();
        match status {
            ParamsStatus::Ready => return Ok(()),
            ParamsStatus::Failed(e) => return Err(e),
            ParamsStatus::Generating(what) => {
                set_activity(
                    activity,
                    Activity::waiting(format!("waiting for parameters: {what}")),
                );
                if rx.changed().await.is_err() {
                    return Err("parameter generator stopped".into());
                }
            }
        }
    }
}

/// Calls the manager. A sector the manager does not know is aborted; one it says is not this
/// worker's pauses the thread, files kept, until an operator sorts out which worker's token
/// this is; any other error is temporary (retried, then escalated).
pub async fn rpc<M: Method>(env: &ThreadEnv, params: M::Params) -> Result<M::Output, Failure> {
    let method = M::NAME;
    env.manager.call::<M>(params).await.map_err(|e| match &e {
        CallError::Rpc(r) if r.code == SECTOR_STATE_NOT_FOUND => {
            Failure::abort(format!("{method}: {e}"))
        }
        CallError::Rpc(r) if r.code == NOT_YOURS => Failure::perm(format!(
            "{method}: {e}; this worker's token names another worker than the one that was given the sector: check `util worker token list` and [worker] name"
        )),
        _ => Failure::temp(format!("{method}: {e}")),
    })
}

/// Runs `t` on a processor of `stage` for the step's sector; a failure pauses the thread.
pub async fn process<T: Serialize, O: DeserializeOwned>(
    s: &Step,
    stage: Stage,
    t: &T,
) -> Result<O, Failure> {
    let size = crate::wire::seal_proof::sector_size(s.proof()).unwrap_or(32 << 30);
    run_stage(
        &s.env.processors,
        &s.env.limits,
        &s.activity,
        stage,
        size,
        t,
    )
    .await
    .map_err(Failure::perm)
}

/// Runs `t` on a processor of `stage` once the stage limit lets it start; the activity shows the
/// wait, then the processor at work. Errors name the stage. The stage's slot is held until the
/// child answers, even if this future is dropped (a job taken away mid-proof).
pub async fn run_stage<T: Serialize, O: DeserializeOwned>(
    processors: &Processors,
    limits: &StageLimits,
    activity: &ActivityCell,
    stage: Stage,
    sector_size: u64,
    t: &T,
) -> Result<O, String> {
    let task = serde_json::to_value(t).map_err(|e| format!("{stage}: {e}"))?;
    set_activity(activity, Activity::waiting(format!("stage limit {stage}")));
    let slot = limits.acquire(stage).await;
    let out = processors
        .call(stage, sector_size, task, limits, slot, |proc| {
            set_activity(
                activity,
                Activity::Running {
                    since: tokio::time::Instant::now(),
                    proc: Some(proc),
                },
            )
        })
        .await;
    set_activity(activity, Activity::Idle);
    let out = out.map_err(|e| format!("{stage}: {e}"))?;
    serde_json::from_value(out).map_err(|e| format!("{stage}: unexpected output: {e}"))
}

/// Submits a message; Accepted and DuplicateSubmit go on, Rejected aborts the sector.
pub async fn submit<M: Method<Output = SubmitResp>>(
    env: &ThreadEnv,
    params: M::Params,
) -> Result<(), Failure> {
    let method = M::NAME;
    let resp = rpc::<M>(env, params).await?;
    let desc = resp.desc.unwrap_or_default();
    match SubmitResult::from_code(resp.res) {
        Some(SubmitResult::Accepted | SubmitResult::DuplicateSubmit) => Ok(()),
        Some(SubmitResult::Rejected) => Err(Failure::abort(format!("{method} rejected: {desc}"))),
        Some(other) => Err(Failure::perm(format!("{method}: {other:?}: {desc}"))),
        None => Err(Failure::perm(format!(
            "{method}: unknown result {}",
            resp.res
        ))),
    }
}

/// Polls a submitted message: `landed` once it is on chain, `resubmit` when it failed, a wait
/// of `rpc_polling_interval` while it is pending.
pub async fn poll<M: Method<Params = (SectorId,), Output = PollStateResp>>(
    s: Step,
    what: &str,
    resubmit: EventKind,
    landed: EventKind,
) -> StepResult {
    let resp = rpc::<M>(&s.env, (s.id()?,)).await?;
    let desc = resp.desc.unwrap_or_default();
    match OnChainState::from_code(resp.state) {
        Some(OnChainState::Landed) => s.moved(landed),
        Some(OnChainState::Failed) => s.moved(resubmit),
        Some(OnChainState::Pending | OnChainState::Packed) => Ok(Outcome::Wait {
            delay: s.env.sealing.rpc_polling_interval,
            reason: format!("waiting for {what} to land"),
        }),
        Some(OnChainState::ShouldAbort) => Err(Failure::abort(format!("{what}: {desc}"))),
        Some(st) => Err(Failure::perm(format!("{what} on chain: {st:?} {desc}"))),
        None => Err(Failure::perm(format!(
            "{what}: unknown state {}",
            resp.state
        ))),
    }
}

/// CommR and CommD, which every state after PC2 needs.
pub fn commitments(sector: &Sector) -> Result<([u8; 32], [u8; 32]), Failure> {
    match (sector.comm_r, sector.comm_d) {
        (Some(r), Some(d)) => Ok((r, d)),
        _ => Err(Failure::critical(
            "CommR or CommD is missing; resume with --state PC1Done",
        )),
    }
}

/// A 32-byte value of the record (`what` names it in the error).
pub fn bytes32(what: &str, v: Option<&Vec<u8>>) -> Result<[u8; 32], Failure> {
    let v = v.ok_or_else(|| Failure::critical(format!("{what} is missing")))?;
    <[u8; 32]>::try_from(v.as_slice())
        .map_err(|_| Failure::abort(format!("{what} has {} bytes, expected 32", v.len())))
}

/// A path as processors take it.
pub fn path_str(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// Tells the manager about a transition (best effort: the manager only records it).
pub async fn report_state(
    env: Arc<ThreadEnv>,
    id: SectorId,
    prev: State,
    next: State,
    event: EventKind,
) {
    let req = ReportStateReq {
        worker: WorkerIdentifier {
            instance: env.instance.clone(),
            location: env.location.root().display().to_string(),
        },
        state_change: SectorStateChange {
            prev: prev.to_string(),
            next: next.to_string(),
            event: event.to_string(),
        },
        // Failures are not transitions: they show in the thread's `last_error`.
        failure: None,
    };
    if let Err(e) = rpc::<m::ReportState>(&env, (id, req)).await {
        tracing::warn!(sector = %id, error = %e, "cannot report sector state");
    }
}
