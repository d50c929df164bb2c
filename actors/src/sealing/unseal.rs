//! The `unseal` plan: a piece of a sealed sector is regenerated and delivered (damocles'
//! unseal planner). The manager gives the thread the piece with the sector's ticket, CommD and
//! store (`AllocateUnsealSector`); the thread decodes the piece's range of the sealed replica
//! (of a snapped sector: of its updated replica, against the sector key) into its location, asks where the bytes go (`AcquireUnsealDest`), puts them there and says
//! so (`AchieveUnsealSector`). It never reports the sector's state: the sector is another
//! thread's, and proven; a failure ends the unseal task, never the sector.

use std::time::Duration;

use super::calls::{attached_path, path_str, process, rpc, wipe};
use super::failure::{Failure, Level};
use super::sector::UnsealOf;
use super::state::{EventKind as E, State as S};
use super::table::{Outcome, Row, Step, StepResult, Table};
use crate::thread::plan::PlanKind;
use crate::wire::processor::{self as task, Stage};
use crate::wire::venus::{prover_id, AllocateSectorSpec, Cid};
use crate::wire::venus_methods as m;

/// How long one upload may take.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// The unseal plan (damocles' unseal planner).
#[rustfmt::skip]
pub static UNSEAL: Table = Table {
    plan: PlanKind::Unseal,
    stages: &[Stage::Unseal],
    rows: &[
        Row { state: S::Empty, stage: None, step: |s| Box::pin(allocate(s)), next: &[(E::AllocatedUnsealSector, S::Allocated)] },
        Row { state: S::Allocated, stage: Some("Unseal"), step: |s| Box::pin(unseal(s)), next: &[(E::Unsealed, S::Unsealed)] },
        Row { state: S::Unsealed, stage: Some("UploadPiece"), step: |s| Box::pin(upload(s)), next: &[(E::UploadPieceDone, S::Finished)] },
        Row { state: S::Finished, stage: None, step: |s| Box::pin(done(s)), next: &[] },
        Row { state: S::Aborted, stage: None, step: |s| Box::pin(give_up(s)), next: &[] },
    ],
};

/// Asks for a piece to unseal (`AllocateUnsealSector`).
async fn allocate(mut s: Step) -> StepResult {
    let env = s.env.clone();
    let spec = AllocateSectorSpec {
        allowed_miners: env.sealing.allowed_miners.clone(),
        allowed_proof_types: env.sealing.allowed_proof_types.clone(),
    };
    let delay = env.sealing.recover_interval;
    let got = match rpc::<m::AllocateUnsealSector>(&env, (spec,)).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Ok(Outcome::Wait {
                delay,
                reason: "no piece to unseal".into(),
            })
        }
        Err(e) => {
            return Ok(Outcome::Wait {
                delay,
                reason: format!("cannot allocate a piece to unseal: {e}"),
            })
        }
    };
    s.sector.allocated = Some(got.sector);
    s.sector.ticket = Some(got.ticket);
    s.sector.unseal = Some(UnsealOf {
        piece_cid: got.piece_cid.root,
        offset: got.offset,
        size: got.size,
        comm_d: got.comm_d,
        access_instance: got.private_info.access_instance,
        upgrade: got.upgrade,
    });
    s.moved(E::AllocatedUnsealSector)
}

fn piece(s: &Step) -> Result<UnsealOf, Failure> {
    s.sector
        .unseal
        .clone()
        .ok_or_else(|| Failure::critical("the unseal record has no piece"))
}

/// Decodes the piece's range of the sealed replica into the location's staged file.
async fn unseal(s: Step) -> StepResult {
    let id = s.id()?;
    let p = piece(&s)?;
    if p.access_instance.is_empty() {
        return Err(Failure::abort(format!(
            "the unseal of {} in {id} came with no store to read the sector from",
            p.piece_cid
        )));
    }
    let store = attached_path(&s.env, &p.access_instance)?;
    let name = id.to_string();
    // A snapped sector's piece is in its updated replica, decoded against the sector key.
    let update = match &p.upgrade {
        Some(u) => Some(task::UnsealFromUpdate {
            update_file: path_str(&store.join("update").join(&name)),
            sector_key_file: path_str(
                &attached_path(&s.env, &u.sector_key_instance)?
                    .join("sealed")
                    .join(&name),
            ),
            comm_r_old: u.comm_r_old,
        }),
        None => None,
    };
    let ticket = s.sector.ticket.as_ref().map(|t| t.ticket.as_slice());
    let ticket: [u8; 32] = ticket.and_then(|t| t.try_into().ok()).ok_or_else(|| {
        Failure::abort(format!("the unseal of {id} came without a 32 byte ticket"))
    })?;
    let t = task::UnsealTask {
        seal_proof: s.proof(),
        cache_dir: path_str(&store.join("cache").join(&name)),
        sealed_file: path_str(&store.join("sealed").join(&name)),
        output: path_str(&s.env.location.staged(id)),
        prover_id: prover_id(id.miner),
        sector_number: id.number,
        ticket,
        comm_d: p.comm_d,
        offset: p.offset,
        size: p.size,
        update,
    };
    let out: task::UnsealOutput = process(&s, Stage::Unseal, &t).await?;
    if out.written != p.size {
        return Err(Failure::perm(format!(
            "unseal wrote {} bytes of piece {}, not its {}",
            out.written, p.piece_cid, p.size
        )));
    }
    s.moved(E::Unsealed)
}

