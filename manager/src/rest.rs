//! The operators' REST API: the admin token check, the state every handler shares, pledges,
//! the decision and audit logs, sectors, health and metrics. Workers are in `rest/workers.rs`,
//! their tokens in `rest/tokens.rs`, the WindowPoSt jobs in `rest/wdpost.rs`. Every endpoint
//! but `/healthz` and `/metrics` needs the admin token; every state change goes to `audit_log`
//! (`rest/audit.rs`). Each answer is a type the CLI decodes too.

pub mod audit;
pub mod market;
pub mod sectors;
pub mod tokens;
pub mod unseal;
pub mod wdpost;
pub mod workers;

use std::collections::BTreeMap;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use damocles_actors::wire::auth::ct_eq;
use serde::{Deserialize, Serialize};

use self::audit::{audited, Done};
use crate::auth::Authenticator;
use crate::db::{self, Db};
use crate::error::ApiError;
use crate::metrics;
use crate::sched::{PledgeRequest, Scheduler};
use crate::ui;

/// Every REST route, from one table: `routes` registers them and `ROUTES` lists them, so a
/// test holds the OpenAPI document to exactly what the server serves. A route's method also
/// guards its resource, so another method on the same path falls through to the next one.
macro_rules! rest_routes {
    ($($method:ident $path:literal $(limit $limit:expr)? => $handler:path;)*) => {
        /// Every REST route, as `(method, path)` in OpenAPI's path syntax.
        #[cfg(test)]
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        /// Registers every REST route.
        pub fn routes(cfg: &mut web::ServiceConfig) {
            $(
                cfg.service(
                    web::resource($path)
                        .guard(actix_web::guard::Method(Method::$method))
                        $(.app_data(web::PayloadConfig::new($limit)))?
                        .route(web::method(Method::$method).to($handler)),
                );
            )*
        }
    };
}

rest_routes! {
    GET "/openapi.json" => crate::openapi::serve;
    GET "/healthz" => healthz;
    GET "/metrics" => metrics;
    GET "/workers" => workers::list_workers;
    GET "/workers/{name}" => workers::worker_info;
    DELETE "/workers/{name}" => workers::remove_worker;
    GET "/workers/{name}/limits" => workers::worker_limits;
    POST "/workers/{name}/limits" => workers::set_worker_limits;
    POST "/workers/{name}/drain" => workers::drain;
    POST "/workers/{name}/undrain" => workers::undrain;
    POST "/workers/{name}/threads/{idx}/pause" => workers::pause_thread;
    POST "/workers/{name}/threads/{idx}/resume" => workers::resume_thread;
    POST "/workers/{name}/token" => tokens::create;
    DELETE "/workers/{name}/token" => tokens::revoke;
    GET "/tokens" => tokens::list;
    GET "/audit" => audit_log;
    GET "/sched/log" => sched_log;
    POST "/sealer/sectors/pledge" => pledge;
    GET "/sectors" => market::sectors;
    POST "/sectors/import" => sectors::import;
    POST "/sectors/unseal" => unseal::queue;
    GET "/unseal" => unseal::list;
    GET "/unseal/{miner}/{number}/{cid}" => unseal::get;
    GET "/unseal/{miner}/{number}/{cid}/piece" => unseal::download;
    PUT "/unseal/{miner}/{number}/{cid}/piece" limit unseal::MAX_UPLOAD => unseal::upload;
    GET "/sectors/{miner}/{number}" => market::sector_state;
    GET "/sectors/{miner}/{number}/export" => sectors::export;
    POST "/sectors/{miner}/{number}/abort" => sectors::abort;
    POST "/sectors/{miner}/{number}/restore" => sectors::restore;
    POST "/sectors/{miner}/{number}/rebuild" => sectors::rebuild;
    POST "/sealer/snap/{miner}/fetch" => market::snap_fetch;
    GET "/sealer/snap/{miner}/candidates" => market::snap_candidates;
    POST "/mock/deals" limit market::MAX_DEAL_BYTES => market::import_deal;
    GET "/mock/deals" => market::list_deals;
    GET "/piecestore/{cid}" => market::piece;
    GET "/wdpost/jobs" => wdpost::list;
    DELETE "/wdpost/jobs" => wdpost::remove_all;
    DELETE "/wdpost/jobs/{id}" => wdpost::remove;
    POST "/wdpost/jobs/{id}/reset" => wdpost::reset;
    GET "/proving/faults" => wdpost::faults;
    GET "/proving/missed" => wdpost::missed;
}

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
    /// The mock chain's miner, seal proof and deadlines per proving period.
    pub miner: u64,
    pub proof_type: u64,
    pub deadlines: u32,
    /// The mock chain, for what operators do to its sectors.
    pub chain: crate::mock_chain::MockChain,
}

/// Proof that the request carried the admin token, or came from the console with its session
/// (and, for a state change, the session's CSRF token); holds who made it, for the audit log.
pub struct Admin(pub String);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<RestState>>() else {
            return ready(Err(ApiError::Internal("REST state missing".into())));
        };
        let peer = req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|| "-".into());
        if is_admin(req, state) {
            return ready(Ok(Admin(format!("admin@{peer}"))));
        }
        let Some(session) = ui::session(req, &state.token) else {
            return ready(Err(ApiError::Unauthorized));
        };
        let safe = matches!(*req.method(), Method::GET | Method::HEAD);
        let csrf = req
            .headers()
            .get(ui::CSRF_HEADER)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| ct_eq(h.as_bytes(), ui::csrf_of(&state.token, session).as_bytes()));
        if !safe && !csrf {
            return ready(Err(ApiError::Forbidden(format!(
                "a change made with the console's session must carry its {} header (the console's page sends it); reload the console, or call the API with Authorization: Bearer <token>",
                ui::CSRF_HEADER
            ))));
        }
        ready(Ok(Admin(format!("console@{peer}"))))
    }
}

