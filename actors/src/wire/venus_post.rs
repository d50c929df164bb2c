//! The WindowPoSt shapes of the manager's API (`WdPoStAllocateJobs` and the job it hands out),
//! damocles-compatible.

use serde::{Deserialize, Serialize};

/// `WdPoStAllocateJobs` spec: which jobs a worker takes (empty or null = any).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AllocatePoStSpec {
    /// Miners it proves for (none: any).
    pub allowed_miners: Option<Vec<u64>>,
    /// PoSt proof names such as `StackedDrgWindow2KiBV1_2`.
    pub allowed_proof_types: Option<Vec<String>>,
}

/// Where a sector's files are: names of persist stores (`[[attached]]` names on the worker).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PoStSectorAccesses {
    /// The store holding the sealed (or updated) replica.
    pub sealed_file: String,
    /// The store holding the cache.
    pub cache_dir: String,
}

/// One sector of a WindowPoSt job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoStSectorInfo {
    /// Its number.
    #[serde(rename = "SectorId")]
    pub sector_id: u64,
    /// Its replica commitment.
    #[serde(rename = "CommR")]
    pub comm_r: [u8; 32],
    /// Snapped up: prove over the update files.
    #[serde(rename = "Upgrade", default)]
    pub upgrade: bool,
    /// Where its files are.
    #[serde(rename = "Accesses")]
    pub accesses: PoStSectorAccesses,
}

/// What a WindowPoSt job proves. Its JSON (in this field order) hashes to the job id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoStInput {
    /// The sectors to prove.
    #[serde(rename = "Sectors")]
    pub sectors: Vec<PoStSectorInfo>,
    /// The miner.
    #[serde(rename = "MinerId")]
    pub miner_id: u64,
    /// The WindowPoSt proof type, by damocles' name.
    #[serde(rename = "ProofType")]
    pub proof_type: String,
    /// The challenge randomness.
    #[serde(rename = "Seed")]
    pub seed: [u8; 32],
}

/// One job handed to a worker by `WdPoStAllocateJobs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AllocatedPoStJob {
    /// The job's id, as the worker echoes it (`<id>@<attempt>`).
    #[serde(rename = "Id")]
    pub id: String,
    /// What to prove.
    #[serde(rename = "Input")]
    pub input: PoStInput,
}
