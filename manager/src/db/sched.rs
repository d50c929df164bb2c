//! `pledge_budget` (sectors pledged to each worker) and `sched_log` (every scheduling decision).

use chrono::NaiveDateTime;
use damocles_actors::thread::plan::PlanKind;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::raw::{execute, is_mysql, placeholders, rows_per_statement, Val};
use super::schema::{pledge_budget, sched_log, worker_threads, workers};
use super::{classify, DbConnection, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Serialize, Deserialize, utoipa::ToSchema)]
#[diesel(table_name = sched_log)]
pub struct DecisionRow {
    pub id: i64,
    pub at: NaiveDateTime,
    pub worker_name: String,
    pub thread_index: Option<i32>,
    pub decision: String,
    pub work: String,
    pub reason: String,
}

/// One scheduling decision, as `DecisionLog` queues it for `sched_log`.
#[derive(Debug, Clone)]
pub struct Decision {
    pub at: NaiveDateTime,
    pub worker: String,
    pub thread: Option<u32>,
    pub decision: &'static str,
    pub work: String,
    pub reason: String,
}

/// Writes `decisions` in order, as many rows per statement as the placeholder limit allows.
pub fn record(conn: &mut DbConnection, decisions: &[Decision]) -> Result<(), DbError> {
    const COLS: usize = 6;
    for chunk in decisions.chunks(rows_per_statement(COLS)) {
        let mut vals = Vec::with_capacity(chunk.len() * COLS);
        for d in chunk {
            vals.extend([
                Val::Time(d.at),
                Val::Text(d.worker.clone()),
                Val::OptInt(d.thread.map(i64::from)),
                Val::Text(d.decision.to_string()),
                Val::Text(d.work.clone()),
                Val::Text(d.reason.clone()),
            ]);
        }
        execute(
            conn,
            &format!(
                "INSERT INTO sched_log (at, worker_name, thread_index, decision, work, reason) VALUES {}",
                placeholders(chunk.len(), COLS)
            ),
            vals,
        )
        .map_err(classify)?;
    }
    Ok(())
}

/// Decisions since `since`, oldest first, optionally for one worker.
pub fn list(
    conn: &mut DbConnection,
    worker: Option<&str>,
    since: NaiveDateTime,
    limit: i64,
) -> Result<Vec<DecisionRow>, DbError> {
    let mut q = sched_log::table
        .select(DecisionRow::as_select())
        .filter(sched_log::at.ge(since))
        .order(sched_log::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(w) = worker {
        q = q.filter(sched_log::worker_name.eq(w.to_string()));
    }
    q.load(conn).map_err(classify)
}

/// Takes one pledged sector of `worker`; false when it has none left.
pub fn take_pledge(
    conn: &mut DbConnection,
    worker: &str,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = diesel::update(
        pledge_budget::table
            .filter(pledge_budget::worker_name.eq(worker))
            .filter(pledge_budget::remaining.gt(0)),
    )
    .set((
        pledge_budget::remaining.eq(pledge_budget::remaining - 1),
        pledge_budget::updated_at.eq(at),
    ))
    .execute(conn)
    .map_err(classify)?;
    Ok(n > 0)
}

/// Adds `n` pledged sectors to each worker of `grants` (creating its row).
pub fn add_pledges(
    conn: &mut DbConnection,
    grants: &[(String, i32)],
    at: NaiveDateTime,
) -> Result<(), DbError> {
    let mysql = is_mysql(conn);
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        for (worker, n) in grants.iter().filter(|(_, n)| *n > 0) {
            let upsert = if mysql {
                "INSERT INTO pledge_budget (worker_name, remaining, updated_at) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE remaining = remaining + VALUES(remaining), updated_at = VALUES(updated_at)"
            } else {
                "INSERT INTO pledge_budget (worker_name, remaining, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (worker_name) DO UPDATE SET remaining = remaining + excluded.remaining, updated_at = excluded.updated_at"
            };
            execute(
                c,
                upsert,
                vec![
                    Val::Text(worker.clone()),
                    Val::Int((*n).into()),
                    Val::Time(at),
                ],
            )?;
        }
        Ok(())
    })
    .map_err(classify)
}

/// Each worker's pledged sectors not taken yet.
pub fn budgets(conn: &mut DbConnection) -> Result<Vec<(String, i32)>, DbError> {
    pledge_budget::table
        .select((pledge_budget::worker_name, pledge_budget::remaining))
        .order(pledge_budget::worker_name.asc())
        .load(conn)
        .map_err(classify)
}

/// Workers that may get new sectors: pinged since `alive_since` and not draining, by name.
pub fn active_workers(
    conn: &mut DbConnection,
    alive_since: NaiveDateTime,
) -> Result<Vec<String>, DbError> {
    workers::table
        .select(workers::name)
        .filter(workers::last_ping_at.ge(alive_since))
        .filter(workers::draining.eq(false))
        .order(workers::name.asc())
        .load(conn)
        .map_err(classify)
}

/// Sealer threads of `worker` that hold no sector and are not paused.
pub fn idle_sealers(conn: &mut DbConnection, worker: &str) -> Result<i64, DbError> {
    worker_threads::table
        .filter(worker_threads::worker_name.eq(worker))
        .filter(worker_threads::plan.eq(PlanKind::Sealer.name()))
        .filter(worker_threads::job_id.is_null())
        .filter(worker_threads::thread_state.ne("Paused"))
        .count()
        .get_result(conn)
        .map_err(classify)
}
