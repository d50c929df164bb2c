//! The worker-facing JSON-RPC at `/rpc/v0`, namespace `Venus`, positional params: decodes the
//! params of each method and hands them to the mock chain, the heartbeat writer or the
//! WindowPoSt job queue.

use actix::Addr;
use actix_web::{web, HttpResponse};
use damocles_actors::wire::jsonrpc::{
    decode_request, Response, RpcError, METHOD_NOT_FOUND, SERVICE_UNAVAILABLE,
};
use damocles_actors::wire::venus::WorkerInfo;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::heartbeat_writer::{HeartbeatWriter, Ping};
use crate::mock_chain::MockChain;
use crate::wdpost::JobQueue;

pub struct RpcState {
    pub chain: MockChain,
    pub heartbeats: Addr<HeartbeatWriter>,
    pub jobs: JobQueue,
}

pub async fn handle(body: web::Bytes, state: web::Data<RpcState>) -> HttpResponse {
    let req = match decode_request(&body) {
        Ok(r) => r,
        Err(resp) => return HttpResponse::Ok().json(resp),
    };
    let result = dispatch(&req.method, req.params, &state).await;
    HttpResponse::Ok().json(Response::from_result(req.id, result))
}

/// The `n`th positional parameter, decoded.
fn arg<T: DeserializeOwned>(params: &Value, n: usize, method: &str) -> Result<T, RpcError> {
    let v = params.get(n).cloned().unwrap_or(Value::Null);
    serde_json::from_value(v)
        .map_err(|e| RpcError::invalid_params(format!("{method}: parameter {n}: {e}")))
}

fn ok<T: serde::Serialize>(v: T) -> Result<Value, RpcError> {
    Ok(json!(v))
}

async fn dispatch(method: &str, p: Value, s: &RpcState) -> Result<Value, RpcError> {
    let name = method.strip_prefix("Venus.").unwrap_or("");
    let c = &s.chain;
    match name {
        "WorkerPing" => {
            let info: WorkerInfo = arg(&p, 0, name)?;
            if info.name.is_empty() {
                return Err(RpcError::invalid_params("worker name is required"));
            }
            if info.dest.is_empty() {
                return Err(RpcError::invalid_params("worker dest is required"));
            }
            s.heartbeats
                .send(Ping(info))
                .await
                .map_err(|e| RpcError::new(SERVICE_UNAVAILABLE, e.to_string()))?
                .map_err(|e| RpcError::new(SERVICE_UNAVAILABLE, e))?;
            ok(Value::Null)
        }
        "AllocateSector" => ok(c
            .allocate_sector(
                arg(&p, 0, name)?,
                arg::<Option<String>>(&p, 1, name)?.unwrap_or_default(),
                arg(&p, 2, name)?,
            )
            .await?),
        "AcquireDeals" => ok(Value::Null),
        "AssignTicket" => ok(c.assign_ticket(arg(&p, 0, name)?).await?),
        "SubmitPreCommit" => ok(c
            .submit_pre_commit(
                arg(&p, 0, name)?,
                arg(&p, 1, name)?,
                arg::<Option<bool>>(&p, 2, name)?.unwrap_or(false),
            )
            .await?),
        "PollPreCommitState" => ok(c.poll_pre_commit(arg(&p, 0, name)?).await?),
        "SubmitPersistedEx" | "SubmitPersisted" => ok(c
            .submit_persisted(arg(&p, 0, name)?, arg(&p, 1, name)?)
            .await?),
        "WaitSeed" => ok(c.wait_seed(arg(&p, 0, name)?).await?),
        "SubmitProof" => ok(c
            .submit_proof(
                arg(&p, 0, name)?,
                arg(&p, 1, name)?,
                arg::<Option<bool>>(&p, 2, name)?.unwrap_or(false),
            )
            .await?),
        "PollProofState" => ok(c.poll_proof(arg(&p, 0, name)?).await?),
        "ReportState" => ok(c.report_state(arg(&p, 0, name)?, arg(&p, 1, name)?).await?),
        "ReportFinalized" => ok(c.report_finalized(arg(&p, 0, name)?).await?),
        "ReportAborted" => ok(c
            .report_aborted(
                arg(&p, 0, name)?,
                arg::<Option<String>>(&p, 1, name)?.unwrap_or_default(),
            )
            .await?),
        "StoreBasicInfo" => ok(c.store_info(arg(&p, 0, name)?).await?),
        "WdPoStAllocateJobs" => ok(s
            .jobs
            .allocate(
                arg(&p, 0, name)?,
                arg::<Option<u32>>(&p, 1, name)?.unwrap_or(1),
                arg::<Option<String>>(&p, 2, name)?.unwrap_or_default(),
                arg(&p, 3, name)?,
            )
            .await?),
        "WdPoStHeartbeatJobs" => {
            s.jobs
                .heartbeat(
                    arg(&p, 0, name)?,
                    arg::<Option<String>>(&p, 1, name)?.unwrap_or_default(),
                )
                .await?;
            ok(Value::Null)
        }
        "WdPoStFinishJob" => {
            s.jobs
                .finish(
                    arg(&p, 0, name)?,
                    arg(&p, 1, name)?,
                    arg::<Option<String>>(&p, 2, name)?.unwrap_or_default(),
                    arg(&p, 3, name)?,
                )
                .await?;
            ok(Value::Null)
        }
        _ => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method {method:?} not found"),
        )),
    }
}
