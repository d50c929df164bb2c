//! The line-JSON protocol between a worker and its processor children (damocles-compatible):
//! the child prints `<stage> processor ready`, then answers one JSON request per line.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::by_name;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessorRequest {
    pub id: u64,
    pub task: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessorResponse {
    pub id: u64,
    pub err_msg: Option<String>,
    pub output: Option<Value>,
}

/// A piece in a sector: its padded size and commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceInfo {
    pub size: u64,
    pub comm_p: [u8; 32],
}

/// `add_pieces`: write the sector's pieces into the staged file. No pieces means a CC sector:
/// one zero piece filling the sector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddPiecesTask {
    pub seal_proof: u64,
    pub staged_file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddPiecesOutput {
    pub pieces: Vec<PieceInfo>,
}

/// `tree_d`: the data commitment of the pieces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeDTask {
    pub seal_proof: u64,
    pub pieces: Vec<PieceInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeDOutput {
    pub comm_d: [u8; 32],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PC1Task {
    pub seal_proof: u64,
    pub cache_dir: String,
    pub staged_file: String,
    pub sealed_file: String,
    pub prover_id: [u8; 32],
    pub sector_number: u64,
    pub ticket: [u8; 32],
    pub pieces: Vec<PieceInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PC2Task {
    pub seal_proof: u64,
    pub pc1_out: Value,
    /// PC2 encodes the sealed file in place; it is restored from here first, so PC2 can run
    /// again (resume from PC1Done) and give the same CommR.
    pub staged_file: String,
    pub cache_dir: String,
    pub sealed_file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PC2Output {
    pub comm_r: [u8; 32],
    pub comm_d: [u8; 32],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct C1Task {
    pub seal_proof: u64,
    pub cache_dir: String,
    pub sealed_file: String,
    pub prover_id: [u8; 32],
    pub sector_number: u64,
    pub ticket: [u8; 32],
    pub seed: [u8; 32],
    pub pieces: Vec<PieceInfo>,
    pub comm_r: [u8; 32],
    pub comm_d: [u8; 32],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct C2Task {
    pub seal_proof: u64,
    pub c1_out: Value,
    pub prover_id: [u8; 32],
    pub sector_number: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct C2Output {
    #[serde(with = "super::venus::b64")]
    pub proof: Vec<u8>,
}

/// One sector of a WindowPoSt job, with the paths the worker resolved for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoStReplica {
    pub sector_id: u64,
    pub comm_r: [u8; 32],
    pub cache_dir: String,
    pub sealed_file: String,
}

/// `window_post` (damocles' task shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowPoStTask {
    pub miner_id: u64,
    pub proof_type: String,
    pub replicas: Vec<PoStReplica>,
    pub seed: [u8; 32],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowPoStOutput {
    #[serde(deserialize_with = "super::venus::null_as_default")]
    pub proofs: Vec<ProofBytes>,
    /// Go writes no faults as `null`.
    #[serde(default, deserialize_with = "super::venus::null_as_default")]
    pub faults: Vec<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProofBytes(#[serde(with = "super::venus::b64")] pub Vec<u8>);
