//! `/workers/...`: list, inspect, drain, forget workers; pause and resume their threads; read
//! and change their stage limits (forwarded to the worker, signed). Each answer is a type the
//! CLI decodes too.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::NaiveDateTime;
use damocles_actors::limits::{check_stage, StageUse};
use damocles_actors::wire::auth::{unix_now, ControlKey, FORCE_HEADER};
use damocles_actors::wire::hex;
use damocles_actors::wire::jsonrpc::{
    CallError, Client, FORBIDDEN, INVALID_PARAMS, NEEDS_FORCE, THREAD_NOT_FOUND,
};
use damocles_actors::wire::method::Method;
use damocles_actors::wire::worker_api::{ThreadInfo, DEFAULT_PORT};
use damocles_actors::wire::worker_methods::{
    WorkerLimits, WorkerList, WorkerPause, WorkerResume, WorkerSetLimits,
};
use serde::{Deserialize, Serialize};

use super::audit::{change_one, record_done};
use super::{Admin, RestState};
use crate::db::workers::WorkerRow;
use crate::db::{self};
use crate::error::ApiError;

/// Whether a worker takes new work (`util worker drain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkerMode {
    /// Takes new work.
    Active,
    /// Takes none, and still holds some that it finishes.
    Draining,
    /// Takes none and holds none: the machine can be taken down.
    Drained,
}

impl WorkerMode {
    /// As `util worker list` prints it.
    pub fn name(self) -> &'static str {
        match self {
            WorkerMode::Active => "active",
            WorkerMode::Draining => "draining",
            WorkerMode::Drained => "drained",
        }
    }
}

/// One worker in `GET /workers`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerView {
    #[serde(flatten)]
    pub row: WorkerRow,
    /// Seconds since the last ping, as the server sees it.
    pub last_ping_age_secs: i64,
    /// The same in nanoseconds, for `util worker list`'s LastPing (`2.756922465s`, as damocles
    /// prints the time since a ping recorded in whole seconds).
    pub last_ping_age_ns: i64,
    /// Whether it takes new work.
    pub mode: WorkerMode,
}

fn view(row: WorkerRow, now: NaiveDateTime) -> WorkerView {
    let age = now - row.last_ping_at;
    WorkerView {
        last_ping_age_secs: age.num_seconds().max(0),
        last_ping_age_ns: age.num_nanoseconds().unwrap_or(i64::MAX).max(0),
        mode: match (row.draining, row.empty_threads >= row.threads) {
            (false, _) => WorkerMode::Active,
            (true, false) => WorkerMode::Draining,
            (true, true) => WorkerMode::Drained,
        },
        row,
    }
}

#[utoipa::path(post, path = "/workers/{name}/drain", tag = "workers", params(("name" = String, Path, description = "The worker's name, or its management address (host[:port])")),
    responses((status = 200, description = "It takes no new sector or job; its threads finish what they hold", body = Draining)))]
pub async fn drain(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_draining(admin, s, path.into_inner(), true).await
}

#[utoipa::path(post, path = "/workers/{name}/undrain", tag = "workers", params(("name" = String, Path, description = "The worker's name, or its management address (host[:port])")),
    responses((status = 200, description = "It takes new work again", body = Draining)))]
pub async fn undrain(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_draining(admin, s, path.into_inner(), false).await
}

/// The worker gets no new sector or job (its threads finish what they hold), or gets them again.
async fn set_draining(
    admin: Admin,
    s: web::Data<RestState>,
    name: String,
    draining: bool,
) -> Result<HttpResponse, ApiError> {
    let action = if draining { "drain" } else { "undrain" };
    let act = move |c: &mut db::DbConnection, n: &str| db::workers::set_draining(c, n, draining);
    change_one(
        &s,
        &admin,
        &format!("worker.{action}"),
        &name,
        "done",
        act,
        unknown,
    )
    .await?;
    tracing::info!(worker = %name, draining, by = %admin.0, "worker {action}ed");
    Ok(HttpResponse::Ok().json(Draining {
        worker: name,
        draining,
    }))
}

