//! What a sealer thread does in each state: the I/O half of the plan. One call runs one step and
//! returns the event it produced (or how long to wait before trying again); the thread applies it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use super::failure::Failure;
use super::plan::State;
use super::quota::DiskQuota;
use super::sector::{Event, Sector};
use super::store::{copy_into, Location};
use crate::limits::StageLimits;
use crate::processors::Processors;
use crate::wire::jsonrpc::{CallError, Client, SECTOR_STATE_NOT_FOUND};
use crate::wire::processor as task;
use crate::wire::venus::{
    prover_id, AllocateSectorSpec, AllocatedSector, OnChainState, PollStateResp,
    PreCommitOnChainInfo, ProofOnChainInfo, ReportStateReq, SectorFailure, SectorId,
    SectorStateChange, SubmitResp, SubmitResult, Ticket, WaitSeedResp, WorkerIdentifier,
};
use crate::wire::worker_api::ThreadState;

/// `[sealing]` as one thread sees it (global values merged with its overrides).
#[derive(Debug, Clone)]
pub struct SealingParams {
    pub allowed_miners: Option<Vec<u64>>,
    pub allowed_proof_types: Option<Vec<u64>>,
    pub max_retries: u32,
    pub seal_interval: Duration,
    pub recover_interval: Duration,
    pub rpc_polling_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct AttachedStore {
    pub name: String,
    pub path: PathBuf,
    pub readonly: bool,
}

/// Whether the Groth parameters that C2 and WindowPoSt need are there yet.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamsStatus {
    Generating(String),
    Ready,
    Failed(String),
}

/// Everything a thread's steps need from the worker.
pub struct ThreadEnv {
    pub instance: String,
    /// This thread's index, sent with `AllocateSector` for the manager's decision log.
    pub index: usize,
    pub location: Location,
    pub manager: Client,
    pub processors: Processors,
    pub limits: Arc<StageLimits>,
    pub attached: Vec<AttachedStore>,
    pub sealing: SealingParams,
    /// Sent by the daemon's parameter generator; C2 waits on it.
    pub params: watch::Receiver<ParamsStatus>,
    /// The worker's `disk_quota`, shared by its sealer threads.
    pub quota: Arc<DiskQuota>,
}

/// What the thread is doing inside a step, for `worker list`.
#[derive(Debug, Clone, PartialEq)]
pub enum Activity {
    Idle,
    Waiting {
        since: Instant,
        reason: String,
    },
    Running {
        since: Instant,
        proc: Option<String>,
    },
}

impl Activity {
    /// What `worker list` shows for a thread doing this, paused since `paused_at` if it is.
    pub fn thread_state(self, paused_at: Option<Instant>) -> ThreadState {
        match (paused_at, self) {
            (Some(at), _) => ThreadState::Paused {
                elapsed: at.elapsed().as_secs(),
            },
            (None, Activity::Running { since, proc }) => ThreadState::Running {
                elapsed: since.elapsed().as_secs(),
                proc,
            },
            (None, Activity::Waiting { since, reason }) => ThreadState::Waiting {
                elapsed: since.elapsed().as_secs(),
                reason: Some(reason),
            },
            (None, Activity::Idle) => ThreadState::Idle,
        }
    }
}

/// Shared between a thread and its running step: the step writes, the thread reads.
pub type ActivityCell = Arc<Mutex<Activity>>;

pub fn set_activity(cell: &ActivityCell, a: Activity) {
    if let Ok(mut g) = cell.lock() {
        *g = a;
    }
}

/// How a step ended when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Apply this event.
    Event(Event),
    /// Nothing to do yet (polling): run the same state again after `delay`.
    Wait { delay: Duration, reason: String },
    /// The thread may not take new work now (a quota): shown as waiting, with the reason, and
    /// tried again after `delay`.
    Held { delay: Duration, reason: String },
    /// The sector is finished or aborted and cleaned up: start over with a new one.
    Done,
}

/// Runs the step of the sector's current state.
pub async fn run(
    env: Arc<ThreadEnv>,
    sector: Sector,
    activity: ActivityCell,
) -> Result<Outcome, Failure> {
    let id = sector.id();
    match (sector.state(), id) {
        (State::Empty, _) => allocate(&env).await,
        (State::Aborted, _) => abort(&env, &sector).await,
        (_, None) => Err(Failure::critical(format!(
            "sector record in state {} has no sector id",
            sector.state()
        ))),
        (state, Some(id)) => step(&env, &sector, state, id, &activity).await,
    }
}

