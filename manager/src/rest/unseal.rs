//! Unseal: an operator asks for a piece of a sealed sector back (`POST /sectors/unseal`, from
//! `util sealer sectors unseal`), watches the task (`GET /unseal`), and reads the bytes the
//! manager kept (`GET /unseal/{miner}/{number}/{cid}/piece`). The unseal thread uploads them to
//! `PUT /unseal/{miner}/{number}/{cid}/piece?secret=...`, the URL `AcquireUnsealDest` gave it:
//! the task's secret, not a token, admits it, since a damocles worker uploads with no header.

use actix_web::{web, HttpResponse};
use chrono::NaiveDateTime;
use damocles_actors::wire::{commcid, hex};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::audit::{audited, Done};
use super::{Admin, RestState};
use crate::db::deals::DealRow;
use crate::db::sectors::SectorRow;
use crate::db::unseal::{self, NewUnseal, Queued, UnsealRow, UploadRefused};
use crate::db::{self};
use crate::error::ApiError;

/// Largest upload: a piece of the biggest deal the mock market takes, unpadded.
pub const MAX_UPLOAD: usize = super::market::MAX_DEAL_BYTES * 2;

/// `POST /sectors/unseal`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsealRequest {
    pub piece_cid: String,
    /// The sector, when the operator names it (both or neither).
    pub miner: Option<u64>,
    pub number: Option<u64>,
    /// Where the worker puts the bytes; none: the manager keeps them.
    pub dest: Option<String>,
    /// Start over even when a thread holds it (its worker is gone for good).
    #[serde(default)]
    pub requeue: bool,
}

/// An unseal task as operators see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnsealView {
    pub sector: String,
    pub miner: u64,
    pub number: u64,
    pub piece_cid: String,
    /// Where the piece starts in the sector, and its size (unpadded bytes).
    pub offset: u64,
    pub size: u64,
    /// The client's bytes at the piece's start.
    pub payload_size: u64,
    pub dest: Vec<String>,
    pub state: String,
    pub worker: Option<String>,
    pub error: Option<String>,
    pub requested_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    /// What the request did (`queued`, `destination added`, `already queued`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

fn view(r: UnsealRow, result: Option<&str>) -> UnsealView {
    UnsealView {
        sector: format!("s-t0{}-{}", r.miner_id, r.sector_number),
        miner: r.miner_id as u64,
        number: r.sector_number as u64,
        dest: r.dests(),
        piece_cid: r.piece_cid,
        offset: r.piece_offset as u64,
        size: r.piece_size as u64,
        payload_size: r.payload_size as u64,
        state: r.state,
        worker: r.owner,
        error: r.error_info,
        requested_at: r.requested_at,
        updated_at: r.updated_at,
        finished_at: r.finished_at,
        result: result.map(String::from),
    }
}

/// Unpadded bytes of `padded` bytes (127 of every 128 hold data).
fn unpadded(padded: i64) -> u64 {
    (padded as u64) / 128 * 127
}

/// The destination, checked: URLs a worker can deliver to.
fn dest_of(dest: Option<&str>) -> Result<String, ApiError> {
    let Some(d) = dest.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(unseal::MANAGER_DEST.into());
    };
    let ok = match d.split_once("://") {
        Some(("file", path)) => path.starts_with('/') && path.len() > 1,
        Some(("http", rest)) => !rest.is_empty(),
        _ => false,
    };
    if !ok || d.len() > 2048 {
        return Err(ApiError::BadRequest(format!(
            "dest {d:?} is not a destination a worker can deliver to: use file:///path (a file \
             on the unseal worker's machine) or http:// (the worker PUTs the bytes there), or \
             leave it out and the manager keeps the bytes"
        )));
    }
    Ok(d.to_string())
}

