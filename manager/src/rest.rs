//! The operators' REST API: list, inspect, pause, resume and forget workers; the WindowPoSt
//! jobs are in `rest/wdpost.rs`. Every endpoint but `/healthz` and `/metrics` needs the admin
//! token; every state change goes to `audit_log`.

pub mod tokens;
pub mod wdpost;

use std::future::{ready, Ready};
use std::time::Duration;

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use damocles_actors::wire::auth::{ct_eq, unix_now, ControlKey, FORCE_HEADER};
use damocles_actors::wire::hex;
use damocles_actors::wire::jsonrpc::{
    CallError, Client, FORBIDDEN, INVALID_PARAMS, NEEDS_FORCE, THREAD_NOT_FOUND,
};
use damocles_actors::wire::method::Method;
use damocles_actors::wire::worker_api::{ThreadInfo, DEFAULT_PORT};
use damocles_actors::wire::worker_methods::{
    WorkerLimits, WorkerList, WorkerPause, WorkerResume, WorkerSetLimits,
};
use std::collections::BTreeMap;
use std::sync::Arc;

use damocles_actors::limits::check_stage;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::Authenticator;
use crate::db::workers::WorkerRow;
use crate::db::{self, audit, Db};
use crate::error::ApiError;
use crate::metrics;
use crate::sched::{PledgeRequest, Scheduler};

pub struct RestState {
    pub db: Db,
    pub token: String,
    /// Told when a worker token is created or revoked here, so it applies at once.
    pub auth: Arc<Authenticator>,
    /// Timeout of calls forwarded to workers.
    pub worker_timeout: Duration,
    /// `[task] max_retry`, shown with each WindowPoSt job.
    pub max_retry: u32,
    pub sched: Arc<Scheduler>,
}

/// Proof that the request carried the admin token; holds who made it, for the audit log.
pub struct Admin(pub String);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<RestState>>() else {
            return ready(Err(ApiError::Internal("REST state missing".into())));
        };
        let given = req
            .headers()
            .get("Authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| ct_eq(g.as_bytes(), state.token.as_bytes())) {
            return ready(Err(ApiError::Unauthorized));
        }
        let peer = req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|| "-".into());
        ready(Ok(Admin(format!("admin@{peer}"))))
    }
}

#[derive(Serialize)]
pub struct WorkerView {
    #[serde(flatten)]
    pub row: WorkerRow,
    /// Seconds since the last ping, as the server sees it.
    pub last_ping_age_secs: i64,
    /// The same in nanoseconds, for `util worker list`'s LastPing (`2.756922465s`, as damocles
    /// prints the time since a ping recorded in whole seconds).
    pub last_ping_age_ns: i64,
    /// `active`, `draining` (holds work it finishes) or `drained` (holds nothing: the machine can
    /// be taken down).
    pub mode: &'static str,
}

fn view(row: WorkerRow, now: NaiveDateTime) -> WorkerView {
    let age = now - row.last_ping_at;
    WorkerView {
        last_ping_age_secs: age.num_seconds().max(0),
        last_ping_age_ns: age.num_nanoseconds().unwrap_or(i64::MAX).max(0),
        mode: match (row.draining, row.empty_threads >= row.threads) {
            (false, _) => "active",
            (true, false) => "draining",
            (true, true) => "drained",
        },
        row,
    }
}