async fn step(
    env: &ThreadEnv,
    sector: &Sector,
    state: State,
    id: SectorId,
    activity: &ActivityCell,
) -> Result<Outcome, Failure> {
    let proof = sector.allocated.as_ref().map_or(0, |a| a.proof_type);
    let event = match state {
        State::Allocated => {
            let _deals: Value = rpc(
                env,
                "AcquireDeals",
                json!([id, {"MaxDeals": null, "MinUsedSpace": null}]),
            )
            .await?;
            Event::AcquireDeals
        }
        State::DealsAcquired => {
            let t = task::AddPiecesTask {
                seal_proof: proof,
                staged_file: path_str(&env.location.staged(id)),
            };
            let out: task::AddPiecesOutput = process(env, activity, "add_pieces", &t).await?;
            Event::AddPiece(out.pieces)
        }
        State::PieceAdded => {
            let t = task::TreeDTask {
                seal_proof: proof,
                pieces: sector.pieces.clone(),
            };
            let out: task::TreeDOutput = process(env, activity, "tree_d", &t).await?;
            Event::BuildTreeD { comm_d: out.comm_d }
        }
        State::TreeDBuilt => {
            let ticket: Ticket = rpc(env, "AssignTicket", json!([id])).await?;
            Event::AssignTicket(ticket)
        }
        State::TicketAssigned => {
            let cache = env.location.cache(id);
            tokio::fs::create_dir_all(&cache)
                .await
                .map_err(|e| Failure::perm(format!("create {}: {e}", cache.display())))?;
            let t = task::PC1Task {
                seal_proof: proof,
                cache_dir: path_str(&cache),
                staged_file: path_str(&env.location.staged(id)),
                sealed_file: path_str(&env.location.sealed(id)),
                prover_id: prover_id(id.miner),
                sector_number: id.number,
                ticket: bytes32("ticket", sector.ticket.as_ref().map(|t| &t.ticket))?,
                pieces: sector.pieces.clone(),
            };
            Event::PC1(process(env, activity, "pc1", &t).await?)
        }
        State::PC1Done => {
            let t = task::PC2Task {
                seal_proof: proof,
                pc1_out: sector.pc1_out.clone().ok_or_else(|| {
                    Failure::critical("PC1 output is missing; resume with --state TicketAssigned")
                })?,
                staged_file: path_str(&env.location.staged(id)),
                cache_dir: path_str(&env.location.cache(id)),
                sealed_file: path_str(&env.location.sealed(id)),
            };
            let out: task::PC2Output = process(env, activity, "pc2", &t).await?;
            Event::PC2 {
                comm_r: out.comm_r,
                comm_d: out.comm_d,
            }
        }
        State::PC2Done => {
            let (comm_r, comm_d) = commitments(sector)?;
            let info = PreCommitOnChainInfo {
                comm_r,
                comm_d,
                ticket: sector
                    .ticket
                    .clone()
                    .ok_or_else(|| Failure::critical("ticket is missing"))?,
                deals: vec![],
            };
            submit(
                env,
                "SubmitPreCommit",
                json!([sector.allocated, info, false]),
            )
            .await?;
            Event::SubmitPC
        }
        State::PCSubmitted => {
            return poll(
                env,
                "PollPreCommitState",
                id,
                "pre-commit",
                Event::ReSubmitPC,
                Event::CheckPC,
            )
            .await
        }
        State::PCLanded => {
            let instance = persist(env, id).await?;
            Event::Persist { instance }
        }
        State::Persisted => {
            let instance = sector
                .persist_instance
                .clone()
                .ok_or_else(|| Failure::critical("persist store is missing"))?;
            let ok: bool = rpc(env, "SubmitPersistedEx", json!([id, instance, false])).await?;
            if !ok {
                return Err(Failure::perm(format!(
                    "manager refused the persisted files of {id} in store {instance}"
                )));
            }
            Event::SubmitPersistance
        }
        State::PersistanceSubmitted => {
            let resp: WaitSeedResp = rpc(env, "WaitSeed", json!([id])).await?;
            match (resp.should_wait, resp.seed) {
                (false, Some(seed)) => Event::AssignSeed(seed),
                (_, _) => {
                    return Ok(Outcome::Wait {
                        delay: Duration::from_secs(resp.delay.max(1)),
                        reason: "waiting for seed".into(),
                    })
                }
            }
        }
        State::SeedAssigned => {
            let (comm_r, comm_d) = commitments(sector)?;
            let t = task::C1Task {
                seal_proof: proof,
                cache_dir: path_str(&env.location.cache(id)),
                sealed_file: path_str(&env.location.sealed(id)),
                prover_id: prover_id(id.miner),
                sector_number: id.number,
                ticket: bytes32("ticket", sector.ticket.as_ref().map(|t| &t.ticket))?,
                seed: bytes32("seed", sector.seed.as_ref().map(|s| &s.seed))?,
                pieces: sector.pieces.clone(),
                comm_r,
                comm_d,
            };
            Event::C1(process(env, activity, "c1", &t).await?)
        }
        State::C1Done => {
            wait_for_params(&env.params, activity)
                .await
                .map_err(Failure::perm)?;
            let t = task::C2Task {
                seal_proof: proof,
                c1_out: sector.c1_out.clone().ok_or_else(|| {
                    Failure::critical("C1 output is missing; resume with --state SeedAssigned")
                })?,
                prover_id: prover_id(id.miner),
                sector_number: id.number,
            };
            let out: task::C2Output = process(env, activity, "c2", &t).await?;
            Event::C2 { proof: out.proof }
        }
        State::C2Done => {
            let proof = ProofOnChainInfo {
                proof: sector.proof.clone().ok_or_else(|| {
                    Failure::critical("proof is missing; resume with --state C1Done")
                })?,
            };
            submit(env, "SubmitProof", json!([id, proof, false])).await?;
            Event::SubmitProof
        }
        State::ProofSubmitted => {
            return poll(
                env,
                "PollProofState",
                id,
                "proof",
                Event::ReSubmitProof,
                Event::Finish,
            )
            .await
        }
        State::Finished => {
            let _: Value = rpc(env, "ReportFinalized", json!([id])).await?;
            wipe(env, Some(id)).await?;
            return Ok(Outcome::Done);
        }
        other => {
            return Err(Failure::abort(format!(
                "unexpected state {other} in sealer planner"
            )))
        }
    };
    Ok(Outcome::Event(event))
}

