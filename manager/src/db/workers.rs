//! `workers` and `worker_threads`: what pings tell us about each worker.

use chrono::NaiveDateTime;
use damocles_actors::wire::venus::WorkerInfo;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use damocles_actors::wire::worker_api::ThreadState;

use super::raw::OnDup::{Keep, Key, Refresh};
use super::raw::{execute, rows_per_statement, upsert_rows, Cell, Val};
use super::schema::{worker_threads, workers};
use super::{classify, DbConnection, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = workers)]
pub struct WorkerRow {
    pub name: String,
    pub dest: String,
    pub version: String,
    pub threads: i32,
    pub empty_threads: i32,
    pub paused_threads: i32,
    pub running_threads: i32,
    pub waiting_threads: i32,
    pub error_threads: i32,
    pub first_seen_at: NaiveDateTime,
    pub last_ping_at: NaiveDateTime,
    pub draining: bool,
}

/// Writes a batch of pings in one transaction: workers, their threads, and the removal of
/// threads a worker no longer has, each in as few statements as the placeholder limits allow.
/// The pings were checked on arrival (`intake::check_ping`), so every value fits its column.
pub fn upsert_pings(
    conn: &mut DbConnection,
    pings: &[WorkerInfo],
    at: NaiveDateTime,
) -> Result<(), DbError> {
    if pings.is_empty() {
        return Ok(());
    }
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        let count = |n: u64| Val::Int(i64::try_from(n).unwrap_or(i64::MAX));
        let rows = pings
            .iter()
            .map(|p| {
                let s = &p.summary;
                vec![
                    Cell::new("name", Key, Val::Text(p.name.clone())),
                    Cell::new("dest", Refresh, Val::Text(p.dest.clone())),
                    Cell::new("version", Refresh, Val::Text(p.version.clone())),
                    Cell::new("threads", Refresh, count(s.threads)),
                    Cell::new("empty_threads", Refresh, count(s.empty)),
                    Cell::new("paused_threads", Refresh, count(s.paused)),
                    Cell::new("running_threads", Refresh, count(s.running)),
                    Cell::new("waiting_threads", Refresh, count(s.waiting)),
                    Cell::new("error_threads", Refresh, count(s.errors)),
                    Cell::new("first_seen_at", Keep, Val::Time(at)),
                    Cell::new("last_ping_at", Refresh, Val::Time(at)),
                ]
            })
            .collect();
        upsert_rows(c, "workers", rows)?;

        let mut rows = Vec::new();
        for p in pings {
            for t in p.threads.iter().flatten() {
                rows.push(vec![
                    Cell::new("worker_name", Key, Val::Text(p.name.clone())),
                    Cell::new(
                        "thread_index",
                        Key,
                        Val::Int(i64::try_from(t.index).unwrap_or(i64::MAX)),
                    ),
                    Cell::new("location", Refresh, Val::Text(t.location.clone())),
                    Cell::new("plan", Refresh, Val::Text(t.plan.clone())),
                    Cell::new("job_id", Refresh, Val::OptText(t.job_id.clone())),
                    Cell::new("job_state", Refresh, Val::Text(t.job_state.clone())),
                    Cell::new("job_stage", Refresh, Val::OptText(t.job_stage.clone())),
                    Cell::new(
                        "thread_state",
                        Refresh,
                        Val::Text(t.thread_state.name().to_string()),
                    ),
                    Cell::new(
                        "state_since",
                        Refresh,
                        Val::Time(since(at, &t.thread_state)),
                    ),
                    Cell::new("last_error", Refresh, Val::OptText(t.last_error.clone())),
                    Cell::new("updated_at", Refresh, Val::Time(at)),
                ]);
            }
        }
        upsert_rows(c, "worker_threads", rows)?;
        let with_threads: Vec<&WorkerInfo> = pings.iter().filter(|p| p.threads.is_some()).collect();
        for chunk in with_threads.chunks(rows_per_statement(2)) {
            let conds = vec!["(worker_name = ? AND thread_index >= ?)"; chunk.len()].join(" OR ");
            let mut vals = Vec::new();
            for p in chunk {
                vals.push(Val::Text(p.name.clone()));
                vals.push(Val::Int(p.threads.as_ref().map_or(0, Vec::len) as i64));
            }
            execute(
                c,
                &format!("DELETE FROM worker_threads WHERE {conds}"),
                vals,
            )?;
        }
        Ok(())
    })
    .map_err(classify)
}

const EPOCH: NaiveDateTime = chrono::DateTime::UNIX_EPOCH.naive_utc();

/// When a thread entered its state: `elapsed` seconds before `at`, never before 1970 (MySQL
/// binds an older time as NULL).
fn since(at: NaiveDateTime, state: &ThreadState) -> NaiveDateTime {
    let elapsed = match state {
        ThreadState::Idle => 0,
        ThreadState::Paused { elapsed }
        | ThreadState::Running { elapsed, .. }
        | ThreadState::Waiting { elapsed, .. } => *elapsed,
    };
    i64::try_from(elapsed)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .and_then(|d| at.checked_sub_signed(d))
        .unwrap_or(NaiveDateTime::MIN)
        .max(EPOCH)
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<WorkerRow>, DbError> {
    workers::table
        .select(WorkerRow::as_select())
        .order(workers::name.asc())
        .load(conn)
        .map_err(classify)
}

pub fn get(conn: &mut DbConnection, name: &str) -> Result<Option<WorkerRow>, DbError> {
    workers::table
        .select(WorkerRow::as_select())
        .filter(workers::name.eq(name))
        .first(conn)
        .optional()
        .map_err(classify)
}

/// Forgets a worker and its threads; false when it was unknown.
pub fn remove(conn: &mut DbConnection, name: &str) -> Result<bool, DbError> {
    conn.transaction::<_, diesel::result::Error, _>(|c| {
        diesel::delete(worker_threads::table.filter(worker_threads::worker_name.eq(name)))
            .execute(c)?;
        let n = diesel::delete(workers::table.filter(workers::name.eq(name))).execute(c)?;
        Ok(n > 0)
    })
    .map_err(classify)
}

/// Marks a worker draining (it gets no new sector or job) or active; false when it is unknown.
pub fn set_draining(conn: &mut DbConnection, name: &str, draining: bool) -> Result<bool, DbError> {
    let n = diesel::update(workers::table.filter(workers::name.eq(name)))
        .set(workers::draining.eq(draining))
        .execute(conn)
        .map_err(classify)?;
    Ok(n > 0)
}

pub fn is_draining(conn: &mut DbConnection, name: &str) -> Result<bool, DbError> {
    Ok(get(conn, name)?.is_some_and(|w| w.draining))
}