pub async fn drain(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_draining(admin, s, path.into_inner(), true).await
}

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
    let n = name.clone();
    let found = audited(&s, &admin, &format!("worker.{action}"), &name, move |c| {
        Ok(changed(db::workers::set_draining(c, &n, draining)?, "done"))
    })
    .await?;
    if !found {
        return Err(ApiError::NotFound(format!(
            "unknown worker {name:?}: `util worker list` shows the known names"
        )));
    }
    tracing::info!(worker = %name, draining, by = %admin.0, "worker {action}ed");
    Ok(HttpResponse::Ok().json(json!({"worker": name, "draining": draining})))
}

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
async fn resolve(s: &RestState, target: &str) -> Result<(String, String), ApiError> {
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
async fn call_worker<M: Method>(
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

#[derive(Serialize)]
struct InfoView {
    name: String,
    dest: String,
    threads: Vec<ThreadInfo>,
}

pub async fn worker_info(
    _admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (name, dest) = resolve(&s, &path).await?;
    let threads = call_worker::<WorkerList>(&s, &name, &dest, [], false).await?;
    Ok(HttpResponse::Ok().json(InfoView {
        name,
        dest,
        threads,
    }))
}

pub async fn remove_worker(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let n = name.clone();
    let removed = audited(&s, &admin, "worker.remove", &name, move |c| {
        Ok(changed(db::workers::remove(c, &n)?, "removed"))
    })
    .await?;
    if !removed {
        return Err(ApiError::NotFound(format!(
            "worker info not found: {name:?}; `util worker list` shows the known names"
        )));
    }
    Ok(HttpResponse::Ok().json(json!({"removed": name})))
}

fn index(raw: &str) -> Result<usize, ApiError> {
    raw.parse::<usize>().map_err(|_| {
        ApiError::BadRequest(format!("bad thread index {raw:?}: expected a number >= 0"))
    })
}

pub async fn pause_thread(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (target, idx) = path.into_inner();
    let idx = index(&idx)?;
    let (name, dest) = resolve(&s, &target).await?;
    let res = call_worker::<WorkerPause>(&s, &name, &dest, (idx,), false).await;
    let done = res?;
    let outcome = if done { "paused" } else { "already paused" };
    if done {
        record_done(
            &s,
            &admin,
            "thread.pause",
            &format!("{name}#{idx}"),
            None,
            outcome,
        )
        .await;
    }
    Ok(HttpResponse::Ok()
        .json(json!({"worker": name, "index": idx, "paused": done, "result": outcome})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResumeBody {
    pub state: Option<String>,
    /// Needed to resume into Finished or Aborted, which drops the thread's work.
    #[serde(default)]
    pub force: bool,
}

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
    let (name, dest) = resolve(&s, &target).await?;
    let res =
        call_worker::<WorkerResume>(&s, &name, &dest, (idx, body.state.clone()), body.force).await;
    let resumed = res?;
    let outcome = if resumed { "resumed" } else { "not paused" };
    if resumed {
        let target = format!("{name}#{idx}");
        record_done(
            &s,
            &admin,
            "thread.resume",
            &target,
            body.state.clone(),
            outcome,
        )
        .await;
    }
    Ok(HttpResponse::Ok().json(
        json!({"worker": name, "index": idx, "state": body.state, "resumed": resumed, "result": outcome}),
    ))
}

/// The worker's stage limits and how many of each run, fetched from it.
pub async fn worker_limits(
    _admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (name, dest) = resolve(&s, &path).await?;
    let limits = call_worker::<WorkerLimits>(&s, &name, &dest, [], false).await?;
    Ok(HttpResponse::Ok().json(json!({"worker": name, "limits": limits})))
}

/// Changes a worker's stage limits (`{"pc1": 1, "c2": null}`): the worker applies them at
/// once and keeps them in its config file.
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
    Ok(HttpResponse::Ok().json(json!({"worker": name, "limits": limits})))
}

/// Most sectors one pledge may ask for (each is a row of work for some thread).
pub const MAX_PLEDGE: u32 = 100_000;

/// `util sealer sectors pledge`: `{"count": N}`, `{"fill": true}` or `{"once_per_worker": true}`.
pub async fn pledge(
    admin: Admin,
    s: web::Data<RestState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let req: PledgeRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "malformed body: {e}; expected {{\"count\": N}}, {{\"fill\": true}} or {{\"once_per_worker\": true}}"
        ))
    })?;
    let chosen = [req.count.is_some(), req.fill, req.once_per_worker]
        .iter()
        .filter(|b| **b)
        .count();
    if chosen != 1 || req.count == Some(0) {
        return Err(ApiError::BadRequest(
            "say exactly one of count (>= 1), fill or once_per_worker".into(),
        ));
    }
    if req.count.is_some_and(|n| n > MAX_PLEDGE) {
        return Err(ApiError::BadRequest(format!(
            "count {} is more than can be pledged at once; at most {MAX_PLEDGE}",
            req.count.unwrap_or_default()
        )));
    }
    let what = format!("{req:?}");
    let now = db::now();
    let grants = audited(&s, &admin, "sectors.pledge", "*", move |c| {
        let grants = crate::sched::pledge(c, &req, now)?;
        let total: i32 = grants.iter().map(|(_, n)| n).sum();
        let done = Done {
            result: format!("pledged {total}"),
            detail: Some(what),
        };
        Ok((grants, Some(done)))
    })
    .await?;
    let total: i32 = grants.iter().map(|(_, n)| n).sum();
    tracing::info!(total, grants = ?grants, by = %admin.0, "sectors pledged");
    let by_worker: BTreeMap<String, i32> = grants.into_iter().collect();
    Ok(HttpResponse::Ok().json(json!({"pledged": total, "workers": by_worker})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedLogQuery {
    pub worker: Option<String>,
    /// How far back, in seconds (default 600).
    pub since_secs: Option<i64>,
    pub limit: Option<i64>,
}

pub async fn sched_log(
    _admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<SchedLogQuery>,
) -> Result<HttpResponse, ApiError> {
    // Anything older than the log itself can be is "everything".
    let secs = q.since_secs.unwrap_or(600).clamp(0, 100 * 365 * 24 * 3600);
    let since = db::now() - chrono::Duration::seconds(secs);
    let (worker, limit) = (
        q.worker.clone(),
        q.limit.unwrap_or(10_000).clamp(1, 100_000),
    );
    let rows =
        s.db.run(move |c| db::sched::list(c, worker.as_deref(), since, limit))
            .await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    pub limit: Option<i64>,
}

pub async fn audit_log(
    _admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let rows = s.db.run(move |c| audit::recent(c, limit)).await?;
    Ok(HttpResponse::Ok().json(rows))
}

pub async fn sectors(_admin: Admin, s: web::Data<RestState>) -> Result<HttpResponse, ApiError> {
    let rows = s.db.run(db::sectors::list).await?;
    Ok(HttpResponse::Ok().json(rows))
}

pub async fn healthz(s: web::Data<RestState>) -> HttpResponse {
    match s.db.run(|c| db::workers::list(c).map(|_| ())).await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ok", "database": s.db.backend})),
        Err(e) => actix_web::ResponseError::error_response(&ApiError::from(e)),
    }
}

pub async fn metrics(s: web::Data<RestState>) -> HttpResponse {
    let rows = s.db.run(db::workers::list).await.unwrap_or_default();
    let now = db::now();
    let mut out = String::from("# TYPE damocles_workers gauge\n");
    out += &format!("damocles_workers {}\n", rows.len());
    out += "# TYPE damocles_worker_threads gauge\n";
    for r in &rows {
        for (state, n) in [
            ("empty", r.empty_threads),
            ("paused", r.paused_threads),
            ("running", r.running_threads),
            ("waiting", r.waiting_threads),
            ("errors", r.error_threads),
        ] {
            out += &format!(
                "damocles_worker_threads{{worker=\"{}\",state=\"{state}\"}} {n}\n",
                metrics::label(&r.name)
            );
        }
        out += &format!(
            "damocles_worker_last_ping_age_seconds{{worker=\"{}\"}} {}\n",
            metrics::label(&r.name),
            (now - r.last_ping_at).num_seconds()
        );
    }
    let jobs =
        s.db.run(db::wdpost::count_by_state)
            .await
            .unwrap_or_default();
    out += "# TYPE damocles_wdpost_jobs gauge\n";
    for state in [
        db::wdpost::READY,
        db::wdpost::RUNNING,
        db::wdpost::SUCCEED,
        db::wdpost::FAILED,
    ] {
        let n = jobs.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
        out += &format!("damocles_wdpost_jobs{{state=\"{state}\"}} {n}\n");
    }
    out += &s.sched.metrics();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}

/// Audits an action done outside the database (on a worker): written after it succeeded. The
/// action happened whatever the audit write does, so a failed write is logged, not answered.
pub(crate) async fn record_done(
    s: &RestState,
    admin: &Admin,
    action: &str,
    target: &str,
    detail: Option<String>,
    result: &str,
) {
    let (actor, action, target, result) = (
        admin.0.clone(),
        action.to_string(),
        target.to_string(),
        result.to_string(),
    );
    let written =
        s.db.run(move |c| {
            let entry = audit::Entry {
                actor: &actor,
                action: &action,
                target: &target,
                detail,
                result: &result,
            };
            audit::record(c, entry, db::now())
        })
        .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "an action was done but its audit row could not be written");
    }
}

