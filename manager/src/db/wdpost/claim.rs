//! Claiming WindowPoSt jobs: each claimer takes different jobs, on MySQL with `SKIP LOCKED`
//! by default, elsewhere (and with `[db] claim = "conditional"`) with one conditional update
//! per candidate.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Deserialize;

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

/// How concurrent claimers take different jobs (`[db] claim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimMode {
    /// MySQL/MariaDB: lock the chosen rows, skipping rows other transactions hold
    /// (`SELECT … FOR UPDATE SKIP LOCKED`), then update them in the same transaction.
    SkipLocked,
    /// Any engine (SQLite, TiDB, …): one conditional update per candidate
    /// (`… WHERE id = ? AND state = 'ReadyToRun'`), which only one claimer can win.
    Conditional,
}

impl ClaimMode {
    /// The mode a backend gets when `[db] claim` is not set.
    pub fn default_for(backend: &str) -> ClaimMode {
        if backend == "mysql" {
            ClaimMode::SkipLocked
        } else {
            ClaimMode::Conditional
        }
    }
}

/// How many times a claim is tried again after the database aborted it as a deadlock or, on
/// Galera, a certification conflict (error 1213): the worker never sees those.
const CONFLICT_RETRIES: usize = 8;

/// One claimer's request: up to `n` jobs for `worker`.
#[derive(Debug, Clone)]
pub struct Ask {
    pub worker: String,
    pub n: usize,
}

/// Claims up to `n` ready jobs for `worker`, oldest first, by `mode`.
#[cfg(test)]
pub fn claim(
    conn: &mut DbConnection,
    mode: ClaimMode,
    filter: &ClaimFilter,
    n: usize,
    worker: &str,
    at: NaiveDateTime,
) -> Result<Vec<JobRow>, DbError> {
    let ask = Ask {
        worker: worker.to_string(),
        n,
    };
    Ok(claim_for(conn, mode, filter, &[ask], at)?
        .pop()
        .unwrap_or_default())
}

/// Claims jobs for several claimers with the same filter at once: the i-th list holds what
/// `asks[i]` got, each claimer's jobs under an attempt id of its own. With `SKIP LOCKED` that is
/// one transaction for them all, which is how a busy manager claims faster than one
/// transaction per claimer.
pub fn claim_for(
    conn: &mut DbConnection,
    mode: ClaimMode,
    filter: &ClaimFilter,
    asks: &[Ask],
    at: NaiveDateTime,
) -> Result<Vec<Vec<JobRow>>, DbError> {
    if asks.iter().all(|a| a.n == 0) {
        return Ok(vec![Vec::new(); asks.len()]);
    }
    if !(mode == ClaimMode::SkipLocked && is_mysql(conn)) {
        return claim_conditional(conn, filter, asks, at).map_err(classify);
    }
    // A conflict rolls the whole transaction back, so trying again is safe. Another manager
    // (on another Galera node) took the same head of the queue: the next try starts a random
    // way into it, so that the two part ways.
    let want: usize = asks.iter().map(|a| a.n).sum();
    let (mut skip, mut tries) = (0, 0);
    loop {
        match claim_skip_locked(conn, filter, asks, at, skip) {
            Err(e) if crate::db::is_conflict(&e) && tries < CONFLICT_RETRIES => {
                tries += 1;
                let mut rng = rand::thread_rng();
                skip = rand::Rng::gen_range(&mut rng, 0..=want * 4 * tries);
                let pause = rand::Rng::gen_range(&mut rng, 1..=4 * tries as u64);
                tracing::info!(tries, skip, "claim conflicted with another; trying again");
                std::thread::sleep(std::time::Duration::from_millis(pause));
            }
            // Still conflicting: claim row by row, where a conflict loses one row, not the
            // batch, so the claimers get what is left instead of an error.
            Err(e) if crate::db::is_conflict(&e) => {
                tracing::info!(
                    tries,
                    "claim kept conflicting; claiming by conditional updates"
                );
                return claim_conditional(conn, filter, asks, at).map_err(classify);
            }
            r => return r.map_err(classify),
        }
    }
}

/// The columns every claim sets to the same values; `worker_name` and `attempt` differ by
/// claimer and come after them.
const CLAIM_SET: &str = "state = ?, try_num = try_num + 1, started_at = ?, heartbeat_at = ?, \
     finished_at = NULL, output = NULL, updated_at = ?";

fn claim_vals(at: NaiveDateTime) -> Vec<Val> {
    vec![st(Running), Val::Time(at), Val::Time(at), Val::Time(at)]
}

/// A job's row as its claim leaves it.
fn claimed(mut r: JobRow, worker: &str, at: NaiveDateTime, attempt: &str) -> JobRow {
    r.state = Running;
    r.try_num += 1;
    r.worker_name = Some(worker.to_string());
    r.started_at = Some(at);
    r.heartbeat_at = Some(at);
    r.finished_at = None;
    r.output = None;
    r.updated_at = at;
    r.attempt = Some(attempt.to_string());
    r
}

