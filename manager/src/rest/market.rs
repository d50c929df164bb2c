//! The mock market, snap-up and sectors for operators: import and list deals, serve pieces to
//! workers (`/piecestore/<cid>`, as damocles' workers fetch them), make a deadline's proven CC
//! sectors snap-up candidates and list them, list sectors with their kind and show one.

use actix_web::{web, HttpRequest, HttpResponse};
use damocles_actors::wire::commcid;
use damocles_actors::wire::seal_proof;
use serde::{Deserialize, Serialize};

use super::audit::{audited, Done};
use super::{Admin, RestState};
use crate::db::deals::{DealRow, NewDeal};
use crate::db::rebuild::RebuildRow;
use crate::db::sectors::SectorRow;
use crate::db::{self, snap};
use crate::error::ApiError;

/// Largest deal the mock market takes: pieces live in the database.
pub const MAX_DEAL_BYTES: usize = 8 << 20;

/// How long a mock deal lasts (540 days of 30 s epochs).
const DEAL_EPOCHS: i64 = 540 * 2880;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MinerQuery {
    pub miner: Option<u64>,
}

/// The current epoch of the mock chain (30 s epochs since the Unix epoch).
fn epoch() -> i64 {
    db::now().and_utc().timestamp() / 30
}

/// `util mock deals import`: the body is the client's data. It is padded as Filecoin pads a
/// piece, its commitment computed with the proofs library, kept in the piece store, and a deal
/// waiting for a sector is created.
#[utoipa::path(post, path = "/mock/deals", tag = "market", params(MinerQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The client's data"),
    responses((status = 200, description = "The deal, waiting for a sector", body = DealRow)))]
pub async fn import_deal(
    admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<MinerQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let miner = q.miner.unwrap_or(s.miner);
    if miner != s.miner {
        return Err(ApiError::BadRequest(format!(
            "miner {miner} is not the mock chain's miner; it is {}",
            s.miner
        )));
    }
    let sector = seal_proof::sector_size(s.proof_type).unwrap_or(2048);
    let room = sector - sector / 128;
    if body.is_empty() || body.len() as u64 > room {
        return Err(ApiError::BadRequest(format!(
            "a deal of {} bytes does not fit: a deal holds 1 to {room} bytes (a {sector} byte sector, Fr32 padded)",
            body.len()
        )));
    }
    let payload = body.to_vec();
    let piece_size = damocles_proof_types::piece_size(payload.len() as u64);
    let proof = s.proof_type;
    let p = payload.clone();
    let comm = crate::verify::limited(move || {
        damocles_proof_types::piece_commitment(proof, &p, piece_size)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(ApiError::BadRequest)?;
    let piece_cid = commcid::piece_cid(&comm);
    let start = epoch();
    let deal = NewDeal {
        miner,
        piece_cid: piece_cid.clone(),
        piece_size,
        payload,
        client: "t01001".into(),
        start_epoch: start,
        end_epoch: start + DEAL_EPOCHS,
    };
    let row = audited(&s, &admin, "deals.import", &piece_cid, move |c| {
        let row = db::deals::import(c, deal, db::now())?;
        let done = Done {
            result: format!("deal {}", row.deal_id),
            detail: Some(format!(
                "{} bytes, piece {}",
                row.payload_size, row.piece_size
            )),
        };
        Ok((row, Some(done)))
    })
    .await?;
    tracing::info!(deal = row.deal_id, piece = %row.piece_cid, by = %admin.0, "deal imported");
    Ok(HttpResponse::Ok().json(row))
}

/// `util mock deals list`: every deal and where it went.
#[utoipa::path(get, path = "/mock/deals", tag = "market", params(MinerQuery),
    responses((status = 200, description = "Every deal and where it went", body = Vec<DealRow>)))]
pub async fn list_deals(
    _admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<MinerQuery>,
) -> Result<HttpResponse, ApiError> {
    let miner = q.miner;
    let rows: Vec<DealRow> = s.db.run(move |c| db::deals::list(c, miner)).await?;
    Ok(HttpResponse::Ok().json(rows))
}

