//! The `sealer` plan: a new sector (committed capacity, or deals with `enable_deals`) from
//! `Empty` to `Finished`. The table below is the whole plan: one row per state (its stage, its
//! step, where each event leads), and one function per step (those other plans share are in
//! `shared.rs`). Adding a state is a row here, its function here, and its test rows.

use std::time::Duration;

use super::calls::{
    bytes32, commitments, path_str, persist, poll, process, rpc, submit, wait_for_params,
};
use super::failure::Failure;
use super::shared::{abort, add_pieces, finalize, tree_d};
use super::state::{EventKind as E, State as S};
use super::table::{Outcome, Row, Step, StepResult, Table};
use crate::thread::plan::PlanKind;
use crate::wire::processor::{self as task, Stage};
use crate::wire::venus::{prover_id, AllocateSectorSpec, PreCommitOnChainInfo, ProofOnChainInfo};
use crate::wire::venus_methods as m;

/// The sealer plan, in pipeline order.
#[rustfmt::skip]
pub static SEALER: Table = Table {
    plan: PlanKind::Sealer,
    stages: &[Stage::AddPieces, Stage::TreeD, Stage::Pc1, Stage::Pc2, Stage::C1, Stage::C2],
    rows: &[
        Row { state: S::Empty, stage: None, step: |s| Box::pin(allocate(s)), next: &[(E::Allocate, S::Allocated)] },
        Row { state: S::Allocated, stage: Some("AcquireDeals"), step: |s| Box::pin(acquire_deals(s)), next: &[(E::AcquireDeals, S::DealsAcquired)] },
        Row { state: S::DealsAcquired, stage: Some("AddPieces"), step: |s| Box::pin(add_pieces(s)), next: &[(E::AddPiece, S::PieceAdded)] },
        Row { state: S::PieceAdded, stage: Some("TreeD"), step: |s| Box::pin(tree_d(s)), next: &[(E::BuildTreeD, S::TreeDBuilt)] },
        Row { state: S::TreeDBuilt, stage: Some("AssignTicket"), step: |s| Box::pin(assign_ticket(s)), next: &[(E::AssignTicket, S::TicketAssigned)] },
        Row { state: S::TicketAssigned, stage: Some("PC1"), step: |s| Box::pin(pc1(s)), next: &[(E::PC1, S::PC1Done)] },
        Row { state: S::PC1Done, stage: Some("PC2"), step: |s| Box::pin(pc2(s)), next: &[(E::PC2, S::PC2Done)] },
        Row { state: S::PC2Done, stage: Some("SubmitPreCommit"), step: |s| Box::pin(submit_pre_commit(s)), next: &[(E::SubmitPC, S::PCSubmitted)] },
        Row { state: S::PCSubmitted, stage: Some("WaitPCLanded"), step: |s| Box::pin(wait_pre_commit(s)), next: &[(E::ReSubmitPC, S::PC2Done), (E::CheckPC, S::PCLanded)] },
        Row { state: S::PCLanded, stage: Some("PersistFiles"), step: |s| Box::pin(persist_files(s)), next: &[(E::Persist, S::Persisted)] },
        Row { state: S::Persisted, stage: Some("SubmitPersisted"), step: |s| Box::pin(submit_persisted(s)), next: &[(E::SubmitPersistance, S::PersistanceSubmitted)] },
        Row { state: S::PersistanceSubmitted, stage: Some("WaitSeed"), step: |s| Box::pin(wait_seed(s)), next: &[(E::AssignSeed, S::SeedAssigned)] },
        Row { state: S::SeedAssigned, stage: Some("C1"), step: |s| Box::pin(c1(s)), next: &[(E::C1, S::C1Done)] },
        Row { state: S::C1Done, stage: Some("C2"), step: |s| Box::pin(c2(s)), next: &[(E::C2, S::C2Done)] },
        Row { state: S::C2Done, stage: Some("SubmitProof"), step: |s| Box::pin(submit_proof(s)), next: &[(E::SubmitProof, S::ProofSubmitted)] },
        Row { state: S::ProofSubmitted, stage: Some("WaitProofLanded"), step: |s| Box::pin(wait_proof(s)), next: &[(E::ReSubmitProof, S::C2Done), (E::Finish, S::Finished)] },
        Row { state: S::Finished, stage: None, step: |s| Box::pin(finalize(s)), next: &[] },
        Row { state: S::Aborted, stage: None, step: |s| Box::pin(abort(s)), next: &[] },
    ],
};

