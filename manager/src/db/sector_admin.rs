//! What operators do to sectors (`util sealer sectors abort|restore|import-json`). Each change
//! is conditional on the state the REST handler checked, so a worker's report (or another
//! manager) meanwhile makes it change nothing rather than something else; the caller runs it
//! in one transaction with its audit row.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::raw::{execute, is_mysql, Val};
use super::schema::{deals, sector_counters, sectors};
use super::{classify, deals as market, snap, DbConnection, DbError};
use crate::sector_json::Import;

/// The sector is aborted (unless it is aborted or proven already), remembering the state it
/// left for `restore`; its deals go back to the market (and it then cannot be restored). False
/// when nothing changed.
pub fn abort(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    reason: &str,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = diesel::update(
        sectors::table
            .filter(sectors::miner_id.eq(miner as i64))
            .filter(sectors::sector_number.eq(number as i64))
            .filter(sectors::state.ne("Aborted"))
            .filter(
                sectors::proof_state
                    .is_null()
                    .or(sectors::proof_state.ne("Landed")),
            ),
    )
    .set((
        sectors::aborted_from.eq(sectors::state.nullable()),
        sectors::state.eq("Aborted"),
        sectors::abort_reason.eq(reason),
        sectors::updated_at.eq(at),
    ))
    .execute(conn)
    .map_err(classify)?;
    if n == 1 && market::release(conn, miner, number, at)? > 0 {
        // Its deals are free for other sectors now: this sector cannot be restored.
        diesel::update(
            sectors::table
                .filter(sectors::miner_id.eq(miner as i64))
                .filter(sectors::sector_number.eq(number as i64)),
        )
        .set((
            sectors::aborted_from.eq(None::<String>),
            sectors::abort_reason.eq(format!("{reason} (its deals went back to the market)")),
        ))
        .execute(conn)
        .map_err(classify)?;
    }
    Ok(n == 1)
}

/// An aborted sector goes back to the state it was aborted in. False when it is not aborted,
/// or its state before is unknown (aborted before this was recorded, or its deals are gone).
pub fn restore(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = execute(
        conn,
        "UPDATE sectors SET state = aborted_from, aborted_from = NULL, abort_reason = NULL, \
         updated_at = ? WHERE miner_id = ? AND sector_number = ? AND state = 'Aborted' \
         AND aborted_from IS NOT NULL",
        vec![
            Val::Time(at),
            Val::Int(miner as i64),
            Val::Int(number as i64),
        ],
    )
    .map_err(classify)?;
    Ok(n == 1)
}

/// The snap-up in flight is given up (the proven sector stays, a candidate again).
pub fn abort_snap(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    snap::release_in(conn, miner, number, at)
}

