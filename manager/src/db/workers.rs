//! `workers` and `worker_threads`: what pings tell us about each worker.

use chrono::NaiveDateTime;
use std::collections::HashMap;

use damocles_actors::wire::venus::WorkerInfo;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use serde::{Deserialize, Serialize};

use damocles_actors::wire::worker_api::{ThreadInfo, ThreadState};

use super::raw::OnDup::{Keep, Key, Refresh};
use super::raw::{execute, in_list, load, rows_per_statement, upsert_rows, Cell, Val, MAX_BOUND};
use super::schema::{worker_threads, workers};
use super::{classify, DbConnection, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Serialize, Deserialize, utoipa::ToSchema)]
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
///
/// Most pings repeat what the last one said (a sealing step takes minutes to hours, a ping
/// comes every 30 s). The worker's row keeps a digest of the threads last written
/// (`threads_digest`), read back in the same transaction, so a ping whose threads did not
/// change writes only the worker's row (its counts and `last_ping_at`). The digest lives in the
/// database, not in this manager's memory, so it stays true when a worker moves between
/// managers. A thread row's `updated_at` is therefore when it last changed.
pub fn upsert_pings(
    conn: &mut DbConnection,
    pings: &[WorkerInfo],
    at: NaiveDateTime,
) -> Result<(), DbError> {
    if pings.is_empty() {
        return Ok(());
    }
    // It reads the digests, then writes: on SQLite that needs the write lock from the start.
    // Two batches may be in the database at once (`HeartbeatWriter`): new rows lock the gaps
    // they go into, so the two can deadlock; the one undone is written again.
    super::again_on_conflict("heartbeat batch", 8, || {
        super::write_transaction(conn, |c| write_pings(c, pings, at).map_err(classify))
    })
}

fn write_pings(
    c: &mut DbConnection,
    pings: &[WorkerInfo],
    at: NaiveDateTime,
) -> Result<(), diesel::result::Error> {
    let stored = stored_digests(c, pings)?;
    let old: Vec<Option<i64>> = pings
        .iter()
        .map(|p| stored.get(&p.name).copied().flatten())
        .collect();
    let digests: Vec<Option<i64>> = pings
        .iter()
        .zip(&old)
        // A damocles worker's ping says nothing of its threads: keep what was there.
        .map(|(p, old)| {
            p.threads
                .as_ref()
                .map_or(*old, |t| Some(threads_digest(t, at)))
        })
        .collect();
    let count = |n: u64| Val::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let rows = pings
        .iter()
        .zip(&digests)
        .map(|(p, digest)| {
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
                Cell::new("threads_digest", Refresh, Val::OptInt(*digest)),
            ]
        })
        .collect();
    upsert_rows(c, "workers", rows)?;

    // Only the workers whose threads differ from what is stored.
    let changed: Vec<&WorkerInfo> = pings
        .iter()
        .zip(old.iter().zip(&digests))
        .filter(|(p, (old, new))| p.threads.is_some() && old != new)
        .map(|(p, _)| p)
        .collect();
    let mut rows = Vec::new();
    for p in &changed {
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
    for chunk in changed.chunks(rows_per_statement(2)) {
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
}

/// The `threads_digest` stored for each pinging worker that is known (`None`: known, but no
/// digest yet).
fn stored_digests(
    c: &mut DbConnection,
    pings: &[WorkerInfo],
) -> Result<HashMap<String, Option<i64>>, diesel::result::Error> {
    #[derive(QueryableByName)]
    struct Stored {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Nullable<BigInt>)]
        threads_digest: Option<i64>,
    }
    let mut out = HashMap::with_capacity(pings.len());
    for chunk in pings.chunks(MAX_BOUND) {
        let rows: Vec<Stored> = load(
            c,
            &format!(
                "SELECT name, threads_digest FROM workers WHERE name IN {}",
                in_list(chunk.len())
            ),
            chunk.iter().map(|p| Val::Text(p.name.clone())).collect(),
        )?;
        out.extend(rows.into_iter().map(|r| (r.name, r.threads_digest)));
    }
    Ok(out)
}

/// Seconds of the minute buckets `state_since` is compared in: a ping's `at - elapsed`
/// wobbles by a second from ping to ping, and must not count as a change; a thread that
/// re-enters the same state a minute or more later does. A wobble across a bucket's edge
/// writes the rows once more, which costs a write and is otherwise harmless.
const SINCE_BUCKET: i64 = 60;

/// A digest of what a ping says of its threads, as the rows would hold it (FNV-1a, 64 bits:
/// the same on every manager and every build, unlike `std`'s hasher).
fn threads_digest(threads: &[ThreadInfo], at: NaiveDateTime) -> i64 {
    let mut h = Fnv::default();
    h.int(threads.len() as i64);
    for t in threads {
        h.int(i64::try_from(t.index).unwrap_or(i64::MAX));
        h.text(Some(&t.location));
        h.text(Some(&t.plan));
        h.text(t.job_id.as_deref());
        h.text(Some(&t.job_state));
        h.text(t.job_stage.as_deref());
        h.text(Some(t.thread_state.name()));
        h.int(
            since(at, &t.thread_state)
                .and_utc()
                .timestamp()
                .div_euclid(SINCE_BUCKET),
        );
        h.text(t.last_error.as_deref());
    }
    h.0 as i64
}

/// FNV-1a over length-prefixed fields, so that no two different field lists feed it the same
/// bytes.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.0 = (self.0 ^ u64::from(*x)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn int(&mut self, i: i64) {
        self.bytes(&i.to_le_bytes());
    }
    fn text(&mut self, s: Option<&str>) {
        match s {
            None => self.int(-1),
            Some(s) => {
                self.int(s.len() as i64);
                self.bytes(s.as_bytes());
            }
        }
    }
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

/// Which of `names` drain, in one query.
pub fn draining_among(
    conn: &mut DbConnection,
    names: &[String],
) -> Result<std::collections::HashSet<String>, DbError> {
    workers::table
        .select(workers::name)
        .filter(workers::name.eq_any(names))
        .filter(workers::draining.eq(true))
        .load::<String>(conn)
        .map(|v| v.into_iter().collect())
        .map_err(classify)
}

#[cfg(test)]
mod tests;