/// The answer to a drain or an undrain.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Draining {
    /// The worker.
    pub worker: String,
    /// Whether it is draining now.
    pub draining: bool,
}

fn unknown(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "unknown worker {name:?}: `util worker list` shows the known names"
    ))
}

#[utoipa::path(get, path = "/workers", tag = "workers",
    responses((status = 200, description = "Every worker that pinged, with its threads by state", body = Vec<WorkerView>)))]
pub async fn list_workers(
    _admin: Admin,
    s: web::Data<RestState>,
) -> Result<HttpResponse, ApiError> {
    let rows = s.db.run(db::workers::list).await?;
    // Not rounded to the second, unlike db::now(): the age is shown to the nanosecond.
    let now = chrono::Utc::now().naive_utc();
    let views: Vec<WorkerView> = rows.into_iter().map(|r| view(r, now)).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// A worker by name, else by address (`host[:port]`) as damocles resolves it.
pub(crate) async fn resolve(s: &RestState, target: &str) -> Result<(String, String), ApiError> {
    let t = target.to_string();
    if let Some(row) = s.db.run(move |c| db::workers::get(c, &t)).await? {
        return Ok((row.name, row.dest));
    }
    let addr = if target.parse::<std::net::SocketAddr>().is_ok() {
        target.to_string()
    } else if target.parse::<std::net::IpAddr>().is_ok() {
        format!("{target}:{DEFAULT_PORT}")
    } else {
        return Err(ApiError::NotFound(format!(
            "unknown worker {target:?}: no worker of that name has pinged this manager, and it is not an address (host:port)"
        )));
    };
    Ok((target.to_string(), addr))
}

/// Calls a worker's management API, signed with the key derived from its token (when the
/// manager holds one for that name; `force` says a resume may drop work).
pub(crate) async fn call_worker<M: Method>(
    s: &RestState,
    name: &str,
    addr: &str,
    params: M::Params,
    force: bool,
) -> Result<M::Output, ApiError> {
    let n = name.to_string();
    let key =
        s.db.run(move |c| db::tokens::active_hash(c, &n))
            .await?
            .and_then(|h| hex::decode32(&h))
            .map(|h| ControlKey::from_token_hash(&h));
    let client = Client::new(format!("http://{addr}/"), s.worker_timeout);
    let signed = client.call_with::<M>(params, move |body| {
        let mut h = Vec::new();
        if let Some(k) = &key {
            h.push(("Authorization", k.sign(unix_now(), force, body)));
        }
        if force {
            h.push((FORCE_HEADER, "true".to_string()));
        }
        h
    });
    signed.await.map_err(|e| match e {
        CallError::Transport { reason, .. } if reason.contains("timed out") => {
            ApiError::WorkerTimeout {
                worker: name.into(),
                addr: addr.into(),
                reason,
            }
        }
        CallError::Transport { reason, .. } | CallError::Decode { reason, .. } => {
            ApiError::WorkerUnreachable {
                worker: name.into(),
                addr: addr.into(),
                reason,
            }
        }
        CallError::Rpc(r) if r.code == THREAD_NOT_FOUND => {
            ApiError::NotFound(format!("worker {name}: {}", r.message))
        }
        CallError::Rpc(r) if r.code == INVALID_PARAMS => {
            ApiError::BadRequest(format!("worker {name}: {}", r.message))
        }
        CallError::Rpc(r) if r.code == NEEDS_FORCE => {
            ApiError::Conflict(format!("worker {name}: {}", r.message))
        }
        CallError::Rpc(r) if r.code == FORBIDDEN => ApiError::WorkerUnreachable {
            worker: name.into(),
            addr: addr.into(),
            reason: format!(
                "it refused the manager's credential: {} (create the worker's token with `util worker token create {name}` and give it to the worker)",
                r.message
            ),
        },
        CallError::Rpc(r) => ApiError::WorkerUnreachable {
            worker: name.into(),
            addr: addr.into(),
            reason: r.message,
        },
    })
}

/// `GET /workers/<name>`: the worker's threads, as it reports them.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerThreads {
    /// The worker's name.
    pub name: String,
    /// Its management address.
    pub dest: String,
    /// Its threads.
    pub threads: Vec<ThreadInfo>,
}

