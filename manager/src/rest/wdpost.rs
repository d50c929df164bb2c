//! `/wdpost/jobs`: the WindowPoSt job queue for operators: list, reset (while its window is
//! open), remove, remove all. `/proving/faults` and `/proving/missed`: what missed windows cost.
//! Every change is written to `audit_log`.

use actix_web::{web, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit::{audited, change_one, Done};
use super::workers::Removed;
use super::{Admin, RestState};
use crate::db::wdpost::{JobRow, JobState};
use crate::db::{self};
use crate::error::ApiError;

/// One job as operators see it: the row, with `input`/`output` parsed and only with
/// `detail=true`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    pub row: JobRow,
    /// Tries a job gets before it stays Failed until reset (`[task] max_retry`).
    pub max_retry: u32,
    /// Seconds from start to finish, or to now while running.
    pub elapsed_secs: Option<i64>,
    /// Seconds since the last heartbeat, while running.
    pub heartbeat_age_secs: Option<i64>,
    #[serde(rename = "input", default, skip_serializing_if = "Option::is_none")]
    pub input_json: Option<Value>,
    #[serde(rename = "output", default, skip_serializing_if = "Option::is_none")]
    pub output_json: Option<Value>,
}

fn view(row: JobRow, now: NaiveDateTime, max_retry: u32, detail: bool) -> JobView {
    let running = row.state == JobState::Running;
    let end = if running { Some(now) } else { row.finished_at };
    let json = |s: &str| serde_json::from_str(s).unwrap_or(Value::String(s.to_string()));
    JobView {
        elapsed_secs: row
            .started_at
            .zip(end)
            .map(|(s, e)| (e - s).num_seconds().max(0)),
        heartbeat_age_secs: row
            .heartbeat_at
            .filter(|_| running)
            .map(|h| (now - h).num_seconds().max(0)),
        input_json: detail.then(|| json(&row.input)),
        output_json: row.output.as_deref().filter(|_| detail).map(json),
        max_retry,
        row,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub detail: bool,
}

#[utoipa::path(get, path = "/wdpost/jobs", tag = "wdpost", params(ListQuery),
    responses((status = 200, description = "The WindowPoSt jobs (finished ones with all=true)", body = Vec<JobView>)))]
pub async fn list(
    _admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let (all, detail, max) = (q.all, q.detail, s.max_retry);
    let rows = s.db.run(move |c| db::wdpost::list(c, all)).await?;
    let now = db::now();
    let views: Vec<JobView> = rows
        .into_iter()
        .map(|r| view(r, now, max, detail))
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

fn unknown(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "wdpost job '{id}' does not exist; `util worker wdpost list --all` shows the jobs"
    ))
}

#[utoipa::path(post, path = "/wdpost/jobs/{id}/reset", tag = "wdpost", params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "Ready to be claimed again (only while its window is open)", body = Reset)))]
pub async fn reset(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let i = id.clone();
    let job = s.db.run(move |c| db::wdpost::get(c, &i)).await?;
    let now = s.db.now();
    match job {
        None => return Err(unknown(&id)),
        Some(j) if j.closed(now) => {
            return Err(ApiError::Conflict(format!(
                "wdpost job '{id}' cannot be reset: its challenge window closed at {} UTC, and a \
                 proof now would not count (`util sealer proving missed` shows the miss)",
                j.deadline_close_at
                    .unwrap_or(now)
                    .format("%Y-%m-%d %H:%M:%S")
            )))
        }
        Some(_) => {}
    }
    let act = move |c: &mut db::DbConnection, i: &str| db::wdpost::reset(c, i, now);
    change_one(&s, &admin, "wdpost.reset", &id, "reset", act, unknown).await?;
    tracing::info!(job = %id, by = %admin.0, "wdpost job reset");
    Ok(HttpResponse::Ok().json(Reset { reset: id }))
}

/// The answer to a reset: the job's id.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reset {
    /// The job.
    pub reset: String,
}

