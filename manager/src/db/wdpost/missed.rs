//! Missed deadlines: a job whose challenge window closed without a verified proof. The deadline
//! clock of every manager runs `close_windows`; a job is recorded once (its `wdpost_missed` row
//! is the guard) and its sectors are marked faulty in the same transaction. A later verified
//! proof of a sector clears its fault (`db::sectors::recover`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::JobState::{Failed, ReadyToRun, Running, Succeed};
use super::{get, st, IdRow, JobRow};
use crate::db::raw::{execute, is_mysql, load, Val};
use crate::db::schema::{wdpost_jobs, wdpost_missed};
use crate::db::{classify, sectors, write_transaction, DbConnection, DbError};

/// One missed deadline (a job's window), as `util sealer proving missed` shows it.
#[derive(Debug, Clone, Queryable, Selectable, Serialize, Deserialize, utoipa::ToSchema)]
#[diesel(table_name = wdpost_missed)]
pub struct MissedRow {
    pub job_id: String,
    pub miner_id: i64,
    pub deadline_idx: i32,
    pub partitions: String,
    pub sectors: i32,
    pub deadline_open_at: NaiveDateTime,
    pub deadline_close_at: NaiveDateTime,
    pub reason: String,
    pub recorded_at: NaiveDateTime,
}

/// What a job that missed its window failed of.
fn miss_reason(job: &JobRow) -> String {
    match job.state {
        ReadyToRun => "deadline closed: no prover claimed the job in its window".into(),
        Running => format!(
            "deadline closed: worker {} had not handed in a proof",
            job.worker_name.as_deref().unwrap_or("-")
        ),
        _ => format!(
            "deadline closed after the job failed: {}",
            job.error_reason.as_deref().unwrap_or("-")
        ),
    }
}

/// The sector numbers a job proves (from its input).
pub fn job_sectors(job: &JobRow) -> Vec<u64> {
    serde_json::from_str::<damocles_actors::wire::venus_post::PoStInput>(&job.input)
        .map(|i| i.sectors.iter().map(|s| s.sector_id).collect())
        .unwrap_or_default()
}

/// Records every job whose window closed by `at` without a verified proof: a job still waiting
/// or running fails with `deadline closed` (a failed one keeps its error), the miss is recorded
/// and the job's sectors become faulty. Returns the misses this call recorded.
pub fn close_windows(
    conn: &mut DbConnection,
    at: NaiveDateTime,
) -> Result<Vec<MissedRow>, DbError> {
    let due: Vec<IdRow> = load(
        conn,
        "SELECT id FROM wdpost_jobs WHERE deadline_close_at <= ? AND state <> ? AND NOT EXISTS \
         (SELECT 1 FROM wdpost_missed m WHERE m.job_id = wdpost_jobs.id) \
         ORDER BY deadline_close_at LIMIT 200",
        vec![Val::Time(at), st(Succeed)],
    )
    .map_err(classify)?;
    let mut missed = Vec::new();
    for IdRow { id } in due {
        if let Some(m) = write_transaction(conn, |c| close_one(c, &id, at))? {
            missed.push(m);
        }
    }
    Ok(missed)
}

fn close_one(
    c: &mut DbConnection,
    id: &str,
    at: NaiveDateTime,
) -> Result<Option<MissedRow>, DbError> {
    // Fail it first: a finish that lands meanwhile either came before (the job is then
    // Succeed or Failed when read below) or is refused after.
    let Some(before) = get(c, id)? else {
        return Ok(None);
    };
    let reason = miss_reason(&before);
    diesel::update(
        wdpost_jobs::table
            .filter(wdpost_jobs::id.eq(id))
            .filter(wdpost_jobs::state.eq_any([ReadyToRun.name(), Running.name()])),
    )
    .set((
        wdpost_jobs::state.eq(Failed.name()),
        wdpost_jobs::error_reason.eq(&reason),
        wdpost_jobs::finished_at.eq(at),
        wdpost_jobs::updated_at.eq(at),
    ))
    .execute(c)
    .map_err(classify)?;
    let Some(job) = get(c, id)?.filter(|j| j.state == Failed) else {
        return Ok(None);
    };
    let row = MissedRow {
        job_id: job.id.clone(),
        miner_id: job.miner_id,
        deadline_idx: job.deadline_idx,
        partitions: job.partitions.clone(),
        sectors: job.sectors,
        deadline_open_at: job.deadline_open_at,
        deadline_close_at: job.deadline_close_at.unwrap_or(at),
        reason: job.error_reason.clone().unwrap_or(reason),
        recorded_at: at,
    };
    let ignore = if is_mysql(c) {
        "INSERT IGNORE"
    } else {
        "INSERT OR IGNORE"
    };
    let n = execute(
        c,
        &format!(
            "{ignore} INTO wdpost_missed (job_id, miner_id, deadline_idx, partitions, sectors, \
             deadline_open_at, deadline_close_at, reason, recorded_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        vec![
            Val::Text(row.job_id.clone()),
            Val::Int(row.miner_id),
            Val::Int(row.deadline_idx.into()),
            Val::Text(row.partitions.clone()),
            Val::Int(row.sectors.into()),
            Val::Time(row.deadline_open_at),
            Val::Time(row.deadline_close_at),
            Val::Text(row.reason.clone()),
            Val::Time(at),
        ],
    )
    .map_err(classify)?;
    if n == 0 {
        return Ok(None);
    }
    let fault = format!(
        "missed WindowPoSt of deadline {} (partitions {}, window closed {}): {}",
        job.deadline_idx,
        job.partitions,
        row.deadline_close_at.format("%Y-%m-%d %H:%M:%S"),
        row.reason
    );
    sectors::mark_faulty(c, job.miner_id as u64, &job_sectors(&job), &fault, at)?;
    Ok(Some(row))
}

/// Newest first, at most `limit`, of one miner or all.
pub fn list(
    conn: &mut DbConnection,
    miner: Option<u64>,
    limit: i64,
) -> Result<Vec<MissedRow>, DbError> {
    let mut q = wdpost_missed::table
        .select(MissedRow::as_select())
        .order((
            wdpost_missed::recorded_at.desc(),
            wdpost_missed::job_id.asc(),
        ))
        .limit(limit)
        .into_boxed();
    if let Some(m) = miner {
        q = q.filter(wdpost_missed::miner_id.eq(m as i64));
    }
    q.load(conn).map_err(classify)
}

/// Missed deadlines per miner, for `/metrics`.
pub fn count_by_miner(conn: &mut DbConnection) -> Result<Vec<(i64, i64)>, DbError> {
    use diesel::dsl::count_star;
    wdpost_missed::table
        .group_by(wdpost_missed::miner_id)
        .select((wdpost_missed::miner_id, count_star()))
        .load(conn)
        .map_err(classify)
}

/// The jobs of windows closed before `cutoff` (`[task] job_lifetime`) leave the queue for the
/// archive, whatever their state; a running one is left to the deadline clock first.
pub fn expire(conn: &mut DbConnection, cutoff: NaiveDateTime) -> Result<usize, DbError> {
    super::move_to_archive(conn, "deadline_close_at < ? AND state <> ?", &|| {
        vec![Val::Time(cutoff), st(Running)]
    })
}

#[cfg(test)]
mod tests;
