//! The line-JSON protocol between a worker and its processor children (damocles-compatible):
//! the child prints `<stage> processor ready`, then answers one JSON request per line.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::by_name;

/// A processor stage: what a `[[processors.<stage>]]` child computes, the key of its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Writes the sector's pieces (zeros for CC) into the staged file.
    AddPieces,
    /// Builds the data tree and its root, CommD.
    TreeD,
    /// PreCommit phase 1: the labelling layers.
    Pc1,
    /// PreCommit phase 2: the sealed replica and CommR.
    Pc2,
    /// Commit phase 1: the challenged proofs' inputs.
    C1,
    /// Commit phase 2: the SNARK.
    C2,
    /// Snap-up: encodes deal data into a CC replica.
    SnapEncode,
    /// Snap-up: proves the encoding.
    SnapProve,
    /// Recovers a piece's bytes from a replica.
    Unseal,
    /// A WindowPoSt over a partition's sectors.
    WindowPost,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: &'static [Stage] = &[
        Stage::AddPieces,
        Stage::TreeD,
        Stage::Pc1,
        Stage::Pc2,
        Stage::C1,
        Stage::C2,
        Stage::SnapEncode,
        Stage::SnapProve,
        Stage::Unseal,
        Stage::WindowPost,
    ];

    /// The name in config files, on the wire and on the child's command line.
    pub fn name(self) -> &'static str {
        match self {
            Stage::AddPieces => "add_pieces",
            Stage::TreeD => "tree_d",
            Stage::Pc1 => "pc1",
            Stage::Pc2 => "pc2",
            Stage::C1 => "c1",
            Stage::C2 => "c2",
            Stage::SnapEncode => "snap_encode",
            Stage::SnapProve => "snap_prove",
            Stage::Unseal => "unseal",
            Stage::WindowPost => "window_post",
        }
    }
}

by_name!(Stage, "stage");

/// The first line a child of `stage` prints once it is ready.
pub fn ready_line(stage: Stage) -> String {
    format!("{stage} processor ready")
}

/// One task sent to a child, one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessorRequest {
    /// Matches an answer to its request.
    pub id: u64,
    /// The task, as the stage's JSON.
    pub task: Value,
}

/// A child's answer to one task, one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessorResponse {
    /// Matches an answer to its request.
    pub id: u64,
    /// Why the task failed, if it did.
    pub err_msg: Option<String>,
    /// The stage's output, if it succeeded.
    pub output: Option<Value>,
}

/// A piece in a sector: its padded size and commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceInfo {
    /// Unpadded size in bytes.
    pub size: u64,
    /// The piece commitment.
    pub comm_p: [u8; 32],
}

/// `add_pieces`: write the sector's pieces into the staged file, then zero pieces up to the
/// sector's size. No pieces means a CC sector: one zero piece filling the sector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddPiecesTask {
    /// The seal proof type (its wire integer).
    pub seal_proof: u64,
    /// The sector's staged (unsealed) file.
    pub staged_file: String,
    /// The deals' pieces, in the order they go into the sector.
    #[serde(default)]
    pub pieces: Vec<DealPiece>,
}

/// A deal's piece as `add_pieces` takes it: the client's bytes on local disk and the CID they
/// must make once padded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DealPiece {
    /// The client's bytes (not padded).
    pub file: String,
    /// The piece CID the deal names.
    pub cid: String,
    /// The piece's padded size.
    pub size: u64,
}

/// `add_pieces`' output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddPiecesOutput {
    /// The sector's pieces.
    pub pieces: Vec<PieceInfo>,
}

/// `tree_d`: the data commitment of the pieces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeDTask {
    /// The seal proof type (its wire integer).
    pub seal_proof: u64,
    /// The sector's pieces.
    pub pieces: Vec<PieceInfo>,
}

/// `tree_d`'s output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeDOutput {
    /// The data commitment.
    pub comm_d: [u8; 32],
}

/// The `pc1` task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PC1Task {
    /// The seal proof type (its wire integer).
    pub seal_proof: u64,
    /// The sector's cache directory.
    pub cache_dir: String,
    /// The sector's staged (unsealed) file.
    pub staged_file: String,
    /// The sector's sealed replica.
    pub sealed_file: String,
    /// The miner's prover id.
    pub prover_id: [u8; 32],
    /// The sector's number.
    pub sector_number: u64,
    /// The ticket the sector was sealed with.
    pub ticket: [u8; 32],
    /// The sector's pieces.
    pub pieces: Vec<PieceInfo>,
}

/// The `pc2` task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PC2Task {
    /// The seal proof type (its wire integer).
    pub seal_proof: u64,
    /// PC1's output.
    pub pc1_out: Value,
    /// PC2 encodes the sealed file in place; it is restored from here first, so PC2 can run
    /// again (resume from PC1Done) and give the same CommR.
    pub staged_file: String,
    /// The sector's cache directory.
    pub cache_dir: String,
    /// The sector's sealed replica.
    pub sealed_file: String,
}

/// `pc2`'s output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PC2Output {
    /// The replica commitment.
    pub comm_r: [u8; 32],
    /// The data commitment.
    pub comm_d: [u8; 32],
}

