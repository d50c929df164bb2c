//! Snap-up on `sectors`: a proven CC sector of a deadline becomes a candidate (`snap fetch`), is
//! allocated to one worker together with waiting deals, and is done once its update proof is
//! verified. Every step is a conditional update on `snap_state`, so two managers never hand the
//! same sector out twice.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::deals::{self, assign_in, Want};
use super::schema::{deals as deals_t, sectors};
use super::sectors::SectorRow;
use super::{classify, write_transaction, DbConnection, DbError};

/// Can be snapped up.
pub const CANDIDATE: &str = "Candidate";
/// Given to a worker's snap-up thread.
pub const ALLOCATED: &str = "Allocated";
/// Its update proof was verified: WindowPoSt proves the updated replica.
pub const DONE: &str = "Done";

/// `util sealer snap fetch`: the proven CC sectors of `deadline` become candidates, in the
/// caller's transaction (with its audit row). Returns (candidates of the deadline now, how many
/// are new).
pub fn fetch(
    conn: &mut DbConnection,
    miner: u64,
    deadline: i32,
    at: NaiveDateTime,
) -> Result<(u64, u64), DbError> {
    let c = conn;
    {
        let proven: Vec<i64> = sectors::table
            .filter(sectors::miner_id.eq(miner as i64))
            .filter(sectors::proof_state.eq("Landed"))
            .filter(sectors::deadline_idx.eq(deadline))
            .filter(sectors::snap_state.is_null())
            .select(sectors::sector_number)
            .load(c)?;
        // Only CC sectors: none of them holds a deal.
        let with_deals: Vec<Option<i64>> = deals_t::table
            .filter(deals_t::miner_id.eq(miner as i64))
            .filter(deals_t::sector_number.eq_any(&proven))
            .select(deals_t::sector_number)
            .load(c)?;
        let numbers: Vec<i64> = proven
            .into_iter()
            .filter(|n| !with_deals.contains(&Some(*n)))
            .collect();
        let added = diesel::update(
            sectors::table
                .filter(sectors::miner_id.eq(miner as i64))
                .filter(sectors::sector_number.eq_any(&numbers))
                .filter(sectors::snap_state.is_null()),
        )
        .set((
            sectors::snap_state.eq(CANDIDATE),
            sectors::updated_at.eq(at),
        ))
        .execute(c)?;
        let total: i64 = sectors::table
            .filter(sectors::miner_id.eq(miner as i64))
            .filter(sectors::deadline_idx.eq(deadline))
            .filter(sectors::snap_state.eq(CANDIDATE))
            .count()
            .get_result(c)?;
        Ok((total as u64, added as u64))
    }
}

/// The snap-up candidates of `miner`, by number.
pub fn candidates(conn: &mut DbConnection, miner: u64) -> Result<Vec<SectorRow>, DbError> {
    sectors::table
        .select(SectorRow::as_select())
        .filter(sectors::miner_id.eq(miner as i64))
        .filter(sectors::snap_state.eq(CANDIDATE))
        .order(sectors::sector_number.asc())
        .load(conn)
        .map_err(classify)
}

/// A candidate of `miner` for `owner` with waiting deals that fit (as `want` says), or None
/// when there is no candidate or no deal. One transaction: the sector and its deals move
/// together or not at all.
pub fn allocate(
    conn: &mut DbConnection,
    miner: u64,
    owner: Option<&str>,
    sector: u64,
    want: Want,
    at: NaiveDateTime,
) -> Result<Option<(SectorRow, Vec<deals::DealRow>)>, DbError> {
    let owner = owner.map(String::from);
    write_transaction(conn, |c| {
        let candidates: Vec<i64> = sectors::table
            .filter(sectors::miner_id.eq(miner as i64))
            .filter(sectors::snap_state.eq(CANDIDATE))
            .select(sectors::sector_number)
            .order(sectors::sector_number.asc())
            .limit(16)
            .load(c)?;
        for number in candidates {
            let taken = diesel::update(
                sectors::table
                    .filter(sectors::miner_id.eq(miner as i64))
                    .filter(sectors::sector_number.eq(number))
                    .filter(sectors::snap_state.eq(CANDIDATE)),
            )
            .set((
                sectors::snap_state.eq(ALLOCATED),
                sectors::snap_owner.eq(&owner),
                sectors::updated_at.eq(at),
            ))
            .execute(c)?;
            if taken == 0 {
                continue;
            }
            let got = assign_in(c, miner, number as u64, sector, want, at)?;
            if got.is_empty() {
                // No deal to put in it: nothing changes.
                return Err(DbError::Invalid(NO_DEALS.into()));
            }
            let row = sectors::table
                .select(SectorRow::as_select())
                .filter(sectors::miner_id.eq(miner as i64))
                .filter(sectors::sector_number.eq(number))
                .first(c)?;
            return Ok(Some((row, got)));
        }
        Ok(None)
    })
    .or_else(|e| match e {
        DbError::Invalid(m) if m == NO_DEALS => Ok(None),
        e => Err(e),
    })
}

const NO_DEALS: &str = "no waiting deal for a snap-up";

/// What a verified update records.
pub struct Update {
    pub comm_r: String,
    pub comm_d: String,
    pub store: String,
    pub proof: String,
}

/// The update proof was verified: the sector is snapped and its deals active. False when the
/// sector is no longer allocated for snap-up (aborted meanwhile).
pub fn done(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    u: Update,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    write_transaction(conn, |c| {
        let n = diesel::update(
            sectors::table
                .filter(sectors::miner_id.eq(miner as i64))
                .filter(sectors::sector_number.eq(number as i64))
                .filter(sectors::snap_state.eq(ALLOCATED)),
        )
        .set((
            sectors::snap_state.eq(DONE),
            sectors::update_comm_r.eq(&u.comm_r),
            sectors::update_comm_d.eq(&u.comm_d),
            sectors::update_store.eq(&u.store),
            sectors::update_proof.eq(&u.proof),
            sectors::upgraded_at.eq(at),
            sectors::updated_at.eq(at),
        ))
        .execute(c)?;
        if n == 1 {
            deals::activate(c, miner, number, at)?;
        }
        Ok(n == 1)
    })
}

/// The snap-up was given up: the sector is a candidate again and its deals wait again.
pub fn release(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    write_transaction(conn, |c| release_in(c, miner, number, at))
}

/// `release` inside the caller's transaction.
pub fn release_in(
    c: &mut DbConnection,
    miner: u64,
    number: u64,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    {
        let n = diesel::update(
            sectors::table
                .filter(sectors::miner_id.eq(miner as i64))
                .filter(sectors::sector_number.eq(number as i64))
                .filter(sectors::snap_state.eq(ALLOCATED)),
        )
        .set((
            sectors::snap_state.eq(CANDIDATE),
            sectors::snap_owner.eq(None::<String>),
            sectors::state.eq("Finished"),
            sectors::updated_at.eq(at),
        ))
        .execute(c)?;
        deals::release(c, miner, number, at)?;
        Ok(n == 1)
    }
}
