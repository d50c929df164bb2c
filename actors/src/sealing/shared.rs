//! Steps more than one sector plan runs: writing the deals' pieces, the data tree, and the
//! ends of a sector (finalized or aborted, its files wiped).

use super::calls::{path_str, process, rpc, wipe};
use super::failure::Failure;
use super::state::EventKind as E;
use super::table::{Outcome, Step, StepResult};
use crate::wire::commcid;
use crate::wire::processor::{self as task, DealPiece, Stage};
use crate::wire::venus_methods as m;

/// Most bytes a piece can have: a whole 64GiB sector.
const MAX_PIECE: u64 = 64 << 30;

/// Fetches the deals' bytes from the manager's piece store, then writes them and the zero
/// fillers into the staged file (the processor checks each piece against its CID first).
pub async fn add_pieces(mut s: Step) -> StepResult {
    let id = s.id()?;
    let mut pieces = Vec::new();
    for p in s.sector.deals.iter().filter(|p| p.deal_info.is_some()) {
        let cid = p.piece.piece_cid.root.clone();
        // The CID names a file here: only a real piece CID may.
        commcid::piece_comm(&cid).map_err(|e| Failure::abort(format!("deal piece: {e}")))?;
        let file = s.env.location.piece(&cid);
        if !tokio::fs::try_exists(&file).await.unwrap_or(false) {
            let bytes = s
                .env
                .manager
                .fetch(&format!("/piecestore/{cid}"), MAX_PIECE.min(p.piece.size))
                .await
                .map_err(|e| Failure::temp(format!("fetch piece {cid}: {e}")))?;
            // Through a temporary name: a piece file that exists is a whole one.
            let tmp = file.with_extension("part");
            let saved = match tokio::fs::write(&tmp, &bytes).await {
                Ok(()) => tokio::fs::rename(&tmp, &file).await,
                Err(e) => Err(e),
            };
            saved.map_err(|e| Failure::perm(format!("save piece {cid}: {e}")))?;
        }
        pieces.push(DealPiece {
            file: path_str(&file),
            cid,
            size: p.piece.size,
        });
    }
    let t = task::AddPiecesTask {
        seal_proof: s.proof(),
        staged_file: path_str(&s.env.location.staged(id)),
        pieces,
    };
    let out: task::AddPiecesOutput = process(&s, Stage::AddPieces, &t).await?;
    s.sector.pieces = out.pieces;
    s.moved(E::AddPiece)
}

/// The data commitment of the pieces.
pub async fn tree_d(mut s: Step) -> StepResult {
    let t = task::TreeDTask {
        seal_proof: s.proof(),
        pieces: s.sector.pieces.clone(),
    };
    let out: task::TreeDOutput = process(&s, Stage::TreeD, &t).await?;
    s.sector.comm_d = Some(out.comm_d);
    s.moved(E::BuildTreeD)
}

/// Tells the manager the sector is done, then wipes its files here.
pub async fn finalize(s: Step) -> StepResult {
    let id = s.id()?;
    rpc::<m::ReportFinalized>(&s.env, (id,)).await?;
    wipe(&s.env, Some(id)).await?;
    Ok(Outcome::Done)
}

/// Tells the manager why the sector was given up, then wipes its files here.
pub async fn abort(s: Step) -> StepResult {
    if let Some(id) = s.sector.id() {
        let reason = s
            .sector
            .abort_reason
            .clone()
            .unwrap_or_else(|| "aborted".into());
        rpc::<m::ReportAborted>(&s.env, (id, reason)).await?;
    }
    wipe(&s.env, s.sector.id()).await?;
    Ok(Outcome::Done)
}