/// `GET /piecestore/<cid>`: a piece's bytes for a worker (its token, as on `/rpc/v0`) or an
/// operator (the admin token).
#[utoipa::path(get, path = "/piecestore/{cid}", tag = "market",
    security(("token" = []), ("worker_token" = [])),
    params(("cid" = String, Path, description = "The piece CID")),
    responses((status = 200, description = "The piece's bytes", content_type = "application/octet-stream", body = Vec<u8>)))]
pub async fn piece(
    req: HttpRequest,
    s: web::Data<RestState>,
    cid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let auth = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok());
    let admin = auth
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| {
            damocles_actors::wire::auth::ct_eq(t.trim().as_bytes(), s.token.as_bytes())
        });
    if !admin && s.auth.identify(auth).await.is_err() {
        return Err(ApiError::Unauthorized);
    }
    let cid = cid.into_inner();
    commcid::piece_comm(&cid).map_err(ApiError::BadRequest)?;
    let c = cid.clone();
    match s.db.run(move |conn| db::deals::piece(conn, &c)).await? {
        Some(bytes) => Ok(HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(bytes)),
        None => Err(ApiError::NotFound(format!(
            "no piece {cid} in the piece store"
        ))),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FetchQuery {
    pub deadline: Option<i32>,
}

/// What `snap fetch` did (damocles' `SnapUpFetchResult`).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapFetched {
    /// Candidates in the deadline now.
    pub total: u64,
    /// Of them, how many this call added.
    pub diff: u64,
}

/// `util sealer snap fetch <miner> <deadline>`.
#[utoipa::path(post, path = "/sealer/snap/{miner}/fetch", tag = "sectors", params(("miner" = u64, Path, description = "The miner's actor id"), FetchQuery),
    responses((status = 200, description = "The deadline's proven CC sectors are snap-up candidates now", body = SnapFetched)))]
pub async fn snap_fetch(
    admin: Admin,
    s: web::Data<RestState>,
    miner: web::Path<u64>,
    q: web::Query<FetchQuery>,
) -> Result<HttpResponse, ApiError> {
    let miner = miner.into_inner();
    let deadline = q
        .deadline
        .ok_or_else(|| ApiError::BadRequest("deadline is missing: ?deadline=N".into()))?;
    if deadline < 0 || deadline as u32 >= s.deadlines {
        return Err(ApiError::BadRequest(format!(
            "deadline {deadline} does not exist: deadlines are 0 to {}",
            s.deadlines - 1
        )));
    }
    let target = format!("t0{miner} deadline {deadline}");
    let (total, diff) = audited(&s, &admin, "snap.fetch", &target, move |c| {
        let (total, diff) = snap::fetch(c, miner, deadline, db::now())?;
        let done = (diff > 0).then(|| Done {
            result: format!("{diff} candidates added"),
            detail: None,
        });
        Ok(((total, diff), done))
    })
    .await?;
    Ok(HttpResponse::Ok().json(SnapFetched { total, diff }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CandidatesQuery {
    #[serde(default)]
    pub show_all: bool,
}

/// The candidates of one deadline.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadlineCandidates {
    pub deadline: u32,
    /// Sector numbers.
    pub sectors: Vec<u64>,
}

/// `util sealer snap candidates <miner> [--show-all]`: candidates per deadline (every deadline
/// with `show_all`).
#[utoipa::path(get, path = "/sealer/snap/{miner}/candidates", tag = "sectors", params(("miner" = u64, Path, description = "The miner's actor id"), CandidatesQuery),
    responses((status = 200, description = "Candidates per deadline", body = Vec<DeadlineCandidates>)))]
