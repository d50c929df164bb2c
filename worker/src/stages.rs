//! The proofs behind each processor stage: real `filecoin-proofs-api` calls on the task's files.

use std::fs::OpenOptions;
use std::io::Read;

use anyhow::{anyhow, Context, Result};
use damocles_actors::wire::commcid;
use damocles_actors::wire::processor::{
    AddPiecesOutput, AddPiecesTask, C1Task, C2Output, C2Task, DealPiece, PC1Task, PC2Output,
    PC2Task, PieceInfo, SnapEncodeOutput, SnapEncodeTask, SnapProveOutput, SnapProveTask, Stage,
    TreeDOutput, TreeDTask, UnsealFromUpdate, UnsealOutput, UnsealTask,
};
use filecoin_proofs_api::seal::{
    self, SealCommitPhase1Output, SealPreCommitPhase1Output, SealPreCommitPhase2Output,
};
use filecoin_proofs_api::{
    update, RegisteredSealProof, SectorId, UnpaddedByteIndex, UnpaddedBytesAmount,
};
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
        Stage::SnapEncode => snap_encode(parse(task)?),
        Stage::SnapProve => snap_prove(parse(task)?),
        Stage::Unseal => unseal(parse(task)?),
    }
}

/// `damocles-worker bench-stage`: the bare library call of `stage`, `runs` times in one
/// process (the first run loads parameters; later runs find them in the library's memory
/// cache, as a warm processor child does). Prints one line per run: `run <n> <seconds>`.
pub fn bench(stage: &str, task: &std::path::Path, runs: usize) -> Result<()> {
    let stage: Stage = stage.parse().map_err(|e| anyhow!("{e}"))?;
    let task: Value = serde_json::from_str(&std::fs::read_to_string(task)?)?;
    for n in 1..=runs {
        let started = std::time::Instant::now();
        run(stage, task.clone())?;
        println!("run {n} {:.6}", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// `damocles-worker bench-seal`: one 2KiB CC sector from `add_pieces` to `c2`, each stage's
/// bare library call right after the other in this process, `runs` times (each in
/// `<dir>/run<n>`; the first loads parameters). Prints one line per run:
/// `run <n> <seconds> <stage>=<seconds> ...`.
pub fn bench_seal(dir: &std::path::Path, runs: usize) -> Result<()> {
    use damocles_actors::wire::seal_proof::STACKED_DRG_2KIB_V1_1 as SEAL_PROOF;
    use damocles_actors::wire::venus::prover_id;
    for n in 1..=runs {
        let d = dir.join(format!("run{n}"));
        std::fs::create_dir_all(d.join("cache"))?;
        let path = |name: &str| d.join(name).display().to_string();
        let (prover_id, sector_number) = (prover_id(10000), 1);
        let (ticket, seed) = ([7u8; 32], [9u8; 32]);
        let mut stages = Vec::new();
        let started = std::time::Instant::now();
        let mut timed = |stage: Stage, task: Value| -> Result<Value> {
            let t = std::time::Instant::now();
            let out = run(stage, task)?;
            stages.push(format!("{stage}={:.6}", t.elapsed().as_secs_f64()));
            Ok(out)
        };
        let added: AddPiecesOutput = serde_json::from_value(timed(
            Stage::AddPieces,
            to_value(AddPiecesTask {
                seal_proof: SEAL_PROOF,
                staged_file: path("staged"),
                pieces: Vec::new(),
            })?,
        )?)?;
        let pieces = added.pieces;
        timed(
            Stage::TreeD,
            to_value(TreeDTask {
                seal_proof: SEAL_PROOF,
                pieces: pieces.clone(),
            })?,
        )?;
        let pc1_out = timed(
            Stage::Pc1,
            to_value(PC1Task {
                seal_proof: SEAL_PROOF,
                cache_dir: path("cache"),
                staged_file: path("staged"),
                sealed_file: path("sealed"),
                prover_id,
                sector_number,
                ticket,
                pieces: pieces.clone(),
            })?,
        )?;
        let pc2: PC2Output = serde_json::from_value(timed(
            Stage::Pc2,
            to_value(PC2Task {
                seal_proof: SEAL_PROOF,
                pc1_out,
                staged_file: path("staged"),
                cache_dir: path("cache"),
                sealed_file: path("sealed"),
            })?,
        )?)?;
        let c1_out = timed(
            Stage::C1,
            to_value(C1Task {
                seal_proof: SEAL_PROOF,
                cache_dir: path("cache"),
                sealed_file: path("sealed"),
                prover_id,
                sector_number,
                ticket,
                seed,
                pieces,
                comm_r: pc2.comm_r,
                comm_d: pc2.comm_d,
            })?,
        )?;
        timed(
            Stage::C2,
            to_value(C2Task {
                seal_proof: SEAL_PROOF,
                c1_out,
                prover_id,
                sector_number,
            })?,
        )?;
        println!(
            "run {n} {:.6} {}",
            started.elapsed().as_secs_f64(),
            stages.join(" ")
        );
    }
    Ok(())
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

/// The deals' pieces in the order given, each checked against its CID before it is written,
/// then zero pieces up to the sector's size (`filler_sizes`; a CC sector is all fillers). Each
/// piece is aligned to its size, as the chain requires; the manager computes the same CommD
/// from the deals alone (`sector_comm_d`).
fn add_pieces(t: AddPiecesTask) -> Result<Value> {
    let proof = seal_proof(t.seal_proof)?;
    let sector = u64::from(proof.sector_size());
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&t.staged_file)
        .with_context(|| format!("open staged file {}", t.staged_file))?;
    let mut lengths: Vec<UnpaddedBytesAmount> = Vec::new();
    let mut pieces = Vec::new();
    let mut written = 0u64;
    for p in &t.pieces {
        let data = checked_piece(t.seal_proof, p)?;
        let size = unpadded(p.size);
        let (info, n) = seal::add_piece(proof, data.as_slice(), &mut file, size, &lengths)?;
        lengths.push(size);
        written += u64::from(n);
        pieces.push(from_api(&info));
    }
    let padded_written = written / 127 * 128;
    if padded_written > sector {
        return Err(anyhow!(
            "the pieces take {padded_written} bytes, more than the {sector} byte sector"
        ));
    }
    for filler in damocles_proof_types::filler_sizes(sector, padded_written) {
        let size = unpadded(filler);
        let zeros = std::io::repeat(0).take(u64::from(size));
        let (info, _) = seal::add_piece(proof, zeros, &mut file, size, &lengths)?;
        lengths.push(size);
        pieces.push(from_api(&info));
    }
    to_value(AddPiecesOutput { pieces })
}

/// The unpadded size of a padded piece size.
fn unpadded(padded: u64) -> UnpaddedBytesAmount {
    UnpaddedBytesAmount(padded - padded / 128)
}

/// A deal's bytes padded with zeros to its piece, once they are known to make the piece's CID:
/// data that does not match its deal is never sealed.
fn checked_piece(proof: u64, p: &DealPiece) -> Result<Vec<u8>> {
    let want = commcid::piece_comm(&p.cid).map_err(|e| anyhow!(e))?;
    let mut data = std::fs::read(&p.file).with_context(|| format!("read piece {}", p.file))?;
    let made = damocles_proof_types::piece_commitment(proof, &data, p.size)
        .map_err(|e| anyhow!("piece {}: {e}", p.cid))?;
    if made != want {
        return Err(anyhow!(
            "piece {}: its bytes make piece CID {}, not the one the deal names; they are not sealed",
            p.cid,
            commcid::piece_cid(&made)
        ));
    }
    data.resize(u64::from(unpadded(p.size)) as usize, 0);
    Ok(data)
}

fn from_api(info: &filecoin_proofs_api::PieceInfo) -> PieceInfo {
    PieceInfo {
        size: u64::from(info.size),
        comm_p: info.commitment,
    }
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

/// The update circuit's parameters must be there: the daemon generates them, never a child.
fn require_update_params(proof: u64) -> Result<filecoin_proofs_api::RegisteredUpdateProof> {
    let update = damocles_proof_types::update_of_seal(proof).map_err(|e| anyhow!(e))?;
    let circuit = params::Circuit::Update(update);
    if !params::present(circuit)? {
        return Err(anyhow!(
            "permanent: no cached parameters found at {}",
            circuit.params_path()?.display()
        ));
    }
    Ok(update)
}

fn snap_encode(t: SnapEncodeTask) -> Result<Value> {
    let proof = seal_proof(t.seal_proof)?;
    let update = damocles_proof_types::update_of_seal(t.seal_proof).map_err(|e| anyhow!(e))?;
    // The library maps the new replica: it must exist at the sector's size.
    let replica = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&t.update_file)
        .with_context(|| format!("create update file {}", t.update_file))?;
    replica.set_len(u64::from(proof.sector_size()))?;
    drop(replica);
    std::fs::create_dir_all(&t.update_cache)
        .with_context(|| format!("create update cache {}", t.update_cache))?;
    let pieces: Vec<_> = t.pieces.iter().map(to_api).collect();
    let out = update::empty_sector_update_encode_into(
        update,
        &t.update_file,
        &t.update_cache,
        &t.sector_key,
        &t.sector_key_cache,
        &t.staged_file,
        &pieces,
    )?;
    to_value(SnapEncodeOutput {
        comm_r_new: out.comm_r_new,
        comm_d_new: out.comm_d_new,
    })
}

fn snap_prove(t: SnapProveTask) -> Result<Value> {
    let update = require_update_params(t.seal_proof)?;
    let proof = update::generate_empty_sector_update_proof(
        update,
        t.comm_r_old,
        t.comm_r_new,
        t.comm_d_new,
        &t.sector_key,
        &t.sector_key_cache,
        &t.update_file,
        &t.update_cache,
    )?;
    to_value(SnapProveOutput { proof: proof.0 })
}

/// The piece's bytes, decoded from the sealed replica (the layers are labelled again from the
/// ticket: the cache needs no more than PC2 left in it).
fn unseal(t: UnsealTask) -> Result<Value> {
    if let Some(u) = &t.update {
        return unseal_update(&t, u);
    }
    let proof = seal_proof(t.seal_proof)?;
    let sealed = std::fs::File::open(&t.sealed_file)
        .with_context(|| format!("open sealed file {}", t.sealed_file))?;
    let output = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&t.output)
        .with_context(|| format!("create output {}", t.output))?;
    let mut output = std::io::BufWriter::new(output);
    let written = seal::unseal_range(
        proof,
        &t.cache_dir,
        std::io::BufReader::new(sealed),
        &mut output,
        t.prover_id,
        SectorId::from(t.sector_number),
        t.comm_d,
        t.ticket,
        UnpaddedByteIndex(t.offset),
        UnpaddedBytesAmount(t.size),
    )?;
    let file = output
        .into_inner()
        .map_err(|e| anyhow!("write {}: {e}", t.output))?;
    file.sync_all()?;
    to_value(UnsealOutput {
        written: u64::from(written),
    })
}

/// A snapped sector's piece: its nodes in the updated replica, decoded against the same nodes
/// of the sector key with the update's CommD and the old CommR, then unpadded (Fr32).
fn unseal_update(t: &UnsealTask, u: &UnsealFromUpdate) -> Result<Value> {
    use std::io::{Seek, SeekFrom};
    let proof = damocles_proof_types::update_of_seal(t.seal_proof).map_err(anyhow::Error::msg)?;
    // Pieces are aligned to their (padded) size: whole 128 byte blocks, 127 bytes of data each.
    if !t.offset.is_multiple_of(127) || !t.size.is_multiple_of(127) || t.size == 0 {
        return Err(anyhow!(
            "offset {} and size {} are not whole Fr32 blocks (multiples of 127 bytes)",
            t.offset,
            t.size
        ));
    }
    let (from, len) = (t.offset / 127 * 128, t.size / 127 * 128);
    let open_at = |path: &str| -> Result<std::io::Take<std::io::BufReader<std::fs::File>>> {
        let mut f = std::fs::File::open(path).with_context(|| format!("open {path}"))?;
        f.seek(SeekFrom::Start(from))?;
        Ok(std::io::BufReader::new(f).take(len))
    };
    let mut padded = Vec::with_capacity(len as usize);
    update::empty_sector_update_decode_from_range(
        proof,
        t.comm_d,
        u.comm_r_old,
        open_at(&u.update_file)?,
        open_at(&u.sector_key_file)?,
        &mut padded,
        (from / 32) as usize,
        (len / 32) as usize,
    )?;
    let mut output =
        std::fs::File::create(&t.output).with_context(|| format!("create output {}", t.output))?;
    let written = fr32::write_unpadded(&padded, &mut output, 0, t.size as usize)?;
    output.sync_all()?;
    to_value(UnsealOutput {
        written: written as u64,
    })
}