/// Puts the bytes where the manager says (`file://` paths here, `http://` PUTs), then says the
/// task is done.
async fn upload(s: Step) -> StepResult {
    let id = s.id()?;
    let p = piece(&s)?;
    let cid = Cid {
        root: p.piece_cid.clone(),
    };
    let dests = rpc::<m::AcquireUnsealDest>(&s.env, (id, cid.clone())).await?;
    let file = s.env.location.staged(id);
    for d in &dests {
        deliver(&file, d).await?;
    }
    rpc::<m::AchieveUnsealSector>(&s.env, (id, cid, String::new())).await?;
    s.moved(E::UploadPieceDone)
}

/// Puts the unsealed file at one destination. A destination this worker cannot use is a
/// permanent failure (the task fails with it); a server that cannot take it now is retried.
async fn deliver(file: &std::path::Path, dest: &str) -> Result<(), Failure> {
    if let Some(path) = dest.strip_prefix("file://") {
        let to = std::path::PathBuf::from(path);
        if let Some(dir) = to.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Failure::perm(format!("create {}: {e}", dir.display())))?;
        }
        tokio::fs::copy(file, &to)
            .await
            .map_err(|e| Failure::perm(format!("copy the piece to {}: {e}", to.display())))?;
        return Ok(());
    }
    if !dest.starts_with("http://") {
        return Err(Failure::abort(format!(
            "destination {dest:?}: this worker delivers to file:// and http:// URLs only"
        )));
    }
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|e| Failure::perm(format!("read {}: {e}", file.display())))?;
    // A plain client: the worker's token is for its manager, not for a destination.
    let client = reqwest::Client::builder()
        .timeout(UPLOAD_TIMEOUT)
        .build()
        .map_err(|e| Failure::temp(e.to_string()))?;
    let resp = client
        .put(dest)
        .body(bytes)
        .send()
        .await
        .map_err(|e| Failure::temp(format!("upload to {}: {e}", without_query(dest))))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let why = format!(
        "upload to {}: http {status}: {}",
        without_query(dest),
        text.chars().take(300).collect::<String>()
    );
    if status.is_server_error() {
        Err(Failure::temp(why))
    } else {
        Err(Failure::perm(why))
    }
}

/// A URL without its query, which may hold a secret.
fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The piece was delivered: its files here are wiped.
async fn done(s: Step) -> StepResult {
    wipe(&s.env, s.sector.id()).await?;
    Ok(Outcome::Done)
}

/// The unseal task failed: the manager is told why (the sector itself is untouched), and the
/// files here are wiped.
async fn give_up(s: Step) -> StepResult {
    if let (Some(id), Some(p)) = (s.sector.id(), s.sector.unseal.as_ref()) {
        let reason = s
            .sector
            .abort_reason
            .clone()
            .unwrap_or_else(|| "aborted".into());
        let cid = Cid {
            root: p.piece_cid.clone(),
        };
        // The task may be gone (ended meanwhile): then there is no one to tell.
        if let Err(e) = rpc::<m::AchieveUnsealSector>(&s.env, (id, cid, reason)).await {
            if e.level != Level::Abort {
                return Err(e);
            }
        }
    }
    wipe(&s.env, s.sector.id()).await?;
    Ok(Outcome::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_is_unsealed_uploaded_and_done() {
        let events = [E::AllocatedUnsealSector, E::Unsealed, E::UploadPieceDone];
        assert_eq!(
            UNSEAL.walk(&events),
            vec![S::Empty, S::Allocated, S::Unsealed, S::Finished]
        );
        assert_eq!(
            UNSEAL.walk(&[E::AllocatedUnsealSector, E::PC1]).last(),
            Some(&S::Aborted)
        );
        assert_eq!(
            E::Unsealed.name(),
            "Unsealed",
            "damocles prints UnsealDone so"
        );
    }

    #[test]
    fn resume_takes_unseal_states_only() {
        assert_eq!(UNSEAL.parse_state("Unsealed"), Ok(S::Unsealed));
        let e = UNSEAL.parse_state("PC1Done").unwrap_err();
        assert!(e.contains("not handled by the unseal plan"), "{e}");
        assert!(
            e.contains("Empty, Allocated, Unsealed, Finished, Aborted"),
            "{e}"
        );
        assert_eq!(UNSEAL.stage(S::Unsealed), Some("UploadPiece"));
    }

    #[test]
    fn a_secret_in_a_destination_is_not_logged() {
        assert_eq!(
            without_query("http://m:1789/unseal/1/2/baga/piece?secret=abc"),
            "http://m:1789/unseal/1/2/baga/piece"
        );
    }
}
