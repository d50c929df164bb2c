//! Proof verification with the real `filecoin-proofs-api` verifier.

use anyhow::{anyhow, Result};
use filecoin_proofs_api::{seal, RegisteredSealProof, SectorId};

fn seal_proof(code: u64) -> Result<RegisteredSealProof> {
    use RegisteredSealProof::*;
    Ok(match code {
        5 => StackedDrg2KiBV1_1,
        6 => StackedDrg8MiBV1_1,
        7 => StackedDrg512MiBV1_1,
        8 => StackedDrg32GiBV1_1,
        9 => StackedDrg64GiBV1_1,
        other => return Err(anyhow!("unsupported seal proof type {other}")),
    })
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
    let registered = seal_proof(proof_type)?;
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
