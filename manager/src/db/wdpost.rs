//! `wdpost_jobs` and `wdpost_jobs_archived`: the WindowPoSt job queue. Every change is one
//! conditional statement (or one transaction), so several managers can share the table: a job is
//! claimed once, and a worker that no longer owns a job cannot touch it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};

use super::raw::{execute, in_list, is_mysql, load, Val};
use super::schema::wdpost_jobs;
use super::{classify, DbConnection, DbError};

mod claim;
pub mod missed;
mod state;
#[cfg(test)]
pub use claim::claim;
pub use claim::{claim_for, Ask, ClaimMode};
pub use missed::{close_windows, count_by_miner, expire, job_sectors, MissedRow};
pub use state::JobState;
use JobState::{Failed, ReadyToRun, Running, Succeed};

/// A state as a statement binds it.
fn st(s: JobState) -> Val {
    Val::Text(s.name().into())
}

#[derive(
    Debug, Clone, Queryable, QueryableByName, Selectable, Serialize, Deserialize, utoipa::ToSchema,
)]
#[diesel(table_name = wdpost_jobs)]
pub struct JobRow {
    pub id: String,
    pub miner_id: i64,
    pub deadline_idx: i32,
    pub partitions: String,
    pub proof_type: String,
    pub sectors: i32,
    #[diesel(deserialize_as = state::StateColumn)]
    pub state: JobState,
    pub try_num: i32,
    pub worker_name: Option<String>,
    pub error_reason: Option<String>,
    pub deadline_open_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub heartbeat_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
    /// The job's JSON; the REST view shows it parsed, and only on request.
    #[serde(skip)]
    pub input: String,
    #[serde(skip)]
    pub output: Option<String>,
    /// The claim in force (`None` until claimed, and after a reset).
    #[serde(skip)]
    pub attempt: Option<String>,
    /// When the job's challenge window closes: no claim and no proof counts after it (`None`
    /// for a job made before windows were recorded: it never closes).
    pub deadline_close_at: Option<NaiveDateTime>,
    /// Which group of the deadline's partitions the job covers (`[task] partitions_per_job`).
    pub part_group: i32,
}

impl JobRow {
    /// Whether the job's window has closed at `at`.
    pub fn closed(&self, at: NaiveDateTime) -> bool {
        self.deadline_close_at.is_some_and(|c| c <= at)
    }

    /// The id the claiming worker is given and echoes: `<id>@<attempt>`.
    pub fn wire_id(&self) -> String {
        match &self.attempt {
            Some(a) => format!("{}@{a}", self.id),
            None => self.id.clone(),
        }
    }
}

/// A job id as a worker sends it: the job's id and the attempt it names (none from a caller
/// that did not get the id from a claim).
pub fn split_wire_id(wire: &str) -> (&str, Option<&str>) {
    match wire.split_once('@') {
        Some((id, attempt)) => (id, Some(attempt)),
        None => (wire, None),
    }
}

/// A new attempt id: 64 random bits, in hex.
pub fn new_attempt() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A job as the deadline clock makes it.
pub struct NewJob {
    pub id: String,
    pub miner_id: u64,
    pub deadline_idx: i32,
    pub partitions: String,
    pub proof_type: String,
    pub sectors: i32,
    pub deadline_open_at: NaiveDateTime,
    pub deadline_close_at: NaiveDateTime,
    pub part_group: i32,
    pub input: String,
}

/// Which jobs a worker takes; `None` or empty means any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimFilter {
    pub miners: Option<Vec<u64>>,
    pub proof_types: Option<Vec<String>>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Records a job unless the same job (same id, or the same opening of the deadline) exists;
