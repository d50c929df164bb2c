//! What a sealer thread does in each state: the I/O half of the plan. One call runs one step and
//! returns the event it produced (or how long to wait before trying again); the thread applies it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::failure::Failure;
use super::plan::State;
use super::quota::{disk_usage, DiskQuota};
use super::sector::{Event, Sector};
use super::store::{copy_into, Location};
use crate::limits::StageLimits;
use crate::processors::Processors;
use crate::wire::jsonrpc::{CallError, Client, NOT_YOURS, SECTOR_STATE_NOT_FOUND};
use crate::wire::method::Method;
use crate::wire::processor as task;
use crate::wire::venus::{
    prover_id, AcquireDealsSpec, AllocateSectorSpec, OnChainState, PollStateResp,
    PreCommitOnChainInfo, ProofOnChainInfo, ReportStateReq, SectorFailure, SectorId,
    SectorStateChange, SubmitResp, SubmitResult, WorkerIdentifier,
};
use crate::wire::venus_methods as m;
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
    pub location: Location,
    /// The manager, with this thread's token and index in every call's headers.
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
            let deals = rpc::<m::AcquireDeals>(env, (id, AcquireDealsSpec::default())).await?;
            if let Some(n) = deals.map(|d| d.len()).filter(|n| *n > 0) {
                // The chain would expect these deals in the sector: sealing it as CC is wrong.
                return Err(Failure::abort(format!(
                    "the manager assigned {n} deal(s) to {id}, but this worker seals CC sectors only (deal sectors are not supported yet): the sector is aborted rather than sealed without them"
                )));
            }
            Event::AcquireDeals
        }
        State::DealsAcquired => {
            let t = task::AddPiecesTask {
                seal_proof: proof,
                staged_file: path_str(&env.location.staged(id)),
            };
            let out: task::AddPiecesOutput =
                process(env, activity, "add_pieces", proof, &t).await?;
            Event::AddPiece(out.pieces)
        }
        State::PieceAdded => {
            let t = task::TreeDTask {
                seal_proof: proof,
                pieces: sector.pieces.clone(),
            };
            let out: task::TreeDOutput = process(env, activity, "tree_d", proof, &t).await?;
            Event::BuildTreeD { comm_d: out.comm_d }
        }
        State::TreeDBuilt => Event::AssignTicket(rpc::<m::AssignTicket>(env, (id,)).await?),
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
            Event::PC1(process(env, activity, "pc1", proof, &t).await?)
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
            let out: task::PC2Output = process(env, activity, "pc2", proof, &t).await?;
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
            };
            let allocated = sector
                .allocated
                .clone()
                .ok_or_else(|| Failure::critical("the allocation is missing"))?;
            submit::<m::SubmitPreCommit>(env, (allocated, info, false)).await?;
            Event::SubmitPC
        }
        State::PCSubmitted => {
            return poll::<m::PollPreCommitState>(
                env,
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
            let ok = rpc::<m::SubmitPersistedEx>(env, (id, instance.clone(), false)).await?;
            if !ok {
                return Err(Failure::perm(format!(
                    "manager refused the persisted files of {id} in store {instance}"
                )));
            }
            Event::SubmitPersistance
        }
        State::PersistanceSubmitted => {
            let resp = rpc::<m::WaitSeed>(env, (id, proof)).await?;
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
            Event::C1(process(env, activity, "c1", proof, &t).await?)
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
            let out: task::C2Output = process(env, activity, "c2", proof, &t).await?;
            Event::C2 { proof: out.proof }
        }
        State::C2Done => {
            let proof = ProofOnChainInfo {
                proof: sector.proof.clone().ok_or_else(|| {
                    Failure::critical("proof is missing; resume with --state C1Done")
                })?,
            };
            submit::<m::SubmitProof>(env, (id, proof, false)).await?;
            Event::SubmitProof
        }
        State::ProofSubmitted => {
            return poll::<m::PollProofState>(env, id, "proof", Event::ReSubmitProof, Event::Finish)
                .await
        }
        State::Finished => {
            rpc::<m::ReportFinalized>(env, (id,)).await?;
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
    // Any failure to get a new sector means "nothing to do now", as in damocles. Who asks is
    // not a parameter: the manager knows the worker by its token, the thread by a header.
    match rpc::<m::AllocateSector>(env, (spec,)).await {
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
        rpc::<m::ReportAborted>(env, (id, reason)).await?;
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

/// Asks the manager which writable attached store takes the sector (`StoreReserveSpace`: it
/// keeps the room reserved until the sector is persisted or aborted), then copies the sealed
/// file and the cache there.
async fn persist(env: &ThreadEnv, id: SectorId) -> Result<String, Failure> {
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
    let (sealed, cache) = (env.location.sealed(id), env.location.cache(id));
    let (s, c) = (sealed.clone(), cache.clone());
    let size = tokio::task::spawn_blocking(move || disk_usage(&s) + disk_usage(&c))
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

/// Calls the manager. A sector the manager does not know is aborted; one it says is not this
/// worker's pauses the thread, files kept, until an operator sorts out which worker's token
/// this is; any other error is temporary (retried, then escalated).
async fn rpc<M: Method>(env: &ThreadEnv, params: M::Params) -> Result<M::Output, Failure> {
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

async fn process<T: Serialize, O: DeserializeOwned>(
    env: &ThreadEnv,
    activity: &ActivityCell,
    stage: &str,
    seal_proof: u64,
    t: &T,
) -> Result<O, Failure> {
    let size = crate::wire::venus::seal_proof::sector_size(seal_proof).unwrap_or(32 << 30);
    run_stage(&env.processors, &env.limits, activity, stage, size, t)
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
    stage: &str,
    sector_size: u64,
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
    let slot = limits.acquire(stage).await;
    let out = processors
        .call(stage, sector_size, task, limits, slot, |proc| {
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
async fn submit<M: Method<Output = SubmitResp>>(
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
async fn poll<M: Method<Params = (SectorId,), Output = PollStateResp>>(
    env: &ThreadEnv,
    id: SectorId,
    what: &str,
    resubmit: Event,
    landed: Event,
) -> Result<Outcome, Failure> {
    let resp = rpc::<M>(env, (id,)).await?;
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
    if let Err(e) = rpc::<m::ReportState>(&env, (id, req)).await {
        tracing::warn!(sector = %id, error = %e, "cannot report sector state");
    }
}
