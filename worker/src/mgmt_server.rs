//! The worker's local management API: JSON-RPC 2.0 over HTTP `POST /` (damocles'
//! `VenusWorker.*`), answered by asking the `WorkerSupervisor`; our extensions
//! `WorkerLimits` / `WorkerSetLimits` read and change the live stage limits.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::Addr;
use actix_web::{web, App, HttpResponse, HttpServer};
use damocles_actors::supervisor::{
    ControlError, ListThreads, PauseThread, ResumeThread, WorkerSupervisor,
};
use damocles_actors::wire::jsonrpc::{
    decode_request, Response, RpcError, METHOD_NOT_FOUND, SERVER_ERROR,
};
use serde_json::{json, Value};

use crate::live_limits::LiveLimits;

pub fn version() -> String {
    format!("v{}-damocles-rs", env!("CARGO_PKG_VERSION"))
}

/// Serves the API on an already bound listener (tests bind port 0).
pub fn serve(
    listener: std::net::TcpListener,
    supervisor: Addr<WorkerSupervisor>,
    live: Arc<LiveLimits>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(supervisor);
    let live = web::Data::from(live);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(live.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .route("/", web::post().to(handle))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run())
}

async fn handle(
    body: web::Bytes,
    sup: web::Data<Addr<WorkerSupervisor>>,
    live: web::Data<LiveLimits>,
) -> HttpResponse {
    let req = match decode_request(&body) {
        Ok(r) => r,
        Err(resp) => return HttpResponse::Ok().json(resp),
    };
    let result = dispatch(&req.method, &req.params, &sup, &live).await;
    HttpResponse::Ok().json(Response::from_result(req.id, result))
}

async fn dispatch(
    method: &str,
    params: &Value,
    sup: &Addr<WorkerSupervisor>,
    live: &LiveLimits,
) -> Result<Value, RpcError> {
    let unavailable = |e: actix::MailboxError| {
        RpcError::new(SERVER_ERROR, format!("worker is shutting down: {e}"))
    };
    match method {
        "VenusWorker.WorkerList" => {
            let list = sup.send(ListThreads).await.map_err(unavailable)?;
            Ok(json!(list))
        }
        "VenusWorker.WorkerPause" => {
            let index = index_param(params)?;
            let r = sup.send(PauseThread { index }).await.map_err(unavailable)?;
            r.map(Value::from).map_err(control_error)
        }
        "VenusWorker.WorkerResume" => {
            let index = index_param(params)?;
            let state = match params.get(1) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    return Err(RpcError::invalid_params(format!(
                        "state must be a string or null, got {other}"
                    )))
                }
            };
            let r = sup.send(ResumeThread { index, state }).await.map_err(unavailable)?;
            r.map(Value::from).map_err(control_error)
        }
        "VenusWorker.WorkerVersion" => Ok(json!(version())),
        "VenusWorker.WorkerLimits" => Ok(json!(live.show())),
        "VenusWorker.WorkerSetLimits" => {
            let changes: BTreeMap<String, Option<usize>> =
                serde_json::from_value(params.get(0).cloned().unwrap_or(Value::Null)).map_err(
                    |e| {
                        RpcError::invalid_params(format!(
                            "expected params [{{\"<stage>\": <limit or null>}}]: {e}"
                        ))
                    },
                )?;
            if changes.values().any(|v| *v == Some(0)) {
                return Err(RpcError::invalid_params(
                    "a limit must be at least 1 (null lifts it)",
                ));
            }
            live.set(changes)
                .await
                .map(|now| json!(now))
                .map_err(|e| RpcError::invalid_params(format!("{e:#}")))
        }
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method {other:?} not found; methods: VenusWorker.WorkerList, WorkerPause, WorkerResume, WorkerVersion, WorkerLimits, WorkerSetLimits"),
        )),
    }
}

fn index_param(params: &Value) -> Result<usize, RpcError> {
    params
        .get(0)
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| RpcError::invalid_params("expected params [index] with a thread index >= 0"))
}

fn control_error(e: ControlError) -> RpcError {
    match e {
        ControlError::Unavailable(_) => RpcError::new(SERVER_ERROR, e.to_string()),
        _ => RpcError::invalid_params(e.to_string()),
    }
}