/// true when this call created it.
pub fn create(conn: &mut DbConnection, job: &NewJob, at: NaiveDateTime) -> Result<bool, DbError> {
    let ignore = if is_mysql(conn) {
        "INSERT IGNORE"
    } else {
        "INSERT OR IGNORE"
    };
    let sql = format!(
        "{ignore} INTO wdpost_jobs (id, miner_id, deadline_idx, partitions, proof_type, sectors, \
         state, try_num, deadline_open_at, created_at, updated_at, input, deadline_close_at, \
         part_group) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)"
    );
    let n = execute(
        conn,
        &sql,
        vec![
            Val::Text(job.id.clone()),
            Val::Int(job.miner_id as i64),
            Val::Int(job.deadline_idx.into()),
            Val::Text(job.partitions.clone()),
            Val::Text(job.proof_type.clone()),
            Val::Int(job.sectors.into()),
            st(ReadyToRun),
            Val::Time(job.deadline_open_at),
            Val::Time(at),
            Val::Time(at),
            Val::Text(job.input.clone()),
            Val::Time(job.deadline_close_at),
            Val::Int(job.part_group.into()),
        ],
    )
    .map_err(classify)?;
    Ok(n > 0)
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<Option<JobRow>, DbError> {
    wdpost_jobs::table
        .select(JobRow::as_select())
        .filter(wdpost_jobs::id.eq(id))
        .first(conn)
        .optional()
        .map_err(classify)
}

/// Why `worker` may not touch job `wire` (`<id>@<attempt>`): it does not exist, is not running,
/// is another's, or was claimed again since that attempt.
pub fn not_owned(
    conn: &mut DbConnection,
    wire: &str,
    worker: Option<&str>,
) -> Result<String, DbError> {
    let (id, attempt) = split_wire_id(wire);
    Ok(match get(conn, id)? {
        None => format!("wdpost job {id} does not exist (it was removed)"),
        Some(j) if j.state != Running => format!(
            "wdpost job {id} is {}, not running: this worker no longer owns it",
            j.state
        ),
        Some(j) if j.worker_name.as_deref() != worker => format!(
            "wdpost job {id} is held by worker {}, not {}",
            j.worker_name.as_deref().unwrap_or("-"),
            worker.unwrap_or("-")
        ),
        Some(j) => format!(
            "wdpost job {id} runs as attempt {} (try {}), not {}: it was claimed again since",
            j.attempt.as_deref().unwrap_or("-"),
            j.try_num,
            attempt.unwrap_or("(none given)")
        ),
    })
}

/// Marks `worker`'s running jobs alive; each id names its attempt (`<id>@<attempt>`). Returns
/// the refused ids with the reason of each; the refused jobs are not touched.
pub fn heartbeat(
    conn: &mut DbConnection,
    ids: &[String],
    worker: &str,
    at: NaiveDateTime,
) -> Result<Vec<String>, DbError> {
    let mut refused = Vec::new();
    for wire in ids {
        let (id, attempt) = split_wire_id(wire);
        let n = diesel::update(
            wdpost_jobs::table
                .filter(wdpost_jobs::id.eq(id))
                .filter(wdpost_jobs::state.eq(Running.name()))
                .filter(wdpost_jobs::worker_name.eq(worker))
                .filter(wdpost_jobs::attempt.eq(attempt.unwrap_or(""))),
        )
        .set((
            wdpost_jobs::heartbeat_at.eq(at),
            wdpost_jobs::updated_at.eq(at),
        ))
        .execute(conn)
        .map_err(classify)?;
        if n == 0 {
            refused.push(not_owned(conn, wire, Some(worker))?);
        }
    }
    Ok(refused)
}

/// How a job attempt ended.
pub struct Finish {
    pub succeeded: bool,
    pub error: Option<String>,
    pub output: Option<String>,
}

/// Ends the attempt `attempt` of `worker` on job `id`; false when the job moved on meanwhile
/// (timed out, reset, removed, claimed again, or its window closed before a success), in which
/// case nothing changed.
pub fn finish(
    conn: &mut DbConnection,
    id: &str,
    worker: &str,
    attempt: &str,
    f: Finish,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    // A failure ends the attempt whenever it comes; a success only inside the window.
    let open_at = if f.succeeded {
        at
    } else {
        chrono::DateTime::UNIX_EPOCH.naive_utc()
    };
    let n = diesel::update(
        wdpost_jobs::table
            .filter(wdpost_jobs::id.eq(id))
            .filter(wdpost_jobs::state.eq(Running.name()))
            .filter(wdpost_jobs::worker_name.eq(worker))
            .filter(wdpost_jobs::attempt.eq(attempt))
            .filter(
                wdpost_jobs::deadline_close_at
                    .is_null()
                    .or(wdpost_jobs::deadline_close_at.gt(open_at)),
            ),
    )
    .set((
        wdpost_jobs::state.eq(if f.succeeded { Succeed } else { Failed }.name()),
        wdpost_jobs::error_reason.eq(f.error),
        wdpost_jobs::output.eq(f.output),
        wdpost_jobs::finished_at.eq(at),
        wdpost_jobs::updated_at.eq(at),
    ))
    .execute(conn)
    .map_err(classify)?;
    Ok(n > 0)
}

/// Newest first; without `all`, succeeded jobs are left out.
pub fn list(conn: &mut DbConnection, all: bool) -> Result<Vec<JobRow>, DbError> {
    let mut q = wdpost_jobs::table
        .select(JobRow::as_select())
        .order((wdpost_jobs::created_at.desc(), wdpost_jobs::id.asc()))
        .into_boxed();
    if !all {
        q = q.filter(wdpost_jobs::state.ne(Succeed.name()));
    }
    q.load(conn).map_err(classify)
}

/// Every job's id (without loading inputs and outputs).
pub fn ids(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    wdpost_jobs::table
        .select(wdpost_jobs::id)
        .order(wdpost_jobs::id.asc())
        .load(conn)
        .map_err(classify)
}

/// How many jobs each miner has in each state (for `/metrics`).
pub fn count_by_state(conn: &mut DbConnection) -> Result<Vec<(i64, String, i64)>, DbError> {
    use diesel::dsl::count_star;
    wdpost_jobs::table
        .group_by((wdpost_jobs::miner_id, wdpost_jobs::state))
        .select((wdpost_jobs::miner_id, wdpost_jobs::state, count_star()))
        .load(conn)
        .map_err(classify)
}

/// Back to `ReadyToRun` with no tries; false when the job does not exist or its window has
/// closed (a proof would no longer count).
pub fn reset(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> Result<bool, DbError> {
    let none: Option<NaiveDateTime> = None;
    let n = diesel::update(
        wdpost_jobs::table.filter(wdpost_jobs::id.eq(id)).filter(
            wdpost_jobs::deadline_close_at
                .is_null()
                .or(wdpost_jobs::deadline_close_at.gt(at)),
        ),
    )
    .set((
        wdpost_jobs::state.eq(ReadyToRun.name()),
        wdpost_jobs::try_num.eq(0),
        wdpost_jobs::worker_name.eq(None::<String>),
        wdpost_jobs::error_reason.eq(None::<String>),
        wdpost_jobs::output.eq(None::<String>),
        wdpost_jobs::started_at.eq(none),
        wdpost_jobs::heartbeat_at.eq(none),
        wdpost_jobs::finished_at.eq(none),
        wdpost_jobs::updated_at.eq(at),
        wdpost_jobs::attempt.eq(None::<String>),
    ))
    .execute(conn)
    .map_err(classify)?;
    Ok(n > 0)
}

pub fn remove(conn: &mut DbConnection, id: &str) -> Result<bool, DbError> {
    let n = diesel::delete(wdpost_jobs::table.filter(wdpost_jobs::id.eq(id)))
        .execute(conn)
        .map_err(classify)?;
    Ok(n > 0)
}

/// Fails running jobs whose last heartbeat is before `cutoff`; returns their ids.
pub fn fail_stale(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    at: NaiveDateTime,
) -> Result<Vec<String>, DbError> {
    fail_running_where(conn, "heartbeat_at", cutoff, "heartbeat timeout", at)
}

/// Fails running jobs started before `cutoff` (`[task] timeout`); returns their ids.
pub fn fail_timed_out(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    reason: &str,
    at: NaiveDateTime,
) -> Result<Vec<String>, DbError> {
    fail_running_where(conn, "started_at", cutoff, reason, at)
}

/// Each running job whose `column` is before `cutoff` fails with `reason`, by a conditional
/// update, so a job that heartbeats or finishes meanwhile (or another manager's keeper) wins.
fn fail_running_where(
    conn: &mut DbConnection,
    column: &'static str,
    cutoff: NaiveDateTime,
    reason: &str,
    at: NaiveDateTime,
) -> Result<Vec<String>, DbError> {
    let cond = format!("state = ? AND {column} < ?");
    let stale: Vec<IdRow> = load(
        conn,
        &format!("SELECT id FROM wdpost_jobs WHERE {cond}"),
        vec![st(Running), Val::Time(cutoff)],
    )
    .map_err(classify)?;
    let mut failed = Vec::new();
    for row in stale {
        let n = execute(
            conn,
            &format!(
                "UPDATE wdpost_jobs SET state = ?, error_reason = ?, finished_at = ?, \
                 updated_at = ? WHERE id = ? AND {cond}"
            ),
            vec![
                st(Failed),
                Val::Text(reason.into()),
                Val::Time(at),
                Val::Time(at),
                Val::Text(row.id.clone()),
                st(Running),
                Val::Time(cutoff),
            ],
        )
        .map_err(classify)?;
        if n == 1 {
            failed.push(row.id);
        }
    }
    Ok(failed)
}

/// Failed jobs with tries left and their window still open go back to `ReadyToRun`; returns
/// how many.
pub fn retry_failed(
    conn: &mut DbConnection,
    max_retry: u32,
    at: NaiveDateTime,
) -> Result<usize, DbError> {
    let none: Option<NaiveDateTime> = None;
    diesel::update(
        wdpost_jobs::table
            .filter(wdpost_jobs::state.eq(Failed.name()))
            .filter(wdpost_jobs::try_num.lt(max_retry as i32))
            .filter(
                wdpost_jobs::deadline_close_at
                    .is_null()
                    .or(wdpost_jobs::deadline_close_at.gt(at)),
            ),
    )
    .set((
        wdpost_jobs::state.eq(ReadyToRun.name()),
        wdpost_jobs::output.eq(None::<String>),
        wdpost_jobs::started_at.eq(none),
        wdpost_jobs::finished_at.eq(none),
        wdpost_jobs::updated_at.eq(at),
    ))
    .execute(conn)
    .map_err(classify)
}

/// Moves finished jobs (succeeded, or failed with no tries left) that finished before `cutoff`
/// to `wdpost_jobs_archived`; returns how many. The conditions are checked again inside the
/// transaction, so a job an operator resets meanwhile stays.
pub fn archive(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    max_retry: u32,
) -> Result<usize, DbError> {
    move_to_archive(
        conn,
        "finished_at < ? AND (state = ? OR (state = ? AND try_num >= ?))",
        &|| {
            vec![
                Val::Time(cutoff),
                st(Succeed),
                st(Failed),
                Val::Int(i64::from(max_retry)),
            ]
        },
    )
}

/// Moves up to 1,000 jobs matching `cond` (its values: `cond_vals`) to the archive, checking
/// `cond` again inside the transaction; returns how many moved.
fn move_to_archive(
    conn: &mut DbConnection,
    cond: &str,
    cond_vals: &dyn Fn() -> Vec<Val>,
) -> Result<usize, DbError> {
    let mut vals = cond_vals();
    vals.push(Val::Int(1000));
    let ids: Vec<IdRow> = load(
        conn,
        &format!("SELECT id FROM wdpost_jobs WHERE {cond} LIMIT ?"),
        vals,
    )
    .map_err(classify)?;
    if ids.is_empty() {
        return Ok(0);
    }
    let ignore = if is_mysql(conn) {
        "INSERT IGNORE"
    } else {
        "INSERT OR IGNORE"
    };
    let list = in_list(ids.len());
    let vals = || {
        let mut v: Vec<Val> = ids.iter().map(|i| Val::Text(i.id.clone())).collect();
        v.extend(cond_vals());
        v
    };
    conn.transaction(|c| {
        execute(
            c,
            &format!(
                "{ignore} INTO wdpost_jobs_archived SELECT * FROM wdpost_jobs \
                 WHERE id IN {list} AND {cond}"
            ),
            vals(),
        )?;
        execute(
            c,
            &format!("DELETE FROM wdpost_jobs WHERE id IN {list} AND {cond}"),
            vals(),
        )
    })
    .map_err(classify)
}

#[cfg(test)]
mod tests;