#[utoipa::path(get, path = "/workers/{name}", tag = "workers", params(("name" = String, Path, description = "The worker's name, or its management address (host[:port])")),
    responses((status = 200, description = "The worker's threads, as it reports them now", body = WorkerThreads)))]
pub async fn worker_info(
    _admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (name, dest) = resolve(&s, &path).await?;
    let threads = call_worker::<WorkerList>(&s, &name, &dest, [], false).await?;
    Ok(HttpResponse::Ok().json(WorkerThreads {
        name,
        dest,
        threads,
    }))
}

#[utoipa::path(delete, path = "/workers/{name}", tag = "workers",
    params(("name" = String, Path, description = "The worker's name")),
    responses((status = 200, description = "Forgotten until it pings again", body = Removed)))]
pub async fn remove_worker(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let missing = |n: &str| {
        ApiError::NotFound(format!(
            "worker info not found: {n:?}; `util worker list` shows the known names"
        ))
    };
    change_one(
        &s,
        &admin,
        "worker.remove",
        &name,
        "removed",
        db::workers::remove,
        missing,
    )
    .await?;
    Ok(HttpResponse::Ok().json(Removed { removed: name }))
}

/// The answer to a removal: what was removed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Removed {
    /// Its name or id.
    pub removed: String,
}

fn index(raw: &str) -> Result<usize, ApiError> {
    raw.parse::<usize>().map_err(|_| {
        ApiError::BadRequest(format!("bad thread index {raw:?}: expected a number >= 0"))
    })
}

#[utoipa::path(post, path = "/workers/{name}/threads/{idx}/pause", tag = "workers",
    params(("name" = String, Path, description = "The worker's name, or its management address (host[:port])"), ("idx" = usize, Path, description = "The thread's index in the worker's config")),
    responses((status = 200, description = "Paused, or paused already", body = Paused)))]
pub async fn pause_thread(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (target, idx) = path.into_inner();
    let idx = index(&idx)?;
    let order = Order {
        action: "thread.pause",
        detail: None,
        force: false,
        outcomes: ("paused", "already paused"),
    };
    let (name, done, outcome) =
        steer::<WorkerPause>(&s, &admin, &target, idx, (idx,), order).await?;
    Ok(HttpResponse::Ok().json(Paused {
        worker: name,
        index: idx,
        paused: done,
        result: outcome.into(),
    }))
}

/// An operator's order to one thread, for its audit row.
struct Order {
    /// `thread.pause`, `thread.resume`.
    action: &'static str,
    /// What else the audit row says (the state resumed into).
    detail: Option<String>,
    /// The order may drop the thread's work.
    force: bool,
    /// The result when the thread changed, and when it did not.
    outcomes: (&'static str, &'static str),
}

/// Sends `M` to thread `idx` of the worker named (or addressed) by `target`; audits it when the
/// thread changed. Returns the worker's name, whether it changed, and the outcome's word.
async fn steer<M: Method<Output = bool>>(
    s: &RestState,
    admin: &Admin,
    target: &str,
    idx: usize,
    params: M::Params,
    order: Order,
) -> Result<(String, bool, &'static str), ApiError> {
    let (name, dest) = resolve(s, target).await?;
    let changed = call_worker::<M>(s, &name, &dest, params, order.force).await?;
    let (yes, no) = order.outcomes;
    let outcome = if changed { yes } else { no };
    if changed {
        let thread = format!("{name}#{idx}");
        record_done(s, admin, order.action, &thread, order.detail, outcome).await;
    }
    Ok((name, changed, outcome))
}

/// The answer to a pause.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Paused {
    /// The worker.
    pub worker: String,
    /// The thread.
    pub index: usize,
    /// False when it was paused already.
    pub paused: bool,
    /// `paused` or `already paused`.
    pub result: String,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeBody {
    pub state: Option<String>,
    /// Needed to resume into Finished or Aborted, which drops the thread's work.
    #[serde(default)]
    pub force: bool,
}

