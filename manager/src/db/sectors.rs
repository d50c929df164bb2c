//! `sectors` and `sector_counters`: the mock chain's memory of every sector it handed out.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::raw::{execute, is_mysql, load, Val};
use super::schema::{sector_counters, sectors};
use super::{classify, DbConnection, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Serialize, Deserialize, utoipa::ToSchema)]
#[diesel(table_name = sectors)]
pub struct SectorRow {
    pub miner_id: i64,
    pub sector_number: i64,
    pub proof_type: i32,
    pub state: String,
    pub worker_name: Option<String>,
    pub location: Option<String>,
    pub ticket: Option<String>,
    pub seed: Option<String>,
    pub comm_r: Option<String>,
    pub comm_d: Option<String>,
    pub precommit_state: Option<String>,
    pub persist_store: Option<String>,
    pub proof: Option<String>,
    pub proof_state: Option<String>,
    pub abort_reason: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deadline_idx: Option<i32>,
    pub partition_idx: Option<i32>,
    pub proven_at: Option<NaiveDateTime>,
    /// The worker whose token allocated the sector; None for a caller without a token.
    pub owner: Option<String>,
    /// Snap-up: `Candidate`, `Allocated` or `Done` (`db::snap`).
    pub snap_state: Option<String>,
    /// The worker its snap-up was given to (None: a caller without a token).
    pub snap_owner: Option<String>,
    /// After a snap-up: the updated replica's commitment, its data's, its store, its proof.
    pub update_comm_r: Option<String>,
    pub update_comm_d: Option<String>,
    pub update_store: Option<String>,
    pub update_proof: Option<String>,
    pub upgraded_at: Option<NaiveDateTime>,
    /// Since when the sector is faulty (a missed WindowPoSt), and why; cleared by the next
    /// verified WindowPoSt that covers it.
    pub faulty_at: Option<NaiveDateTime>,
    pub fault_reason: Option<String>,
    /// When the sector came in through `util sealer sectors import-json`.
    pub imported_at: Option<NaiveDateTime>,
    /// The state an aborted sector was in when it was aborted.
    pub aborted_from: Option<String>,
}

/// Takes the next sector number of `miner` and records the sector as `owner`'s. Safe with
/// several managers on one database: the counter's bump locks its row until it commits; on
/// Galera two nodes bumping it at once conflict at commit, and the one undone bumps again.
pub fn allocate(
    conn: &mut DbConnection,
    miner: u64,
    proof_type: u64,
    owner: Option<&str>,
    at: NaiveDateTime,
) -> Result<u64, DbError> {
    super::again_on_conflict("sector allocation", 32, || {
        allocate_once(conn, miner, proof_type, owner, at)
    })
}

fn allocate_once(
    conn: &mut DbConnection,
    miner: u64,
    proof_type: u64,
    owner: Option<&str>,
    at: NaiveDateTime,
) -> Result<u64, DbError> {
    let miner = miner as i64;
    let number = take_number(conn, miner).map_err(classify)?;
    // A number taken and never used (the insert failed, the manager died) is skipped: numbers
    // must be unique, not dense.
    diesel::insert_into(sectors::table)
        .values((
            sectors::miner_id.eq(miner),
            sectors::sector_number.eq(number),
            sectors::proof_type.eq(proof_type as i32),
            sectors::state.eq("Allocated"),
            sectors::owner.eq(owner),
            sectors::worker_name.eq(owner),
            sectors::created_at.eq(at),
            sectors::updated_at.eq(at),
        ))
        .execute(conn)
        // Only if a counter was set back by hand: taken numbers are skipped.
        .map_err(|e| taken_as_conflict(e, || format!("sector number {number} is taken already")))
        .map_err(classify)?;
    Ok(number as u64)
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Takes `miner`'s next sector number in one statement that commits alone. On Galera a
/// replicated write may abort a local transaction that conflicts with it; a statement in
/// autocommit is then run again by the node itself, where a transaction of several statements
/// has been seen to leave its client waiting for an answer that never came.
fn take_number(c: &mut DbConnection, miner: i64) -> QueryResult<i64> {
    let next = if is_mysql(c) {
        let bumped = execute(
            c,
            "UPDATE sector_counters SET next_number = LAST_INSERT_ID(next_number + 1) \
             WHERE miner_id = ?",
            vec![Val::Int(miner)],
        )?;
        if bumped == 0 {
            None
        } else {
            // This connection's own value: no other call can change it.
            let n: Vec<Number> = load(c, "SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS n", vec![])?;
            n.first().map(|n| n.n)
        }
    } else {
        let n: Vec<Number> = load(
            c,
            "UPDATE sector_counters SET next_number = next_number + 1 WHERE miner_id = ? \
             RETURNING next_number AS n",
            vec![Val::Int(miner)],
        )?;
        n.first().map(|n| n.n)
    };
    if let Some(next) = next {
        return Ok(next - 1);
    }
    // The miner's first sector. Another allocation making the counter at the same moment
    // wins; this one is taken again and bumps it.
    diesel::insert_into(sector_counters::table)
        .values((
            sector_counters::miner_id.eq(miner),
            sector_counters::next_number.eq(2),
        ))
        .execute(c)
        .map_err(|e| {
            taken_as_conflict(e, || {
                format!("the sector counter of miner {miner} was made meanwhile")
            })
        })?;
    Ok(1)
}

/// A row found made or taken by another allocation (a unique key violated) as a conflict
/// (`is_conflict`) saying `what`, so that the allocation is made again; other errors as they
/// are.
fn taken_as_conflict(
    e: diesel::result::Error,
    what: impl FnOnce() -> String,
) -> diesel::result::Error {
    use diesel::result::{DatabaseErrorKind, Error as E};
    match e {
        E::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            E::DatabaseError(DatabaseErrorKind::SerializationFailure, Box::new(what()))
        }
        e => e,
    }
}

