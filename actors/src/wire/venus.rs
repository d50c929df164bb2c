//! The manager's worker-facing API (`Venus.*` at `/rpc/v0`): damocles-compatible shapes,
//! PascalCase fields, positional params.

use serde::{Deserialize, Serialize};

/// The namespace of the manager's methods.
pub const NAMESPACE: &str = "Venus";

/// `s-t0<miner>-<number>` on screen, `{"Miner":..,"Number":..}` on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SectorId {
    /// The miner's actor id.
    pub miner: u64,
    /// The sector's number within the miner.
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

/// What a thread may take (`AllocateSector`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AllocateSectorSpec {
    /// Miners it seals for (none: any).
    pub allowed_miners: Option<Vec<u64>>,
    /// Seal proof types as integers (0 = 2KiB V1, 5 = 2KiB V1_1, ...).
    pub allowed_proof_types: Option<Vec<u64>>,
}

/// A sector the manager gave a thread.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AllocatedSector {
    /// Which sector.
    #[serde(rename = "ID")]
    pub id: SectorId,
    /// Its seal proof type (wire integer).
    #[serde(rename = "ProofType")]
    pub proof_type: u64,
}

/// The randomness PC1 seals with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Ticket {
    /// The ticket bytes.
    #[serde(with = "super::go_json::b64")]
    pub ticket: Vec<u8>,
    /// The chain epoch it was drawn at.
    pub epoch: i64,
}

/// The randomness C1 proves with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Seed {
    /// The seed bytes.
    #[serde(with = "super::go_json::b64")]
    pub seed: Vec<u8>,
    /// The chain epoch it was drawn at.
    pub epoch: i64,
}

/// `WaitSeed`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WaitSeedResp {
    /// Not yet: ask again after `delay`.
    pub should_wait: bool,
    /// Seconds to wait before asking again.
    pub delay: u64,
    /// The seed, once it is there.
    pub seed: Option<Seed>,
}

/// `SubmitPreCommit`'s second parameter: damocles has no `Deals` field here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreCommitOnChainInfo {
    /// The replica commitment.
    pub comm_r: [u8; 32],
    /// The data commitment.
    pub comm_d: [u8; 32],
    /// The ticket it was sealed with.
    pub ticket: Ticket,
}

/// `AcquireDeals`' spec: how many deals a sector may take.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AcquireDealsSpec {
    /// At most this many deals (none: no limit).
    #[serde(default)]
    pub max_deals: Option<u64>,
    /// At least this much of the sector filled (none: no minimum).
    #[serde(default)]
    pub min_used_space: Option<u64>,
}

/// A CID as Go's JSON writes it: `{"/": "baga6ea4sea..."}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Cid {
    /// The CID's text.
    #[serde(rename = "/")]
    pub root: String,
}

/// One piece of a sector from `AcquireDeals` or a snap-up allocation (damocles'
/// `SectorPieceV2`): the piece, and the deal that put it there (none for a filler piece).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SectorPiece {
    /// The piece.
    pub piece: PieceInfo,
    /// The deal behind it.
    #[serde(default)]
    pub deal_info: Option<DealInfo>,
}

/// A piece: its padded size and CID.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PieceInfo {
    /// Padded size in bytes.
    #[serde(rename = "Size")]
    pub size: u64,
    /// The piece commitment as a CID.
    #[serde(rename = "PieceCID")]
    pub piece_cid: Cid,
}

/// A deal as damocles hands it to a worker: venus' `DealInfoV2` (its fields inline, as Go
/// writes an embedded struct) with damocles' two flags. A damocles-worker reads only the id,
/// the allocation, the payload size and the market flag; the rest may be missing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DealInfo {
    /// The deal's id (0 for a direct data onboarding deal).
    #[serde(rename = "DealID")]
    pub deal_id: u64,
    /// The message that published it (null when none).
    #[serde(rename = "PublishCid", default)]
    pub publish_cid: Option<Cid>,
    /// The verified-registry allocation (0 when none).
    #[serde(rename = "AllocationID")]
    pub allocation_id: u64,
    /// The piece's CID (the sector piece's own is the one used).
    #[serde(rename = "PieceCID", default)]
    pub piece_cid: Cid,
    /// The piece's padded size.
    #[serde(rename = "PieceSize", default)]
    pub piece_size: u64,
    /// The client's address.
    #[serde(rename = "Client", default)]
    pub client: String,
    /// The provider's address.
    #[serde(rename = "Provider", default)]
    pub provider: String,
    /// Where the piece starts in the sector (padded bytes).
    #[serde(rename = "Offset", default)]
    pub offset: u64,
    /// The piece's length in the sector (padded bytes).
    #[serde(rename = "Length", default)]
    pub length: u64,
    /// The client's data before padding, in bytes.
    #[serde(rename = "PayloadSize")]
    pub payload_size: u64,
    /// The epoch the deal starts at.
    #[serde(rename = "StartEpoch", default)]
    pub start_epoch: i64,
    /// The epoch the deal ends at.
    #[serde(rename = "EndEpoch", default)]
    pub end_epoch: i64,
    /// A deal of the built-in market (not a direct data onboarding one).
    #[serde(rename = "IsBuiltinMarket")]
    pub is_builtin_market: bool,
    /// The piece's bytes are already padded: use them as they are.
    #[serde(rename = "IsCompatible", default)]
    pub is_compatible: bool,
}