/// The sector holding `cid` and the deal that put it there, as the request names or finds them.
fn find(
    c: &mut db::DbConnection,
    miner: u64,
    cid: &str,
    named: Option<(u64, u64)>,
) -> Result<Result<(SectorRow, DealRow), ApiError>, db::DbError> {
    let holding: Vec<DealRow> = db::deals::list(c, Some(named.map_or(miner, |n| n.0)))?
        .into_iter()
        .filter(|d| d.piece_cid == cid && d.sector_number.is_some())
        .collect();
    let deal = match named {
        Some((m, n)) => {
            let Some(sector) = db::sectors::get(c, m, n)? else {
                return Ok(Err(ApiError::NotFound(format!(
                    "sector s-t0{m}-{n} does not exist; `util sealer sectors list` shows the sectors"
                ))));
            };
            match holding
                .into_iter()
                .find(|d| d.sector_number == Some(n as i64))
            {
                Some(d) => d,
                None => {
                    let pieces: Vec<String> = db::deals::of_sector(c, m, n)?
                        .into_iter()
                        .map(|d| d.piece_cid)
                        .collect();
                    let held = if pieces.is_empty() {
                        "no pieces (a CC sector)".to_string()
                    } else {
                        pieces.join(", ")
                    };
                    return Ok(Err(ApiError::NotFound(format!(
                        "sector {} holds no piece {cid}; it holds {held}",
                        sector_name(&sector)
                    ))));
                }
            }
        }
        None => match holding.into_iter().next() {
            Some(d) => d,
            None => {
                return Ok(Err(ApiError::NotFound(format!(
                    "no sector holds piece {cid}; `util market deals list` shows the deals and \
                     their sectors"
                ))))
            }
        },
    };
    let number = deal.sector_number.unwrap_or(0) as u64;
    let sector = db::sectors::get(c, deal.miner_id as u64, number)?;
    Ok(match sector {
        Some(s) => Ok((s, deal)),
        None => Err(ApiError::NotFound(format!(
            "piece {cid} is in sector {number}, which does not exist any more"
        ))),
    })
}

fn sector_name(s: &SectorRow) -> String {
    format!("s-t0{}-{}", s.miner_id, s.sector_number)
}

/// Why the piece cannot be unsealed from `s` now, if it cannot.
fn unsealable(s: &SectorRow, cid: &str) -> Option<String> {
    let n = sector_name(s);
    if s.state == crate::mock_chain::ABORTED {
        return Some(format!(
            "sector {n} was aborted: it holds no sealed copy of {cid}"
        ));
    }
    if s.snap_state.as_deref() == Some(crate::db::snap::DONE) {
        if s.update_store.is_none() || s.update_comm_d.is_none() || s.comm_r.is_none() {
            return Some(format!(
                "sector {n} is snapped but its updated replica is not recorded (store, CommD)"
            ));
        }
    } else if s.snap_state.is_some() {
        return Some(format!(
            "piece {cid} is in sector {n}'s snap-up, which is not done yet: it can be unsealed \
             once the snap-up is verified"
        ));
    }
    if s.persist_store.is_none() || s.comm_d.is_none() || s.ticket.is_none() {
        return Some(format!(
            "sector {n} is not sealed and persisted yet (state {}): its pieces can be unsealed \
             once it is",
            s.state
        ));
    }
    None
}

#[utoipa::path(post, path = "/sectors/unseal", tag = "unseal", request_body = UnsealRequest,
    responses((status = 200, description = "The task, and what this call did (`result`)", body = UnsealView)))]
