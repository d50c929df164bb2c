//! `/wdpost/jobs`: the WindowPoSt job queue for operators: list, reset, remove, remove all.
//! Every change is written to `audit_log`.

use actix_web::{web, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{record, Admin, RestState};
use crate::db::wdpost::{JobRow, RUNNING};
use crate::db::{self};
use crate::error::ApiError;

/// One job as operators see it; `input`/`output` only with `detail=true`.
#[derive(Serialize)]
pub struct JobView {
    pub id: String,
    pub miner_id: i64,
    pub deadline_idx: i32,
    pub partitions: Vec<u64>,
    pub proof_type: String,
    pub sectors: i32,
    pub state: String,
    pub try_num: i32,
    /// Tries a job gets before it stays Failed until reset (`[task] max_retry`).
    pub max_retry: u32,
    pub worker_name: Option<String>,
    pub error_reason: Option<String>,
    pub deadline_open_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub heartbeat_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
    /// Seconds from start to finish, or to now while running.
    pub elapsed_secs: Option<i64>,
    /// Seconds since the last heartbeat, while running.
    pub heartbeat_age_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

fn view(r: JobRow, now: NaiveDateTime, max_retry: u32, detail: bool) -> JobView {
    let running = r.state == RUNNING;
    let end = if running { Some(now) } else { r.finished_at };
    let json = |s: &str| serde_json::from_str(s).unwrap_or(Value::String(s.to_string()));
    JobView {
        elapsed_secs: r
            .started_at
            .zip(end)
            .map(|(s, e)| (e - s).num_seconds().max(0)),
        heartbeat_age_secs: r
            .heartbeat_at
            .filter(|_| running)
            .map(|h| (now - h).num_seconds().max(0)),
        partitions: r
            .partitions
            .split(',')
            .filter_map(|p| p.trim().parse().ok())
            .collect(),
        input: detail.then(|| json(&r.input)),
        output: r.output.as_deref().filter(|_| detail).map(json),
        id: r.id,
        miner_id: r.miner_id,
        deadline_idx: r.deadline_idx,
        proof_type: r.proof_type,
        sectors: r.sectors,
        state: r.state,
        try_num: r.try_num,
        max_retry,
        worker_name: r.worker_name,
        error_reason: r.error_reason,
        deadline_open_at: r.deadline_open_at,
        created_at: r.created_at,
        started_at: r.started_at,
        heartbeat_at: r.heartbeat_at,
        finished_at: r.finished_at,
        updated_at: r.updated_at,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub detail: bool,
}

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

pub async fn reset(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let i = id.clone();
    let done =
        s.db.run(move |c| db::wdpost::reset(c, &i, db::now()))
            .await?;
    let result = if done { "reset" } else { "not found" };
    record(&s, &admin, "wdpost.reset", &id, None, result).await?;
    if !done {
        return Err(unknown(&id));
    }
    tracing::info!(job = %id, by = %admin.0, "wdpost job reset");
    Ok(HttpResponse::Ok().json(json!({"reset": id})))
}

pub async fn remove(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let i = id.clone();
    let done = s.db.run(move |c| db::wdpost::remove(c, &i)).await?;
    let result = if done { "removed" } else { "not found" };
    record(&s, &admin, "wdpost.remove", &id, None, result).await?;
    if !done {
        return Err(unknown(&id));
    }
    tracing::info!(job = %id, by = %admin.0, "wdpost job removed");
    Ok(HttpResponse::Ok().json(json!({"removed": id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveAllQuery {
    #[serde(default)]
    pub really_do_it: bool,
}

/// Without `really_do_it=true`, a dry run: says which jobs it would remove.
pub async fn remove_all(
    admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<RemoveAllQuery>,
) -> Result<HttpResponse, ApiError> {
    let ids: Vec<String> =
        s.db.run(|c| db::wdpost::list(c, true))
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
    if !q.really_do_it {
        return Ok(HttpResponse::Ok().json(json!({"dry_run": true, "jobs": ids})));
    }
    let mut removed = Vec::new();
    for id in ids {
        let i = id.clone();
        if s.db.run(move |c| db::wdpost::remove(c, &i)).await? {
            removed.push(id);
        }
    }
    record(
        &s,
        &admin,
        "wdpost.remove_all",
        "*",
        Some(removed.join(",")),
        &format!("removed {}", removed.len()),
    )
    .await?;
    tracing::info!(jobs = removed.len(), by = %admin.0, "all wdpost jobs removed");
    Ok(HttpResponse::Ok().json(json!({"dry_run": false, "jobs": removed})))
}