/// Asks for a new sector, unless the disk quota holds the thread back.
async fn allocate(s: Step) -> StepResult {
    let env = &s.env;
    let (quota, types) = (env.quota.clone(), env.sealing.allowed_proof_types.clone());
    let refusal = tokio::task::spawn_blocking(move || quota.refusal(types.as_deref()))
        .await
        .map_err(|e| Failure::critical(e.to_string()))?;
    if let Some(reason) = refusal {
        return Ok(Outcome::Held {
            delay: env.sealing.recover_interval,
            reason,
        });
    }
    let spec = AllocateSectorSpec {
        allowed_miners: env.sealing.allowed_miners.clone(),
        allowed_proof_types: env.sealing.allowed_proof_types.clone(),
    };
    let delay = env.sealing.recover_interval;
    // Any failure to get a new sector means "nothing to do now", as in damocles. Who asks is
    // not a parameter: the manager knows the worker by its token, the thread by a header.
    match rpc::<m::AllocateSector>(env, (spec,)).await {
        Ok(Some(a)) => {
            let mut s = s;
            s.sector.allocated = Some(a);
            s.moved(E::Allocate)
        }
        Ok(None) => Ok(Outcome::Wait {
            delay,
            reason: "no sector allocated".into(),
        }),
        Err(e) => Ok(Outcome::Wait {
            delay,
            reason: format!("cannot allocate a sector: {e}"),
        }),
    }
}

/// Asks for deals when the thread takes them (`enable_deals`); a CC sector otherwise, as in
/// damocles, without asking.
async fn acquire_deals(mut s: Step) -> StepResult {
    if s.env.sealing.enable_deals {
        let spec = s.env.sealing.deals.clone();
        let deals = rpc::<m::AcquireDeals>(&s.env, (s.id()?, spec)).await?;
        s.sector.deals = deals.unwrap_or_default();
    }
    s.moved(E::AcquireDeals)
}

async fn assign_ticket(mut s: Step) -> StepResult {
    let ticket = rpc::<m::AssignTicket>(&s.env, (s.id()?,)).await?;
    s.sector.ticket = Some(ticket);
    s.moved(E::AssignTicket)
}

pub(super) async fn pc1(mut s: Step) -> StepResult {
    let (id, loc) = (s.id()?, &s.env.location);
    let cache = loc.cache(id);
    tokio::fs::create_dir_all(&cache)
        .await
        .map_err(|e| Failure::perm(format!("create {}: {e}", cache.display())))?;
    let t = task::PC1Task {
        seal_proof: s.proof(),
        cache_dir: path_str(&cache),
        staged_file: path_str(&loc.staged(id)),
        sealed_file: path_str(&loc.sealed(id)),
        prover_id: prover_id(id.miner),
        sector_number: id.number,
        ticket: bytes32("ticket", s.sector.ticket.as_ref().map(|t| &t.ticket))?,
        pieces: s.sector.pieces.clone(),
    };
    s.sector.pc1_out = Some(process(&s, Stage::Pc1, &t).await?);
    s.moved(E::PC1)
}

pub(super) async fn pc2(mut s: Step) -> StepResult {
    let (id, loc) = (s.id()?, &s.env.location);
    let t = task::PC2Task {
        seal_proof: s.proof(),
        pc1_out: s.sector.pc1_out.clone().ok_or_else(|| {
            Failure::critical("PC1 output is missing; resume with --state TicketAssigned")
        })?,
        staged_file: path_str(&loc.staged(id)),
        cache_dir: path_str(&loc.cache(id)),
        sealed_file: path_str(&loc.sealed(id)),
    };
    let out: task::PC2Output = process(&s, Stage::Pc2, &t).await?;
    // PC1's output stays: an operator may resume from PC1Done.
    s.sector.comm_r = Some(out.comm_r);
    s.sector.comm_d = Some(out.comm_d);
    s.moved(E::PC2)
}

async fn submit_pre_commit(s: Step) -> StepResult {
    let (comm_r, comm_d) = commitments(&s.sector)?;
    let info = PreCommitOnChainInfo {
        comm_r,
        comm_d,
        ticket: s
            .sector
            .ticket
            .clone()
            .ok_or_else(|| Failure::critical("ticket is missing"))?,
    };
    let allocated = s
        .sector
        .allocated
        .clone()
        .ok_or_else(|| Failure::critical("the allocation is missing"))?;
    submit::<m::SubmitPreCommit>(&s.env, (allocated, info, false)).await?;
    s.moved(E::SubmitPC)
}

async fn wait_pre_commit(s: Step) -> StepResult {
    poll::<m::PollPreCommitState>(s, "pre-commit", E::ReSubmitPC, E::CheckPC).await
}

async fn persist_files(mut s: Step) -> StepResult {
    let (id, loc) = (s.id()?, &s.env.location);
    let files = vec![(loc.sealed(id), "sealed"), (loc.cache(id), "cache")];
    s.sector.persist_instance = Some(persist(&s.env, id, files).await?);
    s.moved(E::Persist)
}

async fn submit_persisted(s: Step) -> StepResult {
    let id = s.id()?;
    let instance = s
        .sector
        .persist_instance
        .clone()
        .ok_or_else(|| Failure::critical("persist store is missing"))?;
    let ok = rpc::<m::SubmitPersistedEx>(&s.env, (id, instance.clone(), false)).await?;
    if !ok {
        return Err(Failure::perm(format!(
            "manager refused the persisted files of {id} in store {instance}"
        )));
    }
    s.moved(E::SubmitPersistance)
}

