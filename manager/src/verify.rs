//! Proof verification with the real `filecoin-proofs-api` verifiers (PoRep and WindowPoSt).

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use damocles_actors::wire::venus::prover_id;
use damocles_actors::wire::venus_post::PoStInput;
use damocles_proof_types as proof_types;
use filecoin_proofs_api::{post, seal, PublicReplicaInfo, SectorId};

/// Runs a verification on a blocking thread, at most one per core at once: every
/// `SubmitProof` and `WdPoStFinishJob` verifies, and a burst of them (or a hostile caller) must
/// queue instead of taking every thread of the blocking pool and all memory.
pub async fn limited<T: Send + 'static>(verify: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    });
    let _slot = slots.acquire().await?;
    Ok(tokio::task::spawn_blocking(verify).await?)
}

/// True when `proof` is a valid PoRep of the sector; an error when it cannot be checked (for
/// example a missing verifying key).
#[allow(clippy::too_many_arguments)]
pub fn verify_seal(
    proof_type: u64,
    comm_r: [u8; 32],
    comm_d: [u8; 32],
    prover_id: [u8; 32],
    sector_number: u64,
    ticket: [u8; 32],
    seed: [u8; 32],
    proof: &[u8],
) -> Result<bool> {
    let registered = proof_types::seal_proof(proof_type).map_err(|e| anyhow!(e))?;
    let vk = registered.cache_verifying_key_path()?;
    if !vk.exists() {
        return Err(anyhow!(
            "no verifying key at {}: start a worker on this machine once to generate it, or copy it here",
            vk.display()
        ));
    }
    match seal::verify_seal(
        registered,
        comm_r,
        comm_d,
        prover_id,
        SectorId::from(sector_number),
        ticket,
        seed,
        proof,
    ) {
        Ok(ok) => Ok(ok),
        // With the key present, an error means bytes that are not a proof: an invalid proof.
        Err(e) => {
            tracing::warn!(error = %e, "proof does not parse");
            Ok(false)
        }
    }
}

/// True when `proof` is a valid snap-up update of a sector sealed with `proof_type`, from
/// `comm_r_old` to `comm_r_new` holding `comm_d_new`; an error when it cannot be checked.
pub fn verify_update(
    proof_type: u64,
    proof: &[u8],
    comm_r_old: [u8; 32],
    comm_r_new: [u8; 32],
    comm_d_new: [u8; 32],
) -> Result<bool> {
    let registered = proof_types::update_of_seal(proof_type).map_err(|e| anyhow!(e))?;
    let (_, vk) = proof_types::update_param_files(registered).map_err(|e| anyhow!(e))?;
    if !vk.exists() {
        return Err(anyhow!(
            "no verifying key at {}: run `damocles-worker params` on this machine once, or copy it here",
            vk.display()
        ));
    }
    match filecoin_proofs_api::update::verify_empty_sector_update_proof(
        registered, proof, comm_r_old, comm_r_new, comm_d_new,
    ) {
        Ok(ok) => Ok(ok),
        // With the key present, an error means bytes that are not a proof: an invalid proof.
        Err(e) => {
            tracing::warn!(error = %e, "update proof does not parse");
            Ok(false)
        }
    }
}

/// The WindowPoSt proof of a seal proof (`StackedDrgWindow2KiBV1_2` for 2KiB), as it is named
/// on the wire.
pub fn post_proof_name(seal_code: u64) -> Result<String> {
    let proof = proof_types::window_post_of_seal(seal_code).map_err(|e| anyhow!(e))?;
    Ok(proof_types::window_post_name(proof)
        .map_err(|e| anyhow!(e))?
        .to_string())
}

/// Sectors per WindowPoSt partition for a seal proof (2 for 2KiB, 2349 for 32GiB).
pub fn partition_sectors(seal_code: u64) -> Result<usize> {
    let proof = proof_types::window_post_of_seal(seal_code).map_err(|e| anyhow!(e))?;
    Ok(proof.sector_count())
}

/// True when `proofs` is a valid WindowPoSt of the job's sectors; an error when it cannot be
/// checked (unknown proof type, missing verifying key).
pub fn verify_window_post(input: &PoStInput, proofs: &[Vec<u8>]) -> Result<bool> {
    let registered = proof_types::window_post(&input.proof_type).map_err(|e| anyhow!(e))?;
    let vk = registered.cache_verifying_key_path()?;
    if !vk.exists() {
        return Err(anyhow!(
            "no verifying key at {}: start a wdpost worker on this machine once to generate it, or copy it here",
            vk.display()
        ));
    }
    let [proof] = proofs else {
        return Ok(false);
    };
    let replicas: BTreeMap<SectorId, PublicReplicaInfo> = input
        .sectors
        .iter()
        .map(|s| {
            (
                SectorId::from(s.sector_id),
                PublicReplicaInfo::new(registered, s.comm_r),
            )
        })
        .collect();
    match post::verify_window_post(
        &input.seed,
        &[(registered, proof.as_slice())],
        &replicas,
        prover_id(input.miner_id),
    ) {
        Ok(ok) => Ok(ok),
        Err(e) => {
            tracing::warn!(error = %e, "WindowPoSt proof does not parse");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_post_names_follow_the_sector_size() {
        assert_eq!(
            post_proof_name(5).ok().as_deref(),
            Some("StackedDrgWindow2KiBV1_2")
        );
        assert_eq!(
            post_proof_name(8).ok().as_deref(),
            Some("StackedDrgWindow32GiBV1_2")
        );
        assert_eq!(partition_sectors(5).ok(), Some(2));
        assert_eq!(partition_sectors(8).ok(), Some(2349));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verifications_run_at_most_one_per_core() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let runs = (0..cores * 3).map(|_| {
            let (now, most) = (now.clone(), most.clone());
            limited(move || {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(100));
                now.fetch_sub(1, Ordering::SeqCst);
            })
        });
        for r in futures_util::future::join_all(runs).await {
            r.unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            most >= 1 && most <= cores,
            "{most} at once on {cores} cores"
        );
    }
}