pub async fn snap_candidates(
    _admin: Admin,
    s: web::Data<RestState>,
    miner: web::Path<u64>,
    q: web::Query<CandidatesQuery>,
) -> Result<HttpResponse, ApiError> {
    let miner = miner.into_inner();
    let rows = s.db.run(move |c| snap::candidates(c, miner)).await?;
    let out: Vec<DeadlineCandidates> = (0..s.deadlines)
        .map(|d| DeadlineCandidates {
            deadline: d,
            sectors: rows
                .iter()
                .filter(|r| r.deadline_idx == Some(d as i32))
                .map(|r| r.sector_number as u64)
                .collect(),
        })
        .filter(|d| q.show_all || !d.sectors.is_empty())
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// What a sector holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SectorKind {
    /// Committed capacity: zeros.
    CC,
    /// Sealed with deals.
    Deals,
    /// A CC sector whose replica was updated with deals.
    Snapped,
}

/// A sector as operators see it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SectorView {
    pub kind: SectorKind,
    /// Deals in it (or given to its snap-up).
    pub deals: Vec<i64>,
    /// Its rebuild, if one was asked for.
    pub rebuild: Option<RebuildRow>,
    #[serde(flatten)]
    pub row: SectorRow,
}

fn view(row: SectorRow, deals: &[DealRow], rebuilds: &[RebuildRow]) -> SectorView {
    let ids: Vec<i64> = deals
        .iter()
        .filter(|d| d.sector_number == Some(row.sector_number) && d.miner_id == row.miner_id)
        .map(|d| d.deal_id)
        .collect();
    let kind = if row.snap_state.as_deref() == Some(snap::DONE) {
        SectorKind::Snapped
    } else if !ids.is_empty() && row.snap_state.is_none() {
        SectorKind::Deals
    } else {
        SectorKind::CC
    };
    let rebuild = rebuilds
        .iter()
        .find(|r| r.miner_id == row.miner_id && r.sector_number == row.sector_number)
        .cloned();
    SectorView {
        kind,
        deals: ids,
        rebuild,
        row,
    }
}

/// `util sealer sectors list [--miner]`.
#[utoipa::path(get, path = "/sectors", tag = "sectors", params(MinerQuery),
    responses((status = 200, description = "Every sector with its kind, deals and rebuild", body = Vec<SectorView>)))]
pub async fn sectors(
    _admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<MinerQuery>,
) -> Result<HttpResponse, ApiError> {
    let miner = q.miner;
    let (rows, deals, rebuilds) =
        s.db.run(move |c| {
            let rows = db::sectors::list(c)?;
            let deals = db::deals::list(c, miner)?;
            Ok((rows, deals, db::rebuild::list(c, miner)?))
        })
        .await?;
    let out: Vec<SectorView> = rows
        .into_iter()
        .filter(|r| miner.is_none_or(|m| r.miner_id == m as i64))
        .map(|r| view(r, &deals, &rebuilds))
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// One sector with its deals and pieces.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SectorState {
    #[serde(flatten)]
    pub sector: SectorView,
    pub deal_rows: Vec<DealRow>,
}

/// `util sealer sectors state <miner> <number>`.
#[utoipa::path(get, path = "/sectors/{miner}/{number}", tag = "sectors", params(("miner" = u64, Path, description = "The miner's actor id"), ("number" = u64, Path, description = "The sector number")),
    responses((status = 200, description = "One sector with its deals", body = SectorState)))]
pub async fn sector_state(
    _admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<(u64, u64)>,
) -> Result<HttpResponse, ApiError> {
    let (miner, number) = path.into_inner();
    let found =
        s.db.run(move |c| {
            let row = db::sectors::get(c, miner, number)?;
            let deals = db::deals::of_sector(c, miner, number)?;
            let rebuild = db::rebuild::get(c, miner, number)?;
            Ok((row, deals, rebuild))
        })
        .await?;
    let (Some(row), deals, rebuild) = found else {
        return Err(ApiError::NotFound(format!(
            "sector s-t0{miner}-{number} not found"
        )));
    };
    Ok(HttpResponse::Ok().json(SectorState {
        sector: view(row, &deals, &rebuild.into_iter().collect::<Vec<_>>()),
        deal_rows: deals,
    }))
}
