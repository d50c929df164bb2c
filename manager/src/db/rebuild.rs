//! `sector_rebuilds`: a proven sector whose files are lost is `Queued` by an operator,
//! `Allocated` to one rebuild thread (a conditional update: one thread gets it), and `Done` once
//! its files are persisted again, which records its new store in `sectors`; an abort of the
//! rebuild queues it again.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::schema::{sector_rebuilds as rb, sectors};
use super::sectors::SectorRow;
use super::{classify, DbConnection, DbError};

/// Waiting for a rebuild thread.
pub const QUEUED: &str = "Queued";
/// A rebuild thread has it.
pub const ALLOCATED: &str = "Allocated";
/// Rebuilt: its files are in the store it said.
pub const DONE: &str = "Done";

/// One sector's rebuild.
#[derive(
    Debug, Clone, PartialEq, Queryable, Selectable, Serialize, Deserialize, utoipa::ToSchema,
)]
#[diesel(table_name = rb)]
pub struct RebuildRow {
    pub miner_id: i64,
    pub sector_number: i64,
    pub state: String,
    /// The worker whose thread has it (None: a caller without a token, or not given yet).
    pub owner: Option<String>,
    pub requested_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub rebuilt_at: Option<NaiveDateTime>,
}

pub fn get(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
) -> Result<Option<RebuildRow>, DbError> {
    rb::table
        .select(RebuildRow::as_select())
        .filter(rb::miner_id.eq(miner as i64))
        .filter(rb::sector_number.eq(number as i64))
        .first(conn)
        .optional()
        .map_err(classify)
}

/// Every rebuild (of `miner`, when given).
pub fn list(conn: &mut DbConnection, miner: Option<u64>) -> Result<Vec<RebuildRow>, DbError> {
    let mut q = rb::table.select(RebuildRow::as_select()).into_boxed();
    if let Some(m) = miner {
        q = q.filter(rb::miner_id.eq(m as i64));
    }
    q.load(conn).map_err(classify)
}

/// Queues proven sector `number` for a rebuild, in the caller's transaction; false when it is
/// not proven, or queued or being rebuilt already.
pub fn queue(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    let proven = super::sectors::get(conn, miner, number)?
        .is_some_and(|s| s.proof_state.as_deref() == Some("Landed"));
    if !proven {
        return Ok(false);
    }
    let n = match get(conn, miner, number)? {
        None => diesel::insert_into(rb::table)
            .values((
                rb::miner_id.eq(miner as i64),
                rb::sector_number.eq(number as i64),
                rb::state.eq(QUEUED),
                rb::requested_at.eq(at),
                rb::updated_at.eq(at),
            ))
            .execute(conn),
        Some(r) if r.state == DONE => diesel::update(
            rb::table
                .filter(rb::miner_id.eq(miner as i64))
                .filter(rb::sector_number.eq(number as i64))
                .filter(rb::state.eq(DONE)),
        )
        .set((
            rb::state.eq(QUEUED),
            rb::owner.eq(None::<String>),
            rb::requested_at.eq(at),
            rb::updated_at.eq(at),
        ))
        .execute(conn),
        Some(_) => Ok(0),
    }
    .map_err(classify)?;
    Ok(n == 1)
}