async fn allocate(env: &ThreadEnv) -> Result<Outcome, Failure> {
    let (quota, types) = (env.quota.clone(), env.sealing.allowed_proof_types.clone());
    let refusal = tokio::task::spawn_blocking(move || quota.refusal(types.as_deref()))
        .await
        .map_err(|e| Failure::critical(e.to_string()))?;
    if let Some(reason) = refusal {
        return Ok(Outcome::Held {
            delay: env.sealing.recover_interval,
            reason,
        });
    }
    let spec = AllocateSectorSpec {
        allowed_miners: env.sealing.allowed_miners.clone(),
        allowed_proof_types: env.sealing.allowed_proof_types.clone(),
    };
    // Any failure to get a new sector means "nothing to do now", as in damocles.
    // The 2nd and 3rd parameters (who asks) are our extension: the manager refuses a draining
    // worker and logs each grant with the thread.
    match rpc::<Option<AllocatedSector>>(
        env,
        "AllocateSector",
        json!([spec, env.instance, env.index]),
    )
    .await
    {
        Ok(Some(a)) => Ok(Outcome::Event(Event::Allocate(a))),
        Ok(None) => Ok(Outcome::Wait {
            delay: env.sealing.recover_interval,
            reason: "no sector allocated".into(),
        }),
        Err(e) => Ok(Outcome::Wait {
            delay: env.sealing.recover_interval,
            reason: format!("cannot allocate a sector: {e}"),
        }),
    }
}

async fn abort(env: &ThreadEnv, sector: &Sector) -> Result<Outcome, Failure> {
    if let Some(id) = sector.id() {
        let reason = sector
            .abort_reason
            .clone()
            .unwrap_or_else(|| "aborted".into());
        let _: Value = rpc(env, "ReportAborted", json!([id, reason])).await?;
    }
    wipe(env, sector.id()).await?;
    Ok(Outcome::Done)
}

async fn wipe(env: &ThreadEnv, id: Option<SectorId>) -> Result<(), Failure> {
    let loc = env.location.clone();
    tokio::task::spawn_blocking(move || loc.wipe(id))
        .await
        .map_err(|e| Failure::critical(e.to_string()))?
        .map_err(|e| Failure::perm(format!("clean up sector files: {e}")))
}

/// Copies the sealed file and cache to the first writable attached store.
async fn persist(env: &ThreadEnv, id: SectorId) -> Result<String, Failure> {
    let store = env
        .attached
        .iter()
        .find(|s| !s.readonly)
        .ok_or_else(|| Failure::perm("no writable [[attached]] store to persist to"))?
        .clone();
    let (sealed, cache) = (env.location.sealed(id), env.location.cache(id));
    let name = id.to_string();
    let dest = store.path.clone();
    tokio::task::spawn_blocking(move || {
        copy_into(&sealed, &dest.join("sealed").join(&name))?;
        copy_into(&cache, &dest.join("cache").join(&name))
    })
    .await
    .map_err(|e| Failure::critical(e.to_string()))?
    .map_err(|e| Failure::temp(format!("persist {id} to {}: {e}", store.path.display())))?;
    Ok(store.name)
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
                    Activity::Waiting {
                        since: Instant::now(),
                        reason: format!("waiting for parameters: {what}"),
                    },
                );
                if rx.changed().await.is_err() {
                    return Err("parameter generator stopped".into());
                }
            }
        }
    }
}