/// `AllocateSanpUpSector`'s spec.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AllocateSnapUpSpec {
    /// The sectors it may take.
    pub sector: AllocateSectorSpec,
    /// The deals it may take.
    pub deals: AcquireDealsSpec,
}

/// A proven CC sector given to a snap-up thread, with the deals to put in it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AllocatedSnapUpSector {
    /// Which sector.
    pub sector: AllocatedSector,
    /// The pieces to encode into it.
    #[serde(default, deserialize_with = "super::go_json::null_as_default")]
    pub pieces: Vec<SectorPiece>,
    /// What the chain knows of it.
    pub public: SectorPublicInfo,
    /// Where its files are.
    pub private: SectorPrivateInfo,
}

/// `AllocateRebuildSector`'s answer (damocles' `SectorRebuildInfo`): a proven sector to seal
/// again, with what its sealing used.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SectorRebuildInfo {
    /// Which sector.
    #[serde(rename = "Sector")]
    pub sector: AllocatedSector,
    /// The ticket it was sealed with.
    #[serde(rename = "Ticket")]
    pub ticket: Ticket,
    /// Pieces in damocles' old form (before v0.9); ours are in `PiecesV2`.
    #[serde(rename = "Pieces", default)]
    pub legacy_pieces: Option<serde_json::Value>,
    /// Its deals: sealed into it, or, when it was snapped up, encoded into its replica.
    #[serde(
        rename = "PiecesV2",
        default,
        deserialize_with = "super::go_json::null_as_default"
    )]
    pub pieces: Vec<SectorPiece>,
    /// It was snapped up: sealed as CC, then `pieces` encoded into it.
    #[serde(rename = "IsSnapUp")]
    pub is_snap_up: bool,
    /// What the chain knows of the sector as sealed: the CommR a rebuild must reproduce.
    #[serde(rename = "UpgradePublic", default)]
    pub upgrade_public: Option<SectorPublicInfo>,
}

/// `AllocateUnsealSector`'s answer (damocles' `SectorUnsealInfo`): a piece of a sealed sector
/// to regenerate, with what its sealing used.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SectorUnsealInfo {
    /// Which sector.
    pub sector: AllocatedSector,
    /// The piece.
    pub piece_cid: Cid,
    /// Where the piece starts in the sector, in unpadded bytes.
    pub offset: u64,
    /// The piece's unpadded size.
    pub size: u64,
    /// The store holding the sector's sealed file and cache.
    pub private_info: SectorPrivateInfo,
    /// The ticket it was sealed with.
    pub ticket: Ticket,
    /// Its data commitment.
    pub comm_d: [u8; 32],
    /// Where the bytes go (the worker asks again with `AcquireUnsealDest`).
    #[serde(default, deserialize_with = "super::go_json::null_as_default")]
    pub dest: Vec<String>,
    /// Damocles' task state (`set_up`, `unsealing`, `uploading`, `finished`, `failed`).
    #[serde(default)]
    pub state: String,
    /// Why it failed, if it did.
    #[serde(default)]
    pub error_info: String,
    /// Ours, which damocles has no field for: the piece is in a snap-up's updated replica
    /// (then `CommD` is the update's and `AccessInstance` the update's store). A Go manager
    /// never writes it.
    #[serde(
        rename = "DamoclesRs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub upgrade: Option<UnsealUpgrade>,
}

/// Where a snapped sector's piece is decoded from, besides its updated replica.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct UnsealUpgrade {
    /// The sealed replica's commitment, before the snap-up.
    pub comm_r_old: [u8; 32],
    /// The store holding the sealed replica (the sector key).
    pub sector_key_instance: String,
}

/// A sector as the chain knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SectorPublicInfo {
    /// Its replica commitment.
    pub comm_r: [u8; 32],
    /// The same as a CID.
    #[serde(rename = "SealedCID")]
    pub sealed_cid: Cid,
    /// The epoch it was activated at.
    pub activation: i64,
    /// The epoch it expires at.
    pub expiration: i64,
}

/// Where a sector's files are.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct SectorPrivateInfo {
    /// The persist store holding its sealed file and cache.
    pub access_instance: String,
}

