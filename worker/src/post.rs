//! The `window_post` stage: a real WindowPoSt over the replicas of a job.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use damocles_actors::wire::processor::{ProofBytes, WindowPoStOutput, WindowPoStTask};
use damocles_actors::wire::venus::prover_id;
use filecoin_proofs_api::{post, PrivateReplicaInfo, SectorId};
use serde_json::Value;

use crate::params;

pub fn window_post(t: WindowPoStTask) -> Result<Value> {
    let proof = damocles_proof_types::window_post(&t.proof_type).map_err(|e| anyhow!(e))?;
    let circuit = params::Circuit::WindowPost(proof);
    if !params::present(circuit)? {
        return Err(anyhow!(
            "no cached parameters found at {}",
            circuit.params_path()?.display()
        ));
    }
    let mut replicas = BTreeMap::new();
    for r in &t.replicas {
        replicas.insert(
            SectorId::from(r.sector_id),
            PrivateReplicaInfo::new(
                proof,
                r.comm_r,
                r.cache_dir.clone().into(),
                r.sealed_file.clone().into(),
            ),
        );
    }
    let proofs = post::generate_window_post(&t.seed, &replicas, prover_id(t.miner_id))?;
    serde_json::to_value(WindowPoStOutput {
        proofs: proofs.into_iter().map(|(_, p)| ProofBytes(p)).collect(),
        faults: vec![],
    })
    .map_err(Into::into)
}