async fn rpc<T: DeserializeOwned>(
    env: &ThreadEnv,
    method: &str,
    params: Value,
) -> Result<T, Failure> {
    env.manager
        .call(&format!("Venus.{method}"), params)
        .await
        .map_err(|e| match &e {
            CallError::Rpc(r) if r.code == SECTOR_STATE_NOT_FOUND => {
                Failure::abort(format!("{method}: {e}"))
            }
            _ => Failure::temp(format!("{method}: {e}")),
        })
}

async fn process<T: Serialize, O: DeserializeOwned>(
    env: &ThreadEnv,
    activity: &ActivityCell,
    stage: &str,
    t: &T,
) -> Result<O, Failure> {
    run_stage(&env.processors, &env.limits, activity, stage, t)
        .await
        .map_err(Failure::perm)
}

/// Runs `t` on a processor of `stage` once the stage limit lets it start; the activity shows the
/// wait, then the processor at work. Errors name the stage.
pub async fn run_stage<T: Serialize, O: DeserializeOwned>(
    processors: &Processors,
    limits: &StageLimits,
    activity: &ActivityCell,
    stage: &str,
    t: &T,
) -> Result<O, String> {
    let task = serde_json::to_value(t).map_err(|e| format!("{stage}: {e}"))?;
    set_activity(
        activity,
        Activity::Waiting {
            since: Instant::now(),
            reason: format!("stage limit {stage}"),
        },
    );
    let _slot = limits.acquire(stage).await;
    let out = processors
        .call(stage, task, limits, |proc| {
            set_activity(
                activity,
                Activity::Running {
                    since: Instant::now(),
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
async fn submit(env: &ThreadEnv, method: &str, params: Value) -> Result<(), Failure> {
    let resp: SubmitResp = rpc(env, method, params).await?;
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
async fn poll(
    env: &ThreadEnv,
    method: &str,
    id: SectorId,
    what: &str,
    resubmit: Event,
    landed: Event,
) -> Result<Outcome, Failure> {
    let resp: PollStateResp = rpc(env, method, json!([id])).await?;
    let desc = resp.desc.unwrap_or_default();
    match OnChainState::from_code(resp.state) {
        Some(OnChainState::Landed) => Ok(Outcome::Event(landed)),
        Some(OnChainState::Failed) => Ok(Outcome::Event(resubmit)),
        Some(OnChainState::Pending | OnChainState::Packed) => Ok(Outcome::Wait {
            delay: env.sealing.rpc_polling_interval,
            reason: format!("waiting for {what} to land"),
        }),
        Some(OnChainState::ShouldAbort) => Err(Failure::abort(format!("{what}: {desc}"))),
        Some(s) => Err(Failure::perm(format!("{what} on chain: {s:?} {desc}"))),
        None => Err(Failure::perm(format!(
            "{what}: unknown state {}",
            resp.state
        ))),
    }
}

/// CommR and CommD, which every state after PC2 needs.
fn commitments(sector: &Sector) -> Result<([u8; 32], [u8; 32]), Failure> {
    match (sector.comm_r, sector.comm_d) {
        (Some(r), Some(d)) => Ok((r, d)),
        _ => Err(Failure::critical(
            "CommR or CommD is missing; resume with --state PC1Done",
        )),
    }
}

fn bytes32(what: &str, v: Option<&Vec<u8>>) -> Result<[u8; 32], Failure> {
    let v = v.ok_or_else(|| Failure::critical(format!("{what} is missing")))?;
    <[u8; 32]>::try_from(v.as_slice())
        .map_err(|_| Failure::abort(format!("{what} has {} bytes, expected 32", v.len())))
}

fn path_str(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// Tells the manager about a transition (best effort: the manager only records it).
pub async fn report_state(
    env: Arc<ThreadEnv>,
    id: SectorId,
    prev: State,
    next: State,
    event: String,
    failure: Option<(String, String)>,
) {
    let req = ReportStateReq {
        worker: WorkerIdentifier {
            instance: env.instance.clone(),
            location: env.location.root().display().to_string(),
        },
        state_change: SectorStateChange {
            prev: prev.to_string(),
            next: next.to_string(),
            event,
        },
        failure: failure.map(|(level, desc)| SectorFailure { level, desc }),
    };
    if let Err(e) = rpc::<Value>(&env, "ReportState", json!([id, req])).await {
        tracing::warn!(sector = %id, error = %e, "cannot report sector state");
    }
}
