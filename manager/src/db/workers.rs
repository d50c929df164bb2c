//! `workers` and `worker_threads`: what pings tell us about each worker.

use chrono::NaiveDateTime;
use damocles_actors::wire::venus::WorkerInfo;
use diesel::prelude::*;
use serde::Serialize;

use super::raw::{execute, is_mysql, placeholders, upsert_clause, Val};
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

/// Writes a batch of pings in one transaction of three statements: workers, their threads,
/// and the removal of threads a worker no longer has.
pub fn upsert_pings(
    conn: &mut DbConnection,
    pings: &[WorkerInfo],
    at: NaiveDateTime,
) -> Result<(), DbError> {
    if pings.is_empty() {
        return Ok(());
    }
    let mysql = is_mysql(conn);
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
        let mut vals = Vec::new();
        for p in pings {
            let s = &p.summary;
            vals.extend([
                Val::Text(p.name.clone()),
                Val::Text(p.dest.clone()),
                Val::Text(p.version.clone()),
                Val::Int(s.threads as i64),
                Val::Int(s.empty as i64),
                Val::Int(s.paused as i64),
                Val::Int(s.running as i64),
                Val::Int(s.waiting as i64),
                Val::Int(s.errors as i64),
                Val::Time(at),
                Val::Time(at),
            ]);
        }
        let sql = format!(
            "INSERT INTO workers ({}) VALUES {}{}",
            cols.join(", "),
            placeholders(pings.len(), cols.len()),
            upsert_clause(
                mysql,
                &["name"],
                &cols[1..9]
                    .iter()
                    .chain(&cols[10..])
                    .copied()
                    .collect::<Vec<_>>()
            )
        );
        execute(c, &sql, vals)?;

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
        let mut rows = 0;
        let mut vals = Vec::new();
        for p in pings {
            for t in p.threads.iter().flatten() {
                rows += 1;
                let elapsed = match &t.thread_state {
                    damocles_actors::wire::worker_api::ThreadState::Idle => 0,
                    damocles_actors::wire::worker_api::ThreadState::Paused { elapsed }
                    | damocles_actors::wire::worker_api::ThreadState::Running { elapsed, .. }
                    | damocles_actors::wire::worker_api::ThreadState::Waiting { elapsed, .. } => {
                        *elapsed
                    }
                };
                vals.extend([
                    Val::Text(p.name.clone()),
                    Val::Int(t.index as i64),
                    Val::Text(t.location.clone()),
                    Val::Text(t.plan.clone()),
                    Val::OptText(t.job_id.clone()),
                    Val::Text(t.job_state.clone()),
                    Val::OptText(t.job_stage.clone()),
                    Val::Text(t.thread_state.name().to_string()),
                    Val::Time(at - chrono::Duration::seconds(elapsed as i64)),
                    Val::OptText(t.last_error.clone()),
                    Val::Time(at),
                ]);
            }
        }
        if rows > 0 {
            let sql = format!(
                "INSERT INTO worker_threads ({}) VALUES {}{}",
                tcols.join(", "),
                placeholders(rows, tcols.len()),
                upsert_clause(mysql, &["worker_name", "thread_index"], &tcols[2..])
            );
            execute(c, &sql, vals)?;
        }
        let with_threads: Vec<&WorkerInfo> = pings.iter().filter(|p| p.threads.is_some()).collect();
        if !with_threads.is_empty() {
            let conds =
                vec!["(worker_name = ? AND thread_index >= ?)"; with_threads.len()].join(" OR ");
            let mut vals = Vec::new();
            for p in with_threads {
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