/// `SubmitSnapUpProof`'s second parameter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnapUpOnChainInfo {
    /// The new replica commitment.
    pub comm_r: [u8; 32],
    /// The new data commitment.
    pub comm_d: [u8; 32],
    /// The store the update files were persisted to.
    pub access_instance: String,
    /// The pieces the sector now holds.
    #[serde(default, deserialize_with = "super::go_json::null_as_default")]
    pub pieces: Vec<Cid>,
    /// The update proof.
    #[serde(with = "super::go_json::b64")]
    pub proof: Vec<u8>,
}

/// `SubmitProof`'s second parameter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProofOnChainInfo {
    /// The PoRep proof.
    #[serde(with = "super::go_json::b64")]
    pub proof: Vec<u8>,
}

/// Result of a submit: damocles' integer enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitResult {
    /// Taken.
    Accepted = 1,
    /// Taken before; the same again.
    DuplicateSubmit = 2,
    /// Another submission was taken for the sector.
    MismatchedSubmission = 3,
    /// Refused: the sector is aborted.
    Rejected = 4,
    /// Refused: the files are not where they should be.
    FilesMissed = 5,
}

impl SubmitResult {
    /// The result of its wire integer.
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

/// The answer to a submit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubmitResp {
    /// A `SubmitResult` as its integer.
    pub res: u64,
    /// Why, when it was not taken.
    pub desc: Option<String>,
}

/// On-chain state of a message: damocles' integer enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnChainState {
    /// Sent, not yet on chain.
    Pending = 1,
    /// In a message the chain has not yet run.
    Packed = 2,
    /// On chain.
    Landed = 3,
    /// The chain knows no such message.
    NotFound = 4,
    /// Failed on chain; submit again.
    Failed = 5,
    /// Failed on chain for good.
    PermFailed = 6,
    /// The sector cannot go on: abort it.
    ShouldAbort = 7,
}

impl OnChainState {
    /// The state of its wire integer.
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

/// `PollPreCommitState` / `PollProofState`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PollStateResp {
    /// An `OnChainState` as its integer.
    pub state: u64,
    /// What the chain said.
    pub desc: Option<String>,
}

/// Which worker and thread location a report comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerIdentifier {
    /// The worker's name.
    pub instance: String,
    /// The thread's location.
    pub location: String,
}

/// A transition of a sector's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SectorStateChange {
    /// The state it left.
    pub prev: String,
    /// The state it entered.
    pub next: String,
    /// The event that moved it.
    pub event: String,
}

/// A failure a thread reports with a transition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SectorFailure {
    /// Its level (`temporary`, `permanent`, ...).
    pub level: String,
    /// What went wrong.
    pub desc: String,
}

/// `ReportState`'s second parameter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportStateReq {
    /// Who reports.
    pub worker: WorkerIdentifier,
    /// The transition.
    pub state_change: SectorStateChange,
    /// The failure, if one moved it.
    pub failure: Option<SectorFailure>,
}

/// `SectorState`'s answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SectorStateResp {
    /// Which sector.
    #[serde(rename = "Id")]
    pub id: SectorId,
    /// Whether it was finalized.
    #[serde(rename = "Finalized")]
    pub finalized: bool,
    /// Why it was aborted, if it was.
    #[serde(rename = "AbortReason")]
    pub abort_reason: Option<String>,
}

/// A persist store as the manager knows it (`StoreBasicInfo`, `StoreReserveSpace`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct StoreBasicInfo {
    /// The store's name.
    pub name: String,
    /// Its path on the manager's host.
    pub path: String,
    /// Whether its path must exist.
    #[serde(default)]
    pub strict: bool,
    /// Never persisted to.
    #[serde(default)]
    pub read_only: bool,
    /// Preference among stores with room (higher first).
    #[serde(default)]
    pub weight: u64,
    /// Free-form labels.
    #[serde(default)]
    pub meta: Option<std::collections::BTreeMap<String, String>>,
}

/// The `WorkerPing` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerInfo {
    /// The worker's name.
    pub name: String,
    /// Its management address.
    pub dest: String,
    /// Its version.
    #[serde(default)]
    pub version: String,
    /// Its threads, counted by what they do.
    pub summary: WorkerInfoSummary,
    /// Our extension: the per-thread rows, so the manager's `worker_threads` table stays current
    /// without calling back. A damocles worker omits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<Vec<super::worker_api::ThreadInfo>>,
}

/// A worker's threads, counted by what they do.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct WorkerInfoSummary {
    /// All of them.
    pub threads: u64,
    /// Holding no sector or job.
    pub empty: u64,
    /// Parked.
    pub paused: u64,
    /// Running a processor.
    #[serde(default)]
    pub running: u64,
    /// Held back (limit, parameters, quota).
    #[serde(default)]
    pub waiting: u64,
    /// Showing an error (`last_error`).
    pub errors: u64,
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
}
