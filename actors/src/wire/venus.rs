//! The manager's worker-facing API (`Venus.*` at `/rpc/v0`): damocles-compatible shapes,
//! PascalCase fields, positional params.

use serde::{Deserialize, Serialize};

pub const NAMESPACE: &str = "Venus";

/// `s-t0<miner>-<number>` on screen, `{"Miner":..,"Number":..}` on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SectorId {
    pub miner: u64,
    pub number: u64,
}

impl std::fmt::Display for SectorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s-t0{}-{}", self.miner, self.number)
    }
}

impl std::str::FromStr for SectorId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a sector id like s-t010000-1");
        let rest = s.strip_prefix("s-t0").ok_or_else(bad)?;
        let (miner, number) = rest.split_once('-').ok_or_else(bad)?;
        Ok(SectorId {
            miner: miner.parse().map_err(|_| bad())?,
            number: number.parse().map_err(|_| bad())?,
        })
    }
}

/// The 32-byte prover id of an ID address (`t0<miner>`): the unsigned LEB128 of the actor id,
/// zero padded, as the proofs library expects.
pub fn prover_id(miner: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut v = miner;
    let mut i = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out[i] = byte;
            break;
        }
        out[i] = byte | 0x80;
        i += 1;
    }
    out
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AllocateSectorSpec {
    pub allowed_miners: Option<Vec<u64>>,
    /// Seal proof types as integers (0 = 2KiB V1, 5 = 2KiB V1_1, ...).
    pub allowed_proof_types: Option<Vec<u64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AllocatedSector {
    #[serde(rename = "ID")]
    pub id: SectorId,
    #[serde(rename = "ProofType")]
    pub proof_type: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Ticket {
    #[serde(with = "b64")]
    pub ticket: Vec<u8>,
    pub epoch: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Seed {
    #[serde(with = "b64")]
    pub seed: Vec<u8>,
    pub epoch: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitSeedResp {
    pub should_wait: bool,
    pub delay: u64,
    pub seed: Option<Seed>,
}

/// `SubmitPreCommit`'s second parameter: damocles has no `Deals` field here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreCommitOnChainInfo {
    pub comm_r: [u8; 32],
    pub comm_d: [u8; 32],
    pub ticket: Ticket,
}

/// `AcquireDeals`' spec: how many deals a sector may take.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AcquireDealsSpec {
    #[serde(default)]
    pub max_deals: Option<u64>,
    #[serde(default)]
    pub min_used_space: Option<u64>,
}

/// A CID as Go's JSON writes it: `{"/": "baga6ea4sea..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cid {
    #[serde(rename = "/")]
    pub root: String,
}

/// One piece of a sector from `AcquireDeals` (damocles' `SectorPieceV2`). Deal sectors do not
/// exist here yet, so the deal itself is kept as it came.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SectorPiece {
    pub piece: PieceInfo,
    #[serde(default)]
    pub deal_info: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PieceInfo {
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "PieceCID")]
    pub piece_cid: Cid,
}

/// `AllocateSanpUpSector`'s spec.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AllocateSnapUpSpec {
    pub sector: AllocateSectorSpec,
    pub deals: AcquireDealsSpec,
}

/// `SubmitSnapUpProof`'s second parameter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnapUpOnChainInfo {
    pub comm_r: [u8; 32],
    pub comm_d: [u8; 32],
    pub access_instance: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub pieces: Vec<Cid>,
    #[serde(with = "b64")]
    pub proof: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProofOnChainInfo {
    #[serde(with = "b64")]
    pub proof: Vec<u8>,
}

/// Result of a submit: damocles' integer enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitResult {
    Accepted = 1,
    DuplicateSubmit = 2,
    MismatchedSubmission = 3,
    Rejected = 4,
    FilesMissed = 5,
}

