//! The manager's worker-facing methods (`Venus.*` at `/rpc/v0`), each with damocles v0.13.1's
//! exact positional parameters (`damocles-manager/core/api.go`, `SealerAPI` and
//! `WorkerWdPoStAPI`). Who calls is not a parameter: the manager takes it from the caller's
//! token (`wire::auth`).

use super::method::{arity, method};
use super::processor::WindowPoStOutput;
use super::venus::{
    self as v, AcquireDealsSpec, AllocateSectorSpec, AllocateSnapUpSpec, AllocatedSector, Cid,
    PollStateResp, PreCommitOnChainInfo, ProofOnChainInfo, ReportStateReq, SectorId, SectorPiece,
    SectorStateResp, SectorUnsealInfo, SnapUpOnChainInfo, SubmitResp, Ticket, WaitSeedResp,
    WorkerInfo,
};
use super::venus_post::{AllocatePoStSpec, AllocatedPoStJob};

method!(
    /// The worker's summary (and, our extension, its thread rows); Name must be the caller's.
    WorkerPing = "Venus.WorkerPing" (info: WorkerInfo) -> ()
);
method!(
    /// A new sector for the calling thread, or null when there is none for it.
    AllocateSector = "Venus.AllocateSector" (spec: AllocateSectorSpec) -> Option<AllocatedSector>
);
method!(
    /// The deals of a sector: null or empty for a CC sector.
    AcquireDeals = "Venus.AcquireDeals" (sid: SectorId, spec: AcquireDealsSpec) -> Option<Vec<SectorPiece>>
);
method!(
    AssignTicket = "Venus.AssignTicket" (sid: SectorId) -> Ticket
);
method!(
    SubmitPreCommit = "Venus.SubmitPreCommit" (sector: AllocatedSector, info: PreCommitOnChainInfo, reset: bool) -> SubmitResp
);
method!(
    PollPreCommitState = "Venus.PollPreCommitState" (sid: SectorId) -> PollStateResp
);
method!(
    /// The old form of `SubmitPersistedEx` (no upgrade flag), kept by damocles for compatibility.
    SubmitPersisted = "Venus.SubmitPersisted" (sid: SectorId, instance: String) -> bool
);
method!(
    SubmitPersistedEx = "Venus.SubmitPersistedEx" (sid: SectorId, instance: String, is_upgrade: bool) -> bool
);
method!(
    /// `proof_type` is the sector's seal proof integer.
    WaitSeed = "Venus.WaitSeed" (sid: SectorId, proof_type: u64) -> WaitSeedResp
);
method!(
    SubmitProof = "Venus.SubmitProof" (sid: SectorId, proof: ProofOnChainInfo, reset: bool) -> SubmitResp
);
method!(
    PollProofState = "Venus.PollProofState" (sid: SectorId) -> PollStateResp
);
method!(
    ReportState = "Venus.ReportState" (sid: SectorId, req: ReportStateReq) -> Option<SectorStateResp>
);
method!(
    ReportFinalized = "Venus.ReportFinalized" (sid: SectorId) -> ()
);
method!(
    ReportAborted = "Venus.ReportAborted" (sid: SectorId, reason: String) -> ()
);
method!(
    /// (sic: damocles spells it `Sanp`.)
    AllocateSnapUpSector = "Venus.AllocateSanpUpSector" (spec: AllocateSnapUpSpec) -> Option<v::AllocatedSnapUpSector>
);
method!(
    SubmitSnapUpProof = "Venus.SubmitSnapUpProof" (sid: SectorId, info: SnapUpOnChainInfo) -> SubmitResp
);
method!(
    AllocateRebuildSector = "Venus.AllocateRebuildSector" (spec: AllocateSectorSpec) -> Option<v::SectorRebuildInfo>
);
method!(
    /// A persist store among `candidates` with `size` bytes free for the sector, kept reserved
    /// until the sector is persisted or aborted; null when none has room.
    StoreReserveSpace = "Venus.StoreReserveSpace" (sid: SectorId, size: u64, candidates: Option<Vec<String>>) -> Option<v::StoreBasicInfo>
);
method!(
    StoreBasicInfo = "Venus.StoreBasicInfo" (instance: String) -> Option<v::StoreBasicInfo>
);
method!(
    /// A piece to unseal for the calling thread, or null when there is none for it.
    AllocateUnsealSector = "Venus.AllocateUnsealSector" (spec: AllocateSectorSpec) -> Option<SectorUnsealInfo>
);
method!(
    /// The unseal of a piece is done: delivered (`err_info` empty) or given up (why).
    AchieveUnsealSector = "Venus.AchieveUnsealSector" (sid: SectorId, piece_cid: Cid, err_info: String) -> ()
);
method!(
    /// Where an unsealed piece's bytes go (`file://`, `http://`, `https://` URLs).
    AcquireUnsealDest = "Venus.AcquireUnsealDest" (sid: SectorId, piece_cid: Cid) -> Vec<String>
);
method!(
    /// Up to `num` ready WindowPoSt jobs for `worker_name` (which must be the caller's).
    WdPoStAllocateJobs = "Venus.WdPoStAllocateJobs" (spec: AllocatePoStSpec, num: u32, worker_name: String) -> Vec<AllocatedPoStJob>
);
method!(
    WdPoStHeartbeatJobs = "Venus.WdPoStHeartbeatJobs" (job_ids: Vec<String>, worker_name: String) -> ()
);
method!(
    /// The result of the caller's attempt: a proof, or an error reason.
    WdPoStFinishJob = "Venus.WdPoStFinishJob" (job_id: String, output: Option<WindowPoStOutput>, error_reason: String) -> ()
);

/// Every method above, by wire name and arity: the golden tests check each against damocles'.
pub const ALL: &[(&str, usize)] = &[
    arity::<WorkerPing>(),
    arity::<AllocateSector>(),
    arity::<AcquireDeals>(),
    arity::<AssignTicket>(),
    arity::<SubmitPreCommit>(),
    arity::<PollPreCommitState>(),
    arity::<SubmitPersisted>(),
    arity::<SubmitPersistedEx>(),
    arity::<WaitSeed>(),
    arity::<SubmitProof>(),
    arity::<PollProofState>(),
    arity::<ReportState>(),
    arity::<ReportFinalized>(),
    arity::<ReportAborted>(),
    arity::<AllocateSnapUpSector>(),
    arity::<SubmitSnapUpProof>(),
    arity::<AllocateRebuildSector>(),
    arity::<StoreReserveSpace>(),
    arity::<StoreBasicInfo>(),
    arity::<AllocateUnsealSector>(),
    arity::<AchieveUnsealSector>(),
    arity::<AcquireUnsealDest>(),
    arity::<WdPoStAllocateJobs>(),
    arity::<WdPoStHeartbeatJobs>(),
    arity::<WdPoStFinishJob>(),
];