/// True when the request carries the admin token (compared in constant time).
pub fn is_admin(req: &HttpRequest, state: &RestState) -> bool {
    req.headers()
        .get("Authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .is_some_and(|g| ct_eq(g.as_bytes(), state.token.as_bytes()))
}

/// Most sectors one pledge may ask for (each is a row of work for some thread).
pub const MAX_PLEDGE: u32 = 100_000;

/// `util sealer sectors pledge`: `{"count": N}`, `{"fill": true}` or `{"once_per_worker": true}`.
#[utoipa::path(post, path = "/sealer/sectors/pledge", tag = "sectors",
    request_body = PledgeRequest,
    responses((status = 200, description = "Sectors pledged to each worker", body = Pledged)))]
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
    Ok(HttpResponse::Ok().json(Pledged {
        pledged: total,
        workers: grants.into_iter().collect(),
    }))
}

/// The answer to a pledge.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pledged {
    /// Sectors pledged in all.
    pub pledged: i32,
    /// Sectors pledged to each worker.
    pub workers: BTreeMap<String, i32>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SchedLogQuery {
    pub worker: Option<String>,
    /// How far back, in seconds (default 600).
    pub since_secs: Option<i64>,
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/sched/log", tag = "logs", params(SchedLogQuery),
    responses((status = 200, description = "The scheduler's decisions, newest first", body = Vec<db::sched::DecisionRow>)))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/audit", tag = "logs", params(AuditQuery),
    responses((status = 200, description = "Operators' changes, newest first", body = Vec<db::audit::AuditRow>)))]
pub async fn audit_log(
    _admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let rows = s.db.run(move |c| db::audit::recent(c, limit)).await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The manager and its database answer", body = Health),
        (status = 503, description = "The database does not answer", body = crate::error::ErrorBody)))]
pub async fn healthz(s: web::Data<RestState>) -> HttpResponse {
    match s.db.run(|c| db::workers::list(c).map(|_| ())).await {
        Ok(()) => HttpResponse::Ok().json(Health {
            status: "ok".into(),
            database: s.db.backend.into(),
        }),
        Err(e) => actix_web::ResponseError::error_response(&ApiError::from(e)),
    }
}

/// `GET /healthz`'s answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// `sqlite` or `mysql`.
    pub database: String,
}

#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(s: web::Data<RestState>) -> HttpResponse {
    use damocles_actors::metrics::{header, Kind};
    let rows = s.db.run(db::workers::list).await.unwrap_or_default();
    let now = db::now();
    let mut out = header(
        "damocles_workers",
        Kind::Gauge,
        "Workers that ever pinged this cluster (until removed).",
    );
    out += &format!("damocles_workers {}\n", rows.len());
    // Each family's samples together, as the text format requires.
    out += &header(
        "damocles_worker_threads",
        Kind::Gauge,
        "Each worker's threads by state, as its last ping said.",
    );
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
    }
    out += &header(
        "damocles_worker_last_ping_age_seconds",
        Kind::Gauge,
        "Seconds since each worker's last ping was written.",
    );
    for r in &rows {
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
    out += &header(
        "damocles_wdpost_jobs",
        Kind::Gauge,
        "WindowPoSt jobs by miner and state.",
    );
    let miners: std::collections::BTreeSet<i64> = jobs.iter().map(|(m, _, _)| *m).collect();
    for miner in miners {
        for state in db::wdpost::JobState::ALL {
            let n = jobs
                .iter()
                .find(|(m, s, _)| *m == miner && s == state.name())
                .map_or(0, |(_, _, n)| *n);
            out += &format!("damocles_wdpost_jobs{{miner=\"{miner}\",state=\"{state}\"}} {n}\n");
        }
    }
    let (missed, faulty) =
        s.db.run(|c| {
            Ok((
                db::wdpost::count_by_miner(c)?,
                db::sectors::faulty_by_miner(c)?,
            ))
        })
        .await
        .unwrap_or_default();
    out += &header(
        "damocles_wdpost_missed_deadlines_total",
        Kind::Counter,
        "Deadlines whose window closed without an accepted WindowPoSt, by miner.",
    );
    for (miner, n) in missed {
        out += &format!("damocles_wdpost_missed_deadlines_total{{miner=\"{miner}\"}} {n}\n");
    }
    out += &header(
        "damocles_faulty_sectors",
        Kind::Gauge,
        "Sectors faulted by a missed WindowPoSt, by miner.",
    );
    for (miner, n) in faulty {
        out += &format!("damocles_faulty_sectors{{miner=\"{miner}\"}} {n}\n");
    }
    out += &s.sched.metrics();
    out += &damocles_actors::metrics::render();
    HttpResponse::Ok()
        .content_type(damocles_actors::metrics::CONTENT_TYPE)
        .body(out)
}