/// Three statements in one transaction whatever the number of claimers: a locking select of
/// whole rows (so the claimed jobs need no second read), dealt out oldest first in the order of
/// `asks`, and one update that names each job's claimer and attempt. The select starts `skip`
/// rows into the queue (0 but after a conflict), or at its head when nothing is that far.
fn claim_skip_locked(
    conn: &mut DbConnection,
    filter: &ClaimFilter,
    asks: &[Ask],
    at: NaiveDateTime,
    skip: usize,
) -> QueryResult<Vec<Vec<JobRow>>> {
    conn.transaction(|c| {
        let (cond, vals) = ready_clause(filter, at);
        let want = asks.iter().map(|a| a.n).sum::<usize>() as i64;
        let select = format!(
            "SELECT * FROM wdpost_jobs WHERE {cond} ORDER BY created_at LIMIT ? OFFSET ? \
             FOR UPDATE SKIP LOCKED"
        );
        let from = |skip: usize| {
            let mut v = vals.clone();
            v.extend([Val::Int(want), Val::Int(skip as i64)]);
            v
        };
        let mut rows: Vec<JobRow> = load(c, &select, from(skip))?;
        if rows.is_empty() && skip > 0 {
            rows = load(c, &select, from(0))?;
        }
        if rows.is_empty() {
            return Ok(vec![Vec::new(); asks.len()]);
        }
        let mut rows = rows.into_iter();
        let mut dealt: Vec<Vec<JobRow>> = Vec::with_capacity(asks.len());
        let (mut workers, mut attempts, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        for a in asks {
            let attempt = new_attempt();
            let mine: Vec<JobRow> = rows
                .by_ref()
                .take(a.n)
                .map(|r| claimed(r, &a.worker, at, &attempt))
                .collect();
            for r in &mine {
                workers.extend([Val::Text(r.id.clone()), Val::Text(a.worker.clone())]);
                attempts.extend([Val::Text(r.id.clone()), Val::Text(attempt.clone())]);
                ids.push(Val::Text(r.id.clone()));
            }
            dealt.push(mine);
        }
        let case = |n: usize| format!("CASE id {} END", vec!["WHEN ? THEN ?"; n].join(" "));
        let n = ids.len();
        let mut vals = claim_vals(at);
        vals.extend(workers.into_iter().chain(attempts).chain(ids));
        execute(
            c,
            &format!(
                "UPDATE wdpost_jobs SET {CLAIM_SET}, worker_name = {}, attempt = {} \
                 WHERE id IN {}",
                case(n),
                case(n),
                in_list(n)
            ),
            vals,
        )?;
        Ok(dealt)
    })
}

/// Candidates beyond `n` each conditional claim reads, for the ones other claimers win first.
const SPARE: usize = 16;

/// Reads of the queue one conditional claim makes at most (each after losing every candidate).
const MAX_READS: usize = 16;

/// A conditional update per candidate, dealt to the claimers in the order of `asks`. Managers
/// start at different places among the oldest `n + SPARE` jobs (by a hash of the first
/// claimer's name), so that they seldom race for the same row; a batch that lost every
/// candidate while more jobs wait reads again. One read of the won rows ends it.
fn claim_conditional(
    conn: &mut DbConnection,
    filter: &ClaimFilter,
    asks: &[Ask],
    at: NaiveDateTime,
) -> QueryResult<Vec<Vec<JobRow>>> {
    let (cond, mut vals) = ready_clause(filter, at);
    let limit = asks.iter().map(|a| a.n).sum::<usize>() + SPARE;
    vals.push(Val::Int(limit as i64));
    let select = format!("SELECT id FROM wdpost_jobs WHERE {cond} ORDER BY created_at LIMIT ?");
    let update = format!(
        "UPDATE wdpost_jobs SET {CLAIM_SET}, worker_name = ?, attempt = ? WHERE id = ? AND state = ?"
    );
    let attempts: Vec<String> = asks.iter().map(|_| new_attempt()).collect();
    let mut won: Vec<Vec<String>> = vec![Vec::new(); asks.len()];
    let wanting = |won: &[Vec<String>]| (0..asks.len()).find(|&k| won[k].len() < asks[k].n);
    let first = asks.first().map_or("", |a| a.worker.as_str());
    for _ in 0..MAX_READS {
        if wanting(&won).is_none() {
            break;
        }
        let candidates: Vec<IdRow> = load(conn, &select, vals.clone())?;
        let start = start_of(first, candidates.len());
        let mut lost_all = true;
        for c in candidates[start..].iter().chain(&candidates[..start]) {
            let Some(k) = wanting(&won) else { break };
            let mut v = claim_vals(at);
            v.extend([
                Val::Text(asks[k].worker.clone()),
                Val::Text(attempts[k].clone()),
                Val::Text(c.id.clone()),
                st(ReadyToRun),
            ]);
            // An update is a statement of its own: a conflict undid it alone, and the row is
            // someone else's, as when another claimer updated it first.
            let updated = match execute(conn, &update, v) {
                Err(e) if crate::db::is_conflict(&e) => 0,
                r => r?,
            };
            if updated == 1 {
                won[k].push(c.id.clone());
                lost_all = false;
            }
        }
        // Every candidate went to others and there may be more: read the queue again.
        if !(lost_all && candidates.len() == limit) {
            break;
        }
    }
    let ids: Vec<&String> = won.iter().flatten().collect();
    if ids.is_empty() {
        return Ok(vec![Vec::new(); asks.len()]);
    }
    let mut rows: std::collections::HashMap<String, JobRow> = wdpost_jobs::table
        .select(JobRow::as_select())
        .filter(wdpost_jobs::id.eq_any(ids))
        .load(conn)?
        .into_iter()
        .map(|r: JobRow| (r.id.clone(), r))
        .collect();
    Ok(won
        .iter()
        .map(|ids| {
            let mut mine: Vec<JobRow> = ids.iter().filter_map(|i| rows.remove(i)).collect();
            mine.sort_by_key(|r| r.created_at);
            mine
        })
        .collect())
}

/// Where `worker` starts among `len` candidates.
fn start_of(worker: &str, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let h = worker.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % len as u64) as usize
}