/// Gives the oldest queued sector of `miner` (with a seal proof among `proof_types`, when
/// given) to `owner`'s thread.
pub fn allocate(
    conn: &mut DbConnection,
    miner: u64,
    proof_types: Option<&[u64]>,
    owner: Option<&str>,
    at: NaiveDateTime,
) -> Result<Option<SectorRow>, DbError> {
    let queued: Vec<i64> = rb::table
        .select(rb::sector_number)
        .filter(rb::miner_id.eq(miner as i64))
        .filter(rb::state.eq(QUEUED))
        .order((rb::requested_at.asc(), rb::sector_number.asc()))
        .limit(8)
        .load(conn)
        .map_err(classify)?;
    for number in queued {
        let Some(row) = super::sectors::get(conn, miner, number as u64)? else {
            continue;
        };
        let types = proof_types.filter(|t| !t.is_empty());
        if types.is_some_and(|t| !t.contains(&(row.proof_type as u64))) {
            continue;
        }
        // Another manager's thread may take it first: then the next one.
        let n = diesel::update(
            rb::table
                .filter(rb::miner_id.eq(miner as i64))
                .filter(rb::sector_number.eq(number))
                .filter(rb::state.eq(QUEUED)),
        )
        .set((
            rb::state.eq(ALLOCATED),
            rb::owner.eq(owner),
            rb::updated_at.eq(at),
        ))
        .execute(conn)
        .map_err(classify)?;
        if n == 1 {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// Moves the rebuild of `number` from `from` to `to` (the owner cleared going back to the
/// queue); true when it was in `from`.
fn step(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    from: &str,
    to: &str,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    let target = rb::table
        .filter(rb::miner_id.eq(miner as i64))
        .filter(rb::sector_number.eq(number as i64))
        .filter(rb::state.eq(from));
    let n = if to == QUEUED {
        diesel::update(target)
            .set((
                rb::state.eq(to),
                rb::owner.eq(None::<String>),
                rb::updated_at.eq(at),
            ))
            .execute(conn)
    } else {
        diesel::update(target)
            .set((
                rb::state.eq(to),
                rb::rebuilt_at.eq(at),
                rb::updated_at.eq(at),
            ))
            .execute(conn)
    }
    .map_err(classify)?;
    Ok(n == 1)
}

/// The rebuilt files are in `store` (the updated replica's, with `upgrade`): the sector is
/// done and proven from there. False when it is not being rebuilt. Runs in one transaction.
pub fn done(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    store: &str,
    upgrade: bool,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    super::write_transaction(conn, |c| {
        if !step(c, miner, number, ALLOCATED, DONE, at)? {
            return Ok(false);
        }
        let target = sectors::table
            .filter(sectors::miner_id.eq(miner as i64))
            .filter(sectors::sector_number.eq(number as i64));
        let marks = (sectors::state.eq("Finished"), sectors::updated_at.eq(at));
        if upgrade {
            diesel::update(target)
                .set((marks, sectors::update_store.eq(store)))
                .execute(c)
        } else {
            diesel::update(target)
                .set((marks, sectors::persist_store.eq(store)))
                .execute(c)
        }
        .map_err(classify)?;
        Ok(true)
    })
}

/// The rebuild was given up: the sector waits for another thread.
pub fn release(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    super::write_transaction(conn, |c| {
        if !step(c, miner, number, ALLOCATED, QUEUED, at)? {
            return Ok(false);
        }
        diesel::update(
            sectors::table
                .filter(sectors::miner_id.eq(miner as i64))
                .filter(sectors::sector_number.eq(number as i64)),
        )
        .set((sectors::state.eq("Finished"), sectors::updated_at.eq(at)))
        .execute(c)
        .map_err(classify)?;
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{self, sector_admin};
    use crate::sector_json::Import;

    fn t(secs: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0)
            .unwrap_or_default()
            .naive_utc()
    }

    #[test]
    fn a_proven_sector_is_queued_once_given_to_one_thread_and_done_in_its_new_store() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut c = db::temp(&dir).conn().unwrap_or_else(|e| panic!("{e}"));
        let unproven = db::sectors::allocate(&mut c, 1000, 5, Some("w"), t(0)).unwrap_or(0);
        assert!(
            !queue(&mut c, 1000, unproven, t(1)).unwrap_or(true),
            "not proven"
        );
        let imp = Import {
            miner: 1000,
            number: 7,
            proof_type: 5,
            ticket: "dA==".into(),
            seed: None,
            proof: "cA==".into(),
            comm_r: "01".repeat(32),
            comm_d: "02".repeat(32),
            persist_store: "old".into(),
            last_worker: None,
            last_location: None,
            update: None,
            pieces: vec![],
        };
        sector_admin::import(&mut c, &imp, false, (0, 0), t(2)).unwrap_or_else(|e| panic!("{e}"));
        assert!(queue(&mut c, 1000, 7, t(3)).unwrap_or(false));
        assert!(
            !queue(&mut c, 1000, 7, t(4)).unwrap_or(true),
            "queued already"
        );
        assert!(
            allocate(&mut c, 1000, Some(&[8]), Some("w1"), t(5))
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none(),
            "another seal proof"
        );
        let got = allocate(&mut c, 1000, None, Some("w1"), t(5)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.map(|r| r.sector_number), Some(7));
        assert!(
            allocate(&mut c, 1000, None, Some("w2"), t(6))
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none(),
            "one thread has it"
        );
        // Given up, queued again; then done in the new store.
        assert!(release(&mut c, 1000, 7, t(7)).unwrap_or(false));
        assert!(allocate(&mut c, 1000, None, Some("w2"), t(8))
            .unwrap_or(None)
            .is_some());
        assert!(done(&mut c, 1000, 7, "new", false, t(9)).unwrap_or(false));
        assert!(
            !done(&mut c, 1000, 7, "new", false, t(10)).unwrap_or(true),
            "once"
        );
        let row = db::sectors::get(&mut c, 1000, 7).unwrap_or(None);
        let row = row.unwrap_or_else(|| panic!("the sector"));
        assert_eq!(row.persist_store.as_deref(), Some("new"));
        let r = get(&mut c, 1000, 7)
            .unwrap_or(None)
            .unwrap_or_else(|| panic!("a rebuild"));
        assert_eq!((r.state.as_str(), r.owner.as_deref()), (DONE, Some("w2")));
        assert!(r.rebuilt_at.is_some());
        assert!(
            queue(&mut c, 1000, 7, t(11)).unwrap_or(false),
            "again, once done"
        );
    }
}
