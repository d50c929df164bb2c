//! `workers` and `worker_threads`: what pings tell us about each worker.

use chrono::NaiveDateTime;
use damocles_actors::wire::venus::WorkerInfo;
use diesel::prelude::*;
use serde::Serialize;

use damocles_actors::wire::worker_api::ThreadState;

use super::raw::{execute, rows_per_statement, upsert_rows, Val};
use super::schema::{worker_threads, workers};
use super::{classify, DbConnection, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
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
        let cols = [
            "name",
            "dest",
            "version",
            "threads",
            "empty_threads",
            "paused_threads",
            "running_threads",
            "waiting_threads",
            "error_threads",
            "first_seen_at",
            "last_ping_at",
        ];
        let count = |n: u64| Val::Int(i64::try_from(n).unwrap_or(i64::MAX));
        let rows = pings
            .iter()
            .map(|p| {
                let s = &p.summary;
                vec![
                    Val::Text(p.name.clone()),
                    Val::Text(p.dest.clone()),
                    Val::Text(p.version.clone()),
                    count(s.threads),
                    count(s.empty),
                    count(s.paused),
                    count(s.running),
                    count(s.waiting),
                    count(s.errors),
                    Val::Time(at),
                    Val::Time(at),
                ]
            })
            .collect();
        // Everything but the key and first_seen_at is refreshed.
        let update: Vec<&str> = cols[1..9].iter().chain(&cols[10..]).copied().collect();
        upsert_rows(c, "workers", &cols, &["name"], &update, rows)?;

        let tcols = [
            "worker_name",
            "thread_index",
            "location",
            "plan",
            "job_id",
            "job_state",
            "job_stage",
            "thread_state",
            "state_since",
            "last_error",
            "updated_at",
        ];
        let mut rows = Vec::new();
        for p in pings {
            for t in p.threads.iter().flatten() {
                rows.push(vec![
                    Val::Text(p.name.clone()),
                    Val::Int(i64::try_from(t.index).unwrap_or(i64::MAX)),
                    Val::Text(t.location.clone()),
                    Val::Text(t.plan.clone()),
                    Val::OptText(t.job_id.clone()),
                    Val::Text(t.job_state.clone()),
                    Val::OptText(t.job_stage.clone()),
                    Val::Text(t.thread_state.name().to_string()),
                    Val::Time(since(at, &t.thread_state)),
                    Val::OptText(t.last_error.clone()),
                    Val::Time(at),
                ]);
            }
        }
        upsert_rows(
            c,
            "worker_threads",
            &tcols,
            &["worker_name", "thread_index"],
            &tcols[2..],
            rows,
        )?;
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
