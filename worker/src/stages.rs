//! The proofs behind each processor stage: real `filecoin-proofs-api` calls on the task's files.

use std::fs::OpenOptions;
use std::io::Read;

use anyhow::{anyhow, Context, Result};
use damocles_actors::wire::processor::{
    AddPiecesOutput, AddPiecesTask, C1Task, C2Output, C2Task, PC1Task, PC2Output, PC2Task,
    PieceInfo, Stage, TreeDOutput, TreeDTask,
};
use filecoin_proofs_api::seal::{
    self, SealCommitPhase1Output, SealPreCommitPhase1Output, SealPreCommitPhase2Output,
};
use filecoin_proofs_api::{RegisteredSealProof, SectorId, UnpaddedBytesAmount};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::params;

pub fn run(stage: Stage, task: Value) -> Result<Value> {
    match stage {
        Stage::AddPieces => add_pieces(parse(task)?),
        Stage::TreeD => tree_d(parse(task)?),
        Stage::Pc1 => pc1(parse(task)?),
        Stage::Pc2 => pc2(parse(task)?),
        Stage::C1 => c1(parse(task)?),
        Stage::C2 => c2(parse(task)?),
        Stage::WindowPost => crate::post::window_post(parse(task)?),
        Stage::SnapEncode | Stage::SnapProve | Stage::Unseal => {
            Err(anyhow!("stage {stage} is not served by this processor yet"))
        }
    }
}

fn parse<T: DeserializeOwned>(task: Value) -> Result<T> {
    serde_json::from_value(task).context("task does not match the stage")
}

/// The proofs library's seal proof for a task's wire integer.
fn seal_proof(code: u64) -> Result<RegisteredSealProof> {
    damocles_proof_types::seal_proof(code).map_err(anyhow::Error::msg)
}

fn to_api(p: &PieceInfo) -> filecoin_proofs_api::PieceInfo {
    filecoin_proofs_api::PieceInfo {
        commitment: p.comm_p,
        size: UnpaddedBytesAmount(p.size),
    }
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value> {
    Ok(serde_json::to_value(v)?)
}

/// A CC sector: one zero piece that fills it.
fn add_pieces(t: AddPiecesTask) -> Result<Value> {
    let proof = seal_proof(t.seal_proof)?;
    let sector = u64::from(proof.sector_size());
    let unpadded = sector - sector / 128;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&t.staged_file)
        .with_context(|| format!("open staged file {}", t.staged_file))?;
    let zeros = std::io::repeat(0).take(unpadded);
    let (info, _) = seal::add_piece(proof, zeros, &mut file, UnpaddedBytesAmount(unpadded), &[])?;
    to_value(AddPiecesOutput {
        pieces: vec![PieceInfo {
            size: u64::from(info.size),
            comm_p: info.commitment,
        }],
    })
}

fn tree_d(t: TreeDTask) -> Result<Value> {
    let proof = seal_proof(t.seal_proof)?;
    let pieces: Vec<_> = t.pieces.iter().map(to_api).collect();
    let comm_d = seal::compute_comm_d(proof, &pieces)?;
    to_value(TreeDOutput { comm_d })
}

fn pc1(t: PC1Task) -> Result<Value> {
    let proof = seal_proof(t.seal_proof)?;
    // The library wants the replica file to exist.
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&t.sealed_file)
        .with_context(|| format!("create sealed file {}", t.sealed_file))?;
    let pieces: Vec<_> = t.pieces.iter().map(to_api).collect();
    let out = seal::seal_pre_commit_phase1(
        proof,
        &t.cache_dir,
        &t.staged_file,
        &t.sealed_file,
        t.prover_id,
        SectorId::from(t.sector_number),
        t.ticket,
        &pieces,
    )?;
    to_value(out)
}

fn pc2(t: PC2Task) -> Result<Value> {
    let _ = seal_proof(t.seal_proof)?;
    let pc1: SealPreCommitPhase1Output =
        serde_json::from_value(t.pc1_out).context("PC1 output does not parse")?;
    std::fs::copy(&t.staged_file, &t.sealed_file)
        .with_context(|| format!("restore {} from {}", t.sealed_file, t.staged_file))?;
    let out = seal::seal_pre_commit_phase2(pc1, &t.cache_dir, &t.sealed_file)?;
    to_value(PC2Output {
        comm_r: out.comm_r,
        comm_d: out.comm_d,
    })
}

fn c1(t: C1Task) -> Result<Value> {
    let proof = seal_proof(t.seal_proof)?;
    let pieces: Vec<_> = t.pieces.iter().map(to_api).collect();
    let pre = SealPreCommitPhase2Output {
        registered_proof: proof,
        comm_r: t.comm_r,
        comm_d: t.comm_d,
    };
    let out = seal::seal_commit_phase1(
        &t.cache_dir,
        &t.sealed_file,
        t.prover_id,
        SectorId::from(t.sector_number),
        t.ticket,
        t.seed,
        pre,
        &pieces,
    )?;
    to_value(out)
}

fn c2(t: C2Task) -> Result<Value> {
    let proof = seal_proof(t.seal_proof)?;
    // Never generate here: the daemon does that once; a missing file is the operator's to fix.
    let circuit = params::Circuit::Seal(proof);
    if !params::present(circuit)? {
        return Err(anyhow!(
            "permanent: no cached parameters found at {}",
            circuit.params_path()?.display()
        ));
    }
    let c1: SealCommitPhase1Output =
        serde_json::from_value(t.c1_out).context("C1 output does not parse")?;
    let out = seal::seal_commit_phase2(c1, t.prover_id, SectorId::from(t.sector_number))?;
    to_value(C2Output { proof: out.proof })
}
