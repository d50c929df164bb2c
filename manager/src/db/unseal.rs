//! `unseal_tasks`: an operator asks for a piece of a sealed sector back. A task is `set_up`
//! (queued), `unsealing` once one unseal thread has it (a conditional update: one thread gets
//! it), `uploading` once that thread asked where to put the bytes, and `finished` or `failed`
//! when it says so; damocles' states and names. Asking again for a finished or failed piece
//! queues it again; asking for one still queued adds the destination to it.

use chrono::NaiveDateTime;
use damocles_actors::wire::auth::ct_eq;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::schema::unseal_tasks as ut;
use super::{classify, DbConnection, DbError};

/// Queued, waiting for an unseal thread.
pub const SET_UP: &str = "set_up";
/// A thread is regenerating the bytes.
pub const UNSEALING: &str = "unsealing";
/// The thread has the bytes and asked where they go.
pub const UPLOADING: &str = "uploading";
/// Delivered.
pub const FINISHED: &str = "finished";
/// The thread gave up; `error_info` says why.
pub const FAILED: &str = "failed";

/// The destination that stands for the manager itself: replaced, when a thread asks, by this
/// manager's upload URL as that thread reached it.
pub const MANAGER_DEST: &str = "manager";

/// One unseal task, without its bytes and its upload secret.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = ut)]
pub struct UnsealRow {
    pub miner_id: i64,
    pub sector_number: i64,
    pub piece_cid: String,
    /// Where the piece starts in the sector, in unpadded bytes.
    pub piece_offset: i64,
    /// The piece's unpadded size.
    pub piece_size: i64,
    /// The client's bytes at the piece's start (the rest is zero padding).
    pub payload_size: i64,
    /// The destinations, a JSON list.
    pub dest: String,
    pub state: String,
    /// The worker whose thread has it (None: a caller without a token, or not given yet).
    pub owner: Option<String>,
    pub error_info: Option<String>,
    pub requested_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

impl UnsealRow {
    /// The destinations.
    pub fn dests(&self) -> Vec<String> {
        serde_json::from_str(&self.dest).unwrap_or_default()
    }
}

/// What an operator asks for.
#[derive(Debug, Clone)]
pub struct NewUnseal {
    pub miner: u64,
    pub number: u64,
    pub piece_cid: String,
    pub offset: u64,
    pub size: u64,
    pub payload_size: u64,
    /// Where the bytes go ([`MANAGER_DEST`]: kept by the manager).
    pub dest: String,
    /// What an upload to the manager must carry.
    pub secret: String,
    /// Start over even when a thread holds the task (its worker is gone for good).
    pub requeue: bool,
}

/// What [`queue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// A new task (or a finished or failed one queued again).
    New,
    /// The task was queued or running: the destination was added to it.
    DestAdded,
    /// The task had that destination already.
    Already,
    /// The bytes are being uploaded: no destination can be added now.
    Uploading,
    /// Taken from the thread that held it (`requeue`) and queued afresh.
    Requeued,
}

pub fn get(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    cid: &str,
) -> Result<Option<UnsealRow>, DbError> {
    key(miner, number, cid)
        .select(UnsealRow::as_select())
        .first(conn)
        .optional()
        .map_err(classify)
}

/// Every task (of `miner`, when given), newest first.
pub fn list(conn: &mut DbConnection, miner: Option<u64>) -> Result<Vec<UnsealRow>, DbError> {
    let mut q = ut::table.select(UnsealRow::as_select()).into_boxed();
    if let Some(m) = miner {
        q = q.filter(ut::miner_id.eq(m as i64));
    }
    q.order((ut::requested_at.desc(), ut::sector_number.asc()))
        .load(conn)
        .map_err(classify)
}

/// Whether a piece of sector `number` is being unsealed (queued or held by a thread).
pub fn in_progress(conn: &mut DbConnection, miner: u64, number: u64) -> Result<bool, DbError> {
    let n: i64 = ut::table
        .filter(ut::miner_id.eq(miner as i64))
        .filter(ut::sector_number.eq(number as i64))
        .filter(ut::state.eq_any([SET_UP, UNSEALING, UPLOADING]))
        .count()
        .get_result(conn)
        .map_err(classify)?;
    Ok(n > 0)
}