pub fn get(conn: &mut DbConnection, miner: u64, number: u64) -> Result<Option<SectorRow>, DbError> {
    sectors::table
        .select(SectorRow::as_select())
        .filter(sectors::miner_id.eq(miner as i64))
        .filter(sectors::sector_number.eq(number as i64))
        .first(conn)
        .optional()
        .map_err(classify)
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<SectorRow>, DbError> {
    sectors::table
        .select(SectorRow::as_select())
        .order((sectors::miner_id.asc(), sectors::sector_number.asc()))
        .load(conn)
        .map_err(classify)
}

/// The proven sectors of one deadline of `miner`, by number: what its WindowPoSt must cover.
pub fn proven_in_deadline(
    conn: &mut DbConnection,
    miner: u64,
    deadline: i32,
) -> Result<Vec<SectorRow>, DbError> {
    sectors::table
        .select(SectorRow::as_select())
        .filter(sectors::miner_id.eq(miner as i64))
        .filter(sectors::deadline_idx.eq(deadline))
        .filter(sectors::proof_state.eq("Landed"))
        .order(sectors::sector_number.asc())
        .load(conn)
        .map_err(classify)
}

/// Marks `numbers` of `miner` faulty with `reason`, unless they are already (the first fault's
/// time and reason stay); returns how many became faulty.
pub fn mark_faulty(
    conn: &mut DbConnection,
    miner: u64,
    numbers: &[u64],
    reason: &str,
    at: NaiveDateTime,
) -> Result<usize, DbError> {
    let numbers: Vec<i64> = numbers.iter().map(|n| *n as i64).collect();
    diesel::update(
        sectors::table
            .filter(sectors::miner_id.eq(miner as i64))
            .filter(sectors::sector_number.eq_any(numbers))
            .filter(sectors::faulty_at.is_null()),
    )
    .set((
        sectors::faulty_at.eq(at),
        sectors::fault_reason.eq(reason),
        sectors::updated_at.eq(at),
    ))
    .execute(conn)
    .map_err(classify)
}

/// Clears the fault of `numbers` of `miner` (a verified WindowPoSt covered them); returns how
/// many recovered.
pub fn recover(
    conn: &mut DbConnection,
    miner: u64,
    numbers: &[u64],
    at: NaiveDateTime,
) -> Result<usize, DbError> {
    let numbers: Vec<i64> = numbers.iter().map(|n| *n as i64).collect();
    diesel::update(
        sectors::table
            .filter(sectors::miner_id.eq(miner as i64))
            .filter(sectors::sector_number.eq_any(numbers))
            .filter(sectors::faulty_at.is_not_null()),
    )
    .set((
        sectors::faulty_at.eq(None::<NaiveDateTime>),
        sectors::fault_reason.eq(None::<String>),
        sectors::updated_at.eq(at),
    ))
    .execute(conn)
    .map_err(classify)
}

/// The faulty sectors, of one miner or all, by miner and number.
pub fn faulty(conn: &mut DbConnection, miner: Option<u64>) -> Result<Vec<SectorRow>, DbError> {
    let mut q = sectors::table
        .select(SectorRow::as_select())
        .filter(sectors::faulty_at.is_not_null())
        .order((sectors::miner_id.asc(), sectors::sector_number.asc()))
        .into_boxed();
    if let Some(m) = miner {
        q = q.filter(sectors::miner_id.eq(m as i64));
    }
    q.load(conn).map_err(classify)
}

/// Faulty sectors per miner, for `/metrics`.
pub fn faulty_by_miner(conn: &mut DbConnection) -> Result<Vec<(i64, i64)>, DbError> {
    use diesel::dsl::count_star;
    sectors::table
        .filter(sectors::faulty_at.is_not_null())
        .group_by(sectors::miner_id)
        .select((sectors::miner_id, count_star()))
        .load(conn)
        .map_err(classify)
}

/// One change to a sector row.
pub enum Change {
    /// Set only while the sector has none: the first ticket stored is the sector's ticket.
    Ticket(String),
    /// Set only while the sector has none, like the ticket.
    Seed(String),
    PreCommit {
        comm_r: String,
        comm_d: String,
    },
    Persisted(String),
    /// A verified proof also places the sector in a WindowPoSt deadline and partition.
    Proof {
        proof: String,
        accepted: bool,
        placement: Option<(i32, i32)>,
    },
    Report {
        state: String,
        worker: String,
        location: String,
    },
    Finalized,
    Aborted(String),
}

/// Applies `change`; false when the sector is unknown.
pub fn update(
    conn: &mut DbConnection,
    miner: u64,
    number: u64,
    change: Change,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    let target = sectors::table
        .filter(sectors::miner_id.eq(miner as i64))
        .filter(sectors::sector_number.eq(number as i64));
    let n = match change {
        Change::Ticket(t) => diesel::update(target.filter(sectors::ticket.is_null()))
            .set((sectors::ticket.eq(t), sectors::updated_at.eq(at)))
            .execute(conn),
        Change::Seed(s) => diesel::update(target.filter(sectors::seed.is_null()))
            .set((sectors::seed.eq(s), sectors::updated_at.eq(at)))
            .execute(conn),
        Change::PreCommit { comm_r, comm_d } => diesel::update(target)
            .set((
                sectors::comm_r.eq(comm_r),
                sectors::comm_d.eq(comm_d),
                sectors::precommit_state.eq("Landed"),
                sectors::updated_at.eq(at),
            ))
            .execute(conn),
        Change::Persisted(store) => diesel::update(target)
            .set((sectors::persist_store.eq(store), sectors::updated_at.eq(at)))
            .execute(conn),
        Change::Proof {
            proof,
            accepted,
            placement,
        } => diesel::update(target)
            .set((
                sectors::proof.eq(proof),
                sectors::proof_state.eq(if accepted { "Landed" } else { "Rejected" }),
                sectors::deadline_idx.eq(placement.map(|p| p.0)),
                sectors::partition_idx.eq(placement.map(|p| p.1)),
                sectors::proven_at.eq(accepted.then_some(at)),
                sectors::updated_at.eq(at),
            ))
            .execute(conn),
        Change::Report {
            state,
            worker,
            location,
        } if state == "Aborted" => diesel::update(target)
            // The abort itself is recorded by `Aborted`, with the state it left.
            .set((
                sectors::worker_name.eq(worker),
                sectors::location.eq(location),
                sectors::updated_at.eq(at),
            ))
            .execute(conn),
        Change::Report {
            state,
            worker,
            location,
        } => diesel::update(target)
            .set((
                sectors::state.eq(state),
                sectors::worker_name.eq(worker),
                sectors::location.eq(location),
                sectors::updated_at.eq(at),
            ))
            .execute(conn),
        Change::Finalized => diesel::update(target)
            .set((sectors::state.eq("Finished"), sectors::updated_at.eq(at)))
            .execute(conn),
        Change::Aborted(reason) => diesel::update(target.filter(sectors::state.ne("Aborted")))
            .set((
                sectors::aborted_from.eq(sectors::state.nullable()),
                sectors::state.eq("Aborted"),
                sectors::abort_reason.eq(reason),
                sectors::updated_at.eq(at),
            ))
            .execute(conn),
    }
    .map_err(classify)?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_or_seed_is_set_once_whoever_asks_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::db::temp(&dir).conn().unwrap();
        let at = crate::db::now();
        let n = allocate(&mut c, 1000, 5, Some("w"), at).unwrap();
        for (first, second) in [
            (Change::Ticket("t1".into()), Change::Ticket("t2".into())),
            (Change::Seed("s1".into()), Change::Seed("s2".into())),
        ] {
            assert!(update(&mut c, 1000, n, first, at).unwrap());
            // A second call (a retry, another manager) changes nothing.
            assert!(!update(&mut c, 1000, n, second, at).unwrap());
        }
        let row = get(&mut c, 1000, n).unwrap().unwrap();
        assert_eq!(
            (row.ticket.as_deref(), row.seed.as_deref()),
            (Some("t1"), Some("s1"))
        );
    }
}
