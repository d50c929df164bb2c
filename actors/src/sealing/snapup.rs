//! The `snapup` plan: deals encoded into a proven CC sector (damocles' snap-up). The manager
//! gives the thread a sector and its deals; the thread writes the pieces, encodes them into a
//! copy of the sector's replica (read from the store it was persisted to), proves the update,
//! persists the updated replica and hands the proof in. One row per state, one function per
//! step; the steps it shares with the sealer are in `shared.rs`.

use super::calls::{attached_path, path_str, persist, process, rpc, wait_for_params};
use super::failure::Failure;
use super::sector::{SnapKey, UpdateCommitments};
use super::shared::{abort, add_pieces, finalize, tree_d};
use super::state::{EventKind as E, State as S};
use super::table::{Outcome, Row, Step, StepResult, Table};
use crate::thread::plan::PlanKind;
use crate::wire::processor::{self as task, Stage};
use crate::wire::venus::{AllocateSectorSpec, AllocateSnapUpSpec, SnapUpOnChainInfo, SubmitResult};
use crate::wire::venus_methods as m;

/// The snap-up plan, in pipeline order.
#[rustfmt::skip]
pub static SNAPUP: Table = Table {
    plan: PlanKind::SnapUp,
    stages: &[Stage::AddPieces, Stage::TreeD, Stage::SnapEncode, Stage::SnapProve],
    rows: &[
        Row { state: S::Empty, stage: None, step: |s| Box::pin(allocate(s)), next: &[(E::AllocatedSnapUpSector, S::Allocated)] },
        Row { state: S::Allocated, stage: Some("AddPieces"), step: |s| Box::pin(add_pieces(s)), next: &[(E::AddPiece, S::PieceAdded)] },
        Row { state: S::PieceAdded, stage: Some("TreeD"), step: |s| Box::pin(tree_d(s)), next: &[(E::BuildTreeD, S::TreeDBuilt)] },
        Row { state: S::TreeDBuilt, stage: Some("SnapEncode"), step: |s| Box::pin(snap_encode(s)), next: &[(E::SnapEncode, S::SnapEncoded)] },
        Row { state: S::SnapEncoded, stage: Some("SnapProve"), step: |s| Box::pin(snap_prove(s)), next: &[(E::SnapProve, S::SnapProved)] },
        Row { state: S::SnapProved, stage: Some("PersistFiles"), step: |s| Box::pin(persist_files(s)), next: &[(E::Persist, S::Persisted)] },
        Row { state: S::Persisted, stage: Some("SubmitSnapupProof"), step: |s| Box::pin(submit_proof(s)), next: &[(E::RePersist, S::SnapProved), (E::Finish, S::Finished)] },
        Row { state: S::Finished, stage: None, step: |s| Box::pin(finalize(s)), next: &[] },
        Row { state: S::Aborted, stage: None, step: |s| Box::pin(abort(s)), next: &[] },
    ],
};

/// Asks for a proven CC sector and the deals to put in it (`AllocateSanpUpSector`).
async fn allocate(mut s: Step) -> StepResult {
    let env = s.env.clone();
    let spec = AllocateSnapUpSpec {
        sector: AllocateSectorSpec {
            allowed_miners: env.sealing.allowed_miners.clone(),
            allowed_proof_types: env.sealing.allowed_proof_types.clone(),
        },
        deals: env.sealing.deals.clone(),
    };
    let delay = env.sealing.recover_interval;
    let got = match rpc::<m::AllocateSnapUpSector>(&env, (spec,)).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Ok(Outcome::Wait {
                delay,
                reason: "no sector to snap up".into(),
            })
        }
        Err(e) => {
            return Ok(Outcome::Wait {
                delay,
                reason: format!("cannot allocate a snap-up sector: {e}"),
            })
        }
    };
    let id = got.sector.id;
    // Nothing to encode, or nowhere to read the sector from: handed straight back.
    let unusable = if got.pieces.iter().all(|p| p.deal_info.is_none()) {
        Some(format!("the snap-up of {id} came with no deals"))
    } else if got.private.access_instance.is_empty() {
        Some(format!(
            "the snap-up of {id} came with no store to read it from"
        ))
    } else {
        None
    };
    if let Some(reason) = unusable {
        rpc::<m::ReportAborted>(&env, (id, reason.clone())).await?;
        return Ok(Outcome::Wait { delay, reason });
    }
    s.sector.allocated = Some(got.sector);
    s.sector.deals = got.pieces;
    s.sector.snap_key = Some(SnapKey {
        comm_r: got.public.comm_r,
        access_instance: got.private.access_instance,
    });
    s.moved(E::AllocatedSnapUpSector)
}

/// The CC sector's sealed file and cache, in the store it was persisted to (in this location
/// for a rebuild, which has just sealed it again).
fn sector_key(s: &Step) -> Result<(String, String, SnapKey), Failure> {
    let id = s.id()?;
    let key = s
        .sector
        .snap_key
        .clone()
        .ok_or_else(|| Failure::critical("the snap-up record has no sector key"))?;
    if key.access_instance.is_empty() {
        let loc = &s.env.location;
        return Ok((path_str(&loc.sealed(id)), path_str(&loc.cache(id)), key));
    }
    let store = attached_path(&s.env, &key.access_instance)?;
    let name = id.to_string();
    Ok((
        path_str(&store.join("sealed").join(&name)),
        path_str(&store.join("cache").join(&name)),
        key,
    ))
}