/// Queues `t`, in the caller's transaction (see [`Queued`]).
pub fn queue(conn: &mut DbConnection, t: &NewUnseal, at: NaiveDateTime) -> Result<Queued, DbError> {
    let fresh = (
        ut::piece_offset.eq(t.offset as i64),
        ut::piece_size.eq(t.size as i64),
        ut::payload_size.eq(t.payload_size as i64),
        ut::dest.eq(json_list(std::slice::from_ref(&t.dest))),
        ut::upload_secret.eq(t.secret.clone()),
        ut::state.eq(SET_UP),
        ut::requested_at.eq(at),
        ut::updated_at.eq(at),
    );
    let Some(row) = get(conn, t.miner, t.number, &t.piece_cid)? else {
        diesel::insert_into(ut::table)
            .values((
                ut::miner_id.eq(t.miner as i64),
                ut::sector_number.eq(t.number as i64),
                ut::piece_cid.eq(t.piece_cid.clone()),
                fresh,
            ))
            .execute(conn)
            .map_err(classify)?;
        return Ok(Queued::New);
    };
    let this = || key(t.miner, t.number, &t.piece_cid).filter(ut::state.eq(row.state.clone()));
    let mut dests = row.dests();
    let over = matches!(row.state.as_str(), FINISHED | FAILED);
    let n = match row.state.as_str() {
        _ if over || t.requeue => diesel::update(this())
            .set((
                fresh,
                ut::owner.eq(None::<String>),
                ut::error_info.eq(None::<String>),
                ut::data.eq(None::<Vec<u8>>),
                ut::finished_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn),
        UPLOADING if !dests.contains(&t.dest) => return Ok(Queued::Uploading),
        _ if dests.contains(&t.dest) => return Ok(Queued::Already),
        _ => {
            dests.push(t.dest.clone());
            diesel::update(this())
                .set((ut::dest.eq(json_list(&dests)), ut::updated_at.eq(at)))
                .execute(conn)
        }
    }
    .map_err(classify)?;
    if n != 1 {
        // Another manager moved it meanwhile: as if it had been asked a moment later.
        return queue(conn, t, at);
    }
    Ok(if dests.len() > row.dests().len() {
        Queued::DestAdded
    } else if over || row.state == SET_UP {
        Queued::New
    } else {
        Queued::Requeued
    })
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Gives the oldest queued task of `miner` (in a sector with a seal proof among
/// `proof_types`, when given) to `owner`'s thread.
pub fn allocate(
    conn: &mut DbConnection,
    miner: u64,
    proof_types: Option<&[u64]>,
    owner: Option<&str>,
    at: NaiveDateTime,
) -> Result<Option<UnsealRow>, DbError> {
    let queued: Vec<UnsealRow> = ut::table
        .select(UnsealRow::as_select())
        .filter(ut::miner_id.eq(miner as i64))
        .filter(ut::state.eq(SET_UP))
        .order((ut::requested_at.asc(), ut::sector_number.asc()))
        .limit(8)
        .load(conn)
        .map_err(classify)?;
    for row in queued {
        let number = row.sector_number as u64;
        let Some(sector) = super::sectors::get(conn, miner, number)? else {
            continue;
        };
        let types = proof_types.filter(|t| !t.is_empty());
        if types.is_some_and(|t| !t.contains(&(sector.proof_type as u64))) {
            continue;
        }
        // Another manager's thread may take it first: then the next one.
        let n = diesel::update(key(miner, number, &row.piece_cid).filter(ut::state.eq(SET_UP)))
            .set((
                ut::state.eq(UNSEALING),
                ut::owner.eq(owner),
                ut::updated_at.eq(at),
            ))
            .execute(conn)
            .map_err(classify)?;
        if n == 1 {
            return get(conn, miner, number, &row.piece_cid);
        }
    }
    Ok(None)
}

/// The thread has the bytes: the task is `uploading`, and these are its destinations with
/// the secret an upload to the manager carries. None when no thread holds the task.
pub fn start_upload(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    cid: &str,
    at: NaiveDateTime,
) -> Result<Option<(UnsealRow, String)>, DbError> {
    let n =
        diesel::update(key(miner, number, cid).filter(ut::state.eq_any([UNSEALING, UPLOADING])))
            .set((ut::state.eq(UPLOADING), ut::updated_at.eq(at)))
            .execute(conn)
            .map_err(classify)?;
    if n != 1 {
        return Ok(None);
    }
    let secret: String = key(miner, number, cid)
        .select(ut::upload_secret)
        .first(conn)
        .map_err(classify)?;
    Ok(get(conn, miner, number, cid)?.map(|r| (r, secret)))
}

/// The thread is done with the task: `finished`, or `failed` with `error`. False when no
/// thread holds it.
pub fn achieve(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    cid: &str,
    error: Option<&str>,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    let state = if error.is_some() { FAILED } else { FINISHED };
    let n =
        diesel::update(key(miner, number, cid).filter(ut::state.eq_any([UNSEALING, UPLOADING])))
            .set((
                ut::state.eq(state),
                ut::error_info.eq(error),
                ut::finished_at.eq(at),
                ut::updated_at.eq(at),
            ))
            .execute(conn)
            .map_err(classify)?;
    Ok(n == 1)
}

/// Why an upload to the manager was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadRefused {
    NoSuchTask,
    /// The secret does not match the task's.
    Secret,
    /// The task is not uploading (the state it is in).
    State(String),
    /// The bytes are not the piece's size (the size expected).
    Size(i64),
}

/// Whether an upload of `len` bytes with `secret` is taken now: the task, when it is.
pub fn admits(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    cid: &str,
    secret: &str,
    len: usize,
) -> Result<Result<UnsealRow, UploadRefused>, DbError> {
    let Some(row) = get(conn, miner, number, cid)? else {
        return Ok(Err(UploadRefused::NoSuchTask));
    };
    let want: String = key(miner, number, cid)
        .select(ut::upload_secret)
        .first(conn)
        .map_err(classify)?;
    if !ct_eq(want.as_bytes(), secret.as_bytes()) {
        return Ok(Err(UploadRefused::Secret));
    }
    if row.state != UPLOADING {
        return Ok(Err(UploadRefused::State(row.state)));
    }
    if len as i64 != row.piece_size {
        return Ok(Err(UploadRefused::Size(row.piece_size)));
    }
    Ok(Ok(row))
}

/// Keeps the bytes a thread uploaded to the manager, once [`admits`] takes them.
pub fn store(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    cid: &str,
    secret: &str,
    bytes: &[u8],
    at: NaiveDateTime,
) -> Result<Result<(), UploadRefused>, DbError> {
    if let Err(refused) = admits(conn, miner, number, cid, secret, bytes.len())? {
        return Ok(Err(refused));
    }
    diesel::update(key(miner, number, cid))
        .set((ut::data.eq(bytes), ut::updated_at.eq(at)))
        .execute(conn)
        .map_err(classify)?;
    Ok(Ok(()))
}

/// The row of one task.
type Key = diesel::dsl::Filter<
    diesel::dsl::Filter<
        diesel::dsl::Filter<ut::table, diesel::dsl::Eq<ut::miner_id, i64>>,
        diesel::dsl::Eq<ut::sector_number, i64>,
    >,
    diesel::dsl::Eq<ut::piece_cid, String>,
>;

fn key(miner: u64, number: u64, cid: &str) -> Key {
    ut::table
        .filter(ut::miner_id.eq(miner as i64))
        .filter(ut::sector_number.eq(number as i64))
        .filter(ut::piece_cid.eq(cid.to_string()))
}

/// The bytes the manager keeps for a task, if it has them.
pub fn data(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    cid: &str,
) -> Result<Option<Vec<u8>>, DbError> {
    Ok(key(miner, number, cid)
        .select(ut::data)
        .first::<Option<Vec<u8>>>(conn)
        .optional()
        .map_err(classify)?
        .flatten())
}

#[cfg(test)]
mod tests;