pub async fn queue(
    admin: Admin,
    s: web::Data<RestState>,
    body: web::Json<UnsealRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let cid = req.piece_cid.trim().to_string();
    commcid::piece_comm(&cid).map_err(|e| ApiError::BadRequest(format!("piece_cid: {e}")))?;
    let named = match (req.miner, req.number) {
        (Some(m), Some(n)) => Some((m, n)),
        (None, None) => None,
        _ => {
            return Err(ApiError::BadRequest(
                "the sector is named by its miner and its number together (--actor and \
                 --sector), or not at all"
                    .into(),
            ))
        }
    };
    let dest = dest_of(req.dest.as_deref())?;
    let (miner, c) = (s.miner, cid.clone());
    let (sector, deal) = s.db.run(move |conn| find(conn, miner, &c, named)).await??;
    if let Some(why) = unsealable(&sector, &cid) {
        return Err(ApiError::Conflict(why));
    }
    let mut secret = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut secret);
    let task = NewUnseal {
        miner: sector.miner_id as u64,
        number: sector.sector_number as u64,
        piece_cid: cid.clone(),
        offset: unpadded(deal.piece_offset.unwrap_or(0)),
        size: unpadded(deal.piece_size),
        payload_size: deal.payload_size as u64,
        dest,
        secret: hex::encode(&secret),
        requeue: req.requeue,
    };
    let target = format!("{} {cid}", sector_name(&sector));
    let (m, n) = (task.miner, task.number);
    let at = db::now();
    let (queued, row) = audited(&s, &admin, "sector.unseal", &target, move |c| {
        let queued = unseal::queue(c, &task, at)?;
        let row = unseal::get(c, m, n, &task.piece_cid)?;
        let result = match queued {
            Queued::New => "queued",
            Queued::DestAdded => "destination added",
            Queued::Requeued => "queued again",
            Queued::Already | Queued::Uploading => return Ok(((queued, row), None)),
        };
        let done = Done {
            detail: Some(task.dest.clone()),
            result: result.into(),
        };
        Ok(((queued, row), Some(done)))
    })
    .await?;
    let row = row.ok_or_else(|| ApiError::Internal("the unseal task vanished".into()))?;
    let result = match queued {
        Queued::New => "queued",
        Queued::DestAdded => "destination added",
        Queued::Already => "already queued",
        Queued::Requeued => "queued again, taken from the thread that held it",
        Queued::Uploading => {
            return Err(ApiError::Conflict(format!(
                "the unseal of {cid} in {} is uploading its bytes now; ask again for another \
                 destination once it is finished",
                sector_name(&sector)
            )))
        }
    };
    Ok(HttpResponse::Ok().json(view(row, Some(result))))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub miner: Option<u64>,
}

#[utoipa::path(get, path = "/unseal", tag = "unseal", params(ListQuery),
    responses((status = 200, description = "Every unseal task", body = Vec<UnsealView>)))]
pub async fn list(
    _admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let miner = q.miner;
    let rows = s.db.run(move |c| unseal::list(c, miner)).await?;
    let views: Vec<UnsealView> = rows.into_iter().map(|r| view(r, None)).collect();
    Ok(HttpResponse::Ok().json(views))
}

type TaskPath = web::Path<(u64, u64, String)>;

async fn task(s: &RestState, miner: u64, number: u64, cid: &str) -> Result<UnsealRow, ApiError> {
    let c = cid.to_string();
    s.db.run(move |conn| unseal::get(conn, miner, number, &c))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no unseal of piece {cid} in sector s-t0{miner}-{number}; `util sealer sectors \
                 unseal` asks for one"
            ))
        })
}

#[utoipa::path(get, path = "/unseal/{miner}/{number}/{cid}", tag = "unseal", params(("miner" = u64, Path, description = "The miner's actor id"), ("number" = u64, Path, description = "The sector number"), ("cid" = String, Path, description = "The piece CID")),
    responses((status = 200, description = "One unseal task", body = UnsealView)))]
pub async fn get(
    _admin: Admin,
    s: web::Data<RestState>,
    path: TaskPath,
) -> Result<HttpResponse, ApiError> {
    let (miner, number, cid) = path.into_inner();
    Ok(HttpResponse::Ok().json(view(task(&s, miner, number, &cid).await?, None)))
}

/// The client's bytes of a finished task the manager kept (the piece's padding left out).
#[utoipa::path(get, path = "/unseal/{miner}/{number}/{cid}/piece", tag = "unseal", params(("miner" = u64, Path, description = "The miner's actor id"), ("number" = u64, Path, description = "The sector number"), ("cid" = String, Path, description = "The piece CID")),
    responses((status = 200, description = "The piece's bytes", content_type = "application/octet-stream", body = Vec<u8>)))]
