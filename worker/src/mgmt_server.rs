//! The worker's local management API: JSON-RPC 2.0 over HTTP `POST /` (damocles'
//! `VenusWorker.*`, one type per method in `wire::worker_methods`), answered by asking the
//! `WorkerSupervisor`; our `WorkerLimits` / `WorkerSetLimits` read and change the live stage
//! limits.
//!
//! Who may call: a call that changes anything must be signed with the key derived from this
//! worker's token (`wire::auth::ControlKey`), which its manager and its local CLI (given the
//! config file) can make and nobody else can. A worker without a token takes changes only from
//! its own machine. Reads are open unless `rpc_server.open_reads = false`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::Addr;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use damocles_actors::processor::{check_env, EnvOverlay};
use damocles_actors::supervisor::{ControlError, ControlThread, ListThreads, WorkerSupervisor};
use damocles_actors::thread::control::Control;
use damocles_actors::wire::auth::{unix_now, ControlKey, FORCE_HEADER};
use damocles_actors::wire::jsonrpc::{
    decode_request, Response, RpcError, FORBIDDEN, METHOD_NOT_FOUND, NEEDS_FORCE, SERVER_ERROR,
    THREAD_NOT_FOUND,
};
use damocles_actors::wire::method::{self as method, Method};
use damocles_actors::wire::worker_methods::{
    is_read, WorkerLimits, WorkerList, WorkerPause, WorkerRemoveEnv, WorkerResume, WorkerSetEnv,
    WorkerSetLimits, WorkerVersion,
};
use serde_json::Value;
use tracing::info;

use crate::live_limits::LiveLimits;

pub fn version() -> String {
    format!("v{}-damocles-rs", env!("CARGO_PKG_VERSION"))
}

/// Who may call what.
#[derive(Clone, Debug)]
pub struct Guard {
    /// Derived from this worker's token; None when it has none.
    pub control: Option<ControlKey>,
    /// Reads need no credential (a damocles-manager's `util worker info` cannot sign).
    pub open_reads: bool,
}

/// What one call is allowed, after its credential was checked.
struct Caller {
    /// `X-Damocles-Force: true`, covered by the signature: a resume may drop the thread's work.
    force: bool,
}

impl Guard {
    fn check(&self, req: &HttpRequest, method: &str, body: &[u8]) -> Result<Caller, RpcError> {
        let local = req
            .peer_addr()
            .is_some_and(|a: SocketAddr| a.ip().is_loopback());
        let force = req
            .headers()
            .get(FORCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let caller = Caller { force };
        if is_read(method) && self.open_reads {
            return Ok(caller);
        }
        let header = req
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok());
        match &self.control {
            Some(key) => key
                .verify(header, force, body, unix_now())
                .map(|()| caller)
                .map_err(|e| RpcError::new(FORBIDDEN, format!("{method}: {e}"))),
            None if local => Ok(caller),
            None => Err(RpcError::new(
                FORBIDDEN,
                format!("{method}: this worker has no token, so it takes changes only from its own machine: give it one ([sector_manager] rpc_client.token_file)"),
            )),
        }
    }
}

/// Serves the API on an already bound listener (tests bind port 0).
pub fn serve(
    listener: std::net::TcpListener,
    supervisor: Addr<WorkerSupervisor>,
    live: Arc<LiveLimits>,
    env: EnvOverlay,
    guard: Guard,
) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(State {
        sup: supervisor,
        live,
        env,
        guard,
    });
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .route("/", web::post().to(handle))
            .route("/metrics", web::get().to(metrics))
    })
    .workers(2)
    .disable_signals()
    .keep_alive(damocles_actors::wire::jsonrpc::SERVER_KEEP_ALIVE)
    .listen(listener)?
    .run())
}

struct State {
    sup: Addr<WorkerSupervisor>,
    live: Arc<LiveLimits>,
    env: EnvOverlay,
    guard: Guard,
}

/// `GET /metrics` (open, like Prometheus expects): the threads by plan and state, then this
/// process's own metrics (stage durations, processor restarts, calls to the manager, parameter
/// generation).
async fn metrics(s: web::Data<State>) -> HttpResponse {
    let threads = s.sup.send(ListThreads).await.unwrap_or_default();
    let mut by: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
    for t in &threads {
        let state = if t.pausing {
            "Pausing"
        } else {
            t.thread_state.name()
        };
        *by.entry((t.plan.clone(), state)).or_default() += 1;
    }
    let mut out = damocles_actors::metrics::header(
        "damocles_threads",
        damocles_actors::metrics::Kind::Gauge,
        "This worker's threads, by plan and state (Idle, Waiting, Running, Pausing, Paused).",
    );
    for ((plan, state), n) in by {
        let plan = damocles_actors::metrics::label(&plan);
        out += &format!("damocles_threads{{plan=\"{plan}\",state=\"{state}\"}} {n}\n");
    }
    out += &damocles_actors::metrics::render();
    HttpResponse::Ok()
        .content_type(damocles_actors::metrics::CONTENT_TYPE)
        .body(out)
}