/// The `c1` task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct C1Task {
    /// The seal proof type (its wire integer).
    pub seal_proof: u64,
    /// The sector's cache directory.
    pub cache_dir: String,
    /// The sector's sealed replica.
    pub sealed_file: String,
    /// The miner's prover id.
    pub prover_id: [u8; 32],
    /// The sector's number.
    pub sector_number: u64,
    /// The ticket the sector was sealed with.
    pub ticket: [u8; 32],
    /// The interactive seed (randomness from the chain).
    pub seed: [u8; 32],
    /// The sector's pieces.
    pub pieces: Vec<PieceInfo>,
    /// The replica commitment.
    pub comm_r: [u8; 32],
    /// The data commitment.
    pub comm_d: [u8; 32],
}

/// The `c2` task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct C2Task {
    /// The seal proof type (its wire integer).
    pub seal_proof: u64,
    /// C1's output.
    pub c1_out: Value,
    /// The miner's prover id.
    pub prover_id: [u8; 32],
    /// The sector's number.
    pub sector_number: u64,
}

/// `c2`'s output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct C2Output {
    /// The proof bytes.
    #[serde(with = "super::go_json::b64")]
    pub proof: Vec<u8>,
}

/// `snap_encode`: encodes the staged deal data into a copy of a proven CC sector's replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapEncodeTask {
    /// The seal proof type (its wire integer).
    pub seal_proof: u64,
    /// The CC sector's sealed file (its sector key).
    pub sector_key: String,
    /// The CC sector's cache directory.
    pub sector_key_cache: String,
    /// The staged deal data.
    pub staged_file: String,
    /// Where the updated replica goes.
    pub update_file: String,
    /// Where the updated replica's cache goes.
    pub update_cache: String,
    /// The sector's pieces.
    pub pieces: Vec<PieceInfo>,
}

/// `snap_encode`'s output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapEncodeOutput {
    /// The updated replica's commitment.
    pub comm_r_new: [u8; 32],
    /// The data commitment of the deal data.
    pub comm_d_new: [u8; 32],
}

/// `snap_prove`: the proof that the updated replica encodes the data into the old one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapProveTask {
    /// The seal proof type (its wire integer).
    pub seal_proof: u64,
    /// The CC sector's replica commitment.
    pub comm_r_old: [u8; 32],
    /// The updated replica's commitment.
    pub comm_r_new: [u8; 32],
    /// The data commitment of the deal data.
    pub comm_d_new: [u8; 32],
    /// The CC sector's sealed file.
    pub sector_key: String,
    /// The CC sector's cache directory.
    pub sector_key_cache: String,
    /// The updated replica.
    pub update_file: String,
    /// The updated replica's cache.
    pub update_cache: String,
}

/// `snap_prove`'s output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapProveOutput {
    /// The update proof.
    #[serde(with = "super::go_json::b64")]
    pub proof: Vec<u8>,
}

/// `unseal`: regenerates a piece's bytes from a sealed replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnsealTask {
    /// The seal proof type (its wire integer).
    pub seal_proof: u64,
    /// The sector's cache directory.
    pub cache_dir: String,
    /// The sector's sealed replica.
    pub sealed_file: String,
    /// Where the bytes go (unpadded).
    pub output: String,
    /// The miner's prover id.
    pub prover_id: [u8; 32],
    /// The sector's number.
    pub sector_number: u64,
    /// The ticket the sector was sealed with.
    pub ticket: [u8; 32],
    /// The sector's data commitment.
    pub comm_d: [u8; 32],
    /// Where the piece starts in the sector, in unpadded bytes.
    pub offset: u64,
    /// How many unpadded bytes.
    pub size: u64,
    /// A snapped sector: the piece is decoded from its updated replica instead (`comm_d` is
    /// then the update's), and `sealed_file` and `cache_dir` are unused.
    #[serde(default)]
    pub update: Option<UnsealFromUpdate>,
}

/// The files and commitment a snapped sector's piece is decoded from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnsealFromUpdate {
    /// The updated replica.
    pub update_file: String,
    /// The sealed replica the update was encoded into (the sector key).
    pub sector_key_file: String,
    /// The sealed replica's commitment.
    pub comm_r_old: [u8; 32],
}

/// `unseal`'s output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnsealOutput {
    /// The bytes written.
    pub written: u64,
}

/// One sector of a WindowPoSt job, with the paths the worker resolved for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoStReplica {
    /// The sector's number.
    pub sector_id: u64,
    /// The replica commitment.
    pub comm_r: [u8; 32],
    /// The sector's cache directory.
    pub cache_dir: String,
    /// The sector's sealed replica.
    pub sealed_file: String,
}

/// `window_post` (damocles' task shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowPoStTask {
    /// The miner.
    pub miner_id: u64,
    /// The WindowPoSt proof type, by damocles' name.
    pub proof_type: String,
    /// The sectors' files, in order.
    pub replicas: Vec<PoStReplica>,
    /// The interactive seed (randomness from the chain).
    pub seed: [u8; 32],
}

/// `window_post`'s output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowPoStOutput {
    /// One proof per partition.
    #[serde(deserialize_with = "super::go_json::null_as_default")]
    pub proofs: Vec<ProofBytes>,
    /// Go writes no faults as `null`.
    #[serde(default, deserialize_with = "super::go_json::null_as_default")]
    pub faults: Vec<u64>,
}

/// Proof bytes, base64 on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProofBytes(#[serde(with = "super::go_json::b64")] pub Vec<u8>);