pub async fn download(
    _admin: Admin,
    s: web::Data<RestState>,
    path: TaskPath,
) -> Result<HttpResponse, ApiError> {
    let (miner, number, cid) = path.into_inner();
    let row = task(&s, miner, number, &cid).await?;
    if row.state != unseal::FINISHED {
        return Err(ApiError::Conflict(format!(
            "the unseal of {cid} in s-t0{miner}-{number} is {}{}: its bytes are not ready",
            row.state,
            row.error_info
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        )));
    }
    let c = cid.clone();
    let Some(mut bytes) =
        s.db.run(move |conn| unseal::data(conn, miner, number, &c))
            .await?
    else {
        return Err(ApiError::NotFound(format!(
            "the unseal of {cid} in s-t0{miner}-{number} was delivered to {}, not kept by the \
             manager",
            row.dests().join(", ")
        )));
    };
    bytes.truncate(row.payload_size as usize);
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(bytes))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Secret {
    pub secret: String,
}

/// The answer to an upload.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Received {
    /// Bytes kept.
    pub received: usize,
}

/// An unseal thread's upload to the manager.
#[utoipa::path(put, path = "/unseal/{miner}/{number}/{cid}/piece", tag = "unseal", security(()),
    params(("miner" = u64, Path, description = "The miner's actor id"), ("number" = u64, Path, description = "The sector number"), ("cid" = String, Path, description = "The piece CID"), Secret),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The piece's unpadded bytes"),
    responses((status = 200, description = "Kept: they make the piece's CID", body = Received)))]
pub async fn upload(
    s: web::Data<RestState>,
    path: TaskPath,
    q: web::Query<Secret>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (miner, number, cid) = path.into_inner();
    let (secret, n) = (q.into_inner().secret, body.len());
    let what = format!("the unseal of {cid} in s-t0{miner}-{number}");
    let (c, k) = (cid.clone(), secret.clone());
    let admitted =
        s.db.run(move |conn| unseal::admits(conn, miner, number, &c, &k, n))
            .await?;
    // Only bytes that make the piece's CID are kept: a bad disk or a forger delivers nothing.
    // Checked once the secret admitted the caller, off the server's threads.
    if admitted.is_ok() {
        let (proof, padded, c, bytes) = (
            s.proof_type,
            n as u64 / 127 * 128,
            cid.clone(),
            body.clone(),
        );
        let made =
            web::block(move || damocles_proof_types::piece_commitment(proof, &bytes, padded))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .map_err(|e| ApiError::BadRequest(format!("{what}: {e}")))?;
        if commcid::piece_comm(&c).ok() != Some(made) {
            return Err(ApiError::BadRequest(format!(
                "{what}: the bytes make piece CID {}, not the task's; they are not kept",
                commcid::piece_cid(&made)
            )));
        }
    }
    let (c, at) = (cid.clone(), db::now());
    let stored =
        s.db.run(move |conn| unseal::store(conn, miner, number, &c, &secret, &body, at))
            .await?;
    match stored {
        Ok(()) => {
            tracing::info!(sector = %format!("s-t0{miner}-{number}"), piece = %cid, bytes = n, "unsealed piece received");
            Ok(HttpResponse::Ok().json(Received { received: n }))
        }
        Err(UploadRefused::NoSuchTask) => Err(ApiError::NotFound(format!("no {what}"))),
        Err(UploadRefused::Secret) => Err(ApiError::Forbidden(format!(
            "{what}: the secret is not the task's; upload to the URL AcquireUnsealDest gave"
        ))),
        Err(UploadRefused::State(st)) => Err(ApiError::Conflict(format!(
            "{what} is {st}: an upload is taken only after the thread asked where to put it"
        ))),
        Err(UploadRefused::Size(want)) => Err(ApiError::BadRequest(format!(
            "{what} takes the piece's {want} unpadded bytes; this upload has {n}"
        ))),
    }
}
