//! What a sector thread's steps need from the worker, built once per thread by the daemon.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::quota::DiskQuota;
use super::store::Location;
use crate::limits::StageLimits;
use crate::processors::Processors;
use crate::wire::jsonrpc::Client;
use crate::wire::venus::AcquireDealsSpec;

/// `[sealing]` as one thread sees it (global values merged with its overrides).
#[derive(Debug, Clone)]
pub struct SealingParams {
    /// Miners this thread seals for (none: any).
    pub allowed_miners: Option<Vec<u64>>,
    /// Seal proof types it takes (none: any).
    pub allowed_proof_types: Option<Vec<u64>>,
    /// Temporary failures retried before the thread pauses.
    pub max_retries: u32,
    /// Wait between two sectors.
    pub seal_interval: Duration,
    /// Wait before retrying a failed step or asking again for work.
    pub recover_interval: Duration,
    /// Wait between two polls of a message on chain.
    pub rpc_polling_interval: Duration,
    /// `enable_deals`: a sealer thread asks for deals (`AcquireDeals`) for each new sector.
    pub enable_deals: bool,
    /// `max_deals` and `min_deal_space`: what the thread asks deals for.
    pub deals: AcquireDealsSpec,
}

/// One `[[attached]]` store, as the worker mounts it.
#[derive(Debug, Clone)]
pub struct AttachedStore {
    /// The name the manager knows it by.
    pub name: String,
    /// Where it is mounted here.
    pub path: PathBuf,
    /// Read only: never persisted to.
    pub readonly: bool,
}

/// Whether the Groth parameters that C2 and WindowPoSt need are there yet.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamsStatus {
    /// Being generated; says which.
    Generating(String),
    /// Present.
    Ready,
    /// Could not be generated; says why.
    Failed(String),
}

/// Everything a sector thread's steps need from the worker.
pub struct ThreadEnv {
    /// The worker's name.
    pub instance: String,
    /// The thread's directory, where the sector's files and record live.
    pub location: Location,
    /// The manager, with this thread's token and index in every call's headers.
    pub manager: Client,
    /// The worker's processor children.
    pub processors: Processors,
    /// The worker's stage limits.
    pub limits: Arc<StageLimits>,
    /// The stores a sector may be persisted to.
    pub attached: Vec<AttachedStore>,
    /// `[sealing]` for this thread.
    pub sealing: SealingParams,
    /// Sent by the daemon's parameter generator; C2 waits on it.
    pub params: watch::Receiver<ParamsStatus>,
    /// The worker's `disk_quota`, shared by its sealer threads.
    pub quota: Arc<DiskQuota>,
}