impl SubmitResult {
    pub fn from_code(code: u64) -> Option<Self> {
        use SubmitResult::*;
        [
            Accepted,
            DuplicateSubmit,
            MismatchedSubmission,
            Rejected,
            FilesMissed,
        ]
        .into_iter()
        .find(|r| *r as u64 == code)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubmitResp {
    pub res: u64,
    pub desc: Option<String>,
}

/// On-chain state of a message: damocles' integer enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnChainState {
    Pending = 1,
    Packed = 2,
    Landed = 3,
    NotFound = 4,
    Failed = 5,
    PermFailed = 6,
    ShouldAbort = 7,
}

impl OnChainState {
    pub fn from_code(code: u64) -> Option<Self> {
        use OnChainState::*;
        [
            Pending,
            Packed,
            Landed,
            NotFound,
            Failed,
            PermFailed,
            ShouldAbort,
        ]
        .into_iter()
        .find(|r| *r as u64 == code)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PollStateResp {
    pub state: u64,
    pub desc: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerIdentifier {
    pub instance: String,
    pub location: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SectorStateChange {
    pub prev: String,
    pub next: String,
    pub event: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SectorFailure {
    pub level: String,
    pub desc: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportStateReq {
    pub worker: WorkerIdentifier,
    pub state_change: SectorStateChange,
    pub failure: Option<SectorFailure>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SectorStateResp {
    #[serde(rename = "Id")]
    pub id: SectorId,
    #[serde(rename = "Finalized")]
    pub finalized: bool,
    #[serde(rename = "AbortReason")]
    pub abort_reason: Option<String>,
}

/// A persist store as the manager knows it (`StoreBasicInfo`, `StoreReserveSpace`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct StoreBasicInfo {
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub strict: bool,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub weight: u64,
    #[serde(default)]
    pub meta: Option<std::collections::BTreeMap<String, String>>,
}

/// The `WorkerPing` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerInfo {
    pub name: String,
    pub dest: String,
    #[serde(default)]
    pub version: String,
    pub summary: WorkerInfoSummary,
    /// Our extension: the per-thread rows, so the manager's `worker_threads` table stays current
    /// without calling back. A damocles worker omits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<Vec<super::worker_api::ThreadInfo>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerInfoSummary {
    pub threads: u64,
    pub empty: u64,
    pub paused: u64,
    #[serde(default)]
    pub running: u64,
    #[serde(default)]
    pub waiting: u64,
    pub errors: u64,
}

/// `WdPoStAllocateJobs` spec: which jobs a worker takes (empty or null = any).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AllocatePoStSpec {
    pub allowed_miners: Option<Vec<u64>>,
    /// PoSt proof names such as `StackedDrgWindow2KiBV1_2`.
    pub allowed_proof_types: Option<Vec<String>>,
}

/// Where a sector's files are: names of persist stores (`[[attached]]` names on the worker).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct PoStSectorAccesses {
    pub sealed_file: String,
    pub cache_dir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoStSectorInfo {
    #[serde(rename = "SectorId")]
    pub sector_id: u64,
    #[serde(rename = "CommR")]
    pub comm_r: [u8; 32],
    #[serde(rename = "Upgrade", default)]
    pub upgrade: bool,
    #[serde(rename = "Accesses")]
    pub accesses: PoStSectorAccesses,
}

/// What a WindowPoSt job proves. Its JSON (in this field order) hashes to the job id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoStInput {
    #[serde(rename = "Sectors")]
    pub sectors: Vec<PoStSectorInfo>,
    #[serde(rename = "MinerId")]
    pub miner_id: u64,
    #[serde(rename = "ProofType")]
    pub proof_type: String,
    #[serde(rename = "Seed")]
    pub seed: [u8; 32],
}

/// One job handed to a worker by `WdPoStAllocateJobs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AllocatedPoStJob {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Input")]
    pub input: PoStInput,
}

/// Go writes a nil slice as `null`: read it as empty.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Serde helper: bytes as base64 strings (Go's `[]byte`).
pub mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// Seal proof integers used on the wire (damocles' abi.RegisteredSealProof).
pub mod seal_proof {
    pub const STACKED_DRG_2KIB_V1_1: u64 = 5;
    pub const STACKED_DRG_8MIB_V1_1: u64 = 6;
    pub const STACKED_DRG_512MIB_V1_1: u64 = 7;
    pub const STACKED_DRG_32GIB_V1_1: u64 = 8;
    pub const STACKED_DRG_64GIB_V1_1: u64 = 9;

    /// The V1_1 seal proof for a sector size in bytes.
    pub fn for_size(bytes: u64) -> Option<u64> {
        match bytes {
            2048 => Some(STACKED_DRG_2KIB_V1_1),
            0x80_0000 => Some(STACKED_DRG_8MIB_V1_1),
            0x2000_0000 => Some(STACKED_DRG_512MIB_V1_1),
            0x8_0000_0000 => Some(STACKED_DRG_32GIB_V1_1),
            0x10_0000_0000 => Some(STACKED_DRG_64GIB_V1_1),
            _ => None,
        }
    }

    /// Sector size in bytes of a seal proof integer (V1 and V1_1).
    pub fn sector_size(proof: u64) -> Option<u64> {
        match proof % 5 {
            0 => Some(2048),
            1 => Some(0x80_0000),
            2 => Some(0x2000_0000),
            3 => Some(0x8_0000_0000),
            4 => Some(0x10_0000_0000),
            _ => None,
        }
        .filter(|_| proof < 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sector_id_round_trips_through_its_display_form() {
        for (s, id) in [
            (
                "s-t010000-2",
                SectorId {
                    miner: 10000,
                    number: 2,
                },
            ),
            (
                "s-t01-0",
                SectorId {
                    miner: 1,
                    number: 0,
                },
            ),
        ] {
            assert_eq!(id.to_string(), s);
            assert_eq!(s.parse::<SectorId>(), Ok(id));
        }
        assert!("t010000-2".parse::<SectorId>().is_err());
        assert!("s-t0x-2".parse::<SectorId>().is_err());
    }

    #[test]
    fn prover_id_is_leb128_of_the_actor_id() {
        for (miner, bytes) in [
            (0u64, vec![0u8]),
            (127, vec![127]),
            (10000, vec![0x90, 0x4e]),
        ] {
            let id = prover_id(miner);
            assert_eq!(&id[..bytes.len()], &bytes[..]);
            assert!(id[bytes.len()..].iter().all(|b| *b == 0));
        }
    }

    #[test]
    fn sector_id_uses_pascal_case_on_the_wire() {
        let v = serde_json::to_value(SectorId {
            miner: 1,
            number: 2,
        })
        .unwrap_or_default();
        assert_eq!(v, serde_json::json!({"Miner": 1, "Number": 2}));
    }

    #[test]
    fn seal_proof_sizes() {
        assert_eq!(seal_proof::for_size(2048), Some(5));
        assert_eq!(seal_proof::sector_size(5), Some(2048));
        assert_eq!(seal_proof::sector_size(8), Some(32 << 30));
        assert_eq!(seal_proof::sector_size(12), None);
    }
}