#[utoipa::path(post, path = "/workers/{name}/threads/{idx}/resume", tag = "workers",
    params(("name" = String, Path, description = "The worker's name, or its management address (host[:port])"), ("idx" = usize, Path, description = "The thread's index in the worker's config")),
    request_body(content = Option<ResumeBody>, description = "The state to resume into (one of the thread's plan, `GET /ui/states`); none: where it paused"),
    responses((status = 200, description = "Resumed, or not paused", body = Resumed)))]
pub async fn resume_thread(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (target, idx) = path.into_inner();
    let idx = index(&idx)?;
    let body: ResumeBody = if body.iter().all(u8::is_ascii_whitespace) {
        ResumeBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!(
                "malformed body: {e}; expected {{\"state\": \"<State>\", \"force\": true|false}} or nothing"
            ))
        })?
    };
    let order = Order {
        action: "thread.resume",
        detail: body.state.clone(),
        force: body.force,
        outcomes: ("resumed", "not paused"),
    };
    let params = (idx, body.state.clone());
    let (name, resumed, outcome) =
        steer::<WorkerResume>(&s, &admin, &target, idx, params, order).await?;
    Ok(HttpResponse::Ok().json(Resumed {
        worker: name,
        index: idx,
        state: body.state,
        resumed,
        result: outcome.into(),
    }))
}

/// The answer to a resume.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resumed {
    /// The worker.
    pub worker: String,
    /// The thread.
    pub index: usize,
    /// The state it was resumed into, if one was asked for.
    pub state: Option<String>,
    /// False when it was not paused.
    pub resumed: bool,
    /// `resumed` or `not paused`.
    pub result: String,
}

/// The worker's stage limits and how many of each run, fetched from it.
#[utoipa::path(get, path = "/workers/{name}/limits", tag = "workers", params(("name" = String, Path, description = "The worker's name, or its management address (host[:port])")),
    responses((status = 200, description = "Each stage's limit and how many run", body = Limits)))]
pub async fn worker_limits(
    _admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (name, dest) = resolve(&s, &path).await?;
    let limits = call_worker::<WorkerLimits>(&s, &name, &dest, [], false).await?;
    Ok(HttpResponse::Ok().json(Limits {
        worker: name,
        limits,
    }))
}

/// A worker's stage limits, and how many of each stage run.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    /// The worker.
    pub worker: String,
    /// Per stage.
    pub limits: BTreeMap<String, StageUse>,
}

/// Changes a worker's stage limits (`{"pc1": 1, "c2": null}`): the worker applies them at
/// once and keeps them in its config file.
#[utoipa::path(post, path = "/workers/{name}/limits", tag = "workers", params(("name" = String, Path, description = "The worker's name, or its management address (host[:port])")),
    request_body(content = BTreeMap<String, Option<usize>>, description = "Stage to its new limit (>= 1), or null to lift it", example = json!({"pc1": 2, "c2": null})),
    responses((status = 200, description = "The worker's limits after the change", body = Limits)))]
pub async fn set_worker_limits(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let changes: BTreeMap<String, Option<usize>> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "malformed body: {e}; expected {{\"<stage>\": <limit >= 1, or null to lift it>}}"
        ))
    })?;
    for (stage, limit) in &changes {
        check_stage(stage).map_err(ApiError::BadRequest)?;
        if *limit == Some(0) {
            return Err(ApiError::BadRequest(format!(
                "{stage}: a limit must be at least 1 (null lifts it)"
            )));
        }
    }
    let (name, dest) = resolve(&s, &path).await?;
    let res = call_worker::<WorkerSetLimits>(&s, &name, &dest, (changes.clone(),), false).await;
    let limits = res?;
    let detail = serde_json::to_string(&changes).ok();
    record_done(&s, &admin, "worker.limits", &name, detail, "changed").await;
    tracing::info!(worker = %name, changes = ?changes, by = %admin.0, "stage limits changed");
    Ok(HttpResponse::Ok().json(Limits {
        worker: name,
        limits,
    }))
}