/// What a database action did, for its audit row.
pub(crate) struct Done {
    pub result: String,
    pub detail: Option<String>,
}

/// A change with only its result to log.
pub(crate) fn done(result: &str) -> Done {
    Done {
        result: result.to_string(),
        detail: None,
    }
}

/// Runs a database action and, when it changed something (a `Done`), its audit row, in one
/// transaction: the log holds every change and nothing that did not happen.
pub(crate) async fn audited<T: Send + 'static>(
    s: &RestState,
    admin: &Admin,
    action: &str,
    target: &str,
    act: impl FnOnce(&mut db::DbConnection) -> Result<(T, Option<Done>), db::DbError> + Send + 'static,
) -> Result<T, ApiError> {
    let (actor, action, target) = (admin.0.clone(), action.to_string(), target.to_string());
    let out =
        s.db.run(move |c| {
            diesel::Connection::transaction::<_, db::DbError, _>(c, |c| {
                let (out, done) = act(c)?;
                if let Some(done) = done {
                    let entry = audit::Entry {
                        actor: &actor,
                        action: &action,
                        target: &target,
                        detail: done.detail,
                        result: &done.result,
                    };
                    audit::record(c, entry, db::now())?;
                }
                Ok(out)
            })
        })
        .await?;
    Ok(out)
}

/// The answer of an action that either changed something (audited as `result`) or found
/// nothing to change.
pub(crate) fn changed(yes: bool, result: &str) -> (bool, Option<Done>) {
    (yes, yes.then(|| done(result)))
}
