//! The `rebuild` plan: a proven sector whose files were lost is sealed again (damocles'
//! rebuild). The manager gives the thread the sector with its ticket, its deals and the CommR
//! the chain holds; the thread writes the pieces, runs PC1 and PC2 with that ticket, checks the
//! new CommR is the chain's, re-applies a snap-up's encoding if the sector had one, persists the
//! files and says where (`SubmitPersistedEx`). The steps it shares are the sealer's (PC1, PC2),
//! the snap-up's (encode, prove) and `shared.rs`'s.

use super::calls::{persist, rpc};
use super::failure::Failure;
use super::sealer::{pc1, pc2};
use super::sector::{RebuildOf, SnapKey};
use super::shared::{abort, add_pieces, finalize, tree_d};
use super::snapup::{snap_encode, snap_prove};
use super::state::{EventKind as E, State as S};
use super::table::{Outcome, Row, Step, StepResult, Table};
use crate::thread::plan::PlanKind;
use crate::wire::hex;
use crate::wire::processor::Stage;
use crate::wire::venus::AllocateSectorSpec;
use crate::wire::venus_methods as m;

/// The rebuild plan, in pipeline order (damocles' rebuild planner).
#[rustfmt::skip]
pub static REBUILD: Table = Table {
    plan: PlanKind::Rebuild,
    stages: &[Stage::AddPieces, Stage::TreeD, Stage::Pc1, Stage::Pc2, Stage::SnapEncode, Stage::SnapProve],
    rows: &[
        Row { state: S::Empty, stage: None, step: |s| Box::pin(allocate(s)), next: &[(E::AllocatedRebuildSector, S::Allocated)] },
        Row { state: S::Allocated, stage: Some("AddPieces"), step: |s| Box::pin(add_pieces(s)), next: &[(E::AddPiece, S::PieceAdded)] },
        Row { state: S::PieceAdded, stage: Some("TreeD"), step: |s| Box::pin(tree_d(s)), next: &[(E::BuildTreeD, S::TreeDBuilt)] },
        Row { state: S::TreeDBuilt, stage: Some("PC1"), step: |s| Box::pin(pc1(s)), next: &[(E::PC1, S::PC1Done)] },
        Row { state: S::PC1Done, stage: Some("PC2"), step: |s| Box::pin(pc2(s)), next: &[(E::PC2, S::PC2Done)] },
        Row { state: S::PC2Done, stage: Some("C1"), step: |s| Box::pin(check_sealed(s)), next: &[(E::CheckSealed, S::SealedChecked)] },
        Row { state: S::SealedChecked, stage: Some("PrepareForSnapup"), step: |s| Box::pin(prepare_snap(s)), next: &[(E::SkipSnap, S::SnapDone), (E::AddPiece, S::SnapPieceAdded)] },
        Row { state: S::SnapPieceAdded, stage: Some("TreeD"), step: |s| Box::pin(tree_d(s)), next: &[(E::BuildTreeD, S::SnapTreeDBuilt)] },
        Row { state: S::SnapTreeDBuilt, stage: Some("SnapEncode"), step: |s| Box::pin(snap_encode(s)), next: &[(E::SnapEncode, S::SnapEncoded)] },
        Row { state: S::SnapEncoded, stage: Some("SnapProve"), step: |s| Box::pin(snap_prove(s)), next: &[(E::SnapProve, S::SnapDone)] },
        Row { state: S::SnapDone, stage: Some("PersistFiles"), step: |s| Box::pin(persist_files(s)), next: &[(E::Persist, S::Persisted)] },
        Row { state: S::Persisted, stage: Some("SubmitPersisted"), step: |s| Box::pin(submit_persisted(s)), next: &[(E::SubmitPersistance, S::Finished)] },
        Row { state: S::Finished, stage: None, step: |s| Box::pin(finalize(s)), next: &[] },
        Row { state: S::Aborted, stage: None, step: |s| Box::pin(abort(s)), next: &[] },
    ],
};