#[utoipa::path(delete, path = "/wdpost/jobs/{id}", tag = "wdpost", params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, description = "Removed", body = super::workers::Removed)))]
pub async fn remove(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    change_one(
        &s,
        &admin,
        "wdpost.remove",
        &id,
        "removed",
        db::wdpost::remove,
        unknown,
    )
    .await?;
    tracing::info!(job = %id, by = %admin.0, "wdpost job removed");
    Ok(HttpResponse::Ok().json(Removed { removed: id }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RemoveAllQuery {
    #[serde(default)]
    pub really_do_it: bool,
}

/// Without `really_do_it=true`, a dry run: says which jobs it would remove.
#[utoipa::path(delete, path = "/wdpost/jobs", tag = "wdpost", params(RemoveAllQuery),
    responses((status = 200, description = "Removed (or, without really_do_it, what would be)", body = RemovedJobs)))]
pub async fn remove_all(
    admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<RemoveAllQuery>,
) -> Result<HttpResponse, ApiError> {
    let ids = s.db.run(db::wdpost::ids).await?;
    if !q.really_do_it {
        return Ok(HttpResponse::Ok().json(RemovedJobs {
            dry_run: true,
            jobs: ids,
        }));
    }
    let removed = audited(&s, &admin, "wdpost.remove_all", "*", move |c| {
        let mut removed = Vec::new();
        for id in ids {
            if db::wdpost::remove(c, &id)? {
                removed.push(id);
            }
        }
        let done = (!removed.is_empty()).then(|| Done {
            result: format!("removed {}", removed.len()),
            detail: Some(removed.join(",")),
        });
        Ok((removed, done))
    })
    .await?;
    tracing::info!(jobs = removed.len(), by = %admin.0, "all wdpost jobs removed");
    Ok(HttpResponse::Ok().json(RemovedJobs {
        dry_run: false,
        jobs: removed,
    }))
}

/// The answer to removing every job: which (or, in a dry run, which it would).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemovedJobs {
    /// Nothing was removed: `jobs` is what would have been.
    pub dry_run: bool,
    /// The jobs' ids.
    pub jobs: Vec<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProvingQuery {
    pub miner: Option<u64>,
    /// Most rows (missed deadlines; default 100).
    pub limit: Option<i64>,
}

/// A faulty sector: which, where it is proven, since when and why.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fault {
    pub miner: i64,
    pub sector: i64,
    pub deadline: Option<i32>,
    pub partition: Option<i32>,
    pub since: NaiveDateTime,
    pub reason: String,
}

#[utoipa::path(get, path = "/proving/faults", tag = "wdpost", params(ProvingQuery),
    responses((status = 200, description = "Sectors faulted by a missed WindowPoSt", body = Vec<Fault>)))]
pub async fn faults(
    _admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<ProvingQuery>,
) -> Result<HttpResponse, ApiError> {
    let miner = q.miner;
    let rows = s.db.run(move |c| db::sectors::faulty(c, miner)).await?;
    let faults: Vec<Fault> = rows
        .into_iter()
        .map(|r| Fault {
            miner: r.miner_id,
            sector: r.sector_number,
            deadline: r.deadline_idx,
            partition: r.partition_idx,
            since: r.faulty_at.unwrap_or(r.updated_at),
            reason: r.fault_reason.unwrap_or_default(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(faults))
}

#[utoipa::path(get, path = "/proving/missed", tag = "wdpost", params(ProvingQuery),
    responses((status = 200, description = "Deadlines whose window closed without an accepted proof", body = Vec<crate::db::wdpost::missed::MissedRow>)))]
pub async fn missed(
    _admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<ProvingQuery>,
) -> Result<HttpResponse, ApiError> {
    let (miner, limit) = (q.miner, q.limit.unwrap_or(100));
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range: give 1 to 10000"
        )));
    }
    let rows =
        s.db.run(move |c| db::wdpost::missed::list(c, miner, limit))
            .await?;
    Ok(HttpResponse::Ok().json(rows))
}
