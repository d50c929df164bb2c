//! Claiming WindowPoSt jobs: each claimer takes different jobs, on MySQL with `SKIP LOCKED`,
//! elsewhere with one conditional update per candidate.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::JobState::{ReadyToRun, Running};
use super::{new_attempt, st, ClaimFilter, IdRow, JobRow};
use crate::db::raw::{execute, in_list, is_mysql, load, Val};
use crate::db::schema::wdpost_jobs;
use crate::db::{classify, DbConnection, DbError};

/// `WHERE state = ReadyToRun` and the window still open at `at`, plus the filter, and the
/// values it binds.
fn ready_clause(f: &ClaimFilter, at: NaiveDateTime) -> (String, Vec<Val>) {
    let mut sql = "state = ? AND (deadline_close_at IS NULL OR deadline_close_at > ?)".to_string();
    let mut vals = vec![st(ReadyToRun), Val::Time(at)];
    if let Some(m) = f.miners.as_ref().filter(|m| !m.is_empty()) {
        sql += &format!(" AND miner_id IN {}", in_list(m.len()));
        vals.extend(m.iter().map(|v| Val::Int(*v as i64)));
    }
    if let Some(p) = f.proof_types.as_ref().filter(|p| !p.is_empty()) {
        sql += &format!(" AND proof_type IN {}", in_list(p.len()));
        vals.extend(p.iter().map(|v| Val::Text(v.clone())));
    }
    (sql, vals)
}

/// The columns a claim sets (their values: `claim_vals`); the job's `id` is bound last. Each claim gets an attempt id of its
/// own (`new_attempt`).
const CLAIM_SET: &str = "state = ?, try_num = try_num + 1, worker_name = ?, \
     started_at = ?, heartbeat_at = ?, finished_at = NULL, output = NULL, updated_at = ?, \
     attempt = ?";

fn claim_vals(worker: &str, at: NaiveDateTime) -> Vec<Val> {
    vec![
        st(Running),
        Val::Text(worker.into()),
        Val::Time(at),
        Val::Time(at),
        Val::Time(at),
        Val::Text(new_attempt()),
    ]
}

/// Claims up to `n` ready jobs for `worker`, oldest first. MySQL locks the chosen rows and
/// skips rows other transactions hold (`FOR UPDATE SKIP LOCKED`), so concurrent claimers take
/// different jobs. SQLite (one writer at a time) and any engine without `SKIP LOCKED` use the
/// portable path: a conditional update per candidate, which only one claimer can win.
pub fn claim(
    conn: &mut DbConnection,
    filter: &ClaimFilter,
    n: usize,
    worker: &str,
    at: NaiveDateTime,
) -> Result<Vec<JobRow>, DbError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let ids = if is_mysql(conn) {
        claim_skip_locked(conn, filter, n, worker, at)
    } else {
        claim_conditional(conn, filter, n, worker, at)
    }
    .map_err(classify)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    wdpost_jobs::table
        .select(JobRow::as_select())
        .filter(wdpost_jobs::id.eq_any(&ids))
        .order(wdpost_jobs::created_at.asc())
        .load(conn)
        .map_err(classify)
}

fn claim_skip_locked(
    conn: &mut DbConnection,
    filter: &ClaimFilter,
    n: usize,
    worker: &str,
    at: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    conn.transaction(|c| {
        let (cond, mut vals) = ready_clause(filter, at);
        vals.push(Val::Int(n as i64));
        let rows: Vec<IdRow> = load(
            c,
            &format!(
                "SELECT id FROM wdpost_jobs WHERE {cond} ORDER BY created_at LIMIT ? \
                 FOR UPDATE SKIP LOCKED"
            ),
            vals,
        )?;
        let ids: Vec<String> = rows.into_iter().map(|r| r.id).collect();
        if !ids.is_empty() {
            let mut vals = claim_vals(worker, at);
            vals.extend(ids.iter().map(|i| Val::Text(i.clone())));
            execute(
                c,
                &format!(
                    "UPDATE wdpost_jobs SET {CLAIM_SET} WHERE id IN {}",
                    in_list(ids.len())
                ),
                vals,
            )?;
        }
        Ok(ids)
    })
}

fn claim_conditional(
    conn: &mut DbConnection,
    filter: &ClaimFilter,
    n: usize,
    worker: &str,
    at: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    let (cond, mut vals) = ready_clause(filter, at);
    // A few spare candidates, for the ones another claimer wins first.
    vals.push(Val::Int((n + 8) as i64));
    let candidates: Vec<IdRow> = load(
        conn,
        &format!("SELECT id FROM wdpost_jobs WHERE {cond} ORDER BY created_at LIMIT ?"),
        vals,
    )?;
    let mut won = Vec::new();
    for c in candidates {
        let mut vals = claim_vals(worker, at);
        vals.extend([Val::Text(c.id.clone()), st(ReadyToRun)]);
        let sql = format!("UPDATE wdpost_jobs SET {CLAIM_SET} WHERE id = ? AND state = ?");
        if execute(conn, &sql, vals)? == 1 {
            won.push(c.id);
            if won.len() == n {
                break;
            }
        }
    }
    Ok(won)
}