/// Records an imported, proven sector at `placement` (deadline, partition), with its deals
/// active; with `replace`, in place of a sector of that number that is finished or aborted.
/// Refused (nothing changed) when the number is taken otherwise, or a deal id is another
/// sector's.
pub fn import(
    conn: &mut DbConnection,
    imp: &Import,
    replace: bool,
    placement: (i32, i32),
    at: NaiveDateTime,
) -> Result<(), DbError> {
    let (miner, number) = (imp.miner as i64, imp.number as i64);
    let name = format!("s-t0{miner}-{number}");
    let target = sectors::table
        .filter(sectors::miner_id.eq(miner))
        .filter(sectors::sector_number.eq(number));
    let existing: Option<String> = target
        .select(sectors::state)
        .first(conn)
        .optional()
        .map_err(classify)?;
    match existing {
        None => {}
        Some(state) if !replace => {
            return Err(DbError::Invalid(format!(
                "{name} exists already (state {state}); --override replaces a finished or \
                 aborted sector"
            )))
        }
        Some(state) if state != "Finished" && state != "Aborted" => {
            return Err(DbError::Invalid(format!(
                "{name} exists and is in progress (state {state}): a sector a worker is sealing \
                 is never replaced; abort it first"
            )))
        }
        Some(_) => {
            diesel::delete(target).execute(conn).map_err(classify)?;
        }
    }
    for p in &imp.pieces {
        let owner: Option<(i64, Option<i64>)> = deals::table
            .filter(deals::deal_id.eq(p.deal_id as i64))
            .select((deals::miner_id, deals::sector_number))
            .first(conn)
            .optional()
            .map_err(classify)?;
        match owner {
            None => {}
            Some((m, Some(s))) if m == miner && s == number => {
                diesel::delete(deals::table.filter(deals::deal_id.eq(p.deal_id as i64)))
                    .execute(conn)
                    .map_err(classify)?;
            }
            Some((m, s)) => {
                return Err(DbError::Invalid(format!(
                    "deal {} of {name} exists here already (miner t0{m}, {}): deal ids must not \
                     collide",
                    p.deal_id,
                    s.map_or("waiting for a sector".to_string(), |s| format!(
                        "sector {s}"
                    ))
                )))
            }
        }
        diesel::insert_into(deals::table)
            .values((
                deals::deal_id.eq(p.deal_id as i64),
                deals::miner_id.eq(miner),
                deals::piece_cid.eq(&p.piece_cid),
                deals::piece_size.eq(p.piece_size as i64),
                deals::payload_size.eq(p.payload_size as i64),
                deals::client.eq(&p.client),
                deals::start_epoch.eq(p.start_epoch),
                deals::end_epoch.eq(p.end_epoch),
                deals::price.eq("0"),
                deals::state.eq(market::ACTIVE),
                deals::sector_number.eq(number),
                deals::piece_offset.eq(p.offset as i64),
                deals::created_at.eq(at),
                deals::updated_at.eq(at),
            ))
            .execute(conn)
            .map_err(classify)?;
    }
    let u = imp.update.as_ref();
    diesel::insert_into(sectors::table)
        .values((
            sectors::miner_id.eq(miner),
            sectors::sector_number.eq(number),
            sectors::proof_type.eq(imp.proof_type as i32),
            sectors::state.eq("Finished"),
            sectors::worker_name.eq(&imp.last_worker),
            sectors::location.eq(&imp.last_location),
            sectors::ticket.eq(&imp.ticket),
            sectors::seed.eq(&imp.seed),
            sectors::comm_r.eq(&imp.comm_r),
            sectors::comm_d.eq(&imp.comm_d),
            sectors::precommit_state.eq("Landed"),
            sectors::persist_store.eq(&imp.persist_store),
            sectors::proof.eq(&imp.proof),
            sectors::proof_state.eq("Landed"),
            sectors::created_at.eq(at),
            sectors::updated_at.eq(at),
            sectors::deadline_idx.eq(placement.0),
            sectors::partition_idx.eq(placement.1),
            sectors::proven_at.eq(at),
            sectors::imported_at.eq(at),
        ))
        .execute(conn)
        .map_err(classify)?;
    if let Some(u) = u {
        diesel::update(target)
            .set((
                sectors::snap_state.eq(snap::DONE),
                sectors::update_comm_r.eq(&u.comm_r),
                sectors::update_comm_d.eq(&u.comm_d),
                sectors::update_store.eq(&u.store),
                sectors::update_proof.eq(&u.proof),
                sectors::upgraded_at.eq(at),
            ))
            .execute(conn)
            .map_err(classify)?;
    }
    // New sectors of this miner are numbered after the imported one.
    let ignore = if is_mysql(conn) {
        "INSERT IGNORE"
    } else {
        "INSERT OR IGNORE"
    };
    execute(
        conn,
        &format!("{ignore} INTO sector_counters (miner_id, next_number) VALUES (?, 1)"),
        vec![Val::Int(miner)],
    )
    .map_err(classify)?;
    diesel::update(
        sector_counters::table
            .filter(sector_counters::miner_id.eq(miner))
            .filter(sector_counters::next_number.le(number)),
    )
    .set(sector_counters::next_number.eq(number + 1))
    .execute(conn)
    .map_err(classify)?;
    Ok(())
}

#[cfg(test)]
mod tests;