async fn handle(req: HttpRequest, body: web::Bytes, s: web::Data<State>) -> HttpResponse {
    let call = match decode_request(&body) {
        Ok(r) => r,
        Err(resp) => return HttpResponse::Ok().json(resp),
    };
    let result = match s.guard.check(&req, &call.method, &body) {
        Ok(caller) => dispatch(&call.method, call.params.as_deref(), &s, &caller).await,
        Err(e) => Err(e),
    };
    HttpResponse::Ok().json(Response::from_result(call.id, result))
}

async fn dispatch(
    method: &str,
    p: Option<&serde_json::value::RawValue>,
    s: &State,
    caller: &Caller,
) -> Result<Value, RpcError> {
    let unavailable = |e: actix::MailboxError| {
        RpcError::new(SERVER_ERROR, format!("worker is shutting down: {e}"))
    };
    match method {
        WorkerList::NAME => {
            method::serve::<WorkerList, _, _>(p, |_| async {
                s.sup.send(ListThreads).await.map_err(unavailable)
            })
            .await
        }
        WorkerVersion::NAME => method::serve::<WorkerVersion, _, _>(p, |_| async { Ok(version()) }).await,
        WorkerPause::NAME => {
            method::serve::<WorkerPause, _, _>(p, |(index,)| async move {
                let control = Control::Pause { force: caller.force };
                let r = s.sup.send(ControlThread { index, control }).await.map_err(unavailable)?;
                r.map_err(control_error)
            })
            .await
        }
        WorkerResume::NAME => {
            method::serve::<WorkerResume, _, _>(p, |(index, state)| async move {
                if let Some(to) = state.as_deref().filter(|s| drops_work(s)) {
                    if !caller.force {
                        return Err(RpcError::new(
                            NEEDS_FORCE,
                            format!("resuming thread #{index} into {to} drops its work (an abort wipes the sector's files): say so with --force"),
                        ));
                    }
                }
                let r = s
                    .sup
                    .send(ControlThread {
                        index,
                        control: Control::Resume { state },
                    })
                    .await
                    .map_err(unavailable)?;
                r.map_err(control_error)
            })
            .await
        }
        WorkerSetEnv::NAME => {
            method::serve::<WorkerSetEnv, _, _>(p, |(name, value)| async move {
                set_env(&s.env, name, Some(value))
            })
            .await
        }
        WorkerRemoveEnv::NAME => {
            method::serve::<WorkerRemoveEnv, _, _>(p, |(name,)| async move {
                set_env(&s.env, name, None)
            })
            .await
        }
        WorkerLimits::NAME => method::serve::<WorkerLimits, _, _>(p, |_| async { Ok(s.live.show()) }).await,
        WorkerSetLimits::NAME => {
            method::serve::<WorkerSetLimits, _, _>(p, |(changes,)| async move { set_limits(&s.live, changes).await })
                .await
        }
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!(
                "method {other:?} not found; methods: {}",
                [
                    WorkerList::NAME,
                    WorkerPause::NAME,
                    WorkerResume::NAME,
                    WorkerSetEnv::NAME,
                    WorkerRemoveEnv::NAME,
                    WorkerVersion::NAME,
                    WorkerLimits::NAME,
                    WorkerSetLimits::NAME
                ]
                .join(", ")
            ),
        )),
    }
}

/// States whose resume gives up the thread's work.
fn drops_work(state: &str) -> bool {
    matches!(state, "Finished" | "Aborted")
}

fn set_env(env: &EnvOverlay, name: String, value: Option<String>) -> Result<(), RpcError> {
    check_env(&name, value.as_deref()).map_err(RpcError::invalid_params)?;
    let mut overlay = env
        .write()
        .map_err(|_| RpcError::new(SERVER_ERROR, "environment lock poisoned"))?;
    info!(name = %name, set = value.is_some(), "processor environment changed");
    overlay.insert(name, value);
    Ok(())
}

async fn set_limits(
    live: &LiveLimits,
    changes: BTreeMap<String, Option<usize>>,
) -> Result<BTreeMap<String, damocles_actors::limits::StageUse>, RpcError> {
    if changes.values().any(|v| *v == Some(0)) {
        return Err(RpcError::invalid_params(
            "a limit must be at least 1 (null lifts it)",
        ));
    }
    live.set(changes)
        .await
        .map_err(|e| RpcError::invalid_params(format!("{e:#}")))
}

fn control_error(e: ControlError) -> RpcError {
    match e {
        ControlError::Unavailable(_) => RpcError::new(SERVER_ERROR, e.to_string()),
        ControlError::NotFound(_) => RpcError::new(THREAD_NOT_FOUND, e.to_string()),
        ControlError::Refused(_) => RpcError::invalid_params(e.to_string()),
    }
}