/// Asks for a sector to rebuild (`AllocateRebuildSector`).
async fn allocate(mut s: Step) -> StepResult {
    let env = s.env.clone();
    let spec = AllocateSectorSpec {
        allowed_miners: env.sealing.allowed_miners.clone(),
        allowed_proof_types: env.sealing.allowed_proof_types.clone(),
    };
    let delay = env.sealing.recover_interval;
    let got = match rpc::<m::AllocateRebuildSector>(&env, (spec,)).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Ok(Outcome::Wait {
                delay,
                reason: "no sector to rebuild".into(),
            })
        }
        Err(e) => {
            return Ok(Outcome::Wait {
                delay,
                reason: format!("cannot allocate a sector to rebuild: {e}"),
            })
        }
    };
    let id = got.sector.id;
    let Some(public) = got.upgrade_public else {
        // Without the chain's CommR a rebuild cannot be checked: handed straight back.
        let reason = format!("the rebuild of {id} came without the sector's CommR");
        rpc::<m::ReportAborted>(&env, (id, reason.clone())).await?;
        return Ok(Outcome::Wait { delay, reason });
    };
    s.sector.allocated = Some(got.sector);
    s.sector.ticket = Some(got.ticket);
    // A snapped sector was sealed as CC; its deals go into the snap-up encoding after.
    let (sealed, snapped) = if got.is_snap_up {
        (Vec::new(), got.pieces)
    } else {
        (got.pieces, Vec::new())
    };
    s.sector.deals = sealed;
    s.sector.rebuild = Some(RebuildOf {
        comm_r: public.comm_r,
        snap_deals: snapped,
    });
    s.moved(E::AllocatedRebuildSector)
}

fn target(s: &Step) -> Result<RebuildOf, Failure> {
    s.sector
        .rebuild
        .clone()
        .ok_or_else(|| Failure::critical("the rebuild record has no target"))
}

/// The sealing must have made the replica the chain holds, or nothing built on it counts.
async fn check_sealed(s: Step) -> StepResult {
    let want = target(&s)?.comm_r;
    match s.sector.comm_r {
        Some(got) if got == want => s.moved(E::CheckSealed),
        got => Err(Failure::perm(format!(
            "the rebuilt replica of {} has CommR {}, the chain holds {}: the ticket or pieces \
             differ from the sealing's",
            s.id()?,
            got.map_or("(none)".into(), |c| hex::encode(&c)),
            hex::encode(&want)
        ))),
    }
}

/// A snapped sector gets its snap-up's deals next (encoded over the replica just sealed);
/// another one is done sealing.
async fn prepare_snap(mut s: Step) -> StepResult {
    let t = target(&s)?;
    if t.snap_deals.is_empty() {
        return s.moved(E::SkipSnap);
    }
    s.sector.deals = t.snap_deals;
    s.sector.snap_key = Some(SnapKey {
        comm_r: t.comm_r,
        access_instance: String::new(),
    });
    add_pieces(s).await
}

fn snapped(s: &Step) -> bool {
    s.sector
        .rebuild
        .as_ref()
        .is_some_and(|r| !r.snap_deals.is_empty())
}

async fn persist_files(mut s: Step) -> StepResult {
    let (id, loc) = (s.id()?, &s.env.location);
    let files = if snapped(&s) {
        vec![
            (loc.update(id), "update"),
            (loc.update_cache(id), "update-cache"),
        ]
    } else {
        vec![(loc.sealed(id), "sealed"), (loc.cache(id), "cache")]
    };
    s.sector.persist_instance = Some(persist(&s.env, id, files).await?);
    s.moved(E::Persist)
}

/// Says where the files are now (`SubmitPersistedEx`, the upgrade flag for a snapped sector).
async fn submit_persisted(s: Step) -> StepResult {
    let id = s.id()?;
    let instance = s
        .sector
        .persist_instance
        .clone()
        .ok_or_else(|| Failure::critical("persist store is missing"))?;
    let ok = rpc::<m::SubmitPersistedEx>(&s.env, (id, instance.clone(), snapped(&s))).await?;
    if !ok {
        return Err(Failure::perm(format!(
            "manager refused the rebuilt files of {id} in store {instance}"
        )));
    }
    s.moved(E::SubmitPersistance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sector_walks_through_sealing_then_a_snapped_one_through_its_encoding() {
        let sealing = [
            E::AllocatedRebuildSector,
            E::AddPiece,
            E::BuildTreeD,
            E::PC1,
            E::PC2,
            E::CheckSealed,
        ];
        let end = [E::Persist, E::SubmitPersistance];
        let cc = [&sealing[..], &[E::SkipSnap], &end].concat();
        assert_eq!(REBUILD.walk(&cc).last(), Some(&S::Finished));
        let snap = [E::AddPiece, E::BuildTreeD, E::SnapEncode, E::SnapProve];
        let snapped = [&sealing[..], &snap, &end].concat();
        let walked = REBUILD.walk(&snapped);
        assert!(walked.contains(&S::SnapTreeDBuilt) && walked.contains(&S::SnapEncoded));
        assert_eq!(walked.last(), Some(&S::Finished));
    }

    #[test]
    fn resume_takes_rebuild_states_only() {
        assert_eq!(REBUILD.parse_state("SealedChecked"), Ok(S::SealedChecked));
        let e = REBUILD.parse_state("PCSubmitted").unwrap_err();
        assert!(e.contains("not handled by the rebuild plan"), "{e}");
        assert!(e.contains("SnapTreeDBuilt"), "{e}");
        assert_eq!(REBUILD.stage(S::PC2Done), Some("C1"));
    }
}