pub(super) async fn snap_encode(mut s: Step) -> StepResult {
    let (id, loc) = (s.id()?, &s.env.location);
    let (sector_key, sector_key_cache, _) = sector_key(&s)?;
    let t = task::SnapEncodeTask {
        seal_proof: s.proof(),
        sector_key,
        sector_key_cache,
        staged_file: path_str(&loc.staged(id)),
        update_file: path_str(&loc.update(id)),
        update_cache: path_str(&loc.update_cache(id)),
        pieces: s.sector.pieces.clone(),
    };
    let out: task::SnapEncodeOutput = process(&s, Stage::SnapEncode, &t).await?;
    if Some(out.comm_d_new) != s.sector.comm_d {
        return Err(Failure::perm(format!(
            "snap_encode made a data commitment other than TreeD's for {id}; resume with --state Allocated"
        )));
    }
    s.sector.update = Some(UpdateCommitments {
        comm_r_new: out.comm_r_new,
        comm_d_new: out.comm_d_new,
    });
    s.moved(E::SnapEncode)
}

fn update_of(s: &Step) -> Result<UpdateCommitments, Failure> {
    s.sector.update.clone().ok_or_else(|| {
        Failure::critical("the new commitments are missing; resume with --state TreeDBuilt")
    })
}

pub(super) async fn snap_prove(mut s: Step) -> StepResult {
    let (id, loc) = (s.id()?, &s.env.location);
    let (sector_key, sector_key_cache, key) = sector_key(&s)?;
    let update = update_of(&s)?;
    wait_for_params(&s.env.params, &s.activity)
        .await
        .map_err(Failure::perm)?;
    let t = task::SnapProveTask {
        seal_proof: s.proof(),
        comm_r_old: key.comm_r,
        comm_r_new: update.comm_r_new,
        comm_d_new: update.comm_d_new,
        sector_key,
        sector_key_cache,
        update_file: path_str(&loc.update(id)),
        update_cache: path_str(&loc.update_cache(id)),
    };
    let out: task::SnapProveOutput = process(&s, Stage::SnapProve, &t).await?;
    s.sector.proof = Some(out.proof);
    s.moved(E::SnapProve)
}

async fn persist_files(mut s: Step) -> StepResult {
    let (id, loc) = (s.id()?, &s.env.location);
    let files = vec![
        (loc.update(id), "update"),
        (loc.update_cache(id), "update-cache"),
    ];
    s.sector.persist_instance = Some(persist(&s.env, id, files).await?);
    s.moved(E::Persist)
}

/// Hands the update in: the manager verifies it and records the new replica.
async fn submit_proof(s: Step) -> StepResult {
    let id = s.id()?;
    let update = update_of(&s)?;
    let info = SnapUpOnChainInfo {
        comm_r: update.comm_r_new,
        comm_d: update.comm_d_new,
        access_instance: s
            .sector
            .persist_instance
            .clone()
            .ok_or_else(|| Failure::critical("persist store is missing"))?,
        pieces: s
            .sector
            .deals
            .iter()
            .filter(|p| p.deal_info.is_some())
            .map(|p| p.piece.piece_cid.clone())
            .collect(),
        proof: s
            .sector
            .proof
            .clone()
            .ok_or_else(|| Failure::critical("the update proof is missing"))?,
    };
    let resp = rpc::<m::SubmitSnapUpProof>(&s.env, (id, info)).await?;
    let desc = resp.desc.unwrap_or_default();
    match SubmitResult::from_code(resp.res) {
        Some(SubmitResult::Accepted | SubmitResult::DuplicateSubmit) => s.moved(E::Finish),
        Some(SubmitResult::FilesMissed) => s.moved(E::RePersist),
        // Mismatched or rejected: this update will never be taken (damocles aborts too).
        Some(other) => Err(Failure::abort(format!(
            "SubmitSnapUpProof: {other:?}: {desc}"
        ))),
        None => Err(Failure::perm(format!(
            "SubmitSnapUpProof: unknown result {}",
            resp.res
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_walks_every_row_in_order() {
        let path = [
            E::AllocatedSnapUpSector,
            E::AddPiece,
            E::BuildTreeD,
            E::SnapEncode,
            E::SnapProve,
            E::Persist,
            E::Finish,
        ];
        let rows: Vec<S> = SNAPUP.rows.iter().map(|r| r.state).collect();
        assert_eq!(SNAPUP.walk(&path), rows[..rows.len() - 1].to_vec());
    }

    #[test]
    fn files_missed_persists_again_and_sealer_events_are_refused() {
        let table = [
            (S::Persisted, E::RePersist, Some(S::SnapProved)),
            (S::Empty, E::Allocate, None),
            (S::TreeDBuilt, E::AssignTicket, None),
            (S::PC1Done, E::PC2, None),
        ];
        for (from, event, want) in table {
            assert_eq!(SNAPUP.next(from, event), want, "{from} --{event:?}-->");
        }
        assert_eq!(SNAPUP.stage(S::TreeDBuilt), Some("SnapEncode"));
        assert_eq!(SNAPUP.stage(S::Persisted), Some("SubmitSnapupProof"));
    }

    #[test]
    fn resume_takes_snapup_states_only() {
        assert_eq!(SNAPUP.parse_state("SnapEncoded"), Ok(S::SnapEncoded));
        let e = SNAPUP.parse_state("PC1Done").unwrap_err();
        assert!(e.contains("not handled by the snapup plan"), "{e}");
        assert!(e.contains("SnapProved"), "{e}");
    }
}