async fn wait_seed(mut s: Step) -> StepResult {
    let resp = rpc::<m::WaitSeed>(&s.env, (s.id()?, s.proof())).await?;
    match (resp.should_wait, resp.seed) {
        (false, Some(seed)) => {
            s.sector.seed = Some(seed);
            s.moved(E::AssignSeed)
        }
        _ => Ok(Outcome::Wait {
            delay: Duration::from_secs(resp.delay.max(1)),
            reason: "waiting for seed".into(),
        }),
    }
}

async fn c1(mut s: Step) -> StepResult {
    let (id, loc) = (s.id()?, &s.env.location);
    let (comm_r, comm_d) = commitments(&s.sector)?;
    let t = task::C1Task {
        seal_proof: s.proof(),
        cache_dir: path_str(&loc.cache(id)),
        sealed_file: path_str(&loc.sealed(id)),
        prover_id: prover_id(id.miner),
        sector_number: id.number,
        ticket: bytes32("ticket", s.sector.ticket.as_ref().map(|t| &t.ticket))?,
        seed: bytes32("seed", s.sector.seed.as_ref().map(|s| &s.seed))?,
        pieces: s.sector.pieces.clone(),
        comm_r,
        comm_d,
    };
    s.sector.c1_out = Some(process(&s, Stage::C1, &t).await?);
    s.moved(E::C1)
}

async fn c2(mut s: Step) -> StepResult {
    let id = s.id()?;
    wait_for_params(&s.env.params, &s.activity)
        .await
        .map_err(Failure::perm)?;
    let t = task::C2Task {
        seal_proof: s.proof(),
        c1_out: s.sector.c1_out.clone().ok_or_else(|| {
            Failure::critical("C1 output is missing; resume with --state SeedAssigned")
        })?,
        prover_id: prover_id(id.miner),
        sector_number: id.number,
    };
    let out: task::C2Output = process(&s, Stage::C2, &t).await?;
    s.sector.proof = Some(out.proof);
    s.moved(E::C2)
}

async fn submit_proof(s: Step) -> StepResult {
    let proof = ProofOnChainInfo {
        proof: s
            .sector
            .proof
            .clone()
            .ok_or_else(|| Failure::critical("proof is missing; resume with --state C1Done"))?,
    };
    submit::<m::SubmitProof>(&s.env, (s.id()?, proof, false)).await?;
    s.moved(E::SubmitProof)
}

async fn wait_proof(s: Step) -> StepResult {
    poll::<m::PollProofState>(s, "proof", E::ReSubmitProof, E::Finish).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_walks_every_row_in_order() {
        let path = [
            E::Allocate,
            E::AcquireDeals,
            E::AddPiece,
            E::BuildTreeD,
            E::AssignTicket,
            E::PC1,
            E::PC2,
            E::SubmitPC,
            E::CheckPC,
            E::Persist,
            E::SubmitPersistance,
            E::AssignSeed,
            E::C1,
            E::C2,
            E::SubmitProof,
            E::Finish,
        ];
        let rows: Vec<S> = SEALER.rows.iter().map(|r| r.state).collect();
        assert_eq!(SEALER.walk(&path), rows[..rows.len() - 1].to_vec());
    }

    #[test]
    fn resubmits_go_back_and_wrong_events_are_refused() {
        let table = [
            (S::PCSubmitted, E::ReSubmitPC, Some(S::PC2Done)),
            (S::ProofSubmitted, E::ReSubmitProof, Some(S::C2Done)),
            (S::Empty, E::PC1, None),
            (S::C1Done, E::C1, None),
            (S::Finished, E::Finish, None),
            (S::Aborted, E::Allocate, None),
            (S::SnapEncoded, E::Allocate, None),
        ];
        for (from, event, want) in table {
            assert_eq!(SEALER.next(from, event), want, "{from} --{event:?}-->");
        }
    }

    #[test]
    fn stages_name_the_next_step() {
        let table = [
            (S::Empty, None),
            (S::Allocated, Some("AcquireDeals")),
            (S::TicketAssigned, Some("PC1")),
            (S::C1Done, Some("C2")),
            (S::PersistanceSubmitted, Some("WaitSeed")),
            (S::Finished, None),
            (S::SnapEncoded, None),
        ];
        for (state, want) in table {
            assert_eq!(SEALER.stage(state), want, "{state}");
        }
    }

    #[test]
    fn resume_states_are_checked_against_the_plan() {
        assert_eq!(SEALER.parse_state("PC1Done"), Ok(S::PC1Done));
        assert_eq!(SEALER.parse_state("Aborted"), Ok(S::Aborted));
        let bogus = SEALER.parse_state("Bogus").unwrap_err();
        assert!(bogus.contains("unknown state \"Bogus\""), "{bogus}");
        assert!(
            bogus.contains("PC1Done") && bogus.contains("Finished"),
            "{bogus}"
        );
        let snap = SEALER.parse_state("SnapEncoded").unwrap_err();
        assert!(snap.contains("not handled by the sealer plan"), "{snap}");
        assert!(
            SEALER.parse_state("pc1done").is_err(),
            "names are case-sensitive"
        );
    }
}
